"""Browser tests of the Parameters view in Debian's chromium (marked ``ui``)."""

from __future__ import annotations

from pathlib import Path

import pytest

from tests.appdata import build_app_archive
from tests.conftest import UI_TESTS, served
from tests.test_parameters_view import BAD, GOOD, _write
from tests.test_ui import ARTIFACTS, LAYOUT_JS, _overlaps, titles, wait_idle

pytestmark = UI_TESTS

#: Tick labels of the axes of the plots on screen (the parameter names are drawn on canvas).
#: A redrawn plot replaces its figure; the old one may stay in the document's models for a
#: while, so only figures whose view is in the page count.
TICK_LABELS_JS = """() => [...Bokeh.documents[0].all_models]
    .filter(m => m.major_label_overrides && m.major_label_overrides.size !== undefined)
    .filter(m => { const v = Bokeh.index.find_one(m);
                   return v && v.parent && v.parent.el && v.parent.el.isConnected; })
    .flatMap(m => [...m.major_label_overrides.values()])
    .map(v => typeof v === 'string' ? v : (v.text || ''))"""


@pytest.fixture(scope="module")
def params_archive(tmp_path_factory) -> Path:
    root = build_app_archive(tmp_path_factory.mktemp("ui-params"))
    _write(root / "parameters" / "ALPHA.v1_Phase1b_Scen1_parameters.csv", GOOD + BAD)
    return root


@pytest.fixture
def params_url(params_archive, tmp_path, monkeypatch):
    monkeypatch.setenv("CALLMIP_CACHE_DIR", str(tmp_path / "cache"))
    with served(params_archive) as url:
        yield url


def test_parameters_view_shows_parameters_and_messages(watched, params_url):
    watched.goto(f"{params_url}/?view=parameters&scenario=1")
    wait_idle(watched, timeout=120)
    ts = titles(watched)
    assert any(t.startswith("Scenario 1: parameters in their prior range") for t in ts), ts
    assert any(t.startswith("Uncertainty reduction") for t in ts), ts
    ticks = watched.evaluate(TICK_LABELS_JS)
    assert "vcmax (DBF)" in ticks and "q10" in ticks, ticks
    # the model without a table, with the file name it should send, and the bad rows
    assert watched.locator("text=BETA-X.v2.1_Phase1b_Scen1_parameters.csv").count() >= 1
    assert watched.locator("text=prior_max 'about 1' is not a number").count() >= 1
    assert "view=parameters" in watched.url and "scenario=1" in watched.url


def test_a_process_filter_redraws_the_parameters(watched, params_url):
    watched.goto(f"{params_url}/?view=parameters&scenario=1")
    wait_idle(watched, timeout=120)
    # choose "respiration" in the process filter, as a user does (the sidebar's model
    # chooser is the page's first multiple choice, the process filter the second)
    box = watched.locator(".choices__input--cloned").nth(1)
    box.click()
    box.press_sequentially("respir", delay=50)
    box.press("Enter")
    watched.wait_for_function(
        f"""() => {{ const t = ({TICK_LABELS_JS})();
                     return t.includes('q10') && !t.includes('vcmax (DBF)'); }}""",
        timeout=30000)


@pytest.mark.parametrize("size", [(1280, 720), (1920, 1080)], ids=["720p", "1080p"])
@pytest.mark.parametrize("mode", ["light", "dark-present"])
def test_parameters_layout_has_no_overlap(watched, params_url, size, mode):
    watched.set_viewport_size({"width": size[0], "height": size[1]})
    extra = "&theme=dark&present=1" if mode == "dark-present" else ""
    watched.goto(f"{params_url}/?view=parameters&scenario=1{extra}")
    wait_idle(watched, timeout=120)
    layout = watched.evaluate(LAYOUT_JS)
    plots = [b for b in layout["boxes"] if b["what"].startswith("plot")]
    assert len(plots) >= 5, layout["boxes"]
    assert not _overlaps(layout["boxes"]), _overlaps(layout["boxes"])
    assert not layout["clipped"], layout["clipped"]
    ARTIFACTS.mkdir(exist_ok=True)
    watched.screenshot(path=str(ARTIFACTS / f"parameters-{mode}-{size[0]}.png"))


@pytest.mark.slow
def test_demo_parameters_in_the_browser(watched, tmp_path_factory, tmp_path, monkeypatch):
    from tests.test_demo import shared_demo_archive

    monkeypatch.setenv("CALLMIP_CACHE_DIR", str(tmp_path / "cache"))
    with served(shared_demo_archive(tmp_path_factory)) as url:
        watched.goto(f"{url}/?view=parameters&scenario=1")
        wait_idle(watched, timeout=180)
        ticks = watched.evaluate(TICK_LABELS_JS)
        assert "topt" in ticks and "eps_forest (forest)" in ticks, ticks
