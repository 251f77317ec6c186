"""Classic ImageNet classifiers (AlexNet, VGG-16/19, GoogLeNet, Inception v3) as ONNX graphs.

Same conventions as ``zoo``: seeded random weights, BatchNorm folded into the convolution before it,
dropout left out, output "logits" (N, 1000). Structure follows torchvision's reference
implementations (torchvision/models/alexnet.py, vgg.py, googlenet.py, inception.py) at inference:

* AlexNet and VGG take (N, 3, 224, 224); their ``AdaptiveAvgPool2d`` (to 6x6 and 7x7) is the
  identity at that size, so it is left out of the graph.
* GoogLeNet and Inception v3 are built without their auxiliary classifiers (used only in training)
  and with ``transform_input=False``. GoogLeNet's "5x5" branch is a 3x3 conv, as in torchvision.
* Inception v3 takes (N, 3, 299, 299).
"""

from __future__ import annotations

from collections.abc import Callable

import onnx
from onnx import helper

from dnnprof.agent.models.builder import GraphBuilder

NUM_CLASSES = 1000


def _conv2d(b: GraphBuilder, x: str, out_channels: int, kernel: tuple[int, int], stride: int = 1,
            pad: tuple[int, int] = (0, 0)) -> str:
    """Conv with bias and a possibly non-square ``kernel`` (kh, kw) and padding (ph, pw).

    ``GraphBuilder.conv`` is square only; this mirrors it (same node/parameter naming, same weight
    initialisation and draw order) for Inception v3's 1x7 / 7x1 / 1x3 / 3x1 factorised convs.
    """
    if kernel[0] == kernel[1] and pad[0] == pad[1]:
        return b.conv(x, out_channels, kernel[0], stride=stride, pad=pad[0])
    c, h, w = b.shapes[x]
    (kh, kw), (ph, pw) = kernel, pad
    name = b._name("conv")
    weight = b._param(f"{name}.weight", b._weight((out_channels, c, kh, kw), c * kh * kw))
    bias = b._param(f"{name}.bias", b._bias(out_channels))
    b.nodes.append(
        helper.make_node(
            "Conv", [x, weight, bias], [name], name=name,
            kernel_shape=[kh, kw], strides=[stride, stride], pads=[ph, pw, ph, pw], dilations=[1, 1], group=1,
        )
    )
    b.shapes[name] = (out_channels, b._out_size(h, kh, stride, ph), b._out_size(w, kw, stride, pw))
    return name


def _basic_conv(b: GraphBuilder, x: str, out_channels: int, kernel: int | tuple[int, int], stride: int = 1,
                pad: int | tuple[int, int] = 0) -> str:
    """torchvision's BasicConv2d: bias-free conv + BatchNorm (folded) + ReLU."""
    kernel = (kernel, kernel) if isinstance(kernel, int) else kernel
    pad = (pad, pad) if isinstance(pad, int) else pad
    # a conv_bn: the bias is the folded BatchNorm's shift
    return b.relu(_conv2d(b, x, out_channels, kernel, stride, pad))


def _classifier(b: GraphBuilder, x: str) -> str:
    """AlexNet's and VGG's head: Linear-ReLU-Linear-ReLU-Linear (the dropouts omitted)."""
    x = b.relu(b.gemm(b.flatten(x), 4096))
    x = b.relu(b.gemm(x, 4096))
    return b.gemm(x, NUM_CLASSES)


# -- AlexNet (torchvision/models/alexnet.py) ---------------------------------------------------------


def alexnet(seed: int = 0) -> onnx.ModelProto:
    b = GraphBuilder("alexnet", seed)
    x = b.relu(b.conv(b.input, 64, 11, stride=4, pad=2))
    x = b.maxpool(x, 3, 2)
    x = b.relu(b.conv(x, 192, 5, pad=2))
    x = b.maxpool(x, 3, 2)
    x = b.relu(b.conv(x, 384, 3, pad=1))
    x = b.relu(b.conv(x, 256, 3, pad=1))
    x = b.relu(b.conv(x, 256, 3, pad=1))
    x = b.maxpool(x, 3, 2)
    assert b.shapes[x] == (256, 6, 6)  # AdaptiveAvgPool2d((6, 6)) is the identity
    return b.finish(_classifier(b, x))


# -- VGG without BatchNorm (torchvision/models/vgg.py, configs "D" and "E") -------------------------

_VGG_CONFIGS = {
    "D": (64, 64, "M", 128, 128, "M", 256, 256, 256, "M", 512, 512, 512, "M", 512, 512, 512, "M"),
    "E": (64, 64, "M", 128, 128, "M", 256, 256, 256, 256, "M", 512, 512, 512, 512, "M", 512, 512, 512, 512, "M"),
}


def _vgg(name: str, config: str, seed: int) -> onnx.ModelProto:
    b = GraphBuilder(name, seed)
    x = b.input
    for v in _VGG_CONFIGS[config]:
        x = b.maxpool(x, 2, 2) if v == "M" else b.relu(b.conv(x, v, 3, pad=1))
    assert b.shapes[x] == (512, 7, 7)  # AdaptiveAvgPool2d((7, 7)) is the identity
    return b.finish(_classifier(b, x))


def vgg16(seed: int = 0) -> onnx.ModelProto:
    return _vgg("vgg16", "D", seed)


def vgg19(seed: int = 0) -> onnx.ModelProto:
    return _vgg("vgg19", "E", seed)


# -- GoogLeNet (torchvision/models/googlenet.py) -----------------------------------------------------

# in_channels is implied; ch1x1, ch3x3red, ch3x3, ch5x5red, ch5x5, pool_proj
_GOOGLENET_BLOCKS = {
    "3a": (64, 96, 128, 16, 32, 32),
    "3b": (128, 128, 192, 32, 96, 64),
    "4a": (192, 96, 208, 16, 48, 64),
    "4b": (160, 112, 224, 24, 64, 64),
    "4c": (128, 128, 256, 24, 64, 64),
    "4d": (112, 144, 288, 32, 64, 64),
    "4e": (256, 160, 320, 32, 128, 128),
    "5a": (256, 160, 320, 32, 128, 128),
    "5b": (384, 192, 384, 48, 128, 128),
}


def _googlenet_inception(b: GraphBuilder, x: str, ch1x1: int, ch3x3red: int, ch3x3: int, ch5x5red: int,
                         ch5x5: int, pool_proj: int) -> str:
    branch1 = _basic_conv(b, x, ch1x1, 1)
    branch2 = _basic_conv(b, _basic_conv(b, x, ch3x3red, 1), ch3x3, 3, pad=1)
    # torchvision uses 3x3 here where the paper has 5x5 (kept for its pretrained weights)
    branch3 = _basic_conv(b, _basic_conv(b, x, ch5x5red, 1), ch5x5, 3, pad=1)
    branch4 = _basic_conv(b, b.maxpool(x, 3, 1, pad=1, ceil=True), pool_proj, 1)
    return b.concat([branch1, branch2, branch3, branch4])


def googlenet(seed: int = 0) -> onnx.ModelProto:
    b = GraphBuilder("googlenet", seed)
    x = _basic_conv(b, b.input, 64, 7, stride=2, pad=3)
    x = b.maxpool(x, 3, 2, ceil=True)
    x = _basic_conv(b, x, 64, 1)
    x = _basic_conv(b, x, 192, 3, pad=1)
    x = b.maxpool(x, 3, 2, ceil=True)
    for block, channels in _GOOGLENET_BLOCKS.items():
        if block == "4a":
            x = b.maxpool(x, 3, 2, ceil=True)
        elif block == "5a":
            x = b.maxpool(x, 2, 2, ceil=True)
        x = _googlenet_inception(b, x, *channels)
    assert b.shapes[x] == (1024, 7, 7)
    x = b.flatten(b.global_avgpool(x))
    return b.finish(b.gemm(x, NUM_CLASSES))


# -- Inception v3 (torchvision/models/inception.py) --------------------------------------------------


def _inception_a(b: GraphBuilder, x: str, pool_features: int) -> str:
    branch1x1 = _basic_conv(b, x, 64, 1)
    branch5x5 = _basic_conv(b, _basic_conv(b, x, 48, 1), 64, 5, pad=2)
    branch3x3dbl = _basic_conv(b, x, 64, 1)
    branch3x3dbl = _basic_conv(b, branch3x3dbl, 96, 3, pad=1)
    branch3x3dbl = _basic_conv(b, branch3x3dbl, 96, 3, pad=1)
    branch_pool = _basic_conv(b, b.avgpool(x, 3, 1, pad=1), pool_features, 1)
    return b.concat([branch1x1, branch5x5, branch3x3dbl, branch_pool])


def _inception_b(b: GraphBuilder, x: str) -> str:
    branch3x3 = _basic_conv(b, x, 384, 3, stride=2)
    branch3x3dbl = _basic_conv(b, x, 64, 1)
    branch3x3dbl = _basic_conv(b, branch3x3dbl, 96, 3, pad=1)
    branch3x3dbl = _basic_conv(b, branch3x3dbl, 96, 3, stride=2)
    branch_pool = b.maxpool(x, 3, 2)
    return b.concat([branch3x3, branch3x3dbl, branch_pool])


def _inception_c(b: GraphBuilder, x: str, c7: int) -> str:
    branch1x1 = _basic_conv(b, x, 192, 1)
    branch7x7 = _basic_conv(b, x, c7, 1)
    branch7x7 = _basic_conv(b, branch7x7, c7, (1, 7), pad=(0, 3))
    branch7x7 = _basic_conv(b, branch7x7, 192, (7, 1), pad=(3, 0))
    branch7x7dbl = _basic_conv(b, x, c7, 1)
    branch7x7dbl = _basic_conv(b, branch7x7dbl, c7, (7, 1), pad=(3, 0))
    branch7x7dbl = _basic_conv(b, branch7x7dbl, c7, (1, 7), pad=(0, 3))
    branch7x7dbl = _basic_conv(b, branch7x7dbl, c7, (7, 1), pad=(3, 0))
    branch7x7dbl = _basic_conv(b, branch7x7dbl, 192, (1, 7), pad=(0, 3))
    branch_pool = _basic_conv(b, b.avgpool(x, 3, 1, pad=1), 192, 1)
    return b.concat([branch1x1, branch7x7, branch7x7dbl, branch_pool])


def _inception_d(b: GraphBuilder, x: str) -> str:
    branch3x3 = _basic_conv(b, _basic_conv(b, x, 192, 1), 320, 3, stride=2)
    branch7x7x3 = _basic_conv(b, x, 192, 1)
    branch7x7x3 = _basic_conv(b, branch7x7x3, 192, (1, 7), pad=(0, 3))
    branch7x7x3 = _basic_conv(b, branch7x7x3, 192, (7, 1), pad=(3, 0))
    branch7x7x3 = _basic_conv(b, branch7x7x3, 192, 3, stride=2)
    branch_pool = b.maxpool(x, 3, 2)
    return b.concat([branch3x3, branch7x7x3, branch_pool])


def _inception_e(b: GraphBuilder, x: str) -> str:
    branch1x1 = _basic_conv(b, x, 320, 1)
    branch3x3 = _basic_conv(b, x, 384, 1)
    branch3x3 = b.concat([
        _basic_conv(b, branch3x3, 384, (1, 3), pad=(0, 1)),
        _basic_conv(b, branch3x3, 384, (3, 1), pad=(1, 0)),
    ])
    branch3x3dbl = _basic_conv(b, x, 448, 1)
    branch3x3dbl = _basic_conv(b, branch3x3dbl, 384, 3, pad=1)
    branch3x3dbl = b.concat([
        _basic_conv(b, branch3x3dbl, 384, (1, 3), pad=(0, 1)),
        _basic_conv(b, branch3x3dbl, 384, (3, 1), pad=(1, 0)),
    ])
    branch_pool = _basic_conv(b, b.avgpool(x, 3, 1, pad=1), 192, 1)
    return b.concat([branch1x1, branch3x3, branch3x3dbl, branch_pool])


def inception_v3(seed: int = 0) -> onnx.ModelProto:
    b = GraphBuilder("inception_v3", seed, input_shape=(3, 299, 299))
    x = _basic_conv(b, b.input, 32, 3, stride=2)  # Conv2d_1a_3x3
    x = _basic_conv(b, x, 32, 3)  # Conv2d_2a_3x3
    x = _basic_conv(b, x, 64, 3, pad=1)  # Conv2d_2b_3x3
    x = b.maxpool(x, 3, 2)
    x = _basic_conv(b, x, 80, 1)  # Conv2d_3b_1x1
    x = _basic_conv(b, x, 192, 3)  # Conv2d_4a_3x3
    x = b.maxpool(x, 3, 2)
    x = _inception_a(b, x, 32)  # Mixed_5b
    x = _inception_a(b, x, 64)  # Mixed_5c
    x = _inception_a(b, x, 64)  # Mixed_5d
    x = _inception_b(b, x)  # Mixed_6a
    for c7 in (128, 160, 160, 192):  # Mixed_6b .. Mixed_6e
        x = _inception_c(b, x, c7)
    # AuxLogits would branch off here; it runs only in training
    x = _inception_d(b, x)  # Mixed_7a
    x = _inception_e(b, x)  # Mixed_7b
    x = _inception_e(b, x)  # Mixed_7c
    assert b.shapes[x] == (2048, 8, 8)
    x = b.flatten(b.global_avgpool(x))
    return b.finish(b.gemm(x, NUM_CLASSES))


# -- public API -------------------------------------------------------------------------------------

CLASSIC: dict[str, Callable[..., onnx.ModelProto]] = {
    "alexnet": alexnet,
    "vgg16": vgg16,
    "vgg19": vgg19,
    "googlenet": googlenet,
    "inception_v3": inception_v3,
}
