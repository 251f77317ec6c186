"""Power-sampler cost: CPU seconds the sampling thread uses per second of sampling, while the main thread sleeps.

Two figures per case: ``Sampler.cpu_fraction`` (the sampling thread's own CPU time, user + system) and the
process-wide ``time.process_time`` delta over the same stretch (every thread; the main thread only sleeps). Cases:
RAPL over a copied recorded sysfs tree (regular files: a real sysfs read, which asks the CPU for the counter, may
cost more) at 100 Hz and 1 kHz; the estimate source over the real /proc/stat at its own 20 Hz, 100 Hz and 1 kHz;
a baseline with no sampler, first and last. Also the achieved sample rate (len(sampler.ts) / duration), the gaps
between samples, and the CPU cost of one read in a tight loop (the rest of a sample's cost is waking up for it).

The floor: an empty Python thread that wakes at 100 Hz and does nothing, paced two ways — ``time.sleep`` to an
absolute deadline, and ``threading.Event.wait(timeout)``. What a wake-up costs differs a lot between machines (a
VM's timer and context switch, cold caches after 10 ms of other work), so the sampler is judged against this floor
measured in the same run: ``ratio`` = sampler thread / sleep floor. A third floor per source, the same sleep loop
calling ``source.read()`` at each wake and keeping nothing, is what reading that source costs at all, cold: a
sampler's figure over it (``over_read``) is the sampler's own overhead. The 100 Hz block (the floors, RAPL,
estimate) runs ``--rounds`` times interleaved, and the summary gives each one's median over the rounds. ``--before REV``
adds the sampler as it was at git revision REV to that block, so a change is measured before and after in one run.
Target: under 1% of one core at 100 Hz, and within 1.25x of the sleep floor. stdout: one JSON line per case (and
one ``summary`` line); stderr: a short summary.
"""

from __future__ import annotations

import argparse
import importlib.util
import statistics
import subprocess
import sys
import tempfile
import threading
import time
from pathlib import Path

from _common import REPO, LoadMeter, copy_rapl_tree, emit, machine, note_load, say

from dnnprof.agent.measure.sampler import Sampler, clock
from dnnprof.agent.power.estimate import EstimateSource
from dnnprof.agent.power.rapl import RaplSource

TARGET = 0.01  # of one core, at 100 Hz
TARGET_RATIO = 1.25  # of the sleep floor, at 100 Hz
FLOOR_PERIOD_S = 0.01
SLEEP_FLOOR = "floor: time.sleep to a deadline"


def hot_read_us(source, n: int = 2000) -> float:
    """CPU microseconds of one ``source.read()`` in a tight loop (caches warm, no sleeping in between)."""
    t = time.thread_time()
    for _ in range(n):
        source.read()
    return (time.thread_time() - t) / n * 1e6


def _sleep_loop(period_s: float, stop: threading.Event, read=None) -> int:
    """Wake at every deadline and do nothing (or only ``read()``, keeping nothing): ``time.sleep`` to an absolute
    deadline (stop is checked per wake)."""
    n, next_t = 0, clock() + period_s
    while not stop.is_set():
        wait = next_t - clock()
        if wait > 0:
            time.sleep(wait)
        if read is not None:
            read()
        n += 1
        next_t += period_s
    return n


def _event_loop(period_s: float, stop: threading.Event, read=None) -> int:
    """The same, paced by ``Event.wait(timeout)`` (how the sampler waited until issue 19)."""
    n, next_t = 0, clock() + period_s
    while not stop.wait(max(0.0, next_t - clock())):
        n += 1
        next_t += period_s
    return n


FLOORS = {"sleep": _sleep_loop, "event": _event_loop}


def run_floor(kind: str, period_s: float, seconds: float, read=None) -> dict:
    """An empty thread waking every ``period_s`` for ``seconds`` (calling ``read`` at each wake, where given): its
    own CPU time per second and per wake-up."""
    meter = LoadMeter()
    stop, out = threading.Event(), {}

    def body() -> None:
        cpu0, wall0 = time.thread_time(), clock()
        n = FLOORS[kind](period_s, stop, read)
        out.update(cpu=time.thread_time() - cpu0, wall=clock() - wall0, wakes=n)

    p0, w0 = time.process_time(), clock()
    thread = threading.Thread(target=body, name=f"floor-{kind}", daemon=True)
    thread.start()
    time.sleep(seconds)
    stop.set()
    thread.join()
    p1, w1 = time.process_time(), clock()
    return {
        "period_s": period_s, "target_hz": round(1 / period_s, 1), "duration_s": round(out["wall"], 3),
        "wakes": out["wakes"], "rate_hz": round(out["wakes"] / out["wall"], 1),
        "cpu_fraction": round(out["cpu"] / out["wall"], 6), "process_fraction": round((p1 - p0) / (w1 - w0), 6),
        "cpu_us_per_wake": round(out["cpu"] / max(1, out["wakes"]) * 1e6, 1), "load": meter.read(),
    }


def run(source, period_s: float | None, seconds: float, sampler_cls=Sampler) -> dict:
    meter = LoadMeter()
    p0, w0 = time.process_time(), clock()
    if source is None:
        time.sleep(seconds)
        p1, w1 = time.process_time(), clock()
        return {"process_fraction": round((p1 - p0) / (w1 - w0), 6), "duration_s": round(w1 - w0, 3),
                "load": meter.read()}
    with sampler_cls(source, period_s) as sampler:
        # Leave the block half a period after a deadline (not on one), so exit_ms shows the wait for the thread.
        time.sleep(seconds + sampler.period_s / 2)
        leaving = clock()
    p1, w1 = time.process_time(), clock()
    duration = w1 - w0
    gaps = sorted(b - a for a, b in zip(sampler.ts, sampler.ts[1:]))
    target_hz = 1 / sampler.period_s
    rate = len(sampler.ts) / duration
    # The running power series a window check reads (power_stats), brought up to date over the whole trace here,
    # on this thread: work the sampler may leave to its readers is counted, not hidden (per second of sampling).
    c = time.thread_time()
    sampler.power_stats(sampler.ts[0], sampler.ts[-1])
    series_s = time.thread_time() - c
    return {
        "period_s": sampler.period_s, "target_hz": round(target_hz, 1), "duration_s": round(duration, 3),
        "samples": len(sampler.ts), "rate_hz": round(rate, 1), "rate_of_target": round(rate / target_hz, 4),
        # without the two samples taken on entering and leaving the block: the paced rate alone
        "paced_rate_hz": round((len(sampler.ts) - 2) / duration, 1),
        "read_errors": sampler.read_errors,
        "exit_ms": round((w1 - leaving) * 1e3, 3),  # leaving the block until the thread has stopped and read once
        "cpu_fraction": round(sampler.cpu_fraction, 6),
        "process_fraction": round((p1 - p0) / duration, 6),
        "series_fraction": round(series_s / duration, 6),
        "cpu_us_per_sample": round(sampler.cpu_s / max(1, len(sampler.ts) - 2) * 1e6, 1),
        "hot_read_us": round(hot_read_us(source), 1),  # the read alone; the rest of a sample is waking up for it
        "gap_ms_median": round(statistics.median(gaps) * 1e3, 3),
        "gap_ms_p99": round(gaps[min(len(gaps) - 1, int(0.99 * len(gaps)))] * 1e3, 3),
        "gap_ms_max": round(gaps[-1] * 1e3, 3),
        "load": meter.read(),
    }


def sampler_at(rev: str, tmp: Path) -> type:
    """``Sampler`` as agent/measure/sampler.py was at git revision ``rev`` (imported from a copy in ``tmp``)."""
    text = subprocess.run(["git", "show", f"{rev}:agent/measure/sampler.py"], cwd=REPO, check=True,
                          capture_output=True, text=True).stdout
    path = tmp / "sampler_before.py"
    path.write_text(text)
    spec = importlib.util.spec_from_file_location("sampler_before", path)
    module = importlib.util.module_from_spec(spec)
    sys.modules[spec.name] = module  # dataclasses look their module up while the class is made
    spec.loader.exec_module(module)
    return module.Sampler


def summarise(rows: list[dict]) -> dict:
    """Medians over the rounds of the 100 Hz block, and each sampler's ratio to the sleep floor."""
    block = [r for r in rows if r.get("block")]
    med = {}
    for label in dict.fromkeys(r["source"] for r in block):
        mine = [r for r in block if r["source"] == label]
        med[label] = {"cpu_fraction": statistics.median(r["cpu_fraction"] for r in mine),
                      "process_fraction": statistics.median(r["process_fraction"] for r in mine),
                      "us_per_wake": statistics.median(r.get("cpu_us_per_sample", r.get("cpu_us_per_wake"))
                                                       for r in mine),
                      "rounds": len(mine)}
        if "exit_ms" in mine[0]:
            med[label]["exit_ms"] = statistics.median(r["exit_ms"] for r in mine)
    floor = med[SLEEP_FLOOR]["cpu_fraction"]
    for label, values in med.items():
        values["ratio"] = round(values["cpu_fraction"] / floor, 3) if floor > 0 else None
        ref = next((r["read_floor"] for r in block if r["source"] == label and r.get("read_floor")), None)
        if ref in med and med[ref]["cpu_fraction"] > 0:
            values["over_read"] = round(values["cpu_fraction"] / med[ref]["cpu_fraction"], 3)
    return med


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--seconds", type=float, default=10.0, help="length of each case (default 10)")
    parser.add_argument("--rounds", type=int, default=3,
                        help="times the 100 Hz block (floors, RAPL, estimate) runs, interleaved (default 3)")
    parser.add_argument("--rapl-tree", default="two-packages", help="recorded tree under tests/data/powercap")
    parser.add_argument("--before", metavar="REV", help="also run the sampler of this git revision at 100 Hz")
    args = parser.parse_args()

    emit({"kind": "machine", **machine()})
    rows = []
    with tempfile.TemporaryDirectory() as tmp:
        rapl = RaplSource(root=copy_rapl_tree(args.rapl_tree, Path(tmp)))
        estimate = EstimateSource()
        rapl_label = f"rapl ({args.rapl_tree}, {len(rapl.rails)} packages)"
        rapl_read, estimate_read = "floor + rapl read: time.sleep, source.read()", "floor + estimate read: the same"
        # (label, what runs, period, sampler class or floor read, the floor of its source's read)
        block = [
            (SLEEP_FLOOR, "sleep", FLOOR_PERIOD_S, None, None),
            ("floor: Event.wait(timeout)", "event", FLOOR_PERIOD_S, None, None),
            (rapl_read, "sleep", FLOOR_PERIOD_S, rapl.read, None),
            (rapl_label, rapl, 0.01, Sampler, rapl_read),
            (estimate_read, "sleep", FLOOR_PERIOD_S, estimate.read, None),
            ("estimate (/proc/stat)", estimate, 0.01, Sampler, estimate_read),
        ]
        before = sampler_at(args.before, Path(tmp)) if args.before else None
        if before is not None:
            block += [(f"{rapl_label} @{args.before}", rapl, 0.01, before, rapl_read),
                      (f"estimate (/proc/stat) @{args.before}", estimate, 0.01, before, estimate_read)]
        cases = [("none", None, None, None, None, False)]
        for _ in range(max(1, args.rounds)):
            cases += [(*case, True) for case in block]
        cases += [
            (rapl_label, rapl, 0.001, Sampler, None, False),
            ("estimate (/proc/stat)", estimate, None, Sampler, None, False),
            ("estimate (/proc/stat)", estimate, 0.001, Sampler, None, False),
            ("none", None, None, None, None, False),
        ]
        time.sleep(1.0)  # let start-up work of native threads (numpy's BLAS pool) die down before the baseline
        for label, source, period, how, read_floor, in_block in cases:
            head = {"source": label, "block": in_block, "read_floor": read_floor}
            if isinstance(source, str):
                row = {"kind": "floor", **head, **run_floor(source, period, args.seconds, how)}
            else:
                row = {"kind": "case", **head, **run(source, period, args.seconds, how or Sampler)}
                if source is not None and abs(row["period_s"] - 0.01) < 1e-12:
                    row["meets_target"] = row["cpu_fraction"] < TARGET
            rows.append(row)
            emit(row)
    med = summarise(rows)
    emit({"kind": "summary", "rounds": args.rounds, "seconds": args.seconds, "at_100hz": med})

    say(f"\nsampler cost: CPU per second of sampling while the main thread sleeps, {args.seconds:g} s per case; "
        f"target < {TARGET:.0%} of a core at 100 Hz and within {TARGET_RATIO:g}x of the sleep floor")
    for r in rows:
        if r["source"] == "none":
            say(f"  {'no sampler (baseline)':>44}          process {r['process_fraction']:.3%} of a core")
            continue
        if r["kind"] == "floor":
            say(f"  {r['source']:>44} @{r['target_hz']:>6.0f} Hz: thread {r['cpu_fraction']:.3%}, process "
                f"{r['process_fraction']:.3%} of a core ({r['cpu_us_per_wake']:.0f} µs/wake); "
                f"{r['rate_hz']:.0f} Hz  (others used {r['load']['other_cpu_cores']:.2f} cores)")
            continue
        verdict = "" if "meets_target" not in r else ("  ok" if r["meets_target"] else "  ABOVE TARGET")
        say(f"  {r['source']:>44} @{r['target_hz']:>6.0f} Hz: thread {r['cpu_fraction']:.3%}, process "
            f"{r['process_fraction']:.3%} of a core ({r['cpu_us_per_sample']:.0f} µs/sample, read alone "
            f"{r['hot_read_us']:.0f} µs; series for readers {r['series_fraction']:.3%}); "
            f"{r['rate_hz']:.0f} Hz achieved ({r['rate_of_target']:.1%}), gap p99 {r['gap_ms_p99']:.2f} ms, "
            f"max {r['gap_ms_max']:.1f} ms, exit {r['exit_ms']:.1f} ms{verdict}  "
            f"(others used {r['load']['other_cpu_cores']:.2f} cores)")
    say(f"\n  at 100 Hz, median of {args.rounds} interleaved round(s):")
    for label, m in med.items():
        verdict = ""
        if not label.startswith("floor"):
            verdict = "  ok" if m["ratio"] is not None and m["ratio"] <= TARGET_RATIO else "  ABOVE TARGET"
        own = f" ({m['over_read']:.2f}x its source's read floor)" if "over_read" in m else ""
        own += f", exit {m['exit_ms']:.1f} ms" if "exit_ms" in m else ""
        say(f"  {label:>44}: thread {m['cpu_fraction']:.3%} of a core, {m['us_per_wake']:.0f} µs/wake, "
            f"{m['ratio']:.2f}x the sleep floor{own}{verdict}")
    note_load(rows, "wake-ups may be late and each sample may cost more (cold caches) than on a quiet machine")


if __name__ == "__main__":
    main()
