"""Queries of the Parameters view (pure pandas, no Panel, no HoloViews).

They read the ``parameters`` and ``misfit_reduction`` metric tables of a
:class:`~dashboard.service.DataService`.

Every frame returned is the caller's own copy. The definitions (uncertainty reduction, position
in the prior range, intervals, edge hitting) live in :mod:`dashboard.metrics.parameters`; this
module only selects, groups and labels:

- :func:`parameter_frame` — one row per (model, parameter, PFT) of a scenario, normalised to the
  prior range, with its problems;
- :func:`missing_tables` — models with runs in a scenario but no usable parameter table, with
  the file name expected;
- :func:`row_problems` — what could not be drawn, per file and message, with the rows;
- :func:`process_summary` — median uncertainty reduction per process × model, with n;
- :func:`misfit_medians` — median misfit reduction over calibration sites per model and
  variable, with n;
- :func:`scenario_frame` — one model's parameter under every scenario, with that scenario's
  misfit reductions.
"""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np
import pandas as pd

from dashboard.metrics.common import DEFAULT_MIN_N
from dashboard.metrics.parameters import NORMALISED_COLUMNS, normalised_intervals
from dashboard.service import DataService
from dashboard.state import SITE_VARIABLES

#: Label of rows without a process.
NO_PROCESS = "unspecified"

#: Calibrated variables of each scenario (protocol v2): the label of the scenario axis.
SCENARIO_VARIABLES: dict[int, str] = {1: "NEE + Qle + Qh", 2: "NEE", 3: "Qle", 4: "Qh",
                                      5: "NEE + Qle", 6: "Qle + Qh"}

#: Sort orders of the parameter rows (key → label shown to users).
SORTS: dict[str, str] = {
    "process": "process, then name",
    "reduction": "process, then uncertainty reduction",
    "reduction_all": "uncertainty reduction (all processes)",
    "sensitivity": "sensitivity rank",
}


#: Orders that keep the parameters grouped by process.
GROUPED_SORTS: tuple[str, ...] = ("process", "reduction")


def expected_file(model_id: str, scenario: int) -> str:
    """The file name a parameter table of ``model_id`` for ``scenario`` must have."""
    return f"{model_id}_Phase1b_Scen{int(scenario)}_parameters.csv"


def _all_rows(service: DataService) -> pd.DataFrame:
    """Every parameter row of the archive, normalised (computed once per service, shared)."""
    def compute() -> pd.DataFrame:
        table = service.table("parameters")
        if table.empty or "parameter" not in table.columns:
            # No table in the archive: an empty frame with every column the views read.
            return pd.DataFrame(columns=["model_id", "scenario", "parameter", "pft", "process",
                                         "label", "problems", "row", "file",
                                         *NORMALISED_COLUMNS])
        df = normalised_intervals(table)
        df["model_id"] = df["model"].astype(str) + "." + df["version"].astype(str)
        process = df["process"].astype(str).str.strip()
        df["process"] = process.where(~process.isin(["", "nan", "None"]), NO_PROCESS)
        pft = df["pft"].astype(str).str.strip()
        df["pft"] = pft.where(~pft.isin(["", "nan", "None"]), "all")
        name = df["parameter"].astype(str).str.strip()
        df["parameter"] = name
        if "problems" not in df.columns:
            df["problems"] = ""
        df["problems"] = df["problems"].fillna("").astype(str)
        if "row" not in df.columns:
            df["row"] = pd.NA
        # A row without a name is still drawn, under the line it came from.
        name = name.where(name != "", "(unnamed, row " + df["row"].astype(str) + ")")
        df["label"] = np.where(df["pft"] == "all", name, name + " (" + df["pft"] + ")")
        df["file"] = [expected_file(m, s) for m, s in zip(df["model_id"], df["scenario"],
                                                           strict=True)]
        df["scenario"] = df["scenario"].astype("int64")
        return df

    return service.frame(("parameter_rows",), compute)


def shown_models(service: DataService, models: Sequence[str]) -> list[str]:
    """Shown models: the chosen ones that exist, or all models (with runs or tables)."""
    files = service.archive.parameter_files
    available = sorted(set(service.model_ids()) | set(_all_rows(service)["model_id"])
                       | set(files["model"].astype(str) + "." + files["version"].astype(str)))
    chosen = [m for m in models if m in available]
    return chosen or available


def table_counts(service: DataService) -> dict[str, int]:
    """Number of scenarios with a parameter table, per model."""
    rows = _all_rows(service)
    return {str(k): int(v) for k, v in rows.groupby("model_id")["scenario"].nunique().items()}


def filter_options(service: DataService, scenario: int) -> tuple[list[str], list[str]]:
    """Processes and PFTs present in ``scenario``'s tables (sorted), for the view's filters."""
    rows = _all_rows(service)
    rows = rows[rows["scenario"] == int(scenario)]
    return sorted(rows["process"].unique()), sorted(rows["pft"].unique())


def parameter_frame(service: DataService, scenario: int, models: Sequence[str] = (),
                    processes: Sequence[str] = (), pfts: Sequence[str] = ()) -> pd.DataFrame:
    """The parameter rows of a scenario, normalised to their prior range.

    Parameters
    ----------
    service : DataService
        The worker's data service.
    scenario : int
        Calibration scenario.
    models : sequence of str
        Shown ``<model>.<version>`` ids; empty = all.
    processes, pfts : sequence of str
        Keep only these processes / PFTs; empty = all.

    Returns
    -------
    pandas.DataFrame
        A copy: the ``parameters`` table's columns, those of
        :func:`dashboard.metrics.parameters.normalised_intervals`, and ``model_id``, ``label``
        (``parameter (pft)``), ``file`` and ``drawable`` (both values can be placed in the
        prior range). Sorted by process, parameter, PFT and model.
    """
    rows = _all_rows(service)
    shown = shown_models(service, models)
    keep = (rows["scenario"] == int(scenario)) & rows["model_id"].isin(shown)
    if processes:
        keep &= rows["process"].isin(list(processes))
    if pfts:
        keep &= rows["pft"].isin(list(pfts))
    out = rows[keep].copy()
    out["drawable"] = (np.isfinite(out["prior_value_norm"].astype("float64"))
                       & np.isfinite(out["posterior_value_norm"].astype("float64")))
    return out.sort_values(["process", "parameter", "pft", "model_id"], ignore_index=True,
                           kind="stable")


def row_layout(frame: pd.DataFrame, sort: str = "process") -> pd.DataFrame:
    """Give each drawable row a y position: parameters grouped by process, models side by side.

    Parameters
    ----------
    frame : pandas.DataFrame
        Output of :func:`parameter_frame`.
    sort : str
        A key of :data:`SORTS`. Groups (one per parameter and PFT) are ordered within their
        process by name or by their mean uncertainty reduction (largest first), or all
        together by uncertainty reduction or by their best sensitivity rank.

    Returns
    -------
    pandas.DataFrame
        The drawable rows with ``y`` (top row highest), ``group`` (the label, with the process
        when the order mixes processes), ``group_y`` (the centre of its group) and ``grouped``
        (rows grouped by process) — the same positions for every plot of a view.
    """
    df = frame[frame["drawable"]].copy() if "drawable" in frame else frame.copy()
    if df.empty:
        return df.assign(y=pd.Series(dtype="float64"), group_y=pd.Series(dtype="float64"),
                         group=pd.Series(dtype="object"))
    groups = df.groupby(["process", "label"], sort=False).agg(
        reduction=("uncertainty_reduction", "mean"),
        rank=("sensitivity_rank", "min")).reset_index()
    if sort == "reduction":
        groups = groups.sort_values(["process", "reduction", "label"],
                                    ascending=[True, False, True], na_position="last")
    elif sort == "reduction_all":
        groups = groups.sort_values(["reduction", "label"], ascending=[False, True],
                                    na_position="last")
    elif sort == "sensitivity":
        groups = groups.sort_values(["rank", "label"], na_position="last")
    else:
        groups = groups.sort_values(["process", "label"])
    position = 0.0
    ys: dict[tuple[str, str], float] = {}
    previous_process = None
    models = sorted(df["model_id"].unique())
    group_y: dict[tuple[str, str], float] = {}
    grouped = sort in GROUPED_SORTS
    for g in groups.itertuples(index=False):
        if previous_process is not None:
            position += 1.2 if grouped and g.process != previous_process else 0.5
        previous_process = g.process
        members = sorted(df.loc[(df["process"] == g.process) & (df["label"] == g.label),
                                "model_id"].unique(), key=models.index)
        start = position
        for m in members:
            ys[(g.process, g.label, m)] = -position
            position += 1.0
        group_y[(g.process, g.label)] = -(start + position - 1.0) / 2
    df["y"] = [ys[(p, lab, m)] for p, lab, m in zip(df["process"], df["label"], df["model_id"],
                                                    strict=True)]
    df["group_y"] = [group_y[(p, lab)] for p, lab in zip(df["process"], df["label"],
                                                        strict=True)]
    # Ordered across processes, each label names its process.
    df["group"] = df["label"] if grouped else df["label"] + " · " + df["process"]
    df["grouped"] = grouped
    return df.sort_values("y", ascending=False, ignore_index=True)


def missing_tables(service: DataService, scenario: int, models: Sequence[str] = ()
                   ) -> pd.DataFrame:
    """Shown models with runs in ``scenario`` but no usable parameter table.

    Returns
    -------
    pandas.DataFrame
        ``model``, ``expected_file`` and ``status``: ``no parameter table submitted``, or the
        loader's message when the file is there but could not be read at all.
    """
    service.tables()  # reading the tables records the files that failed
    runs = service.archive.site_runs
    with_runs = set(runs.loc[runs["scenario"] == int(scenario), "model_id"].dropna())
    rows = _all_rows(service)
    with_table = set(rows.loc[rows["scenario"] == int(scenario), "model_id"])
    files = service.archive.parameter_files
    errors = service.archive.errors
    out = []
    for model in shown_models(service, models):
        if model in with_table:
            continue
        found = files[(files["model"] + "." + files["version"] == model)
                      & (files["scenario"] == int(scenario))]
        if not found.empty:
            path = found["path"].iloc[0]
            out.append({"model": model, "expected_file": expected_file(model, scenario),
                        "status": errors.get(path, "the table has no parameter rows")})
        elif model in with_runs:
            out.append({"model": model, "expected_file": expected_file(model, scenario),
                        "status": "no parameter table submitted"})
    return pd.DataFrame(out, columns=["model", "expected_file", "status"])


def row_problems(frame: pd.DataFrame) -> pd.DataFrame:
    """What could not be read or drawn, one row per (file, message), with the file's rows.

    Parameters
    ----------
    frame : pandas.DataFrame
        Output of :func:`parameter_frame`.

    Returns
    -------
    pandas.DataFrame
        ``file``, ``rows`` (line numbers in the file, header = 1), ``parameters`` and
        ``problem``: the loader's messages (text where a number is expected, missing columns,
        inverted bounds, empty names) and the reasons a row is not drawn (no prior range, no
        prior or posterior value).
    """
    items = []
    for r in frame.itertuples(index=False):
        messages = [m for m in str(r.problems).split("; ") if m]
        if not r.drawable:
            width = r.prior_range_width
            if not np.isfinite(width):
                messages.append("no usable prior range (prior_min < prior_max): not drawn")
            else:
                missing = [c for c in ("prior_value", "posterior_value")
                           if not np.isfinite(getattr(r, c))]
                if missing:
                    messages.append(f"{' and '.join(missing)} unknown: not drawn")
        for message in dict.fromkeys(messages):
            items.append({"file": r.file, "row": r.row, "parameter": r.parameter,
                          "problem": message})
    if not items:
        return pd.DataFrame(columns=["file", "rows", "parameters", "problem"])
    df = pd.DataFrame(items)
    df = df.assign(_order=pd.to_numeric(df["row"], errors="coerce")).sort_values(
        "_order", kind="stable", na_position="last")
    out = df.groupby(["file", "problem"], sort=True).agg(
        rows=("row", lambda s: ", ".join(str(int(v)) for v in s if pd.notna(v))),
        parameters=("parameter", lambda s: ", ".join(dict.fromkeys(v or "(empty)" for v in s))),
    ).reset_index()
    return out[["file", "rows", "parameters", "problem"]]


def process_summary(frame: pd.DataFrame) -> pd.DataFrame:
    r"""Median uncertainty reduction per process × model, with n parameters.

    Parameters
    ----------
    frame : pandas.DataFrame
        Output of :func:`parameter_frame`.

    Returns
    -------
    pandas.DataFrame
        ``process``, ``model_id``, ``median_reduction`` (NaN when no parameter of the process
        has one), ``n`` (parameters with an uncertainty reduction), ``n_edge`` (of them ending
        within 2 % of a bound) and ``label`` (``"0.42\\nn=3"``).
    """
    cols = ["process", "model_id", "median_reduction", "n", "n_edge", "label"]
    if frame.empty:
        return pd.DataFrame(columns=cols)
    df = frame.assign(_ur=frame["uncertainty_reduction"].astype("float64"),
                      _edge=frame["edge_hitting"].fillna(False).astype(bool))
    out = df.groupby(["process", "model_id"], sort=True).agg(
        median_reduction=("_ur", "median"), n=("_ur", "count"), n_edge=("_edge", "sum"),
    ).reset_index()
    out["n"] = out["n"].astype("int64")
    out["n_edge"] = out["n_edge"].astype("int64")
    out["label"] = [("–" if not np.isfinite(v) else f"{v:.2f}") + f"\nn={n}"
                    for v, n in zip(out["median_reduction"], out["n"], strict=True)]
    return out[cols]


def misfit_medians(service: DataService, scenario: int | None = None,
                   models: Sequence[str] = ()) -> pd.DataFrame:
    """Median misfit reduction over calibration sites per model, scenario and variable.

    Uses the ``misfit_reduction`` table: posterior runs at calibration sites with enough valid
    days (``insufficient`` False), as in the ``summary`` table.

    Returns
    -------
    pandas.DataFrame
        ``model_id``, ``scenario``, ``variable``, ``median_misfit_reduction``, ``n`` (sites)
        and ``optimised``; one row per combination present (NaN median when n = 0).
    """
    cols = ["model_id", "scenario", "variable", "median_misfit_reduction", "n", "optimised"]
    table = service.table("misfit_reduction")
    if table.empty:
        return pd.DataFrame(columns=cols)
    df = table[(table["cal_val"] == "Cal") & (table["stage"] == "Posterior")]
    if scenario is not None:
        df = df[df["scenario"] == int(scenario)]
    df = df.assign(model_id=df["model"].astype(str) + "." + df["version"].astype(str))
    if models:
        df = df[df["model_id"].isin(list(models))]
    usable = ~df["insufficient"].astype(bool) & df["misfit_reduction"].notna()
    df = df.assign(_mr=df["misfit_reduction"].where(usable))
    out = df.groupby(["model_id", "scenario", "variable"], sort=True).agg(
        median_misfit_reduction=("_mr", "median"), n=("_mr", "count"),
        optimised=("optimised", "any")).reset_index()
    order = {v: i for i, v in enumerate(SITE_VARIABLES)}
    out = out.sort_values(["model_id", "scenario", "variable"],
                          key=lambda s: s.map(order) if s.name == "variable" else s,
                          ignore_index=True)
    out["n"] = out["n"].astype("int64")
    return out[cols]


def scenario_frame(service: DataService, model_id: str, label: str) -> pd.DataFrame:
    """One model's parameter (``label`` = ``parameter (pft)``) under every scenario.

    Returns
    -------
    pandas.DataFrame
        One row per scenario with a table holding the parameter: the normalised columns,
        ``scenario_label`` (``"Scen 2 (NEE)"``) and ``misfit`` (text: the median misfit
        reduction over calibration sites per variable with n, or why there is none).
    """
    rows = _all_rows(service)
    df = rows[(rows["model_id"] == model_id) & (rows["label"] == label)].copy()
    df = df.sort_values("scenario", ignore_index=True)
    misfit = misfit_medians(service, models=[model_id])
    texts = []
    for scenario in df["scenario"]:
        m = misfit[misfit["scenario"] == scenario]
        parts = []
        for r in m.itertuples(index=False):
            value = (f"{r.median_misfit_reduction:+.2f}" if r.n > 0
                     else f"insufficient (< {DEFAULT_MIN_N} days)")
            parts.append(f"{r.variable} {value} (n={r.n})")
        texts.append(", ".join(parts) or "no misfit reduction")
    df["misfit"] = pd.Series(texts, index=df.index, dtype="object")
    df["scenario_label"] = [f"Scen {s} ({SCENARIO_VARIABLES.get(int(s), '?')})"
                            for s in df["scenario"]]
    return df


def parameter_labels(service: DataService, model_id: str) -> list[str]:
    """The parameter labels (``parameter (pft)``) of ``model_id`` in any scenario, sorted."""
    rows = _all_rows(service)
    return sorted(rows.loc[rows["model_id"] == model_id, "label"].unique())
