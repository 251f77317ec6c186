"""Writes the board-fact files of the recorded Jetson trees (run once; the output is committed next to this script).

    python tests/data/jetson/make_board_facts.py

Only these subpaths of each board folder are written: proc/, etc/, var/, usr/, sys/devices/, sys/class/devfreq/.
Power-monitor files (sys/bus/i2c/...) in the same folders come from elsewhere and are left alone. Nothing is
deleted: a file this script no longer writes must be removed by hand. Device-tree properties are written as bytes
with their NUL terminators, as the kernel exposes them. Symlinks of a real sysfs (sys/class/devfreq/X ->
../../devices/.../devfreq/X, device, of_node) are plain directories here, so the trees copy anywhere.
Where each value comes from: README.md in this folder.
"""

from __future__ import annotations

from pathlib import Path

HERE = Path(__file__).parent


def dt(*items: str) -> bytes:
    """A device-tree string or string list: each item NUL terminated."""
    return b"".join(item.encode() + b"\0" for item in items)


def dpkg(*packages: tuple[str, str, str]) -> str:
    """A dpkg status excerpt: one stanza per (package, version, description), in dpkg's field order."""
    stanzas = []
    for name, version, description in packages:
        stanzas.append(
            f"Package: {name}\n"
            "Status: install ok installed\n"
            "Priority: optional\n"
            "Section: libs\n"
            "Installed-Size: 1024\n"
            "Maintainer: NVIDIA Corporation\n"
            "Architecture: arm64\n"
            f"Version: {version}\n"
            f"Description: {description}\n"
            " Recorded excerpt: the package list of a real image is far longer.\n")
    return "\n".join(stanzas)


def nvpmodel_conf(modes: dict[int, str], default: int, cpus: int) -> str:
    """An nvpmodel.conf excerpt: the header comment, one PARAM block, each POWER_MODEL block and PM_CONFIG."""
    lines = [
        "###########################################################################",
        "#",
        "# nvpmodel configuration (recorded excerpt: CLOCK/FILE parameters trimmed)",
        "#",
        "###########################################################################",
        "",
        "< PARAM TYPE=FILE NAME=CPU_ONLINE >",
        *[f"CORE_{i} /sys/devices/system/cpu/cpu{i}/online" for i in range(cpus)],
        "",
    ]
    for mode_id, name in modes.items():
        lines += [f"< POWER_MODEL ID={mode_id} NAME={name} >", *[f"CPU_ONLINE CORE_{i} 1" for i in range(cpus)], ""]
    lines += ["# mandatory section to configure the default mode", f"< PM_CONFIG DEFAULT={default} >", ""]
    return "\n".join(lines)


def cpufreq(cpus: int, *, min_khz: int, max_khz: int, hw_min_khz: int, hw_max_khz: int,
            offline: tuple[int, ...] = ()) -> dict[str, str]:
    files = {}
    for i in range(cpus):
        cpu = f"sys/devices/system/cpu/cpu{i}"
        if i:  # cpu0 cannot be taken offline on these boards and has no online file
            files[f"{cpu}/online"] = "0\n" if i in offline else "1\n"
        files[f"{cpu}/cpufreq/scaling_min_freq"] = f"{min_khz}\n"
        files[f"{cpu}/cpufreq/scaling_max_freq"] = f"{max_khz}\n"
        files[f"{cpu}/cpufreq/cpuinfo_min_freq"] = f"{hw_min_khz}\n"
        files[f"{cpu}/cpufreq/cpuinfo_max_freq"] = f"{hw_max_khz}\n"
        files[f"{cpu}/cpufreq/scaling_governor"] = "schedutil\n"
    return files


def devfreq(name: str, *, node: str, compatible: tuple[str, ...], min_hz: int, max_hz: int) -> dict[str, str | bytes]:
    base = f"sys/class/devfreq/{name}"
    files: dict[str, str | bytes] = {
        f"{base}/min_freq": f"{min_hz}\n",
        f"{base}/max_freq": f"{max_hz}\n",
        f"{base}/cur_freq": f"{max_hz if min_hz == max_hz else min_hz}\n",
        f"{base}/governor": "nvhost_podgov\n",
        f"{base}/device/of_node/name": dt(node),
    }
    if compatible:
        files[f"{base}/device/of_node/compatible"] = dt(*compatible)
    return files


def uevent(of_name: str, fullname: str, compatible: str) -> str:
    """A platform device's uevent (what /sys/devices/.../<dev>/uevent holds for a device-tree device)."""
    return (f"DRIVER=nvdla\nOF_NAME={of_name}\nOF_FULLNAME={fullname}\nOF_COMPATIBLE_0={compatible}\n"
            f"OF_COMPATIBLE_N=1\nMODALIAS=of:N{of_name}T(null)C{compatible}\n")


BOARDS: dict[str, dict[str, str | bytes]] = {
    # Jetson Nano 4GB developer kit (B01), JetPack 4.6.1 / L4T 32.7.1, MAXN, jetson_clocks ON, no DLA. TensorRT only
    # as libnvinfer8 (no `tensorrt` meta package); CUDA 10.2 has version.txt, not version.json.
    "nano-jp4": {
        "proc/device-tree/model": dt("NVIDIA Jetson Nano Developer Kit"),
        "proc/device-tree/compatible": dt("nvidia,p3449-0000-b00+p3448-0000-b00", "nvidia,jetson-nano",
                                          "nvidia,tegra210"),
        "etc/nv_tegra_release": "# R32 (release), REVISION: 7.1, GCID: 29818004, BOARD: t210ref, EABI: aarch64, "
                                "DATE: Sat Feb 19 17:05:08 UTC 2022\n",
        "var/lib/dpkg/status": dpkg(
            ("nvidia-l4t-core", "32.7.1-20220219090432", "NVIDIA Core Package"),
            ("nvidia-jetpack", "4.6.1-b110", "NVIDIA Jetpack Meta Package"),
            ("libnvinfer8", "8.2.1-1+cuda10.2", "TensorRT runtime libraries"),
            ("cuda-toolkit-10-2", "10.2.460-1", "CUDA Toolkit 10.2 meta-package"),
        ),
        "usr/local/cuda/version.txt": "CUDA Version 10.2.300\n",
        "etc/nvpmodel.conf": nvpmodel_conf({0: "MAXN", 1: "5W"}, 0, 4),
        "var/lib/nvpmodel/status": "pmode:0000\n",
        **cpufreq(4, min_khz=1479000, max_khz=1479000, hw_min_khz=102000, hw_max_khz=1479000),
        **devfreq("57000000.gpu", node="gpu", compatible=("nvidia,tegra210-gm20b", "nvidia,gm20b"),
                  min_hz=921600000, max_hz=921600000),
    },
    # Xavier NX developer kit, L4T 35.4.1 BSP with TensorRT and CUDA installed but no nvidia-jetpack meta package
    # (so JetPack comes from the L4T table: 5.1.2), MODE_20W_6CORE, jetson_clocks OFF, two DLAs.
    "xavier-nx-jp5": {
        "proc/device-tree/model": dt("NVIDIA Jetson Xavier NX Developer Kit"),
        "proc/device-tree/compatible": dt("nvidia,p3449-0000+p3668-0000", "nvidia,p3509-0000+p3668-0000",
                                          "nvidia,tegra194"),
        "proc/device-tree/host1x@13e10000/compatible": dt("nvidia,tegra194-host1x", "simple-bus"),
        "proc/device-tree/host1x@13e10000/nvdla0@15880000/compatible": dt("nvidia,tegra194-nvdla"),
        "proc/device-tree/host1x@13e10000/nvdla0@15880000/status": dt("okay"),
        "proc/device-tree/host1x@13e10000/nvdla1@158c0000/compatible": dt("nvidia,tegra194-nvdla"),
        "proc/device-tree/host1x@13e10000/nvdla1@158c0000/status": dt("okay"),
        "etc/nv_tegra_release": "# R35 (release), REVISION: 4.1, GCID: 33958178, BOARD: t186ref, EABI: aarch64, "
                                "DATE: Tue Aug  1 19:57:35 UTC 2023\n",
        "var/lib/dpkg/status": dpkg(
            ("nvidia-l4t-core", "35.4.1-20230801124926", "NVIDIA Core Package"),
            ("tensorrt", "8.5.2.2-1+cuda11.4", "Meta package for TensorRT"),
            ("libnvinfer8", "8.5.2-1+cuda11.4", "TensorRT runtime libraries"),
            ("cuda-toolkit-11-4", "11.4.19-1", "CUDA Toolkit 11.4 meta-package"),
            ("cuda-cudart-11-4", "11.4.298-1", "CUDA Runtime native Libraries"),
        ),
        "usr/local/cuda/version.json": '{\n   "cuda" : {\n      "name" : "CUDA SDK",\n      "version" : "11.4.19"\n'
                                       '   },\n   "cuda_cudart" : {\n      "name" : "CUDA Runtime (cudart)",\n'
                                       '      "version" : "11.4.298"\n   }\n}\n',
        "etc/nvpmodel.conf": nvpmodel_conf({0: "MODE_15W_2CORE", 1: "MODE_15W_4CORE", 2: "MODE_15W_6CORE",
                                            3: "MODE_10W_2CORE", 4: "MODE_10W_4CORE", 5: "MODE_10W_DESKTOP",
                                            6: "MODE_20W_2CORE", 7: "MODE_20W_4CORE", 8: "MODE_20W_6CORE"}, 2, 6),
        "var/lib/nvpmodel/status": "pmode:0008 fmode:quiet\n",
        **cpufreq(6, min_khz=1190400, max_khz=1420800, hw_min_khz=115200, hw_max_khz=1907200),
        **devfreq("17000000.gv11b", node="gv11b", compatible=("nvidia,gv11b",), min_hz=114750000,
                  max_hz=1109250000),
        "sys/devices/platform/13e10000.host1x/uevent": "OF_NAME=host1x\nOF_FULLNAME=/host1x@13e10000\n",
        "sys/devices/platform/13e10000.host1x/15880000.nvdla0/uevent": uevent(
            "nvdla0", "/host1x@13e10000/nvdla0@15880000", "nvidia,tegra194-nvdla"),
        "sys/devices/platform/13e10000.host1x/158c0000.nvdla1/uevent": uevent(
            "nvdla1", "/host1x@13e10000/nvdla1@158c0000", "nvidia,tegra194-nvdla"),
    },
    # Orin Nano 8GB developer kit (Super), JetPack 6.2 / L4T 36.4.3, 15W, jetson_clocks OFF, no DLA (both nvdla
    # nodes disabled in the device tree). `nvidia-tensorrt` and `nvidia-cuda` are JetPack meta packages versioned
    # like JetPack: readers must not take them for TensorRT or CUDA versions.
    "orin-nano-jp6": {
        "proc/device-tree/model": dt("NVIDIA Jetson Orin Nano Engineering Reference Developer Kit Super"),
        "proc/device-tree/compatible": dt("nvidia,p3768-0000+p3767-0005-super", "nvidia,p3767-0005",
                                          "nvidia,tegra234"),
        "proc/device-tree/bus@0/host1x@13e00000/compatible": dt("nvidia,tegra234-host1x"),
        "proc/device-tree/bus@0/host1x@13e00000/nvdla0@15880000/compatible": dt("nvidia,tegra234-nvdla"),
        "proc/device-tree/bus@0/host1x@13e00000/nvdla0@15880000/status": dt("disabled"),
        "proc/device-tree/bus@0/host1x@13e00000/nvdla1@158c0000/compatible": dt("nvidia,tegra234-nvdla"),
        "proc/device-tree/bus@0/host1x@13e00000/nvdla1@158c0000/status": dt("disabled"),
        "etc/nv_tegra_release": "# R36 (release), REVISION: 4.3, GCID: 38968081, BOARD: generic, EABI: aarch64, "
                                "DATE: Wed Jan  8 01:49:37 UTC 2025\n# KERNEL_VARIANT: oot\n"
                                "TARGET_USERSPACE_LIB_DIR=nvidia\n"
                                "TARGET_USERSPACE_LIB_DIR_PATH=usr/lib/aarch64-linux-gnu/nvidia\n",
        "var/lib/dpkg/status": dpkg(
            ("nvidia-cuda", "6.2+b77", "NVIDIA CUDA Meta Package"),
            ("nvidia-jetpack", "6.2+b77", "NVIDIA Jetpack Meta Package"),
            ("nvidia-l4t-core", "36.4.3-20250107174145", "NVIDIA Core Package"),
            ("nvidia-tensorrt", "6.2+b77", "NVIDIA TensorRT Meta Package"),
            ("tensorrt", "10.3.0.30-1+cuda12.5", "Meta package for TensorRT"),
            ("libnvinfer10", "10.3.0.30-1+cuda12.5", "TensorRT runtime libraries"),
            ("cuda-toolkit-12-6", "12.6.11-1", "CUDA Toolkit 12.6 meta-package"),
            ("cuda-toolkit-config-common", "12.6.77-1", "Common config package for CUDA Toolkit."),
            ("cuda-cudart-12-6", "12.6.68-1", "CUDA Runtime native Libraries"),
        ),
        "usr/local/cuda/version.json": '{\n   "cuda" : {\n      "name" : "CUDA SDK",\n      "version" : "12.6.11"\n'
                                       '   },\n   "cuda_cudart" : {\n      "name" : "CUDA Runtime (cudart)",\n'
                                       '      "version" : "12.6.68"\n   }\n}\n',
        "etc/nvpmodel.conf": nvpmodel_conf({0: "15W", 1: "25W", 2: "MAXN_SUPER", 3: "7W"}, 0, 6),
        "var/lib/nvpmodel/status": "pmode:0000 fmode:quiet\n",
        **cpufreq(6, min_khz=729600, max_khz=1497600, hw_min_khz=115200, hw_max_khz=1728000),
        **devfreq("17000000.gpu", node="gpu", compatible=("nvidia,ga10b",), min_hz=306000000, max_hz=624750000),
        "sys/devices/platform/bus@0/13e00000.host1x/uevent": "OF_NAME=host1x\nOF_FULLNAME=/bus@0/host1x@13e00000\n",
    },
    # AGX Orin 64GB developer kit, JetPack 6.0 / L4T 36.3.0 (TensorRT 8.6.2, CUDA 12.2), MAXN, jetson_clocks ON,
    # two DLAs.
    "agx-orin-jp6": {
        "proc/device-tree/model": dt("NVIDIA Jetson AGX Orin Developer Kit"),
        "proc/device-tree/compatible": dt("nvidia,p3737-0000+p3701-0005", "nvidia,p3701-0005", "nvidia,tegra234"),
        "proc/device-tree/bus@0/host1x@13e00000/compatible": dt("nvidia,tegra234-host1x"),
        "proc/device-tree/bus@0/host1x@13e00000/nvdla0@15880000/compatible": dt("nvidia,tegra234-nvdla"),
        "proc/device-tree/bus@0/host1x@13e00000/nvdla0@15880000/status": dt("okay"),
        "proc/device-tree/bus@0/host1x@13e00000/nvdla1@158c0000/compatible": dt("nvidia,tegra234-nvdla"),
        "proc/device-tree/bus@0/host1x@13e00000/nvdla1@158c0000/status": dt("okay"),
        "etc/nv_tegra_release": "# R36 (release), REVISION: 3.0, GCID: 36191598, BOARD: generic, EABI: aarch64, "
                                "DATE: Mon May  6 17:34:21 UTC 2024\n# KERNEL_VARIANT: oot\n"
                                "TARGET_USERSPACE_LIB_DIR=nvidia\n"
                                "TARGET_USERSPACE_LIB_DIR_PATH=usr/lib/aarch64-linux-gnu/nvidia\n",
        "var/lib/dpkg/status": dpkg(
            ("nvidia-jetpack", "6.0+b106", "NVIDIA Jetpack Meta Package"),
            ("nvidia-l4t-core", "36.3.0-20240506102626", "NVIDIA Core Package"),
            ("tensorrt", "8.6.2.3-1+cuda12.2", "Meta package for TensorRT"),
            ("libnvinfer8", "8.6.2.3-1+cuda12.2", "TensorRT runtime libraries"),
            ("cuda-toolkit-12-2", "12.2.12-1", "CUDA Toolkit 12.2 meta-package"),
        ),
        "usr/local/cuda/version.json": '{\n   "cuda" : {\n      "name" : "CUDA SDK",\n      "version" : "12.2.140"\n'
                                       '   }\n}\n',
        "etc/nvpmodel.conf": nvpmodel_conf({0: "MAXN", 1: "MODE_15W", 2: "MODE_30W", 3: "MODE_50W"}, 2, 12),
        "var/lib/nvpmodel/status": "pmode:0000 fmode:cool\n",
        **cpufreq(12, min_khz=2201600, max_khz=2201600, hw_min_khz=115200, hw_max_khz=2201600),
        **devfreq("17000000.gpu", node="gpu", compatible=("nvidia,ga10b",), min_hz=1300500000, max_hz=1300500000),
        "sys/devices/platform/bus@0/13e00000.host1x/uevent": "OF_NAME=host1x\nOF_FULLNAME=/bus@0/host1x@13e00000\n",
        "sys/devices/platform/bus@0/13e00000.host1x/15880000.nvdla0/uevent": uevent(
            "nvdla0", "/bus@0/host1x@13e00000/nvdla0@15880000", "nvidia,tegra234-nvdla"),
        "sys/devices/platform/bus@0/13e00000.host1x/158c0000.nvdla1/uevent": uevent(
            "nvdla1", "/bus@0/host1x@13e00000/nvdla1@158c0000", "nvidia,tegra234-nvdla"),
    },
}


def main() -> None:
    for board, files in BOARDS.items():
        for relative, content in files.items():
            path = HERE / board / relative
            path.parent.mkdir(parents=True, exist_ok=True)
            path.write_bytes(content if isinstance(content, bytes) else content.encode())
    print(f"wrote {sum(len(f) for f in BOARDS.values())} files for {', '.join(BOARDS)}")


if __name__ == "__main__":
    main()
