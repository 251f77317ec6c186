"""Reads a power source on its own thread, timestamping every sample on the monotonic clock the profiler uses."""

from __future__ import annotations

import threading
import time
from bisect import bisect_left, bisect_right
from dataclasses import dataclass

from dnnprof.agent.measure import energy, stats
from dnnprof.agent.power.base import PowerSource

clock = time.monotonic  # the one clock for power samples and inference timestamps

# The longest the thread sleeps at once, so the most it can take to notice that the block has ended: at rates of
# 20 Hz and above (every source's default) it sleeps exactly to each deadline and stops within one period.
MAX_SLEEP_S = 0.05
FOLD_EVERY = 32  # readings the thread leaves for the power series before it folds them in, in one go


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
        # One writer at a time appends to these (the thread while it runs, else the caller), values before ts, so a
        # reader that takes len(ts) first finds every reading's values: the thread appends without the lock.
        self.ts: list[float] = []
        self.values: list[tuple[float, ...]] = []
        self.read_errors = 0
        self.cpu_s = 0.0  # CPU time the sampling thread used
        self._wall = (0.0, 0.0)
        self._lock = threading.Lock()  # the series below, and the caller's own readings
        # The total power as a de-duplicated series, brought up to date with the readings in batches (by the thread
        # every FOLD_EVERY readings, by a reader for the rest) so a confidence check during the window does not redo
        # the whole trace: for counters each entry is an interval's average power, stamped with the interval's
        # start; for power sensors the reading itself.
        self._folded = 0  # readings of ts/values already in the series
        self._last_kept: tuple[float, float] | None = None
        self._series_start: list[float] = []  # when each entry's interval starts (= ends, for a power sensor)
        self._series_end: list[float] = []
        self._series = stats.RunningSeries()
        self._stopping = False  # set by __exit__; the thread sees it when it next wakes
        self._thread = threading.Thread(target=self._run, name=f"power-{source.name}", daemon=True)

    def _sample(self) -> None:
        """One reading on the caller's thread: on entry, on exit, and in wait_past once the thread has stopped."""
        try:
            before = clock()
            value = self.source.read()
            # The sensor was read somewhere between the two clock readings; take the middle.
            t = (before + clock()) / 2
        except (OSError, ValueError):  # a transient I/O error or a garbled value: skip this reading
            self.read_errors += 1
            return
        with self._lock:
            self.values.append(value)
            self.ts.append(t)

    def _fold(self) -> None:
        """Bring the power series up to date with the readings since the last fold. Hold ``_lock``."""
        ts, values, total = self.ts, self.values, self.source.total
        n = len(ts)
        for i in range(self._folded, n):
            self._extend_series(ts[i], total(values[i]))
        self._folded = n

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
        # Each wake-up is the cost that matters (a Python thread waking at 100 Hz costs tens of µs of CPU, most of it
        # cold caches after the sleep): so a plain sleep to an absolute deadline (Event.wait builds a Condition and a
        # lock per call), two clock readings per sample, appends without a lock, and the power series folded in
        # batches rather than per reading. Deadline-based pacing: a slow read does not push every later sample back.
        cpu0 = time.thread_time()
        now = wall0 = clock()
        period, read, sleep = self.period_s, self.source.read, time.sleep
        ts, values = self.ts, self.values
        next_t, unfolded = wall0 + period, 0
        while True:
            wait = next_t - now
            if wait > MAX_SLEEP_S:  # a slow rate: wake now and then to see whether to stop
                sleep(MAX_SLEEP_S)
                if self._stopping:
                    break
                now = clock()
                continue
            if wait > 0:
                sleep(wait)
            if self._stopping:
                break
            before = clock()
            try:
                value = read()
            except (OSError, ValueError):  # a transient I/O error or a garbled value: skip this reading
                self.read_errors += 1
                now = clock()
            else:
                now = clock()
                values.append(value)  # values first: a reader that sees the timestamp finds its values
                ts.append((before + now) / 2)  # the sensor was read between the two clock readings: the middle
                unfolded += 1
            next_t += period
            if next_t < now:  # fell behind (a stalled read): skip ahead rather than burst
                next_t = now + period
            if unfolded == FOLD_EVERY:  # (readers may have folded some already; the fold takes what is left)
                with self._lock:
                    self._fold()
                now, unfolded = clock(), 0
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
        self._stopping = True
        self._thread.join()  # within one period (at most MAX_SLEEP_S) and one read
        self._sample()

    def wait_past(self, t: float, timeout_s: float = 5.0) -> None:
        """Block until a sample later than ``t`` exists (so a window ending at ``t`` is covered)."""
        deadline = clock() + timeout_s
        while (not self.ts or self.ts[-1] <= t) and clock() < deadline:
            if not self._thread.is_alive():
                self._sample()
            else:
                time.sleep(max(0.0, min(self.period_s / 4, deadline - clock())))  # never past the timeout

    def _snapshot(self) -> tuple[list[float], list[tuple[float, ...]]]:
        """Copies of the readings so far, as many timestamps as values."""
        n = len(self.ts)  # first: values is never shorter than ts
        return self.ts[:n], self.values[:n]

    def _rails(self, ts: list[float], values: list[tuple[float, ...]]) -> dict[str, tuple[list[float], list[float]]]:
        """Each rail's de-duplicated (timestamps, values)."""
        interval = self.source.update_interval_s
        return {rail: energy.dedupe(ts, [v[i] for v in values], interval)
                for i, rail in enumerate(self.source.rails)}

    def energy(self, t0: float, t1: float) -> WindowEnergy:
        """Energy in [t0, t1] (monotonic seconds), per rail and total."""
        integrate = energy.counter_energy if self.source.quantity == "energy_j" else energy.trapezoid_energy
        ts, values = self._snapshot()
        rails = self._rails(ts, values)
        rails_j = {rail: integrate(rts, ys, t0, t1) for rail, (rts, ys) in rails.items()}
        inside = sum(1 for t in ts if t0 <= t <= t1)
        span, n = (ts[-1] - ts[0], len(ts)) if ts else (0.0, 0)
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
            self._fold()
            lo, hi = self._span(t0, t1)
            prefix = self._series.prefix
            return [prefix[i + 1] - prefix[i] for i in range(lo, hi)]

    def power_stats(self, t0: float, t1: float) -> tuple[int, float, float]:
        """(readings, mean W, 95% half-width W) of the total power in [t0, t1], in O(blocks) time."""
        with self._lock:
            self._fold()
            lo, hi = self._span(t0, t1)
            return hi - lo, self._series.mean(lo, hi), self._series.half_width(lo, hi)
