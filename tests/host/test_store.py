"""The store on both engines — real SQLite files and a private PostgreSQL: idempotent writes, presence with stale
wills, run events, rejects, schema upgrades; SQLite's WAL and file errors, PostgreSQL's connection errors."""

from __future__ import annotations

import sqlite3

import msgspec
import pytest

from dnnprof.host import sql
from dnnprof.host.store import VERSION, Store, default_path, demo_path
from dnnprof.shared import schema
from dnnprof.shared.errors import UserError


@pytest.fixture
def store(db):
    """A new store, on SQLite and on PostgreSQL."""
    with Store(db) as s:
        yield s


def test_wal_mode_and_a_reader_beside_an_open_write(tmp_path, msgs):
    path = tmp_path / "sub" / "dir" / "results.sqlite"  # missing parents are created
    with Store(path) as writer:
        assert writer.db.execute("PRAGMA journal_mode").fetchone()[0] == "wal"
        writer.add(msgs.result(id="committed-1"))
        writer.db.execute("BEGIN IMMEDIATE")
        writer.add(msgs.result(id="uncommitted-1"))
        with Store(path) as reader:  # WAL: a reader is not blocked by the open write transaction
            assert [r.id for r in reader.results()] == ["committed-1"]
        writer.db.execute("COMMIT")
        with Store(path) as reader:
            assert reader.count() == 2


def test_add_result_is_idempotent_by_id(store, msgs):
    r = msgs.result("resnet18", batch=4, energy=0.02)
    assert store.add_result(r) is True
    assert store.add_result(r) is False
    assert store.add(r) is False  # through the generic entry point too
    assert store.count() == 1
    # A different payload under the same id is a re-delivery, not a new measurement: the first one stays.
    again = msgs.result("resnet50", batch=8, energy=0.5, id=r.id)
    assert store.add_result(again) is False
    assert store.results() == [r]


def _traced(store: Store, statements: list[str]) -> None:
    """Record the SQL statements SQLite runs (PostgreSQL's driver has no such hook: its tests look from outside)."""
    if store.engine.name == "sqlite":
        store.db.set_trace_callback(statements.append if statements is not None else None)


def test_add_many_counts_new_messages_in_one_transaction(store, msgs, db):
    a, b = msgs.result("resnet18"), msgs.result("mobilenet_v2")
    statements: list[str] = []
    _traced(store, statements)
    assert store.add_many([a, b, a, msgs.info(), msgs.status(), msgs.run_event()]) == 5  # `a` twice: once new
    _traced(store, None)
    if store.engine.name == "sqlite":
        assert [s for s in statements if s.split()[0].upper() in ("BEGIN", "COMMIT")] == ["BEGIN", "COMMIT"]
    assert store.count() == 2
    assert store.add_many([a, b]) == 0


def test_add_many_is_all_or_nothing(store, msgs):
    store.add_result(msgs.result(id="before-the-batch"))
    broken = msgs.result(id="broken-one")
    broken.network = object()  # msgspec does not check types on assignment; encoding this one fails
    with pytest.raises(TypeError):
        store.add_many([msgs.result(id="first-of-batch"), broken, msgs.result(id="after-broken")])
    assert not store.db.in_transaction
    assert [r.id for r in store.results()] == ["before-the-batch"]  # the batch was rolled back as a whole


def test_a_transaction_commits_once_at_its_end_and_rolls_back_when_it_raises(store, msgs, db):
    statements: list[str] = []
    _traced(store, statements)
    with store.transaction() as same, Store(db) as other:
        assert same is store and store.db.in_transaction
        store.add(msgs.result(id="kept-result"))
        store.reject("import:file.jsonl:1", "bad", b"x")
        assert other.count() == 0 and other.count("rejected") == 0  # another connection sees it only committed
    _traced(store, None)
    if store.engine.name == "sqlite":
        assert [s for s in statements if s.split()[0].upper() in ("BEGIN", "COMMIT")] == ["BEGIN", "COMMIT"]
    with pytest.raises(RuntimeError), store.transaction(immediate=True):
        store.add(msgs.result(id="dropped-result"))
        raise RuntimeError("the batch fails")
    assert not store.db.in_transaction
    assert [r.id for r in store.results()] == ["kept-result"] and store.count("rejected") == 1


def test_board_info_upsert_keeps_presence(store, msgs):
    assert store.add(msgs.status("online", 3)) is True
    assert store.add(msgs.info(hostname="first")) is True
    assert store.add(msgs.info(hostname="second")) is True
    boards = store.boards()
    assert list(boards) == ["board-a"]
    assert boards["board-a"]["info"].hostname == "second"
    assert isinstance(boards["board-a"]["info"], schema.BoardInfo)
    assert boards["board-a"]["state"] == "online" and boards["board-a"]["session"] == 3
    assert store.count("boards") == 1


def test_status_without_info(store, msgs):
    store.add(msgs.status("online", 0, board="board-b"))
    assert store.boards()["board-b"] == {"info": None, "state": "online", "session": 0}


def test_stale_will_does_not_mark_a_reconnected_board_lost(store, msgs):
    assert store.set_status(msgs.status("online", 5)) is True
    assert store.set_status(msgs.status("lost", 4)) is False  # the will of the previous connection
    assert store.boards()["board-a"]["state"] == "online"
    assert store.boards()["board-a"]["session"] == 5
    assert store.set_status(msgs.status("lost", 5)) is True  # the will of the current connection counts
    assert store.boards()["board-a"]["state"] == "lost"
    assert store.set_status(msgs.status("online", 6)) is True  # a newer session always does
    assert store.set_status(msgs.status("offline", 7)) is True
    assert store.boards()["board-a"] == {"info": None, "state": "offline", "session": 7}


def test_status_sessions_are_per_board(store, msgs):
    store.set_status(msgs.status("online", 9, board="board-a"))
    assert store.set_status(msgs.status("lost", 1, board="board-b")) is True
    states = {b: v["state"] for b, v in store.boards().items()}
    assert states == {"board-a": "online", "board-b": "lost"}


def test_run_events_idempotent_by_board_run_and_seq(store, msgs):
    started = msgs.run_event("started", 0)
    assert store.add(started) is True
    assert store.add(started) is False
    assert store.add(msgs.run_event("progress", 0)) is False  # same key, whatever the content
    assert store.add(msgs.run_event("progress", 1, points_done=1)) is True
    assert store.add(msgs.run_event("started", 0, run_id="run-2")) is True
    assert store.add(msgs.run_event("started", 0, board="board-b")) is True
    assert store.count("run_events") == 4
    assert store.count("run_events", board="board-a", run_id="run-1") == 2


def test_run_finished(store, msgs):
    assert store.run_finished("board-a", "run-1") is None
    store.add(msgs.run_event("started", 0))
    store.add(msgs.run_event("progress", 1, points_done=1))
    assert store.run_finished("board-a", "run-1") is None
    store.add(msgs.run_event("finished", 2, points_done=4))
    done = store.run_finished("board-a", "run-1")
    assert isinstance(done, schema.RunEvent)
    assert (done.event, done.seq, done.points_done) == ("finished", 2, 4)
    assert store.run_finished("board-a", "run-2") is None
    assert store.run_finished("board-b", "run-1") is None
    store.add(msgs.run_event("failed", 0, run_id="run-2"))
    assert store.run_finished("board-a", "run-2").event == "failed"


def test_telemetry_is_not_stored(store, msgs):
    telemetry = schema.Telemetry(board="board-a", ts=1.0, seq=0, t0=1.0, dt_s=0.01, power_w=[1.0, 2.0])
    assert store.add(telemetry) is False
    assert [store.count(t) for t in ("results", "run_events", "rejected", "boards")] == [0, 0, 0, 0]


def test_reject_keeps_the_payload(store):
    garbage = b"\xff\xfe{not json\x00"
    store.reject("mqtt:dnnprof/v1/board-a/result", "malformed JSON", garbage)
    store.reject("import:file.jsonl:3", "no payload", None)
    rows = store.db.execute(f"SELECT source, reason, payload, received FROM rejected ORDER BY {store.engine.rowid}"
                            ).fetchall()
    assert [r[:3] for r in rows] == [("mqtt:dnnprof/v1/board-a/result", "malformed JSON", garbage),
                                     ("import:file.jsonl:3", "no payload", None)]
    assert all(r[3] > 0 for r in rows)
    assert store.count("rejected") == 2
    assert store.count() == 0


def test_rejected_newest_first_filtered_and_one_by_id(store):
    ids = [store.reject("mqtt:dnnprof/v1/board-a/result", "a", b"1"),
           store.reject("import:run_1.jsonl:3", "b", None),
           store.reject("mqtt:dnnprof/v1/board-b/status", "c", b"3")]
    # an hour ago
    store.db.execute(f"UPDATE rejected SET received = received - 3600 WHERE {store.engine.rowid} = ?", (ids[0],))
    assert [r.id for r in store.rejected()] == ids[::-1]
    assert [r.id for r in store.rejected(limit=2)] == ids[:0:-1]
    assert [r.id for r in store.rejected(since=store.rejected_one(ids[1]).received)] == ids[:0:-1]
    assert [r.id for r in store.rejected(source="board-a")] == [ids[0]]
    assert store.rejected(source="run%") == [] and store.rejected(source="r_n") == []  # literal text, not LIKE
    assert store.rejected_one(ids[1])[2:] == ("import:run_1.jsonl:3", "b", None)
    assert store.rejected_one(999) is None


def test_rejected_payload_stored_as_text_comes_back_as_bytes(store):
    store.db.execute("INSERT INTO rejected (received, source, reason, payload) VALUES (1, 's', 'r', 'text')")
    assert store.rejected()[0].payload == b"text"


def test_results_filter_by_board_and_decode(store, msgs):
    a1 = msgs.result("resnet18", board="board-a", ts=30.0)
    a2 = msgs.result("mobilenet_v2", board="board-a", ts=10.0)
    b1 = msgs.result("resnet50", board="board-b", ts=20.0)
    store.add_many([a1, b1, a2])
    assert store.results("board-a") == [a2, a1]  # decoded back to equal Results, oldest first
    assert store.results("board-b") == [b1]
    assert store.results("board-c") == []
    assert store.results() == [a2, b1, a1]
    assert all(isinstance(r, schema.Result) for r in store.results())
    assert store.count(board="board-a") == 2


def test_count_refuses_unknown_tables(store):
    with pytest.raises(ValueError):
        store.count("sqlite_master")


def test_reopening_keeps_the_data(db, msgs):
    path = db
    r = msgs.result()
    with Store(path) as s:
        s.add(r)
        s.add(msgs.status("online", 2))
    with Store(path) as s:
        assert s.results() == [r]
        assert s.add(r) is False
        assert s.boards()["board-a"]["state"] == "online"


@pytest.mark.parametrize("make", ["directory", "parent-is-a-file", "not-sqlite"])
def test_unopenable_path_is_a_user_error(tmp_path, make):
    if make == "directory":
        path = tmp_path / "results.sqlite"
        path.mkdir()
    elif make == "parent-is-a-file":
        (tmp_path / "file").write_text("x")
        path = tmp_path / "file" / "results.sqlite"
    else:
        path = tmp_path / "results.sqlite"
        path.write_bytes(b"this is not an SQLite database, just text that is long enough to be read" * 20)
    with pytest.raises(UserError) as excinfo:
        Store(path)
    message = str(excinfo.value)
    assert str(path) in message
    assert "\n" not in message
    assert "--db" in message


def test_default_path_follows_xdg(tmp_path, monkeypatch):
    monkeypatch.setenv("XDG_DATA_HOME", str(tmp_path))
    assert default_path() == tmp_path / "dnnprof" / "results.sqlite"
    with Store() as s:
        assert s.path == tmp_path / "dnnprof" / "results.sqlite"
    assert (tmp_path / "dnnprof" / "results.sqlite").is_file()
    monkeypatch.delenv("XDG_DATA_HOME")
    assert default_path().parts[-3:] == ("share", "dnnprof", "results.sqlite")


def test_the_demo_store_is_beside_the_default_one_and_apart_from_it(tmp_path, monkeypatch):
    monkeypatch.setenv("XDG_DATA_HOME", str(tmp_path))
    assert demo_path() == tmp_path / "dnnprof" / "demo.sqlite" != default_path()


def test_integers_beyond_the_stores_range(store, msgs):
    """The schema bounds counts below only; a value the store cannot hold must fail loudly, not store garbage, and
    leave the transaction usable (PostgreSQL would abort it: the value is refused before it is sent)."""
    with store.transaction():
        with pytest.raises((OverflowError, sql.Unstorable)):
            store.add(msgs.status("online", 2**63))
        store.add(msgs.status("online", 2))
    assert store.boards()["board-a"]["session"] == 2


def test_text_postgresql_cannot_hold_is_refused_before_it_is_sent(store, msgs):
    """A NUL character: SQLite keeps it, PostgreSQL's text and jsonb cannot; either way the transaction goes on."""
    with store.transaction():
        try:
            store.add(msgs.result("res\x00net"))
        except sql.Unstorable:
            assert store.engine.name == "postgresql"
        store.add(msgs.result("resnet18", id="after-the-refusal"))
    assert "after-the-refusal" in [r.id for r in store.results()]


def _with_mode(result: schema.Result, mode: str) -> schema.Result:
    return msgspec.structs.replace(result, conditions=schema.Conditions(power_mode=mode))


def test_latest_keeps_the_newest_result_of_each_configuration(store, msgs):
    old = msgs.result("resnet18", batch=1, ts=100.0, id="old-result")
    new = msgs.result("resnet18", batch=1, ts=200.0, id="new-result")
    other_batch = msgs.result("resnet18", batch=2, ts=50.0, id="batch-two")
    for r in (new, old, other_batch):  # the older one arrives last: it must not win
        store.add(r)
    assert sorted(r.id for r in store.latest_results()) == ["batch-two", "new-result"]
    assert store.count() == 3  # the history stays


def test_latest_tie_on_time_is_independent_of_arrival_order(fresh_db, msgs):
    a = msgs.result("resnet18", ts=100.0, id="aaaaaaaa")
    b = msgs.result("resnet18", ts=100.0, id="bbbbbbbb")
    for order in ((a, b), (b, a)):
        with Store(fresh_db()) as s:
            for r in order:
                s.add(r)
            assert [r.id for r in s.latest_results()] == ["bbbbbbbb"]


def test_latest_separates_power_modes_and_filters_by_board(store, msgs):
    store.add(_with_mode(msgs.result("resnet18", id="mode-maxn", board="jet-1"), "MAXN"))
    store.add(_with_mode(msgs.result("resnet18", id="mode-15w1", board="jet-1"), "15W"))
    store.add(msgs.result("resnet18", id="other-board", board="jet-2"))
    assert sorted(r.id for r in store.latest_results("jet-1")) == ["mode-15w1", "mode-maxn"]
    assert [r.id for r in store.latest_results("jet-2")] == ["other-board"]


def test_an_older_store_gets_its_latest_table_filled_on_open(tmp_path, msgs):
    path = tmp_path / "old.sqlite"
    db = sqlite3.connect(path)  # the layout before the latest table existed, with results in it
    db.executescript("""CREATE TABLE results (id TEXT PRIMARY KEY, board TEXT NOT NULL, run_id TEXT NOT NULL,
        ts REAL NOT NULL, network TEXT NOT NULL, backend TEXT NOT NULL, precision TEXT NOT NULL,
        batch INTEGER NOT NULL, payload TEXT NOT NULL, received REAL NOT NULL)""")
    rows = [msgs.result("resnet18", ts=1.0, id="first-run"), msgs.result("resnet18", ts=2.0, id="second-run"),
            _with_mode(msgs.result("resnet18", ts=1.5, id="mode-run1"), "MAXN")]
    for r in rows:
        db.execute("INSERT INTO results VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, 0)",
                   (r.id, r.board, r.run_id, r.ts, r.network, r.backend, r.precision, r.batch,
                    schema.encode(r).decode()))
    db.commit()
    db.close()
    with Store(path) as s:
        assert sorted(r.id for r in s.latest_results()) == ["mode-run1", "second-run"]
        assert s.db.execute("PRAGMA user_version").fetchone()[0] == VERSION
    with Store(path) as s:  # opening again changes nothing
        assert s.db.execute("SELECT COUNT(*) FROM latest").fetchone()[0] == 2


def test_latest_keeps_clock_states_and_precision_routes_apart(store, msgs):
    store.add_many([
        msgs.result("resnet18", ts=100.0, id="maxn-locked", power_mode="MAXN", clocks="jetson_clocks on"),
        msgs.result("resnet18", ts=200.0, id="maxn-dvfs-new", power_mode="MAXN", clocks="jetson_clocks off"),
        msgs.result("resnet18", ts=150.0, id="maxn-dvfs-old", power_mode="MAXN", clocks="jetson_clocks off"),
        msgs.result("resnet18", ts=50.0, id="maxn-no-clocks", power_mode="MAXN"),
        msgs.result("resnet18", ts=60.0, id="maxn-no-clocks-new", power_mode="MAXN"),
        msgspec.structs.replace(msgs.result("resnet18", ts=70.0, id="fp16-flags", precision="fp16"),
                                precision_method="builder_flags"),
        msgspec.structs.replace(msgs.result("resnet18", ts=80.0, id="fp16-converted", precision="fp16"),
                                precision_method="onnx_converted"),
        msgs.result("resnet18", ts=60.0, id="fp16-before-routes", precision="fp16"),  # counts as builder flags
    ])
    assert sorted(r.id for r in store.latest_results()) == [
        "fp16-converted", "fp16-flags", "maxn-dvfs-new", "maxn-locked", "maxn-no-clocks-new"]


def test_a_version_2_store_gets_its_latest_table_rebuilt_with_clocks(db, msgs):
    path = db
    with Store(path) as s:  # a store of today's layout, turned back into version 2's latest table
        s.db.execute("DROP TABLE latest")
        s.db.execute(s.engine.ddl("""CREATE TABLE latest (board TEXT NOT NULL, network TEXT NOT NULL,
            backend TEXT NOT NULL, device TEXT NOT NULL, precision TEXT NOT NULL, batch INTEGER NOT NULL,
            power_mode TEXT NOT NULL, id TEXT NOT NULL, ts REAL NOT NULL,
            PRIMARY KEY (board, network, backend, device, precision, batch, power_mode)) WITHOUT ROWID"""))
        s.engine.set_version(s.db, 2)
        for r in (msgs.result("resnet18", ts=1.0, id="locked-run", power_mode="MAXN", clocks="jetson_clocks on"),
                  msgs.result("resnet18", ts=2.0, id="dvfs-run1", power_mode="MAXN", clocks="jetson_clocks off")):
            s.db.execute("INSERT INTO results VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, 0)",
                         (r.id, r.board, r.run_id, r.ts, r.network, r.backend, r.precision, r.batch,
                          schema.encode(r).decode()))
    with Store(path) as s:
        assert s.engine.version(s.db) == VERSION == 4
        assert sorted(r.id for r in s.latest_results()) == ["dvfs-run1", "locked-run"]
        s.add(msgs.result("resnet18", ts=3.0, id="locked-run2", power_mode="MAXN", clocks="jetson_clocks on"))
        assert sorted(r.id for r in s.latest_results()) == ["dvfs-run1", "locked-run2"]


# --- failed points -----------------------------------------------------------------------------------------------


def test_a_failure_is_stored_once_by_id_and_never_as_a_result(db, msgs):
    f = msgs.failure("vgg16", 64, board="board-f")
    with Store(db) as store:
        assert store.add(f) is True
        assert store.add(f) is False  # a re-delivery
        assert store.add_failure(msgs.failure("resnet50", 8, id=f.id)) is False  # same id: the first one stays
        assert store.add_many([f, msgs.failure("vgg16", 128, board="board-f")]) == 1
        assert store.count("failures") == 2 and store.count("failures", board="board-f") == 2
        assert store.count() == 0 and store.results() == [] and store.latest_results() == []
        assert "board-f" in store.board_names()
    with Store(db) as store:  # read back after reopening, decoded as schema.Failure
        first, second = store.failures()
        assert first == f and isinstance(second, schema.Failure) and second.batch == 128
        assert store.failures("board-x") == []


def test_failed_points_keep_the_newest_failure_of_each_configuration(store, msgs):
    store.add_many([
        msgs.failure("vgg16", 64, ts=100.0, id="vgg16-b64-old", message="older"),
        msgs.failure("vgg16", 64, ts=300.0, id="vgg16-b64-new", error="timeout", message="newer"),
        msgs.failure("vgg16", 64, ts=50.0, id="vgg16-b64-gpu", device="gpu"),  # another device: its own
        msgs.failure("vgg16", 64, ts=60.0, id="vgg16-b64-maxn", power_mode="MAXN"),  # another power mode
        msgs.failure("vgg16", 64, ts=70.0, id="vgg16-b64-other", model_sha256="1" * 64),  # another model file
        msgs.failure("vgg16", 64, ts=80.0, id="vgg16-b64-fp16", precision="fp16"),
        msgs.failure("alexnet", 2, ts=90.0, id="b-alexnet-b2", board="board-b"),
    ])
    current, superseded = store.failed_points()
    assert [f.id for f in current] == ["vgg16-b64-gpu", "vgg16-b64-maxn", "vgg16-b64-other", "vgg16-b64-fp16",
                                       "b-alexnet-b2", "vgg16-b64-new"]  # oldest first
    assert superseded == 0
    assert [f.id for f in store.failed_points("board-b").current] == ["b-alexnet-b2"]
    assert len(store.failures()) == 7  # the history is kept


def test_a_later_result_of_the_same_configuration_supersedes_a_failure(store, msgs):
    store.add_many([
        msgs.failure("resnet18", 4, ts=100.0, id="fixed-since"),
        msgs.failure("resnet18", 8, ts=100.0, id="measured-before"),
        msgs.failure("resnet18", 16, ts=100.0, id="measured-elsewhere"),
        msgs.failure("resnet18", 32, ts=100.0, id="measured-in-a-mode", power_mode="MAXN"),
        msgs.result("resnet18", 4, 0.01, ts=200.0),  # measured since: supersedes
        msgs.result("resnet18", 8, 0.01, ts=50.0),  # measured before it failed: does not
        msgs.result("resnet18", 16, 0.01, ts=200.0, device="gpu"),  # another device: does not
        msgs.result("resnet18", 32, 0.01, ts=200.0, power_mode="MAXN"),  # the same power mode: supersedes
    ])
    current, superseded = store.failed_points()
    assert [f.id for f in current] == ["measured-before", "measured-elsewhere"]
    assert superseded == 2
    assert store.failed_points("board-b") == ([], 0)
    # Failing again after the result: the newer failure is current once more.
    store.add(msgs.failure("resnet18", 4, ts=300.0, id="failed-again"))
    assert [f.id for f in store.failed_points().current] == ["measured-before", "measured-elsewhere", "failed-again"]
    assert store.failed_points().superseded == 1


def test_failures_keep_clock_states_apart_and_only_a_result_at_the_same_clocks_supersedes(store, msgs):
    locked, dvfs = "jetson_clocks on", "jetson_clocks off"
    store.add_many([
        msgs.failure("vgg16", 64, ts=100.0, id="oom-locked", power_mode="MAXN", clocks=locked),
        msgs.failure("vgg16", 64, ts=110.0, id="oom-dvfs", power_mode="MAXN", clocks=dvfs),
        msgs.failure("vgg16", 32, ts=100.0, id="oom-32-no-clocks", power_mode="MAXN"),  # an older agent's
        msgs.result("vgg16", 64, 0.01, ts=200.0, power_mode="MAXN", clocks=dvfs),  # supersedes DVFS only
        msgs.result("vgg16", 32, 0.01, ts=200.0, power_mode="MAXN", clocks=locked),  # any clocks for no clocks
    ])
    current, superseded = store.failed_points()
    assert [f.id for f in current] == ["oom-locked"] and superseded == 2


def test_collectors_opening_a_new_store_at_once_all_get_it(db):
    """Members of a group started together on a new database: PostgreSQL's CREATE TABLE IF NOT EXISTS is not safe
    against itself, so the schema is made under a lock; every one opens the same store."""
    import threading

    errors: list[Exception] = []

    def open_it() -> None:
        try:
            with Store(db) as s:
                s.count()
        except Exception as exc:  # collected: the assertion below says which
            errors.append(exc)

    threads = [threading.Thread(target=open_it) for _ in range(4)]
    for t in threads:
        t.start()
    for t in threads:
        t.join(60)
    assert errors == []
    with Store(db) as s:
        assert s.engine.version(s.db) == VERSION
