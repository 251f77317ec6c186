"""Commands a host sends the agent on ``dnnprof/v1/<board>/cmd``, checked before anything is done, and ``Desk``, the
service's thread that answers them.

The actions are fixed code paths: ``replay`` (publish again what the outbox holds), ``measure`` (one more point) and
``sweep_start`` (a sweep of models x batches x precisions), both queued in the outbox and run after the configured
sweep (``runs.Conductor``), ``sweep_cancel`` and ``sweep_status``. No command names a program, a shell line or a
path outside the agent's models_dir; a batch size is bounded by ``[sweep] max_batch``, a sweep by the schema's list
lengths; a precision must be one the backend runs; a power mode must be the one the board is in (this agent does
not switch modes). Anything else is refused with a one-line reason, which the agent logs and sends back in a
``CommandAck``.
"""

from __future__ import annotations

import collections
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
from dnnprof.agent.measure.sweep import new_run_id
from dnnprof.agent.service.outbox import Courier
from dnnprof.agent.service.runs import Conductor
from dnnprof.shared import schema
from dnnprof.shared.errors import UserError

log = logging.getLogger(__name__)


class Tally(Protocol):
    """Where the desk counts what it did (``serve.Summary``)."""

    commands: int  # carried out
    refused: int

MAX_COMMAND_BYTES = 64 << 10  # a command is a few hundred bytes; anything larger is refused unread
MAX_REPLAY = 10_000  # numbers one replay command may ask for (a host asks for 500 at a time)
MAX_REMEMBERED = 1000  # answers kept to give again to a command delivered twice


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


class Request(NamedTuple):
    """A run a command asks for, every part checked."""

    models: list[ModelFile]
    batches: list[int]
    precisions: list[str]
    redo: bool = False  # measure again points the ledger holds
    retry_failed: bool = False  # measure again points that failed before

    @property
    def words(self) -> str:
        return (f"{len(self.models)} models x {len(self.batches)} batch sizes x {len(self.precisions)} precisions = "
                f"{len(self.models) * len(self.batches) * len(self.precisions)} points")


def check_sweep(command: schema.Command, *, models_dir: Path, max_batch: int, precisions: Sequence[str],
                default_precision: str, power_mode: str | None,
                load: Callable[[Path], ModelFile] = onnxfile.load) -> Request:
    """The sweep a ``sweep_start`` asks for, every part checked as ``check_measure`` checks one point, and the
    power mode (if named) the one the board runs now: this agent measures in the mode it finds."""
    if not command.models or not command.batches:
        raise Refused("sweep_start needs models (ONNX file names in the agent's models_dir) and batches", command.id)
    batches = list(dict.fromkeys(command.batches))
    if max(batches) > max_batch:
        raise Refused(f"batch {max(batches)} is over this agent's limit of {max_batch} ([sweep] max_batch)",
                      command.id)
    wanted = list(dict.fromkeys(p.lower() for p in command.precisions)) or [default_precision]
    if bad := [p for p in wanted if p not in precisions]:
        raise Refused(f"precision {bad[0]!r}: this agent's backend runs {', '.join(precisions)}", command.id)
    if command.power_mode is not None and command.power_mode.strip().lower() != (power_mode or "").lower():
        now = f"runs power mode {power_mode!r}" if power_mode else "has no nvpmodel power mode"
        raise Refused(f"power mode {command.power_mode!r}: this board {now}, and this agent measures in the mode it "
                      "finds (switch with `sudo nvpmodel -m N` on the board first, or leave out the power mode)",
                      command.id)
    models = []
    for name in dict.fromkeys(command.models):
        try:
            model = load(model_path(name, models_dir))
            for batch in batches:
                model.check_batch(batch)
        except UserError as exc:
            raise Refused(f"model {name!r}: {exc}", command.id) from None
        models.append(model)
    return Request(models, batches, wanted, redo=command.redo, retry_failed=command.retry_failed)


class Desk(threading.Thread):
    """Answers the host's commands. The link queues each raw payload here (``receive``, on paho's thread); this
    thread checks it (above), carries out a replay at once, queues a measure for the main thread
    (after the sweep), and answers every command — refused ones too, with the reason — on ``cmd/ack``."""

    def __init__(self, config: AgentConfig, backend: Backend, summary: Tally, conductor: Conductor) -> None:
        super().__init__(name="commands", daemon=True)
        self.config, self.backend, self.summary, self.conductor = config, backend, summary, conductor
        self.inbox: queue.Queue[bytes] = queue.Queue(maxsize=1000)  # a flood of commands is dropped, not hoarded
        self.link: MqttLink | None = None
        self._answers: collections.OrderedDict[str, schema.CommandAck] = collections.OrderedDict()
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

    def request(self, command: schema.Command) -> Request:
        """The run a ``measure`` or ``sweep_start`` asks for, checked (at arrival, and again when it starts: the
        models may have changed meanwhile); raises Refused."""
        cfg, precisions, default = self.config, self.backend.precisions, self.config.precisions[0]
        if command.action == "measure":
            point = check_measure(command, models_dir=cfg.models_dir, max_batch=cfg.max_batch, precisions=precisions,
                                  default_precision=default)
            return Request([point.model], [point.batch], [point.precision], redo=True)  # asked for: measured again
        return check_sweep(command, models_dir=cfg.models_dir, max_batch=cfg.max_batch, precisions=precisions,
                           default_precision=default, power_mode=self.conductor.power_mode())

    def answer(self, payload: bytes) -> schema.CommandAck:
        """Check and carry out one command; the acknowledgement to send back. A command delivered again (QoS 1
        may, after a reconnection) gets its first answer again and is not carried out twice."""
        try:
            command = decode(self.config.board_id, payload)
        except Refused as exc:
            return self._refused(exc)
        if command.id in self._answers:
            return self._answers[command.id]
        ack = self._answer(command)
        self._answers[command.id] = ack
        while len(self._answers) > MAX_REMEMBERED:
            self._answers.popitem(last=False)
        return ack

    def _refused(self, exc: Refused) -> schema.CommandAck:
        self.summary.refused += 1
        log.warning("command %s refused: %s", exc.command_id, exc)
        return schema.CommandAck(board=self.config.board_id, ts=time.time(), id=exc.command_id, accepted=False,
                                 reason=str(exc))

    def _answer(self, command: schema.Command) -> schema.CommandAck:
        board = self.config.board_id
        try:
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
            if command.action == "sweep_status":
                state = self.conductor.state(self.config.precisions[0])
                self.summary.commands += 1
                return schema.CommandAck(board=board, ts=time.time(), id=command.id, accepted=True, sweep=state,
                                         reason=describe(state))
            if command.action == "sweep_cancel":
                try:
                    run_id, what = self.conductor.cancel(command.run_id, command.id)
                except LookupError as exc:
                    raise Refused(str(exc), command.id) from None
                log.info("command %s: %s", command.id, what)
                self.summary.commands += 1
                return schema.CommandAck(board=board, ts=time.time(), id=command.id, accepted=True, run_id=run_id,
                                         reason=what, sweep=self.conductor.state(self.config.precisions[0]))
            if (known := self.conductor.outbox.run_of(command.id)) is not None:
                # The same command delivered again (QoS 1 may, after a reconnection): the same answer, once queued.
                self.summary.commands += 1
                return schema.CommandAck(board=board, ts=time.time(), id=command.id, accepted=True, run_id=known[0],
                                         reason=f"already queued as run {known[0]} ({known[1]}): this command was "
                                                "delivered before",
                                         sweep=self.conductor.state(self.config.precisions[0]))
            request = self.request(command)
            run_id = new_run_id()
            ahead = self.conductor.enqueue(command, run_id)
            self.summary.commands += 1
            what = (f"{request.models[0].name} b={request.batches[0]} {request.precisions[0]}"
                    if command.action == "measure" else request.words)
            log.info("command %s: %s queued as run %s (%d ahead)", command.id, what, run_id, ahead)
            return schema.CommandAck(board=board, ts=time.time(), id=command.id, accepted=True, run_id=run_id,
                                     reason=f"queued as run {run_id}: {what}; "
                                            + (f"{ahead} run{'s' if ahead > 1 else ''} ahead of it" if ahead
                                               else "it starts now"),
                                     sweep=self.conductor.state(self.config.precisions[0]))
        except Refused as exc:
            return self._refused(exc)


def describe(state: schema.SweepState) -> str:
    """``sweep_status`` in one line: the run now and the queue."""
    run = state.running
    now = "idle" if run is None else (f"{run.state} run {run.run_id} ({run.origin}): {run.points_done} of "
                                      f"{run.points_total} points" + (f", {run.failed} failed" if run.failed else "")
                                      + (f", now {run.current}" if run.current else ""))
    return f"{now}; {len(state.queue)} runs queued"
