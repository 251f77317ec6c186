"""Intel/AMD RAPL package energy through the Linux powercap interface.

Reads ``<root>/sys/class/powercap/intel-rapl:N/energy_uj`` of every *package* domain (sub-domains such as core,
uncore and dram are inside the package figure; psys would double count), unwrapping each counter at
``max_energy_range_uj``. Since Linux 5.10 ``energy_uj`` is readable by root only (CVE-2020-8694), so an unreadable
domain is skipped, and a machine where none is readable has no RAPL source.
"""

from __future__ import annotations

import threading
from pathlib import Path

from .base import HeldFile, PowerSource, SourceUnavailable


class RaplSource(PowerSource):
    name = "rapl"
    boundary = "cpu_package"
    estimated = False
    quantity = "energy_j"
    period_s = 0.01  # 100 Hz; the counters themselves update about every 1 ms
    update_interval_s = 0.001

    def __init__(self, root: str | Path = "/") -> None:
        base = Path(root) / "sys/class/powercap"
        if not base.is_dir():
            raise SourceUnavailable(f"no powercap interface at {base}")
        self._files: list[HeldFile] = []
        self._max_uj: list[int] = []
        rails, skipped = [], []
        for domain in sorted(base.glob("intel-rapl:*"), key=_domain_order):
            if domain.name.count(":") != 1:
                continue  # a sub-domain (intel-rapl:0:0 is a package's core)
            try:
                label = (domain / "name").read_text().strip()
            except OSError:
                continue
            if not label.startswith("package"):
                continue
            try:
                held = HeldFile(domain / "energy_uj", 32)
                int(held.read())
                max_uj = int((domain / "max_energy_range_uj").read_text())
            except (OSError, ValueError) as exc:
                skipped.append(f"{domain.name} ({exc.__class__.__name__})")
                continue
            self._files.append(held)
            self._max_uj.append(max_uj)
            rails.append(label)
        if not self._files:
            why = f"unreadable: {', '.join(skipped)} — energy_uj needs root since Linux 5.10" if skipped else (
                "no package domain")
            raise SourceUnavailable(f"RAPL at {base}: {why}")
        self.rails = tuple(rails)
        self._last_uj = [int(f.read()) for f in self._files]
        self._total_uj = [0] * len(self._files)
        # The unwrapping keeps state between reads: two threads reading at once could each take the other's newer
        # value for a counter wrap and add a whole counter range.
        self._lock = threading.Lock()

    def read(self) -> tuple[float, ...]:
        with self._lock:
            return self._read()

    def _read(self) -> tuple[float, ...]:
        out = []
        for i, held in enumerate(self._files):
            now = int(held.read())
            delta = now - self._last_uj[i]
            if delta < 0:  # the counter wrapped at max_energy_range_uj
                delta += self._max_uj[i]
            self._last_uj[i] = now
            self._total_uj[i] += delta
            out.append(self._total_uj[i] * 1e-6)
        return tuple(out)

    def close(self) -> None:
        for held in self._files:
            held.close()


def _domain_order(path: Path) -> tuple[int, ...]:
    return tuple(int(p) for p in path.name.split(":")[1:] if p.isdigit())
