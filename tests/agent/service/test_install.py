"""install-service under a temporary root with a recording runner: no useradd or systemctl ever runs for real."""

from __future__ import annotations

import shlex
from pathlib import Path

import pytest
from typer.testing import CliRunner

from dnnprof.agent.cli import app
from dnnprof.agent.service import install
from dnnprof.shared.errors import UserError

EXEC = "/opt/dnnprof/bin/dnnagent"


class Recorder:
    def __init__(self) -> None:
        self.commands: list[list[str]] = []

    def __call__(self, command) -> None:
        self.commands.append(list(command))


@pytest.fixture
def root(tmp_path) -> Path:
    """A machine running systemd, without the dnnprof user, with the video and jtop groups (the user already in
    video), no render."""
    r = tmp_path / "root"
    (r / "etc").mkdir(parents=True)
    (r / "run/systemd/system").mkdir(parents=True)  # what sd_booted(3) looks for
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


def test_second_install_keeps_the_config_and_starts_a_valid_one(root, tmp_path, model_dir):
    config = root / "etc/dnnprof/agent.toml"
    config.parent.mkdir(parents=True)
    mine = (f'[broker]\nhost = "mqtt.lan"\n[agent]\nmodels_dir = "{model_dir}"\nstate_dir = "{tmp_path / "state"}"\n'
            '[power]\nsource = "none"\n')
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
    # So is one that loads but would fail at the start (what `serve --check` runs): not started either.
    config.write_text(mine + '[sweep]\nbackend = "onnxruntime"\ndla_core = 0\n')
    recorder, lines = Recorder(), []
    run(root, recorder, lines)
    assert recorder.commands[-1] == ["systemctl", "enable", "dnnprof-agent.service"]
    [line] = [line for line in lines if line.startswith("not started")]
    assert "[sweep] dla_core: only the tensorrt backend uses it" in line
    assert f"`sudo -u dnnprof {EXEC} serve --config /etc/dnnprof/agent.toml --check`" in line


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


@pytest.mark.parametrize("kwargs, message", [
    ({"user": "Agent"}, "--user 'Agent' is not a valid user name: use 1-32 of a-z, 0-9, '_' and '-'"),
    ({"user": "a" * 33}, "is not a valid user name"),
    ({"user": "x;rm -rf /"}, "is not a valid user name"),
    ({"exec_start": "/tmp/venv/bin/dnnagent"}, "the agent runs from /tmp/venv/bin/dnnagent, which the unit's "
                                               "PrivateTmp=yes hides"),
    ({"exec_start": "'/var/tmp/x y/python' -m dnnprof.agent"}, "/var/tmp/x y/python, which the unit's PrivateTmp"),
    ({"exec_start": "/root/venv/bin/dnnagent"}, "which the unit's ProtectHome=yes hides"),
    ({"exec_start": "dnnagent"}, "must start with an absolute path"),
    ({"config": Path("/etc/dnn prof/agent.toml")}, "--config '/etc/dnn prof/agent.toml': the unit's ExecStart= would "
                                                   "need quoting"),
])
def test_preflight_refuses_before_any_change(root, kwargs, message):
    before = sorted(p.relative_to(root) for p in root.rglob("*"))
    recorder = Recorder()
    kwargs = {"exec_start": EXEC, **kwargs}
    with pytest.raises(UserError) as caught:
        install.install_service(root=root, runner=recorder, euid=0, offline=False, out=lambda _: None, **kwargs)
    assert message in str(caught.value) and "\n" not in str(caught.value)
    assert recorder.commands == [] and sorted(p.relative_to(root) for p in root.rglob("*")) == before


def test_systemd_must_be_running_unless_an_image_is_prepared(root):
    (root / "run/systemd/system").rmdir()
    for dry_run in (False, True):
        recorder = Recorder()
        with pytest.raises(UserError, match=rf"^systemd is not running here: {root}/run/systemd/system does not "
                                            "exist"):
            install.install_service(root=root, runner=recorder, exec_start=EXEC, euid=0, offline=False,
                                    dry_run=dry_run, out=lambda _: None)
        assert recorder.commands == [] and not (root / "etc/dnnprof").exists()
    # Preparing an image (--root): its systemd is not running yet, and need not be.
    recorder = Recorder()
    install.install_service(root=root, runner=recorder, exec_start=EXEC, euid=0, out=lambda _: None)
    assert recorder.commands[-1] == ["systemctl", f"--root={root}", "enable", "dnnprof-agent.service"]


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
    result = CliRunner().invoke(app, ["install-service", "--dry-run", "--root", str(root), "--user", "agent",
                                      "--exec-start", EXEC])
    assert result.exit_code == 0, result.output
    assert "would run: useradd --root" in result.output and " agent\n" in result.output
    assert "would write" in result.output and "would run: systemctl --root=" in result.output
    assert f"    ExecStart={EXEC} serve --config /etc/dnnprof/agent.toml" in result.output
    assert not (root / "etc/dnnprof").exists()


def test_cli_preflight_errors_are_one_line(root):
    result = CliRunner().invoke(app, ["install-service", "--dry-run", "--root", str(root), "--user", "Bad User",
                                      "--exec-start", EXEC])
    assert isinstance(result.exception, UserError)
    assert str(result.exception) == ("--user 'Bad User' is not a valid user name: use 1-32 of a-z, 0-9, '_' and '-', "
                                     "starting with a letter or '_', e.g. --user dnnprof")
    result = CliRunner().invoke(app, ["install-service", "--dry-run", "--root", str(root), "--exec-start",
                                      "/tmp/x/bin/dnnagent"])
    assert isinstance(result.exception, UserError) and "PrivateTmp=yes hides" in str(result.exception)
    assert not (root / "etc/dnnprof").exists()


def test_printed_commands_are_quoted_for_a_shell(tmp_path):
    image = tmp_path / "my image"  # a root with a space: every printed command must still paste into a shell
    (image / "etc").mkdir(parents=True)
    lines: list[str] = []
    commands = install.install_service(root=image, runner=Recorder(), exec_start=EXEC, euid=0, dry_run=True,
                                       out=lines.append)
    assert f"would run: useradd --root '{image}' --system" in "\n".join(lines)
    for command in commands:
        assert f"would run: {shlex.join(command)}" in lines
        assert shlex.split(shlex.join(command)) == command


def test_allow_power_control_installs_a_sudoers_rule_that_visudo_passes(root):
    recorder, lines = Recorder(), []
    run(root, recorder, lines, allow_power_control=True)
    drop_in = root / "etc/sudoers.d/dnnprof-power-control"
    text = drop_in.read_text()
    assert drop_in.stat().st_mode & 0o777 == 0o440  # sudo ignores a drop-in others may write
    assert text == install.sudoers_text("dnnprof")
    assert "dnnprof ALL=(root) NOPASSWD: DNNPROF_POWER\n" in text
    for allowed in ("/usr/sbin/nvpmodel -m [0-9],", "/usr/sbin/nvpmodel -q,", '/usr/bin/jetson_clocks "",',
                    "/usr/bin/jetson_clocks --store /var/lib/dnnprof/jetson_clocks.conf,",
                    "/usr/bin/jetson_clocks --restore /var/lib/dnnprof/jetson_clocks.conf\n"):
        assert allowed in text
    assert "ALL\n" not in text.replace("(root)", "") and "NOPASSWD: ALL" not in text  # nothing wider
    install.check_sudoers(text)  # the real visudo -c, again, on what was written
    assert any("visudo -c passed" in line for line in lines)


def test_without_the_option_no_sudoers_rule(root):
    run(root, Recorder(), [])
    assert not (root / "etc/sudoers.d").exists()


def test_visudo_refusing_the_rule_is_one_line():
    with pytest.raises(UserError, match="visudo refuses the power-control rule: .*syntax error") as info:
        install.check_sudoers("dnnprof ALL=(root) NOPASSWD /usr/sbin/nvpmodel -q\n")  # the ':' is missing
    assert "\n" not in str(info.value)


def test_dry_run_shows_the_rule(root):
    lines: list[str] = []
    install.install_service(root=root, runner=Recorder(), exec_start=EXEC, euid=0, offline=False, out=lines.append,
                            dry_run=True, allow_power_control=True)
    text = "\n".join(lines)
    assert "would write" in text and "sudoers.d/dnnprof-power-control" in text and "Cmnd_Alias DNNPROF_POWER" in text
    assert not (root / "etc/sudoers.d").exists()
