"""plots.write / plots.figures on hand-made frames: the files and their formats, which figures are drawn or skipped,
what each draws (fits from the analyses, budget line, labels), and missing values never drawn as 0."""

from __future__ import annotations

import math
import re
import xml.etree.ElementTree as ET

import numpy as np
import pytest

from dnnprof.host import analysis, html, plots

NETS = {"alexnet": (56.5, 0.71, 61.1e6), "googlenet": (69.8, 1.5, 6.6e6), "vgg16": (71.6, 15.5, 138.4e6),
        "resnet18": (69.8, 1.8, 11.7e6)}
BATCHES = (1, 4, 16)
PNG = b"\x89PNG\r\n\x1a\n"


def rows(board="orin", mode="MAXN", precision="fp16", nets=NETS, batches=BATCHES, estimated=False, **over) -> list:
    out = []
    for net, (top1, gmacs, params) in nets.items():
        for b in batches:
            ms = (0.5 + gmacs) * (1.6 if net == "alexnet" else 1.0) / (1 + 0.3 * math.log2(b))
            power = 10.0 + (b % 3) * 0.2
            r = {"board": board, "network": net, "backend": "tensorrt", "device": "gpu", "precision": precision,
                 "batch": b, "power_mode": mode, "latency_ms_mean": ms * b, "latency_ms_p99": ms * b * 1.1,
                 "ms_per_image": ms, "throughput_ips": 1000 / ms, "power_w": power, "idle_power_w": 4.0,
                 "net_power_w": power - 4.0, "energy_per_inference_j": power * ms / 1000,
                 "energy_per_inference_net_j": (power - 4) * ms / 1000, "estimated": estimated, "top1": top1,
                 "params": params, "gmacs": gmacs, "memory_bytes": 2e8 + 1.3 * params + 5e6 * b * (1 + gmacs),
                 "memory_kind": "backend", "ts": 1.0}
            r.update(over)
            out.append(r)
    return out


def report(df, budget=0.01, analyses=None) -> dict:
    basis = analysis.Basis()
    per = analysis.per_board(df, analysis.Limits(energy_budget_j=budget), basis) if len(df) else {}
    return {"basis": {"energy": "gross", "per": "image", "text": basis.text},
            "limits": {"energy_budget_j": budget, "power_budget_w": None, "latency_budget_ms": None,
                            "latency_stat": "mean", "min_fps": None},
            "boards": [{"board": b, **per[b]} for b in sorted(per)], "analyses": analyses or {}}


def group(**kw) -> dict:
    return {"board": "orin", "power_mode": "MAXN", "precision": "fp16", **kw}


ANALYSES = {
    "ops_vs_time": [group(batch=1, slope_ms_per_gop=0.95, intercept_ms=0.6, r2=0.97, n=4),
                    group(batch=16, slope_ms_per_gop=0.44, intercept_ms=0.2, r2=0.99, n=4)],
    "accuracy_vs_time": [group(batch=1, x="ms_per_image", a=75.0, b=12.0, r2=0.5, rmse=3.0, n=4, networks=[]),
                         group(batch=16, x="ms_per_image", a=None, b=None, r2=None, rmse=None, n=2, networks=[],
                               reason="2 networks; a fit needs 3")],
    "power": [group(basis="net", n=12, mean_w=6.2, stdev_w=0.1, cov=0.016)],
    "memory_vs_batch": [group(network="vgg16", memory_kind="backend", slope_bytes_per_image=82.5e6,
                              intercept_bytes=380e6, r2=0.999, n=3)],
    "accuracy_density": [{"network": "googlenet", "top1": 69.8, "params_m": 6.6, "density": 10.58},
                         {"network": "alexnet", "top1": 56.5, "params_m": 61.1, "density": 0.925}],
    "density_ratios": {"googlenet/alexnet": 11.4, "googlenet/vgg16": None,
                       "seed": {"googlenet/alexnet": 10, "googlenet/vgg16": 20}},
}


@pytest.fixture(scope="module")
def one_board(tmp_path_factory):
    df = analysis.table(rows())
    rep = report(df, analyses=ANALYSES)
    out = tmp_path_factory.mktemp("plots")
    return out, plots.write(df, rep, out), rep


def test_every_figure_as_png_and_svg(one_board):
    out, written, _ = one_board
    assert written.skipped == {}
    assert sorted(p.name for p in written) == sorted(f"{f}.{x}" for f in plots.FIGURES for x in ("png", "svg"))
    assert sorted(p.name for p in out.iterdir()) == sorted(p.name for p in written)
    for path in written:
        data = path.read_bytes()
        if path.suffix == ".png":
            assert data[:8] == PNG
            width = int.from_bytes(data[16:20], "big")
            assert 500 < width < 1800  # a modest dpi, not a poster
        else:
            root = ET.fromstring(data)
            assert root.tag == "{http://www.w3.org/2000/svg}svg"
            assert len(data) < 200_000


def test_svg_keeps_text_as_text_and_inlines_cleanly(one_board):
    out, written, _ = one_board
    svg = (out / "accuracy_vs_ops.svg").read_text()
    texts = {"".join(e.itertext()) for e in ET.fromstring(svg).iter("{http://www.w3.org/2000/svg}text")}
    assert {"alexnet", "googlenet", "vgg16", "resnet18"} <= texts  # few networks: each is named on the plot
    assert "top-1 accuracy (%)" in texts
    inline = written.svgs["accuracy_vs_ops"]
    assert inline.startswith("<svg") and "<?xml" not in inline and "<!DOCTYPE" not in inline
    ET.fromstring(inline)
    assert "Date" not in svg and "<dc:date" not in svg  # no timestamp: the same data give the same file


def test_svg_ids_do_not_collide_between_figures(one_board):
    # Several SVGs share one HTML page, where an id is global: a clash would clip one figure with another's path.
    _, written, _ = one_board
    seen: dict[str, str] = {}
    for name, svg in written.svgs.items():
        for ident in set(re.findall(r'\bid="([^"]+)"', svg)) - {"figure_1"}:
            if re.fullmatch(r"(?:patch|axes|line2d|text|legend|matplotlib\.axis|xtick|ytick|PathCollection|"
                            r"LineCollection|PolyCollection|BarContainer|annotation|FillBetweenPolyCollection)_\d+",
                            ident):
                continue  # group ids matplotlib numbers per figure; nothing refers to them
            assert ident not in seen, f"{ident} in {name} and {seen.get(ident)}"
            seen[ident] = name


def test_html_with_the_real_figures(one_board, tmp_path):
    _, written, rep = one_board
    path = html.write(rep, written.svgs, tmp_path / "r.html")
    text = path.read_text()
    assert text.count("<svg") == len(plots.FIGURES)
    assert "http" not in text and "<script" not in text


def test_file_names_with_several_boards():
    df = analysis.table(rows("orin") + rows("lab/nano 2", "n/a", "int8"))
    built, skipped = plots.figures(df, report(df), only=("time_vs_batch", "frontier", "accuracy_density"))
    expected = {f"{b}-{f}" for b in ("orin", "lab_nano_2") for f in ("time_vs_batch", "frontier")}
    expected.add("accuracy_density")  # a property of the networks: once, not per board
    assert set(built) == expected and skipped == {}
    assert built["lab_nano_2-time_vs_batch"].axes[0].get_title() == "int8"  # no power mode: not mentioned
    assert built["orin-time_vs_batch"].axes[0].get_title() == "fp16, power mode MAXN"
    assert built["orin-time_vs_batch"].get_suptitle().startswith("orin: ")
    assert plots.stem(None, "frontier") == "frontier" and plots.stem("a b/c", "frontier") == "a_b_c-frontier"


def test_one_panel_per_power_mode_and_precision():
    df = analysis.table(rows(mode="15W") + rows(mode="30W") + rows(mode="30W", precision="int8"))
    built, _ = plots.figures(df, report(df), only=("time_vs_batch",))
    fig = built["time_vs_batch"]
    titles = [ax.get_title() for ax in fig.axes if ax.get_visible()]
    assert titles == ["fp16, power mode 15W", "fp16, power mode 30W", "int8, power mode 30W"]
    assert len([ax for ax in fig.axes if ax.get_visible() and ax.lines]) == 3


def test_a_panel_only_where_there_is_data():
    df = analysis.table(rows(mode="15W") + rows(mode="30W", power_w=None, net_power_w=None, idle_power_w=None))
    built, _ = plots.figures(df, report(df), only=("power_vs_batch", "time_vs_batch"))
    assert [ax.get_title() for ax in built["power_vs_batch"].axes if ax.get_visible()] == ["fp16, power mode 15W"]
    assert len([ax for ax in built["time_vs_batch"].axes if ax.get_visible()]) == 2


def test_skips_figures_without_data(tmp_path):
    df = analysis.table(rows(power_w=None, net_power_w=None, idle_power_w=None, energy_per_inference_j=None,
                             energy_per_inference_net_j=None, memory_bytes=None, gmacs=None, params=None))
    written = plots.write(df, report(df), tmp_path, formats=("svg",))
    assert set(written.skipped) == {"power_vs_batch", "memory_vs_batch", "ops_vs_time", "accuracy_vs_ops",
                                    "accuracy_density", "frontier"}
    assert written.skipped["power_vs_batch"] == "no power measured"
    assert {p.stem for p in written} == {"time_vs_batch", "accuracy_vs_throughput"}
    assert not any(tmp_path.glob("power_vs_batch.*"))


def test_skips_vs_batch_figures_with_one_batch_size_and_everything_without_results():
    df = analysis.table(rows(batches=(1,)))
    _, skipped = plots.figures(df, report(df))
    assert skipped == {"time_vs_batch": "time per image at one batch size only",
                       "power_vs_batch": "power at one batch size only",
                       "memory_vs_batch": "memory at one batch size only"}
    empty = analysis.table([])
    rep = report(empty)
    rep["boards"] = [{"board": "idle-board", "frontier": []}]
    built, skipped = plots.figures(empty, rep)
    assert built == {} and set(skipped) == set(plots.FIGURES)


def test_missing_power_is_left_out_not_drawn_as_zero():
    data = rows()
    for r in data:
        if r["network"] == "vgg16" and r["batch"] == 1:
            r.update(power_w=None, net_power_w=None, energy_per_inference_j=None, energy_per_inference_net_j=None)
    df = analysis.table(data)
    built, _ = plots.figures(df, report(df, budget=0.05, analyses=ANALYSES),
                             only=("power_vs_batch", "accuracy_vs_throughput", "frontier"))
    ax = built["power_vs_batch"].axes[0]
    vgg = next(line for line in ax.lines if line.get_label() == "vgg16")
    assert list(vgg.get_xdata()) == [4, 16]  # batch 1 has no power: no point there
    for line in ax.lines:
        y = np.asarray(line.get_ydata(), dtype=float)
        assert not np.any(y == 0)
    # Images/s and top-1 are known, so the point stays, as a cross: never a zero-area marker.
    ax = built["accuracy_vs_throughput"].axes[0]
    for coll in ax.collections:
        if len(coll.get_offsets()):
            assert np.all(coll.get_sizes() > 0)
    (cross,) = [c for c in ax.collections if c.get_label() == "_no power"]
    np.testing.assert_allclose(cross.get_offsets(), [[df.loc[(df.network == "vgg16") & (df.batch == 1),
                                                                "throughput_ips"].item(), 71.6]])
    # The frontier's background cloud has no point for the configuration without energy.
    fr = built["frontier"].axes[0]
    xs = np.concatenate([c.get_offsets()[:, 0] for c in fr.collections if len(c.get_offsets())])
    assert np.all(np.isfinite(xs)) and np.all(xs > 0)
    assert len(fr.collections[0].get_offsets()) == len(data) - 1


def test_estimated_power_and_energy_say_so():
    df = analysis.table(rows(estimated=True))
    built, _ = plots.figures(df, report(df, budget=0.01, analyses=ANALYSES),
                             only=("power_vs_batch", "frontier", "time_vs_batch"))
    assert built["power_vs_batch"].axes[0].get_ylabel() == "net power (W) (estimated)"
    assert "(estimated)" in built["frontier"].axes[0].get_xlabel()
    assert "time per image (ms)" == built["time_vs_batch"].axes[0].get_ylabel()  # time is always measured
    mixed = analysis.table(rows() + rows(board="orin", mode="5W", estimated=True))
    built, _ = plots.figures(mixed, report(mixed), only=("power_vs_batch",))
    assert "(hollow = estimated)" in built["power_vs_batch"].axes[0].get_ylabel()


def test_axes_carry_units_and_log_scales_where_data_spans_decades(one_board):
    df = analysis.table(rows())
    built, _ = plots.figures(df, report(df, analyses=ANALYSES))
    labels = {name: (fig.axes[0].get_xlabel(), fig.axes[0].get_ylabel()) for name, fig in built.items()}
    assert labels["time_vs_batch"] == ("batch size (images)", "time per image (ms)")
    assert labels["accuracy_vs_ops"] == ("operations per image (G-Ops, 1 MAC = 2 ops)", "top-1 accuracy (%)")
    assert labels["memory_vs_batch"][1] == "memory, engine activations (older agents) (MB)"
    assert labels["accuracy_vs_throughput"] == ("throughput (images/s)", "top-1 accuracy (%)")
    assert labels["frontier"][0] == "gross energy per image (J, log scale)"
    assert built["frontier"].axes[0].get_xscale() == "log"
    assert built["accuracy_vs_ops"].axes[0].get_xscale() == "log"  # 0.71 to 15.5 G-Ops × 2
    assert built["time_vs_batch"].axes[0].get_xscale() == "log"  # batch sizes on a log2 axis
    assert built["power_vs_batch"].axes[0].get_ylim()[0] == 0  # power read against zero, as in the seed


def test_fitted_lines_come_from_the_analyses():
    df = analysis.table(rows())
    built, _ = plots.figures(df, report(df, analyses=ANALYSES),
                             only=("ops_vs_time", "accuracy_vs_throughput", "memory_vs_batch", "power_vs_batch"))
    ax = built["ops_vs_time"].axes[0]
    fits = [line for line in ax.lines if line.get_label() == "_fit"]
    assert len(fits) == 2
    for line, (slope, icpt) in zip(fits, ((0.95, 0.6), (0.44, 0.2))):
        t, g = np.asarray(line.get_xdata()), np.asarray(line.get_ydata())
        np.testing.assert_allclose(g, (t - icpt) / slope)
    assert "batch 1: 0.95 ms/G-Op + 0.6 ms, R² 0.97" in ax.get_title()
    ax = built["accuracy_vs_throughput"].axes[0]
    (curve,) = [line for line in ax.lines if line.get_label() == "_fit"]  # batch 16 has no fit: none drawn
    ips, top1 = np.asarray(curve.get_xdata()), np.asarray(curve.get_ydata())
    np.testing.assert_allclose(top1, 75.0 - 12.0 / (1000.0 / ips))  # a − b/t, t in ms per image
    assert "batch 1: 75 − 12/t, R² 0.50" in ax.get_title() and "2 networks; a fit needs 3" in ax.get_title()
    ax = built["memory_vs_batch"].axes[0]
    (mem,) = [line for line in ax.lines if line.get_label() == "_fit"]
    b = np.asarray(mem.get_xdata())
    np.testing.assert_allclose(mem.get_ydata(), (82.5e6 * b + 380e6) / 1e6)
    ax = built["power_vs_batch"].axes[0]
    assert any(list(line.get_ydata()) == [6.2, 6.2] for line in ax.lines)  # the mean from the analysis


def test_frontier_staircase_budget_line_and_ceiling():
    df = analysis.table(rows())
    rep = report(df, budget=0.012)
    built, _ = plots.figures(df, rep, only=("frontier",))
    ax = built["frontier"].axes[0]
    frontier = rep["boards"][0]["frontier"]
    step = next(line for line in ax.lines if line.get_label() == "frontier")
    assert step.get_drawstyle() == "steps-post"
    assert list(step.get_ydata())[:-1] == [c["top1"] for c in frontier]
    budget = next(line for line in ax.lines if line.get_label().startswith("budget"))
    assert list(budget.get_xdata()) == [0.012, 0.012] and budget.get_label() == "budget 12 mJ"
    best = rep["boards"][0]["ceiling"]["best"]
    star = next(c for c in ax.collections if c.get_label().startswith("ceiling"))
    np.testing.assert_allclose(star.get_offsets()[0], [best["energy_j"], best["top1"]])
    names = {t.get_text() for t in ax.texts}
    assert {f"{c['network']} b{c['batch']} fp16" for c in frontier} <= names


def test_accuracy_density_from_the_analyses_or_the_frame():
    df = analysis.table(rows())
    built, _ = plots.figures(df, report(df, analyses=ANALYSES), only=("accuracy_density",))
    ax = built["accuracy_density"].axes[0]
    assert [p.get_height() for p in ax.patches] == [10.58, 0.925]
    assert [t.get_text() for t in ax.get_xticklabels()] == ["googlenet", "alexnet"]
    box = "\n".join(t.get_text() for t in ax.texts)
    assert "googlenet / alexnet: 11.4× (seed ≈10×)" in box and "googlenet / vgg16: — (seed ≈20×)" in box
    built, _ = plots.figures(df, report(df), only=("accuracy_density",))  # no analyses: from the frame
    heights = {t.get_text(): p.get_height() for t, p in zip(built["accuracy_density"].axes[0].get_xticklabels(),
                                                            built["accuracy_density"].axes[0].patches)}
    assert heights["googlenet"] == pytest.approx(69.8 / 6.6)


def test_unknown_parameter_count_is_a_cross_not_a_dot():
    data = rows()
    for r in data:
        if r["network"] == "googlenet":
            r["params"] = None
    df = analysis.table(data)
    built, _ = plots.figures(df, report(df), only=("accuracy_vs_ops",))
    ax = built["accuracy_vs_ops"].axes[0]
    sizes = {c.get_label(): c.get_sizes()[0] for c in ax.collections if len(c.get_offsets())}
    assert sizes["googlenet"] == 40 and sizes["vgg16"] == pytest.approx(900)
    assert sizes["resnet18"] == pytest.approx(900 * 11.7 / 138.4)  # area ∝ parameters


def test_many_networks_get_an_outside_legend_instead_of_names():
    nets = {f"net{i:02d}": (50 + i, 0.5 + i, (1 + i) * 1e6) for i in range(20)}
    df = analysis.table(rows(nets=nets, batches=(1, 2)))
    built, _ = plots.figures(df, report(df), only=("accuracy_vs_ops", "time_vs_batch"))
    fig = built["accuracy_vs_ops"]
    assert fig.legends and not fig.axes[0].texts  # names in a figure legend, not 20 labels on the plot
    assert len(fig.legends[0].get_texts()) >= 20
    assert built["time_vs_batch"].legends


def test_only_some_figures():
    df = analysis.table(rows())
    built, skipped = plots.figures(df, report(df), only=["frontier", "accuracy_density"])
    assert set(built) == {"frontier", "accuracy_density"} and skipped == {}
    with pytest.raises(ValueError, match="unknown figures"):
        plots.figures(df, report(df), only=["pie_chart"])


def test_inline_svg_strips_the_prologue():
    text = ('<?xml version="1.0" encoding="utf-8" standalone="no"?>\n<!DOCTYPE svg PUBLIC "-//W3C//DTD SVG 1.1//EN"'
            '\n  "http://www.w3.org/Graphics/SVG/1.1/DTD/svg11.dtd">\n<svg viewBox="0 0 1 1"></svg>\n')
    assert plots.inline_svg(text) == '<svg viewBox="0 0 1 1"></svg>\n'
    assert plots.inline_svg("<svg/>") == "<svg/>"


def test_fleet_frontier_one_staircase_per_board_and_mode_with_its_boundary():
    df = analysis.table(rows(board="orin", mode="MAXN", boundary="input_rail")
                        + rows(board="orin", mode="15W", boundary="input_rail")
                        + rows(board="agx", boundary="sum_of_rails")
                        + rows(board="pc", mode=analysis.NO_MODE, estimated=True, boundary="estimate")
                        + rows(board="bare", energy_per_inference_j=None))  # no energy: no line
    basis, limits = analysis.Basis(), analysis.Limits()
    rep = {**report(df), "fleet": analysis.fleet(df, [0.005, 0.02], limits, basis)}
    built, skipped = plots.figures(df, rep, only=("fleet_frontier",))
    assert not skipped
    ax = built["fleet_frontier"].axes[0]
    steps = [line for line in ax.lines if line.get_drawstyle() == "steps-post"]
    assert sorted(line.get_label() for line in steps) == [
        "agx MAXN — sum_of_rails", "orin 15W — input_rail", "orin MAXN — input_rail", "pc — estimate"]
    styles = {line.get_label(): line.get_linestyle() for line in steps}
    assert styles["orin MAXN — input_rail"] == "-" and styles["pc — estimate"] == "--"
    expected = analysis.frontier(df[(df["board"] == "agx")], limits, basis)
    agx = next(line for line in steps if line.get_label().startswith("agx"))
    assert list(agx.get_ydata())[:-1] == [c["top1"] for c in expected]
    budgets = [line for line in ax.lines if line.get_linestyle() == "--" and line.get_drawstyle() != "steps-post"
               and len(line.get_xdata())]
    assert sorted(line.get_xdata()[0] for line in budgets) == [0.005, 0.02]
    # without --fleet there is no fleet figure at all (not even a skipped one)
    built, skipped = plots.figures(df, report(df), only=("fleet_frontier",))
    assert not built and not skipped


def test_assumed_top1_is_drawn_only_when_the_report_assumed_it():
    df = analysis.table(rows(assumed=True))  # fp16 with only the fp32 reference: assumed
    wanted = ("accuracy_vs_ops", "accuracy_vs_throughput", "frontier", "accuracy_density")
    built, skipped = plots.figures(df, report(df), only=wanted)
    assert skipped == {"accuracy_vs_ops": "no network with top-1 and op count",
                       "accuracy_vs_throughput": "no network with top-1",
                       "frontier": "no configuration with energy and top-1",
                       "accuracy_density": "no network with both top-1 and a parameter count"}
    rep = report(df)
    rep["limits"]["assume_accuracy"] = True
    rep["boards"] = [{"board": b, **e} for b, e in analysis.per_board(
        df, analysis.Limits(energy_budget_j=0.01, assume_accuracy=True), analysis.Basis()).items()]
    built, skipped = plots.figures(df, rep, only=wanted)
    assert sorted(built) == sorted(wanted) and skipped == {}
    assert {s["assumed"] for s in rep["boards"][0]["frontier"]} == {True}


def swept_rows() -> list:
    """orin in two power modes × two clock states: 15W draws less and runs slower, DVFS a little of both."""
    out = []
    for mode, watts in (("15W", 0.6), ("MAXN", 1.0)):
        for clocks, f in (("jetson_clocks off", 0.9), ("jetson_clocks on", 1.0)):
            for r in rows(mode=mode, clocks=clocks):
                r = dict(r)
                for col in ("power_w", "energy_per_inference_j", "energy_per_inference_net_j"):
                    r[col] *= watts * f
                out.append(r)
    return out


STATES = ["power mode 15W (jetson_clocks off)", "power mode 15W (jetson_clocks on)",
          "power mode MAXN (jetson_clocks off)", "power mode MAXN (jetson_clocks on)"]


def test_the_frontier_has_a_panel_per_power_state_when_there_are_several():
    df = analysis.table(swept_rows())
    rep = report(df, budget=0.005)
    built, _ = plots.figures(df, rep, only=("frontier",))
    fig = built["frontier"]
    axes = [ax for ax in fig.axes if ax.get_visible()]
    assert [ax.get_title() for ax in axes] == STATES
    assert fig.get_suptitle() == "orin: energy/accuracy frontier per power state"
    for ax in axes:  # each panel: its own staircase, and the board's behind it
        labels = [line.get_label() for line in ax.lines]
        assert "this state's frontier" in labels and "the board's frontier (every state)" in labels
    own = [next(line for line in ax.lines if line.get_label() == "this state's frontier") for ax in axes]
    assert len({tuple(line.get_xdata()) for line in own}) == 4  # four different staircases
    # the ceiling's star sits in the panel of its power state only
    best = rep["boards"][0]["ceiling"]["best"]
    starred = [ax.get_title() for ax in axes if any(c.get_label().startswith("ceiling") for c in ax.collections)]
    assert starred == [f"power mode {best['power_mode']} ({best['clocks']})"]


def test_one_power_state_keeps_one_frontier_and_panels_of_other_figures_keep_clocks_apart():
    df = analysis.table(rows(mode="MAXN", clocks="jetson_clocks on"))
    built, _ = plots.figures(df, report(df), only=("frontier",))
    assert len([ax for ax in built["frontier"].axes if ax.get_visible()]) == 1
    df = analysis.table(swept_rows())
    built, _ = plots.figures(df, report(df), only=("time_vs_batch", "accuracy_vs_throughput"))
    for name in ("time_vs_batch", "accuracy_vs_throughput"):
        titles = [ax.get_title().split("\n")[0] for ax in built[name].axes if ax.get_visible()]
        assert titles == [f"fp16, {s}" for s in STATES]
    # one line per network and panel: locked and DVFS points never join into one zig-zag
    panel = next(ax for ax in built["time_vs_batch"].axes if ax.get_visible())
    assert all(len(line.get_xdata()) == len(BATCHES) for line in panel.lines if not line.get_label().startswith("_"))


def test_the_fleet_figure_has_a_line_per_power_state():
    df = analysis.table(swept_rows())
    rep = report(df)
    rep["fleet"] = analysis.fleet(df, [0.01], analysis.Limits(), analysis.Basis())
    lines = plots._fleet_lines(analysis.with_states(df), rep)
    assert [line["mode"] for line in lines] == [s.removeprefix("power mode ") for s in STATES]
