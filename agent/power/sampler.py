"""Reads a power source on its own thread, timestamping every sample on the monotonic clock the profiler uses."""

from __future__ import annotations

import threading
import time
from dataclasses import dataclass

from dnnprof.agent import energy

from .base import PowerSource

clock = time.monotonic  # the one clock for power samples and inference timestamps


@dataclass
class WindowEnergy:
    energy_j: float  # all rails together
    rails_j: dict[str, float]
    samples: int  # samples inside the window
    rate_hz: float  # achieved sample rate over the whole trace


class Sampler:
    """``with Sampler(source) as s: ...`` samples until the block ends; then ``s.energy(t0, t1)``."""

    def __init__(self, source: PowerSource, period_s: float | None = None) -> None:
        self.source = source
        self.period_s = source.period_s if period_s is None else period_s
        self.ts: list[float] = []
        self.values: list[tuple[float, ...]] = []
        self.read_errors = 0
        self._lock = threading.Lock()  # ts and values grow together
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, name=f"power-{source.name}", daemon=True)

    def _sample(self) -> None:
        try:
            before = clock()
            value = self.source.read()
            # The sensor was read somewhere between the two clock readings; take the middle.
            t = (before + clock()) / 2
            with self._lock:
                self.ts.append(t)
                self.values.append(value)
        except OSError:
            self.read_errors += 1

    def _run(self) -> None:
        while not self._stop.wait(self.period_s):
            self._sample()

    def __enter__(self) -> Sampler:
        self._sample()
        self._thread.start()
        return self

    def __exit__(self, *exc) -> None:
        self._stop.set()
        self._thread.join()
        self._sample()

    def wait_past(self, t: float, timeout_s: float = 5.0) -> None:
        """Block until a sample later than ``t`` exists (so a window ending at ``t`` is covered)."""
        deadline = clock() + timeout_s
        while (not self.ts or self.ts[-1] <= t) and clock() < deadline:
            if not self._thread.is_alive():
                self._sample()
            else:
                self._stop.wait(max(0.0, min(self.period_s / 4, deadline - clock())))  # never past the timeout

    def energy(self, t0: float, t1: float) -> WindowEnergy:
        """Energy in [t0, t1] (monotonic seconds), per rail and total."""
        integrate = energy.counter_energy if self.source.quantity == "energy_j" else energy.trapezoid_energy
        with self._lock:
            ts, values = list(self.ts), list(self.values)
        rails = {rail: integrate(ts, [v[i] for v in values], t0, t1) for i, rail in enumerate(self.source.rails)}
        inside = sum(1 for t in ts if t0 <= t <= t1)
        span = ts[-1] - ts[0]
        rate = (len(ts) - 1) / span if span > 0 else 0.0
        return WindowEnergy(sum(rails.values()), rails, inside, rate)
