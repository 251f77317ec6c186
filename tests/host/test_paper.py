"""The seed's analyses on hand-made frames whose answers are known, and fits against numpy/scipy references."""

from __future__ import annotations

import json
import math

import numpy as np
import pytest
from scipy import stats

from dnnprof.host import analysis, paper
from dnnprof.shared import catalog

BASE = {"board": "board-a", "power_mode": "n/a", "backend": "onnxruntime", "device": "cpu", "precision": "fp32",
        "batch": 1, "ts": 1.0}
GROUP = {"board": "board-a", "power_mode": "n/a", "precision": "fp32", "backend": "onnxruntime", "device": "cpu"}


def frame(*rows: dict, **common):
    """A frame from row dicts over BASE (absent keys are missing, never 0)."""
    return analysis.table([{**BASE, **common, **r} for r in rows])


def plain(value) -> bool:
    """Only JSON's own types, recursively: no numpy scalars, no NaN."""
    if isinstance(value, dict):
        return all(isinstance(k, str) and plain(v) for k, v in value.items())
    if isinstance(value, list):
        return all(plain(v) for v in value)
    if isinstance(value, float):
        return math.isfinite(value)
    return value is None or type(value) in (str, int, bool)


def only(records: list[dict], **match) -> dict:
    found = [r for r in records if all(r[k] == v for k, v in match.items())]
    assert len(found) == 1, found
    return found[0]


# -- fit helpers ---------------------------------------------------------------------------------------------------

def test_hyperbolic_fit_gives_back_exact_a_and_b():
    t = np.array([0.7, 1.3, 2.9, 6.1, 10.0])
    fit = paper.fit_hyperbolic(t, 71.5 - 3.3 / t)
    assert fit["a"] == pytest.approx(71.5, rel=1e-12)
    assert fit["b"] == pytest.approx(3.3, rel=1e-12)
    assert fit["r2"] == 1.0
    assert fit["rmse"] == pytest.approx(0.0, abs=1e-12)
    assert (fit["n"], fit["reason"]) == (5, None)


def test_linear_fit_gives_back_an_exact_line_of_byte_sized_numbers():
    batch = np.array([1.0, 2, 4, 8, 16])
    fit = paper.fit_linear(batch, 2e8 + 1.5e7 * batch)
    assert fit["slope"] == pytest.approx(1.5e7, rel=1e-12)
    assert fit["intercept"] == pytest.approx(2e8, rel=1e-12)
    assert fit["r2"] == 1.0
    assert (fit["n"], fit["reason"]) == (5, None)


def test_linear_fit_matches_polyfit_and_linregress_on_noisy_data():
    rng = np.random.default_rng(1)
    x = rng.uniform(0, 30, 40)
    y = 4.0 + 0.8 * x + rng.normal(0, 2.0, 40)
    fit = paper.fit_linear(x, y)
    slope, intercept = np.polyfit(x, y, 1)
    ref = stats.linregress(x, y)
    assert fit["slope"] == pytest.approx(slope, rel=1e-10) == pytest.approx(ref.slope, rel=1e-10)
    assert fit["intercept"] == pytest.approx(intercept, rel=1e-10) == pytest.approx(ref.intercept, rel=1e-10)
    assert fit["r2"] == pytest.approx(ref.rvalue ** 2, rel=1e-10)
    assert fit["rmse"] == pytest.approx(math.sqrt(np.mean((y - (slope * x + intercept)) ** 2)), rel=1e-10)
    assert fit["n"] == 40
    assert all(type(fit[k]) is float for k in ("slope", "intercept", "r2", "rmse"))


def test_hyperbolic_fit_matches_polyfit_in_one_over_t():
    rng = np.random.default_rng(2)
    t = rng.uniform(0.5, 50, 25)
    y = 78 - 40 / t + rng.normal(0, 1.5, 25)
    fit = paper.fit_hyperbolic(t, y)
    slope, intercept = np.polyfit(1 / t, y, 1)
    assert fit["a"] == pytest.approx(intercept, rel=1e-10)
    assert fit["b"] == pytest.approx(-slope, rel=1e-10)
    assert fit["r2"] == pytest.approx(stats.linregress(1 / t, y).rvalue ** 2, rel=1e-10)


@pytest.mark.parametrize(("x", "y", "n", "reason"), [
    ([], [], 0, "no points with both y and x"),
    ([2.0], [5.0], 1, "1 point; a fit needs 3"),
    ([1.0, 2.0], [3.0, 5.0], 2, "2 points; a fit needs 3"),
    ([1.0, np.nan, 3.0, 4.0], [1.0, 2.0, np.nan, 4.0], 2, "2 points; a fit needs 3"),  # NaN pairs are dropped
    ([3.0, 3.0, 3.0, 3.0], [1.0, 2.0, 3.0, 4.0], 4, "every point has the same x; no line can be fitted"),
])
def test_no_fit_says_why(x, y, n, reason):
    fit = paper.fit_linear(x, y)
    assert (fit["slope"], fit["intercept"], fit["r2"], fit["rmse"]) == (None, None, None, None)
    assert (fit["n"], fit["reason"]) == (n, reason)


def test_constant_y_fits_a_flat_line_without_r2():
    fit = paper.fit_linear([1.0, 2.0, 3.0], [5.0, 5.0, 5.0])
    assert (fit["slope"], fit["intercept"], fit["r2"]) == (0.0, 5.0, None)
    assert fit["reason"] == "every point has the same y; r2 is undefined"


def test_hyperbolic_fit_leaves_out_non_positive_and_missing_t():
    t = np.array([1.0, 2.0, 4.0, 0.0, -1.0, np.nan])
    fit = paper.fit_hyperbolic(t, 80 - 20 / np.where(t > 0, t, 1.0))
    assert fit["n"] == 3
    assert (fit["a"], fit["b"]) == (pytest.approx(80), pytest.approx(20))
    assert paper.fit_hyperbolic([5.0, 5.0, 5.0], [1.0, 2.0, 3.0])["reason"].startswith("every point has the same t")


# -- accuracy vs time and energy -----------------------------------------------------------------------------------

TIMES = {"n1": 1.0, "n2": 2.0, "n3": 4.0, "n4": 8.0}


def hyperbolic_rows(**extra) -> list[dict]:
    """Networks on top1 = 80 − 20 / ms exactly, with energy per image = ms / 100 J (so top1 = 80 − 0.2 / J)."""
    return [{"network": n, "ms_per_image": t, "top1": 80 - 20 / t, "energy_per_inference_j": t / 100,
             "energy_per_inference_net_j": t / 200, **extra} for n, t in TIMES.items()]


def test_accuracy_vs_time_recovers_a_and_b_per_group_and_batch():
    df = frame(*hyperbolic_rows(), *hyperbolic_rows(batch=4, top1=70.0))
    out = paper.analyses(df)
    r = only(out["accuracy_vs_time"], batch=1)
    assert {k: r[k] for k in GROUP} == GROUP
    assert r["x"] == "ms_per_image"
    assert (r["a"], r["b"]) == (pytest.approx(80), pytest.approx(20))
    assert r["r2"] == 1.0
    assert r["rmse"] == pytest.approx(0, abs=1e-12)
    assert (r["n"], r["networks"], r["reason"]) == (4, ["n1", "n2", "n3", "n4"], None)
    flat = only(out["accuracy_vs_time"], batch=4)  # every network at 70 %: a flat line, R² undefined
    assert (flat["a"], flat["b"], flat["r2"]) == (pytest.approx(70), pytest.approx(0, abs=1e-9), None)
    assert "same top1" in flat["reason"]
    assert set(r) == {*GROUP, "batch", "x", "a", "b", "r2", "rmse", "n", "networks", "reason"}


def test_accuracy_vs_energy_gross_and_net():
    df = frame(*hyperbolic_rows())
    gross = only(paper.analyses(df)["accuracy_vs_energy"], batch=1)
    assert gross["x"] == "energy_per_inference_j"
    assert (gross["a"], gross["b"], gross["r2"]) == (pytest.approx(80), pytest.approx(0.2), 1.0)
    assert gross["estimated"] is False
    net = only(paper.analyses(df, energy="net")["accuracy_vs_energy"], batch=1)
    assert net["x"] == "energy_per_inference_net_j"
    assert (net["a"], net["b"]) == (pytest.approx(80), pytest.approx(0.1))  # half the joules: half of b
    with pytest.raises(ValueError, match="energy"):
        paper.analyses(df, energy="both")


def test_missing_energy_is_left_out_never_read_as_zero():
    rows = hyperbolic_rows()
    rows[0]["energy_per_inference_j"] = None  # n1: not measured
    rows.append({"network": "n5", "ms_per_image": 3.0, "top1": 50.0, "estimated": True})  # no energy at all
    out = paper.analyses(frame(*rows))
    r = only(out["accuracy_vs_energy"], batch=1)
    assert (r["n"], r["networks"]) == (3, ["n2", "n3", "n4"])
    assert (r["a"], r["b"], r["r2"]) == (pytest.approx(80), pytest.approx(0.2), 1.0)
    assert r["estimated"] is False  # n5 is estimated, but it has no energy and is not a point of the fit
    assert only(out["accuracy_vs_time"], batch=1)["n"] == 5


def test_estimated_energy_marks_the_fit():
    rows = hyperbolic_rows()
    rows[2]["estimated"] = True
    assert only(paper.analyses(frame(*rows))["accuracy_vs_energy"], batch=1)["estimated"] is True


def test_missing_top1_two_networks_and_identical_times():
    rows = hyperbolic_rows()
    for r in rows[2:]:
        r["top1"] = None  # an unknown network: no accuracy, so no point
    out = paper.analyses(frame(*rows, *[{**r, "batch": 2, "ms_per_image": 5.0} for r in hyperbolic_rows()],
                              {**hyperbolic_rows()[0], "batch": 4}))
    one = only(out["accuracy_vs_time"], batch=4)
    assert (one["a"], one["n"], one["reason"]) == (None, 1, "1 network; a fit needs 3")
    two = only(out["accuracy_vs_time"], batch=1)
    assert (two["a"], two["b"], two["r2"], two["n"]) == (None, None, None, 2)
    assert two["reason"] == "2 networks; a fit needs 3"
    assert two["networks"] == ["n1", "n2"]
    same = only(out["accuracy_vs_time"], batch=2)
    assert same["a"] is None and same["reason"] == "every point has the same ms_per_image; no line can be fitted"


def test_groups_are_split_by_board_power_mode_precision_backend_and_device():
    rows = [*hyperbolic_rows(), *hyperbolic_rows(board="board-b"), *hyperbolic_rows(power_mode="15W"),
            *hyperbolic_rows(precision="fp16"), *hyperbolic_rows(backend="tensorrt", device="gpu")]
    records = paper.analyses(frame(*rows))["accuracy_vs_time"]
    assert len(records) == 5
    assert all(r["n"] == 4 for r in records)
    keys = [tuple(r[k] for k in GROUP) for r in records]
    assert keys == sorted(keys)


def test_assumed_top1_is_left_out_of_the_accuracy_fits_unless_assumed():
    # fp16 with only the fp32 reference (assumed), beside one network whose fp16 top-1 was measured
    rows = [{**r, "assumed": r["network"] != "n1", "accuracy_source": "measured" if r["network"] == "n1" else "catalog"}
            for r in hyperbolic_rows(precision="fp16")]
    df = frame(*hyperbolic_rows(), *rows)
    out = paper.analyses(df)
    fp32, fp16 = only(out["accuracy_vs_time"], precision="fp32"), only(out["accuracy_vs_time"], precision="fp16")
    assert (fp32["n"], fp32["reason"]) == (4, None)
    assert (fp16["a"], fp16["n"], fp16["networks"]) == (None, 1, ["n1"])
    assert fp16["reason"] == ("1 network; a fit needs 3; 3 configurations with assumed top-1 left out (not measured "
                              "at this precision; --assume-accuracy uses it)")
    assert only(out["accuracy_vs_energy"], precision="fp16")["n"] == 1
    assumed = paper.analyses(df, assume_accuracy=True)
    fp16 = only(assumed["accuracy_vs_time"], precision="fp16")
    assert (fp16["a"], fp16["b"], fp16["n"], fp16["reason"]) == (pytest.approx(80), pytest.approx(20), 4, None)
    assert df["top1"].notna().all()  # the frame itself is left as it is


# -- ops vs time ---------------------------------------------------------------------------------------------------

def test_ops_vs_time_matches_linregress():
    rng = np.random.default_rng(3)
    gmacs = rng.uniform(0.1, 15, 12)
    ms = 1.5 + 0.9 * 2 * gmacs + rng.normal(0, 0.5, 12)
    df = frame(*[{"network": f"n{i}", "gmacs": g, "ms_per_image": t, "batch": 8} for i, (g, t) in
                 enumerate(zip(gmacs, ms))], {"network": "no-cost", "ms_per_image": 3.0, "batch": 8})
    r = only(paper.analyses(df)["ops_vs_time"], batch=8)
    ref = stats.linregress(2 * gmacs, ms)  # G-ops = 2 x GMACs
    assert r["slope_ms_per_gop"] == pytest.approx(ref.slope, rel=1e-10)
    assert r["intercept_ms"] == pytest.approx(ref.intercept, rel=1e-10)
    assert r["r2"] == pytest.approx(ref.rvalue ** 2, rel=1e-10)
    assert (r["n"], r["reason"]) == (12, None)  # the network without a cost is left out
    assert set(r) == {*GROUP, "batch", "slope_ms_per_gop", "intercept_ms", "r2", "n", "reason"}


# -- batch scaling -------------------------------------------------------------------------------------------------

def scaling_rows(gains: dict[str, float], shares: dict[str, float | None]) -> list[dict]:
    """Each network at batches 1, 4 and 16; ms per image falls from 10 × gain at batch 1 to 10 at batch 16."""
    rows = []
    for net, gain in gains.items():
        for batch, ms in ((1, 10.0 * gain), (4, 10.0 * (gain + 1) / 2), (16, 10.0)):
            rows.append({"network": net, "batch": batch, "ms_per_image": ms, "fc_macs_share": shares.get(net)})
    return rows


def test_batch_scaling_gain_per_network():
    rows = scaling_rows({"alexnet": 3.0, "resnet18": 1.2}, {"alexnet": 0.55})
    rows.append({"network": "single", "batch": 1, "ms_per_image": 4.0, "fc_macs_share": 0.1})  # one batch size
    records = paper.analyses(frame(*rows))["batch_scaling"]
    assert [r["network"] for r in records] == ["alexnet", "resnet18"]
    alex = records[0]
    assert (alex["batch_min"], alex["batch_max"]) == (1, 16)
    assert (alex["ms_per_image_at_min"], alex["ms_per_image_at_max"]) == (30.0, 10.0)
    assert alex["gain"] == pytest.approx(3.0)
    assert alex["fc_macs_share"] == 0.55
    assert records[1]["fc_macs_share"] is None  # unknown stays unknown
    assert set(alex) == {*GROUP, "network", "batch_min", "batch_max", "ms_per_image_at_min", "ms_per_image_at_max",
                         "gain", "fc_macs_share"}
    assert type(alex["batch_min"]) is int


def test_batch_scaling_summary_matches_pearsonr_and_spearmanr():
    gains = {"a": 1.1, "b": 1.5, "c": 1.4, "d": 2.8, "e": 3.1, "f": 1.3}
    shares = {"a": 0.01, "b": 0.10, "c": 0.10, "d": 0.60, "e": 0.55, "f": 0.02}  # a tie in the shares
    summary = paper.analyses(frame(*scaling_rows(gains, shares)))["batch_scaling_summary"]
    r = only(summary, board="board-a")
    x, y = list(shares.values()), list(gains.values())
    assert r["pearson_r"] == pytest.approx(stats.pearsonr(x, y)[0], rel=1e-10)
    assert r["spearman_rho"] == pytest.approx(stats.spearmanr(x, y)[0], rel=1e-10)
    assert (r["n"], r["reason"]) == (6, None)
    assert r["finding"].startswith("Networks with more FC MACs gain more from batching")
    assert set(r) == {*GROUP, "n", "pearson_r", "spearman_rho", "finding", "reason"}


def test_batch_scaling_summary_negative_none_and_too_few():
    gains = {"a": 3.0, "b": 2.0, "c": 1.5, "d": 1.1}
    shares = {"a": 0.0, "b": 0.2, "c": 0.4, "d": 0.6}
    down = only(paper.analyses(frame(*scaling_rows(gains, shares)))["batch_scaling_summary"], board="board-a")
    assert down["spearman_rho"] == pytest.approx(-1.0)
    assert down["finding"].startswith("Too few networks")  # 4 networks cannot be significant at 5%
    gains5, shares5 = {**gains, "e": 1.0}, {**shares, "e": 0.8}
    down5 = only(paper.analyses(frame(*scaling_rows(gains5, shares5)))["batch_scaling_summary"], board="board-a")
    assert "gain less" in down5["finding"] and "significant at 5%" in down5["finding"]
    few = only(paper.analyses(frame(*scaling_rows(gains, {"a": 0.1, "b": 0.3})))["batch_scaling_summary"],
               board="board-a")
    assert (few["n"], few["pearson_r"], few["spearman_rho"]) == (2, None, None)
    assert few["reason"].startswith("2 networks") and "needs 3" in few["reason"]
    assert few["finding"].startswith("Cannot say")
    same = only(paper.analyses(frame(*scaling_rows(gains, dict.fromkeys(gains, 0.3))))["batch_scaling_summary"],
                board="board-a")
    assert same["spearman_rho"] is None and same["reason"] == "every network has the same FC MAC share"


def test_batch_scaling_no_clear_link():
    gains = {"a": 2.0, "b": 1.0, "c": 1.5, "d": 2.0, "e": 1.0}
    shares = {"a": 0.1, "b": 0.2, "c": 0.3, "d": 0.4, "e": 0.5}
    r = only(paper.analyses(frame(*scaling_rows(gains, shares)))["batch_scaling_summary"], board="board-a")
    assert abs(r["spearman_rho"]) < 0.5
    assert r["finding"].startswith("No clear link") and "needs |rho| >= 1.000" in r["finding"]


@pytest.mark.parametrize("n, critical", [(4, None), (5, 1.0), (11, 0.618), (20, 0.447), (101, 0.196)])
def test_rho_critical(n, critical):
    assert paper.rho_critical(n) == (None if critical is None else pytest.approx(critical))


# -- accuracy density ----------------------------------------------------------------------------------------------

def catalog_row(name: str, spelled: str | None = None, **extra) -> dict:
    ref = catalog.lookup(name)
    return {"network": spelled or name, "top1": ref.top1, "params": ref.params_m * 1e6, **extra}


def test_density_and_ratios_on_catalog_values():
    rows = [catalog_row("googlenet", "GoogLeNet"), catalog_row("googlenet", batch=8), catalog_row("alexnet"),
            catalog_row("vgg16", "VGG-16"), {"network": "mystery", "top1": 50.0}]  # no params: no density
    out = paper.analyses(frame(*rows, board="b1"), energy="gross")
    density = out["accuracy_density"]
    assert [r["network"] for r in density] == ["GoogLeNet", "alexnet", "VGG-16"]  # densest first, one row each
    g, a, v = (catalog.lookup(n) for n in ("googlenet", "alexnet", "vgg16"))
    assert density[0]["top1"] == g.top1
    assert density[0]["params_m"] == pytest.approx(g.params_m)
    assert density[0]["density"] == pytest.approx(69.778 / 6.62)
    ratios = out["density_ratios"]
    expected_alexnet = (g.top1 / g.params_m) / (a.top1 / a.params_m)
    expected_vgg16 = (g.top1 / g.params_m) / (v.top1 / v.params_m)
    assert ratios["googlenet/alexnet"] == pytest.approx(expected_alexnet) == pytest.approx(11.394, abs=1e-3)
    assert ratios["googlenet/vgg16"] == pytest.approx(expected_vgg16) == pytest.approx(20.371, abs=1e-3)
    assert ratios["seed"] == {"googlenet/alexnet": 10, "googlenet/vgg16": 20}
    assert set(density[0]) == {"network", "top1", "params_m", "density"}


def test_density_is_per_network_across_boards_and_ratio_missing_without_vgg16():
    rows = [catalog_row("googlenet", board="b1"), catalog_row("googlenet", board="b2"), catalog_row("alexnet")]
    out = paper.analyses(frame(*rows))
    assert len(out["accuracy_density"]) == 2
    assert out["density_ratios"]["googlenet/vgg16"] is None
    assert out["density_ratios"]["googlenet/alexnet"] == pytest.approx(11.394, abs=1e-3)


# -- power ---------------------------------------------------------------------------------------------------------

def power_rows(values: dict[tuple[str, int], float], idle: float | None = 2.0) -> list[dict]:
    return [{"network": net, "batch": batch, "power_w": p, "idle_power_w": idle,
             "net_power_w": None if idle is None else p - idle} for (net, batch), p in values.items()]


def test_power_variation_and_eta2_by_hand():
    # Net power: A 8, 10 and B 12, 14 W at batch 1, 2. Mean 11, SS_tot = 9 + 1 + 1 + 9 = 20.
    # Batch means 10 and 12: SS = 2·1 + 2·1 = 4, η² 0.2. Network means 9 and 13: SS = 2·4 + 2·4 = 16, η² 0.8.
    values = {("A", 1): 10.0, ("A", 2): 12.0, ("B", 1): 14.0, ("B", 2): 16.0}
    r = only(paper.analyses(frame(*power_rows(values)))["power"], board="board-a")
    assert (r["basis"], r["n"], r["mean_w"]) == ("net", 4, pytest.approx(11.0))
    assert r["stdev_w"] == pytest.approx(np.std([8, 10, 12, 14], ddof=1))
    assert r["cov"] == pytest.approx(r["stdev_w"] / 11.0)
    assert r["eta2_batch"] == pytest.approx(0.2)
    assert r["eta2_network"] == pytest.approx(0.8)
    assert r["independent"] is False and "0.10" in r["rule"]
    assert (r["estimated"], r["reason"]) == (False, None)
    assert set(r) == {*GROUP, "basis", "n", "mean_w", "stdev_w", "cov", "eta2_batch", "eta2_network",
                      "independent", "rule", "estimated", "reason"}


def test_steady_power_is_independent_and_gross_when_some_lack_idle():
    values = {("A", 1): 11.8, ("A", 2): 12.1, ("B", 1): 11.5, ("B", 2): 12.0, ("C", 1): 11.9}
    rows = power_rows(values)
    rows[0]["net_power_w"] = None
    rows.append({"network": "D", "batch": 1, "estimated": True})  # no power: not a configuration of this analysis
    r = only(paper.analyses(frame(*rows))["power"], board="board-a")
    assert (r["basis"], r["n"]) == ("gross", 5)
    assert r["mean_w"] == pytest.approx(np.mean(list(values.values())))
    assert r["independent"] is True
    assert r["estimated"] is False


def test_power_with_too_few_configurations_or_one_batch():
    r = only(paper.analyses(frame(*power_rows({("A", 1): 10.0, ("B", 1): 12.0}, idle=None)))["power"],
             board="board-a")
    assert (r["basis"], r["n"], r["mean_w"], r["independent"], r["eta2_batch"]) == ("gross", 2, 11.0, None, None)
    assert r["reason"] == "2 configurations with power; judging needs 3"
    one_batch = {("A", 1): 10.0, ("B", 1): 12.0, ("C", 1): 14.0}
    r = only(paper.analyses(frame(*power_rows(one_batch, idle=None), estimated=True))["power"], board="board-a")
    assert r["eta2_batch"] is None  # batch never varied: it cannot explain anything
    assert r["eta2_network"] == pytest.approx(1.0)
    assert r["estimated"] is True


# -- memory --------------------------------------------------------------------------------------------------------

def test_memory_vs_batch_exact_line_per_network_and_kind():
    rows = [{"network": "n1", "batch": b, "memory_bytes": 2e8 + 1.5e7 * b, "memory_kind": "backend"}
            for b in (1, 2, 4, 8)]
    rows += [{"network": "n2", "batch": b, "memory_bytes": 1e8, "memory_kind": "backend"} for b in (1, 2)]
    rows += [{"network": "n3", "batch": b, "memory_bytes": 5e7 * b, "memory_kind": k}
             for b, k in ((1, "backend"), (2, "process_rss_delta"), (4, "backend"), (8, "process_rss_delta"))]
    records = paper.analyses(frame(*rows))["memory_vs_batch"]
    assert [r["network"] for r in records] == ["n1"]  # n2: 2 batch sizes; n3: 2 per kind, never mixed
    r = records[0]
    assert r["slope_bytes_per_image"] == pytest.approx(1.5e7)
    assert r["intercept_bytes"] == pytest.approx(2e8)
    assert (r["r2"], r["n"], r["memory_kind"], r["reason"]) == (1.0, 4, "backend", None)
    assert set(r) == {*GROUP, "network", "memory_kind", "slope_bytes_per_image", "intercept_bytes", "r2", "n",
                      "reason"}


def test_memory_vs_params_at_the_smallest_batch():
    params = {"n1": 5e6, "n2": 25e6, "n3": 60e6, "n4": 138e6}
    rows = [{"network": n, "batch": 2, "params": p, "memory_bytes": 2e8 + 1.3 * p, "memory_kind": "backend"}
            for n, p in params.items()]
    rows += [{"network": n, "batch": 16, "params": p, "memory_bytes": 9e9, "memory_kind": "backend"}
             for n, p in params.items()]  # a larger batch: not this analysis
    rows += [{"network": "n5", "batch": 1, "params": 1e6}]  # no memory: does not set the smallest batch
    r = only(paper.analyses(frame(*rows))["memory_vs_params"], board="board-a")
    assert r["batch"] == 2
    assert r["slope_bytes_per_param"] == pytest.approx(1.3)
    assert r["intercept_bytes"] == pytest.approx(2e8)
    assert (r["r2"], r["n"], r["reason"]) == (1.0, 4, None)
    assert set(r) == {*GROUP, "memory_kind", "batch", "slope_bytes_per_param", "intercept_bytes", "r2", "n", "reason"}
    two = only(paper.analyses(frame(*rows[:2]))["memory_vs_params"], board="board-a")
    assert (two["slope_bytes_per_param"], two["reason"]) == (None, "2 networks; a fit needs 3")


# -- the whole output ----------------------------------------------------------------------------------------------

def test_output_is_json_ready_even_from_missing_and_infinite_numbers():
    rows = [*hyperbolic_rows(), *scaling_rows({"a": 2.0, "b": 1.5, "c": 1.2}, {"a": 0.4, "b": 0.2, "c": 0.1}),
            *power_rows({("A", 1): 10.0, ("A", 2): 11.0, ("B", 1): 10.5}),
            {"network": "x", "batch": 1, "ms_per_image": math.inf, "top1": 60.0, "energy_per_inference_j": math.inf},
            {"network": "y", "batch": 1, "precision": None, "board": None}, {"network": "z", "batch": 3}]
    out = paper.analyses(frame(*rows))
    json.dumps(out, allow_nan=False)
    assert plain(out)
    assert set(out) == {"accuracy_vs_time", "accuracy_vs_energy", "ops_vs_time", "batch_scaling",
                        "batch_scaling_summary", "accuracy_density", "density_ratios", "power", "memory_vs_batch",
                        "memory_vs_params"}
    assert only(out["accuracy_vs_time"], board="board-a", batch=1)["n"] == 4  # infinite time is not a point
    assert any(r["board"] is None for r in out["accuracy_vs_time"])  # a missing key is a value, shown as None


def test_empty_frame():
    out = paper.analyses(analysis.table([]))
    assert all(v == [] for k, v in out.items() if k != "density_ratios")
    assert out["density_ratios"] == {"googlenet/alexnet": None, "googlenet/vgg16": None,
                                     "seed": {"googlenet/alexnet": 10, "googlenet/vgg16": 20}}
    json.dumps(out, allow_nan=False)


def test_all_groups_at_once_match_one_group_at_a_time():
    """The vectorised per-cell sums give what pandas groupby and the one-fit helpers give, cell by cell."""
    rng = np.random.default_rng(4)
    rows = []
    for board in ("b1", "b2"):
        for mode in ("MAXN", "15W"):
            for precision in ("fp16", "int8"):
                for k in range(6):
                    for batch in (1, 4, 16):
                        ms = rng.uniform(0.5, 20)
                        rows.append({"board": board, "power_mode": mode, "precision": precision, "network": f"n{k}",
                                     "batch": batch, "ms_per_image": ms, "top1": rng.uniform(55, 80),
                                     "energy_per_inference_j": ms * rng.uniform(0.005, 0.02),
                                     "gmacs": rng.uniform(0.1, 10), "power_w": rng.uniform(8, 14),
                                     "fc_macs_share": k / 10})
    for r in rng.choice(rows, 40, replace=False):  # holes everywhere, never read as 0
        r[rng.choice(["ms_per_image", "top1", "energy_per_inference_j", "gmacs", "power_w"])] = None
    df = frame(*rows)
    out = paper.analyses(df)
    keys = [*GROUP, "batch"]
    by_cell = {tuple(r[k] for k in keys): r for r in out["accuracy_vs_energy"]}
    ops = {tuple(r[k] for k in keys): r for r in out["ops_vs_time"]}
    assert len(by_cell) == len(ops) == 24
    for cell, sub in df.groupby(keys):
        ref = paper.fit_hyperbolic(sub["energy_per_inference_j"].to_numpy(), sub["top1"].to_numpy())
        got = by_cell[cell]
        assert (got["n"], got["reason"]) == (ref["n"], ref["reason"])
        assert (got["a"], got["b"], got["r2"]) == (pytest.approx(ref["a"]), pytest.approx(ref["b"]),
                                                   pytest.approx(ref["r2"]))
        ref = paper.fit_linear(sub["gops"].to_numpy(), sub["ms_per_image"].to_numpy())
        assert (ops[cell]["slope_ms_per_gop"], ops[cell]["n"]) == (pytest.approx(ref["slope"]), ref["n"])
    power = {tuple(r[k] for k in GROUP): r for r in out["power"]}
    for cell, sub in df.dropna(subset=["power_w"]).groupby(GROUP):
        assert power[cell]["n"] == len(sub)
        assert power[cell]["stdev_w"] == pytest.approx(sub["power_w"].std())
    scaling = {tuple(r[k] for k in [*GROUP, "network"]): r for r in out["batch_scaling"]}
    for cell, sub in df.dropna(subset=["ms_per_image"]).groupby([*GROUP, "network"]):
        if sub["batch"].nunique() < 2:
            assert cell not in scaling
            continue
        ms = sub.set_index("batch")["ms_per_image"]
        assert scaling[cell]["gain"] == pytest.approx(ms.loc[ms.index.min()] / ms.loc[ms.index.max()])
