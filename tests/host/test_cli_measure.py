"""``dnnhost gaps`` on a prepared store and ``dnnhost measure`` against a real Mosquitto, with the test as the agent
that answers (or does not), run as a user runs them: ``python -m dnnprof.host`` in a subprocess."""

from __future__ import annotations

import json
import threading
import time

import pytest

from dnnprof.host.broker import free_port
from dnnprof.host.store import Store
from dnnprof.shared import schema, topics

STREAM = 1_712_345_678_901






@pytest.mark.parametrize("command", ["gaps", "measure"])
def test_help(run, command):
    proc = run(command, "--help")
    assert proc.returncode == 0, proc.stderr
    assert "Usage" in proc.stdout and f"dnnhost {command}" in proc.stdout


# --- dnnhost gaps ---------------------------------------------------------------------------------------------


def _numbered(msgs, seq: int, board: str = "board-a") -> schema.Result:
    r = msgs.result(board=board)
    r.stream = schema.Stream(id=STREAM, seq=seq)
    return r


@pytest.fixture
def db(tmp_path, msgs):
    """board-a: 1, 2, 5 received, 8 announced, 7 gone for good; board-b: 1-3, complete."""
    path = tmp_path / "results.sqlite"
    with Store(path) as store:
        for seq in (1, 2, 5):
            store.add(_numbered(msgs, seq))
        store.add(schema.Status(board="board-a", ts=time.time(), state="online", session=1,
                                stream=schema.Stream(id=STREAM, seq=8)))
        store.lose("board-a", STREAM, 7, 7, "pruned from the outbox")
        for seq in (1, 2, 3):
            store.add(_numbered(msgs, seq, board="board-b"))
    return path


def test_gaps_table_lists_missing_and_unrecoverable_ranges(run, db):
    proc = run("gaps", "--db", db)
    assert proc.returncode == 0, proc.stderr
    rows = {line.split()[0]: line for line in proc.stdout.splitlines() if line.strip().startswith("board-")}
    assert set(rows) == {"board-a", "board-b"}
    assert "3-4, 6, 8 (4 numbers)" in rows["board-a"] and "7: pruned from the outbox" in rows["board-a"]
    assert str(STREAM) in rows["board-a"]
    assert rows["board-b"].split()[-2:] == ["none", "none"]
    assert "4 numbers missing in 3 ranges" in proc.stdout


def test_gaps_json_for_scripts(run, db):
    proc = run("gaps", "--db", db, "--json")
    assert proc.returncode == 0, proc.stderr
    data = json.loads(proc.stdout)
    assert data["missing_numbers"] == 4
    a, b = data["streams"]
    assert (a["board"], a["stream"], a["high"], a["received"]) == ("board-a", STREAM, 8, 3)
    assert a["missing"] == [[3, 4], [6, 6], [8, 8]] and a["missing_numbers"] == 4
    assert [(x["first"], x["last"], x["reason"]) for x in a["unrecoverable"]] == [(7, 7, "pruned from the outbox")]
    assert (b["board"], b["high"], b["received"], b["missing"], b["unrecoverable"]) == ("board-b", 3, 3, [], [])


def test_gaps_of_one_board_and_no_gaps_said_plainly(run, db):
    proc = run("gaps", "--db", db, "--board", "board-b")
    assert proc.returncode == 0, proc.stderr
    assert "board-a" not in proc.stdout
    assert "no gaps" in proc.stdout


def test_gaps_on_a_store_without_numbers_and_without_a_store(run, tmp_path, one_error_line):
    empty = tmp_path / "empty.sqlite"
    Store(empty).close()
    proc = run("gaps", "--db", empty)
    assert proc.returncode == 0 and "no numbered messages" in proc.stdout
    assert "no result store" in one_error_line(run("gaps", "--db", tmp_path / "nope.sqlite"))
    assert "invalid board id" in one_error_line(run("gaps", "--db", empty, "--board", "Board_A"))


# --- dnnhost measure ------------------------------------------------------------------------------------------


class Peer:
    """An agent that answers each command on board-a's cmd topic with ``answer(command) -> CommandAck``."""

    def __init__(self, broker: str, mqtt_client, answer) -> None:
        self.commands: list[schema.Command] = []
        self.client = mqtt_client.connect(broker)
        subscribed = threading.Event()
        self.client.on_subscribe = lambda *a: subscribed.set()

        def on_message(client, userdata, msg):
            command = schema.decode(msg.payload)
            self.commands.append(command)
            reply = answer(command)
            client.publish(topics.topic("board-a", topics.CMD_ACK), schema.encode(reply), qos=1)

        self.client.on_message = on_message
        self.client.subscribe(topics.topic("board-a", topics.CMD), qos=1)
        assert subscribed.wait(5)

    def close(self) -> None:
        self.client.disconnect()
        self.client.loop_stop()


def _ack(command: schema.Command, accepted: bool, reason: str | None = None, id: str | None = None):
    return schema.CommandAck(board="board-a", ts=time.time(), id=id or command.id, accepted=accepted, reason=reason)


@pytest.fixture
def peer(mosquitto, mqtt_client):
    peers = []

    def start(answer) -> Peer:
        peers.append(Peer(mosquitto, mqtt_client, answer))
        return peers[-1]

    yield start
    for p in peers:
        p.close()


def test_measure_accepted(run, mosquitto, peer):
    agent = peer(lambda c: _ack(c, True, "queued after the sweep (2 points left)"))
    proc = run("measure", "board-a", "resnet50.onnx", "--batch", "8", "--precision", "fp16", "--broker", mosquitto)
    assert proc.returncode == 0, proc.stderr
    assert proc.stdout.strip() == "accepted: queued after the sweep (2 points left)"
    (command,) = agent.commands
    assert (command.board, command.action, command.model, command.batch, command.precision) == (
        "board-a", "measure", "resnet50.onnx", 8, "fp16")


def test_measure_waits_for_its_own_answer(run, mosquitto, peer, mqtt_client):
    def answer(command):
        # An ack of another id arrives first (another host's command): not this answer.
        mqtt_client.publish(mosquitto, [(topics.topic("board-a", topics.CMD_ACK),
                                         schema.encode(_ack(command, False, "not yours", id="someone-else")))])
        return _ack(command, True)

    peer(answer)
    proc = run("measure", "board-a", "resnet50.onnx", "--batch", "1", "--broker", mosquitto, "--json")
    assert proc.returncode == 0, proc.stderr
    data = json.loads(proc.stdout)
    assert data["ack"]["accepted"] is True and data["ack"]["id"] == data["command"]["id"]
    assert data["command"]["model"] == "resnet50.onnx"


def test_measure_refused(run, mosquitto, peer):
    peer(lambda c: _ack(c, False, "no model nope.onnx in /var/lib/dnnprof/models"))
    proc = run("measure", "board-a", "nope.onnx", "--batch", "1", "--broker", mosquitto)
    assert proc.returncode == 1, proc.stderr
    assert proc.stdout.strip() == "refused: no model nope.onnx in /var/lib/dnnprof/models"
    assert "Traceback" not in proc.stderr


def test_measure_without_an_answer(run, mosquitto, one_error_line):
    started = time.monotonic()
    proc = run("measure", "board-a", "resnet50.onnx", "--batch", "1", "--broker", mosquitto, "--timeout", "0.5s")
    assert proc.returncode == 69
    line = one_error_line(proc)
    assert "no answer from board-a within 0.5 s" in line and "online" in line
    assert time.monotonic() - started < 10


def test_measure_mistakes_are_one_line(run, tmp_path, one_error_line):
    port = free_port()  # nothing listens here
    assert "invalid board id" in one_error_line(run("measure", "Board_A", "m.onnx", "--batch", "1"))
    assert "--batch 0" in one_error_line(run("measure", "board-a", "m.onnx", "--batch", "0"))
    assert "precision" in one_error_line(run("measure", "board-a", "m.onnx", "--batch", "1", "--precision",
                                             "x" * 17, "--broker", f"127.0.0.1:{port}"))
    assert "--timeout" in one_error_line(run("measure", "board-a", "m.onnx", "--batch", "1", "--timeout", "0s"))
    line = one_error_line(run("measure", "board-a", "m.onnx", "--batch", "1", "--broker", f"127.0.0.1:{port}"))
    assert f"cannot reach the MQTT broker at 127.0.0.1:{port}" in line
    line = one_error_line(run("measure", "board-a", "m.onnx", "--batch", "1", "--username", "dnnhost"))
    assert "give --broker" in line
