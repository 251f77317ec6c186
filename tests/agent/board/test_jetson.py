"""Jetson board facts read from the recorded trees in tests/data/jetson (see its README for where each file comes
from), and from small trees written here for the missing, garbled and odd cases."""

import shutil
import sys
from pathlib import Path

import pytest

from dnnprof.agent.board import clocks, jetson, sysfs
from dnnprof.agent.board import facts as board_facts
from dnnprof.shared import schema

DATA = Path(__file__).parents[2] / "data" / "jetson"
BOARDS = ["nano-jp4", "xavier-nx-jp5", "orin-nano-jp6", "agx-orin-jp6"]

EXPECTED = {
    "nano-jp4": schema.BoardFacts(
        model="NVIDIA Jetson Nano Developer Kit", soc="tegra210", l4t="32.7.1", jetpack="4.6.1", tensorrt="8.2.1",
        cuda="10.2.300", power_mode="MAXN", power_mode_id=0, jetson_clocks=True, dla_cores=0),
    "xavier-nx-jp5": schema.BoardFacts(
        model="NVIDIA Jetson Xavier NX Developer Kit", soc="tegra194", l4t="35.4.1", jetpack="5.1.2",
        tensorrt="8.5.2.2", cuda="11.4.19", power_mode="MODE_20W_6CORE", power_mode_id=8, jetson_clocks=False,
        dla_cores=2),
    "orin-nano-jp6": schema.BoardFacts(
        model="NVIDIA Jetson Orin Nano Engineering Reference Developer Kit Super", soc="tegra234", l4t="36.4.3",
        jetpack="6.2", tensorrt="10.3.0.30", cuda="12.6.11", power_mode="15W", power_mode_id=0, jetson_clocks=False,
        dla_cores=0),
    "agx-orin-jp6": schema.BoardFacts(
        model="NVIDIA Jetson AGX Orin Developer Kit", soc="tegra234", l4t="36.3.0", jetpack="6.0",
        tensorrt="8.6.2.3", cuda="12.2.140", power_mode="MAXN", power_mode_id=0, jetson_clocks=True, dla_cores=2),
}


@pytest.fixture
def board(tmp_path):
    """``board("orin-nano-jp6")`` copies that recorded tree into tmp_path (to change files) and returns its root."""

    def copy(name: str) -> Path:
        root = tmp_path / name
        shutil.copytree(DATA / name, root)
        return root

    return copy


def write(root: Path, relative: str, content: str | bytes) -> Path:
    path = root / relative
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_bytes(content if isinstance(content, bytes) else content.encode())
    return path


def tegra_tree(root: Path) -> Path:
    """The least a Jetson shows: a device tree compatible with nvidia,tegra234."""
    write(root, "proc/device-tree/compatible", b"nvidia,p3768-0000+p3767-0005\0nvidia,p3767-0005\0nvidia,tegra234\0")
    return root


def stanza(package: str, version: str, status: str = "install ok installed") -> str:
    return f"Package: {package}\nStatus: {status}\nArchitecture: arm64\nVersion: {version}\nDescription: x\n more\n"


# --- every reader on every recorded board -------------------------------------------------------------------------


@pytest.mark.parametrize("name", BOARDS)
def test_facts_of_each_recorded_board(name):
    facts = board_facts.jetson_facts(DATA / name)
    assert facts == EXPECTED[name]
    assert schema.decode(schema.encode(schema.BoardInfo(
        board="b", ts=0.0, hostname="h", os="o", arch="aarch64", cpu_count=1, python="3", agent_version="0",
        facts=facts))).facts == facts  # survives the wire format


@pytest.mark.parametrize("name", BOARDS)
def test_each_reader_on_each_board(name):
    root, want = DATA / name, EXPECTED[name]
    assert jetson.is_jetson(root) and jetson.is_jetson(str(root))
    assert jetson.model(root) == want.model
    assert jetson.soc(root) == want.soc
    assert jetson.l4t(root) == want.l4t
    assert jetson.jetpack(root) == want.jetpack
    assert jetson.tensorrt(root) == want.tensorrt
    assert jetson.cuda(root) == want.cuda
    assert clocks.power_mode(root) == (want.power_mode, want.power_mode_id)
    assert clocks.jetson_clocks(root) is want.jetson_clocks
    assert jetson.dla_cores(root) == want.dla_cores


def test_recorded_power_modes():
    assert clocks.power_modes(DATA / "orin-nano-jp6") == {0: "15W", 1: "25W", 2: "MAXN_SUPER", 3: "7W"}
    assert clocks.power_modes(DATA / "agx-orin-jp6") == {0: "MAXN", 1: "MODE_15W", 2: "MODE_30W", 3: "MODE_50W"}
    assert clocks.power_modes(DATA / "nano-jp4") == {0: "MAXN", 1: "5W"}
    modes = clocks.power_modes(DATA / "xavier-nx-jp5")
    assert len(modes) == 9 and modes[5] == "MODE_10W_DESKTOP"
    assert clocks.power_modes(DATA / "nowhere") == {}


# --- not a Jetson, and a Jetson container -------------------------------------------------------------------------


def test_not_a_jetson(tmp_path):
    assert jetson.is_jetson(tmp_path) is False
    assert board_facts.jetson_facts(tmp_path) is None
    assert clocks.jetson_clocks(tmp_path) is None and jetson.dla_cores(tmp_path) is None
    assert jetson.model(tmp_path) is None and jetson.soc(tmp_path) is None and jetson.l4t(tmp_path) is None
    assert clocks.power_mode(tmp_path) == (None, None)


def test_another_arm_board_is_not_a_jetson(tmp_path):
    write(tmp_path, "proc/device-tree/model", b"Raspberry Pi 4 Model B Rev 1.4\0")
    write(tmp_path, "proc/device-tree/compatible", b"raspberrypi,4-model-b\0brcm,bcm2711\0")
    # a Pi with cpufreq pinned by the performance governor is no Jetson with jetson_clocks on
    write(tmp_path, "sys/devices/system/cpu/cpu0/cpufreq/scaling_min_freq", "1500000\n")
    write(tmp_path, "sys/devices/system/cpu/cpu0/cpufreq/scaling_max_freq", "1500000\n")
    assert jetson.model(tmp_path) == "Raspberry Pi 4 Model B Rev 1.4" and jetson.soc(tmp_path) == "bcm2711"
    assert jetson.is_jetson(tmp_path) is False and board_facts.jetson_facts(tmp_path) is None
    assert clocks.jetson_clocks(tmp_path) is None and jetson.dla_cores(tmp_path) is None


def test_container_without_device_tree_is_a_jetson_by_its_release_file(tmp_path):
    # Docker masks /sys/firmware (so /proc/device-tree): an L4T image still has its release file and packages
    write(tmp_path, "etc/nv_tegra_release", "# R36 (release), REVISION: 4.3, GCID: 38968081, BOARD: generic\n")
    write(tmp_path, "var/lib/dpkg/status", stanza("libnvinfer10", "10.3.0.30-1+cuda12.5"))
    facts = board_facts.jetson_facts(tmp_path)
    assert facts == schema.BoardFacts(l4t="36.4.3", jetpack="6.2", tensorrt="10.3.0.30")  # the rest unknown
    assert facts.dla_cores is None and facts.jetson_clocks is None  # unknown, not 0 / False


# --- model, compatible, SoC: NUL handling and garbage -------------------------------------------------------------


@pytest.mark.parametrize("raw, expected", [
    (b"NVIDIA Jetson AGX Orin Developer Kit\0", "NVIDIA Jetson AGX Orin Developer Kit"),
    (b"NVIDIA Jetson AGX Orin Developer Kit", "NVIDIA Jetson AGX Orin Developer Kit"),  # no terminator
    (b"  NVIDIA Jetson Nano Developer Kit\n\0\0\0", "NVIDIA Jetson Nano Developer Kit"),  # padding
    (b"\0", None), (b"", None), (b" \n\0", None),
    (b"\xff\xfe\x00garbage", None),  # not text
])
def test_model_strips_nul_and_rejects_garbage(tmp_path, raw, expected):
    write(tmp_path, "proc/device-tree/model", raw)
    assert jetson.model(tmp_path) == expected


def test_model_and_compatible_from_sys_firmware(tmp_path):
    write(tmp_path, "sys/firmware/devicetree/base/model", b"NVIDIA Jetson AGX Thor Developer Kit\0")
    write(tmp_path, "sys/firmware/devicetree/base/compatible", b"nvidia,p3971-0080+p3834-0008\0nvidia,tegra264\0")
    assert jetson.model(tmp_path) == "NVIDIA Jetson AGX Thor Developer Kit"
    assert jetson.soc(tmp_path) == "tegra264" and jetson.is_jetson(tmp_path)


# Files as real boards printed them in public jetson-stats issues (`jtop --error-log` raw output; sources in
# tests/data/jetson/README.md). The pastes lost the NULs between compatible entries; they are put back here.
REAL_BOARD_FILES = {
    # rbonghi/jetson_stats#711 (2025-09-19): AGX Thor devkit, L4T 38.2.0
    "thor-jp70": {
        "sys/firmware/devicetree/base/model": b"NVIDIA Jetson AGX Thor Developer Kit\0",
        "proc/device-tree/compatible": b"nvidia,p4071-0000+p3834-0008\0nvidia,p3834-0008\0nvidia,tegra264\0",
        "etc/nv_tegra_release": "# R38 (release), REVISION: 2.0, GCID: 41844464, BOARD: generic, EABI: aarch64, "
                                "DATE: Fri Aug 22 00:55:42 UTC 2025\n",
    },
    # rbonghi/jetson_stats#864 (2026-06-04): AGX Orin devkit on JetPack 7.2; its compatible was cut at the first
    # entry by the paste, so it is left out (the SoC is the last entry)
    "agx-orin-jp72": {
        "sys/firmware/devicetree/base/model": b"NVIDIA Jetson AGX Orin Developer Kit\0",
        "etc/nv_tegra_release": "# R39 (release), REVISION: 2.0, GCID: 45755727, BOARD: generic, EABI: aarch64, "
                                "DATE: Mon Jun  1 09:28:48 PM UTC 2026\n",
    },
}


@pytest.mark.parametrize(("name", "model", "soc", "l4t", "jetpack"), [
    ("thor-jp70", "NVIDIA Jetson AGX Thor Developer Kit", "tegra264", "38.2.0", "7.0"),
    ("agx-orin-jp72", "NVIDIA Jetson AGX Orin Developer Kit", None, "39.2.0", "7.2"),
])
def test_real_board_files(tmp_path, name, model, soc, l4t, jetpack):
    for relative, content in REAL_BOARD_FILES[name].items():
        write(tmp_path, relative, content)
    assert jetson.is_jetson(tmp_path)
    assert jetson.model(tmp_path) == model
    assert jetson.soc(tmp_path) == soc
    assert jetson.l4t(tmp_path) == l4t and jetson.jetpack(tmp_path) == jetpack


def test_model_prefers_proc_and_falls_back_when_proc_is_empty(tmp_path):
    write(tmp_path, "sys/firmware/devicetree/base/model", b"from firmware\0")
    write(tmp_path, "proc/device-tree/model", b"\0")
    assert jetson.model(tmp_path) == "from firmware"
    write(tmp_path, "proc/device-tree/model", b"from proc\0")
    assert jetson.model(tmp_path) == "from proc"


@pytest.mark.parametrize("raw, items, soc", [
    (b"nvidia,p3768-0000+p3767-0005\0nvidia,p3767-0005\0nvidia,tegra234\0",
     ["nvidia,p3768-0000+p3767-0005", "nvidia,p3767-0005", "nvidia,tegra234"], "tegra234"),
    (b"nvidia,p3449-0000-b00+p3448-0000-b00\0nvidia,jetson-nano\0nvidia,tegra210", None, "tegra210"),  # no last NUL
    (b"nvidia,tegra194\0\0\0", ["nvidia,tegra194"], "tegra194"),
    (b"\0\0", None, None), (b"\xff\xfe", None, None),
])
def test_compatible_and_soc(tmp_path, raw, items, soc):
    write(tmp_path, "proc/device-tree/compatible", raw)
    if items is not None:
        assert jetson.compatible(tmp_path) == items
    assert jetson.soc(tmp_path) == soc
    assert jetson.is_jetson(tmp_path) is (soc is not None)


# --- L4T and JetPack -----------------------------------------------------------------------------------------------


@pytest.mark.parametrize("line, expected", [
    ("# R38 (release), REVISION: 2.0, GCID: 41844464, BOARD: generic, EABI: aarch64, DATE: Fri Aug 22\n", "38.2.0"),
    ("# R32 (release), REVISION: 5, GCID: 26202423, BOARD: t210ref, EABI: aarch64\n", "32.5"),
    ("# R35 (release), REVISION: 4.1, GCID: 33958178, BOARD: t186ref\n# KERNEL_VARIANT: oot\n", "35.4.1"),
])
def test_l4t_from_the_release_file(tmp_path, line, expected):
    write(tmp_path, "etc/nv_tegra_release", line)
    assert jetson.l4t(tmp_path) == expected


@pytest.mark.parametrize("line", ["", "garbage\n", "# R36 (release)\n", b"\xff\xfe\x00"])
def test_l4t_from_the_core_package_when_the_release_file_is_garbled(tmp_path, line):
    write(tmp_path, "etc/nv_tegra_release", line)
    assert jetson.l4t(tmp_path) is None
    write(tmp_path, "var/lib/dpkg/status", stanza("nvidia-l4t-core", "36.4.3-20250107174145"))
    assert jetson.l4t(tmp_path) == "36.4.3"


@pytest.mark.parametrize("version, expected", [
    ("6.2+b77", "6.2"), ("5.1.2-b104", "5.1.2"), ("4.6.1-b110", "4.6.1"), ("6.2.1+b38", "6.2.1"),
])
def test_jetpack_from_the_meta_package_wins_over_the_table(tmp_path, version, expected):
    write(tmp_path, "etc/nv_tegra_release", "# R35 (release), REVISION: 4.1, GCID: 1, BOARD: t186ref\n")
    write(tmp_path, "var/lib/dpkg/status", stanza("nvidia-jetpack", version))
    assert jetson.jetpack(tmp_path) == expected


@pytest.mark.parametrize("release, expected", [
    ("# R36 (release), REVISION: 4.3, GCID: 1", "6.2"),
    ("# R36 (release), REVISION: 4.4, GCID: 1", "6.2.1"),
    ("# R35 (release), REVISION: 4.1, GCID: 1", "5.1.2"),
    ("# R32 (release), REVISION: 7.1, GCID: 1", "4.6.1"),
    ("# R38 (release), REVISION: 2.0, GCID: 1", "7.0"),
    ("# R32 (release), REVISION: 5, GCID: 1", "4.5"),  # "32.5" is the table's 32.5.0
    ("# R36 (release), REVISION: 9.9, GCID: 1", None),  # a release the table does not know: no guess
    ("# R99 (release), REVISION: 1.0, GCID: 1", None),
])
def test_jetpack_from_the_l4t_table(tmp_path, release, expected):
    write(tmp_path, "etc/nv_tegra_release", release + "\n")
    assert jetson.jetpack(tmp_path) == expected


@pytest.mark.parametrize("release, table, expected", [
    ("36.4.2", "6.1 (rev1)", "6.1"), ("39.2.0", "7.2 GA", "7.2"), ("39.0.0", "7.2 EA", "7.2"),
    ("35.1.0", "5.0.2 GA", "5.0.2"), ("36.2.0", "6.0 DP", "6.0"), ("34.0.1", "5.0 PRE-DP", "5.0"),
    ("35.3.0", "5.1.1 PRE", "5.1.1"), ("36.4.3", "6.2", "6.2"),
])
def test_jetpack_from_the_table_is_the_plain_version(release, table, expected):
    assert jetson.L4T_TO_JETPACK[release] == table  # jtop's spelling, kept in the table
    assert jetson.jetpack_from_l4t(release) == expected  # digits and dots, as the package gives it


def test_every_table_entry_gives_a_plain_version():
    for release in jetson.L4T_TO_JETPACK:
        version = jetson.jetpack_from_l4t(release)
        assert version and all(part.isdigit() for part in version.split(".")), release


@pytest.mark.parametrize("package, release", [("6.1+b123", "# R36 (release), REVISION: 4.2, GCID: 1"),
                                              ("6.0+b106", "# R36 (release), REVISION: 2.0, GCID: 1")])
def test_jetpack_reads_alike_on_the_host_and_in_a_container(tmp_path, package, release):
    # the host has the nvidia-jetpack meta package; an L4T container only the release file
    host, container = tmp_path / "host", tmp_path / "container"
    for root in (host, container):
        write(root, "etc/nv_tegra_release", release + "\n")
    write(host, "var/lib/dpkg/status", stanza("nvidia-jetpack", package))
    assert jetson.jetpack(host) == jetson.jetpack(container) == package.split("+")[0]


def test_jetpack_unknown_without_l4t(tmp_path):
    assert jetson.jetpack(tmp_path) is None and jetson.jetpack_from_l4t(None) is None
    assert jetson.jetpack_from_l4t("36.4") is jetson.jetpack_from_l4t("36.4.0") == "6.1"


# --- dpkg status, TensorRT, CUDA ----------------------------------------------------------------------------------


def test_installed_packages_only_counts_installed_stanzas(tmp_path):
    text = "\n".join([
        stanza("nvidia-jetpack", "6.2+b77", status="deinstall ok config-files"),  # removed
        stanza("tensorrt", "10.3.0.30-1+cuda12.5"),
        stanza("libnvinfer8", "8.6.2.3-1+cuda12.2", status="install ok half-configured"),
        "Package: broken\nStatus: install ok installed\n",  # no Version
        "Package: epoch\nStatus: install ok installed\nVersion: 1:2.3-4\nConffiles:\n /etc/x 0123\n",
    ])
    write(tmp_path, "var/lib/dpkg/status", text.encode() + b"\nDescription: \xff\xfe bad bytes\n")
    assert jetson.installed_packages(tmp_path) == {"tensorrt": "10.3.0.30-1+cuda12.5", "epoch": "1:2.3-4"}
    assert jetson.installed_packages(tmp_path / "nowhere") == {}


@pytest.mark.parametrize("packages, expected", [
    ([("tensorrt", "10.3.0.30-1+cuda12.5"), ("libnvinfer10", "10.3.0.31-1+cuda12.5")], "10.3.0.30"),
    ([("libnvinfer10", "10.3.0.30-1+cuda12.5")], "10.3.0.30"),
    ([("libnvinfer8", "8.2.1-1+cuda10.2")], "8.2.1"),
    ([("libnvinfer7", "7.1.3-1+cuda10.2")], "7.1.3"),
    ([("nvidia-tensorrt", "6.2+b77")], None),  # JetPack's meta package, versioned like JetPack
    ([], None),
])
def test_tensorrt_from_packages(tmp_path, packages, expected):
    write(tmp_path, "var/lib/dpkg/status", "\n".join(stanza(*p) for p in packages))
    assert jetson.tensorrt(tmp_path) == expected


def test_tensorrt_from_the_backend_wins(tmp_path):
    assert jetson.tensorrt(DATA / "orin-nano-jp6", tensorrt_version="10.3.0") == "10.3.0"
    assert board_facts.jetson_facts(DATA / "agx-orin-jp6", tensorrt_version="8.6.2").tensorrt == "8.6.2"
    assert jetson.tensorrt(tmp_path, tensorrt_version="10.7.0") == "10.7.0"


def test_tensorrt_distribution_metadata_only_on_the_live_root(monkeypatch, tmp_path):
    # the Python distribution installed here says nothing about a recorded tree, and tensorrt is never imported
    asked = []

    def version(name):
        asked.append(name)
        return "10.3.0"

    monkeypatch.setattr(jetson.metadata, "version", version)
    assert jetson.tensorrt(tmp_path) is None and asked == []
    monkeypatch.setattr(jetson, "is_live_root", lambda root: True)
    assert jetson.tensorrt(tmp_path) == "10.3.0" and asked == ["tensorrt"]
    assert "tensorrt" not in sys.modules


def test_live_root_is_recognised(tmp_path):
    assert sysfs.is_live_root("/") and sysfs.is_live_root(Path("/")) and not sysfs.is_live_root(tmp_path)
    assert clocks.live_runner("/") is clocks.query_nvpmodel and clocks.live_runner(tmp_path) is None


@pytest.mark.parametrize("files, expected", [
    ({"usr/local/cuda/version.json": '{"cuda": {"name": "CUDA SDK", "version": "12.6.68"}}',
      "usr/local/cuda/version.txt": "CUDA Version 10.2.300\n"}, "12.6.68"),
    ({"usr/local/cuda/version.txt": "CUDA Version 10.2.300\n"}, "10.2.300"),
    ({"usr/local/cuda/version.json": "{not json", "usr/local/cuda/version.txt": "CUDA Version 10.2.89\n"}, "10.2.89"),
    ({"usr/local/cuda/version.json": '{"cuda": {"version": 12}}'}, None),
    ({"usr/local/cuda/version.json": '["cuda"]'}, None),
    ({"usr/local/cuda/version.txt": "garbage"}, None),
])
def test_cuda_from_version_files(tmp_path, files, expected):
    for relative, text in files.items():
        write(tmp_path, relative, text)
    assert jetson.cuda(tmp_path) == expected


def test_cuda_from_packages_prefers_the_newest_toolkit(tmp_path):
    write(tmp_path, "var/lib/dpkg/status", "\n".join([
        stanza("cuda-toolkit-config-common", "12.6.77-1"),  # not a toolkit version
        stanza("cuda-cudart-12-6", "12.6.68-1"),
        stanza("cuda-toolkit-11-4", "11.4.19-1"),
        stanza("cuda-toolkit-12-6", "12.6.11-1"),
    ]))
    assert jetson.cuda(tmp_path) == "12.6.11"
    write(tmp_path, "var/lib/dpkg/status", stanza("cuda-cudart-12-2", "12.2.140-1"))
    assert jetson.cuda(tmp_path) == "12.2.140"


# --- nvpmodel ------------------------------------------------------------------------------------------------------


@pytest.mark.parametrize("text, expected", [
    ("pmode:0000 fmode:quiet\n", 0), ("pmode:0002 fmode:fan_mode_quiet", 2), ("pmode:0008\n", 8),
    ("pmode: 3 fmode:cool", 3), ("fmode:quiet", None), ("", None), ("pmode:abc", None),
])
def test_parse_nvpmodel_status(text, expected):
    assert clocks.parse_nvpmodel_status(text) == expected


def test_parse_nvpmodel_conf():
    text = ("# header\n< PARAM TYPE=FILE NAME=CPU_ONLINE >\nCORE_0 /sys/devices/system/cpu/cpu0/online\n"
            "< POWER_MODEL ID=0 NAME=15W >\nCPU_ONLINE CORE_0 1\n#< POWER_MODEL ID=9 NAME=OLD >\n"
            "  < POWER_MODEL ID=1 NAME=25W >\n< POWER_MODEL ID=2 NAME=MAXN_SUPER >\n< POWER_MODEL ID=3 NAME=7W >\n"
            "# mandatory section to configure the default mode\n< PM_CONFIG DEFAULT=2 >\n")
    # the boot default (PM_CONFIG DEFAULT=2) is not the current mode and is not read
    assert clocks.parse_nvpmodel_conf(text) == {0: "15W", 1: "25W", 2: "MAXN_SUPER", 3: "7W"}
    assert clocks.parse_nvpmodel_conf("") == {}


@pytest.mark.parametrize("text, expected", [
    ("NV Power Mode: 15W\n0\n", ("15W", 0)),
    ("NVPM WARN: fan mode is not set!\nNV Power Mode: MAXTEST\n0\n", ("MAXTEST", 0)),  # jtop's emulator output
    ("NV Power Mode: MODE_30W\n2", ("MODE_30W", 2)),
    ("NV Power Mode: MAXN_SUPER\n", ("MAXN_SUPER", None)),  # no id line
    ("NV Power Mode: 7W\nNVPM ERROR: something\n", ("7W", None)),
    ("NVPM ERROR: failed\n", (None, None)), ("", (None, None)),
])
def test_parse_nvpmodel_query(text, expected):
    assert clocks.parse_nvpmodel_query(text) == expected


def test_power_mode_follows_the_state_file(board):
    root = board("orin-nano-jp6")
    write(root, "var/lib/nvpmodel/status", "pmode:0003 fmode:quiet\n")
    assert clocks.power_mode(root) == ("7W", 3)
    write(root, "var/lib/nvpmodel/status", "pmode:0007\n")  # an id the conf does not name
    assert clocks.power_mode(root) == (None, 7)
    (root / "etc/nvpmodel.conf").unlink()
    write(root, "var/lib/nvpmodel/status", "pmode:0001\n")
    assert clocks.power_mode(root) == (None, 1)
    write(root, "var/lib/nvpmodel/status", "garbage\n")
    assert clocks.power_mode(root) == (None, None)


def test_power_mode_asks_the_runner_only_without_a_state_file(board):
    root = board("agx-orin-jp6")
    calls = []

    def runner():
        calls.append(1)
        return "NVPM WARN: fan mode is not set!\nNV Power Mode: MODE_30W\n2\n"

    assert clocks.power_mode(root, runner=runner) == ("MAXN", 0) and calls == []  # the state file answers
    (root / "var/lib/nvpmodel/status").unlink()
    assert clocks.power_mode(root) == (None, None)  # no runner: unknown (the conf's default is not the mode)
    assert clocks.power_mode(root, runner=runner) == ("MODE_30W", 2) and calls == [1]
    assert clocks.power_mode(root, runner=lambda: None) == (None, None)  # nvpmodel missing or failing
    assert board_facts.jetson_facts(root, runner=runner).power_mode == "MODE_30W"


def test_query_nvpmodel_without_the_program_is_none(monkeypatch, tmp_path):
    monkeypatch.setenv("PATH", str(tmp_path))  # no nvpmodel on this PATH
    assert clocks.query_nvpmodel() is None


# --- jetson_clocks -------------------------------------------------------------------------------------------------


def pin(root: Path) -> None:
    """What `sudo jetson_clocks` does to the files we read: each minimum set to its maximum."""
    for low in [*root.glob("sys/devices/system/cpu/cpu*/cpufreq/scaling_min_freq"),
                *root.glob("sys/class/devfreq/*/min_freq")]:
        high = low.with_name("scaling_max_freq" if low.name.startswith("scaling") else "max_freq")
        low.write_text(high.read_text())


def test_jetson_clocks_turned_on(board):
    root = board("orin-nano-jp6")
    assert clocks.jetson_clocks(root) is False
    pin(root)
    assert clocks.jetson_clocks(root) is True
    # pinned below cpuinfo_max_freq: 15W caps the CPUs at 1497.6 MHz of 1728 MHz, and that is still "on"
    assert (root / "sys/devices/system/cpu/cpu0/cpufreq/scaling_min_freq").read_text() == "1497600\n"


def test_jetson_clocks_needs_the_gpu_pinned_too(board):
    root = board("xavier-nx-jp5")
    for low in root.glob("sys/devices/system/cpu/cpu*/cpufreq/scaling_min_freq"):
        low.write_text(low.with_name("scaling_max_freq").read_text())
    assert clocks.jetson_clocks(root) is False  # GPU devfreq still scales
    gpu = root / "sys/class/devfreq/17000000.gv11b"
    (gpu / "min_freq").write_text((gpu / "max_freq").read_text())
    assert clocks.jetson_clocks(root) is True


def test_jetson_clocks_ignores_offline_cpus(board):
    root = board("agx-orin-jp6")
    cpu = root / "sys/devices/system/cpu/cpu11"
    (cpu / "online").write_text("0\n")
    (cpu / "cpufreq/scaling_min_freq").write_text("115200\n")  # stale limits of an offline core
    assert clocks.jetson_clocks(root) is True
    (cpu / "online").write_text("1\n")
    assert clocks.jetson_clocks(root) is False


def test_jetson_clocks_skips_garbled_files_and_is_unknown_without_any(board):
    root = board("agx-orin-jp6")
    (root / "sys/devices/system/cpu/cpu3/cpufreq/scaling_min_freq").write_text("garbage\n")
    assert clocks.jetson_clocks(root) is True
    shutil.rmtree(root / "sys/devices/system")
    assert clocks.jetson_clocks(root) is True  # the GPU alone
    shutil.rmtree(root / "sys/class/devfreq")
    assert clocks.jetson_clocks(root) is None


def test_gpu_devfreq_found_by_name_node_or_compatible(tmp_path):
    root = tegra_tree(tmp_path)
    for name in ("17000000.ga10b", "gpu-gpc-0", "dev0", "dev1", "3d00000.host1x-emc"):
        write(root, f"sys/class/devfreq/{name}/min_freq", "100\n")
        write(root, f"sys/class/devfreq/{name}/max_freq", "200\n")
    write(root, "sys/class/devfreq/dev0/device/of_node/name", b"gv11b\0")
    write(root, "sys/class/devfreq/dev1/device/of_node/compatible", b"nvidia,ga10b\0")
    found = {p.name for p in clocks._gpu_devfreqs(root)}
    assert found == {"17000000.ga10b", "gpu-gpc-0", "dev0", "dev1"}  # not the memory controller
    assert clocks.jetson_clocks(root) is False


# --- DLA -----------------------------------------------------------------------------------------------------------


def test_dla_from_the_device_tree_when_sysfs_has_no_devices(board):
    root = board("agx-orin-jp6")
    shutil.rmtree(root / "sys/devices/platform/bus@0/13e00000.host1x/15880000.nvdla0")
    shutil.rmtree(root / "sys/devices/platform/bus@0/13e00000.host1x/158c0000.nvdla1")
    assert jetson.dla_cores(root) == 2  # both nodes okay in the device tree
    write(root, "proc/device-tree/bus@0/host1x@13e00000/nvdla1@158c0000/status", b"disabled\0")
    assert jetson.dla_cores(root) == 1
    (root / "proc/device-tree/bus@0/host1x@13e00000/nvdla0@15880000/status").unlink()
    assert jetson.dla_cores(root) == 1  # no status property means enabled


def test_dla_from_sysfs_alone(tmp_path):
    # a container: no device tree, but sysfs shows the host1x children
    write(tmp_path, "etc/nv_tegra_release", "# R35 (release), REVISION: 4.1, GCID: 1, BOARD: t186ref\n")
    write(tmp_path, "sys/devices/platform/13e40000.host1x/15880000.nvdla0/uevent", "OF_NAME=nvdla0\n")
    write(tmp_path, "sys/devices/platform/13e40000.host1x/16000000.pva0/uevent", "OF_NAME=pva0\n")
    assert jetson.dla_cores(tmp_path) == 1
    write(tmp_path, "sys/devices/13e10000.host1x/158c0000.nvdla1/uevent", "OF_NAME=nvdla1\n")  # L4T 32 layout
    assert jetson.dla_cores(tmp_path) == 2
    shutil.rmtree(tmp_path / "sys/devices/13e10000.host1x")
    shutil.rmtree(tmp_path / "sys/devices/platform/13e40000.host1x/15880000.nvdla0")
    assert jetson.dla_cores(tmp_path) == 0  # host1x seen, no DLA under it


def test_dla_unknown_without_device_tree_or_host1x(tmp_path):
    write(tmp_path, "etc/nv_tegra_release", "# R36 (release), REVISION: 4.3, GCID: 1, BOARD: generic\n")
    assert jetson.dla_cores(tmp_path) is None
