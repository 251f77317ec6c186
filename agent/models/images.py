"""Image sets and the pipeline that turns them into model inputs, decoded once.

A labelled set (accuracy) is ``DIR/<label>/*.{jpg,jpeg,png}``: ``<label>`` is the class index, or a class name
listed in ``DIR/labels.txt`` (one name per line, in the model's output order: an ImageNet validation set sorted into
synset folders works with the standard synset list). A calibration set is the images of ``DIR`` itself, or of its
class folders. ``--accuracy-limit N`` takes a fixed, seeded subset.

Preprocessed tensors are cached on disk as a ``.npy`` file, memory-mapped, keyed by the set's content hash, the
pipeline and the input shape: the fp32, fp16 and int8 passes and int8 calibration decode each image once.
"""

from __future__ import annotations

import hashlib
import json
import logging
import os
import random
import tempfile
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path

from dnnprof.shared.errors import UserError
from dnnprof.shared.preprocessing import Preprocessing

log = logging.getLogger(__name__)

SUFFIXES = (".jpg", ".jpeg", ".png")


def user_cache(kind: str) -> Path:
    """``$XDG_CACHE_HOME/dnnprof/<kind>`` (``~/.cache/dnnprof/<kind>`` when unset): where ``run`` keeps what it
    derives from models and images (the service keeps them in its state directory instead)."""
    base = os.environ.get("XDG_CACHE_HOME") or "~/.cache"
    return Path(base).expanduser() / "dnnprof" / kind


LABELS_FILE = "labels.txt"
FORMAT = 1  # bump when the cached tensors' meaning changes


@dataclass(frozen=True)
class ImageSet:
    """Images (and, for a labelled set, their class indices) in a fixed order, with a content hash."""

    root: Path
    images: tuple[Path, ...]
    labels: tuple[int, ...] | None  # None: an unlabelled (calibration) set
    sha256: str  # names, labels and bytes of exactly these images
    limit: int | None = None  # a seeded subset of this many images was taken
    seed: int | None = None

    @property
    def name(self) -> str:
        return self.root.name

    def __len__(self) -> int:
        return len(self.images)

    def describe(self) -> str:
        subset = f", a seeded subset (seed {self.seed})" if self.limit is not None else ""
        return f"{self.root} ({len(self.images)} images{subset})"


def _images_in(folder: Path) -> list[Path]:
    return sorted(p for p in folder.iterdir() if p.is_file() and p.suffix.lower() in SUFFIXES)


def _hash(root: Path, images: list[Path], labels: list[int] | None) -> str:
    digest = hashlib.sha256()
    for i, path in enumerate(images):
        name = path.relative_to(root).as_posix()
        label = b"" if labels is None else str(labels[i]).encode()
        try:
            content = hashlib.sha256(path.read_bytes()).digest()
        except OSError as exc:
            raise UserError(f"cannot read image {path}: {exc.strerror or exc}") from None
        digest.update(name.encode() + b"\0" + label + b"\0" + content)
    return digest.hexdigest()


def _subset(images: list[Path], labels: list[int] | None, limit: int | None, seed: int):
    if limit is None or limit >= len(images):
        return images, labels, None
    if limit < 1:
        raise UserError(f"--accuracy-limit {limit}: give a positive number of images")
    chosen = sorted(random.Random(seed).sample(range(len(images)), limit))
    return [images[i] for i in chosen], None if labels is None else [labels[i] for i in chosen], limit


def _folder(path: Path, what: str) -> Path:
    path = Path(path).expanduser()
    if not path.is_dir():
        raise UserError(f"{what} {path} does not exist or is not a folder")
    return path


def labelled(path: Path, *, limit: int | None = None, seed: int = 0) -> ImageSet:
    """The labelled set in ``path`` (see the module's docstring); UserError says how to lay it out when it is not."""
    root = _folder(path, "accuracy set")
    names: dict[str, int] | None = None
    labels_file = root / LABELS_FILE
    if labels_file.is_file():
        lines = [line.strip() for line in labels_file.read_text(encoding="utf-8", errors="replace").splitlines()]
        names = {name: i for i, name in enumerate(lines) if name}
    images: list[Path] = []
    labels: list[int] = []
    classes = sorted(p for p in root.iterdir() if p.is_dir())
    for folder in classes:
        if names is not None and folder.name in names:
            label = names[folder.name]
        elif folder.name.isdigit():
            label = int(folder.name)
        else:
            hint = f"it is not listed in {labels_file}" if names is not None else \
                f"name the folders by class index (0, 1, ...) or list the class names in {LABELS_FILE}"
            raise UserError(f"accuracy set {root}: folder {folder.name!r} is not a class: {hint}")
        found = _images_in(folder)
        images += found
        labels += [label] * len(found)
    if not images:
        raise UserError(f"accuracy set {root} holds no labelled images: put them in class folders, "
                        f"{root}/<class index or name>/*.jpg (or .png)")
    images, labels, limit = _subset(images, labels, limit, seed)
    return ImageSet(root, tuple(images), tuple(labels), _hash(root, images, labels), limit,
                    seed if limit is not None else None)


def unlabelled(path: Path) -> ImageSet:
    """The calibration images of ``path``: its own images, or else those of its class folders."""
    root = _folder(path, "calibration folder")
    images = _images_in(root) or [p for folder in sorted(q for q in root.iterdir() if q.is_dir())
                                  for p in _images_in(folder)]
    if not images:
        raise UserError(f"calibration folder {root} holds no images ({', '.join(SUFFIXES)}): put a few hundred "
                        "representative images there, or leave out --calibration for timing-only int8")
    return ImageSet(root, tuple(images), None, _hash(root, images, None))


def load_image(path: Path, prep: Preprocessing):
    """One image through ``prep``: a (3, H, W) float32 array."""
    import numpy as np
    from PIL import Image

    height, width = prep.crop
    try:
        with Image.open(path) as image:
            rgb = image.convert("RGB")
            w, h = rgb.size
            scale = prep.resize / min(w, h)
            size = (max(width, round(w * scale)), max(height, round(h * scale)))
            if size != (w, h):
                rgb = rgb.resize(size, getattr(Image, "Resampling", Image).BILINEAR)
            left, top = (size[0] - width) // 2, (size[1] - height) // 2
            rgb = rgb.crop((left, top, left + width, top + height))
            data = np.asarray(rgb, dtype=np.float32) / 255.0
    except (OSError, ValueError) as exc:
        raise UserError(f"cannot read image {path}: {exc}") from None
    if prep.channels == "BGR":
        data = data[:, :, ::-1]
    data = (data - np.asarray(prep.mean, np.float32)) / np.asarray(prep.std, np.float32)
    return np.ascontiguousarray(data.transpose(2, 0, 1), dtype=np.float32)


def cache_key(images: ImageSet, prep: Preprocessing, shape: tuple[int, ...]) -> str:
    """What a set's tensors depend on: its content, the pipeline and the input shape."""
    data = {"format": FORMAT, "set": images.sha256, "prep": prep.key(), "shape": list(shape)}
    return hashlib.sha256(json.dumps(data, sort_keys=True).encode()).hexdigest()[:32]


@dataclass
class Tensors:
    """A set's preprocessed images, (N, C, H, W) float32, memory-mapped from the cache (or in memory without one)."""

    data: object  # numpy array or memmap
    labels: object | None  # int64 array, or None for a calibration set
    decoded: int  # images decoded now (0: all came from the cache)
    decode_s: float  # seconds spent decoding now

    def batches(self, batch: int) -> Iterator[tuple[object, int]]:
        """``(array of batch images, how many are real)``; the last one is filled up from the first images."""
        import numpy as np

        n = len(self.data)
        for start in range(0, n, batch):
            real = min(batch, n - start)
            chunk = self.data[start:start + real]
            if real < batch:
                chunk = np.concatenate([chunk, self.data[np.arange(batch - real) % n]])
            yield np.ascontiguousarray(chunk), real


def tensors(images: ImageSet, prep: Preprocessing, shape: tuple[int, ...], *, cache: Path | None = None,
            on_progress: Callable[[int, int], None] | None = None, keep: bool = True) -> Tensors:
    """The set's images through ``prep`` at ``shape`` (3, H, W): from the cache when there, else decoded (with
    ``on_progress(done, total)``) and cached. ``cache``: the folder (None: ``user_cache("tensors")``); ``keep``
    False decodes into memory and caches nothing. A cache that cannot be written is said in the log, not fatal."""
    import time

    import numpy as np

    prep.check_shape(tuple(shape), f"images of {images.root}")
    labels = None if images.labels is None else np.asarray(images.labels, dtype=np.int64)
    path = None
    if keep:
        cache = Path(cache).expanduser() if cache is not None else user_cache("tensors")
        path = cache / f"{cache_key(images, prep, shape)}.npy"
        if path.is_file():
            try:
                data = np.load(path, mmap_mode="r")
                if data.shape == (len(images), *shape) and data.dtype == np.float32:
                    return Tensors(data, labels, 0, 0.0)
            except (OSError, ValueError) as exc:
                log.warning("cached tensors %s are unreadable (%s): decoding again", path, exc)
    start = time.perf_counter()
    out = None
    tmp = None
    if path is not None:
        try:
            path.parent.mkdir(parents=True, exist_ok=True)
            fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=f".{path.stem}.", suffix=".npy")
            os.close(fd)
            out = np.lib.format.open_memmap(tmp, mode="w+", dtype=np.float32, shape=(len(images), *shape))
        except OSError as exc:
            log.warning("cannot cache preprocessed tensors in %s (%s): decoding into memory", path.parent, exc)
            tmp = None
    if out is None:
        out = np.empty((len(images), *shape), dtype=np.float32)
    try:
        for i, image in enumerate(images.images):
            out[i] = load_image(image, prep)
            if on_progress is not None:
                on_progress(i + 1, len(images))
        if tmp is not None:
            out.flush()
            del out
            os.replace(tmp, path)
            tmp = None
            out = np.load(path, mmap_mode="r")
    finally:
        if tmp is not None:
            Path(tmp).unlink(missing_ok=True)
    return Tensors(out, labels, len(images), time.perf_counter() - start)
