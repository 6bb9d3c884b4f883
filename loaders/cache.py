"""Memory bounded in bytes, and locks that survive ``fork``.

:class:`ByteLRU` keeps computed values up to a byte budget and evicts the least recently used
ones beyond it. :class:`ForkSafeLock` is a re-entrant lock that a child process gets fresh
(never inherited locked): a server that forks its workers while another thread holds a read
lock would otherwise deadlock in every child. Neither knows anything of Panel.
"""

from __future__ import annotations

import os
import sys
import threading
import warnings
from collections import OrderedDict
from collections.abc import Callable, Hashable
from dataclasses import dataclass
from typing import Any

import numpy as np

#: Environment variable capping what a process keeps in memory, in MB.
CACHE_MB_ENV = "CALLMIP_CACHE_MB"
#: Default cap when neither ``--cache-mb`` nor :data:`CACHE_MB_ENV` is given.
DEFAULT_CACHE_MB = 512


class ForkSafeLock:
    """A re-entrant lock replaced by a new, unlocked one in a forked child.

    Use it like :class:`threading.RLock` (``with lock: ...``).
    """

    def __init__(self) -> None:
        self._lock = threading.RLock()
        if hasattr(os, "register_at_fork"):
            os.register_at_fork(after_in_child=self._renew)

    def _renew(self) -> None:
        self._lock = threading.RLock()

    def __enter__(self) -> bool:
        return self._lock.acquire()

    def __exit__(self, *exc: object) -> None:
        self._lock.release()

    def acquire(self, blocking: bool = True, timeout: float = -1) -> bool:
        """Acquire the lock (see :meth:`threading.RLock.acquire`)."""
        return self._lock.acquire(blocking, timeout)

    def release(self) -> None:
        """Release the lock."""
        self._lock.release()


def cache_bytes(cache_mb: float | None = None) -> int:
    """The byte budget: ``cache_mb``, else ``$CALLMIP_CACHE_MB``, else 512 MB.

    A value that is not a positive number warns and keeps the default.
    """
    if cache_mb is None:
        text = os.environ.get(CACHE_MB_ENV, "").strip()
        if not text:
            return DEFAULT_CACHE_MB * 2**20
        try:
            cache_mb = float(text)
        except ValueError:
            warnings.warn(f"{CACHE_MB_ENV}={text!r} is not a number; keeping "
                          f"{DEFAULT_CACHE_MB} MB", stacklevel=2)
            return DEFAULT_CACHE_MB * 2**20
    if not cache_mb > 0:
        warnings.warn(f"a cache of {cache_mb} MB is not positive; keeping {DEFAULT_CACHE_MB} MB",
                      stacklevel=2)
        return DEFAULT_CACHE_MB * 2**20
    return int(cache_mb * 2**20)


def nbytes(value: Any) -> int:
    """Estimated memory held by ``value``: arrays, xarray and pandas objects, containers.

    Objects may say for themselves with an ``nbytes`` attribute (xarray, numpy and
    :class:`dashboard.sitedata.SiteSeries` do). Strings shared between rows are counted as
    pointers, which is what they cost.
    """
    import pandas as pd

    if isinstance(value, pd.DataFrame):
        return int(value.memory_usage(index=True, deep=False).sum())
    if isinstance(value, (pd.Series, pd.Index)):
        return int(value.memory_usage(index=False, deep=False))
    if isinstance(value, np.ndarray):
        return int(value.nbytes)
    if isinstance(value, dict):
        return sum(nbytes(v) for v in value.values()) + sys.getsizeof(value)
    if isinstance(value, (list, tuple)):
        return sum(nbytes(v) for v in value) + sys.getsizeof(value)
    size = getattr(value, "nbytes", None)
    if isinstance(size, (int, np.integer)):
        return int(size)
    return sys.getsizeof(value)


@dataclass
class CacheStats:
    """What a :class:`ByteLRU` holds and has done."""

    entries: int
    bytes: int
    max_bytes: int
    hits: int
    misses: int
    evictions: int


class ByteLRU:
    """A least-recently-used cache bounded by the bytes of what it holds.

    Parameters
    ----------
    max_bytes : int
        Budget. A value larger than the whole budget is returned but not kept.
    sizeof : callable, optional
        Size of a value in bytes (default :func:`nbytes`).

    Notes
    -----
    Thread-safe; the lock is a :class:`ForkSafeLock`. Values are computed outside the lock, so a
    slow computation never blocks readers of other keys (two threads asking for the same missing
    key may both compute it; the second result replaces the first).
    """

    def __init__(self, max_bytes: int, *, sizeof: Callable[[Any], int] = nbytes) -> None:
        self.max_bytes = int(max_bytes)
        self._sizeof = sizeof
        self._items: OrderedDict[Hashable, tuple[Any, int]] = OrderedDict()
        self._bytes = 0
        self._lock = ForkSafeLock()
        self._hits = self._misses = self._evictions = 0

    def __contains__(self, key: Hashable) -> bool:
        with self._lock:
            return key in self._items

    def __len__(self) -> int:
        with self._lock:
            return len(self._items)

    @property
    def bytes(self) -> int:
        """Bytes currently held."""
        return self._bytes

    def get(self, key: Hashable, default: Any = None) -> Any:
        """The value of ``key`` (now most recently used), or ``default``."""
        with self._lock:
            item = self._items.get(key)
            if item is None:
                self._misses += 1
                return default
            self._items.move_to_end(key)
            self._hits += 1
            return item[0]

    def put(self, key: Hashable, value: Any, size: int | None = None) -> Any:
        """Keep ``value`` under ``key`` (evicting older entries to fit); return ``value``."""
        size = self._sizeof(value) if size is None else int(size)
        with self._lock:
            old = self._items.pop(key, None)
            if old is not None:
                self._bytes -= old[1]
            if size > self.max_bytes:
                return value
            self._items[key] = (value, size)
            self._bytes += size
            while self._bytes > self.max_bytes and self._items:
                _, (_, evicted) = self._items.popitem(last=False)
                self._bytes -= evicted
                self._evictions += 1
        return value

    def get_or_compute(self, key: Hashable, compute: Callable[[], Any]) -> Any:
        """The cached value of ``key``, or ``compute()`` kept under it."""
        sentinel = _MISSING
        value = self.get(key, sentinel)
        if value is not sentinel:
            return value
        return self.put(key, compute())

    def discard(self, key: Hashable) -> None:
        """Forget ``key`` if present."""
        with self._lock:
            old = self._items.pop(key, None)
            if old is not None:
                self._bytes -= old[1]

    def clear(self) -> None:
        """Forget everything."""
        with self._lock:
            self._items.clear()
            self._bytes = 0

    def stats(self) -> CacheStats:
        """Entries, bytes, budget, hits, misses and evictions so far."""
        with self._lock:
            return CacheStats(len(self._items), self._bytes, self.max_bytes, self._hits,
                              self._misses, self._evictions)


_MISSING = object()
