"""Fixtures of the ``dnnagent`` command tests: the real entry point (``python -m dnnprof.agent`` in a subprocess),
its one-line error check, and model folders generated once per module."""

import socket
import subprocess
import sys

import pytest

SMALL = "shufflenet_v2_x0_5"


def _dnnagent(*args, cwd, timeout=120) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, "-m", "dnnprof.agent", *map(str, args)], capture_output=True, text=True,
                          cwd=cwd, timeout=timeout)


def _one_error_line(proc: subprocess.CompletedProcess) -> str:
    assert proc.returncode != 0
    assert "Traceback" not in proc.stderr
    lines = proc.stderr.strip().splitlines()
    assert len(lines) == 1, proc.stderr
    assert lines[0].startswith("dnnagent: error: ")
    return lines[0]


@pytest.fixture(scope="session")
def dnnagent():
    """``dnnagent("run", ..., cwd=DIR)``: the agent's command line as a user runs it; the CompletedProcess."""
    return _dnnagent


@pytest.fixture(scope="session")
def one_error_line():
    """``one_error_line(proc)``: asserts a failed run said exactly one ``dnnagent: error:`` line; returns it."""
    return _one_error_line


@pytest.fixture(scope="session")
def free_port():
    """``free_port()``: a loopback port nothing listens on now."""
    def pick() -> int:
        with socket.socket() as s:
            s.bind(("127.0.0.1", 0))
            return s.getsockname()[1]

    return pick


@pytest.fixture(scope="module")
def workdir(tmp_path_factory):
    return tmp_path_factory.mktemp("cli")


@pytest.fixture(scope="module")
def demo_dir(workdir, dnnagent):
    out = workdir / "demo"
    proc = dnnagent("models", "generate", "--out", out, cwd=workdir)
    assert proc.returncode == 0, proc.stderr
    return out


@pytest.fixture(scope="module")
def small_dir(workdir, dnnagent):
    out = workdir / "small"
    proc = dnnagent("models", "generate", SMALL, "--out", out, "--quiet", cwd=workdir)
    assert proc.returncode == 0, proc.stderr
    assert proc.stderr == ""
    return out
