"""Extract, from the recorded API of the real TensorRT Python bindings, the facts the fake's conformance test needs.

    python tests/data/tensorrt-api/extract.py [SOURCE]

SOURCE (default: ``../shared/reference/tensorrt-api`` next to the checkout) holds one ``tensorrt-<version>.json`` per
release, read by introspection of NVIDIA's binding wheels (see README.md here). For each, this writes the file of the
same name here, with:

- ``tensorrt_version``, ``module`` (every module-level name that is not a class, and its type) and ``class_names``
  (every class the real module has), all kept whole;
- ``classes``: the entries of the classes in ``CLASSES`` (the ones the fake models, or could be asked to model),
  copied as they are recorded: ``bases``, ``enum`` (each member's value), and ``members`` (kind, ``settable``, pybind's
  signature lines, verbatim).

Nothing else is changed, so a run on the same SOURCE always writes the same bytes (keys sorted, one-space indent).
tests/agent/backends/tensorrt/test_fake_api.py checks the committed files against SOURCE where it is present.
"""

from __future__ import annotations

import json
import sys
from pathlib import Path

HERE = Path(__file__).resolve().parent
DEFAULT_SOURCE = HERE.parents[2].parent / "shared" / "reference" / "tensorrt-api"
# The classes the fake tensorrt (tests/fakes/fake_tensorrt.py) defines, and the calibrator and progress-monitor
# interfaces the backend subclasses. A class the fake adds must be added here (the test says so).
CLASSES = (
    "Builder", "BuilderFlag", "DataType", "DeviceType", "ErrorCode", "IBuilderConfig", "ICudaEngine",
    "IExecutionContext", "IHostMemory", "IInt8Calibrator", "IInt8EntropyCalibrator2", "ILogger", "INetworkDefinition",
    "IOptimizationProfile", "IProgressMonitor", "ITensor", "ITimingCache", "Logger", "MemoryPoolType",
    "NetworkDefinitionCreationFlag", "OnnxParser", "ParserError", "Runtime", "TensorIOMode",
)


def extract(recorded: dict) -> dict:
    classes = recorded["classes"]
    return {
        "tensorrt_version": recorded["tensorrt_version"],
        "module": recorded["module"],
        "class_names": sorted(classes),
        "classes": {name: classes[name] for name in CLASSES if name in classes},
    }


def render(data: dict) -> str:
    return json.dumps(data, indent=1, sort_keys=True, ensure_ascii=False) + "\n"


def main(argv: list[str]) -> int:
    source = Path(argv[1]) if len(argv) > 1 else DEFAULT_SOURCE
    files = sorted(source.glob("tensorrt-*.json"))
    if not files:
        print(f"no tensorrt-*.json in {source}", file=sys.stderr)
        return 1
    for path in files:
        (HERE / path.name).write_text(render(extract(json.loads(path.read_text()))), encoding="utf-8")
        print(f"{path.name}: extracted")
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv))
