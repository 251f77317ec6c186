"""Facts about the machine the agent runs on — the board info a birth message carries, and a Jetson's facts in
one record — read under an injectable root so tests use recorded trees."""

from __future__ import annotations

import os
import platform
import socket
import time
from importlib import metadata
from pathlib import Path
from typing import Literal

from dnnprof.shared import schema, topics

from . import clocks, conditions, jetson
from .sysfs import read_text


def agent_version() -> str:
    try:
        return metadata.version("dnnprof")
    except metadata.PackageNotFoundError:
        return "unknown"


def cpu_model(root: str | Path = "/") -> str | None:
    """``model name`` (x86) or ``Hardware``/``Model`` (Arm) from ``<root>/proc/cpuinfo``."""
    text = read_text(Path(root) / "proc/cpuinfo")
    if text is None:
        return None
    for key in ("model name", "Model", "Hardware"):
        for line in text.splitlines():
            name, sep, value = line.partition(":")
            if sep and name.strip() == key and value.strip():
                return value.strip()
    return None


def memory_total_bytes(root: str | Path = "/") -> int | None:
    return conditions.system_total_bytes(root)


def default_board_id() -> str:
    return topics.slug(socket.gethostname())


def info(board: str, *, backends: dict[str, str], power_source: str | None, power_boundary: str | None,
         power_estimated: bool, session: int = 0, root: str | Path = "/",
         facts: schema.BoardFacts | None | Literal["read"] = "read") -> schema.BoardInfo:
    """What the agent knows about the machine under ``root``.

    ``facts``: the Jetson facts to report; ``"read"`` (the default) reads them under ``root`` with
    :func:`jetson_facts`, taking the TensorRT version from ``backends["tensorrt"]`` when that backend is
    there; ``None`` reports none (as off a Jetson).
    """
    if facts == "read":
        facts = jetson_facts(root, tensorrt_version=backends.get("tensorrt"), runner=clocks.live_runner(root))
    return schema.BoardInfo(
        board=board,
        ts=time.time(),
        hostname=socket.gethostname(),
        os=platform.platform(),
        arch=platform.machine(),
        cpu_model=cpu_model(root),
        cpu_count=os.cpu_count() or 1,
        memory_total_bytes=memory_total_bytes(root),
        python=platform.python_version(),
        agent_version=agent_version(),
        backends=backends,
        power_source=power_source,
        power_boundary=power_boundary,
        power_estimated=power_estimated,
        session=session,
        facts=facts,
    )


def jetson_facts(root: str | Path = "/", *, tensorrt_version: str | None = None,
          runner: clocks.NvpmodelRunner | None = None) -> schema.BoardFacts | None:
    """Everything ``jetson`` and ``clocks`` read, in one :class:`~dnnprof.shared.schema.BoardFacts`; None when
    ``root`` is not a Jetson.

    ``tensorrt_version``: the version the TensorRT backend reports, which wins over package files. ``runner``: asked
    for ``nvpmodel -q`` output when nvpmodel's state file is absent (:func:`clocks.live_runner` gives the real one).
    """
    if not jetson.is_jetson(root):
        return None
    packages = jetson.installed_packages(root)
    name, mode_id = clocks.power_mode(root, runner=runner)
    return schema.BoardFacts(
        model=jetson.model(root),
        soc=jetson.soc(root),
        l4t=jetson.l4t(root, packages=packages),
        jetpack=jetson.jetpack(root, packages=packages),
        tensorrt=jetson.tensorrt(root, tensorrt_version=tensorrt_version, packages=packages),
        cuda=jetson.cuda(root, packages=packages),
        power_mode=name,
        power_mode_id=mode_id,
        jetson_clocks=clocks.jetson_clocks(root),
        dla_cores=jetson.dla_cores(root),
    )
