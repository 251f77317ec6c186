"""What both command-line tools do the same way: user errors as one line, Ctrl-C as a clean exit."""

from __future__ import annotations

import sys

import typer

from .errors import UserError


def app(name: str, help: str) -> typer.Typer:
    return typer.Typer(name=name, help=help, no_args_is_help=True, add_completion=False,
                       pretty_exceptions_enable=False, rich_markup_mode="rich")


def run(app: typer.Typer, prog: str) -> None:
    """Run ``app``; a UserError prints ``prog: error: ...`` on one line and exits non-zero, never a traceback."""
    try:
        app(prog_name=prog)
    except UserError as exc:
        print(f"{prog}: error: {exc}", file=sys.stderr)
        sys.exit(exc.exit_code)
    except KeyboardInterrupt:
        print(f"{prog}: interrupted", file=sys.stderr)
        sys.exit(130)


def parse_batches(text: str) -> list[int]:
    """``"1,2,4,8"`` → [1, 2, 4, 8]."""
    try:
        values = [int(v) for v in (part.strip() for part in text.split(",")) if v]  # "1 2" is an error, not 12
    except ValueError:
        raise UserError(f"batch sizes {text!r} must be whole numbers separated by commas, e.g. 1,2,4,8") from None
    if not values or any(not 1 <= v <= 4096 for v in values):
        raise UserError(f"batch sizes {text!r} must each be between 1 and 4096, e.g. 1,2,4,8")
    return list(dict.fromkeys(values))


def parse_fraction(text: str) -> float:
    """``"1%"`` or ``"0.01"`` → 0.01; must lie in (0, 1]."""
    raw = text.strip()
    try:
        value = float(raw[:-1]) / 100 if raw.endswith("%") else float(raw)
    except ValueError:
        raise UserError(f"{text!r} is not a fraction: write a percentage like 1% or a number like 0.01") from None
    if not 0 < value <= 1:
        raise UserError(f"{text!r} must be above 0% and at most 100%")
    return value
