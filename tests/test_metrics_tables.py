"""compute_tables on a tiny synthetic archive with real file names and a known answer.

The archive (written with xarray in tmp_path):

* observations for DK-Sor (Cal) and US-Ha1 (Val), 2001-01-01 .. 2001-03-31 (90 days), in the
  CalLMIP daily-aggregated layout (NEE_daily gC m-2 d-1 positive to the atmosphere, Qle_daily,
  Qh_daily, *_uc_daily, time in seconds since 2001-01-01);
* models A.v1 and B.v1 in the protocol v2 layout (nep, hfls, hfss, gpp on (time, lat, lon),
  time in days since 2000-12-22: the runs start 10 days before the observations):
  priors = obs ± 2 (A +, B −), Scen1 posteriors = obs ± 1, an A Scen2 posterior = obs + 0.5
  with no Scen2 prior (paired with the Scen1 prior);
* an A Scen3 prior (obs + 4) and posterior (obs + 1): paired with its own prior;
* a broken file and a parameter table.

Known answers: prior RMSE 2, posterior RMSE 1 → misfit reduction 0.5 (Scen2: 1 − 0.5/2 = 0.75);
Scen3: 1 − 1/4 = 0.75; spread across A and B = 2 (prior) and 1 (posterior) → spread
reduction 0.5.
"""

from __future__ import annotations

import json
import math
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
import xarray as xr

from dashboard.cli import main
from dashboard.metrics.tables import (
    DEFAULT_MIN_N,
    TABLE_NAMES,
    clear_memory_cache,
    compute_tables,
    tables_to_json,
)
from loaders import Archive, clear_cache

OBS_START = pd.Timestamp("2001-01-01")
N_OBS = 90
RUN_START = pd.Timestamp("2000-12-22")
N_RUN = 100


def obs_values(site_shift: float = 0.0) -> dict[str, np.ndarray]:
    day = np.arange(N_OBS)
    return {
        "NEE": 2.0 * np.sin(day / 9.0) + site_shift,
        "Qle": 50.0 + 30.0 * np.sin(day / 13.0),
        "Qh": 20.0 + 10.0 * np.cos(day / 7.0),
    }


def write_obs(folder, site: str, values: dict[str, np.ndarray], nan_days=()) -> None:
    data = {}
    for var, units in (("NEE", "gC/m2/d"), ("Qle", "W/m2"), ("Qh", "W/m2")):
        v = values[var].copy()
        v[list(nan_days)] = np.nan
        data[f"{var}_daily"] = ("time", v, {"units": units})
        data[f"{var}_uc_daily"] = ("time", np.where(np.isnan(v), np.nan, 0.5), {"units": units})
    ds = xr.Dataset(data, coords={"time": ("time", np.arange(N_OBS) * 86400.0,
                                           {"units": "seconds since 2001-01-01 00:00:00",
                                            "calendar": "standard"})})
    ds["latitude"] = ("y", [55.5], {"units": "degrees_north"})
    ds["longitude"] = ("x", [11.6], {"units": "degrees_east"})
    enc = {k: {"_FillValue": 1e20} for k in data}
    ds.to_netcdf(folder / f"{site}_daily_aggregated_2001-2001_FLUXNET2015_Flux.nc",
                 encoding=enc)


def write_run(folder, name: str, obs: dict[str, np.ndarray], offset: float,
              gpp: float = 1e-8, members: tuple[float, ...] | None = None) -> None:
    """A v2 site run whose NEE/Qle/Qh equal obs + offset on the observed days.

    With ``members``, an ensemble (dimension ``ensemble``) whose member k is obs + offset +
    members[k].
    """
    pad = (OBS_START - RUN_START).days  # run starts 10 days before the obs
    full = {}
    for var in ("NEE", "Qle", "Qh"):
        v = np.full(N_RUN, 7.0 + offset)  # days without obs keep the offset too
        v[pad:pad + N_OBS] = obs[var] + offset
        full[var] = v
    full["NEE"] = -full["NEE"] / (1000.0 * 86400.0)  # written as nep
    dims: tuple[str, ...] = ("time", "lat", "lon")
    shape: tuple[int, ...] = (N_RUN, 1, 1)
    if members is not None:
        deltas = np.asarray(members)
        full["NEE"] = full["NEE"][:, None] - deltas[None, :] / (1000.0 * 86400.0)
        full["Qle"] = full["Qle"][:, None] + deltas[None, :]
        full["Qh"] = full["Qh"][:, None] + deltas[None, :]
        dims, shape = ("time", "ensemble", "lat", "lon"), (N_RUN, len(deltas), 1, 1)
    ds = xr.Dataset(
        {
            "nep": (dims, full["NEE"].reshape(shape), {"units": "kgC m-2 s-1"}),
            "hfls": (dims, full["Qle"].reshape(shape), {"units": "W m-2"}),
            "hfss": (dims, full["Qh"].reshape(shape), {"units": "W m-2"}),
            "gpp": (("time", "lat", "lon"), np.full((N_RUN, 1, 1), gpp),
                    {"units": "kgC m-2 s-1"}),
        },
        coords={"time": ("time", np.arange(1, N_RUN + 1, dtype=float),
                         {"units": "days since 2000-12-21 00:00:00", "calendar": "standard"}),
                "lat": ("lat", [55.5]), "lon": ("lon", [11.6])},
    )
    ds.to_netcdf(folder / name)


PARAMS = (
    "parameter,long_name,process,pft,units,prior_value,prior_min,prior_max,prior_sd,"
    "posterior_value,posterior_sd,posterior_p05,posterior_p95,sensitivity_rank\n"
) + """vcmax,Max carboxylation,photosynthesis,DBF,umol m-2 s-1,50,20,80,10,79.5,2,,,1
"""


@pytest.fixture
def archive_root(tmp_path, monkeypatch):
    monkeypatch.setenv("CALLMIP_CACHE_DIR", str(tmp_path / "cache"))
    clear_memory_cache()
    clear_cache()
    root = tmp_path / "archive"
    root.mkdir()
    cal, val = obs_values(), obs_values(site_shift=0.5)
    write_obs(root, "DK-Sor", cal)
    write_obs(root, "US-Ha1", val)
    for site, cv, obs in (("DK-Sor", "Cal", cal), ("US-Ha1", "Val", val)):
        write_run(root, f"A.v1_Phase1b_Scen1_{site}_{cv}_Prior.nc", obs, +2.0, gpp=2e-8)
        write_run(root, f"B.v1_Phase1b_Scen1_{site}_{cv}_Prior.nc", obs, -2.0, gpp=0.0)
        write_run(root, f"A.v1_Phase1b_Scen1_{site}_{cv}_Posterior.nc", obs, +1.0, gpp=1.5e-8)
        # B's DK-Sor posterior is a 3-member ensemble around obs - 1 (mean obs - 1); at the
        # validation site B's posterior generalises less well: obs - 1.5
        write_run(root, f"B.v1_Phase1b_Scen1_{site}_{cv}_Posterior.nc", obs,
                  -1.0 if site == "DK-Sor" else -1.5, gpp=0.5e-8,
                  members=(-0.5, 0.0, 0.5) if site == "DK-Sor" else None)
    write_run(root, "A.v1_Phase1b_Scen2_DK-Sor_Cal_Posterior.nc", cal, +0.5)
    # Scen3 has its own prior (obs + 4): the posterior is paired with it, not with Scen1's
    write_run(root, "A.v1_Phase1b_Scen3_DK-Sor_Cal_Prior.nc", cal, +4.0)
    write_run(root, "A.v1_Phase1b_Scen3_DK-Sor_Cal_Posterior.nc", cal, +1.0)
    (root / "C.v1_Phase1b_Scen1_DK-Sor_Cal_Prior.nc").write_bytes(b"CDF\x01 not really")
    (root / "A.v1_Phase1b_Scen1_parameters.csv").write_text(PARAMS)
    yield root
    clear_memory_cache()
    clear_cache()


def test_tables_shapes_and_known_values(archive_root):
    tables = compute_tables(archive_root, min_n=DEFAULT_MIN_N)
    assert list(tables) == list(TABLE_NAMES) == ["site_scores", "misfit_reduction", "spread",
                                                 "parameters", "summary", "scenarios",
                                                 "methods"]
    sc = tables["site_scores"]
    # 11 readable runs (4 per site, the Scen2 posterior, the Scen3 pair) x 3 variables
    assert len(sc) == 11 * 3
    assert set(sc.columns) >= {"model", "version", "scenario", "site", "cal_val", "variable",
                               "stage", "n", "bias", "rmse", "nme", "r", "sd_ratio", "chi2",
                               "coverage", "crps", "insufficient", "igbp"}
    assert (sc["n"] == N_OBS).all()  # aligned on the 90 observed dates, not the 100 run days
    prior_a = sc[(sc.model == "A") & (sc.stage == "Prior") & (sc.site == "DK-Sor")
                 & (sc.scenario == 1)]
    np.testing.assert_allclose(prior_a["rmse"], 2.0, rtol=1e-9)
    np.testing.assert_allclose(prior_a["bias"], 2.0, rtol=1e-9)
    np.testing.assert_allclose(prior_a["chi2"], (2.0 / 0.5) ** 2, rtol=1e-9)
    assert set(sc.loc[sc.site == "DK-Sor", "igbp"]) == {"DBF"}
    # the ensemble: deterministic scores on the mean, CRPS from the members: with member
    # errors -1.5, -1, -0.5 on every day, E|X - y| = 1 and the pairwise sum
    # sum_ij |x_i - x_j| = 2 * (0.5 + 1 + 0.5) = 4, over 2 m (m - 1) = 12 (fair CRPS, issue #10)
    ens = sc[(sc.model == "B") & (sc.stage == "Posterior") & (sc.site == "DK-Sor")]
    np.testing.assert_allclose(ens["rmse"], 1.0, rtol=1e-9)
    np.testing.assert_allclose(ens["crps"], 1.0 - 4.0 / 12.0, rtol=1e-9)
    assert set(ens["uncertainty_method"]) == {"ensemble"} and (ens["n_coverage"] == N_OBS).all()
    # deterministic runs without uncertainty: no coverage, never a number
    assert sc.loc[sc.model == "A", "coverage"].isna().all()
    assert set(sc.loc[sc.site == "US-Ha1", "cal_val"]) == {"Val"}

    mr = tables["misfit_reduction"]
    assert len(mr) == 6 * 3  # 6 posteriors x 3 variables
    scen1 = mr[(mr.scenario == 1) & ~((mr.model == "B") & (mr.site == "US-Ha1"))]
    np.testing.assert_allclose(scen1["misfit_reduction"], 0.5, rtol=1e-9)
    np.testing.assert_allclose(scen1["misfit_reduction_chi2"], 1 - 1 / 4, rtol=1e-9)
    b_val = mr[(mr.model == "B") & (mr.site == "US-Ha1")]
    np.testing.assert_allclose(b_val["misfit_reduction"], 1 - 1.5 / 2, rtol=1e-9)
    # Scen2 posterior without a Scen2 prior -> paired with the Scen1 prior
    scen2 = mr[mr.scenario == 2]
    assert len(scen2) == 3 and set(scen2["prior_scenario"]) == {1}
    np.testing.assert_allclose(scen2["misfit_reduction"], 1 - 0.5 / 2.0, rtol=1e-9)
    assert list(scen2.loc[scen2.optimised, "variable"]) == ["NEE"]
    scen3 = mr[mr.scenario == 3]
    assert set(scen3["prior_scenario"]) == {3}
    np.testing.assert_allclose(scen3["misfit_reduction"], 1 - 1.0 / 4.0, rtol=1e-9)
    # the pairing agrees with Archive.prior_row for every posterior
    archive = Archive(archive_root)
    for row in mr.drop_duplicates(["model", "version", "scenario", "site"]).itertuples():
        paired = archive.prior_row(f"{row.model}.{row.version}", row.scenario, row.site)
        assert int(paired["scenario"]) == row.prior_scenario

    sp = tables["spread"]
    nee = sp[(sp.scenario == 1) & (sp.site == "DK-Sor") & (sp.variable == "NEE")].iloc[0]
    assert nee["n_models"] == 2 and nee["n_days"] == N_RUN
    assert nee["spread_prior"] == pytest.approx(2.0)
    assert nee["spread_post"] == pytest.approx(1.0)
    assert nee["spread_reduction"] == pytest.approx(0.5)
    # a non-optimised variable without observations: gpp A/B prior 2e-8/0, post 1.5e-8/0.5e-8
    gpp = sp[(sp.scenario == 1) & (sp.site == "DK-Sor") & (sp.variable == "gpp")].iloc[0]
    assert gpp["spread_reduction"] == pytest.approx(1 - 0.5e-8 / 1e-8)
    assert not gpp["optimised"]
    # Scen2 and Scen3 have one model only -> insufficient, no number
    s2 = sp[sp.scenario.isin([2, 3])]
    assert len(s2) > 0 and s2["insufficient"].all() and s2["spread_reduction"].isna().all()

    par = tables["parameters"]
    assert len(par) == 1
    assert par.loc[0, "uncertainty_reduction"] == pytest.approx(0.8)
    assert bool(par.loc[0, "edge_hitting"]) and par.loc[0, "edge"] == "upper"

    su = tables["summary"]
    assert set(su["group_by"]) == {"all", "cal_val", "igbp", "stage"}
    def pick(**kw):
        rows = su
        for k, v in kw.items():
            rows = rows[rows[k] == v]
        assert len(rows) == 1, kw
        return rows.iloc[0]

    # misfit reductions, scenario 1: Cal A 0.5, B 0.5; Val A 0.5, B 0.25
    everyone = pick(group_by="all", model="all", scenario=1, variable="NEE")
    assert everyone["n_cases"] == 4  # 2 models x 2 sites
    assert everyone["median_misfit_reduction"] == pytest.approx(np.median([.5, .5, .5, .25]))
    assert everyone["fraction_improved"] == pytest.approx(1.0)
    # generalisation gap = median Cal (0.5) - median Val (median of 0.5, 0.25)
    assert everyone["generalisation_gap"] == pytest.approx(0.5 - 0.375)
    assert everyone["n_cal"] == 2 and everyone["n_val"] == 2
    b = pick(group_by="all", model="B", scenario=1, variable="Qh")
    assert b["generalisation_gap"] == pytest.approx(0.5 - 0.25) and b["n_cases"] == 2
    a = pick(group_by="all", model="A", scenario=1, variable="Qh")
    assert a["generalisation_gap"] == pytest.approx(0.0, abs=1e-9)
    val = pick(group_by="cal_val", group="Val", model="all", scenario=1, variable="Qle")
    assert val["n_cases"] == 2 and val["median_misfit_reduction"] == pytest.approx(0.375)
    # spread at the Val site: prior A +2 / B -2 (sd 2), posterior +1 / -1.5 (sd 1.25)
    assert val["n_spread_cases"] == 1
    assert val["median_spread_reduction"] == pytest.approx(1 - 1.25 / 2)
    assert pd.isna(val["generalisation_gap"])  # only on group_by == "all" rows
    # DK-Sor and US-Ha1 are both deciduous broadleaf forests in assets/sites.csv
    dbf = pick(group_by="igbp", group="DBF", model="all", scenario=1, variable="NEE")
    assert dbf["n_cases"] == 4 and dbf["n_spread_cases"] == 2
    assert dbf["median_spread_reduction"] == pytest.approx(np.median([0.5, 1 - 1.25 / 2]))


def test_broken_file_is_skipped_and_recorded(archive_root):
    tables = compute_tables(archive_root)
    broken = [p for p in tables.errors if p.endswith("C.v1_Phase1b_Scen1_DK-Sor_Cal_Prior.nc")]
    assert broken, tables.errors
    assert "C.v1_Phase1b_Scen1_DK-Sor_Cal_Prior.nc" in tables.errors[broken[0]]
    assert "C" not in set(tables["site_scores"]["model"])


def test_min_n_makes_scores_insufficient(archive_root):
    tables = compute_tables(archive_root, min_n=N_OBS + 1)
    sc = tables["site_scores"]
    assert sc["insufficient"].all() and sc["rmse"].isna().all() and (sc["n"] == N_OBS).all()
    assert tables["misfit_reduction"]["misfit_reduction"].isna().all()
    assert tables["summary"]["median_misfit_reduction"].isna().all()


def test_cache_memory_then_disk_and_invalidation(archive_root):
    first = compute_tables(archive_root)
    assert first.source == "computed"
    second = compute_tables(archive_root)
    assert second.source == "memory"
    clear_memory_cache()
    third = compute_tables(Archive(archive_root))
    assert third.source == "disk"
    for name in TABLE_NAMES:
        pd.testing.assert_frame_equal(first[name], third[name], check_dtype=True)
    assert third.errors == first.errors
    # a new file changes the archive signature -> recomputed
    write_obs(archive_root, "DE-Hai", obs_values())
    fourth = compute_tables(archive_root)
    assert fourth.source == "computed"
    assert (archive_root.parent / "cache" / "metrics").is_dir()


def test_json_via_cli(archive_root, capsys):
    assert main(["metrics", str(archive_root), "--format", "json"]) == 0
    out = json.loads(capsys.readouterr().out)
    assert list(out) == ["site_scores", "misfit_reduction", "spread", "parameters", "summary",
                         "scenarios", "methods"]
    row = out["site_scores"][0]
    assert isinstance(row["n"], int) and isinstance(row["insufficient"], bool)
    assert all(isinstance(v, (str, int, float, bool, type(None)))
               for rows in out.values() for r in rows for v in r.values())
    # NaN became null (coverage: no uncertainty in these runs)
    assert row["coverage"] is None


def test_tables_to_json_is_strict_json():
    df = pd.DataFrame({"a": [1.0, math.nan, math.inf], "b": pd.array([True, None, False],
                                                                    dtype="boolean"),
                       "c": pd.Series(["x", None, "z"], dtype="str"),
                       "n": np.array([1, 2, 3], dtype="int64")})
    out = tables_to_json({"t": df})
    json.dumps(out, allow_nan=False)
    assert out["t"][1] == {"a": None, "b": None, "c": None, "n": 2}
    assert out["t"][2]["a"] is None and out["t"][0]["b"] is True
    assert type(out["t"][0]["n"]) is int


def write_v1_archive(root: Path) -> Path:
    """A v1-named archive: model M with Posterior (misfit reduction 0.5) and Temporal (0.75)
    runs at DK-Sor (Cal), a Spatial run (0.25) at US-Ha1 (Val)."""
    root.mkdir()
    cal, val = obs_values(), obs_values(site_shift=0.5)
    write_obs(root, "DK-Sor", cal)
    write_obs(root, "US-Ha1", val)
    write_run(root, "M.v1_Expt1_DK-Sor_Cal_Prior.nc", cal, 2.0)
    write_run(root, "M.v1_Expt1_DK-Sor_Cal_Posterior.nc", cal, 1.0)
    write_run(root, "M.v1_Expt1_DK-Sor_Cal_Temporal.nc", cal, 0.5)
    write_run(root, "M.v1_Expt1_US-Ha1_Val_Prior.nc", val, 2.0)
    write_run(root, "M.v1_Expt1_US-Ha1_Val_Spatial.nc", val, 1.5)
    return root


def test_v1_temporal_and_spatial_stages_are_paired_with_the_prior(tmp_path, monkeypatch):
    monkeypatch.setenv("CALLMIP_CACHE_DIR", str(tmp_path / "cache"))
    clear_memory_cache()
    root = write_v1_archive(tmp_path / "v1")
    tables = compute_tables(root)
    mr = tables["misfit_reduction"].set_index(["site", "stage", "variable"])
    assert mr.loc[("DK-Sor", "Temporal", "NEE"), "misfit_reduction"] == pytest.approx(0.75)
    assert mr.loc[("US-Ha1", "Spatial", "NEE"), "misfit_reduction"] == pytest.approx(0.25)
    su = tables["summary"]
    overall = su[(su.group_by == "all") & (su.model == "M") & (su.variable == "NEE")].iloc[0]
    # Posterior (Cal, 0.5) and Spatial (Val, 0.25); Temporal is another period: not pooled
    assert overall["n_cases"] == 2
    assert overall["generalisation_gap"] == pytest.approx(0.5 - 0.25)
    temporal = su[(su.group_by == "stage") & (su.group == "Temporal") & (su.model == "M")
                  & (su.variable == "NEE")].iloc[0]
    assert temporal["median_misfit_reduction"] == pytest.approx(0.75)
    clear_memory_cache()
