"""probe(): a source read for a while, on recorded sysfs trees and tegrastats logs."""

import json
import math
import shutil
from pathlib import Path

import pytest

from dnnprof.agent.measure.probe import PowerReading, probe
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
