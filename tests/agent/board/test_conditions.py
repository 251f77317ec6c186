"""Run-condition readers, checked against recorded sysfs/procfs trees under tests/data/conditions, and for types
only against this machine's real root."""

from __future__ import annotations

import os
import shutil
import time
from pathlib import Path

import pytest

from dnnprof.agent.board.conditions import (
    Snapshot,
    cpu_governor,
    oc_event_counts,
    process_peak_rss_bytes,
    process_rss_bytes,
    snapshot,
    system_used_bytes,
    temperatures_c,
    thermal_throttling,
    throttle_cooling_devices,
    throttle_count,
    throttle_reasons,
    throttle_trips,
)

DATA = Path(__file__).resolve().parents[2] / "data" / "conditions"
X86 = DATA / "x86-desktop"
JETSON = DATA / "jetson-orin-nano"
MIXED = DATA / "mixed-governors"
ODD = DATA / "odd-zones"
ORIN_NANO_JP6 = DATA.parent / "jetson" / "orin-nano-jp6"  # recorded board tree with a soctherm_oc hwmon
AGX_ORIN_JP6 = DATA.parent / "jetson" / "agx-orin-jp6"  # ... and thermal zones with trip points
KB = 1024

# -- x86 desktop --------------------------------------------------------------------------------------


def test_x86_temperatures():
    assert temperatures_c(X86) == {"acpitz": 27.8, "x86_pkg_temp": 45.0}
    assert all(type(v) is float for v in temperatures_c(X86).values())


def test_x86_throttle_count_sums_core_and_package_counts_only():
    # core 3+0+5+0, package 12 on each of 4 CPUs; the *_time_ms files are not counts
    assert throttle_count(X86) == 8 + 48


def test_x86_governor():
    assert cpu_governor(X86) == "powersave"


def test_x86_process_memory():
    assert process_rss_bytes(root=X86) == 409600 * KB
    assert process_peak_rss_bytes(root=X86) == 524288 * KB
    assert process_rss_bytes(4242, root=X86) == 1048576 * KB
    assert process_rss_bytes("4242", root=X86) == 1048576 * KB
    assert process_peak_rss_bytes(4242, root=X86) == 1310720 * KB


def test_x86_kernel_thread_and_missing_process_have_no_rss():
    assert process_rss_bytes(2, root=X86) is None
    assert process_peak_rss_bytes(2, root=X86) is None
    assert process_rss_bytes(999999, root=X86) is None


def test_x86_system_used():
    assert system_used_bytes(X86) == (16303956 - 12419744) * KB


def test_x86_snapshot():
    assert snapshot(X86) == Snapshot(
        temperatures_c={"acpitz": 27.8, "x86_pkg_temp": 45.0},
        throttle_count=56,
        process_rss_bytes=409600 * KB,
        system_used_bytes=(16303956 - 12419744) * KB,
    )


def test_root_may_be_a_string():
    assert snapshot(str(X86)) == snapshot(X86)
    assert cpu_governor(str(X86)) == "powersave"


# -- Jetson Orin Nano -----------------------------------------------------------------------------------


def test_jetson_temperatures_skip_unreadable_zones():
    # cv0 has a temp that cannot be read (a directory), cv1 an empty one (ENODATA), cv2 none at all
    assert temperatures_c(JETSON) == {
        "cpu-thermal": 48.375,
        "gpu-thermal": 46.75,
        "soc0-thermal": 45.968,
        "soc1-thermal": 46.281,
        "soc2-thermal": 44.937,
        "tj-thermal": 48.375,
    }


def test_jetson_without_the_oc_event_driver_has_no_throttle_counter():
    assert throttle_count(JETSON) is None
    assert oc_event_counts(JETSON) == {}


def test_jetson_governor():
    assert cpu_governor(JETSON) == "schedutil"


def test_jetson_memory():
    assert process_rss_bytes(root=JETSON) == 1336800 * KB
    assert process_peak_rss_bytes(root=JETSON) == 1468932 * KB
    assert system_used_bytes(JETSON) == (7620412 - 5493128) * KB


def test_jetson_snapshot():
    snap = snapshot(JETSON)
    assert snap.temperatures_c["tj-thermal"] == 48.375
    assert len(snap.temperatures_c) == 6
    assert snap.throttle_count is None
    assert snap.process_rss_bytes == 1336800 * KB
    assert snap.system_used_bytes == (7620412 - 5493128) * KB


# -- mixed governors (one CPU offline) -----------------------------------------------------------------


def test_mixed_governors_sorted_unique_and_policy_dirs_ignored():
    assert cpu_governor(MIXED) == "mixed(performance,powersave,schedutil)"


def test_mixed_other_readers():
    assert temperatures_c(MIXED) == {"x86_pkg_temp": 61.0}
    assert throttle_count(MIXED) == 0  # reported, and zero: not None
    assert process_rss_bytes(root=MIXED) is None  # no proc/self in this tree
    assert process_peak_rss_bytes(root=MIXED) is None
    assert system_used_bytes(MIXED) == (8032124 - 2615732) * KB
    assert snapshot(MIXED) == Snapshot({"x86_pkg_temp": 61.0}, 0, None, (8032124 - 2615732) * KB)


def test_x86_has_no_oc_counters_and_its_throttle_delta_is_named(tmp_path):
    shutil.copytree(X86, tmp_path, dirs_exist_ok=True)
    start = snapshot(tmp_path)
    assert start.oc_events == {} and oc_event_counts(tmp_path) == {}
    assert throttle_reasons(start, snapshot(tmp_path)) == []
    (tmp_path / "sys/devices/system/cpu/cpu2/thermal_throttle/package_throttle_count").write_text("13\n")
    assert throttle_reasons(start, snapshot(tmp_path)) == ["x86_thermal_throttle"]


# -- Jetson soctherm_oc over-current event counters (tests/data/jetson) --------------------------------------------


def test_orin_oc_event_counters_found_by_hwmon_name():
    # hwmon1 is the INA3221 (another name), hwmon3 the soctherm_oc device: oc1..oc3_event_cnt; oc*_throt_en not counts
    assert oc_event_counts(ORIN_NANO_JP6) == {"oc1": 0, "oc2": 2, "oc3": 0}
    assert throttle_count(ORIN_NANO_JP6) == 2  # cumulative since boot: only a difference means anything
    assert snapshot(ORIN_NANO_JP6).oc_events == {"oc1": 0, "oc2": 2, "oc3": 0}
    assert snapshot(ORIN_NANO_JP6).throttle_count == 2
    assert oc_event_counts(AGX_ORIN_JP6) == {"oc1": 0, "oc2": 0, "oc3": 0}


def test_oc_counter_difference_is_throttling(tmp_path):
    root = tmp_path / "board"
    shutil.copytree(ORIN_NANO_JP6, root)
    start = snapshot(root)
    (root / "sys/class/hwmon/hwmon3/oc1_event_cnt").write_text("1\n")  # an under-voltage event
    (root / "sys/class/hwmon/hwmon3/oc3_event_cnt").write_text("4\n")
    end = snapshot(root)
    assert end.throttle_count - start.throttle_count == 5
    assert throttle_reasons(start, end) == ["soctherm_oc1", "soctherm_oc3"]
    assert throttle_reasons(end, start) == []  # counters that went down (a reboot): nothing


def test_xavier_irq_counters_and_garbage(tmp_path):
    hwmon = tmp_path / "sys/class/hwmon"
    (hwmon / "hwmon0").mkdir(parents=True)
    (hwmon / "hwmon0/name").write_text("soctherm_oc\n")
    for n, value in enumerate(["1", "0", "garbage", "", "7"], 1):
        (hwmon / f"hwmon0/oc{n}_irq_cnt").write_text(value + "\n")  # tegra19x_oc_event.c
        (hwmon / f"hwmon0/oc{n}_priority").write_text("3\n")
    (hwmon / "hwmon4").mkdir()
    (hwmon / "hwmon4/name").write_text("pwmfan\n")
    (hwmon / "hwmon4/oc1_event_cnt").write_text("99\n")  # not the soctherm_oc device
    assert oc_event_counts(tmp_path) == {"oc1": 1, "oc2": 0, "oc5": 7}
    assert throttle_count(tmp_path) == 8


# -- thermal trips and cooling devices ---------------------------------------------------------------------------


def test_agx_orin_throttling_trips_and_cooling_devices():
    trips = throttle_trips(AGX_ORIN_JP6)
    # each zone: critical 104.5 (shutdown), passive 99 (sw throttle), active 70 (fan): only the passive one
    assert [(t.zone, t.trip_c, t.kind) for t in trips] == [
        ("cpu-thermal", 99.0, "passive"), ("gpu-thermal", 99.0, "passive"), ("soc0-thermal", 99.0, "passive"),
        ("tj-thermal", 99.0, "passive")]
    # bound to the passive trips; the fan (on tj-thermal's active trip) is not a throttler
    assert [d.name for d in throttle_cooling_devices(AGX_ORIN_JP6)] == [
        "cpufreq-cpu0", "cpufreq-cpu4", "cpufreq-cpu8", "devfreq-17000000.gpu"]
    assert thermal_throttling(trips, throttle_cooling_devices(AGX_ORIN_JP6)) == []


def test_thermal_throttling_fires_at_the_trip(tmp_path):
    root = tmp_path / "board"
    shutil.copytree(AGX_ORIN_JP6, root)
    trips, devices = throttle_trips(root), throttle_cooling_devices(root)
    (root / "sys/class/thermal/thermal_zone1/temp").write_text("99000\n")  # at the trip counts
    (root / "sys/class/thermal/thermal_zone1/cdev0/cur_state").write_text("2\n")
    assert thermal_throttling(trips, devices) == ["cooling:devfreq-17000000.gpu", "thermal_trip:gpu-thermal"]


def test_disabled_trips_and_unbound_cooling_devices_are_not_indicators(tmp_path):
    zone = tmp_path / "sys/class/thermal/thermal_zone0"
    zone.mkdir(parents=True)
    for name, text in {"type": "x86_pkg_temp", "temp": "45000", "trip_point_0_type": "passive",
                       "trip_point_0_temp": "0", "trip_point_1_type": "passive", "trip_point_1_temp": "garbage",
                       "trip_point_2_type": "hot", "trip_point_2_temp": "95000"}.items():
        (zone / name).write_text(text + "\n")
    assert [(t.trip_c, t.kind) for t in throttle_trips(tmp_path)] == [(95.0, "hot")]
    assert throttle_trips(X86) == [] and throttle_cooling_devices(X86) == []  # X86's cooling_device0 is unbound
    assert throttle_trips(ODD) == [] and throttle_cooling_devices(ODD) == []


# -- odd zones: duplicates, garbage, out-of-range values, old kernel -------------------------------------


def test_duplicate_types_are_numbered_in_zone_order_and_garbage_skipped():
    temps = temperatures_c(ODD)
    assert temps == {
        "acpitz-1": 25.0,  # zone 0
        "acpitz-2": 29.8,  # zone 1
        # zone 7 ("acpitz-3") reads "N/A": skipped, but keeps its number so zone 10 does not move
        "acpitz-4": 31.0,  # zone 10 comes after zone 7, not after zone 1
        "iwlwifi_1": -40.0,  # kept as reported
        "INT3400 Thermal": 20.0,
        "B0D4": 104.5,  # kept as reported
        # zone 3 (pch_skylake) is garbage, zone 4 has an empty type, zone 8 no type, cooling_device0 is no zone
    }
    assert list(temps)[:2] == ["acpitz-1", "acpitz-2"]


def test_odd_throttle_counts_skip_garbage_and_unreadable():
    assert throttle_count(ODD) == 7


def test_odd_other_readers():
    assert cpu_governor(ODD) is None
    assert system_used_bytes(ODD) is None  # no MemAvailable before Linux 3.14
    assert process_rss_bytes(root=ODD) is None  # garbled status
    assert process_peak_rss_bytes(root=ODD) is None


def test_duplicate_suffix_in_a_copied_tree(tmp_path):
    # two zones of one type, one of which goes silent: the other keeps its key
    shutil.copytree(X86, tmp_path, dirs_exist_ok=True)
    zones = tmp_path / "sys/class/thermal"
    shutil.copytree(zones / "thermal_zone1", zones / "thermal_zone2")
    (zones / "thermal_zone2/temp").write_text("47000\n")
    assert temperatures_c(tmp_path) == {"acpitz": 27.8, "x86_pkg_temp-1": 45.0, "x86_pkg_temp-2": 47.0}
    (zones / "thermal_zone1/temp").write_text("")
    assert temperatures_c(tmp_path) == {"acpitz": 27.8, "x86_pkg_temp-2": 47.0}


def test_throttle_difference_shows_throttling(tmp_path):
    shutil.copytree(X86, tmp_path, dirs_exist_ok=True)
    before = throttle_count(tmp_path)
    (tmp_path / "sys/devices/system/cpu/cpu1/thermal_throttle/core_throttle_count").write_text("2\n")
    assert throttle_count(tmp_path) - before == 2


# -- nothing there ---------------------------------------------------------------------------------------


@pytest.mark.parametrize("make", [lambda p: p, lambda p: p / "does-not-exist"], ids=["empty", "missing"])
def test_empty_root(tmp_path, make):
    root = make(tmp_path)
    assert temperatures_c(root) == {}
    assert throttle_count(root) is None
    assert cpu_governor(root) is None
    assert process_rss_bytes(root=root) is None
    assert process_peak_rss_bytes(123, root=root) is None
    assert system_used_bytes(root) is None
    assert snapshot(root) == Snapshot({}, None, None, None)
    assert oc_event_counts(root) == {} and throttle_trips(root) == [] and throttle_cooling_devices(root) == []


def test_root_that_is_a_file(tmp_path):
    f = tmp_path / "file"
    f.write_text("x")
    assert snapshot(f) == Snapshot({}, None, None, None)
    assert cpu_governor(f) is None


@pytest.mark.parametrize("pid", [-1, "../etc", "", 1.5, None, True, "self/../1"])
def test_bad_pid_is_a_programming_error(pid):
    with pytest.raises(ValueError):
        process_rss_bytes(pid, root=X86)
    with pytest.raises(ValueError):
        process_peak_rss_bytes(pid, root=X86)


def test_snapshot_is_frozen():
    snap = snapshot(X86)
    with pytest.raises(AttributeError):
        snap.throttle_count = 0  # type: ignore[misc]


# -- this machine: types only ------------------------------------------------------------------------------


def test_real_temperatures_types():
    temps = temperatures_c()
    assert isinstance(temps, dict)
    assert all(isinstance(k, str) and type(v) is float for k, v in temps.items())


def test_real_throttle_count_type():
    assert throttle_count() is None or type(throttle_count()) is int


def test_real_governor_type():
    gov = cpu_governor()
    assert gov is None or (isinstance(gov, str) and gov)


@pytest.mark.skipif(not Path("/proc/self/status").exists(), reason="no procfs")
def test_real_process_memory_types():
    rss, peak = process_rss_bytes(), process_peak_rss_bytes()
    assert type(rss) is int and rss > 0
    assert type(peak) is int and peak >= rss
    assert type(process_rss_bytes(os.getpid())) is int


@pytest.mark.skipif(not Path("/proc/meminfo").exists(), reason="no procfs")
def test_real_system_used_type():
    used = system_used_bytes()
    assert used is None or (type(used) is int and used > 0)


def test_real_snapshot_types_and_cost():
    snap = snapshot()
    assert isinstance(snap, Snapshot)
    assert isinstance(snap.temperatures_c, dict)
    assert snap.throttle_count is None or type(snap.throttle_count) is int
    assert snap.process_rss_bytes is None or type(snap.process_rss_bytes) is int
    assert snap.system_used_bytes is None or type(snap.system_used_bytes) is int
    # well under 1 ms on a normal machine; the bound here is loose so a loaded CI box does not fail it
    costs = []
    for _ in range(21):
        t0 = time.perf_counter()
        snapshot()
        costs.append(time.perf_counter() - t0)
    assert sorted(costs)[len(costs) // 2] < 0.02
