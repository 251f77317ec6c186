"""How fast `dnnhost report` answers over a large store, and how fast the in-memory analysis is (run by hand:
`make bench`, or `python bench/report.py`).

A synthetic fleet: 20 boards x 2 power modes x 2 precisions x 25 networks x 5 batch sizes = 10,000 configurations,
each measured --runs times (100 → 1,000,000 stored results; the report reads the newest of each configuration).
The SQLite store (``--db sqlite``, the default) is written once through the real Store (so the latest-per-
configuration table is maintained the way a collector maintains it) and reused by later runs with the same size.

``--db postgresql`` builds the same results in a new database of a private PostgreSQL server
(``bench/_postgres.PrivatePostgres(durable=True)``: PostgreSQL's defaults, fsync and synchronous_commit on), again on
every run (the server and its folder go when the run ends). Writing a million results one by one through the Store
would take far too long over PostgreSQL's round trips, so: the newest run of every configuration (10,000 results)
is written through the real Store (which maintains the ``latest`` table as a collector does), and the older
990,000 are bulk-loaded with psycopg's COPY straight into the ``results`` table, first — being older, they would
not change ``latest``. The same rows (id, columns, the payload as Store encodes it) either way. Then ANALYZE (what
autovacuum would do after such a load) and a CHECKPOINT, so that neither runs during the timings. ``--db both``
times the SQLite and the PostgreSQL report side by side in one run (their command runs interleaved).

Timed, on each store:

* ``report_cli_s``: the whole `dnnhost report --energy-budget 50mJ --db STORE` command in a fresh process (imports,
  reading the store, ranking, the seed's analyses, rendering), median of --repeat runs.
* ``load_s`` / ``build_s``: the same two steps in this process.
* ``query_s`` / ``decode_s``: the two parts of reading the newest results (``Store.latest_results``): the query and
  fetching the 10,000 payloads as text, then decoding them (msgspec), each the median of --repeat.
* ``analysis_10k_s``: ranking (ceilings, frontiers per board, power mode and precision) plus the seed's analyses
  on the 10,000-configuration frame in memory, median of 20.

Prints one JSON line per store on stdout and a summary on stderr.
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


def measured(run: int, configs: list[tuple], base: schema.Result) -> list[schema.Result]:
    """Run ``run``'s measurement of every configuration (a later run is newer)."""
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
    return batch_of_messages


def fill(path: Path, runs: int) -> None:
    """Write ``runs`` measurements of every configuration through the real Store."""
    base = template()
    configs = configurations()
    t0 = time.monotonic()
    with Store(path) as store:
        for run in range(runs):
            store.add_many(measured(run, configs, base))
            if run % 10 == 9:
                say(f"  wrote {(run + 1) * len(configs):,} results ({time.monotonic() - t0:.0f} s)")


COPY_COLUMNS = "id, board, run_id, ts, network, backend, precision, batch, payload, received"


def fill_postgres(url: str, runs: int) -> dict:
    """The same ``runs`` measurements into the PostgreSQL database ``url``: every run but the newest bulk-loaded with
    COPY into ``results`` (the rows Store.add_result writes), then the newest through the real Store (which keeps
    ``latest``). Returns the seconds each part took."""
    base = template()
    configs = configurations()
    t0 = time.monotonic()
    with Store(url) as store:  # the schema
        raw = store.db.raw
        with raw.cursor() as cur, cur.copy(f"COPY results ({COPY_COLUMNS}) FROM STDIN") as copy:
            for run in range(runs - 1):
                now = time.time()
                for r in measured(run, configs, base):
                    copy.write_row((r.id, r.board, r.run_id, r.ts, r.network, r.backend, r.precision, r.batch,
                                    schema.encode(r).decode(), now))
                if run % 10 == 9:
                    say(f"  copied {(run + 1) * len(configs):,} results ({time.monotonic() - t0:.0f} s)")
        copy_s = time.monotonic() - t0
        t = time.monotonic()
        newest = measured(runs - 1, configs, base)
        added = store.add_many(newest)
        assert added == len(configs), added
        store_s = time.monotonic() - t
        say(f"  wrote the newest {added:,} through the Store ({store_s:.0f} s)")
        t = time.monotonic()
        raw.execute("ANALYZE")
        raw.execute("CHECKPOINT")
        analyze_s = time.monotonic() - t
    return {"copy_s": round(copy_s, 1), "store_s": round(store_s, 1), "analyze_checkpoint_s": round(analyze_s, 1)}


def median_time(fn, repeat: int) -> float:
    times = []
    for _ in range(repeat):
        t = time.perf_counter()
        fn()
        times.append(time.perf_counter() - t)
    return statistics.median(times)


LATEST_QUERY = "SELECT r.payload FROM latest l JOIN results r ON r.id = l.id"  # Store.latest_results()'s


def sqlite_store(args) -> Path:
    """The SQLite store of ``--runs`` measurements: generated once, then reused."""
    path = args.store / f"results-{len(configurations())}x{args.runs}.sqlite"
    if not path.exists():
        say(f"generating {len(configurations()) * args.runs:,} results into {path} (once; reused by later runs) …")
        args.store.mkdir(parents=True, exist_ok=True)
        partial = path.with_suffix(".partial")
        for leftover in args.store.glob(partial.name + "*"):
            leftover.unlink()
        fill(partial, args.runs)
        partial.rename(path)
    return path


def in_process(db: str | Path, repeat: int) -> tuple[dict, object]:
    """What the report does, step by step in this process: counting, loading (query + decode, then each alone),
    building; and the frame it loaded."""
    with Store(db) as store:
        stored = store.count()
        t = time.perf_counter()
        df = report.load(store)
        load_s = time.perf_counter() - t
        limits = analysis.Limits(energy_budget_j=0.05)
        build_s = median_time(lambda: report.build(store, limits, df=df), repeat)
        query_s = median_time(lambda: store.db.execute(LATEST_QUERY).fetchall(), repeat)
        rows = store.db.execute(LATEST_QUERY).fetchall()
        decode_s = median_time(lambda: [schema.decode(row[0]) for row in rows], repeat)
        figures = {"stored_results": stored, "configurations": len(df), "boards": df["board"].nunique(),
                   "load_s": round(load_s, 3), "build_s": round(build_s, 3), "query_s": round(query_s, 3),
                   "decode_s": round(decode_s, 3), "payload_bytes": sum(len(row[0]) for row in rows)}
        if store.engine.name == "postgresql":
            plan = store.db.execute("EXPLAIN (ANALYZE, BUFFERS) " + LATEST_QUERY).fetchall()
            figures["plan"] = [row[0] for row in plan]
            figures["store_bytes"] = store.db.execute("SELECT pg_database_size(current_database())").fetchone()[0]
        else:
            figures["store_bytes"] = Path(db).stat().st_size
    return figures, df


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--runs", type=int, default=100, help="measurements of each of the 10,000 configurations")
    parser.add_argument("--store", type=Path, default=Path("/tmp/dnnprof-bench-report"),
                        help="directory for the generated SQLite store (kept for reuse)")
    parser.add_argument("--db", choices=["sqlite", "postgresql", "both"], default="sqlite",
                        help="the store to report from: the SQLite file (default), a database on a private "
                             "PostgreSQL server built for this run, or both side by side")
    parser.add_argument("--repeat", type=int, default=3)
    args = parser.parse_args()
    engines = ["sqlite", "postgresql"] if args.db == "both" else [args.db]
    pg = None
    try:
        targets: dict[str, str | Path] = {}
        built: dict[str, dict] = {}
        if "sqlite" in engines:
            targets["sqlite"] = sqlite_store(args)
        if "postgresql" in engines:
            sys.path.insert(0, str(Path(__file__).resolve().parent))
            from _postgres import PrivatePostgres

            pg = PrivatePostgres(durable=True).start()
            url = pg.database("report")
            say(f"loading {len(configurations()) * args.runs:,} results into PostgreSQL {url} (COPY for all but "
                "the newest run, the newest through the Store) …")
            t = time.monotonic()
            built["postgresql"] = {**fill_postgres(url, args.runs), "total_s": round(time.monotonic() - t, 1)}
            targets["postgresql"] = url

        figures, frames = {}, {}
        for engine, db in targets.items():
            figures[engine], frames[engine] = in_process(db, args.repeat)
        df = next(iter(frames.values()))
        limits = analysis.Limits(energy_budget_j=0.05)
        basis = analysis.Basis()
        analysis_s = median_time(lambda: (analysis.per_board(df, limits, basis), paper.analyses(df)), 20)
        ranking_s = median_time(lambda: analysis.per_board(df, limits, basis), 20)
        seed_s = median_time(lambda: paper.analyses(df), 20)

        # The whole command in a fresh process; with both stores, their runs alternate.
        env = {**os.environ, "COLUMNS": "100"}
        cli_times: dict[str, list[float]] = {engine: [] for engine in targets}
        for _ in range(args.repeat):
            for engine, db in targets.items():
                cli = [sys.executable, "-m", "dnnprof.host", "report", "--energy-budget", "50mJ", "--db", str(db)]
                t = time.perf_counter()
                subprocess.run(cli, check=True, stdout=subprocess.DEVNULL, env=env)
                cli_times[engine].append(time.perf_counter() - t)
    finally:
        if pg is not None:
            pg.stop()

    medians = {engine: statistics.median(times) for engine, times in cli_times.items()}
    for engine in targets:
        record = {
            "bench": "report", "db": engine, **{k: v for k, v in figures[engine].items() if k != "plan"},
            "report_cli_s": round(medians[engine], 3), "report_cli_all_s": [round(x, 3) for x in cli_times[engine]],
            "analysis_10k_s": round(analysis_s, 4), "ranking_10k_s": round(ranking_s, 4),
            "seed_10k_s": round(seed_s, 4), "machine": machine(), "date": time.strftime("%Y-%m-%d"),
        }
        if engine == "postgresql":
            record["postgresql"] = {"server": "private, durable (fsync, synchronous_commit on)",
                                    "load": built["postgresql"], "plan": figures[engine]["plan"]}
        emit(record)
        f = figures[engine]
        say(f"{engine}: report over {f['stored_results']:,} stored results ({f['configurations']:,} configurations): "
            f"{medians[engine]:.2f} s for the whole command (limit 3 s); in this process: load {f['load_s']:.2f} s "
            f"(query + fetch {f['query_s']:.2f} s, decode {f['decode_s']:.2f} s), build {f['build_s']:.2f} s")
        if engine == "postgresql":
            for line in f["plan"]:
                say(f"    {line}")
    if len(medians) == 2:
        say(f"postgresql / sqlite, whole command: {medians['postgresql'] / medians['sqlite']:.2f}")
    say(f"in-memory analysis of {len(df):,} configurations: {analysis_s * 1e3:.0f} ms (ranking {ranking_s * 1e3:.0f} "
        f"ms + seed analyses {seed_s * 1e3:.0f} ms; limit 200 ms)")


if __name__ == "__main__":
    main()
