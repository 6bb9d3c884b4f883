"""How a view fills a served page: each part goes to the browser before the next is built."""

from __future__ import annotations

import panel as pn
import pytest
from bokeh.document import Document
from panel.io import document as panel_document
from panel.io.state import set_curdoc

from dashboard.views import loading


class _Request:
    arguments: dict = {}
    cookies: dict = {}
    headers: dict = {}
    path = "/"


class _Context:  # what Bokeh gives a served session's document (enough for these helpers)
    id = "session"
    request = _Request()


@pytest.fixture
def served_doc():
    """A document that looks like a served session's to the helpers."""
    document = Document()
    context = _Context()
    document._session_context = lambda: context
    return document


def _run_due(document: Document) -> int:
    """Run the document's pending next-tick and timeout callbacks once; how many ran."""
    due = list(document.session_callbacks)
    for callback in due:
        callback.callback()
    return len(due)


def test_writes_pending_reads_panels_queue_of_unwritten_messages(served_doc):
    assert not loading.writes_pending(served_doc)
    panel_document._WRITE_MSGS[served_doc] = {}  # an update's message waits for the socket
    try:
        assert loading.writes_pending(served_doc)
    finally:
        panel_document._WRITE_MSGS.pop(served_doc, None)
    panel_document._WRITE_BLOCK[served_doc] = True
    try:
        assert loading.writes_pending(served_doc)
    finally:
        panel_document._WRITE_BLOCK.pop(served_doc, None)
    assert not loading.writes_pending(served_doc)


def test_when_sent_waits_until_the_sessions_messages_are_written(served_doc, monkeypatch):
    polls = []
    monkeypatch.setattr(loading, "writes_pending",
                        lambda doc: polls.append(doc) or len(polls) <= 3)
    ran = []
    with set_curdoc(served_doc):
        loading.when_sent(lambda: ran.append(pn.state.curdoc))
    for _ in range(3):  # the next tick, then two polls: messages still being written
        assert _run_due(served_doc) == 1 and ran == []
    assert _run_due(served_doc) == 1  # the fourth look finds them written
    assert ran == [served_doc]  # run once, under the session's document
    assert polls == [served_doc] * 4 and _run_due(served_doc) == 0


def test_when_sent_gives_up_waiting_after_its_limit(served_doc, monkeypatch):
    monkeypatch.setattr(loading, "writes_pending", lambda doc: True)  # a socket that hangs
    ran = []
    with set_curdoc(served_doc):
        loading.when_sent(lambda: ran.append(1))
    looks = 0
    while not ran and looks < 10_000:
        looks += _run_due(served_doc)
    assert ran == [1]
    assert looks == loading.SENT_MAX_WAIT_MS // loading.SENT_POLL_MS + 1


def test_a_page_builds_its_next_part_only_after_the_last_one_went_out(served_doc,
                                                                     monkeypatch):
    writing = [False]
    monkeypatch.setattr(loading, "writes_pending", lambda doc: writing[0])
    built = []

    def part(name: str):
        def build() -> pn.pane.Markdown:
            built.append(name)
            writing[0] = True  # appending it makes a message that is not yet written
            return pn.pane.Markdown(name)
        return build

    page = pn.Column()
    with set_curdoc(served_doc):
        loading.fill_progressively(page, [part("map"), part("profile"), part("series")])
    _run_due(served_doc)
    assert built == ["map"]
    for _ in range(5):  # the map's message is still being written: nothing else is built
        _run_due(served_doc)
    assert built == ["map"] and loading.COMPLETE_CLASS not in page.css_classes
    writing[0] = False  # written
    _run_due(served_doc)
    assert built == ["map", "profile"]
    writing[0] = False
    _run_due(served_doc)
    assert built == ["map", "profile", "series"]
    assert loading.COMPLETE_CLASS in page.css_classes
    assert [p.object for p in page] == ["map", "profile", "series"]


def test_outside_a_server_everything_happens_at_once():
    ran = []
    loading.when_sent(lambda: ran.append(1))
    page = pn.Column()
    loading.fill_progressively(page, [lambda: pn.pane.Markdown("a"),
                                      lambda: pn.pane.Markdown("b")])
    assert ran == [1] and len(page) == 2 and loading.COMPLETE_CLASS in page.css_classes


def _next_ticks(document: Document) -> list:
    from bokeh.server.callbacks import NextTickCallback

    return [c for c in document.session_callbacks if isinstance(c, NextTickCallback)]


def test_when_laid_out_waits_until_the_browser_reports_every_plot(served_doc):
    from bokeh.plotting import figure

    plots = [figure(), figure()]
    ran = []
    with set_curdoc(served_doc):
        loading.when_laid_out(plots, lambda: ran.append(pn.state.curdoc))
    assert ran == [] and _next_ticks(served_doc) == []  # only the time limit is pending
    plots[0].trigger("inner_width", 0, 700)  # the browser laid out the first plot
    assert ran == [] and _next_ticks(served_doc) == []
    plots[1].trigger("inner_width", 0, 700)
    ticks = _next_ticks(served_doc)
    assert len(ticks) == 1 and ran == []  # run on the next tick, not inside the report
    ticks[0].callback()
    assert ran == [served_doc]
    # Done once: the time limit and later reports do nothing more.
    _run_due(served_doc)
    plots[0].trigger("inner_width", 700, 710)
    _run_due(served_doc)
    assert ran == [served_doc]


def test_when_laid_out_goes_on_without_a_report_after_its_limit(served_doc):
    from bokeh.plotting import figure
    from bokeh.server.callbacks import TimeoutCallback

    ran = []
    with set_curdoc(served_doc):
        loading.when_laid_out([figure()], lambda: ran.append(1))
    limits = [c for c in served_doc.session_callbacks if isinstance(c, TimeoutCallback)]
    assert [c.timeout for c in limits] == [loading.LAID_OUT_MAX_WAIT_MS]
    limits[0].callback()  # the browser never reported (a hidden plot, a gone page)
    assert ran == [1]


def test_a_page_waits_for_its_first_plot_to_be_laid_out(served_doc, monkeypatch):
    from bokeh.plotting import figure

    monkeypatch.setattr(loading, "writes_pending", lambda doc: False)
    plot = figure()
    built = []

    def part(name: str):
        def build() -> pn.pane.Markdown:
            built.append(name)
            return pn.pane.Markdown(name)
        return build

    page = pn.Column()
    with set_curdoc(served_doc):
        loading.fill_progressively(page, [part("map"), part("profile"), part("series")],
                                   first_drawn=lambda: [plot])
    _run_due(served_doc)
    assert built == ["map"]
    assert _next_ticks(served_doc) == []  # waiting for the browser, not for a tick
    plot.trigger("inner_width", 0, 720)
    for _ in range(3):
        _run_due(served_doc)
    assert built == ["map", "profile", "series"]
