"""Fixtures for the shared package's tests."""

from __future__ import annotations

import pytest

from dnnprof.shared.errors import UserError


def _one_line_error(read, path) -> str:
    with pytest.raises(UserError) as info:
        read(path)
    message = str(info.value)
    assert "\n" not in message and str(path) in message
    return message


@pytest.fixture
def one_line_error():
    """``one_line_error(read, path)``: ``read(path)`` raises a one-line UserError naming ``path``; returns it."""
    return _one_line_error
