"""The topic scheme dnnprof/v1/<board>/<kind>[/<run-id>], ids, and broker addresses."""

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from dnnprof.shared import topics
from dnnprof.shared.errors import UserError

NON_RUN_KINDS = [k for k in topics.KINDS if k != topics.RUN]


@pytest.mark.parametrize("kind", NON_RUN_KINDS)
def test_topic_parse_round_trip(kind):
    name = topics.topic("jetson-orin-1", kind)
    assert name == f"dnnprof/v1/jetson-orin-1/{kind}"
    assert topics.parse(name) == topics.Topic("jetson-orin-1", kind, None)


def test_run_topic_round_trip():
    name = topics.topic("b1", topics.RUN, "20240611-081045-a1b2c3")
    assert name == "dnnprof/v1/b1/run/20240611-081045-a1b2c3"
    parsed = topics.parse(name)
    assert parsed == ("b1", "run", "20240611-081045-a1b2c3")
    assert parsed.board == "b1" and parsed.kind == "run" and parsed.run_id == "20240611-081045-a1b2c3"


def test_cmd_ack_is_two_levels():
    assert topics.topic("b1", topics.CMD_ACK) == "dnnprof/v1/b1/cmd/ack"
    assert topics.parse("dnnprof/v1/b1/cmd/ack").kind == "cmd/ack"


def test_all_boards_subscription_covers_every_topic():
    assert topics.ALL_BOARDS == "dnnprof/v1/+/#"


id_strategy = st.from_regex(r"\A[a-z0-9][a-z0-9-]{0,62}\Z")


@given(board=id_strategy, kind=st.sampled_from(topics.KINDS), run_id=id_strategy)
def test_round_trip_property(board, kind, run_id):
    rid = run_id if kind == topics.RUN else None
    assert topics.parse(topics.topic(board, kind, rid)) == (board, kind, rid)


def test_topic_requires_run_id_for_run_only():
    with pytest.raises(ValueError):
        topics.topic("b1", topics.RUN)
    with pytest.raises(ValueError):
        topics.topic("b1", topics.STATUS, "r1")


def test_topic_rejects_unknown_kind_and_bad_ids():
    with pytest.raises(ValueError):
        topics.topic("b1", "results")
    with pytest.raises(UserError):
        topics.topic("B1", topics.STATUS)
    with pytest.raises(UserError):
        topics.topic("b/1", topics.STATUS)
    with pytest.raises(UserError):
        topics.topic("b1", topics.RUN, "run+1")


@pytest.mark.parametrize(
    "name",
    [
        "other/v1/b1/status",
        "dnnprof/v2/b1/status",
        "dnnprof/V1/b1/status",
        "Dnnprof/v1/b1/status",
        "dnnprof/b1/status",
        "dnnprof/v1/b1",
        "dnnprof/v1",
        "",
        "/dnnprof/v1/b1/status",
    ],
)
def test_parse_rejects_other_roots_and_versions(name):
    with pytest.raises(ValueError):
        topics.parse(name)


@pytest.mark.parametrize("board", ["+", "#", "B1", "-b1", "", "b_1", "a" * 64, "b1\n", "jétson"])
def test_parse_rejects_wildcard_and_invalid_board_ids(board):
    with pytest.raises(ValueError, match="invalid board id"):
        topics.parse(f"dnnprof/v1/{board}/status")


@pytest.mark.parametrize(
    "tail",
    ["results", "Status", "run", "run/", "run/Bad", "run/a/b", "run/+", "run/#", "cmd/nack", "cmd/ack/x",
     "status/extra", "", "#", "+"],
)
def test_parse_rejects_unknown_kinds(tail):
    with pytest.raises(ValueError):
        topics.parse(f"dnnprof/v1/b1/{tail}")


@given(name=st.text(max_size=60))
def test_parse_arbitrary_text_gives_topic_or_value_error(name):
    try:
        parsed = topics.parse(name)
    except ValueError:
        return
    assert topics.topic(parsed.board, parsed.kind, parsed.run_id) == name


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ("Jetson_Orin.local", "jetson-orin-local"),
        ("raspberrypi", "raspberrypi"),
        ("  My  Board #1  ", "my-board-1"),
        ("--x--", "x"),
        ("", "board"),
        ("___", "board"),
        ("ÄÖÜ", "board"),
        ("a" * 100, "a" * 63),
        ("a" * 62 + "-b", "a" * 62),  # cut at 63 leaves a trailing "-", which is stripped
    ],
)
def test_slug(text, expected):
    assert topics.slug(text) == expected


@given(text=st.text(max_size=200))
def test_slug_always_gives_a_valid_id(text):
    assert topics.check_id(topics.slug(text)) == topics.slug(text)


@pytest.mark.parametrize("value", ["b", "0", "jetson-orin-1", "a" * 63, "1-2-3", "a-"])
def test_check_id_accepts(value):
    assert topics.check_id(value) == value


@pytest.mark.parametrize("value", ["", "-a", "A", "a_b", "a.b", "a b", "a/b", "a+b", "a#b", "a" * 64, "b1\n", None, 7])
def test_check_id_rejects_with_one_line(value):
    with pytest.raises(UserError) as info:
        topics.check_id(value)
    message = str(info.value)
    assert "board id" in message and "\n" not in message


def test_check_id_names_what_it_checks():
    with pytest.raises(UserError, match="run id"):
        topics.check_id("Bad", "run id")


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ("localhost", ("localhost", 1883)),
        ("192.168.1.10", ("192.168.1.10", 1883)),
        (" broker.lan ", ("broker.lan", 1883)),
        ("broker.lan:8883", ("broker.lan", 8883)),
        ("127.0.0.1:1", ("127.0.0.1", 1)),
        ("127.0.0.1:65535", ("127.0.0.1", 65535)),
        ("[::1]:1884", ("::1", 1884)),
        ("[::1]", ("::1", 1883)),
        ("[fe80::1%eth0]:1883", ("fe80::1%eth0", 1883)),
        ("::1", ("::1", 1883)),  # a bare IPv6 address has no port
    ],
)
def test_parse_broker(text, expected):
    assert topics.parse_broker(text) == expected


def test_parse_broker_default_port():
    assert topics.parse_broker("host", default_port=1884) == ("host", 1884)


@pytest.mark.parametrize(
    ("text", "words"),
    [
        ("host:0", "invalid port"),
        ("host:65536", "invalid port"),
        ("host:99999", "invalid port"),
        ("host:-1", "invalid port"),
        ("host:http", "invalid port"),
        ("host:18 83", "invalid port"),
        ("host:²", "invalid port"),  # str.isdigit() is True, int() fails
        ("host:١٨٨٣", "invalid port"),  # Arabic-Indic digits
        ("host:", "invalid port"),
        ("[::1]:", "invalid port"),
        ("[::1]:0", "invalid port"),
        ("[::1]x", "invalid port"),
        ("[::1]1883", "invalid port"),
        (":1883", "no host"),
        ("", "no host"),
        ("   ", "no host"),
        ("[]:1883", "no host"),
    ],
)
def test_parse_broker_rejects(text, words):
    with pytest.raises(UserError) as info:
        topics.parse_broker(text)
    message = str(info.value)
    assert words in message and "\n" not in message


@given(text=st.text(max_size=40))
def test_parse_broker_arbitrary_text_gives_address_or_user_error(text):
    try:
        host, port = topics.parse_broker(text)
    except UserError as exc:
        assert "\n" not in str(exc)
    else:
        assert host and 0 < port < 65536


# Topic levels close to valid ones: ids, kinds, wildcards, separators, NUL, case and non-ASCII look-alikes.
_levels = st.sampled_from(["dnnprof", "v1", "v2", "b1", "board-a", "run", "run-1", "status", "result", "info",
                           "telemetry", "cmd", "ack", "+", "#", "", " ", "\x00", "B1", "bøard", "a" * 64, "b1\n",
                           "-b1", "dnnprof/v1"]) | st.text(st.characters(codec=None, exclude_categories=()), max_size=8)


@settings(max_examples=200, deadline=None)
@given(levels=st.lists(_levels, max_size=7), prefixed=st.booleans())
def test_fuzz_parse_near_valid_topics_gives_topic_or_value_error(levels, prefixed):
    name = "/".join((["dnnprof", "v1"] if prefixed else []) + levels)
    try:
        parsed = topics.parse(name)
    except ValueError as exc:
        assert str(exc)
        return
    # Whatever parses is a topic the scheme builds, with ids free of wildcards and separators.
    assert topics.topic(parsed.board, parsed.kind, parsed.run_id) == name
    assert not {"+", "#", "\x00"} & set(parsed.board + (parsed.run_id or ""))
