"""The seed paper's analyses (Canziani, Paszke & Culurciello 2016), recomputed on measured results.

Input is the frame of ``host.analysis`` (one row per configuration). A group is (board, power_mode, precision,
backend, device): times, power and memory of different backends or devices are different machines, so one line
through them would mean nothing. Missing numbers are left out, never read as 0. A fit needs 3 points and x that
varies; a record whose fit could not be made has its numbers None and says why in ``reason`` (None when the fit is
sound; where y is constant the flat line is kept and only r2 is None, with a reason).

- accuracy_vs_time: top-1 % = a − b / t across networks, t = ms per image, per group and batch (the seed's Fig. 9:
  accuracy's upper bound is linear in images/s, a hyperbola in time). a in %, b in % × ms; least squares of top-1
  on 1/t. r2 = 1 − SS_res / SS_tot; rmse = root mean square residual, in % (here and in every fit: y's unit).
- accuracy_vs_energy: the same with t = joules per image (gross, or net of idle power); b in % × J. Points with
  no energy are left out; net energy ≤ 0 (idle drift) has no 1/t and is left out too.
- ops_vs_time: ms per image = slope × G-ops + intercept across networks (Fig. 7); G-ops = 2 × GMACs per image.
- batch_scaling: per network, ms per image at the smallest batch ÷ at the largest (the gain from batching, ×),
  beside the share of its MACs in fully connected layers; the summary correlates the two across networks (Pearson
  r, Spearman ρ; |ρ| ≥ 0.5 counts as a link), testing the seed's early claim that FC layers are inefficient at
  small batches.
- Accuracy follows the report's rule (``analysis.ranked_top1``): an assumed top-1 (a precision other than fp32,
  not measured: the fp32 reference) is left out of the accuracy fits and the density unless ``assume_accuracy``;
  an accuracy fit's ``reason`` says how many were left out.
- accuracy_density: top-1 % per million parameters (Fig. 10), one row per network; density_ratios sets GoogLeNet
  against AlexNet and VGG-16 beside the seed's early "10× and 20× more information per parameter".
- power: mean and sample standard deviation of power across a group's configurations (W), their ratio (the
  coefficient of variation, cov) and the share of the variance that batch size and network each explain (one-way
  η², 0..1; None where the factor never varied): the seed's later claim that power is independent of batch size
  and architecture, judged independent when cov ≤ 0.10. Net of idle (as the seed's Fig. 4) when every
  configuration has it, else gross.
- memory_vs_batch: memory bytes = slope × batch + intercept per network measured at 3 or more batch sizes
  (Fig. 5): bytes per image and static bytes. Engine memory and process RSS growth are never mixed.
- memory_vs_params: memory bytes = slope × params + intercept across networks at the smallest batch (Fig. 6).

Everything returned is JSON-ready: plain Python numbers, None for a missing or undefined one.
"""

from __future__ import annotations

import math

import numpy as np
import pandas as pd

from dnnprof.shared import catalog

from . import analysis

GROUP = ["board", "power_mode", "precision", "backend", "device"]
SERIES = [*GROUP, "network"]
MIN_FIT = 3  # two points always fit a line exactly: R² would say nothing
INDEPENDENT_COV = 0.10  # power counts as independent of the configuration when stdev / mean ≤ this
# Critical |Spearman ρ| for a two-sided test at the 5% level, by number of networks (Zar, Biostatistical Analysis,
# table B.20); beyond 20, the normal approximation 1.96 / sqrt(n - 1). Fewer than 5 networks cannot reach 5%.
RHO_CRITICAL_5PCT = {5: 1.0, 6: 0.886, 7: 0.786, 8: 0.738, 9: 0.700, 10: 0.648, 11: 0.618, 12: 0.587, 13: 0.560,
                     14: 0.538, 15: 0.521, 16: 0.503, 17: 0.485, 18: 0.472, 19: 0.460, 20: 0.447}


def rho_critical(n: int) -> float | None:
    """|ρ| at or above which a Spearman correlation over ``n`` points is significant at 5%; None below 5."""
    if n < 5:
        return None
    return RHO_CRITICAL_5PCT.get(n) or 1.96 / math.sqrt(n - 1)
SEED_RATIOS = {"googlenet/alexnet": 10, "googlenet/vgg16": 20}
ENERGY = {"gross": "energy_per_inference_j", "net": "energy_per_inference_net_j"}
POWER_RULE = (f"independent when the coefficient of variation (stdev / mean) of power across the group's "
              f"configurations is <= {INDEPENDENT_COV:.2f}")
NUMBERS = ["batch", "ms_per_image", "top1", "gops", "params", "fc_macs_share", "power_w", "net_power_w",
           "memory_bytes", *ENERGY.values()]


# -- Plain values --------------------------------------------------------------------------------------------------

def _num(v) -> float | None:
    """A finite number as a plain float; NaN, inf and None as None."""
    if v is None:
        return None
    v = float(v)
    return v if math.isfinite(v) else None


def _nums(a) -> list[float | None]:
    """Numbers as plain floats, NaN and inf as None (whole arrays at once: a value at a time is slow)."""
    a = np.asarray(a, dtype=float)
    bad = ~np.isfinite(a)
    if not bad.any():
        return a.tolist()
    out = a.astype(object)
    out[bad] = None
    return [None if v is None else float(v) for v in out.tolist()]


def _ints(a) -> list[int | None]:
    return [None if v is None else int(v) for v in _nums(a)]


def _plain(col: str, values: list) -> list:
    """Key values as JSON-ready ones: batch as int, a missing key as None."""
    if col == "batch":
        return _ints(values)
    return [None if isinstance(v, float) and not math.isfinite(v) else v for v in values]


def _records(columns: dict[str, list]) -> list[dict]:
    names = list(columns)
    return [dict(zip(names, values)) for values in zip(*columns.values())]


def _plural(n: int, noun: tuple[str, str]) -> str:
    return f"{n} {noun[0] if n == 1 else noun[1]}"


# -- The frame as arrays -------------------------------------------------------------------------------------------

class _Frame:
    """The frame's numbers as arrays and its key columns as integer codes in sorted order.

    With the codes, the cells of any rows under any keys cost one np.unique instead of a pandas groupby.
    """

    KEYS = [*GROUP, "network", "batch", "memory_kind"]

    def __init__(self, df: pd.DataFrame, assume_accuracy: bool = False) -> None:
        self.n = len(df)
        self.codes: dict[str, np.ndarray] = {}
        self.values: dict[str, list] = {}
        for col in self.KEYS:
            codes, uniques = pd.factorize(df[col], sort=True, use_na_sentinel=False)
            self.codes[col], self.values[col] = codes.astype(np.int64), _plain(col, uniques.tolist())
        self.num = {col: df[col].to_numpy(dtype=float) for col in NUMBERS}
        self.num["top1"] = analysis.ranked_top1(df, assume_accuracy)
        # rows whose top-1 is assumed and so left out (counted in the accuracy fits' reasons)
        self.held = np.isfinite(df["top1"].to_numpy(dtype=float)) & ~np.isfinite(self.num["top1"])
        self.estimated = df["estimated"].to_numpy(dtype=bool)
        # One network under several spellings (ResNet-50, resnet50) is one network: normalise the few distinct names.
        keys = [catalog.normalize(v) if isinstance(v, str) else "" for v in self.values["network"]]
        key_codes, self.network_keys = pd.factorize(pd.Series(keys), sort=True)
        self.network_key = key_codes[self.codes["network"]]

    def rows(self, *columns: str, positive: tuple[str, ...] = ()) -> np.ndarray:
        """The rows where every one of ``columns`` is a finite number (and those in ``positive`` are > 0)."""
        keep = np.ones(self.n, dtype=bool)
        for col in columns:
            keep &= np.isfinite(self.num[col])
        for col in positive:
            keep &= self.num[col] > 0
        return np.flatnonzero(keep)

    def cells(self, rows: np.ndarray, keys: list[str]) -> tuple[np.ndarray, dict[str, list], int]:
        """Each of ``rows``' cell (cells numbered in key order), each cell's key values, and the number of cells."""
        combined = np.zeros(len(rows), dtype=np.int64)
        span = 1
        for col in keys:
            width = len(self.values[col])
            if span * width >= 2**62:
                # Renumber before the mixed-radix code overflows; np.unique keeps the order.
                combined = np.unique(combined, return_inverse=True)[1].ravel().astype(np.int64)
                span = int(combined.max()) + 1 if len(combined) else 1
            combined = combined * width + self.codes[col][rows]
            span *= width
        _, first, inverse = np.unique(combined, return_index=True, return_inverse=True)
        labels = {col: [self.values[col][i] for i in self.codes[col][rows[first]].tolist()] for col in keys}
        return inverse.ravel(), labels, len(first)


def _pairs(codes: np.ndarray, level: np.ndarray) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """The distinct (cell, level) pairs of rows, in order: each pair's cell and level, and each row's pair.

    ``level`` is a factor's code per row (0, 1, ...)."""
    width = int(level.max()) + 1 if len(level) else 1
    pairs, inverse = np.unique(codes.astype(np.int64) * width + level, return_inverse=True)
    return (pairs // width).astype(np.intp), pairs % width, inverse.ravel()


# -- Fits of many cells at once ------------------------------------------------------------------------------------

def _centred(codes: np.ndarray, n_cells: int, x: np.ndarray, y: np.ndarray) -> dict[str, np.ndarray]:
    """Per cell: n, means and sums of squares and products of deviations from the cell's means."""
    n = np.bincount(codes, minlength=n_cells)
    with np.errstate(divide="ignore", invalid="ignore"):
        mx = np.bincount(codes, x, n_cells) / n
        my = np.bincount(codes, y, n_cells) / n
    # Deviations first (two passes): raw sums of squares lose the variance of bytes-sized numbers to cancellation.
    dx, dy = x - mx[codes], y - my[codes]
    return {"n": n, "mx": mx, "my": my, "dx": dx, "dy": dy, "sxx": np.bincount(codes, dx * dx, n_cells),
            "sxy": np.bincount(codes, dx * dy, n_cells), "syy": np.bincount(codes, dy * dy, n_cells)}


def _constant(codes: np.ndarray, n_cells: int, v: np.ndarray) -> np.ndarray:
    """Whether every value of a cell is the same (compared exactly, not through a variance that rounds)."""
    lo, hi = np.full(n_cells, np.inf), np.full(n_cells, -np.inf)
    np.minimum.at(lo, codes, v)
    np.maximum.at(hi, codes, v)
    return lo == hi


def _fit_cells(codes: np.ndarray, n_cells: int, x: np.ndarray, y: np.ndarray) -> dict[str, np.ndarray]:
    """Least squares y = slope·x + intercept in every cell at once; x and y finite, codes in [0, n_cells)."""
    s = _centred(codes, n_cells, x, y)
    flat_x, flat_y = _constant(codes, n_cells, x), _constant(codes, n_cells, y)
    ok = (s["n"] >= MIN_FIT) & ~flat_x
    with np.errstate(divide="ignore", invalid="ignore"):
        slope = np.where(ok, s["sxy"] / s["sxx"], np.nan)
        intercept = s["my"] - slope * s["mx"]
        # Residuals summed directly: SS_yy − slope·SS_xy would leave rounding dust where points lie on the line.
        res = s["dy"] - slope[codes] * s["dx"]
        ss_res = np.bincount(codes, res * res, n_cells)
        r2 = np.where(flat_y, np.nan, 1 - ss_res / s["syy"])
        rmse = np.sqrt(ss_res / s["n"])
    return {"n": s["n"], "slope": slope, "intercept": intercept, "r2": r2, "rmse": rmse, "flat_x": flat_x,
            "flat_y": flat_y}


def _reasons(fit: dict[str, np.ndarray], noun: tuple[str, str], x: str, y: str) -> list[str | None]:
    """Why each cell's fit is missing or partial, or None for a sound fit."""
    out = []
    for n, flat_x, flat_y in zip(fit["n"].tolist(), fit["flat_x"].tolist(), fit["flat_y"].tolist()):
        if n == 0:
            out.append(f"no {noun[1]} with both {y} and {x}")
        elif n < MIN_FIT:
            out.append(f"{_plural(n, noun)}; a fit needs {MIN_FIT}")
        elif flat_x:
            out.append(f"every point has the same {x}; no line can be fitted")
        elif flat_y:
            out.append(f"every point has the same {y}; r2 is undefined")
        else:
            out.append(None)
    return out


def _one(fit: dict[str, np.ndarray], reason: str | None) -> dict:
    return {"n": int(fit["n"][0]), "r2": _num(fit["r2"][0]), "rmse": _num(fit["rmse"][0]), "reason": reason}


def fit_linear(x, y) -> dict:
    """Least squares y = slope·x + intercept over the pairs where both are finite.

    slope is in y's unit per x's unit; intercept and rmse (root mean square residual) in y's unit; r2 =
    1 − SS_res / SS_tot (None when y is constant). With fewer than 3 pairs, or x constant, the numbers are None and
    ``reason`` says why (None for a sound fit).
    """
    x, y = np.asarray(x, dtype=float).ravel(), np.asarray(y, dtype=float).ravel()
    keep = np.isfinite(x) & np.isfinite(y)
    fit = _fit_cells(np.zeros(int(keep.sum()), dtype=np.intp), 1, x[keep], y[keep])
    reason = _reasons(fit, ("point", "points"), "x", "y")[0]
    return {"slope": _num(fit["slope"][0]), "intercept": _num(fit["intercept"][0]), **_one(fit, reason)}


def fit_hyperbolic(t, y) -> dict:
    """Least squares y = a − b / t (a line in 1/t) over the pairs with t finite and > 0 and y finite.

    a and rmse are in y's unit, b in y's unit × t's unit; r2, n and ``reason`` as in :func:`fit_linear`.
    """
    t, y = np.asarray(t, dtype=float).ravel(), np.asarray(y, dtype=float).ravel()
    keep = np.isfinite(t) & (t > 0) & np.isfinite(y)
    fit = _fit_cells(np.zeros(int(keep.sum()), dtype=np.intp), 1, 1 / t[keep], y[keep])
    reason = _reasons(fit, ("point", "points"), "t", "y")[0]
    return {"a": _num(fit["intercept"][0]), "b": _num(-fit["slope"][0]), **_one(fit, reason)}


# -- The analyses --------------------------------------------------------------------------------------------------

def _names(f: _Frame, codes: np.ndarray, rows: np.ndarray, n_cells: int) -> list[list[str]]:
    """Each cell's distinct network names, sorted."""
    cell, level, _ = _pairs(codes, f.codes["network"][rows])
    bounds = np.searchsorted(cell, np.arange(n_cells + 1)).tolist()
    names, level = f.values["network"], level.tolist()
    return [[names[i] for i in level[a:b]] for a, b in zip(bounds[:-1], bounds[1:])]


def _accuracy(f: _Frame, x: str, estimated: bool) -> list[dict]:
    """top1 = a − b / x per group and batch: one record for every (group, batch) in the frame."""
    codes, labels, n_cells = f.cells(np.arange(f.n), [*GROUP, "batch"])
    rows = f.rows(x, "top1", positive=(x,))
    c = codes[rows]
    fit = _fit_cells(c, n_cells, 1 / f.num[x][rows], f.num["top1"][rows])
    out = {**labels, "x": [x] * n_cells, "a": _nums(fit["intercept"]), "b": _nums(-fit["slope"]),
           "r2": _nums(fit["r2"]), "rmse": _nums(fit["rmse"]), "n": fit["n"].tolist(),
           "networks": _names(f, c, rows, n_cells)}
    if estimated:
        out["estimated"] = (np.bincount(c, f.estimated[rows], n_cells) > 0).tolist()
    reasons = _reasons(fit, ("network", "networks"), x, "top1")
    held = np.flatnonzero(f.held & np.isfinite(f.num[x]) & (f.num[x] > 0))
    if held.size:
        counts = np.bincount(codes[held], minlength=n_cells).tolist()
        reasons = [r if not k else (f"{r}; " if r else "") + f"{_plural(k, ('configuration', 'configurations'))} "
                   "with assumed top-1 left out (not measured at this precision; --assume-accuracy uses it)"
                   for r, k in zip(reasons, counts)]
    out["reason"] = reasons
    return _records(out)


def _ops_vs_time(f: _Frame) -> list[dict]:
    codes, labels, n_cells = f.cells(np.arange(f.n), [*GROUP, "batch"])
    rows = f.rows("gops", "ms_per_image")
    fit = _fit_cells(codes[rows], n_cells, f.num["gops"][rows], f.num["ms_per_image"][rows])
    return _records({**labels, "slope_ms_per_gop": _nums(fit["slope"]), "intercept_ms": _nums(fit["intercept"]),
                     "r2": _nums(fit["r2"]), "n": fit["n"].tolist(),
                     "reason": _reasons(fit, ("network", "networks"), "gops", "ms_per_image")})


def _batch_scaling(f: _Frame) -> tuple[list[dict], np.ndarray, np.ndarray, np.ndarray]:
    """Per network series with 2 or more batch sizes: ms per image at the smallest and at the largest batch.

    Returns the records, and for each a row of its series, its gain and its FC share (for the summary).
    """
    rows = f.rows("ms_per_image", "batch", positive=("ms_per_image",))
    codes, labels, n_cells = f.cells(rows, SERIES)
    batch, ms, fc = f.num["batch"][rows], f.num["ms_per_image"][rows], f.num["fc_macs_share"][rows]
    order = np.lexsort((batch, codes))
    lo = order[np.searchsorted(codes[order], np.arange(n_cells), side="left")]
    hi = order[np.searchsorted(codes[order], np.arange(n_cells), side="right") - 1]
    # The share is the network's, the same in every row that has it: take the first that does.
    known = np.flatnonzero(np.isfinite(fc))
    cells_known, first = np.unique(codes[known], return_index=True)
    share = np.full(n_cells, np.nan)
    share[cells_known] = fc[known[first]]
    chosen = np.flatnonzero(batch[lo] < batch[hi])
    lo, hi, share = lo[chosen], hi[chosen], share[chosen]
    gain = ms[lo] / ms[hi]
    records = _records({**{k: [v[i] for i in chosen.tolist()] for k, v in labels.items()},
                        "batch_min": _ints(batch[lo]), "batch_max": _ints(batch[hi]),
                        "ms_per_image_at_min": _nums(ms[lo]), "ms_per_image_at_max": _nums(ms[hi]),
                        "gain": _nums(gain), "fc_macs_share": _nums(share)})
    return records, rows[lo], gain, share


def _ranks(codes: np.ndarray, v: np.ndarray) -> np.ndarray:
    """Ranks (1, 2, ...) of v within each cell; ties share their mean rank, as Spearman's ρ wants."""
    order = np.lexsort((v, codes))
    c, sv = codes[order], v[order]
    start = np.searchsorted(c, c, side="left")  # where each row's cell begins in the sorted order
    position = np.arange(len(v)) - start + 1.0
    run = np.concatenate([[0], np.cumsum((np.diff(c) != 0) | (np.diff(sv) != 0))]) if len(v) else np.zeros(0, int)
    mean = np.bincount(run, position) / np.bincount(run)
    out = np.empty(len(v))
    out[order] = mean[run]
    return out


def _correlation(codes: np.ndarray, n_cells: int, x: np.ndarray, y: np.ndarray) -> np.ndarray:
    s = _centred(codes, n_cells, x, y)
    with np.errstate(divide="ignore", invalid="ignore"):
        return np.clip(s["sxy"] / np.sqrt(s["sxx"] * s["syy"]), -1.0, 1.0)


def _finding(n: int, r: float | None, rho: float | None, reason: str | None) -> str:
    if rho is None:
        return f"Cannot say whether networks with more FC MACs gain more from batching: {reason}."
    stats = f"Spearman rho = {rho:.2f}" + ("" if r is None else f", Pearson r = {r:.2f}") + f" over {n} networks"
    critical = rho_critical(n)
    if critical is None:
        return f"Too few networks to judge whether more FC MACs mean more gain from batching ({stats}; 5 needed)."
    if rho >= critical:
        return (f"Networks with more FC MACs gain more from batching ({stats}; significant at 5%, |rho| >= "
                f"{critical:.3f}), as the seed's early versions said.")
    if rho <= -critical:
        return (f"Networks with more FC MACs gain less from batching ({stats}; significant at 5%, |rho| >= "
                f"{critical:.3f}), unlike the seed's early claim.")
    return (f"No clear link between the FC share of MACs and the gain from batching ({stats}; not significant at "
            f"5%, which needs |rho| >= {critical:.3f}).")


def _scaling_summary(f: _Frame, rows: np.ndarray, gain: np.ndarray, share: np.ndarray) -> list[dict]:
    """Per group: does the gain from batching follow the FC share of MACs (Pearson r, Spearman ρ)?"""
    codes, labels, n_cells = f.cells(rows, GROUP)
    keep = np.isfinite(gain) & np.isfinite(share)
    c, x, y = codes[keep], share[keep], gain[keep]
    pearson = _correlation(c, n_cells, x, y)
    spearman = _correlation(c, n_cells, _ranks(c, x), _ranks(c, y))  # Spearman's ρ: Pearson's r of the ranks
    flat_x, flat_y = _constant(c, n_cells, x), _constant(c, n_cells, y)
    n = np.bincount(c, minlength=n_cells).tolist()
    out = []
    for i, label in enumerate(_records(labels)):
        reason = None
        if n[i] < MIN_FIT:
            reason = (f"{_plural(n[i], ('network', 'networks'))} measured at 2 batch sizes with an FC MAC share; "
                      f"a correlation needs {MIN_FIT}")
        elif flat_x[i]:
            reason = "every network has the same FC MAC share"
        elif flat_y[i]:
            reason = "every network gains the same from batching"
        r = None if reason else _num(pearson[i])
        rho = None if reason else _num(spearman[i])
        out.append({**label, "n": n[i], "pearson_r": r, "spearman_rho": rho, "finding": _finding(n[i], r, rho, reason),
                    "reason": reason})
    return out


def _density(f: _Frame) -> tuple[list[dict], dict]:
    """Top-1 % per million parameters, one row per network (by normalised name), densest first."""
    rows = f.rows("top1", "params", positive=("params",))
    nets = pd.DataFrame({"key": f.network_key[rows], "row": rows, "top1": f.num["top1"][rows],
                         "params_m": f.num["params"][rows] / 1e6})
    # Rows of one network may disagree (counted from the model vs published): the median is the network's value.
    nets = nets.groupby("key", sort=True).agg(row=("row", "first"), top1=("top1", "median"),
                                              params_m=("params_m", "median"))
    nets["density"] = nets["top1"] / nets["params_m"]
    nets["network"] = [f.values["network"][i] for i in f.codes["network"][nets["row"].to_numpy()].tolist()]
    nets = nets.sort_values(["density", "network"], ascending=[False, True], kind="stable")
    density = {f.network_keys[k]: d for k, d in zip(nets.index.tolist(), nets["density"].tolist())}

    def ratio(a: str, b: str) -> float | None:
        return _num(density[a] / density[b]) if a in density and b in density else None

    records = _records({"network": nets["network"].tolist(), "top1": _nums(nets["top1"]),
                        "params_m": _nums(nets["params_m"]), "density": _nums(nets["density"])})
    ratios = {"googlenet/alexnet": ratio("googlenet", "alexnet"), "googlenet/vgg16": ratio("googlenet", "vgg16"),
              "seed": dict(SEED_RATIOS)}
    return records, ratios


def _eta2(codes: np.ndarray, n_groups: int, level: np.ndarray, v: np.ndarray, mean: np.ndarray,
          ss_tot: np.ndarray) -> np.ndarray:
    """One-way η² per group: between-level sum of squares ÷ total; NaN where the factor has one level."""
    group_of, _, level_codes = _pairs(codes, level)
    n = np.bincount(level_codes)
    level_mean = np.bincount(level_codes, v) / n
    ss_between = np.bincount(group_of, n * (level_mean - mean[group_of]) ** 2, n_groups)
    count = np.bincount(group_of, minlength=n_groups)
    with np.errstate(divide="ignore", invalid="ignore"):
        return np.where((count >= 2) & (ss_tot > 0), ss_between / ss_tot, np.nan)


def _power(f: _Frame) -> list[dict]:
    """Per group over its configurations with power: how much power varies, and with what."""
    rows = f.rows("power_w")
    codes, labels, n_cells = f.cells(rows, GROUP)
    gross, net = f.num["power_w"][rows], f.num["net_power_w"][rows]
    all_net = np.bincount(codes, ~np.isfinite(net), n_cells) == 0
    v = np.where(all_net[codes], net, gross)
    s = _centred(codes, n_cells, v, v)
    n, mean, ss = s["n"], s["mx"], s["sxx"]
    with np.errstate(divide="ignore", invalid="ignore"):
        stdev = np.where(n >= 2, np.sqrt(ss / (n - 1)), np.nan)
        cov = np.where(mean > 0, stdev / mean, np.nan)
    eta2_batch = _eta2(codes, n_cells, f.codes["batch"][rows], v, mean, ss)
    eta2_network = _eta2(codes, n_cells, f.network_key[rows], v, mean, ss)
    estimated = np.bincount(codes, f.estimated[rows], n_cells) > 0
    out = []
    for i, label in enumerate(_records(labels)):
        count = int(n[i])
        reason = None
        if count < MIN_FIT:
            reason = f"{_plural(count, ('configuration', 'configurations'))} with power; judging needs {MIN_FIT}"
        elif not mean[i] > 0:
            reason = "mean power is not positive; its variation relative to the mean is undefined"
        judged = reason is None
        out.append({**label, "basis": "net" if all_net[i] else "gross", "n": count, "mean_w": _num(mean[i]),
                    "stdev_w": _num(stdev[i]), "cov": _num(cov[i]),
                    "eta2_batch": _num(eta2_batch[i]) if judged else None,
                    "eta2_network": _num(eta2_network[i]) if judged else None,
                    "independent": bool(cov[i] <= INDEPENDENT_COV) if judged else None, "rule": POWER_RULE,
                    "estimated": bool(estimated[i]), "reason": reason})
    return out


def _memory_vs_batch(f: _Frame) -> list[dict]:
    """memory = slope·batch + intercept per network series measured with memory at 3 or more batch sizes."""
    rows = f.rows("memory_bytes", "batch")
    # Engine memory and a process's RSS growth are different quantities: never one line through both.
    codes, labels, n_cells = f.cells(rows, [*SERIES, "memory_kind"])
    fit = _fit_cells(codes, n_cells, f.num["batch"][rows], f.num["memory_bytes"][rows])
    sizes = np.bincount(_pairs(codes, f.codes["batch"][rows])[0], minlength=n_cells)  # distinct batch sizes
    chosen = np.flatnonzero(sizes >= MIN_FIT)
    pick = chosen.tolist()
    reasons = _reasons(fit, ("batch size", "batch sizes"), "batch", "memory_bytes")
    return _records({**{k: [v[i] for i in pick] for k, v in labels.items()},
                     "slope_bytes_per_image": _nums(fit["slope"][chosen]),
                     "intercept_bytes": _nums(fit["intercept"][chosen]), "r2": _nums(fit["r2"][chosen]),
                     "n": fit["n"][chosen].tolist(), "reason": [reasons[i] for i in pick]})


def _memory_vs_params(f: _Frame) -> list[dict]:
    """memory = slope·params + intercept across networks, per group at its smallest batch with memory."""
    rows = f.rows("memory_bytes", "params", "batch")
    codes, labels, n_cells = f.cells(rows, [*GROUP, "memory_kind"])
    batch = f.num["batch"][rows]
    smallest = np.full(n_cells, np.inf)
    np.minimum.at(smallest, codes, batch)
    at = batch == smallest[codes]
    fit = _fit_cells(codes[at], n_cells, f.num["params"][rows[at]], f.num["memory_bytes"][rows[at]])
    return _records({**labels, "batch": _ints(smallest), "slope_bytes_per_param": _nums(fit["slope"]),
                     "intercept_bytes": _nums(fit["intercept"]), "r2": _nums(fit["r2"]), "n": fit["n"].tolist(),
                     "reason": _reasons(fit, ("network", "networks"), "params", "memory_bytes")})


def analyses(df: pd.DataFrame, energy: str = "gross", assume_accuracy: bool = False) -> dict:
    """The seed's analyses of ``df`` (a frame from ``host.analysis``): lists of flat, JSON-ready records.

    ``energy`` picks the energy per image of accuracy_vs_energy: "gross" (J, idle included) or "net" (J, idle
    subtracted). ``assume_accuracy``: use assumed top-1 (see the module docstring). The module docstring says what
    each analysis computes and in which units.
    """
    if energy not in ENERGY:
        raise ValueError(f"energy must be one of {', '.join(ENERGY)}, not {energy!r}")
    f = _Frame(df, assume_accuracy)
    scaling, rows, gain, share = _batch_scaling(f)
    density, ratios = _density(f)
    return {
        "accuracy_vs_time": _accuracy(f, "ms_per_image", estimated=False),
        "accuracy_vs_energy": _accuracy(f, ENERGY[energy], estimated=True),
        "ops_vs_time": _ops_vs_time(f),
        "batch_scaling": scaling,
        "batch_scaling_summary": _scaling_summary(f, rows, gain, share),
        "accuracy_density": density,
        "density_ratios": ratios,
        "power": _power(f),
        "memory_vs_batch": _memory_vs_batch(f),
        "memory_vs_params": _memory_vs_params(f),
    }
