"""``dnnagent``: profile ONNX models on this machine and send the results to the host."""

from __future__ import annotations

import contextlib
import json
import math
import time
from pathlib import Path
from typing import Annotated, Optional

import typer
from rich.console import Console
from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeElapsedColumn, TimeRemainingColumn
from rich.table import Table

from dnnprof.agent import board as board_facts
from dnnprof.agent import profiler, telemetry
from dnnprof.agent.backends import auto_note, get_backend, resolve
from dnnprof.agent.link import JsonlSink, MqttLink, Sink
from dnnprof.agent.models import onnxfile
from dnnprof.agent.power import open_source
from dnnprof.agent.sweep import Sweep, new_run_id
from dnnprof.shared import cli, schema, topics, units
from dnnprof.shared.errors import UserError

app = cli.app("dnnagent", "Profile ONNX image classifiers on this machine: latency, throughput, power and energy "
              "per inference at fixed batch sizes. Results go to an MQTT broker (the host's `dnnhost collect`) "
              "or to a JSONL file.")
models_app = cli.app("models", "Generate and list the reference networks (real architectures, random weights).")
app.add_typer(models_app, name="models")
err = Console(stderr=True)
out = Console()


def _mark(estimated: bool) -> str:
    return "~" if estimated else ""


def _result_line(r: schema.Result) -> str:
    est = _mark(r.provenance.estimated)
    epi = r.energy_per_inference_j
    net = f" net {units.format_energy(epi.net) + est}" if epi and epi.net is not None else ""
    flags = " [yellow]unstable[/]" if r.unstable else ""
    if r.confidence and r.confidence.stop == "max_time":
        flags += " [yellow]wide CI[/]"
    return (f"{r.network:<20} b={r.batch:<3} {r.latency_ms.mean:8.2f} ms {r.throughput_ips:8.1f} img/s "
            f"{units.format_power(r.power_w) + est:>9} {units.format_energy(epi.gross if epi else None) + est:>9}/img"
            f"{net}{flags}")


def _parse_hz(text: str, option: str, *, zero_off: bool = False) -> float:
    """``"10"`` or ``"10Hz"`` → 10.0 per second, checked for ``option``; 0 only where ``zero_off`` (0 = off)."""
    raw = text.strip()
    number = raw[:-2].strip() if raw.lower().endswith("hz") else raw
    try:
        value = float(number)
    except ValueError:
        value = math.nan
    off = "0 turns telemetry off" if zero_off else "--telemetry-rate 0 turns telemetry off"
    if not math.isfinite(value):
        raise UserError(f"{option} {text!r} is not a rate: give a number per second, e.g. 1, 0.5 or 10Hz ({off})")
    if value < 0 or (value == 0 and not zero_off):
        which = "cannot be negative" if value < 0 else "must be above 0"
        raise UserError(f"{option} {text!r} {which}: give a number per second, e.g. 1, 0.5 or 10Hz ({off})")
    if value > telemetry.MAX_HZ:
        raise UserError(f"{option} {text!r} is too fast: at most {telemetry.MAX_HZ:g} per second")
    return value


def _precisions(text: str, backend: str, supported: tuple[str, ...]) -> list[str]:
    """``"fp16,int8"`` → ``["fp16", "int8"]``, each one the backend runs; UserError naming what it does run."""
    wanted = [p.strip().lower() for p in text.split(",") if p.strip()]
    if not wanted:
        raise UserError(f"--precision is empty: give one or more of {', '.join(supported)}")
    for p in wanted:
        if p not in supported:
            hint = "" if backend != "onnxruntime" else (
                ": fp16 and int8 need --backend tensorrt (TensorRT and pycuda, on an NVIDIA GPU or a Jetson)")
            raise UserError(f"backend {backend} runs {', '.join(supported)}, not {p!r}{hint}")
    return list(dict.fromkeys(wanted))


def _parse_size(text: str, option: str) -> int:
    """``"1GiB"``, ``"512MiB"``, ``"2GB"`` or ``"1073741824"`` → bytes (KiB/MiB/GiB are 1024-based, kB/MB/GB 1000)."""
    factors = {"": 1, "b": 1, "kb": 10**3, "mb": 10**6, "gb": 10**9, "kib": 2**10, "mib": 2**20, "gib": 2**30}
    raw = text.strip().replace(" ", "")
    number = raw.rstrip("bBkKmMgGiI")
    unit = raw[len(number):].lower()
    try:
        value = float(number) * factors[unit]
    except (ValueError, KeyError):
        value = math.nan
    if not math.isfinite(value) or value < 1:
        raise UserError(f"{option} {text!r} is not a size: write e.g. 1GiB, 512MiB or 2GB")
    return int(value)


class _EngineStatus:
    """TensorRT engine-build status on stderr: texts ending in "…" (work in progress) replace the progress line's
    description while a build runs; the others (built, loaded from cache, rebuilt because ...) are printed."""

    def __init__(self) -> None:
        self.progress: Progress | None = None
        self.task = None

    def __call__(self, text: str) -> None:
        in_progress = text.endswith("…")
        if self.progress is None:
            if not in_progress:
                err.print(f"engine: {text}")
            return
        self.progress.update(self.task, description=text if in_progress else "profiling")
        if not in_progress:
            self.progress.console.print(f"engine: {text}")


class _Tee:
    def __init__(self, sinks: list[Sink]) -> None:
        self.sinks = sinks

    def send(self, message: schema.Message) -> None:
        for sink in self.sinks:
            sink.send(message)

    def close(self) -> list[schema.Message]:
        return [m for sink in self.sinks for m in sink.close()]


@app.command()
def run(
    models: Annotated[Optional[list[Path]], typer.Argument(
        help="ONNX files, or directories of them (`dnnagent models generate` makes some). The file name is the "
             "network name.", show_default=False)] = None,
    manifest: Annotated[Optional[Path], typer.Option(help="A TOML manifest of your own models: path, name, "
                                                          "input_shape, preprocessing, top1 (docs/MODELS.md).")]
    = None,
    batch: Annotated[str, typer.Option("--batch", "-b", help="Batch sizes, comma separated.")] = "1,2,4,8",
    broker: Annotated[Optional[str], typer.Option(help="MQTT broker HOST[:PORT]. Default 127.0.0.1:1883, "
                                                       "unless --output is given.")] = None,
    output: Annotated[Optional[Path], typer.Option("--output", "-o", help="Append results to this JSONL file "
                                                   "(load it on the host with `dnnhost import`).")] = None,
    board: Annotated[Optional[str], typer.Option(help="Board id (letters a-z, digits, -); default: the hostname.")]
    = None,
    backend: Annotated[str, typer.Option(help="Inference backend: auto, onnxruntime, tensorrt. auto is tensorrt "
                                              "where TensorRT and pycuda import, else onnxruntime.")] = "auto",
    precision: Annotated[str, typer.Option(help="Precisions to build and run, comma separated: fp32 (fp16, int8 on "
                                                "TensorRT).")] = "fp32",
    engine_cache: Annotated[Optional[Path], typer.Option(
        help="TensorRT: directory of built engines, so a second run builds nothing (default: "
             "~/.cache/dnnprof/engines).", metavar="DIR")] = None,
    dla_core: Annotated[Optional[int], typer.Option(
        help="TensorRT: build for this DLA core (0, 1) with GPU fallback; fp16 and int8 only.", metavar="N")] = None,
    calibration: Annotated[Optional[Path], typer.Option(
        help="TensorRT int8: calibrate on the .jpg/.png images in DIR (ImageNet preprocessing). Without it int8 is "
             "calibrated on random data and its results are labelled timing only.", metavar="DIR")] = None,
    rebuild_engines: Annotated[bool, typer.Option(
        "--rebuild-engines", help="TensorRT: build every engine again, ignoring the engine cache.")] = False,
    workspace: Annotated[Optional[str], typer.Option(
        help="TensorRT: builder workspace limit, e.g. 1GiB (the default) or 512MiB.", metavar="SIZE")] = None,
    power_source: Annotated[str, typer.Option(help="auto, none, ina3221[:ROOT], jtop, tegrastats, rapl[:ROOT], "
                                                   "estimate[:ROOT]. auto uses the best real sensor (in that order),"
                                                   " else a labelled estimate; `dnnagent power` tries one.")] = "auto",
    tdp_w: Annotated[Optional[float], typer.Option(help="TDP in watts for the estimate source.")] = None,
    warmup: Annotated[str, typer.Option(help="Minimum warm-up per point; it goes on until latency is steady.")]
    = "200ms",
    max_warmup: Annotated[Optional[str], typer.Option(help="Longest warm-up per point, steady or not "
                                                           "(default: 10s, or twice --warmup if longer).")] = None,
    duration: Annotated[str, typer.Option(help="Minimum timed window per point; it goes on until the confidence "
                                               "intervals reach their targets.")] = "1s",
    max_duration: Annotated[Optional[str], typer.Option(help="Longest timed window per point "
                                                             "(default: 20s, or --duration if longer).")] = None,
    latency_ci: Annotated[str, typer.Option(help="Target 95% half-width of mean latency, relative.")] = "1%",
    power_ci: Annotated[str, typer.Option(help="Target 95% half-width of average power, relative.")] = "2%",
    min_power_samples: Annotated[int, typer.Option(help="Minimum power readings in the window.")] = 10,
    unstable_cov: Annotated[str, typer.Option(help="Flag a point unstable above this latency CoV.")] = "10%",
    idle: Annotated[str, typer.Option(help="Idle baseline length for net energy; 0s for none.")] = "1s",
    idle_max_age: Annotated[str, typer.Option(help="Reuse an idle baseline this long.")] = "60s",
    min_iterations: Annotated[int, typer.Option(help="Minimum batches in the timed window.")] = 10,
    threads: Annotated[Optional[int], typer.Option(help="onnxruntime: CPU threads (default: all).")] = None,
    run_id: Annotated[Optional[str], typer.Option(help="Run id (letters a-z, digits, -); default: time-based.")] = None,
    seed: Annotated[int, typer.Option(help="Seed of the random input data.")] = 0,
    telemetry_rate: Annotated[str, typer.Option(
        help="Live telemetry messages per second to the broker during the sweep (total power samples, per-rail "
             "power, temperatures, throttling, clocks) for `dnnhost live`. QoS 0 and never stored: results carry "
             "the measured figures. 0 turns it off; never written to --output.", metavar="HZ")] = "1",
    telemetry_samples_hz: Annotated[str, typer.Option(
        help="Power samples per second inside the telemetry messages: each message carries the samples since the "
             "last one (--telemetry-rate 2 --telemetry-samples-hz 20: two messages a second of 10 samples each). "
             "Never faster than the power sensor updates.", metavar="HZ")] = "10",
    quiet: Annotated[bool, typer.Option("--quiet", "-q", help="No progress or table on the terminal.")] = False,
    as_json: Annotated[bool, typer.Option("--json", help="Print the results as a JSON list on stdout.")] = False,
) -> None:
    """Profile MODELS at each batch size and send one result per (model, batch).

    Example: [bold]dnnagent run models/ --batch 1,8 --broker 192.168.1.10[/bold]
    """
    # Everything that can be wrong with the input is checked before any profiling time is spent.
    batches = cli.parse_batches(batch)
    warmup_s, window_s = units.parse_time(warmup), units.parse_time(duration)
    try:
        settings = profiler.Settings(
            warmup_min_s=warmup_s,
            warmup_max_s=units.parse_time(max_warmup) if max_warmup else max(10.0, 2 * warmup_s),
            window_min_s=window_s,
            window_max_s=units.parse_time(max_duration) if max_duration else max(20.0, window_s),
            min_iterations=min_iterations, min_power_samples=min_power_samples,
            latency_ci=cli.parse_fraction(latency_ci), power_ci=cli.parse_fraction(power_ci),
            unstable_cov=cli.parse_fraction(unstable_cov), idle_s=units.parse_time(idle),
            idle_max_age_s=units.parse_time(idle_max_age))
    except ValueError as exc:
        raise UserError(f"inconsistent measurement settings: {exc}") from None
    telemetry_hz = _parse_hz(telemetry_rate, "--telemetry-rate", zero_off=True)
    samples_hz = _parse_hz(telemetry_samples_hz, "--telemetry-samples-hz")
    board_id = topics.check_id(board) if board else board_facts.default_board_id()
    run_id = topics.check_id(run_id, "run id") if run_id else new_run_id()
    if not models and manifest is None:
        raise UserError("name the models to profile: ONNX files or directories, or --manifest FILE")
    files = [onnxfile.load(p) for p in onnxfile.collect(models or [])]
    if manifest is not None:
        from dnnprof.agent.models import manifest as manifest_mod

        files += manifest_mod.load(manifest)
    if calibration is not None and "int8" not in [p.strip().lower() for p in precision.split(",")]:
        raise UserError("--calibration calibrates int8 engines: add int8 to --precision, or leave it out")
    chosen = resolve(backend)
    engine_status = _EngineStatus()
    platform = None
    if chosen == "tensorrt":
        from dnnprof.agent import tegra

        platform = tegra.l4t()  # part of the engine-cache key; None off a Jetson
    if engine_cache is None and chosen == "tensorrt":
        engine_cache = Path("~/.cache/dnnprof/engines").expanduser()
    engine = get_backend(backend, threads=threads, engine_cache=engine_cache, dla_core=dla_core,
                         calibration=calibration, rebuild=rebuild_engines,
                         workspace_bytes=_parse_size(workspace, "--workspace") if workspace is not None else None,
                         on_status=None if quiet else engine_status, platform=platform)
    selection = open_source(power_source, tdp_w=tdp_w)
    # The sweep's sampler and the telemetry thread read the same sensor: one lock for both.
    power = telemetry.SharedSource(selection.source) if selection.source else None
    precisions = _precisions(precision, engine.name if dla_core is None else f"{engine.name} on DLA core {dla_core}",
                             engine.precisions)
    sweep = Sweep(board=board_id, run_id=run_id, models=files, batches=batches, backend=engine,
                  power=power, settings=settings, precisions=precisions, seed=seed)
    source = selection.source
    session = int(time.time() * 1000)
    sinks: list[Sink] = []
    if output is not None:
        sinks.append(JsonlSink(output))
    link = None
    if broker is not None or output is None:
        link = MqttLink(broker or f"127.0.0.1:{topics.DEFAULT_PORT}", board_id, session=session)
        sinks.append(link)
    # Only now, with every input (the broker included) known good: an error stays the one line on stderr.
    if not quiet:
        for note in selection.info:
            err.print(f"[dim]power: {note}[/]")
        for note in selection.notes:
            err.print(f"[yellow]power:[/] {note}")
        if source is not None:
            flag = " [bold yellow]ESTIMATED[/]" if source.estimated else ""
            err.print(f"power: {source.name} ({source.boundary}){flag}{' — ' + source.method if source.method else ''}")
        if link is not None:
            live = f", telemetry {telemetry_hz:g}/s" if telemetry_hz > 0 else ""
            err.print(f"broker: {link.host}:{link.port} as board {board_id!r}, run {run_id}{live}")
        fallback = auto_note(backend)
        err.print(f"backend: {engine.name} {engine.version}" + (f" — [yellow]{fallback}[/]" if fallback else ""))
    sink = _Tee(sinks)
    facts = board_facts.info(board_id, backends={engine.name: engine.version},
                             power_source=source.name if source else None,
                             power_boundary=source.boundary if source else None,
                             power_estimated=bool(source and source.estimated), session=session)
    sink.send(schema.Status(board=board_id, ts=time.time(), state="online", session=session))
    sink.send(facts)
    results: list[schema.Result] = []
    # Live telemetry goes to the broker only (the JSONL file is for results), for as long as the sweep runs.
    live_feed = (telemetry.TelemetryPublisher(link, board_id, power, rate_hz=telemetry_hz, samples_hz=samples_hz)
                 if link is not None and telemetry_hz > 0 else contextlib.nullcontext())
    try:
        with live_feed:
            if quiet:
                results = sweep.run(sink)
            else:
                with Progress(TextColumn("{task.description}"), BarColumn(), MofNCompleteColumn(),
                              TimeElapsedColumn(), TimeRemainingColumn(), console=err, transient=True) as progress:
                    task = progress.add_task("profiling", total=sweep.points)
                    engine_status.progress, engine_status.task = progress, task

                    def done(r: schema.Result) -> None:
                        progress.console.print(_result_line(r))
                        progress.advance(task)

                    results = sweep.run(sink, on_point=done)
    finally:
        if power is not None:
            power.close()  # a tegrastats child or a jtop client must not outlive the sweep
        unsent = sink.close()
        if unsent:
            rescue = Path(f"dnnprof-unsent-{run_id}.jsonl")
            saver = JsonlSink(rescue)
            for message in unsent:
                saver.send(message)
            saver.close()
            raise UserError(f"{len(unsent)} messages were not acknowledged by the broker; they are saved in "
                            f"{rescue} — load them with `dnnhost import {rescue}`", exit_code=1)
    if as_json:
        print(json.dumps([schema.to_builtins(r) for r in results], indent=2))
    elif not quiet:
        err.print(f"{len(results)} results" + (f" written to {output}" if output else "") + ".")
        if any(r.provenance.estimated for r in results):
            err.print("~ estimated: energy and power come from a model of CPU power, not a sensor.")


# --- service: `serve` (what the systemd unit runs) and `install-service` ---------------------------------------


@app.command()
def serve(
    config: Annotated[Path, typer.Option("--config", "-c", help="The agent's TOML config (example: "
                                                                "systemd/agent.toml).")]
    = Path("/etc/dnnprof/agent.toml"),
    check: Annotated[bool, typer.Option("--check", help="Only check what a start checks before it connects: the "
                                                        "config, the models, the backend and the power source "
                                                        "(opened, then closed); create nothing, then exit.")]
    = False,
    verbose: Annotated[bool, typer.Option("--verbose", "-v", help="Debug log lines too.")] = False,
) -> None:
    """Run as a service: connect, announce the board, run the configured sweep (skipping points already
    measured), then stay online publishing telemetry until SIGTERM. What systemd/dnnprof-agent.service runs.

    Exit status: 78 for a config or start error a restart cannot fix (the unit does not restart it), 69 when the
    broker cannot be reached (restarted after RestartSec).

    Example: [bold]dnnagent serve --config /etc/dnnprof/agent.toml[/bold]
    """
    import threading

    from dnnprof.agent import config as agent_config
    from dnnprof.agent import service

    settings = agent_config.load(config)
    if check:
        found = service.check(settings)
        for note in found.power.notes:
            err.print(f"[yellow]power:[/] {note}", soft_wrap=True)
        source = found.power.source
        power = "none (no energy)" if source is None else source.name + (" (ESTIMATED)" if source.estimated else "")
        out.print(f"{config}: OK — board {settings.board_id}, broker {settings.broker.address} (not contacted), "
                  f"{len(settings.models)} models x {len(settings.batch_sizes)} batch sizes x "
                  f"{len(settings.precisions)} precisions on {found.backend.name} {found.backend.version}, power "
                  f"{power}", soft_wrap=True)
        return
    service.log_to_stderr(verbose)
    stop = threading.Event()
    with service.stop_on_signals(stop):
        service.serve(settings, stop=stop)


@app.command()
def outbox(
    config: Annotated[Path, typer.Option("--config", "-c", help="The agent's TOML config.")]
    = Path("/etc/dnnprof/agent.toml"),
    as_json: Annotated[bool, typer.Option("--json", help="Print JSON.")] = False,
) -> None:
    """What the service's outbox holds: results and run events not yet acknowledged by the broker (published at
    the next start, or as soon as the broker is back), delivered ones kept for replay, and sweeps a kill left
    unfinished (marked aborted at the next start). Reads only: safe while the service runs.

    Example: [bold]sudo -u dnnprof dnnagent outbox --config /etc/dnnprof/agent.toml[/bold]
    """
    from dnnprof.agent import config as agent_config
    from dnnprof.agent import outbox as outbox_mod

    settings = agent_config.load(config)
    found = outbox_mod.describe(settings.outbox_path)
    if as_json:
        out.print_json(data=found or {"path": str(settings.outbox_path), "undelivered": 0, "delivered_kept": 0,
                                      "high": 0, "stream": None, "oldest_undelivered_age_s": None,
                                      "unfinished_runs": []})
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
) -> None:
    """Install the agent as a systemd service: system user in the jtop/video/render groups, /etc/dnnprof/agent.toml
    (never overwritten), the unit, then enable (and start, once `serve --check` would pass the config). Needs
    sudo."""
    from dnnprof.agent import install

    install.install_service(config=config, user=user, dry_run=dry_run, root=root, exec_start=exec_start)


@app.command()
def info(as_json: Annotated[bool, typer.Option("--json", help="Print JSON.")] = False,
         power_source: Annotated[str, typer.Option(help="Power source to probe: auto, ina3221[:ROOT], jtop, "
                                                        "tegrastats, rapl[:ROOT], estimate[:ROOT].")] = "auto",
         root: Annotated[Optional[Path], typer.Option(
             "--root", help="Read the board's files (/proc, /sys, /etc, ...) and probe its power sensors from this "
                            "recorded tree instead of /; hostname, OS and Python stay this machine's.",
             exists=True, file_okay=False)] = None) -> None:
    """Show what the agent knows about this machine and which power source it would use.

    On a Jetson: model, SoC, L4T, JetPack, TensorRT and CUDA versions, nvpmodel mode, jetson_clocks and DLA cores.
    """
    if root is not None and power_source.strip().lower() in ("auto", "ina3221", "rapl", "estimate"):
        power_source = f"{power_source}:{root}"  # probe the tree's sensors, not this machine's
    selection = open_source(power_source)
    engines = {}
    try:
        engine = get_backend("auto")
        engines[engine.name] = engine.version
    except UserError as exc:
        engines["none"] = str(exc)
    source = selection.source
    try:
        facts = board_facts.info(board_facts.default_board_id(), backends=engines,
                                 power_source=source.name if source else None,
                                 power_boundary=source.boundary if source else None,
                                 power_estimated=bool(source and source.estimated), root=root or "/")
    finally:
        if source is not None:
            source.close()
    data = schema.to_builtins(facts)
    data["power_notes"] = selection.notes
    data["power_info"] = selection.info
    data["backend_notes"] = [note] if (note := auto_note("auto")) else []
    if as_json:
        print(json.dumps(data, indent=2))
        return
    table = Table(show_header=False, box=None)
    for key, value in data.items():
        if key not in ("kind", "schema", "ts", "facts"):
            table.add_row(key, str(value))
    for key, value in _jetson_rows(facts.facts):
        table.add_row(key, value)
    out.print(table)


def _jetson_rows(facts: schema.BoardFacts | None) -> list[tuple[str, str]]:
    """``dnnagent info``'s Jetson lines; one line saying so off a Jetson. Unknown values read "unknown"."""
    if facts is None:
        return [("jetson", "not a Jetson: no Jetson facts")]

    def known(value: object) -> str:
        return "unknown" if value is None else str(value)

    if facts.power_mode_id is None:
        mode = known(facts.power_mode)
    else:
        mode = f"{facts.power_mode or 'name unknown'} (id {facts.power_mode_id})"
    clocks = {True: "on", False: "off", None: "unknown"}[facts.jetson_clocks]
    return [("jetson model", known(facts.model)), ("soc", known(facts.soc)), ("l4t", known(facts.l4t)),
            ("jetpack", known(facts.jetpack)), ("tensorrt", known(facts.tensorrt)), ("cuda", known(facts.cuda)),
            ("nvpmodel mode", mode), ("jetson_clocks", clocks), ("dla cores", known(facts.dla_cores))]


def _parse_duration(text: str, option: str, bare_unit: str = "s") -> float:
    """``"5"`` (in ``bare_unit``), ``"5s"``, ``"500ms"`` → seconds; UserError naming ``option`` unless positive."""
    raw = text.strip()
    try:
        value = float(raw) * (1e-3 if bare_unit == "ms" else 1.0)
    except ValueError:
        try:
            value = units.parse_time(raw)
        except UserError as exc:
            raise UserError(f"{option}: {exc}") from None
    from dnnprof.agent.power.base import check_positive

    return check_positive(value, f"{option} {text!r}", "100, 100ms or 0.1s" if bare_unit == "ms" else "5, 5s or 500ms")


@app.command()
def power(
    source: Annotated[str, typer.Option(
        "--source", "-s", metavar="SPEC",
        help="auto, ina3221[:ROOT], jtop, tegrastats, tegrastats:LOGFILE (replay), rapl[:ROOT], estimate[:ROOT]. "
             "ROOT is a filesystem root holding sys/... (a recorded tree works).")] = "auto",
    duration: Annotated[Optional[str], typer.Option(
        metavar="S", help="How long to sample a live source: 5, 5s or 500ms (default 5s). For a tegrastats log: "
                          "its first S seconds, at least two lines (default: all of it).", show_default=False)] = None,
    interval: Annotated[Optional[str], typer.Option(
        metavar="MS", help="jtop/tegrastats: the interval to ask for (default 100 ms). ina3221/rapl/estimate: the "
                           "sampling period (default 10 ms / 50 ms). tegrastats log: the spacing of its lines (default "
                           "1000 ms, tegrastats' own), not used when every line has its own date. 100, 100ms or 0.1s.",
        show_default=False)] = None,
    tdp_w: Annotated[Optional[float], typer.Option(help="TDP in watts for the estimate source.")] = None,
    as_json: Annotated[bool, typer.Option("--json", help="Print the reading as JSON on stdout.")] = False,
) -> None:
    """Read a power source for a while: mean power per rail, the total (input rail or sum of rails), energy,
    readings and achieved rate — to check a sensor before a sweep, or to read a recorded tegrastats log.

    [bold]dnnagent power[/bold]  the source a sweep would pick here (auto)

    [bold]dnnagent power -s ina3221 --duration 10s[/bold]  Jetson INA3221 rails from sysfs at 100 Hz

    [bold]dnnagent power -s ina3221:/srv/xavier-copy[/bold]  a recorded tree (ROOT/sys/bus/i2c/devices/...)

    [bold]dnnagent power -s jtop --interval 200[/bold]  through jetson-stats' jtop.service

    [bold]dnnagent power -s tegrastats --interval 100[/bold]  spawns tegrastats --interval 100

    [bold]dnnagent power -s tegrastats:run.log --interval 100 --json[/bold]  replays a log tegrastats wrote

    [bold]dnnagent power -s rapl[/bold]  x86 CPU package energy

    [bold]dnnagent power -s estimate --tdp-w 15[/bold]  a labelled estimate (TDP x CPU utilisation)
    """
    from dnnprof.agent.power import is_replay
    from dnnprof.agent.power.probe import probe

    replay = is_replay(source)
    duration_s = _parse_duration(duration, "--duration") if duration else (math.inf if replay else 5.0)
    interval_ms = _parse_duration(interval, "--interval", bare_unit="ms") * 1e3 if interval else None
    if err.is_terminal and not replay:
        from rich.progress import SpinnerColumn

        with Progress(SpinnerColumn(), TextColumn(f"sampling {source}"), BarColumn(), TimeElapsedColumn(),
                      console=err, transient=True) as progress:
            task = progress.add_task("sampling", total=1.0)
            reading = probe(source, duration_s, interval_ms=interval_ms, tdp_w=tdp_w,
                            on_progress=lambda fraction: progress.update(task, completed=fraction))
    else:
        reading = probe(source, duration_s, interval_ms=interval_ms, tdp_w=tdp_w)
    if as_json:
        print(json.dumps(reading.to_json(), indent=2))
        return
    for note in reading.info:  # normal for the hardware (NC channels): a plain line
        err.print(f"[dim]power: {note}[/]", highlight=False)
    for note in reading.notes:  # worth looking into (an unreadable or disabled rail, an option not used)
        err.print(f"[yellow]power:[/] {note}", highlight=False)
    est = _mark(reading.estimated)
    flag = " [bold yellow]ESTIMATED[/]" if reading.estimated else ""
    title = f"{reading.source}{' (replay of a log)' if reading.replay else ''}{flag}"
    table = Table("rail", "mean power", title=title, title_justify="left")
    for rail, watts in reading.rails.items():
        table.add_row(rail + (" (input rail)" if rail == reading.input_rail else ""), units.format_power(watts) + est)
    out.print(table)
    out.print(f"total   {units.format_power(reading.total_w)}{est} ({reading.total_words})")
    out.print(f"energy  {units.format_energy(reading.energy_j)}{est} over {units.format_time(reading.duration_s)}")
    repeats = (f", {reading.unique_samples} new values" if reading.unique_samples != reading.samples else "")
    errors = f", {reading.read_errors} read errors" if reading.read_errors else ""
    out.print(f"samples {reading.samples}{repeats} at {reading.rate_hz:.3g} Hz achieved{errors}")
    if reading.method:
        out.print(f"[dim]{reading.method}[/]")


@models_app.command("list")
def models_list(as_json: Annotated[bool, typer.Option("--json", help="Print JSON.")] = False) -> None:
    """List the networks `models generate` can build, with their reference accuracy."""
    from dnnprof.agent.models import zoo
    from dnnprof.shared import catalog

    rows = []
    for name in zoo.names():
        entry = catalog.lookup(name)
        rows.append({"name": name, "demo": name in zoo.DEMO_SET, "top1": entry.top1 if entry else None,
                     "gmacs": entry.gmacs if entry else None, "params_m": entry.params_m if entry else None})
    if as_json:
        print(json.dumps(rows, indent=2))
        return
    table = Table("network", "top-1 %", "GMACs", "params (M)", "in demo set")
    for r in rows:
        table.add_row(r["name"], f"{r['top1']:.2f}" if r["top1"] else "—", str(r["gmacs"] or "—"),
                      str(r["params_m"] or "—"), "yes" if r["demo"] else "")
    out.print(table)


@models_app.command("inspect")
def models_inspect(
    paths: Annotated[list[Path], typer.Argument(help="ONNX image classifiers (any, not only generated ones).")],
    as_json: Annotated[bool, typer.Option("--json", help="Print JSON (a list, one object per file).")] = False,
) -> None:
    """Parameters, multiply-accumulates and FLOPs per image, split by layer kind, without loading the weights.

    MACs follow torchvision's convention (convolutions and matrix products only); FLOPs = 2 x MACs, which is
    what the seed paper's "G-Ops" counts. Operators that cannot be counted are listed, never guessed.
    """
    from dnnprof.agent.models import inspect as inspection

    found = [inspection.inspect(p) for p in onnxfile.collect(paths)]
    if as_json:
        print(json.dumps([inspection.to_dict(f) for f in found], indent=2))
        return
    for f in found:
        table = Table("layer kind", "layers", "MACs", "share", "params", title_justify="left",
                      title=f"{f.path} — input {list(f.input_shape)}")
        for kind, figures in f.by_kind.items():
            table.add_row(kind, str(figures["layers"]), _count(figures["macs"]),
                          f"{figures['macs'] / f.macs:.1%}" if f.macs else "—", _count(figures["params"]))
        table.add_row("[bold]total[/]", "", f"[bold]{_count(f.macs)}[/]", "", f"[bold]{_count(f.params)}[/]")
        out.print(table)
        out.print(f"FLOPs {_count(f.flops)} per image (2 x MACs; the seed paper's G-Ops) · activations "
                  f"{f.activation_bytes / 1e6:.1f} MB per image in all, {f.peak_activation_bytes / 1e6:.1f} MB at "
                  "peak (float32)")
        if f.unsupported:
            out.print(f"[yellow]not counted:[/] {', '.join(f.unsupported)}")


def _count(n: int) -> str:
    """``1814073344`` → ``"1.81 G"``: counts with an SI prefix."""
    for factor, prefix in ((1e9, "G"), (1e6, "M"), (1e3, "k")):
        if n >= factor:
            return f"{n / factor:.3g} {prefix}"
    return str(n)


@models_app.command("generate")
def models_generate(
    names: Annotated[Optional[list[str]], typer.Argument(help="Networks to build (default: the demo set).")] = None,
    out_dir: Annotated[Path, typer.Option("--out", "-o", help="Directory to write NAME.onnx into.")] = Path("models"),
    seed: Annotated[int, typer.Option(help="Seed of the random weights.")] = 0,
    quiet: Annotated[bool, typer.Option("--quiet", "-q")] = False,
) -> None:
    """Write real architectures with seeded random weights as ONNX files (no downloads)."""
    from dnnprof.agent.models import zoo

    try:
        paths = zoo.generate(names or list(zoo.DEMO_SET), out_dir, seed=seed)
    except OSError as exc:
        raise UserError(f"cannot write models to {out_dir}: {exc.strerror or exc}") from None
    if not quiet:
        for p in paths:
            err.print(f"wrote {p} ({p.stat().st_size / 1e6:.1f} MB)")


def main() -> None:
    cli.run(app, "dnnagent")


if __name__ == "__main__":
    main()
