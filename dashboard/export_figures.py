"""PNG figures of the static export, drawn through HoloViews' matplotlib backend (no browser).

For papers and slides: the scorecard of each exported variable, and per site the monthly means
of the observed fluxes with every model's prior (dashed) and posterior (solid). The numbers come
from the query layer, as in the live app. Figures carry no timestamp, so the same data give the
same bytes.
"""

from __future__ import annotations

import io
import warnings
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import TYPE_CHECKING

import numpy as np
import pandas as pd

if TYPE_CHECKING:
    import holoviews as hv

    from dashboard.export import ExportContext

#: Resolution of the figures (dots per inch).
DPI = 150

#: Variables drawn in a site's figure (those with observations), when exported.
SITE_FIGURE_VARIABLES: tuple[str, ...] = ("NEE", "Qle", "Qh")


@dataclass
class FigureJob:
    """One PNG to draw: where it goes, what it depends on (cache key) and how to draw it."""

    path: str
    draw: Callable[[], bytes]
    key: dict = field(default_factory=dict)


def _renderer():
    """HoloViews' matplotlib renderer (Agg), loaded without changing the current backend."""
    import matplotlib

    matplotlib.use("Agg", force=False)
    import holoviews as hv
    import holoviews.plotting.mpl  # noqa: F401  (registers the matplotlib backend)

    renderer = hv.renderer("matplotlib")
    renderer.dpi = DPI
    return renderer


def png_bytes(obj: hv.core.Dimensioned) -> bytes:
    """Draw a HoloViews object with matplotlib and return the PNG bytes (no metadata date)."""
    import matplotlib.pyplot as plt

    renderer = _renderer()
    with warnings.catch_warnings():  # HoloViews passes "-" as well as a curve's linestyle
        warnings.filterwarnings("ignore", message="linestyle is redundantly defined")
        plot = renderer.get_plot(obj)
    figure = plot.state
    buffer = io.BytesIO()
    with warnings.catch_warnings():
        warnings.filterwarnings("ignore", message="linestyle is redundantly defined")
        figure.savefig(buffer, format="png", dpi=DPI, metadata={"Software": None},
                       bbox_inches="tight")
    plt.close(figure)
    return buffer.getvalue()


def scorecard_figure(context: ExportContext, variable: str, scenario: int = 1) -> bytes:
    """Heatmap of misfit reduction (1 − RMSE_post / RMSE_prior) per model × site."""
    import holoviews as hv

    from dashboard import queries

    _renderer()  # the matplotlib backend's options exist once it is loaded
    frame = queries.scorecard_frame(context.service, scenario, variable)
    n_models = max(frame["model"].nunique(), 1) if not frame.empty else 1
    n_sites = max(frame["site"].nunique(), 1) if not frame.empty else 1
    title = f"Misfit reduction of {variable}, Scenario {scenario} (grey: too few days)"
    if frame.empty:
        frame = pd.DataFrame({"site": ["none"], "model": ["none"],
                              "misfit_reduction": [np.nan]})
        title = f"No scores for {variable}, Scenario {scenario}"
    data = frame[["site", "model", "misfit_reduction"]].astype(
        {"site": object, "model": object, "misfit_reduction": float})
    heat = hv.HeatMap(data, kdims=["site", "model"], vdims=["misfit_reduction"])
    heat = heat.opts(
        backend="matplotlib", cmap="RdBu", clim=(-1, 1), colorbar=True, xrotation=90,
        clipping_colors={"NaN": "#d9d9d9"}, title=title, xlabel="", ylabel="",
        show_values=False, invert_yaxis=True,
        clabel="misfit reduction (1 − RMSE_post / RMSE_prior)",
        aspect=min(6.0, max(1.5, 0.8 * n_sites / n_models)), fig_size=350,
        fontsize={"title": 10, "labels": 9, "xticks": 7, "yticks": 8})
    return png_bytes(heat)


def _monthly(times: np.ndarray, values: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Monthly means of a daily series, at mid-month in decimal years.

    A month with fewer than 10 valid days is NaN.
    """
    series = pd.Series(np.asarray(values, dtype=float), index=pd.to_datetime(times))
    grouped = series.resample("MS")
    means = grouped.mean().where(grouped.count() >= 10)
    # Decimal years at mid-month: matplotlib then ticks whole years (HoloViews labels a
    # datetime axis with full timestamps that run into each other).
    index = means.index
    years = index.year + (index.dayofyear - 1 + index.days_in_month / 2) / np.where(
        index.is_leap_year, 366, 365)
    return np.asarray(years, dtype=float), means.to_numpy()


def site_figure(context: ExportContext, site: str, scenario: int = 1) -> bytes:
    """Monthly means of NEE, Qle and Qh at ``site``: observations, priors and posteriors."""
    import holoviews as hv

    from dashboard import queries
    from dashboard.views.style import model_colour

    _renderer()
    service = context.service
    models = service.model_ids()
    panels = []
    variables = [v for v in SITE_FIGURE_VARIABLES if v in context.variables] or list(
        SITE_FIGURE_VARIABLES)
    for variable in variables:
        data = queries.site_series(service, site, variable, scenario, [])
        label = f"{variable} ({data.units})" if data.units else variable
        layers = []
        for model in models:
            runs = data.runs[data.runs["model"] == model]
            for stage, dash in (("Prior", "--"), ("Posterior", "-")):
                run = runs[runs["stage"] == stage]
                if run.empty:
                    continue
                x, y = _monthly(run["time"].to_numpy(), run["value"].to_numpy())
                layers.append(hv.Curve((x, y), ("year", "year"), ("value", label),
                                       label=f"{model} {stage.lower()}").opts(
                    backend="matplotlib", color=model_colour(model, models), linestyle=dash,
                    linewidth=1.2 if stage == "Posterior" else 0.9))
        if not data.obs.empty:
            x, y = _monthly(data.obs["time"].to_numpy(), data.obs["value"].to_numpy())
            layers.append(hv.Curve((x, y), ("year", "year"), ("value", label),
                                   label=f"observed (n={data.n_obs_valid} days)").opts(
                backend="matplotlib", color="black", linewidth=1.6))
        if not layers:
            layers.append(hv.Curve([], ("year", "year"), ("value", label), label="no data"))
        overlay = hv.Overlay(layers).opts(
            backend="matplotlib", title=f"{site}: {variable}, monthly means",
            legend_position="right", aspect=4.0, xformatter="%d",
            fontsize={"title": 10, "legend": 7, "labels": 9, "ticks": 8})
        panels.append(overlay)
    layout = hv.Layout(panels).cols(1).opts(
        backend="matplotlib", sublabel_format="", vspace=0.3, fig_size=260)
    return png_bytes(layout)


def figure_jobs(context: ExportContext) -> list[FigureJob]:
    """Every PNG of the export: a scorecard per variable, a figure per site."""
    jobs = [FigureJob(f"figures/scorecard-{variable}.png",
                      (lambda v=variable: scorecard_figure(context, v)),
                      {"figure": "scorecard", "variable": variable})
            for variable in context.variables]
    shown = [v for v in SITE_FIGURE_VARIABLES if v in context.variables]
    if shown:
        jobs += [FigureJob(f"figures/sites/{site}.png", (lambda s=site: site_figure(context, s)),
                           {"figure": "site", "site": site, "variables": shown})
                 for site in context.sites]
    return jobs
