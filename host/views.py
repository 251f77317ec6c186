"""What ``dnnhost``'s commands print: their tables and lines, on stdout (``out``: the answer a command gives) and
stderr (``err``: progress, summaries, notes). The report's own rendering is host/report.py.

Sources, reasons and payloads are untrusted input: they are printed with control characters escaped and never
read as markup, so raw escape sequences cannot drive the terminal that shows them.
"""

from __future__ import annotations

import base64
import json
import shlex
import time
from pathlib import Path

import msgspec
from rich import box
from rich.console import Console
from rich.table import Table
from rich.text import Text

from dnnprof.shared import catalog, schema, units

from .collector import KEEP_REJECTED_BYTES
from .predict import describe_group

out = Console()
err = Console(stderr=True)


# --- plain lines and untrusted text ------------------------------------------------------------------------------


def say(text: str) -> None:
    """Print as is: no wrapping (hex and payload lines stay whole), no markup or highlighting of untrusted text."""
    out.print(text, soft_wrap=True, markup=False, highlight=False)


def note(text: str) -> None:
    """``say`` on stderr: a line naming files (FILE:LINE, paths that may contain []) stays whole and greppable."""
    err.print(text, soft_wrap=True, markup=False, highlight=False)


def json_out(data) -> None:
    """Data for scripts on stdout, as ``--json`` prints it."""
    print(json.dumps(data, indent=2))


def printable(text: str, keep: str = "") -> str:
    """``text`` with control and other unprintable characters escaped (``\\x1b``), those in ``keep`` excepted:
    a payload is untrusted input, and raw escape sequences would drive the terminal that shows it."""
    return "".join(c if c.isprintable() or c in keep else ascii(c)[1:-1] for c in text)


def preview(payload: bytes | None, width: int = 30) -> str:
    if payload is None:
        return "—"
    text = printable(payload[:width * 4].decode("utf-8", "backslashreplace"))
    return text if len(text) <= width else text[:width - 1] + "…"


def size(payload: bytes | None) -> str:
    n = len(payload or b"")
    return f"≥{n}" if n >= KEEP_REJECTED_BYTES else str(n)  # the store keeps only the first 64 KiB


def when(ts: float) -> str:
    return time.strftime("%Y-%m-%d %H:%M:%S", time.localtime(ts))


# --- collect and live --------------------------------------------------------------------------------------------


def counts_gaps(c) -> str:
    """What the gap checks did, for collect's status line and summary; empty when nothing went missing."""
    if not (c["gaps"] or c["replay_requests"] or c["unrecoverable"]):
        return ""
    return (f"gaps {c['gaps']} · replay requests {c['replay_requests']} · replayed {c['replayed']}"
            + (f" · unrecoverable {c['unrecoverable']}" if c["unrecoverable"] else ""))


def _failed(c, text: str) -> str:
    """``text`` with the number of failed points received (messages of kind failure), when there were any."""
    return text.format(c["failure"]) if c["failure"] else ""


def collect_status(connected: bool, c) -> str:
    """collect's live status line (rich markup)."""
    gaps = counts_gaps(c)
    return (f"{'connected' if connected else '[red]broker unreachable, retrying[/]'} · "
            f"results {c['result']}{_failed(c, ' · failed points {}')} · stored {c['stored']} · "
            f"duplicates {c['duplicate']} · "
            f"rejected {c['rejected']}" + (f" · {gaps}" if gaps else ""))


def collect_summary(c, store_path: Path, last_rejection: str | None) -> None:
    err.print(f"stored {c['stored']} messages ({c['result']} results, {_failed(c, '{} failed points, ')}"
              f"{c['duplicate']} duplicates, "
              f"{c['rejected']} rejected) in {store_path}")
    if gaps := counts_gaps(c):
        note(f"{gaps} (`dnnhost gaps` lists what is still missing)")
    if last_rejection:
        err.print(f"last rejected: {last_rejection}")


def live_summary(frames: int, frame_rate_hz: float, elapsed: float, c, store_path: Path) -> None:
    note(f"live: {frames} frames ({frame_rate_hz:.2f} Hz) in {elapsed:.0f} s; "
         f"{c['received']} messages ({c['telemetry']} telemetry, {c['result']} results), {c['rejected']} "
         f"rejected; stored into {store_path}")


# --- import ------------------------------------------------------------------------------------------------------


def import_rejected(path: Path, lineno: int, reason: str) -> None:
    # No wrapping or markup: FILE:LINE must stay one greppable line, and paths may contain [].
    note(f"{path}:{lineno}: rejected: {reason}")


def import_summary(new: int, dup: int, bad: int, store_path: Path) -> None:
    note(f"imported {new} new messages ({dup} already stored, {bad} rejected) into {store_path}")


# --- rejected ----------------------------------------------------------------------------------------------------


def rejected_json(row) -> dict:
    return {"id": row.id, "received": row.received, "source": row.source, "reason": row.reason,
            "size": len(row.payload or b""), "truncated": len(row.payload or b"") >= KEEP_REJECTED_BYTES,
            "payload_base64": None if row.payload is None else base64.b64encode(row.payload).decode("ascii")}


def show_rejected(row) -> None:
    """One refusal in full: its payload as text, or in hex when it is not UTF-8."""
    say(f"id:       {row.id}")
    say(f"received: {when(row.received)} ({row.received:.3f})")
    say(f"source:   {printable(row.source)}")
    say(f"reason:   {printable(row.reason)}")
    payload = row.payload or b""
    kept = " (the first 64 KiB kept)" if len(payload) >= KEEP_REJECTED_BYTES else ""
    if row.payload is None:
        say("payload:  none")
        return
    try:
        text = payload.decode("utf-8")
    except UnicodeDecodeError:
        say(f"payload:  {len(payload)} bytes{kept}, not UTF-8, in hex:")
        for start in range(0, len(payload), 32):
            say(payload[start:start + 32].hex(" "))
        return
    say(f"payload:  {len(payload)} bytes{kept}, as text:")
    say(printable(text, keep="\n\t"))


def rejected_table(rows, path: Path) -> None:
    table = Table(box=box.SIMPLE_HEAD, title=f"rejected input, newest first ({path})")
    table.add_column("id", justify="right", no_wrap=True)
    table.add_column("received", no_wrap=True)
    table.add_column("source", overflow="fold", min_width=12)  # a topic cut short would hide its board
    table.add_column("reason", min_width=16)
    table.add_column("bytes", justify="right", no_wrap=True)
    table.add_column("payload", no_wrap=True, max_width=30)
    for row in rows:
        # Text cells: sources, reasons and payloads are untrusted and may hold [markup].
        table.add_row(str(row.id), when(row.received), Text(printable(row.source)), Text(printable(row.reason)),
                      size(row.payload), Text(preview(row.payload)))
    out.print(table)


def rejected_none(since: str | None, source: str | None, path: Path) -> None:
    filters = [f"--since {since}"] * bool(since) + [f"--source {source!r}"] * bool(source)
    say(f"nothing rejected{' matching ' + ' '.join(filters) if filters else ''} in {path}")


def rejected_more(limit: int) -> None:
    note(f"older rejected input not shown: raise --limit (now {limit}) or narrow with --since/--source")


# --- gaps --------------------------------------------------------------------------------------------------------


def ranges(spans: list[tuple[int, int]], most: int = 8) -> str:
    """``[(3, 4), (6, 6)]`` → ``"3-4, 6"``; beyond ``most`` ranges, how many more."""
    text = ", ".join(str(f) if f == last else f"{f}-{last}" for f, last in spans[:most])
    return text + (f", … {len(spans) - most} more" if len(spans) > most else "")


def stream_name(stream: int) -> str:
    """A stream id with the time it stands for (the agent's outbox creation, Unix milliseconds)."""
    try:
        return f"{stream} ({when(stream / 1000)})"
    except (OverflowError, OSError, ValueError):  # an id far outside the clock's range: the number alone
        return str(stream)


def _by_stream(missing, lost) -> tuple[dict, dict]:
    missing_of: dict[tuple[str, int], list[tuple[int, int]]] = {}
    for g in missing:
        missing_of.setdefault((g.board, g.stream), []).append((g.first, g.last))
    lost_of: dict[tuple[str, int], list] = {}
    for x in lost:
        lost_of.setdefault((x.board, x.stream), []).append(x)
    return missing_of, lost_of


def gaps_json(path: Path, streams, missing, lost) -> dict:
    missing_of, lost_of = _by_stream(missing, lost)
    return {"store": str(path), "missing_numbers": sum(g.last - g.first + 1 for g in missing), "streams": [{
        "board": s.board, "stream": s.stream, "high": s.high, "received": s.received, "changed": s.changed,
        "missing": [list(r) for r in missing_of.get((s.board, s.stream), [])],
        "missing_numbers": sum(last - first + 1 for first, last in missing_of.get((s.board, s.stream), [])),
        "unrecoverable": [{"first": x.first, "last": x.last, "reason": x.reason, "ts": x.ts}
                          for x in lost_of.get((s.board, s.stream), [])],
    } for s in streams]}


def gaps_none(board: str | None, path: Path) -> None:
    say(f"no numbered messages{' from ' + board if board else ''} in {path} yet: agents with an outbox number "
        "their results and run events")


def gaps_table(path: Path, streams, missing, lost) -> None:
    """Per stream: its high mark, the numbers received, the ranges missing and those no replay can recover."""
    missing_of, lost_of = _by_stream(missing, lost)
    table = Table(box=box.SIMPLE_HEAD, title=f"outbox streams ({path})")
    table.add_column("board", no_wrap=True)
    table.add_column("stream (created)", no_wrap=True)
    table.add_column("high", justify="right", no_wrap=True)
    table.add_column("received", justify="right", no_wrap=True)
    table.add_column("missing", min_width=8)
    table.add_column("unrecoverable", min_width=12)
    for s in streams:
        spans = missing_of.get((s.board, s.stream), [])
        count = sum(last - first + 1 for first, last in spans)
        gone = "\n".join(f"{ranges([(x.first, x.last)])}: {printable(x.reason)}"
                         for x in lost_of.get((s.board, s.stream), []))
        table.add_row(s.board, stream_name(s.stream), str(s.high), str(s.received),
                      Text(f"{ranges(spans)} ({count} numbers)" if spans else "none",
                           style="yellow" if spans else ""),
                      Text(gone or "none"))
    out.print(table)
    total = sum(g.last - g.first + 1 for g in missing)
    if total:
        say(f"{total} numbers missing in {len(missing)} ranges: `dnnhost collect` asks the boards to publish them "
            "again")
    else:
        say("no gaps: every number up to each stream's high mark has arrived"
            + (" or is recorded as unrecoverable" if lost else ""))


# --- measure -----------------------------------------------------------------------------------------------------


def measure_answer(command: schema.Command, ack: schema.CommandAck) -> None:
    """The agent's answer to a measure command: accepted (what it will measure) or refused (why)."""
    if ack.accepted:
        precision = command.precision
        asked = (f"{command.board} will measure {command.model} at batch {command.batch}"
                 f"{' in ' + precision if precision else ''}")
        say(f"accepted: {printable(ack.reason) if ack.reason else asked}")
    else:
        say(f"refused: {printable(ack.reason) if ack.reason else 'no reason given'}")


# --- catalog -----------------------------------------------------------------------------------------------------


def _opt(value, spec: str) -> str:
    return "—" if value is None else format(value, spec)


def _catalog_rows(networks: catalog.Catalog) -> list[dict]:
    return [msgspec.to_builtins(n) for n in sorted(networks, key=lambda n: n.name)]


def catalog_json(networks: catalog.Catalog) -> None:
    json_out({"origin": networks.origin, "networks": _catalog_rows(networks)})


def catalog_table(networks: catalog.Catalog) -> None:
    table = Table("network", "top-1 %", "top-5 %", "GMACs", "params (M)", "seed top-1 %", "source",
                  title=f"reference networks ({networks.origin})", box=box.SIMPLE_HEAD)
    for n in _catalog_rows(networks):
        table.add_row(n["name"], f"{n['top1']:.2f}", _opt(n["top5"], ".2f"), _opt(n["gmacs"], "g"),
                      _opt(n["params_m"], "g"), _opt(n["seed_top1"], "g"), n["source"])
    out.print(table)


# --- report and demo ---------------------------------------------------------------------------------------------


def report_written(export: list[Path], plots: Path | None, figures, html_out: Path | None) -> None:
    """The files ``report`` wrote, and the figures it skipped (with why)."""
    for target in export:
        note(f"wrote {target}")
    if plots is not None:
        note(f"wrote {len(figures)} figure files into {plots}")
        for name, why in figures.skipped.items():
            note(f"  skipped {name}: {why}")
    if html_out is not None:
        note(f"wrote {html_out}")


def demo_point(console: Console, message: schema.Result) -> None:
    """One measured point as the demo goes: network, batch, throughput, energy per image (~: estimated)."""
    epi = message.energy_per_inference_j
    est = "~" if message.provenance.estimated else ""
    console.print(f"  {message.network:<20} batch {message.batch:<3} {message.throughput_ips:8.1f} img/s  "
                  f"{units.format_energy(epi.gross if epi else None)}{est} per image")


def demo_budget(budget: float) -> None:
    err.print(f"energy budget: {units.format_energy(budget)} per image (a round number near the median; "
              "set --energy-budget)")


def demo_done(seconds: float, store_path: Path) -> None:
    """How long the demo took, where its results are, and the command that reads them."""
    note(f"demo took {seconds:.0f} s · results stored in {store_path} — explore further: "
         f"dnnhost report --db {shlex.quote(str(store_path))} --energy-budget 50mJ")


# --- predict -------------------------------------------------------------------------------------------------------


def _pct(error: dict | None) -> str:
    return "—" if error is None else f"{100 * error['median']:.0f}% / {100 * error['worst']:.0f}%"


def _escape(text: str) -> str:
    """Untrusted text (a file or board name) for a rich string: printable, and its brackets never read as markup."""
    from rich.markup import escape

    return escape(printable(text))


def predictions(data: dict) -> None:
    """``dnnhost predict``: one row per group, predicted figures and their leave-one-network-out errors."""
    answered = [p for p in data["predictions"] if p["refused"] is None]
    table = Table(title=f"[bold]{_escape(data['network'])}[/]: predicted from the networks measured there "
                        "(a prediction, not a measurement)", box=box.SIMPLE_HEAD, pad_edge=False, padding=(0, 1),
                  collapse_padding=True, title_justify="left")
    modes = any(p["power_mode"] != schema.NO_POWER_MODE for p in answered)
    budget = data["energy_budget_j"]
    columns = ["board", *(["mode"] if modes else []), "prec", "batch", "ms/img", "img/s", "energy/img",
               "ms err", "energy err", "nets", "measured there", *(["within budget?"] if budget is not None else [])]
    for col in columns:
        left = col in ("board", "mode", "prec", "measured there", "within budget?")
        table.add_column(col, justify="left" if left else "right", no_wrap=col not in ("within budget?",),
                         overflow="fold")
    for p in answered:
        est = "~" if p["estimated"] else ""
        pred = p["predicted"]
        energy = pred["energy_per_inference_j"]
        measured = p["measured"]
        seen = "—" if measured is None else f"{measured['ms_per_image']:.3g} ms" + (
            "" if measured["energy_per_inference_j"] is None
            else f", {units.format_energy(measured['energy_per_inference_j'])}{est}")
        cells = [_escape(p["board"]), *([_escape(p["power_mode"])] if modes else []), p["precision"],
                 str(p["batch"]), f"{pred['ms_per_image']:.3g}", f"{pred['throughput_ips']:.3g}",
                 "—" if energy is None else f"{units.format_energy(energy)}{est}",
                 _pct(p["cv"]["ms_per_image"]), _pct(p["cv"]["energy_per_inference_j"]), str(len(p["networks"])),
                 seen]
        if budget is not None:
            cells.append(_budget_cell(p.get("budget")))
        table.add_row(*cells)
    out.print(table)
    used = [f for f in data["features"] if any(f in p["features"] for p in answered)]
    say(f"features: {', '.join(data['features'][f] for f in used)}. err = leave-one-network-out relative error "
        "(median / worst) of each network measured there when predicted from the others; ~ = energy estimated on "
        "that board, not measured.")
    small = [p for p in answered if len(p["features"]) < len(data["features"])]
    if small:
        say(f"{len(small)} group(s) predicted without activation bytes: their results come from an older agent.")
    if budget is not None:
        top1 = data.get("top1")
        known = f"{top1:.2f}% ({data.get('top1_source') or 'given'})" if top1 is not None else "unknown (--top1)"
        say(f"budget {units.format_energy(budget)} gross per image; the model's top-1: {known}. The board's ceiling "
            "is its best measured configuration within the budget (any mode, precision and batch, at the same power "
            "boundary); a ceiling with the prediction is a prediction, not a measurement.")
        touched = any((p.get("budget") or {}).get(k) for p in data["predictions"]
                      for k in ("top1_assumed", "excluded_assumed", "assumed"))
        if touched:
            say("fp16 and int8 are ranked on the fp32 top-1 where it was not measured (--assume-accuracy): assumed."
                if data.get("assume_accuracy") else
                "fp16 and int8 whose top-1 was not measured are not ranked (--assume-accuracy ranks them on the "
                "fp32 one).")
    for p in data["predictions"]:
        if p["refused"] is not None:
            note(f"not predicted for {printable(describe_group(p))}: {p['refused']}")
        for why in (p.get("notes") or {}).values():
            note(f"{printable(describe_group(p))}: {why}")


def _budget_cell(b: dict | None) -> str:
    if b is None:
        return "no energy measured"
    est = "~" if b["estimated"] else ""
    if not b["fits"]:
        return f"over by {units.format_energy(-b['margin_j'])}{est}"
    assumed = b.get("assumed")
    nothing = "nothing measured fits" + (" (assumed top-1 left out)" if b.get("excluded_assumed") else "")
    now = nothing if b["ceiling_measured"] is None else (
        f"board's ceiling {b['ceiling_measured']:.2f}%{' assumed' if assumed and not b['raises_ceiling'] else ''} "
        f"({_escape(b['ceiling_measured_by'])})")
    if b["raises_ceiling"]:
        return f"fits{est}; {now} → {b['ceiling_with_prediction']:.2f}% predicted{', assumed' if assumed else ''}"
    if b["top1"] is None:
        return f"fits{est}; {now}"
    return f"fits{est}; {now}" + (", not raised" if b.get("top1_ranked", True) else
                                  ", its top-1 assumed at this precision (--assume-accuracy)")


# --- steering agents -------------------------------------------------------------------------------------------


def command_json(command: schema.Command, ack: schema.CommandAck, round_trip_s: float) -> None:
    json_out({"command": schema.to_builtins(command), "ack": schema.to_builtins(ack),
              "round_trip_ms": round(round_trip_s * 1e3, 3)})


def command_answer(command: schema.Command, ack: schema.CommandAck) -> None:
    """The agent's answer to a sweep command: accepted (what happens now) or refused (why)."""
    verdict = "accepted" if ack.accepted else "refused"
    say(f"{verdict}: {printable(ack.reason) if ack.reason else 'no reason given'}")


def _run_words(run: schema.SweepPoint) -> str:
    what = f"{', '.join(run.networks)} x b={','.join(map(str, run.batches))} x {','.join(run.precisions)}"
    if run.state == "queued":
        return f"queued {run.run_id}: {what}"
    failed = f", {run.failed} failed" if run.failed else ""
    now = f", now {run.current}" if run.current else ""
    return f"{run.state} {run.run_id} ({run.origin}): {run.points_done}/{run.points_total} points{failed}{now}"


def sweep_status(command: schema.Command, ack: schema.CommandAck) -> None:
    """A board's sweep state: the run now, then the queue."""
    if not ack.accepted or ack.sweep is None:
        command_answer(command, ack)
        return
    state = ack.sweep
    mode = f" (power mode {state.power_mode})" if state.power_mode else ""
    say(f"{command.board}{mode}: " + (printable(_run_words(state.running)) if state.running else "idle"))
    for run in state.queue:
        say(f"  {printable(_run_words(run))}")
    if not state.queue:
        say("  nothing queued")


def _board_row(seen) -> dict:
    status, info, ack = seen.status, seen.info, seen.answer
    return {"board": seen.board, "state": status.state if status else None,
            "since": status.ts if status else None, "machine": schema.machine(info),
            "agent_version": info.agent_version if info else None,
            "answered": ack is not None, "round_trip_ms": round(seen.asked_s * 1e3, 3) if ack else None,
            "sweep": schema.to_builtins(ack.sweep) if ack and ack.sweep else None}


def boards_json(seen: dict) -> None:
    json_out({"boards": [_board_row(s) for s in seen.values()]})


def boards_table(seen: dict, broker: str) -> None:
    if not seen:
        say(f"no board has announced itself on {broker} (an agent publishes a retained status when it connects)")
        return
    table = Table(box=None, pad_edge=False)
    for column in ("board", "state", "since", "machine", "agent", "sweep", "answer"):
        table.add_column(column)
    for s in seen.values():
        row = _board_row(s)
        if s.answer is not None and s.answer.sweep is not None:
            state = s.answer.sweep
            sweep = _run_words(state.running) if state.running else "idle"
            sweep += f"; {len(state.queue)} queued" if state.queue else ""
            answer = f"{row['round_trip_ms']:.0f} ms"
        else:
            sweep, answer = "—", "no answer" if row["state"] == "online" else "—"
        table.add_row(printable(s.board), row["state"] or "?", when(row["since"]) if row["since"] else "—",
                      printable(row["machine"] or "—"), printable(row["agent_version"] or "—"), printable(sweep),
                      answer)
    out.print(table)
