"""fp16 and int8 on TensorRT by either route (the fakes of tests/fakes/, every version they imitate): builder flags on
the exported model (8.5 to 10.x), or the model converted by agent/models/convert.py parsed as a strongly typed network
(10.x by choice, 11.x always); the engine cache keeps the routes apart; real inputs fed to the engine that was timed.
"""

from __future__ import annotations

import dataclasses
import hashlib
import json

import numpy as np
import pytest
from onnx import TensorProto

from dnnprof.agent.backends.tensorrt import PRECISION_METHODS
from dnnprof.agent.measure import profiler
from dnnprof.agent.measure.sweep import Sweep
from dnnprof.shared import onnxfile, schema
from dnnprof.shared.errors import UserError

VERSIONS = ["8.5.2", "8.6.2", "10.0.1", "10.1.0", "10.3.0", "10.13.3", "10.16.1", "11.0.0", "11.4.0"]
SHORT = profiler.Settings(warmup_min_s=0.0, warmup_min_iterations=1, warmup_max_s=0.02, window_min_s=0.01,
                          window_max_s=0.03, min_iterations=2, min_power_samples=0, latency_ci=0.5,
                          check_every_s=0.01, idle_s=0)


def routes(version: str) -> dict[str, str | None]:
    """precision_method asked → the route taken on ``version``, or None where it is refused."""
    major = int(version.split(".")[0])
    return {"auto": "builder_flags" if major < 11 else "onnx_converted",
            "builder_flags": "builder_flags" if major < 11 else None,
            "onnx_converted": "onnx_converted" if major >= 10 else None}


def sha256(path) -> str:
    return hashlib.sha256(path.read_bytes()).hexdigest()


# -- which route where ------------------------------------------------------------------------------------------------


@pytest.mark.parametrize("method", PRECISION_METHODS)
@pytest.mark.parametrize("version", VERSIONS)
def test_each_route_on_each_version(install_fakes, make_backend, tiny, version, method, balanced):
    trt, cuda = install_fakes(version)
    route = routes(version)[method]
    if route is None:
        with pytest.raises(UserError) as refused:
            make_backend(precision_method=method)
        message = str(refused.value)
        assert "\n" not in message and f"TensorRT {version}" in message and "--precision-method" in message
        return
    backend = make_backend(precision_method=method)
    assert backend.precision_route == route
    assert backend.precision_method("fp32") == "as_exported" and backend.precision_method("int8") == route
    for precision in ("fp32", "fp16", "int8"):
        runner = backend.prepare(tiny, 2, precision)
        build = trt._fake.last_build
        expected = "as_exported" if precision == "fp32" else route
        assert runner.precision_method == expected == backend.precision_method(precision)
        converted = expected == "onnx_converted"
        assert build["strongly_typed"] == (converted or version.startswith("11."))
        if converted:
            # the converted file, parsed as it is: no precision flag, no calibrator
            assert build["flags"] == [] and not build["calibrator"] and build["network_precision"] == precision
            assert trt._fake.parsed[-1] != str(tiny.path)
            assert runner.converted_sha256 == sha256(type(tiny.path)(trt._fake.parsed[-1]))
        else:
            assert trt._fake.parsed[-1] == str(tiny.path) and build["network_precision"] == "fp32"
            assert runner.converted_sha256 is None
            assert build["flags"] == ({"fp32": [], "fp16": ["FP16"], "int8": ["INT8"]}[precision])
        if precision == "int8":
            assert runner.calibration == "random" and runner.timing_only
        runner.infer()
        runner.close()
    assert not any(name.startswith(("EXPLICIT_BATCH", "device_memory_size")) for name in trt._fake.deprecated_used)
    assert balanced(cuda)


def test_an_unknown_precision_method(install_fakes, make_backend):
    install_fakes("10.3.0")
    with pytest.raises(UserError, match="precision method 'explicit' is not one of auto, builder_flags, "
                                        "onnx_converted"):
        make_backend(precision_method="explicit")


@pytest.mark.parametrize("version", ["8.5.2", "8.6.2"])
def test_8x_refuses_the_converted_route_in_one_line(install_fakes, make_backend, version):
    trt, _ = install_fakes(version)
    with pytest.raises(UserError) as refused:
        make_backend(precision_method="onnx_converted")
    assert str(refused.value) == (f"TensorRT {version} cannot build strongly typed networks, which the converted ONNX "
                                  "models need (TensorRT 10.0 and newer can): use --precision-method builder_flags "
                                  "(or auto) on this TensorRT")
    assert trt._fake.build_calls == 0


def test_11x_refuses_builder_flags_in_one_line(install_fakes, make_backend):
    install_fakes("11.0.0")
    with pytest.raises(UserError) as refused:
        make_backend(precision_method="builder_flags")
    assert str(refused.value) == ("TensorRT 11.0.0 has no FP16 / INT8 builder flags (from TensorRT 11 every network is "
                                  "strongly typed): use --precision-method onnx_converted (or auto) for fp16 and int8")


# -- TensorRT 11: fp16 and int8 from the converted model -------------------------------------------------------------


@pytest.mark.parametrize("version", ["11.0.0", "11.4.0"])
def test_11x_builds_fp16_and_int8_from_the_converted_onnx(install_fakes, make_backend, tiny, version, tmp_path,
                                                          statuses):
    trt, _ = install_fakes(version, fast_fp16=False, fast_int8=False)  # 11 has no such question to ask
    backend = make_backend()
    assert backend.precision_route == "onnx_converted"
    for precision in ("fp16", "int8"):
        runner = backend.prepare(tiny, 4, precision)
        build = trt._fake.last_build
        parsed = trt._fake.parsed[-1]
        assert parsed.startswith(str(tmp_path / "converted")) and parsed.endswith(".onnx")
        assert build["strongly_typed"] and build["network_flags"] == 0  # STRONGLY_TYPED is implied (and ignored)
        assert build["flags"] == [] and not build["calibrator"] and build["network_precision"] == precision
        assert build["inputs"][0]["dtype"] == "FLOAT"  # the converted file keeps float32 I/O
        assert build["profiles"] == [{"x0": ((4, 3, 8, 8),) * 3}]
        assert runner.precision_method == "onnx_converted"
        assert runner.converted_sha256 == sha256(type(tmp_path)(parsed)) == onnxfile.load(parsed).sha256
        assert runner.memory_bytes == 4 * trt._fake.device_memory_bytes_per_image  # device_memory_size_v2
        runner.infer()
        runner.close()
        assert f"converting tiny to {precision}…" in statuses
        assert f"building engine tiny b4 {precision} from the converted ONNX (cache miss)…" in statuses
    assert runner.calibration == "random" and runner.timing_only  # int8 without calibration images
    assert trt._fake.deprecated_used == []


def test_11x_int8_calibrated_on_images(install_fakes, make_backend, tiny, calibration_folder):
    trt, _ = install_fakes("11.0.0")
    folder = calibration_folder()
    backend = make_backend(calibration=folder)
    runner = backend.prepare(tiny, 2, "int8")
    assert runner.calibration == f"images:{folder} (3 images)" and not runner.timing_only
    assert backend.calibration_sha256 == backend.conversions[next(iter(backend.conversions))].calibration_sha256
    assert trt._fake.last_build["network_precision"] == "int8" and not trt._fake.last_build["calibrator"]
    runner.close()


def test_a_conversion_is_made_once_per_model_and_precision(install_fakes, make_backend, tiny, statuses):
    trt, _ = install_fakes("11.0.0")
    backend = make_backend()
    for batch in (1, 2, 4):
        backend.prepare(tiny, batch, "fp16").close()
    assert trt._fake.builds == 3 and sum(s == "converting tiny to fp16…" for s in statuses) == 1
    statuses.clear()
    make_backend().prepare(tiny, 1, "fp16").close()  # a new backend: the converted file from the cache
    assert "converting tiny to fp16…" not in statuses and trt._fake.builds == 3


# -- TensorRT 10: either route, never one engine for both -----------------------------------------------------------


def test_10x_converted_route_is_a_strongly_typed_network(install_fakes, make_backend, tiny):
    trt, _ = install_fakes("10.3.0")
    runner = make_backend(precision_method="onnx_converted").prepare(tiny, 1, "fp16")
    build = trt._fake.last_build
    assert build["network_flags"] == 1 << int(trt.NetworkDefinitionCreationFlag.STRONGLY_TYPED) == 2
    assert build["strongly_typed"] and build["flags"] == [] and build["network_precision"] == "fp16"
    assert trt._fake.deprecated_used == []  # neither EXPLICIT_BATCH nor a precision flag
    runner.close()


def test_the_engine_cache_keeps_the_routes_apart(install_fakes, make_backend, tiny, statuses):
    trt, _ = install_fakes("10.3.0")
    flags, converted = make_backend(), make_backend(precision_method="onnx_converted")
    for backend in (flags, converted):
        backend.prepare(tiny, 2, "int8").close()
    assert trt._fake.builds == 2
    sidecars = [json.loads(p.read_text())["key"] for p in flags.cache.directory.glob("*.json")]
    assert sorted((k["precision_method"], k["converted_sha256"] is None) for k in sidecars) == [
        ("builder_flags", True), ("onnx_converted", False)]
    # each route finds its own engine again
    statuses.clear()
    for backend in (make_backend(), make_backend(precision_method="onnx_converted")):
        runner = backend.prepare(tiny, 2, "int8")
        assert runner.precision_method == backend.precision_route
        runner.close()
    assert trt._fake.builds == 2
    assert statuses[-1] == "loaded engine tiny b2 int8 from the converted ONNX from cache"
    # fp32 is the exported model on either route: one engine
    flags.prepare(tiny, 2, "fp32").close()
    converted.prepare(tiny, 2, "fp32").close()
    assert trt._fake.builds == 3


def test_a_strongly_typed_network_refuses_precision_flags(install_fakes, tiny):
    """The fake's own check, as the real 10.x builder fails (NVIDIA/TensorRT#4228, #4253): a strongly typed network
    built with BuilderFlag.FP16 gives no engine and an API Usage Error in the log."""
    trt, _ = install_fakes("10.3.0")

    class Logger(trt.ILogger):
        def __init__(self) -> None:
            trt.ILogger.__init__(self)
            self.messages = []

        def log(self, severity, msg) -> None:
            self.messages.append(msg)

    logger = Logger()
    builder = trt.Builder(logger)
    network = builder.create_network(1 << int(trt.NetworkDefinitionCreationFlag.STRONGLY_TYPED))
    assert trt.OnnxParser(network, logger).parse_from_file(str(tiny.path))
    config = builder.create_builder_config()
    profile = builder.create_optimization_profile()
    profile.set_shape("x0", (1, 3, 8, 8), (1, 3, 8, 8), (1, 3, 8, 8))
    config.add_optimization_profile(profile)
    config.set_flag(trt.BuilderFlag.FP16)
    assert builder.build_serialized_network(network, config) is None
    assert logger.messages[-1] == ("IBuilder::buildSerializedNetwork: Error Code 3: API Usage Error (Parameter check "
                                   "failed, condition: !config.getFlag(BuilderFlag::kFP16). )")


def test_dla_runs_the_converted_model(install_fakes, make_backend, tiny):
    trt, _ = install_fakes("10.3.0", dla_cores=2)
    runner = make_backend(dla_core=0, precision_method="onnx_converted").prepare(tiny, 1, "int8")
    build = trt._fake.last_build
    assert build["device"] == "DLA" and build["flags"] == ["GPU_FALLBACK"] and build["strongly_typed"]
    assert runner.device == "dla0" and runner.precision_method == "onnx_converted"
    runner.close()


# -- real inputs through the engine that was timed -------------------------------------------------------------------


@pytest.mark.parametrize("version, precision", [("8.6.2", "fp32"), ("10.3.0", "int8"), ("11.0.0", "fp16"),
                                                ("11.4.0", "int8")])
def test_feed_and_predict_run_real_inputs(install_fakes, make_backend, tiny, version, precision, balanced):
    trt, cuda = install_fakes(version)
    runner = make_backend().prepare(tiny, 2, precision)
    data = np.random.default_rng(5).uniform(-2, 2, (2, 3, 8, 8)).astype(np.float32)
    logits = runner.predict(data)
    (x,) = runner.inputs.values()
    np.testing.assert_array_equal(x, data)  # the pinned input buffer holds the real images now
    # the fake's "inference" copies the input to the start of the output: the logits are the images, flattened
    assert logits.shape == (2, 4 * 8 * 8) and logits.dtype == np.float32
    np.testing.assert_array_equal(logits.reshape(-1)[: data.size], data.reshape(-1))
    assert trt._fake.executions == 1
    runner.close()
    with pytest.raises(RuntimeError, match="closed"):
        runner.feed(data)
    assert balanced(cuda)


def test_feed_casts_to_the_input_s_type(install_fakes, make_backend, tiny, make_onnx, tmp_path):
    """An engine with an fp16 input gets the float32 batch cast to fp16. (dnnprof loads only float32 models and the
    converted ones keep float32 I/O: here TensorRT parses a file with an fp16 input in the model's place.)"""
    install_fakes("11.0.0")
    half = make_onnx(tmp_path / "half.onnx", op="Relu", elem_type=TensorProto.FLOAT16)
    runner = make_backend().prepare(dataclasses.replace(tiny, path=half, sha256="half"), 2, "fp32")
    data = np.linspace(-1, 1, 2 * 3 * 8 * 8, dtype=np.float32).reshape(2, 3, 8, 8)
    runner.feed(data)
    (x,) = runner.inputs.values()
    assert x.dtype == np.float16
    np.testing.assert_array_equal(x, data.astype(np.float16))
    runner.infer()
    runner.close()


def test_feed_refuses_another_shape(install_fakes, make_backend, tiny):
    install_fakes("10.3.0")
    runner = make_backend().prepare(tiny, 2, "fp32")
    with pytest.raises(ValueError, match=r"input 'x0' takes shape \(2, 3, 8, 8\), not \(1, 3, 8, 8\)"):
        runner.feed(np.zeros((1, 3, 8, 8), np.float32))
    runner.close()


# -- a sweep on TensorRT 11 ------------------------------------------------------------------------------------------


def test_a_sweep_on_11x_records_the_route(install_fakes, make_backend, tiny, list_sink):
    trt, _ = install_fakes("11.4.0")
    backend = make_backend()
    results = Sweep(board="b1", run_id="r1", models=[tiny], batches=[1], backend=backend, power=None,
                    settings=SHORT, precisions=["fp32", "fp16", "int8"]).run(list_sink())
    assert [r.precision for r in results] == ["fp32", "fp16", "int8"]
    by = {r.precision: r for r in results}
    assert by["fp32"].precision_method == "as_exported" and by["fp32"].converted_sha256 is None
    for precision in ("fp16", "int8"):
        assert by[precision].precision_method == "onnx_converted" and len(by[precision].converted_sha256) == 64
    assert by["int8"].timing_only and by["int8"].calibration == "random"
    assert all(isinstance(r, schema.Result) for r in results)
