"""``dnnagent models list | inspect | generate``: the reference networks and what any ONNX classifier costs."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Annotated, Optional

import typer
from rich.table import Table

from dnnprof.shared import onnxfile
from dnnprof.shared.errors import UserError

from .app import err, models_app, out


@models_app.command("list")
def models_list(as_json: Annotated[bool, typer.Option("--json", help="Print JSON.")] = False) -> None:
    """List the networks `models generate` can build, with their reference accuracy."""
    from dnnprof.agent.models import zoo
    from dnnprof.shared import catalog

    rows = []
    for name in zoo.names():
        entry = catalog.lookup(name)
        rows.append({"name": name, "demo": name in zoo.DEMO_SET, "top1": entry.top1 if entry else None,
                     "gmacs": entry.gmacs if entry else None, "params_m": entry.params_m if entry else None})
    if as_json:
        print(json.dumps(rows, indent=2))
        return
    table = Table("network", "top-1 %", "GMACs", "params (M)", "in demo set")
    for r in rows:
        table.add_row(r["name"], f"{r['top1']:.2f}" if r["top1"] else "—", str(r["gmacs"] or "—"),
                      str(r["params_m"] or "—"), "yes" if r["demo"] else "")
    out.print(table)


@models_app.command("inspect")
def models_inspect(
    paths: Annotated[list[Path], typer.Argument(help="ONNX image classifiers (any, not only generated ones).")],
    as_json: Annotated[bool, typer.Option("--json", help="Print JSON (a list, one object per file).")] = False,
) -> None:
    """Parameters, multiply-accumulates and FLOPs per image, split by layer kind, without loading the weights.

    MACs follow torchvision's convention (convolutions and matrix products only); FLOPs = 2 x MACs, which is
    what the seed paper's "G-Ops" counts. Operators that cannot be counted are listed, never guessed.
    """
    from dnnprof.shared import opcount as inspection

    found = [inspection.inspect(p) for p in onnxfile.collect(paths)]
    if as_json:
        print(json.dumps([inspection.to_dict(f) for f in found], indent=2))
        return
    for f in found:
        table = Table("layer kind", "layers", "MACs", "share", "params", title_justify="left",
                      title=f"{f.path} — input {list(f.input_shape)}")
        for kind, figures in f.by_kind.items():
            table.add_row(kind, str(figures["layers"]), _count(figures["macs"]),
                          f"{figures['macs'] / f.macs:.1%}" if f.macs else "—", _count(figures["params"]))
        table.add_row("[bold]total[/]", "", f"[bold]{_count(f.macs)}[/]", "", f"[bold]{_count(f.params)}[/]")
        out.print(table)
        out.print(f"FLOPs {_count(f.flops)} per image (2 x MACs; the seed paper's G-Ops) · activations "
                  f"{f.activation_bytes / 1e6:.1f} MB per image in all, {f.peak_activation_bytes / 1e6:.1f} MB at "
                  "peak (float32)")
        if f.unsupported:
            out.print(f"[yellow]not counted:[/] {', '.join(f.unsupported)}")


def _count(n: int) -> str:
    """``1814073344`` → ``"1.81 G"``: counts with an SI prefix."""
    for factor, prefix in ((1e9, "G"), (1e6, "M"), (1e3, "k")):
        if n >= factor:
            return f"{n / factor:.3g} {prefix}"
    return str(n)


@models_app.command("generate")
def models_generate(
    names: Annotated[Optional[list[str]], typer.Argument(help="Networks to build (default: the demo set).")] = None,
    out_dir: Annotated[Path, typer.Option("--out", "-o", help="Directory to write NAME.onnx into.")] = Path("models"),
    seed: Annotated[int, typer.Option(help="Seed of the random weights.")] = 0,
    quiet: Annotated[bool, typer.Option("--quiet", "-q")] = False,
) -> None:
    """Write real architectures with seeded random weights as ONNX files (no downloads)."""
    from dnnprof.agent.models import zoo

    try:
        paths = zoo.generate(names or list(zoo.DEMO_SET), out_dir, seed=seed)
    except OSError as exc:
        raise UserError(f"cannot write models to {out_dir}: {exc.strerror or exc}") from None
    if not quiet:
        for p in paths:
            err.print(f"wrote {p} ({p.stat().st_size / 1e6:.1f} MB)")



@models_app.command("convert")
def models_convert(
    model: Annotated[Path, typer.Argument(help="The fp32 ONNX classifier to convert.", show_default=False)],
    precision: Annotated[str, typer.Option(help="fp16 (float tensors converted, input and output kept fp32) or int8 "
                                                "(static quantization: QuantizeLinear/DequantizeLinear pairs).")],
    out_dir: Annotated[Path, typer.Option("--out", "-o", help="Directory to write NAME_PRECISION.onnx into.")],
    calibration: Annotated[Optional[Path], typer.Option(
        help="int8: calibrate on the .jpg/.png images in DIR (or its class folders), through the model's "
             "preprocessing. Without it int8 is calibrated on random data: timed, never ranked for accuracy.",
        metavar="DIR")] = None,
    preprocessing: Annotated[Optional[str], typer.Option(
        help="The model's preprocessing preset (imagenet: resize 256, crop 224; inception: 342 / 299). Default: "
             "the preset matching its input size. Explicit keys go in a manifest (`dnnagent run --manifest`).",
        metavar="PRESET")] = None,
    cache: Annotated[Optional[Path], typer.Option(
        help="Where conversions are cached by content (default: ~/.cache/dnnprof/converted).", metavar="DIR")]
    = None,
    as_json: Annotated[bool, typer.Option("--json", help="Print what was written and its check as JSON.")] = False,
) -> None:
    """Write MODEL at another precision as an ONNX file, checked against the fp32 model.

    The check runs both models on the calibration images (or seeded random inputs without them) and reports
    top-1 agreement and the largest logit difference. `dnnagent run --precision fp16,int8` converts the same way on
    its own; this command is for looking at one conversion, or for handing the file to another tool.

    Example: [bold]dnnagent models convert resnet50.onnx --precision int8 --calibration val/ --out int8/[/bold]
    """
    import dataclasses
    import shutil

    from dnnprof.agent.models import convert, images
    from dnnprof.shared import preprocessing as prep_mod

    precision = precision.strip().lower()
    if precision not in convert.PRECISIONS:
        raise UserError(f"--precision {precision!r}: convert writes fp16 or int8 (fp32 is the exported file itself)")
    if calibration is not None and precision != "int8":
        raise UserError("--calibration calibrates int8: use --precision int8, or leave it out")
    source = onnxfile.load(model)
    if preprocessing is not None:
        prep = prep_mod.named(preprocessing, "--preprocessing")
        prep.check_shape(source.input_shape, f"{model}")
        source = dataclasses.replace(source, preprocess=prep, preprocessing=prep.describe())
    images_set = images.unlabelled(calibration) if calibration is not None else None
    say = (lambda text: None) if as_json else (lambda text: err.print(f"[dim]{text}[/]"))
    done = convert.convert(source, precision, calibration=images_set, cache=cache,
                           on_status=say)
    try:
        out_dir.mkdir(parents=True, exist_ok=True)
        target = out_dir / f"{source.name}_{precision}.onnx"
        shutil.copyfile(done.model.path, target)
    except OSError as exc:
        raise UserError(f"cannot write to {out_dir}: {exc.strerror or exc}") from None
    check = done.check
    report = {"source": str(model), "source_sha256": source.sha256, "output": str(target),
              "sha256": done.model.sha256, "precision": precision, "calibration": done.calibration,
              "timing_only": done.timing_only, "preprocessing": source.pipeline().describe(), "cached": done.cached,
              "check": dataclasses.asdict(check)}
    if as_json:
        print(json.dumps(report, indent=2))
        return
    size = target.stat().st_size / 1e6
    err.print(f"wrote {target} ({size:.1f} MB, {precision}{', from the cache' if done.cached else ''})")
    err.print(f"check on {check.images} {check.on}: top-1 agreement with fp32 {check.top1_agreement:.1f}%, "
              f"largest logit difference {check.max_logit_error:.4g}")
    if done.timing_only:
        err.print("[yellow]int8 calibrated on random data: time it, but its accuracy means nothing (add "
                  "--calibration DIR)[/]")
