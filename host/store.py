"""The host's SQLite store (WAL): results upserted by id, board facts and presence, run events, rejected input.

One ``Store`` per thread (sqlite3 connections are not shared across threads); several processes may open the
same file — WAL lets readers run while a collector writes.
"""

from __future__ import annotations

import os
import sqlite3
import time
from pathlib import Path
from typing import NamedTuple

from dnnprof.shared import schema
from dnnprof.shared.errors import UserError

_SCHEMA = """
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
-- The newest result of each configuration: what reports read, so they never scan the whole history.
CREATE TABLE IF NOT EXISTS latest (
    board TEXT NOT NULL,
    network TEXT NOT NULL,
    backend TEXT NOT NULL,
    device TEXT NOT NULL,
    precision TEXT NOT NULL,
    batch INTEGER NOT NULL,
    power_mode TEXT NOT NULL,
    id TEXT NOT NULL,
    ts REAL NOT NULL,
    PRIMARY KEY (board, network, backend, device, precision, batch, power_mode)
) WITHOUT ROWID;
CREATE TABLE IF NOT EXISTS rejected (
    received REAL NOT NULL,
    source TEXT NOT NULL,
    reason TEXT NOT NULL,
    payload BLOB
);
"""


# Keep the newer result; equal timestamps keep the larger id, so the outcome never depends on arrival order.
_UPSERT_LATEST = """
INSERT INTO latest (board, network, backend, device, precision, batch, power_mode, id, ts) {rows}
ON CONFLICT (board, network, backend, device, precision, batch, power_mode) DO UPDATE SET id = excluded.id,
ts = excluded.ts WHERE excluded.ts > latest.ts OR (excluded.ts = latest.ts AND excluded.id > latest.id)
"""
VERSION = 1  # PRAGMA user_version: 1 added the latest table (filled from the results of an older store)


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


def default_path() -> Path:
    """``$XDG_DATA_HOME/dnnprof/results.sqlite`` (``~/.local/share/...`` when unset)."""
    base = os.environ.get("XDG_DATA_HOME") or Path.home() / ".local" / "share"
    return Path(base) / "dnnprof" / "results.sqlite"


class Store:
    def __init__(self, path: str | Path | None = None) -> None:
        self.path = Path(path) if path else default_path()
        try:
            self.path.parent.mkdir(parents=True, exist_ok=True)
            self.db = sqlite3.connect(self.path, timeout=30, isolation_level=None)
            self.db.execute("PRAGMA journal_mode=WAL")
            self.db.execute("PRAGMA synchronous=NORMAL")
            self.db.executescript(_SCHEMA)
            self._migrate()
        except (OSError, sqlite3.DatabaseError) as exc:
            raise UserError(f"cannot open the result store {self.path}: {exc} — pass another file with --db") from None

    def _migrate(self) -> None:
        if self.db.execute("PRAGMA user_version").fetchone()[0] >= VERSION:
            return
        with self.db:
            self.db.execute("BEGIN IMMEDIATE")
            if self.db.execute("PRAGMA user_version").fetchone()[0] < VERSION:  # another process may have done it
                mode = ("coalesce(json_extract(payload, '$.conditions.power_mode'), "
                        f"json_extract(payload, '$.provenance.power_mode'), '{schema.NO_POWER_MODE}')")
                # "WHERE true" lets SQLite tell the upsert's ON CONFLICT from a join constraint.
                self.db.execute(_UPSERT_LATEST.format(rows=(
                    f"SELECT board, network, backend, json_extract(payload, '$.device'), precision, batch, {mode}, "
                    "id, ts FROM results WHERE true")))
                self.db.execute(f"PRAGMA user_version = {VERSION}")

    def close(self) -> None:
        self.db.close()

    def __enter__(self) -> Store:
        return self

    def __exit__(self, *exc) -> None:
        self.close()

    def add(self, message: schema.Message) -> bool:
        """Store any message; returns False when it was already there (a re-delivery) or is stale."""
        if isinstance(message, schema.Result):
            return self.add_result(message)
        if isinstance(message, schema.BoardInfo):
            self.db.execute(
                "INSERT INTO boards (board, info) VALUES (?, ?) ON CONFLICT(board) DO UPDATE SET info = excluded.info",
                (message.board, schema.encode(message).decode()),
            )
            return True
        if isinstance(message, schema.Status):
            return self.set_status(message)
        if isinstance(message, schema.RunEvent):
            cur = self.db.execute(
                "INSERT OR IGNORE INTO run_events (board, run_id, seq, event, payload) VALUES (?, ?, ?, ?, ?)",
                (message.board, message.run_id, message.seq, message.event, schema.encode(message).decode()),
            )
            return cur.rowcount == 1
        return False  # telemetry is live-only

    def add_result(self, result: schema.Result) -> bool:
        cur = self.db.execute(
            "INSERT OR IGNORE INTO results (id, board, run_id, ts, network, backend, precision, batch, payload, "
            "received) VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?)",
            (result.id, result.board, result.run_id, result.ts, result.network, result.backend, result.precision,
             result.batch, schema.encode(result).decode(), time.time()),
        )
        if cur.rowcount != 1:
            return False
        self.db.execute(_UPSERT_LATEST.format(rows="VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?)"), (
            result.board, result.network, result.backend, result.device, result.precision, result.batch,
            schema.power_mode(result), result.id, result.ts))
        return True

    def add_many(self, messages: list[schema.Message]) -> int:
        """Store a batch in one transaction; returns how many were new."""
        with self.db:
            self.db.execute("BEGIN")
            return sum(self.add(m) for m in messages)

    def set_status(self, status: schema.Status) -> bool:
        # A will from an older session must not mark a board that has since reconnected as lost.
        cur = self.db.execute(
            "INSERT INTO boards (board, state, session, state_ts) VALUES (?, ?, ?, ?) "
            "ON CONFLICT(board) DO UPDATE SET state = excluded.state, session = excluded.session, "
            "state_ts = excluded.state_ts WHERE boards.session IS NULL OR excluded.session >= boards.session",
            (status.board, status.state, status.session, status.ts),
        )
        return cur.rowcount == 1

    def reject(self, source: str, reason: str, payload: bytes | None) -> int:
        """Keep refused input for inspection; returns its id (``dnnhost rejected --show ID``)."""
        cur = self.db.execute("INSERT INTO rejected (received, source, reason, payload) VALUES (?, ?, ?, ?)",
                              (time.time(), source, reason, payload))
        return cur.lastrowid

    def rejected(self, limit: int | None = None, since: float | None = None, source: str | None = None
                 ) -> list[Rejected]:
        """Rejected input, newest first: received at or after ``since`` (Unix seconds), ``source`` containing that
        text (case-sensitive), at most ``limit`` rows."""
        query, args = f"SELECT rowid, {_REJECTED_COLUMNS} FROM rejected WHERE 1", []
        if since is not None:
            query, args = query + " AND received >= ?", [*args, since]
        if source:
            query, args = query + " AND instr(source, ?) > 0", [*args, source]  # instr: no LIKE wildcards in TEXT
        query += " ORDER BY received DESC, rowid DESC"
        if limit is not None:
            query, args = query + " LIMIT ?", [*args, limit]
        return [_rejected(row) for row in self.db.execute(query, args)]

    def rejected_one(self, id: int) -> Rejected | None:
        row = self.db.execute(f"SELECT rowid, {_REJECTED_COLUMNS} FROM rejected WHERE rowid = ?", (id,)).fetchone()
        return _rejected(row) if row else None

    def results(self, board: str | None = None) -> list[schema.Result]:
        query, args = "SELECT payload FROM results", ()
        if board:
            query, args = query + " WHERE board = ?", (board,)
        return [schema.decode(row[0]) for row in self.db.execute(query + " ORDER BY ts", args)]

    def latest_results(self, board: str | None = None) -> list[schema.Result]:
        """The newest result of each configuration (board, network, backend, device, precision, batch, mode)."""
        query, args = "SELECT r.payload FROM latest l JOIN results r ON r.id = l.id", ()
        if board:
            query, args = query + " WHERE l.board = ?", (board,)
        return [schema.decode(row[0]) for row in self.db.execute(query, args)]

    def board_names(self) -> list[str]:
        """Every board the store has heard of: by its birth or info, or by a result."""
        rows = self.db.execute("SELECT board FROM boards UNION SELECT DISTINCT board FROM latest ORDER BY 1")
        return [row[0] for row in rows]

    def boards(self) -> dict[str, dict]:
        out = {}
        for board, info, state, session in self.db.execute("SELECT board, info, state, session FROM boards"):
            out[board] = {"info": schema.decode(info) if info else None, "state": state, "session": session}
        return out

    def count(self, table: str = "results", **where) -> int:
        if table not in ("results", "run_events", "rejected", "boards"):
            raise ValueError(table)
        clause = " AND ".join(f"{k} = ?" for k in where)
        query = f"SELECT COUNT(*) FROM {table}" + (f" WHERE {clause}" if clause else "")
        return self.db.execute(query, tuple(where.values())).fetchone()[0]

    def run_finished(self, board: str, run_id: str) -> schema.RunEvent | None:
        row = self.db.execute(
            "SELECT payload FROM run_events WHERE board = ? AND run_id = ? AND event IN ('finished', 'failed') "
            "ORDER BY seq DESC LIMIT 1", (board, run_id)).fetchone()
        return schema.decode(row[0]) if row else None
