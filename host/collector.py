"""MQTT → store: subscribe to every board, validate each message, store it idempotently, count what is rejected.

The paho network thread only queues messages; a writer thread owns the SQLite connection and commits in
batches, so a slow disk never blocks the MQTT session (blocking inside paho callbacks stalls its keepalive).
"""

from __future__ import annotations

import logging
import queue
import ssl
import threading
import time
import uuid
from collections import Counter
from collections.abc import Callable
from pathlib import Path

import paho.mqtt.client as mqtt

from dnnprof.shared import schema, topics
from dnnprof.shared.errors import UserError

from .store import Store


# The largest payload the collector decodes; a larger one is refused unread, so a misbehaving or hostile publisher
# cannot make the host parse (and hold) megabytes per message. Agents send a few KB; the largest message the schema
# allows in practice, a Telemetry batch at its 100,000-sample cap, is about 2.3 MB of JSON, so 4 MiB refuses no
# valid message.
MAX_PAYLOAD_BYTES = 4 << 20
# How much of a rejected payload is kept in the store for inspection: enough to see what it was, never a flood.
KEEP_REJECTED_BYTES = 64 << 10


def validate(topic_name: str, payload: bytes) -> schema.Message:
    """Decode ``payload`` received on ``topic_name``; raises ValueError naming what is wrong."""
    if len(payload) > MAX_PAYLOAD_BYTES:  # before any parsing: the size alone condemns it
        raise ValueError(f"payload too large: {len(payload)} bytes, over the {MAX_PAYLOAD_BYTES}-byte limit")
    where = topics.parse(topic_name)
    message = schema.decode(payload)
    kind = schema.KIND_OF[type(message)]
    if kind != where.kind:
        raise ValueError(f"a {kind!r} message on a {where.kind!r} topic")
    if message.board != where.board:
        raise ValueError(f"board {message.board!r} in the payload differs from {where.board!r} in the topic")
    if where.run_id is not None and message.run_id != where.run_id:
        raise ValueError(f"run {message.run_id!r} in the payload differs from {where.run_id!r} in the topic")
    return message


def _one_line(exc: Exception) -> str:
    """The first line of an exception's message: the rejected table's reason is one line, never empty."""
    return next(iter(str(exc).splitlines()), "") or exc.__class__.__name__


_TELEMETRY_SUFFIX = "/" + topics.TELEMETRY
log = logging.getLogger(__name__)


class Collector:
    """Subscribes to ``dnnprof/v1/+/#`` on ``broker`` and stores into the SQLite file ``db``."""

    def __init__(self, broker: str, db: str | Path | None = None, *, batch: int = 200,
                 on_stored: Callable[[schema.Message], None] | None = None,
                 on_valid: Callable[[schema.Message], None] | None = None,
                 on_rejected: Callable[[str, str], None] | None = None, tls: ssl.SSLContext | None = None,
                 username: str | None = None, password: str | None = None) -> None:
        """``tls`` encrypts the connection and checks the broker's certificate; ``username``/``password`` log in.
        ``on_stored``: each message new to the store; ``on_valid``: every valid message, telemetry and
        re-deliveries included (what a live view needs); ``on_rejected(topic, reason)``: every rejected one.
        All three run on the writer thread, after the batch is committed."""
        self.host, self.port = topics.parse_broker(broker)
        self.db = db
        self.batch = batch
        self.on_stored = on_stored
        self.on_valid = on_valid
        self.on_rejected = on_rejected
        self.linger_s = 0.02
        self.counts: Counter[str] = Counter()  # received, stored, duplicate, rejected, and per kind
        self.last_rejection: str | None = None
        self._queue: queue.Queue = queue.Queue()
        self._subscribed = threading.Event()
        self._changed = threading.Condition()
        self._stop = threading.Event()
        self._writer: threading.Thread | None = None
        self._store_ready = threading.Event()
        self._store_error: Exception | None = None
        self.connected = False
        self._refusal: str | None = None  # why the broker refused the login, for start()
        client = mqtt.Client(mqtt.CallbackAPIVersion.VERSION2, client_id=f"dnnhost-{uuid.uuid4().hex[:10]}")
        client.on_connect = self._on_connect
        client.on_disconnect = self._on_disconnect
        client.on_subscribe = lambda *a: self._subscribed.set()
        client.on_message = self._on_message
        client.reconnect_delay_set(min_delay=1, max_delay=10)
        if tls is not None:
            client.tls_set_context(tls)
        if username is not None:
            client.username_pw_set(username, password)
        self._client = client

    def _on_message(self, client, userdata, msg) -> None:
        # Telemetry is most of the traffic and never stored: handle it here, on paho's thread, rather than pay a
        # hand-over to the writer thread for every message (at fleet rates that hand-over costs more than the work).
        if msg.topic.endswith(_TELEMETRY_SUFFIX) and msg.payload:
            self._telemetry(msg.topic, msg.payload)
        else:
            self._queue.put((msg.topic, msg.payload))

    def _telemetry(self, topic_name: str, payload: bytes) -> None:
        try:
            message = validate(topic_name, payload)
        except Exception:  # any refusal, even a validator bug: it must not kill paho's thread
            self._queue.put((topic_name, payload))  # the writer rejects it again and keeps it for inspection
            return
        with self._changed:
            self.counts["received"] += 1
            self.counts[topics.TELEMETRY] += 1
            self._changed.notify_all()
        self._deliver(self.on_valid, message)

    def _deliver(self, callback, *args) -> None:
        """Run a callback; one that fails on a message must not end the thread that receives the next ones."""
        if callback is None:
            return
        try:
            callback(*args)
        except Exception as exc:  # a viewer's bug or an odd message: said, counted, survived
            log.warning("a message handler failed on %s: %s", args[0] if args else "?", exc)
            with self._changed:
                self.counts["handler_errors"] += 1

    def _on_connect(self, client, userdata, flags, reason_code, properties) -> None:
        if reason_code.is_failure:
            # Wake start() now: a refused login would otherwise surface as a silent timeout on the subscription.
            self._refusal = f"refused the connection ({reason_code}): check --username and --password-file"
            self._subscribed.set()
            return
        self.connected = True
        # With a clean session the subscription dies with the connection: renew it on every connect.
        client.subscribe(topics.ALL_BOARDS, qos=1)

    def _on_disconnect(self, client, userdata, flags, reason_code, properties) -> None:
        self.connected = False

    def start(self, timeout_s: float = 10.0, retry: bool = False) -> Collector:
        """Connect and subscribe. ``retry``: return at once and keep trying in the background while the broker
        is down (``connected`` says when it is up) instead of failing."""
        self._writer = threading.Thread(target=self._write_loop, name="collector-writer", daemon=True)
        self._writer.start()
        self._store_ready.wait(timeout_s)
        if self._store_error:
            raise self._store_error
        if retry:
            self._client.connect_async(self.host, self.port, keepalive=30)
            self._client.loop_start()
            return self
        try:
            self._client.connect(self.host, self.port, keepalive=30)
        except (OSError, ValueError) as exc:
            self._stop.set()
            reason = getattr(exc, "strerror", None) or str(exc) or exc.__class__.__name__
            raise UserError(f"cannot reach the MQTT broker at {self.host}:{self.port} ({reason}): start one, or "
                            "leave out --broker to run the embedded one") from None
        self._client.loop_start()
        if not self._subscribed.wait(timeout_s):
            self.stop()
            raise UserError(f"the MQTT broker at {self.host}:{self.port} did not confirm the subscription")
        if self._refusal:
            self.stop()
            raise UserError(f"the MQTT broker at {self.host}:{self.port} {self._refusal}")
        return self

    def stop(self, drain_timeout_s: float = 10.0) -> None:
        self._client.disconnect()
        self._client.loop_stop()
        self._stop.set()
        if self._writer is not None:
            self._writer.join(drain_timeout_s)

    def __enter__(self) -> Collector:
        return self.start()

    def __exit__(self, *exc) -> None:
        self.stop()

    def _write_loop(self) -> None:
        try:
            store = Store(self.db)
        except UserError as exc:
            self._store_error = exc
            self._store_ready.set()
            return
        self._store_ready.set()
        with store:
            while True:
                try:
                    first = self._queue.get(timeout=0.1)
                except queue.Empty:
                    if self._stop.is_set():
                        return
                    continue
                items = [first]
                # Gather for a moment: one pass (and at most one transaction) per burst, not per message.
                deadline = time.monotonic() + self.linger_s
                while len(items) < self.batch:
                    try:
                        items.append(self._queue.get(timeout=max(0.0, deadline - time.monotonic())))
                    except queue.Empty:
                        break
                self._ingest(store, items)

    def _ingest(self, store: Store, items: list[tuple[str, bytes]]) -> None:
        stored, rejected = [], []
        # Counted per batch and published with the commit, so a wait_until() predicate on the counts never sees
        # messages counted as received that are not yet stored (or rejected) in the database.
        counts: Counter[str] = Counter()
        last_rejection = None
        checked, slots = [], [None] * len(items)  # valid messages in arrival order
        for index, (topic_name, payload) in enumerate(items):
            counts["received"] += 1
            if not payload:
                continue  # an empty retained payload clears a topic; nothing to store
            try:
                message = validate(topic_name, payload)
            except ValueError as exc:
                checked.append((index, topic_name, payload, None, _one_line(exc)))
                continue
            except Exception as exc:  # a validator bug on odd input: rejected and kept, never the end of this thread
                log.warning("validating a message on %s failed unexpectedly: %r", topic_name, exc)
                checked.append((index, topic_name, payload, None,
                                f"internal error: {exc.__class__.__name__}: {_one_line(exc)}"))
                continue
            if isinstance(message, schema.Telemetry):  # live-only: never stored, and so not a duplicate either
                counts[topics.TELEMETRY] += 1
                slots[index] = message
                continue
            checked.append((index, topic_name, payload, message, None))
        if checked:  # a batch of telemetry alone needs no transaction (at fleet rates, most batches)
            with store.db:
                store.db.execute("BEGIN")
                for index, topic_name, payload, message, reason in checked:
                    if message is not None:
                        kind = schema.KIND_OF[type(message)]
                        try:
                            added = store.add(message)
                        except OverflowError as exc:  # an integer SQLite cannot hold
                            reason = str(exc).splitlines()[0]
                        else:
                            slots[index] = message
                            counts[kind] += 1
                            if added:
                                counts["stored"] += 1
                                stored.append(message)
                            else:
                                counts["duplicate"] += 1
                            continue
                    store.reject(f"mqtt:{topic_name}", reason, payload[:KEEP_REJECTED_BYTES])
                    counts["rejected"] += 1
                    last_rejection = f"{topic_name}: {reason}"
                    rejected.append((topic_name, reason))
        with self._changed:
            self.counts.update(counts)
            if last_rejection:
                self.last_rejection = last_rejection
            self._changed.notify_all()
        for message in stored:
            self._deliver(self.on_stored, message)
        for message in slots:
            if message is not None:
                self._deliver(self.on_valid, message)
        for topic_name, reason in rejected:
            self._deliver(self.on_rejected, topic_name, reason)

    def wait_until(self, predicate: Callable[[], bool], timeout_s: float) -> bool:
        """Block until ``predicate()`` holds (checked after each stored batch) or the timeout passes."""
        deadline = time.monotonic() + timeout_s
        with self._changed:
            while not predicate():
                left = deadline - time.monotonic()
                if left <= 0:
                    return False
                self._changed.wait(min(left, 0.5))
        return True
