"""Reference ImageNet networks: top-1/top-5 accuracy with its source, published MACs and parameters.

Accuracy is the reference value of the *trained* network; the agent profiles architectures with random weights,
so a result borrows its accuracy from here by network name. Names follow torchvision (``resnet18``,
``mobilenet_v2``); lookups ignore case and treat ``-`` like ``_``.
"""

from __future__ import annotations

import msgspec

TORCHVISION = "torchvision model docs (acc@1/acc@5, IMAGENET1K_V1 weights, single 224 crop)"
TORCHVISION_V3 = "torchvision model docs (acc@1/acc@5, IMAGENET1K_V1 weights, single 299 crop)"
CANZIANI = "Canziani et al. 2016, Fig. 1 (read off the figure; approximate)"


class Network(msgspec.Struct, frozen=True, kw_only=True):
    name: str
    top1: float  # percent
    top5: float | None  # percent
    source: str
    gmacs: float | None  # multiply-accumulates per image, 1e9 (torchvision's "GFLOPS" column)
    params_m: float | None  # parameters, 1e6
    seed_top1: float | None = None  # the seed paper's single-central-crop value, where it studied the network


def _tv(name, top1, top5, gmacs, params_m, seed_top1=None, source=TORCHVISION):
    return Network(name=name, top1=top1, top5=top5, source=source, gmacs=gmacs, params_m=params_m,
                   seed_top1=seed_top1)


NETWORKS: tuple[Network, ...] = (
    # The seed's networks (Canziani, Culurciello & Paszke 2016).
    _tv("alexnet", 56.522, 79.066, 0.71, 61.10, seed_top1=54.5),
    _tv("googlenet", 69.778, 89.530, 1.50, 6.62, seed_top1=68.0),
    _tv("vgg16", 71.592, 90.382, 15.47, 138.36, seed_top1=71.0),
    _tv("vgg19", 72.376, 90.876, 19.63, 143.67),
    _tv("resnet18", 69.758, 89.078, 1.81, 11.69, seed_top1=69.0),
    _tv("resnet34", 73.314, 91.420, 3.66, 21.80),
    _tv("resnet50", 76.130, 92.862, 4.09, 25.56, seed_top1=76.0),
    _tv("resnet101", 77.374, 93.546, 7.80, 44.55, seed_top1=77.0),
    _tv("resnet152", 78.312, 94.046, 11.51, 60.19, seed_top1=77.5),
    _tv("inception_v3", 77.294, 93.450, 5.71, 27.16, seed_top1=78.0, source=TORCHVISION_V3),
    Network(name="bn_alexnet", top1=56.5, top5=None, source=CANZIANI, gmacs=None, params_m=None, seed_top1=56.5),
    Network(name="bn_nin", top1=63.0, top5=None, source=CANZIANI, gmacs=None, params_m=None, seed_top1=63.0),
    Network(name="enet", top1=68.0, top5=None, source=CANZIANI, gmacs=None, params_m=None, seed_top1=68.0),
    Network(name="inception_v4", top1=80.0, top5=None, source=CANZIANI, gmacs=None, params_m=None, seed_top1=80.0),
    # Efficient networks deployed on Jetsons since.
    _tv("squeezenet1_0", 58.092, 80.420, 0.82, 1.25),
    _tv("squeezenet1_1", 58.178, 80.624, 0.35, 1.24),
    _tv("mobilenet_v2", 71.878, 90.286, 0.30, 3.50),
    _tv("mobilenet_v3_large", 74.042, 91.340, 0.22, 5.48),
    _tv("mobilenet_v3_small", 67.668, 87.402, 0.06, 2.54),
    _tv("shufflenet_v2_x0_5", 60.552, 81.746, 0.04, 1.37),
    _tv("shufflenet_v2_x1_0", 69.362, 88.316, 0.14, 2.28),
    _tv("efficientnet_b0", 77.692, 93.532, 0.39, 5.29),
    _tv("mnasnet1_0", 73.456, 91.510, 0.31, 4.38),
    _tv("regnet_y_400mf", 74.046, 91.716, 0.40, 4.34),
    _tv("convnext_tiny", 82.520, 96.146, 4.46, 28.59),
)

_BY_NAME = {n.name: n for n in NETWORKS}


def normalize(name: str) -> str:
    return name.strip().lower().replace("-", "_")


def lookup(name: str) -> Network | None:
    """The catalog entry for ``name``, or None for a network the catalog does not know."""
    return _BY_NAME.get(normalize(name))
