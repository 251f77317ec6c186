"""Results/s end to end with one and two collectors, on SQLite and on PostgreSQL (run by hand: `python
bench/fleet.py`; issue 20).

publisher → private Mosquitto → collector(s) → store. One paho client publishes N real ``Result`` messages at QoS 1
(the shape of bench/ingest.py's, numbered in their board's outbox stream with ``--numbered``), timed from the
first publish until the collectors have committed all of them (the ``on_stored`` callback of the last one). Four
cells, all in one run and interleaved over ``--rounds`` rounds (the order rotates each round):

* 1 or 2 collectors, each a ``Collector(..., client_id=..., persistent=True, group="bench")``: one MQTT 5 shared
  subscription (``$share/bench/...``), each message handed to one member. One collector is a group of one, so the
  two rows differ only by the second member. By default the members are Collector objects in this process, beside
  the publisher (one interpreter lock for all of them); ``--processes`` forks a process for each, as separate
  ``dnnhost collect`` processes would run.
* SQLite (a file, WAL, the store's ``synchronous=NORMAL``: a commit is not fsynced) or PostgreSQL (a private server,
  ``PrivatePostgres(durable=True)``: PostgreSQL's defaults, fsync and synchronous_commit on, so every commit waits
  for its WAL fsync). Two collectors write the same file / the same database.

Every cell gets a new store (file or database) and a new Mosquitto (a persistent group member's session outlives
its connection, and the broker would go on handing it a share). Mosquitto: its own loopback port,
``persistence false``, ``max_queued_messages 0`` (no limit), ``max_inflight_messages`` left at its default (20)
unless ``--max-inflight`` is given, ``set_tcp_nodelay true`` as in docs/examples/mosquitto/dnnprof.conf unless
``--broker-delay``. Each cell checks that every published result was stored exactly once (the stored ids are the
published ones, ``store.count()`` == N, no collector counted a duplicate) and records how the messages split between
the members, the batches retried after crossing the other member's transaction, and the CPU used by this process,
Mosquitto, PostgreSQL and everything else (another session's tests, say) over the cell.

Prints one JSON line per cell on stdout (medians over the rounds and every round's figures) and a summary on stderr,
with each cell's median and ratios against "1 collector, SQLite".
"""

from __future__ import annotations

import argparse
import multiprocessing
import os
import shutil
import socket
import statistics
import subprocess
import sys
import tempfile
import threading
import time
import uuid
from pathlib import Path

import msgspec
import paho.mqtt.client as mqtt

from dnnprof.host.broker import free_port
from dnnprof.host.collector import Collector
from dnnprof.host.store import Store
from dnnprof.shared import schema, topics

sys.path.insert(0, str(Path(__file__).resolve().parent))
from _common import emit, machine, say  # noqa: E402
from ingest import result  # noqa: E402

GROUP = "bench"
BASELINE = ("sqlite", 1)


def messages(n: int, boards: int, numbered: bool) -> list[tuple[str, bytes, str]]:
    """(topic, payload, id) of ``n`` results from ``boards`` boards in turn; ``numbered``: each carries its number in
    its board's outbox stream (1, 2, 3, ... per board), as an agent's do."""
    stream_id = int(time.time() * 1000)
    out = []
    for i in range(n):
        board = "bench" if boards == 1 else f"bench-{i % boards:03d}"
        r = msgspec.structs.replace(result(i), board=board, run_id="bench",
                                    stream=schema.Stream(id=stream_id, seq=i // boards + 1) if numbered else None)
        out.append((topics.topic(board, topics.RESULT), schema.encode(r), r.id))
    return out


class Broker:
    """A private Mosquitto on a free loopback port."""

    def __init__(self, tmp: Path, max_inflight: int | None, nodelay: bool) -> None:
        binary = shutil.which("mosquitto") or "/usr/sbin/mosquitto"
        port = free_port()
        conf = tmp / f"mosquitto-{port}.conf"
        conf.write_text(f"listener {port} 127.0.0.1\nallow_anonymous true\npersistence false\nmax_queued_messages 0\n"
                        + (f"max_inflight_messages {max_inflight}\n" if max_inflight is not None else "")
                        + ("set_tcp_nodelay true\n" if nodelay else ""))
        self.proc = subprocess.Popen([binary, "-c", str(conf)], stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
        self.address = f"127.0.0.1:{port}"
        deadline = time.monotonic() + 10
        while True:
            try:
                socket.create_connection(("127.0.0.1", port), 0.2).close()
                return
            except OSError:
                if time.monotonic() > deadline or self.proc.poll() is not None:
                    self.stop()
                    raise SystemExit("mosquitto did not start") from None
                time.sleep(0.05)

    def stop(self) -> None:
        if self.proc.poll() is None:
            self.proc.terminate()
            self.proc.wait(10)


# --- CPU accounting: this process, Mosquitto, PostgreSQL (the postmaster and its backends), everything else ---------

def _ticks(pid: int, children: bool = False) -> int:
    try:
        fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    except OSError:
        return 0
    # utime, stime (fields 14, 15), cutime, cstime (16, 17): fields[11..14] after the name
    return sum(int(v) for v in fields[11:15 if children else 13])


def _tree_ticks(root: int) -> int:
    """CPU ticks of ``root`` (its reaped children included) and its live children: a postmaster and its backends."""
    total = _ticks(root, children=True)
    for entry in os.listdir("/proc"):
        if entry.isdigit():
            try:
                ppid = int(Path(f"/proc/{entry}/stat").read_text().rsplit(")", 1)[1].split()[1])
            except (OSError, ValueError, IndexError):
                continue
            if ppid == root:
                total += _ticks(int(entry))
    return total


def _busy_ticks() -> int:
    fields = [int(v) for v in Path("/proc/stat").read_text().splitlines()[0].split()[1:9]]
    return sum(fields) - fields[3] - fields[4]


class Meter:
    """CPU cores used over a stretch by this process (and its collector processes), Mosquitto, PostgreSQL, and
    everything else on the machine."""

    def __init__(self, broker_pid: int, pg_pid: int | None, member_pids: list[int]) -> None:
        self.pids = broker_pid, pg_pid, member_pids
        self.start = self._read()

    def _read(self) -> tuple:
        broker_pid, pg_pid, member_pids = self.pids
        own = _ticks(os.getpid()) + sum(_ticks(pid) for pid in member_pids)
        return (time.monotonic(), _busy_ticks(), own, _ticks(broker_pid), _tree_ticks(pg_pid) if pg_pid else 0)

    def read(self) -> dict:
        end = self._read()
        wall = end[0] - self.start[0]
        hz = os.sysconf("SC_CLK_TCK")
        busy, own, broker, pg = ((e - s) / hz / wall for s, e in zip(self.start[1:], end[1:]))
        return {"this_process": round(own, 2), "mosquitto": round(broker, 2), "postgresql": round(pg, 2),
                "other": round(max(0.0, busy - own - broker - pg), 2)}


# --- the collectors: Collector objects in this process, or each in a process of its own (--processes) ------------

class Members:
    """``count`` group members storing into ``db``; ``done`` is set, and ``t_done`` (perf_counter) recorded, when
    the ``n``-th result has been stored (counted by the ``on_stored`` callback after each commit)."""

    def __init__(self, address: str, db: str | Path, count: int, n: int) -> None:
        self.lock = threading.Lock()
        self.stored, self.n, self.t_done = 0, n, None
        self.done = threading.Event()
        self.members = [Collector(address, db, client_id=f"fleet-{uuid.uuid4().hex[:6]}-{k}", persistent=True,
                                  group=GROUP, on_stored=self._on_stored) for k in range(count)]
        self.pids: list[int] = []

    def _on_stored(self, message) -> None:
        with self.lock:
            self.stored += 1
            if self.stored == self.n:
                self.t_done = time.perf_counter()
                self.done.set()

    def start(self) -> None:
        for member in self.members:
            member.start()

    def stop(self) -> list[dict]:
        for member in self.members:
            member.stop()
        return [dict(m.counts) for m in self.members]


def _member_main(address, db, n, stored, t_done, done, ready, stop, out) -> None:
    """A collector in a process of its own: counts into the shared ``stored``, reports its counts on ``out``."""

    def on_stored(message) -> None:
        with stored.get_lock():
            stored.value += 1
            if stored.value == n:
                t_done.value = time.perf_counter()  # CLOCK_MONOTONIC: the same clock in every process
                done.set()

    collector = Collector(address, db, client_id=f"fleet-{uuid.uuid4().hex[:6]}-{os.getpid()}", persistent=True,
                          group=GROUP, on_stored=on_stored)
    collector.start()
    ready.set()
    stop.wait()
    collector.stop()
    out.send(dict(collector.counts))


class MemberProcesses:
    """The same, each member a forked process (no shared interpreter lock between them or with the publisher)."""

    def __init__(self, address: str, db: str | Path, count: int, n: int) -> None:
        ctx = multiprocessing.get_context("fork")
        self.stored, self.t_value = ctx.Value("l", 0), ctx.Value("d", 0.0)
        self.done, self.stop_event = ctx.Event(), ctx.Event()
        self.readies = [ctx.Event() for _ in range(count)]
        self.pipes = [ctx.Pipe(duplex=False) for _ in range(count)]
        self.procs = [ctx.Process(target=_member_main, args=(address, db, n, self.stored, self.t_value, self.done,
                                                              ready, self.stop_event, pipe[1]), daemon=True)
                      for ready, pipe in zip(self.readies, self.pipes)]
        self.pids: list[int] = []

    @property
    def t_done(self) -> float | None:
        return self.t_value.value or None

    def start(self) -> None:
        for proc in self.procs:
            proc.start()
        self.pids = [proc.pid for proc in self.procs]
        for ready in self.readies:
            if not ready.wait(30):
                raise SystemExit("a collector process did not start")

    def stop(self) -> list[dict]:
        self.stop_event.set()
        counts = [receive.recv() if receive.poll(30) else {} for receive, _ in self.pipes]
        for proc in self.procs:
            proc.join(10)
        return counts


# --- one cell ---------------------------------------------------------------------------------------------------

def run_cell(engine: str, collectors: int, payloads: list, db: str | Path, tmp: Path, args, pg) -> dict:
    n = len(payloads)
    broker = Broker(tmp, args.max_inflight, not args.broker_delay)
    try:
        with Store(db):  # the schema, made once before the members open the store together
            pass
        members = (MemberProcesses if args.processes else Members)(broker.address, db, collectors, n)
        members.start()
        host, port = topics.parse_broker(broker.address)
        pub = mqtt.Client(mqtt.CallbackAPIVersion.VERSION2, client_id=f"fleet-pub-{uuid.uuid4().hex[:6]}")
        pub.connect(host, port)
        pub.loop_start()
        meter = Meter(broker.proc.pid, pg.proc.pid if engine == "postgresql" else None, members.pids)
        t0 = time.perf_counter()
        infos = [pub.publish(topic, payload, qos=1) for topic, payload, _ in payloads]
        for info in infos:
            info.wait_for_publish(120)
        t_acked = time.perf_counter() - t0
        complete = members.done.wait(args.timeout)
        t_stored = (members.t_done or time.perf_counter()) - t0
        cpu = meter.read()
        pub.loop_stop()
        pub.disconnect()
        counts = members.stop()
        with Store(db) as store:
            count = store.count()
            ids = [row[0] for row in store.db.execute("SELECT id FROM results")]
    finally:
        broker.stop()
    exact = (count == n and len(ids) == len(set(ids)) and set(ids) == {i for _, _, i in payloads}
             and all(c.get("duplicate", 0) == 0 for c in counts))
    return {"complete": complete, "stored": count, "exactly_once": exact, "acked_s": round(t_acked, 3),
            "stored_s": round(t_stored, 3), "results_per_s": round(n / t_stored, 1),
            "split": [c.get("stored", 0) for c in counts],
            "duplicates": sum(c.get("duplicate", 0) for c in counts),
            "retried_batches": sum(c.get("retried_batches", 0) for c in counts),
            "store_errors": sum(c.get("store_errors", 0) for c in counts),
            "cpu_cores": cpu}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--messages", "-n", type=int, default=20_000)
    parser.add_argument("--rounds", type=int, default=3)
    parser.add_argument("--quick", action="store_true", help="a smoke run: 1,000 messages, one round")
    parser.add_argument("--boards", type=int, default=1, help="boards the results come from, in turn")
    parser.add_argument("--numbered", action="store_true",
                        help="number each result in its board's outbox stream, as an agent does")
    parser.add_argument("--collectors", default="1,2")
    parser.add_argument("--engines", default="sqlite,postgresql")
    parser.add_argument("--max-inflight", type=int, default=None,
                        help="Mosquitto's max_inflight_messages (default: left out, Mosquitto's own 20)")
    parser.add_argument("--broker-delay", action="store_true", help="leave set_tcp_nodelay out (Mosquitto's default)")
    parser.add_argument("--processes", action="store_true",
                        help="run each collector in a process of its own (default: Collector objects in this one)")
    parser.add_argument("--timeout", type=float, default=600.0, help="seconds a cell may take to store everything")
    args = parser.parse_args()
    if args.quick:
        args.messages, args.rounds = 1000, 1
    engines = args.engines.split(",")
    sizes = [int(c) for c in args.collectors.split(",")]
    cells = [(e, c) for e in engines for c in sizes]
    payloads = messages(args.messages, args.boards, args.numbered)
    say(f"fleet: {args.messages:,} results ({len(payloads[0][1]):,} bytes each) from {args.boards} board(s)"
        f"{', numbered' if args.numbered else ''}; cells {cells}; {args.rounds} round(s)")
    pg = None
    with tempfile.TemporaryDirectory(prefix="dnnprof-fleet-") as tmp_name:
        tmp = Path(tmp_name)
        try:
            if "postgresql" in engines:
                sys.path.insert(0, str(Path(__file__).resolve().parent))
                from _postgres import PrivatePostgres

                pg = PrivatePostgres(durable=True).start()
            rows: dict[tuple, list[dict]] = {cell: [] for cell in cells}
            for r in range(args.rounds):
                order = cells[r % len(cells):] + cells[:r % len(cells)]
                for engine, collectors in order:
                    db = pg.database() if engine == "postgresql" else tmp / f"r{r}-{collectors}.sqlite"
                    got = run_cell(engine, collectors, payloads, db, tmp, args, pg)
                    rows[(engine, collectors)].append(got)
                    say(f"  round {r + 1}: {engine:10s} {collectors} collector(s): {got['results_per_s']:8,.0f} "
                        f"results/s, split {got['split']}, stored {got['stored']:,}, exactly once "
                        f"{got['exactly_once']}, retried {got['retried_batches']}, cpu {got['cpu_cores']}")
        finally:
            if pg is not None:
                pg.stop()

    medians = {cell: statistics.median(g["results_per_s"] for g in got) for cell, got in rows.items()}
    base = medians.get(BASELINE)
    facts = {"machine": machine(), "date": time.strftime("%Y-%m-%d"), "messages": args.messages,
             "boards": args.boards, "numbered": args.numbered, "rounds": args.rounds,
             "max_inflight_messages": args.max_inflight if args.max_inflight is not None else "default (20)",
             "set_tcp_nodelay": not args.broker_delay,
             "collectors_in": "a process each" if args.processes else "the publisher's process",
             "postgresql": "private, durable (fsync, synchronous_commit on)" if pg else None}
    for (engine, collectors), got in rows.items():
        per_round = [g["results_per_s"] / rows[BASELINE][i]["results_per_s"] for i, g in enumerate(got)] \
            if BASELINE in rows else []
        emit({"bench": "fleet", "engine": engine, "collectors": collectors,
              "results_per_s": round(medians[(engine, collectors)], 1),
              "ratio_vs_1_sqlite": round(medians[(engine, collectors)] / base, 3) if base else None,
              "ratio_vs_1_sqlite_per_round": [round(x, 3) for x in per_round],
              "all_exactly_once": all(g["exactly_once"] and g["complete"] for g in got),
              "per_round": got, **facts})
    say(f"\n{'store':10s} {'collectors':>10s} {'results/s (median)':>19s} {'ratio':>6s}  split (last round)  "
        "exactly once")
    for (engine, collectors), got in rows.items():
        ratio = f"{medians[(engine, collectors)] / base:6.2f}" if base else "     -"
        say(f"{engine:10s} {collectors:10d} {medians[(engine, collectors)]:19,.0f} {ratio}  "
            f"{str(got[-1]['split']):18s}  {all(g['exactly_once'] and g['complete'] for g in got)}")


if __name__ == "__main__":
    main()
