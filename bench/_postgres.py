"""A private PostgreSQL server for the tests and benchmarks: initdb into a fresh folder, started on its own port and
socket, stopped and removed at the end — never the machine's own server. Loaded by ``tests/conftest.py`` and by
the benchmarks.

As root (CI), initdb and postgres refuse to run: both then run as an unprivileged user (``postgres`` when the
server package created it, else ``nobody``), and the folder is handed to that user.
"""

from __future__ import annotations

import glob
import os
import pwd
import shutil
import signal
import socket
import subprocess
import tempfile
import time
import uuid
from pathlib import Path


def binaries() -> Path | None:
    """The folder holding initdb and postgres: the one initdb on PATH links to, else Debian's
    /usr/lib/postgresql/VERSION/bin (newest)."""
    found = shutil.which("initdb")
    if found:
        return Path(found).resolve().parent
    versions = sorted(glob.glob("/usr/lib/postgresql/*/bin/initdb"), key=lambda p: int(p.split("/")[4]))
    return Path(versions[-1]).parent if versions else None


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


class PrivatePostgres:
    """``with PrivatePostgres() as pg: url = pg.database()`` — a server of its own, trust auth on 127.0.0.1.

    ``durable``: keep PostgreSQL's own defaults (fsync, synchronous commit) — what the benchmarks measure; the tests
    turn both off, as they need no crash safety."""

    def __init__(self, durable: bool = False) -> None:
        self.bin = binaries()
        if self.bin is None:
            raise RuntimeError("PostgreSQL's server is not installed (initdb not found): apt-get install postgresql")
        self.durable = durable
        self.port = _free_port()
        self.root = Path(tempfile.mkdtemp(prefix="dnnprof-pg-"))
        self.proc: subprocess.Popen | None = None
        self.user = None
        if os.geteuid() == 0:
            self.user = next((u for u in ("postgres", "nobody") if _exists(u)), None)
            if self.user is None:
                raise RuntimeError("running as root, and neither a postgres nor a nobody user to run PostgreSQL as")
            account = pwd.getpwnam(self.user)
            os.chown(self.root, account.pw_uid, account.pw_gid)
            os.chmod(self.root, 0o700)

    def _as_user(self) -> dict:
        """Popen's arguments that run a program as the unprivileged user (nothing when not root)."""
        if self.user is None:
            return {}
        account = pwd.getpwnam(self.user)
        return {"user": account.pw_uid, "group": account.pw_gid, "extra_groups": [], "cwd": self.root}

    def start(self, timeout_s: float = 30.0) -> PrivatePostgres:
        data = self.root / "data"
        subprocess.run([str(self.bin / "initdb"), "-D", str(data), "-U", "dnnprof", "--auth=trust", "-E", "UTF8",
                        "--no-instructions", "--no-sync"], check=True, capture_output=True, timeout=120,
                       **self._as_user())
        settings = ["-c", "listen_addresses=127.0.0.1", "-c", f"unix_socket_directories={self.root}",
                    "-c", "max_connections=100", "-c", "shared_buffers=128MB"]
        if not self.durable:
            settings += ["-c", "fsync=off", "-c", "synchronous_commit=off", "-c", "full_page_writes=off"]
        self.log = (self.root / "server.log").open("wb")
        self.proc = subprocess.Popen([str(self.bin / "postgres"), "-D", str(data), "-p", str(self.port), *settings],
                                     stdout=self.log, stderr=subprocess.STDOUT, **self._as_user())
        deadline = time.monotonic() + timeout_s
        while True:
            ready = subprocess.run([str(self.bin / "pg_isready"), "-q", "-h", "127.0.0.1", "-p", str(self.port)])
            if ready.returncode == 0:
                return self
            if self.proc.poll() is not None or time.monotonic() > deadline:
                self.stop()
                raise RuntimeError(f"the private PostgreSQL did not start: {(self.root / 'server.log')}")
            time.sleep(0.1)

    def url(self, database: str = "postgres") -> str:
        return f"postgresql://dnnprof@127.0.0.1:{self.port}/{database}"

    def database(self, name: str | None = None) -> str:
        """A new, empty database on this server; its URL."""
        import psycopg

        name = name or f"t_{uuid.uuid4().hex[:12]}"
        with psycopg.connect(self.url(), autocommit=True) as db:
            db.execute(f'CREATE DATABASE "{name}"')
        return self.url(name)

    def stop(self) -> None:
        if self.proc is not None and self.proc.poll() is None:
            self.proc.send_signal(signal.SIGINT)  # fast shutdown: ends open sessions, where SIGTERM waits for them
            try:
                self.proc.wait(20)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait()
        shutil.rmtree(self.root, ignore_errors=True)

    def __enter__(self) -> PrivatePostgres:
        return self.start()

    def __exit__(self, *exc) -> None:
        self.stop()


def _exists(user: str) -> bool:
    try:
        pwd.getpwnam(user)
    except KeyError:
        return False
    return True
