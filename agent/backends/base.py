"""The inference-backend protocol: prepare a model at one fixed batch size, then run batches back to back."""

from __future__ import annotations

from abc import ABC, abstractmethod
from dataclasses import dataclass
from typing import ClassVar

from dnnprof.shared.errors import UserError
from dnnprof.shared.onnxfile import ModelFile


# How a backend may be asked to make fp16 and int8 (TensorRT's choice; schema.PRECISION_METHODS says what was used).
PRECISION_CHOICES = ("auto", "builder_flags", "onnx_converted")


class PointError(UserError):
    """A point that cannot be measured, where the backend knows why: ``kind`` is one of ``schema.FAILURE_KINDS``
    (``out_of_memory``, ``build_failed``, ``unsupported``, ``invalid_output``, ``timeout``, ``runtime_error``)."""

    def __init__(self, kind: str, message: str) -> None:
        super().__init__(message)
        self.kind = kind


@dataclass(frozen=True)
class DeviceTimes:
    """One batch on an accelerator, milliseconds, from device events (trtexec's H2D / compute / D2H split)."""

    compute_ms: float
    h2d_ms: float | None = None
    d2h_ms: float | None = None


class Runner(ABC):
    """A model prepared for one batch size, with its (seeded random) input already in place."""

    threads: int | None = None  # CPU threads the backend uses, where it has that knob
    device: str = "cpu"
    sync_mode: str = "synchronous"  # how the host waits for a batch: "synchronous", "blocking", "spin"
    memory_bytes: int | None = None  # the backend's own footprint figure (engine device memory), where it has one
    # An accelerator's device memory, each part named (TensorRT): the engine (weights and kernels), the context's
    # activations and scratch, the I/O buffers. None where the backend does not know them.
    engine_bytes: int | None = None
    activations_bytes: int | None = None
    io_bytes: int | None = None
    calibration: str | None = None  # int8: what the engine was calibrated on ("random" or "images:...")
    timing_only: bool = False  # True when the engine's outputs mean nothing (int8 calibrated on random data)
    precision_method: str = "as_exported"  # schema.PRECISION_METHODS: how the precision was made
    converted_sha256: str | None = None  # onnx_converted: the content of the converted file that runs

    @abstractmethod
    def infer(self) -> DeviceTimes | None:
        """Run one batch and return only when its outputs are complete; accelerators return device times."""

    @property
    @abstractmethod
    def outputs(self) -> dict:
        """Output name -> array of the last batch's outputs on the host (checked for NaN and infinity)."""

    def feed(self, data) -> None:
        """Put ``data`` (float32, the prepared batch's shape) in place of the random input, for the next ``infer``
        (the accuracy pass runs real images through the engine that was timed)."""
        raise PointError("unsupported", f"{type(self).__name__} cannot run real inputs, so its accuracy cannot be "
                                        "measured")

    def predict(self, data):
        """The first output of one batch of real inputs, as a (batch, classes) float32 array."""
        import numpy as np

        self.feed(data)
        self.infer()
        first = next(iter(self.outputs.values()))
        return np.asarray(first, dtype=np.float32).reshape(len(data), -1)

    def close(self) -> None:  # noqa: B027 - optional
        """Free the model's memory."""


class Backend(ABC):
    name: ClassVar[str]
    precisions: ClassVar[tuple[str, ...]]
    device: str = "cpu"  # where its runners run, as results name it: "cpu", "gpu", "dla0"

    @property
    @abstractmethod
    def version(self) -> str:
        """Version of the underlying inference library."""

    @abstractmethod
    def prepare(self, model: ModelFile, batch: int, precision: str, *, seed: int = 0) -> Runner:
        """Load ``model`` for ``batch`` images at ``precision``; raise UserError for what cannot run."""

    def precision_method(self, precision: str) -> str:
        """How this backend makes ``precision`` (``schema.PRECISION_METHODS``), known before any point is prepared
        (the service's ledger keys points by it): the file's own fp32, else builder flags unless overridden."""
        return "as_exported" if precision == "fp32" else "builder_flags"

    def cancel(self) -> None:  # noqa: B027 - optional
        """Ask a ``prepare`` running on another thread to stop where the library allows it (a TensorRT ≥ 10 build,
        at its next step); a no-op elsewhere. Called from the thread that gave the point up."""
