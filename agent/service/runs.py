"""The runs of a service: the configured sweep, then those a host asked for (``sweep_start``, ``measure``), queued
in the outbox (so a restart, a kill -9 included, still runs them) and run one after another; ``cancel`` stops one
after its current point or takes it off the queue; ``state`` is what ``sweep_status`` answers.

``Conductor`` is shared by the desk's thread (commands) and the service's main thread (which runs the sweeps).
"""

from __future__ import annotations

import math
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass

from dnnprof.agent.measure.sweep import Interrupted, Sweep
from dnnprof.agent.service.outbox import Outbox, QueuedRun
from dnnprof.shared import schema


class Cancelled(Interrupted):
    """A host cancelled the run: raised at a point boundary, it ends the sweep with a ``cancelled`` event."""

    event = "cancelled"


@dataclass
class _Running:
    sweep: Sweep
    origin: str  # "config" or "host"
    command_id: str | None
    started_ts: float
    queued_as: str | None = None  # the run id the host was given, when this is a resumed run under a new one
    cancel: str | None = None  # the id of the command that cancelled it, once asked


class Conductor:
    """Which run is measured now, which wait, and the cancel requests between them. Thread-safe."""

    def __init__(self, outbox: Outbox, power_mode: Callable[[], str | None]) -> None:
        self.outbox, self.power_mode = outbox, power_mode
        self.publish: Callable[[schema.Message], None] | None = None  # the service's sink, once connected
        self._lock = threading.Lock()
        self._running: _Running | None = None
        self._queued = threading.Event()
        self._queued.set()  # the first look finds what an earlier process left queued

    # --- the queue ----------------------------------------------------------------------------------------------

    def enqueue(self, command: schema.Command, run_id: str) -> int:
        """Queue a host's run (on disk when this returns); returns how many runs are ahead of it."""
        with self._lock:
            ahead = len(self._waiting()) + (self._running is not None)
            self.outbox.enqueue(command, run_id)
        self._queued.set()
        return ahead

    def next(self, timeout_s: float) -> QueuedRun | None:
        """The oldest run still to do, waiting up to ``timeout_s`` for one; None when there is none."""
        if not self._queued.wait(timeout_s):
            return None  # nothing was queued since the last look: the outbox is not read while idle
        self._queued.clear()
        runs = self.outbox.queued_runs()
        if runs:
            self._queued.set()  # more may follow: the next call looks again at once
        return runs[0] if runs else None

    def _waiting(self) -> list[QueuedRun]:
        running = self._running.command_id if self._running else None
        return [r for r in self.outbox.queued_runs() if r.command_id != running]

    # --- the run measured now -----------------------------------------------------------------------------------

    def begin(self, sweep: Sweep) -> None:
        """The configured sweep is measured now."""
        with self._lock:
            self._running = _Running(sweep, "config", None, time.time())

    def start(self, queued: QueuedRun, sweep: Sweep, note: str | None = None) -> bool:
        """A queued run is measured now (``sweep``, under a new run id when it resumes); False when a cancel took
        it off the queue meanwhile (checked and marked in one step, so no cancel falls between)."""
        with self._lock:
            if not self.outbox.claim_run(queued.command_id, note=note):
                return False
            self._running = _Running(sweep, "host", queued.command_id, time.time(),
                                     queued_as=queued.run_id if queued.run_id != sweep.run_id else None)
            return True

    def end(self) -> None:
        with self._lock:
            self._running = None

    def check(self) -> None:
        """Called before each point: raises Cancelled when a host cancelled the run being measured."""
        with self._lock:
            running = self._running
            if running is None or running.cancel is None:
                return
            why = f"cancelled by the host (command {running.cancel}) after {running.sweep.done} of " \
                  f"{running.sweep.points} points"
        raise Cancelled(why)

    def cancel(self, run_id: str | None, command_id: str) -> tuple[str, str]:
        """Stop ``run_id`` (None: the one running) after its current point, or take it off the queue; returns
        (the run's id, what happens). LookupError (its text the reason) when there is no such run."""
        with self._lock:
            running = self._running
            if running is not None and run_id in (None, running.sweep.run_id, running.queued_as):
                running.cancel = command_id
                sweep = running.sweep
                now = f", now at {sweep.current}" if sweep.current else ""
                if sweep.current is not None and sweep.done + 1 >= sweep.points:
                    return sweep.run_id, (f"run {sweep.run_id} is at its last point ({sweep.current}): it ends when "
                                          "that point does, as finished")
                return sweep.run_id, (f"run {sweep.run_id} stops after its current point ({sweep.done} of "
                                      f"{sweep.points} done{now})")
            if run_id is None:
                raise LookupError("no run is being measured: name the RUN to take a queued one off the queue "
                                  "(`dnnhost sweep status` lists them)")
            queued = next((r for r in self._waiting() if r.run_id == run_id), None)
            if queued is None:
                raise LookupError(f"no run {run_id} is running or queued on this board (`dnnhost sweep status` "
                                  "lists them)")
            self.outbox.run_state(queued.command_id, "cancelled", note=f"cancelled by command {command_id}")
        if self.publish is not None:  # the host's store learns that the run ended before it began
            self.publish(schema.RunEvent(board=queued.command.board, ts=time.time(), run_id=run_id, seq=0,
                                         event="cancelled", points_total=_points(queued.command), points_done=0,
                                         message=f"taken off the queue by the host (command {command_id})"))
        return run_id, f"run {run_id} taken off the queue before it began"

    # --- sweep_status -------------------------------------------------------------------------------------------

    def state(self, default_precision: str) -> schema.SweepState:
        """What runs now and what waits (``sweep_status``)."""
        with self._lock:
            running, waiting = self._running, self._waiting()
            now = None
            if running is not None:
                sweep = running.sweep
                now = schema.SweepPoint(
                    run_id=sweep.run_id, origin=running.origin, command_id=running.command_id,
                    state="cancelling" if running.cancel else "running",
                    networks=[m.name for m in sweep.models], batches=list(sweep.batches),
                    precisions=list(sweep.precisions), points_total=sweep.points, points_done=sweep.done,
                    failed=len(sweep.failures), current=sweep.current, started_ts=running.started_ts)
        queue = [schema.SweepPoint(run_id=r.run_id, origin="host", command_id=r.command_id, state="queued",
                                   networks=_names(r.command), batches=_batches(r.command),
                                   precisions=_precisions(r.command, default_precision),
                                   points_total=_points(r.command), queued_ts=r.queued_ts) for r in waiting]
        return schema.SweepState(running=now, queue=queue, power_mode=self.power_mode())


def _names(command: schema.Command) -> list[str]:
    names = command.models if command.action == "sweep_start" else [command.model or ""]
    return [n.removesuffix(".onnx") for n in names]


def _batches(command: schema.Command) -> list[int]:
    return list(command.batches) if command.action == "sweep_start" else [command.batch or 1]


def _precisions(command: schema.Command, default: str) -> list[str]:
    given = command.precisions if command.action == "sweep_start" else [command.precision] if command.precision else []
    return [p.lower() for p in given] or [default]


def _points(command: schema.Command) -> int:
    return math.prod((len(_names(command)), len(_batches(command)), len(_precisions(command, "fp32"))))
