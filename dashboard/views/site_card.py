"""The site card and colour key: facts about the selected site, as escaped HTML."""

from __future__ import annotations

import panel as pn
import param

from dashboard import queries
from dashboard.service import DataService
from dashboard.views.site_plots import MAX_BANDS
from dashboard.views.style import Look, alert_html, escape, model_colour


class SiteCard(pn.viewable.Viewer):
    """The selected site's description, valid days, warnings and unreadable files; the key.

    Fixed-size blocks of (escaped) HTML whose text is replaced in place, with the plots, so a
    new selection changes no layout. StaticText sends only the new text; an HTML pane re-sends
    its stylesheets on every update, and the browser then lays out and repaints the whole page.
    """

    service = param.ClassSelector(class_=DataService)
    look = param.ClassSelector(class_=Look, default=Look())

    def __init__(self, **params):
        super().__init__(**params)
        self.card = pn.widgets.StaticText(value="", width=int(300 * self.look.fontscale),
                                          height=int(260 * self.look.fontscale),
                                          styles={"overflow-y": "auto"})
        self.key = pn.widgets.StaticText(
            value="", sizing_mode="stretch_width", height=int(60 * self.look.fontscale),
            stylesheets=[".key{white-space:nowrap;margin-right:1em}"])

    def update(self, site: str, scenario: int, models: list[str]) -> None:
        """Show ``site`` (call inside the view's held document change)."""
        self.card.value = self.site_card(site, scenario, models)
        self.key.value = self.colour_key(site, scenario, models)

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
        items = [f'<span class="key"><span style="color:{self.look.obs_colour}">●</span> '
                 f'observations, shaded ± 1.96 σ</span>']
        items += [f'<span class="key"><span style="color:{model_colour(m, all_models)};'
                  f'font-weight:bold">━━</span> {escape(m)}</span>' for m in highlighted]
        others = len(all_models) - len(highlighted)
        if others:
            items.append(f'<span class="key"><span style="color:{self.look.muted_colour}">'
                         f'━━</span> {others} other model{"s" if others > 1 else ""} '
                         '(posterior; choose models in the sidebar to highlight them)</span>')
        items.append('<span class="key">solid: posterior · dashed: prior · shaded: posterior '
                     f'95 % (≤ {MAX_BANDS} highlighted models) · Taylor diagram: arrows run '
                     'from ○ prior to ● posterior</span>')
        return " &nbsp; ".join(items)

    def __panel__(self) -> pn.viewable.Viewable:
        return pn.Column(self.card, self.key)
