"""export.table / export.write: the aggregated table with the report's own columns, in each format, read back."""

from __future__ import annotations

import math

import msgspec
import pandas as pd
import pytest

from dnnprof.host import analysis, export
from dnnprof.shared.errors import UserError


def frame():
    return analysis.table([
        {"board": "b", "network": "resnet18", "batch": 1, "top1": 69.76, "energy_per_inference_j": 0.010,
         "power_w": 4.0, "throughput_ips": 400.0, "estimated": True},
        {"board": "b", "network": "resnet50", "batch": 2, "top1": 76.13, "energy_per_inference_j": 0.040,
         "power_w": 8.0, "throughput_ips": 200.0},
        {"board": "b", "network": "vgg16", "batch": 1, "top1": 71.59, "energy_per_inference_j": None},
    ])


def test_table_adds_the_basis_energy_and_the_flags():
    t = export.table(frame(), analysis.Limits(energy_budget_j=0.05), analysis.Basis(per="batch"))
    assert list(t["energy_j"][:2]) == [pytest.approx(0.010), pytest.approx(0.080)]
    assert math.isnan(t["energy_j"][2])
    assert list(t["within_limits"]) == [True, False, False]  # resnet50 needs 80 mJ a batch; vgg16 has no energy
    assert list(t["on_frontier"]) == [True, True, False]
    assert set(t["energy_basis"]) == {"gross energy per batch"}
    assert t.columns.get_loc("energy_basis") == t.columns.get_loc("energy_j") + 1


@pytest.mark.parametrize("suffix, read", [(".csv", pd.read_csv), (".json", pd.read_json),
                                          (".parquet", pd.read_parquet), (".CSV", pd.read_csv)])
def test_every_format_reads_back_with_missing_kept_missing(tmp_path, suffix, read):
    t = export.table(frame(), analysis.Limits(power_budget_w=5.0), analysis.Basis())
    path = tmp_path / "deep" / f"table{suffix}"
    export.write(t, path)
    back = read(path)
    assert list(back["network"]) == ["resnet18", "resnet50", "vgg16"]
    assert back["energy_per_inference_j"][:2].tolist() == pytest.approx([0.010, 0.040])
    assert pd.isna(back["energy_per_inference_j"][2]) and pd.isna(back["power_w"][2])  # never 0
    assert [bool(v) for v in back["within_limits"]] == [True, False, False]
    assert [bool(v) for v in back["estimated"]] == [True, False, False]


def test_an_unknown_format_is_refused_before_anything_is_written(tmp_path):
    with pytest.raises(UserError, match=r"\.csv, \.json, \.parquet"):
        export.check(tmp_path / "table.xlsx")
    with pytest.raises(UserError, match="must end in"):
        export.write(frame(), tmp_path / "table")
    assert list(tmp_path.iterdir()) == []


@pytest.mark.parametrize("suffix, read", [(".csv", pd.read_csv), (".json", pd.read_json),
                                          (".parquet", pd.read_parquet)])
def test_every_format_carries_where_the_accuracy_comes_from(tmp_path, msgs, suffix, read):
    results = [msgs.result("resnet50", 1, 0.040),
               msgs.measured(msgs.result("resnet50", 1, 0.010, precision="int8"), 75.1, 92.4, images=500),
               msgs.result("resnet50", 1, 0.020, precision="fp16")]
    results[1] = msgspec.structs.replace(results[1], precision_method="onnx_converted")
    df = analysis.latest(analysis.frame(results))
    path = tmp_path / f"table{suffix}"
    export.write(export.table(df, analysis.Limits(energy_budget_j=0.030), analysis.Basis()), path)
    back = read(path).set_index("precision")
    assert list(back.loc[["fp16", "fp32", "int8"], "accuracy_source"]) == ["catalog", "catalog", "measured"]
    assert [bool(v) for v in back.loc[["fp16", "fp32", "int8"], "assumed"]] == [True, False, False]
    assert [bool(v) for v in back.loc[["fp16", "fp32", "int8"], "ranked"]] == [False, True, True]
    assert back.loc["int8", "top1_source"] == "measured on imagenet-val (500 images)"
    assert back.loc["fp16", "top1_source"].startswith("assumed: the fp32 reference")
    assert (back.loc["int8", "top1"], back.loc["int8", "top5"], back.loc["int8", "accuracy_images"]) == (
        75.1, 92.4, 500)
    assert (back.loc["int8", "top1_ci_low"], back.loc["int8", "top1_ci_high"]) == (71.1, 79.1)
    assert pd.isna(back.loc["fp32", "accuracy_images"]) and pd.isna(back.loc["fp32", "top1_ci_low"])  # never 0
    assert back.loc["int8", "precision_method"] == "onnx_converted" and pd.isna(back.loc["fp32", "precision_method"])
    assert bool(back.loc["int8", "on_frontier"]) and not bool(back.loc["fp16", "on_frontier"])
