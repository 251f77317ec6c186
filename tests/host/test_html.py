"""html.render / html.write on hand-made report dicts: structure, numbers, missing and estimated marks, escaping,
figures inlined safely, nothing external."""

from __future__ import annotations

import copy
from html.parser import HTMLParser

import pytest

from dnnprof.host import analysis, html
from dnnprof.host import report as report_text
from dnnprof.host.store import Store

EVIL = "<script>alert(1)</script>"
VOID = {"meta", "br", "img", "link", "hr", "input", "col", "wbr", "source"}


class Page(HTMLParser):
    """Tags, attributes and text of a page; fails on a closing tag that does not match the open one."""

    def __init__(self, text: str) -> None:
        super().__init__(convert_charrefs=True)
        self.stack: list[str] = []
        self.tags: list[tuple[str, dict]] = []
        self.text: list[str] = []
        self.sections: dict[str, list[str]] = {}  # section id → text inside it
        self.feed(text)
        self.close()

    def handle_starttag(self, tag, attrs):
        self.tags.append((tag, dict(attrs)))
        if tag not in VOID:
            self.stack.append(tag)
            if tag == "section":
                self.sections[dict(attrs).get("id", "")] = []

    def handle_startendtag(self, tag, attrs):
        self.tags.append((tag, dict(attrs)))

    def handle_endtag(self, tag):
        assert self.stack and self.stack[-1] == tag, f"</{tag}> closes <{self.stack[-1] if self.stack else None}>"
        self.stack.pop()

    def handle_data(self, data):
        self.text.append(data)
        for sid in self.open_sections():
            self.sections[sid].append(data)

    def open_sections(self):
        return [sid for sid in self.sections if "section" in self.stack][-1:]

    @property
    def all_text(self) -> str:
        return "".join(self.text)


def config(network="resnet18", energy=0.0123, top1=69.76, batch=4, estimated=False, **kw) -> dict:
    c = {"network": network, "backend": "tensorrt", "device": "gpu", "precision": "fp16", "batch": batch,
         "power_mode": "MAXN", "top1": top1, "energy_j": energy, "energy_per_inference_j": energy,
         "throughput_ips": 812.0, "latency_ms": 4.9, "power_w": 10.0, "estimated": estimated}
    c.update(kw)
    return c


def result(network="resnet18", batch=4, energy=0.0123, estimated=False, **kw) -> dict:
    r = {"board": "orin", "network": network, "backend": "tensorrt", "device": "gpu", "precision": "fp16",
         "batch": batch, "power_mode": "MAXN", "latency_ms_mean": 4.9, "latency_ms_p50": 4.8, "latency_ms_p90": 5.1,
         "latency_ms_p99": 5.6, "ms_per_image": 4.9 / batch, "throughput_ips": 812.0, "power_w": 10.0,
         "idle_power_w": 4.0, "net_power_w": 6.0, "energy_per_inference_j": energy,
         "energy_per_inference_net_j": None if energy is None else energy * 0.6, "estimated": estimated,
         "unstable": False, "converged": True, "top1": 69.76, "params": 11.7e6, "gmacs": 1.82, "gops": 3.64,
         "fc_macs_share": 0.0003, "memory_bytes": 254e6, "memory_kind": "backend"}
    r.update(kw)
    return r


def report(**kw) -> dict:
    best = config()
    nxt = config("resnet50", energy=0.0611, top1=76.13, estimated=True)
    rep = {
        "basis": {"energy": "gross", "per": "image", "text": "gross energy per image"},
        "limits": {"energy_budget_j": 0.05, "power_budget_w": 5.0, "latency_budget_ms": 100.0,
                        "latency_stat": "p99", "min_fps": 30.0},
        "catalog": "built-in (torchvision)",
        "boards": [{
            "board": "orin", "state": "online", "hostname": "orin.lan", "cpu_model": "ARM Cortex-A78AE",
            "configurations": 3,
            "results": [result(), result("resnet50", 8, None), result("mobilenet_v2", 1, 0.0042, estimated=True)],
            "ceiling": {"top1": 69.76, "best": best, "next": nxt, "next_extra_j": 0.0111, "cheapest": None,
                        "feasible": 2, "considered": 3},
            "by_power_mode": {}, "by_precision": {},
            "frontier": [config("mobilenet_v2", 0.0042, 71.88, 1, estimated=True), best],
        }],
        "analyses": {
            "accuracy_vs_time": [
                {"board": "orin", "power_mode": "MAXN", "precision": "fp16", "batch": 1, "x": "ms_per_image",
                 "a": 80.12, "b": 3.456, "r2": 0.9731, "rmse": 0.84, "n": 5, "networks": ["alexnet", "vgg16"]},
                {"board": "orin", "power_mode": "MAXN", "precision": "fp16", "batch": 8, "x": "ms_per_image",
                 "a": None, "b": None, "r2": None, "rmse": None, "n": 2, "networks": ["alexnet", "vgg16"],
                 "reason": "2 networks; a fit needs 3"}],
            "power": [{"board": "orin", "power_mode": "MAXN", "precision": "fp16", "basis": "net", "n": 12,
                       "mean_w": 11.8, "stdev_w": 0.7, "cov": 0.0593, "eta2_batch": 0.04, "eta2_network": 0.21,
                       "independent": True, "rule": "cov <= 0.10", "estimated": False}],
            "memory_vs_batch": [{"board": "orin", "power_mode": "MAXN", "precision": "fp16", "network": "vgg16",
                                 "memory_kind": "backend", "slope_bytes_per_image": 12.5e6,
                                 "intercept_bytes": 610e6, "r2": 0.998, "n": 4}],
            "batch_scaling_summary": [{"board": "orin", "power_mode": "MAXN", "precision": "fp16", "n": 5,
                                       "pearson_r": 0.91, "spearman_rho": 0.9,
                                       "finding": "Networks with more FC MACs gain more from batching."}],
            "accuracy_density": [{"network": "googlenet", "top1": 69.78, "params_m": 6.62, "density": 10.54}],
            "density_ratios": {"googlenet/alexnet": 11.4, "googlenet/vgg16": None,
                               "seed": {"googlenet/alexnet": 10, "googlenet/vgg16": 20}},
        },
    }
    rep.update(kw)
    return rep


SVG = ('<?xml version="1.0" encoding="utf-8" standalone="no"?>\n'
       '<!DOCTYPE svg PUBLIC "-//W3C//DTD SVG 1.1//EN"\n  "http://www.w3.org/Graphics/SVG/1.1/DTD/svg11.dtd">\n'
       '<svg xmlns:xlink="http://www.w3.org/1999/xlink" width="100pt" height="50pt" viewBox="0 0 100 50" '
       'xmlns="http://www.w3.org/2000/svg" version="1.1"><defs><path id="m1" d="M 0 0 L 1 1"/></defs>'
       '<g clip-path="url(#p1)"><use xlink:href="#m1" x="3" y="4"/><text x="5" y="9">{label}</text></g></svg>\n')


def svg(label="resnet18") -> str:
    return SVG.replace("{label}", label)


def test_page_parses_and_states_basis_and_constraints():
    text = html.render(report())
    page = Page(text)
    assert page.stack == []  # every element closed, in order
    assert text.startswith("<!DOCTYPE html>")
    body = page.all_text
    assert "gross energy per image" in body
    assert "50 mJ per image" in body  # the energy budget, in the basis' unit
    assert "5 W average" in body
    assert "100 ms per batch (p99)" in body
    assert "30 images/s" in body
    assert "built-in (torchvision)" in body


def test_ceiling_sentence_with_the_next_step():
    body = Page(html.render(report())).all_text
    assert "Energy-bounded accuracy ceiling within the constraints: 69.76 % top-1 (2 of 3 configurations fit)" in body
    assert "resnet18, batch 4, fp16, power mode MAXN on tensorrt/gpu: 12.3 mJ per image, 812 images/s" in body
    assert "The next step up, 76.13 %, needs 11.1 mJ more than the budget: resnet50" in body
    assert "61.1 mJ~ per image" in body  # the next step's energy is estimated


def test_no_feasible_configuration_names_the_cheapest():
    rep = report()
    rep["boards"][0]["ceiling"] = {"top1": None, "best": None, "next": None, "next_extra_j": None,
                                   "cheapest": config("mobilenet_v2", 0.0042, 71.88, 1, estimated=True),
                                   "cheapest_meets_other_limits": False, "feasible": 0, "considered": 3}
    body = Page(html.render(rep)).all_text
    assert "No configuration fits the constraints (0 of 3 configurations fit)." in body
    assert "The cheapest is mobilenet_v2, batch 1, fp16, power mode MAXN on tensorrt/gpu: 4.2 mJ~ per image" in body
    assert "breaks a power, latency or frame-rate limit too" in body


def test_no_constraint_and_no_ceiling():
    rep = report(limits={"energy_budget_j": None, "power_budget_w": None, "latency_budget_ms": None,
                         "latency_stat": "mean", "min_fps": None})
    text = Page(html.render(rep)).all_text
    assert "Energy budget" in text and "over everything measured (no constraint given)" in text
    rep["boards"][0]["ceiling"] = None
    assert "No ceiling" in Page(html.render(rep)).all_text


def test_frontier_and_configuration_tables_mark_missing_and_estimated():
    text = html.render(report())
    page = Page(text)
    frontier = _table_after(text, "Frontier")
    assert frontier[1][:5] == ["1", "4.2 mJ~", "71.88", "—", "mobilenet_v2"]  # a report without sources: "—"
    assert frontier[2][:5] == ["2", "12.3 mJ", "69.76", "—", "resnet18"]
    header, *rows = _table_after(text, "Configurations (3)")
    configs = {row[0]: row for row in rows}
    energy = header.index("gross energy / image")
    assert configs["resnet50"][energy] == "—"  # not measured: a dash, never 0
    assert configs["mobilenet_v2"][energy] == "4.2 mJ~"
    assert configs["mobilenet_v2"][header.index("power")] == "10 W~"
    assert configs["resnet18"][header.index("memory")] == "254 MB"
    assert "0 J" not in page.all_text


def test_net_basis_shows_net_energy():
    rep = report(basis={"energy": "net", "per": 1000, "text": "net energy per 1000 images"})
    text = html.render(rep)
    page = Page(text)
    header, *rows = _table_after(text, "Configurations (3)")
    col = header.index("net energy / image")
    assert {r[0]: r[col] for r in rows}["resnet18"] == "7.38 mJ"
    assert "net energy per 1000 images (idle power subtracted)" in page.all_text
    assert "50 mJ per 1000 images" in page.all_text


def test_analyses_tables_carry_the_fitted_numbers():
    text = html.render(report())
    page = Page(text)
    acc = _table_after(text, "Accuracy against time per image")
    head = acc[0]
    assert head[:4] == ["board", "power mode", "precision", "batch"] and "R²" in head
    first = dict(zip(head, acc[1]))
    assert (first["a"], first["b"], first["R²"], first["n"]) == ("80.12", "3.456", "0.9731", "5")
    assert first["networks"] == "alexnet, vgg16"
    second = dict(zip(head, acc[2]))
    assert second["a"] == "—" and second["reason"] == "2 networks; a fit needs 3"
    power = dict(zip(*_table_after(text, "Power against batch size and architecture")[:2]))
    assert (power["mean"], power["SD"], power["CoV"], power["independent"]) == ("11.8 W", "700 mW", "0.0593", "yes")
    memory = dict(zip(*_table_after(text, "Memory against batch size")[:2]))
    assert (memory["slope / image"], memory["intercept"]) == ("12.5 MB", "610 MB")
    ratios = _table_after(text, "Accuracy-density ratios")
    assert ratios[1:] == [["googlenet/alexnet", "11.4×", "≈10×"], ["googlenet/vgg16", "—", "≈20×"]]
    assert "Networks with more FC MACs gain more from batching." in page.all_text


def test_escapes_every_string():
    rep = report()
    rep["boards"][0]["board"] = EVIL
    rep["boards"][0]["results"][0]["network"] = EVIL
    rep["boards"][0]["frontier"][0]["network"] = EVIL
    rep["boards"][0]["ceiling"]["best"]["network"] = EVIL
    rep["analyses"]["accuracy_vs_time"][0]["networks"] = [EVIL]
    rep["analyses"]["accuracy_density"][0]["network"] = EVIL
    rep["catalog"] = EVIL
    text = html.render(rep, {f"{EVIL}-frontier": svg("&lt;script&gt;")})
    assert "<script" not in text.lower()
    assert "&lt;script&gt;alert(1)&lt;/script&gt;" in text
    page = Page(text)
    assert EVIL in page.all_text  # escaped, so the reader sees the name as written
    assert not any(tag == "script" for tag, _ in page.tags)
    for _, attrs in page.tags:  # ids made from the name are harmless too
        assert all("<" not in (v or "") for v in attrs.values())


def test_nothing_external():
    figs = {"time_vs_batch": svg(), "frontier": svg("budget")}
    text = html.render(report(), figs)
    page = Page(text)
    assert "http" not in text  # not even the SVG namespace URLs: HTML does not need them
    for tag, attrs in page.tags:
        assert tag not in {"script", "link", "img", "iframe", "object", "embed"}
        for key in ("src", "href", "xlink:href", "action"):
            if attrs.get(key) is not None:
                assert attrs[key].startswith("#"), (tag, key, attrs[key])
    assert "@import" not in text and "url(http" not in text


def test_figures_are_inlined_in_their_board_section():
    text = html.render(report(), {"time_vs_batch": svg("t"), "accuracy_density": svg("d"), "mystery": svg("m")})
    assert "<?xml" not in text and "<!DOCTYPE svg" not in text
    assert text.count("<svg") == 3
    page = Page(text)
    board = "".join(page.sections["board-orin"])
    rest = "".join(page.sections["figures"])
    assert "Inference time per image against batch size" in board  # caption from plots.CAPTIONS
    assert "accuracy density" in rest.lower() and "mystery" in rest
    svgs = [a for t, a in page.tags if t == "svg"]
    assert svgs[0]["viewbox"] == "0 0 100 50"


def test_figures_of_several_boards_go_to_their_own_section():
    rep = report()
    other = copy.deepcopy(rep["boards"][0])
    other["board"] = "lab/nano 2"
    rep["boards"].append(other)
    figs = {"orin-frontier": svg("orin-f"), "lab_nano_2-frontier": svg("nano-f"), "frontier": svg("neither")}
    page = Page(html.render(rep, figs))
    assert "orin-f" in "".join(page.sections["board-orin"])
    assert "nano-f" in "".join(page.sections["board-lab-nano-2"])
    assert "neither" in "".join(page.sections["figures"])  # unprefixed with two boards: not guessed into either
    assert [a["href"] for t, a in page.tags if t == "a"] == ["#board-orin", "#board-lab-nano-2", "#analyses"]


@pytest.mark.parametrize("bad", [
    '<svg viewBox="0 0 1 1"><script>alert(1)</script></svg>',
    '<svg viewBox="0 0 1 1" onload="alert(1)"></svg>',
    '<svg viewBox="0 0 1 1"><use href="https://example.com/x.svg#a"/></svg>',
    '<svg viewBox="0 0 1 1"><rect style="fill:url(https://example.com/p)"/></svg>',
    '<svg viewBox="0 0 1 1"><foreignObject><div/></foreignObject></svg>',
    "not an svg at all",
])
def test_unsafe_svg_is_left_out(bad):
    text = html.render(report(), {"frontier": bad})
    assert "example.com" not in text and "alert(1)" not in text and "foreignObject" not in text
    assert "Figure frontier left out: it is not a plain SVG." in Page(text).all_text


def test_write_creates_the_file(tmp_path):
    path = html.write(report(), {"frontier": svg()}, tmp_path / "out" / "report.html")
    assert path == tmp_path / "out" / "report.html"
    assert path.read_text(encoding="utf-8") == html.render(report(), {"frontier": svg()})


def test_empty_report_renders():
    page = Page(html.render({"boards": []}, None))
    assert page.stack == [] and "dnnprof report" in page.all_text


def test_board_without_results():
    rep = report()
    rep["boards"][0].update(results=[], ceiling=None, frontier=[])
    body = Page(html.render(rep)).all_text
    assert "No results from this board yet." in body


def test_fmt_units_and_missing():
    assert html.fmt(None) == "—" and html.fmt(float("nan")) == "—"
    assert html.fmt(0.0123, "energy_j") == "12.3 mJ"
    assert html.fmt(11.8, "mean_w") == "11.8 W"
    assert html.fmt(1.3, "slope_bytes_per_param") == "1.3 B"
    assert html.fmt(2.5e9, "memory_bytes") == "2.5 GB"
    assert html.fmt(True) == "yes" and html.fmt(["a", "b"]) == "a, b"
    assert html.fmt(123456) == "123,456" and html.fmt(0.000123456) == "0.0001235"


class Tables(HTMLParser):
    """Every table's rows of cell texts, with where it starts in the text outside tables."""

    def __init__(self, text: str) -> None:
        super().__init__(convert_charrefs=True)
        self.outside, self.tables, self.depth = "", [], 0
        self.feed(text)

    def handle_starttag(self, tag, attrs):
        if tag == "table":
            self.depth += 1
            self.tables.append((len(self.outside), []))
        elif tag == "tr" and self.depth:
            self.tables[-1][1].append([])
        elif tag in ("td", "th") and self.depth:
            self.tables[-1][1][-1].append("")

    def handle_endtag(self, tag):
        if tag == "table":
            self.depth -= 1

    def handle_data(self, data):
        if self.depth and self.tables[-1][1] and self.tables[-1][1][-1]:
            self.tables[-1][1][-1][-1] += data
        elif not self.depth:
            self.outside += data


def _table_after(text: str, heading: str) -> list[list[str]]:
    """Cells of the first table after the text ``heading`` (header row first)."""
    tables = Tables(text)
    at = tables.outside.index(heading)
    return next([[c.strip() for c in row] for row in rows] for pos, rows in tables.tables if pos > at)


def test_what_the_ceiling_could_not_rank_is_said():
    rep = report()
    rep["boards"][0]["ceiling"].update(without_accuracy=["mysterynet"], without_energy=1,
                                       excluded={"power_budget": 2})
    text = Page(html.render(rep)).all_text
    assert "Not ranked (no accuracy: not measured, no reference in the manifest or the catalog): mysterynet." in text
    assert "Not ranked (no energy measured in this basis): 1 configuration." in text
    assert "Outside the limits: 2 over the power budget." in text


def test_a_board_without_energy_says_so_rather_than_nothing_fits():
    rep = report()
    rep["boards"][0].update(with_energy=0)
    assert "No energy was measured on this board" in Page(html.render(rep)).all_text


def _section_text(page: Page, sid: str) -> str:
    return " ".join(" ".join(page.sections[sid]).split())  # one space between cells


def test_failed_points_have_their_section_with_why(msgs):
    oom = msgs.failure("vgg16", 64, board="orin", power_mode="MAXN", ts=1_800_000_000.0, run_id="run-9",
                       message=f"out of memory {EVIL}")
    skipped = msgs.failure("vgg16", 128, stage="not_run", board="orin", cause="vgg16 b=64 fp32")
    rep = report(failures=[report_text.failure_record(f) for f in (oom, skipped)], failures_superseded=2)
    rep["boards"].append({**rep["boards"][0], "board": "nano"})
    text = html.render(rep)
    assert "<script" not in text.lower()
    page = Page(text)
    assert page.stack == []
    body = _section_text(page, "failures")
    assert "2 configurations produced no measurement: never ranked, fitted or exported." in body
    assert ("orin vgg16 64 fp32 onnxruntime/cpu MAXN out_of_memory window out of memory <script>alert(1)</script> "
            "run-9 2027-01-15 08:00:00 UTC") in body
    assert "orin vgg16 128 fp32 onnxruntime/cpu n/a out_of_memory not run not run: vgg16 b=64 fp32" in body
    assert "2 configurations that failed earlier were measured since" in body
    assert ("a", {"href": "#failures"}) in page.tags  # in the navigation of a fleet
    sections = list(page.sections)
    assert sections.index("failures") > sections.index("board-nano") and sections.index("failures") < sections.index(
        "analyses")


def test_failed_points_from_a_real_store(tmp_path, msgs):
    with Store(tmp_path / "results.sqlite") as store:
        store.add_many([msgs.failure("resnet18", 4, ts=100.0, message="superseded"),
                        msgs.result("resnet18", 4, 0.01, ts=200.0),
                        msgs.failure("resnet50", 8, "invalid_output", "check", message="output holds 3 NaN")])
        data = report_text.build(store, analysis.Limits(), analyses=False)
    body = _section_text(Page(html.render(data)), "failures")
    assert "resnet50 8 fp32 onnxruntime/cpu n/a invalid_output check output holds 3 NaN" in body
    assert "superseded" not in body and "1 configuration that failed earlier was measured since" in body


def test_no_failed_points_no_section():
    assert 'id="failures"' not in html.render(report())
    assert 'id="failures"' not in html.render(report(failures=[], failures_superseded=0))


def _precisions_page(tmp_path, msgs, assume: bool) -> str:
    with Store(tmp_path / f"results-{assume}.sqlite") as store:
        store.add_many([
            msgs.result("resnet50", 1, 0.040),
            msgs.result("resnet50", 1, 0.020, precision="fp16"),
            msgs.measured(msgs.result("resnet50", 1, 0.010, precision="int8"), 75.1, 92.4, images=500, reused=True),
        ])
        rep = report_text.build(store, analysis.Limits(energy_budget_j=0.030, assume_accuracy=assume), analyses=False)
    return html.render(rep)


def test_the_page_says_where_each_top1_comes_from(tmp_path, msgs):
    text = _precisions_page(tmp_path, msgs, assume=False)
    body = Page(text).all_text
    header, *rows = _table_after(text, "Configurations (3)")
    source = {row[header.index("precision")]: row[header.index("top-1 from")] for row in rows}
    assert source == {"fp32": "catalog", "fp16": "assumed", "int8": "measured (500 images, 95% 71.1–79.1, reused)"}
    frontier_header, *steps = _table_after(text, "Frontier")
    assert [s[frontier_header.index("top-1 from")] for s in steps] == ["measured, 500 images", "catalog"]
    assert "75.10 % top-1 (measured, 500 images) (1 of 3 configurations fit)" in body
    assert "Not ranked (assumed accuracy: not fp32 and not measured" in body
    assert "are assumed and not ranked (--assume-accuracy ranks them)" in body  # the basis section
    assert "rests on assumed accuracy" not in body


def test_the_page_says_when_the_ceiling_rests_on_assumed_accuracy(tmp_path, msgs):
    body = Page(_precisions_page(tmp_path, msgs, assume=True)).all_text
    assert "top-1 (assumed: the fp32 reference, not measured at fp16)" in body
    assert "It rests on assumed accuracy (--assume-accuracy): the fp32 reference, not measured at fp16." in body
    assert "are assumed and ranked all the same (--assume-accuracy)" in body


def _swept_page(tmp_path, msgs, **limits) -> str:
    """resnet18 in two power modes × two clock states on board-a, one mode on board-b."""
    sweep = {("15W", "jetson_clocks off"): {1: (0.012, 12.0), 8: (0.006, 60.0)},
             ("15W", "jetson_clocks on"): {1: (0.014, 10.0), 8: (0.007, 50.0)},
             ("MAXN", "jetson_clocks off"): {1: (0.016, 6.0), 8: (0.009, 25.0)},
             ("MAXN", "jetson_clocks on"): {1: (0.020, 5.0), 8: (0.010, 20.0)}}
    with Store(tmp_path / "swept.sqlite") as store:
        store.add_many([*(msgs.result("resnet18", batch, energy, power_mode=mode, clocks=clocks, latency_ms=ms,
                                      throughput=1000.0 * batch / ms)
                          for (mode, clocks), points in sweep.items() for batch, (energy, ms) in points.items()),
                        msgs.result("resnet18", 1, 0.01, board="board-b", power_mode="10W")])
        return html.render(report_text.build(store, analysis.Limits(**limits), analyses=False))


def test_the_energy_optimal_power_mode_has_its_table(tmp_path, msgs):
    text = _swept_page(tmp_path, msgs)
    page = Page(text)
    assert page.stack == []
    header, *rows = _table_after(text, "Energy-optimal power mode")
    assert header[:4] == ["network", "precision", "power state", "batch"]
    cell = {h: i for i, h in enumerate(header)}
    assert [r[cell["power state"]] for r in rows] == ["15W (jetson_clocks off)", "15W (jetson_clocks on)",
                                                      "MAXN (jetson_clocks off)", "MAXN (jetson_clocks on)"]
    assert [r[cell["saving"]] for r in rows] == ["40% less", "30% less", "10% less", "dearest"]
    assert rows[0][-1] == "★ least energy" and rows[0][cell["energy / image"]] == "6 mJ"
    assert rows[0][cell["network"]] == "resnet18" and rows[1][cell["network"]] == ""
    a, b = _section_text(page, "board-board-a"), _section_text(page, "board-board-b")
    assert "the dearest state always is" in a  # why the saving is against the dearest
    assert "Energy-optimal power mode" not in b  # one power state: nothing to compare
    # the board's own tables name the clock state beside the mode
    header, *rows = _table_after(text, "Configurations (8)")
    assert {r[header.index("power mode")] for r in rows} == {"15W (jetson_clocks off)", "15W (jetson_clocks on)",
                                                            "MAXN (jetson_clocks off)", "MAXN (jetson_clocks on)"}
    assert "power mode 15W, jetson_clocks off on onnxruntime/cpu" in a


def test_the_latency_budget_in_the_power_mode_table(tmp_path, msgs):
    text = _swept_page(tmp_path, msgs, latency_budget_ms=4.0)
    header, *rows = _table_after(text, "Energy-optimal power mode")
    assert {r[-1] for r in rows} == {"✗ outside the limits"}
    body = Page(text).all_text
    assert "resnet18 fp32: no power state meets mean latency ≤ 4 ms per batch; the fastest is MAXN" in body
