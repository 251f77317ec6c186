"""INA3221 rails read from recorded sysfs trees (tests/data/jetson/<board>) through the root parameter."""

import json
import shutil
from pathlib import Path

import pytest

from dnnprof.agent.measure import energy
from dnnprof.agent.measure.sampler import Sampler
from dnnprof.agent.power.base import SourceUnavailable
from dnnprof.agent.power.ina3221 import Ina3221Source

JETSON = Path(__file__).parents[2] / "data" / "jetson"
DEVICES = "sys/bus/i2c/devices"
ORIN_NANO_HWMON = f"{DEVICES}/1-0040/hwmon/hwmon1"


@pytest.fixture
def tree(tmp_path):
    """``tree(board)``: a writable copy of a board's recorded tree, so a test can play the sensor."""

    def copy(board: str) -> Path:
        root = tmp_path / board
        shutil.copytree(JETSON / board / "sys/bus/i2c", root / "sys/bus/i2c")
        return root

    return copy


def put(root: Path, relative: str, value) -> None:
    """Rewrite a sysfs file in place (same inode, as the kernel's attribute stays the same file)."""
    (root / relative).write_text(f"{value}\n")


@pytest.mark.parametrize(("board", "rails", "input_rail", "watts", "interval_s"), [
    ("nano-jp4", ("POM_5V_IN", "POM_5V_GPU", "POM_5V_CPU"), "POM_5V_IN", (0.933, 0.0, 0.084), None),
    ("xavier-nx-jp5", ("VDD_IN", "VDD_CPU_GPU_CV", "VDD_SOC"), "VDD_IN",
     (5024 * 1008e-6, 5016 * 140e-6, 5016 * 220e-6), 0.007),
    ("orin-nano-jp6", ("VDD_IN", "VDD_CPU_GPU_CV", "VDD_SOC"), "VDD_IN",
     (5032 * 960e-6, 5024 * 88e-6, 5024 * 340e-6), 0.007),
    ("agx-orin-jp6", ("VDD_GPU_SOC", "VDD_CPU_CV", "VIN_SYS_5V0", "VDDQ_VDD2_1V8AO"), None,
     (19016 * 126e-6, 19016 * 42e-6, 4976 * 708e-6, 4976 * 60e-6), 0.007),
])
def test_recorded_boards(board, rails, input_rail, watts, interval_s):
    source = Ina3221Source(root=JETSON / board)
    try:
        assert source.name == "ina3221" and source.quantity == "power_w" and source.estimated is False
        assert source.rails == rails
        assert source.input_rail == input_rail
        assert source.boundary == ("input_rail" if input_rail else "sum_of_rails")
        assert source.update_interval_s == interval_s
        assert source.period_s <= 0.01  # at least 100 Hz
        values = source.read()
        assert values == pytest.approx(watts)
        expected_total = watts[rails.index(input_rail)] if input_rail else sum(watts)
        assert source.total(values) == pytest.approx(expected_total)
        assert ("input rail" if input_rail else "sum of rails") in source.method
    finally:
        source.close()


def test_real_orin_nano_values_agree_with_the_jtop_print():
    """orin-nano-4gb-jp62 holds the file values behind a ``jetson.power`` printed on a real Orin Nano 4GB Super
    devkit (L4T 36.4.3): jtop's 'volt', 'curr', 'warn', 'crit' are the raw inK_input, currK_input, currK_max and
    currK_crit, and its 'power' is int(mV x mA / 1000). Our V x I must give the same milliwatts."""
    root = JETSON / "orin-nano-4gb-jp62"
    printed = json.loads((JETSON.parent / "jtop" / "power-orin-nano-4gb-super-jp62.json").read_text())
    source = Ina3221Source(root=root)
    try:
        assert source.rails == ("VDD_IN", "VDD_CPU_GPU_CV", "VDD_SOC") and source.input_rail == "VDD_IN"
        assert source.update_interval_s is None  # the print gives no update_interval: the tree has none
        values = source.read()
        assert values == pytest.approx((4936 * 1040e-6, 4928 * 216e-6, 4936 * 312e-6))
        jtop_mw = {printed["tot"]["name"]: printed["tot"]["power"]}
        jtop_mw.update({rail: entry["power"] for rail, entry in printed["rail"].items()})
        assert {rail: int(w * 1000) for rail, w in zip(source.rails, values)} == jtop_mw  # 5133, 1064, 1540
        assert source.total(values) == values[0] < sum(values)  # VDD_IN, not the sum
        hwmon = root / ORIN_NANO_HWMON
        for k, entry in enumerate([printed["tot"], printed["rail"]["VDD_CPU_GPU_CV"], printed["rail"]["VDD_SOC"]], 1):
            assert int((hwmon / f"curr{k}_max").read_text()) == entry["warn"]
            assert int((hwmon / f"curr{k}_crit").read_text()) == entry["crit"]
    finally:
        source.close()


def test_root_accepts_str():
    assert Ina3221Source(root=str(JETSON / "orin-nano-jp6")).rails[0] == "VDD_IN"


def test_agx_orin_total_is_the_sum_and_nc_channels_are_skipped():
    source = Ina3221Source(root=JETSON / "agx-orin-jp6")
    assert "NC" not in source.rails and len(source.rails) == 4  # two chips, minus the two NC channels
    assert source.total_of({"VDD_GPU_SOC": 1.0, "VDD_CPU_CV": 2.0, "VIN_SYS_5V0": 3.0, "VDDQ_VDD2_1V8AO": 4.0}) == 10.0
    # NC is normal hardware: info, not a note that warns
    assert source.info == ["skipped 1-0041 in1: not connected (NC)", "skipped 1-0041 in3: not connected (NC)"]
    assert source.notes == []
    assert "1-0040, 1-0041" in source.method and "4 rails" in source.method


def test_orin_nano_total_is_the_input_rail_not_the_sum():
    source = Ina3221Source(root=JETSON / "orin-nano-jp6")
    values = source.read()
    assert source.total(values) == values[0]
    assert source.total(values) < sum(values)  # the branches are inside VDD_IN: summing counts them twice


def test_summation_channel_is_not_a_rail():
    hwmon = JETSON / "orin-nano-jp6" / ORIN_NANO_HWMON
    assert (hwmon / "in7_label").read_text().strip() == "sum of shunt voltages"  # the recorded tree has it
    assert (hwmon / "curr4_input").exists()
    source = Ina3221Source(root=JETSON / "orin-nano-jp6")
    assert len(source.rails) == 3 and all("sum" not in rail for rail in source.rails)
    assert source.notes == [] and source.info == []  # the sum channel is expected, not worth a word


def test_values_follow_the_sensor(tree):
    root = tree("orin-nano-jp6")
    source = Ina3221Source(root=root)
    first = source.read()
    put(root, f"{ORIN_NANO_HWMON}/curr1_input", 2000)  # VDD_IN draws 2 A now
    put(root, f"{ORIN_NANO_HWMON}/in3_input", 4000)
    second = source.read()
    assert second[0] == pytest.approx(5032 * 2000e-6) and second[0] != first[0]
    assert second[1] == first[1]
    assert second[2] == pytest.approx(4000 * 340e-6)
    assert source.total(second) == second[0]


def test_iio_values_follow_the_sensor(tree):
    root = tree("nano-jp4")
    source = Ina3221Source(root=root)
    put(root, f"{DEVICES}/6-0040/iio:device0/in_power2_input", 1500)
    assert source.read() == pytest.approx((0.933, 0.0, 1.5))


def test_hwmon_and_iio_indices_are_globbed(tree):
    root = tree("orin-nano-jp6")
    (root / ORIN_NANO_HWMON).rename(root / f"{DEVICES}/1-0040/hwmon/hwmon17")
    assert Ina3221Source(root=root).rails == ("VDD_IN", "VDD_CPU_GPU_CV", "VDD_SOC")
    nano = tree("nano-jp4")
    (nano / f"{DEVICES}/6-0040/iio:device0").rename(nano / f"{DEVICES}/6-0040/iio:device4")
    assert Ina3221Source(root=nano).rails == ("POM_5V_IN", "POM_5V_GPU", "POM_5V_CPU")


def test_rails_come_from_labels_not_names_we_know(tree):
    root = tree("orin-nano-jp6")
    put(root, f"{ORIN_NANO_HWMON}/in2_label", "VDD_SOMETHING_NEW")
    assert Ina3221Source(root=root).rails == ("VDD_IN", "VDD_SOMETHING_NEW", "VDD_SOC")


def test_a_directory_in_place_of_a_file_skips_that_channel(tree):
    root = tree("orin-nano-jp6")
    current = root / f"{ORIN_NANO_HWMON}/curr2_input"
    current.unlink()
    current.mkdir()  # opening works, reading fails with EISDIR: an I/O error on that one file
    source = Ina3221Source(root=root)
    assert source.rails == ("VDD_IN", "VDD_SOC")
    assert len(source.notes) == 1
    assert source.notes[0].startswith("skipped VDD_CPU_GPU_CV (1-0040 in2): ") and "directory" in source.notes[0]
    assert source.input_rail == "VDD_IN"


def test_a_file_that_is_not_a_number_skips_that_channel(tree):
    root = tree("agx-orin-jp6")
    put(root, f"{DEVICES}/1-0040/hwmon/hwmon2/in3_input", "garbage")
    source = Ina3221Source(root=root)
    assert "VIN_SYS_5V0" not in source.rails
    assert any("VIN_SYS_5V0" in note and "not a number" in note for note in source.notes)


def test_a_disabled_channel_is_skipped(tree):
    root = tree("xavier-nx-jp5")
    put(root, f"{DEVICES}/7-0040/hwmon/hwmon3/in3_enable", 0)
    source = Ina3221Source(root=root)
    assert source.rails == ("VDD_IN", "VDD_CPU_GPU_CV")
    assert source.notes == ["skipped VDD_SOC (7-0040 in3): is disabled (in3_enable is 0)"]


# -- an input rail the board has but that cannot be read: refused, never a sum of branches ---------------------------


def unreadable(root: Path, relative: str, how: str) -> None:
    """Make one sysfs value file fail: garbage in it, gone, or a directory in its place (tests run as root, so
    permissions cannot do it)."""
    path = root / relative
    if how == "garbage":
        path.write_text("garbage\n")
    elif how == "missing":
        path.unlink()
    else:
        path.unlink()
        path.mkdir()


@pytest.mark.parametrize("how", ["garbage", "missing", "directory"])
@pytest.mark.parametrize("which", ["in1_input", "curr1_input"])
def test_an_unreadable_input_rail_is_refused(tree, which, how):
    root = tree("xavier-nx-jp5")
    unreadable(root, f"{DEVICES}/7-0040/hwmon/hwmon3/{which}", how)
    with pytest.raises(SourceUnavailable) as info:
        Ina3221Source(root=root)
    message = str(info.value)
    assert message.startswith("the board's input rail VDD_IN (7-0040 in1) cannot be read: ")
    assert "sum of branch rails" in message and "\n" not in message


def test_a_disabled_input_rail_is_refused(tree):
    root = tree("orin-nano-jp6")
    put(root, f"{ORIN_NANO_HWMON}/in1_enable", 0)
    with pytest.raises(SourceUnavailable, match=r"input rail VDD_IN \(1-0040 in1\) is disabled \(in1_enable is 0\)"):
        Ina3221Source(root=root)


def test_an_unreadable_jetpack4_input_rail_is_refused(tree):
    root = tree("nano-jp4")
    put(root, f"{DEVICES}/6-0040/iio:device0/in_power0_input", "garbage")
    with pytest.raises(SourceUnavailable, match=r"input rail POM_5V_IN \(6-0040 iio:device0 channel 0\) cannot"):
        Ina3221Source(root=root)


def test_an_input_rail_labelled_nc_is_not_seen_so_the_rails_are_summed(tree):
    # The board itself says the channel is not connected: there is no input rail to read, and the sum is honest.
    root = tree("xavier-nx-jp5")
    put(root, f"{DEVICES}/7-0040/hwmon/hwmon3/in1_label", "NC")
    source = Ina3221Source(root=root)
    assert source.rails == ("VDD_CPU_GPU_CV", "VDD_SOC") and source.input_rail is None
    assert source.boundary == "sum_of_rails" and source.info == ["skipped 7-0040 in1: not connected (NC)"]


def test_an_unreadable_branch_rail_is_only_a_note(tree):
    root = tree("xavier-nx-jp5")
    put(root, f"{DEVICES}/7-0040/hwmon/hwmon3/in2_input", "garbage")
    source = Ina3221Source(root=root)
    assert source.input_rail == "VDD_IN" and source.rails == ("VDD_IN", "VDD_SOC")
    assert len(source.notes) == 1 and source.notes[0].startswith("skipped VDD_CPU_GPU_CV (7-0040 in2): cannot be read")


def test_one_rail_is_said_in_the_singular(tree):
    root = tree("xavier-nx-jp5")
    for k in (2, 3):
        put(root, f"{DEVICES}/7-0040/hwmon/hwmon3/in{k}_label", "NC")
    assert ": 1 rail, " in Ina3221Source(root=root).method


def test_a_read_error_at_read_time_is_an_oserror_the_sampler_counts(tree):
    root = tree("orin-nano-jp6")
    source = Ina3221Source(root=root)
    put(root, f"{ORIN_NANO_HWMON}/curr3_input", "")  # the sensor answers nothing this time
    with pytest.raises(OSError, match="curr3_input: not a number"):
        source.read()
    sampler = Sampler(source)
    with sampler:  # a reading on entry and one on exit, both failing
        pass
    assert sampler.read_errors >= 2 and sampler.ts == []
    put(root, f"{ORIN_NANO_HWMON}/curr3_input", 340)  # the next reading works again
    assert len(source.read()) == 3


def test_update_interval_drives_deduplication(tree):
    root = tree("orin-nano-jp6")
    put(root, f"{ORIN_NANO_HWMON}/update_interval", 50)  # e.g. samples raised to 16: a new value every 50 ms
    source = Ina3221Source(root=root)
    assert source.update_interval_s == 0.05
    # Readings at 10 ms (the sampler's rate) of a sensor updating every 50 ms: repeats within 50 ms are dropped,
    # a change is kept at once, and an equal value 50 ms after the last kept one is a real (unchanged) reading.
    ts, totals = [], []
    for t, amps in [(0.00, 960), (0.01, 960), (0.02, 960), (0.03, 1200), (0.04, 1200), (0.09, 1200), (0.10, 1200)]:
        put(root, f"{ORIN_NANO_HWMON}/curr1_input", amps)
        ts.append(t)
        totals.append(source.total(source.read()))
    kept_t, _ = energy.dedupe(ts, totals, source.update_interval_s)
    assert kept_t == [0.00, 0.03, 0.09, 0.10]


def test_several_chips_deduplicate_against_the_slowest(tree):
    root = tree("agx-orin-jp6")
    put(root, f"{DEVICES}/1-0041/hwmon/hwmon3/update_interval", 20)
    assert Ina3221Source(root=root).update_interval_s == 0.02


def test_no_update_interval_file_means_unknown(tree):
    root = tree("orin-nano-jp6")
    (root / f"{ORIN_NANO_HWMON}/update_interval").unlink()
    assert Ina3221Source(root=root).update_interval_s is None


def test_duplicate_labels_across_chips_are_told_apart(tree):
    root = tree("agx-orin-jp6")
    put(root, f"{DEVICES}/1-0041/hwmon/hwmon3/in2_label", "VDD_CPU_CV")
    source = Ina3221Source(root=root)
    assert source.rails == ("VDD_GPU_SOC", "VDD_CPU_CV@1-0040", "VIN_SYS_5V0", "VDD_CPU_CV@1-0041")


def test_no_i2c_bus(tmp_path):
    with pytest.raises(SourceUnavailable, match="no I2C devices at"):
        Ina3221Source(root=tmp_path)


def test_no_ina3221_on_the_bus(tmp_path):
    adapter = tmp_path / DEVICES / "i2c-1"
    adapter.mkdir(parents=True)
    (adapter / "name").write_text("c240000.i2c\n")
    with pytest.raises(SourceUnavailable, match="no INA3221 power monitor"):
        Ina3221Source(root=tmp_path)


def test_nothing_readable_says_why(tree):
    root = tree("xavier-nx-jp5")
    for k in (1, 2, 3):
        put(root, f"{DEVICES}/7-0040/hwmon/hwmon3/in{k}_input", "x")
    with pytest.raises(SourceUnavailable) as info:
        Ina3221Source(root=root)
    message = str(info.value)
    assert message.startswith("INA3221 at 7-0040: no readable rail (") and "not a number" in message
    assert "\n" not in message


def test_only_nc_channels(tree):
    root = tree("agx-orin-jp6")
    shutil.rmtree(root / f"{DEVICES}/1-0040")
    put(root, f"{DEVICES}/1-0041/hwmon/hwmon3/in2_label", "NC")
    with pytest.raises(SourceUnavailable, match="no readable rail.*not connected"):
        Ina3221Source(root=root)


def test_a_device_without_driver_folders(tree):
    root = tree("orin-nano-jp6")
    shutil.rmtree(root / f"{DEVICES}/1-0040/hwmon")
    with pytest.raises(SourceUnavailable, match="neither hwmon/hwmonN/ nor iio:deviceN/"):
        Ina3221Source(root=root)


def test_close_releases_the_files():
    source = Ina3221Source(root=JETSON / "orin-nano-jp6")
    source.close()
    with pytest.raises(OSError):
        source.read()


def test_sysfs_symlinks_are_followed(tmp_path):
    # On a board /sys/bus/i2c/devices/1-0040 is a relative link into /sys/devices/platform/...
    real = tmp_path / "sys/devices/platform/bus@0/c240000.i2c/i2c-1/1-0040"
    shutil.copytree(JETSON / "orin-nano-jp6" / DEVICES / "1-0040", real)
    link = tmp_path / DEVICES / "1-0040"
    link.parent.mkdir(parents=True)
    link.symlink_to("../../../devices/platform/bus@0/c240000.i2c/i2c-1/1-0040")
    assert Ina3221Source(root=tmp_path).rails == ("VDD_IN", "VDD_CPU_GPU_CV", "VDD_SOC")


def test_iio_without_a_power_file_uses_voltage_times_current(tree):
    root = tree("nano-jp4")
    (root / f"{DEVICES}/6-0040/iio:device0/in_power2_input").unlink()
    assert Ina3221Source(root=root).read() == pytest.approx((0.933, 0.0, 4984 * 17e-6))
