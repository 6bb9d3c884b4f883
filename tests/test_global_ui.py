"""Browser tests of the Global view in Debian's chromium (marked ``ui``)."""

from __future__ import annotations

import re
from pathlib import Path

import numpy as np
import pandas as pd
import pytest

from tests.appdata import build_app_archive
from tests.conftest import UI_TESTS, served
from tests.globaldata import field_of, write_run
from tests.test_ui import wait_idle

pytestmark = UI_TESTS

ARTIFACTS = Path(__file__).resolve().parent.parent / "test-artifacts"


@pytest.fixture(scope="module")
def global_archive(tmp_path_factory) -> Path:
    """The app tests' tiny archive plus two models' global runs (ALPHA.v1, BETA-X.v2.1)."""
    root = build_app_archive(tmp_path_factory.mktemp("global-ui"))
    # June–August 2010: July 2010 is inside, 2001 is outside.
    times = pd.date_range("2010-06-01", periods=3, freq="MS")
    one = field_of("zonal")[0]
    for i, (model, version) in enumerate((("ALPHA", "v1"), ("BETA-X", "v2.1"))):
        for stage, scale in (("Prior", 1.0), ("Posterior", 1.2)):
            values = np.stack([one * 1e-9 * scale * (i + 1) * (t + 1) + 1e-7
                               for t in range(times.size)])
            write_run(root / "global", model, stage,
                      {"gpp": values}, times=times)
            written = root / "global" / f"{model}.v1_global_30deg_monthly_2010-2010_{stage}.nc"
            written.rename(written.with_name(
                f"{model}.{version}_global_30deg_monthly_2010-2010_{stage}.nc"))
    return root


@pytest.fixture
def global_url(global_archive, tmp_path, monkeypatch):
    monkeypatch.setenv("CALLMIP_CACHE_DIR", str(tmp_path / "cache"))
    with served(global_archive) as url:
        yield url


#: Window size of the watched pages.
VIEWPORT = {"width": 1600, "height": 1200}


def _drawn_images(page) -> list[dict]:
    """Every Bokeh Image glyph's data shape and how many of its values are finite."""
    return page.evaluate("""() => [...Bokeh.documents[0].all_models]
        .filter(m => m.type === 'ColumnDataSource' || (m.data && m.data.image))
        .filter(m => m.data && m.data.image && m.data.image.length)
        .map(m => { const img = m.data.image[0];
                    const arr = img.length !== undefined ? Array.from(img) : [];
                    return {n: arr.length,
                            finite: arr.filter(v => Number.isFinite(v)).length}; })""")


def _titles(page) -> list[str]:
    return page.evaluate("""() => [...Bokeh.documents[0].all_models]
        .filter(m => m.title && typeof m.title === 'object' && m.title.text)
        .map(m => m.title.text)""")


def _click_map(page, title_start: str, x: float, y: float) -> None:
    box = page.evaluate("""([start, x, y]) => {
        const plot = [...Bokeh.documents[0].all_models].find(
            m => m.title && m.title.text && m.title.text.startsWith(start));
        const view = Bokeh.index.find_one(plot);
        const r = view.canvas_view.el.getBoundingClientRect();
        return {x: r.left + view.frame.x_scale.compute(x),
                y: r.top + view.frame.y_scale.compute(y)};
    }""", [title_start, x, y])
    page.mouse.click(box["x"], box["y"])


def test_global_view_draws_a_map(watched, global_url):
    watched.goto(f"{global_url}/?view=global&variable=gpp")
    wait_idle(watched, timeout=120)
    images = _drawn_images(watched)
    assert images and all(i["finite"] > 0 for i in images), images
    titles = _titles(watched)
    assert any(t.startswith("ALPHA.v1 Posterior") for t in titles), titles
    watched.wait_for_function(  # the totals are read off the event loop, then drawn
        """() => [...Bokeh.documents[0].all_models].some(m => m.title && m.title.text
                 && m.title.text.startsWith('Global land total of gpp'))""", timeout=60000)
    ARTIFACTS.mkdir(exist_ok=True)
    watched.screenshot(path=str(ARTIFACTS / "global-view.png"), full_page=True)


def test_time_and_stage_from_the_url_and_a_click_shows_the_cell_series(watched, global_url):
    watched.goto(f"{global_url}/?view=global&variable=gpp&time=2010-07&stage=Posterior")
    wait_idle(watched, timeout=120)
    assert any(t.startswith("BETA-X.v2.1 Posterior") for t in _titles(watched))
    assert [i for i in _drawn_images(watched) if i["finite"] > 0]
    assert "time=2010-07" in watched.url and "stage=Posterior" in watched.url
    watched.goto(f"{global_url}/?view=global&variable=gpp&time=2010-08&stage=Prior"
                 "&models=ALPHA.v1")
    wait_idle(watched, timeout=120)
    assert any(t.startswith("ALPHA.v1 Prior") for t in _titles(watched))
    assert [i for i in _drawn_images(watched) if i["finite"] > 0]
    _click_map(watched, "ALPHA.v1 Prior", 100.0, 50.0)  # no site there
    watched.wait_for_function(
        """() => [...Bokeh.documents[0].all_models].some(
            m => m.title && m.title.text && m.title.text.startsWith('gpp at 45.00°, 105.00°'))""",
        timeout=60000)
    wait_idle(watched, timeout=60)


def test_totals_and_a_cell_series_are_read_off_the_event_loop(watched, global_url,
                                                              monkeypatch):
    """The global totals and a clicked cell's series are read in a background thread: while
    each read is held, /liveness is answered; once let go, the plot is drawn."""
    import threading
    import urllib.request

    from dashboard import global_queries as gq

    started = {"totals": threading.Event(), "cell": threading.Event()}
    release = {"totals": threading.Event(), "cell": threading.Event()}
    order: list[str] = []

    def held(name, real):
        def read(*args, **kwargs):
            if (threading.current_thread().name.startswith("callmip-background")
                    and not release[name].is_set()):
                order.append(f"{name} read")
                started[name].set()
                release[name].wait(timeout=90)
            return real(*args, **kwargs)
        return read

    monkeypatch.setattr(gq, "global_totals", held("totals", gq.global_totals))
    monkeypatch.setattr(gq, "cell_series", held("cell", gq.cell_series))
    watched.goto(f"{global_url}/?view=global&variable=gpp&time=2010-07&models=ALPHA.v1")
    for name in ("totals", "cell"):
        assert started[name].wait(timeout=120), f"no {name} read in the background"
        try:
            with urllib.request.urlopen(f"{global_url}/liveness", timeout=60) as response:
                assert response.status == 200
            order.append(f"{name}: liveness answered")
        finally:
            release[name].set()
        if name == "totals":
            watched.wait_for_function(
                """() => [...Bokeh.documents[0].all_models].some(m => m.title && m.title.text
                         && m.title.text.startsWith('Global land total of gpp'))""",
                timeout=60000)
            wait_idle(watched, timeout=60)
            _click_map(watched, "ALPHA.v1 Posterior", 100.0, 50.0)
    watched.wait_for_function(
        """() => [...Bokeh.documents[0].all_models].some(
            m => m.title && m.title.text && m.title.text.startsWith('gpp at 45.00°, 105.00°'))""",
        timeout=60000)
    assert order == ["totals read", "totals: liveness answered", "cell read",
                     "cell: liveness answered"]


def test_a_time_outside_the_runs_is_reported_and_robinson_draws(watched, global_url):
    watched.goto(f"{global_url}/?view=global&variable=gpp&time=2001-07&stage=Posterior"
                 "&projection=Robinson&models=BETA-X.v2.1")
    wait_idle(watched, timeout=120)
    assert watched.locator("text=outside the runs' period").count() >= 1
    # the long-term mean is drawn instead, in Robinson coordinates (metres, not degrees)
    assert [i for i in _drawn_images(watched) if i["finite"] > 0]
    x_range = watched.evaluate("""() => [...Bokeh.documents[0].all_models]
        .filter(m => m.type === 'Range1d' || m.start !== undefined)
        .map(m => Math.abs(m.end - m.start)).filter(Number.isFinite)""")
    assert max(x_range) > 1e6


def test_clicking_a_site_marker_opens_the_sites_view(watched, global_url):
    watched.goto(f"{global_url}/?view=global&variable=gpp&models=ALPHA.v1&time=2010-06")
    wait_idle(watched, timeout=120)
    _click_map(watched, "ALPHA.v1 Posterior", -72.1715, 42.5378)  # US-Ha1
    watched.wait_for_function("() => window.location.search.includes('view=sites')",
                              timeout=60000)
    assert "site=US-Ha1" in watched.url


def _map_box(page, title_start: str) -> dict:
    """The page box of the canvas of the map whose title starts with ``title_start``."""
    return page.evaluate("""(start) => {
        const plot = [...Bokeh.documents[0].all_models].find(
            m => m.title && m.title.text && m.title.text.startsWith(start));
        const r = Bokeh.index.find_one(plot).canvas_view.el.getBoundingClientRect();
        return {x: r.left, y: r.top, width: r.width, height: r.height};
    }""", title_start)


_IMAGE_SUM_JS = """() => [...Bokeh.documents[0].all_models]
    .filter(m => m.data && m.data.image && m.data.image.length)
    .map(m => Array.from(m.data.image[0]).filter(Number.isFinite)
                   .reduce((a, b) => a + b, 0))
    .reduce((a, b) => a + b, 0)"""


def _image_sum(page) -> float:
    """Sum of the finite values of every Image glyph's data in the browser's document."""
    return page.evaluate(_IMAGE_SUM_JS)


@pytest.fixture
def growing_url(tmp_path, monkeypatch):
    """An archive whose global field is c·(t + 1): August 2010 is 3× June everywhere."""
    root = build_app_archive(tmp_path / "growing")
    times = pd.date_range("2010-06-01", periods=3, freq="MS")
    shape = field_of("zonal")[0].shape
    for stage in ("Prior", "Posterior"):
        values = np.stack([np.full(shape, 1e-8 * (t + 1)) for t in range(times.size)])
        write_run(root / "global", "ALPHA", stage, {"gpp": values}, times=times)
    monkeypatch.setenv("CALLMIP_CACHE_DIR", str(tmp_path / "cache"))
    with served(root) as url:
        yield url


def test_a_time_step_redraws_the_map_in_the_browser(watched, growing_url):
    """The month slider moved from JavaScript: new image data arrive and the canvas changes."""
    global_url = growing_url
    watched.goto(f"{global_url}/?view=global&variable=gpp&time=2010-06&models=ALPHA.v1")
    wait_idle(watched, timeout=120)
    before_sum = _image_sum(watched)
    box = _map_box(watched, "ALPHA.v1 Posterior")
    before_png = watched.screenshot(clip=box)
    moved = watched.evaluate("""() => {
        const s = [...Bokeh.documents[0].all_models].find(
            m => m.type === 'Slider' && String(m.title || '').startsWith('Month'));
        if (!s) return false;
        s.value = 2; s.value_throttled = 2; return true; }""")
    assert moved, "no month slider in the page"
    watched.wait_for_function("() => window.location.search.includes('time=2010-08')",
                              timeout=60000)
    # August's image is 3× June's (the URL may change before the new image arrives: wait for
    # it; a time-out fails the test)
    watched.wait_for_function(f"() => ({_IMAGE_SUM_JS})() !== {before_sum!r}", timeout=60000)
    wait_idle(watched, timeout=60)
    assert _image_sum(watched) == pytest.approx(3 * before_sum, rel=1e-4)
    assert before_sum == pytest.approx(_drawn_images(watched)[0]["finite"] * 0.864, rel=1e-4)
    assert watched.screenshot(clip=_map_box(watched, "ALPHA.v1 Posterior")) != before_png
    assert watched.locator("text=August 2010").count() >= 1


def test_the_robinson_hover_shows_degrees(watched, global_url):
    watched.goto(f"{global_url}/?view=global&variable=gpp&time=2010-06&models=ALPHA.v1"
                 "&projection=Robinson")
    wait_idle(watched, timeout=120)
    from dashboard.views.global_map import project_lonlat

    x, y = project_lonlat(np.array([100.0]), np.array([50.0]), "Robinson")
    point = watched.evaluate("""([x, y]) => {
        const plot = [...Bokeh.documents[0].all_models].find(
            m => m.title && m.title.text && m.title.text.startsWith('ALPHA.v1 Posterior'));
        const view = Bokeh.index.find_one(plot);
        const r = view.canvas_view.el.getBoundingClientRect();
        return {x: r.left + view.frame.x_scale.compute(x),
                y: r.top + view.frame.y_scale.compute(y)};
    }""", [float(x[0]), float(y[0])])
    watched.mouse.move(point["x"] - 3, point["y"] - 3)
    watched.mouse.move(point["x"], point["y"])
    label = watched.get_by_text("longitude (°E)").first
    label.wait_for(state="visible", timeout=30000)
    text = watched.evaluate("""() => {
        const found = [];
        const walk = (root) => {
            for (const el of root.querySelectorAll('*')) {
                if (el.shadowRoot) walk(el.shadowRoot);
                if (el.className && String(el.className).includes('tooltip')
                    && el.offsetParent !== null) found.push(el.innerText);
            }
        };
        walk(document);
        return found.join('\\n');
    }""")
    values = dict(re.findall(r"(longitude \(°E\)|latitude \(°N\))[:\s]*([-\d.]+)", text))
    assert float(values["longitude (°E)"]) == pytest.approx(100.0, abs=0.5), text
    assert float(values["latitude (°N)"]) == pytest.approx(50.0, abs=0.5), text
    assert "gC m⁻² d⁻¹" in text and "metre" not in text
