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
