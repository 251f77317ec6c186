"""``dnnagent run``'s outboxes: the service's disk outbox (``outbox``), one file per run.

A run writes its results and run events to ``DIR/<run-id>.sqlite`` before they are published and keeps each until
the broker's PUBACK, so a broker outage mid-run loses nothing. One file per run gives each run a stream of its own,
numbered from 1: a host's store that never saw the earlier runs finds no hole below the first number (a run has no
command listener to replay one). At the end the file is deleted once everything in it was acknowledged; a file left
by a run that could not deliver everything (or was killed: its unfinished run gets an ``aborted`` event) is
published first by the next run to a broker, then deleted.
"""

from __future__ import annotations

import logging
import os
import time
from pathlib import Path

from dnnprof.agent.publish.link import MqttLink
from dnnprof.agent.service.outbox import Courier, Outbox, abort_unfinished
from dnnprof.shared import schema

log = logging.getLogger(__name__)

DEFAULT_DIR = Path("~/.local/state/dnnprof/run-outbox")
FLUSH_S = 30.0  # how long the end of a run (or a leftover at its start) waits for the broker's acknowledgements


def default_dir(board: str) -> Path:
    """``$XDG_STATE_HOME/dnnprof/run-outbox/<board>`` (``~/.local/state/...`` when unset)."""
    state = os.environ.get("XDG_STATE_HOME")
    base = Path(state) / "dnnprof" / "run-outbox" if state else DEFAULT_DIR.expanduser()
    return base / board


class RunOutbox:
    """The sink of one run towards the broker: durable messages (results, run events) into this run's outbox file
    and, through the courier, to the broker; status, info and telemetry straight to the link.

    Open it, ``connect`` the link (acknowledgements are routed to the outbox they came from), ``start``, then send;
    ``close`` waits for the broker (``flush_s``) and disconnects. ``unsent`` says what is left on disk after close.
    """

    def __init__(self, directory: Path, run_id: str, *, flush_s: float = FLUSH_S) -> None:
        self.directory, self.flush_s = directory, flush_s
        self.box = Outbox(directory / f"{run_id}.sqlite")
        self._lock = _hold(self.box.path)
        # Earlier runs' files, but not those a run still going holds (two runs of one board at once).
        others = [p for p in sorted(directory.glob("*.sqlite")) if p != self.box.path]
        self._locks = {p: lock for p in others if (lock := _hold(p, wait=False)) is not None}
        self.leftovers = [Outbox(p) for p in self._locks]
        self.aborted = [rid for box in self.leftovers for rid in abort_unfinished(box, run_id, resumes=False)]
        self.waiting = sum(box.counts()[0] for box in self.leftovers)
        self.link: MqttLink | None = None
        self._couriers: dict[int, Courier] = {}
        self.unsent = 0

    def connect(self, make_link) -> MqttLink:
        """``make_link(on_ack)`` opens the MqttLink; each acknowledgement goes to its outbox's courier."""
        self.link = make_link(self._acknowledged)
        for box in [*self.leftovers, self.box]:
            self._couriers[box.stream_id] = Courier(box, self.link)
        return self.link

    def _acknowledged(self, message: schema.Message) -> None:
        stream = getattr(message, "stream", None)
        courier = self._couriers.get(stream.id) if stream is not None else None
        if courier is not None:
            courier.acknowledged(message)

    def start(self) -> None:
        for courier in self._couriers.values():
            courier.start()

    def send(self, message: schema.Message) -> None:
        if isinstance(message, schema.DURABLE):
            self.box.put(message)
            self._couriers[self.box.stream_id].wake()
        else:
            self.link.send(message)

    def close(self) -> list[schema.Message]:
        """Wait for the broker to acknowledge every outbox (``flush_s`` at most), disconnect, delete the files that
        were delivered whole; returns nothing (what is left stays on disk: ``unsent``)."""
        deadline = time.monotonic() + self.flush_s
        for courier in self._couriers.values():
            courier.drain(deadline)
        for courier in self._couriers.values():
            courier.stop()
        if self.link is not None:
            self.link.close(max(0.5, deadline - time.monotonic()))
        self.unsent = 0
        for box in [*self.leftovers, self.box]:
            left = box.counts()[0]
            self.unsent += left
            box.close()
            if not left:
                for path in (box.path, Path(f"{box.path}-wal"), Path(f"{box.path}-shm"), Path(f"{box.path}.lock")):
                    path.unlink(missing_ok=True)
            else:
                log.warning("%d messages not acknowledged by the broker stay in %s", left, box.path)
        for lock in [self._lock, *self._locks.values()]:
            lock.close()
        return []


def _hold(path: Path, wait: bool = True):
    """An exclusive lock on ``path``'s ``.lock`` file while the returned file stays open; None (``wait=False``)
    when another process holds it."""
    import fcntl

    lock = open(f"{path}.lock", "a+b")  # noqa: SIM115 - held until close(), by design
    try:
        fcntl.flock(lock, fcntl.LOCK_EX | (0 if wait else fcntl.LOCK_NB))
    except BlockingIOError:
        lock.close()
        return None
    return lock
