"""Ensembles and ±σ submissions scored alike: predictive-interval coverage and the fair CRPS.

A *perfectly calibrated* posterior is simulated: each day the truth is drawn from the same
distribution N(μ_d, σ_d²) the posterior describes, and the observation adds a measurement error
of known σ_O. Submitted as ±σ (μ_d, σ_d) or as an ensemble of m members drawn from N(μ_d, σ_d²),
every form must cover about 95 % of the observations and get the same CRPS.
"""

from __future__ import annotations

import itertools
import math

import numpy as np
import pandas as pd
import pytest
import xarray as xr
from scipy import stats

from dashboard.metrics import coverage, crps, score
from dashboard.metrics.uncertainty import (
    crps_ensemble_values,
    ensemble_predictive_interval,
    t95,
)

N_DAYS = 20_000
SIZES = (5, 12, 50)


def series(values, start="2001-01-01") -> xr.DataArray:
    values = np.asarray(values, float)
    return xr.DataArray(values, dims="time",
                        coords={"time": pd.date_range(start, periods=len(values))})


def ensemble(values, start="2001-01-01") -> xr.DataArray:
    values = np.asarray(values, float)
    return xr.DataArray(values, dims=("time", "member"),
                        coords={"time": pd.date_range(start, periods=values.shape[0])})


def calibrated(obs_error: float, seed: int = 2014) -> dict:
    """Observations and calibrated posteriors (±σ and 5/12/50 members) for N_DAYS days.

    ``obs_error`` is σ_O as a fraction of the posterior σ of the day.
    """
    rng = np.random.default_rng(seed)
    day = np.arange(N_DAYS)
    mu = 2.0 * np.sin(2 * np.pi * day / 365.25)           # a seasonal posterior mean
    sd = 0.5 + 1.0 * rng.random(N_DAYS)                   # a posterior σ that varies by day
    truth = rng.normal(mu, sd)                            # the truth: a draw from the posterior
    sd_obs = obs_error * sd
    obs = truth + rng.normal(0.0, 1.0, N_DAYS) * sd_obs  # measured with error σ_O
    out = {"obs": obs, "sd_obs": sd_obs, "mu": mu, "sd": sd}
    for m in SIZES:
        out[m] = mu[:, None] + sd[:, None] * rng.normal(size=(N_DAYS, m))
    return out


@pytest.fixture(scope="module", params=[0.0, 0.25, 1.0],
                ids=["no-obs-error", "obs-error-0.25sd", "obs-error-1sd"])
def sim(request):
    return request.param, calibrated(request.param)


def test_calibrated_posteriors_cover_95_percent_whatever_the_form(sim):
    obs_error, d = sim
    obs, sd_obs = series(d["obs"]), series(d["sd_obs"])
    got = {"±σ": coverage(series(d["mu"]), obs, sd_obs, model_unc=series(d["sd"]))}
    got.update({m: coverage(ensemble(d[m]), obs, sd_obs) for m in SIZES})
    print(f"\ncoverage, σ_O = {obs_error} σ:",
          {k: round(v["coverage"], 4) for k, v in got.items()})
    for form, result in got.items():
        assert result["n"] == N_DAYS
        assert result["method"] == ("gaussian" if form == "±σ" else "ensemble")
        assert result["coverage"] == pytest.approx(0.95, abs=0.02), form


def test_raw_quantiles_would_have_been_too_narrow():
    # the old rule (the members' 2.5-97.5 % range) on the same calibrated 5-member ensemble
    d = calibrated(0.0)
    q025, q975 = np.quantile(d[5], [0.025, 0.975], axis=1)
    raw = np.mean((d["obs"] >= q025) & (d["obs"] <= q975))
    assert raw == pytest.approx(0.64, abs=0.02)
    assert coverage(ensemble(d[5]), series(d["obs"]))["coverage"] == pytest.approx(0.95, abs=0.01)


def test_calibrated_posteriors_get_the_same_crps_whatever_the_form(sim):
    obs_error, d = sim
    obs = series(d["obs"])
    values = {"±σ": crps(series(d["mu"]), obs, model_unc=series(d["sd"]))["crps"]}
    values.update({m: crps(ensemble(d[m]), obs)["crps"] for m in SIZES})
    print(f"\nCRPS, σ_O = {obs_error} σ:", {k: round(v, 4) for k, v in values.items()})
    assert max(values.values()) / min(values.values()) - 1 < 0.03
    # the 1/m² ("energy") estimator would have penalised the 5-member ensemble
    x = d[5]
    plain = np.mean(np.abs(x - d["obs"][:, None]).mean(1)
                    - 0.5 * np.abs(x[:, :, None] - x[:, None, :]).mean((1, 2)))
    assert plain / values["±σ"] - 1 > 0.05


def test_fair_crps_matches_pairwise_brute_force():
    rng = np.random.default_rng(3)
    for m in (2, 3, 5, 12):
        x = rng.normal(0.3, 1.7, (40, m))
        y = rng.normal(size=40)
        x[7, 0] = np.nan  # a missing member drops the day
        y[9] = np.nan     # a missing obs too
        expected = []
        for i in range(40):
            if not (np.isfinite(y[i]) and np.all(np.isfinite(x[i]))):
                expected.append(np.nan)
                continue
            spread = sum(abs(a - b) for a, b in itertools.product(x[i], x[i]))
            expected.append(sum(abs(a - y[i]) for a in x[i]) / m - spread / (2 * m * (m - 1)))
        np.testing.assert_allclose(crps_ensemble_values(x, y), expected, rtol=1e-12,
                                   atol=1e-14, err_msg=f"m={m}")
        valid = np.isfinite(expected)
        got = crps(ensemble(x), series(y), min_n=1)
        assert got["n"] == valid.sum() == 38
        assert got["crps"] == pytest.approx(np.nanmean(expected), rel=1e-12)


def test_fair_crps_single_member_is_absolute_error():
    x = np.array([[1.0], [4.0]])
    np.testing.assert_allclose(crps_ensemble_values(x, np.array([0.0, 5.0])), [1.0, 1.0])


def test_fair_crps_vectorised_over_sites():
    rng = np.random.default_rng(4)
    values = rng.normal(size=(2, 50, 6))
    obs = rng.normal(size=(2, 50))
    da = xr.DataArray(values, dims=("site", "time", "member"),
                      coords={"site": ["A", "B"], "time": pd.date_range("2001", periods=50)})
    o = xr.DataArray(obs, dims=("site", "time"), coords={"site": ["A", "B"],
                                                         "time": da["time"]})
    got = crps(da, o)["crps"]
    for i, site in enumerate(["A", "B"]):
        assert float(got.sel(site=site)) == pytest.approx(
            crps(ensemble(values[i]), series(obs[i]))["crps"], rel=1e-12)


def test_fair_crps_matches_xskillscore():
    xs = pytest.importorskip("xskillscore")
    rng = np.random.default_rng(5)
    m = 7
    fc = ensemble(rng.normal(size=(60, m)))
    ob = series(rng.normal(size=60))
    plain = xs.crps_ensemble(ob, fc, member_dim="member", dim=[]).values  # the 1/m² form
    x = fc.values
    pair_sum = np.abs(x[:, :, None] - x[:, None, :]).sum((1, 2))
    fair = plain + pair_sum / (2 * m**2) - pair_sum / (2 * m * (m - 1))
    assert crps(fc, ob)["crps"] == pytest.approx(fair.mean(), rel=1e-10)


def test_t_multiplier():
    assert t95(5) == pytest.approx(2.7764451, rel=1e-6)
    assert t95(12) == pytest.approx(2.2009852, rel=1e-6)
    assert t95(10_000) == pytest.approx(1.959964, abs=1e-3)
    assert math.isnan(t95(1))


def test_predictive_interval_by_hand():
    rng = np.random.default_rng(6)
    x = rng.normal(size=(30, 5))
    so = np.full(30, 0.4)
    mean, half = ensemble_predictive_interval(x, so)
    for i in range(30):
        s2 = np.var(x[i], ddof=1)
        assert mean[i] == pytest.approx(np.mean(x[i]))
        assert half[i] == pytest.approx(
            math.sqrt(stats.t.ppf(0.975, 4) ** 2 * s2 * 1.2 + 1.96**2 * 0.16))


def test_sites_band_uses_the_predictive_interval():
    from dashboard.sitedata import _band

    rng = np.random.default_rng(7)
    t = pd.date_range("2001-01-01", periods=20)
    values = rng.normal(size=(20, 5))
    values[3, 2] = np.nan
    ds = xr.Dataset({"NEE": (("time", "member"), values)}, coords={"time": t})
    value, lower, upper = _band(ds, "NEE")
    t4 = stats.t.ppf(0.975, 4)
    for i in range(20):
        if i == 3:  # one member missing: no value, no band
            assert np.isnan(value[i]) and np.isnan(lower[i]) and np.isnan(upper[i])
            continue
        mean, s = values[i].mean(), values[i].std(ddof=1)
        assert value[i] == pytest.approx(mean)
        assert lower[i] == pytest.approx(mean - t4 * s * math.sqrt(1 + 1 / 5))
        assert upper[i] == pytest.approx(mean + t4 * s * math.sqrt(1 + 1 / 5))
    # a ±σ run keeps ±1.96 σ
    sd = np.full(20, 0.5)
    ds = xr.Dataset({"NEE": ("time", values[:, 0]), "NEE_post_unc": ("time", sd)},
                    coords={"time": t})
    value, lower, upper = _band(ds, "NEE")
    np.testing.assert_allclose(upper - value, 1.96 * sd)


def test_score_reports_the_same_coverage_and_crps():
    d = calibrated(0.25, seed=9)
    obs, sd_obs = series(d["obs"][:400]), series(d["sd_obs"][:400])
    model = ensemble(d[12][:400])
    sc = score(model, obs, sd_obs)
    assert sc["uncertainty_method"] == "ensemble"
    assert sc["coverage"] == pytest.approx(coverage(model, obs, sd_obs)["coverage"])
    assert sc["crps"] == pytest.approx(crps(model, obs)["crps"])


def test_coverage_and_crps_match_noon_and_midnight_stamps():
    rng = np.random.default_rng(12)
    x = rng.normal(size=(60, 5))
    y = rng.normal(size=60)
    noon = ensemble(x).assign_coords(time=pd.date_range("2001-01-01 12:00", periods=60))
    assert coverage(noon, series(y))["n"] == 60
    assert crps(noon, series(y))["crps"] == pytest.approx(crps(ensemble(x), series(y))["crps"])
