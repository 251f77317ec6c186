"""The modern networks (ResNet-34..152, MobileNetV3-Large, EfficientNet-B0) build torchvision-faithful,
runnable, deterministic ONNX graphs."""

from collections import Counter

import onnx
import pytest

from dnnprof.agent.models import modern, zoo

# -- expected folded BatchNorm channels, from torchvision's layer lists (restated here on purpose) --


def _resnet_bn(layers, bottleneck):
    """Stem BN (64) + each block's BNs + one downsample BN per stage that changes shape."""
    total, inplanes = 64, 64
    for planes, stride, blocks in zip((64, 128, 256, 512), (1, 2, 2, 2), layers):
        out = planes * 4 if bottleneck else planes
        total += blocks * ((planes + planes + out) if bottleneck else (planes + planes))
        if stride != 1 or inplanes != out:
            total += out
        inplanes = out
    return total


def _make_divisible(v, divisor=8):
    new_v = max(divisor, int(v + divisor / 2) // divisor * divisor)
    return new_v + divisor if new_v < 0.9 * v else new_v


# (input, expanded, output) channels per MobileNetV3-Large block
_MNV3_BLOCKS = [
    (16, 16, 16), (16, 64, 24), (24, 72, 24), (24, 72, 40), (40, 120, 40), (40, 120, 40), (40, 240, 80),
    (80, 200, 80), (80, 184, 80), (80, 184, 80), (80, 480, 112), (112, 672, 112), (112, 672, 160),
    (160, 960, 160), (160, 960, 160),
]
_MNV3_SE = [False, False, False, True, True, True, False, False, False, False, True, True, True, True, True]


def _mnv3_bn():
    # stem 16, expand BN (when expanding), depthwise BN, projection BN, last conv 960; SE convs have no BN
    return 16 + sum((e if e != i else 0) + e + o for i, e, o in _MNV3_BLOCKS) + 960


def _efficientnet_b0_blocks():
    """(input, expanded, output) channels of every MBConv in EfficientNet-B0."""
    stages = [(1, 32, 16, 1), (6, 16, 24, 2), (6, 24, 40, 2), (6, 40, 80, 3), (6, 80, 112, 3), (6, 112, 192, 4),
              (6, 192, 320, 1)]
    blocks = []
    for ratio, inp, out, n in stages:
        for i in range(n):
            cin = inp if i == 0 else out
            blocks.append((cin, _make_divisible(cin * ratio), out))
    return blocks


def _efficientnet_b0_bn():
    return 32 + sum((e if e != i else 0) + e + o for i, e, o in _efficientnet_b0_blocks()) + 1280


# torchvision parameter counts, and the BN scale elements lost by folding BN into the convs
REFERENCE_PARAMS = {
    "resnet34": (21_797_672, _resnet_bn((3, 4, 6, 3), False)),
    "resnet50": (25_557_032, _resnet_bn((3, 4, 6, 3), True)),
    "resnet101": (44_549_160, _resnet_bn((3, 4, 23, 3), True)),
    "resnet152": (60_192_808, _resnet_bn((3, 8, 36, 3), True)),
    "mobilenet_v3_large": (5_483_032, _mnv3_bn()),
    "efficientnet_b0": (5_288_548, _efficientnet_b0_bn()),
}

# (Conv, Gemm) node counts of the torchvision networks (SE's 1x1 convs included)
REFERENCE_OPS = {
    "resnet34": (1 + 2 * 16 + 3, 1),
    "resnet50": (1 + 3 * 16 + 4, 1),
    "resnet101": (1 + 3 * 33 + 4, 1),
    "resnet152": (1 + 3 * 50 + 4, 1),
    "mobilenet_v3_large": (1 + 14 + 15 + 15 + 2 * sum(_MNV3_SE) + 1, 2),
    "efficientnet_b0": (1 + 15 + 16 + 16 + 2 * 16 + 1, 1),
}

NAMES = sorted(REFERENCE_PARAMS)


@pytest.fixture(scope="module")
def models() -> dict[str, onnx.ModelProto]:
    return {name: modern.MODERN[name]() for name in NAMES}


def test_registry_matches_references():
    assert set(modern.MODERN) == set(REFERENCE_PARAMS)


def test_folded_bn_counts_by_hand():
    # spot checks of the layer-list arithmetic above
    assert REFERENCE_PARAMS["resnet34"][1] == 8_512
    assert REFERENCE_PARAMS["resnet50"][1] == 26_560
    assert _make_divisible(72 // 4) == 24 and _make_divisible(120 // 4) == 32


@pytest.mark.parametrize("name", NAMES)
def test_builds_and_passes_checker(models, name, assert_valid_graph):
    assert_valid_graph(models[name])


@pytest.mark.parametrize("name", NAMES)
def test_parameter_count_matches_torchvision(models, name):
    reference, folded_bn = REFERENCE_PARAMS[name]
    count = zoo.count_params(models[name])
    assert abs(count - reference) <= 0.01 * reference
    assert count == reference - folded_bn


@pytest.mark.parametrize("name", NAMES)
def test_op_counts_match_torchvision(models, name):
    ops = Counter(node.op_type for node in models[name].graph.node)
    assert (ops["Conv"], ops["Gemm"]) == REFERENCE_OPS[name]
    assert "BatchNormalization" not in ops and "Dropout" not in ops


def test_squeeze_excitation_activations(models):
    mnv3 = Counter(node.op_type for node in models["mobilenet_v3_large"].graph.node)
    # 8 SE blocks scale by Hardsigmoid; every Hardswish (stem, 9 HS blocks x 2 or 1 + last conv + classifier)
    # is x * HardSigmoid(x) at opset 13
    assert mnv3["HardSigmoid"] == sum(_MNV3_SE) + (1 + 2 * 9 + 1 + 1)
    assert mnv3["Mul"] == mnv3["HardSigmoid"]
    effnet = Counter(node.op_type for node in models["efficientnet_b0"].graph.node)
    # SiLU after stem, head, expand (15), depthwise (16) and in SE (16); plus 16 SE Sigmoid scales
    assert effnet["Sigmoid"] == 2 + 15 + 16 + 16 + 16
    assert effnet["Mul"] == effnet["Sigmoid"]
    assert effnet["GlobalAveragePool"] == 17


@pytest.mark.parametrize("name", NAMES)
def test_runs_on_onnxruntime(models, name, assert_runs):
    assert_runs(models[name].SerializeToString())


def test_same_seed_is_byte_identical():
    build = modern.mobilenet_v3_large
    assert build(seed=7).SerializeToString() == build(seed=7).SerializeToString()
    assert build(seed=1).SerializeToString() != build(seed=2).SerializeToString()
