"""What writing every result to the outbox before publishing costs (run by hand: `make bench`).

Against a private Mosquitto, alternating blocks of two arms with the same real Result messages:
  direct  MqttLink.send() each message, then wait for every PUBACK (no disk: what a plain QoS 1 publisher does);
  outbox  Outbox.put() each message (SQLite, synchronous=FULL: on disk when it returns), the Courier publishes
          them with at most 64 in flight and marks each delivered on its PUBACK; timed until none is pending.
Also the latency of one put() (p50, p99). One JSON line per arm; a summary on stderr. Loopback only.
"""

from __future__ import annotations

import argparse
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
import uuid
from pathlib import Path

from _common import emit, machine, say

from dnnprof.agent.publish.link import MqttLink
from dnnprof.agent.service.outbox import Courier, Outbox
from dnnprof.host.broker import free_port
from dnnprof.shared import schema


def result() -> schema.Result:
    return schema.Result(
        id=uuid.uuid4().hex, board="bench", ts=time.time(), run_id="bench", network="resnet18",
        model_sha256="0" * 64, input_shape=[3, 224, 224], backend="onnxruntime", backend_version="x", device="cpu",
        precision="fp32", batch=1, warmup_s=0.5, warmup_iterations=2, window_s=2.0, iterations=100, images=100,
        latency_ms=schema.Latency(mean=9.0, stdev=0.5, p50=9.0, p90=9.5, p95=9.8, p99=10.0, min=8.5, max=11.0),
        throughput_ips=110.0, power_w=20.0, energy_j=40.0, energy_per_inference_j=schema.EnergyPerInference(gross=0.18),
        provenance=schema.Provenance(power_source="estimate", boundary="estimate", estimated=True, samples=40),
    )


def direct(address: str, n: int) -> float:
    link = MqttLink(address, "bench", session=1)
    try:
        messages = [result() for _ in range(n)]
        t0 = time.perf_counter()
        for m in messages:
            link.send(m)
        left = link.flush(60)
        elapsed = time.perf_counter() - t0
        assert not left
        return elapsed
    finally:
        link.close(5)


def outbox(address: str, n: int, path: Path, puts: list[float]) -> float:
    box = Outbox(path)
    courier = None
    link = MqttLink(address, "bench", session=1, on_ack=lambda m: courier.acknowledged(m))
    courier = Courier(box, link)
    courier.start()
    try:
        messages = [result() for _ in range(n)]
        t0 = time.perf_counter()
        for m in messages:
            t = time.perf_counter()
            box.put(m)
            puts.append(time.perf_counter() - t)
            courier.wake()
        while box.counts()[0] and time.perf_counter() - t0 < 120:
            time.sleep(0.002)
        elapsed = time.perf_counter() - t0
        assert box.counts()[0] == 0
        return elapsed
    finally:
        courier.stop()
        link.close(5)
        box.close()


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("-n", type=int, default=500, help="messages per block")
    parser.add_argument("--blocks", type=int, default=5, help="blocks per arm, alternating")
    args = parser.parse_args()
    binary = shutil.which("mosquitto") or "/usr/sbin/mosquitto"
    if not Path(binary).exists():
        sys.exit("bench/outbox.py needs mosquitto: apt-get install mosquitto")
    with tempfile.TemporaryDirectory() as tmp:
        port = free_port()
        conf = Path(tmp) / "m.conf"
        conf.write_text(f"listener {port} 127.0.0.1\nallow_anonymous true\npersistence false\nmax_queued_messages 0\n")
        proc = subprocess.Popen([binary, "-c", str(conf)], stderr=subprocess.DEVNULL)
        try:
            time.sleep(0.5)
            address = f"127.0.0.1:{port}"
            times: dict[str, list[float]] = {"direct": [], "outbox": []}
            puts: list[float] = []
            for block in range(args.blocks):
                times["direct"].append(direct(address, args.n))
                times["outbox"].append(outbox(address, args.n, Path(tmp) / f"outbox-{block}.sqlite", puts))
        finally:
            proc.terminate()
            proc.wait(10)
    rates = {arm: [args.n / t for t in ts] for arm, ts in times.items()}
    base = statistics.median(rates["direct"])
    for arm, r in rates.items():
        rate = statistics.median(r)
        record = {"bench": "outbox", "arm": arm, "messages_per_block": args.n, "blocks": args.blocks,
                  "median_msgs_per_s": round(rate, 1), "ratio_to_direct": round(rate / base, 3)}
        if arm == "outbox":
            record["put_p50_ms"] = round(statistics.median(puts) * 1e3, 3)
            record["put_p99_ms"] = round(sorted(puts)[int(len(puts) * 0.99)] * 1e3, 3)
        emit({**record, "machine": machine()})
    say(f"direct {base:.0f} msg/s; outbox {statistics.median(rates['outbox']):.0f} msg/s "
        f"(ratio {statistics.median(rates['outbox']) / base:.2f}); put p50 {statistics.median(puts) * 1e3:.2f} ms")


if __name__ == "__main__":
    main()
