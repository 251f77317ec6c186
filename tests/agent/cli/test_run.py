"""``dnnagent run`` end to end, as a user runs it: ``python -m dnnprof.agent`` in a subprocess."""

import json
import time
from pathlib import Path

import pytest

from dnnprof.agent.backends import why_not_tensorrt
from dnnprof.agent.service import runbox
from dnnprof.shared import schema

SMALL = "shufflenet_v2_x0_5"
SHORT = ["--duration", "200ms", "--max-duration", "400ms", "--warmup", "50ms", "--max-warmup", "200ms",
         "--min-iterations", "2", "--idle", "200ms"]


def test_run_writes_decodable_jsonl(small_dir, workdir, dnnagent):
    output = workdir / "run.jsonl"
    proc = dnnagent("run", small_dir, "--output", output, "--batch", "1,2", *SHORT, "--power-source", "estimate",
                    "--board", "cli-board", "--run-id", "cli-run-1", cwd=workdir)
    assert proc.returncode == 0, proc.stderr
    assert "Traceback" not in proc.stderr
    assert "ESTIMATE" in proc.stderr  # the terminal says the energy is estimated
    assert "backend: onnxruntime " in proc.stderr  # which backend auto took, and why where it isn't TensorRT
    flat = " ".join(proc.stderr.split())  # undo the terminal's line wrapping
    assert ("auto chose onnxruntime (CPU): TensorRT is not usable here" in flat) == bool(why_not_tensorrt())
    assert proc.stdout == ""
    messages = [schema.decode(line) for line in output.read_bytes().splitlines()]
    kinds = [m.event if isinstance(m, schema.RunEvent) else schema.KIND_OF[type(m)] for m in messages]
    assert kinds == ["status", "info", "started", "result", "progress", "result", "progress", "finished"]
    assert all(m.board == "cli-board" for m in messages)
    online, facts = messages[0], messages[1]
    assert online.state == "online" and facts.session == online.session
    assert facts.power_source == "estimate" and facts.power_estimated is True
    assert "onnxruntime" in facts.backends
    results = [m for m in messages if isinstance(m, schema.Result)]
    assert [r.batch for r in results] == [1, 2]
    for r in results:
        assert r.run_id == "cli-run-1" and r.network == SMALL
        assert r.window_s >= 0.2 and r.warmup_s >= 0.05
        assert r.provenance.estimated and r.power_w is not None and r.energy_per_inference_j is not None


def test_run_json_prints_a_list(demo_dir, workdir, dnnagent):
    output = workdir / "json.jsonl"
    proc = dnnagent("run", demo_dir / f"{SMALL}.onnx", "--output", output, "--batch", "1", *SHORT,
                    "--power-source", "none", "--json", cwd=workdir)
    assert proc.returncode == 0, proc.stderr
    data = json.loads(proc.stdout)
    assert isinstance(data, list) and len(data) == 1
    result = schema.decode(json.dumps(data[0]))
    assert isinstance(result, schema.Result)
    assert result.power_w is None and result.energy_j is None  # no power source: not measured, not 0
    assert result.provenance.power_source is None


BAD_RUNS = {
    "missing model file": (["{dir}/missing.onnx"], "does not exist"),
    "non-onnx file": (["{dir}/notes.onnx"], "not an ONNX model"),
    "empty model dir": (["{dir}/empty"], "holds no .onnx files"),
    "bad duration unit": (["{model}", "--duration", "2parsecs"], "unknown time unit 'parsecs'"),
    "duration without unit": (["{model}", "--duration", "2"], "no unit"),
    "negative warm-up": (["{model}", "--warmup=-1s"], "non-negative"),
    "batch zero": (["{model}", "--batch", "0"], "batch sizes"),
    "batch garbage": (["{model}", "--batch", "1,two"], "batch sizes"),
    "unknown power source": (["{model}", "--power-source", "nope"], "unknown power source"),
    "rapl on a root without it": (["{model}", "--power-source", "rapl:{dir}"], "not available"),
    "zero TDP": (["{model}", "--power-source", "estimate", "--tdp-w", "0"], "TDP"),
    "unknown backend": (["{model}", "--backend", "nope"], "unknown backend 'nope'"),
    "unsupported precision": (["{model}", "--precision", "bf16", "--backend", "onnxruntime"],
                              "backend onnxruntime runs fp32, fp16, int8, not 'bf16'"),
    "precision method on onnxruntime": (["{model}", "--backend", "onnxruntime", "--precision-method", "auto"],
                                        "--precision-method only applies to the tensorrt backend"),
    "an estimate where a measurement is required": (["{model}", "--power-source", "estimate", "--require-measured"],
                                                     "power source 'estimate' is an estimate, and --require-measured"),
    "no sensor on a Jetson": (["{model}", "--root", "{jetson}", "--power-source", "auto:{dir}/empty"],
                              "will not estimate: on a Jetson the estimate"),
    "accuracy limit without a set": (["{model}", "--accuracy-limit", "10"], "--accuracy-limit takes a subset of "
                                                                           "--accuracy-set"),
    "accuracy set that is not a folder": (["{model}", "--accuracy-set", "{dir}/nope"], "does not exist"),
    "bad board id": (["{model}", "--board", "My/Board"], "invalid board id"),
    "bad run id": (["{model}", "--run-id", "Run 1"], "invalid run id"),
    "bad broker port": (["{model}", "--broker", "127.0.0.1:http"], "invalid port"),
    "negative telemetry rate": (["{model}", "--telemetry-rate=-1"], "--telemetry-rate '-1' cannot be negative"),
    "absurd telemetry rate": (["{model}", "--telemetry-rate", "500"], "too fast: at most 100 per second"),
    "telemetry rate garbage": (["{model}", "--telemetry-rate", "fast"], "is not a rate"),
    "zero telemetry samples": (["{model}", "--telemetry-samples-hz", "0Hz"], "--telemetry-rate 0 turns telemetry off"),
    "absurd telemetry samples": (["{model}", "--telemetry-samples-hz", "1e6"], "too fast"),
}


@pytest.mark.parametrize(("args", "words"), BAD_RUNS.values(), ids=BAD_RUNS.keys())
def test_bad_input_is_one_error_line(args, words, tmp_path, small_dir, dnnagent, one_error_line):
    (tmp_path / "notes.onnx").write_text("not a model\n")
    (tmp_path / "empty").mkdir()
    model = small_dir / f"{SMALL}.onnx"
    output = tmp_path / "bad.jsonl"
    # the case's own options come last, so they win over the short defaults
    jetson = Path(__file__).parents[2] / "data" / "jetson" / "orin-nano-jp6"
    argv = ["run", *SHORT, "--output", output, *(a.format(dir=tmp_path, model=model, jetson=jetson) for a in args)]
    line = one_error_line(dnnagent(*argv, cwd=tmp_path))
    assert words in line
    assert not output.exists() or output.read_bytes() == b""  # nothing was measured


def test_unreachable_broker_fails_before_profiling(small_dir, workdir, dnnagent, one_error_line, free_port):
    port = free_port()
    start = time.monotonic()
    # long settings: if it profiled before connecting, this would take minutes
    proc = dnnagent("run", small_dir, "--broker", f"127.0.0.1:{port}", "--batch", "1,2,4,8", "--duration", "30s",
                    "--power-source", "estimate", cwd=workdir, timeout=60)
    assert time.monotonic() - start < 10
    line = one_error_line(proc)
    assert f"127.0.0.1:{port}" in line


@pytest.mark.parametrize(
    "command", [[], ["run"], ["info"], ["models"], ["models", "list"], ["models", "generate"]], ids=" ".join
)
def test_help(command, workdir, dnnagent):
    proc = dnnagent(*command, "--help", cwd=workdir)
    assert proc.returncode == 0, proc.stderr
    assert "Usage" in proc.stdout
    assert "Traceback" not in proc.stderr


def test_run_to_a_real_broker(small_dir, workdir, mosquitto, dnnagent):
    import paho.mqtt.client as mqtt

    proc = dnnagent("run", small_dir, "--broker", mosquitto, "--board", "cli-mqtt", "--batch", "1", *SHORT,
                    "--power-source", "none", "--quiet", cwd=workdir)
    assert proc.returncode == 0, proc.stderr
    assert proc.stderr == ""
    retained: dict[str, bytes] = {}
    client = mqtt.Client(mqtt.CallbackAPIVersion.VERSION2)
    client.on_connect = lambda c, userdata, flags, rc, props: c.subscribe("dnnprof/v1/cli-mqtt/#", qos=1)
    client.on_message = lambda c, userdata, message: retained.__setitem__(message.topic, message.payload)
    host, _, port = mosquitto.rpartition(":")
    client.connect(host, int(port))
    client.loop_start()
    try:
        deadline = time.monotonic() + 5
        while len(retained) < 2 and time.monotonic() < deadline:
            time.sleep(0.02)
    finally:
        client.disconnect()
        client.loop_stop()
    assert set(retained) == {"dnnprof/v1/cli-mqtt/status", "dnnprof/v1/cli-mqtt/info"}  # results are not retained
    assert schema.decode(retained["dnnprof/v1/cli-mqtt/status"]).state == "offline"  # a clean stop
    assert list(runbox.default_dir("cli-mqtt").glob("*.sqlite")) == []  # all delivered: no outbox left


def test_run_help_teaches_the_telemetry_options(workdir, dnnagent):
    proc = dnnagent("run", "--help", cwd=workdir)
    assert "--telemetry-rate" in proc.stdout and "--telemetry-samples-hz" in proc.stdout
    assert "QoS 0" in proc.stdout


def test_run_sends_telemetry_to_the_broker_only(small_dir, workdir, mosquitto, dnnagent):
    import paho.mqtt.client as mqtt

    received: list[mqtt.MQTTMessage] = []
    client = mqtt.Client(mqtt.CallbackAPIVersion.VERSION2)
    client.on_connect = lambda c, userdata, flags, rc, props: c.subscribe("dnnprof/v1/cli-live/#", qos=1)
    client.on_message = lambda c, userdata, message: received.append(message)
    host, _, port = mosquitto.rpartition(":")
    client.connect(host, int(port))
    client.loop_start()
    output = workdir / "live.jsonl"
    try:
        time.sleep(0.2)  # subscribed before the agent starts
        proc = dnnagent("run", small_dir, "--broker", mosquitto, "--output", output, "--board", "cli-live",
                        "--run-id", "cli-live-1", "--batch", "1", *SHORT, "--power-source", "estimate",
                        "--telemetry-rate", "20", "--telemetry-samples-hz", "20Hz", "--quiet", cwd=workdir)
        assert proc.returncode == 0, proc.stderr
        deadline = time.monotonic() + 5
        while not any(m.topic.endswith("/status") and schema.decode(m.payload).state == "offline"
                      for m in received) and time.monotonic() < deadline:
            time.sleep(0.02)
    finally:
        client.disconnect()
        client.loop_stop()
    kinds = [m.topic.split("/")[3] for m in received]
    live = [m for m in received if m.topic == "dnnprof/v1/cli-live/telemetry"]
    assert len(live) >= 3, kinds
    assert all(m.qos == 0 and not m.retain for m in live)
    telemetry = [schema.decode(m.payload) for m in live]
    assert [t.seq for t in telemetry] == list(range(len(telemetry)))
    assert all(t.power_source == "estimate" and t.estimated and t.dt_s == 0.05 for t in telemetry)
    assert sum(len(t.power_w) for t in telemetry) >= len(telemetry) - 1
    # during the sweep: after it started, stopped before the agent said goodbye
    last_live = max(i for i, kind in enumerate(kinds) if kind == "telemetry")
    offline = max(i for i, kind in enumerate(kinds) if kind == "status")
    assert kinds.index("run") < kinds.index("telemetry") and last_live < offline
    stored = [schema.decode(line) for line in output.read_bytes().splitlines()]
    assert not [m for m in stored if isinstance(m, schema.Telemetry)]  # the file is for results
    assert [m.event for m in stored if isinstance(m, schema.RunEvent)] == ["started", "progress", "finished"]
    assert list(runbox.default_dir("cli-live").glob("*.sqlite")) == []  # all delivered: no outbox left


def test_run_with_a_manifest_carries_the_models_accuracy(small_dir, workdir, dnnagent):
    manifest = workdir / "models.toml"
    manifest.write_text(f'[[model]]\npath = "{small_dir / (SMALL + ".onnx")}"\nname = "mine"\ntop1 = 42.5\n'
                        'preprocessing = "resize 256, crop 224"\n')
    proc = dnnagent("run", "--manifest", manifest, "--batch", "1", "--json", "--quiet", "--output",
                    workdir / "manifest.jsonl", *SHORT, "--power-source", "none", cwd=workdir)
    assert proc.returncode == 0, proc.stderr
    (result,) = json.loads(proc.stdout)
    assert (result["network"], result["reference_top1"], result["preprocessing"]) == ("mine", 42.5,
                                                                                     "resize 256, crop 224")
    assert "models.toml" in result["reference_top1_source"]


def test_run_measures_accuracy_at_each_precision(digits, tmp_path, dnnagent):
    """The headline knob: fp32, fp16 and int8 of the digits classifier, each with its measured top-1."""
    output = tmp_path / "acc.jsonl"
    proc = dnnagent("run", "--manifest", digits.manifest, "--precision", "fp32,fp16,int8", "--batch", "1,4",
                    "--calibration", digits.calibration, "--accuracy-set", digits.test, "--output", output, *SHORT,
                    "--power-source", "none", "--threads", "1", cwd=tmp_path)
    assert proc.returncode == 0, proc.stderr
    flat = " ".join(proc.stderr.split())
    assert f"top-1 {digits.own_top1:.1f}% ({digits.n_test} images)" in flat
    assert f"({digits.n_test} images, reused)" in flat
    results = [m for m in map(schema.decode, output.read_bytes().splitlines()) if isinstance(m, schema.Result)]
    assert sorted((r.precision, r.batch) for r in results) == sorted(
        (p, b) for p in ("fp32", "fp16", "int8") for b in (1, 4))
    by = {(r.precision, r.batch): r for r in results}
    assert by[("fp32", 1)].accuracy.top1 == pytest.approx(digits.own_top1)
    assert by[("int8", 4)].accuracy.reused and by[("int8", 4)].precision_method == "onnx_converted"
    assert by[("int8", 1)].calibration.startswith("images:")


def test_run_with_an_accuracy_subset_and_timing_only_int8(digits, tmp_path, dnnagent):
    proc = dnnagent("run", "--manifest", digits.manifest, "--precision", "int8,fp32", "--batch", "2",
                    "--accuracy-set", digits.test, "--accuracy-limit", "25", "--json", "--quiet", *SHORT,
                    "--output", tmp_path / "sub.jsonl", "--power-source", "none", cwd=tmp_path)
    assert proc.returncode == 0, proc.stderr
    int8, fp32 = json.loads(proc.stdout)
    assert int8["timing_only"] and int8["accuracy"] is None  # calibrated on random data: nothing to measure
    assert (fp32["accuracy"]["images"], fp32["accuracy"]["limit"], fp32["accuracy"]["seed"]) == (25, 25, 0)


def test_run_needs_models_or_a_manifest(workdir, dnnagent, one_error_line):
    assert "--manifest" in one_error_line(dnnagent("run", cwd=workdir))


def test_a_failing_point_is_printed_published_and_the_run_goes_on(small_dir, tmp_path, reshaping, dnnagent):
    model = reshaping(tmp_path / "reshaping.onnx")  # ONNX Runtime fails it at batch 3
    output = tmp_path / "run.jsonl"
    proc = dnnagent("run", small_dir / f"{SMALL}.onnx", model, "--output", output, "--batch", "2,3", *SHORT,
                    "--power-source", "none", "--json", cwd=tmp_path)
    assert proc.returncode == 0, proc.stderr  # failed points are results: the run did its job
    listed = [schema.decode(json.dumps(x)) for x in json.loads(proc.stdout)]
    assert [(type(m).__name__, m.network, m.batch) for m in listed] == [
        ("Result", SMALL, 2), ("Result", SMALL, 3), ("Result", "reshaping", 2), ("Failure", "reshaping", 3)]
    failure = listed[-1]
    assert failure.error == "runtime_error" and "Reshape" in failure.message
    written = [schema.decode(line) for line in output.read_bytes().splitlines()]
    assert [m.id for m in written if isinstance(m, schema.Failure)] == [failure.id]  # --output has it too


def test_a_run_whose_every_point_fails_exits_1_saying_so(tmp_path, make_onnx, dnnagent):
    model = make_onnx(tmp_path / "sqrt.onnx", op="Sqrt")  # NaN outputs at every batch
    proc = dnnagent("run", model, "--output", tmp_path / "run.jsonl", "--batch", "1,2", *SHORT, "--power-source",
                    "none", cwd=tmp_path)
    assert proc.returncode == 1
    flat = " ".join(proc.stderr.split())
    assert "sqrt b=1 failed (invalid_output, check): output 'y0' holds" in flat
    assert "sqrt b=2 failed (invalid_output, check)" in flat and "Traceback" not in proc.stderr
    errors = [line for line in proc.stderr.splitlines() if line.startswith("dnnagent: error:")]
    assert errors == ["dnnagent: error: every point failed (2: invalid_output): nothing was measured; the reasons "
                      "are above"]


def test_kill_9_mid_sweep_then_the_next_run_puts_the_power_mode_back(small_dir, switchable_board, tmp_path,
                                                                       dnnagent):
    """A run switched the board to MODE_50W with clocks locked and was killed -9 mid-point: the next `dnnagent
    run` (any, even one that switches nothing) finds the marker and restores MAXN with jetson_clocks on."""
    import subprocess
    import sys

    from dnnprof.agent.board import clocks

    root = switchable_board
    long = ["--duration", "20s", "--max-duration", "20s", "--warmup", "50ms", "--idle", "0s"]
    proc = subprocess.Popen([sys.executable, "-m", "dnnprof.agent", "run", small_dir, "--output",
                             tmp_path / "first.jsonl", "--batch", "1", "--power-mode", "MODE_50W", "--clocks",
                             "locked", "--root", root, "--power-source", "none", "--quiet", *long],
                            stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, text=True, cwd=tmp_path)
    try:
        deadline = time.monotonic() + 60
        while time.monotonic() < deadline and not (
                (root / "calls.log").exists() and "jetson_clocks" in (root / "calls.log").read_text().split("\n")):
            time.sleep(0.05)
        time.sleep(0.5)  # into the point's window
        proc.kill()
        proc.wait(30)
    finally:
        if proc.poll() is None:
            proc.kill()
    assert clocks.power_mode(root) == ("MODE_50W", 3) and clocks.jetson_clocks(root) is True
    after = dnnagent("run", small_dir, "--output", tmp_path / "second.jsonl", "--batch", "1", "--root", root,
                     "--power-source", "none", *SHORT, cwd=tmp_path)
    assert after.returncode == 0, after.stderr
    flat = " ".join(after.stderr.split())
    assert "restored power mode MAXN (0) and clock limits (jetson_clocks on), as an earlier run" in flat
    assert clocks.power_mode(root) == ("MAXN", 0) and clocks.jetson_clocks(root) is True
    assert (root / "sys/devices/system/cpu/cpu5/cpufreq/scaling_max_freq").read_text().strip() == "2201600"


def test_power_modes_bad_input_is_one_line(small_dir, switchable_board, tmp_path, dnnagent, one_error_line):
    base = ["run", small_dir, "--output", tmp_path / "x.jsonl", "--root", switchable_board]
    assert "--power-mode 'MODE_99W': this board has no such mode" in one_error_line(
        dnnagent(*base, "--power-mode", "MODE_99W", cwd=tmp_path))
    assert "--clocks 'fast': write dvfs" in one_error_line(dnnagent(*base, "--clocks", "fast", cwd=tmp_path))
    assert "--power-mode: this machine has no nvpmodel power modes" in one_error_line(
        dnnagent("run", small_dir, "--output", tmp_path / "x.jsonl", "--power-mode", "0", "--root", tmp_path,
                 cwd=tmp_path))
