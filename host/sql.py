"""The two SQL engines the store runs on, and every difference between them: how to connect, column types, JSON
paths, the schema version, locks, and which errors are worth a retry. ``store.py`` writes its SQL once, with ``?``
placeholders and the names these objects give; nothing else in the host knows which engine it talks to.

* ``SQLite``: one file (WAL), the default — nothing to install or run.
* ``Postgres``: ``postgresql://USER@HOST[:PORT]/DB`` through psycopg 3 (the ``postgres`` extra), for a store a team
  shares and several collectors write at once.
"""

from __future__ import annotations

import re
import sqlite3
import zlib
from pathlib import Path
from typing import Any
from urllib.parse import parse_qsl, urlsplit, urlunsplit

from dnnprof.shared.errors import UserError

INT64_MIN, INT64_MAX = -(1 << 63), (1 << 63) - 1


class Unstorable(ValueError):
    """A value the engine cannot hold (an integer past 64 bits, a NUL character in PostgreSQL text): the message
    carrying it is rejected, as one SQLite cannot hold is, and the transaction goes on."""


def is_url(db: str | Path | None) -> bool:
    """Whether ``--db`` names a PostgreSQL database rather than a SQLite file."""
    return isinstance(db, str) and db.startswith(("postgresql://", "postgres://"))


def _secrets(url: str) -> list[str]:
    """The secrets a URL holds: its password, in the authority or as a ``password``/``sslpassword`` parameter."""
    parts = urlsplit(url)
    found = [parts.password] if parts.password else []
    return found + [value for key, value in parse_qsl(parts.query, keep_blank_values=True)
                    if key in ("password", "sslpassword") and value]


def shown(url: str) -> str:
    """A database URL fit to print: every password replaced by ``***``."""
    parts = urlsplit(url)
    netloc = parts.netloc.replace(f":{parts.password}@", ":***@", 1) if parts.password else parts.netloc
    query = "&".join(f"{k}={'***' if k in ('password', 'sslpassword') else v}"
                     for k, v in parse_qsl(parts.query, keep_blank_values=True))
    return urlunsplit(parts._replace(netloc=netloc, query=query))


def scrubbed(text: str, db: str | Path) -> str:
    """``text`` (an error the driver raised) without the secrets of ``db``'s URL, which libpq may quote."""
    if is_url(db):
        for secret in _secrets(str(db)):
            text = text.replace(secret, "***")
    return text


def where(db: str | Path) -> str:
    """A store as printed: the file, or the URL with its password replaced by ``***``."""
    return shown(str(db)) if is_url(db) else str(db)


class SQLite:
    """SQLite 3.35+ (RETURNING): the file's own connection, autocommit, transactions begun by the store."""

    name = "sqlite"
    rowid = "rowid"  # the implicit row number the rejected table is addressed by
    rowid_column = ""

    def __init__(self, path: Path) -> None:
        self.path = path
        self.where = where(path)

    def connect(self) -> sqlite3.Connection:
        self.path.parent.mkdir(parents=True, exist_ok=True)
        db = sqlite3.connect(self.path, timeout=30, isolation_level=None, check_same_thread=True)
        db.execute("PRAGMA journal_mode=WAL")
        db.execute("PRAGMA synchronous=NORMAL")
        return db

    errors = (OSError, sqlite3.DatabaseError)

    def ddl(self, script: str) -> str:
        return script.replace("{rowid_column}", self.rowid_column)

    def script(self, db: sqlite3.Connection, script: str) -> None:
        db.executescript(self.ddl(script))

    @staticmethod
    def json(column: str, path: str) -> str:
        """The text (or number) at ``path`` ("a.b") of a JSON column, NULL where absent."""
        return f"json_extract({column}, '$.{path}')"

    @staticmethod
    def greatest(a: str, b: str) -> str:
        return f"max({a}, {b})"

    @staticmethod
    def contains(column: str) -> str:
        """``column`` contains the parameter's text, case-sensitively and without LIKE's wildcards."""
        return f"instr({column}, ?) > 0"

    @staticmethod
    def has_column(db, table: str, column: str) -> bool:
        return any(row[1] == column for row in db.execute(f"PRAGMA table_info({table})"))

    @staticmethod
    def version(db) -> int:
        return db.execute("PRAGMA user_version").fetchone()[0]

    @staticmethod
    def set_version(db, version: int) -> None:
        db.execute(f"PRAGMA user_version = {int(version)}")

    @staticmethod
    def begin(db, immediate: bool) -> None:
        # IMMEDIATE takes the file's write lock at once: the one lock SQLite has, so it serves as every named lock.
        db.execute("BEGIN IMMEDIATE" if immediate else "BEGIN")

    @staticmethod
    def lock(db, name: str) -> None:
        """Inside a transaction begun ``immediate``: already exclusive (one writer per file)."""

    @staticmethod
    def retryable(exc: BaseException) -> bool:
        """A transaction that failed for another writer's sake (locked past the busy timeout): worth running again."""
        return isinstance(exc, sqlite3.OperationalError) and "locked" in str(exc)


class Postgres:
    """PostgreSQL 12+ through psycopg 3, autocommit, transactions begun by the store; ``?`` placeholders are turned
    into psycopg's ``%s`` once per statement."""

    name = "postgresql"
    rowid = "id"
    rowid_column = "id BIGINT GENERATED BY DEFAULT AS IDENTITY PRIMARY KEY,"

    def __init__(self, url: str) -> None:
        self.url = url
        self.path = None
        self.where = where(url)
        try:
            import psycopg
        except ImportError:
            raise UserError("a PostgreSQL store needs psycopg: pip install 'dnnprof[postgres]'") from None
        self.psycopg = psycopg
        self.errors = (psycopg.Error,)

    # A member cut off while it holds a lock must not stall every other writer until the server notices (hours):
    # a lock waited for too long is an error the collector retries, an idle transaction ends, the link is watched.
    SESSION = {"connect_timeout": 10, "keepalives": 1, "keepalives_idle": 30, "keepalives_interval": 10,
               "keepalives_count": 3, "options": "-c lock_timeout=30s -c idle_in_transaction_session_timeout=120s"}

    def connect(self) -> _PgConnection:
        return _PgConnection(self.psycopg.connect(self.url, autocommit=True, **self.SESSION))

    # SQLite's type names as PostgreSQL's: REAL is 4 bytes there, INTEGER 4 (stream ids are Unix milliseconds).
    _TYPES = [(re.compile(r"\bREAL\b"), "DOUBLE PRECISION"), (re.compile(r"\bINTEGER\b"), "BIGINT"),
              (re.compile(r"\bBLOB\b"), "BYTEA"), (re.compile(r"\)\s*WITHOUT ROWID"), ")")]

    def ddl(self, script: str) -> str:
        script = script.replace("{rowid_column}", self.rowid_column)
        for pattern, replacement in self._TYPES:
            script = pattern.sub(replacement, script)
        return script

    def script(self, db: _PgConnection, script: str) -> None:
        # CREATE TABLE IF NOT EXISTS is not safe against itself on PostgreSQL (two sessions on a new database can
        # both try, one failing on the catalog's unique index): collectors started together take turns.
        with db.raw.transaction():
            self.lock(db, "dnnprof-schema")
            db.raw.execute(self.ddl(script) + ";\n" + _PG_VERSION_TABLE)

    @staticmethod
    def json(column: str, path: str) -> str:
        return f"({column}::jsonb #>> '{{{','.join(path.split('.'))}}}')"

    @staticmethod
    def greatest(a: str, b: str) -> str:
        return f"greatest({a}, {b})"

    @staticmethod
    def contains(column: str) -> str:
        return f"strpos({column}, ?) > 0"

    @staticmethod
    def has_column(db, table: str, column: str) -> bool:
        return db.execute("SELECT 1 FROM information_schema.columns WHERE table_schema = current_schema() AND "
                          "table_name = ? AND column_name = ?", (table, column)).fetchone() is not None

    @staticmethod
    def version(db) -> int:
        row = db.execute("SELECT max(version) FROM dnnprof_schema").fetchone()
        return row[0] or 0

    @staticmethod
    def set_version(db, version: int) -> None:
        db.execute("DELETE FROM dnnprof_schema")
        db.execute("INSERT INTO dnnprof_schema (version) VALUES (?)", (int(version),))

    @staticmethod
    def begin(db, immediate: bool) -> None:
        db.execute("BEGIN")

    @staticmethod
    def lock(db, name: str) -> None:
        """A lock on ``name`` held until the transaction ends: writers that take the same name go one at a time."""
        db.execute("SELECT pg_advisory_xact_lock(?)", (zlib.crc32(name.encode()) - (1 << 31),))

    def retryable(self, exc: BaseException) -> bool:
        """Two collectors' transactions that crossed (a deadlock, a serialization failure): run it again."""
        errors = self.psycopg.errors
        return isinstance(exc, (errors.DeadlockDetected, errors.SerializationFailure, errors.LockNotAvailable))


_PG_VERSION_TABLE = "CREATE TABLE IF NOT EXISTS dnnprof_schema (version INTEGER NOT NULL)"


class _PgConnection:
    """psycopg's connection with sqlite3's ``execute(sql, args)`` shape, checking values PostgreSQL cannot hold
    before they reach it: a refused value would abort the whole transaction there (SQLite refuses the statement)."""

    def __init__(self, raw) -> None:
        self.raw = raw
        self._sql: dict[str, str] = {}

    def execute(self, sql: str, args: tuple | list = ()) -> Any:
        self._check(args)
        return self.raw.execute(self._query(sql), args)

    def _query(self, sql: str) -> str:
        query = self._sql.get(sql)
        if query is None:
            query = self._sql[sql] = sql.replace("%", "%%").replace("?", "%s")
        return query

    @staticmethod
    def _check(args: tuple | list) -> None:
        for value in args:
            if isinstance(value, int) and not INT64_MIN <= value <= INT64_MAX:
                raise Unstorable(f"integer {value} out of the store's 64-bit range")
            # A NUL, raw or escaped in a JSON payload: PostgreSQL's text and jsonb hold neither.
            if isinstance(value, str) and ("\x00" in value or "\\u0000" in value):
                raise Unstorable("text with a NUL character (U+0000), which PostgreSQL cannot hold")

    def executemany(self, sql: str, rows: list) -> None:
        for row in rows:
            self._check(row)
        self.raw.cursor().executemany(self._query(sql), rows)

    @property
    def in_transaction(self) -> bool:
        return self.raw.info.transaction_status != self.raw.info.transaction_status.IDLE

    def close(self) -> None:
        self.raw.close()


def engine(db: str | Path) -> SQLite | Postgres:
    """The engine ``--db`` names: a ``postgresql://`` URL, else a SQLite file path."""
    if is_url(db):
        return Postgres(str(db))
    return SQLite(Path(db))
