"""Helpers shared by the host tests: valid messages built from the real schema, a real MQTT publisher, and the
``dnnhost`` command run as a user runs it."""

from __future__ import annotations

import itertools
import os
import subprocess
import sys
import time
import uuid

import msgspec
import paho.mqtt.client as mqtt
import pytest

from dnnprof.shared import schema, topics

_clock = itertools.count(1)


def result(network: str = "resnet18", batch: int = 1, energy: float | None = 0.01, *, board: str = "board-a",
           run_id: str = "run-1", ts: float | None = None, id: str | None = None, estimated: bool = False,
           throughput: float = 100.0, backend: str = "onnxruntime", device: str = "cpu",
           precision: str = "fp32", boundary: str | None = None, power_mode: str | None = None,
           clocks: str | None = None, model_cost: schema.ModelCost | None = None,
           latency_ms: float = 10.0) -> schema.Result:
    """A valid Result; ``energy`` is joules per image (None: no power source, so no power and no energy).

    ``boundary``: what the energy covers (default ``cpu_package``, or ``estimate`` when ``estimated``);
    ``latency_ms``: the mean batch latency."""
    window_s = 2.0
    images = max(batch, int(throughput * window_s) // batch * batch)
    iterations = images // batch
    energy_j = None if energy is None else energy * images
    return schema.Result(
        board=board, ts=time.time() + next(_clock) * 1e-3 if ts is None else ts,
        id=id or uuid.uuid4().hex, run_id=run_id, network=network, model_sha256="0" * 64,
        input_shape=[3, 224, 224], backend=backend, backend_version="1.17.0", device=device, precision=precision,
        batch=batch, threads=2, warmup_s=0.5, warmup_iterations=10, window_s=window_s, iterations=iterations,
        images=images,
        latency_ms=schema.Latency(mean=latency_ms, stdev=0.1 * latency_ms, p50=0.95 * latency_ms,
                                  p90=1.1 * latency_ms, p95=1.2 * latency_ms, p99=1.35 * latency_ms,
                                  min=0.8 * latency_ms, max=1.5 * latency_ms),
        model_cost=model_cost,
        conditions=None if power_mode is None and clocks is None else schema.Conditions(power_mode=power_mode,
                                                                                        clocks=clocks),
        throughput_ips=throughput,
        power_w=None if energy_j is None else energy_j / window_s,
        energy_j=energy_j,
        energy_per_inference_j=None if energy is None else schema.EnergyPerInference(gross=energy),
        provenance=schema.Provenance(
            power_source=None if energy is None else ("estimate" if estimated else "rapl"),
            boundary=None if energy is None else (boundary or ("estimate" if estimated else "cpu_package")),
            estimated=estimated, samples=0 if energy is None else 200,
            sample_rate_hz=None if energy is None else 100.0),
    )


def measured(result: schema.Result, top1: float, top5: float | None = None, *, images: int = 500,
             reused: bool = False, set_name: str = "imagenet-val") -> schema.Result:
    """``result`` with the accuracy the agent measured on it (an ``accuracy_set`` of ``images`` images); the 95%
    interval is a plausible one around ``top1``, not computed."""
    acc = schema.Accuracy(top1=top1, top5=top5, images=images, top1_ci=[max(0.0, top1 - 4.0), min(100.0, top1 + 4.0)],
                          top5_ci=None if top5 is None else [max(0.0, top5 - 2.0), min(100.0, top5 + 2.0)],
                          set_name=set_name, set_sha256="a" * 64,
                          preprocessing="resize 256, crop 224, ImageNet mean/std",
                          reused=reused, duration_s=None if reused else 12.5)
    return msgspec.structs.replace(result, accuracy=acc)


def status(state: str = "online", session: int = 1, *, board: str = "board-a", ts: float | None = None
           ) -> schema.Status:
    return schema.Status(board=board, ts=time.time() if ts is None else ts, state=state, session=session)


def info(*, board: str = "board-a", hostname: str = "jetson-1", cpu_model: str | None = "ARM Cortex-A78AE",
         power_source: str | None = "rapl", session: int = 1) -> schema.BoardInfo:
    return schema.BoardInfo(board=board, ts=time.time(), hostname=hostname, os="Linux", arch="aarch64",
                            cpu_model=cpu_model, cpu_count=8, memory_total_bytes=16 << 30, python="3.11.9",
                            agent_version="0.1.0", backends={"onnxruntime": "1.17.0"}, power_source=power_source,
                            power_boundary="cpu_package" if power_source else None, session=session)


def run_event(event: str = "started", seq: int = 0, *, board: str = "board-a", run_id: str = "run-1",
              points_total: int = 4, points_done: int = 0) -> schema.RunEvent:
    return schema.RunEvent(board=board, ts=time.time(), run_id=run_id, seq=seq, event=event,
                           points_total=points_total, points_done=points_done)


def failure(network: str = "vgg16", batch: int = 64, error: str = "out_of_memory", stage: str = "window", *,
            board: str = "board-a", run_id: str = "run-1", ts: float | None = None, id: str | None = None,
            message: str = "CUDA out of memory: tried to allocate 1.50 GiB", cause: str | None = None,
            backend: str = "onnxruntime", device: str = "cpu", precision: str = "fp32",
            power_mode: str | None = None, clocks: str | None = None, model_sha256: str = "0" * 64,
            stream: schema.Stream | None = None) -> schema.Failure:
    """A valid Failure: a point that produced no measurement (the same model file as ``result``'s by default)."""
    return schema.Failure(
        board=board, ts=time.time() + next(_clock) * 1e-3 if ts is None else ts, id=id or uuid.uuid4().hex,
        run_id=run_id, network=network, model_sha256=model_sha256, backend=backend, backend_version="1.17.0",
        device=device, precision=precision, batch=batch, power_mode=power_mode, clocks=clocks, error=error, stage=stage,
        message=message, cause=cause, elapsed_s=1.5, stream=stream)


def topic_for(message: schema.Message) -> str:
    """The topic an agent publishes ``message`` on."""
    kind = schema.KIND_OF[type(message)]
    return topics.topic(message.board, kind, message.run_id if kind == topics.RUN else None)


class Messages:
    """The helpers above, handed to tests as one fixture (conftest modules are not importable by name)."""

    result = staticmethod(result)
    measured = staticmethod(measured)
    status = staticmethod(status)
    info = staticmethod(info)
    run_event = staticmethod(run_event)
    failure = staticmethod(failure)
    topic_for = staticmethod(topic_for)


@pytest.fixture
def msgs() -> type[Messages]:
    return Messages


def connect(address: str, timeout_s: float = 10.0) -> mqtt.Client:
    """A connected paho client (its network loop running) with a unique client id."""
    host, port = topics.parse_broker(address)
    client = mqtt.Client(mqtt.CallbackAPIVersion.VERSION2, client_id=f"test-{uuid.uuid4().hex[:12]}")
    client.connect(host, port, keepalive=30)
    client.loop_start()
    deadline = time.monotonic() + timeout_s
    while not client.is_connected():
        if time.monotonic() > deadline:
            client.loop_stop()
            raise TimeoutError(f"no CONNACK from {address}")
        time.sleep(0.01)
    return client


def publish(address: str, items: list[tuple[str, bytes]] | list[tuple[str, bytes, bool]],
            timeout_s: float = 10.0) -> None:
    """Publish ``(topic, payload[, retain])`` items at QoS1 and wait for every PUBACK."""
    client = connect(address, timeout_s)
    try:
        infos = []
        for item in items:
            topic_name, payload, retain = (*item, False) if len(item) == 2 else item
            infos.append(client.publish(topic_name, payload, qos=1, retain=retain))
        for i in infos:
            i.wait_for_publish(timeout_s)
            assert i.is_published(), "the broker did not acknowledge a QoS1 publish"
    finally:
        client.disconnect()
        client.loop_stop()


class Mqtt:
    connect = staticmethod(connect)
    publish = staticmethod(publish)


@pytest.fixture
def mqtt_client() -> type[Mqtt]:
    return Mqtt


@pytest.fixture
def run(tmp_path):
    """``run(*args)``: dnnhost with ``args``, its user data dir in tmp_path so no real store is ever touched."""
    env = {**os.environ, "XDG_DATA_HOME": str(tmp_path / "xdg"), "XDG_CONFIG_HOME": str(tmp_path / "xdg-config"),
           "COLUMNS": "200"}

    def run(*args, timeout: float = 60) -> subprocess.CompletedProcess:
        return subprocess.run([sys.executable, "-m", "dnnprof.host", *map(str, args)], capture_output=True,
                              text=True, env=env, timeout=timeout)

    run.env = env
    return run


def _one_error_line(proc: subprocess.CompletedProcess) -> str:
    assert proc.returncode != 0, proc
    assert "Traceback" not in proc.stderr + proc.stdout
    lines = [line for line in proc.stderr.splitlines() if line.strip()]
    assert len(lines) == 1, proc.stderr
    assert lines[0].startswith("dnnhost: error:"), proc.stderr
    return lines[0]


@pytest.fixture
def one_error_line():
    """``one_error_line(proc)``: asserts a failed run said exactly one ``dnnhost: error:`` line; returns it."""
    return _one_error_line
