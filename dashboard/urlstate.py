"""Mirror a :class:`~dashboard.state.Selection` in the URL query (no Panel import here).

Query parameters (a contract: presenters share and bookmark these URLs):
``view``, ``site``, ``variable``, ``models`` (comma-separated), ``scenario`` (integer), ``stage``,
``metric`` and, for the global view, ``time``. Presentation options: ``theme`` (light|dark) and
``present`` (1 for presentation mode). Invalid values are reported and ignored, never fatal.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from dashboard.state import Selection

URL_PARAMETERS: tuple[str, ...] = ("view", "site", "variable", "models", "scenario", "stage",
                                   "metric", "time")


def _text(value: Any) -> str:
    if isinstance(value, (list, tuple)):
        value = value[-1] if value else ""
    if isinstance(value, bytes):
        value = value.decode("utf-8", "replace")
    return str(value).strip()


def selection_from_query(selection: Selection, query: Mapping[str, Any],
                         *, sites: list[str] | None = None,
                         models: list[str] | None = None) -> list[str]:
    """Apply URL query values to ``selection``; return a message for each value ignored.

    Parameters
    ----------
    selection : Selection
        Updated in place (in one batch).
    query : mapping
        Query arguments, values as str, bytes or lists of them (``pn.state.session_args``).
    sites, models : list of str, optional
        Known site ids and model ids; unknown ones are reported and dropped.

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
        if name == "models":
            wanted = [m.strip() for m in raw.split(",") if m.strip()]
            unknown = [m for m in wanted if models is not None and m not in models]
            if unknown:
                problems.append(f"unknown model(s) in URL: {', '.join(unknown)}")
            updates["models"] = [m for m in wanted if m not in unknown]
            continue
        if name == "scenario":
            try:
                updates["scenario"] = int(raw)
            except ValueError:
                problems.append(f"scenario must be an integer, not {raw!r}")
            continue
        if name == "site" and sites is not None and raw and raw not in sites:
            problems.append(f"unknown site in URL: {raw!r}")
            continue
        parameter = selection.param[name]
        objects = getattr(parameter, "objects", None)
        if objects and raw not in objects:
            problems.append(f"{name}={raw!r} is not one of {', '.join(map(str, objects))}")
            continue
        updates[name] = raw
    if updates:
        selection.param.update(**updates)
    return problems


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
    return {k: v for k, v in out.items() if v}
