"""Rail naming shared by the Jetson power sources (INA3221 sysfs, tegrastats, jtop).

Which rail is the board's input, and which channels are not rails at all, is decided here once, from the names the
board itself reports — never from a list of boards.
"""

from __future__ import annotations

import re
from collections.abc import Iterable, Mapping

# Rails that feed the whole module/board: VDD_IN (Xavier NX, Orin NX/Nano, TX2), POM_5V_IN (Nano), VIN (Thor's
# INA238 carrier input). Exact names only: AGX Orin's VIN_SYS_5V0 is a branch of the board's supply, not its input,
# and AGX Orin has no input rail at all (jetson_stats core/power.py `total_power`; issues #51, #344).
INPUT_RAIL_NAMES = ("VDD_IN", "POM_5V_IN", "VIN")


def normalise(name: str) -> str:
    """``"vdd in"``, ``"VDD-IN"``, ``"VDD_IN\\n"`` → ``"VDD_IN"``: how labels are compared, not how they are shown."""
    return re.sub(r"[\s\-]+", "_", name.strip()).upper()


def find_input_rail(rails: Iterable[str], extra_names: Iterable[str] = ()) -> str | None:
    """The first rail (in the source's order) whose name is an input-rail name, or None when there is none."""
    wanted = set(INPUT_RAIL_NAMES) | {normalise(n) for n in extra_names}
    return next((rail for rail in rails if normalise(rail) in wanted), None)


def not_connected(label: str) -> bool:
    """True for a channel labelled NC (not connected), e.g. AGX Orin's ``NC`` channels of 1-0041.

    NC must be a whole word of the label ("NC", "NC_2"), so a real rail whose name merely contains the letters
    ("VDD_SYNC") is kept — jtop's substring test would drop it.
    """
    return "NC" in re.split(r"[^A-Z0-9]+", label.strip().upper())


def is_summation(label: str) -> bool:
    """True for the INA3221 summation channel (hwmon ``in7``, label "sum of shunt voltages"): not a rail."""
    return "sum of shunt" in label.strip().lower()


def boundary_of(input_rail: str | None) -> str:
    """``"input_rail"`` when the board has an input rail (the total is that rail), else ``"sum_of_rails"``."""
    return "input_rail" if input_rail is not None else "sum_of_rails"


def total_of(per_rail: Mapping[str, float], input_rail: str | None) -> float:
    """The board's total of a per-rail mapping (energies or powers): the input rail where there is one, else the
    sum — the branches are inside the input rail, so adding them to it would count them twice."""
    return per_rail[input_rail] if input_rail is not None else sum(per_rail.values())


def describe_total(input_rail: str | None, boundary: str | None = None) -> str:
    """How the total is formed, in words: ``"input rail VDD_IN"``, ``"sum of rails"``; for the non-Jetson
    boundaries ``"CPU packages, summed"`` (RAPL), the GPU boards (NVML), both, and ``"estimate"``."""
    if input_rail is not None:
        return f"input rail {input_rail}"
    return {"cpu_package": "CPU packages, summed", "gpu_board": "GPU boards, summed",
            "cpu_package+gpu_board": "CPU packages and GPU boards, summed",
            "estimate": "estimate"}.get(boundary or "", "sum of rails")


def count(n: int) -> str:
    """``"1 rail"``, ``"3 rails"``."""
    return f"{n} rail" if n == 1 else f"{n} rails"
