"""The TensorRT runner's CUDA side on a real NVIDIA GPU: real pycuda (pinned and device buffers, stream, events, the
primary context pushed and popped across threads) under the fake tensorrt (tests/fakes/fake_tensorrt.py), whose
execute_async_v3 copies the input device buffer into the output buffer with real pycuda.

Skipped unless pycuda imports and a CUDA device answers. TensorRT itself is not needed (nor used).
Run on a GPU machine:  python -m pytest tests/agent/backends/tensorrt/test_gpu.py -v
"""

from __future__ import annotations

import json
import math
import subprocess
import sys
import threading

import numpy as np
import pytest

cuda = pytest.importorskip("pycuda.driver", reason="pycuda is not installed (or finds no CUDA driver)")


def _has_gpu() -> bool:
    try:
        cuda.init()
        return cuda.Device.count() > 0
    except cuda.Error:
        return False


pytestmark = pytest.mark.skipif(not _has_gpu(), reason="no CUDA device")

from dnnprof.agent.backends import tensorrt as trt_backend  # noqa: E402
from dnnprof.agent.backends.tensorrt import TensorRTBackend  # noqa: E402
from dnnprof.shared import onnxfile  # noqa: E402

FAKES = __import__("pathlib").Path(__file__).parents[3] / "fakes"
SHAPE = (3, 128, 128)  # 1.5 MiB of input at batch 8: copies long enough for events to time


@pytest.fixture
def model(tmp_path, make_onnx):
    return onnxfile.load(make_onnx(tmp_path / "gpu.onnx", shape=SHAPE))


def test_pycuda_needs_a_pushed_context_on_each_thread():
    """The failure mode the runner's push/pop prevents (reference §5), with the real pycuda."""
    caught = []

    def allocate() -> None:
        for make in (cuda.Stream, lambda: cuda.mem_alloc(16)):
            try:
                make()
            except cuda.LogicError as exc:
                caught.append(str(exc))

    thread = threading.Thread(target=allocate)
    thread.start()
    thread.join()
    assert len(caught) == 2 and "no currently active context" in caught[0] and "invalid device context" in caught[1]


@pytest.mark.parametrize("precision", ["fp32", "fp16", "int8"])
def test_runner_on_a_real_gpu_from_another_thread(install_fake_tensorrt, model, tmp_path, precision):
    trt = install_fake_tensorrt("10.3.0")
    backend = TensorRTBackend(engine_cache=tmp_path / "engines")
    assert backend.gpu and "sm_" in backend.gpu
    runner = backend.prepare(model, 8, precision)  # prepared on this thread
    assert cuda.Context.get_current() is None  # prepare popped what it pushed
    times, errors, left_current = [], [], []

    def work() -> None:
        try:
            times.extend(runner.infer() for _ in range(10))
            left_current.append(cuda.Context.get_current())
        except BaseException as exc:
            errors.append(exc)

    thread = threading.Thread(target=work)
    thread.start()
    thread.join()
    assert errors == [] and left_current == [None]
    assert len(times) == 10 and trt._fake.executions == 10
    for t in times:  # real CUDA events around the H2D copy, the "inference" and the D2H copy
        for ms in (t.h2d_ms, t.compute_ms, t.d2h_ms):
            assert math.isfinite(ms) and 0 <= ms < 1000
        assert t.h2d_ms > 0 and t.d2h_ms > 0  # MiB copies over PCIe / the SoC fabric
    # the fake's "inference" is a device-to-device copy of 1.5 MiB: microseconds, near the events' resolution
    assert sum(t.compute_ms for t in times) > 0
    (name, host_in, dev_in), = runner._inputs
    (_, host_out, dev_out), = runner._outputs
    assert int(dev_in) != 0 and int(dev_out) != 0 and int(dev_in) != int(dev_out)
    # the outputs came back: the input's bytes, copied on the device, then to the pinned output buffer
    assert np.array_equal(host_out.reshape(-1)[: host_in.size], host_in.reshape(-1))
    with trt_backend.current(cuda, trt_backend.primary_context(cuda)):
        back = np.empty_like(host_in)
        cuda.memcpy_dtoh(back, dev_in)  # a real device pointer holding the input
    assert np.array_equal(back, host_in)
    if precision == "int8":
        assert runner.timing_only and trt._fake.calibration_batches > 0  # calibrator copied real device memory
    runner.close()
    assert cuda.Context.get_current() is None


CYCLES = r"""
import importlib.util, json, sys, threading
spec = importlib.util.spec_from_file_location("fake_tensorrt", sys.argv[1])
fake = importlib.util.module_from_spec(spec)
sys.modules["fake_tensorrt"] = fake
spec.loader.exec_module(fake)
sys.modules["tensorrt"] = fake.make_tensorrt("10.3.0")
import pycuda.driver as cuda
from dnnprof.agent.backends.tensorrt import TensorRTBackend, current, primary_context
from dnnprof.shared import onnxfile

model = onnxfile.load(sys.argv[2])
backend = TensorRTBackend(engine_cache=sys.argv[3])
ctx = primary_context(cuda)


def free_bytes():
    with current(cuda, ctx):
        return cuda.mem_get_info()[0]


def cycle(batch, precision):
    runner = backend.prepare(model, batch, precision)
    errors = []

    def work():
        try:
            for _ in range(3):
                runner.infer()
        except BaseException as exc:
            errors.append(repr(exc))

    thread = threading.Thread(target=work)
    thread.start()
    thread.join()
    closer = threading.Thread(target=runner.close)  # closed on yet another thread
    closer.start()
    closer.join()
    if errors:
        raise SystemExit(errors[0])


cycle(8, "fp32")  # the first use of the context allocates the driver's own state
before = free_bytes()
for i in range(30):
    cycle((4, 8)[i % 2], ("fp32", "fp16", "int8")[i % 3])
after = free_bytes()
print(json.dumps({"before": before, "after": after, "current": cuda.Context.get_current() is not None}))
"""


def test_many_cycles_leave_the_stack_balanced_and_memory_freed(model, tmp_path):
    """In a subprocess, so that pycuda's exit checks run: an unbalanced context stack aborts at exit with
    "PyCUDA ERROR: The context stack was not empty upon module cleanup"."""
    proc = subprocess.run([sys.executable, "-c", CYCLES, str(FAKES / "fake_tensorrt.py"), str(model.path),
                           str(tmp_path / "engines")], capture_output=True, text=True, timeout=120)
    assert proc.returncode == 0, proc.stderr
    for words in ("context stack was not empty", "PyCUDA ERROR", "PyCUDA WARNING", "could not be cleaned up"):
        assert words not in proc.stderr, proc.stderr
    figures = json.loads(proc.stdout.strip().splitlines()[-1])
    assert figures["current"] is False
    # 30 cycles of about 3.5 MiB of device buffers each: a leak would show as ~100 MiB less free memory
    assert abs(figures["before"] - figures["after"]) <= 16 << 20, figures
