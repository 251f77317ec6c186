"""The power-source protocol: one small class per kind of sensor, all read the same way.

A source reads one value per rail each time ``read()`` is called. What the value is depends on ``quantity``:

* ``"energy_j"`` — a cumulative energy counter in joules (RAPL, the CPU-time estimate). Energy over a window is the
  difference of the counter interpolated at the window's edges.
* ``"power_w"`` — instantaneous power in watts (INA3221 rails, jtop). Energy is the trapezoid integral.

Sources that cannot work on this machine raise ``SourceUnavailable`` from their constructor, with the reason.
"""

from __future__ import annotations

from abc import ABC, abstractmethod
from typing import ClassVar, Literal


class SourceUnavailable(Exception):
    """This power source does not exist or cannot be read here; ``str()`` says why."""


class PowerSource(ABC):
    name: ClassVar[str]  # spec name: "rapl", "estimate"
    boundary: ClassVar[str]  # what is measured: "cpu_package", "estimate", "input_rail", "sum_of_rails"
    estimated: ClassVar[bool]  # True when values come from a model, not a sensor
    quantity: ClassVar[Literal["energy_j", "power_w"]]
    period_s: float = 0.01  # how often to read: 100 Hz unless the sensor is slower
    update_interval_s: float | None = None  # how often the sensor produces a new value, where known
    rails: tuple[str, ...] = ()
    method: str | None = None  # a sentence a reader of the result needs (how an estimate is made)

    @abstractmethod
    def read(self) -> tuple[float, ...]:
        """One value per rail, in ``quantity`` units. May raise OSError for a transient read failure."""

    def close(self) -> None:  # noqa: B027 - most sources hold nothing open
        """Release whatever the source holds."""
