"""The model information table of protocol v2 §12, as one small machine-readable file per model.

A group writes ``<model>.<version>_model_info.yaml`` (or ``.json``): a mapping of short keys,
free text where the protocol asks for a description and controlled vocabularies where it gives
choices (:data:`FIELDS`, documented in the README). :func:`read_model_info` parses and validates
a file and never raises: a missing required key or a value of the wrong type is an *error*, an
unknown key or a value outside a vocabulary a *warning* (the value is kept as written, so a
group's own word still shows). ``callmip check`` reports both through :func:`check_model_info`.

Everything in these files is untrusted text: it is parsed with ``yaml.safe_load`` (no Python
objects), size-limited, stripped of control characters and cut to :data:`MAX_TEXT_LENGTH`; it
is never escaped here — whoever renders it escapes it.
"""

from __future__ import annotations

import json
import re
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

__all__ = ["FIELDS", "MAX_FILE_BYTES", "MODEL_INFO_COLUMNS", "REQUIRED", "VOCABULARIES",
           "FieldSpec", "ModelInfo", "check_model_info", "is_model_info", "normalise_word",
           "read_model_info"]

#: Largest model-information file read (bytes): the table is a page of text, not data.
MAX_FILE_BYTES = 256 * 1024
#: Longest free-text value kept (characters); longer text is cut and a warning says so.
MAX_TEXT_LENGTH = 2000
#: Most values (keys, items, text) a file may hold, YAML aliases counted each time used.
MAX_NODES = 5000
#: Most items in one list (references, uncertainties, scenarios).
MAX_ITEMS = 100


@dataclass(frozen=True)
class FieldSpec:
    """One key of the model-information file.

    Attributes
    ----------
    key : str
        The short key.
    kind : str
        ``text``, ``texts`` (a list of text), ``word`` (one word of ``vocabulary``), ``words``
        (a list of them), ``bool``, ``int`` or ``ints``.
    section : str
        The item of protocol v2 §12 it answers (``i`` … ``xiv``).
    meaning : str
        What it says (README and tooltips).
    required : bool
        Whether a file without it is an error.
    vocabulary : tuple of str
        Allowed words (``word``/``words`` kinds).
    """

    key: str
    kind: str
    section: str
    meaning: str
    required: bool = False
    vocabulary: tuple[str, ...] = ()


#: Parameter estimation method families (§12 iv).
METHODS = ("gradient", "mcmc", "ensemble_kalman", "emulator_history_matching", "genetic",
           "manual", "other")
#: How several data streams enter the calibration (§12 ix).
MULTI_STREAM = ("simultaneous", "step_wise", "other")
#: How the global parameter set is made (§12 x).
GLOBAL_PARAMETERS = ("multi_site_per_pft", "multi_site", "parameter_ensemble", "other")
#: Which PFTs are calibrated (§12 xi).
PFTS = ("all", "dominant", "not_applicable")
#: Other uncertainties propagated (§12 xii).
UNCERTAINTIES = ("none", "initial_conditions", "driver", "boundary",
                 "demographic_stochasticity", "process_error", "structural", "other")
#: Leaf area index (§12 xiv).
LAI = ("prescribed", "prognostic")
#: Initial conditions (§12 viii).
INITIAL_CONDITIONS = ("spin_up", "calibrated", "prescribed", "other")

FIELDS: tuple[FieldSpec, ...] = (
    FieldSpec("model", "text", "i", "model name, as in the file names", required=True),
    FieldSpec("version", "text", "i", "model version, as in the file names", required=True),
    FieldSpec("description", "text", "i", "brief description of the model"),
    FieldSpec("references", "texts", "i", "references (DOIs or citations), a list"),
    FieldSpec("n_cycle", "bool", "ii", "nitrogen cycle included (true/false)"),
    FieldSpec("fire", "bool", "ii", "fire included (true/false)"),
    FieldSpec("dynamic_vegetation", "bool", "ii", "dynamic vegetation included (true/false)"),
    FieldSpec("n_deposition", "text", "iii", "N deposition and fertilisation data used"),
    FieldSpec("method", "word", "iv", "parameter estimation method family", required=True,
              vocabulary=METHODS),
    FieldSpec("method_detail", "text", "iv", "the method in a few words (algorithm, cost "
                                             "function, configuration)"),
    FieldSpec("ensemble_size", "int", "iv", "number of ensemble members or chains, if any"),
    FieldSpec("sensitivity_analysis", "bool", "v", "a sensitivity analysis chose the "
                                                    "parameters (true/false)"),
    FieldSpec("selection_detail", "text", "v", "how the parameters were selected"),
    FieldSpec("n_parameters_selected", "int", "v", "number of parameters calibrated"),
    FieldSpec("n_parameters_possible", "int", "v", "number of parameters that could have "
                                                   "been calibrated"),
    FieldSpec("spin_up", "text", "vii", "spin-up beyond the protocol's"),
    FieldSpec("initial_conditions", "word", "viii", "how biased initial conditions (soil C "
                                                     "…) are handled",
              vocabulary=INITIAL_CONDITIONS),
    FieldSpec("multi_stream", "word", "ix", "how NEE, Qle and Qh are combined",
              required=True, vocabulary=MULTI_STREAM),
    FieldSpec("global_parameters", "word", "x", "how the global parameter set is made",
              vocabulary=GLOBAL_PARAMETERS),
    FieldSpec("pfts", "word", "xi", "all PFTs of a site calibrated, or only the dominant one",
              vocabulary=PFTS),
    FieldSpec("other_uncertainties", "words", "xii", "other uncertainties propagated, a list",
              vocabulary=UNCERTAINTIES),
    FieldSpec("optional_scenarios", "ints", "xiii", "optional scenarios run (2-6), a list"),
    FieldSpec("lai", "word", "xiv", "LAI prescribed from the forcing or prognostic",
              required=True, vocabulary=LAI),
    FieldSpec("notes", "text", "-", "anything else"),
)

_BY_KEY = {spec.key: spec for spec in FIELDS}
#: Keys a file must have.
REQUIRED: tuple[str, ...] = tuple(spec.key for spec in FIELDS if spec.required)
#: Key → allowed words.
VOCABULARIES: dict[str, tuple[str, ...]] = {s.key: s.vocabulary for s in FIELDS if s.vocabulary}
#: Columns of the information in the ``methods`` table (lists joined by ", ").
MODEL_INFO_COLUMNS: tuple[str, ...] = tuple(s.key for s in FIELDS
                                            if s.key not in ("model", "version"))

#: Common spellings of vocabulary words (after :func:`normalise_word`).
_ALIASES: dict[str, str] = {
    "gradient_based": "gradient", "variational": "gradient", "4dvar": "gradient",
    "adjoint": "gradient", "least_squares": "gradient", "bfgs": "gradient",
    "markov_chain_monte_carlo": "mcmc", "bayesian_mcmc": "mcmc",
    "enkf": "ensemble_kalman", "ensemble_kalman_filter": "ensemble_kalman",
    "ensemble_kalman_smoother": "ensemble_kalman", "eks": "ensemble_kalman",
    "emulator": "emulator_history_matching", "history_matching": "emulator_history_matching",
    "emulator_and_history_matching": "emulator_history_matching",
    "genetic_algorithm": "genetic", "evolutionary": "genetic",
    "hand_tuning": "manual", "hand_tuned": "manual",
    "stepwise": "step_wise", "sequential": "step_wise", "joint": "simultaneous",
    "per_pft": "multi_site_per_pft", "multisite_per_pft": "multi_site_per_pft",
    "multi_site_optimisation_per_pft": "multi_site_per_pft",
    "ensemble": "parameter_ensemble", "ensembles": "parameter_ensemble",
    "parameter_ensembles": "parameter_ensemble", "multisite": "multi_site",
    "most_dominant": "dominant", "dominant_pft": "dominant", "all_pfts": "all",
    "n_a": "not_applicable",
    "initial_condition": "initial_conditions", "drivers": "driver", "forcing": "driver",
    "random_process_error": "process_error", "model_error": "structural",
    "satellite": "prescribed", "spinup": "spin_up",
}

_CONTROL = re.compile(r"[\x00-\x08\x0b\x0c\x0e-\x1f\x7f\u200b-\u200f\u2028-\u202e\u2060\ufeff]")


def normalise_word(value: Any) -> str:
    """A vocabulary word as compared: lower case, spaces, ``-`` and ``+`` as ``_``.

    ``"Emulator + history matching"`` → ``emulator_history_matching``; aliases such as
    ``EnKF`` map to their word.
    """
    text = _CONTROL.sub("", str(value)).strip().lower()
    text = re.sub(r"[\s\-+&/]+", "_", text).strip("_")
    text = re.sub(r"_+", "_", text)
    return _ALIASES.get(text, text)


@dataclass
class ModelInfo:
    """One parsed model-information file.

    Attributes
    ----------
    path : str
        The file.
    values : dict
        Key → parsed value (text cleaned, words normalised, lists as lists); only keys that
        were present and usable.
    errors, warnings : list of (code, message)
        Problems that make the file incomplete, and problems that do not.
    """

    path: str
    values: dict[str, Any] = field(default_factory=dict)
    errors: list[tuple[str, str]] = field(default_factory=list)
    warnings: list[tuple[str, str]] = field(default_factory=list)

    @property
    def model_id(self) -> str | None:
        """``<model>.<version>`` from the file's content (``None`` if either is missing)."""
        model, version = self.values.get("model"), self.values.get("version")
        if not model or not version:
            return None
        return f"{model}.{version}"

    @property
    def status(self) -> str:
        """``ok``, ``warnings`` or ``errors``."""
        return "errors" if self.errors else "warnings" if self.warnings else "ok"

    def flat(self) -> dict[str, Any]:
        """The values as one table row: lists joined by ``", "``, missing keys ``None``."""
        row: dict[str, Any] = {}
        for key in MODEL_INFO_COLUMNS:
            value = self.values.get(key)
            if isinstance(value, list):
                value = ", ".join(str(v) for v in value)
            row[key] = value
        return row


def _text(value: Any, key: str, info: ModelInfo) -> str | None:
    if isinstance(value, (dict, list)):
        info.errors.append(("type", f"{key} must be text, not a "
                                    f"{'mapping' if isinstance(value, dict) else 'list'}"))
        return None
    text = _CONTROL.sub("", str(value)).strip()
    if len(text) > MAX_TEXT_LENGTH:
        message = (f"{key} is {len(text)} characters long; the first {MAX_TEXT_LENGTH} are "
                   "kept")
        if ("long_text", message) not in info.warnings:
            info.warnings.append(("long_text", message))
        text = text[:MAX_TEXT_LENGTH] + "…"
    return text


def _short(value: Any, limit: int = 60) -> str:
    if isinstance(value, (list, dict, tuple, set)):
        return f"a {'mapping' if isinstance(value, dict) else 'list'}"
    text = _CONTROL.sub("", str(value))
    return repr(text[:limit] + ("…" if len(text) > limit else ""))


def _as_list(value: Any) -> list[Any]:
    if value is None:
        return []
    if isinstance(value, list):
        return value
    if isinstance(value, str):
        return [v for v in (p.strip() for p in value.split(",")) if v]
    return [value]


def _parse_value(spec: FieldSpec, value: Any, info: ModelInfo) -> Any:
    key = spec.key
    if value is None or (isinstance(value, str) and not value.strip()):
        return None
    if isinstance(value, list) and len(value) > MAX_ITEMS:
        info.errors.append(("type", f"{key} has {len(value)} items; at most {MAX_ITEMS}"))
        return None
    if spec.kind == "text":
        return _text(value, key, info)
    if spec.kind == "texts":
        items = [_text(v, key, info) for v in _as_list(value) if not isinstance(v, dict)]
        return [v for v in items if v]
    if spec.kind in ("bool", "int", "word") and isinstance(value, (list, dict)):
        info.errors.append(("type", f"{key} must be a single value, not {_short(value)}"))
        return None
    if spec.kind == "bool":
        if isinstance(value, bool):
            return value
        word = normalise_word(value)
        if word in ("yes", "true", "y", "1"):
            return True
        if word in ("no", "false", "n", "0"):
            return False
        info.errors.append(("type", f"{key} must be true or false, not {_short(value)}"))
        return None
    if spec.kind in ("int", "ints"):
        items = _as_list(value) if spec.kind == "ints" else [value]
        out = []
        for item in items:
            if (isinstance(item, (bool, list, dict))
                    or not re.fullmatch(r"\s*\d+\s*", str(item))):
                info.errors.append(("type", f"{key} must be a whole number"
                                            f"{'s' if spec.kind == 'ints' else ''} ≥ 0, not "
                                            f"{_short(item)}"))
                continue
            out.append(int(str(item)))
        if spec.kind == "int":
            return out[0] if out else None
        return out
    # word / words
    items = _as_list(value) if spec.kind == "words" else [value]
    words = []
    for item in items:
        if isinstance(item, (dict, list)):
            info.errors.append(("type", f"{key} must be a word of: "
                                        f"{', '.join(spec.vocabulary)}"))
            continue
        word = normalise_word(item)
        if not word:
            continue
        if word not in spec.vocabulary:
            info.warnings.append(("vocabulary", f"{key} {_short(item)} is not one of "
                                                f"{', '.join(spec.vocabulary)} (kept as "
                                                "written)"))
            word = _text(item, key, info) or word
        words.append(word)
    if spec.kind == "word":
        return words[0] if words else None
    return words


def _load(path: Path, info: ModelInfo) -> Any:
    try:
        size = path.stat().st_size
    except OSError as exc:
        info.errors.append(("unreadable", f"{path.name}: cannot be read ({exc.strerror})"))
        return None
    if size == 0:
        info.errors.append(("unreadable", f"{path.name}: is empty (0 bytes)"))
        return None
    if size > MAX_FILE_BYTES:
        info.errors.append(("unreadable", f"{path.name}: is {size} bytes; a model-information "
                                          f"file is at most {MAX_FILE_BYTES} bytes"))
        return None
    try:
        text = path.read_bytes().decode("utf-8-sig")
    except (OSError, UnicodeDecodeError) as exc:
        info.errors.append(("unreadable", f"{path.name}: is not UTF-8 text ({exc})"))
        return None
    try:
        if path.suffix.lower() == ".json":
            return json.loads(text)
        import yaml

        return yaml.safe_load(text)
    except Exception as exc:  # a syntax error names its line
        kind = "JSON" if path.suffix.lower() == ".json" else "YAML"
        message = str(exc).replace("\n", " ")
        info.errors.append(("syntax", f"{path.name}: is not valid {kind}: {message[:300]}"))
        return None


def _exceeds(data: Any, limit: int) -> bool:
    """Whether ``data`` has more than ``limit`` values, aliases counted each time they are used.

    YAML aliases let a small file stand for an exponentially large structure (the "billion
    laughs"): it is refused before anything is converted to text. The walk stops at ``limit``.
    """
    stack, count = [data], 0
    while stack:
        item = stack.pop()
        count += 1
        if count > limit:
            return True
        if isinstance(item, dict):
            stack.extend(item.keys())
            stack.extend(item.values())
        elif isinstance(item, (list, tuple, set)):
            stack.extend(item)
    return False


def read_model_info(path: str | Path) -> ModelInfo:
    """Parse and validate one model-information file; never raises.

    Parameters
    ----------
    path : str or path-like
        A ``<model>.<version>_model_info.yaml`` (``.yml``, ``.json``) file.

    Returns
    -------
    ModelInfo
        The parsed values with the errors (missing required keys, wrong types, unreadable
        file, content that disagrees with the file name) and warnings (unknown keys, words
        outside a vocabulary, over-long text).
    """
    path = Path(path)
    info = ModelInfo(path=str(path))
    data = _load(path, info)
    if info.errors:
        return info
    if not isinstance(data, dict):
        info.errors.append(("structure", f"{path.name}: must be a mapping of keys to values, "
                                         f"not {type(data).__name__}"))
        return info
    if _exceeds(data, MAX_NODES):
        info.errors.append(("structure", f"{path.name}: holds more than {MAX_NODES} values "
                                         "(counting YAML aliases as often as they are used)"))
        return info
    for raw_key, value in data.items():
        key = normalise_word(raw_key)
        spec = _BY_KEY.get(key)
        if spec is None:
            info.warnings.append(("unknown_key", f"key {_short(raw_key)} is not part of the "
                                                 "model-information format (ignored)"))
            continue
        parsed = _parse_value(spec, value, info)
        if parsed is not None and parsed != []:
            info.values[key] = parsed
    missing = [k for k in REQUIRED if k not in info.values]
    if missing:
        info.errors.append(("missing_key", f"required key{'s' if len(missing) > 1 else ''} "
                                           f"{', '.join(missing)} missing (required: "
                                           f"{', '.join(REQUIRED)})"))
    bad_scen = [s for s in info.values.get("optional_scenarios", []) if not 2 <= s <= 6]
    if bad_scen:
        info.errors.append(("scenario", "optional_scenarios must be among 2-6 (protocol v2 "
                                        f"§3.1), not {', '.join(map(str, bad_scen))}"))
    sel, pos = info.values.get("n_parameters_selected"), info.values.get("n_parameters_possible")
    if sel is not None and pos is not None and sel > pos:
        info.warnings.append(("parameters", f"n_parameters_selected ({sel}) is larger than "
                                            f"n_parameters_possible ({pos})"))
    _check_against_name(path, info)
    return info


def _check_against_name(path: Path, info: ModelInfo) -> None:
    from loaders.naming import parse_name

    parsed = parse_name(path.name)
    if parsed.kind != "model_info":
        return
    for key, from_name in (("model", parsed.model), ("version", parsed.version)):
        written = info.values.get(key)
        if written is not None and written != from_name:
            info.errors.append(("name_mismatch", f"{key} {_short(written)} differs from the "
                                                 f"file name's {from_name!r}"))


def is_model_info(path: str, parsed: Any) -> bool:
    """Whether ``callmip check`` should check ``path`` as a model-information file.

    A recognised name, or a name that contains ``model_info`` with a YAML/JSON ending but fits
    no convention (it is checked, with an error naming the expected name, instead of skipped).
    """
    if parsed.kind == "model_info":
        return True
    name = Path(str(path)).name.lower()
    return (parsed.kind == "unrecognised" and "model_info" in name
            and name.endswith((".yaml", ".yml", ".json")))


def check_model_info(path: str, parsed: Any, report: Any) -> None:
    """Add the problems of a model-information file to a ``callmip check`` report.

    Parameters
    ----------
    path : str
        The file.
    parsed : loaders.naming.ParsedName
        What its name says.
    report : loaders.protocol.CheckReport
        Receives one error per error and one warning per warning (code and message).
    """
    report.kind = "model_info"
    if parsed.kind != "model_info":
        report.error("name", f"file name {parsed.name!r} is not recognised: {parsed.reason}")
    info = read_model_info(path)
    for code, message in info.errors:
        report.error(code, message)
    for code, message in info.warnings:
        report.warn(code, message)
