"""A thin fake of ``pynvml`` as nvidia-ml-py ships it (11.525 .. 13.615), for machines without an NVIDIA GPU.

It has only the members agent/power/nvml.py and bench/nvml_check.py use, each with the name, parameter names, return
type and unit of the real module in that version, and no other public member — so a call outside that surface fails
here as it would on a GPU machine. Checked against the real sources of nvidia-ml-py 11.525.131, 12.535.77 and
13.615.71 (pynvml.py; tests/agent/power/test_nvml.py holds the names, parameters and constant values recorded from
them and compares this fake to them, and to the real module where one is installed):

- errors: ``NVMLError(value)`` becomes the subclass of its code (``NVMLError_NotSupported``, ...), one subclass per
  ``NVML_ERROR_*`` constant of the version, named by ``_extractNVMLErrorsAsClasses``'s rule; ``.value`` is the code,
  ``str()`` the ``_errcode_to_string`` text, ``==`` compares codes (13.615.71 L1037-1112);
- ``nvmlInit()`` / ``nvmlShutdown()``: reference counted like the C library; a call before ``nvmlInit`` or after the
  last ``nvmlShutdown`` raises ``NVMLError_Uninitialized``; ``nvmlInit`` without a library raises
  ``NVMLError_LibraryNotFound`` (``_LoadNvmlLibrary``), without a loaded driver ``NVMLError_DriverNotLoaded``;
- ``nvmlDeviceGetCount()`` → int; ``nvmlDeviceGetHandleByIndex(index)`` → an opaque handle,
  ``NVMLError_InvalidArgument`` for an index past the count; ``nvmlDeviceGetName(handle)`` → str
  (``convertStrBytes`` decodes); ``nvmlSystemGetDriverVersion()`` → str; ``nvmlDeviceGetArchitecture(device)``
  → int (``NVML_DEVICE_ARCH_*``);
- ``nvmlDeviceGetTotalEnergyConsumption(handle)`` → int, **mJ** since the driver loaded (c_uint64; Volta and newer,
  else ``NVMLError_NotSupported``); ``nvmlDeviceGetPowerUsage(handle)`` → int, **mW** (c_uint);
- ``nvmlDeviceGetClockInfo(handle, type)`` → int MHz for ``NVML_CLOCK_GRAPHICS/SM/MEM/VIDEO``;
  ``nvmlDeviceGetTemperature(handle, sensor)`` → int °C for ``NVML_TEMPERATURE_GPU``; other values of either enum are
  ``NVMLError_InvalidArgument`` (what the C library returns), a non-int a TypeError (as ctypes' ``c_uint(x)``);
- ``nvmlDeviceGetCurrentClocksThrottleReasons(handle)`` → int bit mask (every version; deprecated from 12.535);
  ``nvmlDeviceGetCurrentClocksEventReasons(handle)`` only from 12.535, and ``NVMLError_FunctionNotFound`` with a
  driver older than 535 (the C symbol is missing: ``_nvmlGetFunctionPointer``); the ``nvmlClocksEventReason*``
  constants from 12.535, ``nvmlClocksThrottleReasonBoardLimit`` / ``Reliability`` in 13.615 (not in 12.535; the
  release in between that added them is not checked, the fake puts them at 13.0).

A device (``FakeGpu``) integrates its ``power_w`` over the fake's clock into the energy counter; with
``update_interval_s`` both the counter and the power reading change only every that many seconds (a sensor's
sample-and-hold), as NVML's do. ``errors`` makes a named function raise a given NVML code. Attributes the real module
lacks start with an underscore (``pynvml._fake``: the devices, init count, calls).
"""

from __future__ import annotations

import string
import sys
import threading
import time
import types
from collections.abc import Callable
from dataclasses import dataclass, field

RECORDED_VERSIONS = ("11.525.131", "12.535.77", "13.615.71")

# NVML_ERROR_* of 11.525.131; the later ones with the version that has them.
ERRORS = {
    "NVML_ERROR_UNINITIALIZED": 1, "NVML_ERROR_INVALID_ARGUMENT": 2, "NVML_ERROR_NOT_SUPPORTED": 3,
    "NVML_ERROR_NO_PERMISSION": 4, "NVML_ERROR_ALREADY_INITIALIZED": 5, "NVML_ERROR_NOT_FOUND": 6,
    "NVML_ERROR_INSUFFICIENT_SIZE": 7, "NVML_ERROR_INSUFFICIENT_POWER": 8, "NVML_ERROR_DRIVER_NOT_LOADED": 9,
    "NVML_ERROR_TIMEOUT": 10, "NVML_ERROR_IRQ_ISSUE": 11, "NVML_ERROR_LIBRARY_NOT_FOUND": 12,
    "NVML_ERROR_FUNCTION_NOT_FOUND": 13, "NVML_ERROR_CORRUPTED_INFOROM": 14, "NVML_ERROR_GPU_IS_LOST": 15,
    "NVML_ERROR_RESET_REQUIRED": 16, "NVML_ERROR_OPERATING_SYSTEM": 17, "NVML_ERROR_LIB_RM_VERSION_MISMATCH": 18,
    "NVML_ERROR_IN_USE": 19, "NVML_ERROR_MEMORY": 20, "NVML_ERROR_NO_DATA": 21,
    "NVML_ERROR_VGPU_ECC_NOT_SUPPORTED": 22, "NVML_ERROR_INSUFFICIENT_RESOURCES": 23,
    "NVML_ERROR_FREQ_NOT_SUPPORTED": 24, "NVML_ERROR_ARGUMENT_VERSION_MISMATCH": 25, "NVML_ERROR_DEPRECATED": 26,
    "NVML_ERROR_UNKNOWN": 999,
}
LATER_ERRORS = {"NVML_ERROR_NOT_READY": ((12, 535), 27), "NVML_ERROR_GPU_NOT_FOUND": ((13, 0), 28),
                "NVML_ERROR_INVALID_STATE": ((13, 0), 29), "NVML_ERROR_RESET_TYPE_NOT_SUPPORTED": ((13, 0), 30)}
# NVMLError._errcode_to_string (the same in the three versions); other codes go through nvmlErrorString.
ERROR_STRINGS = {
    1: "Uninitialized", 2: "Invalid Argument", 3: "Not Supported", 4: "Insufficient Permissions",
    5: "Already Initialized", 6: "Not Found", 7: "Insufficient Size", 8: "Insufficient External Power",
    9: "Driver Not Loaded", 10: "Timeout", 11: "Interrupt Request Issue", 12: "NVML Shared Library Not Found",
    13: "Function Not Found", 14: "Corrupted infoROM", 15: "GPU is lost", 16: "GPU requires restart",
    17: "The operating system has blocked the request.", 18: "RM has detected an NVML/RM version mismatch.",
    20: "Insufficient Memory", 999: "Unknown Error",
}

CLOCKS = {"NVML_CLOCK_GRAPHICS": 0, "NVML_CLOCK_SM": 1, "NVML_CLOCK_MEM": 2, "NVML_CLOCK_VIDEO": 3,
          "NVML_CLOCK_COUNT": 4}
ARCHS = {"NVML_DEVICE_ARCH_KEPLER": 2, "NVML_DEVICE_ARCH_MAXWELL": 3, "NVML_DEVICE_ARCH_PASCAL": 4,
         "NVML_DEVICE_ARCH_VOLTA": 5, "NVML_DEVICE_ARCH_TURING": 6, "NVML_DEVICE_ARCH_AMPERE": 7,
         "NVML_DEVICE_ARCH_ADA": 8, "NVML_DEVICE_ARCH_HOPPER": 9, "NVML_DEVICE_ARCH_UNKNOWN": 0xFFFFFFFF}
LATER_ARCHS = {"NVML_DEVICE_ARCH_BLACKWELL": 10, "NVML_DEVICE_ARCH_DLA": 11, "NVML_DEVICE_ARCH_DLA2": 12,
               "NVML_DEVICE_ARCH_RUBIN": 13, "NVML_DEVICE_ARCH_NPU3": 15}  # 13.615.71, not 12.535.77
REASON_BITS = {"GpuIdle": 0x1, "ApplicationsClocksSetting": 0x2, "SwPowerCap": 0x4, "HwSlowdown": 0x8,
               "SyncBoost": 0x10, "SwThermalSlowdown": 0x20, "HwThermalSlowdown": 0x40,
               "HwPowerBrakeSlowdown": 0x80, "DisplayClockSetting": 0x100}
LATER_THROTTLE_BITS = {"BoardLimit": 0x200, "Reliability": 0x400}  # nvmlClocksThrottleReason* only, 13.615.71

NVML_TEMPERATURE_GPU = 0
HOPPER = ARCHS["NVML_DEVICE_ARCH_HOPPER"]
PASCAL = ARCHS["NVML_DEVICE_ARCH_PASCAL"]
AMPERE = ARCHS["NVML_DEVICE_ARCH_AMPERE"]


class FakeClock:
    """A clock the test moves by hand: ``clock.t += 1.5``."""

    def __init__(self, t: float = 1000.0) -> None:
        self.t = t

    def __call__(self) -> float:
        return self.t


@dataclass
class FakeGpu:
    """One GPU as NVML reports it. ``None`` for a reading the device does not support (``NotSupported``)."""

    name: str = "NVIDIA H100 80GB HBM3"
    architecture: int | None = HOPPER  # None: nvmlDeviceGetArchitecture NotSupported
    power_w: float = 100.0  # what it draws now; set it to change the draw from now on
    energy_counter: bool = True  # False: nvmlDeviceGetTotalEnergyConsumption NotSupported (before Volta)
    power_usage: bool = True  # False: nvmlDeviceGetPowerUsage NotSupported (a Jetson's iGPU)
    energy_mj: float = 123_456_789.0  # the counter's value now (mJ since the driver loaded)
    update_interval_s: float | None = None  # the sensor's sample-and-hold period; None: every read is fresh
    clocks_mhz: dict[int, int | None] = field(default_factory=lambda: {0: 1755, 1: 1755, 2: 2619, 3: 1500})
    temperature_c: int | None = 41
    reasons: int = 0  # the current clock event (throttle) reasons, a bit mask
    reasons_supported: bool = True
    errors: dict[str, int] = field(default_factory=dict)  # function name → NVML error code it raises
    _t: float | None = None  # when energy_mj was last brought up to date
    _held: tuple[float, int, int] | None = None  # (latched at, energy mJ, power mW)

    def set_power(self, watts: float, now: float) -> None:
        self._advance(now)
        self.power_w = watts

    def _advance(self, now: float) -> None:
        if self._t is not None and now > self._t:
            self.energy_mj += self.power_w * (now - self._t) * 1e3
        self._t = now if self._t is None else max(self._t, now)

    def _sample(self, now: float) -> tuple[int, int]:
        """(energy mJ, power mW) as the sensor shows them at ``now``."""
        self._advance(now)
        fresh = (int(self.energy_mj), int(round(self.power_w * 1e3)))
        if self.update_interval_s is None:
            return fresh
        if self._held is None or now - self._held[0] >= self.update_interval_s:
            latched_at = now if self._held is None else (
                self._held[0] + (now - self._held[0]) // self.update_interval_s * self.update_interval_s)
            self._held = (latched_at, *fresh)
        return self._held[1], self._held[2]


class _Handle:
    """What nvmlDeviceGetHandleByIndex returns (a c_nvmlDevice_t pointer in the real module): opaque."""

    def __init__(self, gpu: FakeGpu, index: int) -> None:
        self._gpu, self._index = gpu, index

    def __repr__(self) -> str:
        return f"<c_nvmlDevice_t object (fake GPU {self._index})>"


@dataclass
class FakeState:
    gpus: list[FakeGpu]
    driver: str
    library: bool  # libnvidia-ml.so.1 is there
    driver_loaded: bool
    clock: Callable[[], float]
    loaded: bool = False  # pynvml's nvmlLib is set (the first nvmlInit found the library)
    init_count: int = 0
    inits: int = 0
    shutdowns: int = 0
    calls: list[str] = field(default_factory=list)
    lock: threading.Lock = field(default_factory=threading.Lock)


def _version_tuple(version: str) -> tuple[int, int]:
    major, minor = version.split(".")[:2]
    return int(major), int(minor)


def make_pynvml(version: str = "13.615.71", *, gpus: list[FakeGpu] | None = None, driver: str = "580.65.06",
                library: bool = True, driver_loaded: bool = True,
                clock: Callable[[], float] = time.monotonic) -> types.ModuleType:
    """A fresh fake ``pynvml`` module of nvidia-ml-py ``version`` on a machine with ``gpus`` (default one H100) and
    driver ``driver``; ``library=False``: no libnvidia-ml.so.1; ``driver_loaded=False``: the kernel module is not
    loaded."""
    v = _version_tuple(version)
    state = FakeState(gpus=[FakeGpu()] if gpus is None else gpus, driver=driver, library=library,
                      driver_loaded=driver_loaded, clock=clock)
    module = types.ModuleType("pynvml")
    module.__file__ = "<fake pynvml>"
    module._fake = state
    errors = dict(ERRORS)
    errors.update({name: code for name, (since, code) in LATER_ERRORS.items() if v >= since})
    module.NVML_SUCCESS = 0
    for name, code in errors.items():
        setattr(module, name, code)
    for name, value in {**CLOCKS, **ARCHS, **(LATER_ARCHS if v >= (13, 0) else {})}.items():
        setattr(module, name, value)
    module.NVML_TEMPERATURE_GPU = NVML_TEMPERATURE_GPU  # the only sensor in every version (GPU_MAX from 13.x)
    throttle = dict(REASON_BITS, **(LATER_THROTTLE_BITS if v >= (13, 0) else {}))
    prefixes = ["nvmlClocksThrottleReason"] + (["nvmlClocksEventReason"] if v >= (12, 535) else [])
    for prefix in prefixes:
        bits = throttle if prefix == "nvmlClocksThrottleReason" else REASON_BITS
        for name, bit in bits.items():
            setattr(module, prefix + name, bit)
        setattr(module, prefix + "UserDefinedClocks", bits["ApplicationsClocksSetting"])
        setattr(module, prefix + "None", 0)
        all_bits = 0
        for bit in bits.values():
            all_bits |= bit
        setattr(module, prefix + "All", all_bits)

    # -- errors, as pynvml builds them ------------------------------------------------------------------------------

    class NVMLError(Exception):
        _valClassMapping: dict = {}
        _errcode_to_string = dict(ERROR_STRINGS)

        def __new__(typ, value):
            if typ == NVMLError:
                typ = NVMLError._valClassMapping.get(value, typ)
            obj = Exception.__new__(typ)
            obj.value = value
            return obj

        def __str__(self):
            try:
                if self.value not in NVMLError._errcode_to_string:
                    NVMLError._errcode_to_string[self.value] = str(nvmlErrorString(self.value))
                return NVMLError._errcode_to_string[self.value]
            except NVMLError:
                return "NVML Error with code %d" % self.value

        def __eq__(self, other):
            return self.value == other.value

    NVMLError.__module__ = "pynvml"
    module.NVMLError = NVMLError
    for err_name, err_val in errors.items():
        class_name = "NVMLError_" + string.capwords(err_name.replace("NVML_ERROR_", ""), "_").replace("_", "")

        def gen_new(val):
            def new(typ, *args):
                return NVMLError.__new__(typ, val)
            return new

        cls = type(class_name, (NVMLError,), {"__new__": gen_new(err_val)})
        cls.__module__ = "pynvml"
        setattr(module, class_name, cls)
        NVMLError._valClassMapping[err_val] = cls

    def raise_code(code: int):
        raise NVMLError(code)

    def initialised(fn_name: str) -> None:
        state.calls.append(fn_name)
        if state.init_count == 0:
            raise_code(errors["NVML_ERROR_UNINITIALIZED"])

    def _device(fn_name: str, handle) -> FakeGpu:
        initialised(fn_name)
        if not isinstance(handle, _Handle):
            raise TypeError(f"{fn_name}: not a device handle: {handle!r}")
        gpu = handle._gpu
        if fn_name in gpu.errors:
            raise_code(gpu.errors[fn_name])
        return gpu

    def enum_arg(value, valid) -> int:
        if not isinstance(value, int):  # c_uint(value): ctypes refuses anything but an int
            raise TypeError("an integer is required")
        if value not in valid:
            raise_code(errors["NVML_ERROR_INVALID_ARGUMENT"])
        return value

    # -- the functions, with the real parameter names -----------------------------------------------------------------

    def nvmlInitWithFlags(flags):
        if not state.library:  # _LoadNvmlLibrary: CDLL("libnvidia-ml.so.1") failed
            raise_code(errors["NVML_ERROR_LIBRARY_NOT_FOUND"])
        state.loaded = True  # the library stays loaded from here on, even when the C nvmlInit fails
        state.calls.append("nvmlInitWithFlags")
        if not state.driver_loaded:
            raise_code(errors["NVML_ERROR_DRIVER_NOT_LOADED"])
        with state.lock:
            state.init_count += 1
            state.inits += 1
        return None

    def nvmlInit():
        nvmlInitWithFlags(0)
        return None

    def nvmlShutdown():
        initialised("nvmlShutdown")
        with state.lock:
            state.init_count -= 1
            state.shutdowns += 1
        return None

    def nvmlErrorString(result):
        if not state.loaded:  # _nvmlGetFunctionPointer before the library was loaded
            raise_code(errors["NVML_ERROR_UNINITIALIZED"])
        return ERROR_STRINGS.get(result, "Unknown Error")

    def nvmlSystemGetDriverVersion():
        initialised("nvmlSystemGetDriverVersion")
        return state.driver

    def nvmlDeviceGetCount():
        initialised("nvmlDeviceGetCount")
        return len(state.gpus)

    def nvmlDeviceGetHandleByIndex(index):
        initialised("nvmlDeviceGetHandleByIndex")
        if not isinstance(index, int):
            raise TypeError("an integer is required")
        if not 0 <= index < len(state.gpus):
            raise_code(errors["NVML_ERROR_INVALID_ARGUMENT"])
        return _Handle(state.gpus[index], index)

    def nvmlDeviceGetName(handle):
        return _device("nvmlDeviceGetName", handle).name

    def nvmlDeviceGetArchitecture(device):
        gpu = _device("nvmlDeviceGetArchitecture", device)
        if gpu.architecture is None:
            raise_code(errors["NVML_ERROR_NOT_SUPPORTED"])
        return gpu.architecture

    def nvmlDeviceGetTotalEnergyConsumption(handle):
        gpu = _device("nvmlDeviceGetTotalEnergyConsumption", handle)
        if not gpu.energy_counter:
            raise_code(errors["NVML_ERROR_NOT_SUPPORTED"])
        return gpu._sample(state.clock())[0]

    def nvmlDeviceGetPowerUsage(handle):
        gpu = _device("nvmlDeviceGetPowerUsage", handle)
        if not gpu.power_usage:
            raise_code(errors["NVML_ERROR_NOT_SUPPORTED"])
        return gpu._sample(state.clock())[1]

    def nvmlDeviceGetClockInfo(handle, type):  # noqa: A002 - the real parameter name
        gpu = _device("nvmlDeviceGetClockInfo", handle)
        mhz = gpu.clocks_mhz.get(enum_arg(type, range(CLOCKS["NVML_CLOCK_COUNT"])))
        if mhz is None:
            raise_code(errors["NVML_ERROR_NOT_SUPPORTED"])
        return mhz

    def nvmlDeviceGetTemperature(handle, sensor):
        gpu = _device("nvmlDeviceGetTemperature", handle)
        enum_arg(sensor, (NVML_TEMPERATURE_GPU,))
        if gpu.temperature_c is None:
            raise_code(errors["NVML_ERROR_NOT_SUPPORTED"])
        return gpu.temperature_c

    def nvmlDeviceGetCurrentClocksThrottleReasons(handle):
        gpu = _device("nvmlDeviceGetCurrentClocksThrottleReasons", handle)
        if not gpu.reasons_supported:
            raise_code(errors["NVML_ERROR_NOT_SUPPORTED"])
        return gpu.reasons

    def nvmlDeviceGetCurrentClocksEventReasons(handle):
        gpu = _device("nvmlDeviceGetCurrentClocksEventReasons", handle)
        if int(state.driver.split(".")[0]) < 535:  # the driver's libnvidia-ml has no such symbol
            raise_code(errors["NVML_ERROR_FUNCTION_NOT_FOUND"])
        if not gpu.reasons_supported:
            raise_code(errors["NVML_ERROR_NOT_SUPPORTED"])
        return gpu.reasons

    functions = [nvmlInitWithFlags, nvmlInit, nvmlShutdown, nvmlErrorString, nvmlSystemGetDriverVersion,
                 nvmlDeviceGetCount, nvmlDeviceGetHandleByIndex, nvmlDeviceGetName, nvmlDeviceGetTotalEnergyConsumption,
                 nvmlDeviceGetPowerUsage, nvmlDeviceGetClockInfo, nvmlDeviceGetTemperature,
                 nvmlDeviceGetCurrentClocksThrottleReasons, nvmlDeviceGetArchitecture]
    if v >= (12, 535):
        functions.append(nvmlDeviceGetCurrentClocksEventReasons)
    for fn in functions:
        fn.__qualname__ = fn.__name__
        fn.__module__ = "pynvml"
        setattr(module, fn.__name__, fn)
    return module


def install(monkeypatch, version: str = "13.615.71", **kwargs) -> types.ModuleType:
    """Put a fresh fake in ``sys.modules["pynvml"]`` until the test ends (``monkeypatch``); returns it."""
    module = make_pynvml(version, **kwargs)
    monkeypatch.setitem(sys.modules, "pynvml", module)
    return module
