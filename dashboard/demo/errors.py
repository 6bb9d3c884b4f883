"""The one exception the demo generator raises for bad arguments or a failed write."""

from __future__ import annotations

from dashboard.cli import UsageError


class DemoArchiveError(UsageError, ValueError):
    """The demo archive cannot be generated; the message says why (and names the file).

    It is a :class:`dashboard.cli.UsageError`, so ``callmip demo`` prints the message without a
    traceback, and a :class:`ValueError` for library callers.
    """
