"""Coverage and CRPS against brute-force and numerical references."""

from __future__ import annotations

import itertools
import math

import numpy as np
import pandas as pd
import pytest
import xarray as xr
from scipy import integrate, stats

from dashboard.metrics import coverage, crps, score


def series(values, start="2001-01-01") -> xr.DataArray:
    return xr.DataArray(np.asarray(values, float), dims="time",
                        coords={"time": pd.date_range(start, periods=len(values))})


def ensemble(values, start="2001-01-01") -> xr.DataArray:
    values = np.asarray(values, float)
    return xr.DataArray(values, dims=("time", "member"),
                        coords={"time": pd.date_range(start, periods=values.shape[0])})


def test_gaussian_coverage_explicit_loop():
    rng = np.random.default_rng(5)
    n = 300
    o = rng.normal(size=n)
    m = o + rng.normal(0, 1.2, n)
    s_post = np.full(n, 0.8)
    s_obs = np.abs(rng.normal(0.6, 0.2, n))
    s_obs[:20] = np.nan          # missing obs error → 0
    o[50:60] = np.nan            # not valid days
    inside = total = 0
    for a, b, sp, so in zip(m, o, s_post, s_obs, strict=True):
        if not np.isfinite(b):
            continue
        so = so if np.isfinite(so) else 0.0
        total += 1
        half = 1.96 * math.sqrt(sp**2 + so**2)
        inside += (a - half) <= b <= (a + half)
    got = coverage(series(m), series(o), series(s_obs), model_unc=series(s_post))
    assert got["n"] == total == 290
    assert got["coverage"] == pytest.approx(inside / total)
    assert got["method"] == "gaussian"
    # score() reports the same
    sc = score(series(m), series(o), series(s_obs), model_unc=series(s_post))
    assert sc["coverage"] == pytest.approx(inside / total) and sc["n_coverage"] == 290


def test_coverage_nan_without_uncertainty_or_ensemble():
    got = coverage(series(np.ones(50)), series(np.zeros(50)))
    assert math.isnan(got["coverage"]) and got["n"] == 0 and got["insufficient"] is True


def test_ensemble_coverage_predictive_interval_widened_by_obs_error():
    rng = np.random.default_rng(8)
    n, k = 120, 7
    o = rng.normal(size=n)
    members = rng.normal(0, 1.0, (n, k)) + 0.2
    s_obs = np.full(n, 0.3)
    t = stats.t.ppf(0.975, k - 1)  # 2.447 for 7 members
    inside = plain = 0
    for i in range(n):
        x = members[i]
        mean = sum(x) / k
        var = sum((xi - mean) ** 2 for xi in x) / (k - 1)
        half = math.sqrt(t**2 * var * (1 + 1 / k) + (1.96 * s_obs[i]) ** 2)
        inside += mean - half <= o[i] <= mean + half
        half0 = t * math.sqrt(var * (1 + 1 / k))
        plain += mean - half0 <= o[i] <= mean + half0
    got = coverage(ensemble(members), series(o), series(s_obs))
    assert got["method"] == "ensemble" and got["n"] == n
    assert got["coverage"] == pytest.approx(inside / n)
    # without obs error, the model's own predictive interval
    assert coverage(ensemble(members), series(o))["coverage"] == pytest.approx(plain / n)


def test_crps_ensemble_brute_force():
    rng = np.random.default_rng(11)
    n, k = 45, 7
    o = rng.normal(size=n)
    members = rng.normal(0.5, 1.5, (n, k))
    members[3, 1] = np.nan  # day 3 is dropped
    per_day = []
    for i in range(n):
        x = members[i]
        if not np.all(np.isfinite(x)):
            continue
        e1 = sum(abs(xi - o[i]) for xi in x) / k
        # fair CRPS (Ferro 2014): the pairwise term over 2 k (k - 1)
        pairs = sum(abs(a - b) for a, b in itertools.product(x, x))
        per_day.append(e1 - pairs / (2 * k * (k - 1)))
    got = crps(ensemble(members), series(o))
    assert got["n"] == n - 1 == len(per_day)
    assert got["crps"] == pytest.approx(np.mean(per_day), rel=1e-12)
    assert score(ensemble(members), series(o))["crps"] == pytest.approx(np.mean(per_day))


def test_crps_gaussian_matches_numerical_integral():
    mu = np.array([0.0, 1.0, -2.0] * 12)
    sd = np.array([1.0, 0.5, 2.0] * 12)
    y = np.array([0.3, 2.0, -2.5] * 12)

    def numerical(m, s, obs):
        f = lambda x: (stats.norm.cdf(x, m, s) - (x >= obs)) ** 2  # noqa: E731
        lo, hi = m - 12 * s, m + 12 * s
        a, _ = integrate.quad(f, lo, obs, limit=200)
        b, _ = integrate.quad(f, obs, hi, limit=200)
        return a + b

    expected = np.mean([numerical(a, b, c) for a, b, c in zip(mu, sd, y, strict=True)])
    got = crps(series(mu), series(y), model_unc=series(sd))
    assert got["method"] == "gaussian" and got["n"] == 36
    assert got["crps"] == pytest.approx(expected, rel=1e-6)


def test_crps_insufficient_below_min_n():
    got = crps(ensemble(np.ones((10, 3))), series(np.zeros(10)))
    assert got["n"] == 10 and got["insufficient"] is True and math.isnan(got["crps"])
    assert crps(ensemble(np.ones((10, 3))), series(np.zeros(10)), min_n=5)["crps"] == 1.0
