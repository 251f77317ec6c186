"""Fixtures for the backend tests: the thin fakes of ``tensorrt`` and ``pycuda`` (tests/fakes/), put into sys.modules
for one test at a time, the way the real modules would be found on a board."""

from __future__ import annotations

import importlib.util
import sys
from pathlib import Path

import pytest

FAKES = Path(__file__).parents[2] / "fakes"


def load_fake(name: str):
    """Import tests/fakes/<name>.py by path (the test tree is not a package)."""
    module_name = f"dnnprof_test_fakes_{name}"
    if module_name in sys.modules:
        return sys.modules[module_name]
    spec = importlib.util.spec_from_file_location(module_name, FAKES / f"{name}.py")
    module = importlib.util.module_from_spec(spec)
    sys.modules[module_name] = module  # dataclasses look their module up while the class is built
    spec.loader.exec_module(module)
    return module


@pytest.fixture
def install_fakes(monkeypatch):
    """``install_fakes("8.6.2", dla_cores=2, cuda={"devices": 0})`` → (fake tensorrt, fake pycuda.driver), both in
    sys.modules until the test ends. Keyword arguments set the fake TensorRT's state; ``cuda`` the fake CUDA's."""

    def install(version: str = "10.3.0", *, cuda: dict | None = None, **trt_settings):
        trt = load_fake("fake_tensorrt").make_tensorrt(version, **trt_settings)
        package, driver = load_fake("fake_pycuda").make_pycuda(**(cuda or {}))
        monkeypatch.setitem(sys.modules, "tensorrt", trt)
        monkeypatch.setitem(sys.modules, "pycuda", package)
        monkeypatch.setitem(sys.modules, "pycuda.driver", driver)
        return trt, driver

    return install


@pytest.fixture
def install_fake_tensorrt(monkeypatch):
    """``install_fake_tensorrt("10.3.0")`` → the fake tensorrt in sys.modules, next to whatever pycuda is installed
    (the real one on a GPU machine: the fake's execute_async_v3 then copies real device memory)."""

    def install(version: str = "10.3.0", **trt_settings):
        trt = load_fake("fake_tensorrt").make_tensorrt(version, **trt_settings)
        monkeypatch.setitem(sys.modules, "tensorrt", trt)
        return trt

    return install
