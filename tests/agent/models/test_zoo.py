"""The model zoo builds torchvision-faithful, runnable, deterministic ONNX graphs."""

from collections import Counter

import onnx
import pytest

from dnnprof.agent.models import classic, modern, zoo
from dnnprof.shared.errors import UserError

# torchvision parameter counts, and the BN scale elements lost by folding BN into the convs
REFERENCE_PARAMS = {
    "resnet18": (11_689_512, 4_800),
    "mobilenet_v2": (3_504_872, 17_056),
    "squeezenet1_1": (1_235_496, 0),
    "shufflenet_v2_x0_5": (1_366_792, 3_976),
}

# (Conv, Gemm) node counts of the torchvision networks
REFERENCE_OPS = {
    "resnet18": (20, 1),
    "mobilenet_v2": (52, 1),
    "squeezenet1_1": (26, 0),
    "shufflenet_v2_x0_5": (56, 1),
}


@pytest.fixture(scope="module")
def models() -> dict[str, onnx.ModelProto]:
    return {name: zoo.build(name) for name in REFERENCE_PARAMS}  # the small ones; the rest have their own tests


def test_registry_holds_every_family():
    assert set(REFERENCE_PARAMS) | set(classic.CLASSIC) | set(modern.MODERN) == set(zoo.names())
    assert set(zoo.names()) == set(zoo.ARCHITECTURES)
    assert set(zoo.DEMO_SET) == set(REFERENCE_PARAMS)


@pytest.mark.parametrize("name", sorted(REFERENCE_PARAMS))
def test_builds_and_passes_checker(models, name, assert_valid_graph):
    assert_valid_graph(models[name])


@pytest.mark.parametrize("name", sorted(REFERENCE_PARAMS))
def test_parameter_count_matches_torchvision(models, name):
    reference, folded_bn = REFERENCE_PARAMS[name]
    count = zoo.count_params(models[name])
    assert abs(count - reference) <= 0.01 * reference
    assert count == reference - folded_bn


@pytest.mark.parametrize("name", sorted(REFERENCE_OPS))
def test_op_counts_match_torchvision(models, name):
    ops = Counter(node.op_type for node in models[name].graph.node)
    assert (ops["Conv"], ops["Gemm"]) == REFERENCE_OPS[name]
    assert "BatchNormalization" not in ops and "Dropout" not in ops


@pytest.mark.parametrize("name", sorted(REFERENCE_PARAMS))
def test_runs_on_onnxruntime(models, name, assert_runs):
    assert_runs(models[name].SerializeToString(), batch=2)


def test_unknown_name_raises_user_error():
    with pytest.raises(UserError) as info:
        zoo.build("lenet5")
    message = str(info.value)
    assert "lenet5" in message and "\n" not in message
    assert all(name in message for name in zoo.names())


def test_generate_writes_files(tmp_path):
    out_dir = tmp_path / "models" / "nested"
    paths = zoo.generate(["squeezenet1_1", "shufflenet_v2_x0_5"], out_dir, seed=3)
    assert paths == [out_dir / "squeezenet1_1.onnx", out_dir / "shufflenet_v2_x0_5.onnx"]
    assert sorted(p.name for p in out_dir.iterdir()) == ["shufflenet_v2_x0_5.onnx", "squeezenet1_1.onnx"]
    for path in paths:
        onnx.checker.check_model(str(path))
    assert paths[0].read_bytes() == zoo.build("squeezenet1_1", seed=3).SerializeToString()


def test_generate_rejects_unknown_before_writing(tmp_path):
    out_dir = tmp_path / "out"
    with pytest.raises(UserError):
        zoo.generate(["squeezenet1_1", "nope"], out_dir)
    assert not out_dir.exists()


def test_same_seed_is_byte_identical():
    for name in REFERENCE_PARAMS:
        assert zoo.build(name, seed=7).SerializeToString() == zoo.build(name, seed=7).SerializeToString()
    one, two = zoo.build("squeezenet1_1", seed=1), zoo.build("squeezenet1_1", seed=2)
    assert one.SerializeToString() != two.SerializeToString()


@pytest.mark.parametrize("name", zoo.names())
def test_every_network_matches_its_published_size_and_cost(name, tmp_path):
    # The catalog's parameters and MACs are torchvision's published figures (2 decimals): ours must agree within
    # 1%, or within half of the last published digit for the tiniest networks (shufflenet_v2_x0_5's 0.04 G).
    from dnnprof.shared import opcount as inspection
    from dnnprof.shared import catalog

    (path,) = zoo.generate([name], tmp_path)
    found = inspection.inspect(path)
    ref = catalog.lookup(name)
    assert found.params == pytest.approx(ref.params_m * 1e6, rel=0.01, abs=0.005e6)
    assert found.macs == pytest.approx(ref.gmacs * 1e9, rel=0.01, abs=0.005e9)
    assert found.unsupported == []
