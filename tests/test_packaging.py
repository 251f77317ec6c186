"""The front door, as a new user meets it: ``python -m build`` makes an sdist and a wheel from the checkout, and each
installs into a fresh venv with its role's extra — the wheel with ``host``, the sdist with ``cpu`` — where the
commands run and the role's modules import without the other role's dependencies. ``jetson`` cannot install without
CUDA (pycuda compiles against it), so only its metadata is checked.

What is expected is read from the source tree, never listed here: every folder under ``agent/``, ``host/`` and
``shared/`` holding an ``__init__.py`` must be in the wheel as ``dnnprof.<folder>``, so a package someone forgets to
list in ``[tool.setuptools] packages`` (pyproject.toml) fails here, not on a user's board.

The build runs on a copy of the checkout (its git files, as a fresh clone has them) with a ``.venv/``, a stale
``build/lib`` and a ``models/`` folder added, as a used checkout has: none of them may reach the sdist or the wheel.
These are real builds and installs: they need ``build`` (in the ``dev`` extra) and PyPI or a mirror, and fail, never
skip, without them. Both installs run at once; about a minute in all.
"""

from __future__ import annotations

import configparser
import email.parser
import json
import os
import shutil
import subprocess
import sys
import tarfile
import zipfile
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from pathlib import Path

import pytest
from packaging.requirements import Requirement
from packaging.utils import canonicalize_name

ROOT = Path(__file__).resolve().parents[1]
# The code folders and the packages they become (pyproject.toml, [tool.setuptools.package-dir]).
CODE = {"agent": "dnnprof.agent", "host": "dnnprof.host", "shared": "dnnprof.shared"}
# What a used checkout has besides its git files: none of it belongs in an sdist or a wheel.
DECOYS = {
    ".venv/lib/python3/site-packages/decoy_venv.py": "raise ImportError('from the checkout venv')\n",
    "build/lib/dnnprof/agent/stale_module.py": "# left by an earlier in-tree build, before a move\n",
    "models/decoy.onnx": "not a model\n",
}
# The dependency rule: a board never pulls the host's stack, a host never pulls an inference runtime.
NOT_ON_BOARD = ["pandas", "matplotlib", "pyarrow", "amqtt"]
NOT_ON_HOST = ["onnxruntime", "pycuda", "tensorrt"]
INSTALL_TIMEOUT_S = 900


@dataclass(frozen=True)
class Dists:
    src: Path  # the copy they were built from
    sdist: Path
    wheel: Path


def _git_files() -> list[str] | None:
    """The checkout's files as a fresh clone would have them (tracked, plus new files git does not ignore), or None
    outside a git checkout."""
    try:
        out = subprocess.run(["git", "ls-files", "-z", "--cached", "--others", "--exclude-standard"], cwd=ROOT,
                             capture_output=True, check=True, timeout=60).stdout
    except (OSError, subprocess.SubprocessError):
        return None
    return [name for name in out.decode().split("\0") if name]


def _copy_checkout(dest: Path) -> None:
    names = _git_files()
    if names is None:  # an unpacked sdist or a plain copy: leave out what venvs and builds write
        shutil.copytree(ROOT, dest, ignore=shutil.ignore_patterns(
            ".git", ".venv", "build", "dist", "*.egg-info", "__pycache__", ".pytest_cache", ".hypothesis"))
    else:
        for name in names:
            source = ROOT / name
            if source.is_file():  # a file deleted but not yet staged is listed and absent
                (dest / name).parent.mkdir(parents=True, exist_ok=True)
                shutil.copy2(source, dest / name)
    for name, text in DECOYS.items():
        (dest / name).parent.mkdir(parents=True, exist_ok=True)
        (dest / name).write_text(text)


def _code_files(src: Path) -> list[str]:
    """Every Python file of the three code folders, relative to ``src``."""
    return sorted(str(p.relative_to(src)) for folder in CODE for p in (src / folder).rglob("*.py")
                  if "__pycache__" not in p.parts)


def _in_wheel(path: str) -> str:
    folder, _, rest = path.partition("/")
    return CODE[folder].replace(".", "/") + "/" + rest


def _modules(src: Path, *folders: str) -> list[str]:
    """The importable modules of these code folders, derived from their files."""
    names = []
    for path in _code_files(src):
        folder, _, rest = path.partition("/")
        if folder not in folders or rest.endswith("__main__.py"):
            continue
        parts = rest[: -len(".py")].split("/")
        if parts[-1] == "__init__":
            parts.pop()
        names.append(".".join([CODE[folder], *parts]))
    return names


@pytest.fixture(scope="module")
def dists(tmp_path_factory) -> Dists:
    """``python -m build`` on a copy of the checkout: the sdist, then the wheel built from that sdist (build's default,
    which is also what the README tells users to run)."""
    try:
        import build  # noqa: F401
    except ImportError:
        pytest.fail(f"`python -m build` is missing from {sys.executable}: install the dev extra (make setup, or "
                    "pip install -e '.[dev]'), which has it")
    base = tmp_path_factory.mktemp("packaging")
    src, out = base / "src", base / "dist"
    _copy_checkout(src)
    proc = subprocess.run([sys.executable, "-m", "build", "--outdir", str(out), str(src)], capture_output=True,
                          text=True, timeout=INSTALL_TIMEOUT_S)
    if proc.returncode != 0:
        pytest.fail(f"python -m build failed (exit {proc.returncode}); its isolated build environment installs "
                    f"setuptools from PyPI or a mirror:\n{(proc.stdout + proc.stderr)[-4000:]}")
    sdists, wheels = sorted(out.glob("*.tar.gz")), sorted(out.glob("*.whl"))
    assert len(sdists) == 1 and len(wheels) == 1, f"expected one sdist and one wheel, got {os.listdir(out)}"
    return Dists(src, sdists[0], wheels[0])


def _wheel_metadata(wheel: Path) -> tuple[list[str], str, str]:
    """(file names, METADATA, entry_points.txt) of a wheel."""
    with zipfile.ZipFile(wheel) as zf:
        names = zf.namelist()
        info = next(n.split("/")[0] for n in names if n.split("/")[0].endswith(".dist-info"))
        return names, zf.read(f"{info}/METADATA").decode(), zf.read(f"{info}/entry_points.txt").decode()


def test_sdist_has_the_code_and_nothing_a_used_checkout_adds(dists: Dists):
    with tarfile.open(dists.sdist) as tf:
        members = [m.name.partition("/")[2] for m in tf.getmembers() if m.isfile()]
    for needed in ("PKG-INFO", "pyproject.toml", "README.md"):
        assert needed in members, f"{needed} is not in {dists.sdist.name}"
    missing = sorted(set(_code_files(dists.src)) - set(members))
    assert not missing, f"{dists.sdist.name} lacks source files: {missing}"
    swept = [m for m in members if m.split("/")[0] in {".venv", "build", "dist", "models", ".git"}
             or "__pycache__" in m.split("/") or m.endswith(".pyc")]
    assert not swept, f"{dists.sdist.name} carries what is no source: {swept}"


def test_wheel_has_every_package_of_the_tree_and_only_under_dnnprof(dists: Dists):
    names, _, _ = _wheel_metadata(dists.wheel)
    packages = sorted({str(Path(f).parent) for f in _code_files(dists.src) if Path(f).name == "__init__.py"})
    assert packages, f"no packages found under {dists.src}"
    absent = [f"{CODE[p.split('/')[0]]}{'.' + '.'.join(p.split('/')[1:]) if '/' in p else ''} ({p}/)"
              for p in packages if _in_wheel(f"{p}/__init__.py") not in names]
    assert not absent, (f"packages of the tree missing from {dists.wheel.name}: {absent}; list them in "
                        "[tool.setuptools] packages in pyproject.toml")
    missing = [f for f in _code_files(dists.src) if _in_wheel(f) not in names]
    assert not missing, (f"source files missing from {dists.wheel.name} (in a folder without __init__.py, or not "
                         f"listed in pyproject.toml): {missing}")
    expected = {_in_wheel(str(f.relative_to(dists.src))) for folder in CODE for f in (dists.src / folder).rglob("*")
                if f.is_file() and "__pycache__" not in f.parts}
    code = [n for n in names if not n.split("/")[0].endswith(".dist-info")]
    strays = sorted(set(code) - expected)
    assert not strays, f"{dists.wheel.name} has files that are not in the tree (a stale build/?): {strays}"
    tops = sorted({n.split("/")[0] for n in names if not n.split("/")[0].endswith(".dist-info")})
    assert tops == ["dnnprof"], f"top-level packages in {dists.wheel.name}: {tops} (only dnnprof belongs there)"


def test_wheel_has_both_console_scripts_and_their_modules(dists: Dists):
    names, _, entry_points = _wheel_metadata(dists.wheel)
    parser = configparser.ConfigParser()
    parser.read_string(entry_points)
    scripts = dict(parser["console_scripts"]) if parser.has_section("console_scripts") else {}
    assert {"dnnagent", "dnnhost"} <= scripts.keys(), f"console scripts: {scripts}"
    for script in ("dnnagent", "dnnhost"):
        module, _, func = scripts[script].partition(":")
        assert func, f"{script} = {scripts[script]}: no function"
        path = module.replace(".", "/")
        assert f"{path}.py" in names or f"{path}/__init__.py" in names, (
            f"{script} runs {scripts[script]}, but {dists.wheel.name} has no module {module}")


def _extra_requirements(metadata: str, extra: str) -> set[str]:
    """The distributions an extra adds to the base install, by Requires-Dist."""
    names = set()
    for line in email.parser.Parser().parsestr(metadata).get_all("Requires-Dist") or []:
        req = Requirement(line)
        if req.marker is not None and req.marker.evaluate({"extra": extra}) \
                and not req.marker.evaluate({"extra": ""}):
            names.add(canonicalize_name(req.name))
    return names


def test_extras_metadata_keeps_each_role_to_its_dependencies(dists: Dists):
    _, metadata, _ = _wheel_metadata(dists.wheel)
    extras = set(email.parser.Parser().parsestr(metadata).get_all("Provides-Extra") or [])
    assert {"cpu", "jetson", "host", "dev"} <= extras, f"Provides-Extra: {sorted(extras)}"
    jetson = _extra_requirements(metadata, "jetson")
    assert {"pycuda", "jetson-stats"} <= jetson, f"jetson extra: {sorted(jetson)}"
    cpu = _extra_requirements(metadata, "cpu")
    assert "onnxruntime" in cpu, f"cpu extra: {sorted(cpu)}"
    host = _extra_requirements(metadata, "host")
    assert {"pandas", "matplotlib"} <= host, f"host extra: {sorted(host)}"
    for extra, names, forbidden in (("jetson", jetson, [*NOT_ON_BOARD, "onnxruntime"]),
                                    ("cpu", cpu, [*NOT_ON_BOARD, "pycuda", "tensorrt"]),
                                    ("host", host, NOT_ON_HOST)):
        assert not names & set(forbidden), f"{extra} extra pulls {sorted(names & set(forbidden))}"


# --- real installs -------------------------------------------------------------------------------------------------

def _env(venv: Path) -> dict[str, str]:
    """The environment of a shell where only this venv is active: nothing from the checkout or the test's venv."""
    env = {k: v for k, v in os.environ.items() if k not in {"PYTHONPATH", "PYTHONHOME", "VIRTUAL_ENV", "PYTHONSTARTUP"}}
    env["VIRTUAL_ENV"] = str(venv)
    env["PATH"] = f"{venv / 'bin'}{os.pathsep}{env.get('PATH', '')}"
    return env


def _install(venv: Path, requirement: str) -> str | None:
    """A fresh venv with ``pip install REQUIREMENT`` in it, as a user would type it; None, or why it failed."""
    started = subprocess.run([sys.executable, "-m", "venv", str(venv)], capture_output=True, text=True)
    if started.returncode != 0:
        return f"python -m venv {venv} failed: {started.stderr[-2000:]}"
    proc = subprocess.run([str(venv / "bin" / "python"), "-m", "pip", "install", requirement], cwd=venv,
                          env=_env(venv), capture_output=True, text=True, timeout=INSTALL_TIMEOUT_S)
    if proc.returncode != 0:
        return (f"pip install '{requirement}' failed (exit {proc.returncode}); it needs PyPI or a mirror:\n"
                f"{(proc.stdout + proc.stderr)[-4000:]}")
    return None


@pytest.fixture(scope="module")
def venvs(dists: Dists, tmp_path_factory) -> dict[str, tuple[Path, str | None]]:
    """``role -> (venv, error or None)``: the wheel installed with ``[host]``, the sdist with ``[cpu]``, side by
    side (the installs are mostly waiting on downloads and unpacking)."""
    base = tmp_path_factory.mktemp("venvs")
    plan = {"host": (base / "host", f"{dists.wheel}[host]"), "cpu": (base / "cpu", f"{dists.sdist}[cpu]")}
    with ThreadPoolExecutor(len(plan)) as pool:
        futures = {role: pool.submit(_install, venv, req) for role, (venv, req) in plan.items()}
        return {role: (plan[role][0], future.result()) for role, future in futures.items()}


def _venv(venvs, role: str) -> Path:
    venv, error = venvs[role]
    if error:
        pytest.fail(error)
    return venv


def _run(venv: Path, *args: str, cwd: Path) -> str:
    proc = subprocess.run(list(args), cwd=cwd, env=_env(venv), capture_output=True, text=True, timeout=300)
    assert proc.returncode == 0, f"{' '.join(args)} exited {proc.returncode}:\n{(proc.stdout + proc.stderr)[-3000:]}"
    return proc.stdout


# Imports every module it is given from the installed distribution; says which failed, which came from elsewhere
# than the venv, and which of the forbidden distributions can be imported at all.
IMPORT_CHECK = """
import importlib, importlib.util, json, sys
modules, forbidden = json.loads(sys.argv[1]), json.loads(sys.argv[2])
failed, outside = {}, []
for name in modules:
    try:
        module = importlib.import_module(name)
    except BaseException as exc:
        failed[name] = f"{type(exc).__name__}: {exc}"
    else:
        if not str(getattr(module, "__file__", "")).startswith(sys.prefix):
            outside.append(f"{name} from {module.__file__}")
print(json.dumps({"failed": failed, "outside": outside,
                  "present": [n for n in forbidden if importlib.util.find_spec(n) is not None]}))
"""


def _check_imports(venv: Path, modules: list[str], forbidden: list[str], cwd: Path, role: str) -> None:
    out = _run(venv, str(venv / "bin" / "python"), "-c", IMPORT_CHECK, json.dumps(modules), json.dumps(forbidden),
               cwd=cwd)
    found = json.loads(out.strip().splitlines()[-1])
    assert not found["failed"], f"modules that do not import in the {role} install: {found['failed']}"
    assert not found["outside"], f"modules not imported from the {role} venv: {found['outside']}"
    assert not found["present"], f"the {role} install pulled {found['present']}"


def test_sdist_with_cpu_extra_runs_the_agent(dists: Dists, venvs, tmp_path: Path):
    venv = _venv(venvs, "cpu")
    dnnagent = str(venv / "bin" / "dnnagent")
    assert "run" in _run(venv, dnnagent, "--help", cwd=tmp_path)
    assert "dnnprof.agent.cli" in _modules(dists.src, "agent")
    _check_imports(venv, _modules(dists.src, "agent", "shared"), NOT_ON_BOARD, tmp_path, "cpu")
    assert "squeezenet1_1" in _run(venv, dnnagent, "models", "list", cwd=tmp_path)
    _run(venv, dnnagent, "models", "generate", "squeezenet1_1", "--out", str(tmp_path / "models"), "--quiet",
         cwd=tmp_path)
    assert (tmp_path / "models" / "squeezenet1_1.onnx").stat().st_size > 1_000_000
    assert "onnxruntime" in _run(venv, dnnagent, "info", cwd=tmp_path)


def test_wheel_with_host_extra_runs_the_host(dists: Dists, venvs, tmp_path: Path):
    venv = _venv(venvs, "host")
    dnnhost = str(venv / "bin" / "dnnhost")
    assert "collect" in _run(venv, dnnhost, "--help", cwd=tmp_path)
    assert "dnnprof.host.cli" in _modules(dists.src, "host")
    _check_imports(venv, _modules(dists.src, "host", "shared"), NOT_ON_HOST, tmp_path, "host")
    _run(venv, dnnhost, "catalog", cwd=tmp_path)
    # The README's fuller example, with figures: pandas, matplotlib and the HTML page from the installed wheel.
    db = str(tmp_path / "ex.sqlite")
    _run(venv, dnnhost, "import", str(dists.src / "docs/examples/dev-2c-zoo-results.jsonl"), "--db", db,
         cwd=tmp_path)
    _run(venv, dnnhost, "report", "--db", db, "--energy-budget", "200mJ", "--plots", str(tmp_path / "figs"),
         "--out", str(tmp_path / "report.html"), cwd=tmp_path)
    assert (tmp_path / "report.html").stat().st_size > 0 and list((tmp_path / "figs").glob("*.png"))
