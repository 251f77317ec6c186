"""TensorRT on an NVIDIA GPU or a Jetson DLA: ONNX → engine (cached on disk) → batches timed with CUDA events.

- ``build``: ``TensorRTBackend`` — parse, configure (precision flags, DLA, workspace, fixed-batch profile, timing
  cache), build or load from the engine cache, hand out runners;
- ``calibration``: int8 calibration data (images or random, timing only) and the entropy calibrator;
- ``runner``: ``TensorRTRunner`` — buffers, ``execute_async_v3`` on a stream, CUDA-event timing;
- ``cuda``: importing tensorrt and pycuda, and the primary CUDA context every call runs in.
"""

from .build import DEFAULT_WORKSPACE_BYTES, MIN_VERSION, TensorRTBackend
from .calibration import IMAGENET_MEAN, IMAGENET_STD, RANDOM_CALIBRATION_IMAGES, find_images, image_batches
from .cuda import current, import_modules, primary_context
from .runner import TensorRTRunner

__all__ = ["TensorRTBackend", "TensorRTRunner", "DEFAULT_WORKSPACE_BYTES", "MIN_VERSION", "IMAGENET_MEAN",
           "IMAGENET_STD", "RANDOM_CALIBRATION_IMAGES", "find_images", "image_batches", "current", "import_modules",
           "primary_context"]
