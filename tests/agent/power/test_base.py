"""The power-source protocol's shared pieces: the one positive-time check, and HeldFile."""

import gc
import math
import warnings

import pytest

from dnnprof.agent.power.base import HeldFile, check_interval_ms, check_positive
from dnnprof.shared.errors import UserError


@pytest.mark.parametrize("value", [0.001, 1.0, 5e6])
def test_a_positive_time_passes(value):
    assert check_positive(value, "x", "5s") == value


@pytest.mark.parametrize("value", [0.0, -1.0, math.nan, math.inf, -math.inf])
def test_anything_else_is_a_one_line_user_error(value):
    with pytest.raises(UserError, match=r"^--duration 'x' is not valid: give a positive time, e\.g\. 5s$"):
        check_positive(value, "--duration 'x'", "5s")


def test_infinity_only_where_allowed():
    assert check_positive(math.inf, "d", "5s", infinite=True) == math.inf
    with pytest.raises(UserError):
        check_positive(math.nan, "d", "5s", infinite=True)


def test_interval_in_milliseconds():
    assert check_interval_ms(None) is None and check_interval_ms(100.0) == 100.0
    with pytest.raises(UserError, match=r"^interval -5 ms is not valid: give a positive time, e\.g\. 100, 100ms"):
        check_interval_ms(-5.0)


def test_held_file_that_cannot_be_opened_leaves_nothing_behind(tmp_path):
    with warnings.catch_warnings():
        warnings.simplefilter("error")  # an exception in __del__ would surface as an unraisable warning
        with pytest.raises(FileNotFoundError):
            HeldFile(tmp_path / "absent")
        gc.collect()


def test_held_file_rereads_in_place(tmp_path):
    path = tmp_path / "value"
    path.write_text("1\n")
    held = HeldFile(path)
    with open(path, "r+") as f:  # the kernel rewrites an attribute in place: same inode
        f.write("2\n")
    assert held.read() == "2\n"
    held.close()
    held.close()  # twice is harmless
