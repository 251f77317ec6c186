"""Run conditions of the machine: temperatures, thermal throttling, CPU governor, memory in use.

Every reader takes a filesystem ``root`` (``/`` by default) so tests can point it at a recorded tree. Sources:

- ``<root>/sys/class/thermal/thermal_zone*/{type,temp}``: temperature per zone, millidegrees Celsius.
- ``<root>/sys/devices/system/cpu/cpu*/thermal_throttle/{core,package}_throttle_count``: x86 throttle events.
- ``<root>/sys/class/hwmon/hwmon*/`` named ``soctherm_oc``: a Jetson's over-current / under-voltage throttle event
  counters, ``oc<N>_event_cnt`` (Orin, Thor) or ``oc<N>_irq_cnt`` (Xavier).
- ``<root>/sys/class/thermal/thermal_zone*/trip_point_<N>_{type,temp}`` and ``cdev<K>{,_trip_point}``: the trips at
  which the kernel throttles, and the cooling devices it throttles with (``cur_state``).
- ``<root>/sys/devices/system/cpu/cpu*/cpufreq/scaling_governor``: cpufreq governor per CPU.
- ``<root>/proc/<pid>/status``: ``VmRSS`` and ``VmHWM`` of a process, kB.
- ``<root>/proc/meminfo``: ``MemTotal`` and ``MemAvailable``, kB.

A file that is missing, unreadable or holds garbage never raises: the reader returns ``None`` or ``{}`` (or skips
that one entry). Only programming errors (a bad ``pid``) raise.
"""

from __future__ import annotations

import re
from dataclasses import dataclass, field
from pathlib import Path

from .sysfs import numbered, read_int, read_text

_ZONE = re.compile(r"thermal_zone(\d+)")
_CPU = re.compile(r"cpu(\d+)")
_PID = re.compile(r"\d+|self|thread-self")
_THROTTLE_FILES = ("core_throttle_count", "package_throttle_count")
_HWMON = re.compile(r"hwmon(\d+)")
_OC_COUNTER = re.compile(r"(oc\d+)_(?:event|irq)_cnt")
_TRIP_TYPE = re.compile(r"trip_point_(\d+)_type")
_CDEV = re.compile(r"cdev(\d+)")
SOCTHERM_OC = "soctherm_oc"  # hwmon name of NVIDIA's tegra19x/tegra23x/tegra234 oc-event drivers
# Trip types at which the kernel throttles: "passive" trips drive cpufreq/devfreq cooling devices, "hot" ones notify
# the platform. "active" trips start fans (not throttling) and "critical" ones shut down.
THROTTLE_TRIP_TYPES = ("passive", "hot")


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


def _x86_throttle_count(root: Path) -> int | None:
    total, found = 0, False
    for cpu in numbered(root / "sys/devices/system/cpu", _CPU):
        for name in _THROTTLE_FILES:
            value = read_int(cpu / "thermal_throttle" / name)
            if value is not None:
                total += value
                found = True
    return total if found else None


def soctherm_oc_dirs(root: str | Path = "/") -> list[Path]:
    """The hwmon directories named ``soctherm_oc`` (NVIDIA's over-current event driver), in hwmon-number order.

    The hwmon number varies between boards and boots (hwmon3 and hwmon5 seen), so the device is found by its ``name``.
    """
    return [d for d in numbered(Path(root) / "sys/class/hwmon", _HWMON)
            if (read_text(d / "name") or "").strip() == SOCTHERM_OC]


def oc_event_counts(root: str | Path = "/") -> dict[str, int]:
    """A Jetson's over-current throttle event counters, cumulative since boot: ``{"oc1": 0, "oc2": 3, "oc3": 0}``.

    Read from the ``soctherm_oc`` hwmon device: ``oc<N>_event_cnt`` on Orin (NVIDIA's ``tegra23x_oc_event.c`` in
    L4T 35, ``tegra234-oc-event.c`` in L4T 36; both 0444, so no root needed) and ``oc<N>_irq_cnt`` on Xavier
    (``tegra19x_oc_event.c``). Each read asks the BPMP firmware (``MRQ_OC_STATUS``): cheap, but not free. ``{}``
    without such a device (not a Jetson, an older kernel, or a container that hides /sys/class/hwmon).
    """
    # UNVERIFIED on hardware: OC1 = under-voltage, OC2 = average over-current, OC3 = instantaneous over-current is
    # how third parties quote NVIDIA's Orin power guide; that each counter increments once per throttling episode is
    # assumed from the driver's name for it (event_cnt), not watched on a board.
    counts: dict[str, int] = {}
    for device in soctherm_oc_dirs(root):
        try:
            names = sorted(entry.name for entry in device.iterdir())
        except OSError:
            continue
        for name in names:
            if (match := _OC_COUNTER.fullmatch(name)) and (value := read_int(device / name)) is not None:
                counts[match.group(1)] = counts.get(match.group(1), 0) + value
    return counts


def _combined(x86: int | None, oc: dict[str, int]) -> int | None:
    if x86 is None and not oc:
        return None
    return (x86 or 0) + sum(oc.values())


def throttle_count(root: str | Path = "/") -> int | None:
    """Throttle events so far: the x86 core and package thermal throttle counters over all CPUs, plus a Jetson's
    ``soctherm_oc`` over-current event counters (:func:`oc_event_counts`).

    Only a difference of two readings means anything: non-zero when the machine throttled in between. ``None`` when
    the platform reports neither (an ARM board without the oc-event driver, a VM).
    """
    base = Path(root)
    return _combined(_x86_throttle_count(base), oc_event_counts(base))


@dataclass(frozen=True)
class Trip:
    """A thermal zone's throttling trip: the zone's ``type``, its ``temp`` file and the trip temperature (°C)."""

    zone: str
    temp_path: Path
    trip_c: float
    kind: str  # "passive" or "hot"


@dataclass(frozen=True)
class CoolingDevice:
    """A cooling device bound to a throttling trip (its ``type`` and ``cur_state`` file): cpufreq or devfreq
    cooling, which lowers a clock cap while ``cur_state`` > 0. Fans sit on "active" trips and are not listed."""

    name: str
    state_path: Path


def throttle_trips(root: str | Path = "/") -> list[Trip]:
    """Every "passive" or "hot" trip point of every thermal zone whose type and trip temperature are readable, in
    zone order. Trip temperatures are millidegrees Celsius in sysfs (Linux
    Documentation/driver-api/thermal/sysfs-api.rst); a trip at or below 0 °C is a disabled one and is skipped."""
    out: list[Trip] = []
    for zone in numbered(Path(root) / "sys/class/thermal", _ZONE):
        kind = (read_text(zone / "type") or "").strip()
        if not kind:
            continue
        for trip in numbered(zone, _TRIP_TYPE):
            trip_type = (read_text(trip) or "").strip()
            milli = read_int(zone / trip.name.replace("_type", "_temp"))
            if trip_type in THROTTLE_TRIP_TYPES and milli is not None and milli > 0:
                out.append(Trip(kind, zone / "temp", milli / 1000.0, trip_type))
    return out


def throttle_cooling_devices(root: str | Path = "/") -> list[CoolingDevice]:
    """The cooling devices bound to a "passive" or "hot" trip of some zone (``thermal_zone<N>/cdev<K>`` with
    ``cdev<K>_trip_point`` naming that trip), each once. ``cdev<K>`` is a link to ``cooling_device<M>`` on a board
    (a plain copy in a recorded tree); its ``type`` names it."""
    seen: set[str] = set()
    out: list[CoolingDevice] = []
    for zone in numbered(Path(root) / "sys/class/thermal", _ZONE):
        for cdev in numbered(zone, _CDEV):
            trip = read_int(zone / f"{cdev.name}_trip_point")
            trip_type = (read_text(zone / f"trip_point_{trip}_type") or "").strip() if trip is not None else ""
            if trip_type not in THROTTLE_TRIP_TYPES:
                continue
            name = (read_text(cdev / "type") or "").strip()
            if name and name not in seen and "fan" not in name.lower():  # one device bound to two zones: once
                seen.add(name)
                out.append(CoolingDevice(name, cdev / "cur_state"))
    return out


def thermal_throttling(trips: list[Trip], devices: list[CoolingDevice]) -> list[str]:
    """The indicators that fire now: ``thermal_trip:<zone>`` for a zone at or above a throttling trip,
    ``cooling:<device>`` for a cooling device with ``cur_state`` > 0. Sorted, each once."""
    fired = set()
    for trip in trips:
        milli = read_int(trip.temp_path)
        if milli is not None and milli / 1000.0 >= trip.trip_c:
            fired.add(f"thermal_trip:{trip.zone}")
    for device in devices:
        state = read_int(device.state_path)
        if state is not None and state > 0:
            fired.add(f"cooling:{device.name}")
    return sorted(fired)


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
    """The run conditions at one instant: °C per zone, throttle events, bytes of this process and of the system.

    ``oc_events``: the ``soctherm_oc`` counters by name (``{}`` off a Jetson); their sum is part of
    ``throttle_count``."""

    temperatures_c: dict[str, float]
    throttle_count: int | None
    process_rss_bytes: int | None
    system_used_bytes: int | None
    oc_events: dict[str, int] = field(default_factory=dict)


def snapshot(root: str | Path = "/") -> Snapshot:
    """All readings at once, for this process; cheap enough (well under 1 ms) to take around every window."""
    base = Path(root)
    oc = oc_event_counts(base)
    return Snapshot(
        temperatures_c=temperatures_c(base),
        throttle_count=_combined(_x86_throttle_count(base), oc),
        process_rss_bytes=process_rss_bytes("self", base),
        system_used_bytes=system_used_bytes(base),
        oc_events=oc,
    )


def throttle_reasons(start: Snapshot, end: Snapshot) -> list[str]:
    """The counters that moved between two snapshots: ``soctherm_oc<N>`` per over-current counter that rose, and
    ``x86_thermal_throttle`` when the x86 counters did. A counter that went down (a reboot in between) is ignored."""
    reasons = [f"soctherm_{name}" for name, value in sorted(end.oc_events.items())
               if name in start.oc_events and value > start.oc_events[name]]
    if start.throttle_count is not None and end.throttle_count is not None:
        x86_start = start.throttle_count - sum(start.oc_events.values())
        x86_end = end.throttle_count - sum(end.oc_events.values())
        if x86_end > x86_start:
            reasons.append("x86_thermal_throttle")
    return reasons
