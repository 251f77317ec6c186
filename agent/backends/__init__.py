"""Inference backends, one module each, behind ``base.Backend``; ``get_backend`` picks one by name."""

from __future__ import annotations

from dnnprof.shared.errors import UserError

from .base import Backend, DeviceTimes, Runner

BACKENDS = ("onnxruntime",)

__all__ = ["Backend", "DeviceTimes", "Runner", "BACKENDS", "get_backend"]


def get_backend(name: str = "auto", *, threads: int | None = None) -> Backend:
    """The backend called ``name``; ``auto`` is the best one installed here."""
    name = name.strip().lower()
    if name in ("auto", "onnxruntime", "ort"):
        from .onnxruntime import OnnxRuntimeBackend

        return OnnxRuntimeBackend(threads=threads)
    raise UserError(f"unknown backend {name!r}: available backends are auto, {', '.join(BACKENDS)}")
