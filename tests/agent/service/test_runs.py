"""The service's runs: a host's runs queued in a real outbox file (kept across a reopen, as across a restart),
cancelled while running or while queued, and described for sweep_status."""

from __future__ import annotations

import time

import pytest

from dnnprof.agent.backends import get_backend
from dnnprof.agent.measure import profiler
from dnnprof.agent.measure.sweep import Sweep
from dnnprof.agent.service.outbox import Outbox
from dnnprof.agent.service.runs import Cancelled, Conductor
from dnnprof.shared import onnxfile, schema

BOARD = "runs-board"


def start(id: str, **fields) -> schema.Command:
    fields.setdefault("models", ["a.onnx", "b.onnx"])
    fields.setdefault("batches", [1, 8])
    return schema.Command(board=BOARD, ts=time.time(), id=id, action="sweep_start", **fields)


@pytest.fixture
def box(tmp_path):
    outbox = Outbox(tmp_path / "outbox.sqlite")
    yield outbox
    outbox.close()


def test_queued_runs_outlive_the_process_in_the_outbox_file(tmp_path, box):
    conductor = Conductor(box, lambda: None)
    assert conductor.enqueue(start("c1"), "run-1") == 0
    assert conductor.enqueue(schema.Command(board=BOARD, ts=time.time(), id="c2", action="measure", model="a.onnx",
                                            batch=4), "run-2") == 1
    box.close()
    again = Outbox(tmp_path / "outbox.sqlite")  # a restart (or a kill -9: every write was committed)
    try:
        conductor = Conductor(again, lambda: "MAXN")
        first = conductor.next(0.01)
        assert (first.command_id, first.run_id, first.state, first.command.models) == ("c1", "run-1", "queued",
                                                                                       ["a.onnx", "b.onnx"])
        again.claim_run("c1")
        assert [(r.command_id, r.state) for r in again.queued_runs()] == [("c1", "running"), ("c2", "queued")]
        state = conductor.state("fp32")
        assert state.power_mode == "MAXN" and state.running is None  # running in the file, not begun here
        assert [(q.run_id, q.networks, q.batches, q.precisions, q.points_total) for q in state.queue] == [
            ("run-1", ["a", "b"], [1, 8], ["fp32"], 4), ("run-2", ["a"], [4], ["fp32"], 1)]
        again.run_state("c1", "done")
        again.run_state("c2", "cancelled")
        assert again.queued_runs() == [] and conductor.next(0.01) is None
    finally:
        again.close()


def test_cancel_stops_the_running_run_at_its_next_point_or_takes_a_queued_one_off(box, model_path, list_sink):
    published = []
    conductor = Conductor(box, lambda: None)
    conductor.publish = published.append
    with pytest.raises(LookupError, match="no run is being measured: name the RUN"):
        conductor.cancel(None, "x1")
    conductor.enqueue(start("c1"), "run-9")
    with pytest.raises(LookupError, match="no run run-7 is running or queued"):
        conductor.cancel("run-7", "x2")
    # Taken off the queue: marked in the file, and a cancelled event tells the host's store the run ended.
    assert conductor.cancel("run-9", "x3") == ("run-9", "run run-9 taken off the queue before it began")
    assert box.queued_runs() == []
    (event,) = published
    assert (event.run_id, event.event, event.points_total, event.points_done) == ("run-9", "cancelled", 4, 0)

    # The running run: the sweep's next point boundary raises Cancelled, and the sweep ends with "cancelled".
    model = onnxfile.load(model_path)
    quick = profiler.Settings(warmup_min_s=0.0, warmup_min_iterations=1, warmup_max_s=0.05, window_min_s=0.02,
                              window_max_s=0.05, min_iterations=2, idle_s=0, latency_ci=0.5)

    def skip(m, batch, precision):
        conductor.check()
        if batch == 1:  # a host's cancel arrives while the first point is measured
            assert conductor.cancel(None, "x4")[1].startswith("run run-5 stops after its current point (0 of 3")
        return None

    sweep = Sweep(board=BOARD, run_id="run-5", models=[model], batches=[1, 2, 3], backend=get_backend("onnxruntime"),
                  power=None, settings=quick, skip=skip)
    conductor.enqueue(start("c5"), "run-5")
    assert conductor.start(conductor.next(0.01), sweep)
    assert conductor.state("fp32").running.state == "running"
    sink = list_sink()
    with pytest.raises(Cancelled, match=r"cancelled by the host \(command x4\) after 1 of 3 points"):
        sweep.run(sink)
    assert conductor.state("fp32").running.state == "cancelling"
    conductor.end()
    events = [m for m in sink.messages if isinstance(m, schema.RunEvent)]
    assert [e.event for e in events] == ["started", "progress", "cancelled"]
    assert events[-1].points_done == 1 and "command x4" in events[-1].message
    assert len([m for m in sink.messages if isinstance(m, schema.Result)]) == 1  # what it had is published


def quick_sweep(model_path, run_id: str, batches: list[int]) -> Sweep:
    quick = profiler.Settings(warmup_min_s=0.0, warmup_min_iterations=1, warmup_max_s=0.05, window_min_s=0.02,
                              window_max_s=0.05, min_iterations=2, idle_s=0, latency_ci=0.5)
    return Sweep(board=BOARD, run_id=run_id, models=[onnxfile.load(model_path)], batches=batches,
                 backend=get_backend("onnxruntime"), power=None, settings=quick)


def test_a_cancel_while_a_queued_run_is_being_prepared_wins(box, model_path):
    conductor = Conductor(box, lambda: None)
    conductor.enqueue(start("c1"), "run-1")
    queued = conductor.next(0.01)  # the service took it and loads its models ...
    conductor.cancel("run-1", "x1")  # ... while the host cancels it
    assert conductor.start(queued, quick_sweep(model_path, "run-1", [1])) is False  # so it never begins
    assert conductor.state("fp32").running is None and box.queued_runs() == []


def test_a_resumed_run_answers_to_the_id_the_host_was_given(tmp_path, box, model_path):
    conductor = Conductor(box, lambda: None)
    conductor.enqueue(start("c1"), "run-given")
    box.claim_run("c1")  # it was running when the agent was killed
    queued = conductor.next(0.01)
    assert queued.state == "running"
    sweep = quick_sweep(model_path, "run-resumed", [1, 2])  # resumed under a new id
    assert conductor.start(queued, sweep, note="resumes run run-given")
    assert conductor.cancel("run-given", "x1")[0] == "run-resumed"
    assert box.queued_runs()[0].run_id == "run-given"  # the row keeps the host's id


def test_a_cancel_at_the_last_point_says_the_run_ends_as_finished(box, model_path):
    conductor = Conductor(box, lambda: None)
    sweep = quick_sweep(model_path, "run-1", [1, 2])
    conductor.begin(sweep)
    sweep.done, sweep.current = 1, "m b=2 fp32"  # measuring its last point
    assert conductor.cancel(None, "x1")[1] == "run run-1 is at its last point (m b=2 fp32): it ends when that " \
                                              "point does, as finished"
