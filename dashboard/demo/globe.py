"""Synthetic monthly global climate on a regular land grid, for the demo's global runs.

The land mask is the Natural Earth outline shipped with the Explorer
(:func:`loaders.geography.land_mask`), without Antarctica. The climate is analytic: annual
mean temperature from latitude, elevation (a few Gaussian mountain ranges) and continentality
(the smoothed share of land around a cell); seasonal amplitude growing with latitude and
continentality; precipitation with a wet equator, dry subtropics and wetter mid-latitudes,
drier in continental interiors, peaking in the local summer in the tropics; year-to-year
anomalies from smooth random fields and a small warming trend. Vegetation types follow the
climate (evergreen broadleaf, deciduous broadleaf, needleleaf forests, savanna, grassland,
shrubland). The same process model as at the sites runs on monthly means.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import pandas as pd

from dashboard.demo.meteorology import (
    albedo,
    ema,
    net_longwave,
    psychrometric,
    saturation_vp,
    slope_vp,
    toa_radiation,
)
from dashboard.demo.process_model import (
    LAI_MIN_FRACTION,
    OPEN_TYPES,
    Drivers,
    _with_spin,
    climatic_lai_max,
)
from dashboard.demo.site_table import FOREST_TYPES

#: (lon, lat, sd_lon, sd_lat, height m) of Gaussian mountain ranges.
_MOUNTAINS = (
    (88.0, 33.0, 9.0, 5.0, 4500.0), (-69.0, -20.0, 2.5, 14.0, 3300.0),
    (-110.0, 42.0, 7.0, 10.0, 1900.0), (37.0, 3.0, 5.0, 9.0, 1400.0),
    (-42.0, 73.0, 10.0, 6.0, 2500.0), (10.0, 46.5, 4.0, 1.5, 1500.0),
    (45.0, 39.0, 8.0, 4.0, 1500.0), (100.0, 48.0, 12.0, 5.0, 1500.0),
)


@dataclass
class Grid:
    """A regular global grid and its land cells.

    Attributes
    ----------
    lat, lon : numpy.ndarray
        Cell-centre coordinates (ascending; lon in [-180, 180)).
    land : numpy.ndarray
        Boolean ``(lat, lon)`` mask of land cells (no Antarctica).
    cell_lat, cell_lon : numpy.ndarray
        Coordinates of the land cells, in row-major order of the mask.
    resolution : float
        Degrees.
    """

    lat: np.ndarray
    lon: np.ndarray
    land: np.ndarray
    cell_lat: np.ndarray
    cell_lon: np.ndarray
    resolution: float

    @property
    def n_cells(self) -> int:
        """Number of land cells."""
        return int(self.cell_lat.size)


def make_grid(resolution: float) -> Grid:
    """Build the grid of ``resolution`` degrees with its land mask."""
    from loaders.geography import land_mask

    n_lat = int(round(180.0 / resolution))
    n_lon = int(round(360.0 / resolution))
    lat = -90.0 + resolution * (np.arange(n_lat) + 0.5)
    lon = -180.0 + resolution * (np.arange(n_lon) + 0.5)
    land = land_mask(lat, lon) & (lat[:, None] > -60.0)
    ii, jj = np.nonzero(land)
    return Grid(lat=lat, lon=lon, land=land, cell_lat=lat[ii], cell_lon=lon[jj],
                resolution=resolution)


@dataclass
class CellClimate:
    """Climatology of the land cells (1-D arrays over cells)."""

    elevation: np.ndarray
    continentality: np.ndarray
    t_mean: np.ndarray
    t_amp: np.ndarray
    p_annual: np.ndarray
    p_season: np.ndarray
    rh_mean: np.ndarray
    igbp: np.ndarray


def cell_climate(grid: Grid) -> CellClimate:
    """Analytic climatology and vegetation type of every land cell."""
    from scipy.ndimage import uniform_filter

    lat, lon = grid.cell_lat, grid.cell_lon
    elev = np.zeros(lat.size)
    for lo, la, slo, sla, h in _MOUNTAINS:
        elev += h * np.exp(-0.5 * (((lon - lo) / slo) ** 2 + ((lat - la) / sla) ** 2))
    size = (max(1, int(round(30.0 / grid.resolution))) | 1,
            max(1, int(round(50.0 / grid.resolution))) | 1)
    share = uniform_filter(grid.land.astype(float), size=size, mode=("nearest", "wrap"))
    cont = share[grid.land]
    alat = np.abs(lat)
    t_mean = (27.0 - 0.0078 * lat**2 - 0.0065 * elev
              - 6.0 * np.maximum(cont - 0.5, 0.0) * alat / 60.0)
    t_amp = (0.5 + 0.16 * alat) * (0.4 + 1.2 * cont)
    zonal = (600.0 + 1800.0 * np.exp(-((lat / 10.0) ** 2))
             - 420.0 * np.exp(-(((alat - 25.0) / 8.0) ** 2))
             + 350.0 * np.exp(-(((alat - 50.0) / 12.0) ** 2)))
    p_annual = np.maximum(zonal * np.clip(1.5 - 1.1 * cont, 0.2, 1.4), 60.0)
    p_season = 0.15 + 0.75 * np.exp(-(((alat - 12.0) / 10.0) ** 2))
    rh_mean = np.clip(0.35 + 0.22 * np.log10(p_annual / 150.0), 0.3, 0.85)
    igbp = np.full(lat.size, "GRA", dtype=object)
    forest = (p_annual > 450.0 + 28.0 * np.maximum(t_mean, 0.0)) & (t_mean > -9.0)
    igbp[forest & (t_mean > 20.0)] = "EBF"
    igbp[forest & (t_mean > 4.0) & (t_mean <= 20.0)] = "DBF"
    igbp[forest & (t_mean <= 4.0)] = "ENF"
    igbp[~forest & (t_mean > 18.0) & (p_annual > 450.0)] = "WSA"
    igbp[~forest & ((p_annual < 250.0) | (t_mean < -9.0))] = "OSH"
    return CellClimate(elevation=elev, continentality=cont, t_mean=t_mean, t_amp=t_amp,
                       p_annual=p_annual, p_season=p_season, rh_mean=rh_mean,
                       igbp=igbp.astype(str))


def month_starts(years: tuple[int, int]) -> pd.DatetimeIndex:
    """First day of every month of ``years`` (inclusive)."""
    return pd.date_range(f"{years[0]}-01-01", f"{years[1]}-12-01", freq="MS")


def _anomaly_field(rng: np.random.Generator, n_fields: int, lat: np.ndarray,
                   lon: np.ndarray) -> np.ndarray:
    """Smooth unit-variance random fields, shape ``(n_fields, n_cells)``."""
    out = np.zeros((n_fields, lat.size))
    lam, phi = np.deg2rad(lon), np.deg2rad(lat)
    for _ in range(4):
        k = rng.integers(1, 4, size=(n_fields, 1))
        m = rng.integers(1, 4, size=(n_fields, 1))
        a = rng.standard_normal((n_fields, 1))
        p1 = rng.uniform(0, 2 * np.pi, (n_fields, 1))
        p2 = rng.uniform(0, 2 * np.pi, (n_fields, 1))
        out += a * np.cos(k * lam + p1) * np.cos(m * phi + p2)
    return out / np.sqrt(4 * 0.25)


@dataclass
class Anomalies:
    """Year-to-year and month-to-month weather anomalies of every land cell.

    Attributes
    ----------
    temperature_year, precipitation_year : numpy.ndarray
        ``(n_years, n_cells)``: K and relative change of precipitation.
    temperature_month : numpy.ndarray
        ``(n_months, n_cells)`` K.
    """

    temperature_year: np.ndarray
    precipitation_year: np.ndarray
    temperature_month: np.ndarray


def anomalies(grid: Grid, years: tuple[int, int], seed: int) -> Anomalies:
    """Draw the smooth anomaly fields of ``years`` (once for the whole grid)."""
    n_years = years[1] - years[0] + 1
    rng = np.random.default_rng(np.random.SeedSequence([seed, 424242]))
    lat, lon = grid.cell_lat, grid.cell_lon
    return Anomalies(temperature_year=0.7 * _anomaly_field(rng, n_years, lat, lon),
                     precipitation_year=0.2 * _anomaly_field(rng, n_years, lat, lon),
                     temperature_month=0.8 * _anomaly_field(rng, 12 * n_years, lat, lon))


@dataclass
class GlobalForcing:
    """Monthly drivers of a block of land cells (cells x months, flattened cell-major)."""

    drivers: Drivers
    inflow: np.ndarray
    whc: np.ndarray
    days: np.ndarray
    n_cells: int
    n_months: int


def global_forcing(grid: Grid, clim: CellClimate, anom: Anomalies, cells: slice,
                   years: tuple[int, int]) -> GlobalForcing:
    """Monthly drivers of the land cells ``cells`` (any block; results do not depend on it).

    Parameters
    ----------
    grid : Grid
        The grid.
    clim : CellClimate
        Climatology of its land cells.
    anom : Anomalies
        Drawn by :func:`anomalies` for the same grid and years.
    cells : slice
        Block of land cells.
    years : tuple of int
        First and last year.

    Returns
    -------
    GlobalForcing
    """
    months = month_starts(years)
    n_m = months.size
    mid_doy = (months.day_of_year.to_numpy() + months.days_in_month.to_numpy() / 2.0)
    year_idx = (months.year.to_numpy() - years[0])
    t_anom = anom.temperature_year[:, cells]
    p_anom = anom.precipitation_year[:, cells]
    m_anom = anom.temperature_month[:, cells]

    lat = grid.cell_lat[cells][:, None]
    elev = clim.elevation[cells][:, None]
    t_mean, t_amp = clim.t_mean[cells][:, None], clim.t_amp[cells][:, None]
    north = lat >= 0
    t_peak = np.where(north, 200.0, 17.0)
    season_t = np.cos(2.0 * np.pi * (mid_doy[None, :] - t_peak) / 365.25)
    tair = (t_mean + t_amp * season_t + t_anom[year_idx].T + m_anom.T
            + 0.02 * (months.year.to_numpy()[None, :] - 2000))
    p_peak = np.where(north, 198.0, 15.0)
    season_p = np.cos(2.0 * np.pi * (mid_doy[None, :] - p_peak) / 365.25)
    p_day = (clim.p_annual[cells][:, None] / 365.25
             * np.clip(1.0 + clim.p_season[cells][:, None] * season_p, 0.02, None)
             * np.clip(1.0 + p_anom[year_idx].T, 0.3, None))
    cloud = np.clip(0.1 + 0.6 * p_day / (p_day + 2.0), 0.05, 0.9)
    toa = toa_radiation(lat, mid_doy[None, :])
    sw_clear = (0.74 + 2.5e-5 * elev) * toa
    sw = sw_clear * (1.0 - 0.65 * cloud)
    rh = np.clip(clim.rh_mean[cells][:, None] - 0.07 * season_t + 0.15 * (cloud - 0.35),
                 0.12, 0.95)
    es = saturation_vp(tair)
    ea = es * rh
    vpd = es - ea
    rnl = net_longwave(tair, ea, sw / np.maximum(sw_clear, 1e-6))
    igbp = clim.igbp[cells]
    forest = np.isin(igbp, FOREST_TYPES)
    days = months.days_in_month.to_numpy().astype(float)
    gamma = psychrometric(elev)
    slope = slope_vp(tair)
    pet_factor = 1.26 * slope / (slope + gamma) * 86400.0 / 2.45e6
    whc = np.where(forest, 200.0, np.where(igbp == "OSH", 90.0, 130.0))

    n_c = lat.shape[0]
    pack = np.zeros(n_c)
    w = 0.7 * whc
    theta = np.empty((n_c, n_m))
    rn = np.empty((n_c, n_m))
    inflow = np.empty((n_c, n_m))
    a_free, a_snow = albedo(forest, 0.0), albedo(forest, 1.0)
    precip = p_day * days[None, :]
    for t in range(n_m):
        snowfall = np.where(tair[:, t] < 0.0, precip[:, t], 0.0)
        pack = pack + snowfall
        melt = np.minimum(pack, 2.5 * np.maximum(tair[:, t], 0.0) * days[t])
        pack = pack - melt
        cover = np.minimum(pack / 20.0, 1.0)
        rn_t = (1.0 - (a_free + (a_snow - a_free) * cover)) * sw[:, t] - rnl[:, t]
        water = precip[:, t] - snowfall + melt
        pet = pet_factor[:, t] * np.maximum(rn_t, 0.0) * days[t] * (1.0 - 0.8 * cover)
        aet = 0.8 * pet * np.minimum(1.0, w / (0.6 * whc))
        w = np.clip(w + water - aet, 0.0, whc)
        theta[:, t] = w / whc
        rn[:, t] = rn_t
        inflow[:, t] = water
    theta_top = np.clip(0.5 * theta + 0.5 * np.minimum(1.0, p_day / (pet_factor * np.maximum(
        rn, 1.0) + 0.1)), 0.0, 1.0)
    t_prev = np.concatenate([tair[:, :1], tair[:, :-1]], axis=1)
    arrays = {
        "sw": sw, "tair": tair, "vpd": vpd, "ea": ea, "rn": rn, "theta": theta,
        "theta_top": theta_top, "theta_lag": ema(theta, 1.5), "t_phen": ema(tair, 1.2),
        "t_lag": 0.85 * tair + 0.15 * t_prev, "slope": slope,
        "gamma": np.broadcast_to(gamma, tair.shape),
    }
    flat = {k: np.ascontiguousarray(v).ravel() for k, v in arrays.items()}
    cell_of = np.repeat(np.arange(n_c), n_m)
    props = {
        "forest": forest, "open": np.isin(igbp, OPEN_TYPES),
        "lai_max": climatic_lai_max(igbp, clim.p_annual[cells]),
        "lai_min": np.array([LAI_MIN_FRACTION.get(k, 0.3) for k in igbp]),
        "ga": np.where(forest, 0.05, 0.02),
    }
    for key, values in props.items():
        flat[key] = np.asarray(values)[cell_of]
    drivers = _with_spin(flat, cell_of, n_c, stride=1)
    return GlobalForcing(drivers=drivers, inflow=inflow, whc=whc, days=days, n_cells=n_c,
                         n_months=n_m)
