"""A model manifest: the user's own exported models, with what the file itself cannot say.

TOML, one ``[[model]]`` table per model::

    [[model]]
    path = "exports/resnet50_int8.onnx"   # relative to the manifest
    name = "resnet50"                      # default: the file name without .onnx
    input_shape = [3, 224, 224]            # checked against the model's input
    preprocessing = "imagenet"             # a preset (imagenet, inception), a table of keys, or free text
    top1 = 75.9                            # reference accuracy of *this* model (overrides the catalog)
    top1_source = "our validation run, 2026-11"

    [[model]]
    path = "exports/tiny.onnx"
    preprocessing = { resize = 72, crop = 64, mean = [0.5, 0.5, 0.5], std = [0.25, 0.25, 0.25], channels = "BGR" }
"""

from __future__ import annotations

import dataclasses
from pathlib import Path

from dnnprof.shared.errors import UserError

from dnnprof.shared import onnxfile, preprocessing

_FIELDS = {"path", "name", "input_shape", "preprocessing", "top1", "top1_source"}


def load(path: str | Path) -> list[onnxfile.ModelFile]:
    """The models a manifest lists, each opened and checked; UserError names the entry and field at fault."""
    path = Path(path)
    try:
        import tomllib
    except ImportError:  # Python 3.10
        import tomli as tomllib
    try:
        data = tomllib.loads(path.read_text(encoding="utf-8"))
    except OSError as exc:
        raise UserError(f"cannot read the manifest {path}: {exc.strerror or exc}") from None
    except (UnicodeDecodeError, tomllib.TOMLDecodeError) as exc:
        raise UserError(f"{path} is not a TOML manifest: {str(exc).splitlines()[0]}") from None
    entries = data.get("model")
    if not isinstance(entries, list) or not entries or set(data) - {"model"}:
        raise UserError(f"{path}: list each model as a [[model]] table with at least path = \"...\"")
    models = []
    for i, entry in enumerate(entries, 1):
        where = f"{path} [[model]] #{i}"
        unknown = set(entry) - _FIELDS
        if unknown:
            raise UserError(f"{where}: unknown field {sorted(unknown)[0]!r}; known: {', '.join(sorted(_FIELDS))}")
        if not isinstance(entry.get("path"), str) or not entry["path"]:
            raise UserError(f"{where}: needs path = \"model.onnx\"")
        model = onnxfile.load(path.parent / entry["path"])
        shape = entry.get("input_shape")
        if shape is not None and (not isinstance(shape, list) or tuple(shape) != model.input_shape):
            raise UserError(f"{where}: input_shape {shape} does not match the model's input "
                            f"{list(model.input_shape)} (per image, without the batch)")
        top1 = entry.get("top1")
        if top1 is not None and (isinstance(top1, bool) or not isinstance(top1, (int, float)) or not 0 < top1 <= 100):
            raise UserError(f"{where}: top1 = {top1!r} must be a percentage in (0, 100]")
        prep = preprocessing.parse(entry.get("preprocessing"), where)
        if prep is not None:
            prep.check_shape(model.input_shape, where)
        for key in ("name", "top1_source"):
            if key in entry and not isinstance(entry[key], str):
                raise UserError(f"{where}: {key} must be a string")
        models.append(dataclasses.replace(
            model,
            name=entry.get("name") or model.name,
            top1=None if top1 is None else float(top1),
            top1_source=entry.get("top1_source") or (None if top1 is None else f"manifest {path}"),
            preprocessing=prep.describe() if prep is not None else entry.get("preprocessing"),
            preprocess=prep,
        ))
    return models
