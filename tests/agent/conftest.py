"""Fixtures for the agent tests: a real generated model, tiny hand-built ONNX graphs for the edge cases, a runner
with controlled latency and a recorded RAPL tree moving at a known power."""

from __future__ import annotations

import json
import mmap
import os
import shutil
import subprocess
import sys
import threading
import time
from collections.abc import Callable
from pathlib import Path

import pytest

from dnnprof.agent.backends.base import Backend, DeviceTimes, Runner
from dnnprof.shared.onnxfile import ModelFile
from dnnprof.shared import schema

# --- Deterministic test inputs for the measurement procedure -------------------------------------------------------
# A Runner that sleeps a controlled time per batch (a test input, like a model file), and a recorded RAPL powercap
# tree whose counters a background thread advances at a known power (the thin fake at the hardware boundary).

DATA = Path(__file__).parents[1] / "data"


class SleepRunner(Runner):
    """Each ``infer()`` sleeps ``latency(n)`` seconds (n counts calls from 0) and returns ``times``.

    While it sleeps it holds ``busy`` set (when given), so a powercap writer can draw more power during inference.
    ``fail_at=n`` raises RuntimeError on call n, as a backend failing mid-window would.
    """

    def __init__(self, latency: Callable[[int], float], *, busy: threading.Event | SharedFlag | None = None,
                 fail_at: int | None = None, times: DeviceTimes | None = None) -> None:
        self.latency = latency
        self.busy = busy
        self.fail_at = fail_at
        self.times = times
        self.calls = 0
        self.closed = False

    def infer(self) -> DeviceTimes | None:
        n = self.calls
        self.calls += 1
        if self.fail_at is not None and n >= self.fail_at:
            raise RuntimeError(f"device lost at batch {n}")
        if self.busy is not None:
            self.busy.set()
        try:
            time.sleep(self.latency(n))
        finally:
            if self.busy is not None:
                self.busy.clear()
        return self.times

    @property
    def outputs(self) -> dict:
        return {"output": [float(self.calls)]}  # finite, as a working model's are

    def close(self) -> None:
        self.closed = True


class SleepBackend(Backend):
    """A backend whose runners are SleepRunners built by ``make(model, batch)``; it keeps every runner it made."""

    name = "sleep"
    precisions = ("fp32",)

    def __init__(self, make: Callable[[ModelFile, int], SleepRunner]) -> None:
        self.make = make
        self.runners: list[SleepRunner] = []

    @property
    def version(self) -> str:
        return "1.0"

    def prepare(self, model: ModelFile, batch: int, precision: str, *, seed: int = 0) -> Runner:
        model.check_batch(batch)
        runner = self.make(model, batch)
        self.runners.append(runner)
        return runner


@pytest.fixture
def sleep_runner():
    """The SleepRunner class: ``sleep_runner(lambda n: 0.003)`` is a runner with a constant 3 ms per batch."""
    return SleepRunner


@pytest.fixture
def sleep_backend():
    """The SleepBackend class: ``sleep_backend(lambda model, batch: SleepRunner(...))``."""
    return SleepBackend


# The writer runs in its own process: a thread of this one would stall whenever something holds the GIL (building
# an ONNX Runtime session does, for tens of milliseconds), leaving the counter stale, which real hardware never is.
_WRITER = r"""
import json, mmap, os, sys, time
config = json.loads(sys.argv[1])
paths = {d: os.path.join(config["root"], "sys/class/powercap", d, "energy_uj") for d in config["domains"]}
uj = {d: float(int(open(p).read())) for d, p in paths.items()}
with open(config["flag"], "r+b") as f:
    flag = mmap.mmap(f.fileno(), 1)
last = time.monotonic()  # the profiler's clock (CLOCK_MONOTONIC is system-wide)
ready = False
while True:
    now = time.monotonic()
    dt, last = now - last, now
    busy = flag[0] == 1
    for d, path in paths.items():
        uj[d] += dt * (config["watts"].get(d, 0.0) + (config["busy_watts"].get(d, 0.0) if busy else 0.0)) * 1e6
        # In place, one fixed-width write: a sysfs attribute keeps its inode and never shows half a value.
        fd = os.open(path, os.O_WRONLY)
        os.pwrite(fd, f"{int(uj[d]):<24}\n".encode(), 0)
        os.close(fd)
    if not ready:
        print("ready", flush=True)
        ready = True
    time.sleep(config["period_s"])
"""


class SharedFlag:
    """A one-byte flag shared with the writer process: ``set()``/``clear()`` like a threading.Event."""

    def __init__(self, path: Path) -> None:
        path.write_bytes(b"\0")
        self.path = path
        self._file = open(path, "r+b")  # noqa: SIM115 - closed in close()
        self._map = mmap.mmap(self._file.fileno(), 1)

    def set(self) -> None:
        self._map[0] = 1

    def clear(self) -> None:
        self._map[0] = 0

    def is_set(self) -> bool:
        return self._map[0] == 1

    def close(self) -> None:
        self._map.close()
        self._file.close()


class PowercapWriter:
    """Advances ``energy_uj`` of RAPL domains in a copy of the two-package tree, as the hardware would.

    Domain ``d`` (``"intel-rapl:0"``) draws ``watts[d]`` all the time, plus ``busy_watts[d]`` while ``busy`` is set
    (hand ``busy`` to a SleepRunner: a batch draws the extra power). A separate process integrates the power on the
    profiler's clock every ``period_s`` and writes each counter atomically, so a constant power is exact at every
    write and a reader sees a counter at most a period (plus scheduling delay) old.
    """

    def __init__(self, root: Path, watts: dict[str, float], busy_watts: dict[str, float] | None = None,
                 period_s: float = 0.001) -> None:
        self.root = root
        self.watts = dict(watts)
        self.busy_watts = dict(busy_watts or {})
        self.busy = SharedFlag(root / "busy.flag")
        config = {"root": str(root), "domains": sorted({*self.watts, *self.busy_watts}), "watts": self.watts,
                  "busy_watts": self.busy_watts, "flag": str(self.busy.path), "period_s": period_s}
        self._process = subprocess.Popen([sys.executable, "-c", _WRITER, json.dumps(config)],
                                         stdout=subprocess.PIPE, text=True)
        if self._process.stdout.readline().strip() != "ready":  # first counters written
            self.stop()
            raise RuntimeError("the powercap writer did not start")

    @property
    def total_w(self) -> float:
        return sum(self.watts.values())

    def stop(self) -> None:
        self._process.terminate()
        self._process.wait(10)
        self._process.stdout.close()
        self.busy.close()


@pytest.fixture
def powercap(tmp_path):
    """``powercap({"intel-rapl:0": 3.0, ...}, busy_watts=...)`` copies the recorded two-package tree into tmp_path,
    starts a PowercapWriter on it and returns it (``writer.root`` is the root for RaplSource)."""
    writers: list[PowercapWriter] = []

    def start(watts: dict[str, float], busy_watts: dict[str, float] | None = None) -> PowercapWriter:
        root = tmp_path / f"powercap-{len(writers)}"
        shutil.copytree(DATA / "powercap" / "two-packages", root)
        writers.append(PowercapWriter(root, watts, busy_watts))
        return writers[-1]

    yield start
    for writer in writers:
        writer.stop()


class ListSink:
    """A sweep's sink that keeps every message it is sent, in order, after a round trip through the wire format
    (so whatever a test reads could have been published)."""

    def __init__(self) -> None:
        self.messages: list[schema.Message] = []
        self.closed = False

    def send(self, message: schema.Message) -> None:
        self.messages.append(schema.decode(schema.encode(message)))

    def close(self) -> list[schema.Message]:
        self.closed = True
        return []


@pytest.fixture(scope="session")
def list_sink():
    """The ListSink class: ``sink = list_sink()`` keeps what a sweep sends (``sink.messages``)."""
    return ListSink


def _reshaping(path: Path, width: int = 128) -> Path:
    """A graph that reshapes its (N, 3, 8, 8) input to (-1, ``width``): ONNX Runtime runs it only at batches whose
    N * 192 values divide by ``width`` (width 128: even batches), and fails at the others while running."""
    import numpy as np
    import onnx
    from onnx import TensorProto, helper, numpy_helper

    graph = helper.make_graph(
        [helper.make_node("Reshape", ["x", "shape"], ["y"])], "reshaping",
        [helper.make_tensor_value_info("x", TensorProto.FLOAT, ["N", 3, 8, 8])],
        [helper.make_tensor_value_info("y", TensorProto.FLOAT, ["M", width])],
        initializer=[numpy_helper.from_array(np.array([-1, width], dtype=np.int64), "shape")])
    path.parent.mkdir(parents=True, exist_ok=True)
    onnx.save(helper.make_model(graph, opset_imports=[helper.make_opsetid("", 13)], ir_version=7), str(path))
    return path


@pytest.fixture
def reshaping():
    """``reshaping(path, width=128)`` writes a model ONNX Runtime fails to run at odd batches (a real failure)."""
    return _reshaping


# --- A Jetson whose power mode can be switched: a recorded tree and stand-in nvpmodel / jetson_clocks ------------

FAKE_BIN = Path(__file__).parents[1] / "fakes" / "bin"


@pytest.fixture
def switchable_board(tmp_path, monkeypatch):
    """A copy of the recorded AGX Orin tree (MAXN, jetson_clocks on) with the transcribed R35.3.1 nvpmodel.conf,
    and tests/fakes/bin first on PATH: its ``nvpmodel`` and ``jetson_clocks`` change the tree's files as the real
    ones change a board's (and log each call to ``calls.log`` in the tree). Returns the tree's root."""
    root = tmp_path / "board"
    shutil.copytree(DATA / "jetson" / "agx-orin-jp6", root)
    # As on a board, each CPU's cpufreq directory is its cluster's policy (the recorded tree holds plain copies).
    cpu = root / "sys/devices/system/cpu"
    for policy in sorted((cpu / "cpufreq").glob("policy*")):
        for n in (policy / "related_cpus").read_text().split():
            shutil.rmtree(cpu / f"cpu{n}" / "cpufreq")
            (cpu / f"cpu{n}" / "cpufreq").symlink_to(Path("..") / "cpufreq" / policy.name)
    shutil.copy(DATA / "jetson" / "nvpmodel" / "agx-orin-p3701_0000.conf", root / "etc" / "nvpmodel.conf")
    (root / "sys/devices/gpu.0").mkdir(parents=True)
    (root / "sys/devices/gpu.0/tpc_pg_mask").write_text("0\n")  # MAXN's gating
    gpu = root / "sys/class/devfreq/17000000.gpu"
    (gpu / "available_frequencies").write_text("306000000 408000000 612000000 816000000 1300500000\n")
    (root / "sys/kernel/nvpmodel_emc_cap").mkdir(parents=True)
    (root / "sys/kernel/nvpmodel_emc_cap/emc_iso_cap").write_text("0\n")
    monkeypatch.setenv("PATH", f"{FAKE_BIN}{os.pathsep}{os.environ['PATH']}")
    monkeypatch.setenv("DNNPROF_FAKE_ROOT", str(root))
    return root
