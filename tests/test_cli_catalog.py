"""``callmip catalog`` (dashboard.cli.main) in JSON and text modes."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from dashboard.cli import main
from loaders.naming import KINDS
from tests.synthetic import write_garbage

TREE = {
    "CLASSIC/CLASSIC.v2_Phase1b_Scen1_DK-Sor_Cal_Prior.nc": "site_run",
    "CABLE-POP/CABLE-POP.v4.2_Phase1b_Scen3_US-Ton_Val_Posterior.nc": "site_run",
    "ORCHIDEE.v3_Expt1_DK-Sor_Cal_Temporal.nc": "site_run",
    "global/JULES.v7.4_global_0.5deg_monthly_2001-2020_Posterior.nc": "global_run",
    "obs/DK-Sor_daily_aggregated_1997-2014_FLUXNET2015_Flux.nc": "observation",
    "obs/AU-Tum_2002-2017_OzFlux_Flux.nc": "observation",
    "CABLE-POP.v4.2_Phase1b_Scen1_parameters.csv": "parameters",
    "CLASSIC/CLASSIC.v2_Phase1b_Scen1_DK-Sor_Cal_Post.nc": "unrecognised",
    "CLASSIC/CLASSICv2_Phase1b_Scen1_DK-Sor_Cal_Prior.nc": "unrecognised",
    "notes.txt": "unrecognised",
}

REQUIRED_KEYS = {"path", "kind", "model", "version", "phase", "scenario", "site", "cal_val",
                 "stage", "reason"}


@pytest.fixture
def tree(tmp_path) -> Path:
    for rel in TREE:
        write_garbage(tmp_path / rel, b"")
    write_garbage(tmp_path / ".hidden.nc", b"")
    return tmp_path


def _json_rows(capsys, root) -> list[dict]:
    status = main(["catalog", str(root), "--json"])
    out = capsys.readouterr()
    assert status == 0, out.err
    return json.loads(out.out)


def test_json_rows_have_the_contract_keys_and_types(tree, capsys):
    rows = _json_rows(capsys, tree)
    assert isinstance(rows, list) and len(rows) == len(TREE)
    by_rel = {str(Path(r["path"]).relative_to(tree)): r for r in rows}
    assert set(by_rel) == set(TREE)
    for rel, row in by_rel.items():
        assert REQUIRED_KEYS <= set(row), rel
        assert row["kind"] in KINDS
        assert row["kind"] == TREE[rel], rel
        if row["kind"] in ("site_run", "parameters"):
            assert type(row["scenario"]) is int
        else:
            assert row["scenario"] is None
        if row["kind"] == "unrecognised":
            assert isinstance(row["reason"], str) and row["reason"], rel
        else:
            assert row["reason"] is None


def test_json_fields_of_a_v2_run(tree, capsys):
    rows = _json_rows(capsys, tree)
    row = next(r for r in rows if r["path"].endswith("Scen3_US-Ton_Val_Posterior.nc"))
    assert {k: row[k] for k in REQUIRED_KEYS - {"path"}} == {
        "kind": "site_run", "model": "CABLE-POP", "version": "v4.2", "phase": "Phase1b",
        "scenario": 3, "site": "US-Ton", "cal_val": "Val", "stage": "Posterior", "reason": None,
    }
    bad = next(r for r in rows if r["path"].endswith("Cal_Post.nc"))
    assert "'Post'" in bad["reason"]


def test_json_on_an_empty_folder_is_an_empty_list(tmp_path, capsys):
    assert _json_rows(capsys, tmp_path) == []


def test_missing_root_exits_2_with_a_message(tmp_path, capsys):
    missing = tmp_path / "no-such-folder"
    status = main(["catalog", str(missing), "--json"])
    out = capsys.readouterr()
    assert status == 2
    assert out.out == ""
    assert "no-such-folder" in out.err
    assert "does not exist" in out.err
    assert "Traceback" not in out.err


def test_text_mode_lists_files_counts_and_unrecognised_reasons(tree, capsys):
    status = main(["catalog", str(tree)])
    out = capsys.readouterr().out
    assert status == 0
    for rel in TREE:
        assert Path(rel).name in out
    assert ".hidden.nc" not in out
    assert "(10 files)" in out
    assert "3 site_run" in out and "3 unrecognised" in out
    lines = [line for line in out.splitlines() if line.startswith("unrecognised: ")]
    assert len(lines) == 3
    post = next(line for line in lines if "Cal_Post.nc" in line)
    assert "'Post' should be Prior or Posterior" in post
    dot = next(line for line in lines if "CLASSICv2_" in line)
    assert "'CLASSICv2'" in dot
    txt = next(line for line in lines if "notes.txt" in line)
    assert "'.txt'" in txt


def test_text_mode_on_empty_folder(tmp_path, capsys):
    assert main(["catalog", str(tmp_path)]) == 0
    assert "no files under" in capsys.readouterr().out


def test_catalog_without_root_is_a_usage_error(capsys):
    assert main(["catalog"]) == 2
    assert "data_root" in capsys.readouterr().err
