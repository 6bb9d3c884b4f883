"""Calibration strategies compared: scenarios side by side, methods beside outcomes.

Issue #16. Pure functions on the metric tables; no Panel, no HoloViews.

Two tables, both written by ``callmip metrics``:

``scenarios`` (:func:`scenario_table`)
    One row per (model, scenario, variable) for every model and **all six** scenarios of
    protocol v2 §3.1 (``ran = False`` where the model did not run the scenario, so a model with
    Scenario 1 only is listed, not dropped), and one row per (scenario, variable) with
    ``model = "all"`` summarising across models. ``calibrated`` marks the variables the
    scenario calibrates (the "diagonal"); the others show what calibrating on one stream did to
    the rest. Misfit reduction statistics use the stages ``Posterior`` and ``Spatial`` (as the
    ``summary`` table) and only cases with enough data.
``methods`` (:func:`methods_table`)
    One row per model (every model with site runs or a model-information file): the model
    information of protocol v2 §12 (:mod:`loaders.model_info`; ``info_status = "missing"``
    when the group sent no file) beside its Scenario 1 outcomes.

With a handful of models these tables *describe* the strategies; they cannot show that a
method causes an outcome.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd

from loaders.model_info import MODEL_INFO_COLUMNS, FieldSpec, ModelInfo
from loaders.variables import OBSERVED_VARIABLES, SCENARIO_VARIABLES

__all__ = ["METHODS_SCHEMA", "OUTCOME_COLUMNS", "SCENARIOS", "SCENARIO_SCHEMA",
           "methods_table", "scenario_label", "scenario_table"]

#: The calibration scenarios of protocol v2 §3.1.
SCENARIOS: tuple[int, ...] = tuple(sorted(SCENARIO_VARIABLES))
#: Stages pooled (the ``summary`` table's: v1 ``Temporal`` runs cover another period).
STAGES: tuple[str, ...] = ("Posterior", "Spatial")

SCENARIO_SCHEMA: dict[str, str] = {
    "model": "str", "version": "str", "scenario": "int64", "calibrated_on": "str",
    "variable": "str", "calibrated": "bool", "ran": "bool", "n_models": "int64",
    "models": "str", "n_cal": "int64", "median_misfit_reduction_cal": "float64",
    "n_cal_chi2": "int64", "median_misfit_reduction_chi2_cal": "float64", "n_val": "int64",
    "median_misfit_reduction_val": "float64", "generalisation_gap": "float64",
    "n_models_gap": "int64", "n_spread_sites": "int64", "median_spread_reduction": "float64",
}

#: Outcome columns of the ``methods`` table (Scenario 1, NEE, Qle and Qh pooled).
OUTCOME_COLUMNS: tuple[str, ...] = (
    "n_cal", "median_misfit_reduction_cal", "n_val", "median_misfit_reduction_val",
    "generalisation_gap", "n_coverage", "median_coverage", "n_parameters", "share_at_bounds",
)

_INFO_DTYPES = {"text": "str", "texts": "str", "word": "str", "words": "str",
                "bool": "boolean", "int": "Int64", "ints": "str"}


def _info_schema() -> dict[str, str]:
    from loaders.model_info import FIELDS

    kinds: dict[str, FieldSpec] = {spec.key: spec for spec in FIELDS}
    return {key: _INFO_DTYPES[kinds[key].kind] for key in MODEL_INFO_COLUMNS}


METHODS_SCHEMA: dict[str, str] = {
    "model": "str", "version": "str", "info_status": "str", "info_file": "str",
    "n_info_errors": "int64", "n_info_warnings": "int64", **_info_schema(),
    "scenarios_run": "str",
    "n_cal": "int64", "median_misfit_reduction_cal": "float64", "n_val": "int64",
    "median_misfit_reduction_val": "float64", "generalisation_gap": "float64",
    "n_coverage": "int64", "median_coverage": "float64", "n_parameters": "int64",
    "share_at_bounds": "float64",
}


def scenario_label(scenario: int) -> str:
    """``"Scen2: NEE"`` — the scenario and the variables it calibrates."""
    variables = SCENARIO_VARIABLES.get(int(scenario))
    return f"Scen{scenario}: {'+'.join(variables) if variables else '?'}"


def _frame(rows: list[dict[str, Any]], schema: dict[str, str]) -> pd.DataFrame:
    data = {}
    for col, dtype in schema.items():
        values = [row.get(col) for row in rows]
        if dtype == "str":
            values = [None if v is None or (isinstance(v, float) and np.isnan(v)) else str(v)
                      for v in values]
        elif dtype in ("boolean", "Int64"):
            values = [pd.NA if v is None or (isinstance(v, float) and np.isnan(v)) else v
                      for v in values]
        data[col] = pd.Series(values, dtype=dtype)
    return pd.DataFrame(data, columns=list(schema))


def _split(model_id: str) -> tuple[str, str]:
    model, _, version = model_id.partition(".")  # model names contain no dot
    return model, version


def _usable(misfit: pd.DataFrame) -> pd.DataFrame:
    """Posterior/Spatial cases with enough data, with a ``model_id`` column."""
    mis = misfit[misfit["stage"].isin(STAGES)]
    mis = mis[~mis["insufficient"].astype(bool) & mis["misfit_reduction"].notna()]
    return mis.assign(model_id=mis["model"] + "." + mis["version"])


def _median(values: Iterable[float]) -> float:
    arr = np.asarray([v for v in values if v is not None and np.isfinite(v)], dtype=float)
    return float(np.median(arr)) if arr.size else float("nan")


def scenario_table(misfit: pd.DataFrame, spread: pd.DataFrame,
                   model_ids: Iterable[str] = ()) -> pd.DataFrame:
    """The scenario × variable grid per model and across models.

    Parameters
    ----------
    misfit : pandas.DataFrame
        The ``misfit_reduction`` metric table.
    spread : pandas.DataFrame
        The ``spread`` metric table.
    model_ids : iterable of str
        Models to list even if they have no scored run (``<model>.<version>``).

    Returns
    -------
    pandas.DataFrame
        Columns :data:`SCENARIO_SCHEMA`. Per-model rows (``model`` a model name): ``ran``
        (the model has a readable posterior-like run of the scenario), ``n_cal`` / ``n_val``
        calibration / validation sites with a misfit reduction, their medians (and the χ²
        reduction's with ``n_cal_chi2``), ``generalisation_gap`` = median at calibration sites
        − median at validation sites (NaN unless both sides have a case). Rows with
        ``model = "all"`` (version empty): ``n_models`` models with a calibration-site median,
        ``models`` their ids, ``median_misfit_reduction_cal`` / ``_val`` / ``_chi2_cal`` the
        median over those models of each model's median (each model counts once; ``n_cal`` /
        ``n_val`` the cases behind them), ``generalisation_gap`` the median of the models' gaps
        over ``n_models_gap`` models, and ``median_spread_reduction`` the median inter-model
        spread reduction over ``n_spread_sites`` calibration sites. Sorted by model
        (``all`` last), scenario, variable order NEE, Qle, Qh.
    """
    all_misfit = misfit.assign(model_id=misfit["model"] + "." + misfit["version"])
    ran = set(zip(all_misfit.loc[all_misfit["stage"] != "Prior", "model_id"],
                  all_misfit.loc[all_misfit["stage"] != "Prior", "scenario"].astype(int),
                  strict=True))
    usable = _usable(misfit)
    models = sorted(set(model_ids) | set(all_misfit["model_id"].dropna()))
    scenarios = sorted(set(SCENARIOS) | {int(s) for s in all_misfit["scenario"].dropna()})
    groups = {key: g for key, g in usable.groupby(["model_id", "scenario", "variable",
                                                    "cal_val"], sort=False)}
    empty = usable.iloc[:0]
    rows: list[dict[str, Any]] = []
    per_model: dict[tuple[int, str], list[dict[str, Any]]] = {}
    for model_id in models:
        model, version = _split(model_id)
        for scen in scenarios:
            for var in OBSERVED_VARIABLES:
                cal = groups.get((model_id, scen, var, "Cal"), empty)
                val = groups.get((model_id, scen, var, "Val"), empty)
                chi2 = cal["misfit_reduction_chi2"].dropna()
                m_cal = _median(cal["misfit_reduction"])
                m_val = _median(val["misfit_reduction"])
                row = {
                    "model": model, "version": version, "scenario": scen,
                    "calibrated_on": "+".join(SCENARIO_VARIABLES.get(scen, ())),
                    "variable": var, "calibrated": var in SCENARIO_VARIABLES.get(scen, ()),
                    "ran": (model_id, scen) in ran, "n_models": int((model_id, scen) in ran),
                    "models": model_id if (model_id, scen) in ran else None,
                    "n_cal": len(cal), "median_misfit_reduction_cal": m_cal,
                    "n_cal_chi2": len(chi2), "median_misfit_reduction_chi2_cal": _median(chi2),
                    "n_val": len(val), "median_misfit_reduction_val": m_val,
                    "generalisation_gap": m_cal - m_val, "n_models_gap": 0,
                    "n_spread_sites": 0, "median_spread_reduction": float("nan"),
                }
                row["n_models_gap"] = int(np.isfinite(row["generalisation_gap"]))
                rows.append(row)
                per_model.setdefault((scen, var), []).append(row)
    spread_cal = spread[spread["stage"].isin(STAGES) & (spread["cal_val"] == "Cal")
                        & ~spread["insufficient"].astype(bool)
                        & spread["spread_reduction"].notna()]
    spread_groups = {key: g["spread_reduction"] for key, g in
                     spread_cal.groupby(["scenario", "variable"], sort=False)}
    for scen in scenarios:
        for var in OBSERVED_VARIABLES:
            mine = per_model.get((scen, var), [])
            with_cal = [r for r in mine if r["n_cal"] > 0]
            with_gap = [r for r in mine if np.isfinite(r["generalisation_gap"])]
            sr = spread_groups.get((scen, var), pd.Series(dtype=float))
            rows.append({
                "model": "all", "version": "", "scenario": scen,
                "calibrated_on": "+".join(SCENARIO_VARIABLES.get(scen, ())), "variable": var,
                "calibrated": var in SCENARIO_VARIABLES.get(scen, ()),
                "ran": any(r["ran"] for r in mine), "n_models": len(with_cal),
                "models": ", ".join(f"{r['model']}.{r['version']}" for r in with_cal) or None,
                "n_cal": sum(r["n_cal"] for r in with_cal),
                "median_misfit_reduction_cal": _median(r["median_misfit_reduction_cal"]
                                                       for r in with_cal),
                "n_cal_chi2": sum(r["n_cal_chi2"] for r in with_cal),
                "median_misfit_reduction_chi2_cal": _median(
                    r["median_misfit_reduction_chi2_cal"] for r in with_cal),
                "n_val": sum(r["n_val"] for r in mine),
                "median_misfit_reduction_val": _median(r["median_misfit_reduction_val"]
                                                       for r in mine),
                "generalisation_gap": _median(r["generalisation_gap"] for r in with_gap),
                "n_models_gap": len(with_gap),
                "n_spread_sites": int(sr.count()), "median_spread_reduction": _median(sr),
            })
    return _frame(rows, SCENARIO_SCHEMA)


def _outcomes(model_id: str, usable: pd.DataFrame, scores: pd.DataFrame,
              parameters: pd.DataFrame, scenario: int) -> dict[str, Any]:
    mine = usable[(usable["model_id"] == model_id) & (usable["scenario"] == scenario)]
    cal = mine.loc[mine["cal_val"] == "Cal", "misfit_reduction"]
    val = mine.loc[mine["cal_val"] == "Val", "misfit_reduction"]
    cov = scores.loc[scores["model_id"] == model_id, "coverage"]
    par = parameters[(parameters["model_id"] == model_id)
                     & (parameters["scenario"] == scenario)]
    edge = par["edge_hitting"].dropna().astype(bool) if "edge_hitting" in par else pd.Series()
    m_cal, m_val = _median(cal), _median(val)
    return {
        "n_cal": len(cal), "median_misfit_reduction_cal": m_cal, "n_val": len(val),
        "median_misfit_reduction_val": m_val, "generalisation_gap": m_cal - m_val,
        "n_coverage": int(cov.count()), "median_coverage": _median(cov),
        "n_parameters": len(par),
        "share_at_bounds": float(edge.mean()) if len(edge) else float("nan"),
    }


def methods_table(infos: Mapping[str, tuple[str, ModelInfo]], model_ids: Iterable[str],
                  misfit: pd.DataFrame, site_scores: pd.DataFrame, parameters: pd.DataFrame,
                  scenario: int = 1) -> pd.DataFrame:
    """Every model's calibration method (protocol v2 §12) beside its outcomes.

    Parameters
    ----------
    infos : mapping of str to (str, ModelInfo)
        ``<model>.<version>`` (from the file name) → (file path, parsed file).
    model_ids : iterable of str
        Models with site runs (listed even without a model-information file).
    misfit, site_scores, parameters : pandas.DataFrame
        The ``misfit_reduction``, ``site_scores`` and ``parameters`` metric tables.
    scenario : int, default 1
        The scenario the outcomes describe (Scenario 1: every group runs it).

    Returns
    -------
    pandas.DataFrame
        Columns :data:`METHODS_SCHEMA`, one row per model sorted by model id:
        ``info_status`` (``ok``, ``warnings``, ``errors`` or ``missing``), ``info_file`` (file
        name), the counts of problems, the information keys (lists joined by ``", "``),
        ``scenarios_run`` (posterior-like runs submitted) and the outcomes, NEE, Qle and Qh
        pooled over stages Posterior and Spatial: ``n_cal`` / ``median_misfit_reduction_cal``
        (calibration sites), ``n_val`` / ``median_misfit_reduction_val``,
        ``generalisation_gap`` (Cal − Val), ``n_coverage`` / ``median_coverage`` (posterior 95 %
        coverage at calibration sites, runs with enough data), ``n_parameters`` (rows of the
        scenario's parameter table) and ``share_at_bounds`` (share of them within 2 % of a prior
        bound).
    """
    usable = _usable(misfit)
    runs = misfit.assign(model_id=misfit["model"] + "." + misfit["version"])
    runs = runs[runs["stage"] != "Prior"]
    scen_run = runs.groupby("model_id")["scenario"].agg(lambda s: sorted({int(v) for v in s}))
    scores = site_scores[(site_scores["stage"] == "Posterior")
                         & (site_scores["scenario"] == scenario)
                         & (site_scores["cal_val"] == "Cal")
                         & ~site_scores["insufficient"].astype(bool)]
    scores = scores.assign(model_id=scores["model"] + "." + scores["version"])
    params = parameters.assign(model_id=parameters["model"].astype(str) + "."
                               + parameters["version"].astype(str)) if len(parameters) else \
        pd.DataFrame(columns=["model_id", "scenario", "edge_hitting"])
    models = sorted(set(model_ids) | set(infos))
    rows = []
    for model_id in models:
        model, version = _split(model_id)
        row: dict[str, Any] = {"model": model, "version": version}
        found = infos.get(model_id)
        if found is None:
            row.update(info_status="missing", info_file=None, n_info_errors=0,
                       n_info_warnings=0)
        else:
            path, info = found
            row.update(info.flat(), info_status=info.status, info_file=Path(path).name,
                       n_info_errors=len(info.errors), n_info_warnings=len(info.warnings))
        done = scen_run.get(model_id, [])
        row["scenarios_run"] = ", ".join(str(s) for s in done) or None
        row.update(_outcomes(model_id, usable, scores, params, scenario))
        rows.append(row)
    return _frame(rows, METHODS_SCHEMA)
