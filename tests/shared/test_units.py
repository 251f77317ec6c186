"""Energy, power and time with SI prefixes: parsing at the CLI edge, formatting for people."""

import math

import pytest
from hypothesis import given
from hypothesis import strategies as st

from dnnprof.shared import units
from dnnprof.shared.errors import UserError


@pytest.mark.parametrize(
    ("text", "joules"),
    [
        ("10J", 10.0),
        ("250 mJ", 0.25),
        ("0.5kJ", 500.0),
        ("  3 J  ", 3.0),
        ("+2J", 2.0),
        (".5 J", 0.5),
        ("1e3 J", 1000.0),
        ("2.5E-3J", 0.0025),
        ("12 uJ", 12e-6),
        ("12 µJ", 12e-6),  # U+00B5 MICRO SIGN
        ("12 μJ", 12e-6),  # U+03BC GREEK SMALL LETTER MU
        ("7 nJ", 7e-9),
        ("1.5 MJ", 1.5e6),
        ("1 Wh", 3600.0),
        ("2 mWh", 7.2),
        ("1 kWh", 3.6e6),
        ("0 J", 0.0),
    ],
)
def test_parse_energy(text, joules):
    assert units.parse_energy(text) == pytest.approx(joules, rel=1e-12)


@pytest.mark.parametrize(
    ("text", "watts"),
    [("5W", 5.0), ("250mW", 0.25), ("250 mW", 0.25), ("1.2 kW", 1200.0), ("15 uW", 15e-6), ("0W", 0.0)],
)
def test_parse_power(text, watts):
    assert units.parse_power(text) == pytest.approx(watts, rel=1e-12)


@pytest.mark.parametrize(
    ("text", "seconds"),
    [
        ("33ms", 0.033),
        ("2s", 2.0),
        ("2 µs", 2e-6),
        ("2 μs", 2e-6),
        ("500us", 500e-6),
        ("10 ns", 10e-9),
        ("1.5 min", 90.0),
        ("2 h", 7200.0),
        ("1 ks", 1000.0),
    ],
)
def test_parse_time(text, seconds):
    assert units.parse_time(text) == pytest.approx(seconds, rel=1e-12)


def test_parse_accepts_non_str_through_str():
    # a number without a unit is still rejected, whatever its Python type
    with pytest.raises(UserError):
        units.parse_time(5)


BAD = [
    # (parser, text, words the message must contain)
    (units.parse_energy, "10", ["no unit"]),
    (units.parse_time, "2", ["no unit"]),
    (units.parse_power, "  7  ", ["no unit"]),
    (units.parse_energy, "10 cal", ["unknown energy unit", "'cal'"]),
    (units.parse_time, "2parsecs", ["unknown time unit", "'parsecs'"]),
    (units.parse_power, "5 hp", ["unknown power unit"]),
    (units.parse_energy, "10 GJ", ["unknown energy unit"]),  # no giga prefix
    (units.parse_energy, "5W", ["unit of power"]),
    (units.parse_energy, "33ms", ["unit of time"]),
    (units.parse_power, "10J", ["unit of energy"]),
    (units.parse_power, "1 Wh", ["unit of energy"]),
    (units.parse_time, "5 mW", ["unit of power"]),
    (units.parse_time, "10 kJ", ["unit of energy"]),
    (units.parse_energy, "-1 J", ["non-negative"]),
    (units.parse_power, "-0.5W", ["non-negative"]),
    (units.parse_time, "-33ms", ["non-negative"]),
    (units.parse_energy, "1e999 J", ["finite"]),
    (units.parse_energy, "nan J", ["cannot read"]),
    (units.parse_energy, "inf J", ["cannot read"]),
    (units.parse_time, "NaN s", ["cannot read"]),
    (units.parse_power, "infinity W", ["cannot read"]),
    (units.parse_energy, "", ["cannot read"]),
    (units.parse_energy, "   ", ["cannot read"]),
    (units.parse_energy, "J", ["cannot read"]),
    (units.parse_energy, "ten joules", ["cannot read"]),
    (units.parse_energy, "10 J J", ["cannot read"]),
    (units.parse_energy, "1.2.3 J", ["cannot read"]),
    (units.parse_time, "1,5 s", ["cannot read"]),
    (units.parse_time, "5 s\nrm -rf /", ["cannot read"]),
]


@pytest.mark.parametrize(("parser", "text", "words"), BAD, ids=[repr(t) for _, t, _ in BAD])
def test_bad_forms_raise_one_line_user_error(parser, text, words):
    with pytest.raises(UserError) as info:
        parser(text)
    message = str(info.value)
    assert "\n" not in message
    for word in words:
        assert word in message
    assert info.value.exit_code != 0


def test_error_message_gives_examples():
    with pytest.raises(UserError) as info:
        units.parse_time("2")
    assert "33ms" in str(info.value)


def test_unknown_dimension_is_a_programming_error():
    with pytest.raises(ValueError):
        units.parse_quantity("1 J", "charge")


@pytest.mark.parametrize(
    ("formatter", "value", "text"),
    [
        (units.format_energy, 0.0123, "12.3 mJ"),
        (units.format_energy, 12345.0, "12.3 kJ"),
        (units.format_energy, 10.0, "10 J"),
        (units.format_energy, 2.5e6, "2.5 MJ"),
        (units.format_energy, 3e-9, "3 nJ"),
        (units.format_energy, 4.2e-6, "4.2 µJ"),
        (units.format_energy, 999.0, "999 J"),
        (units.format_energy, 999.7, "1 kJ"),  # rounds up into the next prefix, never "1e+03 J"
        (units.format_energy, 0.0009996, "1 mJ"),
        (units.format_energy, -0.0123, "-12.3 mJ"),
        (units.format_energy, 0, "0 J"),
        (units.format_power, 5.0, "5 W"),
        (units.format_power, 0.25, "250 mW"),
        (units.format_power, 1234.5, "1.23 kW"),
        (units.format_power, 0.0, "0 W"),
        (units.format_time, 0.033, "33 ms"),
        (units.format_time, 2.0, "2 s"),
        (units.format_time, 2e-6, "2 µs"),
        (units.format_time, 0.0, "0 s"),
    ],
)
def test_format_picks_prefix(formatter, value, text):
    assert formatter(value) == text


@pytest.mark.parametrize("value", [0.0009995, 999.5, 999.5e-9, 0.9995, 999.49999999, 999.5e3])
def test_format_at_a_prefix_boundary_never_shows_an_exponent(value):
    number, unit = units.format_energy(value).split()
    assert "e" not in number
    assert 0.999 <= float(number) < 1000


def test_format_digits():
    assert units.format_energy(0.0123456, digits=5) == "12.346 mJ"
    assert units.format_time(1.0 / 3.0, digits=2) == "330 ms"


@pytest.mark.parametrize("formatter", [units.format_energy, units.format_power, units.format_time])
@pytest.mark.parametrize("missing", [None, float("nan")])
def test_not_measured_is_a_dash_never_zero(formatter, missing):
    text = formatter(missing)
    assert text == "—"
    assert "0" not in text


def test_missing_placeholder_is_configurable():
    assert units.format_quantity(None, "power", missing="n/a") == "n/a"


@pytest.mark.parametrize(
    ("dimension", "parse"),
    [("energy", units.parse_energy), ("power", units.parse_power), ("time", units.parse_time)],
)
@given(value=st.floats(min_value=1e-9, max_value=9.99e8, allow_nan=False, allow_infinity=False))
def test_format_then_parse_round_trips(dimension, parse, value):
    text = units.format_quantity(value, dimension)
    number = text.split()[0]
    assert "e" not in number.lower(), text  # a prefix, not an exponent, carries the scale
    assert 0.999 <= abs(float(number)) < 1000 or value < 1e-9 * 0.9995, text
    assert math.isclose(parse(text), value, rel_tol=5e-3)


@given(
    value=st.floats(min_value=0, max_value=1e12, allow_nan=False, allow_infinity=False),
    digits=st.integers(min_value=1, max_value=12),
)
def test_round_trip_within_rounding_for_any_digits(value, digits):
    text = units.format_energy(value, digits=digits)
    assert math.isclose(units.parse_energy(text), value, rel_tol=5 * 10.0 ** -digits, abs_tol=1e-300)


@pytest.mark.parametrize(
    ("values", "dimension", "expected"),
    [
        ([0.012, 0.05], "energy", (1e-3, "mJ")),
        ([0.012, None, 1.5, 2.0], "energy", (1.0, "J")),  # the median decides, not the extremes
        ([3e-6, 4e-6, 900.0], "energy", (1e-6, "µJ")),
        ([5e6], "energy", (1e6, "MJ")),
        ([2e-12], "energy", (1e-9, "nJ")),  # below the smallest prefix: the smallest prefix
        ([-0.25], "power", (1e-3, "mW")),
        ([0.033, 0.040], "time", (1e-3, "ms")),
        ([], "power", (1.0, "W")),
        ([None, float("nan"), 0.0], "energy", (1.0, "J")),  # nothing measured: the base unit
    ],
)
def test_common_unit(values, dimension, expected):
    assert units.common_unit(values, dimension) == expected
