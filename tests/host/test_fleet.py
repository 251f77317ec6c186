"""Fleet: the live state built from real schema messages — presence, power history, runs, results, warnings."""

from __future__ import annotations

import msgspec
import pytest

from dnnprof.host.fleet import WINDOW_S, Fleet, clocks_locked
from dnnprof.shared import schema

T0 = 1_800_000_000.0


def telemetry(board="jet-1", ts=T0, seq=0, power=(10.0, 12.0), source="ina3221", **kw) -> schema.Telemetry:
    return schema.Telemetry(board=board, ts=ts, seq=seq, t0=ts - 0.1 * (len(power) - 1), dt_s=0.1,
                            power_w=list(power), power_source=source, **kw)


def run(seq, done, *, board="jet-1", run_id="run-1", event="progress", ts=T0) -> schema.RunEvent:
    return schema.RunEvent(board=board, ts=ts, run_id=run_id, seq=seq, event=event, points_total=10,
                           points_done=done, network="resnet18", batch=4, precision="fp16", eta_s=30.0)


class Clock:
    def __init__(self) -> None:
        self.t = 100.0

    def __call__(self) -> float:
        return self.t


def one(fleet: Fleet):
    (board,) = fleet.snapshot()
    return board


def test_status_follows_sessions_and_a_stale_will_is_ignored(msgs):
    fleet = Fleet()
    fleet.ingest(msgs.status("online", 2, board="jet-1"))
    fleet.ingest(msgs.status("lost", 1, board="jet-1"))  # the will of the previous connection, delivered late
    assert one(fleet).state == "online"
    fleet.ingest(msgs.status("lost", 2, board="jet-1"))
    assert one(fleet).state == "lost"


def test_telemetry_gives_power_now_and_a_bounded_history():
    wall = Clock()
    wall.t = T0
    fleet = Fleet(wall=wall)
    fleet.ingest(telemetry(power=(10.0, 12.0), rails_w={"VDD_IN": 11.0}, temperatures_c={"cpu": 50.0, "gpu": 61.5}))
    b = one(fleet)
    assert b.power_w == 11.0 and b.rails_w == {"VDD_IN": 11.0}
    assert b.temperature_c == 61.5
    values = b.sparkline_values(T0, 20)
    assert values[-1] == pytest.approx(11.0) and values[0] is None
    # A minute later the old samples have left the window.
    wall.t = T0 + WINDOW_S + 5
    fleet.ingest(telemetry(ts=T0 + WINDOW_S + 5, power=(20.0,)))
    b = one(fleet)
    assert all(second >= T0 for second in b.seconds)
    assert b.sparkline_values(T0 + WINDOW_S + 5, 20)[-1] == 20.0


def test_many_samples_keep_the_history_small():
    wall = Clock()
    fleet = Fleet(wall=wall)
    for i in range(600):  # a minute at 10 Hz, 10 samples each
        wall.t = T0 + i / 10
        fleet.ingest(telemetry(ts=T0 + i / 10, seq=i, power=[5.0 + j for j in range(10)]))
    assert len(one(fleet).seconds) <= WINDOW_S + 2


def test_a_board_with_a_wrong_clock_still_draws_on_the_hosts_clock():
    wall = Clock()
    wall.t = T0
    fleet = Fleet(wall=wall)
    fleet.ingest(telemetry(ts=T0 - 120, power=(7.0,)))  # the board thinks it is two minutes earlier
    assert one(fleet).sparkline_values(T0, 20)[-1] == 7.0


def test_a_handler_never_sees_non_finite_power():
    bad = b'{"kind":"telemetry","schema":1,"board":"b","ts":1,"seq":0,"t0":1e308,"dt_s":1e308,"power_w":[1]}'
    with pytest.raises(schema.SchemaError):
        schema.decode(bad)
    with pytest.raises(schema.SchemaError):
        schema.decode(bad.replace(b'"t0":1e308,"dt_s":1e308,"power_w":[1]', b'"t0":1,"dt_s":0.1,"power_w":[1e308]'))



def test_no_power_source_is_missing_power_and_a_warning():
    fleet = Fleet()
    fleet.ingest(telemetry(power=(), source=None))
    b = one(fleet)
    assert b.power_w is None  # never 0
    assert b.warnings() == ["no power source"]
    assert b.sparkline_values(T0, 10) == [None] * 10


def test_board_info_alone_says_what_telemetry_will(msgs):
    fleet = Fleet()
    fleet.ingest(msgs.info(board="jet-1", power_source=None))
    assert one(fleet).warnings() == ["no power source"]
    fleet = Fleet()
    fleet.ingest(msgspec.structs.replace(msgs.info(board="jet-1", power_source="estimate"), power_estimated=True))
    assert one(fleet).warnings() == ["estimated"]


def test_warnings_for_estimates_clocks_throttling_and_unstable_latency(msgs):
    fleet = Fleet()
    fleet.ingest(telemetry(estimated=True, clocks="cpu governor powersave", throttle_events=7))
    assert one(fleet).warnings() == ["estimated", "clocks unlocked"]
    fleet.ingest(telemetry(seq=1, estimated=True, clocks="cpu governor powersave", throttle_events=9))
    assert "throttling ×2" in one(fleet).warnings()
    unstable = msgspec.structs.replace(msgs.result("resnet18", 1, 0.01, board="jet-1"), unstable=True)
    fleet.ingest(unstable)
    assert one(fleet).warnings()[-1] == "unstable"


@pytest.mark.parametrize("clocks, locked", [("jetson_clocks on", True), ("jetson_clocks off", False),
                                            ("cpu governor performance", True), ("cpu governor schedutil", False)])
def test_clocks_locked(clocks, locked):
    assert clocks_locked(clocks) is locked


def test_runs_keep_the_latest_event_of_the_latest_run():
    fleet = Fleet()
    fleet.ingest(run(2, 2))
    fleet.ingest(run(1, 1))  # QoS1 may deliver out of order: the older event must not move progress back
    assert one(fleet).run.points_done == 2
    fleet.ingest(run(0, 0, run_id="run-2", ts=T0 + 50, event="started"))
    b = one(fleet)
    assert b.run.run_id == "run-2" and b.run_started == T0 + 50


def test_the_newest_result_is_kept(msgs):
    fleet = Fleet()
    fleet.ingest(msgs.result("resnet50", 1, 0.02, board="jet-1", ts=T0 + 10))
    fleet.ingest(msgs.result("resnet18", 1, 0.01, board="jet-1", ts=T0))
    assert one(fleet).result.network == "resnet50"


def test_rates_counts_rejections_and_the_board_filter(msgs):
    clock = Clock()
    fleet = Fleet(boards={"jet-1"}, clock=clock)
    for i in range(50):
        fleet.ingest(telemetry(seq=i))
        fleet.ingest(telemetry(board="jet-2", seq=i))
    fleet.rejected("dnnprof/v1/jet-3/telemetry", "expected object")
    rates = fleet.rates()
    assert rates["telemetry"] == rates["all"] == pytest.approx(100 / 5.0)
    assert [b.board for b in fleet.snapshot()] == ["jet-1"]  # counted, not shown
    assert fleet.counts["rejected"] == 1 and "jet-3" in fleet.last_rejection
    clock.t += 10
    assert fleet.rates()["all"] == 0


def test_failed_points_are_counted_once_each_and_the_newest_kept(msgs):
    fleet = Fleet(boards={"jet-1"})
    oom = msgs.failure("vgg16", 64, board="jet-1", ts=T0 + 10)
    fleet.ingest(oom)
    fleet.ingest(oom)  # a re-delivery (live sees duplicates too): not a second failure
    fleet.ingest(msgs.failure("resnet50", 8, "timeout", board="jet-1", ts=T0))  # older, arrived later
    fleet.ingest(msgs.failure("alexnet", 1, board="jet-2", ts=T0))  # another board: counted, not shown
    b = one(fleet)
    assert b.failures == 2 and b.failure == oom
    assert b.result is None  # a failed point is never the last result
    assert fleet.counts["failure"] == 4
