"""What the fleet is doing now, from the messages a live view receives: presence, power, temperatures, the current
run, the last result and the failed points (how many this view has seen, and the newest) per board, plus message
rates. Thread-safe: the collector feeds it (telemetry from paho's
network thread, everything else from its writer thread); the dashboard reads it under the same lock.

The power history is kept on this host's wall clock (samples are shifted by receive time − the message's ts), so a
board with a wrong clock still draws; rates use this host's monotonic clock.
"""

from __future__ import annotations

import collections
import contextlib
import dataclasses
import threading
import time

from collections.abc import Iterator

from dnnprof.shared import schema

WINDOW_S = 60.0  # the power history a sparkline shows
RATE_WINDOW_S = 5.0  # message rates are averaged over this long


@dataclasses.dataclass
class Board:
    """One board as last seen. Numbers are None when never reported (never 0)."""

    board: str
    state: str | None = None  # online, offline, lost; None: no status seen yet
    session: int | None = None
    info: schema.BoardInfo | None = None
    # Power over the last WINDOW_S: {whole Unix second: (sum of watts, samples)} — bounded whatever the rate.
    seconds: dict[int, tuple[float, int]] = dataclasses.field(default_factory=dict)
    newest_second: int | None = None
    power_w: float | None = None  # mean of the latest telemetry batch
    power_source: str | None = None
    telemetry_seen: bool = False
    estimated: bool = False
    rails_w: dict[str, float] = dataclasses.field(default_factory=dict)
    temperatures_c: dict[str, float] = dataclasses.field(default_factory=dict)
    throttle_first: int | None = None  # the first cumulative count seen: throttling = an increase since
    throttle_events: int | None = None
    clocks: str | None = None
    power_mode: str | None = None
    run: schema.RunEvent | None = None
    run_started: float | None = None
    result: schema.Result | None = None
    failures: int = 0  # failed points seen in this view (each id once: a re-delivery is not a new failure)
    failure: schema.Failure | None = None  # the newest of them
    last_seen: float | None = None
    messages: int = 0
    drawn: dict = dataclasses.field(default_factory=dict)  # a view's cache of what it drew (e.g. the sparkline)

    @property
    def temperature_c(self) -> float | None:
        """The hottest zone now."""
        return max(self.temperatures_c.values()) if self.temperatures_c else None

    @property
    def throttled(self) -> int:
        """Throttling events since this view started."""
        if self.throttle_events is None or self.throttle_first is None:
            return 0
        return max(0, self.throttle_events - self.throttle_first)

    def warnings(self) -> list[str]:
        """What should make a user doubt this board's numbers, shortest first."""
        out = []
        no_source = (self.telemetry_seen and self.power_source is None) or (
            not self.telemetry_seen and self.info is not None and self.info.power_source is None)
        if no_source:
            out.append("no power source")
        elif self.estimated or (not self.telemetry_seen and self.info is not None and self.info.power_estimated):
            out.append("estimated")
        if self.throttled:
            out.append(f"throttling ×{self.throttled}")
        if self.clocks is not None and not clocks_locked(self.clocks):
            out.append("clocks unlocked")
        if self.result is not None and self.result.unstable:
            out.append("unstable")
        return out

    def sparkline_values(self, now: float, buckets: int) -> list[float | None]:
        """Mean power per time bucket over the last WINDOW_S seconds, oldest first; None where no sample fell."""
        sums = [0.0] * buckets
        counts = [0] * buckets
        start = now - WINDOW_S
        scale = buckets / WINDOW_S
        last = buckets - 1
        for second, (total, n) in self.seconds.items():
            i = int((second + 0.5 - start) * scale)
            if i >= 0:
                if i > last:  # stamped a hair after "now" (clock skew): the newest bucket
                    if i > buckets:
                        continue
                    i = last
                sums[i] += total
                counts[i] += n
        return [s / c if c else None for s, c in zip(sums, counts)]


def clocks_locked(clocks: str) -> bool:
    """Clocks are pinned (jetson_clocks on, or the performance governor); anything else lets them wander."""
    text = clocks.lower()
    return "jetson_clocks on" in text or "performance" in text


class Fleet:
    """Every board seen, and the message counters of the live view."""

    def __init__(self, boards: set[str] | None = None, clock=time.monotonic, wall=time.time) -> None:
        self.only = boards  # show only these boards (None: all)
        self._clock = clock
        self._wall = wall
        self._lock = threading.Lock()
        self._boards: dict[str, Board] = {}
        self._failure_ids: dict[str, set[str]] = {}  # per board: the failed points counted (failures are few)
        self.counts: collections.Counter[str] = collections.Counter()
        self.last_rejection: str | None = None
        # Messages per kind in each whole second of this host's monotonic clock, the last RATE_WINDOW_S of them.
        self._per_second: dict[int, collections.Counter] = {}

    def _board(self, name: str) -> Board:
        board = self._boards.get(name)
        if board is None:
            board = self._boards[name] = Board(name)
        return board

    def ingest(self, message: schema.Message) -> None:
        """Take one valid message (any kind)."""
        kind = schema.KIND_OF[type(message)]
        now = self._clock()
        with self._lock:
            self.counts[kind] += 1
            self.counts["received"] += 1
            second = int(now)
            bucket = self._per_second.get(second)
            if bucket is None:
                bucket = self._per_second[second] = collections.Counter()
                self._trim(now)
            bucket[kind] += 1
            # A command is the host's, addressed to the board: it says nothing about the board itself.
            if isinstance(message, schema.Command) or (self.only is not None and message.board not in self.only):
                return
            board = self._board(message.board)
            board.messages += 1
            board.last_seen = max(board.last_seen or 0.0, message.ts)
            if isinstance(message, schema.Telemetry):
                self._telemetry(board, message, self._wall())
            elif isinstance(message, schema.Status):
                # A will from an older session must not mark a board that has since reconnected as lost.
                if board.session is None or message.session >= board.session:
                    board.state, board.session = message.state, message.session
            elif isinstance(message, schema.BoardInfo):
                board.info = message
            elif isinstance(message, schema.RunEvent):
                if board.run is None or board.run.run_id != message.run_id or message.seq >= board.run.seq:
                    if board.run is None or board.run.run_id != message.run_id:
                        board.run_started = message.ts
                    board.run = message
            elif isinstance(message, schema.Failure):
                seen = self._failure_ids.setdefault(board.board, set())
                if message.id not in seen:
                    seen.add(message.id)
                    board.failures += 1
                    if board.failure is None or message.ts >= board.failure.ts:
                        board.failure = message
            elif isinstance(message, schema.Result):
                if board.result is None or message.ts >= board.result.ts:
                    board.result = message
                    if message.conditions and message.conditions.power_mode:
                        board.power_mode = message.conditions.power_mode

    def _telemetry(self, board: Board, t: schema.Telemetry, received: float) -> None:
        board.telemetry_seen = True
        board.power_source, board.estimated = t.power_source, t.estimated
        if t.power_w:
            board.power_w = sum(t.power_w) / len(t.power_w)
            # Samples go on this host's clock: a board whose clock is off (no NTP on many Jetsons) would otherwise
            # fall outside the window. The message's own ts marks "sent", received now.
            shift = received - t.ts
            seconds = board.seconds
            for i, w in enumerate(t.power_w):
                second = int(t.t0 + i * t.dt_s + shift)
                total, n = seconds.get(second, (0.0, 0))
                seconds[second] = (total + w, n + 1)
            if board.newest_second is None or second > board.newest_second:  # a new second: trim the window
                board.newest_second = second
                horizon = int(received - WINDOW_S) - 1
                for old in [s for s in seconds if s < horizon]:
                    del seconds[old]
        elif t.power_source is None:
            board.power_w = None
        board.rails_w = dict(t.rails_w)
        board.temperatures_c = dict(t.temperatures_c)
        if t.throttle_events is not None:
            if board.throttle_first is None or t.throttle_events < board.throttle_events:  # a reboot resets it
                board.throttle_first = t.throttle_events
            board.throttle_events = t.throttle_events
        board.clocks = t.clocks or board.clocks
        board.power_mode = t.power_mode or board.power_mode

    def rejected(self, topic: str, reason: str) -> None:
        """Count a message that failed validation (kept in the store by the collector)."""
        with self._lock:
            self.counts["rejected"] += 1
            self.last_rejection = f"{topic}: {reason}"

    def _trim(self, now: float) -> None:
        for second in [s for s in self._per_second if s <= now - RATE_WINDOW_S - 1]:
            del self._per_second[second]

    def rates(self) -> dict[str, float]:
        """Messages per second over the last RATE_WINDOW_S seconds, per kind and in ``all``."""
        now = self._clock()
        first = int(now - RATE_WINDOW_S)  # the window: that (partial) second to now
        span = now - first
        with self._lock:
            self._trim(now)
            kinds = sum((c for s, c in self._per_second.items() if s >= first), collections.Counter())
        out = {kind: n / span for kind, n in kinds.items()}
        out["all"] = sum(kinds.values()) / span
        return out

    def snapshot(self) -> list[Board]:
        """Copies of every board (safe to read while messages keep arriving)."""
        with self._lock:
            return [dataclasses.replace(b, seconds=dict(b.seconds), rails_w=dict(b.rails_w),
                                        temperatures_c=dict(b.temperatures_c)) for b in self._boards.values()]

    @contextlib.contextmanager
    def locked(self) -> Iterator[list[Board]]:
        """The boards themselves, with incoming messages held back until the block ends: for drawing a frame
        without copying the fleet. The collector's threads wait on the lock meanwhile (a few milliseconds; paho
        buffers in the socket), so nothing is lost."""
        with self._lock:
            yield list(self._boards.values())
