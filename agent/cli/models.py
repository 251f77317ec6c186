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

