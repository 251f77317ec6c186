"""The embedded amqtt broker: starts on a free port, relays QoS1 and retained messages, stops cleanly."""

from __future__ import annotations

import socket
import threading
import time

import paho.mqtt.client as mqtt
import pytest

from dnnprof.host.broker import EmbeddedBroker, free_port
from dnnprof.shared.errors import UserError


class Inbox:
    """A subscribed paho client that records what it receives."""

    def __init__(self, mqtt_client, address: str, pattern: str) -> None:
        self.messages: list[mqtt.MQTTMessage] = []
        self.granted: list = []
        self._arrived = threading.Event()
        self._subscribed = threading.Event()
        self.client = mqtt_client.connect(address)
        self.client.on_message = self._on_message
        self.client.on_subscribe = self._on_subscribe
        self.client.subscribe(pattern, qos=1)
        assert self._subscribed.wait(10), "no SUBACK"

    def _on_message(self, client, userdata, msg) -> None:
        self.messages.append(msg)
        self._arrived.set()

    def _on_subscribe(self, client, userdata, mid, reason_codes, properties) -> None:
        self.granted = list(reason_codes)
        self._subscribed.set()

    def wait(self, count: int = 1, timeout_s: float = 10.0) -> list[mqtt.MQTTMessage]:
        deadline = time.monotonic() + timeout_s
        while len(self.messages) < count and time.monotonic() < deadline:
            self._arrived.wait(0.05)
            self._arrived.clear()
        return self.messages

    def close(self) -> None:
        self.client.disconnect()
        self.client.loop_stop()


def _port_is_free(port: int) -> bool:
    """Whether a server could listen on ``port`` now (SO_REUSEADDR, as servers do: TIME_WAIT left behind by the
    connections the broker closed does not count as in use, a listening socket does)."""
    with socket.socket() as s:
        s.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        try:
            s.bind(("127.0.0.1", port))
        except OSError:
            return False
        return True


def test_port_zero_picks_a_free_port_and_relays_qos1(mqtt_client):
    with EmbeddedBroker(port=0) as broker:
        assert broker.port > 0
        assert broker.address == f"127.0.0.1:{broker.port}"
        inbox = Inbox(mqtt_client, broker.address, "dnnprof-test/#")
        try:
            assert [rc.value for rc in inbox.granted] == [1]  # QoS1 granted
            mqtt_client.publish(broker.address, [(f"dnnprof-test/{i}", f"payload {i}".encode()) for i in range(5)])
            got = inbox.wait(5)
        finally:
            inbox.close()
    assert sorted((m.topic, m.payload) for m in got) == [(f"dnnprof-test/{i}", f"payload {i}".encode())
                                                        for i in range(5)]
    assert all(m.qos == 1 and not m.retain for m in got)


def test_retained_message_reaches_a_later_subscriber(mqtt_client):
    with EmbeddedBroker(port=0) as broker:
        mqtt_client.publish(broker.address, [("dnnprof-test/board/status", b"online", True),
                                             ("dnnprof-test/board/other", b"not retained", False)])
        inbox = Inbox(mqtt_client, broker.address, "dnnprof-test/#")
        try:
            got = inbox.wait(1)
            time.sleep(0.2)  # anything else that would (wrongly) arrive
        finally:
            inbox.close()
    assert got, "the retained message was not delivered to a subscriber that came later"
    # amqtt 0.12 may hand a retained message to a new subscriber more than once; its content is what matters.
    assert {(m.topic, m.payload, m.retain) for m in got} == {("dnnprof-test/board/status", b"online", True)}


def test_stop_is_clean_and_releases_the_port(mqtt_client):
    before = {t.ident for t in threading.enumerate()}
    broker = EmbeddedBroker(port=0).start()
    port = broker.port
    assert not _port_is_free(port)
    client = mqtt_client.connect(broker.address)  # a client still connected while the broker stops
    try:
        broker.stop()
    finally:
        client.disconnect()
        client.loop_stop()
    assert _port_is_free(port)
    with socket.socket() as s:
        assert s.connect_ex(("127.0.0.1", port)) != 0  # nothing listens any more
    assert not [t for t in threading.enumerate() if t.ident not in before and t.name == "embedded-broker"]
    broker.stop()  # a second stop is a no-op
    with EmbeddedBroker(port=port) as again:  # a restarted collector gets the same port back at once
        assert again.port == port


def test_restart_on_the_same_port_after_stop():
    port = free_port()
    with EmbeddedBroker(port=port) as first:
        assert first.port == port
    with EmbeddedBroker(port=port) as second:
        assert second.address == f"127.0.0.1:{port}"


@pytest.mark.parametrize("listen", [True, False], ids=["listening", "bound"])
def test_port_in_use_is_a_one_line_user_error(listen):
    with socket.socket() as taken:
        taken.bind(("127.0.0.1", 0))
        if listen:
            taken.listen()
        port = taken.getsockname()[1]
        broker = EmbeddedBroker(port=port)
        with pytest.raises(UserError) as excinfo:
            broker.start()
        broker.stop()  # nothing started, nothing to stop
    message = str(excinfo.value)
    assert "\n" not in message
    assert f"127.0.0.1:{port}" in message
    assert "--port" in message  # says what to do about it


def test_second_embedded_broker_on_the_same_port_is_refused():
    with EmbeddedBroker(port=0) as first:
        with pytest.raises(UserError, match=f"127\\.0\\.0\\.1:{first.port}"):
            EmbeddedBroker(port=first.port).start()
        with socket.socket() as s:  # the first one is unharmed
            assert s.connect_ex(("127.0.0.1", first.port)) == 0
