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
