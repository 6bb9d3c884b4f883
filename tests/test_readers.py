"""Readers (loaders.readers) and the Archive, on the real files and on synthetic ones.

Expectations are computed independently: raw values read with ``netCDF4`` and converted with
numpy here, dates built with ``datetime``/``pandas``, never taken from the reader's own output.
"""

from __future__ import annotations

import datetime as dt
import os
import re
from pathlib import Path

import netCDF4
import numpy as np
import pandas as pd
import pytest
import xarray as xr

from loaders.archive import Archive, clear_cache
from loaders.readers import (
    CalLMIPFileError,
    decode_daily_time,
    open_global_run,
    open_observations,
    open_site_run,
    read_parameters,
)
from tests.conftest import DKSOR_OBS, OBS_DIR, PHASE1A_OBS, TEMPLATE
from tests.synthetic import (
    HALF_HOURS,
    PARAMETER_HEADER,
    TEMPLATE_UNITS,
    parameter_rows,
    write_daily_obs,
    write_garbage,
    write_global_run,
    write_parameters,
    write_phase1a_obs,
    write_plumber2_flux,
    write_site_run,
    write_truncated,
)

TABLE3_NAMES = sorted(TEMPLATE_UNITS)
KG_S_TO_G_D = 1000.0 * 86400.0  # written out here on purpose, not imported


def raw(path, name) -> np.ndarray:
    """A variable as stored, fill values → NaN, squeezed of size-1 spatial dims, float64."""
    with netCDF4.Dataset(str(path)) as nc:
        v = nc.variables[name]
        v.set_auto_mask(True)
        data = np.ma.filled(v[...].astype("f8"), np.nan)
    return np.asarray(data, dtype="f8").squeeze()


def day_range(start: str, end: str) -> pd.DatetimeIndex:
    return pd.date_range(start, end, freq="D")


@pytest.fixture(autouse=True)
def _fresh_archive_cache():
    clear_cache()
    yield
    clear_cache()


# =============================================================================================
# Real files
# =============================================================================================

def test_template_opens_with_dates_coordinates_and_attributes(shared_data):
    ds = open_site_run(TEMPLATE)
    assert list(ds.sizes) == ["time"]
    assert ds.sizes["time"] == 6574
    assert ds["time"].dtype == np.dtype("datetime64[ns]")
    expected = day_range("1997-01-01", "2014-12-31")
    assert len(expected) == 6574
    assert pd.DatetimeIndex(ds["time"].values).equals(expected)
    assert float(ds["lat"]) == pytest.approx(55.48, abs=0.01)
    assert float(ds["lon"]) == pytest.approx(11.64, abs=0.01)
    assert ds["lat"].ndim == 0 and ds["lon"].ndim == 0
    for var in TABLE3_NAMES:
        assert var in ds, var
    attrs = ds.attrs
    assert (attrs["model"], attrs["version"], attrs["scenario"], attrs["site"],
            attrs["cal_val"], attrs["stage"]) == ("CLASSIC", "v2", 1, "DK-Sor", "Cal", "Prior")
    assert attrs["calendar"] == "standard"
    assert attrs["missing_dates"] == []
    assert Path(attrs["path"]).name == TEMPLATE.name
    assert attrs["Model"] == "CLASSIC.v2"  # the file's own global attribute is kept


def test_template_nee_is_minus_nep_in_gC_per_day_from_raw_values(shared_data):
    ds = open_site_run(TEMPLATE)
    nep = raw(TEMPLATE, "nep")
    assert nep.shape == (6574,)
    np.testing.assert_allclose(ds["NEE"].values, -nep * KG_S_TO_G_D, rtol=1e-12)
    np.testing.assert_array_equal(ds["Qle"].values, raw(TEMPLATE, "hfls"))
    np.testing.assert_array_equal(ds["Qh"].values, raw(TEMPLATE, "hfss"))
    assert ds["NEE"].attrs["units"] == "gC m-2 d-1"
    assert ds["Qle"].attrs["units"] == "W m-2"
    # the template is a single run with no uncertainties
    assert not [v for v in ds.data_vars if v.endswith("_unc")]


def test_template_csoil_units_with_zero_width_space_are_accepted(shared_data):
    with netCDF4.Dataset(str(TEMPLATE)) as nc:
        written = nc.variables["cSoil"].units
    assert written.endswith("\u200b")  # the trap is really in the file
    ds = open_site_run(TEMPLATE)
    assert ds["cSoil"].attrs["units"] == "kg m-2"
    np.testing.assert_array_equal(ds["cSoil"].values, raw(TEMPLATE, "cSoil"))
    # lai is written "m2 m-2": same quantity as Table 3's "1", values unchanged
    assert ds["lai"].attrs["units"] == "1"
    np.testing.assert_array_equal(ds["lai"].values, raw(TEMPLATE, "lai"))


def _phase1b_obs_files() -> list:
    files = sorted(OBS_DIR.glob("*_daily_aggregated_*_FLUXNET2015_Flux.nc"))
    return files or [pytest.param(None, id="no-shared-data")]


@pytest.mark.parametrize("path", _phase1b_obs_files(),
                         ids=lambda p: p.name.split("_")[0] if isinstance(p, Path) else str(p))
def test_every_real_phase1b_obs_file_opens(shared_data, path):
    y0, y1 = (int(y) for y in re.search(r"_(\d{4})-(\d{4})_", path.name).groups())
    site = path.name.split("_")[0]
    ds = open_observations(path)
    expected = day_range(f"{y0}-01-01", f"{y1}-12-31")
    assert pd.DatetimeIndex(ds["time"].values).equals(expected)
    assert ds.attrs["site"] == site
    for var, source in (("NEE", "NEE_daily"), ("Qle", "Qle_daily"), ("Qh", "Qh_daily")):
        assert ds[var].dims == ("time",)
        np.testing.assert_array_equal(ds[var].values, raw(path, source))
        np.testing.assert_array_equal(ds[f"{var}_unc"].values,
                                      raw(path, source.replace("_daily", "_uc_daily")))
        assert np.isfinite(ds[var].values).any(), var
    assert ds["NEE"].attrs["units"] == "gC m-2 d-1"
    assert -90 <= float(ds["lat"]) <= 90 and -180 <= float(ds["lon"]) <= 360


def test_dksor_nee_sign_summer_uptake_winter_release(shared_data):
    ds = open_observations(DKSOR_OBS)
    month = pd.DatetimeIndex(ds["time"].values).month
    nee = ds["NEE"].values
    july, january = np.nanmean(nee[month == 7]), np.nanmean(nee[month == 1])
    assert july < 0 < january


def test_template_prior_has_the_observed_sign_convention(shared_data):
    # Same site, same dates: the model's derived NEE must have the sign of the observations
    # in the growing season (both negative in July).
    model = open_site_run(TEMPLATE)
    month = pd.DatetimeIndex(model["time"].values).month
    assert np.nanmean(model["NEE"].values[month == 7]) < 0
    assert np.nanmean(model["NEE"].values[month == 1]) > 0


def test_phase1a_file_with_time_x_dims_opens(shared_data):
    with netCDF4.Dataset(str(PHASE1A_OBS)) as nc:
        assert set(nc.dimensions) == {"time", "x"}
    ds = open_observations(PHASE1A_OBS)
    assert pd.DatetimeIndex(ds["time"].values).equals(day_range("1997-01-01", "2013-12-31"))
    np.testing.assert_array_equal(ds["NEE"].values, raw(PHASE1A_OBS, "NEE_daily"))
    assert float(ds["lat"]) == pytest.approx(55.49, abs=0.01)
    # the Phase 1a file is a cut of the Phase 1b one: same values on the same days
    full = open_observations(DKSOR_OBS).sel(time=ds["time"])
    for var in ("NEE", "NEE_unc", "Qle", "Qh_unc"):
        np.testing.assert_array_equal(ds[var].values, full[var].values)


# =============================================================================================
# Synthetic site runs
# =============================================================================================

def test_synthetic_template_layout_round_trips(tmp_path):
    path = write_site_run(tmp_path, start="2003-03-01", n_days=40, missing_days=[3, 7],
                          lat=-35.5, lon=148.25)
    ds = open_site_run(path)
    assert pd.DatetimeIndex(ds["time"].values).equals(day_range("2003-03-01", "2003-04-09"))
    assert (float(ds["lat"]), float(ds["lon"])) == (-35.5, 148.25)
    for var in TABLE3_NAMES:
        np.testing.assert_array_equal(ds[var].values, raw(path, var))
    # fill values (1e38) are missing values, in the derived variables too
    assert np.isnan(ds["NEE"].values[[3, 7]]).all()
    assert np.isfinite(np.delete(ds["NEE"].values, [3, 7])).all()


def test_noleap_run_has_feb29_as_nan_and_listed_missing(tmp_path):
    path = write_site_run(tmp_path, calendar="noleap", start="2000-01-01", n_days=730)
    ds = open_site_run(path)
    expected = day_range("2000-01-01", "2001-12-31")
    assert len(expected) == 731
    assert pd.DatetimeIndex(ds["time"].values).equals(expected)
    assert ds.attrs["missing_dates"] == ["2000-02-29"]
    assert ds.attrs["calendar"] == "noleap"
    feb29 = ds.sel(time="2000-02-29")
    for var in ("nep", "NEE", "Qle", "Qh", "cSoil"):
        assert np.isnan(float(feb29[var])), var
    # the other 730 days hold the file's values in order
    kept = ds.drop_sel(time=[np.datetime64("2000-02-29")])
    np.testing.assert_allclose(kept["NEE"].values, -raw(path, "nep") * KG_S_TO_G_D, rtol=1e-12)
    np.testing.assert_array_equal(kept["hfls"].values, raw(path, "hfls"))
    assert float(ds["hfls"].sel(time="2000-03-01")) == raw(path, "hfls")[59]


@pytest.mark.parametrize("dim", ["ensemble", "realization", "ens", "member"])
def test_ensemble_dimension_is_renamed_member(tmp_path, dim):
    path = write_site_run(tmp_path, stage="Posterior", ensemble=4, ensemble_dim=dim, n_days=30)
    ds = open_site_run(path)
    assert ds.sizes["member"] == 4
    assert dim == "member" or dim not in ds.dims
    assert ds["nep"].dims == ("member", "time")
    nep = raw(path, "nep")  # (member, time)
    assert nep.shape == (4, 30)
    np.testing.assert_allclose(ds["NEE"].transpose("member", "time").values,
                               -nep * KG_S_TO_G_D, rtol=1e-12)
    assert ds.attrs["has_ensemble"] is True


@pytest.mark.parametrize("suffix", ["post_unc", "uc"])
def test_posterior_uncertainty_becomes_nee_unc(tmp_path, suffix):
    path = write_site_run(tmp_path, stage="Posterior", uncertainty=suffix, n_days=60)
    ds = open_site_run(path)
    nep_unc = raw(path, f"nep_{suffix}")
    assert "nep_post_unc" in ds and "hfls_post_unc" in ds and "hfss_post_unc" in ds
    np.testing.assert_allclose(ds["NEE_unc"].values, np.abs(nep_unc) * KG_S_TO_G_D, rtol=1e-12)
    np.testing.assert_array_equal(ds["Qle_unc"].values, np.abs(raw(path, f"hfls_{suffix}")))
    np.testing.assert_array_equal(ds["Qh_unc"].values, np.abs(raw(path, f"hfss_{suffix}")))
    assert ds["NEE_unc"].attrs["units"] == "gC m-2 d-1"
    assert (ds["NEE_unc"].values > 0).all()


def test_scenario2_run_has_only_nee_uncertainty(tmp_path):
    path = write_site_run(tmp_path, scenario=2, stage="Posterior", uncertainty="post_unc",
                          n_days=10)
    ds = open_site_run(path)
    assert ds.attrs["scenario"] == 2
    assert "NEE_unc" in ds and "Qle_unc" not in ds and "Qh_unc" not in ds


def test_v1_named_run_opens_with_v1_fields(tmp_path):
    path = write_site_run(tmp_path, model="ORCHIDEE", version="v3", convention="v1",
                          stage="Temporal", n_days=10)
    assert path.name == "ORCHIDEE.v3_Expt1_DK-Sor_Cal_Temporal.nc"
    ds = open_site_run(path)
    assert (ds.attrs["model"], ds.attrs["stage"], ds.attrs["scenario"]) == \
        ("ORCHIDEE", "Temporal", 1)


def test_decode_daily_time_floors_midday_stamps():
    time = xr.DataArray([0.5, 1.5, 2.5], attrs={"units": "days since 2000-02-28 00:00:00"})
    got = decode_daily_time(time)
    assert list(got) == [pd.Timestamp("2000-02-28"), pd.Timestamp("2000-02-29"),
                         pd.Timestamp("2000-03-01")]


def test_decode_daily_time_without_since_is_a_clear_error():
    time = xr.DataArray([1.0], attrs={"units": "days"})
    with pytest.raises(CalLMIPFileError, match="since"):
        decode_daily_time(time, "X.nc")


# =============================================================================================
# Synthetic observations
# =============================================================================================

def test_synthetic_phase1b_daily_obs(tmp_path):
    path = write_daily_obs(tmp_path, site="FI-Hyy", year_start=2004, year_end=2005)
    ds = open_observations(path)
    assert pd.DatetimeIndex(ds["time"].values).equals(day_range("2004-01-01", "2005-12-31"))
    assert ds.attrs["site"] == "FI-Hyy"
    for var in ("NEE", "Qle", "Qh"):
        expected = raw(path, f"{var}_daily")
        assert np.isnan(expected).mean() == pytest.approx(0.3, abs=0.06)  # fills really there
        np.testing.assert_array_equal(ds[var].values, expected)
        np.testing.assert_array_equal(ds[f"{var}_unc"].values, raw(path, f"{var}_uc_daily"))


def test_synthetic_phase1a_obs(tmp_path):
    path = write_phase1a_obs(tmp_path, year_start=1997, year_end=1997)
    ds = open_observations(path)
    assert ds.sizes["time"] == 365
    np.testing.assert_array_equal(ds["Qh"].values, raw(path, "Qh_daily"))


def _expected_plumber2_daily(path, with_unc: bool) -> dict[str, np.ndarray]:
    """Independent daily aggregation of a half-hourly PLUMBER2 file (the CalLMIP rules)."""
    out = {}
    scale = 1e-6 * 12.0 * 1800.0  # umol m-2 s-1 over a half hour → gC m-2 (12 g/mol C)
    for var, unc in (("NEE", "NEE_uc"), ("Qle", "Qle_cor_uc"), ("Qh", "Qh_cor_uc")):
        values = raw(path, var).reshape(-1, HALF_HOURS)
        qc = raw(path, f"{var}_qc").reshape(-1, HALF_HOURS)
        rejected = (qc > 0).sum(axis=1) / HALF_HOURS > 0.25
        if var == "NEE":
            daily = values.sum(axis=1) * scale
        else:
            daily = values.mean(axis=1)
        out[var] = np.where(rejected, np.nan, daily)
        if with_unc:
            u = raw(path, unc).reshape(-1, HALF_HOURS)
            rss = np.sqrt((u ** 2).sum(axis=1))
            daily_unc = rss * scale if var == "NEE" else rss / HALF_HOURS
            out[f"{var}_unc"] = np.where(rejected, np.nan, daily_unc)
        out[f"{var}_rejected"] = rejected
    return out


def test_plumber2_original_is_aggregated_to_callmip_daily_values(tmp_path):
    path = write_plumber2_flux(tmp_path, site="AU-Tum", year_start=2002, year_end=2002)
    assert path.name == "AU-Tum_2002-2002_FLUXNET2015_Flux.nc"
    ds = open_observations(path)
    assert pd.DatetimeIndex(ds["time"].values).equals(day_range("2002-01-01", "2002-12-31"))
    assert ds.attrs["site"] == "AU-Tum"
    assert ds.attrs["collection"] == "FLUXNET2015"
    expected = _expected_plumber2_daily(path, with_unc=True)
    for var in ("NEE", "NEE_unc", "Qle", "Qle_unc", "Qh", "Qh_unc"):
        np.testing.assert_allclose(ds[var].values, expected[var], rtol=1e-6, err_msg=var)
    # the 25 % rule at its boundary: 12 of 48 gap-filled is kept, 13 of 48 is rejected
    for var in ("NEE", "Qle", "Qh"):
        assert np.isfinite(ds[var].values[0]) and np.isnan(ds[var].values[1]), var
        assert 0.1 < expected[f"{var}_rejected"].mean() < 0.9  # both kinds of day occur
    assert ds["NEE"].attrs["units"] == "gC m-2 d-1"
    assert float(ds["lat"]) == pytest.approx(-35.6566, abs=1e-4)


def test_plumber2_nee_sign_and_magnitude(tmp_path):
    # a constant 1 umol m-2 s-1 source on a complete, measured day is
    # 1e-6 mol/umol * 12.0 g/mol * 86400 s = 1.0368 gC m-2 d-1 (12.0 as in the official files)
    path = write_plumber2_flux(tmp_path, n_days=3, gapfilled_steps=[0, 0, 0])
    with netCDF4.Dataset(str(path), "a") as nc:
        nc.variables["NEE"][:] = 1.0
    ds = open_observations(path)
    np.testing.assert_allclose(ds["NEE"].values, [1.0368] * 3, rtol=1e-7)


def test_ozflux_without_uncertainties_has_no_unc(tmp_path):
    path = write_plumber2_flux(tmp_path, collection="OzFlux", n_days=40)
    assert path.name == "AU-Tum_2002-2002_OzFlux_Flux.nc"
    ds = open_observations(path)
    assert not [v for v in ds.data_vars if v.endswith("_unc")]
    assert ds.attrs["collection"] == "OzFlux"
    expected = _expected_plumber2_daily(path, with_unc=False)
    for var in ("NEE", "Qle", "Qh"):
        np.testing.assert_allclose(ds[var].values, expected[var], rtol=1e-6, err_msg=var)


# =============================================================================================
# Synthetic global runs
# =============================================================================================

def test_global_run_is_lazy_and_recentred(tmp_path):
    import dask.array as da

    path = write_global_run(tmp_path, uncertainty=True)
    ds = open_global_run(path)
    for var in ("nep", "gpp", "hfls", "nep_post_unc"):
        assert isinstance(ds[var].data, da.Array), var
        assert ds[var].dims == ("time", "lat", "lon")
    lon = ds["lon"].values
    assert (lon >= -180).all() and (lon < 180).all()
    assert (np.diff(lon) > 0).all()
    assert (np.diff(ds["lat"].values) > 0).all()
    assert pd.DatetimeIndex(ds["time"].values).equals(
        pd.date_range("2001-01-01", "2002-12-01", freq="MS"))
    # values follow their coordinates: file lon 185 E (index 18), lat 85 N (index 0)
    file_nep = raw(path, "nep")  # (time, lat, lon) as written, lon 5..355, lat 85..-85
    with netCDF4.Dataset(str(path)) as nc:
        file_lon = nc.variables["lon"][:]
        file_lat = nc.variables["lat"][:]
    i_lat = int(np.flatnonzero(file_lat == 85.0)[0])
    i_lon = int(np.flatnonzero(file_lon == 185.0)[0])
    got = ds["nep"].sel(lat=85.0, lon=-175.0).values
    np.testing.assert_allclose(got, file_nep[:, i_lat, i_lon], rtol=1e-7)
    # ocean cells stay missing
    ocean_lon = float(file_lon[(file_lon > 200) & (file_lon < 240)][0]) - 360.0
    assert np.isnan(ds["nep"].sel(lon=ocean_lon).values).all()
    assert ds.attrs["model"] == "JULES" and ds.attrs["stage"] == "Posterior"
    assert ds.attrs["resolution"] == "10deg" and ds.attrs["frequency"] == "monthly"


def test_global_ensemble_dimension_is_member(tmp_path):
    path = write_global_run(tmp_path, ensemble=3, ensemble_dim="realization", stage="Prior")
    ds = open_global_run(path)
    assert ds.sizes["member"] == 3
    assert "realization" not in ds.dims


# =============================================================================================
# Parameter tables
# =============================================================================================

def test_read_parameters_good_table(tmp_path):
    rows = parameter_rows(n=6, seed=3)
    path = write_parameters(tmp_path, model="CABLE-POP", version="v4.2", scenario=2, rows=rows)
    df = read_parameters(path)
    assert len(df) == 6
    assert list(df.columns[:3]) == ["model", "version", "scenario"]
    assert set(PARAMETER_HEADER) <= set(df.columns)
    assert (df["model"] == "CABLE-POP").all() and (df["version"] == "v4.2").all()
    assert (df["scenario"] == 2).all()
    assert df["parameter"].tolist() == [r["parameter"] for r in rows]
    for col in ("prior_value", "prior_min", "prior_max", "posterior_value", "posterior_sd",
                "sensitivity_rank"):
        assert df[col].dtype == np.float64, col
        np.testing.assert_allclose(df[col].values, [float(r[col]) for r in rows], err_msg=col)
    assert np.isnan(df.loc[1, "prior_sd"])  # an empty cell is unknown, not zero
    assert df.loc[1, "pft"] == "all"  # an empty PFT means all PFTs
    assert df.loc[0, "pft"] == "NET"


def test_read_parameters_adds_missing_optional_columns(tmp_path):
    rows = [{"parameter": "vcmax", "prior_value": "50", "posterior_value": "55.5"}]
    path = write_parameters(tmp_path, rows=rows,
                            columns=["parameter", "prior_value", "posterior_value"])
    df = read_parameters(path)
    assert set(PARAMETER_HEADER) <= set(df.columns)
    assert df.loc[0, "posterior_value"] == 55.5
    assert np.isnan(df.loc[0, "prior_min"])


def test_read_parameters_without_parameter_column(tmp_path):
    rows = [{"name": "vcmax", "prior_value": "50"}]
    path = write_parameters(tmp_path, rows=rows, columns=["name", "prior_value"])
    with pytest.raises(CalLMIPFileError) as info:
        read_parameters(path)
    message = str(info.value)
    assert path.name in message
    assert "'parameter'" in message


def test_read_parameters_text_in_numeric_column(tmp_path):
    rows = parameter_rows(n=4)
    rows[2]["prior_min"] = "about 3"
    path = write_parameters(tmp_path, rows=rows)
    with pytest.raises(CalLMIPFileError) as info:
        read_parameters(path)
    message = str(info.value)
    assert path.name in message
    assert "prior_min" in message
    assert "about 3" in message
    assert "row 4" in message  # header is row 1, so the third data row is row 4


@pytest.mark.parametrize("content", [b"", b"\x00\x01\x02\xff\xfe binary"])
def test_read_parameters_unreadable_csv(tmp_path, content):
    path = write_garbage(tmp_path / "CABLE-POP.v4.2_Phase1b_Scen1_parameters.csv", content)
    with pytest.raises(CalLMIPFileError) as info:
        read_parameters(path)
    assert path.name in str(info.value)


# =============================================================================================
# Broken files: always CalLMIPFileError, with the file name and the problem
# =============================================================================================

READERS = {
    "site_run": (open_site_run, "CLASSIC.v2_Phase1b_Scen1_DK-Sor_Cal_Prior.nc"),
    "observation": (open_observations, "DK-Sor_daily_aggregated_2000-2001_FLUXNET2015_Flux.nc"),
    "plumber2": (open_observations, "AU-Tum_2002-2002_FLUXNET2015_Flux.nc"),
    "global_run": (open_global_run, "JULES.v7.4_global_10deg_monthly_2001-2002_Posterior.nc"),
}

BROKEN = {
    "empty": (b"", "empty"),
    "text": (b"this is not a NetCDF file\n", "not a NetCDF file"),
    "html": (b"<html><body>404 Not Found</body></html>", "not a NetCDF file"),
    "cdf-header-garbage": (b"CDF\x01" + bytes(range(256)) * 4, ""),
    "hdf5-signature-garbage": (b"\x89HDF\r\n\x1a\n" + b"\x00" * 600, ""),
}


def _expect_file_error(reader, path, fragment: str = "") -> CalLMIPFileError:
    with pytest.raises(CalLMIPFileError) as info:
        ds = reader(path)
        if hasattr(ds, "load"):
            ds.load()  # lazy readers must fail on open, not later
    err = info.value
    assert Path(path).name in str(err)
    assert fragment in str(err)
    assert err.problem and err.path == str(path)
    return err


@pytest.mark.parametrize("kind", list(READERS))
@pytest.mark.parametrize("case", list(BROKEN))
def test_broken_files_raise_callmip_file_error(tmp_path, kind, case):
    reader, name = READERS[kind]
    content, fragment = BROKEN[case]
    path = write_garbage(tmp_path / name, content)
    _expect_file_error(reader, path, fragment)


@pytest.mark.parametrize("kind", list(READERS))
def test_missing_file_raises_callmip_file_error(tmp_path, kind):
    reader, name = READERS[kind]
    _expect_file_error(reader, tmp_path / name)


def _write_valid(kind: str, folder: Path) -> Path:
    if kind == "site_run":
        return write_site_run(folder, start="2000-01-01", n_days=731)
    if kind == "observation":
        return write_daily_obs(folder, year_start=2000, year_end=2001)
    if kind == "plumber2":
        return write_plumber2_flux(folder, year_start=2002, year_end=2002, n_days=30)
    return write_global_run(folder)


@pytest.mark.parametrize("fraction", [0.5, 0.02])
@pytest.mark.parametrize("kind", ["plumber2", "global_run"])
def test_truncated_netcdf4_raises_callmip_file_error(tmp_path, kind, fraction):
    reader, _ = READERS[kind]
    good = _write_valid(kind, tmp_path / "good")
    path = write_truncated(good, tmp_path / "cut" / good.name, fraction)
    _expect_file_error(reader, path)


@pytest.mark.parametrize("kind", ["site_run", "observation"])
def test_netcdf3_cut_inside_the_header_raises(tmp_path, kind):
    reader, _ = READERS[kind]
    good = _write_valid(kind, tmp_path / "good")
    path = write_truncated(good, tmp_path / "cut" / good.name, 0.01)
    _expect_file_error(reader, path)


@pytest.mark.parametrize("fraction", [0.9, 0.5])
@pytest.mark.parametrize("kind", ["site_run", "observation"])
def test_truncated_netcdf3_raises_callmip_file_error(tmp_path, kind, fraction):
    reader, _ = READERS[kind]
    good = _write_valid(kind, tmp_path / "good")
    path = write_truncated(good, tmp_path / "cut" / good.name, fraction)
    _expect_file_error(reader, path, "truncated")


def test_observation_file_without_flux_variables(tmp_path):
    path = tmp_path / "DK-Sor_daily_aggregated_2000-2000_FLUXNET2015_Flux.nc"
    with netCDF4.Dataset(path, "w", format="NETCDF3_64BIT_OFFSET") as nc:
        nc.createDimension("time", 3)
        t = nc.createVariable("time", "f8", ("time",))
        t.units = "seconds since 2000-01-01 00:00:00"
        t[:] = [0, 1800, 3600]
        nc.createVariable("Tair", "f4", ("time",))[:] = [280, 281, 282]
    _expect_file_error(open_observations, path, "NEE")


def test_site_run_with_unconvertible_units(tmp_path):
    path = write_site_run(tmp_path, n_days=5)
    with netCDF4.Dataset(path, "a") as nc:
        nc.variables["hfls"].units = "furlongs per fortnight"
    _expect_file_error(open_site_run, path, "hfls")


# =============================================================================================
# Archive
# =============================================================================================

def test_archive_opens_good_runs_and_records_the_broken_one(tmp_path):
    good = [write_site_run(tmp_path / "runs", stage=stage, seed=i, n_days=20)
            for i, stage in enumerate(("Prior", "Posterior"))]
    broken = write_garbage(tmp_path / "runs" / "BROKEN.v1_Phase1b_Scen1_DK-Sor_Cal_Prior.nc",
                           b"<html>502 Bad Gateway</html>")
    write_daily_obs(tmp_path / "obs", year_start=2000, year_end=2000)
    archive = Archive(tmp_path)
    assert sorted(archive.model_ids()) == ["BROKEN.v1", "CLASSIC.v2"]
    opened = {path: archive.open_run(path) for path in archive.site_runs["path"]}
    assert opened[str(broken)] is None
    for path in good:
        ds = opened[str(path)]
        assert isinstance(ds, xr.Dataset)
        np.testing.assert_allclose(ds["NEE"].values, -raw(path, "nep") * KG_S_TO_G_D,
                                   rtol=1e-12)
    assert list(archive.errors) == [str(broken)]
    assert broken.name in archive.errors[str(broken)]
    assert "not a NetCDF file" in archive.errors[str(broken)]
    obs = archive.open_observations("DK-Sor")
    assert isinstance(obs, xr.Dataset) and obs.sizes["time"] == 366


def test_archive_records_a_broken_observation_file(tmp_path):
    write_site_run(tmp_path, n_days=5)
    bad = write_garbage(tmp_path / "DK-Sor_daily_aggregated_2000-2001_FLUXNET2015_Flux.nc", b"")
    archive = Archive(tmp_path)
    assert archive.open_observations("DK-Sor") is None
    assert archive.open_observations("US-Ton") is None  # no file: no error either
    assert list(archive.errors) == [str(bad)]
    assert "empty" in archive.errors[str(bad)]


def _touch_runs(root: Path, names: list[str]) -> None:
    for name in names:
        write_garbage(root / name, b"")


def test_prior_row_uses_the_scenario_prior_or_falls_back_to_scen1(tmp_path):
    _touch_runs(tmp_path, [
        "CLASSIC.v2_Phase1b_Scen1_DK-Sor_Cal_Prior.nc",
        "CLASSIC.v2_Phase1b_Scen1_DK-Sor_Cal_Posterior.nc",
        "CLASSIC.v2_Phase1b_Scen2_DK-Sor_Cal_Posterior.nc",
        "CLASSIC.v2_Phase1b_Scen3_DK-Sor_Cal_Prior.nc",
        "CLASSIC.v2_Phase1b_Scen3_DK-Sor_Cal_Posterior.nc",
        "CLASSIC.v2_Phase1b_Scen2_US-Ton_Val_Posterior.nc",
        "JULES.v7_Phase1b_Scen1_DK-Sor_Cal_Prior.nc",
    ])
    archive = Archive(tmp_path)
    row = archive.prior_row("CLASSIC.v2", 2, "DK-Sor")
    assert Path(row["path"]).name == "CLASSIC.v2_Phase1b_Scen1_DK-Sor_Cal_Prior.nc"
    row = archive.prior_row("CLASSIC.v2", 3, "DK-Sor")
    assert Path(row["path"]).name == "CLASSIC.v2_Phase1b_Scen3_DK-Sor_Cal_Prior.nc"
    row = archive.prior_row("CLASSIC.v2", 1, "DK-Sor")
    assert Path(row["path"]).name == "CLASSIC.v2_Phase1b_Scen1_DK-Sor_Cal_Prior.nc"
    assert archive.prior_row("CLASSIC.v2", 2, "US-Ton") is None  # no prior at that site
    assert archive.prior_row("ORCHIDEE.v3", 1, "DK-Sor") is None  # no such model
    assert not archive.errors  # pairing never opens a file


def test_archive_cache_sees_a_file_replaced_in_place(tmp_path):
    path = write_site_run(tmp_path, n_days=5, seed=1)
    first = Archive(tmp_path).open_run(str(path))
    write_site_run(tmp_path, n_days=5, seed=2)
    # bump mtime explicitly so the test does not depend on the file system's time resolution
    stat = path.stat()
    os.utime(path, (stat.st_atime, stat.st_mtime + 10))
    second = Archive(tmp_path).open_run(str(path))
    assert not np.array_equal(first["nep"].values, second["nep"].values)
    np.testing.assert_array_equal(second["nep"].values, raw(path, "nep"))


def test_dates_of_synthetic_obs_match_name_years(tmp_path):
    path = write_daily_obs(tmp_path, year_start=2008, year_end=2008)
    ds = open_observations(path)
    assert ds.sizes["time"] == (dt.date(2008, 12, 31) - dt.date(2008, 1, 1)).days + 1 == 366
