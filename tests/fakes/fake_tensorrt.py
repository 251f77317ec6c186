"""A thin fake of the ``tensorrt`` Python module, per major version (8 or 10), for machines without TensorRT.

It has the members the real module has in that version and no others, so a call outside the documented API fails
as it would on a board (sources: NVIDIA/TensorRT python/src/infer/pyCore.cpp, pyInt8.cpp, parsers/pyOnnx.cpp and
python/docstrings/infer/pyCoreDoc.h at release/8.5, release/8.6, release/10.0, v10.3.0, release/10.13):

- 10.x: no ``build_engine``, ``max_workspace_size``, ``execute_async_v2``, ``num_bindings``, ``get_binding_*``
  (AttributeError); ``EXPLICIT_BATCH`` exists but is deprecated and ignored (its use is recorded);
  ``device_memory_size_v2`` only from 10.1 (from then on a use of the deprecated ``device_memory_size`` is
  recorded); ``IProgressMonitor`` and ``BuilderConfig.progress_monitor`` from 10.0.
- 8.x: the deprecated binding-index API and ``build_engine`` / ``max_workspace_size`` exist but fail the test if
  called; ``create_network()`` without ``EXPLICIT_BATCH`` makes an implicit-batch network, which the ONNX parser
  refuses with the real assertion message.
- Subclasses of ``ILogger``, ``IInt8EntropyCalibrator2`` and ``IProgressMonitor`` must call the base ``__init__``
  (pybind11 trampolines raise TypeError otherwise); exceptions raised in their callbacks are printed and swallowed,
  as the trampolines do.

Everything else is thin: the parser reads the ONNX graph's inputs and outputs with ``onnx`` (unknown operators are
parser errors), the builder checks the configuration (profiles for dynamic inputs, calibrator, DLA core, timing
cache device) and returns a JSON "plan", the runtime refuses plans of another version or garbage, and
``execute_async_v3`` "runs" by copying the input device buffer into the output buffer with
``pycuda.driver.memcpy_dtod_async`` (the fake pycuda, or the real one on a GPU machine). ``trt._fake`` holds the
settings and counters tests use.
"""

from __future__ import annotations

import enum
import json
import sys
import types
from dataclasses import dataclass, field

import numpy as np

PLAN_MAGIC = "fake-tensorrt-plan"
IMPLICIT_BATCH_ERROR = (
    'Assertion failed: !_importer_ctx.network()->hasImplicitBatchDimension() && "This version of the ONNX parser '
    'only supports TensorRT INetworkDefinitions with an explicit batch dimension. Please ensure the network was '
    'created using the EXPLICIT_BATCH NetworkDefinitionCreationFlag."')


class DeprecatedCall(AssertionError):
    """dnnprof called an API that is deprecated in this TensorRT version and removed in the next major one."""


@dataclass
class FakeTensorRTState:
    version: str
    fast_fp16: bool = True
    fast_int8: bool = True
    dla_cores: int = 0
    device: str = "Fake Orin (sm_87)"  # what timing caches are stamped with
    device_memory_bytes_per_image: int = 1 << 20
    builds: int = 0  # successful build_serialized_network calls
    build_calls: int = 0
    deserializations: int = 0
    executions: int = 0
    last_build: dict | None = None
    deprecated_used: list[str] = field(default_factory=list)
    logged: list[tuple[int, str]] = field(default_factory=list)
    phases: list[tuple] = field(default_factory=list)  # progress monitor calls seen
    calibration_batches: int = 0
    cancel_build: bool = False  # the next build stops at its first progress step, as a cancelled one does


def _base_init_check(obj, cls_name: str) -> None:
    if not getattr(obj, "_trt_base_init", False):
        raise TypeError(f"tensorrt.tensorrt.{cls_name}.__init__() must be called when overriding __init__")


def make_tensorrt(version: str = "10.3.0", **settings) -> types.ModuleType:
    major, minor = (int(x) for x in version.split(".")[:2])
    if major not in (8, 10):
        raise ValueError("the fake models TensorRT 8.x and 10.x")
    state = FakeTensorRTState(version=version, **settings)
    trt = types.ModuleType("tensorrt")
    trt.__version__ = version
    trt.__file__ = __file__
    trt._fake = state

    def deprecated(name: str):
        def call(*args, **kwargs):
            state.deprecated_used.append(name)
            raise DeprecatedCall(f"{name} is deprecated in TensorRT {major}.x and gone in 10: use the name-based API")

        return call

    # -- enums and types -------------------------------------------------------------------------------------------

    class Severity(enum.IntEnum):
        INTERNAL_ERROR = 0
        ERROR = 1
        WARNING = 2
        INFO = 3
        VERBOSE = 4

    class ILogger:
        def __init__(self) -> None:
            self._trt_base_init = True

        def log(self, severity, msg) -> None:
            raise NotImplementedError

    ILogger.Severity = Severity
    for member in Severity:
        setattr(ILogger, member.name, member)

    class Logger(ILogger):
        def __init__(self, min_severity=Severity.WARNING) -> None:
            super().__init__()
            self.min_severity = min_severity

        def log(self, severity, msg) -> None:
            if severity <= self.min_severity:
                print(f"[TRT] {msg}", file=sys.stderr)

    flags = {"EXPLICIT_BATCH": 0}
    if major >= 10:
        flags.update(STRONGLY_TYPED=1)
    else:
        flags.update(EXPLICIT_PRECISION=1)
    NetworkDefinitionCreationFlag = enum.IntEnum("NetworkDefinitionCreationFlag", flags)
    MemoryPoolType = enum.IntEnum("MemoryPoolType", {"WORKSPACE": 0, "DLA_MANAGED_SRAM": 1, "DLA_LOCAL_DRAM": 2,
                                                     "DLA_GLOBAL_DRAM": 3, "TACTIC_DRAM": 4})
    BuilderFlag = enum.IntEnum("BuilderFlag", {"FP16": 0, "INT8": 1, "DEBUG": 2, "GPU_FALLBACK": 3,
                                               "REFIT": 5, "STRICT_TYPES" if major < 10 else "STRIP_PLAN": 6})
    DeviceType = enum.IntEnum("DeviceType", {"GPU": 0, "DLA": 1})
    TensorIOMode = enum.IntEnum("TensorIOMode", {"NONE": 0, "INPUT": 1, "OUTPUT": 2})
    DataType = enum.IntEnum("DataType", {"FLOAT": 0, "HALF": 1, "INT8": 2, "INT32": 3, "BOOL": 4, "BF16": 7})
    numpy_types = {DataType.FLOAT: np.float32, DataType.HALF: np.float16, DataType.INT8: np.int8,
                   DataType.INT32: np.int32, DataType.BOOL: np.bool_}

    def nptype(trt_type):
        if trt_type in numpy_types:
            return numpy_types[trt_type]
        raise TypeError("Could not resolve TensorRT datatype to an equivalent numpy datatype.")

    def volume(iterable) -> int:
        result = 1
        for x in iterable:
            result *= x
        return result

    class HostMemory(bytes):
        """IHostMemory: a buffer (here: bytes) with nbytes."""

        @property
        def nbytes(self) -> int:
            return len(self)

    def logger_log(logger, severity, message: str) -> None:
        state.logged.append((int(severity), message))
        try:
            logger.log(severity, message)
        except Exception as exc:  # the real trampoline prints and carries on
            print(f"[ERROR] Exception caught in log(): {exc}", file=sys.stderr)

    # -- network and parser ----------------------------------------------------------------------------------------

    class ITensor:
        def __init__(self, name: str, shape: tuple[int, ...], dtype=DataType.FLOAT) -> None:
            self.name, self.shape, self.dtype = name, tuple(shape), dtype

    class INetworkDefinition:
        def __init__(self, explicit: bool) -> None:
            self.explicit = explicit
            self.inputs: list[ITensor] = []
            self.outputs: list[ITensor] = []

        @property
        def has_implicit_batch_dimension(self) -> bool:
            return not self.explicit

        @property
        def num_inputs(self) -> int:
            return len(self.inputs)

        @property
        def num_outputs(self) -> int:
            return len(self.outputs)

        def get_input(self, index: int) -> ITensor:
            return self.inputs[index]

        def get_output(self, index: int) -> ITensor:
            return self.outputs[index]

    ErrorCode = enum.IntEnum("ErrorCode", {"SUCCESS": 0, "INTERNAL_ERROR": 1, "MEM_ALLOC_FAILED": 2,
                                           "MODEL_DESERIALIZE_FAILED": 3, "INVALID_VALUE": 4, "INVALID_GRAPH": 5,
                                           "INVALID_NODE": 6, "UNSUPPORTED_GRAPH": 7, "UNSUPPORTED_NODE": 8})

    class ParserError:
        def __init__(self, code, desc: str, node: int = -1, func: str = "importModel") -> None:
            self._code, self._desc, self._node, self._func = code, desc, node, func

        def code(self):
            return self._code

        def desc(self) -> str:
            return self._desc

        def node(self) -> int:
            return self._node

        def func(self) -> str:
            return self._func

        def __str__(self) -> str:  # pyOnnx.cpp parser_error_str
            return f"In node {self._node} ({self._func}): {self._code.name}: {self._desc}"

    class OnnxParser:
        def __init__(self, network: INetworkDefinition, logger) -> None:
            self.network, self.logger = network, logger
            self._errors: list[ParserError] = []

        @property
        def num_errors(self) -> int:
            return len(self._errors)

        def get_error(self, index: int) -> ParserError:
            return self._errors[index]

        def clear_errors(self) -> None:
            self._errors = []

        def parse_from_file(self, model: str) -> bool:
            import onnx

            if not self.network.explicit:
                self._errors.append(ParserError(ErrorCode.INVALID_VALUE, IMPLICIT_BATCH_ERROR))
                return False
            try:
                proto = onnx.load(model, load_external_data=False)
            except Exception:
                self._errors.append(ParserError(ErrorCode.MODEL_DESERIALIZE_FAILED,
                                                f"Failed to parse ONNX model from file: {model}", -1,
                                                "parseFromFile"))
                return False
            for index, node in enumerate(proto.graph.node):
                if not onnx.defs.has(node.op_type):
                    self._errors.append(ParserError(
                        ErrorCode.UNSUPPORTED_NODE,
                        f"No importer registered for op: {node.op_type}. Attempting to import as plugin.", index,
                        "parseGraph"))
            if self._errors:
                return False

            def dims(value_info) -> tuple[int, ...]:
                return tuple(d.dim_value if d.HasField("dim_value") else -1
                             for d in value_info.type.tensor_type.shape.dim)

            initializers = {i.name for i in proto.graph.initializer}
            self.network.inputs = [ITensor(v.name, dims(v)) for v in proto.graph.input if v.name not in initializers]
            self.network.outputs = [ITensor(v.name, dims(v)) for v in proto.graph.output]
            return True

    # -- builder ---------------------------------------------------------------------------------------------------

    class IOptimizationProfile:
        def __init__(self) -> None:
            self.shapes: dict[str, tuple] = {}

        def set_shape(self, input: str, min, opt, max) -> None:
            self.shapes[input] = (tuple(min), tuple(opt), tuple(max))

        def get_shape(self, input: str):
            return self.shapes[input]

    class ITimingCache:
        def __init__(self, device: str, entries: int) -> None:
            self.device, self.entries = device, entries

        def serialize(self) -> HostMemory:
            return HostMemory(json.dumps({"timing-cache": True, "device": self.device,
                                          "entries": self.entries}).encode())

    class _ConfigBase:
        def __init__(self) -> None:
            self.pool_limits: dict = {}
            self.flags: set = set()
            self.default_device_type = DeviceType.GPU
            self.DLA_core = -1
            self.profiles: list[IOptimizationProfile] = []
            self.calibration_profile = None
            self._calibrator = None
            self._timing_cache = None
            self._monitor = None

        def set_memory_pool_limit(self, pool, pool_size: int) -> None:
            self.pool_limits[MemoryPoolType(pool)] = int(pool_size)

        def get_memory_pool_limit(self, pool) -> int:
            return self.pool_limits.get(MemoryPoolType(pool), 1 << 40)

        def set_flag(self, flag) -> None:
            self.flags.add(BuilderFlag(flag))

        def clear_flag(self, flag) -> None:
            self.flags.discard(BuilderFlag(flag))

        def get_flag(self, flag) -> bool:
            return BuilderFlag(flag) in self.flags

        def add_optimization_profile(self, profile: IOptimizationProfile) -> int:
            self.profiles.append(profile)
            return len(self.profiles) - 1

        def set_calibration_profile(self, profile: IOptimizationProfile) -> bool:
            self.calibration_profile = profile
            return True

        def get_calibration_profile(self):
            return self.calibration_profile

        @property
        def int8_calibrator(self):
            return self._calibrator

        @int8_calibrator.setter
        def int8_calibrator(self, calibrator) -> None:
            if calibrator is not None:
                _base_init_check(calibrator, "IInt8EntropyCalibrator2")
            self._calibrator = calibrator

        def create_timing_cache(self, serialized_timing_cache):
            data = bytes(memoryview(serialized_timing_cache))
            if not data:
                return ITimingCache(state.device, 0)
            try:
                parsed = json.loads(data)
                return ITimingCache(str(parsed["device"]), int(parsed["entries"]))
            except (ValueError, KeyError, TypeError):
                return None  # createTimingCache returns nullptr for a buffer it cannot read

        def set_timing_cache(self, cache: ITimingCache, ignore_mismatch: bool) -> bool:
            if cache.device != state.device and not ignore_mismatch:
                return False  # the header's CUDA device properties differ from this device's
            self._timing_cache = cache
            return True

        def get_timing_cache(self):
            return self._timing_cache

    config_members: dict = {}
    if major >= 10:
        def get_monitor(self):
            return self._monitor

        def set_monitor(self, monitor) -> None:
            if monitor is not None:
                _base_init_check(monitor, "IProgressMonitor")
            self._monitor = monitor

        config_members["progress_monitor"] = property(get_monitor, set_monitor)
    else:
        config_members["max_workspace_size"] = property(deprecated("IBuilderConfig.max_workspace_size"),
                                                        deprecated("IBuilderConfig.max_workspace_size"))
    IBuilderConfig = type("IBuilderConfig", (_ConfigBase,), config_members)

    def callback(obj, name: str, *args, default=None):
        """Call a Python override as the pybind11 trampoline does: exceptions are printed, not raised."""
        try:
            return getattr(obj, name)(*args)
        except Exception as exc:
            print(f"[ERROR] Exception caught in {name}(): {exc}", file=sys.stderr)
            return default

    class _BuilderBase:
        def __init__(self, logger) -> None:
            _base_init_check(logger, "ILogger")
            self.logger = logger

        @property
        def platform_has_fast_fp16(self) -> bool:
            return state.fast_fp16

        @property
        def platform_has_fast_int8(self) -> bool:
            return state.fast_int8

        @property
        def num_DLA_cores(self) -> int:
            return state.dla_cores

        def create_network(self, flags: int = 0) -> INetworkDefinition:
            explicit_bit = 1 << int(NetworkDefinitionCreationFlag.EXPLICIT_BATCH)
            if major >= 10:
                if flags & explicit_bit:
                    state.deprecated_used.append("EXPLICIT_BATCH")  # allowed: deprecated and ignored
                return INetworkDefinition(explicit=True)
            return INetworkDefinition(explicit=bool(flags & explicit_bit))

        def create_builder_config(self):
            return IBuilderConfig()

        def create_optimization_profile(self) -> IOptimizationProfile:
            return IOptimizationProfile()

        def fail(self, message: str) -> None:
            logger_log(self.logger, Severity.ERROR, message)

        def build_serialized_network(self, network: INetworkDefinition, config):
            state.build_calls += 1
            if not network.inputs:
                return self.fail("Network must have at least one input and one output.")
            shapes = {}
            for tensor in network.inputs:
                if all(d >= 0 for d in tensor.shape):
                    shapes[tensor.name] = tensor.shape
                    continue
                chosen = [p.shapes[tensor.name] for p in config.profiles if tensor.name in p.shapes]
                if not chosen:
                    return self.fail("Network has dynamic or shape inputs, but no optimization profile has "
                                     "been defined.")
                low, opt, high = chosen[0]
                if len(opt) != len(tensor.shape) or any(d >= 0 and d != o for d, o in zip(tensor.shape, opt)):
                    return self.fail(f"profile shape {opt} does not fit input {tensor.name} {tensor.shape}")
                shapes[tensor.name] = opt
            device = "GPU"
            if config.default_device_type == DeviceType.DLA:
                if not 0 <= config.DLA_core < state.dla_cores:
                    return self.fail(f"Cannot create DLA engine, {config.DLA_core} not available")
                if not config.flags & {BuilderFlag.FP16, BuilderFlag.INT8}:
                    return self.fail("DLA supports only FP16 and INT8 precision")
                device = "DLA"
            calibrated = 0
            if BuilderFlag.INT8 in config.flags:
                calibrator = config.int8_calibrator
                if calibrator is None:
                    return self.fail("Calibration failure occurred with no scaling factors detected.")
                dynamic = any(any(d < 0 for d in t.shape) for t in network.inputs)
                if dynamic and config.calibration_profile is None:
                    return self.fail("Calibration profile must be set for a network with dynamic shapes.")
                table = callback(calibrator, "read_calibration_cache")
                if not table:
                    batch_size = callback(calibrator, "get_batch_size", default=-1)
                    names = [t.name for t in network.inputs]
                    while True:
                        pointers = callback(calibrator, "get_batch", names)
                        if not pointers:
                            break
                        if len(pointers) != len(names) or not all(isinstance(p, int) for p in pointers):
                            return self.fail("get_batch must return one device pointer (int) per input")
                        calibrated += 1
                    if calibrated == 0:
                        return self.fail("Calibration failure occurred with no scaling factors detected.")
                    callback(calibrator, "write_calibration_cache",
                             memoryview(f"fake calibration table, {calibrated} batches of {batch_size}".encode()))
                state.calibration_batches += calibrated
            monitor = getattr(config, "progress_monitor", None) if major >= 10 else None
            if monitor is not None:
                for phase, parent, steps in (("Building engine", None, 2), ("Timing tactics", "Building engine", 3)):
                    state.phases.append(("start", phase, parent, steps))
                    callback(monitor, "phase_start", phase, parent, steps)
                    for step in range(steps):
                        keep_going = callback(monitor, "step_complete", phase, step, default=False)
                        state.phases.append(("step", phase, step))
                        if state.cancel_build or not keep_going:
                            state.cancel_build = False
                            callback(monitor, "phase_finish", phase)
                            return self.fail("Build was cancelled by the progress monitor.")
                    callback(monitor, "phase_finish", phase)
            if config.get_timing_cache() is not None:
                config.get_timing_cache().entries += 1
            batch = next(iter(shapes.values()))[0]
            outputs = [{"name": t.name, "shape": [batch if d < 0 else d for d in t.shape], "batch_dim": t.shape[0] < 0}
                       for t in network.outputs]
            inputs = [{"name": t.name, "shape": list(shapes[t.name]), "batch_dim": t.shape[0] < 0}
                      for t in network.inputs]
            state.builds += 1
            state.last_build = {
                "explicit_batch": network.explicit, "flags": sorted(f.name for f in config.flags),
                "workspace": config.pool_limits.get(MemoryPoolType.WORKSPACE), "device": device,
                "dla_core": config.DLA_core if device == "DLA" else None, "inputs": inputs, "outputs": outputs,
                "profiles": [p.shapes for p in config.profiles], "calibration_batches": calibrated,
                "timing_cache": config.get_timing_cache() is not None, "progress_monitor": monitor is not None,
            }
            plan = {"magic": PLAN_MAGIC, "version": version, **state.last_build}
            return HostMemory(json.dumps(plan).encode())

    builder_members: dict = {}
    if major < 10:
        builder_members.update(build_engine=deprecated("Builder.build_engine"),
                               max_batch_size=property(deprecated("Builder.max_batch_size")))
    Builder = type("Builder", (_BuilderBase,), builder_members)

    # -- runtime, engine, execution context ------------------------------------------------------------------------

    class Runtime:
        def __init__(self, logger) -> None:
            _base_init_check(logger, "ILogger")
            self.logger = logger
            self.DLA_core = -1

        @property
        def num_DLA_cores(self) -> int:
            return state.dla_cores

        def deserialize_cuda_engine(self, serialized_engine):
            try:
                plan = json.loads(bytes(memoryview(serialized_engine)))
                assert plan["magic"] == PLAN_MAGIC
            except (ValueError, KeyError, TypeError, AssertionError):
                logger_log(self.logger, Severity.ERROR, "1: [stdArchiveReader.cpp::StdArchiveReader::32] Error Code "
                           "1: Serialization (Serialization assertion magicTagRead == kMAGIC_TAG failed.Magic tag "
                           "does not match)")
                return None
            if plan["version"] != version:
                logger_log(self.logger, Severity.ERROR, "1: [stdArchiveReader.cpp::StdArchiveReader::40] Error Code "
                           "1: Serialization (Serialization assertion stdVersionRead == serializationVersion "
                           f"failed.Version tag does not match. Note: Current Version: {version}, Serialized "
                           f"Engine Version: {plan['version']})")
                return None
            if plan["device"] == "DLA" and self.DLA_core != plan["dla_core"]:
                logger_log(self.logger, Severity.ERROR, f"engine built for DLA core {plan['dla_core']}, runtime set "
                           f"to {self.DLA_core}")
                return None
            state.deserializations += 1
            return ICudaEngine(plan, self.logger)

    class _EngineBase:
        def __init__(self, plan: dict, logger) -> None:
            self.plan = plan
            self._logger = logger
            self.tensors = [(t, TensorIOMode.INPUT) for t in plan["inputs"]] + \
                           [(t, TensorIOMode.OUTPUT) for t in plan["outputs"]]

        def _tensor(self, name: str) -> tuple[dict, TensorIOMode]:
            for tensor, mode in self.tensors:
                if tensor["name"] == name:
                    return tensor, mode
            raise KeyError(name)

        @property
        def num_io_tensors(self) -> int:
            return len(self.tensors)

        def get_tensor_name(self, index: int) -> str:
            return self.tensors[index][0]["name"]

        def get_tensor_mode(self, name: str) -> TensorIOMode:
            return self._tensor(name)[1]

        def get_tensor_dtype(self, name: str):
            self._tensor(name)
            return DataType.FLOAT

        def get_tensor_shape(self, name: str) -> tuple[int, ...]:
            tensor, _ = self._tensor(name)
            shape = list(tensor["shape"])
            if tensor["batch_dim"]:
                shape[0] = -1  # a dynamic dimension, resolved by the execution context
            return tuple(shape)

        def get_tensor_profile_shape(self, name: str, profile_index: int):
            tensor, _ = self._tensor(name)
            return (tuple(tensor["shape"]),) * 3

        def _memory(self) -> int:
            return self.plan["inputs"][0]["shape"][0] * state.device_memory_bytes_per_image

        @property
        def device_memory_size(self) -> int:
            if (major, minor) >= (10, 1):
                state.deprecated_used.append("device_memory_size")  # deprecated in 10.1: still works
            return self._memory()

        def create_execution_context(self):
            # The context allocates the engine's device memory: too little free memory returns None, and TensorRT
            # says why only in its log (messages as TensorRT 8.6 logs them, NVIDIA/TensorRT#3017).
            import pycuda.driver as cuda

            need = self._memory()
            if need > cuda.mem_get_info()[0]:
                logger_log(self._logger, Severity.ERROR, "1: [defaultAllocator.cpp::nvinfer1::internal::"
                           "DefaultAllocator::allocate::19] Error Code 1: Cuda Runtime (out of memory)")
                logger_log(self._logger, Severity.WARNING, f"Requested amount of GPU memory ({need} bytes) could not "
                           "be allocated. There may not be enough free memory for allocation to succeed.")
                logger_log(self._logger, Severity.ERROR, "2: [executionContext.cpp::nvinfer1::rt::ExecutionContext::"
                           "ExecutionContext::470] Error Code 2: OutOfMemory (no further information)")
                return None
            return IExecutionContext(self)

    engine_members: dict = {}
    if (major, minor) >= (10, 1):
        engine_members["device_memory_size_v2"] = property(lambda self: self._memory())
    if major < 10:
        for name in ("num_bindings", "max_batch_size"):
            engine_members[name] = property(deprecated(f"ICudaEngine.{name}"))
        for name in ("get_binding_shape", "get_binding_name", "get_binding_index", "binding_is_input",
                     "get_binding_dtype"):
            engine_members[name] = deprecated(f"ICudaEngine.{name}")
    ICudaEngine = type("ICudaEngine", (_EngineBase,), engine_members)

    class _ContextBase:
        def __init__(self, engine) -> None:
            self.engine = engine
            self.input_shapes: dict[str, tuple] = {}
            self.addresses: dict[str, int] = {}

        def set_input_shape(self, name: str, shape) -> bool:
            tensor, mode = self.engine._tensor(name)
            if mode != TensorIOMode.INPUT or tuple(shape) != tuple(tensor["shape"]):
                return False  # outside the (fixed) profile
            self.input_shapes[name] = tuple(shape)
            return True

        def get_tensor_shape(self, name: str) -> tuple[int, ...]:
            tensor, mode = self.engine._tensor(name)
            if mode == TensorIOMode.INPUT:
                return self.input_shapes.get(name, self.engine.get_tensor_shape(name))
            if tensor["batch_dim"] and not self.input_shapes:
                return self.engine.get_tensor_shape(name)
            return tuple(tensor["shape"])

        def set_tensor_address(self, name: str, memory: int) -> bool:
            self.engine._tensor(name)
            if not isinstance(memory, int):
                raise TypeError("set_tensor_address(): incompatible function arguments: memory must be an int")
            self.addresses[name] = memory
            return True

        def execute_async_v3(self, stream_handle: int) -> bool:
            import pycuda.driver as cuda  # whichever is installed: the fake, or the real one on a GPU machine

            names = [t["name"] for t, _ in self.engine.tensors]
            inputs = [t for t, mode in self.engine.tensors if mode == TensorIOMode.INPUT]
            outputs = [t for t, mode in self.engine.tensors if mode == TensorIOMode.OUTPUT]
            if set(self.input_shapes) != {t["name"] for t in inputs} or set(self.addresses) != set(names):
                raise RuntimeError("execute_async_v3: every input shape and every tensor address must be set")
            if not isinstance(stream_handle, int) or stream_handle == 0:
                raise AssertionError("execute_async_v3 on the default stream adds device syncs: use a Stream")
            state.executions += 1
            # "Inference": the input's bytes become the start of each output, on the device.
            in_bytes = int(np.prod(inputs[0]["shape"])) * 4
            for out in outputs:
                size = min(in_bytes, int(np.prod(out["shape"])) * 4)
                # The default (legacy) stream is ordered with the runner's blocking stream, so this copy runs
                # between the runner's input copy and its output copy, as inference would.
                cuda.memcpy_dtod_async(self.addresses[out["name"]], self.addresses[inputs[0]["name"]], size)
            return True

    context_members: dict = {"execute_v2": lambda self, bindings: True}
    if major < 10:
        for name in ("execute_async_v2", "execute_async", "set_binding_shape", "get_binding_shape"):
            context_members[name] = deprecated(f"IExecutionContext.{name}")
    IExecutionContext = type("IExecutionContext", (_ContextBase,), context_members)

    # -- callbacks implemented by the application ------------------------------------------------------------------

    class IInt8Calibrator:
        def __init__(self) -> None:
            self._trt_base_init = True

    class IInt8EntropyCalibrator2(IInt8Calibrator):
        pass

    members = dict(
        ILogger=ILogger, Logger=Logger, NetworkDefinitionCreationFlag=NetworkDefinitionCreationFlag,
        MemoryPoolType=MemoryPoolType, BuilderFlag=BuilderFlag, DeviceType=DeviceType, TensorIOMode=TensorIOMode,
        DataType=DataType, float32=DataType.FLOAT, float16=DataType.HALF, int8=DataType.INT8,
        int32=DataType.INT32, nptype=nptype, volume=volume, IHostMemory=HostMemory, ITensor=ITensor,
        INetworkDefinition=INetworkDefinition, OnnxParser=OnnxParser, ParserError=ParserError, ErrorCode=ErrorCode,
        IOptimizationProfile=IOptimizationProfile, ITimingCache=ITimingCache, IBuilderConfig=IBuilderConfig,
        Builder=Builder, Runtime=Runtime, ICudaEngine=ICudaEngine, IExecutionContext=IExecutionContext,
        IInt8Calibrator=IInt8Calibrator, IInt8EntropyCalibrator2=IInt8EntropyCalibrator2,
    )
    if major >= 10:
        class IProgressMonitor:
            def __init__(self) -> None:
                self._trt_base_init = True

        members["IProgressMonitor"] = IProgressMonitor
    for name, value in members.items():
        setattr(trt, name, value)
    return trt
