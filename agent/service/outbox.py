"""The agent's outbox: every result and run event is written to SQLite before it is published, and leaves the
queue only when the broker acknowledges it (PUBACK).

Each message gets the next number of the board's stream (``schema.Stream``: the outbox's id, then 1, 2, 3, ...),
carried in its payload, so a host can tell what it is missing and ask for it again (``Command(action="replay")``).
Delivered messages are kept for replay — the newest ``retain`` of them — then pruned oldest first. The file is
bounded: at ``max_bytes`` the delivered messages go first; when pending ones alone fill it, ``put`` raises
``OutboxFull`` and the caller stops measuring rather than measure what it cannot keep.

``Courier`` is the thread that publishes what the outbox holds, oldest first, with at most ``max_in_flight``
messages awaiting their PUBACK, so neither paho's in-memory queue nor its 16-bit message ids are ever at risk:
everything else waits on disk. A kill -9 loses nothing written: the next start publishes the pending rows again
(the host's store is idempotent: same result id, same run-event key).

At a start, before anything is published: ``migrate_jsonl`` moves in what an agent before this outbox left in JSONL
files, and ``abort_unfinished`` closes each run a kill left half-done with an ``aborted`` event.

The same file keeps the runs a host queued (``sweep_start``, ``measure``: table ``runs``, one row per command, state
``queued`` → ``running`` → ``done`` or ``cancelled``), so a restart, a kill -9 included, runs them still.
"""

from __future__ import annotations

import logging
import sqlite3
import threading
import time
from collections.abc import Callable, Iterable
from pathlib import Path
from typing import NamedTuple, Protocol

import msgspec

from dnnprof.agent.service import ledger
from dnnprof.shared import schema
from dnnprof.shared.errors import UserError

log = logging.getLogger(__name__)

DEFAULT_MAX_BYTES = 256 << 20  # a result is a few KB: this holds some 50,000 of them
DEFAULT_RETAIN = 10_000  # delivered messages kept for replay
MAX_IN_FLIGHT = 64  # messages handed to paho and not yet acknowledged (paho's own window is 20)
_FORMAT = 1  # PRAGMA user_version

_CREATE = """
CREATE TABLE IF NOT EXISTS meta (key TEXT PRIMARY KEY, value INTEGER NOT NULL);
CREATE TABLE IF NOT EXISTS messages (
    seq INTEGER PRIMARY KEY,
    kind TEXT NOT NULL,
    run_id TEXT,
    event TEXT,
    payload BLOB NOT NULL,
    written_ts REAL NOT NULL,
    acked_ts REAL
);
CREATE INDEX IF NOT EXISTS messages_pending ON messages (seq) WHERE acked_ts IS NULL;
CREATE INDEX IF NOT EXISTS messages_runs ON messages (run_id, seq) WHERE kind = 'run';
CREATE TABLE IF NOT EXISTS runs (
    command_id TEXT PRIMARY KEY,
    run_id TEXT NOT NULL,
    command BLOB NOT NULL,
    state TEXT NOT NULL,
    queued_ts REAL NOT NULL,
    started_ts REAL,
    ended_ts REAL,
    note TEXT
);
"""

# The last event of every run whose sweep never ended (no finished, failed or aborted event after it).
_UNFINISHED = ("SELECT payload FROM messages m WHERE kind = 'run' AND seq = (SELECT max(seq) FROM messages WHERE "
               "kind = 'run' AND run_id = m.run_id) AND event IN ('started', 'progress') ORDER BY seq")


class OutboxFull(UserError):
    """The outbox cannot take another message: its size limit or the disk is full, or the disk refuses to write
    (a file-size limit shows as SQLite's "disk I/O error", not "full")."""


def _newer(path: Path, version: int) -> UserError:
    return UserError(f"the outbox {path} was written by a newer dnnprof (format {version}): upgrade the agent (moving "
                     "the file away loses the results it still holds)")


def _damaged(path: Path, exc: Exception) -> UserError:
    return UserError(f"cannot open the outbox {path}: {exc} (a damaged file: move it away; the results it held are "
                     "then lost)")


def check(path: str | Path) -> None:
    """Raise the UserError ``Outbox(path)`` would, without creating or changing anything (``serve --check``)."""
    path = Path(path)
    try:
        version = ledger.file_format(path)
    except sqlite3.DatabaseError as exc:
        raise _damaged(path, exc) from None
    if version is not None and version > _FORMAT:
        raise _newer(path, version)


def describe(path: str | Path) -> dict | None:
    """What the outbox at ``path`` holds, read without changing it (the service may be running): stream id, highest
    number, undelivered and delivered counts, the oldest undelivered message's age (s), runs left unfinished, runs
    a host queued that are not done.
    None when there is no outbox yet; UserError for a damaged or newer one (as ``check``)."""
    path = Path(path)
    check(path)
    if not path.exists():
        return None
    db = sqlite3.connect(f"{path.absolute().as_uri()}?mode=ro", uri=True, timeout=30)
    try:
        meta = dict(db.execute("SELECT key, value FROM meta"))
        pending, delivered, oldest = db.execute(
            "SELECT count(*) FILTER (WHERE acked_ts IS NULL), count(*) FILTER (WHERE acked_ts IS NOT NULL), "
            "min(written_ts) FILTER (WHERE acked_ts IS NULL) FROM messages").fetchone()
        unfinished = [schema.decode(p).run_id for (p,) in db.execute(_UNFINISHED)]
        queued = []
        if db.execute("SELECT 1 FROM sqlite_master WHERE type = 'table' AND name = 'runs'").fetchone():
            queued = [{"run_id": r, "state": s, "command_id": c} for r, s, c in db.execute(
                "SELECT run_id, state, command_id FROM runs WHERE state IN ('queued', 'running') "
                "ORDER BY queued_ts, rowid")]
    except sqlite3.Error as exc:
        raise _damaged(path, exc) from None
    finally:
        db.close()
    return {"path": str(path), "stream": meta.get("stream"), "high": meta.get("next", 1) - 1, "undelivered": pending,
            "delivered_kept": delivered, "oldest_undelivered_age_s": round(time.time() - oldest, 1) if oldest else None,
            "unfinished_runs": unfinished, "queued_runs": queued}


class Outbox:
    """The SQLite queue at ``path``; safe to use from several threads (one connection behind a lock)."""

    def __init__(self, path: str | Path, *, max_bytes: int | None = DEFAULT_MAX_BYTES,
                 retain: int = DEFAULT_RETAIN) -> None:
        self.path = Path(path)
        self.retain = retain
        self._lock = threading.Lock()
        try:
            self.path.parent.mkdir(parents=True, exist_ok=True)
            db = sqlite3.connect(self.path, timeout=30, isolation_level=None, check_same_thread=False)
            version = db.execute("PRAGMA user_version").fetchone()[0]
            if version > _FORMAT:
                db.close()
                raise _newer(self.path, version)
            db.execute("PRAGMA journal_mode=WAL")
            # FULL: a message is on disk when put() returns, power loss included — it is about to be published.
            db.execute("PRAGMA synchronous=FULL")
            db.executescript(_CREATE)
            db.execute(f"PRAGMA user_version = {_FORMAT}")
            if max_bytes is not None:
                page = db.execute("PRAGMA page_size").fetchone()[0]
                db.execute(f"PRAGMA max_page_count = {max(16, max_bytes // page)}")
            db.execute("INSERT OR IGNORE INTO meta (key, value) VALUES ('stream', ?)", (int(time.time() * 1000),))
            db.execute("INSERT OR IGNORE INTO meta (key, value) VALUES ('next', 1)")
        except sqlite3.Error as exc:
            raise _damaged(self.path, exc) from None
        except OSError as exc:
            raise UserError(f"cannot create the outbox {self.path}: {exc.strerror or exc}") from None
        self._db = db
        self.stream_id: int = db.execute("SELECT value FROM meta WHERE key = 'stream'").fetchone()[0]

    def close(self) -> None:
        with self._lock:
            self._db.close()

    # --- writing --------------------------------------------------------------------------------------------------

    def put(self, message: schema.Message) -> schema.Message:
        """Write ``message`` (a Result or RunEvent) with the stream's next number; returns it carrying the number
        (``message.stream``). On disk when this returns. Raises OutboxFull when there is no room."""
        try:
            return self._put(message)
        except sqlite3.Error:
            pass  # full, or the disk refuses: room first from what was delivered (kept only for replays), then again
        try:
            freed = self.prune(keep=0)
            put = self._put(message)
        except sqlite3.Error as exc:
            try:
                pending = f"{self.counts()[0]} undelivered messages kept"
            except sqlite3.Error:
                pending = "undelivered messages kept"
            raise OutboxFull(f"the outbox {self.path} is full or cannot be written ({exc}; {pending}): free disk "
                             "space or raise [agent] outbox_max_mb; nothing more is measured until it has room"
                             ) from None
        log.warning("outbox full: pruned %d delivered messages (no longer replayable) to keep a new one", freed)
        return put

    def _put(self, message: schema.Message) -> schema.Message:
        with self._lock, self._db:
            self._db.execute("BEGIN IMMEDIATE")
            seq = self._db.execute("SELECT value FROM meta WHERE key = 'next'").fetchone()[0]
            numbered = msgspec.structs.replace(message, stream=schema.Stream(id=self.stream_id, seq=seq))
            self._db.execute(
                "INSERT INTO messages (seq, kind, run_id, event, payload, written_ts) VALUES (?, ?, ?, ?, ?, ?)",
                (seq, schema.KIND_OF[type(message)], getattr(message, "run_id", None),
                 getattr(message, "event", None), schema.encode(numbered), time.time()))
            self._db.execute("UPDATE meta SET value = ? WHERE key = 'next'", (seq + 1,))
        return numbered

    def acked(self, seqs: Iterable[int]) -> int:
        """Mark messages delivered (the broker acknowledged them); returns how many were pending."""
        seqs = list(seqs)
        if not seqs:
            return 0
        now = time.time()
        with self._lock, self._db:
            self._db.execute("BEGIN IMMEDIATE")
            changed = sum(self._db.execute("UPDATE messages SET acked_ts = ? WHERE seq = ? AND acked_ts IS NULL",
                                           (now, s)).rowcount for s in seqs)
        try:
            self.prune()
        except sqlite3.Error as exc:  # recorded already; pruning can wait for the next acknowledgement
            log.debug("pruning the outbox failed: %s", exc)
        return changed

    def prune(self, keep: int | None = None) -> int:
        """Delete delivered messages beyond the newest ``keep`` (default: ``retain``); returns how many."""
        keep = self.retain if keep is None else keep
        with self._lock, self._db:
            self._db.execute("BEGIN IMMEDIATE")
            cur = self._db.execute(
                "DELETE FROM messages WHERE acked_ts IS NOT NULL AND seq NOT IN (SELECT seq FROM messages WHERE "
                "acked_ts IS NOT NULL ORDER BY seq DESC LIMIT ?)", (keep,))
            return cur.rowcount

    # --- reading --------------------------------------------------------------------------------------------------

    def pending(self, after: int = 0, limit: int = MAX_IN_FLIGHT) -> list[schema.Message]:
        """Undelivered messages numbered above ``after``, oldest first."""
        with self._lock:
            rows = self._db.execute("SELECT payload FROM messages WHERE acked_ts IS NULL AND seq > ? ORDER BY seq "
                                    "LIMIT ?", (after, limit)).fetchall()
        return [schema.decode(row[0]) for row in rows]

    def between(self, first: int, last: int) -> tuple[list[schema.Message], list[list[int]]]:
        """The messages numbered ``first``..``last`` the outbox still holds, and the ``[first, last]`` ranges it
        does not (pruned after delivery, or beyond the highest number written)."""
        with self._lock:
            rows = self._db.execute("SELECT seq, payload FROM messages WHERE seq BETWEEN ? AND ? ORDER BY seq",
                                    (first, last)).fetchall()
        held, missing, expected = [], [], first
        for seq, payload in rows:
            if seq > expected:
                missing.append([expected, seq - 1])
            held.append(schema.decode(payload))
            expected = seq + 1
        if expected <= last:
            missing.append([expected, last])
        return held, missing

    def high(self) -> int:
        """The highest number written so far (0: none)."""
        with self._lock:
            return self._db.execute("SELECT value FROM meta WHERE key = 'next'").fetchone()[0] - 1

    def mark(self) -> schema.Stream:
        """The stream's high mark, for a birth or telemetry: a host missing the newest messages sees it here."""
        return schema.Stream(id=self.stream_id, seq=self.high())

    def counts(self) -> tuple[int, int]:
        """(undelivered, delivered and kept for replay)."""
        with self._lock:
            pending, delivered = self._db.execute(
                "SELECT count(*) FILTER (WHERE acked_ts IS NULL), count(*) FILTER (WHERE acked_ts IS NOT NULL) "
                "FROM messages").fetchone()
        return pending, delivered

    def unfinished_runs(self) -> list[schema.RunEvent]:
        """The last event of every run whose sweep never ended (no finished/failed/aborted): killed, crashed or
        powered off mid-sweep."""
        with self._lock:
            rows = self._db.execute(_UNFINISHED).fetchall()
        return [schema.decode(row[0]) for row in rows]


    # --- the runs a host queued -----------------------------------------------------------------------------------

    def enqueue(self, command: schema.Command, run_id: str) -> None:
        """Keep ``command`` (sweep_start or measure) as a run to do, under ``run_id``; on disk when this returns."""
        with self._lock, self._db:
            self._db.execute("BEGIN IMMEDIATE")
            self._db.execute("INSERT INTO runs (command_id, run_id, command, state, queued_ts) VALUES (?, ?, ?, "
                             "'queued', ?)", (command.id, run_id, schema.encode(command), time.time()))

    def run_of(self, command_id: str) -> tuple[str, str] | None:
        """(run id, state) of the run ``command_id`` queued, or None when it queued none."""
        with self._lock:
            row = self._db.execute("SELECT run_id, state FROM runs WHERE command_id = ?", (command_id,)).fetchone()
        return None if row is None else (row[0], row[1])

    def queued_runs(self) -> list[QueuedRun]:
        """Runs not yet done nor cancelled (``queued``, or ``running`` when a kill ended the agent mid-run), in the
        order they were queued."""
        with self._lock:
            rows = self._db.execute("SELECT command_id, run_id, command, state, queued_ts, started_ts FROM runs "
                                    "WHERE state IN ('queued', 'running') ORDER BY queued_ts, rowid").fetchall()
        return [QueuedRun(c, r, schema.decode(p), s, q, t) for c, r, p, s, q, t in rows]

    def claim_run(self, command_id: str, *, note: str | None = None) -> bool:
        """Mark a queued run ``running``; False when it is no longer to do (cancelled, done)."""
        with self._lock, self._db:
            self._db.execute("BEGIN IMMEDIATE")
            changed = self._db.execute(
                "UPDATE runs SET state = 'running', started_ts = ?, note = coalesce(?, note) WHERE command_id = ? "
                "AND state IN ('queued', 'running')", (time.time(), note, command_id)).rowcount
        return changed == 1

    def run_state(self, command_id: str, state: str, *, note: str | None = None) -> None:
        """End a queued run: ``done`` or ``cancelled`` (``claim_run`` starts one)."""
        with self._lock, self._db:
            self._db.execute("BEGIN IMMEDIATE")
            self._db.execute("UPDATE runs SET state = ?, note = coalesce(?, note), ended_ts = ? WHERE command_id = ?",
                             (state, note, time.time(), command_id))


class QueuedRun(NamedTuple):
    """A run a host asked for, as the outbox keeps it."""

    command_id: str
    run_id: str
    command: schema.Command
    state: str  # "queued" or "running"
    queued_ts: float
    started_ts: float | None


class Link(Protocol):
    """What the courier publishes through (``publish.link.MqttLink``)."""

    def send(self, message: schema.Message) -> None: ...


class Replay(NamedTuple):
    replayed: int
    unavailable: list[list[int]]


class Courier(threading.Thread):
    """Publishes the outbox's pending messages through ``link``, oldest first, at most ``max_in_flight`` awaiting
    their PUBACK; marks them delivered as acknowledgements come (``acknowledged``, wired to the link's on_ack).

    Within one process a message is handed to paho once: paho itself sends again what is unacknowledged when the
    connection comes back. Across processes the pending rows are the memory. ``on_delivered(messages)`` runs on
    this thread after each batch of acknowledgements is on disk.
    """

    def __init__(self, outbox: Outbox, link: Link, *, max_in_flight: int = MAX_IN_FLIGHT,
                 on_delivered: Callable[[list[schema.Message]], None] | None = None) -> None:
        super().__init__(name="outbox", daemon=True)
        self.outbox, self.link, self.max_in_flight, self.on_delivered = outbox, link, max_in_flight, on_delivered
        self._cond = threading.Condition()
        self._acks: list[schema.Message] = []
        self._replays: list[schema.Message] = []
        self._in_flight: set[int] = set()  # numbers of pending messages handed to the link
        self._replaying = 0  # replayed messages handed to the link, not yet acknowledged
        self._cursor = 0  # the highest number handed to the link by this process
        self._done = threading.Event()
        self.error: str | None = None  # why the outbox cannot be used right now (None: it works)
        self.sent = 0  # messages handed to the link (replays included)
        self.delivered = 0

    def wake(self) -> None:
        """Something new is in the outbox."""
        with self._cond:
            self._cond.notify_all()

    def acknowledged(self, message: schema.Message) -> None:
        """The link's on_ack (paho's network thread): only queued here, the disk write happens on this thread."""
        if getattr(message, "stream", None) is None or not isinstance(message, schema.DURABLE):
            return
        with self._cond:
            self._acks.append(message)
            self._cond.notify_all()

    def replay(self, stream: int, first: int, last: int) -> Replay:
        """Queue the messages numbered ``first``..``last`` to be published again; what the outbox no longer holds
        (or a stream that is not this outbox's) is returned as unavailable."""
        if stream != self.outbox.stream_id:
            return Replay(0, [[first, last]])
        held, missing = self.outbox.between(first, last)
        with self._cond:
            fresh = [m for m in held if m.stream.seq not in self._in_flight]  # in flight: on its way already
            self._replays.extend(fresh)
            self._cond.notify_all()
        return Replay(len(fresh), missing)

    def stop(self, timeout_s: float = 5.0) -> None:
        self._done.set()
        self.wake()
        if self.is_alive():
            self.join(timeout_s)

    def drain(self, deadline: float) -> int:
        """Wait until the outbox holds nothing undelivered or ``deadline`` (time.monotonic) passes; returns what is
        still undelivered (it stays on disk, for the next start)."""
        while self.is_alive() and self.outbox.counts()[0] and time.monotonic() < deadline:
            time.sleep(0.05)
        return self.outbox.counts()[0]

    def idle(self) -> bool:
        """Nothing handed over awaits its acknowledgement and nothing is queued to hand over."""
        with self._cond:
            return not self._in_flight and not self._replaying and not self._replays and not self._acks

    def run(self) -> None:
        while not self._done.is_set():
            with self._cond:
                if not self._acks and (len(self._in_flight) + self._replaying >= self.max_in_flight
                                       or not self._wants_more()):
                    self._cond.wait(0.5)
                acks, self._acks = self._acks, []
            try:
                self._deliver(acks)
                self._hand_over()
            except Exception as exc:  # the disk is full or failing: keep trying, never end the thread over it
                error = f"{type(exc).__name__}: {exc}"
                if error != self.error:
                    log.error("the outbox cannot be read or written (%s): acknowledgements are kept in memory and "
                              "publishing waits; retrying every second", error)
                self.error = error
                self._done.wait(1.0)
            else:
                if self.error is not None:
                    log.warning("the outbox works again: publishing resumes")
                    self.error = None

    def _wants_more(self) -> bool:
        return bool(self._replays) or self.outbox.high() > self._cursor

    def _deliver(self, acks: list[schema.Message]) -> None:
        """Record acknowledgements on disk, then free their in-flight slots; on a failure they are kept for the
        next try (their slots stay taken, so no more than max_in_flight wait in memory meanwhile)."""
        if not acks:
            return
        with self._cond:
            fresh = [m for m in acks if m.stream.seq in self._in_flight]
        try:
            self.outbox.acked(m.stream.seq for m in fresh)
        except Exception:
            with self._cond:
                self._acks[:0] = acks
            raise
        with self._cond:
            for m in fresh:
                self._in_flight.discard(m.stream.seq)
            self._replaying = max(0, self._replaying - (len(acks) - len(fresh)))
        self.delivered += len(fresh)
        if fresh and self.on_delivered is not None:
            self.on_delivered(fresh)

    def _hand_over(self) -> None:
        with self._cond:
            room = self.max_in_flight - len(self._in_flight) - self._replaying
            replays, self._replays = self._replays[:max(0, room)], self._replays[max(0, room):]
            self._replaying += len(replays)
            room -= len(replays)
        batch = self.outbox.pending(self._cursor, room) if room > 0 else []
        with self._cond:
            for m in batch:
                self._in_flight.add(m.stream.seq)
                self._cursor = max(self._cursor, m.stream.seq)
        for m in replays + batch:
            self.link.send(m)
            self.sent += 1


# --- at a start ---------------------------------------------------------------------------------------------------


def _outbox_files(outbox: Path) -> list[Path]:
    return sorted(outbox.glob("*.jsonl")) if outbox.is_dir() else []


def _read_outbox(path: Path) -> list[schema.Message]:
    messages, bad = [], 0
    for line in path.read_bytes().splitlines():
        if not line.strip():
            continue
        try:
            messages.append(schema.decode(line))
        except schema.SchemaError:
            bad += 1
    if bad:
        log.error("outbox %s: %d lines are not valid messages and are not sent (load the file with `dnnhost "
                  "import` to see why)", path, bad)
    return messages


def migrate_jsonl(directory: Path, outbox: Outbox) -> int:
    """Move what an agent before the SQLite outbox left in JSONL files into the outbox; returns how many."""
    moved = 0
    for path in _outbox_files(directory):
        for message in _read_outbox(path):
            if isinstance(message, schema.DURABLE):
                outbox.put(message)
                moved += 1
        path.unlink()
        log.info("outbox: moved %s into %s", path.name, outbox.path.name)
    return moved


def abort_unfinished(outbox: Outbox, run_id: str, *, resumes: bool = True) -> list[str]:
    """Close every run an earlier start left half-done (killed, crashed, powered off) with an ``aborted`` event
    naming the run that found it (``resumes``: and measures the points left, as the service does); returns their
    ids."""
    aborted = []
    then = f"run {run_id} measures the points left" if resumes else f"found by run {run_id}"
    for last in outbox.unfinished_runs():
        outbox.put(schema.RunEvent(
            board=last.board, ts=time.time(), run_id=last.run_id, seq=last.seq + 1, event="aborted",
            points_total=last.points_total, points_done=last.points_done, precision=last.precision,
            message=f"interrupted after {last.points_done} of {last.points_total} points: the agent stopped without "
                    f"finishing (killed, crashed or powered off); {then}"))
        log.warning("run %s was interrupted after %d of %d points: marked aborted (%s)",
                    last.run_id, last.points_done, last.points_total, then)
        aborted.append(last.run_id)
    return aborted
