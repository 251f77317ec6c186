"""Power modes and clocks as sweep dimensions: switch the nvpmodel mode, lock or free the clocks, check it took,
wait for the caps to settle, and put the board back as it was found — at the end, on SIGTERM, and after a crash
(a marker file written before the first change, read at the next start).

Commands are found on PATH: ``nvpmodel -m N`` (stdin closed, so a mode that needs a reboot is declined, never
rebooted into), ``nvpmodel -q``, ``jetson_clocks``, ``jetson_clocks --store FILE`` / ``--restore FILE``. A process
that is not root runs them through ``sudo -n``: ``dnnagent install-service --allow-power-control`` installs the
sudoers rule that allows exactly those. The board's state is read from its files under ``root`` (the status file,
cpufreq and devfreq limits), never from a command's exit status alone.
"""

from __future__ import annotations

import json
import logging
import os
import shutil
import subprocess
import time
from collections.abc import Callable
from dataclasses import dataclass, replace
from pathlib import Path

from dnnprof.shared.errors import UserError

from . import clocks, nvpmodel
from .sysfs import is_live_root, read_int, read_text

log = logging.getLogger(__name__)

CLOCK_STATES = ("dvfs", "locked")  # clocks left to DVFS within the mode's caps, or pinned at them (jetson_clocks)
COMMAND_TIMEOUT_S = 30.0
SETTLE_S = 30.0  # the longest wait for a mode's caps to show in the clock files
ENABLE = "sudo dnnagent install-service --allow-power-control"

# Runs argv with ``stdin`` text (None: nothing) and returns the CompletedProcess (text mode).
Runner = Callable[[list[str], "str | None"], subprocess.CompletedProcess]


def run_command(argv: list[str], stdin: str | None = None) -> subprocess.CompletedProcess:
    return subprocess.run(argv, input=stdin if stdin is not None else "", capture_output=True, text=True,
                          timeout=COMMAND_TIMEOUT_S, check=False)


class Refused(Exception):
    """The board would not take a setting (a mode that needs a reboot, nvpmodel failing, caps that never showed):
    its points are skipped with this one-line reason, and the sweep goes on."""


@dataclass(frozen=True)
class Setting:
    """One (mode, clocks) the sweep measures in; ``mode`` None keeps the mode the board is in."""

    mode: nvpmodel.Mode | None
    clocks: str | None  # "dvfs", "locked", or None (as the board is)

    def state(self, now: clocks.ClockState) -> clocks.ClockState:
        """``now`` as it would read in this setting (what a point not run in it is recorded under)."""
        if self.mode is not None:
            now = replace(now, power_mode=self.mode.name, power_mode_id=self.mode.id)
        if self.clocks is not None:
            now = replace(now, jetson_clocks=self.clocks == "locked")
        return now

    def label(self) -> str:
        parts = []
        if self.mode is not None:
            parts.append(f"power mode {self.mode.name} ({self.mode.id})")
        if self.clocks is not None:
            parts.append("clocks locked" if self.clocks == "locked" else "clocks dvfs")
        return ", ".join(parts) or "as the board is"


def parse_clocks(text: str | list[str] | None, where: str) -> list[str]:
    """``"dvfs,locked"`` → ``["dvfs", "locked"]``; UserError naming ``where`` for anything else."""
    if text is None:
        return []
    items = [t.strip().lower() for t in (text.split(",") if isinstance(text, str) else text) if str(t).strip()]
    for item in items:
        if item not in CLOCK_STATES:
            raise UserError(f"{where} {item!r}: write dvfs (clocks scale within the mode's caps), locked (pinned at "
                            "them by jetson_clocks) or both, e.g. dvfs,locked")
    return list(dict.fromkeys(items))


class Control:
    """The board's power modes and clock locking under ``root``; ``state_file``: the restore marker's path."""

    def __init__(self, root: str | Path = "/", *, state_file: Path, runner: Runner | None = None,
                 as_root: bool | None = None, settle_s: float = SETTLE_S, poll_s: float = 0.1) -> None:
        self.root = Path(root)
        self.state_file = Path(state_file)
        self.store_file = self.state_file.with_name("jetson_clocks.conf")
        self._run = runner or run_command
        self.as_root = (os.geteuid() == 0) if as_root is None else as_root
        self.settle_s, self.poll_s = settle_s, poll_s
        self.conf = nvpmodel.read(self.root)

    # -- what the board has ----------------------------------------------------------------------------------------

    def modes(self) -> list[nvpmodel.Mode]:
        return [] if self.conf is None else [self.conf.modes[i] for i in sorted(self.conf.modes)]

    def resolve(self, spec: str | list | None, where: str = "--power-mode") -> list[nvpmodel.Mode]:
        """``"0,2"``, ``"MAXN,MODE_15W"`` or ``"all"`` → the modes, in the order given; UserError naming the ones
        the board lacks (or that it has no nvpmodel at all)."""
        if spec is None:
            return []
        items = [str(t).strip() for t in (spec.split(",") if isinstance(spec, str) else spec) if str(t).strip()]
        if not items:
            return []
        if self.conf is None or not self.conf.modes:
            raise UserError(f"{where}: this machine has no nvpmodel power modes ({self.root / 'etc/nvpmodel.conf'} "
                            "is missing): power modes are a Jetson's; leave the option out")
        if [i.lower() for i in items] == ["all"]:
            return self.modes()
        found = []
        for item in items:
            mode = self.conf.find(item)
            if mode is None:
                known = ", ".join(f"{m.id} {m.name}" for m in self.modes())
                raise UserError(f"{where} {item!r}: this board has no such mode; it has {known} (or all)")
            if mode not in found:
                found.append(mode)
        return found

    def current(self) -> nvpmodel.Mode | None:
        _, mode_id = clocks.power_mode(self.root, runner=self._query if is_live_root(self.root) else None)
        return None if self.conf is None or mode_id is None else self.conf.modes.get(mode_id)

    def _query(self) -> str | None:
        done = self._command(["nvpmodel", "-q"])
        return done.stdout if done is not None and done.returncode == 0 else None

    # -- commands --------------------------------------------------------------------------------------------------

    def _argv(self, argv: list[str]) -> list[str]:
        return argv if self.as_root else ["sudo", "-n", *argv]

    def _command(self, argv: list[str], stdin: str | None = None, *, as_is: bool = False
                 ) -> subprocess.CompletedProcess | None:
        """``argv`` run (through ``sudo -n`` unless root, or ``as_is``); None when it cannot be run at all."""
        try:
            return self._run(argv if as_is else self._argv(argv), stdin)
        except (OSError, subprocess.SubprocessError) as exc:
            if not as_is:  # a probe that cannot run is answered by its caller, in one line
                log.warning("%s: %s", " ".join(argv), exc)
            return None

    def check_allowed(self, settings: list[Setting]) -> None:
        """UserError (one line, saying how to enable it) unless this process may run what ``settings`` need: root,
        or the sudoers rule of ``--allow-power-control``."""
        needed = []
        if any(s.mode is not None for s in settings):
            needed.append(["nvpmodel", "-m", str(settings[0].mode.id if settings[0].mode else 0)])
        if any(s.clocks is not None for s in settings):
            needed.append(["jetson_clocks"])
        for argv in needed:
            if self.as_root:
                if shutil.which(argv[0]) is None:
                    raise UserError(f"{argv[0]} is not on PATH: switching power modes and clocks needs JetPack's "
                                    f"{argv[0]}")
                continue
            done = self._command(["sudo", "-n", "-l", *argv], as_is=True)
            if done is None or done.returncode != 0:
                raise UserError(f"switching power modes and clocks needs root for `{' '.join(argv)}`: run as root, "
                                f"or let the agent's user run exactly those commands with `{ENABLE}`")

    # -- applying a setting ----------------------------------------------------------------------------------------

    def remember(self) -> None:
        """Write the restore marker (once): the mode and clock limits the board has now, before anything changes."""
        if self.state_file.exists():
            return
        mode = self.current()
        self.state_file.parent.mkdir(parents=True, exist_ok=True)
        stored = self._command(["jetson_clocks", "--store", str(self.store_file)]) \
            if not self.store_file.exists() else None
        marker = {"mode_id": None if mode is None else mode.id, "mode_name": None if mode is None else mode.name,
                  "jetson_clocks": clocks.jetson_clocks(self.root),
                  "clocks_store": str(self.store_file) if self.store_file.exists() else None,
                  "pid": os.getpid(), "ts": time.time()}
        if stored is not None and stored.returncode != 0:
            log.warning("jetson_clocks --store failed (%s): clock limits are restored by nvpmodel alone",
                        _first_line(stored))
        tmp = self.state_file.with_suffix(".tmp")
        tmp.write_text(json.dumps(marker))
        os.replace(tmp, self.state_file)

    def apply(self, setting: Setting) -> None:
        """Put the board in ``setting``: the mode (by nvpmodel, which also frees locked clocks), then the clocks;
        verify each from the board's files and wait (bounded) for the caps to show. Raises Refused."""
        self.remember()
        mode = setting.mode or (self.current() if setting.clocks is not None else None)
        if mode is not None and (setting.mode is not None or setting.clocks == "dvfs"):
            self._switch(mode)
        if setting.clocks == "locked":
            done = self._command(["jetson_clocks"])
            if done is None or done.returncode != 0:
                raise Refused(f"jetson_clocks failed: {_first_line(done)}")
        if setting.clocks is not None:
            want = setting.clocks == "locked"
            if not self._wait(lambda: clocks.jetson_clocks(self.root) is want):
                raise Refused(f"the clocks did not become {'locked' if want else 'free (dvfs)'} within "
                              f"{self.settle_s:g} s")

    def _switch(self, mode: nvpmodel.Mode) -> None:
        now = self.current()
        reboot = Refused(f"power mode {mode.name} ({mode.id}) needs a reboot from {now.name if now else 'this mode'} "
                         f"(its GPU power gating differs): switch with `sudo nvpmodel -m {mode.id}`, reboot, and "
                         "measure it then")
        if mode.needs_reboot_from(now):  # never risk nvpmodel's reboot: the conf says it would need one
            raise reboot
        done = self._command(["nvpmodel", "-m", str(mode.id)])  # stdin empty: a reboot prompt is declined
        text = "" if done is None else f"{done.stdout}\n{done.stderr}"
        if "reboot required" in text.lower():
            raise reboot
        if done is None or done.returncode != 0:
            raise Refused(f"nvpmodel refused power mode {mode.name} ({mode.id}): {_first_line(done)}")
        if not self._wait(lambda: (m := self.current()) is not None and m.id == mode.id):
            got = self.current()
            raise Refused(f"nvpmodel did not apply power mode {mode.name} ({mode.id}): the board reports "
                          f"{got.name if got else 'no mode'}")
        if not self._wait(lambda: not self.unsettled(mode)):
            raise Refused(f"power mode {mode.name} ({mode.id}) did not settle within {self.settle_s:g} s: "
                          f"{'; '.join(self.unsettled(mode))}")

    def unsettled(self, mode: nvpmodel.Mode) -> list[str]:
        """What of ``mode`` the board's files do not show yet: CPUs online or offline, a clock maximum above its
        cap, a clock running above its maximum. Empty when settled."""
        problems = []
        online = mode.cpus_online
        if online is not None:
            for cpu in clocks._cpus(self.root):
                number = int(cpu.name[3:])
                state = read_text(cpu / "online", strict=True)
                if state is not None and (state.strip() == "1") != (number in online):
                    problems.append(f"cpu{number} is {'online' if state.strip() == '1' else 'offline'}")
        params = self.conf.params if self.conf else {}
        for name, cap in mode.caps_hz().items():
            param = params.get(name)
            if cap is None or param is None or "MAX_FREQ" not in param.files:
                continue
            limit_file = self.root / param.files["MAX_FREQ"].lstrip("/")
            limit = read_int(limit_file, strict=True)
            unit = 1000 if name.startswith("CPU") else 1
            if limit is not None and limit * unit > cap:
                problems.append(f"{name} maximum {limit * unit / 1e6:g} MHz above its cap {cap / 1e6:g} MHz")
            current = read_int(limit_file.with_name("scaling_cur_freq" if unit == 1000 else "cur_freq"), strict=True)
            if current is not None and limit is not None and current > limit:
                problems.append(f"{name} running at {current * unit / 1e6:g} MHz, above {limit * unit / 1e6:g} MHz")
        return problems

    def _wait(self, done: Callable[[], bool]) -> bool:
        deadline = time.monotonic() + self.settle_s
        while True:
            if done():
                return True
            if time.monotonic() >= deadline:
                return False
            time.sleep(self.poll_s)

    # -- putting it back -------------------------------------------------------------------------------------------

    def restore(self) -> str | None:
        """Put back the mode and clock limits of the marker, and remove it; a sentence saying what was done (None:
        nothing to restore). Never raises for the board's refusal: it is logged, and the marker kept."""
        try:
            marker = json.loads(self.state_file.read_text())
        except FileNotFoundError:
            return None
        except (OSError, ValueError) as exc:
            log.warning("restore marker %s unreadable (%s): removed", self.state_file, exc)
            self.state_file.unlink(missing_ok=True)
            return None
        done_words = []
        failed = []
        mode_id = marker.get("mode_id")
        if isinstance(mode_id, int):
            # Always, even in the same mode: nvpmodel writes the mode's own limits, freeing clocks the sweep locked.
            done = self._command(["nvpmodel", "-m", str(mode_id)])
            back = self.current()
            if done is None or done.returncode != 0 or back is None or back.id != mode_id:
                failed.append(f"power mode {marker.get('mode_name')} ({mode_id}): {_first_line(done)}")
            else:
                done_words.append(f"power mode {marker.get('mode_name')} ({mode_id})")
        store = marker.get("clocks_store")
        if store:
            done = self._command(["jetson_clocks", "--restore", store])
            if done is None or done.returncode != 0:
                failed.append(f"clock limits from {store}: {_first_line(done)}")
            else:
                done_words.append("clock limits" + (" (jetson_clocks on)" if marker.get("jetson_clocks") else ""))
                Path(store).unlink(missing_ok=True)
        if failed:
            log.warning("could not restore %s; the marker %s is kept for the next start", "; ".join(failed),
                        self.state_file)
            return f"could not restore {'; '.join(failed)}"
        self.state_file.unlink(missing_ok=True)
        return f"restored {' and '.join(done_words)}" if done_words else None


def _first_line(done: subprocess.CompletedProcess | None) -> str:
    if done is None:
        return "it could not be run"
    text = (done.stderr or done.stdout or "").strip()
    return text.splitlines()[-1] if text else f"exit status {done.returncode}"
