"""Real ImageNet classifiers as ONNX graphs with seeded random weights, built offline.

Layer structure and shapes follow torchvision's reference implementations (torchvision/models/*.py),
so op counts and shapes are the real networks'; BatchNorm is folded into convolutions (see
``builder``), and dropout, a no-op at inference, is left out. Input "input" is (N, 3, 224, 224),
output "logits" is (N, 1000), float32.
"""

from __future__ import annotations

import os
from collections.abc import Callable, Iterable
from pathlib import Path

import numpy as np
import onnx

from dnnprof.agent.models.builder import GraphBuilder
from dnnprof.shared.errors import UserError

NUM_CLASSES = 1000


# -- ResNet-18 (torchvision/models/resnet.py) ------------------------------------------------------


def _basic_block(b: GraphBuilder, x: str, planes: int, stride: int) -> str:
    out = b.relu(b.conv_bn(x, planes, 3, stride=stride, pad=1))
    out = b.conv_bn(out, planes, 3, pad=1)
    identity = x
    if stride != 1 or b.channels(x) != planes:
        identity = b.conv_bn(x, planes, 1, stride=stride)
    return b.relu(b.add(out, identity))


def resnet18(seed: int = 0) -> onnx.ModelProto:
    b = GraphBuilder("resnet18", seed)
    x = b.relu(b.conv_bn(b.input, 64, 7, stride=2, pad=3))
    x = b.maxpool(x, 3, 2, pad=1)
    for planes, stride in ((64, 1), (128, 2), (256, 2), (512, 2)):
        x = _basic_block(b, x, planes, stride)
        x = _basic_block(b, x, planes, 1)
    x = b.flatten(b.global_avgpool(x))
    return b.finish(b.gemm(x, NUM_CLASSES))


# -- MobileNetV2, width 1.0 (torchvision/models/mobilenetv2.py) ------------------------------------

# t (expansion), c (output channels), n (repeats), s (first stride); at width 1.0 every channel count
# is already a multiple of 8, so torchvision's _make_divisible leaves them unchanged.
_MOBILENET_V2_SETTING = (
    (1, 16, 1, 1), (6, 24, 2, 2), (6, 32, 3, 2), (6, 64, 4, 2), (6, 96, 3, 1), (6, 160, 3, 2), (6, 320, 1, 1),
)


def _inverted_residual(b: GraphBuilder, x: str, oup: int, stride: int, expand_ratio: int) -> str:
    inp = b.channels(x)
    hidden = round(inp * expand_ratio)
    out = x
    if expand_ratio != 1:
        out = b.relu6(b.conv_bn(out, hidden, 1))
    out = b.relu6(b.conv_bn(out, hidden, 3, stride=stride, pad=1, groups=hidden))
    out = b.conv_bn(out, oup, 1)  # linear bottleneck: no activation
    if stride == 1 and inp == oup:
        out = b.add(x, out)
    return out


def mobilenet_v2(seed: int = 0) -> onnx.ModelProto:
    b = GraphBuilder("mobilenet_v2", seed)
    x = b.relu6(b.conv_bn(b.input, 32, 3, stride=2, pad=1))
    for t, c, n, s in _MOBILENET_V2_SETTING:
        for i in range(n):
            x = _inverted_residual(b, x, c, s if i == 0 else 1, t)
    x = b.relu6(b.conv_bn(x, 1280, 1))
    x = b.flatten(b.global_avgpool(x))
    return b.finish(b.gemm(x, NUM_CLASSES))


# -- SqueezeNet 1.1 (torchvision/models/squeezenet.py) ---------------------------------------------


def _fire(b: GraphBuilder, x: str, squeeze: int, expand1x1: int, expand3x3: int) -> str:
    s = b.relu(b.conv(x, squeeze, 1))
    return b.concat([b.relu(b.conv(s, expand1x1, 1)), b.relu(b.conv(s, expand3x3, 3, pad=1))])


def squeezenet1_1(seed: int = 0) -> onnx.ModelProto:
    b = GraphBuilder("squeezenet1_1", seed)
    x = b.relu(b.conv(b.input, 64, 3, stride=2))
    x = b.maxpool(x, 3, 2, ceil=True)
    x = _fire(b, x, 16, 64, 64)
    x = _fire(b, x, 16, 64, 64)
    x = b.maxpool(x, 3, 2, ceil=True)
    x = _fire(b, x, 32, 128, 128)
    x = _fire(b, x, 32, 128, 128)
    x = b.maxpool(x, 3, 2, ceil=True)
    x = _fire(b, x, 48, 192, 192)
    x = _fire(b, x, 48, 192, 192)
    x = _fire(b, x, 64, 256, 256)
    x = _fire(b, x, 64, 256, 256)
    # the classifier is a 1x1 conv to the classes, then a global average pool; there is no Gemm
    x = b.global_avgpool(b.relu(b.conv(x, NUM_CLASSES, 1)))
    return b.finish(b.flatten(x))


# -- ShuffleNetV2 x0.5 (torchvision/models/shufflenetv2.py) ----------------------------------------

_SHUFFLENET_V2_REPEATS = (4, 8, 4)
_SHUFFLENET_V2_X0_5_CHANNELS = (24, 48, 96, 192, 1024)


def _channel_shuffle(b: GraphBuilder, x: str, groups: int) -> str:
    c, h, w = b.shapes[x]
    x = b.reshape(x, (groups, c // groups, h, w))
    x = b.transpose(x, (0, 2, 1, 3, 4))
    return b.reshape(x, (c, h, w))


def _shuffle_unit(b: GraphBuilder, x: str, oup: int, stride: int) -> str:
    branch_features = oup // 2
    inp = b.channels(x)
    if stride == 1:
        passthrough, x2 = b.split(x, [inp // 2, inp - inp // 2])
    else:
        passthrough = b.conv_bn(x, inp, 3, stride=stride, pad=1, groups=inp)
        passthrough = b.relu(b.conv_bn(passthrough, branch_features, 1))
        x2 = x
    y = b.relu(b.conv_bn(x2, branch_features, 1))
    y = b.conv_bn(y, branch_features, 3, stride=stride, pad=1, groups=branch_features)
    y = b.relu(b.conv_bn(y, branch_features, 1))
    return _channel_shuffle(b, b.concat([passthrough, y]), 2)


def shufflenet_v2_x0_5(seed: int = 0) -> onnx.ModelProto:
    b = GraphBuilder("shufflenet_v2_x0_5", seed)
    channels = _SHUFFLENET_V2_X0_5_CHANNELS
    x = b.relu(b.conv_bn(b.input, channels[0], 3, stride=2, pad=1))
    x = b.maxpool(x, 3, 2, pad=1)
    for repeats, oup in zip(_SHUFFLENET_V2_REPEATS, channels[1:4]):
        x = _shuffle_unit(b, x, oup, 2)
        for _ in range(repeats - 1):
            x = _shuffle_unit(b, x, oup, 1)
    x = b.relu(b.conv_bn(x, channels[4], 1))
    x = b.flatten(b.global_avgpool(x))  # torchvision: x.mean([2, 3])
    return b.finish(b.gemm(x, NUM_CLASSES))


# -- public API -------------------------------------------------------------------------------------

ARCHITECTURES: dict[str, Callable[..., onnx.ModelProto]] = {
    "resnet18": resnet18,
    "mobilenet_v2": mobilenet_v2,
    "squeezenet1_1": squeezenet1_1,
    "shufflenet_v2_x0_5": shufflenet_v2_x0_5,
}

DEMO_SET: tuple[str, ...] = ("shufflenet_v2_x0_5", "squeezenet1_1", "mobilenet_v2", "resnet18")


def names() -> list[str]:
    """Known architecture names, sorted."""
    return sorted(ARCHITECTURES)


def _check_names(requested: Iterable[str]) -> list[str]:
    requested = list(requested)
    for name in requested:
        if name not in ARCHITECTURES:
            raise UserError(f"unknown architecture {name!r}; known: {', '.join(names())}")
    return requested


def build(name: str, seed: int = 0) -> onnx.ModelProto:
    """Build architecture ``name`` with weights drawn from ``seed``; same seed, same bytes."""
    _check_names([name])
    return ARCHITECTURES[name](seed=seed)


def generate(names: Iterable[str], out_dir: Path, seed: int = 0) -> list[Path]:
    """Write ``<name>.onnx`` for each name into ``out_dir`` (created if missing), each checked by onnx.checker."""
    requested = _check_names(names)
    out_dir = Path(out_dir)
    out_dir.mkdir(parents=True, exist_ok=True)
    paths = []
    for name in requested:
        model = build(name, seed)
        onnx.checker.check_model(model)
        path = out_dir / f"{name}.onnx"
        # write then rename, so a reader never sees a half-written model
        tmp = path.with_name(f".{path.name}.tmp")
        tmp.write_bytes(model.SerializeToString())
        os.replace(tmp, path)
        paths.append(path)
    return paths


def count_params(model: onnx.ModelProto) -> int:
    """Elements in the weights and biases of Conv and Gemm nodes (helper constants are not parameters)."""
    sizes = {init.name: int(np.prod(init.dims, dtype=np.int64)) for init in model.graph.initializer}
    params = {
        name
        for node in model.graph.node
        if node.op_type in ("Conv", "Gemm")
        for name in node.input[1:3]
        if name in sizes
    }
    return sum(sizes[name] for name in params)
