"""The measurement procedure on real ONNX Runtime runs, with short windows."""

import numpy as np
import pytest
from hypothesis import given
from hypothesis import strategies as st

from dnnprof.agent import profiler
from dnnprof.agent.backends import get_backend
from dnnprof.agent.models import onnxfile
from dnnprof.agent.power.estimate import EstimateSource
from dnnprof.agent.power.sampler import Sampler, WindowEnergy

SHORT = profiler.Settings(warmup_s=0.05, warmup_iterations=2, window_s=0.2, min_iterations=5)


@pytest.fixture(scope="module")
def runner(model_path):
    runner = get_backend("onnxruntime").prepare(onnxfile.load(model_path), 2, "fp32")
    yield runner
    runner.close()


def assert_ordered(latency):
    assert 0 < latency.min <= latency.p50 <= latency.p90 <= latency.p95 <= latency.p99 <= latency.max
    assert latency.min <= latency.mean <= latency.max
    assert latency.stdev >= 0


def test_measure_without_power(runner):
    m = profiler.measure(runner, 2, SHORT)
    assert m.batch == 2 and m.energy is None
    assert m.window_s >= SHORT.window_s and m.t1 > m.t0
    assert m.warmup_s >= SHORT.warmup_s and m.warmup_iterations >= SHORT.warmup_iterations
    assert len(m.latencies_s) >= SHORT.min_iterations
    assert all(x > 0 for x in m.latencies_s)
    assert sum(m.latencies_s) == pytest.approx(m.window_s, rel=1e-9)  # back-to-back: latencies tile the window
    assert m.images == 2 * len(m.latencies_s)
    assert m.throughput_ips == pytest.approx(m.images / m.window_s, rel=1e-12)
    assert m.power_w is None and m.energy_per_image_j is None  # not measured: None, never 0
    latency = m.latency_ms()
    assert_ordered(latency)
    assert latency.max == pytest.approx(max(m.latencies_s) * 1e3)
    assert latency.min == pytest.approx(min(m.latencies_s) * 1e3)


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
    assert m.energy.samples >= 1
    assert_ordered(m.latency_ms())


def test_min_iterations_beats_a_tiny_window(runner):
    m = profiler.measure(runner, 2, profiler.Settings(warmup_s=0, warmup_iterations=0, window_s=1e-9,
                                                      min_iterations=3))
    assert len(m.latencies_s) == 3
    assert m.warmup_iterations == 0


def test_single_batch_statistics(runner):
    m = profiler.measure(runner, 2, profiler.Settings(warmup_s=0, warmup_iterations=0, window_s=1e-9,
                                                      min_iterations=1))
    assert len(m.latencies_s) == 1
    latency = m.latency_ms()
    assert latency.stdev == 0
    assert latency.min == latency.p50 == latency.p90 == latency.p95 == latency.p99 == latency.max


@pytest.mark.parametrize("value", [0.1, 0.3, 1.1, 7.7, 12.345678, 33.3])
@pytest.mark.parametrize("n", [1, 2, 3, 7, 100])
def test_quantiles_of_equal_latencies_equal_the_latency(value, n):
    # equal latencies must give exactly that latency at every quantile, never one ulp above the max
    m = profiler.Measurement(batch=1, warmup_s=0, warmup_iterations=0, t0=0.0, t1=value * n / 1e3,
                             latencies_s=[value / 1e3] * n, energy=None)
    latency = m.latency_ms()
    assert latency.min == latency.p50 == latency.p90 == latency.p95 == latency.p99 == latency.max


def test_quantiles_interpolate_like_numpy():
    ms = [5.0, 1.0, 4.0, 2.0, 3.0, 10.0, 6.0]
    m = profiler.Measurement(batch=1, warmup_s=0, warmup_iterations=0, t0=0.0, t1=sum(ms) / 1e3,
                             latencies_s=[x / 1e3 for x in ms], energy=None)
    latency = m.latency_ms()
    for field, q in (("p50", 50), ("p90", 90), ("p95", 95), ("p99", 99)):
        assert getattr(latency, field) == pytest.approx(np.percentile(ms, q), rel=1e-12)
    assert_ordered(latency)


@given(ms=st.lists(st.sampled_from([0.5, 1.0, 1.1, 2.25, 7.7]) | st.floats(min_value=1e-3, max_value=1e4),
                  min_size=1, max_size=50))
def test_statistics_are_ordered_for_any_latencies(ms):
    m = profiler.Measurement(batch=1, warmup_s=0, warmup_iterations=0, t0=0.0, t1=sum(ms) / 1e3,
                             latencies_s=[x / 1e3 for x in ms], energy=None)
    latency = m.latency_ms()
    assert latency.min <= latency.p50 <= latency.p90 <= latency.p95 <= latency.p99 <= latency.max
    scaled = [x / 1e3 * 1e3 for x in ms]
    for field, q in (("p50", 50), ("p90", 90), ("p95", 95), ("p99", 99)):
        assert getattr(latency, field) == pytest.approx(np.percentile(scaled, q), rel=1e-9)


@pytest.mark.parametrize(
    "kwargs",
    [{"warmup_s": -1}, {"window_s": 0}, {"window_s": -0.1}, {"min_iterations": 0}, {"warmup_iterations": -1}],
)
def test_settings_reject_nonsense(kwargs):
    with pytest.raises(ValueError):
        profiler.Settings(**kwargs)
