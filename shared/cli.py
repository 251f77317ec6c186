"""What both command-line tools do the same way: user errors as one line, Ctrl-C as a clean exit, the broker's TLS
and login options."""

from __future__ import annotations

import sys
from pathlib import Path
from typing import Annotated, Optional

import typer

from . import auth
from .errors import UserError

# A broker with TLS and a login: the same options on `dnnhost collect | live | measure` and `dnnagent run`.
TlsCaOption = Annotated[Optional[Path], typer.Option(
    "--tls-ca", help="Connect with TLS and verify the broker's certificate and host name against this CA (PEM).")]
TlsCertOption = Annotated[Optional[Path], typer.Option("--tls-cert", help="Client certificate (PEM), with --tls-key.")]
TlsKeyOption = Annotated[Optional[Path], typer.Option("--tls-key", help="The client certificate's private key (PEM).")]
UsernameOption = Annotated[Optional[str], typer.Option("--username", help="Log in to the broker as this user.")]
PasswordFileOption = Annotated[Optional[Path], typer.Option(
    "--password-file", help="File holding the broker password (chmod 600: group or others must not read it).")]


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


def broker_security(tls_ca: Path | None, tls_cert: Path | None, tls_key: Path | None, username: str | None,
                    password_file: Path | None, *, no_broker: str | None = None) -> dict:
    """``tls`` (an ssl context or None), ``username`` and ``password`` from the options above; each mistake is one
    line. ``no_broker``: why these options mean nothing here (no broker named), or None when they can apply."""
    given = [name for name, value in (("--tls-ca", tls_ca), ("--tls-cert", tls_cert), ("--tls-key", tls_key),
                                      ("--username", username), ("--password-file", password_file)) if value]
    if given and no_broker:
        raise UserError(f"{', '.join(given)}: {no_broker}")
    if (tls_cert is None) != (tls_key is None):
        raise UserError("--tls-cert and --tls-key go together: give both or neither")
    if tls_cert is not None and tls_ca is None:
        raise UserError("--tls-cert needs --tls-ca (the CA that signed the broker's certificate)")
    if password_file is not None and username is None:
        raise UserError("--password-file needs --username: MQTT sends a password only with a user name")
    for path in (tls_ca, tls_cert, tls_key, password_file):
        if path is not None and not path.is_file():
            raise UserError(f"{path} is not a file")
    for path, what in ((tls_key, "a private key"), (password_file, "the broker password")):
        if path is not None:
            auth.check_private(path, what)
    tls = auth.tls_context(tls_ca, tls_cert, tls_key) if tls_ca is not None else None
    password = auth.read_password(password_file) if password_file is not None else None
    return {"tls": tls, "username": username, "password": password}
