"""View-object tests (no browser) and a server smoke test for the dashboard."""

from __future__ import annotations

import html
import urllib.request
from pathlib import Path

import holoviews as hv
import numpy as np
import pandas as pd
import panel as pn
import pytest
from bokeh.document import Document
from pyviz_comms import Comm

from dashboard.app import create_app
from dashboard.server import start_server
from dashboard.service import get_service
from dashboard.state import Selection
from dashboard.urlstate import query_from_selection, selection_from_query
from dashboard.views.overview import OverviewView
from dashboard.views.sites import SitesView
from tests.appdata import CAL_SITE, HOSTILE, SPARSE_SITE, VAL_SITE, build_app_archive
from tests.conftest import free_port


@pytest.fixture(scope="module")
def archive_root(tmp_path_factory) -> Path:
    return build_app_archive(tmp_path_factory.mktemp("app-archive"))


@pytest.fixture(autouse=True)
def _cache_dir(tmp_path, monkeypatch):
    monkeypatch.setenv("CALLMIP_CACHE_DIR", str(tmp_path / "cache"))


@pytest.fixture
def service(archive_root):
    return get_service(archive_root, refresh=True)


def _model_lines(plot) -> dict[tuple[str, str], np.ndarray]:
    """(model, line_dash) → y values of every model line a site plot draws."""
    return {(line.label.rsplit(" ", 1)[0], line.dash): line.y for line in plot.lines
            if line.label.endswith((" prior", " posterior"))}


def test_timeseries_follow_the_selected_site(service):
    selection = Selection(site=CAL_SITE)
    view = SitesView(selection=selection, service=service)
    # No model chosen: the first is highlighted (prior and posterior in colour), the others'
    # posteriors are muted context.
    overlay = view.plots.timeseries(CAL_SITE, "NEE", 1, [])
    assert set(_model_lines(overlay)) == {
        ("ALPHA.v1", "dashed"), ("ALPHA.v1", "solid"), ("BETA-X.v2.1", "solid")}
    colours = {line.label: line.colour for line in overlay.lines}
    assert colours["BETA-X.v2.1 posterior"] == view.look.muted_colour
    assert colours["ALPHA.v1 posterior"] != view.look.muted_colour
    both = view.plots.timeseries(CAL_SITE, "NEE", 1, ["ALPHA.v1", "BETA-X.v2.1"])
    assert set(_model_lines(both)) == {
        ("ALPHA.v1", "dashed"), ("ALPHA.v1", "solid"),
        ("BETA-X.v2.1", "dashed"), ("BETA-X.v2.1", "solid")}
    # The observed points are the file's valid NEE values, with ±1.96 σ error bars.
    real = service.archive.open_observations(CAL_SITE)
    values = real["NEE"].values
    np.testing.assert_allclose(np.sort(overlay.points[1]), np.sort(values[np.isfinite(values)]))
    # The observation band spans ± 1.96 σ around each observed value and is shut (zero width)
    # on days without an observation.
    band = overlay.band("observation uncertainty")
    unc = real["NEE_unc"].values
    lower, upper = band.lower, band.upper
    seen = np.isfinite(values) & np.isfinite(unc)
    assert (~seen).any() and seen.any()
    np.testing.assert_allclose(lower[seen], (values - 1.96 * unc)[seen], rtol=1e-6)
    np.testing.assert_allclose(upper[seen], (values + 1.96 * unc)[seen], rtol=1e-6)
    np.testing.assert_array_equal(lower[~seen], upper[~seen])
    # Each highlighted posterior has its 95 % band (posterior files carry nep_post_unc).
    for drawn, n_bands in ((overlay, 1), (both, 2)):
        assert len([b for b in drawn.bands
                    if b.label.endswith("posterior band") and len(b.x)]) == n_bands
    other = view.plots.timeseries(VAL_SITE, "NEE", 1, ["BETA-X.v2.1"])
    assert set(_model_lines(other)) == {("BETA-X.v2.1", "dashed"), ("BETA-X.v2.1", "solid"),
                                        ("ALPHA.v1", "solid")}
    assert other.title.startswith(f"{VAL_SITE} NEE — ")
    # The y axis spans every value drawn, observations and bands included.
    low, high = overlay.y_range
    assert low <= np.nanmin(lower) and high >= np.nanmax(upper)


def test_closed_band_pins_gaps_shut():
    from dashboard.sitedata import closed_band as _closed_band

    x = np.arange(6.0)
    lower = np.array([0.0, 1.0, np.nan, np.nan, 3.0, np.nan])
    upper = lower + 2.0
    xs, lo, hi = _closed_band(x, lower, upper)
    np.testing.assert_array_equal(xs, x)
    np.testing.assert_array_equal(lo[[0, 1, 4]], lower[[0, 1, 4]])
    np.testing.assert_array_equal(hi[[0, 1, 4]], upper[[0, 1, 4]])
    # Missing days: zero width, on the mid-line interpolated between neighbours (2 → 4).
    np.testing.assert_allclose(lo[[2, 3, 5]], [2 + 2 / 3, 3 + 1 / 3, 4.0])
    np.testing.assert_array_equal(lo[[2, 3, 5]], hi[[2, 3, 5]])
    assert all(len(a) == 0 for a in _closed_band(x, x * np.nan, x * np.nan))


def test_model_nee_has_the_observed_sign_convention(service):
    view = SitesView(selection=Selection(site=CAL_SITE), service=service)
    overlay = view.plots.timeseries(CAL_SITE, "NEE", 1, ["ALPHA.v1"])
    prior = _model_lines(overlay)[("ALPHA.v1", "dashed")]
    run = service.archive.open_run(
        service.archive.prior_row("ALPHA.v1", 1, CAL_SITE)["path"])
    np.testing.assert_allclose(prior, -run["nep"].values * 1000 * 86400)


def test_sparse_site_says_how_few_days(service):
    view = SitesView(selection=Selection(site=SPARSE_SITE), service=service)
    text = view.card.site_card(SPARSE_SITE, 1, [])
    n_valid = int(np.isfinite(service.archive.open_observations(SPARSE_SITE)["NEE"]).sum())
    assert f"{n_valid} valid days" in text
    assert "insufficient" in text
    # The warning is coloured inline: the card's shadow root does not see Bootstrap's classes.
    warning = text[text.index('<div class="alert alert-warning"'):]
    assert "background:#fff3cd" in warning.split(">", 1)[0]


def test_map_marks_cal_and_val_and_tap_selects_site(service):
    selection = Selection(site=CAL_SITE)
    view = SitesView(selection=selection, service=service)
    points = view.map.site_points("misfit_reduction", "NEE", 1, "Posterior", [])
    frame = points.frame
    assert len(frame) == 31  # every Phase 1b site
    assert set(frame["role"]) == {"Cal", "Val"}
    index = int(np.flatnonzero(frame["site"].to_numpy() == VAL_SITE)[0])
    pn.panel(view).get_root(Document(), comm=Comm())
    # A click on a marker arrives as the map source's selected indices.
    assert view.map.source.data["marker"][index] == "triangle"  # a validation site
    view.map.source.selected.indices = [index]
    assert selection.site == VAL_SITE
    assert view.map.source.selected.indices == []  # ready for the next click
    np.testing.assert_allclose(view.map.ring.data["lon"], frame["lon"].iloc[[index]])


def test_map_colour_metric_changes_values(service):
    view = SitesView(selection=Selection(site=CAL_SITE), service=service)
    rmse = view.map.site_metric_frame("rmse", "Qle", 1, "Posterior", []).set_index("site")
    scores = service.table("site_scores")
    expected = scores[(scores["site"] == CAL_SITE) & (scores["variable"] == "Qle")
                      & (scores["stage"] == "Posterior") & (scores["scenario"] == 1)]["rmse"]
    assert rmse.loc[CAL_SITE, "value"] == pytest.approx(float(np.median(expected)))
    # The sparse site has too few NEE days: no number on the map.
    nee = view.map.site_metric_frame("misfit_reduction", "NEE", 1, "Posterior", [])
    assert nee.set_index("site").loc[SPARSE_SITE, "label"] == "insufficient data"


def test_diagrams_follow_variable(service):
    view = SitesView(selection=Selection(site=CAL_SITE), service=service)
    pair = ["ALPHA.v1", "BETA-X.v2.1"]
    cycle = view.plots.seasonal_cycle(CAL_SITE, "Qh", 1, pair)
    assert cycle.ylabel.startswith("Qh (")
    assert len(_model_lines(cycle)) == 4  # prior and posterior of each highlighted model
    assert len(_model_lines(view.plots.seasonal_cycle(CAL_SITE, "Qh", 1, ["ALPHA.v1"]))) == 3
    assert set(view.plots.taylor_frame(CAL_SITE, "Qle", 1, ["BETA-X.v2.1"])["model"]) == {
        "BETA-X.v2.1"}  # the diagrams show the highlighted models only
    taylor_frame = view.plots.taylor_frame(CAL_SITE, "Qle", 1, pair)
    assert sorted(zip(taylor_frame["model"], taylor_frame["stage"], strict=True)) == [
        ("ALPHA.v1", "Posterior"), ("ALPHA.v1", "Prior"),
        ("BETA-X.v2.1", "Posterior"), ("BETA-X.v2.1", "Prior")]
    # Normalised SD and correlation agree with a direct computation on the shared days.
    obs = service.archive.open_observations(CAL_SITE)["Qle"].to_series()
    run = service.archive.open_run(service.archive.prior_row("ALPHA.v1", 1, CAL_SITE)["path"])
    both = np.column_stack([obs.values, run["Qle"].to_series().reindex(obs.index).values])
    both = both[np.isfinite(both).all(axis=1)]
    row = taylor_frame[(taylor_frame["model"] == "ALPHA.v1")
                       & (taylor_frame["stage"] == "Prior")].iloc[0]
    assert row["r"] == pytest.approx(np.corrcoef(both.T)[0, 1])
    assert row["sd"] == pytest.approx(both[:, 1].std() / both[:, 0].std())
    taylor = view.plots.taylor(CAL_SITE, "Qle", 1, pair)
    x0, y0, x1, y1, codes = taylor.segments
    models = service.model_ids()
    # shaft + two-stroke head per model with both stages (GAMMA is unreadable)
    assert sorted(models[int(c)] for c in codes) == ["ALPHA.v1"] * 3 + ["BETA-X.v2.1"] * 3
    # Each arrow ends at the model's posterior point.
    post = taylor_frame[taylor_frame["stage"] == "Posterior"].set_index("model")
    start_model = models[int(codes[0])]
    assert x1[0] == pytest.approx(post.loc[start_model, "x"])
    assert (x0[0], y0[0]) == pytest.approx(tuple(taylor_frame[
        (taylor_frame["stage"] == "Prior") & (taylor_frame["model"] == start_model)
    ].iloc[0][["x", "y"]]))
    scatter = view.plots.scatter(CAL_SITE, "NEE", 1, ["ALPHA.v1"])
    drawn = {m.label: {models[int(c)] for c in m.code} for m in scatter.markers}
    assert drawn == {"prior": {"ALPHA.v1"}, "posterior": {"ALPHA.v1"}}
    # Every point pairs an observed day with the model's value on that day.
    points = [m for m in scatter.markers if m.label == "prior"][0]
    obs = service.archive.open_observations(CAL_SITE)["NEE"].to_series()
    run = service.archive.open_run(service.archive.prior_row("ALPHA.v1", 1, CAL_SITE)["path"])
    both = pd.concat([obs, run["NEE"].to_series()], axis=1, join="inner").dropna()
    np.testing.assert_allclose(np.sort(points.x), np.sort(both.iloc[:, 0]), rtol=1e-6)


def _figures(root) -> dict[str, object]:
    """Bokeh figures of a rendered view by the start of their title."""
    from bokeh.models import Plot

    return {p.title.text.split(" —")[0].split(":")[0]: p for p in root.select({"type": Plot})
            if p.title is not None and p.title.text}


def test_selection_updates_the_rendered_plots_in_place(service):
    selection = Selection(site=CAL_SITE)
    view = SitesView(selection=selection, service=service)
    doc = Document()
    root = pn.panel(view).get_root(doc, comm=Comm())
    before = _figures(root)
    nee = before[f"{CAL_SITE} NEE"]
    taylor = before["Taylor diagram (NEE)"]
    # Diagrams have axes of their own: not the map's, nor the time series' (HoloViews links
    # axes of the same dimension name across plots by default).
    site_map = next(fig for title, fig in before.items() if title.startswith("Sites"))
    assert taylor.x_range is not site_map.x_range
    assert before["Seasonal cycle"].y_range is not nee.y_range
    # The three time series share their time axis.
    assert before[f"{CAL_SITE} Qle"].x_range is nee.x_range
    old_x = nee.renderers[-1].data_source.data["x"].copy()

    selection.site = VAL_SITE
    after = _figures(root)
    assert f"{VAL_SITE} NEE" in after and f"{CAL_SITE} NEE" not in after
    assert after[f"{VAL_SITE} NEE"] is nee  # the same Bokeh figure, patched in place
    new_x = nee.renderers[-1].data_source.data["x"]
    assert not np.array_equal(old_x, new_x)
    card = view.card.card.object
    assert VAL_SITE in card and CAL_SITE not in card

    selection.variable = "Qh"
    after = _figures(root)
    assert "Taylor diagram (Qh)" in after and after["Taylor diagram (Qh)"] is taylor
    assert f"{VAL_SITE} NEE" in after  # the time series keep their variables


def test_a_selection_change_replaces_data_not_models(service, monkeypatch):
    from panel.io.state import set_curdoc

    # A switch sends new data on the existing models: no model is created or dropped, so
    # Bokeh never re-walks the document's model graph (a full walk per switch cost 0.05-0.3 s).
    selection = Selection(site=CAL_SITE)
    view = SitesView(selection=selection, service=service)
    doc = Document()
    doc.add_root(pn.panel(view).get_root(doc, comm=Comm()))
    before = {m.id for m in doc.models}
    walks = []
    monkeypatch.setattr(doc.models, "recompute", lambda: walks.append(1))
    with set_curdoc(doc):  # as in a served session: the view holds this document
        selection.site = VAL_SITE
        selection.variable = "Qh"
        selection.models = ["BETA-X.v2.1"]
        selection.metric = "chi2"
    assert walks == []
    monkeypatch.undo()
    doc.models.recompute()
    assert {m.id for m in doc.models} == before
    titles = {p.title.text for p in doc.models if getattr(p, "title", None) is not None
              and hasattr(p.title, "text")}
    assert any(t.startswith(f"{VAL_SITE} NEE") for t in titles)


def test_overview_coverage_marks_broken_and_scorecard_click_opens_site(service):
    selection = Selection()
    view = OverviewView(selection=selection, service=service)
    cover = view.coverage_frame(1).set_index(["model", "site"])
    assert cover.loc[("ALPHA.v1", CAL_SITE), "status"] == "prior + posterior"
    assert cover.loc[("GAMMA.v1", CAL_SITE), "status"] == "broken"
    score = view.scorecard_frame(1, "NEE").set_index(["model", "site"])
    assert score.loc[("ALPHA.v1", SPARSE_SITE), "label"].startswith("n=")
    assert np.isnan(score.loc[("ALPHA.v1", SPARSE_SITE), "misfit_reduction"])
    assert np.isfinite(score.loc[("ALPHA.v1", CAL_SITE), "misfit_reduction"])
    tap = hv.streams.Tap(source=view._score_dmap)
    tap.param.watch(view._on_tap, ["x", "y"])
    tap.event(x=VAL_SITE, y="BETA-X.v2.1")
    assert (selection.view, selection.site, selection.models) == ("sites", VAL_SITE,
                                                                  ["BETA-X.v2.1"])


def test_hostile_text_is_escaped(service):
    view = OverviewView(selection=Selection(), service=service)
    root = pn.panel(view).get_root(Document(), comm=Comm())
    html_texts = [m.text for m in root.references() if hasattr(m, "text") and
                  isinstance(getattr(m, "text", None), str)]
    # Panel transports HTML escaped once; the browser sets the unescaped text as innerHTML.
    inner_html = html.unescape("\n".join(html_texts))
    assert "onerror=alert(1)" in inner_html  # the broken file's message is listed ...
    assert HOSTILE not in inner_html  # ... but never as live markup
    assert "<script>" not in inner_html and "<img" not in inner_html
    assert "&lt;script&gt;" in inner_html


def test_url_round_trip_and_bad_values():
    selection = Selection()
    problems = selection_from_query(
        selection, {"view": [b"sites"], "site": [b"DK-Sor"], "variable": [b"Qh"],
                    "models": [b"ALPHA.v1,BOGUS.v9"], "scenario": [b"2"], "stage": [b"Prior"],
                    "metric": [b"chi2"]},
        sites=["DK-Sor"], models=["ALPHA.v1"])
    assert (selection.view, selection.site, selection.variable, selection.models,
            selection.scenario, selection.stage, selection.metric) == (
        "sites", "DK-Sor", "Qh", ["ALPHA.v1"], 2, "Prior", "chi2")
    assert any("BOGUS.v9" in p for p in problems)
    restored = Selection()
    selection_from_query(restored, query_from_selection(selection))
    assert query_from_selection(restored) == query_from_selection(selection)
    bad = Selection()
    problems = selection_from_query(bad, {"view": ["nope"], "scenario": ["x"]})
    assert bad.view == "overview" and bad.scenario == 1 and len(problems) == 2


def test_create_app_builds_bokeh_models(service, archive_root):
    app = create_app(str(archive_root))
    app.selection.view = "sites"
    root = pn.Column(*app.main.objects).get_root(Document(), comm=Comm())
    assert root is not None
    assert app.selection.site  # a site with observations is preselected


def test_no_upload_hides_the_check_page(service, archive_root):
    def rendered_text(app) -> str:
        app.selection.view = "check"
        return " ".join(str(getattr(o, "object", "")) for o in
                        pn.Column(*app.main.objects).select(pn.pane.HTML))

    closed = create_app(str(archive_root), upload=False)
    chooser = closed.sidebar.objects[0]
    assert "check" not in chooser.options.values()
    assert "turned off on this server" in rendered_text(closed)
    opened = create_app(str(archive_root))
    assert "check" in opened.sidebar.objects[0].options.values()
    assert "turned off on this server" not in rendered_text(opened)


def test_a_closed_session_leaves_no_views_or_plot_options_behind(service, archive_root):
    """A session's views and their HoloViews option trees are freed when it ends.

    A plot hook that was a view's bound method kept every session's views alive through
    HoloViews' process-wide option store (memory grew ~1 MiB per session on a server).
    """
    import gc
    import weakref

    from holoviews.core.options import Store
    from panel.io.state import state

    def open_and_close(view: str) -> list[weakref.ref]:
        app = create_app(str(archive_root))
        app.selection.view = view
        document = Document()
        for obj in app.main.objects:
            obj.get_root(document, comm=Comm())
        app.selection.variable = "Qle"  # an update after the first render
        views = [weakref.ref(v) for v in app.views.values()]
        assert views, "the view was not built"
        for ref, (viewable, root, doc, _comm) in list(state._views.items()):
            if doc is document:  # what Panel does when a session is destroyed
                viewable._cleanup(root)
                state._views.pop(ref, None)
        document.clear()
        return views

    open_and_close("sites")  # first use registers process-wide defaults
    gc.collect()
    baseline = len(Store._custom_options["bokeh"])
    refs = open_and_close("sites") + open_and_close("overview")
    gc.collect()
    assert [r() for r in refs] == [None] * len(refs)
    assert len(Store._custom_options["bokeh"]) <= baseline



def test_server_smoke(archive_root):
    port = free_port()
    server = start_server(str(archive_root), port=port, address="127.0.0.1", threaded=True)
    try:
        import time

        for _ in range(50):
            try:
                with urllib.request.urlopen(f"http://127.0.0.1:{port}/liveness", timeout=5) as r:
                    if r.status == 200:
                        break
            except OSError:
                time.sleep(0.2)
        with urllib.request.urlopen(f"http://127.0.0.1:{port}/?view=sites&site=DK-Sor",
                                    timeout=60) as r:
            body = r.read().decode()
        assert r.status == 200
        assert "CalLMIP Explorer" in body
    finally:
        try:
            server.stop()
        except RuntimeError:  # already stopped by Panel's state reset
            pass


def test_presentation_mode_enlarges_plots(service):
    from dashboard.views.style import Look

    normal = SitesView(selection=Selection(site=CAL_SITE), service=service)
    big = SitesView(selection=Selection(site=CAL_SITE), service=service,
                    look=Look(theme="dark", presentation=True))
    small = _figures(pn.panel(normal).get_root(Document(), comm=Comm()))[f"{CAL_SITE} Qh"]
    large = _figures(pn.panel(big).get_root(Document(), comm=Comm()))[f"{CAL_SITE} Qh"]
    assert float(large.title.text_font_size[:-2]) > float(small.title.text_font_size[:-2])
    assert large.background_fill_color != small.background_fill_color  # dark background
    assert max(large.renderers[1].data_source.data["width"]) > max(
        small.renderers[1].data_source.data["width"])  # thicker lines
    app = create_app(str(service.root), theme="dark", presentation=True)
    assert app.theme.__name__.lower().startswith("dark")
    assert any("font-size" in css for css in app.config.raw_css)
    # A still busy indicator: an animated spinner slowed every update in software rendering.
    assert isinstance(app.busy_indicator, pn.indicators.BooleanStatus)


def test_about_names_metrics_and_attributions():
    from dashboard.views.about import ABOUT_MD

    for text in ("FLUXNET2015", "CC-BY-4.0", "protocol", "NEE = −nep × 1000 × 86400",
                 "1 − RMSE_post / RMSE_prior", "spread reduction", "insufficient data",
                 "synthetic"):
        assert text in ABOUT_MD, text


def test_prefetch_reads_every_site_file_once(archive_root, monkeypatch):
    import loaders.archive as archive_module

    archive_module.clear_cache()
    service = get_service(archive_root, refresh=True)
    reads: list[str] = []
    real_open = archive_module.open_site_run
    monkeypatch.setattr(archive_module, "open_site_run",
                        lambda path: reads.append(path) or real_open(path))
    count = service.prefetch()
    runs = service.archive.site_runs
    readable = [p for p in runs["path"] if p not in service.archive.errors]
    observed = [s for s in service.archive.sites()
                if service.archive.observation_path(s) is not None]
    assert count == len(readable) + len(observed)
    assert sorted(set(reads)) == sorted(runs["path"])  # every run file, the broken one too
    # The Sites view's opening series are ready, and opening them reads no file again.
    reads.clear()
    models = tuple(service.model_ids())
    key = (CAL_SITE, "NEE", 1, models)
    assert ("series", *key) in service.cache
    service.site_series(*key)
    for path in readable:
        service.archive.open_run(path)
    assert reads == []
    # A stop request ends the prefetch before it reads anything.
    import threading

    archive_module.clear_cache()
    stop = threading.Event()
    stop.set()
    assert get_service(archive_root, refresh=True).prefetch(stop) == 0


def test_runs_by_site_match_a_plain_filter(service):
    archive = service.archive
    for site in archive.sites():
        expected = archive.site_runs[archive.site_runs["site"] == site]
        got = archive.runs(site=site)
        assert sorted(got["path"]) == sorted(expected["path"])
        assert sorted(archive.runs(site=site, scenario=1)["path"]) == sorted(
            expected[expected["scenario"] == 1]["path"])
    assert archive.runs(site="XX-Nope").empty


def test_site_card_escapes_file_messages(service):
    view = SitesView(selection=Selection(site=CAL_SITE, scenario=2), service=service)
    card = view.card.site_card(CAL_SITE, 2, [])
    assert "onerror=alert(1)" in html.unescape(card)  # the hostile run's message is shown ...
    assert "<script>" not in card and "<img" not in card  # ... as text, never as markup
    assert "&lt;script&gt;" in card


def test_daily_times_are_drawn_at_noon_and_keep_their_date():
    from dashboard.sitedata import epoch_ms

    days = pd.date_range("1990-01-01", "2030-12-31", freq="D")
    drawn = epoch_ms(days)
    assert drawn.dtype == np.float32
    back = pd.to_datetime(drawn.astype("float64"), unit="ms")
    # float32 holds epoch milliseconds to ~2 minutes: at noon that never reaches another date.
    assert (back.normalize() == days).all()
    assert (abs(back - (days + pd.Timedelta(hours=12))) < pd.Timedelta(minutes=3)).all()


def test_bad_cache_size_setting_warns_and_keeps_the_default(monkeypatch):
    from loaders.cache import DEFAULT_CACHE_MB, cache_bytes

    monkeypatch.setenv("CALLMIP_CACHE_MB", "many")
    with pytest.warns(UserWarning, match="CALLMIP_CACHE_MB='many' is not a number"):
        assert cache_bytes() == DEFAULT_CACHE_MB * 2**20
    monkeypatch.setenv("CALLMIP_CACHE_MB", "64")
    assert cache_bytes() == 64 * 2**20
    assert cache_bytes(8) == 8 * 2**20  # --cache-mb wins over the environment
    with pytest.warns(UserWarning, match="not positive"):
        assert cache_bytes(-1) == DEFAULT_CACHE_MB * 2**20


def test_a_variable_without_observations_is_drawn_in_community_units(service):
    view = SitesView(selection=Selection(site=CAL_SITE, variable="gpp"), service=service)
    overlay = view.plots.timeseries(CAL_SITE, "gpp", 1, ["ALPHA.v1"])
    assert overlay.title.startswith(f"{CAL_SITE} gpp — models only")
    lines = _model_lines(overlay)
    prior = lines[("ALPHA.v1", "dashed")]
    run = service.archive.open_run(service.archive.prior_row("ALPHA.v1", 1, CAL_SITE)["path"])
    np.testing.assert_allclose(prior, run["gpp"].values * 1000 * 86400, rtol=1e-6)  # gC m-2 d-1
    assert "gC m-2 d-1" in overlay.ylabel
    # Plots that need observations say why they are empty instead of appearing blank.
    assert "not observed" in view.plots.scatter(CAL_SITE, "gpp", 1, []).title
    assert "needs observations" in view.plots.taylor(CAL_SITE, "gpp", 1, []).title
    # The map falls back to the spread across models, and says so.
    points = view.map.site_points("misfit_reduction", "gpp", 1, "Posterior", [])
    assert "not observed" in points.label and points.metric == "spread_reduction"


def test_map_colour_bar_is_titled_after_the_chosen_metric(service):
    from bokeh.models import ColorBar

    selection = Selection(site=CAL_SITE, view="sites")
    root = pn.panel(SitesView(selection=selection, service=service)).get_root(
        Document(), comm=Comm())

    def bar_titles() -> list[str]:
        return [bar.title for bar in root.select({"type": ColorBar})]

    assert bar_titles() == ["Misfit reduction"]
    selection.metric = "chi2"  # HoloViews alone kept the first metric's title
    assert bar_titles() == ["χ²"]
    selection.variable = "lai"
    assert bar_titles() == ["Spread reduction (lai not observed)"]


def test_time_series_open_on_the_last_two_years_and_can_show_the_whole_record(service,
                                                                               monkeypatch):
    from bokeh.models import Plot

    import dashboard.views.site_plots as site_plots

    monkeypatch.setattr(site_plots, "RECENT_DAYS", 100)  # the tiny archive has two years
    selection = Selection(site=CAL_SITE, view="sites")
    view = SitesView(selection=selection, service=service)
    root = pn.panel(view).get_root(Document(), comm=Comm())
    nee = [p for p in root.select({"type": Plot})
           if p.title is not None and p.title.text.startswith(f"{CAL_SITE} NEE")][0]
    day = 86_400_000
    end = pd.Timestamp("2001-12-31T12:00").value / 1e6  # the tiny archive ends in 2001
    assert nee.x_range.end == pytest.approx(end + day, abs=day)
    assert nee.x_range.start == pytest.approx(end - 100 * day, abs=2 * day)
    view.window.value = "all"  # the button above the plots
    assert nee.x_range.start == pytest.approx(
        pd.Timestamp("2000-01-01T12:00").value / 1e6 - day, abs=2 * day)
    # A new highlight recolours the same curves in place (no new plot).
    glyphs = {id(r) for r in nee.renderers}
    selection.models = ["BETA-X.v2.1"]
    assert {id(r) for r in nee.renderers} == glyphs


def test_a_session_rebuilt_over_the_websocket_loads_stylesheets_from_the_server(service):
    from panel.io.resources import CDN_DIST
    from panel.io.state import set_curdoc

    class _Request:
        arguments: dict = {}
        cookies: dict = {}
        headers: dict = {}
        path = "/"

    class _Context:  # what Bokeh gives a session it creates on a websocket connection
        id = "rebuilt"
        request = _Request()

    document = Document()
    context = _Context()
    document._session_context = lambda: context
    with set_curdoc(document):
        create_app(str(service.root))
    dist = document._template_variables["dist_url"]
    assert not dist.startswith("http") and CDN_DIST not in dist  # never Panel's CDN
    widget = pn.widgets.Select(options=["a"])
    stylesheets = widget._get_properties(document)["stylesheets"]
    urls = [str(getattr(s, "url", "")) for s in stylesheets]
    assert urls and not any(u.startswith("http") for u in urls), urls


def test_warming_renders_a_page_and_the_sites_view(service):
    from dashboard.server import _warm

    _warm(service)  # `callmip serve --warm`: must render, not fail and be skipped
    assert ("series", CAL_SITE, "NEE", 1, tuple(service.model_ids())) in service.cache


def test_a_late_browser_url_report_is_corrected_again(service, monkeypatch):
    """The browser reports its own (bad) URL when it connects, before or after onload."""
    from panel.io.state import set_curdoc

    from dashboard import app as app_module

    bad = {"view": [b"sites"], "site": [CAL_SITE.encode()], "scenario": [b"0"],
           "variable": [b"nope"]}
    monkeypatch.setattr(app_module, "_session_args", lambda: dict(bad))
    document = Document()
    with set_curdoc(document):
        selection = Selection()
        problems = app_module._bind_url(selection, service)
        location = pn.state.location
        corrected = location.search
        assert "scenario=1" in corrected and "variable=NEE" in corrected
        assert len(problems) == 2
        # The browser's report of window.location arrives after the page has loaded.
        location.search = f"?view=sites&site={CAL_SITE}&scenario=0&variable=nope"
        pending = list(document.session_callbacks)
        assert len(pending) == 1  # a rewrite on the next tick, not inside Panel's update
        pending[0].callback()  # (running a next-tick callback removes it)
        assert location.search == corrected
        # A report that already matches the screen schedules nothing.
        location.search = f"?view=sites&site={CAL_SITE}"
        location.search = corrected
        assert len(document.session_callbacks) == 1


def _long_record_plot(days: int = 3000, shown: int = 365):
    """A time series Plot of ``days`` daily values that opens on its last ``shown`` days."""
    from dashboard.views.site_plots import Band, Line, Plot

    day = 86_400_000.0
    x = (np.datetime64("2001-01-01T12", "ms").astype("int64")
         + np.arange(days) * day).astype("float64")
    y = np.sin(np.arange(days) / 58.0).astype("float32")
    return Plot(title="long", xlabel="", ylabel="NEE",
                lines=(Line("A prior", x, y, "#ff0000", "dashed"),
                       Line("A posterior", x, y + 1, "#ff0000")),
                bands=(Band("observation uncertainty", x, y - 0.5, y + 0.5, "#000000", 0.2),),
                points=(x[::3], y[::3]),
                x_range=(x[-1] - shown * day, x[-1] + day), y_range=(-2.0, 3.0)), x, day


def test_a_live_time_series_sends_the_days_around_its_view_and_follows_a_pan():
    from dashboard.views.site_figures import timeseries_figure
    from dashboard.views.style import Look

    plot, x, day = _long_record_plot()
    start, end = plot.x_range
    width = end - start
    figure = timeseries_figure(Look(), "NEE", send_visible=True)
    figure.show(plot)
    lines = figure.sources["lines"].data
    held = lines["xs"][0]
    # The view and as much again on each side (one day beyond each end carries the line to
    # the edge): a fraction of the 3000 days, and exactly the plot's own values.
    assert held[0] <= start - width and held[-1] == x[-1]  # (the record ends in the view)
    assert held[1] >= start - width and len(held) < 0.5 * len(x)
    first = int(np.searchsorted(x, held[0]))
    np.testing.assert_array_equal(lines["ys"][1], plot.lines[1].y[first:first + len(held)])
    band_x = figure.sources["bands"].data["xs"][0]
    assert len(band_x) == 2 * len(held)  # along the upper edge and back along the lower
    points = figure.sources["points"].data["x"]
    assert points[0] < start - width <= points[1] and points[-1] == x[::3][-1]
    assert (figure.x_range.start, figure.x_range.end) == plot.x_range

    # A pan within the held days sends nothing.
    assert not figure.follow_view(start - 0.5 * width, end - 0.5 * width)
    assert figure.sources["lines"].data["xs"][0] is held
    # A pan back to 2003 sends the days of that view (and its margins).
    view = (x[800], x[800] + width)
    assert figure.follow_view(*view)
    moved = figure.sources["lines"].data["xs"][0]
    assert moved[0] <= view[0] - width and moved[-1] >= view[1] + width
    assert moved[-1] < start - width  # the days of the old view are not resent
    # Zoomed out to the whole record: every day.
    assert figure.follow_view(x[0] - day, x[-1] + day)
    np.testing.assert_array_equal(figure.sources["lines"].data["xs"][0], x)

    # A figure that sends everything (a static page) never slices.
    static = timeseries_figure(Look(), "NEE")
    static.show(plot)
    assert len(static.sources["lines"].data["xs"][0]) == len(x)
    assert not static.follow_view(*view)


def test_the_sites_view_answers_the_browsers_ranges_update(service):
    from bokeh.events import RangesUpdate

    selection = Selection(site=CAL_SITE)
    view = SitesView(selection=selection, service=service)
    root = pn.panel(view).get_root(Document(), comm=Comm())
    nee = _figures(root)[f"{CAL_SITE} NEE"]
    qh = view.series_figures["Qh"]
    full = [len(xs) for xs in qh.sources["lines"].data["xs"]]
    assert min(full) > 700  # the test records are two years: all of them are held
    # The browser reports a view far after the record (a long pan): the series hold only
    # the record's last day there; back on the record, every day again.
    day = 86_400_000.0
    last = float(qh.sources["lines"].data["xs"][0][-1])
    nee._trigger_event(RangesUpdate(nee, x0=last + 2000 * day, x1=last + 2300 * day))
    assert all(len(xs) <= 1 for xs in qh.sources["lines"].data["xs"])
    nee._trigger_event(RangesUpdate(nee, x0=last - 700 * day, x1=last))
    assert [len(xs) for xs in qh.sources["lines"].data["xs"]] == full


def test_sidebar_choices_are_handled_without_panels_debounce(service):
    # Panel waits 50 ms for more changes of a widget before handling a browser change; the
    # sidebar's widgets are single discrete choices, so a switch must not wait.
    from dashboard.app import build_widgets

    widgets = build_widgets(Selection(), service)
    assert {type(w).__name__ for w in widgets} >= {"Select", "MultiChoice",
                                                  "RadioButtonGroup"}
    assert all(w._debounce == 0 for w in widgets)
    assert pn.widgets.Select()._debounce > 0  # (Panel's default, which these override)
