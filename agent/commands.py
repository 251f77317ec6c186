"""Commands a host sends the agent on ``dnnprof/v1/<board>/cmd``, checked before anything is done.

Only two actions exist, both fixed code paths: ``replay`` (publish again what the outbox holds) and ``measure`` (one
more point after the sweep). No command names a program, a shell line or a path outside the agent's models_dir;
a batch size is bounded by ``[sweep] max_batch``; a precision must be one the backend runs. Anything else is
refused with a one-line reason, which the agent logs and sends back in a ``CommandAck``.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from pathlib import Path
from typing import NamedTuple

from dnnprof.agent.config import model_path
from dnnprof.agent.models import onnxfile
from dnnprof.agent.models.onnxfile import ModelFile
from dnnprof.shared import schema
from dnnprof.shared.errors import UserError

MAX_COMMAND_BYTES = 64 << 10  # a command is a few hundred bytes; anything larger is refused unread
MAX_REPLAY = 10_000  # numbers one replay command may ask for (a host asks for 500 at a time)


class Refused(Exception):
    """A command that is not carried out; ``str()`` is the one-line reason sent back to the host."""

    def __init__(self, reason: str, command_id: str = "invalid") -> None:
        super().__init__(reason)
        self.command_id = command_id


def decode(board: str, payload: bytes) -> schema.Command:
    """The command in ``payload`` addressed to ``board``; raises Refused (command id ``invalid`` when the payload
    is not a command at all)."""
    if len(payload) > MAX_COMMAND_BYTES:
        raise Refused(f"command too large: {len(payload)} bytes, over the {MAX_COMMAND_BYTES}-byte limit")
    try:
        message = schema.decode(payload)
    except schema.SchemaError as exc:
        raise Refused(f"not a valid command: {exc}") from None
    if not isinstance(message, schema.Command):
        raise Refused(f"a {schema.KIND_OF[type(message)]!r} message is not a command")
    if message.board != board:
        raise Refused(f"addressed to board {message.board!r}, not {board!r}", message.id)
    return message


class ReplayRange(NamedTuple):
    stream: int
    first: int
    last: int


def check_replay(command: schema.Command) -> ReplayRange:
    if command.stream is None or command.first is None or command.last is None:
        raise Refused("replay needs stream, first and last", command.id)
    if command.first > command.last:
        raise Refused(f"replay range {command.first}-{command.last} is empty: first must not exceed last",
                      command.id)
    if command.last - command.first >= MAX_REPLAY:
        raise Refused(f"replay of {command.last - command.first + 1} messages: ask for at most {MAX_REPLAY} at "
                      "a time", command.id)
    return ReplayRange(command.stream, command.first, command.last)


class Measure(NamedTuple):
    model: ModelFile
    batch: int
    precision: str


def check_measure(command: schema.Command, *, models_dir: Path, max_batch: int, precisions: Sequence[str],
                  default_precision: str, load: Callable[[Path], ModelFile] = onnxfile.load) -> Measure:
    """The point a ``measure`` command asks for, every part checked: the model a readable ONNX file inside
    ``models_dir``, the batch in 1..``max_batch`` and one the graph accepts, the precision one of ``precisions``."""
    if command.model is None or command.batch is None:
        raise Refused("measure needs model (an ONNX file name in the agent's models_dir) and batch", command.id)
    if command.batch > max_batch:
        raise Refused(f"batch {command.batch} is over this agent's limit of {max_batch} ([sweep] max_batch)",
                      command.id)
    precision = (command.precision or default_precision).lower()
    if precision not in precisions:
        raise Refused(f"precision {command.precision!r}: this agent's backend runs {', '.join(precisions)}",
                      command.id)
    try:
        path = model_path(command.model, models_dir)
    except UserError as exc:
        raise Refused(f"unknown model: {exc}", command.id) from None
    try:
        model = load(path)
        model.check_batch(command.batch)
    except UserError as exc:
        raise Refused(str(exc), command.id) from None
    return Measure(model, command.batch, precision)
