"""Tests of the protocol checker (loaders/protocol.py).

Real template copies are damaged one way at a time and must get the specific error code; small
synthetic files cover what the template cannot (ensembles, wrong dims, noleap calendars,
global runs, parameter tables).
"""

from __future__ import annotations

import json
import shutil
from pathlib import Path

import cftime
import netCDF4
import numpy as np
import pandas as pd
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from loaders.naming import parse_name
from loaders.netcdf3 import netcdf3_size_problem
from loaders.protocol import (
    CheckItem,
    CheckReport,
    check_file,
    check_paths,
    format_report,
)
from loaders.variables import TABLE3
from tests.conftest import DKSOR_OBS, OBS_DIR, PHASE1A_OBS, TEMPLATE

TEMPLATE_NAME = "CLASSIC.v2_Phase1b_Scen1_DK-Sor_Cal_Prior.nc"
DKSOR_LAT, DKSOR_LON = 55.48587, 11.64464  # assets/sites.csv
REPORT_KEYS = {"path", "ok", "kind", "model", "version", "scenario", "site", "cal_val", "stage",
               "errors", "warnings"}


# ---------------------------------------------------------------------------------------------
# helpers
# ---------------------------------------------------------------------------------------------

@pytest.fixture
def template(shared_data: Path, tmp_path: Path) -> Path:
    """A writable copy of the real template, with its real name."""
    dst = tmp_path / TEMPLATE_NAME
    shutil.copyfile(TEMPLATE, dst)
    return dst


def copy_as(src: Path, name: str, **global_attrs: str) -> Path:
    dst = src.parent / name
    shutil.copyfile(src, dst)
    if global_attrs:
        with netCDF4.Dataset(dst, "a") as nc:
            nc.setncatts(global_attrs)
    return dst


def rewrite(src: Path, dst: Path, drop: tuple[str, ...] = (), n_time: int | None = None) -> Path:
    """Copy a NetCDF file variable by variable, leaving out ``drop`` / cutting the time axis."""
    with netCDF4.Dataset(src) as a, netCDF4.Dataset(dst, "w", format=a.data_model) as b:
        b.setncatts({k: a.getncattr(k) for k in a.ncattrs()})
        for name, dim in a.dimensions.items():
            size = n_time if (name == "time" and n_time is not None) else len(dim)
            b.createDimension(name, None if dim.isunlimited() else size)
        for name, var in a.variables.items():
            if name in drop:
                continue
            fill = var.getncattr("_FillValue") if "_FillValue" in var.ncattrs() else None
            out = b.createVariable(name, var.dtype, var.dimensions, fill_value=fill)
            out.setncatts({k: var.getncattr(k) for k in var.ncattrs() if k != "_FillValue"})
            data = var[...]
            if var.dimensions[:1] == ("time",) and n_time is not None:
                data = data[:n_time]
            out[...] = data
    return dst


def edit(path: Path, fn) -> Path:
    with netCDF4.Dataset(path, "a") as nc:
        fn(nc)
    return path


def write_site_run(path: Path, *, start: str = "1997-01-01", end: str = "2014-12-31",
                   calendar: str = "standard", lat: float = DKSOR_LAT, lon: float = DKSOR_LON,
                   dims: tuple[str, str, str] = ("time", "lat", "lon"), nlat: int = 1,
                   ensemble: int = 0, attrs: dict | None = None, drop: tuple[str, ...] = (),
                   post_unc: tuple[str, ...] = ()) -> Path:
    """A small, protocol-conforming synthetic site run (seeded, plausible values)."""
    parsed = parse_name(path.name)
    days = pd.date_range(start, end, freq="D")
    if calendar in ("noleap", "365_day"):
        days = days[~((days.month == 2) & (days.day == 29))]
    n = len(days)
    rng = np.random.default_rng(0)
    season = np.sin(2 * np.pi * np.arange(n) / 365.0)
    with netCDF4.Dataset(path, "w", format="NETCDF4") as nc:
        nc.setncatts(attrs if attrs is not None else {
            "Model": parsed.model_id, "CalLMIP_Phase": parsed.phase,
            "Calibration_Scenario": f"Scen{parsed.scenario}",
            "Calibration_stage": parsed.stage,
            "Cal_Val": {"Cal": "Calibration", "Val": "Validation"}[parsed.cal_val]})
        nc.createDimension(dims[0], n)  # fixed size: contiguous, fast
        nc.createDimension(dims[1], nlat)
        nc.createDimension(dims[2], 1)
        if ensemble:
            nc.createDimension("member", ensemble)
        t = nc.createVariable("time", "f8", (dims[0],))
        t.units = f"days since {start} 00:00:00"
        t.calendar = calendar
        t[:] = np.arange(n, dtype="f8")
        for name, value, units in (("lat", lat, "degrees_north"), ("lon", lon, "degrees_east")):
            dim = dims[1] if name == "lat" else dims[2]
            v = nc.createVariable(name, "f8", (dim,))
            v.units = units
            v[:] = value + np.arange(len(nc.dimensions[dim])) * 0.5
        vdims = (("member",) if ensemble else ()) + dims
        shape = tuple(len(nc.dimensions[d]) for d in vdims)
        for spec in TABLE3.values():
            if spec.name in drop:
                continue
            lo, hi = spec.valid_min, spec.valid_max
            base = lo + (hi - lo) * (0.25 + 0.05 * season)
            noise = 1 + 0.01 * rng.standard_normal(shape)
            data = base.reshape((1,) * (len(shape) - 3) + (n, 1, 1)) * noise
            v = nc.createVariable(spec.name, "f8", vdims, fill_value=1e38)
            v.units = spec.units
            v[:] = data
        for name in post_unc:
            v = nc.createVariable(f"{name}_post_unc", "f8", vdims, fill_value=1e38)
            v.units = TABLE3[name].units
            v[:] = np.abs(nc[name][:]) * 0.1
    return path


def codes(report: CheckReport) -> tuple[list[str], list[str]]:
    return report.error_codes, report.warning_codes


def messages(report: CheckReport, code: str) -> str:
    return " | ".join(i.message for i in report.errors + report.warnings if i.code == code)


# ---------------------------------------------------------------------------------------------
# the real template
# ---------------------------------------------------------------------------------------------

def test_template_passes_with_the_csoil_units_warning_only(template: Path) -> None:
    with netCDF4.Dataset(template) as nc:  # the fact the warning is about
        assert nc["cSoil"].units == "kg m-2\u200b"
    report = check_file(template)
    assert report.ok, format_report(report)
    assert report.errors == []
    assert report.warning_codes == ["units_variant"]
    assert "cSoil" in report.warnings[0].message
    assert "\\u200b" in report.warnings[0].message  # the invisible character is shown
    assert (report.kind, report.model, report.version, report.scenario, report.site,
            report.cal_val, report.stage) == ("site_run", "CLASSIC", "v2", 1, "DK-Sor", "Cal",
                                              "Prior")


def test_report_dict_has_exactly_the_contract_keys(template: Path) -> None:
    d = check_file(template).to_dict()
    assert set(d) == REPORT_KEYS
    assert d["ok"] is True
    assert all(set(w) == {"code", "message"} for w in d["warnings"])
    json.dumps(d)  # serialisable


# ---------------------------------------------------------------------------------------------
# unreadable files
# ---------------------------------------------------------------------------------------------

def test_truncated_netcdf3_is_unreadable(template: Path, tmp_path: Path) -> None:
    data = template.read_bytes()
    bad = tmp_path / "cut" / TEMPLATE_NAME
    bad.parent.mkdir()
    bad.write_bytes(data[: len(data) // 2])
    # the netCDF library itself reads the truncated file silently (zeros), so the size matters
    with netCDF4.Dataset(bad) as nc:
        assert float(np.ma.filled(nc["reco"][-1], np.nan).ravel()[0]) == 0.0
    report = check_file(bad)
    assert report.error_codes == ["unreadable"]
    assert "truncated" in report.errors[0].message
    assert str(len(data) // 2) in report.errors[0].message
    assert str(len(data)) in report.errors[0].message


def test_complete_netcdf3_files_have_no_size_problem(shared_data: Path) -> None:
    for path in [TEMPLATE, *sorted(OBS_DIR.glob("*.nc"))]:
        assert netcdf3_size_problem(path) is None, path


def test_truncated_netcdf4_is_unreadable(shared_data: Path, tmp_path: Path) -> None:
    data = PHASE1A_OBS.read_bytes()
    bad = tmp_path / PHASE1A_OBS.name
    bad.write_bytes(data[:50_000])
    report = check_file(bad)
    assert report.error_codes == ["unreadable"]
    assert bad.name in report.errors[0].message


def test_empty_file_is_unreadable(tmp_path: Path) -> None:
    bad = tmp_path / TEMPLATE_NAME
    bad.write_bytes(b"")
    report = check_file(bad)
    assert report.error_codes == ["unreadable"]
    assert "empty" in report.errors[0].message and TEMPLATE_NAME in report.errors[0].message


def test_text_file_renamed_nc_is_unreadable(tmp_path: Path) -> None:
    bad = tmp_path / TEMPLATE_NAME
    bad.write_text("time,nep\n1,0.5\n")
    report = check_file(bad)
    assert report.error_codes == ["unreadable"]
    assert "not a NetCDF file" in report.errors[0].message


def test_missing_file_is_unreadable(tmp_path: Path) -> None:
    report = check_paths([tmp_path / TEMPLATE_NAME])[0]
    assert report.error_codes == ["unreadable"]


@settings(max_examples=30, deadline=None, suppress_health_check=[HealthCheck.too_slow,
                                                                 HealthCheck.function_scoped_fixture])
@given(head=st.sampled_from([b"CDF\x01", b"CDF\x02", b"\x89HDF\r\n\x1a\n", b""]),
       body=st.binary(max_size=400))
def test_garbage_never_raises(tmp_path: Path, head: bytes, body: bytes) -> None:
    path = tmp_path / TEMPLATE_NAME
    path.write_bytes(head + body)
    report = check_file(path)
    assert not report.ok
    assert "internal" not in report.error_codes


# ---------------------------------------------------------------------------------------------
# name and global attributes
# ---------------------------------------------------------------------------------------------

def test_unrecognised_name(template: Path) -> None:
    bad = copy_as(template, "CLASSIC_v2_Scen1_DK-Sor.nc")
    report = check_file(bad)
    assert report.error_codes == ["name"]
    assert report.kind == "unrecognised"
    assert parse_name(bad.name).reason in report.errors[0].message


def test_v1_name_is_a_warning_and_attributes_only_warn(template: Path) -> None:
    v1 = copy_as(template, "CLASSIC.v2_Expt1_DK-Sor_Cal_Posterior.nc")
    with netCDF4.Dataset(v1, "a") as nc:  # v1 Posterior file without uncertainties
        nc.delncattr("Model")
    report = check_file(v1)
    errors, warns = codes(report)
    assert "v1_name" in warns
    assert "CLASSIC.v2_Phase1b_Scen1_DK-Sor_Cal_Posterior.nc" in messages(report, "v1_name")
    assert "attribute_missing" in warns  # Model
    assert "attribute_mismatch" in warns  # Calibration_stage says Prior
    assert "attribute_missing" not in errors and "attribute_mismatch" not in errors
    assert errors == ["uncertainty_missing"] * 3


def test_stage_attribute_disagreeing_with_name(template: Path) -> None:
    edit(template, lambda nc: nc.setncattr("Calibration_stage", "Posterior"))
    report = check_file(template)
    assert report.error_codes == ["attribute_mismatch"]
    msg = report.errors[0].message
    assert "Calibration_stage" in msg and "'Posterior'" in msg and "'Prior'" in msg


def test_missing_model_attribute(template: Path) -> None:
    edit(template, lambda nc: nc.delncattr("Model"))
    report = check_file(template)
    assert report.error_codes == ["attribute_missing"]
    assert "Model" in report.errors[0].message and "CLASSIC.v2" in report.errors[0].message


@pytest.mark.parametrize("key,value", [("CalLMIP_Phase", "Phase1a"),
                                       ("Calibration_Scenario", "Scen2"),
                                       ("Cal_Val", "Validation"),
                                       ("Model", "CLASSIC.v3")])
def test_each_attribute_is_compared_with_the_name(template: Path, key: str, value: str) -> None:
    edit(template, lambda nc: nc.setncattr(key, value))
    report = check_file(template)
    assert report.error_codes == ["attribute_mismatch"]
    assert key in report.errors[0].message and repr(value) in report.errors[0].message


def test_attribute_with_trailing_space_is_a_variant(template: Path) -> None:
    edit(template, lambda nc: nc.setncattr("Cal_Val", "Calibration "))
    report = check_file(template)
    assert report.ok
    assert "attribute_variant" in report.warning_codes


def test_long_attribute_value_is_truncated(template: Path) -> None:
    edit(template, lambda nc: nc.setncattr("Model", "<b>" + "X" * 5000))
    report = check_file(template)
    msg = messages(report, "attribute_mismatch")
    assert "5003 characters" in msg
    assert len(msg) < 400
    assert "<b>" in msg  # plain text: escaping is the view's job


# ---------------------------------------------------------------------------------------------
# variables
# ---------------------------------------------------------------------------------------------

def test_missing_required_variable(template: Path, tmp_path: Path) -> None:
    (tmp_path / "x").mkdir()
    out = rewrite(template, tmp_path / "x" / TEMPLATE_NAME, drop=("gpp",))
    report = check_file(out)
    assert report.error_codes == ["variable_missing"]
    assert "gpp" in report.errors[0].message


def test_rewrite_without_change_still_passes(template: Path, tmp_path: Path) -> None:
    (tmp_path / "x").mkdir()
    out = rewrite(template, tmp_path / "x" / TEMPLATE_NAME)
    assert check_file(out).ok


def test_missing_hfg_is_only_a_warning(template: Path, tmp_path: Path) -> None:
    (tmp_path / "x").mkdir()
    out = rewrite(template, tmp_path / "x" / TEMPLATE_NAME, drop=("hfg",))
    report = check_file(out)
    assert report.ok
    assert "optional_missing" in report.warning_codes
    assert "hfg" in messages(report, "optional_missing")


def test_case_mismatch_hint(tmp_path: Path) -> None:
    path = write_site_run(tmp_path / TEMPLATE_NAME)
    with netCDF4.Dataset(path, "a") as nc:
        nc.renameVariable("cSoil", "csoil")
    report = check_file(path, sites=None)
    assert "variable_missing" in report.error_codes
    assert "'csoil'" in messages(report, "variable_missing")


@pytest.mark.parametrize("units,severity,code", [
    ("W/m2", "warning", "units_variant"),
    ("W m-2 ", "warning", "units_variant"),
    ("kg m-2", "error", "units"),
    ("", "error", "units"),
])
def test_units_of_hfls(template: Path, units: str, severity: str, code: str) -> None:
    edit(template, lambda nc: nc["hfls"].setncattr("units", units))
    report = check_file(template)
    items = report.errors if severity == "error" else report.warnings
    assert code in [i.code for i in items]
    assert "hfls" in messages(report, code)
    assert report.ok == (severity == "warning")


def test_missing_units_attribute(template: Path) -> None:
    edit(template, lambda nc: nc["ts"].delncattr("units"))
    report = check_file(template)
    assert report.error_codes == ["units"]
    assert "ts" in report.errors[0].message


def test_lai_may_be_m2_per_m2_or_1(tmp_path: Path) -> None:
    path = write_site_run(tmp_path / TEMPLATE_NAME)
    assert "lai" not in messages(check_file(path), "units")  # written "1"
    edit(path, lambda nc: nc["lai"].setncattr("units", "m2 m-2"))
    report = check_file(path)
    assert report.ok and report.warnings == []


def test_all_missing_variable(template: Path) -> None:
    def blank(nc):
        nc["hfss"][:] = np.ma.masked_all(nc["hfss"].shape)

    report = check_file(edit(template, blank))
    assert report.error_codes == ["all_missing"]
    assert "hfss" in report.errors[0].message


@pytest.mark.parametrize("fraction,severe", [(0.05, True), (0.005, False)])
def test_out_of_range(template: Path, fraction: float, severe: bool) -> None:
    with netCDF4.Dataset(template) as nc:
        n = nc["ts"].shape[0]
    k = int(n * fraction)

    def heat(nc):
        values = nc["ts"][:]
        values[:k] = 400.0  # K: above the 360 K bound
        nc["ts"][:] = values

    report = check_file(edit(template, heat))
    assert report.ok != severe
    assert "out_of_range" in (report.error_codes if severe else report.warning_codes)
    assert f"{k} of {n}" in messages(report, "out_of_range")


def test_nep_written_as_nee_gets_a_sign_warning(template: Path) -> None:
    def flip(nc):
        nc["nep"][:] = -nc["nep"][:]

    edit(template, flip)
    with netCDF4.Dataset(template) as nc:
        r = np.corrcoef(nc["nep"][:].ravel(), nc["gpp"][:].ravel())[0, 1]
    assert r < -0.5  # the premise, computed independently
    report = check_file(template)
    assert report.ok
    assert "nep_sign" in report.warning_codes


def test_correct_nep_sign_is_quiet(template: Path) -> None:
    assert "nep_sign" not in check_file(template).warning_codes


# ---------------------------------------------------------------------------------------------
# dims and coordinates
# ---------------------------------------------------------------------------------------------

def test_xy_dims_are_an_error(tmp_path: Path) -> None:
    path = write_site_run(tmp_path / TEMPLATE_NAME, dims=("time", "y", "x"))
    report = check_file(path)
    assert "dims" in report.error_codes
    assert "(time, y, x)" in messages(report, "dims")


def test_more_than_one_cell_is_an_error(tmp_path: Path) -> None:
    path = write_site_run(tmp_path / TEMPLATE_NAME, nlat=2)
    report = check_file(path)
    assert "dims" in report.error_codes
    assert "lat has size 2" in messages(report, "dims")


def test_missing_coordinates(tmp_path: Path) -> None:
    (tmp_path / "src").mkdir()
    path = write_site_run(tmp_path / "src" / TEMPLATE_NAME)
    out = rewrite(path, tmp_path / TEMPLATE_NAME, drop=("lat", "lon"))
    report = check_file(out)
    assert report.error_codes == ["coordinates_missing"]
    assert "lat or lon" in report.errors[0].message


def test_synthetic_file_passes(tmp_path: Path) -> None:
    path = write_site_run(tmp_path / TEMPLATE_NAME)
    report = check_file(path)
    assert report.ok and report.warnings == [], format_report(report)


@pytest.mark.parametrize("shift,severe", [(0.05, None), (0.5, False), (5.0, True)])
def test_coordinates_against_site_table(template: Path, shift: float, severe) -> None:
    edit(template, lambda nc: nc["lat"].assignValue(55.4849 + shift))
    report = check_file(template)
    if severe is None:
        assert "coordinates" not in report.error_codes + report.warning_codes
    else:
        assert "coordinates" in (report.error_codes if severe else report.warning_codes)
        assert "DK-Sor" in messages(report, "coordinates")


def test_unknown_site_and_role(template: Path) -> None:
    unknown = copy_as(template, "CLASSIC.v2_Phase1b_Scen1_XX-Abc_Cal_Prior.nc")
    report = check_file(unknown)
    assert report.ok and "unknown_site" in report.warning_codes
    val = copy_as(template, "CLASSIC.v2_Phase1b_Scen1_DK-Sor_Val_Prior.nc", Cal_Val="Validation")
    report = check_file(val)
    assert report.ok and "role" in report.warning_codes
    assert "calibration site" in messages(report, "role")


# ---------------------------------------------------------------------------------------------
# time
# ---------------------------------------------------------------------------------------------

def test_365_day_calendar_on_a_real_calendar_axis_is_a_time_span_error(template: Path) -> None:
    edit(template, lambda nc: nc["time"].setncattr("calendar", "365_day"))
    with netCDF4.Dataset(template) as nc:
        last = cftime.num2date(float(nc["time"][-1]), nc["time"].units, "365_day")
    assert (last.year, last.month, last.day) > (2014, 12, 31)  # the premise
    report = check_file(template)
    assert "time_span" in report.error_codes
    msg = messages(report, "time_span")
    assert "2014-12-31" in msg and f"{last.year}-{last.month:02d}-{last.day:02d}" in msg


def test_noleap_axis_covering_the_period_is_a_warning(tmp_path: Path) -> None:
    path = write_site_run(tmp_path / TEMPLATE_NAME, calendar="noleap")
    report = check_file(path)
    assert report.ok, format_report(report)
    assert report.warning_codes == ["calendar_noleap"]
    leap_years = [y for y in range(1997, 2015) if y % 4 == 0]
    assert f"the {len(leap_years)} leap days" in report.warnings[0].message


def test_noleap_axis_with_obs_root_gets_no_length_error(shared_data: Path,
                                                        tmp_path: Path) -> None:
    path = write_site_run(tmp_path / TEMPLATE_NAME, calendar="noleap")
    report = check_file(path, obs_root=OBS_DIR)
    assert report.ok, format_report(report)
    assert report.warning_codes == ["calendar_noleap"]


def test_360_day_calendar_is_an_error(template: Path) -> None:
    edit(template, lambda nc: nc["time"].setncattr("calendar", "360_day"))
    assert "calendar" in check_file(template).error_codes


def test_time_units_not_days(template: Path) -> None:
    edit(template, lambda nc: nc["time"].setncattr("units", "hours since 1996-12-31 00:00"))
    report = check_file(template)
    assert report.error_codes == ["time_units"]
    assert "hours since" in report.errors[0].message


def test_fractional_day_stamps_are_an_error(template: Path) -> None:
    def shift(nc):
        nc["time"][:] = nc["time"][:] + 0.4583333333

    report = check_file(edit(template, shift))
    assert "time_step" in report.error_codes
    assert "1.45833" in messages(report, "time_step")


def test_half_day_stamps_are_fine(template: Path) -> None:
    def shift(nc):
        nc["time"][:] = nc["time"][:] + 0.5

    report = check_file(edit(template, shift))
    assert report.ok, format_report(report)


def test_missing_day_is_a_step_error(template: Path) -> None:
    def gap(nc):
        t = nc["time"][:]
        t[100:] += 1
        nc["time"][:] = t

    report = check_file(edit(template, gap))
    assert "time_step" in report.error_codes
    assert "index 99" in messages(report, "time_step")


def test_start_not_on_1_january_without_known_period(tmp_path: Path) -> None:
    path = write_site_run(tmp_path / "M.v1_Phase1b_Scen1_US-Ha1_Val_Prior.nc",
                          start="1997-03-01", lat=42.5378, lon=-72.1715)
    report = check_file(path)
    assert report.ok and report.warning_codes == ["time_start"]


# ---------------------------------------------------------------------------------------------
# --obs-root
# ---------------------------------------------------------------------------------------------

def test_template_against_real_obs_root(template: Path) -> None:
    report = check_file(template, obs_root=OBS_DIR)
    assert report.ok, format_report(report)
    assert report.warning_codes == ["units_variant"]


def test_ten_days_cut_is_a_time_length_error(template: Path, tmp_path: Path) -> None:
    with netCDF4.Dataset(DKSOR_OBS) as nc:
        n_obs = len(nc.dimensions["time"])
    (tmp_path / "cut").mkdir()
    cut = rewrite(template, tmp_path / "cut" / TEMPLATE_NAME, n_time=n_obs - 10)
    report = check_file(cut, obs_root=OBS_DIR)
    assert "time_length" in report.error_codes
    msg = messages(report, "time_length")
    assert str(n_obs - 10) in msg and str(n_obs) in msg and DKSOR_OBS.name in msg


def test_no_observation_file_is_a_warning(template: Path, tmp_path: Path) -> None:
    empty = tmp_path / "empty_obs"
    empty.mkdir()
    report = check_file(template, obs_root=empty)
    assert report.ok
    assert "no_observations" in report.warning_codes


def test_phase1a_run_uses_the_phase1a_obs_file(template: Path) -> None:
    run = copy_as(template, "CLASSIC.v2_Phase1a_Scen1_DK-Sor_Cal_Prior.nc",
                  CalLMIP_Phase="Phase1a")
    with netCDF4.Dataset(PHASE1A_OBS) as nc:
        n_obs = len(nc.dimensions["time"])
    report = check_file(run, obs_root=OBS_DIR.parent)
    assert "time_length" in report.error_codes
    assert str(n_obs) in messages(report, "time_length")
    assert PHASE1A_OBS.name in messages(report, "time_length")


# ---------------------------------------------------------------------------------------------
# posterior uncertainty
# ---------------------------------------------------------------------------------------------

def test_posterior_without_uncertainty(template: Path) -> None:
    post = copy_as(template, "CLASSIC.v2_Phase1b_Scen1_DK-Sor_Cal_Posterior.nc",
                   Calibration_stage="Posterior")
    report = check_file(post)
    assert report.error_codes == ["uncertainty_missing"] * 3
    for var in ("nep", "hfls", "hfss"):
        assert f"{var}_post_unc" in messages(report, "uncertainty_missing")


def _add_uncertainty(nc, name: str) -> None:
    base = name.split("_")[0]
    v = nc.createVariable(name, "f8", nc[base].dimensions, fill_value=1e38)
    v.units = nc[base].units
    v[:] = np.abs(nc[base][:]) * 0.1


def test_posterior_with_post_unc_and_old_suffix(template: Path) -> None:
    post = copy_as(template, "CLASSIC.v2_Phase1b_Scen1_DK-Sor_Cal_Posterior.nc",
                   Calibration_stage="Posterior")

    def add(nc):
        for name in ("nep_post_unc", "hfls_post_unc", "hfss_uc"):
            _add_uncertainty(nc, name)

    report = check_file(edit(post, add))
    assert report.ok, format_report(report)
    assert "uncertainty_suffix" in report.warning_codes
    assert "hfss_uc" in messages(report, "uncertainty_suffix")


def test_scenario_2_needs_only_nep_uncertainty(template: Path) -> None:
    post = copy_as(template, "CLASSIC.v2_Phase1b_Scen2_DK-Sor_Cal_Posterior.nc",
                   Calibration_stage="Posterior", Calibration_Scenario="Scen2")
    report = check_file(post)
    assert report.error_codes == ["uncertainty_missing"]
    report = check_file(edit(post, lambda nc: _add_uncertainty(nc, "nep_post_unc")))
    assert report.ok, format_report(report)


def test_ensemble_counts_as_uncertainty(tmp_path: Path) -> None:
    path = write_site_run(tmp_path / "CLASSIC.v2_Phase1b_Scen1_DK-Sor_Cal_Posterior.nc",
                          end="2014-12-31", ensemble=4)
    report = check_file(path)
    assert report.ok, format_report(report)
    assert report.warning_codes == ["ensemble"] * 3
    assert "4 members" in report.warnings[0].message


def test_ensemble_dim_in_the_middle_is_a_dims_error(tmp_path: Path) -> None:
    path = write_site_run(tmp_path / "CLASSIC.v2_Phase1b_Scen1_DK-Sor_Cal_Prior.nc",
                          end="1997-12-31", dims=("time", "member", "lon"), ensemble=0)
    report = check_file(path)
    assert "dims" in report.error_codes


def test_posterior_synthetic_with_post_unc_passes(tmp_path: Path) -> None:
    path = write_site_run(tmp_path / "CLASSIC.v2_Phase1b_Scen1_DK-Sor_Cal_Posterior.nc",
                          post_unc=("nep", "hfls", "hfss"))
    report = check_file(path)
    assert report.ok and report.warnings == [], format_report(report)


# ---------------------------------------------------------------------------------------------
# observations, global runs, parameter tables
# ---------------------------------------------------------------------------------------------

REAL_OBS = sorted(OBS_DIR.glob("*.nc")) + ([PHASE1A_OBS] if PHASE1A_OBS.exists() else [])


@pytest.mark.parametrize("obs", REAL_OBS or [None], ids=[p.name for p in REAL_OBS] or ["none"])
def test_every_real_obs_file_passes(shared_data: Path, obs: Path | None) -> None:
    assert obs is not None
    report = check_file(obs)
    assert report.kind == "observation"
    assert report.ok, format_report(report)


def test_obs_file_without_qle(shared_data: Path, tmp_path: Path) -> None:
    out = rewrite(DKSOR_OBS, tmp_path / DKSOR_OBS.name, drop=("Qle_daily", "Qle_uc_daily"))
    report = check_file(out)
    assert report.error_codes == ["variable_missing"]
    assert "Qle" in report.errors[0].message


def write_global(path: Path, nlat: int = 4, nlon: int = 5, keep: tuple[str, ...] | None = None
                 ) -> Path:
    with netCDF4.Dataset(path, "w", format="NETCDF4") as nc:
        nc.createDimension("time", None)
        nc.createDimension("lat", nlat)
        nc.createDimension("lon", nlon)
        t = nc.createVariable("time", "f8", ("time",))
        t.units, t.calendar = "days since 2001-01-01", "standard"
        t[:] = [0.0, 31.0, 59.0]
        nc.createVariable("lat", "f8", ("lat",))[:] = np.linspace(-60, 60, nlat)
        nc.createVariable("lon", "f8", ("lon",))[:] = np.linspace(0, 300, nlon)
        for spec in TABLE3.values():
            if keep is not None and spec.name not in keep:
                continue
            v = nc.createVariable(spec.name, "f4", ("time", "lat", "lon"))
            v.units = spec.units
            v[:] = np.full((3, nlat, nlon), (spec.valid_min + spec.valid_max) / 2)
    return path


GLOBAL_NAME = "CLASSIC.v2_global_2deg_monthly_2001-2001_Posterior.nc"


def test_global_run_passes(tmp_path: Path) -> None:
    report = check_file(write_global(tmp_path / GLOBAL_NAME))
    assert report.kind == "global_run"
    assert report.ok and report.warnings == [], format_report(report)


def test_global_run_with_one_cell(tmp_path: Path) -> None:
    report = check_file(write_global(tmp_path / GLOBAL_NAME, nlat=1, nlon=1))
    assert report.error_codes == ["dims"]


def test_global_run_variables(tmp_path: Path) -> None:
    report = check_file(write_global(tmp_path / GLOBAL_NAME, keep=("nep", "gpp")))
    assert report.ok
    assert sorted(report.warning_codes) == ["optional_missing", "variable_missing"]
    absent = [v for v in TABLE3 if v not in ("nep", "gpp", "hfg")]
    assert len(absent) == 11
    assert all(v in messages(report, "variable_missing") for v in absent)
    assert "gpp" not in messages(report, "variable_missing")
    report = check_file(write_global(tmp_path / GLOBAL_NAME, keep=()))
    assert report.error_codes == ["variable_missing"]


PARAM_NAME = "CLASSIC.v2_Phase1b_Scen1_parameters.csv"
GOOD_TABLE = (
    "parameter,long_name,process,pft,units,prior_value,prior_min,prior_max,posterior_value\n"
    "vmax,Max carboxylation,photosynthesis,DBF,umol m-2 s-1,50,20,100,62\n"
    "q10,Respiration Q10,respiration,,-,2.0,1.0,3.0,2.9\n"
)


def test_parameter_table_passes(tmp_path: Path) -> None:
    path = tmp_path / PARAM_NAME
    path.write_text(GOOD_TABLE)
    report = check_file(path)
    assert report.kind == "parameters"
    assert report.ok and report.warnings == [], format_report(report)


@pytest.mark.parametrize("old,new,code,severe", [
    (",posterior_value\n", ",posterior\n", "column_missing", True),
    ("2.0,1.0,3.0", "two,1.0,3.0", "not_numeric", True),
    ("2.0,1.0,3.0", "2.0,3.5,3.0", "bounds", True),
    ("2.0,1.0,3.0,2.9", "2.0,1.0,3.0,3.2", "out_of_bounds", False),
])
def test_parameter_table_problems(tmp_path: Path, old: str, new: str, code: str,
                                  severe: bool) -> None:
    assert old in GOOD_TABLE
    path = tmp_path / PARAM_NAME
    path.write_text(GOOD_TABLE.replace(old, new))
    report = check_file(path)
    assert code in (report.error_codes if severe else report.warning_codes), format_report(report)
    assert report.ok != severe


def test_empty_parameter_table(tmp_path: Path) -> None:
    path = tmp_path / PARAM_NAME
    path.write_text("")
    assert check_file(path).error_codes == ["unreadable"]


# ---------------------------------------------------------------------------------------------
# check_paths and format_report
# ---------------------------------------------------------------------------------------------

def test_folder_with_a_broken_file_reports_every_file(template: Path, tmp_path: Path) -> None:
    folder = tmp_path / "submission"
    (folder / "sub").mkdir(parents=True)
    good = shutil.copyfile(template, folder / TEMPLATE_NAME)
    val = copy_as(template, "CLASSIC.v2_Phase1b_Scen1_DK-Sor_Val_Prior.nc", Cal_Val="Validation")
    shutil.move(val, folder / "sub" / val.name)
    broken = folder / "sub" / "CLASSIC.v2_Phase1b_Scen1_FI-Hyy_Cal_Prior.nc"
    broken.write_bytes(template.read_bytes()[:1000])
    text = folder / "CLASSIC.v2_Phase1b_Scen1_DE-Hai_Cal_Prior.nc"
    text.write_text("not netcdf")
    reports = check_paths([folder, good])  # good is listed twice: reported once
    by_name = {Path(r.path).name: r for r in reports}
    assert len(reports) == 4
    assert set(by_name) == {good.name, val.name, broken.name, text.name}
    assert by_name[good.name].ok and by_name[val.name].ok
    assert by_name[broken.name].error_codes == ["unreadable"]
    assert by_name[text.name].error_codes == ["unreadable"]


def test_format_report(template: Path) -> None:
    edit(template, lambda nc: nc.setncattr("Calibration_stage", "Posterior"))
    text = format_report(check_file(template))
    first = text.splitlines()[0]
    assert first.startswith("FAIL ") and TEMPLATE_NAME in first
    assert "  error [attribute_mismatch] " in text
    assert "  warning [units_variant] " in text


def test_check_item_and_report_basics() -> None:
    report = CheckReport(path="/x/y.nc")
    assert report.ok and report.name == "y.nc"
    report.warn("a", "b")
    assert report.ok
    report.error("c", "d")
    assert not report.ok
    assert report.to_dict()["errors"] == [CheckItem("c", "d").to_dict()]
    assert format_report(report).startswith("FAIL /x/y.nc")
