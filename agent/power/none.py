"""The power source of a run without one: it measures nothing and says so — "no energy", never 0 W.

Results, board info and telemetry read its fields like any source's: ``name`` and ``boundary`` are None (the
results' word for "not measured"), ``measures`` is False, and ``method`` says why there is no energy. The sweep
takes no idle baseline and starts no sampler for it; reading it is a programming error.
"""

from __future__ import annotations

from typing import ClassVar, Literal

from .base import PowerSource, SourceUnavailable


class NoPower(PowerSource):
    """No power source (``--power-source none``, or nothing works here): no energy, said aloud."""

    name: ClassVar[str | None] = None  # type: ignore[assignment]  # results say power_source null
    spec: ClassVar[str] = "none"  # how the user names it, and the ledger's key
    measures: ClassVar[bool] = False
    estimated: ClassVar[bool] = False
    quantity: ClassVar[Literal["energy_j", "power_w"]] = "power_w"
    boundary = None  # type: ignore[assignment]
    method = "no power source: energy not measured"

    def read(self) -> tuple[float, ...]:
        raise SourceUnavailable("no power source: there is nothing to read (energy is not measured)")


NO_POWER = NoPower()
