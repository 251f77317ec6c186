"""Inference backends, one module each, behind ``base.Backend``; ``get_backend`` picks one by name."""

from __future__ import annotations

import importlib
from collections.abc import Callable
from pathlib import Path

from dnnprof.shared.errors import UserError

from .base import Backend, DeviceTimes, PointError, Runner

BACKENDS = ("onnxruntime", "tensorrt")

__all__ = ["Backend", "DeviceTimes", "PointError", "Runner", "BACKENDS", "get_backend", "resolve", "why_not_tensorrt",
           "auto_note", "foreign_options", "OPTION_BACKEND", "CLI_OPTION"]


def _import_error(module: str) -> str | None:
    """Why ``module`` does not import here (one line), or None when it does."""
    try:
        importlib.import_module(module)
    except (ImportError, OSError) as exc:  # OSError: a binding whose shared libraries are missing
        return f"{module}: {str(exc).strip().splitlines()[0] if str(exc).strip() else exc.__class__.__name__}"
    return None


def why_not_tensorrt() -> str | None:
    """Why the tensorrt backend cannot run here (the import errors of tensorrt and pycuda), or None when it can."""
    errors = [e for e in (_import_error("tensorrt"), _import_error("pycuda.driver")) if e]
    return "; ".join(errors) or None


def auto_note(name: str) -> str | None:
    """For ``auto`` resolving to onnxruntime: a sentence saying so and why TensorRT was not taken; else None."""
    if name.strip().lower() != "auto":
        return None
    why = why_not_tensorrt()
    return None if why is None else f"auto chose onnxruntime (CPU): TensorRT is not usable here ({why})"


def resolve(name: str) -> str:
    """The backend ``name`` stands for: ``auto`` is tensorrt where ``tensorrt`` and ``pycuda`` both import, else
    onnxruntime. UserError for an unknown name."""
    name = name.strip().lower()
    if name == "auto":
        return "onnxruntime" if why_not_tensorrt() else "tensorrt"
    if name in ("onnxruntime", "ort"):
        return "onnxruntime"
    if name in ("tensorrt", "trt"):
        return "tensorrt"
    raise UserError(f"unknown backend {name!r}: available backends are auto, {', '.join(BACKENDS)}")


# The backend each option of ``get_backend`` belongs to: the one rule both `run` (``--threads``) and the service's
# config (``[sweep] threads``) check, each in its own words.
# (``calibration``, int8's image folder, belongs to both.)
OPTION_BACKEND = {"threads": "onnxruntime", "engine_cache": "tensorrt", "dla_core": "tensorrt",
                  "rebuild": "tensorrt", "workspace_bytes": "tensorrt", "precision_method": "tensorrt"}
CLI_OPTION = {"threads": "--threads", "engine_cache": "--engine-cache", "dla_core": "--dla-core",
              "rebuild": "--rebuild-engines", "workspace_bytes": "--workspace",
              "precision_method": "--precision-method"}


def foreign_options(backend: str, **given: object) -> list[str]:
    """The options of ``given`` (``get_backend``'s keyword names; None or False = not given) that ``backend`` does
    not take, in ``OPTION_BACKEND`` order (``dla_core=0`` is given: only None and False are not)."""
    return [option for option, owner in OPTION_BACKEND.items()
            if owner != backend and given.get(option) is not None and given.get(option) is not False]


def get_backend(name: str = "auto", *, threads: int | None = None, engine_cache: Path | None = None,
                dla_core: int | None = None, calibration: Path | None = None, rebuild: bool = False,
                workspace_bytes: int | None = None, on_status: Callable[[str], None] | None = None,
                platform: str | None = None, cache_dir: Path | None = None,
                precision_method: str | None = None) -> Backend:
    """The backend called ``name``; ``auto`` is the best one installed here (see ``resolve``).

    ``threads`` is for onnxruntime; ``calibration`` (int8's image folder) for both; the others are for tensorrt
    (see ``TensorRTBackend``): ``engine_cache`` (directory; None keeps no engines), ``dla_core``, ``rebuild``,
    ``workspace_bytes``, ``on_status`` (build progress texts) and ``platform`` (L4T / JetPack release, part of the
    engine-cache key), ``precision_method`` (how fp16 and int8 are made: ``auto``, ``builder_flags``,
    ``onnx_converted``; None: auto). ``cache_dir``: where converted models (``converted/``) and decoded images
    (``tensors/``) are kept (None: ~/.cache/dnnprof). An option that means nothing to the chosen backend is a
    UserError, not silently dropped.
    """
    chosen = resolve(name)
    foreign = foreign_options(chosen, threads=threads, engine_cache=engine_cache, dla_core=dla_core,
                              rebuild=rebuild, workspace_bytes=workspace_bytes, precision_method=precision_method)
    caches = {} if cache_dir is None else {"converted_cache": Path(cache_dir) / "converted",
                                           "tensor_cache": Path(cache_dir) / "tensors"}
    if chosen == "onnxruntime":
        if foreign:
            auto = " (auto chose it: tensorrt or pycuda does not import here)" if name.strip().lower() == "auto" else ""
            verb = "applies" if len(foreign) == 1 else "apply"
            raise UserError(f"{', '.join(CLI_OPTION[o] for o in foreign)} only {verb} to the tensorrt backend, not "
                            f"onnxruntime{auto}")
        from .onnxruntime import OnnxRuntimeBackend

        return OnnxRuntimeBackend(threads=threads, calibration=calibration, **caches)
    if foreign:
        raise UserError("--threads only applies to the onnxruntime backend: TensorRT runs on the GPU")
    from .tensorrt import TensorRTBackend

    return TensorRTBackend(engine_cache=engine_cache, dla_core=dla_core, calibration=calibration, rebuild=rebuild,
                           workspace_bytes=workspace_bytes, on_status=on_status, platform=platform,
                           precision_method=precision_method or "auto", **caches)
