"""The collector against real brokers (embedded amqtt and Mosquitto): valid messages stored once, garbage kept
aside and counted, the collector alive throughout."""

from __future__ import annotations

import json
import socket
import time

import pytest

from dnnprof.host.broker import EmbeddedBroker, free_port
from dnnprof.host.collector import KEEP_REJECTED_BYTES, MAX_PAYLOAD_BYTES, Collector, validate
from dnnprof.host.store import Store
from dnnprof.shared import schema, topics
from dnnprof.shared.errors import UserError

N_RESULTS = 40


@pytest.fixture(params=["embedded", "mosquitto"])
def broker(request):
    """The address of a real broker of each kind."""
    if request.param == "mosquitto":
        yield request.getfixturevalue("mosquitto")
    else:
        with EmbeddedBroker(port=0) as embedded:
            yield embedded.address


def _wait_received(collector: Collector, count: int, timeout_s: float = 15.0) -> None:
    assert collector.wait_until(lambda: collector.counts["received"] >= count, timeout_s), (
        f"only {collector.counts['received']} of {count} messages arrived: {dict(collector.counts)}")


def _alive(collector: Collector) -> bool:
    return collector._writer is not None and collector._writer.is_alive() and collector.connected


def _json(message: schema.Message, **changes) -> bytes:
    data = schema.to_builtins(message)
    data.update(changes)
    return json.dumps(data).encode()


def _garbage(msgs) -> list[tuple[str, bytes, str]]:
    """(topic, payload, what the rejection reason mentions) for inputs a collector must refuse."""
    good = msgs.result("resnet18", board="board-a")
    return [
        (topics.topic("board-a", topics.RESULT), b'{"kind": "result", "board": ', "truncated"),
        (topics.topic("board-a", topics.RESULT), b"\xff\xfe\x00 not utf-8", ""),
        (topics.topic("board-a", topics.RESULT), _json(good, schema=2), "schema version 2"),
        (topics.topic("board-a", topics.INFO), schema.encode(good), "'result' message on a 'info' topic"),
        (topics.topic("board-b", topics.RESULT), schema.encode(good), "differs"),
        ("dnnprof/v1/x/unknown", schema.encode(msgs.status(board="x")), "unknown kind"),
        ("dnnprof/v1/Not_A_Board/status", schema.encode(msgs.status(board="board-a")), "invalid board id"),
        (topics.topic("board-a", topics.RUN, "run-9"), schema.encode(msgs.run_event(run_id="run-1")), "run"),
        (topics.topic("board-a", topics.RESULT), _json(good, batch=0), "batch"),
        (topics.topic("board-a", topics.RESULT), b"[]", ""),
    ]


def test_valid_messages_stored_once_and_garbage_rejected(broker, db, msgs, mqtt_client):
    results = [msgs.result(net, batch, 0.001 * (i + 1), board="board-a" if i % 2 else "board-b")
               for i, (net, batch) in enumerate((n, b) for n in ("resnet18", "mobilenet_v2", "resnet50",
                                                                 "squeezenet1_1", "vgg16")
                                                for b in (1, 2, 4, 8, 16, 32, 64, 128))][:N_RESULTS]
    assert len({r.id for r in results}) == N_RESULTS
    presence = [msgs.status("online", 3, board="board-a"), msgs.info(board="board-a"),
                msgs.run_event("started", 0, board="board-a"),
                msgs.run_event("finished", 1, board="board-a", points_done=4)]
    garbage = _garbage(msgs)
    good = [(msgs.topic_for(m), schema.encode(m), m in presence[:2]) for m in presence + results]
    # Interleave: garbage between valid messages must not disturb them.
    items = []
    for i, item in enumerate(good):
        items.append(item)
        if i < len(garbage):
            items.append(garbage[i][:2])
    with Collector(broker, db) as collector:
        mqtt_client.publish(broker, items)
        _wait_received(collector, len(items))
        time.sleep(0.2)  # anything extra (a redelivery) would arrive now
        assert _alive(collector)
        counts = dict(collector.counts)
        assert counts["rejected"] == len(garbage)
        assert counts["result"] == N_RESULTS
        assert (counts["status"], counts["info"], counts["run"]) == (1, 1, 2)
        assert counts["stored"] + counts.get("duplicate", 0) == len(good)
        assert collector.last_rejection and collector.last_rejection.startswith(garbage[-1][0])
        # Still working after all that.
        late = msgs.result("resnet18", 256, 0.5, board="board-a")
        mqtt_client.publish(broker, [(msgs.topic_for(late), schema.encode(late))])
        assert collector.wait_until(lambda: collector.counts["result"] == N_RESULTS + 1, 10)
    with Store(db) as store:
        assert sorted(r.id for r in store.results()) == sorted(r.id for r in results + [late])
        assert store.results("board-b") == sorted((r for r in results if r.board == "board-b"), key=lambda r: r.ts)
        assert store.boards()["board-a"]["state"] == "online"
        assert store.boards()["board-a"]["info"] == presence[1]
        assert store.run_finished("board-a", "run-1").seq == 1
        assert store.count("run_events") == 2
        rejected = store.db.execute(f"SELECT source, reason, payload FROM rejected ORDER BY {store.engine.rowid}"
                                    ).fetchall()
    assert [(source, payload) for source, _, payload in rejected] == [(f"mqtt:{t}", p) for t, p, _ in garbage]
    for (_, reason, _), (_, _, mention) in zip(rejected, garbage):
        assert mention in reason
        assert "\n" not in reason


def test_same_result_twice_is_stored_once(broker, db, msgs, mqtt_client):
    r = msgs.result("resnet18", 1, 0.01)
    item = (msgs.topic_for(r), schema.encode(r))
    with Collector(broker, db) as collector:
        mqtt_client.publish(broker, [item, item])
        _wait_received(collector, 2)
        mqtt_client.publish(broker, [item])  # again, from another connection, later
        _wait_received(collector, 3)
        assert collector.counts["stored"] == 1
        assert collector.counts["duplicate"] == 2
        assert collector.counts["result"] == 3
        assert collector.counts["rejected"] == 0
    with Store(db) as store:
        assert store.results() == [r]


def test_failed_points_are_stored_once_counted_and_numbered_never_as_results(broker, db, msgs, mqtt_client):
    stream = 1_712_345_678_901
    measured = msgs.result("resnet18", 1, 0.01)
    measured.stream = schema.Stream(id=stream, seq=1)
    oom = msgs.failure("vgg16", 64, stage="window", stream=schema.Stream(id=stream, seq=2))
    skipped = msgs.failure("vgg16", 128, stage="not_run", cause="vgg16 b=64 fp32", message="not run: out of memory "
                           "at a smaller batch", stream=schema.Stream(id=stream, seq=3))
    wrong_topic = (topics.topic("board-a", topics.RESULT), schema.encode(oom))  # a failure is not a result
    items = [(msgs.topic_for(m), schema.encode(m)) for m in (measured, oom, skipped, oom)] + [wrong_topic]
    assert items[1][0] == "dnnprof/v1/board-a/failure"
    with Collector(broker, db) as collector:
        mqtt_client.publish(broker, items)
        _wait_received(collector, len(items))
        counts = dict(collector.counts)
        assert (counts["result"], counts["failure"], counts["stored"], counts["duplicate"]) == (1, 3, 3, 1)
        assert counts["rejected"] == 1 and "'failure' message on a 'result' topic" in collector.last_rejection
    with Store(db) as store:
        assert store.results() == [measured]
        assert store.failures() == [oom, skipped]
        assert store.gaps() == [] and store.streams()[0].received == 3  # the failures' numbers count


def test_retained_messages_arrive_at_subscribe_and_empty_payloads_are_ignored(broker, db, msgs, mqtt_client):
    online = msgs.status("online", 4, board="board-r")
    facts = msgs.info(board="board-r", hostname="retained-host")
    mqtt_client.publish(broker, [(msgs.topic_for(online), schema.encode(online), True),
                                 (msgs.topic_for(facts), schema.encode(facts), True)])
    with Collector(broker, db) as collector:
        # Retained birth and facts are delivered when the collector subscribes.
        assert collector.wait_until(lambda: collector.counts["status"] >= 1 and collector.counts["info"] >= 1, 10)
        received = collector.counts["received"]
        # Clearing a retained topic publishes an empty retained payload: not a message, not garbage.
        mqtt_client.publish(broker, [(msgs.topic_for(online), b"", True), (msgs.topic_for(facts), b"", True)])
        _wait_received(collector, received + 2)
        assert collector.counts["rejected"] == 0
        assert _alive(collector)
    with Store(db) as store:
        board = store.boards()["board-r"]
        assert (board["state"], board["session"], board["info"].hostname) == ("online", 4, "retained-host")
        assert store.count("rejected") == 0
    with Collector(broker, db) as again:  # the retained topics were cleared: nothing arrives now
        time.sleep(0.3)
        assert again.counts["received"] == 0


def test_stale_will_after_reconnect_keeps_the_board_online(broker, db, msgs, mqtt_client):
    with Collector(broker, db) as collector:
        mqtt_client.publish(broker, [(msgs.topic_for(m), schema.encode(m)) for m in
                                     (msgs.status("online", 7), msgs.status("lost", 6))])
        _wait_received(collector, 2)
        assert collector.counts["duplicate"] == 1  # the stale will, counted as not stored
    with Store(db) as store:
        assert store.boards()["board-a"]["state"] == "online"


def test_telemetry_is_neither_stored_nor_a_duplicate(broker, db, msgs, mqtt_client):
    telemetry = schema.Telemetry(board="board-a", ts=time.time(), seq=0, t0=time.time(), dt_s=0.01,
                                 power_w=[1.5, 1.6, 1.4])
    with Collector(broker, db) as collector:
        mqtt_client.publish(broker, [(topics.topic("board-a", topics.TELEMETRY), schema.encode(telemetry))])
        _wait_received(collector, 1)
        assert collector.counts["telemetry"] == 1
        assert collector.counts["duplicate"] == 0
        assert collector.counts["rejected"] == 0


def test_value_the_database_cannot_hold_is_rejected_not_fatal(broker, db, msgs, mqtt_client):
    """Counts are bounded below only by the schema: 2**63 decodes, but SQLite cannot store it."""
    huge = msgs.status("online", 2**63)
    r = msgs.result()
    with Collector(broker, db) as collector:
        mqtt_client.publish(broker, [(msgs.topic_for(huge), schema.encode(huge)),
                                     (msgs.topic_for(r), schema.encode(r))])
        _wait_received(collector, 2)
        assert collector.wait_until(lambda: collector.counts["stored"] == 1, 5)
        assert collector.counts["rejected"] == 1
        assert _alive(collector)
    with Store(db) as store:
        assert store.results() == [r]
        assert store.count("rejected") == 1


def test_unreachable_broker_is_a_quick_user_error(db):
    port = free_port()  # nothing listens here
    started = time.monotonic()
    with pytest.raises(UserError) as excinfo:
        Collector(f"127.0.0.1:{port}", db).start()
    assert time.monotonic() - started < 5
    message = str(excinfo.value)
    assert f"127.0.0.1:{port}" in message and "\n" not in message


def test_something_that_is_not_a_broker_is_a_user_error(db):
    with socket.socket() as silent:  # accepts TCP connections, never answers MQTT
        silent.bind(("127.0.0.1", 0))
        silent.listen()
        port = silent.getsockname()[1]
        started = time.monotonic()
        with pytest.raises(UserError, match=f"127.0.0.1:{port}"):
            Collector(f"127.0.0.1:{port}", db).start(timeout_s=1.0)
        assert time.monotonic() - started < 5


def test_unopenable_store_is_a_user_error(tmp_path):
    (tmp_path / "dir.sqlite").mkdir()
    with EmbeddedBroker(port=0) as b, pytest.raises(UserError, match="dir.sqlite"):
        Collector(b.address, tmp_path / "dir.sqlite").start()


def test_on_stored_sees_each_new_message(broker, db, msgs, mqtt_client):
    seen = []
    r1, r2 = msgs.result(), msgs.result("resnet50")
    with Collector(broker, db, on_stored=seen.append) as collector:
        mqtt_client.publish(broker, [(msgs.topic_for(m), schema.encode(m)) for m in (r1, r1, r2)])
        _wait_received(collector, 3)
    assert sorted(m.id for m in seen) == sorted([r1.id, r2.id])


def test_on_valid_sees_every_valid_message_and_on_rejected_each_refusal(broker, db, msgs, mqtt_client):
    valid, rejected = [], []
    r1 = msgs.result()
    telemetry = schema.Telemetry(board="board-a", ts=time.time(), seq=0, t0=time.time(), dt_s=0.1, power_w=[2.0])
    sent = [(msgs.topic_for(m), schema.encode(m)) for m in (r1, r1, telemetry)]
    sent.append((topics.topic("board-a", topics.RESULT), b"{garbage"))
    with Collector(broker, db, on_valid=valid.append, on_rejected=lambda t, r: rejected.append(t)) as collector:
        mqtt_client.publish(broker, sent)
        _wait_received(collector, 4)
    # The duplicate too; telemetry is handled on arrival, so its order relative to other kinds may differ.
    assert sorted(schema.KIND_OF[type(m)] for m in valid) == ["result", "result", "telemetry"]
    assert rejected == [topics.topic("board-a", topics.RESULT)]


def test_a_failing_handler_does_not_stop_the_collector(broker, db, msgs, mqtt_client):
    seen = []

    def fussy(message):
        if not seen:
            seen.append(None)
            raise RuntimeError("a viewer bug")
        seen.append(message)

    telemetry = [schema.Telemetry(board="board-a", ts=time.time(), seq=i, t0=time.time(), dt_s=0.1, power_w=[2.0])
                 for i in range(3)]
    with Collector(broker, db, on_valid=fussy) as collector:
        mqtt_client.publish(broker, [(msgs.topic_for(m), schema.encode(m)) for m in telemetry])
        _wait_received(collector, 3)
        r = msgs.result()
        mqtt_client.publish(broker, [(msgs.topic_for(r), schema.encode(r))])
        _wait_received(collector, 4)
        assert collector.counts["handler_errors"] == 1
    assert len([m for m in seen if m is not None]) == 3  # two telemetry after the failure, and the result


def test_retry_mode_waits_for_a_broker_that_comes_later(db, msgs, mqtt_client, brokers):
    port = free_port()
    collector = Collector(f"127.0.0.1:{port}", db).start(retry=True)  # nothing listens yet: no error
    try:
        assert not collector.connected
        late, _ = brokers.start(port, wait=False)
        try:
            deadline = time.monotonic() + 20
            while not collector.connected and time.monotonic() < deadline:
                time.sleep(0.1)
            assert collector.connected
            assert collector._subscribed.wait(10)
            mqtt_client.publish(f"127.0.0.1:{port}", [(msgs.topic_for(r), schema.encode(r)) for r in [msgs.result()]])
            _wait_received(collector, 1)
        finally:
            late.terminate()
            late.wait(10)
        deadline = time.monotonic() + 10
        while collector.connected and time.monotonic() < deadline:  # the broker is gone again: said, not fatal
            time.sleep(0.1)
        assert not collector.connected
    finally:
        collector.stop()


# --- validate(): the rules, without a broker -------------------------------------------------------------------


def test_validate_accepts_each_kind_on_its_topic(msgs):
    for message in (msgs.result(), msgs.failure(), msgs.status(), msgs.info(), msgs.run_event(run_id="run-7"),
                    schema.Telemetry(board="board-a", ts=1.0, seq=0, t0=1.0, dt_s=0.1, power_w=[])):
        assert validate(msgs.topic_for(message), schema.encode(message)) == message


@pytest.mark.parametrize("topic_name, payload, reason", [
    ("dnnprof/v1/board-a/result", b"{", "truncated"),
    ("dnnprof/v1/board-a/result", b"", ""),
    ("dnnprof/v1/board-a/status", (b'{"kind": "status", "schema": 2, "board": "board-a", "ts": 1, '
                                   b'"state": "online", "session": 1}'), "schema version 2"),
    ("dnnprof/v1/board-a/status", (b'{"kind": "status", "board": "board-a", "ts": 1, "state": "gone", '
                                   b'"session": 1}'), "state"),
    ("dnnprof/v1/board-a/status", (b'{"kind": "status", "board": "board-a", "ts": 1, "state": "online", '
                                   b'"session": -1}'), "session"),
    ("dnnprof/v1/board-a/status", b'{"kind": "nope", "board": "board-a", "ts": 1}', "nope"),
    ("dnnprof/v1/board-a/info", None, "'result' message on a 'info' topic"),
    ("dnnprof/v1/board-b/result", None, "'board-a' in the payload differs from 'board-b'"),
    ("dnnprof/v1/board-a/run/run-2", "run", "run 'run-1' in the payload differs from 'run-2'"),
    ("dnnprof/v1/board-a/run", "run", "unknown kind 'run'"),
    ("dnnprof/v1/board-a/unknown", None, "unknown kind"),
    ("dnnprof/v1/x/unknown", None, "unknown kind"),
    ("dnnprof/v1/board-a/result/extra", None, "unknown kind"),
    ("dnnprof/v2/board-a/result", None, "not under dnnprof/v1/"),
    ("other/v1/board-a/result", None, "not under dnnprof/v1/"),
    ("dnnprof/v1/board-a", None, "not under dnnprof/v1/"),
    ("dnnprof/v1/Board_A/result", None, "invalid board id"),
])
def test_validate_rejects(msgs, topic_name, payload, reason):
    if payload is None:
        payload = schema.encode(msgs.result(board="board-a"))
    elif payload == "run":
        payload = schema.encode(msgs.run_event(board="board-a", run_id="run-1"))
    with pytest.raises(ValueError) as excinfo:
        validate(topic_name, payload)
    assert reason in str(excinfo.value)


# --- bad input at the door: every kind of garbage against a real Mosquitto, raw bytes as a stranger would send ---


def _result_json(msgs, **changes) -> bytes:
    """A valid result on board-a, its JSON with ``changes`` applied."""
    return _json(msgs.result(board="board-a"), **changes)


RESULT_TOPIC = "dnnprof/v1/board-a/result"
# (id, topic, payload(msgs) -> bytes, what the stored reason must mention)
BAD_INPUT = [
    ("malformed-json", RESULT_TOPIC, lambda m: b'{"kind": "result", "board": ', "truncated"),
    ("not-utf8", RESULT_TOPIC, lambda m: b"\xff\xfe\x00garbage", "JSON is malformed"),
    ("not-an-object", RESULT_TOPIC, lambda m: b'"a string"', "Expected `object`, got `str`"),
    ("schema-version-2", RESULT_TOPIC, lambda m: _result_json(m, schema=2), "unsupported schema version 2"),
    ("schema-version-text", RESULT_TOPIC, lambda m: _result_json(m, schema="1"),
     "Expected `int`, got `str` - at `$.schema`"),
    ("oversized", RESULT_TOPIC, lambda m: b"{" + b" " * MAX_PAYLOAD_BYTES + b"}", "payload too large"),
    ("oversized-telemetry", "dnnprof/v1/board-a/telemetry", lambda m: b"[" * (MAX_PAYLOAD_BYTES + 1),
     "payload too large"),
    ("wrong-type", RESULT_TOPIC, lambda m: _result_json(m, batch="4"), "Expected `int`, got `str` - at `$.batch`"),
    # 10**30 is more than SQLite's 64-bit INTEGER holds: the schema refuses it, naming the field.
    ("huge-integer", RESULT_TOPIC, lambda m: _result_json(m, batch=10**30),
     "Expected `int` <= 9223372036854775807 - at `$.batch`"),
    ("huge-float", RESULT_TOPIC, lambda m: _result_json(m).replace(b'"ts":', b'"ts":1e999,"_":', 1),
     "Number out of range"),
    ("nan-as-text", RESULT_TOPIC, lambda m: _result_json(m, throughput_ips="NaN"),
     "Expected `float`, got `str` - at `$.throughput_ips`"),
    ("nested-junk", RESULT_TOPIC, lambda m: _result_json(m, latency_ms=[[[[{"a": [None]}]]]]),
     "Expected `object`, got `array` - at `$.latency_ms`"),
    # Before schema.decode caught RecursionError, this ended the writer thread: nothing was stored after it.
    ("deep-nesting", RESULT_TOPIC, lambda m: b'{"a":' * 5000, "nested too deeply"),
    ("deep-nesting-telemetry", "dnnprof/v1/board-a/telemetry", lambda m: b'{"a":' * 5000, "nested too deeply"),
    ("telemetry-garbage", "dnnprof/v1/board-a/telemetry", lambda m: b"{nope", "JSON is malformed"),
    ("topic-extra-level", "dnnprof/v1/board-a/result/extra", lambda m: _result_json(m), "unknown kind"),
    ("topic-no-kind", "dnnprof/v1/board-a", lambda m: _result_json(m), "not under dnnprof/v1/"),
    ("topic-board-invalid", "dnnprof/v1/Board_A/result", lambda m: _result_json(m), "invalid board id"),
    ("topic-board-unicode", "dnnprof/v1/bøard/result", lambda m: _result_json(m), "invalid board id"),
    ("payload-board-plus", "dnnprof/v1/board-a/status",
     lambda m: _json(m.status(board="board-a"), board="board+a"), "at `$.board`"),
    ("payload-board-hash", "dnnprof/v1/board-a/status",
     lambda m: _json(m.status(board="board-a"), board="#"), "at `$.board`"),
    ("payload-board-differs", RESULT_TOPIC, lambda m: _json(m.result(board="board-b")),
     "board 'board-b' in the payload differs from 'board-a' in the topic"),
]


@pytest.mark.parametrize("topic_name, make, mention", [case[1:] for case in BAD_INPUT],
                         ids=[case[0] for case in BAD_INPUT])
def test_bad_input_is_rejected_counted_kept_and_survived(mosquitto, db, msgs, mqtt_client, topic_name, make,
                                                         mention):
    payload = make(msgs)
    good = msgs.result("resnet50", board="board-a")
    with Collector(mosquitto, db) as collector:
        mqtt_client.publish(mosquitto, [(topic_name, payload)])
        assert collector.wait_until(lambda: collector.counts["rejected"] == 1, 10), dict(collector.counts)
        # A good message after the bad one is still stored: the collector lives on.
        mqtt_client.publish(mosquitto, [(msgs.topic_for(good), schema.encode(good))])
        assert collector.wait_until(lambda: collector.counts["stored"] == 1, 10), dict(collector.counts)
        assert _alive(collector)
        assert collector.counts["rejected"] == 1
    with Store(db) as store:
        assert store.results() == [good]
        (row,) = store.rejected()
    assert row.source == f"mqtt:{topic_name}"
    assert mention in row.reason and "\n" not in row.reason
    assert row.payload == payload[:KEEP_REJECTED_BYTES]  # kept for inspection; an oversized one only its head


def _mqtt_packet(kind: int, body: bytes) -> bytes:
    """An MQTT 3.1.1 control packet: fixed header with the variable-length remaining length, then ``body``."""
    length, encoded = len(body), bytearray()
    while True:
        byte, length = length % 128, length // 128
        encoded.append(byte | (0x80 if length else 0))
        if not length:
            return bytes([kind]) + bytes(encoded) + body


def _mqtt_string(text: str) -> bytes:
    data = text.encode()
    return len(data).to_bytes(2, "big") + data


@pytest.mark.parametrize("topic_name", ["dnnprof/v1/board+a/result", "dnnprof/v1/+/result", "dnnprof/v1/#"])
def test_a_wildcard_topic_never_reaches_the_collector(mosquitto, db, msgs, mqtt_client, topic_name):
    """paho refuses to publish on a wildcard topic, so a hostile client is written by hand: MQTT forbids it
    (MQTT-3.3.2-2) and Mosquitto drops the client. The collector sees nothing and goes on; its own check
    (``validate``) would refuse the topic too."""
    with pytest.raises(ValueError, match="wildcards"):
        mqtt_client.connect(mosquitto).publish(topic_name, b"{}")
    with pytest.raises(ValueError, match="invalid board id|not under"):
        validate(topic_name, schema.encode(msgs.status()))
    good = msgs.result(board="board-a")
    host, port = topics.parse_broker(mosquitto)
    with Collector(mosquitto, db) as collector, socket.create_connection((host, port), timeout=5) as raw:
        raw.sendall(_mqtt_packet(0x10, _mqtt_string("MQTT") + bytes([4, 0x02, 0, 30]) + _mqtt_string("hostile")))
        assert raw.recv(4) == b"\x20\x02\x00\x00"  # CONNACK, accepted
        raw.sendall(_mqtt_packet(0x30, _mqtt_string(topic_name) + b'{"kind": "status"}'))
        assert raw.recv(16) == b""  # the broker closed the connection rather than deliver it
        mqtt_client.publish(mosquitto, [(msgs.topic_for(good), schema.encode(good))])
        assert collector.wait_until(lambda: collector.counts["stored"] == 1, 10)
        assert _alive(collector)
        assert (collector.counts["received"], collector.counts["rejected"]) == (1, 0)


def test_validate_refuses_an_oversized_payload_before_reading_it(msgs):
    # Too large and not even a message: the size alone is the reason, reported before any parsing.
    with pytest.raises(ValueError, match=f"payload too large: {MAX_PAYLOAD_BYTES + 1} bytes"):
        validate("not/a/topic", b"\xff" * (MAX_PAYLOAD_BYTES + 1))
    # The largest valid telemetry batch the schema allows fits under the limit.
    biggest = schema.Telemetry(board="board-a", ts=1.0, seq=0, t0=1.0, dt_s=0.01,
                               power_w=[123456.78901234567] * 100_000)
    payload = schema.encode(biggest)
    assert len(payload) <= MAX_PAYLOAD_BYTES
    assert validate(msgs.topic_for(biggest), payload) == biggest


def test_a_lost_database_connection_loses_nothing(postgres, mosquitto, msgs, mqtt_client):
    """PostgreSQL ends the collector's session (a server restart, a failover, an administrator): the batch in hand
    is not acknowledged, the failure is said and counted, and the collector stores it on a new connection."""
    import psycopg

    url = postgres.database()
    first, second = msgs.result(id="before-the-loss"), msgs.result(id="after-the-loss")
    with Collector(mosquitto, url, client_id="dnnhost-test-pg-loss", persistent=True) as collector:
        mqtt_client.publish(mosquitto, [(msgs.topic_for(first), schema.encode(first))])
        assert collector.wait_until(lambda: collector.counts["stored"] == 1, 10)
        with psycopg.connect(url, autocommit=True) as admin:  # end every other session on this database
            admin.execute("SELECT pg_terminate_backend(pid) FROM pg_stat_activity WHERE datname = current_database() "
                          "AND pid <> pg_backend_pid()")
        mqtt_client.publish(mosquitto, [(msgs.topic_for(second), schema.encode(second))])
        assert collector.wait_until(lambda: collector.counts["stored"] == 2, 15), dict(collector.counts)
        assert collector.counts["store_errors"] >= 1
    with Store(url) as store:
        assert sorted(r.id for r in store.results()) == ["after-the-loss", "before-the-loss"]


def test_a_nul_character_is_rejected_or_kept_and_the_collector_goes_on(mosquitto, db, msgs, mqtt_client):
    """A payload whose text holds a NUL (JSON's \\u0000), and a topic that quotes one: PostgreSQL holds neither, so
    there the result is rejected (and the refusal kept, the NUL spelled out); SQLite stores it. Either way the
    writer goes on and stores the next message."""
    odd = msgs.result(id="nul-in-the-network")
    payload = schema.encode(odd).replace(odd.network.encode(), b"res\\u0000net")
    after = msgs.result(id="after-the-nul")
    with Collector(mosquitto, db) as collector:
        mqtt_client.publish(mosquitto, [(msgs.topic_for(odd), payload),
                                        ("dnnprof/v1/board-a/x\\u0000", b"{}"),
                                        (msgs.topic_for(after), schema.encode(after))])
        assert collector.wait_until(lambda: collector.counts["received"] == 3, 10), dict(collector.counts)
    with Store(db) as store:
        ids = {r.id for r in store.results()}
        reasons = [r.reason for r in store.rejected()]
        sources = [r.source for r in store.rejected()]
    assert "after-the-nul" in ids
    assert "mqtt:dnnprof/v1/board-a/xU+0000" in sources
    if store.engine.name == "postgresql":
        assert "nul-in-the-network" not in ids
        assert any("NUL character (U+0000)" in r for r in reasons), reasons
    else:
        assert "nul-in-the-network" in ids
