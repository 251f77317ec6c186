"""``dnnhost report``: per-board tables and the energy-bounded accuracy ceiling, as rich text or JSON."""

from __future__ import annotations

import math

from rich import box
from rich.console import Console
from rich.table import Table

from dnnprof.shared import catalog, units

from . import analysis
from .store import Store

EST = "~"


def _clean(value):
    if hasattr(value, "item"):
        value = value.item()
    return None if isinstance(value, float) and math.isnan(value) else value


def build(store: Store, energy_budget_j: float | None = None, board: str | None = None,
          networks: catalog.Catalog | None = None) -> dict:
    """The report as plain data (what ``--json`` prints)."""
    networks = networks or catalog.Catalog()
    df = analysis.latest(analysis.frame(store.results(board), networks))
    boards = store.boards()
    names = sorted(set(df["board"]) | ({board} if board and board in boards else set()))
    out = {"energy_budget_j": energy_budget_j, "energy_basis": "gross energy per image (one inference = one image)",
           "catalog": networks.origin, "boards": []}
    for name in names:
        rows = df[df["board"] == name]
        meta = boards.get(name, {})
        info = meta.get("info")
        entry = {
            "board": name,
            "state": meta.get("state"),
            "hostname": info.hostname if info else None,
            "cpu_model": info.cpu_model if info else None,
            "results": [{k: _clean(v) for k, v in row.items()} for row in rows.to_dict("records")],
            "ceiling": analysis.ceiling(rows, energy_budget_j) if energy_budget_j is not None else None,
        }
        out["boards"].append(entry)
    return out


def _est(text: str, estimated: bool) -> str:
    return f"{text}{EST}" if estimated and text != "—" else text


def _describe(cfg: dict) -> str:
    return (f"[bold]{cfg['network']}[/], batch {cfg['batch']}, {cfg['precision']} on {cfg['backend']}/{cfg['device']}"
            f" — {_est(units.format_energy(cfg['energy_per_inference_j']), cfg['estimated'])} per image, "
            f"{cfg['throughput_ips']:.0f} img/s")


def render(console: Console, report: dict) -> None:
    if not report["boards"]:
        console.print("No results stored yet. Run `dnnhost demo`, or `dnnhost collect` while an agent runs, "
                      "or `dnnhost import FILE.jsonl`.")
        return
    for entry in report["boards"]:
        results = entry["results"]
        if not results:  # a board known from its birth/info that has not published a result yet
            console.print(f"[bold]{entry['board']}[/]: No results from this board yet.")
            continue
        sources = sorted({r["power_source"] or "none" for r in results})
        any_est = any(r["estimated"] for r in results)
        title = f"[bold]{entry['board']}[/]"
        if entry["cpu_model"]:
            title += f" — {entry['cpu_model']}"
        caption = f"power source: {', '.join(sources)}; top-1 in %"
        if any_est:
            caption += f"; {EST} = estimated, not measured"
        if any(r["unstable"] for r in results):
            caption += "; ! = unstable latency (high CoV)"
        if not all(r["converged"] for r in results):
            caption += "; * = window hit its time limit before the intervals were tight"
        table = Table(title=title, box=box.SIMPLE_HEAD, pad_edge=False, padding=(0, 1), collapse_padding=True,
                      caption=caption)
        e_factor, e_unit = units.common_unit([r["energy_per_inference_j"] for r in results], "energy")
        table.add_column("network", no_wrap=True, min_width=12)
        for col in ("batch", "ms", "p99 ms", "img/s", "W", f"{e_unit}/img", "top-1"):
            table.add_column(col, justify="right", no_wrap=True)
        for r in results:
            power, epi = r["power_w"], r["energy_per_inference_j"]
            table.add_row(
                r["network"], str(r["batch"]),
                f"{r['latency_ms_mean']:.2f}{'!' if r['unstable'] else ''}{'' if r['converged'] else '*'}",
                f"{r['latency_ms_p99']:.2f}",
                f"{r['throughput_ips']:.1f}", _est("—" if power is None else f"{power:.3g}", r["estimated"]),
                _est("—" if epi is None else f"{epi / e_factor:.3g}", r["estimated"]),
                "—" if r["top1"] is None else f"{r['top1']:.2f}",
            )
        console.print(table)
        if all(r["energy_per_inference_j"] is None for r in results):
            console.print("[yellow]No energy was measured on this board (no power source), so there is no "
                          "energy-bounded ceiling.[/]")
            continue
        c = entry["ceiling"]
        if c is None:
            console.print("Add [bold]--energy-budget[/] (e.g. 50mJ) for the energy-bounded accuracy ceiling.")
            continue
        budget = units.format_energy(c["budget_j"])
        if c["best"] is not None:
            console.print(f"Energy-bounded accuracy ceiling at {budget} per image ({c['basis']}): "
                          f"[bold green]{c['ceiling_top1']:.2f}% top-1[/] — {_describe(c['best'])}"
                          + (f"  [yellow](energy {EST} estimated)[/]" if c["estimated"] else ""))
        elif c["cheapest"] is not None:
            console.print(f"[yellow]No configuration fits {budget} per image.[/] The cheapest is "
                          f"{_describe(c['cheapest'])}.")
        if c["without_accuracy"]:
            console.print(f"Not in the ceiling (no reference accuracy in the catalog): "
                          f"{', '.join(c['without_accuracy'])}.")
        if c["without_energy"]:
            console.print(f"Not in the ceiling (no energy measured): {c['without_energy']} configurations.")
