"""open_source: picking a power source by spec, with recorded trees as the machine."""

import math
from pathlib import Path

import pytest

from dnnprof.agent.power import AUTO_ORDER, SOURCES, Selection, open_source
from dnnprof.agent.power.estimate import EstimateSource
from dnnprof.agent.power.rapl import RaplSource
from dnnprof.shared.errors import UserError

DATA = Path(__file__).parents[2] / "data"
RAPL_ROOT = DATA / "powercap" / "two-packages"
PROC_ROOT = DATA / "procstat" / "x86-4cpu"  # has proc/stat, no sys/class/powercap


def test_registry():
    assert SOURCES == {"rapl": RaplSource, "estimate": EstimateSource}
    assert "estimate" not in AUTO_ORDER  # the estimate is only ever the last resort


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
    assert selection.notes == []


def test_auto_with_nothing_at_all(tmp_path):
    selection = open_source(f"auto:{tmp_path}")
    assert selection.source is None
    assert any(note.startswith("rapl:") for note in selection.notes)
    assert any(note.startswith("estimate:") for note in selection.notes)
    assert "no energy" in selection.notes[-1]


def test_auto_passes_the_tdp_to_the_estimate():
    selection = open_source(f"auto:{PROC_ROOT}", tdp_w=25.0)
    assert selection.source.tdp_w == 25.0


def test_auto_on_this_machine_gives_some_source_or_says_why():
    selection = open_source("auto")
    assert selection.source is not None or selection.notes


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


@pytest.mark.parametrize("spec", ["nope", "ina3221", "jtop:/", "rapl2", ""])
def test_unknown_name_is_a_user_error(spec):
    with pytest.raises(UserError) as info:
        open_source(spec)
    message = str(info.value)
    assert "unknown power source" in message and "\n" not in message
    assert "auto" in message and "rapl" in message and "estimate" in message


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
