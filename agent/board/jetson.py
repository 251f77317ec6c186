"""What a Jetson is, read from files under an injectable ``root`` (``/`` by default).

Every reader returns ``None`` (or ``(None, None)``) for a missing, unreadable or garbled file; none raises. Sources,
relative to ``root``:

- ``proc/device-tree/model`` (or ``sys/firmware/devicetree/base/model``): the board name, NUL terminated.
- ``proc/device-tree/compatible``: NUL-separated compatible strings, most specific first; the last names the SoC
  (``nvidia,tegra234``).
- ``etc/nv_tegra_release``: the L4T release line ``# R36 (release), REVISION: 4.3, GCID: ...``.
- ``var/lib/dpkg/status``: installed Debian packages (``nvidia-jetpack``, ``nvidia-l4t-core``, ``tensorrt``,
  ``libnvinfer*``, ``cuda-toolkit-*``, ``cuda-cudart-*``).
- ``usr/local/cuda/version.json`` (CUDA 11+) or ``usr/local/cuda/version.txt`` (CUDA 10): the CUDA toolkit version.
- ``sys/devices/**/<addr>.nvdla<N>`` platform devices and ``proc/device-tree/**/nvdla<N>@<addr>`` nodes: DLA cores.

How it is set up (power mode, clocks) is ``clocks``; everything at once is ``facts.jetson_facts``.
"""

from __future__ import annotations

import json
import re
from collections.abc import Callable
from importlib import metadata
from pathlib import Path
from typing import Any

from .sysfs import dt_string, dt_strings, is_live_root, read_text

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
_CUDA_TXT = re.compile(r"CUDA Version\s+(\d+(?:\.\d+)*)")
_CUDA_PACKAGES = (re.compile(r"cuda-toolkit-\d+-\d+"), re.compile(r"cuda-cudart-\d+-\d+"))
_TENSORRT_PACKAGES = ("tensorrt", "libnvinfer10", "libnvinfer8", "libnvinfer7")
_DLA_DEVICE = re.compile(r"[0-9a-f]+\.nvdla\d+")
_DLA_NODE = re.compile(r"nvdla\d+@[0-9a-f]+")


def _upstream_version(version: str) -> str | None:
    """The upstream part of a Debian version: ``1:10.3.0.30-1+cuda12.5`` -> ``10.3.0.30``; ``6.2+b77`` -> ``6.2``."""
    version = version.split(":", 1)[-1]
    match = _LEADING_VERSION.match(version)
    return match.group(0) if match else None



# --- identification ------------------------------------------------------------------------------------------------


def model(root: str | Path = "/") -> str | None:
    """Board name, e.g. ``"NVIDIA Jetson AGX Orin Developer Kit"``: ``proc/device-tree/model``, else
    ``sys/firmware/devicetree/base/model`` (the same file; /proc/device-tree links to it). NULs stripped (jtop
    does the same: jtop/core/common.py ``cat``)."""
    return _device_tree(root, "model", dt_string)


def compatible(root: str | Path = "/") -> list[str] | None:
    """The device tree's root compatible list, most specific first (``proc/device-tree/compatible``, else
    ``sys/firmware/devicetree/base/compatible``)."""
    return _device_tree(root, "compatible", dt_strings)


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
    text = read_text(Path(root) / "var/lib/dpkg/status")
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
    text = read_text(Path(root) / "etc/nv_tegra_release", strict=True)
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
    if is_live_root(root):
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
    text = read_text(base / "version.json", strict=True)
    if text is not None:
        try:
            version = json.loads(text)["cuda"]["version"]
        except (ValueError, KeyError, TypeError):
            version = None
        if isinstance(version, str) and version.strip():
            return version.strip()
    text = read_text(base / "version.txt", strict=True)
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
                status = dt_string(node / "status")
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

