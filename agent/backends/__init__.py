"""Inference backends, one module each, behind ``base.Backend``; ``get_backend`` picks one by name."""

from __future__ import annotations

import importlib
from collections.abc import Callable
from pathlib import Path

from dnnprof.shared.errors import UserError

from .base import Backend, DeviceTimes, Runner

BACKENDS = ("onnxruntime", "tensorrt")

__all__ = ["Backend", "DeviceTimes", "Runner", "BACKENDS", "get_backend", "resolve"]


def _importable(module: str) -> bool:
    try:
        importlib.import_module(module)
    except (ImportError, OSError):  # OSError: a binding whose shared libraries are missing
        return False
    return True


def resolve(name: str) -> str:
    """The backend ``name`` stands for: ``auto`` is tensorrt where ``tensorrt`` and ``pycuda`` both import, else
    onnxruntime. UserError for an unknown name."""
    name = name.strip().lower()
    if name == "auto":
        return "tensorrt" if _importable("tensorrt") and _importable("pycuda.driver") else "onnxruntime"
    if name in ("onnxruntime", "ort"):
        return "onnxruntime"
    if name in ("tensorrt", "trt"):
        return "tensorrt"
    raise UserError(f"unknown backend {name!r}: available backends are auto, {', '.join(BACKENDS)}")


def get_backend(name: str = "auto", *, threads: int | None = None, engine_cache: Path | None = None,
                dla_core: int | None = None, calibration: Path | None = None, rebuild: bool = False,
                workspace_bytes: int | None = None, on_status: Callable[[str], None] | None = None,
                platform: str | None = None) -> Backend:
    """The backend called ``name``; ``auto`` is the best one installed here (see ``resolve``).

    ``threads`` is for onnxruntime; the others are for tensorrt (see ``TensorRTBackend``): ``engine_cache``
    (directory; None keeps no engines), ``dla_core``, ``calibration`` (int8 image folder), ``rebuild``,
    ``workspace_bytes``, ``on_status`` (build progress texts) and ``platform`` (L4T / JetPack release, part of the
    engine-cache key). An option that means nothing to the chosen backend is a UserError, not silently dropped.
    """
    chosen = resolve(name)
    auto = " (auto chose it: tensorrt or pycuda does not import here)" if name.strip().lower() == "auto" else ""
    if chosen == "onnxruntime":
        given = [option for option, value in (("--engine-cache", engine_cache is not None),
                                              ("--dla-core", dla_core is not None),
                                              ("--calibration", calibration is not None),
                                              ("--rebuild-engines", rebuild),
                                              ("--workspace", workspace_bytes is not None)) if value]
        if given:
            verb = "applies" if len(given) == 1 else "apply"
            raise UserError(f"{', '.join(given)} only {verb} to the tensorrt backend, not onnxruntime{auto}")
        from .onnxruntime import OnnxRuntimeBackend

        return OnnxRuntimeBackend(threads=threads)
    if threads is not None:
        raise UserError("--threads only applies to the onnxruntime backend: TensorRT runs on the GPU")
    from .tensorrt import TensorRTBackend

    return TensorRTBackend(engine_cache=engine_cache, dla_core=dla_core, calibration=calibration, rebuild=rebuild,
                           workspace_bytes=workspace_bytes, on_status=on_status, platform=platform)
