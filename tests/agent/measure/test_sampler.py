"""The sampler thread over real sources: RAPL on a recorded, moving sysfs tree and the estimate on this /proc."""

import os
import shutil
import threading
import time
from pathlib import Path

import pytest

from dnnprof.agent.measure import stats
from dnnprof.agent.measure.energy import WindowNotCovered
from dnnprof.agent.measure.sampler import Sampler, clock
from dnnprof.agent.power.estimate import EstimateSource
from dnnprof.agent.power.rapl import RaplSource

DATA = Path(__file__).parents[2] / "data"
ENERGY = "sys/class/powercap/intel-rapl:0/energy_uj"


@pytest.fixture
def rapl_tree(tmp_path) -> Path:
    root = tmp_path / "root"
    shutil.copytree(DATA / "powercap" / "two-packages", root)
    return root


def write_atomically(path: Path, text: str) -> None:
    # A sysfs attribute keeps its inode and never shows a half-written value: overwrite in place, one write of a
    # fixed width (int() ignores the padding), never truncating.
    fd = os.open(path, os.O_WRONLY)
    try:
        os.pwrite(fd, f"{text.strip():<24}\n".encode(), 0)
    finally:
        os.close(fd)


class CounterWriter(threading.Thread):
    """Moves package-0's energy_uj at a constant 2 W, as the hardware would."""

    watts = 2.0

    def __init__(self, path: Path) -> None:
        super().__init__(daemon=True)
        self.path = path
        self.start_uj = int(path.read_text())
        self.t_start = clock()
        self.stop = threading.Event()

    def run(self) -> None:
        while not self.stop.wait(0.002):
            uj = self.start_uj + round((clock() - self.t_start) * self.watts * 1e6)
            write_atomically(self.path, f"{uj}\n")


def test_sampler_over_rapl_tree(rapl_tree):
    source = RaplSource(root=rapl_tree)
    writer = CounterWriter(rapl_tree / ENERGY)
    writer.start()
    try:
        with Sampler(source, period_s=0.005) as sampler:
            time.sleep(0.05)
            t0 = clock()
            time.sleep(0.1)
            t1 = clock()
            sampler.wait_past(t1)
            assert sampler.ts[-1] > t1
            time.sleep(0.02)
    finally:
        writer.stop.set()
        writer.join()
    ts = sampler.ts
    assert all(b >= a for a, b in zip(ts, ts[1:]))  # monotonic
    assert len(ts) == len(sampler.values) >= 10
    assert sampler.read_errors == 0
    counters = [v[0] for v in sampler.values]
    assert all(b >= a for a, b in zip(counters, counters[1:]))  # a cumulative counter never falls
    assert all(v[1] == 0.0 for v in sampler.values)  # package-1 did not move
    window = sampler.energy(t0, t1)
    assert set(window.rails_j) == {"package-0", "package-1"}
    assert window.rails_j["package-1"] == 0.0
    assert window.energy_j == window.rails_j["package-0"]
    # 2 W over the window, give or take the writer's and the sampler's few milliseconds of jitter
    assert window.energy_j == pytest.approx(writer.watts * (t1 - t0), abs=writer.watts * 0.03)
    assert window.samples >= 5
    assert 20 < window.rate_hz < 1000
    # The running series the window checks use agrees with the lists it summarises.
    powers = sampler.power_series(t0, t1)
    count, mean, half = sampler.power_stats(t0, t1)
    assert count == len(powers) >= 5
    assert mean == pytest.approx(sum(powers) / len(powers), rel=1e-9)
    assert mean == pytest.approx(writer.watts, rel=0.3)  # per-interval averages jitter with the writer's timing
    assert half == pytest.approx(stats.half_width(powers), rel=1e-9)


def test_sampler_over_estimate_on_real_proc():
    source = EstimateSource()
    with Sampler(source, period_s=0.01) as sampler:
        t0 = clock()
        deadline = t0 + 0.1
        while clock() < deadline:  # busy: the estimate should see it
            sum(range(1000))
        t1 = clock()
        sampler.wait_past(t1)
    ts = sampler.ts
    assert all(b >= a for a, b in zip(ts, ts[1:]))
    assert ts[0] < t0 and ts[-1] > t1
    window = sampler.energy(t0, t1)
    assert window.rails_j.keys() == {"cpu"}
    assert 0.0 <= window.energy_j <= source.tdp_w * (t1 - t0) * 1.5
    assert window.samples >= 3


def test_wait_past_after_the_thread_has_stopped(rapl_tree):
    sampler = Sampler(RaplSource(root=rapl_tree), period_s=0.005)
    with sampler:
        pass
    n = len(sampler.ts)
    assert n >= 2  # one sample on entry, one on exit
    t = clock()
    sampler.wait_past(t, timeout_s=1.0)  # samples on the caller's thread
    assert sampler.ts[-1] > t and len(sampler.ts) > n


def test_wait_past_gives_up_at_the_timeout(rapl_tree):
    sampler = Sampler(RaplSource(root=rapl_tree), period_s=10.0)  # the thread will not sample in time
    with sampler:
        start = clock()
        sampler.wait_past(start + 60.0, timeout_s=0.1)
        assert 0.09 < clock() - start < 2.0


def test_window_outside_the_trace(rapl_tree):
    with Sampler(RaplSource(root=rapl_tree), period_s=0.005) as sampler:
        time.sleep(0.02)
    with pytest.raises(WindowNotCovered):
        sampler.energy(sampler.ts[0] - 1.0, sampler.ts[-1])
    with pytest.raises(WindowNotCovered):
        sampler.energy(sampler.ts[0], sampler.ts[-1] + 1.0)


def test_read_errors_are_counted_not_fatal(rapl_tree):
    source = RaplSource(root=rapl_tree)
    path = rapl_tree / ENERGY
    good = path.read_text()
    with Sampler(source, period_s=0.005) as sampler:
        time.sleep(0.02)
        write_atomically(path, "garbage")  # a sensor returning nonsense for a while
        time.sleep(0.03)
        write_atomically(path, good)
        time.sleep(0.02)
    assert sampler.read_errors >= 1
    assert len(sampler.ts) >= 3


def test_default_period_comes_from_the_source(rapl_tree):
    source = RaplSource(root=rapl_tree)
    assert Sampler(source).period_s == source.period_s
