"""int8 on TensorRT's builder-flag route (the fakes of tests/fakes/): calibration on random data (timing only) or on
images through the model's own pipeline (agent/models/images.py, as the accuracy pass reads them), and the
calibration folder's errors."""

from __future__ import annotations

import math
import warnings

import numpy as np
import pytest

from dnnprof.agent.backends import tensorrt as trt_backend
from dnnprof.agent.backends.tensorrt import build as trt_build
from dnnprof.agent.models import images
from dnnprof.shared import onnxfile
from dnnprof.shared.errors import UserError

# -- int8 calibration --------------------------------------------------------------------------------------------------


@pytest.mark.parametrize("version", ["8.6.2", "10.3.0"])
def test_int8_from_random_data_is_timing_only(install_fakes, make_backend, tiny, version, balanced):
    trt, cuda = install_fakes(version)
    backend = make_backend()
    assert backend.calibration_sha256 is None
    runner = backend.prepare(tiny, 8, "int8")
    build = trt._fake.last_build
    assert build["flags"] == ["INT8"] and build["calibrator"] and not build["strongly_typed"]
    assert build["calibration_batches"] == math.ceil(trt_backend.RANDOM_CALIBRATION_IMAGES / 8)
    assert runner.calibration == "random" and runner.timing_only is True
    assert runner.precision_method == "builder_flags" and runner.converted_sha256 is None
    runner.close()
    # the calibration table is kept next to the engines and reused by the next build of the same model
    tables = list(backend.cache.directory.glob("calibration-*.table"))
    assert len(tables) == 1 and tables[0].read_bytes().startswith(b"fake calibration table")
    backend.prepare(tiny, 4, "int8").close()
    assert trt._fake.last_build["calibration_batches"] == 0 and trt._fake.builds == 2
    assert balanced(cuda) and cuda._fake.live_device_bytes == 0


def test_the_calibrator_s_deprecation_warning_stays_inside(install_fakes, make_backend, tiny):
    """TensorRT 10.1+ warns that the calibrator API is deprecated: known, and nothing the user can act on."""
    trt, _ = install_fakes("10.3.0")
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        make_backend().prepare(tiny, 2, "int8").close()
    assert [w for w in caught if issubclass(w.category, DeprecationWarning)] == []
    assert {"IBuilderConfig.int8_calibrator", "IBuilderConfig.set_calibration_profile"} <= \
        set(trt._fake.deprecated_used)  # the fake saw the deprecated calls (and warned)


def test_int8_from_images(install_fakes, make_backend, tiny, calibration_folder, statuses):
    trt, _ = install_fakes("10.3.0")
    folder = calibration_folder()
    backend = make_backend(calibration=folder)
    assert backend.calibration_sha256 == images.unlabelled(folder).sha256
    runner = backend.prepare(tiny, 2, "int8")
    assert runner.calibration == f"images:{folder} (3 images)" and runner.timing_only is False
    assert trt._fake.last_build["calibration_batches"] == 2  # 3 images in batches of 2: the last one filled up
    assert "decoding calibration images 3/3…" in statuses
    runner.close()
    # fp32 and fp16 engines are not calibrated
    runner = backend.prepare(tiny, 2, "fp16")
    assert runner.calibration is None
    runner.close()


def test_the_calibrator_is_fed_the_accuracy_pass_s_tensors(install_fakes, make_backend, tiny, calibration_folder,
                                                             monkeypatch, tmp_path):
    """The images go through the model's own pipeline (ModelFile.pipeline(), decoded once into the tensor cache),
    batch by batch as Tensors.batches gives them to the accuracy pass; the calibrator copies exactly those."""
    install_fakes("10.3.0")
    folder = calibration_folder([(255, 0, 0), (0, 255, 0), (0, 0, 255), (9, 99, 199), (200, 100, 0)])
    fed = []
    real = trt_build.calibrator

    def spy(trt, cuda, ctx, batches, *args, **kwargs):
        chunks = [np.array(b) for b in batches]
        fed.extend(chunks)
        return real(trt, cuda, ctx, iter(chunks), *args, **kwargs)

    monkeypatch.setattr(trt_build, "calibrator", spy)
    make_backend(calibration=folder).prepare(tiny, 2, "int8").close()
    expected = images.tensors(images.unlabelled(folder), tiny.pipeline(), tiny.input_shape, cache=tmp_path / "t2")
    want = [chunk for chunk, _ in expected.batches(2)]
    assert len(fed) == len(want) == 3
    for got, chunk in zip(fed, want):
        assert got.dtype == np.float32 and got.shape == (2, 3, 8, 8)
        np.testing.assert_array_equal(got, chunk)
    # the red image, normalised with the pipeline's mean and std (ImageNet's, by default)
    prep = tiny.pipeline()
    np.testing.assert_allclose(fed[0][0, 0], (1 - prep.mean[0]) / prep.std[0], rtol=1e-5)
    # decoded once, into the backend's tensor cache
    assert len(list((tmp_path / "tensors").glob("*.npy"))) == 1


def test_another_pipeline_is_another_engine_and_table(install_fakes, make_backend, tiny, calibration_folder):
    """The same images through another preprocessing calibrate another engine (and table)."""
    import dataclasses

    trt, _ = install_fakes("10.3.0")
    backend = make_backend(calibration=calibration_folder())
    backend.prepare(tiny, 2, "int8").close()
    other = dataclasses.replace(tiny, preprocess=dataclasses.replace(tiny.pipeline(), mean=(0.5, 0.5, 0.5),
                                                                     default=False))
    backend.prepare(other, 2, "int8").close()
    assert trt._fake.builds == 2 and trt._fake.last_build["calibration_batches"] == 2
    assert len(list(backend.cache.directory.glob("calibration-*.table"))) == 2


def test_a_model_the_pipeline_does_not_fit(install_fakes, make_backend, make_onnx, tmp_path, calibration_folder):
    install_fakes("10.3.0")
    model = onnxfile.load(make_onnx(tmp_path / "gray.onnx", shape=(1, 8, 8)))
    with pytest.raises(UserError, match=r"gray: calibrating int8 on .*calib: the image pipeline makes 3-channel RGB "
                                        r"inputs, but the model's input is \[1, 8, 8\]"):
        make_backend(calibration=calibration_folder()).prepare(model, 1, "int8")


def test_a_calibration_image_that_cannot_be_read(install_fakes, make_backend, tiny, calibration_folder):
    install_fakes("10.3.0")
    folder = calibration_folder([(10, 20, 30)])
    (folder / "b.jpg").write_bytes(b"not a jpeg")
    with pytest.raises(UserError, match=r"cannot read image .*b\.jpg"):
        make_backend(calibration=folder).prepare(tiny, 2, "int8")


@pytest.mark.parametrize("make_folder, words", [
    (lambda p: p / "missing", "does not exist"),
    (lambda p: (p / "empty").mkdir() or p / "empty", "holds no images"),
])
def test_a_calibration_folder_without_images(install_fakes, make_backend, tmp_path, make_folder, words):
    install_fakes()
    with pytest.raises(UserError, match=words):
        make_backend(calibration=make_folder(tmp_path))
