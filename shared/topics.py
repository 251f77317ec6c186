"""The topic scheme ``dnnprof/v1/<board>/<kind>[/<run-id>]``.

The major version is a topic level (Homie's rule) so a v2 fleet can share a broker; board and run ids are
restricted to ``[a-z0-9-]`` so they can never contain MQTT wildcards or separators.
"""

from __future__ import annotations

import re
from typing import NamedTuple

from .errors import UserError

ROOT = "dnnprof"
VERSION = "v1"
PREFIX = f"{ROOT}/{VERSION}"

STATUS = "status"  # retained; birth "online", clean stop "offline", last will "lost"
INFO = "info"  # retained board facts
TELEMETRY = "telemetry"  # QoS0 power/temperature summaries
RUN = "run"  # run/<run-id>: QoS1 run events
RESULT = "result"  # QoS1, one message per measured configuration
FAILURE = "failure"  # QoS1, one message per point that failed (out of memory, build failure, NaN output, ...)
CMD = "cmd"  # host -> agent
CMD_ACK = "cmd/ack"  # agent -> host

KINDS = (STATUS, INFO, TELEMETRY, RUN, RESULT, FAILURE, CMD, CMD_ACK)
ID_PATTERN = re.compile(r"^[a-z0-9](?:[a-z0-9-]{0,62})\Z")  # \Z: $ would accept a trailing newline

# Everything any board publishes, for a host subscription.
ALL_BOARDS = f"{PREFIX}/+/#"


def check_id(value: str, what: str = "board id") -> str:
    """Return ``value`` if it is a safe topic level (``[a-z0-9-]``, 1–63 chars, starting alphanumeric)."""
    if not isinstance(value, str) or not ID_PATTERN.match(value):
        raise UserError(
            f"invalid {what} {value!r}: use 1-63 characters of a-z, 0-9 and '-', starting with a letter or digit"
        )
    return value


def slug(text: str) -> str:
    """Turn free text such as a hostname into a valid id (``"Jetson_Orin.local"`` → ``"jetson-orin-local"``)."""
    cleaned = re.sub(r"[^a-z0-9]+", "-", text.lower()).strip("-")[:63].strip("-")
    return cleaned or "board"


def topic(board: str, kind: str, run_id: str | None = None) -> str:
    """Build a topic; ``run_id`` is required for, and only for, ``run`` topics."""
    check_id(board)
    if kind not in KINDS:
        raise ValueError(f"unknown topic kind {kind!r}")
    if (kind == RUN) != (run_id is not None):
        raise ValueError("run topics take a run id; other topics do not")
    if run_id is not None:
        return f"{PREFIX}/{board}/{RUN}/{check_id(run_id, 'run id')}"
    return f"{PREFIX}/{board}/{kind}"


class Topic(NamedTuple):
    board: str
    kind: str
    run_id: str | None = None


def parse(name: str) -> Topic:
    """Split a topic into (board, kind, run_id); raises ValueError for anything outside the scheme."""
    parts = name.split("/")
    if len(parts) < 4 or parts[0] != ROOT or parts[1] != VERSION:
        raise ValueError(f"topic {name!r} is not under {PREFIX}/")
    board, rest = parts[2], parts[3:]
    if not ID_PATTERN.match(board):
        raise ValueError(f"topic {name!r} has an invalid board id")
    if len(rest) == 2 and rest[0] == RUN and ID_PATTERN.match(rest[1]):
        return Topic(board, RUN, rest[1])
    kind = "/".join(rest)
    if kind not in KINDS or kind == RUN:
        raise ValueError(f"topic {name!r} has an unknown kind {kind!r}")
    return Topic(board, kind)


DEFAULT_PORT = 1883


def parse_broker(text: str, default_port: int = DEFAULT_PORT) -> tuple[str, int]:
    """``"host"``, ``"host:port"`` or ``"[::1]:port"`` → (host, port)."""
    text = text.strip()
    if text.startswith("["):
        host, _, rest = text[1:].partition("]")
        sep, port_text = rest[:1], rest[1:]
        if sep not in ("", ":"):  # "[::1]x": junk after the bracket is reported as an invalid port
            sep, port_text = ":", ""
    else:
        host, sep, port_text = text.rpartition(":") if text.count(":") == 1 else (text, "", "")
    if not host:
        raise UserError(f"broker address {text!r} has no host: write HOST or HOST:PORT, e.g. 127.0.0.1:1883")
    if not sep:
        return host, default_port
    # isascii: str.isdigit() is also true for "²" and other digits that int() rejects or the user did not mean
    if not (port_text.isascii() and port_text.isdigit()) or not 0 < int(port_text) < 65536:
        raise UserError(f"broker address {text!r} has an invalid port: write HOST:PORT with a port in 1-65535")
    return host, int(port_text)
