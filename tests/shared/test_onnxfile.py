"""Opening and checking ONNX image classifiers before any profiling time is spent on them."""

import hashlib

import pytest
from onnx import TensorProto

from dnnprof.shared import onnxfile
from dnnprof.shared.errors import UserError


@pytest.fixture
def error_of(one_line_error):
    """The one-line error ``onnxfile.load`` raises for a path."""
    return lambda path: one_line_error(onnxfile.load, path)


def test_load_generated_model(model_path):
    model = onnxfile.load(model_path)
    assert model.path == model_path
    assert model.name == "shufflenet_v2_x0_5"  # the file stem: the catalog's key
    assert model.input_name == "input"
    assert model.input_shape == (3, 224, 224)
    assert model.fixed_batch is None  # symbolic batch: any batch runs
    assert model.sha256 == hashlib.sha256(model_path.read_bytes()).hexdigest()
    for batch in (1, 3, 64):
        model.check_batch(batch)


def test_load_accepts_str(model_path):
    assert onnxfile.load(str(model_path)).name == "shufflenet_v2_x0_5"


def test_missing_file(tmp_path, error_of):
    assert "does not exist" in error_of(tmp_path / "missing.onnx")


def test_directory(tmp_path, error_of):
    folder = tmp_path / "model.onnx"
    folder.mkdir()
    assert "is not a file" in error_of(folder)


def test_garbage_file(tmp_path, error_of):
    path = tmp_path / "garbage.onnx"
    path.write_bytes(bytes(range(256)) * 8)
    assert "is not an ONNX model" in error_of(path)


def test_truncated_model(tmp_path, model_path, error_of):
    path = tmp_path / "truncated.onnx"
    path.write_bytes(model_path.read_bytes()[:100_000])
    assert "not an ONNX model" in error_of(path)


def test_empty_file(tmp_path, error_of):
    path = tmp_path / "empty.onnx"
    path.write_bytes(b"")
    assert "not an ONNX model" in error_of(path)


def test_text_file_named_onnx(tmp_path, error_of):
    path = tmp_path / "notes.onnx"
    path.write_text("This is not a model, it is a note about the model.\n")
    assert "not an ONNX model" in error_of(path)


def test_fixed_batch_model(tmp_path, make_onnx):
    path = make_onnx(tmp_path / "fixed.onnx", batch=1)
    model = onnxfile.load(path)
    assert model.fixed_batch == 1
    assert model.input_shape == (3, 8, 8)
    model.check_batch(1)
    with pytest.raises(UserError) as info:
        model.check_batch(4)
    message = str(info.value)
    assert "fixed batch size of 1" in message and "batch 4" in message and "dynamic" in message
    assert "\n" not in message


def test_two_inputs(tmp_path, make_onnx, error_of):
    path = make_onnx(tmp_path / "two.onnx", inputs=2)
    assert "2 inputs" in error_of(path)


def test_non_float_input(tmp_path, make_onnx, error_of):
    path = make_onnx(tmp_path / "int8.onnx", op="Identity", elem_type=TensorProto.INT8)
    assert "not float32" in error_of(path)


@pytest.mark.parametrize("shape", [(3, 8), (3, 8, 8, 2), (3, "H", 8)])
def test_not_an_image_input(tmp_path, make_onnx, shape, error_of):
    path = make_onnx(tmp_path / "odd.onnx", op="Identity", shape=shape)
    assert "expected (batch, channels, height, width)" in error_of(path)


def test_collect_directory(tmp_path, make_onnx):
    for name in ("b", "a", "c"):
        make_onnx(tmp_path / f"{name}.onnx")
    (tmp_path / "readme.txt").write_text("not a model\n")
    (tmp_path / "sub").mkdir()
    make_onnx(tmp_path / "sub" / "deeper.onnx")  # not searched recursively
    assert onnxfile.collect([tmp_path]) == [tmp_path / "a.onnx", tmp_path / "b.onnx", tmp_path / "c.onnx"]


def test_collect_mixes_files_and_directories(tmp_path, model_dir, model_path):
    single = tmp_path / "other.onnx"
    assert onnxfile.collect([single, model_dir]) == [single, model_path]  # files pass through unchecked


def test_collect_empty_directory(tmp_path):
    with pytest.raises(UserError) as info:
        onnxfile.collect([tmp_path])
    assert "holds no .onnx files" in str(info.value) and str(tmp_path) in str(info.value)
