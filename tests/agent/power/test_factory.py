"""open_source: picking a power source by spec, with recorded trees as the machine."""

import math
import shutil
from pathlib import Path

import pytest

from dnnprof.agent.power import AUTO_ORDER, SOURCES, Selection, is_replay, open_live, open_source, parse_spec
from dnnprof.agent.power.estimate import EstimateSource
from dnnprof.agent.power.ina3221 import Ina3221Source
from dnnprof.agent.power.jtop import JtopSource
from dnnprof.agent.power.rapl import RaplSource
from dnnprof.agent.power.tegrastats import TegrastatsSource
from dnnprof.shared.errors import UserError

DATA = Path(__file__).parents[2] / "data"
RAPL_ROOT = DATA / "powercap" / "two-packages"
PROC_ROOT = DATA / "procstat" / "x86-4cpu"  # has proc/stat, no sys/class/powercap
JETSON = DATA / "jetson"


def test_registry():
    from dnnprof.agent.power.nvml import NvmlRaplSource, NvmlSource

    assert SOURCES == {"ina3221": Ina3221Source, "jtop": JtopSource, "tegrastats": TegrastatsSource,
                       "rapl": RaplSource, "estimate": EstimateSource, "nvml": NvmlSource,
                       "nvml+rapl": NvmlRaplSource}
    assert "estimate" not in AUTO_ORDER  # the estimate is only ever the last resort


def test_auto_order_is_best_first():
    # direct sysfs (fastest, nothing to install), then the jtop service, then tegrastats, then x86 RAPL
    assert AUTO_ORDER == ("ina3221", "jtop", "tegrastats", "rapl")


def test_parse_spec_and_replay():
    assert parse_spec("INA3221:/mnt/x") == ("ina3221", "/mnt/x")
    assert parse_spec("tegrastats:C:/logs/a.log") == ("tegrastats", "C:/logs/a.log")  # only the first colon splits
    assert is_replay("tegrastats:run.log") and not is_replay("tegrastats") and not is_replay("ina3221:/x")


@pytest.mark.parametrize("spec", ["none", "NONE", "none:/whatever"])
def test_none_gives_no_source_with_a_note(spec):
    selection = open_source(spec)
    assert isinstance(selection, Selection)
    assert selection.source is None
    assert len(selection.notes) == 1 and "no energy" in selection.notes[0]


def test_auto_without_powercap_falls_back_to_the_estimate():
    selection = open_source(f"auto:{PROC_ROOT}")
    assert isinstance(selection.source, EstimateSource)
    assert selection.source.estimated
    assert selection.source.tdp_w == 40.0  # the recorded machine's 4 CPUs
    assert any(note.startswith("rapl:") and "powercap" in note for note in selection.notes)
    assert any("ESTIMATE" in note for note in selection.notes)


def test_auto_prefers_a_real_sensor():
    selection = open_source(f"auto:{RAPL_ROOT}")
    assert isinstance(selection.source, RaplSource)
    # each Jetson source said why it was not used, in the auto order, and nothing else was noted
    assert [note.split(":")[0] for note in selection.notes] == ["ina3221", "jtop", "tegrastats"]


@pytest.mark.parametrize(("board", "input_rail"), [("orin-nano-jp6", "VDD_IN"), ("nano-jp4", "POM_5V_IN"),
                                                   ("agx-orin-jp6", None)])
def test_auto_on_a_recorded_jetson_picks_ina3221_first(board, input_rail):
    selection = open_source(f"auto:{JETSON / board}")
    assert isinstance(selection.source, Ina3221Source)
    assert selection.source.input_rail == input_rail
    assert selection.source.boundary == ("input_rail" if input_rail else "sum_of_rails")


def test_auto_with_nothing_at_all(tmp_path):
    selection = open_source(f"auto:{tmp_path}")
    assert selection.source is None
    assert [note.split(":")[0] for note in selection.notes[:5]] == ["ina3221", "jtop", "tegrastats", "rapl",
                                                                    "estimate"]
    assert "no energy" in selection.notes[-1]


def test_auto_passes_the_tdp_to_the_estimate():
    selection = open_source(f"auto:{PROC_ROOT}", tdp_w=25.0)
    assert selection.source.tdp_w == 25.0


def test_auto_on_this_machine_gives_some_source_or_says_why():
    selection = open_source("auto")
    assert selection.source is not None or selection.notes


def test_auto_on_this_machine_is_not_a_jetson():
    # the development VM has no INA3221, no jtop.service, no tegrastats: auto must still land on rapl or the estimate
    selection = open_source("auto")
    try:
        assert selection.source is None or selection.source.name in ("rapl", "estimate")
        assert [note.split(":")[0] for note in selection.notes[:3]] == ["ina3221", "jtop", "tegrastats"]
    finally:
        if selection.source is not None:
            selection.source.close()


def test_ina3221_with_recorded_root():
    selection = open_source(f"ina3221:{JETSON / 'orin-nano-jp6'}")
    assert isinstance(selection.source, Ina3221Source)
    assert selection.source.rails == ("VDD_IN", "VDD_CPU_GPU_CV", "VDD_SOC")
    assert selection.notes == []


def test_nc_channels_the_chosen_source_skipped_are_info_not_warnings():
    # AGX Orin's two NC channels are normal hardware: said as info, never among the notes that warn
    selection = open_source(f"ina3221:{JETSON / 'agx-orin-jp6'}")
    assert selection.info == ["ina3221: skipped 1-0041 in1: not connected (NC)",
                              "ina3221: skipped 1-0041 in3: not connected (NC)"]
    assert selection.notes == []


def test_a_rail_the_chosen_source_could_not_read_is_a_note(tmp_path):
    root = tmp_path / "board"
    shutil.copytree(JETSON / "orin-nano-jp6" / "sys/bus/i2c", root / "sys/bus/i2c")
    (root / "sys/bus/i2c/devices/1-0040/hwmon/hwmon1/in3_enable").write_text("0\n")
    selection = open_source(f"ina3221:{root}")
    assert selection.notes == ["ina3221: skipped VDD_SOC (1-0040 in3): is disabled (in3_enable is 0)"]
    assert selection.info == []


def test_auto_says_why_ina3221_was_refused_for_an_unreadable_input_rail(tmp_path):
    root = tmp_path / "board"
    shutil.copytree(JETSON / "xavier-nx-jp5" / "sys/bus/i2c", root / "sys/bus/i2c")
    (root / "sys/bus/i2c/devices/7-0040/hwmon/hwmon3/in1_input").write_text("garbage\n")
    selection = open_source(f"auto:{root}")
    assert selection.source is None  # nothing else works under this root: no energy, never a sum of branches
    assert selection.notes[0].startswith("ina3221: the board's input rail VDD_IN (7-0040 in1) cannot be read")


def test_ina3221_on_an_empty_dir_is_a_user_error(tmp_path):
    with pytest.raises(UserError) as info:
        open_source(f"ina3221:{tmp_path}")
    message = str(info.value)
    assert "'ina3221' is not available: no I2C devices" in message and "\n" not in message


def test_a_replay_is_not_a_live_source():
    with pytest.raises(UserError) as info:
        open_source("tegrastats:tests/data/tegrastats/nano-jp4.log")
    message = str(info.value)
    assert "replays a recorded log and cannot measure a live run" in message and "dnnagent power" in message
    assert "\n" not in message


def test_jtop_takes_no_argument():
    with pytest.raises(UserError, match="jtop takes no ROOT"):
        open_source("jtop:/")


def test_jetson_sources_off_a_jetson_are_user_errors():
    for spec in ("jtop", "tegrastats"):
        with pytest.raises(UserError, match=f"power source '{spec}' is not available: "):
            open_source(spec)


@pytest.mark.parametrize("interval_ms", [0.0, -5.0, math.inf, math.nan])
def test_open_live_checks_the_interval(interval_ms):
    with pytest.raises(UserError, match=f"interval {interval_ms:g} ms is not valid: give a positive time"):
        open_live(f"ina3221:{JETSON / 'orin-nano-jp6'}", interval_ms=interval_ms)


def test_rapl_with_recorded_root():
    selection = open_source(f"rapl:{RAPL_ROOT}")
    assert isinstance(selection.source, RaplSource)
    assert selection.source.rails == ("package-0", "package-1")
    assert selection.notes == []


def test_name_is_case_insensitive():
    assert isinstance(open_source(f"RAPL:{RAPL_ROOT}").source, RaplSource)


def test_estimate_with_recorded_root_and_tdp():
    selection = open_source(f"estimate:{PROC_ROOT}", tdp_w=12.5)
    assert isinstance(selection.source, EstimateSource)
    assert selection.source.tdp_w == 12.5


@pytest.mark.parametrize("spec", ["nope", "ina3222", "jtops:/", "rapl2", ""])
def test_unknown_name_is_a_user_error(spec):
    with pytest.raises(UserError) as info:
        open_source(spec)
    message = str(info.value)
    assert "unknown power source" in message and "\n" not in message
    for name in ("auto", "none", "ina3221[:ROOT]", "jtop", "tegrastats[:LOGFILE]", "rapl[:ROOT]", "estimate[:ROOT]"):
        assert name in message


def test_rapl_on_an_empty_dir_is_a_user_error(tmp_path):
    with pytest.raises(UserError) as info:
        open_source(f"rapl:{tmp_path}")
    message = str(info.value)
    assert "'rapl' is not available" in message and "powercap" in message and "\n" not in message


def test_estimate_on_an_empty_dir_is_a_user_error(tmp_path):
    with pytest.raises(UserError, match="'estimate' is not available"):
        open_source(f"estimate:{tmp_path}")


@pytest.mark.parametrize("tdp_w", [0.0, -10.0, math.nan, math.inf])
@pytest.mark.parametrize("spec", [f"estimate:{PROC_ROOT}", f"auto:{PROC_ROOT}"])
def test_bad_tdp_is_a_user_error(spec, tdp_w):
    with pytest.raises(UserError) as info:
        open_source(spec, tdp_w=tdp_w)
    assert "TDP" in str(info.value)


# -- energy never quietly estimated -------------------------------------------------------------------------------


@pytest.mark.parametrize(("kwargs", "why"), [
    ({"jetson": True}, "on a Jetson the estimate (TDP x CPU utilisation) would miss the GPU"),
    ({"gpu": True}, "the estimate models the CPU only and a GPU backend leaves the CPU asleep"),
    ({"require_measured": True}, "--require-measured refuses estimates"),
])
def test_auto_never_estimates_on_a_jetson_for_a_gpu_or_when_told(kwargs, why):
    """Without a sensor, auto falls back to the estimate only on a CPU machine with a CPU backend; elsewhere it
    fails with one line naming every source it looked for."""
    with pytest.raises(UserError) as info:
        open_source(f"auto:{PROC_ROOT}", **kwargs)  # /proc/stat for the estimate, no sensor at all
    message = str(info.value)
    assert message.startswith("auto found no power sensor (ina3221: ") and why in message and "\n" not in message
    assert "tegrastats: " in message and "will not estimate" in message and "--power-source none" in message
    if kwargs.get("gpu"):
        assert "nvml+rapl: " in message and "nvml: " in message  # a GPU backend looks for the GPU's own sensor
    assert isinstance(open_source(f"auto:{PROC_ROOT}").source, EstimateSource)  # a CPU machine: still the estimate


def test_a_jetson_with_a_sensor_is_unaffected():
    selection = open_source(f"auto:{JETSON / 'orin-nano-jp6'}", jetson=True, gpu=True, require_measured=True)
    try:
        assert isinstance(selection.source, Ina3221Source)
    finally:
        selection.source.close()


def test_require_measured_refuses_a_named_estimate():
    with pytest.raises(UserError, match="power source 'estimate' is an estimate, and --require-measured refuses"):
        open_source(f"estimate:{PROC_ROOT}", require_measured=True)
    rapl = open_source(f"rapl:{RAPL_ROOT}", require_measured=True)  # a sensor: fine
    rapl.source.close()
