"""Failure classes from what the libraries raise (their own words), the output check and the stage watch."""

import threading

import numpy as np
import pytest

from dnnprof.agent.backends import PointError
from dnnprof.agent.measure import failure
from dnnprof.shared import schema


class MemoryError(Exception):  # noqa: A001 - named as pycuda._driver.MemoryError is (not the built-in)
    pass


@pytest.mark.parametrize(("exc", "stage", "kind"), [
    (MemoryError("cuMemAlloc failed: out of memory"), "prepare", "out_of_memory"),  # pycuda
    (RuntimeError("[ONNXRuntimeError] : 6 : RUNTIME_EXCEPTION : Failed to allocate memory for requested buffer of "
                  "size 4294967296"), "warmup", "out_of_memory"),
    (RuntimeError("TensorRT could not build an engine for x b64 fp16: 2: [virtualMemoryBuffer.cpp::resizePhysical::"
                  "145] Error Code 2: OutOfMemory (no further information)"), "prepare", "out_of_memory"),
    (RuntimeError("[ONNXRuntimeError] : 9 : NOT_IMPLEMENTED : Could not find an implementation for ConvInteger(10) "
                  "node with name ''"), "prepare", "unsupported"),
    (RuntimeError("TensorRT cannot parse m.onnx: In node 3 (importModel): No importer registered for op: Foo"),
     "prepare", "unsupported"),
    (RuntimeError("TensorRT could not build an engine for m b1 fp16: Network has dynamic or shape inputs"), "prepare",
     "build_failed"),
    (RuntimeError("TensorRT execute_async_v3 failed (see the TensorRT messages above)"), "window", "runtime_error"),
    (PointError("invalid_output", "output 'y' holds 3 NaN"), "check", "invalid_output"),
])
def test_classes_come_from_the_libraries_words_then_the_stage(exc, stage, kind):
    got, message = failure.classify(exc, stage)
    assert got == kind and got in schema.FAILURE_KINDS
    assert "\n" not in message and len(message) <= failure.MAX_MESSAGE


def test_a_message_is_one_short_line():
    _, message = failure.classify(RuntimeError("first line\nsecond\n" + "x" * 1000), "window")
    assert message == "first line"
    _, message = failure.classify(RuntimeError("y" * 1000), "window")
    assert len(message) == failure.MAX_MESSAGE and message.endswith("…")
    assert failure.classify(KeyError(), "window") == ("runtime_error", "KeyError: KeyError")


def test_outputs_with_nan_or_infinity_are_invalid():
    failure.check_outputs({"y": np.ones((2, 3), np.float16), "labels": np.array([1, 2])})
    with pytest.raises(PointError, match="output 'y' holds 1 NaN and 2 infinite values of 6") as caught:
        failure.check_outputs({"y": np.array([[np.nan, np.inf, -np.inf], [0, 1, 2]], np.float32)})
    assert caught.value.kind == "invalid_output"


def test_watch_times_the_stage_it_is_in():
    watch = failure.Watch({"prepare": 10.0, "window": 0.05})
    assert watch.overdue(watch.since + 5) is None
    watch.enter("window")
    assert watch.overdue(watch.since + 0.06) == ("window", 0.05)
    watch.enter("check")  # no limit given: never overdue
    assert watch.overdue(watch.since + 1e6) is None


def test_watched_returns_raises_or_gives_up():
    watch = failure.Watch({"prepare": 5.0})
    assert failure.watched(lambda: 42, watch, "p") == 42
    with pytest.raises(ZeroDivisionError):
        failure.watched(lambda: 1 / 0, watch, "p")
    release = threading.Event()
    with pytest.raises(failure.Hung, match="the prepare stage ran over its limit of 0.1 s") as caught:
        failure.watched(lambda: release.wait(10), failure.Watch({"prepare": 0.1}), "p")
    assert caught.value.worker.is_alive() and caught.value.stage == "prepare"
    release.set()
    caught.value.worker.join(5)
    assert not caught.value.worker.is_alive()
    assert failure.classify(caught.value, "prepare")[0] == "timeout"
