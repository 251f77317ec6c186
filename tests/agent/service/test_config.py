"""agent.toml: what loads, what every mistake says (one line: FILE: [section] key: what to write), and the example
in systemd/ kept loadable."""

from __future__ import annotations

import json
import re
import shutil
import subprocess
import sys
from pathlib import Path

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from typer.testing import CliRunner

from dnnprof.agent.cli import app
from dnnprof.agent.service import config, install
from dnnprof.shared.errors import UserError

REPO = Path(__file__).parents[3]
EXAMPLE = REPO / "systemd" / "agent.toml"


@pytest.fixture
def models(tmp_path) -> Path:
    """A models_dir with two (empty) .onnx files: the config checks that files exist, not what they hold."""
    d = tmp_path / "models"
    d.mkdir()
    for name in ("resnet18.onnx", "mobilenet_v2.onnx"):
        (d / name).write_bytes(b"")
    return d


def write(tmp_path: Path, text: str, name: str = "agent.toml") -> Path:
    path = tmp_path / name
    path.write_text(text)
    return path


def minimal(models: Path, extra: str = "", broker: str = "") -> str:
    return f'[broker]\nhost = "10.0.0.2"\n{broker}\n[agent]\nmodels_dir = "{models}"\n{extra}'


def test_minimal_config_takes_the_defaults(tmp_path, models):
    cfg = config.load(write(tmp_path, minimal(models)))
    assert cfg.broker.host == "10.0.0.2" and cfg.broker.port == 1883 and cfg.broker.tls is None
    assert cfg.broker.address == "10.0.0.2:1883"
    assert cfg.state_dir == Path("/var/lib/dnnprof") and cfg.engine_cache == Path("/var/lib/dnnprof/engines")
    assert cfg.models == [models / "mobilenet_v2.onnx", models / "resnet18.onnx"]  # every .onnx, sorted
    assert cfg.batch_sizes == [1, 2, 4, 8] and cfg.precisions == ["fp32"] and cfg.backend == "auto"
    assert cfg.redo is False and cfg.dla_core is None and cfg.power_source == "auto"
    assert re.fullmatch(r"[a-z0-9][a-z0-9-]*", cfg.board_id)  # the hostname's slug
    assert cfg.settings.window_min_s == 1.0 and cfg.settings.window_max_s == 20.0


def test_every_key_is_read(tmp_path, models):
    calib = tmp_path / "calib"
    calib.mkdir()
    text = minimal(models, f"""board_id = "orin-01"
state_dir = "state"
[sweep]
models = ["resnet18.onnx"]
batch_sizes = [1, 8, 1]
precisions = ["FP16", "int8"]
backend = "TensorRT"
dla_core = 1
calibration_dir = "{calib}"
threads = 2
redo = true
retry_failed = true
seed = 7
[power]
source = "estimate"
tdp_w = 15
telemetry_rate_hz = 0
telemetry_samples_hz = 50
[measurement]
warmup_s = 0.5
max_warmup_s = 2
duration_s = 2
max_duration_s = 4
min_iterations = 3
min_power_samples = 0
latency_ci = "2%"
power_ci = 0.05
unstable_cov = 0.2
idle_s = 0
idle_max_age_s = 30
build_timeout_s = 600
hang_grace_s = 5
""", broker="port = 1884")
    cfg = config.load(write(tmp_path, text))
    assert cfg.board_id == "orin-01" and cfg.broker.port == 1884
    assert cfg.state_dir == tmp_path / "state"  # relative to the config file's folder
    assert cfg.models == [models / "resnet18.onnx"] and cfg.batch_sizes == [1, 8]
    assert cfg.precisions == ["fp16", "int8"] and cfg.backend == "tensorrt" and cfg.dla_core == 1
    assert cfg.calibration_dir == calib and cfg.threads == 2 and cfg.redo is True and cfg.seed == 7
    assert cfg.power_source == "estimate" and cfg.tdp_w == 15.0 and cfg.telemetry_rate_hz == 0.0
    assert cfg.telemetry_samples_hz == 50.0
    s = cfg.settings
    assert (s.warmup_min_s, s.warmup_max_s, s.window_min_s, s.window_max_s) == (0.5, 2.0, 2.0, 4.0)
    assert (s.min_iterations, s.min_power_samples, s.latency_ci, s.power_ci) == (3, 0, 0.02, 0.05)
    assert (s.unstable_cov, s.idle_s, s.idle_max_age_s) == (0.2, 0.0, 30.0)
    assert (s.build_timeout_s, s.hang_grace_s, cfg.retry_failed) == (600.0, 5.0, True)


@pytest.mark.parametrize("extra, broker, expected", [
    ("", "porrt = 1883", "[broker] porrt: unknown key; [broker] takes host, port,"),
    ("", 'port = "1883"', "[broker] port: '1883' is not a whole number: write port = 1883"),
    ("", "port = 70000", "[broker] port: 70000 is out of range: write a whole number in 1-65535"),
    ("", "port = true", "[broker] port: True is not a whole number"),
    ('board_id = "Orin_01"', "", "[agent] board_id: 'Orin_01' is not a valid id"),
    ("[sweep]\nbatch_sizes = [1, 0]", "", "[sweep] batch_sizes: [1, 0] is not a list of batch sizes in 1-4096"),
    ("[sweep]\nbatch_sizes = [true]", "", "[sweep] batch_sizes: [True] is not a list of batch sizes"),
    ("[sweep]\nbatch_sizes = 4", "", "write batch_sizes = [1, 2, 4, 8]"),
    ('[sweep]\nprecisions = ["fp8"]', "", "[sweep] precisions: 'fp8' is not a precision: write a list of fp32,"),
    ('[sweep]\nbackend = "tflite"', "", "[sweep] backend: 'tflite' is not a backend: write one of auto, tensorrt"),
    ("[sweep]\ndla_core = -1", "", "[sweep] dla_core: -1 is out of range"),
    ('[sweep]\nredo = "yes"', "", "[sweep] redo: 'yes' is not true or false: write redo = true"),
    ('[sweep]\nmodels = ["../outside.onnx"]', "", "[sweep] models: '../outside.onnx' is outside models_dir"),
    ('[sweep]\nmodels = ["/etc/passwd"]', "", "[sweep] models: '/etc/passwd' is outside models_dir"),
    ('[sweep]\nmodels = ["nope.onnx"]', "", "[sweep] models: 'nope.onnx': "),
    ('[sweep]\nmodels = []', "", "[sweep] models: [] is not a list of texts"),
    ('[sweep]\ncalibration_dir = "missing"', "", "[sweep] calibration_dir: "),
    ('[sweep]\naccuracy_set = "missing"', "", "[sweep] accuracy_set: "),
    ('[sweep]\naccuracy_limit = 10', "", "[sweep] accuracy_limit: takes a subset of accuracy_set"),
    ('[sweep]\nprecision_method = "fast"', "", "[sweep] precision_method: 'fast' is not a method: write one of auto"),
    ('[power]\nsource = "magic"', "", "[power] source: 'magic' is not a power source: write one of auto, none,"),
    ('[power]\nsource = "tegrastats:/var/log/t.log"', "",
     "[power] source: 'tegrastats:/var/log/t.log' replays a recorded tegrastats log and cannot measure the sweep"),
    ('[power]\nsource = "jtop:/mnt"', "", "[power] source: 'jtop:/mnt': jtop takes no ROOT"),
    ('[power]\nsource = "none:x"', "", "[power] source: 'none:x': none takes no ROOT"),
    ("[power]\ntelemetry_rate_hz = 1000", "", "[power] telemetry_rate_hz: 1000 per second is too fast"),
    ("[power]\ntdp_w = 0", "", "[power] tdp_w: 0 must be above 0: write tdp_w = 15"),
    ("[measurement]\nlatency_ci = 2", "", "[measurement] latency_ci: 2 is not a fraction in (0, 1]"),
    ('[measurement]\npower_ci = "lots"', "", "[measurement] power_ci: 'lots' is not a fraction"),
    ("[measurement]\nduration_s = 5\nmax_duration_s = 1", "", "[measurement]: inconsistent settings: "),
    ("[measurement]\nhang_grace_s = 0", "", "[measurement] hang_grace_s: 0 must be above 0: write hang_grace_s = 60"),
    ("[sweep]\nretry_failed = 1", "", "[sweep] retry_failed: "),
    ("[measurement]\nwarmup = 1", "", "[measurement] warmup: unknown key; [measurement] takes warmup_s,"),
    ("[brokers]\nhost = 'x'", "", "[brokers]: unknown section: the sections are [broker], [agent],"),
    ("[sweep]\n[sweep.extra]\nx = 1", "", "[sweep] extra: unknown key"),
    ("", 'username = "u"\npassword_file = "nope"', "[broker] password_file: "),
    ("", "[broker.tls]\ncert_file = 'x'", "[broker.tls] cert_file: "),
    ("", "[broker.tls]\nca = 'x'", "[broker.tls] ca: unknown key; [broker.tls] takes ca_file, cert_file, key_file"),
])
def test_mistakes_are_one_line_naming_section_and_key(tmp_path, models, extra, broker, expected):
    (models.parent / "outside.onnx").write_bytes(b"")
    path = write(tmp_path, minimal(models, extra, broker))
    with pytest.raises(UserError) as caught:
        config.load(path)
    assert caught.value.exit_code == config.EX_CONFIG == 78  # the unit's RestartPreventExitStatus
    message = str(caught.value)
    assert "\n" not in message
    assert message.startswith(f"{path}: [")
    assert expected in message


def test_a_symlink_out_of_models_dir_is_outside(tmp_path, models):
    secret = tmp_path / "elsewhere.onnx"
    secret.write_bytes(b"")
    (models / "link.onnx").symlink_to(secret)
    with pytest.raises(UserError, match=r"\[sweep\] models: 'link.onnx' is outside models_dir"):
        config.load(write(tmp_path, minimal(models, '[sweep]\nmodels = ["link.onnx"]')))


def test_missing_host_file_and_bad_toml(tmp_path, models):
    with pytest.raises(UserError, match=r"\[broker\] host: missing: write the address of the MQTT broker"):
        config.load(write(tmp_path, f'[broker]\nport = 1\n[agent]\nmodels_dir = "{models}"'))
    with pytest.raises(UserError, match=r"\[broker\]: missing: add a \[broker\] section"):
        config.load(write(tmp_path, f'[agent]\nmodels_dir = "{models}"'))
    with pytest.raises(UserError, match=r"agent.toml: not valid TOML: "):
        config.load(write(tmp_path, "[broker\nhost = 1"))
    with pytest.raises(UserError, match=r"nowhere.toml: no such file: copy the example systemd/agent.toml"):
        config.load(tmp_path / "nowhere.toml")
    empty = tmp_path / "empty"
    empty.mkdir()
    with pytest.raises(UserError, match=r"\[sweep\] models: not given, and .* holds no .onnx file"):
        config.load(write(tmp_path, minimal(empty)))
    with pytest.raises(UserError, match=r"\[agent\] models_dir: .* is not a directory"):
        config.load(write(tmp_path, minimal(tmp_path / "absent")))


def test_password_file_must_be_private_and_never_shown(tmp_path, models):
    secret = tmp_path / "mqtt-password"
    secret.write_text("s3cret-Pa55\n")
    secret.chmod(0o640)
    path = write(tmp_path, minimal(models, broker=f'username = "orin-01"\npassword_file = "{secret}"'))
    with pytest.raises(UserError) as caught:
        config.load(path)
    message = str(caught.value)
    assert "[broker] password_file: " in message and "readable by group or others (mode 0640)" in message
    assert f"chmod 600 {secret}" in message and "s3cret" not in message
    secret.chmod(0o600)
    cfg = config.load(path)
    assert cfg.broker.password == "s3cret-Pa55"  # the trailing newline is not part of it
    for shown in (repr(cfg), str(cfg), repr(cfg.broker)):
        assert "s3cret" not in shown
    assert "password='***'" in repr(cfg.broker)
    # A password needs a user name (MQTT sends it only with one).
    with pytest.raises(UserError, match=r"\[broker\] password_file: MQTT sends a password only with a user name"):
        config.load(write(tmp_path, minimal(models, broker=f'password_file = "{secret}"'), "nouser.toml"))
    secret.write_text("\n")
    with pytest.raises(UserError, match=r"\[broker\] password_file: .* is empty"):
        config.load(path)


@pytest.fixture(scope="module")
def pki(tmp_path_factory) -> dict[str, Path]:
    """A CA and a client certificate it signed (openssl CLI)."""
    if shutil.which("openssl") is None:
        pytest.skip("needs the openssl command")
    d = tmp_path_factory.mktemp("pki")

    def openssl(*args: str) -> None:
        subprocess.run(["openssl", *args], cwd=d, check=True, capture_output=True)

    openssl("req", "-x509", "-newkey", "rsa:2048", "-nodes", "-keyout", "ca.key", "-out", "ca.crt", "-days", "2",
            "-subj", "/CN=dnnprof test CA")
    openssl("req", "-newkey", "rsa:2048", "-nodes", "-keyout", "client.key", "-out", "client.csr",
            "-subj", "/CN=orin-01")
    openssl("x509", "-req", "-in", "client.csr", "-CA", "ca.crt", "-CAkey", "ca.key", "-CAcreateserial",
            "-out", "client.crt", "-days", "2")
    (d / "client.key").chmod(0o600)
    return {name: d / name for name in ("ca.crt", "client.crt", "client.key", "ca.key")}


def test_tls_files(tmp_path, models, pki):
    tls = (f'[broker.tls]\nca_file = "{pki["ca.crt"]}"\ncert_file = "{pki["client.crt"]}"\n'
           f'key_file = "{pki["client.key"]}"')
    cfg = config.load(write(tmp_path, minimal(models, broker=tls)))
    assert cfg.broker.port == 8883  # the TLS default
    assert cfg.broker.tls.ca_file == pki["ca.crt"] and cfg.broker.tls.key_file == pki["client.key"]
    assert cfg.broker.tls.context().check_hostname
    # The key must be private, and must match the certificate.
    loose = tmp_path / "loose.key"
    loose.write_bytes(pki["client.key"].read_bytes())
    loose.chmod(0o644)
    with pytest.raises(UserError, match=r"\[broker.tls\] key_file: .* readable by group or others"):
        config.load(write(tmp_path, minimal(models, broker=tls.replace(str(pki["client.key"]), str(loose)))))
    wrong = tmp_path / "wrong.key"
    wrong.write_bytes(pki["ca.key"].read_bytes())
    wrong.chmod(0o600)
    with pytest.raises(UserError, match=r"\[broker.tls\] cert_file: cannot load it"):
        config.load(write(tmp_path, minimal(models, broker=tls.replace(str(pki["client.key"]), str(wrong)))))


def test_example_config_loads_with_every_commented_key(tmp_path, pki):
    """systemd/agent.toml loads with its paths pointed at temporary files, and so does every commented-out key."""
    assert EXAMPLE.read_text() == install.EXAMPLE_CONFIG  # what install-service installs is the file in the repo
    models = tmp_path / "models"
    models.mkdir()
    for name in ("resnet18.onnx", "mobilenet_v2.onnx"):
        (models / name).write_bytes(b"")
    (tmp_path / "calibration").mkdir()
    (tmp_path / "accuracy").mkdir()
    password = tmp_path / "mqtt-password"
    password.write_text("pw\n")
    password.chmod(0o600)
    paths = {"/var/lib/dnnprof/models": models, "/var/lib/dnnprof/calibration": tmp_path / "calibration",
             "/var/lib/dnnprof/accuracy": tmp_path / "accuracy",
             "/var/lib/dnnprof": tmp_path / "state", "/etc/dnnprof/mqtt-password": password,
             "/etc/dnnprof/ca.crt": pki["ca.crt"], "/etc/dnnprof/client.crt": pki["client.crt"],
             "/etc/dnnprof/client.key": pki["client.key"]}

    def adjust(text: str) -> str:
        for old, new in paths.items():  # longest first: the dict is ordered that way
            text = text.replace(f'"{old}"', f'"{new}"')
        return text

    as_shipped = config.load(write(tmp_path, adjust(EXAMPLE.read_text())))
    assert as_shipped.broker.host == "192.168.1.10" and as_shipped.precisions == ["fp32", "fp16"]
    assert as_shipped.models_dir == models and as_shipped.power_source == "auto"
    # Uncomment "# key = value" lines and "# [section]" headers: every documented key must load as written.
    uncommented = re.sub(r"(?m)^# (\[[a-z.]+\]$|[a-z_]+ = )", r"\1", EXAMPLE.read_text())
    assert uncommented.count("\n#") < EXAMPLE.read_text().count("\n#")
    full = config.load(write(tmp_path, adjust(uncommented), "full.toml"))
    assert full.broker.port == 8883 and full.broker.username == "orin-01" and full.broker.password == "pw"
    assert full.broker.tls is not None and full.board_id == "orin-01" and full.dla_core == 0
    assert full.models == [models / "resnet18.onnx", models / "mobilenet_v2.onnx"]
    assert full.state_dir == tmp_path / "state" and full.calibration_dir == tmp_path / "calibration"
    assert full.accuracy_set == tmp_path / "accuracy" and full.accuracy_limit == 1000
    assert full.precision_method == "onnx_converted" and full.require_measured is True


def test_serve_reports_a_bad_config_in_one_line(tmp_path, models):
    path = write(tmp_path, minimal(models, "[sweep]\nbatch_sizes = [0]"))
    result = CliRunner().invoke(app, ["serve", "--config", str(path)])
    assert isinstance(result.exception, UserError) and result.exception.exit_code == 78
    assert str(result.exception) == (f"{path}: [sweep] batch_sizes: [0] is not a list of batch sizes in 1-4096: write "
                                     "batch_sizes = [1, 2, 4, 8]")
    result = CliRunner().invoke(app, ["serve", "--config", str(tmp_path / "missing.toml")])
    assert isinstance(result.exception, UserError) and "no such file" in str(result.exception)


def test_serve_check(tmp_path, model_dir):
    state = tmp_path / "state"
    path = write(tmp_path, minimal(model_dir, f'state_dir = "{state}"\n[power]\nsource = "none"'))
    result = CliRunner().invoke(app, ["serve", "--config", str(path), "--check"])
    assert result.exit_code == 0, result.output
    assert "OK — board" in result.output and "1 models x 4 batch sizes x 1 precisions on onnxruntime " in result.output
    assert "power none (no energy)" in result.output
    assert not state.exists()  # a check creates nothing
    # --check opens the models too: a file that is not ONNX is named.
    bad = tmp_path / "bad"
    bad.mkdir()
    (bad / "junk.onnx").write_bytes(b"not onnx")
    result = CliRunner().invoke(app, ["serve", "--config", str(write(tmp_path, minimal(bad))), "--check"])
    assert isinstance(result.exception, UserError) and "junk.onnx is not an ONNX model" in str(result.exception)


@pytest.mark.parametrize("extra, expected", [
    ('[sweep]\nbackend = "onnxruntime"\ndla_core = 0', "[sweep] dla_core: only the tensorrt backend uses it"),
    ('[power]\nsource = "ina3221:{empty}"', "[power] source: power source 'ina3221' is not available: "),
    ('[power]\nsource = "rapl:{empty}"', "[power] source: power source 'rapl' is not available: "),
    ('state_dir = "{blocked}/state"', "[agent] state_dir: cannot write "),
])
def test_serve_check_finds_what_a_start_would_fail_on(tmp_path, model_dir, extra, expected):
    """Past the file itself: the backend, its precisions and options, the power source (opened), the state
    directory — every error a start hits before connecting, in one line, with the start's exit status 78."""
    empty = tmp_path / "empty-root"
    empty.mkdir()
    blocked = tmp_path / "a-file"
    blocked.write_text("")
    path = write(tmp_path, minimal(model_dir, extra.format(empty=empty, blocked=blocked)))
    result = CliRunner().invoke(app, ["serve", "--config", str(path), "--check"])
    assert isinstance(result.exception, UserError), result.output
    message = str(result.exception)
    assert result.exception.exit_code == 78 and "\n" not in message
    assert message.startswith(f"{path}: {expected}"), message


def test_bad_config_exits_78_with_one_line_on_stderr(tmp_path, models):
    """As systemd would see it: `dnnagent serve` prints `dnnagent: error: ...` on one line and exits 78, which the
    unit does not restart (RestartPreventExitStatus=78)."""
    path = write(tmp_path, minimal(models, '[power]\nsource = "magic"'))
    done = subprocess.run([sys.executable, "-m", "dnnprof.agent", "serve", "--config", str(path)],
                          capture_output=True, text=True, timeout=120)
    assert done.returncode == 78 and done.stdout == ""
    [line] = done.stderr.splitlines()
    assert line.startswith(f"dnnagent: error: {path}: [power] source: 'magic' is not a power source: write one of "
                           "auto, none, ")
    assert "rapl[:ROOT]" in line


# --- fuzzing: whatever the file holds, load() answers with a config or a one-line UserError, nothing else --------

_fuzz = settings(max_examples=200, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])


def _check_load(path: Path) -> None:
    try:
        config.load(path)
    except UserError as exc:
        assert exc.exit_code == config.EX_CONFIG
        assert str(exc) and "\n" not in str(exc)


@_fuzz
@given(data=st.binary(max_size=300))
def test_fuzz_arbitrary_bytes_load_or_user_error(tmp_path, data):
    path = tmp_path / "agent.toml"
    path.write_bytes(data)
    _check_load(path)


@_fuzz
@given(text=st.text(max_size=300))
def test_fuzz_arbitrary_text_load_or_user_error(tmp_path, text):
    path = tmp_path / "agent.toml"
    path.write_text(text, encoding="utf-8")
    _check_load(path)


def _toml(value) -> str:
    """``value`` as a TOML value: strings as basic strings (JSON's escapes are TOML's), NaN and inf bare."""
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, float):
        return "nan" if value != value else ("inf" if value > 0 else "-inf") if abs(value) == float("inf") \
            else repr(value)
    if isinstance(value, str):
        return json.dumps(value, ensure_ascii=False).replace("\x7f", "\\u007f")
    if isinstance(value, list):
        return "[" + ", ".join(_toml(v) for v in value) + "]"
    if isinstance(value, dict):
        return "{" + ", ".join(f"{json.dumps(k)} = {_toml(v)}" for k, v in value.items()) + "}"
    return str(value)  # int, date


# Values a person might write (or mistype) for any key: wrong types, huge and negative numbers, NaN and infinity,
# paths with NUL, "~user" and "..", empty strings and lists, dates, nested tables.
_toml_values = st.recursive(
    st.booleans() | st.integers() | st.integers(min_value=2**63 - 2, max_value=2**63 - 1) | st.floats()
    | st.dates()
    | st.sampled_from(["", " ", "auto", "none", "tegrastats", "tegrastats:/x", "jtop:/x", "rapl", "estimate",
                       "fp16", "INT8", "tensorrt", "1%", "nan%", "200%", "0", "~", "~nosuchuser/x", "a\x00b", "..",
                       "../../etc/passwd", "/", "/dev/null", "[::1]", "10.0.0.2", "resnet18.onnx"])
    | st.text(max_size=12),
    lambda children: st.lists(children, max_size=3) | st.dictionaries(st.text(max_size=6), children, max_size=2),
    max_leaves=6,
)


@st.composite
def near_valid_configs(draw, models: Path) -> str:
    """A valid config with a few keys of its sections set to odd values, sections replaced, or unknown keys."""
    sections = {"broker": {"host": "10.0.0.2"}, "agent": {"models_dir": str(models)}}
    for _ in range(draw(st.integers(min_value=1, max_value=4))):
        name = draw(st.sampled_from(sorted(config._KEYS) + ["nonsense"]))
        key = draw(st.sampled_from(config._KEYS.get(name, ()) + ("extra",)))
        top = name.split(".")[0]
        if draw(st.integers(min_value=0, max_value=9)) == 0:  # the whole section, not a table
            sections[top] = draw(_toml_values)
            continue
        target = sections.setdefault(top, {})
        if name == "broker.tls" and isinstance(target, dict):
            target = target.setdefault("tls", {})
        if isinstance(target, dict):  # a section already replaced by a value stays that value
            target[key] = draw(_toml_values)
    lines = []
    for name, body in sections.items():
        if isinstance(body, dict):
            lines.append(f"[{name}]")
            lines += [f"{json.dumps(k)} = {_toml(v)}" for k, v in body.items()]
        else:
            lines.append(f"{name} = {_toml(body)}")
    return "\n".join(lines) + "\n"


@_fuzz
@given(data=st.data())
def test_fuzz_near_valid_configs_load_or_user_error(tmp_path, models, data):
    path = tmp_path / "agent.toml"
    path.write_text(data.draw(near_valid_configs(models)), encoding="utf-8")
    _check_load(path)


@pytest.mark.parametrize("extra, expected", [
    ('models_dir = "~nosuchuser/models"', r"\[agent\] models_dir: '~nosuchuser/models': no such user's home for ~"),
    ('models_dir = "a\\u0000b"', r"\[agent\] models_dir: 'a\\x00b' holds a NUL character"),
    ('state_dir = "~nosuchuser"', r"\[agent\] state_dir: '~nosuchuser': no such user's home"),
])
def test_regression_paths_fuzzing_broke(tmp_path, extra, expected):
    """Found probing the loader with odd paths (the near-valid fuzz test reaches them too): "~nosuchuser/..."
    raised RuntimeError (expanduser) and a path holding NUL raised ValueError from the file system calls, instead
    of the one-line config error."""
    path = write(tmp_path, f'[broker]\nhost = "10.0.0.2"\n[agent]\n{extra}\n')
    with pytest.raises(UserError, match=expected):
        config.load(path)


def test_regression_model_name_with_nul(tmp_path, models):
    """Found probing the loader with odd paths: models = ["a\\u0000.onnx"] raised ValueError from resolve()."""
    with pytest.raises(UserError, match=r"\[sweep\] models: 'a\\x00.onnx' holds a NUL character"):
        config.load(write(tmp_path, minimal(models, '[sweep]\nmodels = ["a\\u0000.onnx"]')))
