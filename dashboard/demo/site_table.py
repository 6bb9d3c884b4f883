"""The demo's sites: real coordinates and record lengths, synthetic climate and gap statistics.

Coordinates, vegetation type, role and record length come from ``assets/sites.csv``
(:func:`loaders.sites.phase1b_sites`). The climate descriptors below are rough, rounded
climatologies chosen by hand so that each site gets the right kind of seasonal cycle (boreal,
maritime, Mediterranean, monsoon, tropical savanna); they are not data. The valid fractions
of observed days are those of the real Phase 1b files (calibration sites) or plausible values
(validation sites, whose data are withheld in the real protocol).
"""

from __future__ import annotations

import zlib
from dataclasses import dataclass

import numpy as np
import pandas as pd

#: IGBP types counted as forest (the other types are "grass-shrub" for PFT-group parameters).
FOREST_TYPES = ("ENF", "EBF", "DBF", "DNF", "MF")


@dataclass(frozen=True)
class Climate:
    """Rounded climatology of a site (drives the synthetic weather).

    Attributes
    ----------
    t_mean : float
        Annual mean air temperature (degC).
    t_amp : float
        Half the difference between the warmest and the coldest month (K).
    p_annual : float
        Annual precipitation (mm).
    p_peak_month : float
        Month (1-12, may be fractional) of the wettest season.
    p_season : float
        Strength of the precipitation seasonality, 0 (even) to 1 (all in one season).
    rh_mean : float
        Mean relative humidity (0-1).
    monsoon : float, default 0
        Share of the annual precipitation falling in a short, sharp rainy season (a summer
        monsoon); the rest follows ``p_peak_month`` and ``p_season``.
    monsoon_month : float, default 8.1
        Month (1-12, fractional) of the middle of that rainy season.
    """

    t_mean: float
    t_amp: float
    p_annual: float
    p_peak_month: float
    p_season: float
    rh_mean: float
    monsoon: float = 0.0
    monsoon_month: float = 8.1


#: Hand-made rounded climatologies (see the module docstring).
CLIMATES: dict[str, Climate] = {
    "AU-Tum": Climate(9.5, 6.0, 1000, 7, 0.2, 0.72),
    "AU-How": Climate(27.5, 2.5, 1700, 1.5, 0.95, 0.66, monsoon=0.5, monsoon_month=1.7),
    "AU-ASM": Climate(21.0, 7.5, 300, 1.5, 0.6, 0.35),
    "AU-Stp": Climate(26.0, 5.0, 600, 1.5, 0.9, 0.48, monsoon=0.5, monsoon_month=1.7),
    "CA-Qfo": Climate(0.0, 14.0, 950, 7, 0.3, 0.75),
    "CH-Dav": Climate(3.5, 8.0, 1050, 7, 0.35, 0.75),
    "DE-Gri": Climate(8.0, 8.5, 850, 7, 0.25, 0.78),
    "DE-Hai": Climate(8.3, 8.5, 750, 7, 0.2, 0.78),
    "DE-Tha": Climate(8.5, 8.5, 850, 7, 0.25, 0.78),
    "DK-Sor": Climate(8.5, 7.5, 730, 9, 0.15, 0.82),
    "FI-Hyy": Climate(3.5, 12.0, 710, 8, 0.25, 0.79),
    "FR-Pue": Climate(13.5, 8.5, 900, 11, 0.5, 0.65),
    "IT-Lav": Climate(7.8, 9.0, 1300, 10, 0.2, 0.74),
    "IT-MBo": Climate(5.0, 9.0, 1200, 7, 0.3, 0.75),
    "IT-Noe": Climate(16.0, 7.0, 600, 12, 0.6, 0.70),
    "NL-Loo": Climate(10.0, 7.0, 790, 9, 0.15, 0.82),
    "RU-Fyo": Climate(5.0, 12.5, 700, 7, 0.3, 0.78),
    "US-GLE": Climate(0.0, 10.0, 1200, 2, 0.4, 0.55),
    "US-Ha1": Climate(8.0, 12.5, 1070, 7, 0.1, 0.72),
    "US-Me2": Climate(7.5, 9.0, 520, 12, 0.8, 0.55),
    "US-MMS": Climate(11.5, 12.5, 1030, 6, 0.15, 0.72),
    "US-NR1": Climate(1.5, 9.5, 800, 4, 0.35, 0.52),
    "US-FPe": Climate(5.5, 14.0, 330, 6, 0.6, 0.60),
    "US-SRM": Climate(17.9, 8.5, 380, 1, 0.7, 0.36, monsoon=0.6),
    "US-SRG": Climate(17.0, 8.5, 420, 1, 0.7, 0.38, monsoon=0.6),
    "US-Ton": Climate(15.8, 8.0, 560, 1, 0.85, 0.58),
    "US-UMB": Climate(6.2, 13.0, 800, 7, 0.15, 0.74),
    "US-Var": Climate(15.8, 8.0, 560, 1, 0.85, 0.60),
    "US-Whs": Climate(17.5, 9.0, 320, 1, 0.7, 0.34, monsoon=0.6),
    "US-Wkg": Climate(15.6, 9.0, 400, 1, 0.7, 0.36, monsoon=0.6),
    "CH-Cha": Climate(9.5, 8.5, 1150, 7, 0.3, 0.78),
}

#: Fractions of valid days (NEE, Qle, Qh): real Phase 1b files for calibration sites (and
#: AU-How, whose real file exists), plausible values for the withheld validation sites.
VALID_FRACTIONS: dict[str, tuple[float, float, float]] = {
    "AU-How": (0.046, 0.488, 0.495),
    "CA-Qfo": (0.385, 0.861, 0.842),
    "CH-Dav": (0.014, 0.433, 0.560),
    "DE-Gri": (0.268, 0.760, 0.873),
    "DE-Hai": (0.015, 0.226, 0.645),
    "DE-Tha": (0.266, 0.921, 0.898),
    "DK-Sor": (0.464, 0.476, 0.497),
    "FI-Hyy": (0.187, 0.254, 0.263),
    "FR-Pue": (0.184, 0.402, 0.267),
    "IT-Lav": (0.018, 0.206, 0.327),
    "IT-MBo": (0.099, 0.407, 0.494),
    "IT-Noe": (0.072, 0.340, 0.379),
    "NL-Loo": (0.175, 0.611, 0.804),
    "RU-Fyo": (0.219, 0.749, 0.832),
    "US-MMS": (0.173, 0.806, 0.818),
    "US-NR1": (0.240, 0.873, 0.857),
    "US-SRG": (0.315, 0.890, 0.969),
    "US-SRM": (0.159, 0.879, 0.966),
    "US-Ton": (0.003, 0.590, 0.665),
    "US-Whs": (0.199, 0.910, 0.970),
    "US-Wkg": (0.083, 0.849, 0.938),
    "US-Var": (0.240, 0.700, 0.750),
    "AU-Tum": (0.30, 0.78, 0.82),
    "AU-ASM": (0.25, 0.85, 0.90),
    "AU-Stp": (0.22, 0.62, 0.70),
    "US-GLE": (0.28, 0.55, 0.60),
    "US-Ha1": (0.35, 0.72, 0.76),
    "US-Me2": (0.33, 0.80, 0.85),
    "US-FPe": (0.20, 0.66, 0.72),
    "US-UMB": (0.38, 0.84, 0.88),
    "CH-Cha": (0.26, 0.58, 0.64),
}

#: Record years of validation sites missing from the site table.
FALLBACK_YEARS: dict[str, tuple[int, int]] = {"CH-Cha": (2006, 2014)}

#: Sites of the real archive that have no observation file (mimicked by the demo).
NO_OBS_SITES: tuple[str, ...] = ("US-Var",)

#: Short vegetation descriptions by IGBP type (for the observation files' attributes).
VEGETATION = {
    "ENF": "Evergreen needleleaf forest", "EBF": "Evergreen broadleaf forest",
    "DBF": "Deciduous broadleaf forest", "MF": "Mixed forest", "GRA": "Grassland",
    "WSA": "Woody savanna", "OSH": "Open shrubland", "CSH": "Closed shrubland",
    "SAV": "Savanna", "CRO": "Cropland", "WET": "Wetland",
}


@dataclass(frozen=True)
class DemoSite:
    """One site of the demo archive.

    Attributes
    ----------
    site_id, name, country, igbp : str
        From ``assets/sites.csv``.
    lat, lon, elevation : float
        Degrees north, degrees east, metres.
    role : str
        ``"Cal"`` or ``"Val"``.
    start, end : pandas.Timestamp
        First and last day of the observation record (and of every model run at the site).
    climate : Climate
        Synthetic climatology.
    valid_fractions : tuple of float
        Fractions of valid observed days for NEE, Qle, Qh.
    has_obs : bool
        Whether the archive holds an observation file for the site.
    """

    site_id: str
    name: str
    country: str
    igbp: str
    lat: float
    lon: float
    elevation: float
    role: str
    start: pd.Timestamp
    end: pd.Timestamp
    climate: Climate
    valid_fractions: tuple[float, float, float]
    has_obs: bool

    @property
    def forest(self) -> bool:
        """Whether the site's vegetation counts as forest."""
        return self.igbp in FOREST_TYPES

    @property
    def n_days(self) -> int:
        """Number of days of the record."""
        return int((self.end - self.start).days) + 1

    @property
    def key(self) -> int:
        """A stable integer derived from the site id (for random streams)."""
        return zlib.crc32(self.site_id.encode("ascii"))


def _record(row: pd.Series) -> tuple[pd.Timestamp, pd.Timestamp]:
    site = str(row["site_id"])
    if isinstance(row.get("obs_start"), str) and isinstance(row.get("obs_end"), str):
        return pd.Timestamp(row["obs_start"]), pd.Timestamp(row["obs_end"])
    y0, y1 = row.get("plumber2_year_start"), row.get("plumber2_year_end")
    if pd.isna(y0) or pd.isna(y1):
        y0, y1 = FALLBACK_YEARS[site]
    return pd.Timestamp(int(y0), 1, 1), pd.Timestamp(int(y1), 12, 31)


def demo_sites(sites: list[str] | tuple[str, ...] | None = None) -> list[DemoSite]:
    """Return the demo sites (all 31 Phase 1b sites, or the named ones), Cal sites first.

    Calibration sites use the observation period of the real files (``obs_start``..``obs_end``);
    validation sites use it too where a real file exists (AU-How) and otherwise their PLUMBER2
    years (CH-Cha: 2006-2014).

    Parameters
    ----------
    sites : sequence of str, optional
        Site ids to keep.

    Returns
    -------
    list of DemoSite

    Raises
    ------
    ValueError
        If a requested site is not a Phase 1b site.
    """
    from loaders.sites import phase1b_sites

    table = phase1b_sites()
    if sites is not None:
        unknown = sorted(set(sites) - set(table.index))
        if unknown:
            raise ValueError(f"not Phase 1b sites: {', '.join(unknown)} "
                             f"(known: {', '.join(sorted(table.index))})")
        table = table.loc[[s for s in table.index if s in set(sites)]]
    out = []
    for _, row in table.iterrows():
        site = str(row["site_id"])
        start, end = _record(row)
        out.append(DemoSite(
            site_id=site, name=str(row["name"]), country=str(row["country"]),
            igbp=str(row["igbp"]), lat=float(row["lat"]), lon=float(row["lon"]),
            elevation=float(row["elevation_m"]), role=str(row["role"]), start=start, end=end,
            climate=CLIMATES[site], valid_fractions=VALID_FRACTIONS[site],
            has_obs=site not in NO_OBS_SITES,
        ))
    out.sort(key=lambda s: (s.role != "Cal", s.site_id))
    return out


def site_seed(seed: int, site: DemoSite, stream: int) -> np.random.Generator:
    """A random generator for one site and one purpose, independent of the other sites."""
    return np.random.default_rng(np.random.SeedSequence([seed, site.key, stream]))
