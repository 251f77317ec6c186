"""``dnnhost predict`` as a user runs it: a real generated network counted here, predicted from a real recorded
sweep imported into a store; and each user error as one line."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from dnnprof.shared import schema

ZOO = Path(__file__).parents[2] / "docs/examples/dev-2c-predict-results.jsonl"


@pytest.fixture
def db(tmp_path, run):
    path = tmp_path / "results.sqlite"
    proc = run("import", ZOO, "--db", path)
    assert proc.returncode == 0, proc.stderr
    return path


def test_predict_json_for_a_network_measured_there_leaves_it_out_and_shows_it(run, db, model_path):
    proc = run("predict", model_path, "--db", db, "--json")
    assert proc.returncode == 0, proc.stderr
    data = json.loads(proc.stdout)
    assert data["network"] == "shufflenet_v2_x0_5" and data["profile"]["activation_mb"] > 0
    assert [p["batch"] for p in data["predictions"]] == [1, 2, 4, 8]
    for p in data["predictions"]:
        assert p["refused"] is None and "shufflenet_v2_x0_5" not in p["networks"] and len(p["networks"]) == 14
        assert p["features"] == ["nonfc_gmacs", "fc_gmacs", "activation_mb", "params_m"]
        assert p["estimated"]  # this machine's energy is the labelled estimate
        predicted, measured = p["predicted"]["ms_per_image"], p["measured"]["ms_per_image"]
        assert abs(predicted - measured) / measured < 1.0  # the smallest network: the hardest to predict
        assert 0 <= p["cv"]["ms_per_image"]["median"] <= p["cv"]["ms_per_image"]["worst"]
        assert p["baseline_cv"]["ms_per_image"]["n"] == 14


def test_predict_text_with_a_budget(run, db, model_path):
    proc = run("predict", model_path, "--db", db, "--batch", "8", "--energy-budget", "100mJ")
    assert proc.returncode == 0, proc.stderr
    assert "shufflenet_v2_x0_5" in proc.stdout and "not measured" in proc.stdout
    assert "leave-one-network-out" in proc.stdout and "fits" in proc.stdout
    assert "60.55%" in proc.stdout  # the catalog's top-1, found by the file's name


def test_predict_refuses_with_too_few_networks(run, tmp_path, model_path, msgs, one_error_line):
    results = [m for m in map(lambda line: schema.decode(line.encode()), ZOO.read_text().splitlines())
               if isinstance(m, schema.Result) and m.batch == 1][:4]
    path = tmp_path / "few.jsonl"
    path.write_bytes(b"".join(schema.encode(r) + b"\n" for r in results))
    db = tmp_path / "few.sqlite"
    assert run("import", path, "--db", db).returncode == 0
    line = one_error_line(run("predict", model_path, "--db", db))
    assert "a prediction needs 6" in line and "measure" in line and "more" in line


@pytest.mark.parametrize("args, words", [
    (["--board", "nope"], "no board 'nope' in this store (boards here: dev-2c)"),
    (["--batch", "3"], "no results at batch 3"),
    (["--top1", "150"], "--top1 150"),
    (["--energy-budget", "5 parsecs"], "5 parsecs"),
], ids=["board", "batch", "top1", "unit"])
def test_predict_bad_options_are_one_line(run, db, model_path, one_error_line, args, words):
    assert words in one_error_line(run("predict", model_path, "--db", db, *args))


def test_predict_bad_model_is_one_line(run, db, tmp_path, one_error_line):
    garbage = tmp_path / "garbage.onnx"
    garbage.write_bytes(b"not a model")
    assert "is not an ONNX model" in one_error_line(run("predict", garbage, "--db", db))
    assert "does not exist" in one_error_line(run("predict", tmp_path / "missing.onnx", "--db", db))
