"""The labelled CPU-power estimate, read from recorded /proc/stat files (tests/data/procstat) through root."""

import os
import shutil
import time
from pathlib import Path

import pytest

from dnnprof.agent.power.base import SourceUnavailable
from dnnprof.agent.power.estimate import DEFAULT_TDP_PER_CPU_W, EstimateSource

DATA = Path(__file__).parents[2] / "data" / "procstat"
X86 = DATA / "x86-4cpu"  # 4 logical CPUs
ORIN = DATA / "jetson-orin-nano-6cpu"  # 6 logical CPUs


@pytest.fixture
def tree(tmp_path) -> Path:
    root = tmp_path / "root"
    shutil.copytree(X86, root)
    return root


def advance(root: Path, user=0, nice=0, system=0, idle=0, iowait=0, irq=0, softirq=0, steal=0) -> None:
    """Rewrite <root>/proc/stat with the aggregate cpu line moved on by the given jiffies."""
    stat = root / "proc" / "stat"
    lines = stat.read_text().splitlines()
    fields = [int(v) for v in lines[0].split()[1:]]
    for index, delta in enumerate((user, nice, system, idle, iowait, irq, softirq, steal)):
        fields[index] += delta
    lines[0] = "cpu  " + " ".join(map(str, fields))
    stat.write_text("\n".join(lines) + "\n")


def test_recorded_file_opens():
    source = EstimateSource(root=X86, user_hz=100)
    assert source.name == "estimate" and source.boundary == "estimate"
    assert source.estimated is True and source.quantity == "energy_j"
    assert source.rails == ("cpu",)
    assert source.read() == (0.0,)  # cumulative since the source opened


@pytest.mark.parametrize(("root", "cpus"), [(X86, 4), (ORIN, 6)])
def test_default_tdp_is_10_w_per_logical_cpu(root, cpus):
    source = EstimateSource(root=root)
    assert DEFAULT_TDP_PER_CPU_W == 10.0
    assert source.tdp_w == 10.0 * cpus
    assert f"{cpus} CPUs" in source.method
    assert "assumed 10 W per logical CPU" in source.method


def test_method_says_estimate():
    source = EstimateSource(root=X86, tdp_w=35)
    assert "estimate" in source.method
    assert "TDP 35 W" in source.method
    assert "assumed" not in source.method  # the TDP was given, not assumed


def test_energy_is_tdp_times_busy_share_exactly(tree):
    source = EstimateSource(root=tree, user_hz=100)  # 4 CPUs, 40 W
    advance(tree, user=120, system=60, nice=10, irq=5, softirq=3, steal=2, idle=800, iowait=50)
    busy = 120 + 60 + 10 + 5 + 3 + 2  # idle and iowait are not busy
    assert source.read() == (40.0 * busy / (4 * 100),)
    assert source.read() == (20.0,)
    advance(tree, user=400, idle=400)
    assert source.read() == (40.0 * (busy + 400) / (4 * 100),)


def test_energy_with_given_tdp_and_default_user_hz(tree):
    source = EstimateSource(root=tree, tdp_w=15.0)
    hz = os.sysconf("SC_CLK_TCK")
    advance(tree, user=3 * hz)  # 3 CPU-seconds busy
    assert source.read()[0] == pytest.approx(15.0 * 3 * hz / (4 * hz), rel=1e-12)


def test_idle_machine_uses_no_energy(tree):
    source = EstimateSource(root=tree, user_hz=100)
    advance(tree, idle=4000, iowait=100)
    assert source.read() == (0.0,)


def test_fully_busy_machine_draws_tdp(tree):
    source = EstimateSource(root=tree, user_hz=100)
    advance(tree, user=4 * 100 * 2)  # all 4 CPUs busy for 2 s
    assert source.read() == (40.0 * 2,)


def test_missing_file(tmp_path):
    with pytest.raises(SourceUnavailable) as info:
        EstimateSource(root=tmp_path)
    assert "proc/stat" in str(info.value) and str(tmp_path) in str(info.value)


def test_file_without_aggregate_line(tmp_path):
    (tmp_path / "proc").mkdir()
    (tmp_path / "proc" / "stat").write_text("intr 0\nctxt 1\n")
    with pytest.raises(SourceUnavailable, match="no aggregate cpu line"):
        EstimateSource(root=tmp_path)


def test_non_positive_or_non_finite_tdp_is_rejected():
    with pytest.raises(ValueError):
        EstimateSource(root=X86, tdp_w=0)
    with pytest.raises(ValueError):
        EstimateSource(root=X86, tdp_w=-5)
    with pytest.raises(ValueError):
        EstimateSource(root=X86, tdp_w=float("nan"))


def test_real_proc_of_this_machine():
    assert Path("/proc/stat").exists()
    source = EstimateSource()
    cpus = sum(1 for line in Path("/proc/stat").read_text().splitlines() if line[:3] == "cpu" and line[3:4].isdigit())
    assert cpus >= 1 and source.tdp_w == 10.0 * cpus  # one "cpuN" line per logical CPU
    first = source.read()[0]
    deadline = time.monotonic() + 0.05
    while time.monotonic() < deadline:  # keep a CPU busy for a few jiffies
        sum(range(1000))
    time.sleep(0.02)
    second = source.read()[0]
    assert 0.0 <= first <= second
    assert second <= source.tdp_w * 5  # far less than the TDP for the whole test
