"""Run conditions of the machine: temperatures, thermal throttling, CPU governor, memory in use.

Every reader takes a filesystem ``root`` (``/`` by default) so tests can point it at a recorded tree. Sources:

- ``<root>/sys/class/thermal/thermal_zone*/{type,temp}``: temperature per zone, millidegrees Celsius.
- ``<root>/sys/devices/system/cpu/cpu*/thermal_throttle/{core,package}_throttle_count``: x86 throttle events.
- ``<root>/sys/devices/system/cpu/cpu*/cpufreq/scaling_governor``: cpufreq governor per CPU.
- ``<root>/proc/<pid>/status``: ``VmRSS`` and ``VmHWM`` of a process, kB.
- ``<root>/proc/meminfo``: ``MemTotal`` and ``MemAvailable``, kB.

A file that is missing, unreadable or holds garbage never raises: the reader returns ``None`` or ``{}`` (or skips
that one entry). Only programming errors (a bad ``pid``) raise.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from pathlib import Path

from .sysfs import numbered, read_int, read_text

_ZONE = re.compile(r"thermal_zone(\d+)")
_CPU = re.compile(r"cpu(\d+)")
_PID = re.compile(r"\d+|self|thread-self")
_THROTTLE_FILES = ("core_throttle_count", "package_throttle_count")


def temperatures_c(root: str | Path = "/") -> dict[str, float]:
    """Temperature (°C) of every thermal zone with a readable ``type`` and ``temp``, keyed by the zone's type.

    Types shared by several zones are suffixed ``-1``, ``-2``, … in zone-number order (counted over the zones whose
    type is readable, so a key does not move when a sensor starts or stops answering). Values are kept as reported,
    even the -40 °C or 100+ °C that some disabled zones give. ``{}`` when there is no thermal zone.
    """
    zones: list[tuple[str, Path]] = []
    for zone in numbered(Path(root) / "sys/class/thermal", _ZONE):
        kind = read_text(zone / "type")
        if kind is not None and (kind := kind.strip()):
            zones.append((kind, zone))
    total: dict[str, int] = {}
    for kind, _ in zones:
        total[kind] = total.get(kind, 0) + 1
    seen: dict[str, int] = {}
    out: dict[str, float] = {}
    for kind, zone in zones:
        seen[kind] = seen.get(kind, 0) + 1
        key = f"{kind}-{seen[kind]}" if total[kind] > 1 else kind
        milli = read_int(zone / "temp")
        if milli is not None and key not in out:
            out[key] = milli / 1000.0
    return out


def throttle_count(root: str | Path = "/") -> int | None:
    """Sum of the x86 core and package thermal throttle counters (events) over all CPUs.

    Only a difference of two readings means anything: non-zero when the CPU throttled in between. ``None`` when the
    platform does not report throttling (no ``thermal_throttle`` files, as on ARM and Jetsons).
    """
    total, found = 0, False
    for cpu in numbered(Path(root) / "sys/devices/system/cpu", _CPU):
        for name in _THROTTLE_FILES:
            value = read_int(cpu / "thermal_throttle" / name)
            if value is not None:
                total += value
                found = True
    return total if found else None


def cpu_governor(root: str | Path = "/") -> str | None:
    """The cpufreq governor shared by all CPUs, ``"mixed(a,b)"`` (sorted, unique) when they differ, ``None`` without
    cpufreq."""
    governors = set()
    for cpu in numbered(Path(root) / "sys/devices/system/cpu", _CPU):
        text = read_text(cpu / "cpufreq/scaling_governor")
        if text is not None and (text := text.strip()):
            governors.add(text)
    if not governors:
        return None
    if len(governors) == 1:
        return governors.pop()
    return f"mixed({','.join(sorted(governors))})"


def _kb_fields(path: Path, *names: str) -> dict[str, int]:
    """The ``Name:  123 kB`` lines of a procfs file, in bytes, for the names asked for that are present."""
    text = read_text(path)
    if text is None:
        return {}
    out: dict[str, int] = {}
    for line in text.splitlines():
        name, sep, rest = line.partition(":")
        if sep and name in names:
            parts = rest.split()
            if parts and parts[0].isdigit() and (len(parts) == 1 or parts[1] == "kB"):
                out[name] = int(parts[0]) * 1024
    return out


def _status_path(pid: int | str, root: str | Path) -> Path:
    if isinstance(pid, bool) or not isinstance(pid, (int, str)) or not _PID.fullmatch(str(pid)):
        raise ValueError(f"pid must be a non-negative int, a string of digits or 'self', not {pid!r}")
    return Path(root) / "proc" / str(pid) / "status"


def process_rss_bytes(pid: int | str = "self", root: str | Path = "/") -> int | None:
    """Resident set size (bytes) of process ``pid``: ``VmRSS``; ``None`` when unknown (no such process, kernel
    thread)."""
    return _kb_fields(_status_path(pid, root), "VmRSS").get("VmRSS")


def process_peak_rss_bytes(pid: int | str = "self", root: str | Path = "/") -> int | None:
    """Peak resident set size (bytes) of process ``pid`` since it started: ``VmHWM``; ``None`` when unknown."""
    return _kb_fields(_status_path(pid, root), "VmHWM").get("VmHWM")


def system_used_bytes(root: str | Path = "/") -> int | None:
    """Memory in use system-wide (bytes): ``MemTotal - MemAvailable``; ``None`` when either is missing.

    On a Jetson the CPU and GPU share this memory, so GPU allocations show up here.
    """
    fields = _kb_fields(Path(root) / "proc/meminfo", "MemTotal", "MemAvailable")
    if len(fields) < 2:
        return None
    return fields["MemTotal"] - fields["MemAvailable"]


def system_total_bytes(root: str | Path = "/") -> int | None:
    """Installed memory (bytes): ``MemTotal``."""
    return _kb_fields(Path(root) / "proc/meminfo", "MemTotal").get("MemTotal")


@dataclass(frozen=True)
class Snapshot:
    """The run conditions at one instant: °C per zone, throttle events, bytes of this process and of the system."""

    temperatures_c: dict[str, float]
    throttle_count: int | None
    process_rss_bytes: int | None
    system_used_bytes: int | None


def snapshot(root: str | Path = "/") -> Snapshot:
    """All readings at once, for this process; cheap enough (well under 1 ms) to take around every window."""
    return Snapshot(
        temperatures_c=temperatures_c(root),
        throttle_count=throttle_count(root),
        process_rss_bytes=process_rss_bytes("self", root),
        system_used_bytes=system_used_bytes(root),
    )
