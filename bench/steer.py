"""Remote-control round trips (run by hand: `make bench`): a real `dnnagent serve` on a private Mosquitto, and the
host's commands timed from publish to the agent's acknowledgement (``host.remote.Remote``, as `dnnhost sweep` and
`dnnhost boards` use it).

Measures, each repeated: sweep_status on an idle agent; sweep_start (queued while a run is measured); sweep_cancel
of a queued run; sweep_cancel of the running run, with the time from the cancel's acknowledgement to the run's
``cancelled`` event (the current point is finished first, so this is bounded by the point's length); and a whole
`boards` (retained presence + one status per online board). Prints one JSON line per figure; loopback only.
"""

from __future__ import annotations

import argparse
import statistics
import subprocess
import sys
import tempfile
import threading
import time
from pathlib import Path

import paho.mqtt.client as mqtt

from dnnprof.agent.models import zoo
from dnnprof.host.remote import Remote, new_command
from dnnprof.shared import schema

sys.path.insert(0, str(Path(__file__).resolve().parent))
from _common import emit, machine, mosquitto, say  # noqa: E402

BOARD = "bench-steer"
MODEL = "shufflenet_v2_x0_5"


def config(tmp: Path, address: str, models: Path, point_s: float) -> Path:
    host, port = address.split(":")
    path = tmp / "agent.toml"
    path.write_text(f"""[broker]
host = "{host}"
port = {port}
[agent]
board_id = "{BOARD}"
state_dir = "{tmp / 'state'}"
models_dir = "{models}"
[sweep]
batch_sizes = [1]
backend = "onnxruntime"
redo = true
[power]
source = "none"
telemetry_rate_hz = 0
[measurement]
warmup_s = 0.01
max_warmup_s = 0.05
duration_s = {point_s}
max_duration_s = {point_s}
min_iterations = 2
min_power_samples = 0
idle_s = 0
""")
    return path


class Events:
    """The board's run events, as a host sees them."""

    def __init__(self, address: str) -> None:
        host, port = address.split(":")
        self.seen: dict[tuple[str, str], float] = {}  # (run id, event) -> monotonic time first seen
        self.cond = threading.Condition()
        ready = threading.Event()
        client = mqtt.Client(mqtt.CallbackAPIVersion.VERSION2, client_id="bench-steer-events")
        client.on_connect = lambda c, u, f, rc, p: c.subscribe(f"dnnprof/v1/{BOARD}/run/+", qos=1)
        client.on_subscribe = lambda *a: ready.set()
        client.on_message = self._on_message
        client.connect(host, int(port))
        client.loop_start()
        self.client = client
        ready.wait(10)

    def _on_message(self, client, userdata, msg) -> None:
        event = schema.decode(msg.payload)
        with self.cond:
            self.seen.setdefault((event.run_id, event.event), time.monotonic())
            self.cond.notify_all()

    def wait(self, run_id: str, event: str, timeout: float = 120) -> float:
        with self.cond:
            if not self.cond.wait_for(lambda: (run_id, event) in self.seen, timeout):
                raise SystemExit(f"no {event} event for run {run_id} within {timeout} s")
            return self.seen[(run_id, event)]


def figures(name: str, times_s: list[float], **extra) -> None:
    ms = sorted(t * 1e3 for t in times_s)
    record = {"figure": name, "n": len(ms), "median_ms": round(statistics.median(ms), 2),
              "p90_ms": round(ms[int(0.9 * (len(ms) - 1))], 2), "max_ms": round(ms[-1], 2), **extra}
    emit(record)
    say(f"  {name:<34} median {record['median_ms']:7.2f} ms   p90 {record['p90_ms']:7.2f} ms   max "
        f"{record['max_ms']:7.2f} ms   (n={len(ms)})")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--n", type=int, default=30, help="repetitions of each command")
    parser.add_argument("--point", type=float, default=0.5, help="seconds each measured point lasts")
    parser.add_argument("--broker-nodelay", action="store_true",
                        help="set_tcp_nodelay true in Mosquitto's config (its default is false)")
    args = parser.parse_args()
    emit({"machine": machine(), "date": time.strftime("%Y-%m-%d"), "broker_nodelay": args.broker_nodelay})
    with tempfile.TemporaryDirectory() as tmp_name:
        tmp = Path(tmp_name)
        broker, address = mosquitto(tmp, "set_tcp_nodelay true\n" if args.broker_nodelay else "")
        models = tmp / "models"
        zoo.generate([MODEL], models)
        agent = subprocess.Popen([sys.executable, "-m", "dnnprof.agent", "serve", "--config",
                                  str(config(tmp, address, models, args.point))],
                                 stdout=subprocess.DEVNULL, stderr=open(tmp / "agent.log", "w"))
        events = Events(address)
        try:
            with Remote(address, timeout_s=30) as remote:
                deadline = time.monotonic() + 60
                while True:  # online, and the configured sweep (one point) done
                    answer = remote.ask(new_command(BOARD, "sweep_status"))
                    if answer and answer[0].sweep.running is None:
                        break
                    if time.monotonic() > deadline:
                        raise SystemExit("the agent did not come online and idle within 60 s")
                    time.sleep(0.2)
                say(f"round trips on {address} (Mosquitto, loopback), {args.n} each:")
                figures("sweep_status (idle agent)",
                        [remote.ask(new_command(BOARD, "sweep_status"))[1] for _ in range(args.n)])

                # A long run to hold the agent busy, then starts queued behind it and cancelled off the queue.
                def long() -> schema.Command:
                    return new_command(BOARD, "sweep_start", models=[f"{MODEL}.onnx"], batches=list(range(1, 31)))

                busy = remote.ask(long())[0].run_id
                events.wait(busy, "started")
                starts = [remote.ask(new_command(BOARD, "sweep_start", models=[f"{MODEL}.onnx"], batches=[1]))
                          for _ in range(args.n)]
                figures("sweep_start (queued, agent busy)", [rtt for _, rtt in starts])
                figures("sweep_status (agent busy)",
                        [remote.ask(new_command(BOARD, "sweep_status"))[1] for _ in range(args.n)])
                cancels = [remote.ask(new_command(BOARD, "sweep_cancel", run_id=ack.run_id)) for ack, _ in starts]
                figures("sweep_cancel (a queued run)", [rtt for _, rtt in cancels])

                # Cancelling the running run: the acknowledgement, then the cancelled event after the point.
                acked, stopped = [], []
                for i in range(min(args.n, 5)):
                    run_id = busy if i == 0 else remote.ask(long())[0].run_id
                    events.wait(run_id, "progress" if i == 0 else "started")
                    ack, rtt = remote.ask(new_command(BOARD, "sweep_cancel"))
                    if not (ack.accepted and ack.run_id == run_id):
                        raise SystemExit(f"cancel of {run_id} refused: {ack.reason}; events seen: "
                                         f"{sorted(e for r, e in events.seen if r == run_id)}")
                    acked.append(rtt)
                    sent = time.monotonic() - rtt
                    stopped.append(events.wait(run_id, "cancelled") - sent)
                figures("sweep_cancel (the running run)", acked)
                figures("cancel sent -> cancelled event", stopped, point_s=args.point)
            boards = []
            for _ in range(min(args.n, 10)):
                t0 = time.perf_counter()
                with Remote(address, timeout_s=5) as remote:
                    seen = remote.boards()
                    remote.ask_all([new_command(b, "sweep_status") for b in seen])
                boards.append(time.perf_counter() - t0)
            figures("boards (connect, presence, status)", boards)
        except SystemExit:
            say((tmp / "agent.log").read_text()[-6000:])
            raise
        finally:
            events.client.loop_stop()
            agent.terminate()
            agent.wait(60)
            broker.terminate()
            broker.wait(10)


if __name__ == "__main__":
    main()
