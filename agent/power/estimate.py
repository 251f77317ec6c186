"""A labelled *estimate* of CPU power: assumed TDP × CPU utilisation, as CodeCarbon does without RAPL.

Utilisation comes from the busy jiffies in ``<root>/proc/stat``; the counter form
``E = TDP × busy_jiffies / (cpus × USER_HZ)`` makes it an energy counter, so it integrates like RAPL. The
default TDP is an assumption (10 W per logical CPU) and every result measured with this source is marked
estimated. Use it to compare configurations on one machine, not to quote joules.
"""

from __future__ import annotations

import math
import os
from pathlib import Path

from .base import HeldFile, PowerSource, SourceUnavailable

DEFAULT_TDP_PER_CPU_W = 10.0


class EstimateSource(PowerSource):
    name = "estimate"
    boundary = "estimate"
    estimated = True
    quantity = "energy_j"
    period_s = 0.05  # jiffies tick at USER_HZ (100 Hz): faster reads only repeat

    def __init__(self, root: str | Path = "/", tdp_w: float | None = None, user_hz: int | None = None) -> None:
        self._stat = Path(root) / "proc/stat"
        try:
            text = self._stat.read_text()
        except OSError as exc:
            raise SourceUnavailable(f"cannot read {self._stat}: {exc.strerror or exc}") from None
        self._cpus = sum(1 for line in text.splitlines() if line.startswith("cpu") and line[3:4].isdigit())
        if self._cpus == 0 or not text.startswith("cpu "):
            raise SourceUnavailable(f"{self._stat} has no aggregate cpu line")
        self._hz = user_hz or os.sysconf("SC_CLK_TCK")
        self.update_interval_s = 1.0 / self._hz
        self.tdp_w = float(tdp_w) if tdp_w is not None else DEFAULT_TDP_PER_CPU_W * self._cpus
        if not (self.tdp_w > 0 and math.isfinite(self.tdp_w)):
            raise ValueError("tdp_w must be a positive, finite number of watts")
        assumed = "" if tdp_w is not None else f" (assumed {DEFAULT_TDP_PER_CPU_W:g} W per logical CPU)"
        self.method = (
            f"estimate: TDP {self.tdp_w:g} W{assumed} x CPU utilisation of {self._cpus} CPUs from /proc/stat"
        )
        self.rails = ("cpu",)
        self._held = HeldFile(self._stat, 1024)  # the aggregate line comes first
        self._start = self._busy_jiffies(text)

    def _busy_jiffies(self, text: str) -> int:
        # user nice system idle iowait irq softirq steal [guest guest_nice are already in user/nice]
        fields = [int(v) for v in text.splitlines()[0].split()[1:9]]
        idle = fields[3] + (fields[4] if len(fields) > 4 else 0)
        return sum(fields) - idle

    def read(self) -> tuple[float, ...]:
        busy = self._busy_jiffies(self._held.read()) - self._start
        return (self.tdp_w * busy / (self._cpus * self._hz),)

    def close(self) -> None:
        self._held.close()
