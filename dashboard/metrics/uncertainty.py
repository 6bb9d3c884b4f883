"""Posterior uncertainty against observations: 95 % coverage and CRPS.

Groups submit a posterior uncertainty in one of two forms, and both are scored alike (GUIDE.md §3):
a 1-sd uncertainty ``σ_post`` (``<var>_unc`` / ``<var>_post_unc``) around the run, or an
ensemble of ``m`` members (a ``member`` dimension) with mean ``x̄`` and sample standard deviation
``s`` (ddof = 1).

* **Coverage** — the fraction of valid observed days inside the 95 % *predictive* interval of
  the observation, i.e. the model's interval widened by the observation error ``σ_O`` added in
  quadrature:

  - ``σ_post`` run: ``M ± 1.96 √(σ_post² + σ_O²)``;
  - ensemble: ``x̄ ± √((t₍m−1, 0.975₎ s √(1 + 1/m))² + (1.96 σ_O)²)``: the ensemble's own 95 %
    predictive interval widened by the observation error in quadrature, as for ``σ_post``.
    Without observation error this is the exact predictive interval of a new draw from the
    (Gaussian) distribution the members sample (Student's t, because the mean and spread are
    estimated from only ``m`` members): a perfectly calibrated ensemble of any size covers 95 %
    of the observations. Raw 2.5–97.5 % quantiles of the members are too narrow for small ``m``
    (a calibrated 5-member ensemble would cover 0.64, a 12-member one 0.82). With an
    observation error as large as the ensemble spread a calibrated 5-member ensemble covers
    about 0.965 (12 members 0.956, 50 members 0.951); multiplying ``σ_O`` by ``t`` as well
    would give 0.988.

  Coverage is ≈ 0.95 when both the posterior uncertainty and the observation uncertainty are
  right; lower means over-confident (too narrow), higher under-confident (too wide). A day where
  ``σ_O`` is missing (or the observations carry no uncertainty at all) uses ``σ_O = 0``: the
  interval is the model's own. An ensemble wins over ``σ_post`` when a run has both. A run with
  neither has no coverage (NaN).
* **CRPS** (continuous ranked probability score, same units as the variable, lower is better),
  mean over valid days:

  - ensemble: the *fair* CRPS (Ferro 2014)
    ``(1/m) Σᵢ |xᵢ − y| − 1/(2 m (m − 1)) Σᵢ Σⱼ |xᵢ − xⱼ|``, computed exactly from the sorted
    members. It is an unbiased estimate of the CRPS of the distribution the members are drawn
    from, so its expectation does not depend on ``m`` (the plain ``1/(2m²)`` form penalises
    small ensembles);
  - ``σ_post`` run: the Gaussian closed form ``σ [z (2Φ(z) − 1) + 2φ(z) − 1/√π]`` with
    ``z = (y − μ)/σ`` (``|y − μ|`` when ``σ = 0``).

  The observation error does not enter the CRPS.

An ensemble day counts only when every member is finite. Each result carries its own ``n``; below
``min_n`` the value is NaN and ``insufficient`` is True. Daily series stamped at different clock
times (noon vs midnight) are matched on their dates (see :func:`dashboard.metrics.scores.on_dates`).
"""

from __future__ import annotations

import numpy as np
import xarray as xr
from scipy.special import ndtr
from scipy.stats import t as student_t

from dashboard.metrics.common import DEFAULT_MIN_N, prepare, wrap_result

#: Half-width of a central 95 % Gaussian interval in standard deviations.
Z95 = 1.959963984540054

_INV_SQRT_PI = 1.0 / np.sqrt(np.pi)
_INV_SQRT_2PI = 1.0 / np.sqrt(2.0 * np.pi)


# --------------------------------------------------------------------------------------------
# numpy kernels (time on the last axis; members on the axis after time)
# --------------------------------------------------------------------------------------------

def _obs_sd(sd_obs: np.ndarray | None, shape: tuple[int, ...]) -> np.ndarray:
    if sd_obs is None:
        return np.zeros(shape)
    sd = np.broadcast_to(np.asarray(sd_obs, dtype="float64"), shape)
    with np.errstate(invalid="ignore"):
        return np.where(np.isfinite(sd) & (sd > 0), sd, 0.0)


def gaussian_coverage_values(mean: np.ndarray, sd_post: np.ndarray, obs: np.ndarray,
                             sd_obs: np.ndarray | None = None) -> tuple[np.ndarray, np.ndarray]:
    """Coverage of ``obs`` by ``mean ± 1.96 √(sd_post² + sd_obs²)`` along the last axis.

    Parameters
    ----------
    mean, sd_post, obs : numpy.ndarray
        Model value, model 1-sd uncertainty and observation (same shape, time last).
    sd_obs : numpy.ndarray, optional
        Observation 1-sd uncertainty (missing → 0).

    Returns
    -------
    tuple of numpy.ndarray
        ``(fraction, n)``: fraction of valid days inside the interval (NaN when n = 0) and the
        number of valid days (finite mean, obs and non-negative ``sd_post``).
    """
    mean, sd_post, obs = (np.asarray(a, dtype="float64") for a in (mean, sd_post, obs))
    so = _obs_sd(sd_obs, obs.shape)
    with np.errstate(invalid="ignore"):
        valid = np.isfinite(mean) & np.isfinite(obs) & np.isfinite(sd_post) & (sd_post >= 0)
        half = Z95 * np.sqrt(sd_post**2 + so**2)
        inside = valid & (np.abs(obs - mean) <= half)
    n = valid.sum(-1)
    with np.errstate(invalid="ignore", divide="ignore"):
        frac = np.where(n > 0, inside.sum(-1) / n, np.nan)
    return frac, n


def t95(m: int | np.ndarray) -> float | np.ndarray:
    """Two-sided 95 % Student-t multiplier ``t₍m−1, 0.975₎`` for an ensemble of ``m`` members.

    Parameters
    ----------
    m : int or numpy.ndarray
        Ensemble size(s).

    Returns
    -------
    float or numpy.ndarray
        The 97.5 % quantile of Student's t with ``m − 1`` degrees of freedom (NaN for m < 2).
        Tends to 1.96 for large ``m``; 2.776 for m = 5, 2.201 for m = 12.
    """
    dof = np.asarray(m, dtype="float64") - 1.0
    with np.errstate(invalid="ignore"):
        out = np.where(dof >= 1.0, student_t.ppf(0.975, np.maximum(dof, 1.0)), np.nan)
    return out.item() if out.ndim == 0 else out


def ensemble_predictive_interval(members: np.ndarray, sd_obs: np.ndarray | None = None, *,
                                 axis: int = -1) -> tuple[np.ndarray, np.ndarray]:
    """Centre and half-width of an ensemble's 95 % predictive interval.

    ``x̄ ± √((t₍m−1, 0.975₎ s √(1 + 1/m))² + (1.96 σ_O)²)`` with ``x̄`` the member mean, ``s``
    the sample standard deviation (ddof = 1) and ``m`` the number of members: without ``σ_O``
    the interval that contains a new draw from the members' distribution with probability 0.95
    when the spread is estimated from ``m`` members, widened by the observation error in
    quadrature like the ``σ_post`` form.

    Parameters
    ----------
    members : numpy.ndarray
        Ensemble values, members along ``axis``.
    sd_obs : numpy.ndarray, optional
        Observation 1-sd uncertainty, broadcastable to ``members`` without ``axis`` (missing or
        non-positive → 0). Leave out for the model's own interval (the drawn band).
    axis : int, default -1
        Member axis.

    Returns
    -------
    tuple of numpy.ndarray
        ``(mean, half_width)``; NaN where any member is missing (and everywhere for m < 2).
    """
    x = np.moveaxis(np.asarray(members, dtype="float64"), axis, -1)
    m = x.shape[-1]
    with np.errstate(invalid="ignore", divide="ignore"):
        mean = x.mean(-1)
        var = x.var(-1, ddof=1) if m >= 2 else np.full(mean.shape, np.nan)
        so = _obs_sd(sd_obs, mean.shape)
        half = np.sqrt(t95(m) ** 2 * var * (1.0 + 1.0 / m) + (1.96 * so) ** 2)
    return mean, half


def ensemble_coverage_values(members: np.ndarray, obs: np.ndarray,
                             sd_obs: np.ndarray | None = None) -> tuple[np.ndarray, np.ndarray]:
    """Coverage of ``obs`` by the ensemble's 95 % predictive interval (with obs error).

    The interval is ``x̄ ± √((t₍m−1, 0.975₎ s √(1 + 1/m))² + (1.96 σ_O)²)``
    (:func:`ensemble_predictive_interval`).

    Parameters
    ----------
    members : numpy.ndarray
        Shape ``(..., time, member)``.
    obs : numpy.ndarray
        Shape ``(..., time)``.
    sd_obs : numpy.ndarray, optional
        Observation 1-sd uncertainty, shape ``(..., time)`` (missing → 0).

    Returns
    -------
    tuple of numpy.ndarray
        ``(fraction, n)`` as in :func:`gaussian_coverage_values`.
    """
    members = np.asarray(members, dtype="float64")
    obs = np.asarray(obs, dtype="float64")
    valid = np.isfinite(obs) & np.isfinite(members).all(-1)
    safe = np.where(valid[..., None], members, 0.0)
    mean, half = ensemble_predictive_interval(safe, sd_obs)
    with np.errstate(invalid="ignore"):
        inside = valid & (np.abs(obs - mean) <= half)
    n = valid.sum(-1)
    with np.errstate(invalid="ignore", divide="ignore"):
        frac = np.where(n > 0, inside.sum(-1) / n, np.nan)
    return frac, n


def crps_ensemble_values(members: np.ndarray, obs: np.ndarray) -> np.ndarray:
    """Per-day fair ensemble CRPS (Ferro 2014); NaN where a member or the obs is missing.

    ``(1/m) Σᵢ |xᵢ − y| − 1/(2 m (m − 1)) Σᵢ Σⱼ |xᵢ − xⱼ|``: unbiased for the CRPS of the
    distribution the ``m`` members are drawn from, so ensembles of different sizes (and a
    Gaussian ``σ_post``) score alike. A single member gives the absolute error.

    Parameters
    ----------
    members : numpy.ndarray
        Shape ``(..., time, member)``.
    obs : numpy.ndarray
        Shape ``(..., time)``.

    Returns
    -------
    numpy.ndarray
        Shape ``(..., time)``.
    """
    x = np.sort(np.asarray(members, dtype="float64"), axis=-1)
    y = np.asarray(obs, dtype="float64")
    m = x.shape[-1]
    term1 = np.abs(x - y[..., None]).mean(-1)
    if m >= 2:
        # Σᵢ Σⱼ |xᵢ − xⱼ| = 2 Σᵢ (2i − m − 1) x₍ᵢ₎ over the sorted members, i = 1..m.
        weights = 2.0 * np.arange(1, m + 1) - m - 1
        pair_sum = 2.0 * (x * weights).sum(-1)
        out = term1 - pair_sum / (2.0 * m * (m - 1))
    else:
        out = term1
    valid = np.isfinite(y) & np.isfinite(x).all(-1)
    return np.where(valid, out, np.nan)


def crps_gaussian_values(mean: np.ndarray, sd: np.ndarray, obs: np.ndarray) -> np.ndarray:
    """Per-day CRPS of a Gaussian forecast N(mean, sd²) (closed form; ``|y − μ|`` for sd = 0)."""
    mu, sd, y = (np.asarray(a, dtype="float64") for a in (mean, sd, obs))
    with np.errstate(invalid="ignore", divide="ignore"):
        z = (y - mu) / sd
        pdf = _INV_SQRT_2PI * np.exp(-0.5 * z**2)
        gauss = sd * (z * (2.0 * ndtr(z) - 1.0) + 2.0 * pdf - _INV_SQRT_PI)
        out = np.where(sd == 0, np.abs(y - mu), gauss)
        valid = np.isfinite(mu) & np.isfinite(y) & np.isfinite(sd) & (sd >= 0)
    return np.where(valid, out, np.nan)


def _mean_over_time(values: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    valid = np.isfinite(values)
    n = valid.sum(-1)
    with np.errstate(invalid="ignore", divide="ignore"):
        mean = np.where(n > 0, np.where(valid, values, 0.0).sum(-1) / n, np.nan)
    return mean, n


# --------------------------------------------------------------------------------------------
# Array-level helper used by score() and the public functions below
# --------------------------------------------------------------------------------------------

def uncertainty_values(det: np.ndarray, obs: np.ndarray, sd_obs: np.ndarray | None,
                       members: np.ndarray | None, model_sd: np.ndarray | None
                       ) -> tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray, str | None]:
    """Coverage and CRPS of aligned arrays (time last; members after time).

    Returns
    -------
    tuple
        ``(coverage, n_coverage, crps, n_crps, method)`` where ``method`` is ``"ensemble"``,
        ``"gaussian"`` or ``None`` (no uncertainty: values NaN, n 0).
    """
    if members is not None:
        cov, n_cov = ensemble_coverage_values(members, obs, sd_obs)
        value, n_crps = _mean_over_time(crps_ensemble_values(members, obs))
        return cov, n_cov, value, n_crps, "ensemble"
    if model_sd is not None:
        cov, n_cov = gaussian_coverage_values(det, model_sd, obs, sd_obs)
        value, n_crps = _mean_over_time(crps_gaussian_values(det, model_sd, obs))
        return cov, n_cov, value, n_crps, "gaussian"
    shape = np.shape(obs)[:-1]
    nan = np.full(shape, np.nan)
    zero = np.zeros(shape, dtype=int)
    return nan, zero, nan.copy(), zero.copy(), None


def coverage(model: xr.DataArray, obs: xr.DataArray, obs_unc: xr.DataArray | None = None, *,
             model_unc: xr.DataArray | None = None, min_n: int = DEFAULT_MIN_N) -> dict:
    """Fraction of valid observations inside the 95 % predictive interval (see module doc).

    Parameters
    ----------
    model : xarray.DataArray
        Model series (``time``; optionally ``member``).
    obs : xarray.DataArray
        Observed series (``time``).
    obs_unc : xarray.DataArray, optional
        Observation 1-sd uncertainty.
    model_unc : xarray.DataArray, optional
        Model 1-sd uncertainty (ignored for ensembles).
    min_n : int, default DEFAULT_MIN_N
        Minimum number of valid days.

    Returns
    -------
    dict
        ``coverage``, ``n``, ``method`` (``"ensemble"``, ``"gaussian"`` or None) and
        ``insufficient`` (n < min_n; coverage then NaN).
    """
    from dashboard.metrics.scores import on_dates  # scores imports this module

    model, obs, obs_unc, model_unc = on_dates(model, obs, obs_unc, model_unc)
    like, o, (m, so, sd), (members, _, _) = prepare(obs, model, obs_unc, model_unc)
    cov, n, _, _, method = uncertainty_values(m, o, so, members, sd)
    insufficient = n < min_n
    cov = np.where(insufficient, np.nan, cov)
    return {"coverage": wrap_result(cov, like), "n": wrap_result(n, like), "method": method,
            "insufficient": wrap_result(insufficient, like)}


def crps(model: xr.DataArray, obs: xr.DataArray, *, model_unc: xr.DataArray | None = None,
         min_n: int = DEFAULT_MIN_N) -> dict:
    """Mean CRPS of an ensemble (fair CRPS) or Gaussian (``model_unc``) run against obs.

    Parameters
    ----------
    model : xarray.DataArray
        Model series (``time``; ``member`` for an ensemble).
    obs : xarray.DataArray
        Observed series (``time``).
    model_unc : xarray.DataArray, optional
        Model 1-sd uncertainty (Gaussian closed form; ignored for ensembles).
    min_n : int, default DEFAULT_MIN_N
        Minimum number of valid days.

    Returns
    -------
    dict
        ``crps``, ``n``, ``method`` and ``insufficient``.
    """
    from dashboard.metrics.scores import on_dates  # scores imports this module

    model, obs, model_unc = on_dates(model, obs, model_unc)
    like, o, (m, sd), (members, _) = prepare(obs, model, model_unc)
    _, _, value, n, method = uncertainty_values(m, o, None, members, sd)
    insufficient = n < min_n
    value = np.where(insufficient, np.nan, value)
    return {"crps": wrap_result(value, like), "n": wrap_result(n, like), "method": method,
            "insufficient": wrap_result(insufficient, like)}
