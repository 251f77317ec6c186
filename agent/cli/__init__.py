"""``dnnagent``: thin typer commands, one module per group — ``run`` (a sweep), ``service`` (serve, outbox,
install-service), ``board`` (info, power), ``models`` (list, inspect, generate). They parse and print; the work is
in ``session``, ``service``, ``measure``, ``board`` and ``models``."""

# Each module registers its commands on ``app``, in the order --help lists them.
from . import run  # noqa: F401, I001
from . import service  # noqa: F401
from . import board  # noqa: F401
from . import models  # noqa: F401
from .app import app, main

__all__ = ["app", "main"]
