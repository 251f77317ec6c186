"""Jetson rail power through jetson-stats (``jtop``), the root service that reads the board's power monitors.

Use it where the agent cannot read sysfs itself (a container with only ``/run/jtop.sock`` mounted). The client
(``pip install jetson-stats``, the same major.minor as the board's ``jtop.service``) talks to the service over the
Unix socket ``/run/jtop.sock``, which belongs to the ``jtop`` group.

``jetson.power`` comes in two shapes, both read here, instantaneous values only (``avg`` is an EMA, never used):

* jetson-stats <= 4.1 (parses tegrastats): a tuple ``total, rails``, each entry ``{'cur': mW, 'avg': mW}``. Rail
  names are shortened (``VDD_IN`` → ``IN``, ``POM_5V_IN`` → ``5V IN``). ``total`` is either the sum of the rails or
  a rail jtop took out of ``rails`` as the board input (4.1: ``POM_5V_IN``; <= 4.0: any name containing ``IN``).
* jetson-stats >= 4.2 and 7.x (reads sysfs): ``{'rail': {name: {'power': mW, 'avg': mW, 'online': bool, ...}},
  'tot': {...}}``; every entry has ``online`` (an I2C monitor's is set True by ``get_status``). When the board has
  an input rail jtop removes it from ``rail`` and ``tot`` is that rail with ``tot['name']`` set: ``VDD_IN`` or
  ``POM_5V_IN``, and from 7.2.1 Thor's ``VIN`` (the carrier board's INA238, which 7.2.0 and 4.x do not read: there
  ``tot`` is the sum of the INA3221 rails). Otherwise ``tot`` is a sum without a name (AGX Orin/Xavier). An input
  rail jtop reports offline, in ``rail`` or as ``tot``, is refused.

Samples arrive at the service's interval, which the *first* client to connect sets; ``jetson.interval`` is the one
in effect. A callback (``jetson.attach``) stores each sample. The client's reader thread ignores its wait's result
and hands the *last* sample to the callbacks again every 3 intervals when none came (``jtop.run``/``_get_data``,
4.x to 7.x): so a sample counts as new only when the service's own clock in it moved (``jetson.uptime``, the
service's ``/proc/uptime`` from 4.2 on) or, from a <= 4.1 client (whose ``uptime`` is the client's own), when it is
another object than the last one. ``read()`` returns the latest new one, and calls it stalled after 3 intervals.
Sources: rbonghi/jetson_stats jtop/jtop.py (start, ok, interval, attach, power, run, _get_data, uptime),
jtop/service.py (``data['uptime']``; <= 4.1 ``_total_power``), jtop/core/power.py (``total_power``, ``get_status``;
7.2.1's INA238 VIN: commit c9571a81), jtop/core/common.py (``compare_versions``).
"""

from __future__ import annotations

import math
import os
import re
import threading
import time
from pathlib import Path
from typing import Any

from . import rails as railnames
from .base import PowerSource, SourceUnavailable

DEFAULT_INTERVAL_S = 0.1  # what we ask for; a service already started by another client keeps its own
STALL_INTERVALS = 3  # jtop's own TIMEOUT_GAIN: no sample for 3 intervals = stalled
SOCKET = "run/jtop.sock"  # JTOP_PIPE in jtop/service.py, every version 3.x .. 7.x
# jetson-stats <= 4.1 shortens rail names: VDD_IN → "IN", POM_5V_IN → "5V IN" (service.py tegra_stats).
OLD_INPUT_NAMES = ("IN", "5V_IN")
OLD_TOTAL_RAIL = "jtop total"  # <= 4.1: the rail jtop removed as the total, name unknown


def _explain(message: str) -> str:
    """A JtopException's message → one line that says what to fix."""
    text = " ".join(message.split())
    mismatch = re.search(r"service:\s*\[([^\]]*)\]\s*and client:\s*\[([^\]]*)\]", text)
    if mismatch:
        service, client = mismatch.groups()
        major_minor = ".".join(service.split(".")[:2])
        return (f"jetson-stats client {client} vs jtop.service {service}: install the same jetson-stats major.minor "
                f"as the board's service (pip install 'jetson-stats=={major_minor}.*')")
    if "not active" in text:
        return ("jtop.service is not running: sudo systemctl start jtop.service (or install it: "
                "sudo jtop --install-service)")
    if "can't access" in text or "Permission denied" in text:
        return ("no permission to use jtop.service's socket /run/jtop.sock: add the agent's user to the jtop group "
                "(sudo usermod -aG jtop USER, then log in again)")
    if "Python versions" in text:
        return ("jtop.service runs under another Python major version than this agent: install jetson-stats for the "
                "same Python as the service")
    return f"jtop: {text}"


def _is_sum(total: dict, rails: dict) -> bool:
    """<= 4.1: whether ``total`` is the sum of ``rails`` (cur and avg) rather than a rail taken out of them."""
    try:
        return (total["cur"] == sum(r["cur"] for r in rails.values())
                and total["avg"] == sum(r["avg"] for r in rails.values()))
    except (KeyError, TypeError):
        return False


class JtopSource(PowerSource):
    name = "jtop"
    estimated = False
    quantity = "power_w"

    def __init__(self, root: str | Path = "/", interval_s: float = DEFAULT_INTERVAL_S) -> None:
        if not (math.isfinite(interval_s) and interval_s > 0):
            raise SourceUnavailable(f"jtop interval {interval_s:g} s is not valid: give a positive number")
        try:
            import jtop as jtop_module
            from jtop import JtopException, jtop
        except ImportError:
            raise SourceUnavailable("jetson-stats is not installed: pip install jetson-stats (the same major.minor "
                                    "as the board's jtop.service)") from None
        socket = Path(root) / SOCKET
        if not socket.exists():
            raise SourceUnavailable(f"{socket} is missing: jtop.service is not running — sudo systemctl start "
                                    "jtop.service (or install it: sudo jtop --install-service)")
        if not os.access(socket, os.R_OK | os.W_OK):
            raise SourceUnavailable(_explain("can't access"))
        self.notes: list[str] = []
        self.info: list[str] = []
        self._old_total = False  # <= 4.1: the total is a rail jtop took out of the list
        self._shape = self._caveat = ""
        self._lock = threading.Lock()
        self._latest: tuple[float, Any] | None = None  # (monotonic arrival of new content, jetson.power)
        self._stamp: object = None  # what identifies the latest sample's content (see _stamp_of)
        # UNVERIFIED on hardware: no jtop.service here; start()/ok()/interval/attach and the exception messages are
        # those of the jetson_stats sources (3.1.4 .. 7.x), exercised against a fake client only.
        self._client = jtop(interval=interval_s)
        try:
            self._client.start()
        except JtopException as exc:
            raise SourceUnavailable(_explain(str(exc))) from None
        except OSError as exc:  # the client re-raises socket errors it does not recognise
            raise SourceUnavailable(f"cannot connect to jtop.service at /run/jtop.sock: {exc}") from None
        try:
            # ok() blocks until a sample arrives, up to 3 intervals; False means none came.
            if not self._client.ok():
                raise SourceUnavailable("jtop.service sends no data (jtop ok() is False): restart it with sudo "
                                        "systemctl restart jtop.service")
            power = self._client.power
            self._layout(power)
        except JtopException as exc:
            self._client.close()
            raise SourceUnavailable(_explain(str(exc))) from None
        except (KeyError, TypeError, ValueError, AttributeError) as exc:
            self._client.close()
            raise SourceUnavailable(f"jtop's power sample is not of a known shape ({exc!r})") from None
        except SourceUnavailable:
            self._client.close()
            raise
        self._latest = (time.monotonic(), power)
        self._stamp = self._stamp_of(self._client, power)
        self.interval_s = float(self._client.interval)
        self.update_interval_s = self.interval_s  # one new value per service tick
        self.period_s = min(max(self.interval_s / 10, 0.01), 0.1)
        asked = "" if math.isclose(self.interval_s, interval_s) else (
            f"; asked for {interval_s:g} s, but the first client to connect sets the service's interval")
        version = getattr(jtop_module, "__version__", "?")
        self.method = (f"jetson-stats {version} ({self._shape}) via jtop.service, one sample every "
                       f"{self.interval_s:g} s{asked}; instantaneous power (never avg); "
                       f"total = {railnames.describe_total(self.input_rail)}{self._caveat}")
        self._client.attach(self._on_sample)

    # -- the two shapes ----------------------------------------------------------------------------------------------

    def _layout(self, power: Any) -> None:
        """Fix rails, input rail and boundary from the first sample."""
        if isinstance(power, tuple):
            # UNVERIFIED on hardware: the <= 4.1 tuple shape is from the 3.1.4/4.0.0/4.1.5 sources, not a board.
            self._shape = "<= 4.1 tuple"
            total, rails = power
            values = self._values(power)
            input_rail = railnames.find_input_rail(values, OLD_INPUT_NAMES)
            if input_rail is None and rails is not None and not _is_sum(total, rails):
                # jtop took the input rail out of the list; its name is gone, the value is the total's.
                self._old_total = True
                values = self._values(power)
                input_rail = OLD_TOTAL_RAIL
                self._caveat = (" (jetson-stats <= 4.1 removes the rail it takes for the input: POM_5V_IN in 4.1, "
                                "any rail with IN in its name in <= 4.0, which on AGX Orin is VIN_SYS_5V0, a "
                                "branch: jetson_stats issue #344)")
        elif isinstance(power, dict):
            self._shape = ">= 4.2 dict"
            values = self._values(power)
            # Every entry carries `online` from 4.2 on (get_status sets True for I2C monitors; power_supply entries
            # read theirs). An input rail may be in `rail` or, named, in `tot`.
            entries = dict(power.get("rail") or {})
            tot = power.get("tot") or {}
            if tot.get("name"):
                entries[tot["name"]] = tot
            offline = [name for name, entry in entries.items()
                       if entry.get("online", True) is False and railnames.find_input_rail([name])]
            if offline:
                # The board has an input rail: a sum of its branches would be another quantity under the same name.
                raise SourceUnavailable(f"jtop reports the board's input rail {offline[0]} offline — without it the "
                                        "total would be a sum of branch rails, not the board's power")
            name = tot.get("name")
            # jtop names `tot` for the input rail it took out of `rail` (VDD_IN, POM_5V_IN, from 7.2.1 VIN); an
            # input rail left among the rails (none in any release known) is still found by name.
            input_rail = name if name in values else railnames.find_input_rail(values)
        else:
            raise SourceUnavailable(f"jtop's power has an unknown shape ({type(power).__name__})")
        if not values:
            raise SourceUnavailable("jtop reports no power rails on this board")
        self.rails = tuple(values)
        self.input_rail = input_rail
        self.boundary = railnames.boundary_of(input_rail)

    def _values(self, power: Any) -> dict[str, float]:
        """Instantaneous power per rail, W, from either shape; KeyError/TypeError on a malformed sample."""
        if isinstance(power, tuple):
            total, rails = power
            values = {name: entry["cur"] / 1e3 for name, entry in (rails or {}).items()}
            if self._old_total:
                values = {OLD_TOTAL_RAIL: total["cur"] / 1e3, **values}
            return values
        values = {}
        tot = power.get("tot") or {}
        if tot.get("name") and tot.get("online", True) is not False:
            values[tot["name"]] = tot["power"] / 1e3  # the input rail, which jtop took out of 'rail'
        for name, entry in (power.get("rail") or {}).items():
            if entry.get("online", True) is False:
                continue  # a power_supply entry that is offline has no reading
            values[name] = entry["power"] / 1e3
        return values

    # -- reading ---------------------------------------------------------------------------------------------------

    def _on_sample(self, jetson: Any) -> None:
        """Runs on jtop's reader thread after every sample, and again with the last one when none came."""
        power = jetson.power
        stamp = self._stamp_of(jetson, power)
        with self._lock:
            if stamp != self._stamp:  # a repeat keeps the time its content first arrived
                self._latest, self._stamp = (time.monotonic(), power), stamp

    def _stamp_of(self, jetson: Any, power: Any) -> object:
        """What tells a new sample from the reader thread's repeat of the last one: the service's uptime in it
        (>= 4.2), else the identity of the sample's objects (a repeat hands over the very same ones)."""
        if self._shape != "<= 4.1 tuple":
            try:
                return ("uptime", jetson.uptime.total_seconds())
            except (AttributeError, KeyError, TypeError):
                pass
        held = power[0] if isinstance(power, tuple) else power
        return ("object", id(held))

    def read(self) -> tuple[float, ...]:
        """The latest sample's power per rail (W). OSError when jtop stopped or stalled; the sampler counts it."""
        try:
            running = self._client.ok(spin=True)  # non-blocking; re-raises the reader thread's error
        except Exception as exc:  # whatever jtop's reader thread died of, it is this read's failure
            raise OSError(f"jtop: {' '.join(str(exc).split())}") from None
        if not running:
            raise OSError("jtop: the client stopped (ok() is False): no new sample")
        with self._lock:
            arrived, power = self._latest
        age = time.monotonic() - arrived
        if age > STALL_INTERVALS * self.interval_s:
            raise OSError(f"jtop: no new sample for {age:.2f} s (service interval {self.interval_s:g} s): stalled")
        try:
            values = self._values(power)
            return tuple(values[rail] for rail in self.rails)
        except (KeyError, TypeError, AttributeError) as exc:
            raise ValueError(f"jtop sample lacks {exc}") from None

    def close(self) -> None:
        client = getattr(self, "_client", None)
        if client is None:
            return
        try:
            client.detach(self._on_sample)
        except (KeyError, ValueError, AttributeError):
            pass  # never attached, or already detached: closing is what matters
        client.close()
        self._client = None
