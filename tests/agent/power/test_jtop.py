"""JtopSource against a thin fake of the jetson-stats client, serving recorded ``jetson.power`` samples of both
shapes (tests/data/jtop). The fake implements only the documented client API the source uses: ``jtop(interval)``,
``start()``/``close()`` (and ``with``), ``ok(spin)``, ``power``, ``uptime``, ``interval``, ``attach``/``detach``
and ``JtopException`` — with the messages the real client raises (rbonghi/jetson_stats jtop/jtop.py ``start``) —
and behaves as its reader thread does: with no new sample it hands the last one to the observers again
(``repeat``; jtop.py ``run``/``_get_data`` ignore the wait's result). ``uptime`` is the service's clock carried in
each sample from 4.2 on (service.py ``data['uptime']``), the client's own before."""

from __future__ import annotations

import json
import sys
import threading
import time
import types
from pathlib import Path

import pytest

from dnnprof.agent.measure.sampler import Sampler
from dnnprof.agent.power import open_source
from dnnprof.agent.power.base import SourceUnavailable
from dnnprof.agent.power.jtop import JtopSource
from dnnprof.shared.errors import UserError

DATA = Path(__file__).parents[2] / "data" / "jtop"


def load(name: str):
    """A recorded ``jetson.power``: a dict (>= 4.2) or, for the <= 4.1 files, the tuple ``(total, rails)``."""
    data = json.loads((DATA / name).read_text())
    return (data["total"], data["rails"]) if "total" in data else data


class Service:
    """What the fake client sees of jtop.service: the samples, the interval in effect, failures to act out."""

    def __init__(self) -> None:
        self.power = load("power-7x-orin-nano.json")
        # The interval in effect; None: the service takes the first client's. 1 s (jtop's default) leaves the
        # tests 3 s before a sample counts as stalled, however loaded the machine.
        self.interval: float | None = 1.0
        self.ok = True
        self.start_error: str | None = None
        self.reader_error: Exception | None = None
        self.clients: list = []
        self.version = "4.2.12"
        self.uptime_s = 1000.0  # the service's /proc/uptime in the current sample


def fake_module(service: Service) -> types.ModuleType:
    module = types.ModuleType("jtop")

    class JtopException(Exception):
        pass

    class jtop:  # noqa: N801 - the real class name
        def __init__(self, interval: float = 1.0) -> None:
            self.interval_user = float(interval)
            self._observers: set = set()
            self.started = self.closed = False
            service.clients.append(self)

        def start(self) -> None:
            if service.start_error:
                raise JtopException(service.start_error)
            self.started = True
            if service.interval is None:
                service.interval = self.interval_user  # the first client sets the service timer

        def close(self) -> None:
            self.closed = True

        def __enter__(self):
            self.start()
            return self

        def __exit__(self, *exc) -> None:
            self.close()

        def ok(self, spin: bool = False) -> bool:
            if service.reader_error is not None:
                raise service.reader_error
            return service.ok

        @property
        def power(self):
            # <= 4.1: `total, power = self._stats['power'][...]`, a new tuple of the same objects every call
            return tuple(service.power) if isinstance(service.power, tuple) else service.power

        @property
        def uptime(self):
            from datetime import timedelta

            if service.version.split(".")[0] == "4" and int(service.version.split(".")[1]) < 2:
                return timedelta(seconds=time.monotonic())  # <= 4.1: the client's own /proc/uptime
            return timedelta(seconds=service.uptime_s)

        @property
        def interval(self) -> float:
            return service.interval

        def attach(self, observer) -> None:
            self._observers.add(observer)

        def detach(self, observer) -> None:
            self._observers.discard(observer)

        def tick(self, power) -> None:
            """Test helper: the service publishes a new sample (the reader thread calls the observers)."""
            service.power = power
            service.uptime_s += service.interval or 1.0
            self.repeat()

        def repeat(self) -> None:
            """Test helper: what the real reader thread does when its wait times out: the observers get the last
            sample again (the same objects, the same service uptime)."""
            for observer in list(self._observers):
                observer(self)

    module.jtop = jtop
    module.JtopException = JtopException
    module.__version__ = service.version
    return module


@pytest.fixture
def service(monkeypatch, tmp_path):
    """A fake jetson-stats installed as the ``jtop`` module, and a root with the service's socket."""
    state = Service()
    monkeypatch.setitem(sys.modules, "jtop", fake_module(state))
    (tmp_path / "run").mkdir()
    (tmp_path / "run/jtop.sock").touch()
    state.root = tmp_path
    return state


@pytest.fixture
def opened(service):
    sources = []

    def make(**kwargs) -> JtopSource:
        sources.append(JtopSource(root=service.root, **kwargs))
        return sources[-1]

    yield make
    for source in sources:
        source.close()


def test_dict_shape_with_an_input_rail(service, opened):
    source = opened()
    assert source.name == "jtop" and source.quantity == "power_w" and not source.estimated
    assert source.rails == ("VDD_IN", "VDD_CPU_GPU_CV", "VDD_SOC")  # tot (named) first, then the rails
    assert source.input_rail == "VDD_IN" and source.boundary == "input_rail"
    values = source.read()
    assert values == (4.83, 0.442, 1.708)  # 'power', never 'avg' (4700, 380, 1650)
    assert source.total(values) == 4.83
    assert ">= 4.2 dict" in source.method and "never avg" in source.method and "input rail VDD_IN" in source.method


def test_real_sample_from_an_orin_nano_super(service, opened):
    # printed by a user on an Orin Nano 4GB Super devkit (L4T 36.4.3, JetPack 6.2; see tests/data/jtop/README.md):
    # no 'type' key in its entries, and each 'avg' well off its 'power'
    service.power = load("power-orin-nano-4gb-super-jp62.json")
    assert all("type" not in entry for entry in [service.power["tot"], *service.power["rail"].values()])
    source = opened()
    assert source.rails == ("VDD_IN", "VDD_CPU_GPU_CV", "VDD_SOC")
    assert source.input_rail == "VDD_IN" and source.boundary == "input_rail"
    values = source.read()
    assert values == (5.133, 1.064, 1.54)  # 'power', never 'avg' (4800, 806, 1524)
    assert source.total(values) == 5.133


def test_dict_shape_without_an_input_rail_is_a_sum(service, opened):
    service.power = load("power-7x-agx-orin.json")
    source = opened()
    assert source.rails == ("VDDQ_VDD2_1V8AO", "VDD_CPU_CV", "VDD_GPU_SOC", "VIN_SYS_5V0")
    assert source.input_rail is None and source.boundary == "sum_of_rails"
    values = source.read()
    assert source.total(values) == pytest.approx(7.015)  # = tot['power'], computed from the rails ourselves


def thor_7_2_1() -> dict:
    """A Thor sample as jetson-stats 7.2.1 shapes it (jtop/core/power.py, commit c9571a81): the carrier board's
    INA238 read as VIN, moved by ``total_power`` into ``tot`` with ``name='VIN'`` (INA238 entries carry ``type``,
    ``volt``, ``curr``, ``power`` and ``online`` True from ``get_status``), the INA3221 module rails in ``rail``."""
    power = load("power-7x-agx-orin.json")
    power["tot"] = {"type": "INA238", "volt": 19000, "curr": 500, "power": 9500, "online": True, "avg": 9400,
                    "name": "VIN"}
    return power


def test_thor_7_2_1_reads_vin_as_the_input(service, opened):
    service.power = thor_7_2_1()
    source = opened()
    assert source.input_rail == "VIN" and source.boundary == "input_rail"
    assert "VIN" in source.rails and source.total(source.read()) == 9.5


def test_thor_before_7_2_1_is_a_sum_of_the_module_rails(service, opened):
    service.power = load("power-7x-agx-orin.json")  # 7.2.0 and 4.x read no INA238: tot sums the INA3221 rails
    source = opened()
    assert source.input_rail is None and source.boundary == "sum_of_rails"


@pytest.mark.parametrize("where", ["tot", "rail"])
def test_dict_shape_refuses_an_offline_input_rail(service, where):
    power = thor_7_2_1()
    if where == "rail":  # a power_supply entry named as an input, left among the rails
        power["tot"] = {"power": 7015, "avg": 7009}
        power["rail"]["VIN"] = {"type": "INA238", "online": False, "volt": 0, "curr": 0, "power": 0, "avg": 0}
    else:
        power["tot"]["online"] = False
    service.power = power
    with pytest.raises(SourceUnavailable, match="jtop reports the board's input rail VIN offline .* sum of branch"):
        JtopSource(root=service.root)
    assert service.clients[-1].closed


def test_tuple_shape_with_the_input_taken_out(service, opened):
    service.power = load("power-4.1-nano.json")  # POM_5V_IN removed from the rails and returned as the total
    source = opened()
    assert source.rails == ("jtop total", "5V GPU", "5V CPU")
    assert source.input_rail == "jtop total" and source.boundary == "input_rail"
    assert source.read() == (0.933, 0.0, 0.084)  # 'cur', never 'avg'
    assert "<= 4.1 tuple" in source.method and "issue #344" in source.method


def test_tuple_shape_with_the_input_left_in(service, opened):
    service.power = load("power-4.1-xavier-nx.json")  # 4.1 keeps VDD_IN (as "IN") and sums everything
    source = opened()
    assert source.rails == ("IN", "CPU GPU CV", "SOC")
    assert source.input_rail == "IN" and source.boundary == "input_rail"
    values = source.read()
    assert source.total(values) == 5.079  # the input rail, not jtop's double-counting sum 6.879


def test_tuple_shape_sum(service, opened):
    service.power = load("power-4.1-agx-xavier.json")
    source = opened()
    assert source.input_rail is None and source.boundary == "sum_of_rails"
    assert len(source.rails) == 6 and "jtop total" not in source.rails
    assert source.total(source.read()) == pytest.approx(6.928)


def test_samples_arrive_through_the_callback(service, opened):
    source = opened()
    client = service.clients[-1]
    newer = load("power-7x-orin-nano.json")
    newer["tot"]["power"] = 9000
    newer["rail"]["VDD_SOC"]["power"] = 2100
    client.tick(newer)
    assert source.read() == (9.0, 0.442, 2.1)


def test_a_sample_missing_a_rail_is_a_value_error(service, opened):
    source = opened()
    broken = load("power-7x-orin-nano.json")
    del broken["rail"]["VDD_SOC"]
    service.clients[-1].tick(broken)
    with pytest.raises(ValueError, match="VDD_SOC"):
        source.read()


def test_ok_false_is_a_stalled_read(service, opened):
    source = opened()
    service.ok = False
    with pytest.raises(OSError, match=r"ok\(\) is False"):
        source.read()
    sampler = Sampler(source)
    with sampler:
        pass
    assert sampler.read_errors >= 2 and sampler.ts == []


def test_no_new_sample_for_three_intervals_is_a_stalled_read(service, opened):
    service.interval = 0.05
    source = opened()
    time.sleep(0.2)  # > 3 x 0.05 s without a sample
    with pytest.raises(OSError, match="no new sample for .* stalled"):
        source.read()
    service.clients[-1].tick(load("power-7x-orin-nano.json"))
    assert source.read() == (4.83, 0.442, 1.708)


@pytest.mark.parametrize("version, sample", [("7.2.0", "power-7x-orin-nano.json"), ("4.1.5", "power-4.1-nano.json")])
def test_the_reader_threads_repeats_of_the_last_sample_are_a_stall(service, opened, version, sample):
    """A hung jtop.service: the client's reader thread keeps handing the last sample to the observers (every 3
    intervals), so arrivals go on; the sample's content does not, and the read says stalled."""
    service.version, service.interval = version, 0.05
    service.power = load(sample)
    source = opened()
    client = service.clients[-1]
    for _ in range(5):  # 0.25 s of repeats, each within 3 intervals of the last
        time.sleep(0.05)
        client.repeat()
    with pytest.raises(OSError, match="no new sample for .* stalled"):
        source.read()
    fresh = load(sample)  # a new sample (new objects, the service's clock moved): readable again
    client.tick((fresh["total"], fresh["rails"]) if "total" in fresh else fresh)
    assert source.read()


def test_an_error_of_the_reader_thread_is_a_read_error(service, opened):
    source = opened()
    service.reader_error = sys.modules["jtop"].JtopException("Lost connection with jtop server")
    with pytest.raises(OSError, match="jtop: Lost connection with jtop server"):
        source.read()


def test_ok_false_at_start(service):
    service.ok = False
    with pytest.raises(SourceUnavailable, match=r"sends no data \(jtop ok\(\) is False\)"):
        JtopSource(root=service.root)
    assert service.clients[-1].closed


def test_the_interval_in_effect_is_the_services(service, opened):
    assert service.interval == 1.0  # another client connected first
    source = opened(interval_s=0.1)
    assert service.clients[-1].interval_user == 0.1
    assert source.interval_s == 1.0 and source.update_interval_s == 1.0
    assert "the first client to connect sets" in source.method and "asked for 0.1 s" in source.method
    assert source.period_s == 0.1


def test_our_interval_when_we_are_first(service, opened):
    service.interval = None  # no client yet: ours sets the service's timer
    source = opened(interval_s=0.2)
    assert source.interval_s == 0.2 and "asked for" not in source.method
    assert source.period_s == pytest.approx(0.02)


@pytest.mark.parametrize(("message", "expected"), [
    ("Mismatch version jtop service: [4.2.12] and client: [4.3.1]. Please run:\n\nsudo jtop --install-service",
     "jetson-stats client 4.3.1 vs jtop.service 4.2.12: install the same jetson-stats major.minor as the board's "
     "service (pip install 'jetson-stats==4.2.*')"),
    ("The jtop.service is not active. Please run:\nsudo jtop --install-service",
     "jtop.service is not running: sudo systemctl start jtop.service (or install it: sudo jtop --install-service)"),
    ("The jtop.service is not active. Please run:\nsudo systemctl restart jtop.service",  # 4.1's wording
     "jtop.service is not running"),
    ("I can't access jtop.service.\nPlease logout or reboot this board.", "add the agent's user to the jtop group"),
    ("I can't access jetson_stats.service.\nPlease logout or reboot this board.", "jtop group"),  # 3.x
    ("Mismatch of Python versions between library and service", "another Python major version"),
    ("Authentication with jetson-stats server failed", "jtop: Authentication with jetson-stats server failed"),
])
def test_start_failures_say_what_to_fix(service, message, expected):
    service.start_error = message
    with pytest.raises(SourceUnavailable) as info:
        JtopSource(root=service.root)
    assert expected in str(info.value) and "\n" not in str(info.value)


def test_missing_socket(service, tmp_path):
    (service.root / "run/jtop.sock").unlink()
    with pytest.raises(SourceUnavailable) as info:
        JtopSource(root=service.root)
    message = str(info.value)
    assert "run/jtop.sock is missing: jtop.service is not running" in message
    assert "sudo systemctl start jtop.service" in message and "sudo jtop --install-service" in message
    assert service.clients == []  # never tried to connect


def test_jetson_stats_not_installed(monkeypatch, tmp_path):
    monkeypatch.setitem(sys.modules, "jtop", None)  # import jtop raises ImportError
    with pytest.raises(SourceUnavailable, match="jetson-stats is not installed: pip install jetson-stats"):
        JtopSource(root=tmp_path)


def test_no_rails(service):
    service.power = {}  # 7.x with no sensors found
    with pytest.raises(SourceUnavailable, match="no power rails"):
        JtopSource(root=service.root)
    assert service.clients[-1].closed


def test_close_detaches_and_closes(service):
    source = JtopSource(root=service.root)
    client = service.clients[-1]
    assert client._observers
    source.close()
    assert client.closed and not client._observers
    source.close()  # twice is harmless


def test_reads_from_two_threads(service, opened):
    source = opened()
    client = service.clients[-1]
    errors = []

    def publish():
        for watts in range(1000, 1200):
            power = load("power-7x-orin-nano.json")
            power["tot"]["power"] = watts
            client.tick(power)

    def read():
        for _ in range(200):
            try:
                assert len(source.read()) == 3
            except AssertionError as exc:  # pragma: no cover - only on failure
                errors.append(exc)

    threads = [threading.Thread(target=publish), threading.Thread(target=read)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert errors == []
    assert source.read()[0] == 1.199


def test_factory_jtop_has_no_root(service):
    with pytest.raises(UserError, match="jtop takes no ROOT"):
        open_source("jtop:/somewhere")


def test_auto_picks_jtop_when_sysfs_is_not_readable(service):
    selection = open_source(f"auto:{service.root}")  # the root has the socket but no sys/bus/i2c
    try:
        assert isinstance(selection.source, JtopSource)
        assert selection.notes[0].startswith("ina3221: no I2C devices")
    finally:
        selection.source.close()


def test_a_malformed_first_sample(service):
    service.power = {"rail": {"VDD_SOC": {"volt": 5000}}, "tot": {}}  # no 'power'
    with pytest.raises(SourceUnavailable, match="not of a known shape"):
        JtopSource(root=service.root)
    assert service.clients[-1].closed
