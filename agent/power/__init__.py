"""Power sources, one module per kind, and the factory that picks one.

Auto-detection tries the real sensors in ``AUTO_ORDER`` and falls back to the labelled estimate only when none
works. ``none`` profiles without energy (results say so). A spec is ``NAME[:ROOT]``; ROOT is the filesystem root
the source reads under (``/`` by default), so a recorded sysfs tree works in place of the live one.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field

from dnnprof.shared.errors import UserError

from .base import PowerSource, SourceUnavailable
from .estimate import EstimateSource
from .rapl import RaplSource

SOURCES: dict[str, type[PowerSource]] = {"rapl": RaplSource, "estimate": EstimateSource}
AUTO_ORDER = ("rapl",)  # real sensors, best first; the estimate is the last resort

__all__ = ["PowerSource", "SourceUnavailable", "Selection", "open_source", "SOURCES", "AUTO_ORDER"]


@dataclass
class Selection:
    source: PowerSource | None
    notes: list[str] = field(default_factory=list)  # why other sources were not used


def _make(name: str, root: str | None, tdp_w: float | None) -> PowerSource:
    kwargs: dict = {"root": root} if root else {}
    if name == "estimate" and tdp_w is not None:
        kwargs["tdp_w"] = tdp_w
    return SOURCES[name](**kwargs)


def open_source(spec: str = "auto", *, tdp_w: float | None = None) -> Selection:
    """Open the power source named by ``spec`` (``auto``, ``none``, ``rapl[:ROOT]``, ``estimate[:ROOT]``).

    An explicitly named source that cannot work raises UserError; ``auto`` records why each one was skipped.
    """
    name, _, root = spec.partition(":")
    name = name.strip().lower()
    if name == "none":
        return Selection(None, ["power source disabled (--power-source none): no energy will be reported"])
    if tdp_w is not None and not (math.isfinite(tdp_w) and tdp_w > 0):
        raise UserError(f"TDP {tdp_w:g} W is not valid: give the processor's TDP in watts, a positive number")
    if name == "auto":
        notes = []
        for candidate in AUTO_ORDER:
            try:
                return Selection(_make(candidate, root or None, tdp_w), notes)
            except SourceUnavailable as exc:
                notes.append(f"{candidate}: {exc}")
        try:
            source = _make("estimate", root or None, tdp_w)
        except SourceUnavailable as exc:
            notes.append(f"estimate: {exc}")
            notes.append("no power source: no energy will be reported")
            return Selection(None, notes)
        notes.append("no power sensor found: energy is an ESTIMATE (TDP x CPU utilisation)")
        return Selection(source, notes)
    if name not in SOURCES:
        raise UserError(f"unknown power source {spec!r}: use auto, none, {', '.join(n + '[:ROOT]' for n in SOURCES)}")
    try:
        return Selection(_make(name, root or None, tdp_w))
    except SourceUnavailable as exc:
        raise UserError(f"power source {name!r} is not available: {exc}") from None
