"""A sweep: every (model, batch) point measured in turn, each result sent as soon as it exists."""

from __future__ import annotations

import time
import uuid
from collections.abc import Callable
from dataclasses import dataclass

from dnnprof.agent import profiler
from dnnprof.agent.backends import Backend
from dnnprof.agent.link import Sink
from dnnprof.agent.models.onnxfile import ModelFile
from dnnprof.agent.power import PowerSource
from dnnprof.agent.power.sampler import Sampler
from dnnprof.shared import schema


@dataclass
class Sweep:
    board: str
    run_id: str
    models: list[ModelFile]
    batches: list[int]
    backend: Backend
    power: PowerSource | None
    settings: profiler.Settings
    precision: str = "fp32"
    seed: int = 0

    def __post_init__(self) -> None:
        # Fail before any profiling time is spent.
        for model in self.models:
            for batch in self.batches:
                model.check_batch(batch)

    @property
    def points(self) -> int:
        return len(self.models) * len(self.batches)

    def _event(self, seq: int, event: str, done: int, **extra) -> schema.RunEvent:
        return schema.RunEvent(board=self.board, ts=time.time(), run_id=self.run_id, seq=seq, event=event,
                               points_total=self.points, points_done=done, **extra)

    def run(self, sink: Sink, on_point: Callable[[schema.Result], None] | None = None) -> list[schema.Result]:
        """Measure every point, sending run events and results to ``sink``; returns the results."""
        seq = 0
        sink.send(self._event(seq, "started", 0))
        results: list[schema.Result] = []
        current = (None, None)
        try:
            for model in self.models:
                for batch in self.batches:
                    current = (model.name, batch)
                    result = self.measure(model, batch)
                    sink.send(result)
                    results.append(result)
                    seq += 1
                    sink.send(self._event(seq, "progress", len(results), network=model.name, batch=batch))
                    if on_point:
                        on_point(result)
        except BaseException as exc:
            why = "interrupted" if isinstance(exc, KeyboardInterrupt) else f"{exc.__class__.__name__}: {exc}"
            sink.send(self._event(seq + 1, "failed", len(results), network=current[0], batch=current[1],
                                  message=why))
            raise
        sink.send(self._event(seq + 1, "finished", len(results)))
        return results

    def measure(self, model: ModelFile, batch: int) -> schema.Result:
        runner = self.backend.prepare(model, batch, self.precision, seed=self.seed)
        try:
            if self.power is None:
                m = profiler.measure(runner, batch, self.settings)
                rate = None
            else:
                with Sampler(self.power) as sampler:
                    m = profiler.measure(runner, batch, self.settings, sampler)
                rate = m.energy.rate_hz
        finally:
            runner.close()
        source = self.power
        return schema.Result(
            id=uuid.uuid4().hex,
            board=self.board,
            ts=time.time(),
            run_id=self.run_id,
            network=model.name,
            model_sha256=model.sha256,
            input_shape=list(model.input_shape),
            backend=self.backend.name,
            backend_version=self.backend.version,
            device=runner.device,
            precision=self.precision,
            batch=batch,
            threads=runner.threads,
            warmup_s=m.warmup_s,
            warmup_iterations=m.warmup_iterations,
            window_s=m.window_s,
            iterations=len(m.latencies_s),
            images=m.images,
            latency_ms=m.latency_ms(),
            throughput_ips=m.throughput_ips,
            power_w=m.power_w,
            energy_j=None if m.energy is None else m.energy.energy_j,
            energy_per_inference_j=(
                None if m.energy_per_image_j is None else schema.EnergyPerInference(gross=m.energy_per_image_j)
            ),
            provenance=schema.Provenance(
                power_source=source.name if source else None,
                boundary=source.boundary if source else None,
                estimated=bool(source and source.estimated),
                sample_rate_hz=rate,
                samples=m.energy.samples if m.energy else 0,
                rails=list(source.rails) if source else [],
                method=source.method if source else "no power source: energy not measured",
            ),
        )


def new_run_id() -> str:
    return time.strftime("%Y%m%d-%H%M%S-") + uuid.uuid4().hex[:6]
