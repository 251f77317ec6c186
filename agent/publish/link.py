"""Where results go: an MQTT session (retained birth, last will, QoS1 with PUBACK tracking) or a JSONL file.

Telemetry is live only: QoS 0, never tracked, never written to a file.
"""

from __future__ import annotations

import logging
import ssl
import threading
import time
from collections.abc import Callable
from pathlib import Path

import paho.mqtt.client as mqtt

from dnnprof.shared import auth, schema, topics
from dnnprof.shared.errors import UserError

log = logging.getLogger(__name__)

_RETAINED = {"status", "info"}
# What ``dnnagent run`` suggests when the broker cannot be reached; other callers say what is true for them.
RUN_HINT = "start a broker (`dnnhost collect` runs one) or write results to a file with --output FILE"
LIVE_ONLY = (schema.Telemetry,)  # worth nothing late: QoS 0, not retained, not tracked, not stored


def topic_for(message: schema.Message) -> str:
    kind = schema.KIND_OF[type(message)]
    if kind == "run":
        return topics.topic(message.board, topics.RUN, message.run_id)
    return topics.topic(message.board, kind)


class JsonlSink:  # a measure.sink.Sink
    """Appends one JSON message per line; ``dnnhost import FILE`` loads it."""

    def __init__(self, path: str | Path) -> None:
        self.path = Path(path)
        try:
            self.path.parent.mkdir(parents=True, exist_ok=True)
            self._fh = self.path.open("ab")
        except OSError as exc:
            raise UserError(f"cannot write results to {self.path}: {exc.strerror or exc}") from None

    def send(self, message: schema.Message) -> None:
        if isinstance(message, LIVE_ONLY):
            return  # the file is for what lasts: results and run events
        self._fh.write(schema.encode(message) + b"\n")
        self._fh.flush()  # a crash later in the sweep keeps what was measured

    def close(self) -> list[schema.Message]:
        self._fh.close()
        return []


class MqttLink:
    """One agent session on a broker.

    Birth: retained ``online`` status and board info at connect; the last will is a retained ``lost`` with the
    same session counter; a clean close publishes ``offline`` before disconnecting. Results and run events are
    QoS1; each is tracked until its PUBACK, so ``close()`` can say exactly what did not arrive. Telemetry goes
    out at QoS 0 (``send_live``): dropped while the broker is away, never tracked, never in ``close()``'s list.

    ``tls`` (an ``ssl.SSLContext``) encrypts the connection and checks the broker's certificate; ``username`` and
    ``password`` log in. ``on_ack(message)`` is called once per tracked message when its PUBACK arrives, on the
    network thread (so it must be quick and must not publish); an exception it raises is logged, never lost in
    paho's loop. ``reconnected`` is set each time the connection comes back after a drop (the broker has then
    published the last will, so a long-running agent re-announces itself). ``unreachable_hint`` ends the error
    when the broker cannot be reached: what the caller's user can do about it. ``on_command(payload)`` subscribes
    the board's command topic (renewed at every connect: the session is clean) and receives each raw payload there,
    on the network thread, so it must only queue it.
    """

    def __init__(self, broker: str, board: str, *, session: int, connect_timeout_s: float = 5.0,
                 keepalive_s: int = 30, tls: ssl.SSLContext | None = None, username: str | None = None,
                 password: str | None = None, on_ack: Callable[[schema.Message], None] | None = None,
                 on_command: Callable[[bytes], None] | None = None, unreachable_hint: str = RUN_HINT) -> None:
        self.host, self.port = topics.parse_broker(broker)
        self.board = topics.check_id(board)
        self.session = session
        self._connected = threading.Event()
        self.reconnected = threading.Event()
        self._on_ack = on_ack
        self._on_command = on_command
        self._connack: object = None
        self._cond = threading.Condition()
        # Delivery tracking by message id. on_publish fires for QoS 0 messages too (once written), and ids are
        # shared by both QoS and wrap at 65535, so every id is matched once, whichever side comes first: the
        # publisher (_pending: QoS 1 awaiting PUBACK, _live: QoS 0 not yet written) or the callback (_acked).
        self._pending: dict[int, schema.Message] = {}
        self._live: set[int] = set()
        self._acked: set[int] = set()
        client = mqtt.Client(mqtt.CallbackAPIVersion.VERSION2, client_id=f"dnnagent-{board}", clean_session=True)
        client.on_connect = self._on_connect
        client.on_publish = self._on_publish
        client.on_message = self._on_message
        client.max_queued_messages_set(10_000)  # below the 16-bit message-id space, which paho silently wraps
        lost = schema.Status(board=board, ts=time.time(), state="lost", session=session)
        client.will_set(topics.topic(board, topics.STATUS), schema.encode(lost), qos=1, retain=True)
        client.connect_timeout = connect_timeout_s
        if tls is not None:
            client.tls_set_context(tls)
        if username is not None:
            client.username_pw_set(username, password)
        self._client = client
        where = f"MQTT broker at {self.host}:{self.port}"
        try:
            client.connect(self.host, self.port, keepalive=keepalive_s)
        except (OSError, ValueError) as exc:
            reason = getattr(exc, "strerror", None) or str(exc) or exc.__class__.__name__
            raise UserError(f"cannot reach the {where} ({reason}): {unreachable_hint}") from None
        client.loop_start()
        if not self._connected.wait(connect_timeout_s) or getattr(self._connack, "is_failure", False):
            client.loop_stop()
            raise UserError(f"the {where} did not accept the connection ({self._connack or 'no CONNACK'})")

    def _on_connect(self, client, userdata, flags, reason_code, properties) -> None:
        auth.no_delay(client)  # a command's acknowledgement leaves at once, not after the broker's delayed ACK
        again = self._connected.is_set()
        self._connack = reason_code
        if self._on_command is not None and not getattr(reason_code, "is_failure", False):
            client.subscribe(topics.topic(self.board, topics.CMD), qos=1)
        self._connected.set()
        if again and not getattr(reason_code, "is_failure", False):
            self.reconnected.set()

    def _on_message(self, client, userdata, msg) -> None:
        if self._on_command is None or msg.topic != topics.topic(self.board, topics.CMD):
            return
        try:
            self._on_command(msg.payload)
        except Exception as exc:  # raised into paho's loop it would end the network thread
            log.error("command handler failed: %s", exc)

    def _on_publish(self, client, userdata, mid, reason_code, properties) -> None:
        with self._cond:
            message = self._pending.pop(mid, None)
            if message is not None:
                self._cond.notify_all()
            elif mid in self._live:
                self._live.discard(mid)
            else:
                self._acked.add(mid)  # before the publisher recorded the id
        if message is not None:
            self._acknowledged(message)

    def _acknowledged(self, message: schema.Message) -> None:
        if self._on_ack is None:
            return
        try:
            self._on_ack(message)
        except Exception as exc:  # raised into paho's loop it would end the network thread
            log.error("acknowledgement handler failed for a %s message: %s", schema.KIND_OF[type(message)], exc)

    def send(self, message: schema.Message) -> None:
        """Publish ``message``: QoS 1 and tracked until its PUBACK; telemetry goes to ``send_live`` instead."""
        if isinstance(message, LIVE_ONLY):
            self.send_live(message)
            return
        kind = schema.KIND_OF[type(message)]
        info = self._client.publish(topic_for(message), schema.encode(message), qos=1, retain=kind in _RETAINED)
        if info.rc == mqtt.MQTT_ERR_QUEUE_SIZE:
            raise UserError("the MQTT send queue is full: the broker has been unreachable for too long")
        with self._cond:
            raced = info.mid in self._acked  # PUBACK raced ahead of us
            if raced:
                self._acked.discard(info.mid)
            else:
                self._pending[info.mid] = message
        if raced:
            self._acknowledged(message)

    def send_live(self, message: schema.Message) -> bool:
        """Publish ``message`` at QoS 0, not retained and not tracked; False when it was dropped (no connection).

        For live data that is worth nothing late: it never waits in paho's queue, never counts in ``flush()``
        and is never among the unsent messages ``close()`` returns.
        """
        info = self._client.publish(topic_for(message), schema.encode(message), qos=0, retain=False)
        if info.rc != mqtt.MQTT_ERR_SUCCESS:
            return False  # not queued: paho drops a QoS 0 message it cannot write now, and no callback follows
        with self._cond:
            if info.mid in self._acked:  # already written
                self._acked.discard(info.mid)
            else:
                self._live.add(info.mid)
        return True

    def flush(self, timeout_s: float = 10.0) -> list[schema.Message]:
        """Wait for every PUBACK; return the messages still unacknowledged after ``timeout_s``."""
        deadline = time.monotonic() + timeout_s
        with self._cond:
            while self._pending and (left := deadline - time.monotonic()) > 0:
                self._cond.wait(left)
            return list(self._pending.values())

    def close(self, timeout_s: float = 10.0) -> list[schema.Message]:
        self.send(schema.Status(board=self.board, ts=time.time(), state="offline", session=self.session))
        unsent = [m for m in self.flush(timeout_s) if not isinstance(m, schema.Status)]
        self._client.disconnect()
        self._client.loop_stop()
        return unsent
