"""Measured accuracy: the digits classifier trained in the session, run through real ONNX Runtime sessions at each
precision, its top-1 compared with the trained model's own accuracy on the same PNG files."""

import math

import pytest

from dnnprof.agent.backends import get_backend
from dnnprof.agent.measure import accuracy, profiler
from dnnprof.agent.measure.sweep import Sweep
from dnnprof.agent.models import images, manifest
from dnnprof.agent.power import NO_POWER
from dnnprof.shared import schema

FAST = profiler.Settings(warmup_min_s=0.0, warmup_min_iterations=1, warmup_max_s=0.05, window_min_s=0.05,
                         window_max_s=0.1, min_iterations=3, min_power_samples=0, latency_ci=0.9, power_ci=0.9,
                         idle_s=0.0)


@pytest.mark.parametrize(("hits", "n", "low", "high"), [
    (50, 100, 40.38, 59.62),  # Wilson's interval, as published tables give it
    (0, 10, 0.0, 27.75),  # honest at the edges: never a zero-width interval
    (10, 10, 72.25, 100.0),
])
def test_wilson_interval(hits, n, low, high):
    got = accuracy.wilson(hits, n)
    assert got == pytest.approx([low, high], abs=0.01)


def test_top_k_counts_a_label_among_the_highest_scores():
    import numpy as np

    scores = np.array([[0.1, 0.9, 0.0], [0.5, 0.2, 0.3], [0.0, 0.1, 0.2]])
    labels = np.array([1, 2, 0])
    assert accuracy.top_k_hits(scores, labels, 1) == 1
    assert accuracy.top_k_hits(scores, labels, 2) == 2
    assert accuracy.top_k_hits(scores, labels, 5) == 3  # k past the classes: every label is within


@pytest.fixture(scope="module")
def sweep_results(digits, tmp_path_factory):
    """fp32, fp16 and int8 (calibrated on training images) at batches 1 and 7 (7 does not divide the set)."""
    [model] = manifest.load(digits.manifest)
    backend = get_backend("onnxruntime", threads=1, calibration=digits.calibration,
                          cache_dir=tmp_path_factory.mktemp("caches"))
    book = accuracy.Book(images.labelled(digits.test), cache=tmp_path_factory.mktemp("tensors"))
    sweep = Sweep(board="digits-board", run_id="acc", models=[model], batches=[1, 7], backend=backend,
                  power=NO_POWER, settings=FAST, precisions=["fp32", "fp16", "int8"], accuracy=book)
    results = sweep.run(_Sink())
    assert not sweep.failures
    return {(r.precision, r.batch): r for r in results}, book


class _Sink:
    def send(self, message) -> None:
        schema.decode(schema.encode(message))  # every message survives the wire

    def close(self):
        return []


def test_measured_fp32_top1_is_the_trained_models_own_accuracy(sweep_results, digits):
    results, _ = sweep_results
    fp32 = results[("fp32", 1)].accuracy
    assert fp32.images == digits.n_test
    assert fp32.top1 == pytest.approx(digits.own_top1, abs=1e-9)
    assert fp32.top5 >= fp32.top1 and fp32.top1_ci[0] < fp32.top1 < fp32.top1_ci[1]
    assert fp32.preprocessing.startswith("resize 8, crop 8, mean 0/0/0, std 1/1/1, RGB")
    assert fp32.set_name == "test" and fp32.limit is None and len(fp32.set_sha256) == 64


@pytest.mark.parametrize("precision", ["fp16", "int8"])
def test_fp16_and_int8_measure_their_own_accuracy_close_to_fp32(sweep_results, precision):
    results, _ = sweep_results
    fp32, other = results[("fp32", 1)], results[(precision, 1)]
    assert other.precision_method == "onnx_converted" and other.converted_sha256 not in (None, other.model_sha256)
    assert other.model_sha256 == fp32.model_sha256  # the network is the same file; what ran is converted_sha256
    assert not other.timing_only
    assert abs(other.accuracy.top1 - fp32.accuracy.top1) < 3.0
    if precision == "int8":
        assert other.calibration.startswith("images:") and "(200 images)" in other.calibration


def test_accuracy_is_measured_once_per_engine_and_reused_for_other_batches(sweep_results):
    results, book = sweep_results
    for precision in ("fp32", "fp16", "int8"):
        first, second = results[(precision, 1)].accuracy, results[(precision, 7)].accuracy
        assert not first.reused and first.duration_s is not None
        assert second.reused and second.duration_s is None
        assert (second.top1, second.top5, second.images) == (first.top1, first.top5, first.images)
    assert results[("fp32", 1)].precision_method == "as_exported"
    assert book.decode_s > 0  # decoded once, for the first point


def test_an_int8_engine_calibrated_on_random_data_is_timed_but_not_measured(digits, tmp_path):
    [model] = manifest.load(digits.manifest)
    backend = get_backend("onnxruntime", threads=1, cache_dir=tmp_path)
    book = accuracy.Book(images.labelled(digits.test, limit=20), cache=tmp_path / "t")
    sweep = Sweep(board="digits-board", run_id="acc2", models=[model], batches=[4], backend=backend,
                  power=NO_POWER, settings=FAST, precisions=["int8"], accuracy=book)
    [result] = sweep.run(_Sink())
    assert result.timing_only and result.calibration == "random" and result.accuracy is None


def test_a_seeded_subset_is_recorded(digits, tmp_path):
    [model] = manifest.load(digits.manifest)
    backend = get_backend("onnxruntime", threads=1)
    book = accuracy.Book(images.labelled(digits.test, limit=50, seed=3), cache=tmp_path)
    sweep = Sweep(board="digits-board", run_id="acc3", models=[model], batches=[8], backend=backend,
                  power=NO_POWER, settings=FAST, accuracy=book)
    [result] = sweep.run(_Sink())
    found = result.accuracy
    assert (found.images, found.limit, found.seed) == (50, 50, 3)
    half = (found.top1_ci[1] - found.top1_ci[0]) / 2
    assert 0 < half < 15 and not math.isnan(found.top1)


def test_a_model_whose_input_the_pipeline_cannot_fill_fails_before_the_sweep(digits, model_path):
    from dnnprof.shared import onnxfile
    from dnnprof.shared.errors import UserError

    big = onnxfile.load(model_path)  # 224 x 224: the default pipeline fits it, the digits set is just small
    sweep = Sweep(board="digits-board", run_id="acc4", models=[big], batches=[1], backend=get_backend("onnxruntime"),
                  power=NO_POWER, settings=FAST, accuracy=accuracy.Book(images.labelled(digits.test, limit=2)))
    assert sweep.accuracy is not None
    with pytest.raises(UserError, match="3-channel"):
        Sweep(board="digits-board", run_id="acc5", models=[_one_channel(digits)], batches=[1],
              backend=get_backend("onnxruntime"), power=NO_POWER, settings=FAST,
              accuracy=accuracy.Book(images.labelled(digits.test, limit=2)))


def _one_channel(digits):
    import dataclasses

    from dnnprof.shared import onnxfile

    return dataclasses.replace(onnxfile.load(digits.model), input_shape=(1, 8, 8))
