"""Commands a host sends the agent on ``dnnprof/v1/<board>/cmd``, checked before anything is done, and ``Desk``, the
service's thread that answers them.

Only two actions exist, both fixed code paths: ``replay`` (publish again what the outbox holds) and ``measure`` (one
more point after the sweep). No command names a program, a shell line or a path outside the agent's models_dir;
a batch size is bounded by ``[sweep] max_batch``; a precision must be one the backend runs. Anything else is
refused with a one-line reason, which the agent logs and sends back in a ``CommandAck``.
"""

from __future__ import annotations

import logging
import queue
import threading
import time
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import NamedTuple, Protocol

from dnnprof.agent.backends import Backend
from dnnprof.shared import onnxfile
from dnnprof.shared.onnxfile import ModelFile
from dnnprof.agent.publish.link import MqttLink
from dnnprof.agent.service.config import AgentConfig, model_path
from dnnprof.agent.service.outbox import Courier
from dnnprof.shared import schema
from dnnprof.shared.errors import UserError

log = logging.getLogger(__name__)


class Tally(Protocol):
    """Where the desk counts what it did (``serve.Summary``)."""

    commands: int  # carried out
    refused: int

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


class Desk(threading.Thread):
    """Answers the host's commands. The link queues each raw payload here (``receive``, on paho's thread); this
    thread checks it (above), carries out a replay at once, queues a measure for the main thread
    (after the sweep), and answers every command — refused ones too, with the reason — on ``cmd/ack``."""

    def __init__(self, config: AgentConfig, backend: Backend, summary: Tally) -> None:
        super().__init__(name="commands", daemon=True)
        self.config, self.backend, self.summary = config, backend, summary
        self.inbox: queue.Queue[bytes] = queue.Queue(maxsize=1000)  # a flood of commands is dropped, not hoarded
        self.measures: queue.Queue[Measure] = queue.Queue()
        self.link: MqttLink | None = None
        self.courier: Courier | None = None
        self._done = threading.Event()
        self._dropped = 0

    def attach(self, link: MqttLink, courier: Courier) -> None:
        self.link, self.courier = link, courier

    def receive(self, payload: bytes) -> None:
        try:
            self.inbox.put_nowait(payload)
        except queue.Full:
            self._dropped += 1
            if self._dropped in (1, 10, 100, 1000) or self._dropped % 10_000 == 0:
                log.warning("commands arrive faster than they are answered: %d dropped", self._dropped)

    def stop(self) -> None:
        self._done.set()
        if self.is_alive():
            self.join(5.0)

    def run(self) -> None:
        while not self._done.is_set():
            try:
                payload = self.inbox.get(timeout=0.25)
            except queue.Empty:
                continue
            try:
                ack = self.answer(payload)
                self.link.send(ack)
            except Exception as exc:  # a failed answer must not end the desk: the next command is answered
                log.error("answering a command failed: %s", exc)

    def answer(self, payload: bytes) -> schema.CommandAck:
        """Check and carry out one command; the acknowledgement to send back."""
        board = self.config.board_id
        try:
            command = decode(board, payload)
            if command.action == "replay":
                wanted = check_replay(command)
                if self.courier.error is not None:
                    raise Refused(f"the outbox cannot be read now ({self.courier.error}): ask again later",
                                  command.id)
                replay = self.courier.replay(*wanted)
                log.info("command %s: replay %d-%d of stream %d: %d published again%s", command.id, wanted.first,
                         wanted.last, wanted.stream, replay.replayed,
                         f", {len(replay.unavailable)} ranges no longer held" if replay.unavailable else "")
                self.summary.commands += 1
                return schema.CommandAck(board=board, ts=time.time(), id=command.id, accepted=True,
                                         replayed=replay.replayed, unavailable=replay.unavailable,
                                         reason=f"{replay.replayed} messages published again")
            point = check_measure(command, models_dir=self.config.models_dir, max_batch=self.config.max_batch,
                                  precisions=self.backend.precisions, default_precision=self.config.precisions[0])
            ahead = self.measures.qsize()
            self.measures.put(point)
            self.summary.commands += 1
            what = f"{point.model.name} b={point.batch} {point.precision}"
            log.info("command %s: measure %s queued (%d ahead)", command.id, what, ahead)
            return schema.CommandAck(board=board, ts=time.time(), id=command.id, accepted=True,
                                     reason=f"queued: {what}, measured after the sweep ({ahead} ahead)")
        except Refused as exc:
            self.summary.refused += 1
            log.warning("command %s refused: %s", exc.command_id, exc)
            return schema.CommandAck(board=board, ts=time.time(), id=exc.command_id, accepted=False, reason=str(exc))
