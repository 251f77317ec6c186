"""``dnnagent run``'s outboxes: the service's disk outbox (``outbox``), one file per run.

A run writes its results and run events to ``DIR/<run-id>.sqlite`` before they are published and keeps each until
the broker's PUBACK, so a broker outage mid-run loses nothing. One file per run gives each run a stream of its own,
numbered from 1: a host's store that never saw the earlier runs finds no hole below the first number (a run has no
command listener to replay one). At the end the file is deleted once everything in it was acknowledged; a file left
by a run that could not deliver everything (or was killed: its unfinished run gets an ``aborted`` event) is
published by the next run of that board, alongside its own messages, then deleted.
"""

from __future__ import annotations

import logging
import os
import time
from pathlib import Path

from dnnprof.agent.publish.link import MqttLink
from dnnprof.agent.service.outbox import Courier, Outbox, abort_unfinished
from dnnprof.shared import schema
from dnnprof.shared.errors import UserError

log = logging.getLogger(__name__)

DEFAULT_DIR = Path("~/.local/state/dnnprof/run-outbox")
FLUSH_S = 30.0  # how long the end of a run (or a leftover at its start) waits for the broker's acknowledgements


def state_home() -> Path:
    """``$XDG_STATE_HOME/dnnprof`` (``~/.local/state/dnnprof`` when unset): what ``dnnagent run`` keeps between runs."""
    state = os.environ.get("XDG_STATE_HOME")
    return Path(state) / "dnnprof" if state else DEFAULT_DIR.expanduser().parent


def default_dir(board: str) -> Path:
    """``$XDG_STATE_HOME/dnnprof/run-outbox/<board>`` (``~/.local/state/...`` when unset)."""
    return state_home() / "run-outbox" / board


class RunOutbox:
    """The sink of one run towards the broker: durable messages (results, run events) into this run's outbox file
    and, through the courier, to the broker; status, info and telemetry straight to the link.

    Open it, ``connect`` the link (acknowledgements are routed to the outbox they came from), ``start``, then send;
    ``close`` waits for the broker (``flush_s``) and disconnects. ``unsent`` says what is left on disk after close.
    Leftovers of earlier runs are published alongside this run's messages (each outbox oldest first).
    """

    def __init__(self, directory: Path, run_id: str, *, flush_s: float = FLUSH_S) -> None:
        self.directory, self.flush_s = directory, flush_s
        path = directory / f"{run_id}.sqlite"
        try:
            directory.mkdir(parents=True, exist_ok=True)
            own = _hold(path)
        except OSError as exc:
            raise UserError(f"cannot use the outbox folder {directory}: {exc.strerror or exc}: give --outbox-dir "
                            "a folder you can write") from None
        if own is None:  # locked before the file exists: no other run can take it for a leftover
            raise UserError(f"a run {run_id} of this board is going on now (its outbox {path} is in use): give "
                            "another --run-id")
        self._locks = {path: own}
        self.box = Outbox(path)
        self.leftovers: list[Outbox] = []
        self.aborted: list[str] = []
        ids = {self.box.stream_id}
        for other in sorted(directory.glob("*.sqlite")):
            if other != path:
                self._leftover(other, run_id, ids)
        self.waiting = sum(box.counts()[0] for box in self.leftovers)
        self.link: MqttLink | None = None
        self._couriers: dict[int, Courier] = {}
        self.unsent = 0

    def _leftover(self, path: Path, run_id: str, ids: set[int]) -> None:
        """Take an earlier run's file, unless a run still going holds it or it cannot be read (said in the log)."""
        try:
            lock = _hold(path)
            if lock is None:
                return  # a run of this board going on now
            box = Outbox(path)
        except (OSError, UserError) as exc:
            log.warning("left out the outbox %s of an earlier run: %s", path, exc)
            return
        if box.stream_id in ids:  # two files of one stream (never seen): the acknowledgements could not be told apart
            log.warning("left out the outbox %s: its stream %d is another file's too", path, box.stream_id)
            box.close()
            lock.close()
            return
        ids.add(box.stream_id)
        self._locks[path] = lock
        self.leftovers.append(box)
        self.aborted += abort_unfinished(box, run_id, resumes=False)

    def connect(self, make_link) -> MqttLink:
        """``make_link(on_ack)`` opens the MqttLink; each acknowledgement goes to its outbox's courier. When it
        fails, this run's own (empty) file is removed and everything is released."""
        try:
            self.link = make_link(self._acknowledged)
        except BaseException:
            self.close()
            raise
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
        were delivered whole; returns nothing (what is left stays on disk: ``unsent``). Every step runs, whatever
        an earlier one raised."""
        deadline = time.monotonic() + self.flush_s
        try:
            for courier in self._couriers.values():
                courier.drain(deadline)
        finally:
            for courier in self._couriers.values():
                courier.stop()
            try:
                if self.link is not None:
                    self.link.close(max(0.5, deadline - time.monotonic()))
            finally:
                self.unsent = sum(self._release(box) for box in [*self.leftovers, self.box])
                for lock in self._locks.values():
                    lock.close()
        return []

    def _release(self, box: Outbox) -> int:
        """Close ``box``; delete its files when nothing in it waits; returns what waits (unknown: counted as 1)."""
        try:
            left = box.counts()[0]
        except Exception as exc:  # a failing disk: keep the file, it may still hold what was not delivered
            log.warning("cannot read the outbox %s (%s): kept", box.path, exc)
            left = 1
        box.close()
        if left:
            log.warning("%d messages not acknowledged by the broker stay in %s", left, box.path)
            return left
        for path in (box.path, Path(f"{box.path}-wal"), Path(f"{box.path}-shm"), Path(f"{box.path}.lock")):
            path.unlink(missing_ok=True)
        return 0


def _hold(path: Path):
    """An exclusive lock on ``path``'s ``.lock`` file while the returned file stays open; None when another process
    holds it."""
    import fcntl

    lock = open(f"{path}.lock", "a+b")  # noqa: SIM115 - held until close(), by design
    try:
        fcntl.flock(lock, fcntl.LOCK_EX | fcntl.LOCK_NB)
    except BlockingIOError:
        lock.close()
        return None
    except OSError:
        lock.close()
        raise
    return lock
