"""ONNX Runtime on the CPU: the backend that runs on any machine."""

from __future__ import annotations

import os

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
    precisions = ("fp32",)

    def __init__(self, threads: int | None = None) -> None:
        try:
            import onnxruntime
        except ImportError:
            raise UserError("onnxruntime is not installed: pip install '.[cpu]' in the dnnprof checkout") from None
        self._ort = onnxruntime
        self.threads = threads or os.cpu_count() or 1

    @property
    def version(self) -> str:
        return self._ort.__version__

    def prepare(self, model: ModelFile, batch: int, precision: str, *, seed: int = 0) -> Runner:
        import numpy as np

        if precision not in self.precisions:
            raise UserError(f"onnxruntime (CPU) runs {', '.join(self.precisions)} only, not {precision!r}")
        model.check_batch(batch)
        options = self._ort.SessionOptions()
        options.intra_op_num_threads = self.threads
        options.inter_op_num_threads = 1
        options.execution_mode = self._ort.ExecutionMode.ORT_SEQUENTIAL
        options.graph_optimization_level = self._ort.GraphOptimizationLevel.ORT_ENABLE_ALL
        options.log_severity_level = 3  # keep onnxruntime's warnings off the user's terminal
        try:
            session = self._ort.InferenceSession(str(model.path), options, providers=["CPUExecutionProvider"])
        except Exception as exc:
            first = str(exc).strip().splitlines()[0] if str(exc).strip() else exc.__class__.__name__
            raise UserError(f"onnxruntime cannot load {model.path}: {first}") from None
        # Random, never zeros: some kernels skip work on zeros. Seeded so runs are repeatable.
        data = np.random.default_rng(seed).standard_normal((batch, *model.input_shape), dtype=np.float32)
        return OrtRunner(session, {model.input_name: data}, self.threads)
