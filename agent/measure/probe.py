"""Read one power source for a while and say what it measured: per-rail mean power, total, energy, rate.

Live sources are sampled with the sweep's own Sampler, so the figures are those a profiling window would get;
a ``tegrastats:LOGFILE`` replay integrates the recorded trace instead. A source that is missing or gives fewer
than two readings is an error said aloud (UserError), never a reading of 0.
"""

from __future__ import annotations

import math
import time
from collections.abc import Callable
from dataclasses import asdict, dataclass, field

from dnnprof.agent.measure import energy
from dnnprof.agent.power import MEASURING_SPECS, SOURCES, is_replay, open_live, parse_spec
from dnnprof.agent.power import rails as railnames
from dnnprof.agent.power.base import check_positive
from dnnprof.agent.power.tegrastats import read_log
from dnnprof.shared.errors import UserError

from .sampler import Sampler, clock

PROGRESS_STEP_S = 0.1  # how often on_progress hears from a live probe


@dataclass
class PowerReading:
    """What a probe measured. Powers in W, energies in J, times in s."""

    source: str
    boundary: str  # "input_rail", "sum_of_rails", "cpu_package", "estimate"
    estimated: bool
    rails: dict[str, float]  # rail → mean power over the window, W
    total_w: float  # mean total power: the input rail where there is one, else the sum of rails
    # "input_rail" | "sum_of_rails": RAPL packages and the estimate are summed too; ``boundary`` says what they are
    total_kind: str
    input_rail: str | None
    energy_j: float  # total energy over the window
    samples: int  # readings in the window
    unique_samples: int  # of those, new values from the sensor (repeats of a slower sensor dropped)
    rate_hz: float  # achieved readings per second, over the span of the readings in the window
    duration_s: float  # the window: first to last reading (replay: the log's start to the end asked for)
    read_errors: int = 0
    replay: bool = False
    method: str | None = None
    notes: list[str] = field(default_factory=list)  # worth a warning: an unreadable rail, an option not used
    info: list[str] = field(default_factory=list)  # normal for the hardware: channels labelled NC, dropped

    @property
    def total_words(self) -> str:
        """How ``total_w`` is formed, in words: ``"input rail VDD_IN"``, ``"sum of rails"``, ``"CPU packages,
        summed"``, ``"estimate"``."""
        return railnames.describe_total(self.input_rail, self.boundary)

    def to_json(self) -> dict:
        """A JSON-ready dict: rails, total_w, total_kind, energy_j, samples, rate_hz and the provenance keys."""
        return asdict(self)


def probe(spec: str, duration_s: float, *, interval_ms: float | None = None, tdp_w: float | None = None,
          on_progress: Callable[[float], None] | None = None) -> PowerReading:
    """Measure ``spec`` for ``duration_s`` seconds.

    Live sources: ``interval_ms`` is the rate asked of jtop/tegrastats, or the sampling period of the sysfs
    sources (default: the source's own, 100 Hz for ina3221/rapl). ``on_progress(fraction)`` is called from 0 to 1.
    Replay (``tegrastats:LOGFILE``): the first ``duration_s`` seconds of the log (``math.inf``: all of it);
    ``interval_ms`` spaces lines that do not each carry their own date (``notes`` says when it was not used); the
    window must hold at least two lines. Raises UserError for anything that gives no measurement.
    """
    check_positive(duration_s, f"duration {duration_s:g} s", "5s or 500ms", infinite=True)
    if is_replay(spec):
        return _replay(parse_spec(spec)[1], duration_s, interval_ms, on_progress)
    if not math.isfinite(duration_s):
        raise UserError("a live power source needs a finite --duration, e.g. 5s")
    name, _ = parse_spec(spec)
    if name == "none":
        raise UserError(f"none measures nothing: name a source ({MEASURING_SPECS})")
    if name != "auto" and name not in SOURCES:
        raise UserError(f"unknown power source {spec!r}: use {MEASURING_SPECS}")  # open_live's list offers none
    selection = open_live(spec, tdp_w=tdp_w, interval_ms=interval_ms)
    source = selection.source
    if source is None:
        raise UserError("no power source works here: " + "; ".join(selection.notes))
    # jtop and tegrastats were asked for interval_ms themselves; the sysfs sources are paced by the sampler.
    paced_here = source.name not in ("jtop", "tegrastats")
    period_s = interval_ms / 1e3 if interval_ms is not None and paced_here else None
    try:
        sampler = Sampler(source, period_s)
        with sampler:
            start = clock()
            while (elapsed := clock() - start) < duration_s:
                if on_progress is not None:
                    on_progress(elapsed / duration_s)
                time.sleep(min(PROGRESS_STEP_S, duration_s - elapsed))
        if on_progress is not None:
            on_progress(1.0)
    finally:
        source.close()
    if len(sampler.ts) < 2:
        raise UserError(f"power source {source.name!r} gave {len(sampler.ts)} readings in {duration_s:g} s "
                        f"({sampler.read_errors} read errors): no measurement")
    t0, t1 = sampler.ts[0], sampler.ts[-1]
    span_s = t1 - t0
    if span_s <= 0:
        raise UserError(f"power source {source.name!r}: all readings at one instant: no measurement")
    window = sampler.energy(t0, t1)
    return PowerReading(
        source=source.name, boundary=source.boundary, estimated=source.estimated,
        rails={rail: e / span_s for rail, e in window.rails_j.items()}, total_w=window.energy_j / span_s,
        total_kind=railnames.boundary_of(source.input_rail), input_rail=source.input_rail,
        energy_j=window.energy_j, samples=window.samples, unique_samples=window.unique_samples,
        rate_hz=window.rate_hz, duration_s=span_s, read_errors=sampler.read_errors, method=source.method,
        notes=selection.notes, info=selection.info)


def _replay(logfile: str, duration_s: float, interval_ms: float | None,
            on_progress: Callable[[float], None] | None) -> PowerReading:
    """Integrate a recorded tegrastats log (trapezoid per rail) over its first ``duration_s`` seconds."""
    log = read_log(logfile, interval_ms)
    if len(log) < 2:
        raise UserError(f"{log.path} has one line: a replay needs at least two to integrate")
    t0 = log.ts[0]
    t1 = min(log.ts[-1], t0 + duration_s)
    inside = [t for t in log.ts if t <= t1]  # read_log's timestamps rise strictly
    if len(inside) < 2:
        # One line is one instant: no rate, and an "energy" that is only that line's power stretched over the window.
        raise UserError(f"{log.path}: --duration {duration_s:g}s holds only the first of its {len(log)} lines (the "
                        f"log spans {log.ts[-1] - t0:g} s): give --duration {log.ts[1] - t0:g}s or more, or leave it "
                        "out to read the whole log")
    rails_j = {rail: energy.trapezoid_energy(log.ts, [v[i] for v in log.values], t0, t1)
               for i, rail in enumerate(log.rails)}
    span_s = t1 - t0
    total_j = railnames.total_of(rails_j, log.input_rail)
    if on_progress is not None:
        on_progress(1.0)
    return PowerReading(
        source=log.name, boundary=log.boundary, estimated=False,
        rails={rail: e / span_s for rail, e in rails_j.items()}, total_w=total_j / span_s,
        total_kind=log.boundary, input_rail=log.input_rail, energy_j=total_j, samples=len(inside),
        unique_samples=len(inside), rate_hz=(len(inside) - 1) / (inside[-1] - t0), duration_s=span_s, replay=True,
        method=log.method, notes=[f"{log.name}: {note}" for note in log.notes],
        info=[f"{log.name}: {note}" for note in log.info])
