"""nvpmodel configurations: every mode with its CPUs, clock caps (kHz for CPUs, Hz for the rest) and GPU gating,
read from the transcribed R35.3.1 files (tests/data/jetson/nvpmodel/README.md) and the recorded trees."""

from pathlib import Path

import pytest

from dnnprof.agent.board import nvpmodel

DATA = Path(__file__).parents[2] / "data" / "jetson"


@pytest.fixture(scope="module")
def agx():
    return nvpmodel.parse((DATA / "nvpmodel" / "agx-orin-p3701_0000.conf").read_text())


def test_every_mode_with_its_default(agx):
    assert [(m.id, m.name, m.default) for m in agx.modes.values()] == [
        (0, "MAXN", False), (1, "MODE_15W", False), (2, "MODE_30W", True), (3, "MODE_50W", False)]
    assert agx.default == 2


def test_cpus_online_and_caps(agx):
    maxn, low, mid, fifty = (agx.modes[i] for i in range(4))
    assert maxn.cpus_online == tuple(range(12)) and low.cpus_online == (0, 1, 2, 3)
    assert mid.cpus_online == tuple(range(8))
    assert maxn.caps_hz() == {"CPU_A78_0": None, "CPU_A78_1": None, "CPU_A78_2": None, "GPU": None, "EMC": None}
    assert low.caps_hz() == {"CPU_A78_0": 1_113_600_000, "GPU": 408_000_000, "EMC": 2_133_000_000}
    assert fifty.to_dict()["caps_mhz"] == {"CPU_A78_0": 1497.6, "CPU_A78_1": 1497.6, "CPU_A78_2": 1497.6,
                                           "GPU": 816.0, "EMC": None}


def test_a_mode_with_other_gpu_gating_needs_a_reboot(agx):
    maxn, low, mid, fifty = (agx.modes[i] for i in range(4))
    assert (maxn.tpc_pg_mask, low.tpc_pg_mask, mid.tpc_pg_mask) == (0, 248, 240)
    assert not fifty.needs_reboot_from(maxn) and mid.needs_reboot_from(maxn) and low.needs_reboot_from(mid)
    assert not maxn.needs_reboot_from(None)


def test_find_by_id_or_name(agx):
    assert agx.find("3").name == "MODE_50W" and agx.find("mode_15w").id == 1 and agx.find("9") is None


def test_the_parameters_name_their_files(agx):
    assert agx.params["GPU"].type == "CLOCK"
    assert agx.params["CPU_A78_1"].files["MAX_FREQ"] == "/sys/devices/system/cpu/cpu4/cpufreq/scaling_max_freq"
    assert agx.params["CPU_ONLINE"].files["CORE_11"] == "/sys/devices/system/cpu/cpu11/online"


def test_the_orin_nano_modes_differ_in_gating():
    nano = nvpmodel.parse((DATA / "nvpmodel" / "orin-nano-p3767_0003.conf").read_text())
    fifteen, seven = nano.modes[0], nano.modes[1]
    assert seven.needs_reboot_from(fifteen) and seven.caps_hz()["CPU_A78_0"] == 960_000_000
    assert "CPU_A78_1" not in seven.caps_hz()  # its cores are offline in 7W: the file sets no cap for them


@pytest.mark.parametrize("board", ["orin-nano-jp6", "agx-orin-jp6", "xavier-nx-jp5", "nano-jp4"])
def test_the_recorded_trees(board):
    conf = nvpmodel.read(DATA / board)
    assert conf is not None and conf.modes and conf.default in conf.modes


def test_no_conf_off_a_jetson(tmp_path):
    assert nvpmodel.read(tmp_path) is None
    assert nvpmodel.parse("# nothing\n").modes == {}
