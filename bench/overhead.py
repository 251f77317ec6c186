"""Harness overhead: images/s through ``profiler.measure`` with a power sampler running, against a bare loop of
``runner.infer()`` timed with ``time.perf_counter``, on the same runner (model, batch, input) in the same run.

Arms are interleaved against noise: each round runs the bare loop and one profiler window per power source (the
estimate source over the real /proc/stat at 20 Hz; RAPL over a copied recorded sysfs tree at 100 Hz), in an order
rotated every round; the figure is the per-round ratio profiler/bare, its median and spread. Target: >= 99.5%.

Profiler windows last exactly --seconds (interval targets out of reach) and check their intervals every 0.25 s
from 1 s on, as an unconverged window does; warm-up (bounded at 0.3 s) is outside every timed window. Also given:
the time those checks take inside the window (measured), their projected share of a full 20 s window (they can
grow with what has accumulated), the median over quiet rounds only (other processes' CPU use is metered each
round), and the ratio predicted from the harness's own costs (checks + sampler CPU spread over the cores inference
uses), which noise hardly moves. --control adds diagnostic arms. stdout: JSON lines (rounds, summaries); stderr: a
short summary.
"""

from __future__ import annotations

import argparse
import contextlib
import math
import os
import statistics
import tempfile
import time
from pathlib import Path

from _common import LoadMeter, copy_rapl_tree, emit, machine, make_models, note_load, say, spread

from dnnprof.agent.backends.onnxruntime import OnnxRuntimeBackend
from dnnprof.agent.measure import profiler
from dnnprof.agent.measure.sampler import Sampler
from dnnprof.agent.power.estimate import EstimateSource
from dnnprof.agent.power.rapl import RaplSource

TARGET = 0.995


class CheckTimer:
    """Stands in for ``profiler._tight`` during a window and records how long each interval check takes (checks run
    on the main thread between batches, so every microsecond of them is a microsecond of lost inference)."""

    def __init__(self) -> None:
        self.original = profiler._tight
        self.seconds = 0.0
        self.calls: list[tuple[float, float]] = []  # (seconds into the window, duration)
        self._made = time.monotonic()

    def __call__(self, *args, **kwargs):
        t = time.perf_counter()
        try:
            return self.original(*args, **kwargs)
        finally:
            spent = time.perf_counter() - t
            self.seconds += spent
            try:  # _tight(latencies, sampler, t0, now, settings)
                into = float(args[3]) - float(args[2])
            except (IndexError, TypeError, ValueError):
                into = time.monotonic() - self._made
            self.calls.append((into, spent))

    def __enter__(self) -> CheckTimer:
        profiler._tight = self
        return self

    def __exit__(self, *exc) -> None:
        profiler._tight = self.original


def bare(runner, iterations: int, batch: int) -> float:
    """Images/s of ``iterations`` back-to-back batches, nothing else in the loop."""
    infer = runner.infer
    t0 = time.perf_counter()
    for _ in range(iterations):
        infer()
    return iterations * batch / (time.perf_counter() - t0)


def projected_check_fraction(last_check_s: float, settings: profiler.Settings) -> float:
    """Share of a window of any length spent in interval checks: a check costs O(blocks) whatever the window's
    length (running prefix sums for latency and power), so it is the last check's cost per check period."""
    return last_check_s / settings.check_every_s


def predicted_ratio(sampler_cpu_fraction: float, check_fraction: float, threads: int) -> float:
    """An idealised ratio from what the harness costs rather than from two noisy throughputs, for a quiet machine:
    the checks stop inference outright; the sampler's CPU comes out of inference's evenly when inference keeps every
    core busy, and out of an idle core (costing nothing) when it does not. A parallel step that waits for its
    slowest thread can lose more than this."""
    cpus = os.cpu_count() or 1
    stolen = sampler_cpu_fraction / cpus if threads >= cpus else 0.0
    return (1 - check_fraction) * (1 - stolen)


def run_arm(kind: str, source, runner, batch: int, iterations: int, window: profiler.Settings) -> dict:
    """One timed run: the bare loop or a profiler window, each with or without a sampler running beside it."""
    out: dict = {}
    with contextlib.ExitStack() as stack:
        sampler = stack.enter_context(Sampler(source)) if source is not None else None
        if kind == "bare":
            out["ips"] = bare(runner, iterations, batch)
        else:
            checks = stack.enter_context(CheckTimer())
            m = profiler.measure(runner, batch, window, sampler)
            out["ips"] = m.throughput_ips
            out["check_fraction"] = checks.seconds / m.window_s
            out["last_check"] = checks.calls[-1]  # (seconds into the window, duration)
    if sampler is not None:
        out["sampler_cpu"] = sampler.cpu_fraction
        if kind == "profiler":
            t = time.perf_counter()
            sampler.power_series(m.t0, m.t1)
            out["per_sample"] = (time.perf_counter() - t) / max(1, len(sampler.ts))
            out["samples_per_s"] = len(sampler.ts) / (sampler.ts[-1] - sampler.ts[0])
    return out


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--models", default="shufflenet_v2_x0_5,resnet18", help="zoo names, comma-separated")
    parser.add_argument("--batches", default="1,8", help="batch sizes, comma-separated")
    parser.add_argument("--rounds", type=int, default=7, help="interleaved rounds per model/batch (default 7)")
    parser.add_argument("--seconds", type=float, default=1.5,
                        help="length of each bare run and each profiler window (default 1.5)")
    parser.add_argument("--threads", type=int, default=None, help="onnxruntime intra-op threads (default: all CPUs)")
    parser.add_argument("--quiet", type=float, default=0.1,
                        help="a round is quiet when other processes used fewer CPU cores than this (default 0.1)")
    parser.add_argument("--control", action="store_true",
                        help="add two diagnostic arms: the profiler with no sampler, and the bare loop with the "
                             "RAPL sampler running (which part of the harness costs what)")
    parser.add_argument("--rapl-tree", default="two-packages", help="recorded tree under tests/data/powercap")
    args = parser.parse_args()
    names = [n.strip() for n in args.models.split(",")]
    batches = [int(b) for b in args.batches.split(",")]

    emit({"kind": "machine", **machine()})
    backend = OnnxRuntimeBackend(args.threads)
    window = profiler.Settings(
        warmup_min_s=0.0, warmup_max_s=0.3, window_min_s=min(1.0, args.seconds), window_max_s=args.seconds,
        min_iterations=1, latency_ci=1e-9,  # out of reach: every window lasts exactly --seconds
    )
    full = profiler.Settings()  # for the projection to a full-length window
    summaries = []
    with tempfile.TemporaryDirectory() as tmp:
        models = make_models(names, Path(tmp) / "models")
        estimate, rapl = EstimateSource(), RaplSource(root=copy_rapl_tree(args.rapl_tree, Path(tmp)))
        arms = {"bare": ("bare", None), "estimate": ("profiler", estimate), "rapl": ("profiler", rapl)}
        if args.control:
            arms |= {"profiler-no-sampler": ("profiler", None), "bare+rapl-sampler": ("bare", rapl)}
        names_of_arms = list(arms)
        for name in names:
            for batch in batches:
                runner = backend.prepare(models[name], batch, "fp32")
                meter = LoadMeter()
                warm_s, warm_n, _ = profiler.warm_up(runner, profiler.Settings())
                iterations = max(3, math.ceil(args.seconds / (warm_s / warm_n)))
                runs: dict[str, list[dict]] = {a: [] for a in arms}
                quiet: list[bool] = []  # rounds in which other processes used next to no CPU
                for r in range(args.rounds):
                    k = r % len(names_of_arms)
                    order = names_of_arms[k:] + names_of_arms[:k]
                    round_meter = LoadMeter()
                    got = {arm: run_arm(*arms[arm], runner, batch, iterations, window) for arm in order}
                    others = round_meter.read()["other_cpu_cores"]
                    quiet.append(others < args.quiet)
                    for arm in arms:
                        got[arm]["ratio"] = got[arm]["ips"] / got["bare"]["ips"]
                        runs[arm].append(got[arm])
                    emit({"kind": "round", "model": name, "batch": batch, "round": r, "order": order,
                          **{f"{a}_ips": round(got[a]["ips"], 2) for a in arms},
                          **{f"{a}_ratio": round(got[a]["ratio"], 5) for a in arms if a != "bare"},
                          "other_cpu_cores": others})
                load = meter.read()
                runner.close()
                bare_ips = [x["ips"] for x in runs["bare"]]
                for arm, (kind, source) in arms.items():
                    if arm == "bare":
                        continue
                    ratios = [x["ratio"] for x in runs[arm]]
                    sp = spread(ratios)
                    calm = [x for x, q in zip(ratios, quiet) if q]

                    def med(key: str, of: list[dict] = runs[arm]) -> float:
                        return statistics.median(x[key] for x in of)

                    record = {
                        "kind": "summary", "model": name, "batch": batch, "arm": arm,
                        "source": source.name if source else None, "period_s": source.period_s if source else None,
                        "rounds": args.rounds, "seconds": args.seconds, "bare_iterations": iterations,
                        "threads": runner.threads,
                        "ratio_median": round(sp["median"], 5), "ratio_q1": round(sp["q1"], 5),
                        "ratio_q3": round(sp["q3"], 5), "ratio_min": round(sp["min"], 5),
                        "ratio_max": round(sp["max"], 5),
                        "quiet_rounds": len(calm),
                        "ratio_median_quiet": round(statistics.median(calm), 5) if calm else None,
                        "bare_ips_median": round(statistics.median(bare_ips), 2),
                        "arm_ips_median": round(med("ips"), 2),
                        "bare_ips_cov": round(statistics.stdev(bare_ips) / statistics.fmean(bare_ips), 4)
                        if len(bare_ips) > 1 else 0.0,
                        "sampler_cpu_fraction_median": round(med("sampler_cpu"), 5) if source else None,
                        "meets_target": sp["median"] >= TARGET, "load": load,
                    }
                    if kind == "profiler":
                        record["check_fraction_in_window_median"] = round(med("check_fraction"), 6)
                        record["predicted_ratio"] = round(predicted_ratio(
                            med("sampler_cpu") if source else 0.0, med("check_fraction"), runner.threads), 5)
                        last_check = statistics.median(x["last_check"][1] for x in runs[arm])
                        per_sample, rate = (med("per_sample"), med("samples_per_s")) if source else (0.0, 0.0)
                        record["last_check_us"] = round(last_check * 1e6, 1)
                        record["series_us_per_sample"] = round(per_sample * 1e6, 3)
                        record["projected_check_fraction_20s"] = round(
                            projected_check_fraction(last_check, full), 5)
                    summaries.append(record)
                    emit(record)

    say(f"\nharness overhead: arm images/s ÷ bare images/s, median [q1, q3] (min–max) of {args.rounds} "
        f"interleaved rounds of {args.seconds:g} s; target ≥ {TARGET:.1%}")
    for s in summaries:
        rate = f"@{1 / s['period_s']:.0f} Hz" if s["period_s"] else ""
        line = (f"  {s['model']:>18} b{s['batch']:<2} {s['arm']:>19} {rate:>7}: "
                f"{s['ratio_median']:.2%} [{s['ratio_q1']:.2%}, {s['ratio_q3']:.2%}] "
                f"({s['ratio_min']:.2%}–{s['ratio_max']:.2%}), quiet rounds {s['quiet_rounds']}"
                + (f" median {s['ratio_median_quiet']:.2%}" if s["quiet_rounds"] else ""))
        if "predicted_ratio" in s:
            line += f", from costs {s['predicted_ratio']:.2%}"
        line += f"; bare {s['bare_ips_median']:.1f} img/s"
        if s["sampler_cpu_fraction_median"] is not None:
            line += f"; sampler {s['sampler_cpu_fraction_median']:.2%} core"
        if "check_fraction_in_window_median" in s:
            line += (f"; checks {s['check_fraction_in_window_median']:.3%} of window, "
                     f"≤{s['projected_check_fraction_20s']:.2%} of a 20 s one")
        line += (f"; {'ok' if s['meets_target'] else 'BELOW TARGET'} "
                 f"(others used {s['load']['other_cpu_cores']:.2f} cores)")
        say(line)
    note_load(summaries, "the ratios carry that noise")


if __name__ == "__main__":
    main()
