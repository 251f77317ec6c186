"""``dnnhost`` as a user runs it: subprocesses of ``python -m dnnprof.host`` on a store in tmp_path.

(``dnnhost demo`` is covered by the end-to-end test.)
"""

from __future__ import annotations

import base64
import json
import socket
import subprocess
import sys
import time
from collections import Counter

import pytest

from dnnprof.host import views
from dnnprof.host.broker import free_port
from dnnprof.host.collector import KEEP_REJECTED_BYTES, MAX_PAYLOAD_BYTES
from dnnprof.host.store import Store
from dnnprof.shared import catalog, schema
from dnnprof.shared.errors import UserError




@pytest.fixture
def db(tmp_path):
    return tmp_path / "results.sqlite"


def write_jsonl(path, messages, *, raw: dict[int, bytes] | None = None):
    """Write ``messages`` one per line; ``raw`` puts given bytes at given (1-based) line numbers instead."""
    raw = dict(raw or {})
    lines, it = [], iter(messages)
    lineno = 1
    while True:
        if lineno in raw:
            lines.append(raw.pop(lineno))
        else:
            message = next(it, None)
            if message is None:
                break
            lines.append(schema.encode(message))
        lineno += 1
    path.write_bytes(b"".join(line + b"\n" for line in lines))
    return path




@pytest.fixture
def measured(msgs):
    """A board's results with a known ceiling: at 50 mJ per image, mobilenet_v2 (the best that fits)."""
    return [
        msgs.info(board="board-a", hostname="orin-1"),
        msgs.status("online", 1, board="board-a"),
        msgs.run_event("started", 0, board="board-a", run_id="run-1"),
        msgs.result("resnet18", 1, 0.010, board="board-a"),
        msgs.result("mobilenet_v2", 1, 0.040, board="board-a"),
        msgs.result("resnet50", 1, 0.200, board="board-a"),
        msgs.result("squeezenet1_1", 1, 0.002, board="board-a"),
        msgs.run_event("finished", 1, board="board-a", run_id="run-1", points_done=4),
    ]


@pytest.mark.parametrize("command", [[], ["collect"], ["import"], ["report"], ["demo"], ["catalog"], ["rejected"],
                                     ["predict"]],
                         ids=["dnnhost", "collect", "import", "report", "demo", "catalog", "rejected", "predict"])
def test_help(run, command):
    proc = run(*command, "--help")
    assert proc.returncode == 0, proc.stderr
    assert "Usage" in proc.stdout
    assert proc.stderr == ""


def test_demo_stores_apart_from_the_real_results_by_default(run):
    flat = "".join(run("demo", "--help").stdout.replace("│", "").split())  # however the help wraps
    assert f"Default:{run.env['XDG_DATA_HOME']}/dnnprof/demo.sqlite" in flat


def test_import_stores_and_reimport_adds_nothing_twice(run, db, tmp_path, measured):
    path = write_jsonl(tmp_path / "run.jsonl", measured)
    first = run("import", path, "--db", db)
    assert first.returncode == 0, first.stderr
    assert "imported 8 new messages (0 already stored, 0 rejected)" in first.stderr
    with Store(db) as store:
        stored = store.results()
        assert sorted(r.id for r in stored) == sorted(m.id for m in measured if isinstance(m, schema.Result))
        assert stored[0] == measured[3]  # decoded back equal to what was written
        assert store.count("run_events") == 2
        assert store.boards()["board-a"]["info"].hostname == "orin-1"

    again = run("import", path, "--db", db)
    assert again.returncode == 0, again.stderr
    assert "(6 already stored, 0 rejected)" in again.stderr  # every result and run event
    with Store(db) as store:
        assert store.results() == stored
        assert (store.count("run_events"), store.count("boards"), store.count("rejected")) == (2, 1, 0)


def test_import_with_a_garbage_line_keeps_the_good_ones(run, db, tmp_path, msgs):
    good = [msgs.result("resnet18", b, 0.01 * b) for b in (1, 2, 4, 8)]
    garbage = b'{"kind": "result", "schema": 1, "board": "board-a", "network": '
    path = write_jsonl(tmp_path / "run.jsonl", good, raw={3: garbage, 5: b"   "})  # and a blank line
    proc = run("import", path, "--db", db)
    assert proc.returncode != 0
    assert "Traceback" not in proc.stderr
    assert f"{path}:3: rejected:" in proc.stderr.splitlines()[0]  # the file and line, on one line
    assert "imported 4 new messages (0 already stored, 1 rejected)" in proc.stderr
    assert proc.stderr.splitlines()[-1].startswith("dnnhost: error: 1 lines were rejected")
    with Store(db) as store:
        assert sorted(r.id for r in store.results()) == sorted(r.id for r in good)
        rows = store.db.execute("SELECT source, payload FROM rejected").fetchall()
    assert rows == [(f"import:{path}:3", garbage + b"\n")]


def test_import_value_the_store_cannot_hold_is_a_rejected_line(run, db, tmp_path, msgs):
    good = msgs.result()
    path = write_jsonl(tmp_path / "run.jsonl", [good, msgs.status("online", 2**63)])
    proc = run("import", path, "--db", db)
    assert proc.returncode != 0
    assert "Traceback" not in proc.stderr
    assert f"{path}:2: rejected:" in proc.stderr
    with Store(db) as store:
        assert store.results() == [good]
        assert store.count("rejected") == 1


def test_import_loads_failed_points_and_report_shows_them_with_why(run, db, tmp_path, measured, msgs):
    oom = msgs.failure("vgg16", 64, board="board-a", message="CUDA out of memory: tried to allocate 1.50 GiB")
    skipped = msgs.failure("vgg16", 128, stage="not_run", board="board-a", cause="vgg16 b=64 fp32")
    path = write_jsonl(tmp_path / "run.jsonl", [*measured, oom, skipped])
    proc = run("import", path, "--db", db)
    assert proc.returncode == 0, proc.stderr
    assert "imported 10 new messages (0 already stored, 0 rejected)" in proc.stderr
    assert "(8 already stored" in run("import", path, "--db", db).stderr  # results, failures and run events
    with Store(db) as store:
        assert store.failures() == [oom, skipped] and store.count() == 4
    data = json.loads(run("report", "--db", db, "--json", "--energy-budget", "50mJ").stdout)
    assert [(f["network"], f["batch"], f["error"], f["stage"], f["reason"]) for f in data["failures"]] == [
        ("vgg16", 64, "out_of_memory", "window", "CUDA out of memory: tried to allocate 1.50 GiB"),
        ("vgg16", 128, "out_of_memory", "not_run", "not run: vgg16 b=64 fp32")]
    assert data["failures_superseded"] == 0 and data["boards"][0]["configurations"] == 4
    text = run("report", "--db", db, "--energy-budget", "50mJ")
    assert text.returncode == 0, text.stderr
    flat = " ".join(text.stdout.split())
    assert "Failed points: 2 produced no measurement" in flat
    assert "vgg16 128 fp32 onnxruntime/cpu n/a out_of_memory not run not run: vgg16 b=64 fp32" in flat


def test_import_missing_file(run, db, tmp_path, one_error_line):
    line = one_error_line(run("import", tmp_path / "nope.jsonl", "--db", db))
    assert "nope.jsonl" in line


def test_report_json_has_the_ceiling(run, db, tmp_path, measured):
    assert run("import", write_jsonl(tmp_path / "run.jsonl", measured), "--db", db).returncode == 0
    proc = run("report", "--json", "--energy-budget", "50mJ", "--db", db)
    assert proc.returncode == 0, proc.stderr
    data = json.loads(proc.stdout)
    assert data["limits"]["energy_budget_j"] == pytest.approx(0.05)
    assert data["basis"]["text"] == "gross energy per image"
    (board,) = data["boards"]
    assert (board["board"], board["state"], board["hostname"]) == ("board-a", "online", "orin-1")
    assert len(board["results"]) == 4
    c = board["ceiling"]
    assert c["best"]["network"] == "mobilenet_v2"
    assert c["top1"] == catalog.lookup("mobilenet_v2").top1
    assert (c["feasible"], c["considered"], c["without_energy"]) == (3, 4, 0)
    assert c["next"]["network"] == "resnet50" and c["next_extra_j"] == pytest.approx(0.15)
    assert [s["network"] for s in board["frontier"]] == ["squeezenet1_1", "resnet18", "mobilenet_v2", "resnet50"]
    assert "accuracy_vs_time" in data["analyses"]


def test_report_text(run, db, tmp_path, measured):
    run("import", write_jsonl(tmp_path / "run.jsonl", measured), "--db", db)
    proc = run("report", "--energy-budget", "50mJ", "--db", db)
    assert proc.returncode == 0, proc.stderr
    flat = " ".join(proc.stdout.split())
    assert "Energy-bounded accuracy ceiling within 50 mJ gross energy per image" in flat
    assert "mobilenet_v2 batch 1 fp32 on onnxruntime/cpu" in flat
    assert "accuracy vs time per image" in flat  # the seed's analyses follow the boards


def test_report_on_an_empty_store(run, db):
    proc = run("report", "--db", db)
    assert proc.returncode == 0, proc.stderr
    assert "No results stored yet" in proc.stdout


@pytest.mark.parametrize("args", [
    ["report", "--energy-budget", "10"],
    ["report", "--energy-budget", "5W"],
    ["report", "--energy-budget", "-3J"],
    ["report", "--board", "Not_A_Board"],
    ["report", "--per", "week"],
    ["report", "--energy", "tare"],
    ["report", "--latency-stat", "p42"],
    ["report", "--latency-budget", "5W"],
    ["report", "--power-budget", "3J"],
    ["report", "--min-fps", "-1"],
    ["report", "--export", "table.xlsx"],
    ["report", "--out", "report.pdf"],
    ["collect", "--duration", "2"],
    ["collect", "--broker", "127.0.0.1:99999"],
], ids=["budget-no-unit", "budget-power", "budget-negative", "bad-board", "per", "energy", "latency-stat",
        "latency-unit", "power-unit", "min-fps", "export-format", "out-format", "duration-no-unit", "bad-port"])
def test_bad_arguments_are_one_line_errors(run, db, args, one_error_line):
    line = one_error_line(run(*args, "--db", db))
    assert repr(args[-1]) in line or args[-1] in line  # it names what was wrong


def test_report_limits_combine(run, db, tmp_path, measured):
    run("import", write_jsonl(tmp_path / "run.jsonl", measured), "--db", db)

    def best(*args):
        proc = run("report", "--json", "--no-analyses", "--db", db, *args)
        assert proc.returncode == 0, proc.stderr
        return json.loads(proc.stdout)["boards"][0]["ceiling"]

    # Each result draws energy x 100 img/s: resnet18 1 W, mobilenet_v2 4 W, resnet50 20 W, squeezenet 0.2 W.
    assert best("--power-budget", "5W")["best"]["network"] == "mobilenet_v2"
    assert best("--power-budget", "3W", "--energy-budget", "1J")["best"]["network"] == "resnet18"
    assert best("--min-fps", "1000")["best"] is None
    assert best("--latency-budget", "10ms", "--latency-stat", "p99")["best"] is None  # p99 is 13.5 ms
    assert best("--latency-budget", "10ms")["best"]["network"] == "resnet50"  # the mean is 10 ms
    per_k = best("--energy-budget", "15J", "--per", "1000")  # 15 mJ per image
    assert per_k["best"]["network"] == "resnet18" and per_k["best"]["energy_j"] == pytest.approx(10.0)
    assert best("--energy-budget", "15J", "--per", "batch")["best"]["network"] == "resnet50"  # batch 1: 0.2 J
    net = best("--energy-budget", "1J", "--energy", "net")  # no idle baseline in these results
    assert net["best"] is None and net["without_energy"] == 4


def test_report_exports_the_table(run, db, tmp_path, measured, msgs):
    import pandas as pd

    without_energy = msgs.result("vgg16", 1, None, board="board-a")
    run("import", write_jsonl(tmp_path / "run.jsonl", measured + [without_energy]), "--db", db)
    out = tmp_path / "out"
    proc = run("report", "--energy-budget", "50mJ", "--db", db, "--no-analyses", "--export", out / "t.csv",
               "--export", out / "t.json", "--export", out / "t.parquet")
    assert proc.returncode == 0, proc.stderr
    frames = [pd.read_csv(out / "t.csv"), pd.read_json(out / "t.json"), pd.read_parquet(out / "t.parquet")]
    for df in frames:
        assert len(df) == 5
        assert set(df.loc[df["on_frontier"].astype(bool), "network"]) == {"squeezenet1_1", "resnet18",
                                                                           "mobilenet_v2", "resnet50"}
        assert set(df.loc[df["within_limits"].astype(bool), "network"]) == {"squeezenet1_1", "resnet18",
                                                                             "mobilenet_v2"}
        missing = df[df["network"] == "vgg16"].iloc[0]
        assert pd.isna(missing["energy_per_inference_j"]) and pd.isna(missing["energy_j"])  # never 0
        assert set(df["energy_basis"]) == {"gross energy per image"}
    assert "wrote" in proc.stderr and "t.parquet" in proc.stderr


def test_report_plots_and_html(run, db, tmp_path, measured, msgs):
    more = [msgs.result(n, b, 0.01 * b, board="board-a") for n in ("resnet18", "vgg16", "alexnet") for b in (2, 4)]
    run("import", write_jsonl(tmp_path / "run.jsonl", measured + more), "--db", db)
    figs, page = tmp_path / "figs", tmp_path / "out" / "report.html"
    proc = run("report", "--energy-budget", "50mJ", "--db", db, "--plots", figs, "--out", page, timeout=180)
    assert proc.returncode == 0, proc.stderr
    for name in ("frontier", "accuracy_vs_ops", "time_vs_batch", "ops_vs_time"):
        assert (figs / f"{name}.png").read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
        assert (figs / f"{name}.svg").read_text().lstrip().startswith("<?xml")
    assert "skipped memory_vs_batch" in proc.stderr  # these results carry no memory figures
    text = page.read_text()
    assert "Energy-bounded accuracy ceiling within 50 mJ gross energy per image" in text and "<svg" in text
    assert "http://" not in text and "https://" not in text


def test_report_unwritable_outputs_are_one_line_errors(run, db, tmp_path, measured, one_error_line):
    run("import", write_jsonl(tmp_path / "run.jsonl", measured), "--db", db)
    blocker = tmp_path / "a-file"
    blocker.write_text("")
    for option, target in (("--out", blocker / "r.html"), ("--plots", blocker / "figs"),
                           ("--export", blocker / "t.csv")):
        line = one_error_line(run("report", "--db", db, option, target, timeout=180))
        assert "cannot write" in line and str(blocker) in line


def test_report_without_store_says_how_to_make_one(run, one_error_line):
    line = one_error_line(run("report"))  # default store under the (empty) XDG_DATA_HOME
    assert "dnnhost import" in line


def test_collect_unreachable_broker_fails_fast(run, db, one_error_line):
    port = free_port()
    started = time.monotonic()
    line = one_error_line(run("collect", "--broker", f"127.0.0.1:{port}", "--db", db))
    assert time.monotonic() - started < 10
    assert f"127.0.0.1:{port}" in line


def test_collect_port_in_use(run, db, one_error_line):
    with socket.socket() as taken:
        taken.bind(("127.0.0.1", 0))
        taken.listen()
        port = taken.getsockname()[1]
        line = one_error_line(run("collect", "--port", port, "--db", db))
    assert f"127.0.0.1:{port}" in line


def test_collect_with_embedded_broker_stores_what_is_published(run, db, msgs, mqtt_client):
    port = free_port()
    result = msgs.result("resnet18", 4, 0.02)
    proc = subprocess.Popen([sys.executable, "-m", "dnnprof.host", "collect", "--port", str(port), "--db", str(db),
                             "--duration", "2s"], stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
                            env=run.env)
    try:
        seen = []
        for line in proc.stderr:  # the line comes once the collector's subscription is confirmed
            seen.append(line)
            if line.startswith("collecting from"):
                break
        assert seen and seen[-1].startswith(f"collecting from 127.0.0.1:{port}"), "".join(seen)
        mqtt_client.publish(f"127.0.0.1:{port}", [(msgs.topic_for(result), schema.encode(result))])
        _, rest = proc.communicate(timeout=30)
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.communicate()
    assert proc.returncode == 0, "".join(seen) + rest
    assert "Traceback" not in rest
    assert "stored 1 messages (1 results, 0 duplicates, 0 rejected)" in " ".join(rest.split())
    with Store(db) as store:
        assert store.results() == [result]


def test_a_user_catalog_changes_the_ceiling(run, db, tmp_path, measured):
    run("import", write_jsonl(tmp_path / "run.jsonl", measured), "--db", db)
    # resnet18 costs 10 mJ; say our own evaluation puts it above mobilenet_v2 (40 mJ, 71.9%)
    user = tmp_path / "mine.csv"
    user.write_text("name,top1,source\nresnet18,72.5,our eval\n")
    proc = run("report", "--json", "--energy-budget", "50mJ", "--db", db, "--catalog", user)
    assert proc.returncode == 0, proc.stderr
    data = json.loads(proc.stdout)
    assert data["boards"][0]["ceiling"]["best"]["network"] == "resnet18"
    assert data["boards"][0]["ceiling"]["top1"] == 72.5
    assert "mine.csv" in data["catalog"]
    # The same file in the user's config directory is picked up without --catalog.
    config = tmp_path / "xdg-config" / "dnnprof"
    config.mkdir(parents=True)
    (config / "catalog.toml").write_text('[[network]]\nname = "resnet18"\ntop1 = 72.5\n')
    again = json.loads(run("report", "--json", "--energy-budget", "50mJ", "--db", db).stdout)
    assert again["boards"][0]["ceiling"]["best"]["network"] == "resnet18"


def test_catalog_command(run, tmp_path, one_error_line):
    proc = run("catalog", "--json")
    assert proc.returncode == 0, proc.stderr
    data = json.loads(proc.stdout)
    assert data["origin"] == "built-in"
    names = {n["name"] for n in data["networks"]}
    assert {"resnet50", "mobilenet_v2", "alexnet"} <= names
    user = tmp_path / "extra.toml"
    user.write_text('[[network]]\nname = "my-net"\ntop1 = 61.5\nsource = "lab"\n')
    text = run("catalog", "--catalog", user)
    assert text.returncode == 0 and "my-net" in text.stdout and "61.50" in text.stdout
    bad = tmp_path / "bad.csv"
    bad.write_text("name,top1\nx,200\n")
    line = one_error_line(run("catalog", "--catalog", bad))
    assert "bad.csv:2" in line and "top1" in line


# --- dnnhost rejected: in process (typer's CliRunner) on a real store filled through the Store API --------------


@pytest.fixture
def cli(monkeypatch):
    """``cli(*args)``: dnnhost in this process; wide columns so table cells are not cut for the assertions."""
    from typer.testing import CliRunner

    from dnnprof.host.cli import app

    monkeypatch.setenv("COLUMNS", "250")
    return lambda *args: CliRunner().invoke(app, [str(a) for a in args])


def _user_error(result) -> str:
    """The one-line message of the UserError a command raised (cli.run prints it as ``dnnhost: error: ...``)."""
    assert isinstance(result.exception, UserError), result.output
    assert "\n" not in str(result.exception)
    return str(result.exception)


@pytest.fixture
def refused(db):
    """A store holding three refusals, oldest first: text, bytes that are not UTF-8, and text with markup and an
    escape sequence (untrusted input that must be shown, not obeyed)."""
    with Store(db) as store:
        ids = [store.reject("mqtt:dnnprof/v1/board-a/result", "JSON is malformed: truncated", b'{"kind": "res'),
               store.reject(f"import:{db.parent / 'run.jsonl'}:3", "Expected `int`, got `str` - at `$.batch`",
                            b"\xff\xfe\x00\x01"),
               store.reject("mqtt:dnnprof/v1/board-b/status", "unsupported schema version 2",
                            b'[b]red[/b] \x1b[31mgo')]
        # Received times one minute apart, oldest first, so --since and the order are deterministic.
        for age, rowid in zip((120, 60, 0), ids):
            store.db.execute("UPDATE rejected SET received = ? WHERE rowid = ?", (time.time() - age, rowid))
    return ids


def test_rejected_lists_newest_first_with_a_printable_preview(cli, db, refused):
    result = cli("rejected", "--db", db)
    assert result.exit_code == 0, result.output
    rows = [line.split() for line in result.stdout.splitlines() if line.strip()[:1].isdigit()]
    assert [int(r[0]) for r in rows] == refused[::-1]
    text = result.stdout
    assert "mqtt:dnnprof/v1/board-b/status" in text and "unsupported schema version 2" in text
    assert "[b]red[/b] \\x1b[31mgo" in text  # markup shown literally, the escape escaped
    assert "\x1b" not in text
    assert "\\xff\\xfe\\x00\\x01" in text  # not UTF-8: shown byte by byte
    assert '{"kind": "res' in text


def test_rejected_limit_since_and_source_filter(cli, db, refused):
    result = cli("rejected", "--db", db, "--limit", "1")
    assert result.exit_code == 0
    assert "unsupported schema version 2" in result.stdout and "truncated" not in result.stdout
    assert "older rejected input not shown: raise --limit" in result.output
    result = cli("rejected", "--db", db, "--since", "90s", "--json")
    assert [row["id"] for row in json.loads(result.stdout)] == refused[:0:-1]
    result = cli("rejected", "--db", db, "--source", "board-a", "--json")
    assert [row["id"] for row in json.loads(result.stdout)] == [refused[0]]
    result = cli("rejected", "--db", db, "--source", "run.jsonl:3", "--json")
    assert [row["id"] for row in json.loads(result.stdout)] == [refused[1]]
    result = cli("rejected", "--db", db, "--source", "%", "--json")  # a literal, not a LIKE wildcard
    assert json.loads(result.stdout) == []


def test_rejected_show_prints_one_whole_as_text_or_hex(cli, db, refused):
    result = cli("rejected", "--db", db, "--show", refused[0])
    assert result.exit_code == 0
    assert "source:   mqtt:dnnprof/v1/board-a/result" in result.stdout
    assert "reason:   JSON is malformed: truncated" in result.stdout
    assert "13 bytes, as text:" in result.stdout and result.stdout.rstrip().endswith('{"kind": "res')
    result = cli("rejected", "--db", db, "--show", refused[1])
    assert "4 bytes, not UTF-8, in hex:" in result.stdout and "ff fe 00 01" in result.stdout
    result = cli("rejected", "--db", db, "--show", refused[2])
    assert "\\x1b[31mgo" in result.stdout and "\x1b" not in result.stdout


def test_rejected_json_has_the_payload_in_base64(cli, db, refused):
    rows = json.loads(cli("rejected", "--db", db, "--json").stdout)
    assert [r["id"] for r in rows] == refused[::-1]
    assert base64.b64decode(rows[1]["payload_base64"]) == b"\xff\xfe\x00\x01"
    assert rows[1]["source"].endswith("run.jsonl:3") and rows[1]["size"] == 4 and rows[1]["truncated"] is False
    one = json.loads(cli("rejected", "--db", db, "--show", refused[2], "--json").stdout)
    assert base64.b64decode(one["payload_base64"]) == b"[b]red[/b] \x1b[31mgo"
    assert one["reason"] == "unsupported schema version 2" and one["received"] <= time.time()


def test_rejected_marks_a_payload_cut_to_the_kept_64_kib(cli, db):
    with Store(db) as store:
        store.reject("mqtt:dnnprof/v1/board-a/result", "payload too large", b"x" * KEEP_REJECTED_BYTES)
    assert f"≥{KEEP_REJECTED_BYTES}" in cli("rejected", "--db", db).stdout
    assert "(the first 64 KiB kept)" in cli("rejected", "--db", db, "--show", "1").stdout
    assert json.loads(cli("rejected", "--db", db, "--json").stdout)[0]["truncated"] is True


def test_rejected_on_a_store_with_nothing_rejected_says_so(cli, db):
    Store(db).close()
    result = cli("rejected", "--db", db)
    assert result.exit_code == 0 and result.stdout.strip() == f"nothing rejected in {db}"
    result = cli("rejected", "--db", db, "--since", "1h", "--source", "board-a")
    assert result.stdout.strip() == f"nothing rejected matching --since 1h --source 'board-a' in {db}"
    assert json.loads(cli("rejected", "--db", db, "--json").stdout) == []


def test_rejected_mistakes_are_one_line_errors(cli, db, tmp_path, refused):
    assert "no result store at" in _user_error(cli("rejected", "--db", tmp_path / "typo.sqlite"))
    assert not (tmp_path / "typo.sqlite").exists()  # reading never creates a store
    assert "--limit 0" in _user_error(cli("rejected", "--db", db, "--limit", "0"))
    assert "no rejected input with id 99" in _user_error(cli("rejected", "--db", db, "--show", "99"))
    assert "'2d'" in _user_error(cli("rejected", "--db", db, "--since", "2d"))


def test_import_refuses_a_line_over_the_size_limit(cli, db, tmp_path, msgs):
    good = msgs.result()
    huge = b'{"kind": "result", "network": "' + b"x" * MAX_PAYLOAD_BYTES + b'"}'
    path = write_jsonl(tmp_path / "run.jsonl", [good], raw={1: huge})
    assert "1 lines were rejected" in _user_error(cli("import", path, "--db", db))
    with Store(db) as store:
        assert store.results() == [good]
        (row,) = store.rejected()
    assert row.source == f"import:{path}:1" and "line too large" in row.reason
    assert row.payload == huge[:KEEP_REJECTED_BYTES]  # only the head is kept


# -- report --fleet ------------------------------------------------------------------------------------------------


@pytest.fixture
def fleet_store(run, db, tmp_path, msgs):
    """Two boards at the input rail, one with estimates only, one without a power source."""
    r = msgs.result
    path = write_jsonl(tmp_path / "fleet.jsonl", [
        r("resnet50", 8, 0.040, board="orin-a", boundary="input_rail", power_mode="MAXN", clocks="jetson_clocks"),
        r("mobilenet_v2", 1, 0.010, board="orin-a", boundary="input_rail", power_mode="15W"),
        r("resnet18", 4, 0.020, board="nano-b", boundary="input_rail", power_mode="7W"),
        r("vgg16", 1, 0.001, board="pc-c", estimated=True),
        r("resnet50", 1, None, board="bare-d"),
    ])
    assert run("import", path, "--db", db).returncode == 0
    return db


def test_report_fleet_text_json_html_and_plot(run, fleet_store, tmp_path):
    proc = run("report", "--db", fleet_store, "--fleet", "--energy-budget", "30mJ,50mJ")
    assert proc.returncode == 0, proc.stderr
    text = proc.stdout
    assert "The fleet's answer within 30 mJ" in text and "within 50 mJ" in text
    assert ("best (the fleet's answer: the widest boundary measured): 71.88% top-1 (catalog) — orin-a 15W · "
            "mobilenet_v2 batch 1 fp32") in text
    assert "next step: 76.13% with orin-a MAXN (jetson_clocks) · resnet50 batch 8 fp32" in text
    assert "nano-b: 69.76%" in text  # the runner-up board
    assert "estimated: never ranked above a measurement" in text
    assert "left out: bare-d (1 configurations)" in text
    proc = run("report", "--db", fleet_store, "--fleet", "--energy-budget", "50mJ", "--json",
               "--plots", tmp_path / "figs", "--out", tmp_path / "r.html")
    assert proc.returncode == 0, proc.stderr
    data = json.loads(proc.stdout)
    assert data["limits"]["energy_budgets_j"] == [0.05]
    fleet = data["fleet"]
    (answer,) = fleet["answers"]
    assert answer["headline"] == "input_rail" and answer["groups"][0]["best"]["network"] == "resnet50"
    assert [g["boundary"] for g in fleet["groups"]] == ["input_rail", "estimate"]
    assert (tmp_path / "figs" / "fleet_frontier.png").stat().st_size > 0
    page = (tmp_path / "r.html").read_text()
    assert 'id="fleet"' in page and "the fleet&#x27;s answer" in page.lower() and "fleet_frontier" in page


def test_report_several_budgets_without_fleet_is_one_line(run, fleet_store, one_error_line):
    assert "several go with --fleet" in one_error_line(run("report", "--db", fleet_store,
                                                           "--energy-budget", "30mJ,50mJ"))


def test_report_fleet_json_names_every_budget(run, fleet_store):
    proc = run("report", "--db", fleet_store, "--fleet", "--energy-budget", "30mJ,50mJ", "--json")
    assert proc.returncode == 0, proc.stderr
    data = json.loads(proc.stdout)
    assert data["limits"]["energy_budgets_j"] == [0.03, 0.05] and data["limits"]["energy_budget_j"] == 0.03
    assert [a["budget_j"] for a in data["fleet"]["answers"]] == [0.03, 0.05]


def test_collect_status_and_summary_count_failed_points_only_when_there_are_some(tmp_path, capsys):
    counts = Counter(result=3, stored=5, failure=2)
    assert "results 3 · failed points 2 · stored 5 · duplicates 0" in views.collect_status(True, counts)
    assert "failed points" not in views.collect_status(True, Counter(result=3))
    views.collect_summary(counts, tmp_path / "r.sqlite", None)
    assert "stored 5 messages (3 results, 2 failed points, 0 duplicates, 0 rejected)" in " ".join(
        capsys.readouterr().err.split())


def test_report_assume_accuracy_json_and_export_carry_the_source(run, db, tmp_path, msgs):
    import pandas as pd

    results = [msgs.result("resnet50", 1, 0.040, board="board-a"),
               msgs.result("resnet50", 1, 0.020, board="board-a", precision="fp16"),
               msgs.measured(msgs.result("resnet50", 1, 0.010, board="board-a", precision="int8"), 75.1, images=500)]
    assert run("import", write_jsonl(tmp_path / "run.jsonl", results), "--db", db).returncode == 0

    def ceiling(*args):
        proc = run("report", "--json", "--no-analyses", "--db", db, "--energy-budget", "30mJ", *args)
        assert proc.returncode == 0, proc.stderr
        data = json.loads(proc.stdout)
        return data["limits"]["assume_accuracy"], data["boards"][0]["ceiling"]

    assumed, c = ceiling()
    assert not assumed and (c["best"]["precision"], c["top1"], c["assumed"]) == ("int8", 75.1, False)
    assert c["best"]["accuracy_source"] == "measured" and c["excluded"]["assumed"] == 1
    assumed, c = ceiling("--assume-accuracy")
    assert assumed and (c["best"]["precision"], c["assumed"]) == ("fp16", True)
    assert c["top1"] == catalog.lookup("resnet50").top1
    proc = run("report", "--db", db, "--energy-budget", "30mJ", "--assume-accuracy", "--no-analyses",
               "--export", tmp_path / "t.csv")
    assert proc.returncode == 0, proc.stderr
    assert "rests on assumed accuracy" in " ".join(proc.stdout.split())
    table = pd.read_csv(tmp_path / "t.csv").set_index("precision")
    assert list(table.loc[["fp16", "fp32", "int8"], "accuracy_source"]) == ["catalog", "catalog", "measured"]
    assert [bool(v) for v in table.loc[["fp16", "fp32", "int8"], "assumed"]] == [True, False, False]
    assert [bool(v) for v in table.loc[["fp16", "fp32", "int8"], "ranked"]] == [True, True, True]  # assumed: ranked
    help_text = " ".join(run("report", "--help").stdout.split())
    assert "--assume-accuracy" in help_text and "dnnagent run --accuracy-set DIR" in help_text


def test_report_the_energy_optimal_power_mode_of_a_mode_sweep(run, db, tmp_path, msgs):
    """Imported results of one network in two power modes × two clock states: every clock state survives the store,
    and --latency-budget moves the energy-optimal mode."""
    sweep = {("15W", "jetson_clocks off"): {1: (0.012, 12.0), 8: (0.006, 60.0)},
             ("15W", "jetson_clocks on"): {1: (0.014, 10.0), 8: (0.007, 50.0)},
             ("MAXN", "jetson_clocks off"): {1: (0.016, 6.0), 8: (0.009, 25.0)},
             ("MAXN", "jetson_clocks on"): {1: (0.020, 5.0), 8: (0.010, 20.0)}}
    results = [msgs.result("resnet18", batch, energy, power_mode=mode, clocks=clocks, latency_ms=ms,
                           throughput=1000.0 * batch / ms)
               for (mode, clocks), points in sweep.items() for batch, (energy, ms) in points.items()]
    assert run("import", write_jsonl(tmp_path / "sweep.jsonl", results), "--db", db).returncode == 0
    data = json.loads(run("report", "--json", "--db", db).stdout)
    (board,) = data["boards"]
    assert len(board["results"]) == 8
    (group,) = board["power_modes"]["groups"]
    assert group["optimal"]["state"] == "15W (jetson_clocks off)" and group["optimal"]["batch"] == 8
    data = json.loads(run("report", "--json", "--latency-budget", "30ms", "--db", db).stdout)
    (group,) = data["boards"][0]["power_modes"]["groups"]
    assert group["optimal"]["state"] == "MAXN (jetson_clocks off)" and group["optimal"]["batch"] == 8
    text = " ".join(run("report", "--latency-budget", "4ms", "--db", db, "--no-analyses").stdout.split())
    assert "no power state meets mean latency ≤ 4 ms per batch" in text


# --- a PostgreSQL store, as a team uses it --------------------------------------------------------------------------


def test_every_store_command_works_on_postgresql(run, postgres, tmp_path, measured):
    """import, report, gaps and rejected against a database of the private PostgreSQL; the same answers as on a file,
    and the URL's password never printed."""
    url = postgres.database()
    lines = write_jsonl(tmp_path / "run.jsonl", measured, raw={3: b"{not json"})
    proc = run("import", lines, "--db", url)
    assert proc.returncode == 1 and "imported" in proc.stderr  # the bad line is kept, the rest imported
    data = json.loads(run("report", "--json", "--energy-budget", "50mJ", "--db", url).stdout)
    assert data["boards"][0]["ceiling"]["best"]["network"] == "mobilenet_v2"
    rejected = json.loads(run("rejected", "--json", "--db", url).stdout)
    assert [r["source"] for r in rejected] == [f"import:{lines}:3"]
    assert run("gaps", "--db", url).returncode == 0
    with Store(url) as store:
        assert store.count() == len([m for m in measured if isinstance(m, schema.Result)])
    secret = url.replace("dnnprof@", "dnnprof:s3cret@")  # trust auth: the password is not checked, only printed
    proc = run("import", write_jsonl(tmp_path / "again.jsonl", measured[:2]), "--db", secret)
    assert proc.returncode == 0 and "s3cret" not in proc.stderr and "dnnprof:***@" in proc.stderr


def test_dnnprof_db_names_the_store_when_db_is_not_given(run, postgres, tmp_path, measured):
    url = postgres.database()
    env = {**run.env, "DNNPROF_DB": url}
    proc = subprocess.run([sys.executable, "-m", "dnnprof.host", "import", str(write_jsonl(tmp_path / "r.jsonl",
                                                                                            measured))],
                          capture_output=True, text=True, env=env, timeout=60)
    assert proc.returncode == 0, proc.stderr
    with Store(url) as store:
        assert store.count() > 0


def test_an_unreachable_database_is_one_line(run, one_error_line):
    line = one_error_line(run("report", "--db", "postgresql://nobody:pw@127.0.0.1:1/none"))
    assert "cannot open the result store postgresql://nobody:***@127.0.0.1:1/none" in line and "--db" in line
