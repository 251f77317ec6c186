"""A sweep: every (model, batch) point measured in turn, each result sent as soon as it exists."""

from __future__ import annotations

import logging
import time
import uuid
from collections.abc import Callable
from dataclasses import dataclass, field

import msgspec

from dnnprof.agent.backends import Backend
from dnnprof.agent.board import clocks, conditions
from dnnprof.agent.board import facts as board_facts
from dnnprof.agent.measure import profiler
from dnnprof.agent.measure.sampler import Sampler, clock
from dnnprof.agent.measure.sink import Sink
from dnnprof.shared.onnxfile import ModelFile
from dnnprof.agent.power import NO_POWER, PowerSource
from dnnprof.shared import schema
from dnnprof.shared.errors import UserError

log = logging.getLogger(__name__)


@dataclass
class Sweep:
    board: str
    run_id: str
    models: list[ModelFile]
    batches: list[int]
    backend: Backend
    power: PowerSource | None  # None or NO_POWER: no energy (said in every result), never 0
    settings: profiler.Settings
    precisions: list[str] = field(default_factory=lambda: ["fp32"])
    seed: int = 0
    root: str = "/"  # filesystem root the condition readers look under
    # Called before each point with (model, batch, precision): a reason to skip it (already measured), or None.
    skip: Callable[[ModelFile, int, str], str | None] | None = None
    _idle_cache: profiler.Idle | None = field(default=None, init=False, repr=False)
    _costs: dict[str, schema.ModelCost | None] = field(default_factory=dict, init=False, repr=False)
    _facts: tuple[schema.BoardFacts | None] | None = field(default=None, init=False, repr=False)  # (facts,) once read

    def __post_init__(self) -> None:
        if self.power is None:
            self.power = NO_POWER
        # Fail before any profiling time is spent.
        for model in self.models:
            for batch in self.batches:
                model.check_batch(batch)

    @property
    def points(self) -> int:
        return len(self.models) * len(self.batches) * len(self.precisions)

    def _event(self, seq: int, event: str, done: int, **extra) -> schema.RunEvent:
        extra.setdefault("precision", self.precisions[0] if len(self.precisions) == 1 else None)
        return schema.RunEvent(board=self.board, ts=time.time(), run_id=self.run_id, seq=seq, event=event,
                               points_total=self.points, points_done=done, **extra)

    def plan(self) -> list[tuple[ModelFile, int, str]]:
        """Every point in the order it is measured: per precision (an engine build each), model, batch."""
        return [(m, b, p) for p in self.precisions for m in self.models for b in self.batches]

    def run(self, sink: Sink, on_point: Callable[[schema.Result], None] | None = None,
            on_skip: Callable[[ModelFile, int, str, str], None] | None = None) -> list[schema.Result]:
        """Measure every point, sending run events and results to ``sink``; returns the results.

        Progress events carry ``eta_s``: the seconds left if each remaining point takes the average time of the
        finished ones (idle baselines and model loading included).
        """
        seq = 0
        start = clock()
        sink.send(self._event(seq, "started", 0))
        results: list[schema.Result] = []
        done = measured = 0
        current: tuple[str | None, int | None, str | None] = (None, None, None)
        try:
            for model, batch, precision in self.plan():
                current = (model.name, batch, precision)
                reason = self.skip(model, batch, precision) if self.skip else None
                result = None if reason else self.measure(model, batch, precision)
                done += 1
                seq += 1
                if result is not None:
                    sink.send(result)
                    results.append(result)
                    measured += 1
                # Skipped points take no time, so the time left is paced on the measured ones only.
                eta = (clock() - start) / measured * (self.points - done) if measured else None
                sink.send(self._event(seq, "progress", done, network=model.name, batch=batch, precision=precision,
                                      eta_s=eta, message=f"skipped: {reason}" if reason else None))
                if on_point and result is not None:
                    on_point(result)
                if reason and on_skip:
                    on_skip(model, batch, precision, reason)
        except BaseException as exc:
            stopped = isinstance(exc, (KeyboardInterrupt, Interrupted))
            why = (str(exc) or "interrupted") if stopped else f"{exc.__class__.__name__}: {exc}"
            sink.send(self._event(seq + 1, "aborted" if stopped else "failed", done, network=current[0],
                                  batch=current[1], precision=current[2], message=why))
            raise
        sink.send(self._event(seq + 1, "finished", done, eta_s=0.0))
        return results

    def board_facts(self) -> schema.BoardFacts | None:
        """The Jetson's facts under ``root``, read once per sweep; None off a Jetson. TensorRT's version is the
        backend's own when the backend is TensorRT."""
        if self._facts is None:
            version = self.backend.version if self.backend.name == "tensorrt" else None
            runner = clocks.live_runner(self.root)
            self._facts = (board_facts.jetson_facts(self.root, tensorrt_version=version, runner=runner),)
        return self._facts[0]

    def clock_state(self) -> clocks.ClockState:
        """The nvpmodel mode, jetson_clocks and CPU governor now (read before every point: they can change)."""
        return clocks.clock_state(self.root, jetson=self.board_facts() is not None)

    def _idle(self, key: object) -> profiler.Idle | None:
        """A fresh idle baseline: reused while young and measured in the same clock state (``key``, see
        :attr:`clocks.ClockState.idle_key`), else re-measured."""
        if not self.power.measures or self.settings.idle_s <= 0:
            return None
        idle = self._idle_cache
        if idle is None or idle.key != key or clock() - idle.t_end > self.settings.idle_max_age_s:
            idle = self._idle_cache = profiler.measure_idle(self.power, self.settings.idle_s, key)
        return idle

    def cost(self, model: ModelFile) -> schema.ModelCost | None:
        """The model's per-image cost, inspected once per file; None (said in the log) when it cannot be."""
        if model.sha256 not in self._costs:
            self._costs[model.sha256] = model_cost(model)
        return self._costs[model.sha256]

    def measure(self, model: ModelFile, batch: int, precision: str | None = None) -> schema.Result:
        precision = precision or self.precisions[0]
        state = self.clock_state()
        before = conditions.snapshot(self.root)
        runner = self.backend.prepare(model, batch, precision, seed=self.seed)
        try:
            idle = self._idle(state.idle_key)
            start = conditions.snapshot(self.root)
            if self.power.measures:
                with Sampler(self.power) as sampler:
                    m = profiler.measure(runner, batch, self.settings, sampler)
                m.sampler_cpu_fraction = sampler.cpu_fraction
            else:
                m = profiler.measure(runner, batch, self.settings)
            end = conditions.snapshot(self.root)
            peak = conditions.process_peak_rss_bytes(root=self.root)
        finally:
            runner.close()
        return self._result(model, precision, runner, m, idle, before, start, end, peak, state)

    def _result(self, model: ModelFile, precision: str, runner, m: profiler.Measurement, idle: profiler.Idle | None,
                before: conditions.Snapshot, start: conditions.Snapshot, end: conditions.Snapshot,
                peak_rss: int | None, state: clocks.ClockState) -> schema.Result:
        source = self.power
        energy = rails = None
        if m.energy is not None:
            per = m.images
            idle_rails = idle.rails_w if idle else {}
            rails = {
                rail: schema.RailFigures(
                    power_w=e / m.window_s,
                    idle_power_w=idle_rails.get(rail),
                    energy_per_inference_j=schema.EnergyPerInference(
                        gross=e / per, net=None if idle is None else (e - idle_rails[rail] * m.window_s) / per),
                )
                for rail, e in m.energy.rails_j.items()
            }
            energy = schema.EnergyPerInference(
                gross=m.energy.energy_j / per,
                net=None if idle is None else (m.energy.energy_j - idle.power_w * m.window_s) / per)
        cov = m.latency_cov
        clocks = state.clocks
        facts = self.board_facts()
        if facts is not None:  # the sweep-wide facts, with the mode and clocks this point ran under
            facts = msgspec.structs.replace(facts, power_mode=state.power_mode, power_mode_id=state.power_mode_id,
                                            jetson_clocks=state.jetson_clocks)
        return schema.Result(
            id=uuid.uuid4().hex,
            board=self.board,
            ts=time.time(),
            run_id=self.run_id,
            network=model.name,
            model_sha256=model.sha256,
            model_cost=self.cost(model),
            input_shape=list(model.input_shape),
            reference_top1=model.top1,
            reference_top1_source=model.top1_source,
            preprocessing=model.preprocessing,
            backend=self.backend.name,
            backend_version=self.backend.version,
            device=runner.device,
            precision=precision,
            calibration=runner.calibration,
            timing_only=runner.timing_only,
            batch=m.batch,
            threads=runner.threads,
            warmup_s=m.warmup_s,
            warmup_iterations=m.warmup_iterations,
            warmup_steady=m.warmup_steady,
            window_s=m.window_s,
            iterations=len(m.latencies_s),
            images=m.images,
            latency_ms=m.latency_ms,
            latency_cov=cov,
            unstable=cov > self.settings.unstable_cov,
            device_timing=m.device_timing(),
            throughput_ips=m.throughput_ips,
            power_w=m.power_w,
            idle_power_w=idle.power_w if idle else None,
            energy_j=None if m.energy is None else m.energy.energy_j,
            energy_per_inference_j=energy,
            rails=rails or {},
            idle=None if idle is None else schema.Idle(power_w=max(0.0, idle.power_w), duration_s=idle.duration_s,
                                                        samples=idle.samples, age_s=max(0.0, m.t0 - idle.t_end)),
            confidence=m.confidence(),
            memory=schema.Memory(
                backend_bytes=runner.memory_bytes,
                process_rss_delta_bytes=_delta(end.process_rss_bytes, before.process_rss_bytes),
                process_peak_rss_bytes=peak_rss,
                system_used_delta_bytes=_delta(end.system_used_bytes, before.system_used_bytes),
            ),
            conditions=schema.Conditions(
                temperatures_start_c=start.temperatures_c,
                temperatures_end_c=end.temperatures_c,
                throttle_events=_delta(end.throttle_count, start.throttle_count),
                power_mode=state.power_mode,
                clocks=clocks,
                sync_mode=runner.sync_mode,
            ),
            provenance=schema.Provenance(
                power_source=source.name,
                boundary=source.boundary,
                estimated=source.estimated,
                sample_rate_hz=m.energy.rate_hz if m.energy else None,
                samples=m.energy.samples if m.energy else 0,
                unique_samples=m.energy.unique_samples if m.energy else 0,
                update_interval_s=source.update_interval_s,
                sampler_cpu_fraction=m.sampler_cpu_fraction,
                rails=list(source.rails),
                method=source.method,
                power_mode=state.power_mode,
                clocks=clocks,
            ),
            board_facts=facts,
        )


def model_cost(model: ModelFile) -> schema.ModelCost | None:
    """Parameters and MACs of ``model`` from its graph; None when the graph cannot be inspected."""
    from dnnprof.shared import opcount as inspect  # needs onnx, which every inference extra installs

    try:
        found = inspect.inspect(model.path)
    except UserError as exc:
        log.warning("cannot count the operations of %s: %s", model.path, exc)
        return None
    return inspect.cost(found)


def _delta(after: int | None, before: int | None) -> int | None:
    return None if after is None or before is None else after - before


class Interrupted(Exception):
    """Raised (by a skip hook) to end a sweep early on purpose: the sweep sends an ``aborted`` event, not
    ``failed``."""


def new_run_id() -> str:
    return time.strftime("%Y%m%d-%H%M%S-") + uuid.uuid4().hex[:6]
