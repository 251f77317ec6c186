"""TLS, secret files and socket options towards the broker, the same rules for the agent and the host.

Every function raises ``UserError`` with the bare reason (``/etc/dnnprof/mqtt-password is empty: ...``), never a
secret; a caller that reports in its own terms prefixes it (the agent's config loader: ``FILE: [section] key: ``).
A secret file must not be readable by group or others, the way ssh refuses a private key: one others can read is
no longer secret.
"""

from __future__ import annotations

import socket
import ssl
import stat
from pathlib import Path

from .errors import UserError


def check_private(path: Path, what: str, *, owner: str | None = None) -> None:
    """Refuse ``path`` when group or others can read it (``mode & 0o077``); ``what`` names what it holds (``"a
    private key"``), ``owner`` whom it should belong to (``"the agent's user (dnnprof)"``, added to the fix)."""
    mode = stat.S_IMODE(path.stat().st_mode)
    if mode & 0o077:
        raise UserError(f"{path} is readable by group or others (mode {mode:04o}) and holds {what}: "
                        f"run chmod 600 {path}" + (f" and chown it to {owner}" if owner else ""))


def tls_context(ca_file: Path | None, cert_file: Path | None = None, key_file: Path | None = None, *,
                what: str = "the TLS files") -> ssl.SSLContext:
    """An ``ssl.SSLContext`` that verifies the broker's certificate and host name against ``ca_file`` (None: the
    system's CA certificates), presenting the client certificate ``cert_file`` with ``key_file`` when given.
    ``what`` names the files in the message of a garbled certificate or a key that does not match."""
    try:
        context = ssl.create_default_context(cafile=str(ca_file) if ca_file is not None else None)
        if cert_file is not None:
            context.load_cert_chain(str(cert_file), str(key_file) if key_file is not None else None)
    except (OSError, ValueError) as exc:  # ssl.SSLError is an OSError; the message names no secret
        reason = str(exc).splitlines()[0] if str(exc) else repr(exc)
        raise UserError(f"cannot load {what} ({reason}): give PEM files, the key matching the certificate") from None
    return context


def read_password(path: Path, *, what: str = "the broker password") -> str:
    """The password a file holds: UTF-8, trailing newlines dropped; an empty one is refused. ``what`` names it in
    the message of an empty file. Check the file with ``check_private`` first."""
    try:
        password = path.read_text(encoding="utf-8").rstrip("\r\n")
    except (OSError, UnicodeDecodeError) as exc:  # the class only: the message could quote the file
        raise UserError(f"cannot read {path} ({exc.__class__.__name__}): make it a UTF-8 text file holding only "
                        "the password") from None
    if not password:
        raise UserError(f"{path} is empty: write {what} in it")
    return password


def no_delay(client) -> None:
    """Turn off Nagle's algorithm on a connected paho client's socket (paho leaves it on): an MQTT client writes a
    PUBACK and then a small PUBLISH back to back, and Nagle holds the second until the broker's delayed ACK of the
    first (40 ms on Linux) — every command's round trip paid that twice."""
    sock = client.socket()
    if sock is not None and sock.family in (socket.AF_INET, socket.AF_INET6):
        sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
