"""Small, seeded synthetic CalLMIP files with REAL names and REAL layouts, for tests.

Every writer takes a destination folder, builds the file name exactly as CalLMIP does and returns
the path of the file it wrote. The layouts copy the real files in ``../shared/data``:

* :func:`write_site_run` — a protocol v2 (or v1) site run in the layout of the CalLMIP template
  (NETCDF3, scalar ``lat``/``lon`` variables clashing with the ``lat``/``lon`` dimensions,
  ``latitude(lat)``/``longitude(lon)``, time ``days since <day before start>`` valued 1..N, every
  Table 3 variable on ``(time, lat, lon)``, the v2 global attributes). Options give a ``noleap``
  calendar, ``<var>_post_unc`` (or ``_uc``) uncertainties, an ensemble dimension and fill values.
* :func:`write_daily_obs` — a Phase 1b daily observation file (NETCDF3 64-bit, dims
  ``time, y, x``, time in seconds, ``NEE_daily``/``Qle_daily``/``Qh_daily`` and their
  ``*_uc_daily`` with ``_FillValue`` 1e20); :func:`write_phase1a_obs` the Phase 1a variant
  (NETCDF4, dims ``time, x``).
* :func:`write_plumber2_flux` — a PLUMBER2 original half-hourly ``Flux`` file (NEE in
  umol m-2 s-1 positive to the atmosphere, ``*_qc`` gap-fill flags, ``NEE_uc``, ``Qle_cor_uc``,
  ``Qh_cor_uc``); ``collection="OzFlux"`` writes no uncertainties, like the real OzFlux files.
* :func:`write_global_run` — a global run on ``(time, lat, lon)`` with longitudes 0..360 and
  latitudes north to south (what the reader must standardise).
* :func:`write_parameters` — a parameter table in the Explorer's CSV format.
* :func:`write_garbage`, :func:`write_truncated` — broken files for error-path tests.

Import as ``from tests.synthetic import write_site_run`` (the repository root is on ``sys.path``
through the editable install). Nothing here reads the shared data.
"""

from __future__ import annotations

import csv
import datetime as dt
import os
from collections.abc import Iterable, Sequence
from pathlib import Path

import cftime
import netCDF4
import numpy as np

#: The Table 3 variables of protocol v2 and the units the template writes for them
#: (``lai`` as ``m2 m-2`` and ``cSoil`` with the template's trailing zero-width space).
TEMPLATE_UNITS: dict[str, str] = {
    "nep": "kgC m-2 s-1",
    "hfls": "W m-2",
    "hfss": "W m-2",
    "gpp": "kgC m-2 s-1",
    "tran": "kg m-2 s-1",
    "evspsblsoi": "kg m-2 s-1",
    "hfg": "W m-2",
    "ts": "K",
    "mrso": "kg m-2",
    "mrsos": "kg m-2",
    "lai": "m2 m-2",
    "cSoil": "kg m-2\u200b",
    "cLiveBioAbove": "kg m-2",
    "reco": "kgC m-2 s-1",
}

#: Comparison variable → the CMIP variable it is derived from.
OPTIMISED_CMIP = {"NEE": "nep", "Qle": "hfls", "Qh": "hfss"}

#: Which comparison variables each calibration scenario optimises (protocol v2 §3.1).
SCENARIO_OPTIMISED: dict[int, tuple[str, ...]] = {
    1: ("NEE", "Qle", "Qh"), 2: ("NEE",), 3: ("Qle",), 4: ("Qh",), 5: ("NEE", "Qle"),
    6: ("Qle", "Qh"),
}

#: The template's ``_FillValue`` for model output and the observation files' one.
MODEL_FILL = 1e38
OBS_FILL = 1e20

#: Steps per day of a PLUMBER2 half-hourly file.
HALF_HOURS = 48


# ---------------------------------------------------------------------------------------------
# Names
# ---------------------------------------------------------------------------------------------

def site_run_filename(model: str = "CLASSIC", version: str = "v2", scenario: int = 1,
                      site: str = "DK-Sor", cal_val: str = "Cal", stage: str = "Prior",
                      convention: str = "v2", phase: str = "Phase1b") -> str:
    """Return a site-run file name (protocol v2 by default, v1 ``Expt<N>`` if asked).

    Parameters
    ----------
    model, version, site, cal_val, stage : str
        Name fields, e.g. ``"CABLE-POP"``, ``"v4.2"``, ``"US-Ton"``, ``"Val"``, ``"Posterior"``.
    scenario : int
        Calibration scenario (v2) or experiment (v1) number.
    convention : {"v2", "v1"}
        Naming convention.
    phase : str
        ``Phase1b`` or ``Phase1a`` (v2 only).

    Returns
    -------
    str
        E.g. ``CLASSIC.v2_Phase1b_Scen1_DK-Sor_Cal_Prior.nc``.
    """
    if convention == "v1":
        return f"{model}.{version}_Expt{scenario}_{site}_{cal_val}_{stage}.nc"
    return f"{model}.{version}_{phase}_Scen{scenario}_{site}_{cal_val}_{stage}.nc"


#: Real examples of every naming convention (name → expected kind).
EXAMPLE_NAMES: dict[str, str] = {
    "CLASSIC.v2_Phase1b_Scen1_DK-Sor_Cal_Prior.nc": "site_run",
    "CABLE-POP.v4.2_Phase1b_Scen3_US-Ton_Val_Posterior.nc": "site_run",
    "ORCHIDEE.v3_Expt1_DK-Sor_Cal_Temporal.nc": "site_run",
    "JULES.v7.4_global_0.5deg_monthly_2001-2020_Posterior.nc": "global_run",
    "DK-Sor_daily_aggregated_1997-2014_FLUXNET2015_Flux.nc": "observation",
    "AU-Tum_2002-2017_OzFlux_Flux.nc": "observation",
    "CABLE-POP.v4.2_Phase1b_Scen1_parameters.csv": "parameters",
    "AU-Tum_2002-2017_OzFlux_Met.nc": "unrecognised",
    "CLASSIC.v2_Phase1b_Scen1_DK-Sor_Cal_Post.nc": "unrecognised",
    "README.md": "unrecognised",
}


# ---------------------------------------------------------------------------------------------
# Helpers
# ---------------------------------------------------------------------------------------------

def _dates(start: dt.date, n_days: int, calendar: str) -> list:
    """Calendar dates of ``n_days`` consecutive model days from ``start`` in ``calendar``."""
    units = f"days since {start.isoformat()} 00:00:00"
    return list(cftime.num2date(np.arange(n_days), units, calendar=calendar))


def _day_of_year_phase(dates: Sequence) -> np.ndarray:
    """Seasonal phase in radians (0 on 1 January, peak in mid-July at the maximum)."""
    doy = np.array([d.timetuple().tm_yday for d in dates], dtype=float)
    return 2.0 * np.pi * (doy - 105.0) / 365.25


def _seasonal_table3(dates: Sequence, rng: np.random.Generator) -> dict[str, np.ndarray]:
    """Plausible daily series for every Table 3 variable (Table 3 units)."""
    n = len(dates)
    s = np.sin(_day_of_year_phase(dates))  # +1 mid-July, -1 mid-January
    noise = rng.standard_normal
    gpp = np.clip(4e-8 * (s + 0.6) + 3e-9 * noise(n), 0.0, None)
    reco = 2.2e-8 + 1.2e-8 * s + 2e-9 * noise(n)
    return {
        "nep": gpp - reco,  # kgC m-2 s-1, positive into the land (summer uptake)
        "hfls": 45.0 + 40.0 * s + 8.0 * noise(n),
        "hfss": 25.0 + 30.0 * s + 8.0 * noise(n),
        "gpp": gpp,
        "tran": np.clip(1.5e-5 * (s + 0.5), 0.0, None) + 1e-7 * np.abs(noise(n)),
        "evspsblsoi": 8e-6 + 5e-6 * s + 1e-6 * noise(n),
        "hfg": 5.0 * s + 2.0 * noise(n),
        "ts": 283.0 + 10.0 * s + noise(n),
        "mrso": 600.0 - 80.0 * s + 5.0 * noise(n),
        "mrsos": 30.0 - 6.0 * s + noise(n),
        "lai": np.clip(2.5 + 2.5 * s, 0.2, None) + 0.05 * np.abs(noise(n)),
        "cSoil": 17.2 + 0.001 * np.arange(n) / max(n, 1) + 0.0001 * noise(n),
        "cLiveBioAbove": 5.3 + 0.2 * s + 0.001 * noise(n),
        "reco": reco,
    }


def _dest(directory: str | os.PathLike[str], name: str) -> Path:
    folder = Path(directory)
    folder.mkdir(parents=True, exist_ok=True)
    return folder / name


# ---------------------------------------------------------------------------------------------
# Site runs
# ---------------------------------------------------------------------------------------------

def write_site_run(directory: str | os.PathLike[str], *, model: str = "CLASSIC",
                   version: str = "v2", scenario: int = 1, site: str = "DK-Sor",
                   cal_val: str = "Cal", stage: str = "Prior", convention: str = "v2",
                   start: str = "2000-01-01", n_days: int = 731, calendar: str = "standard",
                   uncertainty: str | None = None, ensemble: int | None = None,
                   ensemble_dim: str = "ensemble", missing_days: Iterable[int] = (),
                   lat: float = 55.4849, lon: float = 11.6446, seed: int = 0,
                   variables: Iterable[str] | None = None, name: str | None = None) -> Path:
    """Write a model site run in the layout of the CalLMIP template file.

    Parameters
    ----------
    directory : str or path-like
        Folder to write into (created if needed).
    model, version, scenario, site, cal_val, stage, convention
        Name fields (see :func:`site_run_filename`); the global attributes agree with them.
    start : str
        First date, ``YYYY-MM-DD``. Time is written as ``days since <start - 1 day> 00:00``
        valued ``1 .. n_days`` like the template.
    n_days : int
        Number of time steps (model days in ``calendar``).
    calendar : str
        CF calendar of the time axis (``"standard"``, ``"noleap"``, ``"360_day"`` …).
    uncertainty : {None, "post_unc", "uc"}
        Also write posterior uncertainties ``<var>_<suffix>`` (positive, Table 3 units) for the
        CMIP variables the scenario optimises (``nep``, ``hfls``, ``hfss`` for Scen1).
    ensemble : int, optional
        Write this many members along a leading dimension called ``ensemble_dim``
        (variables ``(ensemble_dim, time, lat, lon)``) instead of a single run.
    ensemble_dim : str
        Name of the ensemble dimension (files use member / ensemble / realization / ens).
    missing_days : iterable of int
        Time indices written as the fill value 1e38 in every variable.
    lat, lon : float
        Site coordinates (scalar ``lat``/``lon`` and ``latitude``/``longitude`` variables).
    seed : int
        Random seed: the same arguments always give the same bytes of data.
    variables : iterable of str, optional
        Subset of Table 3 variables to write (default all 14).
    name : str, optional
        Write under this file name instead of the conventional one.

    Returns
    -------
    pathlib.Path
        The file written. Read raw values back with ``netCDF4.Dataset`` to build expectations.
    """
    fname = name or site_run_filename(model, version, scenario, site, cal_val, stage,
                                      convention)
    path = _dest(directory, fname)
    rng = np.random.default_rng(seed)
    first = dt.date.fromisoformat(start)
    day_before = first - dt.timedelta(days=1)
    dates = _dates(first, n_days, calendar)
    names = list(variables) if variables is not None else list(TEMPLATE_UNITS)
    n_members = ensemble or 0
    missing = np.asarray(sorted(set(missing_days)), dtype=int)

    with netCDF4.Dataset(path, "w", format="NETCDF3_CLASSIC") as nc:
        nc.createDimension("lon", 1)
        nc.createDimension("lat", 1)
        nc.createDimension("time", n_days)
        if n_members:
            nc.createDimension(ensemble_dim, n_members)
        v = nc.createVariable("lat", "f8", ())
        v.assignValue(lat)
        v = nc.createVariable("lon", "f8", ())
        v.assignValue(lon)
        v = nc.createVariable("longitude", "f8", ("lon",))
        v.setncatts({"standard_name": "Longitude", "long_name": "longitude",
                     "units": "degrees_east"})
        v[:] = [lon]
        v = nc.createVariable("latitude", "f8", ("lat",))
        v.setncatts({"long_name": "latitude", "standard_name": "Latitude",
                     "units": "degrees_north"})
        v[:] = [lat]
        t = nc.createVariable("time", "f8", ("time",))
        t.setncatts({"long_name": "time",
                     "units": f"days since {day_before.isoformat()} 00:00",
                     "calendar": calendar})
        t[:] = np.arange(1, n_days + 1, dtype="f8")

        dims = ((ensemble_dim,) if n_members else ()) + ("time", "lat", "lon")
        series = [_seasonal_table3(dates, rng) for _ in range(max(n_members, 1))]
        for var in names:
            data = np.stack([s[var] for s in series])  # (member, time)
            if not n_members:
                data = data[0]
            if missing.size:
                data[..., missing] = MODEL_FILL
            v = nc.createVariable(var, "f8", dims, fill_value=MODEL_FILL)
            v.setncatts({"long_name": var, "units": TEMPLATE_UNITS[var],
                         "coordinates": "latitude longitude"})
            v[:] = data[..., None, None]
        if uncertainty:
            optimised = SCENARIO_OPTIMISED.get(scenario, ("NEE", "Qle", "Qh"))
            for comp in optimised:
                var = OPTIMISED_CMIP[comp]
                if var not in names:
                    continue
                scale = 2e-9 if var == "nep" else 6.0
                unc = scale * (0.5 + rng.random(n_days))
                if missing.size:
                    unc[missing] = MODEL_FILL
                v = nc.createVariable(f"{var}_{uncertainty}", "f8", ("time", "lat", "lon"),
                                      fill_value=MODEL_FILL)
                v.setncatts({"long_name": f"posterior uncertainty (1 sd) of {var}",
                             "units": TEMPLATE_UNITS[var],
                             "coordinates": "latitude longitude"})
                v[:] = unc[:, None, None]
        nc.setncatts({
            "title": "synthetic CalLMIP test file",
            "Model": f"{model}.{version}",
            "CalLMIP_Phase": "Phase1b",
            "Calibration_Scenario": f"Scen{scenario}",
            "Calibration_stage": stage,
            "Cal_Val": "Calibration" if cal_val == "Cal" else "Validation",
        })
    return path


# ---------------------------------------------------------------------------------------------
# Observations
# ---------------------------------------------------------------------------------------------

def _obs_series(n: int, dates: Sequence, rng: np.random.Generator
                ) -> dict[str, np.ndarray]:
    s = np.sin(_day_of_year_phase(dates))
    return {
        "NEE": 0.5 - 3.0 * s + 0.8 * rng.standard_normal(n),  # gC m-2 d-1, summer uptake < 0
        "NEE_uc": 0.1 + 0.05 * rng.random(n),
        "Qle": 45.0 + 40.0 * s + 8.0 * rng.standard_normal(n),
        "Qle_uc": 2.0 + rng.random(n),
        "Qh": 25.0 + 30.0 * s + 8.0 * rng.standard_normal(n),
        "Qh_uc": 2.0 + rng.random(n),
    }


def _obs_global_attrs(site: str) -> dict[str, str]:
    return {
        "site_code": site,
        "site_name": f"synthetic {site}",
        "processing_description": (
            "Half-hourly PLUMBER2 flux observations aggregated to daily values (synthetic)."),
        "coordinates": "latitude longitude",
    }


def write_daily_obs(directory: str | os.PathLike[str], *, site: str = "DK-Sor",
                    year_start: int = 2000, year_end: int = 2001, nan_fraction: float = 0.3,
                    lat: float = 55.4859, lon: float = 11.6446, seed: int = 0,
                    uncertainties: bool = True, name: str | None = None) -> Path:
    """Write a CalLMIP Phase 1b daily observation file (layout of the real ones).

    NETCDF3 64-bit offset; dims ``time, y, x``; ``time`` float64 in
    ``seconds since <year_start>-01-01 00:00:00`` (0, 86400, …) covering whole years;
    ``latitude(y)``, ``longitude(x)``; float32 ``NEE_daily`` (gC/m2/d, positive to the
    atmosphere), ``Qle_daily``, ``Qh_daily`` (W/m2) and ``*_uc_daily`` on ``(time,)`` with
    ``_FillValue`` 1e20 on the days that are missing.

    Parameters
    ----------
    directory : str or path-like
        Folder to write into.
    site : str
        Site id; the file is ``<site>_daily_aggregated_<Y0>-<Y1>_FLUXNET2015_Flux.nc``.
    year_start, year_end : int
        Whole calendar years covered.
    nan_fraction : float
        Fraction of days (chosen at random, independently per variable) written as fill.
    lat, lon : float
        Site coordinates.
    seed : int
        Random seed.
    uncertainties : bool
        Write the ``*_uc_daily`` variables.
    name : str, optional
        File name to use instead of the conventional one.

    Returns
    -------
    pathlib.Path
        The file written.
    """
    fname = name or f"{site}_daily_aggregated_{year_start}-{year_end}_FLUXNET2015_Flux.nc"
    path = _dest(directory, fname)
    rng = np.random.default_rng(seed)
    first = dt.date(year_start, 1, 1)
    n = (dt.date(year_end, 12, 31) - first).days + 1
    dates = _dates(first, n, "standard")
    data = _obs_series(n, dates, rng)
    with netCDF4.Dataset(path, "w", format="NETCDF3_64BIT_OFFSET") as nc:
        nc.createDimension("time", n)
        nc.createDimension("y", 1)
        nc.createDimension("x", 1)
        for comp, units in (("NEE", "gC/m2/d"), ("Qle", "W/m2"), ("Qh", "W/m2")):
            gap = rng.random(n) < nan_fraction
            names = [(f"{comp}_daily", comp)]
            if uncertainties:
                names.append((f"{comp}_uc_daily", f"{comp}_uc"))
            for vname, key in names:
                v = nc.createVariable(vname, "f4", ("time",), fill_value=np.float32(OBS_FILL))
                v.setncatts({"units": units, "long_name": vname,
                             "Gap-filled_%": float(round(100 * gap.mean(), 2))})
                values = data[key].astype("f4")
                values[gap] = OBS_FILL
                v[:] = values
        t = nc.createVariable("time", "f8", ("time",), fill_value=np.nan)
        t.setncatts({"units": f"seconds since {year_start}-01-01 00:00:00",
                     "calendar": "standard"})
        t[:] = np.arange(n, dtype="f8") * 86400.0
        v = nc.createVariable("latitude", "f8", ("y",), fill_value=np.nan)
        v.setncatts({"units": "degrees_north", "standard_name": "latitude"})
        v[:] = [lat]
        v = nc.createVariable("longitude", "f8", ("x",), fill_value=np.nan)
        v.setncatts({"units": "degrees_east", "standard_name": "longitude"})
        v[:] = [lon]
        nc.setncatts(_obs_global_attrs(site))
    return path


def write_phase1a_obs(directory: str | os.PathLike[str], *, site: str = "DK-Sor",
                      year_start: int = 2000, year_end: int = 2001, nan_fraction: float = 0.3,
                      lat: float = 55.4859, lon: float = 11.6446, seed: int = 0) -> Path:
    """Write a Phase 1a-like daily observation file: NETCDF4 with dims ``(time, x)`` only.

    Same name convention and variables as :func:`write_daily_obs`, but ``latitude(x)`` and
    ``longitude(x)`` and ``missing_value`` attributes, as in the real Phase 1a DK-Sor file.

    Returns
    -------
    pathlib.Path
        The file written.
    """
    fname = f"{site}_daily_aggregated_{year_start}-{year_end}_FLUXNET2015_Flux.nc"
    path = _dest(directory, fname)
    rng = np.random.default_rng(seed)
    first = dt.date(year_start, 1, 1)
    n = (dt.date(year_end, 12, 31) - first).days + 1
    data = _obs_series(n, _dates(first, n, "standard"), rng)
    with netCDF4.Dataset(path, "w", format="NETCDF4") as nc:
        nc.createDimension("time", None)
        nc.createDimension("x", 1)
        t = nc.createVariable("time", "f8", ("time",))
        t.setncatts({"standard_name": "time", "units": f"seconds since {year_start}-01-01 00:00:00",
                     "calendar": "standard", "axis": "T"})
        t[:] = np.arange(n, dtype="f8") * 86400.0
        for comp, units in (("NEE", "gC/m2/d"), ("Qh", "W/m2"), ("Qle", "W/m2")):
            gap = rng.random(n) < nan_fraction
            for vname, key in ((f"{comp}_daily", comp), (f"{comp}_uc_daily", f"{comp}_uc")):
                v = nc.createVariable(vname, "f4", ("time",), fill_value=np.float32(OBS_FILL))
                v.setncatts({"units": units, "missing_value": np.float32(OBS_FILL)})
                values = data[key].astype("f4")
                values[gap] = OBS_FILL
                v[:] = values
        for vname, units, value in (("latitude", "degrees_north", lat),
                                    ("longitude", "degrees_east", lon)):
            v = nc.createVariable(vname, "f8", ("x",), fill_value=np.nan)
            v.setncatts({"units": units, "missing_value": np.nan})
            v[:] = [value]
        nc.setncatts(_obs_global_attrs(site))
    return path


def write_plumber2_flux(directory: str | os.PathLike[str], *, site: str = "AU-Tum",
                        year_start: int = 2002, year_end: int = 2002,
                        collection: str = "FLUXNET2015", n_days: int | None = None,
                        gapfilled_steps: Sequence[int] | None = None,
                        lat: float = -35.6566, lon: float = 148.1517, seed: int = 0) -> Path:
    """Write a PLUMBER2 original half-hourly flux file.

    Name ``<site>_<Y0>-<Y1>_<collection>_Flux.nc``; NETCDF4; dims ``(time, y, x)``; ``time`` in
    ``seconds since <Y0>-01-01 00:00:00`` starting at 0 with a 1800 s step (each stamp is the
    start of its half hour); ``latitude(y, x)``, ``longitude(y, x)``. Variables (float32,
    ``(time, y, x)``): ``NEE`` umol m-2 s-1 positive to the atmosphere, ``NEE_qc``; ``Qle``,
    ``Qle_qc``; ``Qh``, ``Qh_qc`` (W m-2); for FLUXNET2015 also ``NEE_uc``, ``Qle_cor_uc``,
    ``Qh_cor_uc``. QC 0 is measured, >0 gap-filled. OzFlux files have no uncertainties.

    Parameters
    ----------
    directory : str or path-like
        Folder to write into.
    site : str
        Site id.
    year_start, year_end : int
        Years in the name; the file covers them entirely unless ``n_days`` is given.
    collection : {"FLUXNET2015", "LaThuile", "OzFlux"}
        PLUMBER2 source collection; ``OzFlux`` omits the uncertainties.
    n_days : int, optional
        Number of days written (default: every day of the years).
    gapfilled_steps : sequence of int, optional
        Number of gap-filled half hours on each day (same for every variable, positions drawn at
        random). Default: random 0..24 per day and variable, with day 0 holding exactly 12 (25 %,
        kept) and day 1 exactly 13 (> 25 %, rejected) for every variable.
    lat, lon : float
        Site coordinates.
    seed : int
        Random seed.

    Returns
    -------
    pathlib.Path
        The file written.
    """
    path = _dest(directory, f"{site}_{year_start}-{year_end}_{collection}_Flux.nc")
    rng = np.random.default_rng(seed)
    first = dt.date(year_start, 1, 1)
    if n_days is None:
        n_days = (dt.date(year_end, 12, 31) - first).days + 1
    n = n_days * HALF_HOURS
    hours = (np.arange(n) % HALF_HOURS) / 2.0
    dates = _dates(first, n_days, "standard")
    season = np.repeat(np.sin(_day_of_year_phase(dates)), HALF_HOURS)
    sun = np.clip(np.sin(np.pi * (hours - 6.0) / 12.0), 0.0, None)  # daylight 6..18 h
    values = {
        "NEE": 2.0 - 10.0 * sun * (season + 1.2) + 1.5 * rng.standard_normal(n),
        "Qle": 20.0 + 250.0 * sun * (season + 1.2) / 2.2 + 15.0 * rng.standard_normal(n),
        "Qh": -10.0 + 200.0 * sun * (season + 1.2) / 2.2 + 15.0 * rng.standard_normal(n),
    }
    uncs = {"NEE": "NEE_uc", "Qle": "Qle_cor_uc", "Qh": "Qh_cor_uc"}
    units = {"NEE": "umol/m2/s", "Qle": "W/m2", "Qh": "W/m2"}
    with netCDF4.Dataset(path, "w", format="NETCDF4") as nc:
        nc.createDimension("time", n)
        nc.createDimension("y", 1)
        nc.createDimension("x", 1)
        t = nc.createVariable("time", "f8", ("time",))
        t.setncatts({"units": f"seconds since {year_start}-01-01 00:00:00",
                     "calendar": "standard"})
        t[:] = np.arange(n, dtype="f8") * 1800.0
        for vname, units_, value in (("latitude", "degrees_north", lat),
                                     ("longitude", "degrees_east", lon)):
            v = nc.createVariable(vname, "f4", ("y", "x"))
            v.setncatts({"units": units_})
            v[:] = [[value]]
        for var, data in values.items():
            if gapfilled_steps is None:
                per_day = rng.integers(0, 25, n_days)
                per_day[:2] = (12, 13)[: min(2, n_days)]
            else:
                per_day = np.asarray(gapfilled_steps, dtype=int)
            qc = np.zeros((n_days, HALF_HOURS), dtype="f4")
            for d, k in enumerate(per_day):
                qc[d, rng.choice(HALF_HOURS, size=int(k), replace=False)] = rng.integers(1, 4, k)
            v = nc.createVariable(var, "f4", ("time", "y", "x"))
            v.setncatts({"units": units[var], "long_name": var})
            v[:] = data.astype("f4")[:, None, None]
            v = nc.createVariable(f"{var}_qc", "f4", ("time", "y", "x"))
            v.setncatts({"units": "-", "long_name": f"{var} quality control flag"})
            v[:] = qc.reshape(n)[:, None, None]
            if collection != "OzFlux":
                u = np.abs(0.1 * data) + (0.5 if var == "NEE" else 5.0) * rng.random(n)
                v = nc.createVariable(uncs[var], "f4", ("time", "y", "x"))
                v.setncatts({"units": units[var], "long_name": f"{var} joint uncertainty"})
                v[:] = u.astype("f4")[:, None, None]
        nc.setncatts({"site_code": site, "PLUMBER2_collection": collection})
    return path


# ---------------------------------------------------------------------------------------------
# Global runs
# ---------------------------------------------------------------------------------------------

def write_global_run(directory: str | os.PathLike[str], *, model: str = "JULES",
                     version: str = "v7.4", stage: str = "Posterior", resolution_deg: float = 10.0,
                     year_start: int = 2001, year_end: int = 2002, uncertainty: bool = False,
                     ensemble: int | None = None, ensemble_dim: str = "realization",
                     seed: int = 0) -> Path:
    """Write a global monthly run on ``(time, lat, lon)`` in the protocol naming.

    Longitudes are cell centres in ``[0, 360)`` and latitudes run north to south, so the reader
    has to re-centre and sort both. Ocean cells (a fixed band of longitudes) hold ``NaN``.

    Parameters
    ----------
    directory : str or path-like
        Folder to write into.
    model, version, stage : str
        Name fields.
    resolution_deg : float
        Grid spacing in degrees; the name carries ``<resolution_deg:g>deg``.
    year_start, year_end : int
        Years covered (one time step per month, ``days since <year_start>-01-01``).
    uncertainty : bool
        Also write ``nep_post_unc``.
    ensemble : int, optional
        Number of members along ``ensemble_dim`` (a leading dimension).
    ensemble_dim : str
        Name of the ensemble dimension.
    seed : int
        Random seed.

    Returns
    -------
    pathlib.Path
        The file written (``<model>.<version>_global_<res>deg_monthly_<Y0>-<Y1>_<stage>.nc``).
    """
    fname = (f"{model}.{version}_global_{resolution_deg:g}deg_monthly_{year_start}-{year_end}"
             f"_{stage}.nc")
    path = _dest(directory, fname)
    rng = np.random.default_rng(seed)
    lat = np.arange(90.0 - resolution_deg / 2, -90.0, -resolution_deg)
    lon = np.arange(resolution_deg / 2, 360.0, resolution_deg)
    months = [dt.date(y, m, 1) for y in range(year_start, year_end + 1) for m in range(1, 13)]
    days = np.array([(d - dt.date(year_start, 1, 1)).days for d in months], dtype="f8")
    nt, ny, nx = len(months), lat.size, lon.size
    ocean = (lon > 200.0) & (lon < 240.0)
    season = np.sin(2 * np.pi * (np.array([d.month for d in months]) - 4) / 12.0)
    shape = ((ensemble,) if ensemble else ()) + (nt, ny, nx)
    lead = (ensemble_dim,) if ensemble else ()
    base = np.cos(np.deg2rad(lat))[:, None] * np.ones(nx)[None, :]
    fields = {
        "nep": ("kgC m-2 s-1", 1e-8 * base * season[:, None, None]),
        "gpp": ("kgC m-2 s-1", 5e-8 * base * (season[:, None, None] + 1.2)),
        "hfls": ("W m-2", 60.0 * base * (season[:, None, None] + 1.2)),
    }
    with netCDF4.Dataset(path, "w", format="NETCDF4") as nc:
        if ensemble:
            nc.createDimension(ensemble_dim, ensemble)
        nc.createDimension("time", None)
        nc.createDimension("lat", ny)
        nc.createDimension("lon", nx)
        t = nc.createVariable("time", "f8", ("time",))
        t.setncatts({"units": f"days since {year_start}-01-01 00:00:00", "calendar": "standard"})
        t[:] = days
        v = nc.createVariable("lat", "f8", ("lat",))
        v.setncatts({"units": "degrees_north"})
        v[:] = lat
        v = nc.createVariable("lon", "f8", ("lon",))
        v.setncatts({"units": "degrees_east"})
        v[:] = lon
        items = list(fields.items())
        if uncertainty:
            items.append(("nep_post_unc", ("kgC m-2 s-1", 2e-9 * base[None] * np.ones((nt, 1, 1)))))
        for var, (units, clean) in items:
            data = np.broadcast_to(clean, shape) + 1e-3 * np.abs(clean).max() * rng.standard_normal(
                shape)
            data = np.where(ocean, np.nan, data)  # ocean is the last (lon) axis
            v = nc.createVariable(var, "f4", lead + ("time", "lat", "lon"),
                                  fill_value=np.float32(MODEL_FILL))
            v.setncatts({"units": units})
            v[:] = np.ma.masked_invalid(data).astype("f4")
        nc.setncatts({"Model": f"{model}.{version}", "CalLMIP_Phase": "Phase1b",
                      "Calibration_stage": stage})
    return path


# ---------------------------------------------------------------------------------------------
# Parameter tables
# ---------------------------------------------------------------------------------------------

PARAMETER_HEADER = (
    "parameter", "long_name", "process", "pft", "units", "prior_value", "prior_min",
    "prior_max", "prior_sd", "posterior_value", "posterior_sd", "posterior_p05",
    "posterior_p95", "sensitivity_rank",
)


def parameter_rows(n: int = 6, seed: int = 0) -> list[dict[str, str]]:
    """Rows of a plausible parameter table (strings, as written in the CSV).

    The last parameter's posterior lies within 1 % of its prior maximum (edge-hitting) and the
    second has no PFT and an unknown prior sd (empty cells).
    """
    rng = np.random.default_rng(seed)
    processes = ["photosynthesis", "respiration", "hydrology", "phenology", "allocation",
                 "energy"]
    rows = []
    for i in range(n):
        lo, hi = sorted(rng.uniform(0.0, 10.0, 2))
        hi = max(hi, lo + 1.0)
        prior = lo + 0.5 * (hi - lo)
        post = lo + rng.uniform(0.2, 0.8) * (hi - lo)
        if i == n - 1:
            post = hi - 0.005 * (hi - lo)
        sd = (hi - lo) / 4
        post_sd = sd * rng.uniform(0.2, 0.9)
        rows.append({
            "parameter": f"p{i}_{processes[i % 6][:4]}",
            "long_name": f"parameter {i} of {processes[i % 6]}",
            "process": processes[i % 6],
            "pft": "" if i == 1 else ("TeBD" if i % 2 else "NET"),
            "units": "1",
            "prior_value": f"{prior:.6g}", "prior_min": f"{lo:.6g}", "prior_max": f"{hi:.6g}",
            "prior_sd": "" if i == 1 else f"{sd:.6g}",
            "posterior_value": f"{post:.6g}", "posterior_sd": f"{post_sd:.6g}",
            "posterior_p05": f"{post - 1.645 * post_sd:.6g}",
            "posterior_p95": f"{post + 1.645 * post_sd:.6g}",
            "sensitivity_rank": str(i + 1),
        })
    return rows


def write_parameters(directory: str | os.PathLike[str], *, model: str = "CABLE-POP",
                     version: str = "v4.2", scenario: int = 1,
                     rows: Sequence[dict[str, str]] | None = None,
                     columns: Sequence[str] | None = None, seed: int = 0,
                     name: str | None = None) -> Path:
    """Write a parameter table ``<model>.<version>_Phase1b_Scen<N>_parameters.csv``.

    Parameters
    ----------
    directory : str or path-like
        Folder to write into.
    model, version : str
        Name fields.
    scenario : int
        Calibration scenario.
    rows : sequence of dict, optional
        Rows to write (default :func:`parameter_rows`).
    columns : sequence of str, optional
        Header to write (default :data:`PARAMETER_HEADER`); keys missing from a row are empty.
    seed : int
        Seed for the default rows.
    name : str, optional
        File name to use instead of the conventional one.

    Returns
    -------
    pathlib.Path
        The CSV written.
    """
    path = _dest(directory, name or f"{model}.{version}_Phase1b_Scen{scenario}_parameters.csv")
    header = list(columns or PARAMETER_HEADER)
    data = rows if rows is not None else parameter_rows(seed=seed)
    with open(path, "w", newline="", encoding="utf-8") as fh:
        writer = csv.DictWriter(fh, fieldnames=header, extrasaction="ignore")
        writer.writeheader()
        for row in data:
            writer.writerow({k: row.get(k, "") for k in header})
    return path


# ---------------------------------------------------------------------------------------------
# Broken files
# ---------------------------------------------------------------------------------------------

def write_garbage(path: str | os.PathLike[str], content: bytes = b"this is not a NetCDF file\n"
                  ) -> Path:
    """Write ``content`` (default: plain text; ``b""`` for an empty file) at ``path``."""
    p = Path(path)
    p.parent.mkdir(parents=True, exist_ok=True)
    p.write_bytes(content)
    return p


def write_truncated(source: str | os.PathLike[str], dest: str | os.PathLike[str],
                    fraction: float = 0.5) -> Path:
    """Copy the first ``fraction`` of the bytes of ``source`` to ``dest`` (a cut-off download)."""
    data = Path(source).read_bytes()
    return write_garbage(dest, data[: max(1, int(len(data) * fraction))])
