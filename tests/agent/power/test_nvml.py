"""NvmlSource and NvmlRaplSource against a thin fake of ``pynvml`` (tests/fakes/fake_pynvml.py), put into
sys.modules for one test at a time as the real nvidia-ml-py would be found on a GPU machine.

The fake's surface is held to what nvidia-ml-py really has: ``RECORDED`` below is taken from the real pynvml.py of
11.525.131, 12.535.77 and 13.615.71 (function names and parameter names as ``ast`` reads them; constant values
evaluated), and ``test_fake_surface_is_the_recorded_one`` compares the fake of each version to it; where a real
pynvml is installed, ``test_fake_matches_the_installed_pynvml`` compares them directly.
"""

from __future__ import annotations

import importlib.util
import inspect
import string
import sys
import threading
import time
from pathlib import Path

import pytest

from dnnprof.agent.measure.probe import probe
from dnnprof.agent.measure.sampler import Sampler
from dnnprof.agent.power import AUTO_ORDER, MEASURING_SPECS, SOURCES, SPECS, open_live, open_source
from dnnprof.agent.power import nvml
from dnnprof.agent.power.base import SourceUnavailable
from dnnprof.agent.power.nvml import GpuConditions, NvmlRaplSource, NvmlSource, parse_gpus, reason_names
from dnnprof.shared.errors import UserError

FAKES = Path(__file__).parents[2] / "fakes"
RAPL_ROOT = Path(__file__).parents[2] / "data" / "powercap" / "two-packages"


def _load_fake():
    name = "dnnprof_test_fakes_fake_pynvml"
    if name not in sys.modules:
        spec = importlib.util.spec_from_file_location(name, FAKES / "fake_pynvml.py")
        module = importlib.util.module_from_spec(spec)
        sys.modules[name] = module  # dataclasses look their module up while the class is built
        spec.loader.exec_module(module)
    return sys.modules[name]


fake = _load_fake()
FakeGpu, FakeClock = fake.FakeGpu, fake.FakeClock
PASCAL, AMPERE, HOPPER = fake.PASCAL, fake.AMPERE, fake.HOPPER


@pytest.fixture
def install(monkeypatch):
    """``install(version, gpus=[...], driver=..., clock=...)`` → the fake pynvml, in sys.modules for this test."""

    def make(version: str = "13.615.71", **kwargs):
        return fake.install(monkeypatch, version, **kwargs)

    return make


@pytest.fixture
def clock():
    return FakeClock()


def balanced(pynvml) -> bool:
    """Every nvmlInit the source made was matched by an nvmlShutdown."""
    return pynvml._fake.init_count == 0 and pynvml._fake.inits == pynvml._fake.shutdowns



RECORDED = {
    "11.525.131": {
        "functions": {
            "nvmlDeviceGetArchitecture": ("device",), "nvmlDeviceGetClockInfo": ("handle", "type"),
            "nvmlDeviceGetCount": (), "nvmlDeviceGetCurrentClocksThrottleReasons": ("handle",),
            "nvmlDeviceGetHandleByIndex": ("index",), "nvmlDeviceGetName": ("handle",),
            "nvmlDeviceGetPowerUsage": ("handle",), "nvmlDeviceGetTemperature": ("handle", "sensor"),
            "nvmlDeviceGetTotalEnergyConsumption": ("handle",), "nvmlErrorString": ("result",), "nvmlInit": (),
            "nvmlInitWithFlags": ("flags",), "nvmlShutdown": (), "nvmlSystemGetDriverVersion": (),
        },
        "constants": {
            "NVML_CLOCK_COUNT": 4, "NVML_CLOCK_GRAPHICS": 0, "NVML_CLOCK_MEM": 2, "NVML_CLOCK_SM": 1,
            "NVML_CLOCK_VIDEO": 3, "NVML_DEVICE_ARCH_ADA": 8, "NVML_DEVICE_ARCH_AMPERE": 7,
            "NVML_DEVICE_ARCH_HOPPER": 9, "NVML_DEVICE_ARCH_KEPLER": 2, "NVML_DEVICE_ARCH_MAXWELL": 3,
            "NVML_DEVICE_ARCH_PASCAL": 4, "NVML_DEVICE_ARCH_TURING": 6, "NVML_DEVICE_ARCH_UNKNOWN": 4294967295,
            "NVML_DEVICE_ARCH_VOLTA": 5, "NVML_ERROR_ALREADY_INITIALIZED": 5,
            "NVML_ERROR_ARGUMENT_VERSION_MISMATCH": 25, "NVML_ERROR_CORRUPTED_INFOROM": 14, "NVML_ERROR_DEPRECATED": 26,
            "NVML_ERROR_DRIVER_NOT_LOADED": 9, "NVML_ERROR_FREQ_NOT_SUPPORTED": 24, "NVML_ERROR_FUNCTION_NOT_FOUND": 13,
            "NVML_ERROR_GPU_IS_LOST": 15, "NVML_ERROR_INSUFFICIENT_POWER": 8, "NVML_ERROR_INSUFFICIENT_RESOURCES": 23,
            "NVML_ERROR_INSUFFICIENT_SIZE": 7, "NVML_ERROR_INVALID_ARGUMENT": 2, "NVML_ERROR_IN_USE": 19,
            "NVML_ERROR_IRQ_ISSUE": 11, "NVML_ERROR_LIBRARY_NOT_FOUND": 12, "NVML_ERROR_LIB_RM_VERSION_MISMATCH": 18,
            "NVML_ERROR_MEMORY": 20, "NVML_ERROR_NOT_FOUND": 6, "NVML_ERROR_NOT_SUPPORTED": 3, "NVML_ERROR_NO_DATA": 21,
            "NVML_ERROR_NO_PERMISSION": 4, "NVML_ERROR_OPERATING_SYSTEM": 17, "NVML_ERROR_RESET_REQUIRED": 16,
            "NVML_ERROR_TIMEOUT": 10, "NVML_ERROR_UNINITIALIZED": 1, "NVML_ERROR_UNKNOWN": 999,
            "NVML_ERROR_VGPU_ECC_NOT_SUPPORTED": 22, "NVML_SUCCESS": 0, "NVML_TEMPERATURE_COUNT": 1,
            "NVML_TEMPERATURE_GPU": 0, "nvmlClocksThrottleReasonAll": 511,
            "nvmlClocksThrottleReasonApplicationsClocksSetting": 2, "nvmlClocksThrottleReasonDisplayClockSetting": 256,
            "nvmlClocksThrottleReasonGpuIdle": 1, "nvmlClocksThrottleReasonHwPowerBrakeSlowdown": 128,
            "nvmlClocksThrottleReasonHwSlowdown": 8, "nvmlClocksThrottleReasonHwThermalSlowdown": 64,
            "nvmlClocksThrottleReasonNone": 0, "nvmlClocksThrottleReasonSwPowerCap": 4,
            "nvmlClocksThrottleReasonSwThermalSlowdown": 32, "nvmlClocksThrottleReasonSyncBoost": 16,
            "nvmlClocksThrottleReasonUserDefinedClocks": 2,
        },
    },
    "12.535.77": {
        "functions": {
            "nvmlDeviceGetArchitecture": ("device",), "nvmlDeviceGetClockInfo": ("handle", "type"),
            "nvmlDeviceGetCount": (), "nvmlDeviceGetCurrentClocksEventReasons": ("handle",),
            "nvmlDeviceGetCurrentClocksThrottleReasons": ("handle",), "nvmlDeviceGetHandleByIndex": ("index",),
            "nvmlDeviceGetName": ("handle",), "nvmlDeviceGetPowerUsage": ("handle",),
            "nvmlDeviceGetTemperature": ("handle", "sensor"), "nvmlDeviceGetTotalEnergyConsumption": ("handle",),
            "nvmlErrorString": ("result",), "nvmlInit": (), "nvmlInitWithFlags": ("flags",), "nvmlShutdown": (),
            "nvmlSystemGetDriverVersion": (),
        },
        "constants": {
            "NVML_CLOCK_COUNT": 4, "NVML_CLOCK_GRAPHICS": 0, "NVML_CLOCK_MEM": 2, "NVML_CLOCK_SM": 1,
            "NVML_CLOCK_VIDEO": 3, "NVML_DEVICE_ARCH_ADA": 8, "NVML_DEVICE_ARCH_AMPERE": 7,
            "NVML_DEVICE_ARCH_HOPPER": 9, "NVML_DEVICE_ARCH_KEPLER": 2, "NVML_DEVICE_ARCH_MAXWELL": 3,
            "NVML_DEVICE_ARCH_PASCAL": 4, "NVML_DEVICE_ARCH_TURING": 6, "NVML_DEVICE_ARCH_UNKNOWN": 4294967295,
            "NVML_DEVICE_ARCH_VOLTA": 5, "NVML_ERROR_ALREADY_INITIALIZED": 5,
            "NVML_ERROR_ARGUMENT_VERSION_MISMATCH": 25, "NVML_ERROR_CORRUPTED_INFOROM": 14, "NVML_ERROR_DEPRECATED": 26,
            "NVML_ERROR_DRIVER_NOT_LOADED": 9, "NVML_ERROR_FREQ_NOT_SUPPORTED": 24, "NVML_ERROR_FUNCTION_NOT_FOUND": 13,
            "NVML_ERROR_GPU_IS_LOST": 15, "NVML_ERROR_INSUFFICIENT_POWER": 8, "NVML_ERROR_INSUFFICIENT_RESOURCES": 23,
            "NVML_ERROR_INSUFFICIENT_SIZE": 7, "NVML_ERROR_INVALID_ARGUMENT": 2, "NVML_ERROR_IN_USE": 19,
            "NVML_ERROR_IRQ_ISSUE": 11, "NVML_ERROR_LIBRARY_NOT_FOUND": 12, "NVML_ERROR_LIB_RM_VERSION_MISMATCH": 18,
            "NVML_ERROR_MEMORY": 20, "NVML_ERROR_NOT_FOUND": 6, "NVML_ERROR_NOT_READY": 27,
            "NVML_ERROR_NOT_SUPPORTED": 3, "NVML_ERROR_NO_DATA": 21, "NVML_ERROR_NO_PERMISSION": 4,
            "NVML_ERROR_OPERATING_SYSTEM": 17, "NVML_ERROR_RESET_REQUIRED": 16, "NVML_ERROR_TIMEOUT": 10,
            "NVML_ERROR_UNINITIALIZED": 1, "NVML_ERROR_UNKNOWN": 999, "NVML_ERROR_VGPU_ECC_NOT_SUPPORTED": 22,
            "NVML_SUCCESS": 0, "NVML_TEMPERATURE_COUNT": 1, "NVML_TEMPERATURE_GPU": 0, "nvmlClocksEventReasonAll": 511,
            "nvmlClocksEventReasonApplicationsClocksSetting": 2, "nvmlClocksEventReasonDisplayClockSetting": 256,
            "nvmlClocksEventReasonGpuIdle": 1, "nvmlClocksEventReasonHwPowerBrakeSlowdown": 128,
            "nvmlClocksEventReasonHwSlowdown": 8, "nvmlClocksEventReasonHwThermalSlowdown": 64,
            "nvmlClocksEventReasonNone": 0, "nvmlClocksEventReasonSwPowerCap": 4,
            "nvmlClocksEventReasonSwThermalSlowdown": 32, "nvmlClocksEventReasonSyncBoost": 16,
            "nvmlClocksEventReasonUserDefinedClocks": 2, "nvmlClocksThrottleReasonAll": 511,
            "nvmlClocksThrottleReasonApplicationsClocksSetting": 2, "nvmlClocksThrottleReasonDisplayClockSetting": 256,
            "nvmlClocksThrottleReasonGpuIdle": 1, "nvmlClocksThrottleReasonHwPowerBrakeSlowdown": 128,
            "nvmlClocksThrottleReasonHwSlowdown": 8, "nvmlClocksThrottleReasonHwThermalSlowdown": 64,
            "nvmlClocksThrottleReasonNone": 0, "nvmlClocksThrottleReasonSwPowerCap": 4,
            "nvmlClocksThrottleReasonSwThermalSlowdown": 32, "nvmlClocksThrottleReasonSyncBoost": 16,
            "nvmlClocksThrottleReasonUserDefinedClocks": 2,
        },
    },
    "13.615.71": {
        "functions": {
            "nvmlDeviceGetArchitecture": ("device",), "nvmlDeviceGetClockInfo": ("handle", "type"),
            "nvmlDeviceGetCount": (), "nvmlDeviceGetCurrentClocksEventReasons": ("handle",),
            "nvmlDeviceGetCurrentClocksThrottleReasons": ("handle",), "nvmlDeviceGetHandleByIndex": ("index",),
            "nvmlDeviceGetName": ("handle",), "nvmlDeviceGetPowerUsage": ("handle",),
            "nvmlDeviceGetTemperature": ("handle", "sensor"), "nvmlDeviceGetTotalEnergyConsumption": ("handle",),
            "nvmlErrorString": ("result",), "nvmlInit": (), "nvmlInitWithFlags": ("flags",), "nvmlShutdown": (),
            "nvmlSystemGetDriverVersion": (),
        },
        "constants": {
            "NVML_CLOCK_COUNT": 4, "NVML_CLOCK_GRAPHICS": 0, "NVML_CLOCK_MEM": 2, "NVML_CLOCK_SM": 1,
            "NVML_CLOCK_VIDEO": 3, "NVML_DEVICE_ARCH_ADA": 8, "NVML_DEVICE_ARCH_AMPERE": 7,
            "NVML_DEVICE_ARCH_BLACKWELL": 10, "NVML_DEVICE_ARCH_DLA": 11, "NVML_DEVICE_ARCH_DLA2": 12,
            "NVML_DEVICE_ARCH_HOPPER": 9, "NVML_DEVICE_ARCH_KEPLER": 2, "NVML_DEVICE_ARCH_MAXWELL": 3,
            "NVML_DEVICE_ARCH_NPU3": 15, "NVML_DEVICE_ARCH_PASCAL": 4, "NVML_DEVICE_ARCH_RUBIN": 13,
            "NVML_DEVICE_ARCH_TURING": 6, "NVML_DEVICE_ARCH_UNKNOWN": 4294967295, "NVML_DEVICE_ARCH_VOLTA": 5,
            "NVML_ERROR_ALREADY_INITIALIZED": 5, "NVML_ERROR_ARGUMENT_VERSION_MISMATCH": 25,
            "NVML_ERROR_CORRUPTED_INFOROM": 14, "NVML_ERROR_DEPRECATED": 26, "NVML_ERROR_DRIVER_NOT_LOADED": 9,
            "NVML_ERROR_FREQ_NOT_SUPPORTED": 24, "NVML_ERROR_FUNCTION_NOT_FOUND": 13, "NVML_ERROR_GPU_IS_LOST": 15,
            "NVML_ERROR_GPU_NOT_FOUND": 28, "NVML_ERROR_INSUFFICIENT_POWER": 8, "NVML_ERROR_INSUFFICIENT_RESOURCES": 23,
            "NVML_ERROR_INSUFFICIENT_SIZE": 7, "NVML_ERROR_INVALID_ARGUMENT": 2, "NVML_ERROR_INVALID_STATE": 29,
            "NVML_ERROR_IN_USE": 19, "NVML_ERROR_IRQ_ISSUE": 11, "NVML_ERROR_LIBRARY_NOT_FOUND": 12,
            "NVML_ERROR_LIB_RM_VERSION_MISMATCH": 18, "NVML_ERROR_MEMORY": 20, "NVML_ERROR_NOT_FOUND": 6,
            "NVML_ERROR_NOT_READY": 27, "NVML_ERROR_NOT_SUPPORTED": 3, "NVML_ERROR_NO_DATA": 21,
            "NVML_ERROR_NO_PERMISSION": 4, "NVML_ERROR_OPERATING_SYSTEM": 17, "NVML_ERROR_RESET_REQUIRED": 16,
            "NVML_ERROR_RESET_TYPE_NOT_SUPPORTED": 30, "NVML_ERROR_TIMEOUT": 10, "NVML_ERROR_UNINITIALIZED": 1,
            "NVML_ERROR_UNKNOWN": 999, "NVML_ERROR_VGPU_ECC_NOT_SUPPORTED": 22, "NVML_SUCCESS": 0,
            "NVML_TEMPERATURE_COUNT": 2, "NVML_TEMPERATURE_GPU": 0, "NVML_TEMPERATURE_GPU_MAX": 1,
            "nvmlClocksEventReasonAll": 511, "nvmlClocksEventReasonApplicationsClocksSetting": 2,
            "nvmlClocksEventReasonDisplayClockSetting": 256, "nvmlClocksEventReasonGpuIdle": 1,
            "nvmlClocksEventReasonHwPowerBrakeSlowdown": 128, "nvmlClocksEventReasonHwSlowdown": 8,
            "nvmlClocksEventReasonHwThermalSlowdown": 64, "nvmlClocksEventReasonNone": 0,
            "nvmlClocksEventReasonSwPowerCap": 4, "nvmlClocksEventReasonSwThermalSlowdown": 32,
            "nvmlClocksEventReasonSyncBoost": 16, "nvmlClocksEventReasonUserDefinedClocks": 2,
            "nvmlClocksThrottleReasonAll": 2047, "nvmlClocksThrottleReasonApplicationsClocksSetting": 2,
            "nvmlClocksThrottleReasonBoardLimit": 512, "nvmlClocksThrottleReasonDisplayClockSetting": 256,
            "nvmlClocksThrottleReasonGpuIdle": 1, "nvmlClocksThrottleReasonHwPowerBrakeSlowdown": 128,
            "nvmlClocksThrottleReasonHwSlowdown": 8, "nvmlClocksThrottleReasonHwThermalSlowdown": 64,
            "nvmlClocksThrottleReasonNone": 0, "nvmlClocksThrottleReasonReliability": 1024,
            "nvmlClocksThrottleReasonSwPowerCap": 4, "nvmlClocksThrottleReasonSwThermalSlowdown": 32,
            "nvmlClocksThrottleReasonSyncBoost": 16, "nvmlClocksThrottleReasonUserDefinedClocks": 2,
        },
    },
}


# -- the fake is nvidia-ml-py's surface, no looser ---------------------------------------------------------------------


def error_class_name(constant: str) -> str:
    return "NVMLError_" + string.capwords(constant.replace("NVML_ERROR_", ""), "_").replace("_", "")


def public(module) -> set[str]:
    return {name for name in vars(module) if not name.startswith("_")}


@pytest.mark.parametrize("version", sorted(RECORDED))
def test_fake_surface_is_the_recorded_one(version):
    module = fake.make_pynvml(version)
    real = RECORDED[version]
    errors = {error_class_name(c) for c in real["constants"] if c.startswith("NVML_ERROR_")}
    allowed = set(real["functions"]) | set(real["constants"]) | errors | {"NVMLError"}
    assert public(module) - allowed == set(), "the fake has members this version of pynvml lacks"
    for name, params in real["functions"].items():
        assert hasattr(module, name), f"{version} has {name}"
        assert tuple(inspect.signature(getattr(module, name)).parameters) == params, name
    for name in public(module) & set(real["constants"]):
        assert getattr(module, name) == real["constants"][name], name
    # every error code and every clock reason bit of the version is there, with its class
    for name, value in real["constants"].items():
        if name.startswith(("NVML_ERROR_", "nvmlClocks")) or name == "NVML_SUCCESS":
            assert getattr(module, name) == value, name
        if name.startswith("NVML_ERROR_"):
            cls = getattr(module, error_class_name(name))
            assert issubclass(cls, module.NVMLError) and module.NVMLError(value).__class__ is cls


def test_which_version_has_which_reason_function():
    assert "nvmlDeviceGetCurrentClocksEventReasons" not in RECORDED["11.525.131"]["functions"]
    assert not hasattr(fake.make_pynvml("11.525.131"), "nvmlDeviceGetCurrentClocksEventReasons")
    for version in ("12.535.77", "13.615.71"):
        assert hasattr(fake.make_pynvml(version), "nvmlDeviceGetCurrentClocksEventReasons")
        assert hasattr(fake.make_pynvml(version), "nvmlDeviceGetCurrentClocksThrottleReasons")  # deprecated, there


def test_fake_matches_the_installed_pynvml():
    real = pytest.importorskip("pynvml")
    # pynvml has no __version__: the recorded version whose surface it has
    version = ("13.615.71" if hasattr(real, "nvmlClocksThrottleReasonBoardLimit") else
               "12.535.77" if hasattr(real, "nvmlDeviceGetCurrentClocksEventReasons") else "11.525.131")
    module = fake.make_pynvml(version)
    for name in public(module):
        assert hasattr(real, name), name
        mine, theirs = getattr(module, name), getattr(real, name)
        if callable(mine) and not isinstance(mine, type):
            assert list(inspect.signature(mine).parameters) == list(inspect.signature(theirs).parameters), name
        elif not isinstance(mine, type):
            assert mine == theirs, name


def test_fake_errors_behave_like_pynvml(install):
    pynvml = install()
    exc = pynvml.NVMLError(pynvml.NVML_ERROR_NOT_SUPPORTED)
    assert type(exc) is pynvml.NVMLError_NotSupported and isinstance(exc, pynvml.NVMLError)
    assert exc.value == 3 and str(exc) == "Not Supported"
    assert pynvml.NVMLError_NotSupported().value == 3  # the subclasses take no code
    assert pynvml.NVMLError_GpuIsLost() == pynvml.NVMLError(15)
    with pytest.raises(pynvml.NVMLError_Uninitialized):
        pynvml.nvmlDeviceGetCount()  # before nvmlInit
    pynvml.nvmlInit()
    handle = pynvml.nvmlDeviceGetHandleByIndex(0)
    with pytest.raises(pynvml.NVMLError_InvalidArgument):
        pynvml.nvmlDeviceGetHandleByIndex(1)
    with pytest.raises(pynvml.NVMLError_InvalidArgument):
        pynvml.nvmlDeviceGetClockInfo(handle, 7)
    with pytest.raises(TypeError):
        pynvml.nvmlDeviceGetClockInfo(handle, "sm")
    with pytest.raises(TypeError):
        pynvml.nvmlDeviceGetPowerUsage(0)  # an index is not a handle
    assert isinstance(pynvml.nvmlDeviceGetName(handle), str)
    assert isinstance(pynvml.nvmlDeviceGetTotalEnergyConsumption(handle), int)
    assert isinstance(pynvml.nvmlDeviceGetPowerUsage(handle), int)
    pynvml.nvmlInit()
    pynvml.nvmlShutdown()
    pynvml.nvmlDeviceGetCount()  # still initialised once
    pynvml.nvmlShutdown()
    with pytest.raises(pynvml.NVMLError_Uninitialized):
        pynvml.nvmlDeviceGetCount()


def test_fake_units_are_mj_and_mw(install, clock):
    gpu = FakeGpu(power_w=250.0, energy_mj=1_000.0)
    pynvml = install(gpus=[gpu], clock=clock)
    pynvml.nvmlInit()
    handle = pynvml.nvmlDeviceGetHandleByIndex(0)
    assert pynvml.nvmlDeviceGetTotalEnergyConsumption(handle) == 1_000
    assert pynvml.nvmlDeviceGetPowerUsage(handle) == 250_000
    clock.t += 2.0
    assert pynvml.nvmlDeviceGetTotalEnergyConsumption(handle) == 1_000 + 500_000


# -- opening --------------------------------------------------------------------------------------------------------


def test_counter_source_reads_joules_per_gpu_since_it_opened(install, clock):
    gpus = [FakeGpu(power_w=100.0), FakeGpu(name="NVIDIA A100-SXM4-40GB", architecture=AMPERE, power_w=40.0)]
    pynvml = install(gpus=gpus, clock=clock)
    source = NvmlSource()
    assert source.name == "nvml" and source.boundary == "gpu_board" and source.estimated is False
    assert source.quantity == "energy_j" and source.counter
    assert source.rails == ("gpu0", "gpu1") and source.input_rail is None
    assert source.read() == (0.0, 0.0)
    clock.t += 1.5
    assert source.read() == pytest.approx((150.0, 60.0))
    gpus[0].set_power(300.0, clock.t)
    clock.t += 0.5
    assert source.read() == pytest.approx((300.0, 80.0))
    assert source.total(source.read()) == pytest.approx(380.0)  # the sum of the GPUs
    assert "nvmlDeviceGetTotalEnergyConsumption" in source.method and "GPU board" in source.method
    assert source.notes == []
    assert source.info == ["gpu0: NVIDIA H100 80GB HBM3, total-energy counter",
                           "gpu1: NVIDIA A100-SXM4-40GB, total-energy counter"]
    source.close()
    source.close()  # twice is harmless
    assert balanced(pynvml)


def test_one_gpu_by_index(install, clock):
    install(gpus=[FakeGpu(power_w=10.0), FakeGpu(power_w=20.0), FakeGpu(power_w=30.0)], clock=clock)
    source = NvmlSource("2,0")
    assert source.rails == ("gpu2", "gpu0")
    clock.t += 1.0
    assert source.read() == pytest.approx((30.0, 10.0))
    assert NvmlSource([1]).rails == ("gpu1",)


@pytest.mark.parametrize(("arg", "expected"), [(None, None), ("", None), ("0", [0]), (" 1 , 3", [1, 3]),
                                               ([2], [2])])
def test_parse_gpus(arg, expected):
    assert parse_gpus(arg) == expected


@pytest.mark.parametrize("arg", ["x", "-1", "1.5", "0,,1", "0,0", "gpu0"])
def test_a_bad_index_is_refused(arg):
    with pytest.raises(SourceUnavailable) as info:
        parse_gpus(arg)
    assert "nvml:INDEX" in str(info.value) or "twice" in str(info.value)


def test_an_index_past_the_gpus_is_refused_and_nvml_shut_down(install):
    pynvml = install(gpus=[FakeGpu(), FakeGpu()])
    with pytest.raises(SourceUnavailable, match=r"there is no GPU 2: NVML sees 2 \(index 0 to 1\)"):
        NvmlSource("2")
    assert balanced(pynvml)


def test_power_samples_where_there_is_no_counter(install, clock):
    gpu = FakeGpu(name="Tesla P100-PCIE-16GB", architecture=PASCAL, energy_counter=False, power_w=75.5)
    pynvml = install(gpus=[gpu], clock=clock)
    source = NvmlSource()
    assert source.quantity == "power_w" and not source.counter
    assert source.read() == (75.5,)  # W, from mW
    assert "nvmlDeviceGetPowerUsage" in source.method and "trapezoid" in source.method
    assert "no total-energy counter" in source.method
    assert "1 s" not in source.method  # Pascal's power is instantaneous
    assert source.notes == ["gpu0 (Tesla P100-PCIE-16GB) has no total-energy counter (Not Supported; Volta and "
                            "newer have one): energy is integrated from power samples"]
    assert source.info == ["gpu0: Tesla P100-PCIE-16GB, power samples"]
    source.close()
    assert balanced(pynvml)
    # a class attribute is never changed: another source still counts
    assert NvmlSource.quantity == "energy_j"


def test_power_samples_on_request_say_ampere_averages(install):
    install(gpus=[FakeGpu(architecture=HOPPER)])
    source = NvmlSource(use_counter=False)
    assert source.quantity == "power_w"
    assert "asked for power samples" in source.method and "average over 1 s" in source.method
    assert source.notes == []  # asked for: nothing to warn about


def test_a_mixed_machine_reads_every_gpu_by_power(install):
    install(gpus=[FakeGpu(), FakeGpu(architecture=PASCAL, energy_counter=False)])
    source = NvmlSource()
    assert source.quantity == "power_w" and source.rails == ("gpu0", "gpu1")
    assert len(source.notes) == 1 and source.notes[0].startswith("gpu1 ")


def test_a_gpu_that_reports_no_power_is_said_and_gives_no_energy(install):
    """The Jetson case: NVML is there but answers NotSupported on every reading path."""
    orin = FakeGpu(name="Orin (nvgpu)", architecture=AMPERE, energy_counter=False, power_usage=False)
    pynvml = install(gpus=[orin])
    with pytest.raises(SourceUnavailable) as info:
        NvmlSource()
    message = str(info.value)
    assert message.startswith("this GPU reports no power through NVML (gpu0 (Orin (nvgpu)): energy counter Not "
                              "Supported, power Not Supported): no energy")
    assert "ina3221" in message and "\n" not in message
    assert balanced(pynvml)
    with pytest.raises(UserError) as info:
        open_source("nvml")
    assert "'nvml' is not available" in str(info.value) and "no energy" in str(info.value)


def test_one_silent_gpu_among_others_is_left_out_with_a_note(install, clock):
    install(gpus=[FakeGpu(power_w=50.0), FakeGpu(name="Silent", energy_counter=False, power_usage=False)],
            clock=clock)
    selection = open_source("nvml")
    assert selection.source.rails == ("gpu0",)
    assert selection.notes == ["nvml: gpu1 (Silent) reports no power through NVML (energy counter Not Supported, "
                               "power Not Supported): no energy from it, left out of the total"]
    assert selection.info == ["nvml: gpu0: NVIDIA H100 80GB HBM3, total-energy counter"]


def test_not_installed(monkeypatch):
    monkeypatch.setitem(sys.modules, "pynvml", None)  # import pynvml raises ImportError
    with pytest.raises(UserError) as info:
        open_source("nvml")
    assert "nvidia-ml-py is not installed: pip install 'dnnprof[nvml]'" in str(info.value)


@pytest.mark.parametrize(("settings", "words"), [({"library": False}, "no NVIDIA driver here: libnvidia-ml.so.1"),
                                                 ({"driver_loaded": False}, "kernel driver is not loaded"),
                                                 ({"gpus": []}, "NVML sees no GPU")])
def test_no_driver_no_gpu(install, settings, words):
    pynvml = install(**settings)
    with pytest.raises(SourceUnavailable, match=words):
        NvmlSource()
    assert balanced(pynvml)


# -- reading --------------------------------------------------------------------------------------------------------


def test_an_nvml_error_while_reading_is_an_oserror(install, clock):
    gpu = FakeGpu()
    install(gpus=[gpu], clock=clock)
    source = NvmlSource()
    gpu.errors["nvmlDeviceGetTotalEnergyConsumption"] = 15  # GPU is lost
    with pytest.raises(OSError, match="NVML: GPU is lost"):
        source.read()
    del gpu.errors["nvmlDeviceGetTotalEnergyConsumption"]
    clock.t += 1.0
    assert source.read() == pytest.approx((100.0,))


def test_a_counter_that_goes_back_drops_one_reading_and_goes_on(install, clock):
    gpu = FakeGpu(power_w=100.0)
    install(gpus=[gpu], clock=clock)
    source = NvmlSource()
    clock.t += 1.0
    assert source.read() == pytest.approx((100.0,))
    gpu.energy_mj = 5_000.0  # the driver reloaded
    with pytest.raises(OSError, match="went back"):
        source.read()
    clock.t += 1.0
    assert source.read() == pytest.approx((200.0,))  # counted on from the new value


def test_sampler_energy_from_the_counter_and_from_power_agree(install):
    """Real time: the sampler's window energy is the GPU's power times the window, by either path."""
    gpu = FakeGpu(power_w=150.0, update_interval_s=0.02)
    install(gpus=[gpu])
    results = {}
    for use_counter in (True, False):
        source = NvmlSource(use_counter=use_counter)
        with Sampler(source, 0.005) as sampler:
            time.sleep(0.4)
        t0, t1 = sampler.ts[0] + 0.05, sampler.ts[-1] - 0.05
        window = sampler.energy(t0, t1)
        results[use_counter] = window.energy_j / (t1 - t0)
        assert sampler.read_errors == 0
        assert window.unique_samples < window.samples  # repeats of the held value were dropped
        source.close()
    assert results[True] == pytest.approx(150.0, rel=0.1)
    assert results[False] == pytest.approx(150.0, rel=1e-6)


def test_sampler_counts_a_failing_read(install):
    gpu = FakeGpu()
    install(gpus=[gpu])
    source = NvmlSource()
    gpu.errors["nvmlDeviceGetTotalEnergyConsumption"] = 999
    sampler = Sampler(source, 0.005)
    with sampler:
        time.sleep(0.05)
    assert sampler.read_errors >= 3 and sampler.ts == []


def test_dnnagent_power_reads_nvml(install):
    install(gpus=[FakeGpu(power_w=80.0)])
    reading = probe("nvml", 0.3, interval_ms=5)
    assert reading.source == "nvml" and reading.boundary == "gpu_board"
    assert set(reading.rails) == {"gpu0"}
    assert reading.total_w == pytest.approx(80.0, rel=0.05)
    assert reading.info == ["nvml: gpu0: NVIDIA H100 80GB HBM3, total-energy counter"]


# -- conditions -----------------------------------------------------------------------------------------------------


def test_conditions_clocks_temperature_and_reasons(install):
    pynvml = install(gpus=[FakeGpu(temperature_c=67, reasons=0x4 | 0x1 | 0x20)])
    source = NvmlSource()
    state = source.conditions()
    assert isinstance(state, GpuConditions)
    assert state.clocks_mhz == {"gpu0:graphics": 1755.0, "gpu0:sm": 1755.0, "gpu0:mem": 2619.0}
    assert state.temperatures_c == {"gpu0": 67.0}
    assert state.clock_event_reasons == {"gpu0": ["gpu_idle", "sw_power_cap", "sw_thermal_slowdown"]}
    assert state.throttle_reasons == ["nvml_sw_power_cap:gpu0", "nvml_sw_thermal_slowdown:gpu0"]
    assert state.unreadable == []
    assert "nvmlDeviceGetCurrentClocksEventReasons" in pynvml._fake.calls
    assert "nvmlDeviceGetCurrentClocksThrottleReasons" not in pynvml._fake.calls


@pytest.mark.parametrize(("version", "driver"), [("11.525.131", "525.60.13"), ("12.535.77", "530.30.02")])
def test_conditions_fall_back_to_throttle_reasons(install, version, driver):
    """pynvml before 12.535 has no ...EventReasons; a driver before 535 lacks the C function (FunctionNotFound)."""
    pynvml = install(version, gpus=[FakeGpu(reasons=0x8)], driver=driver)
    source = NvmlSource()
    assert source.conditions().throttle_reasons == ["nvml_hw_slowdown:gpu0"]
    assert source.conditions().throttle_reasons == ["nvml_hw_slowdown:gpu0"]
    assert pynvml._fake.calls.count("nvmlDeviceGetCurrentClocksThrottleReasons") == 2
    assert pynvml._fake.calls.count("nvmlDeviceGetCurrentClocksEventReasons") == (1 if version == "12.535.77" else 0)


def test_conditions_say_what_a_gpu_does_not_report(install):
    gpu = FakeGpu(temperature_c=None, reasons_supported=False, clocks_mhz={0: 900, 1: 900, 2: None, 3: 800})
    install(gpus=[gpu])
    state = NvmlSource().conditions()
    assert state.clocks_mhz == {"gpu0:graphics": 900.0, "gpu0:sm": 900.0}
    assert state.unreadable == ["gpu0:mem", "gpu0:temperature", "gpu0:clock_event_reasons"]
    assert state.throttle_reasons == [] and state.clock_event_reasons == {}


def test_reason_names():
    assert reason_names(0) == []
    assert reason_names(0x1 | 0x200 | 0x400) == ["gpu_idle", "board_limit", "reliability"]
    assert reason_names(0x1000) == ["unknown_0x1000"]


# -- CPU package + GPU ------------------------------------------------------------------------------------------------


def test_cpu_package_plus_gpu_has_a_rail_per_part(install, clock):
    pynvml = install(gpus=[FakeGpu(power_w=200.0)], clock=clock)
    source = NvmlRaplSource(rapl_root=str(RAPL_ROOT))
    assert source.name == "nvml+rapl" and source.boundary == "cpu_package+gpu_board"
    assert source.quantity == "energy_j" and source.estimated is False
    assert source.rails == ("package-0", "package-1", "gpu0") and source.input_rail is None
    assert source.read() == (0.0, 0.0, 0.0)
    clock.t += 2.0
    assert source.read() == pytest.approx((0.0, 0.0, 400.0))  # the recorded RAPL tree does not move
    assert source.method.startswith("CPU packages: RAPL") and "nvmlDeviceGetTotalEnergyConsumption" in source.method
    assert source.conditions().temperatures_c == {"gpu0": 41.0}
    source.close()
    assert balanced(pynvml)


def test_cpu_package_plus_gpu_integrates_a_gpu_without_a_counter(install, clock, monkeypatch):
    gpu = FakeGpu(architecture=PASCAL, energy_counter=False, power_w=100.0)
    install(gpus=[gpu], clock=clock)
    monkeypatch.setattr(nvml, "clock", clock)
    source = NvmlRaplSource(rapl_root=str(RAPL_ROOT))
    assert source.quantity == "energy_j" and source.gpu.quantity == "power_w"
    assert "integrated here" in source.method
    assert source.read()[2] == 0.0
    clock.t += 1.0
    gpu.set_power(200.0, clock.t)
    assert source.read()[2] == pytest.approx(150.0)  # trapezoid 100 W → 200 W over 1 s
    clock.t += 0.5
    assert source.read()[2] == pytest.approx(250.0)


def test_cpu_package_plus_gpu_needs_both(install, tmp_path):
    pynvml = install()
    with pytest.raises(SourceUnavailable, match="^the CPU part: no powercap interface"):
        NvmlRaplSource(rapl_root=str(tmp_path))
    assert balanced(pynvml) and pynvml._fake.inits == 0  # NVML was never opened
    pynvml = install(gpus=[FakeGpu(energy_counter=False, power_usage=False)])
    with pytest.raises(SourceUnavailable, match="^the GPU part: this GPU reports no power"):
        NvmlRaplSource(rapl_root=str(RAPL_ROOT))
    assert balanced(pynvml)


def test_cpu_package_plus_gpu_through_the_factory(install):
    install(gpus=[FakeGpu(), FakeGpu()])
    try:
        selection = open_live("nvml+rapl:1")
    except UserError as exc:  # this machine's RAPL is unreadable (root only since Linux 5.10) or absent
        assert "'nvml+rapl' is not available: the CPU part" in str(exc)
        return
    assert selection.source.rails[-1] == "gpu1"
    selection.source.close()


# -- registration ---------------------------------------------------------------------------------------------------


def test_registered_but_not_in_auto():
    assert SOURCES["nvml"] is NvmlSource and SOURCES["nvml+rapl"] is NvmlRaplSource
    assert "nvml" not in AUTO_ORDER and "nvml+rapl" not in AUTO_ORDER
    for specs in (SPECS, MEASURING_SPECS):
        assert "nvml[:INDEX]" in specs and "nvml+rapl[:INDEX]" in specs


def test_factory_passes_the_index(install):
    install(gpus=[FakeGpu(), FakeGpu()])
    assert open_source("nvml:1").source.rails == ("gpu1",)
    assert open_source("NVML").source.rails == ("gpu0", "gpu1")
    with pytest.raises(UserError, match="'nvml' is not available: GPU index 'a' is not valid"):
        open_source("nvml:a")


def test_read_and_conditions_from_two_threads(install):
    install(gpus=[FakeGpu()])
    source = NvmlSource()
    errors = []

    def poll():
        try:
            for _ in range(200):
                source.conditions()
        except Exception as exc:  # noqa: BLE001 - any failure fails the test
            errors.append(exc)

    thread = threading.Thread(target=poll)
    thread.start()
    for _ in range(200):
        source.read()
    thread.join()
    assert errors == []


def test_a_gpu_nvml_cannot_open_is_left_out_unless_named(install):
    install(gpus=[FakeGpu(errors={"nvmlDeviceGetName": 15}), FakeGpu()])
    selection = open_source("nvml")
    assert selection.source.rails == ("gpu1",)
    assert selection.notes == ["nvml: GPU 0: NVML cannot open it (GPU is lost): left out of the total"]
    with pytest.raises(UserError, match=r"GPU 0: NVML cannot open it \(GPU is lost\)"):
        open_source("nvml:0")


def test_a_sweep_records_the_gpus_conditions_over_its_window(install, sleep_backend, sleep_runner, model_path,
                                                             list_sink):
    """The sweep asks the power source for its devices' conditions at the window's start and end: each GPU clock
    as a two-reading figure, its temperature at either end, a throttle reason seen."""
    from dnnprof.agent.measure import profiler
    from dnnprof.agent.measure.sweep import Sweep
    from dnnprof.shared import onnxfile

    install(gpus=[FakeGpu(temperature_c=58, reasons=0x4)])
    source = NvmlSource()
    backend = sleep_backend(lambda model, batch: sleep_runner(lambda n: 0.002))
    settings = profiler.Settings(warmup_min_s=0.0, warmup_min_iterations=1, warmup_max_s=0.05, window_min_s=0.1,
                                 window_max_s=0.2, min_iterations=3, min_power_samples=0, latency_ci=0.9,
                                 power_ci=0.9, idle_s=0.0)
    try:
        [result] = Sweep(board="gpu-box", run_id="r1", models=[onnxfile.load(model_path)], batches=[1],
                         backend=backend, power=source, settings=settings).run(list_sink())
    finally:
        source.close()
    c = result.conditions
    assert c.frequencies_mhz["gpu0:graphics"].samples == 2 and c.frequencies_mhz["gpu0:graphics"].max == 1755.0
    assert c.frequencies_mhz["gpu0:mem"].mean == 2619.0
    assert c.temperatures_start_c["gpu0"] == 58.0 and c.temperatures_end_c["gpu0"] == 58.0
    assert "nvml_sw_power_cap:gpu0" in c.throttle_reasons
