"""Measured accuracy: top-1 and top-5 of the engine that was timed, on a labelled image set.

An engine's accuracy does not depend on the batch it runs at, so ``Book`` measures it once per engine identity
(model content, precision and how it was made, calibration, backend, device, image set, pipeline) and hands the
same figures to the other batches, marked ``reused``.
"""

from __future__ import annotations

import math
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path

import msgspec

from dnnprof.agent.backends import PointError, Runner
from dnnprof.agent.models import images as image_sets
from dnnprof.shared import schema
from dnnprof.shared.onnxfile import ModelFile

Z95 = 1.959963984540054  # two-sided 95% normal quantile


def wilson(hits: int, n: int) -> list[float]:
    """The 95% Wilson score interval of a proportion ``hits / n``, in percent: honest at 0%, 100% and small n."""
    if n <= 0:
        return [0.0, 100.0]
    p = hits / n
    z2 = Z95 * Z95
    centre = (p + z2 / (2 * n)) / (1 + z2 / n)
    half = Z95 * math.sqrt(p * (1 - p) / n + z2 / (4 * n * n)) / (1 + z2 / n)
    return [max(0.0, (centre - half) * 100), min(100.0, (centre + half) * 100)]


def top_k_hits(scores, labels, k: int) -> int:
    """How many rows of ``scores`` (N x classes) hold their label among their ``k`` highest values."""
    import numpy as np

    k = min(k, scores.shape[1])
    top = np.argpartition(-scores, k - 1, axis=1)[:, :k]
    return int((top == labels[:, None]).any(axis=1).sum())


def run_pass(runner: Runner, batch: int, tensors: image_sets.Tensors,
             on_progress: Callable[[int, int], None] | None = None) -> tuple[int, int, int, int]:
    """Every image of ``tensors`` through ``runner`` at ``batch``: (images, top-1 hits, top-5 hits, classes)."""
    import numpy as np

    labels = tensors.labels
    n = len(tensors.data)
    hits1 = hits5 = 0
    classes = 0
    done = 0
    for chunk, real in tensors.batches(batch):
        scores = runner.predict(chunk)[:real]
        if not np.isfinite(scores).all():
            raise PointError("invalid_output", f"the accuracy pass gave NaN or infinite outputs at image {done}")
        classes = scores.shape[1]
        want = labels[done:done + real]
        hits1 += top_k_hits(scores, want, 1)
        hits5 += top_k_hits(scores, want, 5)
        done += real
        if on_progress is not None:
            on_progress(done, n)
    return n, hits1, hits5, classes


@dataclass
class Book:
    """The accuracy set, its decoded tensors per (pipeline, input shape), and the accuracy of each engine measured so
    far. ``cache``: where decoded tensors are kept (None: in memory only)."""

    images: image_sets.ImageSet
    cache: Path | None = None  # None: images.user_cache("tensors")
    on_progress: Callable[[str, int, int], None] | None = None  # (what, done, total)
    _tensors: dict[str, image_sets.Tensors] = field(default_factory=dict, init=False, repr=False)
    _measured: dict[tuple, schema.Accuracy] = field(default_factory=dict, init=False, repr=False)
    decode_s: float = field(default=0.0, init=False)  # seconds spent decoding, for the benchmark
    infer_s: float = field(default=0.0, init=False)

    def tensors(self, model: ModelFile) -> image_sets.Tensors:
        prep = model.pipeline()
        key = image_sets.cache_key(self.images, prep, model.input_shape)
        if key not in self._tensors:
            report = None if self.on_progress is None else (lambda d, t: self.on_progress("decoding images", d, t))
            prep.check_shape(model.input_shape, f"{model.name}: its accuracy on {self.images.root}")
            found = image_sets.tensors(self.images, prep, model.input_shape, cache=self.cache, on_progress=report)
            self.decode_s += found.decode_s
            self._tensors[key] = found
        return self._tensors[key]

    @staticmethod
    def identity(model: ModelFile, runner: Runner, precision: str, backend: str, version: str) -> tuple:
        """What an engine's accuracy depends on (not its batch)."""
        return (model.sha256, runner.converted_sha256, precision, runner.precision_method, runner.calibration,
                backend, version, runner.device, model.pipeline().key())

    def known(self, identity: tuple) -> schema.Accuracy | None:
        """The accuracy measured before for this engine identity, marked reused; None when not measured yet."""
        found = self._measured.get(identity)
        return None if found is None else msgspec.structs.replace(found, reused=True, duration_s=None)

    def measure(self, model: ModelFile, runner: Runner, batch: int, identity: tuple) -> schema.Accuracy:
        """Run the set through ``runner`` (prepared at ``batch``) and remember the figures for ``identity``."""
        tensors = self.tensors(model)
        start = time.perf_counter()
        report = None if self.on_progress is None else (lambda d, t: self.on_progress("accuracy", d, t))
        n, hits1, hits5, classes = run_pass(runner, batch, tensors, report)
        took = time.perf_counter() - start
        self.infer_s += took
        five = classes >= 5
        found = schema.Accuracy(
            top1=hits1 / n * 100, top5=hits5 / n * 100 if five else None, images=n, top1_ci=wilson(hits1, n),
            top5_ci=wilson(hits5, n) if five else None, set_name=self.images.name, set_sha256=self.images.sha256,
            limit=self.images.limit, seed=self.images.seed, preprocessing=model.pipeline().describe(),
            duration_s=took)
        self._measured[identity] = found
        return found
