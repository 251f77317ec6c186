"""Reference ImageNet networks: top-1/top-5 accuracy with its source, published MACs and parameters.

Accuracy is the reference value of the *trained* network; the agent profiles architectures with random weights,
so a result borrows its accuracy from here by network name. Names follow torchvision (``resnet18``,
``mobilenet_v2``); lookups ignore case and the separators ``-``, ``_``, ``.`` and spaces.
"""

from __future__ import annotations

import csv
import io
import os
from pathlib import Path

import msgspec

from .errors import UserError

TORCHVISION = "torchvision model docs (acc@1/acc@5, IMAGENET1K_V1 weights, single 224 crop)"
TORCHVISION_V3 = "torchvision model docs (acc@1/acc@5, IMAGENET1K_V1 weights, single 299 crop)"
CANZIANI = "Canziani et al. 2016, Fig. 1 (read off the figure; approximate)"


class Network(msgspec.Struct, frozen=True, kw_only=True):
    name: str
    top1: float  # percent
    top5: float | None  # percent
    source: str
    gmacs: float | None  # multiply-accumulates per image, 1e9 (torchvision's "GFLOPS" column)
    params_m: float | None  # parameters, 1e6
    seed_top1: float | None = None  # the seed paper's single-central-crop value, where it studied the network


def _tv(name, top1, top5, gmacs, params_m, seed_top1=None, source=TORCHVISION):
    return Network(name=name, top1=top1, top5=top5, source=source, gmacs=gmacs, params_m=params_m,
                   seed_top1=seed_top1)


NETWORKS: tuple[Network, ...] = (
    # The seed's networks (Canziani, Culurciello & Paszke 2016).
    _tv("alexnet", 56.522, 79.066, 0.71, 61.10, seed_top1=54.5),
    _tv("googlenet", 69.778, 89.530, 1.50, 6.62, seed_top1=68.0),
    _tv("vgg16", 71.592, 90.382, 15.47, 138.36, seed_top1=71.0),
    _tv("vgg19", 72.376, 90.876, 19.63, 143.67),
    _tv("resnet18", 69.758, 89.078, 1.81, 11.69, seed_top1=69.0),
    _tv("resnet34", 73.314, 91.420, 3.66, 21.80),
    _tv("resnet50", 76.130, 92.862, 4.09, 25.56, seed_top1=76.0),
    _tv("resnet101", 77.374, 93.546, 7.80, 44.55, seed_top1=77.0),
    _tv("resnet152", 78.312, 94.046, 11.51, 60.19, seed_top1=77.5),
    # 23.83 M parameters at inference; torchvision's 27.16 M includes the auxiliary classifier used in training.
    _tv("inception_v3", 77.294, 93.450, 5.71, 23.83, seed_top1=78.0, source=TORCHVISION_V3),
    Network(name="bn_alexnet", top1=56.5, top5=None, source=CANZIANI, gmacs=None, params_m=None, seed_top1=56.5),
    Network(name="bn_nin", top1=63.0, top5=None, source=CANZIANI, gmacs=None, params_m=None, seed_top1=63.0),
    Network(name="enet", top1=68.0, top5=None, source=CANZIANI, gmacs=None, params_m=None, seed_top1=68.0),
    Network(name="inception_v4", top1=80.0, top5=None, source=CANZIANI, gmacs=None, params_m=None, seed_top1=80.0),
    # Efficient networks deployed on Jetsons since.
    _tv("squeezenet1_0", 58.092, 80.420, 0.82, 1.25),
    _tv("squeezenet1_1", 58.178, 80.624, 0.35, 1.24),
    _tv("mobilenet_v2", 71.878, 90.286, 0.30, 3.50),
    _tv("mobilenet_v3_large", 74.042, 91.340, 0.22, 5.48),
    _tv("mobilenet_v3_small", 67.668, 87.402, 0.06, 2.54),
    _tv("shufflenet_v2_x0_5", 60.552, 81.746, 0.04, 1.37),
    _tv("shufflenet_v2_x1_0", 69.362, 88.316, 0.14, 2.28),
    _tv("efficientnet_b0", 77.692, 93.532, 0.39, 5.29),
    _tv("mnasnet1_0", 73.456, 91.510, 0.31, 4.38),
    _tv("regnet_y_400mf", 74.046, 91.716, 0.40, 4.34),
    _tv("convnext_tiny", 82.520, 96.146, 4.46, 28.59),
)

def normalize(name: str) -> str:
    """Case and separators do not matter: ``ResNet-50``, ``resnet_50`` and ``resnet50`` are one network."""
    return "".join(c for c in name.strip().lower() if c not in "-_ .")


_BY_NAME = {normalize(n.name): n for n in NETWORKS}


def lookup(name: str) -> Network | None:
    """The catalog entry for ``name``, or None for a network the catalog does not know."""
    return _BY_NAME.get(normalize(name))


# -- The user's own file: adds networks or overrides accuracy -----------------------------------------------------

_FIELDS = {"name", "top1", "top5", "source", "gmacs", "params_m", "seed_top1"}


class Catalog:
    """The built-in networks with a user file's entries laid over them (a user entry's fields win)."""

    def __init__(self, entries: tuple[Network, ...] = NETWORKS, origin: str = "built-in") -> None:
        self.entries = {normalize(n.name): n for n in entries}
        self.origin = origin

    def lookup(self, name: str) -> Network | None:
        return self.entries.get(normalize(name))

    def __iter__(self):
        return iter(self.entries.values())

    def __len__(self) -> int:
        return len(self.entries)


def default_user_path() -> Path:
    """``$XDG_CONFIG_HOME/dnnprof/catalog.toml`` (``~/.config/...`` when unset)."""
    base = os.environ.get("XDG_CONFIG_HOME") or Path.home() / ".config"
    return Path(base) / "dnnprof" / "catalog.toml"


def _rows(path: Path) -> list[tuple[str, dict]]:
    """(where, fields) for each entry of a CSV or TOML file."""
    try:
        text = path.read_text(encoding="utf-8")
    except OSError as exc:
        raise UserError(f"cannot read the catalog file {path}: {exc.strerror or exc}") from None
    except UnicodeDecodeError:
        raise UserError(f"{path} is not a UTF-8 text file; write the catalog as CSV or TOML") from None
    if path.suffix.lower() == ".csv":
        reader = csv.DictReader(io.StringIO(text))
        unknown = set(reader.fieldnames or ()) - _FIELDS
        if not reader.fieldnames or "name" not in reader.fieldnames or unknown:
            raise UserError(f"{path}: the header must name columns from {', '.join(sorted(_FIELDS))} including "
                            f"name" + (f" (unknown: {', '.join(sorted(unknown))})" if unknown else ""))
        return [(f"{path}:{i}", {k: v for k, v in row.items() if v not in (None, "")})
                for i, row in enumerate(reader, 2)]
    if path.suffix.lower() == ".toml":
        try:
            import tomllib
        except ImportError:  # Python 3.10
            import tomli as tomllib
        try:
            data = tomllib.loads(text)
        except tomllib.TOMLDecodeError as exc:
            raise UserError(f"{path} is not valid TOML: {exc}") from None
        networks = data.get("network")
        if not isinstance(networks, list) or set(data) - {"network"}:
            raise UserError(f"{path}: write each network as a [[network]] table (name = ..., top1 = ...)")
        return [(f"{path} [[network]] #{i}", entry) for i, entry in enumerate(networks, 1)]
    raise UserError(f"{path}: a catalog file is .csv or .toml")


def _number(where: str, key: str, value, low: float, high: float) -> float:
    try:
        number = float(value)
    except (TypeError, ValueError):
        raise UserError(f"{where}: {key} = {value!r} is not a number") from None
    if not low < number <= high:
        raise UserError(f"{where}: {key} = {value!r} must be in ({low:g}, {high:g}]")
    return number


def load_user(path: str | Path, base: Catalog | None = None) -> Catalog:
    """``base`` (the built-in catalog) with the entries of the CSV or TOML file at ``path`` laid over it.

    Each entry needs ``name``; ``top1`` too for a network the catalog does not know. A bad value ends with a
    UserError naming the file, the entry and the field.
    """
    path = Path(path)
    base = base or Catalog()
    entries = dict(base.entries)
    for where, fields in _rows(path):
        unknown = set(fields) - _FIELDS
        if unknown:
            raise UserError(f"{where}: unknown field {sorted(unknown)[0]!r}; known: {', '.join(sorted(_FIELDS))}")
        name = str(fields.get("name", "")).strip()
        if not name:
            raise UserError(f"{where}: an entry needs a name")
        values: dict = {"source": str(fields.get("source") or f"user catalog {path}")}
        for key, low, high in (("top1", 0, 100), ("top5", 0, 100), ("seed_top1", 0, 100), ("gmacs", 0, 1e6),
                               ("params_m", 0, 1e6)):
            if key in fields:
                values[key] = _number(where, key, fields[key], low, high)
        if "top1" in values and "top5" not in values:
            values["top5"] = None  # a new top-1 comes from a new evaluation; the old top-5 is not its companion
        known = entries.get(normalize(name))
        if known is None:
            if "top1" not in values:
                raise UserError(f"{where}: {name!r} is not in the catalog, so it needs a top1")
            values = {"top5": None, "gmacs": None, "params_m": None, **values}
            entries[normalize(name)] = Network(name=name, **values)
        else:
            entries[normalize(name)] = msgspec.structs.replace(known, **values)
    return Catalog(tuple(entries.values()), origin=f"built-in + {path}")
