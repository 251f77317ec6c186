"""Sweeps over real models on ONNX Runtime (and a runner with controlled latency), sending to a list-collecting sink.

Power comes from the real estimate source on this /proc, or from RaplSource over a recorded powercap tree whose
counters a background thread moves at a known power.
"""

import os
import shutil
import threading
from pathlib import Path

import pytest

from dnnprof.agent.backends import get_backend
from dnnprof.agent.measure import profiler
from dnnprof.agent.measure.sweep import Sweep, model_cost, new_run_id
from dnnprof.shared import onnxfile, opcount as inspect
from dnnprof.agent.power.estimate import EstimateSource
from dnnprof.agent.power.rapl import RaplSource
from dnnprof.shared import schema, topics
from dnnprof.shared.errors import UserError

SHORT = profiler.Settings(warmup_min_s=0.05, warmup_min_iterations=2, warmup_max_s=1.0, window_min_s=0.3,
                          window_max_s=0.6, min_iterations=5, min_power_samples=3, latency_ci=0.2, power_ci=0.5,
                          check_every_s=0.05, idle_s=0.2)
PACKAGES = {"intel-rapl:0": 3.0, "intel-rapl:1": 1.0}  # package-0 and package-1 of the recorded tree, watts
# How close a 0.2 s baseline over the moving tree comes to the writer's power on a loaded 2-core machine: the
# counter a sampler reads is up to a millisecond or two stale (more when the writer thread waits for a CPU).
IDLE_REL = 0.05


def settings(**changes) -> profiler.Settings:
    return profiler.Settings(**{**{f: getattr(SHORT, f) for f in profiler.Settings.__dataclass_fields__}, **changes})



@pytest.fixture(scope="module")
def model(model_path):
    return onnxfile.load(model_path)


@pytest.fixture(scope="module")
def backend():
    return get_backend("onnxruntime")


def make_sweep(models, batches, backend, power, run_id="r1", settings=SHORT, **kw) -> Sweep:
    return Sweep(board="test-board", run_id=run_id, models=models, batches=batches, backend=backend, power=power,
                 settings=settings, **kw)


def shape(messages) -> list[str]:
    return [m.event if isinstance(m, schema.RunEvent) else schema.KIND_OF[type(m)] for m in messages]


def idle_seen(sweep: Sweep) -> list:
    """An on_point callback recording the idle baseline the sweep held after each point."""
    seen: list = []
    return seen, lambda result: seen.append(sweep._idle_cache)


def assert_net_arithmetic(r: schema.Result):
    """Net = (gross energy - idle power x window) / images, per rail and in total; rails add up to the total."""
    e = r.energy_per_inference_j
    assert e.gross == pytest.approx(r.energy_j / r.images, rel=1e-9)
    assert e.net == pytest.approx((r.energy_j - r.idle_power_w * r.window_s) / r.images, rel=1e-9, abs=1e-15)
    assert sum(rail.power_w for rail in r.rails.values()) == pytest.approx(r.power_w, rel=1e-9)
    assert sum(rail.idle_power_w for rail in r.rails.values()) == pytest.approx(r.idle_power_w, rel=1e-9)
    assert sum(rail.energy_per_inference_j.gross for rail in r.rails.values()) == pytest.approx(e.gross, rel=1e-9)
    assert sum(rail.energy_per_inference_j.net for rail in r.rails.values()) == pytest.approx(e.net, rel=1e-6,
                                                                                              abs=1e-12)
    for rail in r.rails.values():
        gross_j = rail.power_w * r.window_s
        assert rail.energy_per_inference_j.gross == pytest.approx(gross_j / r.images, rel=1e-9)
        assert rail.energy_per_inference_j.net == pytest.approx(
            (gross_j - rail.idle_power_w * r.window_s) / r.images, rel=1e-9, abs=1e-15)


# --- ONNX Runtime with the estimate source: one sweep, checked from every side --------------------------------------


@pytest.fixture(scope="module")
def estimate_run(model, backend, list_sink):
    sink = list_sink()
    sweep = make_sweep([model], [1, 2], backend, EstimateSource())
    points: list[schema.Result] = []
    results = sweep.run(sink, on_point=points.append)
    return sweep, sink, points, results


def test_sweep_events_in_order(estimate_run, model, backend):
    sweep, sink, points, results = estimate_run
    assert sweep.points == 2
    assert shape(sink.messages) == ["started", "result", "progress", "result", "progress", "finished"]
    events = [m for m in sink.messages if isinstance(m, schema.RunEvent)]
    assert [m.seq for m in events] == [0, 1, 2, 3]
    assert [m.points_done for m in events] == [0, 1, 2, 2]
    assert all(m.points_total == 2 and m.run_id == "r1" for m in events)
    assert [(m.network, m.batch) for m in events if m.event == "progress"] \
        == [("shufflenet_v2_x0_5", 1), ("shufflenet_v2_x0_5", 2)]
    assert [r.batch for r in results] == [1, 2]
    assert [r.id for r in points] == [r.id for r in results]
    assert [m for m in sink.messages if isinstance(m, schema.Result)] == results
    assert not sink.closed  # the caller owns the sink
    assert len({r.id for r in results}) == 2


def test_run_events_carry_precision_and_the_time_left(estimate_run):
    _, sink, _, _ = estimate_run
    started, first, second, finished = [m for m in sink.messages if isinstance(m, schema.RunEvent)]
    assert all(m.precision == "fp32" for m in (started, first, second, finished))
    assert started.eta_s is None  # no point finished: nothing to estimate from
    # one point of two done: the time left is the time the first one took
    assert first.eta_s == pytest.approx(first.ts - started.ts, abs=0.05)
    assert second.eta_s == 0 and finished.eta_s == 0


def test_eta_is_the_average_point_time_times_the_points_left(model, sleep_backend, sleep_runner, list_sink):
    backend = sleep_backend(lambda m, batch: sleep_runner(lambda n: 0.002 * batch))
    sink = list_sink()
    make_sweep([model], [1, 2, 4, 8], backend, None, settings=settings(idle_s=0, window_min_s=0.1)).run(sink)
    progress = [m for m in sink.messages if isinstance(m, schema.RunEvent) and m.event == "progress"]
    start = sink.messages[0].ts
    for m in progress:
        assert m.eta_s == pytest.approx((m.ts - start) / m.points_done * (4 - m.points_done), abs=0.05)
    assert [m.eta_s > 0 for m in progress] == [True, True, True, False]


def test_result_describes_the_point(estimate_run, model, backend):
    _, _, _, results = estimate_run
    for r in results:
        assert r.board == "test-board" and r.run_id == "r1"
        assert r.network == "shufflenet_v2_x0_5" and r.model_sha256 == model.sha256
        assert r.input_shape == [3, 224, 224]
        assert r.backend == "onnxruntime" and r.backend_version == backend.version
        assert r.device == "cpu" and r.precision == "fp32" and r.threads == backend.threads
        assert schema.decode(schema.encode(r)) == r
        assert r.conditions.sync_mode == "synchronous"
        assert r.memory.process_peak_rss_bytes > 0
        assert r.device_timing is None


def test_result_carries_the_model_cost(estimate_run, model_path):
    _, _, _, results = estimate_run
    found = inspect.inspect(model_path)
    fc = found.by_kind["fully_connected"]
    for r in results:
        assert r.model_cost == schema.ModelCost(params=found.params, macs=found.macs, fc_macs=fc["macs"],
                                                fc_params=fc["params"], complete=True,
                                                activation_bytes=found.activation_bytes)
    cost = results[0].model_cost
    assert 0 < cost.fc_macs < cost.macs and cost.activation_bytes > 0


def test_uninspectable_model_gives_no_cost_and_says_so(tmp_path, caplog):
    bad = tmp_path / "bad.onnx"
    bad.write_bytes(b"not onnx")
    fake = onnxfile.ModelFile(path=bad, name="bad", sha256="0" * 64, input_name="x", input_shape=(3, 8, 8),
                              fixed_batch=None)
    assert model_cost(fake) is None
    assert "cannot count the operations" in caplog.text


def test_result_timing(estimate_run):
    _, _, _, results = estimate_run
    for r in results:
        lat = r.latency_ms
        assert 0 < lat.min <= lat.p50 <= lat.p90 <= lat.p95 <= lat.p99 <= lat.max
        assert r.window_s >= SHORT.window_min_s and r.warmup_s >= SHORT.warmup_min_s
        assert r.warmup_iterations >= SHORT.warmup_min_iterations
        assert r.iterations >= SHORT.min_iterations and r.images == r.batch * r.iterations
        assert r.throughput_ips == pytest.approx(r.images / r.window_s, rel=1e-9)
        assert r.latency_cov == pytest.approx(lat.stdev / lat.mean, rel=1e-9)
        assert r.unstable == (r.latency_cov > SHORT.unstable_cov)
        c = r.confidence
        assert c.level == 0.95 and c.stop in ("converged", "max_time")
        assert c.latency_relative == pytest.approx(c.latency_ms_mean / lat.mean, rel=1e-9)
        if c.stop == "converged":
            assert c.latency_relative <= SHORT.latency_ci and c.power_relative <= SHORT.power_ci


def test_result_energy_from_the_estimate(estimate_run):
    _, _, _, results = estimate_run
    for r in results:
        assert r.power_w > 0
        assert r.energy_j / r.window_s == pytest.approx(r.power_w, rel=1e-9)
        assert r.energy_per_inference_j.gross * r.throughput_ips == pytest.approx(r.power_w, rel=5e-3)
        assert r.rails.keys() == {"cpu"} and r.rails["cpu"].power_w == pytest.approx(r.power_w, rel=1e-9)
        assert r.idle is not None and r.idle.duration_s >= SHORT.idle_s and r.idle.samples >= 1
        assert r.idle_power_w is not None and r.idle.power_w == pytest.approx(r.idle_power_w)
        assert_net_arithmetic(r)
        assert r.confidence.power_w is not None


def test_result_provenance_from_the_estimate(estimate_run):
    _, _, _, results = estimate_run
    for r in results:
        p = r.provenance
        assert p.estimated is True and p.power_source == "estimate" and p.boundary == "estimate"
        assert "estimate" in p.method and p.rails == ["cpu"]
        assert p.samples >= p.unique_samples > 0
        assert p.sample_rate_hz > 0
        assert p.update_interval_s == pytest.approx(1 / os.sysconf("SC_CLK_TCK"))
        assert p.sampler_cpu_fraction is not None and 0 <= p.sampler_cpu_fraction < 0.2


def test_sweep_without_power(model, backend, list_sink):
    sink = list_sink()
    (r,) = make_sweep([model], [1], backend, None).run(sink)
    assert shape(sink.messages) == ["started", "result", "progress", "finished"]
    assert r.power_w is None and r.energy_j is None and r.energy_per_inference_j is None  # never 0
    assert r.idle is None and r.idle_power_w is None and r.rails == {}
    assert r.confidence.power_w is None and r.confidence.power_relative is None
    p = r.provenance
    assert p.power_source is None and p.boundary is None and p.estimated is False
    assert p.sample_rate_hz is None and p.samples == 0 and p.unique_samples == 0 and p.rails == []
    assert p.sampler_cpu_fraction is None and p.update_interval_s is None
    assert "no power source" in p.method
    assert r.throughput_ips > 0


@pytest.mark.parametrize("threshold, flagged", [(0.0, True), (1e9, False)])
def test_unstable_flag_follows_the_threshold(model, backend, threshold, flagged, list_sink):
    (r,) = make_sweep([model], [1], backend, None, settings=settings(unstable_cov=threshold)).run(list_sink())
    assert r.latency_cov > 0
    assert r.unstable is flagged


def test_noisy_runner_is_unstable_and_a_steady_one_is_not(model, sleep_backend, sleep_runner, list_sink):
    import random

    rng = random.Random(7)
    # 5 ms sleeps (CoV a few % on a quiet machine, up to ~0.3 on an overloaded one) against batches that take
    # either 0.5 ms or 12 ms (CoV ~0.9)
    latency = {1: lambda n: 0.005, 2: lambda n: rng.choice((0.0005, 0.012))}
    backend = sleep_backend(lambda m, batch: sleep_runner(latency[batch]))
    s = settings(window_min_s=0.2, unstable_cov=0.5)
    steady, noisy = make_sweep([model], [1, 2], backend, None, settings=s).run(list_sink())
    assert steady.latency_cov < s.unstable_cov and steady.unstable is False
    assert noisy.latency_cov > s.unstable_cov and noisy.unstable is True
    assert steady.backend == "sleep" and steady.conditions.sync_mode == "synchronous"


# --- Idle baseline and net energy (RAPL on a recorded tree moving at a known power) ---------------------------------


def test_idle_baseline_is_reused_while_young(model, backend, powercap, list_sink):
    writer = powercap(PACKAGES)
    sweep = make_sweep([model], [1, 2], backend, RaplSource(root=writer.root), settings=settings(idle_max_age_s=60))
    seen, on_point = idle_seen(sweep)
    r1, r2 = sweep.run(list_sink(), on_point=on_point)
    assert seen[0] is seen[1]  # the same Idle object
    assert r1.idle.power_w == r2.idle.power_w and r1.idle.samples == r2.idle.samples
    assert r1.idle.duration_s == r2.idle.duration_s
    assert r1.idle.age_s >= r1.warmup_s
    assert r2.idle.age_s >= r1.idle.age_s + r1.window_s + r2.warmup_s  # it kept ageing
    assert r1.idle.power_w == pytest.approx(writer.total_w, rel=IDLE_REL)
    for r in (r1, r2):
        assert r.provenance.power_source == "rapl" and r.provenance.estimated is False
        assert r.rails.keys() == {"package-0", "package-1"}
        assert r.rails["package-0"].idle_power_w == pytest.approx(3.0, rel=IDLE_REL)
        assert r.rails["package-1"].idle_power_w == pytest.approx(1.0, rel=IDLE_REL)
        assert r.power_w == pytest.approx(writer.total_w, rel=IDLE_REL)  # constant power: busy or not
        assert_net_arithmetic(r)
        assert abs(r.energy_per_inference_j.net) < 2 * IDLE_REL * r.energy_per_inference_j.gross  # nothing above


def test_idle_baseline_is_remeasured_when_old(model, backend, powercap, list_sink):
    writer = powercap(PACKAGES)
    sweep = make_sweep([model], [1, 2], backend, RaplSource(root=writer.root), settings=settings(idle_max_age_s=1e-3))
    seen, on_point = idle_seen(sweep)
    r1, r2 = sweep.run(list_sink(), on_point=on_point)
    assert seen[0] is not seen[1]
    assert seen[1].t_end > seen[0].t_end + r1.window_s
    for r in (r1, r2):  # each baseline measured just before its own point
        assert r.warmup_s <= r.idle.age_s < r.warmup_s + 0.2
        assert r.idle.power_w == pytest.approx(writer.total_w, rel=IDLE_REL)
        assert_net_arithmetic(r)


def test_idle_baseline_is_remeasured_when_the_governor_changes(model, sleep_backend, sleep_runner, powercap,
                                                                tmp_path, list_sink):
    writer = powercap(PACKAGES)
    root = tmp_path / "machine"
    governor = root / "sys/devices/system/cpu/cpu0/cpufreq/scaling_governor"
    governor.parent.mkdir(parents=True)
    governor.write_text("performance\n")
    backend = sleep_backend(lambda m, batch: sleep_runner(lambda n: 0.003))
    sweep = make_sweep([model], [1, 2], backend, RaplSource(root=writer.root),
                       settings=settings(idle_max_age_s=60, window_min_s=0.2), root=str(root))
    seen: list = []

    def on_point(result):
        seen.append(sweep._idle_cache)
        governor.write_text("powersave\n")

    r1, r2 = sweep.run(list_sink(), on_point=on_point)
    assert seen[0] is not seen[1]  # young, but measured at another clock policy
    assert (seen[0].key, seen[1].key) == ("performance", "powersave")
    assert r1.conditions.clocks == r1.provenance.clocks == "cpu governor performance"
    assert r2.conditions.clocks == "cpu governor powersave"
    assert r2.warmup_s <= r2.idle.age_s < r2.warmup_s + 0.2  # fresh
    assert r1.memory.process_peak_rss_bytes is None  # that root has no /proc: unknown, not 0


def test_net_energy_per_inference(model, sleep_backend, sleep_runner, powercap, list_sink):
    # package-0 draws 3 W idle and 2 W more while a batch runs; package-1 draws 1 W throughout
    writer = powercap(PACKAGES, busy_watts={"intel-rapl:0": 2.0})
    backend = sleep_backend(lambda m, batch: sleep_runner(lambda n: 0.004, busy=writer.busy))
    s = settings(idle_s=0.5, window_min_s=0.5, min_power_samples=10)
    (r,) = make_sweep([model], [2], backend, RaplSource(root=writer.root), settings=s).run(list_sink())
    assert_net_arithmetic(r)
    assert r.idle_power_w == pytest.approx(4.0, rel=0.03)
    assert r.rails["package-0"].idle_power_w == pytest.approx(3.0, rel=0.03)
    assert r.rails["package-1"].idle_power_w == pytest.approx(1.0, rel=0.03)
    assert r.rails["package-0"].power_w == pytest.approx(5.0, rel=0.05)  # busy nearly all the window
    assert r.rails["package-1"].power_w == pytest.approx(1.0, rel=0.03)
    # the extra 2 W over one batch's time, shared by its 2 images
    busy_per_image_j = 2.0 * r.latency_ms.mean / 1e3 / r.batch
    assert r.energy_per_inference_j.net == pytest.approx(busy_per_image_j, rel=0.15)
    assert r.rails["package-0"].energy_per_inference_j.net == pytest.approx(busy_per_image_j, rel=0.15)
    p1 = r.rails["package-1"].energy_per_inference_j
    assert abs(p1.net) < 0.06 * p1.gross  # nothing above idle on package-1
    assert r.energy_per_inference_j.gross * r.throughput_ips == pytest.approx(r.power_w, rel=5e-3)
    assert r.images == r.batch * r.iterations
    assert r.provenance.samples >= r.provenance.unique_samples >= s.min_power_samples
    assert r.provenance.sample_rate_hz == pytest.approx(100, rel=0.3)
    assert r.provenance.update_interval_s == 0.001


def test_no_idle_baseline_gives_no_net_figures(model, backend, powercap, list_sink):
    writer = powercap(PACKAGES)
    (r,) = make_sweep([model], [1], backend, RaplSource(root=writer.root), settings=settings(idle_s=0)).run(list_sink())
    assert r.idle is None and r.idle_power_w is None
    assert r.energy_per_inference_j.gross > 0 and r.energy_per_inference_j.net is None
    for rail in r.rails.values():
        assert rail.idle_power_w is None and rail.energy_per_inference_j.net is None
        assert rail.energy_per_inference_j.gross > 0
    assert r.power_w == pytest.approx(writer.total_w, rel=IDLE_REL)


# --- Failures -----------------------------------------------------------------------------------------------------


def slow(path: Path, layers: int = 48) -> Path:
    """(N, 1, 32, 32) reshaped to (N, 1024), then ``layers`` (N, 1024) x (1024, 1024) MatMuls: seconds per batch
    at a batch in the thousands."""
    from onnx import TensorProto, helper, numpy_helper
    import numpy as np
    import onnx

    weight = np.random.default_rng(0).standard_normal((1024, 1024), dtype=np.float32) * 0.03
    nodes = [helper.make_node("Reshape", ["x", "flat"], ["h0"])]
    nodes += [helper.make_node("MatMul", [f"h{i}", "w"], [f"h{i + 1}" if i + 1 < layers else "y"])
              for i in range(layers)]
    graph = helper.make_graph(nodes, "slow", [helper.make_tensor_value_info("x", TensorProto.FLOAT, ["N", 1, 32, 32])],
                              [helper.make_tensor_value_info("y", TensorProto.FLOAT, ["N", 1024])],
                              initializer=[numpy_helper.from_array(weight, "w"),
                                           numpy_helper.from_array(np.array([-1, 1024], dtype=np.int64), "flat")])
    onnx.save(helper.make_model(graph, opset_imports=[helper.make_opsetid("", 13)], ir_version=7), str(path))
    return path


def failures(messages) -> list[schema.Failure]:
    return [m for m in messages if isinstance(m, schema.Failure)]


def test_a_model_onnx_runtime_cannot_run_at_one_batch_fails_that_point_only(backend, tmp_path, list_sink, reshaping):
    model = onnxfile.load(reshaping(tmp_path / "reshaping.onnx", 128))
    sink = list_sink()
    sweep = make_sweep([model], [2, 3, 4], backend, None, settings=settings(idle_s=0))
    results = sweep.run(sink)
    assert [r.batch for r in results] == [2, 4]  # the sweep went on past batch 3
    assert shape(sink.messages) == ["started", "result", "progress", "failure", "progress", "result", "progress",
                                    "finished"]
    (f,) = failures(sink.messages)
    assert sweep.failures == [f]
    assert (f.network, f.batch, f.precision, f.device, f.backend) == ("reshaping", 3, "fp32", "cpu", "onnxruntime")
    assert f.error == "runtime_error" and f.stage == "warmup" and f.cause is None
    assert "Reshape" in f.message and "\n" not in f.message and f.elapsed_s >= 0
    assert f.power_mode is None and f.run_id == "r1" and f.board == "test-board"
    progress = [m for m in sink.messages if isinstance(m, schema.RunEvent) and m.event == "progress"]
    assert progress[1].message.startswith("failed (runtime_error): ") and progress[1].points_done == 2
    finished = sink.messages[-1]
    assert finished.points_done == 3 and finished.message == "2 measured, 1 failed"
    assert schema.decode(schema.encode(f)) == f  # what the host receives


def test_nan_output_is_an_invalid_output_failure_never_a_result(model, backend, tmp_path, make_onnx, list_sink):
    nan = onnxfile.load(make_onnx(tmp_path / "sqrt.onnx", op="Sqrt"))  # sqrt of a random normal input: NaN
    sink = list_sink()
    results = make_sweep([nan, model], [1], backend, None, settings=settings(idle_s=0)).run(sink)
    assert [r.network for r in results] == [model.name]
    (f,) = failures(sink.messages)
    assert (f.network, f.error, f.stage) == ("sqrt", "invalid_output", "check")
    assert "NaN" in f.message and "'y0'" in f.message


def test_a_model_onnx_runtime_cannot_load_is_a_build_failure(model, backend, tmp_path, make_onnx, list_sink):
    broken = onnxfile.load(make_onnx(tmp_path / "broken.onnx", op="NoSuchOp"))  # onnx reads it, ORT cannot
    sink = list_sink()
    results = make_sweep([broken, model], [1], backend, None).run(sink)
    assert [r.network for r in results] == [model.name]
    (f,) = failures(sink.messages)
    assert (f.network, f.stage) == ("broken", "prepare")
    assert f.error == "build_failed" and f.message.startswith("onnxruntime cannot load")
    assert sink.messages[-1].event == "finished"


def test_runner_raising_mid_window_is_a_failure_and_is_closed(model, sleep_backend, sleep_runner, list_sink):
    backend = sleep_backend(lambda m, batch: sleep_runner(lambda n: 0.002, fail_at=None if batch == 1 else 10))
    sink = list_sink()
    sweep = make_sweep([model], [1, 2], backend, EstimateSource(), settings=settings(idle_s=0, window_min_s=0.1))
    results = sweep.run(sink)
    assert [r.batch for r in results] == [1]
    (f,) = failures(sink.messages)
    assert (f.batch, f.error, f.message) == (2, "runtime_error", "device lost at batch 10")
    assert f.stage in ("warmup", "window")
    assert all(r.closed for r in backend.runners)  # the failing runner was closed too
    assert not [t for t in threading.enumerate() if t.name.startswith("power-")]  # no sampler left running


def test_out_of_memory_rules_out_the_larger_batches_of_that_network_and_precision(model, sleep_backend,
                                                                                  sleep_runner, list_sink):
    def make(m, batch):
        if batch >= 8:  # as onnxruntime says it on the CPU
            raise RuntimeError("[ONNXRuntimeError] : 6 : RUNTIME_EXCEPTION : Exception during initialization: "
                               "Failed to allocate memory for requested buffer of size 1073741824")
        return sleep_runner(lambda n: 0.001)

    sink = list_sink()
    sweep = make_sweep([model], [16, 8, 1, 32, 4], sleep_backend(make), None,
                       settings=settings(idle_s=0, window_min_s=0.05), precisions=["fp16", "int8"])
    results = sweep.run(sink)
    assert [(r.precision, r.batch) for r in results] == [("fp16", 1), ("fp16", 4), ("int8", 1), ("int8", 4)]
    got = [(f.precision, f.batch, f.error, f.stage, f.cause) for f in failures(sink.messages)]
    assert got == [
        ("fp16", 16, "out_of_memory", "prepare", None), ("fp16", 8, "out_of_memory", "prepare", None),
        ("fp16", 32, "out_of_memory", "not_run", f"{model.name} b=8 fp16"),  # the smallest batch that did not fit
        ("int8", 16, "out_of_memory", "prepare", None), ("int8", 8, "out_of_memory", "prepare", None),
        ("int8", 32, "out_of_memory", "not_run", f"{model.name} b=8 int8"),
    ]
    assert "Failed to allocate memory" in failures(sink.messages)[0].message
    assert failures(sink.messages)[2].message == f"not run: {model.name} b=8 fp16 ran out of memory, and a larger " \
                                                 "batch needs more"


def test_the_watchdog_gives_up_a_point_that_overruns_its_stage(backend, tmp_path, list_sink):
    model = onnxfile.load(slow(tmp_path / "slow.onnx"))
    # Batch 4096: 48 x 4096 x 1024 x 1024 MACs, about a second on this 2-core machine (170 GMAC/s): far past a
    # 0.05 s warm-up limit plus a 0.1 s grace, in its first batch. Batch 1 takes well under a millisecond.
    sweep = make_sweep([model], [1, 4096], backend, None,
                       settings=settings(idle_s=0, warmup_max_s=0.05, window_max_s=0.4, min_iterations=1,
                                         hang_grace_s=0.1))
    sink = list_sink()
    results = sweep.run(sink)
    assert [r.batch for r in results] == [1]
    (f,) = failures(sink.messages)
    assert (f.batch, f.error, f.stage) == (4096, "timeout", "warmup")
    assert "the warmup stage ran over its limit of 0.15 s" in f.message
    assert 0.15 <= f.elapsed_s < 5
    assert sink.messages[-1].event == "finished"
    worker, label, _ = sweep.guard.hung
    assert label == f"{model.name} b=4096 fp32"
    worker.join(120)  # the abandoned point ends on its own: ONNX Runtime was only slow
    assert not worker.is_alive()


def test_a_point_that_comes_back_within_the_grace_lets_the_next_one_run(model, sleep_backend, sleep_runner,
                                                                         list_sink):
    # Batch 2's first batch takes 1.3 s: past the 0.1 s warm-up limit plus 1 s grace (given up at 1.1 s), and back
    # well within the next grace (the next point waits until 2.1 s; the abandoned one ends near 1.45 s).
    backend = sleep_backend(lambda m, batch: sleep_runner((lambda n: 1.3 if n == 0 else 0.001) if batch == 2
                                                          else (lambda n: 0.001)))
    sink = list_sink()
    sweep = make_sweep([model], [1, 2, 4], backend, None,
                       settings=settings(idle_s=0, warmup_max_s=0.1, window_min_s=0.05, window_max_s=0.1,
                                         hang_grace_s=1.0))
    results = sweep.run(sink)
    assert [r.batch for r in results] == [1, 4]
    assert [(f.batch, f.error) for f in failures(sink.messages)] == [(2, "timeout")]
    assert sweep.guard.hung is None


def test_points_after_a_hung_backend_are_not_run_and_say_which_point_hung(model, sleep_backend, sleep_runner,
                                                                           list_sink):
    release = threading.Event()

    def latency(n):
        release.wait(30)  # hangs until the test lets it go
        return 0.0

    backend = sleep_backend(lambda m, batch: sleep_runner(latency if batch == 2 else (lambda n: 0.001)))
    sink = list_sink()
    sweep = make_sweep([model], [1, 2, 4, 8], backend, None,
                       settings=settings(idle_s=0, warmup_max_s=0.1, window_min_s=0.05, window_max_s=0.1,
                                         hang_grace_s=0.2))
    try:
        results = sweep.run(sink)
    finally:
        release.set()
    assert [r.batch for r in results] == [1]
    got = [(f.batch, f.error, f.stage, f.cause) for f in failures(sink.messages)]
    label = f"{model.name} b=2 fp32"
    assert got == [(2, "timeout", "warmup", None), (4, "timeout", "not_run", label), (8, "timeout", "not_run", label)]
    assert "has not returned from" in failures(sink.messages)[1].message
    assert sink.messages[-1].event == "finished"


def test_fixed_batch_model_rejected_at_construction(backend, tmp_path, make_onnx):
    fixed = onnxfile.load(make_onnx(tmp_path / "fixed.onnx", batch=1))
    with pytest.raises(UserError, match="fixed batch size of 1"):
        make_sweep([fixed], [1, 2], backend, None)
    assert make_sweep([fixed], [1], backend, None).points == 1  # its own batch is fine


def test_new_run_id_is_a_valid_topic_level():
    run_id = new_run_id()
    assert topics.check_id(run_id, "run id") == run_id
    assert new_run_id() != run_id


def test_several_precisions_are_measured_in_turn_each_labelled(model, sleep_backend, sleep_runner, list_sink):
    backend = sleep_backend(lambda m, batch: sleep_runner(lambda n: 0.001))
    sink = list_sink()
    sweep = make_sweep([model], [1, 2], backend, None, settings=settings(idle_s=0, window_min_s=0.05),
                       precisions=["fp16", "int8"])
    assert sweep.points == 4
    results = sweep.run(sink)
    assert [(r.precision, r.batch) for r in results] == [("fp16", 1), ("fp16", 2), ("int8", 1), ("int8", 2)]
    events = [m for m in sink.messages if isinstance(m, schema.RunEvent)]
    assert events[0].precision is None and events[-1].precision is None  # the sweep as a whole has several
    assert [e.precision for e in events if e.event == "progress"] == ["fp16", "fp16", "int8", "int8"]
    assert events[-1].points_done == events[-1].points_total == 4


def test_points_the_skip_hook_names_are_not_measured_and_events_say_why(model, sleep_backend, sleep_runner, list_sink):
    backend = sleep_backend(lambda m, batch: sleep_runner(lambda n: 0.001))
    sink = list_sink()
    asked, skipped = [], []

    def skip(m, batch, precision):
        asked.append((m.name, batch, precision))
        return "already measured" if batch == 1 else None

    sweep = make_sweep([model], [1, 2, 4], backend, None, settings=settings(idle_s=0, window_min_s=0.05), skip=skip)
    results = sweep.run(sink, on_skip=lambda m, b, p, why: skipped.append((b, why)))
    assert asked == [(model.name, b, "fp32") for b in (1, 2, 4)]
    assert [r.batch for r in results] == [2, 4] and len(backend.runners) == 2  # nothing was loaded for batch 1
    assert skipped == [(1, "already measured")]
    progress = [m for m in sink.messages if isinstance(m, schema.RunEvent) and m.event == "progress"]
    assert [(p.batch, p.message) for p in progress] == [(1, "skipped: already measured"), (2, None), (4, None)]
    assert progress[0].eta_s is None  # nothing measured yet: no pace to estimate from
    assert [p.points_done for p in progress] == [1, 2, 3]


def test_runner_labels_reach_the_result(model, sleep_backend, sleep_runner, list_sink):
    def make(m, batch):
        runner = sleep_runner(lambda n: 0.001)
        runner.calibration, runner.timing_only = "random", True
        return runner

    results = make_sweep([model], [1], sleep_backend(make), None, settings=settings(idle_s=0, window_min_s=0.05),
                         precisions=["int8"]).run(list_sink())
    assert results[0].calibration == "random" and results[0].timing_only is True


# --- Board facts and clock state on a recorded Jetson tree (tests/data/jetson) --------------------------------------

JETSON = Path(__file__).parents[2] / "data" / "jetson"


def jetson_root(tmp_path, name="orin-nano-jp6") -> Path:
    """A copy of a recorded Jetson tree: it has no /proc/stat, /proc/meminfo or thermal zones, which the sweep's
    other condition readers must take as unknown."""
    root = tmp_path / name
    shutil.copytree(JETSON / name, root)
    return root


def pin_clocks(root: Path) -> None:
    """What `sudo jetson_clocks` does to the files the agent reads: every minimum raised to its maximum."""
    for low in [*root.glob("sys/devices/system/cpu/cpu*/cpufreq/scaling_min_freq"),
                *root.glob("sys/class/devfreq/*/min_freq")]:
        low.write_text(low.with_name("scaling_max_freq" if low.name.startswith("scaling") else "max_freq").read_text())


def test_jetson_points_carry_board_facts_power_mode_and_clocks(model, sleep_backend, sleep_runner, powercap,
                                                               tmp_path, list_sink):
    writer = powercap(PACKAGES)
    root = jetson_root(tmp_path)
    backend = sleep_backend(lambda m, batch: sleep_runner(lambda n: 0.002))
    sweep = make_sweep([model], [1, 2, 4, 8], backend, RaplSource(root=writer.root),
                       settings=settings(idle_max_age_s=60, window_min_s=0.1), root=str(root))
    seen: list = []
    changes = {1: lambda: (root / "var/lib/nvpmodel/status").write_text("pmode:0003 fmode:quiet\n"),  # 15W -> 7W
               2: lambda: pin_clocks(root),  # jetson_clocks on
               3: lambda: (root / "proc/device-tree/model").write_bytes(b"changed\0")}  # facts are read once

    def on_point(result):
        seen.append(sweep._idle_cache)
        changes.get(len(seen), lambda: None)()

    results = sweep.run(list_sink(), on_point=on_point)
    assert [(r.conditions.power_mode, r.conditions.clocks) for r in results] == [
        ("15W", "jetson_clocks off"), ("7W", "jetson_clocks off"), ("7W", "jetson_clocks on"),
        ("7W", "jetson_clocks on")]
    for r in results:
        assert r.provenance.power_mode == r.conditions.power_mode and r.provenance.clocks == r.conditions.clocks
        f = r.board_facts
        assert f.model == "NVIDIA Jetson Orin Nano Engineering Reference Developer Kit Super"  # not "changed"
        assert (f.soc, f.l4t, f.jetpack, f.tensorrt, f.cuda, f.dla_cores) == (
            "tegra234", "36.4.3", "6.2", "10.3.0.30", "12.6.11", 0)  # the sleep backend is no TensorRT
        # the mode and clocks in the facts are the point's own
        assert (f.power_mode, f.jetson_clocks) == (r.conditions.power_mode, r.conditions.clocks.endswith("on"))
    assert [r.board_facts.power_mode_id for r in results] == [0, 3, 3, 3]
    # an idle baseline measured in another mode or clock state is never reused; in the same state it is
    assert seen[0] is not seen[1] and seen[1] is not seen[2] and seen[3] is seen[2]
    assert [i.key for i in seen[:3]] == [(0, "15W", False, "schedutil"), (3, "7W", False, "schedutil"),
                                         (3, "7W", True, "schedutil")]
    assert results[0].memory.process_peak_rss_bytes is None and results[0].conditions.temperatures_start_c == {}


def test_jetson_facts_take_the_tensorrt_backends_version(model, sleep_backend, sleep_runner, tmp_path, list_sink):
    backend = sleep_backend(lambda m, batch: sleep_runner(lambda n: 0.001))
    backend.name = "tensorrt"  # a backend that says it is TensorRT reports its own library version
    (r,) = make_sweep([model], [1], backend, None, settings=settings(idle_s=0, window_min_s=0.05),
                      root=str(jetson_root(tmp_path, "agx-orin-jp6"))).run(list_sink())
    assert r.board_facts.tensorrt == backend.version == "1.0"
    assert (r.conditions.power_mode, r.conditions.clocks, r.board_facts.dla_cores) == ("MAXN", "jetson_clocks on", 2)
    assert schema.decode(schema.encode(r)) == r


def test_jetson_without_readable_clocks_keeps_the_governor_wording(model, sleep_backend, sleep_runner, tmp_path,
                                                                   list_sink):
    root = jetson_root(tmp_path, "nano-jp4")
    shutil.rmtree(root / "sys/class/devfreq")
    for low in root.glob("sys/devices/system/cpu/cpu*/cpufreq/scaling_min_freq"):
        low.unlink()  # governor still there, min/max not both: jetson_clocks unknown
    (root / "var/lib/nvpmodel/status").unlink()  # and the mode unknown: a recorded tree has no nvpmodel to ask
    backend = sleep_backend(lambda m, batch: sleep_runner(lambda n: 0.001))
    (r,) = make_sweep([model], [1], backend, None, settings=settings(idle_s=0, window_min_s=0.05),
                      root=str(root)).run(list_sink())
    assert r.conditions.clocks == r.provenance.clocks == "cpu governor schedutil"
    assert r.conditions.power_mode is None and r.board_facts.power_mode is None
    assert r.board_facts.jetson_clocks is None and r.board_facts.model == "NVIDIA Jetson Nano Developer Kit"


def test_no_board_facts_off_a_jetson(model, sleep_backend, sleep_runner, tmp_path, list_sink):
    backend = sleep_backend(lambda m, batch: sleep_runner(lambda n: 0.001))
    sweep = make_sweep([model], [1], backend, None, settings=settings(idle_s=0, window_min_s=0.05),
                       root=str(tmp_path))
    (r,) = sweep.run(list_sink())
    assert r.board_facts is None and r.conditions.power_mode is None and r.provenance.power_mode is None
    assert sweep.clock_state().idle_key is None  # no governor either: the key is what it was before Jetsons


def test_a_hung_point_holds_off_the_next_sweeps_of_the_same_backend_too(model, sleep_backend, sleep_runner,
                                                                       list_sink):
    from dnnprof.agent.measure import failure

    release = threading.Event()
    backend = sleep_backend(lambda m, batch: sleep_runner((lambda n: release.wait(30) and 0.0) if batch == 2
                                                          else (lambda n: 0.001)))
    quick = settings(idle_s=0, warmup_max_s=0.1, window_min_s=0.05, window_max_s=0.1, hang_grace_s=0.2)
    guard = failure.Guard()  # what the session gives each of its sweeps
    try:
        first = make_sweep([model], [2], backend, None, settings=quick, guard=guard)
        first.run(list_sink())
        sink = list_sink()
        second = make_sweep([model], [1], backend, None, run_id="r2", settings=quick, guard=guard)
        assert second.run(sink) == []  # never measured beside the point still running
        (f,) = failures(sink.messages)
        assert (f.batch, f.stage, f.cause) == (1, "not_run", f"{model.name} b=2 fp32")
    finally:
        release.set()


# -- power modes and clocks as dimensions (a recorded AGX Orin tree, stand-in nvpmodel / jetson_clocks) -----------


def test_a_two_mode_sweep_switches_verifies_rebaselines_and_restores(model, backend, powercap, list_sink,
                                                                     switchable_board, tmp_path):
    from dnnprof.agent.board import clocks, modes

    root = switchable_board
    writer = powercap(PACKAGES)
    control = modes.Control(root, state_file=tmp_path / "state" / "power-restore.json", as_root=True, settle_s=2)
    setups = [modes.Setting(m, c) for m in control.resolve("MAXN,MODE_50W") for c in ("dvfs", "locked")]
    sweep = make_sweep([model], [1], backend, RaplSource(root=writer.root), settings=settings(idle_max_age_s=600),
                       root=str(root), setups=setups, control=control)
    seen, on_point = idle_seen(sweep)
    results = sweep.run(sink := list_sink(), on_point=on_point)
    assert [(r.conditions.power_mode, r.conditions.clocks) for r in results] == [
        ("MAXN", "jetson_clocks off"), ("MAXN", "jetson_clocks on"),
        ("MODE_50W", "jetson_clocks off"), ("MODE_50W", "jetson_clocks on")]
    assert [r.board_facts.power_mode_id for r in results] == [0, 0, 3, 3]
    # What the silicon ran at, over each window: the tree's frequencies under each mode's caps (the stand-ins bring
    # a clock above a new maximum down to it; nothing else moves them here).
    gpu = [r.conditions.frequencies_mhz["gpu"] for r in results]
    assert all(g.samples >= 2 for g in gpu)
    assert gpu[0].max == gpu[1].max == 1300.5 and gpu[2].max <= 816 and gpu[3].max <= 816
    assert all(f.max <= 1497.6 for r in results[2:] for name, f in r.conditions.frequencies_mhz.items()
               if name.startswith("cpu"))
    assert all(r.conditions.throttle_reasons == [] for r in results)
    assert len({id(idle) for idle in seen}) == 4  # a new idle baseline in each setting, though young enough
    notes = [e.message for e in sink.messages if isinstance(e, schema.RunEvent) and e.message]
    assert notes[0] == "switched to power mode MAXN (0), clocks dvfs"
    assert "switched to power mode MODE_50W (3), clocks locked" in notes
    calls = (root / "calls.log").read_text().splitlines()
    assert calls[:3] == [f"jetson_clocks --store {control.store_file}", "nvpmodel -m 0", "nvpmodel -m 0"]
    assert calls[-2:] == ["nvpmodel -m 0", f"jetson_clocks --restore {control.store_file}"]
    # Put back as found: MAXN with jetson_clocks on, and no marker left.
    assert clocks.power_mode(root) == ("MAXN", 0) and clocks.jetson_clocks(root) is True
    assert not control.state_file.exists()


def test_a_refused_mode_is_skipped_with_its_reason_and_the_sweep_goes_on(model, backend, list_sink,
                                                                         switchable_board, tmp_path):
    from dnnprof.agent.board import clocks, modes

    control = modes.Control(switchable_board, state_file=tmp_path / "m.json", as_root=True, settle_s=2)
    setups = [modes.Setting(m, None) for m in control.resolve("MODE_30W,MODE_50W")]  # 30W needs a reboot
    sweep = make_sweep([model], [1, 2], backend, None, root=str(switchable_board), setups=setups, control=control)
    results = sweep.run(sink := list_sink())
    assert [(r.conditions.power_mode, r.batch) for r in results] == [("MODE_50W", 1), ("MODE_50W", 2)]
    assert [(f.power_mode, f.batch, f.error, f.stage) for f in sweep.failures] == [
        ("MODE_30W", 1, "unsupported", "not_run"), ("MODE_30W", 2, "unsupported", "not_run")]
    assert "needs a reboot from MAXN" in sweep.failures[0].message
    assert sweep.failures[0].cause.startswith("power mode MODE_30W (2) needs a reboot from MAXN")
    assert sweep.failures[0].clocks is None or "jetson_clocks" in sweep.failures[0].clocks
    events = [e for e in sink.messages if isinstance(e, schema.RunEvent)]
    assert any(e.message and e.message.startswith("skipped power mode MODE_30W (2): ") for e in events)
    assert events[-1].event == "finished" and events[-1].points_done == 4
    assert clocks.power_mode(switchable_board) == ("MAXN", 0)


def test_an_interrupted_sweep_puts_the_board_back(model, backend, list_sink, switchable_board, tmp_path):
    from dnnprof.agent.board import clocks, modes
    from dnnprof.agent.measure.sweep import Interrupted

    control = modes.Control(switchable_board, state_file=tmp_path / "m.json", as_root=True, settle_s=2)
    setups = [modes.Setting(control.conf.modes[3], "locked")]

    def stop(*_):
        raise Interrupted("SIGTERM")

    sweep = make_sweep([model], [1], backend, None, root=str(switchable_board), setups=setups, control=control,
                       skip=stop)
    with pytest.raises(Interrupted):
        sweep.run(list_sink())
    assert clocks.power_mode(switchable_board) == ("MAXN", 0) and not control.state_file.exists()
