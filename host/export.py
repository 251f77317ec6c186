"""Exports of the aggregated table (one row per configuration, the newest result of each): CSV, JSON, Parquet.

Besides the frame's columns (see analysis.COLUMNS: among them ``accuracy_source``, ``top1_source``, ``assumed``,
``top5``, ``top1_ci_low``/``top1_ci_high``, ``accuracy_images`` and ``precision_method``) each row carries
``energy_j`` (in the report's basis), ``energy_basis`` (e.g. "gross energy per image"), ``within_limits``,
``ranked`` (its top-1 takes part in the ranking: it has one, not assumed unless the report assumes accuracy) and
``on_frontier``. Missing values stay missing: empty in CSV, null in JSON and Parquet.
"""

from __future__ import annotations

from pathlib import Path

import pandas as pd

from dnnprof.shared.errors import UserError

from . import analysis

FORMATS = (".csv", ".json", ".parquet")


def table(df: pd.DataFrame, limits: analysis.Limits, basis: analysis.Basis) -> pd.DataFrame:
    """The frame with the report's own columns added."""
    out = pd.concat([df, analysis.flags(df, limits, basis)], axis=1)
    out.insert(out.columns.get_loc("energy_j") + 1, "energy_basis", basis.text)
    return out


def check(path: Path) -> None:
    """Refuse an unknown format before any work is done."""
    if path.suffix.lower() not in FORMATS:
        raise UserError(f"--export {path}: the file name must end in {', '.join(FORMATS)} (that picks the format)")


def write(df: pd.DataFrame, path: Path) -> None:
    """Write ``df`` to ``path`` in the format its suffix names."""
    check(path)
    suffix = path.suffix.lower()
    try:
        path.parent.mkdir(parents=True, exist_ok=True)
        if suffix == ".csv":
            df.to_csv(path, index=False)
        elif suffix == ".json":
            df.to_json(path, orient="records", indent=1)
        else:
            try:
                import pyarrow  # noqa: F401  (pandas needs it for Parquet; say so plainly if it is missing)
            except ImportError:
                raise UserError("Parquet export needs pyarrow: pip install 'dnnprof[host]'") from None
            df.to_parquet(path, index=False)
    except OSError as exc:
        raise UserError(f"cannot write {path}: {exc.strerror or exc}") from None
