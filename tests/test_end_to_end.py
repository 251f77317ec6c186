"""The whole loop with real parts: agent process → broker (embedded and Mosquitto) → collector → SQLite → report."""

from __future__ import annotations

import json
import os
import signal
import sqlite3
import subprocess
import sys
import time
from pathlib import Path

import pytest

from dnnprof.host import analysis, report
from dnnprof.host.broker import EmbeddedBroker
from dnnprof.host.collector import Collector
from dnnprof.host.store import Store
from dnnprof.shared import schema

SHORT = ["--batch", "1,2", "--duration", "200ms", "--max-duration", "400ms", "--warmup", "50ms", "--max-warmup",
         "200ms", "--min-iterations", "3", "--idle", "200ms"]


def agent(*args: str, timeout: float = 120) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, "-m", "dnnprof.agent", *args], capture_output=True, text=True,
                          timeout=timeout)


@pytest.fixture(scope="module")
def models(tmp_path_factory) -> Path:
    out = tmp_path_factory.mktemp("models")
    proc = agent("models", "generate", "shufflenet_v2_x0_5", "squeezenet1_1", "--out", str(out), "--quiet")
    assert proc.returncode == 0, proc.stderr
    return out


@pytest.fixture(params=["embedded", "mosquitto"])
def broker(request) -> str:
    if request.param == "mosquitto":
        yield request.getfixturevalue("mosquitto")
        return
    with EmbeddedBroker(port=0) as embedded:
        yield embedded.address


def test_every_result_arrives_exactly_once_with_all_fields(broker: str, models: Path, tmp_path: Path) -> None:
    db = tmp_path / "store.sqlite"
    with Collector(broker, db) as collector:
        proc = agent("run", str(models), "--broker", broker, "--board", "e2e-board", "--run-id", "e2e-run",
                     "--power-source", "estimate", "--json", "--quiet", *SHORT)
        assert proc.returncode == 0, proc.stderr
        sent = {r["id"]: r for r in json.loads(proc.stdout)}
        assert len(sent) == 4  # 2 networks x 2 batch sizes

        with Store(db) as store:
            assert collector.wait_until(
                lambda: store.run_finished("e2e-board", "e2e-run") is not None and store.count() == 4, 30)
    assert collector.counts["rejected"] == 0
    assert collector.counts["duplicate"] == 0
    with Store(db) as store:
        stored = store.results("e2e-board")
        assert sorted(r.id for r in stored) == sorted(sent)  # each exactly once (ids are the primary key)
        for r in stored:
            # every field survived the trip; the outbox numbered each in the run's own stream on its way
            assert {**schema.to_builtins(r), "stream": None} == sent[r.id]
            assert r.energy_per_inference_j is not None and r.provenance.estimated
        assert len({r.stream.id for r in stored}) == 1
        assert len({r.stream.seq for r in stored}) == len(stored)
        boards = store.boards()
        assert boards["e2e-board"]["state"] == "offline"  # clean stop after the retained online
        assert boards["e2e-board"]["info"].cpu_count >= 1
        assert store.run_finished("e2e-board", "e2e-run").event == "finished"
        data = report.build(store, analysis.Limits(energy_budget_j=10.0))
    (entry,) = data["boards"]
    assert entry["ceiling"]["best"]["network"] == "shufflenet_v2_x0_5"  # the more accurate of the two
    assert entry["ceiling"]["estimated"] is True


def test_offline_file_then_import_then_report(models: Path, tmp_path: Path) -> None:
    out = tmp_path / "results.jsonl"
    proc = agent("run", str(models / "squeezenet1_1.onnx"), "--output", str(out), "--board", "offline-board",
                 "--power-source", "none", "--quiet", *SHORT)
    assert proc.returncode == 0, proc.stderr
    db = str(tmp_path / "store.sqlite")
    host = [sys.executable, "-m", "dnnprof.host"]
    imported = subprocess.run([*host, "import", str(out), "--db", db], capture_output=True, text=True)
    assert imported.returncode == 0, imported.stderr
    shown = subprocess.run([*host, "report", "--db", db, "--energy-budget", "1J", "--json"], capture_output=True,
                           text=True)
    assert shown.returncode == 0, shown.stderr
    (entry,) = json.loads(shown.stdout)["boards"]
    assert [r["batch"] for r in entry["results"]] == [1, 2]
    # No power source: energy is missing, never zero, and no ceiling is claimed.
    assert all(r["energy_per_inference_j"] is None for r in entry["results"])
    assert entry["ceiling"]["best"] is None and entry["ceiling"]["without_energy"] == 2
    text = subprocess.run([*host, "report", "--db", db, "--energy-budget", "1J"], capture_output=True, text=True)
    assert "No energy was measured" in text.stdout


def test_demo_runs_the_whole_loop_into_its_own_store_and_says_where(models: Path, tmp_path: Path) -> None:
    # No --db: the demo's default store, under this test's user data dir, never the user's real results.sqlite.
    data = tmp_path / "xdg"
    proc = subprocess.run(
        [sys.executable, "-m", "dnnprof.host", "demo", "--models", str(models), "--batch", "1,2", "--duration",
         "200ms", "--max-duration", "400ms", "--power-source", "estimate"],
        capture_output=True, text=True, timeout=180, env={**os.environ, "XDG_DATA_HOME": str(data)})
    assert proc.returncode == 0, proc.stderr
    assert "Energy-bounded accuracy ceiling" in proc.stdout
    assert "shufflenet_v2_x0_5" in proc.stdout and "squeezenet1_1" in proc.stdout
    demo_store = data / "dnnprof" / "demo.sqlite"
    assert not (data / "dnnprof" / "results.sqlite").exists()
    last = proc.stderr.strip().splitlines()[-1]
    assert f"results stored in {demo_store}" in last and f"dnnhost report --db {demo_store}" in last
    with Store(demo_store) as store:
        assert store.count() == 4


def test_a_host_that_missed_the_sweep_gets_it_by_replay(mosquitto: str, models: Path, tmp_path: Path) -> None:
    """The agent service measures while no collector listens (the broker acknowledges and drops what nobody
    subscribed to); a collector started afterwards sees the stream's high mark in the retained birth, asks for
    the missing numbers, and the agent publishes them again from its outbox."""
    host, port = mosquitto.rsplit(":", 1)
    config = tmp_path / "agent.toml"
    config.write_text(f"""[broker]
host = "{host}"
port = {port}
[agent]
board_id = "late-host"
state_dir = "{tmp_path / 'state'}"
models_dir = "{models}"
[sweep]
batch_sizes = [1, 2]
backend = "onnxruntime"
[power]
source = "none"
[measurement]
warmup_s = 0.01
max_warmup_s = 0.05
duration_s = 0.05
max_duration_s = 0.1
min_iterations = 2
idle_s = 0
""")
    log = (tmp_path / "agent.log").open("w")
    proc = subprocess.Popen([sys.executable, "-m", "dnnprof.agent", "serve", "--config", str(config)],
                            stdout=subprocess.DEVNULL, stderr=log)
    outbox = tmp_path / "state" / "outbox.sqlite"
    try:
        deadline = time.monotonic() + 90
        while "sweep done" not in (tmp_path / "agent.log").read_text() and time.monotonic() < deadline:
            assert proc.poll() is None, (tmp_path / "agent.log").read_text()
            time.sleep(0.2)
        db = sqlite3.connect(outbox)
        measured = {json.loads(p)["id"] for (p,) in db.execute("SELECT payload FROM messages WHERE kind = 'result'")}
        written = db.execute("SELECT count(*) FROM messages").fetchone()[0]
        db.close()
        assert len(measured) == 4

        store_path = tmp_path / "store.sqlite"
        with Collector(mosquitto, store_path, replay=True, gap_grace_s=0.3) as collector, Store(store_path) as store:
            assert collector.wait_until(lambda: store.count() == 4 and not store.gaps(), 30), store.gaps()
            assert {r.id for r in store.results("late-host")} == measured
            assert store.count("run_events") == written - 4  # every run event too
            assert collector.counts["replay_requests"] >= 1 and collector.counts["replayed"] == written
    finally:
        proc.send_signal(signal.SIGTERM)
        proc.wait(30)
        log.close()
    assert proc.returncode == 0


def test_the_ceiling_ranks_measured_accuracy_and_leaves_an_assumed_row_out(digits, tmp_path: Path) -> None:
    """Precision as the fourth knob, end to end: the digits classifier at fp32 and int8 with their accuracy
    measured, and an int8 point whose accuracy was not (only the manifest's fp32 figure): assumed, not ranked."""
    measured, unmeasured = tmp_path / "measured.jsonl", tmp_path / "unmeasured.jsonl"
    common = ["--board", "acc-board", "--power-source", "estimate", "--quiet", "--calibration",
              str(digits.calibration), "--duration", "200ms", "--max-duration", "400ms", "--warmup", "50ms",
              "--max-warmup", "200ms", "--min-iterations", "3", "--idle", "0s"]
    proc = agent("run", "--manifest", str(digits.manifest), "--precision", "fp32,int8", "--batch", "1",
                 "--accuracy-set", str(digits.test), "--output", str(measured), *common)
    assert proc.returncode == 0, proc.stderr
    with_reference = tmp_path / "reference.toml"  # the same model, with a top-1 of its own (for fp32, as manifests do)
    with_reference.write_text(digits.manifest.read_text().replace('"digits.onnx"', f'"{digits.model}"')
                              + "top1 = 99.0\n")
    proc = agent("run", "--manifest", str(with_reference), "--precision", "int8", "--batch", "8",
                 "--output", str(unmeasured), *common)
    assert proc.returncode == 0, proc.stderr
    db = str(tmp_path / "store.sqlite")
    host = [sys.executable, "-m", "dnnprof.host"]
    for path in (measured, unmeasured):
        imported = subprocess.run([*host, "import", str(path), "--db", db], capture_output=True, text=True)
        assert imported.returncode == 0, imported.stderr
    shown = subprocess.run([*host, "report", "--db", db, "--energy-budget", "10J", "--json"], capture_output=True,
                           text=True)
    assert shown.returncode == 0, shown.stderr
    (entry,) = json.loads(shown.stdout)["boards"]
    rows = {(r["precision"], r["batch"]): r for r in entry["results"]}
    assert rows[("int8", 1)]["accuracy_source"] == "measured" and not rows[("int8", 1)]["assumed"]
    assert rows[("int8", 8)]["assumed"] and rows[("int8", 8)]["top1"] == 99.0  # the fp32 figure, not ranked
    ceiling = entry["ceiling"]
    assert ceiling["best"]["accuracy_source"] == "measured" and ceiling["excluded"]["assumed"] == 1
    assert ceiling["top1"] == pytest.approx(max(rows[(p, 1)]["top1"] for p in ("fp32", "int8")))
    text = subprocess.run([*host, "report", "--db", db, "--energy-budget", "10J"], capture_output=True, text=True)
    flat = " ".join(text.stdout.split())
    assert "assumed" in flat and "--assume-accuracy" in flat and "(measured," in flat
    assumed = subprocess.run([*host, "report", "--db", db, "--energy-budget", "10J", "--assume-accuracy", "--json"],
                             capture_output=True, text=True)
    ranked = json.loads(assumed.stdout)["boards"][0]["ceiling"]
    assert ranked["top1"] == 99.0 and ranked["assumed"]  # the assumed row wins, and the ceiling says so
