"""int8 calibration for TensorRT's builder-flag route: batches of input data (the calibration images through the
model's own pipeline, from ``agent/models/images.py``; or random data, timing only) fed to an
``IInt8EntropyCalibrator2``, with the calibration table kept in the engine cache. The converted-ONNX route needs
none of this: its scales are in the converted file."""

from __future__ import annotations

import logging
import math
from collections.abc import Iterator
from pathlib import Path

from ..engine_cache import EngineCache
from .cuda import current

log = logging.getLogger(__name__)

# Random calibration: standard normal data, fixed seed (the scales mean nothing: results are timing only).
RANDOM_CALIBRATION_IMAGES = 64
CALIBRATION_SEED = 0


def calibrator(trt, cuda, ctx, batches: Iterator, batch: int, nbytes: int, table: Path | None, reuse: bool):
    """An ``IInt8EntropyCalibrator2`` feeding ``batches`` (float32 arrays of one engine batch each)."""

    class Calibrator(trt.IInt8EntropyCalibrator2):
        def __init__(self) -> None:
            trt.IInt8EntropyCalibrator2.__init__(self)
            self._batches = batches
            with current(cuda, ctx):
                self._device = cuda.mem_alloc(nbytes)
            self.used = 0
            self.error: BaseException | None = None  # raised after the build: TensorRT swallows callback errors

        def get_batch_size(self) -> int:
            return batch

        def get_batch(self, names):
            try:
                data = next(self._batches)
            except StopIteration:
                return None
            except BaseException as exc:  # noqa: B036 - kept and re-raised after the build, see self.error
                self.error = exc
                return None
            # UNVERIFIED on hardware: TensorRT calls get_batch from inside build_serialized_network; the context is
            # pushed again in case that is another thread (pushing the current context twice is harmless).
            with current(cuda, ctx):
                cuda.memcpy_htod(self._device, data)
            self.used += 1
            return [int(self._device)]

        def read_calibration_cache(self):
            return EngineCache.read_bytes(table) if table is not None and reuse else None

        def write_calibration_cache(self, cache) -> None:
            if table is None:
                return
            try:
                EngineCache.write_bytes(table, memoryview(cache).tobytes())
            except OSError as exc:
                log.warning("cannot save the int8 calibration table %s: %s", table, exc)

        def free(self) -> None:
            with current(cuda, ctx):
                self._device.free()

    return Calibrator()


def random_batches(batch: int, shape: tuple[int, ...]) -> Iterator:
    """``RANDOM_CALIBRATION_IMAGES`` standard-normal images (fixed seed) in batches: scales for timing only."""
    import numpy as np

    rng = np.random.default_rng(CALIBRATION_SEED)
    for _ in range(math.ceil(RANDOM_CALIBRATION_IMAGES / batch)):
        yield rng.standard_normal((batch, *shape), dtype=np.float32)

