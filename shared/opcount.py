"""What an ONNX image classifier costs per image: parameters, multiply-accumulates, activation memory.

Works on any ONNX classifier with one float NCHW input, not only the zoo's.

Conventions (the torchvision / fvcore / thop one, which torchvision's "GFLOPS" column reports):

* ``macs`` counts multiply-accumulates of convolutions and matrix products only, for ONE image:
  Conv: output elements x (input channels / group) x kernel size; ConvTranspose: input elements x
  (output channels / group) x kernel size; Gemm / MatMul: output elements x the reduced dimension. Bias adds,
  BatchNormalization, activations, pooling, elementwise ops, Softmax, Resize and data movement cost 0 MACs.
  With this rule resnet50 gives 4.09 G, resnet18 1.81 G, alexnet 0.71 G, mobilenet_v2 0.30 G,
  squeezenet1_1 0.35 G and shufflenet_v2_x0_5 0.04 G, torchvision's published figures.
* ``flops`` is 2 x ``macs``: a multiply and an add each count. The seed paper's "G-Ops" count multiplies and
  adds separately, so compare them with ``flops``, not with ``macs`` (torchvision's "GFLOPS" are really G-MACs).
* ``params`` counts the elements of constant float tensors (initializers or Constant nodes, also seen through
  Identity/Cast/Transpose/Reshape/Squeeze/Unsqueeze/DequantizeLinear) used as weights: Conv / ConvTranspose
  weight and bias, Gemm and MatMul constant operands, BatchNormalization / Instance- / Layer- / GroupNormalization
  scale and bias (not BN's running mean and variance, as torchvision counts), PRelu slopes, and non-scalar
  constant operands of Add / Sub / Mul / Div / Concat (a decomposed LayerNorm's scale, a ViT's class token and
  position embedding, an input normalisation baked into the graph). Shape and helper constants (Reshape shapes,
  Clip bounds, Split sizes, Resize scales, scalars) are not parameters. A tensor used twice counts once.
* ``by_kind`` splits MACs, params and node counts: "convolution" (Conv, ConvTranspose), "fully_connected"
  (Gemm, MatMul with a constant operand) and "other" (every other node except Constant nodes; its MACs are
  those of MatMul / Gemm between two activations, e.g. attention).
* ``activation_bytes`` is the SUM of the sizes of every float tensor a node produces for one image (the logits
  included, the input image, constants and tensors computed only from constants not), at each tensor's own
  element size; ``peak_activation_bytes`` is the most of those alive at once when nodes run in file order
  (a tensor is freed after its last consumer). Both are estimates: runtimes fuse, alias and reuse buffers.
* ``unsupported`` lists what could not be counted, never guessed: ops without an ONNX schema (custom domains,
  written ``domain::Op``), ops that do multiply-accumulate but are not counted here (Einsum, LSTM/GRU/RNN,
  quantized QLinearConv/ConvInteger/MatMulInteger, control flow, ...), and ``Op (output shape unknown)`` for a
  counted op whose shapes inference could not give (typically downstream of a custom op).

A fixed batch B > 1 is kept (its Reshape shapes may depend on it) and totals are divided by B; a symbolic batch
is bound to 1 before shape inference.

Memory: the file is memory-mapped and only its graph STRUCTURE is parsed. The bytes of every initializer larger
than 4 KiB are skipped (never read into Python or protobuf memory); their name, dims and data type are kept, and
for shape inference they become shape-only graph inputs. Small initializers (Reshape shapes, Split sizes, ...)
keep their data, since shape inference needs their values. Weights stored in Constant nodes (rare) are parsed.
``onnxfile.load`` (which reads the whole file) only runs when the file fails a check, to give its error message.
"""

from __future__ import annotations

import math
import mmap
import os
import re
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import onnx

from dnnprof.shared import onnxfile, schema
from dnnprof.shared.errors import UserError

KINDS = ("convolution", "fully_connected", "other")

CONVENTION = ("torchvision/fvcore: MACs of Conv, ConvTranspose, Gemm and MatMul only; "
              "flops = 2 x macs; BatchNorm, activations, pooling and elementwise ops cost 0")

# element sizes of the float tensor types: FLOAT, FLOAT16, DOUBLE, BFLOAT16, and the FLOAT8 variants
_FLOAT_BYTES = {1: 4, 10: 2, 11: 8, 16: 2, 17: 1, 18: 1, 19: 1, 20: 1}

_CONV = ("Conv", "ConvTranspose")
_MATMUL = ("Gemm", "MatMul")
# inputs of a node that are weights when they are constant
_PARAM_INPUTS = {
    "Conv": (1, 2),
    "ConvTranspose": (1, 2),
    "Gemm": (0, 1, 2),
    "MatMul": (0, 1),
    "BatchNormalization": (1, 2),  # not 3, 4: running mean and variance are buffers, not parameters
    "InstanceNormalization": (1, 2),
    "LayerNormalization": (1, 2),
    "GroupNormalization": (1, 2),
    "PRelu": (1,),
}
# ops whose non-scalar constant operands are parameters (layer scale, class token, position embedding, ...)
_ELEMENTWISE_PARAM_OPS = frozenset({"Add", "Sub", "Mul", "Div", "Concat"})
# ops that carry a constant unchanged (up to layout or type): the weight behind them is still a weight
_PASS_THROUGH = frozenset({"Identity", "Cast", "CastLike", "Transpose", "Reshape", "Flatten", "Squeeze",
                           "Unsqueeze", "DequantizeLinear"})
# ONNX ops that multiply-accumulate but are not counted here: listed as unsupported rather than guessed
_NOT_COUNTED = frozenset({"Einsum", "ConvInteger", "MatMulInteger", "QLinearConv", "QLinearMatMul", "LSTM", "GRU",
                          "RNN", "DeformConv", "Attention", "If", "Loop", "Scan"})

# protobuf field numbers (onnx.proto): ModelProto.graph, GraphProto.initializer, and TensorProto's data fields
_MODEL_GRAPH = 7
_GRAPH_INITIALIZER = 5
_TENSOR_NAME = 8
_TENSOR_DATA = frozenset({4, 5, 6, 7, 9, 10, 11})  # float/int32/string/int64 data, raw_data, double/uint64 data
_KEEP_BYTES = 4096  # initializers up to this size keep their data (shape inference may need the values)


@dataclass(frozen=True)
class Inspection:
    """Cost of one image through an ONNX classifier; see the module docstring for the conventions."""

    path: str
    input_name: str
    input_shape: tuple[int, ...]  # per image, without the batch dimension
    params: int
    macs: int  # multiply-accumulates per image (conv + matrix products)
    flops: int  # 2 x macs; compare the seed paper's "G-Ops" with this
    by_kind: dict[str, dict]  # KINDS -> {"macs": int, "params": int, "layers": int}
    activation_bytes: int  # sum of every float tensor nodes produce, one image
    peak_activation_bytes: int  # most of those alive at once, nodes in file order
    unsupported: list[str]


def to_dict(inspection: Inspection) -> dict:
    """Plain JSON-ready dict (for --json); counts are plain numbers, sizes say their unit in the key."""
    return {
        "path": inspection.path,
        "input_name": inspection.input_name,
        "input_shape": list(inspection.input_shape),
        "params": inspection.params,
        "macs": inspection.macs,
        "flops": inspection.flops,
        "by_kind": {kind: dict(inspection.by_kind[kind]) for kind in KINDS},
        "activation_bytes": inspection.activation_bytes,
        "peak_activation_bytes": inspection.peak_activation_bytes,
        "unsupported": list(inspection.unsupported),
        "convention": CONVENTION,
    }


# -- reading the graph structure without the weights -----------------------------------------------


def _varint(buf, pos: int) -> tuple[int, int]:
    result = shift = 0
    while True:
        byte = buf[pos]
        pos += 1
        result |= (byte & 0x7F) << shift
        if byte < 0x80:
            return result, pos
        shift += 7
        if shift > 63:
            raise ValueError("varint longer than 10 bytes")


def _encode_varint(value: int) -> bytes:
    out = bytearray()
    while True:
        byte = value & 0x7F
        value >>= 7
        if value:
            out.append(byte | 0x80)
        else:
            out.append(byte)
            return bytes(out)


def _fields(buf, start: int, end: int) -> Iterator[tuple[int, int, int, int, int]]:
    """(number, wire type, field start, payload start, field end) of each protobuf field in ``buf[start:end]``."""
    pos = start
    while pos < end:
        field_start = pos
        key, pos = _varint(buf, pos)
        number, wire = key >> 3, key & 7
        payload = pos
        if wire == 0:
            _, pos = _varint(buf, pos)
        elif wire == 1:
            pos += 8
        elif wire == 2:
            length, payload = _varint(buf, pos)
            pos = payload + length
        elif wire == 5:
            pos += 4
        else:
            raise ValueError(f"unexpected protobuf wire type {wire}")
        if number == 0 or pos > end:
            raise ValueError("malformed protobuf field")
        yield number, wire, field_start, payload, pos


def _length_delimited(number: int, payload: bytes) -> bytes:
    return _encode_varint(number << 3 | 2) + _encode_varint(len(payload)) + payload


def _strip_tensor(buf, start: int, end: int) -> tuple[bytes, str]:
    """A TensorProto's bytes without its data fields (dims, type and name kept), and its name."""
    kept = bytearray()
    name = ""
    for number, wire, field_start, payload, field_end in _fields(buf, start, end):
        if number in _TENSOR_DATA:
            continue
        if number == _TENSOR_NAME and wire == 2:
            name = buf[payload:field_end].decode("utf-8", "replace")
        kept += buf[field_start:field_end]
    return bytes(kept), name


def _strip_graph(buf, start: int, end: int, stripped: set[str]) -> bytes:
    out = bytearray()
    for number, wire, field_start, payload, field_end in _fields(buf, start, end):
        if number == _GRAPH_INITIALIZER and wire == 2 and field_end - payload > _KEEP_BYTES:
            tensor, name = _strip_tensor(buf, payload, field_end)
            out += _length_delimited(_GRAPH_INITIALIZER, tensor)
            stripped.add(name)
        else:
            out += buf[field_start:field_end]
    return bytes(out)


def _read_structure(path: Path) -> tuple[onnx.ModelProto, set[str]]:
    """The model without the data of initializers over ``_KEEP_BYTES``, and the names of those initializers."""
    stripped: set[str] = set()
    out = bytearray()
    with path.open("rb") as fh:
        if os.fstat(fh.fileno()).st_size == 0:
            raise ValueError("empty file")
        with mmap.mmap(fh.fileno(), 0, access=mmap.ACCESS_READ) as buf:
            for number, wire, field_start, payload, field_end in _fields(buf, 0, len(buf)):
                if number == _MODEL_GRAPH and wire == 2:
                    out += _length_delimited(_MODEL_GRAPH, _strip_graph(buf, payload, field_end, stripped))
                else:
                    out += buf[field_start:field_end]
    return onnx.ModelProto.FromString(bytes(out)), stripped


def _open(path: Path) -> tuple[onnx.ModelProto, set[str], onnx.ValueInfoProto]:
    """Read and check ``path``; any failure defers to ``onnxfile.load`` for its one-line UserError."""
    if not path.is_file():
        onnxfile.load(path)  # raises: missing file, or not a file
    try:
        model, stripped = _read_structure(path)
    except Exception as exc:  # noqa: BLE001 - malformed protobuf comes as ValueError, IndexError or DecodeError
        onnxfile.load(path)  # raises "is not an ONNX model"
        raise UserError(f"{path}: cannot read the ONNX graph ({exc.__class__.__name__}: {exc})") from None
    graph = model.graph
    initializers = {init.name for init in graph.initializer}
    inputs = [i for i in graph.input if i.name not in initializers]
    ok = bool(graph.node) and len(inputs) == 1
    if ok:
        tensor = inputs[0].type.tensor_type
        dims = [d.dim_value if d.HasField("dim_value") else None for d in tensor.shape.dim]
        ok = (tensor.elem_type == onnx.TensorProto.FLOAT and len(dims) == 4
              and all(d is not None and d > 0 for d in dims[1:]))
    if not ok:
        onnxfile.load(path)  # raises the precise message
        raise UserError(f"{path} is not an image classifier with one float (N, C, H, W) input")
    return model, stripped, inputs[0]


# -- shape inference on the weightless graph -------------------------------------------------------


def _bind_batch(model: onnx.ModelProto, image_input: onnx.ValueInfoProto) -> int:
    """Bind a symbolic batch to 1 (in the graph's input, outputs and value_info); return the batch inferred with."""
    first = image_input.type.tensor_type.shape.dim[0]
    if first.HasField("dim_value") and first.dim_value > 0:
        return first.dim_value
    param = first.dim_param if first.HasField("dim_param") else ""
    first.dim_value = 1
    if param:
        graph = model.graph
        for info in [*graph.output, *graph.value_info]:
            for dim in info.type.tensor_type.shape.dim:
                if dim.HasField("dim_param") and dim.dim_param == param:
                    dim.dim_value = 1
    return 1


def _shape_only(model: onnx.ModelProto, stripped: set[str]) -> None:
    """Turn initializers without their data into graph inputs of the same type and shape (for inference)."""
    graph = model.graph
    external = onnx.TensorProto.EXTERNAL
    moved = [init for init in graph.initializer if init.name in stripped or init.data_location == external]
    if not moved:
        return
    infos = {init.name: onnx.helper.make_tensor_value_info(init.name, init.data_type, list(init.dims))
             for init in moved}
    kept = [onnx.TensorProto.FromString(init.SerializeToString())
            for init in graph.initializer if init.name not in infos]
    del graph.initializer[:]
    graph.initializer.extend(kept)
    for info in graph.input:  # IR < 4 lists initializers among the inputs too
        if info.name in infos:
            info.CopyFrom(infos.pop(info.name))
    graph.input.extend(infos.values())


def _drop_annotations(model: onnx.ModelProto) -> None:
    """Forget the file's shape annotations of tensors that inference computes itself (they may be stale and would
    win over inference); keep them for outputs of ops without a schema (custom ops), which inference cannot do."""
    graph = model.graph
    computed = {name for node in graph.node if _has_schema(node) for name in node.output}
    kept = [onnx.ValueInfoProto.FromString(info.SerializeToString())
            for info in graph.value_info if info.name not in computed]
    del graph.value_info[:]
    graph.value_info.extend(kept)
    for info in graph.output:
        if info.name in computed and info.type.HasField("tensor_type"):
            info.type.tensor_type.ClearField("shape")


def _infer(model: onnx.ModelProto, path: Path) -> onnx.ModelProto:
    try:
        return onnx.shape_inference.infer_shapes(model, check_type=True, strict_mode=True, data_prop=True)
    except Exception as exc:  # noqa: BLE001 - InferenceError, ValidationError, or others from the C++ side
        text = " ".join(str(exc).split())
    where = re.search(r"op_type:\s*([\w.]+),\s*node name:\s*([^)]*)\)", text)
    if where:
        op, node = where.group(1), where.group(2).strip()
        detail = text[where.end():].strip(" :")
        raise UserError(f"{path}: shape inference failed at {op} node {node!r}: {detail}")
    raise UserError(f"{path}: shape inference failed: {text}")


def _shapes(model: onnx.ModelProto) -> dict[str, tuple[int, tuple[int | None, ...] | None]]:
    """Tensor name -> (element type, dims or None when the rank is unknown); unknown dims are None."""
    graph = model.graph
    out: dict[str, tuple[int, tuple[int | None, ...] | None]] = {}
    for info in [*graph.input, *graph.value_info, *graph.output]:
        if not info.type.HasField("tensor_type"):
            continue
        tensor = info.type.tensor_type
        dims = None
        if tensor.HasField("shape"):
            dims = tuple(d.dim_value if d.HasField("dim_value") else None for d in tensor.shape.dim)
        if info.name not in out or out[info.name][1] is None:
            out[info.name] = (tensor.elem_type, dims)
    for init in graph.initializer:
        out[init.name] = (init.data_type, tuple(init.dims))
    return out


def _has_schema(node: onnx.NodeProto) -> bool:
    return node.domain in ("", "ai.onnx") and onnx.defs.has(node.op_type)


def _known(dims) -> bool:
    return dims is not None and all(d is not None for d in dims)


# -- counting ------------------------------------------------------------------------------------------


def _constants(model: onnx.ModelProto) -> dict[str, tuple[int, tuple[int, ...]]]:
    """Constant tensors (initializers and Constant-node outputs) -> (element type, dims)."""
    out = {init.name: (init.data_type, tuple(init.dims)) for init in model.graph.initializer}
    for node in model.graph.node:
        if node.op_type != "Constant" or node.domain not in ("", "ai.onnx") or not node.output:
            continue
        for attr in node.attribute:
            if attr.name == "value":
                out[node.output[0]] = (attr.t.data_type, tuple(attr.t.dims))
            elif attr.name == "sparse_value":
                out[node.output[0]] = (attr.sparse_tensor.values.data_type, tuple(attr.sparse_tensor.dims))
            elif attr.name == "value_float":
                out[node.output[0]] = (onnx.TensorProto.FLOAT, ())
            elif attr.name == "value_floats":
                out[node.output[0]] = (onnx.TensorProto.FLOAT, (len(attr.floats),))
            elif attr.name == "value_int":
                out[node.output[0]] = (onnx.TensorProto.INT64, ())
            elif attr.name == "value_ints":
                out[node.output[0]] = (onnx.TensorProto.INT64, (len(attr.ints),))
            elif attr.name == "value_string":
                out[node.output[0]] = (onnx.TensorProto.STRING, ())
            elif attr.name == "value_strings":
                out[node.output[0]] = (onnx.TensorProto.STRING, (len(attr.strings),))
    return out


def _macs(node: onnx.NodeProto, shapes) -> int | None:
    """Multiply-accumulates of a Conv/ConvTranspose/Gemm/MatMul node for the whole inferred batch; None if shapes
    are unknown."""

    def dims(index: int, outputs: bool = False):
        names = node.output if outputs else node.input
        if index >= len(names) or not names[index]:
            return None
        found = shapes.get(names[index])
        return found[1] if found and _known(found[1]) else None

    op = node.op_type
    if op == "Conv":
        out, weight = dims(0, outputs=True), dims(1)
        if out is None or weight is None:
            return None
        return math.prod(out) * math.prod(weight[1:])
    if op == "ConvTranspose":
        x, weight = dims(0), dims(1)
        if x is None or weight is None:
            return None
        return math.prod(x) * math.prod(weight[1:])
    out, a = dims(0, outputs=True), dims(0)
    if out is None or a is None or not a:
        return None
    if op == "Gemm":
        trans_a = next((attr.i for attr in node.attribute if attr.name == "transA"), 0)
        return math.prod(out) * (a[0] if trans_a else a[-1])
    return math.prod(out) * a[-1]  # MatMul: output elements x the reduced dimension


def _count(model: onnx.ModelProto, shapes, constants, image: str, batch: int):
    graph = model.graph
    by_kind = {kind: {"macs": 0, "params": 0, "layers": 0} for kind in KINDS}
    unsupported: set[str] = set()
    origin = {name: name for name in constants}  # tensor -> the constant it carries
    converted: set[str] = set()  # tensors that passed a Cast / DequantizeLinear on their way from a constant
    counted: set[str] = set()

    def weight(name: str, elementwise: bool = False) -> str | None:
        source = origin.get(name)
        if source is None or source in counted:
            return None
        dtype, dims = constants[source]
        if dtype not in _FLOAT_BYTES and name not in converted:
            return None
        if elementwise and math.prod(dims) <= 1:
            return None  # a scalar: an epsilon, an offset, a scale, not a learned tensor
        return source

    for node in graph.node:
        op, domain = node.op_type, node.domain
        if not _has_schema(node) or op in _NOT_COUNTED:
            unsupported.add(op if domain in ("", "ai.onnx") else f"{domain}::{op}")
            continue
        if op == "Constant":
            continue
        if op in _PASS_THROUGH and node.input and node.input[0] in origin and node.output:
            origin[node.output[0]] = origin[node.input[0]]
            if op in ("Cast", "CastLike", "DequantizeLinear") or node.input[0] in converted:
                converted.add(node.output[0])
        if op in _CONV:
            kind = "convolution"
        elif op in _MATMUL and any(i < len(node.input) and node.input[i] in origin for i in (0, 1)):
            kind = "fully_connected"
        else:
            kind = "other"
        entry = by_kind[kind]
        entry["layers"] += 1
        slots = _PARAM_INPUTS.get(op, range(len(node.input)) if op in _ELEMENTWISE_PARAM_OPS else ())
        for index in slots:
            if index < len(node.input) and node.input[index]:
                source = weight(node.input[index], elementwise=op in _ELEMENTWISE_PARAM_OPS)
                if source is not None:
                    counted.add(source)
                    entry["params"] += math.prod(constants[source][1])
        if op in _CONV or op in _MATMUL:
            macs = _macs(node, shapes)
            if macs is None:
                unsupported.add(f"{op} (output shape unknown)")
            else:
                entry["macs"] += macs

    for entry in by_kind.values():
        entry["macs"] = round(entry["macs"] / batch)
    activation, peak = _activations(graph, shapes, origin, image)
    return by_kind, round(activation / batch), round(peak / batch), sorted(unsupported)


def _activations(graph: onnx.GraphProto, shapes, origin, image: str) -> tuple[int, int]:
    """(sum, peak alive) of the bytes of float tensors nodes produce from the image, whole inferred batch."""

    def size(name: str) -> int:
        found = shapes.get(name)
        if not name or name in origin or found is None or found[0] not in _FLOAT_BYTES or not _known(found[1]):
            return 0
        return math.prod(found[1]) * _FLOAT_BYTES[found[0]]

    nodes = list(graph.node)
    last_use: dict[str, int] = {}
    for index, node in enumerate(nodes):
        for name in node.input:
            last_use[name] = index
    for info in graph.output:
        last_use[info.name] = len(nodes)
    total = live = peak = 0
    alive: dict[str, int] = {}
    for index, node in enumerate(nodes):
        if node.op_type == "Constant":
            continue
        for name in node.output:
            if name and name != image and name not in alive:
                alive[name] = size(name)
                total += alive[name]
                live += alive[name]
        peak = max(peak, live)
        for name in [*node.input, *node.output]:
            if name in alive and last_use.get(name, index) <= index:
                live -= alive.pop(name)
    return total, peak


def cost(found: Inspection) -> schema.ModelCost:
    """What a result carries of an inspection (``schema.ModelCost``): the profile the host predicts from."""
    fc = found.by_kind["fully_connected"]
    return schema.ModelCost(params=found.params, macs=found.macs, fc_macs=fc["macs"], fc_params=fc["params"],
                            complete=not found.unsupported, activation_bytes=found.activation_bytes)


def inspect(path: str | Path) -> Inspection:
    """Count parameters, MACs (one image) and activation memory of the ONNX classifier at ``path``.

    Raises UserError (one line) for a missing file, a file that is not ONNX, a graph without one float NCHW input,
    and a graph whose shape inference fails (naming the op and node).
    """
    path = Path(path)
    model, stripped, image_input = _open(path)
    input_name = image_input.name
    input_shape = tuple(d.dim_value for d in image_input.type.tensor_type.shape.dim[1:])
    constants = _constants(model)
    batch = _bind_batch(model, image_input)
    _shape_only(model, stripped)
    _drop_annotations(model)
    inferred = _infer(model, path)
    shapes = _shapes(inferred)
    for name, (dtype, dims) in constants.items():  # initializers moved to inputs keep their exact dims here
        shapes[name] = (dtype, dims)
    by_kind, activation, peak, unsupported = _count(inferred, shapes, constants, input_name, batch)
    macs = sum(entry["macs"] for entry in by_kind.values())
    return Inspection(
        path=str(path),
        input_name=input_name,
        input_shape=input_shape,
        params=sum(entry["params"] for entry in by_kind.values()),
        macs=macs,
        flops=2 * macs,
        by_kind=by_kind,
        activation_bytes=activation,
        peak_activation_bytes=peak,
        unsupported=unsupported,
    )
