"""The metric tables of a whole archive (``callmip metrics`` and the dashboard share them).

:func:`compute_tables` opens every site run, observation file and parameter table of an archive
once and returns seven tidy tables (a :class:`MetricTables` dict, keys in this order):

``site_scores``
    One row per (model, version, scenario, site, cal_val, stage, variable) for the comparison
    variables NEE, Qle, Qh against the site's observations: ``n, bias, rmse, nme, r, sd_ratio,
    chi2, coverage, crps, insufficient`` (definitions: :mod:`dashboard.metrics.scores`), plus
    ``igbp`` (from ``assets/sites.csv``), ``optimised`` (the scenario calibrates this variable),
    ``n_chi2``, ``n_coverage``, ``uncertainty_method``, ``file`` and ``dates_inferred``. A site
    without observations gives ``n = 0`` and ``insufficient = True``.
``misfit_reduction``
    One row per posterior-like run (stage ``Posterior``; for v1 names also ``Temporal`` and
    ``Spatial``, each paired with the prior like a posterior) and variable: ``n, rmse_prior,
    rmse_post, misfit_reduction, chi2_prior, chi2_post, misfit_reduction_chi2, insufficient,
    n_chi2`` on the days valid for obs, prior and posterior. The prior is the run's own
    scenario prior if submitted, else the Scenario 1 prior (``prior_scenario`` says which;
    ``<NA>`` when the model has no prior at that site), and ``dates_inferred``.
``spread``
    One row per (scenario, site, cal_val, stage, variable) for NEE, Qle, Qh and the
    non-optimised variables (gpp, reco, lai, tran, evspsblsoi, hfg, ts, cSoil, cLiveBioAbove,
    mrso, mrsos), with or without observations: ``spread_prior, spread_post,
    spread_reduction, n_models, n_days, insufficient, models`` (definitions:
    :mod:`dashboard.metrics.spread`; the prior of each model is paired as above; fewer than two
    models → insufficient).
``parameters``
    Every row of every parameter table with ``uncertainty_reduction``,
    ``prior_range_position``, ``edge_hitting`` (see :mod:`dashboard.metrics.parameters`).
``summary``
    Long format, one row per (group_by, group, model, version, scenario, variable):

    - ``group_by``: ``all`` (one group ``all``), ``cal_val`` (``Cal``/``Val``), ``igbp`` (the
      site's IGBP type, ``unknown`` when not in the site table) or ``stage``. The ``all``,
      ``cal_val`` and ``igbp`` groupings use the stages ``Posterior`` and ``Spatial`` (v1
      ``Temporal`` runs, a different period, appear only under ``stage``).
    - ``model``/``version``: one model, or ``model = "all"`` (version empty) pooling every
      model.
    - ``optimised``: whether the scenario calibrates the variable.
    - ``n_cases``: number of (model, site) misfit-reduction cases with enough data;
      ``median_misfit_reduction``, ``fraction_improved`` (share of those cases with
      misfit_reduction > 0), ``median_misfit_reduction_chi2`` (median over cases with a chi2
      value).
    - ``n_spread_cases``, ``median_spread_reduction``: sites with a sufficient spread reduction
      in the group (filled on ``model = "all"`` rows only: spread is a property of all models).
    - ``generalisation_gap`` (on ``group_by = "all"`` rows only) = median calibration-site
      misfit reduction − median validation-site misfit reduction, with ``n_cal`` and ``n_val``
      cases; positive = the calibration helps less where it was not fitted. NaN unless both
      sides have at least one case.

``scenarios``
    The scenario × variable grid per model (all six scenarios of protocol v2 §3.1, ``ran`` and
    ``calibrated`` marks) and across models (``model = "all"``), with cases and models counted:
    :func:`dashboard.metrics.strategies.scenario_table`.
``methods``
    One row per model: its model-information file (protocol v2 §12, ``info_status =
    "missing"`` without one) beside its Scenario 1 outcomes:
    :func:`dashboard.metrics.strategies.methods_table`.

The boolean column ``dates_inferred``, last in ``site_scores`` and ``misfit_reduction``, is
``True`` when a run's dates were inferred from the protocol's time conventions (v2 §6.2) rather
than decoded as written: a time axis ``days since <first day>`` valued ``1, 2, 3, …`` is read as
a 1-based day count (value 1 = the first day), one day earlier than CF decoding dates it
(``attrs["time_inferred"]`` of :func:`loaders.readers.open_site_run`; ``attrs["time_reading"]``
names the reading). ``0, 1, 2, …``, ``0.5, 1.5, …`` and the template's ``days since <day
before>`` valued ``1, 2, 3, …`` are read as encoded: ``False``. In ``misfit_reduction`` it is
``True`` when the posterior or its prior was inferred. ``callmip check`` names the reading in a
``time_reading`` warning.

Files that cannot be read are skipped and recorded (``MetricTables.errors``, also
``Archive.errors``); they never abort the tables.

Caching: results are kept in memory per process, keyed by (root, :meth:`Archive.signature`,
``min_n``) — the signature changes whenever a file is added, removed or modified — and on disk
as Parquet files under ``platformdirs.user_cache_dir("callmip-explorer")/metrics/
<signature>-<min_n>/`` (environment variable ``CALLMIP_CACHE_DIR`` replaces the base folder).
A cache written by another version of the metric definitions (:data:`METRICS_VERSION`) is
recomputed.
"""

from __future__ import annotations

import json
import logging
import math
import os
import shutil
import sys
import threading
import uuid
from collections import OrderedDict
from collections.abc import Callable, Iterable
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
import xarray as xr

from dashboard.metrics.common import DEFAULT_MIN_N
from dashboard.metrics.parameters import PARAMETER_METRIC_COLUMNS, parameter_metrics
from dashboard.metrics.scores import MISFIT_KEYS, SCORE_KEYS, misfit_reduction, score
from dashboard.metrics.spread import spread_reduction
from loaders.variables import MODEL_ONLY_VARIABLES, OBSERVED_VARIABLES

__all__ = ["DEFAULT_MIN_N", "METRICS_VERSION", "TABLE_NAMES", "MetricTables", "cache_dir",
           "clear_memory_cache", "compute_tables", "tables_to_json"]

log = logging.getLogger(__name__)

#: Version of the metric definitions and table layout; bump it to invalidate disk caches.
METRICS_VERSION = 4  # 2: dates_inferred column (issue #10); 3: parameters row, problems (#12);
#                      4: scenarios, methods tables (#16)

#: Keys of :func:`compute_tables`, in order.
TABLE_NAMES: tuple[str, ...] = ("site_scores", "misfit_reduction", "spread", "parameters",
                                "summary", "scenarios", "methods")

#: Variables compared with observations (defined once, in :mod:`loaders.variables`).
COMPARISON_VARIABLES: tuple[str, ...] = OBSERVED_VARIABLES

#: Variables without observations whose inter-model spread is reported.
NON_OPTIMISED_VARIABLES: tuple[str, ...] = MODEL_ONLY_VARIABLES

#: Stages scored against the prior like a posterior (v1 ``Temporal``/``Spatial`` included).
POSTERIOR_STAGES: tuple[str, ...] = ("Posterior", "Temporal", "Spatial")

#: Stages pooled in the ``all``, ``cal_val`` and ``igbp`` summaries.
SUMMARY_STAGES: tuple[str, ...] = ("Posterior", "Spatial")

_KEY_DTYPES = {"model": "str", "version": "str", "scenario": "int64", "site": "str",
               "cal_val": "str", "igbp": "str", "stage": "str", "variable": "str",
               "optimised": "bool"}

SITE_SCORE_SCHEMA: dict[str, str] = {
    **_KEY_DTYPES,
    "n": "int64", "bias": "float64", "rmse": "float64", "nme": "float64", "r": "float64",
    "sd_ratio": "float64", "chi2": "float64", "coverage": "float64", "crps": "float64",
    "insufficient": "bool", "n_chi2": "int64", "n_coverage": "int64",
    "uncertainty_method": "str", "file": "str", "dates_inferred": "bool",
}

MISFIT_SCHEMA: dict[str, str] = {
    **_KEY_DTYPES, "prior_scenario": "Int64",
    "n": "int64", "rmse_prior": "float64", "rmse_post": "float64",
    "misfit_reduction": "float64", "chi2_prior": "float64", "chi2_post": "float64",
    "misfit_reduction_chi2": "float64", "insufficient": "bool", "n_chi2": "int64",
    "dates_inferred": "bool",
}

SPREAD_SCHEMA: dict[str, str] = {
    "scenario": "int64", "site": "str", "cal_val": "str", "igbp": "str", "stage": "str",
    "variable": "str", "optimised": "bool", "spread_prior": "float64",
    "spread_post": "float64", "spread_reduction": "float64", "n_models": "int64",
    "n_days": "int64", "insufficient": "bool", "models": "str",
}

SUMMARY_SCHEMA: dict[str, str] = {
    "group_by": "str", "group": "str", "model": "str", "version": "str", "scenario": "int64",
    "variable": "str", "optimised": "bool", "n_cases": "int64",
    "median_misfit_reduction": "float64", "fraction_improved": "float64",
    "median_misfit_reduction_chi2": "float64", "n_spread_cases": "int64",
    "median_spread_reduction": "float64", "generalisation_gap": "float64", "n_cal": "Int64",
    "n_val": "Int64",
}

_PARAMETER_KEYS = ("model", "version", "scenario", "parameter", "pft")


class MetricTables(dict):
    """The five metric tables (a ``dict`` of DataFrames) plus what went wrong building them.

    Attributes
    ----------
    errors : dict of str to str
        Path → message for every file that could not be read.
    signature : str
        The archive signature the tables were computed for.
    min_n : int
        Minimum number of valid days used.
    source : str
        ``"computed"``, ``"memory"`` or ``"disk"`` (where the tables came from).
    """

    def __init__(self, tables: dict[str, pd.DataFrame] | None = None, *,
                 errors: dict[str, str] | None = None, signature: str = "",
                 min_n: int = DEFAULT_MIN_N, source: str = "computed") -> None:
        super().__init__(tables or {})
        self.errors = dict(errors or {})
        self.signature = signature
        self.min_n = min_n
        self.source = source

    def copy(self, source: str | None = None) -> MetricTables:  # type: ignore[override]
        """Return a copy (copies of the DataFrames), optionally with a new ``source``."""
        return MetricTables({k: v.copy() for k, v in self.items()}, errors=self.errors,
                            signature=self.signature, min_n=self.min_n,
                            source=self.source if source is None else source)


# --------------------------------------------------------------------------------------------
# Frames
# --------------------------------------------------------------------------------------------

def _frame(rows: list[dict[str, Any]], schema: dict[str, str]) -> pd.DataFrame:
    """A DataFrame with exactly the columns and dtypes of ``schema`` (extra keys dropped)."""
    data = {}
    for col, dtype in schema.items():
        values = [row.get(col) for row in rows]
        if dtype == "str":
            values = [None if v is None or (isinstance(v, float) and math.isnan(v)) else str(v)
                      for v in values]
        data[col] = pd.Series(values, dtype=dtype if dtype != "float64" else "float64")
    return pd.DataFrame(data, columns=list(schema))


def _sites_igbp() -> dict[str, str]:
    try:
        from loaders.sites import load_sites

        sites = load_sites()
    except Exception as exc:  # the site table is a nicety for grouping
        log.warning("site table unavailable (%s); igbp left empty", exc)
        return {}
    return {str(k): str(v) for k, v in sites["igbp"].dropna().items()}


def _optimised(scenario: int, variable: str) -> bool:
    from loaders.variables import SCENARIO_VARIABLES

    return variable in SCENARIO_VARIABLES.get(int(scenario), ())


def _usable(ds: xr.Dataset | None, var: str) -> xr.DataArray | None:
    """The variable if the dataset has it with at least one finite value."""
    if ds is None or var not in ds.data_vars:
        return None
    da = ds[var]
    if not bool(np.isfinite(da.values).any()):
        return None
    return da


def _dates_inferred(*datasets: xr.Dataset | None) -> bool:
    """Whether any of the runs had its dates inferred (``attrs["time_inferred"]``)."""
    return any(bool(ds.attrs.get("time_inferred", False)) for ds in datasets if ds is not None)


def _unc(ds: xr.Dataset | None, var: str) -> xr.DataArray | None:
    name = f"{var}_unc"
    return ds[name] if ds is not None and name in ds.data_vars else None


# --------------------------------------------------------------------------------------------
# Computation
# --------------------------------------------------------------------------------------------

def _progress(items: Iterable[Any], total: int, enabled: bool, desc: str) -> Iterable[Any]:
    if not enabled:
        return items
    from tqdm.auto import tqdm

    return tqdm(items, total=total, desc=desc, unit="file", file=sys.stderr, leave=False)


def _no_obs_score() -> dict[str, Any]:
    out: dict[str, Any] = {k: math.nan for k in SCORE_KEYS}
    out.update(n=0, n_chi2=0, n_coverage=0, insufficient=True, uncertainty_method=None)
    return out


def _no_obs_misfit() -> dict[str, Any]:
    out: dict[str, Any] = {k: math.nan for k in MISFIT_KEYS}
    out.update(n=0, n_chi2=0, insufficient=True)
    return out


def _compute(archive: Any, min_n: int, progress: bool) -> dict[str, pd.DataFrame]:
    """Score every run, site by site: only one site's runs are held at a time.

    The runs of a site, its observations and the priors paired with its posteriors are all at
    that site, so each site is complete on its own; the archive's byte-bounded cache decides
    what stays in memory afterwards.
    """
    igbp = _sites_igbp()
    runs = archive.site_runs
    prior_for = archive.prior_for  # the one pairing rule
    score_rows: list[dict[str, Any]] = []
    misfit_rows: list[dict[str, Any]] = []
    spread_rows: list[dict[str, Any]] = []
    groups = list(runs.groupby("site", sort=True))
    for site, site_rows in _progress(groups, len(groups), progress, "scoring sites"):
        _score_site(archive, str(site), site_rows, igbp, prior_for, min_n,
                    score_rows, misfit_rows, spread_rows)
    spread_rows.sort(key=lambda r: (r["scenario"], r["site"], r["stage"]))

    # 4. parameters
    frames = []
    for row in archive.parameter_files.itertuples(index=False):
        df = archive.read_parameters(row.path)
        if df is not None:
            frames.append(df)
    parameters = _parameters_table(frames)

    site_scores = _frame(score_rows, SITE_SCORE_SCHEMA)
    misfit = _frame(misfit_rows, MISFIT_SCHEMA)
    spread = _frame(spread_rows, SPREAD_SCHEMA)
    return {
        "site_scores": site_scores,
        "misfit_reduction": misfit,
        "spread": spread,
        "parameters": parameters,
        "summary": summarise(misfit, spread),
        **_strategy_tables(archive, site_scores, misfit, spread, parameters),
    }


def _strategy_tables(archive: Any, site_scores: pd.DataFrame, misfit: pd.DataFrame,
                     spread: pd.DataFrame, parameters: pd.DataFrame) -> dict[str, pd.DataFrame]:
    """The ``scenarios`` and ``methods`` tables (:mod:`dashboard.metrics.strategies`)."""
    from dashboard.metrics.strategies import methods_table, scenario_table

    infos = {}
    for row in archive.model_info_files.sort_values("path").itertuples(index=False):
        if row.model_id in infos:  # a .yaml and a .json: the first in path order counts
            archive.errors[row.path] = (f"a second model-information file for {row.model_id} "
                                        f"(ignored; {infos[row.model_id][0]} is used)")
            continue
        infos[row.model_id] = (row.path, archive.read_model_info(row.path))
    models = archive.model_ids()
    return {"scenarios": scenario_table(misfit, spread, models),
            "methods": methods_table(infos, models, misfit, site_scores, parameters)}


def _score_site(archive: Any, site: str, runs: pd.DataFrame, igbp: dict[str, str],
                prior_for: Callable[[str, int, str], tuple[int | None, str | None]],
                min_n: int, score_rows: list[dict[str, Any]], misfit_rows: list[dict[str, Any]],
                spread_rows: list[dict[str, Any]]) -> None:
    """Append the site scores, misfit reductions and spreads of one site's runs."""
    datasets: dict[str, xr.Dataset | None] = {}
    usable_memo: dict[tuple[int, str], xr.DataArray | None] = {}
    obs = archive.open_observations(site)

    def usable(ds: xr.Dataset | None, var: str) -> xr.DataArray | None:
        key = (id(ds), var)
        if key not in usable_memo:
            usable_memo[key] = _usable(ds, var)
        return usable_memo[key]

    def opened(path: str) -> xr.Dataset | None:
        if path not in datasets:
            datasets[path] = archive.open_run(path)
        return datasets[path]

    def observed(var: str) -> xr.DataArray | None:
        return obs[var] if obs is not None and var in obs.data_vars else None

    def keys(row: Any, variable: str) -> dict[str, Any]:
        return {"model": row.model, "version": row.version, "scenario": int(row.scenario),
                "site": row.site, "cal_val": row.cal_val, "igbp": igbp.get(row.site),
                "stage": row.stage, "variable": variable,
                "optimised": _optimised(row.scenario, variable)}

    # 1. site scores
    rows = list(runs.itertuples(index=False))
    for row in rows:
        ds = opened(row.path)
        if ds is None:
            continue
        for var in COMPARISON_VARIABLES:
            model = usable(ds, var)
            if model is None:
                continue
            o_da = observed(var)
            result = (_no_obs_score() if o_da is None else
                      score(model, o_da, _unc(obs, var), model_unc=_unc(ds, var), min_n=min_n))
            score_rows.append({**keys(row, var), **result, "file": Path(row.path).name,
                               "dates_inferred": _dates_inferred(ds)})

    # 2. misfit reduction (posterior-like runs against their paired prior)
    priors: dict[str, xr.Dataset | None] = {}
    for row in rows:
        post = datasets.get(row.path)
        if row.stage not in POSTERIOR_STAGES or post is None:
            continue
        prior_scenario, prior_path = prior_for(row.model_id, int(row.scenario), row.site)
        prior = opened(prior_path) if prior_path is not None else None
        priors[row.path] = prior
        for var in COMPARISON_VARIABLES:
            p_da, q_da, o_da = usable(prior, var), usable(post, var), observed(var)
            if q_da is None:
                continue
            if p_da is None or o_da is None:
                result = _no_obs_misfit()
            else:
                result = misfit_reduction(p_da, q_da, o_da, _unc(obs, var), min_n=min_n)
            misfit_rows.append({**keys(row, var), "prior_scenario": prior_scenario, **result,
                                "dates_inferred": _dates_inferred(prior, post)})

    # 3. spread (per scenario and posterior-like stage)
    post_runs = runs[runs["stage"].isin(POSTERIOR_STAGES)]
    for (scen, stage), group in post_runs.groupby(["scenario", "stage"], sort=True):
        pairs = {row.model_id: (priors[row.path], datasets[row.path])
                 for row in group.itertuples(index=False)
                 if datasets.get(row.path) is not None and priors.get(row.path) is not None}
        cal_val = group["cal_val"].dropna().iloc[0] if group["cal_val"].notna().any() else None
        for var in COMPARISON_VARIABLES + NON_OPTIMISED_VARIABLES:
            pri = {m: usable(p, var) for m, (p, _) in pairs.items()}
            pos = {m: usable(q, var) for m, (_, q) in pairs.items()}
            pri = {m: v for m, v in pri.items() if v is not None and pos.get(m) is not None}
            pos = {m: pos[m] for m in pri}
            if not pri:
                continue
            result = spread_reduction(pri, pos, min_n=min_n)
            spread_rows.append({
                "scenario": int(scen), "site": site, "cal_val": cal_val,
                "igbp": igbp.get(site), "stage": stage, "variable": var,
                "optimised": _optimised(scen, var), **result,
                "models": ", ".join(result["models"]),
            })


def _parameters_table(frames: list[pd.DataFrame]) -> pd.DataFrame:
    from loaders.readers import PARAMETER_COLUMNS

    base_cols = ["model", "version", "scenario", *PARAMETER_COLUMNS]
    if frames:
        df = pd.concat(frames, ignore_index=True)
    else:
        df = pd.DataFrame({c: pd.Series([], dtype="float64" if c in PARAMETER_COLUMNS[5:]
                                        else "str") for c in base_cols})
        df["scenario"] = df["scenario"].astype("int64")
    df = parameter_metrics(df)
    order = [c for c in base_cols if c in df.columns]
    rest = [c for c in df.columns if c not in order and c not in PARAMETER_METRIC_COLUMNS]
    df = df[order + rest + list(PARAMETER_METRIC_COLUMNS)]
    return df.sort_values(list(_PARAMETER_KEYS), ignore_index=True, kind="stable")


# --------------------------------------------------------------------------------------------
# Summary
# --------------------------------------------------------------------------------------------

def _group_stats(df: pd.DataFrame, by: list[str]) -> pd.DataFrame:
    usable = ~df["insufficient"].astype(bool) & df["misfit_reduction"].notna()
    work = df.assign(
        _mr=df["misfit_reduction"].where(usable),
        _mr_chi2=df["misfit_reduction_chi2"].where(usable),
        _improved=(df["misfit_reduction"] > 0).where(usable).astype("float64"),
    )
    grouped = work.groupby(by, sort=True, dropna=False)
    out = grouped.agg(n_cases=("_mr", "count"), median_misfit_reduction=("_mr", "median"),
                      fraction_improved=("_improved", "mean"),
                      median_misfit_reduction_chi2=("_mr_chi2", "median"))
    return out.reset_index()


def _spread_stats(df: pd.DataFrame, by: list[str]) -> pd.DataFrame:
    usable = ~df["insufficient"].astype(bool) & df["spread_reduction"].notna()
    work = df.assign(_sr=df["spread_reduction"].where(usable))
    out = work.groupby(by, sort=True, dropna=False).agg(
        n_spread_cases=("_sr", "count"), median_spread_reduction=("_sr", "median"))
    return out.reset_index()


def _gap(df: pd.DataFrame, by: list[str]) -> pd.DataFrame:
    usable = df[~df["insufficient"].astype(bool) & df["misfit_reduction"].notna()]
    cal = usable[usable["cal_val"] == "Cal"].groupby(by)["misfit_reduction"].agg(
        ["median", "count"]).rename(columns={"median": "_cal", "count": "n_cal"})
    val = usable[usable["cal_val"] == "Val"].groupby(by)["misfit_reduction"].agg(
        ["median", "count"]).rename(columns={"median": "_val", "count": "n_val"})
    both = cal.join(val, how="outer")
    both["generalisation_gap"] = both["_cal"] - both["_val"]
    both[["n_cal", "n_val"]] = both[["n_cal", "n_val"]].fillna(0)
    return both.drop(columns=["_cal", "_val"]).reset_index()


def summarise(misfit: pd.DataFrame, spread: pd.DataFrame) -> pd.DataFrame:
    """Summaries by IGBP type, Cal vs Val and stage, and the generalisation gap.

    Parameters
    ----------
    misfit : pandas.DataFrame
        The ``misfit_reduction`` table.
    spread : pandas.DataFrame
        The ``spread`` table.

    Returns
    -------
    pandas.DataFrame
        The ``summary`` table (columns documented in the module docstring).
    """
    groupings: list[tuple[str, Callable[[pd.DataFrame], pd.Series], bool]] = [
        ("all", lambda d: pd.Series("all", index=d.index, dtype="str"), True),
        ("cal_val", lambda d: d["cal_val"].fillna("unknown"), True),
        ("igbp", lambda d: d["igbp"].fillna("unknown"), True),
        ("stage", lambda d: d["stage"], False),
    ]
    pooled_misfit = misfit.assign(model="all", version="")
    frames = []
    for name, grouper, restrict in groupings:
        mis = misfit[misfit["stage"].isin(SUMMARY_STAGES)] if restrict else misfit
        pooled = pooled_misfit.loc[mis.index]
        spr = spread[spread["stage"].isin(SUMMARY_STAGES)] if restrict else spread
        mis = mis.assign(group=grouper(mis))
        pooled = pooled.assign(group=grouper(pooled))
        spr = spr.assign(group=grouper(spr))
        keys = ["group", "model", "version", "scenario", "variable"]
        per_model = _group_stats(mis, keys)
        all_models = _group_stats(pooled, keys)
        spread_stats = _spread_stats(spr, ["group", "scenario", "variable"]).assign(
            model="all", version="")
        all_models = all_models.merge(spread_stats, on=keys, how="outer")
        table = pd.concat([per_model, all_models], ignore_index=True)
        if name == "all":
            gap_keys = ["model", "version", "scenario", "variable"]
            gaps = pd.concat([_gap(mis, gap_keys), _gap(pooled, gap_keys)], ignore_index=True)
            table = table.merge(gaps, on=gap_keys, how="left")
        frames.append(table.assign(group_by=name))
    if frames:
        out = pd.concat(frames, ignore_index=True)
    else:  # pragma: no cover - groupings is never empty
        out = pd.DataFrame(columns=list(SUMMARY_SCHEMA))
    if out.empty:
        return _frame([], SUMMARY_SCHEMA)
    out["optimised"] = [_optimised(s, v) for s, v in zip(out["scenario"], out["variable"],
                                                         strict=True)]
    for col in ("n_cases", "n_spread_cases"):
        out[col] = out[col].fillna(0) if col in out else 0
    for col in SUMMARY_SCHEMA:
        if col not in out:
            out[col] = np.nan
    records = out[list(SUMMARY_SCHEMA)].to_dict(orient="records")
    for rec in records:
        for col in ("n_cal", "n_val"):
            if rec[col] is not None and not pd.isna(rec[col]):
                rec[col] = int(rec[col])
            else:
                rec[col] = None
    frame = _frame(records, SUMMARY_SCHEMA)
    order = {"all": 0, "cal_val": 1, "igbp": 2, "stage": 3}
    frame = frame.assign(_o=frame["group_by"].map(order),
                         _m=(frame["model"] != "all").astype(int))
    frame = frame.sort_values(["_o", "group", "scenario", "variable", "_m", "model", "version"],
                              kind="stable", ignore_index=True)
    return frame.drop(columns=["_o", "_m"])


# --------------------------------------------------------------------------------------------
# Caching
# --------------------------------------------------------------------------------------------

_MEMORY: OrderedDict[tuple[str, str, int], MetricTables] = OrderedDict()
_MEMORY_SIZE = 8
_MEMORY_LOCK = threading.Lock()


def clear_memory_cache() -> None:
    """Forget the tables kept in memory (disk caches stay)."""
    with _MEMORY_LOCK:
        _MEMORY.clear()


def cache_dir() -> Path:
    """Base folder of the on-disk metric caches (``$CALLMIP_CACHE_DIR`` or the user cache)."""
    base = os.environ.get("CALLMIP_CACHE_DIR")
    if not base:
        import platformdirs

        base = platformdirs.user_cache_dir("callmip-explorer")
    return Path(base) / "metrics"


def _disk_folder(signature: str, min_n: int) -> Path:
    return cache_dir() / f"{signature}-{min_n}"


def _read_disk(signature: str, min_n: int) -> MetricTables | None:
    folder = _disk_folder(signature, min_n)
    meta_path = folder / "meta.json"
    if not meta_path.exists():
        return None
    try:
        meta = json.loads(meta_path.read_text())
        if meta.get("version") != METRICS_VERSION:
            return None
        tables = {name: pd.read_parquet(folder / f"{name}.parquet") for name in TABLE_NAMES}
    except Exception as exc:  # a broken cache is recomputed, never fatal
        log.warning("ignoring unreadable metrics cache %s: %s", folder, exc)
        return None
    return MetricTables(tables, errors=meta.get("errors", {}), signature=signature,
                        min_n=min_n, source="disk")


def _write_disk(tables: MetricTables) -> None:
    folder = _disk_folder(tables.signature, tables.min_n)
    tmp = folder.parent / f".tmp-{folder.name}-{uuid.uuid4().hex[:8]}"
    try:
        tmp.mkdir(parents=True, exist_ok=False)
        for name in TABLE_NAMES:
            tables[name].to_parquet(tmp / f"{name}.parquet", index=False)
        (tmp / "meta.json").write_text(json.dumps(
            {"version": METRICS_VERSION, "signature": tables.signature,
             "min_n": tables.min_n, "errors": tables.errors}, indent=1))
        if folder.exists():
            shutil.rmtree(folder, ignore_errors=True)
        os.replace(tmp, folder)
    except Exception as exc:  # caching is an optimisation: never fail the tables for it
        log.warning("could not write the metrics cache %s: %s", folder, exc)
        shutil.rmtree(tmp, ignore_errors=True)


def _root_key(root: str) -> str:
    if "://" in root:
        return root
    try:
        return str(Path(root).resolve())
    except OSError:
        return root


def compute_tables(root_or_archive: Any, *, min_n: int = DEFAULT_MIN_N,
                   progress: bool = False) -> MetricTables:
    """Compute (or fetch from cache) the metric tables of an archive.

    Parameters
    ----------
    root_or_archive : str, path-like or loaders.archive.Archive
        A data folder or an :class:`~loaders.archive.Archive` already built.
    min_n : int, default DEFAULT_MIN_N
        Minimum number of valid days behind a metric (below it: NaN and ``insufficient``).
    progress : bool, default False
        Show a progress bar (tqdm, on stderr) over the runs.

    Returns
    -------
    MetricTables
        A dict with keys ``site_scores, misfit_reduction, spread, parameters, summary,
        scenarios, methods`` (in that order; columns in the module docstring) and the
        attribute ``errors`` (unreadable files).

    Raises
    ------
    FileNotFoundError
        If a local data root does not exist.
    """
    from loaders.archive import Archive

    if min_n < 1:
        raise ValueError(f"min_n must be at least 1, not {min_n}")
    archive = (root_or_archive if isinstance(root_or_archive, Archive)
               else Archive(root_or_archive))
    signature = archive.signature()
    key = (_root_key(archive.root), signature, int(min_n))
    with _MEMORY_LOCK:
        cached = _MEMORY.get(key)
        if cached is not None:
            _MEMORY.move_to_end(key)
    if cached is not None:
        archive.errors.update(cached.errors)
        return cached.copy(source="memory")
    tables = _read_disk(signature, int(min_n))
    if tables is not None:
        archive.errors.update(tables.errors)
    else:
        computed = _compute(archive, int(min_n), progress)
        tables = MetricTables({name: computed[name] for name in TABLE_NAMES},
                              errors=dict(archive.errors), signature=signature,
                              min_n=int(min_n), source="computed")
        _write_disk(tables)
    with _MEMORY_LOCK:
        _MEMORY[key] = tables.copy()
        while len(_MEMORY) > _MEMORY_SIZE:
            _MEMORY.popitem(last=False)
    return tables


# --------------------------------------------------------------------------------------------
# JSON
# --------------------------------------------------------------------------------------------

def _json_value(value: Any) -> Any:
    if value is None or value is pd.NA or value is pd.NaT:
        return None
    if isinstance(value, (bool, np.bool_)):
        return bool(value)
    if isinstance(value, (int, np.integer)):
        return int(value)
    if isinstance(value, (float, np.floating)):
        f = float(value)
        return f if math.isfinite(f) else None
    if isinstance(value, str):
        return value
    if isinstance(value, pd.Timestamp):
        return value.isoformat()
    if isinstance(value, np.datetime64):
        return None if np.isnat(value) else pd.Timestamp(value).isoformat()
    if isinstance(value, (list, tuple, np.ndarray)):
        return [_json_value(v) for v in value]
    if isinstance(value, dict):
        return {str(k): _json_value(v) for k, v in value.items()}
    try:
        if pd.isna(value):
            return None
    except (TypeError, ValueError):
        pass
    return str(value)


def tables_to_json(tables: dict[str, pd.DataFrame]) -> dict[str, list[dict[str, Any]]]:
    """Convert metric tables to JSON-safe lists of records.

    NaN, infinities and missing values become ``None``; numpy scalars become Python numbers and
    bools; timestamps ISO strings.

    Parameters
    ----------
    tables : dict of str to pandas.DataFrame
        Output of :func:`compute_tables`.

    Returns
    -------
    dict of str to list of dict
        Same keys, one dict per row.
    """
    out: dict[str, list[dict[str, Any]]] = {}
    for name, df in tables.items():
        columns = [str(c) for c in df.columns]
        out[name] = [
            {col: _json_value(v) for col, v in zip(columns, row, strict=True)}
            for row in df.itertuples(index=False, name=None)
        ]
    return out
