"""The data service, its byte-bounded caches, fork safety, and the query layer."""

from __future__ import annotations

import json
import multiprocessing
import threading
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from dashboard import queries
from dashboard.cli import main as callmip
from dashboard.service import DataService, get_service
from dashboard.state import Selection
from dashboard.urlstate import URL_PARAMETERS, selection_from_query
from loaders.cache import ByteLRU, ForkSafeLock
from tests.appdata import CAL_SITE, VAL_SITE, build_app_archive


@pytest.fixture(scope="module")
def archive_root(tmp_path_factory) -> Path:
    return build_app_archive(tmp_path_factory.mktemp("service-archive"))


@pytest.fixture
def service(archive_root) -> DataService:
    return get_service(archive_root, refresh=True)


# ----------------------------------------------------------------------------- ByteLRU
def test_byte_lru_evicts_least_recently_used_beyond_its_budget():
    cache = ByteLRU(1000)
    for key in "abc":
        cache.put(key, np.zeros(40))  # 320 bytes each
    assert cache.bytes == 960 and len(cache) == 3
    assert cache.get("a") is not None  # "a" is now the most recent: "b" goes first
    cache.put("d", np.zeros(40))
    assert "b" not in cache and {"a", "c", "d"} <= {k for k in "acd" if k in cache}
    assert cache.bytes <= 1000
    big = np.zeros(200)  # 1600 bytes: returned, never kept
    assert cache.put("big", big) is big and "big" not in cache
    assert cache.bytes <= 1000
    stats = cache.stats()
    assert stats.evictions == 1 and stats.hits == 1


def test_byte_lru_computes_once_and_counts_sizes_of_frames():
    cache = ByteLRU(10**6)
    calls = []
    frame = pd.DataFrame({"x": np.arange(1000, dtype="float64")})
    value = cache.get_or_compute("k", lambda: calls.append(1) or frame)
    assert cache.get_or_compute("k", lambda: calls.append(1) or None) is value
    assert calls == [1]
    assert cache.bytes >= 8000


def test_service_cache_respects_its_byte_bound(archive_root):
    service = DataService(archive_root, cache_mb=0.5)  # smaller than one site's files
    budget = service.cache.max_bytes
    models = tuple(service.model_ids())
    for site in (CAL_SITE, VAL_SITE):
        for variable in ("NEE", "Qle", "Qh"):
            series = service.site_series(site, variable, 1, models)
            assert len(series.runs)  # the answer is complete even when it cannot be kept
            assert service.cache.bytes <= budget
    assert service.cache.stats().evictions > 0
    assert service.memory()["cache_max"] == budget


def test_prefetch_stops_at_its_share_of_the_budget(archive_root):
    service = DataService(archive_root, cache_mb=0.3)
    service.prefetch()
    assert service.cache.bytes <= service.cache.max_bytes


# ---------------------------------------------------------------------------- fork safety
def _acquire_in_child(lock: ForkSafeLock, queue) -> None:
    queue.put(lock.acquire(timeout=5))


def test_a_lock_held_by_a_thread_at_fork_is_free_in_the_child():
    lock = ForkSafeLock()
    held, release = threading.Event(), threading.Event()

    def hold() -> None:
        with lock:
            held.set()
            release.wait(30)

    thread = threading.Thread(target=hold, daemon=True)
    thread.start()
    held.wait(5)
    try:
        context = multiprocessing.get_context("fork")
        queue = context.Queue()
        child = context.Process(target=_acquire_in_child, args=(lock, queue))
        child.start()
        child.join(20)
        assert child.exitcode == 0
        assert queue.get(timeout=5) is True  # a plain RLock would block (deadlock) here
    finally:
        release.set()
        thread.join(5)


def test_a_forked_process_gets_its_own_service(archive_root):
    parent = get_service(archive_root)
    context = multiprocessing.get_context("fork")
    queue = context.Queue()

    def report() -> None:
        child = get_service(archive_root)
        queue.put((child is parent, child.pid))

    process = context.Process(target=report)
    process.start()
    process.join(30)
    same, pid = queue.get(timeout=5)
    assert not same and pid == process.pid


# --------------------------------------------------------------------- sessions are isolated
def test_a_frame_one_session_mutates_does_not_change_the_next_sessions(service):
    frames = {
        "coverage": lambda: queries.coverage_frame(service, 1),
        "scorecard": lambda: queries.scorecard_frame(service, 1, "NEE"),
        "map": lambda: queries.site_map_frame(service, "misfit_reduction", "NEE", 1,
                                              "Posterior", []),
        "generalisation": lambda: queries.generalisation_frame(service, 1, "NEE"),
        "taylor": lambda: queries.taylor_frame(service, CAL_SITE, "NEE", 1, []),
    }
    for name, query in frames.items():
        first = query()
        expected = first.copy()
        assert not first.empty, name
        _scribble(first)  # one session writes over everything it was given
        pd.testing.assert_frame_equal(query(), expected, obj=name)


def _scribble(frame: pd.DataFrame) -> None:
    """Write into every buffer of ``frame`` in place, in place."""
    for j, column in enumerate(frame.columns):
        values = frame[column].to_numpy()
        if values.dtype.kind in "fiub" and values.flags.writeable:
            values[...] = 99
        else:
            frame.iloc[0, j] = "scribbled" if values.dtype == object else frame.iloc[-1, j]


def test_shared_series_cannot_be_modified_in_place(service):
    series = queries.site_series(service, CAL_SITE, "NEE", 1, [])
    values = series.runs["value"].to_numpy()
    with pytest.raises(ValueError, match="read-only"):
        values[0] = 1e9
    with pytest.raises(ValueError, match="read-only"):
        series.obs["value"].to_numpy()[0] = 1e9


def test_coverage_is_computed_once_per_service(service, monkeypatch):
    queries.coverage_frame(service, 1)
    calls = []
    real = service.archive.__class__.site_runs
    monkeypatch.setattr(service, "tables", lambda: calls.append(1) or {})
    queries.coverage_frame(service, 1)
    assert calls == []  # a second session reuses the frame: no recomputation
    assert real is not None


# ------------------------------------------------------------- one definition per number
def _metrics_json(root: Path, tmp_path: Path) -> dict:
    out = tmp_path / "metrics.json"
    assert callmip(["metrics", str(root), "--format", "json", "--out", str(out)]) == 0
    return json.loads(out.read_text())


def test_queries_give_the_numbers_of_callmip_metrics(service, archive_root, tmp_path):
    tables = _metrics_json(archive_root, tmp_path)
    misfit = pd.DataFrame(tables["misfit_reduction"])
    for variable in ("NEE", "Qle", "Qh"):
        card = queries.scorecard_frame(service, 1, variable)
        rows = misfit[(misfit["scenario"] == 1) & (misfit["variable"] == variable)]
        assert len(card) == len(rows) > 0
        for row in rows.itertuples():
            cell = card[(card["site"] == row.site)
                        & (card["model"] == f"{row.model}.{row.version}")].iloc[0]
            assert cell["n"] == row.n
            if row.insufficient:
                assert np.isnan(cell["misfit_reduction"])
            else:
                assert cell["misfit_reduction"] == pytest.approx(row.misfit_reduction,
                                                                 rel=1e-12)
    summary = pd.DataFrame(tables["summary"])
    gap = summary[(summary["group_by"] == "all") & (summary["model"] != "all")
                  & (summary["scenario"] == 1) & (summary["variable"] == "NEE")]
    frame = queries.generalisation_frame(service, 1, "NEE").set_index("model")
    for row in gap.itertuples():
        value = frame.loc[f"{row.model}.{row.version}", "generalisation gap (Cal − Val)"]
        if row.generalisation_gap is None or np.isnan(row.generalisation_gap):
            assert np.isnan(value)
        else:
            assert value == pytest.approx(row.generalisation_gap, abs=5e-4)  # shown to 3 dp
    scores = pd.DataFrame(tables["site_scores"])
    site_map = queries.site_map_frame(service, "rmse", "Qle", 1, "Posterior", [])
    expected = (scores[(scores["scenario"] == 1) & (scores["variable"] == "Qle")
                       & (scores["stage"] == "Posterior") & ~scores["insufficient"]]
                .groupby("site")["rmse"].median())
    got = site_map.set_index("site")["value"].dropna()
    pd.testing.assert_series_equal(got.sort_index(), expected.sort_index(), check_names=False)


# --------------------------------------------------------------------- hostile URL values
_hostile_text = st.one_of(
    st.text(max_size=40),
    st.sampled_from(["0", "-1", "7", "999999999999999999999", "1e3", "NaN", " ", "",
                     "<script>alert(1)</script>", "../../etc/passwd", "DK-Sor,", ",,,",
                     "Prior", "posterior", "sites", "overview", "\x00", "%00", "1;2"]),
)


@settings(max_examples=150, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(query=st.dictionaries(st.sampled_from(URL_PARAMETERS), _hostile_text, max_size=8))
def test_any_url_value_is_applied_or_reported_never_fatal(query):
    selection = Selection()
    sites, models = ["DK-Sor", "US-Ha1"], ["ALPHA.v1", "BETA-X.v2.1"]
    problems = selection_from_query(selection, {k: [v.encode("utf-8", "surrogatepass")
                                                    if isinstance(v, str) else v]
                                                for k, v in query.items()},
                                    sites=sites, models=models, scenarios=[1, 2])
    # Every value either took effect or was reported; the selection always stays valid.
    assert selection.scenario in (1, 2)
    assert selection.site in ["", *sites]
    assert set(selection.models) <= set(models)
    assert all(isinstance(p, str) and len(p) < 400 for p in problems)
    if query.get("scenario", "1") not in ("1", "2") and "scenario" in query:
        assert any("scenario" in p for p in problems)


def test_overview_and_callmip_metrics_agree_on_v1_temporal_and_spatial_runs(tmp_path):
    from dashboard.metrics.tables import clear_memory_cache
    from dashboard.views.overview import OverviewView
    from tests.test_metrics_tables import write_v1_archive

    clear_memory_cache()
    root = write_v1_archive(tmp_path / "v1")  # Posterior 0.5, Temporal 0.75, Spatial 0.25
    service = get_service(root, refresh=True)
    view = OverviewView(selection=Selection(), service=service)
    shown = view.summary_frame(1, "NEE").set_index("model").loc["M.v1"]
    tables = _metrics_json(root, tmp_path)
    summary = pd.DataFrame(tables["summary"])
    cli = summary[(summary["group_by"] == "all") & (summary["model"] == "M")
                  & (summary["variable"] == "NEE")].iloc[0]
    assert shown["generalisation gap (Cal − Val)"] == pytest.approx(cli["generalisation_gap"])
    assert shown["generalisation gap (Cal − Val)"] == pytest.approx(0.25)  # Temporal left out
    assert shown["median misfit reduction, calibration sites"] == pytest.approx(0.5)
    assert shown["n sites (Cal)"] == 1 and shown["n sites (Val)"] == 1
    # The scorecard, like the tables' pooled summaries, leaves the other period out too.
    card = queries.scorecard_frame(service, 1, "NEE")
    assert sorted(card["site"]) == ["DK-Sor", "US-Ha1"]
    clear_memory_cache()


def test_one_prior_pairing_rule(service):
    archive = service.archive
    for row in archive.site_runs.itertuples(index=False):
        scenario, path = archive.prior_for(row.model_id, int(row.scenario), row.site)
        runs = archive.site_runs
        by_filter = runs[(runs["model_id"] == row.model_id) & (runs["site"] == row.site)
                         & (runs["stage"] == "Prior")]
        own = by_filter[by_filter["scenario"] == row.scenario]
        expected = own if not own.empty else by_filter[by_filter["scenario"] == 1]
        assert path == (expected["path"].iloc[0] if not expected.empty else None)
        prior = archive.prior_row(row.model_id, int(row.scenario), row.site)
        assert (prior is None) == (path is None)
        if prior is not None:
            assert prior["path"] == path and int(prior["scenario"]) == scenario
