"""Rail naming shared by the Jetson sources: which rail is the board's input, which labels are not rails."""

import pytest

from dnnprof.agent.power import rails


@pytest.mark.parametrize(("names", "expected"), [
    (["VDD_IN", "VDD_CPU_GPU_CV", "VDD_SOC"], "VDD_IN"),
    (["POM_5V_GPU", "POM_5V_IN", "POM_5V_CPU"], "POM_5V_IN"),  # wherever it stands in the list
    (["VIN", "VDD_GPU"], "VIN"),
    (["vdd in", "VDD_SOC"], "vdd in"),  # spelt with a space or in lower case, still the input; shown as given
    (["VDD_GPU_SOC", "VDD_CPU_CV", "VIN_SYS_5V0", "VDDQ_VDD2_1V8AO"], None),  # AGX Orin: VIN_SYS_5V0 is a branch
    (["GPU", "CPU", "SOC", "CV", "VDDRQ", "SYS5V"], None),  # AGX Xavier
    (["VDD_IN_2", "XVDD_IN"], None),  # exact names only
    ([], None),
])
def test_input_rail(names, expected):
    assert rails.find_input_rail(names) == expected


def test_first_input_rail_wins():
    assert rails.find_input_rail(["VIN", "VDD_IN"]) == "VIN"


def test_extra_names_for_shortened_labels():
    # jetson-stats <= 4.1 shortens VDD_IN to "IN" and POM_5V_IN to "5V IN"
    assert rails.find_input_rail(["CPU GPU CV", "IN"], ("IN", "5V_IN")) == "IN"
    assert rails.find_input_rail(["5V GPU", "5V IN"], ("IN", "5V_IN")) == "5V IN"
    assert rails.find_input_rail(["IN"]) is None


@pytest.mark.parametrize(("label", "nc"), [
    ("NC", True), ("nc", True), ("NC_2", True), (" NC\n", True),
    ("VDD_SYNC", False), ("VDDQ_VDD2_1V8AO", False), ("VIN_SYS_5V0", False),
])
def test_not_connected(label, nc):
    assert rails.not_connected(label) is nc


def test_summation_label():
    assert rails.is_summation("sum of shunt voltages")
    assert rails.is_summation("Sum of shunt voltages\n")
    assert not rails.is_summation("VDD_SOC")


def test_boundary_and_words():
    assert rails.boundary_of("VDD_IN") == "input_rail"
    assert rails.boundary_of(None) == "sum_of_rails"
    assert rails.describe_total("VDD_IN") == "input rail VDD_IN"
    assert rails.describe_total(None) == "sum of rails"


@pytest.mark.parametrize(("boundary", "words"), [
    ("input_rail", "sum of rails"),  # no input rail named: what the total is, not what the boundary claims
    ("sum_of_rails", "sum of rails"), (None, "sum of rails"),
    ("cpu_package", "CPU packages, summed"), ("estimate", "estimate"),
])
def test_words_for_every_boundary(boundary, words):
    assert rails.describe_total(None, boundary) == words
    assert rails.describe_total("VDD_IN", boundary) == "input rail VDD_IN"


def test_total_of_is_the_input_rail_or_the_sum():
    per_rail = {"VDD_IN": 5.0, "VDD_CPU_GPU_CV": 1.0, "VDD_SOC": 2.0}
    assert rails.total_of(per_rail, "VDD_IN") == 5.0
    assert rails.total_of(per_rail, None) == 8.0


def test_count():
    assert rails.count(1) == "1 rail" and rails.count(3) == "3 rails" and rails.count(0) == "0 rails"
