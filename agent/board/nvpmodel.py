"""The board's nvpmodel configuration: every power mode, as ``/etc/nvpmodel.conf`` defines it.

The grammar (NVIDIA's nvpmodel files, L4T R35.3.1 ``nvidia-l4t-nvpmodel``; tests/data/jetson/nvpmodel/README.md):

- ``< PARAM TYPE=FILE|CLOCK NAME=X >`` then ``KEY /sys/path`` lines: what a setting named X writes where
  (``CPU_ONLINE`` cores, ``TPC_POWER_GATING``, clocks ``CPU_A78_0``, ``GPU``, ``EMC``, ``DLA0_CORE`` ...);
- ``< POWER_MODEL ID=N NAME=NAME >`` then ``PARAM KEY VALUE`` lines: the mode's settings (``CPU_ONLINE CORE_4 0``,
  ``CPU_A78_0 MAX_FREQ 1497600``, ``GPU MAX_FREQ 816000000``, ``TPC_POWER_GATING TPC_PG_MASK 240``);
- ``< PM_CONFIG DEFAULT=N >``: the mode applied at boot.

Clock values are written as they are to the sysfs file the PARAM names: kHz for the CPUs (cpufreq), Hz for the GPU,
EMC, DLA and PVA. ``-1`` means no cap; so does ``EMC MAX_FREQ 0`` (jetson_clocks and jtop apply the EMC cap only
when it is above 0). A mode whose GPU power-gating mask (``TPC_PG_MASK``) differs from the current one needs a
reboot to apply (jtop's rule; nvpmodel then asks on stdin).
"""

from __future__ import annotations

import re
from dataclasses import dataclass, field
from pathlib import Path

from .sysfs import read_text

_BLOCK = re.compile(r"<\s*(PARAM|POWER_MODEL|PM_CONFIG)\s+([^>]*)>")
_ATTR = re.compile(r"(\w+)=(\S+)")


@dataclass(frozen=True)
class Param:
    """A setting a mode can change: its type (``FILE``, ``CLOCK``) and the sysfs file of each key."""

    name: str
    type: str
    files: dict[str, str] = field(default_factory=dict)  # key (MAX_FREQ, CORE_0, TPC_PG_MASK) -> absolute path


@dataclass(frozen=True)
class Mode:
    id: int
    name: str
    default: bool = False
    settings: tuple[tuple[str, str, str], ...] = ()  # (param, key, value) as written, in order

    def value(self, param: str, key: str) -> str | None:
        return next((v for p, k, v in self.settings if p == param and k == key), None)

    @property
    def cpus_online(self) -> tuple[int, ...] | None:
        """The CPUs the mode keeps online; None when it does not say (every CPU stays as it is)."""
        cores = [(k, v) for p, k, v in self.settings if p == "CPU_ONLINE"]
        if not cores:
            return None
        return tuple(sorted(int(k.split("_")[-1]) for k, v in cores if v.strip() == "1" and k.split("_")[-1].isdigit()))

    @property
    def tpc_pg_mask(self) -> int | None:
        value = self.value("TPC_POWER_GATING", "TPC_PG_MASK")
        return int(value) if value is not None and value.lstrip("-").isdigit() else None

    def caps_hz(self) -> dict[str, int | None]:
        """Each clock's maximum in Hz (CPU values are kHz in the file); None: no cap (-1, or EMC 0)."""
        caps: dict[str, int | None] = {}
        for param, key, value in self.settings:
            if key != "MAX_FREQ" or not value.lstrip("-").isdigit():
                continue
            number = int(value)
            if number < 0 or (param == "EMC" and number == 0):
                caps[param] = None
            else:
                caps[param] = number * 1000 if param.startswith("CPU") else number
        return caps

    def needs_reboot_from(self, current: Mode | None) -> bool:
        """Whether switching from ``current`` needs a reboot: the GPU's power-gating masks differ (jtop's rule:
        jtop/core/nvpmodel.py; nvpmodel prints "Reboot required for changing to this power mode")."""
        if current is None or self.tpc_pg_mask is None or current.tpc_pg_mask is None:
            return False
        return self.tpc_pg_mask != current.tpc_pg_mask

    def to_dict(self) -> dict:
        caps = self.caps_hz()
        return {"id": self.id, "name": self.name, "default": self.default, "cpus_online": self.cpus_online,
                "caps_mhz": {k: None if v is None else v / 1e6 for k, v in caps.items()},
                "tpc_pg_mask": self.tpc_pg_mask}


@dataclass(frozen=True)
class Conf:
    modes: dict[int, Mode]
    default: int | None
    params: dict[str, Param]

    def find(self, text: str) -> Mode | None:
        """A mode by id (``"2"``) or name (``"MODE_30W"``, case-insensitive)."""
        text = text.strip()
        if text.isdigit():
            return self.modes.get(int(text))
        return next((m for m in self.modes.values() if m.name.lower() == text.lower()), None)


def parse(text: str) -> Conf:
    """Every mode, the boot default and the parameters of an nvpmodel.conf; comment lines (``#``) are skipped."""
    params: dict[str, Param] = {}
    modes: list[tuple[int, str, list[tuple[str, str, str]]]] = []
    default = None
    current: Param | list | None = None
    for raw in text.splitlines():
        line = raw.strip()
        if not line or line.startswith("#"):
            continue
        if block := _BLOCK.match(line):
            attrs = dict(_ATTR.findall(block.group(2)))
            kind = block.group(1)
            current = None
            if kind == "PARAM" and "NAME" in attrs:
                current = params.setdefault(attrs["NAME"], Param(attrs["NAME"], attrs.get("TYPE", "")))
            elif kind == "POWER_MODEL" and attrs.get("ID", "").isdigit() and "NAME" in attrs:
                current = []
                modes.append((int(attrs["ID"]), attrs["NAME"], current))
            elif kind == "PM_CONFIG" and attrs.get("DEFAULT", "").isdigit():
                default = int(attrs["DEFAULT"])
            continue
        words = line.split()
        if isinstance(current, Param) and len(words) >= 2:
            current.files[words[0]] = words[1]
        elif isinstance(current, list) and len(words) >= 3:
            current.append((words[0], words[1], words[2]))
    table: dict[int, Mode] = {}
    for mode_id, name, settings in modes:
        table.setdefault(mode_id, Mode(mode_id, name, mode_id == default, tuple(settings)))
    return Conf(table, default, params)


def read(root: str | Path = "/") -> Conf | None:
    """The board's nvpmodel configuration under ``root``; None without one (not a Jetson, or nvpmodel absent)."""
    text = read_text(Path(root) / "etc/nvpmodel.conf", strict=True)
    return parse(text) if text is not None else None
