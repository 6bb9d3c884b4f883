"""Build a catalog of a data folder from file names alone (no file is opened).

Modelled on intake-esm / ecgtools builders: one row per file, parsed fields as columns, files that
fit no convention kept as ``unrecognised`` rows with the reason.
"""

from __future__ import annotations

import os
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import pandas as pd

from loaders.naming import ParsedName, parse_name

#: Columns of a catalog, in order.
CATALOG_COLUMNS: tuple[str, ...] = (
    "path", "name", "kind", "convention", "model", "version", "phase", "scenario", "site",
    "cal_val", "stage", "resolution", "frequency", "year_start", "year_end", "collection",
    "size", "mtime", "reason",
)

#: Columns every ``--json`` row carries (the CLI contract).
JSON_KEYS: tuple[str, ...] = (
    "path", "kind", "model", "version", "phase", "scenario", "site", "cal_val", "stage",
    "reason",
)

_SKIP_DIRS = {".git", "__pycache__", ".ipynb_checkpoints", ".zarr"}


@dataclass(frozen=True)
class _FileStat:
    path: str
    size: int | None
    mtime: float | None


def _walk_local(root: Path) -> Iterator[_FileStat]:
    stack = [root]
    while stack:
        folder = stack.pop()
        try:
            entries = list(os.scandir(folder))
        except OSError:
            continue
        for entry in entries:
            if entry.name.startswith("."):
                continue
            try:
                if entry.is_dir(follow_symlinks=False):
                    if entry.name not in _SKIP_DIRS and not entry.name.endswith(".zarr"):
                        stack.append(Path(entry.path))
                elif entry.is_file():
                    st = entry.stat()
                    yield _FileStat(entry.path, st.st_size, st.st_mtime)
            except OSError:
                yield _FileStat(entry.path, None, None)


def _walk_fsspec(url: str) -> Iterator[_FileStat]:
    import fsspec

    fs, _, (root,) = fsspec.get_fs_token_paths(url)
    protocol = fs.protocol[0] if isinstance(fs.protocol, (tuple, list)) else fs.protocol
    for path, info in fs.find(root, detail=True).items():
        mtime = info.get("mtime") or info.get("LastModified")
        if hasattr(mtime, "timestamp"):
            mtime = mtime.timestamp()
        full = path if "://" in path else f"{protocol}://{path}"
        yield _FileStat(full, info.get("size"), mtime if isinstance(mtime, float) else None)


def iter_files(root: str | os.PathLike[str]) -> Iterator[_FileStat]:
    """Yield every file under ``root`` (a folder or an fsspec URL such as ``s3://bucket/x``).

    Hidden files and folders are skipped.
    """
    text = str(root)
    if "://" in text and not text.startswith("file://"):
        yield from _walk_fsspec(text)
        return
    if text.startswith("file://"):
        text = text[len("file://"):]
    path = Path(text)
    if path.is_file():
        st = path.stat()
        yield _FileStat(str(path), st.st_size, st.st_mtime)
        return
    yield from _walk_local(path)


def catalog_row(parsed: ParsedName, path: str, size: int | None = None,
                mtime: float | None = None) -> dict:
    """Return one catalog row (a dict with :data:`CATALOG_COLUMNS`)."""
    row = parsed.to_dict()
    row.update(path=path, size=size, mtime=mtime)
    return {c: row.get(c) for c in CATALOG_COLUMNS}


def build_catalog(root: str | os.PathLike[str]) -> pd.DataFrame:
    """List every file under ``root`` with what its name says about it.

    Parameters
    ----------
    root : str or path-like
        A folder, a single file, or an fsspec URL (where the protocol's package is installed).

    Returns
    -------
    pandas.DataFrame
        One row per file with :data:`CATALOG_COLUMNS`, sorted by path. ``kind`` is one of
        ``site_run``, ``global_run``, ``observation``, ``parameters``, ``unrecognised``;
        ``reason`` explains unrecognised names. No file is opened.

    Raises
    ------
    FileNotFoundError
        If a local ``root`` does not exist.
    """
    text = str(root)
    if "://" not in text and not Path(text).exists():
        raise FileNotFoundError(f"data root {text!r} does not exist")
    rows = [catalog_row(parse_name(f.path), f.path, f.size, f.mtime) for f in iter_files(root)]
    df = pd.DataFrame(rows, columns=list(CATALOG_COLUMNS))
    for col in ("scenario", "year_start", "year_end", "size"):
        df[col] = df[col].astype("Int64")
    return df.sort_values("path", ignore_index=True)


def catalog_records(df: pd.DataFrame) -> list[dict]:
    """Return catalog rows as JSON-ready dicts (``None`` for missing, ints for numbers)."""
    records = []
    for row in df.to_dict(orient="records"):
        clean = {}
        for key, value in row.items():
            if value is None or (not isinstance(value, str) and pd.isna(value)):
                clean[key] = None
            elif hasattr(value, "item"):
                clean[key] = value.item()
            else:
                clean[key] = value
        records.append(clean)
    return records
