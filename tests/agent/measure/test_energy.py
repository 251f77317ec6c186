"""Energy over a window from timestamped samples, checked against traces whose integral is known exactly."""

# Largest relative error hypothesis found against the closed-form energy, with max_examples=2000 per property
# (seed 20240531) instead of the modest counts kept below:
#   constant power, jittered samples        trapezoid 9.6e-16
#   ramp, jittered samples                  trapezoid 5.7e-15        (exact up to rounding, as for any linear P)
#   window inside one sample gap (ramp)     trapezoid 1.0e-14
#   single step, samples around the edge    trapezoid 1.2e-06        counter 6.5e-07 (6.0e-14 with no edge
#                                                                     in the gaps around t0 and t1)
#   square wave, regular grid               trapezoid 2.4e-04        counter 6.1e-05 (2.0e-11 likewise)
#   square wave, jittered +-40 %            trapezoid 2.1e-04        counter 4.7e-05 (1.3e-11 likewise)
#   ramp read 2..6 times per update         with dedupe 1.3e-15;     without dedupe 3.7e-01 (the staircase)

import math
import random
from bisect import bisect_left, bisect_right
from dataclasses import dataclass

import pytest
from hypothesis import assume, given, settings
from hypothesis import strategies as st

from dnnprof.agent.measure.energy import WindowNotCovered, counter_energy, dedupe, interval_powers, trapezoid_energy

# -- analytic traces -------------------------------------------------------------------------------
# Each trace knows its power P(t), its exact cumulative energy C(t) (closed form, zero at `origin`) and its
# exact energy over [t0, t1]. The integrators interpolate linearly between samples; what that can cost is known:
#   * trapezoid over P: exact where P is linear; an edge (jump |dP|) at tau, between samples a < tau <= b, is
#     integrated as a ramp from a to b, off by at most (b - a) * |dP| / 2 wherever the window cuts [a, b];
#   * counter over C: exact where C is linear on the sample gap around each window edge; otherwise off by at
#     most the gap's chord error max |chord(C) - C| on [a, b] (`chord_error`) at each window edge.


@dataclass(frozen=True)
class Constant:
    watts: float
    origin: float = 0.0

    def power(self, t):
        return self.watts

    def cumulative(self, t):
        return self.watts * (t - self.origin)

    def energy(self, t0, t1):
        return self.watts * (t1 - t0)

    def edges(self, a, b):
        return []

    def chord_error(self, a, b):
        return 0.0


@dataclass(frozen=True)
class Ramp:
    """P(t) = p0 + slope * (t - origin)."""

    p0: float
    slope: float
    origin: float = 0.0

    def power(self, t):
        return self.p0 + self.slope * (t - self.origin)

    def cumulative(self, t):
        u = t - self.origin
        return self.p0 * u + self.slope * u * u / 2

    def energy(self, t0, t1):
        return (t1 - t0) * (self.power(t0) + self.power(t1)) / 2

    def edges(self, a, b):
        return []

    def chord_error(self, a, b):  # C is a parabola with C'' = slope
        return abs(self.slope) * (b - a) ** 2 / 8


class _PiecewiseConstant:
    """Shared by the traces that jump by `jump` watts at each of their `edges` and are flat in between."""

    def chord_error(self, a, b):  # one tent of height |dP| (tau - a)(b - tau) / (b - a) per edge inside (a, b)
        return sum(self.jump * (tau - a) * (b - tau) / (b - a) for tau in self.edges(a, b) if a < tau < b)


@dataclass(frozen=True)
class Step(_PiecewiseConstant):
    """`before` watts until tau, `after` watts from tau on."""

    tau: float
    before: float
    after: float
    origin: float = 0.0

    @property
    def jump(self):
        return abs(self.after - self.before)

    def power(self, t):
        return self.before if t < self.tau else self.after

    def cumulative(self, t):
        return self.energy(self.origin, t) if t >= self.origin else -self.energy(t, self.origin)

    def energy(self, t0, t1):
        return (self.before * (min(t1, self.tau) - min(t0, self.tau))
                + self.after * (max(t1, self.tau) - max(t0, self.tau)))

    def edges(self, a, b):
        return [self.tau] if a <= self.tau <= b else []


@dataclass(frozen=True)
class SquareWave(_PiecewiseConstant):
    """`on` watts for duty * period from each rising edge phase + k * period, `off` watts for the rest."""

    period: float
    duty: float
    on: float
    off: float
    phase: float = 0.0

    @property
    def jump(self):
        return abs(self.on - self.off)

    def _rise(self, k):
        return self.phase + k * self.period

    def _fall(self, k):
        return self._rise(k) + self.duty * self.period

    def _cycle(self, t):  # k with rise(k) <= t < rise(k + 1), computed from the same floats as the edges
        k = math.floor((t - self.phase) / self.period)
        while self._rise(k) > t:
            k -= 1
        while self._rise(k + 1) <= t:
            k += 1
        return k

    def power(self, t):
        return self.on if t < self._fall(self._cycle(t)) else self.off

    def cumulative(self, t):  # closed form, zero at the rising edge k = 0 (t = phase)
        k = self._cycle(t)
        per_cycle = self.period * (self.duty * self.on + (1 - self.duty) * self.off)
        return (k * per_cycle + self.on * (min(t, self._fall(k)) - self._rise(k))
                + self.off * max(t - self._fall(k), 0.0))

    def energy(self, t0, t1):
        return self.cumulative(t1) - self.cumulative(t0)

    def edges(self, a, b):
        ks = range(self._cycle(a) - 1, self._cycle(b) + 2)
        return sorted(t for k in ks for t in (self._rise(k), self._fall(k)) if a <= t <= b)


def rel_err(got, exact):
    return abs(got - exact) / abs(exact) if exact else abs(got)


def trapezoid_edge_bound(ts, trace, t0, t1):
    """(edges the window's trapezoids reach, widest sample gap around one of them): the trapezoid is off by at
    most edges x gap x |dP| / 2. An edge at tau, with ts[i-1] < tau <= ts[i], is reached when the window cuts
    that gap -- also when tau itself lies just outside the window."""
    reached, widest = 0, 0.0
    for tau in trace.edges(ts[0], ts[-1]):
        i = bisect_left(ts, tau)
        if 0 < i < len(ts) and ts[i] > t0 and ts[i - 1] < t1:
            reached += 1
            widest = max(widest, ts[i] - ts[i - 1])
    return reached, widest


def counter_edge_bound(ts, trace, t0, t1):
    """How far the counter's linear interpolation at t0 and t1 can be from the exact C there (0 on a sample)."""
    bound = 0.0
    for t in (t0, t1):
        i = bisect_right(ts, t)
        if i < len(ts) and ts[i - 1] < t:
            bound += trace.chord_error(ts[i - 1], ts[i])
    return bound


def jittered_grid(rng, start, step, first, last, jitter):
    """Sample times start + (j + u) * step for j in [first, last], u uniform in [-jitter, jitter], sorted."""
    return sorted(start + (j + jitter * rng.uniform(-1.0, 1.0)) * step for j in range(first, last + 1))


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
    t1 = min(t0 + (t2 - t0) * b, t2)  # b = 1 can round past t2
    ps = power[: len(ts)]
    whole = trapezoid_energy(ts, ps, t0, t2)
    parts = trapezoid_energy(ts, ps, t0, t1) + trapezoid_energy(ts, ps, t1, t2)
    assert whole >= 0
    assert math.isclose(whole, parts, rel_tol=1e-9, abs_tol=1e-6)


# -- properties against analytic traces ------------------------------------------------------------

watts = st.floats(min_value=1.0, max_value=100.0)
unit = st.floats(min_value=0.0, max_value=1.0)
levels = st.one_of(st.just(0.0), st.floats(min_value=1e-3, max_value=500.0))  # W, a sensor's range
seeds = st.integers(min_value=0, max_value=2**32 - 1)
# sample times on a monotonic clock: uneven gaps from 1 us to 10 s, some repeated timestamps
sample_times = st.builds(
    lambda start, gaps: [start + sum(gaps[:k]) for k in range(len(gaps) + 1)],
    st.floats(min_value=0.0, max_value=1e4),
    st.lists(st.one_of(st.just(0.0), st.floats(min_value=1e-6, max_value=10.0)), min_size=1, max_size=60),
)


def _slack(energy, counter):
    """Rounding allowance: 1e-9 of the energy, plus what subtracting two counter readings may cancel."""
    return 1e-9 * abs(energy) + 1e-12 * max(map(abs, counter))


def _check_piecewise_constant(ts, trace, t0, t1, *, fine):
    """Both integrators against the exact energy of a step or square wave; `fine`: the sampling condition of
    the caller holds, so both are within 1e-3."""
    exact = trace.energy(t0, t1)
    power = [trace.power(t) for t in ts]
    counter = [trace.cumulative(t) for t in ts]
    # the closed form places each edge to within the clock's resolution (an ulp of the timestamps)
    slack = _slack(exact, counter) + 2 * (len(trace.edges(ts[0], ts[-1])) + 2) * math.ulp(ts[-1]) * max(power)

    got = trapezoid_energy(ts, power, t0, t1)
    reached, widest = trapezoid_edge_bound(ts, trace, t0, t1)
    assert abs(got - exact) <= reached * widest * trace.jump / 2 + slack
    if fine:
        assert rel_err(got, exact) < 1e-3

    # a counter is exact wherever C is linear across the gaps around t0 and t1, i.e. no edge lies inside them
    got = counter_energy(ts, counter, t0, t1)
    bound = counter_edge_bound(ts, trace, t0, t1)
    assert abs(got - exact) <= bound + slack
    if fine:
        assert rel_err(got, exact) < (1e-9 if bound == 0 else 1e-3)


@settings(max_examples=200)
@given(start=st.floats(min_value=0.0, max_value=1e4), span=st.floats(min_value=0.1, max_value=100.0),
       at=st.floats(min_value=0.05, max_value=0.95), before=watts, after=watts,
       lean=st.floats(0.05, 0.95), grid=st.lists(unit, max_size=40), a=unit, b=unit)
def test_step(start, span, at, before, after, lean, grid, a, b):
    tau = start + at * span
    step = Step(tau, before, after, origin=start)
    # Sampling condition: the samples include neighbours of the step 2 eps apart, tau - 2 eps lean and
    # tau + 2 eps (1 - lean), whatever else they are, so the trapezoid sees a ramp 2 eps wide: off by
    # <= 1 x 2 eps x |dP| / 2 < 1e-7 span x 1 W, i.e. < 1e-4 of the energy of any window at least 1e-3 of the span
    # long (levels 1..100 W).
    eps = 1e-9 * span
    below, above = tau - 2 * eps * lean, tau + 2 * eps * (1 - lean)
    times = (start + g * span for g in grid)
    ts = sorted({start, start + span, below, above, *(t for t in times if not below <= t <= above)})
    lo, hi = sorted((a, b))
    assume(hi - lo >= 1e-3)
    _check_piecewise_constant(ts, step, start + lo * span, start + hi * span, fine=True)


@st.composite
def square_waves(draw, per_phase, jitter):
    """(wave, sample times, t0, t1): a window of at least one period in a wave sampled every
    min(duty, 1 - duty) * period / N, N in `per_phase`, each time jittered by up to +-`jitter` of that."""
    period = draw(st.floats(min_value=1e-2, max_value=10.0))
    duty = draw(st.floats(min_value=0.25, max_value=0.75))
    base = draw(watts)
    on, off = base * draw(st.floats(1.0, 2.0)), base * draw(st.floats(1.0, 2.0))
    start = draw(st.floats(min_value=0.0, max_value=1e4))
    wave = SquareWave(period, duty, on, off, phase=start - period * draw(st.floats(0.0, 1.0, exclude_max=True)))
    periods = draw(st.integers(1, 2))
    step = min(duty, 1 - duty) * period / draw(st.integers(*per_phase))
    rng = random.Random(draw(seeds))
    ts = jittered_grid(rng, start, step, -1, math.ceil((periods + 1) * period / step) + 1, jitter)
    a, c = draw(st.floats(0.0, 1.0, exclude_max=True)), draw(unit)
    t0 = start + a * period
    return wave, ts, t0, t0 + period + c * (periods - a) * period


# Sampling condition for a square wave: the widest gap dt is at most 1/750 of the shorter phase m, the window is
# at least a period (>= 2 m) long and the two levels are within a factor of two. The window then reaches at most
# L / m + 1 + 2 dt / m edges, so the trapezoid is off by <= (L / m + 1.01) dt |dP| / 2 <= 0.76 (dt / m) L |dP|,
# and E >= L min(P) >= L |dP|: the relative error is <= 0.76 dt / m < 1e-3.
#   regular grid: 1000..1100 samples per shorter phase, dt / m <= 1 / 1000;
#   jittered by +-40 %: 1500..1600 per shorter phase, widest gap 1.8 grid steps, dt / m <= 1.8 / 1500 = 1 / 833.


@settings(max_examples=100, deadline=None)
@given(setup=square_waves(per_phase=(1000, 1100), jitter=0.0))
def test_square_wave(setup):
    wave, ts, t0, t1 = setup
    _check_piecewise_constant(ts, wave, t0, t1, fine=True)


@settings(max_examples=200, deadline=None)
@given(ts=sample_times, a=unit, b=unit, kind=st.sampled_from(["step", "square"]), at=unit,
       duty=st.floats(0.05, 0.95), first=levels, second=levels,
       cycles=st.floats(0.5, 50.0))
def test_edge_error_bounds_hold_at_any_sampling(ts, a, b, kind, at, duty, first, second, cycles):
    # no sampling condition here, so only the analytic bounds: coarse, uneven, repeated sample times, any levels
    span = ts[-1] - ts[0]
    assume(span > 0)
    if kind == "step":
        trace = Step(ts[0] + at * span, first, second, origin=ts[0])
    else:
        trace = SquareWave(span / cycles, duty, first, second, phase=ts[0] - at * span / cycles)
    t0, t1 = _window(ts, a, b)
    _check_piecewise_constant(ts, trace, t0, t1, fine=False)


@pytest.mark.parametrize("family", ["constant", "ramp", "square wave"])
@settings(max_examples=100, deadline=None)
@given(data=st.data())
def test_jittered_timestamps(family, data):
    # sample times: a regular grid, each time moved by up to +-40 % of the period, sorted
    if family == "square wave":
        wave, ts, t0, t1 = data.draw(square_waves(per_phase=(1500, 1600), jitter=0.4))
        _check_piecewise_constant(ts, wave, t0, t1, fine=True)
        return
    rng = random.Random(data.draw(seeds))
    start, step = data.draw(st.floats(0.0, 1e4)), data.draw(st.floats(1e-3, 1.0))
    ts = jittered_grid(rng, start, step, 0, data.draw(st.integers(1, 400)), 0.4)
    if family == "constant":
        trace = Constant(data.draw(st.floats(0.5, 500.0)), origin=ts[0])
    else:
        first, last = data.draw(st.floats(0.5, 500.0)), data.draw(st.floats(0.5, 500.0))
        trace = Ramp(first, (last - first) / (ts[-1] - ts[0]), origin=ts[0])
    t0, t1 = _window(ts, data.draw(unit), data.draw(unit))
    exact = trace.energy(t0, t1)
    counter = [trace.cumulative(t) for t in ts]
    slack = _slack(exact, counter)

    # linear power: the trapezoid is exact however uneven the samples are
    assert rel_err(trapezoid_energy(ts, [trace.power(t) for t in ts], t0, t1), exact) < 1e-9

    # a ramp's counter is a parabola: exact at samples, off by its chord error at edges between samples
    got = counter_energy(ts, counter, t0, t1)
    assert abs(got - exact) <= counter_edge_bound(ts, trace, t0, t1) + slack
    i, j = sorted(rng.sample(range(len(ts)), 2))
    exact = trace.energy(ts[i], ts[j])
    assert abs(counter_energy(ts, counter, ts[i], ts[j]) - exact) <= _slack(exact, counter)


@settings(max_examples=200)
@given(start=st.floats(0.0, 1e4), update=st.floats(1e-3, 1.0), n=st.integers(3, 200),
       first=st.floats(1.0, 100.0), last=st.floats(1.0, 100.0), copies=st.integers(1, 5), a=unit, b=unit)
def test_dedupe_undoes_a_sensor_read_faster_than_it_updates(start, update, n, first, last, copies, a, b):
    assume(abs(last - first) >= 0.5)
    ramp = Ramp(first, (last - first) / ((n - 1) * update), origin=start)
    true_t = [start + j * update for j in range(n)]
    true_p = [ramp.power(t) for t in true_t]
    # each reading is read again `copies` times before the sensor's next update
    read_t = [t + m * update / (copies + 1) for t in true_t for m in range(copies + 1)]
    read_p = [p for p in true_p for _ in range(copies + 1)]

    lo, hi = sorted((a, b))
    t0, t1 = true_t[0] + lo * (true_t[-1] - true_t[0]), true_t[0] + hi * (true_t[-1] - true_t[0])
    assume(t1 - t0 >= 2 * update)
    exact = ramp.energy(t0, t1)

    kept_t, kept_p = dedupe(read_t, read_p, update)
    assert (kept_t, kept_p) == (true_t + read_t[-1:], true_p + read_p[-1:])  # the last read is always kept
    deduped = trapezoid_energy(kept_t, kept_p, t0, t1)
    assert rel_err(deduped, trapezoid_energy(true_t, true_p, t0, t1)) < 1e-9
    assert rel_err(deduped, exact) < 1e-9

    # Without dedupe each update interval becomes a staircase: flat for copies / (copies + 1) of it, then a
    # steeper ramp. It is off the true line on the same side everywhere, by |slope| U^2 c / (2 (c + 1)) per
    # whole interval U inside the window.
    raw = trapezoid_energy(read_t, read_p, t0, t1)
    whole = sum(1 for u, v in zip(true_t, true_t[1:]) if t0 <= u and v <= t1)
    assert whole >= 1
    assert abs(raw - exact) >= 0.999 * whole * abs(ramp.slope) * update**2 * copies / (2 * (copies + 1))
    assert rel_err(raw, exact) > rel_err(deduped, exact)


@settings(max_examples=200)
@given(ts=sample_times, values=st.lists(levels, min_size=61, max_size=61), i=st.integers(0, 59),
       a=st.floats(1e-3, 1 - 1e-3), b=st.floats(1e-3, 1 - 1e-3))
def test_window_inside_one_sample_gap(ts, values, i, a, b):
    gaps = [k for k in range(len(ts) - 1) if ts[k + 1] > ts[k]]
    assume(gaps)
    i = gaps[i % len(gaps)]
    left, right = ts[i], ts[i + 1]
    lo, hi = sorted((a, b))
    t0, t1 = left + lo * (right - left), left + hi * (right - left)
    assume(left < t0 <= t1 < right)
    share = (t1 - t0) / (right - left)

    # trapezoid: one trapezoid under the straight line between the two samples around the window
    power = values[: len(ts)]
    line = [power[i] + (power[i + 1] - power[i]) * ((t - left) / (right - left)) for t in (t0, t1)]
    got = trapezoid_energy(ts, power, t0, t1)
    assert math.isclose(got, (t1 - t0) * (line[0] + line[1]) / 2, rel_tol=1e-9)

    # counter: the window's share of the energy counted over that gap
    counter = [sum(power[: k + 1]) for k in range(len(ts))]
    got = counter_energy(ts, counter, t0, t1)
    assert math.isclose(got, share * (counter[i + 1] - counter[i]), rel_tol=1e-9, abs_tol=1e-12 * counter[-1])

    # and both are exact for a trace they integrate exactly: a ramp's power, a constant power's counter
    ramp = Ramp(1.0 + values[0], (values[1] - values[0]) / (ts[-1] - ts[0]), origin=ts[0])  # 1 W or more
    assert rel_err(trapezoid_energy(ts, [ramp.power(t) for t in ts], t0, t1), ramp.energy(t0, t1)) < 1e-9
    const = Constant(values[3] + 1.0, origin=ts[0])
    got = counter_energy(ts, [const.cumulative(t) for t in ts], t0, t1)
    assert math.isclose(got, const.energy(t0, t1), rel_tol=1e-9, abs_tol=1e-12 * const.cumulative(ts[-1]))


@settings(max_examples=200)
@given(start=st.floats(0.0, 1e4), watts=st.floats(1.0, 500.0), offset=st.floats(0.0, 1e4),
       gaps=st.lists(st.one_of(st.just(0.0), st.floats(1e-3, 10.0)), min_size=1, max_size=50))
def test_interval_powers_of_a_constant_power_counter(start, gaps, watts, offset):
    ts = [start]
    for gap in gaps:
        ts.append(ts[-1] + gap)
    counter = [offset + watts * (t - start) for t in ts]
    powers = interval_powers(ts, counter)
    assert len(powers) == sum(1 for u, v in zip(ts, ts[1:]) if v > u)  # zero-length intervals are skipped
    assert all(math.isclose(p, watts, rel_tol=1e-6) for p in powers)
    durations = [v - u for u, v in zip(ts, ts[1:]) if v > u]
    assert math.isclose(sum(p * d for p, d in zip(powers, durations)), counter[-1] - counter[0], rel_tol=1e-6)
