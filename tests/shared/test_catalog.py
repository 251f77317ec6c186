"""The reference-accuracy catalog: lookups, sources, plausible numbers, and coverage of the demo networks."""

import pytest

from dnnprof.agent.models import zoo
from dnnprof.shared import catalog
from dnnprof.shared.errors import UserError


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


@pytest.mark.parametrize("query", ["", "resnet", "resnet-18x", "yolov8n", "vit_b_16", "resnet 19", "alex nets"])
def test_unknown_network_is_none(query):
    assert catalog.lookup(query) is None


def test_normalize():
    assert catalog.normalize(" MobileNet-V2 ") == catalog.normalize("mobilenet_v2") == "mobilenetv2"
    assert catalog.normalize("ResNet-50") == catalog.normalize("resnet 50") == "resnet50"


def test_names_are_unique_even_without_separators():
    names = [n.name for n in catalog.NETWORKS]
    assert len({catalog.normalize(n) for n in names}) == len(names)
    assert all(n == n.lower() and " " not in n for n in names)  # torchvision's spelling


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


# -- The user's file --------------------------------------------------------------------------------------------


def write(tmp_path, name: str, text: str):
    path = tmp_path / name
    path.write_text(text)
    return path


def test_a_toml_file_overrides_accuracy_and_adds_networks(tmp_path):
    path = write(tmp_path, "catalog.toml", """
[[network]]
name = "ResNet-50"
top1 = 75.9
source = "our int8 evaluation"

[[network]]
name = "my-net"
top1 = 70
gmacs = 1.2
""")
    cat = catalog.load_user(path)
    resnet = cat.lookup("resnet50")
    assert resnet.top1 == 75.9 and resnet.source == "our int8 evaluation"
    assert resnet.top5 is None  # a new evaluation's top-1 does not keep the old top-5
    assert resnet.gmacs == 4.09 and resnet.params_m == 25.56  # what the file does not say stays
    mine = cat.lookup("MY_NET")
    assert mine.top1 == 70.0 and mine.gmacs == 1.2 and "catalog.toml" in mine.source
    assert len(cat) == len(catalog.NETWORKS) + 1
    assert catalog.lookup("resnet50").top1 == 76.130  # the built-in catalog is untouched
    assert "catalog.toml" in cat.origin


def test_a_csv_file_with_empty_cells(tmp_path):
    path = write(tmp_path, "catalog.csv", "name,top1,top5,source\nmobilenet_v2,70.1,,fp16 run\nnew_net,61,83.5,\n")
    cat = catalog.load_user(path)
    assert cat.lookup("mobilenet_v2").top1 == 70.1 and cat.lookup("mobilenet_v2").source == "fp16 run"
    assert cat.lookup("new_net").top5 == 83.5 and "catalog.csv" in cat.lookup("new_net").source


@pytest.mark.parametrize("name, text, message", [
    ("c.csv", "name,top1,bogus\nx,50,1\n", "unknown: bogus"),
    ("c.csv", "top1\n50\n", "including name"),
    ("c.csv", "name,top1\nx,500\n", "c.csv:2: top1 = '500' must be in (0, 100]"),
    ("c.csv", "name,top1\nx,fifty\n", "is not a number"),
    ("c.csv", "name,top5\nunknown_net,90\n", "needs a top1"),
    ("c.csv", "name,top1\n,50\n", "needs a name"),
    ("c.toml", "[[network]]\nname = 'x'\ntop1 = 50\ncolour = 'red'\n", "unknown field 'colour'"),
    ("c.toml", "network = 'x'\n", "[[network]] table"),
    ("c.toml", "[[network]\n", "not valid TOML"),
    ("c.json", "{}", ".csv or .toml"),
])
def test_bad_files_say_where_and_what(tmp_path, name, text, message):
    with pytest.raises(UserError) as err:
        catalog.load_user(write(tmp_path, name, text))
    assert message in str(err.value) and "\n" not in str(err.value)


def test_missing_and_binary_files(tmp_path):
    with pytest.raises(UserError, match="cannot read"):
        catalog.load_user(tmp_path / "absent.toml")
    binary = tmp_path / "b.csv"
    binary.write_bytes(b"\xff\xfe\x00garbage")
    with pytest.raises(UserError, match="UTF-8"):
        catalog.load_user(binary)


def test_default_user_path_follows_xdg(monkeypatch, tmp_path):
    monkeypatch.setenv("XDG_CONFIG_HOME", str(tmp_path))
    assert catalog.default_user_path() == tmp_path / "dnnprof" / "catalog.toml"
