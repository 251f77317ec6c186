"""Precision on ONNX Runtime (CPU), and the cost of preparing inputs for accuracy (run by hand: `make bench`).

1. images/s of fp16 and int8 against fp32 for zoo networks, in one run, through the real sweep (the converted
   models of `agent/models/convert.py`; int8 calibrated on random data: the speed of a QDQ graph does not depend on
   its scales); ratios are per network, measured back to back.
2. Preprocessing throughput per core: JPEG decode, resize, crop and normalise (the `imagenet` preset) of synthetic
   500x375 photos, on one thread.
3. The share of an accuracy pass spent preparing inputs: the first pass decodes every image, a second one (a new
   process's view: a new book on the same cache) memory-maps the cached tensors.

One JSON line per figure on stdout; a summary on stderr.
"""

from __future__ import annotations

import argparse
import tempfile
import time
from pathlib import Path

from _common import NullSink, emit, machine, say

from dnnprof.agent.backends import get_backend
from dnnprof.agent.measure import accuracy, profiler
from dnnprof.agent.measure.sweep import Sweep
from dnnprof.agent.models import images, zoo
from dnnprof.agent.power import NO_POWER
from dnnprof.shared import onnxfile, preprocessing

NETWORKS = ["resnet18", "mobilenet_v2", "squeezenet1_1", "shufflenet_v2_x0_5"]
SETTINGS = profiler.Settings(warmup_min_s=0.5, warmup_max_s=3.0, window_min_s=2.0, window_max_s=6.0, min_iterations=10,
                             latency_ci=0.02, idle_s=0.0, min_power_samples=0)


def speeds(folder: Path, networks: list[str], batch: int, caches: Path) -> list[dict]:
    backend = get_backend("onnxruntime", cache_dir=caches)
    models = [onnxfile.load(p) for p in zoo.generate(networks, folder)]
    rows = []
    for model in models:
        sweep = Sweep(board="bench", run_id="precision", models=[model], batches=[batch], backend=backend,
                      power=NO_POWER, settings=SETTINGS, precisions=["fp32", "fp16", "int8"])
        by = {r.precision: r for r in sweep.run(NullSink())}
        base = by["fp32"].throughput_ips
        row = {"network": model.name, "batch": batch, **{f"{p}_ips": round(r.throughput_ips, 1) for p, r in by.items()},
               "fp16_vs_fp32": round(by["fp16"].throughput_ips / base, 3),
               "int8_vs_fp32": round(by["int8"].throughput_ips / base, 3)}
        emit(row)
        rows.append(row)
    return rows


def photos(folder: Path, count: int) -> Path:
    """``count`` 500x375 JPEG photos of smooth noise in ten class folders (a labelled set)."""
    import numpy as np
    from PIL import Image

    rng = np.random.default_rng(0)
    for i in range(count):
        small = rng.integers(0, 256, (12, 16, 3), dtype=np.uint8)
        image = Image.fromarray(small).resize((500, 375), Image.Resampling.BICUBIC)
        target = folder / str(i % 10) / f"{i:05d}.jpg"
        target.parent.mkdir(parents=True, exist_ok=True)
        image.save(target, quality=90)
    return folder


def decode_rate(folder: Path) -> dict:
    found = images.labelled(folder)
    prep = preprocessing.PRESETS["imagenet"]
    start = time.perf_counter()
    images.tensors(found, prep, (3, 224, 224), keep=False)
    took = time.perf_counter() - start
    row = {"figure": "preprocessing", "images": len(found), "seconds": round(took, 3),
           "images_per_s_per_core": round(len(found) / took, 1), "pipeline": prep.describe()}
    emit(row)
    return row


def pass_share(folder: Path, model_dir: Path, cache: Path, batch: int) -> list[dict]:
    backend = get_backend("onnxruntime")
    [path] = zoo.generate(["mobilenet_v2"], model_dir)
    model = onnxfile.load(path)
    rows = []
    for label in ("first pass (decoding)", "second pass (cached tensors)"):
        book = accuracy.Book(images.labelled(folder), cache=cache)
        runner = backend.prepare(model, batch, "fp32")
        start = time.perf_counter()
        tensors = book.tensors(model)
        prepare_s = time.perf_counter() - start
        book.measure(model, runner, batch, ("bench",))
        runner.close()
        total = prepare_s + book.infer_s
        row = {"figure": "accuracy pass", "pass": label, "network": model.name, "batch": batch,
               "images": len(tensors.data), "prepare_s": round(prepare_s, 3), "infer_s": round(book.infer_s, 3),
               "prepare_share": round(prepare_s / total, 3)}
        emit(row)
        rows.append(row)
    return rows


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("networks", nargs="*", help=f"zoo networks (default: {' '.join(NETWORKS)})")
    parser.add_argument("--batch", type=int, default=8)
    parser.add_argument("--images", type=int, default=300, help="synthetic photos for the preprocessing figures")
    args = parser.parse_args()
    emit({"machine": machine()})
    with tempfile.TemporaryDirectory() as tmp:
        tmp = Path(tmp)
        rows = speeds(tmp / "models", args.networks or NETWORKS, args.batch, tmp / "caches")
        folder = photos(tmp / "photos", args.images)
        rate = decode_rate(folder)
        share = pass_share(folder, tmp / "mv2", tmp / "tensors", args.batch)
    say(f"\n{'network':<20} {'fp32 img/s':>10} {'fp16 img/s':>10} {'int8 img/s':>10} {'fp16/fp32':>9} "
        f"{'int8/fp32':>9}   (batch {args.batch})")
    for r in rows:
        say(f"{r['network']:<20} {r['fp32_ips']:>10.1f} {r['fp16_ips']:>10.1f} {r['int8_ips']:>10.1f} "
            f"{r['fp16_vs_fp32']:>9.2f} {r['int8_vs_fp32']:>9.2f}")
    say(f"\npreprocessing (imagenet preset, 500x375 JPEG): {rate['images_per_s_per_core']:.0f} images/s on one core")
    for r in share:
        say(f"accuracy pass, {r['pass']}: preparing {r['prepare_s']:.2f} s, inference {r['infer_s']:.2f} s "
            f"({r['prepare_share']:.0%} preparing)")


if __name__ == "__main__":
    main()
