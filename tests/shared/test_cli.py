"""What both command-line tools share: batch-size lists."""

import pytest

from dnnprof.shared import cli
from dnnprof.shared.errors import UserError


@pytest.mark.parametrize(
    ("text", "batches"),
    [
        ("1", [1]),
        ("1,2,4,8", [1, 2, 4, 8]),
        (" 1, 2 ,4 ", [1, 2, 4]),
        ("8,1", [8, 1]),  # the order given is the order measured
        ("1,1,2,1", [1, 2]),  # duplicates measured once
        ("1,2,", [1, 2]),
        ("4096", [4096]),
        ("01", [1]),
    ],
)
def test_parse_batches(text, batches):
    assert cli.parse_batches(text) == batches


@pytest.mark.parametrize(
    "text",
    ["", " ", ",", ",,,", "0", "1,0", "-1", "4097", "1.5", "a", "1,b", "one", "1;2", "2x", "1 2", "1 2,4", "1e2"],
)
def test_parse_batches_rejects_with_one_line(text):
    with pytest.raises(UserError) as info:
        cli.parse_batches(text)
    message = str(info.value)
    assert "batch sizes" in message and "\n" not in message
    assert "1,2,4,8" in message  # an example of what works


def test_space_separated_batches_are_not_glued_together():
    # "1 2" must not silently become batch 12
    with pytest.raises(UserError):
        cli.parse_batches("1 2")
