"""The Global view as objects: HoloViews elements, Bokeh models, clicks, and no network."""

from __future__ import annotations

import socket
import urllib.request
from pathlib import Path

import holoviews as hv
import numpy as np
import pandas as pd
import panel as pn
import pytest
from bokeh.document import Document
from pyviz_comms import Comm

from dashboard.service import DataService
from dashboard.state import Selection
from dashboard.views import global_map as gm
from tests.appdata import build_app_archive
from tests.globaldata import field_of, write_run

TIMES = pd.date_range("2010-06-01", periods=3, freq="MS")


@pytest.fixture(scope="module")
def archive(tmp_path_factory) -> Path:
    root = build_app_archive(tmp_path_factory.mktemp("global-view"))
    one = field_of("zonal")[0]
    for i, model in enumerate(("ALPHA", "BETA")):
        for stage, scale in (("Prior", 1.0), ("Posterior", 1.5)):
            values = np.stack([one * 1e-9 * scale * (i + 1) * (t + 1) + 1e-7
                               for t in range(TIMES.size)])
            write_run(root / "global", model, stage, {"gpp": values}, times=TIMES)
    return root


def _view(archive: Path, **selection):
    import dashboard.app  # noqa: F401  (the bokeh extension, as in the app)
    from dashboard.views.global_view import GlobalView

    service = DataService(archive, cache_mb=64)
    s = Selection(view="global", variable="gpp", **selection)
    return GlobalView(selection=s, service=service), s


def _root(view):
    return pn.panel(view).get_root(Document(), comm=Comm())


def test_maps_share_colour_limits_and_follow_the_time(archive):
    from bokeh.models import LinearColorMapper

    view, s = _view(archive, time="2010-06")
    root = _root(view)
    assert [m.title.split(",")[0] for m in view.maps] == ["ALPHA.v1 Posterior",
                                                         "BETA.v1 Posterior"]
    low, high = view.clim
    every = np.concatenate([m.values.ravel() for m in view.maps])
    assert low == pytest.approx(np.nanpercentile(every, 2))
    assert high == pytest.approx(np.nanpercentile(every, 98))
    before = view.maps[1].values.copy()
    s.time = "2010-08"  # values triple from June to August
    offset = 1e-7 * 86400 * 1000  # the fields' constant part, in gC m-2 d-1
    np.testing.assert_allclose(view.maps[1].values - offset, 3 * (before - offset), rtol=1e-4)
    # the slider shows the month; the caption stays the same while the slider moves (a new
    # caption text made the browser lay the whole page out again on every step)
    assert view.slider_label() == "August 2010"
    assert "monthly means" in view.caption.value and "gC m⁻² d⁻¹" in view.caption.value
    caption = view.caption.value
    s.time = "2010-07"
    assert view.caption.value == caption and view.slider_label() == "July 2010"
    s.time = "2010-08"
    # both maps' colour bars moved to the new shared limits in the same update
    mappers = list(root.select({"type": LinearColorMapper}))
    assert len(mappers) == 2
    for mapper in mappers:
        assert (mapper.low, mapper.high) == pytest.approx(view.clim)
    assert view.time_mode.value == "month" and view.time_slider.value == 2


def test_the_map_is_resampled_as_rasterize_does_once_per_view(archive, monkeypatch):
    """The map is a DynamicMap over the plot's range and size streams (zoom refines it),
    resampled with datashader by rasterize's rule at the frame's size; reported ranges and
    sizes that match what is drawn resample nothing and send no new image."""
    from holoviews.operation.datashader import rasterize

    from dashboard.views import global_map

    view, s = _view(archive, time="2010-06", models=["BETA.v1"])
    _root(view)
    pane = view.map_holder.objects[0].objects[0]
    assert isinstance(pane.object, hv.DynamicMap)
    raster = view._rasters[0]
    kinds = {type(st) for st in raster.streams}
    assert {hv.streams.RangeXY, hv.streams.PlotSize} <= kinds
    image = pane.object[()].Image.I
    assert image.vdims[0].pprint_label == "gpp (gC m⁻² d⁻¹)"
    width, height = view._frame_sizes[0]
    expected = rasterize(view._image(0, "2010-06"), dynamic=False, precompute=True,
                         width=width, height=height)
    np.testing.assert_allclose(image.dimension_values(2, flat=False),
                               expected.dimension_values(2, flat=False), equal_nan=True)
    assert image.bounds.lbrt() == pytest.approx(expected.bounds.lbrt())
    assert np.isfinite(image.dimension_values(2)).any()
    calls = []
    real = global_map.regrid
    monkeypatch.setattr(global_map, "regrid", lambda *a, **k: calls.append(a) or real(*a, **k))
    plot = next(iter(pane._plots.values()))[0]
    source = next(sp.handles["source"] for sp in plot.subplots.values()
                  if "image" in sp.handles.get("source").data)
    drawn = source.data["image"][0]
    left, bottom, right, top = image.bounds.lbrt()
    ranges = next(st for st in raster.streams if isinstance(st, hv.streams.RangeXY))
    size = next(st for st in raster.streams if isinstance(st, hv.streams.PlotSize))
    ranges.event(x_range=(left, right), y_range=(bottom, top))  # what the browser reports
    size.event(width=width, height=height)
    assert calls == [] and source.data["image"][0] is drawn
    ranges.event(x_range=(0.0, 90.0), y_range=(0.0, 45.0))  # a zoom: resampled and sent
    assert len(calls) == 1 and source.data["image"][0] is not drawn


def test_layers_use_diverging_symmetric_limits_for_differences(archive):
    view, s = _view(archive, time="2010-06", layer="difference")
    _root(view)
    low, high = view.clim
    assert low == -high > -np.inf and high > 0
    s.layer = "spread_reduction"
    assert len(view.maps) == 1 and view.maps[0].diverging
    # spread grows 1.5× from prior to posterior at every cell: reduction −0.5
    np.testing.assert_allclose(view.maps[0].values[np.isfinite(view.maps[0].values)], -0.5,
                               rtol=1e-4)


def test_a_click_shows_the_cell_series_and_a_site_opens_the_sites_view(archive):
    view, s = _view(archive, time="2010-06")
    _root(view)
    view.select_cell(100.0, 50.0)
    plot = view.cell_plot("gpp", [], 100.0, 50.0)
    assert "45.00°, 105.00°" in plot.opts.get().kwargs["title"]
    shown = [c for c in plot if np.isfinite(c.dimension_values(1)).any()]
    assert len(shown) == 4 and all(len(c) == TIMES.size for c in shown)
    view.open_site("US-Ha1")
    assert s.view == "sites" and s.site == "US-Ha1"


def test_a_clicked_cell_is_drawn_with_its_own_value_range(archive):
    # The clicked cell's series once kept the empty first frame's ranges (a 1 ms time axis,
    # values 0-1), so the browser drew nothing; the rendered Bokeh figure must span the data.
    from bokeh.models import Plot

    view, _ = _view(archive, time="2010-06")
    root = _root(view)
    view.select_cell(100.0, 50.0)
    (figure,) = [p for p in root.select({"type": Plot})
                 if p.title is not None and "nearest cell" in str(p.title.text)]
    values = np.concatenate([c.dimension_values(1) for c in view.cell_plot("gpp", [], 100.0, 50.0)])
    values = values[np.isfinite(values)]
    assert values.size
    y = figure.y_range
    assert y.start <= values.min() and y.end >= values.max()
    x = figure.x_range
    day_ms = 86_400_000
    assert x.end - x.start > 300 * day_ms  # the whole record, not a 1 ms axis


def test_before_a_click_the_cell_plot_spans_the_runs_in_their_units(archive):
    # An empty plot once showed a 1 ms time axis around 1970 and "gpp []".
    view, _ = _view(archive, time="2010-06")
    _root(view)
    plot = view.cell_plot("gpp", [], np.nan, np.nan)
    options = plot.opts.get().kwargs
    assert options["xlim"] == (view.times[0], view.times[-1])
    figure = hv.render(plot)
    assert "gC m" in figure.yaxis[0].axis_label and "[]" not in figure.yaxis[0].axis_label


def test_robinson_projects_the_grid_once_and_clicks_map_back(archive):
    from dashboard.views import global_map as gm

    view, s = _view(archive, time="2010-06", models=["ALPHA.v1"], projection="Robinson")
    _root(view)
    m = view.maps[0]
    grid = gm.projected_grid(m.lat, m.lon, "Robinson")
    assert gm.projected_grid(m.lat, m.lon, "Robinson") is grid
    x, y = gm.project_lonlat(np.array([100.0]), np.array([50.0]), "Robinson")
    lon, lat = view._lonlat(float(x[0]), float(y[0]))
    assert (lon, lat) == pytest.approx((100.0, 50.0), abs=1e-6)
    # the pixel at that place holds the value of its source cell (45 N, 105 E)
    j = int(np.abs(grid.x - x[0]).argmin())
    i = int(np.abs(grid.y - y[0]).argmin())
    cell = m.values[np.flatnonzero(m.lat == 45.0)[0], np.flatnonzero(m.lon == 105.0)[0]]
    assert grid.gather(m.values)[i, j] == pytest.approx(cell)


def test_no_network_access_and_no_cartopy_download(archive, monkeypatch):
    attempts: list[str] = []
    real_connect = socket.socket.connect

    def guarded_connect(sock, address):
        host = address[0] if isinstance(address, tuple) else str(address)
        if host not in ("127.0.0.1", "localhost", "::1"):
            attempts.append(str(address))
            raise OSError("network access in a test")
        return real_connect(sock, address)

    def no_urlopen(*args, **kwargs):
        attempts.append(str(args[0]) if args else "urlopen")
        raise OSError("network access in a test")

    monkeypatch.setattr(socket.socket, "connect", guarded_connect)
    monkeypatch.setattr(urllib.request, "urlopen", no_urlopen)
    import cartopy

    from dashboard.views import global_map as gm

    assert cartopy.config["downloaders"] == {}
    for projection in ("PlateCarree", "Robinson"):
        view, _ = _view(archive, time="2010-06", projection=projection)
        _root(view)
        hv.renderer("bokeh").get_plot(gm.land_outline(projection, "#333333"))
    assert attempts == []


def test_a_model_with_only_global_runs_is_accepted_in_a_global_url(tmp_path, monkeypatch):
    """``?view=global&models=GONLY.v1`` names a model without site runs: kept, not refused."""
    from dashboard import app as app_module

    root = build_app_archive(tmp_path / "archive")
    one = field_of("zonal")[0]
    for stage in ("Prior", "Posterior"):
        write_run(root / "global", "GONLY", stage,
                  {"gpp": np.stack([one * 1e-9 + 1e-7] * TIMES.size)}, times=TIMES)
    monkeypatch.setenv("CALLMIP_CACHE_DIR", str(tmp_path / "cache"))
    service = DataService(root, cache_mb=64)
    assert "GONLY.v1" not in service.model_ids()  # no site runs
    query = {"view": [b"global"], "variable": [b"gpp"], "models": [b"GONLY.v1,NOPE.v1"]}
    assert "GONLY.v1" in app_module.url_models(service, query)
    monkeypatch.setattr(app_module, "_session_args", lambda: dict(query))
    app = app_module.create_app(str(root))
    assert app.selection.view == "global" and app.selection.models == ["GONLY.v1"]
    warnings = " ".join(str(getattr(o, "object", "")) for o in app.main.objects[0].objects)
    assert "NOPE.v1" in warnings and "GONLY.v1" not in warnings
    picker = next(w for w in app.sidebar.objects
                  if isinstance(w, pn.widgets.MultiChoice))
    assert "GONLY.v1" in picker.options and picker.value == ["GONLY.v1"]
    # the Sites view still validates against the site runs' models
    sites_query = {"view": [b"sites"], "models": [b"GONLY.v1"]}
    assert "GONLY.v1" not in app_module.url_models(service, sites_query)


@pytest.mark.parametrize("projection", ["PlateCarree", "Robinson"])
def test_the_map_hover_shows_degrees_and_the_value_with_units(archive, projection):
    """Robinson's axes are metres: the hover maps the pointer back to lon °E / lat °N."""
    from bokeh.models import CustomJSHover, HoverTool
    from bokeh.models import Image as ImageGlyph

    from dashboard.views import global_map as gm

    view, s = _view(archive, time="2010-06", models=["ALPHA.v1"], projection=projection)
    root = _root(view)
    hovers = [h for h in root.select({"type": HoverTool})
              if any(isinstance(r.glyph, ImageGlyph) for r in (h.renderers or []))
              or h.renderers == "auto"]
    tooltips = [dict(h.tooltips) for h in hovers if isinstance(h.tooltips, list)]
    image_tips = [t for t in tooltips if "longitude (°E)" in t]
    assert image_tips, tooltips
    tips = image_tips[0]
    assert tips["latitude (°N)"] == "$y{custom}" and tips["gpp"].endswith(" gC m⁻² d⁻¹")
    hover = next(h for h in hovers if isinstance(h.tooltips, list)
                 and "longitude (°E)" in dict(h.tooltips))
    lon_js = hover.formatters["$x"]
    assert isinstance(lon_js, CustomJSHover)
    lats, ys, xs = (lon_js.args[k] for k in ("lats", "ys", "xs"))
    if projection == "PlateCarree":
        assert lats == ys == xs == []  # the axes are degrees already
        return
    # the tables invert the projection: a point at 100°E, 50°N maps back to it
    x, y = gm.project_lonlat(np.array([100.0]), np.array([50.0]), projection)
    lat = np.interp(y[0], ys, lats)
    lon = 180 * x[0] / np.interp(y[0], ys, xs)
    assert (lon, lat) == pytest.approx((100.0, 50.0), abs=0.01)


def test_the_zonal_profile_follows_the_time_step_and_the_models(archive):
    """The profile's line sources are replaced in place on a time step (no new figure)."""
    from dashboard import global_queries as gq

    view, s = _view(archive, time="2010-06", models=["ALPHA.v1"])
    _root(view)
    figure = view._zonal_figure
    assert set(view._zonal_sources) == {("ALPHA.v1", "Prior"), ("ALPHA.v1", "Posterior")}
    source = view._zonal_sources[("ALPHA.v1", "Posterior")]
    june = np.asarray(source.data["value"], dtype=float).copy()
    expected = gq.zonal_profiles(view.service, "gpp", "2010-06", ["ALPHA.v1"])
    posterior = expected[expected["stage"] == "Posterior"]
    np.testing.assert_allclose(june, posterior["value"].to_numpy(float))
    s.time = "2010-08"  # values triple from June to August (plus the constant part)
    assert view._zonal_figure is figure and view._zonal_sources[("ALPHA.v1", "Posterior")] \
        is source
    offset = 1e-7 * 86400 * 1000
    august = np.asarray(source.data["value"], dtype=float)
    ok = np.isfinite(june)
    np.testing.assert_allclose(august[ok] - offset, 3 * (june[ok] - offset), rtol=1e-4)
    assert figure.xaxis[0].axis_label == "gpp (gC m⁻² d⁻¹)"
    s.models = ["ALPHA.v1", "BETA.v1"]  # a new set of curves: the figure is rebuilt
    assert view._zonal_figure is not figure and len(view._zonal_sources) == 4


@pytest.mark.parametrize("projection", ["PlateCarree", "Robinson"])
def test_a_time_step_after_a_zoom_resamples_as_rasterize_does(archive, projection):
    """Once the browser has sent the plot's range and size, a step resamples with datashader
    directly: the image and its bounds are those of HoloViews' rasterize at that range/size."""
    from holoviews.operation.datashader import rasterize

    view, s = _view(archive, time="2010-06", models=["ALPHA.v1"], projection=projection)
    _root(view)
    raster = view._rasters[0]
    ranges = next(st for st in raster.streams if isinstance(st, hv.streams.RangeXY))
    size = next(st for st in raster.streams if isinstance(st, hv.streams.PlotSize))
    window = ((-20.0, 60.0), (-10.0, 45.0))
    if projection != "PlateCarree":
        x, y = gm.project_lonlat(np.array(window[0]), np.array(window[1]), projection)
        window = ((float(x[0]), float(x[1])), (float(y[0]), float(y[1])))
    ranges.event(x_range=window[0], y_range=window[1])  # a zoom, as the browser reports it
    size.event(width=37, height=23)  # fewer pixels than cells: datashader aggregates
    s.time = "2010-08"
    image, bounds = view._frame(0, raster, "2010-08")
    expected = rasterize(view._image(0, "2010-08"), dynamic=False, precompute=True,
                         x_range=window[0], y_range=window[1], width=37, height=23)
    assert bounds == pytest.approx(expected.bounds.lbrt())
    np.testing.assert_allclose(image, expected.dimension_values(2, flat=False), rtol=1e-6,
                               equal_nan=True)
    assert np.isfinite(image).any()
    source = next(sp.handles["source"] for sp in next(iter(
        view._map_panes[0]._plots.values()))[0].subplots.values()
        if "image" in sp.handles.get("source").data)
    np.testing.assert_allclose(np.asarray(source.data["image"][0], dtype=float), image,
                               equal_nan=True)


@pytest.mark.parametrize("projection", ["PlateCarree", "Robinson"])
def test_a_time_step_draws_what_the_holoviews_path_draws(archive, projection):
    """A step replaces the image source directly: the same data as a map opened at that time.

    And a later zoom (the rasterize range stream) draws the new time, not the old one.
    """
    from bokeh.models import ColumnDataSource

    def image_source(view) -> ColumnDataSource:
        plot = next(iter(view._map_panes[0]._plots.values()))[0]
        return next(sp.handles["source"] for sp in plot.subplots.values()
                    if "image" in sp.handles.get("source", ColumnDataSource()).data)

    stepped, s = _view(archive, time="2010-06", models=["ALPHA.v1"], projection=projection)
    _root(stepped)
    source = image_source(stepped)
    june = np.array(source.data["image"][0], dtype=float)
    s.time = "2010-08"
    assert image_source(stepped) is source  # same glyph, new data
    assert stepped._step_maps()  # the direct path is the one taken (not the fallback)
    opened, _ = _view(archive, time="2010-08", models=["ALPHA.v1"], projection=projection)
    _root(opened)
    expected = image_source(opened).data
    for key in ("x", "y", "dw", "dh"):
        assert source.data[key][0] == pytest.approx(expected[key][0])
    august = np.asarray(source.data["image"][0], dtype=float)
    np.testing.assert_allclose(august, np.asarray(expected["image"][0], dtype=float),
                               equal_nan=True)
    assert not np.allclose(august, june, equal_nan=True)
    raster = stepped._rasters[0]
    ranges = next(st for st in raster.streams if isinstance(st, hv.streams.RangeXY))
    x0, x1 = expected["x"][0], expected["x"][0] + expected["dw"][0]
    y0, y1 = expected["y"][0], expected["y"][0] + expected["dh"][0]
    ranges.event(x_range=(x0, x1), y_range=(y0, y1))  # a zoom to the whole map
    zoomed = np.asarray(image_source(stepped).data["image"][0], dtype=float)
    np.testing.assert_allclose(zoomed, august, equal_nan=True)


def test_the_totals_pane_shows_every_model_and_stage_after_the_read(archive):
    """The totals (read off the event loop in a server; at once here) are drawn for every
    model and stage in PgC yr⁻¹, and follow a change of models."""
    view, s = _view(archive, time="2010-06")
    _root(view)
    pane = view._totals_holder.objects[0]
    overlay = pane.object[()]
    labels = sorted(c.label for c in overlay)
    assert labels == ["ALPHA.v1 Posterior", "ALPHA.v1 Prior", "BETA.v1 Posterior",
                      "BETA.v1 Prior"]
    assert all(np.isfinite(c.dimension_values(1)).all() for c in overlay)
    assert overlay.get(0).vdims[0].unit == "PgC yr⁻¹"
    assert not view._totals_holder.loading
    s.models = ["BETA.v1"]
    shown = [c.label for c in view._totals_holder.objects[0].object[()]
             if np.isfinite(c.dimension_values(1)).any()]
    assert sorted(shown) == ["BETA.v1 Posterior", "BETA.v1 Prior"]


def test_presentation_mode_shows_one_map_a_row(archive):
    """Larger type in presentation mode: two maps a row ran past a 1400 px window's edge."""
    from dashboard.views.global_view import GlobalView
    from dashboard.views.style import Look

    view, _ = _view(archive, time="2010-06")
    _root(view)
    assert len(view.maps) == 2 and view.map_holder.objects[0].ncols == 2
    presented = GlobalView(selection=Selection(view="global", variable="gpp", time="2010-06"),
                           service=DataService(archive, cache_mb=64),
                           look=Look(presentation=True))
    _root(presented)
    assert presented.map_holder.objects[0].ncols == 1
