"""Scores, misfit reduction and diagram statistics against independent computations.

Expected values are computed here with plain numpy/scipy (explicit loops, scipy.stats.pearsonr)
on data with a known answer, never with the package's own helpers.
"""

from __future__ import annotations

import math

import numpy as np
import pandas as pd
import pytest
import xarray as xr
from hypothesis import given, settings
from hypothesis import strategies as st
from scipy import stats

from dashboard.metrics import (
    DEFAULT_MIN_N,
    misfit_reduction,
    score,
    seasonal_cycle,
    taylor_statistics,
)


def series(values, start="2001-01-01", name="x") -> xr.DataArray:
    values = np.asarray(values, dtype="float64")
    time = pd.date_range(start, periods=values.shape[0], freq="D")
    dims = ("time",) + tuple(f"d{i}" for i in range(values.ndim - 1))
    return xr.DataArray(values, coords={"time": time}, dims=dims, name=name)


def expected_scores(m: np.ndarray, o: np.ndarray, u: np.ndarray | None = None) -> dict:
    """Reference scores by explicit loops over the valid days."""
    pairs = [(a, b) for a, b in zip(m, o, strict=True) if np.isfinite(a) and np.isfinite(b)]
    n = len(pairs)
    mm = np.array([p[0] for p in pairs])
    oo = np.array([p[1] for p in pairs])
    mean_o = sum(oo) / n
    out = {
        "n": n,
        "bias": sum(a - b for a, b in pairs) / n,
        "rmse": math.sqrt(sum((a - b) ** 2 for a, b in pairs) / n),
        "nme": sum(abs(a - b) for a, b in pairs) / sum(abs(b - mean_o) for b in oo),
        "r": stats.pearsonr(mm, oo).statistic,
        "sd_ratio": np.std(mm) / np.std(oo),
    }
    if u is not None:
        z2 = [((a - b) / s) ** 2 for a, b, s in zip(m, o, u, strict=True)
              if np.isfinite(a) and np.isfinite(b) and np.isfinite(s) and s > 0]
        out["chi2"] = sum(z2) / len(z2)
        out["n_chi2"] = len(z2)
    return out


@pytest.fixture
def pair():
    rng = np.random.default_rng(42)
    n = 200
    o = 3 * np.sin(np.arange(n) / 20) + rng.normal(0, 0.5, n)
    m = 0.8 * o + 0.4 + rng.normal(0, 0.7, n)
    u = np.abs(rng.normal(0.5, 0.1, n))
    o[[3, 17, 50]] = np.nan
    m[[17, 90, 91]] = np.nan
    u[[5, 6]] = np.nan
    u[7] = 0.0
    return m, o, u


def test_score_matches_independent_formulas(pair):
    m, o, u = pair
    got = score(series(m), series(o), series(u))
    want = expected_scores(m, o, u)
    assert got["n"] == want["n"] == 200 - 5
    for key in ("bias", "rmse", "nme", "r", "sd_ratio", "chi2"):
        assert got[key] == pytest.approx(want[key], rel=1e-12), key
    # chi2 skips days with a missing or zero uncertainty: its own n
    assert got["n_chi2"] == want["n_chi2"] == 195 - 3
    assert got["insufficient"] is False
    # no uncertainty and no ensemble: no coverage, no CRPS
    assert math.isnan(got["coverage"]) and math.isnan(got["crps"])
    assert got["n_coverage"] == 0


def test_score_without_obs_uncertainty_has_no_chi2(pair):
    m, o, _ = pair
    got = score(series(m), series(o))
    assert math.isnan(got["chi2"]) and got["n_chi2"] == 0
    assert got["rmse"] == pytest.approx(expected_scores(m, o)["rmse"])


@settings(max_examples=40, derandomize=True, deadline=None)
@given(st.lists(st.tuples(st.one_of(st.floats(-1e3, 1e3), st.just(float("nan"))),
                          st.one_of(st.floats(-1e3, 1e3), st.just(float("nan")))),
                min_size=1, max_size=60))
def test_bias_rmse_property(values):
    m = np.array([v[0] for v in values])
    o = np.array([v[1] for v in values])
    got = score(series(m), series(o), min_n=1)
    valid = np.isfinite(m) & np.isfinite(o)
    assert got["n"] == int(valid.sum())
    if valid.sum() == 0:
        assert got["insufficient"] is True and math.isnan(got["rmse"])
        return
    d = m[valid] - o[valid]
    assert got["bias"] == pytest.approx(float(np.mean(d)), abs=1e-9)
    assert got["rmse"] == pytest.approx(float(np.sqrt(np.mean(d**2))), abs=1e-9)


def test_alignment_on_dates_when_spans_differ():
    rng = np.random.default_rng(1)
    obs = series(rng.normal(size=100), start="2001-01-01")         # 2001-01-01 .. 2001-04-10
    model = series(rng.normal(size=91), start="2000-12-01")        # 2000-12-01 .. 2001-03-01
    # Reference: match by date with a dict, then loop.
    m_by_date = dict(zip(pd.DatetimeIndex(model.time.values), model.values, strict=True))
    common = [(m_by_date[t], v) for t, v in zip(pd.DatetimeIndex(obs.time.values), obs.values,
                                                strict=True) if t in m_by_date]
    assert len(common) == 60  # 2001-01-01 .. 2001-03-01
    mm = np.array([c[0] for c in common])
    oo = np.array([c[1] for c in common])
    got = score(model, obs)
    assert got["n"] == 60
    assert got["rmse"] == pytest.approx(np.sqrt(np.mean((mm - oo) ** 2)), rel=1e-12)
    assert got["r"] == pytest.approx(stats.pearsonr(mm, oo).statistic, rel=1e-12)
    # a run with missing dates (not a contiguous axis) is matched by date too
    gappy = model.drop_isel(time=[40, 41, 45])
    common = [(m_by_date[t], v) for t, v in zip(pd.DatetimeIndex(obs.time.values), obs.values,
                                                strict=True)
              if t in m_by_date and t not in set(pd.DatetimeIndex(model.time.values[[40, 41, 45]]))]
    mm = np.array([c[0] for c in common])
    oo = np.array([c[1] for c in common])
    got = score(gappy, obs)
    assert got["n"] == 57
    assert got["rmse"] == pytest.approx(np.sqrt(np.mean((mm - oo) ** 2)), rel=1e-12)
    # a run shifted by one day is NOT compared position by position
    shifted = series(obs.values, start="2001-01-02")
    assert score(shifted, obs)["rmse"] > 0.5


def test_daily_series_stamped_at_noon_and_midnight_are_matched_by_date():
    # issue #10: a noon-stamped model against midnight-stamped obs used to fail with a
    # broadcast error (and a gappy one silently found no common day)
    rng = np.random.default_rng(10)
    obs = series(rng.normal(size=60), start="2001-01-01")                  # 00:00 stamps
    unc = series(np.full(60, 0.5), start="2001-01-01")
    noon = pd.date_range("2000-12-20 12:00", periods=80, freq="D")        # 12:00 stamps
    model = xr.DataArray(rng.normal(size=80), dims="time", coords={"time": noon})
    by_date = dict(zip(noon.normalize(), model.values, strict=True))
    pairs = [(by_date[t], v) for t, v in zip(pd.DatetimeIndex(obs.time.values), obs.values,
                                             strict=True) if t in by_date]
    assert len(pairs) == 60
    mm, oo = np.array(pairs).T
    got = score(model, obs, unc, model_unc=xr.full_like(model, 0.4))
    assert got["n"] == 60 and got["n_coverage"] == 60 and got["n_chi2"] == 60
    assert got["rmse"] == pytest.approx(np.sqrt(np.mean((mm - oo) ** 2)), rel=1e-12)
    assert got["chi2"] == pytest.approx(np.mean(((mm - oo) / 0.5) ** 2), rel=1e-12)
    # with gaps (not a contiguous axis) and an ensemble, and in misfit_reduction too
    gappy = model.drop_isel(time=[30, 31])
    assert score(gappy, obs)["n"] == 58
    members = xr.concat([model, model + 1.0], dim="member").transpose("time", "member")
    assert score(members, obs)["n"] == 60
    mr = misfit_reduction(model, gappy, obs)
    assert mr["n"] == 58 and mr["misfit_reduction"] == pytest.approx(0.0)
    # same clock time everywhere: nothing changes
    assert score(model + 1.0, model)["bias"] == pytest.approx(1.0)


def test_sub_daily_series_are_not_floored():
    hours = pd.date_range("2001-01-01", periods=96, freq="h")
    half = pd.date_range("2001-01-01 00:30", periods=96, freq="h")
    a = xr.DataArray(np.arange(96.0), dims="time", coords={"time": hours})
    b = xr.DataArray(np.arange(96.0), dims="time", coords={"time": half})
    assert score(a, b, min_n=1)["n"] == 0  # no shared stamp; not merged into days


def test_min_n_insufficient_gives_nan_never_a_number():
    o = series(np.arange(40.0))
    m = o + 1.0
    m[10:] = np.nan  # 10 valid days
    got = score(m, o)
    assert got["n"] == 10
    assert got["insufficient"] is True
    for key in ("bias", "rmse", "nme", "r", "sd_ratio"):
        assert math.isnan(got[key]), key
    ok = score(m, o, min_n=10)
    assert ok["insufficient"] is False and ok["bias"] == pytest.approx(1.0)
    assert DEFAULT_MIN_N == 30


def test_constant_observations_give_nan_not_inf():
    o = series(np.full(50, 2.0))
    m = series(np.linspace(0, 1, 50))
    got = score(m, o)
    assert math.isnan(got["nme"]) and math.isnan(got["r"]) and math.isnan(got["sd_ratio"])
    assert got["rmse"] == pytest.approx(np.sqrt(np.mean((np.linspace(0, 1, 50) - 2) ** 2)))


def test_ensemble_scored_through_its_mean():
    rng = np.random.default_rng(3)
    o = rng.normal(size=60)
    members = o[:, None] + rng.normal(0, 1, (60, 5)) + 0.3
    members[4, 2] = np.nan  # a day with a missing member is not used
    ens = xr.DataArray(members, dims=("time", "member"),
                       coords={"time": pd.date_range("2001-01-01", periods=60)})
    got = score(ens, series(o))
    keep = np.ones(60, bool)
    keep[4] = False
    mean = members[keep].mean(axis=1)
    assert got["n"] == 59
    assert got["bias"] == pytest.approx(np.mean(mean - o[keep]), rel=1e-12)
    assert got["rmse"] == pytest.approx(np.sqrt(np.mean((mean - o[keep]) ** 2)), rel=1e-12)
    assert got["uncertainty_method"] == "ensemble"


def test_score_vectorised_over_extra_dimension(pair):
    m, o, _ = pair
    m2 = np.stack([m, m * 2 + 1], axis=1)
    o2 = np.stack([o, o], axis=1)
    got = score(series(m2), series(o2))
    assert isinstance(got["rmse"], xr.DataArray) and got["rmse"].dims == ("d0",)
    assert float(got["rmse"][0]) == pytest.approx(expected_scores(m, o)["rmse"])
    assert float(got["rmse"][1]) == pytest.approx(expected_scores(m * 2 + 1, o)["rmse"])


# ---------------------------------------------------------------------------------------------
# Misfit reduction
# ---------------------------------------------------------------------------------------------

def test_misfit_reduction_uses_shared_days_exactly():
    n = 60
    o = np.zeros(n)
    prior = np.full(n, 2.0)
    post = np.full(n, 1.0)
    # On days 0..9 the posterior is missing while the prior is terribly wrong there:
    prior[:10] = 100.0
    post[:10] = np.nan
    # and one observation is missing
    o[30] = np.nan
    got = misfit_reduction(series(prior), series(post), series(o))
    # shared days: 60 - 10 (posterior missing) - 1 (obs missing) = 49; prior error 2, post 1
    assert got["n"] == 49
    assert got["rmse_prior"] == pytest.approx(2.0)
    assert got["rmse_post"] == pytest.approx(1.0)
    assert got["misfit_reduction"] == pytest.approx(0.5)
    # Had the prior's extra days been used, rmse_prior would be ~41 and the reduction ~0.98.
    assert got["insufficient"] is False


def test_misfit_reduction_chi2_and_min_n():
    n = 50
    o = np.zeros(n)
    unc = np.full(n, 0.5)
    unc[:5] = np.nan
    got = misfit_reduction(series(np.full(n, 1.0)), series(np.full(n, 0.5)), series(o),
                           series(unc))
    assert got["n"] == 50 and got["n_chi2"] == 45
    assert got["chi2_prior"] == pytest.approx((1.0 / 0.5) ** 2)
    assert got["chi2_post"] == pytest.approx((0.5 / 0.5) ** 2)
    assert got["misfit_reduction_chi2"] == pytest.approx(1 - 1 / 4)
    small = misfit_reduction(series(np.full(20, 1.0)), series(np.full(20, 0.5)),
                             series(np.zeros(20)))
    assert small["n"] == 20 and small["insufficient"] is True
    assert math.isnan(small["misfit_reduction"]) and math.isnan(small["rmse_prior"])


def test_misfit_reduction_aligns_three_spans():
    o = series(np.zeros(100), start="2001-01-01")
    prior = series(np.full(100, 3.0), start="2000-12-22")  # ends 2001-03-31
    post = series(np.full(100, 1.0), start="2001-01-11")   # starts 2001-01-11
    got = misfit_reduction(prior, post, o)
    # common dates: 2001-01-11 .. 2001-03-31 = 21 + 28 + 31 = 80 days
    assert got["n"] == 80
    assert got["misfit_reduction"] == pytest.approx(1 - 1 / 3)


# ---------------------------------------------------------------------------------------------
# Diagrams
# ---------------------------------------------------------------------------------------------

def test_taylor_statistics_against_numpy(pair):
    m, o, _ = pair
    got = taylor_statistics(series(m), series(o))
    v = np.isfinite(m) & np.isfinite(o)
    mm, oo = m[v], o[v]
    sd_m, sd_o = np.std(mm), np.std(oo)
    crmsd = np.sqrt(np.mean(((mm - mm.mean()) - (oo - oo.mean())) ** 2))
    assert got["n"] == v.sum()
    assert got["sd_ratio"] == pytest.approx(sd_m / sd_o)
    assert got["r"] == pytest.approx(stats.pearsonr(mm, oo).statistic)
    assert got["crmsd_norm"] == pytest.approx(crmsd / sd_o)
    # law of cosines of the Taylor diagram
    s, r = got["sd_ratio"], got["r"]
    assert got["crmsd_norm"] ** 2 == pytest.approx(s**2 + 1 - 2 * s * r)


def test_seasonal_cycle_means_and_counts():
    time = pd.date_range("2001-01-01", "2002-12-31", freq="D")
    values = time.month.to_numpy().astype(float) * 10 + time.year.to_numpy() - 2001
    values[:5] = np.nan  # 5 January days missing
    da = xr.DataArray(values, coords={"time": time}, dims="time")
    mask = xr.DataArray(time.month != 2, coords={"time": time}, dims="time")  # drop February
    got = seasonal_cycle(da, mask)
    assert list(got["month"].values) == list(range(1, 13))
    jan = [v for t, v in zip(time, values, strict=True) if t.month == 1 and np.isfinite(v)]
    assert int(got["n"].sel(month=1)) == len(jan) == 62 - 5
    assert float(got.sel(month=1)) == pytest.approx(np.mean(jan))
    assert int(got["n"].sel(month=2)) == 0 and np.isnan(float(got.sel(month=2)))
    assert float(got.sel(month=7)) == pytest.approx(70.5)
