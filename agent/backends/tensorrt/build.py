"""``TensorRTBackend``: ONNX → engine (built, or loaded from the engine cache) → a runner per (model, batch,
precision, device).

Written against the Python API of TensorRT 8.5/8.6 (JetPack 5, 6.0), 10.x (JetPack 6.1+, 7) and 11.x, name-based
tensor API only (see docs/TENSORRT.md and ../shared/reference/jetson.md §4-5): ``create_network`` (``EXPLICIT_BATCH``
on 8.x only: the 8.x ONNX parser needs it, 10.x ignores it; ``STRONGLY_TYPED`` for a converted model on 10.x),
``OnnxParser.parse_from_file``, ``set_memory_pool_limit(WORKSPACE)``, a fixed-batch optimisation profile
(min = opt = max) for the symbolic batch dimension, DLA with GPU fallback, a timing cache,
``build_serialized_network``. Running the engine is ``runner``; the CUDA context, ``cuda``.

fp16 and int8 take one of two routes (``precision_method``):

- ``builder_flags`` (TensorRT 8.5 to 10.x): the exported model with ``BuilderFlag.FP16`` / ``INT8``, int8 scales
  from the entropy calibrator of ``calibration``, fed the calibration images through the model's own preprocessing
  (``agent/models/images.py``, as the accuracy pass) or random data (timing only);
- ``onnx_converted`` (TensorRT 10.x and 11.x; the only route 11 has): the model converted by
  ``agent/models/convert.py`` (fp16 tensors; int8 as QuantizeLinear/DequantizeLinear pairs) parsed as a strongly
  typed network, with no precision flag and no calibrator.

fp32 is the exported model as it is (``as_exported``) on every version.

What is verified where (docs/TENSORRT.md): every TensorRT call was checked against the recorded API of the real
bindings (8.6, 10.0 to 10.16, 11.0, 11.4) and runs here against a fake of each version (tests/fakes/), but no real
TensorRT has run this code; the pycuda side runs on a real GPU in tests/agent/backends/tensorrt/test_gpu.py.
"""

from __future__ import annotations

import logging
import threading
import time
import warnings
from collections.abc import Callable
from pathlib import Path

from dnnprof.shared.onnxfile import ModelFile
from dnnprof.shared.errors import UserError

from ..base import PRECISION_CHOICES, Backend, PointError, Runner
from ..engine_cache import EngineCache, EngineKey
from .calibration import calibrator, random_batches
from .cuda import current, import_modules, primary_context
from .runner import TensorRTRunner

log = logging.getLogger(__name__)

MIN_VERSION = (8, 5)  # the name-based tensor API (set_tensor_address, execute_async_v3) arrived in 8.5
DEFAULT_WORKSPACE_BYTES = 1 << 30  # TensorRT's own default is all device memory: the whole RAM on a Jetson
PROGRESS_EVERY_S = 0.5  # at most this often a build-progress status line per phase step
# How fp16 and int8 are made (``TensorRTBackend(precision_method=...)``): auto is builder_flags where TensorRT has the
# FP16 / INT8 builder flags (8.5 to 10.x), else onnx_converted (11.x). Results record the route taken
# (schema.PRECISION_METHODS: builder_flags, onnx_converted; fp32 is always as_exported).
PRECISION_METHODS = PRECISION_CHOICES


def _version_tuple(version: str) -> tuple[int, ...]:
    parts = []
    for part in version.split(".")[:3]:
        digits = "".join(ch for ch in part if ch.isdigit())
        parts.append(int(digits) if digits else 0)
    return tuple(parts)


# -- TensorRT callbacks (their base classes exist only once tensorrt is imported) --------------------------------------

_logger_slot: tuple[object, object] | None = None


def _logger(trt):
    """One logger per process: TensorRT keeps the first logger it is given as its global one."""
    global _logger_slot
    if _logger_slot is not None and _logger_slot[0] is trt:
        return _logger_slot[1]

    class ErrorCollectingLogger(trt.ILogger):
        """Collects TensorRT's error messages (for the UserError of a failed build); warnings go to logging."""

        def __init__(self) -> None:
            trt.ILogger.__init__(self)  # pybind11 trampolines need the base __init__
            self._lock = threading.Lock()
            self._errors: list[str] = []

        def log(self, severity, msg) -> None:
            text = " ".join(str(msg).split())
            if severity in (trt.ILogger.ERROR, trt.ILogger.INTERNAL_ERROR):
                with self._lock:
                    self._errors.append(text)
                log.warning("TensorRT error: %s", text)
            elif severity == trt.ILogger.WARNING:
                log.warning("TensorRT: %s", text)

        def take_errors(self) -> list[str]:
            with self._lock:
                errors, self._errors = self._errors, []
            return errors

    _logger_slot = (trt, ErrorCollectingLogger())
    return _logger_slot[1]


def _progress_monitor(trt, report: Callable[[str], None], what: str, cancel: threading.Event):
    """A ``trt.IProgressMonitor`` (TensorRT ≥ 10) that reports build phases through ``report`` and cancels the
    build at its next step once ``cancel`` is set (the sweep gave the point up) or Ctrl-C reached a callback."""

    class BuildProgress(trt.IProgressMonitor):
        # UNVERIFIED on hardware: phase names and step counts come from TensorRT at run time; the callbacks'
        # signatures are those of TRT 10.3 pyCore.cpp (phase_start(phase_name, parent_phase, num_steps), ...).
        def __init__(self) -> None:
            trt.IProgressMonitor.__init__(self)
            self._lock = threading.Lock()
            self._phases: dict[str, list[int]] = {}  # name -> [steps done, steps]
            self._last = 0.0
            self.interrupted = False

        def phase_start(self, phase_name, parent_phase, num_steps) -> None:
            try:
                with self._lock:
                    self._phases[phase_name] = [0, int(num_steps)]
                self._show(phase_name, force=parent_phase is None)
            except KeyboardInterrupt:
                self.interrupted = True  # phase_start cannot cancel: the next step_complete does

        def step_complete(self, phase_name, step) -> bool:
            try:
                with self._lock:
                    if phase_name in self._phases:
                        self._phases[phase_name][0] = int(step) + 1
                self._show(phase_name)
                return not (self.interrupted or cancel.is_set())
            except KeyboardInterrupt:
                # An exception must not escape into TensorRT; returning False cancels the build cleanly.
                self.interrupted = True
                return False

        def phase_finish(self, phase_name) -> None:
            try:
                with self._lock:
                    self._phases.pop(phase_name, None)
            except KeyboardInterrupt:
                self.interrupted = True

        def _show(self, phase: str, force: bool = False) -> None:
            now = time.monotonic()
            with self._lock:
                if not force and now - self._last < PROGRESS_EVERY_S:
                    return
                self._last = now
                done, total = self._phases.get(phase, (0, 0))
            try:
                report(f"building engine {what}: {phase} {done}/{total}…")
            except Exception:  # a broken status display must never cancel a build that takes minutes
                log.debug("build progress report failed", exc_info=True)

    return BuildProgress()


# -- backend -----------------------------------------------------------------------------------------------------------


class TensorRTBackend(Backend):
    name = "tensorrt"
    precisions = ("fp32", "fp16", "int8")

    def __init__(self, *, engine_cache: str | Path | None = None, dla_core: int | None = None,
                 calibration: str | Path | None = None, rebuild: bool = False, workspace_bytes: int | None = None,
                 on_status: Callable[[str], None] | None = None, platform: str | None = None,
                 precision_method: str = "auto", converted_cache: str | Path | None = None,
                 tensor_cache: str | Path | None = None) -> None:
        """``engine_cache``: directory of built engines (None: build every time, keep nothing); ``dla_core``: build
        for that DLA core with GPU fallback; ``calibration``: image folder for int8 (None: random data, results
        labelled timing only); ``rebuild``: ignore cached engines (rebuilt once each); ``workspace_bytes``: builder
        workspace limit; ``on_status``: receives progress texts (those ending in "…" are superseded by the next);
        ``platform``: the L4T / JetPack release, part of the cache key; ``precision_method``: how fp16 and int8 are
        made, one of ``PRECISION_METHODS`` (auto: builder_flags where TensorRT has the flags, else onnx_converted);
        ``converted_cache``: where converted models are kept, ``tensor_cache`` decoded calibration images (None:
        ``images.user_cache``, ~/.cache/dnnprof/converted and tensors, shared with onnxruntime)."""
        from dnnprof.agent.models import images

        self._trt, self._cuda = import_modules()
        trt, cuda = self._trt, self._cuda
        if _version_tuple(trt.__version__) < MIN_VERSION:
            raise UserError(f"TensorRT {trt.__version__} is too old: dnnprof needs TensorRT 8.5 or newer "
                            "(JetPack 5 or later) for its name-based tensor API")
        self._major = _version_tuple(trt.__version__)[0]
        self.precision_route = self._route(precision_method)  # fp16 and int8: builder_flags or onnx_converted
        if workspace_bytes is not None and workspace_bytes <= 0:
            raise UserError(f"the builder workspace must be above 0 bytes, not {workspace_bytes}")
        self.workspace_bytes = workspace_bytes or DEFAULT_WORKSPACE_BYTES
        self.rebuild = rebuild
        self.platform = platform
        self._on_status = on_status
        self._cancel = threading.Event()  # set by cancel(): the build in progress stops at its next step
        self._rebuilt: set[str] = set()  # with rebuild: keys already rebuilt by this backend, reused afterwards
        self._last_progress = 0.0
        self.cache = EngineCache(engine_cache) if engine_cache is not None else None
        self.converted_cache = converted_cache
        self.tensor_cache = tensor_cache
        self.conversions: dict[tuple, object] = {}  # (model sha256, precision, pipeline) -> convert.Converted
        self.calibration_set = None if calibration is None else images.unlabelled(Path(calibration).expanduser())
        if self.calibration_set is not None:
            try:
                import PIL  # noqa: F401
            except ImportError:
                raise UserError("int8 calibration from images needs Pillow: pip install pillow "
                                "(or pip install '.[jetson]' in the dnnprof checkout)") from None
        try:
            cuda.init()
            devices = cuda.Device.count()
            device = cuda.Device(0) if devices else None
            gpu = None if device is None else "{} (sm_{}{})".format(device.name(), *device.compute_capability())
        except cuda.Error as exc:
            raise UserError(f"CUDA is not usable here ({exc}): check the NVIDIA driver, and that this user is in "
                            "the video and render groups") from None
        if device is None:
            raise UserError("no CUDA device found: the tensorrt backend needs an NVIDIA GPU")
        self.gpu = gpu
        self._ctx = primary_context(cuda)
        self._logger = _logger(trt)
        self.dla_core = dla_core
        if dla_core is not None:
            self._check_dla(dla_core)
            self.precisions = ("fp16", "int8")  # DLA has no fp32
        self.device = "gpu" if dla_core is None else f"dla{dla_core}"

    @property
    def version(self) -> str:
        return self._trt.__version__

    @property
    def calibration_sha256(self) -> str | None:
        """The int8 calibration image set's content hash (names and contents), as the engine cache and the service's
        ledger key int8 points; None when int8 is calibrated on random data."""
        return None if self.calibration_set is None else self.calibration_set.sha256

    def precision_method(self, precision: str) -> str:
        """How this backend makes ``precision`` (``schema.PRECISION_METHODS``), as its runners will record it."""
        return "as_exported" if precision == "fp32" else self.precision_route

    def _route(self, asked: str) -> str:
        """The route fp16 and int8 take on this TensorRT: ``builder_flags`` or ``onnx_converted``."""
        trt, version = self._trt, self._trt.__version__
        method = str(asked or "auto").strip().lower()
        if method not in PRECISION_METHODS:
            raise UserError(f"precision method {asked!r} is not one of {', '.join(PRECISION_METHODS)}")
        has_flags = all(hasattr(trt.BuilderFlag, flag) for flag in ("FP16", "INT8"))
        if method == "auto":
            return "builder_flags" if has_flags else "onnx_converted"
        if method == "builder_flags" and not has_flags:
            raise UserError(f"TensorRT {version} has no FP16 / INT8 builder flags (from TensorRT 11 every network is "
                            "strongly typed): use --precision-method onnx_converted (or auto) for fp16 and int8")
        if method == "onnx_converted" and not hasattr(trt.NetworkDefinitionCreationFlag, "STRONGLY_TYPED"):
            raise UserError(f"TensorRT {version} cannot build strongly typed networks, which the converted ONNX "
                            "models need (TensorRT 10.0 and newer can): use --precision-method builder_flags "
                            "(or auto) on this TensorRT")
        return method

    def cancel(self) -> None:
        """Stop the build in progress (on another thread) at its next step: TensorRT ≥ 10, through the progress
        monitor; on 8.x the build runs to its end."""
        self._cancel.set()

    def _status(self, text: str) -> None:
        log.info("%s", text)
        if self._on_status is not None:
            self._on_status(text)

    def _check_dla(self, core: int) -> None:
        # UNVERIFIED on hardware: num_DLA_cores is 2 on Xavier / AGX Orin / Orin NX and 0 on Nano and Orin Nano
        # (reference §4.2); the builder reports it, nothing here assumes a board.
        with current(self._cuda, self._ctx):
            cores = self._trt.Builder(self._logger).num_DLA_cores
        if cores == 0:
            raise UserError("this board has no DLA: leave out --dla-core (Jetson Nano and Orin Nano have none)")
        if not 0 <= core < cores:
            raise UserError(f"DLA core {core} does not exist: this board has {cores} DLA cores, "
                            f"0 to {cores - 1}")

    def converted(self, model: ModelFile, precision: str):
        """``model`` converted to ``precision`` (fp16, int8) by ``agent/models/convert.py``, once per process (and
        cached on disk, where onnxruntime finds the same conversion)."""
        from dnnprof.agent.models import convert

        key = (model.sha256, precision, model.pipeline().key())
        if key not in self.conversions:
            self.conversions[key] = convert.convert(model, precision, calibration=self.calibration_set,
                                                    cache=self.converted_cache, tensor_cache=self.tensor_cache,
                                                    on_status=self._status)
        return self.conversions[key]

    # -- prepare ---------------------------------------------------------------------------------------------------

    def prepare(self, model: ModelFile, batch: int, precision: str, *, seed: int = 0) -> Runner:
        if precision not in self.precisions:
            if self.dla_core is not None and precision == "fp32":
                raise UserError(f"the DLA runs fp16 and int8 only, not fp32: use --precision fp16 or int8 with "
                                f"--dla-core {self.dla_core}, or leave out --dla-core to run fp32 on the GPU")
            raise UserError(f"tensorrt runs {', '.join(self.precisions)}, not {precision!r}")
        model.check_batch(batch)
        route = self.precision_method(precision)
        converted = self.converted(model, precision) if route == "onnx_converted" else None
        calibration = source_sha = pipeline = None
        if precision == "int8":
            if converted is not None:  # the scales are in the converted file (its hash is in the key)
                calibration, source_sha = ("random", None) if converted.timing_only else \
                    ("images", converted.calibration_sha256)
            elif self.calibration_set is not None:
                calibration, source_sha = "images", self.calibration_set.sha256
                pipeline = model.pipeline().key()
            else:
                calibration = "random"
        key = EngineKey(model_sha256=model.sha256, batch=batch, precision=precision, device=self.device,
                        tensorrt=self.version, platform=self.platform, gpu=self.gpu,
                        workspace_bytes=self.workspace_bytes, calibration=calibration, calibration_sha256=source_sha,
                        precision_method=route, converted_sha256=None if converted is None else converted.model.sha256,
                        preprocessing=pipeline)
        what = f"{model.name} b{batch} {precision}" + (f" on {self.device}" if self.dla_core is not None else "") + \
            (" from the converted ONNX" if converted is not None else "")
        source = model if converted is None else converted.model
        with current(self._cuda, self._ctx):
            runtime, engine, plan_bytes = self._engine(model, source, batch, precision, route, key, what)
            self._logger.take_errors()
            try:
                runner = TensorRTRunner(self._trt, self._cuda, self._ctx, runtime, engine, batch, model.input_shape,
                                        seed=seed, device=self.device, what=what, plan_bytes=plan_bytes)
            except UserError as exc:
                # TensorRT says why in its log (e.g. "Error Code 2: OutOfMemory"), not in the None it returns.
                errors = self._logger.take_errors()
                raise UserError(f"{exc}{': ' + errors[-1] if errors else ''}") from None
        runner.precision_method = route
        if converted is not None:
            runner.converted_sha256 = converted.model.sha256
            runner.calibration, runner.timing_only = converted.calibration, converted.timing_only
        elif precision == "int8":
            if self.calibration_set is not None:
                runner.calibration = f"images:{self.calibration_set.root} ({len(self.calibration_set)} images)"
            else:
                runner.calibration = "random"
                runner.timing_only = True  # scales from random data: the outputs mean nothing, the timing does
        return runner

    def _engine(self, model: ModelFile, source: ModelFile, batch: int, precision: str, route: str, key: EngineKey,
                what: str):
        """(runtime, engine, size of its serialized plan) for ``key``: from the cache when a good entry is there, else
        built from ``source`` (the exported model, or its conversion) and cached."""
        reason = "no engine cache"
        plan = None
        if self.cache is not None:
            if self.rebuild and key.digest not in self._rebuilt:
                reason = "rebuild requested"
            else:
                found = self.cache.load(key)
                plan = found.plan
                reason = "cache miss" if found.reason == "miss" else f"cached entry unusable: {found.reason}"
        runtime = self._runtime()
        if plan is not None:
            engine = self._deserialize(runtime, plan)
            if engine is not None:
                self._status(f"loaded engine {what} from cache")
                return runtime, engine, len(plan)
            self.cache.discard(key)
            reason = "cached engine did not load in this TensorRT; rebuilding"
        plan, build_s = self._build(model, source, batch, precision, route, what, reason)
        saved = ""
        if self.cache is not None:
            try:
                self.cache.store(key, plan, build_s=build_s, model=model.name)
                self._rebuilt.add(key.digest)
                saved = ", saved to the engine cache"
            except OSError as exc:
                saved = f"; NOT cached ({exc.strerror or exc}): the next run builds it again"
        engine = self._deserialize(runtime, plan)
        if engine is None:
            errors = self._logger.take_errors()
            raise UserError(f"TensorRT built an engine for {what} but cannot load it"
                            f"{': ' + errors[-1] if errors else ''}")
        self._status(f"built engine {what} in {build_s:.1f} s{saved}")
        return runtime, engine, len(plan)

    def _runtime(self):
        runtime = self._trt.Runtime(self._logger)
        if self.dla_core is not None:
            runtime.DLA_core = self.dla_core  # before deserializing: the engine runs on the runtime's DLA core
        return runtime

    def _deserialize(self, runtime, plan: bytes):
        # UNVERIFIED on hardware: deserialize_cuda_engine returns None (and logs) for a plan of another version or
        # a damaged one, as documented; a plan from another board with the same key is not expected (key has GPU).
        self._logger.take_errors()
        try:
            return runtime.deserialize_cuda_engine(plan)
        except RuntimeError as exc:  # None is the documented failure; be safe with a raising version too
            log.warning("TensorRT could not deserialize an engine: %s", exc)
            return None

    # -- build -----------------------------------------------------------------------------------------------------

    def _network_flags(self, route: str) -> int:
        trt = self._trt
        if self._major < 10:
            # 8.x: networks are implicit-batch unless asked, and the ONNX parser refuses those.
            return 1 << int(trt.NetworkDefinitionCreationFlag.EXPLICIT_BATCH)
        if route == "onnx_converted" and self._major < 11:
            # 10.x: the converted file's own types decide every tensor's precision (no precision flags allowed).
            return 1 << int(trt.NetworkDefinitionCreationFlag.STRONGLY_TYPED)
        # 10.x: always explicit batch (EXPLICIT_BATCH is deprecated and ignored, so not passed). 11.x: every
        # network is strongly typed (STRONGLY_TYPED, value 0, is ignored), so none is passed.
        return 0

    def _build(self, model: ModelFile, source: ModelFile, batch: int, precision: str, route: str, what: str,
               reason: str) -> tuple[bytes, float]:
        # UNVERIFIED on hardware: the whole build path (create_network flags, OnnxParser.parse_from_file,
        # set_memory_pool_limit, the fixed profile, BuilderFlag, build_serialized_network returning an IHostMemory or
        # None) follows the recorded API of TensorRT 8.6, 10.x and 11.x and NVIDIA's sources; run only on the fakes.
        # That TensorRT 10 and 11 build the converted files (fp16 tensors with fp32 I/O; symmetric int8 Q/DQ) as
        # strongly typed networks is documented, and not run here either.
        trt = self._trt
        self._status(f"building engine {what} ({reason})…")
        self._logger.take_errors()
        builder = trt.Builder(self._logger)
        network = builder.create_network(self._network_flags(route))
        parser = trt.OnnxParser(network, self._logger)
        if not parser.parse_from_file(str(source.path)):
            # Each ParserError in the installed version's words (pyOnnx.cpp __str__): 8.x "In node N (func): CODE:
            # desc", stopping at the first failing node; 10.x and 11.x "In node N with name: NAME and operator: OP
            # (func): CODE: desc", one per failing node (so a model can have many: three are shown). A file that is
            # no ONNX model gives no ParserError, only a log line.
            errors = [" ".join(str(parser.get_error(i)).split()) for i in range(parser.num_errors)]
            errors = errors or self._logger.take_errors() or ["no details"]
            more = f"; and {len(errors) - 3} more" if len(errors) > 3 else ""
            raise UserError(f"TensorRT cannot parse {source.path}: {'; '.join(errors[:3])}{more}")
        config = builder.create_builder_config()
        config.set_memory_pool_limit(trt.MemoryPoolType.WORKSPACE, self.workspace_bytes)
        profile = self._profile(builder, network, model, batch)
        if profile is not None:
            config.add_optimization_profile(profile)
        calibrator = None
        if route == "builder_flags":
            self._require_fast(builder, precision)
            config.set_flag(trt.BuilderFlag.FP16 if precision == "fp16" else trt.BuilderFlag.INT8)
            if precision == "int8":
                calibrator = self._make_calibrator(model, batch)
                with warnings.catch_warnings():
                    # 10.1+: the calibrator API warns that it is deprecated (in favour of explicit quantization:
                    # the onnx_converted route); known, and nothing the user can act on.
                    warnings.simplefilter("ignore", DeprecationWarning)
                    config.int8_calibrator = calibrator
                    if profile is not None:
                        # With a dynamic input, calibration runs at the calibration profile's shapes (our batch).
                        config.set_calibration_profile(profile)
        if self.dla_core is not None:
            # UNVERIFIED on hardware: DLA build path (default device DLA, core N, GPU fallback for unsupported
            # layers) as documented in TRT 8.5 and 10.3 pyCoreDoc.h; never run on a DLA here. With the converted
            # route the DLA runs the network's own fp16 / int8 tensors (no flag), which is not tried anywhere.
            config.default_device_type = trt.DeviceType.DLA
            config.DLA_core = self.dla_core
            config.set_flag(trt.BuilderFlag.GPU_FALLBACK)
        timing_path = self._attach_timing_cache(config)
        monitor = None
        self._cancel.clear()
        if hasattr(trt, "IProgressMonitor"):  # TensorRT >= 10.0: progress, and a way to stop the build
            monitor = _progress_monitor(trt, self._status, what, self._cancel)
            config.progress_monitor = monitor
        start = time.monotonic()
        try:
            serialized = builder.build_serialized_network(network, config)
        finally:
            if calibrator is not None:
                calibrator.free()
        build_s = time.monotonic() - start
        if monitor is not None and monitor.interrupted:
            raise KeyboardInterrupt
        if self._cancel.is_set() and serialized is None:
            raise PointError("timeout", f"the build of {what} was stopped after {build_s:.0f} s: the point was given "
                                        "up (its build ran over the limit, or the sweep was interrupted)")
        if calibrator is not None and calibrator.error is not None:
            raise calibrator.error
        if serialized is None:
            errors = self._logger.take_errors()
            detail = "; ".join(errors[-3:]) if errors else "TensorRT gave no reason"
            raise UserError(f"TensorRT could not build an engine for {what}: {detail}")
        if timing_path is not None:
            self._save_timing_cache(config, timing_path)
        return memoryview(serialized).tobytes(), build_s

    def _profile(self, builder, network, model: ModelFile, batch: int):
        """A profile with min = opt = max = (batch, *input_shape) when the input's batch is dynamic, else None."""
        if network.num_inputs != 1:
            raise UserError(f"TensorRT sees {network.num_inputs} inputs in {model.path}; dnnprof profiles "
                            "image classifiers with one input")
        tensor = network.get_input(0)
        dims = tuple(tensor.shape)
        if all(d >= 0 for d in dims):
            return None  # fixed shape (model.check_batch made sure it is this batch)
        shape = (batch, *model.input_shape)
        profile = builder.create_optimization_profile()
        profile.set_shape(tensor.name, shape, shape, shape)
        return profile

    def _require_fast(self, builder, precision: str) -> None:
        trt = self._trt
        flag = precision.upper()
        if not hasattr(trt.BuilderFlag, flag):  # _route keeps builder_flags off TensorRT 11; kept as a guard
            raise UserError(f"TensorRT {self.version} has no {flag} builder flag (strongly typed networks only): "
                            f"use --precision-method onnx_converted for {precision}")
        if self.dla_core is not None:
            return  # the DLA runs fp16 and int8 natively; the platform_has_fast_* flags describe the GPU
        # platform_has_fast_fp16/int8: TensorRT 8.x and 10.x (deprecated in the C++ API since 10.5, gone in 11).
        # UNVERIFIED on hardware: that it is False on Maxwell/Pascal-class GPUs and True on Jetson Xavier/Orin.
        fast = getattr(builder, f"platform_has_fast_{precision}", None)
        if fast is False:
            raise UserError(f"this GPU ({self.gpu}) has no fast {precision}: TensorRT would run it no faster than "
                            f"fp32; leave {precision} out of --precision")

    def _make_calibrator(self, model: ModelFile, batch: int):
        """The entropy calibrator of the builder-flag route, fed the calibration set's images through the model's
        own pipeline (decoded once into the tensor cache, as the accuracy pass reads them), or random data."""
        import numpy as np

        shape = tuple(model.input_shape)
        if self.calibration_set is not None:
            from dnnprof.agent.models import images

            prep = model.pipeline()
            prep.check_shape(shape, f"{model.name}: calibrating int8 on {self.calibration_set.root}")
            found = images.tensors(self.calibration_set, prep, shape, cache=self.tensor_cache,
                                   on_progress=self._decoding)
            batches = (chunk for chunk, _ in found.batches(batch))
            source, source_sha, pipeline = "images", self.calibration_set.sha256, prep.key()
        else:
            batches, source, source_sha, pipeline = random_batches(batch, shape), "random", None, None
        table = None
        if self.cache is not None:
            table = self.cache.calibration_path(model.sha256, source, source_sha, self.version, pipeline=pipeline)
        nbytes = int(np.prod((batch, *shape))) * np.dtype(np.float32).itemsize
        return calibrator(self._trt, self._cuda, self._ctx, batches, batch, nbytes, table, reuse=not self.rebuild)

    def _decoding(self, done: int, total: int) -> None:
        now = time.monotonic()
        if done == total or now - self._last_progress >= PROGRESS_EVERY_S:
            self._last_progress = now
            self._status(f"decoding calibration images {done}/{total}…")

    def _attach_timing_cache(self, config) -> Path | None:
        """Load the saved timing cache into ``config``; a mismatched or corrupt one is replaced by an empty one."""
        if self.cache is None:
            return None
        path = self.cache.timing_cache_path(self.version, self.gpu, self.platform)
        data = EngineCache.read_bytes(path)
        # UNVERIFIED on hardware: that a foreign or damaged cache gives None from create_timing_cache or False from
        # set_timing_cache (10.3 pyCoreDoc.h); an exception is treated the same way.
        if data:
            try:
                cache = config.create_timing_cache(data)
                if cache is not None and config.set_timing_cache(cache, ignore_mismatch=False):
                    return path
            except (RuntimeError, TypeError, ValueError) as exc:  # documented failures are None / False
                log.debug("timing cache rejected: %s", exc)
            self._logger.take_errors()
            self._status(f"timing cache {path.name} does not fit this GPU and TensorRT (or is damaged): "
                         "starting from an empty one")
        config.set_timing_cache(config.create_timing_cache(b""), ignore_mismatch=False)
        return path

    def _save_timing_cache(self, config, path: Path) -> None:
        cache = config.get_timing_cache()
        if cache is None:
            return
        try:
            EngineCache.write_bytes(path, memoryview(cache.serialize()).tobytes())
        except OSError as exc:
            self._status(f"could not save the timing cache {path}: {exc.strerror or exc}")

