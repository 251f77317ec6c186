"""systemd glue for ``dnnagent serve``: sd_notify readiness and status (``Type=notify``), SIGTERM/SIGINT as a
stop at the next point boundary, and log lines journald reads with their priorities."""

from __future__ import annotations

import contextlib
import logging
import os
import signal
import socket
import sys
import threading
from collections.abc import Iterator

log = logging.getLogger(__name__)


class Notifier:
    """sd_notify(3) without libsystemd: one AF_UNIX datagram per call to the socket named by ``$NOTIFY_SOCKET``
    (a path, or ``@name`` for an abstract socket). Without the variable (not started by systemd) it does nothing.

    ``notify("READY=1", "STATUS=measuring resnet18 b=8")`` sends the assignments newline-separated in one datagram.
    A failed send is logged once and never stops the agent: systemd's view of it is not worth a crash.
    """

    def __init__(self, address: str | None) -> None:
        self.address = address or None
        self._warned = False
        if self.address and self.address[0] not in "/@":
            log.warning("NOTIFY_SOCKET=%r is neither a path nor @abstract: systemd will not hear from the agent",
                        self.address)
            self.address = None

    @classmethod
    def from_environ(cls) -> Notifier:
        return cls(os.environ.get("NOTIFY_SOCKET"))

    def __call__(self, *assignments: str) -> bool:
        """Send ``KEY=value`` assignments (newlines inside a value are replaced); False when nothing was sent."""
        if self.address is None:
            return False
        lines = [a.replace("\n", " ") for a in assignments]
        target = "\0" + self.address[1:] if self.address.startswith("@") else self.address
        try:
            with socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM | socket.SOCK_CLOEXEC) as s:
                s.connect(target)
                s.sendall("\n".join(lines).encode())
        except OSError as exc:
            if not self._warned:
                self._warned = True
                log.warning("cannot notify systemd at %s (%s)", self.address, exc.strerror or exc)
            return False
        return True


@contextlib.contextmanager
def stop_on_signals(stop: threading.Event) -> Iterator[None]:
    """While the block runs, SIGTERM and SIGINT set ``stop`` (the sweep ends at the next point boundary); a second
    one raises KeyboardInterrupt to stop at once. Main thread only (Python's rule for signal handlers)."""

    def handler(signum, frame) -> None:
        name = signal.Signals(signum).name
        if stop.is_set():
            log.warning("%s again: stopping now, in the middle of the point", name)
            raise KeyboardInterrupt
        log.info("%s: stopping (a point being measured is finished first; send it again to stop at once)", name)
        stop.set()

    previous = {s: signal.signal(s, handler) for s in (signal.SIGTERM, signal.SIGINT)}
    try:
        yield
    finally:
        for s, h in previous.items():
            signal.signal(s, h)


class _JournalFormatter(logging.Formatter):
    """``<N>`` syslog priority prefixes, which journald reads from a service's stderr (sd-daemon(3))."""

    PRIORITY = {logging.DEBUG: 7, logging.INFO: 6, logging.WARNING: 4, logging.ERROR: 3, logging.CRITICAL: 2}

    def format(self, record: logging.LogRecord) -> str:
        text = super().format(record).replace("\n", " | ")  # one journal entry per event
        return f"<{self.PRIORITY.get(record.levelno, 6)}>{text}"


def log_to_stderr(verbose: bool = False) -> None:
    """One line per event on stderr: with journald priorities when stderr is the journal (``$JOURNAL_STREAM``
    names its device and inode, systemd.exec(5)), else with a timestamp for a terminal."""
    handler = logging.StreamHandler(sys.stderr)
    journal = os.environ.get("JOURNAL_STREAM", "")
    try:
        st = os.fstat(sys.stderr.fileno())
        to_journal = journal == f"{st.st_dev}:{st.st_ino}"
    except (OSError, ValueError):
        to_journal = False
    if to_journal:
        handler.setFormatter(_JournalFormatter("%(name)s: %(message)s"))
    else:
        handler.setFormatter(logging.Formatter("%(asctime)s %(levelname)s %(name)s: %(message)s"))
    root = logging.getLogger()
    root.handlers[:] = [handler]
    root.setLevel(logging.DEBUG if verbose else logging.INFO)
