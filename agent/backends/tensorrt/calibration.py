"""int8 calibration for TensorRT's builder-flag route: image batches (or random ones, timing only) fed to an
``IInt8EntropyCalibrator2``, with the calibration table kept in the engine cache."""

from __future__ import annotations

import hashlib
import logging
import math
from collections.abc import Iterator
from pathlib import Path

from dnnprof.shared.errors import UserError

from ..engine_cache import EngineCache
from .cuda import current

log = logging.getLogger(__name__)

IMAGE_SUFFIXES = (".jpg", ".jpeg", ".png")
# int8 calibration from images: resize to the input's HxW, scale to [0, 1], then ImageNet normalisation (torchvision's
# constants), the preprocessing of the zoo's classifiers. Random calibration: standard normal data, fixed seed.
IMAGENET_MEAN = (0.485, 0.456, 0.406)
IMAGENET_STD = (0.229, 0.224, 0.225)
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



def find_images(folder: Path) -> list[Path]:
    """The calibration images in ``folder`` (not its subfolders), sorted; UserError when there are none."""
    folder = Path(folder).expanduser()
    if not folder.is_dir():
        raise UserError(f"calibration folder {folder} does not exist or is not a folder")
    images = sorted(p for p in folder.iterdir() if p.is_file() and p.suffix.lower() in IMAGE_SUFFIXES)
    if not images:
        raise UserError(f"calibration folder {folder} holds no images ({', '.join(IMAGE_SUFFIXES)}): put a few "
                        "hundred representative images there, or leave out --calibration for timing-only int8")
    return images


def images_sha256(images: list[Path]) -> str:
    digest = hashlib.sha256()
    for path in images:
        digest.update(path.name.encode() + b"\0" + hashlib.sha256(path.read_bytes()).digest())
    return digest.hexdigest()


def _load_image(path: Path, shape: tuple[int, ...]):
    """One image as a (C, H, W) float32 array: RGB, resized to H x W, scaled to [0, 1], ImageNet-normalised."""
    import numpy as np
    from PIL import Image

    _, height, width = shape
    try:
        with Image.open(path) as image:
            resample = getattr(Image, "Resampling", Image).BILINEAR
            rgb = image.convert("RGB").resize((width, height), resample)
    except (OSError, ValueError) as exc:
        raise UserError(f"cannot read calibration image {path}: {exc}") from None
    data = np.asarray(rgb, dtype=np.float32) / 255.0
    data = (data - np.asarray(IMAGENET_MEAN, np.float32)) / np.asarray(IMAGENET_STD, np.float32)
    return np.ascontiguousarray(data.transpose(2, 0, 1))


def image_batches(images: list[Path], batch: int, shape: tuple[int, ...]) -> Iterator:
    """Batches of ``batch`` images, loaded one batch at a time; the last one is filled up from the first images."""
    import numpy as np

    count = math.ceil(len(images) / batch)
    for b in range(count):
        chosen = [images[(b * batch + i) % len(images)] for i in range(batch)]
        yield np.stack([_load_image(p, shape) for p in chosen])


def random_batches(batch: int, shape: tuple[int, ...]) -> Iterator:
    """``RANDOM_CALIBRATION_IMAGES`` standard-normal images (fixed seed) in batches: scales for timing only."""
    import numpy as np

    rng = np.random.default_rng(CALIBRATION_SEED)
    for _ in range(math.ceil(RANDOM_CALIBRATION_IMAGES / batch)):
        yield rng.standard_normal((batch, *shape), dtype=np.float32)

