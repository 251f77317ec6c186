"""The wire format: every message round-trips, and decode rejects anything else with a one-line SchemaError."""

import json
from pathlib import Path

import msgspec
import msgspec.structs
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from dnnprof.shared import schema
from dnnprof.shared.schema import SchemaError

TS = 1718092245.125


def status() -> schema.Status:
    return schema.Status(board="jetson-orin-1", ts=TS, state="lost", session=1718092245125)


def board_info() -> schema.BoardInfo:
    return schema.BoardInfo(
        board="jetson-orin-1", ts=TS, hostname="jetson-orin-1.local", os="Linux-5.15.136-tegra-aarch64-with-glibc2.35",
        arch="aarch64", cpu_model="ARMv8 Processor rev 1 (v8l)", cpu_count=6, memory_total_bytes=7_802_064_896,
        python="3.10.12", agent_version="0.1.0", backends={"onnxruntime": "1.17.1", "tensorrt": "8.6.2"},
        power_source="estimate", power_boundary="estimate", power_estimated=True, session=3,
    )


def run_event() -> schema.RunEvent:
    return schema.RunEvent(board="jetson-orin-1", ts=TS, run_id="20240611-081045-a1b2c3", seq=4, event="failed",
                           points_total=8, points_done=3, network="resnet18", batch=4,
                           message="UserError: onnxruntime cannot load resnet18.onnx",
                           stream=schema.Stream(id=1718092000000, seq=17))


def result() -> schema.Result:
    return schema.Result(
        id="0123456789abcdef0123456789abcdef", board="jetson-orin-1", ts=TS, run_id="20240611-081045-a1b2c3",
        network="resnet18", model_sha256="ab" * 32, input_shape=[3, 224, 224], backend="onnxruntime",
        backend_version="1.17.1", device="cpu", precision="fp32", batch=4, threads=6, warmup_s=0.52,
        warmup_iterations=9, window_s=2.01, iterations=40, images=160,
        latency_ms=schema.Latency(mean=50.2, stdev=1.5, p50=50.0, p90=52.0, p95=53.0, p99=55.5, min=48.1, max=56.0),
        throughput_ips=79.6, power_w=7.25, energy_j=14.57,
        energy_per_inference_j=schema.EnergyPerInference(gross=0.0911, net=-0.002),
        provenance=schema.Provenance(power_source="rapl", boundary="cpu_package", estimated=False,
                                     sample_rate_hz=98.5, samples=198, rails=["package-0", "package-1"],
                                     method="counter difference", power_mode="MAXN", clocks="jetson_clocks"),
    )


def telemetry() -> schema.Telemetry:
    return schema.Telemetry(board="jetson-orin-1", ts=TS, seq=12, t0=TS - 1.0, dt_s=0.01,
                            power_w=[5.5, 5.75, 6.0, 0.0], power_source="ina3221", estimated=False)


def command() -> schema.Command:
    return schema.Command(board="jetson-orin-1", ts=TS, id="c0ffee12", action="replay", stream=1718092000000,
                          first=3, last=9)


def command_ack() -> schema.CommandAck:
    return schema.CommandAck(board="jetson-orin-1", ts=TS, id="c0ffee12", accepted=True, replayed=5,
                             unavailable=[[3, 4]])


def failure() -> schema.Failure:
    return schema.Failure(board="jetson-orin-1", ts=TS, id="f" * 32, run_id="run-1", network="vgg16",
                          model_sha256="a" * 64, backend="tensorrt", backend_version="10.3.0", device="dla0",
                          precision="int8", batch=64, power_mode="15W", clocks="jetson_clocks off",
                          error="out_of_memory", stage="not_run", message="not run: vgg16 b=32 int8 ran out of memory",
                          cause="vgg16 b=32 int8", elapsed_s=0.0, stream=schema.Stream(id=1, seq=7))


def sweep_command() -> schema.Command:
    return schema.Command(board="jetson-orin-1", ts=TS, id="sweep-start-1", action="sweep_start",
                          models=["resnet50.onnx", "vgg16.onnx"], batches=[1, 8], precisions=["fp16"],
                          power_mode="MAXN", retry_failed=True, redo=False, run_id=None)


def sweep_ack() -> schema.CommandAck:
    running = schema.SweepPoint(run_id="run-2", origin="host", command_id="sweep-start-1", state="cancelling",
                                networks=["resnet50"], batches=[1, 8], precisions=["fp16"], points_total=2,
                                points_done=1, failed=1, current="resnet50 b=8 fp16", started_ts=TS)
    queued = schema.SweepPoint(run_id="run-3", origin="host", state="queued", networks=["vgg16"], batches=[1],
                               precisions=["fp32"], points_total=1, queued_ts=TS)
    return schema.CommandAck(board="jetson-orin-1", ts=TS, id="sweep-status-1", accepted=True, run_id="run-2",
                             sweep=schema.SweepState(running=running, queue=[queued], power_mode="MAXN"))


MESSAGES = {"status": status, "info": board_info, "run": run_event, "result": result, "failure": failure,
            "telemetry": telemetry, "cmd": command, "cmd/ack": command_ack}
SWEEP_MESSAGES = {"cmd": sweep_command, "cmd/ack": sweep_ack}


@pytest.mark.parametrize("kind", sorted(SWEEP_MESSAGES))
def test_sweep_commands_and_their_answers_round_trip(kind):
    message = SWEEP_MESSAGES[kind]()
    assert schema.decode(schema.encode(message)) == message


def valid(kind: str) -> dict:
    """A valid payload of ``kind`` as a plain dict, to break one field at a time."""
    return json.loads(schema.encode(MESSAGES[kind]()))


@pytest.mark.parametrize("kind", sorted(MESSAGES))
def test_round_trip_with_all_fields(kind):
    message = MESSAGES[kind]()
    payload = schema.encode(message)
    assert isinstance(payload, bytes)
    decoded = schema.decode(payload)
    assert decoded == message
    assert type(decoded) is type(message)
    assert schema.decode(payload.decode()) == message  # str works as well as bytes
    data = json.loads(payload)
    assert data["kind"] == kind == schema.KIND_OF[type(message)]
    assert data["schema"] == schema.SCHEMA_VERSION
    assert schema.to_builtins(message) == data


def test_every_message_type_is_covered():
    assert set(schema.KIND_OF.values()) == set(MESSAGES)


def test_not_measured_stays_none_through_the_wire():
    message = result()
    message.power_w = None
    message.energy_j = None
    message.energy_per_inference_j = None
    message.provenance = schema.Provenance(power_source=None, boundary=None, estimated=False)
    decoded = schema.decode(schema.encode(message))
    assert decoded.power_w is None and decoded.energy_j is None and decoded.energy_per_inference_j is None
    data = json.loads(schema.encode(message))
    assert data["power_w"] is None and data["energy_j"] is None  # null, never 0


def test_optional_fields_take_defaults():
    data = valid("info")
    for key in ("cpu_model", "memory_total_bytes", "backends", "power_source", "power_boundary",
                "power_estimated", "session"):
        del data[key]
    info = schema.decode(json.dumps(data))
    assert info.cpu_model is None and info.memory_total_bytes is None and info.backends == {}
    assert info.power_estimated is False and info.session == 0


def test_conditions_frequencies_and_throttle_reasons():
    # a result without them (an older agent) decodes with empty defaults
    data = valid("result")
    data["conditions"] = {"power_mode": "15W", "throttle_events": 0}
    old = schema.decode(json.dumps(data))
    assert old.conditions.frequencies_mhz == {} and old.conditions.frequencies_unreadable == []
    assert old.conditions.throttle_reasons == []
    # with them, they round-trip
    data["conditions"] |= {"frequencies_mhz": {"cpu0-3": {"min": 729.6, "mean": 1100.25, "max": 1497.6, "samples": 21},
                                               "gpu": {"min": 306.0, "mean": 306.0, "max": 306.0, "samples": 21}},
                           "frequencies_unreadable": ["emc"], "throttle_reasons": ["soctherm_oc2"]}
    new = schema.decode(json.dumps(data))
    assert new.conditions.frequencies_mhz["cpu0-3"] == schema.FrequencyFigures(min=729.6, mean=1100.25, max=1497.6,
                                                                                samples=21)
    assert schema.decode(schema.encode(new)) == new
    # a frequency is never negative and a figure has at least one reading
    for bad in ({"min": -1.0, "mean": 1.0, "max": 1.0, "samples": 1},
                {"min": 1.0, "mean": 1.0, "max": 1.0, "samples": 0}):
        data["conditions"]["frequencies_mhz"] = {"gpu": bad}
        assert "frequencies_mhz" in _reject(json.dumps(data))


def test_constructing_another_schema_version_fails():
    with pytest.raises(ValueError):
        schema.Status(schema=2, board="b", ts=TS, state="online", session=0)


def _reject(payload) -> str:
    with pytest.raises(SchemaError) as info:
        schema.decode(payload)
    message = str(info.value)
    assert message and "\n" not in message
    return message


@pytest.mark.parametrize(
    "payload",
    [b"", b"{", b"not json", b'{"kind": "status",}', b"\xff\xfe", b"[1, 2", "{'kind': 'status'}", b"NaN"],
)
def test_rejects_malformed_json(payload):
    _reject(payload)


@pytest.mark.parametrize("payload", [b"null", b"[]", b"42", b'"status"', b"true"])
def test_rejects_json_that_is_not_an_object(payload):
    _reject(payload)


def test_rejects_missing_kind():
    data = valid("status")
    del data["kind"]
    assert "kind" in _reject(json.dumps(data))


@pytest.mark.parametrize("kind", ["cmd", "Status", "", "results", 1, None])
def test_rejects_unknown_kind(kind):
    data = valid("status")
    data["kind"] = kind
    _reject(json.dumps(data))


@pytest.mark.parametrize("kind", sorted(MESSAGES))
@pytest.mark.parametrize("version", [0, 2, 99])
def test_rejects_other_schema_versions(kind, version):
    data = valid(kind)
    data["schema"] = version
    assert "schema version" in _reject(json.dumps(data))


def test_rejects_schema_version_of_wrong_type():
    data = valid("status")
    data["schema"] = "1"
    _reject(json.dumps(data))


@pytest.mark.parametrize(
    "board",
    ["a+b", "+", "#", "board/1", "a/b", "Jetson", "BOARD", "-board", "", "a" * 64, "a b", "a_b", "a.b",
     "board\n", "jetson\u00e9"],
)
@pytest.mark.parametrize("kind", sorted(MESSAGES))
def test_rejects_invalid_board_ids(kind, board):
    data = valid(kind)
    data["board"] = board
    _reject(json.dumps(data))


@pytest.mark.parametrize("run_id", ["Run-1", "a/b", "#", "+", "", "x\n"])
def test_rejects_invalid_run_ids(run_id):
    for kind in ("run", "result"):
        data = valid(kind)
        data["run_id"] = run_id
        _reject(json.dumps(data))


def test_accepts_longest_board_id():
    data = valid("status")
    data["board"] = "a" * 63
    assert schema.decode(json.dumps(data)).board == "a" * 63


@pytest.mark.parametrize(
    ("kind", "field", "value"),
    [
        ("status", "ts", "yesterday"),
        ("status", "session", 1.5),
        ("status", "session", "3"),
        ("status", "board", 7),
        ("info", "cpu_count", "6"),
        ("info", "backends", ["onnxruntime"]),
        ("info", "power_estimated", "yes"),
        ("run", "seq", None),
        ("run", "batch", "4"),
        ("result", "input_shape", "3x224x224"),
        ("result", "latency_ms", 50.2),
        ("result", "iterations", 10.5),
        ("result", "provenance", None),
        ("telemetry", "power_w", 5.0),
        ("telemetry", "power_w", [1.0, "2"]),
    ],
)
def test_rejects_wrong_types(kind, field, value):
    data = valid(kind)
    data[field] = value
    _reject(json.dumps(data))


@pytest.mark.parametrize(
    ("kind", "path", "value"),
    [
        ("result", ("energy_j",), -0.1),
        ("result", ("power_w",), -1.0),
        ("result", ("energy_per_inference_j", "gross"), -1e-9),
        ("result", ("throughput_ips",), -5.0),
        ("result", ("latency_ms", "p99"), -1.0),
        ("result", ("provenance", "sample_rate_hz"), -1.0),
        ("telemetry", ("power_w",), [1.0, -0.5]),
        ("telemetry", ("dt_s",), -0.01),
        ("result", ("batch",), 0),
        ("result", ("images",), 0),
        ("info", ("cpu_count",), 0),
        ("status", ("session",), -1),
        ("run", ("points_done",), -1),
    ],
)
def test_rejects_negative_energies_and_counts(kind, path, value):
    data = valid(kind)
    target = data
    for key in path[:-1]:
        target = target[key]
    target[path[-1]] = value
    _reject(json.dumps(data))


@pytest.mark.parametrize(
    ("kind", "field", "value"),
    [
        ("status", "state", "zombie"),
        ("status", "state", "Online"),
        ("status", "state", ""),
        ("run", "event", "paused"),
        ("run", "event", "FINISHED"),
    ],
)
def test_rejects_enum_values_out_of_range(kind, field, value):
    data = valid(kind)
    data[field] = value
    _reject(json.dumps(data))


def test_rejects_missing_required_field():
    data = valid("result")
    del data["latency_ms"]
    assert "latency_ms" in _reject(json.dumps(data))


def test_rejects_result_id_of_bad_shape():
    for bad in ("short", "has space in it", "x" * 129, "abcdefgh\n"):
        data = valid("result")
        data["id"] = bad
        _reject(json.dumps(data))


def test_schema_error_is_a_value_error():
    assert issubclass(SchemaError, ValueError)


@settings(max_examples=300, suppress_health_check=[HealthCheck.too_slow])
@given(payload=st.binary(max_size=512))
def test_fuzz_arbitrary_bytes_decode_or_schema_error(payload):
    try:
        message = schema.decode(payload)
    except SchemaError as exc:
        assert "\n" not in str(exc)
    else:
        assert type(message) in schema.KIND_OF


json_values = st.recursive(
    st.none() | st.booleans() | st.integers() | st.floats(allow_nan=False, allow_infinity=False) | st.text(max_size=20),
    lambda children: st.lists(children, max_size=4) | st.dictionaries(st.text(max_size=10), children, max_size=4),
    max_leaves=20,
)


@st.composite
def near_valid_payloads(draw):
    """A valid message with a few fields replaced, dropped or added: reaches the field validators."""
    data = valid(draw(st.sampled_from(sorted(MESSAGES))))
    for _ in range(draw(st.integers(min_value=0, max_value=3))):
        key = draw(st.sampled_from(sorted(data) + ["extra"]))
        if draw(st.booleans()):
            data[key] = draw(json_values)
        else:
            data.pop(key, None)
    return json.dumps(data).encode()


@settings(max_examples=300, suppress_health_check=[HealthCheck.too_slow])
@given(payload=near_valid_payloads())
def test_fuzz_near_valid_messages_decode_or_schema_error(payload):
    try:
        message = schema.decode(payload)
    except SchemaError as exc:
        assert "\n" not in str(exc)
    else:
        # whatever decodes must encode back to an equal message
        assert schema.decode(schema.encode(message)) == message


def _decode_or_schema_error(payload) -> None:
    """The decoder's contract on any input: a message, or SchemaError with a one-line reason — nothing else."""
    try:
        message = schema.decode(payload)
    except SchemaError as exc:
        assert str(exc) and "\n" not in str(exc)
    else:
        assert type(message) in schema.KIND_OF


# Every Unicode code point, lone surrogates included: decode() also takes str, and a str may hold what no UTF-8
# byte string can.
any_text = st.text(st.characters(codec=None, exclude_categories=()), max_size=200)


@settings(max_examples=200, deadline=None)
@given(payload=any_text)
def test_fuzz_arbitrary_text_decode_or_schema_error(payload):
    _decode_or_schema_error(payload)


def test_regression_lone_surrogate_in_text_is_a_schema_error():
    """Found probing, and by the text fuzz test above: decode('{"kind": "status", "board": "\\ud800"}') (a str
    with a lone surrogate) raised UnicodeEncodeError."""
    assert "not valid Unicode" in _reject('{"kind": "status", "board": "\ud800"}')
    _reject("\ud800")


# Values close to what a broken or hostile agent sends: wrong types, numbers no field can hold, NaN and infinity
# both as JSON's non-standard tokens and as text, and nesting where a scalar belongs.
odd_scalars = (
    st.none() | st.booleans() | st.integers() | st.integers(min_value=2**63 - 2, max_value=2**70)
    | st.integers(min_value=-(2**70), max_value=-(2**63) + 2) | st.floats()
    | st.sampled_from(["NaN", "nan", "inf", "-inf", "Infinity", "-Infinity", "1e999", "0x10", "", " ", "null",
                       "\u0000", "board+a", "#", "online", "result"])
    | st.text(max_size=30)
)
junk = st.recursive(odd_scalars, lambda children: st.lists(children, max_size=3)
                    | st.dictionaries(st.text(max_size=8), children, max_size=3), max_leaves=12)


@st.composite
def mutated_payloads(draw):
    """A valid message with fields, nested fields included, replaced by junk, dropped, or with ``kind``,
    ``schema`` and ``board`` broken; serialised with NaN/Infinity tokens and, sometimes, a raw huge number."""
    data = valid(draw(st.sampled_from(sorted(MESSAGES))))
    for _ in range(draw(st.integers(min_value=1, max_value=4))):
        target = data
        while True:  # walk into a nested object now and then
            nested = [k for k, v in target.items() if isinstance(v, dict) and v]
            if not nested or not draw(st.booleans()):
                break
            target = target[draw(st.sampled_from(sorted(nested)))]
        key = draw(st.sampled_from(sorted(target) + ["kind", "schema", "board", "extra"]))
        action = draw(st.sampled_from(["replace", "drop", "wrap"]))
        if action == "replace":
            target[key] = draw(junk)
        elif action == "drop":
            target.pop(key, None)
        else:  # the right value, one level too deep
            target[key] = [target.get(key)]
    text = json.dumps(data)  # allow_nan: NaN and Infinity come out as bare tokens, which JSON forbids
    if draw(st.booleans()):  # a number no float or int64 holds, in place of the first number
        text = text.replace(": 1", ": " + draw(st.sampled_from(["1e999", "-1e999", "9" * 400, "1" + "0" * 40])), 1)
    return text.encode()


@settings(max_examples=200, deadline=None)
@given(payload=mutated_payloads())
def test_fuzz_mutated_messages_decode_or_schema_error(payload):
    _decode_or_schema_error(payload)


def test_regression_deep_nesting_is_a_schema_error():
    """Found by fuzzing: decode('{"a":' * 1993) raised RecursionError (msgspec recurses into the unknown field it
    skips), which is no ValueError: it ended the collector's writer thread and gave `dnnhost import` a traceback."""
    assert "nested too deeply" in _reject('{"a":' * 1993)
    assert "nested too deeply" in _reject(b'{"kind": "result", "extra": ' + b"[" * 100_000)


@settings(max_examples=50, deadline=None)
@given(depth=st.integers(min_value=1, max_value=100_000), opener=st.sampled_from(["[", '{"a":', '{"kind":"result",'
                                                                                   '"latency_ms":']))
def test_fuzz_deep_nesting_decode_or_schema_error(depth, opener):
    _decode_or_schema_error(opener * depth)


def test_decoder_is_strict_msgspec():
    # decode raises SchemaError, not msgspec's own exception types
    with pytest.raises(SchemaError):
        schema.decode(b"{}")
    assert not issubclass(msgspec.ValidationError, SchemaError)


def test_machine_names_a_jetson_by_its_model_and_jetpack_else_the_cpu_else_the_host():
    base = dict(board="b", ts=1.0, hostname="host-1", os="Linux", arch="aarch64", cpu_count=6, python="3.10",
                agent_version="0.1.0")
    jetson = schema.BoardInfo(**base, cpu_model="ARMv8", facts=schema.BoardFacts(
        model="NVIDIA Jetson Orin Nano Developer Kit", jetpack="6.2", power_mode="15W"))
    assert schema.machine(jetson) == "NVIDIA Jetson Orin Nano Developer Kit (JetPack 6.2)"
    no_jetpack = msgspec.structs.replace(jetson, facts=schema.BoardFacts(model="NVIDIA Jetson Nano"))
    assert schema.machine(no_jetpack) == "NVIDIA Jetson Nano"
    assert schema.machine(schema.BoardInfo(**base, cpu_model="AMD EPYC")) == "AMD EPYC"
    assert schema.machine(schema.BoardInfo(**base)) == "host-1"
    assert schema.machine(None) is None
    round_trip = schema.decode(schema.encode(jetson))
    assert round_trip.facts == jetson.facts


def test_an_integer_sqlite_cannot_hold_is_refused_naming_its_field():
    message = schema.to_builtins(schema.RunEvent(board="b", ts=1.0, run_id="r", seq=0, event="started",
                                                 points_total=1, points_done=0))
    message["points_total"] = 10**30
    with pytest.raises(schema.SchemaError, match=r"points_total"):
        schema.decode(json.dumps(message))


def test_a_result_from_before_activation_bytes_still_decodes():
    """Results recorded by an agent that did not count activation bytes (docs/examples, 2026-11-26) decode with
    ``activation_bytes`` None, and the new field round-trips."""
    line = next(line for line in (Path(__file__).parents[2] / "docs/examples/dev-2c-zoo-results.jsonl")
                .read_text().splitlines() if '"kind":"result"' in line)
    old = schema.decode(line.encode())
    assert old.model_cost.activation_bytes is None and old.model_cost.macs > 0
    new = msgspec.structs.replace(old, model_cost=msgspec.structs.replace(old.model_cost, activation_bytes=4_300_000))
    assert schema.decode(schema.encode(new)).model_cost.activation_bytes == 4_300_000
