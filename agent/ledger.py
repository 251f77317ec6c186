"""The service's ledger of measured points: SQLite in the state directory, so a restarted agent skips what it has.

A point is the same point when the engine and the conditions are the same: model content (sha256), batch,
precision, backend and its version, device (default or DLA core), int8 calibration, power mode and clock policy.
A point enters the ledger only once its result is safe: acknowledged by the broker, or written to the outbox file
that the next start sends again. A result lost in between (a crash before the PUBACK) is measured again.
"""

from __future__ import annotations

import json
import sqlite3
import threading
import time
from dataclasses import asdict, dataclass
from pathlib import Path

from dnnprof.shared import schema
from dnnprof.shared.errors import UserError

_SCHEMA = 1  # PRAGMA user_version of the file


@dataclass(frozen=True)
class PointKey:
    """What makes two measurements of a point the same measurement."""

    model_sha256: str
    batch: int
    precision: str
    backend: str
    backend_version: str
    device: str  # "default" (the backend's own device), or "dla0", "dla1"
    calibration: str  # int8: "images:<folder>" or "random"; "" for float precisions
    power_mode: str  # nvpmodel mode, or schema.NO_POWER_MODE on a machine without one
    clocks: str  # "jetson_clocks on, cpu governor schedutil", "cpu governor performance", "unknown"

    def text(self) -> str:
        return json.dumps(asdict(self), sort_keys=True, separators=(",", ":"))


@dataclass(frozen=True)
class Entry:
    result_id: str
    run_id: str
    network: str
    measured_ts: float  # Unix seconds of the result
    persisted: str  # "acknowledged" (PUBACK from the broker) or "outbox" (saved to send at the next start)


class Ledger:
    """``Ledger(path)``: ``get(key)``, ``record(key, result, persisted)``, ``acknowledged(result_id)``. Thread-safe:
    records arrive on the MQTT network thread while the sweep asks on its own."""

    def __init__(self, path: str | Path) -> None:
        self.path = Path(path)
        self._lock = threading.Lock()
        try:
            self.path.parent.mkdir(parents=True, exist_ok=True)
            self._db = sqlite3.connect(self.path, check_same_thread=False, isolation_level=None)
            version = self._db.execute("PRAGMA user_version").fetchone()[0]
            if version > _SCHEMA:
                raise UserError(f"the ledger {self.path} was written by a newer dnnprof (format {version}): upgrade "
                                "the agent, or move the file away (every point is then measured again)")
            self._db.execute("""CREATE TABLE IF NOT EXISTS points (
                key TEXT PRIMARY KEY, model_sha256 TEXT NOT NULL, network TEXT NOT NULL, batch INTEGER NOT NULL,
                precision TEXT NOT NULL, backend TEXT NOT NULL, backend_version TEXT NOT NULL, device TEXT NOT NULL,
                calibration TEXT NOT NULL, power_mode TEXT NOT NULL, clocks TEXT NOT NULL, result_id TEXT NOT NULL,
                run_id TEXT NOT NULL, measured_ts REAL NOT NULL, persisted TEXT NOT NULL, recorded_ts REAL NOT NULL)""")
            self._db.execute("CREATE INDEX IF NOT EXISTS points_result ON points (result_id)")
            self._db.execute(f"PRAGMA user_version = {_SCHEMA}")
        except sqlite3.DatabaseError as exc:
            raise UserError(f"the ledger {self.path} cannot be used ({exc}): move it away to start a new one "
                            "(every point is then measured again)") from None
        except OSError as exc:
            raise UserError(f"cannot create the ledger in {self.path.parent} ({exc.strerror or exc}): make the "
                            "state directory writable by the agent's user") from None

    def get(self, key: PointKey) -> Entry | None:
        """The ledger's entry for ``key``; None when the point was never (safely) measured."""
        with self._lock:
            row = self._db.execute("SELECT result_id, run_id, network, measured_ts, persisted FROM points "
                                   "WHERE key = ?", (key.text(),)).fetchone()
        return Entry(*row) if row else None

    def record(self, key: PointKey, result: schema.Result, persisted: str) -> None:
        """Remember that ``result`` measured ``key`` (a later measurement of the same key replaces it)."""
        k = asdict(key)
        with self._lock:
            self._db.execute(
                "INSERT OR REPLACE INTO points VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?)",
                (key.text(), k["model_sha256"], result.network, k["batch"], k["precision"], k["backend"],
                 k["backend_version"], k["device"], k["calibration"], k["power_mode"], k["clocks"], result.id,
                 result.run_id, result.ts, persisted, time.time()))

    def acknowledged(self, result_id: str) -> None:
        """A result sent from the outbox reached the broker."""
        with self._lock:
            self._db.execute("UPDATE points SET persisted = 'acknowledged' WHERE result_id = ?", (result_id,))

    def count(self) -> int:
        with self._lock:
            return self._db.execute("SELECT COUNT(*) FROM points").fetchone()[0]

    def close(self) -> None:
        with self._lock:
            self._db.close()
