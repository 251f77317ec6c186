"""The store's outbox streams, on real SQLite and a private PostgreSQL: numbers received, high marks, gaps,
unrecoverable ranges, commands and their acks, and the upgrade of a store written before streams existed."""

from __future__ import annotations

import sqlite3
import time

import pytest

from dnnprof.host.store import VERSION, Gap, Store, subtract
from dnnprof.shared import schema

STREAM = 1_712_345_678_901  # an outbox's id: its creation time in Unix milliseconds


@pytest.fixture
def store(db):
    """A new store, on SQLite and on PostgreSQL."""
    with Store(db) as s:
        yield s


def numbered(msgs, seq: int, *, board: str = "board-a", stream: int = STREAM) -> schema.Result:
    r = msgs.result(board=board)
    r.stream = schema.Stream(id=stream, seq=seq)
    return r


def numbered_event(seq: int, event: str = "progress", *, board: str = "board-a", stream: int = STREAM,
                   run_seq: int = 0) -> schema.RunEvent:
    return schema.RunEvent(board=board, ts=time.time(), run_id="run-1", seq=run_seq, event=event, points_total=4,
                           points_done=run_seq, stream=schema.Stream(id=stream, seq=seq))


def status(seq: int, *, board: str = "board-a", stream: int = STREAM, state: str = "online", session: int = 1
           ) -> schema.Status:
    return schema.Status(board=board, ts=time.time(), state=state, session=session,
                         stream=schema.Stream(id=stream, seq=seq))


def replay(first: int, last: int, *, board: str = "board-a", stream: int = STREAM, id: str = "replay-1"
           ) -> schema.Command:
    return schema.Command(board=board, ts=time.time(), id=id, action="replay", stream=stream, first=first, last=last)


def ack(unavailable, *, board: str = "board-a", id: str = "replay-1", reason: str | None = None
        ) -> schema.CommandAck:
    return schema.CommandAck(board=board, ts=time.time(), id=id, accepted=True, replayed=0, reason=reason,
                             unavailable=[list(r) for r in unavailable])


def test_gaps_between_received_numbers_and_up_to_the_high_mark(store, msgs):
    for seq in (1, 2, 5, 9):
        store.add(numbered(msgs, seq))
    store.add(numbered_event(6, run_seq=1))  # run events share the results' numbering
    assert store.gaps() == [Gap("board-a", STREAM, 3, 4), Gap("board-a", STREAM, 7, 8)]
    assert store.add(status(12)) is True  # a birth announcing 12: 10-12 were written and never arrived
    assert store.gaps() == [Gap("board-a", STREAM, 3, 4), Gap("board-a", STREAM, 7, 8),
                            Gap("board-a", STREAM, 10, 12)]
    (state,) = store.streams()
    assert (state.board, state.stream, state.high, state.received) == ("board-a", STREAM, 12, 5)
    store.mark("board-a", schema.Stream(id=STREAM, seq=3))  # an older mark (telemetry late): the mark never drops
    assert store.streams()[0].high == 12
    assert store.mark("board-a", schema.Stream(id=STREAM, seq=13)) is True
    assert store.gaps()[-1] == Gap("board-a", STREAM, 10, 13)


def test_a_high_mark_alone_makes_the_whole_stream_missing_and_zero_means_none_yet(store):
    store.mark("board-a", schema.Stream(id=STREAM, seq=0))
    assert store.gaps() == []
    assert [s.high for s in store.streams()] == [0]
    store.mark("board-a", schema.Stream(id=STREAM, seq=4))
    assert store.gaps() == [Gap("board-a", STREAM, 1, 4)]


def test_unrecoverable_ranges_are_left_out_and_counted_once(store, msgs):
    for seq in (1, 10):
        store.add(numbered(msgs, seq))
    assert store.gaps() == [Gap("board-a", STREAM, 2, 9)]
    assert store.lose("board-a", STREAM, 3, 4, "pruned") == 2
    assert store.lose("board-a", STREAM, 4, 6, "pruned") == 2  # 4 already counted
    assert store.lose("board-a", STREAM, 3, 6, "pruned") == 0
    assert store.gaps() == [Gap("board-a", STREAM, 2, 2), Gap("board-a", STREAM, 7, 9)]
    assert [(x.first, x.last, x.reason) for x in store.lost()] == [(3, 4, "pruned"), (3, 6, "pruned"),
                                                                  (4, 6, "pruned")]
    assert store.lose("board-a", STREAM, 1, 1, "received after all") == 0  # received: not missing
    assert store.lose("board-a", STREAM, 5, 4, "empty") == 0


def test_same_message_twice_is_one_row_and_its_number_recorded_once(store, msgs):
    r = numbered(msgs, 1)
    assert store.add(r) is True
    assert store.add(r) is False
    event = numbered_event(2)
    assert store.add(event) is True
    assert store.add(event) is False
    assert store.count("results") == 1 and store.count("run_events") == 1
    assert store.db.execute("SELECT COUNT(*) FROM stream_numbers").fetchone()[0] == 2
    assert store.streams()[0].received == 2
    assert store.gaps() == []


def test_failures_share_the_numbering_and_fill_gaps_like_results(store, msgs):
    """A failed point is a durable message of the outbox: its number counts as received, stored or duplicate."""
    store.add(numbered(msgs, 1))
    store.add(numbered_event(4, run_seq=2))
    assert store.gaps() == [Gap("board-a", STREAM, 2, 3)]
    failed = msgs.failure(stream=schema.Stream(id=STREAM, seq=2))
    assert store.add(failed) is True
    assert store.gaps() == [Gap("board-a", STREAM, 3, 3)]
    again = msgs.failure(id=failed.id, stream=schema.Stream(id=STREAM, seq=3))  # replayed under a new number
    assert store.add(again) is False
    assert store.gaps() == [] and store.count("failures") == 1
    store.add(msgs.failure(stream=schema.Stream(id=STREAM, seq=7)))  # a failure raises the high mark too
    assert store.gaps() == [Gap("board-a", STREAM, 5, 6)] and store.streams()[0].high == 7


def test_a_version_2_store_without_the_failures_table_gets_it_on_open(db, msgs):
    path = db
    with Store(path) as store:
        store.add(numbered(msgs, 1))
        store.db.execute("DROP TABLE failures")  # as a store written before failed points existed
    with Store(path) as store:
        assert store.engine.version(store.db) == VERSION
        assert store.count("results") == 1 and store.failures() == []
        assert store.add(msgs.failure(stream=schema.Stream(id=STREAM, seq=2))) is True
        assert store.gaps() == [] and store.count("failures") == 1


def test_a_duplicate_result_under_a_new_number_still_counts_as_received(store, msgs):
    """The agent replays a result it sent before a crash under the number its outbox gave it: the result is the
    same, its number fills the gap."""
    r = numbered(msgs, 1)
    store.add(r)
    store.add(numbered(msgs, 3))
    again = schema.decode(schema.encode(r))
    again.stream = schema.Stream(id=STREAM, seq=2)
    assert store.add(again) is False
    assert store.gaps() == []


def test_streams_of_two_boards_and_two_outboxes_are_kept_apart(store, msgs):
    store.add(numbered(msgs, 2, board="board-a"))
    store.add(numbered(msgs, 1, board="board-b"))
    store.add(numbered(msgs, 3, board="board-b"))
    store.add(numbered(msgs, 2, board="board-a", stream=STREAM + 1))  # a new outbox numbers from 1 again
    assert store.gaps() == [Gap("board-a", STREAM, 1, 1), Gap("board-a", STREAM + 1, 1, 1),
                            Gap("board-b", STREAM, 2, 2)]
    assert store.gaps("board-b") == [Gap("board-b", STREAM, 2, 2)]
    assert store.gaps("board-a", STREAM + 1) == [Gap("board-a", STREAM + 1, 1, 1)]
    store.lose("board-a", STREAM, 1, 1, "pruned")
    assert store.gaps("board-a") == [Gap("board-a", STREAM + 1, 1, 1)]
    assert [(s.board, s.stream, s.received) for s in store.streams()] == [
        ("board-a", STREAM, 1), ("board-a", STREAM + 1, 1), ("board-b", STREAM, 2)]


def test_a_status_keeps_its_mark_even_when_it_is_a_stale_will(store):
    store.add(status(5, session=2))
    assert store.add(status(7, session=1, state="lost")) is False  # stale: the board stays online ...
    assert store.boards()["board-a"]["state"] == "online"
    assert store.streams()[0].high == 7  # ... and what it says about the outbox still counts


def test_messages_without_numbers_take_no_part(store, msgs):
    store.add(msgs.result())
    store.add(msgs.run_event("started", 0))
    store.add(msgs.status())
    assert store.streams() == [] and store.gaps() == []


def test_many_numbers_are_quick(store, msgs):
    """Tens of thousands of numbers in a stream: the gaps come from one ordered pass, not a scan per number."""
    rows = [("board-a", STREAM, seq, 0.0) for seq in range(1, 50_001) if seq % 1000]
    store.db.executemany("INSERT INTO stream_numbers VALUES (?, ?, ?, ?)", rows)
    store.mark("board-a", schema.Stream(id=STREAM, seq=50_010))
    started = time.monotonic()
    gaps = store.gaps()
    assert time.monotonic() - started < 1.0
    assert len(gaps) == 50  # 1000, 2000, ... 49000, then 50000-50010 (the tail)
    assert gaps[0] == Gap("board-a", STREAM, 1000, 1000) and gaps[-1] == Gap("board-a", STREAM, 50_000, 50_010)


def test_an_ack_with_unavailable_ranges_marks_them_lost(store, msgs):
    for seq in (1, 9):
        store.add(numbered(msgs, seq))
    assert store.add(replay(2, 8)) is True
    assert store.add_ack(ack([[2, 3], [6, 20]], reason="pruned after delivery")) == (True, 5)  # 9-20: not asked
    assert store.gaps() == [Gap("board-a", STREAM, 4, 5)]
    (first, second) = store.lost()
    assert (first.first, first.last, second.first, second.last) == (2, 3, 6, 8)
    assert "replay-1" in first.reason and "pruned after delivery" in first.reason
    command, answer = store.command("replay-1")
    assert (command.action, command.stream, command.first, command.last) == ("replay", STREAM, 2, 8)
    assert answer.unavailable == [[2, 3], [6, 20]]
    assert store.add_ack(ack([[4, 5]])) == (False, 0)  # a re-delivered ack changes nothing
    assert store.gaps() == [Gap("board-a", STREAM, 4, 5)]


def test_an_ack_for_an_unknown_command_is_kept_without_its_ranges(store, msgs):
    for seq in (1, 5):
        store.add(numbered(msgs, seq))
    assert store.add(ack([[2, 4]], id="other-host-1")) is True
    assert store.gaps() == [Gap("board-a", STREAM, 2, 4)]
    assert store.command("other-host-1")[0] is None
    assert store.command("other-host-1")[1].id == "other-host-1"
    assert store.count("commands") == 1
    # The command itself shows up later (another host's, seen on the broker): now the ranges apply.
    assert store.add(replay(2, 4, id="other-host-1")) is True
    assert store.gaps() == []
    assert store.add(replay(2, 4, id="other-host-1")) is False


def test_an_ack_cannot_lose_another_boards_numbers(store, msgs):
    for seq in (1, 5):
        store.add(numbered(msgs, seq, board="board-b"))
    store.add(replay(2, 4, board="board-b"))
    assert store.add_ack(ack([[2, 4]], board="board-a")) == (True, 0)
    assert store.gaps() == [Gap("board-b", STREAM, 2, 4)]


def test_run_finished_includes_an_aborted_run(store, msgs):
    store.add(msgs.run_event("started", 0))
    assert store.run_finished("board-a", "run-1") is None
    store.add(msgs.run_event("aborted", 1, points_done=3))
    assert store.run_finished("board-a", "run-1").event == "aborted"


def test_subtract():
    assert subtract([(1, 10)], []) == [(1, 10)]
    assert subtract([(1, 10)], [(3, 4), (4, 6), (9, 20)]) == [(1, 2), (7, 8)]
    assert subtract([(1, 3), (5, 8), (10, 12)], [(2, 11)]) == [(1, 1), (12, 12)]
    assert subtract([(5, 8)], [(1, 2), (1, 4)]) == [(5, 8)]
    assert subtract([(1, 1)], [(1, 1)]) == []


# The layout of a VERSION 1 store, as host/store.py created it before the stream tables existed.
_VERSION_1 = """
CREATE TABLE results (id TEXT PRIMARY KEY, board TEXT NOT NULL, run_id TEXT NOT NULL, ts REAL NOT NULL,
    network TEXT NOT NULL, backend TEXT NOT NULL, precision TEXT NOT NULL, batch INTEGER NOT NULL,
    payload TEXT NOT NULL, received REAL NOT NULL);
CREATE INDEX results_board ON results (board, run_id);
CREATE TABLE boards (board TEXT PRIMARY KEY, info TEXT, state TEXT, session INTEGER, state_ts REAL);
CREATE TABLE run_events (board TEXT NOT NULL, run_id TEXT NOT NULL, seq INTEGER NOT NULL, event TEXT NOT NULL,
    payload TEXT NOT NULL, PRIMARY KEY (board, run_id, seq));
CREATE TABLE latest (board TEXT NOT NULL, network TEXT NOT NULL, backend TEXT NOT NULL, device TEXT NOT NULL,
    precision TEXT NOT NULL, batch INTEGER NOT NULL, power_mode TEXT NOT NULL, id TEXT NOT NULL, ts REAL NOT NULL,
    PRIMARY KEY (board, network, backend, device, precision, batch, power_mode)) WITHOUT ROWID;
CREATE TABLE rejected (received REAL NOT NULL, source TEXT NOT NULL, reason TEXT NOT NULL, payload BLOB);
PRAGMA user_version = 1;
"""


def test_a_version_1_store_is_upgraded_in_place_keeping_its_results(tmp_path, msgs):
    path = tmp_path / "v1.sqlite"
    old = sqlite3.connect(path)
    old.executescript(_VERSION_1)
    plain, first, third = msgs.result("resnet18"), numbered(msgs, 1), numbered(msgs, 3)
    for r in (plain, first, third):
        old.execute("INSERT INTO results VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?)",
                    (r.id, r.board, r.run_id, r.ts, r.network, r.backend, r.precision, r.batch,
                     schema.encode(r).decode(), 100.0))
        old.execute("INSERT INTO latest VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?)",
                    (r.board, r.network + r.id, r.backend, r.device, r.precision, r.batch, "n/a", r.id, r.ts))
    event = numbered_event(5, run_seq=1)
    old.execute("INSERT INTO run_events VALUES (?, ?, ?, ?, ?)",
                (event.board, event.run_id, event.seq, event.event, schema.encode(event).decode()))
    old.execute("INSERT INTO rejected VALUES (1.0, 'mqtt:x', 'bad', x'00')")
    old.commit()
    old.close()
    with Store(path) as store:
        assert store.db.execute("PRAGMA user_version").fetchone()[0] == VERSION == 4
        assert sorted(r.id for r in store.results()) == sorted(r.id for r in (plain, first, third))
        assert store.count("rejected") == 1 and store.count("run_events") == 1
        # The numbers the old store already held count as received.
        assert store.gaps() == [Gap("board-a", STREAM, 2, 2), Gap("board-a", STREAM, 4, 4)]
        assert store.streams()[0].high == 5
        store.add(numbered(msgs, 2))
    with Store(path) as store:  # opening again changes nothing
        assert store.count("results") == 4
        assert store.gaps() == [Gap("board-a", STREAM, 4, 4)]


def test_gaps_match_every_number_not_received_below_the_high_mark(store):
    """The engine finds the holes (a window over the numbers): checked against the plain definition on random
    streams of two boards — numbers 1..high, minus those received, minus those recorded unrecoverable."""
    import random

    rng = random.Random(20261206)
    expected = []
    for board, stream in (("board-a", STREAM), ("board-a", STREAM + 1), ("board-b", STREAM)):
        high = rng.randint(1, 300)
        received = sorted(rng.sample(range(1, high + 1), rng.randint(0, high)))
        store.db.executemany("INSERT INTO stream_numbers VALUES (?, ?, ?, ?)",
                             [(board, stream, seq, 0.0) for seq in received])
        store.mark(board, schema.Stream(id=stream, seq=high + rng.randint(0, 3)))
        high = next(s.high for s in store.streams(board) if s.stream == stream)
        lost = (rng.randint(1, high), rng.randint(1, high))
        store.lose(board, stream, min(lost), max(lost), "test")
        absent = [n for n in range(1, high + 1) if n not in set(received) and not min(lost) <= n <= max(lost)]
        runs: list[list[int]] = []
        for n in absent:
            if runs and runs[-1][1] == n - 1:
                runs[-1][1] = n
            else:
                runs.append([n, n])
        expected += [Gap(board, stream, first, last) for first, last in runs]
    assert store.gaps() == sorted(expected)
    assert store.gaps("board-b", settle=True) == [g for g in sorted(expected) if g.board == "board-b"]
    assert store.gaps(settle=True) == store.gaps() == sorted(expected)  # the marks moved, the answer did not


def test_the_search_starts_above_the_settled_mark(store, msgs):
    """Below a stream's settled mark every number is received or unrecoverable: the gap search starts above it, so
    it costs what arrived since, not the board's whole history."""
    settled = lambda: store.db.execute("SELECT settled FROM streams").fetchone()[0]  # noqa: E731
    for seq in (1, 2, 3, 4, 6, 7, 10):
        store.add(numbered(msgs, seq))
    assert store.gaps() == [Gap("board-a", STREAM, 5, 5), Gap("board-a", STREAM, 8, 9)] and settled() == 0
    assert store.gaps(settle=True) == store.gaps() and settled() == 4  # a reader writes nothing; the collector does
    store.add(numbered(msgs, 5))
    store.lose("board-a", STREAM, 8, 9, "gone from the outbox")
    assert store.gaps(settle=True) == [] and settled() == 10
    store.db.execute("DELETE FROM stream_numbers WHERE seq <= 10")  # the history below the mark is never read again
    store.add(numbered(msgs, 12))
    assert store.gaps(settle=True) == [Gap("board-a", STREAM, 11, 11)] and settled() == 10
