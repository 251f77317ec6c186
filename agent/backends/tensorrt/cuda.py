"""tensorrt and pycuda imported on demand, and the CUDA context every call runs in.

Every CUDA call runs with the device's *primary* context (the one the CUDA runtime, and so TensorRT, uses) pushed on
the calling thread and popped in a ``finally``: a runner is prepared on one thread and may run on another, and
pycuda's context stack is per thread.
"""

from __future__ import annotations

import atexit
import threading
from contextlib import contextmanager

from dnnprof.shared.errors import UserError


def import_modules():
    """``(tensorrt, pycuda.driver)``; UserError saying what to install when either is missing."""
    missing, trt, cuda = [], None, None
    try:
        import tensorrt as trt
    except (ImportError, OSError):
        missing.append("TensorRT's Python bindings (on a Jetson: sudo apt-get install python3-libnvinfer, and a "
                       "virtualenv made with --system-site-packages)")
    try:
        import pycuda.driver as cuda
    except (ImportError, OSError):
        missing.append("pycuda (pip install pycuda, with nvcc on PATH, or pip install '.[jetson]' in the dnnprof "
                       "checkout)")
    if missing:
        raise UserError(f"the tensorrt backend needs {' and '.join(missing)}")
    return trt, cuda


_primary_lock = threading.Lock()
_primary: tuple[object, object] | None = None  # (pycuda.driver module, its Context for device 0's primary context)


def primary_context(cuda):
    """Device 0's primary context, retained once per process and kept for its lifetime.

    It is never detached: pycuda's detach of a primary context calls cuDevicePrimaryCtxRelease, which (unlike the
    cuCtxDetach of an ordinary context) does not pop the driver's context stack, so a detach per runner would leave a
    context pushed on the thread every time; and TensorRT, through the CUDA runtime, holds the primary context until
    the process exits anyway. Retaining it (unlike ``make_context``) creates no second context on the device.
    """
    global _primary
    with _primary_lock:
        if _primary is None or _primary[0] is not cuda:
            _primary = (cuda, cuda.Device(0).retain_primary_context())
        return _primary[1]


@atexit.register
def _release_primary_context() -> None:
    # Drop the Context object at exit while pycuda is still whole (as pycuda.autoprimaryctx does), not during module
    # teardown; with nothing left pushed, pycuda's "context stack was not empty" abort cannot happen.
    global _primary
    _primary = None


@contextmanager
def current(cuda, ctx):
    """``ctx`` is the current CUDA context on this thread inside the block; the stack is as before afterwards."""
    ctx.push()
    try:
        yield
    finally:
        cuda.Context.pop()

