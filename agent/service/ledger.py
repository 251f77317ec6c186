"""The service's ledger of measured points: SQLite in the state directory, so a restarted agent skips what it has.

A point is the same point when the engine and the conditions are the same (``PointKey``): model content (sha256),
batch, precision, backend and its version, device as results name it (``gpu``, ``dla0``, ``cpu``), threads, int8
calibration (the hash of the image set, as the engine cache keys it, or ``random``), power source and its boundary,
nvpmodel power mode, clocks and CPU governor. A point enters the ledger only once its result is safe: acknowledged
by the broker, or written to the outbox file that the next start sends again. A result lost in between (a crash
before the PUBACK) is measured again.

A point that failed is remembered too (``outcome`` ``failed``, with its error class and message), so a restart does
not hit the same out-of-memory or NaN again: the service skips it unless ``retry_failed`` is set. A later
measurement of the same key replaces the failure.

Each point being measured has a row in ``attempts`` until its result or failure is safe. One left there at a start
means the process died during that point — the kernel's out-of-memory killer (a Jetson's CPU and GPU share memory),
a crash in the backend, a kill -9 or a power cut. The first time, the point is tried again (a kill or a power cut
says nothing about it); the second time in a row (``CRASHES``) the service records it as a ``crashed`` failure, so a
point that kills the agent is not tried at every restart forever.
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
# 2: no failures (no outcome, error, message columns): its rows are all measurements, kept.
# 3: no route or accuracy columns: its rows are float or builder-flag points measured without an accuracy set, which
# is what an empty route and accuracy mean, so they are kept (the key's text leaves empty new fields out).
_SCHEMA = 4


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
    # "onnx_converted" when the precision comes from a converted ONNX file; "" for the file's own fp32 and for
    # TensorRT's builder flags (the one route before format 4)
    route: str = ""
    # the content hash of the accuracy set the engine's accuracy is measured on; "" when it is not measured
    accuracy: str = ""

    def text(self) -> str:
        # The fields added in format 4 only when set: the keys of older points stay what they were.
        fields = {k: v for k, v in asdict(self).items() if not (k in _LATER_FIELDS and v == "")}
        return json.dumps(fields, sort_keys=True, separators=(",", ":"))


_LATER_FIELDS = ("route", "accuracy")


@dataclass(frozen=True)
class Entry:
    result_id: str  # the Result's id, or the Failure's
    run_id: str
    network: str
    measured_ts: float  # Unix seconds of the result (or failure)
    persisted: str  # "acknowledged" (PUBACK from the broker) or "outbox" (saved to send at the next start)
    outcome: str = "measured"  # or "failed"
    error: str | None = None  # failed: the error class (schema.FAILURE_KINDS)
    message: str | None = None  # failed: the one-line reason


_KEY_COLUMNS = [f.name for f in fields(PointKey)]
_COLUMNS = ["key", *_KEY_COLUMNS, "network", "result_id", "run_id", "measured_ts", "persisted", "recorded_ts",
            "outcome", "error", "message"]
_OUTCOME_COLUMNS = ("outcome TEXT NOT NULL DEFAULT 'measured'", "error TEXT", "message TEXT")  # added in format 3
_FORMAT4_COLUMNS = ("route TEXT NOT NULL DEFAULT ''", "accuracy TEXT NOT NULL DEFAULT ''")  # added in format 4
# One column per key field too, so `sqlite3 ledger.sqlite` shows what was measured under which conditions.
_CREATE = (f"CREATE TABLE points (key TEXT PRIMARY KEY, {', '.join(_KEY_COLUMNS)}, network TEXT NOT NULL, "
           "result_id TEXT NOT NULL, run_id TEXT NOT NULL, measured_ts REAL NOT NULL, persisted TEXT NOT NULL, "
           f"recorded_ts REAL NOT NULL, {', '.join(_OUTCOME_COLUMNS)})")
_CREATE_ATTEMPTS = ("CREATE TABLE IF NOT EXISTS attempts (key TEXT PRIMARY KEY, network TEXT NOT NULL, run_id TEXT "
                    "NOT NULL, started_ts REAL NOT NULL, crashes INTEGER NOT NULL DEFAULT 0, active INTEGER NOT NULL "
                    "DEFAULT 1)")
CRASHES = 2  # deaths in a row during the same point that make it a crashed failure


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


def remembered(failure: schema.Failure) -> bool:
    """Whether a failure says something about its point worth remembering across a restart: every one but a point
    not run because the backend hung on another (after a restart it may well run)."""
    return not (failure.stage == "not_run" and failure.error == "timeout")


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
            self._db.execute(_CREATE_ATTEMPTS)
        except sqlite3.DatabaseError as exc:
            raise UserError(f"the ledger {self.path} cannot be used ({exc}): move it away to start a new one "
                            "(every point is then measured again)") from None
        except OSError as exc:
            raise UserError(f"cannot create the ledger in {self.path.parent} ({exc.strerror or exc}): make the "
                            "state directory writable by the agent's user") from None

    def _upgrade(self, version: int) -> None:
        """A new file (format 0), one from an older agent whose keys cannot be matched (format 1: start the table
        anew), one without failures (format 2: its rows are measurements, kept) or without routes and accuracy sets
        (format 3: kept, see ``_SCHEMA``)."""
        db = self._db
        old = db.execute("SELECT name FROM sqlite_master WHERE type = 'table' AND name = 'points'").fetchone()
        db.execute("BEGIN IMMEDIATE")
        try:
            if old is not None and version in (2, 3):
                for column in (_OUTCOME_COLUMNS if version == 2 else ()) + _FORMAT4_COLUMNS:
                    db.execute(f"ALTER TABLE points ADD COLUMN {column}")
                db.execute(f"PRAGMA user_version = {_SCHEMA}")
                db.execute("COMMIT")
                return
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
            row = self._db.execute("SELECT result_id, run_id, network, measured_ts, persisted, outcome, error, message "
                                   "FROM points WHERE key = ?", (key.text(),)).fetchone()
        return Entry(*row) if row else None

    def record(self, key: PointKey, result: schema.Result | schema.Failure, persisted: str) -> None:
        """Remember that ``result`` measured ``key``, or that it failed (a Failure); a later record of the same key
        replaces it."""
        k = asdict(key)
        failed = isinstance(result, schema.Failure)
        values = (key.text(), *(k[name] for name in _KEY_COLUMNS), result.network, result.id, result.run_id,
                  result.ts, persisted, time.time(), "failed" if failed else "measured",
                  result.error if failed else None, result.message if failed else None)
        with self._lock:
            self._db.execute(f"INSERT OR REPLACE INTO points ({', '.join(_COLUMNS)}) "
                             f"VALUES ({', '.join('?' * len(_COLUMNS))})", values)

    def acknowledged(self, result_id: str) -> None:
        """A result sent from the outbox reached the broker."""
        with self._lock:
            self._db.execute("UPDATE points SET persisted = 'acknowledged' WHERE result_id = ?", (result_id,))

    # --- points being measured ----------------------------------------------------------------------------------

    def attempting(self, key: PointKey, network: str, run_id: str) -> None:
        """``key`` is about to be measured (by run ``run_id``); the deaths during it so far are kept."""
        with self._lock:
            self._db.execute("INSERT INTO attempts (key, network, run_id, started_ts) VALUES (?, ?, ?, ?) "
                             "ON CONFLICT (key) DO UPDATE SET run_id = excluded.run_id, started_ts = "
                             "excluded.started_ts, active = 1", (key.text(), network, run_id, time.time()))

    def attempted(self, key: PointKey) -> None:
        """``key``'s result or failure is safe: no longer being measured, its deaths forgotten."""
        with self._lock:
            self._db.execute("DELETE FROM attempts WHERE key = ?", (key.text(),))

    def died_during(self) -> list[tuple[PointKey, str, str, int]]:
        """(key, network, run id, deaths in a row) of each point a process began and never finished: it died during
        them. Counted here: the next call sees them only if they are begun (and die) again."""
        with self._lock, self._db:
            self._db.execute("BEGIN IMMEDIATE")
            rows = self._db.execute("SELECT key, network, run_id, crashes + 1 FROM attempts WHERE active = 1 "
                                    "ORDER BY started_ts").fetchall()
            self._db.execute("UPDATE attempts SET crashes = crashes + 1, active = 0 WHERE active = 1")
        return [(PointKey(**json.loads(point)), network, run_id, n) for point, network, run_id, n in rows]

    def clear_attempts(self) -> None:
        """A clean exit: whatever was being measured was stopped on purpose, not a crash."""
        with self._lock:
            self._db.execute("UPDATE attempts SET active = 0 WHERE active = 1")

    def count(self, outcome: str | None = None) -> int:
        """Points remembered (``outcome``: only those ``measured`` or ``failed``)."""
        with self._lock:
            if outcome is None:
                return self._db.execute("SELECT COUNT(*) FROM points").fetchone()[0]
            return self._db.execute("SELECT COUNT(*) FROM points WHERE outcome = ?", (outcome,)).fetchone()[0]

    def close(self) -> None:
        with self._lock:
            self._db.close()
