"""Precision as an ONNX transform: fp16 (float tensors converted, the input and output kept float32) and int8
(static quantization as QuantizeLinear/DequantizeLinear pairs, calibrated on images through the model's own
preprocessing), both made by ONNX Runtime's own tools (``onnxruntime.transformers.float16``,
``onnxruntime.quantization``). A converted file runs as it is on ONNX Runtime, and TensorRT parses it as a strongly
typed network (the only route TensorRT 11 has: its FP16 / INT8 builder flags and calibrators are gone).

int8 is symmetric (zero points 0), per-channel weights and QDQ format: what TensorRT's explicit quantization takes.
Without calibration images int8 is calibrated on seeded random data: its outputs mean nothing (timing only).

Each conversion is checked: it loads, runs, and agrees with the fp32 model on the calibration images (or on seeded
random inputs without any): top-1 agreement and the largest logit difference. Conversions are cached by a hash of
the model's content, the calibration set's content, the pipeline and the settings.
"""

from __future__ import annotations

import dataclasses
import hashlib
import json
import logging
import os
import shutil
import tempfile
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

from dnnprof.shared import onnxfile
from dnnprof.shared.errors import UserError
from dnnprof.shared.onnxfile import ModelFile

from . import images as image_sets

log = logging.getLogger(__name__)

PRECISIONS = ("fp16", "int8")
FORMAT = 1  # bump when a conversion's meaning changes: every older entry becomes a miss
RANDOM_IMAGES = 64  # int8 without images: this many standard-normal inputs (timing only), and fp16's check inputs
SEED = 0
# The settings a conversion depends on (part of the cache key and of the sidecar).
INT8_SETTINGS = {"format": "QDQ", "activations": "int8 symmetric", "weights": "int8 symmetric per channel",
                 "calibration": "minmax"}
FP16_SETTINGS = {"keep_io_types": True}


@dataclass(frozen=True)
class Check:
    """How a converted model agrees with the fp32 one, on ``images`` inputs (``on``: what they were)."""

    images: int
    on: str  # "calibration images" or "random inputs"
    top1_agreement: float  # percent of inputs whose top class is the same
    max_logit_error: float  # largest absolute difference of any output value


@dataclass(frozen=True)
class Converted:
    model: ModelFile  # the converted file (its name is the source's: the network is the same)
    source: ModelFile
    precision: str
    calibration: str | None  # int8: "images:<folder> (<n> images)" or "random"
    calibration_sha256: str | None
    timing_only: bool  # int8 calibrated on random data: its outputs mean nothing
    check: Check
    cached: bool  # True: found in the cache, nothing converted now


def _key(source: ModelFile, precision: str, calibration: image_sets.ImageSet | None, ort_version: str) -> str:
    prep = source.pipeline()
    data = {"format": FORMAT, "model": source.sha256, "precision": precision, "onnxruntime": ort_version,
            "settings": INT8_SETTINGS if precision == "int8" else FP16_SETTINGS,
            "calibration": None if precision != "int8" else (calibration.sha256 if calibration else "random"),
            "prep": prep.key() if precision == "int8" and calibration is not None else None}
    return hashlib.sha256(json.dumps(data, sort_keys=True).encode()).hexdigest()[:32]


def _inputs(source: ModelFile, calibration: image_sets.ImageSet | None, tensor_cache: Path | None):
    """The inputs calibration and the check use: the set's images through the model's pipeline, else seeded
    standard-normal data. Returns (array N x C x H x W, words)."""
    import numpy as np

    if calibration is not None:
        prep = source.pipeline()
        prep.check_shape(source.input_shape, f"{source.name}: calibrating on {calibration.root}")
        found = image_sets.tensors(calibration, prep, source.input_shape, cache=tensor_cache)
        return np.asarray(found.data), "calibration images"
    rng = np.random.default_rng(SEED)
    return rng.standard_normal((RANDOM_IMAGES, *source.input_shape), dtype=np.float32), "random inputs"


def _session(ort, path: Path):
    options = ort.SessionOptions()
    options.log_severity_level = 3
    try:
        return ort.InferenceSession(str(path), options, providers=["CPUExecutionProvider"])
    except Exception as exc:
        first = str(exc).strip().splitlines()[0] if str(exc).strip() else exc.__class__.__name__
        raise UserError(f"onnxruntime cannot load {path}: {first}") from None


def _outputs(ort, path: Path, name: str, data, batch: int):
    """The first output of ``path`` on every input of ``data``, run ``batch`` at a time."""
    import numpy as np

    session = _session(ort, path)
    out = []
    for start in range(0, len(data), batch):
        chunk = data[start:start + batch]
        real = len(chunk)
        if real < batch:
            chunk = np.concatenate([chunk, data[np.arange(batch - real) % len(data)]])
        try:
            result = session.run(None, {name: np.ascontiguousarray(chunk)})[0]
        except Exception as exc:
            first = str(exc).strip().splitlines()[0] if str(exc).strip() else exc.__class__.__name__
            raise UserError(f"onnxruntime cannot run {path}: {first}") from None
        out.append(np.asarray(result, dtype=np.float32).reshape(batch, -1)[:real])
    return np.concatenate(out)


def check(ort, source: ModelFile, converted: Path, data, on: str) -> Check:
    """Run both models on ``data`` and compare their outputs."""
    import numpy as np

    batch = source.fixed_batch or 1
    reference = _outputs(ort, source.path, source.input_name, data, batch)
    got = _outputs(ort, converted, source.input_name, data, batch)
    agree = float(np.mean(reference.argmax(axis=1) == got.argmax(axis=1)) * 100)
    finite = np.isfinite(got).all()
    error = float(np.max(np.abs(reference - got))) if finite else float("inf")
    return Check(images=len(data), on=on, top1_agreement=agree, max_logit_error=error)


def _fp16(source: ModelFile, out: Path) -> None:
    import onnx
    from onnxruntime.transformers.float16 import convert_float_to_float16

    model = onnx.load(str(source.path))
    converted = convert_float_to_float16(model, keep_io_types=True)
    onnx.save(converted, str(out))


def _int8(source: ModelFile, out: Path, data) -> None:
    from onnxruntime.quantization import (CalibrationDataReader, CalibrationMethod, QuantFormat, QuantType,
                                          quant_pre_process, quantize_static)

    batch = source.fixed_batch or 1
    # ONNX Runtime's recommended first step (shape inference and graph clean-up, so more ops get quantized);
    # symbolic shape inference is skipped: it fails on some exported graphs where ONNX's own succeeds.
    prepared = out.with_name(f"{out.stem}.pre.onnx")
    quant_pre_process(str(source.path), str(prepared), skip_symbolic_shape=True)

    class Reader(CalibrationDataReader):
        def __init__(self) -> None:
            self._next = 0

        def get_next(self):
            if self._next >= len(data):
                return None
            chunk = data[self._next:self._next + batch]
            self._next += batch
            return {source.input_name: chunk} if len(chunk) == batch else None

    quantize_static(str(prepared), str(out), Reader(), quant_format=QuantFormat.QDQ, per_channel=True,
                    activation_type=QuantType.QInt8, weight_type=QuantType.QInt8,
                    calibrate_method=CalibrationMethod.MinMax,
                    extra_options={"ActivationSymmetric": True, "WeightSymmetric": True})


def convert(source: ModelFile, precision: str, *, calibration: image_sets.ImageSet | None = None,
            cache: Path | None = None, tensor_cache: Path | None = None, keep: bool = True,
            on_status: Callable[[str], None] | None = None) -> Converted:
    """``source`` at ``precision`` (fp16, int8) as a checked ONNX file, from the cache when it is there.
    ``calibration``: int8's image set (None: random data, timing only; ignored for fp16 except by the check).
    ``cache`` / ``tensor_cache``: folders of conversions and decoded images (None: ``images.user_cache``);
    ``keep`` False caches nothing. UserError when the conversion or its check fails."""
    try:
        import onnxruntime as ort
    except ImportError:
        raise UserError("converting a model to fp16 or int8 needs onnxruntime's converters: pip install onnxruntime "
                        "(on a Jetson the CPU wheel is enough; the TensorRT builder-flag route needs none)") from None
    if precision not in PRECISIONS:
        raise UserError(f"--precision {precision!r}: convert makes {' or '.join(PRECISIONS)} models (fp32 is the "
                        "exported file itself)")
    calib_words = None
    if precision == "int8":
        calib_words = f"images:{calibration.root} ({len(calibration)} images)" if calibration else "random"
    key = _key(source, precision, calibration, ort.__version__)
    say = on_status or (lambda text: None)
    folder = None if not keep else (Path(cache).expanduser() if cache is not None
                                    else image_sets.user_cache("converted"))
    if folder is not None:
        found = _cached(folder, key, source, precision, calibration, calib_words)
        if found is not None:
            return found
    work = Path(tempfile.mkdtemp(prefix="dnnprof-convert-"))
    try:
        data, on = _inputs(source, calibration, tensor_cache)
        out = work / f"{source.name}_{precision}.onnx"
        say(f"converting {source.name} to {precision}…")
        try:
            if precision == "fp16":
                _fp16(source, out)
            else:
                _int8(source, out, data)
        except UserError:
            raise
        except Exception as exc:  # the converters raise whatever their internals raise
            first = str(exc).strip().splitlines()[0] if str(exc).strip() else exc.__class__.__name__
            raise UserError(f"cannot convert {source.path} to {precision}: {first}") from None
        result = check(ort, source, out, data, on)
        if not result.max_logit_error < float("inf"):
            raise UserError(f"{source.name} converted to {precision} gives NaN or infinite outputs on {on}: it "
                            "cannot be used")
        made = onnxfile.load(out)
        entry = None if folder is None else _store(folder, key, out, result, source, precision, calib_words)
        if entry is None:
            # No cache (or one that cannot be written): the file must outlive this function's work folder.
            entry = Path(tempfile.mkdtemp(prefix="dnnprof-converted-")) / out.name
            shutil.move(str(out), entry)
        return _converted(dataclasses.replace(made, path=entry), source, precision, calibration, calib_words, result,
                          cached=False)
    finally:
        shutil.rmtree(work, ignore_errors=True)


def _store(folder: Path, key: str, made: Path, result: Check, source: ModelFile, precision: str,
           calibration: str | None) -> Path | None:
    """Copy ``made`` into the cache with its sidecar (written last, atomically: a crash leaves at worst a miss);
    None when the cache cannot be written (said in the log)."""
    try:
        folder.mkdir(parents=True, exist_ok=True)
        target = folder / f"{key}.onnx"
        fd, tmp = tempfile.mkstemp(dir=folder, prefix=f".{key}.", suffix=".onnx")
        os.close(fd)
        shutil.copyfile(made, tmp)
        os.replace(tmp, target)
        sidecar = {"format": FORMAT, "source": str(source.path), "source_sha256": source.sha256,
                   "precision": precision, "calibration": calibration, "check": dataclasses.asdict(result)}
        fd, tmp = tempfile.mkstemp(dir=folder, prefix=f".{key}.", suffix=".json")
        with os.fdopen(fd, "w") as fh:
            json.dump(sidecar, fh, indent=2)
        os.replace(tmp, folder / f"{key}.json")
        return target
    except OSError as exc:
        log.warning("cannot keep the converted model in %s (%s): it is converted again next time", folder, exc)
        return None


def _cached(folder: Path, key: str, source: ModelFile, precision: str, calibration, calib_words) -> Converted | None:
    path, sidecar = folder / f"{key}.onnx", folder / f"{key}.json"
    if not (path.is_file() and sidecar.is_file()):
        return None
    try:
        meta = json.loads(sidecar.read_text())
        result = Check(**meta["check"])
        made = onnxfile.load(path)
    except (OSError, ValueError, KeyError, TypeError, UserError) as exc:
        log.warning("converted model %s is unusable (%s): converting again", path, exc)
        return None
    return _converted(made, source, precision, calibration, calib_words, result, cached=True)


def _converted(made: ModelFile, source: ModelFile, precision: str, calibration, calib_words: str | None,
               result: Check, *, cached: bool) -> Converted:
    """The conversion of ``source`` held in ``made``: named and described as its source (the network is the same)."""
    model = dataclasses.replace(made, name=source.name, top1=source.top1, top1_source=source.top1_source,
                                preprocessing=source.preprocessing, preprocess=source.preprocess)
    return Converted(model=model, source=source, precision=precision, calibration=calib_words,
                     calibration_sha256=calibration.sha256 if calibration and precision == "int8" else None,
                     timing_only=precision == "int8" and calibration is None, check=result, cached=cached)
