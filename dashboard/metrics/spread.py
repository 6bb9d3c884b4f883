"""Inter-model spread at a site and its reduction by calibration (GUIDE.md §3).

``spread`` for a variable, site and stage = the mean over *common days* of the standard deviation
across models (population standard deviation, ``ddof = 0``: the models are the whole population
being compared, not a sample). Common days are the dates every model has (inner join on dates)
with a finite value from every model — a model with a shorter record shortens the period rather
than changing the set of models from day to day. Ensembles enter through their mean.

``spread_reduction = 1 − spread_post / spread_prior`` uses only the models that have both stages
at the site, and the same days for both stages (days where every one of those models is finite
in both its prior and its posterior). Positive = the models agree better after calibration.

Results carry ``n_models`` and ``n_days``; with fewer than two models or fewer than ``min_n``
common days the spread is NaN and ``insufficient`` is True.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

import numpy as np
import xarray as xr

from dashboard.metrics.common import (
    DEFAULT_MIN_N,
    align_on_time,
    aligned_values,
    ensemble_mean,
    is_plain_series,
    time_last,
    wrap_result,
)


def _stack(series: list[xr.DataArray]) -> tuple[np.ndarray, xr.DataArray]:
    """Stack series aligned on their common dates on a leading model axis (time last).

    Returns the values and a template whose non-time dims name the results' axes.
    """
    if is_plain_series(*series):
        values = [v if v.ndim == 1 else v.mean(axis=-1) for v in aligned_values(*series)]
        return np.stack(values), series[0]
    aligned = xr.broadcast(*align_on_time(*[ensemble_mean(s) for s in series]))
    template = aligned[0].transpose(..., "time")
    values = np.stack([time_last(a.transpose(*template.dims)) for a in aligned])
    return values, template


def _spread_values(values: np.ndarray, valid: np.ndarray) -> np.ndarray:
    """Mean over valid days (last axis) of the std across models (axis 0, ddof = 0)."""
    safe = np.where(valid[None, ...], values, 0.0)
    per_day = safe.std(axis=0)
    n = valid.sum(-1)
    with np.errstate(invalid="ignore", divide="ignore"):
        return np.where(n > 0, np.where(valid, per_day, 0.0).sum(-1) / np.maximum(n, 1), np.nan)


def _empty(keys: tuple[str, ...], n_models: int, models: list[str]) -> dict[str, Any]:
    out: dict[str, Any] = {k: np.nan for k in keys}
    out.update(n_models=n_models, n_days=0, insufficient=True, models=models)
    return out


def inter_model_spread(runs: Mapping[str, xr.DataArray], *,
                       min_n: int = DEFAULT_MIN_N) -> dict[str, Any]:
    """Mean over common days of the standard deviation across models.

    Parameters
    ----------
    runs : mapping of str to xarray.DataArray
        One series per model (``time``; optionally ``member``), same variable and stage.
    min_n : int, default DEFAULT_MIN_N
        Minimum number of common days.

    Returns
    -------
    dict
        ``spread`` (units of the variable), ``n_models``, ``n_days`` (common valid days),
        ``insufficient`` (fewer than 2 models or ``n_days < min_n``) and ``models`` (sorted
        names).
    """
    models = sorted(runs)
    if len(models) < 2:
        return _empty(("spread",), len(models), models)
    values, template = _stack([runs[k] for k in models])
    valid = np.isfinite(values).all(axis=0)
    n_days = valid.sum(-1)
    spread = _spread_values(values, valid)
    insufficient = n_days < min_n
    return {
        "spread": wrap_result(np.where(insufficient, np.nan, spread), template),
        "n_models": len(models),
        "n_days": wrap_result(n_days, template),
        "insufficient": wrap_result(insufficient, template),
        "models": models,
    }


def spread_reduction(priors: Mapping[str, xr.DataArray], posteriors: Mapping[str, xr.DataArray],
                     *, min_n: int = DEFAULT_MIN_N) -> dict[str, Any]:
    """Reduction of inter-model spread from prior to posterior (same models, same days).

    Parameters
    ----------
    priors, posteriors : mapping of str to xarray.DataArray
        One series per model for each stage. Models missing from either mapping are ignored.
    min_n : int, default DEFAULT_MIN_N
        Minimum number of common days.

    Returns
    -------
    dict
        ``spread_prior``, ``spread_post``, ``spread_reduction = 1 − spread_post/spread_prior``,
        ``n_models`` (models with both stages), ``n_days``, ``insufficient`` and ``models``.
    """
    models = sorted(set(priors) & set(posteriors))
    keys = ("spread_prior", "spread_post", "spread_reduction")
    if len(models) < 2:
        return _empty(keys, len(models), models)
    k = len(models)
    values, template = _stack([priors[m] for m in models] + [posteriors[m] for m in models])
    valid = np.isfinite(values).all(axis=0)
    n_days = valid.sum(-1)
    s_prior = _spread_values(values[:k], valid)
    s_post = _spread_values(values[k:], valid)
    with np.errstate(invalid="ignore", divide="ignore"):
        reduction = np.where(s_prior > 0, 1.0 - s_post / np.where(s_prior > 0, s_prior, 1.0),
                             np.nan)
    insufficient = n_days < min_n
    return {
        "spread_prior": wrap_result(np.where(insufficient, np.nan, s_prior), template),
        "spread_post": wrap_result(np.where(insufficient, np.nan, s_post), template),
        "spread_reduction": wrap_result(np.where(insufficient, np.nan, reduction), template),
        "n_models": k,
        "n_days": wrap_result(n_days, template),
        "insufficient": wrap_result(insufficient, template),
        "models": models,
    }
