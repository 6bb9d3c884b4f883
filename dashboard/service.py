"""The data service: one per worker process, the only place in the app that opens files.

A :class:`DataService` holds an archive's catalog, its metric tables (computed once per archive
signature, shared by every session), a cache bounded in bytes for opened files and per-site
series, the failures met with their messages, and frames that describe the whole archive
(computed once, never per session). It holds no session state: selections live in each
session's :class:`~dashboard.state.Selection`.

Services are created lazily, per process: :func:`get_service` called in a forked worker builds
a new one there, so no thread, lock or open file crosses a fork. Everything a service returns
is shared by every session of the worker; the query layer (:mod:`dashboard.queries`) hands
sessions copies, so one session can never change what another sees.
"""

from __future__ import annotations

import os
import threading
from collections.abc import Callable, Hashable
from functools import cached_property
from pathlib import Path
from typing import Any

import pandas as pd

from dashboard.sitedata import SiteSeries, site_series
from dashboard.state import SITE_VARIABLES
from loaders.archive import Archive, file_cache
from loaders.cache import ByteLRU, ForkSafeLock, cache_bytes
from loaders.sites import load_sites

#: Share of the byte budget the prefetch may fill, leaving room for what sessions ask for.
PREFETCH_SHARE = 0.8


class DataService:
    """An archive, its metric tables and the caches every session of a worker shares.

    Parameters
    ----------
    root : str or path-like
        Data folder (or fsspec URL).
    cache_mb : float, optional
        Memory budget for opened files and series, in MB (default ``$CALLMIP_CACHE_MB`` or
        512). Files and series share it.
    """

    def __init__(self, root: str | Path, *, cache_mb: float | None = None) -> None:
        self.root = str(root)
        self.cache = ByteLRU(cache_bytes(cache_mb))
        self.archive = Archive(root, cache=self.cache)
        self.pid = os.getpid()
        self._tables: dict[str, pd.DataFrame] | None = None
        self._tables_lock = ForkSafeLock()
        self._frames: dict[Hashable, Any] = {}
        self._frames_lock = ForkSafeLock()
        #: Problems met while computing tables (one message per failing step).
        self.table_errors: list[str] = []

    # -- what the archive holds ------------------------------------------------------------
    @cached_property
    def sites(self) -> pd.DataFrame:
        """The site table: Phase 1b sites and any other site present in the archive."""
        sites = load_sites()
        present = set(self.archive.sites())
        keep = sites["role"].isin(["Cal", "Val"]) | sites["site_id"].isin(present)
        return sites[keep].reset_index(drop=True)

    def model_ids(self) -> list[str]:
        """Model identifiers (``<model>.<version>``) with at least one site run."""
        return self.frame(("model_ids",), self.archive.model_ids)

    def scenarios(self) -> list[int]:
        """Scenarios present (1 always offered)."""
        return self.frame(("scenarios",), lambda: sorted(set(self.archive.scenarios()) | {1}))

    def observed_sites(self) -> list[str]:
        """Sites with an observation file, DK-Sor (the protocol's test site) first."""
        def compute() -> list[str]:
            sites = [s for s in self.archive.sites()
                     if self.archive.observation_path(s) is not None]
            return sorted(sites, key=lambda s: s != "DK-Sor")

        return self.frame(("observed_sites",), compute)

    def signature(self) -> str:
        """The archive's signature (changes whenever a file is added, removed or modified)."""
        return self.frame(("signature",), self.archive.signature)

    # -- archive-wide results, computed once -----------------------------------------------
    def tables(self) -> dict[str, pd.DataFrame]:
        """Metric tables (computed once per archive signature; also cached on disk)."""
        with self._tables_lock:
            if self._tables is None:
                from dashboard.metrics.tables import compute_tables

                try:
                    self._tables = dict(compute_tables(self.archive, progress=False))
                except Exception as exc:  # the app must keep serving without tables
                    self.table_errors.append(f"metric tables could not be computed: {exc}")
                    self._tables = {}
            return self._tables

    def table(self, name: str) -> pd.DataFrame:
        """One metric table by name, shared: do not modify it (empty frame if unavailable)."""
        return self.tables().get(name, pd.DataFrame())

    def frame(self, key: Hashable, compute: Callable[[], Any]) -> Any:
        """A result describing the whole archive, computed once per service.

        Parameters
        ----------
        key : hashable
            Names the result and its arguments, e.g. ``("coverage", 1)``.
        compute : callable
            Computes it on first use.

        Returns
        -------
        object
            The shared result: callers hand sessions a copy.
        """
        with self._frames_lock:
            if key in self._frames:
                return self._frames[key]
        value = compute()
        with self._frames_lock:
            return self._frames.setdefault(key, value)

    # -- per-site data, bounded in bytes ---------------------------------------------------
    def site_series(self, site: str, variable: str, scenario: int,
                    models: tuple[str, ...]) -> SiteSeries:
        """Per-site series for the views, shared by every session (byte-bounded LRU).

        The arrays the views draw are prepared before the series is cached, so its size is
        known when it is counted.
        """
        key = ("series", site, variable, int(scenario), tuple(models))

        def compute() -> SiteSeries:
            series = site_series(self.archive, site, variable, scenario, list(models))
            series.prepare()
            return series

        return self.cache.get_or_compute(key, compute)

    def broken_files(self) -> pd.DataFrame:
        """Files that cannot be used: unrecognised names and files that failed to open."""
        rows = [{"file": Path(r.path).name, "problem": f"unrecognised name: {r.reason}"}
                for r in self.archive.unrecognised.itertuples()]
        rows += [{"file": Path(p).name, "problem": msg}
                 for p, msg in sorted(self.archive.errors.items())]
        return pd.DataFrame(rows, columns=["file", "problem"])

    def clear_series(self) -> None:
        """Forget cached files and series (the metric tables stay)."""
        self.cache.clear()

    def prefetch(self, stop: threading.Event | None = None) -> int:
        """Read sites' observations and runs, and their opening series, into the cache.

        Site by site, the app's opening site first, until the cache is
        :data:`PREFETCH_SHARE` full: a first visit to those sites then reads no file. Reads take
        the archive's read lock one file at a time, so sessions interleave.

        Parameters
        ----------
        stop : threading.Event, optional
            Set it to stop early (the server's shutdown).

        Returns
        -------
        int
            Number of files read.
        """
        models = tuple(self.model_ids())
        budget = PREFETCH_SHARE * self.cache.max_bytes
        count = 0
        for site in self.observed_sites():
            if (stop is not None and stop.is_set()) or self.cache.bytes > budget:
                break
            count += self.archive.open_observations(site) is not None
            for path in self.archive.runs(site=site)["path"]:
                count += self.archive.open_run(path) is not None
            for variable in SITE_VARIABLES:
                self.site_series(site, variable, 1, models)
        return count

    def memory(self) -> dict[str, int]:
        """Bytes held by the caches: ``{"cache": …, "cache_max": …, "entries": …}``."""
        stats = self.cache.stats()
        return {"cache": stats.bytes, "cache_max": stats.max_bytes, "entries": stats.entries}


_SERVICES: dict[tuple[int, str], DataService] = {}
_SERVICES_LOCK = ForkSafeLock()
_DEFAULT_CACHE_MB: float | None = None


def configure(*, cache_mb: float | None = None) -> None:
    """Set the memory budget of services created from now on (``callmip serve --cache-mb``)."""
    global _DEFAULT_CACHE_MB
    _DEFAULT_CACHE_MB = cache_mb


def _root_key(root: str | Path) -> str:
    return str(root) if "://" in str(root) else str(Path(root).resolve())


def get_service(root: str | Path, *, refresh: bool = False) -> DataService:
    """The data service of ``root`` in this process (created on first use).

    A forked worker never reuses its parent's service: services are keyed by process id.
    """
    key = (os.getpid(), _root_key(root))
    with _SERVICES_LOCK:
        if refresh or key not in _SERVICES:
            for stale in [k for k in _SERVICES if k[0] != key[0]]:
                del _SERVICES[stale]  # inherited through fork: never used here
            _SERVICES[key] = DataService(key[1], cache_mb=_DEFAULT_CACHE_MB)
        return _SERVICES[key]


def release_parent_memory() -> None:
    """Forget this process's services and opened files before forking workers.

    The metric tables stay in their disk cache, from which each worker reads them.
    """
    import gc

    with _SERVICES_LOCK:
        _SERVICES.clear()
    file_cache().clear()
    gc.collect()
    trim_memory()


def trim_memory() -> None:
    """Give freed heap memory back to the operating system (glibc only; else nothing)."""
    import ctypes
    import ctypes.util

    try:
        libc = ctypes.CDLL(ctypes.util.find_library("c") or "libc.so.6")
        libc.malloc_trim(0)
    except (OSError, AttributeError):
        pass
