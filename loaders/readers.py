"""Open CalLMIP files as standardised xarray objects.

Every reader returns the same shape of object whatever the file's quirks:

* a ``time`` coordinate of calendar dates (``datetime64[ns]`` at midnight); a ``noleap`` or
  ``360_day`` model calendar is aligned on real dates and what is missing is listed in
  ``attrs["missing_dates"]``; a site run's time axis is read in whichever of the encodings
  protocol v2 §6.2 permits it uses (:func:`choose_time_reading`), recorded in
  ``attrs["time_reading"]`` and ``attrs["time_inferred"]``;
* canonical CMIP variable names and Table 3 units (harmless unit spellings are accepted, known
  scalings converted);
* for site runs and observations, the *comparison variables* ``NEE`` (gC m-2 d-1, positive to
  the atmosphere), ``Qle`` and ``Qh`` (W m-2) with ``NEE_unc``, ``Qle_unc``, ``Qh_unc`` where an
  uncertainty exists — derived in :mod:`loaders.variables` only;
* an optional ``member`` dimension for ensembles (whatever the file called it);
* scalar ``lat``/``lon`` coordinates for sites.

Readers raise :class:`CalLMIPFileError` (with the file name and the problem) on a file they cannot
read; they never return a half-read object.
"""

from __future__ import annotations

import datetime as dt
import io
import os
import re
import warnings
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import cftime
import numpy as np
import pandas as pd
import xarray as xr

from loaders.cache import ForkSafeLock
from loaders.naming import parse_name
from loaders.netcdf3 import netcdf3_size_problem
from loaders.variables import (
    COMPARISON,
    ENSEMBLE_DIMS,
    TABLE3,
    UNCERTAINTY_SUFFIXES,
    conversion_factor,
    nee_from_nep,
    nee_unc_from_nep_unc,
    strip_invisible,
)

#: NetCDF/HDF5 reads are not thread-safe: every direct netCDF4 read holds this lock. A forked
#: worker gets it fresh, never inherited locked (see :class:`loaders.cache.ForkSafeLock`).
_READ_LOCK = ForkSafeLock()

#: Values at or beyond this magnitude are fill values even without a ``_FillValue`` attribute.
FILL_THRESHOLD = 1e30

PARAMETER_COLUMNS: tuple[str, ...] = (
    "parameter", "long_name", "process", "pft", "units", "prior_value", "prior_min",
    "prior_max", "prior_sd", "posterior_value", "posterior_sd", "posterior_p05",
    "posterior_p95", "sensitivity_rank",
)
_NUMERIC_PARAMETER_COLUMNS = PARAMETER_COLUMNS[5:]
#: Numeric columns without which a parameter cannot be placed in its prior range.
_REQUIRED_NUMERIC_PARAMETER_COLUMNS = ("prior_value", "prior_min", "prior_max", "posterior_value")


class CalLMIPFileError(Exception):
    """A file could not be read; the message names the file and the problem."""

    def __init__(self, path: str | os.PathLike[str], problem: str) -> None:
        self.path = str(path)
        self.problem = problem
        super().__init__(f"{Path(self.path).name}: {problem}")


# --------------------------------------------------------------------------------------------
# Low-level opening
# --------------------------------------------------------------------------------------------

def _is_remote(path: str | os.PathLike[str]) -> bool:
    return "://" in str(path) and not str(path).startswith("file://")


def _netcdf_bytes_engine(head: bytes) -> str:
    if head.startswith(b"CDF"):
        return "scipy"
    if head.startswith(b"\x89HDF"):
        return "h5netcdf"
    raise ValueError("not a NetCDF file (unknown signature)")


def sniff_netcdf(path: str | os.PathLike[str]) -> str:
    """Say why a file is not readable NetCDF before handing it to a library.

    Parameters
    ----------
    path : str or path-like
        Local path.

    Returns
    -------
    str
        ``"netcdf3"`` or ``"netcdf4"``.

    Raises
    ------
    CalLMIPFileError
        If the file is missing, empty or does not start with a NetCDF signature.
    """
    p = Path(path)
    try:
        size = p.stat().st_size
    except OSError as exc:
        raise CalLMIPFileError(path, f"cannot be read ({exc.strerror or exc})") from exc
    if size == 0:
        raise CalLMIPFileError(path, "is empty (0 bytes)")
    with open(p, "rb") as fh:
        head = fh.read(8)
    if head.startswith(b"CDF"):
        problem = netcdf3_size_problem(p)
        if problem:
            raise CalLMIPFileError(path, problem)
        return "netcdf3"
    if head.startswith(b"\x89HDF"):
        return "netcdf4"
    raise CalLMIPFileError(path, "is not a NetCDF file (no NetCDF or HDF5 signature)")


def open_raw(path: str | os.PathLike[str], *, chunks: dict[str, int] | None = None,
             drop_variables: list[str] | None = None) -> xr.Dataset:
    """Open a NetCDF file with no decoding of times, tolerating the template's quirks.

    The CalLMIP template has scalar ``lat``/``lon`` variables that clash with its ``lat``/``lon``
    dimensions; they are dropped (their values are kept in ``attrs["_scalar_lat_lon"]``).

    Parameters
    ----------
    path : str or path-like
        Local path or fsspec URL.
    chunks : dict, optional
        Dask chunks (lazy loading).
    drop_variables : list of str, optional
        Variables not to read.

    Returns
    -------
    xarray.Dataset
        The raw dataset (times undecoded, fill values masked).

    Raises
    ------
    CalLMIPFileError
        If the file cannot be opened as NetCDF.
    """
    drop = list(drop_variables or [])
    kwargs: dict[str, Any] = {"decode_times": False, "chunks": chunks}
    if _is_remote(path):
        import fsspec

        try:
            with fsspec.open(str(path), "rb") as fh:
                data = fh.read()
            engine = _netcdf_bytes_engine(data[:8])
        except Exception as exc:
            raise CalLMIPFileError(path, f"cannot be read: {exc}") from exc
        source: Any = io.BytesIO(data)
        kwargs["engine"] = engine
    else:
        sniff_netcdf(path)
        source = str(path)
        kwargs["engine"] = "netcdf4"
    scalar_latlon: dict[str, float] = {}
    try:
        ds = xr.open_dataset(source, drop_variables=drop or None, **kwargs)
    except ValueError as exc:
        if "already exists as a scalar variable" not in str(exc):
            raise CalLMIPFileError(path, f"cannot be decoded: {exc}") from exc
        scalar_latlon = _read_scalar_latlon(path)
        if isinstance(source, io.BytesIO):
            source.seek(0)
        try:
            ds = xr.open_dataset(source, drop_variables=drop + ["lat", "lon"], **kwargs)
        except Exception as exc2:  # pragma: no cover - defensive
            raise CalLMIPFileError(path, f"cannot be decoded: {exc2}") from exc2
    except OSError as exc:
        raise CalLMIPFileError(path, f"is truncated or corrupt ({exc})") from exc
    except Exception as exc:
        raise CalLMIPFileError(path, f"cannot be opened: {exc}") from exc
    if scalar_latlon:
        ds.attrs["_scalar_lat_lon"] = scalar_latlon
    return ds


def open_raw_arrays(path: str | os.PathLike[str]) -> xr.Dataset:
    """Read a small local NetCDF file fully into memory with netCDF4 (no time decoding).

    About twice as fast as :func:`open_raw` for site files and immune to the template's
    ``lat``/``lon`` clash: scalar variables named like a dimension are kept in
    ``attrs["_scalar_lat_lon"]``. Fill values and ``scale_factor``/``add_offset`` are applied
    (floats become float64 with NaN for fills).

    Raises
    ------
    CalLMIPFileError
        If the file cannot be read.
    """
    import netCDF4

    sniff_netcdf(path)
    try:
        with _READ_LOCK, netCDF4.Dataset(str(path)) as nc:
            scalars: dict[str, float] = {}
            variables = {}
            for name, var in nc.variables.items():
                data = var[...]
                attrs = {a: var.getncattr(a) for a in var.ncattrs()}
                if var.ndim == 0 and name in nc.dimensions:
                    if name in ("lat", "lon"):
                        scalars[name] = float(np.ma.filled(np.ma.asarray(data, dtype="f8"),
                                                           np.nan))
                    continue
                if np.ma.isMaskedArray(data) or np.asarray(data).dtype.kind == "f":
                    data = (np.ma.filled(np.ma.asarray(data).astype("f8"), np.nan)
                            if np.asarray(data).dtype.kind in "fiu" else np.asarray(data))
                variables[name] = xr.Variable(var.dimensions, np.asarray(data), attrs)
            global_attrs = {a: nc.getncattr(a) for a in nc.ncattrs()}
    except CalLMIPFileError:
        raise
    except OSError as exc:
        raise CalLMIPFileError(path, f"is truncated or corrupt ({exc})") from exc
    except Exception as exc:
        raise CalLMIPFileError(path, f"cannot be read: {exc}") from exc
    ds = xr.Dataset(variables, attrs=global_attrs)
    if scalars:
        ds.attrs["_scalar_lat_lon"] = scalars
    return ds


def _read_scalar_latlon(path: str | os.PathLike[str]) -> dict[str, float]:
    if _is_remote(path):
        return {}
    import netCDF4

    out: dict[str, float] = {}
    try:
        with netCDF4.Dataset(str(path)) as nc:
            for name in ("lat", "lon"):
                if name in nc.variables and nc.variables[name].ndim == 0:
                    out[name] = float(nc.variables[name][...])
    except Exception:  # the scalar values are a nicety; the main open reports real errors
        return {}
    return out


# --------------------------------------------------------------------------------------------
# Time
# --------------------------------------------------------------------------------------------

#: Readings of a daily time axis that protocol v2 §6.2 permits (``attrs["time_reading"]``).
AS_ENCODED = "as encoded"
ONE_BASED = "1-based day count from the reference date"
MID_DAY = "mid-day offsets"
TIME_READINGS: tuple[str, ...] = (AS_ENCODED, ONE_BASED, MID_DAY)

_DAY_UNITS = {"days", "day", "d"}
_ORIGIN_DAY = re.compile(r"^\s*(-?\d{1,4})-(\d{1,2})-(\d{1,2})")


@dataclass(frozen=True)
class TimeReading:
    """How the values of a site run's time axis are turned into dates.

    Protocol v2 §6.2 asks for ``days since <first day of the FLUXNET data>`` with values
    ``0, 1, 2, …`` or ``1, 2, 3, …`` or ``0.5, 1.5, 2.5, …``, all meaning the same days; the
    template writes ``days since 1996-12-31`` with ``1, 2, 3, …``. Read the CF way (date =
    reference + value) ``1, 2, 3, …`` from the first day would start one day late, so for that
    encoding the values are read as a day count (date = reference + value − 1).

    Attributes
    ----------
    name : str
        One of :data:`TIME_READINGS`: ``"as encoded"`` (CF: reference + value, floored to the
        date), ``"1-based day count from the reference date"`` (reference + value − 1 day) or
        ``"mid-day offsets"`` (values ``k + 0.5``: CF noon stamps, dated by their day).
    offset_days : float
        Subtracted from the values before CF decoding (1 for the 1-based reading, else 0).
    inferred : bool
        ``True`` when the dates differ from a CF decoding of the file (xarray, cftime): they
        rest on the protocol's conventions, not on the file alone.
    basis : str
        Why this reading was chosen, in words.
    """

    name: str
    offset_days: float = 0.0
    inferred: bool = False
    basis: str = "CF decoding"

    def attrs(self) -> dict[str, Any]:
        """Return the dataset attributes recording this reading.

        Returns
        -------
        dict
            ``time_reading`` (str), ``time_inferred`` (bool), ``time_reading_basis`` (str).
        """
        return {"time_reading": self.name, "time_inferred": bool(self.inferred),
                "time_reading_basis": self.basis}


def _time_units(time: xr.DataArray, path: str | os.PathLike[str]) -> tuple[str, str]:
    units = strip_invisible(time.attrs.get("units", ""))
    calendar = strip_invisible(time.attrs.get("calendar", "standard")) or "standard"
    if " since " not in units:
        raise CalLMIPFileError(path, f"time units {units!r} are not '<unit> since <date>'")
    return units, calendar


def reference_day(units: str) -> tuple[int, int, int] | None:
    """The calendar day of a CF ``<unit> since <date>`` reference, or ``None``.

    Parameters
    ----------
    units : str
        CF time units, e.g. ``"days since 1997-01-01 00:00:00"``.

    Returns
    -------
    tuple of int or None
        ``(year, month, day)`` as written (any calendar), ``None`` if no date can be read.
    """
    _, sep, origin = strip_invisible(units).partition(" since ")
    match = _ORIGIN_DAY.match(origin) if sep else None
    if match is None:
        return None
    return int(match.group(1)), int(match.group(2)), int(match.group(3))


def _first_finite(values: np.ndarray) -> float | None:
    finite = np.flatnonzero(np.isfinite(values))
    return float(values[finite[0]]) if finite.size else None


def _as_day(value: Any) -> tuple[int, int, int] | None:
    if value is None:
        return None
    try:
        stamp = pd.Timestamp(value)
    except (TypeError, ValueError):
        return None
    if pd.isna(stamp):
        return None
    return stamp.year, stamp.month, stamp.day


def _day_after(day: tuple[int, int, int]) -> tuple[int, int, int] | None:
    try:
        after = dt.date(*day) + dt.timedelta(days=1)
    except (ValueError, OverflowError):
        return None
    return after.year, after.month, after.day


def choose_time_reading(time: xr.DataArray, *, first_day: Any = None) -> TimeReading:
    """Choose the reading of a daily time axis from the protocol's conventions (§6.2).

    Decided from the units and the first value only (no decoding, no loop over values):

    1. ``days since R`` valued ``1, 2, 3, …`` is a **1-based day count** (value 1 is R, date
       = R + value − 1) when R is the first day of the record: the observations' first day
       ``first_day`` where the caller knows it, else — the protocol's convention
       ("days since YYYY-01-01", true of every CalLMIP observation file) — 1 January. So
       ``days since 1997-01-01`` with ``1, 2, 3, …`` starts on 1997-01-01. Only when
       ``first_day`` is exactly the day after R (CF decoding already starts there) does the
       1 January convention give way.
    2. Values ``k + 0.5`` are **mid-day offsets**: CF noon stamps, each dated by its day.
    3. Anything else is read **as encoded** (CF): ``0, 1, 2, …`` from the first day, or the
       template's ``days since 1996-12-31`` with ``1, 2, 3, …`` (the reference is the day
       before the record, so value 1 is 1997-01-01, as CF says).

    Only reading 1 gives other dates than CF decoding (``TimeReading.inferred``).

    Parameters
    ----------
    time : xarray.DataArray
        The undecoded time variable with ``units``.
    first_day : str, datetime-like or None, optional
        First day of the site's observation record, where known.

    Returns
    -------
    TimeReading
        The reading to pass to :func:`decode_daily_time`.
    """
    units = strip_invisible(time.attrs.get("units", ""))
    unit = units.partition(" since ")[0].strip().lower()
    values = np.asarray(time.values, dtype="float64").ravel()
    v0 = _first_finite(values)
    ref = reference_day(units)
    if v0 is None or ref is None or unit not in _DAY_UNITS:
        return TimeReading(AS_ENCODED)
    ref_text = f"{ref[0]:04d}-{ref[1]:02d}-{ref[2]:02d}"
    if abs((v0 % 1.0) - 0.5) < 1e-6:
        return TimeReading(MID_DAY, 0.0, False,
                           f"values k + 0.5 days since {ref_text} are noon stamps (CF), each "
                           "dated by its day")
    if abs(v0 - 1.0) >= 1e-6:
        return TimeReading(AS_ENCODED, 0.0, False,
                           f"CF decoding: value {v0:g} is {v0:g} days after {ref_text}")
    known = _as_day(first_day)
    if known is not None and ref == known:
        return TimeReading(ONE_BASED, 1.0, True,
                           f"values start at 1 and the reference date {ref_text} is the first "
                           f"day of the observations, so value 1 is {ref_text}")
    day_after = _day_after(ref)
    if ref[1:] == (1, 1) and (known is None or known != day_after):
        return TimeReading(ONE_BASED, 1.0, True,
                           f"values start at 1 and the reference date {ref_text} is 1 January, "
                           "the first day of a FLUXNET record (protocol v2 §6.2: days since "
                           f"YYYY-01-01), so value 1 is {ref_text}")
    if known is not None and known == day_after:
        basis = (f"values start at 1 and the observations start the day after the reference "
                 f"date {ref_text} (the template's convention), so value 1 is the day after "
                 f"{ref_text}")
    else:
        basis = (f"values start at 1 and the reference date {ref_text} is not 1 January (the "
                 f"template's convention), so value 1 is the day after {ref_text}")
    return TimeReading(AS_ENCODED, 0.0, False, basis)


def candidate_readings(time: xr.DataArray) -> list[TimeReading]:
    """The readings protocol v2 §6.2 allows for a time axis, to show what each would give.

    Parameters
    ----------
    time : xarray.DataArray
        The undecoded time variable.

    Returns
    -------
    list of TimeReading
        The CF reading (``"mid-day offsets"`` for ``k + 0.5`` values, else ``"as encoded"``)
        and the 1-based day count (one day earlier) for ``days since`` units.
    """
    units = strip_invisible(time.attrs.get("units", ""))
    values = np.asarray(time.values, dtype="float64").ravel()
    v0 = _first_finite(values)
    half = v0 is not None and abs((v0 % 1.0) - 0.5) < 1e-6
    out = [TimeReading(MID_DAY if half else AS_ENCODED)]
    if units.partition(" since ")[0].strip().lower() in _DAY_UNITS:
        out.append(TimeReading(ONE_BASED, 1.0, True))
    return out


def decode_daily_time(time: xr.DataArray, path: str | os.PathLike[str] = "", *,
                      reading: TimeReading | None = None) -> pd.DatetimeIndex:
    """Decode a CF time axis to calendar dates (midnight), whatever the model calendar.

    Values such as ``0.5, 1.5`` (mid-day stamps) are floored to their date. Vectorised for
    real-world calendars; cftime for model calendars (``noleap``, ``360_day`` …).

    Parameters
    ----------
    time : xarray.DataArray
        The undecoded time variable with ``units`` (and optionally ``calendar``).
    path : str, optional
        For error messages.
    reading : TimeReading, optional
        How to read the values (see :func:`choose_time_reading`); default as encoded (CF).

    Returns
    -------
    pandas.DatetimeIndex
        One date per time step (may contain ``NaT`` for impossible dates such as 30 February).

    Raises
    ------
    CalLMIPFileError
        If the units are missing or not ``<unit> since <date>``.
    """
    units, calendar = _time_units(time, path)
    values = np.asarray(time.values, dtype="float64")
    if reading is not None and reading.offset_days:
        unit = units.partition(" since ")[0].strip().lower()
        factor = _SECONDS_PER_UNIT.get(unit, 86400.0) / 86400.0
        values = values - reading.offset_days / factor
    fast = _decode_standard(values, units, calendar)
    if fast is not None:
        return fast
    try:
        dates = cftime.num2date(values, units, calendar=calendar, only_use_cftime_datetimes=True)
    except Exception as exc:
        raise CalLMIPFileError(
            path, f"time cannot be decoded ({units!r}, {calendar!r}): {exc}") from exc
    dates = np.atleast_1d(dates)
    parts = pd.DataFrame({
        "year": [d.year for d in dates], "month": [d.month for d in dates],
        "day": [d.day for d in dates],
    })
    # Impossible dates of model calendars (30 February in 360_day) become NaT.
    return pd.DatetimeIndex(pd.to_datetime(parts, errors="coerce"), name="time").as_unit("ns")


def read_site_time(time: xr.DataArray, path: str | os.PathLike[str] = "", *,
                   first_day: Any = None) -> tuple[pd.DatetimeIndex, TimeReading]:
    """Dates of a site run's time axis under the reading the protocol implies.

    Parameters
    ----------
    time : xarray.DataArray
        The undecoded time variable.
    path : str, optional
        For error messages.
    first_day : str, datetime-like or None, optional
        First day of the site's observation record, where known (see
        :func:`choose_time_reading`).

    Returns
    -------
    dates : pandas.DatetimeIndex
        One date per time step.
    reading : TimeReading
        The reading used.

    Raises
    ------
    CalLMIPFileError
        If the units are missing or not ``<unit> since <date>``.
    """
    _time_units(time, path)
    reading = choose_time_reading(time, first_day=first_day)
    return decode_daily_time(time, path, reading=reading), reading


_STANDARD_CALENDARS = {"standard", "gregorian", "proleptic_gregorian"}
_SECONDS_PER_UNIT = {"days": 86400.0, "day": 86400.0, "d": 86400.0, "hours": 3600.0,
                     "hour": 3600.0, "h": 3600.0, "minutes": 60.0, "minute": 60.0,
                     "seconds": 1.0, "second": 1.0, "s": 1.0}


def _decode_standard(values: np.ndarray, units: str, calendar: str) -> pd.DatetimeIndex | None:
    """Vectorised decoding for real-world calendars after 1582; ``None`` to use cftime."""
    unit, _, origin = units.partition(" since ")
    factor = _SECONDS_PER_UNIT.get(unit.strip().lower())
    if calendar.lower() not in _STANDARD_CALENDARS or factor is None:
        return None
    if not np.all(np.isfinite(values)):
        return None
    try:
        ref = pd.Timestamp(origin.strip())
    except (ValueError, TypeError):
        return None
    if ref.tzinfo is not None or ref.year < 1583:
        return None
    seconds = np.round(values * factor).astype("int64")
    stamps = ref + pd.to_timedelta(seconds, unit="s")
    return pd.DatetimeIndex(stamps.floor("D"), name="time").as_unit("ns")


def _align_on_dates(ds: xr.Dataset, dates: pd.DatetimeIndex, path: str) -> xr.Dataset:
    """Give ``ds`` a complete daily date axis, listing dates the file lacks or repeats."""
    keep = ~dates.isna() & ~dates.duplicated()
    dropped = int((~keep).sum())
    ds = ds.isel(time=np.flatnonzero(keep))
    dates = dates[keep]
    ds = ds.assign_coords(time=dates)
    ds.attrs["dropped_time_steps"] = dropped
    if len(dates) == 0:
        ds.attrs["missing_dates"] = []
        return ds
    full = pd.date_range(dates.min(), dates.max(), freq="D", name="time", unit="ns")
    missing = full.difference(dates)
    if len(missing) or not dates.is_monotonic_increasing:
        ds = ds.reindex(time=full)
    ds.attrs["missing_dates"] = [d.strftime("%Y-%m-%d") for d in missing]
    return ds


# --------------------------------------------------------------------------------------------
# Site runs
# --------------------------------------------------------------------------------------------

def _standardise_ensemble_dim(ds: xr.Dataset) -> xr.Dataset:
    for dim in ds.dims:
        if str(dim).lower() in ENSEMBLE_DIMS and dim != "member":
            return ds.rename({dim: "member"})
    return ds


def _mask_fill(da: xr.DataArray) -> xr.DataArray:
    if da.dtype.kind == "f":
        return da.where(np.abs(da) < FILL_THRESHOLD)
    return da


def _squeeze_site(ds: xr.Dataset, path: str) -> tuple[xr.Dataset, float | None, float | None]:
    lat = lon = None
    scalars = ds.attrs.pop("_scalar_lat_lon", {})
    for name, _dims in (("latitude", ("lat", "y")), ("longitude", ("lon", "x"))):
        if name in ds.variables and ds[name].size == 1:
            value = float(np.asarray(ds[name].values).ravel()[0])
            if name == "latitude":
                lat = value
            else:
                lon = value
    lat = scalars.get("lat", lat)
    lon = scalars.get("lon", lon)
    for dim in ("lat", "lon", "y", "x", "latitude", "longitude"):
        if dim in ds.dims:
            if ds.sizes[dim] != 1:
                raise CalLMIPFileError(path, f"dimension {dim!r} has size {ds.sizes[dim]}, "
                                             "expected a single site (size 1)")
            ds = ds.isel({dim: 0}, drop=True)
    ds = ds.drop_vars([v for v in ("latitude", "longitude", "lat", "lon") if v in ds.variables])
    return ds, lat, lon


def _quoted(value: Any, limit: int = 200) -> str:
    """``repr`` of untrusted text, cut to ``limit`` characters (a units string may be 1 MB)."""
    text = value if isinstance(value, str) else str(value)
    if len(text) > limit:
        return repr(text[:limit]) + f"… ({len(text)} characters)"
    return repr(text)


#: A site run whose time steps fall on an already seen day more often than this share is not
#: daily (half-hourly or hourly output, or the same days written again).
MAX_REPEATED_STEP_SHARE = 0.5


def _check_daily(dates: pd.DatetimeIndex, path: str) -> None:
    """Refuse a time axis that is not daily: most steps repeat a day already seen."""
    n = len(dates)
    repeated = int(dates.duplicated().sum())
    if n and repeated > MAX_REPEATED_STEP_SHARE * n:
        per_day = n / max(1, n - repeated)
        raise CalLMIPFileError(
            path, f"is not daily: {repeated} of its {n} time steps fall on a day already "
                  f"seen (about {per_day:.0f} steps a day); protocol v2 §6.2 asks for one "
                  "value per day (daily means)")


def _canonical_units(da: xr.DataArray, name: str, path: str) -> xr.DataArray:
    spec = TABLE3.get(name)
    if spec is None:
        return da
    written = da.attrs.get("units")
    factor = conversion_factor(written, spec.units)
    if factor is None:
        raise CalLMIPFileError(path, f"variable {name!r} has units {_quoted(written)}; Table 3 "
                                     f"asks for {spec.units!r} and no conversion is known")
    if factor != 1.0:
        da = da * factor
    da.attrs = {**da.attrs, "units": spec.units, "units_as_written": written}
    return da


def _canonical_values(da: xr.DataArray, name: str, path: str) -> tuple[np.ndarray, dict]:
    """Values of a Table 3 variable as float64 in Table 3 units, fill values as NaN."""
    spec = TABLE3[name]
    written = da.attrs.get("units")
    factor = conversion_factor(written, spec.units)
    if factor is None:
        raise CalLMIPFileError(path, f"variable {name!r} has units {_quoted(written)}; Table 3 "
                                     f"asks for {spec.units!r} and no conversion is known")
    values = np.array(da.values, dtype="float64")
    values[~(np.abs(values) < FILL_THRESHOLD)] = np.nan
    if factor != 1.0:
        values *= factor
    attrs = {k: v for k, v in da.attrs.items() if k not in ("_FillValue", "missing_value")}
    attrs.update(units=spec.units, units_as_written=written)
    return values, attrs


def _comparison_arrays(arrays: dict[str, tuple]) -> dict[str, tuple]:
    """NEE, Qle, Qh (and their uncertainties) from nep, hfls, hfss — see loaders.variables."""
    out: dict[str, tuple] = {}
    for comp, spec in COMPARISON.items():
        cmip = spec["cmip"]
        if cmip not in arrays:
            continue
        dims, values, _ = arrays[cmip]
        unc = arrays.get(f"{cmip}_post_unc")
        if comp == "NEE":
            nee = nee_from_nep(xr.DataArray(values, dims=dims))
            out["NEE"] = (dims, nee.values, nee.attrs)
            if unc is not None:
                nee_unc = nee_unc_from_nep_unc(xr.DataArray(unc[1], dims=unc[0]))
                out["NEE_unc"] = (unc[0], nee_unc.values, nee_unc.attrs)
            continue
        out[comp] = (dims, values.copy(), {"units": spec["units"],
                                           "long_name": spec["long_name"]})
        if unc is not None:
            out[f"{comp}_unc"] = (unc[0], np.abs(unc[1]), {
                "units": spec["units"], "long_name": f"{comp} uncertainty (1 sd)"})
    return out


def open_site_run(path: str | os.PathLike[str], *, first_day: Any = None) -> xr.Dataset:
    """Open a model site run (protocol v2 or v1 naming) as a standardised dataset.

    The time axis is read the way protocol v2 §6.2 implies (see
    :func:`choose_time_reading`): ``days since <first day>`` with ``1, 2, 3, …`` is a 1-based
    day count, ``0, 1, 2, …``, ``0.5, 1.5, …`` and the template's ``days since <day before>``
    with ``1, 2, 3, …`` are read as encoded. ``attrs["time_reading"]`` names the reading and
    ``attrs["time_inferred"]`` says whether the dates differ from a CF decoding.

    Parameters
    ----------
    path : str or path-like
        Local path or fsspec URL of the NetCDF file.
    first_day : str, datetime-like or None, optional
        First day of the site's observation record, where the caller knows it; without it
        the protocol's convention (records start on 1 January) decides.

    Returns
    -------
    xarray.Dataset
        Dims ``time`` (and ``member`` for ensembles). CMIP variables in Table 3 units, their
        posterior uncertainties renamed ``<var>_post_unc``, and the comparison variables
        ``NEE``, ``Qle``, ``Qh`` (+ ``*_unc``). Scalar coordinates ``lat``, ``lon``.
        ``attrs`` hold ``path``, the parsed name fields, the file's global attributes,
        ``calendar``, ``missing_dates``, ``time_reading`` (str), ``time_inferred`` (bool) and
        ``time_reading_basis`` (str).

    Raises
    ------
    CalLMIPFileError
        If the file cannot be read or has no usable time axis.
    """
    path = str(path)
    raw = open_raw(path) if _is_remote(path) else open_raw_arrays(path)
    try:
        ds = _standardise_ensemble_dim(raw)
        if "time" not in ds.variables:
            raise CalLMIPFileError(path, "has no 'time' variable")
        dates, reading = read_site_time(ds["time"], path, first_day=first_day)
        _check_daily(dates, path)
        calendar = strip_invisible(ds["time"].attrs.get("calendar", "standard"))
        ds, lat, lon = _squeeze_site(ds, path)
        arrays: dict[str, tuple[tuple[str, ...], np.ndarray, dict]] = {}
        for name in ds.data_vars:
            base = name
            for suffix in UNCERTAINTY_SUFFIXES:
                if name.endswith(suffix) and name[: -len(suffix)] in TABLE3:
                    base = name[: -len(suffix)]
                    break
            if base not in TABLE3:
                continue
            da = ds[name]
            if "time" not in da.dims:
                raise CalLMIPFileError(path, f"variable {name!r} has no time dimension "
                                             f"(dims {da.dims})")
            values, attrs = _canonical_values(da, base, path)
            arrays[name if base == name else f"{base}_post_unc"] = (da.dims, values, attrs)
        arrays.update(_comparison_arrays(arrays))
        n_time = int(ds.sizes.get("time", 0))
        out = xr.Dataset(arrays, coords={"time": ("time", np.arange(n_time))})
        out = _align_on_dates(out, dates, path)
        if lat is not None:
            out = out.assign_coords(lat=lat)
        if lon is not None:
            out = out.assign_coords(lon=lon)
        parsed = parse_name(path)
        out.attrs.update({k: v for k, v in raw.attrs.items() if not k.startswith("_")})
        out.attrs.update({
            "path": path, "kind": "site_run", "model": parsed.model, "version": parsed.version,
            "scenario": parsed.scenario, "site": parsed.site, "cal_val": parsed.cal_val,
            "stage": parsed.stage, "calendar": calendar,
            "has_ensemble": "member" in out.dims, **reading.attrs(),
        })
        return out
    finally:
        raw.close()


# --------------------------------------------------------------------------------------------
# Observations
# --------------------------------------------------------------------------------------------

_DAILY_OBS = {"NEE": ("NEE_daily", "NEE_uc_daily"), "Qle": ("Qle_daily", "Qle_uc_daily"),
              "Qh": ("Qh_daily", "Qh_uc_daily")}


def open_observations(path: str | os.PathLike[str], *, max_gapfill_fraction: float = 0.25
                      ) -> xr.Dataset:
    """Open a flux observation file (CalLMIP daily aggregate or PLUMBER2 original).

    Parameters
    ----------
    path : str or path-like
        ``<Site>_daily_aggregated_<Y0>-<Y1>_FLUXNET2015_Flux.nc`` or a PLUMBER2
        ``<Site>_<Y0>-<Y1>_<FLUXNET2015|LaThuile|OzFlux>_Flux.nc``.
    max_gapfill_fraction : float, default 0.25
        For PLUMBER2 half-hourly originals only: days with a larger fraction of gap-filled
        steps are set to NaN (the CalLMIP rule).

    Returns
    -------
    xarray.Dataset
        Dims ``time`` (dates). ``NEE`` gC m-2 d-1 (daily sum, positive to the atmosphere),
        ``Qle``, ``Qh`` W m-2 (daily means), with ``NEE_unc``, ``Qle_unc``, ``Qh_unc`` where the
        file has uncertainties. Scalar ``lat``/``lon`` coordinates; ``attrs["site"]``.

    Raises
    ------
    CalLMIPFileError
        If the file cannot be read or holds none of the expected variables.
    """
    path = str(path)
    parsed = parse_name(path)
    raw = open_raw(path)
    try:
        if "time" not in raw.variables:
            raise CalLMIPFileError(path, "has no 'time' variable")
        if any(v in raw.variables for v, _ in _DAILY_OBS.values()):
            out = _daily_obs(raw, path)
        else:
            out = _plumber2_obs(raw, path, max_gapfill_fraction)
        site = parsed.site or raw.attrs.get("site_code")
        out.attrs.update({"path": path, "kind": "observation", "site": site,
                          "collection": parsed.collection or "FLUXNET2015"})
        return out
    finally:
        raw.close()


def _site_coords(raw: xr.Dataset) -> dict[str, float]:
    coords = {}
    for name, key in (("latitude", "lat"), ("longitude", "lon")):
        if name in raw.variables and raw[name].size >= 1:
            coords[key] = float(np.asarray(raw[name].values).ravel()[0])
    return coords


def _series(raw: xr.Dataset, name: str) -> xr.DataArray:
    da = raw[name]
    for dim in list(da.dims):
        if dim != "time":
            da = da.isel({dim: 0}, drop=True)
    return _mask_fill(da.astype("float64")).load()


def _daily_obs(raw: xr.Dataset, path: str) -> xr.Dataset:
    dates = decode_daily_time(raw["time"], path)
    out = xr.Dataset()
    for comp, (var, unc) in _DAILY_OBS.items():
        if var not in raw.variables:
            continue
        units = COMPARISON[comp]["units"]
        da = _series(raw, var)
        gap = raw[var].attrs.get("Gap-filled_%")
        out[comp] = da.assign_attrs(units=units, long_name=COMPARISON[comp]["long_name"],
                                    source_variable=var, gap_filled_percent=gap)
        if unc in raw.variables:
            out[f"{comp}_unc"] = _series(raw, unc).assign_attrs(
                units=units, long_name=f"{comp} measurement uncertainty", source_variable=unc)
    out = out.assign_coords(time=("time", np.arange(raw.sizes["time"])))
    out = _align_on_dates(out, dates, path)
    return out.assign_coords(**_site_coords(raw))


# PLUMBER2 originals: (value candidates, uncertainty candidates, qc candidates)
_PLUMBER2_VARS = {
    "NEE": (("NEE",), ("NEE_uc",), ("NEE_qc",)),
    "Qle": (("Qle", "Qle_cor"), ("Qle_cor_uc", "Qle_uc"), ("Qle_qc", "Qle_cor_qc")),
    "Qh": (("Qh", "Qh_cor"), ("Qh_cor_uc", "Qh_uc"), ("Qh_qc", "Qh_cor_qc")),
}


def _first(raw: xr.Dataset, names: tuple[str, ...]) -> str | None:
    return next((n for n in names if n in raw.variables), None)


def _plumber2_obs(raw: xr.Dataset, path: str, max_gapfill_fraction: float) -> xr.Dataset:
    """Aggregate a (half-)hourly PLUMBER2 flux file to CalLMIP daily values."""
    units = strip_invisible(raw["time"].attrs.get("units", ""))
    calendar = raw["time"].attrs.get("calendar", "standard")
    try:
        stamps = cftime.num2date(np.asarray(raw["time"].values, dtype="float64"), units,
                                 calendar=calendar, only_use_cftime_datetimes=True)
    except Exception as exc:
        raise CalLMIPFileError(path, f"time cannot be decoded ({units!r}): {exc}") from exc
    if len(stamps) < 2:
        raise CalLMIPFileError(path, "has fewer than two time steps")
    # PLUMBER2 stamps start at 0 s: each marks the start of its interval.
    step_s = float((stamps[1] - stamps[0]).total_seconds())
    day = pd.DatetimeIndex([pd.Timestamp(year=s.year, month=s.month, day=s.day) for s in stamps])
    steps_per_day = round(86400.0 / step_s)
    out = {}
    for comp, (values, uncs, qcs) in _PLUMBER2_VARS.items():
        vname = _first(raw, values)
        if vname is None:
            continue
        frame = pd.DataFrame({"v": _series(raw, vname).values}, index=day)
        uname, qname = _first(raw, uncs), _first(raw, qcs)
        if uname:
            frame["u"] = _series(raw, uname).values
        if qname:
            frame["gap"] = (_series(raw, qname).values > 0).astype(float)
        grouped = frame.groupby(level=0)
        count = grouped["v"].count()
        complete = grouped["v"].size() == steps_per_day
        if comp == "NEE":
            # umol m-2 s-1 → gC m-2 per step with 12.0 g mol-1 for carbon, as the official
            # CalLMIP daily files use (not the standard atomic weight 12.011).
            scale = 1e-6 * 12.0 * step_s
            value = grouped["v"].sum(min_count=1) * scale
            unc = (np.sqrt(grouped["u"].apply(lambda u: np.nansum(u**2))) * scale
                   if uname else None)
        else:
            value = grouped["v"].mean()
            unc = (np.sqrt(grouped["u"].apply(lambda u: np.nansum(u**2))) / count
                   if uname else None)
        valid = complete & (count == steps_per_day)
        if qname:
            valid &= grouped["gap"].mean() <= max_gapfill_fraction
        if uname:
            valid &= grouped["u"].count() > 0
        value = value.where(valid)
        attrs = {"units": COMPARISON[comp]["units"], "long_name": COMPARISON[comp]["long_name"],
                 "source_variable": vname}
        out[comp] = xr.DataArray(value.values, dims="time", attrs=attrs)
        if unc is not None:
            out[f"{comp}_unc"] = xr.DataArray(unc.where(valid).values, dims="time",
                                              attrs={"units": attrs["units"],
                                                     "source_variable": uname})
        dates = value.index
    if not out:
        raise CalLMIPFileError(path, "holds none of NEE_daily/Qle_daily/Qh_daily or the "
                                     "PLUMBER2 variables NEE/Qle/Qh")
    ds = xr.Dataset(out, coords={"time": pd.DatetimeIndex(dates, name="time").as_unit("ns")})
    ds.attrs["missing_dates"] = []
    return ds.assign_coords(**_site_coords(raw))


# --------------------------------------------------------------------------------------------
# Global runs
# --------------------------------------------------------------------------------------------

def open_global_run(path: str | os.PathLike[str], *, chunks: dict[str, int] | None = None
                    ) -> xr.Dataset:
    """Open a global gridded run lazily (dask) with canonical names and units.

    Parameters
    ----------
    path : str or path-like
        ``<model>.<version>_global_<res>_<freq>_<YYYY-YYYY>_<Prior|Posterior>.nc``.
    chunks : dict, optional
        Dask chunks; default one time step per chunk (``{"time": 1}``) for local files.

    Returns
    -------
    xarray.Dataset
        Dims ``(time, lat, lon)`` (plus ``member`` for ensembles); ``lat`` ascending, ``lon``
        in [-180, 180) ascending; ``time`` dates (first day of the period for monthly data).
        Table 3 variables in canonical units, uncertainties as ``<var>_post_unc``.

    Raises
    ------
    CalLMIPFileError
        If the file cannot be read or is not a (time, lat, lon) grid.
    """
    path = str(path)
    if chunks is None and not _is_remote(path):
        chunks = {"time": 1}
    raw = open_raw(path, chunks=chunks)
    ds = _standardise_ensemble_dim(raw)
    ds = ds.rename({k: v for k, v in {"latitude": "lat", "longitude": "lon"}.items()
                    if k in ds.dims or k in ds.variables})
    if "lat" not in ds.dims or "lon" not in ds.dims or "time" not in ds.dims:
        raise CalLMIPFileError(path, f"is not a (time, lat, lon) grid: dims {dict(ds.sizes)}")
    dates = decode_daily_time(ds["time"], path)
    out = xr.Dataset()
    for name in ds.data_vars:
        base = name
        for suffix in UNCERTAINTY_SUFFIXES:
            if name.endswith(suffix) and name[: -len(suffix)] in TABLE3:
                base = name[: -len(suffix)]
        if base in TABLE3:
            da = _mask_fill(ds[name])
            out[name if base == name else f"{base}_post_unc"] = _canonical_units(da, base, path)
    out = out.assign_coords(time=dates, lat=ds["lat"].values,
                            lon=((ds["lon"].values + 180.0) % 360.0) - 180.0)
    out = out.sortby("lat").sortby("lon")
    parsed = parse_name(path)
    out.attrs.update({k: v for k, v in raw.attrs.items() if not k.startswith("_")})
    out.attrs.update({"path": path, "kind": "global_run", "model": parsed.model,
                      "version": parsed.version, "stage": parsed.stage,
                      "resolution": parsed.resolution, "frequency": parsed.frequency})
    return out


# --------------------------------------------------------------------------------------------
# Parameter tables
# --------------------------------------------------------------------------------------------

def read_parameters(path: str | os.PathLike[str], *, report_rows: bool = False) -> pd.DataFrame:
    """Read a calibrated-parameter table (format of the README, after protocol v2 §12).

    Parameters
    ----------
    path : str or path-like
        ``<model>.<version>_Phase1b_Scen<N>_parameters.csv``.
    report_rows : bool
        ``False`` (default): a numeric column holding text raises. ``True``: such a cell is read
        as unknown (NaN) and every row keeps what is wrong with it in two more columns,
        ``row`` (its line in the file, the header being line 1) and ``problems`` (messages
        joined by ``"; "``, empty when the row is fine): text where a number is expected, an
        empty parameter name, ``prior_min > prior_max``, and the required columns
        (``prior_value, prior_min, prior_max, posterior_value``) missing from the file.

    Returns
    -------
    pandas.DataFrame
        One row per (parameter, pft) with every column of :data:`PARAMETER_COLUMNS`
        (missing optional columns are added empty) plus ``model``, ``version``, ``scenario``
        from the file name. Numeric columns are floats (NaN where unknown).

    Raises
    ------
    CalLMIPFileError
        If the file cannot be parsed, lacks the ``parameter`` column, or (unless
        ``report_rows``) a numeric column holds text.
    """
    path = str(path)
    try:
        if _is_remote(path):
            import fsspec

            with fsspec.open(path, "rt") as fh:
                df = pd.read_csv(fh, dtype=str, keep_default_na=False)
        else:
            df = pd.read_csv(path, dtype=str, keep_default_na=False)
    except Exception as exc:
        raise CalLMIPFileError(path, f"is not a readable CSV table: {exc}") from exc
    df.columns = [strip_invisible(c) for c in df.columns]
    if "parameter" not in df.columns:
        raise CalLMIPFileError(path, "has no 'parameter' column; expected columns "
                                     + ", ".join(PARAMETER_COLUMNS))
    absent = [c for c in _REQUIRED_NUMERIC_PARAMETER_COLUMNS if c not in df.columns]
    for col in PARAMETER_COLUMNS:
        if col not in df.columns:
            df[col] = ""
    problems: list[list[str]] = [[] for _ in range(len(df))]
    for col in _NUMERIC_PARAMETER_COLUMNS:
        text = df[col].astype(str).str.strip()
        numbers = pd.to_numeric(text.replace({"": None, "NA": None, "nan": None, "NaN": None}),
                                errors="coerce")
        bad = numbers.isna() & ~text.isin(["", "NA", "nan", "NaN"])
        if bad.any() and not report_rows:
            row = int(np.flatnonzero(bad.to_numpy())[0])
            raise CalLMIPFileError(path, f"column {col!r} row {row + 2} holds "
                                         f"{text.iloc[row]!r}, not a number")
        for row in np.flatnonzero(bad.to_numpy()):
            shown = text.iloc[row] if len(text.iloc[row]) <= 40 else text.iloc[row][:40] + "…"
            problems[row].append(f"{col} {shown!r} is not a number (read as unknown)")
        df[col] = numbers.astype("float64")
    if report_rows:
        empty = df["parameter"].astype(str).str.strip() == ""
        inverted = (df["prior_min"] > df["prior_max"]).to_numpy()
        for row in range(len(df)):
            if empty.iloc[row]:
                problems[row].append("the parameter name is empty")
            if inverted[row]:
                problems[row].append("prior_min > prior_max")
            if absent:
                problems[row].append(f"column{'s' if len(absent) > 1 else ''} "
                                     f"{', '.join(absent)} missing from the file")
        df["row"] = np.arange(2, len(df) + 2, dtype="int64")
        df["problems"] = pd.Series(["; ".join(p) for p in problems], index=df.index,
                                   dtype="str")
    parsed = parse_name(path)
    df["pft"] = df["pft"].replace("", "all")
    df.insert(0, "model", parsed.model)
    df.insert(1, "version", parsed.version)
    df.insert(2, "scenario", parsed.scenario)
    df.attrs["path"] = path
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        return df[["model", "version", "scenario", *PARAMETER_COLUMNS]
                  + [c for c in df.columns if c not in PARAMETER_COLUMNS
                     and c not in ("model", "version", "scenario")]]
