"""The Prometheus endpoint of `dnnhost collect --metrics`: real messages in, a real HTTP scrape out, parsed by
prometheus_client's own parsers in both formats (plain text and OpenMetrics)."""

from __future__ import annotations

import json
import re
import socket
import threading
import time
import urllib.error
import urllib.request
from collections import Counter
from pathlib import Path

import pytest
from prometheus_client.openmetrics.parser import text_string_to_metric_families as parse_openmetrics
from prometheus_client.parser import text_string_to_metric_families as parse_text

from dnnprof.host.broker import EmbeddedBroker
from dnnprof.host.collector import Collector
from dnnprof.host.metrics import Metrics, parse_address
from dnnprof.shared import schema, topics
from dnnprof.shared.errors import UserError

DASHBOARD = Path(__file__).resolve().parents[2] / "docs" / "examples" / "grafana-dashboard.json"
OPENMETRICS = "application/openmetrics-text; version=1.0.0"


def scrape(address: str, openmetrics: bool = False) -> dict[tuple[str, frozenset], float]:
    """{(sample name, its labels): value} of one scrape, parsed by the parser of the format the server chose."""
    headers = {"Accept": OPENMETRICS} if openmetrics else {}
    with urllib.request.urlopen(urllib.request.Request(f"http://{address}/metrics", headers=headers),
                                timeout=10) as response:
        content_type = response.headers["Content-Type"]
        text = response.read().decode()
    if openmetrics:
        assert content_type.startswith("application/openmetrics-text"), content_type
        assert text.endswith("# EOF\n")
        families = parse_openmetrics(text)
    else:
        assert content_type.startswith("text/plain"), content_type
        families = parse_text(text)
    return {(s.name, frozenset(s.labels.items())): s.value for f in families for s in f.samples}


def value(samples: dict, name: str, **labels: str) -> float | None:
    """The value of the sample ``name`` with exactly ``labels``; None when there is none."""
    return samples.get((name, frozenset(labels.items())))


def names(samples: dict, name: str) -> list[dict]:
    """The label sets of every sample called ``name``."""
    return [dict(labels) for n, labels in samples if n == name]


def telemetry(power_w: list[float], *, board: str = "board-a", t0: float | None = None, dt_s: float = 0.1,
              power_source: str | None = "rapl", ts: float | None = None) -> schema.Telemetry:
    now = time.time()
    return schema.Telemetry(board=board, ts=now if ts is None else ts, seq=0, t0=now if t0 is None else t0, dt_s=dt_s,
                            power_w=power_w, power_source=power_source if power_w else None)


@pytest.fixture
def counts() -> Counter:
    return Counter()


@pytest.fixture
def served(counts):
    """(Metrics, the address it serves on), stopped after the test."""
    metrics = Metrics("dnnhost-test", lambda: dict(counts))
    address = metrics.serve("127.0.0.1:0")
    yield metrics, address
    metrics.stop()


both_formats = pytest.mark.parametrize("openmetrics", [False, True], ids=["text", "openmetrics"])


@both_formats
def test_online_then_offline_flips_the_gauge(served, msgs, openmetrics):
    metrics, address = served
    assert names(scrape(address, openmetrics), "dnnprof_board_online") == []  # no status yet: no series
    metrics.observe(msgs.status("online", board="board-a"))
    metrics.observe(msgs.status("online", board="board-b"))
    samples = scrape(address, openmetrics)
    assert value(samples, "dnnprof_board_online", board="board-a") == 1
    assert value(samples, "dnnprof_board_online", board="board-b") == 1
    metrics.observe(msgs.status("offline", board="board-a"))
    metrics.observe(msgs.status("lost", board="board-b"))
    samples = scrape(address, openmetrics)
    assert value(samples, "dnnprof_board_online", board="board-a") == 0
    assert value(samples, "dnnprof_board_online", board="board-b") == 0
    metrics.observe(msgs.status("online", session=2, board="board-a"))
    assert value(scrape(address, openmetrics), "dnnprof_board_online", board="board-a") == 1


def test_presence_from_the_store_wins_over_the_statuses_this_member_saw(msgs):
    """In a group a member receives only its share of a board's statuses; the store (``Collector.presence``) holds
    them all, so presence comes from there, and a board that left has no power reading any more."""
    presence = {"board-a": "online"}
    metrics = Metrics("member-1", Counter, lambda: dict(presence))
    address = metrics.serve("127.0.0.1:0")
    try:
        metrics.observe(telemetry([7.0], board="board-a"))
        samples = scrape(address)
        assert value(samples, "dnnprof_board_online", board="board-a") == 1  # no status seen here: the store's
        assert value(samples, "dnnprof_board_power_watts", board="board-a") == 7.0
        presence.update({"board-a": "lost", "board-b": "online"})  # another member stored these
        samples = scrape(address)
        assert value(samples, "dnnprof_board_online", board="board-a") == 0
        assert value(samples, "dnnprof_board_power_watts", board="board-a") is None
        assert value(samples, "dnnprof_board_online", board="board-b") == 1
    finally:
        metrics.stop()


def test_a_stale_will_leaves_a_reconnected_board_online(served, msgs):
    metrics, address = served
    metrics.observe(msgs.status("online", session=3))
    metrics.observe(msgs.status("lost", session=2))  # the broker's will of the connection before
    assert value(scrape(address), "dnnprof_board_online", board="board-a") == 1


@both_formats
def test_power_is_the_latest_reading_and_absent_when_unknown(served, msgs, openmetrics):
    metrics, address = served
    t0 = time.time() - 1.0
    metrics.observe(msgs.status("online", board="board-a"))
    metrics.observe(msgs.status("online", board="board-b"))
    metrics.observe(telemetry([4.0, 6.0], board="board-a", t0=t0, dt_s=0.5))
    metrics.observe(telemetry([], board="board-b"))  # a board without a power source sends no samples
    samples = scrape(address, openmetrics)
    assert value(samples, "dnnprof_board_power_watts", board="board-a") == pytest.approx(5.0)
    assert value(samples, "dnnprof_board_power_timestamp_seconds", board="board-a") == pytest.approx(t0 + 0.5)
    assert value(samples, "dnnprof_board_power_watts", board="board-b") is None  # unknown: absent, not 0
    assert value(samples, "dnnprof_board_power_timestamp_seconds", board="board-b") is None
    assert value(samples, "dnnprof_board_online", board="board-b") == 1

    metrics.observe(telemetry([7.0], board="board-a", t0=t0 - 10))  # an older batch, arriving late
    assert value(scrape(address, openmetrics), "dnnprof_board_power_watts", board="board-a") == pytest.approx(5.0)
    metrics.observe(telemetry([8.0], board="board-a", t0=t0 + 2))
    assert value(scrape(address, openmetrics), "dnnprof_board_power_watts", board="board-a") == pytest.approx(8.0)

    # a board that left draws an unknown power, not its last reading
    metrics.observe(msgs.status("offline", board="board-a"))
    assert names(scrape(address, openmetrics), "dnnprof_board_power_watts") == []


def test_a_board_that_loses_its_power_source_has_no_power(served):
    metrics, address = served
    metrics.observe(telemetry([3.0]))
    assert value(scrape(address), "dnnprof_board_power_watts", board="board-a") == 3.0
    metrics.observe(telemetry([], power_source=None))
    assert names(scrape(address), "dnnprof_board_power_watts") == []


@both_formats
def test_last_result_per_board_and_no_energy_sample_without_energy(served, msgs, openmetrics):
    metrics, address = served
    metrics.observe(msgs.result("resnet18", batch=4, energy=0.02, throughput=250.0, precision="fp16",
                                board="board-a"))
    metrics.observe(msgs.result("mobilenet_v2", batch=1, energy=None, throughput=90.0, board="board-b"))
    samples = scrape(address, openmetrics)
    a = {"board": "board-a", "network": "resnet18", "backend": "onnxruntime", "precision": "fp16", "batch": "4"}
    b = {"board": "board-b", "network": "mobilenet_v2", "backend": "onnxruntime", "precision": "fp32", "batch": "1"}
    assert value(samples, "dnnprof_result_images_per_second", **a) == 250.0
    assert value(samples, "dnnprof_result_energy_per_image_joules", **a) == pytest.approx(0.02)
    assert value(samples, "dnnprof_result_images_per_second", **b) == 90.0
    assert names(samples, "dnnprof_result_energy_per_image_joules") == [a]  # none for board-b, not 0


def test_only_the_newest_result_of_a_board_is_shown(served, msgs):
    metrics, address = served
    now = time.time()
    metrics.observe(msgs.result("resnet18", throughput=100.0, ts=now))
    metrics.observe(msgs.result("vgg16", throughput=10.0, ts=now - 60))  # replayed late: older, so not the last
    samples = scrape(address)
    assert [labels["network"] for labels in names(samples, "dnnprof_result_images_per_second")] == ["resnet18"]
    metrics.observe(msgs.result("resnet50", batch=8, throughput=40.0, ts=now + 1))
    samples = scrape(address)
    assert names(samples, "dnnprof_result_images_per_second") == [
        {"board": "board-a", "network": "resnet50", "backend": "onnxruntime", "precision": "fp32", "batch": "8"}]


@both_formats
def test_sweep_progress_of_the_latest_run(served, msgs, openmetrics):
    metrics, address = served
    metrics.observe(msgs.run_event("started", 0, run_id="run-1", points_total=4, points_done=0))
    metrics.observe(msgs.run_event("progress", 2, run_id="run-1", points_total=4, points_done=2))
    metrics.observe(msgs.run_event("progress", 1, run_id="run-1", points_total=4, points_done=1))  # re-delivered
    samples = scrape(address, openmetrics)
    assert value(samples, "dnnprof_sweep_points_done", board="board-a", run_id="run-1") == 2
    assert value(samples, "dnnprof_sweep_points_planned", board="board-a", run_id="run-1") == 4
    time.sleep(0.01)
    metrics.observe(msgs.run_event("started", 0, run_id="run-2", points_total=9, points_done=0))
    samples = scrape(address, openmetrics)
    assert names(samples, "dnnprof_sweep_points_done") == [{"board": "board-a", "run_id": "run-2"}]
    assert value(samples, "dnnprof_sweep_points_planned", board="board-a", run_id="run-2") == 9


@both_formats
def test_counters_follow_counts(served, counts, openmetrics):
    _, address = served
    counters = ("dnnprof_collector_messages_received_total", "dnnprof_collector_messages_stored_total",
                "dnnprof_collector_messages_rejected_total", "dnnprof_collector_messages_duplicates_total",
                "dnnprof_collector_replay_requests_total", "dnnprof_collector_gaps_total")
    samples = scrape(address, openmetrics)
    assert [value(samples, name, collector="dnnhost-test") for name in counters] == [0] * 6
    counts.update(received=12, stored=9, rejected=1, duplicate=2, replay_requests=3, gaps=5, telemetry=7)
    samples = scrape(address, openmetrics)
    assert [value(samples, name, collector="dnnhost-test") for name in counters] == [12, 9, 1, 2, 3, 5]
    counts.update(received=1)
    assert value(scrape(address, openmetrics), counters[0], collector="dnnhost-test") == 13


def test_commands_are_not_boards(served):
    metrics, address = served
    metrics.observe(schema.Command(board="board-a", ts=time.time(), id="c1", action="sweep_status"))
    samples = scrape(address)
    assert not [name for name, labels in samples if dict(labels).get("board")]


def test_observe_and_scrape_at_once(served, msgs):
    """observe() runs on the collector's threads while scrapes read: every scrape parses, nothing is lost."""
    metrics, address = served
    boards = [f"board-{i}" for i in range(4)]

    def feed(board: str) -> None:
        for i in range(200):
            metrics.observe(telemetry([float(i)], board=board, t0=1000.0 + i))
            metrics.observe(msgs.status("online" if i % 2 else "lost", session=i, board=board))

    threads = [threading.Thread(target=feed, args=(board,)) for board in boards]
    for thread in threads:
        thread.start()
    while any(thread.is_alive() for thread in threads):
        scrape(address)
    for thread in threads:
        thread.join()
    samples = scrape(address)
    for board in boards:
        assert value(samples, "dnnprof_board_online", board=board) == 1
        assert value(samples, "dnnprof_board_power_watts", board=board) == 199.0


def test_fed_by_a_real_collector(tmp_path, msgs, mqtt_client):
    """Wired as `dnnhost collect --metrics` wires it: on_valid feeds observe, counts reads the collector's."""
    metrics = None

    def observe(message: schema.Message) -> None:
        metrics.observe(message)

    with EmbeddedBroker(port=0) as broker, Collector(broker.address, tmp_path / "r.sqlite", on_valid=observe,
                                                      client_id="dnnhost-wired") as collector:
        metrics = Metrics(collector.client_id, lambda: dict(collector.counts))
        address = metrics.serve("127.0.0.1:0")
        try:
            items = [msgs.status("online"), msgs.result("resnet18", energy=None, throughput=50.0), telemetry([2.5])]
            mqtt_client.publish(broker.address, [(msgs.topic_for(m), schema.encode(m)) for m in items]
                                + [(topics.topic("board-a", topics.RESULT), b"not json")])
            assert collector.wait_until(lambda: collector.counts["received"] >= 4, 15), dict(collector.counts)
            # on_valid runs after the counts are published: wait for the figures themselves
            deadline = time.monotonic() + 10
            while True:
                samples = scrape(address, openmetrics=True)
                wanted = ("dnnprof_board_online", "dnnprof_board_power_watts", "dnnprof_result_images_per_second")
                if all(names(samples, name) for name in wanted) or time.monotonic() > deadline:
                    break
                time.sleep(0.05)
        finally:
            metrics.stop()
    assert value(samples, "dnnprof_board_online", board="board-a") == 1
    assert value(samples, "dnnprof_board_power_watts", board="board-a") == 2.5
    assert names(samples, "dnnprof_result_images_per_second")[0]["network"] == "resnet18"
    assert names(samples, "dnnprof_result_energy_per_image_joules") == []
    assert value(samples, "dnnprof_collector_messages_received_total", collector="dnnhost-wired") == 4
    assert value(samples, "dnnprof_collector_messages_stored_total", collector="dnnhost-wired") == 2
    assert value(samples, "dnnprof_collector_messages_rejected_total", collector="dnnhost-wired") == 1


@pytest.mark.parametrize(("text", "expected"), [
    ("9108", ("0.0.0.0", 9108)), (":9108", ("0.0.0.0", 9108)), ("127.0.0.1:9108", ("127.0.0.1", 9108)),
    ("localhost:0", ("localhost", 0)), ("[::1]:9108", ("::1", 9108)), (" 0.0.0.0:65535 ", ("0.0.0.0", 65535)),
])
def test_parse_address(text, expected):
    assert parse_address(text) == expected


@pytest.mark.parametrize("text", ["", "x", "host:", "host:port", "127.0.0.1:65536", "::1:9108", "[::1]", "[::1]9108",
                                  "[]:9108", "a b:9108", "1:-1", "127.0.0.1:９１０８"])
def test_bad_address_is_a_user_error_of_one_line(text):
    metrics = Metrics("c", dict)
    with pytest.raises(UserError) as error:
        metrics.serve(text)
    message = str(error.value)
    assert "\n" not in message and "--metrics" in message
    with pytest.raises(UserError):
        parse_address(text)


@pytest.mark.parametrize("text", ["no-such-host.invalid:0", "192.0.2.1:0"])  # unresolvable; not this machine's
def test_an_address_it_cannot_listen_on_is_a_user_error(text):
    with pytest.raises(UserError, match="^--metrics .*: .*address|^--metrics .*resolve") as error:
        Metrics("c", dict).serve(text)
    assert "\n" not in str(error.value)


def test_a_port_in_use_is_a_user_error(served):
    _, address = served
    port = int(address.rsplit(":", 1)[1])
    with pytest.raises(UserError, match=f"port {port} is in use") as error:
        Metrics("other", dict).serve(f"127.0.0.1:{port}")
    assert "\n" not in str(error.value)
    with socket.socket() as other:  # a port held by something else than a Metrics
        other.bind(("127.0.0.1", 0))
        other.listen()
        with pytest.raises(UserError, match="in use"):
            Metrics("other", dict).serve(f"127.0.0.1:{other.getsockname()[1]}")


def test_stop_frees_the_port(msgs):
    metrics = Metrics("c", dict)
    address = metrics.serve("127.0.0.1:0")
    metrics.observe(msgs.status("online"))
    scrape(address)
    metrics.stop()
    with pytest.raises(urllib.error.URLError):
        scrape(address)
    again = Metrics("c", dict)  # the same port, free again
    assert again.serve(address) == address
    try:
        assert names(scrape(address), "dnnprof_board_online") == []
    finally:
        again.stop()
    metrics.stop()  # stopping twice does nothing


def test_serves_ipv6_loopback():
    if not socket.has_ipv6:
        pytest.skip("no IPv6 here")
    metrics = Metrics("c", dict)
    try:
        address = metrics.serve("[::1]:0")
    except UserError as exc:
        pytest.skip(f"no IPv6 loopback here: {exc}")
    try:
        assert address.startswith("[::1]:")
        assert value(scrape(address), "dnnprof_collector_gaps_total", collector="c") == 0
    finally:
        metrics.stop()


def _exposed_names(msgs) -> set[str]:
    """Every sample name a Metrics with every figure known exposes."""
    counts = Counter(received=1)
    metrics = Metrics("c", lambda: counts)
    for message in (msgs.status("online"), telemetry([1.0]), msgs.result(), msgs.run_event()):
        metrics.observe(message)
    address = metrics.serve("127.0.0.1:0")
    try:
        return {name for name, _ in scrape(address)} | {name for name, _ in scrape(address, openmetrics=True)}
    finally:
        metrics.stop()


def _exprs(node) -> list[str]:
    if isinstance(node, dict):
        found = [node["expr"]] if isinstance(node.get("expr"), str) else []
        return found + [e for key, child in node.items() if key != "expr" for e in _exprs(child)]
    if isinstance(node, list):
        return [e for child in node for e in _exprs(child)]
    return []


def test_dashboard_queries_only_metrics_that_exist(msgs):
    dashboard = json.loads(DASHBOARD.read_text())
    assert [i["name"] for i in dashboard["__inputs"]] == ["DS_PROMETHEUS"]
    assert dashboard["__inputs"][0]["pluginId"] == "prometheus"
    assert dashboard["schemaVersion"] >= 36
    panels = dashboard["panels"]
    assert {p["type"] for p in panels} >= {"stat", "timeseries", "table", "bargauge"}
    for panel in panels:
        assert panel["datasource"]["uid"] == "${DS_PROMETHEUS}", panel["title"]
        assert panel["targets"], panel["title"]
    exprs = _exprs(panels) + [v["definition"] for v in dashboard["templating"]["list"]]
    exposed = _exposed_names(msgs)
    used = {name for expr in exprs for name in re.findall(r"dnnprof_[a-z_]+", expr)}
    assert used and used <= exposed, used - exposed
    rated = {name for expr in exprs for name in re.findall(r"rate\((dnnprof_[a-z_]+)", expr)}
    assert rated and all(name.endswith("_total") for name in rated)
