"""``dnnhost live``: the fleet on one screen, redrawn a few times a second from what the boards publish.

``frame`` turns a fleet snapshot into a rich renderable sized to the terminal: columns are dropped, least useful
first, when the terminal is narrow, and boards beyond its height are counted rather than drawn (which also keeps
the cost of a frame independent of the fleet's size). ``Dashboard`` wires a Collector (which also stores every
message, as ``dnnhost collect`` does) to a Fleet and a rich Live display.
"""

from __future__ import annotations

import math
import threading
import time
from dataclasses import dataclass

from rich.cells import cell_len, set_cell_size
from rich.console import Console, RenderableType
from rich.live import Live
from rich.text import Span, Text

from dnnprof.shared import schema, units

from . import sql
from .collector import Collector
from .fleet import WINDOW_S, Board, Fleet

BARS = "▁▂▃▄▅▆▇█"
SORTS = ("board", "power", "state", "temperature", "seen")
STATE_STYLE = {"online": "green", "offline": "dim", "lost": "red", None: "yellow"}
STATE_ORDER = {"lost": 0, None: 1, "online": 2, "offline": 3}


def sparkline(values: list[float | None]) -> str:
    """One character per value, scaled between the window's lowest and highest; a gap where there was none."""
    values = [v if v is not None and math.isfinite(v) else None for v in values]
    present = [v for v in values if v is not None]
    if not present:
        return " " * len(values)
    lo, hi = min(present), max(present)
    span = hi - lo
    out = []
    for v in values:
        if v is None:
            out.append(" ")
        elif span <= 1e-9 * max(1.0, abs(hi)):
            out.append(BARS[3])
        else:
            out.append(BARS[min(len(BARS) - 1, int((v - lo) / span * len(BARS)))])
    return "".join(out)


def _duration(seconds: float | None) -> str:
    if seconds is None or not math.isfinite(seconds):
        return "—"
    seconds = int(round(seconds))
    if seconds < 60:
        return f"{seconds}s"
    if seconds < 3600:
        return f"{seconds // 60}m{seconds % 60:02d}s"
    return f"{seconds // 3600}h{seconds // 60 % 60:02d}m"


def _bar(done: int, total: int, width: int = 6) -> str:
    filled = 0 if total <= 0 else round(width * min(done, total) / total)
    return "█" * filled + "░" * (width - filled)


def _run(board: Board) -> str:
    run = board.run
    if run is None:
        return "idle"
    if run.event == "finished":
        return f"done {run.points_done}/{run.points_total}"
    if run.event == "failed":
        return f"failed at {run.points_done}/{run.points_total}"
    if run.event in ("aborted", "cancelled"):
        return f"{run.event} at {run.points_done}/{run.points_total}"
    what = " ".join(p for p in (run.network, f"b{run.batch}" if run.batch else None, run.precision) if p)
    eta = f" ETA {_duration(run.eta_s)}" if run.eta_s is not None else ""
    return f"{what or 'starting'} {_bar(run.points_done, run.points_total)} {run.points_done}/{run.points_total}{eta}"


def _result(board: Board) -> str:
    r = board.result
    if r is None:
        return "—"
    epi = r.energy_per_inference_j
    energy = units.format_energy(epi.gross if epi else None) + ("~" if epi and r.provenance.estimated else "")
    return f"{r.throughput_ips:.0f} img/s {energy}/img ({r.network} b{r.batch})"


def _failed(board: Board) -> str:
    """How many points failed in this view, and the newest: ``2 · vgg16 b=64 fp16: out_of_memory``."""
    f = board.failure
    if f is None:
        return ""
    return f"{board.failures} · {f.network} b={f.batch} {f.precision}: {f.error}"


def _power(board: Board) -> str:
    if board.power_w is None:
        return "—"
    return f"{board.power_w:.3g} W" + ("~" if board.estimated else "")


def _model(board: Board) -> str:
    parts = [schema.machine(board.info), board.power_mode]
    return " · ".join(p for p in parts if p) or "—"


def _rails(board: Board) -> str:
    # Largest first: the input rail, where there is one, leads.
    return " ".join(f"{name} {w:.2g}" for name, w in sorted(board.rails_w.items(), key=lambda kv: -kv[1])) or "—"


def _temperature(board: Board) -> str:
    t = board.temperature_c
    return "—" if t is None else f"{t:.0f}°C"


@dataclass(frozen=True)
class Column:
    name: str
    width: int  # the least it needs
    cell: object  # (Board, now) -> str | Text
    ratio: int | None = None  # share of the spare width


SPARK = 20  # sparkline characters: 3 s each over the 60 s window


def _sparkline(board: Board, now: float) -> str:
    # Redrawn once a second: its 3-second bars cannot change faster, and it is the costliest cell.
    key = int(now)
    cached = board.drawn.get("sparkline")
    if cached is None or cached[0] != key:
        cached = board.drawn["sparkline"] = (key, sparkline(board.sparkline_values(now, SPARK)))
    return cached[1]

FAILED = "failed points"  # a column only while some board shown has one

# In the order they are dropped from a narrow terminal: last first.
COLUMNS = [
    Column("board", 12, lambda b, now: Text(b.board, style="bold")),
    Column("state", 7, lambda b, now: Text(b.state or "?", style=STATE_STYLE.get(b.state, "yellow"))),
    Column("power", 8, lambda b, now: _power(b)),
    Column("run", 30, lambda b, now: _run(b), ratio=4),
    Column(FAILED, 24, lambda b, now: Text(_failed(b), style="red"), ratio=3),
    Column("warnings", 12, lambda b, now: Text(", ".join(b.warnings()) or "", style="yellow"), ratio=1),
    Column("last result", 18, lambda b, now: _result(b), ratio=2),
    Column(f"power, last {WINDOW_S:.0f} s", SPARK, lambda b, now: _sparkline(b, now)),
    Column("temp", 5, lambda b, now: _temperature(b)),
    Column("model · mode", 14, lambda b, now: _model(b), ratio=1),
    Column("rails W", 14, lambda b, now: _rails(b), ratio=1),
]


def columns_for(width: int, failed: bool = True) -> list[Column]:
    """The columns that fit ``width`` terminal cells (one cell of padding between columns); ``failed``: with the
    failed points column (no board shown has any: without)."""
    chosen, used = [], 0
    for col in COLUMNS:
        if col.name == FAILED and not failed:
            continue
        need = col.width + (1 if chosen else 0)
        if used + need > width and len(chosen) >= 2:
            break
        chosen.append(col)
        used += need
    return chosen


def _fit(text: str, width: int) -> str:
    """``text`` padded or cut (with an ellipsis) to exactly ``width`` terminal cells."""
    size = cell_len(text)
    if size <= width:
        return text + " " * (width - size)
    return set_cell_size(text, width - 1) + "…"


def _widths(cols: list[Column], width: int) -> list[int]:
    """Each column's width: its minimum, plus a share of what is left by its ratio."""
    spare = width - sum(c.width for c in cols) - (len(cols) - 1)
    ratios = sum(c.ratio or 0 for c in cols)
    widths = [c.width + (spare * (c.ratio or 0) // ratios if ratios and spare > 0 else 0) for c in cols]
    if ratios and spare > 0:  # what integer division left over goes to the first column with a ratio
        first = next(i for i, c in enumerate(cols) if c.ratio)
        widths[first] += spare - sum(w - c.width for w, c in zip(widths, cols))
    return widths


def _table(boards: list[Board], cols: list[Column], width: int, now: float) -> list[Text]:
    """The board table as one Text per line, laid out by hand: a rich Table measures every cell of every frame,
    which at a few redraws a second costs more than the whole rest of the dashboard."""
    widths = _widths(cols, width)
    header = Text(" ".join(_fit(c.name, w) for c, w in zip(cols, widths)), style="bold", no_wrap=True)
    lines = [header]
    for b in boards:
        pieces, spans, at = [], [], 0
        for col, w in zip(cols, widths):
            cell = col.cell(b, now)
            if isinstance(cell, Text):
                if cell.style:
                    spans.append(Span(at, at + w, cell.style))
                cell = cell.plain
            pieces.append(_fit(cell, w))
            at += w + 1
        lines.append(Text(" ".join(pieces), no_wrap=True, overflow="crop", spans=spans))
    return lines


def _sort_key(sort: str):
    if sort == "power":
        return lambda b: (-(b.power_w if b.power_w is not None else -math.inf), b.board)
    if sort == "state":
        return lambda b: (STATE_ORDER.get(b.state, 1), b.board)
    if sort == "temperature":
        return lambda b: (-(b.temperature_c if b.temperature_c is not None else -math.inf), b.board)
    if sort == "seen":
        return lambda b: (-(b.last_seen or 0.0), b.board)
    return lambda b: b.board


def _join(lines: list[Text]) -> Text:
    # One Text, not a Group of many: rich renders it in one pass, which is most of a frame's cost.
    out = Text("\n", no_wrap=True, overflow="crop").join(lines)
    out.no_wrap, out.overflow = True, "crop"
    return out


def frame(boards: list[Board], *, width: int, height: int, now: float | None = None, sort: str = "board",
          broker: str = "", connected: bool = True, rates: dict[str, float] | None = None,
          counts: dict[str, int] | None = None, last_rejection: str | None = None, store: str | None = None,
          refresh_hz: float | None = None, only: set[str] | None = None) -> RenderableType:
    """One screen of the dashboard for a terminal of ``width`` × ``height`` cells."""
    now = time.time() if now is None else now
    rates, counts = rates or {}, counts or {}
    states = {s: sum(1 for b in boards if b.state == s) for s in ("online", "offline", "lost")}
    header = Text.assemble(("dnnhost live", "bold"), f" · broker {broker} · {len(boards)} boards "
                           f"({states['online']} online, {states['offline']} offline, {states['lost']} lost)",
                           (f" · storing into {store}" if store else ""), overflow="ellipsis", no_wrap=True)
    parts: list[RenderableType] = [header]
    if not connected:
        parts.append(Text(f" broker {broker} unreachable — retrying; the last known state is shown ",
                          style="bold white on red", no_wrap=True, overflow="ellipsis"))
    footer = Text(f"messages/s {rates.get('all', 0.0):.0f} (telemetry {rates.get('telemetry', 0.0):.0f}) · "
                  f"received {counts.get('received', 0)} · results {counts.get('result', 0)} · "
                  + (f"failed points {counts['failure']} · " if counts.get("failure") else "") +
                  f"rejected {counts.get('rejected', 0)}"
                  + (f" (last: {last_rejection})" if last_rejection else "")
                  + (f" · gaps {counts['gaps']} (replay requests {counts.get('replay_requests', 0)}, replayed "
                     f"{counts.get('replayed', 0)})" if counts.get("gaps") else "")
                  + (f" · refresh {refresh_hz:g} Hz" if refresh_hz else "") + " · Ctrl-C to quit",
                  style="dim", no_wrap=True, overflow="ellipsis")
    if not boards:
        parts.append(Text(f"No board{' of ' + ', '.join(sorted(only)) if only else ''} has published yet. Agents "
                          f"publish here with `dnnagent run MODELS --broker {broker or 'HOST'}`.", style="dim"))
        parts.append(footer)
        return _join(parts)
    # Header, banner, the table's header, a line for "more", the footer and the cursor line: the rest is boards.
    room = max(1, height - len(parts) - 4)
    ordered = sorted(boards, key=_sort_key(sort))
    shown = ordered[:room] if len(ordered) > room else ordered
    parts.extend(_table(shown, columns_for(width, any(b.failures for b in shown)), width, now))
    if len(shown) < len(ordered):
        parts.append(Text(f"… {len(ordered) - len(shown)} more boards (a taller terminal, --board or --sort "
                          "shows them)", style="dim", no_wrap=True, overflow="ellipsis"))
    parts.append(footer)
    return _join(parts)


class Dashboard:
    """A Collector feeding a Fleet, drawn with rich Live until stopped."""

    def __init__(self, broker: str, db, boards: set[str] | None = None, sort: str = "board",
                 refresh_hz: float = 4.0, console: Console | None = None, **security) -> None:
        """``security``: the Collector's ``tls``, ``username`` and ``password``. It stores and asks for missing
        numbers as ``dnnhost collect`` does, under a random client id with a clean session: a persistent session
        is collect's, and taking it over would cut collect off."""
        self.broker = broker
        self.fleet = Fleet(boards)
        self.sort = sort
        self.refresh_hz = refresh_hz
        self.console = console or Console()
        self.collector = Collector(broker, db, on_valid=self.fleet.ingest, on_rejected=self.fleet.rejected,
                                   replay=True, **security)
        self.frames = 0
        self.drawing_since = self.drawing_until = None  # monotonic span of the drawing loop
        self.store = sql.where(db) if db else None

    @property
    def frame_rate_hz(self) -> float:
        """Frames drawn per second of the drawing loop."""
        if self.drawing_since is None:
            return 0.0
        return self.frames / max(1e-9, (self.drawing_until or time.monotonic()) - self.drawing_since)

    def render(self, all_boards: bool = False) -> RenderableType:
        size = self.console.size
        c = self.collector
        rates = self.fleet.rates()
        with self.fleet.locked() as boards:  # frame() turns what it needs into text, so no copies are made
            height = len(boards) + 10 if all_boards else size.height
            counts = {**self.fleet.counts, **{k: c.counts[k] for k in ("gaps", "replay_requests", "replayed")}}
            return frame(boards, width=size.width, height=height, sort=self.sort, broker=f"{c.host}:{c.port}",
                         connected=c.connected, rates=rates, counts=counts,
                         last_rejection=self.fleet.last_rejection, store=self.store, refresh_hz=self.refresh_hz,
                         only=self.fleet.only)

    def run(self, stop: threading.Event, duration_s: float = math.inf) -> None:
        """Draw until ``stop`` is set or ``duration_s`` has passed (Ctrl-C is the caller's to catch)."""
        self.collector.start(retry=True)
        period = 1.0 / self.refresh_hz
        started = time.monotonic()
        try:
            with Live(self.render(), console=self.console, auto_refresh=False, screen=False,
                      transient=False, vertical_overflow="crop") as live:
                self.drawing_since = time.monotonic()
                next_tick = self.drawing_since
                while not stop.is_set() and time.monotonic() - started < duration_s:
                    live.update(self.render(), refresh=True)
                    self.frames += 1
                    # On a fixed schedule, so a slow frame is caught up rather than lowering the rate.
                    next_tick = max(next_tick + period, time.monotonic() - period)
                    stop.wait(max(0.0, next_tick - time.monotonic()))
        finally:
            self.drawing_until = time.monotonic()
            self.collector.stop()

    def once(self, settle_s: float = 1.5, timeout_s: float = 5.0) -> RenderableType:
        """Connect, take in the retained state, and draw one frame with every board. Retained messages arrive
        first; the state counts as taken in once no message but telemetry (which never stops) has arrived for
        ``settle_s`` — or after ``timeout_s``."""
        self.collector.start(timeout_s=timeout_s)
        try:
            deadline = time.monotonic() + timeout_s
            last, quiet_since = -1, time.monotonic()
            while time.monotonic() < deadline:
                counts = self.fleet.counts
                received = counts["received"] + counts["rejected"] - counts["telemetry"]
                if received != last:
                    last, quiet_since = received, time.monotonic()
                elif time.monotonic() - quiet_since >= settle_s:
                    break
                time.sleep(0.05)
            return self.render(all_boards=True)
        finally:
            self.collector.stop()
