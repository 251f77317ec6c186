"""The ONNX Runtime backend: real inference on a generated model, and the errors a user can cause."""

import os

import onnxruntime
import pytest

from dnnprof.agent.backends import BACKENDS, get_backend
from dnnprof.agent.backends.onnxruntime import OnnxRuntimeBackend
from dnnprof.shared import onnxfile
from dnnprof.shared.errors import UserError


@pytest.fixture(scope="module")
def backend():
    return get_backend("onnxruntime", threads=1)


@pytest.fixture(scope="module")
def model(model_path):
    return onnxfile.load(model_path)


@pytest.mark.parametrize("name", ["auto", "onnxruntime", "ort", " ONNXRuntime "])
def test_get_backend_names(name):
    engine = get_backend(name)
    assert isinstance(engine, OnnxRuntimeBackend)
    assert engine.name == "onnxruntime" and engine.name in BACKENDS
    assert engine.version == onnxruntime.__version__
    assert engine.threads == (os.cpu_count() or 1)


def test_get_backend_unknown():
    with pytest.raises(UserError) as info:
        get_backend("nope")
    message = str(info.value)
    assert "'nope'" in message and "onnxruntime" in message and "\n" not in message


@pytest.mark.parametrize("batch", [1, 3])
def test_real_inference(backend, model, batch):
    runner = backend.prepare(model, batch, "fp32", seed=1)
    assert runner.threads == 1 and runner.device == "cpu"
    try:
        for _ in range(2):
            runner.infer()
        # the input is random, not zeros, and has the batch's shape
        (feed,) = runner._feeds.values()
        assert feed.shape == (batch, 3, 224, 224) and feed.std() > 0.5
        (logits,) = runner._session.run(None, runner._feeds)
        assert logits.shape == (batch, 1000)
    finally:
        runner.close()


def test_same_seed_same_input(backend, model):
    a, b, c = (backend.prepare(model, 1, "fp32", seed=s) for s in (7, 7, 8))
    (xa,), (xb,), (xc,) = (r._feeds.values() for r in (a, b, c))
    assert (xa == xb).all() and not (xa == xc).all()


@pytest.mark.parametrize("precision", ["bf16", "fp8", "FP32"])
def test_other_precisions_are_a_user_error(backend, model, precision):
    with pytest.raises(UserError) as info:
        backend.prepare(model, 1, precision)
    assert repr(precision) in str(info.value) and "fp32, fp16, int8" in str(info.value)


def test_fp16_and_int8_run_the_converted_model_and_say_so(digits, tmp_path):
    from dnnprof.agent.models import manifest

    [model] = manifest.load(digits.manifest)
    backend = get_backend("onnxruntime", threads=1, calibration=digits.calibration, cache_dir=tmp_path)
    assert backend.calibration_sha256 is not None and backend.precision_method("int8") == "onnx_converted"
    fp32, fp16, int8 = (backend.prepare(model, 4, p) for p in ("fp32", "fp16", "int8"))
    assert (fp32.precision_method, fp32.converted_sha256) == ("as_exported", None)
    assert fp16.precision_method == int8.precision_method == "onnx_converted"
    assert fp16.converted_sha256 != int8.converted_sha256 and int8.calibration.startswith("images:")
    assert not int8.timing_only and fp16.calibration is None
    assert backend.conversions[(model.sha256, "int8")].model.sha256 == int8.converted_sha256
    import numpy as np

    data = np.zeros((4, 3, 8, 8), np.float32)
    assert fp32.predict(data).shape == fp16.predict(data).shape == int8.predict(data).shape == (4, 10)
    assert len(list((tmp_path / "converted").glob("*.onnx"))) == 2  # kept under the cache folder given


def test_fixed_batch_model_at_another_batch(backend, tmp_path, make_onnx):
    fixed = onnxfile.load(make_onnx(tmp_path / "fixed.onnx", batch=1))
    backend.prepare(fixed, 1, "fp32").infer()
    with pytest.raises(UserError, match="fixed batch size of 1"):
        backend.prepare(fixed, 2, "fp32")


def test_model_onnx_parses_but_onnxruntime_cannot_load(backend, tmp_path, make_onnx):
    path = make_onnx(tmp_path / "unknown_op.onnx", op="NoSuchOp")
    model = onnxfile.load(path)  # onnx reads the graph fine
    with pytest.raises(UserError) as info:
        backend.prepare(model, 1, "fp32")
    message = str(info.value)
    assert message.startswith("onnxruntime cannot load") and str(path) in message
    assert "\n" not in message


def test_model_file_removed_after_load(backend, tmp_path, make_onnx):
    path = make_onnx(tmp_path / "gone.onnx")
    model = onnxfile.load(path)
    path.unlink()
    with pytest.raises(UserError, match="onnxruntime cannot load"):
        backend.prepare(model, 1, "fp32")


def test_the_option_rule_names_what_a_backend_does_not_take():
    from dnnprof.agent.backends import foreign_options

    assert foreign_options("onnxruntime", threads=2, dla_core=None, rebuild=False) == []
    assert foreign_options("onnxruntime", dla_core=0, rebuild=True) == ["dla_core", "rebuild"]
    assert foreign_options("tensorrt", threads=1, engine_cache="cache", dla_core=1) == ["threads"]
