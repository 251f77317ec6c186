"""From stored results to the answer: a table per board and the energy-bounded accuracy ceiling.

Energy per inference means energy per image (a batch of 8 is 8 inferences), gross (idle not subtracted) until
results carry a net figure. A configuration without energy is never treated as free: it is left out of the
ceiling and counted.

Every row's top-1 has a source (``accuracy_source``): ``measured`` (the agent ran the timed engine over a labelled
image set), else ``manifest`` (the model file's own reference), else ``catalog`` (the network's published fp32
reference, by name). A measured accuracy beats every reference. A reference describes the fp32 network, so a row of
another precision whose accuracy was not measured is ``assumed``: it keeps the reference in ``top1`` but is ranked
(ceiling, frontier, fleet, prediction, the seed's accuracy fits and figures) only when the user says to assume it
(``Limits.assume_accuracy``, ``dnnhost report --assume-accuracy``). ``ranked_top1`` owns that rule.
"""

from __future__ import annotations

import dataclasses
import math
from dataclasses import dataclass

import numpy as np
import pandas as pd

from dnnprof.shared import catalog, schema, units
from dnnprof.shared.errors import UserError

# A configuration: what a user can choose. A newer result of the same configuration replaces the older one. The
# precision route (precision_method) is part of it too (see ``latest``).
CONFIG = ["board", "network", "backend", "device", "precision", "batch", "power_mode", "clocks"]
NO_MODE = schema.NO_POWER_MODE  # grouping needs a value: pandas drops NaN groups
NO_CLOCKS = ""  # the grouping value of a result that names no clock state (the frame keeps it missing)

# Every column of the frame, with its unit in the name. Missing numbers are NaN, never 0.
COLUMNS = [
    "id", "board", "run_id", "ts", "network", "backend", "device", "precision", "batch", "power_mode", "clocks",
    "latency_ms_mean", "latency_ms_p50", "latency_ms_p90", "latency_ms_p99",
    "ms_per_image",  # mean batch latency / batch
    "latency_batches",  # batch times behind the latency figures
    "low_confidence",  # percentiles resting on too few of them ("p95,p99"; None: none), schema.low_confidence
    "throughput_ips", "power_w", "idle_power_w", "net_power_w",
    "energy_per_inference_j", "energy_per_inference_net_j",  # per image; net = idle power subtracted
    "unstable", "converged", "estimated", "power_source", "boundary",
    "precision_method",  # how the precision was made (schema.PRECISION_METHODS); None: an older agent
    "timing_only",  # int8 calibrated on random data: the engine's accuracy is unknown, so top1 is missing
    "top1", "top5",  # percent, from accuracy_source
    "top1_ci_low", "top1_ci_high",  # measured only: 95% Wilson interval of top1, percent
    "accuracy_images",  # measured only: images the accuracy rests on
    "accuracy_reused",  # measured only: measured on another batch of the same engine, and reused for this one
    "accuracy_source",  # "measured", "manifest", "catalog", or None (no accuracy known)
    "top1_source",  # in words: "measured on <set> (500 images)", the manifest's or the catalog's source
    "assumed",  # not fp32 and not measured: top1 is the fp32 reference, ranked only with assume_accuracy
    "params",  # parameters (count)
    "gmacs", "gops",  # multiply-accumulates per image, 1e9; gops = 2 x gmacs (the seed's "G-Ops")
    "fc_macs_share",  # fraction of the MACs in fully connected layers (0..1)
    "activation_bytes",  # every float tensor the graph produces for one image, summed (None: not in the result)
    "cost_source",  # "model" (the agent inspected the graph), "catalog" (published figures), or None
    # "footprint": weights + activations + buffers, like for like (TensorRT: engine + activations + I/O device memory;
    # a CPU runtime: the process's RSS growth); "backend": an older TensorRT agent's activations-only figure
    "memory_bytes", "memory_kind",
]
TIMING_ONLY = "timing only: int8 calibrated on random data, accuracy unknown"
FLOATS = ["latency_ms_mean", "latency_ms_p50", "latency_ms_p90", "latency_ms_p99", "ms_per_image", "throughput_ips",
          "power_w", "idle_power_w", "net_power_w", "energy_per_inference_j", "energy_per_inference_net_j", "top1",
          "top5", "top1_ci_low", "top1_ci_high", "accuracy_images",
          "params", "gmacs", "gops", "fc_macs_share", "activation_bytes", "memory_bytes"]

# Where a row's top-1 comes from, best first: a measurement of the engine that was timed beats every reference.
ACCURACY_SOURCES = ("measured", "manifest", "catalog")
REFERENCE_PRECISION = "fp32"  # what a manifest's or the catalog's top-1 describes


def profile(cost: schema.ModelCost | None) -> dict | None:
    """The cost columns of a graph the agent (or ``dnnhost predict``) counted; None when it could not count it all."""
    if cost is None or not cost.complete or cost.macs <= 0:
        return None
    return {"params": cost.params, "gmacs": cost.macs / 1e9, "fc_macs_share": cost.fc_macs / cost.macs,
            "activation_bytes": cost.activation_bytes, "cost_source": "model"}


def _cost(r: schema.Result, ref: catalog.Network | None) -> dict:
    counted = profile(r.model_cost)
    if counted is not None:
        return counted
    empty = {"params": None, "gmacs": None, "fc_macs_share": None, "activation_bytes": None,
             "cost_source": None}
    if ref is not None and ref.gmacs is not None:
        return {**empty, "params": None if ref.params_m is None else ref.params_m * 1e6, "gmacs": ref.gmacs,
                "cost_source": "catalog"}
    return empty


def _memory(r: schema.Result) -> tuple[int | None, str | None]:
    """The model's memory footprint, like for like across backends: weights, activations and buffers — on an
    accelerator its device memory (engine + activations + I/O), on a CPU the process's RSS growth while the model
    was loaded and run. An older TensorRT agent's figure (activations only) stays a kind of its own."""
    mem = r.memory
    if mem is None:
        return None, None
    parts = (mem.engine_bytes, mem.activations_bytes, mem.io_bytes)
    if all(p is not None for p in parts):
        return sum(parts), "footprint"
    if mem.process_rss_delta_bytes is not None:
        return mem.process_rss_delta_bytes, "footprint"
    if mem.backend_bytes is not None:
        return mem.backend_bytes, "backend"
    return None, None


def measured_text(acc: schema.Accuracy) -> str:
    """A measured accuracy's source in words: ``measured on imagenet-val (500 images, reused from batch ...)``."""
    notes = [f"{acc.images} images"]
    if acc.limit is not None:
        notes.append("a seeded subset" + (f", seed {acc.seed}" if acc.seed is not None else ""))
    if acc.reused:
        notes.append("reused: measured on another batch of the same engine")
    return f"measured on {acc.set_name} ({', '.join(notes)})"


def accuracy(r: schema.Result, ref: catalog.Network | None) -> dict:
    """The accuracy columns of one result: measured (``r.accuracy``), else the manifest's reference, else the
    catalog's; none for a timing-only engine. A reference at a precision other than fp32 is ``assumed``."""
    out = {"top1": None, "top5": None, "top1_ci_low": None, "top1_ci_high": None, "accuracy_images": None,
           "accuracy_reused": False, "accuracy_source": None, "top1_source": None, "assumed": False}
    if r.timing_only:  # an engine calibrated on random data has no known accuracy: it is timed, never ranked
        return {**out, "top1_source": TIMING_ONLY}
    acc = r.accuracy
    if acc is not None:
        return {**out, "top1": acc.top1, "top5": acc.top5, "top1_ci_low": acc.top1_ci[0],
                "top1_ci_high": acc.top1_ci[1], "accuracy_images": acc.images, "accuracy_reused": acc.reused,
                "accuracy_source": "measured", "top1_source": measured_text(acc)}
    if r.reference_top1 is not None:  # the model file's own accuracy (the agent's manifest) describes what ran
        out.update(top1=r.reference_top1, accuracy_source="manifest", top1_source=r.reference_top1_source or "manifest")
    elif ref is not None:
        out.update(top1=ref.top1, top5=ref.top5, accuracy_source="catalog", top1_source=ref.source)
    else:
        return out
    if r.precision.lower() != REFERENCE_PRECISION:
        out["assumed"] = True
        out["top1_source"] = (f"assumed: the {REFERENCE_PRECISION} reference ({out['top1_source']}), not measured at "
                              f"{r.precision}")
    return out


def ranked_top1(df: pd.DataFrame, assume_accuracy: bool = False) -> np.ndarray:
    """Each row's top-1 as far as it may be ranked: NaN where there is none, and where it is assumed (a reference
    at a precision other than fp32, not measured) unless ``assume_accuracy``. The one rule every consumer of
    accuracy (ceiling, frontier, fleet, prediction, the seed's analyses, the figures) follows."""
    top1 = df["top1"].to_numpy(dtype="float64")
    if assume_accuracy or "assumed" not in df:
        return top1
    return np.where(df["assumed"].to_numpy(dtype=bool), np.nan, top1)


def rankable(df: pd.DataFrame, assume_accuracy: bool = False) -> pd.DataFrame:
    """``df`` with the top-1 (and top-5) of rows that may not be ranked (``ranked_top1``) missing; ``df`` itself
    when there are none."""
    if assume_accuracy or "assumed" not in df or not df["assumed"].to_numpy(dtype=bool).any():
        return df
    held = df["assumed"].to_numpy(dtype=bool)
    out = df.copy()
    for col in ("top1", "top5"):
        if col in out:
            out[col] = np.where(held, np.nan, out[col].to_numpy(dtype="float64"))
    return out


def row(r: schema.Result, networks: catalog.Catalog) -> dict:
    """One result as a frame row (see COLUMNS)."""
    ref = networks.lookup(r.network)
    epi = r.energy_per_inference_j
    cond = r.conditions
    memory, memory_kind = _memory(r)
    net_power = None if r.power_w is None or r.idle_power_w is None else r.power_w - r.idle_power_w
    batches = schema.latency_batches(r)
    return {
        "id": r.id, "board": r.board, "run_id": r.run_id, "ts": r.ts, "network": r.network,
        "backend": r.backend, "device": r.device, "precision": r.precision, "batch": r.batch,
        "power_mode": schema.power_mode(r),
        "clocks": (cond.clocks if cond else None) or r.provenance.clocks,
        "latency_ms_mean": r.latency_ms.mean, "latency_ms_p50": r.latency_ms.p50, "latency_ms_p90": r.latency_ms.p90,
        "latency_ms_p99": r.latency_ms.p99, "ms_per_image": r.latency_ms.mean / r.batch,
        "latency_batches": batches, "low_confidence": ",".join(schema.low_confidence(batches)) or None,
        "throughput_ips": r.throughput_ips, "power_w": r.power_w, "idle_power_w": r.idle_power_w,
        "net_power_w": net_power,
        "energy_per_inference_j": epi.gross if epi else None,
        "energy_per_inference_net_j": epi.net if epi else None,
        "unstable": r.unstable, "converged": r.confidence is None or r.confidence.stop == "converged",
        "estimated": r.provenance.estimated, "power_source": r.provenance.power_source,
        "boundary": r.provenance.boundary,
        "precision_method": r.precision_method,
        "timing_only": r.timing_only,
        **accuracy(r, ref),
        **_cost(r, ref),
        "memory_bytes": memory, "memory_kind": memory_kind,
    }


def table(rows: list[dict]) -> pd.DataFrame:
    """A frame from row dicts; absent keys become missing (NaN / None), never 0."""
    df = pd.DataFrame(rows, columns=COLUMNS)
    for col in FLOATS:
        df[col] = df[col].astype("float64")  # None → NaN, so "missing" survives arithmetic as missing
    df["gops"] = 2 * df["gmacs"]
    df["power_mode"] = df["power_mode"].astype(object).fillna(NO_MODE)
    for col, default in (("unstable", False), ("estimated", False), ("converged", True), ("timing_only", False),
                         ("accuracy_reused", False), ("assumed", False)):
        df[col] = [default if v is None or v != v else bool(v) for v in df[col]]  # v != v: NaN
    return df


def frame(results: list[schema.Result], networks: catalog.Catalog | None = None) -> pd.DataFrame:
    """One row per result, with reference accuracy and published costs joined from the catalog by network name."""
    networks = networks or catalog.Catalog()
    return table([row(r, networks) for r in results])


def methods(df: pd.DataFrame) -> pd.Series:
    """Each row's precision route as configurations count it: the recorded one, else (a result from before the
    route was recorded) the only one there was — the file's own fp32, or TensorRT's builder flags."""
    return df["precision_method"].where(df["precision_method"].notna(),
                                        df["precision"].map(lambda p: "as_exported" if p == "fp32" else
                                                            "builder_flags"))


def clock_keys(df: pd.DataFrame) -> np.ndarray:
    """Each row's clock state as a grouping value: NO_CLOCKS where the result names none (pandas drops NaN groups, so
    a missing clock state must be a value to group with itself)."""
    clocks = df["clocks"].to_numpy(dtype=object)
    return np.array([c if isinstance(c, str) else NO_CLOCKS for c in clocks], dtype=object)


def latest(df: pd.DataFrame) -> pd.DataFrame:
    """Keep the newest result of each configuration (a re-run replaces the older measurement). Locked clocks
    (jetson_clocks on) and DVFS are two configurations of one power mode; fp16 made by TensorRT's builder flags and
    fp16 from a converted model are two configurations; a result from before the method was recorded had the only
    method there was (the file's own fp32, or the builder flags)."""
    if df.empty:
        return df
    kept = (df.assign(_method=methods(df), _clocks=clock_keys(df)).sort_values("ts", kind="stable")
              .drop_duplicates([*(c for c in CONFIG if c != "clocks"), "_clocks", "_method"], keep="last"))
    return (kept.sort_values(["board", "power_mode", "_clocks", "precision", "network", "batch"], kind="stable")
                .drop(columns=["_method", "_clocks"]).reset_index(drop=True))


def power_states(df: pd.DataFrame) -> np.ndarray:
    """Each row's power state, as the report names and groups it: its power mode, with its clock state in
    parentheses where the row's board measured in more than one clock state — ``MAXN (jetson_clocks on)`` and
    ``MAXN (jetson_clocks off)`` are two states; off a Jetson (no power mode) the clock state alone, ``cpu governor
    performance``. A board with one clock state keeps the bare mode names (``15W``, ``MAXN``)."""
    modes = df["power_mode"].to_numpy(dtype=object)
    clocks = clock_keys(df)
    boards = df["board"].to_numpy(dtype=object)
    seen: dict = {}
    for board, clock in zip(boards, clocks):
        seen.setdefault(board, set()).add(clock)
    out = np.empty(len(df), dtype=object)
    for i, (board, mode, clock) in enumerate(zip(boards, modes, clocks)):
        out[i] = state_label(mode, clock, len(seen[board]) > 1)
    return out


def state_label(mode: str | None, clocks: str | None, several: bool) -> str:
    """A power state's name (``power_states``): the mode alone unless its board measured ``several`` clock states."""
    mode = mode or NO_MODE
    if not several:
        return mode
    clocks = clocks or "clocks not recorded"
    return clocks if mode == NO_MODE else f"{mode} ({clocks})"


def with_states(df: pd.DataFrame) -> pd.DataFrame:
    """``df`` with each row's power mode replaced by its power state (``power_states``), so that whatever groups by
    power mode (the seed's analyses, the figures' panels) keeps clock states apart; ``df`` itself when no board
    measured in more than one clock state."""
    if df.empty:
        return df
    states = power_states(df)
    if (states == df["power_mode"].to_numpy(dtype=object)).all():
        return df
    return df.assign(power_mode=states)


@dataclass(frozen=True)
class Basis:
    """How energy is counted: gross or net (idle subtracted), per image, per batch, or per N images."""

    energy: str = "gross"  # "gross" | "net"
    per: str | int = "image"  # "image" | "batch" | N (a count of images)

    def __post_init__(self) -> None:
        if self.energy not in ("gross", "net"):
            raise UserError(f"energy basis {self.energy!r}: use gross or net")
        if not (self.per in ("image", "batch") or (isinstance(self.per, int) and self.per >= 1)):
            raise UserError(f"budget unit {self.per!r}: use image, batch or a number of images such as 1000")

    @property
    def column(self) -> str:
        return "energy_per_inference_j" if self.energy == "gross" else "energy_per_inference_net_j"

    @property
    def text(self) -> str:
        per = {"image": "per image", "batch": "per batch"}.get(self.per, f"per {self.per} images")
        return f"{self.energy} energy {per}"

    def energy_j(self, df: pd.DataFrame) -> np.ndarray:
        """Energy of each configuration in this basis, joules (NaN where it was not measured)."""
        per_image = df[self.column].to_numpy(dtype="float64")
        if self.per == "image":
            return per_image
        if self.per == "batch":
            return per_image * df["batch"].to_numpy(dtype="float64")
        return per_image * self.per


LATENCY_STATS = {"mean": "latency_ms_mean", "p50": "latency_ms_p50", "p90": "latency_ms_p90",
                 "p99": "latency_ms_p99"}


@dataclass(frozen=True)
class Limits:
    """What a configuration must satisfy; None = no limit. Latency is per batch (the time a caller waits)."""

    energy_budget_j: float | None = None  # in the basis' unit
    power_budget_w: float | None = None  # average gross power over the timed window
    latency_budget_ms: float | None = None
    latency_stat: str = "mean"
    min_fps: float | None = None  # images per second
    # Rank a configuration on assumed accuracy (a precision other than fp32, not measured: the fp32 reference). Off,
    # such a configuration is shown but not ranked, and counted as excluded ("assumed").
    assume_accuracy: bool = False

    def __post_init__(self) -> None:
        if self.latency_stat not in LATENCY_STATS:
            raise UserError(f"latency statistic {self.latency_stat!r}: use one of {', '.join(LATENCY_STATS)}")

    def text(self, basis: Basis) -> str:
        parts = []
        if self.energy_budget_j is not None:
            parts.append(f"{units.format_energy(self.energy_budget_j, digits=6)} {basis.text}")
        if self.power_budget_w is not None:
            parts.append(f"power ≤ {units.format_power(self.power_budget_w, digits=6)}")
        if self.latency_budget_ms is not None:
            parts.append(f"{self.latency_stat} latency ≤ {self.latency_budget_ms:g} ms per batch")
        if self.min_fps is not None:
            parts.append(f"≥ {self.min_fps:g} images/s")
        return ", ".join(parts)


CONFIG_KEYS = ["board", "network", "backend", "device", "precision", "batch", "power_mode", "clocks", "top1",
               "accuracy_source", "accuracy_images", "assumed", "throughput_ips", "power_w", "estimated", "boundary"]


def plain(value):
    if hasattr(value, "item"):
        value = value.item()
    return None if isinstance(value, float) and not math.isfinite(value) else value


class _Arrays:
    """The columns a ceiling needs, pulled out of the frame once (a fleet has many groups to rank)."""

    def __init__(self, df: pd.DataFrame, basis: Basis, limits: Limits) -> None:
        self.df = df
        self.columns = {k: df[k].to_numpy() for k in CONFIG_KEYS}
        self.batch = df["batch"].to_numpy(dtype="int64")
        self.network_rank = pd.factorize(df["network"], sort=True)[0]
        self.board_rank = pd.factorize(df["board"], sort=True)[0]
        self.estimated = df["estimated"].to_numpy(dtype=bool)
        self.timing_only = df["timing_only"].to_numpy(dtype=bool)
        self.assumed = df["assumed"].to_numpy(dtype=bool)
        # assumed accuracy held back from ranking (without limits.assume_accuracy): shown, counted, never ranked
        held = self.assumed & ~np.isnan(df["top1"].to_numpy(dtype="float64"))
        self.held = np.zeros_like(held) if limits.assume_accuracy else held
        self.top1 = ranked_top1(df, limits.assume_accuracy)
        self.energy = basis.energy_j(df)
        self.per_image = df[basis.column].to_numpy(dtype="float64")
        self.latency = df[LATENCY_STATS[limits.latency_stat]].to_numpy(dtype="float64")
        self.ips = df["throughput_ips"].to_numpy(dtype="float64")
        self.power = df["power_w"].to_numpy(dtype="float64")
        self.clocks = clock_keys(df) if "clocks" in df else np.full(len(df), NO_CLOCKS, dtype=object)
        # Every limit but energy; a limit on a quantity that was not measured excludes the point (NaN <= x is False).
        ok = np.ones(len(df), dtype=bool)
        self.excluded: dict[str, np.ndarray] = {}
        for name, values, test in (("power_budget", self.power, lambda v, x: v <= x),
                                   ("latency_budget", self.latency, lambda v, x: v <= x),
                                   ("min_fps", self.ips, lambda v, x: v >= x)):
            limit = {"power_budget": limits.power_budget_w, "latency_budget": limits.latency_budget_ms,
                     "min_fps": limits.min_fps}[name]
            if limit is not None:
                with np.errstate(invalid="ignore"):
                    passed = test(values, limit)
                self.excluded[name] = ~passed
                ok &= passed
        self.ok = ok

    def config(self, i: int | None) -> dict | None:
        if i is None:
            return None
        out = {k: plain(self.columns[k][i]) for k in CONFIG_KEYS}
        if out["accuracy_images"] is not None:  # a count (the frame holds it as a float, to keep NaN for none)
            out["accuracy_images"] = int(out["accuracy_images"])
        out["energy_j"] = plain(self.energy[i])
        out["energy_per_inference_j"] = plain(self.per_image[i])
        out["latency_ms"] = plain(self.latency[i])
        return out

    def order(self, idx: np.ndarray, by_energy: bool) -> np.ndarray:
        """``idx`` ranked best first: by accuracy (ties: less energy) or by energy (ties: more accuracy).

        Remaining ties go to a measured (not estimated) energy, higher throughput, then network name, batch and
        board name, so the answer never depends on the order results arrived in.
        """
        if idx.size == 0:
            return idx
        energy = np.where(np.isnan(self.energy[idx]), np.inf, self.energy[idx])
        keys = (self.board_rank[idx], self.batch[idx], self.network_rank[idx], -self.ips[idx], self.estimated[idx])
        keys += (-self.top1[idx], energy) if by_energy else (energy, -self.top1[idx])
        return idx[np.lexsort(keys)]


def frontier_of(arrays: _Arrays, rows: np.ndarray) -> list[int]:
    """Indices of the energy/accuracy staircase among ``rows``: each step more accurate than every cheaper one."""
    idx = rows[arrays.ok[rows] & ~np.isnan(arrays.energy[rows]) & ~np.isnan(arrays.top1[rows])]
    ranked = arrays.order(idx, by_energy=True)
    top = arrays.top1[ranked]
    if top.size == 0:
        return []
    previous_best = np.concatenate(([-np.inf], np.maximum.accumulate(top)[:-1]))
    return ranked[top > previous_best].tolist()


def ceiling_of(arrays: _Arrays, rows: np.ndarray, limits: Limits) -> dict:
    """The best accuracy among ``rows`` within every limit, the configuration reaching it, and the next step."""
    a = arrays
    has_top1 = ~np.isnan(a.top1[rows])
    has_energy = ~np.isnan(a.energy[rows])
    need_energy = limits.energy_budget_j is not None
    candidates = rows[has_top1 & a.ok[rows] & (has_energy if need_energy else True)]
    if need_energy:
        with np.errstate(invalid="ignore"):
            feasible = candidates[a.energy[candidates] <= limits.energy_budget_j]
    else:
        feasible = candidates
    ranked = a.order(feasible, by_energy=False)
    best = int(ranked[0]) if ranked.size else None
    nxt = cheapest = None
    if best is not None and need_energy:
        # The next step up: the cheapest configuration (within the other limits) that is more accurate.
        better = candidates[a.top1[candidates] > a.top1[best]]
        ranked_better = a.order(better, by_energy=True)
        nxt = int(ranked_better[0]) if ranked_better.size else None
    if best is None:
        pool = candidates if candidates.size else rows[has_top1 & has_energy]
        ranked_cheap = a.order(pool, by_energy=True)
        cheapest = int(ranked_cheap[0]) if ranked_cheap.size else None
    excluded = {name: int(mask[rows].sum()) for name, mask in a.excluded.items()}
    timing_only = int(a.timing_only[rows].sum())
    if timing_only:
        excluded["timing_only"] = timing_only
    held = a.held[rows]
    if held.any():
        excluded["assumed"] = int(held.sum())
    if need_energy:
        excluded["energy_budget"] = int(candidates.size - feasible.size)
    return {
        "top1": None if best is None else float(a.top1[best]),
        "best": a.config(best),
        "next": a.config(nxt),
        "next_extra_j": None if nxt is None else float(a.energy[nxt] - limits.energy_budget_j),
        "cheapest": a.config(cheapest),
        # cheapest_meets_other_limits: False when the cheapest breaks a power/latency/fps limit too
        "cheapest_meets_other_limits": bool(cheapest is not None and a.ok[cheapest]),
        "feasible": int(feasible.size),
        "considered": int(rows.size),
        "ranked": int(candidates.size),  # with accuracy (and energy, under an energy budget) within the other limits
        "excluded": excluded,
        "without_energy": int((~has_energy).sum()) if need_energy else 0,
        "without_accuracy": sorted(set(a.columns["network"][rows[~has_top1 & ~a.timing_only[rows] & ~held]])),
        "estimated": bool(best is not None and a.estimated[best]),
        # the ceiling rests on assumed accuracy (only with assume_accuracy), and how many ranked rows are assumed
        "assumed": bool(best is not None and a.assumed[best]),
        "ranked_assumed": int(a.assumed[candidates].sum()),
    }


def ceiling(df: pd.DataFrame, limits: Limits | None = None, basis: Basis | None = None) -> dict:
    """The energy-bounded accuracy ceiling of all of ``df`` (one board, usually): see ``ceiling_of``."""
    limits, basis = limits or Limits(), basis or Basis()
    return ceiling_of(_Arrays(df, basis, limits), np.arange(len(df)), limits)


def frontier(df: pd.DataFrame, limits: Limits | None = None, basis: Basis | None = None) -> list[dict]:
    """The energy/accuracy staircase of ``df`` within the non-energy limits, cheapest first."""
    limits, basis = limits or Limits(), basis or Basis()
    arrays = _Arrays(df, basis, limits)
    return [arrays.config(i) for i in frontier_of(arrays, np.arange(len(df)))]


def per_board(df: pd.DataFrame, limits: Limits, basis: Basis) -> dict[str, dict]:
    """Per board: the ceiling, the frontier, ceilings per power state (``power_states``: a power mode, and its clock
    state where the board measured several) and per precision where they differ, and the energy-optimal power
    state of each network (``power_modes``; None on a board measured in one power state)."""
    arrays = _Arrays(df, basis, limits)
    out = {}
    states = power_states(df) if len(df) else np.array([], dtype=object)
    codes = {"by_power_mode": pd.factorize(pd.Series(states, dtype=object), sort=True),
             "by_precision": pd.factorize(df["precision"], sort=True)}
    for board, rows in df.groupby("board", sort=True).indices.items():
        entry = {"ceiling": ceiling_of(arrays, rows, limits), "frontier": [arrays.config(i) for i in
                                                                           frontier_of(arrays, rows)]}
        for key, (code, names) in codes.items():
            present = np.unique(code[rows])
            entry[key] = ({str(names[c]): ceiling_of(arrays, rows[code[rows] == c], limits) for c in present}
                          if present.size > 1 else {})
        entry["power_modes"] = power_modes_of(arrays, rows, states, limits, basis)
        out[board] = entry
    return out


# -- the energy-optimal power mode ---------------------------------------------------------------------------------

# What a network's rows are compared across: one network at one precision (and route) on one backend and device.
MODE_GROUP = ["network", "precision", "backend", "device"]
MODE_REFERENCE = "dearest"  # each saving is against the power state whose best batch costs the most per image


def power_modes(df: pd.DataFrame, limits: Limits | None = None, basis: Basis | None = None) -> dict | None:
    """The energy-optimal power state of each network of ``df`` (one board): see ``power_modes_of``."""
    limits, basis = limits or Limits(), basis or Basis()
    return power_modes_of(_Arrays(df, basis, limits), np.arange(len(df)), power_states(df), limits, basis)


def _mode_row(a: _Arrays, i: int, state: str, within: bool, configurations: int) -> dict:
    """One power state's best batch of a network, as a row of the mode-by-mode table."""
    return {"state": state, "power_mode": plain(a.columns["power_mode"][i]), "clocks": a.clocks[i] or None,
            "batch": int(a.batch[i]), "energy_per_image_j": plain(a.per_image[i]), "energy_j": plain(a.energy[i]),
            "latency_ms": plain(a.latency[i]), "throughput_ips": plain(a.ips[i]), "power_w": plain(a.power[i]),
            "estimated": bool(a.estimated[i]), "boundary": plain(a.columns["boundary"][i]),
            "within_limits": bool(within), "configurations": configurations, "optimal": False,
            "saving_j": None, "saving_pct": None}


def _cheapest(a: _Arrays, idx: np.ndarray) -> int | None:
    """The least energy per image among ``idx`` (ties: more images/s, then the smaller batch); None when empty."""
    if idx.size == 0:
        return None
    return int(idx[np.lexsort((a.batch[idx], -np.nan_to_num(a.ips[idx], nan=-np.inf), a.per_image[idx]))[0]])


def power_modes_of(a: _Arrays, rows: np.ndarray, states: np.ndarray, limits: Limits, basis: Basis) -> dict | None:
    """Per network (and precision, route, backend/device) of ``rows`` (one board): which power state — mode and
    clock state — costs the least energy per image, and a row per power state with its best batch.

    None when the board measured in one power state only: there is nothing to choose. A power state's best batch is
    its least energy per image (in the basis' gross or net, per image whatever ``basis.per``: the mode changes the
    cost of an image, and per batch would favour small batches) among its configurations within the non-energy
    limits (power, latency, images/s); a state with none within them shows its cheapest, marked
    ``within_limits: False``, and cannot be chosen. ``optimal``: the least energy per image among the states within
    the limits (None when none is: ``none_meets``; ``closest`` then names the configuration with the least latency);
    ``unlimited``: the least energy per image over every configuration, limits aside (its ``optimal`` says whether
    it is the chosen row too: with limits it may not be — what the limits cost). Each row's saving is against
    the dearest state of its network (``MODE_REFERENCE``): what choosing the power state well saves over choosing
    it worst. The energy budget does not filter the table: the least energy either fits the budget or nothing does.
    Networks measured in one power state are named in ``single_state``.
    """
    board_states = sorted(set(states[rows].tolist()))
    if len(board_states) < 2:
        return None
    df = a.df.iloc[rows]
    keys = df[MODE_GROUP].assign(precision_method=methods(df).to_numpy(dtype=object))
    has_energy = ~np.isnan(a.per_image)
    groups, single = [], []
    for key, local in keys.groupby([*MODE_GROUP, "precision_method"], sort=True).indices.items():
        idx = rows[local]
        here = states[idx]
        names = sorted(set(here.tolist()))
        info = dict(zip([*MODE_GROUP, "precision_method"], key))
        if len(names) < 2:
            single.append({**info, "state": names[0]})
            continue
        table = []
        for name in names:
            in_state = idx[here == name]
            measured = in_state[has_energy[in_state]]
            within = measured[a.ok[measured]]
            pick = _cheapest(a, within if within.size else measured)
            if pick is None:  # no energy in this state: its fastest configuration, for its latency and images/s
                pick = int(in_state[np.argmax(np.nan_to_num(a.ips[in_state], nan=-np.inf))])
            table.append(_mode_row(a, pick, name, bool(within.size), int(in_state.size)))
        table.sort(key=lambda r: (r["energy_per_image_j"] is None, r["energy_per_image_j"] or 0.0,
                                  -(r["throughput_ips"] or 0.0), r["state"]))
        priced = [r for r in table if r["energy_per_image_j"] is not None]
        dearest = max(priced, key=lambda r: r["energy_per_image_j"]) if priced else None
        for r in priced:
            r["saving_j"] = dearest["energy_per_image_j"] - r["energy_per_image_j"]
            r["saving_pct"] = (100.0 * r["saving_j"] / dearest["energy_per_image_j"]
                               if dearest["energy_per_image_j"] > 0 else None)
        chosen = next((r for r in table if r["within_limits"] and r["energy_per_image_j"] is not None), None)
        if chosen is not None:
            chosen["optimal"] = True
        unlimited = _cheapest(a, idx[has_energy[idx]])
        best_anyway = None
        if unlimited is not None:
            best_anyway = _mode_row(a, unlimited, str(states[unlimited]), bool(a.ok[unlimited]),
                                    int((here == states[unlimited]).sum()))
            best_anyway["optimal"] = chosen is not None and best_anyway["state"] == chosen["state"] and (
                best_anyway["batch"] == chosen["batch"])
            best_anyway["saving_j"] = dearest["energy_per_image_j"] - best_anyway["energy_per_image_j"]
            best_anyway["saving_pct"] = (100.0 * best_anyway["saving_j"] / dearest["energy_per_image_j"]
                                         if dearest["energy_per_image_j"] > 0 else None)
        fast = idx[~np.isnan(a.latency[idx])]
        closest = int(fast[np.argmin(a.latency[fast])]) if chosen is None and fast.size else None
        groups.append({
            **info,
            "optimal": chosen,
            "unlimited": best_anyway,
            "dearest": None if dearest is None else dearest["state"],
            "none_meets": chosen is None and bool(priced),
            "without_energy": not priced,
            "closest": None if closest is None else {
                k: v for k, v in _mode_row(a, closest, str(states[closest]), bool(a.ok[closest]),
                                           int((here == states[closest]).sum())).items()
                if k not in ("optimal", "saving_j", "saving_pct")},
            "mixed_boundaries": len({r["boundary"] for r in priced}) > 1 or len({r["estimated"] for r in priced}) > 1,
            "rows": table,
        })
    clock_states = sorted({c or None for c in a.clocks[rows].tolist()}, key=lambda c: (c is None, c or ""))
    return {"states": board_states, "clock_states": clock_states, "modes": sorted(set(df["power_mode"])),
            "basis": f"{basis.energy} energy per image", "latency_stat": limits.latency_stat,
            "limits": dataclasses.replace(limits, energy_budget_j=None).text(basis), "reference": MODE_REFERENCE,
            "groups": groups, "single_state": single}


def flags(df: pd.DataFrame, limits: Limits, basis: Basis) -> pd.DataFrame:
    """Per row: its energy in the basis, whether it meets every limit, whether its accuracy takes part in the
    ranking (``ranked``: it has one, and it is not assumed, unless the limits assume accuracy), and whether it is
    on its board's frontier."""
    arrays = _Arrays(df, basis, limits)
    within = arrays.ok.copy()
    if limits.energy_budget_j is not None:
        with np.errstate(invalid="ignore"):
            within &= arrays.energy <= limits.energy_budget_j
    on_frontier = np.zeros(len(df), dtype=bool)
    for rows in df.groupby("board", sort=False).indices.values():
        on_frontier[frontier_of(arrays, rows)] = True
    return pd.DataFrame({"energy_j": arrays.energy, "within_limits": within, "ranked": ~np.isnan(arrays.top1),
                         "on_frontier": on_frontier}, index=df.index)


# -- the fleet's answer ------------------------------------------------------------------------------------------

# What a board's energy figure covers, from the widest measured boundary to the estimate. Energies are compared only
# within one boundary: a module's rails leave out the carrier board that an input rail includes, a CPU package
# leaves out everything but the CPU, and an estimate is a model, not a measurement.
BOUNDARIES = {
    "input_rail": "board input rail (everything the board draws)",
    "sum_of_rails": "sum of the module's rails (no carrier board)",
    "cpu_package+gpu_board": "CPU package and GPU board (RAPL + NVML: no memory, disks or fans)",
    "gpu_board": "GPU board (NVML: the card alone)",
    "cpu_package": "CPU package (RAPL: the CPU alone)",
    "estimate": "estimate (modelled from CPU utilisation, not measured)",
}


def boundary_group(df: pd.DataFrame, basis: Basis | None = None) -> np.ndarray:
    """Per row, the group its energy can be compared in: its boundary, ``"estimate"`` for any estimated figure,
    None where no energy was measured in ``basis`` (default gross: net needs an idle baseline too)."""
    boundary = df["boundary"].to_numpy(dtype=object)
    estimated = df["estimated"].to_numpy(dtype=bool)
    measured = ~np.isnan(df[(basis or Basis()).column].to_numpy(dtype="float64"))
    # a missing boundary reaches the frame as None or NaN
    return np.array([None if not has else "estimate" if est else (b if isinstance(b, str) and b else "unknown")
                     for b, est, has in zip(boundary, estimated, measured)], dtype=object)


def _energy_key(cfg: dict | None) -> float:
    energy = None if cfg is None else cfg.get("energy_j")
    return math.inf if energy is None else energy


def _group_order(name: str) -> tuple:
    known = list(BOUNDARIES)
    return (name == "estimate", known.index(name) if name in known else len(known), name)


def fleet(df: pd.DataFrame, budgets: list[float | None], limits: Limits, basis: Basis) -> dict:
    """Across every board: the best (board, power mode, clock state, network, batch, precision) at each budget,
    ranked only among configurations whose energy was measured at the same boundary.

    Per budget and boundary group: the best configuration, the next more accurate one and the energy it needs, and
    each board's own best (the runners-up). The headline is the first group with an answer in the order of
    ``BOUNDARIES`` — the widest boundary measured, and measured groups before the estimate, so an estimate never
    outranks a measurement. A narrower measured group that reaches a higher top-1 says so (``beats_headline``):
    its energies are not comparable, so it is named, not ranked above.
    """
    arrays = _Arrays(df, basis, limits)
    group = boundary_group(df, basis)
    names = sorted({g for g in group if g is not None}, key=_group_order)
    boards = df["board"].to_numpy(dtype=object)
    left_out = [{"board": str(b), "configurations": int(n),
                 "reason": "no energy measured (no power source, or none in this basis)"}
                for b, n in pd.Series(boards[[g is None for g in group]]).value_counts().sort_index().items()]
    answers = []
    for budget in budgets:
        lim = dataclasses.replace(limits, energy_budget_j=budget)
        entry = {"budget_j": budget, "groups": [], "headline": None}
        for name in names:
            rows = np.flatnonzero(group == name)
            best = ceiling_of(arrays, rows, lim)
            per_board = []
            for board in sorted(set(boards[rows])):
                own = ceiling_of(arrays, rows[boards[rows] == board], lim)
                per_board.append({"board": board, "best": own["best"], "top1": own["top1"],
                                  "cheapest": own["cheapest"], "feasible": own["feasible"],
                                  "considered": own["considered"]})
            per_board.sort(key=lambda b: (b["top1"] is None, -(b["top1"] or 0), _energy_key(b["best"]), b["board"]))
            entry["groups"].append({"boundary": name, "text": BOUNDARIES.get(name, f"{name} (an unknown boundary)"),
                                    "estimated": name == "estimate", "boards": sorted(set(boards[rows])),
                                    **best, "per_board": per_board})
        answered = [g for g in entry["groups"] if g["best"] is not None]
        entry["headline"] = answered[0]["boundary"] if answered else None
        for g in entry["groups"]:
            g["beats_headline"] = bool(answered and g is not answered[0] and g["best"] is not None
                                       and not g["estimated"] and g["top1"] > answered[0]["top1"])
        answers.append(entry)
    return {"groups": [{"boundary": n, "text": BOUNDARIES.get(n, n), "boards": sorted(set(boards[group == n]))}
                       for n in names],
            "left_out": left_out, "answers": answers,
            "rule": "energies are ranked only within one measurement boundary; estimates never outrank measurements"}
