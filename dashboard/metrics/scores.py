"""Model–observation scores and prior → posterior misfit reduction (GUIDE.md §3).

For a model series M and observations O, on the days where both are valid (aligned on dates by an
inner join; an ensemble is scored through its mean, see :mod:`dashboard.metrics.common`):

``n``          number of valid days;
``bias``       mean(M − O);
``rmse``       √mean((M − O)²);
``nme``        Σ|M − O| / Σ|O − mean(O)| (normalised mean error, PLUMBER; 1 = as good as the
               observed mean, lower is better);
``r``          Pearson correlation;
``sd_ratio``   σ_M / σ_O (population standard deviations, ddof = 0);
``chi2``       mean(((M − O)/σ_O)²) over the valid days with a finite σ_O > 0 (``n_chi2`` days);
``coverage``   and ``crps``: see :mod:`dashboard.metrics.uncertainty` (``n_coverage`` days).

Every score is NaN when its own n is below ``min_n`` (default :data:`DEFAULT_MIN_N`), and
``insufficient`` is True when ``n < min_n``. Scores whose denominator is zero (a constant series)
are NaN.

``misfit_reduction = 1 − rmse_post / rmse_prior`` and ``misfit_reduction_chi2 = 1 − chi2_post /
chi2_prior`` are computed on the SAME days: days valid for the observations, the prior and the
posterior (and, for chi2, with a finite σ_O > 0). Positive = the calibration brought the model
closer to the data; 1 = perfect fit; negative = worse.

The functions take 1-D series and return Python scalars; series with extra dimensions (besides
``time`` and ``member``) are scored along ``time`` for every other coordinate and return
DataArrays.

Daily series stamped at different clock times (a model at noon, observations at midnight) are
matched on their dates: when every series is daily (all its stamps at one clock time) and the
clock times differ, the times are floored to the date first (:func:`on_dates`).
"""

from __future__ import annotations

from typing import Any

import numpy as np
import xarray as xr

from dashboard.metrics.common import DEFAULT_MIN_N, finite_positive, prepare, wrap_result
from dashboard.metrics.uncertainty import uncertainty_values

#: Keys of :func:`score` results, in table order.
SCORE_KEYS: tuple[str, ...] = ("n", "bias", "rmse", "nme", "r", "sd_ratio", "chi2", "coverage",
                               "crps", "insufficient", "n_chi2", "n_coverage")

#: Keys of :func:`misfit_reduction` results, in table order.
MISFIT_KEYS: tuple[str, ...] = ("n", "rmse_prior", "rmse_post", "misfit_reduction",
                                "chi2_prior", "chi2_post", "misfit_reduction_chi2",
                                "insufficient", "n_chi2")


# --------------------------------------------------------------------------------------------
# numpy kernels (time on the last axis, NaN-aware through an explicit validity mask)
# --------------------------------------------------------------------------------------------

def _safe_div(num: np.ndarray, den: np.ndarray) -> np.ndarray:
    num = np.asarray(num, dtype="float64")
    den = np.asarray(den, dtype="float64")
    with np.errstate(invalid="ignore", divide="ignore"):
        return np.where(den != 0, num / np.where(den != 0, den, 1.0), np.nan)


def deterministic_values(m: np.ndarray, o: np.ndarray, valid: np.ndarray) -> dict[str, np.ndarray]:
    """Bias, RMSE, NME, r and σ ratio of ``m`` against ``o`` over ``valid`` days (last axis).

    Parameters
    ----------
    m, o : numpy.ndarray
        Model and observations, same shape, time on the last axis.
    valid : numpy.ndarray of bool
        Days to use.

    Returns
    -------
    dict of numpy.ndarray
        ``n, bias, rmse, nme, r, sd_ratio`` (NaN where n = 0 or a denominator is 0).
    """
    n = valid.sum(-1)
    d = np.where(valid, m - o, 0.0)
    mean_m = _safe_div(np.where(valid, m, 0.0).sum(-1), n)
    mean_o = _safe_div(np.where(valid, o, 0.0).sum(-1), n)
    am = np.where(valid, m - mean_m[..., None], 0.0)
    ao = np.where(valid, o - mean_o[..., None], 0.0)
    sd_m = np.sqrt(_safe_div((am**2).sum(-1), n))
    sd_o = np.sqrt(_safe_div((ao**2).sum(-1), n))
    cov = _safe_div((am * ao).sum(-1), n)
    return {
        "n": n,
        "bias": _safe_div(d.sum(-1), n),
        "rmse": np.sqrt(_safe_div((d**2).sum(-1), n)),
        "nme": _safe_div(np.abs(d).sum(-1), np.abs(ao).sum(-1)),
        "r": np.clip(_safe_div(cov, sd_m * sd_o), -1.0, 1.0),
        "sd_ratio": _safe_div(sd_m, sd_o),
    }


def chi2_values(m: np.ndarray, o: np.ndarray, sd_obs: np.ndarray | None,
                valid: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """``mean(((m − o)/σ_O)²)`` over valid days with finite σ_O > 0, and that number of days."""
    if sd_obs is None:
        shape = np.shape(valid)[:-1]
        return np.full(shape, np.nan), np.zeros(shape, dtype=int)
    ok = valid & finite_positive(sd_obs)
    n = ok.sum(-1)
    with np.errstate(invalid="ignore", divide="ignore"):
        z2 = np.where(ok, ((m - o) / np.where(ok, sd_obs, 1.0)) ** 2, 0.0)
    return _safe_div(z2.sum(-1), n), n


_DAY_NS = 86_400 * 10**9


def _clock_time(da: xr.DataArray) -> int | None:
    """Clock time (ns after midnight) shared by every stamp of a daily series, else None.

    A series is daily here when its times are datetime64, increasing, and all at the same
    clock time (consecutive stamps a whole number of days apart; gaps allowed).
    """
    times = da["time"].values
    if times.dtype.kind != "M" or times.size == 0:
        return None
    ns = times.astype("datetime64[ns]").view("i8")
    if np.isnat(times).any() or (times.size > 1 and np.any(np.diff(ns) <= 0)):
        return None
    clock = ns % _DAY_NS
    return int(clock[0]) if np.all(clock == clock[0]) else None


def on_dates(*arrays: xr.DataArray | None) -> list[xr.DataArray | None]:
    """Match daily series stamped at different clock times by flooring their times to dates.

    Parameters
    ----------
    *arrays : xarray.DataArray or None
        Series with a ``time`` dimension (``None`` entries and arrays without ``time`` pass
        through).

    Returns
    -------
    list of xarray.DataArray or None
        The arrays unchanged when their stamps already share a clock time or when any of them
        is not daily (sub-daily, irregular, cftime); otherwise every array with its ``time``
        floored to the day (noon of 1 May → 1 May), so an inner join on dates pairs them.
    """
    present = [a for a in arrays if a is not None and "time" in a.dims]
    if len(present) < 2:
        return list(arrays)
    clocks = [_clock_time(a) for a in present]
    if any(c is None for c in clocks) or len(set(clocks)) == 1:
        return list(arrays)
    return [a if a is None or "time" not in a.dims
            else a.assign_coords(time=a["time"].dt.floor("D")) for a in arrays]


# --------------------------------------------------------------------------------------------
# Public API
# --------------------------------------------------------------------------------------------

def score(model: xr.DataArray, obs: xr.DataArray, obs_unc: xr.DataArray | None = None, *,
          model_unc: xr.DataArray | None = None, min_n: int = DEFAULT_MIN_N) -> dict[str, Any]:
    """Score a model series against observations (definitions in the module docstring).

    Parameters
    ----------
    model : xarray.DataArray
        Model series with a ``time`` dimension of dates, optionally ``member`` (ensemble:
        deterministic scores use the ensemble mean, coverage/CRPS the members).
    obs : xarray.DataArray
        Observations on dates (may span other dates: aligned by inner join). Daily series
        stamped at different clock times are matched on their dates (:func:`on_dates`).
    obs_unc : xarray.DataArray, optional
        Observation 1-sd uncertainty (for ``chi2`` and the coverage interval).
    model_unc : xarray.DataArray, optional
        Model posterior 1-sd uncertainty (coverage and Gaussian CRPS of non-ensemble runs).
    min_n : int, default DEFAULT_MIN_N
        Minimum number of valid days; below it every score is NaN and ``insufficient`` True.

    Returns
    -------
    dict
        ``n, bias, rmse, nme, r, sd_ratio, chi2, coverage, crps, insufficient`` plus
        ``n_chi2`` and ``n_coverage`` (days behind chi2 and coverage/CRPS) and
        ``uncertainty_method`` (``"ensemble"``, ``"gaussian"`` or None). Python scalars for
        1-D series.

    Examples
    --------
    >>> import numpy as np, pandas as pd, xarray as xr
    >>> t = pd.date_range("2000-01-01", periods=40)
    >>> o = xr.DataArray(np.arange(40.0), dims="time", coords={"time": t})
    >>> score(o + 1.0, o)["bias"]
    1.0
    """
    model, obs, obs_unc, model_unc = on_dates(model, obs, obs_unc, model_unc)
    like, o, (m, su, msd), (members, _, _) = prepare(obs, model, obs_unc, model_unc)
    valid = np.isfinite(m) & np.isfinite(o)
    out = deterministic_values(m, o, valid)
    out["chi2"], out["n_chi2"] = chi2_values(m, o, su, valid)
    cov, n_cov, crps, _, method = uncertainty_values(m, o, su, members, msd)
    out["coverage"], out["crps"], out["n_coverage"] = cov, crps, n_cov
    n = out["n"]
    insufficient = n < min_n
    for key in ("bias", "rmse", "nme", "r", "sd_ratio"):
        out[key] = np.where(insufficient, np.nan, out[key])
    out["chi2"] = np.where(out["n_chi2"] < min_n, np.nan, out["chi2"])
    for key in ("coverage", "crps"):
        out[key] = np.where(n_cov < min_n, np.nan, out[key])
    out["insufficient"] = insufficient
    result = {key: wrap_result(out[key], like) for key in SCORE_KEYS}
    result["uncertainty_method"] = method
    return result


def misfit_reduction(prior: xr.DataArray, posterior: xr.DataArray, obs: xr.DataArray,
                     obs_unc: xr.DataArray | None = None, *,
                     min_n: int = DEFAULT_MIN_N) -> dict[str, Any]:
    """Reduction of model–data misfit from prior to posterior, on the same days.

    Parameters
    ----------
    prior, posterior : xarray.DataArray
        Model series (``time``; ensembles are reduced to their mean).
    obs : xarray.DataArray
        Observations.
    obs_unc : xarray.DataArray, optional
        Observation 1-sd uncertainty (for the chi2 version).
    min_n : int, default DEFAULT_MIN_N
        Minimum number of shared valid days.

    Returns
    -------
    dict
        ``n`` (days valid for obs, prior and posterior), ``rmse_prior``, ``rmse_post``,
        ``misfit_reduction = 1 − rmse_post/rmse_prior``, ``chi2_prior``, ``chi2_post``,
        ``misfit_reduction_chi2 = 1 − chi2_post/chi2_prior``, ``insufficient`` and ``n_chi2``
        (shared days with a finite σ_O > 0).
    """
    prior, posterior, obs, obs_unc = on_dates(prior, posterior, obs, obs_unc)
    like, o, (p, q, su), _ = prepare(obs, prior, posterior, obs_unc)
    valid = np.isfinite(p) & np.isfinite(q) & np.isfinite(o)
    n = valid.sum(-1)
    rmse_prior = deterministic_values(p, o, valid)["rmse"]
    rmse_post = deterministic_values(q, o, valid)["rmse"]
    chi2_prior, n_chi2 = chi2_values(p, o, su, valid)
    chi2_post, _ = chi2_values(q, o, su, valid)
    insufficient = n < min_n
    low_chi2 = n_chi2 < min_n
    out = {
        "n": n,
        "rmse_prior": np.where(insufficient, np.nan, rmse_prior),
        "rmse_post": np.where(insufficient, np.nan, rmse_post),
        "misfit_reduction": np.where(insufficient, np.nan, 1.0 - _safe_div(rmse_post, rmse_prior)),
        "chi2_prior": np.where(low_chi2, np.nan, chi2_prior),
        "chi2_post": np.where(low_chi2, np.nan, chi2_post),
        "misfit_reduction_chi2": np.where(low_chi2, np.nan,
                                          1.0 - _safe_div(chi2_post, chi2_prior)),
        "insufficient": insufficient,
        "n_chi2": n_chi2,
    }
    return {key: wrap_result(out[key], like) for key in MISFIT_KEYS}
