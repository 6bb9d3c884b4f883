"""``callmip export``: the static site, its manifest, determinism, hooks and the Snapshot button.

The site is built from the tiny test archive by the real command (a subprocess, as a user runs
it) and opened from ``file://`` in chromium with every non-file request aborted.
"""

from __future__ import annotations

import hashlib
import json
import os
import re
import subprocess
import sys
import time
import urllib.request
from importlib.metadata import version
from pathlib import Path

import numpy as np
import pytest
import xarray as xr

from tests.appdata import CAL_SITE, SPARSE_SITE, build_app_archive
from tests.conftest import CHROMIUM

REPO = Path(__file__).resolve().parent.parent
SITES = [CAL_SITE, SPARSE_SITE]
VARIABLES = ["NEE", "Qle"]
LIMIT = 10 * 2**20


def _export(root: Path, out: Path, cache: Path, *args: str) -> subprocess.CompletedProcess:
    env = {**os.environ, "CALLMIP_CACHE_DIR": str(cache), "PYTHONPATH": str(REPO)}
    return subprocess.run(
        [sys.executable, "-m", "dashboard.cli", "export", str(root), "--out", str(out),
         "--sites", *SITES, "--variables", *VARIABLES, *args],
        capture_output=True, text=True, timeout=900, cwd=REPO, env=env)


def _hashes(folder: Path) -> dict[str, str]:
    return {p.relative_to(folder).as_posix(): hashlib.sha256(p.read_bytes()).hexdigest()
            for p in sorted(folder.rglob("*")) if p.is_file()}


@pytest.fixture(scope="module")
def archive(tmp_path_factory) -> Path:
    return build_app_archive(tmp_path_factory.mktemp("export-archive"))


@pytest.fixture(scope="module")
def exported(archive, tmp_path_factory):
    """The site exported twice with one cache (cold, then warm) and once more without it."""
    base = tmp_path_factory.mktemp("export")
    cache = base / "cache"
    first = _export(archive, base / "first", cache)
    assert first.returncode == 0, first.stderr
    second = _export(archive, base / "second", cache)
    assert second.returncode == 0, second.stderr
    fresh = _export(archive, base / "fresh", base / "other-cache", "--no-cache")
    assert fresh.returncode == 0, fresh.stderr
    return {"site": base / "first", "second": base / "second", "fresh": base / "fresh",
            "runs": (first, second, fresh)}


# ------------------------------------------------------------------------------ contents
def test_the_site_has_every_page_table_figure_and_the_log(exported):
    site = exported["site"]
    for page in ["index.html", "overview.html", "overview-Qle.html",
                 *[f"sites/{s}.html" for s in SITES]]:
        assert (site / page).is_file(), page
    assert not (site / "sites" / "US-Ha1.html").exists()  # not asked for
    from dashboard.metrics.tables import TABLE_NAMES

    for name in TABLE_NAMES:
        assert (site / "tables" / f"{name}.csv").is_file()
    for figure in ["figures/scorecard-NEE.png", "figures/scorecard-Qle.png",
                   *[f"figures/sites/{s}.png" for s in SITES]]:
        assert (site / figure).read_bytes()[:8] == b"\x89PNG\r\n\x1a\n", figure
    log = (site / "export-log.txt").read_text()
    # Views not in this release are skipped and said so (the Global view's module is absent).
    from dashboard.app import view_class

    for name in ("parameters", "global", "scenarios", "methods"):
        if view_class(name) is None:
            assert f"{name}: not exported (the view is not part of this release)" in log


def test_every_page_is_under_ten_megabytes_and_carries_its_own_scripts(exported):
    from dashboard.app import VIEW_CLASSES, view_class

    pages = sorted(exported["site"].rglob("*.html"))
    # index + an Overview page per variable + a page per site + one page per other view in
    # this release (the upload page needs a server and is not exported).
    other_views = [v for v in VIEW_CLASSES if v not in ("overview", "sites", "check")
                   and view_class(v) is not None]
    names = {p.relative_to(exported["site"]).as_posix() for p in pages}
    assert {f"{v}.html" for v in other_views} <= names, names
    assert {f"sites/{s}.html" for s in SITES} <= names, names
    assert len(pages) == 1 + len(VARIABLES) + len(SITES) + len(other_views), names
    for page in pages:
        text = page.read_text()
        assert len(text.encode()) < LIMIT, page
        # No script, stylesheet or icon is fetched from anywhere (inline resources).
        assert not re.search(r'<(script|link)[^>]+(src|href)="(https?:)?//', text), page


def test_the_manifest_hashes_every_archive_file_and_every_output(exported, archive):
    site = exported["site"]
    manifest = json.loads((site / "manifest.json").read_text())
    from dashboard.metrics.tables import METRICS_VERSION

    assert manifest["metrics_version"] == METRICS_VERSION
    assert manifest["explorer_version"] == version("callmip-explorer")
    on_disk = {p.relative_to(archive).as_posix(): hashlib.sha256(p.read_bytes()).hexdigest()
               for p in archive.rglob("*") if p.is_file()}
    listed = {f["path"]: f["sha256"] for f in manifest["archive"]["files"]}
    assert listed == on_disk  # every file, with the hash of its bytes
    outputs = {f["path"]: f["sha256"] for f in manifest["outputs"]}
    written = _hashes(site)
    written.pop("manifest.json")
    assert outputs == written


def test_the_csv_tables_are_the_metric_tables(exported, archive, tmp_path, monkeypatch):
    import pandas as pd

    from dashboard.metrics.tables import compute_tables

    monkeypatch.setenv("CALLMIP_CACHE_DIR", str(tmp_path / "cache"))
    tables = compute_tables(str(archive), progress=False)
    for name, frame in tables.items():
        csv = pd.read_csv(exported["site"] / "tables" / f"{name}.csv")
        assert len(csv) == len(frame) and list(csv.columns) == list(frame.columns), name
    scores = pd.read_csv(exported["site"] / "tables" / "site_scores.csv")
    expected = tables["site_scores"]["rmse"].to_numpy(dtype=float)
    np.testing.assert_allclose(scores["rmse"].to_numpy(dtype=float), expected, rtol=1e-12)


def test_a_progress_bar_runs_and_the_summary_is_printed(exported):
    first = exported["runs"][0]
    assert "export:" in first.stderr and "100%" in first.stderr
    assert "rendered" in first.stdout and "from the cache" in first.stdout


# ---------------------------------------------------------------------------- determinism
def test_a_second_run_reuses_the_cache_and_gives_identical_files(exported):
    first, second, _ = exported["runs"]
    n_items = len(re.findall(r"\.(?:html|png)$", "\n".join(_hashes(exported["site"])), re.M))
    n_items -= 1  # index.html is written, not rendered
    assert f"(0 rendered, {n_items} from the cache)" in second.stdout
    assert _hashes(exported["second"]) == _hashes(exported["site"])


def test_rendering_again_from_scratch_gives_identical_bytes(exported):
    # Another process (another hash seed), no cache: Bokeh's ids and UUIDs are deterministic.
    fresh = exported["runs"][2]
    assert "0 from the cache" in fresh.stdout
    assert _hashes(exported["fresh"]) == _hashes(exported["site"])


def test_unknown_site_or_variable_is_a_usage_error(archive, tmp_path):
    env = {**os.environ, "CALLMIP_CACHE_DIR": str(tmp_path / "cache"), "PYTHONPATH": str(REPO)}
    for args, named in ((["--sites", "XX-Nope"], "XX-Nope"), (["--variables", "FOO"], "FOO")):
        result = subprocess.run(
            [sys.executable, "-m", "dashboard.cli", "export", str(archive), "--out",
             str(tmp_path / "out"), *args], capture_output=True, text=True, timeout=300,
            cwd=REPO, env=env)
        assert result.returncode == 2 and named in result.stderr


# ---------------------------------------------------------------------------- view hooks
def test_a_view_module_provides_its_pages_through_its_hook(archive, tmp_path, monkeypatch):
    from dashboard import app, export

    monkeypatch.setenv("CALLMIP_CACHE_DIR", str(tmp_path / "cache"))
    monkeypatch.setitem(app.VIEW_CLASSES, "parameters", "tests.export_fakes:HookedView")
    monkeypatch.setitem(app.VIEW_CLASSES, "methods", "tests.export_fakes:PlainView")
    monkeypatch.setitem(app.VIEW_CLASSES, "global", "tests.no_such_module:GlobalView")
    monkeypatch.setattr(export, "BUILTIN_HOOKS", {
        k: v for k, v in export.BUILTIN_HOOKS.items() if k not in ("overview", "sites")}
        | {"overview": export.skip_pages("test"), "sites": export.skip_pages("test")})
    result = export.export_site(archive, tmp_path / "out", sites=[CAL_SITE],
                                variables=["NEE", "Qh"], progress=False, figures=False)
    assert {"hooked/NEE.html", "hooked/Qh.html", "methods.html"} <= set(result.files)
    assert "hooked view of Qh" in (tmp_path / "out" / "hooked" / "Qh.html").read_text()
    assert "hooked view of NEE" in (tmp_path / "out" / "methods.html").read_text()
    assert "hooked: pages from the view's own hook" in result.messages
    assert "global: not exported (the view is not part of this release)" in result.messages
    index = (tmp_path / "out" / "index.html").read_text()
    assert 'href="hooked/Qh.html"' in index and "<h2>Hooked</h2>" in index


def test_global_maps_are_block_averaged_to_the_fixed_grid():
    from dashboard.export import ExportContext

    lat = np.arange(-89.5, 90, 1.0)
    lon = np.arange(0.5, 360, 1.0)  # 0…360 longitudes become −180…180
    values = np.random.default_rng(0).normal(size=(lat.size, lon.size))
    values[0, 0] = np.nan
    data = xr.DataArray(values, coords={"lat": lat, "lon": lon}, dims=("lat", "lon"))
    context = ExportContext(service=None, look=None, sites=[], variables=[], grid_deg=2.0)
    coarse = context.to_fixed_grid(data)
    assert coarse.shape == (90, 180)
    shifted = np.roll(values, 180, axis=1)  # columns ordered −179.5 … 179.5
    blocks = shifted.reshape(90, 2, 180, 2)
    expected = np.nanmean(blocks, axis=(1, 3))
    np.testing.assert_allclose(coarse.transpose("lat", "lon").values, expected)
    assert float(coarse["lat"][0]) == -89.0 and float(coarse["lon"][0]) == -179.0
    assert context.to_fixed_grid(coarse) is coarse  # already on the grid


# ------------------------------------------------------------------------------ snapshot
def test_the_snapshot_button_saves_the_current_view_with_its_selection(archive, tmp_path,
                                                                       monkeypatch):
    monkeypatch.setenv("CALLMIP_CACHE_DIR", str(tmp_path / "cache"))
    from dashboard.app import create_app

    page = create_app(str(archive))
    page.selection.param.update(view="sites", site=SPARSE_SITE, variable="Qle")
    data = page.snapshot.callback().getvalue().decode()
    assert page.snapshot.filename == f"callmip-sites-{SPARSE_SITE}-Qle.html"
    assert f"{SPARSE_SITE} Qle" in data and "site=US-Ton" in data
    assert len(data.encode()) < LIMIT
    assert not re.search(r'<(script|link)[^>]+(src|href)="(https?:)?//', data)
    page.selection.view = "overview"
    assert "Misfit reduction of Qle" in page.snapshot.callback().getvalue().decode()


# ------------------------------------------------------------------------------ browser
def _open_offline(page, url: str) -> tuple[list[str], list[str]]:
    errors: list[str] = []
    blocked: list[str] = []
    page.on("pageerror", lambda e: errors.append(str(e)))

    def route(r):
        if r.request.url.startswith("file:"):
            r.continue_()
        else:
            blocked.append(r.request.url)
            r.abort()

    page.route("**/*", route)
    page.goto(url)
    return errors, blocked


def _wait_bokeh(page) -> None:
    page.wait_for_function("() => window.Bokeh && Bokeh.documents.length > 0 "
                           "&& Bokeh.documents[0].is_idle", timeout=60_000)
    page.wait_for_timeout(500)


def _plots(page) -> dict:
    """Titles of the drawn plots and the number of data points they carry."""
    return page.evaluate("""() => {
        const models = [...Bokeh.documents[0].all_models];
        const titles = models.filter(m => m.title && typeof m.title === 'object'
                                          && m.title.text).map(m => m.title.text);
        let points = 0;
        for (const m of models) {
            const d = m.data;
            if (d && typeof d === 'object' && 'selected' in m) {  // a ColumnDataSource
                for (const v of (d instanceof Map ? d.values() : Object.values(d))) {
                    points += (v && v.length) || 0;
                }
            }
        }
        return {titles, points};
    }""")


@pytest.mark.parametrize("path, title, points", [
    ("overview.html", "Misfit reduction of NEE", 50),
    ("overview-Qle.html", "Misfit reduction of Qle", 50),
    (f"sites/{CAL_SITE}.html", f"{CAL_SITE} NEE", 5000),  # 2 years of daily series
    (f"sites/{SPARSE_SITE}.html", f"{SPARSE_SITE} Qh", 5000),
])
@pytest.mark.ui
@pytest.mark.skipif(not Path(CHROMIUM).exists(), reason=f"no chromium at {CHROMIUM}")
def test_pages_open_from_file_with_the_network_blocked(exported, page, path, title, points):
    errors, blocked = _open_offline(page, (exported["site"] / path).as_uri())
    _wait_bokeh(page)
    drawn = _plots(page)
    assert not errors, errors
    assert not blocked, blocked  # nothing asked for the network
    assert any(t.startswith(title) for t in drawn["titles"]), drawn["titles"]
    assert drawn["points"] > points  # the data are in the page


@pytest.mark.ui
@pytest.mark.skipif(not Path(CHROMIUM).exists(), reason=f"no chromium at {CHROMIUM}")
def test_the_index_links_every_page_and_file(exported, page):
    errors, blocked = _open_offline(page, (exported["site"] / "index.html").as_uri())
    hrefs = page.eval_on_selector_all("a", "els => els.map(e => e.getAttribute('href'))")
    assert not errors and not blocked
    written = set(_hashes(exported["site"])) - {"index.html"}
    assert set(hrefs) == written
    assert page.locator("text=Site DK-Sor").count() == 1


@pytest.mark.ui
@pytest.mark.skipif(not Path(CHROMIUM).exists(), reason=f"no chromium at {CHROMIUM}")
def test_the_snapshot_button_downloads_a_page_that_opens_offline(archive, page, tmp_path,
                                                                 monkeypatch):
    import socket

    from dashboard.server import start_server

    monkeypatch.setenv("CALLMIP_CACHE_DIR", str(tmp_path / "cache"))
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    server = start_server(str(archive), port=port, address="127.0.0.1", threaded=True)
    try:
        for _ in range(100):
            try:
                with urllib.request.urlopen(f"http://127.0.0.1:{port}/liveness", timeout=5):
                    break
            except OSError:
                time.sleep(0.1)
        page.set_viewport_size({"width": 1400, "height": 1000})
        page.goto(f"http://127.0.0.1:{port}/?view=sites&site={CAL_SITE}&variable=Qh")
        page.wait_for_function(
            """() => window.Bokeh && Bokeh.documents.length > 0 && [...Bokeh.documents[0]
                .all_models].some(m => (m.css_classes || []).includes('callmip-complete'))""",
            timeout=120_000)
        with page.expect_download(timeout=120_000) as download:
            page.get_by_role("button", name="Snapshot (HTML)").click()
        saved = tmp_path / download.value.suggested_filename
        download.value.save_as(saved)
    finally:
        try:
            server.stop()
        except RuntimeError:
            pass
    assert saved.name == f"callmip-sites-{CAL_SITE}-Qh.html"
    offline = page.context.new_page()
    errors, blocked = _open_offline(offline, saved.as_uri())
    _wait_bokeh(offline)
    drawn = _plots(offline)
    assert not errors and not blocked, (errors, blocked)
    assert any(t.startswith("Taylor diagram (Qh)") for t in drawn["titles"]), drawn["titles"]
    assert drawn["points"] > 1000
    offline.screenshot(path=str(tmp_path / "snapshot.png"))
