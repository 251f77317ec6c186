"""How well `dnnhost predict` predicts a network never measured on a board (run by hand: `make bench`, or
`python bench/predict.py`).

Measures the zoo on this machine with the real agent (`dnnagent models generate` + `dnnagent run`, ONNX Runtime on
the CPU, batch 1, 2, 4, 8), or reads results measured before (`--results FILE.jsonl`, e.g.
`docs/examples/dev-2c-predict-results.jsonl`), then for every (board, mode, precision, batch) predicts each network
from the others (leave-one-network-out) with host/predict.py's model and with the seed's MACs-only line fitted to
the same data. Reports, per target (time per image, energy per image), the median and worst relative error of both.

Prints one JSON line on stdout and a table on stderr.
"""

from __future__ import annotations

import argparse
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import numpy as np

from _common import REPO, emit, machine, say
from dnnprof.host import analysis, predict
from dnnprof.shared import schema

ZOO = ["alexnet", "efficientnet_b0", "googlenet", "inception_v3", "mobilenet_v2", "mobilenet_v3_large", "resnet101",
       "resnet152", "resnet18", "resnet34", "resnet50", "shufflenet_v2_x0_5", "squeezenet1_1", "vgg16", "vgg19"]


def measure(out: Path, batches: str, names: list[str]) -> None:
    """The real agent over the zoo, results into ``out`` (JSONL)."""
    agent = [str(Path(sys.executable).parent / "dnnagent")]
    with tempfile.TemporaryDirectory() as models:
        say(f"generating {len(names)} networks …")
        subprocess.run([*agent, "models", "generate", *names, "--out", models, "--quiet"], check=True)
        say(f"measuring them at batch {batches} (ONNX Runtime, CPU) …")
        subprocess.run([*agent, "run", models, "--batch", batches, "--duration", "1s", "--max-duration", "4s",
                        "--output", str(out), "--board", "dev-2c", "--run-id", time.strftime("predict-%Y%m%d")],
                       check=True)


def results(path: Path) -> list[schema.Result]:
    out = []
    for line in path.read_text().splitlines():
        message = schema.decode(line.encode())
        if isinstance(message, schema.Result):
            out.append(message)
    return out


def errors(path: Path) -> dict:
    """Leave-one-network-out relative errors, pooled over every group, of our model and the MACs-only line."""
    df = analysis.latest(analysis.frame(results(path)))
    kinds = ("model", "macs_line", "macs_robust")
    pooled = {t: {k: [] for k in kinds} for t in predict.TARGETS}
    groups = []
    for group in predict.groups(df):
        entry = {**{k: analysis.plain(v) for k, v in group.key.items()}, "networks": len(group.networks),
                 "features": group.used}
        for target in predict.TARGETS:
            if len(group.data(target)[0]) < predict.min_networks(len(group.used)):
                continue
            names, errors = group.loo(target, robust_macs=True)
            entry[target] = {}
            for kind in kinds:
                pooled[target][kind].extend(errors[kind].tolist())
                entry[target][kind] = {"median": float(np.median(errors[kind])), "worst": float(errors[kind].max()),
                                       "worst_network": names[int(np.argmax(errors[kind]))]}
        groups.append(entry)
    summary = {t: {k: {"median": float(np.median(v)), "worst": float(np.max(v)), "n": len(v)}
                   for k, v in by.items() if v} for t, by in pooled.items()}
    return {"groups": groups, "pooled": summary}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--results", type=Path, help="Results measured before (JSONL); default: measure now.")
    parser.add_argument("--save", type=Path, help="Keep the measured results in this file.")
    parser.add_argument("--batch", default="1,2,4,8")
    parser.add_argument("--networks", default=",".join(ZOO))
    args = parser.parse_args()
    started = time.monotonic()
    with tempfile.TemporaryDirectory() as tmp:
        path = args.results
        if path is None:
            path = args.save or Path(tmp) / "results.jsonl"
            measure(path, args.batch, args.networks.split(","))
        found = errors(path)
    say("")
    say(f"leave-one-network-out relative error over {path.name}: median / worst (n predictions)")
    say(f"{'target':28s} {'dnnhost predict':>22s} {'MACs-only line (seed)':>22s} {'MACs only, fitted alike':>24s}")
    for target, by in found["pooled"].items():
        cells = [f"{100 * by[k]['median']:.1f}% / {100 * by[k]['worst']:.0f}% ({by[k]['n']})" for k in
                 ("model", "macs_line", "macs_robust")]
        say(f"{predict.TARGETS[target]:28s} {cells[0]:>22s} {cells[1]:>22s} {cells[2]:>24s}")
    say("per batch, time per image, median (model / seed line / MACs alike): " + "; ".join(
        f"b{g['batch']} " + " / ".join(f"{100 * g['ms_per_image'][k]['median']:.0f}%" for k in
                                        ("model", "macs_line", "macs_robust"))
        for g in found["groups"] if "ms_per_image" in g))
    emit({"bench": "predict", "results": str(path.relative_to(REPO) if path.is_relative_to(REPO) else path),
          "machine": machine(), "seconds": round(time.monotonic() - started, 1), **found})


if __name__ == "__main__":
    main()
