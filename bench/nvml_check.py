"""NVML check on a lent NVIDIA GPU: the total-energy counter against integrated power samples, under a known load.

Opens the GPU twice through the real source (agent/power/nvml.py): ``NvmlSource(INDEX)`` reads the energy counter
(``nvmlDeviceGetTotalEnergyConsumption``), ``NvmlSource(INDEX, use_counter=False)`` the power samples
(``nvmlDeviceGetPowerUsage``), each on its own Sampler at the source's own period, as a sweep would. Meanwhile it
loads the GPU with half-precision matrix products (PyTorch, else CuPy — whichever is there) on a fixed schedule:

  idle IDLE s → load LOAD s → idle IDLE s → PULSES × (0.5 s load, 0.5 s idle) → idle 1 s

and compares the two energies over the whole trace, the load, its steady part (after 3 s), the idle after it, the
pulses, and each 0.5 s pulse alone (where NVML's 1 s power average on Ampere and newer shows). It also reports how
often each reading changes (the sensor's update interval, which the source does not know), the CPU cost of a read,
the source's ``conditions()`` (clocks, temperature, throttle reasons) at the start, mid-load and end, and whether the
power during the load rose above idle (the load ran on the GPU that was read).

stdout: one JSON record; stderr: a short summary. Takes about 35 s plus imports with the defaults (under 2 minutes
by construction: longer schedules are refused). Without nvidia-ml-py, a driver, a GPU, or PyTorch/CuPy it prints one
line saying which and exits 2. CUDA numbers GPUs fastest first unless CUDA_DEVICE_ORDER=PCI_BUS_ID, which this
sets (when not set already) so that the CUDA index is NVML's.

    python bench/nvml_check.py [--gpu 0] [--load-s 20] [--idle-s 3] [--pulses 6] [--framework auto|torch|cupy]
"""

from __future__ import annotations

import argparse
import os
import statistics
import sys
import time
import types
from pathlib import Path

from _common import emit, say

REPO = Path(__file__).resolve().parent.parent
MAX_SCHEDULE_S = 90.0  # idle + load + idle + pulses + tail, so that imports and set-up stay within 2 minutes
STEADY_AFTER_S = 3.0
PULSE_S = 0.5
TAIL_S = 1.0
AGREE_PCT = 5.0  # over the whole trace the two energies should agree this closely


class Missing(Exception):
    """Something the check needs is not here; ``str()`` is the one line to print."""


def _dnnprof():
    """Import dnnprof's power code: installed, or straight from this checkout (its package directories are named
    as the subpackages: dnnprof.agent = agent/, dnnprof.shared = shared/)."""
    try:
        import dnnprof.agent.power  # noqa: F401
    except ImportError:
        for name in [n for n in sys.modules if n == "dnnprof" or n.startswith("dnnprof.")]:
            del sys.modules[name]
        package = types.ModuleType("dnnprof")
        package.__path__ = [str(REPO)]
        sys.modules["dnnprof"] = package
    try:
        from dnnprof.agent.measure.sampler import Sampler, clock
        from dnnprof.agent.power.base import SourceUnavailable
        from dnnprof.agent.power.nvml import NvmlSource
    except ImportError as exc:
        raise Missing(f"dnnprof's power code does not import ({exc}): pip install -e '.[nvml]' in this checkout") \
            from None
    return Sampler, clock, SourceUnavailable, NvmlSource


class Load:
    """Matrix products on one GPU, in chunks of about 20 ms each ended by a synchronisation."""

    def __init__(self, framework: str, index: int, size: int = 8192) -> None:
        self.framework, self.index = framework, index
        if framework == "torch":
            import torch

            if not torch.cuda.is_available():
                raise Missing("PyTorch is installed but sees no CUDA GPU")
            if index >= torch.cuda.device_count():
                raise Missing(f"CUDA sees {torch.cuda.device_count()} GPU(s): there is no cuda:{index}")
            self.device = torch.device(f"cuda:{index}")
            self.name = torch.cuda.get_device_name(index)
            self.version = f"torch {torch.__version__}"
            self.a = torch.randn(size, size, device=self.device, dtype=torch.float16)
            self.b = torch.randn(size, size, device=self.device, dtype=torch.float16)
            self._mm = lambda: torch.matmul(self.a, self.b)
            self._sync = lambda: torch.cuda.synchronize(self.device)
        else:
            import cupy

            if index >= cupy.cuda.runtime.getDeviceCount():
                raise Missing(f"CUDA sees {cupy.cuda.runtime.getDeviceCount()} GPU(s): there is no device {index}")
            cupy.cuda.Device(index).use()
            props = cupy.cuda.runtime.getDeviceProperties(index)
            self.name = props["name"].decode() if isinstance(props["name"], bytes) else str(props["name"])
            self.version = f"cupy {cupy.__version__}"
            self.a = cupy.random.standard_normal((size, size), dtype=cupy.float32).astype(cupy.float16)
            self.b = cupy.random.standard_normal((size, size), dtype=cupy.float32).astype(cupy.float16)
            self._mm = lambda: cupy.matmul(self.a, self.b)
            self._sync = lambda: cupy.cuda.Device(index).synchronize()
        self.per_chunk = 1
        self.chunks = 0
        self._calibrate()

    def _calibrate(self) -> None:
        self.chunk()  # first use: kernels load, memory settles
        start = time.perf_counter()
        self.chunk()
        one = max(time.perf_counter() - start, 1e-4)
        self.per_chunk = max(1, round(0.02 / one))
        self.chunks = 0

    def chunk(self) -> None:
        for _ in range(self.per_chunk):
            self._mm()
        self._sync()
        self.chunks += 1

    def run_until(self, clock, end: float, midway=None) -> None:
        mid = None if midway is None else (clock() + end) / 2
        while clock() < end:
            self.chunk()
            if mid is not None and clock() >= mid:
                midway()
                mid = None


def pick_framework(choice: str) -> str:
    names = ("torch", "cupy") if choice == "auto" else (choice,)
    for name in names:
        try:
            __import__(name)
            return name
        except ImportError:
            continue
    if choice == "auto":
        raise Missing("neither PyTorch nor CuPy is importable here: the check needs one of them to load the GPU")
    raise Missing(f"{choice} is not importable here")


def change_intervals(ts: list[float], values: list[tuple[float, ...]]) -> dict | None:
    """How often the first rail's reading changed: median, 10th and 90th percentile of the gaps, in ms."""
    changes = [t for t, v, prev in zip(ts[1:], values[1:], values) if v[0] != prev[0]]
    gaps = sorted(b - a for a, b in zip(changes, changes[1:]))
    if len(gaps) < 3:
        return None
    return {"median_ms": round(statistics.median(gaps) * 1e3, 2), "p10_ms": round(gaps[len(gaps) // 10] * 1e3, 2),
            "p90_ms": round(gaps[len(gaps) * 9 // 10] * 1e3, 2), "changes": len(changes)}


def read_cost_us(source, n: int = 200) -> dict:
    cpu, wall = time.thread_time(), time.perf_counter()
    for _ in range(n):
        source.read()
    return {"cpu_us": round((time.thread_time() - cpu) / n * 1e6, 1),
            "wall_us": round((time.perf_counter() - wall) / n * 1e6, 1)}


def compare(counter_sampler, power_sampler, t0: float, t1: float) -> dict:
    counter_j = counter_sampler.energy(t0, t1).energy_j
    power_j = power_sampler.energy(t0, t1).energy_j
    diff = (power_j - counter_j) / counter_j * 100 if counter_j > 0 else None
    return {"t0": round(t0, 3), "seconds": round(t1 - t0, 3), "counter_j": round(counter_j, 3),
            "power_j": round(power_j, 3), "counter_w": round(counter_j / (t1 - t0), 2),
            "power_w": round(power_j / (t1 - t0), 2), "power_vs_counter_pct": None if diff is None else round(diff, 2)}


def conditions_dict(state) -> dict:
    return {"clocks_mhz": state.clocks_mhz, "temperatures_c": state.temperatures_c,
            "throttle_reasons": state.throttle_reasons, "clock_event_reasons": state.clock_event_reasons,
            "unreadable": state.unreadable}


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0],
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--gpu", type=int, default=0, help="NVML index of the GPU to load and read (default 0)")
    parser.add_argument("--load-s", type=float, default=20.0, help="length of the steady load (default 20 s)")
    parser.add_argument("--idle-s", type=float, default=3.0, help="idle before and after the load (default 3 s)")
    parser.add_argument("--pulses", type=int, default=6, help="0.5 s load / 0.5 s idle pulses (default 6)")
    parser.add_argument("--framework", choices=("auto", "torch", "cupy"), default="auto",
                        help="what loads the GPU (default: PyTorch, else CuPy)")
    args = parser.parse_args()
    schedule_s = 2 * args.idle_s + args.load_s + args.pulses * 2 * PULSE_S + TAIL_S
    if args.load_s <= STEADY_AFTER_S or args.idle_s <= 0 or args.pulses < 0 or args.gpu < 0:
        parser.error(f"give --load-s above {STEADY_AFTER_S:g}, a positive --idle-s, --pulses >= 0, --gpu >= 0")
    if schedule_s > MAX_SCHEDULE_S:
        parser.error(f"the schedule would take {schedule_s:g} s: at most {MAX_SCHEDULE_S:g} s keeps the check "
                     "under 2 minutes")
    os.environ.setdefault("CUDA_DEVICE_ORDER", "PCI_BUS_ID")  # before CUDA starts: CUDA's index = NVML's
    started = time.monotonic()
    counter = power = None
    try:
        Sampler, clock, SourceUnavailable, NvmlSource = _dnnprof()
        try:
            counter = NvmlSource(str(args.gpu))
            power = NvmlSource(str(args.gpu), use_counter=False)
        except SourceUnavailable as exc:
            raise Missing(f"NVML: {exc}") from None
        framework = pick_framework(args.framework)
        load = Load(framework, args.gpu)
        return run(args, Sampler, clock, counter, power, load, started)
    except Missing as exc:
        print(f"nvml_check: {exc}", file=sys.stderr)
        return 2
    finally:
        for source in (counter, power):
            if source is not None:
                source.close()


def run(args, Sampler, clock, counter, power, load: Load, started: float) -> int:
    record: dict = {
        "gpu": args.gpu, "nvml_rails": list(counter.rails), "nvml_info": counter.info, "cuda_name": load.name,
        "framework": load.version, "cuda_device_order": os.environ.get("CUDA_DEVICE_ORDER"),
        "cuda_visible_devices": os.environ.get("CUDA_VISIBLE_DEVICES"),
        "counter_source": {"quantity": counter.quantity, "method": counter.method, "notes": counter.notes,
                           "period_s": counter.period_s},
        "power_source": {"quantity": power.quantity, "method": power.method, "notes": power.notes,
                         "period_s": power.period_s},
        "read_cost": {"counter": read_cost_us(counter), "power": read_cost_us(power)},
        "schedule": {"idle_s": args.idle_s, "load_s": args.load_s, "pulses": args.pulses, "pulse_s": PULSE_S},
    }
    if counter.quantity != "energy_j":
        record["comparison"] = None
        record["why_no_comparison"] = "this GPU has no total-energy counter: only power samples"
    conditions = {"start": conditions_dict(counter.conditions())}
    marks: dict[str, float] = {}
    pulses: list[tuple[float, float]] = []
    with Sampler(counter) as counter_sampler, Sampler(power) as power_sampler:
        marks["start"] = clock()
        time.sleep(args.idle_s)
        marks["load_start"] = clock()
        load.run_until(clock, marks["load_start"] + args.load_s,
                       midway=lambda: conditions.__setitem__("mid_load", conditions_dict(counter.conditions())))
        marks["load_end"] = clock()
        time.sleep(args.idle_s)
        marks["pulses_start"] = clock()
        for _ in range(args.pulses):
            on = clock()
            load.run_until(clock, on + PULSE_S)
            pulses.append((on, clock()))
            time.sleep(max(0.0, on + 2 * PULSE_S - clock()))
        marks["pulses_end"] = clock()
        time.sleep(TAIL_S)
        marks["end"] = clock()
        counter_sampler.wait_past(marks["end"])
        power_sampler.wait_past(marks["end"])
    conditions["end"] = conditions_dict(counter.conditions())
    record["conditions"] = conditions
    record["samplers"] = {
        name: {"samples": len(s.ts), "read_errors": s.read_errors,
               "rate_hz": round((len(s.ts) - 1) / (s.ts[-1] - s.ts[0]), 1),
               "cpu_fraction": None if s.cpu_fraction is None else round(s.cpu_fraction, 5),
               "update_interval": change_intervals(s.ts, s.values)}
        for name, s in (("counter", counter_sampler), ("power", power_sampler))}
    record["load_chunks"] = load.chunks
    if counter.quantity == "energy_j":
        windows = {"whole": (marks["start"] + 0.1, marks["end"] - 0.1),
                   "load": (marks["load_start"], marks["load_end"]),
                   "load_steady": (marks["load_start"] + STEADY_AFTER_S, marks["load_end"]),
                   "idle_before": (marks["start"] + 0.1, marks["load_start"]),
                   "idle_after": (marks["load_end"], marks["pulses_start"])}
        if pulses:
            windows["pulses"] = (marks["pulses_start"], marks["pulses_end"])
        record["comparison"] = {name: compare(counter_sampler, power_sampler, *w) for name, w in windows.items()}
        record["pulse_on"] = [compare(counter_sampler, power_sampler, a, b) for a, b in pulses]
        idle_w = record["comparison"]["idle_before"]["counter_w"]
        load_w = record["comparison"]["load_steady"]["counter_w"]
        record["load_reached_the_gpu"] = load_w > 1.3 * idle_w
        whole = record["comparison"]["whole"]["power_vs_counter_pct"]
        record["agree_within_pct"] = AGREE_PCT
        record["agree"] = whole is not None and abs(whole) <= AGREE_PCT
    record["wall_s"] = round(time.monotonic() - started, 1)
    emit(record)
    summary(record)
    return 0


def summary(record: dict) -> None:
    say(f"nvml_check: GPU {record['gpu']} {record['nvml_info']} loaded by {record['framework']} "
        f"(CUDA name {record['cuda_name']!r}), {record['wall_s']} s")
    for name, s in record["samplers"].items():
        upd = s["update_interval"]
        changes = f"value changes every {upd['median_ms']} ms (p10 {upd['p10_ms']}, p90 {upd['p90_ms']})" if upd \
            else "too few value changes to say how often it updates"
        say(f"  {name:7s}: {s['samples']} reads at {s['rate_hz']} Hz, {s['read_errors']} errors, "
            f"{record['read_cost'][name]['cpu_us']} µs CPU a read; {changes}")
    if record.get("comparison") is None:
        say(f"  no comparison: {record.get('why_no_comparison')}")
        return
    say("  window          seconds   counter J    power J   counter W   power W   power vs counter")
    for name, c in record["comparison"].items():
        pct = c["power_vs_counter_pct"]
        say(f"  {name:14s} {c['seconds']:8.2f} {c['counter_j']:11.1f} {c['power_j']:10.1f} {c['counter_w']:11.1f} "
            f"{c['power_w']:9.1f}   {'—' if pct is None else f'{pct:+.1f} %'}")
    if record["pulse_on"]:
        pcts = [p["power_vs_counter_pct"] for p in record["pulse_on"] if p["power_vs_counter_pct"] is not None]
        if pcts:
            say(f"  0.5 s pulses: power vs counter from {min(pcts):+.1f} % to {max(pcts):+.1f} % "
                "(NVML's 1 s power average smears short windows on Ampere and newer)")
    say(f"  whole trace {'agrees' if record['agree'] else 'DISAGREES'} within {record['agree_within_pct']:g} %; "
        f"load reached the GPU read: {record['load_reached_the_gpu']}")
    mid = record["conditions"].get("mid_load")
    if mid:
        say(f"  mid-load: clocks {mid['clocks_mhz']}, temperature {mid['temperatures_c']}, "
            f"throttle {mid['throttle_reasons'] or 'none'}")


if __name__ == "__main__":
    sys.exit(main())
