"""Statistics of global gridded runs (GUIDE.md §3), lazy-friendly.

Every function builds xarray expressions only: on dask-backed inputs (``open_global_run`` opens
lazily) nothing is computed until the caller asks (``.compute()``, ``.values``, plotting).

* :func:`cell_area` — area of each grid cell (m²) on a sphere of radius :data:`EARTH_RADIUS`
  = 6371 km, from cell bounds inferred from the centres (midpoints between centres; the outer
  bounds half a spacing beyond the outer centres, latitudes clipped to ±90°):
  ``R² · Δλ · |sin φ₂ − sin φ₁|``. A complete regular grid sums to 4πR².
* :func:`global_total` — for carbon fluxes in kgC m-2 s-1: Σ(flux · area) over land cells with
  data, in PgC per year (a year = 365.25 days; ``per="day"`` gives PgC d-1); for every other
  variable the area-weighted mean over cells with data (e.g. W m-2 for energy fluxes).
* :func:`zonal_mean` — mean over longitude (weighted by cell width) for each latitude.
* :func:`posterior_minus_prior` — posterior − prior on the common times and grid cells.
* :func:`cell_spread` — per cell and time step, the standard deviation across models (ddof = 0,
  NaN where any model lacks data, as for the site spread).
* :func:`cell_spread_reduction` — ``1 − spread_post / spread_prior`` per cell, models with both
  stages only, spreads averaged over time first (the site rule: mean of the daily std, then the
  ratio); ``over=None`` gives the ratio at every time step.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

import numpy as np
import xarray as xr

from dashboard.metrics.common import ensemble_mean

#: Radius of the spherical Earth used for cell areas (m).
EARTH_RADIUS = 6.371e6

#: Seconds per averaging period of :func:`global_total` (a year is 365.25 days).
SECONDS_PER = {"second": 1.0, "day": 86400.0, "year": 365.25 * 86400.0}

_CARBON_FLUX_UNITS = "kgC m-2 s-1"
_PER_LABEL = {"second": "s-1", "day": "d-1", "year": "yr-1"}


def _bounds(centres: np.ndarray, name: str) -> np.ndarray:
    c = np.asarray(centres, dtype="float64").ravel()
    if c.size < 2:
        raise ValueError(f"cannot infer cell bounds from {c.size} {name} value(s); "
                         "need at least two")
    mid = 0.5 * (c[:-1] + c[1:])
    first = c[0] - 0.5 * (c[1] - c[0])
    last = c[-1] + 0.5 * (c[-1] - c[-2])
    return np.concatenate([[first], mid, [last]])


def cell_area(lat: Any, lon: Any) -> xr.DataArray:
    """Area of each grid cell on a spherical Earth (m²).

    Parameters
    ----------
    lat, lon : array-like or xarray.DataArray
        Cell centres in degrees (at least two of each; any order, regular or not).

    Returns
    -------
    xarray.DataArray
        Dims ``(lat, lon)``, units ``m2``.
    """
    lat_c = np.asarray(lat, dtype="float64").ravel()
    lon_c = np.asarray(lon, dtype="float64").ravel()
    lat_b = np.clip(_bounds(lat_c, "latitude"), -90.0, 90.0)
    lon_b = _bounds(lon_c, "longitude")
    band = np.abs(np.diff(np.sin(np.deg2rad(lat_b))))
    width = np.abs(np.diff(np.deg2rad(lon_b)))
    area = EARTH_RADIUS**2 * band[:, None] * width[None, :]
    return xr.DataArray(area, dims=("lat", "lon"), coords={"lat": lat_c, "lon": lon_c},
                        name="cell_area", attrs={"units": "m2", "long_name": "grid cell area"})


def _area_for(da: xr.DataArray) -> xr.DataArray:
    for dim in ("lat", "lon"):
        if dim not in da.dims:
            raise ValueError(f"expected a (lat, lon) grid, got dims {da.dims}")
    return cell_area(da["lat"].values, da["lon"].values)


def _is_carbon_flux(da: xr.DataArray) -> bool:
    from loaders.variables import normalise_units

    return normalise_units(da.attrs.get("units")) == _CARBON_FLUX_UNITS


def global_total(da: xr.DataArray, *, per: str = "year") -> xr.DataArray:
    """Global total of a carbon flux (PgC per ``per``) or area-weighted mean of anything else.

    Parameters
    ----------
    da : xarray.DataArray
        Gridded variable with dims including ``lat`` and ``lon`` and a ``units`` attribute.
    per : {"year", "day", "second"}, default "year"
        Period of carbon-flux totals.

    Returns
    -------
    xarray.DataArray
        ``da`` reduced over ``lat`` and ``lon`` (NaN where no cell has data); units
        ``PgC yr-1`` (etc.) for kgC m-2 s-1 variables, else the units of ``da``.
    """
    if per not in SECONDS_PER:
        raise ValueError(f"per must be one of {sorted(SECONDS_PER)}, not {per!r}")
    area = _area_for(da)
    da = ensemble_mean(da)
    if _is_carbon_flux(da):
        total = (da * area).sum(("lat", "lon"), skipna=True, min_count=1)
        out = total * (SECONDS_PER[per] * 1e-12)  # kg → Pg
        out.attrs = {"units": f"PgC {_PER_LABEL[per]}",
                     "long_name": f"global total of {da.attrs.get('long_name', da.name)}"}
    else:
        out = da.weighted(area).mean(("lat", "lon"), skipna=True)
        has_data = da.notnull().any(("lat", "lon"))
        out = out.where(has_data)
        out.attrs = {"units": da.attrs.get("units", ""),
                     "long_name": f"area-weighted mean of {da.attrs.get('long_name', da.name)}"}
    return out.rename(da.name)


def zonal_mean(da: xr.DataArray) -> xr.DataArray:
    """Mean over longitude of the cells with data, weighted by cell width, per latitude.

    Parameters
    ----------
    da : xarray.DataArray
        Gridded variable with a ``lon`` dimension.

    Returns
    -------
    xarray.DataArray
        ``da`` without ``lon`` (attributes kept).
    """
    if "lon" not in da.dims:
        raise ValueError(f"expected a 'lon' dimension, got dims {da.dims}")
    da = ensemble_mean(da)
    if da.sizes["lon"] >= 2:
        width = xr.DataArray(np.abs(np.diff(_bounds(da["lon"].values, "longitude"))),
                             dims="lon", coords={"lon": da["lon"].values})
        out = da.weighted(width).mean("lon", skipna=True).where(da.notnull().any("lon"))
    else:
        out = da.mean("lon", skipna=True)
    out.attrs = dict(da.attrs)
    return out.rename(da.name)


def _align_grids(objs: list[Any]) -> list[Any]:
    aligned = xr.align(*objs, join="inner")
    for dim in ("lat", "lon", "time"):
        sizes = [o.sizes.get(dim) for o in objs if dim in o.dims]
        if sizes and dim in aligned[0].dims and aligned[0].sizes[dim] == 0:
            raise ValueError(f"the runs share no {dim} values: they are on different "
                             f"{'grids' if dim != 'time' else 'periods'}")
    return list(aligned)


def posterior_minus_prior(prior: xr.DataArray | xr.Dataset, post: xr.DataArray | xr.Dataset
                          ) -> xr.DataArray | xr.Dataset:
    """Posterior − prior on the times and grid cells both runs have.

    Parameters
    ----------
    prior, post : xarray.DataArray or xarray.Dataset
        Runs of the same model (ensembles enter through their mean).

    Returns
    -------
    xarray.DataArray or xarray.Dataset
        The difference, with the units of the inputs.

    Raises
    ------
    ValueError
        If the runs share no grid cell or time.
    """
    if isinstance(prior, xr.DataArray):
        prior, post = ensemble_mean(prior), ensemble_mean(post)
    prior, post = _align_grids([prior, post])
    diff = post - prior
    if isinstance(diff, xr.DataArray):
        diff.attrs = {"units": post.attrs.get("units", ""),
                      "long_name": f"posterior - prior {post.attrs.get('long_name', post.name)}"}
    else:
        for name in diff.data_vars:
            diff[name].attrs = {"units": post[name].attrs.get("units", ""),
                                "long_name": f"posterior - prior {name}"}
    return diff


def _stack_models(runs: Mapping[str, xr.DataArray], models: list[str]) -> xr.DataArray:
    arrays = _align_grids([ensemble_mean(runs[m]) for m in models])
    return xr.concat(arrays, dim=xr.DataArray(models, dims="model", name="model"),
                     coords="minimal", compat="override", join="exact")


def cell_spread(runs: Mapping[str, xr.DataArray]) -> xr.DataArray:
    """Standard deviation across models per cell and time step (ddof = 0).

    Parameters
    ----------
    runs : mapping of str to xarray.DataArray
        One gridded variable per model, on the same grid (common times are used).

    Returns
    -------
    xarray.DataArray
        Dims of the inputs; NaN where any model lacks data. ``attrs`` hold ``n_models`` and
        ``models``; with fewer than two models the result is all NaN (``insufficient``).
    """
    models = sorted(runs)
    if not models:
        raise ValueError("cell_spread needs at least one run")
    stacked = _stack_models(runs, models)
    spread = stacked.std("model", ddof=0, skipna=False)
    if len(models) < 2:
        spread = spread.where(False)
    first = runs[models[0]]
    spread.attrs = {"units": first.attrs.get("units", ""), "n_models": len(models),
                    "models": ", ".join(models), "insufficient": len(models) < 2,
                    "long_name": "standard deviation across models"}
    return spread.rename("spread")


def cell_spread_reduction(priors: Mapping[str, xr.DataArray],
                          posteriors: Mapping[str, xr.DataArray], *,
                          over: str | None = "time") -> xr.DataArray:
    """``1 − spread_post / spread_prior`` per cell, for the models with both stages.

    Parameters
    ----------
    priors, posteriors : mapping of str to xarray.DataArray
        One gridded variable per model and stage.
    over : str or None, default "time"
        Dimension over which the spreads are averaged before the ratio (same cells and steps for
        both stages); ``None`` for a ratio at every step.

    Returns
    -------
    xarray.DataArray
        The reduction (NaN where the prior spread is 0 or missing, everywhere with fewer
        than two models); ``attrs`` hold ``n_models``, ``models`` and ``insufficient``.

    Raises
    ------
    ValueError
        If no model has both stages, or the runs share no grid cell or time.
    """
    models = sorted(set(priors) & set(posteriors))
    if not models:
        raise ValueError("spread reduction needs models with both a prior and a posterior run")
    s_prior, s_post = _align_grids([cell_spread({m: priors[m] for m in models}),
                                    cell_spread({m: posteriors[m] for m in models})])
    both = s_prior.notnull() & s_post.notnull()
    s_prior, s_post = s_prior.where(both), s_post.where(both)
    if over is not None and over in s_prior.dims:
        s_prior = s_prior.mean(over, skipna=True)
        s_post = s_post.mean(over, skipna=True)
    out = (1.0 - s_post / s_prior.where(s_prior > 0)).rename("spread_reduction")
    out.attrs = {"units": "1", "n_models": len(models), "models": ", ".join(models),
                 "insufficient": len(models) < 2,
                 "long_name": "reduction of the inter-model spread (1 - post/prior)"}
    return out
