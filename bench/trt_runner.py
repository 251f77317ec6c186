"""What the TensorRT runner's host side costs per batch on a real NVIDIA GPU, against bare pycuda doing the same work.

Needs real pycuda and a CUDA device; TensorRT is NOT needed: the engine is tests/fakes/fake_tensorrt.py, whose
``execute_async_v3`` copies the input buffer into the output buffer on the device (a stand-in for inference of
known cost). Both arms do the same CUDA work per batch — pinned H2D copy, the device copy, D2H copy, four events,
one blocking event wait — on the same buffers:

* ``runner``: ``TensorRTRunner.infer()`` (context push/pop, events, DeviceTimes), as the profiler calls it;
* ``bare``: the same calls written inline with the context pushed once.

Arms alternate in blocks of --batches-per-block so machine noise hits both alike; the figure is the per-block
ratio of wall time per batch, runner / bare, its median and spread, at each --batch. stdout: JSON lines; stderr: a
summary. Usage (on a GPU machine): ``python bench/trt_runner.py --batch 1,8,64``.
"""

from __future__ import annotations

import argparse
import importlib.util
import statistics
import sys
import tempfile
import time
from pathlib import Path

from _common import emit, machine, say

ROOT = Path(__file__).resolve().parents[1]


def fake_tensorrt():
    spec = importlib.util.spec_from_file_location("fake_tensorrt", ROOT / "tests" / "fakes" / "fake_tensorrt.py")
    module = importlib.util.module_from_spec(spec)
    sys.modules["fake_tensorrt"] = module
    spec.loader.exec_module(module)
    sys.modules["tensorrt"] = module.make_tensorrt("10.3.0")


def tiny_model(path: Path, shape: tuple[int, ...]) -> Path:
    import onnx
    from onnx import TensorProto, helper

    x = helper.make_tensor_value_info("input", TensorProto.FLOAT, ["N", *shape])
    y = helper.make_tensor_value_info("output", TensorProto.FLOAT, ["N", *shape])
    graph = helper.make_graph([helper.make_node("Identity", ["input"], ["output"])], "copy", [x], [y])
    onnx.save(helper.make_model(graph, opset_imports=[helper.make_opsetid("", 13)]), path)
    return path


def bare_loop(runner, cuda, n: int) -> float:
    """Seconds for ``n`` batches of the runner's CUDA work written inline (context pushed once)."""
    stream, (start, copied_in, computed, copied_out) = runner._stream, runner._events
    runner._ctx.push()
    try:
        t0 = time.perf_counter()
        for _ in range(n):
            start.record(stream)
            for _, host, dev in runner._inputs:
                cuda.memcpy_htod_async(dev, host, stream)
            copied_in.record(stream)
            runner._context.execute_async_v3(stream.handle)
            computed.record(stream)
            for _, host, dev in runner._outputs:
                cuda.memcpy_dtoh_async(host, dev, stream)
            copied_out.record(stream)
            copied_out.synchronize()
            copied_in.time_till(computed), start.time_till(copied_in), computed.time_till(copied_out)
        return time.perf_counter() - t0
    finally:
        cuda.Context.pop()


def runner_loop(runner, n: int) -> tuple[float, float]:
    """(seconds for ``n`` batches through ``infer()``, device milliseconds per batch summed over H2D+compute+D2H)."""
    t0 = time.perf_counter()
    device_ms = 0.0
    for _ in range(n):
        t = runner.infer()
        device_ms += t.h2d_ms + t.compute_ms + t.d2h_ms
    return time.perf_counter() - t0, device_ms / n


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--batch", default="1,8,64")
    parser.add_argument("--blocks", type=int, default=30)
    parser.add_argument("--batches-per-block", type=int, default=200)
    args = parser.parse_args()
    fake_tensorrt()
    import pycuda.driver as cuda

    from dnnprof.agent.backends.tensorrt import TensorRTBackend
    from dnnprof.shared import onnxfile

    with tempfile.TemporaryDirectory() as tmp:
        model = onnxfile.load(tiny_model(Path(tmp) / "copy.onnx", (3, 224, 224)))
        backend = TensorRTBackend(engine_cache=Path(tmp) / "engines")
        emit({"machine": machine(), "gpu": backend.gpu, "pycuda": __import__("pycuda").VERSION_TEXT})
        for batch in (int(b) for b in args.batch.split(",")):
            runner = backend.prepare(model, batch, "fp32")
            try:
                runner_loop(runner, 50), bare_loop(runner, cuda, 50)  # warm-up
                ratios, per_batch_us, bare_us, device_us = [], [], [], []
                for block in range(args.blocks):
                    n = args.batches_per_block
                    order = ["runner", "bare"] if block % 2 == 0 else ["bare", "runner"]
                    seen = {name: runner_loop(runner, n) if name == "runner" else (bare_loop(runner, cuda, n), None)
                            for name in order}
                    (wall_r, dev_ms), (wall_b, _) = seen["runner"], seen["bare"]
                    ratios.append(wall_r / wall_b)
                    per_batch_us.append(wall_r / n * 1e6)
                    bare_us.append(wall_b / n * 1e6)
                    device_us.append(dev_ms * 1e3)
                summary = {
                    "batch": batch, "input_mib": batch * 3 * 224 * 224 * 4 / 2**20,
                    "runner_us_per_batch": statistics.median(per_batch_us),
                    "bare_us_per_batch": statistics.median(bare_us),
                    "overhead_us_per_batch": statistics.median(r - b for r, b in zip(per_batch_us, bare_us)),
                    "ratio_median": statistics.median(ratios), "ratio_min": min(ratios), "ratio_max": max(ratios),
                    "device_us_per_batch": statistics.median(device_us),
                }
                emit(summary)
                say(f"batch {batch:3d}: infer() {summary['runner_us_per_batch']:8.1f} us/batch, bare pycuda "
                    f"{summary['bare_us_per_batch']:8.1f} us, overhead {summary['overhead_us_per_batch']:5.1f} us "
                    f"(ratio {summary['ratio_median']:.4f}, {summary['ratio_min']:.4f}-{summary['ratio_max']:.4f}); "
                    f"device events {summary['device_us_per_batch']:.1f} us")
            finally:
                runner.close()


if __name__ == "__main__":
    main()
