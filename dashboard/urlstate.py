"""Mirror a :class:`~dashboard.state.Selection` in the URL query (no Panel import here).

Query parameters (a contract: presenters share and bookmark these URLs):
``view``, ``site``, ``variable``, ``models`` (comma-separated), ``scenario`` (integer), ``stage``,
``metric`` and, for the global view, ``time``, ``layer`` and ``projection``.

Global view values: ``time`` is ``YYYY-MM`` (one month), ``YYYY`` (that year's mean),
``annual`` (annual means: the first year, with a year slider), ``mean`` (the long-term mean,
also what an empty value means) or ``month-MM`` (one calendar month's mean over all years;
``MM`` alone is read the same); ``layer`` is ``field``, ``difference``, ``mean``, ``spread`` or
``spread_reduction``; ``projection`` is ``PlateCarree`` or ``Robinson``. ``layer`` and
``projection`` are written to the URL only on the global view. Presentation options:
``theme`` (light|dark) and ``present`` (1 for presentation mode). Invalid values are reported
and ignored, never fatal.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from dashboard.state import Selection

URL_PARAMETERS: tuple[str, ...] = ("view", "site", "variable", "models", "scenario", "stage",
                                   "metric", "time", "layer", "projection")


def _text(value: Any) -> str:
    if isinstance(value, (list, tuple)):
        value = value[-1] if value else ""
    if isinstance(value, bytes):
        value = value.decode("utf-8", "replace")
    return str(value).strip()


def selection_from_query(selection: Selection, query: Mapping[str, Any],
                         *, sites: list[str] | None = None,
                         models: list[str] | None = None,
                         scenarios: list[int] | None = None) -> list[str]:
    """Apply URL query values to ``selection``; return a message for each value ignored.

    Never raises: a value that is malformed, unknown or out of range is reported and the
    selection keeps its default for it.

    Parameters
    ----------
    selection : Selection
        Updated in place (in one batch).
    query : mapping
        Query arguments, values as str, bytes or lists of them (``pn.state.session_args``).
    sites, models : list of str, optional
        Known site ids and model ids; unknown ones are reported and dropped.
    scenarios : list of int, optional
        Scenarios present in the archive; another scenario is reported and ignored.

    Returns
    -------
    list of str
        Human-readable problems (the values are untrusted: callers must escape them for HTML).
    """
    problems: list[str] = []
    updates: dict[str, Any] = {}
    for name in URL_PARAMETERS:
        if name not in query:
            continue
        raw = _text(query[name])
        value, problem = _parse(selection, name, raw, sites=sites, models=models,
                                scenarios=scenarios)
        if problem:
            problems.append(problem)
        if value is not _IGNORED:
            updates[name] = value
    if updates:
        selection.param.update(**updates)
    return problems


_IGNORED = object()


def _shorten(raw: str, limit: int = 60) -> str:
    return raw if len(raw) <= limit else raw[:limit] + "…"


def _parse(selection: Selection, name: str, raw: str, *, sites: list[str] | None,
           models: list[str] | None, scenarios: list[int] | None) -> tuple[Any, str]:
    """The value of one URL parameter, or ``_IGNORED``, and a problem message (or "")."""
    if name == "models":
        wanted = [m.strip() for m in raw.split(",") if m.strip()]
        unknown = [m for m in wanted if models is not None and m not in models]
        problem = (f"unknown model(s) in URL: {_shorten(', '.join(unknown))}" if unknown
                   else "")
        return [m for m in wanted if m not in unknown], problem
    if name == "scenario":
        try:
            scenario = int(raw)
        except ValueError:
            return _IGNORED, f"scenario must be an integer, not {_shorten(raw)!r}"
        known = scenarios if scenarios is not None else range(1, 7)
        if scenario not in known:
            offered = ", ".join(str(k) for k in (scenarios or range(1, 7)))
            return _IGNORED, f"scenario {scenario} is not in this archive (scenarios: {offered})"
        return scenario, ""
    if name == "time" and raw:
        from dashboard.global_queries import parse_time

        try:
            parse_time(raw)
        except ValueError as exc:
            return _IGNORED, f"{_shorten(str(exc), 120)}; showing the long-term mean"
        return raw, ""
    if name == "site" and sites is not None and raw and raw not in sites:
        return _IGNORED, f"unknown site in URL: {_shorten(raw)!r}"
    objects = getattr(selection.param[name], "objects", None)
    if objects and raw not in objects:
        return _IGNORED, (f"{name}={_shorten(raw)!r} is not one of "
                          f"{', '.join(map(str, objects))}")
    try:  # the parameter's own validation has the last word
        selection.param[name]._validate(raw)
    except (ValueError, TypeError) as exc:
        return _IGNORED, f"{name}={_shorten(raw)!r} is not valid: {exc}"
    return raw, ""


def query_from_selection(selection: Selection) -> dict[str, str]:
    """Return the URL query values that reproduce ``selection`` (empty values omitted)."""
    out = {
        "view": selection.view,
        "site": selection.site,
        "variable": selection.variable,
        "models": ",".join(selection.models),
        "scenario": str(selection.scenario),
        "stage": selection.stage,
        "metric": selection.metric,
        "time": selection.time,
    }
    if selection.view == "global":
        out["layer"] = selection.layer
        out["projection"] = selection.projection
    return {k: v for k, v in out.items() if v}
