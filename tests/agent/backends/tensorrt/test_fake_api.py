"""The fake tensorrt (tests/fakes/fake_tensorrt.py) against the recorded API of the real bindings: every module name,
class, base class, constructor, class member, enum member and value, property (and whether it is settable), argument
name, argument default and required argument the fake offers must be what the real version it imitates has, on its
classes and on the objects a build makes. The fake may have less than the real module, never more, and may not
accept a call the real one refuses.

The facts come from tests/data/tensorrt-api/ (an extract of ../shared/reference/tensorrt-api, read from NVIDIA's
binding wheels; README.md there), committed with the tests, so these checks run everywhere and never skip. Only
``test_the_extract_is_what_the_recorded_api_says`` needs the full recording next to the checkout.

The conformance matrix (docs/TENSORRT.md, "What is verified"): every fake version below × every check here."""

from __future__ import annotations

import enum
import importlib.util
import inspect
import json
import re
from pathlib import Path

import pytest

from dnnprof.shared import onnxfile

DATA = Path(__file__).resolve().parents[3] / "data" / "tensorrt-api"
SHARED = Path(__file__).resolve().parents[4].parent / "shared" / "reference" / "tensorrt-api"
# Each version the tests' fakes imitate → the recorded release it is checked against. 8.5 had no wheel for Python
# 3.11: its fake is checked against 8.6 (the two share the API dnnprof uses). 8.6 is JetPack 6.0, 10.3 JetPack 6.1+,
# 10.13 JetPack 7 (Thor); 10.0, 10.1, 10.16, 11.0 and 11.4 are pip wheels for other NVIDIA GPUs.
RECORDED = {"8.5.2": "8_6", "8.6.2": "8_6", "10.0.1": "10_0", "10.1.0": "10_1", "10.3.0": "10_3", "10.13.3": "10_13",
            "10.16.1": "10_16", "11.0.0": "11_0", "11.4.0": "11_4"}
NO_CONSTRUCTOR = "No constructor defined"  # what pybind11 raises for a class bound without py::init


def reference(version: str) -> dict:
    return json.loads((DATA / f"tensorrt-{RECORDED[version]}.json").read_text(encoding="utf-8"))


# -- pybind signatures ---------------------------------------------------------------------------------------------


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


def overloads(member: dict) -> list[list[tuple[str, str | None]]]:
    """Each overload of a recorded method as (parameter name, default as pybind prints it, or None) pairs, ``self``
    left out."""
    result = []
    for sig in member.get("sig", []):
        sig = re.sub(r"^\d+\. ", "", sig)
        params = sig[sig.index("(") + 1: sig.rindex(") ->") if ") ->" in sig else sig.rindex(")")]
        pairs = []
        for p in _split(params):
            name, _, default = p.partition("=")
            pairs.append((name.split(":")[0].strip(), default.strip() or None))
        result.append(pairs[1:])
    return result


_UNCOMPARABLE = object()


def _real_default(text: str):
    """A recorded default as a Python value where it can be compared: None, an int, a bool, an enum member
    (``<Severity.WARNING: 2>`` → ("WARNING", 2))."""
    if text in ("None", "True", "False"):
        return {"None": None, "True": True, "False": False}[text]
    if re.fullmatch(r"-?\d+", text):
        return int(text)
    member = re.fullmatch(r"<\w+\.(\w+): (-?\d+)>", text)
    if member:
        return member.group(1), int(member.group(2))
    return _UNCOMPARABLE


def _same_default(fake, real_text: str) -> bool:
    real = _real_default(real_text)
    if real is _UNCOMPARABLE:
        return True
    if isinstance(fake, enum.Enum):
        return isinstance(real, tuple) and (fake.name, int(fake.value)) == real
    return not isinstance(real, tuple) and fake == real and type(fake) is type(real)


def check_arguments(function, member: dict, where: str) -> list[str]:
    """The fake's parameters must be a leading part of one real overload's, the real one may require nothing more,
    and a parameter with a default in the fake must have the same default in the real one."""
    params = list(inspect.signature(function).parameters.values())
    if any(p.kind == p.VAR_POSITIONAL for p in params):
        return []  # a tripwire that fails the test whatever it is called with (the fake's deprecated calls)
    params = [p for p in params[1:] if p.kind != p.VAR_KEYWORD]
    real = overloads(member)
    if not real:
        return []
    names = [p.name for p in params]
    for overload in real:
        if names != [n for n, _ in overload[: len(names)]]:
            continue
        if any(default is None for _, default in overload[len(names):]):
            continue  # the real one needs an argument the fake does without
        if all(p.default is p.empty or (d is not None and _same_default(p.default, d))
               for p, (_, d) in zip(params, overload)):
            return []
    shown = [f"{p.name}={p.default!r}" if p.default is not p.empty else p.name for p in params]
    takes = [[n if d is None else f"{n}={d}" for n, d in o] for o in real]
    return [f"{where}({', '.join(shown)}): the real overloads take {takes}"]


# -- the checks ------------------------------------------------------------------------------------------------------


def _own(cls: type, name: str) -> type | None:
    """The class of ``cls``'s MRO that defines ``name``."""
    return next((c for c in cls.__mro__ if name in vars(c)), None)


def _real_bases(name: str, classes: dict) -> set[str]:
    """Every base of a real class, transitively, as far as the extract records them."""
    seen, todo = set(), list(classes.get(name, {}).get("bases", []))
    while todo:
        base = todo.pop()
        if base not in seen:
            seen.add(base)
            todo += classes.get(base, {}).get("bases", [])
    return seen


def check_class(fake_cls: type, real: dict, where: str, public: dict | None = None, classes: dict | None = None
                ) -> list[str]:
    """``public``: the fake module's public classes (name → class), to check base classes against ``classes``."""
    problems = []
    if issubclass(fake_cls, enum.Enum):
        if "enum" not in real:
            return [f"{where} is an enum in the fake, a class in the real module"]
        values = real["enum"]
        for name, member in fake_cls.__members__.items():
            if name not in values:
                problems.append(f"{where}.{name}: no such member")
            elif values[name] != int(member):
                problems.append(f"{where}.{name} = {int(member)}, the real one is {values[name]}")
        return problems
    if "enum" in real:
        return [f"{where} is a class in the fake, an enum in the real module"]
    if public is not None:
        by_class = {cls: name for name, cls in public.items()}
        for base in fake_cls.__mro__[1:]:
            name = by_class.get(base)
            if name is not None and name not in _real_bases(where, classes or {}):
                problems.append(f"{where} derives from {name} in the fake, not in the real module")
    members = real["members"]
    for name in dir(fake_cls):
        owner = _own(fake_cls, name)
        if name.startswith("_") or owner in (object, bytes, int):
            continue  # private to the fake, or the buffer protocol's carrier (IHostMemory: see check_object)
        if name not in members:
            problems.append(f"{where}.{name}: no such member")
            continue
        value, kind = vars(owner)[name], members[name].get("kind")
        if isinstance(value, property):
            if kind != "property":
                problems.append(f"{where}.{name} is a property in the fake, a {kind} in the real module")
            elif value.fset is not None and not members[name].get("settable"):
                problems.append(f"{where}.{name} is settable in the fake, read-only in the real module")
        elif inspect.isfunction(value):
            if kind != "instancemethod":
                problems.append(f"{where}.{name} is a method in the fake, a {kind} in the real module")
            else:
                problems += check_arguments(value, members[name], f"{where}.{name}")
        elif isinstance(value, type):
            if kind != "pybind11_type":
                problems.append(f"{where}.{name} is a class in the fake, a {kind} in the real module")
        elif type(value).__name__ != kind:
            problems.append(f"{where}.{name} is a {type(value).__name__} in the fake, a {kind} in the real module")
    init = members.get("__init__", {})
    if init.get("kind") == "wrapper_descriptor":  # pybind11's own: the class has no Python constructor
        try:
            fake_cls()
        except TypeError as exc:
            if NO_CONSTRUCTOR not in str(exc):
                problems.append(f"{where}() fails with {exc!r}, the real one with '{NO_CONSTRUCTOR}!'")
        else:
            problems.append(f"{where}() constructs an object in the fake; the real class has no constructor")
    elif "__init__" in vars(fake_cls) and init.get("sig"):
        problems += check_arguments(inspect.unwrap(vars(fake_cls)["__init__"]), init, f"{where}.__init__")
    return problems


def check_module(trt, real: dict) -> list[str]:
    """Every public name of the fake module exists in the real one, with the same type; every class passes
    check_class."""
    modules, class_names, classes = real["module"], set(real["class_names"]), real["classes"]
    public = {name: value for name, value in vars(trt).items() if not name.startswith("_") and isinstance(value, type)}
    problems = []
    for name, value in vars(trt).items():
        if name.startswith("__") or name == "_fake":
            continue
        if isinstance(value, type):
            if name not in class_names:
                problems.append(f"tensorrt.{name}: no such class" + (" (a module-level value in the real module)"
                                                                      if name in modules else ""))
            elif name not in classes:
                problems.append(f"tensorrt.{name}: a real class, but not in the extract: add it to CLASSES in "
                                "tests/data/tensorrt-api/extract.py and run it")
            else:
                problems += check_class(value, classes[name], name, public, classes)
        elif name not in modules:
            problems.append(f"tensorrt.{name}: no such name" + (" (a class in the real module)"
                                                                 if name in class_names else ""))
        else:
            kind = "function" if inspect.isfunction(value) else type(value).__name__
            if kind != modules[name]:
                problems.append(f"tensorrt.{name} is a {kind} in the fake, a {modules[name]} in the real module")
    return problems


def check_object(obj, classes: dict, where: str) -> list[str]:
    """What an object of the fake offers itself — attributes it holds (which can be set, so the real property must be
    settable) and those of a built-in base (IHostMemory's bytes) — must be members of its real class."""
    real = classes[type(obj).__name__]["members"]
    problems = []
    for name in vars(obj):
        if name.startswith("_"):
            continue
        if name not in real:
            problems.append(f"{where}.{name}: no such member")
        elif real[name].get("kind") != "property" or not real[name].get("settable"):
            problems.append(f"{where}.{name} can be set in the fake, not in the real module")
    for name in dir(obj):
        if not name.startswith("_") and name not in real and name not in vars(obj) and hasattr(obj, name):
            problems.append(f"{where}.{name}: no such member")
    return problems


# -- the fakes of every version ----------------------------------------------------------------------------------------


def test_every_version_has_its_recorded_api_here():
    """The facts are committed with the tests: nothing here depends on the recording next to the checkout."""
    for version, recorded in RECORDED.items():
        data = reference(version)
        assert data["tensorrt_version"].startswith(recorded.replace("_", ".")), version
        assert data["classes"] and data["module"] and data["class_names"]


@pytest.mark.parametrize("version", list(RECORDED))
def test_the_fake_has_nothing_the_real_module_lacks(install_fakes, version):
    trt, _ = install_fakes(version)
    problems = check_module(trt, reference(version))
    assert problems == [], "\n".join(problems)


def _build(trt, cuda, version: str, model):
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
    bad = trt.OnnxParser(builder.create_network(flags), logger)
    return {"logger": logger, "builder": builder, "network": network, "parser": parser, "config": config,
            "profile": profile, "cache": cache, "plan": plan, "runtime": runtime, "engine": engine,
            "context": context, "input": network.get_input(0), "output": network.get_output(0), "bad_parser": bad}


@pytest.mark.parametrize("version", list(RECORDED))
def test_the_objects_of_a_build_have_nothing_the_real_ones_lack(install_fakes, version, tmp_path, make_onnx):
    trt, cuda = install_fakes(version)
    classes = reference(version)["classes"]
    objects = _build(trt, cuda, version, onnxfile.load(make_onnx(tmp_path / "tiny.onnx")))
    parser = objects.pop("bad_parser")
    assert not parser.parse_from_file(str(onnxfile.load(make_onnx(tmp_path / "odd.onnx", op="NoSuchOp")).path))
    objects["parser_error"] = parser.get_error(0)
    problems = []
    for where, obj in objects.items():
        problems += check_object(obj, classes, where)
    assert problems == [], "\n".join(problems)


# -- the checks themselves -------------------------------------------------------------------------------------------


def test_the_checks_catch_a_looser_fake(install_fakes):
    """An enum value, a member, an argument, a default, a missing required argument, a settable property, a
    constructor, a base class, a module-level value and an instance attribute the real 11.0 lacks."""
    trt, _ = install_fakes("11.0.0")
    real = reference("11.0.0")
    classes = real["classes"]
    loose_flag = enum.IntEnum("BuilderFlag", {"FP16": 0, "DEBUG": 3})
    assert check_class(loose_flag, classes["BuilderFlag"], "BuilderFlag") == [
        "BuilderFlag.FP16: no such member", "BuilderFlag.DEBUG = 3, the real one is 2"]
    assert check_class(enum.IntEnum("Builder", {"A": 0}), classes["Builder"], "Builder") == [
        "Builder is an enum in the fake, a class in the real module"]

    class Engine(trt.ICudaEngine):
        device_memory_size = property(lambda self: 0)
        num_io_tensors = property(lambda self: 0, lambda self, value: None)

        def get_tensor_name(self, index, extra=None):
            return ""

        def get_tensor_profile_shape(self, name):  # the real one needs profile_index too
            return ()

        def create_execution_context(self, strategy=1):  # the real default is STATIC (0)
            return None

        def __init__(self, plan=None):  # the real class has no constructor
            pass

    problems = check_class(Engine, classes["ICudaEngine"], "ICudaEngine")
    assert "ICudaEngine.device_memory_size: no such member" in problems
    assert "ICudaEngine.num_io_tensors is settable in the fake, read-only in the real module" in problems
    assert any(p.startswith("ICudaEngine.get_tensor_name(index, extra=None)") for p in problems)
    assert any(p.startswith("ICudaEngine.get_tensor_profile_shape(name)") for p in problems)
    assert any(p.startswith("ICudaEngine.create_execution_context(strategy=1)") for p in problems)
    assert "ICudaEngine() constructs an object in the fake; the real class has no constructor" in problems

    class Logger(trt.ILogger):
        def __init__(self, min_severity=trt.ILogger.Severity.ERROR) -> None:  # the real default is WARNING
            super().__init__()

    assert any(p.startswith("Logger.__init__(min_severity=") for p in check_class(Logger, classes["Logger"], "Logger"))

    public = {"Runtime": trt.Runtime, "Builder": type("Builder", (trt.Runtime,), {})}
    assert "Builder derives from Runtime in the fake, not in the real module" in check_class(
        public["Builder"], classes["Builder"], "Builder", public, classes)

    class Loose:
        pass

    loose = Loose()
    loose.nptype, loose.float32, loose.Severity, loose.Dims = trt.nptype, 0, trt.Logger, Loose
    assert check_module(loose, real) == [
        "tensorrt.float32 is a int in the fake, a DataType in the real module",
        "tensorrt.Severity: no such class", "tensorrt.Dims: a real class, but not in the extract: add it to CLASSES "
                                           "in tests/data/tensorrt-api/extract.py and run it"]

    context = object.__new__(trt.IExecutionContext)
    context.name = "settable in the real module"
    context.active_optimization_profile = 0  # a read-only property in the real module
    context.weights = b""  # no such member
    assert check_object(context, classes, "context") == [
        "context.active_optimization_profile can be set in the fake, not in the real module",
        "context.weights: no such member"]


def test_a_plan_offers_only_the_buffer_protocol(install_fakes, tmp_path, make_onnx):
    """The real IHostMemory has ``nbytes``, ``dtype`` and the buffer protocol (pyFoundationalTypes.cpp): no len(), no
    indexing, no bytes methods. The backend reads it through memoryview, as it must."""
    trt, cuda = install_fakes("10.3.0")
    plan = _build(trt, cuda, "10.3.0", onnxfile.load(make_onnx(tmp_path / "tiny.onnx")))["plan"]
    assert memoryview(plan).nbytes == plan.nbytes > 0
    for use in (len, lambda p: p[0], lambda p: list(p), lambda p: p + b""):
        with pytest.raises(TypeError):
            use(plan)
    with pytest.raises(AttributeError):
        plan.decode()


# -- the extract against the full recording ----------------------------------------------------------------------------


@pytest.mark.skipif(not SHARED.is_dir(), reason=f"no full recording of the TensorRT API at {SHARED}")
def test_the_extract_is_what_the_recorded_api_says():
    """tests/data/tensorrt-api/*.json are extract.py's output on the full recording, byte for byte."""
    spec = importlib.util.spec_from_file_location("dnnprof_tensorrt_api_extract", DATA / "extract.py")
    extract = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(extract)
    recorded = sorted(p.name for p in SHARED.glob("tensorrt-*.json"))
    assert recorded == sorted(p.name for p in DATA.glob("tensorrt-*.json"))
    for name in recorded:
        expected = extract.render(extract.extract(json.loads((SHARED / name).read_text(encoding="utf-8"))))
        assert (DATA / name).read_text(encoding="utf-8") == expected, f"{name}: run tests/data/tensorrt-api/extract.py"
