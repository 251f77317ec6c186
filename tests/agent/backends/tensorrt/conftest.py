"""Fixtures of the TensorRT backend tests (the fakes themselves come from tests/agent/backends/conftest.py)."""

import pytest

from dnnprof.agent.backends.tensorrt import TensorRTBackend
from dnnprof.shared import onnxfile


@pytest.fixture
def tiny(tmp_path, make_onnx):
    """A one-Conv model, input "x0" (N, 3, 8, 8) with a symbolic batch, output "y0" (N, 4, 8, 8)."""
    return onnxfile.load(make_onnx(tmp_path / "tiny.onnx"))


@pytest.fixture
def calibration_folder(tmp_path):
    """``calibration_folder(colors)``: a folder of small PNGs, one per RGB colour, and a text file (not an image)."""
    Image = pytest.importorskip("PIL.Image")

    def make(colors=((255, 0, 0), (0, 255, 0), (0, 0, 255)), name: str = "calib"):
        folder = tmp_path / name
        folder.mkdir()
        for i, color in enumerate(colors):
            Image.new("RGB", (20, 12), color).save(folder / f"img{i}.png")
        (folder / "notes.txt").write_text("not an image")
        return folder

    return make


@pytest.fixture
def statuses():
    return []


@pytest.fixture
def make_backend(tmp_path, statuses):
    def make(**options) -> TensorRTBackend:
        options.setdefault("engine_cache", tmp_path / "engines")
        options.setdefault("on_status", statuses.append)
        options.setdefault("converted_cache", tmp_path / "converted")
        options.setdefault("tensor_cache", tmp_path / "tensors")
        return TensorRTBackend(**options)

    return make


def _balanced(cuda) -> bool:
    return all(depth == 0 for depth in cuda._fake.stack_depths().values()) and cuda._fake.pushes == cuda._fake.pops


@pytest.fixture(scope="session")
def balanced():
    """``balanced(cuda)``: every context pushed on the fake pycuda was popped again, on every thread."""
    return _balanced


@pytest.fixture(scope="session")
def run_all():
    """``run_all(runner, times)``: that many batches, their DeviceTimes."""
    return lambda runner, times=1: [runner.infer() for _ in range(times)]
