"""Numbers behind diagrams: mean seasonal cycles and Taylor-diagram statistics.

* :func:`monthly_means` — the same on plain numpy arrays (the site view's fast path).
* :func:`seasonal_cycle` — mean by calendar month (1–12) of the valid values, with the number of
  values behind each month as a coordinate ``n`` (0 and NaN for a month with no data).
* :func:`taylor_statistics` — for a model against observations on the days both are valid:
  ``sd_ratio`` (σ_M/σ_O, the normalised standard deviation), ``r`` (Pearson) and ``crmsd_norm``,
  the centred RMS difference √mean(((M − M̄) − (O − Ō))²) divided by σ_O. All standard deviations
  are population ones (ddof = 0), so that ``crmsd_norm² = sd_ratio² + 1 − 2·sd_ratio·r`` holds
  exactly (the law of cosines the Taylor diagram draws).
"""

from __future__ import annotations

from typing import Any

import numpy as np
import xarray as xr

from dashboard.metrics.common import DEFAULT_MIN_N, prepare, wrap_result

MONTHS = np.arange(1, 13)


def monthly_means(values: np.ndarray, month: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Mean and count of the finite values of each calendar month, in plain numpy.

    Parameters
    ----------
    values : numpy.ndarray
        ``(..., time)``; NaN marks a missing day.
    month : numpy.ndarray of int
        Calendar month (1–12) of each day, ``(time,)``.

    Returns
    -------
    means, counts : numpy.ndarray
        ``(..., 12)`` for January to December; the mean is NaN where the count is 0.
    """
    values = np.asarray(values, dtype="float64")
    sums = np.empty(values.shape[:-1] + (12,))
    counts = np.zeros(values.shape[:-1] + (12,), dtype="int64")
    for i, m in enumerate(MONTHS):
        chunk = values[..., month == m]
        valid = np.isfinite(chunk)
        counts[..., i] = valid.sum(-1)
        sums[..., i] = np.where(valid, chunk, 0.0).sum(-1)
    with np.errstate(invalid="ignore", divide="ignore"):
        means = np.where(counts > 0, sums / np.where(counts > 0, counts, 1), np.nan)
    return means, counts


def seasonal_cycle(da: xr.DataArray, mask: xr.DataArray | None = None) -> xr.DataArray:
    """Mean by calendar month of the valid values of ``da``.

    Parameters
    ----------
    da : xarray.DataArray
        Series with a ``time`` dimension of dates (other dimensions are kept).
    mask : xarray.DataArray of bool, optional
        Days to use (e.g. days with valid observations); dates missing from ``mask`` are not
        used.

    Returns
    -------
    xarray.DataArray
        Dimension ``month`` (1–12) plus the other dims of ``da``, with a coordinate ``n`` (number
        of valid values per month). Attributes of ``da`` are kept.
    """
    if "time" not in da.dims:
        raise ValueError(f"seasonal_cycle needs a 'time' dimension, got dims {da.dims}")
    if mask is not None:
        keep = mask.astype(bool).reindex(time=da["time"], fill_value=False)
        da = da.where(keep)
    month = np.asarray(da["time"].dt.month.values)
    others = [d for d in da.dims if d != "time"]
    values = np.asarray(da.transpose(*others, "time").values, dtype="float64")
    means, counts = monthly_means(values, month)
    dims = [*others, "month"]
    coords = {d: da[d] for d in others if d in da.coords}
    coords["month"] = MONTHS
    order = ["month" if d == "time" else d for d in da.dims]
    out = xr.DataArray(means, dims=dims, coords=coords, name=da.name).transpose(*order)
    out = out.assign_coords(n=xr.DataArray(counts, dims=dims).transpose(*order))
    out.attrs = dict(da.attrs)
    return out


def taylor_statistics(model: xr.DataArray, obs: xr.DataArray, *,
                      min_n: int = DEFAULT_MIN_N) -> dict[str, Any]:
    """Statistics of a Taylor diagram for ``model`` against ``obs``.

    Parameters
    ----------
    model : xarray.DataArray
        Model series (``time``; ensembles enter through their mean).
    obs : xarray.DataArray
        Observations (aligned on dates by inner join).
    min_n : int, default DEFAULT_MIN_N
        Minimum number of valid days.

    Returns
    -------
    dict
        ``n``, ``sd_model``, ``sd_obs``, ``sd_ratio`` (normalised standard deviation), ``r``,
        ``crmsd`` (centred RMS difference), ``crmsd_norm`` (divided by σ_O) and
        ``insufficient``. NaN below ``min_n``.
    """
    obs, o, (m,), _ = prepare(obs, model)
    valid = np.isfinite(m) & np.isfinite(o)
    n = valid.sum(-1)
    with np.errstate(invalid="ignore", divide="ignore"):
        nn = np.where(n > 0, n, np.nan)
        am = np.where(valid, m - (np.where(valid, m, 0).sum(-1) / nn)[..., None], 0.0)
        ao = np.where(valid, o - (np.where(valid, o, 0).sum(-1) / nn)[..., None], 0.0)
        sd_m = np.sqrt((am**2).sum(-1) / nn)
        sd_o = np.sqrt((ao**2).sum(-1) / nn)
        r = np.clip((am * ao).sum(-1) / nn / (sd_m * sd_o), -1.0, 1.0)
        crmsd = np.sqrt(((am - ao) ** 2).sum(-1) / nn)
        sd_o_safe = np.where(sd_o > 0, sd_o, np.nan)
        out = {"n": n, "sd_model": sd_m, "sd_obs": sd_o, "sd_ratio": sd_m / sd_o_safe,
               "r": np.where(np.isfinite(r), r, np.nan), "crmsd": crmsd,
               "crmsd_norm": crmsd / sd_o_safe}
    insufficient = n < min_n
    result = {k: wrap_result(v if k == "n" else np.where(insufficient, np.nan, v), obs)
              for k, v in out.items()}
    result["insufficient"] = wrap_result(insufficient, obs)
    return result
