"""Where results go: a JSONL file, or a real Mosquitto broker (the ``mosquitto`` fixture of tests/conftest.py)."""

import json
import os
import queue
import signal
import socket
import subprocess
import sys
import threading
import time
import uuid

import paho.mqtt.client as mqtt
import pytest

from dnnprof.agent.publish.link import JsonlSink, MqttLink, topic_for
from dnnprof.shared import schema
from dnnprof.shared.errors import UserError

TS = 1718092245.5


def status(board="board-a", state="online", session=5) -> schema.Status:
    return schema.Status(board=board, ts=TS, state=state, session=session)


def run_event(board="board-a", seq=0, event="started") -> schema.RunEvent:
    return schema.RunEvent(board=board, ts=TS, run_id="run-1", seq=seq, event=event, points_total=1, points_done=0)


def result(board="board-a") -> schema.Result:
    return schema.Result(
        id=uuid.uuid4().hex, board=board, ts=TS, run_id="run-1", network="resnet18", model_sha256="0" * 64,
        input_shape=[3, 224, 224], backend="onnxruntime", backend_version="1.17.1", device="cpu", precision="fp32",
        batch=1, warmup_s=0.5, warmup_iterations=3, window_s=2.0, iterations=20, images=20,
        latency_ms=schema.Latency(mean=100, stdev=1, p50=100, p90=101, p95=102, p99=103, min=98, max=104),
        throughput_ips=10.0, provenance=schema.Provenance(power_source=None, boundary=None, estimated=False),
    )


def info(board="board-a") -> schema.BoardInfo:
    return schema.BoardInfo(board=board, ts=TS, hostname="h", os="Linux", arch="x86_64", cpu_count=2, python="3.11",
                            agent_version="0.1.0", session=5)


# -- JSONL -----------------------------------------------------------------------------------------


def test_topic_for_each_kind():
    assert topic_for(status()) == "dnnprof/v1/board-a/status"
    assert topic_for(info()) == "dnnprof/v1/board-a/info"
    assert topic_for(run_event()) == "dnnprof/v1/board-a/run/run-1"
    assert topic_for(result()) == "dnnprof/v1/board-a/result"


def test_jsonl_sink_writes_decodable_lines(tmp_path):
    path = tmp_path / "out" / "nested" / "results.jsonl"  # parents are created
    sent = [status(), info(), run_event(), result(), run_event(seq=1, event="finished")]
    sink = JsonlSink(path)
    for message in sent:
        sink.send(message)
        assert path.read_bytes().endswith(b"\n")  # flushed as it goes: a crash keeps what was measured
    assert sink.close() == []
    lines = path.read_bytes().splitlines()
    assert [schema.decode(line) for line in lines] == sent
    assert all(json.loads(line)["schema"] == schema.SCHEMA_VERSION for line in lines)


def test_jsonl_sink_appends(tmp_path):
    path = tmp_path / "results.jsonl"
    for _ in range(2):
        sink = JsonlSink(path)
        sink.send(result())
        sink.close()
    assert len(path.read_bytes().splitlines()) == 2


def test_jsonl_sink_unwritable_path(tmp_path):
    blocker = tmp_path / "file"
    blocker.write_text("a file where a directory should be\n")
    with pytest.raises(UserError) as info_:
        JsonlSink(blocker / "results.jsonl")
    assert "cannot write results" in str(info_.value) and "\n" not in str(info_.value)


# -- MQTT ------------------------------------------------------------------------------------------


def split(address: str) -> tuple[str, int]:
    host, _, port = address.rpartition(":")
    return host, int(port)


class Subscriber:
    """A paho client subscribed at QoS1 to everything under dnnprof/v1/, collecting messages in a queue."""

    def __init__(self, address: str, pattern: str = "dnnprof/v1/#") -> None:
        self.messages: queue.Queue[mqtt.MQTTMessage] = queue.Queue()
        subscribed = threading.Event()
        client = mqtt.Client(mqtt.CallbackAPIVersion.VERSION2, client_id=f"test-{uuid.uuid4().hex[:8]}")
        client.on_connect = lambda c, userdata, flags, rc, props: c.subscribe(pattern, qos=1)
        client.on_subscribe = lambda c, userdata, mid, rcs, props: subscribed.set()
        client.on_message = lambda c, userdata, message: self.messages.put(message)
        client.connect(*split(address))
        client.loop_start()
        self.client = client
        assert subscribed.wait(5), "subscription not acknowledged"

    def get(self, timeout: float = 5.0) -> mqtt.MQTTMessage:
        return self.messages.get(timeout=timeout)

    def get_on(self, topic: str, timeout: float = 5.0) -> mqtt.MQTTMessage:
        deadline = time.monotonic() + timeout
        while True:
            message = self.get(max(0.01, deadline - time.monotonic()))
            if message.topic == topic:
                return message

    def close(self) -> None:
        self.client.disconnect()
        self.client.loop_stop()


@pytest.fixture
def subscribers(mosquitto):
    opened: list[Subscriber] = []

    def open_one() -> Subscriber:
        opened.append(Subscriber(mosquitto))
        return opened[-1]

    yield open_one
    for sub in opened:
        sub.close()


def test_status_is_retained_and_close_publishes_offline(mosquitto, subscribers):
    link = MqttLink(mosquitto, "board-a", session=5)
    assert (link.host, link.port) == split(mosquitto)
    link.send(status(session=5))
    link.send(info())
    assert link.flush(5) == []
    late = subscribers()  # subscribes after the fact: gets the retained birth
    got = {m.topic: m for m in (late.get(), late.get())}
    online = got["dnnprof/v1/board-a/status"]
    assert online.retain and schema.decode(online.payload) == status(session=5)
    assert got["dnnprof/v1/board-a/info"].retain and schema.decode(got["dnnprof/v1/board-a/info"].payload) == info()

    assert link.close() == []
    live = schema.decode(late.get_on("dnnprof/v1/board-a/status").payload)
    assert live.state == "offline" and live.session == 5
    after = subscribers()
    offline = after.get_on("dnnprof/v1/board-a/status")
    assert offline.retain and schema.decode(offline.payload).state == "offline"


def test_results_and_run_events_arrive_at_qos1(mosquitto, subscribers):
    sub = subscribers()
    link = MqttLink(mosquitto, "board-b", session=1)
    sent = [run_event("board-b"), result("board-b"), result("board-b"), run_event("board-b", 1, "finished")]
    for message in sent:
        link.send(message)
    assert link.close() == []
    received = [sub.get() for _ in range(len(sent) + 1)]  # and the offline status
    data = [m for m in received if not m.topic.endswith("/status")]
    assert [m.topic for m in data] == ["dnnprof/v1/board-b/run/run-1", "dnnprof/v1/board-b/result",
                                       "dnnprof/v1/board-b/result", "dnnprof/v1/board-b/run/run-1"]
    assert all(m.qos == 1 and not m.retain for m in data)
    assert [schema.decode(m.payload) for m in data] == sent


def test_many_results_all_acknowledged(mosquitto, subscribers):
    sub = subscribers()
    link = MqttLink(mosquitto, "board-c", session=1)
    sent = [result("board-c") for _ in range(200)]
    for message in sent:
        link.send(message)
    assert link.flush(10) == []
    assert link.close() == []
    ids = set()
    while len(ids) < len(sent):
        message = sub.get()
        if message.topic.endswith("/result"):
            ids.add(schema.decode(message.payload).id)
    assert ids == {m.id for m in sent}


LOST_SNIPPET = """
import os, sys, time
from dnnprof.agent.publish.link import MqttLink
from dnnprof.shared import schema
link = MqttLink(sys.argv[1], "board-lost", session=42)
link.send(schema.Status(board="board-lost", ts=time.time(), state="online", session=42))
assert link.flush(5) == []
print("online", flush=True)
os.kill(os.getpid(), 9)
"""


def test_killed_agent_leaves_the_retained_lost_will(mosquitto, subscribers):
    sub = subscribers()
    proc = subprocess.run([sys.executable, "-c", LOST_SNIPPET, mosquitto], capture_output=True, text=True,
                          timeout=30)
    assert proc.returncode == -9, proc.stderr
    assert proc.stdout.strip() == "online"
    states = []
    deadline = time.monotonic() + 10
    while "lost" not in states and time.monotonic() < deadline:
        message = sub.get_on("dnnprof/v1/board-lost/status", timeout=10)
        states.append(schema.decode(message.payload).state)
    assert states == ["online", "lost"]
    retained = subscribers().get_on("dnnprof/v1/board-lost/status")
    will = schema.decode(retained.payload)
    assert retained.retain and will.state == "lost" and will.session == 42 and will.board == "board-lost"


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def test_unreachable_broker_is_a_quick_user_error():
    port = free_port()
    start = time.monotonic()
    with pytest.raises(UserError) as info_:
        MqttLink(f"127.0.0.1:{port}", "board-d", session=1, connect_timeout_s=2)
    assert time.monotonic() - start < 3
    message = str(info_.value)
    assert f"127.0.0.1:{port}" in message and "--output" in message and "\n" not in message  # `dnnagent run`'s
    # Another caller (the service, which has no --output) gives its own hint.
    with pytest.raises(UserError) as info_:
        MqttLink(f"127.0.0.1:{port}", "board-d", session=1, connect_timeout_s=2, unreachable_hint="check agent.toml")
    assert str(info_.value).endswith("): check agent.toml") and "--output" not in str(info_.value)


def test_invalid_board_id_is_rejected_before_connecting():
    with pytest.raises(UserError, match="invalid board id"):
        MqttLink(f"127.0.0.1:{free_port()}", "Board/A", session=1)


def test_bad_broker_address_is_rejected_before_connecting():
    with pytest.raises(UserError, match="invalid port"):
        MqttLink("127.0.0.1:http", "board-e", session=1)


def test_unresolvable_host_is_a_user_error():
    with pytest.raises(UserError) as info_:
        MqttLink("no-such-host.invalid:1883", "board-f", session=1, connect_timeout_s=2)
    assert "no-such-host.invalid:1883" in str(info_.value)
    assert os.linesep not in str(info_.value)


# -- telemetry: live only ----------------------------------------------------------------------------------------


def telemetry(board="board-a", seq=0) -> schema.Telemetry:
    return schema.Telemetry(board=board, ts=TS, seq=seq, t0=TS, dt_s=0.1, power_w=[4.0], power_source="rapl",
                            boundary="cpu_package")


def test_topic_for_telemetry():
    assert topic_for(telemetry()) == "dnnprof/v1/board-a/telemetry"


def test_jsonl_sink_keeps_no_telemetry(tmp_path):
    path = tmp_path / "results.jsonl"
    sink = JsonlSink(path)
    for message in (telemetry(seq=0), result(), telemetry(seq=1)):
        sink.send(message)
    sink.close()
    assert [schema.KIND_OF[type(schema.decode(line))] for line in path.read_bytes().splitlines()] == ["result"]


def test_telemetry_goes_out_at_qos0_not_retained_and_untracked(mosquitto, subscribers):
    sub = subscribers()
    link = MqttLink(mosquitto, "board-t", session=1)
    link.send(telemetry("board-t", 0))
    assert link.send_live(telemetry("board-t", 1))
    got = [sub.get_on("dnnprof/v1/board-t/telemetry") for _ in range(2)]
    assert all(m.qos == 0 and not m.retain for m in got)  # the subscription is QoS1: delivered at the publish QoS
    assert [schema.decode(m.payload).seq for m in got] == [0, 1]
    assert link.flush(0) == []  # nothing to wait for
    assert link.close() == []
    late = subscribers()
    assert late.get_on("dnnprof/v1/board-t/status").retain
    time.sleep(0.1)
    assert not [m for m in list(late.messages.queue) if m.topic.endswith("/telemetry")]  # nothing retained


def test_result_after_the_message_ids_wrap_past_telemetry_is_still_tracked(brokers):
    # paho numbers QoS 0 and QoS 1 messages from one 16-bit counter and calls on_publish for both: QoS 0 ids
    # taken for PUBACKs would, once the counter wraps, mark a result delivered that never was.
    broker, address = brokers.start()
    link = MqttLink(address, "board-w", session=1)
    live = telemetry("board-w")
    for _ in range(65534):  # ids 1..65534
        link.send_live(live)
    link.send(status("board-w", session=1))  # id 65535; its PUBACK comes after every telemetry was written
    assert link.flush(10) == []
    os.kill(broker.pid, signal.SIGSTOP)  # from now on nothing is acknowledged
    lost = result("board-w")
    link.send(lost)  # id 1 again
    assert link.close(timeout_s=0.5) == [lost]
