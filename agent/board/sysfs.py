"""The one file reader of everything the agent reads from the machine (sysfs, procfs, /etc, device tree), each under
an injectable ``root`` so recorded trees stand in for a live board. Readers return None for a missing, unreadable or
garbled file; none raises."""

from __future__ import annotations

import os
import re
from pathlib import Path


def read_text(path: str | Path, *, strict: bool = False) -> str | None:
    """The UTF-8 text of a file, or None when it cannot be read (missing, a directory, EINVAL/ENODATA from a
    sensor). Bytes that are not UTF-8 are replaced, or with ``strict`` make it None (garbage, not text). Never
    raises."""
    try:
        with open(path, "rb") as f:
            data = f.read()
    except OSError:
        return None
    try:
        return data.decode("utf-8", "strict" if strict else "replace")
    except UnicodeDecodeError:
        return None


def read_int(path: str | Path, *, strict: bool = False) -> int | None:
    """A file holding one integer (``45000\\n``); None when missing or not an integer."""
    text = read_text(path, strict=strict)
    if text is None:
        return None
    try:
        return int(text.strip())
    except ValueError:
        return None


def numbered(directory: Path, pattern: re.Pattern[str]) -> list[Path]:
    """Entries of ``directory`` whose whole name matches ``pattern`` (one number group), in numeric order."""
    try:
        names = os.listdir(directory)
    except OSError:
        return []
    found = [(int(m.group(1)), name) for name in names if (m := pattern.fullmatch(name))]
    return [directory / name for _, name in sorted(found)]


def dt_string(path: Path) -> str | None:
    """A device-tree string property: NUL terminated (and possibly padded), so NULs and whitespace are stripped."""
    text = read_text(path, strict=True)
    if text is None:
        return None
    text = text.replace("\x00", "").strip()
    return text or None


def dt_strings(path: Path) -> list[str] | None:
    """A device-tree string-list property (``a\\0b\\0c\\0``) as a list; None when missing or empty."""
    text = read_text(path, strict=True)
    if text is None:
        return None
    items = [item.strip() for item in text.split("\x00") if item.strip()]
    return items or None


def is_live_root(root: str | Path) -> bool:
    """True when ``root`` is this machine's own filesystem root (not a recorded tree)."""
    try:
        return Path(root).resolve() == Path("/").resolve()
    except OSError:
        return False
