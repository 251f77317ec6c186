"""The sampler thread over real sources: RAPL on a recorded, moving sysfs tree and the estimate on this /proc."""

import os
import shutil
import threading
import time
from pathlib import Path

import pytest

from dnnprof.agent.measure import sampler as sampler_module
from dnnprof.agent.measure import stats
from dnnprof.agent.measure.energy import WindowNotCovered
from dnnprof.agent.measure.sampler import Sampler, clock
from dnnprof.agent.power.base import PowerSource
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


class Counting(PowerSource):
    """A power sensor whose every reading is new (1, 2, 3, ... W), read on whichever thread asks."""

    name = "counting"
    boundary = "sum_of_rails"
    estimated = False
    quantity = "power_w"
    rails = ("in",)

    def __init__(self) -> None:
        self.n = 0
        self.threads: set[str] = set()

    def read(self) -> tuple[float, ...]:
        self.threads.add(threading.current_thread().name)
        self.n += 1
        return (float(self.n),)


def test_readers_see_every_reading_though_the_thread_folds_in_batches():
    source = Counting()
    with Sampler(source, period_s=0.002) as sampler:
        while len(sampler.ts) < 3 * sampler_module.FOLD_EVERY + 5:  # past a few of the thread's own folds
            time.sleep(0.01)
        n = len(sampler.ts)
        count, mean, _ = sampler.power_stats(sampler.ts[0], clock())  # folds what the thread has not yet
        assert count >= n
    assert "power-counting" in source.threads  # the thread did read
    # Every reading is in the series, once, in order: nothing lost or doubled between the thread's and readers' folds.
    assert sampler.power_series(sampler.ts[0], sampler.ts[-1]) == [v[0] for v in sampler.values]
    assert len(sampler.ts) == len(sampler.values) == source.n
    assert all(b > a for a, b in zip(sampler.ts, sampler.ts[1:]))


def test_exit_is_prompt_even_at_a_slow_rate(rapl_tree):
    # The thread sleeps to each deadline with time.sleep, at most MAX_SLEEP_S at once: it notices the block has
    # ended within one period or MAX_SLEEP_S, whichever is shorter, not after a 10 s period.
    for period in (0.01, 10.0):
        with Sampler(RaplSource(root=rapl_tree), period_s=period) as sampler:
            time.sleep(0.03)
            start = clock()
        assert clock() - start < min(period, sampler_module.MAX_SLEEP_S) + 0.5  # generous: a noisy machine
        assert not sampler._thread.is_alive()
        assert len(sampler.ts) >= 2 and sampler.ts[-1] >= start  # the exit's own reading ends the trace


def test_cpu_fraction_is_the_threads_share_of_the_time(rapl_tree):
    sampler = Sampler(RaplSource(root=rapl_tree), period_s=0.005)
    assert sampler.cpu_fraction is None  # nothing sampled yet
    with sampler:
        time.sleep(0.1)
    assert 0.0 < sampler.cpu_fraction < 1.0  # a thread that sleeps between readings
    assert sampler._wall[1] - sampler._wall[0] == pytest.approx(0.1, abs=0.1)


def test_the_thread_paces_to_the_period(rapl_tree):
    with Sampler(RaplSource(root=rapl_tree), period_s=0.01) as sampler:
        time.sleep(0.3)
    paced = sampler.ts[1:-1]  # the entry's and exit's own readings are off the grid
    gaps = [b - a for a, b in zip(paced, paced[1:])]
    assert 0.005 < sorted(gaps)[len(gaps) // 2] < 0.02  # median gap: the period, give or take a noisy machine
    assert 15 <= len(paced) <= 45
