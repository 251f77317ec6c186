"""NVIDIA desktop and server GPUs through NVML (``nvidia-ml-py``, the ``nvml`` extra): one rail per GPU, the GPU board.

Energy comes from the GPU's **total-energy counter** (``nvmlDeviceGetTotalEnergyConsumption``: mJ since the driver
loaded, Volta and newer), differenced like RAPL's; where a GPU has none (``NotSupported``: Pascal and older) from its
**power samples** (``nvmlDeviceGetPowerUsage``, mW), integrated by the sampler's trapezoid rule. ``method`` says
which. What both cover is the GPU board — the GPU, its memory and the board's circuitry as NVML's documentation puts
it — not the host: ``boundary`` ``"gpu_board"``. Rails are ``gpu0``, ``gpu1``, ... by NVML index (nvidia-smi's
order, by PCI bus, which is CUDA's only with ``CUDA_DEVICE_ORDER=PCI_BUS_ID``); the total is their sum.

A GPU that answers ``NotSupported`` on both paths (a Jetson's integrated GPU, where NVML exists on JetPack 6 but
reports no power) gives no energy and is said to: left out with a note, or, when no chosen GPU has power, the source
is unavailable ("reports no power: no energy") — never 0 J.

``NvmlRaplSource`` (``nvml+rapl``) adds the CPU packages (``rapl.py``): rails ``package-0``, ..., ``gpu0``, ...,
total their sum, boundary ``"cpu_package+gpu_board"``. It is always a counter source: a GPU without an energy counter
is integrated here, per read, by the trapezoid rule.

``conditions()`` (both classes) reads what the GPUs run at now — clocks (MHz), temperature (°C) and the clock event
("throttle") reasons — for a sweep to poll during a window.

Sources: nvidia-ml-py pynvml.py (11.525.131, 12.535.77, 13.615.71): nvmlInit/nvmlShutdown, NVMLError and its
per-code subclasses, nvmlDeviceGetTotalEnergyConsumption (c_uint64 mJ), nvmlDeviceGetPowerUsage (c_uint mW),
nvmlDeviceGetClockInfo, nvmlDeviceGetTemperature, nvmlDeviceGetCurrentClocksEventReasons (12.535 and newer, driver
535 and newer) / nvmlDeviceGetCurrentClocksThrottleReasons (deprecated); NVML's API reference for
nvmlDeviceGetPowerUsage ("On Ampere (except GA100) or newer GPUs, the API returns power averaged over 1 sec
interval"); Zeus (zeus/device/gpu/nvidia.py: the counter on Volta and newer, else polled power).
"""

from __future__ import annotations

import threading
import time
from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Any

from .base import PowerSource, SourceUnavailable
from .rapl import RaplSource

# The clock event (throttle) reason bits: nvmlClocksEventReason* = nvmlClocksThrottleReason* (pynvml 13.615.71
# L2190-2226); board_limit and reliability exist as nvmlClocksThrottleReason* only, from 13.x.
REASON_BITS = {0x1: "gpu_idle", 0x2: "applications_clocks_setting", 0x4: "sw_power_cap", 0x8: "hw_slowdown",
               0x10: "sync_boost", 0x20: "sw_thermal_slowdown", 0x40: "hw_thermal_slowdown",
               0x80: "hw_power_brake_slowdown", 0x100: "display_clock_setting", 0x200: "board_limit",
               0x400: "reliability"}
# Reasons that do not hold the clocks below what was asked for: an idle GPU, clocks the user set.
NOT_THROTTLING = frozenset({"gpu_idle", "applications_clocks_setting"})
CLOCK_DOMAINS = (("graphics", "NVML_CLOCK_GRAPHICS"), ("sm", "NVML_CLOCK_SM"), ("mem", "NVML_CLOCK_MEM"))
AMPERE = 7  # NVML_DEVICE_ARCH_AMPERE
JETSON_HINT = "on a Jetson read the board's rails with ina3221, jtop or tegrastats"
INSTALL_HINT = "pip install 'dnnprof[nvml]' (nvidia-ml-py)"
clock = time.monotonic  # the sampler's clock, for integrating GPU power in NvmlRaplSource (tests replace it)


@dataclass
class GpuConditions:
    """What the GPUs run at, read once (``conditions()``): keys name the GPU by its rail (``gpu0``)."""

    clocks_mhz: dict[str, float] = field(default_factory=dict)  # "gpu0:graphics", "gpu0:sm", "gpu0:mem"
    temperatures_c: dict[str, float] = field(default_factory=dict)  # "gpu0": the GPU die (NVML_TEMPERATURE_GPU)
    # reasons holding a GPU's clocks down now (idle and user-set clocks are not throttling): "nvml_sw_power_cap:gpu0"
    throttle_reasons: list[str] = field(default_factory=list)
    clock_event_reasons: dict[str, list[str]] = field(default_factory=dict)  # every active reason, per GPU
    unreadable: list[str] = field(default_factory=list)  # what a GPU does not report: "gpu0:temperature"


def parse_gpus(arg: str | Sequence[int] | None) -> list[int] | None:
    """``"0"``, ``"0,2"`` → NVML indices; None or ``""``: every GPU. SourceUnavailable for anything else."""
    if arg is None or (isinstance(arg, str) and not arg.strip()):
        return None
    parts = [p.strip() for p in arg.split(",")] if isinstance(arg, str) else list(arg)
    try:
        indices = [int(p) for p in parts]
    except (TypeError, ValueError):
        indices = []
    if not indices or any(i < 0 for i in indices) or any(isinstance(p, str) and not p.isdigit() for p in parts):
        raise SourceUnavailable(f"GPU index {arg!r} is not valid: give nvml:INDEX or nvml:INDEX,INDEX (NVML's "
                                "order, as nvidia-smi lists the GPUs)")
    if len(set(indices)) != len(indices):
        raise SourceUnavailable(f"GPU index {arg!r} names a GPU twice")
    return indices


def _load() -> Any:
    try:
        import pynvml
    except ImportError:
        raise SourceUnavailable(f"nvidia-ml-py is not installed: {INSTALL_HINT}") from None
    return pynvml


def _code(lib: Any, exc: Exception, name: str) -> bool:
    """Whether NVML error ``exc`` is ``NVML_ERROR_<name>`` (a constant an older pynvml may lack)."""
    return getattr(exc, "value", None) == getattr(lib, f"NVML_ERROR_{name}", object())


def _init_error(lib: Any, exc: Exception) -> str:
    if _code(lib, exc, "LIBRARY_NOT_FOUND"):
        return f"no NVIDIA driver here: libnvidia-ml.so.1 was not found ({exc}); {JETSON_HINT}"
    if _code(lib, exc, "DRIVER_NOT_LOADED"):
        return f"the NVIDIA kernel driver is not loaded ({exc})"
    if _code(lib, exc, "NO_PERMISSION"):
        return f"no permission to use NVML ({exc}): the agent's user needs access to /dev/nvidia*"
    if _code(lib, exc, "LIB_RM_VERSION_MISMATCH"):
        return f"NVML and the loaded kernel driver differ in version ({exc}): reload the driver or reboot"
    return f"nvmlInit failed: {exc}"


@dataclass
class _Gpu:
    index: int
    rail: str
    name: str
    handle: Any
    architecture: int | None
    counter_error: str | None  # why the energy counter cannot be read; None: it can
    power_error: str | None  # why power samples cannot be read; None: they can
    reasons_fn: str | None = "nvmlDeviceGetCurrentClocksEventReasons"  # falls back once to ...ThrottleReasons


class NvmlSource(PowerSource):
    """``nvml[:INDEX[,INDEX]]``: GPU board energy per GPU, from the energy counter or, lacking it, power samples."""

    name = "nvml"
    boundary = "gpu_board"
    estimated = False
    quantity = "energy_j"  # set to "power_w" on a source that reads power samples
    # UNVERIFIED on hardware: how often NVML's counter and power reading change, and what a call costs
    # (bench/nvml_check.py measures both); 50 Hz is a guess that a counter of ~1 mJ resolution is read often enough.
    period_s = 0.02

    def __init__(self, gpus: str | Sequence[int] | None = None, *, use_counter: bool = True) -> None:
        indices = parse_gpus(gpus)
        lib = _load()
        try:
            lib.nvmlInit()
        except lib.NVMLError as exc:
            raise SourceUnavailable(_init_error(lib, exc)) from None
        self._lib = lib
        self._open = True
        self.notes: list[str] = []
        self.info: list[str] = []
        try:
            self._setup(indices, use_counter)
        except BaseException:
            self.close()
            raise
        self._lock = threading.Lock()

    # -- opening ------------------------------------------------------------------------------------------------------

    def _setup(self, indices: list[int] | None, use_counter: bool) -> None:
        lib = self._lib
        try:
            count = lib.nvmlDeviceGetCount()
        except lib.NVMLError as exc:
            raise SourceUnavailable(f"NVML cannot count the GPUs: {exc}") from None
        if count == 0:
            raise SourceUnavailable("NVML sees no GPU")
        for i in indices or ():
            if i >= count:
                raise SourceUnavailable(f"there is no GPU {i}: NVML sees {count} (index 0 to {count - 1})")
        gpus = []
        for i in range(count) if indices is None else indices:
            try:
                gpus.append(self._probe(i))
            except SourceUnavailable as exc:
                if indices is not None:  # a GPU the user named
                    raise
                self.notes.append(f"{exc}: left out of the total")
        if not gpus:
            raise SourceUnavailable("NVML cannot open any GPU: " + "; ".join(self.notes))
        silent = [g for g in gpus if g.counter_error and g.power_error]
        usable = [g for g in gpus if g not in silent]
        if not usable:
            said = "; ".join(f"{_label(g)}: energy counter {g.counter_error}, power {g.power_error}" for g in silent)
            which = "this GPU reports" if len(silent) == 1 else "these GPUs report"
            raise SourceUnavailable(f"{which} no power through NVML ({said}): no energy — {JETSON_HINT}")
        for g in silent:
            self.notes.append(f"{_label(g)} reports no power through NVML (energy counter {g.counter_error}, power "
                              f"{g.power_error}): no energy from it, left out of the total")
        self.counter = use_counter and all(g.counter_error is None for g in usable)
        if not self.counter:
            for g in [g for g in usable if g.power_error is not None]:
                usable.remove(g)
                self.notes.append(f"{_label(g)} has an energy counter but no power samples ({g.power_error}) while "
                                  "the others are read by power samples: left out of the total")
            if not usable:
                raise SourceUnavailable("no chosen GPU reports power samples through NVML: no energy")
            self.quantity = "power_w"
            if use_counter:
                for g in usable:
                    if g.counter_error is not None:
                        self.notes.append(f"{_label(g)} has no total-energy counter ({g.counter_error}; Volta and "
                                          "newer have one): energy is integrated from power samples")
        self._gpus = usable
        self.rails = tuple(g.rail for g in usable)
        self._last_mj = [0] * len(usable)
        self._total_mj = [0] * len(usable)
        if self.counter:
            self._last_mj = [self._energy_mj(g) for g in usable]
        for g in usable:
            self.info.append(f"{g.rail}: {g.name}, " + ("total-energy counter" if self.counter else "power samples"))
        self.method = self._describe(use_counter)

    def _probe(self, index: int) -> _Gpu:
        lib = self._lib
        try:
            handle = lib.nvmlDeviceGetHandleByIndex(index)
            name = lib.nvmlDeviceGetName(handle)
        except lib.NVMLError as exc:
            raise SourceUnavailable(f"GPU {index}: NVML cannot open it ({exc})") from None
        try:
            architecture = lib.nvmlDeviceGetArchitecture(handle)
        except (lib.NVMLError, AttributeError):  # AttributeError: a pynvml older than the function
            architecture = None
        gpu = _Gpu(index, f"gpu{index}", name, handle, architecture, None, None)
        try:
            lib.nvmlDeviceGetTotalEnergyConsumption(handle)
        except lib.NVMLError as exc:
            gpu.counter_error = _said(exc)
        try:
            lib.nvmlDeviceGetPowerUsage(handle)
        except lib.NVMLError as exc:
            gpu.power_error = _said(exc)
        return gpu

    def _describe(self, use_counter: bool) -> str:
        scope = "GPU board (the GPU, its memory and board circuitry; not the host), one rail per GPU, summed"
        if self.counter:
            return (f"NVML total-energy counter (nvmlDeviceGetTotalEnergyConsumption, mJ), differenced; {scope}; "
                    f"read every {self.period_s * 1e3:g} ms")
        why = "asked for power samples" if not use_counter else "no total-energy counter"
        text = (f"NVML power samples (nvmlDeviceGetPowerUsage, mW) every {self.period_s * 1e3:g} ms, integrated by "
                f"the trapezoid rule ({why}); {scope}")
        if any(g.architecture is not None and g.architecture >= AMPERE for g in self._gpus):
            text += ("; on Ampere and newer (except GA100) NVML's power is an average over 1 s, so a window "
                     "shorter than a few seconds is smeared")
        return text

    # -- reading ------------------------------------------------------------------------------------------------------

    def _energy_mj(self, gpu: _Gpu) -> int:
        return self._lib.nvmlDeviceGetTotalEnergyConsumption(gpu.handle)

    def read(self) -> tuple[float, ...]:
        """Counter: each GPU's energy (J) since the source opened; power samples: each GPU's power (W).
        An NVML error is raised as OSError (the sampler counts it as a failed read)."""
        lib = self._lib
        with self._lock:
            try:
                if not self.counter:
                    return tuple(lib.nvmlDeviceGetPowerUsage(g.handle) / 1e3 for g in self._gpus)
                went_back = []
                for i, g in enumerate(self._gpus):
                    now = self._energy_mj(g)
                    if now < self._last_mj[i]:  # the driver reloaded: the counter restarted
                        went_back.append(g.rail)
                    else:
                        self._total_mj[i] += now - self._last_mj[i]
                    self._last_mj[i] = now
            except lib.NVMLError as exc:
                raise OSError(f"NVML: {exc}") from exc
            if went_back:
                raise OSError(f"the energy counter of {', '.join(went_back)} went back (driver reloaded?): "
                              "this reading is dropped")
            return tuple(mj * 1e-3 for mj in self._total_mj)

    def conditions(self) -> GpuConditions:
        """Clocks (MHz), temperature (°C) and clock event reasons of every GPU now; what a GPU does not report goes
        to ``unreadable``. Cheap enough to call a few times a second alongside the sampler (NVML is thread-safe)."""
        lib = self._lib
        out = GpuConditions()
        for g in self._gpus:
            for domain, constant in CLOCK_DOMAINS:
                try:
                    out.clocks_mhz[f"{g.rail}:{domain}"] = float(lib.nvmlDeviceGetClockInfo(g.handle,
                                                                                            getattr(lib, constant)))
                except lib.NVMLError:
                    out.unreadable.append(f"{g.rail}:{domain}")
            try:
                out.temperatures_c[g.rail] = float(lib.nvmlDeviceGetTemperature(g.handle, lib.NVML_TEMPERATURE_GPU))
            except lib.NVMLError:
                out.unreadable.append(f"{g.rail}:temperature")
            mask = self._reasons(g)
            if mask is None:
                out.unreadable.append(f"{g.rail}:clock_event_reasons")
                continue
            names = reason_names(mask)
            out.clock_event_reasons[g.rail] = names
            out.throttle_reasons += [f"nvml_{name}:{g.rail}" for name in names if name not in NOT_THROTTLING]
        return out

    def _reasons(self, gpu: _Gpu) -> int | None:
        """The current clock event reason mask: ...EventReasons (pynvml 12.535+, driver 535+), else the deprecated
        ...ThrottleReasons; None when neither works."""
        lib = self._lib
        while gpu.reasons_fn is not None:
            fn = getattr(lib, gpu.reasons_fn, None)
            try:
                if fn is None:
                    raise AttributeError(gpu.reasons_fn)
                return int(fn(gpu.handle))
            except (AttributeError, lib.NVMLError) as exc:
                if isinstance(exc, lib.NVMLError) and not _code(lib, exc, "FUNCTION_NOT_FOUND"):
                    return None  # NotSupported, or a transient failure: this reading has none
                gpu.reasons_fn = ("nvmlDeviceGetCurrentClocksThrottleReasons"
                                  if gpu.reasons_fn == "nvmlDeviceGetCurrentClocksEventReasons" else None)
        return None

    def close(self) -> None:
        if self._open:
            self._open = False
            try:
                self._lib.nvmlShutdown()
            except self._lib.NVMLError:
                pass


class NvmlRaplSource(PowerSource):
    """``nvml+rapl[:INDEX[,INDEX]]``: CPU packages (RAPL) and GPU boards (NVML), one rail per part, total their sum."""

    name = "nvml+rapl"
    boundary = "cpu_package+gpu_board"
    estimated = False
    quantity = "energy_j"
    period_s = NvmlSource.period_s

    def __init__(self, gpus: str | Sequence[int] | None = None, *, rapl_root: str = "/") -> None:
        parse_gpus(gpus)  # a bad index is said before anything opens
        try:
            self.cpu = RaplSource(rapl_root)
        except SourceUnavailable as exc:
            raise SourceUnavailable(f"the CPU part: {exc}") from None
        try:
            self.gpu = NvmlSource(gpus)
        except SourceUnavailable as exc:
            self.cpu.close()
            raise SourceUnavailable(f"the GPU part: {exc}") from None
        self.notes, self.info = list(self.gpu.notes), list(self.gpu.info)
        self.rails = self.cpu.rails + self.gpu.rails
        self._integrating = self.gpu.quantity == "power_w"
        self._last: tuple[float, tuple[float, ...]] | None = None  # (time, powers) of the previous GPU reading
        self._gpu_j = [0.0] * len(self.gpu.rails)
        gpu_part = self.gpu.method or ""
        if self._integrating:
            gpu_part += "; integrated here per read into a cumulative energy"
        self.method = f"CPU packages: RAPL energy_uj counters; GPU: {gpu_part}; total = CPU packages + GPUs"
        self._lock = threading.Lock()

    def read(self) -> tuple[float, ...]:
        with self._lock:
            cpu = self.cpu.read()
            if not self._integrating:
                return cpu + self.gpu.read()
            before = clock()
            powers = self.gpu.read()
            t = (before + clock()) / 2
            if self._last is not None:
                t0, p0 = self._last
                for i, (a, b) in enumerate(zip(p0, powers)):
                    self._gpu_j[i] += (t - t0) * (a + b) / 2
            self._last = (t, powers)
            return cpu + tuple(self._gpu_j)

    def conditions(self) -> GpuConditions:
        """The GPUs' ``NvmlSource.conditions()``."""
        return self.gpu.conditions()

    def close(self) -> None:
        self.gpu.close()
        self.cpu.close()


def reason_names(mask: int) -> list[str]:
    """A clock event reason mask → its reasons' names, lowest bit first; an unknown bit as ``unknown_0x...``."""
    names, bit = [], 1
    while bit <= mask:
        if mask & bit:
            names.append(REASON_BITS.get(bit, f"unknown_{bit:#x}"))
        bit <<= 1
    return names


def _label(gpu: _Gpu) -> str:
    return f"{gpu.rail} ({gpu.name})"


def _said(exc: Exception) -> str:
    """An NVML error in words: ``"Not Supported"``."""
    text = str(exc)
    return text if text else type(exc).__name__
