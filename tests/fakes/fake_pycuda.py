"""A thin fake of ``pycuda`` / ``pycuda.driver`` for machines without CUDA: the hardware boundary only.

It keeps what the real module keeps and fails where the real one fails (pycuda 2026.1, src/cpp/cuda.hpp and
doc/driver.rst): one context stack per host thread; every allocation, copy, stream and event needs a current context on
the calling thread, else a LogicError (``explicit_context_dependent failed: invalid device context - no currently active
context?`` for a Stream or Event, ``cuMemAlloc failed: invalid device context`` for driver calls); ``Context.pop()`` on
an empty stack raises; async copies need page-locked host memory; freeing from a thread that cannot activate the owning
context warns and leaks. Device memory is a bytearray per allocation, so a copy really moves bytes; memory another
library takes on the device (the fake TensorRT's engines and execution contexts: ``_fake.reserve`` / ``release``) counts
against ``mem_get_info`` and allocations too. Time is a device clock advanced by each copy (``bandwidth_bytes_per_ms``),
so event timings are deterministic. ``driver._fake`` holds the counters tests look at.

``make_pycuda()`` returns ``(pycuda_package, pycuda_driver)``; a fixture puts them into ``sys.modules``.
"""

from __future__ import annotations

import enum
import itertools
import threading
import types
import warnings
from dataclasses import dataclass, field

import numpy as np

NO_CONTEXT = "explicit_context_dependent failed: invalid device context - no currently active context?"
POP_EMPTY = "context::pop failed: invalid device context - cannot pop non-current context"


@dataclass
class FakeCudaState:
    devices: int = 1
    device_name: str = "Fake Orin"
    compute_capability: tuple[int, int] = (8, 7)
    total_memory: int = 8 << 30
    bandwidth_bytes_per_ms: float = 1e7  # 10 GB/s: a 1 MB copy takes 0.1 ms of device time
    init_error: str | None = None  # set to make cuInit fail, as on a machine without a driver
    initialized: bool = False
    clock_ms: float = 0.0
    memory: dict[int, bytearray] = field(default_factory=dict)  # device pointer -> bytes
    # device memory taken by others than pycuda in this process (the fake TensorRT's engines and execution contexts,
    # as TensorRT allocates through the CUDA runtime): handle -> bytes, counted by mem_get_info and allocations
    reserved: dict[int, int] = field(default_factory=dict)
    host_allocations: int = 0  # live page-locked allocations
    pushes: int = 0
    pops: int = 0
    retains: int = 0
    detaches: int = 0
    warnings: list[str] = field(default_factory=list)
    ops: list[tuple] = field(default_factory=list)  # (operation, thread id)
    _stacks: dict[int, list] = field(default_factory=dict)  # thread id -> context stack
    _lock: threading.Lock = field(default_factory=threading.Lock)
    _pointers: itertools.count = field(default_factory=lambda: itertools.count(0x7F0000000000, 0x100000))

    def stack(self) -> list:
        with self._lock:
            return self._stacks.setdefault(threading.get_ident(), [])

    def stack_depths(self) -> dict[int, int]:
        """Thread id -> contexts on its stack; all zero when every push was popped."""
        with self._lock:
            return {t: len(s) for t, s in self._stacks.items()}

    @property
    def live_device_bytes(self) -> int:
        """Device memory pycuda allocated and has not freed."""
        return sum(len(b) for b in self.memory.values())

    @property
    def reserved_bytes(self) -> int:
        """Device memory others hold (``reserve``)."""
        return sum(self.reserved.values())

    def reserve(self, nbytes: int) -> int:
        """``nbytes`` of device memory taken by another library; ``release(handle)`` gives it back."""
        handle = next(self._pointers)
        with self._lock:
            self.reserved[handle] = int(nbytes)
        return handle

    def release(self, handle: int) -> None:
        with self._lock:
            self.reserved.pop(handle, None)


def make_pycuda(**settings) -> tuple[types.ModuleType, types.ModuleType]:
    state = FakeCudaState(**settings)
    driver = types.ModuleType("pycuda.driver")
    driver.__file__ = __file__
    driver._fake = state

    class Error(Exception):
        pass

    class LogicError(Error):
        pass

    class CudaRuntimeError(Error):
        pass

    class CudaMemoryError(Error):
        pass

    # As pycuda names them (pycuda._driver.RuntimeError, .MemoryError): code that tells errors apart by class name
    # sees what it would see on a board.
    CudaRuntimeError.__name__ = CudaRuntimeError.__qualname__ = "RuntimeError"
    CudaMemoryError.__name__ = CudaMemoryError.__qualname__ = "MemoryError"

    def require_context(what: str, *, object_first: bool = False):
        """The current context, or the LogicError pycuda raises: objects that take the context before any driver call
        (Stream, Event) say "no currently active context?"; driver calls fail with "invalid device context"."""
        stack = state.stack()
        if not stack:
            raise LogicError(NO_CONTEXT if object_first else f"{what.split(' ')[0]} failed: invalid device context")
        state.ops.append((what, threading.get_ident()))
        return stack[-1]

    def init(flags: int = 0) -> None:
        if state.init_error:
            raise CudaRuntimeError(f"cuInit failed: {state.init_error}")
        state.initialized = True

    class Device:
        def __init__(self, number: int) -> None:
            if not state.initialized:
                raise LogicError("cuDeviceGet failed: initialization error")
            if not 0 <= number < state.devices:
                raise LogicError("cuDeviceGet failed: invalid device ordinal")
            self.number = number

        @staticmethod
        def count() -> int:
            if not state.initialized:
                raise LogicError("cuDeviceGetCount failed: initialization error")
            return state.devices

        def name(self) -> str:
            return state.device_name

        def compute_capability(self) -> tuple[int, int]:
            return state.compute_capability

        def total_memory(self) -> int:
            return state.total_memory

        def retain_primary_context(self) -> Context:
            # Like cuDevicePrimaryCtxRetain: the same device context each time, not made current.
            state.retains += 1
            return Context(self.number, primary=True)

        def make_context(self, flags: int = 0) -> Context:
            ctx = Context(self.number, primary=False, handle=next(state._pointers))
            ctx.push()
            return ctx

    class Context:
        def __init__(self, device: int, primary: bool, handle: int | None = None) -> None:
            self.device = device
            self.primary = primary
            self.handle = handle if handle is not None else 0xC0 + device  # the primary context: one per device
            self.thread = threading.get_ident()  # pycuda remembers the thread that made the Context object
            self.valid = True

        def __eq__(self, other) -> bool:
            return isinstance(other, Context) and other.handle == self.handle

        def __hash__(self) -> int:
            return hash(self.handle)

        def push(self) -> None:
            if not self.valid:
                raise LogicError("cannot activate dead context")
            state.stack().append(self)
            state.pushes += 1

        @staticmethod
        def pop() -> None:
            stack = state.stack()
            if not stack:
                raise LogicError(POP_EMPTY)
            stack.pop()
            state.pops += 1

        @staticmethod
        def get_current():
            stack = state.stack()
            return stack[-1] if stack else None

        @staticmethod
        def get_device() -> Device:
            return Device(require_context("cuCtxGetDevice").device)

        @staticmethod
        def synchronize() -> None:
            require_context("cuCtxSynchronize")

        def detach(self) -> None:
            if not self.valid:
                raise LogicError("context::detach failed: invalid device context - cannot detach from invalid context")
            self.valid = False
            state.detaches += 1

    def cleanup_allowed(owner: Context, what: str) -> bool:
        """pycuda's scoped_context_activation: fine when ``owner`` is current or can be pushed on this thread."""
        current = Context.get_current()
        if current is not None and current == owner:
            return True
        if owner.thread == threading.get_ident():
            return True
        message = f"{what} in out-of-thread context could not be cleaned up"
        state.warnings.append(message)
        warnings.warn(message, UserWarning, stacklevel=3)
        return False

    class DeviceAllocation:
        def __init__(self, nbytes: int) -> None:
            self._owner = require_context("cuMemAlloc")
            if nbytes <= 0:
                raise LogicError("cuMemAlloc failed: invalid argument")
            if state.live_device_bytes + state.reserved_bytes + nbytes > state.total_memory:
                raise CudaMemoryError("cuMemAlloc failed: out of memory")
            self.ptr = next(state._pointers)
            state.memory[self.ptr] = bytearray(nbytes)
            self.valid = True

        def __int__(self) -> int:
            return self.ptr

        __index__ = __int__

        def free(self) -> None:
            if self.valid and cleanup_allowed(self._owner, "device_allocation"):
                del state.memory[self.ptr]
                self.valid = False

    class HostAllocation(bytearray):
        """Page-locked host memory: the ``base`` of a ``pagelocked_empty`` array."""

        def __init__(self, nbytes: int) -> None:
            super().__init__(nbytes)
            self._owner = require_context("cuMemHostAlloc")
            self.valid = True
            state.host_allocations += 1

        def free(self) -> None:
            if self.valid and cleanup_allowed(self._owner, "host_allocation"):
                self.valid = False
                state.host_allocations -= 1

    def mem_alloc(nbytes: int) -> DeviceAllocation:
        return DeviceAllocation(int(nbytes))

    def pagelocked_empty(shape, dtype, order: str = "C", mem_flags: int = 0) -> np.ndarray:
        shape = (shape,) if isinstance(shape, int) else tuple(shape)
        dtype = np.dtype(dtype)
        nbytes = int(np.prod(shape, dtype=np.int64)) * dtype.itemsize
        return np.ndarray(shape, dtype, buffer=HostAllocation(max(nbytes, 1)), order=order)

    def mem_get_info() -> tuple[int, int]:
        require_context("cuMemGetInfo")
        return max(0, state.total_memory - state.live_device_bytes - state.reserved_bytes), state.total_memory

    class Stream:
        def __init__(self, flags: int = 0) -> None:
            self._owner = require_context("cuStreamCreate", object_first=True)
            self.handle = next(state._pointers)

        def synchronize(self) -> None:
            require_context("cuStreamSynchronize")

        def is_done(self) -> bool:
            return True

    class event_flags(enum.IntFlag):  # noqa: N801 - pycuda's name
        DEFAULT = 0
        BLOCKING_SYNC = 1
        DISABLE_TIMING = 2
        INTERPROCESS = 4

    class Event:
        def __init__(self, flags: int = 0) -> None:
            require_context("cuEventCreate", object_first=True)
            self.flags = event_flags(flags)
            self.t_ms: float | None = None

        def record(self, stream: Stream | None = None) -> Event:
            require_context("cuEventRecord")
            self.t_ms = state.clock_ms
            return self

        def synchronize(self) -> Event:
            blocking = event_flags.BLOCKING_SYNC in self.flags  # the host sleeps rather than spins
            require_context("cuEventSynchronize (blocking)" if blocking else "cuEventSynchronize (spin)")
            return self

        def query(self) -> bool:
            return True

        def time_till(self, event: Event) -> float:
            if event_flags.DISABLE_TIMING in self.flags or event_flags.DISABLE_TIMING in event.flags:
                raise LogicError("cuEventElapsedTime failed: invalid resource handle")
            if self.t_ms is None or event.t_ms is None:
                raise LogicError("cuEventElapsedTime failed: invalid value")
            return event.t_ms - self.t_ms

        def time_since(self, event: Event) -> float:
            return event.time_till(self)

    def device_bytes(ptr, nbytes: int) -> bytearray:
        ptr = int(ptr)
        if ptr not in state.memory:
            raise LogicError("cuMemcpy failed: invalid argument (not the start of a live device allocation)")
        memory = state.memory[ptr]
        if nbytes > len(memory):
            raise LogicError(f"cuMemcpy failed: invalid argument ({nbytes} bytes into an allocation of {len(memory)})")
        return memory

    def host_view(array, pagelocked: bool) -> memoryview:
        if pagelocked and not isinstance(getattr(array, "base", None), HostAllocation):
            raise LogicError("async copies need page-locked host memory (pagelocked_empty)")
        return memoryview(np.ascontiguousarray(array)).cast("B")

    def advance(nbytes: int) -> None:
        state.clock_ms += max(nbytes, 1) / state.bandwidth_bytes_per_ms

    def memcpy_htod(dest, src) -> None:
        require_context("cuMemcpyHtoD")
        view = host_view(src, pagelocked=False)
        device_bytes(dest, view.nbytes)[: view.nbytes] = view
        advance(view.nbytes)

    def memcpy_htod_async(dest, src, stream: Stream | None = None) -> None:
        require_context("cuMemcpyHtoDAsync")
        view = host_view(src, pagelocked=True)
        device_bytes(dest, view.nbytes)[: view.nbytes] = view
        advance(view.nbytes)

    def memcpy_dtoh(dest, src) -> None:
        require_context("cuMemcpyDtoH")
        target = memoryview(dest).cast("B")
        target[:] = device_bytes(src, target.nbytes)[: target.nbytes]
        advance(target.nbytes)

    def memcpy_dtoh_async(dest, src, stream: Stream | None = None) -> None:
        require_context("cuMemcpyDtoHAsync")
        if not isinstance(getattr(dest, "base", None), HostAllocation):
            raise LogicError("async copies need page-locked host memory (pagelocked_empty)")
        target = memoryview(dest).cast("B")
        target[:] = device_bytes(src, target.nbytes)[: target.nbytes]
        advance(target.nbytes)

    def memcpy_dtod_async(dest, src, size: int, stream: Stream | None = None) -> None:
        require_context("cuMemcpyDtoDAsync")
        device_bytes(dest, size)[:size] = device_bytes(src, size)[:size]
        advance(size)

    def memcpy_dtod(dest, src, size: int) -> None:
        memcpy_dtod_async(dest, src, size)

    for name, value in dict(
        Error=Error, LogicError=LogicError, RuntimeError=CudaRuntimeError, MemoryError=CudaMemoryError, init=init,
        Device=Device, Context=Context, DeviceAllocation=DeviceAllocation, HostAllocation=HostAllocation,
        mem_alloc=mem_alloc, pagelocked_empty=pagelocked_empty, mem_get_info=mem_get_info, Stream=Stream,
        Event=Event, event_flags=event_flags, memcpy_htod=memcpy_htod, memcpy_htod_async=memcpy_htod_async,
        memcpy_dtoh=memcpy_dtoh, memcpy_dtoh_async=memcpy_dtoh_async, memcpy_dtod_async=memcpy_dtod_async,
        memcpy_dtod=memcpy_dtod,
    ).items():
        setattr(driver, name, value)
    package = types.ModuleType("pycuda")
    package.__path__ = []  # a package, so ``import pycuda.driver`` looks up the submodule in sys.modules
    package.VERSION = (2026, 1)
    package.driver = driver
    return package, driver
