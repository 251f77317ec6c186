"""Generating and inspecting the whole model zoo: seconds per network (run by hand: `make bench`).

For each architecture: the time to build and write it (`zoo.generate`), the time to inspect the written file
(`shared.opcount.inspect`: parameters and MACs from the graph and shape inference, without turning weights into
arrays), the file size, and the peak of Python allocations during the inspection (tracemalloc) against the file
size. One JSON line per network on stdout; a table on stderr.
"""

from __future__ import annotations

import argparse
import tempfile
import time
import tracemalloc
from pathlib import Path

from _common import emit, machine, say

from dnnprof.shared import opcount as inspection
from dnnprof.agent.models import zoo


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("names", nargs="*", help="networks (default: all)")
    args = parser.parse_args()
    names = args.names or zoo.names()
    emit({"machine": machine()})
    rows = []
    with tempfile.TemporaryDirectory() as tmp:
        for name in names:
            t0 = time.perf_counter()
            (path,) = zoo.generate([name], Path(tmp))
            generate_s = time.perf_counter() - t0
            tracemalloc.start()
            t0 = time.perf_counter()
            found = inspection.inspect(path)
            inspect_s = time.perf_counter() - t0
            _, peak = tracemalloc.get_traced_memory()
            tracemalloc.stop()
            row = {"network": name, "generate_s": round(generate_s, 3), "inspect_s": round(inspect_s, 3),
                   "file_mb": round(path.stat().st_size / 1e6, 1), "python_peak_mb": round(peak / 1e6, 1),
                   "params": found.params, "gmacs": round(found.macs / 1e9, 4)}
            rows.append(row)
            emit(row)
            path.unlink()
    say(f"\n{'network':<20} {'generate s':>10} {'inspect s':>10} {'file MB':>8} {'py peak MB':>10} "
        f"{'params':>12} {'GMACs':>8}")
    for r in rows:
        say(f"{r['network']:<20} {r['generate_s']:>10.3f} {r['inspect_s']:>10.3f} {r['file_mb']:>8.1f} "
            f"{r['python_peak_mb']:>10.1f} {r['params']:>12,} {r['gmacs']:>8.3f}")
    generate_s, inspect_s = sum(r["generate_s"] for r in rows), sum(r["inspect_s"] for r in rows)
    say(f"total: generate {generate_s:.1f} s, inspect {inspect_s:.1f} s")


if __name__ == "__main__":
    main()
