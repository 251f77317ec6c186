"""Jetson rail power from ``tegrastats``: live (the tool spawned with ``--interval``) or replayed from a log file.

Power fields look like ``NAME X/Y`` with X the instantaneous and Y the running average power in mW, in three
dialects that this module reads alike:

* JetPack 4: no unit — ``POM_5V_IN 933/933``
* JetPack 5/6: ``VDD_IN 5079mW/5079mW``
* JetPack 7.2 (AGX Orin): three values — ``VDD_GPU_SOC 5139mW/5139mW/5139mW``

Only the first value (instantaneous) is used, never the average. Channels named NC are skipped. A line may start
with a date, ``MM-DD-YYYY HH:MM:SS`` (JetPack 5+). Other fields (``RAM 2000/7000MB``, ``SWAP``, ``CPU [...]``,
``EMC_FREQ``, ``GR3D_FREQ``, ``cpu@52.968C/52.968C``) are not rails: a rail's values are whole words of digits,
optionally followed by ``mW``, so ``MB``/``kB`` suffixes and ``@`` temperatures never match.

Total = the input rail (VDD_IN, POM_5V_IN, VIN) where the board has one, else the sum of rails. tegrastats prints
only what it read, so an input rail it could not read is simply absent — nothing here can tell it apart from a board
without one; a line that lacks a rail of the first line is an error (replay) or a read error (live). Sources: jtop's
tegrastats parser and board emulator lines (rbonghi/jetson_stats jtop/core/tegra_parse.py, tests/tegrastats,
jtop/tests/test_06_tegra_parse.py) and NVIDIA's tegrastats documentation.
"""

from __future__ import annotations

import math
import os
import re
import shutil
import signal
import subprocess
import tempfile
import threading
import time
from collections.abc import Iterator
from dataclasses import dataclass, field
from datetime import datetime
from pathlib import Path

from dnnprof.shared.errors import UserError

from . import rails as railnames
from .base import PowerSource, SourceUnavailable, check_interval_ms

DEFAULT_INTERVAL_MS = 100.0  # live: 10 readings a second (tegrastats' own default is 1000 ms)
REPLAY_INTERVAL_MS = 1000.0  # replay without dates: tegrastats' default interval
STALL_INTERVALS = 3  # no new line for this many intervals = stalled (jtop uses the same factor)

_DATE = re.compile(r"^\s*(\d{2})-(\d{2})-(\d{4}) (\d{2}):(\d{2}):(\d{2})(?:\s|$)")
_NUMBER = r"(\d+(?:\.\d+)?)"
# NAME X[mW]/Y[mW][/Z[mW]] as whole words: (?<!\S) and (?!\S) keep "RAM 2000/7000MB" and "cpu@52C/52C" out.
_RAIL = re.compile(rf"(?<!\S)([A-Za-z][A-Za-z0-9_]*) {_NUMBER}(?:mW)?/{_NUMBER}(?:mW)?(?:/{_NUMBER}(?:mW)?)?(?!\S)")


@dataclass
class Line:
    """One parsed tegrastats line: its date (if it has one), the power of each rail, W, in line order, and how many
    channels it printed as NC (not connected)."""

    date: datetime | None
    rails_w: dict[str, float]
    not_connected: int = 0


def parse_line(text: str) -> Line:
    """Parse one tegrastats line; ValueError when a rail appears twice or the date is not a date."""
    # UNVERIFIED on hardware: the formats are from recorded lines (jtop's tests and emulator, third-party logs);
    # a board whose tegrastats prints power with another unit (W, uW) would show no rails and be refused.
    date = None
    match = _DATE.match(text)
    if match:
        month, day, year, hour, minute, second = (int(g) for g in match.groups())
        date = datetime(year, month, day, hour, minute, second)  # ValueError for 13-45-2024
        text = text[match.end():]
    rails: dict[str, float] = {}
    not_connected = 0
    for name, first, _avg, _third in _RAIL.findall(text):
        if railnames.not_connected(name):
            not_connected += 1  # AGX Orin prints its two unconnected channels as "NC 0mW/0mW"
            continue
        if name in rails:
            raise ValueError(f"rail {name} appears twice")
        rails[name] = float(first) / 1e3  # instantaneous mW → W; the average is never used
    return Line(date, rails, not_connected)


def _nc_info(count: int) -> list[str]:
    """The ``info`` entry for the channels a line printed as NC: normal hardware, said once."""
    if not count:
        return []
    return [f"skipped {count} channel{'s' if count > 1 else ''} printed as NC (not connected)"]


# -- live -------------------------------------------------------------------------------------------------------------


def find_binary(root: str | Path = "/") -> Path:
    """The tegrastats executable: on PATH (or /usr/bin) for the live root, else under ROOT only."""
    base = Path(root)
    live = base.resolve() == Path("/")
    candidates: list[Path] = []
    if live and (on_path := shutil.which("tegrastats")):
        candidates.append(Path(on_path))
    # /usr/bin on every JetPack; /home/nvidia on old L4T images (jetson_stats service.py PATH_TEGRASTATS).
    candidates += [base / "usr/bin/tegrastats", base / "usr/sbin/tegrastats", base / "home/nvidia/tegrastats"]
    for path in candidates:
        if path.is_file():
            if not os.access(path, os.X_OK):
                raise SourceUnavailable(f"{path} is not executable")
            return path
    where = "on PATH or in " if live else "in "
    raise SourceUnavailable(f"tegrastats not found {where}{', '.join(str(p.parent) for p in candidates[-3:])} "
                            "(it ships with JetPack; not a Jetson?)")


class TegrastatsSource(PowerSource):
    """``tegrastats --interval MS`` running as a child process; ``read()`` returns its latest line's rails."""

    name = "tegrastats"
    estimated = False
    quantity = "power_w"

    def __init__(self, interval_ms: float = DEFAULT_INTERVAL_MS, root: str | Path = "/",
                 start_timeout_s: float = 5.0) -> None:
        if not (math.isfinite(interval_ms) and interval_ms >= 1):
            raise SourceUnavailable(f"tegrastats interval {interval_ms:g} ms is not valid: give at least 1 ms")
        self.binary = find_binary(root)
        self.interval_s = round(interval_ms) / 1e3
        self.update_interval_s = self.interval_s  # each line is one new reading
        # Read a few times per line so a reading's timestamp trails the line by a small fraction of the interval.
        self.period_s = min(max(self.interval_s / 10, 0.01), 0.1)
        self.notes: list[str] = []
        self.info: list[str] = []  # what is normal for the hardware: channels printed as NC
        self._lock = threading.Lock()
        self._arrived = threading.Event()  # a line with rails came
        self._eof = threading.Event()  # tegrastats closed its output
        self._latest: tuple[float, dict[str, float]] | None = None  # (monotonic arrival, rails W)
        self._not_connected = 0  # NC channels on the first line with rails
        self._bad_lines = 0
        self._last_error: str | None = None
        self._stderr = tempfile.TemporaryFile()  # noqa: SIM115 - closed in close(); a pipe nobody reads can fill up
        # UNVERIFIED on hardware: tegrastats flushes each line when writing to a pipe (jtop <= 4.1 read it exactly
        # like this: Popen([path, "--interval", ms], stdout=PIPE) and readline(); jetson_stats core/tegrastats.py).
        try:
            # Its own process group, so close() stops whatever it started too (a child holding the pipe open
            # would keep the reader thread waiting).
            self._proc = subprocess.Popen([str(self.binary), "--interval", str(round(interval_ms))],
                                          stdout=subprocess.PIPE, stderr=self._stderr, stdin=subprocess.DEVNULL,
                                          text=True, errors="replace", start_new_session=True)
        except OSError as exc:
            self._stderr.close()
            raise SourceUnavailable(f"cannot run {self.binary}: {exc.strerror or exc}") from None
        self._reader = threading.Thread(target=self._read_lines, name="tegrastats-reader", daemon=True)
        self._reader.start()
        try:
            first = self._first_line(max(start_timeout_s, STALL_INTERVALS * self.interval_s))
        except SourceUnavailable:
            self.close()
            raise
        self.rails = tuple(first)
        with self._lock:
            self.info += _nc_info(self._not_connected)
        self.input_rail = railnames.find_input_rail(self.rails)
        self.boundary = railnames.boundary_of(self.input_rail)
        self.method = (f"tegrastats --interval {round(interval_ms)} ({self.binary}): "
                       f"{railnames.count(len(self.rails))}, instantaneous values; "
                       f"total = {railnames.describe_total(self.input_rail)}")

    def _read_lines(self) -> None:
        for text in self._proc.stdout:
            try:
                line = parse_line(text)
            except ValueError as exc:
                self._bad_lines += 1
                self._last_error = f"{exc}: {text.strip()[:120]!r}"
                continue
            if not line.rails_w:
                self._bad_lines += 1
                self._last_error = f"no power rails in {text.strip()[:120]!r}"
                continue
            with self._lock:
                if self._latest is None:
                    self._not_connected = line.not_connected
                self._latest = (time.monotonic(), line.rails_w)
            self._arrived.set()
        self._eof.set()
        self._arrived.set()  # wake a waiting constructor so it sees the end

    def _stderr_tail(self) -> str:
        try:
            self._stderr.seek(0)
            text = self._stderr.read().decode("utf-8", "replace").strip()
        except (OSError, ValueError):
            return ""
        return text.splitlines()[-1][:200] if text else ""

    def _first_line(self, timeout_s: float) -> dict[str, float]:
        deadline = time.monotonic() + timeout_s
        while time.monotonic() < deadline:
            with self._lock:
                if self._latest is not None:
                    return dict(self._latest[1])
            if self._eof.is_set() or self._proc.poll() is not None:
                try:
                    self._proc.wait(2.0)
                    ended = f"exited with code {self._proc.returncode}"
                except subprocess.TimeoutExpired:
                    ended = "closed its output"
                tail = self._stderr_tail()
                raise SourceUnavailable(f"{self.binary} {ended}" + (f": {tail}" if tail else "")
                                        + (f" ({self._last_error})" if self._last_error else ""))
            self._arrived.wait(min(0.05, max(0.0, deadline - time.monotonic())))
        if self._last_error:
            raise SourceUnavailable(f"tegrastats printed no power rails in {timeout_s:g} s (this board's tegrastats "
                                    f"may print none; last line: {self._last_error})")
        raise SourceUnavailable(f"tegrastats printed nothing in {timeout_s:g} s")

    def read(self) -> tuple[float, ...]:
        """The latest line's power per rail (W); OSError when tegrastats exited or stalled."""
        if self._proc.poll() is not None:
            raise OSError(f"tegrastats exited with code {self._proc.returncode}")
        with self._lock:
            arrived, values = self._latest  # set before the constructor returned
        age = time.monotonic() - arrived
        if age > max(STALL_INTERVALS * self.interval_s, 0.5):
            raise OSError(f"tegrastats printed no new line for {age:.2f} s (stalled)")
        try:
            return tuple(values[rail] for rail in self.rails)
        except KeyError as exc:
            raise ValueError(f"tegrastats line lacks rail {exc.args[0]}") from None

    def close(self) -> None:
        proc = getattr(self, "_proc", None)
        if proc is not None:
            for sig in (signal.SIGTERM, signal.SIGKILL):
                try:
                    os.killpg(proc.pid, sig)  # the group we started: tegrastats and anything it spawned
                except ProcessLookupError:
                    break
                try:
                    proc.wait(2.0)
                    break
                except subprocess.TimeoutExpired:
                    continue
        reader = getattr(self, "_reader", None)
        if reader is not None:
            reader.join(2.0)
        if proc is not None and proc.stdout is not None and not (reader and reader.is_alive()):
            proc.stdout.close()
        self._stderr.close()


# -- replay -----------------------------------------------------------------------------------------------------------


@dataclass
class Log:
    """A recorded tegrastats log: the rails, the total rule, and one (t_s, values W) per line."""

    path: Path
    rails: tuple[str, ...]
    input_rail: str | None
    ts: list[float]  # seconds since the first line
    values: list[tuple[float, ...]]  # W, one per rail
    timed_by: str  # "date" or "interval"
    interval_s: float | None  # the spacing, when timed by interval
    notes: list[str] = field(default_factory=list)  # what a reader should know: an --interval that was not used
    info: list[str] = field(default_factory=list)  # normal for the hardware: NC channels dropped

    name = "tegrastats"
    estimated = False

    @property
    def boundary(self) -> str:
        return railnames.boundary_of(self.input_rail)

    @property
    def method(self) -> str:
        timing = ("timestamps from the lines' dates" if self.timed_by == "date"
                  else f"lines spaced {self.interval_s * 1e3:g} ms apart")
        return (f"tegrastats log {self.path} (replay, {timing}): {railnames.count(len(self.rails))}, instantaneous "
                f"values; total = {railnames.describe_total(self.input_rail)}")

    def __iter__(self) -> Iterator[tuple[float, tuple[float, ...]]]:
        """(t_s, power per rail W) for every line, t from 0 at the first line."""
        return iter(zip(self.ts, self.values))

    def __len__(self) -> int:
        return len(self.ts)


def read_log(path: str | Path, interval_ms: float | None = None) -> Log:
    """Parse a tegrastats log (``tegrastats --logfile`` or captured stdout) for replay.

    Timing: when every line carries a date and the dates differ line to line, the dates are the timestamps and
    ``interval_ms`` is not used (``notes`` says so when it was given). Dates have one-second resolution, so a log
    with several lines a second must be given ``interval_ms`` (the interval tegrastats ran with), which is checked
    against the dates' span. A log without dates is spaced by ``interval_ms`` (default 1000 ms, tegrastats'
    default). Every line must carry every
    rail of the log: a line that lacks one (or has none) is an error naming its line number. Raises UserError.
    """
    path = Path(path)
    check_interval_ms(interval_ms)
    try:
        text = path.read_text(errors="replace")
    except OSError as exc:
        raise UserError(f"cannot read tegrastats log {path}: {exc.strerror or exc}") from None
    lines: list[tuple[int, Line]] = []
    for number, raw in enumerate(text.splitlines(), start=1):
        if not raw.strip():
            continue
        try:
            line = parse_line(raw)
        except ValueError as exc:
            raise UserError(f"{path}:{number}: {exc}") from None
        if not line.rails_w:
            raise UserError(f"{path}:{number}: no power rails on this line — is it tegrastats output? (some boards' "
                            "tegrastats print none)")
        lines.append((number, line))
    if not lines:
        raise UserError(f"{path} has no tegrastats lines")
    first_number, first = lines[0]
    rail_names: list[str] = list(first.rails_w)
    for number, line in lines[1:]:
        for rail in line.rails_w:
            if rail not in rail_names:
                raise UserError(f"{path}:{number}: rail {rail} is not on line {first_number}: every line must carry "
                                "the same rails")
        missing = [r for r in rail_names if r not in line.rails_w]
        if missing:
            raise UserError(f"{path}:{number}: rail {missing[0]} is missing (it is on line {first_number}): every "
                            "line must carry the same rails")
    ts, timed_by, spacing_s = _timestamps(path, lines, interval_ms)
    notes = []
    if timed_by == "date" and interval_ms is not None:
        notes.append(f"--interval {interval_ms:g} ms not used: every line of {path.name} has its own date, and the "
                     "dates time the lines")
    rails = tuple(rail_names)
    return Log(path=path, rails=rails, input_rail=railnames.find_input_rail(rails), ts=ts,
               values=[tuple(line.rails_w[r] for r in rails) for _, line in lines], timed_by=timed_by,
               interval_s=spacing_s, notes=notes, info=_nc_info(max(line.not_connected for _, line in lines)))


def _timestamps(path: Path, lines: list[tuple[int, Line]], interval_ms: float | None
                ) -> tuple[list[float], str, float | None]:
    dated = [line.date is not None for _, line in lines]
    if any(dated) and not all(dated):
        number = lines[dated.index(not dated[0])][0]
        which = "has no date but line {} has one" if dated[0] else "has a date but line {} has none"
        raise UserError(f"{path}:{number}: this line {which.format(lines[0][0])}: a log is dated throughout or "
                        "not at all")
    if not all(dated):
        spacing_s = (interval_ms if interval_ms is not None else REPLAY_INTERVAL_MS) / 1e3
        return [i * spacing_s for i in range(len(lines))], "interval", spacing_s
    dates = [line.date for _, line in lines]
    for (number, _), before, after in zip(lines[1:], dates, dates[1:]):
        if after < before:
            raise UserError(f"{path}:{number}: the date goes back in time ({after:%m-%d-%Y %H:%M:%S} after "
                            f"{before:%m-%d-%Y %H:%M:%S})")
    span_s = (dates[-1] - dates[0]).total_seconds()
    repeats = any(after == before for before, after in zip(dates, dates[1:]))
    if not repeats:
        return [(d - dates[0]).total_seconds() for d in dates], "date", None
    if interval_ms is None:
        raise UserError(f"{path} has several lines within one second and its dates have 1 s resolution: give "
                        "--interval MS, the interval tegrastats ran with")
    spacing_s = interval_ms / 1e3
    spaced_s = (len(lines) - 1) * spacing_s
    # tegrastats sleeps the interval after each line, so real spacing runs a little long; 1 s covers the dates'
    # resolution. A wrong --interval (1000 for 100) is off by far more.
    if abs(spaced_s - span_s) > 1.0 + 0.2 * max(span_s, spaced_s):
        raise UserError(f"{path}: its dates span {span_s:g} s but {len(lines)} lines at --interval "
                        f"{interval_ms:g} ms span {spaced_s:g} s: give the interval tegrastats ran with")
    return [i * spacing_s for i in range(len(lines))], "interval", spacing_s
