"""report.build (plain data, what --json prints) and report.render (rich text) on a real store."""

from __future__ import annotations

import io
import json

import pytest
from rich.console import Console

from dnnprof.host import report
from dnnprof.host.store import Store
from dnnprof.shared import catalog


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


def render(data: dict) -> tuple[str, str]:
    """(the text as printed, the same with line wrapping undone)."""
    console = Console(record=True, width=120, file=io.StringIO())
    report.render(console, data)
    text = console.export_text()
    return text, " ".join(text.split())


def row(text: str, network: str, batch: int) -> list[str]:
    """The cells of the table row of ``network`` at ``batch``."""
    found = [line.split() for line in text.splitlines() if line.split()[:2] == [network, str(batch)]]
    assert len(found) == 1, f"no single row for {network} batch {batch} in:\n{text}"
    return found[0]


def test_build_structure(fleet):
    data = report.build(fleet, 0.05)
    json.dumps(data)  # plain data throughout
    assert data["energy_budget_j"] == 0.05
    assert "per image" in data["energy_basis"]
    assert [b["board"] for b in data["boards"]] == ["board-a", "board-b"]
    a, b = data["boards"]
    assert (a["state"], a["hostname"], a["cpu_model"]) == ("online", "orin-1", "ARM Cortex-A78AE")
    assert (b["state"], b["hostname"], b["cpu_model"]) == (None, None, None)
    assert sorted(r["id"] for r in a["results"]) == ["a-mobilenet-b4", "a-mystery-net1", "a-resnet18-new",
                                                     "a-resnet50-none"]  # only the newest resnet18 batch 1
    none = next(r for r in a["results"] if r["id"] == "a-resnet50-none")
    assert none["energy_per_inference_j"] is None and none["power_w"] is None  # missing, not NaN, not 0
    assert next(r for r in a["results"] if r["network"] == "mystery_net")["top1"] is None
    c = a["ceiling"]
    assert c["best"]["network"] == "mobilenet_v2"
    assert c["ceiling_top1"] == catalog.lookup("mobilenet_v2").top1
    assert c["estimated"] is True
    assert (c["without_energy"], c["without_accuracy"], c["considered"]) == (1, ["mystery_net"], 2)
    assert b["ceiling"]["best"] is None and b["ceiling"]["without_energy"] == 1


def test_build_without_budget_and_for_one_board(fleet):
    data = report.build(fleet)
    assert data["energy_budget_j"] is None
    assert all(b["ceiling"] is None for b in data["boards"])
    only = report.build(fleet, 1.0, "board-b")
    assert [b["board"] for b in only["boards"]] == ["board-b"]
    assert [r["id"] for r in only["boards"][0]["results"]] == ["b-resnet18-none"]
    assert report.build(fleet, 1.0, "board-z")["boards"] == []


def test_render_ceiling_names_the_configuration(fleet):
    _, flat = render(report.build(fleet, 0.05))
    assert "board-a — ARM Cortex-A78AE" in flat
    assert ("Energy-bounded accuracy ceiling at 50 mJ per image (gross energy per image): "
            f"{catalog.lookup('mobilenet_v2').top1:.2f}% top-1 — mobilenet_v2, batch 4, fp32 on onnxruntime/cpu "
            "— 40 mJ~ per image, 100 img/s (energy ~ estimated)") in flat
    assert "Not in the ceiling (no reference accuracy in the catalog): mystery_net." in flat
    assert "Not in the ceiling (no energy measured): 1 configurations." in flat


def test_render_marks_estimates_and_never_shows_missing_as_zero(fleet):
    text, flat = render(report.build(fleet, 0.05, "board-a"))
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
    text, flat = render(report.build(fleet, 0.05, "board-b"))
    cells = row(text, "resnet18", 1)
    assert cells[5:7] == ["—", "—"]
    assert "No energy was measured on this board (no power source), so there is no energy-bounded ceiling." in flat
    assert "ceiling at" not in flat
    assert "No configuration fits" not in flat
    assert "~" not in text  # nothing estimated on this board


def test_render_no_configuration_fits(fleet):
    _, flat = render(report.build(fleet, 0.005, "board-a"))
    assert ("No configuration fits 5 mJ per image. The cheapest is resnet18, batch 1, fp32 on onnxruntime/cpu — "
            "12 mJ per image, 100 img/s.") in flat
    assert "ceiling at" not in flat


def test_render_without_budget_asks_for_one(fleet):
    _, flat = render(report.build(fleet, None, "board-a"))
    assert "Add --energy-budget (e.g. 50mJ) for the energy-bounded accuracy ceiling." in flat


def test_render_empty_store(store):
    data = report.build(store, 0.05)
    assert data["boards"] == []
    _, flat = render(data)
    assert flat == ("No results stored yet. Run `dnnhost demo`, or `dnnhost collect` while an agent runs, or "
                    "`dnnhost import FILE.jsonl`.")


def test_render_known_board_without_results(store, msgs):
    # The board is online (its birth arrived) but has published no result yet.
    store.add_many([msgs.info(board="board-c", power_source="rapl"), msgs.status("online", 1, board="board-c")])
    data = report.build(store, 0.05, "board-c")
    assert [b["board"] for b in data["boards"]] == ["board-c"]
    assert data["boards"][0]["results"] == []
    _, flat = render(data)
    assert "board-c" in flat
    assert "No results from this board yet." in flat
    assert "No energy was measured" not in flat  # it has a power source; it just has not reported


def test_render_energy_units_follow_the_values(store, msgs):
    store.add_many([msgs.result("resnet18", 1, 2.5), msgs.result("resnet50", 1, 4.0)])
    text, _ = render(report.build(store, 10.0))
    assert " J/img" in text
    assert row(text, "resnet18", 1)[6] == "2.5"
