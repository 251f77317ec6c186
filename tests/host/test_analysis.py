"""frame / latest / ceiling on hand-made results whose answers are known (reference top-1 from the catalog)."""

from __future__ import annotations

import math

import msgspec
import pytest

from dnnprof.host import analysis
from dnnprof.shared import catalog

TOP1 = {n: catalog.lookup(n).top1 for n in ("resnet18", "mobilenet_v2", "resnet50", "squeezenet1_1", "vgg16")}


def ceiling(results, budget_j):
    return analysis.ceiling(analysis.latest(analysis.frame(results)), budget_j)


def test_frame_columns_catalog_join_and_missing_values(msgs):
    results = [msgs.result("resnet18", 4, 0.02, estimated=True), msgs.result("MobileNet-V2", 1, None),
               msgs.result("mystery_net", 2, 0.01)]
    df = analysis.frame(results)
    assert len(df) == 3
    assert list(df["network"]) == ["resnet18", "MobileNet-V2", "mystery_net"]
    assert df.loc[0, "top1"] == TOP1["resnet18"]
    assert df.loc[1, "top1"] == TOP1["mobilenet_v2"]  # lookup ignores case and treats - like _
    assert math.isnan(df.loc[2, "top1"])
    assert df.loc[0, "energy_per_inference_j"] == 0.02
    assert math.isnan(df.loc[1, "energy_per_inference_j"])  # not measured is NaN, never 0
    assert math.isnan(df.loc[1, "power_w"])
    assert df.loc[0, "power_w"] > 0
    assert list(df["estimated"]) == [True, False, False]
    assert list(df["batch"]) == [4, 1, 2]
    assert df.loc[0, "top1_source"] == catalog.TORCHVISION


def test_frame_of_nothing_has_the_columns():
    df = analysis.frame([])
    assert df.empty
    assert {"board", "network", "energy_per_inference_j", "top1"} <= set(df.columns)
    assert analysis.latest(df).empty
    c = analysis.ceiling(df, 1.0)
    assert (c["best"], c["cheapest"], c["considered"], c["without_energy"], c["without_accuracy"]) == (
        None, None, 0, 0, [])


def test_best_accuracy_within_the_budget(msgs):
    results = [msgs.result("resnet18", 1, 0.010), msgs.result("mobilenet_v2", 1, 0.040),
               msgs.result("resnet50", 1, 0.200), msgs.result("squeezenet1_1", 1, 0.002)]
    c = ceiling(results, 0.050)
    assert c["best"]["network"] == "mobilenet_v2"
    assert c["ceiling_top1"] == TOP1["mobilenet_v2"]
    assert c["cheapest"] is None  # only named when nothing fits
    assert (c["feasible"], c["considered"], c["without_energy"], c["without_accuracy"]) == (3, 4, 0, [])
    assert c["budget_j"] == 0.050
    assert c["estimated"] is False
    assert ceiling(results, 1.0)["best"]["network"] == "resnet50"
    assert ceiling(results, 0.005)["best"]["network"] == "squeezenet1_1"


def test_tie_in_accuracy_goes_to_lower_energy(msgs):
    # Same network (same reference accuracy) at three batch sizes: the cheapest per image wins.
    results = [msgs.result("resnet18", 1, 0.030), msgs.result("resnet18", 8, 0.011),
               msgs.result("resnet18", 4, 0.019)]
    c = ceiling(results, 0.05)
    assert (c["best"]["batch"], c["best"]["energy_per_inference_j"]) == (8, 0.011)
    assert c["feasible"] == 3


def test_equal_energies_go_to_higher_accuracy(msgs):
    results = [msgs.result("resnet18", 1, 0.02), msgs.result("vgg16", 1, 0.02), msgs.result("mobilenet_v2", 1, 0.02)]
    assert ceiling(results, 0.02)["best"]["network"] == "mobilenet_v2"
    # Nothing fits: the cheapest named is, among equally cheap ones, the most accurate.
    c = ceiling(results, 0.01)
    assert c["best"] is None
    assert c["cheapest"]["network"] == "mobilenet_v2"


def test_missing_energy_is_never_free(msgs):
    # resnet50 is the most accurate, but has no energy: it must not win any budget, not even a zero one.
    results = [msgs.result("resnet50", 1, None), msgs.result("resnet18", 1, 0.01),
               msgs.result("resnet50", 8, None)]
    c = ceiling(results, 1.0)
    assert c["best"]["network"] == "resnet18"
    assert (c["considered"], c["feasible"], c["without_energy"]) == (1, 1, 2)
    zero = ceiling(results, 0.0)
    assert zero["best"] is None
    assert zero["cheapest"]["network"] == "resnet18"
    assert zero["without_energy"] == 2


def test_only_missing_energy(msgs):
    c = ceiling([msgs.result("resnet18", 1, None), msgs.result("resnet50", 2, None)], 10.0)
    assert (c["best"], c["cheapest"], c["ceiling_top1"], c["considered"], c["without_energy"]) == (
        None, None, None, 0, 2)


def test_measured_zero_energy_is_not_missing(msgs):
    c = ceiling([msgs.result("resnet18", 1, 0.0), msgs.result("resnet50", 1, None)], 0.0)
    assert c["best"]["network"] == "resnet18"
    assert c["best"]["energy_per_inference_j"] == 0.0
    assert c["without_energy"] == 1


def test_network_outside_the_catalog_is_counted_not_ranked(msgs):
    results = [msgs.result("mystery_net", 1, 0.001), msgs.result("mystery_net", 2, 0.0005),
               msgs.result("another_net", 1, None), msgs.result("resnet18", 1, 0.01)]
    c = ceiling(results, 1.0)
    assert c["best"]["network"] == "resnet18"
    assert c["without_accuracy"] == ["another_net", "mystery_net"]  # sorted, each named once
    assert c["considered"] == 1
    assert c["without_energy"] == 1
    nothing = ceiling(results, 0.002)  # only unranked networks fit
    assert nothing["best"] is None
    assert nothing["cheapest"]["network"] == "resnet18"


def test_single_point(msgs):
    one = [msgs.result("mobilenet_v2", 2, 0.03, estimated=True, throughput=250.0)]
    c = ceiling(one, 0.05)
    assert c["best"] == {
        "network": "mobilenet_v2", "backend": "onnxruntime", "device": "cpu", "precision": "fp32", "batch": 2,
        "top1": TOP1["mobilenet_v2"], "energy_per_inference_j": 0.03, "throughput_ips": 250.0,
        "latency_ms_mean": 10.0, "power_w": pytest.approx(0.03 * 250.0), "estimated": True,
    }
    assert type(c["best"]["batch"]) is int and type(c["best"]["estimated"]) is bool  # plain Python, JSON-able
    assert c["estimated"] is True
    assert (c["feasible"], c["considered"]) == (1, 1)
    miss = ceiling(one, 0.01)
    assert miss["best"] is None and miss["ceiling_top1"] is None
    assert miss["cheapest"]["network"] == "mobilenet_v2"
    assert miss["estimated"] is False  # nothing was chosen, so nothing chosen is estimated


def test_nothing_feasible_names_the_cheapest(msgs):
    results = [msgs.result("resnet50", 1, 0.2), msgs.result("resnet18", 1, 0.03), msgs.result("vgg16", 1, 0.9)]
    c = ceiling(results, 0.01)
    assert c["best"] is None
    assert c["ceiling_top1"] is None
    assert c["cheapest"]["network"] == "resnet18"
    assert c["cheapest"]["energy_per_inference_j"] == 0.03
    assert (c["feasible"], c["considered"]) == (0, 3)


@pytest.mark.parametrize("energy", [0.05, 0.1 + 0.2, 1e-3 * 7])
def test_budget_equal_to_the_energy_is_feasible(msgs, energy):
    results = [msgs.result("resnet50", 1, energy), msgs.result("resnet18", 1, energy / 2)]
    c = ceiling(results, energy)
    assert c["best"]["network"] == "resnet50"
    assert c["feasible"] == 2
    assert ceiling(results, math.nextafter(energy, 0))["best"]["network"] == "resnet18"


def test_latest_keeps_the_newest_of_each_configuration(msgs):
    old = msgs.result("resnet18", 1, 0.05, ts=100.0, run_id="run-1")
    new = msgs.result("resnet18", 1, 0.02, ts=200.0, run_id="run-2")
    older_than_old = msgs.result("resnet18", 1, 0.09, ts=50.0, run_id="run-0")
    other_batch = msgs.result("resnet18", 2, 0.5, ts=10.0)
    other_precision = msgs.result("resnet18", 1, 0.3, ts=20.0, precision="fp16")
    other_board = msgs.result("resnet18", 1, 0.4, ts=30.0, board="board-b")
    df = analysis.latest(analysis.frame([new, old, other_batch, older_than_old, other_precision, other_board]))
    assert len(df) == 4
    assert set(df["id"]) == {new.id, other_batch.id, other_precision.id, other_board.id}
    # The budget sees only the newest measurement: the stale cheaper-or-dearer ones do not count.
    c = analysis.ceiling(df[df["board"] == "board-a"], 0.03)
    assert c["best"]["energy_per_inference_j"] == 0.02
    assert c["considered"] == 3
    assert list(df.index) == list(range(4))
    assert list(df["board"]) == sorted(df["board"])


def test_a_models_own_accuracy_comes_before_the_catalog(msgs):
    own = msgspec.structs.replace(msgs.result("resnet18", 1, 0.010), reference_top1=64.0,
                                  reference_top1_source="manifest: our int8 export")
    unknown = msgspec.structs.replace(msgs.result("my_detector_backbone", 1, 0.020), reference_top1=55.0,
                                      reference_top1_source="manifest")
    plain = msgs.result("resnet18", 2, 0.008)
    rows = analysis.frame([own, unknown, plain])
    assert list(rows["top1"]) == [64.0, 55.0, catalog.lookup("resnet18").top1]
    assert list(rows["top1_source"])[:2] == ["manifest: our int8 export", "manifest"]


def test_a_user_catalog_is_used_when_given(msgs, tmp_path):
    path = tmp_path / "c.csv"
    path.write_text("name,top1\nresnet18,71.0\n")
    rows = analysis.frame([msgs.result("resnet18", 1, 0.01)], catalog.load_user(path))
    assert rows["top1"][0] == 71.0 and "c.csv" in rows["top1_source"][0]
