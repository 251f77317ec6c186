"""The report as one self-contained HTML page: basis and constraints, per board the ceiling, frontier and
configurations, the failed points (no measurement, and why), the seed's analyses with their fitted numbers, and the
figures as inline SVG.

No scripts and no external links, so the file can be mailed, archived and opened offline. Every string that comes
from the report is escaped. Missing values show as "—", estimated power and energy carry "~".
"""

from __future__ import annotations

import math
import re
import time
from html import escape  # the standard library's: absolute imports, so this module's own name does not shadow it
from pathlib import Path

from dnnprof.shared import schema, units

from . import plots
from . import report as report_text

EST = "~"
MISSING = "—"
NO_MODE = "n/a"

# Analyses in reading order, with what each tests; keys not listed here are still shown, after these.
ANALYSES = {
    "accuracy_vs_time": ("Accuracy against time per image",
                         "Least-squares fit top-1 = a − b/t, t = time per image in ms, per board, power mode, precision"
                         " and batch (the seed's hyperbolic bound, Fig. 9)."),
    "accuracy_vs_energy": ("Accuracy against energy per image",
                           "The same fit with t = energy per image in joules."),
    "ops_vs_time": ("Operations against time per image",
                    "Linear fit time per image = slope × G-Ops + intercept per batch size (seed Fig. 7: ops predict "
                    "time)."),
    "batch_scaling": ("Batch scaling",
                      "Time per image at the smallest and the largest batch, and the gain between them, beside each "
                      "network's share of fully connected MACs."),
    "batch_scaling_summary": ("Do networks with more FC MACs gain more from batching?",
                              "Correlation of the batching gain with the FC share of MACs (seed v1/v2: fully "
                              "connected layers are inefficient for small batches)."),
    "accuracy_density": ("Accuracy density", "Top-1 per million parameters (seed Fig. 10)."),
    "density_ratios": ("Accuracy-density ratios",
                       "GoogLeNet against AlexNet and VGG-16; the seed's early versions quote about 10× and 20×."),
    "power": ("Power against batch size and architecture",
              "Mean, spread and the share of variance explained by batch size and by network (seed v3/v4: power is "
              "independent of both)."),
    "memory_vs_batch": ("Memory against batch size", "Linear fit memory = slope × batch + intercept per network."),
    "memory_vs_params": ("Memory against parameters",
                         "Linear fit memory = slope × parameters + intercept at the smallest batch (seed Fig. 6: about "
                         "1.3 bytes per parameter over a fixed ~200 MB)."),
}

# Column headers for record fields; a field not listed shows its name with spaces. Units sit in the cells.
HEADERS = {
    "power_mode": "power mode", "r2": "R²", "rmse": "RMSE", "cov": "CoV", "eta2_batch": "η² batch",
    "eta2_network": "η² network", "top1": "top-1 (%)", "params_m": "params (M)", "density": "top-1 % / M params",
    "slope_ms_per_gop": "slope (ms / G-Op)", "intercept_ms": "intercept (ms)", "mean_w": "mean", "stdev_w": "SD",
    "slope_bytes_per_image": "slope / image", "slope_bytes_per_param": "slope / parameter",
    "intercept_bytes": "intercept", "memory_kind": "memory kind", "fc_macs_share": "FC MAC share",
    "pearson_r": "Pearson r", "spearman_rho": "Spearman ρ", "ms_per_image_at_min": "ms / image at min",
    "ms_per_image_at_max": "ms / image at max", "batch_min": "batch min", "batch_max": "batch max",
}

CSS = """
body{font:14px/1.45 system-ui,-apple-system,"Segoe UI",Roboto,Helvetica,Arial,sans-serif;color:#222;
max-width:1200px;margin:1.5em auto 4em;padding:0 1.2em}
h1{font-size:1.6em;margin:.2em 0}h2{font-size:1.3em;border-bottom:1px solid #ddd;padding-bottom:.2em;margin-top:2.2em}
h3{font-size:1.05em;margin:1.6em 0 .3em}p{margin:.4em 0}
table{border-collapse:collapse;font-size:12.5px;margin:.4em 0 1em;font-variant-numeric:tabular-nums}
th,td{padding:3px 9px;border-bottom:1px solid #eee;text-align:left;vertical-align:top}
th{background:#f4f5f7;font-weight:600;white-space:nowrap}td.n{text-align:right;white-space:nowrap}
tbody tr:nth-child(even) td{background:#fafbfc}.scroll{overflow-x:auto}
.ceiling{background:#f1f7f1;border-left:4px solid #4a9a4a;padding:.55em .9em;margin:.8em 0}
.ceiling.none{background:#fdf5ea;border-left-color:#d08a2a}
.muted,figcaption,.note{color:#5f6368}.note{font-size:12.5px}
dl.kv{display:grid;grid-template-columns:max-content 1fr;gap:.15em 1.2em;margin:.5em 0}dl.kv dt{color:#5f6368}
dl.kv dd{margin:0}figure{margin:1.2em 0}figure svg{max-width:100%;height:auto}figcaption{font-size:12.5px}
details{margin:.6em 0}summary{cursor:pointer;font-weight:600}nav a{margin-right:1em}
""".strip()


def write(report: dict, figures_svg: dict[str, str] | None, path: str | Path) -> Path:
    """Write the report as one HTML file at ``path``; ``figures_svg``: {stem: SVG text} as from ``plots``."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(render(report, figures_svg), encoding="utf-8")
    return path


def render(report: dict, figures_svg: dict[str, str] | None = None) -> str:
    """The HTML page as text."""
    figures_svg = dict(figures_svg or {})
    basis = report.get("basis") or {}
    boards = report.get("boards") or []
    out = ['<!DOCTYPE html>\n<html lang="en">\n<head>\n<meta charset="utf-8">\n'
           '<meta name="viewport" content="width=device-width, initial-scale=1">\n'
           '<title>dnnprof report</title>\n<style>\n', CSS, '\n</style>\n</head>\n<body>\n',
           '<header><h1>dnnprof report</h1>',
           f'<p class="muted">Which network, batch size, precision and power mode gives the most accuracy for the '
           f'energy the board can spend. Catalog: {_e(report.get("catalog") or MISSING)}.</p>']
    if len(boards) > 1:
        out.append("<nav>" + "".join(f'<a href="#{_id("board", b.get("board"))}">{_e(b.get("board"))}</a>'
                                     for b in boards)
                   + ('<a href="#failures">failed points</a>' if report.get("failures") else "")
                   + '<a href="#analyses">analyses</a></nav>')
    out.append("</header>\n")
    out.append(_basis_section(basis, report.get("limits") or {}))
    placed: set[str] = set()
    if report.get("fleet"):
        out.append(_fleet_section(report["fleet"], basis, figures_svg, placed))
    for entry in boards:
        out.append(_board_section(entry, basis, report.get("limits") or {}, figures_svg, len(boards), placed))
    out.append(_failures_section(report.get("failures") or [], report.get("failures_superseded") or 0))
    out.append(_analyses_section(report.get("analyses") or {}))
    rest = [k for k in figures_svg if k not in placed]
    if rest:
        out.append('<section id="figures"><h2>Figures</h2>')
        out.extend(_figure(k, figures_svg[k]) for k in _figure_order(rest))
        out.append("</section>\n")
    out.append(f'<footer class="note"><p>{EST} = estimated: power came from a model, not a sensor. {MISSING} = not '
               f'measured (never counted as zero). ! = unstable latency; * = the timing window ended before the '
               f'confidence intervals were tight; ? = p99 from fewer than {schema.tail_batches(99)} batches (the '
               f'slowest of them): low confidence.</p></footer>\n</body>\n</html>\n')
    return "".join(out)


# ------------------------------------------------------------------------------------------------------- text


def _e(value) -> str:
    return escape(str(value), quote=True)


def _missing(v) -> bool:
    return v is None or (isinstance(v, float) and not math.isfinite(v))


def _per(basis: dict) -> str:
    per = basis.get("per", "image")
    return {"image": "per image", "batch": "per batch"}.get(per, f"per {per} images")


def _bytes(v: float) -> str:
    for factor, unit in ((1e9, "GB"), (1e6, "MB"), (1e3, "kB")):
        if abs(v) >= factor:
            return f"{v / factor:.3g} {unit}"
    return f"{v:.3g} B"


def fmt(value, key: str = "") -> str:
    """A value for a table cell: units from the key's suffix (``_j``, ``_w``, ``bytes``), "—" when missing."""
    if _missing(value):
        return MISSING
    if isinstance(value, bool):
        return "yes" if value else "no"
    if isinstance(value, (list, tuple)):
        return ", ".join(fmt(v) for v in value) or MISSING
    if isinstance(value, dict):
        return "; ".join(f"{k}: {fmt(v, k)}" for k, v in value.items())
    if isinstance(value, (int, float)) and not isinstance(value, bool):
        if "bytes" in key:
            return _bytes(value)
        if key.endswith("_j"):
            return units.format_energy(value)
        if key.endswith("_w"):
            return units.format_power(value)
        if isinstance(value, int):
            return f"{value:,}" if abs(value) >= 10000 else str(value)
        return f"{value:.4g}"
    return str(value)


def _est(text: str, estimated) -> str:
    return f"{text}{EST}" if estimated and text != MISSING else text


def describe(cfg: dict, basis: dict, clocks: bool = False) -> str:
    """One configuration in words: ``resnet50, batch 8, fp16, power mode MAXN on tensorrt/gpu: 12.3 mJ per image``;
    ``clocks``: name its clock state too (``power mode MAXN, jetson_clocks on``), for a board measured in several."""
    mode = cfg.get("power_mode")
    text = f"{cfg.get('network')}, batch {cfg.get('batch')}, {cfg.get('precision')}"
    if mode and mode != NO_MODE:
        text += f", power mode {mode}"
    if clocks:
        text += f", {cfg.get('clocks') or 'clocks not recorded'}"
    text += f" on {cfg.get('backend')}/{cfg.get('device')}: "
    text += _est(units.format_energy(cfg.get("energy_j", cfg.get("energy_per_inference_j"))), cfg.get("estimated"))
    text += f" {_per(basis)}"
    if not _missing(cfg.get("throughput_ips")):
        text += f", {cfg['throughput_ips']:.0f} images/s"
    return text


def ceiling_text(ceiling: dict | None, basis: dict, constraints: dict | None = None, clocks: bool = False) -> str:
    """The ceiling as a sentence (plain text, not escaped); ``clocks``: name the clock states (``describe``)."""
    if ceiling is None:
        return "No ceiling: nothing with both energy and top-1 was measured on this board."
    limited = any(not _missing((constraints or {}).get(k))
                  for k in ("energy_budget_j", "power_budget_w", "latency_budget_ms", "min_fps"))
    stated = (constraints or {}).get("text")
    within = (f"within {stated}" if stated else "within the constraints") if limited else \
        "over everything measured (no constraint given)"
    considered = ceiling.get("considered")
    count = f" ({ceiling.get('feasible')} of {considered} configurations fit)" if considered is not None else ""
    best = ceiling.get("best")
    top1 = ceiling.get("top1")
    if best is not None and top1 is not None:
        name = "Energy-bounded accuracy ceiling" if not _missing((constraints or {}).get("energy_budget_j")) \
            else "Ceiling"
        tag = report_text.source_tag(best)
        text = (f"{name} {within}: {top1:.2f} % top-1{f' ({tag})' if tag else ''}{count}, reached by "
                f"{describe(best, basis, clocks)}.")
        if ceiling.get("estimated"):
            text += f" Its energy is estimated ({EST}), not measured."
        if ceiling.get("assumed"):
            text += (" It rests on assumed accuracy (--assume-accuracy): the fp32 reference, not measured at "
                     f"{best.get('precision')}.")
        nxt = ceiling.get("next")
        if nxt is not None:
            extra = ceiling.get("next_extra_j")
            more = f", needs {units.format_energy(extra)} more than the budget" if not _missing(extra) else ""
            text += f" The next step up, {fmt(nxt.get('top1'))} %{more}: {describe(nxt, basis, clocks)}."
        elif limited and (constraints or {}).get("energy_budget_j") is not None:
            text += " Nothing more accurate was measured."
        return text
    text = f"No configuration fits {'within ' + stated if stated else 'the constraints'}{count}."
    cheapest = ceiling.get("cheapest")
    if cheapest is not None:
        text += f" The cheapest is {describe(cheapest, basis, clocks)}"
        if ceiling.get("cheapest_meets_other_limits") is False:
            text += ", and it breaks a power, latency or frame-rate limit too"
        text += "."
    return text


# --------------------------------------------------------------------------------------------------- sections


def _id(prefix: str, name) -> str:
    return f"{prefix}-{re.sub(r'[^A-Za-z0-9_-]+', '-', str(name)).strip('-') or 'x'}"


def _table(headers: list[str], rows: list[list[str]], numeric: set[int] = frozenset()) -> str:
    """A table from already escaped cells; columns in ``numeric`` align right."""
    head = "".join(f"<th>{h}</th>" for h in headers)
    body = "".join("<tr>" + "".join(f'<td class="n">{c}</td>' if i in numeric else f"<td>{c}</td>"
                                    for i, c in enumerate(row)) + "</tr>\n" for row in rows)
    return f'<div class="scroll"><table><thead><tr>{head}</tr></thead><tbody>\n{body}</tbody></table></div>\n'


def _basis_section(basis: dict, constraints: dict) -> str:
    text = basis.get("text") or f"{basis.get('energy', 'gross')} energy {_per(basis)}"
    budget = constraints.get("energy_budget_j")
    latency = constraints.get("latency_budget_ms")
    items = [
        ("Energy basis", f"{text} ({'idle power subtracted' if basis.get('energy') == 'net' else 'idle included'}); "
                         "one inference is one image"),
        ("Energy budget", "none" if _missing(budget) else f"{units.format_energy(budget)} {_per(basis)}"),
        ("Power budget", "none" if _missing(constraints.get("power_budget_w"))
         else f"{units.format_power(constraints['power_budget_w'])} average"),
        ("Latency budget", "none" if _missing(latency)
         else f"{latency:g} ms per batch ({constraints.get('latency_stat') or 'mean'})"),
        ("Minimum frame rate", "none" if _missing(constraints.get("min_fps"))
         else f"{constraints['min_fps']:g} images/s"),
        ("Accuracy", "top-1 (%) measured on the engine that was timed where the agent measured it, else the fp32 "
                     "reference of the model's manifest or of the catalog; fp16 and int8 with only the reference "
                     "are assumed and " + ("ranked all the same (--assume-accuracy)"
                                           if constraints.get("assume_accuracy")
                                           else "not ranked (--assume-accuracy ranks them)")),
    ]
    dl = "".join(f"<dt>{_e(k)}</dt><dd>{_e(v)}</dd>" for k, v in items)
    return f'<section id="basis"><h2>Basis and constraints</h2><dl class="kv">{dl}</dl></section>\n'


def _fleet_section(fleet: dict, basis: dict, figures: dict[str, str], placed: set[str]) -> str:
    """The fleet's answer: per budget and comparable boundary, the best configuration and each board's own best."""
    out = ['<section id="fleet"><h2>The fleet\'s answer</h2>',
           f'<p class="muted">{_e(fleet.get("rule", ""))}.</p>']
    for answer in fleet.get("answers", []):
        budget = answer.get("budget_j")
        head = f"Within {units.format_energy(budget)} {_per(basis)}" if budget is not None else "With no energy limit"
        out.append(f"<h3>{_e(head)}</h3>")
        for g in answer.get("groups", []):
            tag = " (the fleet's answer: the widest boundary measured)" if g.get("boundary") == answer.get(
                "headline") else ""
            est = f" — estimated ({EST}): never ranked above a measurement" if g.get("estimated") else ""
            out.append(f"<h4>{_e(g.get('boundary'))}: {_e(g.get('text'))}{_e(tag)}{_e(est)}</h4>")
            constraints = {"energy_budget_j": budget, "text": None if budget is None else
                           f"{units.format_energy(budget)} {_per(basis)}"}
            best = g.get("best")
            out.append(f"<p>{_e(ceiling_text(g, basis, constraints))}"
                       + (f" Board: {_e(report_text.where(best))}." if best else "")
                       + (" More accurate than the fleet's answer, but measured at a narrower boundary, so not ranked "
                          "above it." if g.get("beats_headline") else "") + "</p>")
            rows = [[_e(b["board"]), fmt(b.get("top1")),
                     _e(describe(b["best"], basis)) if b.get("best") else "nothing fits",
                     _e(report_text.where(b["best"])) if b.get("best") else MISSING] for b in g.get("per_board", [])]
            out.append(_table(["board", "top-1 %", "its best configuration", "where"], rows, numeric={1}))
    left = fleet.get("left_out") or []
    if left:
        out.append("<p>Left out: " + "; ".join(f"{_e(x['board'])} ({x['configurations']} configurations): "
                                               f"{_e(x['reason'])}" for x in left) + ".</p>")
    if plots.FLEET in figures:
        out.append(_figure(plots.FLEET, figures[plots.FLEET], plots.FLEET))
        placed.add(plots.FLEET)
    out.append("</section>\n")
    return "".join(out)


def _board_section(entry: dict, basis: dict, constraints: dict, figures: dict[str, str], n_boards: int,
                   placed: set[str]) -> str:
    name = entry.get("board")
    out = [f'<section id="{_id("board", name)}"><h2>{_e(name)}</h2>']
    meta = [f"{label}: {entry[k]}" for k, label in (("state", "state"), ("hostname", "host"), ("machine", "machine"))
            if entry.get(k)]
    results = entry.get("results") or []
    meta.append(f"configurations: {entry.get('configurations', len(results))}")
    out.append(f'<p class="muted">{_e(" · ".join(meta))}</p>')
    ceiling = entry.get("ceiling")
    clocks = report_text.several_clocks(entry)
    if results or ceiling is not None:
        cls = "ceiling" if ceiling and ceiling.get("best") is not None else "ceiling none"
        if not entry.get("with_energy", 1) and (constraints or {}).get("energy_budget_j") is not None:
            text = (f"No energy was measured on this board ({basis.get('text', 'energy')}: no power source"
                    f"{' or no idle baseline' if basis.get('energy') == 'net' else ''}), so there is no "
                    "energy-bounded ceiling.")
        else:
            text = ceiling_text(ceiling, basis, constraints, clocks)
        out.append(f'<p class="{cls}">{_e(text)}</p>')
        for line in report_text.exclusions(ceiling) if ceiling else []:
            out.append(f"<p>{_e(line)}</p>")
    else:
        out.append('<p class="ceiling none">No results from this board yet.</p>')
    for key, what in (("by_power_mode", "power mode"), ("by_precision", "precision")):
        split = entry.get(key) or {}
        if split:
            rows = []
            for group, c in split.items():
                best = (c or {}).get("best")
                top1 = (c or {}).get("top1")
                cheapest = (c or {}).get("cheapest")
                what_reaches = (describe(best, basis, clocks) if best else
                                f"nothing fits; the cheapest is {describe(cheapest, basis, clocks)}" if cheapest
                                else MISSING)
                rows.append([_e(group), _e(fmt(top1)), _e(what_reaches)])
            out.append(f"<h3>Ceiling per {_e(what)}</h3>" + _table([_e(what), "top-1 (%)", "configuration"], rows,
                                                                    {1}))
    if entry.get("power_modes"):
        out.append(_power_modes_section(entry["power_modes"]))
    out.append(_frontier_table(entry.get("frontier") or [], basis, clocks))
    board_figs = []
    for figure in plots.FIGURES:
        if figure in plots.BOARD_FREE:  # the same for every board: shown once, after the analyses
            continue
        for key in (plots.stem(name, figure), figure if n_boards == 1 else None):
            if key and key in figures and key not in placed:
                board_figs.append(_figure(key, figures[key], figure))
                placed.add(key)
                break
    if board_figs:
        out.append("<h3>Figures</h3>")
        out.extend(board_figs)
    if results:
        out.append(_results_table(results, basis, clocks))
    out.append("</section>\n")
    return "".join(out)


def _failures_section(failures: list[dict], superseded: int) -> str:
    """The points that produced no measurement, and why (empty when there are none)."""
    if not failures and not superseded:
        return ""
    out = ['<section id="failures"><h2>Failed points</h2>',
           f'<p class="note">{len(failures)} configuration{"s" if len(failures) != 1 else ""} produced no '
           'measurement: never ranked, fitted or exported. The newest failure of each configuration; "not run" '
           'means never tried because of the earlier failure it names.</p>']
    if failures:
        headers = ["board", "network", "batch", "precision", "backend/device", "power mode", "error", "stage",
                   "why", "run", "when"]
        rows = [[_e(f.get("board")), _e(f.get("network")), _e(fmt(f.get("batch"))), _e(f.get("precision")),
                 _e(f"{f.get('backend')}/{f.get('device')}"), _e(fmt(f.get("power_mode"))), _e(f.get("error")),
                 _e(str(f.get("stage")).replace("_", " ")), _e(f.get("reason") or f.get("message")),
                 _e(f.get("run_id")), _e(_when(f.get("ts")))] for f in failures]
        table = _table(headers, rows, {2})
        state = " open" if len(failures) <= 40 else ""
        out.append(f"<details{state}><summary>Failed points ({len(failures)})</summary>{table}</details>")
    if superseded:
        out.append(f"<p>{superseded} configuration{'s' if superseded != 1 else ''} that failed earlier "
                   f"{'were' if superseded != 1 else 'was'} measured since: the newer result replaces the failure, "
                   "which is not listed.</p>")
    out.append("</section>\n")
    return "".join(out)


def _when(ts) -> str:
    """Unix seconds as UTC date and time (the page is read anywhere)."""
    if _missing(ts):
        return MISSING
    try:
        return time.strftime("%Y-%m-%d %H:%M:%S UTC", time.gmtime(ts))
    except (OverflowError, OSError, ValueError):  # a board's clock far off: the number as it came
        return fmt(ts)


def _power_modes_section(pm: dict) -> str:
    """The energy-optimal power mode of each network and a row per power state (mode and clocks) at its best batch:
    for a board measured in several power states (``analysis.power_modes_of``)."""
    within = f", within {pm['limits']}" if pm.get("limits") else ""
    out = ["<h3>Energy-optimal power mode</h3>",
           f'<p class="note">Per network, precision and backend/device: the power state (nvpmodel mode and clock '
           f'state) with the least {_e(pm.get("basis"))}{_e(within)}, each state at its best batch (its least energy '
           f'per image). Saving = less energy per image than the network\'s dearest power state — MAXN is not on '
           f'every board and not always the dearest, the dearest state always is. ★ = energy-optimal'
           + ("; ✗ = no batch of the state meets the limits (its cheapest shown)" if within else "") + ".</p>"]
    groups = pm.get("groups") or []
    if groups:
        engines, routed = report_text.mode_layout(pm)
        headers = ["network", "precision", *(["backend/device"] if engines else []), "power state", "batch",
                   "energy / image", f"latency ({_e(pm.get('latency_stat') or 'mean')}, ms / batch)", "images/s",
                   "power", "saving", ""]
        rows = []
        for g in groups:
            routes = (g["network"], g["precision"], g["backend"], g["device"]) in routed
            for k, r in enumerate(g.get("rows") or []):
                mark = "★ least energy" if r.get("optimal") else ("" if r.get("within_limits") else
                                                                  "✗ outside the limits")
                est = r.get("estimated")
                rows.append([_e(g["network"]) if k == 0 else "",
                             _e(g["precision"] + (f" ({g['precision_method']})" if routes else "")) if k == 0 else "",
                             *([_e(f"{g['backend']}/{g['device']}") if k == 0 else ""] if engines else []),
                             _e(r.get("state")), _e(fmt(r.get("batch"))),
                             _e(_est(units.format_energy(r.get("energy_per_image_j")), est)),
                             _e(_num(r.get("latency_ms"), ".3g")), _e(_num(r.get("throughput_ips"), ".1f")),
                             _e(_est(units.format_power(r.get("power_w")), est)),
                             _e(report_text.mode_saving(r, g.get("dearest"))), _e(mark)])
        first = 3 if engines else 2
        out.append(_table(headers, rows, {first + 1, first + 2, first + 3, first + 4, first + 5, first + 6}))
        for g in groups:
            for line in report_text.mode_notes(g, pm, engines, (g["network"], g["precision"], g["backend"],
                                                                g["device"]) in routed):
                out.append(f"<p>{_e(line)}</p>")
    else:
        out.append("<p>Every network was measured in one power state only: nothing to compare.</p>")
    single = pm.get("single_state") or []
    if single:
        out.append('<p class="note">Measured in one power state only (nothing to compare): '
                   + _e(", ".join(f"{s['network']} {s['precision']} in {s['state']}" for s in single)) + ".</p>")
    return "".join(out)


def _frontier_table(frontier: list[dict], basis: dict, clocks: bool = False) -> str:
    if not frontier:
        return "<h3>Frontier</h3><p class=\"note\">No configuration with both energy and top-1 within the limits.</p>"
    energy = f"{basis.get('energy', 'gross')} energy {_per(basis)}"
    headers = ["#", _e(energy), "top-1 (%)", "top-1 from", "network", "batch", "precision", "power mode",
               "backend/device", "images/s", "latency (ms / batch)", "power"]
    rows = []
    for i, c in enumerate(frontier, 1):
        est = c.get("estimated")
        rows.append([str(i), _e(_est(units.format_energy(c.get("energy_j")), est)), _e(fmt(c.get("top1"))),
                     _e(report_text.source_tag(c) or MISSING),
                     _e(c.get("network")), _e(fmt(c.get("batch"))), _e(fmt(c.get("precision"))),
                     _e(_mode(c, clocks)), _e(f"{c.get('backend')}/{c.get('device')}"),
                     _e(_num(c.get("throughput_ips"), ".1f")), _e(_num(c.get("latency_ms"), ".3g")),
                     _e(_est(units.format_power(c.get("power_w")), est))])
    return ("<h3>Frontier</h3><p class=\"note\">Cheapest first; each step is more accurate than every cheaper "
            "configuration.</p>" + _table(headers, rows, {0, 1, 2, 5, 9, 10, 11}))


def _num(v, spec: str) -> str:
    return MISSING if _missing(v) else format(v, spec)


def _mode(r: dict, clocks: bool) -> str:
    """A power mode cell; with ``clocks`` (a board measured in several clock states) its clock state too."""
    mode = fmt(r.get("power_mode"))
    return f"{mode} ({r.get('clocks') or 'clocks not recorded'})" if clocks else mode


def _results_table(results: list[dict], basis: dict, clocks: bool = False) -> str:
    net = basis.get("energy") == "net"
    col = "energy_per_inference_net_j" if net else "energy_per_inference_j"
    headers = ["network", "backend/device", "precision", "batch", "power mode", "ms / batch", "p99 ms", "ms / image",
               "images/s", "power", "idle", f"{'net' if net else 'gross'} energy / image", "top-1 (%)", "top-1 from",
               "G-Ops", "params (M)", "memory"]
    rows = []
    for r in results:
        est = r.get("estimated")
        flags = ("!" if r.get("unstable") else "") + ("" if r.get("converged", True) else "*")
        params = r.get("params")
        rows.append([_e(r.get("network")), _e(f"{r.get('backend')}/{r.get('device')}"), _e(fmt(r.get("precision"))),
                     _e(fmt(r.get("batch"))), _e(_mode(r, clocks)),
                     _e(_num(r.get("latency_ms_mean"), ".3g") + flags),
                     _e(_num(r.get("latency_ms_p99"), ".3g") + ("?" if report_text.low(r) else "")),
                     _e(_num(r.get("ms_per_image"), ".3g")), _e(_num(r.get("throughput_ips"), ".1f")),
                     _e(_est(units.format_power(r.get("power_w")), est)),
                     _e(_est(units.format_power(r.get("idle_power_w")), est)),
                     _e(_est(units.format_energy(r.get(col)), est)), _e(_num(r.get("top1"), ".2f")),
                     _e(_source_words(r)), _e(_num(r.get("gops"), ".3g")),
                     _e(MISSING if _missing(params) else f"{params / 1e6:.3g}"),
                     _e(MISSING if _missing(r.get("memory_bytes")) else _bytes(r["memory_bytes"]))])
    table = _table(headers, rows, set(range(3, 4)) | set(range(5, 13)) | set(range(14, 17)))
    state = " open" if len(results) <= 40 else ""
    return f"<details{state}><summary>Configurations ({len(results)})</summary>{table}</details>"


def _source_words(r: dict) -> str:
    """A row's accuracy source for its cell: ``measured (500 images, reused)``, ``catalog``, ``assumed``, …"""
    label = report_text.source_label(r)
    if label == "measured":
        notes = [] if _missing(r.get("accuracy_images")) else [f"{r['accuracy_images']:.0f} images"]
        if not _missing(r.get("top1_ci_low")) and not _missing(r.get("top1_ci_high")):
            notes.append(f"95% {r['top1_ci_low']:.1f}–{r['top1_ci_high']:.1f}")
        if r.get("accuracy_reused"):
            notes.append("reused")
        return f"measured ({', '.join(notes)})" if notes else label
    return label


def _analyses_section(analyses: dict) -> str:
    if not analyses:
        return ""
    out = ['<section id="analyses"><h2>The seed\'s analyses</h2>'
           '<p class="note">Fits need at least 3 points; where there were fewer, the fitted numbers show '
           f'{MISSING} and the reason says why.</p>']
    keys = [k for k in ANALYSES if k in analyses] + [k for k in analyses if k not in ANALYSES]
    for key in keys:
        title, about = ANALYSES.get(key, (key.replace("_", " ").capitalize(), ""))
        value = analyses[key]
        out.append(f'<h3 id="{_id("analysis", key)}">{_e(title)}</h3>')
        if about:
            out.append(f'<p class="note">{_e(about)}</p>')
        out.append(_analysis_body(key, value))
    out.append("</section>\n")
    return "".join(out)


def _analysis_body(key: str, value) -> str:
    if key == "density_ratios" and isinstance(value, dict):
        seed = value.get("seed") or {}
        rows = [[_e(k), _e(MISSING if _missing(v) else f"{v:.3g}×"),
                 _e(MISSING if _missing(seed.get(k)) else f"≈{seed[k]:g}×")]
                for k, v in value.items() if k != "seed"]
        return _table(["ratio", "measured", "seed"], rows, {1, 2})
    if isinstance(value, list):
        records = [r for r in value if isinstance(r, dict)]
        if not records:
            return f'<p class="note">{"Nothing to fit." if not value else _e(fmt(value))}</p>'
        columns: list[str] = []
        for r in records:
            # A "finding" is a sentence: it reads better under the table than in a wide cell.
            columns.extend(k for k in r if k not in columns and k != "finding")
        rows = [[_e(fmt(r.get(c), c)) for c in columns] for r in records]
        numeric = {i for i, c in enumerate(columns)
                   if any(isinstance(r.get(c), (int, float)) and not isinstance(r.get(c), bool) for r in records)}
        table = _table([_e(HEADERS.get(c, c.replace("_", " "))) for c in columns], rows, numeric)
        for r in records:
            if isinstance(r.get("finding"), str):
                where = ", ".join(str(r[k]) for k in ("board", "power_mode", "precision")
                                  if r.get(k) is not None and r.get(k) != NO_MODE)
                table += f"<p>{_e(f'{where}: ' if where else '')}{_e(r['finding'])}</p>"
        return table
    if isinstance(value, dict):
        return _table(["key", "value"], [[_e(k), _e(fmt(v, str(k)))] for k, v in value.items()])
    return f"<p>{_e(fmt(value))}</p>"


# ------------------------------------------------------------------------------------------------------ figures

_XMLNS = re.compile(r'\s+xmlns(?::xlink)?="http://www\.w3\.org/(?:2000/svg|1999/xlink)"')
# Anything that could run code or fetch something: such an SVG is left out rather than inlined.
_UNSAFE = re.compile(r"<\s*(?:script|foreignObject|iframe|object|embed|image|a)\b|<[^>]*\son[a-z]+\s*=|javascript:"
                     r"|@import|url\(\s*['\"]?(?!#)|href\s*=\s*['\"](?!#)", re.IGNORECASE)


def _svg(text: str) -> str | None:
    """SVG text made fit to inline (no prologue, no namespace URLs the HTML parser does not need), or None."""
    body = _XMLNS.sub("", plots.inline_svg(str(text))).strip()
    if not body.lower().startswith("<svg") or _UNSAFE.search(body):
        return None
    return body


def _figure_order(keys: list[str]) -> list[str]:
    rank = {f: i for i, f in enumerate(plots.FIGURES)}
    return sorted(keys, key=lambda k: (rank.get(next((f for f in plots.FIGURES if k.endswith(f)), ""), 99), k))


def _figure(key: str, svg: str, figure: str | None = None) -> str:
    figure = figure or next((f for f in plots.FIGURES if key.endswith(f)), None)
    caption = plots.CAPTIONS.get(figure, "") if figure else ""
    body = _svg(svg)
    if body is None:
        return f'<p class="note">Figure {_e(key)} left out: it is not a plain SVG.</p>'
    return f'<figure id="{_id("figure", key)}">{body}<figcaption>{_e(caption or key)}</figcaption></figure>\n'
