"""``dnnagent serve``: the agent as a long-running service, what ``systemd/dnnprof-agent.service`` runs.

It connects to the broker (TLS and a password where configured), announces itself (retained ``online`` status and
board info; the last will says ``lost``), tells systemd it is ready (Type=notify), publishes live telemetry, runs
the configured sweep — skipping every point the ledger says was already measured for the same engine and
conditions, unless ``redo`` is set — and then stays online publishing telemetry until SIGTERM. On SIGTERM it
stops at the next point boundary (a second signal stops at once), publishes a retained ``offline`` and disconnects.

Every result and run event is written to the outbox (``outbox``, SQLite in the state directory) before it is
published, and leaves it only on the broker's PUBACK; what is left when the agent stops — or is killed — is
published at the next start. A sweep found interrupted at a start (killed, crashed, powered off) gets an ``aborted``
event, and the new run measures the points left. The agent answers the host's commands on its command topic
(``commands``): ``replay`` publishes again what the host is missing; ``measure`` (one point) and ``sweep_start``
queue a run in the outbox, run after the configured sweep (``runs``), resumed by the next start if a stop or kill
interrupts it; ``sweep_cancel`` stops a run after its current point; ``sweep_status`` says what runs and waits.
Logs go to stderr, one line per event (journald keeps them); no secret is ever logged.

Exit statuses: 0 after a stop; ``EX_CONFIG`` (78) for whatever is wrong before connecting — the config, a model,
the backend, the power source, the state directory, the ledger — which a restart cannot fix, so the unit does not
restart it (``RestartPreventExitStatus=78``); ``EX_UNAVAILABLE`` (69) when the broker cannot be reached (or jtop's
service is not up yet), which systemd restarts after ``RestartSec``. ``check`` (``serve --check``) runs the same
preparation as a start, so a config it passes does not exit 78 at the start.
"""

from __future__ import annotations

import contextlib
import dataclasses
import functools
import logging
import os
import threading
import time
import uuid
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from pathlib import Path

from dnnprof.agent.backends import Backend, auto_note
from dnnprof.agent.board import clocks, jetson, modes
from dnnprof.agent.board import facts as board
from dnnprof.agent.measure.sweep import Interrupted, Sweep, new_run_id
from dnnprof.shared import onnxfile
from dnnprof.shared.onnxfile import ModelFile
from dnnprof.agent.power import NO_POWER, NoPower, PowerSource, Selection, open_live, parse_spec
from dnnprof.agent.publish.link import MqttLink
from dnnprof.agent.service import commands, ledger, outbox, runs
from dnnprof.agent.service.config import EX_CONFIG, AgentConfig
from dnnprof.agent.service.ledger import Ledger, PointKey
from dnnprof.agent.service.outbox import Courier, Outbox, OutboxFull
from dnnprof.agent.service.systemd import Notifier
from dnnprof.agent.measure.accuracy import Book
from dnnprof.agent.session import BackendChoice, Session, accuracy_book, power_setups, unsupported_precision
from dnnprof.shared import schema
from dnnprof.shared.errors import UserError

log = logging.getLogger(__name__)

EX_UNAVAILABLE = 69  # sysexits.h: a service this one needs (the broker) is not there; systemd restarts the agent
__all__ = ["EX_CONFIG", "EX_UNAVAILABLE", "serve", "check", "prepare", "Prepared", "Summary"]

CLOSE_FLUSH_S = 10.0  # how long the stop waits for the outbox to drain (what is left is published at the next start)


class Stopped(Interrupted):
    """The service was asked to stop; raised at a point boundary to end the sweep there (an ``aborted`` event)."""


# --- the service -------------------------------------------------------------------------------------------------


@dataclass
class Summary:
    """What one ``serve`` did."""

    run_id: str
    session: int
    measured: int = 0
    skipped: int = 0
    failed_points: int = 0  # points that failed (published as failures; the sweep went on)
    failed: str | None = None  # why the sweep ended early (an error; a stop is not a failure)
    stopped_early: bool = False  # asked to stop before the sweep finished
    outbox_sent: int = 0  # messages an earlier start left undelivered in the outbox, published again at this one
    unsent: int = 0  # messages still undelivered in the outbox at the end (published at the next start)
    from_memory: int = 0  # results the full outbox could not keep, published from memory only
    aborted_runs: list[str] = field(default_factory=list)  # runs an earlier start left half-done, marked aborted
    crashed: int = 0  # points an earlier process died during, recorded as crashed failures
    commands: int = 0  # commands carried out (replays, measures)
    refused: int = 0  # commands refused
    skip_reasons: list[str] = field(default_factory=list)

    @property
    def points(self) -> int:
        """Points gone through: measured, skipped or failed."""
        return self.measured + self.skipped + self.failed_points


class _Points:
    """The ledger side of the sweep: which points to skip, and which results to record once they are safe."""

    def __init__(self, config: AgentConfig, ledger: Ledger, backend: Backend, power: PowerSource | None,
                 stop: threading.Event, root: str, accuracy: Book | None = None) -> None:
        self.config, self.ledger, self.backend, self.stop, self.root = config, ledger, backend, stop, root
        self.accuracy = accuracy
        self.power = NO_POWER if power is None else power
        self.jetson = jetson.is_jetson(root)  # as the sweep decides it (its board facts are None off a Jetson)
        self._keys: dict[tuple[str, int, str], PointKey] = {}  # (sha256, batch, precision) -> key when planned
        self._pending: dict[str, PointKey] = {}  # result id -> key, until the broker acknowledges it
        self._lock = threading.Lock()

    def key(self, model: ModelFile, batch: int, precision: str) -> PointKey:
        """The point's key in the words its result will use: device, calibration, power source, clock state."""
        backend, power = self.backend, self.power
        if precision == "int8":
            # The image set's hash, as the engine cache keys the engine: new images in the same folder are new.
            images = getattr(backend, "calibration_sha256", None)
            calibration = f"images:{images}" if images else "random"
        else:
            calibration = ""
        state = clocks.clock_state(self.root, jetson=self.jetson)  # read now: what the point would run under
        method = backend.precision_method(precision)
        book = self.accuracy
        measured = book is not None and not (precision == "int8" and calibration == "random")  # timing only
        return PointKey(route=method if method == "onnx_converted" else "",
                        accuracy=book.images.sha256 if measured else "",
                        model_sha256=model.sha256, batch=batch, precision=precision, backend=backend.name,
                        backend_version=backend.version,
                        device=backend.device, threads=getattr(backend, "threads", None),
                        calibration=calibration,
                        power_source=power.name or NoPower.spec, power_boundary=power.boundary or "",
                        power_mode=state.power_mode or schema.NO_POWER_MODE, power_mode_id=state.power_mode_id,
                        clocks=state.clocks or "unknown", governor=state.governor or "unknown")

    def skip(self, model: ModelFile, batch: int, precision: str, *, run_id: str, redo: bool = False,
             retry_failed: bool = False, check: Callable[[], None] | None = None) -> str | None:
        """Called by the sweep before each point: why to skip it, or None to measure it (always with ``redo``: a
        host asked for it; a point that failed before only with ``retry_failed`` or the config's); raises
        Stopped, or what ``check`` raises (a host's cancel)."""
        if self.stop.is_set():
            raise Stopped("the service is stopping; the next start measures the points left")
        if check is not None:
            check()
        key = self.key(model, batch, precision)  # read now: the power mode and clocks the point would run in
        with self._lock:
            self._keys[(model.sha256, batch, precision)] = key
        entry = self.ledger.get(key)
        if entry is None or self.config.redo or redo:
            self.ledger.attempting(key, model.name, run_id)
            return None
        when = time.strftime("%Y-%m-%d %H:%M", time.localtime(entry.measured_ts))
        if entry.outcome == "failed":
            if self.config.retry_failed or retry_failed:
                self.ledger.attempting(key, model.name, run_id)
                return None
            return (f"failed {when} in run {entry.run_id} ({entry.error}: {entry.message}); retry_failed = true in "
                    "[sweep] or `dnnagent serve --retry-failed` tries it again")
        return (f"already measured {when} in run {entry.run_id} (result {entry.result_id[:8]}, {entry.persisted}); "
                "redo = true in [sweep] measures it again")

    def written(self, message: schema.Result | schema.Failure) -> None:
        """A result or failure is in the outbox: safe (published now, or at the next start), so the point is
        measured, or known to fail (unless the failure says nothing about the point: ``ledger.remembered``)."""
        with self._lock:
            key = self._keys.get((message.model_sha256, message.batch, message.precision))
        if key is None:
            return
        if not (isinstance(message, schema.Failure) and not ledger.remembered(message)):
            self.ledger.record(key, message, "outbox")
        self.ledger.attempted(key)

    def delivered(self, messages: list[schema.Message]) -> None:
        """The courier's on_delivered: the broker has these."""
        for message in messages:
            if isinstance(message, schema.Result):
                self.ledger.acknowledged(message.id)


class _SweepSink:
    """The sweep's sink: results and run events into the outbox (on disk before they are published), telemetry
    straight to the link. With the outbox full, a message goes to the broker from memory only — said in the log —
    and a result sent so raises OutboxFull to end the sweep: nothing more is measured that could not be kept."""

    def __init__(self, link: MqttLink, outbox: Outbox, courier: Courier, points: _Points, summary: Summary) -> None:
        self.link, self.outbox, self.courier, self.points, self.summary = link, outbox, courier, points, summary
        self.full: OutboxFull | None = None

    def send(self, message: schema.Message) -> None:
        if not isinstance(message, schema.DURABLE):
            self.link.send(message)
            return
        first = self.full is None
        if first:
            try:
                written = self.outbox.put(message)
            except OutboxFull as exc:
                self.full = exc
                log.error("%s", exc)
            else:
                if isinstance(written, (schema.Result, schema.Failure)):
                    self.points.written(written)
                if isinstance(written, schema.Result):
                    self.summary.measured += 1  # here, not in the sweep's callback: a failure right after still counts
                elif isinstance(written, schema.Failure):
                    self.summary.failed_points += 1
                self.courier.wake()
                return
        log.warning("outbox full: %s %s sent from memory only (lost if the broker does not acknowledge it before "
                    "the agent stops)", schema.KIND_OF[type(message)], getattr(message, "id", message.run_id))
        self.link.send(message)
        if isinstance(message, schema.Result):
            self.summary.measured += 1
            self.summary.from_memory += 1
        if first or isinstance(message, schema.Result):
            raise self.full  # the sweep ends here: whatever it measured next could not be kept either

    def close(self) -> list[schema.Message]:
        return []  # the link is closed by serve()


class _Presence(threading.Thread):
    """After a reconnection the broker has published the last will (``lost``) and, if it restarted, may have lost
    the retained info: announce the agent again."""

    def __init__(self, link: MqttLink, birth: Callable[[], list[schema.Message]]) -> None:
        super().__init__(name="presence", daemon=True)
        self.link, self.birth = link, birth
        self.done = threading.Event()

    def run(self) -> None:
        while not self.done.is_set():
            if self.link.reconnected.wait(0.5):
                self.link.reconnected.clear()
                log.info("reconnected to the broker: publishing the birth again")
                try:
                    for message in self.birth():
                        self.link.send(message)
                except Exception as exc:  # the link may be going down again: the next reconnection retries
                    log.warning("birth after reconnection not sent: %s", exc)

    def stop(self) -> None:
        self.done.set()
        if self.is_alive():
            self.join()


def _connect(config: AgentConfig, session: int, on_ack, on_command) -> MqttLink:
    b = config.broker
    hint = (f"check [broker] host and port in {config.path} and that the broker runs (`dnnhost collect` runs one); "
            "under systemd the agent is started again after RestartSec")
    try:
        return MqttLink(b.address, config.board_id, session=session, keepalive_s=b.keepalive_s,
                        tls=b.tls.context() if b.tls else None,
                        username=b.username, password=b.password, on_ack=on_ack, on_command=on_command,
                        unreachable_hint=hint)
    except UserError as exc:  # restartable: the broker may come (back) later
        raise UserError(str(exc), exit_code=EX_UNAVAILABLE) from None


@dataclass
class Prepared:
    """What a start needs before it connects, each part checked: the models and the session (the backend and the
    power source, opened)."""

    models: list[ModelFile]
    session: Session
    setups: list[modes.Setting] = dataclasses.field(default_factory=list)  # power modes x clocks ([]: as found)

    @property
    def backend(self) -> Backend:
        return self.session.backend

    @property
    def power(self) -> Selection:
        """The power source chosen (``.source`` None for no energy) and why other sources were not taken."""
        return self.session.selection

    def close(self) -> None:
        """Close the power source (a tegrastats child or a jtop client must not outlive the check)."""
        self.session.close()


@contextlib.contextmanager
def _start_errors() -> Iterator[None]:
    """A UserError raised inside is a start error a restart cannot fix: exit status EX_CONFIG, unless it carries a
    status of its own (EX_UNAVAILABLE for something that may come up later)."""
    try:
        yield
    except UserError as exc:
        if exc.exit_code != UserError.exit_code:
            raise
        raise UserError(str(exc), exit_code=EX_CONFIG) from None


def _writable(config: AgentConfig, directory: Path) -> None:
    """What ``mkdir -p directory`` would hit, found without creating anything: the nearest existing ancestor must
    be a directory this user can write into."""
    existing = directory
    while not existing.exists() and existing != existing.parent:
        existing = existing.parent
    if existing.is_dir() and os.access(existing, os.W_OK | os.X_OK):
        return
    raise UserError(f"{config.path}: [agent] state_dir: cannot write {directory} ({existing} is not a writable "
                    "directory for this user): under the systemd unit only /var/lib/dnnprof (StateDirectory) is "
                    "writable; leave state_dir at its default there")


def prepare(config: AgentConfig, *, root: str = "/", on_status: Callable[[str], None] | None = None,
            create: bool = True) -> Prepared:
    """Everything a start does before it connects: the state directory (created, or with ``create=False`` only
    checked), the ledger's format, the models and their batch sizes, the backend with its options and precisions,
    and the power source, opened. Raises UserError (exit status EX_CONFIG, or EX_UNAVAILABLE for a jtop service
    that is not up yet) for the first thing that is wrong; the caller closes what it returns."""
    with _start_errors():
        dirs = (config.state_dir, config.engine_cache, config.outbox_dir)
        if create:
            try:
                for d in dirs:
                    d.mkdir(parents=True, exist_ok=True)
            except OSError as exc:
                raise UserError(f"{config.path}: [agent] state_dir: cannot write {config.state_dir} "
                                f"({exc.strerror or exc}): under the systemd unit only /var/lib/dnnprof "
                                "(StateDirectory) is writable; leave state_dir at its default there") from None
        else:
            for d in dirs:
                _writable(config, d)
        ledger.check(config.ledger_path)
        outbox.check(config.outbox_path)
        models = []
        for path in config.models:
            try:
                models.append(onnxfile.load(path))
            except UserError as exc:
                raise UserError(f"{config.path}: [sweep] models: {exc}") from None
        for model in models:  # what the sweep checks first, here before the broker sees the agent
            for batch in config.batch_sizes:
                try:
                    model.check_batch(batch)
                except UserError as exc:
                    raise UserError(f"{config.path}: [sweep] batch_sizes: {exc}") from None
        # A check builds no engine, so it keeps none: the cache directory is only checked to be writable above.
        backend = _backend(config, on_status, root, engine_cache=config.engine_cache if create else None)
        if (p := unsupported_precision(config.precisions, backend)) is not None:
            raise UserError(f"{config.path}: [sweep] precisions: backend {backend.name} runs "
                            f"{', '.join(backend.precisions)}, not {p!r}: remove it or choose another backend")
        try:
            book = accuracy_book(config.accuracy_set, limit=config.accuracy_limit, seed=config.seed,
                                 cache=config.state_dir / "tensors")
        except UserError as exc:
            raise UserError(f"{config.path}: [sweep] accuracy_set: {exc}") from None
        for model in models if book is not None else ():  # the sweep checks it too: here, before the broker
            try:
                model.pipeline().check_shape(model.input_shape, f"{model.name}")
            except UserError as exc:
                raise UserError(f"{config.path}: [sweep] accuracy_set: {exc}") from None
        control = modes.Control(root, state_file=config.power_state_path)
        setups = power_setups(control, config.power_modes, config.clocks,
                              where_modes=f"{config.path}: [sweep] power_modes",
                              where_clocks=f"{config.path}: [sweep] clocks")
        return Prepared(models, Session(config.board_id, backend, _power(config, backend, root), config.settings,
                                        seed=config.seed,
                                        root=root, accuracy=book, control=control), setups)


def _power(config: AgentConfig, backend: Backend, root: str) -> Selection:
    """The configured power source, opened (``open_live``: the source the sweep will sample); ``auto`` never
    estimates on a Jetson or for a GPU backend, and ``require_measured`` never at all."""
    try:
        return open_live(config.power_source, tdp_w=config.tdp_w, jetson=jetson.is_jetson(root),
                         gpu=backend.device != "cpu", require_measured=config.require_measured)
    except UserError as exc:
        if parse_spec(config.power_source)[0] == "jtop":
            # jtop.service is ordered after multi-user.target, so at boot it may start after the agent: restartable.
            raise UserError(f"{config.path}: [power] source: {exc} (at boot jtop.service may start after the agent, "
                            "which is then started again after RestartSec)", exit_code=EX_UNAVAILABLE) from None
        raise UserError(f"{config.path}: [power] source: {exc}") from None


def check(config: AgentConfig, *, root: str = "/") -> Prepared:
    """``serve --check``: the preparation of a start (``prepare``), creating nothing, then everything closed again.
    Returns what was found (closed: for its names and notes only)."""
    prepared = prepare(config, root=root, create=False)
    prepared.close()
    return prepared


def serve(config: AgentConfig, *, stop: threading.Event | None = None,
          notify: Callable[..., bool] | None = None, root: str = "/") -> Summary:
    """Run the agent service until ``stop`` is set (the CLI sets it on SIGTERM/SIGINT); returns what it did.

    ``notify`` receives sd_notify assignments (default: ``Notifier.from_environ()``); ``root`` is the filesystem
    root the board readers look under. Everything that can be wrong with the configuration raises UserError
    (exit status EX_CONFIG) before the agent connects; an unreachable broker raises one with EX_UNAVAILABLE.
    """
    stop = stop or threading.Event()
    notify = notify or Notifier.from_environ()

    def on_status(text: str) -> None:
        log.info("%s", text)
        notify(f"STATUS={text}")

    # Inputs first: a bad model, backend or power source is one line in the journal, before the broker sees the
    # agent. Closed last, whatever happens: the outbox, the ledger and the power source.
    with contextlib.ExitStack() as held:
        ready = prepare(config, root=root, on_status=on_status)
        held.callback(ready.close)
        models, session = ready.models, ready.session
        engine, power = session.backend, session.power
        for note in ready.power.notes:
            log.warning("power: %s", note)
        for line in ready.power.info:
            log.info("power: %s", line)
        if fallback := auto_note(config.backend):
            log.warning("backend: %s", fallback)
        if restored := session.control.restore():  # a start after a crash mid-sweep: the board as it was found
            log.warning("power: %s, as a sweep that did not finish had left it changed", restored)
        with _start_errors():
            book = Ledger(config.ledger_path)
            held.callback(book.close)
            held.callback(book.clear_attempts)  # any exit that runs this stopped its point on purpose
            box = Outbox(config.outbox_path, max_bytes=config.outbox_max_mb << 20, retain=config.outbox_retain)
            held.callback(box.close)
        summary = Summary(run_id=new_run_id(), session=int(time.time() * 1000))
        # Before anything is published: what an older agent left in JSONL files, and runs a kill left half-done.
        outbox.migrate_jsonl(config.outbox_dir, box)
        summary.aborted_runs = outbox.abort_unfinished(box, summary.run_id)
        summary.crashed = _died_during(book, box, config.board_id, summary.run_id)
        summary.outbox_sent = box.counts()[0]
        points = _Points(config, book, engine, power, stop, root, accuracy=session.accuracy)
        sweep = session.sweep(summary.run_id, models, config.batch_sizes, config.precisions,
                              skip=lambda m, b, p: points.skip(m, b, p, run_id=summary.run_id, check=conductor.check),
                              setups=ready.setups)
        b = config.broker
        log.info("dnnprof agent %s, board %s, run %s: %d models x %d batch sizes x %d precisions = %d points on %s %s; "
                 "power %s; state in %s", board.agent_version(), config.board_id, summary.run_id, len(models),
                 len(config.batch_sizes), len(config.precisions), sweep.points, engine.name, engine.version,
                 session.power_words(), config.state_dir)
        if summary.outbox_sent:
            log.info("outbox: %d messages an earlier start left undelivered are published first", summary.outbox_sent)
        log.info("connecting to the MQTT broker at %s%s%s", b.address, " over TLS" if b.tls else "",
                 f" as {b.username}" if b.username else "")
        notify(f"STATUS=connecting to the MQTT broker at {b.address}")
        conductor = runs.Conductor(box, lambda: clocks.clock_state(root, jetson=points.jetson).power_mode)
        desk = commands.Desk(config, engine, summary, conductor)
        link = _connect(config, summary.session, lambda m: courier.acknowledged(m), desk.receive)
        courier = Courier(box, link, on_delivered=points.delivered)
        desk.attach(link, courier)
        sink = _SweepSink(link, box, courier, points, summary)
        conductor.publish = sink.send

        def birth() -> list[schema.Message]:
            return session.birth(summary.session, stream=box.mark())

        presence = _Presence(link, birth)
        feed = session.telemetry(link, rate_hz=config.telemetry_rate_hz, samples_hz=config.telemetry_samples_hz,
                                 mark=box.mark)
        try:
            for message in birth():
                link.send(message)
            log.info("online as %s (session %d)", config.board_id, summary.session)
            notify("READY=1", f"STATUS=online at {b.address}; {sweep.points} points to go through")
            courier.start()
            desk.start()
            presence.start()
            if feed is not None:
                feed.start()
            if not stop.is_set():
                conductor.begin(sweep)
                try:
                    _run_sweep(sweep, sink, summary, notify)
                finally:
                    conductor.end()
            else:
                summary.stopped_early = True
            if not stop.is_set():
                state = f"sweep failed: {summary.failed}" if summary.failed else "sweep done"
                counts = f"{summary.measured} measured, {summary.failed_points} failed, {summary.skipped} skipped"
                notify(f"STATUS={state}: {counts}; online, publishing telemetry")
                log.info("%s: %s; staying online until stopped", state, counts)
            _run_queue(conductor, desk, sink, points, summary, session, stop, notify)
        finally:
            notify("STOPPING=1", "STATUS=stopping: publishing offline")
            log.info("stopping: publishing offline and disconnecting")
            if feed is not None:
                feed.stop()
            presence.stop()
            desk.stop()
            deadline = time.monotonic() + CLOSE_FLUSH_S
            courier.drain(deadline)  # let the courier deliver what was written; what is left waits in the outbox
            courier.stop()
            link.close(max(0.5, deadline - time.monotonic()))
            summary.unsent = box.counts()[0]
            if summary.unsent:
                log.warning("%d messages not yet acknowledged by the broker stay in the outbox %s: published at the "
                            "next start", summary.unsent, box.path)
            log.info("offline: %d measured, %d skipped this run", summary.measured, summary.skipped)
    return summary


# get_backend's options as the config spells them (``[sweep] KEY``): the ones agent.toml has.
_CONFIG_KEY = {"threads": "threads", "dla_core": "dla_core", "precision_method": "precision_method"}


def _backend(config: AgentConfig, on_status: Callable[[str], None] | None, root: str, *,
             engine_cache: Path | None) -> Backend:
    """The configured backend; an option that means nothing to it is named by its config key."""
    choice = BackendChoice(config.backend, threads=config.threads, dla_core=config.dla_core,
                           calibration=config.calibration_dir, cache_dir=config.state_dir,
                           precision_method=config.precision_method)
    if foreign := choice.foreign():
        key = _CONFIG_KEY[foreign[0]]
        if choice.resolved == "tensorrt":  # threads, the one onnxruntime option
            raise UserError(f"{config.path}: [sweep] {key}: only the onnxruntime backend takes a thread count; "
                            "remove the key (TensorRT runs on the GPU)")
        auto = " (auto chose onnxruntime: tensorrt or pycuda does not import here)" if config.backend == "auto" else ""
        raise UserError(f"{config.path}: [sweep] {key}: only the tensorrt backend uses it, and the backend is "
                        f"onnxruntime{auto}: remove the key or install TensorRT and pycuda")
    return choice.caching_engines(engine_cache).open(root=root, on_status=on_status)


def _died_during(book: Ledger, box: Outbox, board: str, run_id: str) -> int:
    """A point an earlier process began and never finished — it died during it — is tried again once; the second
    death in a row makes it a ``crashed`` failure, published (through the outbox) and remembered, so a point that
    kills the agent is not tried at every restart. Returns how many became failures."""
    crashed = 0
    for key, network, began, deaths in book.died_during():
        if deaths < ledger.CRASHES:
            log.warning("%s b=%d %s: the agent died during this point in run %s (killed, crashed or powered off); "
                        "it is tried again, and recorded as crashed if that happens again", network, key.batch,
                        key.precision, began)
            continue
        crashed += 1
        failure = schema.Failure(
            id=uuid.uuid4().hex, board=board, ts=time.time(), run_id=began, network=network,
            model_sha256=key.model_sha256, backend=key.backend, backend_version=key.backend_version, device=key.device,
            precision=key.precision, batch=key.batch,
            power_mode=None if key.power_mode == schema.NO_POWER_MODE else key.power_mode,
            clocks=None if key.clocks == "unknown" else key.clocks, error="crashed", stage="unknown",
            message=f"the agent died during this point {deaths} times in a row (found by run {run_id}): the kernel's "
                    "out-of-memory killer, a crash in the backend, a kill -9 or a power cut; retry_failed = true tries "
                    "it again")
        book.record(key, box.put(failure), "outbox")
        book.attempted(key)
        log.warning("%s b=%d %s: the agent died during this point %d times in a row, the last in run %s; recorded "
                    "as crashed (retry_failed = true in [sweep] tries it again)", network, key.batch, key.precision,
                    deaths, began)
    return crashed


def _run_sweep(sweep: Sweep, sink: _SweepSink, summary: Summary, notify: Callable[..., bool]) -> str:
    """Run ``sweep``, logging each point; returns how it ended: ``finished``, ``cancelled`` (a host's
    sweep_cancel), ``stopped`` (the service is stopping) or ``failed``."""
    total = sweep.points
    before = summary.points  # a run after the configured sweep counts from its own start

    def measured(r: schema.Result) -> None:  # summary.measured is counted by the sink, as the result is sent
        done = summary.points - before
        energy = r.energy_per_inference_j
        per_image = f", {energy.gross * 1e3:.3g} mJ/img{'~' if r.provenance.estimated else ''}" if energy else ""
        log.info("point %d/%d measured: %s b=%d %s: %.2f ms, %.1f img/s%s", done, total, r.network, r.batch,
                 r.precision, r.latency_ms.mean, r.throughput_ips, per_image)
        notify(f"STATUS=sweep {done}/{total}: measured {r.network} b={r.batch} {r.precision}")

    def failed(f: schema.Failure) -> None:  # summary.failed_points is counted by the sink
        done = summary.points - before
        log.warning("point %d/%d failed: %s b=%d %s: %s (%s): %s", done, total, f.network, f.batch, f.precision,
                    f.error, f.stage, f.message)
        notify(f"STATUS=sweep {done}/{total}: {f.network} b={f.batch} {f.precision} failed ({f.error})")

    def skipped(model: ModelFile, batch: int, precision: str, reason: str) -> None:
        summary.skipped += 1
        summary.skip_reasons.append(reason)
        done = summary.points - before
        log.info("point %d/%d skipped: %s b=%d %s: %s", done, total, model.name, batch, precision, reason)
        notify(f"STATUS=sweep {done}/{total}: skipped {model.name} b={batch} {precision} "
               f"({'failed before' if reason.startswith('failed') else 'already measured'})")

    notify(f"STATUS=sweep of {total} points starting")
    try:
        sweep.run(sink, on_point=measured, on_skip=skipped, on_failure=failed)
    except Stopped as exc:
        summary.stopped_early = True
        log.info("sweep stopped after %d of %d points: %s", summary.points - before, total, exc)
        return "stopped"
    except runs.Cancelled as exc:
        log.info("run %s %s", sweep.run_id, exc)
        return "cancelled"
    except Exception as exc:
        # The sweep already sent a "failed" run event. Staying online keeps telemetry going and avoids a restart
        # loop that would hit the same point again; the journal and systemctl status say what went wrong.
        summary.failed = str(exc).splitlines()[0] if isinstance(exc, UserError) else f"{type(exc).__name__}: {exc}"
        log.error("sweep failed: %s", summary.failed)
        log.debug("sweep failure", exc_info=True)
        return "failed"
    return "finished"


def _run_queue(conductor: runs.Conductor, desk: commands.Desk, sink: _SweepSink, points: _Points, summary: Summary,
               session: Session, stop: threading.Event, notify: Callable[..., bool]) -> None:
    """After the configured sweep, until stopped: each run a host queued (``measure``, ``sweep_start``), oldest
    first. A run a stop or a kill interrupted is resumed under a new run id (the old one was closed as aborted);
    the ledger skips what it measured."""
    while not stop.is_set():
        queued = conductor.next(0.25)
        if queued is None:
            continue
        sink.full = None  # a full outbox ended the sweep; the disk may have room again by now: try
        run_id, note = queued.run_id, None
        if queued.state == "running":  # the host keeps the id it was given: a cancel of it still reaches this run
            run_id, note = new_run_id(), f"resumes run {queued.run_id}"
        try:
            request = desk.request(queued.command)  # checked again: the models may have changed since
        except commands.Refused as exc:
            log.warning("run %s (command %s) cannot start: %s", run_id, queued.command_id, exc)
            conductor.outbox.run_state(queued.command_id, "done", note=f"not started: {exc}")
            try:
                sink.send(schema.RunEvent(board=desk.config.board_id, ts=time.time(), run_id=run_id, seq=0,
                                          event="failed", points_total=0, points_done=0,
                                          message=f"not started: {exc}"))
            except UserError as full:  # the outbox is full: the journal has it
                log.error("the run's failed event was not sent: %s", full)
            continue
        skip = functools.partial(points.skip, run_id=run_id, redo=request.redo, retry_failed=request.retry_failed,
                                 check=conductor.check)
        sweep = session.sweep(run_id, request.models, request.batches, request.precisions, skip=skip)
        if not conductor.start(queued, sweep, note):
            continue  # cancelled while it was being prepared
        log.info("run %s as a host asked (command %s%s): %s", run_id, queued.command_id,
                 f", {note}" if note else "", request.words)
        try:
            outcome = _run_sweep(sweep, sink, summary, notify)
        finally:
            conductor.end()
        if outcome != "stopped":  # stopped: still "running" in the outbox, resumed at the next start
            conductor.outbox.run_state(queued.command_id, "cancelled" if outcome == "cancelled" else "done")
