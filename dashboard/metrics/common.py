"""Shared rules of every metric: the minimum n, date alignment and ensemble handling.

* **Minimum n.** A metric computed on fewer than :data:`DEFAULT_MIN_N` valid days is not a number:
  it is NaN and flagged ``insufficient``. Thirty days is about one month of daily data, the least
  that gives a stable mean or RMSE for a seasonal flux; it keeps sites such as US-Ton (14 valid NEE
  days) out of rankings while keeping every site with a usable record.
* **Alignment.** A model run and its observations may span different dates: they are aligned on
  dates by an inner join (only dates present in both), never by position.
* **Ensembles.** A run with a ``member`` dimension is scored through its ensemble mean for the
  deterministic scores; a day counts only when *every* member is finite on that day (a partly
  missing ensemble would otherwise give a biased mean).
"""

from __future__ import annotations

import numpy as np
import pandas as pd
import xarray as xr

#: Minimum number of valid days for a metric to be a number (below it: NaN and ``insufficient``).
DEFAULT_MIN_N = 30

#: Name of the ensemble dimension after :func:`loaders.readers.open_site_run`.
MEMBER = "member"


def ensemble_mean(da: xr.DataArray) -> xr.DataArray:
    """Return the ensemble mean of ``da`` (NaN on days where any member is missing).

    Parameters
    ----------
    da : xarray.DataArray
        A series, with or without a ``member`` dimension.

    Returns
    -------
    xarray.DataArray
        ``da`` itself when it has no ``member`` dimension.
    """
    if MEMBER in da.dims:
        return da.mean(MEMBER, skipna=False, keep_attrs=True)
    return da


def has_ensemble(da: xr.DataArray | None) -> bool:
    """Whether ``da`` is an ensemble (a ``member`` dimension of size >= 2)."""
    return da is not None and MEMBER in da.dims and da.sizes[MEMBER] >= 2


def align_on_time(*arrays: xr.DataArray | None) -> list[xr.DataArray | None]:
    """Align series on their common dates (inner join); ``None`` entries pass through.

    Parameters
    ----------
    *arrays : xarray.DataArray or None
        Series with a ``time`` dimension indexed by dates.

    Returns
    -------
    list of xarray.DataArray or None
        The arrays restricted to the dates they all have, in the same date order.

    Raises
    ------
    ValueError
        If an array has no ``time`` dimension.
    """
    present = [a for a in arrays if a is not None]
    for a in present:
        if "time" not in a.dims:
            raise ValueError(f"series {a.name!r} has no 'time' dimension (dims {a.dims})")
    if not present:
        return list(arrays)
    common = pd.Index(present[0].indexes["time"])
    same = True
    for a in present[1:]:
        idx = a.indexes["time"]
        if not (len(idx) == len(common) and idx.equals(common)):
            same = False
            common = common.intersection(idx, sort=False)
    if same:
        return list(arrays)
    common = common.sort_values()
    return [None if a is None else a.sel(time=common) for a in arrays]


def time_last(da: xr.DataArray) -> np.ndarray:
    """Return the values of ``da`` as float64 with ``time`` as the last axis."""
    if da.dims and da.dims[-1] != "time":
        da = da.transpose(..., "time")
    return np.asarray(da.values, dtype="float64")


def finite_positive(values: np.ndarray) -> np.ndarray:
    """Mask of finite, strictly positive values (usable standard deviations)."""
    with np.errstate(invalid="ignore"):
        return np.isfinite(values) & (values > 0)


def wrap_result(value: object, like: xr.DataArray) -> object:
    """A Python scalar for a 0-d result, else a DataArray on the non-time dims of ``like``.

    Parameters
    ----------
    value : array-like
        A metric reduced over ``time``.
    like : xarray.DataArray
        The series it was computed from (its non-time dims name the result's axes).

    Returns
    -------
    float, int, bool or xarray.DataArray
    """
    arr = np.asarray(value)
    if arr.ndim == 0:
        return arr.item()
    dims = [d for d in like.dims if d not in ("time", MEMBER)]
    coords = {k: v for k, v in like.coords.items()
              if "time" not in v.dims and MEMBER not in v.dims and set(v.dims) <= set(dims)}
    return xr.DataArray(arr, dims=dims, coords=coords)


def is_plain_series(*arrays: xr.DataArray | None) -> bool:
    """Whether every array is a plain site series: dims ``(time,)`` or ``(time, member)``."""
    for a in arrays:
        if a is None:
            continue
        if "time" not in a.dims or not set(a.dims) <= {"time", MEMBER}:
            return False
    return True


def aligned_values(*arrays: xr.DataArray | None) -> list[np.ndarray | None]:
    """Fast date alignment of plain series (see :func:`is_plain_series`) to numpy arrays.

    Parameters
    ----------
    *arrays : xarray.DataArray or None
        Series with unique dates.

    Returns
    -------
    list of numpy.ndarray or None
        float64 values on the common dates (inner join, sorted), shape ``(time,)`` or
        ``(time, member)``.
    """
    present = [a for a in arrays if a is not None]
    positions = _common_positions([a["time"].values for a in present]) if present else []
    out: list[np.ndarray | None] = []
    it = iter(positions)
    for a in arrays:
        if a is None:
            out.append(None)
            continue
        if a.dims[0] != "time":
            a = a.transpose("time", ...)
        values = np.asarray(a.values, dtype="float64")
        pos = next(it)
        out.append(values if pos is None else values[pos])
    return out


_DAY_NS = 86_400 * 10**9


def _common_positions(times: list[np.ndarray]) -> list[slice | np.ndarray | None]:
    """Positions in each time axis of the dates they all share (sorted); None = all of it."""
    if all(t.dtype.kind == "M" for t in times):
        ints = [t.astype("datetime64[ns]").view("i8") for t in times]
        if all(len(i) == len(ints[0]) and np.array_equal(i, ints[0]) for i in ints[1:]):
            return [None] * len(ints)
        steps = [np.diff(i) for i in ints]
        if all(len(i) > 0 for i in ints) and all(np.all(d == _DAY_NS) for d in steps):
            start = max(int(i[0]) for i in ints)
            end = min(int(i[-1]) for i in ints)
            if end < start:
                return [slice(0, 0)] * len(ints)
            return [slice((start - int(i[0])) // _DAY_NS, (end - int(i[0])) // _DAY_NS + 1)
                    for i in ints]
        if all(np.all(d > 0) for d in steps):
            common = ints[0]
            for i in ints[1:]:
                common = np.intersect1d(common, i, assume_unique=True)
            return [np.searchsorted(i, common) for i in ints]
    indexes = [pd.Index(t) for t in times]
    common = indexes[0]
    for ix in indexes[1:]:
        common = common.intersection(ix)
    common = common.sort_values()
    return [ix.get_indexer(common) for ix in indexes]


def _member_values(model: xr.DataArray, like: xr.DataArray) -> np.ndarray:
    """Ensemble values broadcast like ``like``, dims ``(..., time, member)``."""
    full = model.broadcast_like(like)
    order = [d for d in like.dims if d != "time"] + ["time", MEMBER]
    return np.asarray(full.transpose(*order).values, dtype="float64")


def prepare(obs: xr.DataArray, *arrays: xr.DataArray | None
            ) -> tuple[xr.DataArray, np.ndarray, list[np.ndarray | None], list[np.ndarray | None]]:
    """Align series on the dates of ``obs`` and return numpy values with time last.

    Parameters
    ----------
    obs : xarray.DataArray
        The reference series (no ``member`` dimension).
    *arrays : xarray.DataArray or None
        Model series (possibly ensembles) or uncertainties.

    Returns
    -------
    like : xarray.DataArray
        The aligned, broadcast reference (its non-time dims name the results' axes).
    obs_values : numpy.ndarray
        ``(..., time)``.
    det : list of numpy.ndarray or None
        Each array (ensemble mean for ensembles; NaN on days a member is missing),
        ``(..., time)``.
    members : list of numpy.ndarray or None
        The members of each ensemble (size >= 2), ``(..., time, member)``; ``None`` otherwise.
    """
    if MEMBER not in obs.dims and is_plain_series(obs, *arrays):
        values = aligned_values(obs, *arrays)
        det: list[np.ndarray | None] = []
        members: list[np.ndarray | None] = []
        for v in values[1:]:
            if v is None or v.ndim == 1:
                det.append(v)
                members.append(None)
            else:
                det.append(v.mean(axis=-1))
                members.append(v if v.shape[-1] >= 2 else None)
        return obs, values[0], det, members
    aligned = align_on_time(obs, *arrays)
    obs_a, rest = aligned[0], aligned[1:]
    means = [ensemble_mean(a) for a in rest if a is not None]
    like = xr.broadcast(obs_a, *means)[0] if means else obs_a
    like = like.transpose(..., "time")
    det = [None if a is None else time_last(ensemble_mean(a).broadcast_like(like)
                                            .transpose(*like.dims)) for a in rest]
    members = [_member_values(a, like) if has_ensemble(a) else None for a in rest]
    return like, time_last(obs_a.broadcast_like(like).transpose(*like.dims)), det, members
