"""The model manifest: the user's own models with name, input shape, preprocessing and accuracy."""

from __future__ import annotations

import shutil

import pytest

from dnnprof.agent.models import manifest
from dnnprof.shared.errors import UserError


@pytest.fixture
def exported(tmp_path, model_path):
    (tmp_path / "exports").mkdir()
    shutil.copy(model_path, tmp_path / "exports" / "net.onnx")
    return tmp_path


def write(folder, text: str):
    path = folder / "models.toml"
    path.write_text(text)
    return path


def test_entries_carry_name_shape_preprocessing_and_accuracy(exported):
    models = manifest.load(write(exported, """
[[model]]
path = "exports/net.onnx"
name = "my-shufflenet"
input_shape = [3, 224, 224]
preprocessing = "resize 256, centre crop 224, ImageNet mean/std"
top1 = 59.9
top1_source = "our validation run"

[[model]]
path = "exports/net.onnx"
"""))
    first, second = models
    assert first.name == "my-shufflenet" and first.top1 == 59.9 and first.top1_source == "our validation run"
    assert first.preprocessing.startswith("resize 256") and first.input_shape == (3, 224, 224)
    assert first.path == exported / "exports" / "net.onnx"  # relative to the manifest
    assert second.name == "net" and second.top1 is None and second.top1_source is None
    # Free text stays a label: the pipeline is the default for the input's size, and says so.
    assert first.preprocess is None and first.pipeline().default and first.pipeline().crop == (224, 224)


def test_preprocessing_as_a_preset_or_explicit_keys(exported):
    preset, explicit = manifest.load(write(exported, """
[[model]]
path = "exports/net.onnx"
preprocessing = "imagenet"

[[model]]
path = "exports/net.onnx"
preprocessing = { resize = 240, crop = 224, mean = [0.5, 0.5, 0.5], std = [0.5, 0.5, 0.5], channels = "BGR" }
"""))
    assert preset.pipeline() == preset.preprocess and preset.preprocess.resize == 256
    assert preset.preprocessing.startswith("imagenet: resize 256, crop 224")
    assert (explicit.preprocess.resize, explicit.preprocess.channels) == (240, "BGR")
    assert explicit.preprocessing == "resize 240, crop 224, mean 0.5/0.5/0.5, std 0.5/0.5/0.5, BGR"


def test_accuracy_without_a_source_names_the_manifest(exported):
    (model,) = manifest.load(write(exported, '[[model]]\npath = "exports/net.onnx"\ntop1 = 60\n'))
    assert "models.toml" in model.top1_source


@pytest.mark.parametrize("text, message", [
    ('[[model]]\npath = "exports/net.onnx"\ninput_shape = [3, 299, 299]\n', "does not match the model's input"),
    ('[[model]]\npath = "exports/net.onnx"\ntop1 = 120\n', "must be a percentage"),
    ('[[model]]\npath = "exports/net.onnx"\ntop1 = true\n', "must be a percentage"),
    ('[[model]]\npath = "exports/net.onnx"\ncolour = "red"\n', "unknown field 'colour'"),
    ('[[model]]\nname = "x"\n', "needs path"),
    ('[[model]]\npath = "exports/absent.onnx"\n', "does not exist"),
    ('[[model]]\npath = "exports/net.onnx"\nname = 3\n', "name must be a string"),
    ('model = "x"\n', "[[model]] table"),
    ('[[model]\n', "is not a TOML manifest"),
    ('[[model]]\npath = "exports/net.onnx"\npreprocessing = "inception"\n',
     "preprocessing crops 299x299 but the model's input is 224x224"),
    ('[[model]]\npath = "exports/net.onnx"\npreprocessing = { resize = 256 }\n', "needs resize and crop"),
    ('[[model]]\npath = "exports/net.onnx"\npreprocessing = 7\n', "preprocessing is a preset name"),
])
def test_bad_manifests_name_the_entry_and_field(exported, text, message):
    with pytest.raises(UserError) as err:
        manifest.load(write(exported, text))
    assert message in str(err.value) and "\n" not in str(err.value)


def test_missing_manifest(tmp_path):
    with pytest.raises(UserError, match="cannot read the manifest"):
        manifest.load(tmp_path / "absent.toml")
