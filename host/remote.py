"""The host's side of steering agents: one MQTT client that sees the boards' retained presence (status, info) and
sends commands, each answered by an acknowledgement of the same id (``dnnhost boards``, ``sweep``, ``measure``).

A clean session under a random client id, so it never takes over a collector's session. An unreachable or refusing
broker is a UserError; an agent that does not answer is a missing acknowledgement, which the caller words.
"""

from __future__ import annotations

import ssl
import threading
import time
import uuid
from dataclasses import dataclass, field

import paho.mqtt.client as mqtt

from dnnprof.shared import auth, schema, topics
from dnnprof.shared.errors import UserError

SETTLE_S = 0.3  # retained messages come in a burst after the subscription: quiet this long means all are in


@dataclass
class Seen:
    """A board as its retained messages describe it."""

    board: str
    status: schema.Status | None = None
    info: schema.BoardInfo | None = None
    answer: schema.CommandAck | None = None  # its answer to a sweep_status, when asked
    asked_s: float | None = None  # the round trip of that answer, seconds


@dataclass
class _Inbox:
    cond: threading.Condition = field(default_factory=threading.Condition)
    boards: dict[str, Seen] = field(default_factory=dict)
    acks: dict[str, tuple[schema.CommandAck, float]] = field(default_factory=dict)  # id -> (ack, monotonic time)
    last: float = 0.0  # monotonic time of the newest retained message
    refusal: str | None = None
    subscribed: bool = False


class Remote:
    """``with Remote(broker, tls=..., username=..., password=...) as remote:`` then ``boards()``, ``ask(command)``
    or ``ask_all(commands)``."""

    def __init__(self, broker: str, *, timeout_s: float = 10.0, tls: ssl.SSLContext | None = None,
                 username: str | None = None, password: str | None = None) -> None:
        self.host, self.port = topics.parse_broker(broker)
        self.timeout_s = timeout_s
        self._inbox = _Inbox()
        client = mqtt.Client(mqtt.CallbackAPIVersion.VERSION2, client_id=f"dnnhost-remote-{uuid.uuid4().hex[:10]}")
        client.on_connect = self._on_connect
        client.on_subscribe = self._on_subscribe
        client.on_message = self._on_message
        if tls is not None:
            client.tls_set_context(tls)
        if username is not None:
            client.username_pw_set(username, password)
        self._client = client

    def __enter__(self) -> Remote:
        where = f"{self.host}:{self.port}"
        try:
            self._client.connect(self.host, self.port, keepalive=30)
        except (OSError, ValueError) as exc:
            reason = getattr(exc, "strerror", None) or str(exc) or exc.__class__.__name__
            raise UserError(f"cannot reach the MQTT broker at {where} ({reason}): give --broker HOST[:PORT], or run "
                            f"`dnnhost collect` here (its embedded broker listens on 127.0.0.1:"
                            f"{topics.DEFAULT_PORT})") from None
        self._client.loop_start()
        inbox = self._inbox
        with inbox.cond:
            # The subscriptions first, so that an agent answering at once is not missed.
            if not inbox.cond.wait_for(lambda: inbox.subscribed or inbox.refusal, self.timeout_s):
                self.__exit__(None, None, None)
                raise UserError(f"the MQTT broker at {where} did not confirm the subscription within "
                                f"{self.timeout_s:g} s")
        if inbox.refusal:
            self.__exit__(None, None, None)
            raise UserError(f"the MQTT broker at {where} {inbox.refusal}")
        return self

    def __exit__(self, *exc) -> None:
        self._client.disconnect()
        self._client.loop_stop()

    # --- paho's thread ------------------------------------------------------------------------------------------

    def _on_connect(self, client, userdata, flags, reason_code, properties) -> None:
        auth.no_delay(client)
        if reason_code.is_failure:
            with self._inbox.cond:
                self._inbox.refusal = (f"refused the connection ({reason_code}): check --username and "
                                       "--password-file")
                self._inbox.cond.notify_all()
            return
        prefix = topics.PREFIX
        client.subscribe([(f"{prefix}/+/{topics.STATUS}", 1), (f"{prefix}/+/{topics.INFO}", 1),
                          (f"{prefix}/+/{topics.CMD_ACK}", 1)])

    def _on_subscribe(self, client, userdata, mid, reason_codes, properties) -> None:
        with self._inbox.cond:
            self._inbox.subscribed = True
            self._inbox.last = time.monotonic()
            self._inbox.cond.notify_all()

    def _on_message(self, client, userdata, msg) -> None:
        try:
            where = topics.parse(msg.topic)
            message = schema.decode(msg.payload)
        except (ValueError, schema.SchemaError):  # someone else's garbage (a collector keeps it): not ours to judge
            return
        if message.board != where.board:
            return
        inbox = self._inbox
        with inbox.cond:
            now = time.monotonic()
            if isinstance(message, schema.CommandAck):
                inbox.acks.setdefault(message.id, (message, now))
            else:
                seen = inbox.boards.setdefault(message.board, Seen(message.board))
                if isinstance(message, schema.Status):
                    seen.status = message
                elif isinstance(message, schema.BoardInfo):
                    seen.info = message
                inbox.last = now
            inbox.cond.notify_all()

    # --- what callers use ---------------------------------------------------------------------------------------

    def boards(self) -> dict[str, Seen]:
        """Every board the broker holds a retained status or info for, by id (waits until they stop coming)."""
        inbox = self._inbox
        deadline = time.monotonic() + self.timeout_s
        with inbox.cond:
            while (now := time.monotonic()) < deadline and now - inbox.last < SETTLE_S:
                inbox.cond.wait(SETTLE_S - (now - inbox.last))
            return dict(sorted(inbox.boards.items()))

    def ask_all(self, commands: list[schema.Command]) -> dict[str, tuple[schema.CommandAck, float]]:
        """Publish every command (QoS 1) and wait up to the timeout for their acknowledgements; returns those that
        came, by command id, each with its round trip in seconds."""
        sent: dict[str, float] = {}
        deadline = time.monotonic() + self.timeout_s
        for command in commands:
            sent[command.id] = time.monotonic()
            info = self._client.publish(topics.topic(command.board, topics.CMD), schema.encode(command), qos=1)
            try:
                info.wait_for_publish(max(0.0, deadline - time.monotonic()))
            except (RuntimeError, ValueError) as exc:  # the connection went away before the publish left
                raise UserError(f"the MQTT broker at {self.host}:{self.port} did not take the command: {exc}") \
                    from None
        inbox = self._inbox
        with inbox.cond:
            inbox.cond.wait_for(lambda: all(i in inbox.acks for i in sent), max(0.0, deadline - time.monotonic()))
            return {i: (inbox.acks[i][0], inbox.acks[i][1] - t) for i, t in sent.items() if i in inbox.acks}

    def ask(self, command: schema.Command) -> tuple[schema.CommandAck, float] | None:
        """Publish ``command`` and wait for its acknowledgement: (ack, round trip in seconds), or None."""
        return self.ask_all([command]).get(command.id)


def new_command(board: str, action: str, **fields) -> schema.Command:
    """A command for ``board``, checked against the limits the agent checks on arrival (list and name lengths,
    batch range): a mistake is said here, in one line, instead of as the agent's refusal."""
    topics.check_id(board)
    command = schema.Command(board=board, ts=time.time(), id=f"{action.replace('_', '-')}-{uuid.uuid4().hex}",
                             action=action, **fields)
    try:
        schema.decode(schema.encode(command))
    except schema.SchemaError as exc:
        raise UserError(f"this command is not valid: {exc}") from None
    return command

