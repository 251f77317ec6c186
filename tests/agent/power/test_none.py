"""NoPower: the source of a run without one says "no energy" in every field a result reads, never 0."""

import pytest

from dnnprof.agent.power import NO_POWER, NoPower, Selection, open_live
from dnnprof.agent.power.base import PowerSource, SourceUnavailable


def test_no_power_is_a_source_that_measures_nothing():
    assert isinstance(NO_POWER, PowerSource) and isinstance(NO_POWER, NoPower)
    assert NO_POWER.measures is False and NO_POWER.name is None and NO_POWER.boundary is None
    assert NO_POWER.estimated is False and NO_POWER.rails == () and NO_POWER.update_interval_s is None
    assert NO_POWER.method == "no power source: energy not measured" and NoPower.spec == "none"
    with pytest.raises(SourceUnavailable, match="nothing to read"):
        NO_POWER.read()
    NO_POWER.close()  # closing it is harmless


def test_a_selection_without_a_source_gives_no_power():
    selection = open_live("none")
    assert selection.source is None and selection.power is NO_POWER
    assert "no energy will be reported" in selection.notes[0]
    assert Selection(None).power is NO_POWER
