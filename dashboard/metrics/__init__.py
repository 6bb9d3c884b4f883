"""Metrics of CalLMIP runs: pure functions on xarray/pandas objects (no Panel, no HoloViews).

Definitions are those of GUIDE.md §3 and are documented in each module:
:mod:`~dashboard.metrics.scores` (model vs observations, misfit reduction),
:mod:`~dashboard.metrics.uncertainty` (coverage, CRPS), :mod:`~dashboard.metrics.spread`
(inter-model spread), :mod:`~dashboard.metrics.parameters`, :mod:`~dashboard.metrics.global_stats`,
:mod:`~dashboard.metrics.diagrams` (seasonal cycle, Taylor statistics) and
:mod:`~dashboard.metrics.tables` (the tables of a whole archive, cached).
"""

from dashboard.metrics.common import DEFAULT_MIN_N, align_on_time, ensemble_mean
from dashboard.metrics.diagrams import seasonal_cycle, taylor_statistics
from dashboard.metrics.global_stats import (
    cell_area,
    cell_spread,
    cell_spread_reduction,
    global_total,
    posterior_minus_prior,
    zonal_mean,
)
from dashboard.metrics.parameters import parameter_metrics
from dashboard.metrics.scores import misfit_reduction, score
from dashboard.metrics.spread import inter_model_spread, spread_reduction
from dashboard.metrics.tables import MetricTables, compute_tables, tables_to_json
from dashboard.metrics.uncertainty import coverage, crps

__all__ = [
    "DEFAULT_MIN_N",
    "MetricTables",
    "align_on_time",
    "cell_area",
    "cell_spread",
    "cell_spread_reduction",
    "compute_tables",
    "coverage",
    "crps",
    "ensemble_mean",
    "global_total",
    "inter_model_spread",
    "misfit_reduction",
    "parameter_metrics",
    "posterior_minus_prior",
    "score",
    "seasonal_cycle",
    "spread_reduction",
    "tables_to_json",
    "taylor_statistics",
    "zonal_mean",
]
