"""int8 on TensorRT (the fakes of tests/fakes/): calibration on random data (timing only) or on images, resized and
ImageNet-normalised, and the calibration folder's errors."""

from __future__ import annotations

import math

import numpy as np
import pytest

from dnnprof.agent.backends import tensorrt as trt_backend
from dnnprof.agent.backends.tensorrt import calibration as trt_calibration
from dnnprof.shared.errors import UserError

# -- int8 calibration --------------------------------------------------------------------------------------------------


@pytest.mark.parametrize("version", ["8.6.2", "10.3.0"])
def test_int8_from_random_data_is_timing_only(install_fakes, make_backend, tiny, version, balanced):
    trt, cuda = install_fakes(version)
    backend = make_backend()
    runner = backend.prepare(tiny, 8, "int8")
    build = trt._fake.last_build
    assert build["flags"] == ["INT8"]
    assert build["calibration_batches"] == math.ceil(trt_backend.RANDOM_CALIBRATION_IMAGES / 8)
    assert runner.calibration == "random" and runner.timing_only is True
    runner.close()
    # the calibration table is kept next to the engines and reused by the next build of the same model
    tables = list(backend.cache.directory.glob("calibration-*.table"))
    assert len(tables) == 1 and tables[0].read_bytes().startswith(b"fake calibration table")
    backend.prepare(tiny, 4, "int8").close()
    assert trt._fake.last_build["calibration_batches"] == 0 and trt._fake.builds == 2
    assert balanced(cuda) and cuda._fake.live_device_bytes == 0


def png(path, color, size=(20, 12)):
    Image = pytest.importorskip("PIL.Image")
    Image.new("RGB", size, color).save(path)
    return path


def test_int8_from_images(install_fakes, make_backend, tiny, tmp_path):
    trt, _ = install_fakes("10.3.0")
    folder = tmp_path / "calib"
    folder.mkdir()
    for i, color in enumerate([(255, 0, 0), (0, 255, 0), (0, 0, 255)]):
        png(folder / f"img{i}.png", color)
    (folder / "notes.txt").write_text("not an image")
    backend = make_backend(calibration=folder)
    runner = backend.prepare(tiny, 2, "int8")
    assert runner.calibration == f"images:{folder} (3 images)" and runner.timing_only is False
    assert trt._fake.last_build["calibration_batches"] == 2  # 3 images in batches of 2: the last one filled up
    runner.close()
    # fp32 and fp16 engines are not calibrated
    runner = backend.prepare(tiny, 2, "fp16")
    assert runner.calibration is None
    runner.close()


def test_calibration_images_are_resized_and_imagenet_normalised(tmp_path):
    red = png(tmp_path / "red.png", (255, 0, 0), size=(31, 17))
    data = trt_calibration._load_image(red, (3, 8, 10))
    assert data.shape == (3, 8, 10) and data.dtype == np.float32
    mean, std = trt_backend.IMAGENET_MEAN, trt_backend.IMAGENET_STD
    np.testing.assert_allclose(data[0], (1 - mean[0]) / std[0], rtol=1e-5)
    np.testing.assert_allclose(data[1], (0 - mean[1]) / std[1], rtol=1e-5)
    batches = list(trt_backend.image_batches([red, red, red], 2, (3, 8, 10)))
    assert [b.shape for b in batches] == [(2, 3, 8, 10), (2, 3, 8, 10)]


def test_a_calibration_image_that_cannot_be_read(install_fakes, make_backend, tiny, tmp_path):
    install_fakes("10.3.0")
    folder = tmp_path / "calib"
    folder.mkdir()
    png(folder / "a.png", (10, 20, 30))
    (folder / "b.jpg").write_bytes(b"not a jpeg")
    with pytest.raises(UserError, match=r"cannot read calibration image .*b\.jpg"):
        make_backend(calibration=folder).prepare(tiny, 2, "int8")


@pytest.mark.parametrize("make_folder, words", [
    (lambda p: p / "missing", "does not exist"),
    (lambda p: (p / "empty").mkdir() or p / "empty", "holds no images"),
])
def test_a_calibration_folder_without_images(install_fakes, make_backend, tmp_path, make_folder, words):
    install_fakes()
    with pytest.raises(UserError, match=words):
        make_backend(calibration=make_folder(tmp_path))


