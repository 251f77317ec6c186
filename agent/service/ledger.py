"""The service's ledger of measured points: SQLite in the state directory, so a restarted agent skips what it has.

A point is the same point when the engine and the conditions are the same (``PointKey``): model content (sha256),
batch, precision, backend and its version, device as results name it (``gpu``, ``dla0``, ``cpu``), threads, int8
calibration (the hash of the image set, as the engine cache keys it, or ``random``), power source and its boundary,
nvpmodel power mode, clocks and CPU governor. A point enters the ledger only once its result is safe: acknowledged
by the broker, or written to the outbox file that the next start sends again. A result lost in between (a crash
before the PUBACK) is measured again.
"""

from __future__ import annotations

import json
import logging
import sqlite3
import threading
import time
from dataclasses import asdict, dataclass, fields
from pathlib import Path

from dnnprof.shared import schema
from dnnprof.shared.errors import UserError

log = logging.getLogger(__name__)

# PRAGMA user_version of the file. 1: keys without the power source, the calibration image hash and the governor,
# and "default" for the device; such rows cannot be compared with today's keys, so they are dropped (said in the log).
_SCHEMA = 2


@dataclass(frozen=True)
class PointKey:
    """What makes two measurements of a point the same measurement."""

    model_sha256: str
    batch: int
    precision: str
    backend: str
    backend_version: str
    device: str  # as results name it: "gpu", "dla0", "dla1" (TensorRT), "cpu" (ONNX Runtime)
    threads: int | None  # CPU threads of the backend, where it has that knob (ONNX Runtime)
    calibration: str  # int8: "images:<sha256 of the image set>" or "random"; "" for float precisions
    power_source: str  # the source that measures ("ina3221", "estimate", ...), or "none"
    power_boundary: str  # what it measures ("input_rail", "sum_of_rails", "cpu_package", "estimate"); "" for none
    power_mode: str  # nvpmodel mode, or schema.NO_POWER_MODE on a machine without one
    power_mode_id: int | None
    clocks: str  # as results word it (clocks.ClockState.clocks): "jetson_clocks on", "cpu governor performance"
    governor: str  # the CPU frequency governor, or "unknown"

    def text(self) -> str:
        return json.dumps(asdict(self), sort_keys=True, separators=(",", ":"))


@dataclass(frozen=True)
class Entry:
    result_id: str
    run_id: str
    network: str
    measured_ts: float  # Unix seconds of the result
    persisted: str  # "acknowledged" (PUBACK from the broker) or "outbox" (saved to send at the next start)


_KEY_COLUMNS = [f.name for f in fields(PointKey)]
_COLUMNS = ["key", *_KEY_COLUMNS, "network", "result_id", "run_id", "measured_ts", "persisted", "recorded_ts"]
# One column per key field too, so `sqlite3 ledger.sqlite` shows what was measured under which conditions.
_CREATE = (f"CREATE TABLE points (key TEXT PRIMARY KEY, {', '.join(_KEY_COLUMNS)}, network TEXT NOT NULL, "
           "result_id TEXT NOT NULL, run_id TEXT NOT NULL, measured_ts REAL NOT NULL, persisted TEXT NOT NULL, "
           "recorded_ts REAL NOT NULL)")


def _newer(path: Path, version: int) -> UserError:
    return UserError(f"the ledger {path} was written by a newer dnnprof (format {version}): upgrade the agent, or "
                     "move the file away (every point is then measured again)")


def file_format(path: Path) -> int | None:
    """The ``PRAGMA user_version`` of the SQLite file at ``path``, read without changing it (None: no file);
    raises sqlite3.DatabaseError for a file that is not a database."""
    if not path.exists():
        return None
    db = sqlite3.connect(f"{path.absolute().as_uri()}?mode=ro", uri=True)
    try:
        version = db.execute("PRAGMA user_version").fetchone()[0]
        db.execute("SELECT name FROM sqlite_master").fetchall()  # reads the header: a non-database fails here
    finally:
        db.close()
    return version


def check(path: str | Path) -> None:
    """Raise the UserError ``Ledger(path)`` would, without creating or changing anything (``serve --check``)."""
    path = Path(path)
    try:
        version = file_format(path)
    except sqlite3.DatabaseError as exc:
        raise UserError(f"the ledger {path} cannot be used ({exc}): move it away to start a new one (every point "
                        "is then measured again)") from None
    if version is not None and version > _SCHEMA:
        raise _newer(path, version)


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
                self._db.close()
                raise _newer(self.path, version)
            if version < _SCHEMA:
                self._upgrade(version)
        except sqlite3.DatabaseError as exc:
            raise UserError(f"the ledger {self.path} cannot be used ({exc}): move it away to start a new one "
                            "(every point is then measured again)") from None
        except OSError as exc:
            raise UserError(f"cannot create the ledger in {self.path.parent} ({exc.strerror or exc}): make the "
                            "state directory writable by the agent's user") from None

    def _upgrade(self, version: int) -> None:
        """A new file (format 0), or one from an older agent whose keys cannot be matched: start the table anew."""
        db = self._db
        old = db.execute("SELECT name FROM sqlite_master WHERE type = 'table' AND name = 'points'").fetchone()
        db.execute("BEGIN IMMEDIATE")
        try:
            if old is not None:
                count = db.execute("SELECT COUNT(*) FROM points").fetchone()[0]
                db.execute("DROP TABLE points")
                log.warning("ledger %s: format %d from an older agent keys points without the power source, the "
                            "calibration images' hash and the CPU governor; its %d points are forgotten and "
                            "measured again", self.path, version, count)
            db.execute(_CREATE)
            db.execute("CREATE INDEX points_result ON points (result_id)")
            db.execute(f"PRAGMA user_version = {_SCHEMA}")
            db.execute("COMMIT")
        except BaseException:
            db.execute("ROLLBACK")
            raise

    def get(self, key: PointKey) -> Entry | None:
        """The ledger's entry for ``key``; None when the point was never (safely) measured."""
        with self._lock:
            row = self._db.execute("SELECT result_id, run_id, network, measured_ts, persisted FROM points "
                                   "WHERE key = ?", (key.text(),)).fetchone()
        return Entry(*row) if row else None

    def record(self, key: PointKey, result: schema.Result, persisted: str) -> None:
        """Remember that ``result`` measured ``key`` (a later measurement of the same key replaces it)."""
        k = asdict(key)
        values = (key.text(), *(k[name] for name in _KEY_COLUMNS), result.network, result.id, result.run_id,
                  result.ts, persisted, time.time())
        with self._lock:
            self._db.execute(f"INSERT OR REPLACE INTO points ({', '.join(_COLUMNS)}) "
                             f"VALUES ({', '.join('?' * len(_COLUMNS))})", values)

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
