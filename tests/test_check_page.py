"""The "Check my files" page through its objects: reports, privacy, limits, cleanup."""

from __future__ import annotations

import io
import json
import os
import signal
import subprocess
import sys
import textwrap
import zipfile
from pathlib import Path
from types import SimpleNamespace

import numpy as np
import pandas as pd
import panel as pn
import pytest
from bokeh.document import Document
from bokeh.models import MultiLine
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from pyviz_comms import Comm

import dashboard.app  # noqa: F401  (loads the HoloViews plotting extension)
from dashboard import queries
from dashboard.app import create_app
from dashboard.checking import SessionService, comparison_table, reports_markdown
from dashboard.service import get_service
from dashboard.state import Selection
from dashboard.uploads import (
    SessionUploads,
    UploadLimits,
    cleanup_all,
    safe_name,
    sweep_stale,
)
from dashboard.views.check import CheckView, LimitedFileDropper
from dashboard.views.style import Look
from loaders.readers import open_site_run
from tests.appdata import CAL_SITE, build_app_archive
from tests.synthetic import write_site_run

REPO = Path(__file__).resolve().parent.parent
MINE = "MINE.v3"
HOSTILE_TITLE = "<img src=x onerror=alert(1)>"


@pytest.fixture(scope="module")
def archive_root(tmp_path_factory) -> Path:
    return build_app_archive(tmp_path_factory.mktemp("check-archive"))


@pytest.fixture(autouse=True)
def _private_upload_dir(tmp_path, monkeypatch):
    monkeypatch.setenv("CALLMIP_UPLOAD_DIR", str(tmp_path / "uploads"))


@pytest.fixture
def service(archive_root):
    return get_service(archive_root, refresh=True)


@pytest.fixture(scope="module")
def my_runs(tmp_path_factory) -> dict[str, Path]:
    """A participant's prior and posterior at the archive's calibration site."""
    folder = tmp_path_factory.mktemp("mine")
    common = {"model": "MINE", "version": "v3", "site": CAL_SITE, "cal_val": "Cal",
              "start": "2000-01-01", "n_days": 731, "lat": 55.4859, "lon": 11.6446}
    return {"Prior": write_site_run(folder, stage="Prior", seed=21, **common),
            "Posterior": write_site_run(folder, stage="Posterior", seed=22,
                                        uncertainty="post_unc", **common)}


def _view(service, **limits) -> CheckView:
    extra = {"limits": UploadLimits(**limits)} if limits else {}
    return CheckView(selection=Selection(view="check"), service=service, look=Look(), **extra)


def _snapshot(service) -> dict:
    """What every session shares: catalog, model list, tables and cache keys."""
    return {"catalog": service.archive.catalog.copy(), "models": list(service.model_ids()),
            "tables": {k: v.copy() for k, v in service.tables().items()},
            "cache_keys": _cache_keys(service)}


def _cache_keys(service) -> list:
    """Keys of the service's byte-bounded cache and of the process's file cache."""
    from loaders.archive import file_cache

    return list(service.cache._items) + list(file_cache()._items)


def test_a_good_and_a_broken_file_give_the_right_reports_and_leave_the_archive_alone(
        service, my_runs, archive_root):
    before = _snapshot(service)
    view = _view(service)
    broken = b"this is a spreadsheet, not NetCDF"
    checked = view.add_files({my_runs["Posterior"].name: my_runs["Posterior"].read_bytes(),
                              "MINE.v3_Phase1b_Scen1_DK-Sor_Cal_Prior.nc": broken})
    good, bad = checked
    assert good.report.ok and good.report.error_codes == []
    assert (good.report.model, good.report.site, good.report.stage) == ("MINE", CAL_SITE,
                                                                         "Posterior")
    assert good.description["period"] == "2000-01-01 to 2001-12-31"
    assert good.description["n_days"] == 731
    units = {name: u for name, u, _ in good.description["variables"]}
    assert units["hfss"] == "W m-2" and units["nep"] == "kgC m-2 s-1"
    assert not bad.report.ok and "unreadable" in bad.report.error_codes
    assert "is not a NetCDF file" in bad.report.errors[-1].message
    # No server path reaches the participant: reports name the file as uploaded.
    folder = str(view.uploads.folder)
    page = "".join(p.object for p in view.reports.objects)
    assert folder not in page and "/tmp" not in page
    assert json.loads(view.json_download.callback().getvalue())[0]["path"] == good.name
    # Every session's data are unchanged: catalog, models, tables; the shared cache holds no
    # uploaded file.
    after = _snapshot(service)
    pd.testing.assert_frame_equal(before["catalog"], after["catalog"])
    assert before["models"] == after["models"] and MINE not in after["models"]
    for name, table in before["tables"].items():
        pd.testing.assert_frame_equal(table, after["tables"][name])
    assert after["cache_keys"] and not any(folder in str(key) for key in after["cache_keys"])
    fresh = get_service(archive_root)
    assert fresh is service and MINE not in fresh.model_ids()
    assert MINE not in set(queries.coverage_frame(fresh, 1)["model"])
    assert not any(str(p).startswith(folder) for p in fresh.archive.catalog["path"])


def test_the_json_report_is_the_callmip_check_contract(service, my_runs, archive_root):
    view = _view(service)
    view.add_files({p.name: p.read_bytes() for p in my_runs.values()})
    rows = json.loads(view.json_download.callback().getvalue())
    assert [list(r) for r in rows] == [["path", "ok", "kind", "model", "version", "scenario",
                                        "site", "cal_val", "stage", "errors", "warnings"]] * 2
    from loaders.protocol import check_file

    # The page checks as `callmip check --obs-root <served archive>` does.
    for row, path in zip(rows, my_runs.values(), strict=True):
        cli = check_file(path, obs_root=archive_root).to_dict()
        assert {k: v for k, v in row.items() if k != "path"} == {
            k: v for k, v in cli.items() if k != "path"}


def test_the_comparison_scores_the_upload_on_the_observed_days(service, my_runs):
    view = _view(service)
    view.add_files({p.name: p.read_bytes() for p in my_runs.values()})
    proxy = view._session_service
    assert proxy.uploaded_ids() == [MINE + " (yours)"]
    # The plots show the upload highlighted beside every archive model.
    figure = view.compare.objects[2].object  # the time series (a Bokeh figure)
    (lines,) = [r for r in figure.renderers if isinstance(r.glyph, MultiLine)]
    labels = set(lines.data_source.data["label"])
    assert {f"{MINE} (yours) prior", f"{MINE} (yours) posterior"} <= labels
    assert "ALPHA.v1 posterior" in labels and "BETA-X.v2.1 posterior" in labels
    # Known answer: RMSE of −nep × 1000 × 86400 against the observed NEE, by hand.
    table = view.comparison.set_index("stage")
    obs = service.archive.open_observations(CAL_SITE)
    for stage, path in my_runs.items():
        run = open_site_run(path)
        mine = pd.Series(-run["nep"].values * 1000 * 86400, index=run["time"].values)
        o = pd.Series(obs["NEE"].values, index=obs["time"].values)
        both = pd.concat([mine, o], axis=1, join="inner").dropna()
        rmse = float(np.sqrt(((both[0] - both[1]) ** 2).mean()))
        assert table.loc[stage, "n"] == len(both)
        assert table.loc[stage, "rmse"] == pytest.approx(rmse, rel=1e-4)
    prior, post = table.loc["Prior", "rmse"], table.loc["Posterior", "rmse"]
    assert table.loc["Posterior", "misfit_reduction"] == pytest.approx(1 - post / prior,
                                                                       rel=1e-4)
    assert table.loc["Posterior", "n_models"] == 2  # ALPHA and BETA-X posteriors at DK-Sor
    assert 0.0 <= table.loc["Posterior", "inside_spread"] <= 1.0
    # The view builds its Bokeh models.
    pn.panel(view).get_root(Document(), comm=Comm())


def test_inside_spread_and_rank_have_known_answers():
    from dashboard.sitedata import SiteSeries

    t = pd.date_range("2001-01-01", periods=40)
    obs = pd.DataFrame({"time": t, "value": np.zeros(40), "unc": np.ones(40)})
    runs = [pd.DataFrame({"model": m, "stage": "Posterior", "time": t, "value": v,
                          "lower": np.nan, "upper": np.nan})
            for m, v in (("A", np.full(40, -1.0)), ("B", np.full(40, 1.0)),
                         ("Y", np.r_[np.full(30, 0.5), np.full(10, 3.0)]))]
    series = SiteSeries(obs=obs, runs=pd.concat(runs, ignore_index=True))
    row = comparison_table(series, ["Y"], "NEE", min_n=30).iloc[0]
    assert row["inside_spread"] == pytest.approx(30 / 40)
    assert row["rmse"] == pytest.approx(np.sqrt((30 * 0.25 + 10 * 9) / 40))
    assert row["rank"] == 3 and row["n_models"] == 2  # both others have RMSE 1
    short = comparison_table(series, ["Y"], "NEE", min_n=41).iloc[0]
    assert np.isnan(short["rmse"]) and short["rank"] is None  # insufficient data


def test_another_session_does_not_see_the_upload(service, my_runs, archive_root):
    view = _view(service)
    view.add_files({p.name: p.read_bytes() for p in my_runs.values()})
    other = create_app(str(archive_root))
    other.selection.view = "overview"
    root = pn.Column(*other.main.objects).get_root(Document(), comm=Comm())
    texts = []
    for model in root.select({"type": object}):
        for attr in ("text", "factors", "options", "value"):
            value = getattr(model, attr, None)
            if value is not None:
                texts.append(str(value))
    overview = other.views["overview"]
    coverage = overview._cover_dmap[()]
    assert "MINE" not in " ".join(texts)
    assert "MINE.v3" not in set(coverage.dimension_values("model"))
    assert "MINE.v3" not in other.selection.param.models.objects if hasattr(
        other.selection.param.models, "objects") else True


def test_an_oversize_file_is_refused_cleanly(service, my_runs):
    view = _view(service, max_file_bytes=10_000, max_session_bytes=1_000_000)
    data = my_runs["Prior"].read_bytes()
    assert len(data) > 10_000
    assert view.add_files({my_runs["Prior"].name: data}) == []
    messages = " ".join(p.object for p in view.messages.objects)
    assert "larger than the limit of 10 KB per file" in messages
    assert view.uploads.files == [] and view.reports.objects == []


def test_the_session_limit_counts_every_file(service, my_runs):
    size = len(my_runs["Prior"].read_bytes())
    view = _view(service, max_file_bytes=size + 1, max_session_bytes=size + 10)
    assert len(view.add_files({"a/" + my_runs["Prior"].name: my_runs["Prior"].read_bytes()}))
    assert view.add_files({my_runs["Prior"].name: my_runs["Prior"].read_bytes()}) == []
    messages = " ".join(p.object for p in view.messages.objects)
    assert "would take this session over its limit" in messages


def _event(name: str, data: bytes, chunk: int, total: int) -> SimpleNamespace:
    return SimpleNamespace(event_name="upload_event", data={
        "name": name, "data": data, "chunk": chunk, "total_chunks": total,
        "type": "application/x-netcdf"})


def test_the_upload_widget_drops_an_oversize_file_on_the_server_chunk_by_chunk():
    dropper = LimitedFileDropper(server_max_bytes=25, multiple=True)
    dropper._process_event(_event("big.nc", b"x" * 10, 1, 3))
    dropper._process_event(_event("big.nc", b"x" * 10, 2, 3))
    dropper._process_event(_event("big.nc", b"x" * 10, 3, 3))  # crosses 25 bytes
    assert dropper.value == {} and "big.nc" not in dropper._file_buffer
    assert "big.nc was refused" in dropper.refused[0]
    dropper._process_event(_event("small.nc", b"y" * 20, 1, 1))
    assert dropper.value == {"small.nc": b"y" * 20}
    # A client that keeps sending chunks of a refused file never refills the buffer.
    dropper._process_event(_event("big.nc", b"x" * 10, 4, 5))
    assert "big.nc" not in dropper._file_buffer and "big.nc" not in dropper.value


def test_parallel_uploads_share_the_session_budget():
    dropper = LimitedFileDropper(server_max_bytes=100, multiple=True, budget=lambda: 50)
    dropper._process_event(_event("a.nc", b"x" * 30, 1, 2))
    dropper._process_event(_event("b.nc", b"y" * 30, 1, 2))  # 60 in flight > 50 left
    assert "b.nc" not in dropper._file_buffer and "b.nc was refused" in dropper.refused[0]
    dropper._process_event(_event("a.nc", b"x" * 10, 2, 2))
    assert dropper.value == {"a.nc": b"x" * 40}
    # An abandoned upload (removed from the list) no longer counts against the budget.
    dropper._process_event(_event("c.nc", b"z" * 30, 1, 2))
    dropper._process_event(SimpleNamespace(event_name="delete_event", data={"name": "c.nc"}))
    dropper._process_event(_event("d.nc", b"w" * 45, 1, 1))
    assert dropper.value["d.nc"] == b"w" * 45


def _zip(members: dict[str, bytes]) -> bytes:
    buffer = io.BytesIO()
    with zipfile.ZipFile(buffer, "w", zipfile.ZIP_DEFLATED) as archive:
        for name, data in members.items():
            archive.writestr(name, data)
    return buffer.getvalue()


def test_traversal_names_stay_inside_the_session_folder(service, my_runs, tmp_path):
    view = _view(service)
    data = my_runs["Prior"].read_bytes()
    names = ["../../" + my_runs["Prior"].name, "/etc/" + my_runs["Prior"].name,
             "..\\..\\" + my_runs["Prior"].name, "..", ".bashrc"]
    view.add_files({n: data for n in names})
    zipped = _zip({"../../../../evil/" + my_runs["Posterior"].name:
                   my_runs["Posterior"].read_bytes(), "/abs/x.nc": b"abc"})
    view.add_files({"runs.zip": zipped})
    folder = view.uploads.folder.resolve()
    stored = [f.path.resolve() for f in view.uploads.files]
    assert len(stored) == 7
    for path in stored:
        assert path.is_relative_to(folder) and path.exists()
    assert {f.name for f in view.uploads.files} >= {
        my_runs["Prior"].name, "upload", "bashrc", f"runs.zip/{my_runs['Posterior'].name}"}
    # Nothing was written beside the session folder or above it.
    assert sorted(p.name for p in folder.parent.iterdir()) == [folder.name]
    assert not (folder.parent.parent / "evil").exists()
    names_shown = [c.name for c in view.checked]
    assert all("/" not in n.replace("runs.zip/", "") for n in names_shown)


def test_a_zip_bomb_is_stopped_by_its_uncompressed_size(tmp_path):
    uploads = SessionUploads(UploadLimits(max_file_bytes=5 * 2**20,
                                          max_session_bytes=50 * 2**20), base=tmp_path)
    bomb = _zip({"a.nc": b"\0" * (40 * 2**20), "b.nc": b"fine"})
    assert len(bomb) < 200_000  # 40 MB compress to a few tens of KB
    result = uploads.add("bomb.zip", bomb)
    assert [f.name for f in result.files] == ["bomb.zip/b.nc"]
    assert "a.nc" in result.refused[0] and "limit of 5 MB" in result.refused[0]
    assert uploads.bytes_used == 4
    on_disk = sum(p.stat().st_size for p in uploads.folder.rglob("*") if p.is_file())
    assert on_disk == 4  # the refused member's partial bytes were deleted


def test_a_zip_that_lies_about_its_sizes_is_still_counted(tmp_path):
    data = _zip({"a.nc": b"\1" * (3 * 2**20)})
    # Patch the declared uncompressed size in both headers to 10 bytes.
    raw = bytearray(data)
    for signature, offset in ((b"PK\x03\x04", 22), (b"PK\x01\x02", 24)):
        at = raw.find(signature)
        raw[at + offset:at + offset + 4] = (10).to_bytes(4, "little")
    uploads = SessionUploads(UploadLimits(max_file_bytes=2**20), base=tmp_path)
    result = uploads.add("liar.zip", bytes(raw))
    assert result.files == [] and result.refused
    assert uploads.bytes_used == 0


def test_the_session_folder_is_gone_after_the_session_is_destroyed(service, my_runs,
                                                                   monkeypatch):
    document = Document()
    context = SimpleNamespace(id="s1", request=SimpleNamespace(arguments={}, cookies={},
                                                               headers={}))
    monkeypatch.setattr(document, "_session_context", lambda: context, raising=False)
    from panel.io.state import set_curdoc

    with set_curdoc(document):
        view = _view(service)
        assert document.session_destroyed_callbacks  # registered for this session
        view.add_files({p.name: p.read_bytes() for p in my_runs.values()})
    folder = view.uploads.folder
    assert folder.exists() and len(list(folder.rglob("*.nc"))) == 2
    for callback in list(document.session_destroyed_callbacks):
        callback(SimpleNamespace(id="s1"))  # what Bokeh does when it discards the session
    assert not folder.exists()
    assert view.checked == [] and view.uploads.files == []


def test_no_folder_is_made_before_an_upload(service):
    view = _view(service)
    assert not view.uploads.created


def test_session_folders_are_deleted_at_exit_and_on_sigterm(tmp_path):
    script = textwrap.dedent("""
        import os, signal, sys, time
        from dashboard.uploads import SessionUploads, install_cleanup_handlers
        if sys.argv[1] == "signal":
            install_cleanup_handlers()
        u = SessionUploads()
        u.add("x.nc", b"data")
        print(u.folder, flush=True)
        if sys.argv[1] == "signal":
            time.sleep(60)
    """)
    env = {**os.environ, "CALLMIP_UPLOAD_DIR": str(tmp_path), "PYTHONPATH": str(REPO)}
    for mode in ("exit", "signal"):
        proc = subprocess.Popen([sys.executable, "-c", script, mode], stdout=subprocess.PIPE,
                                text=True, env=env, cwd=REPO)
        folder = Path(proc.stdout.readline().strip())
        if mode == "signal":
            assert folder.exists()
            proc.send_signal(signal.SIGTERM)
        proc.wait(timeout=30)
        assert folder.name.startswith("p") and not folder.exists(), mode


def test_folders_of_dead_processes_are_swept(tmp_path):
    from dashboard.uploads import _host_tag

    host = _host_tag()
    dead = tmp_path / f"p999999999-{host}-abc"
    dead.mkdir()
    (dead / "x.nc").write_bytes(b"1")
    live = tmp_path / f"p{os.getpid()}-{host}-abc"
    live.mkdir()
    elsewhere = tmp_path / "p999999999-otherhost-abc"  # another machine's process ids
    elsewhere.mkdir()
    assert sweep_stale(tmp_path) == 1
    assert not dead.exists() and live.exists() and elsewhere.exists()
    uploads = SessionUploads(base=tmp_path)
    uploads.add("y.nc", b"2")
    assert cleanup_all() >= 1 and not uploads.created


def test_hostile_text_is_escaped_in_the_page_and_the_markdown(service, my_runs, tmp_path):
    import netCDF4

    path = tmp_path / my_runs["Prior"].name
    path.write_bytes(my_runs["Prior"].read_bytes())
    with netCDF4.Dataset(path, "a") as nc:
        nc.setncattr("title", HOSTILE_TITLE)
        nc.setncattr("Model", HOSTILE_TITLE)
        nc["hfss"].setncattr("units", HOSTILE_TITLE)
    view = _view(service)
    (checked,) = view.add_files({path.name: path.read_bytes()})
    view.add_files({"<img src=y>.nc": b"<img src=x onerror=alert(1)>"})
    page = "".join(p.object for p in view.reports.objects)
    assert "<img" not in page and "&lt;img src=x onerror=alert(1)&gt;" in page
    assert "<img src=y>" not in page and "_img_src_y_.nc" in page
    markdown = reports_markdown(view.checked)
    assert "<img" not in markdown and "&lt;img" in markdown
    assert not checked.report.ok and "attribute_mismatch" in checked.report.error_codes


def test_turning_the_page_off_and_limits_reach_the_view(service, archive_root):
    app = create_app(str(archive_root), upload_limits=UploadLimits(max_file_bytes=2**20,
                                                                   max_session_bytes=2**21))
    app.selection.view = "check"
    pn.Column(*app.main.objects).get_root(Document(), comm=Comm())
    view = app.views["check"]
    assert view.limits.max_file_bytes == 2**20
    assert view.dropper.max_file_size == "1MB" and view.dropper.server_max_bytes == 2**20
    off = create_app(str(archive_root), upload=False)
    off.selection.view = "check"
    pn.Column(*off.main.objects).get_root(Document(), comm=Comm())
    assert "check" not in off.views


def test_cli_passes_upload_limits(monkeypatch):
    from dashboard import cli

    seen = {}
    monkeypatch.setattr("dashboard.server.serve", lambda **kw: seen.update(kw) or 0)
    assert cli.main(["serve", "X", "--max-upload-mb", "50",
                     "--max-session-upload-mb", "500"]) == 0
    assert seen["max_upload_mb"] == 50 and seen["max_session_upload_mb"] == 500
    monkeypatch.undo()
    from dashboard.server import serve as real_serve

    assert real_serve(str(REPO), max_upload_mb=-1) == 2


def test_session_service_reads_uploads_without_touching_the_shared_service(service, my_runs):
    from dashboard.checking import UploadedRun

    run = UploadedRun(my_runs["Posterior"], my_runs["Posterior"].name, MINE, CAL_SITE, 1,
                      "Posterior")
    proxy = SessionService(service, [run])
    series = proxy.site_series(CAL_SITE, "Qh", 1)
    assert (MINE + " (yours)", "Posterior") in series.by_run
    shared = service.site_series(CAL_SITE, "Qh", 1, tuple(service.model_ids()))
    assert not any(m.endswith("(yours)") for m in shared.runs["model"])
    assert not any(str(run.path) in str(key) for key in _cache_keys(service))


# --------------------------------------------------------------------------------------------
# Property-based: any file name through the page
# --------------------------------------------------------------------------------------------

NAME_PARTS = st.sampled_from(["..", ".", "/", "\\", "MINE", ".v3", "_Phase1b", "_Scen1",
                              "_DK-Sor", "_Cal", "_Prior", ".nc", ".zip", "<img>", "\0", "é",
                              "%2e%2e", " ", "~", "$HOME", "C:"])


@settings(max_examples=60, deadline=None,
          suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(name=st.one_of(st.text(max_size=80), st.lists(NAME_PARTS, max_size=12).map("".join)))
def test_any_name_through_the_page_stays_inside_and_is_escaped(service, name):
    view = _view(service)
    try:
        checked = view.add_files({name: b"not netcdf"})
        folder = view.uploads.folder.resolve()
        for stored in view.uploads.files:
            assert stored.path.resolve().is_relative_to(folder)
            assert "/" not in stored.name and stored.name == safe_name(name)
        for c in checked:
            assert c.report.skipped or not c.report.ok  # garbage never passes
        page = "".join(p.object for p in view.reports.objects)
        assert "<img>" not in page and "\0" not in page
    finally:
        view.uploads.cleanup()


def test_the_worker_thread_reads_the_series_the_comparison_shows(service, my_runs):
    # What CheckView.check_in_background runs off the event loop, then applies on it.
    view = _view(service)
    new, messages = view.check_files({p.name: p.read_bytes() for p in my_runs.values()})
    assert messages == [] and len(new) == len(my_runs)
    prepared = view.prepare_comparison(new)
    site = sorted({r.site for r in prepared.runs})[0]
    assert list(prepared._series) == [(site, view.variable.value, 1)]  # read in the thread
    view.show_checked(new, messages, prepared)
    assert view._session_service is prepared  # used as it is: not read again
    assert view.site.value == site and view.comparison is not None
    assert MINE + " (yours)" in set(view.comparison["model"])
    # A prepared service that no longer matches the session's runs is not used.
    stale = view.prepare_comparison([])
    view.clear()
    view.show_checked([], [], stale)
    assert view._session_service is None
