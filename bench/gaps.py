"""How long a collector's gap check takes as a board's stream grows (run by hand: `python bench/gaps.py`).

A collector asks ``Store.gaps(board)`` after every batch that touched the board. One board's stream holds
``--numbers`` numbers received (three recent holes among them, a tail up to the high mark), in a SQLite file and in a
database of a private PostgreSQL (durable, as bench/fleet.py's). Timed: ``gaps(board)``, median of ``--repeat`` calls,
today's Store and, with ``--before REV``, the Store of that revision (loaded from git beside today's, on the same
store), so the two are compared in one run; the first call (not timed) is where today's Store raises the stream's
settled mark. Prints one JSON line per engine and size on stdout.
"""

from __future__ import annotations

import argparse
import importlib.util
import inspect
import json
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

from dnnprof.host.store import Store
from dnnprof.shared import schema

HERE = Path(__file__).resolve().parent
sys.path.insert(0, str(HERE))
from _common import machine, say  # noqa: E402
from _postgres import PrivatePostgres  # noqa: E402

STREAM = 1_712_345_678_901


def store_at(rev: str) -> type:
    """The Store class of ``host/store.py`` at git revision ``rev``, inside today's package (its ``sql``)."""
    source = subprocess.run(["git", "show", f"{rev}:host/store.py"], cwd=HERE.parent, check=True,
                            capture_output=True, text=True).stdout
    path = Path(tempfile.mkdtemp()) / "store_before.py"
    path.write_text(source)
    spec = importlib.util.spec_from_file_location("dnnprof.host._store_before", path)
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module.Store


def fill(db, numbers: int) -> None:
    # Three recent holes, as a collector sees mid-stream (older ones were filled by replay or declared lost).
    holes = {numbers - 100, numbers - 50, numbers - 10}
    with Store(db) as store, store.transaction():
        store.db.executemany("INSERT INTO stream_numbers VALUES (?, ?, ?, ?)",
                             [("board-a", STREAM, seq, 0.0) for seq in range(1, numbers + 1) if seq not in holes])
        store.mark("board-a", schema.Stream(id=STREAM, seq=numbers + 5))


def timed(cls: type, db, repeat: int) -> tuple[float, int]:
    with cls(db) as store:
        # Warm (caches, plans), and the collector's own call: the one that raises the settled mark, where it exists.
        settles = "settle" in inspect.signature(cls.gaps).parameters
        store.gaps("board-a", **({"settle": True} if settles else {}))
        times, found = [], 0
        for _ in range(repeat):
            t0 = time.perf_counter()
            found = len(store.gaps("board-a"))
            times.append(time.perf_counter() - t0)
    return statistics.median(times), found


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--numbers", type=int, nargs="+", default=[1_000, 100_000])
    parser.add_argument("--repeat", type=int, default=20)
    parser.add_argument("--before", metavar="REV", help="also time the Store of this git revision")
    args = parser.parse_args()
    before = store_at(args.before) if args.before else None
    say(f"gap check on {machine()}")
    with PrivatePostgres(durable=True) as pg, tempfile.TemporaryDirectory() as tmp:
        for numbers in args.numbers:
            for engine, db in (("sqlite", Path(tmp) / f"s{numbers}.sqlite"), ("postgresql", pg.database())):
                fill(db, numbers)
                now_s, found = timed(Store, db, args.repeat)
                line = {"engine": engine, "numbers": numbers, "gaps": found, "gaps_ms": round(now_s * 1e3, 3)}
                if before is not None:
                    then_s, then_found = timed(before, db, args.repeat)
                    assert then_found == found, (then_found, found)
                    line.update(before=args.before, before_ms=round(then_s * 1e3, 3),
                                ratio_now_to_before=round(now_s / then_s, 3))
                print(json.dumps(line), flush=True)
                say(f"{engine:10} {numbers:>8} numbers: gaps() {line['gaps_ms']} ms"
                    + (f" (before: {line['before_ms']} ms, {line['ratio_now_to_before']}x)" if before else ""))


if __name__ == "__main__":
    main()
