"""Static pages of the Global view (``callmip export``): maps pre-aggregated to a fixed grid.

One page per global variable (``global.html`` for the first, ``global-<variable>.html`` for the
others), each showing the long-term means the live Global view shows:

* the multi-model mean of the prior and of the posterior (shared colour limits, n models);
* posterior − prior of each model (diverging colour map, limits symmetric around 0, shared);
* the inter-model spread of the prior and of the posterior (shared limits) and its reduction
  ``1 − spread_post / spread_prior`` (diverging, within ±1), over the models with both stages;
* the zonal-mean profile and the global land total per time step (PgC yr⁻¹ for carbon fluxes,
  else the area-weighted land mean), every model, prior dashed and posterior solid.

Every number comes from the query layer (:mod:`dashboard.global_queries`), the same functions as
the live view; maps are then block-averaged with :meth:`ExportContext.to_fixed_grid` (at most
(180 / grid) × (360 / grid) values a map) and drawn as plain HoloViews ``Image`` elements: a
static page has no server for datashader's re-rasterizing callbacks. Colour limits are those of
:func:`dashboard.global_queries.colour_limits` on the maps as shown. Zonal means and land totals
are computed on the runs' native grid (a total over block-averaged cells would mis-weight
coastal land), which the page says.

Runs that cannot be used are named in the export log and on each page; the other runs are
exported.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import replace
from typing import TYPE_CHECKING, Any

import numpy as np

from dashboard.export import StaticPage

if TYPE_CHECKING:
    import holoviews as hv
    import panel as pn

    from dashboard.export import ExportContext
    from dashboard.global_queries import MapField

#: Bump when the Global pages change for the same inputs (part of their cache key).
GLOBAL_PAGES_VERSION = 1

#: The time the static maps show (the URL contract's long-term mean).
TIME = "mean"

#: Width in pixels of one map's frame.
MAP_WIDTH = 380


# ----------------------------------------------------------------------------- the hook
def page_path(index: int, variable: str) -> str:
    """Where the page of the ``index``-th global variable goes."""
    return "global.html" if index == 0 else f"global-{variable}.html"


def global_pages(context: ExportContext, name: str = "global") -> list[StaticPage]:
    """The Global view's static pages: one per variable of the archive's global runs.

    Unusable runs are named in the export log (and on the pages); an archive without any
    usable global run gets one page saying so.

    Parameters
    ----------
    context : ExportContext
        The export's service, options and log.
    name : str
        The view's name (``"global"``).

    Returns
    -------
    list of StaticPage
        The pages, under the index heading "Global".
    """
    from dashboard import global_queries as gq

    service = context.service
    broken = gq.problems(service)
    context.messages.extend(f"{name}: global run not used: {p}" for p in broken)
    variables = gq.global_variables(service)
    models = gq.global_models(service)
    key = {"view": name, "version": GLOBAL_PAGES_VERSION, "time": TIME,
           "grid_deg": context.grid_deg, "models": models, "variables": variables,
           "problems": broken}
    if not variables:
        why = ("This archive has no global runs (files named <model>.<version>_global_…)."
               if not gq.global_runs(service) else
               "None of this archive's global runs can be read.")
        context.messages.append(f"{name}: no global maps exported ({why.rstrip('.')})")
        return [StaticPage(path="global.html", title="Global", group="Global", key=key,
                           build=lambda: _empty_page(why, broken))]
    pages = []
    links = {v: page_path(i, v) for i, v in enumerate(variables)}
    for i, variable in enumerate(variables):
        unread = [p for p in gq.problems(service, variable) if p not in broken]
        context.messages.extend(f"{name}: {variable}: run not used: {p}" for p in unread)
        path = page_path(i, variable)
        pages.append(StaticPage(
            path=path, title=f"Global: {variable}", group="Global",
            key={**key, "variable": variable, "variable_problems": unread},
            build=(lambda variable=variable, unread=unread, path=path: global_page(
                context, variable, links=links, problems=broken + unread, path=path))))
    return pages


# ----------------------------------------------------------------------------- the data
def fixed_map(context: ExportContext, field: MapField) -> MapField:
    """``field`` block-averaged onto the export's fixed grid (a copy; coarse grids unchanged)."""
    import xarray as xr

    data = xr.DataArray(np.asarray(field.values, dtype="float64"),
                        coords={"lat": np.asarray(field.lat), "lon": np.asarray(field.lon)},
                        dims=("lat", "lon"))
    coarse = context.to_fixed_grid(data).transpose("lat", "lon").sortby(["lat", "lon"])
    return replace(field, values=np.asarray(coarse.values, dtype="float32"),
                   lat=np.asarray(coarse["lat"].values, dtype="float64"),
                   lon=np.asarray(coarse["lon"].values, dtype="float64"))


def map_sections(context: ExportContext, variable: str) -> list[tuple[str, str, list[MapField]]]:
    """The page's map groups (heading, note, maps on the fixed grid), each with shared limits.

    A group without maps keeps its heading and says why in its note.
    """
    from dashboard import global_queries as gq

    service = context.service

    def fixed(maps: list[MapField]) -> list[MapField]:
        return [fixed_map(context, m) for m in maps]

    means = fixed(gq.layer_maps(service, variable, "Prior", TIME, "mean", [])
                  + gq.layer_maps(service, variable, "Posterior", TIME, "mean", []))
    diffs = fixed(gq.layer_maps(service, variable, "Posterior", TIME, "difference", []))
    spread = fixed(gq.layer_maps(service, variable, "Posterior", TIME, "spread", []))
    reduction = fixed(gq.layer_maps(service, variable, "Posterior", TIME, "spread_reduction",
                                    []))
    need_two = "needs two models with both a prior and a posterior run"
    n_spread = spread[0].n_models if spread else 0
    return [
        ("Multi-model mean, prior and posterior",
         "mean over the models with a run of that stage (n in each title)"
         if means else "no run holds this variable", means),
        ("Posterior − prior, each model",
         f"at most {gq.MAX_PANELS} models; diverging colours, limits symmetric around 0"
         if diffs else "no model has both a prior and a posterior run", diffs),
        (f"Inter-model spread, prior vs posterior (n = {n_spread} models)",
         "standard deviation across models at each step, averaged over the steps"
         if spread else f"not drawn: the spread {need_two}", spread),
        ("Spread reduction 1 − spread_post / spread_prior",
         "positive: calibration brought the models closer together; limits within ±1"
         if reduction else f"not drawn: the reduction {need_two}", reduction),
    ]


# ----------------------------------------------------------------------------- drawing
def map_element(field: MapField, clim: tuple[float, float], variable: str) -> hv.Overlay:
    """One map: a plain ``Image`` (no datashader) under the offline land outline."""
    import holoviews as hv

    from dashboard.views import global_map as gm
    from dashboard.views.global_view import SEQUENTIAL, pretty_units
    from dashboard.views.style import DIVERGING

    units = pretty_units(field.units)
    value = hv.Dimension("value", label=variable, unit=units or None)
    image = hv.Image((field.lon, field.lat, field.values), kdims=[gm.LON, gm.LAT],
                     vdims=[value]).opts(
        cmap=DIVERGING if field.diverging else SEQUENTIAL, clim=clim, colorbar=True,
        clabel=units or "1", tools=["hover"], clipping_colors={"NaN": "transparent"})
    parts = field.title.split(", ")
    # "Multi-model mean (n models), Prior, …": the stage is the second part.
    title = ", ".join(parts[:2]) if parts[0].startswith("Multi-model") else parts[0]
    land = gm.land_outline("PlateCarree", "#333333")
    return (image * land).opts(hv.opts.Overlay(
        title=title, frame_width=MAP_WIDTH, frame_height=int(MAP_WIDTH / 2.4),
        shared_axes=False, **gm.projection_opts("PlateCarree")))


def _curves(frame: Any, x: str, variable: str, units: str, models: Sequence[str]
            ) -> list[hv.Curve]:
    """One curve per model and stage of a tidy frame (model, stage, ``x``, value)."""
    import holoviews as hv

    from dashboard.views.style import model_colour

    value = hv.Dimension("gvalue", label=variable, unit=units or None)
    axis = hv.Dimension(f"g{x}", label={"lat": "latitude"}.get(x, x))
    curves = []
    for (model, stage), rows in frame.groupby(["model", "stage"], sort=True):
        curve = hv.Curve((rows[x].to_numpy(), rows["value"].to_numpy(dtype=float)),
                         kdims=[axis], vdims=[value], label=f"{model} {stage}")
        curves.append(curve.opts(color=model_colour(model, list(models)), line_width=2,
                                 line_dash="dashed" if stage == "Prior" else "solid",
                                 tools=["hover"]))
    return curves


def zonal_element(context: ExportContext, variable: str, models: Sequence[str]) -> hv.Overlay:
    """Zonal means of the long-term mean, every model, prior dashed and posterior solid."""
    import holoviews as hv

    from dashboard import global_queries as gq
    from dashboard.views.global_view import pretty_units

    frame = gq.zonal_profiles(context.service, variable, TIME, [])
    units = pretty_units(str(frame["units"].iloc[0])) if len(frame) else ""
    curves = _curves(frame, "lat", variable, units, models) or [hv.Curve([])]
    return hv.Overlay(curves).opts(hv.opts.Overlay(
        title=f"Zonal mean ({gq.time_label(TIME)})", invert_axes=True, frame_width=260,
        frame_height=330, show_legend=False, shared_axes=False))


def totals_element(context: ExportContext, variable: str, models: Sequence[str]
                   ) -> tuple[hv.Overlay, str]:
    """Global land totals (PgC yr⁻¹ for carbon fluxes) or land means, and their units."""
    import holoviews as hv

    from dashboard import global_queries as gq
    from dashboard.views.global_view import pretty_units

    frame = gq.global_totals(context.service, variable, [])
    units = str(frame["units"].iloc[0]) if len(frame) else ""
    what = "Global land total" if units.startswith("PgC") else "Land mean (area-weighted)"
    curves = _curves(frame, "time", variable, pretty_units(units), models) or [hv.Curve([])]
    return hv.Overlay(curves).opts(hv.opts.Overlay(
        title=f"{what} of {variable}", responsive=True, height=280, show_legend=False,
        shared_axes=False)), units


def usable_models(context: ExportContext, variable: str) -> list[str]:
    """Models with at least one run whose ``variable`` can be read."""
    from dashboard import global_queries as gq

    service = context.service
    return [m for m in gq.global_models(service)
            if any((run := gq.run_for(service, m, stage)) is not None
                   and gq.run_field(service, run, variable) is not None
                   for stage in ("Prior", "Posterior"))]


def _native_step(context: ExportContext, variable: str) -> float | None:
    """The native grid step (degrees) of the first run holding ``variable``."""
    from dashboard import global_queries as gq

    for run in gq.global_runs(context.service):
        da = gq.run_field(context.service, run, variable)
        if da is not None and da.sizes.get("lat", 0) > 1:
            return float(abs(np.diff(da["lat"].values[:2])[0]))
    return None


def global_page(context: ExportContext, variable: str, *, links: dict[str, str],
                problems: Sequence[str], path: str) -> pn.Column:
    """The static page of one global variable (see the module docstring)."""
    import panel as pn

    from dashboard import global_queries as gq
    from dashboard.export import _nav
    from dashboard.views.style import alert_html, escape, model_colour

    every = gq.global_models(context.service)  # colours as in the live view
    models = usable_models(context, variable)
    native = _native_step(context, variable)
    g = context.grid_deg
    grid = (f"maps block-averaged from the {native:g}° grid of the runs to {g:g}°"
            if native is not None and native < g else
            f"maps on the {native if native is not None else g:g}° grid of the runs "
            f"(not finer than the {g:g}° of the export)")
    caption = (f"Static snapshot of the CalLMIP Explorer's Global view: {variable}, "
               f"{gq.time_label(TIME)}, {len(models)} models; {grid}; zonal means and land "
               "totals on the native grid. Zoom, pan and hover work; other times, layers and "
               "clicked cells need the live app.")
    parts: list[Any] = [pn.pane.HTML(_nav(path.count("/"), f"Global: {variable}", caption,
                                          links), sizing_mode="stretch_width")]
    if problems:
        parts.append(pn.pane.HTML("".join(alert_html(f"Global run not used: {p}", "warning")
                                          for p in problems), sizing_mode="stretch_width"))
    for heading, note, maps in map_sections(context, variable):
        parts.append(pn.pane.HTML(f"<h3 style='margin:0.6em 0 0 0'>{escape(heading)}</h3>"
                                  f"<small>{escape(note)}</small>",
                                  sizing_mode="stretch_width"))
        if not maps:
            continue
        clim = gq.colour_limits(maps)
        panes = [pn.pane.HoloViews(map_element(m, clim, variable), linked_axes=False)
                 for m in maps]
        parts.append(pn.GridBox(*panes, ncols=min(len(panes), 3)))
    totals, _units = totals_element(context, variable, every)
    key = "".join(
        f'<span style="margin-right:14px;white-space:nowrap"><span style="display:'
        f'inline-block;width:22px;border-top:3px solid {model_colour(m, every)};'
        f'vertical-align:middle"></span> {escape(m)}</span>' for m in models)
    parts += [
        pn.pane.HTML("<h3 style='margin:0.6em 0 0 0'>Zonal mean and global land total</h3>"
                     f"<small>{key} &nbsp; ┄ prior &nbsp; ━ posterior</small>",
                     sizing_mode="stretch_width"),
        pn.Row(pn.pane.HoloViews(zonal_element(context, variable, every), linked_axes=False),
               pn.pane.HoloViews(totals, linked_axes=False, sizing_mode="stretch_width"),
               sizing_mode="stretch_width"),
    ]
    return pn.Column(*parts, sizing_mode="stretch_width")


def _empty_page(why: str, problems: Sequence[str]) -> pn.Column:
    import panel as pn

    from dashboard.export import _nav
    from dashboard.views.style import alert_html

    alerts = alert_html(why, "info") + "".join(
        alert_html(f"Global run not used: {p}", "warning") for p in problems)
    return pn.Column(pn.pane.HTML(_nav(0, "Global", "Static snapshot of the CalLMIP Explorer"),
                                  sizing_mode="stretch_width"),
                     pn.pane.HTML(alerts, sizing_mode="stretch_width"),
                     sizing_mode="stretch_width")
