"""Tests of ``callmip check`` through ``dashboard.cli.main``."""

from __future__ import annotations

import json
import shutil
from pathlib import Path

import netCDF4
import pytest

from dashboard.cli import main
from tests.conftest import DKSOR_OBS, OBS_DIR, TEMPLATE

TEMPLATE_NAME = TEMPLATE.name
REPORT_KEYS = ["path", "ok", "kind", "model", "version", "scenario", "site", "cal_val", "stage",
               "errors", "warnings"]


@pytest.fixture
def template(shared_data: Path, tmp_path: Path) -> Path:
    dst = tmp_path / "good" / TEMPLATE_NAME
    dst.parent.mkdir()
    shutil.copyfile(TEMPLATE, dst)
    return dst


@pytest.fixture
def broken(tmp_path: Path) -> Path:
    path = tmp_path / "bad" / "CLASSIC.v2_Phase1b_Scen1_DE-Hai_Cal_Prior.nc"
    path.parent.mkdir()
    path.write_text("this is not NetCDF\n")
    return path


def cut_copy(src: Path, dst: Path, n_time: int) -> Path:
    """The file with only its first ``n_time`` days (variable-by-variable copy)."""
    with netCDF4.Dataset(src) as a, netCDF4.Dataset(dst, "w", format=a.data_model) as b:
        b.setncatts({k: a.getncattr(k) for k in a.ncattrs()})
        for name, dim in a.dimensions.items():
            b.createDimension(name, n_time if name == "time" else len(dim))
        for name, var in a.variables.items():
            fill = var.getncattr("_FillValue") if "_FillValue" in var.ncattrs() else None
            out = b.createVariable(name, var.dtype, var.dimensions, fill_value=fill)
            out.setncatts({k: var.getncattr(k) for k in var.ncattrs() if k != "_FillValue"})
            data = var[...]
            out[...] = data[:n_time] if var.dimensions[:1] == ("time",) else data
    return dst


def run(capsys: pytest.CaptureFixture[str], *argv: str) -> tuple[int, str, str]:
    code = main(["check", *argv])
    out, err = capsys.readouterr()
    return code, out, err


def test_template_passes(template: Path, capsys: pytest.CaptureFixture[str]) -> None:
    code, out, _ = run(capsys, str(template))
    assert code == 0
    assert f"PASS {template}" in out
    assert "warning [units_variant]" in out and "cSoil" in out
    assert "1 of 1 files passed" in out


def test_broken_file_fails(broken: Path, capsys: pytest.CaptureFixture[str]) -> None:
    code, out, _ = run(capsys, str(broken))
    assert code == 1
    assert f"FAIL {broken}" in out
    assert "error [unreadable]" in out and broken.name in out


def test_missing_path_is_a_usage_error(tmp_path: Path, capsys: pytest.CaptureFixture[str]
                                       ) -> None:
    code, out, err = run(capsys, str(tmp_path / "nope.nc"))
    assert code == 2
    assert "nope.nc" in err


def test_obs_root_not_a_folder_is_a_usage_error(template: Path, tmp_path: Path,
                                                capsys: pytest.CaptureFixture[str]) -> None:
    code, _, err = run(capsys, str(template), "--obs-root", str(tmp_path / "missing"))
    assert code == 2 and "--obs-root" in err


def test_no_path_is_a_usage_error(capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["check"]) == 2


def test_json_output(template: Path, broken: Path, capsys: pytest.CaptureFixture[str]) -> None:
    code, out, _ = run(capsys, "--json", str(template), str(broken))
    assert code == 1
    rows = json.loads(out)
    assert [list(r) for r in rows] == [REPORT_KEYS, REPORT_KEYS]
    good, bad = rows
    assert good["path"] == str(template) and good["ok"] is True
    assert (good["kind"], good["model"], good["version"], good["scenario"], good["site"],
            good["cal_val"], good["stage"]) == ("site_run", "CLASSIC", "v2", 1, "DK-Sor", "Cal",
                                                "Prior")
    assert good["errors"] == []
    assert [w["code"] for w in good["warnings"]] == ["units_variant"]
    assert bad["ok"] is False
    assert [e["code"] for e in bad["errors"]] == ["unreadable"]
    assert all(list(item) == ["code", "message"] for item in bad["errors"])


def test_folder_reports_every_file(template: Path, broken: Path, tmp_path: Path,
                                   capsys: pytest.CaptureFixture[str]) -> None:
    folder = tmp_path / "submission"
    folder.mkdir()
    shutil.copyfile(template, folder / template.name)
    shutil.copyfile(broken, folder / broken.name)
    code, out, _ = run(capsys, str(folder))
    assert code == 1
    assert f"PASS {folder / template.name}" in out
    assert f"FAIL {folder / broken.name}" in out
    assert "1 of 2 files passed" in out


def test_obs_root_with_real_observations(template: Path, tmp_path: Path,
                                         capsys: pytest.CaptureFixture[str]) -> None:
    code, out, _ = run(capsys, "--obs-root", str(OBS_DIR), str(template))
    assert code == 0, out

    with netCDF4.Dataset(DKSOR_OBS) as nc:
        n_obs = len(nc.dimensions["time"])
    cut_dir = tmp_path / "cut"
    cut_dir.mkdir()
    cut = cut_copy(template, cut_dir / template.name, n_obs - 10)
    code, out, _ = run(capsys, "--json", "--obs-root", str(OBS_DIR), str(cut))
    assert code == 1
    (row,) = json.loads(out)
    length = [e for e in row["errors"] if e["code"] == "time_length"]
    assert length, row["errors"]
    assert str(n_obs - 10) in length[0]["message"] and str(n_obs) in length[0]["message"]


def test_files_that_are_not_submissions_are_skipped_not_failed(tmp_path, capsys):
    from dashboard.cli import main
    from tests.synthetic import write_site_run

    good = write_site_run(tmp_path, model="ALPHA", version="v1", site="DK-Sor", cal_val="Cal",
                          stage="Prior", start="1997-01-01", n_days=6574, seed=1)
    (tmp_path / "CO2_1700_2024_TRENDYv2025.txt").write_text("1700 277.0\n")
    (tmp_path / "notes.md").write_text("# run notes\n")
    assert main(["check", str(tmp_path)]) == 0
    out = capsys.readouterr().out
    assert "SKIP" in out and "CO2_1700_2024_TRENDYv2025.txt" in out
    assert "1 of 1 files passed; 2 skipped" in out
    assert main(["check", str(tmp_path), "--json"]) == 0
    reports = {Path(r["path"]).name: r for r in json.loads(capsys.readouterr().out)}
    assert reports["notes.md"]["ok"]
    assert [w["code"] for w in reports["notes.md"]["warnings"]] == ["skipped"]
    assert "skipped" not in [w["code"] for w in reports[good.name]["warnings"]]
    # A misnamed NetCDF file is still a failed submission, not skipped.
    (tmp_path / "my_run.nc").write_bytes(good.read_bytes())
    assert main(["check", str(tmp_path)]) == 1


def test_metrics_fails_with_a_message_when_no_run_can_be_scored(tmp_path, capsys,
                                                                 monkeypatch):
    from dashboard.cli import main

    monkeypatch.setenv("CALLMIP_CACHE_DIR", str(tmp_path / "cache"))
    (tmp_path / "ALPHA.v1_Phase1b_Scen1_DK-Sor_Cal_Prior.nc").write_bytes(b"CDF\x01 broken")
    (tmp_path / "ALPHA.v1_Phase1b_Scen1_DK-Sor_Cal_Posterior.nc").write_bytes(b"garbage")
    assert main(["metrics", str(tmp_path), "--format", "json"]) == 1
    err = capsys.readouterr().err
    assert "no site run" in err and "2 file(s) unreadable" in err
    assert "ALPHA.v1_Phase1b_Scen1_DK-Sor_Cal_Prior.nc" in err
