"""The measurement procedure for one configuration, everything on one monotonic clock:

1. warm-up until per-batch latency is steady (bounded in time);
2. a timed window of back-to-back batches while the power sampler runs on its own thread; the window grows until
   the 95% confidence intervals of mean latency and of average power are tight enough (bounded below and above);
3. energy = the integral of power over exactly that window; net figures subtract an idle baseline measured with
   nothing running shortly before.
"""

from __future__ import annotations

import math
import statistics
import time
from collections.abc import Callable
from dataclasses import dataclass, field

from dnnprof.agent.backends import DeviceTimes, Runner
from dnnprof.agent.measure import stats
from dnnprof.agent.measure.sampler import Sampler, WindowEnergy, clock
from dnnprof.agent.power import PowerSource
from dnnprof.shared import schema


@dataclass(frozen=True)
class Settings:
    warmup_min_s: float = 0.2  # warm up at least this long and this many batches ...
    warmup_min_iterations: int = 5
    warmup_max_s: float = 10.0  # ... and at most this long, steady or not
    steady_tolerance: float = 0.05  # steady: two consecutive blocks' mean latency within 5% of each other
    window_min_s: float = 1.0  # the timed window lasts at least this long, this many batches, power samples ...
    min_iterations: int = 10
    # ... and, where window_max_s allows, this many batches, so that p99 rests on enough of them (the window goes
    # on past its convergence for them when the time left can bring them; else its p99 is marked low-confidence)
    tail_batches: int = schema.tail_batches(99)
    min_power_samples: int = 10
    window_max_s: float = 20.0  # ... and stops at this length even if the intervals are still wide
    latency_ci: float = 0.01  # target 95% half-width of mean latency, relative
    power_ci: float = 0.02  # target 95% half-width of average power, relative
    unstable_cov: float = 0.10  # flag a point whose per-batch latency varies more than this (CoV)
    idle_s: float = 1.0  # idle baseline length; 0 measures no baseline (no net figures)
    idle_max_age_s: float = 60.0  # reuse a baseline this long
    check_every_s: float = 0.25  # how often the window checks its intervals
    # The watchdog's limits: preparing a point (an engine build: minutes on a small board) may take this long, and
    # each other stage (idle, warm-up, window) its own upper limit plus this grace (one slow batch, a late sample);
    # past them the point is a timeout failure.
    build_timeout_s: float = 1800.0
    hang_grace_s: float = 60.0

    def __post_init__(self) -> None:
        if not (0 <= self.warmup_min_s <= self.warmup_max_s and 0 < self.window_min_s <= self.window_max_s):
            raise ValueError("need 0 <= warm-up min <= warm-up max and 0 < window min <= window max")
        if self.min_iterations < 1 or self.warmup_min_iterations < 0 or self.min_power_samples < 0:
            raise ValueError("min_iterations >= 1 and non-negative warm-up batches and power samples are required")
        if self.tail_batches < 1:
            raise ValueError("tail_batches >= 1 is required")
        if min(self.latency_ci, self.power_ci, self.steady_tolerance, self.check_every_s) <= 0 or self.unstable_cov < 0:
            raise ValueError("interval targets, the steadiness tolerance and the check period must be positive, "
                             "the CoV threshold >= 0")
        if self.idle_s < 0 or self.idle_max_age_s < 0:
            raise ValueError("idle lengths must be >= 0")
        if self.build_timeout_s <= 0 or self.hang_grace_s <= 0:
            raise ValueError("the build timeout and the hang grace must be positive")

    def stage_limits(self) -> dict[str, float]:
        """Seconds each stage of a point may last before the watchdog gives the point up as a timeout."""
        grace = self.hang_grace_s
        # The accuracy pass (decoding the set the first time, then every image through the engine) is bounded like
        # a build: its length depends on the set, not on the measurement settings.
        return {"prepare": self.build_timeout_s, "idle": self.idle_s + grace, "warmup": self.warmup_max_s + grace,
                "window": self.window_max_s + grace, "check": grace, "accuracy": self.build_timeout_s}

    @classmethod
    def with_limits(cls, *, warmup_min_s: float | None = None, warmup_max_s: float | None = None,
                    window_min_s: float | None = None, window_max_s: float | None = None, **others) -> Settings:
        """Settings whose upper limits, where not given, follow the lower ones: the warm-up lasts at most 10 s or
        twice its minimum, the window at most 20 s or its minimum, whichever is longer. The one owner of those
        defaults for ``run``'s options and the service's ``[measurement]`` keys; ValueError when inconsistent."""
        defaults = cls()
        warmup_min_s = defaults.warmup_min_s if warmup_min_s is None else warmup_min_s
        window_min_s = defaults.window_min_s if window_min_s is None else window_min_s
        return cls(warmup_min_s=warmup_min_s,
                   warmup_max_s=max(defaults.warmup_max_s, 2 * warmup_min_s) if warmup_max_s is None else warmup_max_s,
                   window_min_s=window_min_s,
                   window_max_s=max(defaults.window_max_s, window_min_s) if window_max_s is None else window_max_s,
                   **others)


@dataclass
class Idle:
    power_w: float
    rails_w: dict[str, float]
    duration_s: float
    samples: int
    t_end: float  # monotonic
    key: object = None  # the power mode / clock state it was measured in


def measure_idle(source: PowerSource, seconds: float, key: object = None) -> Idle:
    """Power with nothing running for ``seconds`` (this process sleeps; the sampler reads)."""
    with Sampler(source) as sampler:
        t0 = clock()
        time.sleep(seconds)
        t1 = clock()
        sampler.wait_past(t1)
        e = sampler.energy(t0, t1)
    return Idle(e.energy_j / (t1 - t0), e.power_w(t1 - t0), t1 - t0, e.samples, t1, key)


@dataclass
class Measurement:
    batch: int
    warmup_s: float
    warmup_iterations: int
    warmup_steady: bool
    t0: float  # window start, monotonic seconds
    t1: float  # window end
    latencies_s: list[float]  # one per batch in the window
    stop: str  # "converged" or "max_time"
    energy: WindowEnergy | None = None  # None without a power source
    power_series_w: list[float] = field(default_factory=list)
    device_times: list[DeviceTimes] = field(default_factory=list)
    sampler_cpu_fraction: float | None = None

    @property
    def window_s(self) -> float:
        return self.t1 - self.t0

    @property
    def images(self) -> int:
        return self.batch * len(self.latencies_s)

    @property
    def throughput_ips(self) -> float:
        return self.images / self.window_s

    @property
    def power_w(self) -> float | None:
        return None if self.energy is None else self.energy.energy_j / self.window_s

    @property
    def energy_per_image_j(self) -> float | None:
        return None if self.energy is None else self.energy.energy_j / self.images

    @property
    def latency_ms(self) -> schema.Latency:
        return stats.latency_stats(self.latencies_s)

    @property
    def latency_cov(self) -> float:
        mean = statistics.fmean(self.latencies_s)
        return statistics.stdev(self.latencies_s) / mean if len(self.latencies_s) > 1 and mean > 0 else 0.0

    def confidence(self) -> schema.Confidence:
        mean_ms = statistics.fmean(self.latencies_s) * 1e3
        lat = stats.half_width(self.latencies_s) * 1e3
        power = stats.half_width(self.power_series_w) if self.energy is not None else None
        avg = self.power_w
        return schema.Confidence(
            latency_ms_mean=_finite(lat), latency_relative=_finite(lat / mean_ms if mean_ms else math.inf),
            power_w=None if power is None else _finite(power),
            power_relative=None if power is None or not avg else _finite(power / avg),
            stop=self.stop,
        )

    def device_timing(self) -> schema.DeviceTiming | None:
        if not self.device_times:
            return None

        def summary(values: list[float | None]) -> schema.Latency | None:
            present = [v / 1e3 for v in values if v is not None]
            return stats.latency_stats(present) if present else None

        return schema.DeviceTiming(
            compute_ms=summary([d.compute_ms for d in self.device_times]),
            h2d_ms=summary([d.h2d_ms for d in self.device_times]),
            d2h_ms=summary([d.d2h_ms for d in self.device_times]),
        )


def _finite(x: float) -> float:
    # JSON has no infinity; a huge number still says "not converged" to any reader.
    return x if math.isfinite(x) else 1e300


def warm_up(runner: Runner, settings: Settings) -> tuple[float, int, bool]:
    """Run batches until latency is steady; returns (seconds, batches, steady)."""
    start = clock()
    done, block, previous = 0, [], None
    block_start = start
    while True:
        t = clock()
        runner.infer()
        now = clock()
        done += 1
        block.append(now - t)
        elapsed = now - start
        if len(block) >= 3 and now - block_start >= 0.1:
            mean = statistics.fmean(block)
            if (previous is not None and abs(mean - previous) <= settings.steady_tolerance * previous
                    and elapsed >= settings.warmup_min_s and done >= settings.warmup_min_iterations):
                return elapsed, done, True
            previous, block, block_start = mean, [], now
        if elapsed >= settings.warmup_max_s:
            # Time is up: judge the block in progress too, so a warm-up of fixed length can still be steady.
            steady = (previous is not None and len(block) >= 3 and done >= settings.warmup_min_iterations
                      and abs(statistics.fmean(block) - previous) <= settings.steady_tolerance * previous)
            return elapsed, done, steady


def measure(runner: Runner, batch: int, settings: Settings, sampler: Sampler | None = None,
            on_stage: Callable[[str], None] | None = None) -> Measurement:
    """Warm up, then time back-to-back batches until the intervals are tight; energy over exactly that window.
    ``on_stage`` hears ``warmup`` and ``window`` as each begins (the sweep's watchdog)."""
    if on_stage:
        on_stage("warmup")
    warm_s, warm_n, steady = warm_up(runner, settings)
    if on_stage:
        on_stage("window")
    latencies: list[float] = []
    running = stats.RunningSeries()
    device: list[DeviceTimes] = []
    t0 = end = clock()
    deadline = t0 + settings.window_max_s
    next_check = t0 + settings.window_min_s
    while True:
        start = clock()
        times = runner.infer()
        end = clock()
        # Each batch's own time: a convergence check between batches is not charged to the next batch.
        latencies.append(end - start)
        running.add(end - start)
        if times is not None:
            device.append(times)
        if end < next_check or len(latencies) < settings.min_iterations:
            continue
        n = len(latencies)
        tight = _tight(running, sampler, t0, end, settings)
        # Past convergence only for the tail's batches, and only while the deadline can still bring them: a point
        # too slow for them stops as before, its p99 marked low-confidence.
        reachable = n + n / (end - t0) * (deadline - end) >= settings.tail_batches if end > t0 else True
        if tight and (n >= settings.tail_batches or end >= deadline or not reachable):
            stop = "converged"
            break
        if end >= deadline:
            stop = "max_time"
            break
        next_check = min(end + settings.check_every_s, deadline)
    t1 = end
    m = Measurement(batch, warm_s, warm_n, steady, t0, t1, latencies, stop, device_times=device)
    if sampler is not None:
        sampler.wait_past(t1)  # one sample after the window so its end edge lies inside the trace
        m.energy = sampler.energy(t0, t1)
        m.power_series_w = sampler.power_series(t0, t1)
    return m


def _tight(latency: stats.RunningSeries, sampler: Sampler | None, t0: float, now: float, s: Settings) -> bool:
    if latency.half_width() > s.latency_ci * latency.mean():
        return False
    if sampler is None:
        return True
    count, mean, half = sampler.power_stats(t0, now)
    return count >= s.min_power_samples and half <= s.power_ci * abs(mean)
