"""Real ImageNet classifiers as ONNX graphs with seeded random weights, built offline.

Layer structure and shapes follow torchvision's reference implementations (torchvision/models/*.py),
so op counts and shapes are the real networks'; BatchNorm is folded into convolutions (see
``builder``), and dropout, a no-op at inference, is left out. Input "input" is (N, 3, 224, 224) — 299 for
Inception-v3 — and output "logits" is (N, 1000), float32. The architectures live in ``small`` (the demo set),
``classic`` (the seed paper's) and ``modern``; this module is the registry.
"""

from __future__ import annotations

import os
from collections.abc import Callable, Iterable
from pathlib import Path

import numpy as np
import onnx

from dnnprof.agent.models import classic, modern, small
from dnnprof.shared.errors import UserError

# -- public API -------------------------------------------------------------------------------------

ARCHITECTURES: dict[str, Callable[..., onnx.ModelProto]] = {
    "resnet18": small.resnet18,
    "mobilenet_v2": small.mobilenet_v2,
    "squeezenet1_1": small.squeezenet1_1,
    "shufflenet_v2_x0_5": small.shufflenet_v2_x0_5,
    **classic.CLASSIC,
    **modern.MODERN,
}

DEMO_SET: tuple[str, ...] = ("shufflenet_v2_x0_5", "squeezenet1_1", "mobilenet_v2", "resnet18")


def names() -> list[str]:
    """Known architecture names, sorted."""
    return sorted(ARCHITECTURES)


def _check_names(requested: Iterable[str]) -> list[str]:
    requested = list(requested)
    for name in requested:
        if name not in ARCHITECTURES:
            raise UserError(f"unknown architecture {name!r}; known: {', '.join(names())}")
    return requested


def build(name: str, seed: int = 0) -> onnx.ModelProto:
    """Build architecture ``name`` with weights drawn from ``seed``; same seed, same bytes."""
    _check_names([name])
    return ARCHITECTURES[name](seed=seed)


def generate(names: Iterable[str], out_dir: Path, seed: int = 0) -> list[Path]:
    """Write ``<name>.onnx`` for each name into ``out_dir`` (created if missing), each checked by onnx.checker."""
    requested = _check_names(names)
    out_dir = Path(out_dir)
    out_dir.mkdir(parents=True, exist_ok=True)
    paths = []
    for name in requested:
        model = build(name, seed)
        onnx.checker.check_model(model)
        path = out_dir / f"{name}.onnx"
        # write then rename, so a reader never sees a half-written model
        tmp = path.with_name(f".{path.name}.tmp")
        tmp.write_bytes(model.SerializeToString())
        os.replace(tmp, path)
        paths.append(path)
    return paths


def count_params(model: onnx.ModelProto) -> int:
    """Elements in the weights and biases of Conv and Gemm nodes (helper constants are not parameters)."""
    sizes = {init.name: int(np.prod(init.dims, dtype=np.int64)) for init in model.graph.initializer}
    params = {
        name
        for node in model.graph.node
        if node.op_type in ("Conv", "Gemm")
        for name in node.input[1:3]
        if name in sizes
    }
    return sum(sizes[name] for name in params)
