"""How fast `dnnhost report` answers over a large store, and how fast the in-memory analysis is (run by hand:
`make bench`, or `python bench/report.py`).

A synthetic fleet: 20 boards x 2 power modes x 2 precisions x 25 networks x 5 batch sizes = 10,000 configurations,
each measured --runs times (100 → 1,000,000 stored results; the report reads the newest of each configuration).
The store is written once through the real Store (so the latest-per-configuration table is maintained the way a
collector maintains it) and reused by later runs with the same size. Timed:

* ``report_cli_s``: the whole `dnnhost report --energy-budget 50mJ --db STORE` command in a fresh process (imports,
  reading the store, ranking, the seed's analyses, rendering), median of --repeat runs.
* ``load_s`` / ``build_s``: the same two steps in this process.
* ``analysis_10k_s``: ranking (ceilings, frontiers per board, power mode and precision) plus the seed's analyses
  on the 10,000-configuration frame in memory, median of 20.

Prints one JSON line on stdout and a summary on stderr.
"""

from __future__ import annotations

import argparse
import os
import statistics
import subprocess
import sys
import time
from pathlib import Path

import msgspec

from dnnprof.host import analysis, paper, report
from dnnprof.host.store import Store
from dnnprof.shared import catalog, schema

sys.path.insert(0, str(Path(__file__).resolve().parent))
from _common import emit, machine, say  # noqa: E402

# The catalog's networks with published costs, plus user networks the catalog does not know (accuracy from a
# manifest), to make 25.
KNOWN = [n for n in catalog.NETWORKS if n.gmacs is not None]
OWN = [catalog.Network(name=f"own-net-{i}", top1=60.0 + 3 * i, top5=None, source="manifest", gmacs=0.5 + i,
                       params_m=3.0 + 2 * i) for i in range(25 - len(KNOWN))]
REFS = {n.name: n for n in KNOWN + OWN}
NETWORKS = list(REFS)
BATCHES = [1, 2, 4, 8, 16]
MODES = ["MAXN", "15W"]
PRECISIONS = ["fp16", "int8"]
BOARDS = [f"orin-{i:02d}" for i in range(20)]


def configurations() -> list[tuple]:
    return [(b, m, p, n, k) for b in BOARDS for m in MODES for p in PRECISIONS for n in NETWORKS for k in BATCHES]


def template() -> schema.Result:
    lat = schema.Latency(mean=10.0, stdev=0.4, p50=9.9, p90=10.5, p95=10.8, p99=11.5, min=9.1, max=13.0)
    return schema.Result(
        id="x" * 32, board="orin-00", ts=0.0, run_id="bench-0", network="resnet18", model_sha256="0" * 64,
        model_cost=schema.ModelCost(params=11_689_512, macs=1_814_073_856, fc_macs=512_000, fc_params=513_000),
        input_shape=[3, 224, 224], backend="tensorrt", backend_version="10.3.0", device="gpu", precision="fp16",
        batch=1, warmup_s=1.0, warmup_iterations=100, window_s=5.0, iterations=500, images=500, latency_ms=lat,
        latency_cov=0.04, throughput_ips=100.0, power_w=12.0, idle_power_w=5.0, energy_j=60.0,
        energy_per_inference_j=schema.EnergyPerInference(gross=0.12, net=0.07),
        memory=schema.Memory(backend_bytes=50_000_000, process_rss_delta_bytes=60_000_000),
        conditions=schema.Conditions(power_mode="MAXN", clocks="jetson_clocks on"),
        provenance=schema.Provenance(power_source="ina3221", boundary="input_rail", estimated=False,
                                     sample_rate_hz=100.0, samples=500, unique_samples=500, power_mode="MAXN"),
    )


def fill(path: Path, runs: int) -> None:
    """Write ``runs`` measurements of every configuration through the real Store."""
    base = template()
    configs = configurations()
    t0 = time.monotonic()
    with Store(path) as store:
        for run in range(runs):
            batch_of_messages = []
            for i, (board, mode, precision, network, batch) in enumerate(configs):
                ref = REFS[network]
                speed = (1.0 if precision == "int8" else 1.7) * (1.0 if mode == "MAXN" else 1.6)
                ms_img = ref.gmacs * speed * (0.5 + 0.5 / batch) * (1 + 0.01 * (run % 7))
                power = (15.0 if mode == "MAXN" else 9.0) + 0.1 * (i % 11)
                lat = msgspec.structs.replace(base.latency_ms, mean=ms_img * batch, p50=ms_img * batch,
                                              p99=ms_img * batch * 1.2)
                batch_of_messages.append(msgspec.structs.replace(
                    base, id=f"r{run:04d}c{i:05d}", board=board, ts=1.7e9 + run * 3600 + i * 1e-3,
                    run_id=f"bench-{run}", network=network,
                    reference_top1=None if catalog.lookup(network) else ref.top1,
                    reference_top1_source=None if catalog.lookup(network) else ref.source,
                    precision=precision, batch=batch, latency_ms=lat,
                    throughput_ips=1e3 / ms_img, power_w=power,
                    energy_per_inference_j=schema.EnergyPerInference(gross=power * ms_img / 1e3,
                                                                     net=(power - 5.0) * ms_img / 1e3),
                    model_cost=msgspec.structs.replace(base.model_cost, macs=int(ref.gmacs * 1e9),
                                                       params=int((ref.params_m or 1) * 1e6)),
                    conditions=msgspec.structs.replace(base.conditions, power_mode=mode)))
            store.add_many(batch_of_messages)
            if run % 10 == 9:
                say(f"  wrote {(run + 1) * len(configs):,} results ({time.monotonic() - t0:.0f} s)")


def median_time(fn, repeat: int) -> float:
    times = []
    for _ in range(repeat):
        t = time.perf_counter()
        fn()
        times.append(time.perf_counter() - t)
    return statistics.median(times)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--runs", type=int, default=100, help="measurements of each of the 10,000 configurations")
    parser.add_argument("--store", type=Path, default=Path("/tmp/dnnprof-bench-report"),
                        help="directory for the generated store (kept for reuse)")
    parser.add_argument("--repeat", type=int, default=3)
    args = parser.parse_args()
    n_configs = len(configurations())
    path = args.store / f"results-{n_configs}x{args.runs}.sqlite"
    if not path.exists():
        say(f"generating {n_configs * args.runs:,} results into {path} (once; reused by later runs) …")
        args.store.mkdir(parents=True, exist_ok=True)
        partial = path.with_suffix(".partial")
        for leftover in args.store.glob(partial.name + "*"):
            leftover.unlink()
        fill(partial, args.runs)
        partial.rename(path)
    with Store(path) as store:
        stored = store.count()
        t = time.perf_counter()
        df = report.load(store)
        load_s = time.perf_counter() - t
        limits = analysis.Limits(energy_budget_j=0.05)
        build_s = median_time(lambda: report.build(store, limits, df=df), args.repeat)

    basis = analysis.Basis()
    analysis_s = median_time(lambda: (analysis.per_board(df, limits, basis), paper.analyses(df)), 20)
    ranking_s = median_time(lambda: analysis.per_board(df, limits, basis), 20)
    seed_s = median_time(lambda: paper.analyses(df), 20)

    cli = [sys.executable, "-m", "dnnprof.host", "report", "--energy-budget", "50mJ", "--db", str(path)]
    env = {**os.environ, "COLUMNS": "100"}
    cli_times = []
    for _ in range(args.repeat):
        t = time.perf_counter()
        subprocess.run(cli, check=True, stdout=subprocess.DEVNULL, env=env)
        cli_times.append(time.perf_counter() - t)
    record = {
        "bench": "report", "stored_results": stored, "configurations": len(df), "boards": df["board"].nunique(),
        "report_cli_s": round(statistics.median(cli_times), 3), "report_cli_all_s": [round(x, 3) for x in cli_times],
        "load_s": round(load_s, 3), "build_s": round(build_s, 3),
        "analysis_10k_s": round(analysis_s, 4), "ranking_10k_s": round(ranking_s, 4), "seed_10k_s": round(seed_s, 4),
        "store_bytes": path.stat().st_size, "machine": machine(), "date": time.strftime("%Y-%m-%d"),
    }
    emit(record)
    say(f"report over {stored:,} stored results ({len(df):,} configurations): {record['report_cli_s']:.2f} s "
        f"for the whole command (limit 3 s); in-memory analysis of {len(df):,} configurations: "
        f"{analysis_s * 1e3:.0f} ms (ranking {ranking_s * 1e3:.0f} ms + seed analyses {seed_s * 1e3:.0f} ms; "
        "limit 200 ms)")


if __name__ == "__main__":
    main()
