"""``dnnhost boards`` and ``dnnhost sweep start / status / cancel`` against a real Mosquitto and a real agent
(``dnnagent serve`` as a process, so that a kill -9 is real), run as a user runs them: subprocesses."""

from __future__ import annotations

import json
import shutil
import signal
import subprocess
import sys
import threading
import uuid
from pathlib import Path

import paho.mqtt.client as mqtt
import pytest

from dnnprof.shared import schema

BOARD = "steer-board"
MODEL = "shufflenet_v2_x0_5.onnx"


def write_config(tmp_path: Path, broker: str, models: Path, *, batches=(1,), duration_s: float = 0.05) -> Path:
    host, port = broker.rsplit(":", 1)
    path = tmp_path / "agent.toml"
    path.write_text(f"""[broker]
host = "{host}"
port = {port}
[agent]
board_id = "{BOARD}"
state_dir = "{tmp_path / 'state'}"
models_dir = "{models}"
[sweep]
batch_sizes = {list(batches)}
backend = "onnxruntime"
[power]
source = "none"
telemetry_rate_hz = 0
[measurement]
warmup_s = 0.01
max_warmup_s = 0.05
duration_s = {duration_s}
max_duration_s = {duration_s * 1.2}
min_iterations = 2
min_power_samples = 0
idle_s = 0
""")
    return path


class Agent:
    """``dnnagent serve`` as the systemd unit runs it."""

    def __init__(self, config: Path) -> None:
        self.config = config
        self.proc = subprocess.Popen([sys.executable, "-m", "dnnprof.agent", "serve", "--config", str(config)],
                                     stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, text=True)

    def stop(self) -> str:
        if self.proc.poll() is None:
            self.proc.send_signal(signal.SIGTERM)
        _, err = self.proc.communicate(timeout=60)
        return err

    def kill(self) -> None:
        self.proc.kill()  # SIGKILL: no clean stop, no offline status
        self.proc.communicate(timeout=30)


class Watcher:
    """Every message of the board, decoded."""

    def __init__(self, broker: str) -> None:
        host, port = broker.rsplit(":", 1)
        self.messages: list[schema.Message] = []
        self.cond = threading.Condition()
        ready = threading.Event()
        client = mqtt.Client(mqtt.CallbackAPIVersion.VERSION2, client_id=f"watch-{uuid.uuid4().hex[:8]}")
        client.on_connect = lambda c, u, f, rc, p: c.subscribe(f"dnnprof/v1/{BOARD}/#", qos=1)
        client.on_subscribe = lambda *a: ready.set()
        client.on_message = self._on_message
        client.connect(host, int(port))
        client.loop_start()
        self.client = client
        assert ready.wait(10)

    def _on_message(self, client, userdata, msg) -> None:
        try:
            message = schema.decode(msg.payload)
        except schema.SchemaError:
            return
        with self.cond:
            self.messages.append(message)
            self.cond.notify_all()

    def wait(self, predicate, timeout: float = 90.0) -> list[schema.Message]:
        with self.cond:
            assert self.cond.wait_for(lambda: predicate(self.messages), timeout), \
                [getattr(m, "event", type(m).__name__) for m in self.messages]
            return list(self.messages)

    def run_events(self, run_id: str) -> list[schema.RunEvent]:
        with self.cond:
            return [m for m in self.messages if isinstance(m, schema.RunEvent) and m.run_id == run_id]

    def close(self) -> None:
        self.client.loop_stop()
        self.client.disconnect()


def ended(run_id: str, event: str = "finished"):
    return lambda ms: any(isinstance(m, schema.RunEvent) and m.run_id == run_id and m.event == event for m in ms)


@pytest.fixture
def models(tmp_path, model_dir) -> Path:
    out = tmp_path / "models"
    shutil.copytree(model_dir, out)
    return out


@pytest.fixture
def watcher(mosquitto):
    w = Watcher(mosquitto)
    yield w
    w.close()


def dnnhost_json(run, *args) -> dict:
    proc = run(*args, "--json")
    assert proc.returncode == 0, proc.stderr
    return json.loads(proc.stdout)


def test_start_status_cancel_and_boards_round_trip(run, mosquitto, models, watcher, tmp_path):
    agent = Agent(write_config(tmp_path, mosquitto, models, batches=(1,), duration_s=0.6))
    try:
        first = watcher.wait(lambda ms: any(isinstance(m, schema.RunEvent) and m.event == "finished" for m in ms))
        config_run = next(m.run_id for m in first if isinstance(m, schema.RunEvent))
        boards = dnnhost_json(run, "boards", "--broker", mosquitto)
        (board,) = boards["boards"]
        assert (board["board"], board["state"], board["answered"]) == (BOARD, "online", True)
        assert board["sweep"]["running"] is None and board["sweep"]["queue"] == []
        assert board["round_trip_ms"] > 0

        # A refused start: one line, exit 1, nothing queued.
        refused = run("sweep", "start", BOARD, "--model", "nosuch.onnx", "--batch", "1", "--broker", mosquitto)
        assert refused.returncode == 1, refused.stderr
        assert "refused: model 'nosuch.onnx'" in refused.stdout and "does not exist" in refused.stdout

        # Start: accepted with its run id; status sees it; cancel during its second point.
        # Sixteen points of about 0.7 s: the status and the cancel (each a process start, seconds on a loaded
        # machine) come well before the last.
        batches = ",".join(map(str, range(1, 17)))
        started = dnnhost_json(run, "sweep", "start", BOARD, "--model", MODEL, "--batch", batches, "--broker",
                               mosquitto)
        assert started["ack"]["accepted"] and started["round_trip_ms"] > 0
        run_id = started["ack"]["run_id"]
        assert run_id and run_id != config_run
        assert "1 models x 16 batch sizes x 1 precisions = 16 points" in started["ack"]["reason"]
        watcher.wait(lambda ms: any(isinstance(m, schema.Result) and m.run_id == run_id for m in ms))
        status = dnnhost_json(run, "sweep", "status", BOARD, "--broker", mosquitto)
        running = status["ack"]["sweep"]["running"]
        assert (running["run_id"], running["origin"], running["state"]) == (run_id, "host", "running")
        assert running["points_total"] == 16 and running["networks"] == ["shufflenet_v2_x0_5"]
        cancel = dnnhost_json(run, "sweep", "cancel", BOARD, "--broker", mosquitto)  # the running one
        assert cancel["ack"]["accepted"] and cancel["ack"]["run_id"] == run_id
        assert f"run {run_id} stops after its current point" in cancel["ack"]["reason"]
        messages = watcher.wait(ended(run_id, "cancelled"))
        last = watcher.run_events(run_id)[-1]
        results = [m for m in messages if isinstance(m, schema.Result) and m.run_id == run_id]
        assert last.event == "cancelled" and 1 <= last.points_done < 16
        skipped = [e for e in watcher.run_events(run_id) if e.event == "progress" and e.message
                   and e.message.startswith("skipped: already measured")]
        assert [e.batch for e in skipped] == [1]  # the configured sweep measured batch 1 already
        assert len(results) + 1 == last.points_done  # what it measured before the cancel is published
        assert cancel["ack"]["id"] in last.message

        # Nothing left: the status says idle, and a second cancel is refused with why.
        idle = dnnhost_json(run, "sweep", "status", BOARD, "--broker", mosquitto)["ack"]["sweep"]
        assert idle["running"] is None and idle["queue"] == []
        again = run("sweep", "cancel", BOARD, "--broker", mosquitto)
        assert again.returncode == 1 and "refused: no run is being measured" in again.stdout
        text = run("sweep", "status", BOARD, "--broker", mosquitto)
        assert text.returncode == 0 and "idle" in text.stdout
    finally:
        err = agent.stop()
    assert "Traceback" not in err


def test_a_start_queued_before_a_kill_9_runs_after_the_restart(run, mosquitto, models, watcher, tmp_path):
    # Ten configured points of about 0.5 s: the start (a process) and the kill land while they run.
    config = write_config(tmp_path, mosquitto, models, batches=tuple(range(1, 11)), duration_s=0.4)
    agent = Agent(config)
    try:
        watcher.wait(lambda ms: any(isinstance(m, schema.Result) for m in ms))  # the configured sweep runs
        started = dnnhost_json(run, "sweep", "start", BOARD, "--model", MODEL, "--batch", "13,14", "--broker",
                               mosquitto)
        run_id = started["ack"]["run_id"]
        queue = started["ack"]["sweep"]["queue"]
        assert [q["run_id"] for q in queue] == [run_id]  # behind the configured sweep
        assert started["ack"]["sweep"]["running"]["origin"] == "config"
        agent.kill()
        assert not watcher.run_events(run_id)  # it never began
        boards = dnnhost_json(run, "boards", "--broker", mosquitto, "--timeout", "1s")["boards"]
        assert [(b["board"], b["state"], b["answered"]) for b in boards] == [(BOARD, "lost", False)]
        agent = Agent(config)  # the restart: systemd's Restart=on-failure
        watcher.wait(ended(run_id))
        results = [m for m in watcher.messages if isinstance(m, schema.Result) and m.run_id == run_id]
        assert sorted(r.batch for r in results) == [13, 14]
    finally:
        err = agent.stop()
    assert "Traceback" not in err


def test_no_agent_answering_exits_69_and_bad_input_is_one_line(run, mosquitto, one_error_line):
    proc = run("sweep", "status", "nobody-here", "--broker", mosquitto, "--timeout", "500ms")
    assert proc.returncode == 69
    assert one_error_line(proc) == ("dnnhost: error: no answer from nobody-here within 0.5 s: is its agent online "
                                    "and subscribed?")
    assert "needs --model" in one_error_line(run("sweep", "start", "b1", "--batch", "1", "--broker", mosquitto))
    assert "--batch" in one_error_line(run("sweep", "start", "b1", "--model", MODEL, "--batch", "0", "--broker",
                                           mosquitto))
    assert "invalid board id 'Bad_Board'" in one_error_line(run("sweep", "status", "Bad_Board", "--broker",
                                                                  mosquitto))
    empty = run("boards", "--broker", mosquitto, "--timeout", "500ms")
    assert empty.returncode == 0 and "no board has announced itself" in empty.stdout


@pytest.mark.parametrize("args", [["boards"], ["sweep"], ["sweep", "start"], ["sweep", "cancel"], ["sweep", "status"]])
def test_help(run, args):
    proc = run(*args, "--help")
    assert proc.returncode == 0, proc.stderr
    assert "Usage" in proc.stdout
