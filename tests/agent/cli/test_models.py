"""``dnnagent models list | inspect | generate`` through the real entry point."""

import json

import pytest

from dnnprof.agent.models import zoo


def test_models_generate_writes_the_demo_set(demo_dir):
    assert sorted(p.name for p in demo_dir.iterdir()) == sorted(f"{n}.onnx" for n in zoo.DEMO_SET)


def test_models_generate_unknown_name(workdir, dnnagent, one_error_line):
    proc = dnnagent("models", "generate", "nope", "--out", workdir / "none", cwd=workdir)
    line = one_error_line(proc)
    assert "'nope'" in line
    assert all(name in line for name in zoo.names())
    assert not (workdir / "none").exists()


def test_models_list_json(workdir, dnnagent):
    proc = dnnagent("models", "list", "--json", cwd=workdir)
    assert proc.returncode == 0, proc.stderr
    rows = json.loads(proc.stdout)
    assert [r["name"] for r in rows] == zoo.names()
    assert all(r["top1"] and 0 < r["top1"] <= 100 for r in rows)
    assert {r["name"] for r in rows if r["demo"]} == set(zoo.DEMO_SET)


def test_models_inspect_json_and_text(demo_dir, workdir, dnnagent):
    proc = dnnagent("models", "inspect", demo_dir / "resnet18.onnx", demo_dir / "squeezenet1_1.onnx", "--json",
                    cwd=workdir)
    assert proc.returncode == 0, proc.stderr
    resnet, squeeze = json.loads(proc.stdout)
    assert resnet["params"] == zoo.count_params(zoo.build("resnet18"))
    assert resnet["macs"] == pytest.approx(1.81e9, rel=0.01) and resnet["flops"] == 2 * resnet["macs"]
    assert resnet["by_kind"]["fully_connected"]["layers"] == 1 and squeeze["by_kind"]["fully_connected"]["layers"] == 0
    assert resnet["input_shape"] == [3, 224, 224] and resnet["unsupported"] == []
    text = dnnagent("models", "inspect", demo_dir, cwd=workdir)  # a directory: every model in it
    assert text.returncode == 0 and text.stdout.count("FLOPs") == len(zoo.DEMO_SET)


def test_models_inspect_bad_file(workdir, dnnagent, one_error_line):
    junk = workdir / "junk.onnx"
    junk.write_text("not a model\n")
    line = one_error_line(dnnagent("models", "inspect", junk, cwd=workdir))
    assert "is not an ONNX model" in line


def test_models_convert_writes_a_checked_model(digits, tmp_path, dnnagent):
    proc = dnnagent("models", "convert", digits.model, "--precision", "int8", "--calibration", digits.calibration,
                    "--out", tmp_path / "int8", "--cache", tmp_path / "cache", "--json", cwd=tmp_path)
    assert proc.returncode == 0, proc.stderr
    report = json.loads(proc.stdout)
    assert report["output"] == str(tmp_path / "int8" / "digits_int8.onnx") and not report["timing_only"]
    assert report["check"]["on"] == "calibration images" and report["check"]["images"] == 200
    assert report["check"]["top1_agreement"] >= 90 and report["cached"] is False
    text = dnnagent("models", "convert", digits.model, "--precision", "fp16", "--out", tmp_path / "fp16",
                    "--cache", tmp_path / "cache", cwd=tmp_path)
    assert text.returncode == 0, text.stderr
    flat = " ".join(text.stderr.split())
    assert "wrote" in flat and "top-1 agreement with fp32" in flat and "largest logit difference" in flat


@pytest.mark.parametrize(("args", "message"), [
    (["--precision", "fp8"], "convert writes fp16 or int8"),
    (["--precision", "fp16", "--calibration", "{dir}"], "--calibration calibrates int8"),
    (["--precision", "int8", "--calibration", "{dir}/nope"], "calibration folder"),
    (["--precision", "fp16", "--preprocessing", "vgg"], "unknown preprocessing 'vgg'"),
    (["--precision", "fp16", "--preprocessing", "inception"], "preprocessing crops 299x299"),
])
def test_models_convert_bad_input_is_one_line(digits, tmp_path, dnnagent, one_error_line, args, message):
    argv = [a.format(dir=tmp_path) for a in args]
    proc = dnnagent("models", "convert", digits.model, *argv, "--out", tmp_path / "o", cwd=tmp_path)
    assert message in one_error_line(proc)
