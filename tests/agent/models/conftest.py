"""Shared checks for the generated networks."""

from __future__ import annotations

import numpy as np
import onnx
import onnxruntime as ort
import pytest


def _dims(value: onnx.ValueInfoProto) -> list:
    return [d.dim_param or d.dim_value for d in value.type.tensor_type.shape.dim]


def _valid(model: onnx.ModelProto, size: int = 224, checked: bytes | onnx.ModelProto | None = None) -> None:
    """Passes the full checker; IR 7, opset 13; "input" (N, 3, size, size) → "logits" (N, 1000)."""
    onnx.checker.check_model(model if checked is None else checked, full_check=True)
    assert model.ir_version == 7
    assert [(o.domain, o.version) for o in model.opset_import] == [("", 13)]
    (inp,), (out,) = model.graph.input, model.graph.output
    assert inp.name == "input" and out.name == "logits"
    assert _dims(inp) == ["N", 3, size, size]
    assert _dims(out) == ["N", 1000]


@pytest.fixture
def assert_valid_graph():
    """``assert_valid_graph(model, size=224, checked=None)``; ``checked``: what to give the checker (a path or
    bytes for models over protobuf's 2 GB in-memory limit), default the model itself."""
    return _valid


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
