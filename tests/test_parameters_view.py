"""The Parameters view (issue #12): its queries on synthetic tables with known answers, the view
objects it builds (tiny archive and demo archive) and the loader's per-row messages."""

from __future__ import annotations

import math
from pathlib import Path

import holoviews as hv
import numpy as np
import pandas as pd
import panel as pn
import pytest
from bokeh.document import Document
from pyviz_comms import Comm

import dashboard.app  # noqa: F401  (loads the bokeh extension, as the app does)
from dashboard import parameter_queries as pq
from dashboard.service import DataService
from dashboard.state import Selection
from dashboard.views.parameters import ParametersView
from dashboard.views.style import Look
from loaders import read_parameters
from loaders.readers import CalLMIPFileError
from tests.appdata import build_app_archive
from tests.synthetic import PARAMETER_HEADER

Z = 1.6448536269514722

#: ALPHA.v1, Scenario 1. Known answers are worked out in the tests.
GOOD = [
    # Gaussian prior (sd given), posterior sd given: interval ± 1.645 σ
    {"parameter": "vcmax", "long_name": "Max carboxylation", "process": "photosynthesis",
     "pft": "DBF", "units": "umol m-2 s-1", "prior_value": "50", "prior_min": "20",
     "prior_max": "80", "prior_sd": "10", "posterior_value": "60", "posterior_sd": "4",
     "sensitivity_rank": "2"},
    # uniform prior, posterior percentiles given; ends at 0.995 of the range: upper edge
    {"parameter": "q10", "long_name": "Q10 of respiration", "process": "respiration",
     "pft": "", "units": "1", "prior_value": "2", "prior_min": "1", "prior_max": "3",
     "posterior_value": "2.99", "posterior_p05": "2.9", "posterior_p95": "3.0",
     "sensitivity_rank": "1"},
    # posterior at 0.01 of the range: lower edge; sd from p05/p95 (percentiles win)
    {"parameter": "slope", "long_name": "Stomatal slope", "process": "water", "pft": "ENF",
     "units": "1", "prior_value": "9", "prior_min": "4", "prior_max": "14",
     "posterior_value": "4.1", "posterior_sd": "0.5", "posterior_p05": "4.0",
     "posterior_p95": "5.0"},
]
#: Bad rows: text in a number, an empty name, inverted bounds, no range.
BAD = [
    {"parameter": "kn", "process": "photosynthesis", "prior_value": "0.5", "prior_min": "0.1",
     "prior_max": "about 1", "posterior_value": "0.4", "posterior_sd": "0.1"},
    {"parameter": "", "process": "water", "prior_value": "1", "prior_min": "0",
     "prior_max": "2", "posterior_value": "1.5"},
    {"parameter": "tau", "process": "phenology", "prior_value": "5", "prior_min": "9",
     "prior_max": "3", "posterior_value": "4"},
]


def _write(path: Path, rows: list[dict[str, str]], header=PARAMETER_HEADER) -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    pd.DataFrame([{k: r.get(k, "") for k in header} for r in rows],
                 columns=list(header)).to_csv(path, index=False)
    return path


@pytest.fixture(scope="module")
def archive(tmp_path_factory) -> Path:
    """The app tests' tiny archive (ALPHA.v1, BETA-X.v2.1, a broken GAMMA.v1 run) + tables.

    ALPHA.v1 has a Scenario 1 table with good and bad rows and a Scenario 2 table; BETA-X.v2.1
    has runs but no table; DELTA.v1 has a table without a ``parameter`` column (and no runs).
    """
    root = build_app_archive(tmp_path_factory.mktemp("params-archive"))
    tables = root / "parameters"
    _write(tables / "ALPHA.v1_Phase1b_Scen1_parameters.csv", GOOD + BAD)
    scen2 = [dict(GOOD[0], posterior_value="35", posterior_sd="8")]
    _write(tables / "ALPHA.v1_Phase1b_Scen2_parameters.csv", scen2)
    _write(tables / "DELTA.v1_Phase1b_Scen1_parameters.csv",
           [{"name": "x", "prior_value": "1"}], header=["name", "prior_value"])
    return root


@pytest.fixture(scope="module")
def service(archive, tmp_path_factory) -> DataService:
    import os

    os.environ.setdefault("CALLMIP_CACHE_DIR", str(tmp_path_factory.mktemp("params-cache")))
    return DataService(archive)


@pytest.fixture(scope="module")
def frame(service) -> pd.DataFrame:
    return pq.parameter_frame(service, 1).set_index("label")


# -- known answers ---------------------------------------------------------------------------

def test_normalisation_to_the_prior_range(frame):
    vcmax = frame.loc["vcmax (DBF)"]
    assert vcmax["prior_value_norm"] == pytest.approx((50 - 20) / 60)
    assert vcmax["posterior_value_norm"] == pytest.approx((60 - 20) / 60)
    assert vcmax["shift_norm"] == pytest.approx(10 / 60)
    assert frame.loc["q10", "prior_value_norm"] == pytest.approx(0.5)
    assert frame.loc["q10", "posterior_value_norm"] == pytest.approx(0.995)
    assert frame.loc["slope (ENF)", "shift_norm"] == pytest.approx((4.1 - 9) / 10)


def test_intervals_from_sigma_and_from_percentiles(frame):
    vcmax = frame.loc["vcmax (DBF)"]  # posterior ± 1.645 σ, Gaussian prior ± 1.645 σ
    assert vcmax["posterior_interval_source"] == "sd"
    assert vcmax["posterior_lo"] == pytest.approx(60 - Z * 4)
    assert vcmax["posterior_hi_norm"] == pytest.approx((60 + Z * 4 - 20) / 60)
    assert vcmax["prior_lo_norm"] == pytest.approx((50 - Z * 10 - 20) / 60)
    assert vcmax["prior_hi_norm"] == pytest.approx((50 + Z * 10 - 20) / 60)
    q10 = frame.loc["q10"]  # percentiles as given; uniform prior: 5 % and 95 % of the range
    assert q10["posterior_interval_source"] == "p05_p95"
    assert q10["posterior_lo_norm"] == pytest.approx(0.95)
    assert q10["posterior_hi_norm"] == pytest.approx(1.0)
    assert (q10["prior_lo_norm"], q10["prior_hi_norm"]) == pytest.approx((0.05, 0.95))
    # both given: the percentiles win (an asymmetric posterior keeps its shape)
    slope = frame.loc["slope (ENF)"]
    assert slope["posterior_interval_source"] == "p05_p95"
    assert (slope["posterior_lo_norm"], slope["posterior_hi_norm"]) == pytest.approx((0, 0.1))


def test_edge_flags(frame):
    assert frame.loc["q10", "edge"] == "upper" and frame.loc["q10", "edge_hitting"]
    assert frame.loc["slope (ENF)", "edge"] == "lower"
    assert not frame.loc["vcmax (DBF)", "edge_hitting"]


def test_uncertainty_reduction_as_in_the_readme(frame):
    # 1 − σ_post/σ_prior; σ_prior from prior_sd, else (max − min)/√12
    assert frame.loc["vcmax (DBF)", "uncertainty_reduction"] == pytest.approx(1 - 4 / 10)
    sd_post = (3.0 - 2.9) / (2 * Z)  # from the 5–95 % interval
    assert frame.loc["q10", "uncertainty_reduction"] == pytest.approx(
        1 - sd_post / (2 / math.sqrt(12)))
    # posterior_sd given beside percentiles: σ_post is the given one
    assert frame.loc["slope (ENF)", "uncertainty_reduction"] == pytest.approx(
        1 - 0.5 / (10 / math.sqrt(12)))


def test_process_summary_median_and_n(frame):
    summary = pq.process_summary(frame.reset_index()).set_index("process")
    # photosynthesis: vcmax (0.6) and kn (no range → uniform σ unknown; σ_post 0.1 but no
    # prior σ) → only vcmax counts
    assert summary.loc["photosynthesis", "n"] == 1
    assert summary.loc["photosynthesis", "median_reduction"] == pytest.approx(0.6)
    assert summary.loc["respiration", "n_edge"] == 1
    assert "n=1" in summary.loc["respiration", "label"]


def test_sorting_by_uncertainty_reduction_orders_rows(service):
    frame = pq.parameter_frame(service, 1)
    rows = pq.row_layout(frame, "reduction_all")
    order = rows.sort_values("y", ascending=False)["parameter"].tolist()
    expected = frame[frame["drawable"]].sort_values("uncertainty_reduction",
                                                    ascending=False)["parameter"].tolist()
    assert order == expected
    assert "q10 · respiration" in set(rows["group"])  # mixed processes: ticks name them
    grouped = pq.row_layout(frame, "process")
    processes = grouped.sort_values("y", ascending=False)["process"].tolist()
    assert processes == sorted(processes)  # grouped by process, in order


def test_a_model_without_a_table_is_listed_with_the_expected_name(service):
    missing = pq.missing_tables(service, 1).set_index("model")
    assert missing.loc["BETA-X.v2.1", "expected_file"] == "BETA-X.v2.1_Phase1b_Scen1_parameters.csv"
    assert missing.loc["BETA-X.v2.1", "status"] == "no parameter table submitted"
    # a table that cannot be read at all says why
    assert "'parameter'" in missing.loc["DELTA.v1", "status"]
    assert "ALPHA.v1" not in missing.index
    # the model filter applies
    assert list(pq.missing_tables(service, 1, ["ALPHA.v1"])["model"]) == []


def test_bad_rows_get_messages_and_the_rest_is_kept(service, frame):
    problems = pq.row_problems(pq.parameter_frame(service, 1))
    by_problem = problems.set_index("problem")["rows"].to_dict()
    # lines in the file: header = 1, GOOD rows 2–4, BAD rows 5–7
    assert by_problem["prior_max 'about 1' is not a number (read as unknown)"] == "5"
    assert by_problem["the parameter name is empty"] == "6"
    assert by_problem["prior_min > prior_max"] == "7"
    assert by_problem["no usable prior range (prior_min < prior_max): not drawn"] == "5, 7"
    assert len(problems) == 4
    assert (problems["file"] == "ALPHA.v1_Phase1b_Scen1_parameters.csv").all()
    # the good rows are all there, drawable
    assert frame.loc[["vcmax (DBF)", "q10", "slope (ENF)"], "drawable"].all()
    assert not frame.loc["kn", "drawable"]


def test_the_loader_reports_rows_instead_of_raising(tmp_path):
    path = _write(tmp_path / "A.v1_Phase1b_Scen1_parameters.csv", GOOD + BAD)
    with pytest.raises(CalLMIPFileError):
        read_parameters(path)  # strict by default
    df = read_parameters(path, report_rows=True)
    assert len(df) == 6
    assert df["row"].tolist() == [2, 3, 4, 5, 6, 7]
    assert df["problems"].iloc[:3].tolist() == ["", "", ""]
    assert np.isnan(df.loc[3, "prior_max"])
    missing = _write(tmp_path / "B.v1_Phase1b_Scen1_parameters.csv", GOOD[:1],
                     header=["parameter", "prior_value", "posterior_value"])
    df = read_parameters(missing, report_rows=True)
    assert df.loc[0, "problems"] == "columns prior_min, prior_max missing from the file"


def test_misfit_medians_use_calibration_sites_with_n(service):
    medians = pq.misfit_medians(service, 1)
    table = service.table("misfit_reduction")
    t = table[(table["model"] == "ALPHA") & (table["scenario"] == 1) & (table["cal_val"] == "Cal")
              & (table["variable"] == "Qle") & ~table["insufficient"].astype(bool)]
    row = medians[(medians["model_id"] == "ALPHA.v1") & (medians["variable"] == "Qle")].iloc[0]
    assert row["n"] == len(t)
    assert row["median_misfit_reduction"] == pytest.approx(t["misfit_reduction"].median())


def test_one_parameter_across_scenarios(service):
    df = pq.scenario_frame(service, "ALPHA.v1", "vcmax (DBF)")
    assert df["scenario"].tolist() == [1, 2]
    assert df["posterior_value_norm"].tolist() == pytest.approx([40 / 60, 15 / 60])
    assert df["scenario_label"].tolist() == ["Scen 1 (NEE + Qle + Qh)", "Scen 2 (NEE)"]


# -- view objects ----------------------------------------------------------------------------

def _render(view) -> None:
    pn.panel(view).get_root(Document(), comm=Comm())


def _edge_layer(overlay: hv.Overlay) -> hv.Scatter:
    squares = [e for e in overlay.traverse(lambda x: x, [hv.Scatter])
               if e.opts.get().kwargs.get("marker") == "square"]
    assert len(squares) == 1
    return squares[0]


def test_view_objects_on_the_tiny_archive(service):
    view = ParametersView(selection=Selection(scenario=1), service=service, look=Look())
    _render(view)  # the page builds though one table is unreadable and rows are bad
    intervals = view.intervals(1, [], [], [], "process")
    # one ● per drawable row, its x the normalised posterior; the edge layer has q10 and slope
    points = [e for e in intervals.traverse(lambda x: x, [hv.Scatter])
              if "model_id" in [d.name for d in e.vdims]][0]
    assert sorted(points.dimension_values("posterior_value_norm")) == pytest.approx(
        sorted([40 / 60, 0.995, 0.01, 0.75]))  # the unnamed row too, under its line
    assert "(unnamed, row 6)" in [t for _, t in intervals.opts.get().kwargs["yticks"]]
    assert sorted(_edge_layer(intervals).dimension_values(0)) == pytest.approx([0.01, 0.995])
    messages = view.messages(1, [], [], [])
    html = " ".join(str(getattr(o, "object", "")) for o in messages.select(pn.pane.HTML))
    assert "BETA-X.v2.1_Phase1b_Scen1_parameters.csv" in html
    assert "4 problem(s)" in html
    listed = view.problem_table(1, [], [], [])
    tables = [o.object for o in listed.select(pn.pane.DataFrame)]
    assert tables and "about 1" in " ".join(tables[0]["problem"])
    # the process filter: only respiration left
    only = view.intervals(1, [], ["respiration"], [], "process")
    points = [e for e in only.traverse(lambda x: x, [hv.Scatter])
              if "model_id" in [d.name for d in e.vdims]][0]
    assert list(points.dimension_values("parameter")) == ["q10"]


def test_a_scenario_without_tables_says_so(service):
    view = ParametersView(selection=Selection(scenario=2), service=service, look=Look())
    empty = view.intervals(2, ["BETA-X.v2.1"], [], [], "process")
    assert "No parameter" in empty.opts.get().kwargs["title"]


@pytest.mark.slow
def test_view_objects_on_the_demo_archive(tmp_path_factory):
    from tests.test_demo import shared_demo_archive

    service = DataService(shared_demo_archive(tmp_path_factory))
    for look in (Look(), Look(theme="dark", presentation=True)):
        view = ParametersView(selection=Selection(scenario=1), service=service, look=look)
        _render(view)
    frame = pq.parameter_frame(service, 1)
    assert frame["model_id"].nunique() == 5 and frame["drawable"].all()
    intervals = view.intervals(1, [], [], [], "process")
    ticks = [label for _, label in intervals.opts.get().kwargs["yticks"]]
    assert "topt" in ticks and "eps_forest (forest)" in ticks
    assert len(_edge_layer(intervals)) == int(frame["edge_hitting"].sum()) > 0
    heat = view.process_heatmap(1, [], [], [])
    cells = heat.traverse(lambda x: x, [hv.HeatMap])[0]
    assert len(cells) == len(frame.groupby(["process", "model_id"]))
    assert set(view.focus.options) == set(frame["model_id"])
    scen = view.across_scenarios("TERRA-TOY.v1.4.2", "topt")
    assert len(scen.opts.get().kwargs["yticks"]) == 3  # Scenarios 1, 2, 3
    misfit = view.misfit(1, "TERRA-TOY.v1.4.2")
    bars = misfit.traverse(lambda x: x, [hv.Bars])[0]
    assert list(bars.dimension_values("variable")) == ["NEE", "Qle", "Qh"]


def test_text_from_tables_is_escaped(tmp_path):
    hostile = '<script>alert("x")</script>'
    root = build_app_archive(tmp_path / "archive")
    _write(root / "parameters" / "ALPHA.v1_Phase1b_Scen1_parameters.csv",
           [dict(GOOD[0], parameter=hostile, long_name=hostile, prior_max="<b>9</b>")])
    service = DataService(root)
    view = ParametersView(selection=Selection(scenario=1), service=service, look=Look())
    texts = []
    for part in (view.messages(1, [], [], []), view.problem_table(1, [], [], [])):
        root_model = pn.panel(part).get_root(Document(), comm=Comm())
        texts += [str(m.text) for m in root_model.references() if hasattr(m, "text")]
    joined = " ".join(texts)
    assert "&lt;b&gt;9&lt;/b&gt;" in joined or "&amp;lt;b&amp;gt;" in joined
    assert "<script>" not in joined and "<b>9" not in joined


def test_an_archive_without_any_parameter_table_lists_what_is_missing(tmp_path, monkeypatch):
    """No table at all (the parameter table is empty): the view still builds and names the
    file each model should send (it raised KeyError 'prior_value_norm', and the exporter
    skipped the page)."""
    monkeypatch.setenv("CALLMIP_CACHE_DIR", str(tmp_path / "cache"))
    root = build_app_archive(tmp_path / "archive")
    service = DataService(root)
    assert pq.parameter_frame(service, 1, []).empty
    view = ParametersView(selection=Selection(view="parameters"), service=service)
    layout = pn.panel(view)
    layout.get_root(Document(), comm=Comm())
    text = " ".join(str(o.object) for o in layout.select(pn.pane.HTML))
    assert "ALPHA.v1_Phase1b_Scen1_parameters.csv" in text
