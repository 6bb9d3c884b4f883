"""The embedded demo archive: synthetic CalLMIP files made by a real toy calibration.

``generate_archive(out, seed=0, resolution=2.0, years=(2001, 2020))`` writes it;
``ensure_demo_archive()`` keeps one cached copy per user. Nothing is generated at import.
"""

from __future__ import annotations

from dashboard.demo.archive import (
    GENERATOR_VERSION,
    demo_cache_dir,
    ensure_demo_archive,
    generate_archive,
)
from dashboard.demo.errors import DemoArchiveError

__all__ = ["GENERATOR_VERSION", "DemoArchiveError", "demo_cache_dir", "ensure_demo_archive",
           "generate_archive"]
