"""What every session of one served archive shares: the archive, its metric tables, the sites.

One :class:`ArchiveContext` per data root per process (the catalog is rebuilt when asked with
``refresh=True``). It holds no session state: selections live in each session's
:class:`~dashboard.state.Selection`.
"""

from __future__ import annotations

import threading
from collections import OrderedDict
from functools import cached_property
from pathlib import Path

import pandas as pd

from dashboard.sitedata import SiteSeries, site_series
from dashboard.state import SITE_VARIABLES
from loaders.archive import Archive
from loaders.sites import load_sites

#: How many (site, variable, scenario, models) series a process keeps for the views (a few MB
#: each): every Phase 1b site's NEE, Qle and Qh for two selections of models.
SERIES_CACHE_SIZE = 192

_CONTEXTS: dict[str, ArchiveContext] = {}
_LOCK = threading.Lock()


class ArchiveContext:
    """An archive plus its lazily computed metric tables.

    Parameters
    ----------
    root : str or path-like
        Data folder.
    """

    def __init__(self, root: str | Path) -> None:
        self.root = str(root)
        self.archive = Archive(root)
        self._tables: dict[str, pd.DataFrame] | None = None
        self._tables_lock = threading.Lock()
        #: Problems met while computing tables (message per failing step).
        self.table_errors: list[str] = []
        self._series: OrderedDict[tuple, SiteSeries] = OrderedDict()
        self._series_lock = threading.Lock()

    @cached_property
    def sites(self) -> pd.DataFrame:
        """The site table, restricted to Phase 1b sites and any site present in the archive."""
        sites = load_sites()
        present = set(self.archive.sites())
        keep = sites["role"].isin(["Cal", "Val"]) | sites["site_id"].isin(present)
        return sites[keep]

    def tables(self) -> dict[str, pd.DataFrame]:
        """Metric tables (computed once per archive; cached on disk by the metrics package)."""
        with self._tables_lock:
            if self._tables is None:
                from dashboard.metrics.tables import compute_tables

                try:
                    self._tables = compute_tables(self.archive, progress=False)
                except Exception as exc:  # the app must keep serving without tables
                    self.table_errors.append(f"metric tables could not be computed: {exc}")
                    self._tables = {}
            return self._tables

    def table(self, name: str) -> pd.DataFrame:
        """One metric table by name (empty frame if unavailable)."""
        return self.tables().get(name, pd.DataFrame())

    def site_series(self, site: str, variable: str, scenario: int,
                    models: tuple[str, ...]) -> SiteSeries:
        """Per-site series for the views, shared by every session (bounded LRU)."""
        key = (site, variable, scenario, tuple(models))
        with self._series_lock:
            if key in self._series:
                self._series.move_to_end(key)
                return self._series[key]
        value = site_series(self.archive, site, variable, scenario, list(models))
        with self._series_lock:
            self._series[key] = value
            while len(self._series) > SERIES_CACHE_SIZE:
                self._series.popitem(last=False)
        return value

    def observed_sites(self) -> list[str]:
        """Sites with an observation file, DK-Sor (the protocol's test site) first."""
        sites = [s for s in self.archive.sites()
                 if self.archive.observation_path(s) is not None]
        return sorted(sites, key=lambda s: s != "DK-Sor")

    def clear_series(self) -> None:
        """Forget the per-site series (the files stay in the archive's cache)."""
        with self._series_lock:
            self._series.clear()

    def prefetch(self, stop: threading.Event | None = None) -> int:
        """Read every site's observations and runs into the process cache, site by site.

        A first visit to a site then costs no file reads, and the series the Sites view opens
        with (all models, Scenario 1) are ready. Skipped (returns 0) when the files would not
        fit in the archive's cache, where reading them all would only evict each other. Reads
        take the archive's read lock one file at a time, so sessions interleave.

        Parameters
        ----------
        stop : threading.Event, optional
            Set it to stop early (the server's shutdown).

        Returns
        -------
        int
            Number of files read.
        """
        from loaders.archive import CACHE_SIZE

        models = tuple(self.model_ids())
        sites = self.observed_sites()  # the app opens on the first
        if len(self.archive.site_runs) + len(sites) > CACHE_SIZE:
            return 0
        with_series = len(SITE_VARIABLES) * len(sites) <= SERIES_CACHE_SIZE // 2
        count = 0
        for site in sites + [s for s in self.archive.sites() if s not in sites]:
            if stop is not None and stop.is_set():
                break
            count += self.archive.open_observations(site) is not None
            for path in self.archive.runs(site=site)["path"]:
                count += self.archive.open_run(path) is not None
            if with_series and site in sites:
                for variable in SITE_VARIABLES:
                    series = self.site_series(site, variable, 1, models)
                    _ = series.on_obs_days, series.drawing
        return count

    def model_ids(self) -> list[str]:
        """Model identifiers with at least one site run."""
        return self.archive.model_ids()

    def scenarios(self) -> list[int]:
        """Scenarios present (1 always offered)."""
        return sorted(set(self.archive.scenarios()) | {1})

    def broken_files(self) -> pd.DataFrame:
        """Files that cannot be used: unrecognised names and files that failed to open."""
        rows = [{"file": Path(r.path).name, "problem": f"unrecognised name: {r.reason}"}
                for r in self.archive.unrecognised.itertuples()]
        rows += [{"file": Path(p).name, "problem": msg} for p, msg in self.archive.errors.items()]
        return pd.DataFrame(rows, columns=["file", "problem"])


def get_context(root: str | Path, *, refresh: bool = False) -> ArchiveContext:
    """Return the process-wide context of ``root`` (created on first use)."""
    key = str(Path(root).resolve()) if "://" not in str(root) else str(root)
    with _LOCK:
        if refresh or key not in _CONTEXTS:
            _CONTEXTS[key] = ArchiveContext(key)
        return _CONTEXTS[key]
