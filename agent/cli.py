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
from dnnprof.agent.backends import get_backend
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
            raise UserError(f"backend {backend} runs {', '.join(supported)}, not {p!r}")
    return list(dict.fromkeys(wanted))


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
    backend: Annotated[str, typer.Option(help="Inference backend: auto, onnxruntime.")] = "auto",
    precision: Annotated[str, typer.Option(help="Precisions to build and run, comma separated: fp32 (fp16, int8 on "
                                                "TensorRT).")] = "fp32",
    power_source: Annotated[str, typer.Option(help="auto, none, rapl[:ROOT], estimate[:ROOT]. auto uses the "
                                                   "best real sensor, else a labelled estimate.")] = "auto",
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
    threads: Annotated[Optional[int], typer.Option(help="CPU threads for the backend (default: all).")] = None,
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
    engine = get_backend(backend, threads=threads)
    selection = open_source(power_source, tdp_w=tdp_w)
    # The sweep's sampler and the telemetry thread read the same sensor: one lock for both.
    power = telemetry.SharedSource(selection.source) if selection.source else None
    precisions = _precisions(precision, engine.name, engine.precisions)
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
        for note in selection.notes:
            err.print(f"[yellow]power:[/] {note}")
        if source is not None:
            flag = " [bold yellow]ESTIMATED[/]" if source.estimated else ""
            err.print(f"power: {source.name} ({source.boundary}){flag}{' — ' + source.method if source.method else ''}")
        if link is not None:
            live = f", telemetry {telemetry_hz:g}/s" if telemetry_hz > 0 else ""
            err.print(f"broker: {link.host}:{link.port} as board {board_id!r}, run {run_id}{live}")
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

                    def done(r: schema.Result) -> None:
                        progress.console.print(_result_line(r))
                        progress.advance(task)

                    results = sweep.run(sink, on_point=done)
    finally:
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


@app.command()
def info(as_json: Annotated[bool, typer.Option("--json", help="Print JSON.")] = False,
         power_source: Annotated[str, typer.Option(help="Power source spec to probe.")] = "auto") -> None:
    """Show what the agent knows about this machine and which power source it would use."""
    selection = open_source(power_source)
    engines = {}
    try:
        engine = get_backend("auto")
        engines[engine.name] = engine.version
    except UserError as exc:
        engines["none"] = str(exc)
    source = selection.source
    facts = board_facts.info(board_facts.default_board_id(), backends=engines,
                             power_source=source.name if source else None,
                             power_boundary=source.boundary if source else None,
                             power_estimated=bool(source and source.estimated))
    data = schema.to_builtins(facts)
    data["power_notes"] = selection.notes
    if as_json:
        print(json.dumps(data, indent=2))
        return
    table = Table(show_header=False, box=None)
    for key, value in data.items():
        if key not in ("kind", "schema", "ts"):
            table.add_row(key, str(value))
    out.print(table)


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
