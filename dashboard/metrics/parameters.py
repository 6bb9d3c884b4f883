"""Calibrated-parameter diagnostics (GUIDE.md §3), on :func:`loaders.read_parameters` tables.

Columns added to every (model, version, scenario, parameter, pft) row:

``prior_sd_used``, ``prior_sd_source``
    σ_prior: ``prior_sd`` when given (finite, > 0, source ``"prior_sd"``); otherwise the standard
    deviation of a uniform prior over the range, ``(prior_max − prior_min)/√12``
    (source ``"uniform_range"``); otherwise NaN (source missing).
``posterior_sd_used``, ``posterior_sd_source``
    σ_post: ``posterior_sd`` when given (finite, >= 0); otherwise from the 5–95 % interval
    assuming a Gaussian posterior, ``(posterior_p95 − posterior_p05)/(2 · 1.645)``
    (source ``"p05_p95"``); otherwise NaN.
``uncertainty_reduction``
    ``1 − σ_post/σ_prior`` (1 = the data pinned the parameter down, 0 = nothing learnt,
    negative = the posterior is wider than the prior).
``prior_range_position``
    ``(posterior_value − prior_min)/(prior_max − prior_min)``: 0 at the lower bound, 1 at the
    upper bound (outside [0, 1] if the posterior left the prior range).
``edge_hitting``, ``edge``
    True when the posterior lies within :data:`EDGE_FRACTION` (2 %) of the range from a prior
    bound (or beyond it), with ``edge`` = ``"lower"`` or ``"upper"`` — a sign of structural
    error or a too-narrow prior. Missing (``<NA>``) when the range is unknown.
"""

from __future__ import annotations

import numpy as np
import pandas as pd

#: Fraction of the prior range next to a bound that counts as "hitting the edge".
EDGE_FRACTION = 0.02

#: z-value of the 95th percentile of a standard normal distribution.
_Z95_ONE_SIDED = 1.6448536269514722

#: Columns added by :func:`parameter_metrics`, in order.
PARAMETER_METRIC_COLUMNS: tuple[str, ...] = (
    "prior_sd_used", "prior_sd_source", "posterior_sd_used", "posterior_sd_source",
    "uncertainty_reduction", "prior_range_position", "edge_hitting", "edge",
)

_NUMERIC = ("prior_value", "prior_min", "prior_max", "prior_sd", "posterior_value",
            "posterior_sd", "posterior_p05", "posterior_p95")


def _num(df: pd.DataFrame, col: str) -> np.ndarray:
    if col not in df.columns:
        return np.full(len(df), np.nan)
    return pd.to_numeric(df[col], errors="coerce").to_numpy(dtype="float64", na_value=np.nan)


def parameter_metrics(df: pd.DataFrame) -> pd.DataFrame:
    """Add uncertainty reduction, prior-range position and edge hitting to a parameter table.

    Parameters
    ----------
    df : pandas.DataFrame
        Output of :func:`loaders.read_parameters` (or several concatenated).

    Returns
    -------
    pandas.DataFrame
        A copy of ``df`` with the columns of :data:`PARAMETER_METRIC_COLUMNS` appended
        (definitions in the module docstring).
    """
    out = df.copy()
    v = {c: _num(df, c) for c in _NUMERIC}
    width = v["prior_max"] - v["prior_min"]
    with np.errstate(invalid="ignore", divide="ignore"):
        has_range = np.isfinite(width) & (width > 0)
        given_prior = np.isfinite(v["prior_sd"]) & (v["prior_sd"] > 0)
        prior_sd = np.where(given_prior, v["prior_sd"],
                            np.where(has_range, width / np.sqrt(12.0), np.nan))
        prior_src = np.where(given_prior, "prior_sd", np.where(has_range, "uniform_range", None))
        given_post = np.isfinite(v["posterior_sd"]) & (v["posterior_sd"] >= 0)
        interval = v["posterior_p95"] - v["posterior_p05"]
        has_interval = np.isfinite(interval) & (interval >= 0)
        post_sd = np.where(given_post, v["posterior_sd"],
                           np.where(has_interval, interval / (2.0 * _Z95_ONE_SIDED), np.nan))
        post_src = np.where(given_post, "posterior_sd", np.where(has_interval, "p05_p95", None))
        reduction = np.where(np.isfinite(prior_sd) & (prior_sd > 0),
                             1.0 - post_sd / np.where(prior_sd > 0, prior_sd, 1.0), np.nan)
        position = np.where(has_range, (v["posterior_value"] - v["prior_min"])
                            / np.where(has_range, width, 1.0), np.nan)
    known = np.isfinite(position)
    tol = 1e-12
    lower = known & (position <= EDGE_FRACTION + tol)
    upper = known & (position >= 1.0 - EDGE_FRACTION - tol)
    out["prior_sd_used"] = prior_sd
    out["prior_sd_source"] = pd.Series(list(prior_src), index=out.index, dtype="str")
    out["posterior_sd_used"] = post_sd
    out["posterior_sd_source"] = pd.Series(list(post_src), index=out.index, dtype="str")
    out["uncertainty_reduction"] = reduction
    out["prior_range_position"] = position
    edge = pd.array(lower | upper, dtype="boolean")
    edge[~known] = pd.NA
    out["edge_hitting"] = pd.Series(edge, index=out.index)
    out["edge"] = pd.Series(list(np.where(lower, "lower", np.where(upper, "upper", None))),
                            index=out.index, dtype="str")
    return out


#: Columns added by :func:`normalised_intervals`, in order.
NORMALISED_COLUMNS: tuple[str, ...] = (
    "prior_range_width", "prior_value_norm", "prior_lo_norm", "prior_hi_norm",
    "posterior_lo", "posterior_hi", "posterior_interval_source", "posterior_value_norm",
    "posterior_lo_norm", "posterior_hi_norm", "shift_norm",
)


def normalised_intervals(df: pd.DataFrame) -> pd.DataFrame:
    """Place each parameter's prior and posterior in its prior range (0 = min, 1 = max).

    Parameters
    ----------
    df : pandas.DataFrame
        Output of :func:`parameter_metrics` (needs ``prior_sd_used``, ``prior_sd_source`` and
        ``posterior_sd_used``).

    Returns
    -------
    pandas.DataFrame
        A copy with the columns of :data:`NORMALISED_COLUMNS` appended. With
        ``w = prior_max − prior_min`` and ``norm(x) = (x − prior_min) / w``:

        - ``prior_value_norm``, ``posterior_value_norm``: the values, normalised;
        - ``prior_lo_norm``, ``prior_hi_norm``: the prior's 5–95 % interval, normalised:
          ``prior_value ± 1.645 prior_sd`` clipped to the range when ``prior_sd`` is given,
          otherwise that of a uniform prior over the range (0.05–0.95);
        - ``posterior_lo``, ``posterior_hi`` (raw units) and their ``_norm`` forms: the
          posterior 5–95 % interval, ``posterior_p05``–``posterior_p95`` when both are given
          (``posterior_interval_source = "p05_p95"``), else ``posterior_value ± 1.645 σ_post``
          (``"sd"``), else unknown;
        - ``shift_norm``: ``(posterior_value − prior_value) / w``, the parameter's move in
          prior-range units (positive = towards the upper bound).

        Everything normalised is NaN where the range is unknown or empty.
    """
    out = df.copy()
    v = {c: _num(df, c) for c in _NUMERIC}
    lo, hi = v["prior_min"], v["prior_max"]
    width = hi - lo
    with np.errstate(invalid="ignore", divide="ignore"):
        has_range = np.isfinite(width) & (width > 0)
        safe = np.where(has_range, width, 1.0)

        def norm(x: np.ndarray) -> np.ndarray:
            return np.where(has_range, (x - lo) / safe, np.nan)

        prior_sd = _num(df, "prior_sd_used")
        gaussian = (df["prior_sd_source"].astype(str) == "prior_sd").to_numpy() \
            if "prior_sd_source" in df.columns else np.zeros(len(df), bool)
        p_lo = np.where(gaussian, np.clip(norm(v["prior_value"] - _Z95_ONE_SIDED * prior_sd),
                                          0.0, 1.0), 0.05)
        p_hi = np.where(gaussian, np.clip(norm(v["prior_value"] + _Z95_ONE_SIDED * prior_sd),
                                          0.0, 1.0), 0.95)
        p_lo = np.where(has_range & (~gaussian | np.isfinite(p_lo)), p_lo, np.nan)
        p_hi = np.where(has_range & (~gaussian | np.isfinite(p_hi)), p_hi, np.nan)
        percentiles = np.isfinite(v["posterior_p05"]) & np.isfinite(v["posterior_p95"])
        post_sd = _num(df, "posterior_sd_used")
        from_sd = ~percentiles & np.isfinite(post_sd) & np.isfinite(v["posterior_value"])
        q_lo = np.where(percentiles, v["posterior_p05"],
                        np.where(from_sd, v["posterior_value"] - _Z95_ONE_SIDED * post_sd, np.nan))
        q_hi = np.where(percentiles, v["posterior_p95"],
                        np.where(from_sd, v["posterior_value"] + _Z95_ONE_SIDED * post_sd, np.nan))
        shift = np.where(has_range, (v["posterior_value"] - v["prior_value"]) / safe, np.nan)
    out["prior_range_width"] = np.where(has_range, width, np.nan)
    out["prior_value_norm"] = norm(v["prior_value"])
    out["prior_lo_norm"] = p_lo
    out["prior_hi_norm"] = p_hi
    out["posterior_lo"] = q_lo
    out["posterior_hi"] = q_hi
    out["posterior_interval_source"] = pd.Series(
        list(np.where(percentiles, "p05_p95", np.where(from_sd, "sd", None))),
        index=out.index, dtype="str")
    out["posterior_value_norm"] = norm(v["posterior_value"])
    out["posterior_lo_norm"] = norm(q_lo)
    out["posterior_hi_norm"] = norm(q_hi)
    out["shift_norm"] = shift
    return out
