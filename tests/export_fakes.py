"""A view with its own static pages, registered in place of a view not yet written (tests)."""

from __future__ import annotations

import panel as pn
import param

from dashboard.service import DataService
from dashboard.state import Selection
from dashboard.views.style import Look


class HookedView(pn.viewable.Viewer):
    """Shows the selected variable; exports one page per exported variable through its hook."""

    selection = param.ClassSelector(class_=Selection)
    service = param.ClassSelector(class_=DataService)
    look = param.ClassSelector(class_=Look, default=Look())

    @classmethod
    def static_pages(cls, context):
        from dashboard.export import StaticPage

        context.messages.append("hooked: pages from the view's own hook")
        return [StaticPage(path=f"hooked/{variable}.html", title=f"Hooked {variable}",
                           build=lambda v=variable: context.view("parameters", variable=v),
                           key={"variable": variable}, group="Hooked")
                for variable in context.variables]

    def __panel__(self):
        return pn.pane.HTML(f"<p>hooked view of {self.selection.variable}</p>")


class PlainView(HookedView):
    """The same view without a hook: exported as its default single page."""

    static_pages = None
