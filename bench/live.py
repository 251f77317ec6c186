"""Can `dnnhost live` keep up with a fleet? (run by hand: `make bench`, or `python bench/live.py`).

Starts a private Mosquitto on a free loopback port, a load generator publishing as --boards simulated boards
(retained status and info, a sweep's run events, results, and telemetry at --rate Hz each, real schema messages),
and `dnnhost live --broker ... --duration` in a pseudo-terminal of --cols x --rows cells, as a user would see it.
Measured from the dashboard's own process: CPU time (user + system, from wait4) over wall time, frames drawn per
second (its exit summary), messages it received against messages published.

`python bench/live.py --serve 20` only runs the broker and the simulated fleet for 20 s (print the broker address)
— handy for trying the dashboard by hand: `dnnhost live --broker 127.0.0.1:PORT`.

Prints one JSON line on stdout and a summary on stderr.
"""

from __future__ import annotations

import argparse
import fcntl
import os
import pty
import random
import re
import signal
import struct
import subprocess
import sys
import tempfile
import termios
import threading
import time
from pathlib import Path

import paho.mqtt.client as mqtt

from dnnprof.shared import schema, topics

sys.path.insert(0, str(Path(__file__).resolve().parent))
from _common import emit, mosquitto, say  # noqa: E402

NETWORKS = ["resnet18", "resnet50", "mobilenet_v2", "vgg16", "googlenet", "efficientnet_b0"]
MODES = ["MAXN", "15W", "30W"]


class SimulatedFleet:
    """Publishes as ``boards`` boards from one paho client: presence, info, a running sweep, telemetry."""

    def __init__(self, address: str, boards: int, rate_hz: float, samples: int) -> None:
        host, port = topics.parse_broker(address)
        self.names = [f"jetson-{i:03d}" for i in range(boards)]
        self.rate_hz, self.samples = rate_hz, samples
        self.client = mqtt.Client(mqtt.CallbackAPIVersion.VERSION2, client_id="bench-fleet")
        self.client.max_queued_messages_set(0)
        self.client.connect(host, port)
        self.client.loop_start()
        self.published = 0
        self.late_s = 0.0  # total time the generator fell behind its schedule
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._loop, daemon=True)

    def _send(self, message: schema.Message, qos: int = 0, retain: bool = False) -> None:
        kind = schema.KIND_OF[type(message)]
        topic = topics.topic(message.board, kind, getattr(message, "run_id", None) if kind == topics.RUN else None)
        self.client.publish(topic, schema.encode(message), qos=qos, retain=retain)
        self.published += 1

    def birth(self) -> None:
        now = time.time()
        for i, name in enumerate(self.names):
            self._send(schema.Status(board=name, ts=now, state="online", session=1), qos=1, retain=True)
            self._send(schema.BoardInfo(board=name, ts=now, hostname=name, os="Linux", arch="aarch64",
                                        cpu_model=["Orin Nano", "AGX Orin", "Xavier NX"][i % 3], cpu_count=6,
                                        python="3.10.12", agent_version="0.1.0", power_source="ina3221",
                                        power_boundary="input_rail"), qos=1, retain=True)

    def _telemetry(self, name: str, seq: int, now: float, i: int) -> schema.Telemetry:
        base = 8.0 + (i % 7) + 2.0 * random.random()
        dt = 1.0 / (self.rate_hz * self.samples)
        return schema.Telemetry(
            board=name, ts=now, seq=seq, t0=now - dt * (self.samples - 1), dt_s=dt,
            power_w=[base + 0.5 * random.random() for _ in range(self.samples)], power_source="ina3221",
            boundary="input_rail", rails_w={"VDD_IN": base, "VDD_CPU_GPU_CV": base * 0.6, "VDD_SOC": base * 0.2},
            temperatures_c={"cpu": 45.0 + i % 20, "gpu": 44.0 + i % 20}, throttle_events=0,
            clocks="jetson_clocks on" if i % 5 else "jetson_clocks off", power_mode=MODES[i % 3])

    def _result(self, name: str, now: float, network: str, batch: int, seq: int, i: int) -> schema.Result:
        ms = 2.0 + batch * (1 + i % 4)
        lat = schema.Latency(mean=ms, stdev=0.05 * ms, p50=ms, p90=1.05 * ms, p95=1.08 * ms, p99=1.1 * ms,
                             min=0.95 * ms, max=1.2 * ms)
        power = 9.0 + i % 7
        return schema.Result(
            id=f"{name}-{seq}", board=name, ts=now, run_id="bench-run", network=network, model_sha256="0" * 64,
            input_shape=[3, 224, 224], backend="tensorrt", backend_version="10.3.0", device="gpu", precision="fp16",
            batch=batch, warmup_s=1.0, warmup_iterations=50, window_s=2.0, iterations=100, images=100 * batch,
            latency_ms=lat, latency_cov=0.05, unstable=i % 11 == 0, throughput_ips=1e3 * batch / ms,
            power_w=power, energy_j=power * 2.0,
            energy_per_inference_j=schema.EnergyPerInference(gross=power * ms / batch / 1e3),
            conditions=schema.Conditions(power_mode=MODES[i % 3]),
            provenance=schema.Provenance(power_source="ina3221", boundary="input_rail", estimated=False,
                                         sample_rate_hz=100.0, samples=200, power_mode=MODES[i % 3]))

    def _loop(self) -> None:
        period = 1.0 / self.rate_hz
        seq, tick = 0, time.monotonic()
        while not self._stop.is_set():
            now = time.time()
            for i, name in enumerate(self.names):
                self._send(self._telemetry(name, seq, now, i))
                if seq % 20 == 0:  # every 2 s at 10 Hz: a sweep moves on by one point, with its result
                    done = (seq // 20 + i) % 36
                    self._send(self._result(name, now, NETWORKS[done % 6], 2 ** (done % 6), seq, i), qos=1)
                    self._send(schema.RunEvent(board=name, ts=now, run_id="bench-run", seq=seq, event="progress",
                                               points_total=36, points_done=done, network=NETWORKS[done % 6],
                                               batch=2 ** (done % 6), precision="fp16", eta_s=(36 - done) * 20.0),
                               qos=1)
            seq += 1
            tick += period
            delay = tick - time.monotonic()
            if delay > 0:
                self._stop.wait(delay)
            else:
                self.late_s += -delay

    def start(self) -> SimulatedFleet:
        self.birth()
        self._thread.start()
        return self

    def stop(self) -> None:
        self._stop.set()
        self._thread.join(5)
        self.client.disconnect()
        self.client.loop_stop()


def cpu_ticks(pid: int) -> int:
    fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    return int(fields[11]) + int(fields[12])  # utime, stime (fields 14 and 15 of the whole line)


def run_dashboard(address: str, seconds: float, cols: int, rows: int, db: Path, refresh: float = 4.0) -> dict:
    """`dnnhost live` in a pseudo-terminal; returns its CPU use, frame rate and counts."""
    master, slave = pty.openpty()
    fcntl.ioctl(slave, termios.TIOCSWINSZ, struct.pack("HHHH", rows, cols, 0, 0))
    env = {**os.environ, "TERM": "xterm-256color", "COLUMNS": str(cols), "LINES": str(rows)}
    started = time.monotonic()
    command = [sys.executable, "-m", "dnnprof.host", "live", "--broker", address, "--duration", f"{seconds}s",
               "--db", str(db), "--refresh", str(refresh)]
    proc = subprocess.Popen(command, stdin=slave, stdout=slave, stderr=subprocess.PIPE, env=env, text=True)
    os.close(slave)
    screen = bytearray()

    def drain() -> None:
        while True:
            try:
                chunk = os.read(master, 65536)
            except OSError:
                return
            if not chunk:
                return
            screen.extend(chunk[-200000:])
            del screen[:-400000]

    reader = threading.Thread(target=drain, daemon=True)
    reader.start()
    # Steady state: CPU time between 4 s after start (imports, connection, retained state done) and 1 s before the
    # end of --duration, read from /proc/<pid>/stat (utime + stime, clock ticks).
    time.sleep(4.0)
    t0, c0 = time.monotonic(), cpu_ticks(proc.pid)
    time.sleep(max(1.0, seconds - 4.0))
    t1, c1 = time.monotonic(), cpu_ticks(proc.pid)
    _, status, usage = os.wait4(proc.pid, 0)
    wall = time.monotonic() - started
    proc.returncode = os.waitstatus_to_exitcode(status)
    summary = proc.stderr.read()
    os.close(master)
    reader.join(2)
    found = re.search(r"(\d+) frames \(([\d.]+) Hz\) in (\d+) s; (\d+) messages \((\d+) telemetry", summary)
    if proc.returncode != 0 or not found:
        raise SystemExit(f"dnnhost live failed ({proc.returncode}): {summary.strip()[-500:]}")
    cpu = usage.ru_utime + usage.ru_stime
    steady = (c1 - c0) / os.sysconf("SC_CLK_TCK") / (t1 - t0)
    return {"exit_code": proc.returncode, "wall_s": round(wall, 2), "cpu_s": round(cpu, 2),
            "steady_cpu_fraction": round(steady, 3), "steady_window_s": round(t1 - t0, 1),
            "frames": int(found[1]), "refresh_hz": float(found[2]), "received": int(found[4]),
            "telemetry_received": int(found[5]), "screen_bytes": len(screen)}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--boards", type=int, default=100)
    parser.add_argument("--rate", type=float, default=10.0, help="telemetry messages per second per board")
    parser.add_argument("--samples", type=int, default=10, help="power samples in each telemetry message")
    parser.add_argument("--seconds", type=float, default=30.0, help="how long the dashboard runs")
    parser.add_argument("--cols", type=int, default=160)
    parser.add_argument("--rows", type=int, default=50)
    parser.add_argument("--refresh", type=float, default=4.0, help="the dashboard's redraws per second")
    parser.add_argument("--serve", type=float, default=None, help="only run broker + fleet this long")
    args = parser.parse_args()
    # A SIGTERM (a killed session, a timeout) must still stop the private broker: let it unwind through finally.
    signal.signal(signal.SIGTERM, lambda *a: sys.exit(143))
    with tempfile.TemporaryDirectory(prefix="dnnprof-bench-live-") as tmp:
        broker, address = mosquitto(Path(tmp))
        try:
            fleet = SimulatedFleet(address, args.boards, args.rate, args.samples).start()
            if args.serve:
                say(f"broker {address}: {args.boards} boards at {args.rate:g} Hz for {args.serve:g} s")
                time.sleep(args.serve)
                fleet.stop()
                return
            time.sleep(1.0)  # the dashboard starts into a fleet already publishing
            sent_before = fleet.published
            result = run_dashboard(address, args.seconds, args.cols, args.rows, Path(tmp) / "live.sqlite",
                                   args.refresh)
            sent = fleet.published - sent_before
            fleet.stop()
        finally:
            broker.terminate()
            broker.wait(10)
    steady = result["steady_cpu_fraction"]
    whole = result["cpu_s"] / result["wall_s"]
    record = {"bench": "live", "boards": args.boards, "rate_hz_per_board": args.rate, "samples": args.samples,
              "terminal": f"{args.cols}x{args.rows}", "published_during": sent, **result,
              "whole_run_cpu_fraction": round(whole, 3), "generator_late_s": round(fleet.late_s, 2),
              "cpus": os.cpu_count(), "date": time.strftime("%Y-%m-%d")}
    emit(record)
    say(f"dnnhost live with {args.boards} boards x {args.rate:g} Hz telemetry: {result['refresh_hz']:.1f} frames/s "
        f"(need >= 4), {100 * steady:.1f}% of one core in steady state (need < 25%; {100 * whole:.1f}% including "
        f"start-up); received {result['received']} messages while {sent} were published")


if __name__ == "__main__":
    main()
