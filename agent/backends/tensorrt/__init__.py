"""TensorRT on an NVIDIA GPU or a Jetson DLA: ONNX → engine (cached on disk) → batches timed with CUDA events.

- ``build``: ``TensorRTBackend`` — parse, configure (precision by builder flags or a converted, strongly typed
  model; DLA, workspace, fixed-batch profile, timing cache), build or load from the engine cache, hand out runners;
- ``calibration``: the builder-flag route's int8 calibrator, fed image batches or random data (timing only);
- ``runner``: ``TensorRTRunner`` — buffers, ``execute_async_v3`` on a stream, CUDA-event timing, real inputs fed;
- ``cuda``: importing tensorrt and pycuda, and the primary CUDA context every call runs in.
"""

from .build import DEFAULT_WORKSPACE_BYTES, MIN_VERSION, PRECISION_METHODS, TensorRTBackend
from .calibration import RANDOM_CALIBRATION_IMAGES
from .cuda import current, import_modules, primary_context
from .runner import TensorRTRunner

__all__ = ["TensorRTBackend", "TensorRTRunner", "DEFAULT_WORKSPACE_BYTES", "MIN_VERSION", "PRECISION_METHODS",
           "RANDOM_CALIBRATION_IMAGES", "current", "import_modules", "primary_context"]
