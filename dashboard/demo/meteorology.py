"""Synthetic daily meteorology for the demo sites, with a snow pack and soil water buckets.

For each site the weather follows its latitude (top-of-atmosphere insolation, day length),
elevation (clear-sky transmissivity, pressure) and a rounded climatology
(:mod:`dashboard.demo.site_table`): air temperature with a seasonal cycle, synoptic (AR(1)) and
year-to-year anomalies and a small warming trend; precipitation occurrence from a persistent
latent process and gamma-distributed amounts with the site's seasonality; cloudiness that
darkens wet days; relative humidity and VPD; net radiation after FAO-56; a degree-day snow pack;
and two soil water buckets (root zone and top 10 cm) driven by rain, melt and a Priestley-Taylor
reference evaporation. All sites share one calendar (one spin-up year before the earliest
record) so that the sequential parts run once, vectorised across sites.
"""

from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np
import pandas as pd

from dashboard.demo.site_table import Climate, DemoSite, site_seed

#: Stefan-Boltzmann constant (W m-2 K-4).
SIGMA = 5.670374e-8
#: Latent heat of vaporisation (J kg-1).
LAMBDA = 2.45e6
#: Solar constant (W m-2).
S0 = 1361.0


# ----------------------------------------------------------------------------- helpers
def ar1(rng: np.random.Generator, shape: tuple[int, ...], rho: float) -> np.ndarray:
    """Stationary AR(1) noise of unit variance along the last axis.

    Parameters
    ----------
    rng : numpy.random.Generator
        Random stream.
    shape : tuple of int
        Output shape; the process runs along the last axis.
    rho : float
        Lag-one autocorrelation (0 <= rho < 1).

    Returns
    -------
    numpy.ndarray
    """
    from scipy.signal import lfilter

    burn = int(np.ceil(5.0 / max(1e-3, 1.0 - rho)))
    white = rng.standard_normal((*shape[:-1], shape[-1] + burn))
    out = lfilter([np.sqrt(1.0 - rho**2)], [1.0, -rho], white, axis=-1)
    return out[..., burn:]


def ema(x: np.ndarray, tau: float, axis: int = -1) -> np.ndarray:
    """Exponential moving average with time constant ``tau`` steps (starts at ``x[0]``)."""
    from scipy.signal import lfilter

    a = 1.0 / tau
    x0 = np.take(x, [0], axis=axis)
    zi = (1.0 - a) * x0
    y, _ = lfilter([a], [1.0, -(1.0 - a)], x, axis=axis, zi=zi)
    return y


def toa_radiation(lat_deg: np.ndarray, doy: np.ndarray) -> np.ndarray:
    """Daily mean top-of-atmosphere shortwave radiation (W m-2), FAO-56 eq. 21."""
    phi = np.deg2rad(lat_deg)
    delta = 0.409 * np.sin(2.0 * np.pi * doy / 365.0 - 1.39)
    dr = 1.0 + 0.033 * np.cos(2.0 * np.pi * doy / 365.0)
    ws = np.arccos(np.clip(-np.tan(phi) * np.tan(delta), -1.0, 1.0))
    return (S0 / np.pi * dr * (ws * np.sin(phi) * np.sin(delta)
                               + np.cos(phi) * np.cos(delta) * np.sin(ws)))


def saturation_vp(t: np.ndarray) -> np.ndarray:
    """Saturation vapour pressure (kPa) at air temperature ``t`` (degC)."""
    return 0.6108 * np.exp(17.27 * t / (t + 237.3))


def slope_vp(t: np.ndarray) -> np.ndarray:
    """Slope of the saturation vapour pressure curve (kPa K-1)."""
    return 4098.0 * saturation_vp(t) / (t + 237.3) ** 2


def psychrometric(elevation: np.ndarray | float) -> np.ndarray:
    """Psychrometric constant (kPa K-1) at an elevation (m)."""
    pressure = 101.3 * ((293.0 - 0.0065 * np.asarray(elevation)) / 293.0) ** 5.26
    return 0.000665 * pressure


def net_longwave(t: np.ndarray, ea: np.ndarray, rel_sw: np.ndarray) -> np.ndarray:
    """Net outgoing longwave radiation (W m-2), FAO-56 eq. 39 with daily means."""
    tk = t + 273.15
    return (SIGMA * tk**4 * (0.34 - 0.14 * np.sqrt(np.maximum(ea, 0.0)))
            * (1.35 * np.clip(rel_sw, 0.0, 1.0) - 0.35))


def albedo(forest: np.ndarray, snow_cover: np.ndarray) -> np.ndarray:
    """Surface albedo from the vegetation type and the snow cover fraction (0-1)."""
    base = np.where(forest, 0.12, 0.20)
    snowy = np.where(forest, 0.28, 0.60)
    return base + (snowy - base) * snow_cover


#: Concentration (von Mises kappa) of a monsoon rainy season: about two months wide.
MONSOON_KAPPA = 4.0


def rain_season(c: Climate, doy: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Seasonal precipitation relative to the annual mean, and the monsoon's share of it.

    A broad cosine season (``p_peak_month``, ``p_season``) carries ``1 - monsoon`` of the rain;
    a sharp von Mises peak at ``monsoon_month`` (:data:`MONSOON_KAPPA`) carries the rest.

    Parameters
    ----------
    c : Climate
        The site's climatology.
    doy : numpy.ndarray
        Day of year.

    Returns
    -------
    rel : numpy.ndarray
        Expected precipitation / annual mean daily precipitation (mean 1 over a year).
    monsoon : numpy.ndarray
        0 outside the monsoon, rising to ``c.monsoon`` at its peak (for humidity).
    """
    from scipy.special import i0e

    two_pi = 2.0 * np.pi / 365.25
    rel = 1.0 + c.p_season * np.cos(two_pi * (doy - (c.p_peak_month - 0.5) * 30.44))
    if c.monsoon <= 0.0:
        return rel, np.zeros_like(rel)
    shape = np.exp(MONSOON_KAPPA * (np.cos(two_pi * (doy - (c.monsoon_month - 0.5) * 30.44))
                                    - 1.0))
    burst = shape / i0e(MONSOON_KAPPA)  # mean 1 over a year
    return (1.0 - c.monsoon) * rel + c.monsoon * burst, c.monsoon * shape


def root_zone_capacity(igbp: str) -> float:
    """Plant-available water of the root zone (mm) by vegetation type."""
    if igbp in ("ENF", "EBF", "DBF", "MF"):
        return 200.0
    if igbp in ("OSH",):
        return 90.0
    return 130.0


#: Plant-available water of the top 10 cm (mm).
TOP_CAPACITY = 30.0


# ----------------------------------------------------------------------------- site forcing
@dataclass
class SiteForcing:
    """Daily weather of all demo sites on one shared calendar.

    Every array has shape ``(n_sites, n_days)``; ``in_record`` says which days belong to each
    site's record (the days written to files). Units: ``sw``, ``rn`` W m-2; ``tair``,
    ``t_phen``, ``t_lag`` degC; ``vpd``, ``ea`` kPa; ``precip``, ``inflow`` mm d-1; ``theta``,
    ``theta_top``, ``theta_lag`` relative soil water (0-1); ``snow`` mm water equivalent.
    """

    sites: list[DemoSite]
    dates: pd.DatetimeIndex
    in_record: np.ndarray
    arrays: dict[str, np.ndarray] = field(default_factory=dict)

    def __getitem__(self, name: str) -> np.ndarray:
        return self.arrays[name]

    def record_dates(self, i: int) -> pd.DatetimeIndex:
        """Dates of the record of site ``i``."""
        return self.dates[self.in_record[i]]


def site_forcing(sites: list[DemoSite], seed: int) -> SiteForcing:
    """Generate the daily weather of ``sites``.

    Parameters
    ----------
    sites : list of DemoSite
        The sites (any subset; each site's weather depends only on ``seed`` and its id).
    seed : int
        Random seed.

    Returns
    -------
    SiteForcing
    """
    from scipy.special import ndtri

    first = min(s.start for s in sites)
    start = pd.Timestamp(first.year - 1, 1, 1)
    end = max(s.end for s in sites)
    dates = pd.date_range(start, end, freq="D")
    n_sites, n = len(sites), len(dates)
    doy = dates.day_of_year.to_numpy().astype(float)
    years = dates.year.to_numpy()
    two_pi = 2.0 * np.pi / 365.25

    lat = np.array([s.lat for s in sites])[:, None]
    elev = np.array([s.elevation for s in sites])[:, None]
    forest = np.array([s.forest for s in sites])[:, None]
    in_record = np.zeros((n_sites, n), dtype=bool)
    out = {k: np.empty((n_sites, n)) for k in ("tair", "precip", "cloud", "rh")}
    for i, s in enumerate(sites):
        in_record[i] = (dates >= s.start) & (dates <= s.end)
        c = s.climate
        rng = site_seed(seed, s, 1)
        t_peak = 200.0 if s.lat >= 0 else 17.0
        season_t = np.cos(two_pi * (doy - t_peak))
        # precipitation: persistent wet/dry spells, seasonal probability and amounts
        rel, monsoon = rain_season(c, doy)
        p_wet_mean = np.clip(0.08 + c.p_annual / 2200.0, 0.08, 0.65)
        p_wet = np.clip(p_wet_mean * (1.0 + 0.8 * (rel - 1.0)), 0.02, 0.95)
        expected = c.p_annual / 365.25 * rel
        latent = ar1(rng, (n,), 0.45)
        wet = latent > ndtri(1.0 - p_wet)
        shape = 0.7
        amount = rng.gamma(shape, 1.0, n) * (expected / p_wet) / shape
        out["precip"][i] = np.where(wet, amount, 0.0)
        # temperature: seasonal cycle, synoptic and interannual anomalies, trend, wet-day cooling
        year_ids, year_pos = np.unique(years, return_inverse=True)
        year_anom = 0.5 * rng.standard_normal(year_ids.size)[year_pos]
        synoptic = (1.2 + 0.12 * c.t_amp) * ar1(rng, (n,), 0.7)
        out["tair"][i] = (c.t_mean + c.t_amp * season_t + synoptic + year_anom
                          + 0.02 * (years - 2000) - 1.2 * wet + 0.35)
        # cloud cover and relative humidity
        dry_cloud = np.clip((c.rh_mean - 0.3) * 0.9, 0.05, 0.5)
        cloud_dry = np.clip(dry_cloud * 2.0 * rng.beta(2.0, 2.0, n), 0.0, 0.9)
        # warm-season rain is convective: showers leave sunny spells on wet days
        warm = np.clip((c.t_mean + c.t_amp * season_t - 18.0) / 8.0, 0.0, 1.0)
        cloud_wet = rng.uniform(0.55, 1.0, n) * (1.0 - 0.35 * warm)
        out["cloud"][i] = np.where(wet, cloud_wet, cloud_dry)
        rh_noise = 0.06 * ar1(rng, (n,), 0.6)
        out["rh"][i] = np.clip(c.rh_mean - 0.07 * season_t + 0.14 * wet - 0.04 + rh_noise
                               + 0.3 * monsoon, 0.12, 0.98)

    tair = out["tair"]
    toa = toa_radiation(lat, doy[None, :])
    tau_clear = 0.74 + 2.5e-5 * elev
    sw_clear = tau_clear * toa
    sw = sw_clear * (1.0 - 0.65 * out["cloud"])
    es = saturation_vp(tair)
    ea = es * out["rh"]
    vpd = es - ea
    rnl = net_longwave(tair, ea, sw / np.maximum(sw_clear, 1e-6))
    gamma = psychrometric(elev)
    pt_factor = 1.26 * slope_vp(tair) / (slope_vp(tair) + gamma) * 86400.0 / LAMBDA
    whc = np.array([root_zone_capacity(s.igbp) for s in sites])

    snowfall = np.where(tair < 0.5, out["precip"], 0.0)
    rain = out["precip"] - snowfall
    melt_pot = 2.5 * np.maximum(tair, 0.0)
    snow = np.zeros((n_sites, n))
    theta = np.zeros((n_sites, n))
    theta_top = np.zeros((n_sites, n))
    inflow = np.zeros((n_sites, n))
    rn = np.zeros((n_sites, n))
    fr = forest[:, 0]
    a_free, a_snow = albedo(fr, 0.0), albedo(fr, 1.0)
    # sequential part, vectorised across sites
    pack = np.zeros(n_sites)
    w = 0.7 * whc
    wt = 0.5 * TOP_CAPACITY * np.ones(n_sites)
    for t in range(n):
        pack = pack + snowfall[:, t]
        melt = np.minimum(pack, melt_pot[:, t])
        pack = pack - melt
        cover = np.minimum(pack / 20.0, 1.0)
        alb = a_free + (a_snow - a_free) * cover
        rn_t = (1.0 - alb) * sw[:, t] - rnl[:, t]
        pet = pt_factor[:, t] * np.maximum(rn_t, 0.0) * (1.0 - 0.8 * cover)
        water_in = rain[:, t] + melt
        aet = 0.8 * pet * np.minimum(1.0, w / (0.6 * whc))
        w = np.clip(w + water_in - aet, 0.0, whc)
        evap_top = 0.35 * pet * (wt / TOP_CAPACITY)
        wt = np.clip(wt + water_in - evap_top - 0.25 * np.maximum(wt - 0.5 * TOP_CAPACITY, 0.0),
                     0.0, TOP_CAPACITY)
        snow[:, t] = pack
        theta[:, t] = w / whc
        theta_top[:, t] = wt / TOP_CAPACITY
        inflow[:, t] = water_in
        rn[:, t] = rn_t

    arrays = {
        "sw": sw, "tair": tair, "vpd": vpd, "ea": ea, "precip": out["precip"], "rn": rn,
        "snow": snow, "inflow": inflow, "theta": theta, "theta_top": theta_top,
        "theta_lag": ema(theta, 15.0),
        "theta_top_lag": ema(theta_top, 30.0), "t_phen": ema(tair, 20.0), "t_lag": ema(tair, 5.0),
        "slope": slope_vp(tair), "gamma": np.broadcast_to(gamma, tair.shape).copy(),
        "doy": np.broadcast_to(doy, tair.shape).copy(),
    }
    return SiteForcing(sites=sites, dates=dates, in_record=in_record, arrays=arrays)
