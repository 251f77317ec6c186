"""Image sets (labelled by folder index or labels.txt names, seeded subsets, content hashes), the pipeline's
arithmetic on real PNG files, and the memory-mapped tensor cache."""

import numpy as np
import pytest
from PIL import Image

from dnnprof.agent.models import images
from dnnprof.shared import preprocessing
from dnnprof.shared.errors import UserError


def _png(path, array) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    Image.fromarray(np.asarray(array, dtype=np.uint8)).save(path)


def test_a_labelled_set_by_class_index(digits):
    found = images.labelled(digits.test)
    assert len(found) == digits.n_test and found.labels is not None
    assert sorted(set(found.labels)) == list(range(10))
    assert all(path.parent.name == str(label) for path, label in zip(found.images, found.labels))


def test_class_names_come_from_labels_txt(tmp_path):
    (tmp_path / "labels.txt").write_text("n01440764\nn01443537\nn01484850\n")
    _png(tmp_path / "n01484850" / "a.png", np.zeros((4, 4, 3)))
    _png(tmp_path / "n01440764" / "b.JPEG".lower().replace("jpeg", "png"), np.zeros((4, 4, 3)))
    found = images.labelled(tmp_path)
    assert dict(zip([p.parent.name for p in found.images], found.labels)) == {"n01440764": 0, "n01484850": 2}


@pytest.mark.parametrize(("layout", "message"), [
    ({"cats/a.png": None}, "folder 'cats' is not a class: name the folders by class index"),
    ({"labels.txt": "dog\n", "cat/a.png": None}, "folder 'cat' is not a class: it is not listed in"),
    ({"0/notes.txt": "x"}, "holds no labelled images"),
])
def test_a_bad_layout_says_how_to_fix_it(tmp_path, layout, message):
    for name, content in layout.items():
        path = tmp_path / name
        path.parent.mkdir(parents=True, exist_ok=True)
        if content is None:
            _png(path, np.zeros((2, 2, 3)))
        else:
            path.write_text(content)
    with pytest.raises(UserError, match=message):
        images.labelled(tmp_path)


def test_a_subset_is_fixed_by_its_seed_and_hashed_as_taken(digits):
    a, b = images.labelled(digits.test, limit=30, seed=1), images.labelled(digits.test, limit=30, seed=1)
    other = images.labelled(digits.test, limit=30, seed=2)
    assert a.images == b.images and a.sha256 == b.sha256 and (a.limit, a.seed) == (30, 1)
    assert a.images != other.images and a.sha256 != other.sha256
    whole = images.labelled(digits.test, limit=10**6)  # a limit past the set is the whole set, not a subset
    assert whole.limit is None and len(whole) == digits.n_test


def test_the_hash_follows_content(tmp_path):
    _png(tmp_path / "0" / "a.png", np.zeros((2, 2, 3)))
    before = images.labelled(tmp_path).sha256
    _png(tmp_path / "0" / "a.png", np.ones((2, 2, 3)))
    assert images.labelled(tmp_path).sha256 != before


def test_the_pipeline_resizes_the_shorter_side_crops_the_centre_and_normalises(tmp_path):
    # 4 x 8 (h x w): columns 0-7 hold 0, 32, ..., 224 in red, 255 in green, 0 in blue.
    array = np.zeros((4, 8, 3), np.uint8)
    array[:, :, 0] = np.arange(8) * 32
    array[:, :, 1] = 255
    _png(tmp_path / "x.png", array)
    prep = preprocessing.Preprocessing(resize=4, crop=(4, 4), mean=(0.5, 0.0, 0.0), std=(0.5, 1.0, 1.0))
    data = images.load_image(tmp_path / "x.png", prep)
    assert data.shape == (3, 4, 4) and data.dtype == np.float32
    # No resize (the shorter side is 4 already); the centre crop keeps columns 2-5.
    assert data[0, 0] == pytest.approx((np.arange(2, 6) * 32 / 255 - 0.5) / 0.5, abs=1e-6)
    assert np.all(data[1] == 1.0) and np.all(data[2] == 0.0)
    bgr = images.load_image(tmp_path / "x.png", preprocessing.Preprocessing(
        resize=4, crop=(4, 4), mean=(0.0, 0.0, 0.0), std=(1.0, 1.0, 1.0), channels="BGR"))
    assert bgr[2, 0] == pytest.approx(data[0, 0] * 0.5 + 0.5, abs=1e-6) and np.all(bgr[0] == 0.0)


def test_an_unreadable_image_is_named(tmp_path):
    (tmp_path / "0").mkdir()
    (tmp_path / "0" / "broken.png").write_bytes(b"not a png")
    found = images.labelled(tmp_path)
    with pytest.raises(UserError, match="cannot read image .*broken.png"):
        images.tensors(found, preprocessing.default_for((3, 8, 8)), (3, 8, 8), keep=False)


def test_tensors_are_decoded_once_then_memory_mapped(digits, tmp_path):
    found = images.labelled(digits.test, limit=40)
    prep = preprocessing.Preprocessing(resize=8, crop=(8, 8), mean=(0.0,) * 3, std=(1.0,) * 3)
    seen = []
    first = images.tensors(found, prep, (3, 8, 8), cache=tmp_path, on_progress=lambda d, t: seen.append((d, t)))
    assert first.decoded == 40 and seen[-1] == (40, 40) and isinstance(first.data, np.memmap)
    again = images.tensors(found, prep, (3, 8, 8), cache=tmp_path)
    assert again.decoded == 0 and np.array_equal(np.asarray(again.data), np.asarray(first.data))
    assert list(again.labels) == list(found.labels)
    other = images.tensors(found, preprocessing.Preprocessing(resize=8, crop=(8, 8), mean=(0.5,) * 3,
                                                              std=(1.0,) * 3), (3, 8, 8), cache=tmp_path)
    assert other.decoded == 40  # another pipeline is another entry
    assert len(list(tmp_path.glob("*.npy"))) == 2 and not list(tmp_path.glob(".*"))  # no temporary left


def test_batches_fill_the_last_one_from_the_start(digits):
    found = images.labelled(digits.test, limit=10)
    t = images.tensors(found, preprocessing.default_for((3, 8, 8)), (3, 8, 8), keep=False)
    chunks = list(t.batches(4))
    assert [real for _, real in chunks] == [4, 4, 2]
    assert chunks[-1][0].shape == (4, 3, 8, 8) and np.array_equal(chunks[-1][0][2:], np.asarray(t.data[:2]))


def test_a_calibration_folder_takes_its_own_images_or_its_class_folders(digits, tmp_path):
    flat = images.unlabelled(digits.calibration)
    assert len(flat) == 200 and flat.labels is None
    nested = images.unlabelled(digits.test)
    assert len(nested) == digits.n_test
    with pytest.raises(UserError, match="holds no images"):
        images.unlabelled(tmp_path)
    with pytest.raises(UserError, match="does not exist"):
        images.unlabelled(tmp_path / "nope")
