"""The bad-input corpus: files wrong in every way a submission has been, built at test time.

:func:`build_corpus` writes each case into a folder (a test's ``tmp_path``) beside one good
run and the observations of its site, and returns the cases with what ``callmip check`` must
say about each. Nothing is stored in the repository; everything is generated from
:mod:`tests.synthetic` in about a second.

Cases (issue #14): truncated, empty and HDF5-garbage files, text named ``.nc``; wrong names and
attributes that contradict the name; an all-NaN variable, half-hourly data, times out of order,
duplicated days; 1 MB attribute strings, HTML in attributes, and path-traversal names (the name
a browser sends; on disk the file has a safe name).
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import netCDF4
import numpy as np

from tests.synthetic import write_daily_obs, write_garbage, write_site_run, write_truncated

SITE, LAT, LON = "DK-Sor", 55.4859, 11.6446
MODEL, VERSION = "BADCASE", "v1"
HOSTILE = "<img src=x onerror=alert(1)><script>alert('x')</script>"
MEGABYTE_TEXT = "A" * 1_000_000 + "<b>end</b>"


@dataclass(frozen=True)
class Case:
    """One corpus file.

    Attributes
    ----------
    key : str
        Short identifier (test ids).
    path : pathlib.Path
        The file on disk.
    codes : tuple of str
        Codes ``callmip check`` must report (as errors or warnings) for it.
    ok : bool or None
        Whether the check must pass (``None``: not asserted).
    upload_name : str
        The name a browser sends for it (a traversal name for the traversal cases).
    readable : bool
        Whether :func:`loaders.readers.open_site_run` must open it (else a clear
        ``CalLMIPFileError``).
    """

    key: str
    path: Path
    codes: tuple[str, ...]
    ok: bool | None
    upload_name: str
    readable: bool


def run_name(stage: str = "Prior", model: str = MODEL) -> str:
    """The protocol name of a corpus run."""
    return f"{model}.{VERSION}_Phase1b_Scen1_{SITE}_Cal_{stage}.nc"


def _good(folder: Path, name: str, seed: int = 0, n_days: int = 731) -> Path:
    return write_site_run(folder, model=MODEL, version=VERSION, site=SITE, cal_val="Cal",
                          stage="Prior", start="2000-01-01", n_days=n_days, lat=LAT, lon=LON,
                          seed=seed, name=name)


def build_corpus(root: Path) -> list[Case]:
    """Write the corpus under ``root`` (``runs/`` and ``obs/``) and return its cases."""
    root = Path(root)
    obs = root / "obs"
    write_daily_obs(obs, site=SITE, year_start=2000, year_end=2001, lat=LAT, lon=LON, seed=1)
    cases: list[Case] = []

    def add(key: str, path: Path, codes: tuple[str, ...] = (), ok: bool | None = False,
            upload_name: str | None = None, readable: bool = False) -> None:
        cases.append(Case(key, path, codes, ok, upload_name or path.name, readable))

    def folder(key: str) -> Path:
        # One folder per case: several cases carry the same (valid) file name.
        path = root / "runs" / key
        path.mkdir(parents=True, exist_ok=True)
        return path

    good = _good(folder("good"), run_name())
    add("good", good, ok=True, readable=True)

    # -- unreadable files -------------------------------------------------------------------
    add("truncated", write_truncated(good, folder("truncated") / run_name(), 0.5),
        ("unreadable",))
    add("empty", write_garbage(folder("empty") / run_name(), b""), ("unreadable",))
    add("hdf5_garbage", write_garbage(
        folder("hdf5_garbage") / run_name(),
        b"\x89HDF\r\n\x1a\n" + np.random.default_rng(0).bytes(4000)), ("unreadable",))
    add("text_named_nc", write_garbage(folder("text_named_nc") / run_name(),
                                       b"model output, see attached spreadsheet\n" * 20),
        ("unreadable",))

    # -- names and attributes -----------------------------------------------------------------
    add("wrong_name", _good(folder("wrong_name"), "BADCASE_v1_Scen1_DK-Sor_prior.nc"),
        ("name",), readable=True)
    add("wrong_stage_word", _good(folder("wrong_stage_word"),
                                  f"{MODEL}.{VERSION}_Phase1b_Scen1_{SITE}_Cal_Post.nc"),
        ("name",), readable=True)
    contradicts = _good(folder("contradicts"), run_name())
    with netCDF4.Dataset(contradicts, "a") as nc:
        nc.setncattr("Calibration_stage", "Posterior")
        nc.setncattr("Model", "OTHER.v9")
    add("attributes_contradict_name", contradicts, ("attribute_mismatch",), readable=True)

    # -- values and time axes -------------------------------------------------------------------
    all_nan = _good(folder("all_nan"), run_name())
    with netCDF4.Dataset(all_nan, "a") as nc:
        nc["hfss"][:] = np.ma.masked_all(nc["hfss"].shape)
    add("all_nan_variable", all_nan, ("all_missing",), readable=True)

    half_hourly = _good(folder("half_hourly"), run_name(), n_days=2 * 48)
    with netCDF4.Dataset(half_hourly, "a") as nc:
        nc["time"][:] = np.arange(96) / 48.0 + 1.0
    add("half_hourly", half_hourly, ("time_step",))

    shuffled = _good(folder("times_out_of_order"), run_name())
    with netCDF4.Dataset(shuffled, "a") as nc:
        values = np.array(nc["time"][:])
        values[100:200] = values[100:200][::-1]
        nc["time"][:] = values
    add("times_out_of_order", shuffled, ("time_step",), readable=True)

    duplicated = _good(folder("duplicated_days"), run_name())
    with netCDF4.Dataset(duplicated, "a") as nc:
        values = np.array(nc["time"][:])
        values[10:20] = values[0:10]
        nc["time"][:] = values
    add("duplicated_days", duplicated, ("time_step",), readable=True)

    # -- hostile text ---------------------------------------------------------------------------
    huge = _good(folder("megabyte_attribute"), run_name())
    with netCDF4.Dataset(huge, "a") as nc:
        nc.setncattr("title", MEGABYTE_TEXT)
        nc.setncattr("Model", MEGABYTE_TEXT)
        nc["hfls"].setncattr("units", MEGABYTE_TEXT)
    add("megabyte_attribute", huge, ("attribute_mismatch", "units"), readable=False)

    html = _good(folder("html_attribute"), run_name())
    with netCDF4.Dataset(html, "a") as nc:
        nc.setncattr("title", HOSTILE)
        nc.setncattr("Model", HOSTILE)
        nc["hfss"].setncattr("units", HOSTILE)
    add("html_attribute", html, ("attribute_mismatch", "units"), readable=False)

    traversal = _good(folder("traversal"), run_name(stage="Posterior"))
    # A prior's content under a posterior's name: attributes disagree, uncertainties missing.
    add("traversal_name", traversal, ("attribute_mismatch", "uncertainty_missing"),
        upload_name="../../" + traversal.name, readable=True)
    windows = _good(folder("traversal_windows"), run_name())
    add("traversal_name_windows", windows, (), ok=True,
        upload_name="..\\..\\..\\Windows\\" + windows.name, readable=True)
    return cases
