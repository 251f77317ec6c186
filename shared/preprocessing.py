"""How a classifier's input images are prepared, as a machine can read it: resize the shorter side, centre crop,
scale pixels to [0, 1], subtract ``mean`` and divide by ``std`` per channel, channel order RGB or BGR, NCHW.

Written in a manifest as a preset name (``"imagenet"``, ``"inception"``), a table of explicit keys (``{ resize =
256, crop = 224, mean = [...], std = [...], channels = "RGB" }``, optionally ``preset = "imagenet"`` with some keys
overridden), or free text, which stays a label only (``Preprocessing.label``) and leaves the pipeline to the default
for the input's size. The same pipeline feeds the accuracy pass and int8 calibration (agent/models/images.py).
"""

from __future__ import annotations

import json
from dataclasses import asdict, dataclass, replace

from dnnprof.shared.errors import UserError

IMAGENET_MEAN = (0.485, 0.456, 0.406)  # torchvision's constants, on pixels in [0, 1]
IMAGENET_STD = (0.229, 0.224, 0.225)
KEYS = ("preset", "resize", "crop", "mean", "std", "channels")
CHANNELS = ("RGB", "BGR")


@dataclass(frozen=True)
class Preprocessing:
    resize: int  # the shorter side is resized to this many pixels (aspect ratio kept), bilinear
    crop: tuple[int, int]  # then a centre crop of (height, width) pixels
    mean: tuple[float, float, float]  # per channel, in the output's channel order, on pixels scaled to [0, 1]
    std: tuple[float, float, float]
    channels: str = "RGB"
    preset: str | None = None  # the preset it came from, where one was named
    default: bool = False  # True: nothing was specified; the default for the input's size was taken
    label: str | None = None  # the manifest's free text, kept as documentation

    def describe(self) -> str:
        """In words, as results record it: ``imagenet: resize 256, crop 224, mean 0.485/0.456/0.406, ...``."""
        crop = str(self.crop[0]) if self.crop[0] == self.crop[1] else f"{self.crop[0]}x{self.crop[1]}"
        words = (f"resize {self.resize}, crop {crop}, mean {'/'.join(f'{m:g}' for m in self.mean)}, "
                 f"std {'/'.join(f'{s:g}' for s in self.std)}, {self.channels}")
        head = self.preset
        if self.default:
            head = f"{head} (default for the input size)" if head else "default for the input size"
        return f"{head}: {words}" if head else words

    def key(self) -> str:
        """What the pipeline's output depends on (not the preset's name or the label): part of every cache key."""
        fields = asdict(self)
        for name in ("preset", "default", "label"):
            fields.pop(name)
        return json.dumps(fields, sort_keys=True)

    def check_shape(self, shape: tuple[int, ...], where: str) -> None:
        """UserError unless the pipeline's output fits a per-image input ``shape`` (3, H, W)."""
        if len(shape) != 3 or shape[0] != 3:
            raise UserError(f"{where}: the image pipeline makes 3-channel {self.channels} inputs, but the model's "
                            f"input is {list(shape)}")
        if tuple(shape[1:]) != self.crop:
            raise UserError(f"{where}: preprocessing crops {self.crop[0]}x{self.crop[1]} but the model's input is "
                            f"{shape[1]}x{shape[2]}: set crop = {shape[1]} (and resize) in its preprocessing")


PRESETS = {
    "imagenet": Preprocessing(resize=256, crop=(224, 224), mean=IMAGENET_MEAN, std=IMAGENET_STD, preset="imagenet"),
    "inception": Preprocessing(resize=342, crop=(299, 299), mean=(0.5, 0.5, 0.5), std=(0.5, 0.5, 0.5),
                               preset="inception"),
}


def default_for(shape: tuple[int, ...]) -> Preprocessing:
    """The pipeline of a model that names none: the ``imagenet`` preset for 224x224 inputs, ``inception`` for
    299x299, else ImageNet's statistics with the shorter side resized in ImageNet's 256:224 proportion."""
    height, width = (shape[1], shape[2]) if len(shape) == 3 else (0, 0)
    for preset in PRESETS.values():
        if preset.crop == (height, width):
            return replace(preset, default=True)
    return Preprocessing(resize=round(max(height, width) * 256 / 224), crop=(height, width), mean=IMAGENET_MEAN,
                         std=IMAGENET_STD, default=True)


def _number_list(value: object, key: str, where: str, *, positive: bool) -> tuple[float, float, float]:
    if isinstance(value, (int, float)) and not isinstance(value, bool):
        value = [value] * 3
    if (not isinstance(value, list) or len(value) != 3
            or any(isinstance(v, bool) or not isinstance(v, (int, float)) for v in value)):
        raise UserError(f"{where}: {key} must be three numbers (one per channel, on pixels scaled to [0, 1]), "
                        f"e.g. {key} = {list(IMAGENET_MEAN if key == 'mean' else IMAGENET_STD)}")
    if positive and any(v <= 0 for v in value):
        raise UserError(f"{where}: {key} must be positive")
    return tuple(float(v) for v in value)


def _pixels(value: object, key: str, where: str) -> int:
    if isinstance(value, bool) or not isinstance(value, int) or not 1 <= value <= 16384:
        raise UserError(f"{where}: {key} must be a whole number of pixels, e.g. {key} = 224")
    return value


def parse(value: object, where: str) -> Preprocessing | None:
    """A manifest's ``preprocessing`` value: a preset name, a table of keys, or free text (None: a label only,
    the caller keeps the text). UserError names ``where`` and the key at fault."""
    if value is None:
        return None
    if isinstance(value, str):
        preset = PRESETS.get(value.strip().lower())
        return preset
    if not isinstance(value, dict):
        raise UserError(f"{where}: preprocessing is a preset name ({', '.join(PRESETS)}), a table of "
                        f"{', '.join(KEYS)}, or a free-text label")
    unknown = set(value) - set(KEYS)
    if unknown:
        raise UserError(f"{where}: unknown preprocessing key {sorted(unknown)[0]!r}; known: {', '.join(KEYS)}")
    base = None
    if "preset" in value:
        base = PRESETS.get(str(value["preset"]).strip().lower())
        if base is None:
            raise UserError(f"{where}: unknown preprocessing preset {value['preset']!r}; known: {', '.join(PRESETS)}")
    elif not {"resize", "crop"} <= set(value):
        raise UserError(f"{where}: preprocessing needs resize and crop (or preset = \"imagenet\")")
    fields: dict = {}
    if "resize" in value:
        fields["resize"] = _pixels(value["resize"], "resize", where)
    if "crop" in value:
        crop = value["crop"]
        if isinstance(crop, list) and len(crop) == 2:
            fields["crop"] = (_pixels(crop[0], "crop", where), _pixels(crop[1], "crop", where))
        else:
            side = _pixels(crop, "crop", where)
            fields["crop"] = (side, side)
    for key in ("mean", "std"):
        if key in value:
            fields[key] = _number_list(value[key], key, where, positive=key == "std")
    if "channels" in value:
        channels = str(value["channels"]).upper()
        if channels not in CHANNELS:
            raise UserError(f"{where}: channels must be RGB or BGR, not {value['channels']!r}")
        fields["channels"] = channels
    if base is None:
        fields.setdefault("mean", IMAGENET_MEAN)
        fields.setdefault("std", IMAGENET_STD)
        made = Preprocessing(**fields)
    else:
        made = replace(base, **fields, preset=base.preset if not fields else f"{base.preset} (modified)")
    if made.resize < min(made.crop):
        raise UserError(f"{where}: resize {made.resize} is smaller than the crop {made.crop[0]}x{made.crop[1]}")
    return made


def named(text: str, where: str) -> Preprocessing:
    """A preset named on the command line (``--preprocessing imagenet``); UserError for another name."""
    preset = PRESETS.get(text.strip().lower())
    if preset is None:
        raise UserError(f"{where}: unknown preprocessing {text!r}; presets: {', '.join(PRESETS)} (explicit keys go in "
                        "a manifest)")
    return preset
