"""The site card and colour key: facts about the selected site, as escaped HTML."""

from __future__ import annotations

import panel as pn
import param

from dashboard import queries
from dashboard.service import DataService
from dashboard.views.site_plots import MAX_BANDS
from dashboard.views.style import Look, alert_html, escape, model_colour

#: Style of one entry of the colour key (inline: see :class:`SiteCard`).
_KEY_STYLE = "white-space:nowrap;margin-right:1em"


class SiteCard(pn.viewable.Viewer):
    """The selected site's description, valid days, warnings and unreadable files; the key.

    Fixed-size HTML panes whose text is replaced in place, with the plots, so a new selection
    changes no layout. Panel's HTML pane puts a new text into its element and nothing else;
    a Bokeh ``Div`` (``StaticText``) re-renders and makes the browser lay out the whole page
    again (~0.1 s of a site switch in chromium here, CDP profile). Their styles are inline in
    the text: a pane given ``styles``/``stylesheets`` re-sends them with every text, and the
    browser then lays out the page again too.
    """

    service = param.ClassSelector(class_=DataService)
    look = param.ClassSelector(class_=Look, default=Look())

    def __init__(self, **params):
        super().__init__(**params)
        height = int(260 * self.look.fontscale)
        self._card_box = f'<div style="height:{height}px;overflow-y:auto">'
        self.card = pn.pane.HTML("", width=int(300 * self.look.fontscale), height=height)
        self.key = pn.pane.HTML("", sizing_mode="stretch_width",
                                height=int(60 * self.look.fontscale))

    def update(self, site: str, scenario: int, models: list[str]) -> None:
        """Show ``site`` (call inside the view's held document change)."""
        self.card.object = f"{self._card_box}{self.site_card(site, scenario, models)}</div>"
        self.key.object = self.colour_key(site, scenario, models)

    def site_card(self, site: str, scenario: int, models: list[str]) -> str:
        """HTML facts about the selected site, escaped.

        How many valid observed days each variable has, a warning for sparse variables and the
        files that could not be read.
        """
        if not site:
            return alert_html("Select a site on the map or in the sidebar.", "info")
        facts = queries.site_facts(self.service, site, scenario, models)
        if not facts["known"]:
            return alert_html(f"Unknown site {site!r}.", "danger")
        role = "calibration" if facts["role"] == "Cal" else "validation"
        lines = [f"<b>{escape(site)}</b> — {escape(facts['name'])}, {escape(facts['country'])}",
                 f"{escape(facts['igbp'])} · {role} site · {facts['lat']:.2f}°, "
                 f"{facts['lon']:.2f}°"]
        if not facts["has_obs"]:
            lines.append("No observation file in this archive: spread statistics only.")
        for variable, (n, total) in facts["valid_days"].items():
            lines.append(f"{variable}: {n} valid days of {total} "
                         f"({100 * n / max(total, 1):.1f} %)")
        lines.append("<i>Click a site on the map to select it (○ calibration, "
                     "△ validation).</i>")
        return (f'<div class="site-card">{"<br>".join(lines)}</div>'
                + "".join(alert_html(w, "warning") for w in facts["warnings"])
                + "".join(alert_html(p, "danger") for p in facts["problems"]))

    def colour_key(self, site: str, scenario: int, models: list[str]) -> str:
        """HTML key: the highlighted models' colours, the muted others and the observations."""
        highlighted = queries.highlighted_models(self.service, models)
        all_models = self.service.model_ids()
        entry = f'<span style="{_KEY_STYLE}">'
        items = [f'{entry}<span style="color:{self.look.obs_colour}">●</span> '
                 f'observations, shaded ± 1.96 σ</span>']
        items += [f'{entry}<span style="color:{model_colour(m, all_models)};'
                  f'font-weight:bold">━━</span> {escape(m)}</span>' for m in highlighted]
        others = len(all_models) - len(highlighted)
        if others:
            items.append(f'{entry}<span style="color:{self.look.muted_colour}">'
                         f'━━</span> {others} other model{"s" if others > 1 else ""} '
                         '(posterior; choose models in the sidebar to highlight them)</span>')
        # (the explanation may wrap: on one line it ran past the window in presentation mode)
        items.append('<span>solid: posterior · dashed: prior · shaded: posterior '
                     f'95 % (≤ {MAX_BANDS} highlighted models) · Taylor diagram: arrows run '
                     'from ○ prior to ● posterior</span>')
        return " &nbsp; ".join(items)

    def __panel__(self) -> pn.viewable.Viewable:
        return pn.Column(self.card, self.key)
