"""``dnnhost collect`` as a user runs it against a real Mosquitto: its persistent session across a restart, the
gaps and replay requests in its summary, a group of collectors writing one PostgreSQL store, and its metrics
scraped over HTTP."""

from __future__ import annotations

import os
import re
import signal
import sqlite3
import subprocess
import sys
import threading
import time
import urllib.request

import pytest
from prometheus_client.openmetrics import parser as openmetrics_parser

from dnnprof.host.store import Store
from dnnprof.shared import schema, topics

STREAM = 1_712_345_678_901


@pytest.fixture
def env(tmp_path):
    return {**os.environ, "XDG_DATA_HOME": str(tmp_path / "xdg")}


def collect(env, *args) -> subprocess.Popen:
    """``dnnhost collect ARGS`` started; returns once it says it is collecting (its subscription confirmed)."""
    proc = subprocess.Popen([sys.executable, "-m", "dnnprof.host", "collect", *map(str, args)],
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, env=env)
    seen = proc.said = []
    for line in proc.stderr:
        seen.append(line)
        if line.startswith("collecting from"):
            return proc
    proc.wait(10)
    raise AssertionError("collect did not start: " + "".join(seen))


def finish(proc: subprocess.Popen) -> str:
    """The rest of its stderr, whitespace joined, once it ends by itself (--duration)."""
    try:
        _, rest = proc.communicate(timeout=20)
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.communicate()
    assert proc.returncode == 0, rest
    assert "Traceback" not in rest
    return " ".join(rest.split())


def test_collect_picks_up_its_session_after_a_restart(mosquitto, env, tmp_path, msgs, mqtt_client):
    db = tmp_path / "results.sqlite"
    common = ["--broker", mosquitto, "--db", db, "--client-id", "dnnhost-collect-test"]
    finish(collect(env, *common, "--duration", "0.2s"))
    missed = msgs.result()
    mqtt_client.publish(mosquitto, [(msgs.topic_for(missed), schema.encode(missed))])  # while it is down
    summary = finish(collect(env, *common, "--duration", "1s"))
    assert "stored 1 messages (1 results, 0 duplicates, 0 rejected)" in summary


def test_collect_asks_for_missing_numbers_and_says_so(mosquitto, env, tmp_path, msgs, mqtt_client):
    asked = threading.Event()
    agent = mqtt_client.connect(mosquitto)
    agent.on_message = lambda client, userdata, msg: asked.set()
    agent.subscribe(topics.topic("board-a", topics.CMD), qos=1)
    try:
        proc = collect(env, "--broker", mosquitto, "--db", tmp_path / "results.sqlite", "--duration", "5.5s")
        numbered = []
        for seq in (1, 3):
            r = msgs.result(board="board-a")
            r.stream = schema.Stream(id=STREAM, seq=seq)
            numbered.append((msgs.topic_for(r), schema.encode(r)))
        mqtt_client.publish(mosquitto, numbered)
        summary = finish(proc)
    finally:
        agent.disconnect()
        agent.loop_stop()
    assert asked.is_set()  # after the default grace of 3 s
    assert "stored 2 messages" in summary
    assert "gaps 1 · replay requests 1 · replayed 0 (`dnnhost gaps` lists what is still missing)" in summary


@pytest.mark.parametrize("client_id", ["", "has space", "x" * 129, "ünïcode"])
def test_a_bad_client_id_is_one_line(env, tmp_path, client_id):
    proc = subprocess.run([sys.executable, "-m", "dnnprof.host", "collect", "--client-id", client_id, "--db",
                           tmp_path / "db.sqlite", "--broker", "127.0.0.1:1"], capture_output=True, text=True,
                          env=env, timeout=30)
    assert proc.returncode == 2
    lines = proc.stderr.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith("dnnhost: error: --client-id")


def test_a_message_is_acknowledged_only_once_committed(mosquitto, env, tmp_path, msgs, mqtt_client):
    """The store is locked by another process, so the collector receives a result but cannot commit it; killed
    then (-9), it never acknowledged it, and the broker delivers it again to the restarted session."""
    db = tmp_path / "results.sqlite"
    common = ["--broker", mosquitto, "--db", db, "--client-id", "dnnhost-collect-ack"]
    finish(collect(env, *common, "--duration", "0.2s"))  # creates the store and the session
    lock = sqlite3.connect(db, isolation_level=None)
    lock.execute("BEGIN EXCLUSIVE")  # the collector's writer now waits for it (up to its 30 s busy timeout)
    proc = collect(env, *common)
    try:
        r = msgs.result()
        mqtt_client.publish(mosquitto, [(msgs.topic_for(r), schema.encode(r))])
        time.sleep(1.0)  # received and waiting on the lock, not acknowledged
        proc.send_signal(signal.SIGKILL)
        proc.wait(10)
    finally:
        lock.execute("ROLLBACK")
        lock.close()
        if proc.poll() is None:
            proc.kill()
        proc.communicate()
    summary = finish(collect(env, *common, "--duration", "1s"))
    assert "stored 1 messages (1 results, 0 duplicates, 0 rejected)" in summary


def scrape(address: str) -> dict[tuple[str, tuple], float]:
    """The OpenMetrics a collector serves, fetched by a real HTTP client and parsed by Prometheus' own parser:
    {(sample name, sorted labels): value}."""
    request = urllib.request.Request(f"http://{address}/metrics",
                                     headers={"Accept": "application/openmetrics-text; version=1.0.0"})
    with urllib.request.urlopen(request, timeout=5) as response:
        text = response.read().decode()
    return {(s.name, tuple(sorted(s.labels.items()))): s.value
            for family in openmetrics_parser.text_string_to_metric_families(text) for s in family.samples}


def test_two_collectors_in_a_group_share_the_stream_into_postgresql_with_metrics(mosquitto, env, postgres, msgs,
                                                                                  mqtt_client):
    url = postgres.database()
    procs = [collect(env, "--broker", mosquitto, "--db", url, "--group", "lab", "--client-id", f"lab-{n}",
                     "--metrics", "127.0.0.1:0", "--duration", "4s") for n in (1, 2)]
    results = [msgs.result(board="board-a") for _ in range(40)]
    mqtt_client.publish(mosquitto, [(msgs.topic_for(r), schema.encode(r)) for r in results]
                        + [(msgs.topic_for(m), schema.encode(m)) for m in (msgs.status("online", 1),)])
    addresses = [re.search(r"metrics on http://(\S+)/metrics", "".join(p.said)).group(1) for p in procs]
    with Store(url) as store:
        deadline = time.monotonic() + 10
        while store.count() < 40 and time.monotonic() < deadline:
            time.sleep(0.05)
    online = ("dnnprof_board_online", (("board", "board-a"),))
    deadline = time.monotonic() + 5  # presence is read from the store at each gap check (every second)
    while True:
        figures = [scrape(a) for a in addresses]
        if all(f.get(online) for f in figures) or time.monotonic() > deadline:
            break
        time.sleep(0.1)
    summaries = [finish(p) for p in procs]
    received = [f[("dnnprof_collector_messages_stored_total", (("collector", f"lab-{n}"),))]
                for n, f in zip((1, 2), figures)]
    assert sum(received) == 41 and all(received), received  # 40 results and a status, split between the two
    # One member received the status; both show the board online, as the store they share has it.
    assert [f.get(online) for f in figures] == [1, 1]
    stored = [int(re.search(r"\((\d+) results", s).group(1)) for s in summaries]
    assert sum(stored) == 40 and all(stored), summaries
    assert all("0 duplicates" in s and "postgresql://dnnprof@" in s for s in summaries)
    with Store(url) as store:
        assert sorted(r.id for r in store.results()) == sorted(r.id for r in results)


@pytest.mark.parametrize("args, words", [
    (["--group", "lab"], "--group needs a broker with shared subscriptions"),
    (["--group", "a/b", "--broker", "127.0.0.1:1"], "--group 'a/b'"),
    (["--group", "lab", "--broker", "127.0.0.1:1", "--session-expiry", "0s"], "--session-expiry 0s"),
    (["--metrics", "nowhere", "--broker", "127.0.0.1:1"], "--metrics 'nowhere'"),
])
def test_a_bad_group_or_metrics_option_is_one_line(env, tmp_path, args, words):
    proc = subprocess.run([sys.executable, "-m", "dnnprof.host", "collect", "--db", tmp_path / "db.sqlite", *args],
                          capture_output=True, text=True, env=env, timeout=30)
    lines = proc.stderr.strip().splitlines()
    assert proc.returncode != 0 and len(lines) == 1 and lines[0].startswith("dnnhost: error:"), proc.stderr
    assert words in lines[0]
