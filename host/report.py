"""``dnnhost report``: per board the configurations, the energy/accuracy frontier and the ceiling within the limits,
then the seed paper's analyses with their fitted numbers — as rich text or as plain data (``--json``).

Text stays readable for a fleet: a board's full table is printed when it is short (or with ``--all``); the frontier,
the ceiling and the analyses always are. Estimated values carry ``~``; what was not measured shows ``—``, never 0.

Failed points (``schema.Failure``: a point that produced no measurement) are listed apart, with why (``failures``
in the data); they never enter the results frame, so nothing ranks, fits or exports them. Only the newest failure
of each configuration is shown, and none that a later result of the same configuration superseded (those are
counted in ``failures_superseded``): ``Store.failed_points``.
"""

from __future__ import annotations

import dataclasses

import numpy as np
import pandas as pd
from rich import box
from rich.console import Console
from rich.markup import escape
from rich.table import Table
from rich.text import Text

from dnnprof.shared import catalog, schema, units

from . import analysis, paper
from .store import Store

EST = "~"
MAX_ROWS = 60  # a board with more configurations shows its frontier, not every row (unless --all)


def load(store: Store, board: str | None = None, networks: catalog.Catalog | None = None) -> pd.DataFrame:
    """The newest result of each configuration, as a frame (see analysis.COLUMNS)."""
    return analysis.latest(analysis.frame(store.latest_results(board), networks or catalog.Catalog()))


def failure_reason(failure: schema.Failure) -> str:
    """Why a point has no measurement, in one line: its message, or for a point never tried ``not run: <cause>``."""
    if failure.stage == "not_run":
        return f"not run: {failure.cause or failure.message}"
    return failure.message


def failure_record(failure: schema.Failure) -> dict:
    """A failed point as plain data (an entry of ``failures``); ``reason`` is what the report prints."""
    return {"board": failure.board, "network": failure.network, "batch": failure.batch,
            "precision": failure.precision, "backend": failure.backend, "device": failure.device,
            "power_mode": failure.power_mode or schema.NO_POWER_MODE, "clocks": failure.clocks,
            "error": failure.error, "stage": failure.stage, "message": failure.message, "cause": failure.cause,
            "reason": failure_reason(failure), "elapsed_s": failure.elapsed_s, "run_id": failure.run_id,
            "ts": failure.ts, "id": failure.id, "model_sha256": failure.model_sha256}


def build(store: Store, limits: analysis.Limits | None = None, basis: analysis.Basis | None = None,
          board: str | None = None, networks: catalog.Catalog | None = None, df: pd.DataFrame | None = None,
          analyses: bool = True, rows_up_to: int | None = None, fleet_budgets: list[float | None] | None = None
          ) -> dict:
    """The report as plain data (what ``--json`` prints). ``df`` saves reloading a frame the caller has.

    ``rows_up_to``: leave out (``results`` None) the rows of boards with more configurations than this — text
    output does not print them, and a fleet's ten thousand rows are most of the time. ``fleet_budgets``: add the
    fleet's answer (``analysis.fleet``) at each of these energy budgets (None: no energy limit).

    ``failures``: the failed points (of ``board``), by board, network, precision and batch; ``failures_superseded``:
    how many configurations failed and were measured since (not listed).
    """
    limits, basis = limits or analysis.Limits(), basis or analysis.Basis()
    networks = networks or catalog.Catalog()
    if df is None:
        df = load(store, board, networks)
    boards = store.boards()
    failed = store.failed_points(board)
    names = sorted(set(df["board"]) | ({board} if board and board in boards else set()))
    ranked = analysis.per_board(df, limits, basis)
    energy = basis.energy_j(df)
    out = {
        "basis": {"energy": basis.energy, "per": basis.per, "text": basis.text},
        "limits": {"energy_budget_j": limits.energy_budget_j, "power_budget_w": limits.power_budget_w,
                   "latency_budget_ms": limits.latency_budget_ms, "latency_stat": limits.latency_stat,
                   "min_fps": limits.min_fps, "text": limits.text(basis),
                   # rank configurations on assumed accuracy (not fp32, not measured: the fp32 reference)
                   "assume_accuracy": limits.assume_accuracy,
                   "others_text": dataclasses.replace(limits, energy_budget_j=None).text(basis),
                   # every budget of `--fleet` (the per-board sections use the first, energy_budget_j)
                   "energy_budgets_j": [b for b in fleet_budgets or [] if b is not None]
                   or ([] if limits.energy_budget_j is None else [limits.energy_budget_j])},
        "catalog": networks.origin,
        "boards": [],
        # power states, not bare modes: a board's locked and DVFS results of one mode are two groups of each fit
        "analyses": paper.analyses(analysis.with_states(df), energy=basis.energy,
                                   assume_accuracy=limits.assume_accuracy)
        if analyses and not df.empty else None,
        "board_filter": board,
        "known_boards": store.board_names() if board and board not in boards and df.empty and not failed.current
        else [],
        "fleet": analysis.fleet(df, fleet_budgets, limits, basis) if fleet_budgets is not None else None,
        "failures": [failure_record(f) for f in sorted(failed.current, key=lambda f: (
            f.board, f.network, f.precision, f.batch, f.backend, f.device, f.power_mode or "", f.ts))],
        "failures_superseded": failed.superseded,
    }
    by_board = df.groupby("board", sort=False).indices
    wanted = [rows for rows in by_board.values() if rows_up_to is None or len(rows) <= rows_up_to]
    picked = np.concatenate(wanted) if wanted else np.array([], dtype=int)
    table = df.iloc[picked].assign(energy_j=energy[picked])  # in the basis' unit, beside per-image gross and net
    # One conversion for all rows: NaN → None and numpy scalars → Python ones, so the records are JSON as they are.
    records = dict(zip(picked.tolist(), table.astype(object).where(table.notna(), None).to_dict("records")))
    has_energy = ~np.isnan(energy)
    for name in names:
        rows = by_board.get(name, np.array([], dtype=int))
        meta = boards.get(name, {})
        info = meta.get("info")
        entry = {
            "board": name,
            "state": meta.get("state"),
            "hostname": info.hostname if info else None,
            "cpu_model": info.cpu_model if info else None,
            "machine": schema.machine(info),
            "configurations": len(rows),
            "with_energy": int(has_energy[rows].sum()),
            "results": [records[i] for i in rows] if rows_up_to is None or len(rows) <= rows_up_to else None,
            "ceiling": None, "by_power_mode": {}, "by_precision": {}, "frontier": [], "power_modes": None,
        }
        entry.update(ranked.get(name, {}))
        out["boards"].append(entry)
    return out


# -- text ------------------------------------------------------------------------------------------------------


def _est(text: str, estimated: bool) -> str:
    return f"{text}{EST}" if estimated and text != "—" else text


def _num(value, spec: str) -> str:
    return "—" if value is None else format(value, spec)


def _energy(cfg: dict) -> str:
    return _est(units.format_energy(cfg["energy_j"]), cfg["estimated"])


def _describe(cfg: dict, modes: bool = True, clocks: bool = False) -> str:
    """A configuration in words; ``clocks``: name its clock state too (its board measured in several)."""
    parts = [cfg["power_mode"]] if modes and cfg["power_mode"] != analysis.NO_MODE else []
    if clocks:
        parts.append(f"({cfg.get('clocks') or 'clocks not recorded'})")
    where = f", {escape(' '.join(parts))}" if parts else ""
    return (f"[bold]{cfg['network']}[/] batch {cfg['batch']} {cfg['precision']} on {cfg['backend']}/{cfg['device']}"
            f"{where} — {_energy(cfg)}, {_num(cfg['throughput_ips'], '.0f')} img/s")


def _sig3(x: float) -> str:
    """Three significant digits, never in exponent form (1290, not 1.29e+03)."""
    return f"{x:.0f}" if abs(x) >= 1000 else f"{x:.3g}"


def _unit_label(basis: dict, unit: str) -> str:
    per = basis["per"]
    return f"{unit}/img" if per == "image" else f"{unit}/batch" if per == "batch" else f"{unit}/{per} img"


def source_label(r: dict) -> str:
    """Where a row's (or a configuration's) top-1 comes from, in a word: ``measured``, ``manifest``, ``catalog``,
    ``assumed`` (a reference at another precision, not measured), ``timing`` (timing only) or ``—`` (none)."""
    if r.get("timing_only"):
        return "timing"
    if r.get("assumed"):
        return "assumed"
    return r.get("accuracy_source") or "—"


def source_tag(cfg: dict) -> str | None:
    """A configuration's accuracy source for a sentence (plain text): ``measured, 500 images``, ``catalog``, …;
    None when it does not say (a report from before sources were recorded)."""
    label = source_label(cfg)
    if label == "—":
        return None
    if label == "measured":
        images = cfg.get("accuracy_images")
        return "measured" + ("" if images is None else f", {images:.0f} images")
    if label == "assumed":
        return f"assumed: the {analysis.REFERENCE_PRECISION} reference, not measured at {cfg.get('precision')}"
    return label


def _tag(cfg: dict) -> str:
    tag = source_tag(cfg)
    return "" if tag is None else f" ({tag})"


def _source_cell(r: dict) -> str:
    label = source_label(r)
    if label == "measured" and r.get("accuracy_images") is not None:
        return f"measured {r['accuracy_images']:.0f}"
    return label


def shows_sources(rows: list[dict]) -> bool:
    """Whether a table needs a column of accuracy sources: not when every top-1 is the catalog's fp32 reference
    (the caption says so then)."""
    return any(source_label(r) not in ("catalog", "—", "timing") for r in rows)


ASSUMED_NOTE = f"assumed = the {analysis.REFERENCE_PRECISION} reference for another precision, not measured: "
ASSUMED_CEILING = "  [yellow](rests on assumed accuracy: --assume-accuracy)[/]"


def _caption(results: list[dict], basis: dict, assume_accuracy: bool = False) -> str:
    sources = sorted({r["power_source"] or "none" for r in results})
    caption = f"{basis['text']}; power source: {', '.join(sources)}; top-1 in %"
    if shows_sources(results):
        caption += (f"; from = where top-1 comes from: measured N = the timed engine on N labelled images, manifest "
                    f"/ catalog = the {analysis.REFERENCE_PRECISION} reference")
        if any(r.get("assumed") for r in results):
            caption += f"; {ASSUMED_NOTE}" + ("ranked all the same (--assume-accuracy)" if assume_accuracy else
                                               "not ranked (--assume-accuracy ranks it)")
    elif any(r.get("accuracy_source") == "catalog" for r in results):
        caption += f" (the catalog's {analysis.REFERENCE_PRECISION} reference, not measured)"
    if any(r["estimated"] for r in results):
        caption += f"; {EST} = estimated, not measured"
    if any(r["unstable"] for r in results):
        caption += "; ! = unstable latency (high CoV)"
    if not all(r["converged"] for r in results):
        caption += "; * = window hit its time limit before the intervals were tight"
    if any(low(r) for r in results):
        caption += (f"; ? = p99 from fewer than {schema.tail_batches(99)} batches (the slowest of them): low "
                    "confidence")
    if any(r.get("timing_only") for r in results):
        caption += "; timing = int8 calibrated on random data: timed, accuracy unknown, never ranked"
    return caption


def low(r: dict, stat: str = "p99") -> bool:
    """The row's percentile ``stat`` rests on too few batches (its ``low_confidence``, ``schema.low_confidence``)."""
    return stat in (r.get("low_confidence") or "").split(",")


def several_clocks(entry: dict) -> bool:
    """Whether a board measured in more than one clock state (then its tables and sentences name the clocks)."""
    return len((entry.get("power_modes") or {}).get("clock_states") or []) > 1


def _clocks_cell(cfg: dict) -> str:
    return cfg.get("clocks") or "—"


def _table(entry: dict, basis: dict, assume_accuracy: bool = False) -> Table:
    results = entry["results"]
    modes = len({r["power_mode"] for r in results}) > 1
    clocks = several_clocks(entry)
    precisions = len({r["precision"] for r in results}) > 1
    sources = shows_sources(results)
    title = f"[bold]{entry['board']}[/]" + (f" — {entry['machine']}" if entry.get("machine") else "")
    table = Table(title=title, box=box.SIMPLE_HEAD, pad_edge=False, padding=(0, 1), collapse_padding=True,
                  caption=_caption(results, basis, assume_accuracy))
    factor, unit = units.common_unit([r["energy_j"] for r in results], "energy")
    table.add_column("network", no_wrap=True, min_width=12)
    headers = (["mode"] if modes else []) + (["clocks"] if clocks else []) + (["prec"] if precisions else []) + [
        "batch", "ms", "p99 ms", "img/s", "W", _unit_label(basis, unit), "top-1"] + (["from"] if sources else [])
    for col in headers:
        table.add_column(col, justify="left" if col in ("mode", "clocks", "prec", "from") else "right",
                         no_wrap=True)
    for r in results:
        power, energy = r["power_w"], r["energy_j"]
        table.add_row(
            r["network"], *([r["power_mode"]] if modes else []), *([_clocks_cell(r)] if clocks else []),
            *([r["precision"]] if precisions else []),
            str(r["batch"]),
            f"{r['latency_ms_mean']:.2f}{'!' if r['unstable'] else ''}{'' if r['converged'] else '*'}",
            f"{r['latency_ms_p99']:.2f}{'?' if low(r) else ''}", f"{r['throughput_ips']:.1f}",
            _est("—" if power is None else f"{power:.3g}", r["estimated"]),
            _est("—" if energy is None else _sig3(energy / factor), r["estimated"]),
            "timing" if r.get("timing_only") else _num(r["top1"], ".2f"),
            *([_source_cell(r)] if sources else []),
        )
    return table


def _frontier(entry: dict, basis: dict, limits: dict) -> Table:
    steps = entry["frontier"]
    budget = limits["energy_budget_j"]
    title = f"frontier: the best top-1 at each {basis['text']}" + (
        f", within {limits['others_text']}" if limits["others_text"] else "")
    table = Table(title=title, box=box.SIMPLE_HEAD, pad_edge=False, padding=(0, 1), collapse_padding=True,
                  title_justify="left")
    modes = any(s["power_mode"] != analysis.NO_MODE for s in steps)
    clocks = several_clocks(entry)
    sources = shows_sources(steps)
    for col in ("energy", "top-1", *(["from"] if sources else []), "network", "batch", "precision",
                *(["mode"] if modes else []), *(["clocks"] if clocks else []), "img/s", ""):
        table.add_column(col, justify="right" if col in ("energy", "top-1", "batch", "img/s") else "left",
                         no_wrap=True)
    for s in steps:
        within = budget is not None and s["energy_j"] <= budget
        table.add_row(_energy(s), f"{s['top1']:.2f}", *([_source_cell(s)] if sources else []), s["network"],
                      str(s["batch"]), s["precision"],
                      *([s["power_mode"]] if modes else []), *([_clocks_cell(s)] if clocks else []),
                      _num(s["throughput_ips"], ".0f"),
                      "✓ within budget" if within else "")
    return table


def _ceiling_line(c: dict, limits: dict, scope: str = "", clocks: bool = False) -> str:
    where = f"within {limits['text']}" if limits["text"] else "with no limits (the most accurate measured)"
    if c["best"] is not None:
        name = "Energy-bounded accuracy ceiling" if limits["energy_budget_j"] is not None else "Ceiling"
        line = (f"{scope}{name} {where}: [bold green]{c['top1']:.2f}% top-1[/]{_tag(c['best'])} — "
                f"{_describe(c['best'], clocks=clocks)}"
                + (f"  [yellow](energy {EST} estimated)[/]" if c["estimated"] else "")
                + (ASSUMED_CEILING if c.get("assumed") else ""))
        if c["next"] is not None:
            nxt = c["next"]
            tag = f" ({source_tag(nxt)})" if source_label(nxt) in ("measured", "assumed") else ""
            line += (f"\n  next step: {nxt['top1']:.2f}%{tag} with {_describe(nxt, clocks=clocks)} — needs "
                     f"{_est(units.format_energy(c['next_extra_j']), c['next']['estimated'])} more than the budget")
        elif limits["energy_budget_j"] is not None:
            line += "\n  nothing more accurate was measured within the other limits."
        return line
    if c["cheapest"] is not None:
        breaks = "" if c["cheapest_meets_other_limits"] else " (and it breaks the other limits too)"
        return (f"{scope}[yellow]No configuration fits {where}.[/] The cheapest is "
                f"{_describe(c['cheapest'], clocks=clocks)}"
                f"{breaks}.")
    return f"{scope}[yellow]No configuration with an accuracy to rank {where}.[/]"


def exclusions(c: dict) -> list[str]:
    """Sentences on what the ceiling could not rank, and why (plain text)."""
    lines = []
    if c.get("without_accuracy"):
        lines.append("Not ranked (no accuracy: not measured, no reference in the manifest or the catalog): "
                     f"{', '.join(c.get('without_accuracy', []))}.")
    if c.get("without_energy"):
        n = c.get("without_energy", 0)
        lines.append(f"Not ranked (no energy measured in this basis): {n} configuration{'s' if n != 1 else ''}.")
    names = {"power_budget": "over the power budget", "latency_budget": "over the latency budget",
             "min_fps": "below the minimum images/s", "energy_budget": "over the energy budget"}
    excluded = dict(c.get("excluded", {}))
    timing_only = excluded.pop("timing_only", 0)
    if timing_only:
        lines.append(f"Not ranked (timing only: int8 calibrated on random data, accuracy unknown): {timing_only} "
                     f"configuration{'s' if timing_only != 1 else ''}.")
    assumed = excluded.pop("assumed", 0)
    if assumed:
        lines.append(f"Not ranked (assumed accuracy: not {analysis.REFERENCE_PRECISION} and not measured, only the "
                     f"{analysis.REFERENCE_PRECISION} reference): {assumed} configuration{'s' if assumed != 1 else ''}"
                     " — measure the accuracy (dnnagent run --accuracy-set DIR), or rank on the reference with "
                     "--assume-accuracy.")
    if c.get("ranked_assumed"):
        n = c["ranked_assumed"]
        lines.append(f"Ranked on assumed accuracy (--assume-accuracy: the {analysis.REFERENCE_PRECISION} reference, "
                     f"not measured at that precision): {n} configuration{'s' if n != 1 else ''}.")
    parts = [f"{n} {names[k]}" for k, n in excluded.items() if n]
    if parts:
        lines.append("Outside the limits: " + ", ".join(parts) + ".")
    return lines


def _plain(text) -> Text:
    """Untrusted text (a board's message) for a cell: never read as markup, control characters escaped."""
    return Text("".join(c if c.isprintable() else ascii(c)[1:-1] for c in str(text)))


def render_failures(console: Console, report: dict, all_rows: bool = False) -> None:
    """The failed points: what produced no measurement, and why (nothing when there is none)."""
    failures, superseded = report.get("failures") or [], report.get("failures_superseded") or 0
    if failures and len(failures) > MAX_ROWS and not all_rows:
        by_error: dict[str, int] = {}
        for f in failures:
            by_error[f["error"]] = by_error.get(f["error"], 0) + 1
        console.print(f"[bold]Failed points[/]: {len(failures)} configurations produced no measurement — "
                      + ", ".join(f"{error} {n}" for error, n in sorted(by_error.items(), key=lambda kv: -kv[1]))
                      + " (--all lists them; --json and --out have them all)")
    elif failures:
        table = Table(title=f"Failed points: {len(failures)} produced no measurement (never ranked)",
                      box=box.SIMPLE_HEAD, pad_edge=False, padding=(0, 1), collapse_padding=True,
                      title_justify="left")
        for col in ("board", "network", "batch", "precision", "backend/device", "mode", "error", "stage", "why"):
            table.add_column(col, justify="right" if col == "batch" else "left", no_wrap=col != "why",
                             overflow="fold")
        for f in failures:
            mode = f["power_mode"] + (", clocks locked" if f.get("clocks") == "jetson_clocks on" else "")
            table.add_row(_plain(f["board"]), _plain(f["network"]), str(f["batch"]), _plain(f["precision"]),
                          _plain(f"{f['backend']}/{f['device']}"), _plain(mode), f["error"],
                          f["stage"].replace("_", " "), _plain(f["reason"]))
        console.print(table)
    if superseded:
        console.print(f"{superseded} configuration{'s' if superseded != 1 else ''} that failed earlier "
                      f"{'were' if superseded != 1 else 'was'} measured since: the newer result replaces the "
                      "failure, which is not listed.")
    if failures or superseded:
        console.print()


def render(console: Console, report: dict, all_rows: bool = False) -> None:
    if not report["boards"]:
        if report.get("board_filter") and report.get("known_boards"):
            console.print(f"No board {report['board_filter']!r} in this store. Boards here: "
                          f"{', '.join(report['known_boards'])}.")
            return
        if report.get("failures"):
            console.print("No measurement stored yet: every point so far failed (below).")
            render_failures(console, report, all_rows)
            return
        console.print("No results stored yet. Run `dnnhost demo`, or `dnnhost collect` while an agent runs, "
                      "or `dnnhost import FILE.jsonl`.")
        return
    basis, limits = report["basis"], report["limits"]
    for entry in report["boards"]:
        results = entry["results"]
        if not entry["configurations"]:  # a board known from its birth/info that has not published a result yet
            console.print(f"[bold]{entry['board']}[/]: No results from this board yet.")
            continue
        if results is not None and (all_rows or len(results) <= MAX_ROWS):
            console.print(_table(entry, basis, bool(limits.get("assume_accuracy"))))
        else:
            console.print(f"[bold]{entry['board']}[/]: {entry['configurations']} configurations (the frontier "
                          "below; --all prints every one, --export writes them to a file)")
        no_energy = not entry["with_energy"]
        if no_energy:
            console.print(f"[yellow]No energy was measured on this board ({basis['text']}: no power source"
                          f"{' or no idle baseline' if basis['energy'] == 'net' else ''}), so there is no "
                          "energy frontier.[/]")
        elif entry["frontier"]:
            console.print(_frontier(entry, basis, limits))
        c = entry["ceiling"]
        if no_energy and limits["energy_budget_j"] is not None:
            console.print()
            continue
        clocks = several_clocks(entry)
        console.print(_ceiling_line(c, limits, clocks=clocks))
        for key, label in (("by_power_mode", "power mode"), ("by_precision", "precision")):
            for name, sub in entry[key].items():
                console.print("  " + _ceiling_line(sub, limits, scope=f"{label} {escape(name)}: ",
                                                   clocks=clocks).replace("\n", "\n  "))
        for line in exclusions(c):
            console.print(line)
        if (stat := limits.get("latency_stat")) != "mean" and limits.get("latency_budget_ms") is not None and results:
            weak = sum(low(r, stat) for r in results)
            if weak:
                console.print(f"{weak} of these configurations have a {stat} from fewer than "
                              f"{schema.tail_batches(int(stat[1:]))} batches (low confidence); the latency budget "
                              "ranks them on it all the same.")
        if limits["energy_budget_j"] is None and any(r["energy_j"] is not None for r in results or []):
            console.print("Add [bold]--energy-budget[/] (e.g. 50mJ) for the energy-bounded accuracy ceiling.")
        if entry.get("power_modes"):
            console.print()
            render_power_modes(console, entry["power_modes"], all_rows)
        console.print()
    render_failures(console, report, all_rows)
    if report.get("analyses"):
        render_analyses(console, report["analyses"], all_rows)


# -- the energy-optimal power mode ---------------------------------------------------------------------------------


def mode_group_name(g: dict, engines: bool = True, routes: bool = False) -> str:
    """A network of the mode-by-mode table in words: ``resnet18 fp16 (onnx_converted) on tensorrt/gpu``."""
    text = f"{g['network']} {g['precision']}" + (f" ({g['precision_method']})" if routes else "")
    return text + (f" on {g['backend']}/{g['device']}" if engines else "")


def mode_saving(r: dict, dearest: str | None) -> str:
    """A row's saving against its network's dearest power state, in words: ``40% less``, ``dearest``, ``—``."""
    if r.get("state") == dearest and r.get("energy_per_image_j") is not None:
        return "dearest"
    if r.get("saving_pct") is None:
        return "—"
    return f"{r['saving_pct']:.0f}% less"


def mode_row_text(r: dict) -> str:
    """One power state's best batch, in words: ``15W (jetson_clocks off) batch 8: 9 mJ/image, 33.3 ms, 240 img/s``."""
    energy = _est(units.format_energy(r.get("energy_per_image_j")), r.get("estimated"))
    return (f"{r['state']} batch {r['batch']}: {energy} per image, {_num(r.get('latency_ms'), '.3g')} ms, "
            f"{_num(r.get('throughput_ips'), '.0f')} img/s")


def mode_layout(pm: dict) -> tuple[bool, set]:
    """Whether the table needs a backend/device column, and which networks need their precision route named."""
    groups = pm["groups"]
    engines = len({(g["backend"], g["device"]) for g in groups}) > 1
    seen: dict = {}
    for g in groups:
        key = (g["network"], g["precision"], g["backend"], g["device"])
        seen[key] = seen.get(key, 0) + 1
    return engines, {k for k, n in seen.items() if n > 1}


def render_power_modes(console: Console, pm: dict, all_rows: bool = False) -> None:
    """The energy-optimal power mode of each network, and a row per power state (mode and clocks) with its best
    batch: only for a board measured in several power states (``analysis.power_modes_of``)."""
    groups = pm["groups"]
    within = f", within {pm['limits']}" if pm["limits"] else ""
    title = (f"Energy-optimal power mode: the least {pm['basis']} per network, each power state at its best batch"
             f"{within}")
    if not groups:
        console.print(f"[bold]{title}[/]\n  every network was measured in one power state only: nothing to compare "
                      "(dnnagent run --power-mode M1,M2 --clocks dvfs,locked measures several).")
    else:
        engines, routed = mode_layout(pm)
        rows = sum(len(g["rows"]) for g in groups)
        compact = rows > MAX_ROWS and not all_rows
        factor, unit = units.common_unit([r["energy_per_image_j"] for g in groups for r in g["rows"]], "energy")
        caption = ("saving = less energy per image than the network's dearest power state (each at its best batch); "
                   "★ = energy-optimal"
                   + ("; ✗ = no batch of this state meets the limits (its cheapest shown)" if within else ""))
        table = Table(title=title + (" — the optimum of each network (--all prints every power state)" if compact
                                     else ""), box=box.SIMPLE_HEAD, pad_edge=False, padding=(0, 1),
                      collapse_padding=True, title_justify="left", caption=caption, caption_justify="left")
        for col in ("network", "prec", *(["backend/device"] if engines else []), "power state", "batch",
                    f"{unit}/img", f"{pm['latency_stat']} ms", "img/s", "saving", ""):
            table.add_column(col, justify="right" if col in ("batch", f"{unit}/img", f"{pm['latency_stat']} ms",
                                                            "img/s", "saving") else "left", no_wrap=True)
        for g in groups:
            shown = [r for r in g["rows"] if r["optimal"]] if compact else g["rows"]
            routes = (g["network"], g["precision"], g["backend"], g["device"]) in routed
            for k, r in enumerate(shown):
                energy = r["energy_per_image_j"]
                mark = "★ least energy" if r["optimal"] else ("✗ outside the limits" if not r["within_limits"]
                                                              else "")
                table.add_row(
                    escape(g["network"]) if k == 0 else "",
                    escape(g["precision"] + (f" ({g['precision_method']})" if routes else "")) if k == 0 else "",
                    *([escape(f"{g['backend']}/{g['device']}") if k == 0 else ""] if engines else []),
                    escape(r["state"]), str(r["batch"]),
                    _est("—" if energy is None else _sig3(energy / factor), r["estimated"]),
                    _num(r["latency_ms"], ".3g"), _num(r["throughput_ips"], ".0f"),
                    mode_saving(r, g["dearest"]), mark)
        console.print(table)
        for g in groups:
            for line in mode_notes(g, pm, engines, (g["network"], g["precision"], g["backend"], g["device"]) in routed):
                console.print(f"  {escape(line)}")
    if pm["single_state"]:
        names = ", ".join(f"{s['network']} {s['precision']} in {s['state']}" for s in pm["single_state"])
        console.print(f"  Measured in one power state only (nothing to compare): {escape(names)}.")


def mode_notes(g: dict, pm: dict, engines: bool = False, routes: bool = False) -> list[str]:
    """Sentences under the mode-by-mode table for one network (plain text): nothing meets the limits, the optimum
    without them, no energy, energies from different boundaries."""
    name = mode_group_name(g, engines, routes)
    lines = []
    if g.get("without_energy"):
        lines.append(f"{name}: no energy measured in any power state, so no energy-optimal one.")
    elif g.get("none_meets"):
        closest = g.get("closest")
        lines.append(f"{name}: no power state meets {pm['limits']}"
                     + (f"; the fastest is {mode_row_text(closest)}." if closest else "."))
    free = g.get("unlimited")
    if pm["limits"] and free is not None and not free.get("optimal") and not g.get("none_meets"):
        saving = mode_saving(free, g["dearest"])
        lines.append(f"{name}: without the limits the least energy is {mode_row_text(free)}"
                     + (f" ({saving} than the dearest state)." if saving.endswith("less") else "."))
    if g.get("mixed_boundaries"):
        lines.append(f"{name}: its power states were measured at different power boundaries or partly estimated: "
                     "compare their energies with care.")
    return lines


def _group(rec: dict) -> str:
    parts = [rec["board"], rec["power_mode"] if rec["power_mode"] != analysis.NO_MODE else None, rec["precision"],
             f"{rec['backend']}/{rec['device']}"]
    return " ".join(p for p in parts if p)


def _analysis_table(title: str, columns: list[str], rows: list[list[str]], records: list[dict],
                    all_rows: bool) -> Table | str:
    if len(rows) > MAX_ROWS and not all_rows:  # a fleet: hundreds of fits would bury the answer
        r2 = sorted(r["r2"] for r in records if r.get("r2") is not None)
        spread = f"; R² median {r2[len(r2) // 2]:.3f}, lowest {r2[0]:.3f}" if r2 else ""
        return (f"[bold]{title}[/]\n  {len(rows)} rows{spread} — --all prints them; --json, --out and --plots "
                "have them all.")
    table = Table(title=title, box=box.SIMPLE_HEAD, pad_edge=False, padding=(0, 1), collapse_padding=True,
                  title_justify="left")
    for i, col in enumerate(columns):
        table.add_column(col, justify="left" if i == 0 or col in ("network", "note", "finding") else "right",
                         overflow="fold")
    for r in rows:
        table.add_row(*r)
    return table


def _fit_cells(rec: dict, *keys: tuple[str, str]) -> list[str]:
    return [_num(rec[k], spec) for k, spec in keys] + [_num(rec["r2"], ".3f"), str(rec["n"]), rec["reason"] or ""]


def _mib(value: float | None) -> str:
    return _num(None if value is None else value / 2**20, ".3g")


def render_analyses(console: Console, a: dict, all_rows: bool = False) -> None:
    """The seed paper's analyses as tables of fitted numbers (see host/paper.py for the definitions)."""

    def show(title: str, columns: list[str], key: str, cells) -> None:
        console.print(_analysis_table(title, columns, [cells(r) for r in a[key]], a[key], all_rows))

    console.rule("[bold]The seed paper's analyses[/] (Canziani et al. 2016), on these measurements")
    est = any(r.get("estimated") for r in a["accuracy_vs_energy"])
    show("accuracy vs time per image: top-1 = a − b / t  (seed Fig. 9)",
         ["group", "batch", "a %", "b %·ms", "R²", "n", "note"], "accuracy_vs_time",
         lambda r: [_group(r), str(r["batch"]), *_fit_cells(r, ("a", ".2f"), ("b", ".3g"))])
    show(f"accuracy vs energy per image: top-1 = a − b / E{'  (~ energy estimated)' if est else ''}",
         ["group", "batch", "a %", "b %·J", "R²", "n", "note"], "accuracy_vs_energy",
         lambda r: [_group(r) + (EST if r.get("estimated") else ""), str(r["batch"]),
                    *_fit_cells(r, ("a", ".2f"), ("b", ".3g"))])
    show("op count vs time per image: ms = slope × G-ops + intercept  (seed Fig. 7; G-ops = 2 × GMACs)",
         ["group", "batch", "ms/G-op", "intercept ms", "R²", "n", "note"], "ops_vs_time",
         lambda r: [_group(r), str(r["batch"]), *_fit_cells(r, ("slope_ms_per_gop", ".3g"), ("intercept_ms", ".3g"))])
    show("batch scaling: time per image at the smallest ÷ at the largest batch, beside the FC share of MACs",
         ["group", "network", "batches", "ms/img", "ms/img", "gain ×", "FC MACs %"], "batch_scaling",
         lambda r: [_group(r), r["network"], f"{r['batch_min']}→{r['batch_max']}",
                    _num(r["ms_per_image_at_min"], ".3g"), _num(r["ms_per_image_at_max"], ".3g"),
                    _num(r["gain"], ".2f"),
                    "—" if r["fc_macs_share"] is None else f"{100 * r['fc_macs_share']:.1f}"])
    summary = a["batch_scaling_summary"]
    for r in summary if all_rows or len(summary) <= MAX_ROWS else []:
        console.print(f"  {_group(r)}: {r['finding']}")
    show("accuracy density: top-1 % per million parameters  (seed Fig. 10)",
         ["network", "top-1 %", "params M", "%/M params"], "accuracy_density",
         lambda r: [r["network"], _num(r["top1"], ".2f"), _num(r["params_m"], ".3g"), _num(r["density"], ".3g")])
    ratios = a["density_ratios"]
    console.print("  density ratios — " + "; ".join(f"{k}: {_num(ratios[k], '.1f')}× (seed: {v}×)"
                                                    for k, v in ratios["seed"].items()))
    show("power across batch sizes and networks: is it independent of both? (seed, later versions)",
         ["group", "basis", "n", "mean W", "stdev W", "CoV", "η² batch", "η² network", "independent", "note"], "power",
         lambda r: [_group(r) + (EST if r["estimated"] else ""), r["basis"], str(r["n"]), _num(r["mean_w"], ".3g"),
                    _num(r["stdev_w"], ".2g"), _num(r["cov"], ".3f"), _num(r["eta2_batch"], ".2f"),
                    _num(r["eta2_network"], ".2f"), {True: "yes", False: "no", None: "—"}[r["independent"]],
                    r["reason"] or ""])
    if a["power"]:
        console.print(f"  {a['power'][0]['rule']}")
    show("memory vs batch size: bytes = slope × batch + intercept  (seed Fig. 5)",
         ["group", "network", "memory", "MiB/image", "static MiB", "R²", "n", "note"], "memory_vs_batch",
         lambda r: [_group(r), r["network"], r["memory_kind"], _mib(r["slope_bytes_per_image"]),
                    _mib(r["intercept_bytes"]), _num(r["r2"], ".3f"), str(r["n"]), r["reason"] or ""])
    show("memory vs parameters at the smallest batch: bytes = slope × params + intercept  (seed Fig. 6)",
         ["group", "batch", "memory", "bytes/param", "static MiB", "R²", "n", "note"], "memory_vs_params",
         lambda r: [_group(r), str(r["batch"]), r["memory_kind"], _num(r["slope_bytes_per_param"], ".3g"),
                    _mib(r["intercept_bytes"]), _num(r["r2"], ".3f"), str(r["n"]), r["reason"] or ""])
    console.print("  memory: footprint = weights + activations + buffers (TensorRT: engine + activations + I/O device "
                  "memory; a CPU runtime: the agent's RSS growth from before the model was loaded, noisy where it "
                  "pools memory); backend = an older TensorRT agent's activations-only figure.")


# -- the fleet's answer -------------------------------------------------------------------------------------------


def where(cfg: dict) -> str:
    """Where a configuration ran, as plain text: ``orin-01 MAXN (jetson_clocks)``."""
    mode = "" if cfg.get("power_mode") in (None, analysis.NO_MODE) else f" {cfg['power_mode']}"
    clocks = f" ({cfg['clocks']})" if cfg.get("clocks") else ""
    return f"{cfg.get('board')}{mode}{clocks}"


def _config(cfg: dict) -> str:
    return f"[bold]{escape(where(cfg))}[/] · {escape(cfg['network'])} batch {cfg['batch']} {cfg['precision']}"


def render_fleet(console: Console, report: dict) -> None:
    """``report --fleet``: per budget, the best configuration of the fleet within each comparable boundary."""
    fleet = report["fleet"]
    basis, limits = report["basis"], report["limits"]
    if not fleet["groups"]:
        console.print("[yellow]No board measured energy, so there is no fleet answer.[/]" if fleet["left_out"] else
                      "No results stored yet. Run `dnnhost demo`, or `dnnhost collect` while an agent runs, or "
                      "`dnnhost import FILE.jsonl`.")
        _left_out(console, fleet)
        return
    others = f", within {limits['others_text']}" if limits["others_text"] else ""
    for answer in fleet["answers"]:
        budget = answer["budget_j"]
        head = (f"within {units.format_energy(budget, digits=6)} {basis['text']}" if budget is not None
                else f"with no energy limit ({basis['text']} shown)")
        console.rule(f"[bold]The fleet's answer[/] {head}{others}")
        for g in answer["groups"]:
            label = f"[bold]{escape(g['boundary'])}[/] — {escape(g['text'])}; boards: {escape(', '.join(g['boards']))}"
            if g["estimated"]:
                label += "  [yellow](estimated: never ranked above a measurement)[/]"
            console.print(label)
            if g["best"] is None:
                cheap = g["cheapest"]
                console.print("  [yellow]nothing fits[/]" + (
                    f" — the cheapest is {_config(cheap)}: {_energy(cheap)}" if cheap else ""))
                continue
            first = g["boundary"] == answer["headline"]
            headline = "  [bold green]best[/]" + (" (the fleet's answer: the widest boundary measured)" if first
                                                 else "")
            console.print(f"{headline}: {g['top1']:.2f}% top-1{escape(_tag(g['best']))} — "
                          f"{_config(g['best'])}, {_energy(g['best'])}, {_num(g['best']['throughput_ips'], '.0f')} "
                          "img/s" + (ASSUMED_CEILING if g.get("assumed") else ""))
            if g.get("beats_headline"):
                console.print("  [yellow]more accurate than the fleet's answer, but measured at a narrower boundary: "
                              "its energy leaves out what the answer's includes, so it is not ranked above it[/]")
            nxt = g["next"]
            if nxt is not None:
                extra = _est(units.format_energy(g["next_extra_j"]), nxt["estimated"])
                console.print(f"  next step: {nxt['top1']:.2f}% with {_config(nxt)} — needs {_energy(nxt)} ({extra} "
                              "more than the budget)")
            elif budget is not None:
                console.print("  nothing more accurate was measured at this boundary within the other limits")
            for b in g["per_board"]:
                if b["board"] == g["best"]["board"] and len(g["per_board"]) == 1:
                    continue
                if b["best"] is None:
                    console.print(f"    {escape(b['board'])}: nothing fits ({b['considered']} configurations)")
                else:
                    assumed = " (assumed)" if b["best"].get("assumed") else ""
                    console.print(f"    {escape(b['board'])}: {b['top1']:.2f}%{assumed} — {_config(b['best'])}, "
                                  f"{_energy(b['best'])}")
            for line in exclusions(g):
                console.print(f"  {escape(line)}")
    _left_out(console, fleet)
    console.print(f"[dim]{fleet['rule']}.[/]")
    if failures := report.get("failures"):
        console.print(f"{len(failures)} failed point{'s' if len(failures) != 1 else ''} (no measurement, never "
                      "ranked): `dnnhost report` without --fleet lists them with why.")


def _left_out(console: Console, fleet: dict) -> None:
    for item in fleet["left_out"]:
        console.print(f"left out: [bold]{escape(item['board'])}[/] ({item['configurations']} configurations) — "
                      f"{escape(item['reason'])}")
