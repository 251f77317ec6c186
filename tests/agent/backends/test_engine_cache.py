"""The on-disk engine cache: keys, atomic entries, and every way an entry can be unusable (a miss, never a crash)."""

import dataclasses
import json
import os

import pytest

from dnnprof.agent.backends.engine_cache import EngineCache, EngineKey
from dnnprof.shared.errors import UserError

KEY = EngineKey(model_sha256="ab" * 32, batch=8, precision="fp16", device="gpu", tensorrt="10.3.0",
                platform="36.4.3", gpu="Orin (sm_87)", workspace_bytes=1 << 30, calibration=None,
                calibration_sha256=None, precision_method="builder_flags", converted_sha256=None, preprocessing=None)
PLAN = bytes(range(256)) * 40


@pytest.fixture
def cache(tmp_path):
    return EngineCache(tmp_path / "engines")


def test_the_key_depends_on_every_field():
    changes = dict(model_sha256="cd" * 32, batch=4, precision="int8", device="dla0", tensorrt="8.6.2",
                   platform="36.3.0", gpu="Xavier (sm_72)", workspace_bytes=1 << 29, calibration="random",
                   calibration_sha256="ef" * 32, precision_method="onnx_converted", converted_sha256="12" * 32,
                   preprocessing='{"crop": [224, 224]}')
    assert set(changes) == {f.name for f in dataclasses.fields(EngineKey)}
    digests = {KEY.digest} | {dataclasses.replace(KEY, **{k: v}).digest for k, v in changes.items()}
    assert len(digests) == len(changes) + 1
    assert KEY.digest == dataclasses.replace(KEY).digest and len(KEY.digest) == 32


def test_store_then_load(cache):
    assert cache.load(KEY).plan is None and cache.load(KEY).reason == "miss"
    path = cache.store(KEY, PLAN, build_s=93.25, model="resnet50")
    assert path == cache.plan_path(KEY) and path.read_bytes() == PLAN
    found = cache.load(KEY)
    assert found.plan == PLAN and found.reason == "hit"
    sidecar = json.loads(cache.sidecar_path(KEY).read_text())
    assert sidecar["key"]["batch"] == 8 and sidecar["key"]["tensorrt"] == "10.3.0"
    assert sidecar["model"] == "resnet50" and sidecar["plan_bytes"] == len(PLAN) and sidecar["build_s"] == 93.25
    assert len(sidecar["plan_sha256"]) == 64
    # atomic writes leave no temporary files behind
    assert sorted(p.name for p in cache.directory.iterdir()) == [f"{KEY.digest}.engine", f"{KEY.digest}.json"]


def test_a_plan_without_its_sidecar_is_a_miss(cache):
    cache.plan_path(KEY).write_bytes(PLAN)  # a crash after the plan was written, before the sidecar
    assert cache.load(KEY).plan is None and cache.load(KEY).reason == "miss"


@pytest.mark.parametrize("damage, words", [
    (lambda c: c.plan_path(KEY).write_bytes(PLAN[:100]), "truncated"),
    (lambda c: c.plan_path(KEY).write_bytes(bytes([PLAN[0] ^ 1]) + PLAN[1:]), "sha256"),
    (lambda c: c.plan_path(KEY).unlink(), "cannot read"),
    (lambda c: c.sidecar_path(KEY).write_text("{not json"), "unreadable sidecar"),
    (lambda c: c.sidecar_path(KEY).write_text("[]"), "does not match"),
])
def test_a_damaged_entry_is_unusable_with_a_reason(cache, damage, words):
    cache.store(KEY, PLAN, build_s=1.0, model="m")
    damage(cache)
    found = cache.load(KEY)
    assert found.plan is None and words in found.reason


def test_the_two_precision_routes_never_share_an_entry(cache):
    flags = KEY
    converted = dataclasses.replace(KEY, precision_method="onnx_converted", converted_sha256="12" * 32)
    assert flags.digest != converted.digest
    cache.store(flags, PLAN, build_s=1.0, model="m")
    assert cache.load(converted).plan is None
    # another conversion of the same model (other calibration images, another onnxruntime) is another engine
    assert converted.digest != dataclasses.replace(converted, converted_sha256="34" * 32).digest


def test_a_sidecar_for_another_key_does_not_match(cache):
    other = dataclasses.replace(KEY, tensorrt="10.4.0")
    cache.store(other, PLAN, build_s=1.0, model="m")
    os.replace(cache.sidecar_path(other), cache.sidecar_path(KEY))
    os.replace(cache.plan_path(other), cache.plan_path(KEY))
    found = cache.load(KEY)
    assert found.plan is None and "does not match this engine's key" in found.reason


def test_discard(cache):
    cache.store(KEY, PLAN, build_s=1.0, model="m")
    cache.discard(KEY)
    cache.discard(KEY)  # twice is fine
    assert list(cache.directory.iterdir()) == []


def test_timing_cache_and_calibration_paths(cache):
    a = cache.timing_cache_path("10.3.0", "Orin (sm_87)", "36.4.3")
    assert a == cache.timing_cache_path("10.3.0", "Orin (sm_87)", "36.4.3") and a.parent == cache.directory
    assert a != cache.timing_cache_path("10.4.0", "Orin (sm_87)", "36.4.3")
    assert a != cache.timing_cache_path("10.3.0", "Xavier (sm_72)", "36.4.3")
    c = cache.calibration_path("ab" * 32, "images", "cd" * 32, "10.3.0")
    assert c != cache.calibration_path("ab" * 32, "images", "ce" * 32, "10.3.0")
    assert c != cache.calibration_path("ab" * 32, "random", None, "10.3.0")
    # the same images through another preprocessing calibrate differently
    assert c == cache.calibration_path("ab" * 32, "images", "cd" * 32, "10.3.0", pipeline=None)
    assert c != cache.calibration_path("ab" * 32, "images", "cd" * 32, "10.3.0", pipeline='{"resize": 256}')
    assert EngineCache.read_bytes(a) is None
    EngineCache.write_bytes(a, b"tc")
    assert EngineCache.read_bytes(a) == b"tc"


def test_an_unusable_directory_is_a_user_error(tmp_path):
    blocker = tmp_path / "file"
    blocker.write_text("x")
    with pytest.raises(UserError, match="cannot create the engine cache directory .*--engine-cache"):
        EngineCache(blocker / "engines")


def test_the_directory_is_created_with_parents(tmp_path):
    cache = EngineCache(tmp_path / "a" / "b")
    assert cache.directory.is_dir()
