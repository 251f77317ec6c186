"""Actual clock frequencies and the window watcher, on the recorded Jetson trees (tests/data/jetson: formats from the
sources, values constructed), the recorded x86 and Orin Nano condition trees (tests/data/conditions), trees broken in
a temporary copy, and, for types only, this machine."""

from __future__ import annotations

import logging
import math
import shutil
import threading
import time
from pathlib import Path

import msgspec
import pytest

from dnnprof.agent.board import conditions, frequencies
from dnnprof.agent.board.frequencies import (
    FrequencyWatch,
    below_caps,
    cpu_domains,
    cpu_range_name,
    domains,
    emc_domain,
    frequencies_mhz,
    gpu_domains,
)
from dnnprof.shared import schema

DATA = Path(__file__).resolve().parents[2] / "data"
ORIN_NANO = DATA / "jetson" / "orin-nano-jp6"
AGX_ORIN = DATA / "jetson" / "agx-orin-jp6"
NANO = DATA / "jetson" / "nano-jp4"
X86 = DATA / "conditions" / "x86-desktop"
NANO_CONDITIONS = DATA / "conditions" / "jetson-orin-nano"  # per-CPU cpufreq only, no policy directories


def copy(tree: Path, tmp_path: Path) -> Path:
    root = tmp_path / tree.name
    shutil.copytree(tree, root)
    return root


# -- readers on the recorded trees ------------------------------------------------------------------------------


def test_orin_nano_clusters_gpu_and_emc_not_readable():
    assert frequencies_mhz(ORIN_NANO) == {"cpu0-3": 729.6, "cpu4-5": 729.6, "gpu": 306.0}
    found, unreadable = domains(ORIN_NANO)
    assert [d.name for d in found] == ["cpu0-3", "cpu4-5", "gpu"]
    assert found[0].path == ORIN_NANO / "sys/devices/system/cpu/cpufreq/policy0/scaling_cur_freq"
    assert found[2].path == ORIN_NANO / "sys/class/devfreq/17000000.gpu/cur_freq"
    assert unreadable == ["emc"]  # a Jetson's EMC is in debugfs: root only; never reported as 0


def test_agx_orin_three_clusters_pinned_at_the_cap():
    assert frequencies_mhz(AGX_ORIN) == {"cpu0-3": 2201.6, "cpu4-7": 2201.6, "cpu8-11": 2201.6, "gpu": 1300.5}


def test_nano_jp4_without_scaling_cur_freq_has_the_gpu_only():
    assert frequencies_mhz(NANO) == {"gpu": 921.6}  # Hz / 1e6, no float noise
    assert domains(NANO)[1] == ["emc"]


def test_x86_per_cpu_domains_and_no_emc_expected():
    assert frequencies_mhz(X86) == {"cpu0": 800.084, "cpu1": 1201.654, "cpu2": 3600.012, "cpu3": 799.926}
    assert domains(X86)[1] == []  # not a Jetson: no EMC to miss


def test_per_cpu_fallback_without_related_cpus_is_one_domain_per_cpu():
    assert [d.name for d in cpu_domains(NANO_CONDITIONS)] == [f"cpu{i}" for i in range(6)]
    assert gpu_domains(NANO_CONDITIONS) == []


def test_per_cpu_fallback_groups_cpus_sharing_related_cpus(tmp_path):
    root = copy(ORIN_NANO, tmp_path)
    shutil.rmtree(root / "sys/devices/system/cpu/cpufreq")
    found = cpu_domains(root)
    assert [d.name for d in found] == ["cpu0-3", "cpu4-5"]
    assert found[1].path == root / "sys/devices/system/cpu/cpu4/cpufreq/scaling_cur_freq"


def test_policy_without_cpu_lists_is_named_after_the_policy(tmp_path):
    root = copy(ORIN_NANO, tmp_path)
    policy = root / "sys/devices/system/cpu/cpufreq/policy4"
    (policy / "related_cpus").unlink()
    (policy / "affected_cpus").write_text("garbage\n")
    assert [d.name for d in cpu_domains(root)] == ["cpu0-3", "policy4"]
    (policy / "affected_cpus").write_text("4 5\n")  # affected_cpus when related_cpus is missing
    assert [d.name for d in cpu_domains(root)] == ["cpu0-3", "cpu4-5"]


def test_unreadable_policy_is_left_out(tmp_path):
    # a policy whose CPUs are all offline answers EBUSY; an empty or garbled file reads as nothing too
    root = copy(AGX_ORIN, tmp_path)
    (root / "sys/devices/system/cpu/cpufreq/policy4/scaling_cur_freq").write_text("")
    (root / "sys/devices/system/cpu/cpufreq/policy8/scaling_cur_freq").write_text("-1\n")
    assert frequencies_mhz(root) == {"cpu0-3": 2201.6, "gpu": 1300.5}


def test_emc_read_when_debugfs_is_readable(tmp_path):
    root = copy(ORIN_NANO, tmp_path)
    rate = root / "sys/kernel/debug/bpmp/debug/clk/emc/rate"
    rate.parent.mkdir(parents=True)
    rate.write_text("2133000000\n")
    assert frequencies_mhz(root)["emc"] == 2133.0
    assert domains(root)[1] == []
    rate.write_text("not a number\n")
    assert emc_domain(root) is None and domains(root)[1] == ["emc"]


def test_emc_older_kernel_and_thor_files(tmp_path):
    for relative in ("sys/kernel/debug/clk/emc/clk_rate", "sys/class/devfreq/bwmgr/cur_freq"):
        root = tmp_path / relative.replace("/", "_")
        (root / relative).parent.mkdir(parents=True)
        (root / relative).write_text("3199000000\n")
        assert emc_domain(root).read_mhz() == 3199.0


def test_two_gpus_are_named_after_their_devfreq(tmp_path):
    root = copy(ORIN_NANO, tmp_path)
    shutil.copytree(root / "sys/class/devfreq/17000000.gpu", root / "sys/class/devfreq/gpu-gpc-0")
    assert [d.name for d in gpu_domains(root)] == ["gpu:17000000.gpu", "gpu:gpu-gpc-0"]


@pytest.mark.parametrize("cpus, name", [([0, 1, 2, 3], "cpu0-3"), ([4], "cpu4"), ([0, 1, 4], "cpu0-1,4"),
                                        ([8, 9, 10, 11], "cpu8-11"), ([0, 2, 4], "cpu0,2,4")])
def test_cpu_range_names(cpus, name):
    assert cpu_range_name(cpus) == name


@pytest.mark.parametrize("make", [lambda p: p, lambda p: p / "missing"], ids=["empty", "missing"])
def test_nothing_readable(tmp_path, make):
    root = make(tmp_path)
    assert frequencies_mhz(root) == {} and domains(root) == ([], [])
    with FrequencyWatch(root, rate_hz=20) as watch:
        time.sleep(0.05)
    assert watch.summary() == {} and watch.throttle_reasons() == [] and watch.unreadable == []


def test_root_that_is_a_file(tmp_path):
    f = tmp_path / "file"
    f.write_text("x")
    with FrequencyWatch(f) as watch:
        pass
    assert watch.summary() == {} and frequencies_mhz(f) == {}


# -- the watcher ------------------------------------------------------------------------------------------------


def test_summary_follows_a_changing_gpu_clock(tmp_path):
    root = copy(ORIN_NANO, tmp_path)
    cur = root / "sys/class/devfreq/17000000.gpu/cur_freq"
    done = threading.Event()

    def governor():  # what nvhost_podgov does under load: up to the cap, then part way down
        for hz in (624750000, 510000000):
            time.sleep(0.15)
            cur.write_text(f"{hz}\n")
        done.set()

    with FrequencyWatch(root, rate_hz=50) as watch:
        threading.Thread(target=governor, daemon=True).start()
        assert done.wait(5)
        time.sleep(0.1)
    gpu = watch.summary()["gpu"]
    assert isinstance(gpu, schema.FrequencyFigures)
    assert (gpu.min, gpu.max) == (306.0, 624.75)
    assert gpu.min < gpu.mean < gpu.max
    assert gpu.samples >= 5 and gpu.samples == watch.samples
    cpu = watch.summary()["cpu0-3"]
    assert (cpu.min, cpu.mean, cpu.max) == (729.6, 729.6, 729.6)
    assert list(watch.summary()) == ["cpu0-3", "cpu4-5", "gpu"]
    assert watch.unreadable == ["emc"]
    assert not any(t.name == "frequency-watch" for t in threading.enumerate())


def test_a_short_window_still_has_a_first_and_a_last_reading(tmp_path):
    root = copy(ORIN_NANO, tmp_path)
    with FrequencyWatch(root, rate_hz=0.5) as watch:
        (root / "sys/devices/system/cpu/cpufreq/policy4/scaling_cur_freq").write_text("1497600\n")
    summary = watch.summary()
    assert summary["cpu4-5"] == schema.FrequencyFigures(min=729.6, mean=1113.6, max=1497.6, samples=2)
    assert summary["cpu0-3"].samples == 2


def test_sample_from_the_callers_thread_without_a_thread(tmp_path):
    root = copy(AGX_ORIN, tmp_path)
    watch = FrequencyWatch(root, rate_hz=0).start()
    assert watch._thread is None
    cur = root / "sys/class/devfreq/17000000.gpu/cur_freq"
    for hz in (1300500000, 1122000000, 1300500000):
        cur.write_text(f"{hz}\n")
        watch.sample()
    watch.stop()
    watch.stop()  # idempotent: no extra reading
    gpu = watch.summary()["gpu"]
    assert (gpu.min, gpu.max, gpu.samples) == (1122.0, 1300.5, 5)
    assert math.isclose(gpu.mean, (1300.5 * 4 + 1122.0) / 5, abs_tol=1e-3)


def test_summary_goes_into_the_result_schema():
    with FrequencyWatch(AGX_ORIN, rate_hz=0) as watch:
        pass
    conds = schema.Conditions(frequencies_mhz=watch.summary(), frequencies_unreadable=watch.unreadable,
                              throttle_reasons=watch.throttle_reasons())
    assert msgspec.json.decode(msgspec.json.encode(conds), type=schema.Conditions) == conds


@pytest.mark.parametrize("rate", [-1, math.nan, math.inf, 1000, "2"])
def test_bad_rate(rate):
    with pytest.raises(ValueError):
        FrequencyWatch(ORIN_NANO, rate_hz=rate)


def test_cpu_cost_is_tiny(tmp_path):
    with FrequencyWatch(AGX_ORIN, rate_hz=0) as watch:
        for _ in range(200):
            watch.sample()
    assert watch.samples == 202
    assert watch.cpu_s / watch.samples < 0.005  # ~0.1 ms here; the bound is loose for a loaded CI box


def test_unreadable_emc_is_said_once(tmp_path, caplog):
    root = copy(ORIN_NANO, tmp_path)
    with caplog.at_level(logging.INFO, logger=frequencies.__name__):
        for _ in range(3):
            with FrequencyWatch(root, rate_hz=0):
                pass
    said = [r for r in caplog.records if "not readable" in r.getMessage()]
    assert len(said) == 1 and "emc" in said[0].getMessage()


# -- throttling indicators --------------------------------------------------------------------------------------


def test_no_throttling_on_the_recorded_trees():
    for root in (ORIN_NANO, AGX_ORIN, X86):
        with FrequencyWatch(root, rate_hz=0) as watch:
            pass
        assert watch.throttle_reasons() == []  # the AGX Orin's fan spins (cur_state 1): a fan is no throttling


def test_zone_over_its_passive_trip_and_a_busy_cooling_device(tmp_path):
    root = copy(AGX_ORIN, tmp_path)
    thermal = root / "sys/class/thermal"
    watch = FrequencyWatch(root, rate_hz=0).start()
    (thermal / "thermal_zone0/temp").write_text("99500\n")  # cpu-thermal past its 99 C sw-throttle trip
    (thermal / "thermal_zone0/cdev1/cur_state").write_text("3\n")  # cpufreq-cpu4 lowering its cluster's cap
    watch.sample()
    (thermal / "thermal_zone0/temp").write_text("60000\n")  # cooled down again: what fired stays fired
    (thermal / "thermal_zone0/cdev1/cur_state").write_text("0\n")
    (thermal / "thermal_zone3/temp").write_text("80000\n")  # tj past its active (fan) trip only
    watch.stop()
    assert watch.throttle_reasons() == ["cooling:cpufreq-cpu4", "thermal_trip:cpu-thermal"]


def test_oc_counter_rise_between_snapshots_is_a_reason(tmp_path):
    root = copy(ORIN_NANO, tmp_path)
    start = conditions.snapshot(root)
    with FrequencyWatch(root, rate_hz=0) as watch:
        (root / "sys/class/hwmon/hwmon3/oc2_event_cnt").write_text("5\n")
    end = conditions.snapshot(root)
    assert end.throttle_count - start.throttle_count == 3
    assert watch.throttle_reasons(start, end) == ["soctherm_oc2"]
    assert watch.throttle_reasons() == []  # without the snapshots, only what the watcher saw


def test_clock_below_the_locked_cap(tmp_path):
    root = copy(AGX_ORIN, tmp_path)  # jetson_clocks on, MAXN: CPU 2201.6 MHz, GPU 1300.5 MHz
    caps = {"cpu0": 2201.6, "cpu4": 2201.6, "cpu8": 2201.6, "gpu": 1300.5}
    with FrequencyWatch(root, rate_hz=0) as watch:
        (root / "sys/class/devfreq/17000000.gpu/cur_freq").write_text("1122000000\n")
        watch.sample()
        (root / "sys/class/devfreq/17000000.gpu/cur_freq").write_text("1300500000\n")
        (root / "sys/devices/system/cpu/cpufreq/policy8/scaling_cur_freq").write_text("2188800\n")  # within 2 %
    assert watch.throttle_reasons(caps_mhz=caps) == ["below_cap:gpu"]
    assert watch.throttle_reasons(caps_mhz=caps, tolerance=0.001) == ["below_cap:cpu8-11", "below_cap:gpu"]
    assert below_caps(watch.summary(), {"cpu4-7": 2300.0, "gpu": 0}) == ["below_cap:cpu4-7"]  # 0: no cap
    assert below_caps(watch.summary(), {}) == []


# -- this machine: types only ------------------------------------------------------------------------------------


def test_real_machine_types():
    values = frequencies_mhz()
    assert all(isinstance(k, str) and type(v) is float and v >= 0 for k, v in values.items())
    with FrequencyWatch(rate_hz=10) as watch:
        time.sleep(0.05)
    assert all(isinstance(f, schema.FrequencyFigures) for f in watch.summary().values())
    assert all(isinstance(r, str) for r in watch.throttle_reasons())
