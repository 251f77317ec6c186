"""How fast results flow publisher → broker → collector → SQLite (run by hand: `make bench`).

Publishes N real Result messages at QoS1 from one paho client and times until the collector has stored all of
them, against the embedded broker and against a private Mosquitto (if installed). Prints one JSON line per
broker. Loopback only; bounded in count and time.
"""

from __future__ import annotations

import argparse
import json
import shutil
import subprocess
import sys
import tempfile
import time
import uuid
from pathlib import Path

import paho.mqtt.client as mqtt

from dnnprof.host.broker import EmbeddedBroker, free_port
from dnnprof.host.collector import Collector
from dnnprof.host.store import Store
from dnnprof.shared import schema, topics


def result(i: int) -> schema.Result:
    return schema.Result(
        id=uuid.uuid4().hex, board="bench", ts=time.time(), run_id="bench", network="resnet18", model_sha256="0" * 64,
        input_shape=[3, 224, 224], backend="onnxruntime", backend_version="x", device="cpu", precision="fp32",
        batch=1 + i % 8, warmup_s=0.5, warmup_iterations=2, window_s=2.0, iterations=100, images=100,
        latency_ms=schema.Latency(mean=9.0, stdev=0.5, p50=9.0, p90=9.5, p95=9.8, p99=10.0, min=8.5, max=11.0),
        throughput_ips=110.0, power_w=20.0, energy_j=40.0, energy_per_inference_j=schema.EnergyPerInference(gross=0.18),
        provenance=schema.Provenance(power_source="estimate", boundary="estimate", estimated=True, samples=40),
    )


def run(address: str, n: int, db: Path) -> dict:
    host, port = topics.parse_broker(address)
    payloads = [schema.encode(result(i)) for i in range(n)]
    with Collector(address, db) as collector:
        pub = mqtt.Client(mqtt.CallbackAPIVersion.VERSION2, client_id="bench-pub")
        pub.connect(host, port)
        pub.loop_start()
        t0 = time.perf_counter()
        infos = [pub.publish(topics.topic("bench", topics.RESULT), p, qos=1) for p in payloads]
        for info in infos:
            info.wait_for_publish(60)
        t_acked = time.perf_counter() - t0
        with Store(db) as store:
            ok = collector.wait_until(lambda: store.count() >= n, 120)
        t_stored = time.perf_counter() - t0
        pub.loop_stop()
        pub.disconnect()
    with Store(db) as store:
        stored = store.count()
    return {"messages": n, "stored": stored, "complete": ok, "acked_s": round(t_acked, 3),
            "stored_s": round(t_stored, 3), "results_per_s": round(n / t_stored, 1)}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("-n", type=int, default=5000)
    args = parser.parse_args()
    with tempfile.TemporaryDirectory() as tmp:
        with EmbeddedBroker(port=0) as broker:
            print(json.dumps({"broker": "embedded (amqtt, in-process)", **run(broker.address, args.n,
                                                                             Path(tmp) / "a.sqlite")}))
        binary = shutil.which("mosquitto") or "/usr/sbin/mosquitto"
        if Path(binary).exists():
            port = free_port()
            conf = Path(tmp) / "m.conf"
            conf.write_text(f"listener {port} 127.0.0.1\nallow_anonymous true\npersistence false\n"
                            "max_queued_messages 0\n")
            proc = subprocess.Popen([binary, "-c", str(conf)], stderr=subprocess.DEVNULL)
            try:
                time.sleep(0.5)
                print(json.dumps({"broker": "mosquitto (own process)", **run(f"127.0.0.1:{port}", args.n,
                                                                            Path(tmp) / "m.sqlite")}))
            finally:
                proc.terminate()
                proc.wait(10)
        else:
            print("mosquitto not installed: skipped", file=sys.stderr)


if __name__ == "__main__":
    main()
