"""install-service under a temporary root with a recording runner: no useradd or systemctl ever runs for real."""

from __future__ import annotations

import shlex
from pathlib import Path

import pytest
from typer.testing import CliRunner

from dnnprof.agent import install
from dnnprof.agent.cli import app
from dnnprof.shared.errors import UserError

EXEC = "/opt/dnnprof/bin/dnnagent"


class Recorder:
    def __init__(self) -> None:
        self.commands: list[list[str]] = []

    def __call__(self, command) -> None:
        self.commands.append(list(command))


@pytest.fixture
def root(tmp_path) -> Path:
    """A machine without the dnnprof user, with the video and jtop groups (the user already in video), no render."""
    r = tmp_path / "root"
    (r / "etc").mkdir(parents=True)
    (r / "etc/passwd").write_text("root:x:0:0:root:/root:/bin/bash\nnvidia:x:1000:1000::/home/nvidia:/bin/bash\n")
    (r / "etc/group").write_text("root:x:0:\nvideo:x:44:nvidia\njtop:x:998:\n")
    return r


def run(root: Path, recorder: Recorder, lines: list[str], **kwargs) -> list[list[str]]:
    return install.install_service(root=root, runner=recorder, exec_start=EXEC, euid=0, offline=False,
                                   out=lines.append, **kwargs)


def test_first_install_creates_user_config_and_unit_but_does_not_start_the_example(root):
    recorder, lines = Recorder(), []
    commands = run(root, recorder, lines)
    assert commands == recorder.commands
    assert recorder.commands == [
        ["useradd", "--system", "--user-group", "--home-dir", "/var/lib/dnnprof", "--no-create-home",
         "--shell", "/usr/sbin/nologin", "--comment", "dnnprof agent", "dnnprof"],
        ["usermod", "--append", "--groups", "jtop,video", "dnnprof"],
        ["install", "-d", "-o", "dnnprof", "-g", "dnnprof", "-m", "0750", f"{root}/var/lib/dnnprof",
         f"{root}/var/lib/dnnprof/models"],
        ["systemctl", "daemon-reload"],
        ["systemctl", "enable", "dnnprof-agent.service"],  # not --now: the example names a broker nobody runs
    ]
    assert (root / "etc/dnnprof/agent.toml").read_text() == install.EXAMPLE_CONFIG
    unit = (root / "etc/systemd/system/dnnprof-agent.service").read_text()
    assert unit == install.unit_text(EXEC, "/etc/dnnprof/agent.toml", "dnnprof", ["jtop", "video"])
    assert f"ExecStart={EXEC} serve --config /etc/dnnprof/agent.toml\n" in unit
    assert "SupplementaryGroups=jtop video\n" in unit  # a missing group would stop the unit from starting
    text = "\n".join(lines)
    assert "groups missing on this machine: render" in text
    assert "not started" in text and "it is the unedited example" in text
    assert not any(p.name.endswith(".tmp") for p in root.rglob("*"))


def test_second_install_keeps_the_config_and_starts_a_valid_one(root, tmp_path):
    models = tmp_path / "models"
    models.mkdir()
    (models / "net.onnx").write_bytes(b"")
    config = root / "etc/dnnprof/agent.toml"
    config.parent.mkdir(parents=True)
    mine = f'[broker]\nhost = "mqtt.lan"\n[agent]\nmodels_dir = "{models}"\n'
    config.write_text(mine)
    (root / "etc/passwd").write_text((root / "etc/passwd").read_text() + "dnnprof:x:990:990::/var/lib/dnnprof:/x\n")
    (root / "etc/group").write_text("video:x:44:nvidia,dnnprof\njtop:x:998:dnnprof\nrender:x:105:\n")
    recorder, lines = Recorder(), []
    run(root, recorder, lines)
    assert config.read_text() == mine  # never overwritten
    assert recorder.commands[0] == ["usermod", "--append", "--groups", "render", "dnnprof"]
    assert recorder.commands[-1] == ["systemctl", "enable", "--now", "dnnprof-agent.service"]
    assert not any(c[0] == "useradd" for c in recorder.commands)
    assert "SupplementaryGroups=jtop video render\n" in (root / "etc/systemd/system/dnnprof-agent.service").read_text()
    # Once more, with the user now in render (the recorder ran nothing): nothing to change in the unit or groups.
    (root / "etc/group").write_text("video:x:44:nvidia,dnnprof\njtop:x:998:dnnprof\nrender:x:105:dnnprof\n")
    recorder, lines = Recorder(), []
    run(root, recorder, lines)
    assert not any(c[0] in ("useradd", "usermod") for c in recorder.commands)
    assert any("is up to date" in line for line in lines)
    # A config that does not load is named, and the service is enabled but not started.
    config.write_text(mine.replace('"mqtt.lan"', "7"))
    recorder, lines = Recorder(), []
    run(root, recorder, lines)
    assert recorder.commands[-1] == ["systemctl", "enable", "dnnprof-agent.service"]
    assert any("[broker] host: 7 is not a text" in line for line in lines)


def test_dry_run_prints_everything_and_changes_nothing(root):
    before = sorted(p.relative_to(root) for p in root.rglob("*"))
    recorder, lines = Recorder(), []
    commands = install.install_service(root=root, runner=recorder, exec_start=EXEC, euid=1000, offline=False,
                                       dry_run=True, out=lines.append)
    assert recorder.commands == []  # nothing ran
    assert sorted(p.relative_to(root) for p in root.rglob("*")) == before  # nothing written
    text = "\n".join(lines)
    for command in commands:
        assert f"would run: {shlex.join(command)}" in text
    assert f"would write {root}/etc/dnnprof/agent.toml" in text
    assert f"would write {root}/etc/systemd/system/dnnprof-agent.service" in text
    assert f"    ExecStart={EXEC} serve --config /etc/dnnprof/agent.toml" in text  # the files' contents too
    assert '    host = "192.168.1.10"' in text


def test_needs_root_unless_dry_run_and_a_system_wide_install(root):
    with pytest.raises(UserError, match=r"^run with sudo \(or --dry-run to see what it would do\)$"):
        install.install_service(root=root, runner=Recorder(), exec_start=EXEC, euid=1000, out=lambda _: None)
    with pytest.raises(UserError, match=r"ProtectHome=yes hides"):
        install.install_service(root=root, runner=Recorder(), exec_start="/home/me/.venv/bin/dnnagent", euid=0,
                                out=lambda _: None)
    with pytest.raises(UserError, match=r"--config agent.toml: give an absolute path"):
        install.install_service(root=root, runner=Recorder(), exec_start=EXEC, euid=0, config=Path("agent.toml"),
                                out=lambda _: None)


def test_offline_root_prepares_an_image(root):
    """Another root: useradd and systemctl act on that root, and nothing is started."""
    recorder, lines = Recorder(), []
    install.install_service(root=root, runner=recorder, exec_start=EXEC, euid=0, out=lines.append)
    assert recorder.commands[0][:3] == ["useradd", "--root", str(root)]
    assert recorder.commands[-1] == ["systemctl", f"--root={root}", "enable", "dnnprof-agent.service"]
    assert not any("daemon-reload" in c or "--now" in c for c in recorder.commands)


def test_failed_command_is_one_line(root):
    def failing(command) -> None:
        install._run(["false"])

    with pytest.raises(UserError, match=r"^`false` failed with exit status 1"):
        install.install_service(root=root, runner=failing, exec_start=EXEC, euid=0, out=lambda _: None)


def test_cli_dry_run(root):
    result = CliRunner().invoke(app, ["install-service", "--dry-run", "--root", str(root), "--user", "agent"])
    assert result.exit_code == 0, result.output
    assert "would run: useradd --root" in result.output and " agent\n" in result.output
    assert "would write" in result.output and "would run: systemctl --root=" in result.output
    assert not (root / "etc/dnnprof").exists()
