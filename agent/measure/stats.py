"""Statistics of a measurement window: percentiles, Student's t, and confidence intervals by batch means.

Pure functions on plain lists, free of clocks and threads, so the profiler and the sampler share them.
"""

from __future__ import annotations

import math
import statistics

from dnnprof.shared import schema


def t_quantile_975(df: int) -> float:
    """Two-sided 95% quantile of Student's t with ``df`` degrees of freedom (table to 30, then a series)."""
    table = (12.706, 4.303, 3.182, 2.776, 2.571, 2.447, 2.365, 2.306, 2.262, 2.228, 2.201, 2.179, 2.160, 2.145,
             2.131, 2.120, 2.110, 2.101, 2.093, 2.086, 2.080, 2.074, 2.069, 2.064, 2.060, 2.056, 2.052, 2.048,
             2.045, 2.042)
    if df < 1:
        return math.inf
    if df <= len(table):
        return table[df - 1]
    z = 1.959964
    return z + (z**3 + z) / (4 * df) + (5 * z**5 + 16 * z**3 + 3 * z) / (96 * df**2)


BLOCKS = 30  # batch means: the interval is computed over at most this many contiguous blocks


def prefix_sums(values: list[float]) -> list[float]:
    out = [0.0]
    for v in values:
        out.append(out[-1] + v)
    return out


def batch_means_half_width(prefix: list[float], start: int = 0, stop: int | None = None,
                           blocks: int = BLOCKS) -> float:
    """95% half-width of the mean of values[start:stop] by the method of batch means, from prefix sums
    (prefix[i] = sum of the first i values).

    Consecutive batches are correlated (clock and thermal drift, caches), so treating every batch as an
    independent sample makes the interval too narrow; the means of ``blocks`` contiguous blocks are far closer to
    independent. With fewer than 2 × ``blocks`` values each value is its own block.
    """
    stop = len(prefix) - 1 if stop is None else stop
    n = stop - start
    if n < 2:
        return math.inf
    k, size = (n, 1) if n < 2 * blocks else (blocks, n // blocks)
    means = [(prefix[start + (i + 1) * size] - prefix[start + i * size]) / size for i in range(k)]
    return t_quantile_975(k - 1) * statistics.stdev(means) / math.sqrt(k)


def half_width(values: list[float], blocks: int = BLOCKS) -> float:
    """95% confidence half-width of the mean of ``values`` (batch means; inf with fewer than two values)."""
    return batch_means_half_width(prefix_sums(values), blocks=blocks)


def percentile(ordered: list[float], percent: int) -> float:
    """Linear interpolation between closest ranks (numpy's default; statistics' "inclusive" method).

    Written so that equal neighbours give exactly their value and the result never leaves [min, max]:
    ``statistics.quantiles`` computes ``(a*(n-d) + b*d)/n``, which for a == b can land an ulp above the maximum.
    """
    index, rest = divmod((len(ordered) - 1) * percent, 100)
    if rest == 0:
        return ordered[index]
    lo, hi = ordered[index], ordered[index + 1]
    return min(hi, lo + (hi - lo) * (rest / 100))


def latency_stats(seconds: list[float]) -> schema.Latency:
    """Mean, stdev and percentiles of per-batch times, in milliseconds."""
    ms = sorted(x * 1e3 for x in seconds)
    return schema.Latency(
        mean=statistics.fmean(ms), stdev=statistics.stdev(ms) if len(ms) > 1 else 0.0,  # one batch: no spread
        p50=percentile(ms, 50), p90=percentile(ms, 90), p95=percentile(ms, 95), p99=percentile(ms, 99),
        min=ms[0], max=ms[-1], batches=len(ms),
    )




class RunningSeries:
    """Values with running prefix sums, so a confidence check costs O(blocks) however long the series grows."""

    def __init__(self) -> None:
        self.prefix = [0.0]

    def __len__(self) -> int:
        return len(self.prefix) - 1

    def add(self, x: float) -> None:
        self.prefix.append(self.prefix[-1] + x)

    def mean(self, start: int = 0, stop: int | None = None) -> float:
        stop = len(self) if stop is None else stop
        return (self.prefix[stop] - self.prefix[start]) / (stop - start) if stop > start else math.nan

    def half_width(self, start: int = 0, stop: int | None = None) -> float:
        return batch_means_half_width(self.prefix, start, stop)
