"""The host's store — a SQLite file (WAL), or a shared PostgreSQL database (``sql.py`` holds every difference):
results upserted by id, failed points (``schema.Failure``, kept apart: never a
measurement), board facts and presence, run events, rejected input, the numbers of each board's outbox stream (to
find what never arrived), and the commands sent to agents.

One ``Store`` per thread (connections are not shared across threads); several processes may open the same
store — WAL lets SQLite's readers run while a collector writes, and PostgreSQL takes writers from many machines.
"""

from __future__ import annotations

import contextlib
import os
import time
from collections.abc import Iterator
from pathlib import Path
from typing import NamedTuple

from dnnprof.shared import schema
from dnnprof.shared.errors import UserError

from . import sql

# The newest result of each configuration: what reports read, so they never scan the whole history. clocks is ''
# where a result names no clock state, and precision_method the route as analysis.latest counts it (a result from
# before the route was recorded: as_exported for fp32, else builder_flags), so that a configuration always has a key.
_LATEST = """
CREATE TABLE IF NOT EXISTS latest (
    board TEXT NOT NULL,
    network TEXT NOT NULL,
    backend TEXT NOT NULL,
    device TEXT NOT NULL,
    precision TEXT NOT NULL,
    batch INTEGER NOT NULL,
    power_mode TEXT NOT NULL,
    clocks TEXT NOT NULL,
    precision_method TEXT NOT NULL,
    id TEXT NOT NULL,
    ts REAL NOT NULL,
    PRIMARY KEY (board, network, backend, device, precision, batch, power_mode, clocks, precision_method)
) WITHOUT ROWID;
"""

_SCHEMA = _LATEST + """
CREATE TABLE IF NOT EXISTS results (
    id TEXT PRIMARY KEY,
    board TEXT NOT NULL,
    run_id TEXT NOT NULL,
    ts REAL NOT NULL,
    network TEXT NOT NULL,
    backend TEXT NOT NULL,
    precision TEXT NOT NULL,
    batch INTEGER NOT NULL,
    payload TEXT NOT NULL,
    received REAL NOT NULL
);
CREATE INDEX IF NOT EXISTS results_board ON results (board, run_id);
CREATE TABLE IF NOT EXISTS boards (
    board TEXT PRIMARY KEY,
    info TEXT,
    state TEXT,
    session INTEGER,
    state_ts REAL
);
CREATE TABLE IF NOT EXISTS run_events (
    board TEXT NOT NULL,
    run_id TEXT NOT NULL,
    seq INTEGER NOT NULL,
    event TEXT NOT NULL,
    payload TEXT NOT NULL,
    PRIMARY KEY (board, run_id, seq)
);
-- Points that produced no measurement (schema.Failure), by id like results; never read as results. power_mode is
-- schema.NO_POWER_MODE where the failure names none, as in latest, so that a configuration always has a key.
CREATE TABLE IF NOT EXISTS failures (
    id TEXT PRIMARY KEY,
    board TEXT NOT NULL,
    run_id TEXT NOT NULL,
    ts REAL NOT NULL,
    network TEXT NOT NULL,
    model_sha256 TEXT NOT NULL,
    backend TEXT NOT NULL,
    device TEXT NOT NULL,
    precision TEXT NOT NULL,
    batch INTEGER NOT NULL,
    power_mode TEXT NOT NULL,
    error TEXT NOT NULL,
    stage TEXT NOT NULL,
    payload TEXT NOT NULL,
    received REAL NOT NULL
);
CREATE INDEX IF NOT EXISTS failures_config ON failures (board, model_sha256, backend, device, precision, batch,
                                                        power_mode);
CREATE TABLE IF NOT EXISTS rejected (
    {rowid_column}
    received REAL NOT NULL,
    source TEXT NOT NULL,
    reason TEXT NOT NULL,
    payload BLOB
);
-- Each board's outbox streams: the highest number announced or received, and when it last rose (Unix seconds).
-- Version 4 adds ``settled`` (see _migrate): every number up to it is received or unrecoverable, so a gap search
-- starts above it rather than at 1.
CREATE TABLE IF NOT EXISTS streams (
    board TEXT NOT NULL,
    stream INTEGER NOT NULL,
    high INTEGER NOT NULL,
    changed REAL NOT NULL,
    PRIMARY KEY (board, stream)
) WITHOUT ROWID;
-- Every number received (results, failures and run events, stored or duplicate): what is below the high mark and
-- not here is missing.
CREATE TABLE IF NOT EXISTS stream_numbers (
    board TEXT NOT NULL,
    stream INTEGER NOT NULL,
    seq INTEGER NOT NULL,
    received REAL NOT NULL,
    PRIMARY KEY (board, stream, seq)
) WITHOUT ROWID;
-- Numbers no replay can recover (the agent's outbox no longer holds them): never asked for again.
CREATE TABLE IF NOT EXISTS stream_lost (
    board TEXT NOT NULL,
    stream INTEGER NOT NULL,
    first INTEGER NOT NULL,
    last INTEGER NOT NULL,
    reason TEXT NOT NULL,
    ts REAL NOT NULL,
    PRIMARY KEY (board, stream, first, last)
) WITHOUT ROWID;
-- Commands to agents (this host's and any other's seen on the broker) and their acks. A row may hold only an ack:
-- the answer to a command this store never saw.
CREATE TABLE IF NOT EXISTS commands (
    id TEXT PRIMARY KEY,
    board TEXT NOT NULL,
    action TEXT,
    payload TEXT,
    sent REAL,
    ack TEXT,
    acked REAL
);
"""


# Keep the newer result; equal timestamps keep the larger id, so the outcome never depends on arrival order.
_UPSERT_LATEST = """
INSERT INTO latest (board, network, backend, device, precision, batch, power_mode, clocks, precision_method, id, ts)
{rows}
ON CONFLICT (board, network, backend, device, precision, batch, power_mode, clocks, precision_method) DO UPDATE SET
id = excluded.id, ts = excluded.ts
WHERE excluded.ts > latest.ts OR (excluded.ts = latest.ts AND excluded.id > latest.id)
"""
# The schema version (SQLite's PRAGMA user_version, PostgreSQL's dnnprof_schema table). 1 added the latest table
# (filled from the results of an older store); 2 the stream tables and commands (filled from the stream numbers of
# stored results and run events); 3 the clock state and the precision route in latest's key (the table rebuilt from
# the results). The failures table needs no version: CREATE TABLE IF NOT EXISTS adds it, empty, to an older store
# (which never received a failure). 4 streams' settled mark (0: the gap search starts at 1, as before).
VERSION = 4


def _result_mode(e, t: str = "") -> str:
    """A result's power mode in SQL, as schema.power_mode() gives it (``t``: the table's alias and a dot)."""
    return (f"coalesce(nullif({e.json(t + 'payload', 'conditions.power_mode')}, ''), "
            f"nullif({e.json(t + 'payload', 'provenance.power_mode')}, ''), '{schema.NO_POWER_MODE}')")


def _result_clocks(e, t: str = "") -> str:
    """A result's clock state in SQL, as analysis.row gives it ('' for none)."""
    return (f"coalesce(nullif({e.json(t + 'payload', 'conditions.clocks')}, ''), "
            f"nullif({e.json(t + 'payload', 'provenance.clocks')}, ''), '')")


def _failure_clocks(e, t: str = "") -> str:
    return f"coalesce({e.json(t + 'payload', 'clocks')}, '')"


def _result_method(e, t: str = "") -> str:
    """A result's precision route in SQL, as precision_method() gives it."""
    return (f"coalesce(nullif({e.json(t + 'payload', 'precision_method')}, ''), CASE WHEN {t}precision = "
            "'fp32' THEN 'as_exported' ELSE 'builder_flags' END)")



def precision_method(result: schema.Result) -> str:
    """How a result's precision was made, as configurations count it: the recorded route, else (an agent from before
    routes were recorded) the only one there was — the file's own fp32, or TensorRT's builder flags."""
    return result.precision_method or ("as_exported" if result.precision == "fp32" else "builder_flags")


def result_clocks(result: schema.Result) -> str:
    """A result's clock state as configurations count it ('' for none)."""
    return (result.conditions.clocks if result.conditions else None) or result.provenance.clocks or ""
# What makes two failed points, or a failed point and a result, the same configuration (with the clock state, which
# failures hold in their payload only: _failure_clocks).
FAILURE_KEY = ("board", "model_sha256", "backend", "device", "precision", "batch", "power_mode")


_REJECTED_COLUMNS = "received, source, reason, payload"


class Rejected(NamedTuple):
    """One refused message or line: ``payload`` holds at most its first 64 KiB (None: there was none)."""

    id: int  # the table's rowid
    received: float  # Unix seconds
    source: str  # "mqtt:TOPIC" or "import:FILE:LINE"
    reason: str
    payload: bytes | None


def _rejected(row: tuple) -> Rejected:
    rowid, received, source, reason, payload = row
    if isinstance(payload, str):  # SQLite hands back TEXT for a payload someone stored as text
        payload = payload.encode("utf-8", "surrogatepass")
    return Rejected(rowid, received, source, reason, payload)


class FailedPoints(NamedTuple):
    """What ``Store.failed_points`` found: the failures a report shows, and how many it leaves out."""

    current: list[schema.Failure]  # the newest failure of each configuration no later result replaced
    superseded: int  # configurations whose newest failure a later result of the same configuration replaced


class Gap(NamedTuple):
    """Numbers ``first``..``last`` (both included) of a board's outbox stream that never arrived."""

    board: str
    stream: int  # the stream's id: the agent's outbox creation time, Unix milliseconds
    first: int
    last: int


class Lost(NamedTuple):
    """Numbers no replay can recover, and why."""

    board: str
    stream: int
    first: int
    last: int
    reason: str
    ts: float  # Unix seconds it was recorded


class StreamState(NamedTuple):
    """One outbox stream as this store knows it."""

    board: str
    stream: int
    high: int  # the highest number announced (status, telemetry) or received
    received: int  # distinct numbers received
    changed: float  # Unix seconds the high mark last rose


def _merged(ranges: list[tuple[int, int]]) -> list[tuple[int, int]]:
    """Sorted, possibly overlapping ranges joined into disjoint ones (adjacent ones too)."""
    out: list[tuple[int, int]] = []
    for first, last in sorted(ranges):
        if out and first <= out[-1][1] + 1:
            out[-1] = (out[-1][0], max(out[-1][1], last))
        else:
            out.append((first, last))
    return out


def subtract(ranges: list[tuple[int, int]], holes: list[tuple[int, int]]) -> list[tuple[int, int]]:
    """``ranges`` (sorted, disjoint) without the numbers in ``holes`` (any order, may overlap); O(n + m log m)."""
    holes = _merged(holes)
    out, j = [], 0
    for first, last in ranges:
        while j < len(holes) and holes[j][1] < first:
            j += 1
        at, k = first, j
        while k < len(holes) and holes[k][0] <= last:
            if holes[k][0] > at:
                out.append((at, holes[k][0] - 1))
            at = max(at, holes[k][1] + 1)
            k += 1
        if at <= last:
            out.append((at, last))
    return out


def _printable(text: str) -> str:
    """``text`` with NUL characters, raw or as JSON's escape, written as U+0000."""
    return text.replace("\x00", "U+0000").replace("\\u0000", "U+0000")


def default_path() -> Path:
    """``$XDG_DATA_HOME/dnnprof/results.sqlite`` (``~/.local/share/...`` when unset)."""
    base = os.environ.get("XDG_DATA_HOME") or Path.home() / ".local" / "share"
    return Path(base) / "dnnprof" / "results.sqlite"


def demo_path() -> Path:
    """``demo.sqlite`` beside the default store: ``dnnhost demo``'s own, so a demo never mixes into real results."""
    return default_path().with_name("demo.sqlite")


class Store:
    """The store ``db`` names: a ``postgresql://`` URL, or a SQLite file (default: ``default_path()``)."""

    def __init__(self, db: str | Path | None = None) -> None:
        self.engine = sql.engine(db or default_path())
        self.path = self.engine.path  # the SQLite file; None for PostgreSQL
        self.where = self.engine.where  # what to print: the file, or the URL without its password
        try:
            self.db = self.engine.connect()
            self.engine.script(self.db, _SCHEMA)
            self._migrate()
        except self.engine.errors as exc:
            reason = sql.scrubbed(next(iter(str(exc).strip().splitlines()), exc.__class__.__name__), db or "")
            raise UserError(f"cannot open the result store {self.where}: {reason} — pass another with --db") from None

    def _migrate(self) -> None:
        e = self.engine
        if e.version(self.db) >= VERSION:
            return
        with self.transaction(immediate=True):
            e.lock(self.db, "dnnprof-schema")
            version = e.version(self.db)  # another process may have migrated meanwhile
            if version < 2:
                # Messages stored before the stream tables existed may carry numbers already: count them received.
                for table, when in (("results", "received"), ("failures", "received"),
                                    ("run_events", f"CAST({e.json('payload', 'ts')} AS DOUBLE PRECISION)")):
                    seq = f"CAST({e.json('payload', 'stream.seq')} AS BIGINT)"
                    self.db.execute(
                        "INSERT INTO stream_numbers (board, stream, seq, received) SELECT board, "
                        f"CAST({e.json('payload', 'stream.id')} AS BIGINT), {seq}, {when} FROM {table} "
                        f"WHERE {seq} >= 1 ON CONFLICT DO NOTHING")
                self.db.execute(
                    "INSERT INTO streams (board, stream, high, changed) SELECT board, stream, max(seq), max(received) "
                    "FROM stream_numbers WHERE true GROUP BY board, stream ON CONFLICT (board, stream) DO UPDATE SET "
                    f"high = {e.greatest('streams.high', 'excluded.high')}")
            if version < 3:
                # latest's key grew (clocks, precision route): rebuilt from the results, which hold everything.
                # "WHERE true" lets SQLite tell the upsert's ON CONFLICT from a join constraint.
                self.db.execute("DROP TABLE IF EXISTS latest")
                self.db.execute(e.ddl(_LATEST))  # one statement: executescript would commit the transaction
                self.db.execute(_UPSERT_LATEST.format(rows=(
                    f"SELECT board, network, backend, {e.json('payload', 'device')}, precision, batch, "
                    f"{_result_mode(e)}, {_result_clocks(e)}, {_result_method(e)}, id, ts FROM results WHERE true")))
            if version < 4 and not e.has_column(self.db, "streams", "settled"):
                self.db.execute("ALTER TABLE streams ADD COLUMN settled BIGINT NOT NULL DEFAULT 0")
            if version < VERSION:
                e.set_version(self.db, VERSION)

    def close(self) -> None:
        self.db.close()

    @contextlib.contextmanager
    def transaction(self, *, immediate: bool = False) -> Iterator[Store]:
        """One transaction around the block: committed when it ends, rolled back when it raises. Writes outside
        one each commit on their own (autocommit); a batch inside one costs a single commit. ``immediate`` takes
        SQLite's write lock at once rather than at the first write."""
        self.engine.begin(self.db, immediate)
        try:
            yield self
            self.db.execute("COMMIT")
        except BaseException:
            # A failed COMMIT (SQLite busy) leaves the transaction open: ended here, so the next BEGIN can start.
            with contextlib.suppress(*self.engine.errors):  # a lost connection has nothing left to roll back
                self.db.execute("ROLLBACK")
            raise

    def lock(self, name: str) -> None:
        """Inside a transaction: hold ``name`` until it ends, so that writers deciding the same thing (which
        collector asks for a gap) take turns, whichever machine they run on."""
        self.engine.lock(self.db, name)

    def retryable(self, exc: BaseException) -> bool:
        """Whether a transaction failed only because another writer's crossed it: run it again."""
        return self.engine.retryable(exc)

    def __enter__(self) -> Store:
        return self

    def __exit__(self, *exc) -> None:
        self.close()

    def add(self, message: schema.Message) -> bool:
        """Store any message; returns False when it was already there (a re-delivery) or is stale.

        A result, failure or run event with a stream number has the number recorded, stored or not; a status raises
        its stream's high mark. Telemetry is live-only: ``mark`` takes its high mark."""
        if isinstance(message, schema.Result):
            added = self.add_result(message)
        elif isinstance(message, schema.Failure):
            added = self.add_failure(message)
        elif isinstance(message, schema.RunEvent):
            cur = self.db.execute(
                "INSERT INTO run_events (board, run_id, seq, event, payload) VALUES (?, ?, ?, ?, ?) "
                "ON CONFLICT DO NOTHING",
                (message.board, message.run_id, message.seq, message.event, schema.encode(message).decode()),
            )
            added = cur.rowcount == 1
        elif isinstance(message, schema.BoardInfo):
            self.db.execute(
                "INSERT INTO boards (board, info) VALUES (?, ?) ON CONFLICT(board) DO UPDATE SET info = excluded.info",
                (message.board, schema.encode(message).decode()),
            )
            return True
        elif isinstance(message, schema.Status):
            return self.set_status(message)
        elif isinstance(message, schema.Command):
            return self.add_command(message)
        elif isinstance(message, schema.CommandAck):
            return self.add_ack(message)[0]
        else:
            return False  # telemetry is live-only
        if message.stream is not None:
            self.number(message.board, message.stream)
        return added

    def add_result(self, result: schema.Result) -> bool:
        cur = self.db.execute(
            "INSERT INTO results (id, board, run_id, ts, network, backend, precision, batch, payload, received) "
            "VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?) ON CONFLICT DO NOTHING",
            (result.id, result.board, result.run_id, result.ts, result.network, result.backend, result.precision,
             result.batch, schema.encode(result).decode(), time.time()),
        )
        if cur.rowcount != 1:
            return False
        self.db.execute(_UPSERT_LATEST.format(rows="VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?)"), (
            result.board, result.network, result.backend, result.device, result.precision, result.batch,
            schema.power_mode(result), result_clocks(result), precision_method(result), result.id, result.ts))
        return True

    def add_failure(self, failure: schema.Failure) -> bool:
        """Keep a point that produced no measurement; False when its id is already stored (a re-delivery)."""
        cur = self.db.execute(
            "INSERT INTO failures (id, board, run_id, ts, network, model_sha256, backend, device, precision, batch, "
            "power_mode, error, stage, payload, received) VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?) "
            "ON CONFLICT DO NOTHING",
            (failure.id, failure.board, failure.run_id, failure.ts, failure.network, failure.model_sha256,
             failure.backend, failure.device, failure.precision, failure.batch,
             failure.power_mode or schema.NO_POWER_MODE, failure.error, failure.stage, schema.encode(failure).decode(),
             time.time()))
        return cur.rowcount == 1

    def add_many(self, messages: list[schema.Message]) -> int:
        """Store a batch in one transaction; returns how many were new."""
        with self.transaction():
            return sum(self.add(m) for m in messages)

    def set_status(self, status: schema.Status) -> bool:
        # A stale will's mark is at most the current one: max() in mark() keeps it harmless, so it always counts.
        if status.stream is not None:
            self.mark(status.board, status.stream)
        # A will from an older session must not mark a board that has since reconnected as lost.
        cur = self.db.execute(
            "INSERT INTO boards (board, state, session, state_ts) VALUES (?, ?, ?, ?) "
            "ON CONFLICT(board) DO UPDATE SET state = excluded.state, session = excluded.session, "
            "state_ts = excluded.state_ts WHERE boards.session IS NULL OR excluded.session >= boards.session",
            (status.board, status.state, status.session, status.ts),
        )
        return cur.rowcount == 1

    def mark(self, board: str, stream: schema.Stream) -> bool:
        """Raise ``board``'s high mark of stream ``stream.id`` to ``stream.seq``; True when it rose (or the stream is
        new), so the stream's gaps may have changed."""
        cur = self.db.execute(
            "INSERT INTO streams (board, stream, high, changed) VALUES (?, ?, ?, ?) ON CONFLICT (board, stream) "
            "DO UPDATE SET high = excluded.high, changed = excluded.changed WHERE excluded.high > streams.high",
            (board, stream.id, stream.seq, time.time()))
        return cur.rowcount == 1

    def number(self, board: str, stream: schema.Stream) -> bool:
        """Record number ``stream.seq`` of a result, failure or run event as received; True when it is new. Number 0
        (which no message has: numbering starts at 1) is not recorded."""
        if stream.seq < 1:
            return False
        cur = self.db.execute("INSERT INTO stream_numbers (board, stream, seq, received) VALUES (?, ?, ?, ?) "
                              "ON CONFLICT DO NOTHING",
                              (board, stream.id, stream.seq, time.time()))
        self.mark(board, stream)
        return cur.rowcount == 1

    def gaps(self, board: str | None = None, stream: int | None = None, *, settle: bool = False) -> list[Gap]:
        """The numbers missing below each stream's high mark, unrecoverable ones left out, sorted by board, stream
        and first number; of one board, or one of its streams. ``settle``: also raise each stream's settled mark
        (a write: the collector's checks do; a reader such as ``dnnhost gaps`` need not)."""
        where, args = "WHERE true", []
        if board is not None:
            where, args = where + " AND s.board = ?", [*args, board]
        if stream is not None:
            where, args = where + " AND s.stream = ?", [*args, stream]
        # The holes are found by the engine in one pass over the primary key, each number against the one before
        # it — only above the stream's settled mark, below which every number is received or unrecoverable: a
        # collector asks after every batch, and a board's history grows with every number it ever sent. CROSS JOIN
        # makes SQLite take the streams first and search the numbers above each mark (PostgreSQL plans it freely).
        # Holes and each stream's tail come from ONE statement, so from one snapshot: read apart, a number another
        # collector commits in between would hide a hole below it and let the settled mark pass over it.
        missing: dict[tuple[str, int], list[tuple[int, int]]] = {}
        settled: dict[tuple[str, int], tuple[int, int]] = {}
        rows = self.db.execute(
            "SELECT 0, board, stream, prev + 1, seq - 1, 0 FROM (SELECT n.board, n.stream, n.seq, lag(n.seq, 1, "
            "s.settled) OVER (PARTITION BY n.board, n.stream ORDER BY n.seq) AS prev FROM streams s CROSS JOIN "
            f"stream_numbers n {where} AND n.board = s.board AND n.stream = s.stream AND n.seq > s.settled) AS "
            "numbers WHERE seq > prev + 1 UNION ALL "
            # The tail: above the highest number received (or the settled mark), up to the high mark.
            "SELECT 1, board, stream, high, (SELECT max(seq) FROM stream_numbers n WHERE n.board = s.board AND "
            f"n.stream = s.stream AND n.seq > s.settled), settled FROM streams s {where}", [*args, *args])
        for kind, b, s, a, z, mark in rows:
            if kind == 0:  # a hole: a..z
                missing.setdefault((b, s), []).append((a, z))
                continue
            high, top = a, max(z or 0, mark)
            settled[b, s] = (mark, high)
            if high > top:
                missing.setdefault((b, s), []).append((top + 1, high))
        lost: dict[tuple[str, int], list[tuple[int, int]]] = {}
        for b, s, first, last in self.db.execute(f"SELECT board, stream, first, last FROM stream_lost s {where}", args):
            lost.setdefault((b, s), []).append((first, last))
        gaps = [Gap(b, s, first, last) for (b, s), ranges in sorted(missing.items())
                for first, last in subtract(sorted(ranges), lost.get((b, s), []))]
        if settle:
            self._settle(settled, gaps)
        return gaps

    def _settle(self, settled: dict[tuple[str, int], tuple[int, int]], gaps: list[Gap]) -> None:
        """Raise each stream's settled mark (``settled``: its mark and high mark as read) to just below its first
        gap, or to its high mark when it has none. Only a mark that moves is written; a number below it never
        changes state (received stays received, one declared unrecoverable is never asked for again), so a higher
        mark another collector wrote meanwhile is kept."""
        first_gap: dict[tuple[str, int], int] = {}
        for g in gaps:
            first_gap.setdefault((g.board, g.stream), g.first)
        for (b, s), (mark, high) in settled.items():
            new = first_gap[b, s] - 1 if (b, s) in first_gap else high
            if new > mark:
                self.db.execute(f"UPDATE streams SET settled = {self.engine.greatest('settled', '?')} WHERE board = ? "
                                "AND stream = ?", (new, b, s))

    def lose(self, board: str, stream: int, first: int, last: int, reason: str) -> int:
        """Record numbers ``first``..``last`` of a stream as unrecoverable; returns how many of them were missing
        (received or already unrecoverable ones are not counted again)."""
        if first > last:
            return 0
        missing = sum(min(g.last, last) - max(g.first, first) + 1 for g in self.gaps(board, stream)
                      if g.first <= last and g.last >= first)
        self.db.execute("INSERT INTO stream_lost (board, stream, first, last, reason, ts) "
                        "VALUES (?, ?, ?, ?, ?, ?) ON CONFLICT DO NOTHING",
                        (board, stream, first, last, reason, time.time()))
        return missing

    def streams(self, board: str | None = None) -> list[StreamState]:
        """Every outbox stream heard of (by a number or a high mark), sorted by board and stream."""
        query, args = ("SELECT board, stream, high, (SELECT COUNT(*) FROM stream_numbers n WHERE n.board = s.board "
                       "AND n.stream = s.stream), changed FROM streams s"), ()
        if board is not None:
            query, args = query + " WHERE board = ?", (board,)
        return [StreamState(*row) for row in self.db.execute(query + " ORDER BY board, stream", args)]

    def lost(self, board: str | None = None) -> list[Lost]:
        """The unrecoverable ranges, sorted by board, stream and first number."""
        query, args = "SELECT board, stream, first, last, reason, ts FROM stream_lost", ()
        if board is not None:
            query, args = query + " WHERE board = ?", (board,)
        return [Lost(*row) for row in self.db.execute(query + " ORDER BY board, stream, first, last", args)]

    def boards_changed(self, since: float) -> list[str]:
        """Boards with a stream whose high mark rose at or after ``since`` (Unix seconds): what another collector
        sharing this store may have moved."""
        return [row[0] for row in self.db.execute("SELECT DISTINCT board FROM streams WHERE changed >= ?", (since,))]

    def board_states(self) -> dict[str, str]:
        """Each board's last presence (online, offline, lost) as stored."""
        return dict(self.db.execute("SELECT board, state FROM boards WHERE state IS NOT NULL"))

    def replays(self, board: str, since: float) -> list[tuple[int, int, int]]:
        """(stream, first, last) of the replays asked of ``board`` at or after ``since`` (Unix seconds), by any
        collector of this store."""
        rows = self.db.execute("SELECT payload FROM commands WHERE board = ? AND action = 'replay' AND sent >= ?",
                               (board, since))
        return [(c.stream, c.first, c.last) for c in (schema.decode(row[0]) for row in rows)]

    def add_command(self, command: schema.Command) -> bool:
        """Keep a command to an agent; True when it is new here. An ack that arrived before it is applied now."""
        cur = self.db.execute(
            "INSERT INTO commands (id, board, action, payload, sent) VALUES (?, ?, ?, ?, ?) ON CONFLICT (id) "
            "DO UPDATE SET board = excluded.board, action = excluded.action, payload = excluded.payload, "
            "sent = excluded.sent WHERE commands.payload IS NULL",
            (command.id, command.board, command.action, schema.encode(command).decode(), command.ts))
        if cur.rowcount != 1:
            return False
        row = self.db.execute("SELECT ack FROM commands WHERE id = ?", (command.id,)).fetchone()
        if row[0] is not None:
            self._apply_ack(command, schema.decode(row[0]))
        return True

    def add_ack(self, ack: schema.CommandAck) -> tuple[bool, int]:
        """Keep an agent's answer to a command. Its ``unavailable`` ranges (within the replay asked for) become
        unrecoverable when the command is known here, addressed to the board that answers. Returns (new, how many
        missing numbers became unrecoverable)."""
        cur = self.db.execute(
            "INSERT INTO commands (id, board, ack, acked) VALUES (?, ?, ?, ?) ON CONFLICT (id) DO UPDATE SET "
            "ack = excluded.ack, acked = excluded.acked WHERE commands.ack IS NULL",
            (ack.id, ack.board, schema.encode(ack).decode(), ack.ts))
        if cur.rowcount != 1:
            return False, 0
        row = self.db.execute("SELECT payload FROM commands WHERE id = ?", (ack.id,)).fetchone()
        return True, self._apply_ack(schema.decode(row[0]), ack) if row[0] is not None else 0

    def _apply_ack(self, command: schema.Command, ack: schema.CommandAck) -> int:
        # Another board cannot declare this one's numbers gone (an ACL confines each board to its own topics), and
        # an agent cannot declare more gone than it was asked for.
        if (command.action != "replay" or command.board != ack.board or command.stream is None
                or command.first is None or command.last is None):
            return 0
        reason = f"unavailable on the agent (replay {command.id}{': ' + ack.reason if ack.reason else ''})"
        return sum(self.lose(ack.board, command.stream, max(first, command.first), min(last, command.last), reason)
                   for first, last in ack.unavailable)

    def command(self, id: str) -> tuple[schema.Command | None, schema.CommandAck | None]:
        """A command and its ack by the command's id; each None when not seen."""
        row = self.db.execute("SELECT payload, ack FROM commands WHERE id = ?", (id,)).fetchone()
        if row is None:
            return None, None
        return tuple(schema.decode(text) if text is not None else None for text in row)

    def reject(self, source: str, reason: str, payload: bytes | None) -> int:
        """Keep refused input for inspection; returns its id (``dnnhost rejected --show ID``)."""
        # A source or reason may quote the input it refuses: a NUL in it, raw or JSON-escaped, is spelled out
        # (PostgreSQL's text holds none), so that keeping a refusal never fails for what made it one.
        cur = self.db.execute(f"INSERT INTO rejected (received, source, reason, payload) VALUES (?, ?, ?, ?) "
                              f"RETURNING {self.engine.rowid}", (time.time(), _printable(source),
                                                                 _printable(reason), payload))
        return cur.fetchone()[0]

    def rejected(self, limit: int | None = None, since: float | None = None, source: str | None = None
                 ) -> list[Rejected]:
        """Rejected input, newest first: received at or after ``since`` (Unix seconds), ``source`` containing that
        text (case-sensitive), at most ``limit`` rows."""
        rowid = self.engine.rowid
        query, args = f"SELECT {rowid}, {_REJECTED_COLUMNS} FROM rejected WHERE true", []
        if since is not None:
            query, args = query + " AND received >= ?", [*args, since]
        if source:
            query, args = query + f" AND {self.engine.contains('source')}", [*args, source]
        query += f" ORDER BY received DESC, {rowid} DESC"
        if limit is not None:
            query, args = query + " LIMIT ?", [*args, limit]
        return [_rejected(row) for row in self.db.execute(query, args)]

    def rejected_one(self, id: int) -> Rejected | None:
        rowid = self.engine.rowid
        row = self.db.execute(f"SELECT {rowid}, {_REJECTED_COLUMNS} FROM rejected WHERE {rowid} = ?",
                              (id,)).fetchone()
        return _rejected(row) if row else None

    def results(self, board: str | None = None) -> list[schema.Result]:
        query, args = "SELECT payload FROM results", ()
        if board:
            query, args = query + " WHERE board = ?", (board,)
        return [schema.decode(row[0]) for row in self.db.execute(query + " ORDER BY ts", args)]

    def latest_results(self, board: str | None = None) -> list[schema.Result]:
        """The newest result of each configuration (board, network, backend, device, precision, batch, power mode,
        clock state, precision route)."""
        query, args = "SELECT r.payload FROM latest l JOIN results r ON r.id = l.id", ()
        if board:
            query, args = query + " WHERE l.board = ?", (board,)
        return [schema.decode(row[0]) for row in self.db.execute(query, args)]

    def failures(self, board: str | None = None) -> list[schema.Failure]:
        """Every failed point stored, oldest first (of one board)."""
        query, args = "SELECT payload FROM failures", ()
        if board:
            query, args = query + " WHERE board = ?", (board,)
        return [schema.decode(row[0]) for row in self.db.execute(query + " ORDER BY ts, id", args)]

    def failed_points(self, board: str | None = None) -> FailedPoints:
        """The failed points a report shows (of one board): the newest failure of each configuration — board,
        model_sha256, backend, device, precision, batch, power mode, clock state — unless a result of that
        configuration is newer (measured since: then it is counted as superseded, not shown). A failure that names no
        clock state (an older agent) is superseded by a newer result in any. Oldest first."""
        key = " AND ".join(f"g.{k} = f.{k}" for k in FAILURE_KEY)
        e = self.engine
        key += f" AND {_failure_clocks(e, 'g.')} = {_failure_clocks(e, 'f.')}"
        clocks = _failure_clocks(e, "f.")
        # A result's device and model_sha256 are in its payload only: the cheap columns narrow first.
        replaced = ("EXISTS (SELECT 1 FROM results r WHERE r.board = f.board AND r.backend = f.backend AND "
                    "r.precision = f.precision AND r.batch = f.batch AND r.ts > f.ts AND "
                    f"{e.json('r.payload', 'model_sha256')} = f.model_sha256 AND "
                    f"{e.json('r.payload', 'device')} = f.device AND {_result_mode(e, 'r.')} = f.power_mode "
                    f"AND ({clocks} = '' OR {_result_clocks(e, 'r.')} = {clocks}))")
        # The newest of each configuration; equal timestamps keep the larger id, as in latest.
        query = (f"SELECT f.payload, {replaced} FROM failures f WHERE NOT EXISTS (SELECT 1 FROM failures g WHERE "
                 f"{key} AND (g.ts > f.ts OR (g.ts = f.ts AND g.id > f.id)))")
        args: tuple = ()
        if board:
            query, args = query + " AND f.board = ?", (board,)
        current, superseded = [], 0
        for payload, later in self.db.execute(query + " ORDER BY f.ts, f.id", args):
            if later:
                superseded += 1
            else:
                current.append(schema.decode(payload))
        return FailedPoints(current, superseded)

    def board_names(self) -> list[str]:
        """Every board the store has heard of: by its birth or info, or by a result or a failed point."""
        rows = self.db.execute("SELECT board FROM boards UNION SELECT DISTINCT board FROM latest "
                               "UNION SELECT DISTINCT board FROM failures ORDER BY 1")
        return [row[0] for row in rows]

    def boards(self) -> dict[str, dict]:
        out = {}
        for board, info, state, session in self.db.execute("SELECT board, info, state, session FROM boards"):
            out[board] = {"info": schema.decode(info) if info else None, "state": state, "session": session}
        return out

    def count(self, table: str = "results", **where) -> int:
        if table not in ("results", "failures", "run_events", "rejected", "boards", "commands"):
            raise ValueError(table)
        clause = " AND ".join(f"{k} = ?" for k in where)
        query = f"SELECT COUNT(*) FROM {table}" + (f" WHERE {clause}" if clause else "")
        return self.db.execute(query, tuple(where.values())).fetchone()[0]

    def run_finished(self, board: str, run_id: str) -> schema.RunEvent | None:
        """The event that ended a run (finished, failed, aborted or cancelled); None while it runs."""
        row = self.db.execute(
            "SELECT payload FROM run_events WHERE board = ? AND run_id = ? AND event IN ('finished', 'failed', "
            "'aborted', 'cancelled') ORDER BY seq DESC LIMIT 1", (board, run_id)).fetchone()
        return schema.decode(row[0]) if row else None
