"""``dnnagent serve`` against a real private Mosquitto, with a real sd_notify socket: ready, birth, sweep, ledger,
skip, redo, outbox, and a clean stop (offline retained) — in a thread and as the process systemd would run."""

from __future__ import annotations

import dataclasses
import importlib.util
import os
import shutil
import signal
import socket
import sqlite3
import subprocess
import sys
import threading
import time
import uuid
from pathlib import Path

import paho.mqtt.client as mqtt
import pytest

from dnnprof.agent.backends import get_backend
from dnnprof.agent.board import clocks
from dnnprof.agent.measure import profiler
from dnnprof.agent.measure.sweep import Sweep
from dnnprof.shared import onnxfile
from dnnprof.agent.power import open_live
from dnnprof.agent.service import config as agent_config
from dnnprof.agent.service import serve as service
from dnnprof.agent.service.ledger import Ledger
from dnnprof.agent.service.outbox import Outbox
from dnnprof.shared import schema
from dnnprof.shared.errors import UserError

BOARD = "svc-board"
SHORT = """[measurement]
warmup_s = 0.01
max_warmup_s = 0.05
duration_s = 0.05
max_duration_s = 0.1
min_iterations = 2
min_power_samples = 0
idle_s = 0
"""


def write_config(tmp_path: Path, broker: str, model_dir: Path, *, batches=(1, 2), redo=False, source="estimate",
                 measurement: str = SHORT, name: str = "agent.toml") -> Path:
    host, port = broker.rsplit(":", 1)
    path = tmp_path / name
    path.write_text(f"""[broker]
host = "{host}"
port = {port}
[agent]
board_id = "{BOARD}"
state_dir = "{tmp_path / 'state'}"
models_dir = "{model_dir}"
[sweep]
batch_sizes = {list(batches)}
backend = "onnxruntime"
redo = {str(redo).lower()}
[power]
source = "{source}"
telemetry_rate_hz = 20
telemetry_samples_hz = 20
{measurement}""")
    return path


class Subscriber:
    """Everything under the board's topics, decoded, with the retain flag; ``wait(predicate)`` blocks until true."""

    def __init__(self, broker: str) -> None:
        host, port = broker.rsplit(":", 1)
        self.messages: list[tuple[schema.Message, bool]] = []
        self._cond = threading.Condition()
        subscribed = threading.Event()
        client = mqtt.Client(mqtt.CallbackAPIVersion.VERSION2, client_id=f"test-{uuid.uuid4().hex[:8]}")
        client.on_connect = lambda c, u, f, rc, p: c.subscribe(f"dnnprof/v1/{BOARD}/#", qos=1)
        client.on_subscribe = lambda c, u, mid, rcs, p: subscribed.set()
        client.on_message = self._on_message
        client.connect(host, int(port))
        client.loop_start()
        self.client = client
        assert subscribed.wait(5), "subscription not acknowledged"

    def _on_message(self, client, userdata, msg) -> None:
        try:
            message = schema.decode(msg.payload)
        except schema.SchemaError:  # an empty retained clear, or a garbage command a test sent the agent
            return
        with self._cond:
            self.messages.append((message, bool(msg.retain)))
            self._cond.notify_all()

    def wait(self, predicate, timeout: float = 60.0) -> list[schema.Message]:
        with self._cond:
            assert self._cond.wait_for(lambda: predicate(self.of()), timeout), [type(m) for m in self.of()]
            return self.of()

    def of(self, kind: type | None = None) -> list:
        return [m for m, _ in self.messages if kind is None or isinstance(m, kind)]

    def close(self) -> None:
        self.client.loop_stop()
        self.client.disconnect()


def retained_status(broker: str) -> schema.Status:
    """The status a newcomer gets: the retained one (the broker marks it retained for a new subscription)."""
    late = Subscriber(broker)
    try:
        late.wait(lambda ms: any(isinstance(m, schema.Status) for m in ms), timeout=10)
        return [m for m, retained in late.messages if retained and isinstance(m, schema.Status)][-1]
    finally:
        late.close()


def events(messages, run_id: str | None = None) -> list[schema.RunEvent]:
    return [m for m in messages if isinstance(m, schema.RunEvent) and (run_id is None or m.run_id == run_id)]


class NotifySocket:
    """systemd's side of sd_notify: an abstract AF_UNIX datagram socket; ``wait(text)`` until a datagram holds it."""

    def __init__(self) -> None:
        self.name = f"@dnnprof-test-{uuid.uuid4().hex}"
        self.sock = socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM)
        self.sock.bind("\0" + self.name[1:])
        self.received: list[str] = []

    def wait(self, text: str, timeout: float = 60.0) -> str:
        deadline = time.monotonic() + timeout
        for seen in self.received:
            if text in seen:
                return seen
        while time.monotonic() < deadline:
            self.sock.settimeout(max(0.01, deadline - time.monotonic()))
            try:
                datagram = self.sock.recv(4096).decode()
            except TimeoutError:
                break
            self.received.append(datagram)
            if text in datagram:
                return datagram
        raise AssertionError(f"no notification with {text!r}; got {self.received}")

    def close(self) -> None:
        self.sock.close()


@pytest.fixture
def notify_socket(monkeypatch):
    sock = NotifySocket()
    monkeypatch.setenv("NOTIFY_SOCKET", sock.name)
    yield sock
    sock.close()


@pytest.fixture
def subscriber(mosquitto):
    sub = Subscriber(mosquitto)
    yield sub
    sub.close()


class Serving:
    """``serve(config)`` on a thread, stopped by ``stop()``, which returns its Summary (or raises what it raised)."""

    def __init__(self, config: agent_config.AgentConfig, notify=None) -> None:
        self.event = threading.Event()
        self.outcome: list = []

        def target() -> None:
            try:
                self.outcome.append(service.serve(config, stop=self.event, notify=notify))
            except BaseException as exc:  # handed to the test thread
                self.outcome.append(exc)

        self.thread = threading.Thread(target=target, name="serve")
        self.thread.start()

    def stop(self) -> service.Summary:
        self.event.set()
        self.thread.join(60)
        assert not self.thread.is_alive(), "serve did not return after stop"
        if isinstance(self.outcome[0], BaseException):
            raise self.outcome[0]
        return self.outcome[0]


def test_serve_measures_then_skips_then_redoes(tmp_path, mosquitto, model_dir, notify_socket, subscriber):
    path = write_config(tmp_path, mosquitto, model_dir)
    cfg = agent_config.load(path)

    # 1. First start: everything is measured.
    serving = Serving(cfg)
    ready = notify_socket.wait("READY=1")
    assert "STATUS=online at 127.0.0.1:" in ready
    messages = subscriber.wait(lambda ms: any(e.event == "finished" for e in events(ms))
                               and any(isinstance(m, schema.Telemetry) for m in ms))
    notify_socket.wait("STATUS=sweep done: 2 measured, 0 failed, 0 skipped")
    summary = serving.stop()
    notify_socket.wait("STOPPING=1")
    assert (summary.measured, summary.skipped, summary.failed, summary.unsent) == (2, 0, None, 0)
    online, facts = messages[0], messages[1]
    assert isinstance(online, schema.Status) and online.state == "online" and online.session == summary.session
    assert isinstance(facts, schema.BoardInfo) and facts.session == summary.session
    assert facts.backends.keys() == {"onnxruntime"} and facts.power_source == "estimate" and facts.power_estimated
    results = subscriber.of(schema.Result)
    assert sorted(r.batch for r in results) == [1, 2] and {r.run_id for r in results} == {summary.run_id}
    assert [e.event for e in events(messages)] == ["started", "progress", "progress", "finished"]
    telemetry = subscriber.of(schema.Telemetry)[0]
    assert telemetry.power_source == "estimate" and telemetry.estimated
    status = subscriber.wait(lambda ms: isinstance(ms[-1], schema.Status) and ms[-1].state == "offline")[-1]
    assert status.session == summary.session
    ledger = Ledger(cfg.ledger_path)
    assert ledger.count() == 2
    ledger.close()

    # 2. Second start, same config: every point is in the ledger, nothing is measured.
    first_events = len(events(subscriber.of()))
    serving = Serving(cfg)
    subscriber.wait(lambda ms: any(e.event == "finished" for e in events(ms)[first_events:]))
    summary2 = serving.stop()
    assert (summary2.measured, summary2.skipped) == (0, 2)
    assert len(subscriber.of(schema.Result)) == 2  # no new result
    again = events(subscriber.of(), summary2.run_id)
    assert [e.event for e in again] == ["started", "progress", "progress", "finished"]
    for e in again[1:3]:
        assert e.message.startswith("skipped: already measured") and summary.run_id in e.message
        assert "redo = true in [sweep]" in e.message
    assert "STATUS=sweep 1/2: skipped shufflenet_v2_x0_5 b=1 fp32 (already measured)" in notify_socket.wait(
        "(already measured)")

    # 3. redo = true: measured again, and the ledger points at the new results.
    cfg3 = agent_config.load(write_config(tmp_path, mosquitto, model_dir, redo=True))
    before = len(events(subscriber.of()))
    serving = Serving(cfg3)
    subscriber.wait(lambda ms: any(e.event == "finished" for e in events(ms)[before:]))
    summary3 = serving.stop()
    assert (summary3.measured, summary3.skipped) == (2, 0)
    assert len(subscriber.of(schema.Result)) == 4
    ledger = Ledger(cfg.ledger_path)
    assert ledger.count() == 2
    newest = {r.id for r in subscriber.of(schema.Result) if r.run_id == summary3.run_id}
    rows = ledger._db.execute("SELECT result_id, persisted FROM points").fetchall()
    assert {rid for rid, _ in rows} == newest and {p for _, p in rows} == {"acknowledged"}
    ledger.close()

    # 4. Another power source (none instead of the estimate): not the same measurement, so measured again.
    cfg4 = agent_config.load(write_config(tmp_path, mosquitto, model_dir, source="none"))
    before = len(events(subscriber.of()))
    serving = Serving(cfg4, notify=lambda *a: True)  # nobody reads the notify socket now: a full one would block
    subscriber.wait(lambda ms: any(e.event == "finished" for e in events(ms)[before:]))
    summary4 = serving.stop()
    assert (summary4.measured, summary4.skipped) == (2, 0)
    assert retained_status(mosquitto).state == "offline"


def test_failed_points_are_published_remembered_and_retried_only_when_asked(tmp_path, mosquitto, model_dir, reshaping,
                                                                             make_onnx, subscriber):
    models = tmp_path / "models"
    shutil.copytree(model_dir, models)
    reshaping(models / "reshaping.onnx")  # ONNX Runtime fails it at batch 3
    make_onnx(models / "sqrt.onnx", op="Sqrt")  # NaN at every batch
    cfg = agent_config.load(write_config(tmp_path, mosquitto, models, batches=(2, 3)))

    # 1. The failures are published (their own topic, in the outbox first) and the sweep goes on.
    serving = Serving(cfg, notify=lambda *a: True)
    subscriber.wait(lambda ms: any(e.event == "finished" for e in events(ms)))
    summary = serving.stop()
    assert (summary.measured, summary.failed_points, summary.failed) == (3, 3, None)  # 2 x 3 points
    failed = sorted((f.network, f.batch, f.error) for f in subscriber.of(schema.Failure))
    assert failed == [("reshaping", 3, "runtime_error"), ("sqrt", 2, "invalid_output"), ("sqrt", 3, "invalid_output")]
    assert sorted((r.network, r.batch) for r in subscriber.of(schema.Result)) == [
        ("reshaping", 2), ("shufflenet_v2_x0_5", 2), ("shufflenet_v2_x0_5", 3)]
    book = Ledger(cfg.ledger_path)
    assert (book.count("measured"), book.count("failed")) == (3, 3)
    book.close()

    # 2. A restart does not try them again: each is skipped, saying why.
    before = len(events(subscriber.of()))
    serving = Serving(cfg, notify=lambda *a: True)
    subscriber.wait(lambda ms: any(e.event == "finished" for e in events(ms)[before:]))
    summary2 = serving.stop()
    assert (summary2.measured, summary2.failed_points, summary2.skipped) == (0, 0, 6)
    reasons = [r for r in summary2.skip_reasons if r.startswith("failed ")]
    assert len(reasons) == 3 and all("retry_failed = true in [sweep]" in r for r in reasons)
    assert any("(invalid_output: output 'y0' holds" in r for r in reasons)

    # 3. --retry-failed (retry_failed = true): the failed points are tried again, the measured ones still skipped.
    before = len(events(subscriber.of()))
    serving = Serving(dataclasses.replace(cfg, retry_failed=True), notify=lambda *a: True)
    subscriber.wait(lambda ms: any(e.event == "finished" for e in events(ms)[before:]))
    summary3 = serving.stop()
    assert (summary3.measured, summary3.failed_points, summary3.skipped) == (0, 3, 3)
    assert len(subscriber.of(schema.Failure)) == 6


def kill_during_a_point(path: Path, ledger: Path) -> None:
    """Start ``dnnagent serve`` as systemd would and kill -9 it (as the kernel's out-of-memory killer would) once a
    point is being measured: its attempt is in the ledger."""
    began = time.time()  # an attempt the last process left is older: wait for this one's
    proc = subprocess.Popen([sys.executable, "-m", "dnnprof.agent", "serve", "--config", str(path)],
                            stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    try:
        deadline = time.monotonic() + 60
        while time.monotonic() < deadline:
            if ledger.exists():
                with sqlite3.connect(ledger) as db:
                    try:
                        if db.execute("SELECT count(*) FROM attempts WHERE active = 1 AND started_ts > ?",
                                      (began,)).fetchone()[0]:
                            break
                    except sqlite3.OperationalError:  # the table is not there yet
                        pass
            time.sleep(0.05)
        else:
            raise AssertionError("no point was begun")
        proc.kill()
        proc.wait(30)
    finally:
        if proc.poll() is None:
            proc.kill()


def test_a_point_the_agent_dies_during_twice_is_a_crashed_failure_not_a_restart_loop(tmp_path, mosquitto, model_dir,
                                                                                      subscriber):
    measurement = SHORT.replace("duration_s = 0.05\nmax_duration_s = 0.1", "duration_s = 2\nmax_duration_s = 2")
    path = write_config(tmp_path, mosquitto, model_dir, batches=(1, 2), source="none", measurement=measurement)
    cfg = agent_config.load(path)
    kill_during_a_point(path, cfg.ledger_path)  # the first death: batch 1 is tried again (a kill, a power cut)
    kill_during_a_point(path, cfg.ledger_path)  # the second in a row: batch 1 is what kills the agent
    # The restart records the point as crashed (published, remembered) and measures the rest without it.
    serving = Serving(cfg, notify=lambda *a: True)
    messages = subscriber.wait(lambda ms: any(isinstance(m, schema.Failure) for m in ms)
                               and any(isinstance(m, schema.RunEvent) and m.event == "finished" for m in ms))
    summary = serving.stop()
    (crashed,) = [m for m in messages if isinstance(m, schema.Failure)]
    assert (crashed.error, crashed.stage, crashed.batch) == ("crashed", "unknown", 1)
    assert "died during this point 2 times in a row" in crashed.message and "retry_failed = true" in crashed.message
    assert summary.crashed == 1 and summary.measured == 1  # batch 2; batch 1 skipped as failed before
    assert any(r.startswith("failed ") and "(crashed: " in r for r in summary.skip_reasons)
    book = Ledger(cfg.ledger_path)
    assert book.died_during() == [] and book.count("failed") == 1
    book.close()


def test_unacknowledged_results_go_to_the_outbox_and_are_sent_at_the_next_start(
        tmp_path, brokers, model_dir, monkeypatch):
    monkeypatch.setattr(service, "CLOSE_FLUSH_S", 0.5)
    proc, broker = brokers.start()
    subscriber = Subscriber(broker)
    cfg = agent_config.load(write_config(tmp_path, broker, model_dir, source="none"))
    notes: list[str] = []
    done = threading.Event()

    def notify(*assignments: str) -> bool:
        notes.extend(assignments)
        if "READY=1" in assignments:
            os.kill(proc.pid, signal.SIGSTOP)  # the broker freezes: no result of this run is acknowledged
        if any(a.startswith("STATUS=sweep done") for a in assignments):
            done.set()
        return True

    try:
        serving = Serving(cfg, notify=notify)
        assert done.wait(60), notes
        summary = serving.stop()
    finally:
        os.kill(proc.pid, signal.SIGCONT)
    assert summary.measured == 2 and summary.unsent >= 6  # both results and the four run events, on disk
    kept = Outbox(cfg.outbox_path)
    pending = kept.pending(limit=100)
    kept.close()
    assert len(pending) == summary.unsent
    result_ids = {m.id for m in pending if isinstance(m, schema.Result)}
    assert len(result_ids) == 2
    assert [m.stream.seq for m in pending] == list(range(1, len(pending) + 1))  # numbered in the order written
    ledger = Ledger(cfg.ledger_path)
    assert ledger._db.execute("SELECT persisted FROM points").fetchall() == [("outbox",), ("outbox",)]
    ledger.close()
    # The thawed broker works through the closed connection: it may take some of what the agent wrote before its
    # PUBACK to the closed socket fails, and then publishes the last will ("lost": nothing confirmed the offline).
    # Wait for that end of the old session before the next start.
    subscriber.wait(lambda ms: any(isinstance(m, schema.Status) and m.state in ("offline", "lost") for m in ms))

    serving = Serving(cfg, notify=lambda *a: True)
    subscriber.wait(lambda ms: {r.id for r in subscriber.of(schema.Result)} == result_ids
                    and any(e.event == "finished" and e.run_id != summary.run_id for e in events(ms)))
    summary2 = serving.stop()
    subscriber.close()
    assert summary2.outbox_sent == len(pending) and (summary2.measured, summary2.skipped) == (0, 2)
    assert summary2.unsent == 0
    ledger = Ledger(cfg.ledger_path)
    assert ledger._db.execute("SELECT persisted FROM points").fetchall() == [("acknowledged",)] * 2
    ledger.close()


def test_jsonl_left_by_an_older_agent_moves_into_the_outbox_and_is_published(tmp_path, mosquitto, model_dir,
                                                                             subscriber, list_sink):
    cfg = agent_config.load(write_config(tmp_path, mosquitto, model_dir, batches=(1,), source="none"))
    old = run_sweep_to_memory(cfg, list_sink)
    cfg.outbox_dir.mkdir(parents=True)
    legacy = cfg.outbox_dir / "20240101-000000-abcdef-1.jsonl"
    legacy.write_bytes(b"".join(schema.encode(m) + b"\n" for m in old) + b"not json\n")
    serving = Serving(cfg, notify=lambda *a: True)
    old_result = next(m for m in old if isinstance(m, schema.Result))
    subscriber.wait(lambda ms: any(isinstance(m, schema.Result) and m.id == old_result.id for m in ms))
    summary = serving.stop()
    assert not legacy.exists()
    assert summary.outbox_sent == len(old)  # the run events and the result; the garbled line is logged, not sent
    moved = next(m for m in subscriber.of(schema.Result) if m.id == old_result.id)
    assert moved.stream is not None and moved.stream.seq >= 1


def run_sweep_to_memory(cfg, list_sink) -> list[schema.Message]:
    """A finished run's messages as an older agent would have left them in a JSONL outbox file."""
    sink = list_sink()
    Sweep(board=BOARD, run_id="20240101-000000-abcdef", models=[onnxfile.load(cfg.models[0])], batches=[1],
          backend=get_backend("onnxruntime"), power=None, settings=cfg.settings).run(sink)
    return sink.messages


def publish(broker: str, topic: str, payloads: list[bytes]) -> None:
    """Publish raw payloads at QoS 1 with a plain client (the host's side of the command topic)."""
    host, port = broker.rsplit(":", 1)
    client = mqtt.Client(mqtt.CallbackAPIVersion.VERSION2, client_id=f"host-{uuid.uuid4().hex[:8]}")
    client.connect(host, int(port))
    client.loop_start()
    try:
        for p in payloads:
            client.publish(topic, p, qos=1).wait_for_publish(5)
    finally:
        client.loop_stop()
        client.disconnect()


def test_commands_are_checked_answered_and_carried_out(tmp_path, mosquitto, model_dir, subscriber):
    cfg = agent_config.load(write_config(tmp_path, mosquitto, model_dir, batches=(1,), source="none"))
    serving = Serving(cfg, notify=lambda *a: True)
    try:
        first = subscriber.wait(lambda ms: any(isinstance(m, schema.RunEvent) and m.event == "finished"
                                               for m in ms))
        result = next(m for m in first if isinstance(m, schema.Result))
        stream = result.stream.id
        name = cfg.models[0].name

        def cmd(id: str, **fields) -> bytes:
            return schema.encode(schema.Command(board=BOARD, ts=time.time(), id=id, **fields))

        publish(mosquitto, f"dnnprof/v1/{BOARD}/cmd", [
            b"\x00garbage",
            cmd("outside", action="measure", model="../../etc/passwd", batch=1),
            cmd("absurd", action="measure", model=name, batch=1_000_000),
            cmd("ok", action="measure", model=name, batch=3),
            cmd("again", action="replay", stream=stream, first=1, last=result.stream.seq),
        ])
        acks = {a.id: a for a in subscriber.wait(
            lambda ms: len([m for m in ms if isinstance(m, schema.CommandAck)]) >= 5, timeout=30)
            if isinstance(a, schema.CommandAck)}
        assert not acks["invalid"].accepted and "not a valid command" in acks["invalid"].reason
        assert not acks["outside"].accepted and "outside models_dir" in acks["outside"].reason
        assert not acks["absurd"].accepted and "over this agent's limit of 256" in acks["absurd"].reason
        assert acks["ok"].accepted and "b=3 fp32" in acks["ok"].reason
        assert acks["again"].accepted and acks["again"].replayed == result.stream.seq
        assert acks["again"].unavailable == []
        # The replay publishes the same messages again (same id, same number); the measure runs a point of its own.
        subscriber.wait(lambda ms: sum(isinstance(m, schema.Result) and m.id == result.id for m in ms) == 2)
        extra = subscriber.wait(lambda ms: any(isinstance(m, schema.Result) and m.batch == 3 for m in ms))
        asked = next(m for m in extra if isinstance(m, schema.Result) and m.batch == 3)
        assert asked.run_id != result.run_id and asked.stream.seq > result.stream.seq
    finally:
        summary = serving.stop()
    assert (summary.commands, summary.refused) == (2, 3) and summary.measured == 2


def test_a_run_a_kill_interrupted_is_marked_aborted_at_the_next_start(tmp_path, mosquitto, model_dir, subscriber):
    cfg = agent_config.load(write_config(tmp_path, mosquitto, model_dir, batches=(1,), source="none"))
    cut = "20240101-000000-c0ffee"
    box = Outbox(cfg.outbox_path)  # what a killed agent leaves: a run started, one point done, no end
    for seq, kind in enumerate(("started", "progress")):
        box.put(schema.RunEvent(board=BOARD, ts=time.time(), run_id=cut, seq=seq, event=kind, points_total=4,
                                points_done=seq))
    box.close()
    serving = Serving(cfg, notify=lambda *a: True)
    messages = subscriber.wait(lambda ms: any(isinstance(m, schema.RunEvent) and m.event == "finished" for m in ms))
    summary = serving.stop()
    assert summary.aborted_runs == [cut]
    aborted = [m for m in events(messages, cut) if m.event == "aborted"]
    assert len(aborted) == 1 and aborted[0].seq == 2 and aborted[0].points_done == 1
    assert f"run {summary.run_id} measures the points left" in aborted[0].message
    assert summary.outbox_sent == 3  # the two old events, undelivered, and the aborted one


def test_broker_restart_brings_the_board_back_online(tmp_path, brokers, model_dir):
    """The broker restarts (its retained messages gone, the will published): the agent reconnects and announces
    itself again, so the host does not show a live board as lost."""
    proc, broker = brokers.start()
    cfg = agent_config.load(write_config(tmp_path, broker, model_dir, batches=(1,), source="none"))
    done = threading.Event()

    def notify(*assignments: str) -> bool:
        if any(a.startswith("STATUS=sweep done") for a in assignments):
            done.set()
        return True

    serving = Serving(cfg, notify=notify)
    try:
        assert done.wait(60)
        proc.terminate()
        proc.wait(10)
        brokers.start(port=int(broker.rsplit(":", 1)[1]))  # a fresh broker: no retained status or info
        late = Subscriber(broker)
        try:
            messages = late.wait(lambda ms: {type(m) for m in ms} >= {schema.Status, schema.BoardInfo}, timeout=30)
        finally:
            late.close()
    finally:
        summary = serving.stop()
    status = next(m for m in messages if isinstance(m, schema.Status))
    assert status.state == "online" and status.session == summary.session


def free_port() -> int:
    with socket.socket() as s:  # a port nothing listens on
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


@pytest.mark.parametrize("change, expected", [
    (('backend = "onnxruntime"', 'backend = "onnxruntime"\ndla_core = 0'),
     "[sweep] dla_core: only the tensorrt backend uses it, and the backend is onnxruntime"),
    (('backend = "onnxruntime"', 'backend = "onnxruntime"\nprecision_method = "onnx_converted"'),
     "[sweep] precision_method: only the tensorrt backend uses it"),
    (('backend = "onnxruntime"', 'backend = "onnxruntime"\naccuracy_set = "{empty}"'),
     "[sweep] accuracy_set: accuracy set {empty} holds no labelled images"),
    (('source = "estimate"', 'source = "ina3221:{empty}"'),
     "[power] source: power source 'ina3221' is not available: "),
    (('source = "estimate"', 'source = "rapl:{empty}"'), "[power] source: power source 'rapl' is not available: "),
    (("batch_sizes = [1, 2]", "batch_sizes = [1, 2]"), " has a fixed batch size of 1, so batch 2 cannot run"),
    (("", ""), "the ledger {state}/ledger.sqlite was written by a newer dnnprof (format 99)"),
    (('state_dir = "{state}"', 'state_dir = "{blocked}/state"'), "[agent] state_dir: cannot write "),
])
def test_check_finds_every_error_a_start_hits_before_connecting(tmp_path, model_dir, make_onnx, change, expected):
    """`serve --check` runs what a start runs before it connects: the same error, exit status 78 (not restarted),
    and the broker is never contacted (nothing listens on its port)."""
    empty, blocked, state = tmp_path / "empty-root", tmp_path / "a-file", tmp_path / "state"
    empty.mkdir()
    blocked.write_text("")
    models = model_dir
    if "fixed batch" in expected:
        models = tmp_path / "fixed"
        make_onnx(models / "fixed.onnx", batch=1)
    path = write_config(tmp_path, f"127.0.0.1:{free_port()}", models)
    path.write_text(path.read_text().replace(change[0].format(state=state), change[1].format(empty=empty,
                                                                                             blocked=blocked)))
    if "newer dnnprof" in expected:
        state.mkdir()
        with sqlite3.connect(state / "ledger.sqlite") as db:
            db.execute("PRAGMA user_version = 99")
    cfg = agent_config.load(path)
    with pytest.raises(UserError) as checked:
        service.check(cfg)
    with pytest.raises(UserError) as started:
        service.serve(cfg, stop=threading.Event(), notify=lambda *a: True)
    for caught in (checked, started):
        message = str(caught.value)
        assert caught.value.exit_code == service.EX_CONFIG == 78 and "\n" not in message
        assert expected.format(state=state, empty=empty) in message
        assert message.startswith(f"{path}: " if "ledger" not in expected else "the ledger ")
    if "state_dir" not in expected:  # the mkdir's own words at the start, the check's without creating anything
        assert str(checked.value) == str(started.value)


def test_a_config_check_passes_starts_until_the_broker(tmp_path, model_dir):
    """What `--check` passes gets past the preparation at the start; an unreachable broker is the restartable 69,
    with a hint that fits the service (no --output here)."""
    port = free_port()
    cfg = agent_config.load(write_config(tmp_path, f"127.0.0.1:{port}", model_dir))
    found = service.check(cfg)
    assert found.backend.name == "onnxruntime" and found.power.source.name == "estimate"
    assert not cfg.state_dir.exists()  # the check created nothing
    with pytest.raises(UserError, match=rf"^cannot reach the MQTT broker at 127.0.0.1:{port} ") as caught:
        service.serve(cfg, stop=threading.Event(), notify=lambda *a: True)
    assert caught.value.exit_code == service.EX_UNAVAILABLE == 69
    message = str(caught.value)
    assert f"check [broker] host and port in {cfg.path}" in message and "--output" not in message
    assert "\n" not in message


def test_jtop_not_up_yet_is_restartable(tmp_path, model_dir):
    """At boot jtop.service starts after the agent (it is ordered after multi-user.target): a restart fixes that."""
    path = write_config(tmp_path, f"127.0.0.1:{free_port()}", model_dir, source="jtop")
    with pytest.raises(UserError) as caught:
        service.check(agent_config.load(path))
    assert caught.value.exit_code == service.EX_UNAVAILABLE
    assert str(caught.value).startswith(f"{path}: [power] source: power source 'jtop' is not available: ")


# --- the ledger key ------------------------------------------------------------------------------------------------

JETSON = Path(__file__).parents[2] / "data" / "jetson"
FAKES = Path(__file__).parents[2] / "fakes"
FAST = profiler.Settings(warmup_min_s=0.01, warmup_min_iterations=1, warmup_max_s=0.2, window_min_s=0.05,
                         window_max_s=0.1, min_iterations=2, min_power_samples=0, idle_s=0)



def points_for(tmp_path, model_dir, backend, power, root, *, ledger: Ledger | None = None) -> service._Points:
    cfg = agent_config.load(write_config(tmp_path, f"127.0.0.1:{free_port()}", model_dir))
    return service._Points(cfg, ledger or Ledger(tmp_path / "ledger.sqlite"), backend, power, threading.Event(),
                           str(root))


def test_ledger_key_is_worded_as_the_result(tmp_path, model_dir, list_sink):
    """The key's device, clocks, power mode and power source are the result's own words (one wording of the clock
    state: clocks.ClockState), and a point recorded under them is skipped until one of them changes."""
    root = tmp_path / "board"
    shutil.copytree(JETSON / "orin-nano-jp6", root)
    backend = get_backend("onnxruntime", threads=1)
    selection = open_live("estimate")
    points = points_for(tmp_path, model_dir, backend, selection.source, root)
    model = onnxfile.load(sorted(model_dir.glob("*.onnx"))[0])
    sweep = Sweep(board=BOARD, run_id="r1", models=[model], batches=[1], backend=backend, power=selection.source,
                  settings=FAST, root=str(root), skip=lambda m, b, p: points.skip(m, b, p, run_id="r1"))
    try:
        [result] = sweep.run(list_sink())
    finally:
        selection.source.close()
    key = points._keys[(model.sha256, 1, "fp32")]
    assert (key.device, key.threads, key.calibration) == (result.device, result.threads, "") == ("cpu", 1, "")
    assert key.clocks == result.conditions.clocks == clocks.clock_state(root).clocks
    assert key.power_mode == result.conditions.power_mode and key.governor == clocks.clock_state(root).governor
    assert (key.power_source, key.power_boundary) == (result.provenance.power_source, result.provenance.boundary)
    points.ledger.record(key, result, "acknowledged")
    assert points.skip(model, 1, "fp32", run_id="r1").startswith("already measured")
    # pinned clocks (what `sudo jetson_clocks` does to the files the agent reads): not the same conditions
    for low in root.glob("sys/devices/system/cpu/cpu*/cpufreq/scaling_min_freq"):
        low.write_text(low.with_name("scaling_max_freq").read_text())
    for low in root.glob("sys/class/devfreq/*/min_freq"):
        low.write_text(low.with_name("max_freq").read_text())
    assert clocks.clock_state(root).clocks == "jetson_clocks on" != key.clocks
    assert points.skip(model, 1, "fp32", run_id="r1") is None
    points.ledger.close()


def test_ledger_measures_again_when_a_real_sensor_replaces_none_or_the_estimate(tmp_path, model_dir):
    backend = get_backend("onnxruntime")
    model = onnxfile.load(sorted(model_dir.glob("*.onnx"))[0])
    book = Ledger(tmp_path / "ledger.sqlite")
    estimate = open_live("estimate").source
    rapl_root = Path(__file__).parents[2] / "data" / "powercap" / "two-packages"
    rapl = open_live(f"rapl:{rapl_root}").source
    try:
        by_source = {name: points_for(tmp_path, model_dir, backend, source, tmp_path, ledger=book)
                     for name, source in (("none", None), ("estimate", estimate), ("rapl", rapl))}
        for name in ("none", "estimate"):
            key = by_source[name].key(model, 1, "fp32")
            assert key.power_source == name
            book.record(key, result_for(key), "acknowledged")
            assert by_source[name].skip(model, 1, "fp32", run_id="r1").startswith("already measured")
        key = by_source["rapl"].key(model, 1, "fp32")
        assert (key.power_source, key.power_boundary) == ("rapl", rapl.boundary)
        assert by_source["rapl"].skip(model, 1, "fp32", run_id="r1") is None  # a real sensor now: measured again
    finally:
        estimate.close()
        rapl.close()
        book.close()


def test_ledger_keys_the_precision_route_and_the_accuracy_set(tmp_path, digits):
    """A converted fp16 point is not a builder-flag one, and a point whose accuracy is measured (on this set) is not
    one measured without it: adding accuracy_set to the config measures the points again, with their accuracy."""
    from dnnprof.agent.session import accuracy_book

    model = onnxfile.load(digits.model)
    backend = get_backend("onnxruntime")
    book = Ledger(tmp_path / "ledger.sqlite")
    plain = points_for(tmp_path, digits.model.parent, backend, None, tmp_path, ledger=book)
    assert (plain.key(model, 1, "fp32").route, plain.key(model, 1, "fp16").route) == ("", "onnx_converted")
    key = plain.key(model, 1, "fp16")
    assert key.accuracy == ""
    book.record(key, result_for(key), "acknowledged")
    assert plain.skip(model, 1, "fp16", run_id="r1").startswith("already measured")
    cfg = agent_config.load(write_config(tmp_path, f"127.0.0.1:{free_port()}", digits.model.parent))
    measuring = service._Points(cfg, book, backend, None, threading.Event(), str(tmp_path),
                                accuracy=accuracy_book(digits.test, limit=10))
    assert measuring.key(model, 1, "fp16").accuracy == measuring.accuracy.images.sha256
    assert measuring.key(model, 1, "int8").accuracy == ""  # int8 on random data: timing only, never measured
    assert measuring.skip(model, 1, "fp16", run_id="r1") is None
    book.close()


def result_for(key) -> schema.Result:
    return schema.Result(
        id=uuid.uuid4().hex, board=BOARD, ts=time.time(), run_id="run-1", network="net", model_sha256=key.model_sha256,
        input_shape=[3, 8, 8], backend=key.backend, backend_version=key.backend_version, device=key.device,
        precision=key.precision, batch=key.batch, warmup_s=0.1, warmup_iterations=3, window_s=1.0, iterations=20,
        images=20, latency_ms=schema.Latency(mean=1, stdev=0.1, p50=1, p90=1, p95=1, p99=1, min=1, max=1),
        throughput_ips=1000.0, provenance=schema.Provenance(power_source=None, boundary=None, estimated=False))


def _fake(name: str):
    """tests/fakes/<name>.py by path (as tests/agent/backends/conftest.py loads them): the boundary fakes."""
    module_name = f"dnnprof_test_fakes_{name}"
    if module_name not in sys.modules:
        spec = importlib.util.spec_from_file_location(module_name, FAKES / f"{name}.py")
        module = importlib.util.module_from_spec(spec)
        sys.modules[module_name] = module
        spec.loader.exec_module(module)
    return sys.modules[module_name]


def test_ledger_measures_int8_again_when_the_calibration_images_change(tmp_path, model_dir, monkeypatch):
    """The key holds the image set's hash (as the engine cache does), not the folder: new images in the same folder
    are a new calibration."""
    image = pytest.importorskip("PIL.Image")
    monkeypatch.setitem(sys.modules, "tensorrt", _fake("fake_tensorrt").make_tensorrt("10.3.0"))
    package, driver = _fake("fake_pycuda").make_pycuda()
    monkeypatch.setitem(sys.modules, "pycuda", package)
    monkeypatch.setitem(sys.modules, "pycuda.driver", driver)
    folder = tmp_path / "calibration"
    folder.mkdir()
    for i, color in enumerate([(255, 0, 0), (0, 255, 0)]):
        image.new("RGB", (16, 16), color).save(folder / f"img{i}.png")
    model = onnxfile.load(sorted(model_dir.glob("*.onnx"))[0])
    book = Ledger(tmp_path / "ledger.sqlite")
    before = get_backend("tensorrt", calibration=folder)
    points = points_for(tmp_path, model_dir, before, None, tmp_path, ledger=book)
    key = points.key(model, 1, "int8")
    assert key.calibration == f"images:{before.calibration_sha256}" and key.device == "gpu"
    assert points.key(model, 1, "fp16").calibration == ""
    book.record(key, result_for(key), "acknowledged")
    assert points.skip(model, 1, "int8", run_id="r1").startswith("already measured")
    # the same folder, one image replaced: the next start hashes the set again
    image.new("RGB", (16, 16), (0, 0, 255)).save(folder / "img1.png")
    after = get_backend("tensorrt", calibration=folder)
    assert after.calibration_sha256 != before.calibration_sha256
    points = points_for(tmp_path, model_dir, after, None, tmp_path, ledger=book)
    assert points.skip(model, 1, "int8", run_id="r1") is None
    # random calibration is its own key
    assert points_for(tmp_path, model_dir, get_backend("tensorrt"), None, tmp_path,
                      ledger=book).key(model, 1, "int8").calibration == "random"
    book.close()


def test_sigterm_mid_sweep_exits_cleanly_with_offline_retained(tmp_path, mosquitto, model_dir, notify_socket,
                                                                subscriber):
    measurement = SHORT.replace("duration_s = 0.05\nmax_duration_s = 0.1", "duration_s = 0.25\nmax_duration_s = 0.3")
    path = write_config(tmp_path, mosquitto, model_dir, batches=(1, 2, 3, 4, 5, 6, 7, 8), measurement=measurement)
    env = {**os.environ, "NOTIFY_SOCKET": notify_socket.name}
    proc = subprocess.Popen([sys.executable, "-m", "dnnprof.agent", "serve", "--config", str(path)],
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, env=env)
    try:
        notify_socket.wait("READY=1")
        notify_socket.wait("STATUS=sweep 1/8: measured")
        proc.send_signal(signal.SIGTERM)
        out, err = proc.communicate(timeout=60)
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.communicate()
    assert proc.returncode == 0, err
    assert out == "" and "Traceback" not in err
    assert "SIGTERM: stopping (a point being measured is finished first" in err and "offline" in err
    notify_socket.wait("STOPPING=1")
    messages = subscriber.wait(lambda ms: isinstance(ms[-1], schema.Status) and ms[-1].state == "offline")
    run = events(messages)
    assert run[-1].event == "aborted" and "stopping" in run[-1].message  # ended at a point boundary, said why
    assert 1 <= len(subscriber.of(schema.Result)) < 8
    assert retained_status(mosquitto).state == "offline"  # what a newcomer (the host, later) sees
