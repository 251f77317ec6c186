"""A sweep: every (model, batch) point measured in turn, each result sent as soon as it exists."""

from __future__ import annotations

import logging
import re
import time
import uuid
from collections.abc import Callable
from dataclasses import dataclass, field

import msgspec

from dnnprof.agent.backends import Backend
from dnnprof.agent.board import clocks, conditions, modes, nvpmodel
from dnnprof.agent.board.frequencies import FrequencyWatch
from dnnprof.agent.board import facts as board_facts
from dnnprof.agent.measure import accuracy, failure, profiler
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
    failures: list[schema.Failure] = field(default_factory=list, init=False)  # this run's failed points
    done: int = field(default=0, init=False)  # points gone through so far (measured, failed or skipped)
    current: str | None = field(default=None, init=False)  # the point being measured now ("resnet50 b=8 fp16")
    # A point the watchdog gave up on, shared by the sweeps of one backend (the session passes its own).
    guard: failure.Guard = field(default_factory=failure.Guard)
    # The labelled image set each engine's top-1 and top-5 are measured on (once per engine; None: not measured).
    accuracy: accuracy.Book | None = None
    # The (power mode, clocks) settings to measure in, outermost (one nvpmodel switch each), and what applies them;
    # the default: as the board is, nothing switched.
    setups: list[modes.Setting] = field(default_factory=lambda: [modes.Setting(None, None)])
    control: modes.Control | None = None
    def __post_init__(self) -> None:
        if self.power is None:
            self.power = NO_POWER
        # Fail before any profiling time is spent.
        for model in self.models:
            for batch in self.batches:
                model.check_batch(batch)
            if self.accuracy is not None:
                model.pipeline().check_shape(model.input_shape, f"{model.name}: its accuracy on "
                                                                f"{self.accuracy.images.root}")

    @property
    def points(self) -> int:
        return len(self.setups) * len(self.models) * len(self.batches) * len(self.precisions)

    def _event(self, seq: int, event: str, done: int, **extra) -> schema.RunEvent:
        extra.setdefault("precision", self.precisions[0] if len(self.precisions) == 1 else None)
        return schema.RunEvent(board=self.board, ts=time.time(), run_id=self.run_id, seq=seq, event=event,
                               points_total=self.points, points_done=done, **extra)

    def plan(self) -> list[tuple[modes.Setting, ModelFile, int, str]]:
        """Every point in the order it is measured: per power mode and clocks (one switch each), precision (an
        engine build each), model, batch."""
        return [(s, m, b, p) for s in self.setups for p in self.precisions for m in self.models for b in self.batches]

    def run(self, sink: Sink, on_point: Callable[[schema.Result], None] | None = None,
            on_skip: Callable[[ModelFile, int, str, str], None] | None = None,
            on_failure: Callable[[schema.Failure], None] | None = None) -> list[schema.Result]:
        """Measure every point, sending run events, results and failures to ``sink``; returns the results (the
        failures are in ``failures``).

        A point that fails is a ``Failure`` and the sweep goes on; out of memory at batch N rules out the larger
        batches of that network and precision (failures of stage ``not_run``). Progress events carry ``eta_s``:
        the seconds left if each remaining point takes the average time of the points tried so far (idle
        baselines and model loading included).
        """
        seq = 0
        start = clock()
        sink.send(self._event(seq, "started", 0))
        results: list[schema.Result] = []
        done = tried = 0
        oom: dict[tuple, tuple[int, str]] = {}  # (setting, model sha256, precision) -> smallest batch out of memory
        current: tuple[str | None, int | None, str | None] = (None, None, None)
        applied: modes.Setting | None = None
        refused: str | None = None  # why the board would not take the current setting
        try:
            for setup, model, batch, precision in self.plan():
                current = (model.name, batch, precision)
                if setup is not applied:
                    applied, refused = setup, None
                    if self.control is not None and (setup.mode is not None or setup.clocks is not None):
                        seq += 1
                        refused = self._apply(setup, sink, seq, done)
                reason = self.skip(model, batch, precision) if self.skip and refused is None else None
                self.current = None if reason or refused else point_label(model.name, batch, precision)
                if refused is not None:
                    # cause: the refusal (which names the setting), what a report prints for a point not run
                    outcome = self._failure(model, batch, precision, setup.state(self.clock_state()), "unsupported",
                                            "not_run", f"not run: {refused}", cause=refused)
                else:
                    outcome = None if reason else self.attempt(model, batch, precision,
                                                               oom.get((id(setup), model.sha256, precision)))
                self.current = None
                done += 1
                self.done = done
                seq += 1
                note = f"skipped: {reason}" if reason else None
                if outcome is not None:
                    sink.send(outcome)
                    if isinstance(outcome, schema.Result):
                        results.append(outcome)
                    else:
                        self.failures.append(outcome)
                        note = f"failed ({outcome.error}): {outcome.message}"
                        if outcome.error == "out_of_memory" and outcome.stage != "not_run":
                            key = (id(setup), model.sha256, precision)
                            if key not in oom or batch < oom[key][0]:
                                oom[key] = (batch, point_label(model.name, batch, precision))
                    if not (isinstance(outcome, schema.Failure) and outcome.stage == "not_run"):
                        tried += 1
                # Points not tried take no time, so the time left is paced on the tried ones only.
                eta = (clock() - start) / tried * (self.points - done) if tried else None
                sink.send(self._event(seq, "progress", done, network=model.name, batch=batch, precision=precision,
                                      eta_s=eta, message=note))
                if isinstance(outcome, schema.Result) and on_point:
                    on_point(outcome)
                elif isinstance(outcome, schema.Failure) and on_failure:
                    on_failure(outcome)
                if reason and on_skip:
                    on_skip(model, batch, precision, reason)
        except BaseException as exc:
            stopped = isinstance(exc, (KeyboardInterrupt, Interrupted))
            event = getattr(exc, "event", "aborted") if stopped else "failed"
            why = (str(exc) or "interrupted") if stopped else f"{exc.__class__.__name__}: {exc}"
            sink.send(self._event(seq + 1, event, done, network=current[0], batch=current[1], precision=current[2],
                                  message=why))
            raise
        finally:
            self._restore()
        failed = len(self.failures)
        sink.send(self._event(seq + 1, "finished", done, eta_s=0.0,
                              message=f"{len(results)} measured, {failed} failed" if failed else None))
        return results

    def _apply(self, setup: modes.Setting, sink: Sink, seq: int, done: int) -> str | None:
        """Put the board in ``setup`` (nothing to do for "as the board is"); a progress event says so. Returns None,
        or why the board refused (its points become not_run failures, and the sweep goes on)."""
        try:
            self.control.apply(setup)
        except modes.Refused as exc:
            log.info("%s refused: %s", setup.label(), exc)
            sink.send(self._event(seq, "progress", done, message=f"skipped {setup.label()}: {exc}"))
            return str(exc)
        log.info("now measuring in %s", setup.label())
        sink.send(self._event(seq, "progress", done, message=f"switched to {setup.label()}"))
        return None

    def _restore(self) -> None:
        """Put back the mode and clocks the board had before the sweep (a sentence in the log)."""
        if self.control is None:
            return
        said = self.control.restore()
        if said:
            log.info("%s", said)

    def attempt(self, model: ModelFile, batch: int, precision: str,
                oom_at: tuple[int, str] | None = None) -> schema.Result | schema.Failure:
        """One point under the watchdog: its Result, or a Failure saying why there is none. ``oom_at``: the
        smallest batch of this network and precision that ran out of memory (and its label), which rules out
        larger ones."""
        label = point_label(model.name, batch, precision)
        state = self.clock_state()
        if oom_at is not None and batch > oom_at[0]:
            return self._failure(model, batch, precision, state, "out_of_memory", "not_run",
                                 f"not run: {oom_at[1]} ran out of memory, and a larger batch needs more",
                                 cause=oom_at[1])
        if self.guard.hung is not None:
            worker, cause, waited = self.guard.hung
            if not waited:  # once: a backend that was merely slow may come back
                worker.join(self.settings.hang_grace_s)
                self.guard.hung = (worker, cause, True)
            if worker.is_alive():
                return self._failure(model, batch, precision, state, "timeout", "not_run",
                                     f"not run: the backend has not returned from {cause}, which timed out; restart "
                                     "the agent to measure the points left", cause=cause)
            self.guard.hung = None
        watch = failure.Watch(self.settings.stage_limits())
        begun = clock()
        try:
            return failure.watched(lambda: self.measure(model, batch, precision, watch=watch, state=state),
                                   watch, label, on_abandon=self.backend.cancel)
        except failure.Hung as exc:
            self.guard.hung = (exc.worker, label, False)
            error, message, stage = "timeout", str(exc), exc.stage
        except Exception as exc:
            stage = watch.stage
            error, message = failure.classify(exc, stage)
            log.debug("point %s failed", label, exc_info=True)
        log.info("point %s failed in %s (%s): %s", label, stage, error, message)  # the caller says it to the user
        return self._failure(model, batch, precision, state, error, stage, message, elapsed_s=clock() - begun)

    def _failure(self, model: ModelFile, batch: int, precision: str, state: clocks.ClockState, error: str,
                 stage: str, message: str, *, cause: str | None = None,
                 elapsed_s: float | None = None) -> schema.Failure:
        return schema.Failure(
            id=uuid.uuid4().hex, board=self.board, ts=time.time(), run_id=self.run_id, network=model.name,
            model_sha256=model.sha256, backend=self.backend.name, backend_version=self.backend.version,
            device=self.backend.device, precision=precision, batch=batch, power_mode=state.power_mode,
            clocks=state.clocks, error=error, stage=stage, message=failure.one_line(message), cause=cause,
            elapsed_s=elapsed_s)

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

    def measure(self, model: ModelFile, batch: int, precision: str | None = None, *,
                watch: failure.Watch | None = None, state: clocks.ClockState | None = None) -> schema.Result:
        """Measure one point (raising what the backend raises); ``watch`` hears each stage as it begins."""
        enter = watch.enter if watch is not None else (lambda stage: None)
        precision = precision or self.precisions[0]
        state = state or self.clock_state()
        before = conditions.snapshot(self.root)
        runner = self.backend.prepare(model, batch, precision, seed=self.seed)
        clock_watch = FrequencyWatch(self.root)  # what the silicon ran at, over the timed window only
        gpu_seen: list = []  # the power source's own device conditions (NVML) at the window's start and end

        def stage(name: str) -> None:
            enter(name)
            if name == "window":
                clock_watch.start()
                gpu_seen.append(self.power.conditions())

        try:
            enter("idle")
            idle = self._idle(state.idle_key)
            start = conditions.snapshot(self.root)
            try:
                if self.power.measures:
                    with Sampler(self.power) as sampler:
                        m = profiler.measure(runner, batch, self.settings, sampler, on_stage=stage)
                    m.sampler_cpu_fraction = sampler.cpu_fraction
                else:
                    m = profiler.measure(runner, batch, self.settings, on_stage=stage)
            finally:
                clock_watch.stop()
            if gpu_seen:
                gpu_seen.append(self.power.conditions())
            enter("check")
            failure.check_outputs(runner.outputs)  # NaN or infinity: no measurement of garbage
            end = conditions.snapshot(self.root)
            peak = conditions.process_peak_rss_bytes(root=self.root)
            # After the window, so the pass never lies inside a measurement; the same engine that was timed.
            found = self._accuracy(model, runner, batch, precision, enter)
        finally:
            runner.close()
        result = self._result(model, precision, runner, m, idle, before, start, end, peak, state)
        ran = msgspec.structs.replace(
            result.conditions, frequencies_mhz=clock_watch.summary(), frequencies_unreadable=clock_watch.unreadable,
            throttle_reasons=clock_watch.throttle_reasons(start, end, caps_mhz=self._locked_caps_mhz(state)))
        ran = _with_device_conditions(ran, [c for c in gpu_seen if c is not None])
        return msgspec.structs.replace(result, conditions=ran, **({} if found is None else {"accuracy": found}))

    def _locked_caps_mhz(self, state: clocks.ClockState) -> dict[str, float] | None:
        """While jetson_clocks pins the clocks, the mode's caps (MHz, by CPU or "gpu" / "emc"): a clock found
        below its cap then is throttled. None otherwise (DVFS runs below the caps by design)."""
        if not state.jetson_clocks or state.power_mode_id is None:
            return None
        conf = self.control.conf if self.control is not None else nvpmodel.read(self.root)
        mode = None if conf is None else conf.modes.get(state.power_mode_id)
        if mode is None:
            return None
        caps: dict[str, float] = {}
        for param, cap in mode.caps_hz().items():
            if cap is None:
                continue
            if param.startswith("CPU"):
                found = re.search(r"/cpu(\d+)/", conf.params.get(param, nvpmodel.Param(param, "")).files.get(
                    "MAX_FREQ", ""))
                if found:
                    caps[f"cpu{found.group(1)}"] = cap / 1e6
            elif param in ("GPU", "EMC"):
                caps[param.lower()] = cap / 1e6
        return caps or None

    def _accuracy(self, model: ModelFile, runner, batch: int, precision: str,
                  enter: Callable[[str], None]) -> schema.Accuracy | None:
        """The engine's measured accuracy: run now, or reused from another batch of the same engine; None without
        an accuracy set, or for an engine whose outputs mean nothing (int8 calibrated on random data)."""
        book = self.accuracy
        if book is None or runner.timing_only:
            return None
        identity = book.identity(model, runner, precision, self.backend.name, self.backend.version)
        found = book.known(identity)
        if found is None:
            enter("accuracy")
            found = book.measure(model, runner, batch, identity)
        return found

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
            precision_method=runner.precision_method,
            converted_sha256=runner.converted_sha256,
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
                engine_bytes=runner.engine_bytes,
                activations_bytes=runner.activations_bytes,
                io_bytes=runner.io_bytes,
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


def _with_device_conditions(ran: schema.Conditions, seen: list) -> schema.Conditions:
    """``ran`` with what the power source read of its devices at the window's start and end (NVML: each GPU's
    clocks as two-reading figures, its temperature at either end, the throttle reasons seen, what it cannot
    report)."""
    if not seen:
        return ran
    first, last = seen[0], seen[-1]
    clocks = {}
    for key in dict.fromkeys(k for c in seen for k in c.clocks_mhz):
        values = [c.clocks_mhz[key] for c in seen if key in c.clocks_mhz]
        clocks[key] = schema.FrequencyFigures(min=min(values), mean=sum(values) / len(values), max=max(values),
                                              samples=len(values))
    reasons = sorted({*ran.throttle_reasons, *(r for c in seen for r in c.throttle_reasons)})
    unreadable = sorted({*ran.frequencies_unreadable, *(u for c in seen for u in c.unreadable)})
    return msgspec.structs.replace(
        ran, frequencies_mhz={**ran.frequencies_mhz, **clocks}, throttle_reasons=reasons,
        frequencies_unreadable=unreadable,
        temperatures_start_c={**(ran.temperatures_start_c or {}), **first.temperatures_c},
        temperatures_end_c={**(ran.temperatures_end_c or {}), **last.temperatures_c})


def _delta(after: int | None, before: int | None) -> int | None:
    return None if after is None or before is None else after - before


class Interrupted(Exception):
    """Raised (by a skip hook) to end a sweep early on purpose: the sweep sends an ``aborted`` event, not
    ``failed`` (a subclass may name another event in ``event``: ``cancelled``)."""

    event = "aborted"


def point_label(network: str, batch: int, precision: str) -> str:
    """How logs and messages name a point: ``resnet50 b=8 fp16``."""
    return f"{network} b={batch} {precision}"


def new_run_id() -> str:
    return time.strftime("%Y%m%d-%H%M%S-") + uuid.uuid4().hex[:6]
