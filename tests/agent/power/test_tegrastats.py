"""tegrastats: parsing every line format, replaying recorded logs, and the live source against a stand-in binary.

The live tests run a small shell script in place of tegrastats under a temporary root (the thin fake at the hardware
boundary): it prints recorded lines, as the real tool would, at the interval it is given.
"""

import math
import shutil
import stat
import time
from datetime import datetime
from pathlib import Path

import pytest

from dnnprof.agent.power import rails as railnames
from dnnprof.agent.power.base import SourceUnavailable
from dnnprof.agent.power.tegrastats import TegrastatsSource, find_binary, parse_line, read_log
from dnnprof.shared.errors import UserError

LOGS = Path(__file__).parents[2] / "data" / "tegrastats"
REAL = LOGS / "real"  # one verbatim line each, from real boards quoted publicly (sources in LOGS/README.md)


def first_line(name: str) -> str:
    return (LOGS / name).read_text().splitlines()[0]


# -- parsing ----------------------------------------------------------------------------------------------------------


def test_jetpack4_values_without_unit():
    line = parse_line(first_line("nano-jp4.log"))
    assert line.date is None
    assert line.rails_w == {"POM_5V_IN": 0.933, "POM_5V_GPU": 0.0, "POM_5V_CPU": 0.084}


def test_jetpack4_xavier_rail_names_do_not_clash_with_other_fields():
    # "CPU [..]", "CPU@27.5C" and the rail "CPU 385/385" on one line; RAM and SWAP are X/Y too, in MB
    line = parse_line(first_line("xavier-jp4.log"))
    assert line.rails_w == {"GPU": 1.155, "CPU": 0.385, "SOC": 2.504, "CV": 0.0, "VDDRQ": 0.192, "SYS5V": 2.692}


def test_jetpack5_mw_pairs_and_the_first_value_only():
    line = parse_line((LOGS / "xavier-nx-jp5.log").read_text().splitlines()[1])
    assert line.rails_w == {"VDD_IN": 6.312, "VDD_CPU_GPU_CV": 1.474, "VDD_SOC": 1.267}  # not the averages


def test_jetpack6_date_prefix():
    line = parse_line(first_line("orin-nano-jp6.log"))
    assert line.date == datetime(2025, 1, 4, 16, 2, 59)
    assert line.rails_w == {"VDD_IN": 4.968, "VDD_CPU_GPU_CV": 0.436, "VDD_SOC": 1.708}


def test_agx_orin_nc_channels_are_skipped():
    line = parse_line(first_line("agx-orin-jp5.log"))
    assert line.rails_w == {"VDD_GPU_SOC": 2.39, "VDD_CPU_CV": 0.796, "VIN_SYS_5V0": 3.522, "VDDQ_VDD2_1V8AO": 0.301}
    assert line.not_connected == 2  # counted, so a replay can say it dropped them
    assert parse_line(first_line("orin-nano-jp6.log")).not_connected == 0


def test_jetpack72_triples_and_two_value_temperatures():
    line = parse_line(first_line("agx-orin-jp72.log"))
    assert line.date == datetime(2026, 7, 25, 9, 8, 28)
    assert line.rails_w == {"VDD_GPU_SOC": 5.139, "VDD_CPU_CV": 3.268, "VIN_SYS_5V0": 5.5}
    second = parse_line((LOGS / "agx-orin-jp72.log").read_text().splitlines()[1])
    assert second.rails_w["VDD_GPU_SOC"] == 9.141  # first of 9141mW/7140mW/9141mW


@pytest.mark.parametrize("text", [
    "RAM 2000/7000MB (lfb 1x4MB) SWAP 0/3500MB (cached 0MB) IRAM 0/252kB(lfb 252kB)",
    "CPU [3%@1904,off] EMC_FREQ 0%@1600 GR3D_FREQ 12%@[1300,1300] GR3D_FREQ 0% APE 150 NVENC 716",
    "cpu@52.968C/52.968C soc2@48.406C/48.406C CV0@-256C tj@41.656C",
    "MTS fg 0% bg 0% VIC_FREQ 115",
    "tegrastats started",
])
def test_other_fields_are_not_rails(text):
    assert parse_line(text).rails_w == {}


def test_decimal_values_and_end_of_line():
    assert parse_line("VDD_IN 4983.5mW/4983.5mW").rails_w == {"VDD_IN": 4.9835}


def test_a_rail_twice_is_an_error():
    with pytest.raises(ValueError, match="VDD_IN appears twice"):
        parse_line("VDD_IN 1000mW/1000mW VDD_IN 2000mW/2000mW")


def test_an_impossible_date_is_an_error():
    with pytest.raises(ValueError):
        parse_line("13-45-2024 10:00:00 VDD_IN 1000mW/1000mW")


# -- real lines (tests/data/tegrastats/real: nothing in them changed) --------------------------------------------------

REAL_LINES = [
    ("nano-jp461.log", None, {"POM_5V_IN": 1.75, "POM_5V_GPU": 0.0, "POM_5V_CPU": 0.366}, "POM_5V_IN"),
    ("tx1-jp4.log", None, {"VDD_IN": 2.532, "VDD_CPU": 0.076, "VDD_GPU": 0.019}, "VDD_IN"),
    ("tx2-jp4.log", None, {"VDD_SYS_GPU": 0.153, "VDD_SYS_SOC": 0.536, "VDD_4V0_WIFI": 0.633, "VDD_IN": 3.14,
                           "VDD_SYS_CPU": 0.536, "VDD_SYS_DDR": 0.557}, "VDD_IN"),  # the input rail 4th of 6
    ("xavier-nx-jp4.log", None, {"VDD_IN": 6.14, "VDD_CPU_GPU_CV": 2.706, "VDD_SOC": 1.074}, "VDD_IN"),
    ("xavier-nx-jp512.log", datetime(2024, 7, 9, 13, 31, 31),
     {"VDD_IN": 2.763, "VDD_CPU_GPU_CV": 0.65, "VDD_SOC": 0.65}, "VDD_IN"),  # instantaneous below the average
    ("agx-xavier-jp4.log", None,
     {"GPU": 0.463, "CPU": 0.618, "SOC": 2.936, "CV": 0.0, "VDDRQ": 0.309, "SYS5V": 3.306}, None),
    ("orin-nx-8gb-jp6.log", datetime(2025, 5, 15, 18, 30, 28),
     {"VDD_IN": 17.946, "VDD_CPU_GPU_CV": 8.896, "VDD_SOC": 3.923}, "VDD_IN"),  # under load: 17946mW/15710mW
    ("agx-orin-jp5-dla.log", datetime(2025, 11, 21, 8, 49, 48),
     {"VDD_GPU_SOC": 3.15, "VDD_CPU_CV": 14.312, "VIN_SYS_5V0": 4.968, "VDDQ_VDD2_1V8AO": 1.091}, None),
    ("agx-orin-32gb-jp6.log", None, {"VDD_GPU_SOC": 3.205, "VDD_CPU_CV": 4.405, "VIN_SYS_5V0": 4.767}, None),
]


@pytest.mark.parametrize(("name", "date", "rails_w", "input_rail"), REAL_LINES, ids=[r[0] for r in REAL_LINES])
def test_real_lines(name, date, rails_w, input_rail):
    lines = (REAL / name).read_text().splitlines()
    assert len(lines) == 1
    line = parse_line(lines[0])
    assert line.date == date
    assert line.rails_w == rails_w  # the first value of each pair, whatever the average says
    assert line.not_connected == 0  # none of these boards printed an NC channel
    log = read_log(REAL / name)
    assert log.rails == tuple(rails_w) and log.input_rail == input_rail
    assert log.boundary == ("input_rail" if input_rail else "sum_of_rails")
    assert list(log) == [(0.0, tuple(rails_w.values()))]
    assert log.notes == [] and log.info == []
    expected_total = rails_w[input_rail] if input_rail else sum(rails_w.values())
    assert railnames.total_of(rails_w, log.input_rail) == pytest.approx(expected_total)


@pytest.mark.parametrize("name", [r[0] for r in REAL_LINES if r[3]])
def test_real_input_rails_exceed_their_branches(name):
    # On every real board with an input rail, the input carries more than all the other rails together: they are
    # branches inside it (plus what no rail measures), so a sum of all rails would count them twice.
    line = parse_line((REAL / name).read_text().splitlines()[0])
    branches = {rail: w for rail, w in line.rails_w.items() if rail != railnames.find_input_rail(line.rails_w)}
    assert line.rails_w[railnames.find_input_rail(line.rails_w)] > sum(branches.values())


def test_real_agx_orin_jp6_line_with_runs_of_spaces():
    # As quoted in DataDog's check test: spaces padded between the engine fields; the rails still parse, and none
    # of "NVENC      off", "APE           174" or "NVDLA0_FREQ @1600" (the JP5 line) is taken for a rail.
    text = (REAL / "agx-orin-32gb-jp6.log").read_text()
    assert "NVENC      off" in text and "(lfb 3x4MB)    SWAP" in text
    assert set(parse_line(text).rails_w) == {"VDD_GPU_SOC", "VDD_CPU_CV", "VIN_SYS_5V0"}
    assert "NVDLA0_FREQ @1600" in (REAL / "agx-orin-jp5-dla.log").read_text()


# -- replay -----------------------------------------------------------------------------------------------------------


@pytest.mark.parametrize(("name", "rails", "input_rail", "ts"), [
    ("nano-jp4.log", ("POM_5V_IN", "POM_5V_GPU", "POM_5V_CPU"), "POM_5V_IN", [0.0, 1.0, 2.0, 3.0]),
    ("xavier-jp4.log", ("GPU", "CPU", "SOC", "CV", "VDDRQ", "SYS5V"), None, [0.0, 1.0, 2.0]),
    ("xavier-nx-jp5.log", ("VDD_IN", "VDD_CPU_GPU_CV", "VDD_SOC"), "VDD_IN", [0.0, 1.0, 2.0]),
    ("orin-nano-jp6.log", ("VDD_IN", "VDD_CPU_GPU_CV", "VDD_SOC"), "VDD_IN", [0.0, 1.0, 2.0, 3.0]),
    ("agx-orin-jp5.log", ("VDD_GPU_SOC", "VDD_CPU_CV", "VIN_SYS_5V0", "VDDQ_VDD2_1V8AO"), None, [0.0, 1.0, 2.0]),
    ("agx-orin-jp72.log", ("VDD_GPU_SOC", "VDD_CPU_CV", "VIN_SYS_5V0"), None, [0.0, 1.0, 2.0]),
])
def test_recorded_logs(name, rails, input_rail, ts):
    log = read_log(LOGS / name)
    assert log.rails == rails
    assert log.input_rail == input_rail
    assert log.boundary == ("input_rail" if input_rail else "sum_of_rails")
    assert log.ts == ts
    samples = list(log)
    assert len(samples) == len(log) == len(ts)
    assert all(len(values) == len(rails) for _, values in samples)
    assert log.timed_by == ("date" if parse_line(first_line(name)).date else "interval")


def test_undated_lines_are_spaced_by_the_interval():
    assert read_log(LOGS / "nano-jp4.log", interval_ms=250).ts == [0.0, 0.25, 0.5, 0.75]
    log = read_log(LOGS / "nano-jp4.log")
    assert log.interval_s == 1.0 and "spaced 1000 ms apart" in log.method  # tegrastats' default


def test_dates_win_over_the_interval_and_a_note_says_so():
    log = read_log(LOGS / "orin-nano-jp6.log", interval_ms=250)
    assert log.ts == [0.0, 1.0, 2.0, 3.0]
    assert log.notes == ["--interval 250 ms not used: every line of orin-nano-jp6.log has its own date, and the "
                         "dates time the lines"]
    assert read_log(LOGS / "orin-nano-jp6.log").notes == []  # nothing given, nothing to say


def test_an_interval_that_spaces_lines_is_used_silently():
    assert read_log(LOGS / "nano-jp4.log", interval_ms=250).notes == []
    assert read_log(LOGS / "orin-nano-jp6-250ms.log", interval_ms=250).notes == []


def test_a_replay_says_which_nc_channels_it_dropped():
    assert read_log(LOGS / "agx-orin-jp5.log").info == ["skipped 2 channels printed as NC (not connected)"]
    assert read_log(LOGS / "orin-nano-jp6.log").info == []


@pytest.mark.parametrize("interval_ms", [0.0, -1.0, math.inf, math.nan])
def test_a_bad_replay_interval_is_refused(interval_ms):
    with pytest.raises(UserError, match=f"interval {interval_ms:g} ms is not valid: give a positive time"):
        read_log(LOGS / "nano-jp4.log", interval_ms=interval_ms)


def test_one_rail_is_said_in_the_singular(tmp_path):
    log = read_log(write_log(tmp_path, "VDD_IN 1000mW/1000mW", "VDD_IN 1100mW/1050mW"))
    assert ": 1 rail, " in log.method


def test_several_lines_per_dated_second_need_the_interval():
    with pytest.raises(UserError, match="several lines within one second.*--interval MS"):
        read_log(LOGS / "orin-nano-jp6-250ms.log")
    log = read_log(LOGS / "orin-nano-jp6-250ms.log", interval_ms=250)
    assert log.ts == [i * 0.25 for i in range(10)] and log.timed_by == "interval"


def test_an_interval_that_contradicts_the_dates_is_refused():
    with pytest.raises(UserError, match="dates span 2 s but 10 lines at --interval 1000 ms span 9 s"):
        read_log(LOGS / "orin-nano-jp6-250ms.log", interval_ms=1000)


def write_log(tmp_path: Path, *lines: str) -> Path:
    path = tmp_path / "t.log"
    path.write_text("\n".join(lines) + "\n")
    return path


@pytest.mark.parametrize("lines, error", [
    (("VDD_IN 1000mW/1000mW VDD_SOC 300mW/300mW", "", "VDD_IN 1100mW/1050mW"),
     r"t\.log:3: rail VDD_SOC is missing \(it is on line 1\)"),
    (("VDD_IN 1000mW/1000mW", "VDD_IN 1000mW/1000mW VDD_GPU 5mW/5mW"), r"t\.log:2: rail VDD_GPU is not on line 1"),
    (("VDD_IN 1000mW/1000mW", "RAM 2000/7000MB (lfb 1x4MB)"), r"t\.log:2: no power rails"),
    (("01-04-2025 16:02:59 VDD_IN 1000mW/1000mW", "VDD_IN 1000mW/1000mW"),
     r"t\.log:2: this line has no date but line 1 has one"),
    (("01-04-2025 16:02:59 VDD_IN 1000mW/1000mW", "01-04-2025 16:02:58 VDD_IN 9mW/9mW"),
     r"t\.log:2: the date goes back in time"),
], ids=["missing-rail", "new-rail", "no-rails", "mixed-dates", "date-back"])
def test_a_bad_line_is_named(tmp_path, lines, error):
    with pytest.raises(UserError, match=error):
        read_log(write_log(tmp_path, *lines))


def test_empty_and_missing_logs(tmp_path):
    with pytest.raises(UserError, match="has no tegrastats lines"):
        read_log(write_log(tmp_path, ""))
    with pytest.raises(UserError, match="cannot read tegrastats log"):
        read_log(tmp_path / "absent.log")


# -- live -------------------------------------------------------------------------------------------------------------

# Stands in for /usr/bin/tegrastats: records its arguments, prints LOG's lines every --interval ms, then $TAIL.
SCRIPT = """#!/bin/sh
echo "$@" > "{root}/args"
seconds=$(awk "BEGIN {{ print $2 / 1000 }}")
echo "starting" >&2
while IFS= read -r line; do printf '%s\\n' "$line"; sleep "$seconds"; done < "{log}"
{tail}
"""


def fake_tegrastats(root: Path, log: Path, tail: str = "while true; do sleep 1; done") -> Path:
    binary = root / "usr/bin/tegrastats"
    binary.parent.mkdir(parents=True, exist_ok=True)
    binary.write_text(SCRIPT.format(root=root, log=log, tail=tail))
    binary.chmod(binary.stat().st_mode | stat.S_IXUSR)
    return binary


@pytest.fixture
def live(tmp_path):
    """``live(log, interval_ms, tail)``: a TegrastatsSource on a stand-in binary; closed after the test."""
    sources = []

    def start(log: Path, interval_ms: float = 20, tail: str = "while true; do sleep 1; done") -> TegrastatsSource:
        fake_tegrastats(tmp_path, log, tail)
        sources.append(TegrastatsSource(interval_ms=interval_ms, root=tmp_path))
        return sources[-1]

    yield start
    for source in sources:
        source.close()


def wait_for(condition, timeout_s: float = 10.0):
    deadline = time.monotonic() + timeout_s
    while time.monotonic() < deadline:
        value = condition()
        if value:
            return value
        time.sleep(0.01)
    raise AssertionError("condition not met in time")


def test_live_reads_the_latest_line(live, tmp_path):
    source = live(LOGS / "orin-nano-jp6.log", interval_ms=20)
    assert (tmp_path / "args").read_text().split() == ["--interval", "20"]
    assert source.rails == ("VDD_IN", "VDD_CPU_GPU_CV", "VDD_SOC")
    assert source.input_rail == "VDD_IN" and source.boundary == "input_rail"
    assert source.update_interval_s == 0.02 and source.period_s <= 0.01
    assert source.quantity == "power_w" and not source.estimated
    assert "tegrastats --interval 20" in source.method
    first = source.read()
    assert first in {(4.968, 0.436, 1.708), (7.012, 2.25, 1.909), (6.506, 1.853, 1.868), (5.008, 0.476, 1.708)}
    # the script moves on to the later lines: the reading follows
    wait_for(lambda: source.read() == (5.008, 0.476, 1.708))


def test_live_agx_orin_sums_its_rails(live):
    source = live(LOGS / "agx-orin-jp72.log")
    assert source.input_rail is None and source.boundary == "sum_of_rails"
    values = source.read()
    assert source.total(values) == pytest.approx(sum(values))
    assert source.info == [] and source.notes == []  # JetPack 7.2 prints no NC channels


def test_live_nc_channels_are_info(live):
    source = live(LOGS / "agx-orin-jp5.log")
    assert source.info == ["skipped 2 channels printed as NC (not connected)"] and source.notes == []
    assert "4 rails" in source.method


def test_live_process_exit_is_a_read_error(live):
    source = live(LOGS / "nano-jp4.log", interval_ms=5, tail="exit 0")
    wait_for(lambda: source._proc.poll() is not None)
    with pytest.raises(OSError, match="tegrastats exited with code 0"):
        source.read()


def test_live_stall_is_a_read_error(live):
    source = live(LOGS / "nano-jp4.log", interval_ms=5, tail="sleep 60")
    wait_for(lambda: source.read() == (1.547, 0.039, 0.287))  # the last line
    time.sleep(0.6)  # past max(3 intervals, 0.5 s) without a new line; the script sleeps for a minute
    with pytest.raises(OSError, match=r"no new line for .* s \(stalled\)"):
        source.read()


def test_live_failure_at_start_says_why(tmp_path):
    binary = tmp_path / "usr/bin/tegrastats"
    binary.parent.mkdir(parents=True)
    binary.write_text("#!/bin/sh\necho 'tegrastats: cannot open /dev/nvhost: Permission denied' >&2\nexit 3\n")
    binary.chmod(0o755)
    with pytest.raises(SourceUnavailable, match="exited with code 3: tegrastats: cannot open /dev/nvhost"):
        TegrastatsSource(root=tmp_path)


def test_live_without_power_rails(tmp_path):
    log = write_log(tmp_path, "RAM 385/3984MB (lfb 779x4MB) CPU [1%@204,2%@204] AO@31C CPU@25C")  # a TX1 prints this
    fake_tegrastats(tmp_path, log, tail="exit 0")
    with pytest.raises(SourceUnavailable, match="no power rails"):
        TegrastatsSource(root=tmp_path, interval_ms=5)


def test_missing_and_unusable_binaries(tmp_path):
    with pytest.raises(SourceUnavailable, match="tegrastats not found in "):
        find_binary(tmp_path)
    binary = tmp_path / "usr/bin/tegrastats"
    binary.parent.mkdir(parents=True)
    binary.write_text("not a program")
    binary.chmod(0o644)  # no x bit at all: access(X_OK) says no even to root
    with pytest.raises(SourceUnavailable, match="is not executable"):
        find_binary(tmp_path)


def test_a_bad_interval_is_refused(tmp_path):
    fake_tegrastats(tmp_path, LOGS / "nano-jp4.log")
    with pytest.raises(SourceUnavailable, match="interval 0 ms is not valid"):
        TegrastatsSource(root=tmp_path, interval_ms=0)


def test_this_machine_has_no_tegrastats_or_says_where_it_is():
    if shutil.which("tegrastats"):
        pytest.skip("a Jetson: tegrastats exists")
    with pytest.raises(SourceUnavailable, match="tegrastats not found on PATH or in "):
        find_binary("/")
