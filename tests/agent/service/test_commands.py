"""Commands a host sends: only valid ones are carried out — no path outside models_dir, no unknown model, no absurd
batch, no precision the backend lacks, nothing that is not a command — each refusal one line (real ONNX files)."""

from __future__ import annotations

import json
import os
import time

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from dnnprof.agent.service import commands
from dnnprof.agent.service.commands import Refused
from dnnprof.shared import schema

BOARD = "cmd-board"


def command(**fields) -> schema.Command:
    fields.setdefault("action", "measure")
    return schema.Command(board=BOARD, ts=time.time(), id="c1", **fields)


def payload(**fields) -> bytes:
    return schema.encode(command(**fields))


def measure(model_dir, **fields):
    return commands.check_measure(command(**fields), models_dir=model_dir, max_batch=64,
                                  precisions=("fp32",), default_precision="fp32")


def refusal(model_dir, **fields) -> str:
    with pytest.raises(Refused) as refused:
        measure(model_dir, **fields)
    reason = str(refused.value)
    assert "\n" not in reason and refused.value.command_id == "c1"
    return reason


def test_a_valid_measure_names_a_real_model_file(model_dir):
    name = sorted(p.name for p in model_dir.glob("*.onnx"))[0]
    point = measure(model_dir, model=name, batch=4)
    assert point.model.path == model_dir / name and point.batch == 4 and point.precision == "fp32"
    assert measure(model_dir, model=name, batch=1, precision="FP32").precision == "fp32"


@pytest.mark.parametrize("model, expected", [
    ("../outside.onnx", "unknown model: '../outside.onnx' is outside models_dir"),
    ("/etc/passwd", "unknown model: '/etc/passwd' is outside models_dir"),
    ("nosuch.onnx", "unknown model: 'nosuch.onnx': .* does not exist"),
    ("a\u0000b.onnx", "holds a NUL character"),
    ("", "is not a file name"),
])
def test_models_outside_the_directory_or_unknown_are_refused(model_dir, model, expected):
    import re
    assert re.search(expected, refusal(model_dir, model=model, batch=1))


def test_a_symlink_leading_outside_is_refused(tmp_path, model_dir):
    outside = tmp_path / "secret.onnx"
    outside.write_bytes(next(model_dir.glob("*.onnx")).read_bytes())
    local = tmp_path / "models"
    local.mkdir()
    os.symlink(outside, local / "link.onnx")
    assert "is outside models_dir" in refusal(local, model="link.onnx", batch=1)


def test_a_file_that_is_not_onnx_is_refused(tmp_path):
    (tmp_path / "garbage.onnx").write_bytes(b"\x08\x07 not a protobuf")
    reason = refusal(tmp_path, model="garbage.onnx", batch=1)
    assert "garbage.onnx" in reason


def test_absurd_batches_and_unknown_precisions_are_refused(model_dir):
    name = next(model_dir.glob("*.onnx")).name
    assert "batch 65 is over this agent's limit of 64 ([sweep] max_batch)" in refusal(model_dir, model=name,
                                                                                      batch=65)
    assert "batch 9223372036854775807" in refusal(model_dir, model=name, batch=2**63 - 1)
    assert "precision 'int8': this agent's backend runs fp32" in refusal(model_dir, model=name, batch=1,
                                                                         precision="int8")
    assert "measure needs model" in refusal(model_dir, batch=1)
    assert "measure needs model" in refusal(model_dir, model=name)


def test_a_fixed_batch_graph_refuses_another_batch(make_onnx, tmp_path):
    make_onnx(tmp_path / "fixed.onnx", batch=1)
    assert "fixed batch size of 1" in refusal(tmp_path, model="fixed.onnx", batch=2)


@pytest.mark.parametrize("raw, expected", [
    (b"not json", "not a valid command: JSON is malformed"),
    (b"{}", "not a valid command"),
    (json.dumps({"kind": "cmd", "schema": 1, "board": BOARD, "ts": 1.0, "id": "c1", "action": "shell",
                 "model": "rm -rf /"}).encode(), "not a valid command: Invalid enum value 'shell'"),
    (json.dumps({"kind": "cmd", "schema": 1, "board": BOARD, "ts": 1.0, "id": "c1", "action": "measure",
                 "batch": -1}).encode(), "not a valid command: Expected `int` >= 1"),
    (json.dumps({"kind": "cmd", "schema": 1, "board": BOARD, "ts": 1.0, "id": "c1", "action": "measure",
                 "model": "x" * 300}).encode(), "not a valid command: Expected `str` of length <= 255"),
    (json.dumps({"kind": "cmd", "schema": 1, "board": BOARD, "ts": 1.0, "id": "../../x",
                 "action": "replay"}).encode(), "not a valid command"),
    (schema.encode(schema.Status(board=BOARD, ts=1.0, state="online", session=1)), "'status' message is not a command"),
    (b"x" * (65 << 10), "command too large"),
])
def test_what_is_not_a_command_is_refused(raw, expected):
    with pytest.raises(Refused) as refused:
        commands.decode(BOARD, raw)
    assert expected in str(refused.value) and refused.value.command_id == "invalid"


def test_a_command_for_another_board_is_refused_with_its_id():
    with pytest.raises(Refused, match="addressed to board 'other', not 'cmd-board'") as refused:
        commands.decode(BOARD, schema.encode(schema.Command(board="other", ts=1.0, id="c9", action="replay")))
    assert refused.value.command_id == "c9"


def test_replay_ranges_are_checked():
    ok = commands.check_replay(command(action="replay", stream=5, first=3, last=9))
    assert ok == (5, 3, 9)
    for fields, expected in [({"stream": 5, "first": 3}, "replay needs stream, first and last"),
                             ({"stream": 5, "first": 9, "last": 3}, "is empty"),
                             ({"stream": 5, "first": 1, "last": 20_000}, "ask for at most 10000")]:
        with pytest.raises(Refused, match=expected):
            commands.check_replay(command(action="replay", **fields))


@settings(max_examples=300, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(st.one_of(st.binary(max_size=512),
                 st.dictionaries(st.sampled_from(["kind", "schema", "board", "ts", "id", "action", "stream", "first",
                                                  "last", "model", "batch", "precision"]),
                                 st.one_of(st.none(), st.integers(), st.text(max_size=40), st.floats(),
                                           st.sampled_from(["cmd", "replay", "measure", BOARD, 1]))).map(
                     lambda d: json.dumps(d).encode())))
def test_decode_refuses_or_returns_a_command_never_anything_else(raw):
    try:
        message = commands.decode(BOARD, raw)
    except Refused as exc:
        assert str(exc) and "\n" not in str(exc)
    else:
        assert isinstance(message, schema.Command) and message.board == BOARD


# --- sweep_start --------------------------------------------------------------------------------------------------


def check_sweep(model_dir, board_mode=None, **fields):
    return commands.check_sweep(command(action="sweep_start", **fields), models_dir=model_dir, max_batch=64,
                                precisions=("fp32", "fp16"), default_precision="fp32", power_mode=board_mode)


def sweep_refusal(model_dir, board_mode=None, **fields) -> str:
    with pytest.raises(Refused) as refused:
        check_sweep(model_dir, board_mode, **fields)
    assert "\n" not in str(refused.value) and refused.value.command_id == "c1"
    return str(refused.value)


def test_a_valid_sweep_start_names_real_models_and_dedupes(model_dir):
    name = sorted(p.name for p in model_dir.glob("*.onnx"))[0]
    request = check_sweep(model_dir, models=[name, name], batches=[4, 1, 4], precisions=["FP16", "fp32"],
                          retry_failed=True)
    assert [m.path for m in request.models] == [model_dir / name]
    assert (request.batches, request.precisions, request.retry_failed, request.redo) == ([4, 1], ["fp16", "fp32"],
                                                                                         True, False)
    assert request.words == "1 models x 2 batch sizes x 2 precisions = 4 points"
    assert check_sweep(model_dir, models=[name], batches=[1]).precisions == ["fp32"]  # the agent's first
    # A power mode is accepted only as the one the board runs (this agent does not switch modes).
    assert check_sweep(model_dir, "MAXN", models=[name], batches=[1], power_mode="maxn").models


@pytest.mark.parametrize("fields, power_mode, expected", [
    ({"models": [], "batches": [1]}, None, "sweep_start needs models"),
    ({"models": ["m.onnx"], "batches": []}, None, "sweep_start needs models .* and batches"),
    ({"models": ["../x.onnx"], "batches": [1]}, None, "model '../x.onnx': '../x.onnx' is outside models_dir"),
    ({"models": ["nosuch.onnx"], "batches": [1]}, None, "model 'nosuch.onnx': .* does not exist"),
    ({"models": ["{name}"], "batches": [1, 65]}, None, "batch 65 is over this agent's limit of 64"),
    ({"models": ["{name}"], "batches": [1], "precisions": ["int8"]}, None, "precision 'int8': this agent's backend "
                                                                          "runs fp32, fp16"),
    ({"models": ["{name}"], "batches": [1], "power_mode": "15W"}, "MAXN", "power mode '15W': this board runs power "
                                                                          "mode 'MAXN'"),
    ({"models": ["{name}"], "batches": [1], "power_mode": "15W"}, None, "this board has no nvpmodel power mode"),
])
def test_a_sweep_start_is_refused_for_each_bad_part(model_dir, fields, power_mode, expected):
    import re
    name = sorted(p.name for p in model_dir.glob("*.onnx"))[0]
    fields = {k: [x.format(name=name) if isinstance(x, str) else x for x in v] if isinstance(v, list) else v
              for k, v in fields.items()}
    assert re.search(expected, sweep_refusal(model_dir, power_mode, **fields))


def test_sweep_lists_are_bounded_by_the_schema():
    too_many = schema.encode(command(action="sweep_start", models=[f"m{i}.onnx" for i in range(65)], batches=[1]))
    with pytest.raises(Refused, match="not a valid command: Expected `array` of length <= 64"):
        commands.decode(BOARD, too_many)


def test_a_command_delivered_twice_is_carried_out_once_and_answered_the_same(tmp_path, model_dir):
    import types

    from dnnprof.agent.backends import get_backend
    from dnnprof.agent.service import config as agent_config
    from dnnprof.agent.service.outbox import Outbox
    from dnnprof.agent.service.runs import Conductor

    path = tmp_path / "agent.toml"
    path.write_text(f'[broker]\nhost = "127.0.0.1"\n[agent]\nboard_id = "{BOARD}"\nstate_dir = "{tmp_path}"\n'
                    f'models_dir = "{model_dir}"\n[sweep]\nbackend = "onnxruntime"\n')
    box = Outbox(tmp_path / "outbox.sqlite")
    try:
        tally = types.SimpleNamespace(commands=0, refused=0)
        desk = commands.Desk(agent_config.load(path), get_backend("onnxruntime"), tally, Conductor(box, lambda: None))
        name = sorted(p.name for p in model_dir.glob("*.onnx"))[0]
        start = payload(action="sweep_start", models=[name], batches=[1, 2])
        first = desk.answer(start)
        assert first.accepted and first.run_id
        assert desk.answer(start) == first  # the same answer, and one run queued
        assert len(box.queued_runs()) == 1 and tally.commands == 1
        cancel = schema.encode(schema.Command(board=BOARD, ts=time.time(), id="c2", action="sweep_cancel",
                                              run_id=first.run_id))
        assert desk.answer(cancel).accepted and desk.answer(cancel).accepted  # not "no such run" the second time
        assert box.queued_runs() == [] and tally.commands == 2 and tally.refused == 0
    finally:
        box.close()
