"""MqttLink over TLS with a client certificate and a password, against a real Mosquitto TLS listener (certificates
made here with the openssl CLI), and ``serve`` with a TLS config end to end."""

from __future__ import annotations

import shutil
import ssl
import threading
import time
from pathlib import Path

import pytest

from dnnprof.agent.publish.link import MqttLink
from dnnprof.agent.service import config as agent_config
from dnnprof.agent.service import serve as service
from dnnprof.shared import schema
from dnnprof.shared.errors import UserError

pytestmark = pytest.mark.skipif(shutil.which("openssl") is None or shutil.which("mosquitto_passwd") is None,
                                reason="needs the openssl and mosquitto_passwd commands")


@pytest.fixture
def tls_broker(tls_mosquitto):
    """A Mosquitto that only takes TLS with a client certificate from our CA, and user "orin-01" / "s3cret"."""
    return tls_mosquitto({"orin-01": "s3cret"}, "require_certificate true\n")


def context(pki: Path, ca: str = "ca.crt", client: bool = True) -> ssl.SSLContext:
    ctx = ssl.create_default_context(cafile=str(pki / ca))
    if client:
        ctx.load_cert_chain(str(pki / "client.crt"), str(pki / "client.key"))
    return ctx


def run_event(seq: int) -> schema.RunEvent:
    return schema.RunEvent(board="tls-board", ts=time.time(), run_id="run-1", seq=seq, event="progress",
                           points_total=3, points_done=seq)


def test_tls_with_client_certificate_and_password(tls_broker, pki):
    acked: list[schema.Message] = []
    link = MqttLink(f"127.0.0.1:{tls_broker}", "tls-board", session=1, tls=context(pki), username="orin-01",
                    password="s3cret", on_ack=acked.append)
    sent = [run_event(i) for i in range(3)]
    for message in sent:
        link.send(message)
    assert link.flush(10) == []
    assert link.close(10) == []
    # on_ack saw every tracked message once (the birth status of close() included), in no particular order.
    assert sorted((m for m in acked if isinstance(m, schema.RunEvent)), key=lambda m: m.seq) == sent
    assert [m.state for m in acked if isinstance(m, schema.Status)] == ["offline"]


def test_tls_refusals_are_one_line(tls_broker, pki):
    where = f"127.0.0.1:{tls_broker}"
    with pytest.raises(UserError, match=r"did not accept the connection \(Not authorized\)"):
        MqttLink(where, "tls-board", session=1, tls=context(pki), username="orin-01", password="wrong")
    with pytest.raises(UserError, match=r"^cannot reach the MQTT broker at .*CERTIFICATE_VERIFY_FAILED"):
        MqttLink(where, "tls-board", session=1, tls=context(pki, ca="other-ca.crt"), username="orin-01",
                 password="s3cret")
    with pytest.raises(UserError, match=r"^(cannot reach|the) MQTT broker"):  # no client certificate
        MqttLink(where, "tls-board", session=1, tls=context(pki, client=False), username="orin-01", password="s3cret",
                 connect_timeout_s=2)


def test_on_ack_errors_are_logged_not_raised_into_paho(mosquitto, caplog):
    def broken(message) -> None:
        raise RuntimeError("ledger is gone")

    link = MqttLink(mosquitto, "tls-board", session=1, on_ack=broken)
    link.send(run_event(0))
    assert link.flush(10) == []  # the network thread survived the handler's exception
    link.send(run_event(1))
    assert link.close(10) == []
    assert "acknowledgement handler failed for a run message: ledger is gone" in caplog.text


def test_serve_over_tls(tmp_path, tls_broker, pki, model_dir):
    password = tmp_path / "mqtt-password"
    password.write_text("s3cret\n")
    password.chmod(0o600)
    path = tmp_path / "agent.toml"
    path.write_text(f"""[broker]
host = "127.0.0.1"
port = {tls_broker}
username = "orin-01"
password_file = "{password}"
[broker.tls]
ca_file = "{pki / 'ca.crt'}"
cert_file = "{pki / 'client.crt'}"
key_file = "{pki / 'client.key'}"
[agent]
board_id = "tls-board"
state_dir = "{tmp_path / 'state'}"
models_dir = "{model_dir}"
[sweep]
batch_sizes = [1]
backend = "onnxruntime"
[power]
source = "none"
telemetry_rate_hz = 0
[measurement]
warmup_s = 0.01
max_warmup_s = 0.05
duration_s = 0.05
max_duration_s = 0.1
min_iterations = 2
idle_s = 0
""")
    cfg = agent_config.load(path)
    notes: list[str] = []
    done, stop = threading.Event(), threading.Event()

    def notify(*assignments: str) -> bool:
        notes.extend(assignments)
        if any(a.startswith("STATUS=sweep done") for a in assignments):
            done.set()
        return True

    outcome: list = []
    thread = threading.Thread(target=lambda: outcome.append(service.serve(cfg, stop=stop, notify=notify)))
    thread.start()
    assert done.wait(60), notes
    stop.set()
    thread.join(60)
    summary = outcome[0]
    assert summary.measured == 1 and summary.unsent == 0
    assert "READY=1" in notes and "STOPPING=1" in notes
    assert any(a.startswith(f"STATUS=online at 127.0.0.1:{tls_broker}") for a in notes)
    assert cfg.ledger_path.exists()
    assert not any("s3cret" in a for a in notes)
