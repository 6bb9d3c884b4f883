"""Scenarios and methods (issue #16): the ``scenarios`` and ``methods`` tables on a synthetic
archive with known answers, their CLI output, the query layer and the two views.

The archive: observations at DK-Sor and FI-Hyy (calibration) and US-Ha1 (validation); every run
equals the observations plus a constant offset per variable, so RMSE = |offset| and the misfit
reduction is 1 − |posterior offset| / |prior offset| (χ² reduction 1 − (post/prior)²). All priors
are +2 (A, C) or −2 (B).

=====  ========  ===========================  ====================================
model  scenario  calibration sites (offsets)  validation site US-Ha1
=====  ========  ===========================  ====================================
A      1         +1 all → 0.5                 +1.5 all → 0.25
A      3 (Qle)   DK-Sor NEE +3, Qle +0.5,     NEE +3, Qle +1, Qh +2
                 Qh +2; FI-Hyy NEE +2.5,
                 Qle +1, Qh +2
B      1 only    −1 all → 0.5                 −1 all → 0.5
C      1         +0.5 all → 0.75              +1 all → 0.5
C      3 (Qle)   Qle +1 → 0.5, NEE +3 → −0.5, Qle +1, NEE +3, Qh +2
                 Qh +2 → 0
=====  ========  ===========================  ====================================
"""

from __future__ import annotations

import html
import json
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
import xarray as xr

from dashboard.cli import main
from dashboard.metrics.strategies import scenario_table
from dashboard.metrics.tables import TABLE_NAMES, clear_memory_cache, compute_tables
from loaders import clear_cache
from tests.test_metrics_tables import N_OBS, N_RUN, OBS_START, RUN_START, obs_values, write_obs

#: Protocol v2 §3.1, written out independently of loaders.variables.
PROTOCOL_SCENARIOS = {1: {"NEE", "Qle", "Qh"}, 2: {"NEE"}, 3: {"Qle"}, 4: {"Qh"},
                      5: {"NEE", "Qle"}, 6: {"Qle", "Qh"}}
HOSTILE = '<script>alert("x")</script><img src=x onerror=alert(1)>'

PARAMS = (
    "parameter,long_name,process,pft,units,prior_value,prior_min,prior_max,prior_sd,"
    "posterior_value,posterior_sd,posterior_p05,posterior_p95,sensitivity_rank\n"
    "vcmax,Max carboxylation,photosynthesis,DBF,umol m-2 s-1,50,20,80,10,79.5,2,,,1\n"
    "q10,Q10,respiration,all,1,2,1,3,0.3,2.1,0.1,,,2\n"
)
A_INFO = """\
model: A
version: v1
description: a test model
references: [doi:10.0/abc]
method: MCMC
ensemble_size: 500
multi_stream: simultaneous
global_parameters: multi_site_per_pft
pfts: dominant
other_uncertainties: [driver, initial conditions]
optional_scenarios: [3]
lai: prescribed
n_parameters_selected: 2
n_parameters_possible: 40
"""
C_INFO = {"model": "C", "version": "v1", "description": HOSTILE,
          "method": "simulated annealing", "multi_stream": "step-wise", "lai": "prognostic",
          "optional_scenarios": [3]}


def write_offsets(folder: Path, name: str, obs: dict[str, np.ndarray],
                  offsets: dict[str, float]) -> None:
    """A v2 site run equal to obs + offsets[var] on the observed days."""
    pad = (OBS_START - RUN_START).days
    data = {}
    for var, out in (("NEE", "nep"), ("Qle", "hfls"), ("Qh", "hfss")):
        v = np.full(N_RUN, 7.0 + offsets[var])
        v[pad:pad + N_OBS] = obs[var] + offsets[var]
        if var == "NEE":
            v = -v / (1000.0 * 86400.0)
        units = "kgC m-2 s-1" if var == "NEE" else "W m-2"
        data[out] = (("time", "lat", "lon"), v.reshape(N_RUN, 1, 1), {"units": units})
    ds = xr.Dataset(data, coords={
        "time": ("time", np.arange(1, N_RUN + 1, dtype=float),
                 {"units": "days since 2000-12-21 00:00:00", "calendar": "standard"}),
        "lat": ("lat", [55.5]), "lon": ("lon", [11.6])})
    ds.to_netcdf(folder / name)


def _all(value: float) -> dict[str, float]:
    return {"NEE": value, "Qle": value, "Qh": value}


def build_strategy_archive(root: Path) -> Path:
    """Write the archive of the module docstring under ``root``."""
    root.mkdir(parents=True, exist_ok=True)
    sites = {"DK-Sor": ("Cal", obs_values()), "FI-Hyy": ("Cal", obs_values(0.3)),
             "US-Ha1": ("Val", obs_values(0.5))}
    for site, (_, obs) in sites.items():
        write_obs(root, site, obs)
    scen3_cal = {"DK-Sor": {"NEE": 3.0, "Qle": 0.5, "Qh": 2.0},
                 "FI-Hyy": {"NEE": 2.5, "Qle": 1.0, "Qh": 2.0}}
    scen3_other = {"NEE": 3.0, "Qle": 1.0, "Qh": 2.0}
    for site, (cv, obs) in sites.items():
        cal = cv == "Cal"
        runs = {
            "A": (2.0, {1: _all(1.0 if cal else 1.5),
                        3: scen3_cal[site] if cal else scen3_other}),
            "B": (-2.0, {1: _all(-1.0)}),
            "C": (2.0, {1: _all(0.5 if cal else 1.0), 3: scen3_other}),
        }
        for model, (prior, posts) in runs.items():
            write_offsets(root, f"{model}.v1_Phase1b_Scen1_{site}_{cv}_Prior.nc", obs,
                          _all(prior))
            for scen, offsets in posts.items():
                write_offsets(root, f"{model}.v1_Phase1b_Scen{scen}_{site}_{cv}_Posterior.nc",
                              obs, offsets)
    (root / "A.v1_Phase1b_Scen1_parameters.csv").write_text(PARAMS)
    (root / "A.v1_model_info.yaml").write_text(A_INFO)
    (root / "C.v1_model_info.json").write_text(json.dumps(C_INFO))
    return root


@pytest.fixture
def strategy_root(tmp_path, monkeypatch):
    monkeypatch.setenv("CALLMIP_CACHE_DIR", str(tmp_path / "cache"))
    clear_memory_cache()
    clear_cache()
    yield build_strategy_archive(tmp_path / "archive")
    clear_memory_cache()
    clear_cache()


@pytest.fixture
def tables(strategy_root):
    return compute_tables(strategy_root)


def _row(table: pd.DataFrame, model: str, scenario: int, variable: str) -> pd.Series:
    rows = table[(table["model"] == model) & (table["scenario"] == scenario)
                 & (table["variable"] == variable)]
    assert len(rows) == 1, rows
    return rows.iloc[0]


# ------------------------------------------------------------------------- scenarios table
def test_new_tables_follow_the_existing_ones(tables):
    assert list(tables) == list(TABLE_NAMES)
    assert list(TABLE_NAMES[:5]) == ["site_scores", "misfit_reduction", "spread", "parameters",
                                     "summary"]
    assert list(TABLE_NAMES[5:]) == ["scenarios", "methods"]


def test_grid_marks_calibrated_variables_for_all_six_scenarios(tables):
    sc = tables["scenarios"]
    for model in ("A", "B", "C", "all"):
        mine = sc[sc["model"] == model]
        assert sorted(set(mine["scenario"])) == [1, 2, 3, 4, 5, 6]
        assert len(mine) == 18
        for row in mine.itertuples():
            assert row.calibrated == (row.variable in PROTOCOL_SCENARIOS[row.scenario]), row
            assert row.calibrated_on == "+".join(
                v for v in ("NEE", "Qle", "Qh") if v in PROTOCOL_SCENARIOS[row.scenario])


def test_per_model_cells_have_known_values_and_n(tables):
    sc = tables["scenarios"]
    a1 = _row(sc, "A", 1, "NEE")
    assert a1["ran"] and a1["n_cal"] == 2 and a1["n_val"] == 1
    assert a1["median_misfit_reduction_cal"] == pytest.approx(0.5)
    assert a1["median_misfit_reduction_chi2_cal"] == pytest.approx(0.75)  # 1 − (1/2)²
    assert a1["median_misfit_reduction_val"] == pytest.approx(0.25)
    assert a1["generalisation_gap"] == pytest.approx(0.25)
    # Scenario 3 calibrates Qle: Qle improves, NEE gets worse, Qh does not move
    qle, nee, qh = (_row(sc, "A", 3, v) for v in ("Qle", "NEE", "Qh"))
    assert qle["calibrated"] and not nee["calibrated"] and not qh["calibrated"]
    assert qle["median_misfit_reduction_cal"] == pytest.approx((0.75 + 0.5) / 2)
    assert nee["median_misfit_reduction_cal"] == pytest.approx((-0.5 - 0.25) / 2)
    assert qh["median_misfit_reduction_cal"] == pytest.approx(0.0, abs=1e-12)
    assert qle["generalisation_gap"] == pytest.approx(0.625 - 0.5)


def test_model_without_optional_scenarios_is_listed_not_dropped(tables):
    sc = tables["scenarios"]
    b = sc[sc["model"] == "B"]
    assert set(b.loc[b["ran"], "scenario"]) == {1}
    not_run = b[b["scenario"] > 1]
    assert len(not_run) == 15 and not not_run["ran"].any()
    assert (not_run["n_cal"] == 0).all() and not_run["median_misfit_reduction_cal"].isna().all()
    assert not_run["models"].isna().all() and (not_run["n_models"] == 0).all()


def test_cross_model_medians_and_their_n(tables):
    sc = tables["scenarios"]
    s1 = _row(sc, "all", 1, "NEE")
    assert s1["n_models"] == 3 and s1["models"] == "A.v1, B.v1, C.v1"
    assert s1["median_misfit_reduction_cal"] == pytest.approx(np.median([0.5, 0.5, 0.75]))
    assert s1["n_cal"] == 6  # 3 models × 2 calibration sites
    assert s1["median_misfit_reduction_val"] == pytest.approx(np.median([0.25, 0.5, 0.5]))
    assert s1["generalisation_gap"] == pytest.approx(np.median([0.25, 0.0, 0.25]))
    assert s1["n_models_gap"] == 3
    s3 = _row(sc, "all", 3, "Qle")
    assert s3["n_models"] == 2 and s3["models"] == "A.v1, C.v1"
    assert s3["median_misfit_reduction_cal"] == pytest.approx(np.median([0.625, 0.5]))
    for scen in (2, 4, 5, 6):
        row = _row(sc, "all", scen, "Qh")
        assert row["n_models"] == 0 and not row["ran"]
        assert np.isnan(row["median_misfit_reduction_cal"])
    # spread reduction: the median over calibration sites of the spread table
    spread = tables["spread"]
    want = spread[(spread["scenario"] == 1) & (spread["variable"] == "NEE")
                  & (spread["cal_val"] == "Cal") & (spread["stage"] == "Posterior")]
    assert s1["n_spread_sites"] == len(want) == 2
    assert s1["median_spread_reduction"] == pytest.approx(want["spread_reduction"].median())


def test_scenario_table_lists_models_without_any_scored_run():
    misfit = pd.DataFrame(columns=["model", "version", "scenario", "site", "cal_val", "stage",
                                   "variable", "misfit_reduction", "misfit_reduction_chi2",
                                   "insufficient"])
    spread = pd.DataFrame(columns=["scenario", "cal_val", "stage", "variable",
                                   "spread_reduction", "insufficient"])
    table = scenario_table(misfit, spread, ["CABLE-POP.v4.2"])
    mine = table[table["model"] == "CABLE-POP"]
    assert len(mine) == 18 and set(mine["version"]) == {"v4.2"} and not mine["ran"].any()


# --------------------------------------------------------------------------- methods table
def test_methods_table_lists_every_model_with_its_information(tables):
    m = tables["methods"].set_index("model")
    assert list(m.index) == ["A", "B", "C"]
    assert m.loc["A", "info_status"] == "ok" and m.loc["A", "info_file"] == "A.v1_model_info.yaml"
    assert m.loc["A", "method"] == "mcmc" and m.loc["A", "ensemble_size"] == 500
    assert m.loc["A", "other_uncertainties"] == "driver, initial_conditions"
    assert m.loc["A", "optional_scenarios"] == "3"
    assert m.loc["B", "info_status"] == "missing" and pd.isna(m.loc["B", "method"])
    assert m.loc["C", "info_status"] == "warnings"  # "simulated annealing" is no method family
    assert m.loc["C", "method"] == "simulated annealing"
    assert m.loc["C", "multi_stream"] == "step_wise"
    assert m.loc["C", "description"] == HOSTILE  # kept as written; views escape it
    assert m.loc["A", "scenarios_run"] == "1, 3" and m.loc["B", "scenarios_run"] == "1"


def test_methods_outcomes_have_known_values(tables):
    m = tables["methods"].set_index("model")
    assert m.loc["A", "n_cal"] == 6 and m.loc["A", "n_val"] == 3
    assert m.loc["A", "median_misfit_reduction_cal"] == pytest.approx(0.5)
    assert m.loc["A", "generalisation_gap"] == pytest.approx(0.25)
    assert m.loc["C", "median_misfit_reduction_cal"] == pytest.approx(0.75)
    assert m.loc["A", "n_parameters"] == 2
    assert m.loc["A", "share_at_bounds"] == pytest.approx(0.5)  # vcmax 79.5 of [20, 80]
    assert m.loc["B", "n_parameters"] == 0 and np.isnan(m.loc["B", "share_at_bounds"])
    assert (m["n_coverage"] == 0).all()  # no run carries an uncertainty


def test_methods_outcomes_equal_the_other_metric_tables(tables):
    """The outcome columns are the metric tables' numbers, recomputed here independently."""
    mis, scores = tables["misfit_reduction"], tables["site_scores"]
    params = tables["parameters"]
    for row in tables["methods"].itertuples():
        mine = mis[(mis["model"] == row.model) & (mis["scenario"] == 1)
                   & mis["stage"].isin(["Posterior", "Spatial"]) & ~mis["insufficient"]]
        cal = mine.loc[mine["cal_val"] == "Cal", "misfit_reduction"]
        val = mine.loc[mine["cal_val"] == "Val", "misfit_reduction"]
        assert row.n_cal == len(cal) and row.n_val == len(val)
        assert row.median_misfit_reduction_cal == pytest.approx(cal.median())
        assert row.generalisation_gap == pytest.approx(cal.median() - val.median())
        cov = scores[(scores["model"] == row.model) & (scores["scenario"] == 1)
                     & (scores["stage"] == "Posterior") & (scores["cal_val"] == "Cal")
                     & ~scores["insufficient"]]["coverage"].dropna()
        assert row.n_coverage == len(cov)
        p = params[(params["model"] == row.model) & (params["scenario"] == 1)]
        assert row.n_parameters == len(p)


def test_cli_writes_scenarios_and_methods_in_every_format(strategy_root, tmp_path, capsys):
    out_json = tmp_path / "m.json"
    assert main(["metrics", str(strategy_root), "--format", "json", "--out",
                 str(out_json)]) == 0
    data = json.loads(out_json.read_text())
    assert list(data)[-2:] == ["scenarios", "methods"]
    tables = compute_tables(strategy_root)
    for name in ("scenarios", "methods"):
        assert len(data[name]) == len(tables[name])
    a = next(r for r in data["methods"] if r["model"] == "A")
    assert a["median_misfit_reduction_cal"] == pytest.approx(0.5)
    assert a["info_status"] == "ok" and a["ensemble_size"] == 500
    for fmt in ("csv", "parquet"):
        folder = tmp_path / fmt
        assert main(["metrics", str(strategy_root), "--format", fmt, "--out",
                     str(folder)]) == 0
        for name in ("scenarios", "methods"):
            path = folder / f"{name}.{fmt}"
            df = pd.read_csv(path) if fmt == "csv" else pd.read_parquet(path)
            assert list(df.columns) == list(tables[name].columns)
            assert len(df) == len(tables[name])
        df = (pd.read_csv if fmt == "csv" else pd.read_parquet)(folder / f"methods.{fmt}")
        got = df.set_index("model")["generalisation_gap"]
        assert got["A"] == pytest.approx(0.25) and got["C"] == pytest.approx(0.25)


# ------------------------------------------------------------------------ queries and views
@pytest.fixture
def service(strategy_root):
    from dashboard.service import DataService

    return DataService(strategy_root)


def test_queries_shape_the_tables(service):
    from dashboard import strategy_queries as sq

    assert sq.scenario_models(service) == ["A.v1", "B.v1", "C.v1"]
    assert sq.models_with_scenario1_only(service) == ["B.v1"]
    assert sq.missing_info_models(service) == ["B.v1"]
    grid = sq.scenario_grid(service, "A.v1", "median_misfit_reduction_cal")
    assert len(grid) == 18
    cell = grid[(grid["scenario"] == 3) & (grid["variable"] == "Qle")].iloc[0]
    assert cell["label"] == "◆ +0.62\nn=2" and cell["scenario_label"] == "Scen3: Qle"
    nee = grid[(grid["scenario"] == 3) & (grid["variable"] == "NEE")].iloc[0]
    assert nee["label"] == "-0.38\nn=2"
    assert set(grid.loc[~grid["ran"], "label"]) == {sq.NOT_RUN}
    gap = sq.scenario_grid(service, "A.v1", "generalisation_gap")
    cell = gap[(gap["scenario"] == 1) & (gap["variable"] == "Qh")].iloc[0]
    assert cell["label"] == "◆ +0.25\nn=2/1" and cell["n"] == 1
    across = sq.scenario_grid(service, "all", "median_misfit_reduction_cal")
    s1 = across[(across["scenario"] == 1) & (across["variable"] == "NEE")].iloc[0]
    assert s1["n"] == 3 and s1["label"] == "◆ +0.50\nn=3"
    groups = sq.outcome_groups(service, "method", "median_misfit_reduction_cal")
    assert dict(zip(groups["model"], groups["group_label"], strict=True)) == {
        "A.v1": "mcmc (n=1 model)", "B.v1": "no file (n=1 model)",
        "C.v1": "simulated annealing (n=1 model)"}
    lai = sq.outcome_groups(service, "info_status", "generalisation_gap")
    assert set(lai["group_label"]) == {"file sent (n=2 models)", "no file (n=1 model)"}


def _texts(viewable) -> list[str]:
    import panel as pn
    from bokeh.document import Document
    from pyviz_comms import Comm

    root = pn.panel(viewable).get_root(Document(), comm=Comm())
    out = []
    for model in root.references():
        for prop in ("text", "title", "label"):
            value = getattr(model, prop, None)
            if isinstance(value, str):
                out.append(value)
    return out


def test_scenarios_view_builds_and_a_cell_opens_the_sites_view(service):
    from dashboard.state import Selection
    from dashboard.views.scenarios import ScenariosView

    selection = Selection(view="scenarios")
    view = ScenariosView(selection=selection, service=service)
    texts = " ".join(_texts(view))
    assert "Ran Scenario 1 only" in texts and "B.v1" in texts
    assert "not causal" in texts
    heat = view.grid("A.v1")
    overlay = heat[()] if hasattr(heat, "__getitem__") else heat
    assert overlay is not None
    # a cell of a scenario the model did not run changes nothing
    assert not view.open_cell("A.v1", "NEE", "Scen2: NEE")
    assert selection.view == "scenarios"
    # the Tap stream fires the same handler a browser click does
    view._taps["A.v1"].event(x="Qle", y="Scen3: Qle")
    assert selection.view == "sites" and selection.models == ["A.v1"]
    assert selection.scenario == 3 and selection.variable == "Qle"
    view.open_parameters("C.v1")
    assert selection.view == "parameters" and selection.models == ["C.v1"]


def test_the_scenarios_page_adds_one_model_grid_per_step(service):
    """Served, the page gets its shell first, then one grid per event-loop tick."""
    from dashboard.state import Selection
    from dashboard.views.scenarios import ScenariosView

    selection = Selection(view="scenarios")
    view = ScenariosView(selection=selection, service=service)
    shown = view.shown_models([])
    assert len(shown) >= 2
    steps = view._per_model_steps()
    assert len(steps) == len(shown)  # heading + first grid, then one grid a step
    part = steps[0]()
    box = part.objects[1].objects[0]
    assert len(box.objects) == 1
    for i, step in enumerate(steps[1:], start=2):
        assert step() is None  # added to the two-a-row box, nothing for the page
        assert len(box.objects) == i
    drawn = [card.objects[0].object for card in box.objects]
    assert drawn == [view.grid(m) for m in shown]  # in the models' order
    selection.models = [shown[-1]]  # a new choice rebuilds the part with that model only
    assert len(part.objects[1].objects[0].objects) == 1


def test_methods_view_escapes_file_text(service):
    from dashboard.state import Selection
    from dashboard.views.methods import MethodsView

    view = MethodsView(selection=Selection(view="methods"), service=service)
    # Panel sends an HTML pane's markup escaped once more (it is written into the page): the
    # markup the browser renders is the unescaped text, and there the file's text is escaped.
    joined = html.unescape(" ".join(_texts(view)))
    assert HOSTILE not in joined and "<script>" not in joined and "<img" not in joined
    assert "&lt;script&gt;alert" in joined
    assert "No model-information file from: B.v1" in joined
    assert "not causal" in joined
    plot = view.outcome_plot("lai", "median_misfit_reduction_cal")
    assert "n=1 model" in " ".join(str(v) for v in plot.dimension_values("group_label"))


def test_new_tables_survive_the_disk_cache(strategy_root):
    first = compute_tables(strategy_root)
    clear_memory_cache()
    again = compute_tables(strategy_root)
    assert again.source == "disk"
    for name in ("scenarios", "methods"):
        pd.testing.assert_frame_equal(first[name], again[name], check_dtype=True)
