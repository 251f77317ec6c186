"""``dnnagent info`` (what the agent sees on this machine) and ``dnnagent power`` (read a power source alone)."""

from __future__ import annotations

import json
import math
from pathlib import Path
from typing import Annotated, Optional

import typer
from rich.progress import BarColumn, Progress, TextColumn, TimeElapsedColumn
from rich.table import Table

from dnnprof.agent.backends import auto_note, get_backend
from dnnprof.agent.board import facts as board_facts
from dnnprof.agent.board import nvpmodel
from dnnprof.agent.power import open_source
from dnnprof.shared import schema, units
from dnnprof.shared.errors import UserError

from .app import app, err, out
from .app import mark as _mark


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
    from dnnprof.agent.board import jetson
    from dnnprof.agent.power import Selection

    try:  # as a sweep would choose (auto never estimates on a Jetson): a refusal is what info reports
        selection = open_source(power_source, jetson=jetson.is_jetson(root or "/"))
    except UserError as exc:
        if not power_source.strip().lower().startswith("auto"):
            raise
        selection = Selection(None, [str(exc)])
    engines = {}
    try:
        engine = get_backend("auto")
        engines[engine.name] = engine.version
    except UserError as exc:
        engines["none"] = str(exc)
    source = selection.power  # NO_POWER when none works: its fields say "no energy"
    try:
        facts = board_facts.info(board_facts.default_board_id(), backends=engines, power_source=source.name,
                                 power_boundary=source.boundary, power_estimated=source.estimated, root=root or "/")
    finally:
        source.close()
    data = schema.to_builtins(facts)
    conf = nvpmodel.read(root or "/")
    data["power_modes"] = [] if conf is None else [conf.modes[i].to_dict() for i in sorted(conf.modes)]
    data["power_notes"] = selection.notes
    data["power_info"] = selection.info
    data["backend_notes"] = [note] if (note := auto_note("auto")) else []
    if as_json:
        print(json.dumps(data, indent=2))
        return
    table = Table(show_header=False, box=None)
    for key, value in data.items():
        if key not in ("kind", "schema", "ts", "facts", "power_modes"):
            table.add_row(key, str(value))
    for key, value in _jetson_rows(facts.facts):
        table.add_row(key, value)
    out.print(table)
    if data["power_modes"]:
        out.print(_modes_table(data["power_modes"], facts.facts.power_mode_id if facts.facts else None))


def _modes_table(modes: list[dict], current: int | None) -> Table:
    """The board's nvpmodel modes: id, name, default / current, CPUs online, each clock's cap in MHz."""
    clocks = list(dict.fromkeys(k for m in modes for k in m["caps_mhz"]))
    table = Table("id", "mode", "", "CPUs online", *clocks, title="nvpmodel power modes (caps in MHz; — no cap)",
                  title_justify="left")
    for m in modes:
        marks = ", ".join(w for w, on in (("default", m["default"]), ("current", m["id"] == current)) if on)
        online = m["cpus_online"]
        cpus = "as they are" if online is None else f"{len(online)} ({_ranges(online)})"
        caps = [("—" if m["caps_mhz"].get(c) is None else f"{m['caps_mhz'][c]:g}") if c in m["caps_mhz"] else ""
                for c in clocks]
        table.add_row(str(m["id"]), m["name"], marks, cpus, *caps)
    table.columns[1].no_wrap = True
    return table


def _ranges(numbers: list[int]) -> str:
    """``[0, 1, 2, 3, 6]`` → ``"0-3,6"``."""
    parts, start = [], None
    for i, n in enumerate(numbers):
        if start is None:
            start = n
        if i + 1 == len(numbers) or numbers[i + 1] != n + 1:
            parts.append(str(start) if start == n else f"{start}-{n}")
            start = None
    return ",".join(parts)


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
    from dnnprof.agent.measure.probe import probe
    from dnnprof.agent.power import is_replay

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

