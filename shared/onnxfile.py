"""Open and check an ONNX image classifier before any profiling time is spent on it."""

from __future__ import annotations

import hashlib
from dataclasses import dataclass
from pathlib import Path

from dnnprof.shared.errors import UserError
from dnnprof.shared.preprocessing import Preprocessing, default_for

_FLOAT = 1  # onnx.TensorProto.FLOAT


@dataclass(frozen=True)
class ModelFile:
    path: Path
    name: str  # network name: the file stem, used to look up reference accuracy
    sha256: str
    input_name: str
    input_shape: tuple[int, ...]  # per image, without the batch dimension
    fixed_batch: int | None  # None when the batch dimension is symbolic (any batch works)
    top1: float | None = None  # reference accuracy from a manifest, for a model the catalog does not describe
    top1_source: str | None = None
    preprocessing: str | None = None  # how inputs are prepared, in words (carried into results)
    preprocess: Preprocessing | None = None  # the machine-readable pipeline, where the manifest gives one

    def pipeline(self) -> Preprocessing:
        """The pipeline its accuracy pass and int8 calibration use: the manifest's, else the default for its input
        size (``preprocessing.default_for``, marked default)."""
        return self.preprocess or default_for(self.input_shape)

    def check_batch(self, batch: int) -> None:
        if self.fixed_batch is not None and self.fixed_batch != batch:
            raise UserError(
                f"{self.path} has a fixed batch size of {self.fixed_batch}, so batch {batch} cannot run: "
                "export it with a dynamic batch dimension (torch.onnx.export(..., dynamic_axes={'input': {0: 'N'}}))"
            )


def _sha256(path: Path) -> str:
    digest = hashlib.sha256()
    with path.open("rb") as fh:
        for block in iter(lambda: fh.read(1 << 20), b""):
            digest.update(block)
    return digest.hexdigest()


def load(path: str | Path) -> ModelFile:
    """Read the graph (not the external weights) of ``path`` and describe its image input.

    Raises UserError for a missing file, a file that is not ONNX, or a graph without one float NCHW input.
    """
    import onnx

    path = Path(path)
    if not path.exists():
        raise UserError(f"model file {path} does not exist")
    if not path.is_file():
        raise UserError(f"model path {path} is not a file")
    try:
        model = onnx.load(str(path), load_external_data=False)
    except Exception as exc:  # onnx raises DecodeError, ValueError or others for garbage
        raise UserError(f"{path} is not an ONNX model ({exc.__class__.__name__}): export it with torch.onnx.export "
                        "or check the file was copied whole") from None
    graph = model.graph
    if not graph.node:
        raise UserError(f"{path} is not an ONNX model: it has no graph nodes")
    initializers = {init.name for init in graph.initializer}
    inputs = [i for i in graph.input if i.name not in initializers]
    if len(inputs) != 1:
        raise UserError(f"{path} has {len(inputs)} inputs; dnnprof profiles image classifiers with one input")
    tensor = inputs[0].type.tensor_type
    if tensor.elem_type != _FLOAT:
        raise UserError(f"{path}: input {inputs[0].name!r} is not float32; export the fp32 model")
    dims = [d.dim_value if d.HasField("dim_value") else None for d in tensor.shape.dim]
    if len(dims) != 4 or any(d is None or d <= 0 for d in dims[1:]):
        raise UserError(
            f"{path}: input {inputs[0].name!r} has shape {dims}; expected (batch, channels, height, width) "
            "with fixed channels, height and width"
        )
    return ModelFile(
        path=path,
        name=path.stem,
        sha256=_sha256(path),
        input_name=inputs[0].name,
        input_shape=tuple(dims[1:]),
        fixed_batch=dims[0],
    )


def collect(paths: list[Path]) -> list[Path]:
    """Expand directories into the ``*.onnx`` files they hold, sorted; files pass through."""
    out: list[Path] = []
    for path in paths:
        if path.is_dir():
            found = sorted(path.glob("*.onnx"))
            if not found:
                raise UserError(f"directory {path} holds no .onnx files")
            out.extend(found)
        else:
            out.append(path)
    return out
