"""A small land-surface process model, in structural variants, run on daily (or monthly) drivers.

Carbon: leaf area follows a lagged-temperature phenology (and soil water for open vegetation);
GPP = light-use efficiency x absorbed PAR x temperature, soil-water and VPD limits; autotrophic
respiration is a fraction of GPP; heterotrophic respiration follows soil temperature (Q10 or
Lloyd-Taylor, optionally soil moisture) around a soil carbon pool spun up to the site's mean
inputs, with a disequilibrium fraction of NPP left as a sink. Energy: ground heat flux from net
radiation and/or the soil warming rate; latent heat by Priestley-Taylor (canopy x water stress +
soil evaporation) or from GPP through a water-use efficiency; sensible heat is the residual
``H = Rn - LE - G``. States written to files: lai, cSoil, cLiveBioAbove, mrso, mrsos and the
skin temperature ts.

Structural variants are expressed by which parameters a model has (no ``k_vpd``: no VPD limit;
no ``theta_crit``: no soil-water limit on GPP; ``wue0``: transpiration from GPP; ``e0``:
Lloyd-Taylor respiration ...) and by a few switches in :class:`Structure`. Everything is a
pointwise function of the drivers except the spin-up means, so one call evaluates many
parameter sets at once (parameters of shape ``(B, 1)`` against days of shape ``(N,)``).

Optional per-day parameters: ``soil_carbon`` and ``radiation`` scale heterotrophic respiration
and net radiation (the site-level parameters a calibration fits at each calibration site); the
true model alone also uses ``shallow``, ``deep`` (the water its roots see), ``rh_dry`` (the
respiration of dry soil) and ``pulse`` (the respiration burst of rewetted soil).
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass

import numpy as np

from dashboard.demo.meteorology import LAMBDA, SiteForcing, root_zone_capacity
from dashboard.demo.site_table import FOREST_TYPES

#: Seconds per day.
DAY = 86400.0
#: Base (climatic) maximum LAI by IGBP type.
LAI_BASE = {"ENF": 4.5, "EBF": 5.0, "DBF": 5.0, "MF": 4.8, "GRA": 2.6, "WSA": 2.5,
            "OSH": 1.2, "CSH": 1.8, "SAV": 2.0, "CRO": 3.0, "WET": 3.0}
#: Fraction of maximum LAI kept outside the growing season (evergreen share).
LAI_MIN_FRACTION = {"ENF": 0.75, "EBF": 0.85, "DBF": 0.05, "MF": 0.4, "GRA": 0.12,
                    "WSA": 0.35, "OSH": 0.4, "CSH": 0.6, "SAV": 0.3, "CRO": 0.05, "WET": 0.2}
#: Vegetation types whose leaf area also follows soil water (drought-deciduous).
OPEN_TYPES = ("GRA", "WSA", "OSH", "CSH", "SAV", "CRO", "WET")


@dataclass(frozen=True)
class Structure:
    """Switches of a model structure that are not expressed by its parameters.

    Attributes
    ----------
    temperature : str
        GPP temperature response: ``"ramp"`` (linear from tmin to topt, flat above),
        ``"gauss"`` (bell around topt) or ``"peaked"`` (ramp, then decline above topt).
    respiration_moisture : bool
        Whether heterotrophic respiration is reduced in dry soil.
    lai_scale : float
        Multiplies the climatic maximum LAI (the model's own vegetation density).
    whc_scale : float
        Multiplies the root-zone water capacity (for the model's own mrso bucket).
    soil_depth : float
        Soil column depth (m) for mrso.
    soil_turnover : float
        Soil carbon turnover rate at the site's mean conditions (yr-1), sets cSoil.
    top_residual : float
        Volumetric water content of the dry top 10 cm (m3 m-3), for mrsos.
    top_range : float
        Water content added by a full top layer (m3 m-3), for mrsos.
    top_coupling : float
        Weight (0-1) of the model's own root-zone water in its top-layer water (the rest
        follows the rain-fed top 10 cm of the forcing).
    """

    temperature: str = "ramp"
    respiration_moisture: bool = True
    lai_scale: float = 1.0
    whc_scale: float = 1.0
    soil_depth: float = 2.0
    soil_turnover: float = 0.04
    top_residual: float = 0.12
    top_range: float = 0.22
    top_coupling: float = 0.0


@dataclass
class Drivers:
    """Drivers of the process model as flat arrays (site records one after another).

    Attributes
    ----------
    arrays : dict of numpy.ndarray
        Per-day drivers (``sw``, ``tair``, ``vpd``, ``theta``, ...) and per-day site properties
        (``forest``, ``open``, ``lai_max``, ``lai_min``, ``ga``).
    site_of_day : numpy.ndarray
        Index (into ``sites``) of the site of each day.
    spin : numpy.ndarray
        Indices of the days used for the spin-up means (every ``stride``-th day of a record),
        sorted by site.
    spin_starts : numpy.ndarray
        Start of each site's block within ``spin``.
    n_sites : int
        Number of sites.
    """

    arrays: dict[str, np.ndarray]
    site_of_day: np.ndarray
    spin: np.ndarray
    spin_starts: np.ndarray
    n_sites: int

    def __getitem__(self, name: str) -> np.ndarray:
        return self.arrays[name]

    @property
    def n(self) -> int:
        """Number of days."""
        return self.site_of_day.size

    def site_mean(self, x: np.ndarray) -> np.ndarray:
        """Mean of ``x`` over each site's spin-up days, broadcast back to every day.

        Parameters
        ----------
        x : numpy.ndarray
            Shape ``(..., N)``.

        Returns
        -------
        numpy.ndarray
            Shape ``(..., N)``.
        """
        xs = np.take(x, self.spin, axis=-1)
        sums = np.add.reduceat(xs, self.spin_starts, axis=-1)
        counts = np.diff(np.append(self.spin_starts, self.spin.size))
        return np.take(sums / counts, self.site_of_day, axis=-1)

    def subset(self, keep: np.ndarray) -> tuple[Drivers, np.ndarray]:
        """Drivers on the days where ``keep`` is true, plus the spin-up days of their sites.

        Sites without any kept day are dropped (site indices are renumbered in order).

        Returns
        -------
        Drivers
            The subset.
        numpy.ndarray
            Index of each of its days in ``self``.
        """
        present = np.zeros(self.n_sites, dtype=bool)
        present[self.site_of_day[keep]] = True
        keep = keep.copy()
        keep[self.spin[present[self.site_of_day[self.spin]]]] = True
        index = np.flatnonzero(keep)
        renumber = np.cumsum(present) - 1
        site_of_day = renumber[self.site_of_day[index]]
        is_spin = np.zeros(self.n, dtype=bool)
        is_spin[self.spin] = True
        spin = np.flatnonzero(is_spin[index])
        n_sites = int(present.sum())
        spin_starts = np.searchsorted(site_of_day[spin], np.arange(n_sites))
        sub = Drivers(arrays={k: v[index] for k, v in self.arrays.items()},
                      site_of_day=site_of_day, spin=spin, spin_starts=spin_starts,
                      n_sites=n_sites)
        return sub, index


def site_drivers(forcing: SiteForcing, stride: int = 10) -> Drivers:
    """Flatten the site forcing into :class:`Drivers` (only days inside each record).

    Parameters
    ----------
    forcing : SiteForcing
        Daily weather of the sites.
    stride : int, default 10
        Every ``stride``-th day of a record enters the spin-up means.

    Returns
    -------
    Drivers
    """
    rec = forcing.in_record
    arrays = {k: v[rec] for k, v in forcing.arrays.items()}
    site_of_day = np.broadcast_to(np.arange(len(forcing.sites))[:, None], rec.shape)[rec]
    props = {"forest": [], "open": [], "lai_max": [], "lai_min": [], "ga": []}
    for s in forcing.sites:
        props["forest"].append(s.igbp in FOREST_TYPES)
        props["open"].append(s.igbp in OPEN_TYPES)
        props["lai_max"].append(climatic_lai_max(s.igbp, s.climate.p_annual))
        props["lai_min"].append(LAI_MIN_FRACTION.get(s.igbp, 0.3))
        props["ga"].append(0.05 if s.igbp in FOREST_TYPES else 0.02)
    for key, values in props.items():
        arrays[key] = np.asarray(values)[site_of_day]
    return _with_spin(arrays, site_of_day, len(forcing.sites), stride)


def _with_spin(arrays: dict[str, np.ndarray], site_of_day: np.ndarray, n_sites: int,
               stride: int) -> Drivers:
    starts = np.searchsorted(site_of_day, np.arange(n_sites))
    pos = np.arange(site_of_day.size) - starts[site_of_day]
    spin = np.flatnonzero(pos % stride == 0)
    spin_starts = np.searchsorted(site_of_day[spin], np.arange(n_sites))
    return Drivers(arrays=arrays, site_of_day=site_of_day, spin=spin, spin_starts=spin_starts,
                   n_sites=n_sites)


def climatic_lai_max(igbp: str | np.ndarray, p_annual: float | np.ndarray) -> np.ndarray:
    """Maximum LAI from the vegetation type and annual precipitation (mm)."""
    if isinstance(igbp, str):
        base = LAI_BASE.get(igbp, 2.5)
    else:
        base = np.vectorize(lambda k: LAI_BASE.get(k, 2.5))(igbp)
    return np.asarray(base * np.clip(np.asarray(p_annual) / 900.0, 0.15, 1.0), dtype=float)


# --------------------------------------------------------------------------------- fluxes
def _resolve(p: Mapping[str, np.ndarray | float], d: Drivers) -> dict[str, np.ndarray | float]:
    """Turn ``<name>_forest`` / ``<name>_open`` parameters into per-day ``<name>``."""
    out: dict[str, np.ndarray | float] = {}
    for key, value in p.items():
        if key.endswith("_forest"):
            base = key[: -len("_forest")]
            out[base] = np.where(d["forest"], value, p[f"{base}_open"])
        elif not key.endswith("_open"):
            out[key] = value
    return out


def fluxes(d: Drivers, params: Mapping[str, np.ndarray | float], s: Structure,
           noise: Mapping[str, np.ndarray] | None = None) -> dict[str, np.ndarray]:
    """Daily fluxes and fast states of one or many parameter sets.

    Parameters
    ----------
    d : Drivers
        Drivers, ``N`` days.
    params : mapping
        Parameter values: scalars, arrays of shape ``(B, 1)`` (many parameter sets) or ``(N,)``
        (site-varying truth, site-level parameters). ``eps_forest``/``eps_open`` style pairs are
        resolved by vegetation.
    s : Structure
        Structural switches.
    noise : mapping, optional
        Process noise of the "true" model: ``gpp`` and ``rh`` (multiplicative, around 0),
        ``le`` (additive, W m-2) and optionally ``le_factor`` (multiplicative), each ``(N,)``.

    Returns
    -------
    dict of numpy.ndarray
        ``gpp``, ``ra``, ``rh``, ``reco``, ``nep`` (gC m-2 d-1, nep positive into the land),
        ``lai`` (1), ``le``, ``tran_le``, ``soil_le``, ``h``, ``g`` (W m-2) and ``ts`` (K).
    """
    p = _resolve(params, d)
    tair, sw, vpd = d["tair"], d["sw"], d["vpd"]
    theta, theta_lag = _plant_water(p, d)
    # phenology and light absorption
    sig = 1.0 / (1.0 + np.exp(-(d["t_phen"] - p["t_onset"]) / 2.5))
    water_phen = np.where(d["open"], np.clip(theta_lag / 0.35, 0.0, 1.0), 1.0)
    lai = (d["lai_max"] * s.lai_scale
           * (d["lai_min"] + (1.0 - d["lai_min"]) * sig * water_phen))
    fapar = 1.0 - np.exp(-0.5 * lai)
    apar = 0.0864 * 0.48 * sw * fapar  # MJ m-2 d-1
    # GPP limits
    if s.temperature == "gauss":
        f_t = np.exp(-(((tair - p["topt"]) / p["twidth"]) ** 2))
    else:
        f_t = np.clip((tair - p["tmin"]) / (p["topt"] - p["tmin"]), 0.0, 1.0)
        if s.temperature == "peaked":
            hot = np.clip((tair - p["topt"]) / 18.0, 0.0, 1.0)
            f_t = f_t * (1.0 - hot**2)
    if "theta_crit" in p:
        f_w = np.clip((theta - 0.05) / (p["theta_crit"] - 0.05), 0.0, 1.0)
        if s.temperature == "gauss":  # the bell-shaped models use a square-root water limit
            f_w = np.sqrt(f_w)
    else:
        f_w = 1.0
    if "k_vpd" in p:
        f_v = np.exp(-p["k_vpd"] * np.maximum(vpd - 0.5, 0.0))
    elif "k_vpd_lin" in p:
        f_v = np.clip(1.0 - p["k_vpd_lin"] * np.maximum(vpd - 0.5, 0.0), 0.05, 1.0)
    else:
        f_v = 1.0
    gpp = p["eps"] * apar * f_t * f_w * f_v
    if noise is not None:
        gpp = gpp * (1.0 + noise["gpp"])
    ra = p["ra_frac"] * gpp
    npp = gpp - ra
    # heterotrophic respiration around the spun-up soil pool
    t_soil = d["t_lag"]
    if "e0" in p:
        g = np.exp(p["e0"] * (1.0 / 56.02 - 1.0 / np.maximum(t_soil + 46.02, 5.0)))
    else:
        g = p["q10"] ** ((t_soil - 10.0) / 10.0)
    if s.respiration_moisture:
        dry = p.get("rh_dry", 0.25)
        g = g * (dry + (1.0 - dry) * np.clip(d["theta_top"] / 0.45, 0.0, 1.0))
    if "pulse" in p:  # respiration burst when dry soil is rewetted (Birch effect)
        g = g * (1.0 + p["pulse"] * np.maximum(d["theta_top"] - d["theta_top_lag"], 0.0))
    if noise is not None:
        g = g * (1.0 + noise["rh"])
    rh = (1.0 - p["sink_frac"]) * d.site_mean(npp) * g / d.site_mean(g)
    if "soil_carbon" in p:  # site-level calibration of the initial soil carbon
        rh = rh * p["soil_carbon"]
    reco = ra + rh
    nep = gpp - reco
    # energy
    rn = d["rn"] * p["radiation"] if "radiation" in p else d["rn"]
    ground = p.get("g_frac", 0.0) * rn + p.get("g_tgrad", 0.0) * (tair - d["t_lag"])
    avail = rn - ground
    eq = d["slope"] / (d["slope"] + d["gamma"])
    pot = eq * np.maximum(avail, 0.0)
    w_et = np.clip(theta / p.get("theta_crit", 0.5), 0.0, 1.0)
    if "wue0" in p:
        tran_kg = gpp * np.sqrt(np.maximum(vpd, 0.05)) / p["wue0"]  # kg m-2 d-1
        tran_le = np.minimum(tran_kg * LAMBDA / DAY, 1.3 * pot * fapar)
        soil_le = 1.26 * pot * (1.0 - fapar) * p["es_coef"] * d["theta_top"]
    else:
        tran_le = p["alpha_pt"] * pot * fapar * w_et
        soil_le = p["alpha_pt"] * pot * (1.0 - fapar) * p["es_coef"] * d["theta_top"]
    le = tran_le + soil_le
    if noise is not None:
        le = np.maximum(le * (1.0 + noise.get("le_factor", 0.0)) + noise["le"], -5.0)
    h = avail - le
    ts = tair + 273.15 + h / (1200.0 * d["ga"])
    return {"gpp": gpp, "ra": ra, "rh": rh, "reco": reco, "nep": nep, "lai": lai, "le": le,
            "tran_le": tran_le, "soil_le": soil_le, "h": h, "g": ground, "ts": ts}


def _plant_water(p: Mapping[str, np.ndarray | float], d: Drivers
                 ) -> tuple[np.ndarray, np.ndarray]:
    """Relative soil water seen by the plants, now and lagged (for drought phenology).

    The fictional models see the root-zone bucket of the forcing. The true vegetation may
    have shallow roots (``shallow``: weight of the top 10 cm, grasses of monsoon climates)
    or reach deep water (``deep``: share of the deficit that deep roots make up for the water
    stress of savanna trees), which no fictional model represents.
    """
    theta, lag = d["theta"], d["theta_lag"]
    if "shallow" in p:
        theta = (1.0 - p["shallow"]) * theta + p["shallow"] * d["theta_top"]
        lag = (1.0 - p["shallow"]) * lag + p["shallow"] * d["theta_top_lag"]
    if "deep" in p:  # the trees' water; leaf area (of the grass layer) still follows the rains
        theta = theta + p["deep"] * (1.0 - theta)
    return theta, lag


def comparison(out: Mapping[str, np.ndarray]) -> dict[str, np.ndarray]:
    """Model values of the observed variables: NEE (gC m-2 d-1, to the atmosphere), Qle, Qh."""
    return {"NEE": -out["nep"], "Qle": out["le"], "Qh": out["h"]}


# --------------------------------------------------------------------------------- states
def carbon_pools(d: Drivers, out: Mapping[str, np.ndarray], s: Structure
                 ) -> tuple[np.ndarray, np.ndarray]:
    """Soil and above-ground live carbon (kg m-2) from cumulated NEP within each site.

    Parameters
    ----------
    d : Drivers
        Drivers of whole site records (days of one site contiguous and in order).
    out : mapping
        Output of :func:`fluxes` for one parameter set (arrays of shape ``(N,)``).
    s : Structure
        Gives the soil turnover rate.

    Returns
    -------
    cSoil, cLiveBioAbove : numpy.ndarray
    """
    cum = _segment_cumsum(out["nep"], d.site_of_day) / 1000.0  # kgC m-2
    veg_share = np.where(d["forest"], 0.6, 0.3)
    soil0 = d.site_mean(out["rh"]) * 365.25 / s.soil_turnover / 1000.0
    wood = np.where(d["forest"], 1.9, 0.05) * d["lai_max"] * s.lai_scale
    leaves = out["lai"] / 20.0
    c_soil = soil0 + (1.0 - veg_share) * cum
    c_above = wood + leaves + 0.7 * veg_share * cum
    return c_soil, np.maximum(c_above, 0.0)


def _segment_cumsum(x: np.ndarray, segment: np.ndarray) -> np.ndarray:
    total = np.cumsum(x)
    starts = np.searchsorted(segment, segment, side="left")
    before = np.where(starts > 0, total[np.maximum(starts - 1, 0)], 0.0)
    return total - before


def soil_water(forcing: SiteForcing, d: Drivers, out: Mapping[str, np.ndarray],
               s: Structure) -> tuple[np.ndarray, np.ndarray]:
    """Total and top-10-cm soil moisture (kg m-2) of the model's own water balance.

    The model's evapotranspiration empties a root-zone bucket filled by the same rain and
    snow melt as the forcing; its content gives ``mrso``; ``mrsos`` follows the shared top
    layer.

    Parameters
    ----------
    forcing : SiteForcing
        The forcing ``d`` was flattened from (same sites, all record days).
    d : Drivers
        Drivers of whole site records.
    out : mapping
        Output of :func:`fluxes` for one parameter set.
    s : Structure
        Gives the bucket size and soil depth.

    Returns
    -------
    mrso, mrsos : numpy.ndarray
    """
    rec = forcing.in_record
    et = np.zeros(rec.shape)
    et[rec] = (out["tran_le"] + out["soil_le"]) * DAY / LAMBDA  # mm d-1
    whc = s.whc_scale * np.array([root_zone_capacity(x.igbp) for x in forcing.sites])
    rel = bucket(forcing["inflow"], et, whc)[rec]
    return soil_moisture(rel, d["theta_top"], s)


def bucket(inflow: np.ndarray, et: np.ndarray, whc: np.ndarray) -> np.ndarray:
    """Relative content of a bucket filled by ``inflow`` and emptied by ``et``.

    Parameters
    ----------
    inflow, et : numpy.ndarray
        Water in and out per step (mm), shape ``(n_places, n_steps)``.
    whc : numpy.ndarray
        Capacity (mm) of each place; it starts 70 % full and spills above capacity.

    Returns
    -------
    numpy.ndarray
        Content / capacity, shape ``(n_places, n_steps)``.
    """
    w = 0.7 * whc
    rel = np.empty(inflow.shape)
    for t in range(inflow.shape[1]):
        w = np.clip(w + inflow[:, t] - et[:, t], 0.0, whc)
        rel[:, t] = w / whc
    return rel


def soil_moisture(rel: np.ndarray, theta_top: np.ndarray, s: Structure
                  ) -> tuple[np.ndarray, np.ndarray]:
    """``mrso`` and ``mrsos`` (kg m-2) from relative root-zone and top-layer water.

    Both depend on the model: its root-zone bucket (``rel``, emptied by its own
    evapotranspiration), its soil depth and its top-layer hydraulics (``top_*`` of
    :class:`Structure`).
    """
    mrso = s.soil_depth * 1000.0 * (0.12 + 0.20 * rel)
    top = (1.0 - s.top_coupling) * theta_top + s.top_coupling * rel
    mrsos = 100.0 * (s.top_residual + s.top_range * top)
    return mrso, mrsos
