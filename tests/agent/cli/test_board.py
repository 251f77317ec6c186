"""`dnnagent power`: a power source read for a while from the command line, on recorded sysfs trees and
tegrastats logs (what it reads is tests/agent/measure/test_probe.py)."""

import io
import json
import subprocess
import sys
from pathlib import Path

import pytest
from typer.testing import CliRunner

from dnnprof.agent.cli import app
from dnnprof.shared import schema
from dnnprof.shared.errors import UserError

DATA = Path(__file__).parents[2] / "data"
ORIN_NANO = DATA / "jetson" / "orin-nano-jp6"
AGX_ORIN = DATA / "jetson" / "agx-orin-jp6"
LOGS = DATA / "tegrastats"
JETSON = DATA / "jetson"
ORIN_PROC = DATA / "board" / "jetson-orin-nano"  # an Orin's /proc without its device tree or release file
KEYS = {"rails", "total_w", "total_kind", "energy_j", "samples", "rate_hz"}

runner = CliRunner()


def test_command_json_on_a_recorded_tree():
    result = runner.invoke(app, ["power", "--source", f"ina3221:{ORIN_NANO}", "--duration", "0.3", "--json"])
    assert result.exit_code == 0, result.output
    data = json.loads(result.stdout)
    assert KEYS <= set(data)
    assert data["total_kind"] == "input_rail" and data["total_w"] == pytest.approx(4.83072)
    assert 0.25 < data["duration_s"] < 2.0


@pytest.mark.parametrize("duration", ["0.2", "0.2s", "200ms"])
def test_command_durations(duration):
    result = runner.invoke(app, ["power", "-s", f"ina3221:{ORIN_NANO}", "--duration", duration, "--json"])
    assert result.exit_code == 0, result.output
    assert 0.15 < json.loads(result.stdout)["duration_s"] < 2.0


def test_command_replays_a_log():
    result = runner.invoke(app, ["power", "--source", f"tegrastats:{LOGS / 'orin-nano-jp6.log'}", "--json"])
    assert result.exit_code == 0, result.output
    data = json.loads(result.stdout)
    assert data["replay"] is True and data["duration_s"] == 3.0 and data["samples"] == 4
    assert set(data["rails"]) == {"VDD_IN", "VDD_CPU_GPU_CV", "VDD_SOC"}


def test_command_replay_interval_in_ms():
    log = f"tegrastats:{LOGS / 'orin-nano-jp6-250ms.log'}"
    for interval in ("250", "250ms", "0.25s"):
        result = runner.invoke(app, ["power", "-s", log, "--interval", interval, "--json"])
        assert result.exit_code == 0, result.output
        assert json.loads(result.stdout)["duration_s"] == pytest.approx(2.25)


def test_command_human_output():
    result = runner.invoke(app, ["power", "--source", f"ina3221:{ORIN_NANO}", "--duration", "0.2"])
    assert result.exit_code == 0, result.output
    text = result.stdout
    assert "VDD_IN (input rail)" in text and "VDD_CPU_GPU_CV" in text
    assert "(input rail VDD_IN)" in text and "energy" in text and "Hz achieved" in text
    agx = runner.invoke(app, ["power", "--source", f"ina3221:{AGX_ORIN}", "--duration", "0.2"])
    assert "(sum of rails)" in agx.stdout
    assert "not connected (NC)" in agx.stderr  # what the source skipped, on stderr


@pytest.mark.parametrize(("spec", "total"), [
    (f"estimate:{DATA / 'procstat' / 'x86-4cpu'}", "W~ (estimate)"),
    (f"rapl:{DATA / 'powercap' / 'two-packages'}", "W (CPU packages, summed)"),
])
def test_command_words_for_cpu_sources(spec, total):
    result = runner.invoke(app, ["power", "--source", spec, "--duration", "0.15"])
    assert result.exit_code == 0, result.output
    assert total in result.stdout and "sum of rails" not in result.stdout
    title = result.stdout.splitlines()[0]
    assert "(estimate)" not in title and "cpu_package" not in title  # the title is the source, not its boundary


def test_command_nc_channels_are_dim_and_problems_yellow(monkeypatch):
    from rich.console import Console

    from dnnprof.agent.cli import board as cli_board

    buffer = io.StringIO()
    monkeypatch.setattr(cli_board, "err", Console(file=buffer, force_terminal=True, color_system="standard", width=300))
    result = runner.invoke(app, ["power", "-s", f"tegrastats:{LOGS / 'agx-orin-jp5.log'}", "--interval", "100"])
    assert result.exit_code == 0, result.output
    lines = buffer.getvalue().splitlines()
    nc = next(line for line in lines if "NC (not connected)" in line)
    unused = next(line for line in lines if "--interval 100 ms not used" in line)
    assert "\x1b[2m" in nc and "\x1b[33m" not in nc  # dim: normal hardware
    assert "\x1b[33m" in unused  # yellow: the option did nothing


@pytest.mark.parametrize(("args", "message"), [
    (["--source", "bogus"], "unknown power source 'bogus'"),
    (["--source", "jtop:/x"], "jtop takes no ROOT"),
    (["--source", "none"], "measures nothing"),
    (["--duration", "soon"], "--duration: cannot read 'soon' as time"),
    (["--duration", "0"], "--duration '0' is not valid: give a positive time, e.g. 5, 5s or 500ms"),
    (["--interval", "-1"], "--interval '-1' is not valid: give a positive time, e.g. 100, 100ms or 0.1s"),
    (["--duration", "inf"], "--duration 'inf' is not valid"),
    (["-s", f"tegrastats:{LOGS / 'nano-jp4.log'}", "--duration", "0.5"], "holds only the first of its 4 lines"),
])
def test_command_errors_are_one_line_user_errors(args, message):
    result = runner.invoke(app, ["power", *args])
    assert isinstance(result.exception, UserError), result.output
    assert message in str(result.exception) and "\n" not in str(result.exception)
    assert result.exception.exit_code == 2


def test_command_error_exit_code_through_the_real_entry_point():
    proc = subprocess.run([sys.executable, "-m", "dnnprof.agent", "power", "--source", "bogus:x"],
                          capture_output=True, text=True, timeout=60)
    assert proc.returncode == 2
    assert proc.stderr.startswith("dnnagent: error: unknown power source 'bogus:x'")
    assert proc.stderr.count("\n") == 1 and proc.stdout == ""


def test_command_help_teaches_the_specs():
    result = runner.invoke(app, ["power", "--help"])
    assert result.exit_code == 0
    for example in ("ina3221:", "jtop", "tegrastats:", "rapl", "estimate", "--interval"):
        assert example in result.stdout


def test_info_json(workdir, dnnagent):
    proc = dnnagent("info", "--json", "--power-source", "estimate", cwd=workdir)
    assert proc.returncode == 0, proc.stderr
    data = json.loads(proc.stdout)
    notes = data.pop("power_notes")
    assert notes == []
    facts = schema.decode(json.dumps(data))
    assert isinstance(facts, schema.BoardInfo)
    assert facts.power_source == "estimate" and facts.power_estimated is True


def test_dnnagent_info_json_on_a_recorded_jetson():
    result = CliRunner().invoke(app, ["info", "--root", str(JETSON / "orin-nano-jp6"), "--json",
                                      "--power-source", "none"])
    assert result.exit_code == 0, result.output
    data = json.loads(result.stdout)
    assert data["kind"] == "info" and "power_notes" in data and "hostname" in data and "backends" in data
    assert data["facts"] == {
        "model": "NVIDIA Jetson Orin Nano Engineering Reference Developer Kit Super", "soc": "tegra234",
        "l4t": "36.4.3", "jetpack": "6.2", "tensorrt": "10.3.0.30", "cuda": "12.6.11", "power_mode": "15W",
        "power_mode_id": 0, "jetson_clocks": False, "dla_cores": 0}


@pytest.mark.parametrize("root, lines", [
    (JETSON / "agx-orin-jp6", ["NVIDIA Jetson AGX Orin Developer Kit", "tegra234", "36.3.0", "6.0", "8.6.2.3",
                                "12.2.140", "MAXN (id 0)", "jetson_clocks", "on", "dla cores", "2"]),
    (ORIN_PROC, ["not a Jetson: no Jetson facts"]),
])
def test_dnnagent_info_text(root, lines):
    result = CliRunner().invoke(app, ["info", "--root", str(root), "--power-source", "none"],
                                env={"COLUMNS": "200"})
    assert result.exit_code == 0, result.output
    for text in lines:
        assert text in result.stdout


def test_dnnagent_info_probes_the_recorded_trees_sensors_and_says_why_auto_is_onnxruntime():
    from dnnprof.agent.backends import why_not_tensorrt

    result = CliRunner().invoke(app, ["info", "--root", str(JETSON / "orin-nano-jp6"), "--json"])
    assert result.exit_code == 0, result.output
    data = json.loads(result.stdout)
    # auto under the tree finds its INA3221 (not this machine's sensors), totalled on the input rail
    assert (data["power_source"], data["power_boundary"], data["power_estimated"]) == ("ina3221", "input_rail", False)
    assert data["power_notes"] == [] and data["power_info"] == []  # the Orin Nano's three channels are all rails
    if why_not_tensorrt():  # no TensorRT here: auto's choice of the CPU is said, with the reason
        assert data["backends"].keys() == {"onnxruntime"}
        assert data["backend_notes"][0].startswith("auto chose onnxruntime (CPU): TensorRT is not usable here (")


def test_dnnagent_info_lists_every_power_mode(switchable_board):
    result = CliRunner().invoke(app, ["info", "--root", str(switchable_board), "--json", "--power-source", "none"])
    assert result.exit_code == 0, result.output
    modes = json.loads(result.stdout)["power_modes"]
    assert [(m["id"], m["name"], m["default"]) for m in modes] == [
        (0, "MAXN", False), (1, "MODE_15W", False), (2, "MODE_30W", True), (3, "MODE_50W", False)]
    assert modes[1] == {"id": 1, "name": "MODE_15W", "default": False, "cpus_online": [0, 1, 2, 3],
                        "caps_mhz": {"CPU_A78_0": 1113.6, "GPU": 408.0, "EMC": 2133.0}, "tpc_pg_mask": 248}
    text = CliRunner().invoke(app, ["info", "--root", str(switchable_board), "--power-source", "none"],
                              env={"COLUMNS": "200"})
    assert "nvpmodel power modes" in text.stdout and "MODE_50W" in text.stdout and "current" in text.stdout
    assert "8 (0-7)" in text.stdout and "1497.6" in text.stdout
    off = CliRunner().invoke(app, ["info", "--root", str(ORIN_PROC), "--json", "--power-source", "none"])
    assert json.loads(off.stdout)["power_modes"] == []
