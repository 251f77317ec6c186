"""The collector and ``dnnhost collect`` over TLS with a password, against a private Mosquitto that also enforces the
example ACL of docs/examples/mosquitto/acl (each board writes only under its own id; the host reads all)."""

from __future__ import annotations

import ssl
import threading
import time
import uuid
from pathlib import Path

import paho.mqtt.client as mqtt
import pytest

from dnnprof.host.cli import app
from dnnprof.host.collector import Collector
from dnnprof.host.store import Store
from dnnprof.shared import schema
from dnnprof.shared.errors import UserError

ACL = Path(__file__).resolve().parents[2] / "docs" / "examples" / "mosquitto" / "acl"
USERS = {"dnnhost": "host-pw", "board-a": "a-pw", "board-b": "b-pw"}


@pytest.fixture
def broker(tls_mosquitto) -> str:
    port = tls_mosquitto(USERS, f"acl_file {ACL}\n")
    return f"127.0.0.1:{port}"


def context(pki: Path, ca: str = "ca.crt") -> ssl.SSLContext:
    return ssl.create_default_context(cafile=str(pki / ca))


def publish(broker: str, pki: Path, user: str, items: list[tuple[str, bytes, bool]]) -> None:
    """Publish as ``user`` over TLS at QoS1 and wait for every PUBACK (which Mosquitto sends even for a publish its
    ACL drops: MQTT 3.1.1 has no way to say no)."""
    host, port = broker.split(":")
    client = mqtt.Client(mqtt.CallbackAPIVersion.VERSION2, client_id=f"test-{uuid.uuid4().hex[:12]}")
    client.tls_set_context(context(pki))
    client.username_pw_set(user, USERS[user])
    client.connect(host, int(port), keepalive=30)
    client.loop_start()
    try:
        infos = [client.publish(t, p, qos=1, retain=r) for t, p, r in items]
        for info in infos:
            info.wait_for_publish(10)
            assert info.is_published()
    finally:
        client.disconnect()
        client.loop_stop()


def test_collector_over_tls_with_a_password_stores_a_result(broker, pki, tmp_path, msgs):
    r = msgs.result(board="board-a")
    with Collector(broker, tmp_path / "db.sqlite", tls=context(pki), username="dnnhost",
                   password="host-pw") as collector:
        publish(broker, pki, "board-a", [(msgs.topic_for(r), schema.encode(r), False)])
        assert collector.wait_until(lambda: collector.counts["stored"] == 1, 10)
    with Store(tmp_path / "db.sqlite") as store:
        assert store.results() == [r]


def test_refusals_are_one_line(broker, pki, tmp_path):
    db = tmp_path / "db.sqlite"
    with pytest.raises(UserError, match=r"refused the connection \(Not authorized\)") as wrong_password:
        Collector(broker, db, tls=context(pki), username="dnnhost", password="wrong").start(timeout_s=5)
    with pytest.raises(UserError, match=r"^cannot reach the MQTT broker at .*CERTIFICATE_VERIFY_FAILED") as wrong_ca:
        Collector(broker, db, tls=context(pki, "other-ca.crt"), username="dnnhost", password="host-pw").start(5)
    for exc in (wrong_password, wrong_ca):
        assert "\n" not in str(exc.value)
        assert "pw" not in str(exc.value)


def test_acl_drops_a_board_publishing_as_another(broker, pki, tmp_path, msgs):
    forged, own = msgs.result(board="board-b"), msgs.result(board="board-a")
    with Collector(broker, tmp_path / "db.sqlite", tls=context(pki), username="dnnhost",
                   password="host-pw") as collector:
        # board-a's login publishes on board-b's topic first: acknowledged, silently dropped by the broker.
        publish(broker, pki, "board-a", [(msgs.topic_for(forged), schema.encode(forged), False),
                                         (msgs.topic_for(own), schema.encode(own), False)])
        assert collector.wait_until(lambda: collector.counts["stored"] == 1, 10)
        time.sleep(0.3)  # the forged message, had it been delivered, would have arrived before the own one anyway
        assert collector.counts["received"] == 1
    with Store(tmp_path / "db.sqlite") as store:
        assert store.results() == [own]


def _cli(*args):
    from typer.testing import CliRunner

    return CliRunner().invoke(app, [str(a) for a in args])


def _user_error(run) -> str:
    """The one-line message of the UserError a command raised (cli.run prints it as ``dnnhost: error: ...``)."""
    assert isinstance(run.exception, UserError), run.output
    message = str(run.exception)
    assert "\n" not in message
    return message


def _password_file(tmp_path: Path, mode: int) -> Path:
    path = tmp_path / "mqtt-password"
    path.write_text("host-pw\n")
    path.chmod(mode)
    return path


def test_cli_collect_over_tls(broker, pki, tmp_path, msgs):
    r = msgs.result(board="board-a")
    publish(broker, pki, "board-a", [(msgs.topic_for(r), schema.encode(r), True)])  # retained: there at subscribe
    db = tmp_path / "db.sqlite"
    run = _cli("collect", "--broker", broker, "--tls-ca", pki / "ca.crt", "--username", "dnnhost",
               "--password-file", _password_file(tmp_path, 0o600), "--db", db, "--duration", "2s")
    assert run.exit_code == 0, run.output
    assert "host-pw" not in run.output
    with Store(db) as store:
        assert store.results() == [r]


def test_cli_refuses_an_unsafe_password_file_and_the_embedded_broker(broker, pki, tmp_path):
    common = ["--tls-ca", pki / "ca.crt", "--username", "dnnhost", "--db", tmp_path / "db.sqlite", "--duration", "1s"]
    for command in ("collect", "live"):
        run = _cli(command, "--broker", broker, *common, "--password-file", _password_file(tmp_path, 0o640))
        message = _user_error(run)
        assert "readable by group or others (mode 0640)" in message and "chmod 600" in message
        assert "host-pw" not in message + run.output
        run = _cli(command, *common)
        assert "--tls-ca, --username: the embedded broker takes neither TLS nor a login" in _user_error(run)


class Listener:
    """A TLS login as ``user`` subscribed to ``filters``; ``topics`` lists (topic, message) the broker delivered."""

    def __init__(self, broker: str, pki: Path, user: str, filters: list[str]) -> None:
        host, port = broker.split(":")
        self.topics: list[tuple[str, schema.Message]] = []
        subscribed = threading.Event()
        client = mqtt.Client(mqtt.CallbackAPIVersion.VERSION2, client_id=f"test-{uuid.uuid4().hex[:12]}")
        client.tls_set_context(context(pki))
        client.username_pw_set(user, USERS[user])
        client.on_connect = lambda c, u, f, rc, p: c.subscribe([(t, 1) for t in filters])
        client.on_subscribe = lambda *a: subscribed.set()
        client.on_message = lambda c, u, msg: self.topics.append((msg.topic, schema.decode(msg.payload)))
        client.connect(host, int(port), keepalive=30)
        client.loop_start()
        assert subscribed.wait(10)
        self.client = client

    def close(self) -> None:
        self.client.disconnect()
        self.client.loop_stop()


def test_acl_lets_a_board_read_only_its_own_commands_and_only_the_host_send_them(broker, pki, msgs):
    """Mosquitto 2.0 grants any subscription and enforces read rights per delivered message: a board that
    subscribes to everything still receives only its own command topic, and only commands the host sent."""
    nosy = Listener(broker, pki, "board-a", ["dnnprof/v1/#", "dnnprof/v1/board-b/cmd"])
    target = Listener(broker, pki, "board-b", ["dnnprof/v1/board-b/cmd"])
    try:
        def command(id: str) -> bytes:
            return schema.encode(schema.Command(board="board-b", ts=time.time(), id=id, action="replay", stream=1,
                                                first=1, last=2))

        r = msgs.result(board="board-b")
        publish(broker, pki, "board-a", [("dnnprof/v1/board-b/cmd", command("forged"), False)])  # dropped
        publish(broker, pki, "dnnhost", [("dnnprof/v1/board-b/cmd", command("real"), False)])
        publish(broker, pki, "board-b", [(msgs.topic_for(r), schema.encode(r), False)])
        deadline = time.monotonic() + 10
        while not target.topics and time.monotonic() < deadline:
            time.sleep(0.05)
        time.sleep(0.5)  # long enough for anything wrongly delivered to arrive too
        assert [(t, m.id) for t, m in target.topics] == [("dnnprof/v1/board-b/cmd", "real")]  # not the forgery
        assert nosy.topics == []  # neither board-b's command nor board-b's result
    finally:
        nosy.close()
        target.close()


EXAMPLE_CONF = ACL.parent / "dnnprof.conf"
# What the tls_mosquitto fixture sets itself (its own port, certificates and password file) or must come first.
_FIXTURE_KEYS = ("per_listener_settings", "listener", "cafile", "certfile", "keyfile", "password_file", "acl_file",
                 "allow_anonymous")


def test_the_example_broker_config_runs_and_queues_for_a_persistent_collector(tls_mosquitto, pki, tmp_path, msgs):
    """docs/examples/mosquitto/dnnprof.conf, with this test's certificates, passwords and port: Mosquitto accepts
    every other line of it, and a collector's persistent session gets what was published while it was down."""
    lines = [line for line in EXAMPLE_CONF.read_text().splitlines()
             if line.strip() and not line.startswith("#") and line.split()[0] not in _FIXTURE_KEYS]
    assert {line.split()[0] for line in lines} >= {"max_queued_messages", "persistence", "autosave_interval",
                                                   "persistent_client_expiration"}
    extra = "\n".join([*lines, f"acl_file {ACL}", f"persistence_location {tmp_path}/", ""])
    broker = f"127.0.0.1:{tls_mosquitto(USERS, extra)}"
    db = tmp_path / "db.sqlite"
    login = {"tls": context(pki), "username": "dnnhost", "password": "host-pw"}
    with Collector(broker, db, client_id="dnnhost-collect-example", persistent=True, **login):
        pass  # the session now exists on the broker
    r = msgs.result(board="board-a")
    publish(broker, pki, "board-a", [(msgs.topic_for(r), schema.encode(r), False)])  # while the collector is down
    with Collector(broker, db, client_id="dnnhost-collect-example", persistent=True, **login) as collector:
        assert collector.wait_until(lambda: collector.counts["stored"] == 1, 10)
    with Store(db) as store:
        assert store.results() == [r]
