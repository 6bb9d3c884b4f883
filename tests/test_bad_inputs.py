"""Every case of the bad-input corpus through the loaders, ``callmip check``, the catalog, the
served app and the check page: a clear message naming the file, and the rest keeps working."""

from __future__ import annotations

import json
import time
import urllib.request

import numpy as np
import panel as pn
import pytest
from bokeh.document import Document
from hypothesis import given, settings
from hypothesis import strategies as st
from pyviz_comms import Comm

from dashboard.app import create_app
from dashboard.cli import main
from dashboard.server import start_server
from dashboard.service import get_service
from dashboard.state import Selection
from dashboard.views.check import CheckView
from dashboard.views.style import Look
from loaders.catalog import build_catalog
from loaders.naming import KINDS, format_name, parse_name
from loaders.readers import CalLMIPFileError, open_site_run
from tests.badfiles import HOSTILE, SITE, build_corpus
from tests.conftest import free_port

#: Longest message a participant should have to read about one problem.
MAX_MESSAGE = 1500


@pytest.fixture(scope="module")
def corpus(tmp_path_factory):
    root = tmp_path_factory.mktemp("corpus")
    return root, build_corpus(root)


@pytest.fixture(autouse=True)
def _dirs(tmp_path, monkeypatch):
    monkeypatch.setenv("CALLMIP_CACHE_DIR", str(tmp_path / "cache"))
    monkeypatch.setenv("CALLMIP_UPLOAD_DIR", str(tmp_path / "uploads"))


def _cases(corpus):
    return {c.key: c for c in corpus[1]}


CASE_KEYS = ["good", "truncated", "empty", "hdf5_garbage", "text_named_nc", "wrong_name",
             "wrong_stage_word", "attributes_contradict_name", "all_nan_variable",
             "half_hourly", "times_out_of_order", "duplicated_days", "megabyte_attribute",
             "html_attribute", "traversal_name", "traversal_name_windows"]


def test_the_corpus_has_every_case_of_the_issue(corpus):
    assert sorted(_cases(corpus)) == sorted(CASE_KEYS)


@pytest.mark.parametrize("key", CASE_KEYS)
def test_loaders_open_it_or_say_clearly_why_not(corpus, key):
    case = _cases(corpus)[key]
    try:
        ds = open_site_run(case.path)
    except CalLMIPFileError as exc:
        assert not case.readable, f"{key} should open: {exc}"
        message = str(exc)
        assert message.startswith(case.path.name) and len(message) < MAX_MESSAGE
        return
    assert case.readable, f"{key} opened but should have been refused"
    assert ds.sizes["time"] > 0 and "NEE" in ds
    if key == "all_nan_variable":
        assert np.isnan(ds["hfss"].values).all() and np.isfinite(ds["hfls"].values).any()


def test_repeated_and_unordered_days_are_aligned_on_dates(corpus):
    cases = _cases(corpus)
    dup = open_site_run(cases["duplicated_days"].path)
    assert dup.attrs["dropped_time_steps"] == 10
    shuffled = open_site_run(cases["times_out_of_order"].path)
    good = open_site_run(cases["good"].path)
    assert shuffled.indexes["time"].is_monotonic_increasing
    # The reversed block is read back in date order: the same values as the good file where
    # its days were not touched, and the reversed values on those days.
    np.testing.assert_array_equal(shuffled["time"].values[:100], good["time"].values[:100])
    with pytest.raises(CalLMIPFileError, match="is not daily"):
        open_site_run(cases["half_hourly"].path)


@pytest.mark.parametrize("key", CASE_KEYS)
def test_callmip_check_names_the_problem(corpus, key, capsys):
    root, _ = corpus
    case = _cases(corpus)[key]
    code = main(["check", str(case.path), "--json", "--obs-root", str(root / "obs")])
    (report,) = json.loads(capsys.readouterr().out)
    codes = [i["code"] for i in report["errors"] + report["warnings"]]
    assert "internal" not in codes, report
    assert set(case.codes) <= set(codes), (key, codes)
    if case.ok is not None:
        assert report["ok"] is case.ok and code == (0 if case.ok else 1)
    for item in report["errors"] + report["warnings"]:
        assert len(item["message"]) < MAX_MESSAGE, (key, item["code"])


def test_callmip_check_on_the_whole_corpus_reports_every_file(corpus, capsys):
    root, cases = corpus
    code = main(["check", str(root / "runs"), "--obs-root", str(root / "obs")])
    out = capsys.readouterr().out
    assert code == 1
    lines = [line for line in out.splitlines() if line.startswith(("PASS ", "FAIL "))]
    assert len(lines) == len(cases)
    n_pass = sum(line.startswith("PASS ") for line in lines)
    assert n_pass == sum(c.ok is True for c in cases) == 2  # the good file and one renamed
    assert f"{n_pass} of {len(cases)} files passed" in out


def test_the_catalog_lists_every_file_without_opening_it(corpus):
    root, cases = corpus
    catalog = build_catalog(root)
    assert len(catalog) == len(cases) + 1  # and the observation file
    unrecognised = catalog[catalog["kind"] == "unrecognised"]
    assert sorted(unrecognised["name"]) == sorted(
        [_cases(corpus)["wrong_name"].path.name, _cases(corpus)["wrong_stage_word"].path.name])
    assert unrecognised["reason"].str.len().gt(10).all()
    assert main(["catalog", str(root), "--json"]) == 0


def test_the_served_app_keeps_working_with_the_corpus_as_its_archive(corpus):
    root, cases = corpus
    service = get_service(root, refresh=True)
    tables = service.tables()
    assert not service.table_errors and "site_scores" in tables
    broken = service.broken_files()
    assert len(broken) >= 6  # the two unrecognised names and the unreadable files
    assert all(len(p) < MAX_MESSAGE for p in broken["problem"])
    assert any("is not daily" in p for p in broken["problem"])
    assert any("is truncated" in p for p in broken["problem"])
    for view in ("overview", "sites", "check"):
        app = create_app(str(root))
        app.selection.view = view
        app.selection.site = SITE
        root_model = pn.Column(*app.main.objects).get_root(Document(), comm=Comm())
        text = " ".join(str(getattr(m, "text", "")) for m in root_model.select(
            {"type": object}))
        assert "Traceback" not in text and HOSTILE not in text



def test_a_server_on_the_corpus_answers(corpus):
    root, _ = corpus
    port = free_port()
    server = start_server(str(root), port=port, address="127.0.0.1", threaded=True)
    try:
        for _ in range(100):
            try:
                with urllib.request.urlopen(f"http://127.0.0.1:{port}/liveness", timeout=5):
                    break
            except OSError:
                time.sleep(0.1)
        for query in ("", "?view=sites", "?view=check"):
            with urllib.request.urlopen(f"http://127.0.0.1:{port}/{query}", timeout=60) as r:
                body = r.read().decode()
                assert r.status == 200 and "Traceback" not in body
    finally:
        try:
            server.stop()
        except RuntimeError:
            pass


def test_the_check_page_reports_every_case_as_callmip_check_does(corpus):
    root, cases = corpus
    service = get_service(root, refresh=True)
    view = CheckView(selection=Selection(view="check"), service=service, look=Look())
    checked = []
    for case in cases:  # one at a time: several cases share a (valid) name
        (result,) = view.add_files({case.upload_name: case.path.read_bytes()})
        codes = result.report.error_codes + result.report.warning_codes
        assert "internal" not in codes and set(case.codes) <= set(codes), (case.key, codes)
        if case.ok is not None:
            assert result.report.ok is case.ok, case.key
        checked.append(result)
    folder = view.uploads.folder.resolve()
    assert len(view.uploads.files) == len(cases)
    assert all(f.path.resolve().is_relative_to(folder) for f in view.uploads.files)
    page = "".join(p.object for p in view.reports.objects)
    assert "<img src=x" not in page and "<script>" not in page
    assert str(folder) not in page and str(root) not in page


# --------------------------------------------------------------------------------------------
# Property-based: the name parser
# --------------------------------------------------------------------------------------------

MODELS = st.from_regex(r"\A[A-Za-z0-9][A-Za-z0-9+\-]{0,12}\Z")
VERSIONS = st.from_regex(r"\A[A-Za-z0-9][A-Za-z0-9.+\-]{0,8}\Z")
SITES = st.from_regex(r"\A[A-Z]{2}-[A-Za-z0-9]{3}\Z")


@settings(max_examples=300, deadline=None)
@given(st.text(max_size=120))
def test_parsing_any_text_never_raises_and_explains_itself(name):
    parsed = parse_name(name)
    assert parsed.kind in KINDS
    if parsed.kind == "unrecognised":
        assert parsed.reason
    elif parsed.convention in ("v2", "v1", "global", "obs_daily", "parameters"):
        assert format_name(parsed) == parsed.name  # what was parsed is what was written


@settings(max_examples=300, deadline=None)
@given(model=MODELS, version=VERSIONS, scenario=st.integers(1, 6), site=SITES,
       cal_val=st.sampled_from(["Cal", "Val"]), stage=st.sampled_from(["Prior", "Posterior"]),
       prefix=st.sampled_from(["", "../../", "/abs/dir/", "C:\\x\\"]))
def test_every_protocol_name_parses_back_to_its_parts(model, version, scenario, site, cal_val,
                                                      stage, prefix):
    name = f"{model}.{version}_Phase1b_Scen{scenario}_{site}_{cal_val}_{stage}.nc"
    parsed = parse_name(prefix + name)
    assert parsed.kind == "site_run", parsed.reason
    assert (parsed.model, parsed.version, parsed.scenario, parsed.site, parsed.cal_val,
            parsed.stage) == (model, version, scenario, site, cal_val, stage)
    assert parsed.name == name


@settings(max_examples=200, deadline=None)
@given(good=st.tuples(MODELS, VERSIONS, SITES), junk=st.text(min_size=1, max_size=3),
       where=st.integers(0, 200))
def test_a_corrupted_name_is_either_still_valid_or_explained(good, junk, where):
    model, version, site = good
    name = f"{model}.{version}_Phase1b_Scen1_{site}_Cal_Prior.nc"
    where = where % (len(name) + 1)
    parsed = parse_name(name[:where] + junk + name[where:])
    assert parsed.kind in KINDS
    assert parsed.kind != "unrecognised" or parsed.reason
