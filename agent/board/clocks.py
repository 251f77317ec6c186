"""How a board is set up to run: the nvpmodel power mode (its state file and modes, or ``nvpmodel -q`` through an
injected runner), whether jetson_clocks pinned the clocks, the CPU governor — read under an injectable ``root``.

Sources, relative to ``root``: ``var/lib/nvpmodel/status`` (``pmode:0002 fmode:quiet``) and ``etc/nvpmodel.conf``
(``< POWER_MODEL ID=0 NAME=MAXN >``); ``sys/devices/system/cpu/cpu*/cpufreq/scaling_{min,max}_freq`` and
``sys/class/devfreq/<gpu>/{min,max}_freq``. The one reader that can run a program, :func:`power_mode`, does so only
through an injected ``runner`` (see :func:`live_runner`), and only when nvpmodel's state file is absent.
"""

from __future__ import annotations

import re
import subprocess
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

from . import conditions, nvpmodel
from .jetson import is_jetson
from .sysfs import dt_string, dt_strings, is_live_root, read_int, read_text

# Runs ``nvpmodel -q`` and returns what it printed, or None when it could not.
NvpmodelRunner = Callable[[], "str | None"]

_PMODE = re.compile(r"pmode:\s*(\d+)")
_QUERY = re.compile(r"NV Power Mode:\s*(\S+)")
# Integrated GPU names: jtop's KNOWN_GPU_DEVICE_NAMES (jtop/core/gpu.py) and the compatible strings NVIDIA's
# jetson_clocks matches (gv11b Xavier, gp10b TX2, ga10b Orin, gb10b Thor).
_GPU_NAMES = {"gpu", "gv11b", "gp10b", "ga10b", "gb10b"}
_CPU = re.compile(r"cpu(\d+)")


# --- nvpmodel ------------------------------------------------------------------------------------------------------


def parse_nvpmodel_status(text: str) -> int | None:
    """The mode id in nvpmodel's state file: ``pmode:0002 fmode:quiet`` -> 2."""
    match = _PMODE.search(text)
    return int(match.group(1)) if match else None


def parse_nvpmodel_conf(text: str) -> dict[int, str]:
    """Mode names by id (``< POWER_MODEL ID=0 NAME=MAXN >``) of an nvpmodel.conf (every detail: ``nvpmodel.parse``)."""
    return {mode_id: mode.name for mode_id, mode in nvpmodel.parse(text).modes.items()}


def parse_nvpmodel_query(text: str) -> tuple[str | None, int | None]:
    """(name, id) from the output of ``nvpmodel -q``: ``NV Power Mode: 15W`` and the id on the next line (the
    parsing jtop does: jtop/core/nvpmodel.py ``nvpmodel_query``). Warnings before it (``NVPM WARN: fan mode is not
    set!``) are skipped; ``(None, None)`` when there is no such line."""
    lines = text.splitlines()
    for i, line in enumerate(lines):
        match = _QUERY.search(line)
        if match:
            following = lines[i + 1].strip() if i + 1 < len(lines) else ""
            return match.group(1), int(following) if following.isdigit() else None
    return None, None


def query_nvpmodel(timeout_s: float = 4.0) -> str | None:
    """Run ``nvpmodel -q`` on this machine and return what it printed; None when it is absent, fails or hangs.

    Used as the ``runner`` of :func:`power_mode` on a live root only (4 s timeout: jtop's COMMAND_TIMEOUT).
    """
    # UNVERIFIED on hardware: that `nvpmodel -q` answers without root (jtop runs it from its root service); if it
    # fails, the mode is reported unknown.
    try:
        done = subprocess.run(["nvpmodel", "-q"], capture_output=True, text=True, timeout=timeout_s, check=False)
    except (OSError, subprocess.SubprocessError):
        return None
    return done.stdout if done.returncode == 0 else None


def live_runner(root: str | Path) -> NvpmodelRunner | None:
    """:func:`query_nvpmodel` when ``root`` is this machine's root, None for a recorded tree (it has no nvpmodel)."""
    return query_nvpmodel if is_live_root(root) else None


def power_modes(root: str | Path = "/") -> dict[int, str]:
    """Every nvpmodel mode (id -> name) of ``etc/nvpmodel.conf``; ``{}`` without it."""
    text = read_text(Path(root) / "etc/nvpmodel.conf", strict=True)
    return parse_nvpmodel_conf(text) if text is not None else {}


def power_mode(root: str | Path = "/", *, runner: NvpmodelRunner | None = None) -> tuple[str | None, int | None]:
    """The current nvpmodel mode as (name, id), e.g. ``("15W", 0)``.

    The id comes from ``var/lib/nvpmodel/status``, where nvpmodel records the mode it last applied (``pmode:0000
    fmode:quiet``), and the name from ``etc/nvpmodel.conf``. Only when that state file is absent is ``runner`` (if
    given) asked for ``nvpmodel -q`` output. The conf's boot default (``PM_CONFIG DEFAULT``) is never taken for the
    current mode.
    """
    # UNVERIFIED on hardware: the state file's "pmode:NNNN fmode:..." format is confirmed by NVIDIA's own Isaac SDK
    # check (CheckJetsonPerformanceModel.cpp: "Format for JetPack 4.3 is: pmode:0000 fmode:quiet") and by several
    # JetPack 5/6 scripts reading it; that nvpmodel rewrites it on every mode change, including the one applied at
    # boot, is assumed from those scripts, not confirmed on a board.
    status = read_text(Path(root) / "var/lib/nvpmodel/status", strict=True)
    if status is not None:
        mode_id = parse_nvpmodel_status(status)
        if mode_id is None:
            return None, None
        return power_modes(root).get(mode_id), mode_id
    if runner is not None:
        output = runner()
        if output:
            return parse_nvpmodel_query(output)
    return None, None


# --- jetson_clocks -------------------------------------------------------------------------------------------------


def _gpu_devfreqs(root: Path) -> list[Path]:
    """The integrated GPU's devfreq directories under ``sys/class/devfreq``.

    A device counts when its device-tree node name (``device/of_node/name``, jtop's test in jtop/core/gpu.py
    ``find_igpu``) or compatible (``device/of_node/compatible``, NVIDIA jetson_clocks' ``detect_igpu_devfreq``) names
    a GPU, or when the devfreq entry itself is named after one (``57000000.gpu``, ``17000000.gv11b``,
    ``17000000.ga10b``; ``gpu-gpc-0`` on Thor).
    """
    base = root / "sys/class/devfreq"
    try:
        entries = sorted(base.iterdir())
    except OSError:
        return []
    found = []
    for entry in entries:
        node = (dt_string(entry / "device/of_node/name") or "").lower()
        compat = dt_strings(entry / "device/of_node/compatible") or []
        suffix = entry.name.rsplit(".", 1)[-1].lower()
        if (node in _GPU_NAMES or "gpu" in node or any(c.split(",")[-1] in _GPU_NAMES for c in compat)
                or suffix in _GPU_NAMES or entry.name.startswith("gpu-gpc")):
            found.append(entry)
    return found


def _cpus(root: Path) -> list[Path]:
    """``sys/devices/system/cpu/cpu<N>`` directories in numeric order."""
    try:
        names = [entry.name for entry in (root / "sys/devices/system/cpu").iterdir()]
    except OSError:
        return []
    numbered = sorted((int(m.group(1)), name) for name in names if (m := _CPU.fullmatch(name)))
    return [root / "sys/devices/system/cpu" / name for _, name in numbered]


def jetson_clocks(root: str | Path = "/") -> bool | None:
    """Whether jetson_clocks pinned the clocks: True when every online CPU's ``scaling_min_freq`` equals its
    ``scaling_max_freq`` and the GPU's devfreq ``min_freq`` equals its ``max_freq``; None off a Jetson or when none
    of those files can be read.

    jetson_clocks copies each maximum into the minimum (NVIDIA's jetson_clocks script: ``cat scaling_max_freq >
    scaling_min_freq`` per CPU, ``cat max_freq > min_freq`` for the GPU devfreq), and jtop decides "on" from the same
    equalities (jtop/core/jetson_clocks.py ``jetson_clocks_alive``). The maximum is nvpmodel's cap, not the
    hardware's ``cpuinfo_max_freq``, so in a capped mode pinned clocks sit below ``cpuinfo_max_freq``. EMC, which
    jetson_clocks also pins, is only readable in debugfs (root), so it is not checked.
    """
    # UNVERIFIED on hardware: the rule comes from jtop's and NVIDIA's jetson_clocks sources, not from reading a board
    # before and after `sudo jetson_clocks`; a governor or a user that sets min == max by hand reads as "on" too.
    base = Path(root)
    if not is_jetson(base):
        return None
    pinned: list[bool] = []
    for cpu in _cpus(base):
        online = read_text(cpu / "online", strict=True)
        if online is not None and online.strip() == "0":
            continue  # an offline CPU keeps stale limits
        low = read_int(cpu / "cpufreq/scaling_min_freq", strict=True)
        high = read_int(cpu / "cpufreq/scaling_max_freq", strict=True)
        if low is not None and high is not None:
            pinned.append(low == high)
    for gpu in _gpu_devfreqs(base):
        low, high = read_int(gpu / "min_freq", strict=True), read_int(gpu / "max_freq", strict=True)
        if low is not None and high is not None:
            pinned.append(low == high)
    return all(pinned) if pinned else None


# --- the state a point runs under ---------------------------------------------------------------------------------


@dataclass(frozen=True)
class ClockState:
    """How the board is set up just before a point: nvpmodel mode, jetson_clocks and CPU governor.

    ``jetson`` is False off a Jetson, where only the governor is known.
    """

    power_mode: str | None = None  # nvpmodel mode name, e.g. "15W"
    power_mode_id: int | None = None
    jetson_clocks: bool | None = None
    governor: str | None = None
    jetson: bool = False

    @property
    def clocks(self) -> str | None:
        """The clock policy as results word it: ``jetson_clocks on|off`` on a Jetson, else ``cpu governor X``."""
        if self.jetson_clocks is not None:
            return f"jetson_clocks {'on' if self.jetson_clocks else 'off'}"
        return f"cpu governor {self.governor}" if self.governor else None

    @property
    def idle_key(self) -> object:
        """What an idle baseline must have been measured under to be reused: idle power differs between nvpmodel
        modes and with clocks pinned or not."""
        if not self.jetson:
            return self.governor
        return (self.power_mode_id, self.power_mode, self.jetson_clocks, self.governor)


def clock_state(root: str | Path = "/", *, jetson: bool | None = None) -> ClockState:
    """The nvpmodel mode, jetson_clocks and CPU governor now; ``jetson`` None = find out with ``is_jetson``."""
    governor = conditions.cpu_governor(root)
    if not (is_jetson(root) if jetson is None else jetson):
        return ClockState(governor=governor)
    name, mode_id = power_mode(root, runner=live_runner(root))
    return ClockState(name, mode_id, jetson_clocks(root), governor, jetson=True)


