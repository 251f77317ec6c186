"""Energy over a time window from timestamped samples: the arithmetic, free of threads and sensors.

Timestamps are seconds on one monotonic clock. A window [t0, t1] must lie inside the sampled span; the value at
each edge is interpolated linearly between the samples around it.
"""

from __future__ import annotations

from bisect import bisect_right
from collections.abc import Sequence


class WindowNotCovered(ValueError):
    """The samples do not span the requested window."""


def _interpolate(ts: Sequence[float], ys: Sequence[float], t: float) -> float:
    i = bisect_right(ts, t)
    if i == 0 or (i == len(ts) and t > ts[-1]):
        raise WindowNotCovered(f"t={t:.6f} s is outside the samples [{ts[0]:.6f}, {ts[-1]:.6f}] s")
    if i == len(ts):
        return ys[-1]
    t_a, t_b = ts[i - 1], ts[i]
    if t_b == t_a:
        return ys[i]
    return ys[i - 1] + (ys[i] - ys[i - 1]) * (t - t_a) / (t_b - t_a)


def _check(ts: Sequence[float], ys: Sequence[float], t0: float, t1: float) -> None:
    if len(ts) != len(ys):
        raise ValueError("timestamps and values differ in length")
    if len(ts) < 2:
        raise WindowNotCovered("fewer than two samples")
    if t1 < t0:
        raise ValueError("window ends before it starts")
    if any(b < a for a, b in zip(ts, ts[1:])):
        raise ValueError("timestamps must not decrease")


def counter_energy(ts: Sequence[float], cumulative_j: Sequence[float], t0: float, t1: float) -> float:
    """Energy (J) in [t0, t1] from a cumulative energy counter (J), interpolated at both edges."""
    _check(ts, cumulative_j, t0, t1)
    return _interpolate(ts, cumulative_j, t1) - _interpolate(ts, cumulative_j, t0)


def trapezoid_energy(ts: Sequence[float], power_w: Sequence[float], t0: float, t1: float) -> float:
    """Energy (J) in [t0, t1]: trapezoid integral of instantaneous power (W), interpolated at both edges."""
    _check(ts, power_w, t0, t1)
    p0, p1 = _interpolate(ts, power_w, t0), _interpolate(ts, power_w, t1)
    lo, hi = bisect_right(ts, t0), bisect_right(ts, t1)
    knots_t = [t0, *ts[lo:hi], t1]
    knots_p = [p0, *power_w[lo:hi], p1]
    return sum((knots_t[k + 1] - knots_t[k]) * (knots_p[k + 1] + knots_p[k]) / 2 for k in range(len(knots_t) - 1))


def dedupe(ts: Sequence[float], ys: Sequence[float], update_interval_s: float | None = None
           ) -> tuple[list[float], list[float]]:
    """Drop readings that only repeat the previous one because the sensor was read faster than it updates.

    A reading equal to the last kept one is dropped when it comes sooner than ``update_interval_s`` after it (or
    always, when the interval is unknown): the sensor had not produced a new value yet, and keeping the repeat
    would turn each linear segment into a staircase. The last reading is always kept so the trace still spans
    the time it was sampled over. Returns new lists.
    """
    if len(ts) != len(ys):
        raise ValueError("timestamps and values differ in length")
    if not ts:
        return [], []
    out_t, out_y = [ts[0]], [ys[0]]
    for t, y in zip(ts[1:-1], ys[1:-1]):
        stale = y == out_y[-1] and (update_interval_s is None or t - out_t[-1] < update_interval_s)
        if not stale:
            out_t.append(t)
            out_y.append(y)
    if len(ts) > 1:
        out_t.append(ts[-1])
        out_y.append(ys[-1])
    return out_t, out_y


def interval_powers(ts: Sequence[float], cumulative_j: Sequence[float]) -> list[float]:
    """Average power (W) between consecutive counter readings; intervals of zero length are skipped."""
    return [(cumulative_j[i + 1] - cumulative_j[i]) / (ts[i + 1] - ts[i])
            for i in range(len(ts) - 1) if ts[i + 1] > ts[i]]
