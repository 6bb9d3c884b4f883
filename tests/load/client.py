"""An asyncio Bokeh websocket client: one real server-side session of the app, driven like a page.

The client speaks the Bokeh server protocol as BokehJS does. Opening a session connects the
websocket (the server runs the app's ``create_app`` for it), pulls the document and sends the
``document_ready`` event a browser sends once it has drawn the page (Panel holds some updates
until then). Changing a selection sends the widget's new ``value`` as a ``PATCH-DOC``, exactly
the message a browser sends, and times the server's answer:

``latency``: until the last patch that updates the page (plot data, text), the reply being
complete once nothing more arrived for a moment.

The document is kept as JSON (model ids, names and attributes): no Bokeh ``Document`` is built
on the client, so thirty clients cost little CPU next to the server they load.
"""

from __future__ import annotations

import asyncio
import re
import time
from collections.abc import Iterator
from dataclasses import dataclass, field
from typing import Any
from urllib.parse import urlencode

from bokeh.client.websocket import WebSocketClientConnectionWrapper
from bokeh.protocol import Protocol
from bokeh.protocol.message import Message
from bokeh.protocol.messages.patch_doc import patch_doc
from bokeh.protocol.receiver import Receiver
from bokeh.util.token import generate_jwt_token, generate_session_id
from tornado.httpclient import AsyncHTTPClient, HTTPClientError, HTTPRequest
from tornado.websocket import WebSocketClientConnection, websocket_connect

#: Patch events that carry new data for a ColumnDataSource.
DATA_EVENTS = frozenset({"ColumnDataChanged", "ColumnsStreamed", "ColumnsPatched"})
MAX_MESSAGE_BYTES = 512 * 2**20
TOKEN = re.compile(r'"token"\s*:\s*"([^"]+)"')
SITE_ID = re.compile(r"^[A-Z]{2}-[A-Za-z0-9]{3}$")
#: The event BokehJS sends once the page is drawn (Panel then flushes held updates).
DOCUMENT_READY = {"kind": "MessageSent", "msg_type": "bokeh_event",
                  "msg_data": {"type": "event", "name": "document_ready",
                               "values": {"type": "map", "entries": []}}}
POLL_S = 0.05
#: Bokeh plot models a browser lays out (and reports the width of); the width reported.
PLOT_MODELS = {"Figure", "Plot", "GMap"}
LAID_OUT_WIDTH = 600


class LoadError(Exception):
    """A failure of one session; ``kind`` is the category counted in the report."""

    def __init__(self, kind: str, detail: str) -> None:
        super().__init__(f"{kind}: {detail}")
        self.kind = kind
        self.detail = detail


def iter_objects(value: Any) -> Iterator[dict]:
    """Yield every serialized Bokeh model (``{"type": "object", "id": ...}``) inside ``value``.

    Parameters
    ----------
    value : Any
        Decoded JSON of a document or of patch events.

    Yields
    ------
    dict
        The model's representation (``name``, ``id``, ``attributes``).
    """
    stack = [value]
    while stack:
        item = stack.pop()
        if isinstance(item, dict):
            if item.get("type") == "object" and "id" in item:
                yield item
            stack.extend(item.values())
        elif isinstance(item, list):
            stack.extend(item)


@dataclass
class DocIndex:
    """Names and attributes of a document's models, by id, from the JSON the server sent."""

    names: dict[str, str] = field(default_factory=dict)
    attributes: dict[str, dict] = field(default_factory=dict)

    def add(self, value: Any) -> None:
        """Index every model inside ``value`` (a document or patch events)."""
        for obj in iter_objects(value):
            self.names[obj["id"]] = obj.get("name", "")
            self.attributes.setdefault(obj["id"], obj.get("attributes") or {})


def option_values(options: Any) -> list:
    """The values of a Select's options (``["a", ...]`` or ``[["a", "label"], ...]``)."""
    if not isinstance(options, list):
        return []
    return [o[0] if isinstance(o, list) and o else o for o in options]


@dataclass
class Widgets:
    """The sidebar widgets a session changes, and the busy indicator, by model id."""

    site: str | None = None
    variable: str | None = None
    models: str | None = None
    busy: str | None = None
    options: dict[str, list] = field(default_factory=dict)
    values: dict[str, Any] = field(default_factory=dict)

    def id_of(self, kind: str) -> str | None:
        """The model id of the ``site``, ``variable`` or ``models`` widget (None if absent)."""
        return {"site": self.site, "variable": self.variable, "models": self.models}[kind]


def _widget_kind(name: str, values: list) -> str | None:
    short = name.rsplit(".", 1)[-1]
    if short.endswith("MultiChoice"):
        return "models"
    if not short.endswith("Select"):
        return None
    if {"NEE", "Qle"} <= set(values):
        return "variable"
    if "DK-Sor" in values or sum(bool(SITE_ID.match(str(v))) for v in values) >= 2:
        return "site"
    return None


def find_widgets(models: list[dict]) -> Widgets:
    """Find the Site and Variable selects, the Models multi-choice and the busy indicator.

    Parameters
    ----------
    models : list of dict
        ``{"id", "name", "attributes"}`` of each model of the document.

    Returns
    -------
    Widgets
        The first widget of each kind (ids are None for kinds not found).
    """
    found = Widgets()
    for model in models:
        attrs = model.get("attributes") or {}
        if attrs.get("name") == "busy_indicator" and found.busy is None:
            found.busy = model["id"]
        values = option_values(attrs.get("options"))
        kind = _widget_kind(model.get("name", ""), values)
        if kind is None or getattr(found, kind) is not None:
            continue
        setattr(found, kind, model["id"])
        found.options[model["id"]] = values
        found.values[model["id"]] = attrs.get("value", [] if kind == "models" else "")
    return found


def is_data_event(event: dict, model_name: str) -> bool:
    """Whether a patch event brings new plot data (a ColumnDataSource change or new one)."""
    if event.get("kind") in DATA_EVENTS:
        return True
    if event.get("attr") == "data" and model_name.endswith("ColumnDataSource"):
        return True
    return any(o.get("name", "").endswith("ColumnDataSource")
               for o in iter_objects(event.get("new")))


@dataclass
class ChangeTracker:
    """What the server sent after one selection change (times from ``time.perf_counter``).

    Updates are patches that change the page; the busy indicator and the URL (Location) are
    not updates. Panel's busy indicator shows whether the *process* is busy (any session), so
    it cannot tell when this session's change is done: the change is done once updates have
    arrived and nothing more came for ``quiet`` seconds.
    """

    kind: str
    value: Any
    start: float
    first_update: float | None = None
    last_update: float | None = None
    last_reply: float | None = None
    data_events: int = 0
    server_error: str | None = None

    def saw_reply(self, now: float) -> None:
        """Record a patch for this session other than the busy indicator (URL included)."""
        self.last_reply = now

    def saw_update(self, now: float, data: bool) -> None:
        """Record a patch that changes the page."""
        self.first_update = self.first_update or now
        self.last_update = now
        self.data_events += data

    def verdict(self, now: float, *, quiet: float) -> bool:
        """Whether the change is done (updates arrived, then ``quiet`` s without a reply)."""
        return (self.last_update is not None and self.last_reply is not None
                and now - self.last_reply >= quiet)


@dataclass
class ChangeResult:
    """The outcome of one selection change (times in seconds since it was sent)."""

    kind: str
    value: Any
    latency: float
    first_update: float
    data_events: int


class SessionClient:
    """One session of the app over a Bokeh websocket.

    Parameters
    ----------
    base_url : str
        ``http://127.0.0.1:PORT`` (the app is served at ``/``).
    arguments : dict of str
        URL query of the page, e.g. ``{"view": "sites", "site": "DK-Sor"}``.
    via_page : bool
        Load the HTML page first, as a browser does (the server builds the session for that
        request), then connect the websocket with the page's token; otherwise the websocket
        connection itself builds the session, as ``bokeh.client.pull_session`` does.
    http_client : tornado.httpclient.AsyncHTTPClient, optional
        Client for the page (``via_page``).
    complete_class : str, optional
        CSS class the app gives a model once the page is complete (it may fill the page in
        steps after the document is pulled); opening then waits for it.
    """

    def __init__(self, base_url: str, arguments: dict[str, str], *, via_page: bool = False,
                 http_client: AsyncHTTPClient | None = None,
                 complete_class: str | None = None) -> None:
        self.base_url = base_url.rstrip("/")
        self.arguments = dict(arguments)
        self.via_page = via_page
        self.http_client = http_client
        self.complete_class = complete_class
        self._complete: asyncio.Event | None = None
        self.index = DocIndex()
        self.widgets = Widgets()
        self.timings: dict[str, float] = {}
        self.disconnected = False
        self.disconnect_detail = ""
        self.server_errors: list[str] = []
        self.received_bytes = 0
        self.busy_patches = 0
        self.last_message = 0.0
        self._protocol = Protocol()
        self._receiver = Receiver(self._protocol)
        self._ws: WebSocketClientConnection | None = None
        self._conn: WebSocketClientConnectionWrapper | None = None
        self._reader: asyncio.Task | None = None
        self._replies: dict[str, asyncio.Future] = {}
        self._ack: asyncio.Future | None = None
        self._tracker: ChangeTracker | None = None
        self._closing = False
        self._reported: set[str] = set()

    # -- opening -----------------------------------------------------------------------------

    async def open(self, timeout: float) -> float:
        """Open the session, pull its document, wait until the page is complete; return the s.

        Raises
        ------
        LoadError
            ``open-timeout``, ``open-failed``, ``disconnect`` or ``server-error``.
        """
        start = time.perf_counter()
        try:
            await asyncio.wait_for(self._open(start), timeout)
        except TimeoutError as exc:
            step = ("the page was not complete" if "pulled" in self.timings else
                    "no document" if "ack" in self.timings else "no session")
            raise LoadError("open-timeout", f"{step} after {timeout:.0f} s (steps done: "
                            f"{sorted(self.timings)})") from exc
        return self.timings["open"]

    async def _open(self, start: float) -> None:
        url, token = await self._endpoint(start)
        try:
            self._ws = await websocket_connect(HTTPRequest(url), subprotocols=["bokeh", token],
                                               max_message_size=MAX_MESSAGE_BYTES)
        except (HTTPClientError, OSError) as exc:
            raise LoadError("open-failed", f"websocket {url}: {exc!r}") from exc
        self._conn = WebSocketClientConnectionWrapper(self._ws)
        self._ack = asyncio.get_running_loop().create_future()
        self._complete = asyncio.Event()
        self._reader = asyncio.create_task(self._read_loop())
        await self._ack
        self.timings["ack"] = time.perf_counter() - start
        reply = await self._request(self._protocol.create("PULL-DOC-REQ"))
        doc = reply.content.get("doc", {})
        self.index.add(doc.get("roots", []))
        self.widgets = find_widgets([{"id": i, "name": n, "attributes": self.index.attributes[i]}
                                     for i, n in self.index.names.items()])
        self.timings["pulled"] = time.perf_counter() - start
        self._report_layout(doc.get("roots", []))
        if self.complete_class is None or any(self._has_complete_class(a.get("css_classes"))
                                              for a in self.index.attributes.values()):
            self._complete.set()
        await self._send_events([DOCUMENT_READY])
        await self._complete.wait()
        if self.disconnected:
            raise LoadError("disconnect", self.disconnect_detail)
        self.timings["open"] = time.perf_counter() - start

    def _has_complete_class(self, classes: Any) -> bool:
        return isinstance(classes, list) and self.complete_class in classes

    def _completes(self, event: dict) -> bool:
        """Whether a patch event gives a model the class marking a complete page."""
        if self.complete_class is None:
            return False
        if event.get("attr") == "css_classes" and self._has_complete_class(event.get("new")):
            return True
        return any(self._has_complete_class((o.get("attributes") or {}).get("css_classes"))
                   for o in iter_objects(event.get("new")))

    async def _endpoint(self, start: float) -> tuple[str, str]:
        """The websocket URL and the token (a new session id, or the page's session)."""
        query = urlencode(self.arguments)
        ws_base = "ws" + self.base_url.removeprefix("http")
        if not self.via_page:
            return f"{ws_base}/ws?{query}", generate_jwt_token(generate_session_id())
        client = self.http_client or AsyncHTTPClient()
        try:
            page = await client.fetch(f"{self.base_url}/?{query}", request_timeout=3600)
        except (HTTPClientError, OSError) as exc:
            raise LoadError("open-failed", f"page: {exc!r}") from exc
        self.timings["page"] = time.perf_counter() - start
        match = TOKEN.search(page.body.decode("utf-8", "replace"))
        if match is None:
            raise LoadError("open-failed", "no session token in the page")
        return f"{ws_base}/ws", match.group(1)

    # -- messages ----------------------------------------------------------------------------

    async def _read_loop(self) -> None:
        assert self._ws is not None
        try:
            while True:
                fragment = await self._ws.read_message()
                if fragment is None:
                    break
                self.received_bytes += len(fragment)
                message = await self._receiver.consume(fragment)
                if message is not None:
                    self._dispatch(message)
        except Exception as exc:  # a protocol error: report it as the session's end
            self.server_errors.append(f"client could not read a message: {exc!r}")
        finally:
            self._on_closed()

    def _on_closed(self) -> None:
        if self._complete is not None:
            self._complete.set()  # opening stops waiting (and sees the disconnect)
        if not self._closing:
            self.disconnected = True
            ws = self._ws
            self.disconnect_detail = (f"server closed the websocket (code {ws.close_code}, "
                                      f"{ws.close_reason!r})" if ws else "no websocket")
        error = LoadError("disconnect", self.disconnect_detail or "closed")
        for future in [self._ack, *self._replies.values()]:
            if future is not None and not future.done():
                future.set_exception(error)
        self._replies.clear()

    def _dispatch(self, message: Message) -> None:
        now = time.perf_counter()
        self.last_message = now
        if message.msgtype == "ACK" and self._ack is not None and not self._ack.done():
            self._ack.set_result(None)
        future = self._replies.pop(message.header.get("reqid", ""), None)
        if future is not None and not future.done():
            future.set_result(message)
        if message.msgtype == "ERROR":
            text = str(message.content.get("text", message.content))[:300]
            self.server_errors.append(text)
            if self._tracker is not None:
                self._tracker.server_error = text
        elif message.msgtype == "PATCH-DOC":
            self._on_patch(message.content.get("events", []), now)

    def _report_layout(self, value: Any) -> None:
        """Report the new plots inside ``value`` as laid out, as a browser does.

        A browser sends each plot's ``inner_width`` once it has laid the plot out, and the
        app waits for that report before it sends a page's second part
        (``dashboard.views.loading.when_laid_out``); without it every open here would wait
        for the app's time limit instead.
        """
        plots = [obj["id"] for obj in iter_objects(value)
                 if obj.get("name") in PLOT_MODELS and obj["id"] not in self._reported]
        if not plots or self._conn is None or self.disconnected:
            return
        self._reported.update(plots)
        events = [{"kind": "ModelChanged", "model": {"id": plot}, "attr": "inner_width",
                   "new": LAID_OUT_WIDTH} for plot in plots]
        task = asyncio.get_running_loop().create_task(self._send_events(events))
        task.add_done_callback(lambda t: t.cancelled() or t.exception())  # (a gone session)

    def _on_patch(self, events: list[dict], now: float) -> None:
        tracker = self._tracker
        for event in events:
            self.index.add(event.get("new"))
            self._report_layout(event.get("new"))
            if self._complete is not None and self._completes(event):
                self._complete.set()
            model_id = (event.get("model") or {}).get("id")
            if model_id is not None and model_id == self.widgets.busy:
                self.busy_patches += 1
                continue
            if tracker is None:
                continue
            tracker.saw_reply(now)
            name = self.index.names.get(model_id, "")
            if not name.endswith("Location"):
                tracker.saw_update(now, is_data_event(event, name))

    async def _send(self, message: Message) -> None:
        if self._conn is None or self.disconnected:
            raise LoadError("disconnect", self.disconnect_detail or "not connected")
        await message.send(self._conn)

    async def _request(self, message: Message) -> Message:
        future = asyncio.get_running_loop().create_future()
        self._replies[message.header["msgid"]] = future
        await self._send(message)
        reply = await future
        if reply.msgtype == "ERROR":
            raise LoadError("server-error", str(reply.content.get("text", ""))[:300])
        return reply

    async def _send_events(self, events: list[dict]) -> None:
        await self._send(patch_doc(patch_doc.create_header(), {}, {"events": events}))

    # -- using the session -------------------------------------------------------------------

    async def wait_quiet(self, quiet: float, limit: float) -> float:
        """Wait until nothing arrived for ``quiet`` s (at most ``limit`` s); return the wait."""
        start = time.perf_counter()
        while not self.disconnected:
            now = time.perf_counter()
            if now - max(self.last_message, start) >= quiet or now - start >= limit:
                break
            await asyncio.sleep(POLL_S)
        return time.perf_counter() - start

    async def change(self, kind: str, value: Any, *, timeout: float,
                     quiet: float = 0.75) -> ChangeResult:
        """Set the ``kind`` widget (site, variable, models) to ``value``; time the reply.

        Raises
        ------
        LoadError
            ``change-timeout`` (no answer within ``timeout`` s), ``disconnect``,
            ``server-error`` or ``widget-missing``.
        """
        widget = self.widgets.id_of(kind)
        if widget is None:
            raise LoadError("widget-missing", f"no {kind} widget in the document")
        tracker = ChangeTracker(kind=kind, value=value, start=time.perf_counter())
        self._tracker = tracker
        try:
            await self._send_events([{"kind": "ModelChanged", "model": {"id": widget},
                                      "attr": "value", "new": value}])
            await self._await_done(tracker, timeout, quiet)
        finally:
            self._tracker = None
        self.widgets.values[widget] = value
        assert tracker.first_update is not None and tracker.last_update is not None
        return ChangeResult(kind=kind, value=value, latency=tracker.last_update - tracker.start,
                            first_update=tracker.first_update - tracker.start,
                            data_events=tracker.data_events)

    async def _await_done(self, tracker: ChangeTracker, timeout: float, quiet: float) -> None:
        while True:
            now = time.perf_counter()
            if tracker.server_error is not None:
                raise LoadError("server-error", tracker.server_error)
            if self.disconnected:
                raise LoadError("disconnect", self.disconnect_detail)
            if tracker.verdict(now, quiet=quiet):
                return
            if now - tracker.start >= timeout:
                state = ("only the URL changed" if tracker.last_reply and not tracker.last_update
                         else "nothing arrived" if not tracker.last_reply else "still updating")
                raise LoadError("change-timeout", f"{tracker.kind}={tracker.value!r}: no "
                                f"complete reply after {timeout:.0f} s ({state})")
            await asyncio.sleep(POLL_S)

    async def close(self) -> None:
        """Close the websocket (the server then discards the session after its lifetime)."""
        self._closing = not self.disconnected
        if self._ws is not None:
            self._ws.close(1000, "load test done")
        if self._reader is not None:
            try:
                await asyncio.wait_for(asyncio.shield(self._reader), 10)
            except (TimeoutError, asyncio.CancelledError):
                self._reader.cancel()
