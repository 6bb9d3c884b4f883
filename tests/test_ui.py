"""Browser tests: the served app in Debian's chromium, driven by Playwright (marked ``ui``)."""

from __future__ import annotations

from pathlib import Path

import pytest

from tests.appdata import CAL_SITE, VAL_SITE, build_app_archive
from tests.conftest import UI_TESTS, served

pytestmark = UI_TESTS

ARTIFACTS = Path(__file__).resolve().parent.parent / "test-artifacts"
README_SCREENSHOT = Path(__file__).resolve().parent.parent / "assets" / "sites-view.png"



@pytest.fixture(scope="module")
def ui_archive(tmp_path_factory) -> Path:
    return build_app_archive(tmp_path_factory.mktemp("ui-archive"))


@pytest.fixture
def app_url(ui_archive, tmp_path, monkeypatch):
    # One server per test: Panel's state reset after each test stops running servers.
    monkeypatch.setenv("CALLMIP_CACHE_DIR", str(tmp_path / "cache"))
    with served(ui_archive) as url:
        yield url


def wait_idle(page, timeout: float = 60.0, plots: bool = True) -> None:
    """Wait until Bokeh has rendered every model and no session update is pending.

    The page shell arrives first and the view fills in once the page has loaded (Panel's
    ``defer_load``): with ``plots`` this also waits for a plot to be drawn.
    """
    page.wait_for_function(
        "() => window.Bokeh && Bokeh.documents.length > 0 && Bokeh.documents[0].is_idle",
        timeout=timeout * 1000)
    if plots:  # the view has added its last plot (dashboard.views.loading.COMPLETE_CLASS)
        page.wait_for_function(
            """() => [...Bokeh.documents[0].all_models].some(
                         m => (m.css_classes || []).includes('callmip-complete'))
                     && Bokeh.documents[0].is_idle""", timeout=timeout * 1000)
    page.wait_for_timeout(300)


def titles(page) -> list[str]:
    """Titles of every plot in the page (Bokeh draws them on canvas, so read the models)."""
    return page.evaluate("""() => [...Bokeh.documents[0].all_models]
        .filter(m => m.title && typeof m.title === 'object' && m.title.text)
        .map(m => m.title.text)""")


def test_app_loads_without_errors(watched, app_url):
    watched.goto(f"{app_url}/")
    wait_idle(watched)
    assert "CalLMIP Explorer" in watched.title() or watched.locator("text=CalLMIP Explorer").count()
    assert any("Misfit reduction" in t for t in titles(watched))


def test_a_site_without_any_data_draws_its_plots_without_page_errors(watched, app_url):
    # DE-Hai is in the site table but has no run and no observation in this archive: its time
    # axes have no data, for which the calendar ticker once chose no ticker (page errors, and
    # none of the site's plots drawn).
    watched.goto(f"{app_url}/?view=sites&site=DE-Hai&variable=NEE")
    wait_idle(watched)
    assert any(t.startswith("DE-Hai NEE") for t in titles(watched)), titles(watched)


def test_url_opens_site_and_variable(watched, app_url):
    watched.goto(f"{app_url}/?view=sites&site={VAL_SITE}&variable=Qh")
    wait_idle(watched)
    ts = titles(watched)
    assert any(t.startswith(f"{VAL_SITE} NEE") for t in ts), ts
    assert any(t.startswith("Taylor diagram (Qh)") for t in ts), ts
    assert f"site={VAL_SITE}" in watched.url and "variable=Qh" in watched.url


def _click_site(page, lon: float, lat: float) -> None:
    box = page.evaluate("""([lon, lat]) => {
        const plot = [...Bokeh.documents[0].all_models].find(
            m => m.title && m.title.text && m.title.text.startsWith('Sites'));
        const view = Bokeh.index.find_one(plot);
        const r = view.canvas_view.el.getBoundingClientRect();
        return {x: r.left + view.frame.x_scale.compute(lon),
                y: r.top + view.frame.y_scale.compute(lat)};
    }""", [lon, lat])
    page.mouse.click(box["x"], box["y"])


def test_clicking_a_site_updates_the_time_series(watched, app_url):
    watched.goto(f"{app_url}/?view=sites&site={CAL_SITE}")
    wait_idle(watched)
    assert any(t.startswith(f"{CAL_SITE} NEE") for t in titles(watched))
    _click_site(watched, -72.1715, 42.5378)  # US-Ha1
    watched.wait_for_function(
        f"""() => [...Bokeh.documents[0].all_models].some(
            m => m.title && m.title.text && m.title.text.startsWith('{VAL_SITE} NEE'))""",
        timeout=30000)
    wait_idle(watched)
    assert f"site={VAL_SITE}" in watched.url


#: (number of days, first day) of the NEE time series' first model line in the browser.
_NEE_LINE_JS = """() => {
    const fig = [...Bokeh.documents[0].all_models].find(
        m => m.title && m.title.text && m.title.text.includes(' NEE'));
    const source = fig.renderers.map(r => r.data_source).find(s => s.data.dash);
    const canvas = Bokeh.index.find_one(fig).canvas_view.el.getBoundingClientRect();
    return {n: source.data.xs[0].length, first: source.data.xs[0][0],
            box: [canvas.left, canvas.top, canvas.width, canvas.height]};
}"""


def test_a_pan_past_the_sent_days_brings_the_days_of_the_new_view(watched, app_url):
    # The series hold the days around the view; a mouse pan beyond them asks the server for
    # the new view's days (Bokeh's RangesUpdate at the end of the pan), and the whole record
    # button sends every day again.
    watched.goto(f"{app_url}/?view=sites&site={CAL_SITE}")
    wait_idle(watched)
    opened = watched.evaluate(_NEE_LINE_JS)
    assert opened["n"] > 700  # the test records are two years: all of them held
    watched.evaluate("""() => { const fig = [...Bokeh.documents[0].all_models].find(
        m => m.title && m.title.text && m.title.text.includes(' NEE'));
        Bokeh.index.find_one(fig).canvas_view.el.scrollIntoView(); }""")
    for _ in range(3):  # drag the plot leftwards: the view moves past the record's end
        left, top, width, height = watched.evaluate(_NEE_LINE_JS)["box"]
        y = top + height / 2
        watched.mouse.move(left + width * 0.9, y)
        watched.mouse.down()
        for step in range(1, 9):
            watched.mouse.move(left + width * (0.9 - 0.1 * step), y)
        watched.mouse.up()
        watched.wait_for_timeout(400)
    watched.wait_for_function(
        f"() => ({_NEE_LINE_JS})().first > {opened['first']}", timeout=15000)
    panned = watched.evaluate(_NEE_LINE_JS)
    assert panned["n"] < opened["n"]  # only the days around the new view
    watched.get_by_role("button", name="Whole record").click()
    watched.wait_for_function(
        f"() => ({_NEE_LINE_JS})().n === {opened['n']}", timeout=15000)


def test_sites_screenshot_shows_data(watched, app_url):
    from PIL import Image

    watched.set_viewport_size({"width": 1440, "height": 900})
    watched.goto(f"{app_url}/?view=sites&site={CAL_SITE}")
    wait_idle(watched)
    ARTIFACTS.mkdir(exist_ok=True)
    target = ARTIFACTS / "sites-view.png"
    watched.screenshot(path=str(target), full_page=True)
    # The README's first screen shows this very screenshot (kept under assets/).
    watched.screenshot(path=str(README_SCREENSHOT))
    image = Image.open(target).convert("RGB")
    colours = image.getcolors(maxcolors=1_000_000)
    assert colours is not None and len(colours) > 50  # plots, not a blank page
    # The NEE time series canvas holds coloured (non-grey) pixels: data were drawn.
    box = watched.evaluate("""() => {
        const plot = [...Bokeh.documents[0].all_models].find(
            m => m.title && m.title.text && m.title.text.includes(' NEE'));
        const r = Bokeh.index.find_one(plot).canvas_view.el.getBoundingClientRect();
        return {x: r.left + window.scrollX, y: r.top + window.scrollY,
                width: r.width, height: r.height};
    }""")
    assert box["width"] > 300 and box["height"] > 100
    crop = ARTIFACTS / "sites-nee-canvas.png"
    watched.screenshot(path=str(crop), clip=box, full_page=True)
    canvas = Image.open(crop).convert("RGB")
    coloured = sum(n for n, (r, g, b) in canvas.getcolors(maxcolors=1_000_000)
                   if max(r, g, b) - min(r, g, b) > 40)
    assert coloured > 200


def test_a_bad_url_value_shows_a_banner_and_the_page_still_works(watched, app_url):
    watched.goto(f"{app_url}/?view=sites&site={CAL_SITE}&scenario=0&variable=nope")
    wait_idle(watched)
    banner = watched.locator("text=scenario 0 is not in this archive")
    assert banner.count() >= 1
    assert watched.locator("text=variable='nope' is not one of").count() >= 1
    assert any(t.startswith(f"{CAL_SITE} NEE") for t in titles(watched))  # plots still drawn
    # The URL is corrected: it names what is on the screen, not the ignored values (the
    # correction is a message of its own, so give it a moment to arrive).
    watched.wait_for_function(
        "() => location.search.includes('scenario=1') && !location.search.includes('nope')",
        timeout=10000)
    assert "scenario=1" in watched.url and "variable=NEE" in watched.url
    assert "scenario=0" not in watched.url and "nope" not in watched.url
    # The banner is styled (inline, inside Panel's shadow root), not plain text.
    colour = banner.first.evaluate("e => getComputedStyle(e).backgroundColor")
    assert colour not in ("rgba(0, 0, 0, 0)", "transparent"), colour


def test_an_unknown_site_in_the_url_is_replaced_in_the_url(watched, app_url):
    watched.goto(f"{app_url}/?view=sites&site=NOPE&models=ALPHA.v1,XX")
    wait_idle(watched)
    assert watched.locator("text=unknown site in URL").count() >= 1
    assert "site=NOPE" not in watched.url and "XX" not in watched.url
    assert f"site={CAL_SITE}" in watched.url and "models=ALPHA.v1" in watched.url


def test_clicking_a_scorecard_cell_opens_that_site_and_model(watched, app_url):
    watched.goto(f"{app_url}/?view=overview")
    wait_idle(watched)
    cell = watched.evaluate("""() => {
        const plot = [...Bokeh.documents[0].all_models].find(
            m => m.title && m.title.text && m.title.text.startsWith('Misfit reduction'));
        const view = Bokeh.index.find_one(plot);
        const r = view.canvas_view.el.getBoundingClientRect();
        const box = view.frame.bbox;
        const source = plot.renderers.map(g => g.data_source).find(s => s && s.data.site);
        return {x: r.left + box.left + 8, y: r.top + box.top + 8,
                site: plot.x_range.factors[0],
                pairs: source.data.site.map((s, i) => s + '|' + source.data.model[i])};
    }""")
    watched.mouse.click(cell["x"], cell["y"])  # the first site's column, top row
    watched.wait_for_url("**view=sites**", timeout=30000)
    wait_idle(watched)
    query = dict(part.split("=", 1) for part in watched.url.split("?", 1)[1].split("&"))
    assert query["site"] == cell["site"]
    assert f"{query['site']}|{query['models']}" in cell["pairs"]  # a scored cell's model
    watched.wait_for_function(
        """(site) => [...Bokeh.documents[0].all_models].some(
            m => m.title && m.title.text && m.title.text.startsWith(site + ' NEE'))""",
        arg=cell["site"], timeout=30000)


def test_a_variable_without_observations_shows_its_series_in_community_units(watched,
                                                                            app_url):
    watched.goto(f"{app_url}/?view=sites&site={CAL_SITE}&variable=gpp")
    wait_idle(watched)
    assert any(t.startswith(f"{CAL_SITE} gpp") for t in titles(watched)), titles(watched)
    labels = watched.evaluate("""() => [...Bokeh.documents[0].all_models]
        .filter(m => m.axis_label).map(m => m.axis_label)""")
    assert any("gpp" in label and "gC m-2 d-1" in label for label in labels), labels


LAYOUT_JS = """() => {
    const boxes = [], clipped = [];
    const ctx = document.createElement('canvas').getContext('2d');
    for (const model of Bokeh.documents[0].all_models) {
        const view = Bokeh.index.find_one(model);
        if (!view || !view.el || !view.el.isConnected) continue;
        const r = view.el.getBoundingClientRect();
        if (r.width < 2 || r.height < 2) continue;
        const box = {x0: r.left + scrollX, y0: r.top + scrollY,
                     x1: r.right + scrollX, y1: r.bottom + scrollY};
        if (view.canvas_view && view.frame) {
            const title = model.title && typeof model.title === 'object' ? model.title : null;
            const text = title && title.text ? title.text : '';
            boxes.push({...box, what: 'plot ' + text});
            if (text) {
                const size = title.text_font_size || '13px';
                const font = title.text_font || 'sans-serif';
                ctx.font = `${title.text_font_style || 'bold'} ${size} ${font}`;
                const right = view.frame.bbox.left + ctx.measureText(text).width;
                if (right > r.width + 1) clipped.push(text);
            }
        } else if (typeof model.text === 'string' && model.text.includes('site-card')) {
            boxes.push({...box, what: 'site card'});
        }
    }
    return {boxes, clipped};
}"""


def _overlaps(boxes: list[dict]) -> list[tuple[str, str]]:
    found = []
    for i, a in enumerate(boxes):
        for b in boxes[i + 1:]:
            width = min(a["x1"], b["x1"]) - max(a["x0"], b["x0"])
            height = min(a["y1"], b["y1"]) - max(a["y0"], b["y0"])
            if width > 2 and height > 2:
                found.append((a["what"], b["what"]))
    return found


@pytest.mark.parametrize("size", [(1280, 720), (1920, 1080)], ids=["720p", "1080p"])
@pytest.mark.parametrize("present", ["0", "1"], ids=["normal", "presentation"])
def test_nothing_overlaps_and_no_title_is_clipped(watched, app_url, size, present):
    watched.set_viewport_size({"width": size[0], "height": size[1]})
    for view in ("sites", "overview"):
        watched.goto(f"{app_url}/?view={view}&site={CAL_SITE}&present={present}")
        wait_idle(watched)
        layout = watched.evaluate(LAYOUT_JS)
        plots = [b for b in layout["boxes"] if b["what"].startswith("plot")]
        assert len(plots) >= (7 if view == "sites" else 2), layout["boxes"]
        assert not _overlaps(layout["boxes"]), (view, _overlaps(layout["boxes"]))
        assert not layout["clipped"], (view, layout["clipped"])
