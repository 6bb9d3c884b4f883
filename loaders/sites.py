"""The CalLMIP Phase 1 site table shipped in ``assets/sites.csv``."""

from __future__ import annotations

from functools import lru_cache
from pathlib import Path

import pandas as pd

_PACKAGED = Path(__file__).resolve().parent / "_assets"
_CHECKOUT = Path(__file__).resolve().parent.parent / "assets"


def asset_path(name: str) -> Path:
    """Return the path of a shipped asset (``assets/`` in a checkout, ``_assets`` in a wheel).

    Parameters
    ----------
    name : str
        File name inside ``assets/``.

    Returns
    -------
    pathlib.Path
        The asset's path.

    Raises
    ------
    FileNotFoundError
        If the asset is in neither place.
    """
    for folder in (_CHECKOUT, _PACKAGED):
        candidate = folder / name
        if candidate.exists():
            return candidate
    raise FileNotFoundError(f"asset {name!r} not found in {_CHECKOUT} or {_PACKAGED}")


@lru_cache(maxsize=1)
def _load_sites() -> pd.DataFrame:
    df = pd.read_csv(asset_path("sites.csv"))
    df.index = pd.Index(df["site_id"].to_numpy())  # unnamed: "site_id" stays a plain column
    return df


def load_sites() -> pd.DataFrame:
    """Return the site table, indexed by ``site_id``.

    Returns
    -------
    pandas.DataFrame
        Columns ``site_id, name, country, lat, lon, igbp, elevation_m, role`` (``Cal``,
        ``Val`` or ``unused``), ``record_years, obs_start, obs_end, plumber2_year_start,
        plumber2_year_end, notes, source``. A copy: callers may modify it.
    """
    return _load_sites().copy()


def phase1b_sites(role: str | None = None) -> pd.DataFrame:
    """Return the 31 Phase 1b sites, or only the ``Cal`` or ``Val`` ones.

    Parameters
    ----------
    role : {"Cal", "Val"}, optional
        Restrict to calibration or validation sites.

    Returns
    -------
    pandas.DataFrame
        Subset of :func:`load_sites`.
    """
    df = load_sites()
    df = df[df["role"].isin(["Cal", "Val"])]
    if role is not None:
        df = df[df["role"] == role]
    return df
