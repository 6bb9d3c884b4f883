"""Synthetic flux "observations": a true model with process noise, measurement noise and gaps.

The true model (:data:`dashboard.demo.models.TRUE_STRUCTURE`, parameters and ecosystem traits
varying by site) is run with multiplicative noise on GPP and respiration, additive noise on the
latent heat flux and short disturbance episodes that cut photosynthesis and transpiration; the
eddy-covariance instruments see only a fraction of the available energy (no energy-balance
correction, as in the real files). Measurement noise is drawn from the stated daily uncertainty,
whose size follows the flux magnitude like the FLUXNET joint uncertainties
of the real Phase 1b files. Days with heavy gap-filling are missing: they come in runs, more in
winter, with each site's fraction of valid days.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from dashboard.demo.meteorology import SiteForcing, ar1
from dashboard.demo.models import TRUE_STRUCTURE, true_site
from dashboard.demo.process_model import Drivers, comparison, fluxes
from dashboard.demo.site_table import site_seed

VARIABLES: tuple[str, ...] = ("NEE", "Qle", "Qh")


@dataclass
class Observations:
    """Observed daily values on the days of :class:`Drivers` (sites one after another).

    Attributes
    ----------
    values, unc : dict of numpy.ndarray
        ``NEE`` (gC m-2 d-1, positive to the atmosphere), ``Qle``, ``Qh`` (W m-2) and their
        one-sigma uncertainties; NaN on missing days.
    truth : dict of numpy.ndarray
        What the instruments would see without measurement noise (diagnostics).
    """

    values: dict[str, np.ndarray]
    unc: dict[str, np.ndarray]
    truth: dict[str, np.ndarray]


def true_parameters(forcing: SiteForcing, d: Drivers, seed: int
                    ) -> tuple[dict[str, np.ndarray], np.ndarray]:
    """Per-day arrays of the true parameters and of the energy-closure fraction."""
    truths = [true_site(s, seed) for s in forcing.sites]
    names = truths[0].params.keys()
    params = {k: np.array([t.params[k] for t in truths])[d.site_of_day] for k in names}
    closure = np.array([t.closure for t in truths])[d.site_of_day]
    return params, closure


def make_observations(forcing: SiteForcing, d: Drivers, seed: int) -> Observations:
    """Run the true model and turn it into observations.

    Parameters
    ----------
    forcing : SiteForcing
        Weather of the sites.
    d : Drivers
        The same, flattened (whole records).
    seed : int
        Random seed.

    Returns
    -------
    Observations
    """
    params, closure = true_parameters(forcing, d, seed)
    noise = {k: np.empty(d.n) for k in ("gpp", "rh", "le", "le_factor")}
    starts = np.searchsorted(d.site_of_day, np.arange(d.n_sites))
    ends = np.append(starts[1:], d.n)
    for i, site in enumerate(forcing.sites):
        rng = site_seed(seed, site, 11)
        n = ends[i] - starts[i]
        sl = slice(starts[i], ends[i])
        noise["gpp"][sl] = 0.10 * ar1(rng, (n,), 0.8)
        noise["rh"][sl] = 0.12 * ar1(rng, (n,), 0.7)
        noise["le"][sl] = 7.0 * ar1(rng, (n,), 0.5)
        damage = disturbance_episodes(site_seed(seed, site, 17), n)
        noise["gpp"][sl] = (1.0 + noise["gpp"][sl]) * (1.0 - damage) - 1.0
        noise["le_factor"][sl] = -0.6 * damage
    out = fluxes(d, params, TRUE_STRUCTURE, noise=noise)
    seen = comparison(out)
    seen["Qle"] = seen["Qle"] * closure
    seen["Qh"] = seen["Qh"] * closure

    values: dict[str, np.ndarray] = {}
    unc: dict[str, np.ndarray] = {}
    for i, site in enumerate(forcing.sites):
        rng = site_seed(seed, site, 13)
        sl = slice(starts[i], ends[i])
        n = ends[i] - starts[i]
        level = rng.uniform(0.7, 1.4, 3)
        valid = gap_pattern(rng, forcing.record_dates(i).day_of_year.to_numpy(), site.lat,
                            site.valid_fractions)
        for j, (var, base, rel) in enumerate((("NEE", 0.04, 0.08), ("Qle", 1.0, 0.12),
                                              ("Qh", 2.0, 0.12))):
            true = seen[var][sl]
            sigma = level[j] * (base + rel * np.abs(true)) * np.exp(0.35 * rng.standard_normal(n))
            obs = true + sigma * rng.standard_normal(n)
            values.setdefault(var, np.empty(d.n))[sl] = np.where(valid[j], obs, np.nan)
            unc.setdefault(var, np.empty(d.n))[sl] = np.where(valid[j], sigma, np.nan)
    return Observations(values=values, unc=unc, truth=seen)


#: Disturbance episodes per site and year (heat and drought damage, frost, insects, hail).
EPISODES_PER_YEAR = 0.8


def disturbance_episodes(rng: np.random.Generator, n: int) -> np.ndarray:
    """Fractional loss of photosynthesis in short disturbance episodes (0 most days).

    Episodes start at random (:data:`EPISODES_PER_YEAR`), last 5 days plus an exponential
    tail of mean 15 days, and cut GPP by 20-70 % (transpiration by 60 % of that), easing off
    towards their end. No fictional model knows about them: they give the model-data
    residuals the heavy tails of real flux records.

    Parameters
    ----------
    rng : numpy.random.Generator
        Random stream of the site.
    n : int
        Number of days.

    Returns
    -------
    numpy.ndarray
        Loss fraction per day, shape ``(n,)``.
    """
    loss = np.zeros(n)
    count = rng.poisson(EPISODES_PER_YEAR * n / 365.25)
    starts = rng.integers(0, n, count)
    lengths = 5 + rng.exponential(15.0, count).astype(int)
    depths = rng.uniform(0.2, 0.7, count)
    for start, length, depth in zip(starts, lengths, depths, strict=True):
        days = np.arange(length)
        shape = depth * (1.0 - 0.5 * days / length)
        end = min(n, start + length)
        loss[start:end] = np.maximum(loss[start:end], shape[: end - start])
    return loss


def gap_pattern(rng: np.random.Generator, doy: np.ndarray, lat: float,
                fractions: tuple[float, float, float]) -> np.ndarray:
    """Valid-day masks of NEE, Qle and Qh: runs of missing days, more of them in winter.

    A persistent latent process (shared in part by the three variables) plus a seasonal term
    is thresholded at the quantile that leaves exactly the requested fraction of valid days.

    Parameters
    ----------
    rng : numpy.random.Generator
        Random stream.
    doy : numpy.ndarray
        Day of year of each day.
    lat : float
        Site latitude (sets the season and its strength).
    fractions : tuple of float
        Fractions of valid days for NEE, Qle, Qh.

    Returns
    -------
    numpy.ndarray
        Boolean array of shape ``(3, n_days)``.
    """
    n = doy.size
    peak = 200.0 if lat >= 0 else 17.0
    strength = 0.7 * min(1.0, abs(lat) / 30.0)
    season = strength * np.cos(2.0 * np.pi * (doy - peak) / 365.25)
    shared = ar1(rng, (n,), 0.7)
    own = ar1(rng, (3, n), 0.7)
    masks = np.zeros((3, n), dtype=bool)
    for j, frac in enumerate(fractions):
        score = 0.6 * shared + 0.8 * own[j] + season
        k = int(round(frac * n))
        if k <= 0:
            continue
        threshold = np.partition(score, n - k)[n - k]
        masks[j] = score >= threshold
    return masks
