"""The four small networks of the demo set, faithful to torchvision: ResNet-18, MobileNetV2, SqueezeNet 1.1 and
ShuffleNetV2 x0.5 (BatchNorm folded into convolutions, dropout left out; see ``builder``)."""

from __future__ import annotations

import onnx

from dnnprof.agent.models.builder import GraphBuilder

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


