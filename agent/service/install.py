"""``dnnagent install-service``: install the agent as a systemd service on this machine (a Jetson, usually).

It creates the system user, puts it in the groups the hardware needs (jtop, video, render — those that exist),
installs the example ``/etc/dnnprof/agent.toml`` if there is none (never overwriting one), writes the unit with
``ExecStart`` pointing at this installation's ``dnnagent``, reloads systemd and enables the service — and starts
it when ``serve --check`` would pass it. ``--dry-run`` prints every file and command instead and changes nothing.
Before any change it checks what would make the service fail for sure: systemd not running (unless ``--root``
prepares an image), an ``ExecStart`` the unit's sandbox hides (``/home``, ``/root``, ``/tmp``, ...), a user name
useradd would refuse.

The unit is kept here as a template and the example config as package data (``agent.toml`` beside this module), so
an installed wheel carries both; ``systemd/`` in the source tree holds the unit as installed (a test keeps it the
same) and a link to the example, for reading and for packagers.
Every command goes through ``runner`` and every path lies under ``root``, so tests record instead of running.
"""

from __future__ import annotations

import os
import re
import shlex
import shutil
import subprocess
import sys
from collections.abc import Callable, Sequence
from importlib import resources
from pathlib import Path

from dnnprof.shared.errors import UserError

SERVICE = "dnnprof-agent.service"
UNIT_PATH = Path("/etc/systemd/system") / SERVICE
CONFIG_PATH = Path("/etc/dnnprof/agent.toml")
STATE_DIR = Path("/var/lib/dnnprof")
USER = "dnnprof"
# jtop: /run/jtop.sock is mode 660, group jtop (jetson-stats docs/jtop/how_is_it_works.rst). video, render: the
# groups L4T gives the GPU device nodes (/dev/nvhost-*, /dev/nvmap, /dev/dri/*) to.
GROUPS = ("jtop", "video", "render")
DEFAULT_EXEC = "/usr/local/bin/dnnagent"
# POSIX portable user names as useradd takes them by default (shadow-utils' is_valid_user_name, without the '$'
# of machine accounts): a lower-case letter or '_', then up to 31 of a-z, 0-9, '_' and '-'.
USER_NAME = re.compile(r"[a-z_][a-z0-9_-]{0,31}")
# Places the unit's sandbox hides from the agent: ProtectHome=yes (/home, /root, /run/user) and PrivateTmp=yes
# (a private, empty /tmp and /var/tmp).
HIDDEN = {"/home/": "ProtectHome=yes", "/root/": "ProtectHome=yes", "/run/user/": "ProtectHome=yes",
          "/tmp/": "PrivateTmp=yes", "/var/tmp/": "PrivateTmp=yes"}
# A config path written into ExecStart= as it is: nothing systemd's command-line parsing would change (spaces,
# quotes, backslashes, % specifiers, $ variables).
PLAIN_PATH = re.compile(r"[A-Za-z0-9/._+,:@=-]+")

Runner = Callable[[Sequence[str]], None]

# --allow-power-control: a sudoers drop-in that lets the agent's user run exactly what a power-mode sweep runs
# (agent/board/modes.py, as `sudo -n COMMAND`), nothing else: nvpmodel -m <id> and -q, jetson_clocks with no option,
# and --store/--restore of the one file the agent keeps in its state directory.
SUDOERS_PATH = Path("/etc/sudoers.d/dnnprof-power-control")
NVPMODEL = "/usr/sbin/nvpmodel"  # where L4T installs them (package nvidia-l4t-nvpmodel, nvidia-l4t-tools)
JETSON_CLOCKS = "/usr/bin/jetson_clocks"


def sudoers_text(user: str = USER, *, nvpmodel: str = NVPMODEL, jetson_clocks: str = JETSON_CLOCKS,
                 state_dir: Path = STATE_DIR) -> str:
    """The drop-in: one command alias, one rule, for ``user``."""
    store = state_dir / "jetson_clocks.conf"
    return (
        "# dnnprof: lets the agent's user switch nvpmodel power modes and pin clocks for its sweeps, nothing else.\n"
        "# Written by `sudo dnnagent install-service --allow-power-control`; the agent runs these as `sudo -n ...`.\n"
        f"Cmnd_Alias DNNPROF_POWER = {nvpmodel} -m [0-9], {nvpmodel} -m [0-9][0-9], {nvpmodel} -q, \\\n"
        f"    {jetson_clocks} \"\", \\\n"
        f"    {jetson_clocks} --store {store}, \\\n"
        f"    {jetson_clocks} --restore {store}\n"
        f"{user} ALL=(root) NOPASSWD: DNNPROF_POWER\n")


def check_sudoers(text: str) -> None:
    """Run ``visudo -c`` on ``text``; UserError with visudo's words when it refuses (or when it is missing)."""
    import tempfile

    visudo = shutil.which("visudo") or ("/usr/sbin/visudo" if Path("/usr/sbin/visudo").exists() else None)
    if visudo is None:
        raise UserError("visudo is not installed, so the sudoers rule cannot be checked: sudo apt-get install sudo")
    with tempfile.TemporaryDirectory() as tmp:
        path = Path(tmp) / "dnnprof-power-control"
        path.write_text(text, encoding="utf-8")
        path.chmod(0o440)
        done = subprocess.run([visudo, "-c", "-f", str(path)], capture_output=True, text=True, check=False)
    if done.returncode != 0:
        words = " ".join((done.stderr or done.stdout).split())
        raise UserError(f"visudo refuses the power-control rule: {words}")

UNIT_TEMPLATE = """\
# dnnprof agent: runs the sweep /etc/dnnprof/agent.toml describes, streams the results to the MQTT broker, then
# stays online publishing telemetry. Installed by `sudo dnnagent install-service` (which writes ExecStart= and
# SupplementaryGroups= for this machine); README.md, "Install the agent on a Jetson (systemd)".
[Unit]
Description=dnnprof profiling agent
# Wants=, not Requires=: the agent works without jtop (INA3221 sysfs, tegrastats, or no power source), so a missing
# or failed jtop.service must not stop it. No After=jtop.service: jtop.service is ordered After=multi-user.target,
# which is itself after the units it wants (this one), so that would be an ordering cycle. With source = "jtop"
# and jtop not up yet, the agent exits 69 and is started again after RestartSec.
Wants=network-online.target jtop.service
After=network-online.target

[Service]
# The agent sends READY=1 once the broker accepted it and the board info is published, STATUS= lines with the
# sweep's progress, and STOPPING=1 on shutdown (sd_notify over $NOTIFY_SOCKET, agent/service/systemd.py).
Type=notify
ExecStart={exec_start} serve --config {config}
User={user}
Group={user}
# jtop: /run/jtop.sock (mode 660, group jtop); video and render: the GPU's device nodes on L4T.
# A group listed here must exist or the unit fails to start (216/GROUP); install-service lists only those that do.
SupplementaryGroups={groups}
# /var/lib/dnnprof, owned by the user: engine cache, ledger of measured points, outbox of unsent results. With
# ProtectSystem=strict it is the only writable place; no ReadWritePaths= is needed.
StateDirectory=dnnprof
StateDirectoryMode=0750
# /etc/dnnprof, owned by root: agent.toml, and the password file and TLS key (mode 600, owned by {user}).
ConfigurationDirectory=dnnprof
# Connection failures and crashes restart the agent; the ledger makes a restart skip what was measured. A start
# error that a restart cannot fix (the config, a model, the backend, the power source) exits 78 (EX_CONFIG): not
# restarted, `systemctl status` shows it failed and the journal says why. An unreachable broker exits 69.
Restart=on-failure
RestartSec=30
RestartPreventExitStatus=78
# Loading the models and the inference backend comes before READY=1 (TensorRT engines are built after it).
TimeoutStartSec=180
# SIGTERM ends the sweep at the next point boundary: a point takes at most the configured warm-up, window and idle
# maxima (about 30 s by default), a TensorRT engine build minutes. Past this, SIGKILL, and the broker publishes
# the last will (lost) instead of offline.
KillSignal=SIGTERM
TimeoutStopSec=120
# SIGTERM to the agent only; it stops its own children (tegrastats) and the rest get SIGKILL at the timeout.
KillMode=mixed
UMask=0027
NoNewPrivileges=yes
ProtectSystem=strict
ProtectHome=yes
PrivateTmp=yes
ProtectKernelModules=yes
ProtectControlGroups=yes
RestrictSUIDSGID=yes
LockPersonality=yes
RestrictAddressFamilies=AF_UNIX AF_INET AF_INET6 AF_NETLINK
# No PrivateDevices= and no DevicePolicy=/DeviceAllow=: CUDA and TensorRT on a Jetson open /dev/nvhost-*,
# /dev/nvmap, /dev/nvgpu/* and the DLA nodes, whose names differ between L4T releases; a private /dev or a device
# allow-list would hide the GPU. Access stays limited by the device nodes' own groups (video, render).
# Reading sysfs power rails and connecting to /run/jtop.sock work under ProtectSystem=strict (systemd.exec(5):
# read-only paths do not stop connecting to AF_UNIX sockets).

[Install]
WantedBy=multi-user.target
"""

# The example config: one file, shipped in the package (systemd/agent.toml in the repository links to it).
EXAMPLE_CONFIG = resources.files(__package__).joinpath("agent.toml").read_text(encoding="utf-8")


def unit_text(exec_start: str = DEFAULT_EXEC, config: Path | str = CONFIG_PATH, user: str = USER,
              groups: Sequence[str] = GROUPS) -> str:
    """The unit file for an agent started as ``exec_start`` (an absolute command) with ``config``."""
    return UNIT_TEMPLATE.format(exec_start=exec_start, config=config, user=user, groups=" ".join(groups))


def agent_command() -> str:
    """How systemd should start this installation's agent: the ``dnnagent`` script that is running, the one on
    PATH, or this Python with ``-m dnnprof.agent``."""
    argv0 = Path(sys.argv[0])
    if argv0.name == "dnnagent" and argv0.is_file():
        return shlex.quote(str(argv0.absolute()))
    found = shutil.which("dnnagent")
    if found:
        return shlex.quote(str(Path(found).absolute()))
    return f"{shlex.quote(sys.executable)} -m dnnprof.agent"


def _names(path: Path) -> dict[str, list[str]]:
    """name -> fields of a passwd(5) or group(5) file; empty when there is none."""
    try:
        lines = path.read_text(encoding="utf-8", errors="replace").splitlines()
    except FileNotFoundError:
        return {}
    return {f[0]: f for f in (line.split(":") for line in lines if line and not line.startswith("#")) if f[0]}


def _run(command: Sequence[str]) -> None:
    try:
        subprocess.run(list(command), check=True)
    except FileNotFoundError:
        raise UserError(f"{command[0]} is not installed: this command needs a systemd machine with shadow-utils "
                        "(useradd, usermod)") from None
    except subprocess.CalledProcessError as exc:
        raise UserError(f"`{shlex.join(command)}` failed with exit status {exc.returncode}; what it printed is "
                        "above") from None


def install_service(*, config: Path = CONFIG_PATH, user: str = USER, dry_run: bool = False, root: Path = Path("/"),
                    runner: Runner | None = None, exec_start: str | None = None, euid: int | None = None,
                    offline: bool | None = None, out: Callable[[str], None] = print,
                    allow_power_control: bool = False) -> list[list[str]]:
    """Install and enable the service; returns the commands run (or, with ``dry_run``, that would be).

    ``root`` is where the files go (``/``; another directory prepares an image: systemctl and useradd then work on
    that root and nothing is started — ``offline``, which defaults to ``root != /``). ``runner`` runs a command
    (default: subprocess, failing on a non-zero status). ``euid`` is the effective user id (default: this
    process's); only root may install. ``exec_start``: the command the unit's ExecStart= runs, quoted for a shell
    (default: ``agent_command()``, this installation's agent). ``allow_power_control``: also install the sudoers
    drop-in (checked with ``visudo -c`` first) that lets the service switch power modes and clocks.
    """
    root = Path(root)
    live = root == Path("/") if offline is None else not offline
    euid = os.geteuid() if euid is None else euid
    run = runner or _run
    exec_start = exec_start or agent_command()
    config = Path(config)

    def at(path: Path) -> Path:
        return root / path.relative_to("/")

    # Preflight, before any change: what would make the installed service fail for sure.
    if not USER_NAME.fullmatch(user):
        raise UserError(f"--user {user!r} is not a valid user name: use 1-32 of a-z, 0-9, '_' and '-', starting "
                        "with a letter or '_', e.g. --user dnnprof")
    if not config.is_absolute():
        raise UserError(f"--config {config}: give an absolute path (systemd starts the agent in /)")
    if not PLAIN_PATH.fullmatch(str(config)):
        raise UserError(f"--config {shlex.quote(str(config))}: the unit's ExecStart= would need quoting or escaping "
                        "for it: choose a path of letters, digits and / . _ -")
    _check_exec_start(exec_start)
    if live and not at(Path("/run/systemd/system")).is_dir():
        raise UserError(f"systemd is not running here: {at(Path('/run/systemd/system'))} does not exist (a "
                        "container, WSL, or another init): run the agent with `dnnagent serve --config FILE` under "
                        "your own supervisor, or prepare an image with --root DIR")
    if euid != 0 and not dry_run:
        raise UserError("run with sudo (or --dry-run to see what it would do)")

    prefix = [] if live else ["--root", str(root)]
    commands: list[list[str]] = []
    say = (lambda text: out(f"would {text}")) if dry_run else out

    def command(cmd: list[str]) -> None:
        commands.append(cmd)
        say(f"run: {shlex.join(cmd)}")
        if not dry_run:
            run(cmd)

    def write(path: Path, text: str, why: str, mode: int = 0o644) -> None:
        say(f"write {at(path)} ({why}):")
        if dry_run:
            for line in text.splitlines():
                out(f"    {line}")
            return
        target = at(path)
        try:
            target.parent.mkdir(parents=True, exist_ok=True)
            tmp = target.with_name(target.name + ".tmp")
            tmp.write_text(text, encoding="utf-8")
            tmp.chmod(mode)
            tmp.replace(target)  # never a half-written unit or config
        except OSError as exc:
            raise UserError(f"cannot write {target}: {exc.strerror or exc}") from None

    # 1. the system user, and its groups
    users = _names(at(Path("/etc/passwd")))
    groups = _names(at(Path("/etc/group")))
    if user in users:
        out(f"user {user} exists")
    else:
        command(["useradd", *prefix, "--system", "--user-group", "--home-dir", str(STATE_DIR), "--no-create-home",
                 "--shell", "/usr/sbin/nologin", "--comment", "dnnprof agent", user])
    present = [g for g in GROUPS if g in groups]
    missing = [g for g in GROUPS if g not in groups]
    members = {g for g in present if len(groups[g]) > 3 and user in groups[g][3].split(",")}
    if missing:
        out(f"groups missing on this machine: {', '.join(missing)} (jtop comes with jetson-stats: `sudo pip3 install "
            "jetson-stats`, then run install-service again; video and render come with L4T)")
    to_join = [g for g in present if g not in members]
    if to_join:
        command(["usermod", *prefix, "--append", "--groups", ",".join(to_join), user])
    elif present:
        out(f"user {user} is in {', '.join(present)} already")

    # 2. the config: the example, only where there is none
    installed_example = False
    if at(config).exists():
        out(f"{at(config)} exists: kept as it is")
    else:
        write(config, EXAMPLE_CONFIG, "the example; edit broker host and models before starting")
        installed_example = True

    # 3. the unit, and a place for the models the example names
    unit = unit_text(exec_start, config, user, present)
    current = at(UNIT_PATH).read_text(encoding="utf-8") if at(UNIT_PATH).is_file() else None
    if current == unit:
        out(f"{at(UNIT_PATH)} is up to date")
    else:
        write(UNIT_PATH, unit, "replacing the one there" if current is not None else "new")
    command(["install", "-d", "-o", user, "-g", user, "-m", "0750", str(at(STATE_DIR)), str(at(STATE_DIR / "models"))])

    # 3b. power control: the narrowest sudoers rule, checked by visudo before it is put where sudo reads it
    if allow_power_control:
        paths = {"nvpmodel": NVPMODEL, "jetson_clocks": JETSON_CLOCKS}
        if live:
            paths = {name: shutil.which(name) or default for name, default in paths.items()}
        rule = sudoers_text(user, **paths)
        check_sudoers(rule)
        write(SUDOERS_PATH, rule, "lets the service switch power modes and clocks: visudo -c passed", mode=0o440)

    # 4. systemd: load, enable, start — started only with a config that loads (an unedited example would fail)
    if not live:
        command(["systemctl", f"--root={root}", "enable", SERVICE])
        out(f"prepared {root}: the service starts at the image's next boot")
        return commands
    command(["systemctl", "daemon-reload"])
    problem = "it is the unedited example" if installed_example else _config_problem(at(config))
    if problem is None:
        command(["systemctl", "enable", "--now", SERVICE])
        out(f"started {SERVICE}: follow it with `journalctl -u {SERVICE} -f`; `systemctl status {SERVICE}` shows "
            "its progress")
    else:
        command(["systemctl", "enable", SERVICE])
        check = f"sudo -u {shlex.quote(user)} {exec_start} serve --config {shlex.quote(str(config))} --check"
        out(f"not started, {config}: {problem}. Edit it, check it with `{check}`, then "
            f"`sudo systemctl start {SERVICE}`")
    return commands


def _check_exec_start(exec_start: str) -> None:
    """Refuse an agent the unit's sandbox would hide: a program (or this Python's dnnprof package, for
    ``python -m dnnprof.agent``) under /home, /root, /run/user, /tmp or /var/tmp."""
    try:
        program = shlex.split(exec_start)[0]
    except (ValueError, IndexError):
        raise UserError(f"the agent command {exec_start!r} is not a command line: give the absolute path of "
                        "dnnagent") from None
    if not program.startswith("/"):
        raise UserError(f"the agent command {exec_start!r} must start with an absolute path (systemd does not "
                        "search PATH the way a shell does)")
    places = [program]
    if "-m dnnprof.agent" in exec_start:  # this Python imports dnnprof from where this process found it
        places.append(str(Path(__file__).resolve().parents[2]))  # the dnnprof package: .../dnnprof/agent/service
    for place in places:
        for prefix, directive in HIDDEN.items():
            if (place.rstrip("/") + "/").startswith(prefix):
                raise UserError(f"the agent runs from {place}, which the unit's {directive} hides: install dnnprof "
                                "system-wide (a venv under /opt, README: 'Install the agent on a Jetson') and run "
                                "install-service from there")


def _config_problem(path: Path) -> str | None:
    """Why a start with the config at ``path`` would fail — the preparation ``serve --check`` and a start run:
    config, models, backend, power source — or None."""
    from dnnprof.agent.service import config as agent_config
    from dnnprof.agent.service import serve as service

    try:
        service.check(agent_config.load(path))
    except UserError as exc:
        return str(exc)
    return None
