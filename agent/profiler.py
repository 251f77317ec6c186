"""The measurement procedure for one configuration: warm-up, then a timed window of back-to-back batches while
the power sampler runs on its own thread, everything on one monotonic clock."""

from __future__ import annotations

import statistics
from dataclasses import dataclass

from dnnprof.agent.backends import Runner
from dnnprof.agent.power.sampler import Sampler, WindowEnergy, clock
from dnnprof.shared import schema


@dataclass(frozen=True)
class Settings:
    warmup_s: float = 0.5  # at least this long, and at least warmup_iterations batches
    warmup_iterations: int = 2
    window_s: float = 2.0  # the timed window lasts at least this long, and at least min_iterations batches
    min_iterations: int = 10

    def __post_init__(self) -> None:
        if self.warmup_s < 0 or self.window_s <= 0 or self.min_iterations < 1 or self.warmup_iterations < 0:
            raise ValueError("warm-up must be >= 0, the window > 0 and min_iterations >= 1")


@dataclass
class Measurement:
    batch: int
    warmup_s: float
    warmup_iterations: int
    t0: float  # window start, monotonic seconds
    t1: float  # window end
    latencies_s: list[float]  # one per batch in the window
    energy: WindowEnergy | None  # None without a power source

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

    def latency_ms(self) -> schema.Latency:
        ms = sorted(x * 1e3 for x in self.latencies_s)
        return schema.Latency(
            mean=statistics.fmean(ms), stdev=statistics.stdev(ms) if len(ms) > 1 else 0.0,  # one batch: no spread
            p50=_percentile(ms, 50), p90=_percentile(ms, 90), p95=_percentile(ms, 95), p99=_percentile(ms, 99),
            min=ms[0], max=ms[-1],
        )


def _percentile(ordered: list[float], percent: int) -> float:
    """Linear interpolation between closest ranks (numpy's default; statistics' "inclusive" method).

    Written so that equal neighbours give exactly their value and the result never leaves [min, max]:
    ``statistics.quantiles`` computes ``(a*(n-d) + b*d)/n``, which for a == b can land an ulp above the maximum.
    """
    index, rest = divmod((len(ordered) - 1) * percent, 100)
    if rest == 0:
        return ordered[index]
    lo, hi = ordered[index], ordered[index + 1]
    return min(hi, lo + (hi - lo) * (rest / 100))


def _loop(runner: Runner, seconds: float, iterations: int, record: list[float] | None) -> tuple[float, float, int]:
    start = last = clock()
    done = 0
    while done < iterations or last - start < seconds:
        runner.infer()
        now = clock()
        if record is not None:
            record.append(now - last)
        last = now
        done += 1
    return start, last, done


def measure(runner: Runner, batch: int, settings: Settings, sampler: Sampler | None = None) -> Measurement:
    """Warm up, then time back-to-back batches; energy is integrated over exactly the timed window."""
    w0, w1, warm_done = _loop(runner, settings.warmup_s, settings.warmup_iterations, None)
    latencies: list[float] = []
    t0, t1, _ = _loop(runner, settings.window_s, settings.min_iterations, latencies)
    window_energy = None
    if sampler is not None:
        # One more sample after the window so its end edge lies inside the trace.
        sampler.wait_past(t1)
        window_energy = sampler.energy(t0, t1)
    return Measurement(batch, w1 - w0, warm_done, t0, t1, latencies, window_energy)
