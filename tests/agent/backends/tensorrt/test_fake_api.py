"""The fake tensorrt (tests/fakes/fake_tensorrt.py) against the recorded API of the real bindings
(../shared/reference/tensorrt-api/*.json, read from NVIDIA's wheels): every module name, class member, enum member
and value, property (and whether it is settable) and argument name the fake offers exists in the real version it
imitates, on its classes and on the objects a build makes. The fake may have less than the real module, never more.

Skipped where the reference is not next to the checkout."""

from __future__ import annotations

import enum
import inspect
import json
import re
from pathlib import Path

import pytest

from dnnprof.shared import onnxfile

REFERENCE = Path(__file__).resolve().parents[4].parent / "shared" / "reference" / "tensorrt-api"
# Each version the tests' fakes imitate → the recorded release it is checked against. 8.5 had no wheel for Python
# 3.11: its fake is checked against 8.6 (the two share the API dnnprof uses).
RECORDED = {"8.5.2": "8_6", "8.6.2": "8_6", "10.0.1": "10_0", "10.1.0": "10_1", "10.3.0": "10_3", "10.13.3": "10_13",
            "10.16.1": "10_16", "11.0.0": "11_0", "11.4.0": "11_4"}

pytestmark = pytest.mark.skipif(not REFERENCE.is_dir(), reason=f"no recorded TensorRT API at {REFERENCE}")


def reference(version: str) -> dict:
    return json.loads((REFERENCE / f"tensorrt-{RECORDED[version]}.json").read_text())


def _split(params: str) -> list[str]:
    """A pybind signature's parameter list split at its top-level commas."""
    parts, depth, current = [], 0, ""
    for ch in params:
        if ch in "[(<{":
            depth += 1
        elif ch in "])>}":
            depth -= 1
        if ch == "," and depth == 0:
            parts.append(current)
            current = ""
        else:
            current += ch
    return [p.strip() for p in parts + [current] if p.strip()]


def overloads(member: dict) -> list[list[str]]:
    """The parameter names of each overload of a recorded method (``self`` left out)."""
    names = []
    for sig in member.get("sig", []):
        sig = re.sub(r"^\d+\. ", "", sig)
        params = sig[sig.index("(") + 1: sig.rindex(") ->") if ") ->" in sig else sig.rindex(")")]
        names.append([p.split(":")[0].split("=")[0].strip() for p in _split(params)][1:])
    return names


def _own(cls: type, name: str) -> type | None:
    """The class of ``cls``'s MRO that defines ``name``."""
    return next((c for c in cls.__mro__ if name in vars(c)), None)


def check_class(fake_cls: type, real: dict, where: str) -> list[str]:
    problems = []
    if issubclass(fake_cls, enum.Enum):
        values = real.get("enum") or {}
        for name, member in fake_cls.__members__.items():
            if name not in values:
                problems.append(f"{where}.{name}: no such member")
            elif values[name] != int(member):
                problems.append(f"{where}.{name} = {int(member)}, the real one is {values[name]}")
        return problems
    members = real["members"]
    for name in dir(fake_cls):
        owner = _own(fake_cls, name)
        if name.startswith("_") or owner in (object, bytes, int):
            continue  # private to the fake, or the buffer protocol's carrier (IHostMemory)
        if name not in members:
            problems.append(f"{where}.{name}: no such member")
            continue
        value, kind = vars(owner)[name], members[name].get("kind")
        if isinstance(value, property):
            if kind != "property":
                problems.append(f"{where}.{name} is a property in the fake, a {kind} in the real module")
            elif value.fset is not None and not members[name].get("settable"):
                problems.append(f"{where}.{name} is settable in the fake, read-only in the real module")
        elif inspect.isfunction(value) and kind == "instancemethod":
            problems += check_arguments(value, members[name], f"{where}.{name}")
        elif inspect.isfunction(value) and kind != "instancemethod":
            problems.append(f"{where}.{name} is a method in the fake, a {kind} in the real module")
    init = vars(fake_cls).get("__init__")
    if init is not None and "__init__" in members and members["__init__"].get("sig"):
        problems += check_arguments(inspect.unwrap(init), members["__init__"], f"{where}.__init__")
    return problems


def check_arguments(function, member: dict, where: str) -> list[str]:
    params = [p for p in list(inspect.signature(function).parameters.values())[1:]
              if p.kind not in (p.VAR_POSITIONAL, p.VAR_KEYWORD)]
    real = overloads(member)
    if not real:
        return []
    names = [p.name for p in params]
    if any(names == r[: len(names)] for r in real):
        return []
    return [f"{where}({', '.join(names)}): the real overloads take {real}"]


def check_object(obj, classes: dict, where: str) -> list[str]:
    """Public attributes an object of the fake holds itself must be members of its real class."""
    real = classes[type(obj).__name__]["members"]
    return [f"{where}.{name}: no such member" for name in vars(obj) if not name.startswith("_") and name not in real]


@pytest.mark.parametrize("version", list(RECORDED))
def test_the_fake_has_nothing_the_real_module_lacks(install_fakes, version):
    trt, _ = install_fakes(version)
    real = reference(version)
    modules, classes = real["module"], real["classes"]
    problems = []
    for name, value in vars(trt).items():
        if name.startswith("__") or name == "_fake":
            continue
        if name not in modules and name not in classes:
            problems.append(f"tensorrt.{name}: no such name")
        elif isinstance(value, type):
            problems += check_class(value, classes[name], name)
    assert problems == [], "\n".join(problems)


@pytest.mark.parametrize("version", list(RECORDED))
def test_the_objects_of_a_build_have_nothing_the_real_ones_lack(install_fakes, version, tmp_path, make_onnx):
    trt, cuda = install_fakes(version)
    classes = reference(version)["classes"]
    model = onnxfile.load(make_onnx(tmp_path / "tiny.onnx"))
    logger = trt.Logger()
    builder = trt.Builder(logger)
    flags = 1 << int(trt.NetworkDefinitionCreationFlag.EXPLICIT_BATCH) if version.startswith("8.") else 0
    network = builder.create_network(flags)
    parser = trt.OnnxParser(network, logger)
    assert parser.parse_from_file(str(model.path))
    config = builder.create_builder_config()
    config.set_memory_pool_limit(trt.MemoryPoolType.WORKSPACE, 1 << 20)
    profile = builder.create_optimization_profile()
    profile.set_shape("x0", (1, 3, 8, 8), (1, 3, 8, 8), (1, 3, 8, 8))
    config.add_optimization_profile(profile)
    cache = config.create_timing_cache(b"")
    config.set_timing_cache(cache, ignore_mismatch=False)
    plan = builder.build_serialized_network(network, config)
    runtime = trt.Runtime(logger)
    cuda.init()
    ctx = cuda.Device(0).retain_primary_context()
    ctx.push()
    try:
        engine = runtime.deserialize_cuda_engine(plan)
        context = engine.create_execution_context()
    finally:
        cuda.Context.pop()
    objects = {"logger": logger, "builder": builder, "network": network, "parser": parser, "config": config,
               "profile": profile, "cache": cache, "plan": plan, "runtime": runtime, "engine": engine,
               "context": context, "input": network.get_input(0), "output": network.get_output(0)}
    problems = []
    for where, obj in objects.items():
        problems += check_object(obj, classes, where)
    assert problems == [], "\n".join(problems)


def test_the_checks_catch_a_looser_fake(install_fakes):
    """The checks themselves: an enum value, a member, an argument and a settable property the real 11.0 lacks."""
    trt, _ = install_fakes("11.0.0")
    classes = reference("11.0.0")["classes"]
    loose_flag = enum.IntEnum("BuilderFlag", {"FP16": 0, "DEBUG": 3})
    assert check_class(loose_flag, classes["BuilderFlag"], "BuilderFlag") == [
        "BuilderFlag.FP16: no such member", "BuilderFlag.DEBUG = 3, the real one is 2"]

    class Engine(trt.ICudaEngine):
        device_memory_size = property(lambda self: 0)
        num_io_tensors = property(lambda self: 0, lambda self, value: None)

        def get_tensor_name(self, index, extra=None):
            return ""

    problems = check_class(Engine, classes["ICudaEngine"], "ICudaEngine")
    assert "ICudaEngine.device_memory_size: no such member" in problems
    assert "ICudaEngine.num_io_tensors is settable in the fake, read-only in the real module" in problems
    assert any(p.startswith("ICudaEngine.get_tensor_name(index, extra)") for p in problems)
