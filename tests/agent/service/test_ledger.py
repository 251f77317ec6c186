"""The service's ledger: a real SQLite file in a temporary state directory — keys, persistence, and what happens
to a file an older or newer agent wrote."""

from __future__ import annotations

import logging
import sqlite3
import uuid
from dataclasses import replace

import pytest

from dnnprof.agent.service import ledger
from dnnprof.agent.service.ledger import Ledger, PointKey
from dnnprof.shared import schema
from dnnprof.shared.errors import UserError

KEY = PointKey(model_sha256="a" * 64, batch=4, precision="int8", backend="tensorrt", backend_version="10.3.0",
               device="dla0", threads=None, calibration="images:" + "b" * 64, power_source="ina3221",
               power_boundary="input_rail", power_mode="15W", power_mode_id=0, clocks="jetson_clocks off",
               governor="schedutil")

# The table an agent of format 1 wrote (agent/service/ledger.py before the power source and the images' hash were keys).
V1 = """CREATE TABLE points (
    key TEXT PRIMARY KEY, model_sha256 TEXT NOT NULL, network TEXT NOT NULL, batch INTEGER NOT NULL,
    precision TEXT NOT NULL, backend TEXT NOT NULL, backend_version TEXT NOT NULL, device TEXT NOT NULL,
    calibration TEXT NOT NULL, power_mode TEXT NOT NULL, clocks TEXT NOT NULL, result_id TEXT NOT NULL,
    run_id TEXT NOT NULL, measured_ts REAL NOT NULL, persisted TEXT NOT NULL, recorded_ts REAL NOT NULL)"""


def result(network: str = "resnet18") -> schema.Result:
    return schema.Result(
        id=uuid.uuid4().hex, board="orin-01", ts=1_700_000_000.0, run_id="run-1", network=network,
        model_sha256=KEY.model_sha256, input_shape=[3, 224, 224], backend=KEY.backend,
        backend_version=KEY.backend_version, device=KEY.device, precision=KEY.precision, batch=KEY.batch,
        warmup_s=0.5, warmup_iterations=3, window_s=2.0, iterations=20, images=80,
        latency_ms=schema.Latency(mean=10, stdev=1, p50=10, p90=11, p95=12, p99=13, min=9, max=14),
        throughput_ips=400.0, provenance=schema.Provenance(power_source="ina3221", boundary="input_rail",
                                                           estimated=False))


def failure(network: str = "resnet18") -> schema.Failure:
    return schema.Failure(
        id=uuid.uuid4().hex, board="orin-01", ts=1_700_000_100.0, run_id="run-2", network=network,
        model_sha256=KEY.model_sha256, backend=KEY.backend, backend_version=KEY.backend_version, device=KEY.device,
        precision=KEY.precision, batch=KEY.batch, error="out_of_memory", stage="prepare",
        message="TensorRT could not create an execution context: Error Code 2: OutOfMemory")


def test_a_failure_is_remembered_until_a_measurement_replaces_it(tmp_path):
    book = Ledger(tmp_path / "ledger.sqlite")
    failed = failure()
    book.record(KEY, failed, "outbox")
    entry = book.get(KEY)
    assert (entry.outcome, entry.error, entry.result_id) == ("failed", "out_of_memory", failed.id)
    assert entry.run_id == "run-2"
    assert entry.message.endswith("OutOfMemory")
    assert book.count("failed") == 1 and book.count("measured") == 0
    measured = result()
    book.record(KEY, measured, "acknowledged")  # retried, and it fit this time
    entry = book.get(KEY)
    assert (entry.outcome, entry.error, entry.message, entry.result_id) == ("measured", None, None, measured.id)
    assert book.count("failed") == 0 and book.count() == 1
    book.close()


def test_a_format_2_ledger_keeps_its_points_as_measurements(tmp_path):
    path = tmp_path / "ledger.sqlite"
    book = Ledger(path)
    first = result()
    book.record(KEY, first, "acknowledged")
    book.close()
    with sqlite3.connect(path) as db:  # back to what an agent of format 2 wrote: no outcome columns
        for column in ("outcome", "error", "message", "route", "accuracy"):
            db.execute(f"ALTER TABLE points DROP COLUMN {column}")
        db.execute("PRAGMA user_version = 2")
    db.close()
    again = Ledger(path)
    entry = again.get(KEY)
    assert (entry.result_id, entry.outcome, entry.error) == (first.id, "measured", None)
    assert again._db.execute("PRAGMA user_version").fetchone()[0] == ledger._SCHEMA
    again.record(KEY, failure(), "outbox")
    assert again.get(KEY).outcome == "failed"
    again.close()


def test_a_format_3_ledger_keeps_its_points_and_their_keys(tmp_path):
    path = tmp_path / "ledger.sqlite"
    book = Ledger(path)
    first = result()
    book.record(KEY, first, "acknowledged")
    book.close()
    with sqlite3.connect(path) as db:  # what an agent of format 3 wrote: no route or accuracy columns
        for column in ("route", "accuracy"):
            db.execute(f"ALTER TABLE points DROP COLUMN {column}")
        db.execute("PRAGMA user_version = 3")
    db.close()
    again = Ledger(path)
    assert again.get(KEY).result_id == first.id  # a builder-flag point without accuracy: the same key as before
    assert again.get(replace(KEY, route="onnx_converted")) is None  # another route is another point
    assert again.get(replace(KEY, accuracy="f" * 64)) is None  # so is one whose accuracy is measured
    again.record(replace(KEY, accuracy="f" * 64), result(), "outbox")
    assert again.count() == 2
    again.close()


def test_record_get_and_acknowledge(tmp_path):
    book = Ledger(tmp_path / "state" / "ledger.sqlite")  # the state directory is created
    assert book.get(KEY) is None
    first = result()
    book.record(KEY, first, "outbox")
    entry = book.get(KEY)
    assert (entry.result_id, entry.run_id, entry.network, entry.persisted) == (first.id, "run-1", "resnet18", "outbox")
    book.acknowledged(first.id)
    assert book.get(KEY).persisted == "acknowledged"
    # Every condition is part of the key: any one changed is another point.
    for change in ({"power_source": "estimate", "power_boundary": "estimate"}, {"power_source": "none"},
                   {"calibration": "images:" + "c" * 64}, {"device": "gpu"}, {"clocks": "jetson_clocks on"},
                   {"governor": "performance"}, {"power_mode_id": 1}, {"threads": 4}):
        assert book.get(replace(KEY, **change)) is None, change
    newer = result()
    book.record(KEY, newer, "acknowledged")  # measured again (redo): the newest result stands for the point
    assert book.count() == 1 and book.get(KEY).result_id == newer.id
    book.close()
    # The file keeps it, with each key field in a column of its own for a reader with sqlite3.
    again = Ledger(tmp_path / "state" / "ledger.sqlite")
    assert again.get(KEY).result_id == newer.id
    row = again._db.execute("SELECT device, calibration, power_source, power_boundary, clocks, governor FROM "
                            "points").fetchone()
    assert row == ("dla0", KEY.calibration, "ina3221", "input_rail", "jetson_clocks off", "schedutil")
    again.close()


def test_a_format_1_ledger_is_started_anew_with_a_log_line(tmp_path, caplog):
    path = tmp_path / "ledger.sqlite"
    with sqlite3.connect(path) as db:
        db.execute(V1)
        db.execute("INSERT INTO points VALUES ('{}', ?, 'resnet18', 4, 'int8', 'tensorrt', '10.3.0', 'default', "
                   "'images:/var/lib/dnnprof/calibration', '15W', 'jetson_clocks off', 'r', 'run', 1.0, "
                   "'acknowledged', 1.0)", (KEY.model_sha256,))
        db.execute("PRAGMA user_version = 1")
    ledger.check(path)  # `serve --check` accepts it: the start upgrades it
    with caplog.at_level(logging.WARNING, logger="dnnprof.agent.service.ledger"):
        book = Ledger(path)
    assert book.count() == 0  # its keys cannot be compared with today's: those points are measured again
    [message] = [r.getMessage() for r in caplog.records]
    assert "format 1" in message and "its 1 points are forgotten and measured again" in message
    book.record(KEY, result(), "acknowledged")
    assert book.get(KEY) is not None and book._db.execute("PRAGMA user_version").fetchone()[0] == ledger._SCHEMA
    book.close()
    caplog.clear()
    Ledger(path).close()  # once upgraded, opened quietly
    assert caplog.records == []


def test_a_newer_or_broken_ledger_is_one_line(tmp_path):
    newer = tmp_path / "newer.sqlite"
    with sqlite3.connect(newer) as db:
        db.execute("PRAGMA user_version = 99")
    for opener in (Ledger, ledger.check):
        with pytest.raises(UserError, match=r"was written by a newer dnnprof \(format 99\): upgrade the agent"):
            opener(newer)
    broken = tmp_path / "broken.sqlite"
    broken.write_bytes(b"not a database, just bytes" * 100)
    for opener in (Ledger, ledger.check):
        with pytest.raises(UserError, match=r"cannot be used \(file is not a database\): move it away"):
            opener(broken)


def test_check_creates_nothing(tmp_path):
    ledger.check(tmp_path / "state" / "ledger.sqlite")
    assert not (tmp_path / "state").exists()


def test_a_point_begun_and_never_finished_is_found_and_its_deaths_counted(tmp_path):
    path = tmp_path / "ledger.sqlite"
    book = Ledger(path)
    book.attempting(KEY, "resnet18", "run-1")
    other = replace(KEY, batch=8)
    book.attempting(other, "resnet18", "run-1")
    book.attempted(other)  # its result was written
    book.close()  # the process dies here: nothing else runs
    book = Ledger(path)
    assert book.died_during() == [(KEY, "resnet18", "run-1", 1)]
    assert book.died_during() == []  # counted once: only a new death counts again
    book.attempting(KEY, "resnet18", "run-2")  # tried again ...
    book.close()  # ... and the process dies again
    book = Ledger(path)
    assert book.died_during() == [(KEY, "resnet18", "run-2", 2)]
    book.attempting(KEY, "resnet18", "run-3")
    book.clear_attempts()  # a clean exit mid-point: not a death
    book.close()
    book = Ledger(path)
    assert book.died_during() == []
    book.attempted(KEY)  # measured at last: its deaths are forgotten
    assert book._db.execute("SELECT count(*) FROM attempts").fetchone()[0] == 0
    book.close()
