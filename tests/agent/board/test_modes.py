"""Switching power modes and clocks on a recorded AGX Orin tree with stand-in nvpmodel and jetson_clocks on PATH
(tests/fakes/bin): verify from the board's files, wait for the caps, refuse what needs a reboot, put it all back."""

import json

import pytest

from dnnprof.agent.board import clocks, modes
from dnnprof.shared.errors import UserError


def control(root, tmp_path, **kw) -> modes.Control:
    return modes.Control(root, state_file=tmp_path / "state" / "power-restore.json", as_root=True, settle_s=2.0,
                         **kw)


def calls(root) -> list[str]:
    return (root / "calls.log").read_text().splitlines() if (root / "calls.log").exists() else []


def test_resolve_ids_names_and_all(switchable_board, tmp_path):
    c = control(switchable_board, tmp_path)
    assert [m.id for m in c.resolve("3,MAXN")] == [3, 0]
    assert [m.name for m in c.resolve("all")] == ["MAXN", "MODE_15W", "MODE_30W", "MODE_50W"]
    assert c.resolve(None) == [] and c.resolve("") == []
    with pytest.raises(UserError, match="'MODE_99W': this board has no such mode; it has 0 MAXN, 1 MODE_15W"):
        c.resolve("0,MODE_99W")


def test_no_modes_off_a_jetson(tmp_path):
    c = modes.Control(tmp_path, state_file=tmp_path / "m.json", as_root=True)
    with pytest.raises(UserError, match="no nvpmodel power modes"):
        c.resolve("0")


def test_switch_verify_settle_then_restore(switchable_board, tmp_path):
    root = switchable_board
    c = control(root, tmp_path)
    assert c.current().name == "MAXN" and clocks.jetson_clocks(root) is True
    fifty = c.conf.modes[3]
    c.apply(modes.Setting(fifty, "dvfs"))
    assert c.current().id == 3 and clocks.power_mode(root) == ("MODE_50W", 3)
    assert clocks.jetson_clocks(root) is False  # nvpmodel wrote the mode's own minimum: DVFS again
    assert (root / "sys/devices/system/cpu/cpu5/cpufreq/scaling_max_freq").read_text().strip() == "1497600"
    assert (root / "sys/class/devfreq/17000000.gpu/max_freq").read_text().strip() == "816000000"
    assert c.unsettled(fifty) == []
    marker = json.loads(c.state_file.read_text())
    assert (marker["mode_id"], marker["mode_name"], marker["jetson_clocks"]) == (0, "MAXN", True)
    c.apply(modes.Setting(fifty, "locked"))
    assert clocks.jetson_clocks(root) is True
    assert (root / "sys/devices/system/cpu/cpu5/cpufreq/scaling_min_freq").read_text().strip() == "1497600"
    assert calls(root)[:2] == ["jetson_clocks --store " + str(c.store_file), "nvpmodel -m 3"]
    said = c.restore()
    assert said == "restored power mode MAXN (0) and clock limits (jetson_clocks on)"
    assert clocks.power_mode(root) == ("MAXN", 0) and clocks.jetson_clocks(root) is True
    assert (root / "sys/devices/system/cpu/cpu5/cpufreq/scaling_max_freq").read_text().strip() == "2201600"
    assert not c.state_file.exists() and not c.store_file.exists()
    assert c.restore() is None  # nothing left to restore


def test_a_mode_that_needs_a_reboot_is_refused_and_never_run(switchable_board, tmp_path):
    c = control(switchable_board, tmp_path)
    with pytest.raises(modes.Refused, match=r"power mode MODE_30W \(2\) needs a reboot from MAXN"):
        c.apply(modes.Setting(c.conf.modes[2], None))
    assert "nvpmodel -m 2" not in calls(switchable_board) and c.current().id == 0


def test_nvpmodels_own_reboot_prompt_is_declined(switchable_board, tmp_path):
    """The agent reads a conf without MODE_30W's gating line (so it cannot predict the reboot), nvpmodel the real
    one: nvpmodel itself asks, gets no YES on stdin, and nothing changes."""
    conf = switchable_board / "etc/nvpmodel.conf"
    real = conf.read_text()
    conf.write_text(real.replace("TPC_POWER_GATING TPC_PG_MASK 240\n", ""))
    c = control(switchable_board, tmp_path)
    conf.write_text(real)
    with pytest.raises(modes.Refused, match="needs a reboot"):
        c.apply(modes.Setting(c.conf.modes[2], None))
    assert "nvpmodel -m 2" in calls(switchable_board) and c.current().id == 0


def test_nvpmodel_failing_or_not_applying_is_refused(switchable_board, tmp_path, monkeypatch):
    monkeypatch.setenv("DNNPROF_FAKE_NVPMODEL_FAIL", "3")
    c = control(switchable_board, tmp_path)
    with pytest.raises(modes.Refused, match=r"nvpmodel refused power mode MODE_50W \(3\): exit status 1"):
        c.apply(modes.Setting(c.conf.modes[3], None))


def test_caps_that_never_show_are_refused(switchable_board, tmp_path):
    c = control(switchable_board, tmp_path)
    fifty = c.conf.modes[3]
    (switchable_board / "etc/nvpmodel.conf").write_text(
        (switchable_board / "etc/nvpmodel.conf").read_text().replace("GPU MAX_FREQ 816000000", "GPU MAX_FREQ -1"))
    with pytest.raises(modes.Refused, match=r"did not settle within 2 s: GPU maximum 1300.5 MHz above its cap 816"):
        c.apply(modes.Setting(fifty, None))


def test_a_crash_leaves_a_marker_the_next_start_restores(switchable_board, tmp_path):
    first = control(switchable_board, tmp_path)
    first.apply(modes.Setting(first.conf.modes[3], "locked"))
    del first  # the process died here (kill -9): nothing restored
    assert clocks.power_mode(switchable_board) == ("MODE_50W", 3)
    again = control(switchable_board, tmp_path)
    assert again.restore().startswith("restored power mode MAXN (0)")
    assert clocks.power_mode(switchable_board) == ("MAXN", 0)


def test_without_root_the_check_says_how_to_enable_it(switchable_board, tmp_path, monkeypatch):
    bin_dir = tmp_path / "bin"
    bin_dir.mkdir()
    sudo = bin_dir / "sudo"
    sudo.write_text("#!/bin/sh\necho 'sudo: a password is required' >&2\nexit 1\n")
    sudo.chmod(0o755)
    monkeypatch.setenv("PATH", f"{bin_dir}:{__import__('os').environ['PATH']}")
    c = modes.Control(switchable_board, state_file=tmp_path / "m.json", as_root=False)
    with pytest.raises(UserError, match="needs root for `nvpmodel -m 3`: .*install-service --allow-power-control"):
        c.check_allowed([modes.Setting(c.conf.modes[3], None)])
    control(switchable_board, tmp_path).check_allowed([modes.Setting(c.conf.modes[3], "locked")])  # root: fine


def test_parse_clocks():
    assert modes.parse_clocks("dvfs, LOCKED,dvfs", "--clocks") == ["dvfs", "locked"]
    with pytest.raises(UserError, match="--clocks 'pinned': write dvfs"):
        modes.parse_clocks("pinned", "--clocks")
