"""A built TensorRT engine at one batch size, timed: pinned host and device buffers for every I/O tensor, the
name-based tensor API (``set_tensor_address``, ``execute_async_v3``) on a non-default stream, CUDA events. ``feed``
puts real inputs in the pinned input buffer, so the accuracy pass runs the very engine that was timed."""

from __future__ import annotations

import logging

from dnnprof.shared.errors import UserError

from ..base import DeviceTimes, Runner
from .cuda import current

log = logging.getLogger(__name__)


class TensorRTRunner(Runner):
    """One engine at one batch size, with pinned host and device buffers for every I/O tensor."""

    sync_mode = "blocking"  # the host sleeps on a BLOCKING_SYNC CUDA event until each batch is done

    def __init__(self, trt, cuda, ctx, runtime, engine, batch: int, input_shape: tuple[int, ...], *, seed: int,
                 device: str, what: str, plan_bytes: int | None = None) -> None:
        """Call with ``ctx`` current on this thread. ``plan_bytes``: the size of the serialized engine ``engine`` was
        deserialized from (``engine_bytes``), where the caller knows it."""
        import numpy as np

        self._cuda, self._ctx = cuda, ctx
        self._runtime, self._engine = runtime, engine
        self.device = device
        self._closed = False
        self._inputs: list[tuple] = []  # (name, host array, device allocation)
        self._outputs: list[tuple] = []
        self._stream = None
        self._events: list = []
        # Memory, each part named as in schema.Memory (bytes; None where unknown). Together: the model's footprint at
        # this batch, the figure to set beside ONNX Runtime's process RSS delta.
        # - engine_bytes: the serialized engine (plan) it was loaded from: weights and kernels, which deserializing
        #   puts in device memory. No API reports the loaded engine's own size (streamable_weights_size, 10.0+,
        #   counts only weights built for weight streaming, which dnnprof does not ask for).
        # - activations_bytes: the execution context's device memory, activations and scratch (device_memory_size_v2
        #   from TensorRT 10.1, which also counts weight-streaming scratch; before it device_memory_size; 11 has only
        #   v2). An upper bound, allocated when the context is made.
        # - io_bytes: this runner's device buffers, one per I/O tensor at this batch. The pinned host buffers are as
        #   large again, in host memory (on a Jetson, the same DRAM); they are not counted.
        self.engine_bytes: int | None = plan_bytes
        self.activations_bytes: int | None = None
        self.io_bytes: int | None = None
        # UNVERIFIED on hardware: the name-based tensor API as in TRT 8.5 and 10.3 pyCore.cpp (get_tensor_name/mode/
        # dtype, context.set_input_shape returning bool, context.get_tensor_shape resolving outputs); fakes only.
        self._context = engine.create_execution_context()
        if self._context is None:
            raise UserError(f"TensorRT could not create an execution context for {what}")
        try:
            names = [engine.get_tensor_name(i) for i in range(engine.num_io_tensors)]
            inputs = {n for n in names if engine.get_tensor_mode(n) == trt.TensorIOMode.INPUT}
            for name in inputs:
                if not self._context.set_input_shape(name, (batch, *input_shape)):
                    raise UserError(f"TensorRT refuses shape {(batch, *input_shape)} for input {name!r} of {what}")
            rng = np.random.default_rng(seed)
            for name in names:
                # The context resolves every shape once the inputs' are set (outputs follow the batch).
                shape = tuple(self._context.get_tensor_shape(name))
                if any(d < 0 for d in shape):
                    raise UserError(f"TensorRT leaves tensor {name!r} of {what} with unresolved shape {shape}")
                try:
                    dtype = np.dtype(trt.nptype(engine.get_tensor_dtype(name)))
                except TypeError:
                    raise UserError(f"tensor {name!r} of {what} has a TensorRT type with no numpy equivalent "
                                    f"({engine.get_tensor_dtype(name)})") from None
                host = cuda.pagelocked_empty(shape, dtype)
                dev = cuda.mem_alloc(max(host.nbytes, 1))
                self.io_bytes = (self.io_bytes or 0) + max(host.nbytes, 1)
                if name in inputs:
                    # Random, never zeros (some kernels skip work on zeros); seeded, so runs are repeatable.
                    if dtype.kind == "f":
                        host[...] = rng.standard_normal(shape, dtype=np.float32).astype(dtype)
                    else:
                        host[...] = rng.integers(0, 100, size=shape).astype(dtype)
                    self._inputs.append((name, host, dev))
                else:
                    host.fill(0)
                    self._outputs.append((name, host, dev))
                self._context.set_tensor_address(name, int(dev))
            self._stream = cuda.Stream()  # not the default stream: execute_async_v3 on it adds device syncs
            # The host waits on the last event with BLOCKING_SYNC: it sleeps instead of spinning a CPU core, which
            # would add to the measured power (trtexec also blocks unless --useSpinWait).
            # UNVERIFIED on hardware: the CPU-power difference on a Jetson; the event itself is plain pycuda.
            self._events = [cuda.Event() for _ in range(3)] + [cuda.Event(cuda.event_flags.BLOCKING_SYNC)]
            # UNVERIFIED on hardware: the figures as TensorRT reports them (fakes only; the recorded API has both
            # properties in the versions named above).
            size = getattr(engine, "device_memory_size_v2", None)
            self.activations_bytes = int(engine.device_memory_size if size is None else size)
            # memory_bytes (schema.Memory.backend_bytes) stays what it always counted: activations_bytes only, not the
            # weights (engine_bytes) or the I/O buffers (io_bytes).
            self.memory_bytes = self.activations_bytes
        except BaseException:
            self._free()
            raise

    @property
    def inputs(self) -> dict:
        """Input name → pinned host array (the batch sent each time)."""
        return {name: host for name, host, _ in self._inputs}

    @property
    def outputs(self) -> dict:
        """Output name → pinned host array, holding the last batch's outputs."""
        return {name: host for name, host, _ in self._outputs}

    def feed(self, data) -> None:
        """Copy ``data`` (the prepared batch's shape; float32, cast to the input's own type) into the pinned host
        input buffer, in place of the random input: the next ``infer`` copies it to the device and runs it."""
        import numpy as np

        if self._closed:
            raise RuntimeError("this TensorRT runner is closed")
        if len(self._inputs) != 1:
            raise ValueError(f"feed takes one input; this engine has {len(self._inputs)}")
        (name, host, _), = self._inputs
        data = np.asarray(data)
        if data.shape != host.shape:
            raise ValueError(f"feed: input {name!r} takes shape {host.shape}, not {data.shape}")
        np.copyto(host, data, casting="unsafe")  # float32 into an fp16 (or other) input: cast as TensorRT would

    def infer(self) -> DeviceTimes:
        """Copy the input in, run, copy the outputs back, wait; device times from CUDA events around each step."""
        if self._closed:
            raise RuntimeError("this TensorRT runner is closed")
        cuda, stream = self._cuda, self._stream
        start, copied_in, computed, copied_out = self._events
        self._ctx.push()  # this thread may not be the one that prepared the runner
        try:
            start.record(stream)
            for _, host, dev in self._inputs:
                cuda.memcpy_htod_async(dev, host, stream)
            copied_in.record(stream)
            if not self._context.execute_async_v3(stream.handle):
                raise RuntimeError("TensorRT execute_async_v3 failed (see the TensorRT messages above)")
            computed.record(stream)
            for _, host, dev in self._outputs:
                cuda.memcpy_dtoh_async(host, dev, stream)
            copied_out.record(stream)
            copied_out.synchronize()
            return DeviceTimes(compute_ms=copied_in.time_till(computed), h2d_ms=start.time_till(copied_in),
                               d2h_ms=computed.time_till(copied_out))
        finally:
            cuda.Context.pop()

    def close(self) -> None:
        """Free the buffers, stream, events, execution context and engine, with the context current."""
        if self._closed:
            return
        self._closed = True
        with current(self._cuda, self._ctx):
            self._free()

    def _free(self) -> None:
        # Called with the context current: pycuda frees each object in the context it was made in, and from a
        # thread other than the one that made the context it could not activate it (a warning and a leak).
        for _, host, dev in self._inputs + self._outputs:
            dev.free()
            free_host = getattr(host.base, "free", None)  # pycuda's HostAllocation
            if free_host is not None:
                free_host()
        self._inputs, self._outputs = [], []
        self._events = []
        self._stream = None
        # TensorRT objects go in dependency order: execution context, engine, runtime.
        self._context = None
        self._engine = None
        self._runtime = None
