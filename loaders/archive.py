"""An archive: a catalog plus cached, lazy access to the files it lists.

Files are opened only when asked for, once per process (keyed by path, size and modification
time, in a cache bounded in bytes: :mod:`loaders.cache`), under one lock because NetCDF/HDF5
reads are not thread-safe. A file that cannot be read is recorded in :attr:`Archive.errors`
with its message; callers get ``None`` (or skip it) and everything else keeps working.
"""

from __future__ import annotations

import os
import threading
from collections.abc import Callable
from functools import cached_property, partial
from pathlib import Path

import pandas as pd
import xarray as xr

from loaders.cache import ByteLRU, cache_bytes
from loaders.catalog import build_catalog
from loaders.model_info import ModelInfo, read_model_info
from loaders.readers import (
    _READ_LOCK,
    CalLMIPFileError,
    open_observations,
    open_site_run,
    read_parameters,
)

_FILE_CACHE: ByteLRU | None = None
_FILE_CACHE_PID: int | None = None


def file_cache() -> ByteLRU:
    """The process's cache of opened files, bounded in bytes (``$CALLMIP_CACHE_MB``).

    One per process: a forked worker starts with an empty cache of its own.
    """
    global _FILE_CACHE, _FILE_CACHE_PID
    if _FILE_CACHE is None or _FILE_CACHE_PID != os.getpid():
        _FILE_CACHE, _FILE_CACHE_PID = ByteLRU(cache_bytes()), os.getpid()
    return _FILE_CACHE


def clear_cache() -> None:
    """Forget every opened file of this process (for tests and after files change in place)."""
    file_cache().clear()


def _opened(kind: str, key: tuple[str, int | None, float | None],
            cache: ByteLRU, reader: Callable[[str], object]) -> object:
    """``reader(path)`` through ``cache``, keyed by kind, path, size and mtime.

    NetCDF/HDF5 reads hold the process's read lock; a cached result is shared, so callers
    must not modify it.
    """
    def read() -> object:
        with _READ_LOCK:
            return reader(key[0])

    return cache.get_or_compute((kind, *key), read)


class Archive:
    """A folder of CalLMIP files, catalogued by name and opened on demand.

    Parameters
    ----------
    root : str or path-like
        Data folder (or fsspec URL).
    catalog : pandas.DataFrame, optional
        A catalog already built for ``root``.
    cache : loaders.cache.ByteLRU, optional
        Where opened files are kept; default the process's :func:`file_cache`.
    """

    def __init__(self, root: str | os.PathLike[str], catalog: pd.DataFrame | None = None,
                 *, cache: ByteLRU | None = None):
        self.root = str(root)
        self.catalog = build_catalog(root) if catalog is None else catalog
        self._cache = cache
        #: path → message for every file that failed to open.
        self.errors: dict[str, str] = {}
        self._lock = threading.Lock()

    # -- selections ----------------------------------------------------------------------
    @cached_property
    def site_runs(self) -> pd.DataFrame:
        """Catalog rows of site runs, with a ``model_id`` column (``<model>.<version>``).

        Computed once: the catalog of an Archive does not change (build a new Archive to see
        new files). Treat it as read-only.
        """
        df = self.catalog[self.catalog["kind"] == "site_run"].copy()
        df["model_id"] = df["model"] + "." + df["version"]
        return df

    @cached_property
    def _site_runs_by_site(self) -> dict[str, pd.DataFrame]:
        return {str(site): rows for site, rows in self.site_runs.groupby("site", sort=False)}

    @cached_property
    def _rows_by_path(self) -> dict[str, dict]:
        return {row["path"]: row for row in self.catalog.to_dict(orient="records")}

    @property
    def global_runs(self) -> pd.DataFrame:
        """Catalog rows of global runs, with a ``model_id`` column."""
        df = self.catalog[self.catalog["kind"] == "global_run"].copy()
        df["model_id"] = df["model"] + "." + df["version"]
        return df

    @property
    def observation_files(self) -> pd.DataFrame:
        """Catalog rows of observation files."""
        return self.catalog[self.catalog["kind"] == "observation"]

    @property
    def parameter_files(self) -> pd.DataFrame:
        """Catalog rows of parameter tables."""
        return self.catalog[self.catalog["kind"] == "parameters"]

    @property
    def model_info_files(self) -> pd.DataFrame:
        """Catalog rows of model-information files (protocol v2 §12), with ``model_id``."""
        df = self.catalog[self.catalog["kind"] == "model_info"].copy()
        df["model_id"] = df["model"] + "." + df["version"]
        return df

    def read_model_info(self, path: str) -> ModelInfo:
        """Parse a model-information file (cached); its problems are in the result.

        A file that cannot be used at all (unreadable, not YAML/JSON) is also recorded in
        :attr:`errors`.
        """
        info = _opened("model_info", self._key(path), self.cache, read_model_info)
        fatal = [m for c, m in info.errors if c in ("unreadable", "syntax", "structure")]
        if fatal:
            self._record(path, CalLMIPFileError(path, fatal[0].split(": ", 1)[-1]))
        return info

    @property
    def unrecognised(self) -> pd.DataFrame:
        """Catalog rows whose names fit no convention."""
        return self.catalog[self.catalog["kind"] == "unrecognised"]

    def model_ids(self) -> list[str]:
        """Sorted ``<model>.<version>`` identifiers of every site run."""
        return sorted(self.site_runs["model_id"].dropna().unique())

    def sites(self) -> list[str]:
        """Sorted site ids with at least one site run or observation file."""
        ids = set(self.site_runs["site"].dropna()) | set(self.observation_files["site"].dropna())
        return sorted(ids)

    def scenarios(self) -> list[int]:
        """Sorted scenario numbers present among site runs."""
        return sorted(int(s) for s in self.site_runs["scenario"].dropna().unique())

    def observation_path(self, site: str) -> str | None:
        """The observation file for ``site``.

        The CalLMIP daily file with the longest record; a PLUMBER2 original only when there is
        no daily file.
        """
        obs = self.observation_files[self.observation_files["site"] == site]
        if obs.empty:
            return None
        obs = obs.assign(
            _daily=(obs["convention"] == "obs_daily").astype(int),
            _span=(obs["year_end"] - obs["year_start"]).fillna(0),
        ).sort_values(["_daily", "_span"], ascending=False)
        return str(obs.iloc[0]["path"])

    def runs(self, *, site: str | None = None, scenario: int | None = None,
             stage: str | None = None, model_id: str | None = None) -> pd.DataFrame:
        """Site-run catalog rows filtered by any of site, scenario, stage and model id."""
        if site is not None:  # the views ask per site: look the site's rows up directly
            df = self._site_runs_by_site.get(site, self.site_runs.iloc[:0])
        else:
            df = self.site_runs
        if scenario is not None:
            df = df[df["scenario"] == scenario]
        if stage is not None:
            df = df[df["stage"] == stage]
        if model_id is not None:
            df = df[df["model_id"] == model_id]
        return df

    @cached_property
    def _priors(self) -> dict[tuple[str, int, str], str]:
        """(model id, scenario, site) → path of the first prior run in catalog order."""
        table: dict[tuple[str, int, str], str] = {}
        priors = self.site_runs[self.site_runs["stage"] == "Prior"]
        for row in priors.itertuples(index=False):
            table.setdefault((row.model_id, int(row.scenario), row.site), row.path)
        return table

    def prior_for(self, model_id: str, scenario: int, site: str
                  ) -> tuple[int | None, str | None]:
        """The prior paired with a posterior of ``scenario``: ``(its scenario, its path)``.

        The one pairing rule of the project (views, metric tables, exporter): protocol v2 asks
        for prior runs once (Scenario 1); a scenario's own prior is used when one was submitted,
        otherwise the Scenario 1 prior. ``(None, None)`` when the model has no prior there.
        """
        for scen in (int(scenario), 1):
            path = self._priors.get((model_id, scen, site))
            if path is not None:
                return scen, path
        return None, None

    def prior_row(self, model_id: str, scenario: int, site: str) -> pd.Series | None:
        """The catalog row of the prior paired with a posterior of ``scenario``, or ``None``.

        See :meth:`prior_for` for the rule.
        """
        _, path = self.prior_for(model_id, scenario, site)
        return None if path is None else pd.Series(self._rows_by_path[path])

    # -- opening -------------------------------------------------------------------------
    @property
    def cache(self) -> ByteLRU:
        """Where this archive keeps opened files (bounded in bytes)."""
        return self._cache if self._cache is not None else file_cache()

    def _row_for(self, path: str) -> dict | None:
        return self._rows_by_path.get(path)

    def _key(self, path: str) -> tuple[str, int | None, float | None]:
        row = self._row_for(path)
        if row is None:
            try:
                st = Path(path).stat()
                return path, st.st_size, st.st_mtime
            except OSError:
                return path, None, None
        size = None if pd.isna(row["size"]) else int(row["size"])
        mtime = None if pd.isna(row["mtime"]) else float(row["mtime"])
        return path, size, mtime

    def _record(self, path: str, exc: Exception) -> None:
        with self._lock:
            self.errors[path] = str(exc)

    def open_run(self, path: str) -> xr.Dataset | None:
        """Open a site run (cached); ``None`` and an entry in :attr:`errors` if it fails."""
        try:
            return _opened("run", self._key(path), self.cache, open_site_run)
        except CalLMIPFileError as exc:
            self._record(path, exc)
        except Exception as exc:  # any library error becomes a recorded message
            self._record(path, CalLMIPFileError(path, f"cannot be read: {exc}"))
        return None

    def open_observations(self, site: str) -> xr.Dataset | None:
        """Open the observations of ``site`` (cached); ``None`` if there are none or it fails."""
        path = self.observation_path(site)
        if path is None:
            return None
        try:
            return _opened("obs", self._key(path), self.cache, open_observations)
        except CalLMIPFileError as exc:
            self._record(path, exc)
        except Exception as exc:
            self._record(path, CalLMIPFileError(path, f"cannot be read: {exc}"))
        return None

    def read_parameters(self, path: str) -> pd.DataFrame | None:
        """Read a parameter table (cached); ``None`` and an entry in :attr:`errors` on failure.

        Rows with bad cells are kept, with their messages in the ``problems`` column
        (``read_parameters(..., report_rows=True)``); a file that cannot be read at all
        (no ``parameter`` column, not a CSV) is recorded in :attr:`errors`.
        """
        try:
            return _opened("parameters", self._key(path), self.cache,
                           partial(read_parameters, report_rows=True)).copy()
        except CalLMIPFileError as exc:
            self._record(path, exc)
        except Exception as exc:
            self._record(path, CalLMIPFileError(path, f"cannot be read: {exc}"))
        return None

    def signature(self) -> str:
        """A short hash of every catalogued path, size and mtime: changes when files change."""
        import hashlib

        h = hashlib.sha256()
        for row in self.catalog[["path", "size", "mtime"]].itertuples(index=False):
            h.update(f"{row.path}|{row.size}|{row.mtime}\n".encode())
        return h.hexdigest()[:16]
