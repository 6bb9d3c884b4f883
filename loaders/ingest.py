"""``callmip ingest``: copy an archive's global runs into one consolidated Zarr store.

Each global run (``<model>.<version>_global_…_<stage>.nc``) becomes a group of the store named
after the file (without ``.nc``), holding its Table 3 variables (and ``_post_unc``
uncertainties) **in Table 3 units, float32**, on the standard grid of
:func:`loaders.gridded.standardise_grid` (lat ascending, lon in [−180, 180)), chunked **one time
step per chunk** (what a map reads). The store's root attributes list the runs
(:data:`loaders.gridded.STORE_MARKER`); its metadata are consolidated, so opening a run reads one
small JSON document. A run that cannot be read is reported and skipped; the others are written.

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

from loaders.gridded import STORE_MARKER, STORE_VERSION, GridError, open_gridded
from loaders.variables import TABLE3, UNCERTAINTY_SUFFIXES, conversion_factor


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


def global_sources(data_root: str | os.PathLike[str]) -> list[tuple[str, Any]]:
    """``(path, catalog row)`` of every global run NetCDF file under ``data_root``."""
    from loaders.catalog import build_catalog

    catalog = build_catalog(data_root)
    rows = catalog[catalog["kind"] == "global_run"].sort_values("path")
    return [(str(row["path"]), row) for _, row in rows.iterrows()]


def ingest(data_root: str | os.PathLike[str], out: str | os.PathLike[str], *,
           progress: bool = True) -> IngestReport:
    """Write the global runs of ``data_root`` into the consolidated Zarr store ``out``.

    Parameters
    ----------
    data_root : str or path-like
        Folder (or fsspec URL) of CalLMIP files.
    out : str or path-like
        Target store, a path or fsspec URL ending in ``.zarr`` (groups are replaced).
    progress : bool
        Show a progress bar (tqdm) on standard error.

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
