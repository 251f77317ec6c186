"""``dnnhost predict``: what a network never measured on a board would cost there — latency, images/s and energy per
image — from its op profile and the networks that were measured there.

The model, one per group of measured configurations (board, backend/device, power mode, precision, batch):

    y = c0 + c1 · non-FC GMACs + c2 · FC GMACs + c3 · activation MB + c4 · params M,   every c >= 0

with y the time per image (ms) or the gross energy per image (J), fitted on *relative* error (each network weighs
the same whatever its size) with a Huber loss (a relative residual beyond 10% — an unstable point, by the agent's
own measure — weighs less and less), under non-negativity. The terms are the costs a runtime pays:
arithmetic of convolutions (non-FC MACs: convolutions, and any matrix product between two activations, such as
attention) and of fully connected layers (apart: the seed's first finding is that FC layers run
far below the convolutions' rate at small batch), memory traffic of activations (what makes depthwise networks
slower than their MACs say), and weights read once per batch. Non-negativity keeps the fit physical with the
dozen networks a board typically has (SyNERGY's and the seed's MAC regressions are the same idea with one term).

Every prediction carries its group's leave-one-network-out error: each measured network in turn is predicted from
the others, and the median and worst relative error are reported — the honest figure for "a network never measured
there". Results from agents that did not count activation bytes give a smaller profile: the features
used are named. The seed's op-count line (``y = a · GMACs + b``, ordinary least squares) is fitted alongside as
the baseline.
"""

from __future__ import annotations

import dataclasses
from dataclasses import dataclass

import numpy as np
import pandas as pd

from dnnprof.shared import schema
from dnnprof.shared.errors import UserError

from . import analysis

# feature name -> what it is; values per image
FEATURES = {
    "nonfc_gmacs": "convolution (non-FC) GMACs",
    "fc_gmacs": "fully connected GMACs",
    "activation_mb": "activation MB",
    "params_m": "parameters (M)",
}
TARGETS = {"ms_per_image": "time per image (ms)", "energy_per_inference_j": "gross energy per image (J)"}
# energy_group: the boundary group of analysis.boundary_group ("none": no energy) — a board that changed its power
# source between runs is two groups, never one fit over energies that cover different things
# clocks: jetson_clocks on or off (or the CPU governor) — a locked and a DVFS measurement are two groups
GROUP = ["board", "backend", "device", "power_mode", "clocks", "precision", "batch", "energy_group"]


def with_groups(df: pd.DataFrame) -> pd.DataFrame:
    """``df`` with its ``energy_group`` column, and a clock state on every row (grouping needs a value: pandas drops
    NaN groups, and a result without a clock state is still a result)."""
    if "energy_group" in df.columns:
        return df
    return df.assign(energy_group=[g or "none" for g in analysis.boundary_group(df)],
                     clocks=df["clocks"].where(df["clocks"].notna(), "unknown"))


def features(df: pd.DataFrame) -> pd.DataFrame:
    """The op profile of each row as model features (NaN where the result did not carry it)."""
    gmacs = df["gmacs"].astype("float64")
    counted = df["cost_source"].to_numpy() == "model"  # catalog figures have no split: not a profile
    fc = gmacs * df["fc_macs_share"].astype("float64")
    out = pd.DataFrame({
        "nonfc_gmacs": gmacs - fc,
        "fc_gmacs": fc,
        "activation_mb": df["activation_bytes"].astype("float64") / 1e6,
        "params_m": df["params"].astype("float64") / 1e6,
    }, index=df.index)
    out.loc[~counted, :] = np.nan
    return out


def min_networks(n_features: int) -> int:
    """Networks a group needs: one per coefficient (with the intercept) plus one, so that each leave-one-out fit
    is still determined."""
    return n_features + 2


# Relative residuals up to this size count in full (least squares), larger ones less and less (Huber): the agent
# calls a point whose latency varies by more than 10% unstable, and one such point must not bend the fit for all.
ROBUST_SCALE = 0.10


def fit(x: np.ndarray, y: np.ndarray) -> np.ndarray:
    """Coefficients (intercept first), all >= 0, of the robust relative-error fit of ``y`` on the columns of ``x``:
    non-negative least squares, then a Huber loss from there (scipy's bounded trust-region solver)."""
    from scipy.optimize import least_squares, nnls

    design = np.column_stack([np.ones(len(y)), x]) / y[:, None]
    start = nnls(design, np.ones(len(y)))[0]
    if len(y) <= design.shape[1]:  # exactly determined (or less): nothing to be robust against
        return start
    found = least_squares(lambda c: design @ c - 1.0, start, bounds=(0.0, np.inf), loss="huber",
                          f_scale=ROBUST_SCALE, method="trf")
    return found.x


def evaluate(coef: np.ndarray, x: np.ndarray) -> np.ndarray:
    return coef[0] + np.atleast_2d(x) @ coef[1:]


def fit_macs_line(macs: np.ndarray, y: np.ndarray) -> np.ndarray:
    """The seed's baseline: ``y = a · GMACs + b`` by ordinary least squares; returns (b, a)."""
    design = np.column_stack([np.ones(len(y)), macs])
    return np.linalg.lstsq(design, y, rcond=None)[0]


@dataclass(frozen=True)
class Error:
    """Leave-one-network-out relative error of one target in one group (fractions: 0.05 = 5%)."""

    median: float
    worst: float
    worst_network: str
    n: int

    def as_dict(self) -> dict:
        return dataclasses.asdict(self)


def loo_errors(x: np.ndarray, y: np.ndarray, fitter=fit, model=evaluate) -> np.ndarray:
    """Relative error of each network predicted by a fit over all the others."""
    errors = np.empty(len(y))
    for i in range(len(y)):
        keep = np.arange(len(y)) != i
        coef = fitter(x[keep], y[keep])
        errors[i] = abs(float(model(coef, x[i:i + 1])[0]) - y[i]) / y[i]
    return errors


def _summary(names: list[str], errors: np.ndarray) -> Error:
    worst = int(np.argmax(errors))
    return Error(median=float(np.median(errors)), worst=float(errors[worst]), worst_network=names[worst],
                 n=len(errors))


def macs_line(coef: np.ndarray, x: np.ndarray) -> np.ndarray:
    """The baseline's prediction: ``x`` holds GMACs in its one column."""
    return coef[0] + coef[1] * np.atleast_2d(x)[:, 0]


@dataclass
class Group:
    """The measured networks of one (board, backend, device, power mode, precision, batch), ready to fit."""

    key: dict
    rows: pd.DataFrame  # one row per network (the newest), with profile features
    used: list[str]  # the features every network here (and the model predicted) has
    without_profile: list[str]  # networks measured here that carry no op profile
    estimated: bool  # the energy here is an estimate

    @property
    def networks(self) -> list[str]:
        return self.rows["network"].tolist()

    def data(self, target: str) -> tuple[list[str], np.ndarray, np.ndarray]:
        """(networks, features, target values) of the networks that measured ``target`` (a positive number)."""
        y = self.rows[target].to_numpy(dtype="float64")
        keep = np.isfinite(y) & (y > 0)
        names = [n for n, k in zip(self.networks, keep) if k]
        return names, self.rows[self.used].to_numpy(dtype="float64")[keep], y[keep]

    def loo(self, target: str, robust_macs: bool = False) -> tuple[list[str], dict[str, np.ndarray]]:
        """Networks, and the leave-one-network-out relative errors for ``target`` of: this model (``model``), the
        seed's MACs-only line (``macs_line``: least squares), and with ``robust_macs`` MACs alone fitted as this
        model is (``macs_robust``: relative, Huber, non-negative) — so a gain is the profile's, not the fitting's."""
        names, x, y = self.data(target)
        keep = self.rows["network"].isin(names).to_numpy()
        macs = self.rows["gmacs"].to_numpy(dtype="float64")[keep][:, None]
        errors = {"model": loo_errors(x, y), "macs_line": loo_errors(macs, y, fit_macs_line, macs_line)}
        if robust_macs:
            errors["macs_robust"] = loo_errors(macs, y)
        return names, errors

    def cross_validate(self, target: str) -> tuple[Error, Error]:
        """``loo`` summarised: median and worst, for this model and for the seed's MACs-only line."""
        names, errors = self.loo(target)
        return _summary(names, errors["model"]), _summary(names, errors["macs_line"])


def groups(df: pd.DataFrame, wanted: list[str] | None = None, exclude: str | None = None) -> list[Group]:
    """The groups of ``df`` (one board's or a fleet's newest results) with the features every network has.

    ``wanted``: features the caller needs (the profile of the model to predict has them); ``exclude``: a network
    left out of every fit (the one being predicted, when it was measured too).
    """
    if df.empty:
        return []
    df = with_groups(df)
    table = pd.concat([df, features(df)], axis=1)
    candidates = [f for f in FEATURES if (wanted is None or f in wanted)]
    out = []
    for key, rows in table.groupby(GROUP, sort=True):
        rows = rows[rows["network"] != exclude] if exclude is not None else rows
        rows = rows.sort_values("ts").drop_duplicates("network", keep="last").sort_values("network")
        profiled = rows[rows[["nonfc_gmacs", "fc_gmacs", "params_m"]].notna().all(axis=1)]
        # the features every profiled network has; with none profiled, all the model could use (what to measure)
        used = [f for f in candidates if profiled[f].notna().all()] if len(profiled) else candidates
        ok = profiled[profiled[used].notna().all(axis=1)]
        missing = sorted(set(rows["network"]) - set(ok["network"]))
        out.append(Group(key=dict(zip(GROUP, key)), rows=ok.reset_index(drop=True), used=used,
                         without_profile=missing, estimated=bool(rows["estimated"].any())))
    return out


def predict(group: Group, profile: dict, measured: pd.Series | None = None) -> dict:
    """The prediction for one model in one group, with its cross-validated errors (plain data).

    ``profile``: the model's feature values (``FEATURES`` keys). ``measured``: the model's own result in this
    group, when it was measured here (it was left out of the fit; shown as a check of the prediction).
    """
    need = min_networks(len(group.used))
    base = {**{k: analysis.plain(v) for k, v in group.key.items()}, "features": list(group.used),
            "networks": group.networks, "without_profile": group.without_profile, "needs_networks": need,
            "estimated": group.estimated}
    if len(group.networks) < need:
        more = need - len(group.networks)
        return {**base, "refused": f"{len(group.networks)} measured network{'s' if len(group.networks) != 1 else ''}"
                                   f" with an op profile here; a prediction needs {need} — measure {more} more"}
    x = np.array([[profile[f] for f in group.used]])
    out = {**base, "refused": None, "predicted": {}, "cv": {}, "baseline_cv": {}, "measured": None, "notes": {}}
    for target in TARGETS:
        names, xs, ys = group.data(target)
        if len(names) < need:  # e.g. energy on a board without a power source
            out["predicted"][target] = None
            out["cv"][target] = out["baseline_cv"][target] = None
            out["notes"][target] = (f"{len(names)} of the {len(group.networks)} networks here measured "
                                    f"{TARGETS[target]}; a prediction needs {need}")
            continue
        coef = fit(xs, ys)
        out["predicted"][target] = float(evaluate(coef, x)[0])
        ours, line = group.cross_validate(target)
        out["cv"][target], out["baseline_cv"][target] = ours.as_dict(), line.as_dict()
        out.setdefault("coefficients", {})[target] = dict(zip(["intercept", *group.used], map(float, coef)))
    ms = out["predicted"]["ms_per_image"]
    out["predicted"]["throughput_ips"] = None if not ms else 1000.0 / ms
    if measured is not None:
        out["measured"] = {"ms_per_image": analysis.plain(measured["ms_per_image"]),
                           "throughput_ips": analysis.plain(measured["throughput_ips"]),
                           "energy_per_inference_j": analysis.plain(measured["energy_per_inference_j"])}
    return out


def model_profile(cost: schema.ModelCost) -> dict:
    """Feature values of a counted graph (``opcount.cost``); {} when it could not be counted completely."""
    counted = analysis.profile(cost)
    if counted is None:
        return {}
    row = features(pd.DataFrame([counted])).iloc[0]
    return {f: None if pd.isna(row[f]) else float(row[f]) for f in FEATURES}


def fits_budget(prediction: dict, budget_j: float, top1: float | None, board_rows: pd.DataFrame,
                assume_accuracy: bool = False) -> dict | None:
    """Would the predicted network fit ``budget_j`` (gross, per image) on this board, and what would the board's
    ceiling be?

    ``board_rows``: the board's configurations measured at the prediction's boundary (every mode, precision and
    batch: all the user could choose). Its measured ceiling at the budget, and the ceiling with the predicted
    network added (labelled a prediction), are both given.

    Accuracy follows the report's rule (``analysis.ranked_top1``): a configuration whose top-1 is assumed (not fp32,
    not measured) is not ranked unless ``assume_accuracy``, and neither is ``top1`` in a group of another precision
    than fp32 — the network never ran there, so its top-1 is the fp32 one, assumed (``top1_assumed``).
    """
    energy = prediction["predicted"].get("energy_per_inference_j") if prediction.get("predicted") else None
    if energy is None:
        return None
    limits = analysis.Limits(energy_budget_j=budget_j, assume_accuracy=assume_accuracy)
    measured = analysis.ceiling(board_rows, limits) if len(board_rows) else None
    best = measured["best"] if measured else None
    fits = bool(energy <= budget_j)
    ceiling_now = measured["top1"] if measured else None
    top1_assumed = bool(top1 is not None and str(prediction.get("precision")).lower() != analysis.REFERENCE_PRECISION)
    usable = top1 is not None and (assume_accuracy or not top1_assumed)
    with_it = ceiling_now
    if fits and usable and (ceiling_now is None or top1 > ceiling_now):
        with_it = top1
    raises = bool(with_it is not None and with_it != ceiling_now)
    return {"budget_j": budget_j, "fits": fits, "margin_j": budget_j - energy, "top1": top1,
            "top1_assumed": top1_assumed, "top1_ranked": bool(usable),
            "estimated": prediction["estimated"], "ceiling_measured": ceiling_now,
            "ceiling_measured_by": None if best is None else
            f"{best['network']} batch {best['batch']} {best['precision']}",
            "ceiling_with_prediction": with_it, "raises_ceiling": raises,
            # the answer rests on assumed accuracy (only with assume_accuracy)
            "assumed": bool((raises and top1_assumed) or (not raises and measured and measured["assumed"])),
            "excluded_assumed": (measured or {}).get("excluded", {}).get("assumed", 0)}


@dataclass(frozen=True)
class Question:
    """What ``dnnhost predict`` was asked: which groups, and the budget to check (None: no budget)."""

    board: str | None = None
    power_mode: str | None = None
    precision: str | None = None
    batches: tuple[int, ...] = ()
    energy_budget_j: float | None = None
    top1: float | None = None  # the model's accuracy (percent), for the budget answer
    assume_accuracy: bool = False  # rank assumed accuracy (not fp32, not measured) as the report does with it


def answer(df: pd.DataFrame, network: str, cost: schema.ModelCost, question: Question) -> dict:
    """Predictions for the model ``network`` (counted as ``cost``) in every group of ``df`` the question selects.

    ``df``: the newest results (``analysis.latest``). The model's own measurements, where it was measured, are left
    out of the fit and shown beside the prediction. Raises UserError when nothing matches or every group refuses.
    """
    profile = model_profile(cost)
    if not profile:
        raise UserError(f"{network}: the graph could not be counted completely (unsupported ops), so there is no "
                        "op profile to predict from")
    wanted = [f for f, v in profile.items() if v is not None]
    selected = df
    for column, value in (("board", question.board), ("power_mode", question.power_mode),
                          ("precision", question.precision)):
        if value is not None:
            if value not in set(selected[column]):
                known = ", ".join(sorted(map(str, set(selected[column])))) or "none"
                raise UserError(f"no results with {column.replace('_', ' ')} {value!r} here (known: {known})")
            selected = selected[selected[column] == value]
    if question.batches:
        missing = sorted(set(question.batches) - set(selected["batch"]))
        if missing:
            known = ", ".join(map(str, sorted(set(selected["batch"])))) or "none"
            raise UserError(f"no results at batch {', '.join(map(str, missing))} for this selection (measured "
                            f"batches: {known})")
        selected = selected[selected["batch"].isin(question.batches)]
    if selected.empty:
        raise UserError("no results stored yet: measure some networks on the board first (dnnagent run)")
    selected = with_groups(selected)
    everything = with_groups(df)
    own = selected[selected["network"] == network]
    predictions = []
    for group in groups(selected, wanted, exclude=network):
        key = group.key
        mine = own[np.logical_and.reduce([own[k] == v for k, v in key.items()])] if len(own) else own
        entry = predict(group, profile, mine.iloc[-1] if len(mine) else None)
        if question.energy_budget_j is not None and entry["refused"] is None:
            board_rows = everything[(everything["board"] == key["board"])
                                    & (everything["energy_group"] == key["energy_group"])]
            entry["budget"] = fits_budget(entry, question.energy_budget_j, question.top1, board_rows,
                                          question.assume_accuracy)
        predictions.append(entry)
    answered = [p for p in predictions if p["refused"] is None]
    if not answered:
        worst = max(predictions, key=lambda p: p["needs_networks"] - len(p["networks"]))
        raise UserError(f"cannot predict {network} yet: {describe_group(worst)} has {worst['refused']}")
    return {"network": network, "profile": profile, "cost": schema.to_builtins(cost), "top1": question.top1,
            "energy_budget_j": question.energy_budget_j, "assume_accuracy": question.assume_accuracy,
            "features": FEATURES, "targets": TARGETS, "predictions": predictions}


def describe_group(p: dict) -> str:
    """A prediction's group in words: ``orin-01 MAXN fp16 batch 8 on tensorrt/gpu``."""
    mode = "" if p["power_mode"] == analysis.NO_MODE else f" {p['power_mode']}"
    locked = " (jetson_clocks on)" if p.get("clocks") == "jetson_clocks on" else ""
    return f"{p['board']}{mode}{locked} {p['precision']} batch {p['batch']} on {p['backend']}/{p['device']}"
