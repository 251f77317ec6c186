"""Reads a power source on its own thread, timestamping every sample on the monotonic clock the profiler uses."""

from __future__ import annotations

import threading
import time
from bisect import bisect_left, bisect_right
from dataclasses import dataclass

from dnnprof.agent.measure import energy, stats
from dnnprof.agent.power.base import PowerSource

clock = time.monotonic  # the one clock for power samples and inference timestamps


@dataclass
class WindowEnergy:
    energy_j: float  # the board's total: the input rail where the source has one, else all rails summed
    rails_j: dict[str, float]
    samples: int  # readings inside the window
    unique_samples: int  # of those, readings left after de-duplication (first rail)
    rate_hz: float  # achieved sample rate over the whole trace

    def power_w(self, seconds: float) -> dict[str, float]:
        """Average power per rail over a window of ``seconds``."""
        return {rail: e / seconds for rail, e in self.rails_j.items()}


class Sampler:
    """``with Sampler(source) as s: ...`` samples until the block ends; ``s.energy(t0, t1)`` at any time after t1."""

    def __init__(self, source: PowerSource, period_s: float | None = None) -> None:
        self.source = source
        self.period_s = source.period_s if period_s is None else period_s
        self.ts: list[float] = []
        self.values: list[tuple[float, ...]] = []
        self.read_errors = 0
        self.cpu_s = 0.0  # CPU time the sampling thread used
        self._wall = (0.0, 0.0)
        self._lock = threading.Lock()  # ts, values and the series below grow together
        # The total power as a de-duplicated series, kept up to date per reading so a confidence check during the
        # window does not redo the whole trace: for counters each entry is an interval's average power, stamped
        # with the interval's start; for power sensors the reading itself.
        self._last_kept: tuple[float, float] | None = None
        self._series_start: list[float] = []  # when each entry's interval starts (= ends, for a power sensor)
        self._series_end: list[float] = []
        self._series = stats.RunningSeries()
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, name=f"power-{source.name}", daemon=True)

    def _sample(self) -> None:
        try:
            before = clock()
            value = self.source.read()
            # The sensor was read somewhere between the two clock readings; take the middle.
            t = (before + clock()) / 2
            with self._lock:
                self.ts.append(t)
                self.values.append(value)
                self._extend_series(t, self.source.total(value))
        except (OSError, ValueError):  # a transient I/O error or a garbled value: skip this reading
            self.read_errors += 1

    def _extend_series(self, t: float, total: float) -> None:
        last = self._last_kept
        interval = self.source.update_interval_s
        if last is not None and total == last[1] and (interval is None or t - last[0] < interval):
            return  # the sensor has not updated yet: a repeat, as energy.dedupe drops it
        if self.source.quantity == "power_w":
            self._series_start.append(t)
            self._series_end.append(t)
            self._series.add(total)
        elif last is not None and t > last[0]:
            self._series_start.append(last[0])
            self._series_end.append(t)
            self._series.add((total - last[1]) / (t - last[0]))
        self._last_kept = (t, total)

    def _run(self) -> None:
        cpu0, wall0 = time.thread_time(), clock()
        # Deadline-based pacing: a slow read does not push every later sample back.
        next_t = wall0 + self.period_s
        while not self._stop.wait(max(0.0, next_t - clock())):
            self._sample()
            next_t += self.period_s
            if next_t < clock():  # fell behind (a stalled read): skip ahead rather than burst
                next_t = clock() + self.period_s
        self.cpu_s = time.thread_time() - cpu0
        self._wall = (wall0, clock())

    @property
    def cpu_fraction(self) -> float | None:
        """CPU seconds the sampler used per second of sampling (after the block ended)."""
        wall = self._wall[1] - self._wall[0]
        return self.cpu_s / wall if wall > 0 else None

    def __enter__(self) -> Sampler:
        self._sample()
        self._thread.start()
        return self

    def __exit__(self, *exc) -> None:
        self._stop.set()
        self._thread.join()
        self._sample()

    def wait_past(self, t: float, timeout_s: float = 5.0) -> None:
        """Block until a sample later than ``t`` exists (so a window ending at ``t`` is covered)."""
        deadline = clock() + timeout_s
        while (not self.ts or self.ts[-1] <= t) and clock() < deadline:
            if not self._thread.is_alive():
                self._sample()
            else:
                self._stop.wait(max(0.0, min(self.period_s / 4, deadline - clock())))  # never past the timeout

    def _rails(self) -> dict[str, tuple[list[float], list[float]]]:
        """Each rail's de-duplicated (timestamps, values)."""
        with self._lock:
            ts, values = list(self.ts), list(self.values)
        interval = self.source.update_interval_s
        return {rail: energy.dedupe(ts, [v[i] for v in values], interval)
                for i, rail in enumerate(self.source.rails)}

    def energy(self, t0: float, t1: float) -> WindowEnergy:
        """Energy in [t0, t1] (monotonic seconds), per rail and total."""
        integrate = energy.counter_energy if self.source.quantity == "energy_j" else energy.trapezoid_energy
        rails = self._rails()
        rails_j = {rail: integrate(ts, ys, t0, t1) for rail, (ts, ys) in rails.items()}
        with self._lock:
            inside = sum(1 for t in self.ts if t0 <= t <= t1)
            span, n = (self.ts[-1] - self.ts[0], len(self.ts)) if self.ts else (0.0, 0)
        first_ts = next(iter(rails.values()))[0] if rails else []
        unique = sum(1 for t in first_ts if t0 <= t <= t1)
        total = self.source.total_of(rails_j) if rails_j else 0.0
        return WindowEnergy(total, rails_j, inside, unique, (n - 1) / span if span > 0 else 0.0)

    def _span(self, t0: float, t1: float) -> tuple[int, int]:
        # Only intervals wholly inside the window: one that straddles an edge averages in what ran outside it.
        lo, hi = bisect_left(self._series_start, t0), bisect_right(self._series_end, t1)
        return lo, max(lo, hi)

    def power_series(self, t0: float, t1: float) -> list[float]:
        """Total power readings (W) inside [t0, t1] — averages of whole intervals for counters — de-duplicated."""
        with self._lock:
            lo, hi = self._span(t0, t1)
            prefix = self._series.prefix
            return [prefix[i + 1] - prefix[i] for i in range(lo, hi)]

    def power_stats(self, t0: float, t1: float) -> tuple[int, float, float]:
        """(readings, mean W, 95% half-width W) of the total power in [t0, t1], in O(blocks) time."""
        with self._lock:
            lo, hi = self._span(t0, t1)
            return hi - lo, self._series.mean(lo, hi), self._series.half_width(lo, hi)
