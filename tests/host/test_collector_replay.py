"""The collector's persistent session, replay requests and groups against a real private Mosquitto, on both stores
(SQLite and a private PostgreSQL): the test plays the agent (a plain paho client publishing numbered messages and
answering the host's commands over the broker)."""

from __future__ import annotations

import threading
import time

import pytest

from dnnprof.host.collector import REPLAY_MAX, Collector
from dnnprof.host.store import Gap, Store
from dnnprof.shared import schema, topics
from dnnprof.shared.errors import UserError

STREAM = 1_712_345_678_901
BOARD = "board-a"


class Agent:
    """The board's side over the real broker: hears the host's commands on its cmd topic, publishes numbered
    messages and acks."""

    def __init__(self, broker: str, mqtt_client) -> None:
        self.broker = broker
        self.mqtt = mqtt_client
        self.commands: list[schema.Command] = []
        self._lock = threading.Lock()
        self._client = mqtt_client.connect(broker)
        subscribed = threading.Event()
        self._client.on_subscribe = lambda *a: subscribed.set()
        self._client.on_message = self._on_message
        self._client.subscribe(topics.topic(BOARD, topics.CMD), qos=1)
        assert subscribed.wait(5)

    def _on_message(self, client, userdata, msg) -> None:
        with self._lock:
            self.commands.append(schema.decode(msg.payload))

    def asked(self) -> list[tuple[int, int]]:
        """(first, last) of every replay command heard so far, in order."""
        with self._lock:
            return [(c.first, c.last) for c in self.commands if c.action == "replay"]

    def wait_asked(self, count: int, timeout_s: float = 5.0) -> list[tuple[int, int]]:
        deadline = time.monotonic() + timeout_s
        while len(self.asked()) < count and time.monotonic() < deadline:
            time.sleep(0.02)
        assert len(self.asked()) >= count, self.asked()
        return self.asked()

    def command_for(self, first: int, last: int) -> schema.Command:
        with self._lock:
            return next(c for c in self.commands if (c.first, c.last) == (first, last))

    def send(self, *messages: schema.Message) -> None:
        self.mqtt.publish(self.broker, [(_topic(m), schema.encode(m)) for m in messages])

    def close(self) -> None:
        self._client.disconnect()
        self._client.loop_stop()


def _topic(message: schema.Message) -> str:
    kind = schema.KIND_OF[type(message)]
    return topics.topic(message.board, kind, message.run_id if kind == topics.RUN else None)


@pytest.fixture
def agent(mosquitto, mqtt_client):
    a = Agent(mosquitto, mqtt_client)
    try:
        yield a
    finally:
        a.close()


def numbered(msgs, seq: int) -> schema.Result:
    r = msgs.result(board=BOARD)
    r.stream = schema.Stream(id=STREAM, seq=seq)
    return r


def event(seq: int) -> schema.RunEvent:
    return schema.RunEvent(board=BOARD, ts=time.time(), run_id="run-1", seq=seq, event="progress",
                           points_total=2000, points_done=seq, stream=schema.Stream(id=STREAM, seq=seq))


def online(high: int, state: str = "online") -> schema.Status:
    return schema.Status(board=BOARD, ts=time.time(), state=state, session=1, stream=schema.Stream(id=STREAM, seq=high))


def telemetry(high: int) -> schema.Telemetry:
    return schema.Telemetry(board=BOARD, ts=time.time(), seq=0, t0=time.time(), dt_s=0.1, power_w=[5.0],
                            stream=schema.Stream(id=STREAM, seq=high))


def ack(command: schema.Command, replayed: int, unavailable=()) -> schema.CommandAck:
    return schema.CommandAck(board=BOARD, ts=time.time(), id=command.id, accepted=True, replayed=replayed,
                             unavailable=[list(r) for r in unavailable])


def test_a_persistent_collector_gets_what_was_published_while_it_was_down(mosquitto, db, msgs, mqtt_client):
    Collector(mosquitto, db, client_id="dnnhost-test-session", persistent=True).start().stop()
    missed = [msgs.result(board=BOARD) for _ in range(3)]
    mqtt_client.publish(mosquitto, [(msgs.topic_for(r), schema.encode(r)) for r in missed])  # QoS 1, host down
    with Collector(mosquitto, db, client_id="dnnhost-test-session", persistent=True) as again:
        assert again.wait_until(lambda: again.counts["stored"] == 3, 5), dict(again.counts)
    with Store(db) as store:
        assert sorted(r.id for r in store.results()) == sorted(r.id for r in missed)


def test_a_clean_session_under_a_fixed_id_gets_nothing_queued(mosquitto, db, msgs, mqtt_client):
    Collector(mosquitto, db, client_id="dnnhost-test-clean").start().stop()
    r = msgs.result(board=BOARD)
    mqtt_client.publish(mosquitto, [(msgs.topic_for(r), schema.encode(r))])
    with Collector(mosquitto, db, client_id="dnnhost-test-clean") as again:
        time.sleep(0.5)
        assert again.counts["received"] == 0


def test_a_persistent_session_needs_a_client_id(db):
    with pytest.raises(ValueError, match="client_id"):
        Collector("127.0.0.1:1883", db, persistent=True)


def test_missing_numbers_are_asked_for_and_the_replay_fills_them(mosquitto, db, msgs, agent):
    first, second, fifth, third, fourth, sixth = (numbered(msgs, n) for n in (1, 2, 5, 3, 4, 6))
    with Collector(mosquitto, db, replay=True, gap_grace_s=0.2, replay_retry_s=30) as collector:
        agent.send(first, second, fifth, online(6))
        assert sorted(agent.wait_asked(2)) == [(3, 4), (6, 6)]
        for command in agent.commands:
            assert (command.board, command.action, command.stream) == (BOARD, "replay", STREAM)
        assert collector.wait_until(lambda: collector.counts["replay_requests"] == 2, 5)
        assert collector.counts["gaps"] == 3
        # The agent publishes them again and answers each command.
        agent.send(third, fourth, sixth, ack(agent.command_for(3, 4), 2), ack(agent.command_for(6, 6), 1))
        assert collector.wait_until(lambda: collector.counts["replayed"] == 3 and collector.counts["cmd/ack"] == 2,
                                    5), dict(collector.counts)
        assert collector.wait_until(lambda: collector.counts["cmd"] == 2, 5)  # its own commands, heard back
        counts = dict(collector.counts)
        time.sleep(0.4)  # past the grace: nothing is missing, so nothing more is asked
        assert len(agent.asked()) == 2
    assert counts.get("rejected", 0) == 0 and counts.get("duplicate", 0) == 0
    assert counts["stored"] == 6 + 1 + 2  # results, status, acks (the commands were stored when sent)
    with Store(db) as store:
        assert store.gaps() == []
        assert len(store.results()) == 6
        command, answer = store.command(agent.command_for(6, 6).id)
        assert (command.first, command.last, answer.replayed) == (6, 6, 1)


def test_unavailable_numbers_are_asked_again_until_the_agent_says_they_are_gone(mosquitto, db, msgs, agent):
    with Collector(mosquitto, db, replay=True, gap_grace_s=0.2, replay_retry_s=0.6) as collector:
        # The tail's mark comes with telemetry (handled on paho's thread, never queued).
        agent.send(numbered(msgs, 1), numbered(msgs, 2), numbered(msgs, 5), telemetry(6))
        agent.wait_asked(2)
        # No answer: asked again once replay_retry_s has passed.
        asked = agent.wait_asked(4, timeout_s=3)
        assert asked.count((6, 6)) >= 2 and asked.count((3, 4)) >= 2
        agent.send(numbered(msgs, 3), numbered(msgs, 4), ack(agent.command_for(6, 6), 0, [[6, 6]]))
        assert collector.wait_until(lambda: collector.counts["unrecoverable"] == 1, 5), dict(collector.counts)
        time.sleep(0.2)  # a request sent just before the ack was taken in may still be on its way
        heard = len(agent.asked())
        time.sleep(1.5)  # more than twice replay_retry_s
        assert len(agent.asked()) == heard  # 6 is gone for good, 3-4 arrived: nothing left to ask for
        assert collector.counts["rejected"] == 0
    with Store(db) as store:
        assert store.gaps() == []
        (lost,) = store.lost()
        assert (lost.board, lost.stream, lost.first, lost.last) == (BOARD, STREAM, 6, 6)


def test_an_offline_board_is_not_asked_until_it_is_back(mosquitto, db, msgs, agent):
    with Collector(mosquitto, db, replay=True, gap_grace_s=0.1, replay_retry_s=30) as collector:
        agent.send(numbered(msgs, 1), online(4, state="offline"))
        assert collector.wait_until(lambda: collector.counts["gaps"] == 3, 5)
        time.sleep(0.5)
        assert agent.asked() == []
        agent.send(online(4))  # its birth: back online
        assert agent.wait_asked(1) == [(2, 4)]


def test_a_long_gap_is_asked_for_in_parts_one_at_a_time(mosquitto, db, msgs, agent):
    with Collector(mosquitto, db, replay=True, gap_grace_s=0.1, replay_retry_s=30) as collector:
        agent.send(event(1), online(1200))
        assert agent.wait_asked(1) == [(2, 1 + REPLAY_MAX)]
        time.sleep(0.5)
        assert len(agent.asked()) == 1  # the first part is not answered yet: no second request meanwhile
        agent.send(*(event(n) for n in range(2, 2 + REPLAY_MAX)))
        assert agent.wait_asked(2)[1] == (2 + REPLAY_MAX, 1 + 2 * REPLAY_MAX)
        assert collector.wait_until(lambda: collector.counts["replayed"] == REPLAY_MAX, 5)
    with Store(db) as store:
        assert store.gaps() == [Gap(BOARD, STREAM, 2 + REPLAY_MAX, 1200)]


def test_without_replay_gaps_are_counted_but_never_asked_for(mosquitto, db, msgs, agent):
    with Collector(mosquitto, db, gap_grace_s=0.1) as collector:
        agent.send(numbered(msgs, 1), numbered(msgs, 3))
        assert collector.wait_until(lambda: collector.counts["gaps"] == 1, 5)
        time.sleep(0.3)
        assert agent.asked() == [] and collector.counts["replay_requests"] == 0


def test_gaps_left_in_the_store_are_asked_for_after_a_restart(mosquitto, db, msgs, agent):
    with Store(db) as store:
        store.add(numbered(msgs, 1))
        store.add(online(3))
    with Collector(mosquitto, db, replay=True, gap_grace_s=0.1, replay_retry_s=30):
        assert agent.wait_asked(1) == [(2, 3)]


# --- several collectors in a group --------------------------------------------------------------------------------


def member(broker: str, db, name: str, **options) -> Collector:
    return Collector(broker, db, client_id=f"dnnhost-test-{name}", persistent=True, group="lab", **options)


def test_a_group_splits_the_stream_and_stores_each_result_once(mosquitto, db, msgs, mqtt_client):
    results = [numbered(msgs, n) for n in range(1, 61)]
    with member(mosquitto, db, "one") as one, member(mosquitto, db, "two") as two:
        assert one.subscription == two.subscription == "$share/lab/dnnprof/v1/+/#"
        mqtt_client.publish(mosquitto, [(msgs.topic_for(r), schema.encode(r)) for r in results])
        assert one.wait_until(lambda: one.counts["stored"] + two.counts["stored"] == 60, 10), (one.counts, two.counts)
    # Each message went to one member: both took a share, none stored anything twice.
    assert one.counts["result"] > 0 and two.counts["result"] > 0
    assert one.counts["result"] + two.counts["result"] == 60
    assert one.counts["duplicate"] == two.counts["duplicate"] == 0
    with Store(db) as store:
        assert sorted(r.id for r in store.results()) == sorted(r.id for r in results)
        assert store.gaps() == []


def test_a_gap_is_asked_for_once_whichever_member_found_it(mosquitto, db, msgs, agent):
    """Both members see the store's gaps; the replay is decided under the store's lock from every member's requests,
    so the board is asked once per gap, not once per member."""
    options = {"replay": True, "gap_grace_s": 0.2, "replay_retry_s": 30}
    with member(mosquitto, db, "one", **options) as one, member(mosquitto, db, "two", **options) as two:
        agent.send(numbered(msgs, 1), numbered(msgs, 2), numbered(msgs, 5), online(6))
        assert sorted(agent.wait_asked(2)) == [(3, 4), (6, 6)]
        time.sleep(1.0)  # both past their grace, each having checked the gaps several times
        assert sorted(agent.asked()) == [(3, 4), (6, 6)]
        assert one.counts["replay_requests"] + two.counts["replay_requests"] == 2
        agent.send(numbered(msgs, 3), numbered(msgs, 4), numbered(msgs, 6),
                   ack(agent.command_for(3, 4), 2), ack(agent.command_for(6, 6), 1))
        with Store(db) as store:
            assert one.wait_until(lambda: store.gaps() == [] and store.count() == 6, 10), store.gaps()
        time.sleep(0.5)
        assert len(agent.asked()) == 2  # filled: nobody asks again


def test_a_member_that_has_no_share_of_a_board_still_asks_for_its_gaps(mosquitto, db, msgs, agent):
    """The gaps and the board's presence are the store's, not what one member received: a member that starts after
    the others stored everything still finds the gap and knows the board is online."""
    with member(mosquitto, db, "one") as one:  # no replay: it only stores
        agent.send(numbered(msgs, 1), numbered(msgs, 3), online(3))
        assert one.wait_until(lambda: one.counts["stored"] == 3, 5)
    with member(mosquitto, db, "two", replay=True, gap_grace_s=0.2, replay_retry_s=30) as two:
        assert agent.wait_asked(1) == [(2, 2)]
        assert two.counts["received"] == 0


def test_a_group_name_mqtt_cannot_carry_is_refused(db):
    for name in ("", "a/b", "a+", "#", "a b"):
        with pytest.raises(UserError, match="--group"):
            Collector("127.0.0.1:1883", db, client_id="x", persistent=True, group=name)
