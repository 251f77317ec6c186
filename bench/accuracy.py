"""The accuracy each precision really reaches, on a classifier trained here (run by hand: `make bench`).

bench/_digits.py trains a small classifier on scikit-learn's bundled handwritten digits and writes its test images
as PNG files; this runs the real sweep (ONNX Runtime, CPU) at fp32, fp16 and int8 (calibrated on 200 training
images) with the test images as the accuracy set, and prints per precision: measured top-1 and its 95% interval,
top-5, the conversion's agreement with fp32, and images/s. One JSON line per precision on stdout.
"""

from __future__ import annotations

import argparse
import tempfile
from pathlib import Path

from _common import NullSink, emit, machine, say
from _digits import build

from dnnprof.agent.backends import get_backend
from dnnprof.agent.measure import accuracy, profiler
from dnnprof.agent.measure.sweep import Sweep
from dnnprof.agent.models import images, manifest
from dnnprof.agent.power import NO_POWER

SETTINGS = profiler.Settings(warmup_min_s=0.2, warmup_max_s=2.0, window_min_s=1.0, window_max_s=4.0,
                             latency_ci=0.02, idle_s=0.0, min_power_samples=0)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--batch", type=int, default=32)
    args = parser.parse_args()
    emit({"machine": machine()})
    with tempfile.TemporaryDirectory() as tmp:
        digits = build(Path(tmp))
        [model] = manifest.load(digits.manifest)
        backend = get_backend("onnxruntime", calibration=digits.calibration, cache_dir=Path(tmp) / "caches")
        book = accuracy.Book(images.labelled(digits.test), cache=Path(tmp) / "tensors")
        sweep = Sweep(board="bench", run_id="accuracy", models=[model], batches=[args.batch], backend=backend,
                      power=NO_POWER, settings=SETTINGS, precisions=["fp32", "fp16", "int8"], accuracy=book)
        results = sweep.run(NullSink())
        rows = []
        for r in results:
            a = r.accuracy
            check = backend.conversions[(model.sha256, r.precision)].check if r.precision != "fp32" else None
            row = {"precision": r.precision, "method": r.precision_method, "top1": round(a.top1, 2),
                   "top1_ci": [round(v, 2) for v in a.top1_ci], "top5": round(a.top5, 2), "images": a.images,
                   "agreement_with_fp32": None if check is None else round(check.top1_agreement, 1),
                   "max_logit_error": None if check is None else round(check.max_logit_error, 4),
                   "ips": round(r.throughput_ips, 1), "batch": r.batch}
            emit(row)
            rows.append(row)
    say(f"\ndigits classifier, trained here: its own top-1 on the {digits.n_test} test images {digits.own_top1:.2f}%")
    say(f"{'precision':<9} {'method':<15} {'top-1 %':>8} {'95% CI':>15} {'top-5 %':>8} {'agree %':>8} "
        f"{'max |Δlogit|':>12} {'img/s':>9}")
    for r in rows:
        agree = "—" if r["agreement_with_fp32"] is None else f"{r['agreement_with_fp32']:.1f}"
        err = "—" if r["max_logit_error"] is None else f"{r['max_logit_error']:.4f}"
        say(f"{r['precision']:<9} {r['method']:<15} {r['top1']:>8.2f} {r['top1_ci'][0]:>7.2f}–{r['top1_ci'][1]:<7.2f}"
            f" {r['top5']:>8.2f} {agree:>8} {err:>12} {r['ips']:>9.0f}")


if __name__ == "__main__":
    main()
