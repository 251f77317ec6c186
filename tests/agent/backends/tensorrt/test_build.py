"""The TensorRT backend on the thin fakes of tensorrt (8.x, 10.x, 11.x) and pycuda (tests/fakes/): the calls it makes
against each version's API, precisions by builder flags, DLA, the engine and timing caches, build progress,
get_backend, a sweep and the `run` options. The converted-ONNX route: test_routes.py."""

from __future__ import annotations

import json
import math

import numpy as np
import pytest
from typer.testing import CliRunner

from dnnprof.agent.backends import BACKENDS, PointError, get_backend, resolve
from dnnprof.agent.backends import tensorrt as trt_backend
from dnnprof.agent.backends.engine_cache import EngineCache
from dnnprof.agent.backends.onnxruntime import OnnxRuntimeBackend
from dnnprof.agent.backends.tensorrt import TensorRTBackend
from dnnprof.agent.measure import profiler
from dnnprof.agent.measure.sweep import Sweep
from dnnprof.shared import onnxfile
from dnnprof.shared import schema
from dnnprof.shared.errors import UserError

VERSIONS = ["8.5.2", "8.6.2", "10.0.1", "10.1.0", "10.3.0", "10.13.3", "10.16.1", "11.0.0", "11.4.0"]
SHORT = profiler.Settings(warmup_min_s=0.0, warmup_min_iterations=1, warmup_max_s=0.02, window_min_s=0.01,
                          window_max_s=0.03, min_iterations=2, min_power_samples=0, latency_ci=0.5,
                          check_every_s=0.01, idle_s=0)


# -- building on 8.x, 10.x and 11.x ------------------------------------------------------------------------------------


@pytest.mark.parametrize("version", VERSIONS)
def test_build_and_run_fp32(install_fakes, make_backend, tiny, version, balanced, run_all):
    trt, cuda = install_fakes(version)
    backend = make_backend()
    assert backend.name == "tensorrt" and backend.version == version and backend.gpu == "Fake Orin (sm_87)"
    runner = backend.prepare(tiny, 2, "fp32", seed=3)
    build = trt._fake.last_build
    assert build["explicit_batch"] and build["flags"] == [] and build["device"] == "GPU"
    assert build["strongly_typed"] == version.startswith("11.")  # 11: every network is strongly typed
    assert build["workspace"] == trt_backend.DEFAULT_WORKSPACE_BYTES
    # the symbolic batch got a fixed-batch profile: min = opt = max
    assert build["profiles"] == [{"x0": ((2, 3, 8, 8),) * 3}]
    assert build["timing_cache"] and build["progress_monitor"] == (not version.startswith("8."))
    assert trt._fake.deprecated_used == []  # neither EXPLICIT_BATCH on 10.x nor anything deprecated on 8.x
    assert runner.device == "gpu" and runner.sync_mode == "blocking" and runner.threads is None
    assert runner.memory_bytes == 2 * trt._fake.device_memory_bytes_per_image
    assert runner.calibration is None and runner.timing_only is False
    assert runner.precision_method == "as_exported" and runner.converted_sha256 is None
    times = run_all(runner, 3)
    assert trt._fake.executions == 3
    waits = [op for op, _ in cuda._fake.ops if op.startswith("cuEventSynchronize")]
    assert waits == ["cuEventSynchronize (blocking)"] * 3  # one wait per batch, sleeping, not spinning
    for t in times:
        assert t.compute_ms > 0 and t.h2d_ms > 0 and t.d2h_ms > 0 and math.isfinite(t.compute_ms)
    (x,), (y,) = runner.inputs.values(), runner.outputs.values()
    assert x.shape == (2, 3, 8, 8) and y.shape == (2, 4, 8, 8) and x.dtype == np.float32
    assert x.std() > 0.5  # random input, never zeros
    # the fake "inference" copies the input to the start of the output on the device; the output came back
    assert np.array_equal(y.reshape(-1)[: x.size], x.reshape(-1))
    runner.close()
    runner.close()  # twice is fine
    assert balanced(cuda) and cuda._fake.live_device_bytes == 0 and cuda._fake.host_allocations == 0
    assert cuda._fake.warnings == []


@pytest.mark.parametrize("version", ["8.6.2", "10.3.0", "11.0.0"])
def test_the_fakes_hold_the_real_api_per_version(install_fakes, version, tiny):
    trt, _ = install_fakes(version)
    logger = trt.Logger()
    builder = trt.Builder(logger)
    config = builder.create_builder_config()
    engine_api = ("num_bindings", "get_binding_shape", "binding_is_input")
    if not version.startswith("8"):
        for obj, names in ((builder, ["build_engine"]), (config, ["max_workspace_size"]),
                           (trt.IExecutionContext, ["execute_async_v2", "set_binding_shape"]),
                           (trt.ICudaEngine, engine_api)):
            for name in names:
                assert not hasattr(obj, name), name
        assert hasattr(trt, "IProgressMonitor") and hasattr(config, "progress_monitor")
        assert network_flags(trt) == ({"STRONGLY_TYPED": 0} if version.startswith("11") else
                                      {"EXPLICIT_BATCH": 0, "STRONGLY_TYPED": 1})
    if version.startswith("11"):
        # gone in 11: precision flags, calibrators, the fast-precision questions, device_memory_size
        for obj, names in ((trt.BuilderFlag, ["FP16", "INT8", "BF16"]), (trt, ["IInt8EntropyCalibrator2",
                           "IInt8Calibrator"]), (config, ["int8_calibrator", "set_calibration_profile"]),
                           (builder, ["platform_has_fast_fp16", "platform_has_fast_int8"]),
                           (trt.ICudaEngine, ["device_memory_size"])):
            for name in names:
                assert not hasattr(obj, name), name
        assert trt.BuilderFlag.GPU_FALLBACK == 3 and trt.BuilderFlag.STRIP_PLAN == 18  # renumbered in 11
        assert builder.create_network(0).get_flag(trt.NetworkDefinitionCreationFlag.STRONGLY_TYPED)
    elif version.startswith("10"):
        assert not builder.create_network(0).get_flag(trt.NetworkDefinitionCreationFlag.STRONGLY_TYPED)
        assert builder.create_network(2).get_flag(trt.NetworkDefinitionCreationFlag.STRONGLY_TYPED)
    else:
        fake = pytest.importorskip("dnnprof_test_fakes_fake_tensorrt")
        with pytest.raises(fake.DeprecatedCall):
            builder.build_engine(None, None)
        assert not hasattr(trt, "IProgressMonitor") and not hasattr(config, "progress_monitor")
        # 8.x: without EXPLICIT_BATCH the ONNX parser fails like the real one (importModel's first assertion)
        parser = trt.OnnxParser(builder.create_network(0), logger)
        assert not parser.parse_from_file(str(tiny.path))
        assert str(parser.get_error(0)) == ('In node -1 (importModel): INVALID_VALUE: Assertion failed: '
                                            '!mImporterCtx.network()->hasImplicitBatchDimension() && "This version of '
                                            'the ONNX parser only supports TensorRT INetworkDefinitions with an '
                                            'explicit batch dimension. Please ensure the network was created using '
                                            'the EXPLICIT_BATCH NetworkDefinitionCreationFlag."')
        assert not hasattr(trt.NetworkDefinitionCreationFlag, "STRONGLY_TYPED")  # 8.x: no strongly typed networks
    assert hasattr(trt.ICudaEngine, "device_memory_size_v2") == (version != "8.6.2")
    with pytest.raises(TypeError, match="incompatible function arguments"):
        config.set_flag(int(trt.BuilderFlag.GPU_FALLBACK))  # enum members only, as pybind11 converts them


def network_flags(trt) -> dict:
    return {m.name: int(m) for m in trt.NetworkDefinitionCreationFlag}


def test_a_logger_that_skips_the_base_init_fails_at_construction(install_fakes):
    trt, _ = install_fakes("11.0.0")

    class Careless(trt.ILogger):
        def __init__(self) -> None:
            pass

    with pytest.raises(TypeError, match=r"ILogger.__init__\(\) must be called"):
        Careless()


def test_device_memory_uses_v2_where_it_exists(install_fakes, make_backend, tiny):
    trt, _ = install_fakes("10.3.0")
    # weight streaming makes v2 differ from the deprecated v1; the fake's v2 says so here
    trt.ICudaEngine.device_memory_size_v2 = property(lambda self: 12345)
    runner = make_backend().prepare(tiny, 1, "fp32")
    assert runner.memory_bytes == 12345
    runner.close()


PLUGIN_NOT_FOUND = '"Plugin not found, are the plugin name, version, and namespace correct?"'


def unknown_ops(path, count: int):
    """A classifier-shaped graph (input x0, N x 3 x 8 x 8) of ``count`` chained ops TensorRT has no importer for."""
    import onnx
    from onnx import TensorProto, helper

    names = ["x0", *(f"t{i}" for i in range(1, count)), "y0"]
    nodes = [helper.make_node(f"NoSuchOp{i}", [names[i]], [names[i + 1]]) for i in range(count)]
    io = [helper.make_tensor_value_info(n, TensorProto.FLOAT, ["N", 3, 8, 8]) for n in ("x0", "y0")]
    graph = helper.make_graph(nodes, "odd", io[:1], io[1:])
    onnx.save(helper.make_model(graph, opset_imports=[helper.make_opsetid("", 13)], ir_version=7), str(path))
    return onnxfile.load(path)


@pytest.mark.parametrize("version", VERSIONS)
def test_a_model_the_parser_rejects_is_one_user_error(install_fakes, make_backend, tmp_path, version):
    """Ops TensorRT has no importer for, in each version's words (pyOnnx.cpp's ParserError.__str__): 8.x stops at the
    first such node and does not name its operator; 10.x and 11.x report every one, with name and operator, of which
    the message shows three."""
    install_fakes(version)
    model = unknown_ops(tmp_path / "odd.onnx", 5)
    with pytest.raises(UserError) as info:
        make_backend().prepare(model, 1, "fp32")
    message = str(info.value)
    if version.startswith("8."):
        assert message == (f"TensorRT cannot parse {model.path}: In node 0 (importFallbackPluginImporter): "
                           f"UNSUPPORTED_NODE: Assertion failed: creator && {PLUGIN_NOT_FOUND}")
    else:
        error = "In node {0} with name: and operator: NoSuchOp{0} (checkFallbackPluginImporter): INVALID_NODE: " \
                f"creator && {PLUGIN_NOT_FOUND}"
        assert message == (f"TensorRT cannot parse {model.path}: {error.format(0)}; {error.format(1)}; "
                           f"{error.format(2)}; and 2 more")


def test_a_parser_error_names_the_node_on_10(install_fakes, make_onnx, tmp_path):
    import onnx

    trt, _ = install_fakes("10.3.0")
    proto = onnx.load(make_onnx(tmp_path / "odd.onnx", op="NoSuchOp", inputs=1))
    proto.graph.node[0].name = "/features/odd"
    onnx.save(proto, str(tmp_path / "named.onnx"))
    logger = trt.Logger()
    parser = trt.OnnxParser(trt.Builder(logger).create_network(0), logger)
    assert not parser.parse_from_file(str(tmp_path / "named.onnx"))
    error = parser.get_error(0)
    assert (error.node(), error.node_name(), error.node_operator(), error.func()) == (
        0, "/features/odd", "NoSuchOp", "checkFallbackPluginImporter")
    assert str(error) == ("In node 0 with name: /features/odd and operator: NoSuchOp (checkFallbackPluginImporter): "
                          f"INVALID_NODE: creator && {PLUGIN_NOT_FOUND}")


@pytest.mark.parametrize("version", ["8.6.2", "10.3.0"])
def test_a_file_that_is_no_onnx_model_is_said_by_the_log(install_fakes, make_backend, tmp_path, tiny, version):
    """onnx-tensorrt's parseFromFile records no parser error for a file it cannot read as ONNX, only a log line (with
    the source position on 8.6): the backend says that line."""
    import dataclasses

    trt, _ = install_fakes(version)
    broken = tmp_path / "broken.onnx"
    broken.write_bytes(b"not a protobuf \xff\xfe")
    model = dataclasses.replace(tiny, path=broken, sha256="0" * 64)
    with pytest.raises(UserError) as info:
        make_backend().prepare(model, 1, "fp32")
    said = {"8.6.2": f"ModelImporter.cpp:717: Failed to parse ONNX model from file: {broken}",
            "10.3.0": f"Failed to parse ONNX model from file: {broken}!"}[version]
    assert str(info.value) == f"TensorRT cannot parse {broken}: {said}"


def test_a_failed_build_is_a_user_error_with_tensorrt_s_reason(install_fakes, make_backend, tiny, balanced):
    trt, cuda = install_fakes("10.3.0")
    trt._fake.cancel_build = True  # the build stops, as any failed build_serialized_network returns None
    with pytest.raises(UserError, match=r"could not build an engine for tiny b1 fp32: .*cancelled"):
        make_backend().prepare(tiny, 1, "fp32")
    assert balanced(cuda)


def test_fixed_batch_model_needs_no_profile(install_fakes, make_backend, make_onnx, tmp_path):
    trt, _ = install_fakes("8.6.2")
    model = onnxfile.load(make_onnx(tmp_path / "fixed.onnx", batch=4))
    runner = make_backend().prepare(model, 4, "fp32")
    assert trt._fake.last_build["profiles"] == []
    runner.infer()
    runner.close()
    with pytest.raises(UserError, match="fixed batch size of 4"):
        make_backend().prepare(model, 2, "fp32")


# -- precisions --------------------------------------------------------------------------------------------------------


@pytest.mark.parametrize("version", ["8.6.2", "10.3.0", "10.16.1"])
def test_fp16(install_fakes, make_backend, tiny, version):
    trt, _ = install_fakes(version)
    runner = make_backend().prepare(tiny, 1, "fp16")
    build = trt._fake.last_build
    assert build["flags"] == ["FP16"] and not build["strongly_typed"] and build["network_precision"] == "fp32"
    assert runner.calibration is None and not runner.timing_only
    assert runner.precision_method == "builder_flags" and runner.converted_sha256 is None
    # 10.12 deprecated the flag in favour of strongly typed networks: still there until 11
    assert ("BuilderFlag.FP16" in trt._fake.deprecated_used) == (version == "10.16.1")
    runner.close()


@pytest.mark.parametrize("precision", ["fp16", "int8"])
def test_no_fast_precision_on_this_gpu_is_refused(install_fakes, make_backend, tiny, precision):
    trt, _ = install_fakes("8.5.2", fast_fp16=False, fast_int8=False)
    with pytest.raises(UserError, match=f"has no fast {precision}: .*leave {precision} out of --precision"):
        make_backend().prepare(tiny, 1, precision)
    assert trt._fake.build_calls == 0


def test_unknown_precision(install_fakes, make_backend, tiny):
    install_fakes()
    with pytest.raises(UserError, match="tensorrt runs fp32, fp16, int8, not 'bf16'"):
        make_backend().prepare(tiny, 1, "bf16")


# -- DLA ---------------------------------------------------------------------------------------------------------------


def test_dla_on_a_board_without_one(install_fakes, make_backend):
    install_fakes("10.3.0", dla_cores=0)
    with pytest.raises(UserError, match="this board has no DLA"):
        make_backend(dla_core=0)


@pytest.mark.parametrize("core", [2, -1])
def test_dla_core_out_of_range(install_fakes, make_backend, core):
    install_fakes("8.5.2", dla_cores=2)
    with pytest.raises(UserError, match=f"DLA core {core} does not exist: this board has 2 DLA cores, 0 to 1"):
        make_backend(dla_core=core)


@pytest.mark.parametrize("version", ["8.5.2", "10.3.0"])
def test_dla_build_and_run(install_fakes, make_backend, tiny, version, balanced):
    trt, cuda = install_fakes(version, dla_cores=2)
    backend = make_backend(dla_core=1)
    assert backend.precisions == ("fp16", "int8") and backend.device == "dla1"
    with pytest.raises(UserError, match="DLA runs fp16 and int8 only, not fp32"):
        backend.prepare(tiny, 1, "fp32")
    runner = backend.prepare(tiny, 1, "fp16")
    build = trt._fake.last_build
    assert build["device"] == "DLA" and build["dla_core"] == 1 and build["flags"] == ["FP16", "GPU_FALLBACK"]
    assert runner.device == "dla1"
    runner.infer()  # the fake runtime refuses a DLA plan unless runtime.DLA_core was set before deserializing
    runner.close()
    # a GPU engine of the same model is another cache entry
    gpu = make_backend().prepare(tiny, 1, "fp16")
    assert trt._fake.builds == 2 and gpu.device == "gpu"
    gpu.close()
    assert balanced(cuda)


# -- engine cache ------------------------------------------------------------------------------------------------------


def test_a_second_backend_loads_from_the_cache(install_fakes, make_backend, tiny, statuses):
    trt, _ = install_fakes("10.3.0")
    make_backend().prepare(tiny, 2, "fp16").close()
    assert trt._fake.builds == 1
    assert statuses[0] == "building engine tiny b2 fp16 (cache miss)…"
    assert statuses[-1].startswith("built engine tiny b2 fp16 in ")
    assert statuses[-1].endswith("saved to the engine cache")
    statuses.clear()
    runner = make_backend().prepare(tiny, 2, "fp16")
    assert trt._fake.builds == 1 and statuses == ["loaded engine tiny b2 fp16 from cache"]
    runner.infer()
    runner.close()
    make_backend().prepare(tiny, 4, "fp16").close()  # another batch: another engine
    assert trt._fake.builds == 2


def entry(backend: TensorRTBackend):
    (sidecar,) = backend.cache.directory.glob("*.json")
    return sidecar.with_suffix(".engine"), sidecar


@pytest.mark.parametrize("damage, words", [
    (lambda plan, sidecar: plan.write_bytes(plan.read_bytes()[:10]), "truncated"),
    (lambda plan, sidecar: plan.write_bytes(plan.read_bytes().replace(b"GPU", b"GPX")), "sha256"),
    (lambda plan, sidecar: sidecar.write_text("garbage"), "unreadable sidecar"),
    (lambda plan, sidecar: sidecar.write_text(json.dumps({"key": {"batch": 3}})), "does not match"),
])
def test_a_damaged_cache_entry_is_rebuilt(install_fakes, make_backend, tiny, statuses, damage, words):
    trt, _ = install_fakes("10.3.0")
    backend = make_backend()
    backend.prepare(tiny, 1, "fp32").close()
    damage(*entry(backend))
    statuses.clear()
    runner = make_backend().prepare(tiny, 1, "fp32")
    assert trt._fake.builds == 2
    assert statuses[0].startswith("building engine tiny b1 fp32 (cached entry unusable: ") and words in statuses[0]
    runner.infer()
    runner.close()
    statuses.clear()
    make_backend().prepare(tiny, 1, "fp32").close()  # repaired
    assert trt._fake.builds == 2 and statuses == ["loaded engine tiny b1 fp32 from cache"]


def test_an_entry_tensorrt_cannot_deserialize_is_rebuilt(install_fakes, make_backend, tiny, statuses):
    trt, _ = install_fakes("10.3.0")
    backend = make_backend()
    backend.prepare(tiny, 1, "fp32").close()
    # a well-formed entry whose plan TensorRT rejects (as after a driver or library change the key does not see)
    plan, _ = entry(backend)
    key_fields = json.loads(entry(backend)[1].read_text())["key"]
    from dnnprof.agent.backends.engine_cache import EngineKey

    key = EngineKey(**{k: v for k, v in key_fields.items() if k != "format"})
    backend.cache.store(key, b"\x00garbage plan", build_s=1.0, model="tiny")
    statuses.clear()
    runner = make_backend().prepare(tiny, 1, "fp32")
    assert trt._fake.builds == 2 and runner is not None
    assert statuses[0] == "building engine tiny b1 fp32 (cached engine did not load in this TensorRT; rebuilding)…"
    runner.close()
    assert plan.read_bytes() != b"\x00garbage plan"


def test_rebuild_ignores_the_cache_once(install_fakes, make_backend, tiny, statuses):
    trt, _ = install_fakes("8.6.2")
    make_backend().prepare(tiny, 1, "fp32").close()
    backend = make_backend(rebuild=True)
    statuses.clear()
    backend.prepare(tiny, 1, "fp32").close()
    assert trt._fake.builds == 2 and statuses[0] == "building engine tiny b1 fp32 (rebuild requested)…"
    backend.prepare(tiny, 1, "fp32").close()  # rebuilt once by this backend, then reused
    assert trt._fake.builds == 2


def test_without_an_engine_cache_every_prepare_builds(install_fakes, make_backend, tiny, statuses):
    trt, _ = install_fakes("10.3.0")
    backend = make_backend(engine_cache=None)
    for _ in range(2):
        backend.prepare(tiny, 1, "fp32").close()
    assert trt._fake.builds == 2 and statuses[0] == "building engine tiny b1 fp32 (no engine cache)…"
    assert trt._fake.last_build["timing_cache"] is False


def test_another_tensorrt_version_is_another_entry(install_fakes, make_backend, tiny):
    trt, _ = install_fakes("10.3.0")
    make_backend().prepare(tiny, 1, "fp32").close()
    trt, _ = install_fakes("10.4.0")
    make_backend().prepare(tiny, 1, "fp32").close()
    assert trt._fake.builds == 1  # the 10.4 fake built its own


def test_a_cache_that_cannot_be_written_is_said(install_fakes, make_backend, tiny, statuses, monkeypatch):
    trt, _ = install_fakes("10.3.0")

    def refuse(*args, **kwargs):
        raise OSError(28, "No space left on device")

    monkeypatch.setattr(EngineCache, "store", refuse)
    runner = make_backend().prepare(tiny, 1, "fp32")
    assert statuses[-1].endswith("NOT cached (No space left on device): the next run builds it again")
    runner.close()


# -- timing cache ------------------------------------------------------------------------------------------------------


def timing_file(backend: TensorRTBackend):
    return backend.cache.timing_cache_path(backend.version, backend.gpu, backend.platform)


def test_the_timing_cache_is_saved_and_loaded(install_fakes, make_backend, tiny):
    install_fakes("10.3.0")
    backend = make_backend()
    backend.prepare(tiny, 1, "fp32").close()
    saved = json.loads(timing_file(backend).read_bytes())
    assert saved == {"timing-cache": True, "device": "Fake Orin (sm_87)", "entries": 1}
    backend.prepare(tiny, 2, "fp32").close()  # loaded, extended, saved again
    assert json.loads(timing_file(backend).read_bytes())["entries"] == 2


@pytest.mark.parametrize("content", [b"\x00\x01 corrupt", json.dumps({"timing-cache": True, "device": "Other GPU",
                                                                        "entries": 9}).encode()])
def test_a_mismatched_or_corrupt_timing_cache_starts_empty(install_fakes, make_backend, tiny, statuses, content):
    trt, _ = install_fakes("8.6.2")
    backend = make_backend()
    timing_file(backend).write_bytes(content)
    backend.prepare(tiny, 1, "fp32").close()
    assert trt._fake.builds == 1
    assert any("does not fit this GPU and TensorRT (or is damaged): starting from an empty one" in s for s in statuses)
    assert json.loads(timing_file(backend).read_bytes())["device"] == "Fake Orin (sm_87)"


# -- build progress --------------------------------------------------------------------------------------------------


def test_build_progress_on_10x(install_fakes, make_backend, tiny, statuses):
    trt, _ = install_fakes("10.3.0")
    make_backend().prepare(tiny, 1, "fp32").close()
    assert "building engine tiny b1 fp32: Building engine 0/2…" in statuses
    assert ("start", "Timing tactics", "Building engine", 3) in trt._fake.phases


def test_no_progress_monitor_on_8x(install_fakes, make_backend, tiny, statuses):
    trt, _ = install_fakes("8.6.2")
    make_backend().prepare(tiny, 1, "fp32").close()
    assert trt._fake.phases == [] and not any(": Building" in s for s in statuses)


def test_ctrl_c_during_a_build_cancels_it(install_fakes, make_backend, tiny, balanced):
    trt, cuda = install_fakes("10.3.0")

    def on_status(text: str) -> None:
        if ": Building engine" in text:
            raise KeyboardInterrupt

    with pytest.raises(KeyboardInterrupt):
        make_backend(on_status=on_status).prepare(tiny, 1, "fp32")
    assert trt._fake.builds == 0 and balanced(cuda)


def test_a_build_the_sweep_gives_up_is_cancelled_at_its_next_step(install_fakes, make_backend, tiny, balanced):
    """backend.cancel() comes from the sweep's thread while the build runs on the point's thread (the watchdog, or
    Ctrl-C there); here from the status callback, which runs inside the build as that thread's would."""
    trt, cuda = install_fakes("10.3.0")
    backend = make_backend(on_status=lambda text: backend.cancel() if ": Building engine" in text else None)
    with pytest.raises(PointError, match="the build of tiny b1 fp32 was stopped after") as stopped:
        backend.prepare(tiny, 1, "fp32")
    assert stopped.value.kind == "timeout" and trt._fake.builds == 0 and balanced(cuda)
    steps = [p for p in trt._fake.phases if p[0] == "step"]
    assert steps == [("step", "Building engine", 0)]  # stopped at the first step after the cancel
    backend._on_status = None
    backend.prepare(tiny, 1, "fp32").close()  # the next build starts afresh
    assert trt._fake.builds == 1


def test_a_failing_status_display_does_not_cancel_the_build(install_fakes, make_backend, tiny):
    trt, _ = install_fakes("10.3.0")

    def on_status(text: str) -> None:
        if text.endswith("…") and ":" in text:
            raise ValueError("terminal gone")

    make_backend(on_status=on_status).prepare(tiny, 1, "fp32").close()
    assert trt._fake.builds == 1


# -- get_backend ------------------------------------------------------------------------------------------------------


def test_auto_is_tensorrt_when_tensorrt_and_pycuda_import(install_fakes, tmp_path):
    install_fakes("10.3.0")
    assert resolve("auto") == "tensorrt" and "tensorrt" in BACKENDS
    engine = get_backend("auto", engine_cache=tmp_path)
    assert isinstance(engine, TensorRTBackend) and engine.precisions == ("fp32", "fp16", "int8")
    assert isinstance(get_backend("onnxruntime"), OnnxRuntimeBackend)


@pytest.mark.parametrize("missing, words, absent", [
    (("tensorrt",), "python3-libnvinfer", "pip install pycuda"),
    (("pycuda", "pycuda.driver"), "pip install pycuda", "libnvinfer"),
    (("tensorrt", "pycuda", "pycuda.driver"), "--system-site-packages) and pycuda (pip install pycuda", None),
])
def test_tensorrt_asked_for_but_missing(install_fakes, monkeypatch, missing, words, absent):
    install_fakes()
    for module in missing:
        monkeypatch.setitem(__import__("sys").modules, module, None)  # import raises ImportError
    assert resolve("auto") == "onnxruntime"
    assert isinstance(get_backend("auto"), OnnxRuntimeBackend)
    with pytest.raises(UserError) as info:
        get_backend("tensorrt")
    assert str(info.value).startswith("the tensorrt backend needs") and words in str(info.value)
    if absent:
        assert absent not in str(info.value)


@pytest.mark.parametrize("option, words", [
    ({"dla_core": 0}, "--dla-core"), ({"rebuild": True}, "--rebuild-engines"),
    ({"workspace_bytes": 1}, "--workspace"), ({"engine_cache": "x"}, "--engine-cache"),
    ({"precision_method": "onnx_converted"}, "--precision-method"),
])
def test_tensorrt_options_on_onnxruntime(option, words):
    with pytest.raises(UserError, match=f"{words} only applies to the tensorrt backend, not onnxruntime"):
        get_backend("onnxruntime", **option)


def test_get_backend_passes_the_route_and_the_caches(install_fakes, tmp_path):
    install_fakes("10.3.0")
    backend = get_backend("tensorrt", precision_method="onnx_converted", cache_dir=tmp_path)
    assert backend.precision_route == "onnx_converted" and backend.precision_method("fp16") == "onnx_converted"
    assert (backend.converted_cache, backend.tensor_cache) == (tmp_path / "converted", tmp_path / "tensors")
    assert get_backend("tensorrt").precision_method("int8") == "builder_flags"  # auto on 10.x: the flags
    with pytest.raises(UserError, match="precision method 'fastest' is not one of"):
        get_backend("tensorrt", precision_method="fastest")


def test_threads_on_tensorrt(install_fakes):
    install_fakes()
    with pytest.raises(UserError, match="--threads only applies to the onnxruntime backend"):
        get_backend("tensorrt", threads=2)


def test_cuda_unusable_or_absent(install_fakes):
    install_fakes(cuda={"init_error": "no CUDA-capable device is detected"})
    with pytest.raises(UserError, match="CUDA is not usable here .*no CUDA-capable device"):
        get_backend("tensorrt")
    install_fakes(cuda={"devices": 0})
    with pytest.raises(UserError, match="no CUDA device found"):
        get_backend("tensorrt")


def test_tensorrt_older_than_8_5(install_fakes):
    install_fakes("8.2.1")
    with pytest.raises(UserError, match="TensorRT 8.2.1 is too old: dnnprof needs TensorRT 8.5 or newer"):
        get_backend("tensorrt")


def test_a_bad_workspace(install_fakes):
    install_fakes()
    with pytest.raises(UserError, match="workspace must be above 0"):
        get_backend("tensorrt", workspace_bytes=0)


# -- a sweep end to end --------------------------------------------------------------------------------------------



def test_a_sweep_on_tensorrt_and_a_second_run_builds_nothing(install_fakes, model_path, tmp_path, list_sink, balanced):
    trt, cuda = install_fakes("10.3.0")
    model = onnxfile.load(model_path)  # a generated zoo network: input "input" (N, 3, 224, 224)

    def sweep() -> list[schema.Result]:
        backend = get_backend("tensorrt", engine_cache=tmp_path / "engines")
        return Sweep(board="b1", run_id="r1", models=[model], batches=[1, 2], backend=backend, power=None,
                     settings=SHORT, precisions=["fp16", "int8"]).run(list_sink())

    results = sweep()
    assert trt._fake.builds == 4 and len(results) == 4
    for r in results:
        assert r.backend == "tensorrt" and r.backend_version == "10.3.0" and r.device == "gpu"
        assert r.device_timing is not None and r.device_timing.compute_ms.mean > 0
        assert r.device_timing.h2d_ms.mean > 0 and r.device_timing.d2h_ms.mean > 0
        assert r.memory.backend_bytes == r.batch * trt._fake.device_memory_bytes_per_image
        assert r.conditions.sync_mode == "blocking"
        if r.precision == "int8":
            assert r.timing_only is True and r.calibration == "random"
        else:
            assert r.timing_only is False and r.calibration is None
    assert {(r.precision, r.batch) for r in results} == {(p, b) for p in ("fp16", "int8") for b in (1, 2)}
    assert len(sweep()) == 4 and trt._fake.builds == 4  # the second run built nothing
    assert balanced(cuda) and cuda._fake.live_device_bytes == 0


# -- the `run` command's TensorRT options --------------------------------------------------------------------------


def agent_cli(*args):
    from dnnprof.agent.cli import app

    return CliRunner().invoke(app, ["run", *map(str, args)])


FAST = ["--duration", "10ms", "--max-duration", "30ms", "--warmup", "0s", "--max-warmup", "20ms",
        "--min-iterations", "2", "--idle", "0s", "--power-source", "none", "--telemetry-rate", "0"]


def test_run_on_tensorrt(install_fakes, tiny, tmp_path):
    trt, _ = install_fakes("10.3.0")
    out = tmp_path / "out.jsonl"
    cache = tmp_path / "cache"
    result = agent_cli(tiny.path, "--backend", "tensorrt", "--precision", "fp16,int8", "--batch", "1,2",
                       "--engine-cache", cache, "--workspace", "512MiB", "--output", out, "--json", *FAST)
    assert result.exit_code == 0, result.output
    assert trt._fake.builds == 4 and trt._fake.last_build["workspace"] == 512 << 20
    assert len(list(cache.glob("*.engine"))) == 4
    results = json.loads(result.stdout)
    assert {(r["precision"], r["timing_only"]) for r in results} == {("fp16", False), ("int8", True)}
    assert "built engine tiny b1 fp16" in result.stderr
    # again: nothing is built, and --rebuild-engines builds everything again
    result = agent_cli(tiny.path, "--backend", "tensorrt", "--precision", "fp16", "--batch", "1",
                       "--engine-cache", cache, "--workspace", "512MiB", "--output", out, *FAST)
    assert result.exit_code == 0 and trt._fake.builds == 4 and "loaded engine tiny b1 fp16 from cache" in result.stderr
    result = agent_cli(tiny.path, "--precision", "fp16", "--batch", "1", "--engine-cache", cache, "--workspace",
                       "512MiB", "--rebuild-engines", "--output", out, "--quiet", *FAST)
    assert result.exit_code == 0 and trt._fake.builds == 5 and result.stderr == ""


@pytest.mark.parametrize("args, words", [
    (["--workspace", "lots"], "--workspace 'lots' is not a size"),
    (["--precision", "fp16", "--calibration", "."], "--calibration calibrates int8 engines"),
    (["--dla-core", "0"], "backend tensorrt on DLA core 0 runs fp16, int8, not 'fp32'"),
    (["--dla-core", "5", "--precision", "fp16"], "DLA core 5 does not exist"),
    (["--backend", "onnxruntime", "--dla-core", "0"], "--engine-cache, --dla-core only apply to the tensorrt backend"),
    (["--threads", "2"], "--threads only applies to the onnxruntime backend"),
])
def test_run_option_errors(install_fakes, tiny, tmp_path, args, words):
    install_fakes("8.6.2", dla_cores=2)
    result = agent_cli(tiny.path, "--engine-cache", tmp_path / "cache", "--output", tmp_path / "o.jsonl",
                       *args, *FAST)
    assert result.exit_code != 0 and isinstance(result.exception, UserError)
    assert words in str(result.exception)


def test_run_help_mentions_tensorrt():
    result = CliRunner().invoke(__import__("dnnprof.agent.cli", fromlist=["app"]).app, ["run", "--help"],
                                env={"COLUMNS": "200"})
    for words in ("tensorrt", "--engine-cache", "--dla-core", "--calibration", "--rebuild-engines", "--workspace"):
        assert words in result.output
