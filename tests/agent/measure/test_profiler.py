"""The measurement procedure: steady warm-up, adaptive window with 95% confidence intervals, idle baseline.

Real ONNX Runtime on a generated model, the real estimate source on this /proc, RaplSource over a recorded powercap
tree moved at a known power, and a runner that sleeps a controlled time per batch for deterministic latency.
"""

import random
import statistics

import msgspec
import numpy as np
import pytest

from dnnprof.agent.backends import DeviceTimes, get_backend
from dnnprof.agent.measure import profiler, stats
from dnnprof.agent.measure.sampler import Sampler, WindowEnergy, clock
from dnnprof.shared import onnxfile
from dnnprof.agent.power.estimate import EstimateSource
from dnnprof.agent.power.rapl import RaplSource
from dnnprof.shared import schema

# Short everything; loose targets so a real ONNX Runtime window converges soon after its minimum.
SHORT = profiler.Settings(warmup_min_s=0.05, warmup_min_iterations=2, warmup_max_s=1.0, window_min_s=0.2,
                          window_max_s=0.6, min_iterations=5, min_power_samples=3, latency_ci=0.2, power_ci=0.5,
                          check_every_s=0.05, idle_s=0.2)
# For the sleeping runner: no warm-up worth the name, checks every 20 ms, no batch count for the tail (its own tests
# below set one).
QUICK = profiler.Settings(warmup_min_s=0.0, warmup_min_iterations=1, warmup_max_s=0.0, window_min_s=0.2,
                          window_max_s=2.0, min_iterations=5, min_power_samples=0, latency_ci=0.05, power_ci=1.0,
                          check_every_s=0.02, tail_batches=1)
PERCENTS = (50, 90, 95, 99)


def settings(base: profiler.Settings = QUICK, **changes) -> profiler.Settings:
    return profiler.Settings(**{**{f: getattr(base, f) for f in profiler.Settings.__dataclass_fields__}, **changes})


def steady(seconds: float = 0.003):
    return lambda n: seconds


def noisy(lo: float = 0.0005, hi: float = 0.006, seed: int = 1):
    rng = random.Random(seed)
    return lambda n: rng.uniform(lo, hi)


def measurement(ms: list[float], **kw) -> profiler.Measurement:
    """A Measurement of back-to-back batches of ``ms`` milliseconds (the window is their sum)."""
    return profiler.Measurement(batch=kw.pop("batch", 1), warmup_s=0.0, warmup_iterations=0, warmup_steady=True,
                                t0=0.0, t1=sum(ms) / 1e3, latencies_s=[x / 1e3 for x in ms],
                                stop=kw.pop("stop", "converged"), **kw)


@pytest.fixture(scope="module")
def runner(model_path):
    runner = get_backend("onnxruntime").prepare(onnxfile.load(model_path), 2, "fp32")
    yield runner
    runner.close()


def assert_ordered(latency):
    assert 0 <= latency.min <= latency.p50 <= latency.p90 <= latency.p95 <= latency.p99 <= latency.max
    assert latency.min <= latency.mean * (1 + 1e-12) and latency.mean <= latency.max * (1 + 1e-12)
    assert latency.stdev >= 0


def assert_window_bounds(m: profiler.Measurement, s: profiler.Settings):
    assert len(m.latencies_s) >= s.min_iterations
    assert m.window_s >= s.window_min_s
    assert m.stop in ("converged", "max_time")


# --- ONNX Runtime, end to end through profiler.measure -------------------------------------------------------------


def test_measure_without_power(runner):
    m = profiler.measure(runner, 2, SHORT)
    assert m.batch == 2 and m.energy is None and m.power_series_w == []
    assert_window_bounds(m, SHORT)
    assert m.t1 > m.t0 and m.window_s <= SHORT.window_max_s + SHORT.check_every_s + 0.1
    assert m.warmup_s >= SHORT.warmup_min_s and m.warmup_iterations >= SHORT.warmup_min_iterations
    assert m.warmup_s <= SHORT.warmup_max_s + 0.1
    assert all(x > 0 for x in m.latencies_s)
    # Back to back: the batches fill the window but for the loop's own time between them (and checks).
    assert 0.95 * m.window_s <= sum(m.latencies_s) <= m.window_s
    assert m.images == 2 * len(m.latencies_s)
    assert m.throughput_ips == pytest.approx(m.images / m.window_s, rel=1e-12)
    assert m.power_w is None and m.energy_per_image_j is None  # not measured: None, never 0
    assert m.device_timing() is None  # the CPU has no device events
    latency = m.latency_ms
    assert_ordered(latency)
    assert latency.max == pytest.approx(max(m.latencies_s) * 1e3)
    assert latency.min == pytest.approx(min(m.latencies_s) * 1e3)
    c = m.confidence()
    assert c.power_w is None and c.power_relative is None and c.stop == m.stop
    if m.stop == "converged":
        assert c.latency_relative <= SHORT.latency_ci


def test_measure_with_the_estimate_source(runner):
    source = EstimateSource()
    with Sampler(source) as sampler:
        m = profiler.measure(runner, 2, SHORT, sampler)
    assert isinstance(m.energy, WindowEnergy)
    assert sampler.ts[0] < m.t0 and sampler.ts[-1] > m.t1  # the trace covers the window
    assert m.energy.energy_j > 0  # inference kept the CPUs busy
    assert m.power_w == pytest.approx(m.energy.energy_j / m.window_s)
    assert 0 < m.power_w <= source.tdp_w * 1.5
    assert m.energy_per_image_j == pytest.approx(m.energy.energy_j / m.images)
    assert m.energy.samples >= m.energy.unique_samples >= 1
    assert m.power_series_w == sampler.power_series(m.t0, m.t1)
    if m.stop == "converged":
        assert len(m.power_series_w) >= SHORT.min_power_samples
    assert_ordered(m.latency_ms)
    assert m.confidence().power_w is not None


def test_min_iterations_beats_a_tiny_window(runner):
    s = profiler.Settings(warmup_min_s=0, warmup_max_s=0, window_min_s=1e-9, min_iterations=3, latency_ci=1e9,
                          tail_batches=1)
    m = profiler.measure(runner, 2, s)
    assert len(m.latencies_s) == 3 and m.stop == "converged"
    assert m.warmup_iterations == 1 and m.warmup_steady is False  # a zero warm-up limit still runs one batch


def test_single_batch_statistics(runner):
    # One batch has no confidence interval: only the time limit can end such a window.
    s = profiler.Settings(warmup_min_s=0, warmup_max_s=0, window_min_s=1e-9, window_max_s=1e-9, min_iterations=1)
    m = profiler.measure(runner, 2, s)
    assert len(m.latencies_s) == 1 and m.stop == "max_time"
    latency = m.latency_ms
    assert latency.stdev == 0
    assert latency.min == latency.p50 == latency.p90 == latency.p95 == latency.p99 == latency.max
    assert m.latency_cov == 0.0
    c = m.confidence()
    assert c.latency_ms_mean == 1e300 and c.latency_relative == 1e300  # "not converged", still valid JSON
    assert msgspec.json.decode(msgspec.json.encode(c), type=schema.Confidence) == c


# --- Warm-up ------------------------------------------------------------------------------------------------------


def test_warm_up_is_steady_for_a_constant_latency_after_its_minimum_time(sleep_runner):
    s = settings(warmup_min_s=0.3, warmup_min_iterations=5, warmup_max_s=5.0)
    start = clock()
    seconds, batches, is_steady = profiler.warm_up(sleep_runner(steady()), s)
    assert is_steady is True
    assert s.warmup_min_s <= seconds <= clock() - start
    assert batches >= s.warmup_min_iterations
    assert seconds < 1.0  # steady well before the limit


def test_warm_up_is_steady_only_after_its_minimum_batches(sleep_runner):
    r = sleep_runner(steady(0.001))
    seconds, batches, is_steady = profiler.warm_up(r, settings(warmup_min_s=0.0, warmup_min_iterations=300,
                                                               warmup_max_s=5.0))
    assert is_steady is True and batches >= 300 and r.calls == batches
    assert seconds < 3.0


def test_warm_up_gives_up_on_a_drifting_latency(sleep_runner):
    r = sleep_runner(lambda n: 0.0002 * 1.2**n)  # 20% slower every batch: never steady
    s = settings(warmup_min_s=0.0, warmup_min_iterations=1, warmup_max_s=0.3)
    seconds, batches, is_steady = profiler.warm_up(r, s)
    assert is_steady is False
    assert s.warmup_max_s <= seconds < s.warmup_max_s * 1.2 + 0.1  # stops at the limit (plus the batch running)
    assert batches == r.calls


def test_a_fixed_length_warm_up_of_a_constant_latency_is_steady(sleep_runner):
    s = settings(warmup_min_s=0.3, warmup_min_iterations=5, warmup_max_s=0.3)
    assert profiler.warm_up(sleep_runner(steady()), s)[2] is True


def test_measure_reports_the_warm_up(sleep_runner):
    r = sleep_runner(steady())
    m = profiler.measure(r, 1, settings(warmup_min_s=0.2, warmup_min_iterations=5, warmup_max_s=2.0,
                                        window_min_s=0.05))
    assert m.warmup_steady is True and 0.2 <= m.warmup_s < 1.0 and m.warmup_iterations >= 5
    assert m.warmup_iterations + len(m.latencies_s) == r.calls  # warm-up batches are not in the window


# --- The adaptive window ------------------------------------------------------------------------------------------


def test_steady_window_converges_soon_after_its_minimum(sleep_runner):
    s = settings(window_min_s=0.3, latency_ci=0.25, min_iterations=5)  # loose enough for a loaded machine's sleeps
    m = profiler.measure(sleep_runner(steady()), 1, s)
    assert m.stop == "converged"
    assert_window_bounds(m, s)
    assert m.window_s < s.window_min_s + 0.05  # the first check at the minimum already passes
    assert m.confidence().latency_relative <= s.latency_ci
    assert m.confidence().stop == "converged"


def test_noisy_window_stops_at_its_maximum(sleep_runner):
    s = settings(window_min_s=0.2, window_max_s=0.5, latency_ci=1e-4, check_every_s=0.02)
    m = profiler.measure(sleep_runner(noisy()), 1, s)
    assert m.stop == "max_time"
    assert_window_bounds(m, s)
    assert s.window_max_s <= m.window_s <= s.window_max_s + s.check_every_s + max(m.latencies_s) + 0.02
    assert m.latency_cov > 0.3
    assert m.confidence().latency_relative > s.latency_ci and m.confidence().stop == "max_time"


def test_noisy_window_never_runs_past_its_maximum_by_more_than_a_batch(sleep_runner):
    s = settings(window_min_s=0.2, window_max_s=0.3, latency_ci=1e-4, check_every_s=0.25)
    m = profiler.measure(sleep_runner(noisy()), 1, s)
    assert m.stop == "max_time"
    assert m.window_s <= s.window_max_s + max(m.latencies_s) + 0.02


def test_window_never_has_fewer_than_min_iterations(sleep_runner):
    s = settings(window_min_s=0.05, min_iterations=60, latency_ci=1.0, window_max_s=0.1)
    m = profiler.measure(sleep_runner(steady()), 1, s)
    assert len(m.latencies_s) == 60  # past the minimum time and the maximum, the count still rules
    assert m.window_s > s.window_max_s
    assert m.stop == "converged"


def test_window_never_shorter_than_its_minimum_however_loose_the_target(sleep_runner):
    s = settings(window_min_s=0.25, min_iterations=1, latency_ci=1e9, power_ci=1e9)
    m = profiler.measure(sleep_runner(steady(0.001)), 1, s)
    assert m.stop == "converged" and m.window_s >= s.window_min_s
    assert 0.95 * m.window_s <= sum(m.latencies_s) <= m.window_s


def test_window_waits_for_min_power_samples(sleep_runner, powercap):
    writer = powercap({"intel-rapl:0": 3.0, "intel-rapl:1": 1.0})
    source = RaplSource(root=writer.root)  # 100 Hz
    fast = settings(window_min_s=0.1, latency_ci=0.5, power_ci=1.0, min_power_samples=1)
    with Sampler(source) as sampler:
        quick = profiler.measure(sleep_runner(steady()), 1, fast, sampler)
    s = settings(fast, min_power_samples=40)
    with Sampler(source) as sampler:
        m = profiler.measure(sleep_runner(steady()), 1, s, sampler)
    assert quick.stop == m.stop == "converged"
    assert quick.window_s < 0.2  # with one power reading enough, the window ends at its minimum ...
    assert len(m.power_series_w) >= s.min_power_samples  # ... with 40 it waits for them: ~0.4 s at 100 Hz
    assert m.window_s >= 0.35
    assert m.energy.samples >= m.energy.unique_samples > s.min_power_samples
    # the power is the writer's 4 W (edges are at most a couple of counter updates off)
    assert m.power_w == pytest.approx(writer.total_w, rel=0.03)
    assert m.energy.rails_j.keys() == {"package-0", "package-1"}
    assert m.energy.power_w(m.window_s)["package-0"] == pytest.approx(3.0, rel=0.03)
    assert statistics.median(m.power_series_w) == pytest.approx(writer.total_w, rel=0.1)
    c = m.confidence()
    assert c.power_w == pytest.approx(stats.half_width(m.power_series_w), rel=1e-12)
    assert c.power_relative == pytest.approx(c.power_w / m.power_w, rel=1e-12)
    assert c.power_relative <= s.power_ci


def test_convergence_checks_do_not_eat_the_window(tmp_path, make_onnx):
    model = onnxfile.load(make_onnx(tmp_path / "relu.onnx", op="Relu"))
    fast = get_backend("onnxruntime", threads=1).prepare(model, 1, "fp32")
    s = profiler.Settings(warmup_min_s=0.05, warmup_max_s=0.5, window_min_s=0.3, window_max_s=1.0,
                          latency_ci=1e-6, check_every_s=0.05)
    m = profiler.measure(fast, 1, s)
    fast.close()
    # The window's time outside the backend's calls is the loop plus the checks: about 5% for a 4 µs model here.
    # Checks that grew with the window (a stdev over every batch so far) once took half of it. Scheduler noise
    # hits inside and outside alike, so the share holds on a busy machine too.
    outside = 1 - sum(m.latencies_s) / m.window_s
    assert outside < 0.3


def test_device_times_are_summarised(sleep_runner):
    times = DeviceTimes(compute_ms=2.5, h2d_ms=None, d2h_ms=0.25)
    m = profiler.measure(sleep_runner(steady(), times=times), 1, settings(window_min_s=0.05))
    timing = m.device_timing()
    assert len(m.device_times) == len(m.latencies_s)
    assert timing.compute_ms.min == timing.compute_ms.max == pytest.approx(2.5)
    assert timing.d2h_ms.p50 == pytest.approx(0.25) and timing.h2d_ms is None


# --- Measurement statistics --------------------------------------------------------------------------------------


def test_latency_cov():
    ms = [2.0, 4.0, 4.0, 4.0, 5.0, 5.0, 7.0, 9.0]
    assert measurement(ms).latency_cov == pytest.approx(np.std(ms, ddof=1) / np.mean(ms), rel=1e-12)
    assert measurement([3.0] * 5).latency_cov == 0.0
    assert measurement([3.0]).latency_cov == 0.0


def test_confidence_fields():
    ms = [2.0, 2.2, 1.9, 2.1, 2.05, 1.95]
    powers = [4.0, 4.2, 3.9, 4.1]
    window = sum(ms) / 1e3
    energy = WindowEnergy(energy_j=4.0 * window, rails_j={"cpu": 4.0 * window}, samples=5, unique_samples=5,
                          rate_hz=100.0)
    c = measurement(ms, energy=energy, power_series_w=powers, stop="max_time").confidence()
    lat = stats.half_width([x / 1e3 for x in ms]) * 1e3
    assert c.level == 0.95 and c.stop == "max_time"
    assert c.latency_ms_mean == pytest.approx(lat, rel=1e-9)
    assert c.latency_relative == pytest.approx(lat / statistics.fmean(ms), rel=1e-9)
    assert c.power_w == pytest.approx(stats.half_width(powers), rel=1e-12)
    assert c.power_relative == pytest.approx(stats.half_width(powers) / 4.0, rel=1e-9)
    without = measurement(ms).confidence()
    assert without.power_w is None and without.power_relative is None and without.stop == "converged"
    assert without.latency_ms_mean == pytest.approx(c.latency_ms_mean)


def test_measurement_energy_figures():
    energy = WindowEnergy(energy_j=0.5, rails_j={"a": 0.3, "b": 0.2}, samples=10, unique_samples=9, rate_hz=100.0)
    m = measurement([10.0] * 25, batch=4, energy=energy)  # 0.25 s, 100 images
    assert m.images == 100 and m.window_s == pytest.approx(0.25)
    assert m.throughput_ips == pytest.approx(400.0)
    assert m.power_w == pytest.approx(2.0) and m.energy_per_image_j == pytest.approx(0.005)
    assert energy.power_w(m.window_s) == pytest.approx({"a": 1.2, "b": 0.8})


# --- Idle baseline ------------------------------------------------------------------------------------------------


def test_measure_idle_gives_the_constant_power(powercap):
    writer = powercap({"intel-rapl:0": 3.0, "intel-rapl:1": 1.5})
    source = RaplSource(root=writer.root)
    before = clock()
    # a second, so that the counter's millisecond of staleness at either edge stays well inside 2%
    idle = profiler.measure_idle(source, 1.0, key="performance")
    assert idle.power_w == pytest.approx(4.5, rel=0.02)
    assert idle.rails_w == pytest.approx({"package-0": 3.0, "package-1": 1.5}, rel=0.02)
    assert idle.duration_s == pytest.approx(1.0, abs=0.05) and idle.duration_s >= 1.0
    assert idle.samples >= 50  # 100 Hz for a second, give or take a loaded machine
    assert before < idle.t_end <= clock() and idle.key == "performance"


def test_measure_idle_with_the_estimate_source():
    source = EstimateSource()
    idle = profiler.measure_idle(source, 0.2)
    assert 0 <= idle.power_w <= source.tdp_w * 1.5  # sleeping: somewhere between nothing and everything busy
    assert idle.rails_w.keys() == {"cpu"} and idle.samples >= 1


# --- Settings -----------------------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    "kwargs",
    [{"warmup_min_s": -1}, {"warmup_min_s": 2.0, "warmup_max_s": 1.0}, {"window_min_s": 0},
     {"window_min_s": -0.1}, {"window_min_s": 2.0, "window_max_s": 1.0}, {"min_iterations": 0},
     {"latency_ci": 0}, {"power_ci": -0.1}, {"idle_s": -1}],
)
def test_settings_reject_nonsense(kwargs):
    with pytest.raises(ValueError):
        profiler.Settings(**kwargs)


def test_settings_reject_a_negative_warm_up_count():
    with pytest.raises(ValueError):
        profiler.Settings(warmup_min_iterations=-1)


def test_settings_defaults_are_consistent():
    s = profiler.Settings()
    assert s.warmup_min_s <= s.warmup_max_s and s.window_min_s <= s.window_max_s
    assert 0 < s.latency_ci < 1 and 0 < s.power_ci < 1 and s.unstable_cov > 0 and s.idle_s > 0


@pytest.mark.parametrize(("given", "warmup_max", "window_max"), [
    ({}, 10.0, 20.0),
    ({"warmup_min_s": 8.0, "window_min_s": 30.0}, 16.0, 30.0),  # the upper limits follow the lower ones
    ({"warmup_min_s": 1.0, "warmup_max_s": 3.0, "window_min_s": 2.0, "window_max_s": 4.0}, 3.0, 4.0),
])
def test_upper_limits_default_from_the_lower_ones(given, warmup_max, window_max):
    s = profiler.Settings.with_limits(**given)
    assert (s.warmup_max_s, s.window_max_s) == (warmup_max, window_max)


def test_limits_given_below_the_minimum_are_inconsistent():
    with pytest.raises(ValueError, match="window min <= window max"):
        profiler.Settings.with_limits(window_min_s=5.0, window_max_s=1.0)


# -- the tail: p99 rests on 100 batches where the time limit allows ---------------------------------------------------


def test_a_converged_window_goes_on_until_p99_rests_on_100_batches(sleep_runner):
    s = settings(window_min_s=0.02, window_max_s=5.0, tail_batches=100)
    m = profiler.measure(sleep_runner(steady(0.002)), 1, s)
    assert m.stop == "converged" and len(m.latencies_s) >= 100  # converged long before: ~10 batches at 20 ms
    assert m.latency_ms.batches == len(m.latencies_s)
    assert schema.low_confidence(m.latency_ms.batches) == []


def test_a_point_too_slow_for_the_tail_stops_as_before_with_p99_marked_low_confidence(sleep_runner):
    s = settings(window_min_s=0.1, window_max_s=0.4, tail_batches=100)  # 10 ms batches: 40 at most by the deadline
    m = profiler.measure(sleep_runner(steady(0.01)), 1, s)
    assert m.stop == "converged"  # the intervals were tight: only the tail lacks batches
    assert 5 <= len(m.latencies_s) < 40 and m.window_s < 0.3  # not kept to the deadline for batches it cannot get
    assert m.latency_ms.p99 == pytest.approx(max(m.latencies_s) * 1e3, rel=0.05)  # from so few: the maximum
    assert "p99" in schema.low_confidence(m.latency_ms.batches)


def test_the_tail_waits_while_the_deadline_can_bring_its_batches(sleep_runner):
    s = settings(window_min_s=0.1, window_max_s=3.0, tail_batches=100)  # 10 ms batches: 100 reachable in ~1 s
    m = profiler.measure(sleep_runner(steady(0.01)), 1, s)
    assert m.stop == "converged" and 100 <= len(m.latencies_s) < 120


def test_tail_rule_per_percentile():
    assert [schema.tail_batches(p) for p in schema.PERCENTILES] == [2, 10, 20, 100]
    assert schema.low_confidence(1) == ["p50", "p90", "p95", "p99"]
    assert schema.low_confidence(19) == ["p95", "p99"] and schema.low_confidence(99) == ["p99"]
    assert schema.low_confidence(100) == []
    with pytest.raises(ValueError, match="tail_batches"):
        profiler.Settings(tail_batches=0)
