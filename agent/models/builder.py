"""Build ONNX inference graphs layer by layer, with seeded random weights.

BatchNorm is folded into the convolution before it (a conv with a bias), as inference engines do
anyway; a folded network therefore has fewer parameters than its torchvision counterpart, by the
length of each folded BN's scale vector (well under 1% for every network in the zoo).

Weights are Kaiming-normal (std = sqrt(2 / fan_in)) drawn from ``numpy.random.default_rng(seed)``, so
activations keep roughly unit scale through ReLU stacks: finite, and far from the float32 denormal
range where CPU arithmetic slows down and timings would mislead. Timing and energy do not depend on
the values, only on the shapes.

Shapes are tracked per sample (without the batch axis), since the batch is the symbolic dimension "N".
"""

from __future__ import annotations

import math

import numpy as np
import onnx
from onnx import TensorProto, helper, numpy_helper

OPSET = 13
# IR 7 is the newest that older TensorRT and onnxruntime releases load; it covers opset 13.
IR_VERSION = 7
BATCH = "N"
INPUT_NAME = "input"
OUTPUT_NAME = "logits"
BIAS_STD = 0.01
# Prefix of initializers that are not parameters (Clip bounds, Reshape shapes, Split sizes).
CONST_PREFIX = "const."


class GraphBuilder:
    """Accumulates nodes and initializers for one float32 graph with input ``"input"`` of shape (N, *input_shape)."""

    def __init__(self, name: str, seed: int = 0, input_shape: tuple[int, ...] = (3, 224, 224)) -> None:
        self.name = name
        self.rng = np.random.default_rng(seed)
        self.nodes: list[onnx.NodeProto] = []
        self.initializers: list[onnx.TensorProto] = []
        self.input_shape = tuple(input_shape)
        self.shapes: dict[str, tuple[int, ...]] = {INPUT_NAME: self.input_shape}
        self._counters: dict[str, int] = {}
        self._consts: dict[tuple[str, tuple[int, ...], bytes], str] = {}

    # -- bookkeeping ------------------------------------------------------------------------------

    @property
    def input(self) -> str:
        return INPUT_NAME

    def channels(self, x: str) -> int:
        return self.shapes[x][0]

    def _name(self, kind: str) -> str:
        index = self._counters.get(kind, 0)
        self._counters[kind] = index + 1
        return f"{kind}{index}"

    def _node(self, op: str, kind: str, inputs: list[str], shape: tuple[int, ...], **attrs) -> str:
        name = self._name(kind)
        self.nodes.append(helper.make_node(op, inputs, [name], name=name, **attrs))
        self.shapes[name] = tuple(shape)
        return name

    def _param(self, name: str, array: np.ndarray) -> str:
        self.initializers.append(numpy_helper.from_array(array, name))
        return name

    def const(self, values, dtype=np.int64) -> str:
        """A non-parameter initializer (shared between identical uses), named with ``CONST_PREFIX``."""
        array = np.asarray(values, dtype=dtype)
        key = (array.dtype.str, array.shape, array.tobytes())
        if key not in self._consts:
            self._consts[key] = self._param(f"{CONST_PREFIX}{len(self._consts)}", array)
        return self._consts[key]

    def _weight(self, shape: tuple[int, ...], fan_in: int) -> np.ndarray:
        std = np.float32(math.sqrt(2.0 / fan_in))
        return self.rng.standard_normal(shape, dtype=np.float32) * std

    def _bias(self, n: int) -> np.ndarray:
        return self.rng.standard_normal(n, dtype=np.float32) * np.float32(BIAS_STD)

    # -- layers -----------------------------------------------------------------------------------

    @staticmethod
    def _out_size(size: int, kernel: int, stride: int, pad: int, dilation: int = 1, ceil: bool = False) -> int:
        span = size + 2 * pad - dilation * (kernel - 1) - 1
        steps = -(-span // stride) if ceil else span // stride
        # ceil mode may not start a window inside the right padding (same rule as PyTorch and ONNX)
        if ceil and steps * stride >= size + pad:
            steps -= 1
        return steps + 1

    def conv(
        self,
        x: str,
        out_channels: int,
        kernel: int,
        stride: int = 1,
        pad: int = 0,
        groups: int = 1,
        dilation: int = 1,
        bias: bool = True,
    ) -> str:
        """Square 2-D convolution; ``pad`` pixels on every side."""
        c, h, w = self.shapes[x]
        if c % groups or out_channels % groups:
            raise ValueError(f"channels {c}->{out_channels} not divisible by groups={groups}")
        fan_in = (c // groups) * kernel * kernel
        name = self._name("conv")
        inputs = [x, self._param(f"{name}.weight", self._weight((out_channels, c // groups, kernel, kernel), fan_in))]
        if bias:
            inputs.append(self._param(f"{name}.bias", self._bias(out_channels)))
        self.nodes.append(
            helper.make_node(
                "Conv",
                inputs,
                [name],
                name=name,
                kernel_shape=[kernel, kernel],
                strides=[stride, stride],
                pads=[pad, pad, pad, pad],
                dilations=[dilation, dilation],
                group=groups,
            )
        )
        self.shapes[name] = (
            out_channels,
            self._out_size(h, kernel, stride, pad, dilation),
            self._out_size(w, kernel, stride, pad, dilation),
        )
        return name

    def conv_bn(self, x: str, out_channels: int, kernel: int, stride: int = 1, pad: int = 0, groups: int = 1,
                dilation: int = 1) -> str:
        """Conv (bias-free in the reference) + BatchNorm, folded into one conv with a bias."""
        return self.conv(x, out_channels, kernel, stride, pad, groups, dilation, bias=True)

    def relu(self, x: str) -> str:
        return self._node("Relu", "relu", [x], self.shapes[x])

    def relu6(self, x: str) -> str:
        lo, hi = self.const(0.0, np.float32), self.const(6.0, np.float32)
        return self._node("Clip", "relu6_", [x, lo, hi], self.shapes[x])

    def hardsigmoid(self, x: str) -> str:
        """PyTorch's hardsigmoid, relu6(x + 3) / 6 (ONNX's default alpha is 0.2, not 1/6)."""
        return self._node("HardSigmoid", "hardsigmoid", [x], self.shapes[x], alpha=1.0 / 6.0, beta=0.5)

    def hardswish(self, x: str) -> str:
        # HardSwish is opset 14; at opset 13 it is x * hardsigmoid(x)
        return self.mul(x, self.hardsigmoid(x))

    def maxpool(self, x: str, kernel: int, stride: int, pad: int = 0, ceil: bool = False) -> str:
        return self._pool("MaxPool", "maxpool", x, kernel, stride, pad, ceil)

    def avgpool(self, x: str, kernel: int, stride: int, pad: int = 0, ceil: bool = False,
                count_include_pad: bool = True) -> str:
        """Average pool; ``count_include_pad`` defaults to PyTorch's choice (ONNX's default is the opposite)."""
        return self._pool("AveragePool", "avgpool", x, kernel, stride, pad, ceil,
                          count_include_pad=int(count_include_pad))

    def _pool(self, op: str, kind: str, x: str, kernel: int, stride: int, pad: int, ceil: bool, **extra) -> str:
        c, h, w = self.shapes[x]
        shape = (c, self._out_size(h, kernel, stride, pad, ceil=ceil),
                 self._out_size(w, kernel, stride, pad, ceil=ceil))
        return self._node(
            op, kind, [x], shape,
            kernel_shape=[kernel, kernel], strides=[stride, stride], pads=[pad] * 4, ceil_mode=int(ceil), **extra,
        )

    def global_avgpool(self, x: str) -> str:
        """Mean over H and W, keeping them as size 1: (C, H, W) -> (C, 1, 1)."""
        return self._node("GlobalAveragePool", "gap", [x], (self.shapes[x][0], 1, 1))

    def concat(self, xs: list[str]) -> str:
        """Concatenate along channels."""
        first = self.shapes[xs[0]]
        shape = (sum(self.shapes[x][0] for x in xs), *first[1:])
        return self._node("Concat", "concat", list(xs), shape, axis=1)

    def add(self, a: str, b: str) -> str:
        if self.shapes[a] != self.shapes[b]:
            raise ValueError(f"add: shapes differ, {self.shapes[a]} vs {self.shapes[b]}")
        return self._node("Add", "add", [a, b], self.shapes[a])

    def mul(self, a: str, b: str) -> str:
        return self._node("Mul", "mul", [a, b], self.shapes[a])

    def flatten(self, x: str) -> str:
        return self._node("Flatten", "flatten", [x], (math.prod(self.shapes[x]),), axis=1)

    def gemm(self, x: str, out_features: int) -> str:
        """Fully connected layer, weight stored (out, in) as in torch.nn.Linear."""
        (in_features,) = self.shapes[x]
        name = self._name("fc")
        weight = self._param(f"{name}.weight", self._weight((out_features, in_features), in_features))
        bias = self._param(f"{name}.bias", self._bias(out_features))
        self.nodes.append(helper.make_node("Gemm", [x, weight, bias], [name], name=name, transB=1))
        self.shapes[name] = (out_features,)
        return name

    def reshape(self, x: str, shape: tuple[int, ...]) -> str:
        """Reshape each sample to ``shape`` (one entry may be -1); the batch axis is kept."""
        size = math.prod(self.shapes[x])
        dims = list(shape)
        if -1 in dims:
            dims[dims.index(-1)] = size // -math.prod(dims)
        if math.prod(dims) != size:
            raise ValueError(f"reshape: {self.shapes[x]} does not fit {shape}")
        # leading 0 copies the symbolic batch dimension from the input
        return self._node("Reshape", "reshape", [x, self.const([0, *shape])], tuple(dims))

    def transpose(self, x: str, perm: tuple[int, ...]) -> str:
        """Transpose with a full ONNX ``perm`` that must leave the batch axis (0) in place."""
        if perm[0] != 0:
            raise ValueError("transpose must keep the batch axis first")
        old = self.shapes[x]
        return self._node("Transpose", "transpose", [x], tuple(old[p - 1] for p in perm[1:]), perm=list(perm))

    def split(self, x: str, sizes: list[int]) -> list[str]:
        """Split along channels into pieces of ``sizes`` channels."""
        c, *rest = self.shapes[x]
        if sum(sizes) != c:
            raise ValueError(f"split: {sizes} does not sum to {c} channels")
        name = self._name("split")
        outputs = [f"{name}.{i}" for i in range(len(sizes))]
        self.nodes.append(helper.make_node("Split", [x, self.const(sizes)], outputs, name=name, axis=1))
        for out, size in zip(outputs, sizes):
            self.shapes[out] = (size, *rest)
        return outputs

    def slice_channels(self, x: str, start: int, end: int) -> str:
        c, *rest = self.shapes[x]
        inputs = [x, self.const([start]), self.const([end]), self.const([1])]
        return self._node("Slice", "slice", inputs, (min(end, c) - start, *rest))

    # -- output -----------------------------------------------------------------------------------

    def finish(self, x: str) -> onnx.ModelProto:
        """Rename ``x`` to ``"logits"`` and return the model (opset 13, IR 7)."""
        last = self.nodes[-1]
        if list(last.output) != [x]:
            raise ValueError("finish() expects the output of the last node")
        last.output[0] = OUTPUT_NAME
        graph = helper.make_graph(
            self.nodes,
            self.name,
            [helper.make_tensor_value_info(INPUT_NAME, TensorProto.FLOAT, [BATCH, *self.input_shape])],
            [helper.make_tensor_value_info(OUTPUT_NAME, TensorProto.FLOAT, [BATCH, *self.shapes[x]])],
            initializer=self.initializers,
        )
        model = helper.make_model(
            graph,
            opset_imports=[helper.make_opsetid("", OPSET)],
            producer_name="dnnprof.agent.models",
        )
        model.ir_version = IR_VERSION
        return model
