"""``dnnagent run``'s outboxes (agent/service/runbox.py), as a user meets them: a run over TLS with a login through
a broker restart stores every result once; what a run could not deliver is published by the next run; each run
numbers its own stream from 1."""

from __future__ import annotations

import socket
import subprocess
import sys
import time
from pathlib import Path

import pytest

from dnnprof.agent.models import zoo
from dnnprof.agent.service import runbox
from dnnprof.host.collector import Collector
from dnnprof.host.store import Store
from dnnprof.shared import auth
from dnnprof.shared.errors import UserError

SMALL = "shufflenet_v2_x0_5"
SHORT = ["--duration", "0.3s", "--max-duration", "0.5s", "--warmup", "50ms", "--max-warmup", "0.3s", "--idle", "0s",
         "--min-power-samples", "2", "--telemetry-rate", "0"]
USERS = {"dnnhost": "host-pw", "board-a": "agent-pw"}


@pytest.fixture(scope="module")
def models(tmp_path_factory) -> Path:
    out = tmp_path_factory.mktemp("models")
    zoo.generate([SMALL], out)
    return out


def agent(*args, **popen) -> subprocess.Popen:
    return subprocess.Popen([sys.executable, "-m", "dnnprof.agent", "run", *map(str, args)],
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, **popen)


def login(tmp_path: Path, pki: Path) -> list:
    secret = tmp_path / "agent-pw"
    secret.write_text("agent-pw\n")
    secret.chmod(0o600)
    return ["--tls-ca", pki / "ca.crt", "--username", "board-a", "--password-file", secret]


def collector(port: int, pki: Path, db: Path) -> Collector:
    return Collector(f"127.0.0.1:{port}", db, tls=auth.tls_context(pki / "ca.crt"), username="dnnhost",
                     password="host-pw", client_id="test-collector", persistent=True)


def persistent(tmp_path: Path) -> str:
    """Mosquitto keeps sessions and their queued messages across a restart (the example config does too)."""
    return f"persistence true\npersistence_location {tmp_path}/\nautosave_interval 1\n"


def test_run_over_tls_through_a_broker_restart_stores_every_result_once(tls_mosquitto, pki, tmp_path, models):
    extra = persistent(tmp_path)
    port = tls_mosquitto(USERS, extra)
    db = tmp_path / "store.sqlite"
    with collector(port, pki, db) as c:
        proc = agent(models, "--broker", f"127.0.0.1:{port}", *login(tmp_path, pki), "--board", "board-a",
                     "--run-id", "tls-restart", "--batch", "1,2,3,4,5,6", "--power-source", "estimate", *SHORT)
        try:
            assert c.wait_until(lambda: c.counts["stored"] >= 2, 60)  # the run has started publishing
            tls_mosquitto.stop(port)  # SIGTERM: the broker saves the collector's session
            time.sleep(1.5)  # the agent measures on, into its outbox
            tls_mosquitto(USERS, extra, port=port)
            out, err = proc.communicate(timeout=120)
        finally:
            proc.kill()
        assert proc.returncode == 0, err
        assert "over TLS as board-a" in err
        with Store(db) as store:
            assert c.wait_until(lambda: store.run_finished("board-a", "tls-restart") is not None
                                and len(store.results("board-a")) == 6, 30)
            results = store.results("board-a")
        assert sorted(r.batch for r in results) == [1, 2, 3, 4, 5, 6]  # every point, each once (ids are keys)
        assert {r.stream.id for r in results} == {results[0].stream.id}
        assert c.counts["rejected"] == 0
    assert list(runbox.default_dir("board-a").glob("*.sqlite")) == []  # delivered whole: the run's file is gone


def test_what_a_run_could_not_deliver_the_next_run_publishes_first(tls_mosquitto, pki, tmp_path, models):
    port = tls_mosquitto(USERS)
    outboxes = tmp_path / "outboxes"
    db = tmp_path / "store.sqlite"
    common = ["--broker", f"127.0.0.1:{port}", *login(tmp_path, pki), "--board", "board-a", "--outbox-dir", outboxes,
              "--power-source", "estimate", "--flush-timeout", "1s", *SHORT]
    with collector(port, pki, db) as c:
        first = agent(models, *common, "--run-id", "cut-off", "--batch", "1,2,3,4")
        try:
            assert c.wait_until(lambda: c.counts["stored"] >= 2, 60)  # started, and a result
            tls_mosquitto.stop(port)  # gone for good before the first run ends
            out, err = first.communicate(timeout=120)
        finally:
            first.kill()
    assert first.returncode == 1, err
    line = err.strip().splitlines()[-1]
    assert line.startswith("dnnagent: error: ") and "stay in" in line and "publishes them" in line
    assert [p.name for p in outboxes.glob("*.sqlite")] == ["cut-off.sqlite"]

    port = tls_mosquitto(USERS, port=port)
    with collector(port, pki, db) as c:
        second = agent(models, *common, "--run-id", "next-run", "--batch", "1")
        out, err = second.communicate(timeout=120)
        assert second.returncode == 0, err
        assert "published with this run's" in err
        with Store(db) as store:
            assert c.wait_until(lambda: store.run_finished("board-a", "next-run") is not None
                                and store.run_finished("board-a", "cut-off") is not None, 30)
            results = store.results("board-a")
    by_run: dict[str, list[int]] = {}
    for r in results:
        by_run.setdefault(r.run_id, []).append(r.batch)
    assert sorted(by_run["cut-off"]) == [1, 2, 3, 4] and by_run["next-run"] == [1]  # nothing lost, each once
    streams = {r.run_id: r.stream.id for r in results}
    assert streams["cut-off"] != streams["next-run"]  # each run numbers its own stream
    assert list(outboxes.glob("*.sqlite")) == []  # delivered whole, both files are gone


def test_run_tls_options_without_a_broker_are_one_line(tmp_path, pki, models):
    proc = subprocess.run([sys.executable, "-m", "dnnprof.agent", "run", str(models), "--output",
                           str(tmp_path / "r.jsonl"), "--tls-ca", str(pki / "ca.crt")], capture_output=True, text=True)
    assert proc.returncode != 0 and "Traceback" not in proc.stderr
    (line,) = proc.stderr.strip().splitlines()
    assert line == ("dnnagent: error: --tls-ca: results go to --output only; add --broker HOST[:PORT] to publish "
                    "them over TLS or a login")


def test_a_run_numbers_its_own_stream_from_one(mosquitto, tmp_path, models):
    db = tmp_path / "store.sqlite"
    with Collector(mosquitto, db) as c:
        for run_id in ("one", "two"):
            proc = agent(models, "--broker", mosquitto, "--board", "board-b", "--run-id", run_id, "--batch", "1",
                         "--power-source", "none", *SHORT)
            _, err = proc.communicate(timeout=120)
            assert proc.returncode == 0, err
        with Store(db) as store:
            assert c.wait_until(lambda: store.run_finished("board-b", "two") is not None, 30)
            assert [g for g in store.gaps("board-b")] == []  # no hole below a run's first number
            seqs = sorted((r.run_id, r.stream.seq) for r in store.results("board-b"))
    assert [seq for _, seq in seqs] == [2, 2]  # after each run's "started" event


def test_a_run_id_in_use_is_one_line_and_a_bad_leftover_is_left_out(tmp_path, caplog):
    outboxes = tmp_path / "outboxes"
    going = runbox.RunOutbox(outboxes, "going-on")
    try:
        with pytest.raises(UserError, match=r"a run going-on of this board is going on now .*give another --run-id"):
            runbox.RunOutbox(outboxes, "going-on")
        (outboxes / "garbage.sqlite").write_bytes(b"not a database at all" * 100)
        other = runbox.RunOutbox(outboxes, "later")
        assert other.leftovers == []  # neither the run going on nor the garbage
        assert "left out the outbox" in caplog.text and "garbage.sqlite" in caplog.text
        other.close()
        assert not (outboxes / "later.sqlite").exists()  # nothing waited in it
    finally:
        going.close()
    assert (outboxes / "garbage.sqlite").exists()  # never deleted: it is not ours to judge


def test_an_unreachable_broker_leaves_no_outbox_behind(tmp_path, models):
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]  # nothing listens there
    outboxes = tmp_path / "outboxes"
    proc = agent(models, "--broker", f"127.0.0.1:{port}", "--board", "board-c", "--outbox-dir", outboxes,
                 "--batch", "1", "--power-source", "none", *SHORT)
    _, err = proc.communicate(timeout=120)
    assert proc.returncode != 0 and "Traceback" not in err
    assert list(outboxes.glob("*")) == []
