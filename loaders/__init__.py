"""Turn CalLMIP files into catalogs and standardised xarray objects (no Panel here)."""

from loaders.archive import Archive, clear_cache
from loaders.catalog import build_catalog, catalog_records
from loaders.naming import ParsedName, format_name, parse_name
from loaders.readers import (
    CalLMIPFileError,
    open_global_run,
    open_observations,
    open_site_run,
    read_parameters,
)
from loaders.sites import load_sites, phase1b_sites

__all__ = [
    "Archive",
    "CalLMIPFileError",
    "ParsedName",
    "build_catalog",
    "catalog_records",
    "clear_cache",
    "format_name",
    "load_sites",
    "open_global_run",
    "open_observations",
    "open_site_run",
    "parse_name",
    "phase1b_sites",
    "read_parameters",
]
