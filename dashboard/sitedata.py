"""Tidy per-site series for the site views: observations, priors and posteriors side by side.

Pure pandas/xarray (no Panel): the views only draw what these functions return.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from functools import cached_property

import numpy as np
import pandas as pd
import xarray as xr

from loaders.archive import Archive
from loaders.variables import display_values


@dataclass
class SiteSeries:
    """Everything the site view draws for one (site, variable, scenario).

    Attributes
    ----------
    obs : pandas.DataFrame
        Columns ``time, value, unc`` (may be empty when the site has no observations).
    runs : pandas.DataFrame
        Long format: ``model, stage, time, value, lower, upper`` (lower/upper: the 95 % band
        from the posterior uncertainty or the ensemble's predictive interval; NaN when absent).
    units : str
        Units of the variable.
    n_obs_valid : int
        Number of valid observed days.
    n_days : int
        Length of the observation record in days.
    problems : list of str
        Files that could not be read (untrusted text: escape before display).
    derived : dict
        Numbers the views derive from the series, cached with it.
    """

    obs: pd.DataFrame
    runs: pd.DataFrame
    units: str = ""
    n_obs_valid: int = 0
    n_days: int = 0
    problems: list[str] = field(default_factory=list)
    #: Numbers the views derive from this series, kept with it (e.g. Taylor statistics).
    derived: dict = field(default_factory=dict, repr=False, compare=False)

    def prepare(self) -> SiteSeries:
        """Compute the arrays the views draw now (once), and make every array read-only.

        A prepared series is shared by every session of a process: read-only arrays make an
        accidental in-place change fail loudly instead of changing what others see.
        """
        for frame in (self.obs, self.runs):
            for column in frame.columns:
                values = frame[column].to_numpy()
                if isinstance(values, np.ndarray) and values.dtype != object:
                    values.flags.writeable = False
        _ = self.drawing, self.on_obs_days
        return self

    @property
    def nbytes(self) -> int:
        """Memory held by the series and what was derived from it so far, in bytes."""
        total = int(self.obs.memory_usage(deep=False).sum()
                    + self.runs.memory_usage(deep=False).sum())
        drawing = self.__dict__.get("drawing")
        if drawing is not None:
            arrays = [*drawing.obs, *drawing.obs_band]
            arrays += [a for run in drawing.runs.values() for a in run]
            total += sum(a.nbytes for a in arrays)
        aligned = self.__dict__.get("on_obs_days")
        if aligned is not None:
            total += aligned.time.nbytes + aligned.month.nbytes + aligned.obs.nbytes
            total += sum(v.nbytes for v in aligned.runs.values())
        return total

    @cached_property
    def by_run(self) -> dict[tuple[str, str], pd.DataFrame]:
        """The rows of each ``(model, stage)``, sorted by model then stage."""
        if self.runs.empty:
            return {}
        return {(str(model), str(stage)): frame
                for (model, stage), frame in self.runs.groupby(["model", "stage"], sort=True)}

    @cached_property
    def drawing(self) -> DrawArrays:
        """The arrays the time series draw (computed once per series)."""
        empty = np.empty(0, dtype="float32")
        obs = (empty, empty)
        band = (empty, empty, empty)
        if not self.obs.empty:
            t = epoch_ms(self.obs["time"])
            value = self.obs["value"].to_numpy(dtype="float64")
            half = 1.96 * self.obs["unc"].to_numpy(dtype="float64")
            x, lower, upper = closed_band(t, value - half, value + half)
            band = (x, lower.astype("float32"), upper.astype("float32"))
            seen = np.isfinite(value)
            obs = (t[seen], value[seen].astype("float32"))
        runs: dict[tuple[str, str], tuple[np.ndarray, ...]] = {}
        banded = []
        for (model, stage), frame in self.by_run.items():
            lower = frame["lower"].to_numpy(dtype="float32")
            runs[(model, stage)] = (epoch_ms(frame["time"]),
                                    frame["value"].to_numpy(dtype="float32"),
                                    lower, frame["upper"].to_numpy(dtype="float32"))
            if stage == "Posterior" and np.isfinite(lower).any():
                banded.append(model)
        return DrawArrays(obs=obs, obs_band=band, runs=runs, banded=tuple(banded))

    @cached_property
    def on_obs_days(self) -> ObsAligned:
        """Every run's values on the observation record's days (computed once per series)."""
        times = pd.DatetimeIndex(self.obs["time"]) if not self.obs.empty else pd.DatetimeIndex([])
        obs = self.obs["value"].to_numpy(dtype="float64") if not self.obs.empty else np.empty(0)
        runs: dict[tuple[str, str], np.ndarray] = {}
        for key, frame in self.by_run.items() if len(times) else ():
            position = times.get_indexer(pd.DatetimeIndex(frame["time"]))
            found = position >= 0
            values = np.full(len(times), np.nan)
            values[position[found]] = frame["value"].to_numpy(dtype="float64")[found]
            runs[key] = values
        return ObsAligned(time=times.values, month=np.asarray(times.month), obs=obs, runs=runs)


@dataclass(frozen=True)
class DrawArrays:
    """A series ready to draw: float32 values, times as float32 epoch milliseconds at noon.

    Attributes
    ----------
    obs : tuple of numpy.ndarray
        ``(time, value)`` of the valid observed days.
    obs_band : tuple of numpy.ndarray
        ``(time, lower, upper)`` of the observation's 95 % band (± 1.96 σ), shut to zero
        width on days without data (see :func:`closed_band`).
    runs : dict
        ``(model, stage)`` → ``(time, value, lower, upper)``; lower/upper NaN without a band.
    banded : tuple of str
        Models whose posterior has a band.
    """

    obs: tuple[np.ndarray, np.ndarray]
    obs_band: tuple[np.ndarray, np.ndarray, np.ndarray]
    runs: dict[tuple[str, str], tuple[np.ndarray, ...]]
    banded: tuple[str, ...]


#: Half a day in milliseconds: daily values are drawn at the middle of their day.
_NOON_MS = 12 * 3600 * 1000


def epoch_ms(times: pd.Series | np.ndarray) -> np.ndarray:
    """Days as float32 milliseconds since 1970 (Bokeh's datetime axis unit), at their noon.

    Plain numbers with a datetime tick formatter draw the axis two orders of magnitude faster
    than datetimes (HoloViews converts those one by one). float32 holds today's epoch
    milliseconds to about two minutes, so a daily value placed at noon (the middle of the day
    it averages) can never show as the neighbouring date, and every time column of an update
    is half the bytes of float64.
    """
    ms = np.asarray(times, dtype="datetime64[ms]").astype("int64")
    return (ms - ms % 86_400_000 + _NOON_MS).astype("float32")


def closed_band(x: np.ndarray, lower: np.ndarray, upper: np.ndarray
                ) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """A band with zero width (not NaN) on days without data.

    HoloViews splits an area at every NaN into separate patches, ~15 ms a plot for a gappy
    flux record; pinching the band shut on missing days draws the same picture (nothing is
    shaded there) as one patch.

    Parameters
    ----------
    x : numpy.ndarray
        Positions (increasing).
    lower, upper : numpy.ndarray
        Band edges, NaN where there is no data.

    Returns
    -------
    x, lower, upper : numpy.ndarray
        The edges are equal on missing days, at the band's mid-line interpolated from the
        neighbouring days, and unchanged elsewhere; all empty when no day has data.
    """
    valid = np.isfinite(lower) & np.isfinite(upper)
    if valid.all():
        return x, lower, upper
    if not valid.any():
        return np.empty(0), np.empty(0), np.empty(0)
    mid = np.interp(x[~valid], x[valid], 0.5 * (lower[valid] + upper[valid]))
    lower, upper = lower.copy(), upper.copy()
    lower[~valid] = upper[~valid] = mid
    return x, lower, upper


@dataclass(frozen=True)
class ObsAligned:
    """Observations and runs on the same days: the observation record's.

    Attributes
    ----------
    time : numpy.ndarray of datetime64
        The observation days.
    month : numpy.ndarray of int
        Their calendar months.
    obs : numpy.ndarray
        Observed values (NaN: missing).
    runs : dict
        ``(model, stage)`` → the run's values on those days (NaN where the run has none).
    """

    time: np.ndarray
    month: np.ndarray
    obs: np.ndarray
    runs: dict[tuple[str, str], np.ndarray]


def _band(ds: xr.Dataset, variable: str) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Value and 95 % band of a run: ``± 1.96 σ`` or an ensemble's predictive interval.

    For an ensemble of ``m`` members the band is ``x̄ ± t₍m−1, 0.975₎ · s · √(1 + 1/m)``
    (sample sd ``s``, ddof = 1), the interval coverage is scored with (without the observation
    error), never raw quantiles of the members, which are too narrow for small ensembles.
    """
    from dashboard.metrics.uncertainty import ensemble_predictive_interval

    da = ds[variable]
    if "member" in da.dims:
        values = da.transpose("member", ...).values
        # A day missing in one member is missing for the ensemble (mean and band NaN).
        mean, half = ensemble_predictive_interval(values, axis=0)
        return mean, mean - half, mean + half
    values = da.values
    unc_name = f"{variable}_unc" if f"{variable}_unc" in ds else f"{variable}_post_unc"
    if unc_name in ds:
        unc = ds[unc_name].values
        return values, values - 1.96 * unc, values + 1.96 * unc
    nan = np.full_like(values, np.nan, dtype="float64")
    return values, nan, nan


def _for_display(arrays: tuple[np.ndarray, ...], units: str
                 ) -> tuple[tuple[np.ndarray, ...], str]:
    """Each array in the display units of ``units`` (:func:`loaders.variables.display_values`)."""
    converted = [display_values(a, units) for a in arrays]
    return tuple(values for values, _ in converted), converted[0][1]


def site_series(archive: Archive, site: str, variable: str, scenario: int,
                model_ids: list[str]) -> SiteSeries:
    """Collect observations and every model's prior and posterior for one site.

    Parameters
    ----------
    archive : loaders.archive.Archive
        The archive.
    site : str
        Site id.
    variable : str
        ``NEE``, ``Qle``, ``Qh`` or a CMIP variable (no observations then).
    scenario : int
        Calibration scenario; priors follow :meth:`Archive.prior_row` (Scenario 1 fallback).
    model_ids : list of str
        ``<model>.<version>`` ids to include.

    Returns
    -------
    SiteSeries
        Tidy frames for drawing.
    """
    problems: list[str] = []
    obs_frame = pd.DataFrame(columns=["time", "value", "unc"])
    units = ""
    n_valid = n_days = 0
    obs = archive.open_observations(site)
    obs_path = archive.observation_path(site)
    if obs is None and obs_path:
        problems.append(archive.errors.get(obs_path, f"{obs_path}: observations unreadable"))
    if obs is not None and variable in obs:
        unc = obs[f"{variable}_unc"].values if f"{variable}_unc" in obs else np.nan
        obs_frame = pd.DataFrame({"time": obs["time"].values, "value": obs[variable].values,
                                  "unc": unc})
        units = obs[variable].attrs.get("units", "")
        n_valid = int(np.isfinite(obs[variable].values).sum())
        n_days = int(obs.sizes["time"])
    frames = []
    for model_id in model_ids:
        rows = []
        prior = archive.prior_row(model_id, scenario, site)
        if prior is not None:
            rows.append(("Prior", prior["path"]))
        post = archive.runs(site=site, scenario=scenario, model_id=model_id)
        post = post[post["stage"].isin(["Posterior", "Spatial", "Temporal"])]
        rows += [("Posterior", p) for p in post["path"]]
        for stage, path in rows:
            ds = archive.open_run(path)
            if ds is None:
                problems.append(archive.errors.get(path, f"{path}: unreadable"))
                continue
            if variable not in ds:
                continue
            value, lower, upper = _band(ds, variable)
            stored = ds[variable].attrs.get("units", "")
            # Shown in the units the community reads (gC m-2 d-1, mm d-1, °C); the observed
            # fluxes are already in theirs.
            (value, lower, upper), shown = _for_display((value, lower, upper), stored)
            units = units or shown
            frames.append(pd.DataFrame({
                "model": model_id, "stage": stage, "time": ds["time"].values,
                "value": value, "lower": lower, "upper": upper,
            }))
    runs = (pd.concat(frames, ignore_index=True) if frames
            else pd.DataFrame(columns=["model", "stage", "time", "value", "lower", "upper"]))
    return SiteSeries(obs=obs_frame, runs=runs, units=units, n_obs_valid=n_valid,
                      n_days=n_days, problems=problems)
