"""frame / latest / ceiling on hand-made results whose answers are known (reference top-1 from the catalog)."""

from __future__ import annotations

import math

import msgspec
from msgspec.structs import replace as msgstruct_replace
import pytest

from dnnprof.host import analysis
from dnnprof.shared import catalog, schema
from dnnprof.shared.errors import UserError

TOP1 = {n: catalog.lookup(n).top1 for n in ("resnet18", "mobilenet_v2", "resnet50", "squeezenet1_1", "vgg16")}


def ceiling(results, budget_j, **limits):
    df = analysis.latest(analysis.frame(results))
    return analysis.ceiling(df, analysis.Limits(energy_budget_j=budget_j, **limits))


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
    c = analysis.ceiling(df, analysis.Limits(energy_budget_j=1.0))
    assert (c["best"], c["cheapest"], c["considered"], c["without_energy"], c["without_accuracy"]) == (
        None, None, 0, 0, [])


def test_best_accuracy_within_the_budget(msgs):
    results = [msgs.result("resnet18", 1, 0.010), msgs.result("mobilenet_v2", 1, 0.040),
               msgs.result("resnet50", 1, 0.200), msgs.result("squeezenet1_1", 1, 0.002)]
    c = ceiling(results, 0.050)
    assert c["best"]["network"] == "mobilenet_v2"
    assert c["top1"] == TOP1["mobilenet_v2"]
    assert c["cheapest"] is None  # only named when nothing fits
    assert (c["feasible"], c["ranked"], c["without_energy"], c["without_accuracy"]) == (3, 4, 0, [])
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
    assert (c["considered"], c["ranked"], c["feasible"], c["without_energy"]) == (3, 1, 1, 2)
    zero = ceiling(results, 0.0)
    assert zero["best"] is None
    assert zero["cheapest"]["network"] == "resnet18"
    assert zero["without_energy"] == 2


def test_only_missing_energy(msgs):
    c = ceiling([msgs.result("resnet18", 1, None), msgs.result("resnet50", 2, None)], 10.0)
    assert (c["best"], c["cheapest"], c["top1"], c["ranked"], c["without_energy"]) == (None, None, None, 0, 2)


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
    assert c["ranked"] == 1
    assert c["without_energy"] == 1
    nothing = ceiling(results, 0.002)  # only unranked networks fit
    assert nothing["best"] is None
    assert nothing["cheapest"]["network"] == "resnet18"


def test_timing_only_results_are_timed_but_never_ranked(msgs):
    fp16 = msgs.measured(msgs.result("resnet50", 1, 0.020, precision="fp16"), 75.9)
    int8 = msgstruct_replace(msgs.result("resnet50", 1, 0.005, precision="int8"), calibration="random",
                             timing_only=True)
    df = analysis.latest(analysis.frame([fp16, int8]))
    row = df[df["precision"] == "int8"].iloc[0]
    assert bool(row["timing_only"]) and math.isnan(row["top1"]) and row["top1_source"] == analysis.TIMING_ONLY
    assert row["energy_per_inference_j"] == 0.005  # its timing and energy are kept
    c = ceiling([fp16, int8], 1.0)
    assert c["best"]["precision"] == "fp16"  # the cheaper int8 engine's accuracy is unknown
    assert c["excluded"]["timing_only"] == 1
    assert c["without_accuracy"] == []  # resnet50 has an accuracy: only the timing-only engine is unranked
    assert [step["precision"] for step in analysis.frontier(df)] == ["fp16"]


def test_single_point(msgs):
    one = [msgs.result("mobilenet_v2", 2, 0.03, estimated=True, throughput=250.0)]
    c = ceiling(one, 0.05)
    assert c["best"] == {
        "board": "board-a", "network": "mobilenet_v2", "backend": "onnxruntime", "device": "cpu", "precision": "fp32",
        "batch": 2, "power_mode": "n/a", "clocks": None, "boundary": "estimate", "top1": TOP1["mobilenet_v2"],
        "accuracy_source": "catalog", "accuracy_images": None, "assumed": False, "energy_j": 0.03,
        "energy_per_inference_j": 0.03,
        "throughput_ips": 250.0, "latency_ms": 10.0, "power_w": pytest.approx(0.03 * 250.0), "estimated": True,
    }
    assert type(c["best"]["batch"]) is int and type(c["best"]["estimated"]) is bool  # plain Python, JSON-able
    assert c["estimated"] is True
    assert (c["feasible"], c["considered"], c["ranked"]) == (1, 1, 1)
    miss = ceiling(one, 0.01)
    assert miss["best"] is None and miss["top1"] is None
    assert miss["cheapest"]["network"] == "mobilenet_v2"
    assert miss["estimated"] is False  # nothing was chosen, so nothing chosen is estimated


def test_nothing_feasible_names_the_cheapest(msgs):
    results = [msgs.result("resnet50", 1, 0.2), msgs.result("resnet18", 1, 0.03), msgs.result("vgg16", 1, 0.9)]
    c = ceiling(results, 0.01)
    assert c["best"] is None
    assert c["top1"] is None
    assert c["cheapest"]["network"] == "resnet18"
    assert c["cheapest"]["energy_per_inference_j"] == 0.03
    assert (c["feasible"], c["ranked"]) == (0, 3)


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
    c = analysis.ceiling(df[df["board"] == "board-a"], analysis.Limits(energy_budget_j=0.03))
    assert c["best"]["energy_per_inference_j"] == 0.02
    assert c["considered"] == 3
    assert list(df.index) == list(range(4))
    assert list(df["board"]) == sorted(df["board"])


def test_latest_keeps_each_precision_method_apart(msgs):
    """fp16 by TensorRT's builder flags and fp16 from a converted model are two configurations; a result from before
    the method was recorded counts as the builder flags (the only route then)."""
    older = msgs.result("resnet18", 1, 0.05, ts=100.0, precision="fp16", backend="tensorrt", device="gpu")
    flags = msgspec.structs.replace(msgs.result("resnet18", 1, 0.04, ts=200.0, precision="fp16", backend="tensorrt",
                                                device="gpu"), precision_method="builder_flags")
    converted = msgspec.structs.replace(msgs.result("resnet18", 1, 0.03, ts=150.0, precision="fp16",
                                                    backend="tensorrt", device="gpu"),
                                        precision_method="onnx_converted")
    df = analysis.latest(analysis.frame([older, flags, converted]))
    assert set(df["id"]) == {flags.id, converted.id}


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


# -- budgets, limits, frontier and groups, on frames written by hand -----------------------------------------

def cfg(network, top1, energy, batch=1, *, board="b", mode="MAXN", precision="fp32", net=None, power=None,
        latency=None, ips=None, estimated=False):
    """A configuration row; energy is gross joules per image (None = not measured)."""
    return {"board": board, "network": network, "backend": "tensorrt", "device": "gpu", "precision": precision,
            "batch": batch, "power_mode": mode, "top1": top1, "energy_per_inference_j": energy,
            "energy_per_inference_net_j": net, "power_w": power, "latency_ms_mean": latency,
            "latency_ms_p99": None if latency is None else latency * 1.5, "throughput_ips": ips,
            "estimated": estimated}


STAIRS = analysis.table([cfg("a", 60.0, 0.010), cfg("b", 70.0, 0.020), cfg("c", 65.0, 0.030),
                         cfg("d", 80.0, 0.050), cfg("e", 80.0, 0.060), cfg("f", 75.0, None)])


def test_frontier_is_the_staircase():
    steps = analysis.frontier(STAIRS)
    assert [(s["network"], s["energy_j"], s["top1"]) for s in steps] == [
        ("a", 0.010, 60.0), ("b", 0.020, 70.0), ("d", 0.050, 80.0)]  # c is dominated by b, e ties d but costs more


def test_next_step_and_the_extra_energy_it_needs():
    c = analysis.ceiling(STAIRS, analysis.Limits(energy_budget_j=0.025))
    assert c["best"]["network"] == "b" and c["top1"] == 70.0
    assert c["next"]["network"] == "d"
    assert c["next_extra_j"] == pytest.approx(0.025)  # 50 mJ needed, 25 mJ available
    top = analysis.ceiling(STAIRS, analysis.Limits(energy_budget_j=1.0))
    assert top["best"]["network"] == "d" and top["next"] is None and top["next_extra_j"] is None
    assert top["without_energy"] == 1


def test_budget_per_batch_and_per_n_images():
    df = analysis.table([cfg("small", 60.0, 0.010, batch=8), cfg("big", 75.0, 0.040, batch=1)])
    per_batch = analysis.Basis(per="batch")
    assert per_batch.text == "gross energy per batch"
    # Per batch: small costs 80 mJ a batch, big 40 mJ.
    c = analysis.ceiling(df, analysis.Limits(energy_budget_j=0.050), per_batch)
    assert c["best"]["network"] == "big" and c["best"]["energy_j"] == pytest.approx(0.040)
    c = analysis.ceiling(df, analysis.Limits(energy_budget_j=0.030), per_batch)
    assert c["best"] is None and c["cheapest"]["network"] == "big"
    # Per 1000 images: 10 J and 40 J.
    per_k = analysis.Basis(per=1000)
    assert per_k.text == "gross energy per 1000 images"
    c = analysis.ceiling(df, analysis.Limits(energy_budget_j=20.0), per_k)
    assert c["best"]["network"] == "small" and c["best"]["energy_j"] == pytest.approx(10.0)
    assert c["best"]["energy_per_inference_j"] == pytest.approx(0.010)
    assert c["next"]["network"] == "big" and c["next_extra_j"] == pytest.approx(20.0)


def test_net_energy_basis_uses_net_figures_and_missing_net_is_not_free():
    df = analysis.table([cfg("a", 60.0, 0.030, net=0.010), cfg("b", 70.0, 0.040, net=0.020),
                         cfg("c", 90.0, 0.001, net=None)])
    net = analysis.Basis(energy="net")
    c = analysis.ceiling(df, analysis.Limits(energy_budget_j=0.025), net)
    assert c["best"]["network"] == "b" and c["best"]["energy_j"] == 0.020
    assert c["without_energy"] == 1  # c has no idle baseline, so no net figure
    gross = analysis.ceiling(df, analysis.Limits(energy_budget_j=0.025))
    assert gross["best"]["network"] == "c"


def test_power_latency_and_fps_limits_combine():
    df = analysis.table([cfg("a", 60.0, 0.010, power=3.0, latency=5.0, ips=200.0),
                         cfg("b", 70.0, 0.020, power=8.0, latency=4.0, ips=250.0),
                         cfg("c", 75.0, 0.030, power=4.0, latency=20.0, ips=50.0),
                         cfg("d", 80.0, 0.040, power=None, latency=3.0, ips=300.0)])
    assert analysis.ceiling(df, analysis.Limits(power_budget_w=5.0))["best"]["network"] == "c"
    c = analysis.ceiling(df, analysis.Limits(power_budget_w=5.0, latency_budget_ms=10.0))
    assert c["best"]["network"] == "a"
    assert c["excluded"] == {"power_budget": 2, "latency_budget": 1}  # d's power was not measured: excluded
    assert analysis.ceiling(df, analysis.Limits(min_fps=240.0))["best"]["network"] == "d"
    c = analysis.ceiling(df, analysis.Limits(min_fps=240.0, energy_budget_j=0.025, latency_budget_ms=4.5))
    assert c["best"]["network"] == "b"
    assert c["excluded"]["energy_budget"] == 1  # d passes the others but needs 40 mJ
    # The p99 (1.5 x mean here) is stricter than the mean.
    assert analysis.ceiling(df, analysis.Limits(latency_budget_ms=4.2))["best"]["network"] == "d"
    assert analysis.ceiling(df, analysis.Limits(latency_budget_ms=4.2, latency_stat="p99"))["best"] is None
    steps = analysis.frontier(df, analysis.Limits(power_budget_w=5.0))
    assert [s["network"] for s in steps] == ["a", "c"]


def test_nothing_within_the_other_limits_names_the_cheapest_and_says_it_breaks_them():
    df = analysis.table([cfg("a", 60.0, 0.010, power=9.0), cfg("b", 70.0, 0.020, power=12.0)])
    c = analysis.ceiling(df, analysis.Limits(energy_budget_j=1.0, power_budget_w=5.0))
    assert c["best"] is None and c["ranked"] == 0
    assert c["cheapest"]["network"] == "a" and c["cheapest_meets_other_limits"] is False
    assert c["excluded"]["power_budget"] == 2


def test_ties_are_broken_the_same_way_every_time():
    rows = [cfg("x", 70.0, 0.02, ips=100.0), cfg("y", 70.0, 0.02, ips=120.0), cfg("z", 70.0, 0.02, ips=120.0)]
    for order in (rows, rows[::-1]):
        df = analysis.table(order)
        assert analysis.ceiling(df, analysis.Limits(energy_budget_j=0.02))["best"]["network"] == "y"
        assert [s["network"] for s in analysis.frontier(df)] == ["y"]


def test_per_board_groups_by_power_mode_and_precision_only_where_they_differ():
    df = analysis.table([
        cfg("a", 60.0, 0.010, board="orin", mode="15W"), cfg("b", 75.0, 0.030, board="orin", mode="15W"),
        cfg("a", 60.0, 0.020, board="orin", mode="MAXN"), cfg("b", 75.0, 0.050, board="orin", mode="MAXN"),
        cfg("b", 74.0, 0.012, board="orin", mode="MAXN", precision="int8"),
        cfg("a", 60.0, 0.100, board="nano", mode="10W")])
    out = analysis.per_board(df, analysis.Limits(energy_budget_j=0.025), analysis.Basis())
    orin, nano = out["orin"], out["nano"]
    assert orin["ceiling"]["best"]["network"] == "b" and orin["ceiling"]["best"]["precision"] == "int8"
    assert set(orin["by_power_mode"]) == {"15W", "MAXN"}
    assert orin["by_power_mode"]["15W"]["best"]["network"] == "a"
    assert orin["by_power_mode"]["MAXN"]["best"]["precision"] == "int8"
    assert orin["by_precision"]["fp32"]["best"]["power_mode"] == "15W"
    assert [(s["network"], s["power_mode"], s["precision"]) for s in orin["frontier"]] == [
        ("a", "15W", "fp32"), ("b", "MAXN", "int8"), ("b", "15W", "fp32")]
    assert nano["by_power_mode"] == {} and nano["by_precision"] == {}
    assert nano["ceiling"]["best"] is None and nano["ceiling"]["cheapest"]["network"] == "a"


def test_frontier_of_one_point_and_of_nothing():
    assert [s["network"] for s in analysis.frontier(analysis.table([cfg("a", 60.0, 0.01)]))] == ["a"]
    assert analysis.frontier(analysis.table([cfg("a", 60.0, None), cfg("b", None, 0.01)])) == []
    assert analysis.frontier(analysis.table([])) == []


@pytest.mark.parametrize("kwargs, message", [({"energy": "tare"}, "gross or net"), ({"per": "week"}, "image, batch"),
                                             ({"per": 0}, "image, batch")])
def test_bad_basis_is_a_user_error(kwargs, message):
    with pytest.raises(UserError, match=message):
        analysis.Basis(**kwargs)


def test_bad_latency_statistic_is_a_user_error():
    with pytest.raises(UserError, match="p99"):
        analysis.Limits(latency_stat="p42")


# -- the fleet's answer ------------------------------------------------------------------------------------------


def _fleet_results(msgs):
    """Four boards, each at its own boundary, plus one without a power source."""
    r = msgs.result
    return [
        # An Orin measured at its input rail: resnet50 is the most accurate within 60 mJ.
        r("resnet18", 1, 0.020, board="orin-a", boundary="input_rail", power_mode="MAXN", clocks="jetson_clocks"),
        r("resnet50", 8, 0.055, board="orin-a", boundary="input_rail", power_mode="MAXN", clocks="jetson_clocks"),
        r("resnet101", 8, 0.400, board="orin-a", boundary="input_rail", power_mode="MAXN"),
        r("mobilenet_v2", 4, 0.010, board="orin-a", boundary="input_rail", power_mode="15W"),
        # An AGX measured as the sum of its module rails: cheaper-looking, never compared with the Orin.
        r("resnet50", 1, 0.030, board="agx-b", boundary="sum_of_rails", power_mode="MAXN"),
        r("mobilenet_v2", 1, 0.005, board="agx-b", boundary="sum_of_rails", power_mode="MAXN"),
        # Another board at the input rail: the runner-up of that group.
        r("mobilenet_v2", 2, 0.012, board="nano-c", boundary="input_rail", power_mode="7W"),
        # A laptop with only estimates: the most accurate and the cheapest of all, yet never the headline.
        r("resnet50", 1, 0.001, board="pc-d", estimated=True),
        # No power source at all.
        r("resnet50", 1, None, board="bare-e"),
    ]


def fleet(results, budgets, **limits):
    df = analysis.latest(analysis.frame(results))
    return analysis.fleet(df, budgets, analysis.Limits(**limits), analysis.Basis())


def test_fleet_ranks_only_within_one_boundary_and_names_the_groups(msgs):
    f = fleet(_fleet_results(msgs), [0.060])
    assert [g["boundary"] for g in f["groups"]] == ["input_rail", "sum_of_rails", "estimate"]
    assert f["groups"][0]["boards"] == ["nano-c", "orin-a"]
    (answer,) = f["answers"]
    assert answer["headline"] == "input_rail"  # measured groups first; the estimate is cheaper and loses anyway
    rail, rails, estimate = answer["groups"]
    assert (rail["best"]["board"], rail["best"]["network"], rail["best"]["batch"]) == ("orin-a", "resnet50", 8)
    assert (rail["best"]["power_mode"], rail["best"]["clocks"], rail["best"]["boundary"]) == (
        "MAXN", "jetson_clocks", "input_rail")
    assert rail["next"]["network"] == "resnet101" and rail["next_extra_j"] == pytest.approx(0.400 - 0.060)
    # each board's own best: the runners-up, most accurate first
    assert [(b["board"], b["best"]["network"]) for b in rail["per_board"]] == [("orin-a", "resnet50"),
                                                                               ("nano-c", "mobilenet_v2")]
    assert rails["best"]["network"] == "resnet50" and rails["boards"] == ["agx-b"]
    assert estimate["estimated"] and estimate["best"]["estimated"] and not rail["estimated"]
    assert f["left_out"] == [{"board": "bare-e", "configurations": 1,
                              "reason": "no energy measured (no power source, or none in this basis)"}]


def test_fleet_with_only_estimates_answers_from_them_labelled(msgs):
    results = [msgs.result("resnet18", 1, 0.02, board="pc-a", estimated=True),
               msgs.result("resnet50", 1, 0.05, board="pc-b", estimated=True)]
    (answer,) = fleet(results, [0.03])["answers"]
    assert answer["headline"] == "estimate"
    assert answer["groups"][0]["best"]["board"] == "pc-a" and answer["groups"][0]["estimated"]


def test_fleet_budgets_nothing_meets_name_the_cheapest(msgs):
    f = fleet(_fleet_results(msgs), [0.0001, 0.02])
    tiny, small = f["answers"]
    assert tiny["headline"] is None
    assert all(g["best"] is None for g in tiny["groups"])
    assert tiny["groups"][0]["cheapest"]["network"] == "mobilenet_v2"
    assert tiny["groups"][0]["excluded"]["energy_budget"] == 5
    best = small["groups"][0]["best"]  # equal accuracy on two boards: the cheaper per image, in its power mode
    assert (best["board"], best["network"], best["power_mode"]) == ("orin-a", "mobilenet_v2", "15W")
    assert [b["board"] for b in small["groups"][0]["per_board"]] == ["orin-a", "nano-c"]


def test_fleet_ties_across_boards_go_to_the_board_name_whatever_the_order(msgs):
    def twins(order):
        made = [msgs.result("resnet18", 1, 0.02, board=b, boundary="input_rail", throughput=50.0) for b in order]
        return fleet(made, [0.05])["answers"][0]["groups"][0]

    for order in (["zeta", "alpha"], ["alpha", "zeta"]):
        group = twins(order)
        assert group["best"]["board"] == "alpha"
        assert [b["board"] for b in group["per_board"]] == ["alpha", "zeta"]


def test_fleet_without_a_budget_is_the_most_accurate_and_other_limits_hold(msgs):
    (answer,) = fleet(_fleet_results(msgs), [None])["answers"]
    assert answer["groups"][0]["best"]["network"] == "resnet101" and answer["groups"][0]["next"] is None
    (answer,) = fleet(_fleet_results(msgs), [None], power_budget_w=0.5)["answers"]  # power = 0.2 W per mJ here
    assert answer["groups"][0]["excluded"]["power_budget"] > 0


def test_fleet_in_net_energy_leaves_out_what_has_no_idle_baseline_and_never_crashes_on_a_tie(msgs):
    with_idle = msgstruct_replace(msgs.result("resnet18", 1, 0.02, board="orin-a", boundary="input_rail"),
                                  energy_per_inference_j=schema.EnergyPerInference(gross=0.02, net=0.015))
    no_idle = msgs.result("resnet18", 1, 0.02, board="orin-b", boundary="input_rail")  # gross only
    df = analysis.latest(analysis.frame([with_idle, no_idle]))
    for budget in (None, 0.05):
        f = analysis.fleet(df, [budget], analysis.Limits(), analysis.Basis(energy="net"))
        (group,) = f["answers"][0]["groups"]
        assert group["best"]["board"] == "orin-a" and group["boards"] == ["orin-a"]
        assert f["left_out"][0]["board"] == "orin-b"


def test_fleet_unknown_and_estimated_boundaries_are_groups_of_their_own(msgs):
    unknown = msgstruct_replace(msgs.result("resnet50", 1, 0.02, board="odd-a"), provenance=schema.Provenance(
        power_source="custom", boundary=None, estimated=False, samples=10, sample_rate_hz=10.0))
    guessed = msgstruct_replace(msgs.result("resnet50", 1, 0.001, board="odd-b"), provenance=schema.Provenance(
        power_source="custom", boundary=None, estimated=True, samples=10, sample_rate_hz=10.0))
    rail = msgs.result("resnet18", 1, 0.03, board="orin-c", boundary="input_rail")
    f = fleet([unknown, guessed, rail], [0.05])
    assert [g["boundary"] for g in f["groups"]] == ["input_rail", "unknown", "estimate"]
    (answer,) = f["answers"]
    rail_group, unknown_group, estimate_group = answer["groups"]
    assert answer["headline"] == "input_rail"
    # more accurate, but at a boundary that cannot be compared: named, never ranked above the headline
    assert unknown_group["beats_headline"] and not rail_group["beats_headline"]
    assert not estimate_group["beats_headline"]  # an estimate is never said to beat a measurement
    assert unknown_group["text"] == "unknown (an unknown boundary)"


# -- where accuracy comes from: measured, manifest, catalog; assumed ------------------------------------------------


def test_a_measured_int8_engine_ranks_with_its_own_top1(msgs):
    fp32 = msgs.result("resnet50", 1, 0.040)
    int8 = msgs.measured(msgs.result("resnet50", 1, 0.010, precision="int8"), 75.1, 92.4, images=500)
    row = analysis.frame([int8]).iloc[0]
    assert (row["top1"], row["top5"], row["accuracy_images"]) == (75.1, 92.4, 500)
    assert (row["top1_ci_low"], row["top1_ci_high"]) == (71.1, 79.1)
    assert row["accuracy_source"] == "measured" and not row["assumed"] and not row["accuracy_reused"]
    assert row["top1_source"] == "measured on imagenet-val (500 images)"
    c = ceiling([fp32, int8], 0.030)
    assert (c["best"]["precision"], c["top1"]) == ("int8", 75.1)  # its own top-1, below the fp32 reference
    assert c["top1"] < TOP1["resnet50"]
    assert (c["best"]["accuracy_source"], c["best"]["accuracy_images"], c["assumed"]) == ("measured", 500, False)
    assert c["next"]["precision"] == "fp32" and c["next"]["top1"] == TOP1["resnet50"]
    assert "assumed" not in c["excluded"]
    assert ceiling([fp32, int8], 0.050)["best"]["precision"] == "fp32"  # the reference is the more accurate


def test_a_reused_measurement_says_so(msgs):
    reused = msgs.measured(msgs.result("resnet50", 8, 0.010, precision="fp16"), 76.0, images=200, reused=True)
    row = analysis.frame([reused]).iloc[0]
    assert bool(row["accuracy_reused"]) and not row["assumed"]
    assert row["top1_source"] == ("measured on imagenet-val (200 images, reused: measured on another batch of the "
                                  "same engine)")
    assert math.isnan(row["top5"])  # a model of fewer than 5 classes: never 0


def test_unmeasured_fp16_and_int8_are_assumed_and_left_out_of_the_ranking(msgs):
    fp32 = msgs.result("resnet50", 1, 0.040)
    fp16 = msgs.result("resnet50", 1, 0.020, precision="fp16")
    int8 = msgs.result("resnet50", 1, 0.010, precision="int8")
    small = msgs.result("resnet18", 1, 0.015)
    df = analysis.latest(analysis.frame([fp32, fp16, int8, small]))
    by = {(r.network, r.precision): r for r in df.itertuples()}
    for precision in ("fp16", "int8"):
        r = by["resnet50", precision]
        assert r.assumed and r.accuracy_source == "catalog" and r.top1 == TOP1["resnet50"]  # the reference is kept
        assert r.top1_source == f"assumed: the fp32 reference ({catalog.TORCHVISION}), not measured at {precision}"
    assert not by["resnet50", "fp32"].assumed and not by["resnet18", "fp32"].assumed
    c = analysis.ceiling(df, analysis.Limits(energy_budget_j=0.030))
    assert (c["best"]["network"], c["best"]["precision"]) == ("resnet18", "fp32")  # not the assumed fp16
    assert c["excluded"]["assumed"] == 2 and c["without_accuracy"] == []
    assert (c["assumed"], c["ranked_assumed"], c["ranked"]) == (False, 0, 2)
    assert [s["precision"] for s in analysis.frontier(df)] == ["fp32", "fp32"]
    flags = analysis.flags(df, analysis.Limits(energy_budget_j=0.030), analysis.Basis())
    assert [bool(v) for v in flags["ranked"]] == [not a for a in df["assumed"]]
    assert not flags["on_frontier"][df["assumed"].to_numpy(dtype=bool)].any()
    # Nothing but assumed accuracy fits: nothing is ranked, and the cheapest named is one with a rankable accuracy.
    tight = analysis.ceiling(df, analysis.Limits(energy_budget_j=0.012))
    assert tight["best"] is None and tight["cheapest"]["precision"] == "fp32"


def test_assume_accuracy_ranks_them_and_the_ceiling_says_it_rests_on_that(msgs):
    results = [msgs.result("resnet50", 1, 0.040), msgs.result("resnet50", 1, 0.020, precision="fp16"),
               msgs.result("resnet50", 1, 0.010, precision="int8"), msgs.result("resnet18", 1, 0.015)]
    df = analysis.latest(analysis.frame(results))
    c = analysis.ceiling(df, analysis.Limits(energy_budget_j=0.030, assume_accuracy=True))
    assert (c["best"]["precision"], c["top1"]) == ("int8", TOP1["resnet50"])  # the cheapest of equal top-1
    assert c["assumed"] is True and c["best"]["assumed"] is True
    assert c["ranked_assumed"] == 2 and "assumed" not in c["excluded"]
    steps = analysis.frontier(df, analysis.Limits(assume_accuracy=True))
    assert [(s["precision"], s["assumed"]) for s in steps] == [("int8", True)]
    measured = analysis.ceiling(df[df["precision"] == "fp32"], analysis.Limits(assume_accuracy=True))
    assert measured["assumed"] is False  # the flag alone marks nothing: only a ceiling on assumed accuracy


def test_measured_beats_the_manifest_which_beats_the_catalog(msgs):
    both = msgspec.structs.replace(msgs.measured(msgs.result("resnet18", 1, 0.01), 68.9), reference_top1=69.5,
                                   reference_top1_source="manifest: ours")
    manifest = msgspec.structs.replace(msgs.result("resnet18", 2, 0.01), reference_top1=69.5,
                                       reference_top1_source="manifest: ours")
    catalogued = msgs.result("resnet18", 4, 0.01)
    unknown = msgs.result("mystery_net", 1, 0.01)
    manifest_fp16 = msgspec.structs.replace(msgs.result("resnet18", 1, 0.01, precision="fp16"), reference_top1=69.5)
    df = analysis.frame([both, manifest, catalogued, unknown, manifest_fp16])
    assert [v if isinstance(v, str) else None for v in df["accuracy_source"]] == [
        "measured", "manifest", "catalog", None, "manifest"]
    assert list(df["top1"][:3]) == [68.9, 69.5, TOP1["resnet18"]] and math.isnan(df["top1"][3])
    assert df["top5"][2] == catalog.lookup("resnet18").top5  # the top-5 of the same source as the top-1
    assert math.isnan(df["top5"][1])  # a manifest has no top-5
    assert list(df["assumed"]) == [False, False, False, False, True]
    assert df["top1_source"][4] == "assumed: the fp32 reference (manifest), not measured at fp16"
    assert math.isnan(df["accuracy_images"][1]) and math.isnan(df["top1_ci_low"][2])  # measured only


def test_ranked_top1_is_the_one_rule(msgs):
    df = analysis.frame([msgs.result("resnet50", 1, 0.04), msgs.result("resnet50", 1, 0.02, precision="fp16")])
    ranked = analysis.ranked_top1(df)
    assert ranked[0] == TOP1["resnet50"] and math.isnan(ranked[1])
    assert list(analysis.ranked_top1(df, assume_accuracy=True)) == [TOP1["resnet50"]] * 2
    held = analysis.rankable(df)
    assert math.isnan(held["top1"][1]) and held["top1"][0] == TOP1["resnet50"]
    assert df["top1"][1] == TOP1["resnet50"]  # the frame itself is left as it is
    assert analysis.rankable(df, assume_accuracy=True) is df


def test_the_fleet_follows_the_rule(msgs):
    results = [msgs.result("resnet50", 1, 0.040, board="orin-a", boundary="input_rail"),
               msgs.result("resnet50", 1, 0.010, board="nano-b", boundary="input_rail", precision="int8"),
               msgs.result("resnet18", 1, 0.015, board="nano-b", boundary="input_rail")]
    df = analysis.latest(analysis.frame(results))
    (answer,) = analysis.fleet(df, [0.050], analysis.Limits(), analysis.Basis())["answers"]
    (group,) = answer["groups"]
    assert (group["best"]["board"], group["best"]["precision"], group["assumed"]) == ("orin-a", "fp32", False)
    assert group["excluded"]["assumed"] == 1
    (answer,) = analysis.fleet(df, [0.050], analysis.Limits(assume_accuracy=True), analysis.Basis())["answers"]
    (group,) = answer["groups"]
    assert (group["best"]["board"], group["best"]["precision"], group["assumed"]) == ("nano-b", "int8", True)


# -- power states and the energy-optimal power mode ----------------------------------------------------------------

DVFS, LOCKED = "jetson_clocks off", "jetson_clocks on"
# (mode, clocks) → {batch: (gross J per image, mean ms per batch)} of resnet18 fp32. Without limits 15W under DVFS
# at batch 8 costs the least; within 30 ms a batch MAXN under DVFS at batch 8 does; nothing is faster than 5 ms.
SWEEP = {("15W", DVFS): {1: (0.012, 12.0), 8: (0.006, 60.0)},
         ("15W", LOCKED): {1: (0.014, 10.0), 8: (0.007, 50.0)},
         ("MAXN", DVFS): {1: (0.016, 6.0), 8: (0.009, 25.0)},
         ("MAXN", LOCKED): {1: (0.020, 5.0), 8: (0.010, 20.0)}}


def swept(msgs, network="resnet18", sweep=SWEEP, **kw):
    """Results of one network in two power modes × two clock states, at batch 1 and 8."""
    return [msgs.result(network, batch, energy, power_mode=mode, clocks=clocks, latency_ms=ms,
                        throughput=1000.0 * batch / ms, **kw)
            for (mode, clocks), points in sweep.items() for batch, (energy, ms) in points.items()]


def modes_of(results, **limits):
    df = analysis.latest(analysis.frame(results))
    return analysis.power_modes(df, analysis.Limits(**limits))


def test_latest_keeps_clock_states_apart_and_a_missing_one_groups_with_itself(msgs):
    locked = msgs.result("resnet18", 1, 0.02, ts=100.0, power_mode="MAXN", clocks=LOCKED)
    dvfs = msgs.result("resnet18", 1, 0.01, ts=200.0, power_mode="MAXN", clocks=DVFS)
    older_dvfs = msgs.result("resnet18", 1, 0.03, ts=150.0, power_mode="MAXN", clocks=DVFS)
    unknown_old = msgs.result("resnet18", 1, 0.04, ts=50.0, power_mode="MAXN")
    unknown_new = msgs.result("resnet18", 1, 0.05, ts=60.0, power_mode="MAXN")
    df = analysis.latest(analysis.frame([locked, dvfs, older_dvfs, unknown_new, unknown_old]))
    assert set(df["id"]) == {locked.id, dvfs.id, unknown_new.id}  # not vanished, and one of the two unknown
    assert list(df.index) == list(range(3))


def test_power_states_name_the_clocks_only_where_a_board_measured_several(msgs):
    df = analysis.frame([msgs.result("resnet18", power_mode="MAXN", clocks=LOCKED),
                         msgs.result("resnet18", power_mode="MAXN", clocks=DVFS),
                         msgs.result("resnet18", power_mode="15W"),
                         msgs.result("resnet18", board="nano", power_mode="10W", clocks=LOCKED),
                         msgs.result("resnet18", board="x86", clocks="cpu governor performance"),
                         msgs.result("resnet18", board="x86", clocks="cpu governor powersave")])
    assert list(analysis.power_states(df)) == [
        "MAXN (jetson_clocks on)", "MAXN (jetson_clocks off)", "15W (clocks not recorded)", "10W",
        "cpu governor performance", "cpu governor powersave"]
    assert list(analysis.with_states(df)["power_mode"]) == list(analysis.power_states(df))
    single = analysis.frame([msgs.result("resnet18", power_mode="MAXN", clocks=LOCKED)])
    assert analysis.with_states(single) is single


def test_the_energy_optimal_power_mode_of_two_modes_and_two_clock_states(msgs):
    pm = modes_of(swept(msgs))
    assert pm["states"] == ["15W (jetson_clocks off)", "15W (jetson_clocks on)", "MAXN (jetson_clocks off)",
                            "MAXN (jetson_clocks on)"]
    assert pm["clock_states"] == [DVFS, LOCKED] and pm["modes"] == ["15W", "MAXN"]
    assert (pm["basis"], pm["limits"], pm["reference"], pm["single_state"]) == (
        "gross energy per image", "", "dearest", [])
    (g,) = pm["groups"]
    assert (g["network"], g["precision"], g["backend"], g["device"], g["precision_method"]) == (
        "resnet18", "fp32", "onnxruntime", "cpu", "as_exported")
    best = g["optimal"]
    assert (best["power_mode"], best["clocks"], best["batch"]) == ("15W", DVFS, 8)
    assert best["energy_per_image_j"] == pytest.approx(0.006)
    # one row per power state at its best batch, cheapest first; savings against the dearest (MAXN, locked)
    assert [(r["state"], r["batch"], r["optimal"]) for r in g["rows"]] == [
        ("15W (jetson_clocks off)", 8, True), ("15W (jetson_clocks on)", 8, False),
        ("MAXN (jetson_clocks off)", 8, False), ("MAXN (jetson_clocks on)", 8, False)]
    assert [r["saving_pct"] for r in g["rows"]] == pytest.approx([40.0, 30.0, 10.0, 0.0])
    assert g["rows"][0]["saving_j"] == pytest.approx(0.004)
    assert g["dearest"] == "MAXN (jetson_clocks on)"
    assert [r["latency_ms"] for r in g["rows"]] == pytest.approx([60.0, 50.0, 25.0, 20.0])
    assert all(r["within_limits"] and r["configurations"] == 2 for r in g["rows"])
    assert (g["none_meets"], g["closest"], g["without_energy"], g["mixed_boundaries"]) == (False, None, False, False)
    assert g["unlimited"]["state"] == "15W (jetson_clocks off)" and g["unlimited"]["optimal"]


def test_a_latency_budget_changes_the_energy_optimal_mode(msgs):
    pm = modes_of(swept(msgs), latency_budget_ms=30.0)
    (g,) = pm["groups"]
    assert pm["limits"] == "mean latency ≤ 30 ms per batch"
    assert (g["optimal"]["power_mode"], g["optimal"]["clocks"], g["optimal"]["batch"]) == ("MAXN", DVFS, 8)
    # each state's best batch within the budget: the slow modes fall back to batch 1
    assert [(r["state"], r["batch"]) for r in g["rows"]] == [
        ("MAXN (jetson_clocks off)", 8), ("MAXN (jetson_clocks on)", 8), ("15W (jetson_clocks off)", 1),
        ("15W (jetson_clocks on)", 1)]
    assert g["dearest"] == "15W (jetson_clocks on)"
    assert g["optimal"]["saving_pct"] == pytest.approx(100 * (0.014 - 0.009) / 0.014)
    # without the budget it would have been 15W under DVFS at batch 8
    assert (g["unlimited"]["state"], g["unlimited"]["batch"], g["unlimited"]["optimal"]) == (
        "15W (jetson_clocks off)", 8, False)
    p99 = modes_of(swept(msgs), latency_budget_ms=30.0, latency_stat="p99")  # p99 = 1.35 × the mean here
    assert p99["groups"][0]["optimal"]["state"] == "MAXN (jetson_clocks on)" and p99["latency_stat"] == "p99"


def test_no_mode_meets_the_latency_budget(msgs):
    (g,) = modes_of(swept(msgs), latency_budget_ms=4.0)["groups"]
    assert g["optimal"] is None and g["none_meets"] is True
    assert not any(r["within_limits"] or r["optimal"] for r in g["rows"])
    assert [r["batch"] for r in g["rows"]] == [8, 8, 8, 8]  # each state's cheapest, shown all the same
    assert (g["closest"]["state"], g["closest"]["batch"], g["closest"]["latency_ms"]) == (
        "MAXN (jetson_clocks on)", 1, 5.0)


def test_a_state_without_energy_is_never_the_optimum_and_a_network_in_one_state_is_named(msgs):
    results = [*swept(msgs, sweep={("15W", DVFS): {1: (None, 12.0)}, ("MAXN", DVFS): {1: (0.016, 6.0)}}),
               msgs.result("resnet50", 1, 0.05, power_mode="MAXN", clocks=DVFS)]
    pm = modes_of(results)
    (g,) = pm["groups"]
    assert g["optimal"]["state"] == "MAXN" and pm["states"] == ["15W", "MAXN"]  # one clock state: bare modes
    assert g["rows"][-1]["state"] == "15W" and g["rows"][-1]["energy_per_image_j"] is None
    assert g["rows"][-1]["saving_pct"] is None and g["dearest"] == "MAXN"
    assert pm["single_state"] == [{"network": "resnet50", "precision": "fp32", "backend": "onnxruntime",
                                   "device": "cpu", "precision_method": "as_exported", "state": "MAXN"}]


def test_a_board_in_one_power_state_has_no_mode_table_and_ceilings_per_mode_keep_clocks_apart(msgs):
    results = [*swept(msgs), msgs.result("resnet18", 1, 0.01, board="nano", power_mode="10W", clocks=LOCKED),
               msgs.result("resnet50", 1, 0.03, board="nano", power_mode="10W", clocks=LOCKED)]
    df = analysis.latest(analysis.frame(results))
    out = analysis.per_board(df, analysis.Limits(energy_budget_j=0.008), analysis.Basis())
    assert out["nano"]["power_modes"] is None and out["nano"]["by_power_mode"] == {}
    board = out["board-a"]
    assert set(board["by_power_mode"]) == {"15W (jetson_clocks off)", "15W (jetson_clocks on)",
                                           "MAXN (jetson_clocks off)", "MAXN (jetson_clocks on)"}
    assert board["by_power_mode"]["15W (jetson_clocks on)"]["best"]["clocks"] == LOCKED
    assert board["by_power_mode"]["MAXN (jetson_clocks on)"]["best"] is None  # 10 mJ at best: over 8 mJ
    assert board["power_modes"]["groups"][0]["optimal"]["state"] == "15W (jetson_clocks off)"


def test_memory_is_one_footprint_across_backends(msgs):
    """TensorRT's engine + activations + I/O and ONNX Runtime's RSS growth are the same quantity (weights,
    activations, buffers); an older TensorRT agent's activations-only figure stays apart."""
    trt = msgspec.structs.replace(msgs.result("resnet18", 1, 0.01, backend="tensorrt", device="gpu"),
                                  memory=schema.Memory(backend_bytes=30, engine_bytes=50_000_000,
                                                       activations_bytes=30, io_bytes=4_000))
    ort = msgspec.structs.replace(msgs.result("resnet18", 2, 0.01),
                                  memory=schema.Memory(process_rss_delta_bytes=60_000_000))
    old = msgspec.structs.replace(msgs.result("resnet34", 1, 0.01, backend="tensorrt", device="gpu"),
                                  memory=schema.Memory(backend_bytes=30))
    df = analysis.frame([trt, ort, old]).set_index("network", append=True)
    got = sorted(zip(df["memory_bytes"], df["memory_kind"]))
    assert got == [(30, "backend"), (50_004_030, "footprint"), (60_000_000, "footprint")]
