"""The query layer: pure functions from a selection and the data service to tidy frames.

Views draw what these functions return; ``callmip metrics`` and the exporter call the same
functions, so a number on the screen is the number in a table (Lumen's Source → Pipeline → View,
with :class:`~dashboard.service.DataService` as the source). No Panel and no HoloViews here.

Every frame returned is the caller's own (a copy or a new frame): a session may modify it without
changing what another session gets. Frames describing the whole archive (coverage, site order)
are computed once per service, never per session. Each rule lives in one place:

- prior pairing: :meth:`loaders.archive.Archive.prior_row` (and the metric tables' pairing);
- the generalisation gap: the ``summary`` metric table (:func:`dashboard.metrics.tables.summarise`),
  read by :func:`generalisation_frame`;
- the observation file of a site: :meth:`loaders.archive.Archive.observation_path`;
- the models shown for a selection: :func:`shown_models`.
"""

from __future__ import annotations

import numpy as np
import pandas as pd
import xarray as xr

from dashboard.metrics import taylor_statistics
from dashboard.metrics.common import DEFAULT_MIN_N
from dashboard.service import DataService
from dashboard.sitedata import SiteSeries
from dashboard.state import SITE_VARIABLES

#: Coverage status → code (the order of the coverage colours).
COVERAGE_CODES = {"missing": 0, "prior only": 1, "posterior only": 2, "prior + posterior": 3,
                  "broken": 4}

#: Map metrics whose values are statistics across models (not one model's score).
_SPREAD_METRICS = ("spread_reduction",)


def shown_models(service: DataService, models: list[str] | tuple[str, ...]) -> list[str]:
    """The models a selection shows: the chosen ones that exist, or every model when none is."""
    available = service.model_ids()
    chosen = [m for m in models if m in available]
    return chosen or list(available)


def highlighted_models(service: DataService, models: list[str] | tuple[str, ...]
                       ) -> list[str]:
    """The models a site's plots draw in colour: the chosen ones, else the archive's first.

    The others are drawn muted, as context: five models' 18-year daily series in full colour
    cannot be told apart.
    """
    available = service.model_ids()
    chosen = [m for m in models if m in available]
    return chosen or available[:1]


def site_order(service: DataService) -> list[str]:
    """Sites ordered calibration first, then validation, then others, alphabetically within."""
    def compute() -> list[str]:
        sites = service.sites
        rank = sites["role"].map({"Cal": 0, "Val": 1}).fillna(2)
        return list(sites.assign(_r=rank).sort_values(["_r", "site_id"])["site_id"])

    return list(service.frame(("site_order",), compute))


# ------------------------------------------------------------------------------- overview
def coverage_frame(service: DataService, scenario: int) -> pd.DataFrame:
    """One row per (model, site): what was submitted for ``scenario`` and whether it reads.

    Columns ``site, model, status, code, cal_val``. Status is ``broken`` when a file of the pair
    cannot be read, else which of prior (the scenario's own or Scenario 1's) and posterior-like
    runs exist. Computed once per service and scenario (the tables are computed first, which
    records every unreadable file).
    """
    def compute() -> pd.DataFrame:
        service.tables()
        runs = service.archive.site_runs
        errors = set(service.archive.errors)
        index = pd.MultiIndex.from_product([service.model_ids(), site_order(service)],
                                           names=["model", "site"])
        mine = runs.assign(
            prior=(runs["stage"] == "Prior") & runs["scenario"].isin([scenario, 1]),
            post=(runs["stage"] != "Prior") & (runs["scenario"] == scenario),
            broken=runs["path"].isin(errors))
        relevant = mine[mine["prior"] | mine["post"]]
        grouped = relevant.groupby(["model_id", "site"])
        flags = pd.DataFrame({"prior": grouped["prior"].any(), "post": grouped["post"].any(),
                              "broken": grouped["broken"].any()})
        flags.index.names = ["model", "site"]
        flags = flags.reindex(index, fill_value=False).astype(bool)
        cal_val = mine.groupby(["model_id", "site"])["cal_val"].first()
        cal_val.index.names = ["model", "site"]
        status = np.select(
            [flags["broken"], flags["prior"] & flags["post"], flags["prior"], flags["post"]],
            ["broken", "prior + posterior", "prior only", "posterior only"], "missing")
        frame = pd.DataFrame({
            "site": index.get_level_values("site"), "model": index.get_level_values("model"),
            "status": status,
            "cal_val": cal_val.reindex(index).fillna("").to_numpy(dtype=object)})
        frame["code"] = frame["status"].map(COVERAGE_CODES).astype(int)
        return frame[["site", "model", "status", "code", "cal_val"]]

    return service.frame(("coverage", int(scenario)), compute).copy()


def scorecard_frame(service: DataService, scenario: int, variable: str,
                    min_n: int = DEFAULT_MIN_N) -> pd.DataFrame:
    """Misfit reduction per model × site for one scenario and variable.

    Columns ``site, model, misfit_reduction, n, rmse_prior, rmse_post, cal_val, label,
    insufficient``; insufficient cells have NaN misfit reduction and a label ``n=…<min_n``.
    Rows follow :func:`site_order`, then model.
    """
    cols = ["site", "model", "misfit_reduction", "n", "rmse_prior", "rmse_post", "cal_val",
            "label", "insufficient"]
    table = service.table("misfit_reduction")
    if table.empty:
        return pd.DataFrame(columns=cols)
    t = table[(table["scenario"] == scenario) & (table["variable"] == variable)
              & (table["stage"] != "Temporal")].copy()
    t["model"] = t["model"] + "." + t["version"]
    t["insufficient"] = t["insufficient"].astype(bool)
    t.loc[t["insufficient"], "misfit_reduction"] = np.nan
    t["label"] = [f"n={int(n)}<{min_n}" if bad else f"{v:+.2f}"
                  for v, n, bad in zip(t["misfit_reduction"], t["n"].fillna(0),
                                       t["insufficient"], strict=True)]
    order = {s: i for i, s in enumerate(site_order(service))}
    t = t.assign(_o=t["site"].map(order)).sort_values(["_o", "model"])
    return t[cols].reset_index(drop=True)


def generalisation_frame(service: DataService, scenario: int, variable: str) -> pd.DataFrame:
    """Calibration vs validation improvement per model: the generalisation gap.

    Read from the ``summary`` metric table, the one definition ``callmip metrics`` also writes:
    median misfit reduction at calibration and at validation sites (stages Posterior and
    Spatial; v1 Temporal runs cover another period and are left out), the number of cases on
    each side and the gap (Cal − Val; positive: calibration helps less where it was not fitted).
    """
    columns = ["model", "median misfit reduction, calibration sites", "n sites (Cal)",
               "median misfit reduction, validation sites", "n sites (Val)",
               "generalisation gap (Cal − Val)"]
    summary = service.table("summary")
    if summary.empty:
        return pd.DataFrame(columns=columns)
    mine = summary[(summary["scenario"] == scenario) & (summary["variable"] == variable)
                   & (summary["model"] != "all")]
    mine = mine.assign(model_id=mine["model"] + "." + mine["version"])
    by_side = mine[mine["group_by"] == "cal_val"].pivot_table(
        index="model_id", columns="group", values=["median_misfit_reduction", "n_cases"],
        aggfunc="first")
    gap = mine[mine["group_by"] == "all"].set_index("model_id")["generalisation_gap"]
    models = sorted(set(by_side.index) | set(gap.index))
    if not models:
        return pd.DataFrame(columns=columns)

    def side(value: str, group: str) -> pd.Series:
        if (value, group) in by_side.columns:
            return by_side[(value, group)].reindex(models)
        return pd.Series(np.nan, index=models)

    frame = pd.DataFrame({
        "model": models,
        columns[1]: side("median_misfit_reduction", "Cal").to_numpy(dtype=float),
        columns[2]: side("n_cases", "Cal").to_numpy(dtype=float),
        columns[3]: side("median_misfit_reduction", "Val").to_numpy(dtype=float),
        columns[4]: side("n_cases", "Val").to_numpy(dtype=float),
        columns[5]: gap.reindex(models).to_numpy(dtype=float),
    })
    for col in (columns[2], columns[4]):
        frame[col] = frame[col].fillna(0).astype(int)
    return frame.round(3)


# ---------------------------------------------------------------------------------- sites
def site_map_frame(service: DataService, metric: str, variable: str, scenario: int,
                   stage: str, models: list[str] | tuple[str, ...]) -> pd.DataFrame:
    """One row per site: coordinates, role, IGBP, and the map value with its n.

    Per-model metrics (misfit reduction, χ², RMSE) are summarised across the shown models by
    their median (``n_models`` counts them); spread reduction is already a statistic across
    models (``n_models`` then counts the models behind it). Insufficient values are NaN and
    labelled ``insufficient data``. Rows are sorted by site.
    """
    sites = service.sites
    frame = pd.DataFrame({
        "site": sites["site_id"].to_numpy(), "name": sites["name"].to_numpy(),
        "lon": sites["lon"].to_numpy(dtype=float), "lat": sites["lat"].to_numpy(dtype=float),
        "role": sites["role"].to_numpy(), "igbp": sites["igbp"].to_numpy(),
    })
    value = pd.Series(np.nan, index=frame["site"])
    count = pd.Series(0, index=frame["site"], dtype="int64")
    if metric in _SPREAD_METRICS:
        table = service.table("spread")
        if not table.empty:
            t = table[(table["scenario"] == scenario) & (table["variable"] == variable)
                      & (table["stage"] != "Temporal")]  # v1 Temporal runs: another period
            t = t.groupby("site").first()
            ok = ~t["insufficient"].astype(bool)
            value.update(t.loc[ok, metric])
            count.update(t["n_models"].astype("int64"))
    else:
        name = "misfit_reduction" if metric.startswith("misfit") else "site_scores"
        table = service.table(name)
        if not table.empty:
            t = table[(table["scenario"] == scenario) & (table["variable"] == variable)]
            t = t[(t["model"] + "." + t["version"]).isin(shown_models(service, models))]
            t = t[t["stage"] == stage] if name == "site_scores" else t[t["stage"] != "Temporal"]
            t = t[~t["insufficient"].astype(bool)]
            grouped = t.groupby("site")
            value.update(grouped[metric].median())
            count.update(grouped[metric].count().astype("int64"))
    frame["value"] = value.reindex(frame["site"]).to_numpy()
    frame["n_models"] = count.reindex(frame["site"]).fillna(0).astype(int).to_numpy()
    frame["label"] = ["insufficient data" if np.isnan(v) else f"{v:.2f}"
                      for v in frame["value"]]
    return frame.sort_values("site", ignore_index=True)


def site_series(service: DataService, site: str, variable: str, scenario: int,
                models: list[str] | tuple[str, ...]) -> SiteSeries:
    """Observations and every shown model's prior and posterior at one site.

    The series is shared by every session (its arrays are read-only): derive, never modify.
    """
    return service.site_series(site, variable, int(scenario),
                               tuple(shown_models(service, models)))


def taylor_frame(service: DataService, site: str, variable: str, scenario: int,
                 models: list[str] | tuple[str, ...], min_n: int = DEFAULT_MIN_N
                 ) -> pd.DataFrame:
    """Normalised SD, correlation and diagram coordinates per (model, stage).

    Columns ``model, stage, x, y, r, sd, n``; runs with fewer than ``min_n`` days shared with
    the observations are left out. Computed once per series.
    """
    data = site_series(service, site, variable, scenario, models)
    key = ("taylor", min_n)
    if key not in data.derived:
        aligned = data.on_obs_days
        stats = []
        obs = xr.DataArray(aligned.obs, coords={"time": aligned.time}, dims="time")
        for (model, stage), values in aligned.runs.items():
            t = taylor_statistics(obs.copy(data=values), obs)
            if t.get("n", 0) >= min_n and np.isfinite(t.get("r", np.nan)):
                sd = t.get("sd_ratio", t.get("normalised_sd"))
                angle = np.arccos(np.clip(t["r"], -1, 1))
                stats.append({"model": model, "stage": stage, "x": sd * np.cos(angle),
                              "y": sd * np.sin(angle), "r": t["r"], "sd": sd, "n": t["n"]})
        data.derived[key] = pd.DataFrame(stats,
                                         columns=["model", "stage", "x", "y", "r", "sd", "n"])
    return data.derived[key].copy()


def site_facts(service: DataService, site: str, scenario: int,
               models: list[str] | tuple[str, ...], min_n: int = DEFAULT_MIN_N) -> dict:
    """What the site card says: the site's description, valid days, warnings and problems.

    Returns
    -------
    dict
        ``known`` (bool), ``site``, ``name``, ``country``, ``igbp``, ``role``, ``lat``,
        ``lon``, ``has_obs``, ``valid_days`` (variable → (n valid, n days)), ``warnings``
        (sparse variables) and ``problems`` (unreadable files). Text is untrusted: escape it.
    """
    row = service.sites[service.sites["site_id"] == site]
    if row.empty:
        return {"known": False, "site": site}
    r = row.iloc[0]
    facts = {"known": True, "site": site, "name": str(r["name"]), "country": str(r["country"]),
             "igbp": str(r["igbp"]), "role": str(r["role"]), "lat": float(r["lat"]),
             "lon": float(r["lon"]), "valid_days": {}, "warnings": []}
    obs = service.archive.open_observations(site)
    facts["has_obs"] = obs is not None
    for variable in SITE_VARIABLES:
        if obs is None or variable not in obs:
            continue
        n = int(np.isfinite(obs[variable].values).sum())
        facts["valid_days"][variable] = (n, int(obs.sizes["time"]))
        if n < min_n:
            facts["warnings"].append(f"{variable} has only {n} valid days (minimum {min_n}): "
                                     "its scores are shown as insufficient data.")
    facts["problems"] = list(site_series(service, site, "NEE", scenario, models).problems)
    return facts
