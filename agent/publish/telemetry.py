"""Live telemetry: a thread that samples total power and reads the board's temperatures, and every 1/rate seconds
sends one ``schema.Telemetry`` message holding the power samples taken since the last one (a batch, not a message
per reading). Live only: it goes out at QoS 0 and is never stored — results carry the measured figures.
"""

from __future__ import annotations

import logging
import math
import threading
import time
from collections.abc import Callable

from dnnprof.agent.board import clocks, conditions, jetson
from dnnprof.agent.measure import energy
from dnnprof.agent.measure.sampler import clock
from dnnprof.agent.measure.sink import Sink
from dnnprof.agent.power import NO_POWER, PowerSource
from dnnprof.shared import schema

log = logging.getLogger(__name__)

DEFAULT_RATE_HZ = 1.0  # messages per second
DEFAULT_SAMPLES_HZ = 10.0  # power samples per second inside the messages
MAX_HZ = 100.0  # for either: faster is no use to a dashboard, and costs the board CPU time
# How often the summaries are re-read at most (s), whatever the message rate: reading a thermal zone costs about
# 0.1 ms, and the throttle and governor files are two or three per CPU (hundreds on a many-core machine) for values
# that change rarely and only feed warnings.
TEMPERATURES_PERIOD_S = 0.5
THROTTLE_AND_CLOCKS_PERIOD_S = 5.0


class SharedSource(PowerSource):
    """``source`` behind a lock, so the sweep's Sampler and the telemetry thread can both read it.

    Readers keep state between reads — RaplSource unwraps its counters against the previous value — so two
    unsynchronised readers can each take the other's newer value for a counter wrap and add a whole counter range.
    The lock costs well under a microsecond a read; both threads must hold this same wrapper.
    """

    def __init__(self, source: PowerSource) -> None:
        self.source = source
        self.name, self.boundary, self.estimated = source.name, source.boundary, source.estimated
        self.quantity = source.quantity
        self.period_s, self.update_interval_s = source.period_s, source.update_interval_s
        self.rails, self.method, self.input_rail = source.rails, source.method, source.input_rail
        self._lock = threading.Lock()

    def read(self) -> tuple[float, ...]:
        with self._lock:
            return self.source.read()

    def conditions(self):
        return self.source.conditions()

    def close(self) -> None:
        self.source.close()


# What can be wrong with a rate, and the words that follow the value in a message.
RATE_PROBLEMS = {"not_a_number": "is not a rate", "negative": "cannot be negative", "zero": "must be above 0",
                 "too_fast": f"is too fast: at most {MAX_HZ:g} per second"}


def rate_problem(value: float, *, zero_off: bool = False) -> str | None:
    """What is wrong with ``value`` as a rate per second — a key of ``RATE_PROBLEMS`` — or None when it is fine; 0
    is "off" where ``zero_off``. The one rate rule of ``run``'s options, the service's config and ``check_hz``."""
    if not math.isfinite(value):
        return "not_a_number"
    if value < 0:
        return "negative"
    if value == 0 and not zero_off:
        return "zero"
    if value > MAX_HZ:
        return "too_fast"
    return None


def check_hz(value: float, what: str) -> float:
    """``value`` if it is a rate in (0, MAX_HZ] per second; else ValueError saying why, in one line."""
    problem = rate_problem(value)
    if problem is None:
        return value
    if problem == "too_fast":
        raise ValueError(f"{what} {value:g} per second is too fast: at most {MAX_HZ:g}")
    raise ValueError(f"{what} must be a number of times per second above 0, not {value:g}")


class TelemetryPublisher:
    """``with TelemetryPublisher(link, board, source): sweep.run(...)`` publishes telemetry while the block runs.

    One thread does everything: it reads ``source`` every sample period and every message period sends a
    ``schema.Telemetry`` through ``sink`` (an MqttLink sends it at QoS 0, untracked). The sample period is
    1/``samples_hz``, but never shorter than the sensor's update interval (faster reads only repeat a value).

    ``power_w`` of a message holds total power (all rails summed, as the result's ``power_w``), watts, one value per
    sample; sample i was taken at ``t0 + i * dt_s`` (Unix seconds). For an energy counter each value is the
    average power since the reading before it, so no energy between samples is missed; for a power sensor it is the
    reading. A message with no new sample has ``power_w == []``; so does every message without a power source,
    and then ``power_source`` is None: not measured, never zero.

    ``source`` must be the SharedSource the sweep reads too (a plain source read from two threads is not safe).
    ``root`` is the filesystem root the temperature, throttle and governor readers look under. ``mark()`` gives
    the outbox's high mark (``schema.Stream``) each message carries.
    """

    def __init__(self, sink: Sink, board: str, source: PowerSource | None, *, rate_hz: float = DEFAULT_RATE_HZ,
                 samples_hz: float = DEFAULT_SAMPLES_HZ, root: str = "/",
                 mark: Callable[[], schema.Stream] | None = None) -> None:
        source = NO_POWER if source is None else source
        if source.measures and not isinstance(source, SharedSource):
            raise TypeError("wrap the power source in SharedSource and give the sweep the same wrapper: "
                            "reading a source from two threads needs its lock")
        self.sink = sink
        self.board = board
        self.source = source
        self.root = root
        self.mark = mark  # the outbox's high mark, carried in each message so a host sees a missing tail
        self.message_period_s = 1.0 / check_hz(rate_hz, "the telemetry rate")
        interval = source.update_interval_s or 0.0
        self.sample_period_s = max(1.0 / check_hz(samples_hz, "the telemetry sample rate"), interval)
        self.sent = 0  # messages handed to the sink
        self.read_errors = 0  # power readings skipped (a transient I/O error or a garbled value)
        self.cpu_s = 0.0  # CPU time of the thread, seconds
        self._wall = (0.0, 0.0)
        self._seq = 0
        self._to_unix = 0.0  # Unix time = monotonic time + this
        # Readings of the current batch: (monotonic s, per-rail values). The first one is the batch's starting
        # point: the previous batch's last reading, carried over so that a counter's first interval is complete.
        self._readings: list[tuple[float, tuple[float, ...]]] = []
        self._temperatures_at = self._slow_at = -math.inf
        self._temperatures: dict[str, float] = {}
        self._throttle: int | None = None
        self._clocks: str | None = None
        self._power_mode: str | None = None  # nvpmodel's mode on a Jetson
        self._jetson = jetson.is_jetson(root)
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, name="telemetry", daemon=True)

    @property
    def samples_hz(self) -> float | None:
        """Power samples per second actually asked of the source (after the sensor's bound); None without one."""
        return 1.0 / self.sample_period_s if self.source.measures else None

    @property
    def cpu_fraction(self) -> float | None:
        """CPU seconds the thread used per second it ran (after ``stop()``)."""
        wall = self._wall[1] - self._wall[0]
        return self.cpu_s / wall if wall > 0 else None

    def start(self) -> TelemetryPublisher:
        self._thread.start()
        return self

    def stop(self) -> None:
        """Stop the thread (within one sensor read or message send); the samples not yet sent are dropped."""
        self._stop.set()
        if self._thread.is_alive():
            self._thread.join()

    def __enter__(self) -> TelemetryPublisher:
        return self.start()

    def __exit__(self, *exc) -> None:
        self.stop()

    def _run(self) -> None:
        cpu0, start = time.thread_time(), clock()
        self._to_unix = time.time() - start
        sample_p, message_p = self.sample_period_s, self.message_period_s
        if self.source.measures:
            self._read()  # where the first interval starts
        k = j = 1  # next sample and message are due at start + k * period: no drift from slow iterations
        next_sample = start + sample_p if self.source.measures else math.inf
        next_message = start + message_p
        while not self._stop.wait(max(0.0, min(next_sample, next_message) - clock())):
            # A sample due with a message (to within rounding) goes into that message.
            if next_sample <= next_message + 1e-6 * sample_p:
                self._read()
                k = _next_tick(k, start, sample_p)
                next_sample = start + k * sample_p
            else:
                self._publish()
                j = _next_tick(j, start, message_p)
                next_message = start + j * message_p
        self.cpu_s = time.thread_time() - cpu0
        self._wall = (start, clock())

    def _read(self) -> None:
        try:
            before = clock()
            value = self.source.read()
            t = (before + clock()) / 2  # the sensor was read somewhere in between
        except (OSError, ValueError):
            self.read_errors += 1
            return
        if len(self._readings) > 1 and t - self._readings[-1][0] > 1.5 * self.sample_period_s:
            # A stalled or failed read left a gap: send what came before it, so that within a message sample i
            # really is at t0 + i * dt_s.
            self._publish()
        self._readings.append((t, value))

    def _powers(self) -> tuple[float, list[float], dict[str, float]]:
        """(monotonic time of the first sample, total power samples W, mean W per rail) of the current batch."""
        readings = self._readings
        if len(readings) < 2:
            return clock(), [], {}
        ts = [t for t, _ in readings]
        rails = self.source.rails
        if self.source.quantity == "energy_j":
            powers = energy.interval_powers(ts, [self.source.total(v) for _, v in readings])
            span = ts[-1] - ts[0]
            rails_w = {rail: (readings[-1][1][i] - readings[0][1][i]) / span
                       for i, rail in enumerate(rails)} if span > 0 else {}
        else:
            powers = [self.source.total(v) for _, v in readings[1:]]
            n = len(readings) - 1
            rails_w = {rail: sum(v[i] for _, v in readings[1:]) / n for i, rail in enumerate(rails)}
        # Sensor noise around zero must not make the message invalid (power samples are non-negative).
        return ts[1], [max(0.0, p) for p in powers], rails_w

    def _publish(self) -> None:
        now = clock()
        if now - self._temperatures_at >= TEMPERATURES_PERIOD_S:
            self._temperatures_at = now
            self._temperatures = conditions.temperatures_c(self.root)
        if now - self._slow_at >= THROTTLE_AND_CLOCKS_PERIOD_S:
            self._slow_at = now
            self._throttle = conditions.throttle_count(self.root)
            state = clocks.clock_state(self.root, jetson=self._jetson)
            self._clocks, self._power_mode = state.clocks, state.power_mode  # as results word them
        source = self.source
        if source.measures:
            t0, powers, rails_w = self._powers()
            self._readings = self._readings[-1:]
        else:
            t0, powers, rails_w = now, [], {}
        message = schema.Telemetry(
            board=self.board, ts=time.time(), seq=self._seq, t0=t0 + self._to_unix,
            dt_s=self.sample_period_s if source.measures else 0.0, power_w=powers,
            power_source=source.name, boundary=source.boundary, estimated=source.estimated, rails_w=rails_w,
            temperatures_c=self._temperatures,
            throttle_events=self._throttle, clocks=self._clocks, power_mode=self._power_mode,
            stream=self.mark() if self.mark else None)
        self._seq += 1
        try:
            self.sink.send(message)
        except Exception as exc:  # live data: a failed send loses one message, never the sweep
            log.warning("telemetry message %d not sent: %s", message.seq, exc)
        else:
            self.sent += 1


def _next_tick(n: int, start: float, period: float) -> int:
    """The next tick number after tick ``n``; past ones are skipped when the thread fell behind (no burst)."""
    return max(n + 1, math.floor((clock() - start) / period) + 1)
