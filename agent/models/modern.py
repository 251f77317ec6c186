"""Larger and newer ImageNet classifiers as ONNX graphs with seeded random weights, built offline.

ResNet-34/50/101/152, MobileNetV3-Large and EfficientNet-B0, following torchvision's reference
implementations (torchvision/models/resnet.py, mobilenetv3.py, efficientnet.py) layer for layer.
As in ``zoo``: BatchNorm is folded into the convolution before it, dropout and stochastic depth
(no-ops at inference) are left out; input "input" is (N, 3, 224, 224), output "logits" is (N, 1000),
float32, opset 13 (so SiLU is x * Sigmoid(x) and Hardswish is x * HardSigmoid(x)).
"""

from __future__ import annotations

from collections.abc import Callable

import onnx

from dnnprof.agent.models.builder import GraphBuilder
from dnnprof.agent.models.small import NUM_CLASSES, _basic_block

# -- small ops the builder does not offer ----------------------------------------------------------


def _sigmoid(b: GraphBuilder, x: str) -> str:
    return b._node("Sigmoid", "sigmoid", [x], b.shapes[x])


def _silu(b: GraphBuilder, x: str) -> str:
    """SiLU (swish), x * sigmoid(x); ONNX has no SiLU op at opset 13."""
    return b.mul(x, _sigmoid(b, x))


def _make_divisible(v: float, divisor: int = 8, min_value: int | None = None) -> int:
    """torchvision's ``_make_divisible``: round to a multiple of ``divisor``, never down by more than 10%."""
    if min_value is None:
        min_value = divisor
    new_v = max(min_value, int(v + divisor / 2) // divisor * divisor)
    if new_v < 0.9 * v:
        new_v += divisor
    return new_v


def _squeeze_excitation(
    b: GraphBuilder, x: str, squeeze: int, activation: Callable[[GraphBuilder, str], str],
    scale_activation: Callable[[GraphBuilder, str], str],
) -> str:
    """torchvision.ops.SqueezeExcitation: avgpool, 1x1 conv (bias), act, 1x1 conv (bias), scale act, x * scale."""
    channels = b.channels(x)
    s = b.global_avgpool(x)
    s = activation(b, b.conv(s, squeeze, 1))
    s = scale_activation(b, b.conv(s, channels, 1))
    return b.mul(x, s)


# -- ResNet-34/50/101/152 (torchvision/models/resnet.py) -------------------------------------------


def _bottleneck(b: GraphBuilder, x: str, planes: int, stride: int) -> str:
    """Bottleneck v1.5: the stride sits on the 3x3 conv; expansion 4."""
    out_channels = planes * 4
    out = b.relu(b.conv_bn(x, planes, 1))
    out = b.relu(b.conv_bn(out, planes, 3, stride=stride, pad=1))
    out = b.conv_bn(out, out_channels, 1)
    identity = x
    if stride != 1 or b.channels(x) != out_channels:
        identity = b.conv_bn(x, out_channels, 1, stride=stride)
    return b.relu(b.add(out, identity))


def _resnet(name: str, block: Callable[[GraphBuilder, str, int, int], str], layers: tuple[int, ...],
            seed: int) -> onnx.ModelProto:
    b = GraphBuilder(name, seed)
    x = b.relu(b.conv_bn(b.input, 64, 7, stride=2, pad=3))
    x = b.maxpool(x, 3, 2, pad=1)
    for planes, stride, blocks in zip((64, 128, 256, 512), (1, 2, 2, 2), layers):
        x = block(b, x, planes, stride)
        for _ in range(blocks - 1):
            x = block(b, x, planes, 1)
    x = b.flatten(b.global_avgpool(x))
    return b.finish(b.gemm(x, NUM_CLASSES))


def resnet34(seed: int = 0) -> onnx.ModelProto:
    return _resnet("resnet34", _basic_block, (3, 4, 6, 3), seed)


def resnet50(seed: int = 0) -> onnx.ModelProto:
    return _resnet("resnet50", _bottleneck, (3, 4, 6, 3), seed)


def resnet101(seed: int = 0) -> onnx.ModelProto:
    return _resnet("resnet101", _bottleneck, (3, 4, 23, 3), seed)


def resnet152(seed: int = 0) -> onnx.ModelProto:
    return _resnet("resnet152", _bottleneck, (3, 8, 36, 3), seed)


# -- MobileNetV3-Large, width 1.0 (torchvision/models/mobilenetv3.py) ------------------------------

# input channels, kernel, expanded channels, output channels, squeeze-excitation, hardswish, stride;
# at width 1.0 every channel count is already a multiple of 8 (_make_divisible leaves it unchanged)
# and dilation is 1 throughout.
_MOBILENET_V3_LARGE_SETTING = (
    (16, 3, 16, 16, False, False, 1),
    (16, 3, 64, 24, False, False, 2),
    (24, 3, 72, 24, False, False, 1),
    (24, 5, 72, 40, True, False, 2),
    (40, 5, 120, 40, True, False, 1),
    (40, 5, 120, 40, True, False, 1),
    (40, 3, 240, 80, False, True, 2),
    (80, 3, 200, 80, False, True, 1),
    (80, 3, 184, 80, False, True, 1),
    (80, 3, 184, 80, False, True, 1),
    (80, 3, 480, 112, True, True, 1),
    (112, 3, 672, 112, True, True, 1),
    (112, 5, 672, 160, True, True, 2),
    (160, 5, 960, 160, True, True, 1),
    (160, 5, 960, 160, True, True, 1),
)
_MOBILENET_V3_LARGE_LAST_CHANNEL = 1280


def _relu(b: GraphBuilder, x: str) -> str:
    return b.relu(x)


def _hardswish(b: GraphBuilder, x: str) -> str:
    return b.hardswish(x)


def _hardsigmoid(b: GraphBuilder, x: str) -> str:
    return b.hardsigmoid(x)


def _inverted_residual_v3(b: GraphBuilder, x: str, kernel: int, expanded: int, oup: int, use_se: bool,
                          use_hs: bool, stride: int) -> str:
    inp = b.channels(x)
    act = _hardswish if use_hs else _relu
    out = x
    if expanded != inp:
        out = act(b, b.conv_bn(out, expanded, 1))
    out = act(b, b.conv_bn(out, expanded, kernel, stride=stride, pad=(kernel - 1) // 2, groups=expanded))
    if use_se:
        out = _squeeze_excitation(b, out, _make_divisible(expanded // 4, 8), _relu, _hardsigmoid)
    out = b.conv_bn(out, oup, 1)  # projection: no activation
    if stride == 1 and inp == oup:
        out = b.add(out, x)
    return out


def mobilenet_v3_large(seed: int = 0) -> onnx.ModelProto:
    b = GraphBuilder("mobilenet_v3_large", seed)
    x = b.hardswish(b.conv_bn(b.input, _MOBILENET_V3_LARGE_SETTING[0][0], 3, stride=2, pad=1))
    for inp, kernel, expanded, oup, use_se, use_hs, stride in _MOBILENET_V3_LARGE_SETTING:
        assert b.channels(x) == inp
        x = _inverted_residual_v3(b, x, kernel, expanded, oup, use_se, use_hs, stride)
    x = b.hardswish(b.conv_bn(x, 6 * b.channels(x), 1))  # 160 -> 960
    x = b.flatten(b.global_avgpool(x))
    x = b.hardswish(b.gemm(x, _MOBILENET_V3_LARGE_LAST_CHANNEL))
    return b.finish(b.gemm(x, NUM_CLASSES))


# -- EfficientNet-B0 (torchvision/models/efficientnet.py) ------------------------------------------

# expand ratio, kernel, first stride, input channels, output channels, layers (width = depth = 1.0)
_EFFICIENTNET_B0_SETTING = (
    (1, 3, 1, 32, 16, 1),
    (6, 3, 2, 16, 24, 2),
    (6, 5, 2, 24, 40, 2),
    (6, 3, 2, 40, 80, 3),
    (6, 5, 1, 80, 112, 3),
    (6, 5, 2, 112, 192, 4),
    (6, 3, 1, 192, 320, 1),
)


def _mbconv(b: GraphBuilder, x: str, expand_ratio: int, kernel: int, stride: int, oup: int) -> str:
    inp = b.channels(x)
    expanded = _make_divisible(inp * expand_ratio, 8)
    out = x
    if expanded != inp:
        out = _silu(b, b.conv_bn(out, expanded, 1))
    out = _silu(b, b.conv_bn(out, expanded, kernel, stride=stride, pad=(kernel - 1) // 2, groups=expanded))
    out = _squeeze_excitation(b, out, max(1, inp // 4), _silu, _sigmoid)
    out = b.conv_bn(out, oup, 1)  # projection: no activation
    if stride == 1 and inp == oup:
        out = b.add(out, x)  # stochastic depth is the identity at inference
    return out


def efficientnet_b0(seed: int = 0) -> onnx.ModelProto:
    b = GraphBuilder("efficientnet_b0", seed)
    x = _silu(b, b.conv_bn(b.input, _EFFICIENTNET_B0_SETTING[0][3], 3, stride=2, pad=1))
    for expand_ratio, kernel, stride, inp, oup, layers in _EFFICIENTNET_B0_SETTING:
        assert b.channels(x) == inp
        for i in range(layers):
            x = _mbconv(b, x, expand_ratio, kernel, stride if i == 0 else 1, oup)
    x = _silu(b, b.conv_bn(x, 4 * b.channels(x), 1))  # 320 -> 1280
    x = b.flatten(b.global_avgpool(x))
    return b.finish(b.gemm(x, NUM_CLASSES))


# -- public API -------------------------------------------------------------------------------------

MODERN: dict[str, Callable[..., onnx.ModelProto]] = {
    "resnet34": resnet34,
    "resnet50": resnet50,
    "resnet101": resnet101,
    "resnet152": resnet152,
    "mobilenet_v3_large": mobilenet_v3_large,
    "efficientnet_b0": efficientnet_b0,
}
