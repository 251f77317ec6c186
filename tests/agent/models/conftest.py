"""Shared checks for the generated networks."""

from __future__ import annotations

import numpy as np
import onnxruntime as ort
import pytest


def _runs(model_bytes: bytes | str, batch: int = 1, size: int = 224) -> np.ndarray:
    """Run ``batch`` random images through a model on ONNX Runtime; the logits must be sane floats."""
    session = ort.InferenceSession(model_bytes, providers=["CPUExecutionProvider"])
    x = np.random.default_rng(0).standard_normal((batch, 3, size, size), dtype=np.float32)
    (y,) = session.run(None, {"input": x})
    assert y.shape == (batch, 1000) and y.dtype == np.float32
    assert np.isfinite(y).all()
    assert y.std() > 0
    nonzero = np.abs(y[y != 0])
    assert nonzero.min() >= np.finfo(np.float32).tiny  # no denormals (they slow CPU timing)
    return y


@pytest.fixture
def assert_runs():
    """``assert_runs(model_bytes_or_path, batch=1, size=224)``: the model runs and gives sane logits."""
    return _runs
