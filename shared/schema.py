"""Versioned message types, validated strictly on decode (msgspec).

Every payload is a JSON object with ``kind`` (which message it is) and ``schema`` (the major version; a payload of
another major version is rejected). Fields are SI base units named with their unit: ``_ms``, ``_w``, ``_j``, ``_s``.
``None`` means *not measured* — never zero.
"""

from __future__ import annotations

from typing import Annotated, Literal, Union

import msgspec

SCHEMA_VERSION = 1

# \Z, not $: $ also matches before a trailing newline, which would let "board\n" through.
Id = Annotated[str, msgspec.Meta(pattern=r"^[a-z0-9][a-z0-9-]{0,62}\Z")]
NonNegative = Annotated[float, msgspec.Meta(ge=0)]
# Integers end up in SQLite, whose INTEGER is 64-bit signed: a larger one must fail here, naming its field.
INT64_MAX = 2**63 - 1
Positive = Annotated[int, msgspec.Meta(ge=1, le=INT64_MAX)]
Count = Annotated[int, msgspec.Meta(ge=0, le=INT64_MAX)]


class SchemaError(ValueError):
    """A payload that is not a valid message of this schema version."""


class _Message(msgspec.Struct, kw_only=True, tag_field="kind"):
    schema: int = SCHEMA_VERSION
    board: Id
    ts: float  # wall-clock time the message was produced, Unix seconds

    def __post_init__(self) -> None:
        if self.schema != SCHEMA_VERSION:
            raise ValueError(f"unsupported schema version {self.schema}; this dnnprof speaks {SCHEMA_VERSION}")


class Stream(msgspec.Struct, kw_only=True):
    """A place in a board's stream of durable messages (results and run events), numbered by the agent's outbox.

    ``id`` names the outbox (Unix milliseconds when it was created: numbering starts again at 1 with a new outbox).
    In a result or run event ``seq`` is that message's number (1, 2, 3, ... in the order the agent wrote them); in
    a status or telemetry message it is the highest number written so far (0: none yet), so a host can see that it
    is missing the last ones too.
    """

    id: Count
    seq: Count


class Status(_Message, tag="status", kw_only=True):
    """Presence: retained ``online`` at connect, ``offline`` on a clean stop, ``lost`` as the last will.

    ``session`` is the agent's connection counter (Sparkplug's bdSeq): a will whose session is older than the
    latest birth is stale. ``stream``: the outbox's highest number at the time (None: an agent without an outbox).
    """

    state: Literal["online", "offline", "lost"]
    session: Count
    stream: Stream | None = None


class BoardFacts(msgspec.Struct, kw_only=True):
    """What a Jetson is and how it is set up, read on the board (``dnnagent info``). ``None`` = not known here."""

    model: str | None = None  # /proc/device-tree/model, e.g. "NVIDIA Jetson Orin Nano Developer Kit"
    soc: str | None = None  # last entry of /proc/device-tree/compatible, e.g. "tegra234"
    l4t: str | None = None  # L4T release from /etc/nv_tegra_release, e.g. "36.4.3"
    jetpack: str | None = None  # JetPack release, e.g. "6.2"
    tensorrt: str | None = None  # TensorRT version installed
    cuda: str | None = None  # CUDA toolkit version
    power_mode: str | None = None  # nvpmodel mode name, e.g. "MAXN", "15W"
    power_mode_id: int | None = None  # nvpmodel mode number
    jetson_clocks: bool | None = None  # True: clocks pinned at their maximum by jetson_clocks
    dla_cores: Count | None = None  # deep-learning accelerator cores


class BoardInfo(_Message, tag="info", kw_only=True):
    """Retained facts about the machine the agent runs on."""

    hostname: str
    os: str
    arch: str
    cpu_model: str | None = None
    cpu_count: Positive
    memory_total_bytes: Count | None = None
    python: str
    agent_version: str
    backends: dict[str, str] = {}  # backend name -> library version
    power_source: str | None = None  # what `auto` picks on this machine; None = no energy
    power_boundary: str | None = None
    power_estimated: bool = False
    session: Count = 0
    facts: BoardFacts | None = None  # Jetson facts; None on other machines


class RunEvent(_Message, tag="run", kw_only=True):
    """Progress of a sweep: ``started``, ``progress`` (after each point, measured or failed), then ``finished``,
    ``failed`` (an error that ended the sweep itself, not one point: see ``Failure``), ``aborted`` (stopped before
    the end: asked to stop, or found interrupted by a kill or power loss at the next start, whose new run measures
    the points left) or ``cancelled`` (a host's ``sweep_cancel``: stopped after the current point, never resumed).
    ``stream``: its number in the board's outbox stream."""

    run_id: Id
    seq: Count
    event: Literal["started", "progress", "finished", "failed", "aborted", "cancelled"]
    points_total: Count
    points_done: Count
    network: str | None = None
    batch: Positive | None = None
    precision: str | None = None
    eta_s: NonNegative | None = None  # the agent's estimate of the time left in the sweep
    message: str | None = None
    stream: Stream | None = None


class Latency(msgspec.Struct, kw_only=True):
    """Per-batch latency statistics over the timed window, milliseconds; ``batches``: how many batch times they
    rest on (None: an agent that did not say; the result's ``iterations`` is the same count)."""

    mean: NonNegative
    stdev: NonNegative
    p50: NonNegative
    p90: NonNegative
    p95: NonNegative
    p99: NonNegative
    min: NonNegative
    max: NonNegative
    batches: Count | None = None


PERCENTILES = (50, 90, 95, 99)


def tail_batches(percent: int) -> int:
    """Batches a percentile needs to rest on: 1 / (1 - q), so that one batch at least lies beyond it (p99: 100;
    from fewer, p99 is simply the slowest batch)."""
    return -(-100 // (100 - percent))


def latency_batches(result: Result) -> int:
    """How many batch times a result's latency figures rest on (an older agent did not say: its ``iterations``)."""
    return result.latency_ms.batches if result.latency_ms.batches is not None else result.iterations


def low_confidence(batches: int) -> list[str]:
    """The percentiles (``"p99"``, ...) that ``batches`` batch times are too few for (``tail_batches``)."""
    return [f"p{p}" for p in PERCENTILES if batches < tail_batches(p)]


class EnergyPerInference(msgspec.Struct, kw_only=True):
    """Energy per image (one inference = one image of a batch), joules. ``net`` subtracts idle power."""

    gross: NonNegative
    net: float | None = None


class Provenance(msgspec.Struct, kw_only=True):
    """Where the power numbers come from and how far to trust them."""

    power_source: str | None  # "rapl", "estimate", ... ; None = no power source, so no energy
    boundary: str | None  # what the source measures: "cpu_package", "estimate", "input_rail", "sum_of_rails"
    estimated: bool  # True whenever any number in the result comes from a model rather than a sensor
    sample_rate_hz: NonNegative | None = None  # achieved power sample rate over the point
    samples: Count = 0  # power readings inside the timed window
    unique_samples: Count = 0  # of those, readings left after dropping repeats of a sensor not yet updated
    update_interval_s: NonNegative | None = None  # how often the sensor produces a new value, where known
    sampler_cpu_fraction: NonNegative | None = None  # CPU time of the sampler thread / wall time
    rails: list[str] = []
    method: str | None = None  # how an estimate was made, or other notes a reader needs
    power_mode: str | None = None
    clocks: str | None = None


class RailFigures(msgspec.Struct, kw_only=True):
    """One power rail's share over the timed window."""

    power_w: float
    idle_power_w: float | None = None
    energy_per_inference_j: EnergyPerInference


class Idle(msgspec.Struct, kw_only=True):
    """The idle baseline subtracted for net figures: power with nothing running, at the same power mode."""

    power_w: NonNegative
    duration_s: NonNegative
    samples: Count
    age_s: NonNegative  # time from the end of the idle measurement to the start of the timed window


class Confidence(msgspec.Struct, kw_only=True):
    """Confidence intervals (half-widths) of the timed window's means, and why the window stopped."""

    level: float = 0.95
    latency_ms_mean: NonNegative  # ± around latency_ms.mean
    latency_relative: NonNegative  # half-width / mean
    power_w: NonNegative | None = None  # ± around power_w
    power_relative: NonNegative | None = None
    stop: Literal["converged", "max_time"]  # converged: every interval reached its target


class DeviceTiming(msgspec.Struct, kw_only=True):
    """GPU backends: where a batch's time goes (trtexec's split); milliseconds."""

    compute_ms: Latency
    h2d_ms: Latency | None = None
    d2h_ms: Latency | None = None


class Memory(msgspec.Struct, kw_only=True):
    """Memory footprint of the point, bytes. Deltas are from before the model was loaded to the window's end."""

    backend_bytes: Count | None = None  # the backend's own figure (TensorRT engine device memory)
    process_rss_delta_bytes: int | None = None
    process_peak_rss_bytes: Count | None = None
    system_used_delta_bytes: int | None = None  # on Jetsons CPU and GPU share this memory
    # The backend's memory, each part named (TensorRT; None where the backend cannot tell). Their sum is the model's
    # footprint at this batch: what ONNX Runtime's process_rss_delta_bytes measures on the CPU.
    engine_bytes: Count | None = None  # the serialized engine (plan): weights and kernels, loaded into device memory
    activations_bytes: Count | None = None  # device memory the execution context needs: activations and scratch
    io_bytes: Count | None = None  # the runner's device buffers of the inputs and outputs at this batch


class FrequencyFigures(msgspec.Struct, kw_only=True):
    """One clock domain's frequency over the timed window (MHz), from ``samples`` readings at a fixed rate."""

    min: NonNegative
    mean: NonNegative
    max: NonNegative
    samples: Positive


class Conditions(msgspec.Struct, kw_only=True):
    """The state of the machine around the timed window."""

    temperatures_start_c: dict[str, float] = {}
    temperatures_end_c: dict[str, float] = {}
    throttle_events: Count | None = None  # thermal throttling events during the point, where reported
    power_mode: str | None = None  # nvpmodel mode on a Jetson
    clocks: str | None = None  # clock policy: jetson_clocks state, or the CPU frequency governor
    sync_mode: str | None = None  # how the host waits for the device: "blocking", "spin", "synchronous"
    # what the silicon ran at during the window, per clock domain: "cpu0-3", "cpu4-5" (a cpufreq policy), "gpu",
    # "emc" (agent/board/frequencies.py; docs/MEASUREMENT.md)
    frequencies_mhz: dict[str, FrequencyFigures] = {}
    frequencies_unreadable: list[str] = []  # domains the board has that could not be read: "emc" without root
    # which throttling indicators fired during the window: "soctherm_oc2", "x86_thermal_throttle",
    # "thermal_trip:<zone>", "cooling:<device>", "below_cap:<domain>" (agent/board/frequencies.py)
    throttle_reasons: list[str] = []


class ModelCost(msgspec.Struct, kw_only=True):
    """What one image costs through the model's graph (the agent's ``models inspect`` conventions).

    MACs count multiply-accumulates of convolutions and matrix products; "fully connected" is Gemm / MatMul with a
    constant operand. ``complete`` is False when some op could not be counted (then the totals are lower bounds).
    """

    params: Count
    macs: Count  # per image
    fc_macs: Count = 0  # of ``macs``, those of fully connected layers
    fc_params: Count = 0
    complete: bool = True
    # every float tensor the nodes produce for one image, summed; None: an agent that did not count it yet (the
    # host's prediction then uses fewer features, and says so)
    activation_bytes: Count | None = None


Percent = Annotated[float, msgspec.Meta(ge=0, le=100)]
Interval = Annotated[list[Percent], msgspec.Meta(min_length=2, max_length=2)]  # [low, high]

# How a point's precision was made: as_exported (the ONNX file's own float32), builder_flags (TensorRT's FP16 / INT8
# builder flags, int8 with its calibrator), onnx_converted (a converted ONNX file run as it is: fp16 tensors, or
# int8 as QuantizeLinear/DequantizeLinear pairs; TensorRT parses it as a strongly typed network).
PRECISION_METHODS = ("as_exported", "builder_flags", "onnx_converted")


class Accuracy(msgspec.Struct, kw_only=True):
    """Top-1 and top-5 of the engine that was timed, measured on a labelled image set (percent).

    An engine's accuracy does not depend on the batch: it is measured once per (model content, precision, method,
    calibration, backend, device, image set) and reused for the other batches (``reused``: this point did not run
    the pass itself). ``top*_ci``: 95% Wilson score intervals."""

    top1: Percent
    top5: Percent | None = None  # None: the model has fewer than 5 classes
    images: Positive
    top1_ci: Interval
    top5_ci: Interval | None = None
    set_name: str  # the folder's name
    set_sha256: str  # content of the images used (names, labels, bytes)
    limit: Positive | None = None  # --accuracy-limit: a seeded subset of this many images
    seed: int | None = None  # the subset's seed
    preprocessing: str  # the pipeline applied, in words (resize, crop, mean, std, channels)
    reused: bool = False
    duration_s: NonNegative | None = None  # the pass's own time (None when reused)


class Result(_Message, tag="result", kw_only=True):
    """One measured configuration: (network, backend, precision, batch) on a board."""

    id: Annotated[str, msgspec.Meta(pattern=r"^[A-Za-z0-9_-]{8,128}\Z")]
    run_id: Id
    network: str
    model_sha256: str
    input_shape: list[int]  # per-image shape, without the batch dimension
    model_cost: ModelCost | None = None  # None: the agent could not inspect the graph
    reference_top1: float | None = None  # accuracy of this model file from the agent's manifest (percent)
    reference_top1_source: str | None = None
    preprocessing: str | None = None
    backend: str
    backend_version: str
    device: str  # e.g. "cpu", "gpu", "dla0"
    precision: str  # "fp32", "fp16", "int8"
    calibration: str | None = None  # int8 only: "images:<folder> (<n> images)" or "random"
    precision_method: str | None = None  # one of PRECISION_METHODS; None: an agent from before they were recorded
    converted_sha256: str | None = None  # onnx_converted: content of the converted file that ran
    timing_only: bool = False  # True: accuracy is meaningless (int8 calibrated on random data); time it, don't rank it
    batch: Positive
    threads: Count | None = None
    warmup_s: NonNegative
    warmup_iterations: Count
    warmup_steady: bool = True  # False: the warm-up hit its time limit before latency settled
    window_s: NonNegative
    iterations: Positive
    images: Positive
    latency_ms: Latency
    latency_cov: NonNegative | None = None  # coefficient of variation of per-batch latency
    unstable: bool = False  # latency_cov above the threshold (trtexec's warning)
    device_timing: DeviceTiming | None = None
    throughput_ips: NonNegative  # images (not batches) per second
    power_w: NonNegative | None = None  # average power over the timed window (gross)
    idle_power_w: NonNegative | None = None
    energy_j: NonNegative | None = None  # energy over the timed window (gross)
    energy_per_inference_j: EnergyPerInference | None = None
    rails: dict[str, RailFigures] = {}
    idle: Idle | None = None
    confidence: Confidence | None = None
    memory: Memory | None = None
    conditions: Conditions | None = None
    board_facts: BoardFacts | None = None  # the Jetson's facts when the point was measured
    accuracy: Accuracy | None = None  # measured on --accuracy-set; None: not measured (see reference_top1)
    provenance: Provenance
    stream: Stream | None = None  # its number in the board's outbox stream (None: not sent through an outbox)


# Why a point failed. out_of_memory: the engine, its buffers or a batch did not fit; build_failed: the backend
# could not build or load the model at this point; unsupported: the backend or device cannot run it (an operator,
# a DLA layer); invalid_output: the outputs hold NaN or infinity; timeout: the build, warm-up or window overran its
# limit (the watchdog); runtime_error: inference raised anything else; crashed: the agent's process died during
# the point (the kernel's out-of-memory killer, a crash in the backend, a kill -9, a power cut), found at its next
# start.
FAILURE_KINDS = ("out_of_memory", "build_failed", "unsupported", "invalid_output", "timeout", "runtime_error",
                 "crashed")
FailureKind = Literal["out_of_memory", "build_failed", "unsupported", "invalid_output", "timeout", "runtime_error",
                      "crashed"]
STAGES = ("prepare", "idle", "warmup", "window", "check", "accuracy", "not_run", "unknown")


class Failure(_Message, tag="failure", kw_only=True):
    """A point that produced no measurement, and why: published (QoS 1, through the outbox) where its result would
    have been, so the sweep goes on and the host knows. Never counted as a measurement.

    ``stage``: where it failed — ``prepare`` (engine build or load), ``idle``, ``warmup``, ``window``, ``check``
    (the outputs after the window), ``accuracy`` (the pass over the accuracy set), ``not_run`` (never tried,
    because of an earlier failure: out of memory at a smaller batch of the same network and precision, or a backend
    that never came back from a timeout; ``cause`` names that point) or ``unknown`` (``crashed``: the process died,
    nobody saw where). ``message`` is one line.
    """

    id: Annotated[str, msgspec.Meta(pattern=r"^[A-Za-z0-9_-]{8,128}\Z")]
    run_id: Id
    network: str
    model_sha256: str
    backend: str
    backend_version: str
    device: str
    precision: str
    batch: Positive
    power_mode: str | None = None  # nvpmodel mode on a Jetson
    clocks: str | None = None
    error: FailureKind
    stage: Literal["prepare", "idle", "warmup", "window", "check", "accuracy", "not_run", "unknown"]
    message: Annotated[str, msgspec.Meta(max_length=1000)]
    cause: str | None = None  # not_run: the point whose failure ruled this one out ("resnet50 b=32 fp32")
    elapsed_s: NonNegative | None = None  # time spent on the point before it failed
    stream: Stream | None = None


class SweepPoint(msgspec.Struct, kw_only=True):
    """One run, queued or running, as ``sweep_status`` and the acks of sweep commands describe it."""

    run_id: Id
    origin: Literal["config", "host"]  # the agent's configured sweep, or one a host started
    command_id: Id | None = None  # the host's sweep_start (or measure) that queued it
    state: Literal["queued", "running", "cancelling"]
    networks: list[str] = []
    batches: list[Positive] = []
    precisions: list[str] = []
    points_total: Count = 0
    points_done: Count = 0  # measured, failed or skipped so far
    failed: Count = 0
    current: str | None = None  # the point being measured now ("resnet50 b=8 fp16")
    queued_ts: float | None = None
    started_ts: float | None = None


class SweepState(msgspec.Struct, kw_only=True):
    """What a board's agent is doing: the run it measures now (None: idle) and those queued after it."""

    running: SweepPoint | None = None
    queue: list[SweepPoint] = []
    power_mode: str | None = None


def machine(info: BoardInfo | None) -> str | None:
    """What a person calls the machine: the Jetson's model and JetPack, else the CPU model, else the hostname."""
    if info is None:
        return None
    facts = info.facts
    if facts is not None and facts.model:
        return facts.model + (f" (JetPack {facts.jetpack})" if facts.jetpack else "")
    return info.cpu_model or info.hostname


NO_POWER_MODE = "n/a"  # the power mode of a machine that has none (a value, so grouping and keys never see None)


def power_mode(result: Result) -> str:
    """The power mode a result was measured in: nvpmodel's mode on a Jetson, else NO_POWER_MODE."""
    return ((result.conditions.power_mode if result.conditions else None) or result.provenance.power_mode
            or NO_POWER_MODE)


UnixTime = Annotated[float, msgspec.Meta(ge=0, le=1e11)]  # seconds; 1e11 is the year 5138
Watts = Annotated[float, msgspec.Meta(ge=0, le=1e6)]  # a megawatt: no board draws more; larger is garbage


class Telemetry(_Message, tag="telemetry", kw_only=True):
    """What the board is doing now, for live dashboards: a batch of total-power samples (rather than one message
    per reading) and summaries. Published at QoS 0 and never stored; ``power_source`` None means no power source
    (then ``power_w`` is empty — not zero)."""

    seq: Count
    t0: UnixTime  # Unix seconds of the first sample
    dt_s: Annotated[float, msgspec.Meta(ge=0, le=3600)]  # spacing of the samples
    power_w: Annotated[list[Watts], msgspec.Meta(max_length=100_000)]  # total power samples
    power_source: str | None = None
    boundary: str | None = None  # what the total covers: "cpu_package", "input_rail", "sum_of_rails", "estimate"
    estimated: bool = False
    rails_w: dict[str, Watts] = {}  # mean power per rail over the batch
    temperatures_c: dict[str, Annotated[float, msgspec.Meta(ge=-273.15, le=1000)]] = {}  # per thermal zone
    throttle_events: Count | None = None  # cumulative thermal throttling events, where the board reports them
    clocks: str | None = None  # clock policy: jetson_clocks state, or the CPU frequency governor
    power_mode: str | None = None  # nvpmodel mode on a Jetson
    stream: Stream | None = None  # the outbox's highest number now: a host missing the last results sees it here


class Command(_Message, tag="cmd", kw_only=True):
    """Host → agent on ``dnnprof/v1/<board>/cmd`` (``board`` is the agent addressed). The agent answers every
    command, valid or not, with a ``CommandAck`` of the same ``id``.

    ``replay``: publish again the outbox messages numbered ``first``..``last`` of stream ``stream`` (what a host
    found missing). ``measure``: measure ``model`` (an ONNX file name inside the agent's models_dir) at ``batch``,
    in ``precision`` (default: the first configured), after the configured sweep. ``sweep_start``: queue a sweep of
    ``models`` x ``batches`` x ``precisions`` (names in the agent's models_dir), run after what is queued before it;
    ``power_mode``: only in that nvpmodel mode; ``retry_failed``: measure again points that failed before;
    ``redo``: measure again points already measured. ``sweep_cancel``: stop ``run_id`` (default: the one running)
    after its current point, or take it off the queue. ``sweep_status``: what runs and what is queued.
    """

    id: Id
    action: Literal["replay", "measure", "sweep_start", "sweep_cancel", "sweep_status"]
    stream: Count | None = None
    first: Positive | None = None
    last: Positive | None = None
    model: Annotated[str, msgspec.Meta(max_length=255)] | None = None
    batch: Positive | None = None
    precision: Annotated[str, msgspec.Meta(max_length=16)] | None = None
    models: Annotated[list[Annotated[str, msgspec.Meta(max_length=255)]], msgspec.Meta(max_length=64)] = []
    batches: Annotated[list[Positive], msgspec.Meta(max_length=32)] = []
    precisions: Annotated[list[Annotated[str, msgspec.Meta(max_length=16)]], msgspec.Meta(max_length=8)] = []
    power_mode: Annotated[str, msgspec.Meta(max_length=64)] | None = None
    retry_failed: bool = False
    redo: bool = False
    run_id: Id | None = None


Range = Annotated[list[Positive], msgspec.Meta(min_length=2, max_length=2)]  # [first, last], both included


class CommandAck(_Message, tag="cmd/ack", kw_only=True):
    """Agent → host on ``dnnprof/v1/<board>/cmd/ack``: whether command ``id`` was accepted, and why not.

    ``id`` is ``"invalid"`` for a payload that is not a command at all. For ``replay``: ``replayed`` messages were
    published again; ``unavailable`` lists the ``[first, last]`` ranges the outbox no longer holds (pruned after
    delivery, or never written), which no replay can recover.
    """

    id: Id
    accepted: bool
    reason: str | None = None
    replayed: Count | None = None
    unavailable: Annotated[list[Range], msgspec.Meta(max_length=10_000)] = []
    run_id: Id | None = None  # sweep_start: the run queued; sweep_cancel: the run cancelled
    sweep: SweepState | None = None  # sweep commands: the agent's state after carrying the command out


Message = Union[Status, BoardInfo, RunEvent, Result, Failure, Telemetry, Command, CommandAck]
KIND_OF = {Status: "status", BoardInfo: "info", RunEvent: "run", Result: "result", Failure: "failure",
           Telemetry: "telemetry", Command: "cmd", CommandAck: "cmd/ack"}
DURABLE = (Result, Failure, RunEvent)  # what the agent's outbox keeps and numbers: lost or late, still worth having

_decoder = msgspec.json.Decoder(Message)
_encoder = msgspec.json.Encoder()


def encode(message: Message) -> bytes:
    """JSON bytes of a message, ``kind`` and ``schema`` included."""
    return _encoder.encode(message)


def decode(payload: bytes | str) -> Message:
    """Validate and decode any message; raises SchemaError with a one-line reason."""
    try:
        return _decoder.decode(payload)
    except (msgspec.ValidationError, msgspec.DecodeError) as exc:
        raise SchemaError(str(exc).splitlines()[0]) from None
    except RecursionError:  # msgspec recurses per nesting level, even through a field it skips: '{"a":' * 2000
        raise SchemaError("JSON is nested too deeply") from None
    except UnicodeEncodeError as exc:  # a str holding a lone surrogate ("\ud800") has no UTF-8 form to parse
        raise SchemaError(f"text is not valid Unicode: {exc.reason} at character {exc.start}") from None


def to_builtins(message: Message) -> dict:
    """A plain dict of the message (for --json output and storage)."""
    return msgspec.to_builtins(message)
