"""What the silicon actually ran at: the CPU clusters', the integrated GPU's and (where readable) the memory
controller's (EMC) clock, read under an injectable ``root``, and a low-rate watcher that summarises them over a timed
window together with the thermal throttling indicators.

Sources, relative to ``root`` (units as the kernel writes them; everything here is reported in MHz):

- CPU: ``sys/devices/system/cpu/cpufreq/policy<N>/scaling_cur_freq`` (kHz, 0444), one per cpufreq policy, i.e. per
  cluster on a Jetson (Orin Nano: cpu0-3 and cpu4-5), the policy's CPUs from ``related_cpus`` (``affected_cpus``
  when absent). Without policy directories: ``cpu<N>/cpufreq/scaling_cur_freq``, CPUs with the same
  ``related_cpus`` counted once. ``scaling_cur_freq`` is the frequency cpufreq last set (or, on x86, the APERF/MPERF
  estimate); the hardware read ``cpuinfo_cur_freq`` is root-only (0400) and not used.
- GPU: devfreq ``cur_freq`` (Hz) of the integrated GPU, found as :func:`clocks._gpu_devfreqs` finds it
  (``sys/class/devfreq/17000000.gpu`` on JetPack 6 Orin).
- EMC: ``sys/kernel/debug/bpmp/debug/clk/emc/rate`` (Hz; what NVIDIA's jetson_clocks reads), else
  ``sys/kernel/debug/clk/emc/clk_rate`` (Hz; older kernels), else Thor's ``sys/class/devfreq/bwmgr/cur_freq`` (Hz).
  The debugfs files need root: without it a Jetson's EMC is reported "not readable" (:attr:`FrequencyWatch.unreadable`,
  logged once), never 0.

A file that is missing or unreadable never raises: a domain that cannot be read is left out.
"""

from __future__ import annotations

import logging
import math
import re
import threading
import time
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path

from dnnprof.shared import schema

from . import conditions
from .clocks import _gpu_devfreqs
from .jetson import is_jetson
from .sysfs import numbered, read_int, read_text

log = logging.getLogger(__name__)

DEFAULT_RATE_HZ = 2.0
MAX_RATE_HZ = 50.0  # clocks change at most every few ms (schedutil's rate limit) and cost a read each: no use faster
_POLICY = re.compile(r"policy(\d+)")
_CPU = re.compile(r"cpu(\d+)")
KHZ, HZ = 1e3, 1e6  # file units per MHz
# (path under root, unit) in the order tried: NVIDIA's jetson_clocks (do_emc) and jtop (core/memory.py read_emc).
EMC_FILES = (("sys/kernel/debug/bpmp/debug/clk/emc/rate", HZ), ("sys/kernel/debug/clk/emc/clk_rate", HZ),
             ("sys/class/devfreq/bwmgr/cur_freq", HZ))
_said_unreadable: set[str] = set()  # roots whose unreadable EMC was logged already (once per process)


@dataclass(frozen=True)
class Domain:
    """One clock domain: its name in results ("cpu0-3", "gpu", "emc"), the file holding its current frequency and
    how many of that file's units make one MHz (:data:`KHZ` or :data:`HZ`)."""

    name: str
    path: Path
    per_mhz: float

    def read_mhz(self) -> float | None:
        value = read_int(self.path)
        return value / self.per_mhz if value is not None and value >= 0 else None


def _parse_cpus(text: str | None) -> list[int]:
    """``related_cpus`` (``0 1 2 3``) or a cpulist (``0-3,6``) as sorted CPU numbers; [] when unparsable."""
    cpus: set[int] = set()
    for part in (text or "").replace(",", " ").split():
        low, sep, high = part.partition("-")
        try:
            cpus.update(range(int(low), int(high) + 1) if sep else [int(low)])
        except ValueError:
            return []
    return sorted(cpus)


def cpu_range_name(cpus: list[int]) -> str:
    """``[0, 1, 2, 3]`` -> ``cpu0-3``; ``[4]`` -> ``cpu4``; ``[0, 1, 4]`` -> ``cpu0-1,4``."""
    runs: list[str] = []
    i = 0
    while i < len(cpus):
        j = i
        while j + 1 < len(cpus) and cpus[j + 1] == cpus[j] + 1:
            j += 1
        runs.append(str(cpus[i]) if i == j else f"{cpus[i]}-{cpus[j]}")
        i = j + 1
    return "cpu" + ",".join(runs)


def _cpus_of(folder: Path) -> list[int]:
    return _parse_cpus(read_text(folder / "related_cpus")) or _parse_cpus(read_text(folder / "affected_cpus"))


def cpu_domains(root: str | Path = "/") -> list[Domain]:
    """One domain per cpufreq policy (``policy<N>``, named after its CPUs), else per CPU when the kernel shows no
    policy directories (CPUs that share ``related_cpus`` are one domain). Only domains with a ``scaling_cur_freq``."""
    base = Path(root) / "sys/devices/system/cpu"
    domains: list[Domain] = []
    for policy in numbered(base / "cpufreq", _POLICY):
        if (policy / "scaling_cur_freq").is_file():
            cpus = _cpus_of(policy)
            domains.append(Domain(cpu_range_name(cpus) if cpus else policy.name, policy / "scaling_cur_freq", KHZ))
    if domains:
        return domains
    seen: set[tuple[int, ...]] = set()
    for cpu in numbered(base, _CPU):
        if not (cpu / "cpufreq/scaling_cur_freq").is_file():
            continue
        cpus = tuple(_cpus_of(cpu / "cpufreq")) or (int(cpu.name[3:]),)
        if cpus not in seen:
            seen.add(cpus)
            domains.append(Domain(cpu_range_name(list(cpus)), cpu / "cpufreq/scaling_cur_freq", KHZ))
    return domains


def gpu_domains(root: str | Path = "/") -> list[Domain]:
    """The integrated GPU's devfreq ``cur_freq``: "gpu", or "gpu:<devfreq name>" each when there are several."""
    found = [d for d in _gpu_devfreqs(Path(root)) if (d / "cur_freq").is_file()]
    if len(found) == 1:
        return [Domain("gpu", found[0] / "cur_freq", HZ)]
    return [Domain(f"gpu:{d.name}", d / "cur_freq", HZ) for d in found]


def emc_domain(root: str | Path = "/") -> Domain | None:
    """The first EMC file of :data:`EMC_FILES` that reads as a number now; None when none does (no root, or not a
    Jetson)."""
    for relative, per_mhz in EMC_FILES:
        domain = Domain("emc", Path(root) / relative, per_mhz)
        if domain.read_mhz() is not None:
            return domain
    return None


def domains(root: str | Path = "/") -> tuple[list[Domain], list[str]]:
    """(every readable clock domain, the names of those a Jetson has but that cannot be read: ``["emc"]`` without
    root)."""
    found = cpu_domains(root) + gpu_domains(root)
    emc = emc_domain(root)
    if emc is not None:
        return [*found, emc], []
    return found, ["emc"] if is_jetson(root) else []


def frequencies_mhz(root: str | Path = "/") -> dict[str, float]:
    """One reading of every readable domain now, MHz: ``{"cpu0-3": 729.6, "cpu4-5": 729.6, "gpu": 306.0}``."""
    out: dict[str, float] = {}
    for domain in domains(root)[0]:
        value = domain.read_mhz()
        if value is not None:
            out[domain.name] = round(value, 3)
    return out


def below_caps(summary: Mapping[str, schema.FrequencyFigures], caps_mhz: Mapping[str, float], *,
               tolerance: float = 0.02) -> list[str]:
    """``below_cap:<domain>`` for every domain whose lowest reading fell below its cap by more than ``tolerance``
    (a fraction of the cap).

    Meaningful only while the clocks are locked (jetson_clocks: min = max), when any dip below the mode's cap is the
    firmware or the kernel pulling the clock down; under a dynamic governor an idle core sits below its cap by design.
    ``caps_mhz`` holds the mode's caps in MHz (the caller knows the mode: nvpmodel.conf's CPU ``MAX_FREQ`` is kHz, GPU
    and EMC Hz), keyed by domain name (``"gpu"``, ``"cpu4-5"``) or by one CPU of a domain (``"cpu4"``).
    """
    fired = []
    for name, figures in summary.items():
        cap = caps_mhz.get(name)
        if cap is None and name.startswith("cpu"):
            cpus = set(_parse_cpus(name[3:]))
            cap = next((c for key, c in caps_mhz.items() if (m := _CPU.fullmatch(key)) and int(m.group(1)) in cpus),
                       None)
        if cap is not None and cap > 0 and figures.min < cap * (1 - tolerance):
            fired.append(f"below_cap:{name}")
    return fired


class _Stats:
    __slots__ = ("n", "total", "low", "high")

    def __init__(self) -> None:
        self.n, self.total, self.low, self.high = 0, 0.0, math.inf, -math.inf

    def add(self, value: float) -> None:
        self.n += 1
        self.total += value
        self.low, self.high = min(self.low, value), max(self.high, value)


class FrequencyWatch:
    """Reads every clock domain, and the thermal throttling indicators, ``rate_hz`` times a second on its own daemon
    thread while open; :meth:`summary` gives min / mean / max MHz per domain.

    Use as a context manager around the timed window (``with FrequencyWatch(root) as watch: ...``): entering finds
    the domains and takes a first reading, leaving stops the thread and takes a last one, so even a window shorter
    than the period has two readings. :meth:`sample` may also be called from the caller's own thread instead
    (``FrequencyWatch(root, rate_hz=0)`` starts no thread).

    Cost: one reading is one small file read per domain (3-5 on a Jetson), per zone with a throttling trip and per
    bound cooling device; about 0.1 ms of CPU for the AGX Orin tree's twelve files (measured on an x86 development
    machine), so 2 Hz costs some 0.02 % of one core. On a board a thermal zone's ``temp`` is answered by the BPMP
    firmware, which may cost more (UNVERIFIED); ``cpu_s`` says what the readings actually used. Per-domain figures
    are running sums: memory does not grow with the window. Domains, trips and cooling devices are found once, at
    :meth:`start`.
    """

    def __init__(self, root: str | Path = "/", rate_hz: float = DEFAULT_RATE_HZ, *, thermal: bool = True) -> None:
        if not (isinstance(rate_hz, (int, float)) and math.isfinite(rate_hz) and 0 <= rate_hz <= MAX_RATE_HZ):
            raise ValueError(f"rate_hz must be 0 (no thread) or up to {MAX_RATE_HZ:g}, not {rate_hz!r}")
        self.root = Path(root)
        self.rate_hz = float(rate_hz)
        self.thermal = thermal
        self.domains: list[Domain] = []
        self.unreadable: list[str] = []  # domains the board has that cannot be read ("emc" without root)
        self.samples = 0  # readings taken
        self.cpu_s = 0.0  # CPU time the readings took, on whichever thread took them
        self._trips: list[conditions.Trip] = []
        self._cooling: list[conditions.CoolingDevice] = []
        self._stats: dict[str, _Stats] = {}
        self._fired: set[str] = set()
        self._lock = threading.Lock()
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None
        self._started = False

    # -- lifecycle --

    def start(self) -> FrequencyWatch:
        """Find the domains and the throttling trips, take a first reading, start the thread (unless rate 0)."""
        if self._started:
            return self
        self._started = True
        self.domains, self.unreadable = domains(self.root)
        if self.unreadable and str(self.root) not in _said_unreadable:
            _said_unreadable.add(str(self.root))
            log.info("clock of %s not readable (debugfs needs root): not recorded", ", ".join(self.unreadable))
        if self.thermal:
            self._trips = conditions.throttle_trips(self.root)
            self._cooling = conditions.throttle_cooling_devices(self.root)
        self.sample()
        if self.rate_hz > 0 and (self.domains or self._trips or self._cooling):
            self._stop.clear()
            self._thread = threading.Thread(target=self._run, name="frequency-watch", daemon=True)
            self._thread.start()
        return self

    def stop(self) -> None:
        """Stop the thread and take a last reading. Idempotent."""
        if not self._started:
            return
        self._started = False
        self._stop.set()
        if self._thread is not None:
            self._thread.join()
            self._thread = None
        self.sample()

    def __enter__(self) -> FrequencyWatch:
        return self.start()

    def __exit__(self, *exc: object) -> None:
        self.stop()

    def _run(self) -> None:
        period = 1.0 / self.rate_hz
        next_at = time.monotonic() + period
        while not self._stop.wait(max(0.0, next_at - time.monotonic())):
            self.sample()
            next_at += period
            now = time.monotonic()
            if next_at < now:  # fell behind (a suspended process): skip the missed readings, keep the rate
                next_at = now + period

    # -- readings --

    def sample(self) -> None:
        """One reading of every domain and throttling indicator. Never raises for an unreadable file."""
        t0 = time.thread_time()
        values = [(d.name, d.read_mhz()) for d in self.domains]
        fired = conditions.thermal_throttling(self._trips, self._cooling) if self._trips or self._cooling else []
        with self._lock:
            for name, value in values:
                if value is not None:
                    self._stats.setdefault(name, _Stats()).add(value)
            self._fired.update(fired)
            self.samples += 1
            self.cpu_s += time.thread_time() - t0

    def summary(self) -> dict[str, schema.FrequencyFigures]:
        """Per domain, in discovery order (CPU policies, GPU, EMC): min / mean / max MHz and the readings that went
        into them. ``{}`` when nothing was readable."""
        with self._lock:
            return {name: schema.FrequencyFigures(min=round(s.low, 3), mean=round(s.total / s.n, 3),
                                                  max=round(s.high, 3), samples=s.n)
                    for name, s in self._stats.items() if s.n}

    def throttle_reasons(self, start: conditions.Snapshot | None = None, end: conditions.Snapshot | None = None, *,
                         caps_mhz: Mapping[str, float] | None = None, tolerance: float = 0.02) -> list[str]:
        """Every throttling indicator that fired while watching, sorted, each once:

        - ``soctherm_oc<N>`` / ``x86_thermal_throttle``: event counters that rose between ``start`` and ``end``
          (:func:`conditions.throttle_reasons`; give the snapshots taken around the window);
        - ``thermal_trip:<zone>``: a zone at or above a passive/hot trip in some reading;
        - ``cooling:<device>``: a cpufreq/devfreq cooling device with ``cur_state`` > 0 in some reading;
        - ``below_cap:<domain>``: with ``caps_mhz`` (only while the clocks are locked), see :func:`below_caps`.
        """
        with self._lock:
            reasons = set(self._fired)
        if start is not None and end is not None:
            reasons.update(conditions.throttle_reasons(start, end))
        if caps_mhz:
            reasons.update(below_caps(self.summary(), caps_mhz, tolerance=tolerance))
        return sorted(reasons)
