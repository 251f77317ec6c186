"""Time to a stable point: how long the adaptive window takes, against a fixed 10 s window, at equal confidence.

For each (model, batch) point, on a freshly prepared runner: ``profiler.measure`` with the default adaptive
Settings (95% half-width targets: mean latency 1%, average power 2%; window 1 s to 20 s) and the estimate power
source over the real /proc/stat; it records the warm-up (time, batches, steady or not), the window length, the stop
reason and the relative half-widths achieved. Then, on the same runner, a FIXED window of --fixed-seconds
(Settings(window_min_s=F, window_max_s=F), same targets) and its half-widths. Reported: adaptive window / fixed
window, the same with warm-up included, whether each window met both targets ("equal confidence" when both did),
and whether the two windows' means agree within their combined intervals.

The estimate source turns CPU utilisation of the WHOLE machine into watts, so other processes' load is in its
power figure and its spread. stdout: one JSON line per point; stderr: a short summary.
"""

from __future__ import annotations

import argparse
import math
import tempfile
import time
from pathlib import Path

from _common import LoadMeter, emit, machine, make_models, note_load, parse_points, say

from dnnprof.agent.backends.onnxruntime import OnnxRuntimeBackend
from dnnprof.agent.measure import profiler
from dnnprof.agent.measure.sampler import Sampler
from dnnprof.agent.power.estimate import EstimateSource

DEFAULT_POINTS = "shufflenet_v2_x0_5:1,shufflenet_v2_x0_5:8,resnet18:1,resnet18:8"


def one(runner, batch: int, settings: profiler.Settings) -> dict:
    t = time.monotonic()
    with Sampler(EstimateSource()) as sampler:
        m = profiler.measure(runner, batch, settings, sampler)
    wall = time.monotonic() - t
    c = m.confidence()
    lat_mean_ms = m.latency_ms.mean
    return {
        "warmup_s": round(m.warmup_s, 3), "warmup_iterations": m.warmup_iterations, "warmup_steady": m.warmup_steady,
        "window_s": round(m.window_s, 3), "stop": m.stop, "iterations": len(m.latencies_s),
        "wall_s": round(wall, 3),  # the whole call: warm-up, window, the wait for one sample past the window
        "latency_mean_ms": round(lat_mean_ms, 4), "latency_hw_ms": c.latency_ms_mean,
        "latency_rel": round(c.latency_relative, 5), "latency_cov": round(m.latency_cov, 4),
        "power_w": round(m.power_w, 3), "power_hw_w": c.power_w,
        "power_rel": round(c.power_relative, 5) if c.power_relative is not None else None,
        "power_samples": len(m.power_series_w), "throughput_ips": round(m.throughput_ips, 2),
        "met_targets": c.latency_relative <= settings.latency_ci and c.power_relative is not None
        and c.power_relative <= settings.power_ci,
    }


def agree(a_mean: float, a_hw: float, b_mean: float, b_hw: float) -> bool:
    """Two means agree when their difference lies within the combined 95% half-widths."""
    return abs(a_mean - b_mean) <= math.hypot(a_hw, b_hw)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--points", default=DEFAULT_POINTS, help=f"model:batch list (default {DEFAULT_POINTS})")
    parser.add_argument("--fixed-seconds", type=float, default=10.0, help="length of the fixed window (default 10)")
    parser.add_argument("--threads", type=int, default=None, help="onnxruntime intra-op threads (default: all CPUs)")
    args = parser.parse_args()
    points = parse_points(args.points)

    emit({"kind": "machine", **machine()})
    backend = OnnxRuntimeBackend(args.threads)
    adaptive = profiler.Settings()
    fixed = profiler.Settings(window_min_s=args.fixed_seconds, window_max_s=args.fixed_seconds)
    rows = []
    with tempfile.TemporaryDirectory() as tmp:
        models = make_models(sorted({name for name, _ in points}), Path(tmp) / "models")
        for name, batch in points:
            runner = backend.prepare(models[name], batch, "fp32")
            meter = LoadMeter()
            a = one(runner, batch, adaptive)
            f = one(runner, batch, fixed)
            runner.close()
            row = {
                "kind": "point", "model": name, "batch": batch,
                "targets": {"latency_rel": adaptive.latency_ci, "power_rel": adaptive.power_ci},
                "adaptive": a, "fixed": f,
                "window_ratio": round(a["window_s"] / f["window_s"], 4),
                "window_ratio_nominal": round(a["window_s"] / args.fixed_seconds, 4),
                "with_warmup_ratio": round((a["warmup_s"] + a["window_s"]) / (f["warmup_s"] + f["window_s"]), 4),
                "equal_confidence": a["met_targets"] and f["met_targets"],
                "latency_agrees": agree(a["latency_mean_ms"], a["latency_hw_ms"], f["latency_mean_ms"],
                                        f["latency_hw_ms"]),
                "power_agrees": agree(a["power_w"], a["power_hw_w"], f["power_w"], f["power_hw_w"]),
                "throughput_diff_rel": round(a["throughput_ips"] / f["throughput_ips"] - 1, 4),
                "load": meter.read(),
            }
            rows.append(row)
            emit(row)

    say(f"\ntime to a stable point: adaptive window (targets latency {adaptive.latency_ci:.0%}, power "
        f"{adaptive.power_ci:.0%}, 95%) against a fixed {args.fixed_seconds:g} s window, estimate power source")
    for r in rows:
        a, f = r["adaptive"], r["fixed"]
        say(f"  {r['model']:>20} b{r['batch']:<2} adaptive {a['window_s']:5.2f} s ({a['stop']}, "
            f"lat ±{a['latency_rel']:.2%}, pow ±{a['power_rel']:.2%}) vs fixed {f['window_s']:5.2f} s "
            f"(lat ±{f['latency_rel']:.2%}, "
            f"pow ±{f['power_rel']:.2%}): ratio {r['window_ratio']:.2f}, {r['with_warmup_ratio']:.2f} with warm-up; "
            f"{'equal confidence' if r['equal_confidence'] else 'NOT equal confidence'}; means agree: "
            f"latency {'yes' if r['latency_agrees'] else 'NO'}, power {'yes' if r['power_agrees'] else 'NO'}; "
            f"warm-up {a['warmup_s']:.2f} s / {a['warmup_iterations']} batches, "
            f"{'steady' if a['warmup_steady'] else 'NOT steady'}  "
            f"(others used {r['load']['other_cpu_cores']:.2f} cores)")
    note_load(rows, "latency spread, convergence time and the estimated power all carry that load")


if __name__ == "__main__":
    main()
