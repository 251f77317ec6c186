"""The reference-accuracy catalog: lookups, sources, plausible numbers, and coverage of the demo networks."""

import pytest

from dnnprof.agent.models import zoo
from dnnprof.shared import catalog


@pytest.mark.parametrize(
    ("query", "name"),
    [
        ("resnet18", "resnet18"),
        ("ResNet18", "resnet18"),
        ("RESNET50", "resnet50"),
        ("mobilenet-v2", "mobilenet_v2"),
        ("MobileNet-V2", "mobilenet_v2"),
        ("mobilenet_v3-large", "mobilenet_v3_large"),
        ("squeezenet1-1", "squeezenet1_1"),
        ("  shufflenet_v2_x0_5 ", "shufflenet_v2_x0_5"),
        ("Inception-V3", "inception_v3"),
        ("bn-alexnet", "bn_alexnet"),
    ],
)
def test_lookup_normalises_case_and_dashes(query, name):
    entry = catalog.lookup(query)
    assert entry is not None and entry.name == name


@pytest.mark.parametrize("query", ["", "resnet", "resnet-18x", "yolov8n", "vit_b_16", "resnet 18", "alex net"])
def test_unknown_network_is_none(query):
    assert catalog.lookup(query) is None


def test_normalize():
    assert catalog.normalize(" MobileNet-V2 ") == "mobilenet_v2"


def test_names_are_unique_and_already_normal():
    names = [n.name for n in catalog.NETWORKS]
    assert len(names) == len(set(names))
    assert all(catalog.normalize(n) == n for n in names)


@pytest.mark.parametrize("entry", catalog.NETWORKS, ids=lambda n: n.name)
def test_every_entry_has_a_source_and_plausible_numbers(entry):
    assert entry.source and entry.source.strip()
    assert 0 < entry.top1 <= 100
    if entry.top5 is not None:
        assert entry.top1 <= entry.top5 <= 100
    if entry.seed_top1 is not None:
        assert 0 < entry.seed_top1 <= 100
        assert abs(entry.seed_top1 - entry.top1) < 5  # the seed paper and torchvision agree roughly
    if entry.gmacs is not None:
        assert 0.01 < entry.gmacs < 50
    if entry.params_m is not None:
        assert 0.5 < entry.params_m < 200
    assert catalog.lookup(entry.name) is entry


def test_figure_read_values_say_they_are_approximate():
    for entry in catalog.NETWORKS:
        if entry.source == catalog.CANZIANI:
            assert "approximate" in entry.source
            assert entry.top5 is None


def test_demo_networks_are_all_in_the_catalog():
    missing = [name for name in zoo.DEMO_SET if catalog.lookup(name) is None]
    assert not missing


def test_every_buildable_network_is_in_the_catalog():
    assert all(catalog.lookup(name) is not None for name in zoo.names())


def test_entries_are_immutable():
    entry = catalog.lookup("resnet18")
    with pytest.raises(AttributeError):
        entry.top1 = 99.0
