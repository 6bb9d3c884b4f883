"""Parse CalLMIP file names into structured records, without opening any file.

Every naming convention CalLMIP has used is recognised (protocol v2 §7, v1, the global runs of
§10, the daily observation files of Phase 1b, the PLUMBER2 originals and the Explorer's parameter
tables). A name that fits none of them is returned as ``kind="unrecognised"`` with a reason that
says which part is wrong, so that a participant knows what to rename. Parsing never raises.
"""

from __future__ import annotations

import re
from dataclasses import asdict, dataclass, field
from typing import Any, Literal

Kind = Literal["site_run", "global_run", "observation", "parameters", "model_info",
               "unrecognised"]

KINDS: tuple[str, ...] = ("site_run", "global_run", "observation", "parameters", "model_info",
                          "unrecognised")
STAGES: tuple[str, ...] = ("Prior", "Posterior", "Temporal", "Spatial")
CAL_VAL: tuple[str, ...] = ("Cal", "Val")

#: Model names may contain hyphens and plus signs (``CABLE-POP``); no dot, no underscore.
MODEL_RE = r"[A-Za-z0-9][A-Za-z0-9+\-]*"
#: Versions may contain dots (``v4.2``); no underscore.
VERSION_RE = r"[A-Za-z0-9][A-Za-z0-9.+\-]*"
#: FLUXNET site ids look like ``DK-Sor``.
SITE_RE = r"[A-Z]{2}-[A-Za-z0-9]{3}"

_V2 = re.compile(
    rf"^(?P<model>{MODEL_RE})\.(?P<version>{VERSION_RE})_Phase(?P<phase>1[ab])"
    rf"_Scen(?P<scenario>[0-9]{{1,3}})_(?P<site>{SITE_RE})_(?P<cal_val>Cal|Val)"
    r"_(?P<stage>Prior|Posterior)\.nc\Z"
)
_V1 = re.compile(
    rf"^(?P<model>{MODEL_RE})\.(?P<version>{VERSION_RE})_Expt(?P<scenario>[0-9]{{1,3}})"
    rf"_(?P<site>{SITE_RE})_(?P<cal_val>Cal|Val)_(?P<stage>Prior|Posterior|Temporal|Spatial)\.nc\Z"
)
_GLOBAL = re.compile(
    rf"^(?P<model>{MODEL_RE})\.(?P<version>{VERSION_RE})_global"
    r"_(?P<resolution>[A-Za-z0-9][A-Za-z0-9.]*)"
    r"_(?P<frequency>[A-Za-z]+)_(?P<year_start>[0-9]{4})-(?P<year_end>[0-9]{4})"
    r"_(?P<stage>Prior|Posterior)\.nc\Z"
)
_OBS_DAILY = re.compile(
    rf"^(?P<site>{SITE_RE})_daily_aggregated_(?P<year_start>[0-9]{{4}})-(?P<year_end>[0-9]{{4}})"
    r"_FLUXNET2015_Flux\.nc\Z"
)
_PLUMBER2 = re.compile(
    rf"^(?P<site>{SITE_RE})_(?P<year_start>[0-9]{{4}})-(?P<year_end>[0-9]{{4}})"
    r"_(?P<collection>FLUXNET2015|LaThuile|OzFlux)_(?P<filetype>Met|Flux)\.nc\Z"
)
_PARAMETERS = re.compile(
    rf"^(?P<model>{MODEL_RE})\.(?P<version>{VERSION_RE})_Phase(?P<phase>1[ab])"
    r"_Scen(?P<scenario>[0-9]{1,3})_parameters\.csv\Z"
)
#: The model information table of protocol v2 §12 (:mod:`loaders.model_info`).
_MODEL_INFO = re.compile(
    rf"^(?P<model>{MODEL_RE})\.(?P<version>{VERSION_RE})_model_info\.(?P<ext>yaml|yml|json)\Z"
)

FREQUENCIES = ("daily", "monthly", "annual", "yearly")


@dataclass(frozen=True)
class ParsedName:
    """What a file name says about the file.

    Attributes
    ----------
    name : str
        The bare file name that was parsed.
    kind : str
        One of ``site_run``, ``global_run``, ``observation``, ``parameters``, ``unrecognised``.
    convention : str or None
        Which naming convention matched: ``v2``, ``v1``, ``global``, ``obs_daily``,
        ``plumber2``, ``parameters``.
    model, version, phase, site, cal_val, stage : str or None
        Fields parsed from the name (``None`` where the convention has no such field).
    scenario : int or None
        The calibration scenario (``Scen<N>``) or v1 experiment (``Expt<N>``) number.
    resolution, frequency : str or None
        For global runs.
    year_start, year_end : int or None
        Years in the name (global runs and observation files).
    collection : str or None
        For PLUMBER2 originals: ``FLUXNET2015``, ``LaThuile`` or ``OzFlux``.
    reason : str or None
        Why an unrecognised name fits no convention (``None`` otherwise).
    """

    name: str
    kind: str
    convention: str | None = None
    model: str | None = None
    version: str | None = None
    phase: str | None = None
    scenario: int | None = None
    site: str | None = None
    cal_val: str | None = None
    stage: str | None = None
    resolution: str | None = None
    frequency: str | None = None
    year_start: int | None = None
    year_end: int | None = None
    collection: str | None = None
    reason: str | None = None
    extra: dict[str, Any] = field(default_factory=dict, compare=False, repr=False)

    def to_dict(self) -> dict[str, Any]:
        """Return the record as a plain dict (without ``extra``)."""
        d = asdict(self)
        d.pop("extra", None)
        return d

    @property
    def model_id(self) -> str | None:
        """``<model>.<version>`` as written in the ``Model`` global attribute."""
        if self.model is None:
            return None
        return f"{self.model}.{self.version}"


def _int(value: str | None) -> int | None:
    return int(value) if value is not None else None


def parse_name(name: str) -> ParsedName:
    """Parse one file name (a bare name or a path; only the last component is used).

    Parameters
    ----------
    name : str
        File name or path. Never opened.

    Returns
    -------
    ParsedName
        The parsed fields; ``kind == "unrecognised"`` with a ``reason`` when no convention fits.

    Examples
    --------
    >>> parse_name("CLASSIC.v2_Phase1b_Scen1_DK-Sor_Cal_Prior.nc").stage
    'Prior'
    """
    try:
        base = str(name).replace("\\", "/").rsplit("/", 1)[-1]
    except Exception:  # pragma: no cover - str() of anything should work
        return ParsedName(name=repr(name), kind="unrecognised", reason="not a file name")

    if m := _V2.match(base):
        g = m.groupdict()
        return ParsedName(
            name=base, kind="site_run", convention="v2", model=g["model"], version=g["version"],
            phase=f"Phase{g['phase']}", scenario=int(g["scenario"]), site=g["site"],
            cal_val=g["cal_val"], stage=g["stage"],
        )
    if m := _V1.match(base):
        g = m.groupdict()
        return ParsedName(
            name=base, kind="site_run", convention="v1", model=g["model"], version=g["version"],
            phase="Phase1", scenario=int(g["scenario"]), site=g["site"], cal_val=g["cal_val"],
            stage=g["stage"],
        )
    if m := _GLOBAL.match(base):
        g = m.groupdict()
        return ParsedName(
            name=base, kind="global_run", convention="global", model=g["model"],
            version=g["version"], resolution=g["resolution"], frequency=g["frequency"],
            year_start=_int(g["year_start"]), year_end=_int(g["year_end"]), stage=g["stage"],
        )
    if m := _OBS_DAILY.match(base):
        g = m.groupdict()
        return ParsedName(
            name=base, kind="observation", convention="obs_daily", site=g["site"],
            year_start=_int(g["year_start"]), year_end=_int(g["year_end"]),
            collection="FLUXNET2015",
        )
    if m := _PLUMBER2.match(base):
        g = m.groupdict()
        if g["filetype"] == "Met":
            return ParsedName(
                name=base, kind="unrecognised", convention="plumber2", site=g["site"],
                year_start=_int(g["year_start"]), year_end=_int(g["year_end"]),
                collection=g["collection"],
                reason="PLUMBER2 meteorological forcing file: not used by the Explorer",
            )
        return ParsedName(
            name=base, kind="observation", convention="plumber2", site=g["site"],
            year_start=_int(g["year_start"]), year_end=_int(g["year_end"]),
            collection=g["collection"],
        )
    if m := _PARAMETERS.match(base):
        g = m.groupdict()
        return ParsedName(
            name=base, kind="parameters", convention="parameters", model=g["model"],
            version=g["version"], phase=f"Phase{g['phase']}", scenario=int(g["scenario"]),
        )
    if m := _MODEL_INFO.match(base):
        g = m.groupdict()
        return ParsedName(
            name=base, kind="model_info", convention="model_info", model=g["model"],
            version=g["version"], extra={"ext": g["ext"]},
        )
    return ParsedName(name=base, kind="unrecognised", reason=diagnose_name(base))


def format_name(parsed: ParsedName) -> str:
    """Write the file name that :func:`parse_name` would parse into ``parsed``.

    Parameters
    ----------
    parsed : ParsedName
        A recognised name.

    Returns
    -------
    str
        The file name.

    Raises
    ------
    ValueError
        If ``parsed`` is unrecognised or lacks fields its convention needs.
    """
    p = parsed
    c = p.convention
    if c == "v2":
        return (f"{p.model}.{p.version}_{p.phase}_Scen{p.scenario}_{p.site}_{p.cal_val}"
                f"_{p.stage}.nc")
    if c == "v1":
        return f"{p.model}.{p.version}_Expt{p.scenario}_{p.site}_{p.cal_val}_{p.stage}.nc"
    if c == "global":
        return (f"{p.model}.{p.version}_global_{p.resolution}_{p.frequency}"
                f"_{p.year_start:04d}-{p.year_end:04d}_{p.stage}.nc")
    if c == "obs_daily":
        return f"{p.site}_daily_aggregated_{p.year_start:04d}-{p.year_end:04d}_FLUXNET2015_Flux.nc"
    if c == "plumber2":
        filetype = "Flux" if p.kind == "observation" else "Met"
        return f"{p.site}_{p.year_start:04d}-{p.year_end:04d}_{p.collection}_{filetype}.nc"
    if c == "parameters":
        return f"{p.model}.{p.version}_{p.phase}_Scen{p.scenario}_parameters.csv"
    if c == "model_info":
        return f"{p.model}.{p.version}_model_info.{p.extra.get('ext', 'yaml')}"
    raise ValueError(f"cannot format a name of convention {c!r} ({p.name!r})")


def site_run_name(model: str, version: str, scenario: int, site: str, cal_val: str,
                  stage: str, phase: str = "Phase1b") -> str:
    """Return the protocol v2 file name of a site run."""
    return f"{model}.{version}_{phase}_Scen{scenario}_{site}_{cal_val}_{stage}.nc"


def _diagnose_site_run(parts: list[str]) -> str:
    expected = "<model>.<version>_Phase1b_Scen<N>_<Site>_<Cal|Val>_<Prior|Posterior>.nc"
    if len(parts) == 5 and not any(re.fullmatch(r"Scen[0-9]{1,3}", p) for p in parts):
        return ("the Scen<N> part (calibration scenario number) is missing; expected "
                f"{expected}")
    if len(parts) != 6:
        return (f"looks like a v2 site run but has {len(parts)} underscore-separated parts "
                f"instead of 6; expected {expected}")
    head, phase, scen, site, cal_val, stage = parts
    if "." not in head:
        return f"'{head}' should be <model>.<version> (model and version joined by a dot)"
    model, version = head.split(".", 1)
    if not re.fullmatch(MODEL_RE, model):
        return f"model name '{model}' may only contain letters, digits, '-' and '+'"
    if not re.fullmatch(VERSION_RE, version):
        return f"model version '{version}' may only contain letters, digits, '.', '-' and '+'"
    if not re.fullmatch(r"Phase1[ab]", phase):
        return f"'{phase}' should be Phase1b (or Phase1a)"
    if not re.fullmatch(r"Scen[0-9]{1,3}", scen):
        return f"'{scen}' should be Scen<N> with N the calibration scenario number"
    if not re.fullmatch(SITE_RE, site):
        return f"'{site}' is not a FLUXNET site id such as DK-Sor"
    if cal_val not in CAL_VAL:
        return f"'{cal_val}' should be Cal or Val"
    if stage not in ("Prior", "Posterior"):
        return f"'{stage}' should be Prior or Posterior"
    return f"does not match {expected}"  # pragma: no cover - all parts were checked


def diagnose_name(base: str) -> str:
    """Explain why ``base`` fits no CalLMIP naming convention.

    Parameters
    ----------
    base : str
        A bare file name that :func:`parse_name` did not recognise.

    Returns
    -------
    str
        A one-line human-readable reason naming the offending part.
    """
    if not base:
        return "empty file name"
    lower = base.lower()
    if base != base.strip() or any(ord(c) < 32 for c in base):
        return "the name contains white space or control characters at its ends or inside"
    if "model_info" in lower:
        return ("model information files must be named <model>.<version>_model_info.yaml "
                "(or .yml, .json)")
    if not (lower.endswith(".nc") or lower.endswith(".csv")):
        last = base.rsplit(".", 1)[-1] if "." in base else ""
        ext = last if last and "_" not in last and len(last) <= 6 else ""
        return (f"extension '.{ext}' is not .nc (NetCDF) or .csv (parameter table)" if ext
                else "no .nc extension")
    if lower.endswith(".csv"):
        if base.endswith("_parameters.csv"):
            return ("parameter table names must be <model>.<version>_Phase1b_Scen<N>"
                    "_parameters.csv")
        return ("CSV files must be parameter tables named "
                "<model>.<version>_Phase1b_Scen<N>_parameters.csv")
    if not base.endswith(".nc"):
        return "extension must be lower-case .nc"
    stem = base[:-3]
    parts = stem.split("_")
    if "_global_" in stem:
        return ("global run names must be <model>.<version>_global_<resolution>_<frequency>"
                "_<YYYY-YYYY>_<Prior|Posterior>.nc")
    if "_Expt" in stem:
        return ("v1 site run names must be <model>.<version>_Expt<N>_<Site>_<Cal|Val>"
                "_<Prior|Posterior|Temporal|Spatial>.nc")
    if "daily_aggregated" in stem:
        return "observation names must be <Site>_daily_aggregated_<Y0>-<Y1>_FLUXNET2015_Flux.nc"
    if len(parts) >= 2 and parts[1].lower().startswith("phase") or "_Scen" in stem:
        return _diagnose_site_run(parts)
    return ("fits no CalLMIP naming convention (v2 site run "
            "<model>.<version>_Phase1b_Scen<N>_<Site>_<Cal|Val>_<Prior|Posterior>.nc, v1, "
            "global, observation or parameter table)")
