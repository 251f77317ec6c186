"""A thin fake of the ``tensorrt`` Python module, per version (8.x, 10.x, 11.x), for machines without TensorRT.

It has the members the real module has in that version and no others (names, classes and their bases, enum members
and their values, properties and which can be set, argument names and defaults, constructors), so a call outside the
API fails as it would on a board. Its surface is checked against the recorded API of the real bindings (8.6, 10.0,
10.1, 10.3, 10.13, 10.16, 11.0, 11.4: tests/data/tensorrt-api/, extracted from ../shared/reference/tensorrt-api) by
tests/agent/backends/tensorrt/test_fake_api.py; the behaviour follows NVIDIA/TensorRT python/src/infer/pyCore.cpp,
pyInt8.cpp, pyFoundationalTypes.cpp, parsers/pyOnnx.cpp, python/docstrings/infer/pyCoreDoc.h and onnx/onnx-tensorrt
ModelImporter.cpp:

- 11.x: networks are always strongly typed (``NetworkDefinitionCreationFlag`` is ``STRONGLY_TYPED`` = 0 only, and
  ignored); no ``BuilderFlag.FP16`` / ``INT8`` / ``BF16`` (the other flags renumbered), no IInt8 calibrators,
  ``int8_calibrator`` or calibration profile, no ``platform_has_fast_fp16/int8``, no ``device_memory_size`` (only
  ``device_memory_size_v2``), no ``EXPLICIT_BATCH``; ``ITensor.dtype`` is read-only.
- 10.x: no ``build_engine``, ``max_workspace_size``, ``execute_async_v2``, ``num_bindings``, ``get_binding_*``
  (AttributeError); ``EXPLICIT_BATCH`` exists but is deprecated and ignored (its use is recorded);
  ``STRONGLY_TYPED`` makes a strongly typed network (``network.get_flag`` says so), whose build refuses the
  ``FP16`` / ``INT8`` builder flags with the real error (NVIDIA/TensorRT#4228, #4253) and, as the fake's own
  assumption, an int8 calibrator; ``device_memory_size_v2`` only from 10.1 (from then on a use of the deprecated
  ``device_memory_size`` is recorded); from 10.1 the ``int8_calibrator`` setter and ``set_calibration_profile`` warn
  with a DeprecationWarning (as the real bindings do); from 10.12 a ``FP16`` / ``INT8`` flag is recorded as
  deprecated; ``IProgressMonitor`` and ``BuilderConfig.progress_monitor`` from 10.0.
- 8.x: the deprecated binding-index API and ``build_engine`` / ``max_workspace_size`` exist but fail the test if
  called; ``create_network()`` without ``EXPLICIT_BATCH`` makes an implicit-batch network, which the ONNX parser
  refuses with the real assertion message; no strongly typed networks (no such flag).
- The ONNX parser fails as the real one does, in its version's words: an op with no importer is one error at the
  first such node on 8.x (``In node 0 (importFallbackPluginImporter): UNSUPPORTED_NODE: Assertion failed: creator &&
  "Plugin not found, ..."``), one per such node on 10.x and 11.x (``In node 0 with name: N and operator: OP
  (checkFallbackPluginImporter): INVALID_NODE: creator && "Plugin not found, ..."``, with ``node_name()`` and
  ``node_operator()``); a file that is no ONNX model is no parser error, only a log line.
- The classes pybind11 binds without a constructor (the engine, context, config, network, tensor, profile, timing
  cache, parser error, host memory) cannot be made from Python ("No constructor defined!"); a plan (IHostMemory)
  offers ``nbytes`` and the buffer protocol only (no len(), indexing or bytes methods).
- ``set_flag`` / ``set_memory_pool_limit`` take enum members only (a plain int is a TypeError, as in pybind11).
- Subclasses of ``ILogger``, ``IInt8EntropyCalibrator2`` and ``IProgressMonitor`` must call the base ``__init__``
  (pybind11 trampolines raise TypeError at construction otherwise); exceptions raised in their callbacks are
  printed and swallowed, as the trampolines do.

Everything else is thin: the parser reads the ONNX graph's inputs and outputs (names, shapes, element types) with
``onnx`` (unknown operators are parser errors) and what precision the graph carries (``int8`` with
QuantizeLinear/DequantizeLinear nodes, ``fp16`` with float16 tensors, else ``fp32``); the builder checks the
configuration (profiles for dynamic inputs, calibrator, DLA core, timing cache device, strong typing) and returns a
"plan": a JSON header, then the graph's weights (zeros; float32 ones halved by ``FP16``, quartered by ``INT8``); the
runtime refuses plans of another version, truncated ones or garbage. Under the fake pycuda an engine holds its plan's
size of device memory and an execution context its ``device_memory_size_v2`` (counted by ``mem_get_info``, given back
when the object goes), so the device memory a point holds is engine + activations + I/O buffers, as on a board;
``execute_async_v3`` "runs" by copying the input device buffer into the output buffer with
``pycuda.driver.memcpy_dtod_async`` (the fake pycuda, or the real one on a GPU machine). ``trt._fake`` holds the
settings and counters tests use. Every attribute of the fake's objects that the real ones lack starts with an
underscore.
"""

from __future__ import annotations

import enum
import functools
import json
import sys
import types
import warnings
import weakref
from dataclasses import dataclass, field

import numpy as np

PLAN_MAGIC = "fake-tensorrt-plan"
# importModel's first assertion on 8.x, ASSERT(cond && "...") as onnx-tensorrt's Status.hpp prints it; the context
# member is _importer_ctx in 8.5-GA's ModelImporter.cpp, mImporterCtx in 8.6-GA's.
_IMPLICIT_BATCH = ('Assertion failed: !{ctx}.network()->hasImplicitBatchDimension() && "This version of the ONNX '
                   'parser only supports TensorRT INetworkDefinitions with an explicit batch dimension. Please ensure '
                   'the network was created using the EXPLICIT_BATCH NetworkDefinitionCreationFlag."')
IMPLICIT_BATCH_ERROR = {5: _IMPLICIT_BATCH.format(ctx="_importer_ctx"), 6: _IMPLICIT_BATCH.format(ctx="mImporterCtx")}
# An op with no importer, as the plugin fallback reports it: 8.x ASSERT (8.5-GA, 8.6-GA builtin_op_importers.cpp);
# 10.x and 11.x STATIC_CHECK in the fallback's checker (onnxOpCheckers.cpp), which prints the bare condition.
PLUGIN_NOT_FOUND_10 = 'creator && "Plugin not found, are the plugin name, version, and namespace correct?"'
PLUGIN_NOT_FOUND_8 = f"Assertion failed: {PLUGIN_NOT_FOUND_10}"
# The source position onnx-tensorrt's LOG_ERROR puts before "Failed to parse ONNX model from file" (LOG prefixes
# __FILENAME__:__LINE__ at WARNING and above), where its source is at hand; other versions get the bare message.
PARSE_FILE_LOG = {(8, 5): "ModelImporter.cpp:688: ", (8, 6): "ModelImporter.cpp:717: ",
                  (10, 0): "ModelImporter.cpp:792: ", (10, 1): "ModelImporter.cpp:914: "}
# What TensorRT 10 logs when a strongly typed network is built with a precision flag (NVIDIA/TensorRT#4253, 10.6).
STRONGLY_TYPED_FLAG_ERROR = ("IBuilder::buildSerializedNetwork: Error Code 3: API Usage Error (Parameter check failed, "
                             "condition: !config.getFlag(BuilderFlag::k{flag}). )")
# ONNX element types the fake maps to TensorRT data types (onnx.TensorProto: FLOAT, FLOAT16, INT8, INT32, BOOL).
ONNX_TYPES = {1: "FLOAT", 10: "HALF", 3: "INT8", 6: "INT32", 9: "BOOL"}
# Bytes per element of the ONNX element types an initializer may have (FLOAT, UINT8, INT8, INT16, INT32, INT64, BOOL,
# FLOAT16, DOUBLE, BFLOAT16), for the fake engine's weights.
ONNX_ITEMSIZE = {1: 4, 2: 1, 3: 1, 5: 2, 6: 4, 7: 8, 9: 1, 10: 2, 11: 8, 16: 2}


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
    parsed: list[str] = field(default_factory=list)  # the ONNX files the parser read


def _trampoline(cls):
    """Make ``cls`` (an interface the application subclasses) refuse, at construction, a subclass whose
    ``__init__`` does not call the base one: pybind11's trampolines raise this TypeError."""

    def init_subclass(sub, **kwargs) -> None:
        own = sub.__dict__.get("__init__")
        if own is None:
            return

        @functools.wraps(own)
        def checked(self, *args, **kw) -> None:
            own(self, *args, **kw)
            if not getattr(self, "_trt_base_init", False):
                raise TypeError(f"tensorrt.tensorrt.{cls.__name__}.__init__() must be called when overriding "
                                "__init__")

        sub.__init__ = checked

    cls.__init_subclass__ = classmethod(init_subclass)
    return cls


def _base_init_check(obj, cls_name: str) -> None:
    if not getattr(obj, "_trt_base_init", False):
        raise TypeError(f"tensorrt.tensorrt.{cls_name}.__init__() must be called when overriding __init__")


def _no_constructor(cls):
    """pybind11 binds these classes without ``py::init``: Python code cannot make one (``TypeError: ... No constructor
    defined!``); the fake makes its own with ``cls._new(...)``."""
    init = cls.__init__

    def refuse(self, *args, **kwargs) -> None:
        raise TypeError(f"tensorrt.tensorrt.{cls.__name__}: No constructor defined!")

    def new(*args, **kwargs):
        obj = cls.__new__(cls)
        init(obj, *args, **kwargs)
        return obj

    cls.__init__ = refuse
    cls._new = staticmethod(new)
    return cls


def _require_enum(value, enum_type, function: str):
    """pybind11 converts only the enum's own members: a plain int is refused."""
    if not isinstance(value, enum_type):
        raise TypeError(f"{function}(): incompatible function arguments. The following argument types are "
                        f"supported: tensorrt.{enum_type.__name__}; invoked with: {value!r}")
    return value


def make_tensorrt(version: str = "10.3.0", **settings) -> types.ModuleType:
    major, minor = (int(x) for x in version.split(".")[:2])
    if major not in (8, 10, 11):
        raise ValueError("the fake models TensorRT 8.x, 10.x and 11.x")
    state = FakeTensorRTState(version=version, **settings)
    trt = types.ModuleType("tensorrt")
    trt.__version__ = version
    trt.__file__ = __file__
    trt._fake = state
    calibrators = major < 11  # IInt8 calibrators, int8_calibrator, calibration profiles: gone in 11
    # UNVERIFIED: when between 10.3 and 10.13 the 10.12 deprecation of the precision flags took effect in Python.
    flags_deprecated = (major, minor) >= (10, 12)

    def deprecated(name: str):
        def call(*args, **kwargs):
            state.deprecated_used.append(name)
            raise DeprecatedCall(f"{name} is deprecated in TensorRT {major}.x and gone in 10: use the name-based API")

        return call

    def warn_deprecated(name: str) -> None:
        # The real bindings warn (PyErr_WarnEx with a DeprecationWarning) and carry on.
        state.deprecated_used.append(name)
        warnings.warn(f"Use strongly typed networks (explicit quantization) instead of {name}", DeprecationWarning,
                      stacklevel=3)

    # -- enums and types -------------------------------------------------------------------------------------------

    class Severity(enum.IntEnum):
        INTERNAL_ERROR = 0
        ERROR = 1
        WARNING = 2
        INFO = 3
        VERBOSE = 4

    @_trampoline
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

    # Values as in the real enums of each version (a subset of their members: only what the fake models).
    if major == 8:
        creation_flags = {"EXPLICIT_BATCH": 0, "EXPLICIT_PRECISION": 1}
        builder_flags = {"FP16": 0, "INT8": 1, "DEBUG": 2, "GPU_FALLBACK": 3, "STRICT_TYPES": 4, "REFIT": 5,
                         "TF32": 7}
        data_types = {"FLOAT": 0, "HALF": 1, "INT8": 2, "INT32": 3, "BOOL": 4}
    elif major == 10:
        creation_flags = {"EXPLICIT_BATCH": 0, "STRONGLY_TYPED": 1}
        builder_flags = {"FP16": 0, "INT8": 1, "DEBUG": 2, "GPU_FALLBACK": 3, "REFIT": 4, "TF32": 6, "BF16": 17,
                         "STRIP_PLAN": 19}
        data_types = {"FLOAT": 0, "HALF": 1, "INT8": 2, "INT32": 3, "BOOL": 4, "BF16": 7}
    else:
        creation_flags = {"STRONGLY_TYPED": 0}
        builder_flags = {"DEBUG": 2, "GPU_FALLBACK": 3, "REFIT": 4, "TF32": 6, "STRIP_PLAN": 18}
        data_types = {"FLOAT": 0, "HALF": 1, "INT8": 2, "INT32": 3, "BOOL": 4, "BF16": 7}
    NetworkDefinitionCreationFlag = enum.IntEnum("NetworkDefinitionCreationFlag", creation_flags)
    MemoryPoolType = enum.IntEnum("MemoryPoolType", {"WORKSPACE": 0, "DLA_MANAGED_SRAM": 1, "DLA_LOCAL_DRAM": 2,
                                                     "DLA_GLOBAL_DRAM": 3, "TACTIC_DRAM": 4})
    BuilderFlag = enum.IntEnum("BuilderFlag", builder_flags)
    PRECISION_FLAGS = {f for f in BuilderFlag if f.name in ("FP16", "INT8", "BF16")}
    FP16, INT8 = getattr(BuilderFlag, "FP16", None), getattr(BuilderFlag, "INT8", None)
    STRONGLY_TYPED = getattr(NetworkDefinitionCreationFlag, "STRONGLY_TYPED", None)
    DeviceType = enum.IntEnum("DeviceType", {"GPU": 0, "DLA": 1})
    TensorIOMode = enum.IntEnum("TensorIOMode", {"NONE": 0, "INPUT": 1, "OUTPUT": 2})
    DataType = enum.IntEnum("DataType", data_types)
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

    class IHostMemory(bytes):
        """IHostMemory: ``nbytes``, ``dtype`` and the buffer protocol, nothing else (pyFoundationalTypes.cpp: no
        constructor, no len(), no indexing). A bytes subclass carries the buffer protocol (a Python class cannot
        offer it otherwise before 3.12); everything else bytes has is refused, so code must read a plan through
        ``memoryview`` as it must on a board."""

        def __new__(cls, *args, **kwargs):
            raise TypeError("tensorrt.tensorrt.IHostMemory: No constructor defined!")

        @classmethod
        def _new(cls, data: bytes):
            return bytes.__new__(cls, data)

        def __getattribute__(self, name: str):
            if not name.startswith("_") and name != "nbytes":
                raise AttributeError(f"'tensorrt.tensorrt.IHostMemory' object has no attribute '{name}'")
            return super().__getattribute__(name)

        def __len__(self) -> int:
            raise TypeError("object of type 'tensorrt.tensorrt.IHostMemory' has no len()")

        def __getitem__(self, key):
            raise TypeError("'tensorrt.tensorrt.IHostMemory' object is not subscriptable")

        def __iter__(self):
            raise TypeError("'tensorrt.tensorrt.IHostMemory' object is not iterable")

        def __contains__(self, item) -> bool:
            raise TypeError("argument of type 'tensorrt.tensorrt.IHostMemory' is not iterable")

        def __add__(self, other):
            return NotImplemented

        __radd__ = __mul__ = __rmul__ = __mod__ = __add__

        @property
        def nbytes(self) -> int:
            return memoryview(self).nbytes

    def logger_log(logger, severity, message: str) -> None:
        state.logged.append((int(severity), message))
        try:
            logger.log(severity, message)
        except Exception as exc:  # the real trampoline prints and carries on
            print(f"[ERROR] Exception caught in log(): {exc}", file=sys.stderr)

    # -- network and parser ----------------------------------------------------------------------------------------

    class _TensorBase:
        def __init__(self, name: str, shape: tuple[int, ...], dtype=DataType.FLOAT) -> None:
            self.name, self.shape, self._dtype = name, tuple(shape), dtype

    def set_tensor_dtype(self, dtype) -> None:
        self._dtype = _require_enum(dtype, DataType, "dtype")

    # 11.x: a tensor's type is read-only (every network is strongly typed: the types come from the file).
    ITensor = _no_constructor(type("ITensor", (_TensorBase,), {"dtype": property(
        lambda self: self._dtype, set_tensor_dtype if major < 11 else None)}))

    class _NetworkBase:
        def __init__(self, explicit: bool, strongly_typed: bool, flags: int) -> None:
            self._explicit = explicit
            self._strongly_typed = strongly_typed
            self._flags = flags
            self._inputs: list[ITensor] = []
            self._outputs: list[ITensor] = []
            self._precision = None  # what the parsed graph carries: "fp32", "fp16" or "int8"
            self._weights = {"float32": 0, "other": 0}  # the graph's initializers, bytes

        @property
        def has_implicit_batch_dimension(self) -> bool:
            return not self._explicit

        @property
        def num_inputs(self) -> int:
            return len(self._inputs)

        @property
        def num_outputs(self) -> int:
            return len(self._outputs)

        def get_input(self, index: int) -> ITensor:
            return self._inputs[index]

        def get_output(self, index: int) -> ITensor:
            return self._outputs[index]

    network_members: dict = {}
    if major >= 10:
        # UNVERIFIED: on 11.x, that get_flag(STRONGLY_TYPED) and flags report strong typing for every network.
        def get_flag(self, flag) -> bool:
            flag = _require_enum(flag, NetworkDefinitionCreationFlag, "get_flag")
            if flag == STRONGLY_TYPED:
                return self._strongly_typed
            return bool(self._flags & (1 << int(flag)))

        network_members["get_flag"] = get_flag
        network_members["flags"] = property(
            lambda self: self._flags | ((1 << int(STRONGLY_TYPED)) if self._strongly_typed else 0))
    INetworkDefinition = _no_constructor(type("INetworkDefinition", (_NetworkBase,), network_members))

    ErrorCode = enum.IntEnum("ErrorCode", {"SUCCESS": 0, "INTERNAL_ERROR": 1, "MEM_ALLOC_FAILED": 2,
                                           "MODEL_DESERIALIZE_FAILED": 3, "INVALID_VALUE": 4, "INVALID_GRAPH": 5,
                                           "INVALID_NODE": 6, "UNSUPPORTED_GRAPH": 7, "UNSUPPORTED_NODE": 8})

    class _ParserErrorBase:
        def __init__(self, code, desc: str, node: int = -1, func: str = "importModel", node_name: str = "",
                     node_operator: str = "") -> None:
            self._code, self._desc, self._node, self._func = code, desc, node, func
            self._node_name, self._node_operator = node_name, node_operator

        def code(self):
            return self._code

        def desc(self) -> str:
            return self._desc

        def node(self) -> int:
            return self._node

        def func(self) -> str:
            return self._func

        def __str__(self) -> str:
            # NVIDIA/TensorRT python/src/parsers/pyOnnx.cpp. 8.x (v8.6.1, parser_error_str):
            #   "In node " + node + " (" + func + "): " + code + ": " + desc
            # 10.x and 11.x (v10.0.1 parser_error_str; v10.3.0 onnx2trt::parserErrorStr of onnx-tensorrt's
            # errorHelpers.hpp; v10.13.3 and v11.0 pyonnx2trt::parserErrorStr): the node's name
            # and operator first, except for MODEL_DESERIALIZE_FAILED and REFIT_FAILED, which have no node:
            #   "In node " + node + " with name: " + nodeName + " and operator: " + nodeOperator + " "
            #   + "(" + func + "): " + code + ": " + desc
            error = f"({self._func}): {self._code.name}: {self._desc}"
            if major < 10:
                return f"In node {self._node} {error}"
            if self._code.name in ("MODEL_DESERIALIZE_FAILED", "REFIT_FAILED"):
                return error
            return f"In node {self._node} with name: {self._node_name} and operator: {self._node_operator} {error}"

    parser_error_members: dict = {}
    if major >= 10:
        parser_error_members.update(node_name=lambda self: self._node_name,
                                    node_operator=lambda self: self._node_operator)
    ParserError = _no_constructor(type("ParserError", (_ParserErrorBase,), parser_error_members))

    def weight_bytes(proto) -> dict:
        """The graph's initializers, bytes: float32 ones (which reduced-precision builder flags shrink) and others."""
        sizes = {"float32": 0, "other": 0}
        for tensor in proto.graph.initializer:
            size = int(np.prod(tensor.dims, dtype=np.int64)) * ONNX_ITEMSIZE.get(tensor.data_type, 4)
            sizes["float32" if tensor.data_type == 1 else "other"] += size
        return sizes

    def graph_precision(proto) -> str:
        """What precision an ONNX graph carries itself: int8 (Q/DQ pairs), fp16 (float16 tensors) or fp32."""
        ops = {node.op_type for node in proto.graph.node}
        if ops & {"QuantizeLinear", "DequantizeLinear"}:
            return "int8"
        half = 10  # onnx.TensorProto.FLOAT16
        typed = [i.data_type for i in proto.graph.initializer]
        typed += [v.type.tensor_type.elem_type for v in (*proto.graph.value_info, *proto.graph.input,
                                                          *proto.graph.output)]
        casts = [a.i for node in proto.graph.node if node.op_type == "Cast" for a in node.attribute if a.name == "to"]
        return "fp16" if half in typed or half in casts else "fp32"

    class OnnxParser:
        def __init__(self, network, logger) -> None:
            self._network, self._logger = network, logger
            self._errors: list[ParserError] = []

        @property
        def num_errors(self) -> int:
            return len(self._errors)

        def get_error(self, index: int) -> ParserError:
            return self._errors[index]

        def clear_errors(self) -> None:
            self._errors = []

        def parse_from_file(self, model: str) -> bool:
            # onnx-tensorrt ModelImporter::parseFromFile (8.5-GA, 8.6-GA, 10.0-GA, 10.1-GA and main of 2024-05): a
            # file that is no ONNX model is only logged, with no parser error; then the model is imported.
            import onnx

            try:
                proto = onnx.load(model, load_external_data=False)
            except Exception:
                logger_log(self._logger, Severity.ERROR, f"{PARSE_FILE_LOG.get((major, minor), '')}Failed to parse "
                           f"ONNX model from file: {model}{'!' if major >= 10 else ''}")
                return False
            state.parsed.append(str(model))
            if not self._network._explicit:  # importModel's first assertion (8.x): node -1, before any node
                desc = IMPLICIT_BATCH_ERROR.get(minor, IMPLICIT_BATCH_ERROR[6])
                self._errors.append(ParserError._new(ErrorCode.INVALID_VALUE, desc))
                return False
            unknown = [(i, node) for i, node in enumerate(proto.graph.node) if not onnx.defs.has(node.op_type)]
            if major < 10:
                # 8.x parses node by node and stops at the first failure: an op with no importer goes to the plugin
                # fallback, whose ASSERT fails (onnx-tensorrt 8.6-GA builtin_op_importers.cpp
                # DEFINE_BUILTIN_OP_IMPORTER(FallbackPluginImporter); Status.hpp ASSERT → "Assertion failed: " #cond).
                for index, node in unknown[:1]:
                    self._errors.append(ParserError._new(ErrorCode.UNSUPPORTED_NODE, PLUGIN_NOT_FOUND_8, index,
                                                         "importFallbackPluginImporter"))
            else:
                # 10.x and 11.x check every node statically before importing it: each op with no importer fails the
                # plugin fallback's checker, one error per node (onnx-tensorrt 10.0-GA onwards: ModelImporter.cpp
                # parseNodeStaticCheck, onnxOpCheckers.cpp DEFINE_OP_CHECKER(FallbackPluginImporter); Status.hpp
                # STATIC_CHECK → ADD_STATIC_ERROR(#condition, ..., node.name(), node.op_type())).
                # UNVERIFIED: 10.3 and later from their own sources (the checker is the same in a 10.8+ copy).
                for index, node in unknown:
                    self._errors.append(ParserError._new(ErrorCode.INVALID_NODE, PLUGIN_NOT_FOUND_10, index,
                                                         "checkFallbackPluginImporter", node.name, node.op_type))
            if self._errors:
                return False

            def tensor(value_info) -> ITensor | None:
                elem = value_info.type.tensor_type.elem_type
                if elem not in ONNX_TYPES:  # the fake's own limit, not TensorRT's
                    self._errors.append(ParserError._new(ErrorCode.UNSUPPORTED_GRAPH, f"{value_info.name}: element "
                                                         f"type {elem} is not modelled by the fake", -1,
                                                         "importInputs"))
                    return None
                shape = tuple(d.dim_value if d.HasField("dim_value") else -1
                              for d in value_info.type.tensor_type.shape.dim)
                return ITensor._new(value_info.name, shape, DataType[ONNX_TYPES[elem]])

            initializers = {i.name for i in proto.graph.initializer}
            inputs = [tensor(v) for v in proto.graph.input if v.name not in initializers]
            outputs = [tensor(v) for v in proto.graph.output]
            if self._errors:
                return False
            self._network._inputs, self._network._outputs = inputs, outputs
            self._network._precision = graph_precision(proto)
            self._network._weights = weight_bytes(proto)
            return True

    # -- builder ---------------------------------------------------------------------------------------------------

    @_no_constructor
    class IOptimizationProfile:
        def __init__(self) -> None:
            self._shapes: dict[str, tuple] = {}

        def set_shape(self, input: str, min, opt, max) -> None:
            self._shapes[input] = (tuple(min), tuple(opt), tuple(max))

        def get_shape(self, input: str):
            return self._shapes[input]

    @_no_constructor
    class ITimingCache:
        def __init__(self, device: str, entries: int) -> None:
            self._device, self._entries = device, entries

        def serialize(self) -> IHostMemory:
            return IHostMemory._new(json.dumps({"timing-cache": True, "device": self._device,
                                               "entries": self._entries}).encode())

    class _ConfigBase:
        def __init__(self) -> None:
            self._pool_limits: dict = {}
            self._flags: set = set()
            self.default_device_type = DeviceType.GPU
            self.DLA_core = -1
            self._profiles: list[IOptimizationProfile] = []
            self._calibration_profile = None
            self._calibrator = None
            self._timing_cache = None
            self._monitor = None

        def set_memory_pool_limit(self, pool, pool_size: int) -> None:
            self._pool_limits[_require_enum(pool, MemoryPoolType, "set_memory_pool_limit")] = int(pool_size)

        def get_memory_pool_limit(self, pool) -> int:
            return self._pool_limits.get(_require_enum(pool, MemoryPoolType, "get_memory_pool_limit"), 1 << 40)

        def set_flag(self, flag) -> None:
            flag = _require_enum(flag, BuilderFlag, "set_flag")
            if flags_deprecated and flag in PRECISION_FLAGS:
                state.deprecated_used.append(f"BuilderFlag.{flag.name}")  # deprecated in 10.12, gone in 11
            self._flags.add(flag)

        def clear_flag(self, flag) -> None:
            self._flags.discard(_require_enum(flag, BuilderFlag, "clear_flag"))

        def get_flag(self, flag) -> bool:
            return _require_enum(flag, BuilderFlag, "get_flag") in self._flags

        def add_optimization_profile(self, profile: IOptimizationProfile) -> int:
            self._profiles.append(profile)
            return len(self._profiles) - 1

        def create_timing_cache(self, serialized_timing_cache):
            data = bytes(memoryview(serialized_timing_cache))
            if not data:
                return ITimingCache._new(state.device, 0)
            try:
                parsed = json.loads(data)
                return ITimingCache._new(str(parsed["device"]), int(parsed["entries"]))
            except (ValueError, KeyError, TypeError):
                return None  # createTimingCache returns nullptr for a buffer it cannot read

        def set_timing_cache(self, cache: ITimingCache, ignore_mismatch: bool) -> bool:
            if cache._device != state.device and not ignore_mismatch:
                return False  # the header's CUDA device properties differ from this device's
            self._timing_cache = cache
            return True

        def get_timing_cache(self):
            return self._timing_cache

    config_members: dict = {}
    if calibrators:
        def set_calibration_profile(self, profile: IOptimizationProfile) -> bool:
            if (major, minor) >= (10, 1):
                warn_deprecated("IBuilderConfig.set_calibration_profile")
            self._calibration_profile = profile
            return True

        def get_calibration_profile(self):
            return self._calibration_profile

        def get_calibrator(self):
            return self._calibrator

        def set_calibrator(self, calibrator) -> None:
            if (major, minor) >= (10, 1):
                warn_deprecated("IBuilderConfig.int8_calibrator")
            if calibrator is not None:
                _base_init_check(calibrator, "IInt8EntropyCalibrator2")
            self._calibrator = calibrator

        config_members.update(set_calibration_profile=set_calibration_profile,
                              get_calibration_profile=get_calibration_profile,
                              int8_calibrator=property(get_calibrator, set_calibrator))
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
    IBuilderConfig = _no_constructor(type("IBuilderConfig", (_ConfigBase,), config_members))

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
            self._logger = logger

        @property
        def num_DLA_cores(self) -> int:
            return state.dla_cores

        def create_network(self, flags: int = 0):
            flags = int(flags)
            known = sum(1 << int(f) for f in NetworkDefinitionCreationFlag)
            if flags & ~known:
                raise ValueError(f"create_network: flags {flags:#x} hold bits the fake does not model")
            if major == 8:
                explicit_bit = 1 << int(NetworkDefinitionCreationFlag.EXPLICIT_BATCH)
                return INetworkDefinition._new(explicit=bool(flags & explicit_bit), strongly_typed=False,
                                               flags=flags)
            if major == 10:
                if flags & (1 << int(NetworkDefinitionCreationFlag.EXPLICIT_BATCH)):
                    state.deprecated_used.append("EXPLICIT_BATCH")  # allowed: deprecated and ignored
                strongly_typed = bool(flags & (1 << int(STRONGLY_TYPED)))
                return INetworkDefinition._new(explicit=True, strongly_typed=strongly_typed, flags=flags)
            return INetworkDefinition._new(explicit=True, strongly_typed=True, flags=flags)  # 11: always typed

        def create_builder_config(self):
            return IBuilderConfig._new()

        def create_optimization_profile(self) -> IOptimizationProfile:
            return IOptimizationProfile._new()

        def _fail(self, message: str) -> None:
            logger_log(self._logger, Severity.ERROR, message)

        def build_serialized_network(self, network, config):
            state.build_calls += 1
            if not network._inputs:
                return self._fail("Network must have at least one input and one output.")
            if network._strongly_typed:
                precision = sorted(config._flags & PRECISION_FLAGS)
                if precision:
                    return self._fail(STRONGLY_TYPED_FLAG_ERROR.format(flag=precision[0].name))
                if config._calibrator is not None:
                    # UNVERIFIED: what the real builder does with an int8 calibrator on a strongly typed network is
                    # not known (the calibrator only acts with the INT8 flag, which it refuses); the fake refuses.
                    return self._fail("a strongly typed network takes no int8 calibrator (the fake refuses it)")
            shapes = {}
            for tensor in network._inputs:
                if all(d >= 0 for d in tensor.shape):
                    shapes[tensor.name] = tensor.shape
                    continue
                chosen = [p._shapes[tensor.name] for p in config._profiles if tensor.name in p._shapes]
                if not chosen:
                    return self._fail("Network has dynamic or shape inputs, but no optimization profile has "
                                      "been defined.")
                low, opt, high = chosen[0]
                if len(opt) != len(tensor.shape) or any(d >= 0 and d != o for d, o in zip(tensor.shape, opt)):
                    return self._fail(f"profile shape {opt} does not fit input {tensor.name} {tensor.shape}")
                shapes[tensor.name] = opt
            device = "GPU"
            if config.default_device_type == DeviceType.DLA:
                if not 0 <= config.DLA_core < state.dla_cores:
                    return self._fail(f"Cannot create DLA engine, {config.DLA_core} not available")
                # UNVERIFIED: a strongly typed network on the DLA is taken for what its graph carries (fp16, int8).
                reduced = network._precision in ("fp16", "int8") if network._strongly_typed else \
                    bool(config._flags & {FP16, INT8})
                if not reduced:
                    return self._fail("DLA supports only FP16 and INT8 precision")
                device = "DLA"
            calibrated = 0
            if INT8 is not None and INT8 in config._flags:
                calibrator = config._calibrator
                if calibrator is None:
                    return self._fail("Calibration failure occurred with no scaling factors detected.")
                dynamic = any(any(d < 0 for d in t.shape) for t in network._inputs)
                if dynamic and config._calibration_profile is None:
                    return self._fail("Calibration profile must be set for a network with dynamic shapes.")
                table = callback(calibrator, "read_calibration_cache")
                if not table:
                    batch_size = callback(calibrator, "get_batch_size", default=-1)
                    names = [t.name for t in network._inputs]
                    while True:
                        pointers = callback(calibrator, "get_batch", names)
                        if not pointers:
                            break
                        if len(pointers) != len(names) or not all(isinstance(p, int) for p in pointers):
                            return self._fail("get_batch must return one device pointer (int) per input")
                        calibrated += 1
                    if calibrated == 0:
                        return self._fail("Calibration failure occurred with no scaling factors detected.")
                    callback(calibrator, "write_calibration_cache",
                             memoryview(f"fake calibration table, {calibrated} batches of {batch_size}".encode()))
                state.calibration_batches += calibrated
            monitor = config._monitor if major >= 10 else None
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
                            return self._fail("Build was cancelled by the progress monitor.")
                    callback(monitor, "phase_finish", phase)
            if config.get_timing_cache() is not None:
                config.get_timing_cache()._entries += 1
            batch = next(iter(shapes.values()))[0]
            outputs = [{"name": t.name, "shape": [batch if d < 0 else d for d in t.shape], "batch_dim": t.shape[0] < 0,
                        "dtype": t.dtype.name} for t in network._outputs]
            inputs = [{"name": t.name, "shape": list(shapes[t.name]), "batch_dim": t.shape[0] < 0,
                       "dtype": t.dtype.name} for t in network._inputs]
            # The engine's weights: the graph's initializers, float32 ones at the precision the builder flags ask
            # for (a strongly typed network keeps the file's types). The plan carries them after its header.
            shrink = 4 if INT8 is not None and INT8 in config._flags else \
                2 if FP16 is not None and FP16 in config._flags else 1
            weights = network._weights["float32"] // shrink + network._weights["other"]
            state.builds += 1
            state.last_build = {
                "explicit_batch": network._explicit, "strongly_typed": network._strongly_typed,
                "network_flags": network._flags, "network_precision": network._precision,
                "flags": sorted(f.name for f in config._flags),
                "workspace": config._pool_limits.get(MemoryPoolType.WORKSPACE), "device": device,
                "dla_core": config.DLA_core if device == "DLA" else None, "inputs": inputs, "outputs": outputs,
                "profiles": [p._shapes for p in config._profiles], "calibration_batches": calibrated,
                "calibrator": config._calibrator is not None,
                "timing_cache": config.get_timing_cache() is not None, "progress_monitor": monitor is not None,
                "weights_bytes": weights,
            }
            plan = {"magic": PLAN_MAGIC, "version": version, **state.last_build}
            return IHostMemory._new(json.dumps(plan).encode() + b"\n" + bytes(weights))

    builder_members: dict = {}
    if major < 11:
        builder_members.update(platform_has_fast_fp16=property(lambda self: state.fast_fp16),
                               platform_has_fast_int8=property(lambda self: state.fast_int8))
    if major < 10:
        builder_members.update(build_engine=deprecated("Builder.build_engine"),
                               max_batch_size=property(deprecated("Builder.max_batch_size")))
    Builder = type("Builder", (_BuilderBase,), builder_members)

    # -- runtime, engine, execution context ------------------------------------------------------------------------

    def reserve_device_memory(owner, nbytes: int) -> None:
        """TensorRT's own device memory (an engine's weights and kernels, a context's activations) taken from the fake
        pycuda's device, so that ``mem_get_info`` sees it, and given back when ``owner`` goes, as TensorRT's
        destructors do. Under the real pycuda (a GPU machine) the fake allocates nothing."""
        try:
            import pycuda.driver as cuda
        except ImportError:
            return
        fake = getattr(cuda, "_fake", None)
        if fake is not None and nbytes > 0:
            weakref.finalize(owner, fake.release, fake.reserve(nbytes))

    class Runtime:
        def __init__(self, logger) -> None:
            _base_init_check(logger, "ILogger")
            self._logger = logger
            self.DLA_core = -1

        @property
        def num_DLA_cores(self) -> int:
            return state.dla_cores

        def deserialize_cuda_engine(self, serialized_engine):
            try:
                data = bytes(memoryview(serialized_engine))
                header, _, weights = data.partition(b"\n")
                plan = json.loads(header)
                assert plan["magic"] == PLAN_MAGIC and len(weights) == plan["weights_bytes"]
            except (ValueError, KeyError, TypeError, AssertionError):
                logger_log(self._logger, Severity.ERROR, "1: [stdArchiveReader.cpp::StdArchiveReader::32] Error Code "
                           "1: Serialization (Serialization assertion magicTagRead == kMAGIC_TAG failed.Magic tag "
                           "does not match)")
                return None
            if plan["version"] != version:
                logger_log(self._logger, Severity.ERROR, "1: [stdArchiveReader.cpp::StdArchiveReader::40] Error Code "
                           "1: Serialization (Serialization assertion stdVersionRead == serializationVersion "
                           f"failed.Version tag does not match. Note: Current Version: {version}, Serialized "
                           f"Engine Version: {plan['version']})")
                return None
            if plan["device"] == "DLA" and self.DLA_core != plan["dla_core"]:
                logger_log(self._logger, Severity.ERROR, f"engine built for DLA core {plan['dla_core']}, runtime set "
                           f"to {self.DLA_core}")
                return None
            state.deserializations += 1
            engine = ICudaEngine._new(plan, self._logger)
            reserve_device_memory(engine, len(data))  # the deserialized engine holds its weights and kernels
            return engine

    class _EngineBase:
        def __init__(self, plan: dict, logger) -> None:
            self._plan = plan
            self._logger = logger
            self._tensors = [(t, TensorIOMode.INPUT) for t in plan["inputs"]] + \
                            [(t, TensorIOMode.OUTPUT) for t in plan["outputs"]]

        def _tensor(self, name: str) -> tuple[dict, TensorIOMode]:
            for tensor, mode in self._tensors:
                if tensor["name"] == name:
                    return tensor, mode
            raise KeyError(name)

        @property
        def num_io_tensors(self) -> int:
            return len(self._tensors)

        def get_tensor_name(self, index: int) -> str:
            return self._tensors[index][0]["name"]

        def get_tensor_mode(self, name: str) -> TensorIOMode:
            return self._tensor(name)[1]

        def get_tensor_dtype(self, name: str):
            return DataType[self._tensor(name)[0]["dtype"]]

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
            return self._plan["inputs"][0]["shape"][0] * state.device_memory_bytes_per_image

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
            context = IExecutionContext._new(self)
            reserve_device_memory(context, need)  # the context's own device memory (activations, scratch)
            return context

    def device_memory_size(self) -> int:
        if (major, minor) >= (10, 1):
            state.deprecated_used.append("device_memory_size")  # deprecated in 10.1: still works until 11
        return self._memory()

    engine_members: dict = {}
    if major < 11:
        engine_members["device_memory_size"] = property(device_memory_size)
    if (major, minor) >= (10, 1):
        engine_members["device_memory_size_v2"] = property(lambda self: self._memory())
    if major < 10:
        for name in ("num_bindings", "max_batch_size"):
            engine_members[name] = property(deprecated(f"ICudaEngine.{name}"))
        for name in ("get_binding_shape", "get_binding_name", "get_binding_index", "binding_is_input",
                     "get_binding_dtype"):
            engine_members[name] = deprecated(f"ICudaEngine.{name}")
    ICudaEngine = _no_constructor(type("ICudaEngine", (_EngineBase,), engine_members))

    def nbytes(tensor: dict) -> int:
        return int(np.prod(tensor["shape"])) * np.dtype(nptype(DataType[tensor["dtype"]])).itemsize

    class _ContextBase:
        def __init__(self, engine) -> None:
            self._engine = engine
            self._input_shapes: dict[str, tuple] = {}
            self._addresses: dict[str, int] = {}

        @property
        def engine(self):
            return self._engine

        def set_input_shape(self, name: str, shape) -> bool:
            tensor, mode = self._engine._tensor(name)
            if mode != TensorIOMode.INPUT or tuple(shape) != tuple(tensor["shape"]):
                return False  # outside the (fixed) profile
            self._input_shapes[name] = tuple(shape)
            return True

        def get_tensor_shape(self, name: str) -> tuple[int, ...]:
            tensor, mode = self._engine._tensor(name)
            if mode == TensorIOMode.INPUT:
                return self._input_shapes.get(name, self._engine.get_tensor_shape(name))
            if tensor["batch_dim"] and not self._input_shapes:
                return self._engine.get_tensor_shape(name)
            return tuple(tensor["shape"])

        def set_tensor_address(self, name: str, memory: int) -> bool:
            self._engine._tensor(name)
            if not isinstance(memory, int):
                raise TypeError("set_tensor_address(): incompatible function arguments: memory must be an int")
            self._addresses[name] = memory
            return True

        def execute_async_v3(self, stream_handle: int) -> bool:
            import pycuda.driver as cuda  # whichever is installed: the fake, or the real one on a GPU machine

            names = [t["name"] for t, _ in self._engine._tensors]
            inputs = [t for t, mode in self._engine._tensors if mode == TensorIOMode.INPUT]
            outputs = [t for t, mode in self._engine._tensors if mode == TensorIOMode.OUTPUT]
            if set(self._input_shapes) != {t["name"] for t in inputs} or set(self._addresses) != set(names):
                raise RuntimeError("execute_async_v3: every input shape and every tensor address must be set")
            if not isinstance(stream_handle, int) or stream_handle == 0:
                raise AssertionError("execute_async_v3 on the default stream adds device syncs: use a Stream")
            state.executions += 1
            # "Inference": the input's bytes become the start of each output, on the device.
            for out in outputs:
                size = min(nbytes(inputs[0]), nbytes(out))
                # The default (legacy) stream is ordered with the runner's blocking stream, so this copy runs
                # between the runner's input copy and its output copy, as inference would.
                cuda.memcpy_dtod_async(self._addresses[out["name"]], self._addresses[inputs[0]["name"]], size)
            return True

    context_members: dict = {"execute_v2": lambda self, bindings: True}
    if major < 10:
        for name in ("execute_async_v2", "execute_async", "set_binding_shape", "get_binding_shape"):
            context_members[name] = deprecated(f"IExecutionContext.{name}")
    IExecutionContext = _no_constructor(type("IExecutionContext", (_ContextBase,), context_members))

    # -- callbacks implemented by the application ------------------------------------------------------------------

    members = dict(
        ILogger=ILogger, Logger=Logger, NetworkDefinitionCreationFlag=NetworkDefinitionCreationFlag,
        MemoryPoolType=MemoryPoolType, BuilderFlag=BuilderFlag, DeviceType=DeviceType, TensorIOMode=TensorIOMode,
        DataType=DataType, float32=DataType.FLOAT, float16=DataType.HALF, int8=DataType.INT8,
        int32=DataType.INT32, nptype=nptype, volume=volume, IHostMemory=IHostMemory, ITensor=ITensor,
        INetworkDefinition=INetworkDefinition, OnnxParser=OnnxParser, ParserError=ParserError, ErrorCode=ErrorCode,
        IOptimizationProfile=IOptimizationProfile, ITimingCache=ITimingCache, IBuilderConfig=IBuilderConfig,
        Builder=Builder, Runtime=Runtime, ICudaEngine=ICudaEngine, IExecutionContext=IExecutionContext,
    )
    if calibrators:
        @_trampoline
        class IInt8Calibrator:
            def __init__(self) -> None:
                self._trt_base_init = True

        class IInt8EntropyCalibrator2(IInt8Calibrator):
            pass

        members.update(IInt8Calibrator=IInt8Calibrator, IInt8EntropyCalibrator2=IInt8EntropyCalibrator2)
    if major >= 10:
        @_trampoline
        class IProgressMonitor:
            def __init__(self) -> None:
                self._trt_base_init = True

        members["IProgressMonitor"] = IProgressMonitor
    for name, value in members.items():
        setattr(trt, name, value)
    return trt
