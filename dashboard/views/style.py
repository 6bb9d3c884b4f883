"""Shared look: model colours, colormaps, presentation scaling, safe text panes."""

from __future__ import annotations

import html
from dataclasses import dataclass

import pandas as pd
import panel as pn

#: Colour-blind-safe categorical palette (Okabe–Ito, then Tol's muted) for models.
MODEL_COLOURS: tuple[str, ...] = (
    "#0072B2", "#E69F00", "#009E73", "#CC79A7", "#D55E00", "#56B4E9", "#F0E442",
    "#332288", "#88CCEE", "#44AA99", "#117733", "#999933", "#DDCC77", "#CC6677", "#882255",
)
#: Diverging colormap for reductions and differences (symmetric limits around 0).
DIVERGING = "RdBu"
#: Sequential colormap for magnitudes (chi2, rmse).
SEQUENTIAL = "viridis"


def model_colour(model_id: str, all_models: list[str]) -> str:
    """A stable colour for ``model_id`` given the archive's sorted model list."""
    try:
        index = sorted(all_models).index(model_id)
    except ValueError:
        index = abs(hash(model_id))
    return MODEL_COLOURS[index % len(MODEL_COLOURS)]


@dataclass(frozen=True)
class Look:
    """Presentation settings of one session.

    Attributes
    ----------
    theme : str
        ``"light"`` or ``"dark"``.
    presentation : bool
        Large fonts and thick lines for screen sharing.
    """

    theme: str = "light"
    presentation: bool = False

    @property
    def fontscale(self) -> float:
        """Multiplier for plot fonts."""
        return 1.6 if self.presentation else 1.0

    @property
    def line_width(self) -> float:
        """Base line width."""
        return 2.5 if self.presentation else 1.4

    @property
    def muted_colour(self) -> str:
        """Colour of models drawn as context behind the highlighted ones."""
        return "#8a8a8a" if self.theme == "dark" else "#a8a8a8"

    @property
    def obs_colour(self) -> str:
        """Colour of observations (high contrast on the background)."""
        return "#f5f5f5" if self.theme == "dark" else "#111111"

    @property
    def bg(self) -> str:
        """Plot background colour."""
        return "#1f2329" if self.theme == "dark" else "#ffffff"

    @property
    def fg(self) -> str:
        """Text and axis colour."""
        return "#e8e8e8" if self.theme == "dark" else "#222222"

    @property
    def land_colour(self) -> str:
        """Colour of the land outline."""
        return "#8a9099" if self.theme == "dark" else "#9aa0a6"

    def plot_opts(self) -> dict:
        """Bokeh hooks-free options applied to every plot for the theme."""
        return {"fontscale": self.fontscale, "bgcolor": self.bg}


#: Alert colours (background, text, border), inlined: Panel renders panes inside shadow roots
#: that the page's Bootstrap classes do not reach, so a class alone showed plain text.
ALERT_COLOURS = {"info": ("#cff4fc", "#055160", "#9eeaf9"),
                 "success": ("#d1e7dd", "#0a3622", "#a3cfbb"),
                 "warning": ("#fff3cd", "#664d03", "#ffe69c"),
                 "danger": ("#f8d7da", "#58151c", "#f1aeb5")}


def alert_html(text: str, kind: str = "info") -> str:
    """An alert box holding ``text`` escaped (file text is untrusted), styled inline.

    Parameters
    ----------
    text : str
        Plain text, shown literally.
    kind : str
        ``info``, ``success``, ``warning`` or ``danger``.
    """
    background, colour, border = ALERT_COLOURS.get(kind, ALERT_COLOURS["info"])
    return (f'<div class="alert alert-{kind}" role="alert" style="background:{background};'
            f'color:{colour};border:1px solid {border};padding:6px 10px;margin:6px 0;'
            f'border-radius:6px">{html.escape(str(text))}</div>')


def safe_message(text: str, kind: str = "warning") -> pn.pane.HTML:
    """A pane with an alert box whose text is escaped (file attributes and names are untrusted).

    Parameters
    ----------
    text : str
        Plain text, shown literally.
    kind : str
        ``info``, ``warning``, ``danger`` or ``success``.
    """
    return pn.pane.HTML(alert_html(text, kind), sizing_mode="stretch_width")


def escape(text: object) -> str:
    """HTML-escape any value for display."""
    return html.escape(str(text))


def for_holoviews(frame: pd.DataFrame) -> pd.DataFrame:
    """Return ``frame`` with text columns as ``object`` dtype.

    pandas 3 stores text as Arrow-backed strings, which HoloViews' gridded aggregation cannot
    reshape; plain objects work everywhere.
    """
    text = [c for c in frame.columns if pd.api.types.is_string_dtype(frame[c])]
    return frame.astype({c: object for c in text}) if text else frame


#: Stylesheet for button groups: the chosen button filled in a strong colour, so it can be told
#: apart in the dark theme too (its default there is a barely darker grey).
ACTIVE_BUTTON_CSS = """
.bk-btn-group .bk-btn.bk-active, .bk-btn.bk-active {
  background-color: #0072B2 !important; color: #ffffff !important;
  border-color: #0072B2 !important; font-weight: 600;
}
"""
