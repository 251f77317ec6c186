"""``dnnagent run``: profile models at fixed batch sizes and send the results (MQTT, or a JSONL file)."""

from __future__ import annotations

import json
import math
import signal
import time
from pathlib import Path
from typing import Annotated, Optional

import typer
from rich.markup import escape
from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeElapsedColumn, TimeRemainingColumn

from dnnprof.agent.backends import Backend, auto_note, resolve
from dnnprof.agent.board import facts as board_facts
from dnnprof.agent.board import jetson, modes
from dnnprof.agent.measure import profiler
from dnnprof.agent.measure.sink import Sink
from dnnprof.agent.measure.sweep import new_run_id
from dnnprof.shared import onnxfile
from dnnprof.agent.power import open_source
from dnnprof.agent.publish import telemetry
from dnnprof.agent.publish.link import JsonlSink, MqttLink
from dnnprof.agent.service import runbox
from dnnprof.agent.session import (DEFAULT_ENGINE_CACHE, BackendChoice, Session, accuracy_book, power_setups,
                                   unsupported_precision)
from dnnprof.shared import cli, schema, topics, units
from dnnprof.shared.errors import UserError

from .app import app, err
from .app import mark as _mark


def _result_line(r: schema.Result) -> str:
    est = _mark(r.provenance.estimated)
    epi = r.energy_per_inference_j
    net = f" net {units.format_energy(epi.net) + est}" if epi and epi.net is not None else ""
    flags = " [yellow]unstable[/]" if r.unstable else ""
    if r.confidence and r.confidence.stop == "max_time":
        flags += " [yellow]wide CI[/]"
    batches = schema.latency_batches(r)
    if "p99" in schema.low_confidence(batches):
        flags += f" [yellow]p99 of {batches} batches (low confidence)[/]"
    if r.accuracy is not None:
        a = r.accuracy
        flags += f" top-1 {a.top1:.1f}% ({a.images} images{', reused' if a.reused else ''})"
    elif r.timing_only:
        flags += " [yellow]timing only[/]"
    label = r.network if r.precision == "fp32" else f"{r.network} {r.precision}"
    c = r.conditions
    if c is not None and c.power_mode and c.power_mode != schema.NO_POWER_MODE:
        flags += f" [{c.power_mode}{', clocks locked' if c.clocks == 'jetson_clocks on' else ''}]"
    return (f"{label:<20} b={r.batch:<3} {r.latency_ms.mean:8.2f} ms {r.throughput_ips:8.1f} img/s "
            f"{units.format_power(r.power_w) + est:>9} {units.format_energy(epi.gross if epi else None) + est:>9}/img"
            f"{net}{flags}")


def _interrupt(signum, frame) -> None:
    """SIGTERM as Ctrl-C: the sweep ends through its cleanup (the board's power mode and clocks are put back)."""
    raise KeyboardInterrupt


def _failure_line(f: schema.Failure) -> str:
    return f"{escape(f.network):<20} b={f.batch:<3} [red]failed[/] ({f.error}, {f.stage}): {escape(f.message)}"


def _parse_hz(text: str, option: str, *, zero_off: bool = False) -> float:
    """``"10"`` or ``"10Hz"`` → 10.0 per second, checked for ``option`` by ``telemetry.rate_problem``; 0 only where
    ``zero_off`` (0 = off)."""
    raw = text.strip()
    number = raw[:-2].strip() if raw.lower().endswith("hz") else raw
    try:
        value = float(number)
    except ValueError:
        value = math.nan
    problem = telemetry.rate_problem(value, zero_off=zero_off)
    if problem is None:
        return value
    words = telemetry.RATE_PROBLEMS[problem]
    if problem == "too_fast":
        raise UserError(f"{option} {text!r} {words}")
    off = "0 turns telemetry off" if zero_off else "--telemetry-rate 0 turns telemetry off"
    raise UserError(f"{option} {text!r} {words}: give a number per second, e.g. 1, 0.5 or 10Hz ({off})")


def _precisions(text: str, backend: str, engine: Backend) -> list[str]:
    """``"fp16,int8"`` → ``["fp16", "int8"]``, each one the backend runs; UserError naming what it does run."""
    supported = engine.precisions
    wanted = [p.strip().lower() for p in text.split(",") if p.strip()]
    if not wanted:
        raise UserError(f"--precision is empty: give one or more of {', '.join(supported)}")
    if (p := unsupported_precision(wanted, engine)) is not None:
        raise UserError(f"backend {backend} runs {', '.join(supported)}, not {p!r}")
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
    precision: Annotated[str, typer.Option(help="Precisions to build and run, comma separated: fp32, fp16, int8. On "
                                                "onnxruntime fp16 and int8 run the model converted to that precision "
                                                "(`dnnagent models convert`, cached); on TensorRT by builder flags or "
                                                "the converted model (--precision-method).")] = "fp32",
    engine_cache: Annotated[Optional[Path], typer.Option(
        help="TensorRT: directory of built engines, so a second run builds nothing (default: "
             "~/.cache/dnnprof/engines).", metavar="DIR")] = None,
    dla_core: Annotated[Optional[int], typer.Option(
        help="TensorRT: build for this DLA core (0, 1) with GPU fallback; fp16 and int8 only.", metavar="N")] = None,
    calibration: Annotated[Optional[Path], typer.Option(
        help="int8: calibrate on the .jpg/.png images in DIR (or its class folders), through each model's "
             "preprocessing. Without it int8 is calibrated on random data and its results are labelled timing only "
             "(timed, never ranked for accuracy).", metavar="DIR")] = None,
    accuracy_set: Annotated[Optional[Path], typer.Option(
        help="Measure top-1 and top-5 of each engine on the labelled images in DIR/<class>/*.jpg|png (<class>: "
             "the class index, or a name listed in DIR/labels.txt in output order). Once per engine, reused for "
             "every batch; images are decoded once and cached.", metavar="DIR")] = None,
    accuracy_limit: Annotated[Optional[int], typer.Option(
        help="Measure accuracy on a fixed subset of N images of --accuracy-set (seeded by --seed, recorded).",
        metavar="N", min=1)] = None,
    precision_method: Annotated[Optional[str], typer.Option(
        help="TensorRT: how fp16 and int8 are made — builder_flags (FP16 / INT8 flags and the entropy calibrator; "
             "8.5-10.x), onnx_converted (the model converted to that precision, parsed as a strongly typed network; "
             "10.x and 11.x), or auto: builder_flags where TensorRT has the flags, else onnx_converted.",
        metavar="METHOD")] = None,
    rebuild_engines: Annotated[bool, typer.Option(
        "--rebuild-engines", help="TensorRT: build every engine again, ignoring the engine cache.")] = False,
    workspace: Annotated[Optional[str], typer.Option(
        help="TensorRT: builder workspace limit, e.g. 1GiB (the default) or 512MiB.", metavar="SIZE")] = None,
    power_mode: Annotated[Optional[str], typer.Option(
        help="Jetson: measure every point in each of these nvpmodel power modes (ids or names, comma separated, or "
             "all): switched with `nvpmodel -m`, checked, clocks left to settle, a new idle baseline; a mode that "
             "needs a reboot is skipped with its reason. The board's own mode is put back at the end (and, after a "
             "crash, at the next start). Needs root, or `install-service --allow-power-control`.",
        metavar="MODES")] = None,
    clocks: Annotated[Optional[str], typer.Option(
        help="Jetson: dvfs (clocks scale within the mode's caps), locked (pinned at them by jetson_clocks) or "
             "dvfs,locked: each point in each state. Results say which (conditions.clocks).",
        metavar="STATES")] = None,
    root: Annotated[Path, typer.Option(
        help="Read the board's files (/proc, /sys, /etc: facts, conditions, nvpmodel modes, clocks) under this "
             "root: a container that mounts the host's at another path.", metavar="DIR")] = Path("/"),
    power_source: Annotated[str, typer.Option(help="auto, none, ina3221[:ROOT], jtop, tegrastats, rapl[:ROOT], "
                                                   "estimate[:ROOT]. auto uses the best real sensor (in that order),"
                                                   " else a labelled estimate; `dnnagent power` tries one.")] = "auto",
    tdp_w: Annotated[Optional[float], typer.Option(help="TDP in watts for the estimate source.")] = None,
    require_measured: Annotated[bool, typer.Option(
        "--require-measured", help="Refuse an estimated power source, named or auto's last resort: energy is "
                                   "measured or not reported. (auto never estimates on a Jetson or for TensorRT.)")]
    = False,
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
    build_timeout: Annotated[str, typer.Option(help="A point whose engine build (or model load) takes longer fails "
                                                    "as a timeout; the sweep goes on (default: 30 min).")] = "1800s",
    hang_grace: Annotated[str, typer.Option(help="A point whose warm-up, window or idle baseline overruns its "
                                                 "limit by this much (a hung backend) fails as a timeout.")] = "60s",
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
    tls_ca: cli.TlsCaOption = None,
    tls_cert: cli.TlsCertOption = None,
    tls_key: cli.TlsKeyOption = None,
    username: cli.UsernameOption = None,
    password_file: cli.PasswordFileOption = None,
    outbox_dir: Annotated[Optional[Path], typer.Option(
        help="Where results wait on disk (one SQLite file per run) until the broker acknowledges them, so a broker "
             "outage loses nothing; what a run leaves there the next run with the same folder publishes "
             "alongside its own (default: ~/.local/state/dnnprof/run-outbox/BOARD).", metavar="DIR")] = None,
    flush_timeout: Annotated[str, typer.Option(
        help="How long the end of a run waits for the broker to acknowledge what is still in the outbox; what is "
             "left stays there for the next run.")] = f"{runbox.FLUSH_S:g}s",
    quiet: Annotated[bool, typer.Option("--quiet", "-q", help="No progress or table on the terminal.")] = False,
    as_json: Annotated[bool, typer.Option("--json", help="Print the results as a JSON list on stdout.")] = False,
) -> None:
    """Profile MODELS at each batch size and send one result per (model, batch).

    Example: [bold]dnnagent run models/ --batch 1,8 --broker 192.168.1.10[/bold]
    """
    # Everything that can be wrong with the input is checked before any profiling time is spent.
    batches = cli.parse_batches(batch)
    try:
        settings = profiler.Settings.with_limits(
            warmup_min_s=units.parse_time(warmup),
            warmup_max_s=units.parse_time(max_warmup) if max_warmup else None,
            window_min_s=units.parse_time(duration),
            window_max_s=units.parse_time(max_duration) if max_duration else None,
            min_iterations=min_iterations, min_power_samples=min_power_samples,
            latency_ci=cli.parse_fraction(latency_ci), power_ci=cli.parse_fraction(power_ci),
            unstable_cov=cli.parse_fraction(unstable_cov), idle_s=units.parse_time(idle),
            idle_max_age_s=units.parse_time(idle_max_age), build_timeout_s=units.parse_time(build_timeout),
            hang_grace_s=units.parse_time(hang_grace))
    except ValueError as exc:
        raise UserError(f"inconsistent measurement settings: {exc}") from None
    telemetry_hz = _parse_hz(telemetry_rate, "--telemetry-rate", zero_off=True)
    samples_hz = _parse_hz(telemetry_samples_hz, "--telemetry-samples-hz")
    board_id = topics.check_id(board) if board else board_facts.default_board_id()
    run_id = topics.check_id(run_id, "run id") if run_id else new_run_id()
    to_broker = broker is not None or output is None
    security = cli.broker_security(tls_ca, tls_cert, tls_key, username, password_file,
                                   no_broker=None if to_broker else "results go to --output only; add --broker "
                                                                    "HOST[:PORT] to publish them over TLS or a login")
    if outbox_dir is not None and not to_broker:
        raise UserError("--outbox-dir holds what waits for the broker: add --broker HOST[:PORT], or leave it out")
    flush_s = units.parse_time(flush_timeout)
    if not models and manifest is None:
        raise UserError("name the models to profile: ONNX files or directories, or --manifest FILE")
    files = [onnxfile.load(p) for p in onnxfile.collect(models or [])]
    if manifest is not None:
        from dnnprof.agent.models import manifest as manifest_mod

        files += manifest_mod.load(manifest)
    if calibration is not None and "int8" not in [p.strip().lower() for p in precision.split(",")]:
        raise UserError("--calibration calibrates int8 engines: add int8 to --precision, or leave it out")
    if accuracy_limit is not None and accuracy_set is None:
        raise UserError("--accuracy-limit takes a subset of --accuracy-set: add --accuracy-set DIR, or leave it out")
    book = accuracy_book(accuracy_set, limit=accuracy_limit, seed=seed)
    resolve(backend)  # an unknown backend is said before its options are read
    choice = BackendChoice(backend, threads=threads, engine_cache=engine_cache, dla_core=dla_core,
                           calibration=calibration, rebuild=rebuild_engines, precision_method=precision_method,
                           workspace_bytes=_parse_size(workspace, "--workspace") if workspace is not None else None)
    choice = choice.caching_engines(DEFAULT_ENGINE_CACHE.expanduser())
    engine_status = _EngineStatus()
    engine = choice.open(on_status=None if quiet else engine_status)
    control = modes.Control(root, state_file=runbox.state_home() / "power-restore.json")
    restored = control.restore()  # a run that died switched: put the board back before anything else
    setups = power_setups(control, power_mode, clocks)
    selection = open_source(power_source, tdp_w=tdp_w, jetson=jetson.is_jetson(root), gpu=engine.device != "cpu",
                            require_measured=require_measured)
    session = Session(board_id, engine, selection, settings, seed=seed, accuracy=book, root=str(root),
                      control=control)
    precisions = _precisions(precision, engine.name if dla_core is None else f"{engine.name} on DLA core {dla_core}",
                             engine)
    sweep = session.sweep(run_id, files, batches, precisions, setups=setups)
    source = session.power
    session_ms = int(time.time() * 1000)
    sinks: list[Sink] = []
    if output is not None:
        sinks.append(JsonlSink(output))
    link = box = None
    if to_broker:
        try:
            box = runbox.RunOutbox(outbox_dir or runbox.default_dir(board_id), run_id, flush_s=flush_s)
            link = box.connect(lambda on_ack: MqttLink(broker or f"127.0.0.1:{topics.DEFAULT_PORT}", board_id,
                                                       session=session_ms, on_ack=on_ack, **security))
        except BaseException:
            session.close()  # a tegrastats child or a jtop client must not outlive a failed start
            raise
        sinks.append(box)
    # Only now, with every input (the broker included) known good: an error stays the one line on stderr.
    if not quiet:
        for note in selection.info:
            err.print(f"[dim]power: {note}[/]")
        for note in selection.notes:
            err.print(f"[yellow]power:[/] {note}")
        if source.measures:
            flag = " [bold yellow]ESTIMATED[/]" if source.estimated else ""
            err.print(f"power: {source.name} ({source.boundary}){flag}{' — ' + source.method if source.method else ''}")
        if link is not None:
            live = f", telemetry {telemetry_hz:g}/s" if telemetry_hz > 0 else ""
            secure = (" over TLS" if security["tls"] else "") + (f" as {username}" if username else "")
            err.print(f"broker: {link.host}:{link.port}{secure} as board {board_id!r}, run {run_id}{live}")
            if username and username != board_id:
                err.print(f"[yellow]broker:[/] logged in as {username!r} but publishing as board {board_id!r}: a "
                          "broker whose ACL lets each user publish only as its own board (the example one) "
                          f"acknowledges and drops what it refuses — give --board {username} if that is the board")
            if box.waiting:
                err.print(f"outbox: {box.waiting} messages earlier runs left unacknowledged in {box.directory} are "
                          "published with this run's" + (f" (runs closed as aborted: {', '.join(box.aborted)})"
                                                         if box.aborted else ""))
        if restored:
            err.print(f"[yellow]power:[/] {restored}, as an earlier run that did not finish had left it changed")
        if setups:
            err.print("power: measuring in " + "; ".join(s.label() for s in setups) + " (put back at the end)")
        fallback = auto_note(backend)
        err.print(f"backend: {engine.name} {engine.version}" + (f" — [yellow]{fallback}[/]" if fallback else ""))
    sink = _Tee(sinks)
    for message in session.birth(session_ms, stream=box.box.mark() if box is not None else None):
        sink.send(message)
    if box is not None:
        box.start()
    results: list[schema.Result] = []
    # Live telemetry goes to the broker only (the JSONL file is for results), for as long as the sweep runs.
    previous_term = signal.signal(signal.SIGTERM, _interrupt) if setups else None  # so the board is put back
    try:
        with session.live(link, rate_hz=telemetry_hz, samples_hz=samples_hz,
                          mark=box.box.mark if box is not None else None):
            if quiet:
                results = sweep.run(sink)
            else:
                with Progress(TextColumn("{task.description}"), BarColumn(), MofNCompleteColumn(),
                              TimeElapsedColumn(), TimeRemainingColumn(), console=err, transient=True) as progress:
                    task = progress.add_task("profiling", total=sweep.points)
                    engine_status.progress, engine_status.task = progress, task
                    if book is not None:
                        book.on_progress = lambda what, d, t: progress.update(
                            task, description=f"{what} {d}/{t}" if d < t else "profiling")

                    def done(r: schema.Result) -> None:
                        progress.console.print(_result_line(r))
                        progress.advance(task)

                    def failed(f: schema.Failure) -> None:
                        progress.console.print(_failure_line(f), soft_wrap=True)
                        progress.advance(task)

                    results = sweep.run(sink, on_point=done, on_failure=failed)
    finally:
        if previous_term is not None:
            signal.signal(signal.SIGTERM, previous_term)
        session.close()  # a tegrastats child or a jtop client must not outlive the sweep
        sink.close()
    failures = sweep.failures
    if as_json:  # the results are safe (on the broker, or in the outbox): printed whatever is said next
        print(json.dumps([schema.to_builtins(m) for m in [*results, *failures]], indent=2))
    if box is not None and box.unsent:
        raise UserError(f"{box.unsent} messages were not acknowledged by the broker within {box.flush_s:g} s; "
                        f"they stay in {box.directory} and the next `dnnagent run` of this board publishes them",
                        exit_code=1)
    if failures and not results:
        kinds = ", ".join(sorted({f.error for f in failures}))
        raise UserError(f"every point failed ({len(failures)}: {kinds}): nothing was measured; the reasons are "
                        "above" + (" and in --json" if as_json else ""), exit_code=1)
    if not as_json and not quiet:
        failed = f", {len(failures)} failed points (published as failures: `dnnhost report` lists them)" \
            if failures else ""
        err.print(f"{len(results)} results{failed}" + (f" written to {output}" if output else "") + ".")
        if any(r.provenance.estimated for r in results):
            err.print("~ estimated: energy and power come from a model of CPU power, not a sensor.")

