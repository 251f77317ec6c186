"""Power sources, one module per kind, and the factory that picks one.

A spec is ``NAME[:ARG]``:

* ``ina3221[:ROOT]`` — Jetson INA3221 rails read directly from sysfs (``ina3221.py``)
* ``jtop`` — Jetson rails through the jetson-stats service (``jtop.py``)
* ``tegrastats`` — Jetson rails from a spawned ``tegrastats --interval MS`` (``tegrastats.py``);
  ``tegrastats:LOGFILE`` *replays* a recorded log: ``dnnagent power`` reads it, a live sweep refuses it
* ``rapl[:ROOT]`` — Intel/AMD CPU package energy counters (``rapl.py``)
* ``estimate[:ROOT]`` — a labelled estimate, TDP x CPU utilisation (``estimate.py``)
* ``nvml[:INDEX[,INDEX]]`` — NVIDIA GPU board energy per GPU through NVML, every GPU by default (``nvml.py``);
  ``nvml+rapl[:INDEX[,INDEX]]`` — the CPU packages (RAPL) and the GPUs together, a rail per part. Neither is in
  ``AUTO_ORDER``: which boundary is right depends on the backend (a GPU backend wants the GPU; a CPU one does not).
* ``auto[:ROOT]`` — the first of ``AUTO_ORDER`` that works here, else the estimate (never on a Jetson or while a
  GPU backend runs: see below); ``none`` — no energy

ROOT is the filesystem root a source reads under (``/`` by default), so a recorded tree works in place of the live
one; ``auto:ROOT`` hands it to every candidate (jtop looks for its socket and tegrastats for its binary under it).

Auto-detection order, best first — ``AUTO_ORDER``:

1. ``ina3221``: the board's own power monitors read in-process at 100 Hz — the fastest and most direct, and it
   needs nothing installed (JetPack 4's iio files may need root).
2. ``jtop``: the same monitors read by the jetson-stats root service — works without sysfs access (a container
   with ``/run/jtop.sock`` mounted), but samples only at the service's interval and needs a matching client.
3. ``tegrastats``: NVIDIA's tool as a child process — always on a Jetson, but line-rate (10 Hz here) and text.
4. ``rapl``: CPU package energy on x86 machines (not Jetsons).

While a GPU backend runs (TensorRT off a Jetson), ``nvml+rapl`` then ``nvml`` follow, since the GPU is where the
work is. Only when none works does auto fall back to the ``estimate``, labelled as an estimate everywhere — and
never on a Jetson or while a GPU backend runs: the estimate models the CPU only, and a GPU backend (TensorRT with
blocking sync) leaves the CPU asleep, so the figure would be far too low. There auto fails with one line naming what
it looked for. ``require_measured`` (``--require-measured``, ``[power] require_measured``) refuses the estimate
anywhere, named or chosen by auto.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field

from dnnprof.shared.errors import UserError

from .base import PowerSource, SourceUnavailable, check_interval_ms
from .estimate import EstimateSource
from .ina3221 import Ina3221Source
from .jtop import JtopSource
from .none import NO_POWER, NoPower
from .nvml import NvmlRaplSource, NvmlSource
from .rapl import RaplSource
from .tegrastats import TegrastatsSource

SOURCES: dict[str, type[PowerSource]] = {"ina3221": Ina3221Source, "jtop": JtopSource,
                                         "tegrastats": TegrastatsSource, "rapl": RaplSource,
                                         "estimate": EstimateSource, "nvml": NvmlSource, "nvml+rapl": NvmlRaplSource}
AUTO_ORDER = ("ina3221", "jtop", "tegrastats", "rapl")  # real sensors, best first; the estimate is the last resort
GPU_AUTO_ORDER = ("ina3221", "jtop", "tegrastats", "nvml+rapl", "nvml")  # while a GPU backend runs
# The specs that measure something (what `dnnagent power` reads), and every spec a sweep takes.
MEASURING_SPECS = ("auto, ina3221[:ROOT], jtop, tegrastats[:LOGFILE], rapl[:ROOT], estimate[:ROOT], nvml[:INDEX], "
                   "nvml+rapl[:INDEX]")
SPECS = ("auto, none, ina3221[:ROOT], jtop, tegrastats[:LOGFILE], rapl[:ROOT], estimate[:ROOT], nvml[:INDEX], "
         "nvml+rapl[:INDEX]")

__all__ = ["PowerSource", "SourceUnavailable", "NoPower", "NO_POWER", "Selection", "open_source", "open_live",
           "parse_spec", "is_replay",
           "SOURCES", "AUTO_ORDER", "SPECS", "MEASURING_SPECS"]


@dataclass
class Selection:
    """The source opened (None: no energy) and what to tell the user about it, each entry one sentence prefixed
    with the source it concerns."""

    source: PowerSource | None  # None: no energy (``power`` gives NoPower in its place)
    # Worth a warning: why other sources were not used, what the chosen one could not read (an unreadable or
    # disabled rail), that no energy or only an estimate will be reported.
    notes: list[str] = field(default_factory=list)
    # Normal for the hardware, worth a plain line at most: the channels the board labels NC.
    info: list[str] = field(default_factory=list)

    @property
    def power(self) -> PowerSource:
        """The source, or ``NO_POWER`` — the object that says "no energy" — when there is none."""
        return self.source if self.source is not None else NO_POWER


def parse_spec(spec: str) -> tuple[str, str]:
    """``"ina3221:/mnt/board"`` → ``("ina3221", "/mnt/board")``; the name lower-cased, the argument as given."""
    name, _, arg = spec.partition(":")
    return name.strip().lower(), arg


def is_replay(spec: str) -> bool:
    """True for ``tegrastats:LOGFILE``: a recorded log, read by ``dnnagent power`` but never a live source."""
    name, arg = parse_spec(spec)
    return name == "tegrastats" and bool(arg)


def _make(name: str, arg: str | None, tdp_w: float | None, interval_ms: float | None) -> PowerSource:
    """Build source ``name``; ``arg`` is its ROOT (or, from auto, the root every candidate reads under), for the
    NVML sources the GPU indices."""
    if name in ("nvml", "nvml+rapl"):
        return SOURCES[name](gpus=arg or None)
    kwargs: dict = {"root": arg} if arg else {}
    if name == "estimate" and tdp_w is not None:
        kwargs["tdp_w"] = tdp_w
    if name == "jtop" and interval_ms is not None:
        kwargs["interval_s"] = interval_ms / 1e3
    if name == "tegrastats" and interval_ms is not None:
        kwargs["interval_ms"] = interval_ms
    return SOURCES[name](**kwargs)


def open_live(spec: str = "auto", *, tdp_w: float | None = None, interval_ms: float | None = None,
              jetson: bool = False, gpu: bool = False, require_measured: bool = False) -> Selection:
    """Open the live power source named by ``spec``; ``interval_ms`` is the sampling interval jtop and tegrastats
    are asked for (sysfs sources are paced by the sampler instead).

    An explicitly named source that cannot work raises UserError (one line); ``auto`` records why each one was
    skipped. A replay spec (``tegrastats:LOGFILE``) is refused: a sweep needs a live sensor. ``jetson`` (the board is
    one) and ``gpu`` (the backend runs on a GPU) keep ``auto`` from estimating; ``require_measured`` refuses an
    estimate however it was chosen.
    """
    name, arg = parse_spec(spec)
    if name == "none":
        return Selection(None, ["power source disabled (none): no energy will be reported"])
    if tdp_w is not None and not (math.isfinite(tdp_w) and tdp_w > 0):
        raise UserError(f"TDP {tdp_w:g} W is not valid: give the processor's TDP in watts, a positive number")
    check_interval_ms(interval_ms)
    if name == "estimate" and require_measured:
        raise UserError("power source 'estimate' is an estimate, and --require-measured refuses estimates: name a "
                        f"sensor ({MEASURING_SPECS.replace(', estimate[:ROOT]', '')}) or leave out --require-measured")
    if name == "auto":
        notes = []
        order = GPU_AUTO_ORDER if gpu and not jetson else AUTO_ORDER
        for candidate in order:
            try:
                source = _make(candidate, arg or None, tdp_w, interval_ms)
            except SourceUnavailable as exc:
                notes.append(f"{candidate}: {exc}")
                continue
            return Selection(source, notes + _said(source, "notes"), _said(source, "info"))
        why = ("--require-measured refuses estimates" if require_measured else
               "on a Jetson the estimate (TDP x CPU utilisation) would miss the GPU" if jetson else
               "the estimate models the CPU only and a GPU backend leaves the CPU asleep" if gpu else None)
        if why is not None:
            looked = "; ".join(" ".join(n.split()) for n in notes)
            raise UserError(f"auto found no power sensor ({looked}) and will not estimate: {why} — fix one of them, "
                            "name one with --power-source, or use --power-source none for no energy")
        try:
            source = _make("estimate", arg or None, tdp_w, interval_ms)
        except SourceUnavailable as exc:
            notes.append(f"estimate: {exc}")
            notes.append("no power source: no energy will be reported")
            return Selection(None, notes)
        notes.append("no power sensor found: energy is an ESTIMATE (TDP x CPU utilisation)")
        return Selection(source, notes)
    if name not in SOURCES:
        raise UserError(f"unknown power source {spec!r}: use {SPECS}")
    if name == "jtop" and arg:
        raise UserError(f"power source {spec!r}: jtop takes no ROOT (it reads the board through /run/jtop.sock): "
                        "use jtop")
    if is_replay(spec):
        raise UserError(f"power source {spec!r} replays a recorded log and cannot measure a live run: use "
                        "tegrastats (live), ina3221 or jtop; read the log with `dnnagent power --source "
                        f"{spec}`")
    try:
        source = _make(name, arg or None, tdp_w, interval_ms)
    except SourceUnavailable as exc:
        raise UserError(f"power source {name!r} is not available: {exc}") from None
    return Selection(source, _said(source, "notes"), _said(source, "info"))


def open_source(spec: str = "auto", *, tdp_w: float | None = None, jetson: bool = False, gpu: bool = False,
                require_measured: bool = False) -> Selection:
    """Open the live power source named by ``spec`` (see the module docstring) at its default rate."""
    return open_live(spec, tdp_w=tdp_w, jetson=jetson, gpu=gpu, require_measured=require_measured)


def _said(source: PowerSource, which: str) -> list[str]:
    """The source's ``notes`` (an unreadable rail) or ``info`` (an NC channel), each prefixed with its name."""
    return [f"{source.name}: {note}" for note in getattr(source, which, [])]
