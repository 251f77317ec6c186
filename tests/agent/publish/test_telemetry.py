"""Live telemetry end to end: a real Mosquitto (tests/conftest.py), RAPL over the recorded two-package powercap tree
moving at a known power (tests/agent/conftest.py), and the recorded x86 desktop's thermal zones, throttle counters
and governor laid over the same root."""

from __future__ import annotations

import os
import queue
import shutil
import signal
import statistics
import threading
import time
import uuid
from pathlib import Path

import paho.mqtt.client as mqtt
import pytest

from dnnprof.agent.measure import profiler
from dnnprof.agent.measure.sweep import Sweep
from dnnprof.shared import onnxfile
from dnnprof.agent.power.estimate import EstimateSource
from dnnprof.agent.power.rapl import RaplSource
from dnnprof.agent.publish.link import JsonlSink, MqttLink
from dnnprof.agent.publish.telemetry import SharedSource, TelemetryPublisher, check_hz
from dnnprof.shared import schema

DATA = Path(__file__).resolve().parents[2] / "data"
X86 = DATA / "conditions" / "x86-desktop"
PACKAGES = {"intel-rapl:0": 3.0, "intel-rapl:1": 1.0}  # watts of package-0 and package-1
X86_FACTS = {"temperatures_c": {"acpitz": 27.8, "x86_pkg_temp": 45.0}, "throttle_events": 56,
             "clocks": "cpu governor powersave"}


@pytest.fixture
def board(powercap):
    """The moving RAPL tree with the x86 desktop's sysfs (thermal zones, throttle counters, cpufreq) beside it."""
    writer = powercap(PACKAGES)
    shutil.copytree(X86 / "sys", writer.root / "sys", dirs_exist_ok=True)
    return writer


class Listener:
    """Subscribed at QoS 1 to every board's telemetry: a message still arriving at QoS 0 was published at QoS 0."""

    def __init__(self, address: str) -> None:
        self.received: queue.Queue[tuple[float, mqtt.MQTTMessage]] = queue.Queue()
        subscribed = threading.Event()
        client = mqtt.Client(mqtt.CallbackAPIVersion.VERSION2, client_id=f"listener-{uuid.uuid4().hex[:8]}")
        client.on_connect = lambda c, userdata, flags, rc, props: c.subscribe("dnnprof/v1/+/telemetry", qos=1)
        client.on_subscribe = lambda c, userdata, mid, rcs, props: subscribed.set()
        client.on_message = lambda c, userdata, m: self.received.put((time.monotonic(), m))
        host, _, port = address.rpartition(":")
        client.connect(host, int(port))
        client.loop_start()
        self.client = client
        assert subscribed.wait(5), "subscription not acknowledged"

    def take(self, n: int, timeout_s: float = 5.0) -> list[tuple[float, mqtt.MQTTMessage]]:
        return [self.received.get(timeout=timeout_s) for _ in range(n)]

    def drain(self) -> list[tuple[float, mqtt.MQTTMessage]]:
        out = []
        while not self.received.empty():
            out.append(self.received.get_nowait())
        return out

    def close(self) -> None:
        self.client.disconnect()
        self.client.loop_stop()


@pytest.fixture
def listen(mosquitto):
    opened: list[Listener] = []

    def open_one() -> Listener:
        opened.append(Listener(mosquitto))
        return opened[-1]

    yield open_one
    for listener in opened:
        listener.close()


@pytest.fixture
def links(mosquitto):
    opened: list[MqttLink] = []

    def open_one(board: str) -> MqttLink:
        opened.append(MqttLink(mosquitto, board, session=1))
        return opened[-1]

    yield open_one
    for link in opened:
        link.close(timeout_s=1)


def telemetry_threads() -> list[threading.Thread]:
    return [t for t in threading.enumerate() if t.name == "telemetry"]


# -- messages at a real broker ------------------------------------------------------------------------------------


def test_batches_arrive_at_the_set_rate_with_power_rails_and_temperatures(board, listen, links):
    listener, link = listen(), links("tele-a")
    source = SharedSource(RaplSource(board.root))
    with TelemetryPublisher(link, "tele-a", source, rate_hz=5, samples_hz=20, root=str(board.root)) as publisher:
        got = listener.take(6)
    assert publisher.samples_hz == 20 and publisher.read_errors == 0
    assert publisher.cpu_fraction < 0.05  # ~0.5% measured here; PERFORMANCE-style budget for a live feed
    arrivals = [t for t, _ in got]
    assert all(m.topic == "dnnprof/v1/tele-a/telemetry" and m.qos == 0 and not m.retain for _, m in got)
    messages = [schema.decode(m.payload) for _, m in got]
    assert [m.seq for m in messages] == list(range(6))
    assert statistics.median(b - a for a, b in zip(arrivals, arrivals[1:])) == pytest.approx(0.2, abs=0.04)
    counts = [len(m.power_w) for m in messages]
    assert statistics.median(counts) == 4 and all(1 <= n <= 5 for n in counts), counts
    for m, after in zip(messages, messages[1:]):
        assert m.dt_s == pytest.approx(0.05)
        # the next batch starts one sample period after this one's last sample: no sample lost or repeated
        assert after.t0 == pytest.approx(m.t0 + len(m.power_w) * m.dt_s, abs=0.02)
    assert abs(messages[0].t0 - messages[0].ts) < 1  # Unix seconds, like ts
    samples = [p for m in messages for p in m.power_w]
    assert statistics.median(samples) == pytest.approx(board.total_w, rel=0.05)
    for m in messages:
        assert (m.board, m.power_source, m.boundary, m.estimated, m.power_mode) == (
            "tele-a", "rapl", "cpu_package", False, None)
        assert m.rails_w.keys() == {"package-0", "package-1"}
        assert m.rails_w["package-0"] == pytest.approx(3.0, rel=0.1)
        assert m.rails_w["package-1"] == pytest.approx(1.0, rel=0.1)
        assert (m.temperatures_c, m.throttle_events, m.clocks) == tuple(X86_FACTS.values())


def test_without_a_power_source_samples_are_empty_never_zero(listen, links):
    listener, link = listen(), links("tele-b")
    with TelemetryPublisher(link, "tele-b", None, rate_hz=20, root=str(X86)) as publisher:
        got = listener.take(3)
    assert publisher.samples_hz is None
    for _, raw in got:
        m = schema.decode(raw.payload)
        assert m.power_w == [] and m.power_source is None and m.boundary is None and m.estimated is False
        assert m.rails_w == {} and m.dt_s == 0
        assert (m.temperatures_c, m.throttle_events, m.clocks) == tuple(X86_FACTS.values())


def test_on_a_jetson_messages_carry_the_nvpmodel_mode_and_jetson_clocks(listen, links):
    listener, link = listen(), links("tele-j")
    with TelemetryPublisher(link, "tele-j", None, rate_hz=20, root=str(DATA / "jetson" / "orin-nano-jp6")):
        got = listener.take(2)
    for _, raw in got:
        m = schema.decode(raw.payload)
        assert (m.power_mode, m.clocks) == ("15W", "jetson_clocks off")  # the recorded Orin Nano's state


def test_sample_rate_is_bounded_by_the_sensor_update_interval():
    # USER_HZ 10: the recorded /proc/stat's jiffies would tick every 0.1 s, so reading faster only repeats
    source = SharedSource(EstimateSource(DATA / "procstat" / "x86-4cpu", user_hz=10))
    sink = Collect()
    with TelemetryPublisher(sink, "tele-c", source, rate_hz=4, samples_hz=100, root=str(X86)) as publisher:
        sink.wait_for(2)
    assert publisher.samples_hz == pytest.approx(10)
    assert all(m.dt_s == pytest.approx(0.1) and 1 <= len(m.power_w) <= 3 for m in sink.messages[:2])
    assert all(p == 0 for m in sink.messages for p in m.power_w)  # a recorded, unmoving /proc/stat: idle
    assert sink.messages[0].estimated and sink.messages[0].boundary == "estimate"


class Collect:
    """A sink keeping what it gets, after a round trip through the wire format."""

    def __init__(self) -> None:
        self.messages: list[schema.Telemetry] = []
        self._got = threading.Condition()

    def send(self, message: schema.Message) -> None:
        with self._got:
            self.messages.append(schema.decode(schema.encode(message)))
            self._got.notify_all()

    def close(self) -> list[schema.Message]:
        return []

    def wait_for(self, n: int, timeout_s: float = 5.0) -> None:
        with self._got:
            assert self._got.wait_for(lambda: len(self.messages) >= n, timeout_s), f"{len(self.messages)} < {n}"


def test_a_gap_in_the_readings_starts_a_new_batch(tmp_path):
    # A still copy of the recorded tree; garbling a counter makes every read fail until it is restored.
    shutil.copytree(DATA / "powercap" / "two-packages", tmp_path, dirs_exist_ok=True)
    counter = tmp_path / "sys/class/powercap/intel-rapl:0/energy_uj"
    good = counter.read_bytes()
    source = SharedSource(RaplSource(tmp_path))
    sink = Collect()
    with TelemetryPublisher(sink, "tele-d", source, rate_hz=2, samples_hz=20, root=str(tmp_path)) as publisher:
        time.sleep(0.12)
        counter.write_bytes(b"garbage\n".ljust(len(good)))
        time.sleep(0.2)
        counter.write_bytes(good)
        sink.wait_for(2)
    assert publisher.read_errors >= 2
    first, second = sink.messages[:2]
    assert 1 <= len(first.power_w) <= 4  # sent early, at the gap, not at 0.5 s
    gap = second.t0 - (first.t0 + len(first.power_w) * first.dt_s)
    assert gap > first.dt_s  # the second batch starts after the gap: its samples sit on their own grid
    assert all(p == 0 for m in sink.messages for p in m.power_w)


# -- live only: QoS 0, never tracked, never stored -------------------------------------------------------------------


@pytest.fixture
def pausable_broker(brokers):
    """A private Mosquitto and its process, to SIGSTOP: connections stay up but nothing is acknowledged."""
    proc, address = brokers.start()
    return address, proc


def telemetry(board: str, seq: int) -> schema.Telemetry:
    return schema.Telemetry(board=board, ts=time.time(), seq=seq, t0=time.time(), dt_s=0.1, power_w=[4.0, 4.1],
                            power_source="rapl", boundary="cpu_package", rails_w={"package-0": 4.05})


def test_telemetry_is_never_among_the_unsent_messages(pausable_broker, tmp_path):
    address, broker = pausable_broker
    link = MqttLink(address, "tele-e", session=1)
    os.kill(broker.pid, signal.SIGSTOP)
    event = schema.RunEvent(board="tele-e", ts=time.time(), run_id="run-1", seq=0, event="started", points_total=1,
                            points_done=0, precision="fp32")
    link.send(telemetry("tele-e", 0))
    link.send(event)
    assert link.send_live(telemetry("tele-e", 1))
    unsent = link.close(timeout_s=0.5)
    assert unsent == [event]  # what a link says did not arrive: no telemetry among it
    rescue = JsonlSink(tmp_path / "rescue.jsonl")
    for message in [telemetry("tele-e", 2), *unsent]:
        rescue.send(message)
    rescue.close()
    assert [schema.decode(line) for line in (tmp_path / "rescue.jsonl").read_bytes().splitlines()] == [event]


def test_telemetry_stops_with_the_sweep_and_shares_the_sensor_with_its_sampler(board, listen, links, tmp_path,
                                                                               make_onnx, sleep_backend, sleep_runner):
    listener, link = listen(), links("tele-f")
    model = onnxfile.load(make_onnx(tmp_path / "tiny.onnx"))
    source = SharedSource(RaplSource(board.root))  # one wrapper, one lock, for both readers
    settings = profiler.Settings(warmup_min_s=0.02, warmup_min_iterations=2, warmup_max_s=0.5, window_min_s=0.3,
                                 window_max_s=0.5, min_iterations=5, min_power_samples=3, latency_ci=0.5,
                                 power_ci=0.5, check_every_s=0.05, idle_s=0.1)
    backend = sleep_backend(lambda m, batch: sleep_runner(lambda n: 0.002))
    sweep = Sweep(board="tele-f", run_id="run-f", models=[model], batches=[1, 2], backend=backend, power=source,
                  settings=settings, root=str(board.root))
    # 100 readings a second from each thread: a reader that raced RaplSource's counter unwrapping would add a
    # whole counter range (hundreds of kJ) to one of them.
    with TelemetryPublisher(link, "tele-f", source, rate_hz=10, samples_hz=100, root=str(board.root)) as publisher:
        results = sweep.run(Collect())
    stopped = time.monotonic()
    assert telemetry_threads() == []
    assert publisher.cpu_fraction is not None
    time.sleep(0.3)  # three message periods
    got = listener.drain()
    assert all(at <= stopped + 0.05 for at, _ in got)  # nothing after the sweep
    messages = [schema.decode(m.payload) for _, m in got]
    assert len(messages) >= 3
    samples = [p for m in messages for p in m.power_w]
    assert statistics.median(samples) == pytest.approx(board.total_w, rel=0.1)
    assert max(samples) < 3 * board.total_w
    for r in results:
        assert r.power_w == pytest.approx(board.total_w, rel=0.05)
        assert r.provenance.power_source == "rapl" and r.conditions.clocks == X86_FACTS["clocks"]


def test_stop_is_prompt_even_between_rare_messages():
    publisher = TelemetryPublisher(Collect(), "tele-g", None, rate_hz=0.5, root=str(X86)).start()
    time.sleep(0.05)
    start = time.monotonic()
    publisher.stop()
    assert time.monotonic() - start < 0.1
    assert telemetry_threads() == []


# -- inputs ----------------------------------------------------------------------------------------------------------


def test_a_bare_source_is_refused():
    with pytest.raises(TypeError, match="SharedSource"):
        TelemetryPublisher(Collect(), "tele-h", EstimateSource(DATA / "procstat" / "x86-4cpu"))


@pytest.mark.parametrize("bad", [0, -1, 100.5, float("nan"), float("inf")])
def test_rates_outside_the_range_are_refused(bad):
    with pytest.raises(ValueError, match="telemetry rate"):
        TelemetryPublisher(Collect(), "tele-i", None, rate_hz=bad)
    with pytest.raises(ValueError, match="per second"):
        check_hz(bad, "rate")
    assert check_hz(100, "rate") == 100


@pytest.mark.parametrize(("value", "zero_off", "problem"), [
    (1.0, False, None), (100.0, False, None), (0.0, True, None),
    (0.0, False, "zero"), (-1.0, True, "negative"), (float("nan"), True, "not_a_number"), (100.5, True, "too_fast"),
])
def test_the_one_rate_rule(value, zero_off, problem):
    from dnnprof.agent.publish.telemetry import RATE_PROBLEMS, rate_problem

    assert rate_problem(value, zero_off=zero_off) == problem
    assert problem is None or RATE_PROBLEMS[problem]
