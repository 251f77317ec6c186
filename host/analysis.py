"""From stored results to the answer: a table per board and the energy-bounded accuracy ceiling.

Energy per inference means energy per image (a batch of 8 is 8 inferences), gross (idle not subtracted) until
results carry a net figure. A configuration without energy is never treated as free: it is left out of the
ceiling and counted.
"""

from __future__ import annotations

import math

import pandas as pd

from dnnprof.shared import catalog, schema

CONFIG = ["board", "network", "backend", "device", "precision", "batch"]


def frame(results: list[schema.Result], networks: catalog.Catalog | None = None) -> pd.DataFrame:
    """One row per result, with the catalog's reference accuracy joined by network name."""
    networks = networks or catalog.Catalog()
    rows = []
    for r in results:
        ref = networks.lookup(r.network)
        epi = r.energy_per_inference_j
        rows.append({
            "id": r.id, "board": r.board, "run_id": r.run_id, "ts": r.ts, "network": r.network,
            "backend": r.backend, "device": r.device, "precision": r.precision, "batch": r.batch,
            "latency_ms_mean": r.latency_ms.mean, "latency_ms_p50": r.latency_ms.p50,
            "latency_ms_p99": r.latency_ms.p99, "throughput_ips": r.throughput_ips,
            "power_w": r.power_w, "energy_per_inference_j": epi.gross if epi else None,
            "energy_per_inference_net_j": epi.net if epi else None, "idle_power_w": r.idle_power_w,
            "unstable": r.unstable, "converged": r.confidence is None or r.confidence.stop == "converged",
            "estimated": r.provenance.estimated, "power_source": r.provenance.power_source,
            "boundary": r.provenance.boundary,
            # The model's own accuracy (the agent's manifest) describes exactly what ran; else the catalog's.
            "top1": r.reference_top1 if r.reference_top1 is not None else (ref.top1 if ref else None),
            "top1_source": r.reference_top1_source if r.reference_top1 is not None else (ref.source if ref else None),
        })
    columns = ["id", "board", "run_id", "ts", "network", "backend", "device", "precision", "batch",
               "latency_ms_mean", "latency_ms_p50", "latency_ms_p99", "throughput_ips", "power_w",
               "energy_per_inference_j", "energy_per_inference_net_j", "idle_power_w", "unstable", "converged",
               "estimated", "power_source", "boundary", "top1", "top1_source"]
    df = pd.DataFrame(rows, columns=columns)
    for col in ("power_w", "energy_per_inference_j", "energy_per_inference_net_j", "idle_power_w", "top1"):
        df[col] = df[col].astype("float64")  # None → NaN, so "missing" survives arithmetic as missing
    return df


def latest(df: pd.DataFrame) -> pd.DataFrame:
    """Keep the newest result of each configuration (a re-run replaces the older measurement)."""
    if df.empty:
        return df
    return (df.sort_values("ts").drop_duplicates(CONFIG, keep="last")
              .sort_values(["board", "network", "batch"]).reset_index(drop=True))


def _config(row: pd.Series | None) -> dict | None:
    if row is None:
        return None
    keys = ["network", "backend", "device", "precision", "batch", "top1", "energy_per_inference_j",
            "throughput_ips", "latency_ms_mean", "power_w", "estimated"]
    out = {}
    for k in keys:
        v = row[k]
        if hasattr(v, "item"):
            v = v.item()
        out[k] = None if isinstance(v, float) and math.isnan(v) else v
    return out


def ceiling(df: pd.DataFrame, budget_j: float) -> dict:
    """The best accuracy among configurations of ``df`` whose energy per inference is ≤ ``budget_j``.

    Ties in accuracy go to the lower energy. Returns the configuration reaching it (``best``), or ``None`` with
    the cheapest configuration (``cheapest``) when nothing fits, plus counts of what could not be considered.
    """
    has_energy = df["energy_per_inference_j"].notna()
    has_accuracy = df["top1"].notna()
    candidates = df[has_energy & has_accuracy]
    feasible = candidates[candidates["energy_per_inference_j"] <= budget_j]
    best = None
    if not feasible.empty:
        best = feasible.sort_values(["top1", "energy_per_inference_j"], ascending=[False, True]).iloc[0]
    cheapest = None
    if best is None and not candidates.empty:
        cheapest = candidates.sort_values(["energy_per_inference_j", "top1"], ascending=[True, False]).iloc[0]
    return {
        "budget_j": budget_j,
        "basis": "gross energy per image",
        "accuracy": "reference top-1 from the catalog",
        "ceiling_top1": None if best is None else float(best["top1"]),
        "best": _config(best),
        "cheapest": _config(cheapest),
        "feasible": int(len(feasible)),
        "considered": int(len(candidates)),
        "without_energy": int((~has_energy).sum()),
        "without_accuracy": sorted(set(df.loc[~has_accuracy, "network"])),
        "estimated": bool(best is not None and best["estimated"]),
    }
