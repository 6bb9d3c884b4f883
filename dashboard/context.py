"""What every session of one served archive shares: the archive, its metric tables, the sites.

One :class:`ArchiveContext` per data root per process (the catalog is rebuilt when asked with
``refresh=True``). It holds no session state: selections live in each session's
:class:`~dashboard.state.Selection`.
"""

from __future__ import annotations

import threading
from functools import cached_property
from pathlib import Path

import pandas as pd

from loaders.archive import Archive
from loaders.sites import load_sites

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
