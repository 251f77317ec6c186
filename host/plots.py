"""The seed paper's figures (Canziani et al. 2016) drawn from the frame and the report, as PNG and SVG files.

matplotlib is imported on first use and only through its object-oriented API (``Figure`` on an Agg canvas): no
display, no pyplot state shared between threads, and ``dnnhost report`` without plots does not pay for the import.
Missing values are left out of a figure, never drawn as 0. An assumed top-1 (a precision other than fp32, not
measured) is drawn only when the report assumed accuracy (``limits.assume_accuracy``), as it is ranked.
"""

from __future__ import annotations

import functools
import math
import re
import threading
from pathlib import Path

import numpy as np
import pandas as pd

from dnnprof.shared import units

from . import analysis, paper

FIGURES = ("accuracy_vs_ops", "time_vs_batch", "power_vs_batch", "memory_vs_batch", "ops_vs_time",
           "accuracy_vs_throughput", "accuracy_density", "frontier")
FLEET = "fleet_frontier"  # drawn only for `report --fleet`: every board's frontier on one axes
CAPTIONS = {
    "accuracy_vs_ops": "Top-1 accuracy against operations per image; marker area ∝ parameters (seed Fig. 2).",
    "time_vs_batch": "Inference time per image against batch size, one line per network (seed Fig. 3).",
    "power_vs_batch": "Power against batch size, one line per network (net of idle where every point has it); the "
                      "band is mean ± 1 SD (seed Fig. 4).",
    "memory_vs_batch": "Memory against batch size, one line per network; dotted: linear fit (seed Fig. 5).",
    "ops_vs_time": "Operations per image against time per image at the smallest and largest batch, with the linear "
                   "fits (seed Fig. 7).",
    "accuracy_vs_throughput": "Top-1 accuracy against images per second at the smallest and largest batch, marker "
                              "area ∝ power, with the fitted a − b/t curves (seed Fig. 9).",
    "accuracy_density": "Accuracy density: top-1 per million parameters (seed Fig. 10).",
    "frontier": "Energy/accuracy frontier: the most accurate configuration for each energy, with the budget line; "
                "a board measured in several power states (mode and clock state) gets a panel per state, each with "
                "its own staircase beside the board's (dashed).",
    "fleet_frontier": "The fleet's frontiers: one staircase per board and power mode on the same axes; the "
                      "line style and the legend name the power boundary — compare staircases only within one "
                      "boundary.",
}
BOARD_FREE = ("accuracy_density",)  # a property of the networks alone: one file, whatever the number of boards
DPI = 110
ANNOTATE_MAX = 16  # more points than this and names go to a legend instead of next to the markers
_SVG_LOCK = threading.Lock()  # svg options live in matplotlib's global rcParams


class Written(list):
    """The paths written (a list of Path), plus ``skipped`` {stem: reason} and ``svgs`` {stem: inline SVG text}."""

    def __init__(self) -> None:
        super().__init__()
        self.skipped: dict[str, str] = {}
        self.svgs: dict[str, str] = {}


def safe(board: str) -> str:
    """A board name as a file-name part: ``lab/orin 1`` → ``lab_orin_1``."""
    return re.sub(r"[^A-Za-z0-9._-]+", "_", str(board)).strip("._") or "board"


def stem(board: str | None, figure: str) -> str:
    """A figure's file name without extension: the figure, prefixed with the board when there are several."""
    return figure if board is None else f"{safe(board)}-{figure}"


_PROLOGUE = re.compile(r"^\s*(?:<\?xml[^>]*\?>\s*)?(?:<!DOCTYPE[^>[]*(?:\[[^\]]*\])?\s*>\s*)?", re.IGNORECASE)


def inline_svg(text: str) -> str:
    """SVG file text without its XML declaration and doctype, ready to sit inside HTML."""
    return _PROLOGUE.sub("", text, count=1)


def write(df: pd.DataFrame, report: dict, out_dir: str | Path, formats=("png", "svg"), only=None) -> Written:
    """Draw every figure that has data into ``out_dir`` (``{stem}.{fmt}``), one figure at a time.

    ``only``: figure names (see FIGURES) to draw, default all. Returns the paths written, with ``.skipped``
    (stem → why) and ``.svgs`` (stem → inline SVG, when "svg" is asked).
    """
    out = Path(out_dir)
    out.mkdir(parents=True, exist_ok=True)
    written = Written()
    for name, build, reason in _plan(df, report, only):
        if build is None:
            written.skipped[name] = reason
            continue
        fig = build()
        try:
            for fmt in formats:
                path = out / f"{name}.{fmt}"
                if fmt == "svg":
                    text = _svg(fig, name)
                    path.write_text(text, encoding="utf-8")
                    written.svgs[name] = inline_svg(text)
                else:
                    fig.savefig(path, format=fmt, dpi=DPI)
                written.append(path)
        finally:
            fig.clear()  # frees the artists now; a figure without pyplot has no registry to close it from
    return written


def figures(df: pd.DataFrame, report: dict, only=None) -> tuple[dict, dict[str, str]]:
    """The figures as matplotlib ``Figure`` objects {stem: figure}, and the skipped ones {stem: why}."""
    built, skipped = {}, {}
    for name, build, reason in _plan(df, report, only):
        if build is None:
            skipped[name] = reason
        else:
            built[name] = build()
    return built, skipped


def svgs(df: pd.DataFrame, report: dict, only=None) -> dict[str, str]:
    """The figures as inline SVG text {stem: svg}, without writing files (for ``html.write``)."""
    out = {}
    for name, build, _ in _plan(df, report, only):
        if build is not None:
            fig = build()
            out[name] = inline_svg(_svg(fig, name))
            fig.clear()
    return out


def _svg(fig, name: str) -> str:
    import io

    import matplotlib

    buf = io.StringIO()
    # Text stays text (small files, selectable, searchable); a per-figure salt keeps element ids unique when several
    # SVGs share one HTML page, and stable from run to run.
    with _SVG_LOCK, matplotlib.rc_context({"svg.fonttype": "none", "svg.hashsalt": name}):
        fig.savefig(buf, format="svg", metadata={"Date": None, "Creator": None, "Format": None, "Type": None})
    return buf.getvalue()


# ---------------------------------------------------------------------------------------------------------- plan


class _Board:
    """One board's rows and what every figure of it shares: colours per network, line styles per backend."""

    def __init__(self, name: str, rows: pd.DataFrame, entry: dict, report: dict, colors: dict,
                 words: dict | None = None) -> None:
        self.name, self.rows, self.entry, self.report, self.colors = name, rows, entry, report, colors
        engines = sorted(set(zip(rows["backend"], rows["device"]))) if len(rows) else []
        self.engines = {e: i for i, e in enumerate(engines)}
        # rows' power_mode is their power state (analysis.with_states); how a panel title names each
        self.words = words or {}
        self.several_clocks = len(set(analysis.clock_keys(rows))) > 1 if len(rows) else False

    def state(self, cfg: dict) -> str:
        """The power state of a configuration of the report (its bare mode and clocks), as the rows name it."""
        return analysis.state_label(cfg.get("power_mode"), cfg.get("clocks"), self.several_clocks)

    def label(self, network: str, backend: str, device: str) -> str:
        return network if len(self.engines) < 2 else f"{network} ({backend}/{device})"

    def style(self, backend: str, device: str) -> str:
        return ("-", "--", ":", "-.")[self.engines.get((backend, device), 0) % 4]

    def records(self, key: str, mode: str, precision: str) -> list[dict]:
        return [r for r in (self.report.get("analyses") or {}).get(key) or []
                if r.get("board") == self.name and r.get("power_mode") == mode and r.get("precision") == precision]


def _plan(df: pd.DataFrame, report: dict, only=None):
    """(stem, build or None, reason) for every figure in FIGURES order, per board."""
    known = (*FIGURES, FLEET)
    wanted = set(known if only is None else only)
    if wanted - set(known):
        raise ValueError(f"unknown figures {sorted(wanted - set(known))}: choose from {', '.join(known)}")
    # accuracy as the report ranked it: an assumed top-1 is not drawn unless the report assumed accuracy
    df = analysis.rankable(df, bool((report.get("limits") or {}).get("assume_accuracy")))
    # panels and lines per power state: a board's locked and DVFS results of one mode are two, as in the analyses
    words = _state_words(df)
    df = analysis.with_states(df)
    entries = {e["board"]: e for e in report.get("boards") or []}
    boards = list(entries) or sorted(set(df["board"]))
    boards += sorted(set(df["board"]) - set(boards))
    several = len(boards) > 1
    colors = _colors(sorted(set(df["network"].dropna())))
    for board in boards:
        ctx = _Board(board, df[df["board"] == board], entries.get(board, {}), report, colors, words)
        for figure in FIGURES:
            if figure in BOARD_FREE or figure not in wanted:
                continue
            name = stem(board if several else None, figure)
            if ctx.rows.empty and figure != "frontier":
                yield name, None, "no results from this board"
                continue
            reason = _MISSING[figure](ctx)
            yield (name, None, reason) if reason else (name, functools.partial(_DRAW[figure], ctx), None)
    if FLEET in wanted and report.get("fleet"):
        lines = _fleet_lines(df, report)
        yield (FLEET, functools.partial(_draw_fleet_frontier, lines, report), None) if lines else (
            FLEET, None, "no board has both energy and top-1")
    if "accuracy_density" not in wanted:
        return
    density = _density(df, report)
    if density:
        yield "accuracy_density", functools.partial(_draw_density, density, report), None
    else:
        yield "accuracy_density", None, "no network with both top-1 and a parameter count"


def _state_words(df: pd.DataFrame) -> dict[str, str]:
    """How a panel title names each power state: ``power mode 15W``, ``power mode MAXN (jetson_clocks on)``, or the
    clock state alone off a Jetson (``cpu governor performance``)."""
    if df.empty:
        return {}
    return {state: (state if state != analysis.NO_MODE else "no power mode") if mode == analysis.NO_MODE
            else f"power mode {state}"
            for state, mode in zip(analysis.power_states(df), df["power_mode"])}


def _colors(networks: list[str]) -> dict[str, tuple]:
    """A colour and marker per network, the same on every board."""
    from matplotlib import colormaps

    cmap = colormaps["tab10" if len(networks) <= 10 else "tab20"]
    out = {}
    for i, net in enumerate(networks):
        out[net] = (cmap(i % cmap.N), "osD^v<>ph"[(i // cmap.N) % 9])
    return out


def _has(rows: pd.DataFrame, *cols: str) -> pd.DataFrame:
    """Rows where every column in ``cols`` is a finite number."""
    mask = np.ones(len(rows), dtype=bool)
    for col in cols:
        mask &= np.isfinite(rows[col].to_numpy(dtype="float64"))
    return rows[mask]


def _vs_batch_reason(ctx: _Board, col: str, what: str) -> str | None:
    rows = _has(ctx.rows, col)
    if rows.empty:
        return f"no {what} measured"
    if rows["batch"].nunique() < 2:
        return f"{what} at one batch size only"
    return None


_MISSING = {
    "accuracy_vs_ops": lambda c: None if len(_has(c.rows, "top1", "gops")) else "no network with top-1 and op count",
    "time_vs_batch": lambda c: _vs_batch_reason(c, "ms_per_image", "time per image"),
    "power_vs_batch": lambda c: _vs_batch_reason(c, "power_w", "power"),
    "memory_vs_batch": lambda c: _vs_batch_reason(c, "memory_bytes", "memory"),
    "ops_vs_time": lambda c: None if len(_has(c.rows, "gops", "ms_per_image")) else "no op counts",
    "accuracy_vs_throughput": lambda c: (None if len(_has(c.rows, "top1", "throughput_ips"))
                                         else "no network with top-1"),
    "frontier": lambda c: (None if c.entry.get("frontier") or len(_frontier_cloud(c)[0])
                           else "no configuration with energy and top-1"),
}


# --------------------------------------------------------------------------------------------------- helpers


def _figure(panels: int = 1, width: float = 6.4, height: float = 4.4, share: bool = True):
    """A figure with one axes per panel (2 or 3 a row), on an Agg canvas; extra grid cells are hidden.

    Margins are set by ``_finish`` from what the figure holds, not by a layout engine: constrained layout measures
    every text with an extra draw and made writing the figures 40 % slower.
    """
    from matplotlib.backends.backend_agg import FigureCanvasAgg
    from matplotlib.figure import Figure

    panels = max(panels, 1)
    ncols = 3 if panels >= 5 or panels == 3 else min(panels, 2)
    nrows = math.ceil(panels / ncols)
    if panels > 1:
        width, height = (4.0 if ncols < 3 else 3.7) * ncols + 0.9, 3.0 * nrows + 1.0
    fig = Figure(figsize=(width, height), dpi=DPI)
    FigureCanvasAgg(fig)
    axes = fig.subplots(nrows, ncols, squeeze=False, sharex=share, sharey=share).ravel()
    for ax in axes[panels:]:
        ax.set_visible(False)
    for ax in axes[:panels]:
        ax.grid(True, which="major", alpha=0.3, linewidth=0.6)
        ax.tick_params(labelsize=8)
    fig._dnnprof = {"grid": (nrows, ncols), "legend": None}
    return fig, list(axes[:panels])


def _finish(fig, axes, bottom: float = 0.58, left: float = 0.75) -> None:
    """Margins in inches from the titles, labels and outside legend the figure holds; widens it for the legend."""
    meta = getattr(fig, "_dnnprof", {"grid": (1, 1), "legend": None})
    nrows, ncols = meta["grid"]
    legend, legend_w = meta["legend"] or (None, 0.0)
    w, h = fig.get_size_inches()
    w += legend_w
    fig.set_size_inches(w, h)
    lines = max((ax.get_title().count("\n") + 1 if ax.get_title() else 0) for ax in axes)
    top = 0.42 + 0.17 * lines  # the figure title, then each panel's title lines
    right = 0.2 + legend_w
    gap_w = 0.25 if ncols > 1 else 0.0
    gap_h = 0.5 + 0.17 * lines if nrows > 1 else 0.0  # x tick labels of a row above a hidden cell, and titles
    ax_w = (w - left - right - gap_w * (ncols - 1)) / ncols
    ax_h = (h - top - bottom - gap_h * (nrows - 1)) / nrows
    fig.subplots_adjust(left=left / w, right=1 - right / w, bottom=bottom / h, top=1 - top / h,
                        wspace=gap_w / ax_w, hspace=gap_h / ax_h)
    if legend is not None:
        legend.set_bbox_to_anchor((1 - (legend_w + 0.05) / w, 1 - (top - 0.05) / h), transform=fig.transFigure)


def _titles(fig, axes, ctx: _Board | None, title: str, groups=None, notes=None) -> None:
    """Figure title with the board; per panel its group, and under it the panel's fitted numbers if any."""
    fig.suptitle(f"{ctx.name}: {title}" if ctx else title, fontsize=11)
    words = ctx.words if ctx else {}
    for i, (ax, (mode, precision)) in enumerate(zip(axes, groups or [])):
        where = words.get(mode, f"power mode {mode}")
        head = (precision if mode == analysis.NO_MODE else f"{precision}, {where}") if precision else where
        lines = (notes or {}).get(i) or []
        ax.set_title("\n".join([head, *lines]), fontsize=8.5 if lines else 9)


def _labels(axes, xlabel: str, ylabel: str) -> None:
    ncols = getattr(axes[0].figure, "_dnnprof", {"grid": (1, 1)})["grid"][1]
    for i, ax in enumerate(axes):
        ax.set_xlabel(xlabel, fontsize=9)
        ax.set_ylabel(ylabel, fontsize=9)
        # Shared axes: y labelled on the left column; x wherever no panel sits below (also above a hidden cell,
        # where subplots(sharex=True) would have removed the tick labels).
        inner_y, inner_x = bool(i % ncols), i + ncols < len(axes)
        ax.tick_params(labelleft=not inner_y, labelbottom=not inner_x)
        if inner_y:
            ax.set_ylabel("")
        if inner_x:
            ax.set_xlabel("")


def _log_if_wide(axes, axis: str, values, ratio: float = 30.0, fmt=None) -> bool:
    """Log scale when the positive values span more than ``ratio`` (the data covers decades)."""
    v = np.asarray(values, dtype="float64")
    v = v[np.isfinite(v) & (v > 0)]
    wide = v.size > 1 and v.max() / v.min() > ratio
    if wide:
        _log_axis(axes, axis, v.max() / v.min(), fmt)
    return wide


def _log_axis(axes, axis: str, span: float, fmt=None) -> None:
    """A log axis ticked 1-2-5 (or per decade when wide) with plain numbers, not powers of ten."""
    from matplotlib import ticker

    subs = (1.0, 2.0, 5.0) if span < 300 else (1.0,)
    formatter = ticker.FuncFormatter(fmt or (lambda v, _: f"{v:g}"))
    for ax in axes:
        (ax.set_xscale if axis == "x" else ax.set_yscale)("log")
        target = ax.xaxis if axis == "x" else ax.yaxis
        target.set_major_locator(ticker.LogLocator(base=10, subs=subs))
        target.set_major_formatter(formatter)
        target.set_minor_locator(ticker.NullLocator())  # 1-2-5 majors read well; minor ticks double the draw time


def _batch_axis(axes, batches) -> None:
    """Batch sizes on a log2 axis, ticked at the sizes measured."""
    from matplotlib import ticker

    ticks = sorted({int(b) for b in batches})
    for ax in axes:
        ax.set_xscale("log", base=2)
        ax.xaxis.set_major_locator(ticker.FixedLocator(ticks))
        ax.xaxis.set_major_formatter(ticker.FuncFormatter(lambda v, _: f"{v:g}"))
        ax.xaxis.set_minor_locator(ticker.NullLocator())


def _legend(fig, axes, extra=(), title: str | None = None, from_axes: bool = True) -> None:
    """One legend: inside the only axes when it is short, else outside on the right (seed-style long lists)."""
    handles, labels = {}, []
    for ax in axes if from_axes else ():
        for h, lab in zip(*ax.get_legend_handles_labels()):
            if lab not in handles and not lab.startswith("_"):
                handles[lab] = h
                labels.append(lab)
    for h, lab in extra:
        if lab not in handles:
            handles[lab] = h
            labels.append(lab)
    if not labels:
        return
    kw = {"fontsize": 7.5, "title": title, "title_fontsize": 7.5}
    if len(axes) == 1 and len(labels) <= 7:
        axes[0].legend([handles[x] for x in labels], labels, framealpha=0.85, **kw)
        return
    rows = max(int((fig.get_size_inches()[1] - 0.7) * 72 / 12.5), 5)  # entries that fit the figure's height
    ncols = math.ceil(len(labels) / rows)
    legend = fig.legend([handles[x] for x in labels], labels, loc="upper left", frameon=False, ncols=ncols,
                        borderaxespad=0, **kw)
    # Width from the character count (a measured width needs a draw); room for the marker handles too.
    chars = max(max(len(x) for x in labels), len(title or "") // ncols)
    fig._dnnprof["legend"] = (legend, ncols * (chars * 0.55 * 7.5 + 38) / 72 + 0.1)


def _annotate(ax, xs, ys, names, radius=3.0, avoid=None, fontsize: float = 7.0) -> None:
    """Name each point, trying spots around it until the label covers no other label or marker.

    ``radius``: marker radius in points (one, or one per point); ``avoid``: other markers (x, y, radius) not to
    cover. Call it last: it reads the axes' final limits, scales and position. Label sizes are estimated from the
    character count, which is close enough to keep labels apart without a draw.
    """
    xs, ys = np.asarray(xs, dtype="float64"), np.asarray(ys, dtype="float64")
    if not xs.size:
        return
    ax.autoscale_view()
    w_in, h_in = ax.figure.get_size_inches()
    pos = ax.get_position()
    size = np.array([w_in * 72 * pos.width, h_in * 72 * pos.height])  # the axes in points

    def boxes(x, y, r):  # markers as squares, in points from the axes' corner
        pts = (ax.transScale + ax.transLimits).transform(np.column_stack([x, y])) * size
        r = np.broadcast_to(np.asarray(r, dtype="float64"), len(pts))
        return pts, [(px - q, py - q, px + q, py + q) for (px, py), q in zip(pts, r)]

    pts, taken = boxes(xs, ys, radius)
    if avoid is not None and len(avoid[0]):
        taken += boxes(np.asarray(avoid[0], dtype="float64"), np.asarray(avoid[1], dtype="float64"), avoid[2])[1]
    rad = np.broadcast_to(np.asarray(radius, dtype="float64"), xs.shape) * 0.8
    h = fontsize * 1.25
    names = [str(n) for n in names]
    for i in np.lexsort((pts[:, 1], pts[:, 0])):
        (px, py), name, r = pts[i], names[i], rad[i]
        w = 0.6 * fontsize * len(name)
        best, best_cost = None, math.inf
        for dx, dy in ((r + 2, 1), (r + 2, -h - 1), (-w - r - 2, 1), (-w - r - 2, -h - 1), (-w / 2, r + 2),
                       (-w / 2, -h - r - 2), (r + 2, h + 1), (r + 2, -2 * h - 1)):
            box = (px + dx, py + dy, px + dx + w, py + dy + h)
            # Overlap with what is placed, plus whatever sticks out of the axes (into a neighbour or the legend).
            cost = sum(_overlap(box, b) for b in taken) + w * h - _overlap(box, (0, 0, size[0], size[1]))
            if cost < best_cost:
                best, best_cost = (dx, dy, box), cost
            if cost == 0:
                break
        dx, dy, box = best
        taken.append(box)
        ax.annotate(name, (xs[i], ys[i]), xytext=(dx, dy), textcoords="offset points", fontsize=fontsize,
                    alpha=0.9, ha="left", va="bottom")


def _overlap(a, b) -> float:
    """Area shared by two boxes (x0, y0, x1, y1)."""
    return max(0.0, min(a[2], b[2]) - max(a[0], b[0])) * max(0.0, min(a[3], b[3]) - max(a[1], b[1]))


def _series(rows: pd.DataFrame):
    """(network, backend, device, rows sorted by batch) per line."""
    for (net, backend, device), sub in rows.groupby(["network", "backend", "device"], sort=True):
        yield net, backend, device, sub.sort_values("batch")


def _ends(batches) -> list[int]:
    """The smallest and the largest batch size: the seed draws batch 1 and 16, not every size."""
    ordered = sorted({int(b) for b in batches})
    return ordered if len(ordered) <= 2 else [ordered[0], ordered[-1]]


def _groups(rows: pd.DataFrame) -> list[tuple[str, str]]:
    """The (power mode, precision) panels that have something to draw."""
    return sorted(set(zip(rows["power_mode"], rows["precision"])))


def _end_colors(rows: pd.DataFrame, groups) -> dict[int, str]:
    """A colour per batch size drawn in any panel (each panel draws its own smallest and largest)."""
    drawn = sorted({b for g in groups for b in _ends(rows.loc[(rows["power_mode"] == g[0])
                                                             & (rows["precision"] == g[1]), "batch"])})
    palette = ("#1f77b4", "#d62728", "#2ca02c", "#9467bd", "#ff7f0e", "#8c564b", "#e377c2", "#17becf")
    if len(drawn) == 2:
        return dict(zip(drawn, palette))
    return {b: palette[i % len(palette)] for i, b in enumerate(drawn)}


def _estimated_note(flags) -> str:
    flags = [bool(f) for f in flags]
    if flags and all(flags):
        return " (estimated)"
    if any(flags):
        return " (hollow = estimated)"
    return ""


def _scatter(ax, x, y, color, marker="o", hollow=None, size=28.0, **kw) -> None:
    """Filled markers for measured points, hollow ones where ``hollow`` (estimated power or energy)."""
    x, y = np.asarray(x, dtype="float64"), np.asarray(y, dtype="float64")
    hollow = np.zeros(x.shape, bool) if hollow is None else np.asarray(hollow, dtype=bool)
    size = np.broadcast_to(np.asarray(size, dtype="float64"), x.shape)
    if (~hollow).any():
        ax.scatter(x[~hollow], y[~hollow], s=size[~hollow], color=color, marker=marker, edgecolors="white",
                   linewidths=0.5, zorder=3, **kw)
        kw.pop("label", None)  # one legend entry per series
    if hollow.any():
        ax.scatter(x[hollow], y[hollow], s=size[hollow], facecolors="none", edgecolors=[color], marker=marker,
                   linewidths=1.1, zorder=3, **kw)


def _dot(color, marker="o", hollow=False, size=6.0):
    """A legend handle: one marker."""
    from matplotlib.lines import Line2D

    return Line2D([], [], linestyle="", marker=marker, markersize=size, markeredgecolor=color,
                  markerfacecolor="none" if hollow else color)


def _first(rows: pd.DataFrame, col: str) -> float:
    v = rows[col].to_numpy(dtype="float64")
    v = v[np.isfinite(v)]
    return float(v[0]) if v.size else math.nan


# --------------------------------------------------------------------------------------------------- figures


def _draw_accuracy_vs_ops(ctx: _Board):
    rows = _has(ctx.rows, "top1", "gops")
    nets = [(net, _first(sub, "top1"), _first(sub, "gops"), _first(sub, "params"))
            for net, sub in rows.groupby("network", sort=True)]
    fig, (ax,) = _figure()
    params = np.array([n[3] for n in nets])
    known = np.isfinite(params)
    top = params[known].max() if known.any() else 1.0
    scale = 900.0 / top  # area in pt² per parameter: the largest network gets a 900 pt² blob
    for net, top1, gops, p in nets:
        color, _ = ctx.colors[net]
        if math.isfinite(p):
            ax.scatter([gops], [top1], s=max(p * scale, 6.0), color=color, alpha=0.55, edgecolors=color, label=net,
                       zorder=3)
        else:  # unknown size: a cross, not an invisible (zero-area) marker
            ax.scatter([gops], [top1], s=40, color=color, marker="x", label=net, zorder=3)
    ax.margins(0.12)
    _log_if_wide([ax], "x", [n[2] for n in nets], 20)
    sizes = []
    if known.any():
        for value in sorted({float(f"{v:.2g}") for v in (top / 10, top / 3, top)}):
            sizes.append((ax.scatter([], [], s=value * scale, color="0.6", alpha=0.5), f"{value / 1e6:g} M"))
    if not known.all():
        sizes.append((ax.scatter([], [], s=40, color="0.4", marker="x"), "unknown"))
    _titles(fig, [ax], ctx, "top-1 accuracy vs operations")
    _labels([ax], "operations per image (G-Ops, 1 MAC = 2 ops)", "top-1 accuracy (%)")
    named = len(nets) <= ANNOTATE_MAX
    if named:
        ax.legend([h for h, _ in sizes], [lab for _, lab in sizes], fontsize=7.5, labelspacing=1.5, borderpad=1,
                  loc="lower right", title="parameters", title_fontsize=7.5, framealpha=0.85)
    else:  # legend markers of one size: the blobs themselves would make it taller than the figure
        _legend(fig, [ax], [(_dot(ctx.colors[n[0]][0], "x" if not math.isfinite(n[3]) else "o"), n[0]) for n in nets]
                + sizes, from_axes=False)
    _finish(fig, [ax])
    if named:
        radius = [math.sqrt(max(n[3] * scale, 6.0)) / 2 if math.isfinite(n[3]) else 4.0 for n in nets]
        _annotate(ax, [n[2] for n in nets], [n[1] for n in nets], [n[0] for n in nets], radius)
    return fig


def _draw_lines_vs_batch(ctx: _Board, col: str, scale: float, title: str, ylabel: str, fits: str | None = None,
                         power: bool = False):
    rows = _has(ctx.rows, col)
    groups = _groups(rows)
    fig, axes = _figure(len(groups))
    for ax, (mode, precision) in zip(axes, groups):
        group = rows[(rows["power_mode"] == mode) & (rows["precision"] == precision)]
        for net, backend, device, sub in _series(group):
            color, marker = ctx.colors[net]
            x, y = sub["batch"].to_numpy(), sub[col].to_numpy(dtype="float64") / scale
            hollow = sub["estimated"].to_numpy(dtype=bool) if power else np.zeros(len(sub), bool)
            ax.plot(x, y, linestyle=ctx.style(backend, device), color=color, linewidth=1.3, marker=marker,
                    markersize=4.5, markerfacecolor="white" if hollow.all() else color, markeredgewidth=0.9,
                    label=ctx.label(net, backend, device))
            if hollow.any() and not hollow.all():  # mixed: open markers over the estimated points only
                ax.plot(x[hollow], y[hollow], linestyle="none", marker=marker, markersize=4.5,
                        markerfacecolor="white", markeredgecolor=color, markeredgewidth=0.9)
        if fits:
            _fit_lines_vs_batch(ctx, ax, group, fits, mode, precision, scale)
        if power:
            _power_band(ctx, ax, mode, precision, col)
    _batch_axis(axes, rows["batch"])
    if power:
        axes[0].set_ylim(bottom=0)  # the seed's Fig. 4 reads flatness against zero; after all panels are drawn
    else:
        _log_if_wide(axes, "y", rows[col].to_numpy(dtype="float64") / scale, 20)
    _titles(fig, axes, ctx, title, groups)
    _labels(axes, "batch size (images)", ylabel + (_estimated_note(rows["estimated"]) if power else ""))
    _legend(fig, axes)
    _finish(fig, axes)
    return fig


def _fit_lines_vs_batch(ctx: _Board, ax, group: pd.DataFrame, key: str, mode: str, precision: str,
                        scale: float) -> None:
    for rec in ctx.records(key, mode, precision):
        slope, icpt = rec.get("slope_bytes_per_image"), rec.get("intercept_bytes")
        sub = group[group["network"] == rec.get("network")]
        if slope is None or icpt is None or sub.empty:
            continue
        x = np.geomspace(sub["batch"].min(), sub["batch"].max(), 30)
        color, _ = ctx.colors.get(rec["network"], ("0.4", "o"))
        ax.plot(x, (slope * x + icpt) / scale, linestyle=(0, (2, 2)), color=color, linewidth=0.9, alpha=0.8,
                label="_fit")


def _power_band(ctx: _Board, ax, mode: str, precision: str, col: str) -> None:
    basis = "net" if col == "net_power_w" else "gross"
    for rec in ctx.records("power", mode, precision):
        mean, sd = rec.get("mean_w"), rec.get("stdev_w")
        if mean is None or rec.get("basis", basis) != basis:
            continue
        ax.axhline(mean, color="0.3", linewidth=0.9, linestyle="--", label="_mean")
        if sd is not None:
            ax.axhspan(mean - sd, mean + sd, color="0.5", alpha=0.12, linewidth=0)
        cov = rec.get("cov")
        text = f"mean {mean:.3g} W" + (f" ± {sd:.2g}" if sd is not None else "")
        text += f", CoV {100 * cov:.0f} %" if cov is not None else ""
        ax.text(0.02, 0.03, text, transform=ax.transAxes, fontsize=7.5, color="0.25")


def _draw_time_vs_batch(ctx: _Board):
    return _draw_lines_vs_batch(ctx, "ms_per_image", 1.0, "time per image vs batch size", "time per image (ms)")


def _draw_power_vs_batch(ctx: _Board):
    # Net power (idle subtracted, as the seed's Fig. 4) when every point has it; the analysis uses the same rule.
    measured = _has(ctx.rows, "power_w")
    net = len(measured) and np.isfinite(measured["net_power_w"].to_numpy(dtype="float64")).all()
    col = "net_power_w" if net else "power_w"
    return _draw_lines_vs_batch(ctx, col, 1.0, "power vs batch size",
                                "net power (W)" if net else "average power (W)", power=True)


def _draw_memory_vs_batch(ctx: _Board):
    kinds = set(_has(ctx.rows, "memory_bytes")["memory_kind"].dropna())
    what = {frozenset({"backend"}): "engine activations (older agents)",
            frozenset({"footprint"}): "weights + activations + buffers"}
    label = f"memory, {what.get(frozenset(kinds), 'footprint or engine activations')} (MB)"
    return _draw_lines_vs_batch(ctx, "memory_bytes", 1e6, "memory vs batch size", label, fits="memory_vs_batch")


def _draw_ops_vs_time(ctx: _Board):
    rows = _has(ctx.rows, "gops", "ms_per_image")
    groups = _groups(rows)
    fig, axes = _figure(len(groups))
    colors = _end_colors(rows, groups)
    panel_notes = {}
    for i, (ax, (mode, precision)) in enumerate(zip(axes, groups)):
        group = rows[(rows["power_mode"] == mode) & (rows["precision"] == precision)]
        fits = {r.get("batch"): r for r in ctx.records("ops_vs_time", mode, precision)}
        notes = []
        for batch in _ends(group["batch"]):
            sub = group[group["batch"] == batch]
            color = colors.get(batch, "0.3")
            x, y = sub["ms_per_image"].to_numpy(), sub["gops"].to_numpy()
            _scatter(ax, x, y, color, label=f"batch {batch}")
            rec = fits.get(batch) or {}
            slope, icpt, r2 = rec.get("slope_ms_per_gop"), rec.get("intercept_ms"), rec.get("r2")
            if slope and icpt is not None:
                t = np.linspace(x.min(), x.max(), 40)
                ax.plot(t, (t - icpt) / slope, color=color, linewidth=1, label="_fit")
                notes.append(f"batch {batch}: {slope:.3g} ms/G-Op + {icpt:.2g} ms"
                             + (f", R² {r2:.2f}" if r2 is not None else ""))
            elif rec.get("reason"):
                notes.append(f"batch {batch}: {rec['reason']}")
        panel_notes[i] = notes
    ratio = 100.0
    _log_if_wide(axes, "x", rows["ms_per_image"], ratio)
    _log_if_wide(axes, "y", rows["gops"], ratio)
    _titles(fig, axes, ctx, "operations vs time per image", groups, panel_notes)
    _labels(axes, "time per image (ms)", "operations per image (G-Ops)")
    _legend(fig, axes, [(_line("0.3"), "linear fit")])
    _finish(fig, axes)
    return fig


def _line(color, style="-"):
    from matplotlib.lines import Line2D

    return Line2D([], [], color=color, linestyle=style, linewidth=1)


def _draw_accuracy_vs_throughput(ctx: _Board):
    rows = _has(ctx.rows, "top1", "throughput_ips")
    groups = _groups(rows)
    fig, axes = _figure(len(groups))
    colors = _end_colors(rows, groups)
    power = rows.loc[rows["batch"].isin(list(colors)), "power_w"].to_numpy(dtype="float64")
    pmax = float(np.nanmax(power)) if np.isfinite(power).any() else math.nan
    scale = 250.0 / pmax if math.isfinite(pmax) else 0.0  # area in pt² per watt: the hungriest point gets 250 pt²
    hollow_any = False
    panel_notes = {}
    for i, (ax, (mode, precision)) in enumerate(zip(axes, groups)):
        group = rows[(rows["power_mode"] == mode) & (rows["precision"] == precision)]
        fits = {r.get("batch"): r for r in ctx.records("accuracy_vs_time", mode, precision)}
        notes = []
        for batch in _ends(group["batch"]):
            sub = group[group["batch"] == batch]
            color = colors.get(batch, "0.3")
            x, y = sub["throughput_ips"].to_numpy(), sub["top1"].to_numpy()
            p = sub["power_w"].to_numpy(dtype="float64")
            has_p = np.isfinite(p)
            est = sub["estimated"].to_numpy(dtype=bool) & has_p
            hollow_any |= bool(est.any())
            _scatter(ax, x[has_p], y[has_p], color, "o", est[has_p], size=np.maximum(p[has_p] * scale, 6.0),
                     alpha=0.7)
            if (~has_p).any():  # power not measured: a cross at a fixed size, never a zero-area marker
                ax.scatter(x[~has_p], y[~has_p], s=30, color=color, marker="x", zorder=3, label="_no power")
            rec = fits.get(batch) or {}
            a, b, r2 = rec.get("a"), rec.get("b"), rec.get("r2")
            if a is not None and b is not None:
                ips = np.geomspace(x.min(), x.max(), 60)
                # t = time per image in ms = 1000 / (images/s), so a − b/t is a straight line in images/s
                ax.plot(ips, a - b * ips / 1000.0, color=color, linewidth=1, label="_fit")
                notes.append(f"batch {batch}: {a:.3g} − {b:.3g}/t" + (f", R² {r2:.2f}" if r2 is not None else ""))
            elif rec.get("reason"):
                notes.append(f"batch {batch}: {rec['reason']}")
        panel_notes[i] = notes
        ax.margins(0.1)
    _log_if_wide(axes, "x", rows["throughput_ips"], 20)
    extra = [(_dot(c), f"batch {b}") for b, c in colors.items()]
    extra.append((_line("0.3"), "fit a − b/t (t in ms/image)"))
    if scale:
        for w in sorted({float(f"{v:.2g}") for v in (pmax / 4, pmax / 2, pmax)}):
            extra.append((axes[0].scatter([], [], s=w * scale, color="0.6", alpha=0.5), f"{w:g} W"))
    if hollow_any:
        extra.append((_dot("0.3", hollow=True), "estimated power"))
    if not np.isfinite(power).all():
        extra.append((_dot("0.3", marker="x"), "power not measured"))
    _titles(fig, axes, ctx, "top-1 accuracy vs images per second", groups, panel_notes)
    _labels(axes, "throughput (images/s)", "top-1 accuracy (%)")
    title = "marker area ∝ power" + _estimated_note(rows["estimated"] & rows["power_w"].notna()) if scale else None
    _legend(fig, axes, extra, title=title)
    _finish(fig, axes)
    for ax, (mode, precision) in zip(axes, groups):
        group = rows[(rows["power_mode"] == mode) & (rows["precision"] == precision)]
        first = group[group["batch"] == min(group["batch"])] if len(group) else group
        if 0 < len(first) <= ANNOTATE_MAX:  # names at the smallest batch only: one label per network
            p = first["power_w"].to_numpy(dtype="float64")
            radius = np.where(np.isfinite(p), np.sqrt(np.maximum(np.nan_to_num(p) * scale, 6.0)) / 2, 4.0)
            rest = group[group["batch"] != min(group["batch"])]
            q = rest["power_w"].to_numpy(dtype="float64")
            others = (rest["throughput_ips"], rest["top1"],
                      np.where(np.isfinite(q), np.sqrt(np.maximum(np.nan_to_num(q) * scale, 6.0)) / 2, 4.0))
            _annotate(ax, first["throughput_ips"], first["top1"], first["network"], radius, others)
    return fig


def _density(df: pd.DataFrame, report: dict) -> list[dict]:
    """The accuracy_density records of the report's analyses (computed here when the report was built without)."""
    assume = bool((report.get("limits") or {}).get("assume_accuracy"))
    records = (report.get("analyses") or paper.analyses(df, assume_accuracy=assume))["accuracy_density"]
    return [r for r in records if r.get("density") is not None and math.isfinite(r["density"])]


def _draw_density(records: list[dict], report: dict):
    records = sorted(records, key=lambda r: -r["density"])
    fig, (ax,) = _figure(width=max(6.4, 0.45 * len(records) + 2), height=4.4)
    names = [str(r["network"]) for r in records]
    values = [r["density"] for r in records]
    bars = ax.bar(range(len(records)), values, color="#4c72b0", width=0.7)
    ax.bar_label(bars, labels=[f"{v:.3g}" for v in values], fontsize=7, padding=2)
    tilt = len(records) > 6 or max(map(len, names)) > 12
    ax.set_xticks(range(len(records)), names, rotation=45 if tilt else 0, ha="right" if tilt else "center",
                  rotation_mode="anchor", fontsize=8)
    ax.grid(False, axis="x")
    ax.margins(y=0.12)
    ratios = (report.get("analyses") or {}).get("density_ratios") or {}
    seed = ratios.get("seed") or {}
    lines = [f"{k.replace('/', ' / ')}: " + ("—" if v is None else f"{v:.3g}×") + f" (seed ≈{seed[k]:g}×)"
             for k, v in ratios.items() if k != "seed" and k in seed]
    if lines:
        ax.text(0.98, 0.95, "\n".join(lines), transform=ax.transAxes, ha="right", va="top", fontsize=8,
                bbox={"boxstyle": "round", "facecolor": "white", "edgecolor": "0.8"})
    _titles(fig, [ax], None, "Accuracy density")
    _labels([ax], "network", "top-1 per million parameters (% / M params)")
    _finish(fig, [ax], bottom=0.6 + (0.55 * 8 * max(map(len, names)) * 0.71 / 72 if tilt else 0.0))
    return fig


def _frontier_cloud(ctx: _Board):
    """Every configuration of the board with energy (in the report's basis) and top-1: x, y, estimated."""
    basis = ctx.report.get("basis") or {}
    empty = np.array([]), np.array([]), np.array([], bool)
    if ctx.rows.empty:
        return empty
    try:
        b = analysis.Basis(basis.get("energy", "gross"), basis.get("per", "image"))
    except Exception:  # a basis this version does not know: draw the frontier alone
        return empty
    x = b.energy_j(ctx.rows)
    y = ctx.rows["top1"].to_numpy(dtype="float64")
    ok = np.isfinite(x) & np.isfinite(y) & (x > 0)
    return x[ok], y[ok], ctx.rows["estimated"].to_numpy(dtype=bool)[ok]


def _frontier_states(ctx: _Board) -> list[str]:
    """The power states of a board with a point to draw on the frontier figure, in order (a panel each when two or
    more)."""
    basis = ctx.report.get("basis") or {}
    if ctx.rows.empty:
        return []
    try:
        b = analysis.Basis(basis.get("energy", "gross"), basis.get("per", "image"))
    except Exception:
        return []
    x = b.energy_j(ctx.rows)
    y = ctx.rows["top1"].to_numpy(dtype="float64")
    ok = np.isfinite(x) & np.isfinite(y) & (x > 0)
    return sorted(set(ctx.rows["power_mode"].to_numpy(dtype=object)[ok].tolist()))


def _report_limits(report: dict) -> tuple[analysis.Basis, analysis.Limits] | None:
    """The report's basis and non-energy limits as objects again; None for a basis this version does not know."""
    basis = report.get("basis") or {}
    limits = report.get("limits") or {}
    try:
        b = analysis.Basis(basis.get("energy", "gross"), basis.get("per", "image"))
        lim = analysis.Limits(power_budget_w=limits.get("power_budget_w"),
                              latency_budget_ms=limits.get("latency_budget_ms"),
                              latency_stat=limits.get("latency_stat") or "mean", min_fps=limits.get("min_fps"),
                              assume_accuracy=bool(limits.get("assume_accuracy")))
    except Exception:
        return None
    return b, lim


def _energy_tick(v, _pos) -> str:
    return units.format_energy(v, 2).replace(" ", "\u2009")


def _draw_frontier(ctx: _Board):
    states = _frontier_states(ctx)
    if len(states) > 1 and _report_limits(ctx.report) is not None:
        return _draw_frontier_by_state(ctx, states)
    basis = ctx.report.get("basis") or {}
    budget = (ctx.report.get("limits") or {}).get("energy_budget_j")
    cx, cy, cest = _frontier_cloud(ctx)
    steps = [c for c in ctx.entry.get("frontier") or []
             if c.get("energy_j") is not None and c.get("top1") is not None and c["energy_j"] > 0]
    steps.sort(key=lambda c: c["energy_j"])
    fig, (ax,) = _figure(width=7.2, height=4.6)
    if cx.size:
        _scatter(ax, cx, cy, "0.7", "o", cest, size=12, label="other configurations")
    xs = [*cx.tolist(), *(c["energy_j"] for c in steps), *([budget] if budget else [])]
    fx, fy = [c["energy_j"] for c in steps], [c["top1"] for c in steps]
    est = [bool(c.get("estimated")) for c in steps]
    if steps:
        ax.step(fx + [max(xs) * 1.3], fy + [fy[-1]], where="post", color="#1f77b4", linewidth=1.6, label="frontier")
        _scatter(ax, fx, fy, "#1f77b4", "o", est, size=34)
    if budget:
        ax.axvline(budget, color="#d62728", linestyle="--", linewidth=1.2,
                   label=f"budget {units.format_energy(budget)}")
    best = ((ctx.entry.get("ceiling") or {}).get("best") or {}) if budget else {}
    if best.get("energy_j") and best.get("top1") is not None:
        ax.scatter([best["energy_j"]], [best["top1"]], marker="*", s=200, color="#d62728", zorder=4,
                   label=f"ceiling {best['top1']:.1f} %")
    ax.margins(x=0.06, y=0.1)
    _log_axis([ax], "x", max(xs) / min(xs) if xs else 10.0, _energy_tick)
    flags = est + cest.tolist()
    extra = [(_dot("0.4", hollow=True), "estimated")] if any(flags) and not all(flags) else []
    _titles(fig, [ax], ctx, "energy/accuracy frontier")
    _labels([ax], f"{basis.get('text') or 'energy per image'} (J, log scale){_estimated_note(flags)}",
            "top-1 accuracy (%)")
    _legend(fig, [ax], extra)
    _finish(fig, [ax])
    if 0 < len(steps) <= ANNOTATE_MAX:
        modes = {c.get("power_mode") for c in steps}
        mixed = any(est) and not all(est)
        names = [f"{c['network']} b{c['batch']} {c.get('precision') or ''}"
                 + (f" {c.get('power_mode')}" if len(modes) > 1 else "")
                 + (" (estimated)" if mixed and c.get("estimated") else "")
                 + (" (top-1 assumed)" if c.get("assumed") else "") for c in steps]
        ox, oy, orad = list(cx), list(cy), [2.0] * len(cx)
        if best.get("energy_j") and best.get("top1") is not None:
            ox, oy, orad = ox + [best["energy_j"]], oy + [best["top1"]], orad + [8.0]  # the ceiling's star
        _annotate(ax, fx, fy, names, 3.5, (ox, oy, orad))
    return fig


def _draw_frontier_by_state(ctx: _Board, states: list[str]):
    """The frontier figure of a board measured in several power states: a panel per state (mode and clock state) with
    its configurations and its own staircase, the board's staircase over every state dashed behind it, the budget
    line, and the ceiling's star in the panel of its state."""
    b, lim = _report_limits(ctx.report)
    basis = ctx.report.get("basis") or {}
    budget = (ctx.report.get("limits") or {}).get("energy_budget_j")
    energy = b.energy_j(ctx.rows)
    top1 = ctx.rows["top1"].to_numpy(dtype="float64")
    ok = np.isfinite(energy) & np.isfinite(top1) & (energy > 0)
    where = ctx.rows["power_mode"].to_numpy(dtype=object)
    estimated = ctx.rows["estimated"].to_numpy(dtype=bool)
    board_steps = sorted((c for c in ctx.entry.get("frontier") or []
                          if c.get("energy_j") is not None and c.get("top1") is not None and c["energy_j"] > 0),
                         key=lambda c: c["energy_j"])
    best = ((ctx.entry.get("ceiling") or {}).get("best") or {}) if budget else {}
    fig, axes = _figure(len(states))
    xs = [*energy[ok].tolist(), *(c["energy_j"] for c in board_steps), *([budget] if budget else [])]
    right = max(xs) * 1.3
    flags = estimated[ok].tolist()
    names_per_panel = []
    for ax, state in zip(axes, states):
        mine = ok & (where == state)
        _scatter(ax, energy[mine], top1[mine], "0.7", "o", estimated[mine], size=12, label="other configurations")
        if board_steps:
            bx, by = [c["energy_j"] for c in board_steps], [c["top1"] for c in board_steps]
            ax.step(bx + [right], by + [by[-1]], where="post", color="0.55", linewidth=1.0, linestyle="--",
                    label="the board's frontier (every state)")
        steps = [c for c in analysis.frontier(ctx.rows[where == state], lim, b)
                 if c.get("energy_j") is not None and c["energy_j"] > 0]
        fx, fy = [c["energy_j"] for c in steps], [c["top1"] for c in steps]
        est = [bool(c.get("estimated")) for c in steps]
        flags += est
        if steps:
            ax.step(fx + [right], fy + [fy[-1]], where="post", color="#1f77b4", linewidth=1.6,
                    label="this state's frontier")
            _scatter(ax, fx, fy, "#1f77b4", "o", est, size=30)
        if budget:
            ax.axvline(budget, color="#d62728", linestyle="--", linewidth=1.2,
                       label=f"budget {units.format_energy(budget)}")
        if best.get("energy_j") and best.get("top1") is not None and ctx.state(best) == state:
            ax.scatter([best["energy_j"]], [best["top1"]], marker="*", s=200, color="#d62728", zorder=4,
                       label=f"ceiling {best['top1']:.1f} %")
        ax.margins(x=0.06, y=0.1)
        names_per_panel.append((steps, [f"{c['network']} b{c['batch']} {c.get('precision') or ''}"
                                        + (" (top-1 assumed)" if c.get("assumed") else "") for c in steps]))
    _log_axis(axes, "x", max(xs) / min(xs) if xs else 10.0, _energy_tick)
    extra = [(_dot("0.4", hollow=True), "estimated")] if any(flags) and not all(flags) else []
    _titles(fig, axes, ctx, "energy/accuracy frontier per power state", [(state, None) for state in states])
    _labels(axes, f"{basis.get('text') or 'energy per image'} (J, log scale){_estimated_note(flags)}",
            "top-1 accuracy (%)")
    _legend(fig, axes, extra)
    _finish(fig, axes)
    for ax, (steps, names) in zip(axes, names_per_panel):
        if 0 < len(steps) <= ANNOTATE_MAX // 2:  # small panels: names only where they fit
            _annotate(ax, [c["energy_j"] for c in steps], [c["top1"] for c in steps], names, 3.0, fontsize=6.5)
    return fig


_BOUNDARY_STYLE = {"input_rail": "-", "sum_of_rails": "-.", "cpu_package+gpu_board": (0, (5, 1)),
                   "gpu_board": (0, (3, 1, 1, 1, 1, 1)), "cpu_package": ":", "estimate": "--"}


def _fleet_lines(df: pd.DataFrame, report: dict) -> list[dict]:
    """Per board and power state (mode, and clocks where the board measured several) with energy: its frontier steps
    (within the report's non-energy limits)."""
    known = _report_limits(report)
    if known is None:  # a basis this version does not know: no fleet figure rather than a wrong one
        return []
    b, lim = known
    group = analysis.boundary_group(df, b)
    lines = []
    for (board, mode), rows in df.groupby(["board", "power_mode"], sort=True):
        where = group[df.index.get_indexer(rows.index)]
        # one line per boundary: a board that changed its power source between runs has two, never one mixed
        for boundary in sorted({g for g in where if g is not None}):
            lines.append(_fleet_line(board, mode, boundary, analysis.frontier(rows[where == boundary], lim, b)))
    return [line for line in lines if line["steps"]]


def _fleet_line(board: str, mode: str, boundary: str, steps: list[dict]) -> dict:
    """``steps``: ``analysis.frontier``'s, cheapest first; a zero energy has no place on the log axis."""
    return {"board": board, "mode": mode, "boundary": boundary, "steps": [c for c in steps if c["energy_j"] > 0]}


def _draw_fleet_frontier(lines: list[dict], report: dict):
    basis = report.get("basis") or {}
    budgets = [a["budget_j"] for a in (report.get("fleet") or {}).get("answers", []) if a.get("budget_j")]
    fig, (ax,) = _figure(width=7.6, height=4.8)
    from matplotlib import colormaps

    cmap = colormaps["tab10" if len(lines) <= 10 else "tab20"]
    xs = [c["energy_j"] for line in lines for c in line["steps"]] + budgets
    right = max(xs) * 1.3
    for i, line in enumerate(lines):
        fx, fy = [c["energy_j"] for c in line["steps"]], [c["top1"] for c in line["steps"]]
        mode = "" if line["mode"] == analysis.NO_MODE else f" {line['mode']}"
        label = f"{line['board']}{mode} — {line['boundary']}"
        color = cmap(i % cmap.N)
        ax.step(fx + [right], fy + [fy[-1]], where="post", color=color, linewidth=1.5,
                linestyle=_BOUNDARY_STYLE.get(line["boundary"], (0, (1, 1))), label=label)
        _scatter(ax, fx, fy, color, "o", [line["boundary"] == "estimate"] * len(fx), size=22)
    for budget in budgets:
        ax.axvline(budget, color="#d62728", linestyle="--", linewidth=1.0, alpha=0.7)
    if budgets:
        ax.plot([], [], color="#d62728", linestyle="--", linewidth=1.0,
                label="budget" + ("s" if len(budgets) > 1 else ""))
    ax.margins(x=0.06, y=0.1)
    _log_axis([ax], "x", max(xs) / min(xs) if xs else 10.0, _energy_tick)
    estimated = [line["boundary"] == "estimate" for line in lines]
    _titles(fig, [ax], None, "the fleet's energy/accuracy frontiers")
    _labels([ax], f"{basis.get('text') or 'energy per image'} (J, log scale){_estimated_note(estimated)}",
            "top-1 accuracy (%)")
    _legend(fig, [ax], title="board [mode] — power boundary")
    _finish(fig, [ax])
    return fig


_DRAW = {
    "accuracy_vs_ops": _draw_accuracy_vs_ops,
    "time_vs_batch": _draw_time_vs_batch,
    "power_vs_batch": _draw_power_vs_batch,
    "memory_vs_batch": _draw_memory_vs_batch,
    "ops_vs_time": _draw_ops_vs_time,
    "accuracy_vs_throughput": _draw_accuracy_vs_throughput,
    "frontier": _draw_frontier,
}
