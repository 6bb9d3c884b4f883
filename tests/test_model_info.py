"""Model-information files (protocol v2 §12): names, parsing, validation, ``callmip check``."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from dashboard.cli import main
from loaders.catalog import build_catalog
from loaders.model_info import (
    MAX_FILE_BYTES,
    REQUIRED,
    VOCABULARIES,
    normalise_word,
    read_model_info,
)
from loaders.naming import format_name, parse_name

HOSTILE = '<script>alert("x")</script><img src=x onerror=alert(1)>'

VALID = """\
# a complete file
model: CABLE-POP
version: v4.2
description: CABLE with POP demography
references:
  - Haverd et al. 2018, doi:10.5194/gmd-11-2995-2018
n_cycle: yes
fire: false
dynamic_vegetation: true
method: Ensemble Kalman
method_detail: iterative ensemble Kalman smoother, 4 iterations
ensemble_size: 64
sensitivity_analysis: true
n_parameters_selected: 12
n_parameters_possible: 85
multi_stream: Simultaneous
global_parameters: multi-site per PFT
pfts: dominant
other_uncertainties: [driver, random process error]
optional_scenarios: [2, 3]
lai: prognostic
"""


def _write(tmp_path: Path, name: str, text: str) -> Path:
    path = tmp_path / name
    path.write_text(text, encoding="utf-8")
    return path


# ------------------------------------------------------------------------------- names
@pytest.mark.parametrize("name", ["CABLE-POP.v4.2_model_info.yaml", "CABLE-POP.v4.2_model_info.yml",
                                  "CABLE-POP.v4.2_model_info.json"])
def test_names_are_recognised_and_formatted_back(name):
    parsed = parse_name(name)
    assert (parsed.kind, parsed.model, parsed.version) == ("model_info", "CABLE-POP", "v4.2")
    assert format_name(parsed) == name


@pytest.mark.parametrize("name", ["CABLE-POP_model_info.yaml", "CABLE-POP.v4.2_modelinfo.yaml",
                                  "CABLE-POP.v4.2_model_info.txt"])
def test_wrong_names_say_what_is_expected(name):
    parsed = parse_name(name)
    assert parsed.kind == "unrecognised"
    if "model_info" in name:
        assert "<model>.<version>_model_info.yaml" in parsed.reason


def test_catalog_lists_model_information_files(tmp_path):
    _write(tmp_path, "CABLE-POP.v4.2_model_info.yaml", VALID)
    cat = build_catalog(tmp_path)
    assert list(cat["kind"]) == ["model_info"]
    assert cat.loc[0, "model"] == "CABLE-POP" and cat.loc[0, "version"] == "v4.2"


# ------------------------------------------------------------------------------ parsing
def test_valid_yaml_file(tmp_path):
    info = read_model_info(_write(tmp_path, "CABLE-POP.v4.2_model_info.yaml", VALID))
    assert info.errors == [] and info.warnings == [] and info.status == "ok"
    v = info.values
    assert info.model_id == "CABLE-POP.v4.2"
    assert v["method"] == "ensemble_kalman"  # case and spaces normalised
    assert v["global_parameters"] == "multi_site_per_pft"
    assert v["other_uncertainties"] == ["driver", "process_error"]
    assert v["n_cycle"] is True and v["fire"] is False
    assert v["ensemble_size"] == 64 and v["optional_scenarios"] == [2, 3]
    assert info.flat()["other_uncertainties"] == "driver, process_error"


def test_valid_json_file_reads_like_yaml(tmp_path):
    import yaml

    data = yaml.safe_load(VALID)
    info = read_model_info(_write(tmp_path, "CABLE-POP.v4.2_model_info.json", json.dumps(data)))
    yaml_info = read_model_info(_write(tmp_path, "CABLE-POP.v4.2_model_info.yaml", VALID))
    assert info.status == "ok" and info.values == yaml_info.values


def test_missing_required_keys_are_errors(tmp_path):
    info = read_model_info(_write(tmp_path, "X.v1_model_info.yaml",
                                  "model: X\nversion: v1\nmethod: manual\n"))
    codes = [c for c, _ in info.errors]
    assert codes == ["missing_key"]
    message = info.errors[0][1]
    assert message.startswith("required keys multi_stream, lai missing")
    assert set(REQUIRED) == {"model", "version", "method", "multi_stream", "lai"}


def test_unknown_vocabulary_and_keys_are_warnings(tmp_path):
    text = ("model: X\nversion: v1\nmethod: simulated annealing\nmulti_stream: EnKF-ish\n"
            "lai: prescribed\nfavourite_colour: blue\n")
    info = read_model_info(_write(tmp_path, "X.v1_model_info.yaml", text))
    assert info.errors == [] and info.status == "warnings"
    codes = sorted(c for c, _ in info.warnings)
    assert codes == ["unknown_key", "vocabulary", "vocabulary"]
    assert info.values["method"] == "simulated annealing"  # kept as written
    messages = " ".join(m for _, m in info.warnings)
    assert "'simulated annealing'" in messages and ", ".join(VOCABULARIES["method"]) in messages
    assert "'favourite_colour'" in messages


def test_aliases_of_the_vocabularies():
    assert normalise_word("EnKF") == "ensemble_kalman"
    assert normalise_word("Emulator + history matching") == "emulator_history_matching"
    assert normalise_word("step-wise") == "step_wise"
    assert normalise_word("Genetic algorithm") == "genetic"


def test_wrong_types_are_errors(tmp_path):
    text = ("model: X\nversion: v1\nmethod: mcmc\nmulti_stream: simultaneous\nlai: prognostic\n"
            "ensemble_size: many\nfire: sometimes\noptional_scenarios: [1, 7]\n"
            "description: {nested: map}\n")
    info = read_model_info(_write(tmp_path, "X.v1_model_info.yaml", text))
    codes = [c for c, _ in info.errors]
    assert codes.count("type") == 3 and "scenario" in codes
    assert "ensemble_size" not in info.values and "fire" not in info.values


def test_html_in_text_is_kept_verbatim_for_escaping_later(tmp_path):
    text = (f"model: X\nversion: v1\nmethod: mcmc\nmulti_stream: simultaneous\nlai: prognostic\n"
            f"description: '{HOSTILE}'\nnotes: \"line\\u0000with\\u200bcontrol\"\n")
    info = read_model_info(_write(tmp_path, "X.v1_model_info.yaml", text))
    assert info.status == "ok"
    assert info.values["description"] == HOSTILE
    assert info.values["notes"] == "linewithcontrol"  # control and invisible characters gone


def test_content_must_match_the_name(tmp_path):
    text = "model: Y\nversion: v2\nmethod: mcmc\nmulti_stream: simultaneous\nlai: prognostic\n"
    info = read_model_info(_write(tmp_path, "X.v1_model_info.yaml", text))
    assert [c for c, _ in info.errors] == ["name_mismatch", "name_mismatch"]


@pytest.mark.parametrize(("content", "code"), [
    ("", "unreadable"),
    ("model: [unclosed\n", "syntax"),
    ("- just\n- a list\n", "structure"),
    ("!!python/object/apply:os.system ['echo hi']\n", "syntax"),
])
def test_broken_files_give_an_error_never_an_exception(tmp_path, content, code):
    info = read_model_info(_write(tmp_path, "X.v1_model_info.yaml", content))
    assert [c for c, _ in info.errors] == [code]
    assert "X.v1_model_info.yaml" in info.errors[0][1]


def test_oversized_files_are_refused(tmp_path):
    path = _write(tmp_path, "X.v1_model_info.yaml", "notes: " + "x" * (MAX_FILE_BYTES + 10))
    info = read_model_info(path)
    assert [c for c, _ in info.errors] == ["unreadable"] and info.values == {}


def test_yaml_alias_bombs_are_refused(tmp_path):
    lines = ["a: &a [x, x, x, x, x, x, x, x, x, x]"]
    for i, name in enumerate("bcdefghi"):
        prev = "abcdefghi"[i]
        lines.append(f"{name}: &{name} [*{prev}, *{prev}, *{prev}, *{prev}, *{prev}, *{prev}, "
                     f"*{prev}, *{prev}, *{prev}, *{prev}]")
    lines.append("description: *i")  # 10^9 values once expanded
    info = read_model_info(_write(tmp_path, "X.v1_model_info.yaml", "\n".join(lines) + "\n"))
    assert [c for c, _ in info.errors] == ["structure"] and info.values == {}


def test_aliased_long_text_in_lists_and_flags_is_refused(tmp_path):
    big = "x" * 100_000
    text = (f"model: X\nversion: v1\nmethod: mcmc\nmulti_stream: simultaneous\nlai: prescribed"
            f"\nnotes: &big {big}\nfire: [{', '.join(['*big'] * 50)}]\n"
            f"references: [{', '.join(['*big'] * 500)}]\n")
    info = read_model_info(_write(tmp_path, "X.v1_model_info.yaml", text))
    assert sorted(c for c, _ in info.errors) == ["type", "type"]
    assert "fire" not in info.values and "references" not in info.values
    assert all(len(m) < 200 for _, m in info.errors)


def test_long_text_is_cut_with_a_warning(tmp_path):
    text = ("model: X\nversion: v1\nmethod: mcmc\nmulti_stream: simultaneous\nlai: prognostic\n"
            f"notes: {'y' * 5000}\n")
    info = read_model_info(_write(tmp_path, "X.v1_model_info.yaml", text))
    assert [c for c, _ in info.warnings] == ["long_text"]
    assert len(info.values["notes"]) == 2001


# ------------------------------------------------------------------------- callmip check
def test_callmip_check_reports_errors_and_warnings(tmp_path, capsys):
    good = _write(tmp_path, "CABLE-POP.v4.2_model_info.yaml", VALID)
    vague = _write(tmp_path, "X.v1_model_info.yaml",
                   "model: X\nversion: v1\nmethod: simulated annealing\n"
                   "multi_stream: simultaneous\nlai: prognostic\n")
    incomplete = _write(tmp_path, "Y.v1_model_info.json", json.dumps({"model": "Y"}))
    misnamed = _write(tmp_path, "Y_model_info.yaml", VALID)
    assert main(["check", str(tmp_path), "--json"]) == 1
    reports = {Path(r["path"]).name: r for r in json.loads(capsys.readouterr().out)}
    assert reports[good.name]["ok"] and reports[good.name]["kind"] == "model_info"
    assert reports[good.name]["model"] == "CABLE-POP"
    assert reports[vague.name]["ok"]
    assert [w["code"] for w in reports[vague.name]["warnings"]] == ["vocabulary"]
    assert not reports[incomplete.name]["ok"]
    assert [e["code"] for e in reports[incomplete.name]["errors"]] == ["missing_key"]
    assert not reports[misnamed.name]["ok"]
    assert reports[misnamed.name]["errors"][0]["code"] == "name"
    assert main(["check", str(good)]) == 0
    assert "PASS" in capsys.readouterr().out
