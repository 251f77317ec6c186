"""The machine-readable preprocessing: presets, explicit keys, free text kept as a label, and what is refused."""

import pytest

from dnnprof.shared import preprocessing
from dnnprof.shared.errors import UserError


def test_presets_are_the_documented_pipelines():
    imagenet = preprocessing.parse("imagenet", "m")
    assert (imagenet.resize, imagenet.crop, imagenet.channels) == (256, (224, 224), "RGB")
    assert imagenet.mean == (0.485, 0.456, 0.406) and imagenet.std == (0.229, 0.224, 0.225)
    inception = preprocessing.parse("Inception", "m")
    assert (inception.resize, inception.crop, inception.mean, inception.std) == (342, (299, 299), (0.5,) * 3,
                                                                                 (0.5,) * 3)


def test_explicit_keys_and_a_modified_preset():
    made = preprocessing.parse({"resize": 72, "crop": [64, 48], "mean": 0.5, "std": [0.25, 0.25, 0.5],
                                "channels": "bgr"}, "m")
    assert (made.resize, made.crop, made.mean, made.std, made.channels) == (72, (64, 48), (0.5,) * 3,
                                                                           (0.25, 0.25, 0.5), "BGR")
    assert made.describe() == "resize 72, crop 64x48, mean 0.5/0.5/0.5, std 0.25/0.25/0.5, BGR"
    changed = preprocessing.parse({"preset": "imagenet", "channels": "BGR"}, "m")
    assert changed.crop == (224, 224) and changed.channels == "BGR" and changed.preset == "imagenet (modified)"


def test_free_text_is_a_label_only():
    assert preprocessing.parse("resize 256, centre crop 224, ImageNet mean/std", "m") is None


def test_the_key_ignores_names_but_not_numbers():
    a = preprocessing.parse("imagenet", "m")
    b = preprocessing.parse({"resize": 256, "crop": 224}, "m")  # the same numbers, no preset name
    assert a.key() == b.key()
    assert a.key() != preprocessing.parse({"preset": "imagenet", "channels": "BGR"}, "m").key()


@pytest.mark.parametrize(("shape", "resize", "crop"), [
    ((3, 224, 224), 256, (224, 224)), ((3, 299, 299), 342, (299, 299)), ((3, 8, 8), 9, (8, 8))])
def test_the_default_follows_the_input_size(shape, resize, crop):
    made = preprocessing.default_for(shape)
    assert (made.resize, made.crop, made.default) == (resize, crop, True)
    assert "default for the input size" in made.describe()


@pytest.mark.parametrize(("value", "message"), [
    ({"resize": 256}, "needs resize and crop"),
    ({"resize": 256, "crop": 224, "scale": 2}, "unknown preprocessing key 'scale'"),
    ({"preset": "vgg"}, "unknown preprocessing preset 'vgg'"),
    ({"resize": 0, "crop": 224}, "resize must be a whole number of pixels"),
    ({"resize": 200, "crop": 224}, "resize 200 is smaller than the crop 224x224"),
    ({"resize": 256, "crop": 224, "mean": [1, 2]}, "mean must be three numbers"),
    ({"resize": 256, "crop": 224, "std": [1, 0, 1]}, "std must be positive"),
    ({"resize": 256, "crop": 224, "channels": "RGBA"}, "channels must be RGB or BGR"),
    (42, "preprocessing is a preset name"),
])
def test_bad_preprocessing_says_what_to_fix(value, message):
    with pytest.raises(UserError, match=message):
        preprocessing.parse(value, "models.toml [[model]] #1")


def test_check_shape_names_the_mismatch():
    made = preprocessing.parse("imagenet", "m")
    made.check_shape((3, 224, 224), "m")
    with pytest.raises(UserError, match="crops 224x224 but the model's input is 299x299"):
        made.check_shape((3, 299, 299), "m")
    with pytest.raises(UserError, match="3-channel RGB inputs"):
        made.check_shape((1, 224, 224), "m")
