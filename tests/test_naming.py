"""File-name parsing (loaders.naming): every CalLMIP convention, diagnostics, properties."""

from __future__ import annotations

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from loaders.naming import (
    KINDS,
    MODEL_RE,
    SITE_RE,
    VERSION_RE,
    ParsedName,
    format_name,
    parse_name,
)

# ---------------------------------------------------------------------------------------------
# Real examples → exact fields
# ---------------------------------------------------------------------------------------------

NONE_FIELDS = ("model", "version", "phase", "scenario", "site", "cal_val", "stage", "resolution",
               "frequency", "year_start", "year_end", "collection", "reason")

EXAMPLES = {
    "CLASSIC.v2_Phase1b_Scen1_DK-Sor_Cal_Prior.nc": dict(
        kind="site_run", convention="v2", model="CLASSIC", version="v2", phase="Phase1b",
        scenario=1, site="DK-Sor", cal_val="Cal", stage="Prior"),
    "CABLE-POP.v4.2_Phase1b_Scen3_US-Ton_Val_Posterior.nc": dict(
        kind="site_run", convention="v2", model="CABLE-POP", version="v4.2", phase="Phase1b",
        scenario=3, site="US-Ton", cal_val="Val", stage="Posterior"),
    "ORCHIDEE.v3_Expt1_DK-Sor_Cal_Temporal.nc": dict(
        kind="site_run", convention="v1", model="ORCHIDEE", version="v3", phase="Phase1",
        scenario=1, site="DK-Sor", cal_val="Cal", stage="Temporal"),
    "ORCHIDEE.v3_Expt2_FI-Hyy_Val_Spatial.nc": dict(
        kind="site_run", convention="v1", model="ORCHIDEE", version="v3", phase="Phase1",
        scenario=2, site="FI-Hyy", cal_val="Val", stage="Spatial"),
    "JULES.v7.4_global_0.5deg_monthly_2001-2020_Posterior.nc": dict(
        kind="global_run", convention="global", model="JULES", version="v7.4",
        resolution="0.5deg", frequency="monthly", year_start=2001, year_end=2020,
        stage="Posterior"),
    "DK-Sor_daily_aggregated_1997-2014_FLUXNET2015_Flux.nc": dict(
        kind="observation", convention="obs_daily", site="DK-Sor", year_start=1997,
        year_end=2014, collection="FLUXNET2015"),
    "AU-Tum_2002-2017_OzFlux_Flux.nc": dict(
        kind="observation", convention="plumber2", site="AU-Tum", year_start=2002,
        year_end=2017, collection="OzFlux"),
    "US-Ha1_1992-2012_LaThuile_Flux.nc": dict(
        kind="observation", convention="plumber2", site="US-Ha1", year_start=1992,
        year_end=2012, collection="LaThuile"),
    "CABLE-POP.v4.2_Phase1b_Scen1_parameters.csv": dict(
        kind="parameters", convention="parameters", model="CABLE-POP", version="v4.2",
        phase="Phase1b", scenario=1),
}


@pytest.mark.parametrize("name", list(EXAMPLES))
def test_real_examples_parse_to_exact_fields(name):
    expected = EXAMPLES[name]
    parsed = parse_name(name)
    assert isinstance(parsed, ParsedName)
    assert parsed.name == name
    for key, value in expected.items():
        assert getattr(parsed, key) == value, key
    # Every field the convention does not have stays None (and a recognised name has no reason).
    for key in NONE_FIELDS:
        if key not in expected:
            assert getattr(parsed, key) is None, key
    # scenario and years are real ints, not strings
    for key in ("scenario", "year_start", "year_end"):
        if key in expected:
            assert type(getattr(parsed, key)) is int


@pytest.mark.parametrize("name", list(EXAMPLES))
def test_real_examples_round_trip(name):
    assert format_name(parse_name(name)) == name


def test_model_id_joins_model_and_version():
    assert parse_name("CABLE-POP.v4.2_Phase1b_Scen3_US-Ton_Val_Posterior.nc").model_id == \
        "CABLE-POP.v4.2"
    assert parse_name("DK-Sor_daily_aggregated_1997-2014_FLUXNET2015_Flux.nc").model_id is None


@pytest.mark.parametrize("prefix", ["/data/callmip/", "s3://bucket/sub/", "C:\\runs\\", "a/b/"])
def test_only_the_last_path_component_is_parsed(prefix):
    name = "CLASSIC.v2_Phase1b_Scen1_DK-Sor_Cal_Prior.nc"
    parsed = parse_name(prefix + name)
    assert parsed == parse_name(name)
    assert parsed.name == name


def test_to_dict_has_every_field_but_extra():
    d = parse_name("CLASSIC.v2_Phase1b_Scen1_DK-Sor_Cal_Prior.nc").to_dict()
    assert "extra" not in d
    assert d["site"] == "DK-Sor" and d["scenario"] == 1 and d["kind"] == "site_run"


def test_plumber2_met_file_is_recognised_but_not_used():
    parsed = parse_name("AU-Tum_2002-2017_OzFlux_Met.nc")
    assert parsed.kind == "unrecognised"
    assert parsed.site == "AU-Tum"
    assert "Met" in parsed.reason or "meteorological" in parsed.reason


def test_format_name_refuses_unrecognised():
    with pytest.raises(ValueError, match="README.md"):
        format_name(parse_name("README.md"))


# ---------------------------------------------------------------------------------------------
# Unrecognised names: the reason names the bad part
# ---------------------------------------------------------------------------------------------

BAD = {
    # bad stage
    "CLASSIC.v2_Phase1b_Scen1_DK-Sor_Cal_Post.nc": ["'Post'", "Prior", "Posterior"],
    # missing version dot
    "CLASSICv2_Phase1b_Scen1_DK-Sor_Cal_Prior.nc": ["'CLASSICv2'", "<model>.<version>"],
    # bad site id
    "CLASSIC.v2_Phase1b_Scen1_DKSor_Cal_Prior.nc": ["'DKSor'", "site"],
    "CLASSIC.v2_Phase1b_Scen1_dk-sor_Cal_Prior.nc": ["'dk-sor'", "site"],
    # wrong extension
    "CLASSIC.v2_Phase1b_Scen1_DK-Sor_Cal_Prior.txt": ["'.txt'"],
    "CLASSIC.v2_Phase1b_Scen1_DK-Sor_Cal_Prior.nc4": ["'.nc4'"],
    "CLASSIC.v2_Phase1b_Scen1_DK-Sor_Cal_Prior.NC": ["lower-case", ".nc"],
    # other parts
    "CLASSIC.v2_Phase1b_Sc1_DK-Sor_Cal_Prior.nc": ["'Sc1'", "Scen<N>"],
    "CLASSIC.v2_Phase2_Scen1_DK-Sor_Cal_Prior.nc": ["'Phase2'", "Phase1b"],
    "CLASSIC.v2_Phase1b_Scen1_DK-Sor_Calibration_Prior.nc": ["'Calibration'", "Cal or Val"],
    "CLASSIC.v2_Phase1b_Scen1_DK-Sor_Prior_Cal.nc": ["'Prior'", "Cal or Val"],
    "CLASSIC_v2_Phase1b_Scen1_DK-Sor_Cal_Prior.nc": ["7", "6"],
    "ORCHIDEE.v3_Expt1_DK-Sor_Cal_Temp.nc": ["Expt<N>", "Temporal"],
    "JULES.v7.4_global_0.5deg_monthly_2001-20_Posterior.nc": ["global", "YYYY-YYYY"],
    "DK-Sor_daily_aggregated_1997-2014_FLUXNET2015.nc": ["daily_aggregated", "_Flux.nc"],
    "CABLE-POP.v4.2_Scen1_parameters.csv": ["_parameters.csv", "Phase1b"],
    "notes.csv": ["parameter"],
    "README.md": ["'.md'"],
    "": ["empty"],
}


@pytest.mark.parametrize("name", list(BAD))
def test_unrecognised_names_give_a_reason_naming_the_bad_part(name):
    parsed = parse_name(name)
    assert parsed.kind == "unrecognised"
    assert parsed.convention is None
    assert parsed.model is None and parsed.site is None and parsed.stage is None
    for fragment in BAD[name]:
        assert fragment in parsed.reason, (fragment, parsed.reason)


def test_missing_scen_part_is_named():
    reason = parse_name("CLASSIC.v2_Phase1b_DK-Sor_Cal_Prior.nc").reason
    assert "Scen" in reason and "missing" in reason.lower()
    assert "underscore-separated parts" not in reason


def test_missing_extension_is_reported_as_missing():
    reason = parse_name("CLASSIC.v2_Phase1b_Scen1_DK-Sor_Cal_Prior").reason
    assert ".nc" in reason
    assert "v2_Phase1b" not in reason


@pytest.mark.parametrize("resolution", ["N96", "T63", "r360x180"])
def test_global_resolution_may_be_a_grid_name(resolution):
    name = f"JULES.v7.4_global_{resolution}_monthly_2001-2020_Posterior.nc"
    parsed = parse_name(name)
    assert parsed.kind == "global_run"
    assert parsed.resolution == resolution


@pytest.mark.parametrize("name", list(EXAMPLES))
def test_trailing_newline_is_not_a_valid_name(name):
    assert parse_name(name + "\n").kind == "unrecognised"


# ---------------------------------------------------------------------------------------------
# Property-based tests
# ---------------------------------------------------------------------------------------------

#: Same examples on every run (the suite must be deterministic), no example database on disk.
DETERMINISTIC = dict(deadline=None, derandomize=True, database=None)

models = st.from_regex(rf"\A{MODEL_RE}\Z", fullmatch=True)
versions = st.from_regex(rf"\A{VERSION_RE}\Z", fullmatch=True)
sites = st.from_regex(rf"\A{SITE_RE}\Z", fullmatch=True)
scenarios = st.integers(min_value=0, max_value=999)
years = st.integers(min_value=0, max_value=9999)
cal_vals = st.sampled_from(["Cal", "Val"])


@st.composite
def v2_names(draw):
    parts = dict(model=draw(models), version=draw(versions),
                 phase=draw(st.sampled_from(["Phase1a", "Phase1b"])), scenario=draw(scenarios),
                 site=draw(sites), cal_val=draw(cal_vals),
                 stage=draw(st.sampled_from(["Prior", "Posterior"])))
    p = parts
    name = (f"{p['model']}.{p['version']}_{p['phase']}_Scen{p['scenario']}_{p['site']}"
            f"_{p['cal_val']}_{p['stage']}.nc")
    return name, dict(parts, kind="site_run", convention="v2")


@st.composite
def v1_names(draw):
    parts = dict(model=draw(models), version=draw(versions), scenario=draw(scenarios),
                 site=draw(sites), cal_val=draw(cal_vals),
                 stage=draw(st.sampled_from(["Prior", "Posterior", "Temporal", "Spatial"])))
    p = parts
    name = (f"{p['model']}.{p['version']}_Expt{p['scenario']}_{p['site']}_{p['cal_val']}"
            f"_{p['stage']}.nc")
    return name, dict(parts, kind="site_run", convention="v1", phase="Phase1")


@st.composite
def global_names(draw):
    parts = dict(model=draw(models), version=draw(versions),
                 resolution=draw(st.from_regex(r"\A[0-9][A-Za-z0-9.]*\Z", fullmatch=True)),
                 frequency=draw(st.from_regex(r"\A[A-Za-z]+\Z", fullmatch=True)),
                 year_start=draw(years), year_end=draw(years),
                 stage=draw(st.sampled_from(["Prior", "Posterior"])))
    p = parts
    name = (f"{p['model']}.{p['version']}_global_{p['resolution']}_{p['frequency']}"
            f"_{p['year_start']:04d}-{p['year_end']:04d}_{p['stage']}.nc")
    return name, dict(parts, kind="global_run", convention="global")


@st.composite
def obs_daily_names(draw):
    parts = dict(site=draw(sites), year_start=draw(years), year_end=draw(years))
    p = parts
    name = (f"{p['site']}_daily_aggregated_{p['year_start']:04d}-{p['year_end']:04d}"
            "_FLUXNET2015_Flux.nc")
    return name, dict(parts, kind="observation", convention="obs_daily",
                      collection="FLUXNET2015")


@st.composite
def plumber2_names(draw):
    parts = dict(site=draw(sites), year_start=draw(years), year_end=draw(years),
                 collection=draw(st.sampled_from(["FLUXNET2015", "LaThuile", "OzFlux"])))
    p = parts
    name = f"{p['site']}_{p['year_start']:04d}-{p['year_end']:04d}_{p['collection']}_Flux.nc"
    return name, dict(parts, kind="observation", convention="plumber2")


@st.composite
def parameter_names(draw):
    parts = dict(model=draw(models), version=draw(versions),
                 phase=draw(st.sampled_from(["Phase1a", "Phase1b"])), scenario=draw(scenarios))
    p = parts
    name = f"{p['model']}.{p['version']}_{p['phase']}_Scen{p['scenario']}_parameters.csv"
    return name, dict(parts, kind="parameters", convention="parameters")


valid_names = st.one_of(v2_names(), v1_names(), global_names(), obs_daily_names(),
                        plumber2_names(), parameter_names())


@settings(max_examples=300, **DETERMINISTIC)
@given(valid_names)
def test_valid_names_round_trip_and_fields_equal_generated_parts(case):
    name, expected = case
    parsed = parse_name(name)
    assert parsed.reason is None
    for key, value in expected.items():
        assert getattr(parsed, key) == value, (key, name)
    assert format_name(parsed) == name


@settings(max_examples=100, **DETERMINISTIC)
@given(valid_names, st.lists(st.from_regex(r"\A[^/\\\x00]{1,12}\Z", fullmatch=True),
                             max_size=4))
def test_directories_do_not_change_the_parse(case, folders):
    name, _ = case
    path = "/".join([*folders, name])
    assert parse_name(path) == parse_name(name)


path_text = st.lists(
    st.one_of(st.text(), st.sampled_from(["/", "\\", "..", ".", "_", ".nc", ".csv", "\x00",
                                          "\n", "\u200b", "Scen1", "DK-Sor", "_Phase1b"])),
    max_size=8).map("".join)


@settings(max_examples=500, **DETERMINISTIC)
@given(st.one_of(st.text(), path_text,
                 st.text(alphabet=st.characters(categories=["Cc", "Cf", "Zs"]))))
def test_parse_name_never_raises_and_returns_a_known_kind(text):
    parsed = parse_name(text)
    assert parsed.kind in KINDS
    if parsed.kind == "unrecognised" and parsed.convention is None:
        assert isinstance(parsed.reason, str) and parsed.reason
    else:
        assert parsed.reason is None or parsed.convention == "plumber2"


@settings(max_examples=100, **DETERMINISTIC)
@given(valid_names, st.sampled_from(["_Final", ".bak", "~", " ", "x"]))
def test_suffixes_after_a_valid_name_are_unrecognised(case, suffix):
    name, _ = case
    parsed = parse_name(name + suffix)
    assert parsed.kind == "unrecognised"
    assert parsed.reason
