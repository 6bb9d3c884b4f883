"""Check submission files against the CalLMIP protocol v2 (``callmip check``).

Every file gets a :class:`CheckReport` listing *errors* (the file breaks the protocol and must be
fixed before upload) and *warnings* (the file is usable but differs from what the protocol asks,
or looks suspicious). Checking never raises: an unreadable file, an unexpected structure or a bug
in a check becomes an error item naming the file and the problem.

What is checked (protocol v2 §4–§7 and the Phase 1b checklist):

* the file name (v2, v1, global run, observation, parameter table);
* that the file is readable (missing, empty, truncated, not NetCDF);
* the global attributes of §6.3 against the name;
* the Table 3 variables: presence, units, entirely missing data, plausible ranges, the sign of
  ``nep``;
* the dimensions ``(time, lat, lon)`` with one cell, the site coordinates and the site's role;
* the time axis: units, daily steps, calendar, the period and length of the observations.
  Every encoding §6.2 permits is accepted (``days since <first day>`` valued ``0, 1, 2, …``,
  ``1, 2, 3, …`` or ``0.5, 1.5, …``, and the template's ``days since <day before>`` valued
  ``1, 2, 3, …``), read as :func:`loaders.readers.choose_time_reading` decides with the first
  day of the observations where known; a reading that differs from CF decoding (the 1-based
  day count) is named in a ``time_reading`` warning, and a ``time_span`` error lists the
  dates under each reading;
* posterior uncertainties (``<var>_post_unc`` or an ensemble dimension) of optimised variables.

Attribute values and names come from submitted files and are untrusted: they are quoted with
``repr`` (so invisible characters show) and truncated, but never escaped for HTML here — that is
the job of whichever view renders them.
"""

from __future__ import annotations

import math
import os
import re
import warnings
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd

from loaders.naming import ParsedName, parse_name, site_run_name
from loaders.variables import (
    COMPARISON,
    ENSEMBLE_DIMS,
    SCENARIO_VARIABLES,
    TABLE3,
    UNCERTAINTY_SUFFIXES,
    VariableSpec,
    conversion_factor,
    strip_invisible,
    units_match,
)

#: Longest untrusted text (attribute value, units) quoted in a message.
MAX_TEXT = 200
#: Fraction of valid values outside ``valid_min``/``valid_max`` above which it is an error.
OUT_OF_RANGE_ERROR_FRACTION = 0.01
#: ``nep`` correlated with ``gpp`` below this looks like NEE (the opposite sign).
NEP_SIGN_R = -0.5
#: Coordinates further than this (degrees) from the site table are a warning, beyond
#: :data:`COORD_ERROR_DEG` an error.
COORD_WARN_DEG = 0.1
COORD_ERROR_DEG = 1.0
#: Values at or beyond this magnitude are fill values (as in :mod:`loaders.readers`).
FILL_THRESHOLD = 1e30

STANDARD_CALENDARS = ("standard", "gregorian", "proleptic_gregorian")
NOLEAP_CALENDARS = ("noleap", "365_day")
CAL_VAL_WORDS = {"Cal": "Calibration", "Val": "Validation"}
REQUIRED_PARAMETER_COLUMNS = ("parameter", "prior_value", "prior_min", "prior_max",
                              "posterior_value")
_UNCERTAIN_STAGES = ("Posterior", "Temporal", "Spatial")


# --------------------------------------------------------------------------------------------
# Report objects
# --------------------------------------------------------------------------------------------

@dataclass(frozen=True)
class CheckItem:
    """One problem found in a file.

    Attributes
    ----------
    code : str
        Short stable identifier (``units``, ``attribute_mismatch`` …) for scripts and tests.
    message : str
        Human-readable explanation naming the variable, attribute or file concerned.
    """

    code: str
    message: str

    def to_dict(self) -> dict[str, str]:
        """Return ``{"code": ..., "message": ...}``."""
        return {"code": self.code, "message": self.message}


@dataclass
class CheckReport:
    """The result of checking one file.

    Attributes
    ----------
    path : str
        The checked file.
    kind : str
        What the name says the file is (``site_run``, ``global_run``, ``observation``,
        ``parameters`` or ``unrecognised``).
    model, version, site, cal_val, stage : str or None
        Fields parsed from the name.
    scenario : int or None
        Calibration scenario (v1: experiment) number from the name.
    errors, warnings : list of CheckItem
        Problems that break the protocol, and problems that do not.
    skipped : str or None
        Why the file was not checked: it is not a submission at all (e.g. the CO2 forcing
        ``.txt`` beside the runs). A skipped file passes; in JSON it is a warning with the code
        ``skipped`` (the report's keys are a contract).
    """

    path: str
    kind: str = "unrecognised"
    model: str | None = None
    version: str | None = None
    scenario: int | None = None
    site: str | None = None
    cal_val: str | None = None
    stage: str | None = None
    errors: list[CheckItem] = field(default_factory=list)
    warnings: list[CheckItem] = field(default_factory=list)
    skipped: str | None = None

    @property
    def ok(self) -> bool:
        """``True`` when the file has no errors (warnings are allowed)."""
        return not self.errors

    @property
    def name(self) -> str:
        """The bare file name."""
        return Path(self.path).name

    @property
    def error_codes(self) -> list[str]:
        """Codes of the errors, in order."""
        return [item.code for item in self.errors]

    @property
    def warning_codes(self) -> list[str]:
        """Codes of the warnings, in order."""
        return [item.code for item in self.warnings]

    def error(self, code: str, message: str) -> None:
        """Record an error."""
        self.errors.append(CheckItem(code, message))

    def warn(self, code: str, message: str) -> None:
        """Record a warning."""
        self.warnings.append(CheckItem(code, message))

    def add(self, code: str, message: str, *, severe: bool) -> None:
        """Record an error when ``severe`` else a warning."""
        (self.error if severe else self.warn)(code, message)

    def to_dict(self) -> dict[str, Any]:
        """Return the JSON form used by ``callmip check --json``."""
        return {
            "path": self.path, "ok": self.ok, "kind": self.kind, "model": self.model,
            "version": self.version, "scenario": self.scenario, "site": self.site,
            "cal_val": self.cal_val, "stage": self.stage,
            "errors": [item.to_dict() for item in self.errors],
            "warnings": [item.to_dict() for item in self.warnings],
        }


def format_report(report: CheckReport) -> str:
    """Format a report as readable text for the terminal.

    Parameters
    ----------
    report : CheckReport
        The report of one file.

    Returns
    -------
    str
        ``PASS <path>`` or ``FAIL <path>`` with a summary, then one line per item:
        ``  error [code] message`` / ``  warning [code] message``.
    """
    if report.skipped:
        return f"SKIP {report.path}  ({report.skipped})"
    status = "PASS" if report.ok else "FAIL"
    fields = [report.kind]
    if report.model:
        fields.append(f"{report.model}.{report.version}")
    if report.scenario is not None:
        fields.append(f"Scen{report.scenario}")
    fields += [v for v in (report.site, report.cal_val, report.stage) if v]
    n_err, n_warn = len(report.errors), len(report.warnings)
    summary = (f"{n_err} error{'s' if n_err != 1 else ''}, "
               f"{n_warn} warning{'s' if n_warn != 1 else ''}")
    lines = [f"{status} {report.path}  [{' '.join(fields)}]  ({summary})"]
    lines += [f"  error [{item.code}] {item.message}" for item in report.errors]
    lines += [f"  warning [{item.code}] {item.message}" for item in report.warnings]
    return "\n".join(lines)


def quote(value: Any, limit: int = MAX_TEXT) -> str:
    r"""Quote untrusted text for a message: ``repr`` of at most ``limit`` characters.

    ``repr`` shows invisible characters (``'kg m-2\\u200b'``) and control characters escaped;
    longer text is cut and marked with ``…``.
    """
    text = value if isinstance(value, str) else str(value)
    if len(text) > limit:
        return repr(text[:limit]) + f"… ({len(text)} characters)"
    return repr(text)


# --------------------------------------------------------------------------------------------
# Observation index (--obs-root)
# --------------------------------------------------------------------------------------------

@dataclass(frozen=True)
class ObservedPeriod:
    """The days a site run must cover."""

    start: pd.Timestamp
    end: pd.Timestamp
    n_days: int | None
    source: str

    def describe(self) -> str:
        """``1997-01-01 to 2014-12-31 (source)``."""
        return f"{self.start:%Y-%m-%d} to {self.end:%Y-%m-%d} ({self.source})"


class ObservationIndex:
    """Daily observation files found under a folder, looked up by site (built once).

    Parameters
    ----------
    root : str or path-like or None
        Folder searched recursively for ``<Site>_daily_aggregated_*_FLUXNET2015_Flux.nc``.
        ``None`` gives an empty index (no observation checks).
    """

    def __init__(self, root: str | os.PathLike[str] | None = None) -> None:
        self.root = None if root is None else str(root)
        self.problem: str | None = None
        self._by_site: dict[str, list[dict[str, Any]]] = {}
        self._periods: dict[str, ObservedPeriod | str] = {}
        if self.root is None:
            return
        try:
            from loaders.catalog import build_catalog

            cat = build_catalog(self.root)
        except Exception as exc:  # a missing or unreadable folder becomes a warning per file
            self.problem = f"observation folder {self.root!r} cannot be listed: {exc}"
            return
        obs = cat[(cat["kind"] == "observation") & (cat["convention"] == "obs_daily")]
        for row in obs.to_dict(orient="records"):
            self._by_site.setdefault(str(row["site"]), []).append(row)

    @property
    def active(self) -> bool:
        """Whether an observation folder was given."""
        return self.root is not None

    def find(self, site: str | None, phase: str | None = None) -> str | None:
        """Return the observation file of ``site`` (the longest record), or ``None``.

        For a Phase 1a run, files whose path mentions ``Phase1a`` are preferred.
        """
        rows = self._by_site.get(str(site), [])
        if not rows:
            return None
        if phase:
            same_phase = [r for r in rows if phase.lower() in str(r["path"]).lower()]
            rows = same_phase or rows

        def length(row: dict[str, Any]) -> tuple[int, int, str]:
            y0, y1 = row.get("year_start"), row.get("year_end")
            span = int(y1) - int(y0) if pd.notna(y0) and pd.notna(y1) else -1
            return span, int(y1) if pd.notna(y1) else -1, str(row["path"])

        return str(max(rows, key=length)["path"])

    def period(self, path: str) -> ObservedPeriod | str:
        """Dates of an observation file (cached), or a message saying why they are unknown."""
        if path not in self._periods:
            self._periods[path] = _observed_period(path)
        return self._periods[path]


def _observed_period(path: str) -> ObservedPeriod | str:
    from loaders.readers import decode_daily_time, open_raw

    try:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            raw = open_raw(path)
            try:
                dates = decode_daily_time(raw["time"], path)
            finally:
                raw.close()
        dates = dates.dropna()
        if len(dates) == 0:
            return f"observation file {Path(path).name} has no dates"
        return ObservedPeriod(dates.min(), dates.max(), len(dates), Path(path).name)
    except Exception as exc:
        return f"observation file {Path(path).name} cannot be read: {exc}"


@dataclass
class _Context:
    sites: pd.DataFrame | None
    obs: ObservationIndex


def _default_sites() -> pd.DataFrame | None:
    try:
        from loaders.sites import load_sites

        return load_sites()
    except Exception:  # the site table is a nicety; checks that need it are skipped
        return None


# --------------------------------------------------------------------------------------------
# Public entry points
# --------------------------------------------------------------------------------------------

def check_paths(paths: list[str | os.PathLike[str]] | tuple[str | os.PathLike[str], ...],
                obs_root: str | os.PathLike[str] | None = None) -> list[CheckReport]:
    """Check files and folders (walked recursively); one report per file.

    Parameters
    ----------
    paths : sequence of str or path-like
        Files or folders. A path that does not exist gets a report with an ``unreadable`` error.
    obs_root : str or path-like, optional
        Folder of observation files; indexed once for all files.

    Returns
    -------
    list of CheckReport
        In the order given, files of a folder sorted by path; each file once.
    """
    from loaders.catalog import iter_files

    ctx = _Context(sites=_default_sites(), obs=ObservationIndex(obs_root))
    reports: list[CheckReport] = []
    seen: set[str] = set()
    for path in paths:
        text = str(path)
        p = Path(text)
        if p.is_dir():
            try:
                files = sorted(f.path for f in iter_files(p))
            except Exception as exc:
                report = CheckReport(path=text)
                report.error("unreadable", f"folder {text} cannot be listed: {exc}")
                reports.append(report)
                continue
        else:
            files = [text]
        for file in files:
            key = os.path.realpath(file)
            if key in seen:
                continue
            seen.add(key)
            reports.append(_check_file(file, ctx))
    return reports


def check_file(path: str | os.PathLike[str], obs_root: str | os.PathLike[str] |
               ObservationIndex | None = None, sites: pd.DataFrame | None = None
               ) -> CheckReport:
    """Check one file against the protocol.

    Parameters
    ----------
    path : str or path-like
        The file.
    obs_root : str, path-like or ObservationIndex, optional
        Folder of observation files (or an index built beforehand) for the length and period
        of the time axis.
    sites : pandas.DataFrame, optional
        Site table (default :func:`loaders.sites.load_sites`).

    Returns
    -------
    CheckReport
        Never raises: every problem is an item of the report.
    """
    index = obs_root if isinstance(obs_root, ObservationIndex) else ObservationIndex(obs_root)
    ctx = _Context(sites=sites if sites is not None else _default_sites(), obs=index)
    return _check_file(str(path), ctx)


def _check_file(path: str, ctx: _Context) -> CheckReport:
    parsed = parse_name(path)
    report = CheckReport(path=path, kind=parsed.kind, model=parsed.model,
                         version=parsed.version, scenario=parsed.scenario, site=parsed.site,
                         cal_val=parsed.cal_val, stage=parsed.stage)
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            _dispatch(path, parsed, report, ctx)
    except Exception as exc:  # a bug in a check must not hide the other files
        report.error("internal", f"the checker failed on {Path(path).name}: "
                                 f"{type(exc).__name__}: {exc}")
    return report


#: Endings of files that can be submissions (runs, observations, parameter tables).
SUBMISSION_SUFFIXES = (".nc", ".nc4", ".csv")


def _dispatch(path: str, parsed: ParsedName, report: CheckReport, ctx: _Context) -> None:
    from loaders.model_info import check_model_info, is_model_info

    if is_model_info(path, parsed):  # the §12 model information table
        check_model_info(path, parsed, report)
        return
    if parsed.kind == "unrecognised" and not path.lower().endswith(SUBMISSION_SUFFIXES):
        report.skipped = (f"not a submission: only {', '.join(SUBMISSION_SUFFIXES)} files "
                          "named by the protocol are checked")
        report.warn("skipped", report.skipped)
        return
    _check_name(parsed, report)
    if parsed.kind == "unrecognised":
        if path.lower().endswith(".nc"):
            _readable(path, report)
        return
    if parsed.kind == "parameters":
        _check_parameters(path, report)
        return
    raw = _readable(path, report)
    if raw is None:
        return
    try:
        if parsed.kind == "observation":
            _check_observation(path, parsed, report, ctx)
        elif parsed.kind == "global_run":
            _check_global_run(path, parsed, raw, report)
        else:
            _check_site_run(path, parsed, raw, report, ctx)
    finally:
        raw.close()


# --------------------------------------------------------------------------------------------
# Name and readability
# --------------------------------------------------------------------------------------------

def _check_name(parsed: ParsedName, report: CheckReport) -> None:
    if parsed.kind == "unrecognised":
        report.error("name", f"file name {parsed.name!r} is not recognised: {parsed.reason}")
        return
    if parsed.convention == "v1":
        v2_stage = parsed.stage if parsed.stage in ("Prior", "Posterior") else "Posterior"
        suggestion = site_run_name(parsed.model or "", parsed.version or "",
                                   parsed.scenario or 1, parsed.site or "",
                                   parsed.cal_val or "", v2_stage)
        extra = ("" if parsed.stage in ("Prior", "Posterior") else
                 f" (v2 has no {parsed.stage} stage: validation runs are Posterior runs at the "
                 "validation sites)")
        report.warn("v1_name", f"protocol v1 file name; protocol v2 §7 names site runs "
                               "<model>.<version>_Phase1b_Scen<N>_<Site>_<Cal|Val>"
                               f"_<Prior|Posterior>.nc, here {suggestion}{extra}")
    if parsed.kind in ("site_run", "parameters") and parsed.scenario not in SCENARIO_VARIABLES:
        report.add("scenario", f"scenario number {parsed.scenario} in the name is not one of "
                               f"the calibration scenarios 1-6 of protocol v2 §3.1",
                   severe=parsed.convention != "v1")


def _readable(path: str, report: CheckReport) -> Any:
    """Open ``path`` with :func:`loaders.readers.open_raw`; ``None`` after an ``unreadable``."""
    from loaders.readers import CalLMIPFileError, open_raw, sniff_netcdf

    name = Path(path).name
    try:
        sniff_netcdf(path)  # empty, not NetCDF, or a truncated classic file
    except CalLMIPFileError as exc:
        report.error("unreadable", str(exc))
        return None
    except Exception as exc:
        report.error("unreadable", f"{name}: cannot be read ({exc})")
        return None
    try:
        raw = open_raw(path)
    except CalLMIPFileError as exc:
        report.error("unreadable", str(exc))
        return None
    except Exception as exc:
        report.error("unreadable", f"{name}: cannot be opened as NetCDF ({exc})")
        return None
    return raw


# --------------------------------------------------------------------------------------------
# Site runs
# --------------------------------------------------------------------------------------------

def _check_site_run(path: str, parsed: ParsedName, raw: Any, report: CheckReport,
                    ctx: _Context) -> None:
    try:
        raw.load()
    except Exception as exc:
        report.error("unreadable", f"{Path(path).name}: data cannot be read ({exc})")
        return
    _check_attributes(parsed, raw.attrs, report)
    _check_site_dims(raw, report)
    _check_coordinates(parsed, raw, report, ctx.sites, severe=True)
    _check_variables(raw, report, required=True, data=True)
    _check_time(path, parsed, raw, report, ctx)
    _check_uncertainty(parsed, raw, report)


def _find_attr(attrs: dict[str, Any], key: str) -> tuple[str | None, Any]:
    if key in attrs:
        return key, attrs[key]
    for other, value in attrs.items():
        if str(other).lower() == key.lower():
            return str(other), value
    return None, None


def _check_attributes(parsed: ParsedName, attrs: dict[str, Any], report: CheckReport) -> None:
    v2 = parsed.convention == "v2"
    scen = f"Scen{parsed.scenario}"
    expected: dict[str, tuple[str, ...]] = {
        "Model": (parsed.model_id or "",),
        "CalLMIP_Phase": (parsed.phase or "",) if v2 else ("Phase1a", "Phase1b", "Phase1"),
        "Calibration_Scenario": (scen,) if v2 else (scen, f"Expt{parsed.scenario}"),
        "Calibration_stage": (parsed.stage or "",),
        "Cal_Val": (CAL_VAL_WORDS.get(parsed.cal_val or "", ""),),
    }
    note = "" if v2 else " (v1 file: not required before protocol v2)"
    for key, allowed in expected.items():
        found, value = _find_attr(attrs, key)
        if found is None:
            report.add("attribute_missing",
                       f"global attribute {key} is missing; protocol v2 §6.3 asks for "
                       f"{key}: {allowed[0]}{note}", severe=v2)
            continue
        if found != key:
            report.warn("attribute_name", f"global attribute {quote(found)} should be spelt "
                                          f"{key} (protocol v2 §6.3)")
        text = value if isinstance(value, str) else str(value)
        clean = strip_invisible(text)
        if text in allowed:
            continue
        if clean in allowed or clean.lower() in [a.lower() for a in allowed]:
            report.warn("attribute_variant",
                        f"global attribute {key} is {quote(text)}; write it exactly "
                        f"{allowed[0]!r} (no extra spaces, invisible characters or case changes)")
            continue
        report.add("attribute_mismatch",
                   f"global attribute {key} is {quote(text)} but the file name says "
                   f"{allowed[0]!r}{note}", severe=v2)


def _ensemble_dim(dims: tuple[str, ...]) -> str | None:
    for dim in dims:
        if str(dim).lower() in ENSEMBLE_DIMS:
            return str(dim)
    return None


def _spatial_dims(dims: tuple[str, ...]) -> tuple[tuple[str, ...], str | None, bool]:
    """Split an ensemble dim (first or last) off ``dims``: (rest, ensemble, well_placed)."""
    ens = _ensemble_dim(dims)
    if ens is None:
        return dims, None, True
    if dims[0] == ens:
        return dims[1:], ens, True
    if dims[-1] == ens:
        return dims[:-1], ens, True
    return tuple(d for d in dims if d != ens), ens, False


def _model_variables(raw: Any) -> list[str]:
    names = []
    for name in raw.data_vars:
        base = _base_name(str(name))
        if base in TABLE3:
            names.append(str(name))
    return names


def _base_name(name: str) -> str:
    for suffix in UNCERTAINTY_SUFFIXES:
        if name.endswith(suffix) and name[: -len(suffix)] in TABLE3:
            return name[: -len(suffix)]
    return name


def _check_variable_dims(ds: Any, report: CheckReport, expectation: str) -> None:
    """One ``dims`` error per set of model variables not laid out as (time, lat, lon)."""
    wrong: dict[tuple[str, ...], list[str]] = {}
    for name in _model_variables(ds):
        dims = tuple(str(d) for d in ds[name].dims)
        rest, _ens, well_placed = _spatial_dims(dims)
        if rest != ("time", "lat", "lon") or not well_placed:
            wrong.setdefault(dims, []).append(name)
    for dims, names in wrong.items():
        report.error("dims", f"{_plural('variable', names)} {', '.join(names)} "
                             f"{'has' if len(names) == 1 else 'have'} dims ({', '.join(dims)}); "
                             f"{expectation}")


def _check_site_dims(raw: Any, report: CheckReport) -> None:
    _check_variable_dims(raw, report, "protocol v2 §6.2 asks for (time, lat, lon) (an ensemble "
                                      "dimension may come first or last)")
    for dim in ("lat", "lon"):
        if dim in raw.sizes and raw.sizes[dim] != 1:
            report.error("dims", f"dimension {dim} has size {raw.sizes[dim]}; a site file has "
                                 "one grid cell (size 1)")


def _plural(word: str, items: list[Any]) -> str:
    return word if len(items) == 1 else word + "s"


def _coordinate(raw: Any, short: str, long: str) -> tuple[float | None, str | None]:
    scalars = raw.attrs.get("_scalar_lat_lon", {}) or {}
    if short in scalars:
        return float(scalars[short]), short
    for name in (short, long):
        if name in raw.variables and raw[name].size == 1:
            try:
                value = float(np.asarray(raw[name].values, dtype="float64").ravel()[0])
            except (TypeError, ValueError):
                continue
            if math.isfinite(value) and abs(value) < FILL_THRESHOLD:
                return value, name
    return None, None


def _check_coordinates(parsed: ParsedName, raw: Any, report: CheckReport,
                       sites: pd.DataFrame | None, *, severe: bool) -> None:
    lat, lat_name = _coordinate(raw, "lat", "latitude")
    lon, lon_name = _coordinate(raw, "lon", "longitude")
    if lat is None or lon is None:
        missing = [n for n, v in (("lat", lat), ("lon", lon)) if v is None]
        report.add("coordinates_missing",
                   f"no usable {' or '.join(missing)} value: protocol v2 §6.2 asks for scalar "
                   "lat and lon variables (degrees_north, degrees_east)", severe=severe)
    elif severe and (lat_name, lon_name) != ("lat", "lon"):
        report.warn("coordinates_missing",
                    f"coordinates are given as {lat_name}/{lon_name}; protocol v2 §6.2 asks "
                    "for variables named lat and lon (ME-org accepts no other names)")
    site = parsed.site
    if sites is None or site is None:
        return
    if site not in sites.index:
        report.warn("unknown_site", f"site {site} is not in the CalLMIP site table "
                                    "(assets/sites.csv)")
        return
    row = sites.loc[site]
    if lat is not None and lon is not None:
        dlat = abs(lat - float(row["lat"]))
        dlon = abs((lon - float(row["lon"]) + 180.0) % 360.0 - 180.0)
        dist = max(dlat, dlon)
        if dist > COORD_WARN_DEG:
            report.add("coordinates",
                       f"coordinates lat={lat:g}, lon={lon:g} are {dist:.2f}° from {site} "
                       f"(lat={float(row['lat']):g}, lon={float(row['lon']):g} in the site "
                       "table)", severe=dist > COORD_ERROR_DEG)
    role = str(row.get("role", ""))
    if parsed.kind == "site_run" and parsed.phase == "Phase1b" and parsed.cal_val:
        if role in ("Cal", "Val") and role != parsed.cal_val:
            word = CAL_VAL_WORDS[role].lower()
            report.warn("role", f"{site} is a {word} site in protocol v2 §2.3 but the file "
                                f"name says {parsed.cal_val}")
        elif role not in ("Cal", "Val"):
            report.warn("role", f"{site} is not one of the Phase 1b calibration or validation "
                                "sites (protocol v2 §2.3)")


def _values(da: Any) -> np.ndarray:
    values = np.asarray(da.values)
    if values.dtype.kind not in "fiu":
        raise TypeError(f"holds {values.dtype} data, not numbers")
    values = values.astype("float64", copy=False)
    return np.where(np.abs(values) < FILL_THRESHOLD, values, np.nan)


def _check_units(name: str, written: Any, spec: VariableSpec, report: CheckReport) -> None:
    if written is None:
        report.error("units", f"variable {name} has no units attribute; Table 3 asks for "
                              f"{spec.units!r}")
        return
    written = written if isinstance(written, str) else str(written)
    equivalent, exact = units_match(written, spec.units)
    if exact:
        return
    if equivalent:
        report.warn("units_variant", f"variable {name} has units {quote(written)}: the same "
                                     f"unit, but Table 3 asks for exactly {spec.units!r}")
        return
    factor = conversion_factor(written, spec.units)
    hint = (f" (the Explorer can convert it, but the protocol requires {spec.units!r})"
            if factor is not None else "")
    report.error("units", f"variable {name} has units {quote(written)}; Table 3 asks for "
                          f"{spec.units!r}{hint}")


def _check_variables(raw: Any, report: CheckReport, *, required: bool, data: bool) -> None:
    """Table 3 variables; ``required=False`` (global runs): absent ones are one warning."""
    lower = {str(n).lower(): str(n) for n in raw.data_vars}
    present, absent = [], []
    for spec in TABLE3.values():
        if spec.name not in raw.data_vars:
            near = lower.get(spec.name.lower())
            hint = f" (found {quote(near)}: names are case-sensitive)" if near else ""
            if not spec.required:
                report.warn("optional_missing", f"variable {spec.name} ({spec.long_name}) is "
                                                f"absent (optional in Table 3){hint}")
            elif required:
                report.error("variable_missing", f"required variable {spec.name} "
                                                 f"({spec.long_name}, {spec.units}) is missing"
                                                 f"{hint}")
            else:
                absent.append(spec.name + hint)
            continue
        present.append(spec.name)
        _check_units(spec.name, raw[spec.name].attrs.get("units"), spec, report)
        if data:
            _check_data(spec.name, raw[spec.name], spec, report)
    if not present and not required:
        report.error("variable_missing", "none of the Table 3 variables ("
                                         + ", ".join(TABLE3) + ") is in the file")
    elif absent:
        report.warn("variable_missing", f"Table 3 {_plural('variable', absent)} "
                                        f"{', '.join(absent)} absent (the variables of global "
                                        "runs are not fixed yet, protocol v2 §10)")
    for name in _model_variables(raw):
        base = _base_name(name)
        if name == base:
            continue
        _check_units(name, raw[name].attrs.get("units"), TABLE3[base], report)
        if data:
            _check_data(name, raw[name], None, report)
    if data and "nep" in raw.data_vars and "gpp" in raw.data_vars:
        _check_nep_sign(raw, report)


def _check_data(name: str, da: Any, spec: VariableSpec | None, report: CheckReport) -> None:
    try:
        values = _values(da)
    except Exception as exc:
        report.error("dtype", f"variable {name} {exc}")
        return
    valid = values[np.isfinite(values)]
    if valid.size == 0:
        report.error("all_missing", f"variable {name} holds no valid value (all "
                                    f"{values.size} values are missing or fill values)")
        return
    if spec is None:  # an uncertainty: one standard deviation, never negative
        n_neg = int((valid < 0).sum())
        if n_neg:
            report.warn("uncertainty_negative",
                        f"uncertainty {name} has {n_neg} negative values (an uncertainty is a "
                        "standard deviation; the Explorer uses its absolute value)")
        return
    outside = (valid < spec.valid_min) | (valid > spec.valid_max)
    n_out = int(outside.sum())
    if n_out:
        fraction = n_out / valid.size
        report.add("out_of_range",
                   f"variable {name}: {n_out} of {valid.size} valid values ({fraction:.1%}) are "
                   f"outside the plausible range [{spec.valid_min:g}, {spec.valid_max:g}] "
                   f"{spec.units} (min {valid.min():.4g}, max {valid.max():.4g}); check the "
                   "units and sign", severe=fraction > OUT_OF_RANGE_ERROR_FRACTION)


def _check_nep_sign(raw: Any, report: CheckReport) -> None:
    try:
        nep = _values(raw["nep"])
        gpp = _values(raw["gpp"])
    except Exception:
        return
    if nep.shape != gpp.shape:
        return
    ok = np.isfinite(nep) & np.isfinite(gpp)
    if ok.sum() < 10 or np.std(nep[ok]) == 0 or np.std(gpp[ok]) == 0:
        return
    r = float(np.corrcoef(nep[ok], gpp[ok])[0, 1])
    if r < NEP_SIGN_R:
        report.warn("nep_sign", f"variable nep is anti-correlated with gpp (r = {r:.2f}): it "
                                "looks like NEE. nep must be positive INTO the land "
                                "(nep = -NEE, Table 3)")


# --------------------------------------------------------------------------------------------
# Time
# --------------------------------------------------------------------------------------------

def _expected_period(parsed: ParsedName, report: CheckReport, ctx: _Context
                     ) -> ObservedPeriod | None:
    site = parsed.site
    if ctx.obs.active:
        if ctx.obs.problem:
            report.warn("no_observations", ctx.obs.problem)
        else:
            obs_path = ctx.obs.find(site, parsed.phase)
            if obs_path is None:
                report.warn("no_observations",
                            f"no observation file {site}_daily_aggregated_*_FLUXNET2015_Flux.nc "
                            f"under {ctx.obs.root}: the number of days cannot be checked")
            else:
                period = ctx.obs.period(obs_path)
                if isinstance(period, ObservedPeriod):
                    return period
                report.warn("no_observations", period)
    if parsed.phase != "Phase1b" or ctx.sites is None or site not in ctx.sites.index:
        return None
    row = ctx.sites.loc[site]
    start, end = row.get("obs_start"), row.get("obs_end")
    if not isinstance(start, str) or not isinstance(end, str) or not start or not end:
        return None
    try:
        return ObservedPeriod(pd.Timestamp(start), pd.Timestamp(end), None,
                              "site table observation period")
    except ValueError:
        return None


def _leap_days(start: pd.Timestamp, end: pd.Timestamp) -> int:
    days = pd.date_range(start, end, freq="D")
    return int(((days.month == 2) & (days.day == 29)).sum())


def _check_time(path: str, parsed: ParsedName, raw: Any, report: CheckReport,
                ctx: _Context) -> None:
    from loaders.readers import choose_time_reading, decode_daily_time

    if "time" not in raw.variables:
        report.error("time_missing", "the file has no time variable (protocol v2 §6.2)")
        return
    time = raw["time"]
    units = strip_invisible(time.attrs.get("units", ""))
    if not re.match(r"^days since \d{1,4}-\d{1,2}-\d{1,2}", units, flags=re.IGNORECASE):
        report.error("time_units", f"time units {quote(time.attrs.get('units', ''))} are not "
                                   "'days since YYYY-MM-DD …' (protocol v2 §6.2)")
        return
    try:
        values = _values(time).ravel()
    except Exception as exc:
        report.error("time_step", f"time {exc}")
        return
    if values.size == 0 or not np.isfinite(values).all():
        report.error("time_step", "time has missing or fill values")
        return
    if values.size > 1:
        steps = np.diff(values)
        bad = np.flatnonzero(np.abs(steps - 1.0) > 1e-6)
        if bad.size:
            i = int(bad[0])
            report.error("time_step", f"time steps must be exactly 1 day; {bad.size} are not "
                                      f"(first at index {i}: {values[i]:g} → {values[i + 1]:g})")
    frac = values - np.floor(values)
    odd = np.flatnonzero((np.abs(frac) > 1e-6) & (np.abs(frac - 0.5) > 1e-6)
                         & (np.abs(frac - 1.0) > 1e-6))
    if odd.size:
        report.error("time_step", f"time values must be whole days (0, 1, 2, …) or half days "
                                  f"(0.5, 1.5, …); {odd.size} are not, e.g. "
                                  f"{values[int(odd[0])]:.6g}")
    written_calendar = time.attrs.get("calendar", "standard")
    calendar = (strip_invisible(written_calendar) or "standard").lower()
    noleap = calendar in NOLEAP_CALENDARS
    if not noleap and calendar not in STANDARD_CALENDARS:
        report.error("calendar", f"time calendar {quote(written_calendar)} is not standard, "
                                 "gregorian or proleptic_gregorian (nor noleap/365_day): the "
                                 "days cannot be matched with observation dates")
        return
    period = _expected_period(parsed, report, ctx)
    reading = choose_time_reading(time, first_day=None if period is None else period.start)
    try:
        dates = decode_daily_time(time, path, reading=reading).dropna()
    except Exception as exc:
        report.error("time_units", f"time cannot be decoded: {exc}")
        return
    if len(dates) == 0:
        return
    first, last = dates.min(), dates.max()
    span = f"{first:%Y-%m-%d} to {last:%Y-%m-%d}"
    covered = period is None or (first == period.start and last == period.end)
    if reading.inferred and covered:
        report.warn("time_reading", _reading_message(time, path, values, reading, span))
    if period is None:
        if not (first.month == 1 and first.day == 1):
            report.warn("time_start", f"time axis starts on {first:%Y-%m-%d}, not on 1 January "
                                      "(protocol v2 §6.2: days since the first day of the "
                                      "FLUXNET data)")
        if noleap:
            report.warn("calendar_noleap", _noleap_message(calendar, span, None))
        return
    if not covered:
        report.error("time_span", f"time axis covers {span} (calendar {calendar}, reading: "
                                  f"{reading.name}) but the observation period is "
                                  f"{period.describe()}. "
                                  + _readings_summary(time, path, values, reading, period))
    elif noleap:
        report.warn("calendar_noleap", _noleap_message(
            calendar, span, _leap_days(period.start, period.end)))
    if period.n_days is not None and values.size != period.n_days:
        leap_only = noleap and covered and (
            values.size + _leap_days(period.start, period.end) == period.n_days)
        if not leap_only:
            report.error("time_length", f"the file has {values.size} days but the observation "
                                        f"file {period.source} has {period.n_days} "
                                        "(protocol v2 §6.2: the numbers must match)")


def _first_values(values: np.ndarray) -> str:
    """``1, 2, …`` — the first values of a time axis, for messages."""
    shown = ", ".join(f"{v:g}" for v in values[:2])
    return shown + (", …" if values.size > 2 else "")


def _span_of(dates: pd.DatetimeIndex) -> str:
    dates = dates.dropna()
    if len(dates) == 0:
        return "no valid date"
    return f"{dates.min():%Y-%m-%d} to {dates.max():%Y-%m-%d}"


def _reading_message(time: Any, path: str, values: np.ndarray, reading: Any, span: str) -> str:
    """The ``time_reading`` warning: which reading was inferred and what CF would give."""
    from loaders.readers import decode_daily_time

    units = strip_invisible(time.attrs.get("units", ""))
    cf_span = _span_of(decode_daily_time(time, path))
    return (f"time {quote(units, 80)} with values {_first_values(values)} is read as a "
            f"{reading.name} ({reading.basis}): {span}. Read as encoded (CF, e.g. xarray or "
            f"cftime) the same values give {cf_span}. Protocol v2 §6.2 permits 0, 1, 2, …, "
            "1, 2, 3, … and 0.5, 1.5, … from the first day, so the Explorer infers the dates; "
            "0, 1, 2, … or 0.5, 1.5, … leave no doubt")


def _readings_summary(time: Any, path: str, values: np.ndarray, used: Any,
                      period: ObservedPeriod) -> str:
    """What the dates would be under each permitted reading (for a ``time_span`` error)."""
    from loaders.readers import candidate_readings, decode_daily_time

    units = strip_invisible(time.attrs.get("units", ""))
    parts, matching = [], []
    for reading in candidate_readings(time):
        try:
            dates = decode_daily_time(time, path, reading=reading).dropna()
        except Exception as exc:  # pragma: no cover - the used reading decoded already
            parts.append(f"{reading.name}: cannot be decoded ({exc})")
            continue
        mark = " [used]" if reading.name == used.name else ""
        if len(dates) and dates.min() == period.start and dates.max() == period.end:
            matching.append(reading.name)
        parts.append(f"{reading.name}{mark}: {_span_of(dates)}")
    wanted = f"{period.start:%Y-%m-%d} to {period.end:%Y-%m-%d}"
    verdict = (f"None covers {wanted}" if not matching else
               f"Only {' and '.join(matching)} would cover {wanted}, a reading protocol v2 "
               "§6.2 does not give these values")
    return (f"Dates of {quote(units, 80)} with values {_first_values(values)} under each "
            f"reading — {'; '.join(parts)}. {verdict}: the time axis must be 'days since "
            "<first day of the FLUXNET data>' valued 0, 1, 2, …, 1, 2, 3, … or 0.5, 1.5, …")


def _noleap_message(calendar: str, span: str, n_leap: int | None) -> str:
    missing = (f"the {n_leap} leap days (29 February) of the observation period are missing"
               if n_leap is not None else "29 February is missing")
    return (f"calendar {calendar!r} ({span}): {missing}. The Explorer aligns model and "
            "observations on dates and leaves leap days empty; protocol v2 §6.2 asks models to "
            "write leap days (e.g. the mean of 28 February and 1 March)")


# --------------------------------------------------------------------------------------------
# Posterior uncertainty
# --------------------------------------------------------------------------------------------

def _check_uncertainty(parsed: ParsedName, raw: Any, report: CheckReport) -> None:
    if parsed.stage not in _UNCERTAIN_STAGES:
        return
    optimised = SCENARIO_VARIABLES.get(parsed.scenario or 0)
    if optimised is None:
        return
    for comp in optimised:
        cmip = COMPARISON[comp]["cmip"]
        if f"{cmip}_post_unc" in raw.data_vars:
            continue
        old = next((f"{cmip}{s}" for s in UNCERTAINTY_SUFFIXES
                    if s != "_post_unc" and f"{cmip}{s}" in raw.data_vars), None)
        if old:
            report.warn("uncertainty_suffix", f"posterior uncertainty of {cmip} ({comp}) is "
                                              f"named {old}; protocol v2 §6.2 asks for "
                                              f"{cmip}_post_unc")
            continue
        ens = None
        if cmip in raw.data_vars:
            ens = _ensemble_dim(tuple(str(d) for d in raw[cmip].dims))
        if ens:
            report.warn("ensemble", f"{cmip} ({comp}) has no {cmip}_post_unc but an ensemble "
                                    f"dimension {quote(ens)} of {raw.sizes[ens]} members: the "
                                    "ensemble spread is used as the posterior uncertainty")
            continue
        report.error("uncertainty_missing",
                     f"{parsed.stage} run of scenario {parsed.scenario} optimises {comp} but has "
                     f"neither {cmip}_post_unc nor an ensemble dimension (protocol v2 §6.2)")


# --------------------------------------------------------------------------------------------
# Observations, global runs, parameter tables
# --------------------------------------------------------------------------------------------

def _check_observation(path: str, parsed: ParsedName, report: CheckReport,
                       ctx: _Context) -> None:
    from loaders.readers import open_observations, open_raw

    try:
        ds = open_observations(path)
    except Exception as exc:
        report.error("unreadable", f"{Path(path).name}: not a readable observation file ({exc})")
        return
    for comp in COMPARISON:
        if comp not in ds:
            report.error("variable_missing", f"observation variable {comp} ({comp}_daily) is "
                                             "missing")
            continue
        values = np.asarray(ds[comp].values, dtype="float64")
        n_valid = int(np.isfinite(values).sum())
        if n_valid == 0:
            report.error("all_missing", f"observation variable {comp} holds no valid day")
        if f"{comp}_unc" not in ds:
            report.warn("uncertainty_missing", f"observation variable {comp} has no "
                                               "uncertainty (chi2 and coverage cannot be "
                                               "computed)")
    if ds.attrs.get("missing_dates"):
        n = len(ds.attrs["missing_dates"])
        report.warn("time_gaps", f"the time axis lacks {n} dates, e.g. "
                                 f"{ds.attrs['missing_dates'][0]}")
    raw = open_raw(path)
    try:
        _check_coordinates(parsed, raw, report, ctx.sites, severe=False)
    finally:
        raw.close()


def _check_global_run(path: str, parsed: ParsedName, raw: Any, report: CheckReport) -> None:
    from loaders.readers import decode_daily_time

    rename = {k: v for k, v in {"latitude": "lat", "longitude": "lon"}.items()
              if k in raw.dims and v not in raw.dims}
    ds = raw.rename_dims(rename) if rename else raw
    missing = [d for d in ("time", "lat", "lon") if d not in ds.dims]
    if missing:
        report.error("dims", f"a global run needs dimensions time, lat and lon; missing "
                             f"{', '.join(missing)} (dims: "
                             f"{', '.join(f'{k}={v}' for k, v in ds.sizes.items())})")
    elif ds.sizes["lat"] * ds.sizes["lon"] <= 1:
        report.error("dims", f"a global run has more than one grid cell; this one has "
                             f"lat={ds.sizes['lat']}, lon={ds.sizes['lon']}")
    _check_variable_dims(ds, report, "expected (time, lat, lon)")
    _check_variables(ds, report, required=False, data=False)
    if "time" not in ds.variables:
        report.error("time_missing", "the file has no time variable")
        return
    try:
        dates = decode_daily_time(ds["time"], path).dropna()
    except Exception as exc:
        report.error("time_units", f"time cannot be decoded: {exc}")
        return
    if len(dates) and parsed.year_start is not None and parsed.year_end is not None:
        y0, y1 = int(dates.min().year), int(dates.max().year)
        if (y0, y1) != (parsed.year_start, parsed.year_end):
            report.warn("time_span", f"time axis covers {y0}-{y1} but the file name says "
                                     f"{parsed.year_start}-{parsed.year_end}")


def _check_parameters(path: str, report: CheckReport) -> None:
    from loaders.readers import PARAMETER_COLUMNS

    name = Path(path).name
    try:
        if Path(path).stat().st_size == 0:
            report.error("unreadable", f"{name}: is empty (0 bytes)")
            return
        df = pd.read_csv(path, dtype=str, keep_default_na=False)
    except Exception as exc:
        report.error("unreadable", f"{name}: is not a readable CSV table ({exc})")
        return
    df.columns = [strip_invisible(c) for c in df.columns]
    missing = [c for c in REQUIRED_PARAMETER_COLUMNS if c not in df.columns]
    if missing:
        report.error("column_missing", f"required {_plural('column', missing)} "
                                       f"{', '.join(missing)} missing; columns are "
                                       + ", ".join(PARAMETER_COLUMNS))
    unknown = [c for c in df.columns if c not in PARAMETER_COLUMNS]
    if unknown:
        report.warn("unknown_column", f"{_plural('column', unknown)} "
                                      f"{', '.join(quote(c, 60) for c in unknown)} "
                                      "not part of the parameter table format (ignored)")
    if df.empty:
        report.error("empty_table", "the table has no parameter rows")
        return
    numbers: dict[str, pd.Series] = {}
    blank = ("", "NA", "nan", "NaN")
    for col in PARAMETER_COLUMNS[5:]:
        if col not in df.columns:
            continue
        text = df[col].astype(str).str.strip()
        values = pd.to_numeric(text.where(~text.isin(blank), None), errors="coerce")
        bad = np.flatnonzero((values.isna() & ~text.isin(blank)).to_numpy())
        if bad.size:
            rows = ", ".join(f"row {i + 2} {quote(text.iloc[i], 40)}" for i in bad[:3])
            report.error("not_numeric", f"column {col} holds text where a number is expected "
                                        f"({rows}{' …' if bad.size > 3 else ''})")
        numbers[col] = values.astype("float64")
    if "parameter" in df.columns:
        names = df["parameter"].astype(str).str.strip()
        empty = np.flatnonzero((names == "").to_numpy())
        if empty.size:
            report.error("parameter_name", f"column parameter is empty on row "
                                           f"{', '.join(str(i + 2) for i in empty[:5])}")
    else:
        names = pd.Series([f"row {i + 2}" for i in range(len(df))])
    lo, hi = numbers.get("prior_min"), numbers.get("prior_max")
    if lo is None or hi is None:
        return
    inverted = np.flatnonzero((lo > hi).to_numpy())
    if inverted.size:
        which = ", ".join(quote(names.iloc[i], 40) for i in inverted[:5])
        report.error("bounds", f"prior_min > prior_max for {which}")
    for col in ("prior_value", "posterior_value"):
        values = numbers.get(col)
        if values is None:
            continue
        outside = np.flatnonzero(((values < lo) | (values > hi)).to_numpy())
        if outside.size:
            which = ", ".join(quote(names.iloc[i], 40) for i in outside[:5])
            report.warn("out_of_bounds", f"{col} lies outside [prior_min, prior_max] for "
                                         f"{which}{' …' if outside.size > 5 else ''}")
