"""Facts about the machine, read from recorded /proc files (tests/data/board) through the root parameter."""

import os
import socket
from pathlib import Path

import pytest

from dnnprof.agent.board import facts as board
from dnnprof.shared import schema, topics

DATA = Path(__file__).parents[2] / "data" / "board"
X86 = DATA / "x86-desktop"
ORIN = DATA / "jetson-orin-nano"  # arm64, no "model name", no "Hardware"
PI = DATA / "raspberry-pi-4"  # arm64, "Hardware" and "Model", no "model name"


def test_cpu_model_x86():
    assert board.cpu_model(X86) == "Intel(R) Core(TM) i5-7500 CPU @ 3.40GHz"
    assert board.cpu_model(str(X86)) == "Intel(R) Core(TM) i5-7500 CPU @ 3.40GHz"


def test_cpu_model_arm_with_model_line():
    assert board.cpu_model(PI) == "Raspberry Pi 4 Model B Rev 1.4"  # Model before Hardware


def test_cpu_model_arm_without_any_name_is_unknown():
    # an Orin's cpuinfo names no model at all: unknown is None, never a made-up string
    assert "model name" not in (ORIN / "proc/cpuinfo").read_text()
    assert board.cpu_model(ORIN) is None


def test_cpu_model_hardware_line_only(tmp_path):
    (tmp_path / "proc").mkdir()
    (tmp_path / "proc/cpuinfo").write_text("processor\t: 0\nHardware\t: Qualcomm Technologies, Inc SM8250\n")
    assert board.cpu_model(tmp_path) == "Qualcomm Technologies, Inc SM8250"


def test_cpu_model_empty_value_is_skipped(tmp_path):
    (tmp_path / "proc").mkdir()
    (tmp_path / "proc/cpuinfo").write_text("model name\t:\nHardware\t: BCM2711\n")
    assert board.cpu_model(tmp_path) == "BCM2711"


def test_cpu_model_missing_file(tmp_path):
    assert board.cpu_model(tmp_path) is None


@pytest.mark.parametrize(("root", "kib"), [(X86, 16289860), (ORIN, 7620180), (PI, 3884332)])
def test_memory_total_bytes(root, kib):
    assert board.memory_total_bytes(root) == kib * 1024  # "kB" in meminfo means KiB


@pytest.mark.parametrize("text", ["MemFree: 1 kB\n", "MemTotal: lots kB\n", "MemTotal:\n", ""])
def test_memory_total_unreadable_is_none(tmp_path, text):
    (tmp_path / "proc").mkdir()
    (tmp_path / "proc/meminfo").write_text(text)
    assert board.memory_total_bytes(tmp_path) is None


def test_memory_total_missing_file(tmp_path):
    assert board.memory_total_bytes(tmp_path) is None


def test_real_machine():
    assert board.memory_total_bytes() > 0
    assert board.cpu_model() is None or board.cpu_model().strip()


def test_default_board_id_is_a_valid_id():
    board_id = board.default_board_id()
    assert topics.check_id(board_id) == board_id
    assert board_id == topics.slug(socket.gethostname())


@pytest.mark.parametrize("root", [X86, ORIN])
def test_info_is_a_valid_board_info(root):
    facts = board.info("bench-1", backends={"onnxruntime": "1.17.1"}, power_source="estimate",
                       power_boundary="estimate", power_estimated=True, session=9, root=root)
    assert isinstance(facts, schema.BoardInfo)
    assert facts.board == "bench-1" and facts.session == 9
    assert facts.cpu_model == board.cpu_model(root)
    assert facts.memory_total_bytes == board.memory_total_bytes(root)
    assert facts.cpu_count == (os.cpu_count() or 1)
    assert facts.hostname == socket.gethostname()
    assert facts.backends == {"onnxruntime": "1.17.1"}
    assert facts.power_estimated is True
    assert facts.agent_version == board.agent_version() != ""
    assert schema.decode(schema.encode(facts)) == facts


def test_info_without_power_or_proc(tmp_path):
    facts = board.info("bench-2", backends={}, power_source=None, power_boundary=None, power_estimated=False,
                       root=tmp_path)
    assert facts.cpu_model is None and facts.memory_total_bytes is None
    assert facts.power_source is None
    assert schema.decode(schema.encode(facts)) == facts


# --- Jetson facts (recorded trees in tests/data/jetson) -----------------------------------------------------------

JETSON = Path(__file__).parents[2] / "data" / "jetson"


def test_info_carries_the_jetson_facts():
    root = JETSON / "orin-nano-jp6"
    info = board.info("orin-1", backends={"onnxruntime": "1.17.1"}, power_source=None, power_boundary=None,
                      power_estimated=False, root=root)
    assert info.facts == board.jetson_facts(root)
    assert info.facts.model == "NVIDIA Jetson Orin Nano Engineering Reference Developer Kit Super"
    assert (info.facts.power_mode, info.facts.power_mode_id, info.facts.jetson_clocks) == ("15W", 0, False)
    assert info.facts.tensorrt == "10.3.0.30"  # from the packages: ONNX Runtime knows no TensorRT version
    assert schema.decode(schema.encode(info)) == info


def test_info_takes_the_tensorrt_version_from_the_tensorrt_backend():
    info = board.info("orin-1", backends={"tensorrt": "10.3.0"}, power_source=None, power_boundary=None,
                      power_estimated=False, root=JETSON / "orin-nano-jp6")
    assert info.facts.tensorrt == "10.3.0"


def test_info_has_no_facts_off_a_jetson(tmp_path):
    for root in (X86, ORIN, tmp_path):  # ORIN: an Orin's /proc without its device tree or release file
        info = board.info("bench-3", backends={}, power_source=None, power_boundary=None, power_estimated=False,
                          root=root)
        assert info.facts is None
        assert schema.to_builtins(info)["facts"] is None


def test_info_facts_given_or_withheld():
    given = schema.BoardFacts(model="given", dla_cores=1)
    kw = dict(backends={}, power_source=None, power_boundary=None, power_estimated=False, root=JETSON / "nano-jp4")
    assert board.info("b", facts=given, **kw).facts is given
    assert board.info("b", facts=None, **kw).facts is None
