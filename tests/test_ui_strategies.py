"""Browser tests of the Scenarios and Methods views (issue #16), marked ``ui``.

The archive is the known-answer archive of ``tests/test_strategies.py`` (models A and C ran
Scenarios 1 and 3, B only Scenario 1; C's model-information file carries HTML in its text).
"""

from __future__ import annotations

from pathlib import Path

import pytest

from tests.conftest import UI_TESTS, served
from tests.test_strategies import HOSTILE, build_strategy_archive
from tests.test_ui import titles, wait_idle

pytestmark = UI_TESTS

ARTIFACTS = Path(__file__).resolve().parent.parent / "test-artifacts"


@pytest.fixture(scope="module")
def strategy_archive(tmp_path_factory) -> Path:
    return build_strategy_archive(tmp_path_factory.mktemp("strategy-ui") / "archive")


@pytest.fixture
def url(strategy_archive, tmp_path, monkeypatch):
    monkeypatch.setenv("CALLMIP_CACHE_DIR", str(tmp_path / "cache"))
    with served(strategy_archive) as base:
        yield base


@pytest.fixture
def page_checked(page):
    """The page; the test fails on a page error, a dialog (script run) or an outside request."""
    errors, external, dialogs = [], [], []
    page.on("pageerror", lambda e: errors.append(str(e)))
    page.on("dialog", lambda d: (dialogs.append(d.message), d.dismiss()))
    page.on("request", lambda r: external.append(r.url)
            if not r.url.startswith(("http://127.0.0.1", "data:", "blob:", "about:")) else None)
    page.set_viewport_size({"width": 1600, "height": 1100})
    yield page
    assert not errors, f"page errors: {errors}"
    assert not dialogs, f"a script from a file ran: {dialogs}"
    assert not external, f"requests left the machine: {external}"


def _cell_position(page, title: str, x: str, y: str) -> dict:
    """Screen position of a heatmap cell (Bokeh draws on canvas: ask its scales)."""
    return page.evaluate("""([title, x, y]) => {
        const plot = [...Bokeh.documents[0].all_models].find(
            m => m.title && m.title.text === title);
        const view = Bokeh.index.find_one(plot);
        view.el.scrollIntoView({block: 'center'});
        const r = view.canvas_view.el.getBoundingClientRect();
        return {x: r.left + view.frame.x_scale.compute(x),
                y: r.top + view.frame.y_scale.compute(y)};
    }""", [title, x, y])


def test_scenarios_view_loads_and_a_cell_opens_the_sites_view(page_checked, url):
    page = page_checked
    page.goto(f"{url}/?view=scenarios")
    wait_idle(page)
    shown = titles(page)
    assert {"A.v1", "B.v1", "C.v1", "All models: median over models"} <= set(shown), shown
    assert page.get_by_text("Ran Scenario 1 only").count() >= 1
    ARTIFACTS.mkdir(exist_ok=True)
    page.screenshot(path=str(ARTIFACTS / "scenarios-view.png"), full_page=True)
    box = _cell_position(page, "A.v1", "Qle", "Scen3: Qle")
    page.wait_for_timeout(300)
    box = _cell_position(page, "A.v1", "Qle", "Scen3: Qle")  # after scrolling
    page.mouse.click(box["x"], box["y"])
    page.wait_for_function("() => location.search.includes('view=sites')", timeout=30000)
    query = page.url.split("?", 1)[1]
    assert "models=A.v1" in query and "scenario=3" in query and "variable=Qle" in query
    # the Sites view is built (its map's title) for the model and scenario clicked
    page.wait_for_function("""() => [...Bokeh.documents[0].all_models].some(
        m => m.title && m.title.text && m.title.text.startsWith('Sites'))""", timeout=60000)
    wait_idle(page)
    page.screenshot(path=str(ARTIFACTS / "scenarios-click-sites.png"))


def test_methods_view_loads_and_shows_file_text_as_text(page_checked, url):
    page = page_checked
    page.goto(f"{url}/?view=methods")
    wait_idle(page)
    assert any(t.startswith("median misfit reduction") for t in titles(page)), titles(page)
    # the hostile description is on the page as literal text, not as markup
    assert page.get_by_text(HOSTILE).count() >= 1
    assert page.get_by_text("No model-information file from: B.v1").count() >= 1
    ARTIFACTS.mkdir(exist_ok=True)
    page.screenshot(path=str(ARTIFACTS / "methods-view.png"), full_page=True)


def test_a_grid_button_opens_the_parameters_view_for_its_model(page_checked, url):
    page = page_checked
    page.goto(f"{url}/?view=scenarios&models=C.v1")
    wait_idle(page)
    assert "C.v1" in titles(page) and "A.v1" not in titles(page)  # ?models= limits the grids
    page.get_by_role("button", name="Parameter shifts across scenarios").first.click()
    page.wait_for_function("() => location.search.includes('view=parameters')", timeout=30000)
    assert "models=C.v1" in page.url
