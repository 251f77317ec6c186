"""Energy over a window from timestamped samples, checked against traces whose integral is known exactly."""

import math

import pytest
from hypothesis import assume, given
from hypothesis import strategies as st

from dnnprof.agent.energy import WindowNotCovered, counter_energy, trapezoid_energy

# -- trapezoid over instantaneous power ------------------------------------------------------------


def test_trapezoid_constant_power():
    ts = [0.0, 0.1, 0.2, 0.3, 0.4, 0.5]
    assert trapezoid_energy(ts, [5.0] * 6, 0.0, 0.5) == pytest.approx(2.5, rel=1e-12)
    assert trapezoid_energy(ts, [5.0] * 6, 0.1, 0.3) == pytest.approx(1.0, rel=1e-12)


def test_trapezoid_ramp_is_exact():
    # P(t) = 2 + 3t, so E[t0, t1] = 2(t1 - t0) + 1.5(t1^2 - t0^2)
    ts = [0.0, 0.25, 0.5, 1.0, 2.0]
    ps = [2 + 3 * t for t in ts]
    assert trapezoid_energy(ts, ps, 0.0, 2.0) == pytest.approx(2 * 2 + 1.5 * 4, rel=1e-12)
    assert trapezoid_energy(ts, ps, 0.25, 1.0) == pytest.approx(2 * 0.75 + 1.5 * (1 - 0.0625), rel=1e-12)


def test_trapezoid_window_edges_between_samples_are_interpolated():
    ts = [0.0, 1.0, 2.0, 3.0]
    ps = [0.0, 10.0, 20.0, 30.0]  # P = 10 t
    # [0.5, 2.5]: 5 * (2.5^2 - 0.5^2) = 30
    assert trapezoid_energy(ts, ps, 0.5, 2.5) == pytest.approx(30.0, rel=1e-12)


def test_trapezoid_window_shorter_than_the_sample_period():
    ts = [0.0, 1.0]
    ps = [4.0, 8.0]  # P = 4 + 4t
    # [0.2, 0.3] lies between two samples: E = 0.1 * P(0.25) = 0.1 * 5
    assert trapezoid_energy(ts, ps, 0.2, 0.3) == pytest.approx(0.5, rel=1e-12)


def test_trapezoid_step_with_duplicate_timestamp():
    # a step from 2 W to 6 W at t = 1, written as two samples with the same timestamp
    ts = [0.0, 1.0, 1.0, 2.0]
    ps = [2.0, 2.0, 6.0, 6.0]
    assert trapezoid_energy(ts, ps, 0.0, 2.0) == pytest.approx(8.0, rel=1e-12)
    assert trapezoid_energy(ts, ps, 0.5, 1.5) == pytest.approx(1.0 + 3.0, rel=1e-12)
    assert trapezoid_energy(ts, ps, 0.0, 1.0) == pytest.approx(2.0, rel=1e-12)
    assert trapezoid_energy(ts, ps, 1.0, 2.0) == pytest.approx(6.0, rel=1e-12)


def test_trapezoid_step_sampled_at_finite_rate():
    # a sampled step is a ramp between the last low and the first high sample
    ts = [0.0, 1.0, 2.0, 3.0]
    ps = [1.0, 1.0, 3.0, 3.0]
    assert trapezoid_energy(ts, ps, 0.0, 3.0) == pytest.approx(1.0 + 2.0 + 3.0, rel=1e-12)


def test_trapezoid_window_exactly_on_samples_and_empty_window():
    ts = [0.0, 1.0, 2.0]
    ps = [1.0, 3.0, 5.0]
    assert trapezoid_energy(ts, ps, 1.0, 2.0) == pytest.approx(4.0, rel=1e-12)
    assert trapezoid_energy(ts, ps, 2.0, 2.0) == 0.0
    assert trapezoid_energy(ts, ps, 0.0, 0.0) == 0.0


# -- cumulative energy counter ---------------------------------------------------------------------


def test_counter_constant_power():
    ts = [10.0, 10.5, 11.0, 11.5, 12.0]
    counter = [3.0 * (t - 10.0) + 100.0 for t in ts]  # 3 W, counter starting at 100 J
    assert counter_energy(ts, counter, 10.0, 12.0) == pytest.approx(6.0, rel=1e-12)
    assert counter_energy(ts, counter, 10.25, 11.75) == pytest.approx(4.5, rel=1e-12)


def test_counter_step():
    # 2 W until t = 1, then 6 W: the counter is piecewise linear with a knee at a sample
    ts = [0.0, 0.5, 1.0, 1.5, 2.0]
    counter = [0.0, 1.0, 2.0, 5.0, 8.0]
    assert counter_energy(ts, counter, 0.0, 2.0) == pytest.approx(8.0, rel=1e-12)
    assert counter_energy(ts, counter, 0.75, 1.25) == pytest.approx(0.5 + 1.5, rel=1e-12)


def test_counter_edges_between_samples_are_interpolated():
    ts = [0.0, 1.0, 2.0]
    counter = [0.0, 10.0, 30.0]
    # counter(0.5) = 5, counter(1.5) = 20
    assert counter_energy(ts, counter, 0.5, 1.5) == pytest.approx(15.0, rel=1e-12)


def test_counter_window_shorter_than_the_sample_period():
    ts = [0.0, 0.1]
    counter = [0.0, 1.0]  # 10 W
    assert counter_energy(ts, counter, 0.02, 0.03) == pytest.approx(0.1, rel=1e-9)


def test_counter_duplicate_timestamps():
    ts = [0.0, 1.0, 1.0, 2.0]
    counter = [0.0, 4.0, 4.0, 8.0]
    assert counter_energy(ts, counter, 0.0, 2.0) == pytest.approx(8.0, rel=1e-12)
    assert counter_energy(ts, counter, 0.5, 1.5) == pytest.approx(4.0, rel=1e-12)


def test_counter_window_up_to_the_last_sample():
    ts = [0.0, 1.0]
    assert counter_energy(ts, [0.0, 2.0], 0.0, 1.0) == 2.0


# -- errors ----------------------------------------------------------------------------------------

INTEGRATORS = [counter_energy, trapezoid_energy]


@pytest.mark.parametrize("integrate", INTEGRATORS)
@pytest.mark.parametrize(("t0", "t1"), [(-0.1, 1.0), (0.0, 2.1), (-1.0, 3.0), (2.5, 3.0), (-2.0, -1.0)])
def test_window_not_covered(integrate, t0, t1):
    with pytest.raises(WindowNotCovered):
        integrate([0.0, 1.0, 2.0], [0.0, 1.0, 2.0], t0, t1)


@pytest.mark.parametrize("integrate", INTEGRATORS)
@pytest.mark.parametrize(("ts", "ys"), [([], []), ([1.0], [5.0])])
def test_fewer_than_two_samples_do_not_cover_a_window(integrate, ts, ys):
    with pytest.raises(WindowNotCovered):
        integrate(ts, ys, 1.0, 1.0)


@pytest.mark.parametrize("integrate", INTEGRATORS)
def test_decreasing_timestamps_are_a_value_error(integrate):
    with pytest.raises(ValueError) as info:
        integrate([0.0, 2.0, 1.0, 3.0], [0.0, 1.0, 2.0, 3.0], 0.5, 2.5)
    assert not isinstance(info.value, WindowNotCovered)
    assert "decrease" in str(info.value)


@pytest.mark.parametrize("integrate", INTEGRATORS)
def test_window_ending_before_it_starts(integrate):
    with pytest.raises(ValueError) as info:
        integrate([0.0, 1.0, 2.0], [0.0, 1.0, 2.0], 1.5, 0.5)
    assert not isinstance(info.value, WindowNotCovered)


@pytest.mark.parametrize("integrate", INTEGRATORS)
def test_lengths_must_match(integrate):
    with pytest.raises(ValueError):
        integrate([0.0, 1.0, 2.0], [0.0, 1.0], 0.0, 1.0)


def test_window_not_covered_is_a_value_error():
    assert issubclass(WindowNotCovered, ValueError)


# -- properties ------------------------------------------------------------------------------------

timestamps = st.lists(
    st.floats(min_value=0.0, max_value=1e4, allow_nan=False, allow_infinity=False, allow_subnormal=False),
    min_size=2, max_size=60,
).map(sorted)
fraction = st.floats(min_value=0.0, max_value=1.0)


def _window(ts, a, b):
    lo, hi = sorted((a, b))
    t0 = ts[0] + (ts[-1] - ts[0]) * lo
    t1 = min(ts[0] + (ts[-1] - ts[0]) * hi, ts[-1])
    return min(t0, t1), t1


@given(ts=timestamps, a=fraction, b=fraction,
       p0=st.floats(min_value=0.0, max_value=500.0), slope=st.floats(min_value=0.0, max_value=10.0))
def test_trapezoid_is_exact_for_linear_power(ts, a, b, p0, slope):
    t0, t1 = _window(ts, a, b)
    power = [p0 + slope * t for t in ts]
    analytic = (t1 - t0) * (p0 + slope * (t0 + t1) / 2)
    assert math.isclose(trapezoid_energy(ts, power, t0, t1), analytic, rel_tol=1e-9, abs_tol=1e-12)


@given(ts=timestamps, a=fraction, b=fraction, watts=st.floats(min_value=0.0, max_value=500.0),
       start=st.floats(min_value=0.0, max_value=1e6))
def test_counter_is_exact_for_constant_power(ts, a, b, watts, start):
    t0, t1 = _window(ts, a, b)
    counter = [start + watts * (t - ts[0]) for t in ts]
    assume(all(y1 >= y0 for y0, y1 in zip(counter, counter[1:])))
    assert math.isclose(counter_energy(ts, counter, t0, t1), watts * (t1 - t0), rel_tol=1e-6, abs_tol=1e-6)


@given(ts=timestamps, a=fraction, b=fraction, c=fraction,
       power=st.lists(st.floats(min_value=0.0, max_value=500.0), min_size=60, max_size=60))
def test_trapezoid_is_additive_over_adjacent_windows(ts, a, b, c, power):
    t0, t2 = _window(ts, a, c)
    t1 = t0 + (t2 - t0) * b
    ps = power[: len(ts)]
    whole = trapezoid_energy(ts, ps, t0, t2)
    parts = trapezoid_energy(ts, ps, t0, t1) + trapezoid_energy(ts, ps, t1, t2)
    assert whole >= 0
    assert math.isclose(whole, parts, rel_tol=1e-9, abs_tol=1e-6)
