"""Inter-model spread and its reduction, against explicit loops."""

from __future__ import annotations

import math

import numpy as np
import pandas as pd
import pytest
import xarray as xr

from dashboard.metrics import inter_model_spread, spread_reduction


def series(values, start="2001-01-01") -> xr.DataArray:
    return xr.DataArray(np.asarray(values, float), dims="time",
                        coords={"time": pd.date_range(start, periods=len(values))})


def reference_spread(runs: dict[str, xr.DataArray]) -> tuple[float, int]:
    """Mean over the dates every model has (finite) of the population std across models."""
    by_model = {k: dict(zip(pd.DatetimeIndex(v.time.values), v.values, strict=True))
                for k, v in runs.items()}
    dates = set.intersection(*(set(d) for d in by_model.values()))
    stds = []
    for t in sorted(dates):
        vals = [by_model[k][t] for k in by_model]
        if all(np.isfinite(vals)):
            mean = sum(vals) / len(vals)
            stds.append(math.sqrt(sum((v - mean) ** 2 for v in vals) / len(vals)))
    return sum(stds) / len(stds), len(stds)


def test_spread_with_uneven_coverage():
    rng = np.random.default_rng(2)
    a = series(rng.normal(size=100), start="2001-01-01")
    b = series(rng.normal(size=80), start="2001-01-21")     # starts later
    c_vals = rng.normal(size=100)
    c_vals[40:45] = np.nan                                   # a gap
    c = series(c_vals, start="2000-12-27")                  # starts earlier, ends earlier
    runs = {"A.v1": a, "B.v1": b, "C.v1": c}
    want, n_days = reference_spread(runs)
    got = inter_model_spread(runs)
    assert got["n_models"] == 3
    assert got["n_days"] == n_days
    assert got["spread"] == pytest.approx(want, rel=1e-12)
    assert got["insufficient"] is False
    # known answer: two models at +d and -d have std d
    two = inter_model_spread({"x": series(np.full(40, 3.0)), "y": series(np.full(40, -1.0))})
    assert two["spread"] == pytest.approx(2.0) and two["n_days"] == 40


def test_spread_insufficient_with_one_model_or_few_days():
    one = inter_model_spread({"A": series(np.ones(50))})
    assert one["n_models"] == 1 and one["insufficient"] is True and math.isnan(one["spread"])
    few = inter_model_spread({"A": series(np.ones(10)), "B": series(np.zeros(10))})
    assert few["n_days"] == 10 and few["insufficient"] is True and math.isnan(few["spread"])


def test_spread_of_ensembles_uses_member_mean():
    t = pd.date_range("2001-01-01", periods=40)
    ens = xr.DataArray(np.stack([np.full(40, 1.0), np.full(40, 3.0)], axis=1),
                       dims=("time", "member"), coords={"time": t})
    got = inter_model_spread({"E": ens, "D": series(np.zeros(40))})
    assert got["spread"] == pytest.approx(1.0)  # means 2 and 0


def test_spread_reduction_only_models_with_both_stages_and_same_days():
    n = 50
    priors = {"A": series(np.full(n, 2.0)), "B": series(np.full(n, -2.0)),
              "C": series(np.full(n, 100.0))}          # C has no posterior: ignored
    post_a = np.full(n, 1.0)
    post_a[:5] = np.nan                                # those days leave both stages
    posteriors = {"A": series(post_a), "B": series(np.full(n, -1.0))}
    prior_b = priors["B"].values.copy()
    prior_b[5:10] = 50.0                               # only on days both stages have
    priors["B"] = series(prior_b)
    got = spread_reduction(priors, posteriors)
    assert got["n_models"] == 2 and got["models"] == ["A", "B"]
    assert got["n_days"] == 45
    # reference by loop over the shared days
    s_prior = np.mean([abs(2.0 - prior_b[i]) / 2 for i in range(5, n)])
    s_post = 1.0
    assert got["spread_prior"] == pytest.approx(s_prior)
    assert got["spread_post"] == pytest.approx(s_post)
    assert got["spread_reduction"] == pytest.approx(1 - s_post / s_prior)


def test_spread_reduction_insufficient_with_one_common_model():
    got = spread_reduction({"A": series(np.ones(50)), "B": series(np.zeros(50))},
                           {"A": series(np.ones(50))})
    assert got["n_models"] == 1 and got["insufficient"] is True
    assert math.isnan(got["spread_reduction"])
