"""Checking a participant's uploaded files, and comparing them with the community (no Panel).

- :func:`check_stored` runs the protocol checks of ``callmip check`` on one uploaded file
  (:func:`loaders.protocol.check_file`, with the served archive's observations for the number
  of days) and :func:`describe_file` says what the file is (model, site, scenario, stage,
  period, variables with units). Reports name the file by its upload name: no server path
  reaches the participant.
- :func:`reports_json` is the ``callmip check --json`` contract; :func:`reports_markdown` the
  same as Markdown, with every text from the files HTML-escaped.
- :class:`SessionService` puts the participant's runs beside the community's for the Sites
  view's plots (:class:`dashboard.views.site_plots.SitePlots`): it reads the shared
  :class:`~dashboard.service.DataService` (observations and community series, read-only) and
  opens the uploaded runs itself, from the session folder, keeping them in the session only.
  Nothing is added to the service's catalog, tables or caches.
- :func:`comparison_table`: the participant's misfit next to the community's, their place in
  the community's spread, and whether their posterior improves on their prior.
"""

from __future__ import annotations

import html
import json
import warnings
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
import xarray as xr

from dashboard.metrics.common import DEFAULT_MIN_N
from dashboard.service import DataService
from dashboard.sitedata import SiteSeries, _band, _for_display
from dashboard.state import SITE_VARIABLES
from dashboard.uploads import StoredFile
from loaders.naming import parse_name
from loaders.protocol import CheckReport, ObservationIndex, check_file
from loaders.readers import _READ_LOCK, CalLMIPFileError, open_raw, open_site_run, read_site_time

#: Suffix of an uploaded model's id in plots and tables (never confused with the archive's).
UPLOADED = " (yours)"
#: Most variables listed in a file's description.
MAX_LISTED = 60


@dataclass
class CheckedFile:
    """One uploaded file, its report and its description.

    Attributes
    ----------
    stored : StoredFile
        Where the file is kept (session folder) and the name shown.
    report : CheckReport
        The protocol report; its ``path`` is the shown name.
    description : dict
        What the file is (:func:`describe_file`).
    """

    stored: StoredFile
    report: CheckReport
    description: dict = field(default_factory=dict)

    @property
    def name(self) -> str:
        """The shown name."""
        return self.stored.name


def observation_index(service: DataService) -> ObservationIndex:
    """The served archive's observation files, indexed once per service."""
    return service.frame(("check_obs_index",), lambda: ObservationIndex(service.root))


def _scrub(text: str, stored: StoredFile) -> str:
    """Replace the server path of ``stored`` in a message by its shown name."""
    path = str(stored.path)
    text = text.replace(path, stored.name)
    folder = str(stored.path.parent)
    return text.replace(folder + "/", "").replace(folder, "")


def check_stored(stored: StoredFile, service: DataService | None = None) -> CheckedFile:
    """Check one uploaded file against the protocol and describe it; never raises.

    Parameters
    ----------
    stored : StoredFile
        The file in the session folder.
    service : DataService, optional
        The served archive: its observation files give the expected number of days.

    Returns
    -------
    CheckedFile
        The report (named by the upload name, no server path) and description.
    """
    index = observation_index(service) if service is not None else None
    with _READ_LOCK, warnings.catch_warnings():  # NetCDF reads are not thread-safe
        warnings.simplefilter("ignore")
        report = check_file(stored.path, obs_root=index)
        description = describe_file(stored.path)
    report.path = stored.name
    for items in (report.errors, report.warnings):
        items[:] = [type(item)(item.code, _scrub(item.message, stored)) for item in items]
    if report.skipped:
        report.skipped = _scrub(report.skipped, stored)
    if "problem" in description:
        description["problem"] = _scrub(description["problem"], stored)
    return CheckedFile(stored=stored, report=report, description=description)


def describe_file(path: str | Path) -> dict[str, Any]:
    """What a file is: name fields, period and variables with their units.

    Returns
    -------
    dict
        ``kind, model, version, scenario, site, cal_val, stage`` from the name;
        ``period`` (``"YYYY-MM-DD to YYYY-MM-DD"``) and ``n_days`` when the time axis reads;
        ``variables``: list of ``(name, units, dims)``; ``problem`` when the file cannot be
        read. Text is untrusted: escape it before display.
    """
    parsed = parse_name(str(path))
    out: dict[str, Any] = {k: getattr(parsed, k) for k in
                           ("kind", "model", "version", "scenario", "site", "cal_val", "stage")}
    out["variables"] = []
    if not str(path).lower().endswith((".nc", ".nc4")):
        return out
    try:
        with _READ_LOCK:
            raw = open_raw(path)
            try:
                names = [n for n in raw.data_vars if n != "time"]
                out["n_variables"] = len(names)
                out["variables"] = [
                    (str(n), str(raw[n].attrs.get("units", "")), tuple(map(str, raw[n].dims)))
                    for n in names[:MAX_LISTED]]
                if "time" in raw.variables:
                    try:
                        dates, _ = read_site_time(raw["time"], str(path))
                        dates = dates.dropna()
                        if len(dates):
                            out["period"] = f"{dates.min():%Y-%m-%d} to {dates.max():%Y-%m-%d}"
                            out["n_days"] = int(len(dates))
                    except (CalLMIPFileError, ValueError, TypeError, OverflowError) as exc:
                        out["time_problem"] = str(exc)
            finally:
                raw.close()
    except CalLMIPFileError as exc:
        out["problem"] = str(exc)
    except Exception as exc:  # any library error is a description, not a crash
        out["problem"] = f"cannot be read: {type(exc).__name__}: {exc}"
    return out


# --------------------------------------------------------------------------------------------
# Reports to download
# --------------------------------------------------------------------------------------------

def reports_json(checked: list[CheckedFile]) -> str:
    """The ``callmip check --json`` list of reports (paths are the upload names)."""
    return json.dumps([c.report.to_dict() for c in checked], indent=1)


def _md(text: object) -> str:
    """Untrusted text for Markdown: HTML-escaped, with Markdown's active characters escaped."""
    escaped = html.escape(str(text), quote=True)
    for char in "\\`*_[]|#":
        escaped = escaped.replace(char, "\\" + char)
    return " ".join(escaped.split())  # no line breaks: one item per line


def reports_markdown(checked: list[CheckedFile]) -> str:
    """The reports as a Markdown document (every text from the files escaped)."""
    n_fail = sum(not c.report.ok for c in checked)
    lines = ["# CalLMIP check report", "",
             f"{len(checked) - n_fail} of {len(checked)} files passed.", ""]
    for c in checked:
        r = c.report
        status = "SKIP" if r.skipped else ("PASS" if r.ok else "FAIL")
        lines += [f"## {status} {_md(c.name)}", ""]
        d = c.description
        facts = [f"{label}: {_md(d[key])}" for key, label in
                 (("kind", "kind"), ("model", "model"), ("version", "version"),
                  ("scenario", "scenario"), ("site", "site"), ("cal_val", "Cal/Val"),
                  ("stage", "stage"), ("period", "period"), ("n_days", "days"))
                 if d.get(key) is not None]
        if facts:
            lines += ["- " + "; ".join(facts)]
        if d.get("variables"):
            lines += ["- variables: " + ", ".join(
                f"{_md(n)} ({_md(u) or 'no units'})" for n, u, _ in d["variables"])]
        lines += [f"- **error** `{_md(i.code)}`: {_md(i.message)}" for i in r.errors]
        lines += [f"- warning `{_md(i.code)}`: {_md(i.message)}" for i in r.warnings]
        lines.append("")
    return "\n".join(lines)


# --------------------------------------------------------------------------------------------
# The participant's runs beside the community's
# --------------------------------------------------------------------------------------------

@dataclass(frozen=True)
class UploadedRun:
    """A readable uploaded site run."""

    path: Path
    name: str
    model_id: str
    site: str
    scenario: int
    stage: str

    @property
    def label(self) -> str:
        """How plots and tables name it: ``<model>.<version> (yours)``."""
        return self.model_id + UPLOADED


def uploaded_runs(checked: list[CheckedFile]) -> list[UploadedRun]:
    """The checked files that are site runs the comparison can read."""
    runs = []
    for c in checked:
        r = c.report
        if r.kind != "site_run" or r.model is None or r.site is None or "unreadable" in (
                r.error_codes) or "problem" in c.description:
            continue
        stage = "Prior" if r.stage == "Prior" else "Posterior"
        runs.append(UploadedRun(c.stored.path, c.name, f"{r.model}.{r.version}", r.site,
                                int(r.scenario or 1), stage))
    return runs


class SessionService:
    """The shared data service seen through one session's uploads (read-only on the service).

    The Sites view's plots ask their service for ``model_ids()`` and ``site_series(...)``; this
    answers with the community's models plus the uploaded ones, and with series in which the
    uploaded runs (opened here from the session folder, kept by this object only) stand beside
    the community's. Everything else is the shared service's, unchanged.

    Parameters
    ----------
    service : DataService
        The worker's shared service.
    runs : list of UploadedRun
        The session's readable uploaded runs.
    """

    def __init__(self, service: DataService, runs: list[UploadedRun]) -> None:
        self._service = service
        self.runs = list(runs)
        self.problems: list[str] = []
        self._opened: dict[Path, xr.Dataset | None] = {}
        self._series: dict[tuple, SiteSeries] = {}

    def __getattr__(self, name: str) -> Any:
        return getattr(self._service, name)

    def uploaded_ids(self) -> list[str]:
        """Labels of the uploaded models (``<model>.<version> (yours)``)."""
        return sorted({run.label for run in self.runs})

    def model_ids(self) -> list[str]:
        """The archive's models, then the uploaded ones."""
        return list(self._service.model_ids()) + self.uploaded_ids()

    def _open(self, run: UploadedRun) -> xr.Dataset | None:
        if run.path not in self._opened:
            try:
                with _READ_LOCK, warnings.catch_warnings():
                    warnings.simplefilter("ignore")
                    self._opened[run.path] = open_site_run(run.path)
            except Exception as exc:  # reported beside the plots, never raised
                self._opened[run.path] = None
                self.problems.append(f"{run.name}: cannot be read for plotting ({exc})"
                                     .replace(str(run.path), run.name))
        return self._opened[run.path]

    def site_series(self, site: str, variable: str, scenario: int,
                    models: tuple[str, ...] = ()) -> SiteSeries:
        """The community's series at ``site`` with this session's runs added (session-only)."""
        key = (site, variable, int(scenario))
        if key in self._series:
            return self._series[key]
        community = self._service.site_series(site, variable, int(scenario),
                                              tuple(self._service.model_ids()))
        frames = [community.runs]
        units = community.units
        for run in self.runs:
            if run.site != site or (run.stage != "Prior" and run.scenario != int(scenario)):
                continue
            ds = self._open(run)
            if ds is None or variable not in ds:
                continue
            value, lower, upper = _band(ds, variable)
            (value, lower, upper), shown = _for_display(
                (value, lower, upper), ds[variable].attrs.get("units", ""))
            units = units or shown
            frames.append(pd.DataFrame({"model": run.label, "stage": run.stage,
                                        "time": ds["time"].values, "value": value,
                                        "lower": lower, "upper": upper}))
        runs = pd.concat([f for f in frames if not f.empty], ignore_index=True) if any(
            not f.empty for f in frames) else community.runs.copy()
        series = SiteSeries(obs=community.obs.copy(), runs=runs, units=units,
                            n_obs_valid=community.n_obs_valid, n_days=community.n_days,
                            problems=list(community.problems) + self.problems)
        self._series[key] = series.prepare()
        return self._series[key]

    def close(self) -> None:
        """Forget the opened runs (the session ends)."""
        self._opened.clear()
        self._series.clear()


def _rmse(values: np.ndarray, obs: np.ndarray) -> tuple[float, int]:
    both = np.isfinite(values) & np.isfinite(obs)
    n = int(both.sum())
    if n == 0:
        return float("nan"), 0
    return float(np.sqrt(np.mean((values[both] - obs[both]) ** 2))), n


def comparison_table(series: SiteSeries, yours: list[str], variable: str,
                     min_n: int = DEFAULT_MIN_N) -> pd.DataFrame:
    """The participant's misfit beside the community's at one site, for one variable.

    For each uploaded model and stage: ``n`` (days with an observation and a value),
    ``rmse``; the community's posterior RMSE on the same days (median, min, max over
    ``n_models``) and the run's rank among them (1 = smallest); ``inside_spread``: the share of
    those days on which the run lies within the community posteriors' range (min–max); and for
    the posterior ``misfit_reduction`` = 1 − RMSE_post / RMSE_prior on the days both stages and
    the observations share. Values from fewer than ``min_n`` days are NaN (insufficient data).
    """
    aligned = series.on_obs_days
    obs = aligned.obs
    columns = ["model", "stage", "variable", "n", "rmse", "community_median_rmse",
               "community_min_rmse", "community_max_rmse", "n_models", "rank", "inside_spread",
               "misfit_reduction", "n_both_stages"]
    if variable not in SITE_VARIABLES or not len(obs):
        return pd.DataFrame(columns=columns)
    community = {m: v for (m, s), v in aligned.runs.items()
                 if s == "Posterior" and m not in yours}
    rows = []
    stack = np.vstack(list(community.values())) if community else np.empty((0, len(obs)))
    for model in yours:
        for stage in ("Prior", "Posterior"):
            values = aligned.runs.get((model, stage))
            if values is None:
                continue
            rmse, n = _rmse(values, obs)
            shared = np.isfinite(values) & np.isfinite(obs)
            others = []
            for other in community.values():
                r, n_other = _rmse(np.where(shared, other, np.nan), obs)
                if n_other >= min_n:
                    others.append(r)
            inside = np.nan
            if len(stack) >= 2:
                days = shared & np.isfinite(stack).all(axis=0)
                if days.sum() >= min_n:
                    lo, hi = stack[:, days].min(axis=0), stack[:, days].max(axis=0)
                    inside = float(np.mean((values[days] >= lo) & (values[days] <= hi)))
            reduction, n_both = np.nan, 0
            if stage == "Posterior" and (model, "Prior") in aligned.runs:
                prior = aligned.runs[(model, "Prior")]
                both = shared & np.isfinite(prior)
                n_both = int(both.sum())
                if n_both >= min_n:
                    rp, _ = _rmse(np.where(both, prior, np.nan), obs)
                    rq, _ = _rmse(np.where(both, values, np.nan), obs)
                    reduction = 1.0 - rq / rp if rp > 0 else np.nan
            ok = n >= min_n
            rows.append({
                "model": model, "stage": stage, "variable": variable, "n": n,
                "rmse": rmse if ok else np.nan,
                "community_median_rmse": float(np.median(others)) if others and ok else np.nan,
                "community_min_rmse": float(np.min(others)) if others and ok else np.nan,
                "community_max_rmse": float(np.max(others)) if others and ok else np.nan,
                "n_models": len(others),
                "rank": int(1 + sum(o < rmse for o in others)) if others and ok else None,
                "inside_spread": inside, "misfit_reduction": reduction,
                "n_both_stages": n_both})
    return pd.DataFrame(rows, columns=columns)
