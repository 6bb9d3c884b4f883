"""``callmip ingest``: copy an archive's global runs into one consolidated Zarr store.

Each global run (``<model>.<version>_global_…_<stage>.nc``) becomes a group of the store named
after the file (without ``.nc``), holding its Table 3 variables (and ``_post_unc``
uncertainties) **in Table 3 units, float32**, on the standard grid of
:func:`loaders.gridded.standardise_grid` (lat ascending, lon in [−180, 180)), chunked **one time
step per chunk** (what a map reads). The store's root attributes list the runs
(:data:`loaders.gridded.STORE_MARKER`); its metadata are consolidated, so opening a run reads one
small JSON document. A run that cannot be read is reported and skipped; the others are written.

**Time-series copy** (store layout 2, :func:`write_series_copy`): each run's group also holds a
child group ``series`` (:func:`loaders.gridded.series_group`) with the same variables, values,
units and attributes chunked for a clicked cell's time series: **every time step in one chunk,
lat/lon blocks of** :func:`series_block` **cells a side** (32 while such a chunk holds at most
4 MiB — a monthly run of up to 85 years — else 24 or 16). A cell's series is then one chunk
read instead of one chunk per time step. Measured on the benchmark's 0.5° monthly 20-year run
(240 steps, land only): blocks of 16/24/32/45/64 cells wrote 425/235/153/96/68 files, and a
cell read 1–10 ms in every case (one chunk), so 32 keeps the file count low while a chunk stays
small (0.98 MB before compression). The copy is read back from the map copy just written, a
band of latitudes at a time (at most :data:`SERIES_BAND_BYTES` in memory), so its values are
exactly the map copy's. xarray opens only a group's own arrays: the copy never appears among a
run's variables. A store of layout 1 (no copy) still works: the app reads a cell from the map
copy.

The app reads such a store in place of the NetCDF files when it lies in the data root
(``DATA_ROOT/*.zarr`` or ``DATA_ROOT/global/*.zarr``): a time step is one chunk read, without
the HDF5 lock that serialises NetCDF reads.
"""

from __future__ import annotations

import os
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import xarray as xr

from loaders.gridded import (
    STORE_MARKER,
    STORE_VERSION,
    GridError,
    open_gridded,
    series_group,
)
from loaders.variables import TABLE3, UNCERTAINTY_SUFFIXES, conversion_factor

#: Most bytes of a run held in memory while its time-series copy is written (one latitude band).
SERIES_BAND_BYTES = 256 * 2**20
#: Largest time-series chunk (uncompressed) for the widest block of :func:`series_block`.
SERIES_CHUNK_BYTES = 4 * 2**20


@dataclass
class IngestReport:
    """What :func:`ingest` wrote and what it skipped (file name → message)."""

    store: str
    written: list[str] = field(default_factory=list)
    failed: dict[str, str] = field(default_factory=dict)


def _canonical(ds: xr.Dataset, path: str) -> xr.Dataset:
    """The Table 3 variables of ``ds`` in Table 3 units, float32, fill values as NaN."""
    out = {}
    for name in ds.data_vars:
        base = str(name)
        for suffix in UNCERTAINTY_SUFFIXES:
            if base.endswith(suffix) and base[: -len(suffix)] in TABLE3:
                base = base[: -len(suffix)]
        if base not in TABLE3:
            continue
        da = ds[name]
        written = da.attrs.get("units")
        factor = conversion_factor(str(written), TABLE3[base].units) if written else None
        if factor is None:
            raise GridError(path, f"variable {name!r} has units {written!r}; Table 3 asks for "
                                  f"{TABLE3[base].units!r}")
        da = da.where(abs(da) < 1e30)
        if factor != 1.0:
            da = da * factor
        da = da.astype("float32")
        da.attrs = {"units": TABLE3[base].units, "long_name": TABLE3[base].long_name,
                    "units_as_written": str(written)}
        da.encoding = {}
        target = name if base == name else f"{base}_post_unc"
        out[target] = da
    if not out:
        raise GridError(path, "holds no Table 3 variable")
    result = xr.Dataset(out)
    for coord in ("lat", "lon", "time"):
        result[coord].encoding = {}
    return result


def series_block(steps: int, itemsize: int = 4) -> int:
    """Cells a side of a time-series chunk holding ``steps`` time steps.

    32 when such a chunk holds at most :data:`SERIES_CHUNK_BYTES`, else 24, else 16 (a daily
    20-year run: 7,300 steps, 7.5 MB a chunk).
    """
    for block in (32, 24):
        if steps * block * block * itemsize <= SERIES_CHUNK_BYTES:
            return block
    return 16


def write_series_copy(store: str | os.PathLike[str], group: str) -> str:
    """Write the time-series copy of the run in ``group`` of ``store`` from its map copy.

    Parameters
    ----------
    store : str or path-like
        A Zarr store written by :func:`ingest` (a local path or fsspec URL); the run's map copy
        must be there. Metadata are not consolidated here (:func:`ingest` does it once).
    group : str
        The run's group.

    Returns
    -------
    str
        The copy's group (``<group>/series``), replaced if it existed.

    Notes
    -----
    Every variable with ``time``, ``lat`` and ``lon`` dimensions is copied with the same values,
    dtype and attributes, chunked ``(all steps, block, block)`` (:func:`series_block`; other
    dimensions whole). Variable by variable, latitude bands of whole chunk rows are read from
    the map copy (each band reads every map chunk of the variable once; a monthly 0.5° 20-year
    run is one band), at most :data:`SERIES_BAND_BYTES` at a time, and written with zarr
    directly.
    """
    import zarr

    store = str(store)
    target = store[len("file://"):] if store.startswith("file://") else store
    maps = xr.open_zarr(target, group=group, consolidated=False, chunks=None)
    names = [str(n) for n in maps.data_vars
             if {"time", "lat", "lon"} <= set(maps[n].dims)]
    if not names:
        raise GridError(f"{store}/{group}", "holds no (time, lat, lon) variable to copy")
    block = series_block(maps.sizes["time"], max(maps[n].dtype.itemsize for n in names))
    copy = xr.Dataset(coords={c: maps[c].variable for c in ("time", "lat", "lon")},
                      attrs=dict(maps.attrs))
    encoding = {}
    for name in names:
        da = maps[name]
        chunks = tuple(min(block, da.sizes[d]) if d in ("lat", "lon") else da.sizes[d]
                       for d in da.dims)
        # a lazy placeholder: compute=False below writes the metadata and coordinates only
        copy[name] = xr.DataArray(_lazy_empty(da.shape, da.dtype, chunks), dims=da.dims,
                                  attrs=dict(da.attrs))
        encoding[name] = {"chunks": chunks, "dtype": da.dtype}
    for coord in ("time", "lat", "lon"):
        copy[coord].encoding = {k: v for k, v in maps[coord].encoding.items()
                                if k in ("units", "calendar", "dtype")}
    path = series_group(group)
    copy.to_zarr(target, group=path, mode="w", consolidated=False, zarr_format=2,
                 compute=False, encoding=encoding)
    out = zarr.open_group(target, path=path, mode="r+", zarr_format=2)
    for name in names:  # one variable at a time: the band budget is one variable's
        da = maps[name]
        row_bytes = max(1, da.nbytes // da.sizes["lat"])
        rows = max(block, SERIES_BAND_BYTES // row_bytes // block * block)
        axis = da.dims.index("lat")
        for start in range(0, da.sizes["lat"], rows):
            values = da.isel(lat=slice(start, start + rows)).values
            index = tuple(slice(start, start + values.shape[axis]) if d == "lat" else slice(None)
                          for d in da.dims)
            out[name][index] = values
    return path


def _lazy_empty(shape: tuple[int, ...], dtype: Any, chunks: tuple[int, ...]) -> Any:
    """A lazy dask array of ``shape`` (never computed: a template for ``to_zarr``)."""
    import dask.array

    return dask.array.empty(shape, dtype=dtype, chunks=chunks)


def global_sources(data_root: str | os.PathLike[str]) -> list[tuple[str, Any]]:
    """``(path, catalog row)`` of every global run NetCDF file under ``data_root``."""
    from loaders.catalog import build_catalog

    catalog = build_catalog(data_root)
    rows = catalog[catalog["kind"] == "global_run"].sort_values("path")
    return [(str(row["path"]), row) for _, row in rows.iterrows()]


def ingest(data_root: str | os.PathLike[str], out: str | os.PathLike[str], *,
           progress: bool = True, series: bool = True) -> IngestReport:
    """Write the global runs of ``data_root`` into the consolidated Zarr store ``out``.

    Parameters
    ----------
    data_root : str or path-like
        Folder (or fsspec URL) of CalLMIP files.
    out : str or path-like
        Target store, a path or fsspec URL ending in ``.zarr`` (groups are replaced).
    progress : bool
        Show a progress bar (tqdm) on standard error.
    series : bool
        Also write each run's time-series copy (:func:`write_series_copy`; layout 2). False
        writes the map copy only, as layout 1 did (for measuring what the copy costs).

    Returns
    -------
    IngestReport
        Runs written and runs skipped with their messages.
    """
    import zarr
    from tqdm.auto import tqdm

    out = str(out)
    if not out.rstrip("/").endswith(".zarr"):
        raise ValueError(f"the store name must end in .zarr, not {out!r}")
    target = out[len("file://"):] if out.startswith("file://") else out
    report = IngestReport(store=out)
    sources = global_sources(data_root)
    runs: dict[str, dict[str, Any]] = {}
    with tqdm(total=len(sources), unit="run", disable=not progress,
              desc="ingest") as bar:
        for path, row in sources:
            name = Path(path).name
            stem = name[: -len(".nc")] if name.endswith(".nc") else name
            bar.set_postfix_str(stem[:40])
            try:
                ds = _canonical(open_gridded(path), path)
                chunks = {"time": 1, "lat": ds.sizes["lat"], "lon": ds.sizes["lon"]}
                ds = ds.chunk(chunks)
                for var in ds.data_vars:
                    ds[var].encoding = {"chunks": tuple(chunks[d] if d in chunks else
                                                        ds.sizes[d] for d in ds[var].dims)}
                ds.attrs = {"source_file": name, "model": str(row["model"]),
                            "version": str(row["version"]), "stage": str(row["stage"])}
                ds.to_zarr(target, group=stem, mode="w", consolidated=False, zarr_format=2)
                if series:
                    write_series_copy(target, stem)
            except (GridError, OSError, ValueError) as exc:
                report.failed[name] = str(exc)
                bar.update()
                continue
            runs[stem] = {"file": name, "model": str(row["model"]),
                          "version": str(row["version"]), "stage": str(row["stage"]),
                          "resolution": str(row.get("resolution", "")),
                          "frequency": str(row.get("frequency", ""))}
            report.written.append(name)
            bar.update()
    root = zarr.open_group(target, mode="a", zarr_format=2)
    known = dict(root.attrs.get("runs", {}))
    known.update(runs)
    root.attrs.update({STORE_MARKER: STORE_VERSION, "runs": known})
    zarr.consolidate_metadata(target, zarr_format=2)
    return report


def store_runs(store: str | os.PathLike[str]) -> dict[str, dict[str, str]]:
    """The runs listed in an ingested store (group name → model, version, stage, file).

    Returns an empty dict when ``store`` is not a store written by :func:`ingest`.
    """
    import zarr

    path = str(store)
    path = path[len("file://"):] if path.startswith("file://") else path
    try:
        root = zarr.open_consolidated(path, mode="r", zarr_format=2)
    except Exception:
        try:
            root = zarr.open_group(path, mode="r")
        except Exception:
            return {}
    attrs = dict(root.attrs)
    if attrs.get(STORE_MARKER) is None:
        return {}
    return {str(k): dict(v) for k, v in dict(attrs.get("runs", {})).items()}
