"""The demo archive: names, layouts, signs, gaps, the calibration's consequences, determinism.

One complete archive (all 31 sites, all five models, a coarse global grid) is generated once
per module; every consequence of the calibration is checked on the files with numpy, through
the project's own readers, and independently of the generator's code.
"""

from __future__ import annotations

import shutil
import threading
from pathlib import Path

import netCDF4
import numpy as np
import pandas as pd
import pytest

from dashboard.demo import DemoArchiveError, generate_archive
from dashboard.demo import archive as demo_archive
from loaders.catalog import build_catalog
from loaders.naming import parse_name
from loaders.readers import open_global_run, open_observations, open_site_run, read_parameters
from loaders.sites import phase1b_sites
from loaders.variables import SCENARIO_VARIABLES, TABLE3
from tests.conftest import DKSOR_OBS

MODELS = {  # model id -> (scenarios, naming, calendar, ensemble, missing sites)
    "TERRA-TOY.v1.4.2": ((1, 2, 3), "v2", "standard", False, ()),
    "BOREALIS.v3": ((1, 5), "v2", "noleap", False, ()),
    "FENNEC.v0.9": ((1, 6), "v2", "standard", True, ()),
    "ALDER.v2": ((1,), "v1", "standard", False, ("IT-Noe", "US-Whs", "AU-Stp", "US-GLE")),
    "MOSSGROVE.v1.1": ((1, 4, 6), "v2", "standard", False, ()),
}
GLOBAL_MODELS = ("TERRA-TOY.v1.4.2", "BOREALIS.v3", "MOSSGROVE.v1.1")
REAL_MODEL_NAMES = ("CLASSIC", "JULES", "ORCHIDEE", "CLM", "CABLE", "JSBACH", "LPJ", "ISBA",
                    "NOAH", "ELM", "SIB", "VISIT", "LPX", "DLEM", "SDGVM", "YIBS", "OCN")
# Valid-day fractions of NEE in the real Phase 1b files (issue text).
REAL_NEE_VALID = {
    "AU-How": 0.05, "CA-Qfo": 0.39, "CH-Dav": 0.014, "DE-Gri": 0.27, "DE-Hai": 0.015,
    "DE-Tha": 0.27, "DK-Sor": 0.46, "FI-Hyy": 0.19, "FR-Pue": 0.18, "IT-Lav": 0.018,
    "IT-MBo": 0.10, "IT-Noe": 0.07, "NL-Loo": 0.18, "RU-Fyo": 0.22, "US-MMS": 0.17,
    "US-NR1": 0.24, "US-SRG": 0.32, "US-SRM": 0.16, "US-Ton": 0.003, "US-Whs": 0.20,
    "US-Wkg": 0.08,
}
ALLOWED_WARNINGS = {"ALDER": {"v1_name"}, "BOREALIS": {"calendar_noleap"},
                    "FENNEC": {"ensemble"}}
MIN_N = 30

#: Tests that need the complete archive (generated once per session, ~40 s).
slow = pytest.mark.slow


def shared_demo_archive(tmp_path_factory) -> Path:
    """The complete demo archive (coarse global grid, two years), generated once per session.

    The archive is cached on disk in the session's base temporary folder, so that
    ``tests/test_demo_realism.py`` reuses the one this module made (and vice versa).
    """
    root = tmp_path_factory.getbasetemp() / "demo-shared"
    done = root / "DONE"
    if not done.exists():
        shutil.rmtree(root, ignore_errors=True)
        generate_archive(root / "archive", seed=0, resolution=10.0, years=(2001, 2002),
                         progress=False)
        done.write_text("complete\n")
    return root / "archive"


@pytest.fixture(scope="module")
def demo(tmp_path_factory) -> Path:
    """The complete demo archive (coarse global grid, two years), generated once."""
    return shared_demo_archive(tmp_path_factory)


@pytest.fixture(scope="module")
def catalog(demo):
    return build_catalog(demo)


@pytest.fixture(scope="module")
def sites():
    return phase1b_sites()


@pytest.fixture(scope="module")
def observations(demo) -> dict[str, object]:
    return {parse_name(p.name).site: open_observations(p) for p in (demo / "obs").iterdir()}


def _run(demo: Path, model_id: str, scenario: int, site: str, role: str, stage: str) -> Path:
    model, version = model_id.split(".", 1)
    if MODELS[model_id][1] == "v1":
        name = f"{model_id}_Expt{scenario}_{site}_{role}_{stage}.nc"
    else:
        name = f"{model_id}_Phase1b_Scen{scenario}_{site}_{role}_{stage}.nc"
    return demo / "site_runs" / model_id / name


def _raw_series(path: Path, obs_dates: pd.DatetimeIndex) -> dict[str, pd.Series]:
    """NEE, Qle, Qh of a site run read with netCDF4 and converted by hand (member mean)."""
    with netCDF4.Dataset(path) as nc:
        calendar = nc["time"].getncattr("calendar")
        dates = obs_dates
        if calendar == "noleap":
            dates = dates[~((dates.month == 2) & (dates.day == 29))]
        assert nc.dimensions["time"].size == len(dates)
        out = {}
        for var, cmip, factor in (("NEE", "nep", -1000.0 * 86400.0), ("Qle", "hfls", 1.0),
                                  ("Qh", "hfss", 1.0)):
            values = np.asarray(nc[cmip][:], dtype=float)
            if values.ndim == 4:  # (ensemble, time, lat, lon)
                values = values.mean(axis=0)
            out[var] = pd.Series(values[:, 0, 0] * factor, index=dates)
        for cmip in ("lai",):
            out[cmip] = pd.Series(np.asarray(nc[cmip][:], dtype=float)[:, 0, 0], index=dates)
    return out


def _series(ds, var: str) -> pd.Series:
    da = ds[var]
    if "member" in da.dims:
        da = da.mean("member")
    return da.to_series()


def _rmse_pair(obs: pd.Series, prior: pd.Series, post: pd.Series) -> tuple[float, float, int]:
    frame = pd.concat({"o": obs, "a": prior, "b": post}, axis=1).dropna()
    if len(frame) < MIN_N:
        return np.nan, np.nan, len(frame)
    o = frame["o"].to_numpy()
    ra = float(np.sqrt(np.mean((frame["a"].to_numpy() - o) ** 2)))
    rb = float(np.sqrt(np.mean((frame["b"].to_numpy() - o) ** 2)))
    return ra, rb, len(frame)


@pytest.fixture(scope="module")
def raw_runs(demo, sites, observations) -> dict[tuple[str, str, str], dict[str, pd.Series]]:
    """Scenario 1 prior and posterior series of every model at every site with observations."""
    out = {}
    for model_id, (_, _, _, _, missing) in MODELS.items():
        for site, row in sites.iterrows():
            if site in missing or site not in observations:
                continue
            dates = pd.DatetimeIndex(observations[site]["time"].values)
            for stage in ("Prior", "Posterior"):
                out[model_id, site, stage] = _raw_series(
                    _run(demo, model_id, 1, site, row["role"], stage), dates)
    return out


@pytest.fixture(scope="module")
def improvements(raw_runs, sites, observations) -> pd.DataFrame:
    """1 - rmse_post / rmse_prior per (model, site, variable) of Scenario 1, by numpy."""
    rows = []
    for (model_id, site, stage), series in raw_runs.items():
        if stage != "Prior":
            continue
        post = raw_runs[model_id, site, "Posterior"]
        for var in ("NEE", "Qle", "Qh"):
            ra, rb, n = _rmse_pair(observations[site][var].to_series(), series[var], post[var])
            if np.isfinite(ra):
                rows.append({"model": model_id, "site": site, "role": sites.loc[site, "role"],
                             "var": var, "rmse_prior": ra, "rmse_post": rb, "n": n,
                             "improvement": 1.0 - rb / ra})
    return pd.DataFrame(rows)


# ------------------------------------------------------------------------------ names
@slow
def test_every_file_name_parses_to_the_right_kind(demo, catalog, sites):
    assert (catalog["kind"] != "unrecognised").all(), catalog[catalog["kind"] == "unrecognised"]
    folders = {"obs": "observation", "site_runs": "site_run", "parameters": "parameters",
               "global": "global_run", "model_info": "model_info"}
    for row in catalog.itertuples():
        top = Path(row.path).relative_to(demo).parts[0]
        assert folders[top] == row.kind, row.path

    obs = catalog[catalog["kind"] == "observation"]
    expected_obs = set(sites.index) - {"US-Var"}
    assert set(obs["site"]) == expected_obs and len(obs) == len(expected_obs)
    for row in obs.itertuples():
        site = sites.loc[row.site]
        first = (pd.Timestamp(site["obs_start"]).year if isinstance(site["obs_start"], str)
                 else int(site["plumber2_year_start"]) if pd.notna(site["plumber2_year_start"])
                 else 2006)
        assert row.year_start == first

    runs = catalog[catalog["kind"] == "site_run"]
    expected = set()
    for model_id, (scenarios, naming, _, _, missing) in MODELS.items():
        for site, srow in sites.iterrows():
            if site in missing:
                continue
            expected.add((model_id, 1, site, srow["role"], "Prior", naming))
            for scen in scenarios:
                expected.add((model_id, scen, site, srow["role"], "Posterior", naming))
    found = {(f"{r.model}.{r.version}", r.scenario, r.site, r.cal_val, r.stage, r.convention)
             for r in runs.itertuples()}
    assert found == expected
    assert len(runs) == len(expected)
    # priors are not repeated for optional scenarios (protocol v2)
    assert set(runs.loc[runs["stage"] == "Prior", "scenario"]) == {1}

    params = catalog[catalog["kind"] == "parameters"]
    assert {(f"{r.model}.{r.version}", r.scenario) for r in params.itertuples()} == {
        (m, s) for m, spec in MODELS.items() for s in spec[0]}

    glob = catalog[catalog["kind"] == "global_run"]
    assert {(f"{r.model}.{r.version}", r.stage) for r in glob.itertuples()} == {
        (m, s) for m in GLOBAL_MODELS for s in ("Prior", "Posterior")}
    assert set(glob["resolution"]) == {"10.0deg"} and set(glob["frequency"]) == {"monthly"}
    assert set(glob["year_start"]) == {2001} and set(glob["year_end"]) == {2002}


@slow
def test_model_names_are_fictional(catalog):
    models = set(catalog["model"].dropna())
    assert len(models) >= 5
    assert any("-" in m for m in models)
    assert any(v.count(".") >= 2 for v in catalog["version"].dropna())
    for model in models:
        for real in REAL_MODEL_NAMES:
            assert real.lower() not in model.lower().replace("-", ""), model


# ----------------------------------------------------------------------- observations
@slow
def test_observation_files_have_the_real_layout(demo, shared_data):
    ours = next((demo / "obs").glob("DK-Sor_daily_aggregated_1997-2014_*.nc"))
    with netCDF4.Dataset(ours) as nc, netCDF4.Dataset(DKSOR_OBS) as real:
        assert nc.file_format == real.file_format
        assert {k: len(v) for k, v in nc.dimensions.items()} == {
            k: len(v) for k, v in real.dimensions.items()}
        assert set(nc.variables) == set(real.variables)
        for name, var in real.variables.items():
            mine = nc.variables[name]
            assert mine.dimensions == var.dimensions and mine.dtype == var.dtype, name
            assert set(mine.ncattrs()) == set(var.ncattrs()), name
            for attr in ("units", "calendar", "Fluxnet_name", "CMIP_short_name"):
                if attr in var.ncattrs():
                    assert mine.getncattr(attr) == var.getncattr(attr), (name, attr)
        assert nc["time"].units == real["time"].units
        assert set(real.ncattrs()) <= set(nc.ncattrs())
        assert "SYNTHETIC" in nc.getncattr("data_type")
        assert "SYNTHETIC" in nc.getncattr("comment")
        nc.set_auto_mask(False)
        raw = nc["NEE_daily"][:]
        assert np.all((raw == np.float32(1e20)) | (np.abs(raw) < 100))
        assert np.isclose(nc["latitude"][0], real["latitude"][0])


@slow
def test_observations_open_and_have_the_flux_sign(demo, observations, sites):
    assert len(observations) == 30
    for site, ds in observations.items():
        assert set(ds.data_vars) == {"NEE", "NEE_unc", "Qle", "Qle_unc", "Qh", "Qh_unc"}
        for var in ("NEE", "Qle", "Qh"):
            v, u = ds[var].values, ds[f"{var}_unc"].values
            assert np.array_equal(np.isfinite(v), np.isfinite(u)), (site, var)
            assert np.all(u[np.isfinite(u)] > 0)
        assert float(ds["lat"]) == pytest.approx(sites.loc[site, "lat"])
    # northern forests: NEE (positive to the atmosphere) is negative in summer, positive in winter
    for site in ("DK-Sor", "DE-Tha", "FI-Hyy", "US-Ha1", "US-UMB"):
        nee = observations[site]["NEE"].to_series().dropna()
        summer = nee[nee.index.month.isin([6, 7, 8])]
        winter = nee[nee.index.month.isin([12, 1, 2])]
        assert len(summer) >= MIN_N and summer.mean() < -0.5, site
        assert winter.mean() > 0, site
        # the latent heat flux peaks in summer
        qle = observations[site]["Qle"].to_series().dropna()
        assert qle[qle.index.month.isin([6, 7, 8])].mean() > 2 * qle[
            qle.index.month.isin([12, 1, 2])].mean()


@slow
def test_valid_fractions_like_the_real_files(observations):
    for site, frac in REAL_NEE_VALID.items():
        nee = observations[site]["NEE"].values
        assert np.mean(np.isfinite(nee)) == pytest.approx(frac, abs=0.006), site
    # sparse sites stay sparse (but not empty)
    for site in ("US-Ton", "CH-Dav", "DE-Hai", "IT-Lav"):
        n = int(np.isfinite(observations[site]["NEE"].values).sum())
        assert 1 <= n <= 0.03 * observations[site].sizes["time"], site
    assert int(np.isfinite(observations["US-Ton"]["NEE"].values).sum()) < 40
    # validation sites: ~0.2-0.4 NEE, ~0.5-0.9 Qle/Qh (AU-How follows its real file)
    for site in ("AU-Tum", "US-Ha1", "US-Me2", "CH-Cha", "US-UMB"):
        ds = observations[site]
        assert 0.18 <= np.mean(np.isfinite(ds["NEE"].values)) <= 0.42
        for var in ("Qle", "Qh"):
            assert 0.5 <= np.mean(np.isfinite(ds[var].values)) <= 0.92


@slow
def test_gaps_come_in_runs_and_more_in_winter(observations, sites):
    persistence, winter_less = [], []
    for site, ds in observations.items():
        for var in ("NEE", "Qle", "Qh"):
            ok = np.isfinite(ds[var].values)
            p = ok.mean()
            if 0.1 < p < 0.9:
                # P(valid today | valid yesterday) > P(valid): gaps and valid days cluster
                persistence.append(ok[1:][ok[:-1]].mean() - p)
        if sites.loc[site, "lat"] > 35:
            ok = pd.Series(np.isfinite(ds["Qle"].values), index=ds["time"].values)
            winter_less.append(ok[ok.index.month.isin([12, 1, 2])].mean()
                               < ok[ok.index.month.isin([6, 7, 8])].mean())
    assert np.mean(np.array(persistence) > 0.05) > 0.9
    assert np.mean(winter_less) > 0.8


@slow
def test_uncertainties_have_real_magnitudes(observations, shared_data):
    from loaders.readers import open_observations as read_real

    real = read_real(DKSOR_OBS)
    ours = observations["DK-Sor"]
    for var in ("NEE", "Qle", "Qh"):
        ratio = np.nanmedian(ours[f"{var}_unc"].values) / np.nanmedian(real[f"{var}_unc"].values)
        assert 0.3 < ratio < 3.0, var
        # day-to-day variability of the same order as the real record
        sd_ratio = np.nanstd(ours[var].values) / np.nanstd(real[var].values)
        assert 0.3 < sd_ratio < 3.0, var


@slow
def test_uncertainty_magnitudes_across_sites(observations):
    medians = {v: np.median([np.nanmedian(ds[f"{v}_unc"].values) for s, ds in observations.items()
                             if np.isfinite(ds[f"{v}_unc"].values).any()])
               for v in ("NEE", "Qle", "Qh")}
    assert 0.03 < medians["NEE"] < 0.6 and 1.0 < medians["Qle"] < 15 and 1.5 < medians["Qh"] < 20


# ------------------------------------------------------------------------------ site runs
@slow
def test_site_runs_open_and_cover_the_observed_days(demo, observations, sites):
    for model_id, (scenarios, _, calendar, ensemble, _) in MODELS.items():
        for site in ("DK-Sor", "US-Ha1"):
            role = sites.loc[site, "role"]
            obs = observations[site]
            for scen, stage in [(1, "Prior")] + [(s, "Posterior") for s in scenarios]:
                ds = open_site_run(_run(demo, model_id, scen, site, role, stage))
                assert ds.attrs["Model"] == model_id
                assert ds.attrs["Cal_Val"] == {"Cal": "Calibration", "Val": "Validation"}[role]
                assert ds.attrs["Calibration_stage"] == stage
                assert ds.attrs["calendar"] == calendar
                assert ds["time"].values[0] == obs["time"].values[0]
                assert ds["time"].values[-1] == obs["time"].values[-1]
                assert float(ds["lat"]) == pytest.approx(sites.loc[site, "lat"])
                assert float(ds["lon"]) == pytest.approx(sites.loc[site, "lon"])
                for var in TABLE3:
                    assert var in ds, (model_id, var)
                    assert np.isfinite(ds[var].values).mean() > 0.99, (model_id, var)
                leap = [d for d in pd.date_range(obs["time"].values[0], obs["time"].values[-1])
                        if d.month == 2 and d.day == 29]
                if calendar == "noleap":
                    assert ds.attrs["missing_dates"] == [d.strftime("%Y-%m-%d") for d in leap]
                else:
                    assert ds.attrs["missing_dates"] == []
                unc = {v for v in ds.data_vars if v.endswith("_post_unc")}
                optimised = {{"NEE": "nep", "Qle": "hfls", "Qh": "hfss"}[v]
                             for v in SCENARIO_VARIABLES[scen]}
                if stage == "Prior":
                    assert not unc and "member" not in ds.dims
                elif ensemble:
                    assert not unc and 10 <= ds.sizes["member"] <= 20
                    assert float(ds["NEE"].std("member").mean()) > 0
                else:
                    assert unc == {f"{v}_post_unc" for v in optimised}
                    assert all(np.nanmin(ds[v].values) >= 0 for v in unc)


@slow
def test_site_run_layout_follows_the_template(demo, shared_data):
    from tests.conftest import TEMPLATE

    path = _run(demo, "TERRA-TOY.v1.4.2", 1, "DK-Sor", "Cal", "Prior")
    with netCDF4.Dataset(path) as nc, netCDF4.Dataset(TEMPLATE) as tpl:
        assert nc.file_format == "NETCDF4"
        assert nc["lat"].ndim == 0 and nc["lon"].ndim == 0
        assert nc["latitude"].dimensions == ("lat",) and nc["longitude"].dimensions == ("lon",)
        assert nc["time"].units == "days since 1996-12-31 00:00" == tpl["time"].units
        assert np.array_equal(nc["time"][:], tpl["time"][:])
        for name in TABLE3:
            var = nc[name]
            assert var.dimensions == ("time", "lat", "lon") and var.dtype == np.float32
            assert var.units == TABLE3[name].units
            assert var.getncattr("coordinates") == "latitude longitude"
            assert var.filters()["zlib"] and 1 <= var.filters()["complevel"] <= 4
            assert float(var.getncattr("_FillValue")) == pytest.approx(1e38, rel=1e-6)
        for key in ("Model", "CalLMIP_Phase", "Calibration_Scenario", "Calibration_stage",
                    "Cal_Val"):
            assert key in nc.ncattrs() and key in tpl.ncattrs()
        assert nc.getncattr("CalLMIP_Phase") == "Phase1b"
        assert "SYNTHETIC" in nc.getncattr("comment")


@slow
def test_nep_is_positive_into_the_land(demo):
    ds = open_site_run(_run(demo, "MOSSGROVE.v1.1", 1, "DK-Sor", "Cal", "Posterior"))
    nep = ds["nep"].to_series()
    summer = nep[nep.index.month.isin([6, 7, 8])].mean()
    assert summer > 0
    assert np.allclose(ds["NEE"].values, -ds["nep"].values * 1000 * 86400)
    assert np.corrcoef(ds["nep"].values, ds["gpp"].values)[0, 1] > 0.3


# ------------------------------------------------------------- calibration consequences
@slow
def test_posterior_beats_prior_at_most_calibration_sites(improvements):
    cal = improvements[improvements["role"] == "Cal"]
    assert len(cal) > 150
    assert (cal["rmse_post"] < cal["rmse_prior"]).mean() > 0.6
    # every model improves on average at the calibration sites
    assert (cal.groupby("model")["improvement"].mean() > 0).all()


@slow
def test_validation_sites_improve_less_than_calibration_sites(improvements):
    mean = improvements.groupby("role")["improvement"].mean()
    assert mean["Val"] < mean["Cal"]
    assert mean["Cal"] > 0.05


@slow
def test_some_parameters_end_on_a_prior_bound(demo):
    tables = [read_parameters(p) for p in sorted((demo / "parameters").glob("*.csv"))]
    assert len(tables) == sum(len(spec[0]) for spec in MODELS.values())
    df = pd.concat(tables, ignore_index=True)
    width = df["prior_max"] - df["prior_min"]
    assert (width > 0).all()
    assert ((df["posterior_value"] >= df["prior_min"] - 1e-9)
            & (df["posterior_value"] <= df["prior_max"] + 1e-9)).all()
    position = (df["posterior_value"] - df["prior_min"]) / width
    edge = (position < 0.02) | (position > 0.98)
    assert edge.any()
    scen1 = df[df["scenario"] == 1]
    edge1 = edge[df["scenario"] == 1]
    assert scen1.loc[edge1, "model"].nunique() >= 2
    assert edge1.mean() < 0.5  # most parameters find an interior optimum
    # data constrain parameters: the posterior sd shrinks for most Scenario 1 parameters
    assert ((scen1["posterior_sd"] < 0.8 * scen1["prior_sd"]).mean()) > 0.6
    assert (df["sensitivity_rank"] >= 1).all()


@slow
def test_unconstrained_parameters_stay_at_their_prior(demo):
    """Scenario 2 (NEE only): the energy-balance parameters cannot move."""
    df = read_parameters(demo / "parameters" / "TERRA-TOY.v1.4.2_Phase1b_Scen2_parameters.csv")
    energy = df[df["process"].isin(["energy balance", "evapotranspiration"])]
    assert len(energy) >= 2
    assert np.allclose(energy["posterior_value"], energy["prior_value"])
    assert np.allclose(energy["posterior_sd"], energy["prior_sd"])
    carbon = df[df["process"] == "photosynthesis"]
    assert (carbon["posterior_sd"] < carbon["prior_sd"]).all()


@slow
def test_inter_model_spread_shrinks_where_the_data_constrain(raw_runs, sites):
    cal_sites = sorted({s for (_, s, _) in raw_runs if sites.loc[s, "role"] == "Cal"})
    reduction = {}
    for var in ("NEE", "Qle", "Qh", "lai"):
        values = []
        for site in cal_sites:
            spread = {}
            for stage in ("Prior", "Posterior"):
                members = [raw_runs[m, site, stage][var] for m in MODELS
                           if (m, site, stage) in raw_runs]
                frame = pd.concat(members, axis=1).dropna()
                spread[stage] = float(frame.std(axis=1, ddof=1).mean())
            values.append(1.0 - spread["Posterior"] / spread["Prior"])
        reduction[var] = float(np.mean(values))
    assert reduction["NEE"] > 0.1 and reduction["Qle"] > 0.2 and reduction["Qh"] > 0.2
    # LAI is not observed: its spread does not shrink
    assert reduction["lai"] < 0.05


# ----------------------------------------------------------------------------- global runs
@slow
def test_global_runs(demo):
    paths = sorted((demo / "global").glob("*.nc"))
    prior = open_global_run(next(p for p in paths if "TERRA-TOY" in p.name and "Prior" in p.name))
    post = open_global_run(next(p for p in paths
                                if "TERRA-TOY" in p.name and "Posterior" in p.name))
    other = open_global_run(next(p for p in paths
                                 if "BOREALIS" in p.name and "Prior" in p.name))
    assert dict(prior.sizes) == {"time": 24, "lat": 18, "lon": 36}
    assert list(pd.DatetimeIndex(prior["time"].values).month[:3]) == [1, 2, 3]
    for var in TABLE3:
        assert prior[var].attrs["units"] == TABLE3[var].units
    gpp = prior["gpp"].values
    land = np.isfinite(gpp[0])
    assert 0.15 < land.mean() < 0.45  # land only, ocean missing
    assert np.array_equal(np.isfinite(gpp).all(axis=0), land)
    # the tropics are more productive than the high latitudes
    lat = np.broadcast_to(prior["lat"].values[:, None], land.shape)
    mean_gpp = gpp.mean(axis=0)
    assert mean_gpp[land & (np.abs(lat) < 15)].mean() > mean_gpp[land & (np.abs(lat) > 55)].mean()
    # posterior - prior and inter-model differences are structured, not zero
    diff = (post["gpp"] - prior["gpp"]).mean("time").values[land]
    assert np.nanstd(diff) > 0 and np.nanmax(np.abs(diff)) > 1e-9
    assert np.nanmean(np.abs((other["gpp"] - prior["gpp"]).mean("time").values[land])) > 0


# ------------------------------------------------------------------------ protocol checker
@slow
def test_protocol_checker_finds_no_errors(demo, catalog):
    protocol = pytest.importorskip("loaders.protocol")
    keep_sites = {"DK-Sor", "US-Var", "AU-How", "US-Ha1", "IT-Noe"}
    paths = [p for p, kind, site in zip(catalog["path"], catalog["kind"], catalog["site"],
                                        strict=True)
             if kind != "site_run" or site in keep_sites]
    reports = protocol.check_paths(paths, obs_root=demo / "obs")
    assert len(reports) == len(paths)
    for report in reports:
        assert report.ok, (report.name, [e.message for e in report.errors])
        allowed = set(ALLOWED_WARNINGS.get(report.model or "", set()))
        if report.site == "US-Var" and report.kind == "site_run":
            allowed.add("no_observations")  # like the real archive, US-Var has no obs file
        codes = {w.code for w in report.warnings}
        assert codes <= allowed, (report.name, [w.message for w in report.warnings])
    by_model = {r.model: {w.code for w in r.warnings} for r in reports if r.kind == "site_run"}
    assert "v1_name" in by_model["ALDER"] and "calendar_noleap" in by_model["BOREALIS"]


# ---------------------------------------------------------------------------- determinism
SMALL = {"sites": ["DK-Sor", "US-Ha1"], "models": ["TERRA-TOY", "FENNEC"],
         "global_runs": False, "progress": False}


def _data_arrays(folder: Path) -> dict[str, np.ndarray]:
    out = {}
    for path in sorted(folder.rglob("*.nc")):
        with netCDF4.Dataset(path) as nc:
            nc.set_auto_mask(False)
            for name, var in nc.variables.items():
                out[f"{path.relative_to(folder)}:{name}"] = np.array(var[...])
    for path in sorted(folder.rglob("*.csv")):
        out[str(path.relative_to(folder))] = np.array(path.read_text())
    return out


def test_same_seed_same_data_other_seed_other_data(tmp_path):
    a = _data_arrays(generate_archive(tmp_path / "a", seed=3, **SMALL))
    b = _data_arrays(generate_archive(tmp_path / "b", seed=3, **SMALL))
    c = _data_arrays(generate_archive(tmp_path / "c", seed=4, **SMALL))
    assert a.keys() == b.keys() == c.keys()
    assert len(a) > 50
    for key in a:
        assert a[key].tobytes() == b[key].tobytes(), key
    differ = [k for k in a if k.endswith(":NEE_daily") or k.endswith(":nep")]
    assert differ and all(a[k].tobytes() != c[k].tobytes() for k in differ)


# ---------------------------------------------------------------------- arguments and cache
@pytest.mark.parametrize("kwargs, words", [
    ({"resolution": 0.7}, "divide 180"),
    ({"resolution": 50}, "between 0.25 and 10"),
    ({"years": (2010, 2001)}, "ascending"),
    ({"seed": -1}, "seed"),
    ({"sites": ["XX-Bad"]}, "XX-Bad"),
    ({"models": ["CLASSIC"]}, "CLASSIC"),
    ({"sites": ["US-Ha1"]}, "calibration site"),
])
def test_bad_arguments_give_a_clear_error(tmp_path, kwargs, words):
    with pytest.raises(DemoArchiveError, match=words):
        generate_archive(tmp_path / "x", progress=False, **kwargs)


def test_out_path_that_is_a_file(tmp_path):
    target = tmp_path / "file.txt"
    target.write_text("x")
    with pytest.raises(DemoArchiveError, match="not a folder"):
        generate_archive(target, progress=False)


def test_cli_reports_bad_arguments_without_traceback(tmp_path, capsys):
    from dashboard.cli import main

    assert main(["demo", "--out", str(tmp_path / "o"), "--resolution", "0.7"]) == 2
    err = capsys.readouterr().err
    assert "divide 180" in err and "Traceback" not in err


def _fake_generate(calls: list):
    def fake(out, seed=0, progress=True, **kwargs):
        calls.append(Path(out))
        (Path(out) / "obs").mkdir(parents=True, exist_ok=True)
        (Path(out) / "obs" / "marker.txt").write_text("demo")
        return Path(out)
    return fake


def test_ensure_demo_archive_generates_once_and_reuses(tmp_path, monkeypatch):
    calls: list = []
    target = tmp_path / "cache" / "demo"
    monkeypatch.setenv("CALLMIP_DEMO_DIR", str(target))
    monkeypatch.setattr(demo_archive, "generate_archive", _fake_generate(calls))
    first = demo_archive.ensure_demo_archive(progress=False)
    assert first == target
    assert (target / demo_archive.COMPLETE).read_text().strip() == demo_archive.GENERATOR_VERSION
    assert (target / "obs" / "marker.txt").exists()
    assert calls and calls[0] != target  # generated elsewhere, then moved into place
    second = demo_archive.ensure_demo_archive(progress=False)
    assert second == target and len(calls) == 1
    assert [p.name for p in target.parent.iterdir() if p.name.startswith(".demo.tmp")] == []


def test_ensure_demo_archive_replaces_an_incomplete_folder(tmp_path, monkeypatch):
    calls: list = []
    target = tmp_path / "demo"
    (target / "half").mkdir(parents=True)
    (target / demo_archive.COMPLETE).write_text("0-old-version")
    monkeypatch.setenv("CALLMIP_DEMO_DIR", str(target))
    monkeypatch.setattr(demo_archive, "generate_archive", _fake_generate(calls))
    assert demo_archive.ensure_demo_archive(progress=False) == target
    assert len(calls) == 1 and not (target / "half").exists()
    assert demo_archive.is_complete(target)


def test_ensure_demo_archive_never_replaces_foreign_data(tmp_path, monkeypatch):
    calls: list = []
    target = tmp_path / "mydata"
    target.mkdir()
    (target / "precious.nc").write_text("not a demo")
    monkeypatch.setenv("CALLMIP_DEMO_DIR", str(target))
    monkeypatch.setattr(demo_archive, "generate_archive", _fake_generate(calls))
    with pytest.raises(DemoArchiveError, match="holds no demo archive"):
        demo_archive.ensure_demo_archive(progress=False)
    assert not calls and (target / "precious.nc").read_text() == "not a demo"


def test_ensure_demo_archive_concurrent_callers_share_one_generation(tmp_path, monkeypatch):
    calls: list = []
    target = tmp_path / "demo"
    monkeypatch.setenv("CALLMIP_DEMO_DIR", str(target))
    monkeypatch.setattr(demo_archive, "generate_archive", _fake_generate(calls))
    results: list = []
    threads = [threading.Thread(target=lambda: results.append(
        demo_archive.ensure_demo_archive(progress=False))) for _ in range(4)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert results == [target] * 4 and len(calls) == 1


def test_default_cache_folder(monkeypatch):
    monkeypatch.delenv("CALLMIP_DEMO_DIR", raising=False)
    folder = demo_archive.demo_cache_dir()
    assert folder.name == f"demo-v{demo_archive.GENERATOR_VERSION}-seed0"
    assert "callmip-explorer" in str(folder)
