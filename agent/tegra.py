"""What a Jetson is and how it is set up, read from files under an injectable ``root`` (``/`` by default).

Every reader returns ``None`` (or ``(None, None)``) for a missing, unreadable or garbled file; none raises. Sources,
relative to ``root``:

- ``proc/device-tree/model`` (or ``sys/firmware/devicetree/base/model``): the board name, NUL terminated.
- ``proc/device-tree/compatible``: NUL-separated compatible strings, most specific first; the last names the SoC
  (``nvidia,tegra234``).
- ``etc/nv_tegra_release``: the L4T release line ``# R36 (release), REVISION: 4.3, GCID: ...``.
- ``var/lib/dpkg/status``: installed Debian packages (``nvidia-jetpack``, ``nvidia-l4t-core``, ``tensorrt``,
  ``libnvinfer*``, ``cuda-toolkit-*``, ``cuda-cudart-*``).
- ``usr/local/cuda/version.json`` (CUDA 11+) or ``usr/local/cuda/version.txt`` (CUDA 10): the CUDA toolkit version.
- ``var/lib/nvpmodel/status`` (``pmode:0002 fmode:quiet``) and ``etc/nvpmodel.conf`` (``< POWER_MODEL ID=0
  NAME=MAXN >``): the nvpmodel power mode, without running nvpmodel.
- ``sys/devices/system/cpu/cpu*/cpufreq/scaling_{min,max}_freq`` and ``sys/class/devfreq/<gpu>/{min,max}_freq``:
  whether jetson_clocks pinned the clocks.
- ``sys/devices/**/<addr>.nvdla<N>`` platform devices and ``proc/device-tree/**/nvdla<N>@<addr>`` nodes: DLA cores.

The one reader that can run a program, :func:`power_mode`, does so only through an injected ``runner`` (see
:func:`live_runner`), and only when nvpmodel's state file is absent.
"""

from __future__ import annotations

import json
import re
import subprocess
from collections.abc import Callable
from dataclasses import dataclass
from importlib import metadata
from pathlib import Path
from typing import Any

from dnnprof.agent import conditions
from dnnprof.shared import schema

# Runs ``nvpmodel -q`` and returns what it printed, or None when it could not.
NvpmodelRunner = Callable[[], "str | None"]

# L4T release -> JetPack release, from jetson-stats' NVIDIA_JETPACK table (rbonghi/jetson_stats
# jtop/core/jetson_variables.py, snapshot f41d5ca), which follows https://developer.nvidia.com/embedded/jetpack-archive.
# JetPack 4 and later only; entries jtop lists as ambiguous ("3.3 | 3.2.1") are left out. An L4T release not listed
# gives None, never a guess from its neighbours. Values are kept as jtop spells them ("6.1 (rev1)", "7.2 GA");
# jetpack_from_l4t reports only their version number, as the nvidia-jetpack package does ("6.1+b123" -> "6.1"), so a
# board says the same JetPack whichever of the two it was read from (the L4T release tells the revisions apart).
L4T_TO_JETPACK = {
    "39.2.0": "7.2 GA", "39.0.0": "7.2 EA", "38.4.0": "7.1",
    "38.2.2": "7.0", "38.2.1": "7.0", "38.2.0": "7.0",
    "36.5.0": "6.2.2", "36.4.7": "6.2.1", "36.4.4": "6.2.1", "36.4.3": "6.2", "36.4.2": "6.1 (rev1)", "36.4.0": "6.1",
    "36.3.0": "6.0", "36.2.0": "6.0 DP", "36.0.0": "6.0 EA",
    "35.6.4": "5.1.6", "35.6.3": "5.1.5", "35.6.2": "5.1.5", "35.6.1": "5.1.5", "35.6.0": "5.1.4", "35.5.0": "5.1.3",
    "35.4.1": "5.1.2", "35.3.1": "5.1.1", "35.3.0": "5.1.1 PRE", "35.2.1": "5.1", "35.1.0": "5.0.2 GA",
    "34.1.1": "5.0.1 DP", "34.1.0": "5.0 DP", "34.0.1": "5.0 PRE-DP",
    "32.7.6": "4.6.6", "32.7.5": "4.6.5", "32.7.4": "4.6.4", "32.7.3": "4.6.3", "32.7.2": "4.6.2", "32.7.1": "4.6.1",
    "32.6.1": "4.6", "32.5.2": "4.5.1", "32.5.1": "4.5.1", "32.5.0": "4.5", "32.4.4": "4.4.1", "32.4.3": "4.4",
    "32.4.2": "4.4 DP", "32.3.1": "4.3", "32.2.3": "4.2.3", "32.2.1": "4.2.2", "32.2.0": "4.2.1", "32.1.0": "4.2",
    "31.1.0": "4.1.1", "31.0.2": "4.1", "31.0.1": "4.0",
}

_RELEASE = re.compile(r"#\s*R(\d+)\s*\(release\)\s*,\s*REVISION:\s*(\d+(?:\.\d+)*)")
_LEADING_VERSION = re.compile(r"\d+(?:\.\d+)*")
_PMODE = re.compile(r"pmode:\s*(\d+)")
_POWER_MODEL = re.compile(r"<\s*POWER_MODEL\s+ID=(\d+)\s+NAME=([^\s>]+)\s*>")
_QUERY = re.compile(r"NV Power Mode:\s*(\S+)")
_CUDA_TXT = re.compile(r"CUDA Version\s+(\d+(?:\.\d+)*)")
_CUDA_PACKAGES = (re.compile(r"cuda-toolkit-\d+-\d+"), re.compile(r"cuda-cudart-\d+-\d+"))
_TENSORRT_PACKAGES = ("tensorrt", "libnvinfer10", "libnvinfer8", "libnvinfer7")
# Integrated GPU names: jtop's KNOWN_GPU_DEVICE_NAMES (jtop/core/gpu.py) and the compatible strings NVIDIA's
# jetson_clocks matches (gv11b Xavier, gp10b TX2, ga10b Orin, gb10b Thor).
_GPU_NAMES = {"gpu", "gv11b", "gp10b", "ga10b", "gb10b"}
_CPU = re.compile(r"cpu(\d+)")
_DLA_DEVICE = re.compile(r"[0-9a-f]+\.nvdla\d+")
_DLA_NODE = re.compile(r"nvdla\d+@[0-9a-f]+")


# --- low-level file reading ----------------------------------------------------------------------------------------


def _dt_string(path: Path) -> str | None:
    """A device-tree string property: NUL terminated (and possibly padded), so NULs and whitespace are stripped."""
    text = conditions.read_text(path, strict=True)
    if text is None:
        return None
    text = text.replace("\x00", "").strip()
    return text or None


def _dt_strings(path: Path) -> list[str] | None:
    """A device-tree string-list property (``a\\0b\\0c\\0``) as a list; None when missing or empty."""
    text = conditions.read_text(path, strict=True)
    if text is None:
        return None
    items = [item.strip() for item in text.split("\x00") if item.strip()]
    return items or None


def _int(path: Path) -> int | None:
    text = conditions.read_text(path, strict=True)
    try:
        return int(text.strip()) if text is not None else None
    except ValueError:
        return None


def _upstream_version(version: str) -> str | None:
    """The upstream part of a Debian version: ``1:10.3.0.30-1+cuda12.5`` -> ``10.3.0.30``; ``6.2+b77`` -> ``6.2``."""
    version = version.split(":", 1)[-1]
    match = _LEADING_VERSION.match(version)
    return match.group(0) if match else None


def _is_live(root: str | Path) -> bool:
    """True when ``root`` is this machine's own filesystem root (not a recorded tree)."""
    try:
        return Path(root).resolve() == Path("/").resolve()
    except OSError:
        return False


# --- identification ------------------------------------------------------------------------------------------------


def model(root: str | Path = "/") -> str | None:
    """Board name, e.g. ``"NVIDIA Jetson AGX Orin Developer Kit"``: ``proc/device-tree/model``, else
    ``sys/firmware/devicetree/base/model`` (the same file; /proc/device-tree links to it). NULs stripped (jtop
    does the same: jtop/core/common.py ``cat``)."""
    return _device_tree(root, "model", _dt_string)


def compatible(root: str | Path = "/") -> list[str] | None:
    """The device tree's root compatible list, most specific first (``proc/device-tree/compatible``, else
    ``sys/firmware/devicetree/base/compatible``)."""
    return _device_tree(root, "compatible", _dt_strings)


def _device_tree(root: str | Path, name: str, read: Callable[[Path], Any]) -> Any:
    """``read`` of the device-tree property ``name``: under /proc/device-tree, else the /sys/firmware it links to."""
    base = Path(root)
    for path in (base / "proc/device-tree" / name, base / "sys/firmware/devicetree/base" / name):
        value = read(path)
        if value is not None:
            return value
    return None


def soc(root: str | Path = "/") -> str | None:
    """The SoC: the last compatible entry without its vendor, e.g. ``"tegra234"`` (jtop takes the same element:
    jtop/core/jetson_variables.py ``get_jetson_variables``)."""
    items = compatible(root)
    if not items:
        return None
    return items[-1].split(",", 1)[-1] or None


def is_jetson(root: str | Path = "/") -> bool:
    """A Jetson: a device tree compatible with ``nvidia,tegra*``, or an L4T release file.

    The release file covers L4T containers, where Docker masks /sys/firmware and so the device tree.
    """
    items = compatible(root) or []
    if any(item.startswith("nvidia,tegra") for item in items):
        return True
    # UNVERIFIED on hardware: that an L4T container (nvcr.io/nvidia/l4t-*) keeps /etc/nv_tegra_release while the
    # device tree is hidden; assumed from Docker's default masked paths (/sys/firmware) and the l4t-base images.
    return (Path(root) / "etc/nv_tegra_release").is_file()


# --- software versions ---------------------------------------------------------------------------------------------


def installed_packages(root: str | Path = "/") -> dict[str, str]:
    """Installed Debian packages -> version, from ``var/lib/dpkg/status`` (``{}`` when absent or unreadable).

    Only stanzas whose ``Status`` ends in ``installed`` count: dpkg keeps removed packages with config files as
    ``deinstall ok config-files``, and those are not installed.
    """
    # Not strict: a stray byte in one Description must not hide every package.
    text = conditions.read_text(Path(root) / "var/lib/dpkg/status")
    if text is None:
        return {}
    out: dict[str, str] = {}
    for stanza in re.split(r"\n\s*\n", text):
        fields: dict[str, str] = {}
        for line in stanza.splitlines():
            if line[:1] in (" ", "\t"):
                continue  # continuation of a multi-line field (Description, Conffiles)
            name, sep, value = line.partition(":")
            if sep:
                fields[name.strip()] = value.strip()
        package, version, status = fields.get("Package"), fields.get("Version"), fields.get("Status", "")
        if package and version and status.split()[-1:] == ["installed"]:
            out[package] = version
    return out


def l4t(root: str | Path = "/", *, packages: dict[str, str] | None = None) -> str | None:
    """L4T release, e.g. ``"36.4.3"``: ``R<major>`` and ``REVISION: <minor.patch>`` of ``etc/nv_tegra_release``,
    else the upstream version of the installed ``nvidia-l4t-core`` package (``36.4.3-20250107174145``), as jtop does
    (jtop/core/jetson_variables.py ``get_nvidia_l4t``)."""
    text = conditions.read_text(Path(root) / "etc/nv_tegra_release", strict=True)
    match = _RELEASE.search(text) if text else None
    if match:
        return f"{match.group(1)}.{match.group(2)}"
    core = (installed_packages(root) if packages is None else packages).get("nvidia-l4t-core")
    return _upstream_version(core) if core else None


def jetpack_from_l4t(release: str | None) -> str | None:
    """JetPack version (digits and dots: ``"6.1"`` for the table's ``"6.1 (rev1)"``, ``"7.2"`` for ``"7.2 GA"``) for
    an L4T release from :data:`L4T_TO_JETPACK`; None when the release is not listed.

    ``36.4`` and ``36.4.0`` are the same release (old nv_tegra_release lines give no patch number).
    """
    if not release:
        return None
    name = L4T_TO_JETPACK.get(release)
    if name is None and len(release.split(".")) == 2:
        name = L4T_TO_JETPACK.get(f"{release}.0")
    match = _LEADING_VERSION.match(name) if name else None
    return match.group(0) if match else None


def jetpack(root: str | Path = "/", *, packages: dict[str, str] | None = None) -> str | None:
    """JetPack version, digits and dots only, e.g. ``"6.2"``: the upstream version of the installed
    ``nvidia-jetpack`` meta package (``6.2+b77``, ``5.1.2-b104``), else looked up from the L4T release (a container
    without the meta package); None when neither tells. Both give the same spelling for the same board."""
    packages = installed_packages(root) if packages is None else packages
    meta = packages.get("nvidia-jetpack")
    if meta and (version := _upstream_version(meta)):
        return version
    return jetpack_from_l4t(l4t(root, packages=packages))


def tensorrt(root: str | Path = "/", *, tensorrt_version: str | None = None,
             packages: dict[str, str] | None = None) -> str | None:
    """TensorRT version, e.g. ``"10.3.0.30"``: ``tensorrt_version`` when the backend knows it; else the installed
    ``tensorrt``, ``libnvinfer10``, ``libnvinfer8`` or ``libnvinfer7`` package (``10.3.0.30-1+cuda12.5``); else, on
    this machine's own root only, the installed ``tensorrt`` Python distribution (read from its metadata; tensorrt is
    never imported here). ``nvidia-tensorrt`` is a JetPack meta package versioned like JetPack, so it is not read.
    """
    if tensorrt_version:
        return tensorrt_version
    packages = installed_packages(root) if packages is None else packages
    for name in _TENSORRT_PACKAGES:
        if name in packages and (version := _upstream_version(packages[name])):
            return version
    if _is_live(root):
        # UNVERIFIED on hardware: JetPack's python3-libnvinfer package installing a "tensorrt" dist-info that
        # importlib.metadata finds (pip wheels do install one).
        try:
            return metadata.version("tensorrt")
        except metadata.PackageNotFoundError:
            return None
    return None


def cuda(root: str | Path = "/", *, packages: dict[str, str] | None = None) -> str | None:
    """CUDA toolkit version: ``"cuda": {"version": ...}`` of ``usr/local/cuda/version.json`` (CUDA 11 and later),
    else ``CUDA Version 10.2.300`` in ``usr/local/cuda/version.txt`` (CUDA 10), else the newest installed
    ``cuda-toolkit-X-Y`` package, else the newest ``cuda-cudart-X-Y``."""
    base = Path(root) / "usr/local/cuda"
    text = conditions.read_text(base / "version.json", strict=True)
    if text is not None:
        try:
            version = json.loads(text)["cuda"]["version"]
        except (ValueError, KeyError, TypeError):
            version = None
        if isinstance(version, str) and version.strip():
            return version.strip()
    text = conditions.read_text(base / "version.txt", strict=True)
    match = _CUDA_TXT.search(text) if text else None
    if match:
        return match.group(1)
    packages = installed_packages(root) if packages is None else packages
    for pattern in _CUDA_PACKAGES:
        found = [v for name, version in packages.items()
                 if pattern.fullmatch(name) and (v := _upstream_version(version))]
        if found:
            return max(found, key=lambda v: tuple(int(p) for p in v.split(".")))
    return None


# --- nvpmodel ------------------------------------------------------------------------------------------------------


def parse_nvpmodel_status(text: str) -> int | None:
    """The mode id in nvpmodel's state file: ``pmode:0002 fmode:quiet`` -> 2."""
    match = _PMODE.search(text)
    return int(match.group(1)) if match else None


def parse_nvpmodel_conf(text: str) -> dict[int, str]:
    """Mode names by id (``< POWER_MODEL ID=0 NAME=MAXN >``) of an nvpmodel.conf. Commented lines (``#``) are
    skipped. The boot default (``< PM_CONFIG DEFAULT=2 >``) is not read: it is not the current mode, and nothing
    reports it."""
    modes: dict[int, str] = {}
    for line in text.splitlines():
        line = line.strip()
        if line.startswith("#"):
            continue
        if match := _POWER_MODEL.match(line):
            modes.setdefault(int(match.group(1)), match.group(2))
    return modes


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
    return query_nvpmodel if _is_live(root) else None


def power_modes(root: str | Path = "/") -> dict[int, str]:
    """Every nvpmodel mode (id -> name) of ``etc/nvpmodel.conf``; ``{}`` without it."""
    text = conditions.read_text(Path(root) / "etc/nvpmodel.conf", strict=True)
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
    status = conditions.read_text(Path(root) / "var/lib/nvpmodel/status", strict=True)
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
        node = (_dt_string(entry / "device/of_node/name") or "").lower()
        compat = _dt_strings(entry / "device/of_node/compatible") or []
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
        online = conditions.read_text(cpu / "online", strict=True)
        if online is not None and online.strip() == "0":
            continue  # an offline CPU keeps stale limits
        low, high = _int(cpu / "cpufreq/scaling_min_freq"), _int(cpu / "cpufreq/scaling_max_freq")
        if low is not None and high is not None:
            pinned.append(low == high)
    for gpu in _gpu_devfreqs(base):
        low, high = _int(gpu / "min_freq"), _int(gpu / "max_freq")
        if low is not None and high is not None:
            pinned.append(low == high)
    return all(pinned) if pinned else None


# --- DLA -----------------------------------------------------------------------------------------------------------


def _dla_devices(root: Path) -> set[str] | None:
    """Names of the nvdla platform devices under a host1x device in ``sys/devices`` (``15880000.nvdla0``); None when
    no host1x device is there at all."""
    patterns = ("sys/devices/*host1x*", "sys/devices/platform/*host1x*", "sys/devices/platform/*/*host1x*")
    host1x = [path for pattern in patterns for path in root.glob(pattern) if path.is_dir()]
    if not host1x:
        return None
    found = set()
    for parent in host1x:
        try:
            found.update(entry.name for entry in parent.iterdir() if _DLA_DEVICE.fullmatch(entry.name))
        except OSError:
            continue
    return found


def _dla_nodes(root: Path) -> int | None:
    """Enabled ``nvdla<N>@<addr>`` device-tree nodes (``status`` absent, ``okay`` or ``ok``), up to three levels
    below the root node; None when the device tree cannot be read."""
    for base in (root / "proc/device-tree", root / "sys/firmware/devicetree/base"):
        if (base / "compatible").is_file():
            break
    else:
        return None
    count = 0
    for pattern in ("*", "*/*", "*/*/*"):
        for node in base.glob(pattern):
            if _DLA_NODE.fullmatch(node.name) and node.is_dir():
                status = _dt_string(node / "status")
                count += int(status is None or status in ("okay", "ok"))
    return count


def dla_cores(root: str | Path = "/") -> int | None:
    """Deep-learning accelerator cores: the nvdla platform devices under host1x in sysfs, else the enabled nvdla
    nodes of the device tree; 0 on a Jetson without any (Nano, Orin Nano), None off a Jetson or when neither can be
    read."""
    # UNVERIFIED on hardware: device names 15880000.nvdla0 / 158c0000.nvdla1 under 13e10000.host1x (Xavier),
    # 13e40000.host1x or bus@0/13e00000.host1x (Orin) follow NVIDIA's jetson_clocks `dla_get_state`, which uses the
    # same directories to call a DLA online. The Orin Nano device tree disables both nvdla nodes (NVIDIA's
    # "AGX Orin as Nano" overlay sets status = "disabled" on nvdla0@15880000 and nvdla1@158c0000). A DLA fused off
    # on a module whose device tree still enables it would be counted (its driver probe fails, the device stays).
    base = Path(root)
    if not is_jetson(base):
        return None
    devices = _dla_devices(base)
    if devices:
        return len(devices)
    nodes = _dla_nodes(base)
    if nodes is not None:
        return nodes
    return 0 if devices is not None else None


# --- everything at once --------------------------------------------------------------------------------------------


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


def facts(root: str | Path = "/", *, tensorrt_version: str | None = None,
          runner: NvpmodelRunner | None = None) -> schema.BoardFacts | None:
    """Everything above in one :class:`~dnnprof.shared.schema.BoardFacts`; None when ``root`` is not a Jetson.

    ``tensorrt_version``: the version the TensorRT backend reports, which wins over package files. ``runner``: asked
    for ``nvpmodel -q`` output when nvpmodel's state file is absent (:func:`live_runner` gives the real one).
    """
    if not is_jetson(root):
        return None
    packages = installed_packages(root)
    name, mode_id = power_mode(root, runner=runner)
    return schema.BoardFacts(
        model=model(root),
        soc=soc(root),
        l4t=l4t(root, packages=packages),
        jetpack=jetpack(root, packages=packages),
        tensorrt=tensorrt(root, tensorrt_version=tensorrt_version, packages=packages),
        cuda=cuda(root, packages=packages),
        power_mode=name,
        power_mode_id=mode_id,
        jetson_clocks=jetson_clocks(root),
        dla_cores=dla_cores(root),
    )
