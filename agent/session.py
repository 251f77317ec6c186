"""The one place that wires a measurement session, for ``dnnagent run`` (CLI options) and ``dnnagent serve`` (an
``AgentConfig``) alike: the backend with its options, the power source (wrapped so the sweep and telemetry share
it, or ``NO_POWER``, which says "no energy"), the board info and birth message, the live telemetry feed, and
the ``Sweep`` itself. Each front end only says how its inputs are spelled in errors (``--threads`` or
``FILE: [sweep] threads``).
"""

from __future__ import annotations

import contextlib
import dataclasses
import functools
import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

from dnnprof.agent.backends import Backend, foreign_options, get_backend, resolve
from dnnprof.agent.board import facts, jetson, modes
from dnnprof.agent.measure import failure, profiler
from dnnprof.agent.measure.accuracy import Book
from dnnprof.agent.measure.sink import Sink
from dnnprof.agent.measure.sweep import Sweep
from dnnprof.shared.onnxfile import ModelFile
from dnnprof.agent.power import PowerSource, Selection
from dnnprof.agent.publish import telemetry
from dnnprof.shared import schema
from dnnprof.shared.errors import UserError

DEFAULT_ENGINE_CACHE = Path("~/.cache/dnnprof/engines")  # `run`'s; the service keeps its engines in its state dir


@dataclass(frozen=True)
class BackendChoice:
    """The backend asked for and its options; an option the chosen backend does not take is an error
    (``backends.foreign_options`` says which), never dropped."""

    name: str = "auto"
    threads: int | None = None  # onnxruntime
    engine_cache: Path | None = None  # tensorrt, from here on
    dla_core: int | None = None
    calibration: Path | None = None
    rebuild: bool = False
    workspace_bytes: int | None = None
    cache_dir: Path | None = None  # converted models and decoded images (None: ~/.cache/dnnprof)
    precision_method: str | None = None  # tensorrt: auto, builder_flags, onnx_converted

    @functools.cached_property
    def resolved(self) -> str:
        """``onnxruntime`` or ``tensorrt``: what ``auto`` stands for here (found once: ``auto`` tries imports)."""
        return resolve(self.name)

    def caching_engines(self, default: Path | None) -> BackendChoice:
        """This choice with ``default`` as the engine cache where the backend is TensorRT and none was given (an
        engine cache means nothing to ONNX Runtime, so it is not added there)."""
        if self.resolved != "tensorrt" or self.engine_cache is not None or default is None:
            return self
        return dataclasses.replace(self, engine_cache=default)

    def foreign(self) -> list[str]:
        """The options given that the resolved backend does not take (``get_backend``'s keyword names)."""
        return foreign_options(self.resolved, threads=self.threads, engine_cache=self.engine_cache,
                               dla_core=self.dla_core, rebuild=self.rebuild,
                               workspace_bytes=self.workspace_bytes, precision_method=self.precision_method)

    def open(self, *, root: str | Path = "/", on_status: Callable[[str], None] | None = None) -> Backend:
        """The backend; on TensorRT the L4T release under ``root`` is part of the engine-cache key."""
        platform = jetson.l4t(root) if self.resolved == "tensorrt" else None  # None off a Jetson
        return get_backend(self.name, threads=self.threads, engine_cache=self.engine_cache, dla_core=self.dla_core,
                           calibration=self.calibration, rebuild=self.rebuild, workspace_bytes=self.workspace_bytes,
                           on_status=on_status, platform=platform, cache_dir=self.cache_dir,
                           precision_method=self.precision_method)


def accuracy_book(folder: Path | None, *, limit: int | None = None, seed: int = 0,
                  cache: Path | None = None) -> Book | None:
    """The accuracy set of ``folder`` (read and hashed now, so a bad folder fails before any profiling), or None
    without one; ``cache``: where its decoded tensors are kept (None: ~/.cache/dnnprof/tensors)."""
    if folder is None:
        return None
    from dnnprof.agent.models import images

    return Book(images.labelled(folder, limit=limit, seed=seed), cache=cache)


def power_setups(control: modes.Control, power_modes: str | list | None, clock_states: str | list | None, *,
                 where_modes: str = "--power-mode", where_clocks: str = "--clocks") -> list[modes.Setting]:
    """The (mode, clocks) settings a sweep measures in, every mode with every clock state, checked against the
    board (UserError naming ``where_*``) and against this process's right to switch them (one line saying how to
    enable it); ``[]``: neither asked, nothing is switched."""
    chosen = control.resolve(power_modes, where_modes)
    states = modes.parse_clocks(clock_states, where_clocks)
    if not chosen and not states:
        return []
    if states and control.conf is None:
        raise UserError(f"{where_clocks}: locking clocks is jetson_clocks' (a Jetson's); leave the option out")
    setups = [modes.Setting(m, c) for m in (chosen or [None]) for c in (states or [None])]
    control.check_allowed(setups)
    return setups


def unsupported_precision(precisions: list[str], backend: Backend) -> str | None:
    """The first of ``precisions`` the backend does not run, or None."""
    return next((p for p in precisions if p not in backend.precisions), None)


class Session:
    """What one agent process measures with: ``board_id``, the open ``backend``, the power source and the
    measurement settings. Board info, the birth message, sweeps and telemetry are made here, the same way for
    ``run`` and ``serve``. ``close()`` closes the power source (a tegrastats child or a jtop client must not outlive
    the session)."""

    def __init__(self, board_id: str, backend: Backend, selection: Selection, settings: profiler.Settings, *,
                 seed: int = 0, root: str = "/", accuracy: Book | None = None,
                 control: modes.Control | None = None) -> None:
        self.board_id, self.backend, self.selection, self.settings = board_id, backend, selection, settings
        self.seed, self.root = seed, root
        self.accuracy = accuracy  # one book per session: an engine's accuracy is measured once, whichever sweep
        self.control = control  # switches power modes and clocks for sweeps that ask (None: never switched)
        self.guard = failure.Guard()  # a point given up on: every sweep of this backend waits for it
        source = selection.power
        # The sweep's sampler and the telemetry thread read the same sensor: one lock for both.
        self.power: PowerSource = telemetry.SharedSource(source) if source.measures else source

    def power_words(self) -> str:
        """The power source in a log line: ``ina3221 (input_rail)``, ``estimate (ESTIMATED)``, ``none (no energy)``."""
        p = self.power
        if not p.measures:
            return "none (no energy)"
        return p.name + (" (ESTIMATED)" if p.estimated else "")

    def board_info(self, session: int) -> schema.BoardInfo:
        """The retained board facts: machine, backend, power source and its boundary."""
        p = self.power
        return facts.info(self.board_id, backends={self.backend.name: self.backend.version}, power_source=p.name,
                          power_boundary=p.boundary, power_estimated=p.estimated, session=session, root=self.root)

    def birth(self, session: int, stream: schema.Stream | None = None) -> list[schema.Message]:
        """What announces the board: the ``online`` status, then its info."""
        online = schema.Status(board=self.board_id, ts=time.time(), state="online", session=session, stream=stream)
        return [online, self.board_info(session)]

    def sweep(self, run_id: str, models: list[ModelFile], batches: list[int], precisions: list[str], *,
              skip: Callable[[ModelFile, int, str], str | None] | None = None,
              setups: list[modes.Setting] | None = None) -> Sweep:
        """A sweep of ``models`` x ``batches`` x ``precisions``, in each of ``setups`` (power mode and clocks;
        None: as the board is)."""
        extra = {} if not setups else {"setups": setups, "control": self.control}
        return Sweep(board=self.board_id, run_id=run_id, models=models, batches=batches, backend=self.backend,
                     power=self.power, settings=self.settings, precisions=precisions, seed=self.seed, root=self.root,
                     skip=skip, guard=self.guard, accuracy=self.accuracy, **extra)

    def telemetry(self, sink: Sink, *, rate_hz: float, samples_hz: float,
                  mark: Callable[[], schema.Stream] | None = None) -> telemetry.TelemetryPublisher | None:
        """The live feed to ``sink`` (not started); None when ``rate_hz`` is 0 (off)."""
        if rate_hz <= 0:
            return None
        return telemetry.TelemetryPublisher(sink, self.board_id, self.power, rate_hz=rate_hz, samples_hz=samples_hz,
                                            root=self.root, mark=mark)

    def live(self, sink: Sink | None, *, rate_hz: float, samples_hz: float,
             mark: Callable[[], schema.Stream] | None = None):
        """``with session.live(link, ...)``: telemetry while the block runs (nothing without a sink or at rate 0)."""
        feed = self.telemetry(sink, rate_hz=rate_hz, samples_hz=samples_hz, mark=mark) if sink is not None else None
        return feed if feed is not None else contextlib.nullcontext()

    def close(self) -> None:
        self.power.close()
