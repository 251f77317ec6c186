"""Power-sampler cost: CPU seconds the sampling thread uses per second of sampling, while the main thread sleeps.

Two figures per case: ``Sampler.cpu_fraction`` (the sampling thread's own CPU time, user + system) and the
process-wide ``time.process_time`` delta over the same stretch (every thread; the main thread only sleeps). Cases:
RAPL over a copied recorded sysfs tree (regular files: a real sysfs read, which asks the CPU for the counter, may
cost more) at 100 Hz and 1 kHz; the estimate source over the real /proc/stat at its own 20 Hz, 100 Hz and 1 kHz;
a baseline with no sampler, first and last. Also the achieved sample rate (len(sampler.ts) / duration), the gaps
between samples, and the CPU cost of one read in a tight loop (the rest of a sample's cost is waking up for it).
Target: under 1% of one core at 100 Hz. stdout: one JSON line per case; stderr: a short summary.
"""

from __future__ import annotations

import argparse
import statistics
import tempfile
import time
from pathlib import Path

from _common import LoadMeter, copy_rapl_tree, emit, machine, note_load, say

from dnnprof.agent.measure.sampler import Sampler, clock
from dnnprof.agent.power.estimate import EstimateSource
from dnnprof.agent.power.rapl import RaplSource

TARGET = 0.01  # of one core, at 100 Hz


def hot_read_us(source, n: int = 2000) -> float:
    """CPU microseconds of one ``source.read()`` in a tight loop (caches warm, no sleeping in between)."""
    t = time.thread_time()
    for _ in range(n):
        source.read()
    return (time.thread_time() - t) / n * 1e6


def run(source, period_s: float | None, seconds: float) -> dict:
    meter = LoadMeter()
    p0, w0 = time.process_time(), clock()
    if source is None:
        time.sleep(seconds)
        p1, w1 = time.process_time(), clock()
        return {"process_fraction": round((p1 - p0) / (w1 - w0), 6), "duration_s": round(w1 - w0, 3),
                "load": meter.read()}
    with Sampler(source, period_s) as sampler:
        time.sleep(seconds)
    p1, w1 = time.process_time(), clock()
    duration = w1 - w0
    gaps = sorted(b - a for a, b in zip(sampler.ts, sampler.ts[1:]))
    target_hz = 1 / sampler.period_s
    rate = len(sampler.ts) / duration
    return {
        "period_s": sampler.period_s, "target_hz": round(target_hz, 1), "duration_s": round(duration, 3),
        "samples": len(sampler.ts), "rate_hz": round(rate, 1), "rate_of_target": round(rate / target_hz, 4),
        # without the two samples taken on entering and leaving the block: the paced rate alone
        "paced_rate_hz": round((len(sampler.ts) - 2) / duration, 1),
        "read_errors": sampler.read_errors,
        "cpu_fraction": round(sampler.cpu_fraction, 6),
        "process_fraction": round((p1 - p0) / duration, 6),
        "cpu_us_per_sample": round(sampler.cpu_s / max(1, len(sampler.ts) - 2) * 1e6, 1),
        "hot_read_us": round(hot_read_us(source), 1),  # the read alone; the rest of a sample is waking up for it
        "gap_ms_median": round(statistics.median(gaps) * 1e3, 3),
        "gap_ms_p99": round(gaps[min(len(gaps) - 1, int(0.99 * len(gaps)))] * 1e3, 3),
        "gap_ms_max": round(gaps[-1] * 1e3, 3),
        "load": meter.read(),
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--seconds", type=float, default=10.0, help="length of each case (default 10)")
    parser.add_argument("--rapl-tree", default="two-packages", help="recorded tree under tests/data/powercap")
    args = parser.parse_args()

    emit({"kind": "machine", **machine()})
    rows = []
    with tempfile.TemporaryDirectory() as tmp:
        rapl = RaplSource(root=copy_rapl_tree(args.rapl_tree, Path(tmp)))
        estimate = EstimateSource()
        cases = [
            ("none", None, None),
            (f"rapl ({args.rapl_tree}, {len(rapl.rails)} packages)", rapl, 0.01),
            (f"rapl ({args.rapl_tree}, {len(rapl.rails)} packages)", rapl, 0.001),
            ("estimate (/proc/stat)", estimate, None),
            ("estimate (/proc/stat)", estimate, 0.01),
            ("estimate (/proc/stat)", estimate, 0.001),
            ("none", None, None),
        ]
        time.sleep(1.0)  # let start-up work of native threads (numpy's BLAS pool) die down before the baseline
        for label, source, period in cases:
            row = {"kind": "case", "source": label, **run(source, period, args.seconds)}
            if source is not None and abs(row["period_s"] - 0.01) < 1e-12:
                row["meets_target"] = row["cpu_fraction"] < TARGET
            rows.append(row)
            emit(row)

    say(f"\nsampler cost: CPU per second of sampling while the main thread sleeps, {args.seconds:g} s per case; "
        f"target < {TARGET:.0%} of a core at 100 Hz")
    for r in rows:
        if r["source"] == "none":
            say(f"  {'no sampler (baseline)':>36}          process {r['process_fraction']:.3%} of a core")
            continue
        verdict = "" if "meets_target" not in r else ("  ok" if r["meets_target"] else "  ABOVE TARGET")
        say(f"  {r['source']:>36} @{r['target_hz']:>6.0f} Hz: thread {r['cpu_fraction']:.3%}, process "
            f"{r['process_fraction']:.3%} of a core ({r['cpu_us_per_sample']:.0f} µs/sample, read alone "
            f"{r['hot_read_us']:.0f} µs); "
            f"{r['rate_hz']:.0f} Hz achieved ({r['rate_of_target']:.1%}), gap p99 {r['gap_ms_p99']:.2f} ms, "
            f"max {r['gap_ms_max']:.1f} ms{verdict}  (others used {r['load']['other_cpu_cores']:.2f} cores)")
    note_load(rows, "wake-ups may be late and each sample may cost more (cold caches) than on a quiet machine")


if __name__ == "__main__":
    main()
