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
