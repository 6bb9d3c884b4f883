"""Statistics of global gridded runs (GUIDE.md §3), lazy-friendly.

Every function builds xarray expressions only: on dask-backed inputs (``open_global_run`` opens
lazily) nothing is computed until the caller asks (``.compute()``, ``.values``, plotting).

Convention: land fluxes are **per unit land area** (kgC m-2 s-1 or W m-2 of land), so a grid cell
contributes its land area, ``cell area × land fraction``, never its whole area: a coastal cell
that is 30 % land counts for 30 % of its area.

* :func:`cell_area` — area of each grid cell (m²) on a sphere of radius :data:`EARTH_RADIUS`
  = 6371 km, from cell bounds inferred from the centres (midpoints between centres; the outer
  bounds half a spacing beyond the outer centres, latitudes clipped to ±90°):
  ``R² · Δλ · |sin φ₂ − sin φ₁|``. A complete regular grid sums to 4πR².
* :func:`land_fraction` — the land fraction (0–1) of each cell: the file's ``sftlf``,
  ``landfrac`` or ``landmask`` where the run has one (in % or as a fraction — detected), else
  the project's Natural Earth 1:110m land mask at the grid's resolution
  (:func:`loaders.geography.land_mask`: 1 where the cell centre is on land, 0 elsewhere).
* :func:`land_area` — ``cell area × land fraction`` (m² of land per cell).
* :func:`global_total` — for carbon fluxes in kgC m-2 s-1: Σ(flux · land area) over the cells
  with data, in PgC per year (a year = 365.25 days; ``per="day"`` gives PgC d-1); for every
  other variable the land-area-weighted mean over cells with data (e.g. W m-2 for energy
  fluxes). A constant flux ``c`` over every land cell gives ``c ×`` Earth's land area
  (≈ 1.49 × 10¹⁴ m²; the 1:110m mask gives 1.47 × 10¹⁴ m² at 1°).
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
import pandas as pd
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


#: Names of land-fraction variables looked for in a run, in order of preference.
LAND_FRACTION_NAMES: tuple[str, ...] = ("sftlf", "landfrac", "landmask")

_PERCENT_UNITS = {"%", "percent", "percentage"}
_GRID_TOL = 1e-4  # degrees: coordinates of a land fraction and its run agree to this


def _find_land_variable(obj: xr.DataArray | xr.Dataset) -> xr.DataArray | None:
    names = {str(k).lower(): k for k in obj.coords}
    if isinstance(obj, xr.Dataset):
        names.update({str(k).lower(): k for k in obj.data_vars})
    for name in LAND_FRACTION_NAMES:
        if name in names:
            return obj[names[name]]
    return None


def _as_fraction(raw: xr.DataArray, lat: np.ndarray, lon: np.ndarray) -> xr.DataArray:
    """A land-fraction or land-mask variable as a 0–1 field on the grid ``(lat, lon)``."""
    frac = raw.rename({k: v for k, v in {"latitude": "lat", "longitude": "lon"}.items()
                       if k in raw.dims})
    if "lat" not in frac.dims or "lon" not in frac.dims:
        raise ValueError(f"land fraction {raw.name!r} is not on a (lat, lon) grid: "
                         f"dims {frac.dims}")
    extra = [d for d in frac.dims if d not in ("lat", "lon")]
    if extra:  # a time-varying fraction: its first step (land cover is fixed in CalLMIP runs)
        frac = frac.isel({d: 0 for d in extra}, drop=True)
    frac = frac.drop_vars([c for c in frac.coords if c not in ("lat", "lon")])
    frac = frac.astype("float64").fillna(0.0)  # missing over the ocean in many files
    units = str(raw.attrs.get("units", "")).strip().lower()
    if units in _PERCENT_UNITS:
        frac = frac / 100.0
    else:  # no usable units: a fraction never exceeds 1, a percentage does somewhere
        frac = frac / xr.where(frac.max() > 1.0 + 1e-6, 100.0, 1.0)
    frac = frac.clip(0.0, 1.0)
    # Match the run's cells (both longitudes wrapped to [-180, 180), as open_global_run does).
    picks = {}
    for dim, target in (("lat", lat), ("lon", lon)):
        have = np.asarray(frac[dim].values, dtype="float64")
        want = target
        if dim == "lon":
            have, want = (((x + 180.0) % 360.0) - 180.0 for x in (have, want))
        order = np.argsort(have, kind="stable")
        index = pd.Index(have[order])
        found = (index.get_indexer(want, method="nearest", tolerance=_GRID_TOL)
                 if index.is_unique else np.full(want.size, -1))
        if np.any(found < 0):
            raise ValueError(f"land fraction {raw.name!r} is not on the run's grid: "
                             f"{int(np.sum(found < 0))} of {want.size} {dim} values not found")
        picks[dim] = order[found]
    frac = frac.isel(picks).assign_coords(lat=lat, lon=lon)
    return frac.rename("land_fraction").assign_attrs(units="1", source=str(raw.name))


def land_fraction(da: xr.DataArray, source: xr.Dataset | xr.DataArray | float | None = None
                  ) -> xr.DataArray:
    """Land fraction (0–1) of every cell of the grid of ``da``.

    Parameters
    ----------
    da : xarray.DataArray
        Gridded variable with ``lat`` and ``lon`` dimensions (degrees).
    source : xarray.Dataset, xarray.DataArray or float, optional
        Where the fraction comes from: a Dataset (the run's file) holding ``sftlf``,
        ``landfrac`` or ``landmask`` (as a variable or coordinate); a DataArray that *is* the
        land fraction or mask; a number for every cell (``1.0``: whole cells). By default the
        coordinates of ``da`` are searched for those names. Values in % (units ``%`` or any
        value above 1) are divided by 100; missing values count as 0 (ocean).

    Returns
    -------
    xarray.DataArray
        Dims ``(lat, lon)`` on the grid of ``da``, values in [0, 1], attribute ``source``
        (the variable used, or ``"Natural Earth 1:110m land mask"`` when none was found: then
        1 where the cell centre is on land, 0 elsewhere).

    Raises
    ------
    ValueError
        If ``da`` is not a (lat, lon) grid or the given land fraction is on another grid.
    """
    for dim in ("lat", "lon"):
        if dim not in da.dims:
            raise ValueError(f"expected a (lat, lon) grid, got dims {da.dims}")
    lat = np.asarray(da["lat"].values, dtype="float64")
    lon = np.asarray(da["lon"].values, dtype="float64")
    coords = {"lat": lat, "lon": lon}
    if source is not None and not isinstance(source, xr.Dataset | xr.DataArray):
        value = float(source)
        if not 0.0 <= value <= 1.0:
            raise ValueError(f"a constant land fraction must be in [0, 1], not {value}")
        return xr.DataArray(np.full((lat.size, lon.size), value), dims=("lat", "lon"),
                            coords=coords, name="land_fraction",
                            attrs={"units": "1", "source": f"constant {value:g}"})
    if isinstance(source, xr.DataArray):
        raw: xr.DataArray | None = source  # explicitly the fraction
    else:
        raw = _find_land_variable(source if source is not None else da)
    if raw is not None:
        return _as_fraction(raw, lat, lon)
    from loaders.geography import land_mask

    mask = land_mask(lat, lon).astype("float64")
    return xr.DataArray(mask, dims=("lat", "lon"), coords=coords, name="land_fraction",
                        attrs={"units": "1", "source": "Natural Earth 1:110m land mask"})


def land_area(da: xr.DataArray, source: xr.Dataset | xr.DataArray | float | None = None
              ) -> xr.DataArray:
    """Land area of every grid cell, ``cell area × land fraction`` (m²).

    Parameters
    ----------
    da : xarray.DataArray
        Gridded variable with ``lat`` and ``lon`` dimensions.
    source : xarray.Dataset, xarray.DataArray or float, optional
        Land-fraction source, as for :func:`land_fraction`.

    Returns
    -------
    xarray.DataArray
        Dims ``(lat, lon)``, units ``m2``; attribute ``land_fraction_source``.
    """
    frac = land_fraction(da, source)
    area = _area_for(da) * frac
    area.attrs = {"units": "m2", "long_name": "land area of the grid cell",
                  "land_fraction_source": frac.attrs["source"]}
    return area.rename("land_area")


def global_total(da: xr.DataArray, *, per: str = "year",
                 land: xr.Dataset | xr.DataArray | float | None = None) -> xr.DataArray:
    """Global land total of a carbon flux (PgC per ``per``) or land mean of anything else.

    Fluxes are per unit land area: each cell is weighted by its land area, ``cell area × land
    fraction`` (:func:`land_area`), so coastal cells count only for their land part.

    Parameters
    ----------
    da : xarray.DataArray
        Gridded variable with dims including ``lat`` and ``lon`` and a ``units`` attribute.
    per : {"year", "day", "second"}, default "year"
        Period of carbon-flux totals.
    land : xarray.Dataset, xarray.DataArray or float, optional
        Land-fraction source (:func:`land_fraction`): the run's Dataset (its ``sftlf``,
        ``landfrac`` or ``landmask`` is used), the fraction itself, or a constant (``1.0``
        weights whole cells). Default: a land fraction among the coordinates of ``da``, else
        the Natural Earth land mask at the grid's resolution.

    Returns
    -------
    xarray.DataArray
        ``da`` reduced over ``lat`` and ``lon`` (NaN where no land cell has data); units
        ``PgC yr-1`` (etc.) for kgC m-2 s-1 variables, else the units of ``da``; attribute
        ``land_fraction_source``.
    """
    if per not in SECONDS_PER:
        raise ValueError(f"per must be one of {sorted(SECONDS_PER)}, not {per!r}")
    area = land_area(da, land)
    source = area.attrs["land_fraction_source"]
    da = ensemble_mean(da)
    da = da.drop_vars([c for c in da.coords
                       if str(c).lower() in LAND_FRACTION_NAMES and c not in da.dims])
    on_land = da.where(area > 0)
    if _is_carbon_flux(da):
        total = (on_land * area).sum(("lat", "lon"), skipna=True, min_count=1)
        out = total * (SECONDS_PER[per] * 1e-12)  # kg → Pg
        out.attrs = {"units": f"PgC {_PER_LABEL[per]}",
                     "long_name": f"global land total of {da.attrs.get('long_name', da.name)}",
                     "land_fraction_source": source}
    else:
        out = on_land.weighted(area).mean(("lat", "lon"), skipna=True)
        out = out.where(on_land.notnull().any(("lat", "lon")))
        out.attrs = {"units": da.attrs.get("units", ""),
                     "long_name": ("land-area-weighted mean of "
                                   f"{da.attrs.get('long_name', da.name)}"),
                     "land_fraction_source": source}
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
        widths = np.abs(np.diff(_bounds(da["lon"].values, "longitude")))
        if da.dims == ("lat", "lon") and isinstance(da.data, np.ndarray):
            return _zonal_mean_2d(da, widths)
        width = xr.DataArray(widths, dims="lon", coords={"lon": da["lon"].values})
        out = da.weighted(width).mean("lon", skipna=True).where(da.notnull().any("lon"))
    else:
        out = da.mean("lon", skipna=True)
    out.attrs = dict(da.attrs)
    return out.rename(da.name)


def _zonal_mean_2d(da: xr.DataArray, widths: np.ndarray) -> xr.DataArray:
    """:func:`zonal_mean` of an in-memory (lat, lon) map, with numpy.

    The same weighted mean: xarray's ``weighted`` took ~8 ms a 0.5° map, and the Global view
    asks for one per run at every time step.
    """
    values = np.asarray(da.values, dtype="float64")
    ok = np.isfinite(values)
    weight = np.where(ok, widths[None, :], 0.0).sum(axis=1)
    total = np.where(ok, values * widths[None, :], 0.0).sum(axis=1)
    with np.errstate(invalid="ignore", divide="ignore"):
        mean = np.where(weight > 0, total / np.where(weight > 0, weight, 1.0), np.nan)
    return xr.DataArray(mean, dims="lat", coords={"lat": da["lat"].values}, name=da.name,
                        attrs=dict(da.attrs))


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
