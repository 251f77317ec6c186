"""Why a point failed, and the watchdog that bounds each stage of a point.

``classify`` turns what a backend raised into one of ``schema.FAILURE_KINDS`` and a one-line message: a
``PointError`` says its class itself; otherwise the words TensorRT, pycuda and ONNX Runtime use decide
(``OutOfMemory``, ``cuMemAlloc failed: out of memory``, ``Failed to allocate memory``, ``NOT_IMPLEMENTED``, ...),
then the stage (a failure while preparing is a build failure, one while running a runtime error).

``watched`` runs a point on a worker thread while this thread holds it to the limit of the stage it is in (the
build, the idle baseline, the warm-up, the window, the output check): a backend that hangs in C code cannot be
interrupted, so the point is given up as a ``timeout`` and the worker left behind (``Hung``); the sweep does not
run another point while it is still busy, since two points would share the device and the power sampler.
"""

from __future__ import annotations

import threading
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import TypeVar

import numpy as np

from dnnprof.agent.backends import PointError
from dnnprof.agent.measure.sampler import clock

T = TypeVar("T")

# Lower-case fragments of the messages each library gives for these causes (pycuda: "cuMemAlloc failed: out of
# memory"; TensorRT: "Error Code 2: OutOfMemory", "Requested amount of GPU memory ... could not be allocated";
# ONNX Runtime: "Failed to allocate memory for requested buffer", std::bad_alloc; CUDA: cudaErrorMemoryAllocation).
_OOM = ("out of memory", "outofmemory", "failed to allocate memory", "bad_alloc", "could not be allocated",
        "cudaerrormemoryallocation", "cuda_error_out_of_memory")
# ONNX Runtime: "NOT_IMPLEMENTED : Could not find an implementation for ..."; TensorRT's parser: "No importer
# registered for op"; DLA builds: "... not supported on DLA".
_UNSUPPORTED = ("not_implemented", "could not find an implementation", "no importer registered", "not supported",
                "unsupported")

ABANDON_WAIT_S = 5.0  # how long Ctrl-C waits for a point asked to stop (a TensorRT build at its next step)
MAX_MESSAGE = 300  # characters of a failure's message: one line a table can show


def one_line(text: str) -> str:
    """The first non-empty line of ``text``, shortened to MAX_MESSAGE characters."""
    line = next((x.strip() for x in text.splitlines() if x.strip()), "")
    return line if len(line) <= MAX_MESSAGE else line[:MAX_MESSAGE - 1] + "…"


def classify(exc: BaseException, stage: str) -> tuple[str, str]:
    """(error class, one-line message) for ``exc`` raised in ``stage`` (``prepare``, ``idle``, ``warmup``,
    ``window``, ``check``)."""
    text = str(exc)
    message = one_line(text) or exc.__class__.__name__
    if isinstance(exc, PointError):
        return exc.kind, message
    if isinstance(exc, Hung):
        return "timeout", message
    lowered = f"{exc.__class__.__name__} {text}".lower()
    # pycuda's out-of-memory exception is pycuda._driver.MemoryError, not the built-in one: match by name too.
    if isinstance(exc, MemoryError) or exc.__class__.__name__ == "MemoryError" or any(w in lowered for w in _OOM):
        return "out_of_memory", message if "memory" in message.lower() else f"out of memory: {message}"
    if any(w in lowered for w in _UNSUPPORTED):
        return "unsupported", message
    if stage == "prepare":
        return "build_failed", message
    return "runtime_error", message if isinstance(exc, Exception) and text else f"{exc.__class__.__name__}: {message}"


def check_outputs(outputs: dict) -> None:
    """Raise PointError(``invalid_output``) when any output of the last batch holds NaN or infinity."""
    for name, array in outputs.items():
        values = np.asarray(array)
        if values.dtype.kind not in "fc":
            continue
        finite = np.isfinite(values)
        if not finite.all():
            nan = int(np.isnan(values).sum())
            inf = values.size - nan - int(finite.sum())
            raise PointError("invalid_output", f"output {name!r} holds {nan} NaN and {inf} infinite values of "
                             f"{values.size} after the window: the engine computes garbage at this point (a precision "
                             "overflow, a broken build)")


@dataclass
class Watch:
    """The stage a point is in and how long it may stay there (seconds, from ``limits``); the worker calls
    ``enter`` as it moves on."""

    limits: dict[str, float]
    stage: str = "prepare"
    since: float = field(default_factory=clock)
    _lock: threading.Lock = field(default_factory=threading.Lock, repr=False)

    def enter(self, stage: str) -> None:
        with self._lock:
            self.stage, self.since = stage, clock()

    def overdue(self, now: float) -> tuple[str, float] | None:
        """(stage, its limit) when the stage has lasted longer than its limit, else None."""
        with self._lock:
            limit = self.limits.get(self.stage)
            return (self.stage, limit) if limit is not None and now - self.since > limit else None


@dataclass
class Guard:
    """A point the watchdog gave up on, whose thread may still be using the backend: shared by every sweep of one
    backend (``Session``), so no later run measures beside it. ``hung``: (its thread, its label, whether a later
    point already waited a grace for it)."""

    hung: tuple[threading.Thread, str, bool] | None = None


class Hung(Exception):
    """The point overran its stage's limit; ``worker`` is the thread still running it."""

    def __init__(self, message: str, worker: threading.Thread, stage: str) -> None:
        super().__init__(message)
        self.worker, self.stage = worker, stage


def watched(body: Callable[[], T], watch: Watch, what: str, poll_s: float = 0.05,
            on_abandon: Callable[[], None] | None = None) -> T:
    """``body()`` on a worker thread, held to ``watch``'s limits; raises what it raised, or Hung. ``on_abandon``
    runs when the worker is left behind (overdue, or Ctrl-C / a signal on this thread): a way to ask the backend to
    stop (a TensorRT build)."""
    box: dict[str, object] = {}
    done = threading.Event()

    def run() -> None:
        try:
            box["value"] = body()
        except BaseException as exc:  # handed to the sweep's thread, which decides
            box["error"] = exc
        finally:
            done.set()

    worker = threading.Thread(target=run, name=f"point {what}", daemon=True)
    worker.start()
    try:
        while not done.wait(poll_s):
            late = watch.overdue(clock())
            if late is not None:
                stage, limit = late
                if on_abandon is not None:
                    on_abandon()
                raise Hung(f"the {stage} stage ran over its limit of {limit:g} s: the backend did not return (hung, "
                           "or far slower than its limits allow)", worker, stage)
    except KeyboardInterrupt:  # signals reach this thread only: ask the backend to stop, give it a moment
        if on_abandon is not None:
            on_abandon()
        done.wait(ABANDON_WAIT_S)
        raise
    if "error" in box:
        raise box["error"]  # type: ignore[misc]
    return box["value"]  # type: ignore[return-value]
