"""Variable names, canonical units and the one place where units and signs are converted.

Protocol v2 Table 3 fixes the CMIP names and units of model output. Observations use
``NEE`` (gC m-2 d-1, daily sum, positive when CO2 goes to the atmosphere), ``Qle`` and ``Qh``
(W m-2, daily means). Model runs are compared with observations through the same three
*comparison variables*, derived here and nowhere else:

``NEE = -nep * 1000 * 86400``   (kgC m-2 s-1 into the land → gC m-2 d-1 to the atmosphere)
``Qle = hfls``, ``Qh = hfss``    (W m-2)
"""

from __future__ import annotations

import re
from dataclasses import dataclass

import numpy as np
import xarray as xr

#: Seconds in a day and grams in a kilogram: the NEE conversion factor.
KG_S_TO_G_D = 1000.0 * 86400.0


@dataclass(frozen=True)
class VariableSpec:
    """One required model output variable of protocol v2 Table 3."""

    name: str
    long_name: str
    units: str
    valid_min: float
    valid_max: float
    required: bool = True


#: Table 3 of protocol v2, with plausible physical ranges for daily means at a site.
TABLE3: dict[str, VariableSpec] = {
    v.name: v
    for v in [
        VariableSpec("nep", "Net ecosystem productivity", "kgC m-2 s-1", -5e-6, 5e-6),
        VariableSpec("hfls", "Latent heat flux", "W m-2", -200.0, 800.0),
        VariableSpec("hfss", "Sensible heat flux", "W m-2", -400.0, 800.0),
        VariableSpec("gpp", "Gross primary production", "kgC m-2 s-1", -1e-7, 5e-6),
        VariableSpec("reco", "Total ecosystem respiration", "kgC m-2 s-1", -1e-7, 5e-6),
        VariableSpec("tran", "Transpiration", "kg m-2 s-1", -1e-4, 5e-4),
        VariableSpec("evspsblsoi", "Evaporation from soil", "kg m-2 s-1", -1e-3, 5e-4),
        VariableSpec("hfg", "Ground heat flux", "W m-2", -400.0, 400.0, required=False),
        VariableSpec("ts", "Land surface temperature", "K", 180.0, 360.0),
        VariableSpec("lai", "Leaf area index", "1", 0.0, 20.0),
        VariableSpec("cLiveBioAbove", "Aboveground live biomass carbon", "kg m-2", 0.0, 500.0),
        VariableSpec("cSoil", "Soil carbon", "kg m-2", 0.0, 5000.0),
        VariableSpec("mrso", "Total soil column moisture", "kg m-2", 0.0, 50000.0),
        VariableSpec("mrsos", "Top 10 cm soil moisture", "kg m-2", 0.0, 200.0),
    ]
}

#: The comparison variables, their CMIP source and their units after conversion.
COMPARISON: dict[str, dict[str, str]] = {
    "NEE": {"cmip": "nep", "units": "gC m-2 d-1",
            "long_name": "Net ecosystem exchange (positive to the atmosphere)"},
    "Qle": {"cmip": "hfls", "units": "W m-2", "long_name": "Latent heat flux"},
    "Qh": {"cmip": "hfss", "units": "W m-2", "long_name": "Sensible heat flux"},
}

#: Variables observed at the flux towers, in the order the app shows them (the one list).
OBSERVED_VARIABLES: tuple[str, ...] = tuple(COMPARISON)
#: Table 3 outputs without observations (spread statistics only), in display order.
MODEL_ONLY_VARIABLES: tuple[str, ...] = ("gpp", "reco", "lai", "tran", "evspsblsoi", "hfg", "ts",
                                         "cSoil", "cLiveBioAbove", "mrso", "mrsos")

#: Which comparison variables each calibration scenario optimises (protocol v2 §3.1).
SCENARIO_VARIABLES: dict[int, tuple[str, ...]] = {
    1: ("NEE", "Qle", "Qh"),
    2: ("NEE",),
    3: ("Qle",),
    4: ("Qh",),
    5: ("NEE", "Qle"),
    6: ("Qle", "Qh"),
}

#: Names an ensemble dimension may have in submitted files; standardised to ``member``.
ENSEMBLE_DIMS = ("member", "members", "ensemble", "ens", "realization", "realisation",
                 "ens_member", "ensemble_member", "sample", "number")

#: Suffixes of posterior uncertainty variables (``_post_unc`` in v2, ``_uc`` before).
UNCERTAINTY_SUFFIXES = ("_post_unc", "_uc", "_unc")

_ZERO_WIDTH = re.compile("[\u200b\u200c\u200d\u2060\ufeff]")

# Spellings that mean the same unit; keys are normalised with :func:`normalise_units`.
_ALIASES: dict[str, str] = {
    "w/m2": "W m-2", "w/m^2": "W m-2", "wm-2": "W m-2", "w.m-2": "W m-2", "w m-2": "W m-2",
    "w m^-2": "W m-2", "w/m**2": "W m-2",
    "kgc m-2 s-1": "kgC m-2 s-1", "kg c m-2 s-1": "kgC m-2 s-1", "kgc/m2/s": "kgC m-2 s-1",
    "kg(c) m-2 s-1": "kgC m-2 s-1", "kgc.m-2.s-1": "kgC m-2 s-1",
    "kg m-2 s-1": "kg m-2 s-1", "kg/m2/s": "kg m-2 s-1", "mm s-1": "kg m-2 s-1",
    "mm/s": "kg m-2 s-1", "kg.m-2.s-1": "kg m-2 s-1",
    "kg m-2": "kg m-2", "kg/m2": "kg m-2", "kgc m-2": "kg m-2", "kg c m-2": "kg m-2",
    "kgc/m2": "kg m-2", "mm": "kg m-2",
    "k": "K", "kelvin": "K",
    "1": "1", "m2 m-2": "1", "m2/m2": "1", "m^2/m^2": "1", "-": "1", "": "1",
    "gc m-2 d-1": "gC m-2 d-1", "gc/m2/d": "gC m-2 d-1", "g c m-2 d-1": "gC m-2 d-1",
    "gc m-2 day-1": "gC m-2 d-1", "gc/m2/day": "gC m-2 d-1",
    "umol m-2 s-1": "umol m-2 s-1", "umol/m2/s": "umol m-2 s-1", "µmol m-2 s-1": "umol m-2 s-1",
    "micromol m-2 s-1": "umol m-2 s-1",
    "gc m-2 s-1": "gC m-2 s-1", "gc/m2/s": "gC m-2 s-1",
    "degc": "degC", "celsius": "degC", "c": "degC",
}

# Multiplicative conversions between canonical units (source → target).
_FACTORS: dict[tuple[str, str], float] = {
    ("gC m-2 s-1", "kgC m-2 s-1"): 1e-3,
    ("gC m-2 d-1", "kgC m-2 s-1"): 1e-3 / 86400.0,
    ("umol m-2 s-1", "kgC m-2 s-1"): 1e-6 * 12.0e-3,  # 12 g mol-1, as the official daily files
}


#: Units the land-modelling community reads, for variables stored per second in Table 3:
#: canonical units → (display units, factor). Carbon fluxes in gC m-2 d-1 (like NEE), water
#: fluxes in mm d-1, temperature in °C; the rest as stored.
DISPLAY_UNITS: dict[str, tuple[str, float]] = {
    "kgC m-2 s-1": ("gC m-2 d-1", KG_S_TO_G_D),
    "kg m-2 s-1": ("mm d-1", 86400.0),
    "K": ("°C", 1.0),  # offset handled by display_values
}


def display_values(values: np.ndarray, units: str | None) -> tuple[np.ndarray, str]:
    """Values in the units the community reads (see :data:`DISPLAY_UNITS`).

    Parameters
    ----------
    values : numpy.ndarray
        Values in ``units`` (canonical Table 3 units after reading).
    units : str or None
        Their units.

    Returns
    -------
    values, units : numpy.ndarray, str
        Converted values (a new array) and their units; unchanged when no conversion applies.
    """
    canonical = normalise_units(units) if units else None
    if canonical not in DISPLAY_UNITS:
        return np.asarray(values), units or ""
    target, factor = DISPLAY_UNITS[canonical]
    converted = np.asarray(values, dtype="float64") * factor
    if canonical == "K":
        converted = converted - 273.15
    return converted, target


def strip_invisible(text: str) -> str:
    """Remove zero-width characters and surrounding white space from ``text``."""
    return _ZERO_WIDTH.sub("", str(text)).strip()


def normalise_units(units: str | None) -> str | None:
    """Map a units string to its canonical spelling, or ``None`` if it is unknown.

    Parameters
    ----------
    units : str or None
        The ``units`` attribute as written in a file.

    Returns
    -------
    str or None
        Canonical spelling (e.g. ``"W m-2"`` for ``"W/m2"``) or ``None`` when unknown.
    """
    if units is None:
        return None
    key = re.sub(r"\s+", " ", strip_invisible(units)).lower()
    return _ALIASES.get(key)


def units_match(written: str | None, expected: str) -> tuple[bool, bool]:
    """Compare a written units attribute with the Table 3 spelling.

    Returns
    -------
    tuple of bool
        ``(equivalent, exact)``: ``equivalent`` when the units mean the same quantity (a harmless
        variant such as ``W/m2`` or a trailing zero-width space), ``exact`` when the string is
        written exactly as Table 3 asks.
    """
    if written is None:
        return False, False
    exact = written == expected
    canon = normalise_units(written)
    expected_canon = normalise_units(expected) or expected
    # lai may be written "1" or "m2 m-2" (Table 3 allows both).
    return (canon == expected_canon, exact or (expected == "1" and written == "m2 m-2"))


def conversion_factor(written: str | None, expected: str) -> float | None:
    """Return the factor that converts values in ``written`` units to ``expected`` units.

    ``1.0`` when they are equivalent, ``None`` when no conversion is known.
    """
    canon = normalise_units(written)
    expected_canon = normalise_units(expected) or expected
    if canon == expected_canon:
        return 1.0
    return _FACTORS.get((canon, expected_canon)) if canon else None


def nee_from_nep(nep: xr.DataArray) -> xr.DataArray:
    """Convert CMIP ``nep`` (kgC m-2 s-1, positive into the land) to observed ``NEE``.

    Parameters
    ----------
    nep : xarray.DataArray
        Net ecosystem productivity in kgC m-2 s-1 (daily means).

    Returns
    -------
    xarray.DataArray
        NEE in gC m-2 d-1, positive when CO2 goes to the atmosphere (the FLUXNET sign).
    """
    out = -nep * KG_S_TO_G_D
    out.attrs = {"units": COMPARISON["NEE"]["units"], "long_name": COMPARISON["NEE"]["long_name"],
                 "derived_from": "NEE = -nep * 1000 * 86400"}
    return out


def nee_unc_from_nep_unc(nep_unc: xr.DataArray) -> xr.DataArray:
    """Convert a ``nep`` uncertainty (kgC m-2 s-1, one standard deviation) to gC m-2 d-1."""
    out = np.abs(nep_unc) * KG_S_TO_G_D
    out.attrs = {"units": COMPARISON["NEE"]["units"],
                 "long_name": "NEE posterior uncertainty (1 sd)"}
    return out
