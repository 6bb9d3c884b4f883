"""The fictional models of the demo archive and the "true" model behind the observations.

Five clearly fictional models, each a structural variant of :mod:`dashboard.demo.process_model`
with its own default (prior) parameters and prior ranges, and each with a deliberate quirk of
real submissions:

========================  ==================================================================
``TERRA-TOY.v1.4.2``      reference layout; optional scenarios 2 and 3
``BOREALIS.v3``           ``noleap`` calendar (no 29 February); optional scenario 5
``FENNEC.v0.9``           posterior ensembles (dimension ``ensemble``) instead of _post_unc;
                          optional scenario 6
``ALDER.v2``              protocol v1 file names (``_Expt1_``); some sites missing; no
                          soil-water limit on photosynthesis
``MOSSGROVE.v1.1``        optional scenarios 4 and 6
========================  ==================================================================
"""

from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np

from dashboard.demo.process_model import Structure
from dashboard.demo.site_table import DemoSite, site_seed


@dataclass(frozen=True)
class ParameterSpec:
    """A calibrated parameter: its meaning and its prior.

    Attributes
    ----------
    name, long_name, process, pft, units : str
        As written to the parameter table (``pft`` empty when it applies to every type).
    prior : float
        Default value of the model (the prior run).
    lower, upper : float
        Prior range (bounds of the calibration).
    """

    name: str
    long_name: str
    process: str
    pft: str
    units: str
    prior: float
    lower: float
    upper: float

    @property
    def sd(self) -> float:
        """Prior standard deviation: a quarter of the prior range."""
        return (self.upper - self.lower) / 4.0


def _p(name: str, prior: float, lower: float, upper: float) -> ParameterSpec:
    long_name, process, pft, units = _MEANING[name]
    return ParameterSpec(name, long_name, process, pft, units, prior, lower, upper)


_MEANING: dict[str, tuple[str, str, str, str]] = {
    "eps_forest": ("Light-use efficiency of forests", "photosynthesis", "forest",
                   "gC MJ-1 APAR"),
    "eps_open": ("Light-use efficiency of grasses, shrubs and savannas", "photosynthesis",
                 "grass-shrub", "gC MJ-1 APAR"),
    "tmin": ("Temperature below which photosynthesis stops", "photosynthesis", "", "degC"),
    "topt": ("Optimal temperature of photosynthesis", "photosynthesis", "", "degC"),
    "twidth": ("Width of the temperature response of photosynthesis", "photosynthesis", "",
               "K"),
    "theta_crit": ("Relative soil water below which plants are water-stressed",
                   "water stress", "", "1"),
    "k_vpd": ("Sensitivity of photosynthesis to vapour pressure deficit", "water stress", "",
              "kPa-1"),
    "k_vpd_lin": ("Linear reduction of photosynthesis per kPa of vapour pressure deficit",
                  "water stress", "", "kPa-1"),
    "t_onset": ("Lagged temperature at half leaf-out", "phenology", "", "degC"),
    "ra_frac": ("Autotrophic respiration as a fraction of GPP", "respiration", "", "1"),
    "q10": ("Q10 of heterotrophic respiration", "respiration", "", "1"),
    "e0": ("Activation energy parameter of Lloyd-Taylor respiration", "respiration", "", "K"),
    "sink_frac": ("Fraction of NPP not respired (soil and biomass disequilibrium)",
                  "carbon balance", "", "1"),
    "alpha_pt": ("Priestley-Taylor coefficient", "evapotranspiration", "", "1"),
    "wue0": ("Intrinsic water-use efficiency", "evapotranspiration", "",
             "gC kg-1 kPa0.5"),
    "es_coef": ("Soil evaporation efficiency", "evapotranspiration", "", "1"),
    "g_frac": ("Ground heat flux as a fraction of net radiation", "energy balance", "", "1"),
    "g_tgrad": ("Ground heat flux per degree of soil warming", "energy balance", "",
                "W m-2 K-1"),
}


@dataclass(frozen=True)
class FictionalModel:
    """One fictional model and how it writes its submission.

    Attributes
    ----------
    name, version : str
        Model name (may contain a hyphen) and version (may contain dots).
    structure : Structure
        Structural switches.
    parameters : tuple of ParameterSpec
        Calibrated parameters with priors.
    scenarios : tuple of int
        Calibration scenarios run (1 always; 2-6 optional, posterior only).
    naming : str
        ``"v2"`` or ``"v1"`` file names.
    calendar : str
        ``"standard"`` or ``"noleap"``.
    ensemble : int
        Number of posterior ensemble members written instead of ``_post_unc`` (0: none).
    missing_sites : tuple of str
        Sites the model did not run.
    global_runs : bool
        Whether the model writes global runs.
    description : str
        One line for the README and the file attributes.
    """

    name: str
    version: str
    structure: Structure
    parameters: tuple[ParameterSpec, ...]
    scenarios: tuple[int, ...] = (1,)
    naming: str = "v2"
    calendar: str = "standard"
    ensemble: int = 0
    missing_sites: tuple[str, ...] = ()
    global_runs: bool = False
    description: str = ""

    @property
    def model_id(self) -> str:
        """``<name>.<version>`` as in the ``Model`` attribute."""
        return f"{self.name}.{self.version}"

    @property
    def names(self) -> tuple[str, ...]:
        """Parameter names in order."""
        return tuple(p.name for p in self.parameters)

    def prior_values(self) -> dict[str, float]:
        """Default parameter values."""
        return {p.name: p.prior for p in self.parameters}


MODELS: tuple[FictionalModel, ...] = (
    FictionalModel(
        name="TERRA-TOY", version="v1.4.2",
        structure=Structure(temperature="ramp", respiration_moisture=True, lai_scale=1.1,
                            whc_scale=1.0, soil_depth=2.0, soil_turnover=0.035,
                            top_residual=0.10, top_range=0.25, top_coupling=0.3),
        parameters=(
            _p("eps_forest", 1.30, 0.60, 2.60), _p("eps_open", 1.00, 0.40, 2.20),
            _p("tmin", -3.0, -8.0, 3.0), _p("topt", 18.0, 10.0, 28.0),
            _p("theta_crit", 0.55, 0.20, 0.80), _p("k_vpd", 0.20, 0.0, 1.0),
            _p("t_onset", 8.0, 2.0, 14.0), _p("ra_frac", 0.45, 0.30, 0.65),
            _p("q10", 2.2, 1.2, 3.2), _p("sink_frac", 0.05, -0.10, 0.40),
            _p("alpha_pt", 1.26, 0.80, 1.60), _p("es_coef", 0.50, 0.10, 1.00),
            _p("g_frac", 0.04, 0.0, 0.10),
        ),
        scenarios=(1, 2, 3), global_runs=True,
        description="light-use efficiency with ramp temperature response, Q10 respiration "
                    "with soil moisture, Priestley-Taylor evaporation, G a fraction of Rn",
    ),
    FictionalModel(
        name="BOREALIS", version="v3",
        structure=Structure(temperature="gauss", respiration_moisture=False, lai_scale=0.9,
                            whc_scale=1.3, soil_depth=3.0, soil_turnover=0.025,
                            top_residual=0.15, top_range=0.20, top_coupling=0.5),
        parameters=(
            _p("eps_forest", 1.60, 0.80, 2.80), _p("eps_open", 1.40, 0.60, 2.40),
            _p("topt", 15.0, 8.0, 26.0), _p("twidth", 12.0, 6.0, 20.0),
            _p("theta_crit", 0.40, 0.15, 0.70), _p("t_onset", 6.0, 0.0, 12.0),
            _p("ra_frac", 0.50, 0.35, 0.65), _p("e0", 309.0, 150.0, 450.0),
            _p("sink_frac", 0.10, -0.10, 0.40), _p("alpha_pt", 1.10, 0.80, 1.50),
            _p("es_coef", 0.30, 0.05, 0.90), _p("g_tgrad", 3.0, 0.0, 8.0),
        ),
        scenarios=(1, 5), calendar="noleap", global_runs=True,
        description="bell-shaped temperature response, square-root water limit, no VPD "
                    "limit, Lloyd-Taylor respiration, G from soil warming; noleap calendar",
    ),
    FictionalModel(
        name="FENNEC", version="v0.9",
        structure=Structure(temperature="ramp", respiration_moisture=False, lai_scale=1.0,
                            whc_scale=0.8, soil_depth=1.5, soil_turnover=0.05,
                            top_residual=0.08, top_range=0.28, top_coupling=0.0),
        parameters=(
            _p("eps_forest", 1.10, 0.50, 2.50), _p("eps_open", 1.20, 0.50, 2.50),
            _p("tmin", -2.0, -8.0, 4.0), _p("topt", 22.0, 12.0, 30.0),
            _p("theta_crit", 0.50, 0.20, 0.80), _p("k_vpd_lin", 0.25, 0.0, 0.8),
            _p("t_onset", 9.0, 3.0, 15.0), _p("ra_frac", 0.55, 0.35, 0.70),
            _p("q10", 1.8, 1.2, 3.0), _p("sink_frac", 0.00, -0.10, 0.40),
            _p("wue0", 3.0, 1.5, 6.0), _p("es_coef", 0.40, 0.05, 1.00),
            _p("g_frac", 0.03, 0.0, 0.10),
        ),
        scenarios=(1, 6), ensemble=12,
        description="light-use efficiency with linear VPD limit, Q10 respiration without "
                    "moisture, transpiration from GPP via water-use efficiency; posterior "
                    "ensembles",
    ),
    FictionalModel(
        name="ALDER", version="v2",
        structure=Structure(temperature="ramp", respiration_moisture=False, lai_scale=1.2,
                            whc_scale=1.0, soil_depth=2.5, soil_turnover=0.03,
                            top_residual=0.12, top_range=0.22, top_coupling=0.6),
        parameters=(
            _p("eps_forest", 1.50, 0.70, 2.60), _p("eps_open", 1.30, 0.50, 2.40),
            _p("tmin", -4.0, -8.0, 2.0), _p("topt", 20.0, 10.0, 28.0),
            _p("k_vpd", 0.30, 0.0, 1.2), _p("t_onset", 7.0, 1.0, 13.0),
            _p("ra_frac", 0.50, 0.30, 0.65), _p("q10", 2.0, 1.2, 3.0),
            _p("sink_frac", 0.08, -0.10, 0.40), _p("alpha_pt", 1.30, 0.90, 1.60),
            _p("es_coef", 0.60, 0.10, 1.00), _p("g_frac", 0.05, 0.0, 0.10),
        ),
        scenarios=(1,), naming="v1",
        missing_sites=("IT-Noe", "US-Whs", "AU-Stp", "US-GLE"),
        description="light-use efficiency without a soil-water limit on photosynthesis, Q10 "
                    "respiration, Priestley-Taylor evaporation; protocol v1 file names; "
                    "four sites not run",
    ),
    FictionalModel(
        name="MOSSGROVE", version="v1.1",
        structure=Structure(temperature="gauss", respiration_moisture=True, lai_scale=0.95,
                            whc_scale=1.1, soil_depth=2.0, soil_turnover=0.04,
                            top_residual=0.11, top_range=0.30, top_coupling=0.2),
        parameters=(
            _p("eps_forest", 1.40, 0.60, 2.60), _p("eps_open", 1.10, 0.50, 2.40),
            _p("topt", 20.0, 10.0, 30.0), _p("twidth", 10.0, 5.0, 18.0),
            _p("theta_crit", 0.45, 0.15, 0.75), _p("k_vpd", 0.40, 0.0, 1.2),
            _p("t_onset", 7.5, 1.0, 14.0), _p("ra_frac", 0.50, 0.30, 0.65),
            _p("q10", 2.0, 1.2, 3.0), _p("sink_frac", 0.05, -0.10, 0.40),
            _p("wue0", 4.0, 2.0, 7.0), _p("es_coef", 0.35, 0.05, 0.90),
            _p("g_tgrad", 2.0, 0.0, 8.0),
        ),
        scenarios=(1, 4, 6), global_runs=True,
        description="bell-shaped temperature response, VPD limit, Q10 respiration with soil "
                    "moisture, transpiration from GPP via water-use efficiency, G from soil "
                    "warming",
    ),
)


def get_models(names: list[str] | tuple[str, ...] | None = None) -> list[FictionalModel]:
    """Return the fictional models (all, or those whose name or id is listed).

    Raises
    ------
    ValueError
        If a name matches no model.
    """
    if names is None:
        return list(MODELS)
    known = {m.name: m for m in MODELS} | {m.model_id: m for m in MODELS}
    unknown = [n for n in names if n not in known]
    if unknown:
        raise ValueError(f"unknown demo models: {', '.join(unknown)} (known: "
                         f"{', '.join(m.name for m in MODELS)})")
    chosen = {known[n].name for n in names}
    return [m for m in MODELS if m.name in chosen]


# ------------------------------------------------------------------------------ the truth
#: Structure of the "true" model that makes the observations.
TRUE_STRUCTURE = Structure(temperature="peaked", respiration_moisture=True, lai_scale=1.0)

_TRUE_EPS = {"ENF": 1.55, "EBF": 1.35, "DBF": 1.95, "MF": 1.7, "GRA": 1.65, "WSA": 1.3,
             "OSH": 1.05, "CSH": 1.2, "SAV": 1.3, "CRO": 2.0, "WET": 1.4}


@dataclass(frozen=True)
class TrueSite:
    """True parameters of one site (they vary with vegetation, climate and at random)."""

    params: dict[str, float] = field(default_factory=dict)
    closure: float = 0.85


def true_site(site: DemoSite, seed: int) -> TrueSite:
    """Draw the true parameters of ``site``.

    Light-use efficiency varies by vegetation type, the optimal temperature and leaf-out
    temperature acclimate to the site's climate, and every parameter has a site random
    effect. Some vegetation has traits no fictional model represents
    (:func:`ecosystem_traits`).
    ``closure`` is the fraction of the available energy the eddy-covariance measurements see
    (observations are not energy-balance corrected).
    """
    rng = site_seed(seed, site, 7)
    c = site.climate
    z = rng.standard_normal(12)
    params = {
        "eps": _TRUE_EPS.get(site.igbp, 1.4) * float(np.exp(0.22 * z[0])),
        "tmin": -4.0 + 0.2 * c.t_mean + 1.5 * z[1],
        "topt": 9.0 + 0.55 * c.t_mean + 2.0 * z[2],
        "theta_crit": float(np.clip(0.45 + 0.08 * z[3], 0.25, 0.7)),
        "k_vpd": 0.35 * float(np.exp(0.35 * z[4])),
        "t_onset": 4.0 + 0.3 * c.t_mean + 1.5 * z[5],
        "ra_frac": float(np.clip(0.50 + 0.05 * z[6], 0.36, 0.64)),
        "e0": 260.0 + 45.0 * z[7],
        "sink_frac": float(np.clip((0.16 if site.forest else 0.04) + 0.12 * z[8], -0.2, 0.4)),
        "alpha_pt": (1.15 if site.forest else 1.05) + 0.09 * z[9],
        "es_coef": float(np.clip(0.35 + 0.12 * z[10], 0.08, 0.75)),
        "g_frac": 0.03,
        "g_tgrad": 4.0 + 1.0 * z[11],
        "shallow": 0.0, "deep": 0.0, "rh_dry": 0.25, "pulse": 0.0,
    }
    closure = float(rng.uniform(0.72, 0.97))
    params.update(ecosystem_traits(site, z))
    return TrueSite(params=params, closure=closure)


def ecosystem_traits(site: DemoSite, z: np.ndarray) -> dict[str, float]:
    """Ecology of the true vegetation that none of the fictional models represents.

    * Grasses and shrubs of monsoon climates (the south-western US, northern Australia) are
      warm-season (C4-like) plants: no growth below ~10 degC, leaf-out only in the warm
      season, an efficient photosynthesis little limited by dry air, shallow roots that
      follow the top soil. They green up a few weeks after the summer rains start, the first
      rains on dry soil release a burst of respiration (Birch effect), and they are dormant
      (a small carbon source) in the cool winter.
    * Trees of the seasonally dry tropics (savannas) reach deep water and keep transpiring
      through the dry season; a wet tropical savanna (Howard Springs) is a strong sink whose
      respiration depends little on the surface soil water.

    Parameters
    ----------
    site : DemoSite
        The site (vegetation, latitude, climate).
    z : numpy.ndarray
        The site's standard-normal random effects (reused so that no new draw is needed).

    Returns
    -------
    dict of float
        Overrides of the true parameters.
    """
    c = site.climate
    out: dict[str, float] = {}
    if site.igbp in ("GRA", "WSA", "SAV", "OSH") and c.monsoon > 0:
        out.update({
            "tmin": 9.0 + 1.0 * z[1], "topt": 31.0 + 1.5 * z[2],
            "t_onset": 17.0 + 1.0 * z[5],
            "eps": _TRUE_EPS.get(site.igbp, 1.4) * 1.3 * float(np.exp(0.15 * z[0])),
            "k_vpd": 0.15 * float(np.exp(0.35 * z[4])), "shallow": 0.6, "rh_dry": 0.15,
            "pulse": 3.0,
        })
    tropical_woody = abs(site.lat) < 23.5 and (site.forest or site.igbp in ("WSA", "SAV"))
    if tropical_woody:
        out["deep"] = 0.35
    if tropical_woody and c.p_annual >= 1000.0:
        out.update({"sink_frac": 0.45 + 0.03 * z[8], "rh_dry": 0.45,
                    "ra_frac": 0.42 + 0.03 * z[6]})
    return out
