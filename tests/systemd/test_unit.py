"""systemd/dnnprof-agent.service: every directive the service needs is there, the file is what install-service writes,
and ``systemd-analyze verify`` accepts it (where systemd-analyze is installed: CI runs it there)."""

from __future__ import annotations

import shutil
import subprocess
import sys
from pathlib import Path

import pytest

from dnnprof.agent.service import config, install
from dnnprof.agent.service import serve as service

UNIT = Path(__file__).parents[2] / "systemd" / "dnnprof-agent.service"


def directives(text: str) -> dict[str, dict[str, list[str]]]:
    """section -> key -> values (a key may repeat); comments and blank lines dropped."""
    sections: dict[str, dict[str, list[str]]] = {}
    current = None
    for raw in text.splitlines():
        line = raw.strip()
        if not line or line.startswith(("#", ";")):
            continue
        if line.startswith("["):
            current = sections.setdefault(line.strip("[]"), {})
            continue
        key, _, value = line.partition("=")
        current.setdefault(key.strip(), []).append(value.strip())
    return sections


def test_unit_is_what_install_service_writes():
    assert UNIT.read_text() == install.unit_text()


def test_required_directives():
    unit = directives(UNIT.read_text())
    assert set(unit) == {"Unit", "Service", "Install"}
    u, s = unit["Unit"], unit["Service"]
    wants, after = " ".join(u["Wants"]).split(), " ".join(u["After"]).split()
    assert "network-online.target" in wants and "network-online.target" in after
    assert "jtop.service" in wants  # pulled in where it is installed ...
    # ... but not ordered after: jtop's unit is After=multi-user.target, which is after the units it wants (this
    # one), so After=jtop.service would be an ordering cycle that systemd breaks by dropping a start job.
    assert "jtop.service" not in after
    assert "Requires" not in u and "BindsTo" not in u  # the agent works without jtop
    expected = {
        "Type": "notify",
        "ExecStart": "/usr/local/bin/dnnagent serve --config /etc/dnnprof/agent.toml",
        "User": "dnnprof",
        "Group": "dnnprof",
        "StateDirectory": "dnnprof",
        "ConfigurationDirectory": "dnnprof",
        "Restart": "on-failure",
        # 78 (EX_CONFIG): a config or start error a restart cannot fix (agent/service/config.py, serve.py); an
        # unreachable broker (69) is still restarted.
        "RestartPreventExitStatus": "78",
        "KillSignal": "SIGTERM",
        "NoNewPrivileges": "yes",
        "ProtectSystem": "strict",
        "ProtectHome": "yes",
        "PrivateTmp": "yes",
    }
    for key, value in expected.items():
        assert s.get(key) == [value], key
    prevented = " ".join(s["RestartPreventExitStatus"]).split()
    assert str(config.EX_CONFIG) in prevented and str(service.EX_UNAVAILABLE) not in prevented
    assert set(" ".join(s["SupplementaryGroups"]).split()) == {"jtop", "video", "render"}
    for key in ("RestartSec", "TimeoutStopSec"):
        assert s[key][0].isdigit()
    # The GPU needs its device nodes: no private /dev, no device allow-list (the unit says why in a comment).
    assert "PrivateDevices" not in s and "DevicePolicy" not in s and "DeviceAllow" not in s
    assert "ReadWritePaths" not in s  # StateDirectory= is the only writable place, and implies its own access
    assert "No PrivateDevices=" in UNIT.read_text()
    assert unit["Install"]["WantedBy"] == ["multi-user.target"]


@pytest.mark.skipif(shutil.which("systemd-analyze") is None, reason="systemd-analyze is not installed")
def test_systemd_analyze_verify(tmp_path):
    # verify checks that ExecStart's program exists: point it at one that does.
    copy = tmp_path / "dnnprof-agent.service"
    copy.write_text(UNIT.read_text().replace("ExecStart=/usr/local/bin/dnnagent", f"ExecStart={sys.executable}"))
    done = subprocess.run(["systemd-analyze", "verify", str(copy)], capture_output=True, text=True, timeout=60)
    assert done.returncode == 0, done.stderr
    # Unknown keys and bad values are only warnings (exit status 0): there must be none.
    assert [line for line in done.stderr.splitlines() if str(copy) in line or "dnnprof-agent" in line] == []
