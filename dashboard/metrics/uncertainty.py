"""Posterior uncertainty against observations: 95 % coverage and CRPS.

Definitions (GUIDE.md §3):

* **Coverage** — the fraction of valid observed days that fall inside the model's 95 % interval,
  widened by the observation error:

  - a run with a 1-sd uncertainty ``σ_post`` (``<var>_unc``): ``M ± 1.96 √(σ_post² + σ_O²)``;
  - an ensemble (``member`` dimension): the ensemble's 2.5–97.5 % range (``numpy.quantile``,
    linear interpolation) around its median ``q50``, each half-width widened in quadrature by the
    observation error: lower ``q50 − √((q50 − q2.5)² + (1.96 σ_O)²)``, upper
    ``q50 + √((q97.5 − q50)² + (1.96 σ_O)²)``. For a Gaussian ensemble this is the same interval
    as the ``σ_post`` rule.

  A day where ``σ_O`` is missing (or the observations carry no uncertainty at all) uses
  ``σ_O = 0``: the interval is the model's own. An ensemble wins over ``σ_post`` when a run has
  both. A run with neither has no coverage (NaN).
* **CRPS** (continuous ranked probability score, same units as the variable, lower is better),
  mean over valid days:

  - ensemble: ``E|X − y| − ½ E|X − X'|`` over the members (the "energy" form, members equally
    weighted), computed exactly from the sorted members;
  - ``σ_post`` run: the Gaussian closed form ``σ [z (2Φ(z) − 1) + 2φ(z) − 1/√π]`` with
    ``z = (y − μ)/σ`` (``|y − μ|`` when ``σ = 0``).

  The observation error does not enter the CRPS.

An ensemble day counts only when every member is finite. Each result carries its own ``n``; below
``min_n`` the value is NaN and ``insufficient`` is True.
"""

from __future__ import annotations

import numpy as np
import xarray as xr
from scipy.special import ndtr

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


def ensemble_coverage_values(members: np.ndarray, obs: np.ndarray,
                             sd_obs: np.ndarray | None = None) -> tuple[np.ndarray, np.ndarray]:
    """Coverage of ``obs`` by the ensemble's 2.5–97.5 % range widened by the obs error.

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
    so = _obs_sd(sd_obs, obs.shape)
    valid = np.isfinite(obs) & np.isfinite(members).all(-1)
    safe = np.where(valid[..., None], members, 0.0)
    q025, q50, q975 = np.quantile(safe, [0.025, 0.5, 0.975], axis=-1)
    lower = q50 - np.sqrt((q50 - q025) ** 2 + (Z95 * so) ** 2)
    upper = q50 + np.sqrt((q975 - q50) ** 2 + (Z95 * so) ** 2)
    with np.errstate(invalid="ignore"):
        inside = valid & (obs >= lower) & (obs <= upper)
    n = valid.sum(-1)
    with np.errstate(invalid="ignore", divide="ignore"):
        frac = np.where(n > 0, inside.sum(-1) / n, np.nan)
    return frac, n


def crps_ensemble_values(members: np.ndarray, obs: np.ndarray) -> np.ndarray:
    """Per-day ensemble CRPS ``E|X − y| − ½ E|X − X'|`` (NaN where a member or obs is missing).

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
    # E|X - X'| over all ordered pairs = (2 / m^2) * sum_i (2i - m - 1) x_(i), i = 1..m.
    weights = 2.0 * np.arange(1, m + 1) - m - 1
    term2 = 2.0 * (x * weights).sum(-1) / m**2
    out = term1 - 0.5 * term2
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
    """Fraction of valid observations inside the posterior 95 % interval (see module doc).

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
    like, o, (m, so, sd), (members, _, _) = prepare(obs, model, obs_unc, model_unc)
    cov, n, _, _, method = uncertainty_values(m, o, so, members, sd)
    insufficient = n < min_n
    cov = np.where(insufficient, np.nan, cov)
    return {"coverage": wrap_result(cov, like), "n": wrap_result(n, like), "method": method,
            "insufficient": wrap_result(insufficient, like)}


def crps(model: xr.DataArray, obs: xr.DataArray, *, model_unc: xr.DataArray | None = None,
         min_n: int = DEFAULT_MIN_N) -> dict:
    """Mean CRPS of an ensemble or Gaussian (``model_unc``) run against observations.

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
    like, o, (m, sd), (members, _) = prepare(obs, model, model_unc)
    _, _, value, n, method = uncertainty_values(m, o, None, members, sd)
    insufficient = n < min_n
    value = np.where(insufficient, np.nan, value)
    return {"crps": wrap_result(value, like), "n": wrap_result(n, like), "method": method,
            "insufficient": wrap_result(insufficient, like)}
