"""MQTT → store: subscribe to every board, validate each message, store it idempotently, count what is rejected.

The paho network thread only queues messages; a writer thread owns the store's connection and commits in
batches, so a slow disk never blocks the MQTT session (blocking inside paho callbacks stalls its keepalive).

Agents number their results, failed points (``schema.Failure``: a point that produced no measurement, stored apart
from the results) and run events (an outbox stream per board). The writer thread finds the numbers that
never arrived and, with ``replay``, asks the board to publish them again (a ``replay`` command on its cmd topic).

Several collectors may share the load (``group``: an MQTT shared subscription, each message to one of them) and one
store. Everything they must agree on lives in the store, not in one collector's memory: a result is stored once by
its id, the gaps are the store's, and a replay is asked for under the store's lock on that board, after reading the
requests any collector made — so a gap is asked for once, whichever collector saw it.

``ingest`` is the one path from a decoded message (or a refused payload) into the store: the writer thread's, and
``dnnhost import``'s for each line of a file.
"""

from __future__ import annotations

import bisect
import contextlib
import dataclasses
import logging
import queue
import ssl
import threading
import time
import uuid
from collections import Counter
from collections.abc import Callable
from pathlib import Path
from typing import NamedTuple

import paho.mqtt.client as mqtt

from dnnprof.shared import schema, topics
from dnnprof.shared.errors import UserError

from . import sql
from .store import Gap, Store


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


def decode_line(line: bytes) -> schema.Message:
    """Decode one line of a file an agent wrote (``dnnagent run --output``), under the collector's size limit: a
    file is no more trusted than MQTT. Raises SchemaError naming what is wrong."""
    if len(line) > MAX_PAYLOAD_BYTES:
        raise schema.SchemaError(f"line too large: {len(line)} bytes, over the {MAX_PAYLOAD_BYTES}-byte limit")
    return schema.decode(line)


def _one_line(exc: Exception) -> str:
    """The first line of an exception's message: the rejected table's reason is one line, never empty."""
    return next(iter(str(exc).splitlines()), "") or exc.__class__.__name__


class Ingested(NamedTuple):
    """What ``ingest`` did with one message."""

    message: schema.Message | None  # the message, stored now or before; None when it was rejected
    added: bool  # new to the store (False: a re-delivery, a stale status, one already imported)
    lost: int  # missing numbers an ack declared unrecoverable
    reason: str | None  # why it was rejected (kept with its payload in the rejected table); None when stored


def ingest(store: Store, source: str, payload: bytes, message: schema.Message | None,
           reason: str | None = None) -> Ingested:
    """Store one decoded ``message`` idempotently (by its id: storing it again adds nothing), or keep ``payload``
    as rejected input from ``source`` (``mqtt:TOPIC``, ``import:FILE:LINE``) with ``reason`` when there is no
    message (it did not decode) or the store cannot hold it. The one ingest path of ``collect``, ``live`` and
    ``import``; run it inside ``store.transaction()`` so that a batch commits once."""
    if message is not None:
        lost = 0
        try:
            if isinstance(message, schema.CommandAck):
                added, lost = store.add_ack(message)
            else:
                added = store.add(message)
        except (OverflowError, sql.Unstorable) as exc:  # a value the store cannot hold (a 65-bit integer, ...)
            reason = str(exc).splitlines()[0]
        else:
            return Ingested(message, added, lost, None)
    store.reject(source, reason, payload[:KEEP_REJECTED_BYTES])
    return Ingested(None, False, 0, reason)


_TELEMETRY_SUFFIX = "/" + topics.TELEMETRY
log = logging.getLogger(__name__)

REPLAY_MAX = 500  # numbers one replay command asks for: a bounded burst for the agent and the broker
RETRIES = 5  # a batch whose transaction crossed another collector's (deadlock, lock timeout) is run again this often
# How long the broker keeps a group member's session after it went away (MQTT 5 session expiry): it goes on handing
# that member its share meanwhile, to be delivered when it returns; after it, the member's share goes to the others
# and what was queued for it is recovered from the agents' outboxes as gaps.
GROUP_SESSION_EXPIRY_S = 600


def check_group(name: str) -> str:
    """A shared-subscription group name, as MQTT allows it: no '/', '+' or '#', printable ASCII."""
    if not 1 <= len(name) <= 64 or not name.isascii() or not name.isprintable() or any(c in name for c in "/+# "):
        raise UserError(f"--group {name!r}: use 1-64 printable ASCII characters without '/', '+', '#' or spaces, "
                        "e.g. lab-collectors")
    return name


@dataclasses.dataclass
class _Piece:
    """Part of a gap: numbers ``first``..``last`` of a stream, missing since ``since`` (monotonic seconds);
    ``counted`` once it has been missing for longer than the grace period (then it is a real gap)."""

    stream: int
    first: int
    last: int
    since: float
    counted: bool = False


def _carry(old: list[_Piece], gaps: list[Gap], now: float) -> list[_Piece]:
    """The pieces of ``gaps`` (one board's, sorted), each part keeping the age of the piece it was already part of;
    parts missing for the first time are ``now``'s."""
    by_stream: dict[int, list[_Piece]] = {}
    for piece in old:
        by_stream.setdefault(piece.stream, []).append(piece)
    out: list[_Piece] = []
    at_stream, j = None, 0
    for gap in gaps:
        if gap.stream != at_stream:
            at_stream, j = gap.stream, 0
        pieces = by_stream.get(gap.stream, [])
        while j < len(pieces) and pieces[j].last < gap.first:
            j += 1
        at, k = gap.first, j
        while k < len(pieces) and pieces[k].first <= gap.last:
            piece = pieces[k]
            if piece.first > at:
                out.append(_Piece(gap.stream, at, piece.first - 1, now))
                at = piece.first
            end = min(piece.last, gap.last)
            if end >= at:
                out.append(_Piece(gap.stream, at, end, piece.since, piece.counted))
                at = end + 1
            k += 1
        if at <= gap.last:
            out.append(_Piece(gap.stream, at, gap.last, now))
    return out


def _runs(pieces: list[_Piece]) -> list[tuple[int, int, int]]:
    """(stream, first, last) of the counted pieces, adjacent ones joined: what a replay asks for."""
    runs: list[tuple[int, int, int]] = []
    for p in pieces:
        if not p.counted:
            continue
        if runs and runs[-1][0] == p.stream and runs[-1][2] + 1 == p.first:
            runs[-1] = (p.stream, runs[-1][1], p.last)
        else:
            runs.append((p.stream, p.first, p.last))
    return runs


def _again_or_raise(store: Store, exc: Exception, attempt: int) -> None:
    """After a failed transaction: raise ``exc`` unless it only crossed another writer's (PostgreSQL broke a deadlock,
    SQLite's lock timed out) and tries are left; then wait a little before the next attempt."""
    if not store.retryable(exc) or attempt == RETRIES - 1:
        raise exc
    time.sleep(0.02 * (attempt + 1))


def _session_expiry(seconds: float):
    """MQTT 5 CONNECT properties asking the broker to keep the session ``seconds`` after a disconnect."""
    from paho.mqtt.packettypes import PacketTypes
    from paho.mqtt.properties import Properties

    properties = Properties(PacketTypes.CONNECT)
    properties.SessionExpiryInterval = int(seconds)
    return properties


class Collector:
    """Subscribes to ``dnnprof/v1/+/#`` on ``broker`` (alone, or sharing it with a ``group``) and stores into ``db``:
    a SQLite file or a ``postgresql://`` URL."""

    def __init__(self, broker: str, db: str | Path | None = None, *, batch: int = 200,
                 on_stored: Callable[[schema.Message], None] | None = None,
                 on_valid: Callable[[schema.Message], None] | None = None,
                 on_rejected: Callable[[str, str], None] | None = None, tls: ssl.SSLContext | None = None,
                 username: str | None = None, password: str | None = None, client_id: str | None = None,
                 persistent: bool = False, replay: bool = False, gap_grace_s: float = 3.0,
                 replay_retry_s: float = 15.0, group: str | None = None,
                 session_expiry_s: float = GROUP_SESSION_EXPIRY_S) -> None:
        """``tls`` encrypts the connection and checks the broker's certificate; ``username``/``password`` log in.
        ``on_stored``: each message new to the store; ``on_valid``: every valid message, telemetry and
        re-deliveries included (what a live view needs); ``on_rejected(topic, reason)``: every rejected one.
        All three run on the writer thread, after the batch is committed.

        ``client_id``: the MQTT client id (default: a random one). ``persistent``: connect with a persistent session
        (clean session off), so the broker queues QoS 1 messages while this collector is down and hands them over
        when the same ``client_id`` connects again. ``replay``: ask boards to publish again the numbers of their
        stream missing for longer than ``gap_grace_s`` seconds (arrival out of order is normal around reconnects),
        at most REPLAY_MAX numbers a command, asked again every ``replay_retry_s`` seconds while still missing.

        ``group``: share the stream with the other collectors of this group (an MQTT shared subscription,
        ``$share/GROUP/...``: each message goes to one member). It connects with MQTT 5, whose session expiry
        (``session_expiry_s``) lets the broker drop a member that does not come back."""
        if persistent and not client_id:
            raise ValueError("a persistent session needs a fixed client_id: the broker keeps it under that id")
        self.host, self.port = topics.parse_broker(broker)
        self.db = db
        self.batch = batch
        self.on_stored = on_stored
        self.on_valid = on_valid
        self.on_rejected = on_rejected
        self.linger_s = 0.02
        # received, stored, duplicate, rejected, and per kind (result, failure, run, ...); gaps (numbers found
        # missing), replay_requests, replayed (stored messages that filled a missing number), unrecoverable (missing
        # numbers the agent no longer has)
        self.counts: Counter[str] = Counter()
        self.last_rejection: str | None = None
        self.replay = replay
        self.gap_grace_s = gap_grace_s
        self.replay_retry_s = replay_retry_s
        self.check_s = min(1.0, max(0.05, gap_grace_s / 2))  # how often the writer looks at the gaps
        self.group = check_group(group) if group is not None else None
        self.subscription = (f"$share/{self.group}/{topics.ALL_BOARDS}" if self.group else topics.ALL_BOARDS)
        # Telemetry's high marks, carried from paho's thread to the writer: the latest per (board, stream).
        self._marks: dict[tuple[str, int], int] = {}
        self._marks_lock = threading.Lock()
        self._applied: dict[tuple[str, int], int] = {}  # the marks the writer has written (it alone)
        # The writer thread's own: gap pieces per board, boards whose gaps may have changed, and when it last looked
        # for streams another collector moved (Unix seconds).
        self._pieces: dict[str, list[_Piece]] = {}
        self._dirty: set[str] = set()
        self._looked = 0.0
        # Each board's presence as the store holds it (refreshed at every gap check): what every member of a group
        # agrees on, where the statuses one member received are only its share. Replaced whole, never mutated.
        self.presence: dict[str, str] = {}
        self._queue: queue.Queue = queue.Queue()
        self._subscribed = threading.Event()
        self._changed = threading.Condition()
        self._stop = threading.Event()
        self._writer: threading.Thread | None = None
        self._store_ready = threading.Event()
        self._store_error: Exception | None = None
        self.connected = False
        self._refusal: str | None = None  # why the broker refused the login, for start()
        self.client_id = client_id or f"dnnhost-{uuid.uuid4().hex[:10]}"
        self.persistent = persistent
        if self.group:
            # MQTT 5: the session (persistent or not) gets an expiry, so a member that died is dropped in time.
            client = mqtt.Client(mqtt.CallbackAPIVersion.VERSION2, client_id=self.client_id, protocol=mqtt.MQTTv5,
                                 manual_ack=True)
            self._connect_options = {"clean_start": not persistent,
                                     "properties": _session_expiry(session_expiry_s if persistent else 0)}
        else:
            client = mqtt.Client(mqtt.CallbackAPIVersion.VERSION2, client_id=self.client_id,
                                 clean_session=not persistent, manual_ack=True)
            self._connect_options = {}
        client.on_connect = self._on_connect
        client.on_disconnect = self._on_disconnect
        client.on_subscribe = self._on_subscribe
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
        # The PUBACK of a QoS 1 message waits until the writer has committed it (manual_ack): a collector killed in
        # between leaves it unacknowledged, so the broker delivers it again to the persistent session.
        if msg.topic.endswith(_TELEMETRY_SUFFIX) and msg.payload:
            self._telemetry(msg.topic, msg.payload, msg.mid, msg.qos)
        else:
            self._queue.put((msg.topic, msg.payload, msg.mid, msg.qos))

    def _telemetry(self, topic_name: str, payload: bytes, mid: int, qos: int) -> None:
        try:
            message = validate(topic_name, payload)
        except Exception:  # any refusal, even a validator bug: it must not kill paho's thread
            # The writer rejects it again and keeps it for inspection (and acknowledges it then).
            self._queue.put((topic_name, payload, mid, qos))
            return
        if qos:
            self._client.ack(mid, qos)  # live-only, never stored: nothing to wait for
        self._note_mark(message)
        with self._changed:
            self.counts["received"] += 1
            self.counts[topics.TELEMETRY] += 1
            self._changed.notify_all()
        self._deliver(self.on_valid, message)

    def _note_mark(self, telemetry: schema.Telemetry) -> None:
        """Hand telemetry's high mark to the writer (which owns the store), keeping only the highest per stream."""
        if telemetry.stream is None:
            return
        key = (telemetry.board, telemetry.stream.id)
        with self._marks_lock:
            if telemetry.stream.seq > self._marks.get(key, -1):
                self._marks[key] = telemetry.stream.seq

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
        # With a clean session the subscription dies with the connection, and a persistent one may have expired on
        # the broker: renew it on every connect (renewing a live one changes nothing).
        client.subscribe(self.subscription, qos=1)

    def _on_subscribe(self, client, userdata, mid, reason_codes, properties) -> None:
        # A broker that refuses the subscription (an ACL, or no shared subscriptions: 0x9E) still answers: said,
        # rather than a collector that runs and receives nothing.
        refused = [rc for rc in reason_codes if rc.is_failure]
        if refused:
            why = ("shared subscriptions need Mosquitto 2, EMQX or HiveMQ" if self.group
                   else "check the broker's ACL for this user")
            self._refusal = f"refused the subscription to {self.subscription} ({refused[0]}): {why}"
            log.error("the MQTT broker %s", self._refusal)
        self._subscribed.set()

    def _on_disconnect(self, client, userdata, flags, reason_code, properties) -> None:
        self.connected = False

    def start(self, timeout_s: float = 10.0, retry: bool = False) -> Collector:
        """Connect and subscribe. ``retry``: return at once and keep trying in the background while the broker
        is down (``connected`` says when it is up) instead of failing."""
        self._writer = threading.Thread(target=self._write_loop, name="collector-writer", daemon=True)
        self._writer.start()
        # The store first: a database may take its own connect timeout (10 s an address) to answer or fail, and a
        # collector whose writer never opened its store must not run on, receiving and storing nothing.
        if not self._store_ready.wait(max(timeout_s, 60.0)):
            self._stop.set()
            raise UserError(f"the result store {self._store_where()} did not open within 60 s: is it reachable?")
        if self._store_error:
            raise self._store_error
        if retry:
            self._client.connect_async(self.host, self.port, keepalive=30, **self._connect_options)
            self._client.loop_start()
            return self
        try:
            self._client.connect(self.host, self.port, keepalive=30, **self._connect_options)
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

    def _store_where(self) -> str:
        return sql.where(self.db) if self.db else "(the default)"

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
        # Gaps left from before this collector started.
        self._dirty.update(s.board for s in store.streams())
        next_check = time.monotonic()
        items: list = []  # a batch not yet stored: kept (unacknowledged) across a store failure
        ingested = False
        try:
            while True:
                if not items:
                    try:
                        items = [self._queue.get(timeout=max(0.0, min(0.1, next_check - time.monotonic())))]
                    except queue.Empty:
                        if self._stop.is_set():
                            return
                    # Gather for a moment: one pass (and at most one transaction) per burst, not per message.
                    deadline = time.monotonic() + self.linger_s
                    while items and len(items) < self.batch:
                        try:
                            items.append(self._queue.get(timeout=max(0.0, deadline - time.monotonic())))
                        except queue.Empty:
                            break
                try:
                    if items:
                        self._ingest(store, items)
                        items = []  # committed and acknowledged: never again, whatever the check does next
                        ingested = True
                    if ingested or time.monotonic() >= next_check:
                        ingested = False
                        self._check(store)
                        next_check = time.monotonic() + self.check_s
                except store.engine.errors as exc:
                    # The store is away (a PostgreSQL restart, a lost connection): nothing of the batch was
                    # acknowledged, so nothing is lost; said, counted, and tried again on a new connection.
                    log.warning("the store failed (%s); trying again in 1 s",
                                sql.scrubbed(_one_line(exc), self.db or ""))
                    with self._changed:
                        self.counts["store_errors"] += 1
                    if self._stop.wait(1.0):
                        return
                    store = self._reopen(store)
        finally:
            store.close()

    def _reopen(self, store: Store) -> Store:
        with contextlib.suppress(*store.engine.errors):  # a connection already lost has nothing to close
            store.close()
        try:
            return Store(self.db)
        except UserError as exc:
            log.warning("%s", exc)
            return store  # still away: the next failure comes back here

    def _check(self, store: Store) -> None:
        """Bring the gaps up to date, count those past their grace, and ask for them (with ``replay``)."""
        for attempt in range(RETRIES):
            try:
                return self._check_gaps(store)
            except store.engine.errors as exc:
                _again_or_raise(store, exc, attempt)

    def _check_gaps(self, store: Store) -> None:
        with self._marks_lock:
            marks, self._marks = self._marks, {}
        # Telemetry repeats the same mark until the agent writes more: only a mark above the last one applied costs
        # a write (at fleet rates, most do not).
        marks = {key: seq for key, seq in marks.items() if seq > self._applied.get(key, -1)}
        if marks:
            try:
                with store.transaction():
                    for (board, stream), seq in marks.items():
                        if store.mark(board, schema.Stream(id=stream, seq=seq)):
                            self._dirty.add(board)
            except BaseException:
                with self._marks_lock:  # not written: handed back, unless a higher mark came meanwhile
                    for key, seq in marks.items():
                        self._marks[key] = max(seq, self._marks.get(key, -1))
                raise
            self._applied.update(marks)
        # Other collectors (of a group, or an import) move the store's streams too: the boards with gaps known here
        # (another may have filled them) and those whose high mark rose since the last look.
        looking = time.time()
        self._dirty.update(self._pieces)
        self._dirty.update(store.boards_changed(self._looked - 1.0))
        self._looked = looking
        now = time.monotonic()
        for board in self._dirty:
            pieces = _carry(self._pieces.get(board, []), store.gaps(board, settle=True), now)
            if pieces:
                self._pieces[board] = pieces
            else:
                self._pieces.pop(board, None)
        self._dirty.clear()
        found, due = 0, []
        for board, pieces in self._pieces.items():
            for piece in pieces:
                if not piece.counted and now - piece.since >= self.gap_grace_s:
                    piece.counted = True
                    found += piece.last - piece.first + 1
            if self.replay and self.connected and _runs(pieces):
                due.append(board)
        sent = 0
        try:
            states = self.presence = store.board_states()
            for board in due:
                # A board that is offline cannot answer: its requests would only pile up in the broker meanwhile.
                if states.get(board) in ("offline", "lost"):
                    continue
                # Sent as soon as they are kept: a later board's failure must not leave them stored and unsent
                # (every collector would take them for asked, and wait replay_retry_s).
                for command in self._requests(store, board, self._pieces[board]):
                    self._client.publish(topics.topic(command.board, topics.CMD), schema.encode(command), qos=1)
                    log.info("asked %s to replay numbers %d-%d of stream %d (command %s)", command.board,
                             command.first, command.last, command.stream, command.id)
                    sent += 1
        finally:
            self._count_check(found, sent)

    def _count_check(self, found: int, sent: int) -> None:
        if found or sent:
            with self._changed:
                self.counts["gaps"] += found
                self.counts["replay_requests"] += sent
                self._changed.notify_all()

    def _requests(self, store: Store, board: str, pieces: list[_Piece]) -> list[schema.Command]:
        """Replay commands for the counted gaps of ``board`` that no request younger than replay_retry_s covers —
        this collector's or another's: decided under the store's lock on the board, and kept in the store before
        they are sent (so that the ack always finds its command)."""
        commands = []
        with store.transaction(immediate=True):
            store.lock(f"dnnprof-replay:{board}")
            now = time.time()
            asked = store.replays(board, since=now - self.replay_retry_s)
            missing = {(g.stream, g.first, g.last) for g in store.gaps(board)}
            for stream, first, last in _runs(pieces):
                # Filled meanwhile by another collector: the store's gaps are the truth, this collector's pieces
                # only what it saw last.
                if not any(s == stream and lo <= first and last <= hi for s, lo, hi in missing):
                    continue
                # One request at a time per gap: while the last one is being answered, the gap overlaps it.
                if any(s == stream and lo <= last and hi >= first for s, lo, hi in asked):
                    continue
                last = min(last, first + REPLAY_MAX - 1)
                command = schema.Command(board=board, ts=now, id=f"replay-{uuid.uuid4().hex}", action="replay",
                                         stream=stream, first=first, last=last)
                store.add_command(command)
                commands.append(command)
                asked.append((stream, first, last))
        return commands

    def _missing(self, board: str, stream: schema.Stream) -> bool:
        """Whether number ``stream.seq`` was counted missing (the writer's pieces, before this batch)."""
        pieces = self._pieces.get(board)
        if not pieces:
            return False
        i = bisect.bisect_right(pieces, (stream.id, stream.seq), key=lambda p: (p.stream, p.first)) - 1
        return i >= 0 and pieces[i].counted and pieces[i].stream == stream.id and pieces[i].last >= stream.seq

    def _ingest(self, store: Store, items: list[tuple[str, bytes, int, int]]) -> None:
        """Validate, store and count a batch of (topic, payload, mid, qos) in one transaction, then acknowledge
        the QoS 1 ones to the broker: only what is committed is acknowledged."""
        stored, rejected = [], []
        # Counted per batch and published with the commit, so a wait_until() predicate on the counts never sees
        # messages counted as received that are not yet stored (or rejected) in the database.
        counts: Counter[str] = Counter()
        last_rejection = None
        checked, slots = [], [None] * len(items)  # valid messages in arrival order
        for index, (topic_name, payload, _, _) in enumerate(items):
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
                self._note_mark(message)
                counts[topics.TELEMETRY] += 1
                slots[index] = message
                continue
            checked.append((index, topic_name, payload, message, None))
        filled: set[tuple[str, int, int]] = set()  # numbers that filled a gap in this batch, each counted once
        base = counts
        for attempt in range(RETRIES if checked else 0):  # a batch of telemetry alone needs no transaction
            # Each attempt starts from what validation found: a transaction rolled back leaves nothing counted.
            counts, stored, rejected, filled, last_rejection = base.copy(), [], [], set(), None
            try:
                with store.transaction():
                    for index, topic_name, payload, message, reason in checked:
                        got = ingest(store, f"mqtt:{topic_name}", payload, message, reason)
                        if got.message is None:
                            counts["rejected"] += 1
                            last_rejection = f"{topic_name}: {got.reason}"
                            rejected.append((topic_name, got.reason))
                            continue
                        if got.lost:
                            counts["unrecoverable"] += got.lost
                            self._dirty.add(message.board)
                        slots[index] = message
                        counts[schema.KIND_OF[type(message)]] += 1
                        self._follow(message, filled)
                        if got.added:
                            counts["stored"] += 1
                            stored.append(message)
                        elif not isinstance(message, schema.Command):
                            # A command comes back to the host that sent it (it subscribes to every topic): seeing
                            # its own again is no re-delivery.
                            counts["duplicate"] += 1
                break
            except store.engine.errors as exc:
                _again_or_raise(store, exc, attempt)
                base["retried_batches"] += 1
        for _, _, mid, qos in items:
            if qos:
                self._client.ack(mid, qos)
        counts["replayed"] += len(filled)
        with self._changed:
            self.counts.update(+counts)
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

    def _follow(self, message: schema.Message, filled: set[tuple[str, int, int]]) -> None:
        """Note what a stored message changes for the gap checks: its board's gaps, and whether it filled one."""
        if isinstance(message, schema.DURABLE) and message.stream is not None:
            self._dirty.add(message.board)
            if self._missing(message.board, message.stream):
                filled.add((message.board, message.stream.id, message.stream.seq))
        elif isinstance(message, schema.Status) and message.stream is not None:
            self._dirty.add(message.board)

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
