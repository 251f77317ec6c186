"""``dnnagent outbox`` through the real entry point (``serve`` itself: tests/agent/service/test_serve.py)."""

import json
import time

from dnnprof.agent.service.outbox import Outbox
from dnnprof.shared import schema


def test_outbox_shows_what_waits_and_what_a_kill_left_unfinished(tmp_path, model_dir, dnnagent):
    config = tmp_path / "agent.toml"
    config.write_text(f'[broker]\nhost = "127.0.0.1"\n[agent]\nboard_id = "cli-board"\nstate_dir = '
                      f'"{tmp_path / "state"}"\nmodels_dir = "{model_dir}"\n')
    empty = dnnagent("outbox", "--config", config, cwd=tmp_path)
    assert empty.returncode == 0 and "no outbox yet" in empty.stdout
    box = Outbox(tmp_path / "state" / "outbox.sqlite")
    for seq, event in enumerate(("started", "progress", "progress")):
        box.put(schema.RunEvent(board="cli-board", ts=time.time(), run_id="run-cut", seq=seq, event=event,
                                points_total=4, points_done=seq))
    box.acked([1])
    box.enqueue(schema.Command(board="cli-board", ts=time.time(), id="start-1", action="sweep_start",
                               models=["m.onnx"], batches=[1]), "run-queued")
    stream = box.stream_id
    box.close()
    shown = dnnagent("outbox", "--config", config, cwd=tmp_path)
    assert shown.returncode == 0, shown.stderr
    text = " ".join(shown.stdout.split())
    assert f"stream {stream}, 3 messages written; 2 not yet acknowledged by the broker" in text
    assert "1 delivered ones kept for replay" in text
    assert "run run-cut never ended" in text
    assert "run run-queued queued by a host (command start-1, queued): run after the configured sweep" in text
    data = json.loads(dnnagent("outbox", "--config", config, "--json", cwd=tmp_path).stdout)
    assert (data["undelivered"], data["delivered_kept"], data["high"]) == (2, 1, 3)
    assert data["unfinished_runs"] == ["run-cut"] and data["oldest_undelivered_age_s"] >= 0
    assert data["queued_runs"] == [{"run_id": "run-queued", "state": "queued", "command_id": "start-1"}]
    (tmp_path / "state" / "outbox.sqlite").write_bytes(b"garbage" * 1000)
    for name in ("outbox.sqlite-wal", "outbox.sqlite-shm"):
        (tmp_path / "state" / name).unlink(missing_ok=True)
    damaged = dnnagent("outbox", "--config", config, cwd=tmp_path)
    assert damaged.returncode != 0 and "Traceback" not in damaged.stderr
    assert "cannot open the outbox" in damaged.stderr
