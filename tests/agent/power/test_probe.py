"""probe() and `dnnagent power`: a source read for a while, on recorded sysfs trees and tegrastats logs."""

import io
import json
import math
import shutil
import subprocess
import sys
from pathlib import Path

import pytest
from typer.testing import CliRunner

from dnnprof.agent.cli import app
from dnnprof.agent.power.probe import PowerReading, probe
from dnnprof.shared.errors import UserError

DATA = Path(__file__).parents[2] / "data"
ORIN_NANO = DATA / "jetson" / "orin-nano-jp6"
AGX_ORIN = DATA / "jetson" / "agx-orin-jp6"
LOGS = DATA / "tegrastats"
KEYS = {"rails", "total_w", "total_kind", "energy_j", "samples", "rate_hz"}


def test_live_probe_of_a_recorded_tree():
    reading = probe(f"ina3221:{ORIN_NANO}", 0.3)
    data = reading.to_json()
    assert KEYS <= set(data)
    assert {"source", "boundary", "estimated", "duration_s", "input_rail"} <= set(data)
    json.dumps(data)  # JSON-ready
    assert data["source"] == "ina3221" and data["estimated"] is False
    assert data["total_kind"] == "input_rail" and data["input_rail"] == "VDD_IN" and data["boundary"] == "input_rail"
    assert data["rails"] == pytest.approx({"VDD_IN": 4.83072, "VDD_CPU_GPU_CV": 0.442112, "VDD_SOC": 1.70816})
    assert data["total_w"] == pytest.approx(4.83072)  # VDD_IN, not the sum
    assert data["energy_j"] == pytest.approx(data["total_w"] * data["duration_s"])
    assert data["samples"] >= 2 and data["rate_hz"] > 0 and data["read_errors"] == 0
    assert data["replay"] is False and "INA3221" in data["method"]


def test_live_probe_sums_rails_without_an_input_rail():
    reading = probe(f"ina3221:{AGX_ORIN}", 0.2)
    assert reading.total_kind == "sum_of_rails" and reading.input_rail is None
    assert reading.total_w == pytest.approx(sum(reading.rails.values()))
    assert len(reading.rails) == 4
    assert reading.info == ["ina3221: skipped 1-0041 in1: not connected (NC)",
                            "ina3221: skipped 1-0041 in3: not connected (NC)"]
    assert reading.notes == []  # NC channels are normal hardware, nothing to warn about


def test_live_probe_refuses_a_board_whose_input_rail_cannot_be_read(tmp_path):
    root = tmp_path / "xavier"
    shutil.copytree(DATA / "jetson" / "xavier-nx-jp5" / "sys/bus/i2c", root / "sys/bus/i2c")
    (root / "sys/bus/i2c/devices/7-0040/hwmon/hwmon3/in1_input").write_text("garbage\n")
    with pytest.raises(UserError) as info:
        probe(f"ina3221:{root}", 0.1)  # never a 1.81 W "total" of the branch rails in place of VDD_IN's 5.06 W
    assert "input rail VDD_IN (7-0040 in1) cannot be read" in str(info.value) and "\n" not in str(info.value)


def test_the_interval_paces_a_sysfs_source():
    reading = probe(f"ina3221:{ORIN_NANO}", 0.3, interval_ms=50)
    assert reading.samples <= round(0.3 / 0.05) + 2  # the sampler never reads faster than its period


def test_progress_goes_from_0_to_1():
    seen = []
    probe(f"ina3221:{ORIN_NANO}", 0.25, on_progress=seen.append)
    assert seen[0] < 0.5 and seen[-1] == 1.0
    assert seen == sorted(seen) and all(0 <= f <= 1 for f in seen)


def test_auto_with_a_recorded_jetson_root_uses_ina3221():
    reading = probe(f"auto:{ORIN_NANO}", 0.1)
    assert reading.source == "ina3221"


def test_replay_integrates_the_log():
    reading = probe(f"tegrastats:{LOGS / 'nano-jp4.log'}", math.inf)
    assert reading.replay and reading.source == "tegrastats" and not reading.estimated
    assert reading.duration_s == 3.0 and reading.samples == 4 and reading.rate_hz == 1.0
    # trapezoid of POM_5V_IN 0.933, 1.426, 2.003, 1.547 W at 0, 1, 2, 3 s
    assert reading.energy_j == pytest.approx((0.933 + 1.426) / 2 + (1.426 + 2.003) / 2 + (2.003 + 1.547) / 2)
    assert reading.total_w == pytest.approx(reading.energy_j / 3)
    assert reading.total_kind == "input_rail" and reading.input_rail == "POM_5V_IN"
    assert KEYS <= set(reading.to_json())


def test_replay_of_the_first_seconds():
    reading = probe(f"tegrastats:{LOGS / 'nano-jp4.log'}", 1.5)
    assert reading.duration_s == 1.5 and reading.samples == 2
    assert reading.energy_j == pytest.approx((0.933 + 1.426) / 2 + (1.426 + (1.426 + 2.003) / 2) / 2 * 0.5)
    assert reading.rate_hz == 1.0  # lines 1 s apart, over the span of the lines in the window (not 1/1.5)


@pytest.mark.parametrize(("duration_s", "samples"), [(1.0, 2), (2.5, 3), (3.0, 4), (30.0, 4)])
def test_replay_rate_is_that_of_the_lines_in_the_window(duration_s, samples):
    reading = probe(f"tegrastats:{LOGS / 'nano-jp4.log'}", duration_s)
    assert reading.samples == samples and reading.rate_hz == 1.0
    assert reading.duration_s == min(duration_s, 3.0)


@pytest.mark.parametrize("duration_s", [0.5, 0.999])
def test_replay_window_with_one_line_is_refused(duration_s):
    with pytest.raises(UserError) as info:
        probe(f"tegrastats:{LOGS / 'nano-jp4.log'}", duration_s)
    message = str(info.value)
    assert f"--duration {duration_s:g}s holds only the first of its 4 lines (the log spans 3 s)" in message
    assert "give --duration 1s or more, or leave it out" in message and "\n" not in message


def test_replay_notes_the_nc_channels_and_an_unused_interval():
    reading = probe(f"tegrastats:{LOGS / 'agx-orin-jp5.log'}", math.inf, interval_ms=100)
    data = reading.to_json()
    assert data["info"] == ["tegrastats: skipped 2 channels printed as NC (not connected)"]
    assert len(data["notes"]) == 1 and data["notes"][0].startswith("tegrastats: --interval 100 ms not used")
    assert data["total_kind"] == "sum_of_rails" and len(data["rails"]) == 4


def test_replay_with_interval_and_a_sum():
    reading = probe(f"tegrastats:{LOGS / 'agx-orin-jp72.log'}", math.inf)
    assert reading.total_kind == "sum_of_rails" and reading.input_rail is None
    assert reading.total_w == pytest.approx(sum(reading.rails.values()))
    spaced = probe(f"tegrastats:{LOGS / 'orin-nano-jp6-250ms.log'}", math.inf, interval_ms=250)
    assert spaced.duration_s == pytest.approx(2.25) and spaced.samples == 10


@pytest.mark.parametrize(("spec", "duration_s", "interval_ms", "message"), [
    ("none", 1.0, None, "none measures nothing: name a source (auto, ina3221[:ROOT], jtop, "),
    ("nope", 1.0, None, "unknown power source 'nope'"),
    ("ina3221:/nonexistent-root", 1.0, None, "'ina3221' is not available: no I2C devices"),
    (f"ina3221:{ORIN_NANO}", 0.0, None, "duration 0 s is not valid: give a positive time"),
    (f"ina3221:{ORIN_NANO}", math.nan, None, "duration nan s is not valid: give a positive time"),
    (f"ina3221:{ORIN_NANO}", math.inf, None, "needs a finite --duration"),
    (f"ina3221:{ORIN_NANO}", 1.0, -5.0, "interval -5 ms is not valid: give a positive time"),
    (f"tegrastats:{LOGS / 'nano-jp4.log'}", math.inf, 0.0, "interval 0 ms is not valid: give a positive time"),
    (f"tegrastats:{LOGS / 'orin-nano-jp6-250ms.log'}", math.inf, None, "give --interval MS"),
    ("tegrastats:/nonexistent.log", math.inf, None, "cannot read tegrastats log"),
])
def test_no_measurement_is_said_aloud(spec, duration_s, interval_ms, message):
    with pytest.raises(UserError) as info:
        probe(spec, duration_s, interval_ms=interval_ms)
    assert message in str(info.value) and "\n" not in str(info.value)
    assert "none," not in str(info.value)  # never offers a choice that measures nothing


def test_no_source_at_all(tmp_path):
    with pytest.raises(UserError, match="no power source works here: ina3221: "):
        probe(f"auto:{tmp_path}", 0.1)


def test_power_reading_defaults():
    reading = PowerReading(source="x", boundary="sum_of_rails", estimated=False, rails={"a": 1.0}, total_w=1.0,
                           total_kind="sum_of_rails", input_rail=None, energy_j=2.0, samples=3, unique_samples=3,
                           rate_hz=1.0, duration_s=2.0)
    assert reading.to_json()["notes"] == [] and reading.to_json()["info"] == []
    assert reading.to_json()["read_errors"] == 0 and reading.total_words == "sum of rails"


@pytest.mark.parametrize(("spec", "boundary", "words"), [
    (f"rapl:{DATA / 'powercap' / 'two-packages'}", "cpu_package", "CPU packages, summed"),
    (f"estimate:{DATA / 'procstat' / 'x86-4cpu'}", "estimate", "estimate"),
])
def test_cpu_sources_keep_the_documented_total_kind(spec, boundary, words):
    reading = probe(spec, 0.15)
    assert reading.boundary == boundary and reading.total_kind == "sum_of_rails"  # the JSON key's two values only
    assert reading.total_words == words


# -- the command ----------------------------------------------------------------------------------------------------

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

    from dnnprof.agent import cli

    buffer = io.StringIO()
    monkeypatch.setattr(cli, "err", Console(file=buffer, force_terminal=True, color_system="standard", width=300))
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
