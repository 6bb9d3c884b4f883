"""Global gridded runs, opened lazily with dask from NetCDF or Zarr, local or through fsspec.

A global run is a ``(time, lat, lon)`` grid of Table 3 variables (protocol v2). This module
turns one into a standard form, or says clearly why it cannot:

* **Sources**: a NetCDF file (``…_global_<res>_<freq>_<YYYY-YYYY>_<stage>.nc``) or a group of a
  Zarr store written by ``callmip ingest`` (:mod:`loaders.ingest`), local paths or fsspec URLs
  (``s3://…``, ``file://…``). Zarr stores are consolidated, float32, one time step per chunk;
  since layout 2 each run group also holds a child group :data:`SERIES_GROUP`, a copy of its
  variables chunked for time series (:func:`open_series`). xarray opens only a group's own
  arrays, so the copy is never one of the run's variables.
* **Grid**: ``latitude``/``longitude`` are renamed ``lat``/``lon``; each must be one-dimensional,
  finite and strictly monotonic (either direction), latitudes within ±90°, longitudes within
  −180…360°. Longitudes 0–360 are wrapped to [−180, 180) and both axes sorted ascending, so a
  0–360 or north-to-south file gives the same map as its standard form.
* **Variables** (:func:`field`): the app's names — ``NEE`` (= −nep, positive to the
  atmosphere), ``Qle`` (= hfls), ``Qh`` (= hfss) and the Table 3 names (``gpp``, ``lai``, …) — in
  Table 3 units; an unknown variable, one without a ``units`` attribute or with units that
  cannot be converted raises :class:`GridError` naming the file and the problem.

Nothing here imports Panel; nothing is computed: every result is a lazy dask-backed object.
"""

from __future__ import annotations

import os
from typing import Any

import numpy as np
import xarray as xr

from loaders.readers import (
    CalLMIPFileError,
    _is_remote,
    _mask_fill,
    _standardise_ensemble_dim,
    decode_daily_time,
    open_raw,
)
from loaders.variables import (
    COMPARISON,
    DISPLAY_UNITS,
    KG_S_TO_G_D,
    TABLE3,
    UNCERTAINTY_SUFFIXES,
    conversion_factor,
)

#: Root attribute that marks a Zarr store written by ``callmip ingest``.
STORE_MARKER = "callmip_global_store"
#: Version of the store layout: 1 map copy only; 2 also the time-series copy of each run.
STORE_VERSION = 2
#: Child group of a run's group holding its time-series copy (all steps, small lat/lon blocks).
SERIES_GROUP = "series"
#: Tolerance (degrees) for a repeated longitude after wrapping 0–360 to −180…180.
_LON_TOL = 1e-6


class GridError(CalLMIPFileError):
    """A global run whose grid or variable cannot be used; the message names file and problem."""


def is_zarr(path: str | os.PathLike[str]) -> bool:
    """Whether ``path`` names a Zarr store (a ``.zarr`` folder or URL)."""
    return str(path).rstrip("/").endswith(".zarr")


# --------------------------------------------------------------------------- grid checks
def _check_axis(values: np.ndarray, name: str, path: str, low: float, high: float) -> None:
    if values.ndim != 1:
        raise GridError(path, f"coordinate {name!r} is not one-dimensional "
                              f"(shape {values.shape}); only regular lat/lon grids are supported")
    if values.size < 2:
        raise GridError(path, f"coordinate {name!r} has {values.size} value(s); a global grid "
                              "needs at least two")
    if not np.all(np.isfinite(values)):
        raise GridError(path, f"coordinate {name!r} has missing or non-finite values")
    step = np.diff(values)
    if not (np.all(step > 0) or np.all(step < 0)):
        bad = int(np.flatnonzero((step <= 0) if step[0] > 0 else (step >= 0))[0]) + 1
        raise GridError(path, f"coordinate {name!r} is not monotonic: value {values[bad]:g} at "
                              f"index {bad} follows {values[bad - 1]:g}")
    if values.min() < low - 1e-9 or values.max() > high + 1e-9:
        raise GridError(path, f"coordinate {name!r} runs from {values.min():g} to "
                              f"{values.max():g}, outside {low:g}…{high:g} degrees")


def wrap_longitudes(lon: np.ndarray) -> np.ndarray:
    """Longitudes in degrees wrapped to [−180, 180) (0–360 grids become standard)."""
    return ((np.asarray(lon, dtype="float64") + 180.0) % 360.0) - 180.0


def standardise_grid(raw: xr.Dataset, path: str) -> xr.Dataset:
    """Check the grid of ``raw`` and return it with ascending lat and lon in [−180, 180).

    Parameters
    ----------
    raw : xarray.Dataset
        As opened (times decoded or not).
    path : str
        Its source, for messages.

    Returns
    -------
    xarray.Dataset
        Dims ``time, lat, lon`` (and ``member`` for ensembles), times as dates.

    Raises
    ------
    GridError
        If a dimension is missing or a coordinate is not a usable regular axis.
    """
    ds = _standardise_ensemble_dim(raw)
    ds = ds.rename({k: v for k, v in {"latitude": "lat", "longitude": "lon"}.items()
                    if (k in ds.dims or k in ds.variables) and v not in ds.variables})
    missing = [d for d in ("time", "lat", "lon") if d not in ds.dims]
    if missing:
        raise GridError(path, f"is not a (time, lat, lon) grid: no {', '.join(missing)} "
                              f"dimension (dims {dict(ds.sizes)})")
    for name in ("lat", "lon"):
        if name not in ds.variables:
            raise GridError(path, f"has a {name!r} dimension without coordinate values")
    lat = np.asarray(ds["lat"].values, dtype="float64")
    lon = np.asarray(ds["lon"].values, dtype="float64")
    _check_axis(lat, "lat", path, -90.0, 90.0)
    _check_axis(lon, "lon", path, -180.0, 360.0)
    wrapped = wrap_longitudes(lon)
    ordered = np.sort(wrapped)
    if np.any(np.diff(ordered) < _LON_TOL):
        raise GridError(path, "longitudes repeat after wrapping to -180…180 (the grid covers "
                              "more than 360 degrees)")
    if np.issubdtype(ds["time"].dtype, np.datetime64):
        times = ds["time"].values
    else:
        times = decode_daily_time(ds["time"], path)
    ds = ds.assign_coords(time=times, lat=lat, lon=wrapped)
    if np.any(np.diff(lat) < 0):
        ds = ds.isel(lat=slice(None, None, -1))
    if np.any(np.diff(wrapped) < 0):
        ds = ds.isel(lon=np.argsort(wrapped, kind="stable"))
    return ds


# --------------------------------------------------------------------------- opening
def _zarr_store(path: str) -> Any:
    """A Zarr store argument for xarray/zarr: a local path or an fsspec mapper."""
    if path.startswith("file://"):
        return path[len("file://"):]
    return path


#: Bytes of one dask chunk of a NetCDF run's variable (float32): a few steps of a 0.5° grid,
#: a whole 2° run. One step a chunk made every reduction over time of a small grid a graph of
#: thousands of tasks: a Global export of the demo's 2° runs took 808 s, mostly in dask's
#: scheduling (a long-term mean of three 2° runs: 11 s).
NETCDF_CHUNK_BYTES = 4 * 2**20


def netcdf_time_chunk(path: str | os.PathLike[str]) -> int:
    """Time steps per dask chunk of a local NetCDF run (:data:`NETCDF_CHUNK_BYTES` a chunk).

    Sized by the largest (time, …) variable's cells per step; 1 if the file cannot be read
    here (:func:`open_raw` then says why).
    """
    import netCDF4

    from loaders.readers import _READ_LOCK

    try:
        with _READ_LOCK, netCDF4.Dataset(str(path)) as nc:
            cells = max((int(np.prod(v.shape[1:])) for v in nc.variables.values()
                         if v.ndim >= 3 and v.dimensions[0] == "time"), default=0)
    except Exception:
        return 1
    return max(1, NETCDF_CHUNK_BYTES // (4 * cells)) if cells else 1


def open_gridded(path: str | os.PathLike[str], *, group: str | None = None,
                 chunks: dict[str, int] | None = None, dask: bool = True) -> xr.Dataset:
    """Open a global run lazily (dask) and check and standardise its grid.

    Parameters
    ----------
    path : str or path-like
        A NetCDF file or a Zarr store (``*.zarr``), local or an fsspec URL.
    group : str, optional
        The run's group in a Zarr store (the NetCDF file's name without ``.nc``).
    chunks : dict, optional
        Dask chunks; default :func:`netcdf_time_chunk` steps a chunk for a local NetCDF file,
        the store's chunks for Zarr.
    dask : bool
        False: no dask at all (``chunks`` ignored); the variables stay xarray's lazily indexed
        arrays, so ``ds.isel(lat=i, lon=j)`` reads only that cell's values, without a task
        graph (a NetCDF source must then be read under the project's read lock).

    Returns
    -------
    xarray.Dataset
        As :func:`standardise_grid` returns, with the file's global attributes.

    Raises
    ------
    GridError
        If the source cannot be opened or its grid is not usable.
    """
    path = str(path)
    if is_zarr(path):
        try:
            raw = xr.open_zarr(_zarr_store(path), group=group, consolidated=None,
                               chunks=None if not dask else {} if chunks is None else chunks)
        except Exception as exc:
            where = f"{path} (group {group})" if group else path
            raise GridError(where, f"cannot be opened as Zarr: {exc}") from exc
        return standardise_grid(raw, f"{path}/{group}" if group else path)
    if path.startswith("file://"):  # a local file named as an fsspec URL
        path = path[len("file://"):]
    if not dask:
        chunks = None
    elif chunks is None and not _is_remote(path):
        chunks = {"time": netcdf_time_chunk(path)}
    try:
        raw = open_raw(path, chunks=chunks)
    except CalLMIPFileError as exc:
        raise GridError(path, exc.problem) from exc
    return standardise_grid(raw, path)


def series_group(group: str) -> str:
    """The path, in its store, of the time-series copy of the run in ``group``."""
    return f"{group.rstrip('/')}/{SERIES_GROUP}"


def open_series(path: str | os.PathLike[str], group: str) -> xr.Dataset | None:
    """The time-series copy of a run of an ingested store, opened without dask.

    Parameters
    ----------
    path : str or path-like
        The store (local path or fsspec URL).
    group : str
        The run's group.

    Returns
    -------
    xarray.Dataset or None
        Standardised like :func:`open_gridded` (Table 3 units, float32, lazily indexed: one
        cell's series is one chunk read); None when the store has no copy of this run (a
        store of layout 1, or one whose copy could not be written).
    """
    try:  # consolidated metadata: a missing group is a KeyError read from the store's index
        return open_gridded(path, group=series_group(group), dask=False)
    except GridError:
        return None


# --------------------------------------------------------------------------- variables
#: App variable → (Table 3 variable, sign) for the comparison variables.
_DERIVED: dict[str, tuple[str, float]] = {
    name: (spec["cmip"], -1.0 if name == "NEE" else 1.0) for name, spec in COMPARISON.items()}


def source_variable(variable: str) -> str:
    """The Table 3 variable a global field of ``variable`` is read from (NEE → nep)."""
    return _DERIVED.get(variable, (variable, 1.0))[0]


def field(ds: xr.Dataset, variable: str, path: str = "") -> xr.DataArray:
    """One variable of a standardised run, lazily, in Table 3 units (float32).

    Parameters
    ----------
    ds : xarray.Dataset
        From :func:`open_gridded`.
    variable : str
        ``NEE``, ``Qle``, ``Qh`` or a Table 3 name. ``NEE = −nep`` (kgC m-2 s-1, positive
        to the atmosphere); ``Qle = hfls``, ``Qh = hfss``.
    path : str
        The run's source, for messages (default ``ds.attrs["path"]``).

    Returns
    -------
    xarray.DataArray
        Dims ``(time, lat, lon)`` (an ensemble is averaged over its members), fill values as
        NaN, attributes ``units`` (Table 3) and ``long_name``.

    Raises
    ------
    GridError
        If the variable is unknown, absent, has no units or units that cannot be converted.
    """
    path = path or str(ds.attrs.get("path", ""))
    name, sign = _DERIVED.get(variable, (variable, 1.0))
    if name not in TABLE3:
        raise GridError(path, f"unknown variable {variable!r}; known: "
                              f"{', '.join([*COMPARISON, *TABLE3])}")
    if name not in ds.data_vars:
        present = [v for v in ds.data_vars if v in TABLE3]
        raise GridError(path, f"has no variable {name!r}"
                              + (f" (it holds {', '.join(present)})" if present else
                                 " (it holds no Table 3 variable)"))
    da = ds[name]
    written = da.attrs.get("units")
    if written is None or not str(written).strip():
        raise GridError(path, f"variable {name!r} has no units attribute (Table 3: "
                              f"{TABLE3[name].units!r})")
    factor = conversion_factor(str(written), TABLE3[name].units)
    if factor is None:
        raise GridError(path, f"variable {name!r} has units {written!r}; Table 3 asks for "
                              f"{TABLE3[name].units!r} and no conversion is known")
    da = _mask_fill(da)
    if "member" in da.dims:
        da = da.mean("member")
    scale = sign * factor
    if scale != 1.0:
        da = da * np.float32(scale)
    da = da.astype("float32")
    long_name = (COMPARISON[variable]["long_name"] if variable in COMPARISON
                 else TABLE3[name].long_name)
    da.attrs = {"units": TABLE3[name].units, "long_name": long_name, "variable": variable,
                "units_as_written": str(written)}
    return da.rename(variable)


def display_scale(units: str) -> tuple[float, float, str]:
    """``(factor, offset, display units)`` that turn Table 3 ``units`` into community units.

    Carbon fluxes kgC m-2 s-1 → gC m-2 d-1, water fluxes kg m-2 s-1 → mm d-1, K → °C; other
    units unchanged (``(1, 0, units)``).
    """
    if units in DISPLAY_UNITS:
        target, factor = DISPLAY_UNITS[units]
        return factor, (-273.15 if units == "K" else 0.0), target
    return 1.0, 0.0, units


#: Variables read from a global run (Table 3 names; uncertainties kept as ``<var>_post_unc``).
def table3_variables(ds: xr.Dataset) -> list[str]:
    """The Table 3 variables (and ``_post_unc`` uncertainties) present in ``ds``."""
    out = []
    for name in ds.data_vars:
        base = str(name)
        for suffix in UNCERTAINTY_SUFFIXES:
            if base.endswith(suffix) and base[: -len(suffix)] in TABLE3:
                base = base[: -len(suffix)]
        if base in TABLE3:
            out.append(str(name))
    return out


def app_variables(ds: xr.Dataset) -> list[str]:
    """The app's variable names a run can show (NEE when it has nep, …), in display order."""
    from loaders.variables import MODEL_ONLY_VARIABLES, OBSERVED_VARIABLES

    present = set(ds.data_vars)
    return [v for v in (*OBSERVED_VARIABLES, *MODEL_ONLY_VARIABLES)
            if source_variable(v) in present]


__all__ = ["SERIES_GROUP", "GridError", "KG_S_TO_G_D", "STORE_MARKER", "STORE_VERSION",
           "app_variables", "display_scale", "field", "is_zarr", "open_gridded", "open_series",
           "series_group", "source_variable", "standardise_grid", "table3_variables",
           "wrap_longitudes"]
