"""report.build (plain data, what --json prints) and report.render (rich text) on a real store."""

from __future__ import annotations

import io
import json

import msgspec
import pytest
from msgspec.structs import replace as msgstruct_replace
from rich.console import Console

from dnnprof.host import analysis, report
from dnnprof.host.store import Store
from dnnprof.shared import catalog, schema


@pytest.fixture
def store(tmp_path):
    with Store(tmp_path / "results.sqlite") as s:
        yield s


@pytest.fixture
def fleet(store, msgs):
    """board-a: measured (one estimated), one without energy, one outside the catalog; board-b: no power source."""
    store.add_many([
        msgs.info(board="board-a", hostname="orin-1", cpu_model="ARM Cortex-A78AE"),
        msgs.status("online", 2, board="board-a"),
        msgs.result("resnet18", 1, 0.010, board="board-a", id="a-resnet18-old", ts=100.0),
        msgs.result("resnet18", 1, 0.012, board="board-a", id="a-resnet18-new", ts=200.0),
        msgs.result("mobilenet_v2", 4, 0.040, board="board-a", id="a-mobilenet-b4", estimated=True),
        msgs.result("resnet50", 1, None, board="board-a", id="a-resnet50-none"),
        msgs.result("mystery_net", 1, 0.001, board="board-a", id="a-mystery-net1"),
        msgs.result("resnet18", 1, None, board="board-b", id="b-resnet18-none"),
    ])
    return store


def render(data: dict, **kw) -> tuple[str, str]:
    """(the text as printed, the same with line wrapping undone)."""
    console = Console(record=True, width=120, file=io.StringIO())
    report.render(console, data, **kw)
    text = console.export_text()
    return text, " ".join(text.split())


def row(text: str, network: str, batch: int) -> list[str]:
    """The cells of the table row of ``network`` at ``batch``."""
    found = [line.split() for line in text.splitlines() if line.split()[:2] == [network, str(batch)]]
    assert len(found) == 1, f"no single row for {network} batch {batch} in:\n{text}"
    return found[0]


def build(store, budget=None, board=None, **kw):
    return report.build(store, analysis.Limits(energy_budget_j=budget), board=board, analyses=False, **kw)


def test_build_structure(fleet):
    data = build(fleet, 0.05)
    json.dumps(data, allow_nan=False)  # plain data throughout
    assert data["limits"]["energy_budget_j"] == 0.05
    assert data["basis"] == {"energy": "gross", "per": "image", "text": "gross energy per image"}
    assert data["limits"]["text"] == "50 mJ gross energy per image"
    assert [b["board"] for b in data["boards"]] == ["board-a", "board-b"]
    a, b = data["boards"]
    assert (a["state"], a["hostname"], a["cpu_model"]) == ("online", "orin-1", "ARM Cortex-A78AE")
    assert (b["state"], b["hostname"], b["cpu_model"]) == (None, None, None)
    assert sorted(r["id"] for r in a["results"]) == ["a-mobilenet-b4", "a-mystery-net1", "a-resnet18-new",
                                                     "a-resnet50-none"]  # only the newest resnet18 batch 1
    assert a["configurations"] == 4
    none = next(r for r in a["results"] if r["id"] == "a-resnet50-none")
    assert none["energy_per_inference_j"] is None and none["power_w"] is None  # missing, not NaN, not 0
    assert none["energy_j"] is None
    assert next(r for r in a["results"] if r["network"] == "mystery_net")["top1"] is None
    c = a["ceiling"]
    assert c["best"]["network"] == "mobilenet_v2"
    assert c["top1"] == catalog.lookup("mobilenet_v2").top1
    assert c["estimated"] is True
    assert (c["without_energy"], c["without_accuracy"], c["ranked"]) == (1, ["mystery_net"], 2)
    assert [s["network"] for s in a["frontier"]] == ["resnet18", "mobilenet_v2"]
    assert b["ceiling"]["best"] is None and b["ceiling"]["without_energy"] == 1 and b["frontier"] == []


def test_build_without_budget_and_for_one_board(fleet):
    data = build(fleet)
    assert data["limits"]["energy_budget_j"] is None and data["limits"]["text"] == ""
    # No limit: the ceiling is the most accurate configuration measured, energy or not.
    assert data["boards"][0]["ceiling"]["best"]["network"] == "resnet50"
    only = build(fleet, 1.0, "board-b")
    assert [b["board"] for b in only["boards"]] == ["board-b"]
    assert [r["id"] for r in only["boards"][0]["results"]] == ["b-resnet18-none"]
    assert build(fleet, 1.0, "board-z")["boards"] == []


def test_build_budget_per_batch_reports_energy_per_batch(fleet):
    data = report.build(fleet, analysis.Limits(energy_budget_j=0.2), analysis.Basis(per="batch"), "board-a",
                        analyses=False)
    mobilenet = next(r for r in data["boards"][0]["results"] if r["network"] == "mobilenet_v2")
    assert mobilenet["energy_j"] == pytest.approx(0.16) and mobilenet["energy_per_inference_j"] == 0.04
    assert data["limits"]["text"] == "200 mJ gross energy per batch"


def test_build_includes_the_analyses_when_asked(fleet):
    data = report.build(fleet, analysis.Limits(energy_budget_j=0.05))
    assert set(data["analyses"]) >= {"accuracy_vs_time", "ops_vs_time", "batch_scaling", "power"}
    json.dumps(data, allow_nan=False)


def test_render_ceiling_names_the_configuration(fleet):
    _, flat = render(build(fleet, 0.05))
    assert "board-a — ARM Cortex-A78AE" in flat
    assert ("Energy-bounded accuracy ceiling within 50 mJ gross energy per image: "
            f"{catalog.lookup('mobilenet_v2').top1:.2f}% top-1 (catalog) — mobilenet_v2 batch 4 fp32 on "
            "onnxruntime/cpu — 40 mJ~, 100 img/s (energy ~ estimated)") in flat
    assert "nothing more accurate was measured within the other limits." in flat
    assert "Not ranked (no accuracy: not measured, no reference in the manifest or the catalog): mystery_net." in flat
    assert "Not ranked (no energy measured in this basis): 1 configuration." in flat
    assert "frontier: the best top-1 at each gross energy per image" in flat


def test_render_next_step_and_extra_energy(fleet):
    _, flat = render(build(fleet, 0.02, "board-a"))
    top1 = catalog.lookup("resnet18").top1
    assert f"Energy-bounded accuracy ceiling within 20 mJ gross energy per image: {top1:.2f}% top-1" in flat
    assert (f"next step: {catalog.lookup('mobilenet_v2').top1:.2f}% with mobilenet_v2 batch 4 fp32 on "
            "onnxruntime/cpu — 40 mJ~, 100 img/s — needs 20 mJ~ more than the budget") in flat


def test_render_marks_estimates_and_never_shows_missing_as_zero(fleet):
    text, flat = render(build(fleet, 0.05, "board-a"))
    assert "mJ/img" in text
    estimated = row(text, "mobilenet_v2", 4)
    assert estimated[5:7] == ["4~", "40~"]  # W and mJ/img carry the estimate mark
    measured = row(text, "resnet18", 1)
    assert measured[5:7] == ["1.2", "12"] and "~" not in " ".join(measured)  # the newest resnet18 only
    missing = row(text, "resnet50", 1)
    assert missing[5:7] == ["—", "—"]
    assert row(text, "mystery_net", 1)[7] == "—"  # no reference accuracy
    assert "~ = estimated, not measured" in flat


def test_render_board_without_energy_says_so(fleet):
    text, flat = render(build(fleet, 0.05, "board-b"))
    cells = row(text, "resnet18", 1)
    assert cells[5:7] == ["—", "—"]
    assert ("No energy was measured on this board (gross energy per image: no power source), so there is no "
            "energy frontier.") in flat
    assert "Ceiling" not in flat
    assert "No configuration fits" not in flat
    assert "~" not in text  # nothing estimated on this board


def test_render_no_configuration_fits(fleet):
    _, flat = render(build(fleet, 0.005, "board-a"))
    assert ("No configuration fits within 5 mJ gross energy per image. The cheapest is resnet18 batch 1 fp32 on "
            "onnxruntime/cpu — 12 mJ, 100 img/s.") in flat
    assert "ceiling within" not in flat


def test_render_without_budget_asks_for_one(fleet):
    _, flat = render(build(fleet, None, "board-a"))
    assert "Add --energy-budget (e.g. 50mJ) for the energy-bounded accuracy ceiling." in flat
    assert "Ceiling with no limits (the most accurate measured)" in flat


def test_render_power_modes_and_precisions_separately(store, msgs):
    def moded(result, mode):
        return msgspec.structs.replace(result, conditions=schema.Conditions(power_mode=mode))

    store.add_many([moded(msgs.result("resnet18", 1, 0.010), "15W"), moded(msgs.result("resnet50", 1, 0.030), "15W"),
                    moded(msgs.result("resnet18", 1, 0.020), "MAXN"),
                    moded(msgs.measured(msgs.result("resnet50", 1, 0.012, precision="int8"), 75.4), "MAXN")])
    text, flat = render(build(store, 0.015))
    assert "mode" in text and "prec" in text  # columns appear only when they differ
    top1 = catalog.lookup("resnet18").top1
    assert f"power mode 15W: Energy-bounded accuracy ceiling within 15 mJ gross energy per image: {top1:.2f}%" in flat
    assert "power mode MAXN: Energy-bounded accuracy ceiling within 15 mJ gross energy per image" in flat
    assert "precision int8: Energy-bounded accuracy ceiling" in flat and "precision fp32: Energy-bounded" in flat


def test_render_timing_only_engines_are_shown_never_ranked(store, msgs):
    random_int8 = msgspec.structs.replace(msgs.result("resnet50", 1, 0.001, precision="int8"),
                                          calibration="random", timing_only=True)
    store.add_many([msgs.result("resnet18", 1, 0.010), random_int8])
    text, flat = render(build(store, 0.05))
    cells = [line.split() for line in text.splitlines() if line.split()[:3] == ["resnet50", "int8", "1"]]
    assert cells and cells[0][-1] == "timing"  # its top-1 cell
    assert "timing = int8 calibrated on random data" in flat
    assert "Not ranked (timing only: int8 calibrated on random data, accuracy unknown): 1 configuration." in flat
    assert f"ceiling within 50 mJ gross energy per image: {catalog.lookup('resnet18').top1:.2f}%" in flat


def test_render_a_large_board_shows_the_frontier_not_every_row(store, msgs):
    store.add_many([msgs.result("resnet18", b, 0.01 * b) for b in range(1, report.MAX_ROWS + 2)])
    text, flat = render(build(store, 0.05))
    assert f"{report.MAX_ROWS + 1} configurations (the frontier below" in flat
    assert not [line for line in text.splitlines() if line.split()[:1] == ["resnet18"]]  # no table rows
    assert [line.split()[:4] for line in text.splitlines() if "resnet18" in line.split()[3:4]] == [
        ["10", "mJ", f"{catalog.lookup('resnet18').top1:.2f}", "resnet18"]]  # the frontier's one step
    text, _ = render(build(store, 0.05), all_rows=True)
    assert len([line for line in text.splitlines() if line.split()[:1] == ["resnet18"]]) == report.MAX_ROWS + 1


def test_render_empty_store(store):
    data = build(store, 0.05)
    assert data["boards"] == []
    _, flat = render(data)
    assert flat == ("No results stored yet. Run `dnnhost demo`, or `dnnhost collect` while an agent runs, or "
                    "`dnnhost import FILE.jsonl`.")


def test_render_known_board_without_results(store, msgs):
    # The board is online (its birth arrived) but has published no result yet.
    store.add_many([msgs.info(board="board-c", power_source="rapl"), msgs.status("online", 1, board="board-c")])
    data = build(store, 0.05, "board-c")
    assert [b["board"] for b in data["boards"]] == ["board-c"]
    assert data["boards"][0]["results"] == []
    _, flat = render(data)
    assert "board-c" in flat
    assert "No results from this board yet." in flat
    assert "No energy was measured" not in flat  # it has a power source; it just has not reported


def test_render_energy_units_follow_the_values(store, msgs):
    store.add_many([msgs.result("resnet18", 1, 2.5), msgs.result("resnet50", 1, 4.0)])
    text, _ = render(build(store, 10.0))
    assert " J/img" in text
    assert row(text, "resnet18", 1)[6] == "2.5"


def test_render_the_seed_analyses_with_their_fitted_numbers(store, msgs):
    # Three networks at two batch sizes, time per image exactly linear in G-ops at each batch.
    for network in ("resnet18", "resnet50", "vgg16"):
        gmacs = catalog.lookup(network).gmacs
        for batch in (1, 4):
            ms = (2.0 if batch == 1 else 1.0) * gmacs
            r = msgs.result(network, batch, 0.01 * gmacs, throughput=1e3 / ms)
            store.add(msgspec.structs.replace(r, latency_ms=msgspec.structs.replace(r.latency_ms, mean=ms * batch)))
    data = report.build(store, analysis.Limits(energy_budget_j=0.05))
    _, flat = render(data)
    assert "The seed paper's analyses" in flat
    assert "op count vs time per image: ms = slope × G-ops + intercept" in flat
    ops = {r["batch"]: r for r in data["analyses"]["ops_vs_time"]}
    assert ops[1]["slope_ms_per_gop"] == pytest.approx(1.0) and ops[1]["r2"] == pytest.approx(1.0)
    assert ops[4]["slope_ms_per_gop"] == pytest.approx(0.5)
    assert "board-a fp32 onnxruntime/cpu 1 1 0 1.000 3" in flat  # batch, ms/G-op, intercept, R², n
    assert "accuracy vs time per image: top-1 = a − b / t" in flat
    assert "googlenet/alexnet: —× (seed: 10×)" in flat  # neither was measured
    assert "independent when the coefficient of variation" in flat


def test_build_can_leave_out_the_rows_of_large_boards(store, msgs):
    store.add_many([msgs.result("resnet18", b, 0.01, board="big") for b in range(1, 5)]
                   + [msgs.result("resnet18", 1, None, board="small")])
    data = build(store, 0.05, rows_up_to=3)
    big, small = data["boards"]
    assert big["results"] is None and (big["configurations"], big["with_energy"]) == (4, 4)
    assert len(small["results"]) == 1 and (small["configurations"], small["with_energy"]) == (1, 0)
    assert big["frontier"][0]["network"] == "resnet18"  # ranking still sees every row
    text, flat = render(data)
    assert "big: 4 configurations (the frontier below" in flat
    assert "No energy was measured on this board" in flat  # small


def test_unknown_board_names_the_boards_there(fleet):
    data = build(fleet, 0.05, "board-z")
    assert data["analyses"] is None
    _, flat = render(data)
    assert flat == "No board 'board-z' in this store. Boards here: board-a, board-b."


def test_an_estimate_loses_a_tie_to_a_measurement(store, msgs):
    for order in ((True, False), (False, True)):
        with Store(store.path.with_name(f"tie-{order[0]}.sqlite")) as s:
            for i, est in enumerate(order):
                s.add(msgs.result("resnet18", 1, 0.01, estimated=est, backend=f"b{i}", ts=100.0 + i))
            assert build(s, 0.05)["boards"][0]["ceiling"]["best"]["estimated"] is False


def test_p99_from_too_few_batches_is_marked_low_confidence(store, msgs):
    def counted(r):  # as this agent sends it: the batch count in the latency figures
        return msgstruct_replace(r, latency_ms=msgstruct_replace(r.latency_ms, batches=r.iterations))

    many = counted(msgs.result("resnet18", 1, 0.01, board="board-a", throughput=100.0))  # 200 batches in 2 s
    few = counted(msgs.result("resnet50", 8, 0.02, board="board-a", throughput=100.0))  # 25 batches of 8
    older = msgs.result("vgg16", 1, 0.3, board="board-a", throughput=10.0)  # an older agent: the count is iterations
    store.add_many([many, few, older])
    data = build(store, 0.05, "board-a")
    by_net = {r["network"]: r for r in data["boards"][0]["results"]}
    assert (by_net["resnet18"]["latency_batches"], by_net["resnet18"]["low_confidence"]) == (200, None)
    assert (by_net["resnet50"]["latency_batches"], by_net["resnet50"]["low_confidence"]) == (25, "p99")
    assert (by_net["vgg16"]["latency_batches"], by_net["vgg16"]["low_confidence"]) == (20, "p99")
    json.dumps(data)  # plain data, as --json prints it
    text, flat = render(data)
    assert row(text, "resnet50", 8)[3] == "13.50?" and row(text, "resnet18", 1)[3] == "13.50"
    assert "? = p99 from fewer than 100 batches (the slowest of them): low confidence" in flat


def test_a_latency_budget_on_p99_says_how_many_rest_on_too_few_batches(store, msgs):
    store.add_many([msgs.result("resnet18", 1, 0.01, board="board-a"),
                    msgs.result("resnet50", 8, 0.02, board="board-a")])  # 200 and 25 batches
    data = report.build(store, analysis.Limits(latency_budget_ms=1000, latency_stat="p99"), board="board-a",
                        analyses=False)
    _, flat = render(data)
    assert "1 of these configurations have a p99 from fewer than 100 batches (low confidence)" in flat


# -- failed points ------------------------------------------------------------------------------------------------


@pytest.fixture
def failing(fleet, msgs):
    """The fleet, plus: on board-a vgg16 out of memory at batch 64 and not run at 128; resnet18 batch 1 failed
    before it was measured (superseded); on board-b a NaN output; on board-c (no result, no info) a build failure."""
    fleet.add_many([
        msgs.failure("vgg16", 64, "out_of_memory", "window", board="board-a", id="a-vgg16-b64", ts=300.0,
                     message="CUDA out of memory [bold]not markup[/]", run_id="run-9"),
        msgs.failure("vgg16", 128, "out_of_memory", "not_run", board="board-a", id="a-vgg16-b128", ts=301.0,
                     message="not run", cause="vgg16 b=64 fp32"),
        msgs.failure("resnet18", 1, "timeout", "warmup", board="board-a", id="a-resnet18-failed", ts=150.0),
        msgs.failure("resnet18", 2, "invalid_output", "check", board="board-b", id="b-resnet18-nan",
                     message="output 'logits' holds 3 NaN"),
        msgs.failure("alexnet", 1, "build_failed", "prepare", board="board-c", id="c-alexnet-build",
                     message="\x1b[31mbuild failed"),
    ])
    return fleet


def test_failures_in_the_data_with_why_and_never_as_measurements(failing):
    data = build(failing, 0.05)
    json.dumps(data, allow_nan=False)
    assert [(f["board"], f["network"], f["batch"]) for f in data["failures"]] == [
        ("board-a", "vgg16", 64), ("board-a", "vgg16", 128), ("board-b", "resnet18", 2), ("board-c", "alexnet", 1)]
    oom, skipped = data["failures"][:2]
    assert {k: oom[k] for k in ("precision", "device", "backend", "power_mode", "error", "stage", "run_id", "ts")} == {
        "precision": "fp32", "device": "cpu", "backend": "onnxruntime", "power_mode": "n/a",
        "error": "out_of_memory", "stage": "window", "run_id": "run-9", "ts": 300.0}
    assert oom["reason"] == oom["message"] == "CUDA out of memory [bold]not markup[/]"
    assert skipped["reason"] == "not run: vgg16 b=64 fp32" and skipped["cause"] == "vgg16 b=64 fp32"
    assert data["failures_superseded"] == 1  # resnet18 batch 1 failed, then was measured
    # Nothing of it is a measurement: the same boards, configurations and ceiling as without the failures.
    assert [b["board"] for b in data["boards"]] == ["board-a", "board-b"]
    assert [b["configurations"] for b in data["boards"]] == [4, 1]
    assert all(r["network"] != "vgg16" for b in data["boards"] for r in b["results"])
    assert len(report.load(failing)) == 5
    assert data["boards"][0]["ceiling"]["best"]["network"] == "mobilenet_v2"


def test_failures_follow_the_board_filter(failing):
    data = build(failing, 0.05, "board-b")
    assert [f["id"] for f in data["failures"]] == ["b-resnet18-nan"] and data["failures_superseded"] == 0
    only_failed = build(failing, 0.05, "board-c")  # a board known only by a failure
    assert only_failed["boards"] == [] and only_failed["known_boards"] == []
    assert [f["id"] for f in only_failed["failures"]] == ["c-alexnet-build"]
    _, flat = render(only_failed)
    assert "No measurement stored yet: every point so far failed (below)." in flat
    assert "alexnet 1 fp32 onnxruntime/cpu n/a build_failed prepare \\x1b[31mbuild failed" in flat


def test_render_lists_the_failed_points_and_why(failing):
    text, flat = render(build(failing, 0.05))
    assert "Failed points: 4 produced no measurement (never ranked)" in flat
    assert ("board-a vgg16 64 fp32 onnxruntime/cpu n/a out_of_memory window CUDA out of memory [bold]not markup[/]"
            in flat)  # a board's text is never read as markup
    assert "board-a vgg16 128 fp32 onnxruntime/cpu n/a out_of_memory not run not run: vgg16 b=64 fp32" in flat
    assert "board-b resnet18 2 fp32 onnxruntime/cpu n/a invalid_output check output 'logits' holds 3 NaN" in flat
    assert "\x1b" not in text
    assert "1 configuration that failed earlier was measured since" in flat
    assert "a-resnet18-failed" not in flat and "timeout" not in flat  # superseded: not listed
    assert flat.index("Failed points") > flat.index("accuracy ceiling")  # after the boards' answers
    with_fleet = io.StringIO()
    report.render_fleet(Console(file=with_fleet, width=200), build(failing, 0.05, fleet_budgets=[0.05]))
    assert "4 failed points (no measurement, never ranked)" in with_fleet.getvalue()


def test_many_failed_points_are_summed_up_unless_all(store, msgs):
    store.add_many([msgs.failure("vgg16", b, "out_of_memory" if b % 3 else "timeout")
                    for b in range(1, report.MAX_ROWS + 11)])
    data = build(store)
    _, flat = render(data)
    assert (f"Failed points: {report.MAX_ROWS + 10} configurations produced no measurement — out_of_memory 47, "
            "timeout 23 (--all lists them" in flat)
    _, flat = render(data, all_rows=True)
    assert f"Failed points: {report.MAX_ROWS + 10} produced no measurement" in flat


def test_a_store_without_failures_says_nothing_of_them(fleet):
    data = build(fleet, 0.05)
    assert data["failures"] == [] and data["failures_superseded"] == 0
    assert "Failed points" not in render(data)[1] and "measured since" not in render(data)[1]


@pytest.fixture
def precisions(store, msgs):
    """resnet50 in fp32 (the catalog's reference), fp16 unmeasured (assumed), int8 measured (75.1%, below the
    reference), and mobilenet_v2 in int8 unmeasured: the cheapest, assumed."""
    store.add_many([
        msgs.result("resnet50", 1, 0.040, id="r50-fp32"),
        msgs.result("resnet50", 1, 0.020, precision="fp16", id="r50-fp16"),
        msgs.measured(msgs.result("resnet50", 1, 0.010, precision="int8", id="r50-int8"), 75.1, 92.4, images=500),
        msgs.result("mobilenet_v2", 1, 0.006, precision="int8", id="mnv2-int8"),
    ])
    return store


def test_build_carries_the_accuracy_source_and_leaves_assumed_rows_out(precisions):
    data = build(precisions, 0.030)
    json.dumps(data, allow_nan=False)
    assert data["limits"]["assume_accuracy"] is False
    (board,) = data["boards"]
    rows = {r["id"]: r for r in board["results"]}
    assert {k: (r["accuracy_source"], r["assumed"]) for k, r in rows.items()} == {
        "r50-fp32": ("catalog", False), "r50-fp16": ("catalog", True), "r50-int8": ("measured", False),
        "mnv2-int8": ("catalog", True)}
    measured = rows["r50-int8"]
    assert (measured["top1"], measured["top5"], measured["accuracy_images"]) == (75.1, 92.4, 500)
    assert (measured["top1_ci_low"], measured["top1_ci_high"]) == (71.1, 79.1)
    assert measured["top1_source"] == "measured on imagenet-val (500 images)"
    c = board["ceiling"]
    assert (c["best"]["network"], c["best"]["precision"], c["top1"]) == ("resnet50", "int8", 75.1)
    assert c["best"]["accuracy_source"] == "measured" and c["assumed"] is False
    assert c["excluded"]["assumed"] == 2
    assert [(s["network"], s["precision"]) for s in board["frontier"]] == [("resnet50", "int8"), ("resnet50", "fp32")]


def test_build_with_assume_accuracy_ranks_them_and_says_the_ceiling_rests_on_it(precisions):
    data = report.build(precisions, analysis.Limits(energy_budget_j=0.030, assume_accuracy=True), analyses=False)
    assert data["limits"]["assume_accuracy"] is True
    c = data["boards"][0]["ceiling"]
    assert (c["best"]["network"], c["best"]["precision"], c["top1"]) == ("resnet50", "fp16",
                                                                       catalog.lookup("resnet50").top1)
    assert c["assumed"] is True and c["best"]["assumed"] is True and c["ranked_assumed"] == 2
    assert "assumed" not in c["excluded"]


def test_render_shows_where_each_top1_comes_from(precisions):
    text, flat = render(build(precisions, 0.030))
    assert row(text, "resnet50", "fp32")[-2:] == [f"{catalog.lookup('resnet50').top1:.2f}", "catalog"]
    assert row(text, "resnet50", "fp16")[-2:] == [f"{catalog.lookup('resnet50').top1:.2f}", "assumed"]
    assert row(text, "resnet50", "int8")[-3:] == ["75.10", "measured", "500"]
    assert "from = where top-1 comes from" in flat
    assert "assumed = the fp32 reference for another precision, not measured: not ranked" in flat
    assert ("Energy-bounded accuracy ceiling within 30 mJ gross energy per image: 75.10% top-1 (measured, 500 "
            "images) — resnet50 batch 1 int8") in flat
    assert "rests on assumed accuracy" not in flat
    assert ("Not ranked (assumed accuracy: not fp32 and not measured, only the fp32 reference): 2 configurations — "
            "measure the accuracy (dnnagent run --accuracy-set DIR), or rank on the reference with "
            "--assume-accuracy.") in flat


def test_render_with_assume_accuracy_says_the_ceiling_rests_on_it(precisions):
    data = report.build(precisions, analysis.Limits(energy_budget_j=0.030, assume_accuracy=True), analyses=False)
    text, flat = render(data)
    assert (f"{catalog.lookup('resnet50').top1:.2f}% top-1 (assumed: the fp32 reference, not measured at fp16) — "
            "resnet50 batch 1 fp16") in flat
    assert "(rests on assumed accuracy: --assume-accuracy)" in flat
    assert "Ranked on assumed accuracy (--assume-accuracy: the fp32 reference, not measured at that precision): 2 " \
           "configurations." in flat
    assert "ranked all the same (--assume-accuracy)" in flat  # the caption


def test_render_a_board_of_catalog_references_only_has_no_source_column(fleet):
    text, flat = render(build(fleet, 0.05, "board-a"))
    assert "from" not in text.splitlines()[2].split()  # the header row
    assert "top-1 in % (the catalog's fp32 reference, not measured)" in flat


# -- the energy-optimal power mode ----------------------------------------------------------------------------------

DVFS, LOCKED = "jetson_clocks off", "jetson_clocks on"
SWEEP = {("15W", DVFS): {1: (0.012, 12.0), 8: (0.006, 60.0)},
         ("15W", LOCKED): {1: (0.014, 10.0), 8: (0.007, 50.0)},
         ("MAXN", DVFS): {1: (0.016, 6.0), 8: (0.009, 25.0)},
         ("MAXN", LOCKED): {1: (0.020, 5.0), 8: (0.010, 20.0)}}


@pytest.fixture
def swept(store, msgs):
    """board-a: resnet18 in two power modes × two clock states (batch 1 and 8), vgg16 in one; board-b: one mode."""
    store.add_many([
        *(msgs.result("resnet18", batch, energy, power_mode=mode, clocks=clocks, latency_ms=ms,
                      throughput=1000.0 * batch / ms)
          for (mode, clocks), points in SWEEP.items() for batch, (energy, ms) in points.items()),
        msgs.result("vgg16", 1, 0.3, power_mode="MAXN", clocks=LOCKED),
        msgs.result("resnet18", 1, 0.01, board="board-b", power_mode="10W", clocks=LOCKED),
        msgs.result("resnet50", 1, 0.03, board="board-b", power_mode="10W", clocks=LOCKED),
    ])
    return store


def test_build_carries_the_energy_optimal_power_mode_per_board(swept):
    data = report.build(swept, analysis.Limits(), analyses=True)
    json.dumps(data)  # plain data all through
    a, b = data["boards"]
    assert b["board"] == "board-b" and b["power_modes"] is None and b["by_power_mode"] == {}
    pm = a["power_modes"]
    assert set(pm) == {"states", "clock_states", "modes", "basis", "latency_stat", "limits", "reference", "groups",
                       "single_state"}
    (g,) = pm["groups"]
    assert (g["network"], g["optimal"]["power_mode"], g["optimal"]["clocks"], g["optimal"]["batch"]) == (
        "resnet18", "15W", DVFS, 8)
    assert [r["state"] for r in g["rows"]] == ["15W (jetson_clocks off)", "15W (jetson_clocks on)",
                                               "MAXN (jetson_clocks off)", "MAXN (jetson_clocks on)"]
    assert {"state", "power_mode", "clocks", "batch", "energy_per_image_j", "energy_j", "latency_ms", "throughput_ips",
            "power_w", "estimated", "within_limits", "optimal", "saving_j", "saving_pct"} <= set(g["rows"][0])
    assert [s["network"] for s in pm["single_state"]] == ["vgg16"]
    # the ceilings per power mode keep the clock states apart, and so do the seed's analyses
    assert set(a["by_power_mode"]) == set(pm["states"])
    assert {r["power_mode"] for r in data["analyses"]["accuracy_vs_time"] if r["board"] == "board-a"} == set(
        pm["states"])
    assert len(a["results"]) == 9  # the four clock states of each point survive latest


def test_build_with_a_latency_budget_picks_among_the_modes_that_meet_it(swept):
    data = report.build(swept, analysis.Limits(latency_budget_ms=30.0), analyses=False)
    (g,) = data["boards"][0]["power_modes"]["groups"]
    assert (g["optimal"]["state"], g["optimal"]["batch"]) == ("MAXN (jetson_clocks off)", 8)
    assert data["boards"][0]["power_modes"]["limits"] == "mean latency ≤ 30 ms per batch"
    data = report.build(swept, analysis.Limits(latency_budget_ms=4.0), analyses=False)
    (g,) = data["boards"][0]["power_modes"]["groups"]
    assert g["optimal"] is None and g["none_meets"] and g["closest"]["state"] == "MAXN (jetson_clocks on)"


def test_render_the_mode_by_mode_table(swept):
    text, flat = render(report.build(swept, analysis.Limits(), board="board-a", analyses=False))
    assert ("Energy-optimal power mode: the least gross energy per image per network, each power state at its best "
            "batch") in flat
    table = [line for line in text.splitlines() if "(jetson_clocks" in line and (
        "less" in line.split() or "dearest" in line.split())]
    assert len(table) == 4
    assert "resnet18" in table[0] and "15W (jetson_clocks off)" in table[0] and "★ least energy" in table[0]
    assert table[0].split()[-9:-3] == ["8", "6", "60", "133", "40%", "less"]
    assert "MAXN (jetson_clocks on)" in table[3] and table[3].split()[-1] == "dearest"
    assert "saving = less energy per image than the network's dearest power state" in flat
    assert "Measured in one power state only (nothing to compare): vgg16 fp32 in MAXN (jetson_clocks on)." in flat
    # the board's tables and sentences name the clock state
    assert "clocks" in text.splitlines()[2].split()
    assert "power mode 15W (jetson_clocks off): Ceiling with no limits" in flat
    assert "resnet18 batch 8 fp32 on onnxruntime/cpu, 15W (jetson_clocks off) — 6 mJ" in flat


def test_render_says_when_no_mode_meets_the_latency_budget_and_what_the_budget_costs(swept):
    _, flat = render(report.build(swept, analysis.Limits(latency_budget_ms=4.0), board="board-a", analyses=False))
    assert "within mean latency ≤ 4 ms per batch" in flat and "✗ outside the limits" in flat
    assert ("resnet18 fp32: no power state meets mean latency ≤ 4 ms per batch; the fastest is MAXN (jetson_clocks "
            "on) batch 1: 20 mJ per image, 5 ms, 200 img/s.") in flat
    _, flat = render(report.build(swept, analysis.Limits(latency_budget_ms=30.0), board="board-a", analyses=False))
    assert ("resnet18 fp32: without the limits the least energy is 15W (jetson_clocks off) batch 8: 6 mJ per image, "
            "60 ms, 133 img/s (57% less than the dearest state).") in flat


def test_render_a_board_in_one_power_state_shows_no_mode_table(swept):
    text, flat = render(report.build(swept, analysis.Limits(), board="board-b", analyses=False))
    assert "Energy-optimal power mode" not in flat and "clocks" not in text
    assert "power mode 10W:" not in flat


def test_render_a_long_mode_table_shows_the_optimum_of_each_network(store, msgs):
    store.add_many([msgs.result(f"net{k:02d}", 1, energy, power_mode=mode, clocks=clocks)
                    for k in range(16) for (mode, clocks), energy in (
                        (("15W", DVFS), 0.006), (("15W", LOCKED), 0.007), (("MAXN", DVFS), 0.009),
                        (("MAXN", LOCKED), 0.010))])
    data = report.build(store, analysis.Limits(), analyses=False)
    assert sum(len(g["rows"]) for g in data["boards"][0]["power_modes"]["groups"]) == 64 > report.MAX_ROWS
    text, flat = render(data)
    assert "the optimum of each network (--all prints every power state)" in flat
    shown = [line for line in text.splitlines() if "(jetson_clocks" in line and "less" in line.split()]
    assert len(shown) == 16 and all("15W (jetson_clocks off)" in line and "★" in line for line in shown)
    text, _ = render(data, all_rows=True)
    assert len([line for line in text.splitlines() if "(jetson_clocks" in line and "img/s" not in line
                and ("less" in line.split() or "dearest" in line.split())]) == 64


def test_a_point_a_refused_power_mode_left_unrun_says_why_and_its_clock_state(store, msgs):
    """The agent's failure for a (mode, clocks) the board refused: its reason is the refusal, its mode and clock
    state those it would have run in."""
    store.add_many([msgs.result("resnet18", 1, 0.01, power_mode="MAXN", clocks="jetson_clocks on"),
                    msgs.failure("resnet18", 1, "unsupported", "not_run", power_mode="MODE_30W",
                                 clocks="jetson_clocks on", message="not run: power mode MODE_30W (2) needs a reboot",
                                 cause="power mode MODE_30W (2) needs a reboot from MAXN")])
    data = build(store)
    (f,) = data["failures"]
    assert f["reason"] == "not run: power mode MODE_30W (2) needs a reboot from MAXN"
    _, flat = render(data)
    assert "MODE_30W, clocks locked" in flat and "needs a reboot from MAXN" in flat
