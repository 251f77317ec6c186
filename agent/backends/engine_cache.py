"""An on-disk cache of serialized TensorRT engines, so that a second run of the same sweep builds nothing.

An engine (a "plan") only runs where it was built and with the TensorRT that built it, and depends on every builder
option, so an entry is keyed by a hash of all of them (``EngineKey``). Each entry is two files in one directory:
``<digest>.engine`` (the plan) and ``<digest>.json`` (a sidecar: the key fields, the plan's size and sha256, the build
time). Both are written atomically (a temporary file, then ``os.replace``) and the sidecar last, so a crash mid-write
leaves at worst a plan without a sidecar: a miss, never a half-read engine. An entry whose sidecar does not match its
key or its plan (size, sha256) is reported as unusable and rebuilt by the caller; nothing here raises for a bad entry.

The key holds the route fp16 / int8 took (``precision_method``: builder flags on the exported model, or the converted
model; fp32 is ``as_exported``) and the converted file's content hash, so the two routes never share an engine.

The same directory holds the builder's timing cache (``timing-<digest>.cache``, per TensorRT version and GPU) and int8
calibration tables (``calibration-<digest>.table``, per model, calibration set and preprocessing).
"""

from __future__ import annotations

import contextlib
import hashlib
import json
import os
import tempfile
import time
from dataclasses import asdict, dataclass
from pathlib import Path

from dnnprof.shared.errors import UserError

FORMAT = 2  # bump when the sidecar's meaning changes: every older entry becomes a miss (2: the precision route)


@dataclass(frozen=True)
class EngineKey:
    """Everything a serialized engine depends on. ``None`` = not known on this machine (still part of the key)."""

    model_sha256: str  # content of the ONNX file, not its name
    batch: int
    precision: str  # fp32 / fp16 / int8
    device: str  # "gpu", or "dla0" / "dla1": the DLA core the engine was built for
    tensorrt: str  # tensorrt.__version__
    platform: str | None  # L4T / JetPack release (the CUDA driver and libraries come with it)
    gpu: str | None  # GPU name and compute capability, e.g. "Orin (sm_87)"
    workspace_bytes: int  # builder workspace pool limit
    calibration: str | None  # int8: "random" or "images"; None for fp32 / fp16
    calibration_sha256: str | None  # int8 from images: hash of the image set (names and contents)
    precision_method: str  # schema.PRECISION_METHODS: "as_exported" (fp32), "builder_flags" or "onnx_converted"
    converted_sha256: str | None  # onnx_converted: content of the converted file the engine was built from
    preprocessing: str | None  # builder_flags int8 from images: the pipeline the calibrator fed them through

    def fields(self) -> dict:
        return {"format": FORMAT, **asdict(self)}

    @property
    def digest(self) -> str:
        """The entry's file name stem: a hash of every field, so any change is a different entry."""
        return _digest(self.fields())


def _digest(data: dict) -> str:
    return hashlib.sha256(json.dumps(data, sort_keys=True).encode()).hexdigest()[:32]


def _write_atomic(path: Path, data: bytes) -> None:
    """Write ``data`` to ``path`` so that a reader sees the old file or the whole new one, never a part."""
    fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}.", suffix=".tmp")
    try:
        with os.fdopen(fd, "wb") as fh:
            fh.write(data)
            fh.flush()
            os.fsync(fh.fileno())
        os.replace(tmp, path)
    except BaseException:
        with contextlib.suppress(OSError):
            os.unlink(tmp)
        raise


@dataclass(frozen=True)
class Lookup:
    """What ``EngineCache.load`` found: the plan (None on a miss) and why, in words, for the status line."""

    plan: bytes | None
    reason: str  # "hit", "miss", or what was wrong with the entry


class EngineCache:
    """Engines, timing caches and calibration tables under ``directory`` (created on first use)."""

    def __init__(self, directory: str | Path) -> None:
        self.directory = Path(directory).expanduser()
        try:
            self.directory.mkdir(parents=True, exist_ok=True)
        except OSError as exc:
            raise UserError(f"cannot create the engine cache directory {self.directory}: {exc.strerror or exc}; "
                            "give another one with --engine-cache DIR") from None
        if not os.access(self.directory, os.W_OK):
            raise UserError(f"the engine cache directory {self.directory} is not writable; "
                            "give another one with --engine-cache DIR")

    def plan_path(self, key: EngineKey) -> Path:
        return self.directory / f"{key.digest}.engine"

    def sidecar_path(self, key: EngineKey) -> Path:
        return self.directory / f"{key.digest}.json"

    def load(self, key: EngineKey) -> Lookup:
        """The cached plan for ``key``, or None with the reason (missing, or what is wrong with the entry)."""
        plan_path, sidecar_path = self.plan_path(key), self.sidecar_path(key)
        if not sidecar_path.exists():
            return Lookup(None, "miss")
        try:
            sidecar = json.loads(sidecar_path.read_text())
        except (OSError, ValueError) as exc:
            return Lookup(None, f"unreadable sidecar {sidecar_path.name} ({exc.__class__.__name__})")
        if not isinstance(sidecar, dict) or sidecar.get("key") != key.fields():
            return Lookup(None, f"sidecar {sidecar_path.name} does not match this engine's key")
        try:
            plan = plan_path.read_bytes()
        except OSError as exc:
            return Lookup(None, f"cannot read {plan_path.name} ({exc.strerror or exc})")
        if len(plan) != sidecar.get("plan_bytes"):
            return Lookup(None, f"{plan_path.name} is truncated ({len(plan)} of {sidecar.get('plan_bytes')} bytes)")
        if hashlib.sha256(plan).hexdigest() != sidecar.get("plan_sha256"):
            return Lookup(None, f"{plan_path.name} does not match its sha256")
        return Lookup(plan, "hit")

    def store(self, key: EngineKey, plan: bytes, *, build_s: float, model: str) -> Path:
        """Save ``plan`` for ``key``: plan first, sidecar last (the sidecar is what makes the entry valid)."""
        plan_path = self.plan_path(key)
        _write_atomic(plan_path, plan)
        sidecar = {"key": key.fields(), "model": model, "plan_bytes": len(plan),
                   "plan_sha256": hashlib.sha256(plan).hexdigest(), "build_s": round(build_s, 3),
                   "created": time.strftime("%Y-%m-%dT%H:%M:%S%z")}
        _write_atomic(self.sidecar_path(key), json.dumps(sidecar, indent=1, sort_keys=True).encode())
        return plan_path

    def discard(self, key: EngineKey) -> None:
        """Remove ``key``'s entry (sidecar first, so a half-removed entry is a miss)."""
        for path in (self.sidecar_path(key), self.plan_path(key)):
            with contextlib.suppress(FileNotFoundError):
                path.unlink()

    # -- the builder's timing cache and int8 calibration tables -----------------------------------------------

    def timing_cache_path(self, tensorrt: str, gpu: str | None, platform: str | None) -> Path:
        """One timing cache per TensorRT version and GPU: TensorRT rejects a cache from another device anyway."""
        return self.directory / f"timing-{_digest({'tensorrt': tensorrt, 'gpu': gpu, 'platform': platform})[:16]}.cache"

    def calibration_path(self, model_sha256: str, source: str, source_sha256: str | None, tensorrt: str, *,
                         pipeline: str | None = None) -> Path:
        """An int8 calibration table, per model, calibration set and the ``pipeline`` (``Preprocessing.key()``) the
        images went through (TensorRT reuses it across batch sizes)."""
        key = {"model": model_sha256, "source": source, "set": source_sha256, "tensorrt": tensorrt,
               "pipeline": pipeline}
        return self.directory / f"calibration-{_digest(key)[:16]}.table"

    @staticmethod
    def read_bytes(path: Path) -> bytes | None:
        """The file's bytes, or None when it is missing or unreadable (callers then start from empty)."""
        try:
            return path.read_bytes()
        except OSError:
            return None

    @staticmethod
    def write_bytes(path: Path, data: bytes) -> None:
        _write_atomic(path, data)
