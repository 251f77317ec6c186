"""Percentiles, Student's t and batch-means confidence intervals (agent/measure/stats.py)."""

from __future__ import annotations

import math

import numpy as np
import pytest
from hypothesis import given
from hypothesis import strategies as st

from dnnprof.agent.measure import stats

PERCENTS = (50, 90, 95, 99)


def latency_of(ms: list[float]):
    return stats.latency_stats([x / 1e3 for x in ms])


def assert_ordered(latency):
    assert 0 <= latency.min <= latency.p50 <= latency.p90 <= latency.p95 <= latency.p99 <= latency.max
    assert latency.min <= latency.mean * (1 + 1e-12) and latency.mean <= latency.max * (1 + 1e-12)
    assert latency.stdev >= 0

# --- Statistics ---------------------------------------------------------------------------------------------------

# scipy.stats.t.ppf(0.975, df), for machines without scipy
T975 = {1: 12.706204736, 2: 4.30265273, 5: 2.570581836, 10: 2.228138852, 30: 2.042272456, 31: 2.039513446,
        40: 2.02107539, 60: 2.000297822, 100: 1.983971519, 120: 1.979930405, 200: 1.971896224}


def test_t_quantile_matches_scipy():
    scipy_stats = pytest.importorskip("scipy.stats")
    for df in range(1, 201):
        assert stats.t_quantile_975(df) == pytest.approx(scipy_stats.t.ppf(0.975, df), rel=1e-3), df


@pytest.mark.parametrize("df", sorted(T975))
def test_t_quantile_matches_reference_values(df):
    assert stats.t_quantile_975(df) == pytest.approx(T975[df], rel=1e-3)


def test_t_quantile_falls_towards_the_normal_quantile():
    values = [stats.t_quantile_975(df) for df in range(1, 2000)]
    assert all(b <= a for a, b in zip(values, values[1:]))
    assert values[-1] == pytest.approx(1.959964, rel=1e-3)
    assert stats.t_quantile_975(0) == math.inf


@pytest.mark.parametrize("n", [2, 3, 6, 11, 61, 201])
def test_half_width_against_a_direct_computation(n):
    values = list(np.random.default_rng(n).normal(10.0, 2.0, n))
    if n < 2 * stats.BLOCKS:  # every batch its own block
        expected = T975[n - 1] * np.std(values, ddof=1) / math.sqrt(n)
    else:  # the method of batch means: BLOCKS contiguous blocks of n // BLOCKS values, the remainder left out
        size = n // stats.BLOCKS
        means = np.asarray(values[: size * stats.BLOCKS]).reshape(stats.BLOCKS, size).mean(axis=1)
        expected = stats.t_quantile_975(stats.BLOCKS - 1) * np.std(means, ddof=1) / math.sqrt(stats.BLOCKS)
    assert stats.half_width(values) == pytest.approx(expected, rel=1e-3)


def test_half_width_needs_two_values():
    assert stats.half_width([]) == math.inf and stats.half_width([1.0]) == math.inf
    assert stats.half_width([2.0, 2.0, 2.0]) == 0.0


@given(values=st.lists(st.floats(min_value=0, max_value=1e6), min_size=1, max_size=60),
       percent=st.integers(min_value=0, max_value=100))
def test_percentile_against_numpy(values, percent):
    ordered = sorted(values)
    got = stats.percentile(ordered, percent)
    assert got == pytest.approx(np.percentile(ordered, percent), rel=1e-12, abs=1e-12)
    assert ordered[0] <= got <= ordered[-1]


@pytest.mark.parametrize("value", [0.1, 0.3, 1.1, 7.7, 12.345678, 33.3])
@pytest.mark.parametrize("n", [1, 2, 3, 7, 100])
def test_quantiles_of_equal_latencies_equal_the_latency(value, n):
    # equal latencies must give exactly that latency at every quantile, never one ulp above the max
    latency = latency_of([value] * n)
    assert latency.min == latency.p50 == latency.p90 == latency.p95 == latency.p99 == latency.max


def test_quantiles_interpolate_like_numpy():
    ms = [5.0, 1.0, 4.0, 2.0, 3.0, 10.0, 6.0]
    latency = latency_of(ms)
    for q in PERCENTS:
        assert getattr(latency, f"p{q}") == pytest.approx(np.percentile(ms, q), rel=1e-12)
    assert latency.mean == pytest.approx(np.mean(ms)) and latency.stdev == pytest.approx(np.std(ms, ddof=1))
    assert_ordered(latency)


@given(ms=st.lists(st.sampled_from([0.5, 1.0, 1.1, 2.25, 7.7]) | st.floats(min_value=1e-3, max_value=1e4),
                  min_size=1, max_size=50))
def test_statistics_are_ordered_for_any_latencies(ms):
    latency = stats.latency_stats([x / 1e3 for x in ms])
    assert latency.min <= latency.p50 <= latency.p90 <= latency.p95 <= latency.p99 <= latency.max
    scaled = [x / 1e3 * 1e3 for x in ms]
    for q in PERCENTS:
        assert getattr(latency, f"p{q}") == pytest.approx(np.percentile(scaled, q), rel=1e-9)


def test_batch_means_widen_the_interval_of_correlated_latencies():
    # A slow drift (as from clocks or heat): successive batches are correlated, so per-batch samples would claim a
    # far narrower interval than the data supports; blocks of contiguous batches do not.
    rng = np.random.default_rng(3)
    drift = np.cumsum(rng.normal(0, 0.02, 3000))
    values = list(10.0 + drift + rng.normal(0, 0.1, 3000))
    naive = 1.96 * np.std(values, ddof=1) / math.sqrt(len(values))
    assert stats.half_width(values) > 3 * naive


def test_running_series_matches_the_list_functions_on_any_slice():
    values = list(np.random.default_rng(7).normal(5.0, 1.0, 500))
    series = stats.RunningSeries()
    for v in values:
        series.add(v)
    assert len(series) == 500
    for lo, hi in [(0, 500), (10, 70), (123, 456), (0, 2)]:
        assert series.mean(lo, hi) == pytest.approx(np.mean(values[lo:hi]), rel=1e-12)
        assert series.half_width(lo, hi) == pytest.approx(stats.half_width(values[lo:hi]), rel=1e-9)
    assert math.isnan(series.mean(5, 5)) and series.half_width(5, 6) == math.inf
