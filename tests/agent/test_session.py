"""session: the one wiring path of `run` and `serve` — backend choice and its option rule, the power source (shared
between sweep and telemetry, or NO_POWER), board info and birth, sweeps and the telemetry feed."""

from pathlib import Path

import pytest

from dnnprof.agent.backends import get_backend
from dnnprof.agent.measure import profiler
from dnnprof.shared import onnxfile
from dnnprof.agent.power import NO_POWER, Selection, open_live
from dnnprof.agent.publish.telemetry import SharedSource, TelemetryPublisher
from dnnprof.agent.session import BackendChoice, Session, unsupported_precision
from dnnprof.shared import schema

DATA = Path(__file__).parents[1] / "data"
SHORT = profiler.Settings(warmup_min_s=0.0, warmup_min_iterations=1, warmup_max_s=0.05, window_min_s=0.05,
                          window_max_s=0.2, min_iterations=3, min_power_samples=2, latency_ci=0.5, power_ci=0.5,
                          idle_s=0.05)


@pytest.mark.parametrize(("choice", "foreign"), [
    (BackendChoice("onnxruntime", threads=2), []),
    (BackendChoice("onnxruntime", dla_core=0), ["dla_core"]),  # core 0 is given, not "no core"
    (BackendChoice("onnxruntime", engine_cache=Path("e"), calibration=Path("c"), rebuild=True, workspace_bytes=1),
     ["engine_cache", "rebuild", "workspace_bytes"]),  # int8 calibration belongs to both
])
def test_options_the_backend_does_not_take(choice, foreign):
    assert choice.resolved == "onnxruntime" and choice.foreign() == foreign


def test_open_gives_the_backend_with_its_options():
    backend = BackendChoice("onnxruntime", threads=1).open()
    assert backend.name == "onnxruntime" and backend.threads == 1


def test_unsupported_precision_names_the_first_one():
    backend = get_backend("onnxruntime")
    assert unsupported_precision(["fp32"], backend) is None
    assert unsupported_precision(["fp32", "fp16", "int8"], backend) is None  # fp16 and int8: converted models
    assert unsupported_precision(["fp32", "bf16", "fp8"], backend) == "bf16"


def test_without_a_power_source_the_session_says_no_energy(model_path, list_sink):
    session = Session("sess-a", get_backend("onnxruntime", threads=1), Selection(None), SHORT)
    assert session.power is NO_POWER and session.power_words() == "none (no energy)"
    status, info = session.birth(7)
    assert isinstance(status, schema.Status) and status.state == "online" and status.session == 7
    assert isinstance(info, schema.BoardInfo) and info.power_source is None and info.power_boundary is None
    assert info.power_estimated is False and info.backends == {"onnxruntime": session.backend.version}
    sweep = session.sweep("run-1", [onnxfile.load(model_path)], [1], ["fp32"])
    assert sweep.power is NO_POWER
    [result] = sweep.run(list_sink())
    assert result.energy_per_inference_j is None and result.power_w is None and result.idle is None
    assert result.provenance.power_source is None and result.provenance.method.startswith("no power source")
    session.close()


def test_a_measuring_source_is_shared_by_sweep_and_telemetry(model_path, list_sink):
    selection = open_live(f"estimate:{DATA / 'procstat' / 'x86-4cpu'}")
    session = Session("sess-b", get_backend("onnxruntime", threads=1), selection, SHORT)
    try:
        assert isinstance(session.power, SharedSource) and session.power.source is selection.source
        assert session.power_words() == "estimate (ESTIMATED)"
        info = session.board_info(3)
        assert (info.power_source, info.power_boundary, info.power_estimated) == ("estimate", "estimate", True)
        sweep = session.sweep("run-2", [onnxfile.load(model_path)], [1], ["fp32"])
        assert sweep.power is session.power
        feed = session.telemetry(list_sink(), rate_hz=2, samples_hz=10)
        assert isinstance(feed, TelemetryPublisher) and feed.source is session.power
        assert session.telemetry(list_sink(), rate_hz=0, samples_hz=10) is None  # 0 = off
    finally:
        session.close()


def test_birth_carries_the_stream_mark():
    session = Session("sess-c", get_backend("onnxruntime"), Selection(None), SHORT)
    mark = schema.Stream(id=1, seq=5)
    status, _ = session.birth(1, stream=mark)
    assert status.stream == mark
