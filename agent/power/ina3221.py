"""Jetson on-board INA3221 power monitors, read directly from sysfs at 100 Hz.

Devices are found under ``<root>/sys/bus/i2c/devices/*/`` by their ``name`` file, in either driver's layout:

* JetPack 5+ (upstream ``ina3221`` hwmon driver): ``<dev>/hwmon/hwmonN/``. Channel K (1..3) has ``inK_label``
  (the rail), ``inK_input`` (bus voltage, mV) and ``currK_input`` (current, mA); power is V·I. There is no power
  file. ``in4..6`` are shunt voltages and ``in7``/``curr4`` the summation channel — not rails. ``update_interval``
  (ms) says how often the chip produces a new value; reading faster only repeats it (the sampler de-duplicates).
* JetPack 4 (NVIDIA ``ina3221x`` iio driver): ``<dev>/iio:deviceN/`` with ``rail_name_K`` and ``in_powerK_input``
  (mW), K = 0..2. Reading these may need root.

The hwmon/iio index N changes between boards and boots, so it is globbed. Rails come from the label files only;
channels labelled NC are skipped (``info``: normal hardware). Total = the input rail (VDD_IN, POM_5V_IN, VIN) where
the board has one, else the sum of rails (AGX Orin), and ``boundary`` says which. A board whose label names an input
rail that cannot be read is refused (SourceUnavailable): its total must not quietly become a sum of branch rails.
Sources: Linux Documentation/hwmon/ina3221.rst and drivers/hwmon/ina3221.c; rbonghi/jetson_stats jtop/core/power.py
(discovery, NC and channel-7 skipping).
"""

from __future__ import annotations

import errno
import os
import re
from dataclasses import dataclass
from pathlib import Path

from dnnprof.agent.board.sysfs import read_text

from . import rails as railnames
from .base import HeldFile, PowerSource, SourceUnavailable

DEVICE_NAMES = ("ina3221", "ina3221x")  # hwmon driver (JetPack 5+), NVIDIA iio driver (JetPack 4)
SUM_CHANNEL = 7  # hwmon in7: sum of shunt voltages


@dataclass
class _Channel:
    """One rail: its files kept open, read as V·I (mV, mA) or as power (mW)."""

    rail: str
    where: str  # "1-0040 in1", for messages
    files: tuple[HeldFile, ...]  # (voltage mV, current mA) or (power mW,)

    def read_w(self) -> float:
        if len(self.files) == 2:
            return _int(self.files[0]) * _int(self.files[1]) / 1e6  # mV x mA = µW
        return _int(self.files[0]) / 1e3  # mW

    def close(self) -> None:
        for held in self.files:
            held.close()


def _int(held: HeldFile) -> int:
    """The integer in a sysfs file; OSError (the sampler counts a read error) when it holds something else."""
    text = held.read()
    try:
        return int(text.split()[0])
    except (ValueError, IndexError):
        raise OSError(errno.EIO, f"{held.path}: not a number: {text.strip()[:40]!r}") from None


def _field(path: Path) -> str | None:
    """A sysfs attribute's value without its newline (or NUL padding); None when it cannot be read."""
    text = read_text(path)
    return text.strip().rstrip("\x00") if text is not None else None


def _index(path: Path) -> int:
    """``hwmon12`` → 12, ``iio:device3`` → 3: numeric order, not string order."""
    digits = re.findall(r"\d+", path.name)
    return int(digits[-1]) if digits else -1


def _why(exc: BaseException) -> str:
    if isinstance(exc, OSError) and exc.strerror:
        return exc.strerror
    return str(exc) or exc.__class__.__name__


class Ina3221Source(PowerSource):
    name = "ina3221"
    estimated = False
    quantity = "power_w"
    period_s = 0.01  # 100 Hz; the chip converts every ~7 ms by default (3 channels x 2 x 1.1 ms), so few repeats

    def __init__(self, root: str | Path = "/") -> None:
        devices = Path(root) / "sys/bus/i2c/devices"
        if not devices.is_dir():
            raise SourceUnavailable(f"no I2C devices at {devices}: not a Jetson, or /sys is not visible here")
        self.notes: list[str] = []  # what a reader should look into: an unreadable or disabled rail
        self.info: list[str] = []  # what is normal for the hardware: channels labelled NC
        self._input_missing: list[str] = []  # input rails whose label was read but whose values were not
        self._denied = False  # some file could not be opened for lack of permission
        self._channels: list[_Channel] = []
        intervals_ms: list[int] = []
        found: list[str] = []
        for device in sorted(devices.iterdir()):
            kind = _field(device / "name")
            if kind not in DEVICE_NAMES:
                continue
            found.append(device.name)
            hwmons = sorted(device.glob("hwmon/hwmon*"), key=_index)
            iios = sorted(device.glob("iio:device*"), key=_index)
            for folder in hwmons:
                self._channels += self._hwmon(device.name, folder, intervals_ms)
            for folder in iios:
                self._channels += self._iio(device.name, folder)
            if not hwmons and not iios:
                self.notes.append(f"{device.name}: {kind} has neither hwmon/hwmonN/ nor iio:deviceN/")
        if not found:
            raise SourceUnavailable(f"no INA3221 power monitor under {devices} (no device named "
                                    f"{' or '.join(DEVICE_NAMES)})")
        if not self._channels:
            why = "; ".join(self.notes + self.info) or "no labelled channel"
            raise SourceUnavailable(f"INA3221 at {', '.join(found)}: no readable rail ({why}){self._root_hint()}")
        self._dedupe_names()
        self.rails = tuple(ch.rail for ch in self._channels)
        self.input_rail = railnames.find_input_rail(self.rails)
        if self.input_rail is None and self._input_missing:
            # The board has an input rail: a sum of its branches would be another quantity under the same name.
            self.close()
            raise SourceUnavailable(f"the board's input rail {'; '.join(self._input_missing)} — without it the total "
                                    f"would be a sum of branch rails, not the board's power{self._root_hint()}")
        self.boundary = railnames.boundary_of(self.input_rail)
        # Several chips may convert at different rates: de-duplicate against the slowest, since a repeat is only
        # dropped when it equals the previous value, a faster chip loses nothing real.
        self.update_interval_s = max(intervals_ms) / 1e3 if intervals_ms else None
        every = f", sensor updates every {self.update_interval_s * 1e3:g} ms" if self.update_interval_s else ""
        layout = "hwmon V x I" if any(len(ch.files) == 2 for ch in self._channels) else "iio in_power"
        self.method = (f"INA3221 sysfs ({layout}) at {', '.join(found)}: {railnames.count(len(self.rails))}{every}; "
                       f"total = {railnames.describe_total(self.input_rail)}")

    def _root_hint(self) -> str:
        if self._denied and os.geteuid() != 0:
            return " — JetPack 4's ina3221x iio files may need root: run the agent as root, or use jtop"
        return ""

    # -- discovery -------------------------------------------------------------------------------------------------

    def _skip(self, rail: str, where: str, why: str) -> None:
        """Note a labelled channel that cannot be used; remember it when its label names an input rail."""
        self.notes.append(f"skipped {rail} ({where}): {why}")
        if railnames.find_input_rail([rail]) is not None:
            self._input_missing.append(f"{rail} ({where}) {why}")

    def _open(self, where: str, rail: str, paths: list[Path]) -> _Channel | None:
        """Open a channel's files and read them once; None (with a note) when any of them fails."""
        held: list[HeldFile] = []
        try:
            for path in paths:
                held.append(HeldFile(path, 64))
            channel = _Channel(rail, where, tuple(held))
            channel.read_w()
            return channel
        except (OSError, ValueError) as exc:
            for h in held:
                h.close()
            self._denied |= isinstance(exc, PermissionError)
            self._skip(rail, where, f"cannot be read: {_why(exc)}")
            return None

    def _hwmon(self, device: str, folder: Path, intervals_ms: list[int]) -> list[_Channel]:
        """Channels of one hwmon folder (JetPack 5+), in channel order."""
        # UNVERIFIED on hardware: attribute names, units and the in7 label are the upstream driver's (Linux
        # Documentation/hwmon/ina3221.rst, drivers/hwmon/ina3221.c); that NVIDIA's L4T 35/36 kernels expose the same
        # under <dev>/hwmon/hwmonN/ is from jetson_stats core/power.py and public board logs, not a board here.
        interval = _field(folder / "update_interval")
        if interval is not None and interval.isdigit() and int(interval) > 0:
            intervals_ms.append(int(interval))
        labelled = []
        for label_file in folder.glob("in*_label"):
            match = re.fullmatch(r"in(\d+)_label", label_file.name)
            if match:
                labelled.append((int(match.group(1)), label_file))
        channels = []
        for k, label_file in sorted(labelled):
            label = _field(label_file)
            where = f"{device} in{k}"
            if label is None:
                self.notes.append(f"skipped {where}: label unreadable")
                continue
            if k == SUM_CHANNEL or railnames.is_summation(label):
                continue  # the chip's sum of shunt voltages: a sum of the others, not a rail
            if not label or railnames.not_connected(label):
                self.info.append(f"skipped {where}: not connected ({label or 'no label'})")
                continue
            if _field(folder / f"in{k}_enable") == "0":
                self._skip(label, where, f"is disabled (in{k}_enable is 0)")
                continue
            channel = self._open(where, label, [folder / f"in{k}_input", folder / f"curr{k}_input"])
            if channel is not None:
                channels.append(channel)
        return channels

    def _iio(self, device: str, folder: Path) -> list[_Channel]:
        """Channels of one ina3221x iio folder (JetPack 4), in channel order."""
        # UNVERIFIED on hardware: file names and mW units from jetson_stats core/power.py (JetPack 4 branch) and
        # public scripts reading /sys/bus/i2c/drivers/ina3221x/*/iio:device*/in_power*_input; no JP4 board here.
        named = []
        for name_file in folder.glob("rail_name_*"):
            match = re.fullmatch(r"rail_name_(\d+)", name_file.name)
            if match:
                named.append((int(match.group(1)), name_file))
        channels = []
        for k, name_file in sorted(named):
            label = _field(name_file)
            where = f"{device} {folder.name} channel {k}"
            if label is None:
                self._denied |= not os.access(name_file, os.R_OK)
                self.notes.append(f"skipped {where}: rail name unreadable")
                continue
            if not label or railnames.not_connected(label):
                self.info.append(f"skipped {where}: not connected ({label or 'no label'})")
                continue
            power = folder / f"in_power{k}_input"
            # The driver computes power itself; where a kernel lacks the file, V x I is the same quantity.
            paths = [power] if power.exists() else [folder / f"in_voltage{k}_input", folder / f"in_current{k}_input"]
            channel = self._open(where, label, paths)
            if channel is not None:
                channels.append(channel)
        return channels

    def _dedupe_names(self) -> None:
        """Two chips labelling a rail alike (never seen, but labels come from device trees): name both by device."""
        counts: dict[str, int] = {}
        for ch in self._channels:
            counts[ch.rail] = counts.get(ch.rail, 0) + 1
        for ch in self._channels:
            if counts[ch.rail] > 1:
                ch.rail = f"{ch.rail}@{ch.where.split()[0]}"

    # -- reading ---------------------------------------------------------------------------------------------------

    def read(self) -> tuple[float, ...]:
        """Instantaneous power per rail (W). OSError when a file fails: the sampler counts it and goes on."""
        # UNVERIFIED on hardware: one pread per file per reading at 100 Hz; each is a blocking I2C transaction of
        # unknown cost on a Jetson (docs/PERFORMANCE.md measures the sampler on x86 only).
        return tuple(ch.read_w() for ch in self._channels)

    def close(self) -> None:
        for ch in self._channels:
            ch.close()
