"""A sweep over real models on ONNX Runtime, sending to a list-collecting sink."""

import pytest

from dnnprof.agent import profiler
from dnnprof.agent.backends import get_backend
from dnnprof.agent.models import onnxfile
from dnnprof.agent.power.estimate import EstimateSource
from dnnprof.agent.sweep import Sweep, new_run_id
from dnnprof.shared import schema, topics
from dnnprof.shared.errors import UserError

SHORT = profiler.Settings(warmup_s=0.05, warmup_iterations=1, window_s=0.2, min_iterations=3)


class ListSink:
    """Keeps what it is sent, after a round trip through the wire format."""

    def __init__(self) -> None:
        self.messages: list[schema.Message] = []
        self.closed = False

    def send(self, message: schema.Message) -> None:
        self.messages.append(schema.decode(schema.encode(message)))

    def close(self) -> list[schema.Message]:
        self.closed = True
        return []


@pytest.fixture(scope="module")
def model(model_path):
    return onnxfile.load(model_path)


@pytest.fixture(scope="module")
def backend():
    return get_backend("onnxruntime")


def make_sweep(models, batches, backend, power, run_id="r1") -> Sweep:
    return Sweep(board="test-board", run_id=run_id, models=models, batches=batches, backend=backend, power=power,
                 settings=SHORT)


def shape(messages) -> list[str]:
    return [m.event if isinstance(m, schema.RunEvent) else schema.KIND_OF[type(m)] for m in messages]


def test_sweep_with_the_estimate_source(model, backend):
    sink = ListSink()
    sweep = make_sweep([model], [1, 2], backend, EstimateSource())
    assert sweep.points == 2
    points = []
    results = sweep.run(sink, on_point=points.append)
    assert shape(sink.messages) == ["started", "result", "progress", "result", "progress", "finished"]
    assert [m.seq for m in sink.messages if isinstance(m, schema.RunEvent)] == [0, 1, 2, 3]
    assert [m.points_done for m in sink.messages if isinstance(m, schema.RunEvent)] == [0, 1, 2, 2]
    assert all(m.points_total == 2 for m in sink.messages if isinstance(m, schema.RunEvent))
    assert [(m.network, m.batch) for m in sink.messages if isinstance(m, schema.RunEvent) and m.event == "progress"] \
        == [("shufflenet_v2_x0_5", 1), ("shufflenet_v2_x0_5", 2)]
    assert [r.batch for r in results] == [1, 2]
    assert [r.id for r in points] == [r.id for r in results]
    assert [m for m in sink.messages if isinstance(m, schema.Result)] == results
    assert not sink.closed  # the caller owns the sink
    for r in results:
        assert r.board == "test-board" and r.run_id == "r1"
        assert r.network == "shufflenet_v2_x0_5" and r.model_sha256 == model.sha256
        assert r.input_shape == [3, 224, 224]
        assert r.backend == "onnxruntime" and r.backend_version == backend.version
        assert r.device == "cpu" and r.precision == "fp32" and r.threads == backend.threads
        lat = r.latency_ms
        assert 0 < lat.min <= lat.p50 <= lat.p90 <= lat.p95 <= lat.p99 <= lat.max
        assert r.window_s >= SHORT.window_s and r.warmup_s >= SHORT.warmup_s
        assert r.iterations >= SHORT.min_iterations and r.images == r.iterations * r.batch
        assert r.throughput_ips == pytest.approx(r.images / r.window_s, rel=1e-9)
        assert r.power_w is not None and r.power_w > 0
        assert r.energy_j == pytest.approx(r.power_w * r.window_s, rel=1e-9)
        assert r.energy_per_inference_j is not None
        assert r.energy_per_inference_j.gross == pytest.approx(r.energy_j / r.images, rel=1e-9)
        p = r.provenance
        assert p.estimated is True and p.power_source == "estimate" and p.boundary == "estimate"
        assert "estimate" in p.method and p.rails == ["cpu"]
        assert p.sample_rate_hz > 0 and p.samples >= 1
    assert len({r.id for r in results}) == 2


def test_sweep_without_power(model, backend):
    sink = ListSink()
    (r,) = make_sweep([model], [1], backend, None).run(sink)
    assert shape(sink.messages) == ["started", "result", "progress", "finished"]
    assert r.power_w is None and r.energy_j is None and r.energy_per_inference_j is None  # never 0
    p = r.provenance
    assert p.power_source is None and p.boundary is None and p.estimated is False
    assert p.sample_rate_hz is None and p.samples == 0 and p.rails == []
    assert "no power source" in p.method
    assert r.throughput_ips > 0


def test_failing_backend_run_sends_failed(model, backend, tmp_path, make_onnx):
    broken = onnxfile.load(make_onnx(tmp_path / "broken.onnx", op="NoSuchOp"))  # onnx reads it, ORT cannot
    sink = ListSink()
    sweep = make_sweep([model, broken], [1], backend, None)
    with pytest.raises(UserError, match="onnxruntime cannot load"):
        sweep.run(sink)
    assert shape(sink.messages) == ["started", "result", "progress", "failed"]
    failed = sink.messages[-1]
    assert failed.seq == 2 and failed.points_done == 1 and failed.points_total == 2
    assert failed.network == "broken" and failed.batch == 1
    assert failed.message.startswith("UserError: onnxruntime cannot load")


def test_failure_at_the_first_point(backend, tmp_path, make_onnx):
    broken = onnxfile.load(make_onnx(tmp_path / "broken.onnx", op="NoSuchOp"))
    sink = ListSink()
    with pytest.raises(UserError):
        make_sweep([broken], [1, 2], backend, None).run(sink)
    assert shape(sink.messages) == ["started", "failed"]
    assert sink.messages[-1].seq == 1 and sink.messages[-1].points_done == 0


def test_fixed_batch_model_rejected_at_construction(backend, tmp_path, make_onnx):
    fixed = onnxfile.load(make_onnx(tmp_path / "fixed.onnx", batch=1))
    with pytest.raises(UserError, match="fixed batch size of 1"):
        make_sweep([fixed], [1, 2], backend, None)
    assert make_sweep([fixed], [1], backend, None).points == 1  # its own batch is fine


def test_new_run_id_is_a_valid_topic_level():
    run_id = new_run_id()
    assert topics.check_id(run_id, "run id") == run_id
    assert new_run_id() != run_id
