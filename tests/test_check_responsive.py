"""The check page checks uploads and reads their series off the event loop: other sessions are
served meanwhile.

A served app (threaded, in this process) gets an upload in one browser session whose check is
held (``check_stored`` monkeypatched to wait for the test); while it is held, another session's
page request and ``/liveness`` must be answered. Had the check run on the event loop, neither
could be answered before the check ended: the test asserts the order of events, not a time.
"""

from __future__ import annotations

import threading
import urllib.request

from tests.appdata import CAL_SITE
from tests.conftest import UI_TESTS
from tests.synthetic import write_site_run
from tests.test_check_ui import REPORTS_JS
from tests.test_ui import (  # noqa: F401  (fixtures)
    app_url,
    ui_archive,
    wait_idle,
)

pytestmark = UI_TESTS

BUSY_JS = """() => [...Bokeh.documents[0].all_models].some(m => (m.css_classes || [])
    .includes('check-busy') && m.visible && typeof m.text === 'string'
    && m.text.includes('Checking 1 upload(s)'))"""


def test_a_slow_check_leaves_the_other_sessions_served(watched, app_url, tmp_path,  # noqa: F811
                                                         monkeypatch):
    from dashboard.views import check

    monkeypatch.setenv("CALLMIP_UPLOAD_DIR", str(tmp_path / "uploads"))
    run = write_site_run(tmp_path / "runs", model="MINE", version="v3", site=CAL_SITE,
                         cal_val="Cal", stage="Prior", start="2000-01-01", n_days=731,
                         lat=55.4859, lon=11.6446, seed=1)
    started, release = threading.Event(), threading.Event()
    order: list[str] = []
    real_check = check.check_stored

    def held_check(stored, service=None):
        order.append("check started")
        started.set()
        release.wait(timeout=90)  # the test lets it go once the other session is served
        order.append("check ended")
        return real_check(stored, service)

    monkeypatch.setattr(check, "check_stored", held_check)
    watched.goto(f"{app_url}/?view=check")
    wait_idle(watched)
    watched.locator("input[type=file]").set_input_files([str(run)])
    assert started.wait(timeout=120), "the upload never reached the check"
    try:
        # This session shows that it is checking (its event loop sent the update)...
        watched.wait_for_function(BUSY_JS, timeout=60_000)
        # ...and another session's page and the liveness probe are answered meanwhile.
        with urllib.request.urlopen(f"{app_url}/?view=overview", timeout=120) as response:
            assert response.status == 200 and b"bokeh" in response.read().lower()
        with urllib.request.urlopen(f"{app_url}/liveness", timeout=60) as response:
            assert response.status == 200
        order.append("other session served")
    finally:
        release.set()
    watched.wait_for_function(f"() => ({REPORTS_JS})().length === 1", timeout=120_000)
    watched.wait_for_function(f"() => !({BUSY_JS})()", timeout=60_000)
    assert order == ["check started", "other session served", "check ended"]
    reports = watched.evaluate(REPORTS_JS)
    assert "MINE.v3" in reports[0] or run.name in reports[0]


#: Titles of the plots on the page.
TITLES_JS = """() => [...Bokeh.documents[0].all_models].filter(m => m.title && m.title.text)
    .map(m => m.title.text)"""


def test_another_variable_is_read_off_the_event_loop(watched, app_url, tmp_path,  # noqa: F811
                                                     monkeypatch):
    """After an upload, choosing another variable reads the series in a check thread: while
    the read is held, /liveness is answered; then the new variable's plots are drawn."""
    from dashboard.checking import SessionService

    monkeypatch.setenv("CALLMIP_UPLOAD_DIR", str(tmp_path / "uploads"))
    run = write_site_run(tmp_path / "runs", model="MINE", version="v3", site=CAL_SITE,
                         cal_val="Cal", stage="Prior", start="2000-01-01", n_days=731,
                         lat=55.4859, lon=11.6446, seed=1)
    watched.goto(f"{app_url}/?view=check")
    wait_idle(watched)
    watched.locator("input[type=file]").set_input_files([str(run)])
    watched.wait_for_function(
        f"() => ({TITLES_JS})().some(t => t.startsWith('{CAL_SITE} NEE'))", timeout=120_000)
    started, release = threading.Event(), threading.Event()
    order: list[str] = []
    real_series = SessionService.site_series

    def held_series(self, site, variable, scenario, models=()):
        if variable == "Qle":
            order.append("read started")
            started.set()
            release.wait(timeout=90)
            order.append("read ended")
        return real_series(self, site, variable, scenario, models)

    monkeypatch.setattr(SessionService, "site_series", held_series)
    watched.evaluate("""() => [...Bokeh.documents[0].all_models].find(m =>
        Array.isArray(m.options) && m.options.includes('Qle') && m.value === 'NEE').value
        = 'Qle'""")
    assert started.wait(timeout=60), "the variable change never reached the read"
    try:
        with urllib.request.urlopen(f"{app_url}/liveness", timeout=60) as response:
            assert response.status == 200
        order.append("liveness answered")
    finally:
        release.set()
    watched.wait_for_function(
        f"() => ({TITLES_JS})().some(t => t.startsWith('{CAL_SITE} Qle'))", timeout=120_000)
    assert order[:3] == ["read started", "liveness answered", "read ended"]
