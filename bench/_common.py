"""Helpers shared by the agent benchmarks in bench/ (not a benchmark itself): machine facts, a meter of what other
processes used the CPU for while a benchmark ran, test models and a copied RAPL sysfs tree."""

from __future__ import annotations

import json
import os
import platform
import shutil
import socket
import statistics
import subprocess
import sys
import time
from pathlib import Path

REPO = Path(__file__).resolve().parent.parent
RAPL_TREES = REPO / "tests/data/powercap"


def emit(record: dict) -> None:
    """One JSON line on stdout (the human summary goes to stderr, so stdout stays machine-readable)."""
    print(json.dumps(record), flush=True)


class NullSink:
    """A sweep's sink that keeps nothing: the benchmark reads the results the sweep returns."""

    def send(self, message) -> None:
        pass

    def close(self) -> list:
        return []


def say(line: str = "") -> None:
    print(line, file=sys.stderr, flush=True)


def machine() -> dict:
    import onnxruntime

    model = next((line.split(":", 1)[1].strip() for line in Path("/proc/cpuinfo").read_text().splitlines()
                  if line.startswith("model name")), platform.processor())
    return {"cpus": os.cpu_count(), "cpu": model, "python": platform.python_version(),
            "onnxruntime": onnxruntime.__version__, "loadavg_1m": round(os.getloadavg()[0], 2)}


def _busy_s() -> float:
    fields = [int(v) for v in Path("/proc/stat").read_text().splitlines()[0].split()[1:9]]
    return (sum(fields) - fields[3] - fields[4]) / os.sysconf("SC_CLK_TCK")


class LoadMeter:
    """CPU cores used by *other* processes over a stretch of time: all busy CPU time in /proc/stat minus this
    process's own CPU time, per wall second. 0 on a quiet machine; ~1 means another process held a whole core."""

    def __init__(self) -> None:
        self.wall0, self.busy0, self.own0 = time.monotonic(), _busy_s(), time.process_time()

    def read(self) -> dict:
        wall = time.monotonic() - self.wall0
        busy, own = _busy_s() - self.busy0, time.process_time() - self.own0
        return {"wall_s": round(wall, 2), "own_cpu_cores": round(own / wall, 3),
                "other_cpu_cores": round(max(0.0, busy - own) / wall, 3), "loadavg_1m": round(os.getloadavg()[0], 2)}


def note_load(rows: list[dict], consequence: str) -> None:
    """Say so when other processes used the CPU during a benchmark, and what that does to its figures."""
    busy = max(r["load"]["other_cpu_cores"] for r in rows)
    if busy > 0.1:
        say(f"  note: other processes used up to {busy:.2f} CPU cores during the run; {consequence}")


def make_models(names: list[str], out_dir: Path) -> dict:
    """Generate the zoo models into ``out_dir``; returns name → ModelFile."""
    from dnnprof.agent.models import zoo
    from dnnprof.shared import onnxfile

    return {path.stem: onnxfile.load(path) for path in zoo.generate(names, out_dir)}


def copy_rapl_tree(name: str, tmp: Path) -> Path:
    """Copy a recorded powercap tree (a root holding sys/class/powercap/...) into ``tmp``; returns the root."""
    root = tmp / f"rapl-{name}"
    shutil.copytree(RAPL_TREES / name, root)
    return root


def spread(values: list[float]) -> dict:
    """Median, quartiles and range of ``values`` (quartiles by the inclusive method; one value: all equal)."""
    ordered = sorted(values)
    q1, _, q3 = statistics.quantiles(ordered, n=4, method="inclusive") if len(ordered) > 1 else ordered * 3
    return {"median": statistics.median(ordered), "q1": q1, "q3": q3, "min": ordered[0], "max": ordered[-1],
            "n": len(ordered)}


def parse_points(text: str) -> list[tuple[str, int]]:
    """``"resnet18:1,resnet18:8"`` → [("resnet18", 1), ("resnet18", 8)]."""
    out = []
    for item in text.split(","):
        name, _, batch = item.strip().partition(":")
        out.append((name, int(batch or 1)))
    return out


def mosquitto(tmp: Path, extra: str = "") -> tuple[subprocess.Popen, str]:
    """A private Mosquitto on a free loopback port (config in ``tmp``, plus the ``extra`` lines): (its process, its
    address)."""
    from dnnprof.host.broker import free_port

    binary = shutil.which("mosquitto") or "/usr/sbin/mosquitto"
    if not Path(binary).exists():
        raise SystemExit("mosquitto is not installed: apt-get install mosquitto")
    port = free_port()
    conf = tmp / "mosquitto.conf"
    conf.write_text(f"listener {port} 127.0.0.1\nallow_anonymous true\npersistence false\n"
                    "max_queued_messages 0\nmax_inflight_messages 0\n" + extra)
    proc = subprocess.Popen([binary, "-c", str(conf)], stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    deadline = time.monotonic() + 10
    while time.monotonic() < deadline:
        try:
            socket.create_connection(("127.0.0.1", port), 0.2).close()
            return proc, f"127.0.0.1:{port}"
        except OSError:
            time.sleep(0.05)
    proc.terminate()
    raise SystemExit("mosquitto did not start")
