"""RAPL package energy read from recorded powercap trees (tests/data/powercap) through the root parameter."""

import shutil
from pathlib import Path

import pytest

from dnnprof.agent.power.base import SourceUnavailable
from dnnprof.agent.power.rapl import RaplSource

DATA = Path(__file__).parents[2] / "data" / "powercap"
TWO_PACKAGES = DATA / "two-packages"
POWERCAP = "sys/class/powercap"
MAX_UJ = 262143328850


@pytest.fixture
def tree(tmp_path) -> Path:
    """A writable copy of the two-package tree, so a test can move the counters."""
    root = tmp_path / "root"
    shutil.copytree(TWO_PACKAGES, root)
    return root


def set_uj(root: Path, domain: str, value: int) -> None:
    (root / POWERCAP / domain / "energy_uj").write_text(f"{value}\n")


def get_uj(root: Path, domain: str) -> int:
    return int((root / POWERCAP / domain / "energy_uj").read_text())


def test_recorded_tree_is_realistic():
    for domain in ("intel-rapl:0", "intel-rapl:1", "intel-rapl:0:0", "intel-rapl:2"):
        assert int((TWO_PACKAGES / POWERCAP / domain / "max_energy_range_uj").read_text()) == MAX_UJ
    assert (TWO_PACKAGES / POWERCAP / "intel-rapl:2" / "name").read_text().strip() == "psys"
    assert (TWO_PACKAGES / POWERCAP / "intel-rapl:0:0" / "name").read_text().strip() == "core"


def test_reads_package_domains_only():
    source = RaplSource(root=TWO_PACKAGES)
    assert source.rails == ("package-0", "package-1")  # core/dram sub-domains and psys are left out
    assert source.name == "rapl" and source.boundary == "cpu_package"
    assert source.estimated is False and source.quantity == "energy_j"
    assert source.read() == (0.0, 0.0)  # cumulative since the source opened; the recorded tree does not move
    source.close()


def test_root_accepts_str():
    assert RaplSource(root=str(TWO_PACKAGES)).rails == ("package-0", "package-1")


def test_energy_accumulates_per_package(tree):
    source = RaplSource(root=tree)
    start0, start1 = get_uj(tree, "intel-rapl:0"), get_uj(tree, "intel-rapl:1")
    set_uj(tree, "intel-rapl:0", start0 + 1_500_000)  # +1.5 J
    set_uj(tree, "intel-rapl:1", start1 + 250_000)  # +0.25 J
    set_uj(tree, "intel-rapl:0:0", 1)  # a sub-domain moving changes nothing
    set_uj(tree, "intel-rapl:2", 5)  # nor does psys
    assert source.read() == pytest.approx((1.5, 0.25), abs=1e-12)
    set_uj(tree, "intel-rapl:0", start0 + 2_000_000)
    assert source.read() == pytest.approx((2.0, 0.25), abs=1e-12)
    assert source.read() == pytest.approx((2.0, 0.25), abs=1e-12)  # no change, no energy


def test_counter_wrap_adds_max_energy_range(tree):
    set_uj(tree, "intel-rapl:0", MAX_UJ - 1_000_000)  # 1 J below the wrap
    source = RaplSource(root=tree)
    set_uj(tree, "intel-rapl:0", 500_000)  # wrapped, 0.5 J past zero
    (first, _) = source.read()
    assert first * 1e6 == pytest.approx(500_000 - (MAX_UJ - 1_000_000) + MAX_UJ)
    assert first == pytest.approx(1.5, abs=1e-9)
    set_uj(tree, "intel-rapl:0", 2_500_000)  # and on after the wrap
    assert source.read()[0] == pytest.approx(3.5, abs=1e-9)


def test_domains_in_numeric_order(tmp_path):
    base = tmp_path / POWERCAP
    for index in (10, 2):
        domain = base / f"intel-rapl:{index}"
        domain.mkdir(parents=True)
        (domain / "name").write_text(f"package-{index}\n")
        (domain / "energy_uj").write_text("1000\n")
        (domain / "max_energy_range_uj").write_text(f"{MAX_UJ}\n")
    assert RaplSource(root=tmp_path).rails == ("package-2", "package-10")


def test_no_powercap_dir(tmp_path):
    (tmp_path / "sys" / "class").mkdir(parents=True)
    with pytest.raises(SourceUnavailable) as info:
        RaplSource(root=tmp_path)
    assert "no powercap interface" in str(info.value)
    assert str(tmp_path) in str(info.value)


def test_only_sub_domains():
    with pytest.raises(SourceUnavailable) as info:
        RaplSource(root=DATA / "subdomains-only")
    assert "no package domain" in str(info.value)


def test_only_psys(tmp_path):
    root = tmp_path / "root"
    shutil.copytree(TWO_PACKAGES, root)
    for domain in ("intel-rapl:0", "intel-rapl:1"):
        shutil.rmtree(root / POWERCAP / domain)
    with pytest.raises(SourceUnavailable, match="no package domain"):
        RaplSource(root=root)


def _make_unreadable(root: Path, domain: str) -> None:
    # The tests run as root, where chmod 000 does not stop a read; a directory in place of the file does.
    energy = root / POWERCAP / domain / "energy_uj"
    energy.unlink()
    energy.mkdir()


def test_unreadable_energy_uj_everywhere(tree):
    _make_unreadable(tree, "intel-rapl:0")
    _make_unreadable(tree, "intel-rapl:1")
    with pytest.raises(SourceUnavailable) as info:
        RaplSource(root=tree)
    message = str(info.value)
    assert "unreadable" in message and "intel-rapl:0" in message and "intel-rapl:1" in message
    assert "root" in message  # says why: energy_uj needs root since Linux 5.10
    assert "\n" not in message


def test_one_unreadable_package_is_skipped(tree):
    _make_unreadable(tree, "intel-rapl:1")
    assert RaplSource(root=tree).rails == ("package-0",)


def test_garbage_counter_is_skipped(tree):
    set_uj(tree, "intel-rapl:0", 0)
    (tree / POWERCAP / "intel-rapl:0" / "max_energy_range_uj").write_text("n/a\n")
    assert RaplSource(root=tree).rails == ("package-1",)


def test_garbage_after_open_is_a_value_error(tree):
    source = RaplSource(root=tree)
    path = tree / POWERCAP / "intel-rapl:1" / "energy_uj"
    with path.open("r+") as fh:  # in place: the source keeps the attribute open, as sysfs files never move
        fh.write("garbage\n")
    with pytest.raises(ValueError):  # the sampler counts these as transient read errors
        source.read()
