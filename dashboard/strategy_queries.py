"""Queries of the Scenarios and Methods views.

The metric tables ``scenarios`` and ``methods`` (:mod:`dashboard.metrics.strategies`) shaped for
drawing.

Like :mod:`dashboard.queries`: pure functions of a :class:`~dashboard.service.DataService` and
plain arguments, returning frames that are the caller's own; no Panel, no HoloViews. The numbers
are the ones ``callmip metrics`` writes: nothing is recomputed here.
"""

from __future__ import annotations

import numpy as np
import pandas as pd

from dashboard.metrics.strategies import OUTCOME_COLUMNS, scenario_label
from dashboard.service import DataService
from loaders.variables import OBSERVED_VARIABLES

#: Measures of the scenario grid: column of the ``scenarios`` table → label.
GRID_MEASURES: dict[str, str] = {
    "median_misfit_reduction_cal": "misfit reduction, calibration sites",
    "median_misfit_reduction_chi2_cal": "χ² reduction, calibration sites",
    "median_misfit_reduction_val": "misfit reduction, validation sites",
    "generalisation_gap": "generalisation gap (Cal − Val)",
}
#: The n behind each measure (per-model rows).
_MEASURE_N = {"median_misfit_reduction_cal": "n_cal",
              "median_misfit_reduction_chi2_cal": "n_cal_chi2",
              "median_misfit_reduction_val": "n_val",
              "generalisation_gap": "n_val"}

#: Attributes the Methods view groups models by: key → label.
GROUPINGS: dict[str, str] = {
    "method": "parameter estimation method (iv)",
    "multi_stream": "multi-data-stream approach (ix)",
    "lai": "LAI prescribed or prognostic (xiv)",
    "global_parameters": "global parameter set (x)",
    "pfts": "PFTs calibrated (xi)",
    "sensitivity_analysis": "sensitivity analysis (v)",
    "initial_conditions": "initial conditions (viii)",
    "ensemble": "posterior ensemble (iv)",
    "n_cycle": "N cycle (ii)",
    "info_status": "model-information file",
}
#: Outcomes the Methods view plots: column of the ``methods`` table → label.
OUTCOMES: dict[str, str] = {
    "median_misfit_reduction_cal": "median misfit reduction, calibration sites",
    "generalisation_gap": "generalisation gap (Cal − Val)",
    "median_coverage": "posterior 95 % coverage, calibration sites",
    "share_at_bounds": "share of parameters at a prior bound",
    "n_parameters": "parameters calibrated",
}
_OUTCOME_N = {"median_misfit_reduction_cal": "n_cal", "generalisation_gap": "n_val",
              "median_coverage": "n_coverage", "share_at_bounds": "n_parameters",
              "n_parameters": "n_parameters"}

NOT_RUN = "not run"
#: Longest group name on the method-vs-outcome plot's axis.
GROUP_LABEL_LENGTH = 40


def _model_ids(frame: pd.DataFrame) -> pd.Series:
    return frame["model"].astype(str) + "." + frame["version"].astype(str)


def scenario_models(service: DataService) -> list[str]:
    """Models of the ``scenarios`` table (``<model>.<version>``), sorted."""
    table = service.table("scenarios")
    if table.empty:
        return []
    mine = table[table["model"] != "all"]
    return sorted(set(_model_ids(mine)))


def models_with_scenario1_only(service: DataService) -> list[str]:
    """Models that ran no optional scenario (listed by the view, never dropped)."""
    table = service.table("scenarios")
    if table.empty:
        return []
    mine = table[(table["model"] != "all") & table["ran"].astype(bool)]
    runs = mine.assign(model_id=_model_ids(mine)).groupby("model_id")["scenario"].agg(set)
    return sorted(m for m in scenario_models(service) if runs.get(m, set()) <= {1})


def _label(value: float, n: int, ran: bool, calibrated: bool, n_text: str = "") -> str:
    if not ran:
        return NOT_RUN
    mark = "◆ " if calibrated else ""
    count = n_text or str(n)
    if n < 1 or not np.isfinite(value):
        return f"{mark}n={count}"
    return f"{mark}{value:+.2f}\nn={count}"


def scenario_grid(service: DataService, model: str, measure: str) -> pd.DataFrame:
    """One model's scenario × variable grid.

    Parameters
    ----------
    service : DataService
        The data service.
    model : str
        ``<model>.<version>``, or ``"all"`` for the medians across models.
    measure : str
        A key of :data:`GRID_MEASURES`.

    Returns
    -------
    pandas.DataFrame
        Columns ``scenario, scenario_label, variable, value, n, n_models, ran, calibrated,
        label, models``, one row per scenario (1–6) and variable (NEE, Qle, Qh). ``n`` is the
        number of sites behind the value (per model; for the generalisation gap the smaller of
        the calibration and validation counts, the label shows both as ``n=<Cal>/<Val>``) or of
        models (``all``); ``label`` is the value with its n, ``◆`` on calibrated variables,
        ``not run`` where the scenario was not run.
    """
    cols = ["scenario", "scenario_label", "variable", "value", "n", "n_models", "ran",
            "calibrated", "label", "models"]
    table = service.table("scenarios")
    if table.empty or measure not in GRID_MEASURES:
        return pd.DataFrame(columns=cols)
    if model == "all":
        t = table[table["model"] == "all"].copy()
        n_col = "n_models_gap" if measure == "generalisation_gap" else "n_models"
        t["ran"] = t["n_models"] > 0
    else:
        t = table[_model_ids(table) == model].copy()
        n_col = _MEASURE_N[measure]
    t["value"] = t[measure].astype(float)
    t["n"] = t[n_col].astype(int)
    t["scenario_label"] = [scenario_label(s) for s in t["scenario"]]
    if measure == "generalisation_gap" and model != "all":  # both sides count: "n=Cal/Val"
        n_text = [f"{int(a)}/{int(b)}" for a, b in zip(t["n_cal"], t["n_val"], strict=True)]
        t["n"] = np.minimum(t["n_cal"], t["n_val"]).astype(int)
    else:
        n_text = [""] * len(t)
    t["label"] = [_label(v, n, bool(r), bool(c), x) for v, n, r, c, x in
                  zip(t["value"], t["n"], t["ran"], t["calibrated"], n_text, strict=True)]
    t["models"] = t["models"].fillna("")
    order = {v: i for i, v in enumerate(OBSERVED_VARIABLES)}
    t = t.assign(_v=t["variable"].map(order)).sort_values(["scenario", "_v"])
    return t[cols].reset_index(drop=True)


def cross_model_frame(service: DataService) -> pd.DataFrame:
    """Per scenario and variable, across models: the table under the grids.

    Columns: scenario, variable, calibrated, models (n), median misfit reduction at
    calibration and validation sites, generalisation gap (n models), median spread reduction
    (n calibration sites). Values rounded to 3 decimals; only scenarios some model ran.
    """
    table = service.table("scenarios")
    columns = ["scenario", "variable", "calibrated", "n models", "models",
               "median misfit reduction (Cal)", "median misfit reduction (Val)",
               "generalisation gap", "n models (gap)", "median spread reduction (Cal sites)",
               "n sites (spread)"]
    if table.empty:
        return pd.DataFrame(columns=columns)
    t = table[(table["model"] == "all") & (table["n_models"] > 0)]
    frame = pd.DataFrame({
        columns[0]: [scenario_label(s) for s in t["scenario"]],
        columns[1]: t["variable"].to_numpy(),
        columns[2]: np.where(t["calibrated"], "yes", "no"),
        columns[3]: t["n_models"].astype(int).to_numpy(),
        columns[4]: t["models"].fillna("").to_numpy(),
        columns[5]: t["median_misfit_reduction_cal"].round(3).to_numpy(),
        columns[6]: t["median_misfit_reduction_val"].round(3).to_numpy(),
        columns[7]: t["generalisation_gap"].round(3).to_numpy(),
        columns[8]: t["n_models_gap"].astype(int).to_numpy(),
        columns[9]: t["median_spread_reduction"].round(3).to_numpy(),
        columns[10]: t["n_spread_sites"].astype(int).to_numpy(),
    })
    return frame.reset_index(drop=True)


# -------------------------------------------------------------------------------- methods
def methods_frame(service: DataService) -> pd.DataFrame:
    """The ``methods`` table for display: one row per model, information then outcomes.

    Columns renamed for reading (``model`` is ``<model>.<version>``); text is untrusted and
    must be escaped by the view. Numbers rounded to 3 decimals.
    """
    table = service.table("methods")
    if table.empty:
        return pd.DataFrame(columns=["model"])
    t = table.copy()
    t.insert(0, "model_id", _model_ids(t))
    t = t.drop(columns=["model", "version"]).rename(columns={"model_id": "model"})
    for col in t.columns:
        if pd.api.types.is_float_dtype(t[col]):
            t[col] = t[col].round(3)
    return t.reset_index(drop=True)


def missing_info_models(service: DataService) -> list[str]:
    """Models whose group sent no model-information file."""
    table = service.table("methods")
    if table.empty:
        return []
    return sorted(_model_ids(table[table["info_status"] == "missing"]))


def info_problems(service: DataService) -> list[str]:
    """One line per model-information file with errors or warnings (untrusted: escape)."""
    table = service.table("methods")
    if table.empty:
        return []
    bad = table[table["info_status"].isin(["errors", "warnings"])]
    return [f"{r.info_file}: {int(r.n_info_errors)} error(s), {int(r.n_info_warnings)} "
            "warning(s); run `callmip check` on it for the details"
            for r in bad.itertuples()]


def _group_value(row: pd.Series, grouping: str) -> str:
    if grouping == "info_status":
        return "no file" if row["info_status"] == "missing" else "file sent"
    if row["info_status"] == "missing":
        return "no file"
    if grouping == "ensemble":
        size = row.get("ensemble_size")
        return f"{int(size)} members" if pd.notna(size) and int(size) > 1 else "no ensemble"
    value = row.get(grouping)
    if value is None or (not isinstance(value, str) and pd.isna(value)):
        return "not stated"
    if isinstance(value, (bool, np.bool_)):
        return "yes" if value else "no"
    text = str(value)  # a group's own word (outside the vocabulary) can be long
    return text if len(text) <= GROUP_LABEL_LENGTH else text[:GROUP_LABEL_LENGTH - 1] + "…"


def outcome_groups(service: DataService, grouping: str, outcome: str) -> pd.DataFrame:
    """Each model's outcome with its group, for the method-vs-outcome plot.

    Parameters
    ----------
    service : DataService
        The data service.
    grouping : str
        A key of :data:`GROUPINGS`.
    outcome : str
        A key of :data:`OUTCOMES`.

    Returns
    -------
    pandas.DataFrame
        Columns ``model, group, group_label, value, n`` (``n``: cases behind the model's
        value), one row per model with a finite value; ``group_label`` is ``"<group> (n=<k>
        models)"``. Models that sent no file form the group ``no file``.
    """
    cols = ["model", "group", "group_label", "value", "n"]
    table = service.table("methods")
    if table.empty or grouping not in GROUPINGS or outcome not in OUTCOMES:
        return pd.DataFrame(columns=cols)
    t = table.copy()
    frame = pd.DataFrame({
        "model": _model_ids(t).to_numpy(),
        "group": [_group_value(row, grouping) for _, row in t.iterrows()],
        "value": t[outcome].astype(float).to_numpy(),
        "n": t[_OUTCOME_N[outcome]].astype(int).to_numpy(),
    })
    frame = frame[np.isfinite(frame["value"])]
    counts = frame["group"].value_counts()
    frame["group_label"] = [f"{g} (n={counts[g]} model{'s' if counts[g] != 1 else ''})"
                            for g in frame["group"]]
    return frame.sort_values(["group", "model"])[cols].reset_index(drop=True)


__all__ = ["GRID_MEASURES", "GROUPINGS", "NOT_RUN", "OUTCOMES", "OUTCOME_COLUMNS",
           "cross_model_frame", "info_problems", "methods_frame", "missing_info_models",
           "models_with_scenario1_only", "outcome_groups", "scenario_grid", "scenario_models"]
