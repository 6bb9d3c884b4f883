"""Static export (``callmip export``): a folder of pages that open from ``file://`` offline.

The exporter builds the same view objects the live app shows, each with a
:class:`~dashboard.state.Selection`, and saves them as standalone HTML with inline resources
(Bokeh, Panel and the data in the page; no network, no server). It also writes the metric
tables as CSV, PNG figures through HoloViews' matplotlib backend
(:mod:`dashboard.export_figures`), an index and ``manifest.json`` (sha256 of every archive
file, the Explorer's version and :data:`~dashboard.metrics.tables.METRICS_VERSION`).

Which pages a view contributes
------------------------------
Every view of :data:`dashboard.app.VIEW_CLASSES` whose module exists is exported. By default a
view gives one page, ``<view>.html``, built as ``cls(selection=…, service=…, look=…)``. A view
with special needs provides its own pages through a hook, looked up in this order:

1. a classmethod ``static_pages(cls, context: ExportContext) -> list[StaticPage]`` on the view
   class (the view module owns its static form: per-site pages, maps pre-aggregated to
   :attr:`ExportContext.grid_deg` with :meth:`ExportContext.to_fixed_grid`, …);
2. a built-in hook of this module (:data:`BUILTIN_HOOKS`): one page per variable for the
   Overview, one page per site for Sites, one page per global variable for Global (maps
   pre-aggregated to the fixed grid, :mod:`dashboard.export_global`), none for the upload
   page;
3. the default single page.

Determinism: Bokeh numbers its models from a process-wide counter and names documents and
elements with random UUIDs. Each page is rendered with the counter reset, and the UUIDs are
replaced by ones derived from the page's path, so the same archive gives the same bytes. Pages
and figures are cached (``$CALLMIP_CACHE_DIR/export``) under a key of the archive signature,
the page's selection and the versions of the Explorer, the metrics, Bokeh, Panel and
HoloViews: a second run over an unchanged archive copies them instead of rendering.
"""

from __future__ import annotations

import hashlib
import html
import io
import json
import logging
import re
import shutil
import sys
import time
from collections.abc import Callable, Iterable
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:  # heavy imports happen inside functions
    import panel as pn
    import xarray as xr

    from dashboard.service import DataService
    from dashboard.state import Selection
    from dashboard.views.style import Look

log = logging.getLogger(__name__)

#: Bump when the exporter's output changes for the same inputs (invalidates the page cache).
EXPORT_VERSION = 2  # 2: readable PNG figures (decimal-year axes, no cell values)

#: A page larger than this is reported in the log (the static site's size goal).
PAGE_LIMIT_BYTES = 10 * 2**20

#: Resolution of the fixed grid global maps are pre-aggregated to, in degrees.
GLOBAL_GRID_DEG = 2.0

#: Variables exported when none are given: the observed fluxes.
DEFAULT_VARIABLES: tuple[str, ...] = ("NEE", "Qle", "Qh")

#: A favicon that makes no request (Panel's template otherwise links its CDN's icons).
_NO_ICON = {"app_favicon": "data:,", "apple_icon": ""}

_SET = re.compile(r'\{"type":"set","entries":\[([^\[\]{}]*)\]\}')
_UUID = re.compile(r"[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12}")


# ------------------------------------------------------------------------------ the contract
@dataclass
class StaticPage:
    """One page of the static site.

    Attributes
    ----------
    path : str
        Where it goes, relative to the output folder (``"sites/DK-Sor.html"``).
    title : str
        Title shown in the browser tab and the index.
    build : callable
        Returns the Panel object to save (a view, or a layout around one). Called only when
        the page is not in the cache.
    key : dict
        What the page depends on besides the archive and versions (its selection, options):
        part of the cache key, so it must be JSON-serialisable.
    group : str
        Heading of the index the page is listed under.
    """

    path: str
    title: str
    build: Callable[[], Any]
    key: dict = field(default_factory=dict)
    group: str = ""


@dataclass
class ExportContext:
    """What a view's export hook gets: the service, the look, the options and the log.

    Attributes
    ----------
    service : DataService
        The archive's data service (the same queries as the live app).
    look : Look
        Theme and scaling (light, normal size).
    sites : list of str
        Sites to export (``--sites``, else every site of the archive, calibration first).
    variables : list of str
        Variables to export (``--variables``, else NEE, Qle, Qh).
    grid_deg : float
        Resolution of the fixed grid global maps are pre-aggregated to.
    messages : list of str
        The export log: a hook appends what it skipped or changed, and why.
    """

    service: DataService
    look: Look
    sites: list[str]
    variables: list[str]
    grid_deg: float = GLOBAL_GRID_DEG
    messages: list[str] = field(default_factory=list)

    def selection(self, **values: Any) -> Selection:
        """A new :class:`~dashboard.state.Selection` with ``values`` (view, site, …)."""
        from dashboard.state import Selection

        return Selection(**values)

    def view(self, name: str, **values: Any) -> Any:
        """The view ``name`` built as the app builds it, on a new selection of ``values``."""
        from dashboard.app import view_class

        cls = view_class(name)
        if cls is None:
            raise LookupError(f"the {name} view is not part of this release")
        return cls(selection=self.selection(view=name, **values), service=self.service,
                   look=self.look)

    def to_fixed_grid(self, data: xr.DataArray, *, lat: str = "lat",
                      lon: str = "lon") -> xr.DataArray:
        """Block-average ``data`` onto the export's fixed grid (:attr:`grid_deg`).

        Cells are binned by their centres into ``grid_deg`` boxes aligned on −90/−180 and
        averaged over their valid cells (NaN ignored; a box without any is NaN); a grid
        already as coarse is returned unchanged. Global maps in
        a static page then carry at most (180 / grid_deg) × (360 / grid_deg) values a frame.
        """
        import numpy as np

        step_lat = float(abs(np.diff(data[lat].values[:2])[0])) if data.sizes[lat] > 1 else 180
        step_lon = float(abs(np.diff(data[lon].values[:2])[0])) if data.sizes[lon] > 1 else 360
        if step_lat >= self.grid_deg and step_lon >= self.grid_deg:
            return data
        g = self.grid_deg
        lat_edges = np.arange(-90, 90 + g / 2, g)
        lon_edges = np.arange(-180, 180 + g / 2, g)
        data = data.assign_coords({lon: ((data[lon] + 180) % 360) - 180})

        def block_sum(values: xr.DataArray) -> xr.DataArray:
            by_lat = (values.groupby_bins(lat, lat_edges, labels=lat_edges[:-1] + g / 2)
                      .sum().rename({f"{lat}_bins": lat}))
            return (by_lat.groupby_bins(lon, lon_edges, labels=lon_edges[:-1] + g / 2)
                    .sum().rename({f"{lon}_bins": lon}))

        # The mean of every valid cell in a box (a mean of row means would weight the cells
        # of a row with gaps more).
        total = block_sum(data.fillna(0))
        count = block_sum(data.notnull().astype(float))
        out = total / count.where(count > 0)
        out.attrs = dict(data.attrs)
        return out


# ------------------------------------------------------------------------------- rendering
def _sorted_set(match: re.Match) -> str:
    """A serialised set of strings with its entries sorted (sets iterate in hash order)."""
    try:
        entries = json.loads(f"[{match.group(1)}]")
    except ValueError:
        return match.group(0)
    if not all(isinstance(e, str) for e in entries):
        return match.group(0)
    return json.dumps({"type": "set", "entries": sorted(entries)}, separators=(",", ":"))


def _deterministic(text: str, seed: str) -> str:
    """Make a saved page's bytes a function of its content only.

    Bokeh's random UUIDs are replaced by ones derived from ``seed`` and their order, and sets
    (e.g. a plot's subscribed events, serialised in Python's per-process hash order) are
    sorted.
    """
    text = _SET.sub(_sorted_set, text)
    mapping: dict[str, str] = {}

    def replace(match: re.Match) -> str:
        found = match.group(0)
        if found not in mapping:
            digest = hashlib.sha256(f"{seed}:{len(mapping)}".encode()).hexdigest()
            mapping[found] = (f"{digest[:8]}-{digest[8:12]}-{digest[12:16]}-{digest[16:20]}-"
                              f"{digest[20:32]}")
        return mapping[found]

    return _UUID.sub(replace, text)


def _inline_stylesheets(doc: Any) -> None:
    """Put Panel's stylesheets into the page instead of links to its CDN.

    Outside a server Panel points its theme and component stylesheets at cdn.holoviz.org,
    even with inline resources: offline, such a page is unstyled. Each is replaced by the same
    file from the installed Panel, shared by the models that use it.
    """
    from bokeh.models import ImportedStyleSheet, InlineStyleSheet
    from panel.io.resources import CDN_DIST, DIST_DIR

    inlined: dict[str, Any] = {}

    def local(sheet: Any) -> Any:
        url = sheet.url if isinstance(sheet, ImportedStyleSheet) else sheet
        if not isinstance(url, str) or not url.startswith(CDN_DIST):
            return sheet
        if url not in inlined:
            path = Path(DIST_DIR) / url[len(CDN_DIST):].split("?")[0]
            if not path.is_file():
                return sheet
            inlined[url] = InlineStyleSheet(css=path.read_text(encoding="utf-8"))
        return inlined[url]

    # In id order (ids are deterministic, the document's model set is not ordered).
    for model in sorted(doc.models, key=lambda m: (len(m.id), m.id)):
        if "stylesheets" not in model.properties():
            continue
        sheets = list(model.stylesheets)
        replaced = [local(sheet) for sheet in sheets]
        if any(a is not b for a, b in zip(sheets, replaced, strict=True)):
            model.stylesheets = replaced


def render_html(build: Callable[[], Any], *, title: str, seed: str,
                reset_ids: bool = True) -> bytes:
    """Build a Panel object and save it as one standalone HTML page; return its bytes.

    The page carries Bokeh's and Panel's scripts and stylesheets (inline resources), so it
    opens from ``file://`` with no network. It is built outside any server session (a view
    then adds all its plots at once). With ``reset_ids`` Bokeh's model counter starts afresh
    (only in a process that serves no live session: the export command), and the random
    UUIDs are derived from ``seed``: the same object gives the same bytes in any process.

    Parameters
    ----------
    build : callable
        Returns what to save (a view, layout or pane).
    title : str
        The page title.
    seed : str
        Makes the page's ids (usually its path in the static site).
    reset_ids : bool
        Restart Bokeh's id counter before building.
    """
    import bokeh.util.serialization as serialization
    import panel as pn
    from bokeh.document import Document
    from bokeh.resources import INLINE
    from panel.io.model import add_to_doc
    from panel.io.save import save
    from panel.io.state import set_curdoc
    from pyviz_comms import Comm

    if reset_ids:
        with serialization._simple_id_lock:
            serialization._simple_id = 999
    doc = Document()
    with set_curdoc(doc):  # not a server session: no progressive filling
        obj = pn.panel(build())
        root = obj.get_root(doc, Comm())
        try:
            add_to_doc(root, doc, True)
            _inline_stylesheets(doc)
            buffer = io.StringIO()
            save(doc, buffer, title=title, resources=INLINE, template_variables=dict(_NO_ICON))
        finally:
            obj._cleanup(root)  # a live server keeps nothing of a snapshot
    return _deterministic(buffer.getvalue(), seed).encode("utf-8")


# ---------------------------------------------------------------------------- page builders
def _nav(depth: int, title: str, caption: str, links: dict[str, str] | None = None) -> str:
    up = "../" * depth
    more = ""
    if links:
        more = ('<div style="margin-top:0.3em"><small>' + " &middot; ".join(
            f'<a href="{html.escape(href)}">{html.escape(label)}</a>'
            for label, href in links.items()) + "</small></div>")
    return (f'<div style="margin:0.3em 0 0.6em 0"><a href="{up}index.html">&larr; all pages'
            f'</a> &middot; <b>{html.escape(title)}</b> &middot; <small>{html.escape(caption)}'
            f"</small>{more}</div>")


def _page(context: ExportContext, view: str, path: str, title: str, group: str, *,
          note: str = "", links: dict[str, str] | None = None,
          prepare: Callable[[Any], None] | None = None, **values: Any) -> StaticPage:
    """A page showing ``view`` on a selection of ``values``, under a link back to the index.

    ``prepare`` adjusts the built view for its static form (e.g. hides a widget that needs a
    server); ``links`` are shown under the title (e.g. the other sites' pages).
    """
    def build() -> Any:
        import panel as pn

        caption = ("Static snapshot of the CalLMIP Explorer (zoom, pan and hover work; the "
                   "selection is fixed: " + ", ".join(f"{k}={v}" for k, v in
                                                      sorted(values.items())) + ")" + note)
        shown = context.view(view, **values)
        if prepare is not None:
            prepare(shown)
        return pn.Column(pn.pane.HTML(_nav(path.count("/"), title, caption, links),
                                      sizing_mode="stretch_width"),
                         shown, sizing_mode="stretch_width")

    return StaticPage(path=path, title=title, build=build, group=group,
                      key={"view": view, **values, "links": sorted(links or {})})


def default_pages(context: ExportContext, name: str) -> list[StaticPage]:
    """One page, ``<name>.html``, of the view on a default selection."""
    from dashboard.app import VIEW_LABELS

    variable = context.variables[0] if context.variables else "NEE"
    site = context.sites[0] if context.sites else ""
    return [_page(context, name, f"{name}.html", VIEW_LABELS.get(name, name), "Views",
                  variable=variable, site=site)]


def overview_pages(context: ExportContext, name: str) -> list[StaticPage]:
    """The Overview with its scorecard, one page per exported variable."""
    pages = []
    for i, variable in enumerate(context.variables):
        path = "overview.html" if i == 0 else f"overview-{variable}.html"
        pages.append(_page(context, name, path, f"Overview: {variable}", "Overview",
                           variable=variable))
    return pages


def _whole_record(view: Any) -> None:
    """Open a Sites view's time series on the whole record and hide the window buttons.

    The buttons need a server; in a static page the reader zooms in instead.
    """
    window = getattr(view, "window", None)
    if window is not None:
        window.value = "all"
        window.visible = False


def sites_pages(context: ExportContext, name: str) -> list[StaticPage]:
    """One Sites page per site: map, site card, NEE/Qle/Qh series and diagrams."""
    variable = context.variables[0] if context.variables else "NEE"
    links = {site: f"{site}.html" for site in context.sites}
    return [_page(context, name, f"sites/{site}.html", f"Site {site}", "Sites",
                  note=". Other sites: the links below (the map's click needs the live app).",
                  links=links, prepare=_whole_record, site=site, variable=variable)
            for site in context.sites]


def skip_pages(reason: str) -> Callable[[ExportContext, str], list[StaticPage]]:
    """A hook that exports nothing and says why in the log."""
    def hook(context: ExportContext, name: str) -> list[StaticPage]:
        context.messages.append(f"{name}: not exported ({reason})")
        return []

    return hook


def global_pages(context: ExportContext, name: str) -> list[StaticPage]:
    """The Global view: one page per global variable, maps on the fixed grid.

    See :mod:`dashboard.export_global` (imported here: it builds on this module).
    """
    from dashboard.export_global import global_pages as pages

    return pages(context, name)


#: Hooks for views whose module does not provide ``static_pages`` itself.
BUILTIN_HOOKS: dict[str, Callable[[ExportContext, str], list[StaticPage]]] = {
    "overview": overview_pages,
    "sites": sites_pages,
    "global": global_pages,
    "check": skip_pages("it checks uploaded files, which needs a server"),
}


def view_pages(context: ExportContext) -> list[StaticPage]:
    """The pages of every view this release has, in the app's order; the rest is logged."""
    from dashboard.app import VIEW_CLASSES, view_class

    pages: list[StaticPage] = []
    for name in VIEW_CLASSES:
        try:
            cls = view_class(name)
        except Exception as exc:  # a view module that fails to import: log, export the rest
            context.messages.append(f"{name}: not exported (its module failed to import: "
                                    f"{type(exc).__name__}: {exc})")
            continue
        if cls is None:
            context.messages.append(f"{name}: not exported (the view is not part of this "
                                    "release)")
            continue
        hook = getattr(cls, "static_pages", None)
        if callable(hook):
            pages.extend(hook(context))
        else:
            pages.extend(BUILTIN_HOOKS.get(name, default_pages)(context, name))
    return pages


# ------------------------------------------------------------------------------ the export
@dataclass
class ExportResult:
    """What an export wrote.

    Attributes
    ----------
    out : Path
        The output folder.
    files : dict
        Relative path → size in bytes of every file written (manifest excluded).
    rendered, reused : int
        Pages and figures rendered now, and copied from the cache.
    messages : list of str
        The export log.
    seconds : float
        Wall time of the export.
    """

    out: Path
    files: dict[str, int]
    rendered: int
    reused: int
    messages: list[str]
    seconds: float


def explorer_version() -> str:
    """The installed Explorer's version (``"unknown"`` when not installed)."""
    from importlib.metadata import PackageNotFoundError, version

    try:
        return version("callmip-explorer")
    except PackageNotFoundError:
        return "unknown"


def export_cache_dir() -> Path:
    """Folder of cached pages and figures (beside the metric cache)."""
    from dashboard.metrics.tables import cache_dir

    return cache_dir().parent / "export"


def _package_version(name: str) -> str | None:
    from importlib.metadata import PackageNotFoundError, version

    try:
        return version(name)
    except PackageNotFoundError:
        return None


def _versions() -> dict[str, Any]:
    from dashboard.metrics.tables import METRICS_VERSION

    return {"explorer": explorer_version(), "metrics": METRICS_VERSION,
            "export": EXPORT_VERSION,
            **{name: _package_version(name) for name in ("bokeh", "panel", "holoviews",
                                                         "matplotlib")}}


def _cache_key(signature: str, item: str, key: dict) -> str:
    text = json.dumps({"signature": signature, "item": item, "key": key,
                       "versions": _versions()}, sort_keys=True, default=str)
    return hashlib.sha256(text.encode()).hexdigest()[:32]


class _Cache:
    """Rendered pages and figures by key, on disk (a failed write only costs speed)."""

    def __init__(self, folder: Path | None) -> None:
        self.folder = folder

    def get(self, key: str) -> bytes | None:
        if self.folder is None:
            return None
        try:
            return (self.folder / key).read_bytes()
        except OSError:
            return None

    def put(self, key: str, data: bytes) -> None:
        if self.folder is None:
            return
        try:
            self.folder.mkdir(parents=True, exist_ok=True)
            tmp = self.folder / f".{key}.tmp"
            tmp.write_bytes(data)
            tmp.replace(self.folder / key)
        except OSError as exc:
            log.warning("export cache not written: %s", exc)


def sha256_file(path: str | Path, *, chunk: int = 2**20) -> str:
    """The sha256 of a file's bytes, hex."""
    h = hashlib.sha256()
    with open(path, "rb") as handle:
        while block := handle.read(chunk):
            h.update(block)
    return h.hexdigest()


def archive_files(service: DataService, cache: _Cache) -> list[dict[str, Any]]:
    """Every catalogued archive file: relative path, bytes and sha256 (hashes cached)."""
    catalog = service.archive.catalog
    root = Path(service.root)
    rows = []
    for row in catalog.sort_values("path").itertuples(index=False):
        path = Path(row.path)
        try:
            relative = path.relative_to(root).as_posix()
        except ValueError:
            relative = path.name
        key = hashlib.sha256(f"sha256|{path}|{row.size}|{row.mtime}".encode()).hexdigest()[:32]
        digest = cache.get(key)
        if digest is None:
            digest = sha256_file(path).encode()
            cache.put(key, digest)
        rows.append({"path": relative, "bytes": int(row.size), "sha256": digest.decode()})
    return rows


def _write(out: Path, relative: str, data: bytes, files: dict[str, int]) -> None:
    target = out / relative
    target.parent.mkdir(parents=True, exist_ok=True)
    if not target.exists() or target.read_bytes() != data:  # unchanged files keep their mtime
        target.write_bytes(data)
    files[relative] = len(data)


def _index_html(pages: list[StaticPage], files: dict[str, int], messages: list[str],
                versions: dict[str, Any], archive_name: str) -> bytes:
    """The static site's index: pages by group, tables, figures, the log (plain HTML)."""
    def link(path: str, label: str) -> str:
        size = files.get(path, 0) / 2**20
        return (f'<li><a href="{html.escape(path)}">{html.escape(label)}</a> '
                f'<small>({size:.1f} MB)</small></li>' if size >= 0.1 else
                f'<li><a href="{html.escape(path)}">{html.escape(label)}</a></li>')

    parts = ["<!DOCTYPE html>", '<html lang="en"><head><meta charset="utf-8">',
             '<link rel="icon" href="data:,">',
             "<title>CalLMIP Explorer: static export</title>",
             "<style>body{font-family:sans-serif;max-width:60em;margin:1em auto;padding:0 1em}"
             "li{margin:0.15em 0} .sites{columns:4}</style></head><body>",
             "<h1>CalLMIP Explorer: static export</h1>",
             f"<p>Archive <code>{html.escape(archive_name)}</code>; Explorer "
             f"{html.escape(str(versions['explorer']))}, metric definitions version "
             f"{versions['metrics']}. Opens offline: every page carries its own scripts and "
             'data. <a href="manifest.json">manifest.json</a> lists the archive\'s files with '
             'their sha256; <a href="export-log.txt">export-log.txt</a> says what was left '
             "out.</p>"]
    groups: dict[str, list[StaticPage]] = {}
    for page in pages:
        groups.setdefault(page.group or "Views", []).append(page)
    for group, members in groups.items():
        css = ' class="sites"' if group == "Sites" else ""
        parts.append(f"<h2>{html.escape(group)}</h2><ul{css}>")
        parts += [link(p.path, p.title) for p in members if p.path in files]
        parts.append("</ul>")
    tables = sorted(p for p in files if p.startswith("tables/"))
    figures = sorted(p for p in files if p.startswith("figures/"))
    parts.append("<h2>Metric tables (CSV)</h2><ul>")
    parts += [link(p, p.removeprefix("tables/")) for p in tables]
    parts.append("</ul><h2>Figures (PNG)</h2><ul class=\"sites\">")
    parts += [link(p, p.removeprefix("figures/")) for p in figures]
    parts.append("</ul><h2>Export log</h2><ul>")
    parts += [f"<li>{html.escape(m)}</li>" for m in messages] or ["<li>nothing skipped</li>"]
    parts.append("</ul></body></html>\n")
    return "\n".join(parts).encode("utf-8")


def export_site(data_root: str | Path, out: str | Path, *, sites: Iterable[str] | None = None,
                variables: Iterable[str] | None = None, progress: bool = True,
                use_cache: bool = True, figures: bool = True) -> ExportResult:
    """Write the static site of an archive into ``out``.

    Parameters
    ----------
    data_root : str or path-like
        The archive (folder of CalLMIP files).
    out : str or path-like
        Output folder (created; files of earlier exports are overwritten, others left).
    sites : iterable of str, optional
        Sites to give pages and figures (default: every site of the archive).
    variables : iterable of str, optional
        Variables of the Overview pages and figures (default NEE, Qle, Qh); the first is the
        one the Sites pages select.
    progress : bool
        Show a progress bar (tqdm) on stderr.
    use_cache : bool
        Reuse pages and figures rendered before for the same archive and versions.
    figures : bool
        Also draw the PNG figures.

    Returns
    -------
    ExportResult
        What was written.

    Raises
    ------
    ValueError
        A site or variable that the archive does not have (the message names it).
    """
    from tqdm import tqdm

    import dashboard.app  # noqa: F401  (the app's HoloViews settings: bokeh, canvas)
    from dashboard import queries
    from dashboard.service import get_service
    from dashboard.state import SITE_VARIABLES, UNOBSERVED_VARIABLES
    from dashboard.views.style import Look

    start = time.perf_counter()
    out = Path(out)
    service = get_service(data_root)
    present = set(service.archive.sites())
    all_sites = [s for s in queries.site_order(service) if s in present]
    chosen_sites = list(sites) if sites else all_sites
    unknown = [s for s in chosen_sites if s not in present]
    if unknown:
        raise ValueError(f"no runs for site(s) {', '.join(unknown)} in {data_root}")
    chosen_vars = list(variables) if variables else list(DEFAULT_VARIABLES)
    known = set(SITE_VARIABLES) | set(UNOBSERVED_VARIABLES)
    bad = [v for v in chosen_vars if v not in known]
    if bad:
        raise ValueError(f"unknown variable(s) {', '.join(bad)}; choose from "
                         + ", ".join(SITE_VARIABLES + UNOBSERVED_VARIABLES))
    cache = _Cache(export_cache_dir() if use_cache else None)
    context = ExportContext(service=service, look=Look(), sites=chosen_sites,
                            variables=chosen_vars)
    signature = service.signature()
    versions = _versions()
    files: dict[str, int] = {}
    rendered = reused = 0

    tables = service.tables()
    context.messages.extend(f"metric tables: {e}" for e in service.table_errors)
    for name, frame in sorted(tables.items()):
        _write(out, f"tables/{name}.csv", frame.to_csv(index=False).encode("utf-8"), files)

    pages = view_pages(context)
    jobs: list[tuple[str, str, dict, Callable[[], bytes]]] = [
        (page.path, "page", page.key,
         (lambda page=page: render_html(page.build, title=f"CalLMIP Explorer: {page.title}",
                                        seed=page.path)))
        for page in pages]
    if figures and versions["matplotlib"] is None:
        context.messages.append("figures: not drawn (matplotlib is not installed: "
                                "pip install 'callmip-explorer[export]')")
    elif figures:
        from dashboard import export_figures

        jobs += [(job.path, "figure", job.key, job.draw)
                 for job in export_figures.figure_jobs(context)]
    bar = tqdm(total=len(jobs), desc="export", unit="file", disable=not progress,
               file=sys.stderr)
    for path, kind, key, make in jobs:
        bar.set_postfix_str(path, refresh=False)
        cache_key = _cache_key(signature, f"{kind}:{path}", key)
        data = cache.get(cache_key)
        if data is None:
            try:
                data = make()
            except Exception as exc:  # one page failing never stops the export
                log.exception("exporting %s failed", path)
                context.messages.append(f"{path}: not exported ({type(exc).__name__}: {exc})")
                bar.update()
                continue
            cache.put(cache_key, data)
            rendered += 1
        else:
            reused += 1
        _write(out, path, data, files)
        if kind == "page" and len(data) > PAGE_LIMIT_BYTES:
            context.messages.append(f"{path}: {len(data) / 2**20:.1f} MB, over the "
                                    f"{PAGE_LIMIT_BYTES / 2**20:.0f} MB goal")
        bar.update()
    bar.close()

    log_text = "\n".join(context.messages) + "\n" if context.messages else "nothing skipped\n"
    _write(out, "export-log.txt", log_text.encode("utf-8"), files)
    _write(out, "index.html", _index_html(pages, files, context.messages, versions,
                                          Path(service.root).name), files)
    manifest = {
        "explorer_version": versions["explorer"],
        "metrics_version": versions["metrics"],
        "export_version": EXPORT_VERSION,
        "software": {k: v for k, v in versions.items()
                     if k not in ("explorer", "metrics", "export")},
        "archive": {"name": Path(service.root).name, "signature": signature,
                    "files": archive_files(service, cache)},
        "options": {"sites": chosen_sites, "variables": chosen_vars},
        "outputs": [{"path": p, "bytes": n, "sha256": hashlib.sha256(
            (out / p).read_bytes()).hexdigest()} for p, n in sorted(files.items())],
        "log": context.messages,
    }
    _write(out, "manifest.json", (json.dumps(manifest, indent=1) + "\n").encode("utf-8"), {})
    return ExportResult(out=out, files=files, rendered=rendered, reused=reused,
                        messages=context.messages, seconds=time.perf_counter() - start)


def clear_export_cache() -> None:
    """Forget every cached page, figure and file hash."""
    shutil.rmtree(export_cache_dir(), ignore_errors=True)


# ------------------------------------------------------------------------------ snapshot
def snapshot_html(selection: Selection, service: DataService, look: Look) -> bytes:
    """The current view of a live session, with its selection, as one standalone page.

    A new view is built on a copy of ``selection`` (the session's own objects are not
    touched) and saved with inline resources, so the file opens anywhere without a server.
    """
    import panel as pn

    from dashboard.app import VIEW_LABELS, view_class
    from dashboard.urlstate import query_from_selection

    values = {k: v for k, v in selection.param.values().items() if k != "name"}
    copy = type(selection)(**values)
    name = copy.view
    label = VIEW_LABELS.get(name, name)
    query = query_from_selection(copy)
    caption = ("Snapshot of the CalLMIP Explorer (static: zoom, pan and hover work): "
               + ", ".join(f"{k}={v}" for k, v in query.items()))
    cls = view_class(name)

    def build() -> Any:
        # Built inside render_html: a view composed here, in the live session, would fill
        # itself in step by step on the session's event loop instead of in the file.
        if cls is None or name == "check":
            body = pn.pane.Alert(f"The {label} view cannot be saved as a snapshot.",
                                 alert_type="info")
        else:
            body = cls(selection=copy, service=service, look=look)
            if name == "sites":
                _whole_record(body)
        return pn.Column(pn.pane.HTML(f"<div><b>{html.escape(label)}</b> &middot; <small>"
                                      f"{html.escape(caption)}</small></div>",
                                      sizing_mode="stretch_width"),
                         body, sizing_mode="stretch_width")

    # A live server's Bokeh id counter is never reset (its sessions' documents use it).
    return render_html(build, title=f"CalLMIP Explorer: {label}",
                       seed=json.dumps(query, sort_keys=True), reset_ids=False)


def snapshot_filename(selection: Selection) -> str:
    """A file name naming the view and its selection, e.g. ``callmip-sites-DK-Sor-NEE.html``."""
    parts = ["callmip", selection.view]
    if selection.view == "sites" and selection.site:
        parts.append(selection.site)
    parts.append(selection.variable)
    if selection.scenario != 1:
        parts.append(f"scen{selection.scenario}")
    return re.sub(r"[^A-Za-z0-9._-]+", "_", "-".join(parts)) + ".html"


def snapshot_button(selection: Selection, service: DataService, look: Look) -> pn.Viewable:
    """A **Snapshot** button: downloads the current view as one standalone HTML file."""
    import panel as pn

    button = pn.widgets.FileDownload(label="Snapshot (HTML)",
                                     filename="callmip.html", embed=False,
                                     description="Save the current view, with its selection, "
                                                 "as one HTML file that opens offline.")

    def callback() -> io.BytesIO:
        button.filename = snapshot_filename(selection)
        return io.BytesIO(snapshot_html(selection, service, look))

    button.callback = callback
    return button
