"""Fixtures for the agent tests: a real generated model, and tiny hand-built ONNX graphs for the edge cases."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import onnx
import pytest
from onnx import TensorProto, helper, numpy_helper

from dnnprof.agent.models import zoo

SMALL = "shufflenet_v2_x0_5"  # the fastest network of the zoo on a CPU


@pytest.fixture(scope="session")
def model_dir(tmp_path_factory) -> Path:
    """A directory holding one generated network, shared by every test (read it, never write into it)."""
    out = tmp_path_factory.mktemp("models")
    zoo.generate([SMALL], out)
    return out


@pytest.fixture(scope="session")
def model_path(model_dir) -> Path:
    return model_dir / f"{SMALL}.onnx"


def _tiny(path: Path, *, batch: int | str = "N", inputs: int = 1, op: str = "Conv",
          elem_type: int = TensorProto.FLOAT, shape: tuple = (3, 8, 8)) -> Path:
    """A one-node graph: Conv (3->4 channels, 3x3) on each input, or ``op`` if it is something else."""
    names = [f"x{i}" for i in range(inputs)]
    graph_inputs = [helper.make_tensor_value_info(n, elem_type, [batch, *shape]) for n in names]
    initializers = []
    if op == "Conv":
        weight = numpy_helper.from_array(np.random.default_rng(0).standard_normal((4, shape[0], 3, 3),
                                                                                    dtype=np.float32), "w")
        initializers.append(weight)
        nodes = [helper.make_node("Conv", [n, "w"], [f"y{i}"], pads=[1, 1, 1, 1]) for i, n in enumerate(names)]
        out_shape = [batch, 4, *shape[1:]]
    else:
        nodes = [helper.make_node(op, [n], [f"y{i}"]) for i, n in enumerate(names)]
        out_shape = [batch, *shape]
    outputs = [helper.make_tensor_value_info(f"y{i}", TensorProto.FLOAT, out_shape) for i in range(inputs)]
    graph = helper.make_graph(nodes, "tiny", graph_inputs, outputs, initializer=initializers)
    model = helper.make_model(graph, opset_imports=[helper.make_opsetid("", 13)], ir_version=7)
    path.parent.mkdir(parents=True, exist_ok=True)
    onnx.save(model, str(path))
    return path


@pytest.fixture
def make_onnx():
    """``make_onnx(path, batch=1, inputs=2, op="NoSuchOp", ...)`` writes a tiny ONNX file and returns its path."""
    return _tiny
