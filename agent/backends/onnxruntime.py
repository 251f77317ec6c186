"""ONNX Runtime on the CPU: the backend that runs on any machine. fp16 and int8 run the model converted by
``agent/models/convert.py`` (fp16 tensors; int8 as QuantizeLinear/DequantizeLinear pairs), cached by content."""

from __future__ import annotations

import os
from pathlib import Path

from dnnprof.shared.onnxfile import ModelFile
from dnnprof.shared.errors import UserError

from .base import Backend, Runner


class OrtRunner(Runner):
    def __init__(self, session, feeds: dict, threads: int) -> None:
        self._session = session
        self._feeds = feeds
        self._names = [o.name for o in session.get_outputs()]
        self._last: list = []
        self.threads = threads

    def feed(self, data) -> None:
        name = next(iter(self._feeds))
        self._feeds = {name: data}

    def infer(self) -> None:
        self._last = self._session.run(None, self._feeds)

    @property
    def outputs(self) -> dict:
        return dict(zip(self._names, self._last))

    def close(self) -> None:
        self._session = None
        self._feeds = {}
        self._last = []


class OnnxRuntimeBackend(Backend):
    name = "onnxruntime"
    precisions = ("fp32", "fp16", "int8")

    def __init__(self, threads: int | None = None, *, calibration: Path | None = None,
                 converted_cache: Path | None = None, tensor_cache: Path | None = None) -> None:
        """``calibration``: int8's image folder (None: random data, results timing only); ``converted_cache``:
        where converted models are kept, ``tensor_cache`` decoded images (None: ``images.user_cache``)."""
        try:
            import onnxruntime
        except ImportError:
            raise UserError("onnxruntime is not installed: pip install '.[cpu]' in the dnnprof checkout") from None
        from dnnprof.agent.models import images

        self._ort = onnxruntime
        self.threads = threads or os.cpu_count() or 1
        self.calibration_set = None if calibration is None else images.unlabelled(calibration)
        self.converted_cache = converted_cache
        self.tensor_cache = tensor_cache
        self.conversions: dict[tuple[str, str], object] = {}  # (model sha256, precision) -> convert.Converted

    @property
    def calibration_sha256(self) -> str | None:
        """The int8 calibration set's content hash (None: random data), as the service's ledger keys int8 points."""
        return None if self.calibration_set is None else self.calibration_set.sha256

    def precision_method(self, precision: str) -> str:
        return "as_exported" if precision == "fp32" else "onnx_converted"

    def converted(self, model: ModelFile, precision: str):
        """``model`` converted to ``precision`` (fp16, int8), once per process (and cached on disk)."""
        from dnnprof.agent.models import convert

        key = (model.sha256, precision)
        if key not in self.conversions:
            self.conversions[key] = convert.convert(model, precision, calibration=self.calibration_set,
                                                    cache=self.converted_cache, tensor_cache=self.tensor_cache)
        return self.conversions[key]

    @property
    def version(self) -> str:
        return self._ort.__version__

    def prepare(self, model: ModelFile, batch: int, precision: str, *, seed: int = 0) -> Runner:
        import numpy as np

        if precision not in self.precisions:
            raise UserError(f"onnxruntime (CPU) runs {', '.join(self.precisions)} only, not {precision!r}")
        model.check_batch(batch)
        converted = None if precision == "fp32" else self.converted(model, precision)
        path = model.path if converted is None else converted.model.path
        options = self._ort.SessionOptions()
        options.intra_op_num_threads = self.threads
        options.inter_op_num_threads = 1
        options.execution_mode = self._ort.ExecutionMode.ORT_SEQUENTIAL
        options.graph_optimization_level = self._ort.GraphOptimizationLevel.ORT_ENABLE_ALL
        options.log_severity_level = 3  # keep onnxruntime's warnings off the user's terminal
        try:
            session = self._ort.InferenceSession(str(path), options, providers=["CPUExecutionProvider"])
        except Exception as exc:
            first = str(exc).strip().splitlines()[0] if str(exc).strip() else exc.__class__.__name__
            raise UserError(f"onnxruntime cannot load {path}: {first}") from None
        # Random, never zeros: some kernels skip work on zeros. Seeded so runs are repeatable.
        data = np.random.default_rng(seed).standard_normal((batch, *model.input_shape), dtype=np.float32)
        runner = OrtRunner(session, {model.input_name: data}, self.threads)
        if converted is not None:
            runner.precision_method = "onnx_converted"
            runner.converted_sha256 = converted.model.sha256
            runner.calibration = converted.calibration
            runner.timing_only = converted.timing_only
        return runner
