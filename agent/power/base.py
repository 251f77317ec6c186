"""The power-source protocol: one small class per kind of sensor, all read the same way.

A source reads one value per rail each time ``read()`` is called. What the value is depends on ``quantity``:

* ``"energy_j"`` — a cumulative energy counter in joules (RAPL, the CPU-time estimate). Energy over a window is the
  difference of the counter interpolated at the window's edges.
* ``"power_w"`` — instantaneous power in watts (INA3221 rails, jtop). Energy is the trapezoid integral.

Sources that cannot work on this machine raise ``SourceUnavailable`` from their constructor, with the reason. What
a source leaves out is said in two lists, each entry one sentence: ``notes`` for what a reader should look into (an
unreadable or disabled rail) and ``info`` for what is normal for the hardware (a channel labelled NC).
"""

from __future__ import annotations

import math
import os
from abc import ABC, abstractmethod
from pathlib import Path
from typing import ClassVar, Literal

from dnnprof.shared.errors import UserError

from . import rails as railnames


def check_positive(value: float, what: str, example: str, *, infinite: bool = False) -> float:
    """``value`` when it is a positive number (``math.inf`` too where ``infinite``); else UserError
    ``"<what> is not valid: give a positive time, e.g. <example>"``. The one check of every duration and interval
    the power code takes (``dnnagent power`` options, ``probe``, ``open_live``, ``read_log``)."""
    if not (value > 0 and (math.isfinite(value) or (infinite and value == math.inf))):
        raise UserError(f"{what} is not valid: give a positive time, e.g. {example}")
    return value


def check_interval_ms(interval_ms: float | None) -> float | None:
    """``check_positive`` for an optional interval in milliseconds (None: the source's default)."""
    if interval_ms is None:
        return None
    return check_positive(interval_ms, f"interval {interval_ms:g} ms", "100, 100ms or 0.1s")


class SourceUnavailable(Exception):
    """This power source does not exist or cannot be read here; ``str()`` says why."""


class PowerSource(ABC):
    name: ClassVar[str]  # spec name: "rapl", "estimate"
    measures: ClassVar[bool] = True  # False only for power.none.NoPower: no energy
    boundary: str  # what the total covers: "cpu_package", "estimate", "input_rail", "sum_of_rails"
    estimated: ClassVar[bool]  # True when values come from a model, not a sensor
    quantity: ClassVar[Literal["energy_j", "power_w"]]
    period_s: float = 0.01  # how often to read: 100 Hz unless the sensor is slower
    update_interval_s: float | None = None  # how often the sensor produces a new value, where known
    rails: tuple[str, ...] = ()
    # The rail that feeds the whole board (VDD_IN, POM_5V_IN, VIN), where the source has one: then the total is
    # that rail alone, since the other rails are branches of it and summing would count them twice.
    input_rail: str | None = None
    method: str | None = None  # a sentence a reader of the result needs (how an estimate is made)

    @abstractmethod
    def read(self) -> tuple[float, ...]:
        """One value per rail, in ``quantity`` units. May raise OSError or ValueError for a transient failure."""

    def conditions(self):
        """What the measured devices run at now, where the source can read it (NVML: GPU clocks, temperature,
        throttle reasons, an ``nvml.GpuConditions``); None for the rest."""
        return None

    def close(self) -> None:  # noqa: B027 - most sources hold nothing open
        """Release whatever the source holds."""

    def total(self, values: tuple[float, ...] | list[float]) -> float:
        """The board's total from one value per rail: the input rail where there is one, else the sum (the rule of
        ``rails.total_of``, by position: the sampler calls this for every reading)."""
        if self.input_rail is None:
            return sum(values)
        return values[self.rails.index(self.input_rail)]

    def total_of(self, per_rail: dict[str, float]) -> float:
        """``total`` of a per-rail mapping (energies or powers keyed by rail name): ``rails.total_of``."""
        return railnames.total_of(per_rail, self.input_rail)


class HeldFile:
    """A sysfs/procfs file kept open and re-read in place with one ``pread`` — at 100 Hz, open/read/close of
    every file on every sample costs more than the reading itself."""

    def __init__(self, path: str | Path, size: int = 4096) -> None:
        self.path = Path(path)
        self._size = size
        self._fd = -1  # set first: __del__ runs even when the open below fails
        self._fd = os.open(self.path, os.O_RDONLY)

    def read(self) -> str:
        return os.pread(self._fd, self._size, 0).decode("ascii", "replace")

    def close(self) -> None:
        if self._fd >= 0:
            os.close(self._fd)
            self._fd = -1

    def __del__(self) -> None:
        self.close()
