"""The check page in chromium: upload through the page's file input (marked ``ui``)."""

from __future__ import annotations

import json
from pathlib import Path

import netCDF4
import pytest

from tests.appdata import CAL_SITE
from tests.conftest import UI_TESTS
from tests.synthetic import write_site_run
from tests.test_ui import (  # noqa: F401  (fixtures)
    ARTIFACTS,
    app_url,
    titles,
    ui_archive,
    wait_idle,
)

pytestmark = UI_TESTS

HOSTILE = "<img src=x onerror=alert(1)>"

REPORTS_JS = """() => [...Bokeh.documents[0].all_models]
    .filter(m => typeof m.text === 'string' && m.text.includes('check-report'))
    .map(m => m.text)"""

MODEL_TEXT_JS = """() => [...Bokeh.documents[0].all_models].map(m => [
    typeof m.text === 'string' ? m.text : '', (m.factors || []).join(' '),
    (m.options || []).map(String).join(' '), typeof m.label === 'string' ? m.label : '',
    m.title && m.title.text ? m.title.text : '']).flat().join(' ')"""


@pytest.fixture
def three_files(tmp_path) -> list[Path]:
    common = {"model": "MINE", "version": "v3", "site": CAL_SITE, "cal_val": "Cal",
              "start": "2000-01-01", "n_days": 731, "lat": 55.4859, "lon": 11.6446}
    no_hfss = write_site_run(tmp_path / "a", stage="Prior", seed=1,
                             variables=["nep", "hfls", "gpp", "reco"], **common)
    hostile = write_site_run(tmp_path / "b", model="EVIL", version="v1", site=CAL_SITE,
                             cal_val="Cal", stage="Prior", start="2000-01-01", n_days=731,
                             lat=55.4859, lon=11.6446, seed=2)
    with netCDF4.Dataset(hostile, "a") as nc:
        nc.setncattr("title", HOSTILE)
        nc.setncattr("Model", HOSTILE)  # shown in the attribute_mismatch message
    good = write_site_run(tmp_path / "c", stage="Posterior", seed=3, uncertainty="post_unc",
                          **common)
    return [no_hfss, hostile, good]


def test_uploading_three_files_reports_escapes_plots_and_stays_private(watched, app_url,  # noqa: F811
                                                                       three_files, browser,
                                                                       tmp_path, monkeypatch):
    uploads = tmp_path / "uploads"
    monkeypatch.setenv("CALLMIP_UPLOAD_DIR", str(uploads))  # read when the first file comes
    dialogs = []
    watched.on("dialog", lambda d: (dialogs.append(d.message), d.dismiss()))
    watched.goto(f"{app_url}/?view=check")
    wait_idle(watched)
    file_input = watched.locator("input[type=file]")
    assert file_input.count() == 1
    file_input.set_input_files([str(p) for p in three_files])
    watched.wait_for_function(f"() => ({REPORTS_JS})().length === 3", timeout=120_000)
    watched.wait_for_function(
        """() => [...Bokeh.documents[0].all_models].some(
            m => m.title && m.title.text && m.title.text.startsWith('DK-Sor NEE'))""",
        timeout=120_000)
    # The comparison is drawn again as each file arrives: wait for the posterior's row.
    watched.wait_for_function(
        """() => [...Bokeh.documents[0].all_models].some(m => typeof m.text === 'string'
                 && m.text.includes('check-compare') && m.text.includes('Posterior'))""",
        timeout=120_000)
    wait_idle(watched)
    reports = watched.evaluate(REPORTS_JS)
    missing = [r for r in reports if "missing" in r and "hfss" in r]
    assert missing, "the report of the file without hfss names hfss"
    # The hostile attribute is on the screen as text, and no image element was made of it
    # (locators pierce the shadow roots Panel renders panes in).
    assert watched.get_by_text("onerror=alert(1)", exact=False).count() >= 1
    assert watched.locator("img[src='x']").count() == 0
    # The page shows them: the status and hfss are visible text.
    assert watched.locator("text=FAIL").count() >= 2
    assert watched.locator("text=PASS").count() >= 1
    # The good file's plots appear: its comparison row and time series.
    text = watched.evaluate(MODEL_TEXT_JS)
    assert "MINE.v3 (yours)" in text
    assert any(t.startswith(f"{CAL_SITE} NEE") for t in titles(watched))
    ARTIFACTS.mkdir(exist_ok=True)
    watched.screenshot(path=str(ARTIFACTS / "check-page.png"), full_page=True)
    watched.evaluate("""() => {
        const view = [...Bokeh.documents[0].all_models]
            .filter(m => m.title && m.title.text && m.title.text.startsWith('DK-Sor NEE'))
            .map(m => Bokeh.index.find_one(m)).filter(v => v && v.el.isConnected).pop();
        view.el.scrollIntoView();
    }""")
    watched.wait_for_timeout(500)
    watched.screenshot(path=str(ARTIFACTS / "check-page-plots.png"))
    assert not dialogs, f"a script from a file ran: {dialogs}"
    # The files are in one session folder under the upload folder, each in its own slot.
    (folder,) = uploads.iterdir()
    assert sorted(p.name for p in folder.rglob("*.nc")) == sorted(p.name for p in three_files)
    # The reports download: JSON as `callmip check --json`, and Markdown.
    with watched.expect_download(timeout=60_000) as download:
        watched.get_by_text("Report as JSON").click()
    rows = json.loads(Path(download.value.path()).read_text())
    assert sorted(r["path"] for r in rows) == sorted(p.name for p in three_files)
    assert [r["ok"] for r in rows].count(True) == 1
    with watched.expect_download(timeout=60_000) as download:
        watched.get_by_text("Report as Markdown").click()
    markdown = Path(download.value.path()).read_text()
    assert markdown.startswith("# CalLMIP check report") and "hfss" in markdown
    assert "<img" not in markdown
    # Another session (a new browser context: no shared cookies) does not see the upload.
    context = browser.new_context(viewport={"width": 1400, "height": 900})
    other = context.new_page()
    other.goto(f"{app_url}/?view=overview")
    wait_idle(other)
    other_text = other.evaluate(MODEL_TEXT_JS)
    assert "ALPHA.v1" in other_text and "MINE" not in other_text
    context.close()
    assert not dialogs
