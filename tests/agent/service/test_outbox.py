"""The outbox (real SQLite files) and its courier (a real MqttLink to a private Mosquitto): numbering, delivery on
PUBACK, bounded in-flight while the broker is frozen, replay, pruning, a size limit and a real file-size limit."""

from __future__ import annotations

import os
import signal
import sqlite3
import subprocess
import sys
import textwrap
import threading
import time
import uuid

import paho.mqtt.client as mqtt
import pytest

from dnnprof.agent.publish.link import MqttLink
from dnnprof.agent.service.outbox import Courier, Outbox, OutboxFull, check
from dnnprof.shared import schema
from dnnprof.shared.errors import UserError

BOARD = "outbox-board"
RUN = "20240611-081045-a1b2c3"


def event(seq: int, kind: str = "progress", run_id: str = RUN, done: int = 0) -> schema.RunEvent:
    return schema.RunEvent(board=BOARD, ts=time.time(), run_id=run_id, seq=seq, event=kind, points_total=8,
                           points_done=done, message="x" * 200)


def test_put_numbers_messages_in_one_stream_across_reopening(tmp_path):
    box = Outbox(tmp_path / "outbox.sqlite")
    first = [box.put(event(i)) for i in range(3)]
    stream = box.stream_id
    box.close()
    box = Outbox(tmp_path / "outbox.sqlite")  # a restart: same stream, numbering goes on
    fourth = box.put(event(3))
    assert [m.stream.seq for m in first + [fourth]] == [1, 2, 3, 4]
    assert {m.stream.id for m in first + [fourth]} == {stream} == {box.stream_id}
    assert box.mark() == schema.Stream(id=stream, seq=4)
    assert [m.stream.seq for m in box.pending()] == [1, 2, 3, 4]  # the payload on disk carries the number
    assert box.pending()[0] == first[0]
    box.close()
    other = Outbox(tmp_path / "elsewhere.sqlite")
    assert other.stream_id != stream or other.high() == 0  # a new outbox: a new stream starting at 1
    assert other.put(event(0)).stream.seq == 1
    other.close()


def test_acked_leaves_the_queue_and_delivered_ones_are_kept_for_replay_then_pruned(tmp_path):
    box = Outbox(tmp_path / "outbox.sqlite", retain=3)
    for i in range(6):
        box.put(event(i))
    assert box.acked([1, 2, 3, 4]) == 4
    assert box.acked([1]) == 0  # acknowledged twice (a replay): counted once
    assert box.counts() == (2, 3)  # 5 and 6 pending; 2..4 kept for replay, 1 pruned (retain 3)
    assert [m.stream.seq for m in box.pending()] == [5, 6]
    held, missing = box.between(1, 8)
    assert [m.stream.seq for m in held] == [2, 3, 4, 5, 6]
    assert missing == [[1, 1], [7, 8]]  # pruned, and never written
    assert box.pending(after=5) == [box.pending()[1]]
    box.close()


def test_unfinished_runs_are_those_without_an_end(tmp_path):
    box = Outbox(tmp_path / "outbox.sqlite")
    box.put(event(0, "started", "run-done"))
    box.put(event(0, "started", "run-cut"))
    box.put(event(1, "progress", "run-cut", done=1))
    box.put(event(1, "finished", "run-done", done=8))
    box.put(event(0, "started", "run-failed"))
    box.put(event(1, "failed", "run-failed"))
    unfinished = box.unfinished_runs()
    assert [(e.run_id, e.seq, e.points_done) for e in unfinished] == [("run-cut", 1, 1)]
    box.close()


def test_size_limit_prunes_delivered_first_then_refuses_in_one_line(tmp_path, caplog):
    box = Outbox(tmp_path / "outbox.sqlite", max_bytes=64 << 10)
    written = 0
    with pytest.raises(OutboxFull) as full:
        for i in range(10_000):
            box.put(event(i))
            written += 1
            if written == 40:
                box.acked(range(1, 41))  # delivered: kept for replay, but the first to go when room is short
    message = str(full.value)
    assert "\n" not in message and "is full or cannot be written (database or disk is full" in message
    assert "outbox_max_mb" in message
    assert "undelivered messages" in message
    assert "pruned 40 delivered messages" in caplog.text  # made room once before giving up
    assert box.counts()[1] == 0
    pending = box.counts()[0]
    assert pending == written - 40  # every message put() accepted is still there
    box.close()


def test_a_real_file_size_limit_is_a_full_outbox_too(tmp_path):
    """RLIMIT_FSIZE makes the kernel refuse to grow the file (EFBIG), as a full disk refuses (ENOSPC)."""
    script = textwrap.dedent(f"""
        import resource, signal, time
        from dnnprof.agent.service.outbox import Outbox, OutboxFull
        from dnnprof.shared import schema
        signal.signal(signal.SIGXFSZ, signal.SIG_IGN)
        resource.setrlimit(resource.RLIMIT_FSIZE, (256 << 10, 256 << 10))
        box = Outbox({str(tmp_path / 'outbox.sqlite')!r}, max_bytes=None)
        n = 0
        try:
            while True:
                box.put(schema.RunEvent(board="b", ts=time.time(), run_id="r", seq=n, event="progress",
                                        points_total=1, points_done=0, message="x" * 500))
                n += 1
        except OutboxFull as exc:
            print(n, exc)
        print(box.counts()[0])
    """)
    out = subprocess.run([sys.executable, "-c", script], capture_output=True, text=True, timeout=60)
    assert out.returncode == 0, out.stderr
    first, count = out.stdout.strip().splitlines()
    written = int(first.split()[0])
    assert written >= 5 and "is full or cannot be written (disk I/O error" in first and int(count) == written


def test_a_damaged_or_newer_outbox_is_one_line(tmp_path):
    damaged = tmp_path / "damaged.sqlite"
    damaged.write_bytes(b"this is not a database" * 100)
    for attempt in (Outbox, check):  # serve --check says the same as a start, changing nothing
        with pytest.raises(UserError, match="cannot open the outbox .*damaged.sqlite.*move it away"):
            attempt(damaged)
    newer = tmp_path / "newer.sqlite"
    db = sqlite3.connect(newer)
    db.execute("PRAGMA user_version = 99")
    db.close()
    for attempt in (Outbox, check):
        with pytest.raises(UserError, match="newer dnnprof"):
            attempt(newer)
    check(tmp_path / "absent.sqlite")  # none yet: fine, and still none
    assert not (tmp_path / "absent.sqlite").exists()


class Listener:
    """Every message on the board's durable topics, decoded, in arrival order."""

    def __init__(self, broker: str) -> None:
        host, port = broker.rsplit(":", 1)
        self.messages: list[schema.Message] = []
        self.cond = threading.Condition()
        ready = threading.Event()
        client = mqtt.Client(mqtt.CallbackAPIVersion.VERSION2, client_id=f"test-{uuid.uuid4().hex[:8]}")
        client.on_connect = lambda c, u, f, rc, p: c.subscribe(f"dnnprof/v1/{BOARD}/run/+", qos=1)
        client.on_subscribe = lambda *a: ready.set()
        client.on_message = self.on_message
        client.connect(host, int(port))
        client.loop_start()
        self.client = client
        assert ready.wait(5)

    def on_message(self, client, userdata, msg) -> None:
        with self.cond:
            self.messages.append(schema.decode(msg.payload))
            self.cond.notify_all()

    def wait(self, predicate, timeout: float = 30.0) -> None:
        with self.cond:
            assert self.cond.wait_for(lambda: predicate(self.messages), timeout), len(self.messages)

    def close(self) -> None:
        self.client.loop_stop()
        self.client.disconnect()


def test_courier_keeps_in_flight_bounded_while_the_broker_is_frozen_then_delivers_all(tmp_path, brokers):
    proc, broker = brokers.start()
    listener = Listener(broker)
    box = Outbox(tmp_path / "outbox.sqlite")
    courier = None
    link = MqttLink(broker, BOARD, session=1, on_ack=lambda m: courier.acknowledged(m))
    courier = Courier(box, link, max_in_flight=16)
    courier.start()
    try:
        os.kill(proc.pid, signal.SIGSTOP)  # no PUBACK comes back
        for i in range(300):
            box.put(event(i))
        courier.wake()
        deadline = time.monotonic() + 5
        while courier.sent < 16 and time.monotonic() < deadline:
            time.sleep(0.05)
        time.sleep(0.5)
        assert courier.sent == 16  # the rest waits on disk, not in paho's memory
        assert box.counts()[0] == 300
        os.kill(proc.pid, signal.SIGCONT)
        listener.wait(lambda ms: len({m.stream.seq for m in ms}) == 300)
        deadline = time.monotonic() + 10
        while box.counts()[0] and time.monotonic() < deadline:
            time.sleep(0.05)
        assert box.counts() == (0, 300) and courier.delivered == 300
        seqs = [m.stream.seq for m in listener.messages]
        assert seqs == sorted(seqs)  # oldest first

        # Replay: a host missing 10-12 asks for them; a pruned or unknown range is said to be unavailable.
        box.retain = 295
        box.prune()
        replay = courier.replay(box.stream_id, 3, 12)
        assert replay.replayed == 7 and replay.unavailable == [[3, 5]]
        listener.wait(lambda ms: len(ms) >= 307)
        assert sorted(m.stream.seq for m in listener.messages[300:]) == list(range(6, 13))
        assert courier.replay(box.stream_id + 1, 1, 2).unavailable == [[1, 2]]  # not this outbox's stream
        deadline = time.monotonic() + 10
        while not courier.idle() and time.monotonic() < deadline:
            time.sleep(0.05)
        assert courier.idle()
    finally:
        os.kill(proc.pid, signal.SIGCONT)
        courier.stop()
        link.close(2)
        listener.close()
        box.close()
    assert courier.error is None
