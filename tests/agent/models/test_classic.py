"""The classic networks (AlexNet, VGG, GoogLeNet, Inception v3) build torchvision-faithful, runnable ONNX graphs."""

from collections import Counter

import onnx
import pytest

from dnnprof.agent.models import classic
from dnnprof.agent.models.zoo import count_params

NAMES = ("alexnet", "vgg16", "vgg19", "googlenet", "inception_v3")

# torchvision parameter counts (GoogLeNet and Inception v3 without their auxiliary classifiers; with
# them, Inception v3 has 27,161,264), and the BN scale elements lost by folding BN into the convs.
REFERENCE_PARAMS = {
    "alexnet": 61_100_840,
    "vgg16": 138_357_544,
    "vgg19": 143_667_240,
    "googlenet": 6_624_904,
    "inception_v3": 23_834_568,
}

# GoogLeNet: the stem's three BasicConv2d, then each Inception block's six (all its channel numbers)
_GOOGLENET_BN = 64 + 64 + 192 + sum(
    sum(block)
    for block in (
        (64, 96, 128, 16, 32, 32), (128, 128, 192, 32, 96, 64), (192, 96, 208, 16, 48, 64),
        (160, 112, 224, 24, 64, 64), (128, 128, 256, 24, 64, 64), (112, 144, 288, 32, 64, 64),
        (256, 160, 320, 32, 128, 128), (256, 160, 320, 32, 128, 128), (384, 192, 384, 48, 128, 128),
    )
)
# Inception v3: stem, Mixed_5b-d (InceptionA, pool_features 32/64/64), Mixed_6a (B), Mixed_6b-e (C, c7 =
# 128/160/160/192), Mixed_7a (D), Mixed_7b-c (E); the output channels of every BasicConv2d
_INCEPTION_A_BN = 64 + (48 + 64) + (64 + 96 + 96)
_INCEPTION_C_BN = 192 + 192 + 192 + 192  # plus 6 * c7 below
_INCEPTION_V3_BN = (
    (32 + 32 + 64 + 80 + 192)
    + sum(_INCEPTION_A_BN + pool for pool in (32, 64, 64))
    + (384 + 64 + 96 + 96)
    + sum(_INCEPTION_C_BN + 6 * c7 for c7 in (128, 160, 160, 192))
    + (192 + 320 + 4 * 192)
    + 2 * (320 + (384 + 2 * 384) + (448 + 384 + 2 * 384) + 192)
)
FOLDED_BN = {"alexnet": 0, "vgg16": 0, "vgg19": 0, "googlenet": _GOOGLENET_BN, "inception_v3": _INCEPTION_V3_BN}

# (Conv, Gemm) node counts of the torchvision networks at inference
REFERENCE_OPS = {
    "alexnet": (5, 3),
    "vgg16": (13, 3),
    "vgg19": (16, 3),
    "googlenet": (3 + 9 * 6, 1),
    "inception_v3": (5 + 3 * 7 + 4 + 4 * 10 + 6 + 2 * 9, 1),
}

INPUT_SIZE = {"alexnet": 224, "vgg16": 224, "vgg19": 224, "googlenet": 224, "inception_v3": 299}


@pytest.fixture(scope="module")
def models() -> dict[str, onnx.ModelProto]:
    return {name: classic.CLASSIC[name]() for name in NAMES}


@pytest.fixture(scope="module")
def serialized(models):
    """Model bytes, serialized once per model (VGG is over 500 MB)."""
    cache: dict[str, bytes] = {}

    def get(name: str) -> bytes:
        if name not in cache:
            cache[name] = models[name].SerializeToString()
        return cache[name]

    return get


def test_registry():
    assert tuple(classic.CLASSIC) == NAMES
    assert all(callable(fn) for fn in classic.CLASSIC.values())


def test_bn_counts_derived_from_layer_lists():
    # the differences between torchvision's counts and ours are exactly the folded BN scales
    assert FOLDED_BN["googlenet"] == 7_280
    assert FOLDED_BN["inception_v3"] == 17_216


@pytest.mark.parametrize("name", NAMES)
def test_builds_and_passes_checker(models, serialized, name, assert_valid_graph):
    assert_valid_graph(models[name], size=INPUT_SIZE[name], checked=serialized(name))


@pytest.mark.parametrize("name", NAMES)
def test_parameter_count_matches_torchvision(models, name):
    reference = REFERENCE_PARAMS[name]
    count = count_params(models[name])
    assert abs(count - reference) <= 0.01 * reference
    assert count == reference - FOLDED_BN[name]


@pytest.mark.parametrize("name", NAMES)
def test_op_counts_match_torchvision(models, name):
    ops = Counter(node.op_type for node in models[name].graph.node)
    assert (ops["Conv"], ops["Gemm"]) == REFERENCE_OPS[name]
    assert "BatchNormalization" not in ops and "Dropout" not in ops
    assert ops["Relu"] == ops["Conv"] + (2 if ops["Gemm"] == 3 else 0)  # every conv, and the hidden FCs


def test_inception_v3_factorised_kernels(models):
    kernels = Counter(
        tuple(attr.ints)
        for node in models["inception_v3"].graph.node
        if node.op_type == "Conv"
        for attr in node.attribute
        if attr.name == "kernel_shape"
    )
    # Mixed_6b-e: three 1x7 and three 7x1 each, Mixed_7a: one of each; Mixed_7b-c: two 1x3 and two 3x1 each
    assert kernels[(1, 7)] == kernels[(7, 1)] == 13
    assert kernels[(1, 3)] == kernels[(3, 1)] == 4
    assert kernels[(5, 5)] == 3  # InceptionA's branch5x5


def test_googlenet_has_no_5x5(models):
    kernels = Counter(
        tuple(attr.ints)
        for node in models["googlenet"].graph.node
        if node.op_type == "Conv"
        for attr in node.attribute
        if attr.name == "kernel_shape"
    )
    assert kernels == {(7, 7): 1, (1, 1): 1 + 9 * 4, (3, 3): 1 + 9 * 2}


@pytest.mark.parametrize("name", NAMES)
def test_runs_on_onnxruntime(serialized, name, assert_runs):
    assert_runs(serialized(name), size=INPUT_SIZE[name])


def test_same_seed_is_byte_identical(serialized):
    assert classic.alexnet(seed=0).SerializeToString() == serialized("alexnet")


def test_different_seeds_differ():
    assert classic.googlenet(seed=1).SerializeToString() != classic.googlenet(seed=2).SerializeToString()
