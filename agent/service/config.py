"""The agent's configuration file (``/etc/dnnprof/agent.toml``) for ``dnnagent serve``: read, checked, typed.

Every mistake is reported before anything runs, as one line naming the file, the section and the key, what is
wrong and what to write instead: ``agent.toml: [broker] port: 70000 is out of range: write a port in 1-65535``.
Relative paths are relative to the directory of the config file (a service has no useful working directory).
Secrets: the broker password is read from ``password_file``, which must not be readable by group or others; it
never appears in a repr, a log line or an error message. Every error ``load`` raises exits with ``EX_CONFIG`` (78),
which the systemd unit does not restart (``RestartPreventExitStatus=78``): a restart cannot fix a config.
"""

from __future__ import annotations

import contextlib
import math
import os
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from dnnprof.agent.backends.base import PRECISION_CHOICES
from dnnprof.agent.board import facts as board
from dnnprof.agent.measure import profiler
from dnnprof.agent.publish import telemetry
from dnnprof.shared import auth, cli, topics
from dnnprof.shared.errors import UserError

# sysexits.h EX_CONFIG: a configuration error. The unit's RestartPreventExitStatus=78 stops systemd from restarting
# into the same mistake every RestartSec.
EX_CONFIG = 78
DEFAULT_PATH = Path("/etc/dnnprof/agent.toml")
DEFAULT_STATE_DIR = Path("/var/lib/dnnprof")  # the unit's StateDirectory=dnnprof
DEFAULT_OUTBOX_MAX_MB = 256  # MiB; a result is a few KB, so some 50,000 undelivered results fit
DEFAULT_OUTBOX_RETAIN = 10_000  # delivered messages kept so a host can ask for them again
DEFAULT_MAX_BATCH = 256  # a measure command asking for more is refused: an absurd batch only exhausts memory
BACKENDS = ("auto", "tensorrt", "onnxruntime")
PRECISIONS = ("fp32", "fp16", "int8")
PRECISION_METHODS = PRECISION_CHOICES  # TensorRT's routes to fp16 and int8


@dataclass(frozen=True)
class Tls:
    """TLS towards the broker. No ``ca_file``: the system's CA certificates. A client certificate needs both files."""

    ca_file: Path | None = None
    cert_file: Path | None = None
    key_file: Path | None = None

    def context(self):
        """An ``ssl.SSLContext`` that verifies the broker's certificate and host name (``shared.auth``)."""
        return auth.tls_context(self.ca_file, self.cert_file, self.key_file, what="it")


@dataclass(frozen=True)
class Broker:
    host: str
    port: int
    tls: Tls | None = None
    username: str | None = None
    password_file: Path | None = None
    password: str | None = field(default=None, repr=False, compare=False)  # from password_file; never printed
    keepalive_s: int = 30  # MQTT keepalive: the broker publishes the last will after 1.5 x this of silence

    @property
    def address(self) -> str:
        """``host:port`` (``[v6]:port``) as ``MqttLink`` takes it."""
        return f"[{self.host}]:{self.port}" if ":" in self.host else f"{self.host}:{self.port}"

    def __repr__(self) -> str:
        secret = "'***'" if self.password is not None else "None"
        return (f"Broker(host={self.host!r}, port={self.port}, tls={self.tls!r}, username={self.username!r}, "
                f"password_file={self.password_file!r}, password={secret})")


@dataclass(frozen=True)
class AgentConfig:
    path: Path  # the file it was read from
    broker: Broker
    board_id: str
    state_dir: Path
    models_dir: Path
    models: list[Path]  # ONNX files, each inside models_dir
    batch_sizes: list[int]
    precisions: list[str]
    backend: str = "auto"
    dla_core: int | None = None
    calibration_dir: Path | None = None
    precision_method: str | None = None  # tensorrt: auto, builder_flags, onnx_converted
    accuracy_set: Path | None = None  # labelled images each engine's top-1 / top-5 is measured on
    accuracy_limit: int | None = None  # a seeded subset of that many images
    power_modes: list[str] | None = None  # nvpmodel modes to sweep (ids or names as text, or ["all"]); None: as found
    clocks: list[str] | None = None  # "dvfs", "locked"; None: as found
    threads: int | None = None
    redo: bool = False  # measure again points the ledger already holds
    retry_failed: bool = False  # measure again points the ledger holds as failed (out of memory, NaN, ...)
    seed: int = 0
    power_source: str = "auto"
    tdp_w: float | None = None
    require_measured: bool = False  # refuse an estimated power source (named, or auto's last resort)
    telemetry_rate_hz: float = telemetry.DEFAULT_RATE_HZ  # 0 = off
    telemetry_samples_hz: float = telemetry.DEFAULT_SAMPLES_HZ
    settings: profiler.Settings = field(default_factory=profiler.Settings)
    outbox_max_mb: int = DEFAULT_OUTBOX_MAX_MB  # the outbox file's size limit, MiB
    outbox_retain: int = DEFAULT_OUTBOX_RETAIN  # delivered messages kept for replay
    max_batch: int = DEFAULT_MAX_BATCH  # the largest batch a host's measure command may ask for

    @property
    def engine_cache(self) -> Path:
        return self.state_dir / "engines"

    @property
    def power_state_path(self) -> Path:
        """The restore marker of a sweep that switched power modes or clocks (read at every start)."""
        return self.state_dir / "power-restore.json"

    @property
    def ledger_path(self) -> Path:
        return self.state_dir / "ledger.sqlite"

    @property
    def outbox_dir(self) -> Path:
        """Where agents before the SQLite outbox left JSONL files of unsent messages (moved into it at start)."""
        return self.state_dir / "outbox"

    @property
    def outbox_path(self) -> Path:
        return self.state_dir / "outbox.sqlite"


# The keys each section knows, for the "unknown key" message.
_KEYS = {
    "broker": ("host", "port", "username", "password_file", "tls", "keepalive_s"),
    "broker.tls": ("ca_file", "cert_file", "key_file"),
    "agent": ("board_id", "state_dir", "models_dir", "outbox_max_mb", "outbox_retain"),
    "sweep": ("models", "batch_sizes", "precisions", "backend", "dla_core", "precision_method", "calibration_dir",
              "accuracy_set", "accuracy_limit", "power_modes", "clocks", "threads", "redo", "retry_failed", "seed",
              "max_batch"),
    "power": ("source", "tdp_w", "require_measured", "telemetry_rate_hz", "telemetry_samples_hz"),
    "measurement": ("warmup_s", "max_warmup_s", "duration_s", "max_duration_s", "min_iterations",
                    "min_power_samples", "latency_ci", "power_ci", "unstable_cov", "idle_s", "idle_max_age_s",
                    "build_timeout_s", "hang_grace_s"),
}
_MISSING = object()


class _Section:
    """One table of the file: typed getters that raise the one-line ``FILE: [section] key: ...`` error."""

    def __init__(self, file: Path, name: str, data: Any) -> None:
        self.file, self.name = file, name
        if not isinstance(data, dict):
            raise UserError(f"{file}: [{name}] must be a table: write it as a [{name}] header followed by key = value "
                            "lines")
        self.data = data
        unknown = [k for k in data if k not in _KEYS[name]]
        if unknown:
            self.fail(unknown[0], f"unknown key; [{name}] takes {', '.join(_KEYS[name])}")

    def fail(self, key: str, what: str) -> None:
        raise UserError(f"{self.file}: [{self.name}] {key}: {what}")

    def get(self, key: str) -> Any:
        return self.data.get(key, _MISSING)

    def string(self, key: str, example: str, default: Any = None) -> Any:
        value = self.get(key)
        if value is _MISSING:
            return default
        if not isinstance(value, str) or not value.strip():
            self.fail(key, f"{value!r} is not a text: write {key} = {example}")
        return value.strip()

    def integer(self, key: str, lo: int, hi: int, example: str, default: Any = None) -> Any:
        value = self.get(key)
        if value is _MISSING:
            return default
        if isinstance(value, bool) or not isinstance(value, int):
            self.fail(key, f"{value!r} is not a whole number: write {key} = {example}")
        if not lo <= value <= hi:
            self.fail(key, f"{value} is out of range: write a whole number in {lo}-{hi}, e.g. {key} = {example}")
        return value

    def number(self, key: str, example: str, default: Any = None, *, positive: bool = False,
               zero_ok: bool = True) -> Any:
        value = self.get(key)
        if value is _MISSING:
            return default
        if isinstance(value, bool) or not isinstance(value, (int, float)) or not math.isfinite(value):
            self.fail(key, f"{value!r} is not a number: write {key} = {example}")
        if value < 0 or (value == 0 and (positive or not zero_ok)):
            self.fail(key, f"{value!r} must be {'above 0' if positive or not zero_ok else 'at least 0'}: "
                           f"write {key} = {example}")
        return float(value)

    def boolean(self, key: str, default: bool) -> bool:
        value = self.get(key)
        if value is _MISSING:
            return default
        if not isinstance(value, bool):
            self.fail(key, f"{value!r} is not true or false: write {key} = true (or false)")
        return value

    def fraction(self, key: str, example: str, default: float) -> float:
        """A number in (0, 1] (0.01) or a percentage text ("1%")."""
        value = self.get(key)
        if value is _MISSING:
            return default
        if isinstance(value, str):
            with contextlib.suppress(UserError):  # not a fraction: the one-line error below says what to write
                return cli.parse_fraction(value)
        elif not isinstance(value, bool) and isinstance(value, (int, float)) and 0 < value <= 1:
            return float(value)
        self.fail(key, f"{value!r} is not a fraction in (0, 1]: write {key} = {example} (or \"1%\")")
        raise AssertionError  # unreachable: fail() raised

    def path(self, key: str, base: Path, example: str, default: Any = None) -> Any:
        text = self.string(key, example)
        if text is None:
            return default
        if "\0" in text:  # no file system takes it, and os calls raise ValueError rather than OSError on it
            self.fail(key, f"{text!r} holds a NUL character: write a plain path, e.g. {key} = {example}")
        try:
            expanded = Path(text).expanduser()
        except RuntimeError:  # "~nosuchuser/...": expanduser cannot find that user's home
            self.fail(key, f"{text!r}: no such user's home for ~: write an absolute path, e.g. {key} = {example}")
        return _absolute(expanded, base)

    def file_path(self, key: str, base: Path, example: str, default: Any = None) -> Any:
        """A path that must name an existing, readable file."""
        p = self.path(key, base, example, default)
        if p is not None:
            if not p.is_file():
                self.fail(key, f"{p} {'is not a file' if p.exists() else 'does not exist'}: write the path of an "
                               f"existing file, e.g. {key} = {example}")
            if not os.access(p, os.R_OK):
                self.fail(key, f"{p} is not readable by this user: make it readable by the agent's user (dnnprof)")
        return p

    def string_list(self, key: str, example: str, default: Any = None) -> Any:
        value = self.get(key)
        if value is _MISSING:
            return default
        if not isinstance(value, list) or not value or not all(isinstance(v, str) and v.strip() for v in value):
            self.fail(key, f"{value!r} is not a list of texts: write {key} = {example}")
        return [v.strip() for v in value]


def _absolute(p: Path, base: Path) -> Path:
    return p if p.is_absolute() else base / p


def _private(section: _Section, key: str, p: Path, what: str) -> None:
    """Refuse a secret file that group or others can read (``shared.auth``'s rule), naming the key."""
    try:
        auth.check_private(p, what, owner="the agent's user (dnnprof)")
    except UserError as exc:
        section.fail(key, str(exc))


def _read_toml(path: Path) -> dict:
    try:
        import tomllib
    except ImportError:  # Python 3.10
        import tomli as tomllib
    try:
        text = path.read_text(encoding="utf-8")
    except FileNotFoundError:
        raise UserError(f"{path}: no such file: copy the example systemd/agent.toml there, or run "
                        "`sudo dnnagent install-service`, which installs it") from None
    except OSError as exc:
        raise UserError(f"{path}: cannot read it ({exc.strerror or exc}): make it readable by the agent's "
                        "user") from None
    except UnicodeDecodeError:
        raise UserError(f"{path}: not UTF-8 text: save it as UTF-8") from None
    try:
        return tomllib.loads(text)
    except tomllib.TOMLDecodeError as exc:
        raise UserError(f"{path}: not valid TOML: {str(exc).splitlines()[0]}") from None


def load(path: str | Path) -> AgentConfig:
    """Read and check the agent's TOML config; UserError (one line: FILE: [section] key: what to fix, exit status
    ``EX_CONFIG``) otherwise."""
    try:
        return _load(Path(path))
    except UserError as exc:
        raise UserError(str(exc), exit_code=EX_CONFIG) from None


def _load(path: Path) -> AgentConfig:
    data = _read_toml(path)
    base = path.parent.absolute()
    unknown = [k for k in data if k not in ("broker", "agent", "sweep", "power", "measurement")]
    if unknown:
        raise UserError(f"{path}: [{unknown[0]}]: unknown section: the sections are [broker], [agent], [sweep], "
                        "[power] and [measurement]")
    if "broker" not in data:
        raise UserError(f"{path}: [broker]: missing: add a [broker] section with host = \"BROKER-ADDRESS\"")
    broker = _broker(_Section(path, "broker", data["broker"]), base)

    agent = _Section(path, "agent", data.get("agent", {}))
    board_id = agent.string("board_id", '"orin-01"')
    if board_id is None:
        board_id = board.default_board_id()
    elif not topics.ID_PATTERN.match(board_id):
        agent.fail("board_id", f"{board_id!r} is not a valid id: use 1-63 characters of a-z, 0-9 and '-', starting "
                               "with a letter or digit, e.g. board_id = \"orin-01\"")
    state_dir = agent.path("state_dir", base, '"/var/lib/dnnprof"', DEFAULT_STATE_DIR)
    models_dir = agent.path("models_dir", base, '"/var/lib/dnnprof/models"', state_dir / "models")
    outbox_max_mb = agent.integer("outbox_max_mb", 1, 1 << 20, "256", DEFAULT_OUTBOX_MAX_MB)
    outbox_retain = agent.integer("outbox_retain", 0, 10_000_000, "10000", DEFAULT_OUTBOX_RETAIN)

    sweep = _Section(path, "sweep", data.get("sweep", {}))
    models = _models(sweep, models_dir, path)
    batches = _batches(sweep)
    precisions = sweep.string_list("precisions", '["fp32", "fp16"]', ["fp32"])
    for p in precisions:
        if p.lower() not in PRECISIONS:
            sweep.fail("precisions", f"{p!r} is not a precision: write a list of {', '.join(PRECISIONS)}, "
                                     "e.g. precisions = [\"fp32\", \"fp16\"]")
    precisions = list(dict.fromkeys(p.lower() for p in precisions))
    backend = (sweep.string("backend", '"tensorrt"', "auto")).lower()
    if backend not in BACKENDS:
        sweep.fail("backend", f"{backend!r} is not a backend: write one of {', '.join(BACKENDS)}")
    dla_core = sweep.integer("dla_core", 0, 15, "0")
    calibration_dir = sweep.path("calibration_dir", base, '"/var/lib/dnnprof/calibration"')
    if calibration_dir is not None and not calibration_dir.is_dir():
        sweep.fail("calibration_dir", f"{calibration_dir} is not a directory: write the folder of images int8 is "
                                      "calibrated on, or leave the key out (int8 is then calibrated on random data "
                                      "and labelled timing-only)")
    precision_method = sweep.string("precision_method", '"onnx_converted"')
    if precision_method is not None and precision_method.lower() not in PRECISION_METHODS:
        sweep.fail("precision_method", f"{precision_method!r} is not a method: write one of "
                                       f"{', '.join(PRECISION_METHODS)}")
    accuracy_set = sweep.path("accuracy_set", base, '"/var/lib/dnnprof/accuracy"')
    if accuracy_set is not None and not accuracy_set.is_dir():
        sweep.fail("accuracy_set", f"{accuracy_set} is not a directory: write the folder of labelled images "
                                   "(<class index or name>/*.jpg), or leave the key out (accuracy not measured)")
    accuracy_limit = sweep.integer("accuracy_limit", 1, 10_000_000, "1000")
    if accuracy_limit is not None and accuracy_set is None:
        sweep.fail("accuracy_limit", "takes a subset of accuracy_set: add accuracy_set, or remove the key")
    power_modes = sweep.get("power_modes")
    if power_modes is _MISSING:
        power_modes = None
    elif power_modes == "all":
        power_modes = ["all"]
    elif (not isinstance(power_modes, list) or not power_modes
          or not all(isinstance(v, (int, str)) and not isinstance(v, bool) and str(v).strip() for v in power_modes)):
        sweep.fail("power_modes", f"{power_modes!r} is not a list of modes: write power_modes = [0, 3] (nvpmodel "
                                  "ids), [\"MAXN\", \"MODE_50W\"] (names) or \"all\"")
    else:
        power_modes = [str(v).strip() for v in power_modes]
    clock_states = sweep.string_list("clocks", '["dvfs", "locked"]')
    for state in clock_states or ():
        if state.lower() not in ("dvfs", "locked"):
            sweep.fail("clocks", f"{state!r} is not a clock state: write clocks = [\"dvfs\", \"locked\"] (dvfs: "
                                 "scaling within the mode's caps; locked: pinned at them by jetson_clocks)")
    threads = sweep.integer("threads", 1, 1024, "4")
    redo = sweep.boolean("redo", False)
    retry_failed = sweep.boolean("retry_failed", False)
    seed = sweep.integer("seed", 0, 2**32 - 1, "0", 0)
    max_batch = sweep.integer("max_batch", 1, 65536, "256", DEFAULT_MAX_BATCH)

    power = _Section(path, "power", data.get("power", {}))
    source = power.string("source", '"auto"', "auto")
    _check_source(power, source)
    tdp_w = power.number("tdp_w", "15", positive=True)
    require_measured = power.boolean("require_measured", False)
    rate_hz = power.number("telemetry_rate_hz", "1", telemetry.DEFAULT_RATE_HZ)
    samples_hz = power.number("telemetry_samples_hz", "10", telemetry.DEFAULT_SAMPLES_HZ, positive=True)
    for key, value in (("telemetry_rate_hz", rate_hz), ("telemetry_samples_hz", samples_hz)):
        if telemetry.rate_problem(value, zero_off=True) == "too_fast":  # number() refused the others
            power.fail(key, f"{value:g} per second is too fast: write at most {telemetry.MAX_HZ:g}")

    settings = _settings(_Section(path, "measurement", data.get("measurement", {})), path)
    return AgentConfig(path=path, broker=broker, board_id=board_id, state_dir=state_dir, models_dir=models_dir,
                       models=models, batch_sizes=batches, precisions=precisions, backend=backend, dla_core=dla_core,
                       calibration_dir=calibration_dir, precision_method=precision_method and precision_method.lower(),
                       accuracy_set=accuracy_set, power_modes=power_modes, accuracy_limit=accuracy_limit,
                       clocks=[c.lower() for c in clock_states] if clock_states else None,
                       threads=threads, redo=redo, retry_failed=retry_failed,
                       seed=seed, power_source=source, tdp_w=tdp_w, require_measured=require_measured,
                       telemetry_rate_hz=rate_hz,
                       telemetry_samples_hz=samples_hz, settings=settings, outbox_max_mb=outbox_max_mb,
                       outbox_retain=outbox_retain, max_batch=max_batch)


def _broker(section: _Section, base: Path) -> Broker:
    host = section.string("host", '"192.168.1.10"')
    if host is None:
        section.fail("host", "missing: write the address of the MQTT broker, e.g. host = \"192.168.1.10\"")
    host = host.strip("[]")  # "[::1]" and "::1" alike
    tls = None
    if "tls" in section.data:
        t = _Section(section.file, "broker.tls", section.data["tls"])
        tls = Tls(ca_file=t.file_path("ca_file", base, '"/etc/dnnprof/ca.crt"'),
                  cert_file=t.file_path("cert_file", base, '"/etc/dnnprof/client.crt"'),
                  key_file=t.file_path("key_file", base, '"/etc/dnnprof/client.key"'))
        if (tls.cert_file is None) != (tls.key_file is None):
            t.fail("key_file" if tls.key_file is None else "cert_file",
                   "a client certificate needs both cert_file and key_file: write both, or neither")
        if tls.key_file is not None:
            _private(t, "key_file", tls.key_file, "the client's private key")
        try:
            tls.context()  # a garbled certificate or a key that does not match fails here, not at connect
        except UserError as exc:
            t.fail("cert_file" if tls.cert_file else "ca_file", str(exc))
    port = section.integer("port", 1, 65535, "8883" if tls else "1883", 8883 if tls else topics.DEFAULT_PORT)
    username = section.string("username", '"orin-01"')
    password_file = section.file_path("password_file", base, '"/etc/dnnprof/mqtt-password"')
    password = None
    if password_file is not None:
        if username is None:
            section.fail("password_file", "MQTT sends a password only with a user name: add username = \"...\"")
        _private(section, "password_file", password_file, "the broker password")
        try:
            password = auth.read_password(password_file, what="the password")
        except UserError as exc:
            section.fail("password_file", str(exc))
    keepalive_s = section.integer("keepalive_s", 1, 65535, "30", 30)
    return Broker(host=host, port=port, tls=tls, username=username, password_file=password_file, password=password,
                  keepalive_s=keepalive_s)


def _models(section: _Section, models_dir: Path, path: Path) -> list[Path]:
    """The configured ONNX files (each inside models_dir), or every ``*.onnx`` in models_dir when none is named."""
    if not models_dir.is_dir():
        raise UserError(f"{path}: [agent] models_dir: {models_dir} is not a directory: create it and put the ONNX "
                        f"files there (`dnnagent models generate --out {models_dir}`), or write "
                        "models_dir = \"/path/to/models\"")
    names = section.string_list("models", '["resnet18.onnx", "mobilenet_v2.onnx"]')
    if names is None:
        found = sorted(p for p in models_dir.glob("*.onnx") if p.is_file())
        if not found:
            section.fail("models", f"not given, and {models_dir} holds no .onnx file: put models there "
                                   f"(`dnnagent models generate --out {models_dir}`) or list them, e.g. "
                                   "models = [\"resnet18.onnx\"]")
        return found
    models = []
    for name in names:
        try:
            models.append(model_path(name, models_dir))
        except UserError as exc:
            section.fail("models", f"{exc}, e.g. models = [\"resnet18.onnx\"] (or change [agent] models_dir)")
    return list(dict.fromkeys(models))


def model_path(name: str, models_dir: Path) -> Path:
    """The ONNX file ``name`` inside ``models_dir`` (relative to it, or absolute); UserError saying why not: a path
    that leads outside (``..``, a symbolic link, an absolute path elsewhere), a NUL, or no such file."""
    if not isinstance(name, str) or not name:
        raise UserError(f"{name!r} is not a file name: name an ONNX file in {models_dir}")
    if "\0" in name:  # resolve() raises ValueError, not OSError, on it
        raise UserError(f"{name!r} holds a NUL character: name an ONNX file in {models_dir}")
    p = _absolute(Path(name), models_dir)
    try:
        inside = p.resolve().is_relative_to(models_dir.resolve())
    except (OSError, RuntimeError):  # RuntimeError: a symbolic link loop
        inside = False
    if not inside:
        raise UserError(f"{name!r} is outside models_dir {models_dir}: name a file inside it")
    if not p.is_file():
        raise UserError(f"{name!r}: {p} {'is not a file' if p.exists() else 'does not exist'}: name an ONNX file in "
                        f"{models_dir}")
    return p


def _batches(section: _Section) -> list[int]:
    value = section.get("batch_sizes")
    if value is _MISSING:
        return [1, 2, 4, 8]
    ok = isinstance(value, list) and value and all(isinstance(v, int) and not isinstance(v, bool) for v in value)
    if not ok or not all(1 <= v <= 4096 for v in value):
        section.fail("batch_sizes", f"{value!r} is not a list of batch sizes in 1-4096: write "
                                    "batch_sizes = [1, 2, 4, 8]")
    return list(dict.fromkeys(value))


def _check_source(section: _Section, spec: str) -> None:
    """A spec the power package parses, and a live one (the service measures; it never replays a log). Whether the
    source works on this machine is for ``service.check`` (``serve --check``), which opens it."""
    from dnnprof.agent.power import SOURCES, SPECS, is_replay, parse_spec

    name, arg = parse_spec(spec)
    if name not in ("auto", "none", *SOURCES):
        section.fail("source", f"{spec!r} is not a power source: write one of {SPECS} (the service needs a live "
                               "source: tegrastats, not a tegrastats:LOGFILE replay)")
    if is_replay(spec):
        section.fail("source", f"{spec!r} replays a recorded tegrastats log and cannot measure the sweep: write "
                               "source = \"tegrastats\" (the live tool) or another live source; read the log with "
                               f"`dnnagent power --source {spec}`")
    if arg and name in ("none", "jtop"):
        why = "reads the board through /run/jtop.sock" if name == "jtop" else "measures nothing"
        section.fail("source", f"{spec!r}: {name} takes no ROOT (it {why}): write source = \"{name}\"")


def _settings(section: _Section, path: Path) -> profiler.Settings:
    defaults = profiler.Settings()
    warmup = section.number("warmup_s", "0.2")
    window = section.number("duration_s", "1", positive=True)
    try:
        return profiler.Settings.with_limits(
            warmup_min_s=warmup, warmup_max_s=section.number("max_warmup_s", "10"),
            window_min_s=window, window_max_s=section.number("max_duration_s", "20", positive=True),
            min_iterations=section.integer("min_iterations", 1, 10**9, "10", defaults.min_iterations),
            min_power_samples=section.integer("min_power_samples", 0, 10**9, "10", defaults.min_power_samples),
            latency_ci=section.fraction("latency_ci", "0.01", defaults.latency_ci),
            power_ci=section.fraction("power_ci", "0.02", defaults.power_ci),
            unstable_cov=section.fraction("unstable_cov", "0.1", defaults.unstable_cov),
            idle_s=section.number("idle_s", "1", defaults.idle_s),
            idle_max_age_s=section.number("idle_max_age_s", "60", defaults.idle_max_age_s),
            build_timeout_s=section.number("build_timeout_s", "1800", defaults.build_timeout_s, positive=True),
            hang_grace_s=section.number("hang_grace_s", "60", defaults.hang_grace_s, positive=True),
        )
    except ValueError as exc:
        raise UserError(f"{path}: [measurement]: inconsistent settings: {exc}") from None
