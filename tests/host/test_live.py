"""dnnhost live: frames rendered to a recorded console from real schema messages, the dashboard against a real
Mosquitto, the command line, and once in a real terminal (tmux)."""

from __future__ import annotations

import io
import os
import shutil
import subprocess
import sys
import time

import paho.mqtt.client as mqtt
import pytest
from rich.console import Console

from dnnprof.host import live
from dnnprof.host.fleet import Fleet
from dnnprof.host.store import Store
from dnnprof.shared import schema, topics

T0 = 1_800_000_000.0


def telemetry(board, power=(10.0, 12.0), ts=T0, **kw) -> schema.Telemetry:
    return schema.Telemetry(board=board, ts=ts, seq=0, t0=ts - 0.1, dt_s=0.1, power_w=list(power),
                            power_source="ina3221", boundary="input_rail", **kw)


def fleet_of(msgs, n: int = 3) -> Fleet:
    fleet = Fleet()
    for i in range(n):
        name = f"jet-{i:03d}"
        fleet.ingest(msgs.status("online" if i % 3 else "lost", 1, board=name))
        fleet.ingest(msgs.info(board=name, cpu_model="AGX Orin", power_source="ina3221"))
        fleet.ingest(telemetry(name, power=(10.0 + i, 11.0 + i), rails_w={"VDD_IN": 10.5 + i},
                               temperatures_c={"cpu": 40.0 + i}, clocks="jetson_clocks on", power_mode="MAXN"))
        fleet.ingest(schema.RunEvent(board=name, ts=T0, run_id="run-1", seq=3, event="progress", points_total=12,
                                     points_done=3, network="resnet50", batch=8, precision="fp16", eta_s=95.0))
        fleet.ingest(msgs.result("resnet50", 8, 0.0123, board=name, throughput=812.0))
    return fleet


def draw(fleet: Fleet, width: int = 200, height: int = 40, **kw) -> str:
    console = Console(record=True, width=width, height=height, file=io.StringIO(), color_system=None)
    kw = {"counts": dict(fleet.counts), "rates": {"all": 12.0, "telemetry": 10.0}, **kw}
    console.print(live.frame(fleet.snapshot(), width=width, height=height, now=T0, broker="127.0.0.1:1883", **kw))
    return console.export_text()


def test_sparkline_scales_and_leaves_gaps():
    assert live.sparkline([0.0, 5.0, 10.0]) == "▁▅█"
    assert live.sparkline([None, 3.0, None]) == " ▄ "
    assert live.sparkline([7.0, 7.0]) == "▄▄"  # flat: mid-height, not empty
    assert live.sparkline([None, None]) == "  "


def test_columns_drop_the_least_useful_first():
    assert [c.name for c in live.columns_for(40)] == ["board", "state", "power"]
    assert [c.name for c in live.columns_for(20)] == ["board", "state"]  # never fewer than two
    assert len(live.columns_for(300)) == len(live.COLUMNS)


def test_a_frame_shows_every_part_of_a_board(msgs):
    text = draw(fleet_of(msgs))
    row = next(line for line in text.splitlines() if line.startswith("jet-001"))
    assert "online" in row and "11.5 W" in row  # mean of the latest batch
    assert "resnet50 b8 fp16" in row and "3/12" in row and "ETA 1m35s" in row
    assert "812 img/s 12.3 mJ/img" in row
    assert "41°C" in row and "AGX Orin · MAXN" in row and "VDD_IN 12" in row
    assert "lost" in next(line for line in text.splitlines() if line.startswith("jet-000"))
    assert "3 boards (2 online, 0 offline, 1 lost)" in text
    assert "messages/s 12 (telemetry 10)" in text and "rejected 0" in text


def test_narrow_terminal_keeps_the_essentials(msgs):
    text = draw(fleet_of(msgs), width=50)
    assert all(len(line) <= 50 for line in text.splitlines())
    row = next(line for line in text.splitlines() if line.startswith("jet-001"))
    assert "online" in row and "11.5 W" in row
    assert "rails W" not in text and "AGX Orin" not in text


def test_two_hundred_boards_fit_the_terminal_and_say_how_many_are_hidden(msgs):
    text = draw(fleet_of(msgs, 200), height=30)
    lines = text.rstrip("\n").splitlines()
    assert len(lines) <= 30
    assert "200 boards" in lines[0]
    shown = [line for line in lines if line.startswith("jet-")]
    assert shown and f"… {200 - len(shown)} more boards" in text


def test_sort_orders(msgs):
    fleet = fleet_of(msgs, 6)
    by_power = [line.split()[0] for line in draw(fleet, sort="power").splitlines() if line.startswith("jet-")]
    assert by_power == [f"jet-{i:03d}" for i in (5, 4, 3, 2, 1, 0)]
    by_state = [line.split()[0] for line in draw(fleet, sort="state").splitlines() if line.startswith("jet-")]
    assert by_state[:2] == ["jet-000", "jet-003"]  # lost boards first


def test_broker_down_banner_and_rejections_in_the_footer(msgs):
    fleet = fleet_of(msgs, 1)
    fleet.rejected("dnnprof/v1/bad/telemetry", "expected an object")
    text = draw(fleet, connected=False, last_rejection=fleet.last_rejection)
    assert "broker 127.0.0.1:1883 unreachable — retrying; the last known state is shown" in text
    assert "rejected 1 (last: dnnprof/v1/bad/telemetry: expected an object)" in text


def test_an_empty_fleet_says_how_to_publish():
    text = draw(Fleet())
    assert "No board has published yet" in text and "--broker 127.0.0.1:1883" in text


def test_an_aborted_run_says_where_it_stopped_and_gaps_show_in_the_footer(msgs):
    fleet = fleet_of(msgs, 1)
    fleet.ingest(schema.RunEvent(board="jet-000", ts=T0, run_id="run-1", seq=4, event="aborted", points_total=8,
                                 points_done=3))
    text = draw(fleet, counts={**fleet.counts, "gaps": 3, "replay_requests": 2, "replayed": 1})
    row = next(line for line in text.splitlines() if line.startswith("jet-000"))
    assert "aborted at 3/8" in row
    assert "gaps 3 (replay requests 2, replayed 1)" in text
    assert "gaps" not in draw(fleet)  # none: not mentioned


def test_the_hosts_own_commands_are_counted_but_say_nothing_about_a_board():
    fleet = Fleet()
    fleet.ingest(schema.Command(board="jet-007", ts=T0, id="replay-1", action="replay", stream=1, first=1, last=2))
    assert fleet.counts["cmd"] == 1 and fleet.snapshot() == []
    fleet.ingest(schema.CommandAck(board="jet-007", ts=T0, id="replay-1", accepted=True, replayed=2))
    assert [b.board for b in fleet.snapshot()] == ["jet-007"]  # the agent answered: it is there


def test_missing_numbers_are_dashes_never_zero():
    fleet = Fleet()
    fleet.ingest(schema.Telemetry(board="bare", ts=T0, seq=0, t0=T0, dt_s=0.1, power_w=[], power_source=None))
    row = next(line for line in draw(fleet).splitlines() if line.startswith("bare"))
    assert " 0 W" not in row and "—" in row and "no power source" in row and "idle" in row


# -- against a real broker --------------------------------------------------------------------------------------

def publish(address: str, items: list[tuple[str, bytes, bool]]) -> None:
    host, port = topics.parse_broker(address)
    client = mqtt.Client(mqtt.CallbackAPIVersion.VERSION2)
    client.connect(host, port)
    client.loop_start()
    for topic, payload, retain in items:
        client.publish(topic, payload, qos=1, retain=retain).wait_for_publish(5)
    client.disconnect()
    client.loop_stop()


def retained_fleet(msgs, n: int = 3) -> list[tuple[str, bytes, bool]]:
    items = []
    for i in range(n):
        name = f"jet-{i:03d}"
        for message in (msgs.status("online", 1, board=name), msgs.info(board=name, cpu_model="Orin Nano")):
            items.append((msgs.topic_for(message), schema.encode(message), True))
    return items


GARBAGE = ("dnnprof/v1/jet-000/telemetry", b"{not json", False)


def test_once_against_mosquitto_stores_and_counts(mosquitto, msgs, tmp_path):
    publish(mosquitto, retained_fleet(msgs))
    dash = live.Dashboard(mosquitto, tmp_path / "live.sqlite", console=Console(width=160, height=30,
                                                                               file=io.StringIO()))
    frame = dash.once(settle_s=0.5, timeout_s=5)
    console = Console(record=True, width=160, height=30, file=io.StringIO(), color_system=None)
    console.print(frame)
    text = console.export_text()
    assert "3 boards (3 online" in text and "Orin Nano" in text
    with Store(tmp_path / "live.sqlite") as store:
        assert set(store.boards()) == {"jet-000", "jet-001", "jet-002"}  # recorded, as collect would


def run_host(*args, timeout=60) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, "-m", "dnnprof.host", *map(str, args)], capture_output=True, text=True,
                          timeout=timeout, env={**os.environ, "COLUMNS": "150", "LINES": "30"})


def test_cli_once_prints_one_frame(mosquitto, msgs, tmp_path):
    publish(mosquitto, retained_fleet(msgs, 2))
    proc = run_host("live", "--once", "--broker", mosquitto, "--db", tmp_path / "s.sqlite", "--board", "jet-001")
    assert proc.returncode == 0, proc.stderr
    assert "jet-001" in proc.stdout and "jet-000" not in proc.stdout


@pytest.mark.parametrize("args, words", [
    (["--sort", "colour"], "--sort 'colour'"), (["--refresh", "0"], "--refresh 0"),
    (["--once"], "--broker"), (["--board", "Bad_Name"], "Bad_Name")])
def test_cli_bad_options_are_one_line_errors(args, words, tmp_path):
    proc = run_host("live", "--db", tmp_path / "s.sqlite", *args)
    assert proc.returncode != 0 and "Traceback" not in proc.stderr
    lines = [line for line in proc.stderr.splitlines() if line.strip()]
    assert len(lines) == 1 and lines[0].startswith("dnnhost: error:") and words in lines[0]


@pytest.mark.skipif(shutil.which("tmux") is None, reason="tmux is not installed")
def test_in_a_real_terminal_with_simulated_boards_then_ctrl_c(mosquitto, msgs, tmp_path):
    publish(mosquitto, retained_fleet(msgs, 4))
    session = f"dnnprof-live-{os.getpid()}"
    command = (f"{sys.executable} -m dnnprof.host live --broker {mosquitto} --db {tmp_path / 's.sqlite'}; "
               "echo EXIT=$?; sleep 30")
    subprocess.run(["tmux", "new-session", "-d", "-s", session, "-x", "140", "-y", "30", command], check=True)
    try:
        def pane() -> str:
            return subprocess.run(["tmux", "capture-pane", "-p", "-t", session], capture_output=True,
                                  text=True).stdout

        deadline = time.monotonic() + 30
        while time.monotonic() < deadline and ("4 boards (4 online" not in pane() or "rejected 0 " in pane()):
            # Telemetry keeps arriving while the dashboard runs, as from live boards.
            publish(mosquitto, [("dnnprof/v1/jet-002/telemetry", schema.encode(telemetry("jet-002", ts=time.time())),
                                 False), GARBAGE])
            time.sleep(0.3)
        screen = pane()
        assert "4 boards (4 online" in screen and "jet-003" in screen
        assert "rejected 0 " not in screen  # the garbage messages, counted
        subprocess.run(["tmux", "send-keys", "-t", session, "C-c"], check=True)
        deadline = time.monotonic() + 15
        while "EXIT=" not in pane() and time.monotonic() < deadline:
            time.sleep(0.2)
        screen = pane()
        assert "EXIT=0" in screen and "Traceback" not in screen
        assert "live: " in screen and "frames" in screen
    finally:
        subprocess.run(["tmux", "kill-session", "-t", session], capture_output=True)


def test_dashboard_with_the_broker_down_shows_a_banner_and_keeps_running(tmp_path):
    import threading

    from dnnprof.host.broker import free_port

    buffer = io.StringIO()
    console = Console(file=buffer, width=120, height=20, force_terminal=True, color_system=None)
    address = f"127.0.0.1:{free_port()}"  # nothing listens there
    dash = live.Dashboard(address, tmp_path / "s.sqlite", console=console, refresh_hz=10)
    stop = threading.Event()
    runner = threading.Thread(target=dash.run, args=(stop, 1.5))
    runner.start()
    runner.join(15)
    assert not runner.is_alive()
    assert f"broker {address} unreachable — retrying" in buffer.getvalue()
    assert dash.frames >= 5  # it kept drawing while the broker was away


def test_failed_points_and_a_cancelled_run_show_in_the_board_row(msgs):
    fleet = fleet_of(msgs, 2)
    assert "failed points" not in draw(fleet)  # no board has one: no column
    fleet.ingest(msgs.failure("resnet50", 8, "timeout", board="jet-001", ts=T0 - 5, precision="fp16"))
    fleet.ingest(msgs.failure("vgg16", 64, "out_of_memory", board="jet-001", ts=T0, precision="fp16"))
    fleet.ingest(schema.RunEvent(board="jet-001", ts=T0, run_id="run-1", seq=9, event="cancelled", points_total=12,
                                 points_done=5))
    text = draw(fleet, width=220)
    assert "failed points" in text.splitlines()[1]  # the table's header
    row = next(line for line in text.splitlines() if line.startswith("jet-001"))
    assert "2 · vgg16 b=64 fp16: out_of_memory" in row
    assert "cancelled at 5/12" in row
    other = next(line for line in text.splitlines() if line.startswith("jet-000"))
    assert "out_of_memory" not in other and "3/12" in other
    assert "failed points 2" in text  # the footer's count
