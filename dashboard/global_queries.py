"""Queries of the Global view: lazy xarray/dask reductions of global runs (no Panel import).

Functions take the worker's :class:`~dashboard.service.DataService` and plain values (variable,
stage, time, layer, models) and return numpy arrays or frames that are the caller's own. Runs
are found once per service (NetCDF files of the catalog, replaced by the groups of an ingested
Zarr store in the data root), opened lazily (:mod:`loaders.gridded`) and kept open; computed
maps and series are kept in the service's byte-bounded cache.

Time (the URL's ``time``; :func:`parse_time`): ``YYYY-MM`` one month; ``YYYY`` that year's
mean; ``annual`` the first year's mean; ``mean`` the long-term mean; ``month-MM`` the mean of
that calendar month over all years (``07`` and ``month-7`` are read the same). Means of monthly
steps are weighted by the days of each month.

Layers (:data:`LAYERS`): one map per model of the selected stage (``field``), posterior − prior
per model (``difference``), the multi-model mean (``mean``), the inter-model spread of the prior
and of the posterior (``spread``: the standard deviation across models at each step, averaged
over the chosen steps, the site rule) and its reduction ``1 − spread_post / spread_prior``
(``spread_reduction``), over the models that have both stages.

Heavy reductions (spread, long-term means, global totals) run on the dask cluster given to
:func:`configure_dask` (``callmip serve --dask-scheduler``), otherwise in this process.
NetCDF-backed reductions in this process run under the project's read lock with the
synchronous scheduler (HDF5 is not thread-safe); Zarr-backed ones use dask's threads.

A clicked cell's series (:func:`cell_series`) is read here, without dask, from the source that
serves it best (:func:`cell_source`): an ingested run's time-series copy (one chunk), else the
run itself opened without dask, indexed at the cell (NetCDF under the read lock).
"""

from __future__ import annotations

import logging
import os
import re
import time
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
import xarray as xr

from loaders.gridded import GridError, display_scale, field, is_zarr, open_gridded

log = logging.getLogger(__name__)

#: Map layers: key → label.
LAYERS: dict[str, str] = {
    "field": "Each model (selected stage)",
    "difference": "Posterior − prior (each model)",
    "mean": "Multi-model mean (selected stage)",
    "spread": "Inter-model spread, prior vs posterior",
    "spread_reduction": "Spread reduction (1 − post/prior)",
}
#: Layers drawn with a diverging colour map and symmetric limits.
DIVERGING_LAYERS = ("difference", "spread_reduction")
#: Most model maps drawn side by side.
MAX_PANELS = 6

_TIME_RE = re.compile(r"^(?:(?P<ym>\d{4}-\d{2})|(?P<year>\d{4})|(?P<agg>mean|annual)|"
                      r"(?:month-)?(?P<month>\d{1,2}))$")


# --------------------------------------------------------------------------- time values
def parse_time(text: str) -> tuple[str, Any]:
    """Read a time value of the URL contract.

    Parameters
    ----------
    text : str
        ``YYYY-MM``, ``YYYY``, ``annual``, ``mean``, ``month-MM`` or ``MM`` (``""`` → mean).

    Returns
    -------
    tuple
        ``("month", (year, month))``, ``("year", year)``, ``("annual", None)``,
        ``("mean", None)`` or ``("calendar", month)``.

    Raises
    ------
    ValueError
        With a message saying what is accepted.
    """
    text = (text or "mean").strip()
    match = _TIME_RE.match(text)
    if match is None:
        raise ValueError(f"time={text!r} is not YYYY-MM, YYYY, annual, mean or month-MM")
    if match["ym"]:
        year, month = (int(p) for p in match["ym"].split("-"))
        if not 1 <= month <= 12:
            raise ValueError(f"time={text!r}: month {month} is not 1-12")
        return "month", (year, month)
    if match["year"]:
        return "year", int(match["year"])
    if match["agg"]:
        return match["agg"], None
    month = int(match["month"])
    if not 1 <= month <= 12:
        raise ValueError(f"time={text!r}: month {month} is not 1-12")
    return "calendar", month


def time_label(text: str) -> str:
    """A readable label of a time value (``"July 2010"``, ``"2001–2020 mean"`` …)."""
    kind, value = parse_time(text)
    if kind == "month":
        return pd.Timestamp(year=value[0], month=value[1], day=1).strftime("%B %Y")
    if kind == "year":
        return f"{value} annual mean"
    if kind == "calendar":
        return pd.Timestamp(year=2001, month=value, day=1).strftime("%B") + " mean, all years"
    if kind == "annual":
        return "annual mean"
    return "long-term mean"


def time_steps(times: Any, text: str) -> np.ndarray:
    """Indices of ``times`` that the time value ``text`` selects.

    Raises
    ------
    ValueError
        If none does (the message names the run's period).
    """
    index = pd.DatetimeIndex(np.asarray(times))
    kind, value = parse_time(text)
    if kind == "month":
        picked = (index.year == value[0]) & (index.month == value[1])
    elif kind == "year":
        picked = index.year == value
    elif kind == "annual":
        picked = index.year == index.year.min()
    elif kind == "calendar":
        picked = index.month == value
    else:
        picked = np.ones(index.size, dtype=bool)
    steps = np.flatnonzero(picked)
    if steps.size == 0:
        raise ValueError(f"time {text!r} is outside the runs' period "
                         f"({index.min():%Y-%m} to {index.max():%Y-%m})")
    return steps


def _weights(times: Any) -> xr.DataArray | None:
    index = pd.DatetimeIndex(np.asarray(times))
    days = np.diff(index.values).astype("timedelta64[D]").astype(int)
    if index.size > 1 and np.median(days) >= 28:
        return xr.DataArray(index.days_in_month.to_numpy().astype("float64"), dims="time")
    return None


def weighted_time_mean(da: xr.DataArray) -> xr.DataArray:
    """Mean over ``time`` (lazy), monthly steps weighted by their days, NaN steps skipped."""
    if da.sizes["time"] == 1:
        return da.isel(time=0, drop=True)
    weights = _weights(da["time"].values)
    if weights is None:
        return da.mean("time", skipna=True)
    return da.weighted(weights.assign_coords(time=da["time"])).mean("time", skipna=True)


def time_mean(da: xr.DataArray, text: str) -> xr.DataArray:
    """``da`` reduced over the steps ``text`` selects (lazy; monthly steps weighted by days)."""
    return weighted_time_mean(da.isel(time=time_steps(da["time"].values, text)))


# --------------------------------------------------------------------------- dask
_DASK: dict[str, Any] = {"address": None, "client": None, "pid": None}
#: Seconds before an unreachable scheduler is tried again.
RETRY_CLUSTER_S = 60


def configure_dask(address: str | None) -> None:
    """Send the heavy reductions to the dask cluster at ``address`` (None: in-process).

    The client is created in each worker process on first use (never before a fork).
    """
    _DASK.update(address=address or None, client=None, pid=None, failed_at=-1e9)


def dask_client() -> Any:
    """The distributed client of this process, or None when no cluster is configured."""
    if _DASK["address"] is None:
        return None
    if _DASK["client"] is None or _DASK["pid"] != os.getpid():
        from distributed import Client

        _DASK.update(client=Client(_DASK["address"], set_as_default=False, timeout="10s"),
                     pid=os.getpid())
    return _DASK["client"]


def compute(obj: Any, *, netcdf: bool, heavy: bool = True) -> Any:
    """Compute a lazy xarray object: on the cluster, or here (NetCDF under the read lock).

    A cluster that cannot be reached is logged and the work is done here instead: the view
    keeps working without it.
    """
    client = None
    if heavy and time.monotonic() - _DASK.get("failed_at", -1e9) > RETRY_CLUSTER_S:
        try:
            client = dask_client()
        except OSError as exc:
            _DASK["failed_at"] = time.monotonic()
            log.warning("dask scheduler %s unreachable (%s); computing in-process for "
                        "%d s", _DASK["address"], exc, RETRY_CLUSTER_S)
    if client is not None:
        return client.compute(obj).result()
    if netcdf:
        from loaders.readers import _READ_LOCK

        with _READ_LOCK:
            return obj.compute(scheduler="synchronous")
    # One time step is one chunk: handing it to dask's thread pool cost more than the read
    # (0.04 s a map instead of 0.007 s on a loaded machine here).
    return obj.compute(scheduler="threads" if heavy else "synchronous")


# --------------------------------------------------------------------------- runs
@dataclass(frozen=True)
class GlobalRun:
    """One global run: model, stage and where it is read from."""

    model_id: str
    stage: str
    source: str
    group: str | None = None

    @property
    def name(self) -> str:
        """The run's file name (or store group)."""
        return self.group or Path(self.source).name

    @property
    def where(self) -> str:
        """The source and group, as named in messages and ``archive.errors``."""
        return f"{self.source}/{self.group}" if self.group else self.source

    @property
    def netcdf(self) -> bool:
        """Whether it is read from NetCDF (HDF5 lock)."""
        return not is_zarr(self.source)


def _stores(root: str) -> list[str]:
    if "://" in root and not root.startswith("file://"):
        import fsspec

        fs, _, paths = fsspec.get_fs_token_paths(root.rstrip("/"))
        base = paths[0]
        found = fs.glob(f"{base}/*.zarr") + fs.glob(f"{base}/global/*.zarr")
        protocol = root.split("://", 1)[0]
        return sorted(f"{protocol}://{p}" for p in found)
    local = Path(root[len("file://"):] if root.startswith("file://") else root)
    return sorted(str(p) for p in [*local.glob("*.zarr"), *local.glob("global/*.zarr")]
                  if p.is_dir())


def global_runs(service: Any) -> list[GlobalRun]:
    """Every global run of the archive (computed once per service).

    A run whose NetCDF file was ingested into a Zarr store in the data root is read from the
    store; runs listed only in a store are included too. One run per model and stage (the
    first by name when there are several).
    """
    def compute_runs() -> list[GlobalRun]:
        from loaders.ingest import store_runs

        runs: dict[tuple[str, str], GlobalRun] = {}
        for store in _stores(service.root):
            for group, info in sorted(store_runs(store).items()):
                key = (f"{info['model']}.{info['version']}", info["stage"])
                runs.setdefault(key, GlobalRun(key[0], key[1], store, group))
        rows = service.archive.global_runs.sort_values("path")
        for row in rows.itertuples(index=False):
            key = (str(row.model_id), str(row.stage))
            runs.setdefault(key, GlobalRun(key[0], key[1], str(row.path)))
        return sorted(runs.values(), key=lambda r: (r.model_id, r.stage != "Prior"))

    return service.frame(("global_runs",), compute_runs)


def open_run(service: Any, run: GlobalRun) -> xr.Dataset | None:
    """The run's lazy dataset, or None when it cannot be used (message in ``archive.errors``)."""
    key = ("global_ds", run.source, run.group)

    def compute_open() -> xr.Dataset | None:
        from loaders.readers import _READ_LOCK

        try:
            if run.netcdf:  # HDF5 is not thread-safe: the prefetch thread reads site files
                with _READ_LOCK:
                    return open_gridded(run.source, group=run.group)
            return open_gridded(run.source, group=run.group)
        except GridError as exc:
            service.archive.errors[run.where] = exc.problem
            return None

    return service.frame(key, compute_open)


def global_models(service: Any) -> list[str]:
    """Model ids with at least one global run."""
    return sorted({r.model_id for r in global_runs(service)})


def run_for(service: Any, model_id: str, stage: str) -> GlobalRun | None:
    """The run of ``model_id`` at ``stage``, if any."""
    for run in global_runs(service):
        if run.model_id == model_id and run.stage == stage:
            return run
    return None


def global_variables(service: Any) -> list[str]:
    """Variables (app names) that at least one readable run holds."""
    from loaders.gridded import app_variables

    def compute_vars() -> list[str]:
        seen: list[str] = []
        for run in global_runs(service):
            ds = open_run(service, run)
            if ds is not None:
                seen += [v for v in app_variables(ds) if v not in seen]
        return seen

    return service.frame(("global_variables",), compute_vars)


def global_times(service: Any) -> pd.DatetimeIndex:
    """The time steps of the first readable run (empty when none)."""
    for run in global_runs(service):
        ds = open_run(service, run)
        if ds is not None:
            return pd.DatetimeIndex(ds["time"].values)
    return pd.DatetimeIndex([])


def problems(service: Any, variable: str | None = None) -> list[str]:
    """Messages for global runs that cannot be used.

    Given ``variable``, also for runs whose ``variable`` cannot be read (a run without it is
    not a problem).
    """
    out = []
    for run in global_runs(service):
        if open_run(service, run) is None:
            out.append(f"{run.name}: {service.archive.errors.get(run.where, 'cannot be read')}")
        elif variable is not None and run_field(service, run, variable) is None:
            message = service.archive.errors.get(f"{run.where}#{variable}", "")
            if message and not message.startswith("has no variable"):
                out.append(f"{run.name}: {message}")
    return out


def run_field(service: Any, run: GlobalRun, variable: str) -> xr.DataArray | None:
    """The lazy field of ``variable`` in a run (Table 3 units), or None (error recorded)."""
    ds = open_run(service, run)
    if ds is None:
        return None
    key = ("global_field", run.source, run.group, variable)

    def compute_field() -> xr.DataArray | None:
        try:
            return field(ds, variable, run.where)
        except GridError as exc:
            service.archive.errors[f"{run.where}#{variable}"] = exc.problem
            return None

    return service.frame(key, compute_field)


# --------------------------------------------------------------------------- maps
@dataclass
class MapField:
    """A 2-D map ready to draw (values in community units, the caller's own copy)."""

    title: str
    values: np.ndarray
    lat: np.ndarray
    lon: np.ndarray
    units: str
    diverging: bool = False
    n_models: int = 1
    note: str = ""


def _display(values: np.ndarray, units: str, *, difference: bool = False
             ) -> tuple[np.ndarray, str]:
    factor, offset, shown = display_scale(units)
    out = values.astype("float32") * np.float32(factor)
    if not difference and offset:
        out = out + np.float32(offset)
    return out, shown


def _cached(service: Any, key: tuple, compute_value: Any) -> Any:
    return service.cache.get_or_compute(key, compute_value)


def reduced_map(service: Any, run: GlobalRun, variable: str, time: str
                ) -> xr.DataArray | None:
    """A run's field reduced over the steps of ``time`` (computed, Table 3 units; shared)."""
    da = run_field(service, run, variable)
    if da is None:
        return None
    key = ("global_map", run.source, run.group, variable, time)

    def compute_map() -> xr.DataArray:
        heavy = parse_time(time)[0] != "month"
        return compute(time_mean(da, time), netcdf=run.netcdf, heavy=heavy)

    return _cached(service, key, compute_map)


def _chosen(service: Any, models: Sequence[str]) -> list[str]:
    available = global_models(service)
    chosen = [m for m in models if m in available]
    return chosen or available


def shown_models(service: Any, models: Sequence[str]) -> list[str]:
    """The global models drawn for a choice of ``models``: those with global runs, else all."""
    return _chosen(service, models)


def _stage_maps(service: Any, variable: str, stage: str, time: str, models: list[str]
                ) -> dict[str, xr.DataArray]:
    out = {}
    for model in models:
        run = run_for(service, model, stage)
        if run is not None:
            reduced = reduced_map(service, run, variable, time)
            if reduced is not None:
                out[model] = reduced
    return out


def _spread_map(service: Any, variable: str, stage: str, time: str, models: list[str]
                ) -> xr.DataArray | None:
    """Mean over the chosen steps of the per-step standard deviation across models."""
    from dashboard.metrics.global_stats import cell_spread

    fields = {}
    for model in models:
        run = run_for(service, model, stage)
        da = run_field(service, run, variable) if run is not None else None
        if da is not None:
            fields[model] = da
    if len(fields) < 2:
        return None
    netcdf = any(run_for(service, m, stage).netcdf for m in fields)
    key = ("global_spread", variable, stage, time, tuple(sorted(fields)))

    def compute_spread() -> xr.DataArray:
        steps = {m: da.isel(time=time_steps(da["time"].values, time)) for m, da in fields.items()}
        spread = cell_spread(steps)
        return compute(weighted_time_mean(spread), netcdf=netcdf)

    return _cached(service, key, compute_spread)


def layer_maps(service: Any, variable: str, stage: str, time: str, layer: str,
               models: Sequence[str]) -> list[MapField]:
    """The maps of one layer (one per model for ``field``/``difference``).

    Parameters
    ----------
    service : DataService
        The worker's service.
    variable : str
        App variable name (``gpp``, ``NEE``, ``Qle`` …).
    stage : {"Prior", "Posterior"}
        Stage of the ``field`` and ``mean`` layers.
    time : str
        A time value (:func:`parse_time`).
    layer : str
        A key of :data:`LAYERS`.
    models : sequence of str
        Chosen models (empty: all with global runs); at most :data:`MAX_PANELS` maps.

    Returns
    -------
    list of MapField
        Values in community units (gC m-2 d-1, W m-2, mm d-1, °C …); empty when nothing can be
        drawn.

    Raises
    ------
    ValueError
        For an unknown layer or a time outside the runs.
    """
    if layer not in LAYERS:
        raise ValueError(f"unknown layer {layer!r}; one of {', '.join(LAYERS)}")
    chosen = _chosen(service, models)
    label = time_label(time)
    out: list[MapField] = []
    if layer in ("field", "difference"):
        priors = _stage_maps(service, variable, "Prior", time, chosen) if (
            layer == "difference" or stage == "Prior") else {}
        posts = _stage_maps(service, variable, "Posterior", time, chosen) if (
            layer == "difference" or stage == "Posterior") else {}
        for model in chosen[:MAX_PANELS]:
            if layer == "field":
                da = (priors if stage == "Prior" else posts).get(model)
                if da is None:
                    continue
                values, units = _display(np.asarray(da.values), da.attrs["units"])
                title = f"{model} {stage}"
            else:
                if model not in priors or model not in posts:
                    continue
                diff = posts[model] - priors[model]
                values, units = _display(np.asarray(diff.values), posts[model].attrs["units"],
                                         difference=True)
                da = posts[model]
                title = f"{model} posterior − prior"
            out.append(MapField(f"{title}, {variable}, {label}", values,
                                np.asarray(da["lat"].values), np.asarray(da["lon"].values),
                                units, diverging=layer == "difference"))
        return out
    if layer == "mean":
        maps = _stage_maps(service, variable, stage, time, chosen)
        if not maps:
            return []
        first = next(iter(maps.values()))
        stack = np.stack([np.asarray(m.values) for m in maps.values()])
        values, units = _display(stack.mean(axis=0), first.attrs["units"])
        return [MapField(f"Multi-model mean ({len(maps)} models), {stage}, {variable}, {label}",
                         values, np.asarray(first["lat"].values),
                         np.asarray(first["lon"].values), units, n_models=len(maps))]
    both = [m for m in chosen if run_for(service, m, "Prior") and run_for(service, m, "Posterior")]
    spreads = {s: _spread_map(service, variable, s, time, both) for s in ("Prior", "Posterior")}
    if spreads["Prior"] is None or spreads["Posterior"] is None:
        return []
    first = spreads["Prior"]
    lat, lon = np.asarray(first["lat"].values), np.asarray(first["lon"].values)
    if layer == "spread":
        for s in ("Prior", "Posterior"):
            values, units = _display(np.asarray(spreads[s].values), first.attrs["units"],
                                     difference=True)
            out.append(MapField(f"Inter-model spread of the {s.lower()} ({len(both)} models), "
                                f"{variable}, {label}", values, lat, lon, units,
                                n_models=len(both)))
        return out
    prior, post = np.asarray(spreads["Prior"].values), np.asarray(spreads["Posterior"].values)
    with np.errstate(invalid="ignore", divide="ignore"):
        reduction = np.where(prior > 0, 1.0 - post / prior, np.nan).astype("float32")
    return [MapField(f"Spread reduction 1 − post/prior ({len(both)} models), {variable}, {label}",
                     reduction, lat, lon, "1", diverging=True, n_models=len(both))]


def colour_limits(maps: Sequence[MapField]) -> tuple[float, float]:
    """Limits shared by every map: 2nd–98th percentile, symmetric around 0 when diverging."""
    finite = [m.values[np.isfinite(m.values)] for m in maps]
    values = np.concatenate(finite) if finite else np.array([])
    if values.size == 0:
        return (-1.0, 1.0) if any(m.diverging for m in maps) else (0.0, 1.0)
    if any(m.diverging for m in maps):
        limit = float(np.nanpercentile(np.abs(values), 98)) or 1.0
        if all(m.units == "1" for m in maps):
            limit = min(limit, 1.0)
        return -limit, limit
    low, high = (float(v) for v in np.nanpercentile(values, [2, 98]))
    if high <= low:
        high = low + 1.0
    return low, high


# --------------------------------------------------------------------------- profiles, series
def zonal_profiles(service: Any, variable: str, time: str, models: Sequence[str]
                   ) -> pd.DataFrame:
    """Zonal means of every chosen model and stage: columns model, stage, lat, value, units."""
    from dashboard.metrics.global_stats import zonal_mean

    rows = []
    for model in _chosen(service, models):
        for stage in ("Prior", "Posterior"):
            run = run_for(service, model, stage)
            if run is None or run_field(service, run, variable) is None:
                continue
            key = ("global_zonal", run.source, run.group, variable, time)

            def compute_profile(run: GlobalRun = run) -> pd.DataFrame | None:
                # A profile is 2 kB: kept per run and time, so a time step the slider comes
                # back to, or a session opening the same step, does not read the map again.
                da = reduced_map(service, run, variable, time)
                if da is None:
                    return None
                profile = zonal_mean(da)
                values, units = _display(np.asarray(profile.values), da.attrs["units"])
                return pd.DataFrame({"lat": np.asarray(profile["lat"].values),
                                     "value": values, "units": units})

            frame = _cached(service, key, compute_profile)
            if frame is not None:
                rows.append(frame.assign(model=model, stage=stage)[
                    ["model", "stage", "lat", "value", "units"]])
    return (pd.concat(rows, ignore_index=True) if rows else
            pd.DataFrame(columns=["model", "stage", "lat", "value", "units"]))


def total_series(service: Any, run: GlobalRun, variable: str) -> pd.Series | None:
    """Global land total (PgC yr-1, carbon fluxes) or land mean of a run, per time step."""
    from dashboard.metrics.global_stats import global_total

    da = run_field(service, run, variable)
    ds = open_run(service, run)
    if da is None or ds is None:
        return None
    key = ("global_total", run.source, run.group, variable)

    def compute_total() -> pd.Series:
        total = compute(global_total(da, land=ds), netcdf=run.netcdf)
        units = total.attrs.get("units", "")
        values = np.asarray(total.values, dtype="float64")
        if not units.startswith("PgC"):
            values, units = _display(values, units)
        series = pd.Series(np.asarray(values, dtype="float64"),
                           index=pd.DatetimeIndex(total["time"].values), name=units)
        return series

    return _cached(service, key, compute_total)


def global_totals(service: Any, variable: str, models: Sequence[str]) -> pd.DataFrame:
    """Global totals of every chosen model and stage: columns model, stage, time, value, units."""
    rows = []
    for model in _chosen(service, models):
        for stage in ("Prior", "Posterior"):
            run = run_for(service, model, stage)
            series = total_series(service, run, variable) if run is not None else None
            if series is not None:
                rows.append(pd.DataFrame({"model": model, "stage": stage, "time": series.index,
                                          "value": series.to_numpy(), "units": series.name}))
    return (pd.concat(rows, ignore_index=True) if rows else
            pd.DataFrame(columns=["model", "stage", "time", "value", "units"]))


def cell_source(service: Any, run: GlobalRun) -> xr.Dataset | None:
    """The run opened for reading one cell's series, without dask (kept per service).

    An ingested run's time-series copy (:func:`loaders.gridded.open_series`: every step of a
    cell in one chunk); else the run's map-chunked store group or local NetCDF file opened
    without dask, whose ``isel(lat=i, lon=j)`` reads only that cell (one read per time chunk:
    as cheap as the file's chunking allows). None for a remote NetCDF file (its open run is
    used) or a source that cannot be opened.
    """
    from loaders.gridded import open_series
    from loaders.readers import _READ_LOCK, _is_remote

    def compute_source() -> xr.Dataset | None:
        try:
            if run.group:
                copy = open_series(run.source, run.group)
                return copy if copy is not None else open_gridded(
                    run.source, group=run.group, dask=False)
            if _is_remote(run.source):
                return None
            with _READ_LOCK:
                return open_gridded(run.source, dask=False)
        except GridError as exc:
            log.warning("%s: cell reads fall back to the map chunks (%s)", run.where, exc)
            return None

    return service.frame(("global_cell_source", run.source, run.group), compute_source)


def _read_cell(service: Any, run: GlobalRun, da: xr.DataArray, variable: str, i: int, j: int
               ) -> xr.DataArray:
    """``variable`` at cell (i, j) of the standard grid, every step (Table 3 units)."""
    source = cell_source(service, run)
    if source is None or source.sizes.get("lat") != da.sizes["lat"] or (
            source.sizes.get("lon") != da.sizes["lon"]):
        return compute(da.isel(lat=i, lon=j), netcdf=run.netcdf, heavy=False)
    cell = source.isel(lat=i, lon=j)
    try:
        if run.netcdf:
            from loaders.readers import _READ_LOCK

            with _READ_LOCK:
                return field(cell, variable, run.where).load()
        return field(cell, variable, run.where).load()
    except GridError:  # a copy without the variable: the map chunks have it
        return compute(da.isel(lat=i, lon=j), netcdf=run.netcdf, heavy=False)


def cell_series(service: Any, variable: str, lon: float, lat: float, models: Sequence[str]
                ) -> pd.DataFrame:
    """The time series of the grid cell nearest (lon, lat) for every chosen model and stage.

    Each run's cell is read from :func:`cell_source` (an ingested run's time-series copy: one
    chunk; a NetCDF file or a store without the copy: the cell indexed directly, no dask).

    Returns
    -------
    pandas.DataFrame
        Columns model, stage, time, value, units, cell_lat, cell_lon (empty off the grid).
    """
    rows = []
    for model in _chosen(service, models):
        for stage in ("Prior", "Posterior"):
            run = run_for(service, model, stage)
            da = run_field(service, run, variable) if run is not None else None
            if da is None:
                continue
            lons, lats = da["lon"].values, da["lat"].values
            if not (lats.min() - 1 <= lat <= lats.max() + 1):
                continue
            i = int(np.abs(lats - lat).argmin())
            j = int(np.abs(((lons - lon + 180.0) % 360.0) - 180.0).argmin())
            key = ("global_cell", run.source, run.group, variable, i, j)
            point = _cached(service, key, lambda da=da, i=i, j=j, run=run: _read_cell(
                service, run, da, variable, i, j))
            values, units = _display(np.asarray(point.values), da.attrs["units"])
            rows.append(pd.DataFrame({"model": model, "stage": stage,
                                      "time": pd.DatetimeIndex(point["time"].values),
                                      "value": values, "units": units,
                                      "cell_lat": float(lats[i]), "cell_lon": float(lons[j])}))
    return (pd.concat(rows, ignore_index=True) if rows else
            pd.DataFrame(columns=["model", "stage", "time", "value", "units", "cell_lat",
                                  "cell_lon"]))
