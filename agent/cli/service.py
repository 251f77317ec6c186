"""``dnnagent serve`` (what the systemd unit runs), ``outbox`` (what the service holds) and ``install-service``."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated, Optional

import typer

from .app import app, err, out


@app.command()
def serve(
    config: Annotated[Path, typer.Option("--config", "-c", help="The agent's TOML config (example: "
                                                                "systemd/agent.toml).")]
    = Path("/etc/dnnprof/agent.toml"),
    check: Annotated[bool, typer.Option("--check", help="Only check what a start checks before it connects: the "
                                                        "config, the models, the backend and the power source "
                                                        "(opened, then closed); create nothing, then exit.")]
    = False,
    retry_failed: Annotated[bool, typer.Option("--retry-failed", help="Try again the points that failed before (out "
                                                                      "of memory, build failure, NaN output, "
                                                                      "timeout), as retry_failed = true in [sweep] "
                                                                      "does; without it they are skipped.")] = False,
    verbose: Annotated[bool, typer.Option("--verbose", "-v", help="Debug log lines too.")] = False,
) -> None:
    """Run as a service: connect, announce the board, run the configured sweep (skipping points already
    measured), then stay online publishing telemetry until SIGTERM. What systemd/dnnprof-agent.service runs.

    Exit status: 78 for a config or start error a restart cannot fix (the unit does not restart it), 69 when the
    broker cannot be reached (restarted after RestartSec).

    Example: [bold]dnnagent serve --config /etc/dnnprof/agent.toml[/bold]
    """
    import dataclasses
    import threading

    from dnnprof.agent.service import config as agent_config
    from dnnprof.agent.service import serve as service
    from dnnprof.agent.service import systemd

    settings = agent_config.load(config)
    if retry_failed:
        settings = dataclasses.replace(settings, retry_failed=True)
    if check:
        found = service.check(settings)
        for note in found.power.notes:
            err.print(f"[yellow]power:[/] {note}", soft_wrap=True)
        power = found.session.power_words()
        out.print(f"{config}: OK — board {settings.board_id}, broker {settings.broker.address} (not contacted), "
                  f"{len(settings.models)} models x {len(settings.batch_sizes)} batch sizes x "
                  f"{len(settings.precisions)} precisions on {found.backend.name} {found.backend.version}, power "
                  f"{power}", soft_wrap=True)
        return
    systemd.log_to_stderr(verbose)
    stop = threading.Event()
    with systemd.stop_on_signals(stop):
        service.serve(settings, stop=stop)


@app.command()
def outbox(
    config: Annotated[Path, typer.Option("--config", "-c", help="The agent's TOML config.")]
    = Path("/etc/dnnprof/agent.toml"),
    as_json: Annotated[bool, typer.Option("--json", help="Print JSON.")] = False,
) -> None:
    """What the service's outbox holds: results, failed points and run events not yet acknowledged by the broker
    (published at the next start, or as soon as the broker is back), delivered ones kept for replay, sweeps a kill
    left unfinished (marked aborted at the next start) and runs a host queued (`dnnhost sweep start`). Reads only:
    safe while the service runs.

    Example: [bold]sudo -u dnnprof dnnagent outbox --config /etc/dnnprof/agent.toml[/bold]
    """
    from dnnprof.agent.service import config as agent_config
    from dnnprof.agent.service import outbox as outbox_mod

    settings = agent_config.load(config)
    found = outbox_mod.describe(settings.outbox_path)
    if as_json:
        out.print_json(data=found or {"path": str(settings.outbox_path), "undelivered": 0, "delivered_kept": 0,
                                      "high": 0, "stream": None, "oldest_undelivered_age_s": None,
                                      "unfinished_runs": [], "queued_runs": []})
        return
    if found is None:
        out.print(f"no outbox yet at {settings.outbox_path}: the service has written nothing", soft_wrap=True)
        return
    age = found["oldest_undelivered_age_s"]
    out.print(f"{found['path']}: stream {found['stream']}, {found['high']} messages written; "
              f"{found['undelivered']} not yet acknowledged by the broker"
              + (f" (the oldest {age:g} s old)" if age is not None else "")
              + f", {found['delivered_kept']} delivered ones kept for replay", soft_wrap=True)
    for run_id in found["unfinished_runs"]:
        out.print(f"run {run_id} never ended (killed, crashed or powered off): marked aborted at the next start",
                  soft_wrap=True)
    for run in found["queued_runs"]:
        then = "resumed under a new run id" if run["state"] == "running" else "run after the configured sweep"
        out.print(f"run {run['run_id']} queued by a host (command {run['command_id']}, {run['state']}): {then}",
                  soft_wrap=True)


@app.command("install-service")
def install_service(
    config: Annotated[Path, typer.Option("--config", help="Config file the service reads (the example is "
                                                          "installed there if it does not exist).")]
    = Path("/etc/dnnprof/agent.toml"),
    user: Annotated[str, typer.Option(help="System user the agent runs as (created if missing).")] = "dnnprof",
    dry_run: Annotated[bool, typer.Option("--dry-run", help="Print every file and command; change nothing.")]
    = False,
    root: Annotated[Path, typer.Option(help="Install under this root instead of / (an image being prepared: "
                                            "nothing is started).")] = Path("/"),
    exec_start: Annotated[Optional[str], typer.Option(
        "--exec-start", help="The command the unit starts the agent with, e.g. /opt/dnnprof/bin/dnnagent (default: "
                             "this installation's dnnagent).", metavar="COMMAND")] = None,
    allow_power_control: Annotated[bool, typer.Option(
        "--allow-power-control", help="Also let the service switch nvpmodel power modes and pin clocks ([sweep] "
                                      "power_modes, clocks): a sudoers drop-in allowing exactly `nvpmodel -m N`, "
                                      "`nvpmodel -q` and `jetson_clocks` (plain, --store/--restore of its state "
                                      "file), checked with visudo -c.")] = False,
) -> None:
    """Install the agent as a systemd service: system user in the jtop/video/render groups, /etc/dnnprof/agent.toml
    (never overwritten), the unit, then enable (and start, once `serve --check` would pass the config). Needs
    sudo."""
    from dnnprof.agent.service import install

    install.install_service(config=config, user=user, dry_run=dry_run, root=root, exec_start=exec_start,
                            allow_power_control=allow_power_control)

