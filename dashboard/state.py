"""The one shared selection of a dashboard session (no Panel import).

Every view reads this object and writes to it; the URL mirrors it (:mod:`dashboard.urlstate`).
"""

from __future__ import annotations

import param

from loaders.variables import MODEL_ONLY_VARIABLES, OBSERVED_VARIABLES

VIEWS: tuple[str, ...] = ("overview", "sites", "parameters", "global", "scenarios", "methods",
                          "check")
#: Variables with flux-tower observations, and those with model output only (spread
#: statistics): the lists of :mod:`loaders.variables`.
SITE_VARIABLES: tuple[str, ...] = OBSERVED_VARIABLES
UNOBSERVED_VARIABLES: tuple[str, ...] = MODEL_ONLY_VARIABLES
STAGES: tuple[str, ...] = ("Prior", "Posterior")

#: Map colour metrics: label shown to users → column in the metric tables.
METRICS: dict[str, str] = {
    "spread_reduction": "Spread reduction (1 − spread_post / spread_prior)",
    "misfit_reduction": "Misfit reduction (1 − RMSE_post / RMSE_prior)",
    "misfit_reduction_chi2": "χ² reduction (1 − χ²_post / χ²_prior)",
    "chi2": "χ² (mean squared error in units of obs uncertainty)",
    "rmse": "RMSE",
}

#: Layers of the Global view's map (labels in :data:`dashboard.global_queries.LAYERS`).
GLOBAL_LAYERS: tuple[str, ...] = ("field", "difference", "mean", "spread", "spread_reduction")
#: Map projections of the Global view.
PROJECTIONS: tuple[str, ...] = ("PlateCarree", "Robinson")


class Selection(param.Parameterized):
    """What the user is looking at: view, site, variable, models, scenario, stage, metric, time."""

    view = param.Selector(default="overview", objects=list(VIEWS), doc="Active view")
    site = param.String(default="", doc="Selected site id, e.g. DK-Sor")
    variable = param.Selector(default="NEE", objects=list(SITE_VARIABLES + UNOBSERVED_VARIABLES),
                              doc="Variable")
    models = param.List(default=[], item_type=str,
                        doc="Shown models (<model>.<version>); empty means all")
    scenario = param.Integer(default=1, bounds=(1, 999), doc="Calibration scenario")
    stage = param.Selector(default="Posterior", objects=list(STAGES), doc="Calibration stage")
    metric = param.Selector(default="misfit_reduction", objects=list(METRICS),
                            doc="Metric colouring the site map")
    time = param.String(default="", doc="Time of the global view: YYYY-MM, YYYY, annual, mean "
                                        "or month-MM (empty: the long-term mean)")
    layer = param.Selector(default="field", objects=list(GLOBAL_LAYERS),
                           doc="What the global map shows")
    projection = param.Selector(default="PlateCarree", objects=list(PROJECTIONS),
                                doc="Map projection of the global view")

    def shown_models(self, available: list[str]) -> list[str]:
        """The models to draw: the selected ones that exist, or all available when none is."""
        chosen = [m for m in self.models if m in available]
        return chosen or list(available)
