"""Dockerfile.jetson, read (no docker build here): an L4T TensorRT base, the host's jetson-stats version, a non-root
user, dnnagent as the entry point, and a README command that runs it with jtop's socket and group."""

from __future__ import annotations

import json
import re
from pathlib import Path

REPO = Path(__file__).parents[1]


def instructions() -> list[tuple[str, str]]:
    """(INSTRUCTION, arguments), continuation lines joined, comments dropped."""
    text = re.sub(r"\\\n", " ", (REPO / "Dockerfile.jetson").read_text())
    out = []
    for line in text.splitlines():
        line = line.strip()
        if line and not line.startswith("#"):
            word, _, rest = line.partition(" ")
            out.append((word.upper(), rest.strip()))
    return out


def test_base_user_and_entrypoint():
    steps = instructions()
    args = {rest.split("=")[0]: rest.partition("=")[2] for word, rest in steps if word == "ARG"}
    froms = [rest for word, rest in steps if word == "FROM"]
    assert all(f.startswith("nvcr.io/nvidia/l4t-tensorrt:${L4T_TENSORRT}-") for f in froms)
    assert froms[-1].endswith("-runtime") and args["L4T_TENSORRT"] == "r10.3.0"
    assert "JTOP_VERSION" in args and args["JTOP_VERSION"] == ""  # no default: it must be the host's
    assert any("jetson-stats==${JTOP_VERSION}" in rest for word, rest in steps if word == "RUN")
    final = steps[max(i for i, (word, _) in enumerate(steps) if word == "FROM"):]
    users = [rest for word, rest in final if word == "USER"]
    assert users and users[-1] not in ("root", "0") and not users[-1].startswith("0:")
    assert json.loads(next(rest for word, rest in final if word == "ENTRYPOINT")) == ["dnnagent"]
    assert json.loads(next(rest for word, rest in final if word == "CMD")) == [
        "serve", "--config", "/etc/dnnprof/agent.toml"]
    assert any(rest == "/var/lib/dnnprof" for word, rest in final if word == "VOLUME")


def test_readme_runs_it_with_the_jtop_socket_and_group():
    readme = (REPO / "README.md").read_text()
    section = readme.split("## Run the agent in Docker on a Jetson", 1)[1].split("\n## ", 1)[0]
    command = re.search(r"docker run .*?(?=\n```)", section, re.S).group(0)
    for part in ("--runtime nvidia", "-v /run/jtop.sock:/run/jtop.sock",
                 "--group-add $(getent group jtop | cut -d: -f3)",
                 "-v dnnprof-state:/var/lib/dnnprof", "-v /etc/dnnprof:/etc/dnnprof:ro",
                 "serve --config /etc/dnnprof/agent.toml"):
        assert part in command, part
    assert "docker build -f Dockerfile.jetson" in section and "JTOP_VERSION" in section
