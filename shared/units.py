"""Parsing and formatting of energy, power and time with SI prefixes: ``10J``, ``250 mJ``, ``0.5kJ``, ``5W``, ``33ms``.

Values are carried internally in base SI units (J, W, s); only the edges of the program see prefixes.
"""

from __future__ import annotations

import math
import re

from .errors import UserError

# Base unit symbol per dimension, and extra non-SI spellings with their factor to the base unit.
_BASE = {"energy": "J", "power": "W", "time": "s"}
_EXTRA = {
    "energy": {"Wh": 3600.0, "kWh": 3.6e6, "mWh": 3.6},
    "power": {},
    "time": {"min": 60.0, "h": 3600.0},
}
_PREFIX = {"n": 1e-9, "u": 1e-6, "µ": 1e-6, "μ": 1e-6, "m": 1e-3, "": 1.0, "k": 1e3, "M": 1e6}
_NUMBER = re.compile(r"^\s*([+-]?(?:\d+(?:\.\d*)?|\.\d+)(?:[eE][+-]?\d+)?)\s*([^\s\d.+-][^\s]*)?\s*$")


def _examples(dimension: str) -> str:
    return {"energy": "10J, 250mJ, 0.5kJ", "power": "5W, 250mW", "time": "33ms, 2s, 500us"}[dimension]


def parse_quantity(text: str, dimension: str) -> float:
    """Parse ``text`` such as ``"250 mJ"`` into the base unit of ``dimension`` (J, W or s).

    Raises UserError naming the accepted forms for anything else: a missing or unknown unit, a unit of another
    dimension, a negative or non-finite number.
    """
    if dimension not in _BASE:
        raise ValueError(f"unknown dimension {dimension!r}")
    match = _NUMBER.match(str(text))
    if not match:
        raise UserError(f"cannot read {text!r} as {dimension}: write a number and a unit, e.g. {_examples(dimension)}")
    number, unit = float(match.group(1)), match.group(2)
    if unit is None:
        raise UserError(f"{text!r} has no unit: write the {dimension} with its unit, e.g. {_examples(dimension)}")
    factor = _unit_factor(unit, dimension)
    if factor is None:
        other = [d for d in _BASE if d != dimension and _unit_factor(unit, d) is not None]
        hint = f" ({unit!r} is a unit of {other[0]})" if other else ""
        raise UserError(f"unknown {dimension} unit {unit!r} in {text!r}{hint}: use e.g. {_examples(dimension)}")
    value = number * factor
    if not math.isfinite(value) or value < 0:
        raise UserError(f"{text!r} must be a finite, non-negative {dimension}")
    return value


def _unit_factor(unit: str, dimension: str) -> float | None:
    base = _BASE[dimension]
    if unit in _EXTRA[dimension]:
        return _EXTRA[dimension][unit]
    if unit.endswith(base) and unit[: -len(base)] in _PREFIX:
        return _PREFIX[unit[: -len(base)]]
    return None


def parse_energy(text: str) -> float:
    """``"10J"`` → 10.0 (joules)."""
    return parse_quantity(text, "energy")


def parse_power(text: str) -> float:
    """``"5W"`` → 5.0 (watts)."""
    return parse_quantity(text, "power")


def parse_time(text: str) -> float:
    """``"33ms"`` → 0.033 (seconds)."""
    return parse_quantity(text, "time")


_SCALE = [(1e6, "M"), (1e3, "k"), (1.0, ""), (1e-3, "m"), (1e-6, "µ"), (1e-9, "n")]


def format_quantity(value: float | None, dimension: str, digits: int = 3, missing: str = "—") -> str:
    """Format a base-unit value with the prefix that puts it in [1, 1000): ``0.0123, "energy"`` → ``"12.3 mJ"``.

    ``None`` (not measured) is shown as ``missing``, never as zero.
    """
    if value is None or (isinstance(value, float) and math.isnan(value)):
        return missing
    base = _BASE[dimension]
    if value == 0:
        return f"0 {base}"
    magnitude = abs(value)
    for index, (factor, prefix) in enumerate(_SCALE):
        if magnitude >= factor * 0.9995:
            break
    number = float(f"{value / factor:.{digits}g}")
    if abs(number) >= 1000 and index > 0:  # rounding carried it to 1000: the next prefix up shows it
        factor, prefix = _SCALE[index - 1]
        number = float(f"{value / factor:.{digits}g}")
    text = f"{number:.{digits}g}"
    if "e" in text and abs(number) >= 1:  # few digits print 330 as 3.3e+02
        text = f"{number:.0f}"
    return f"{text} {prefix}{base}"


def format_energy(joules: float | None, digits: int = 3) -> str:
    return format_quantity(joules, "energy", digits)


def format_power(watts: float | None, digits: int = 3) -> str:
    return format_quantity(watts, "power", digits)


def format_time(seconds: float | None, digits: int = 3) -> str:
    return format_quantity(seconds, "time", digits)


def common_unit(values: list[float | None], dimension: str) -> tuple[float, str]:
    """One (factor, unit) for a column of values, chosen from their median: ``[0.012, 0.05]`` → (1e-3, "mJ")."""
    present = sorted(abs(v) for v in values if v is not None and v == v and v != 0)
    base = _BASE[dimension]
    if not present:
        return 1.0, base
    median = present[len(present) // 2]
    for factor, prefix in _SCALE:
        if median >= factor * 0.9995:
            return factor, prefix + base
    return _SCALE[-1][0], _SCALE[-1][1] + base
