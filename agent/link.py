"""Where results go: an MQTT session (retained birth, last will, QoS1 with PUBACK tracking) or a JSONL file."""

from __future__ import annotations

import threading
import time
from pathlib import Path
from typing import Protocol

import paho.mqtt.client as mqtt

from dnnprof.shared import schema, topics
from dnnprof.shared.errors import UserError

_RETAINED = {"status", "info"}


def topic_for(message: schema.Message) -> str:
    kind = schema.KIND_OF[type(message)]
    if kind == "run":
        return topics.topic(message.board, topics.RUN, message.run_id)
    return topics.topic(message.board, kind)


class Sink(Protocol):
    def send(self, message: schema.Message) -> None: ...

    def close(self) -> list[schema.Message]:
        """Finish; return the messages that could not be delivered."""
        ...


class JsonlSink:
    """Appends one JSON message per line; ``dnnhost import FILE`` loads it."""

    def __init__(self, path: str | Path) -> None:
        self.path = Path(path)
        try:
            self.path.parent.mkdir(parents=True, exist_ok=True)
            self._fh = self.path.open("ab")
        except OSError as exc:
            raise UserError(f"cannot write results to {self.path}: {exc.strerror or exc}") from None

    def send(self, message: schema.Message) -> None:
        self._fh.write(schema.encode(message) + b"\n")
        self._fh.flush()  # a crash later in the sweep keeps what was measured

    def close(self) -> list[schema.Message]:
        self._fh.close()
        return []


class MqttLink:
    """One agent session on a broker.

    Birth: retained ``online`` status and board info at connect; the last will is a retained ``lost`` with the
    same session counter; a clean close publishes ``offline`` before disconnecting. Results and run events are
    QoS1; each is tracked until its PUBACK, so ``close()`` can say exactly what did not arrive.
    """

    def __init__(self, broker: str, board: str, *, session: int, connect_timeout_s: float = 5.0,
                 keepalive_s: int = 30) -> None:
        self.host, self.port = topics.parse_broker(broker)
        self.board = topics.check_id(board)
        self.session = session
        self._connected = threading.Event()
        self._connack: object = None
        self._cond = threading.Condition()
        self._pending: dict[int, schema.Message] = {}
        self._acked: set[int] = set()
        client = mqtt.Client(mqtt.CallbackAPIVersion.VERSION2, client_id=f"dnnagent-{board}", clean_session=True)
        client.on_connect = self._on_connect
        client.on_publish = self._on_publish
        client.max_queued_messages_set(10_000)  # below the 16-bit message-id space, which paho silently wraps
        lost = schema.Status(board=board, ts=time.time(), state="lost", session=session)
        client.will_set(topics.topic(board, topics.STATUS), schema.encode(lost), qos=1, retain=True)
        client.connect_timeout = connect_timeout_s
        self._client = client
        where = f"MQTT broker at {self.host}:{self.port}"
        try:
            client.connect(self.host, self.port, keepalive=keepalive_s)
        except (OSError, ValueError) as exc:
            reason = getattr(exc, "strerror", None) or str(exc) or exc.__class__.__name__
            raise UserError(
                f"cannot reach the {where} ({reason}): start a broker (`dnnhost collect` runs one) "
                "or write results to a file with --output FILE"
            ) from None
        client.loop_start()
        if not self._connected.wait(connect_timeout_s) or getattr(self._connack, "is_failure", False):
            client.loop_stop()
            raise UserError(f"the {where} did not accept the connection ({self._connack or 'no CONNACK'})")

    def _on_connect(self, client, userdata, flags, reason_code, properties) -> None:
        self._connack = reason_code
        self._connected.set()

    def _on_publish(self, client, userdata, mid, reason_code, properties) -> None:
        with self._cond:
            self._acked.add(mid)
            self._cond.notify_all()

    def send(self, message: schema.Message) -> None:
        kind = schema.KIND_OF[type(message)]
        info = self._client.publish(topic_for(message), schema.encode(message), qos=1, retain=kind in _RETAINED)
        if info.rc == mqtt.MQTT_ERR_QUEUE_SIZE:
            raise UserError("the MQTT send queue is full: the broker has been unreachable for too long")
        with self._cond:
            if info.mid in self._acked:  # PUBACK raced ahead of us
                self._acked.discard(info.mid)
            else:
                self._pending[info.mid] = message

    def flush(self, timeout_s: float = 10.0) -> list[schema.Message]:
        """Wait for every PUBACK; return the messages still unacknowledged after ``timeout_s``."""
        deadline = time.monotonic() + timeout_s
        with self._cond:
            while True:
                for mid in self._acked & self._pending.keys():
                    del self._pending[mid]
                self._acked.clear()
                left = deadline - time.monotonic()
                if not self._pending or left <= 0:
                    return list(self._pending.values())
                self._cond.wait(left)

    def close(self, timeout_s: float = 10.0) -> list[schema.Message]:
        self.send(schema.Status(board=self.board, ts=time.time(), state="offline", session=self.session))
        unsent = [m for m in self.flush(timeout_s) if not isinstance(m, schema.Status)]
        self._client.disconnect()
        self._client.loop_stop()
        return unsent
