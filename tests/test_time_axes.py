"""Time axes the protocol permits (issue #10): every encoding gives the same dates.

Protocol v2 §6.2 accepts ``days since <first day of the FLUXNET data>`` valued ``0, 1, 2, …``,
``1, 2, 3, …`` or ``0.5, 1.5, 2.5, …``; the template writes ``days since 1996-12-31`` valued
``1, 2, 3, …``. Read the CF way, ``1, 2, 3, …`` from 1997-01-01 would start on 1997-01-02 and
score DK-Sor one day late. Here the real template's time variable is rewritten in each permitted
encoding and must give the same dates, the same scores against the real DK-Sor observations
(through :func:`dashboard.metrics.score` and :func:`compute_tables`), a passing
``callmip check`` that names an inferred reading, and ``dates_inferred`` exactly where the
dates were inferred. A time axis that is really off (a year late) still fails, listing the dates
under each reading. Expected dates are built with ``pandas.date_range``, never taken from the
reader.
"""

from __future__ import annotations

import json
import shutil
from pathlib import Path

import netCDF4
import numpy as np
import pandas as pd
import pytest
import xarray as xr

from dashboard.cli import main
from dashboard.metrics import score
from dashboard.metrics.tables import (
    METRICS_VERSION,
    MISFIT_SCHEMA,
    SITE_SCORE_SCHEMA,
    clear_memory_cache,
    compute_tables,
)
from loaders.archive import clear_cache
from loaders.readers import (
    AS_ENCODED,
    MID_DAY,
    ONE_BASED,
    choose_time_reading,
    decode_daily_time,
    open_observations,
    open_site_run,
    read_site_time,
)
from tests.conftest import DKSOR_OBS, OBS_DIR, TEMPLATE
from tests.synthetic import write_site_run

N_DAYS = 6574  # 1997-01-01 .. 2014-12-31
DKSOR_DAYS = pd.date_range("1997-01-01", "2014-12-31", freq="D")

#: The permitted encodings of the template's 6574 days: units, values, reading, inferred.
ENCODINGS: dict[str, tuple[str | None, np.ndarray | None, str, bool]] = {
    "template": (None, None, AS_ENCODED, False),  # days since 1996-12-31 00:00, 1..6574
    "one_based": ("days since 1997-01-01 00:00:00", np.arange(1, N_DAYS + 1, dtype="f8"),
                  ONE_BASED, True),
    "zero_based": ("days since 1997-01-01 00:00:00", np.arange(0, N_DAYS, dtype="f8"),
                   AS_ENCODED, False),
    "mid_day": ("days since 1997-01-01 00:00:00", np.arange(0, N_DAYS, dtype="f8") + 0.5,
                MID_DAY, False),
}

#: Time axes that are really off: (units, values, first/last date per reading).
YEAR_LATE: dict[str, tuple[str, np.ndarray, dict[str, tuple[str, str]]]] = {
    "reference_a_year_late": (
        "days since 1998-01-01 00:00:00", np.arange(1, N_DAYS + 1, dtype="f8"),
        {AS_ENCODED: ("1998-01-02", "2016-01-01"), ONE_BASED: ("1998-01-01", "2015-12-31")}),
    "values_a_year_late": (
        "days since 1997-01-01 00:00:00", np.arange(365, 365 + N_DAYS, dtype="f8"),
        {AS_ENCODED: ("1998-01-01", "2015-12-31"), ONE_BASED: ("1997-12-31", "2015-12-30")}),
}


# ---------------------------------------------------------------------------------------------
# helpers
# ---------------------------------------------------------------------------------------------

def set_time(path: Path, units: str | None, values: np.ndarray | None) -> Path:
    """Rewrite the time variable of a NetCDF file in place (units and values)."""
    if units is None:
        return path
    with netCDF4.Dataset(path, "a") as nc:
        nc["time"].setncattr("units", units)
        nc["time"][:] = values
    return path


def template_as(folder: Path, encoding: str, name: str = TEMPLATE.name) -> Path:
    """A copy of the real template named ``name`` with the time axis of ``encoding``."""
    folder.mkdir(parents=True, exist_ok=True)
    dst = folder / name
    shutil.copyfile(TEMPLATE, dst)
    units, values, _, _ = ENCODINGS[encoding]
    return set_time(dst, units, values)


def axis(units: str, values: list[float] | np.ndarray, calendar: str = "standard"
         ) -> xr.DataArray:
    return xr.DataArray(np.asarray(values, dtype="f8"), dims="time",
                        attrs={"units": units, "calendar": calendar})


def check_json(capsys: pytest.CaptureFixture[str], *argv: str) -> tuple[int, dict]:
    code = main(["check", *argv, "--json"])
    out, _ = capsys.readouterr()
    reports = json.loads(out)
    assert len(reports) == 1
    return code, reports[0]


def items(report: dict, kind: str, code: str) -> list[str]:
    return [item["message"] for item in report[kind] if item["code"] == code]


# ---------------------------------------------------------------------------------------------
# the reading rule (no files)
# ---------------------------------------------------------------------------------------------

@pytest.mark.parametrize(("units", "values", "first_day", "reading", "inferred", "start"), [
    # protocol v2 §6.2 with the protocol's convention (records start on 1 January)
    ("days since 1997-01-01 00:00:00", [1, 2, 3], None, ONE_BASED, True, "1997-01-01"),
    ("days since 1997-01-01 00:00:00", [0, 1, 2], None, AS_ENCODED, False, "1997-01-01"),
    ("days since 1997-01-01 00:00:00", [0.5, 1.5, 2.5], None, MID_DAY, False, "1997-01-01"),
    ("days since 1997-01-01", [1, 2, 3], None, ONE_BASED, True, "1997-01-01"),
    # the template: the day before the record, values from 1
    ("days since 1996-12-31 00:00", [1, 2, 3], None, AS_ENCODED, False, "1997-01-01"),
    ("days since 1996-12-31 00:00", [1.5, 2.5, 3.5], None, MID_DAY, False, "1997-01-01"),
    # the first day of the observations, where known, decides
    ("days since 1997-01-01", [1, 2, 3], "1997-01-01", ONE_BASED, True, "1997-01-01"),
    ("days since 1996-12-31", [1, 2, 3], "1997-01-01", AS_ENCODED, False, "1997-01-01"),
    ("days since 2003-03-01", [1, 2, 3], "2003-03-01", ONE_BASED, True, "2003-03-01"),
    ("days since 2003-03-01", [1, 2, 3], None, AS_ENCODED, False, "2003-03-02"),
    ("days since 1997-01-01", [1, 2, 3], "1997-01-02", AS_ENCODED, False, "1997-01-02"),
    # not day units: never shifted
    ("hours since 1997-01-01", [1, 2, 3], None, AS_ENCODED, False, "1997-01-01"),
])
def test_reading_rule(units: str, values: list[float], first_day: str | None, reading: str,
                      inferred: bool, start: str) -> None:
    time = axis(units, values)
    chosen = choose_time_reading(time, first_day=first_day)
    assert (chosen.name, chosen.inferred) == (reading, inferred), chosen.basis
    dates, used = read_site_time(time, first_day=first_day)
    assert used == chosen
    if units.startswith("days"):
        assert list(dates) == list(pd.date_range(start, periods=3, freq="D"))
    assert dates[0] == pd.Timestamp(start)
    # decode_daily_time alone still decodes as written (CF): observation files rely on it
    cf = decode_daily_time(time)
    assert cf[0] == pd.Timestamp(start) + pd.Timedelta(days=1 if inferred else 0)


def test_one_based_noleap_axis_shifts_in_the_model_calendar() -> None:
    time = axis("days since 2000-01-01 00:00:00", np.arange(1, 366), calendar="noleap")
    dates, reading = read_site_time(time)
    assert reading.name == ONE_BASED and reading.inferred
    expected = pd.date_range("2000-01-01", "2000-12-31", freq="D")
    expected = expected[~((expected.month == 2) & (expected.day == 29))]
    assert list(dates) == list(expected)


def test_synthetic_run_records_its_reading(tmp_path: Path) -> None:
    """open_site_run without shared data: the first_day argument and the recorded attrs."""
    path = write_site_run(tmp_path, start="2003-03-01", n_days=40)  # days since 2003-02-28, 1..
    ds = open_site_run(path)
    days = pd.date_range("2003-03-01", periods=40, freq="D")
    assert pd.DatetimeIndex(ds["time"].values).equals(days)
    assert (ds.attrs["time_reading"], ds.attrs["time_inferred"]) == (AS_ENCODED, False)
    # rewritten as a 1-based count from 2003-03-01: only the observations' first day says so
    set_time(path, "days since 2003-03-01 00:00:00", np.arange(1, 41, dtype="f8"))
    cf = open_site_run(path)
    assert pd.DatetimeIndex(cf["time"].values).equals(days + pd.Timedelta(days=1))
    assert cf.attrs["time_inferred"] is False
    ds = open_site_run(path, first_day="2003-03-01")
    assert pd.DatetimeIndex(ds["time"].values).equals(days)
    assert (ds.attrs["time_reading"], ds.attrs["time_inferred"]) == (ONE_BASED, True)
    assert "first day of the observations" in ds.attrs["time_reading_basis"]
    np.testing.assert_array_equal(ds["NEE"].values, cf["NEE"].values)


# ---------------------------------------------------------------------------------------------
# the real template in every permitted encoding
# ---------------------------------------------------------------------------------------------

@pytest.mark.parametrize("encoding", list(ENCODINGS))
def test_every_encoding_gives_the_template_dates(shared_data: Path, tmp_path: Path,
                                                 encoding: str) -> None:
    path = template_as(tmp_path, encoding)
    _, _, reading, inferred = ENCODINGS[encoding]
    ds = open_site_run(path)
    assert pd.DatetimeIndex(ds["time"].values).equals(DKSOR_DAYS)
    assert ds.attrs["time_reading"] == reading
    assert ds.attrs["time_inferred"] is inferred
    assert ds.attrs["missing_dates"] == []
    original = open_site_run(TEMPLATE)
    for var in ("NEE", "Qle", "Qh", "gpp"):
        np.testing.assert_array_equal(ds[var].values, original[var].values)
    # the observations' first day, where known, agrees with the convention
    with_obs = open_site_run(path, first_day=DKSOR_DAYS[0])
    assert pd.DatetimeIndex(with_obs["time"].values).equals(DKSOR_DAYS)
    assert with_obs.attrs["time_reading"] == reading


@pytest.fixture(scope="module")
def dksor_obs() -> xr.Dataset:
    if not DKSOR_OBS.exists():
        pytest.skip("../shared/data is not beside this checkout")
    return open_observations(DKSOR_OBS)


@pytest.mark.parametrize("encoding", [e for e in ENCODINGS if e != "template"])
def test_every_encoding_scores_like_the_template(shared_data: Path, tmp_path: Path,
                                                 dksor_obs: xr.Dataset, encoding: str) -> None:
    run = open_site_run(template_as(tmp_path, encoding))
    original = open_site_run(TEMPLATE)
    for var in ("NEE", "Qle", "Qh"):
        unc = dksor_obs[f"{var}_unc"]
        got = score(run[var], dksor_obs[var], unc)
        want = score(original[var], dksor_obs[var], unc)
        assert got.keys() == want.keys()
        for key, value in want.items():
            if isinstance(value, float) and np.isnan(value):
                assert np.isnan(got[key]), (var, key)
            else:
                assert got[key] == value, (var, key)
    nee = score(run["NEE"], dksor_obs["NEE"])
    assert nee["r"] == pytest.approx(0.743, abs=0.0005)  # the figure


def test_reading_one_based_as_encoded_would_score_a_day_late(shared_data: Path,
                                                             tmp_path: Path,
                                                             dksor_obs: xr.Dataset) -> None:
    """The premise of the issue: the CF reading of 1, 2, 3 … from 1997-01-01 is one day late."""
    run = open_site_run(template_as(tmp_path, "one_based"))
    late = run.assign_coords(time=run["time"].values + np.timedelta64(1, "D"))
    right = score(run["NEE"], dksor_obs["NEE"])
    wrong = score(late["NEE"], dksor_obs["NEE"])
    assert right["r"] == pytest.approx(0.743, abs=0.0005)
    assert wrong["r"] == pytest.approx(0.682, abs=0.0005)


@pytest.fixture
def archive_root(shared_data: Path, tmp_path: Path):
    """One archive: the real DK-Sor observations and the template in every encoding.

    Each encoding is its own model; posteriors pair an inferred reading with a CF one both
    ways round, and two CF readings.
    """
    clear_cache()
    clear_memory_cache()
    root = tmp_path / "archive"
    (root / "obs").mkdir(parents=True)
    shutil.copyfile(DKSOR_OBS, root / "obs" / DKSOR_OBS.name)
    runs = {"TEMPLATE": ("template", None), "ONEBASED": ("one_based", "zero_based"),
            "ZEROBASED": ("zero_based", "one_based"), "MIDDAY": ("mid_day", "template")}
    for model, (prior, posterior) in runs.items():
        template_as(root / "runs", prior, f"{model}.v2_Phase1b_Scen1_DK-Sor_Cal_Prior.nc")
        if posterior:
            template_as(root / "runs", posterior,
                        f"{model}.v2_Phase1b_Scen1_DK-Sor_Cal_Posterior.nc")
    yield root
    clear_memory_cache()
    clear_cache()


def test_metric_tables_score_alike_and_flag_inferred_dates(archive_root: Path) -> None:
    assert METRICS_VERSION >= 2  # the new column invalidates older disk caches
    tables = compute_tables(archive_root)
    assert not tables.errors
    sc = tables["site_scores"]
    assert list(sc.columns) == list(SITE_SCORE_SCHEMA)
    assert list(sc.columns)[-1] == "dates_inferred" and sc["dates_inferred"].dtype == bool
    assert len(sc) == 7 * 3
    inferred = {("ONEBASED", "Prior"), ("ZEROBASED", "Posterior")}
    assert set(map(tuple, sc.loc[sc["dates_inferred"], ["model", "stage"]].values)) == inferred
    metrics = ["n", "bias", "rmse", "nme", "r", "sd_ratio", "chi2", "crps", "n_chi2"]
    for var, group in sc.groupby("variable"):
        block = group[metrics].to_numpy(dtype="float64")
        assert np.isfinite(block[:, :5]).all(), var
        np.testing.assert_array_equal(block, np.broadcast_to(block[0], block.shape),
                                      err_msg=f"{var}: {list(group['model'])}")
    nee = sc[(sc.variable == "NEE")]
    np.testing.assert_allclose(nee["r"].astype(float), 0.743, atol=0.0005)

    mr = tables["misfit_reduction"]
    assert list(mr.columns) == list(MISFIT_SCHEMA) and list(mr.columns)[-1] == "dates_inferred"
    assert len(mr) == 3 * 3
    flagged = {m: set(g["dates_inferred"]) for m, g in mr.groupby("model")}
    # the prior inferred, the posterior inferred, neither
    assert flagged == {"ONEBASED": {True}, "ZEROBASED": {True}, "MIDDAY": {False}}
    # same data on the same days: no misfit reduction at all
    np.testing.assert_allclose(mr["misfit_reduction"].astype(float), 0.0, atol=1e-12)
    assert (mr.loc[mr.variable == "NEE", "n"] == nee["n"].iloc[0]).all()


# ---------------------------------------------------------------------------------------------
# callmip check
# ---------------------------------------------------------------------------------------------

@pytest.mark.parametrize("with_obs", [False, True], ids=["site_table", "obs_root"])
@pytest.mark.parametrize("encoding", list(ENCODINGS))
def test_check_accepts_every_permitted_encoding(shared_data: Path, tmp_path: Path,
                                                capsys: pytest.CaptureFixture[str],
                                                encoding: str, with_obs: bool) -> None:
    path = template_as(tmp_path, encoding)
    argv = (str(path), "--obs-root", str(OBS_DIR)) if with_obs else (str(path),)
    code, report = check_json(capsys, *argv)
    assert code == 0 and report["ok"], report["errors"]
    assert report["errors"] == []
    _, _, reading, inferred = ENCODINGS[encoding]
    named = items(report, "warnings", "time_reading")
    codes = [w["code"] for w in report["warnings"]]
    if inferred:
        assert len(named) == 1, report["warnings"]
        message = named[0]
        assert reading in message
        assert "1997-01-01 to 2014-12-31" in message  # the dates used
        assert "1997-01-02 to 2015-01-01" in message  # what CF decoding would give
        assert sorted(codes) == ["time_reading", "units_variant"]
    else:
        # read as written: nothing to say about time (cSoil's units are the template's own)
        assert named == [] and codes == ["units_variant"]


@pytest.mark.parametrize("with_obs", [False, True], ids=["site_table", "obs_root"])
@pytest.mark.parametrize("case", list(YEAR_LATE))
def test_check_fails_a_year_late_axis_listing_each_reading(shared_data: Path, tmp_path: Path,
                                                          capsys: pytest.CaptureFixture[str],
                                                          case: str, with_obs: bool) -> None:
    units, values, spans = YEAR_LATE[case]
    path = tmp_path / TEMPLATE.name
    shutil.copyfile(TEMPLATE, path)
    set_time(path, units, values)
    argv = (str(path), "--obs-root", str(OBS_DIR)) if with_obs else (str(path),)
    code, report = check_json(capsys, *argv)
    assert code == 1 and not report["ok"]
    assert [e["code"] for e in report["errors"]] == ["time_span"]
    message = items(report, "errors", "time_span")[0]
    assert "1997-01-01 to 2014-12-31" in message  # the observation period
    for reading, (first, last) in spans.items():
        assert f"{reading}: {first} to {last}" in message or \
            f"{reading} [used]: {first} to {last}" in message, (reading, message)
    assert "None covers" in message
    assert items(report, "warnings", "time_reading") == []  # the error names the reading


def test_real_mismatch_in_a_noleap_calendar_still_fails(shared_data: Path,
                                                        tmp_path: Path) -> None:
    """The existing 365_day case: read as encoded, over-long, listed under each reading."""
    from loaders.protocol import check_file

    path = tmp_path / TEMPLATE.name
    shutil.copyfile(TEMPLATE, path)
    with netCDF4.Dataset(path, "a") as nc:
        nc["time"].setncattr("calendar", "365_day")
    report = check_file(path)
    assert report.error_codes == ["time_span"]
    message = report.errors[0].message
    assert "reading: as encoded" in message and "as encoded [used]: 1997-01-01 to" in message
    assert f"{ONE_BASED}: 1996-12-31 to" in message
