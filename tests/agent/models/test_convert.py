"""fp16 and int8 as ONNX transforms by ONNX Runtime's own tools, on the digits classifier trained in the session:
checked against fp32, cached by content, and refused clearly where they cannot be made."""

import numpy as np
import onnx
import pytest

from dnnprof.agent.models import convert, images, manifest
from dnnprof.shared import onnxfile
from dnnprof.shared.errors import UserError


@pytest.fixture(scope="module")
def digits_model(digits):
    [model] = manifest.load(digits.manifest)
    return model


def test_fp16_converts_float_tensors_and_keeps_fp32_io(digits_model, tmp_path):
    done = convert.convert(digits_model, "fp16", cache=tmp_path)
    graph = onnx.load(str(done.model.path)).graph
    assert {i.data_type for i in graph.initializer} == {onnx.TensorProto.FLOAT16}
    assert graph.input[0].type.tensor_type.elem_type == onnx.TensorProto.FLOAT  # the I/O stays fp32
    assert graph.output[0].type.tensor_type.elem_type == onnx.TensorProto.FLOAT
    assert done.check.on == "random inputs" and done.check.images == convert.RANDOM_IMAGES
    assert done.check.top1_agreement >= 95 and done.check.max_logit_error < 0.1
    assert done.model.name == "digits" and done.model.sha256 != digits_model.sha256 and not done.timing_only


def test_int8_is_quantize_dequantize_pairs_calibrated_on_images(digits_model, digits, tmp_path):
    calibration = images.unlabelled(digits.calibration)
    done = convert.convert(digits_model, "int8", calibration=calibration, cache=tmp_path / "c",
                           tensor_cache=tmp_path / "t")
    ops = {n.op_type for n in onnx.load(str(done.model.path)).graph.node}
    assert {"QuantizeLinear", "DequantizeLinear", "Conv", "Gemm"} <= ops
    zero_points = [i for i in onnx.load(str(done.model.path)).graph.initializer if "zero_point" in i.name]
    assert zero_points and all(not np.any(onnx.numpy_helper.to_array(z)) for z in zero_points)  # symmetric
    assert done.check.on == "calibration images" and done.check.images == 200
    assert done.check.top1_agreement >= 90
    assert done.calibration == f"images:{digits.calibration} (200 images)"
    assert done.calibration_sha256 == calibration.sha256 and not done.timing_only


def test_int8_without_images_is_timing_only(digits_model, tmp_path):
    done = convert.convert(digits_model, "int8", cache=tmp_path)
    assert done.timing_only and done.calibration == "random" and done.calibration_sha256 is None


def test_a_conversion_is_cached_by_content(digits_model, digits, tmp_path):
    first = convert.convert(digits_model, "fp16", cache=tmp_path)
    again = convert.convert(digits_model, "fp16", cache=tmp_path)
    assert not first.cached and again.cached and again.model.path == first.model.path
    assert again.check == first.check and again.model.sha256 == first.model.sha256
    calibrated = convert.convert(digits_model, "int8", calibration=images.unlabelled(digits.calibration),
                                 cache=tmp_path)
    random = convert.convert(digits_model, "int8", cache=tmp_path)
    assert not calibrated.cached and not random.cached and calibrated.model.path != random.model.path
    assert len(list(tmp_path.glob("*.onnx"))) == 3 and len(list(tmp_path.glob("*.json"))) == 3


def test_a_broken_cache_entry_is_converted_again(digits_model, tmp_path):
    first = convert.convert(digits_model, "fp16", cache=tmp_path)
    first.model.path.with_suffix(".json").write_text("{not json")
    again = convert.convert(digits_model, "fp16", cache=tmp_path)
    assert not again.cached and onnxfile.load(again.model.path).sha256 == first.model.sha256


def test_without_a_cache_the_file_outlives_the_call(digits_model):
    done = convert.convert(digits_model, "fp16", keep=False)
    assert done.model.path.is_file() and not done.cached


def test_an_unknown_precision_is_refused(digits_model):
    with pytest.raises(UserError, match="convert makes fp16 or int8"):
        convert.convert(digits_model, "fp8", keep=False)


def test_a_graph_the_quantizer_cannot_handle_is_one_line(make_onnx, tmp_path):
    model = onnxfile.load(make_onnx(tmp_path / "weird.onnx", op="NoSuchOp"))
    with pytest.raises(UserError) as err:
        convert.convert(model, "int8", cache=tmp_path / "c")
    assert "weird" in str(err.value) and "\n" not in str(err.value)
