"""Per-session storage of uploaded files: safe names, size limits, safe zip extraction, cleanup.

No Panel here. A :class:`SessionUploads` owns one private temporary folder (mode 0700) under
:func:`uploads_base` and writes nothing anywhere else:

- the client's file name is never used as a path: :func:`safe_name` keeps only its last
  component, made of ``[A-Za-z0-9._+-]``, and every file goes into its own numbered
  sub-folder, so ``../../x.nc`` becomes ``<session>/0001/x.nc`` and two files of the same name
  do not overwrite each other;
- sizes are limited per file and per session (:class:`UploadLimits`); zip members are counted
  by the bytes actually extracted (a zip bomb's declared sizes may lie), and extraction stops
  at the first byte over the limit;
- a zip entry's directories are dropped (traversal is impossible), symbolic links and nested
  folders are never created, encrypted entries are refused;
- the folder is deleted by :meth:`SessionUploads.cleanup` (the view calls it when its session is
  destroyed), by :func:`cleanup_all` at interpreter exit and on SIGTERM/SIGINT, and folders left
  by a process that died (SIGKILL) on this host are swept when the next process starts using
  uploads.
"""

from __future__ import annotations

import atexit
import os
import re
import shutil
import signal
import stat
import tempfile
import threading
import unicodedata
import zipfile
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path

MB = 1024 * 1024
#: Default limits (``callmip serve --max-upload-mb`` / ``--max-session-upload-mb``).
DEFAULT_MAX_FILE_MB = 200
DEFAULT_MAX_SESSION_MB = 2048
#: Most members a zip may hold.
MAX_ZIP_MEMBERS = 2000
#: Longest kept file name (characters).
MAX_NAME = 160
_CHUNK = 1 << 20
_UNSAFE = re.compile(r"[^A-Za-z0-9._+\-]")


class UploadRejectedError(Exception):
    """An upload (or a zip member) refused, with a message for the participant."""


@dataclass(frozen=True)
class UploadLimits:
    """Size limits of uploads, in bytes.

    Attributes
    ----------
    max_file_bytes : int
        Largest file (also each member of a zip, uncompressed, and the zip itself).
    max_session_bytes : int
        Most bytes a session may keep (uploaded and extracted files together).
    max_members : int
        Most members a zip may hold.
    """

    max_file_bytes: int = DEFAULT_MAX_FILE_MB * MB
    max_session_bytes: int = DEFAULT_MAX_SESSION_MB * MB
    max_members: int = MAX_ZIP_MEMBERS

    @classmethod
    def from_mb(cls, max_file_mb: float | None = None, max_session_mb: float | None = None
                ) -> UploadLimits:
        """Limits from megabytes (``None``: the default)."""
        file_mb = DEFAULT_MAX_FILE_MB if max_file_mb is None else max_file_mb
        session_mb = DEFAULT_MAX_SESSION_MB if max_session_mb is None else max_session_mb
        if not (file_mb > 0 and session_mb > 0):
            raise ValueError("upload limits must be positive")
        return cls(max_file_bytes=int(file_mb * MB), max_session_bytes=int(session_mb * MB))

    def describe(self) -> str:
        """``200 MB per file, 2048 MB per session``."""
        return (f"{_mb(self.max_file_bytes)} per file, "
                f"{_mb(self.max_session_bytes)} per session")


def _mb(n: int) -> str:
    return f"{n / MB:.0f} MB" if n >= MB else f"{n / 1024:.0f} KB"


def safe_name(name: object) -> str:
    r"""A harmless file name made from a client-supplied one.

    Only the last path component is kept (``/`` and ``\`` both separate), characters outside
    ``[A-Za-z0-9._+-]`` become ``_``, leading dots are removed (no hidden files, no ``..``) and
    the name is cut to :data:`MAX_NAME` characters keeping its ending. The result is never empty,
    never ``.``/``..`` and never contains a separator.

    Examples
    --------
    >>> safe_name("../../etc/passwd")
    'passwd'
    >>> safe_name("C:\\x\\CLASSIC.v2_Phase1b_Scen1_DK-Sor_Cal_Prior.nc")
    'CLASSIC.v2_Phase1b_Scen1_DK-Sor_Cal_Prior.nc'
    """
    text = unicodedata.normalize("NFKC", str(name)).replace("\\", "/").split("/")[-1]
    text = _UNSAFE.sub("_", text).lstrip(".")
    if len(text) > MAX_NAME:
        stem, dot, ext = text.rpartition(".")
        ext = ext[:12] if dot else ""
        text = (stem if dot else text)[: MAX_NAME - len(ext) - 1] + (f".{ext}" if ext else "")
    return text or "upload"


def is_zip(name: str, head: bytes) -> bool:
    """Whether an upload is a zip archive (by its first bytes, or its name when empty)."""
    return head[:4] in (b"PK\x03\x04", b"PK\x05\x06") or (not head and
                                                          name.lower().endswith(".zip"))


@dataclass
class StoredFile:
    """A file kept in a session folder.

    Attributes
    ----------
    path : pathlib.Path
        Where it is (inside the session folder; never shown to the participant).
    name : str
        The safe name shown to the participant (``archive.zip/x.nc`` for a zip member).
    size : int
        Bytes.
    """

    path: Path
    name: str
    size: int


@dataclass
class StoreResult:
    """What one upload gave: the files kept and the messages about parts refused."""

    files: list[StoredFile] = field(default_factory=list)
    refused: list[str] = field(default_factory=list)


# --------------------------------------------------------------------------------------------
# Where session folders live, and how they are removed
# --------------------------------------------------------------------------------------------

_LIVE: dict[str, SessionUploads] = {}
_LIVE_LOCK = threading.Lock()
_HANDLERS_INSTALLED = False


def uploads_base() -> Path:
    """The folder holding every session folder of this user (``$CALLMIP_UPLOAD_DIR`` or tmp)."""
    base = os.environ.get("CALLMIP_UPLOAD_DIR") or os.path.join(
        tempfile.gettempdir(), f"callmip-uploads-{os.getuid() if hasattr(os, 'getuid') else 0}")
    path = Path(base)
    path.mkdir(mode=0o700, parents=True, exist_ok=True)
    return path


def _pid_alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except (PermissionError, OSError):
        return True
    return True


def _host_tag() -> str:
    """The machine's name as it appears in folder names (process ids are per machine)."""
    import socket

    return re.sub(r"[^A-Za-z0-9]", "", socket.gethostname())[:24] or "host"


def sweep_stale(base: Path | None = None) -> int:
    """Remove session folders whose process is gone (a server killed with SIGKILL).

    Folders are named ``p<pid>-<host>-…``; only this host's are considered (another machine
    or container sharing the folder has its own process ids). Returns how many were removed.
    """
    base = base or uploads_base()
    removed = 0
    for entry in base.iterdir():
        match = re.match(rf"p(\d+)-{re.escape(_host_tag())}-", entry.name)
        if match and entry.is_dir() and not _pid_alive(int(match.group(1))):
            shutil.rmtree(entry, ignore_errors=True)
            removed += 1
    return removed


def cleanup_all() -> int:
    """Delete every live session folder of this process (at exit, on SIGTERM); return count."""
    with _LIVE_LOCK:
        live = list(_LIVE.values())
    for uploads in live:
        uploads.cleanup()
    return len(live)


def _on_signal(previous: Callable | int | None, signum: int, frame: object) -> None:
    cleanup_all()
    if callable(previous):
        previous(signum, frame)
    elif signum == signal.SIGINT:
        raise KeyboardInterrupt
    else:
        raise SystemExit(128 + signum)


_ATEXIT_REGISTERED = False


def _register_atexit() -> None:
    """Delete live session folders when the interpreter exits (once per process)."""
    global _ATEXIT_REGISTERED
    if not _ATEXIT_REGISTERED:
        atexit.register(cleanup_all)
        _ATEXIT_REGISTERED = True


def install_cleanup_handlers() -> bool:
    """Delete session folders at exit and on SIGTERM/SIGINT (once per process).

    Signal handlers can only be set from the main thread; elsewhere only the ``atexit`` hook is
    installed. Returns whether the signal handlers are in place.
    """
    global _HANDLERS_INSTALLED
    if _HANDLERS_INSTALLED:
        return True
    _register_atexit()
    if threading.current_thread() is not threading.main_thread():
        return False
    for signum in (signal.SIGTERM, signal.SIGINT):
        previous = signal.getsignal(signum)
        if previous in (signal.SIG_IGN,):
            continue
        signal.signal(signum, lambda s, f, p=previous: _on_signal(p, s, f))
    _HANDLERS_INSTALLED = True
    try:
        sweep_stale()
    except OSError:
        pass
    return True


# --------------------------------------------------------------------------------------------
# One session's uploads
# --------------------------------------------------------------------------------------------

class SessionUploads:
    """The uploads of one session, in a private temporary folder created on first use.

    Parameters
    ----------
    limits : UploadLimits, optional
        Size limits (default 200 MB per file, 2 GB per session).
    base : path-like, optional
        Parent folder (default :func:`uploads_base`).
    """

    def __init__(self, limits: UploadLimits | None = None, base: str | Path | None = None
                 ) -> None:
        self.limits = limits or UploadLimits()
        self._base = Path(base) if base is not None else None
        self._folder: Path | None = None
        self._counter = 0
        self._lock = threading.Lock()
        self.files: list[StoredFile] = []
        self.closed = False

    # -- the folder ----------------------------------------------------------------------
    @property
    def folder(self) -> Path:
        """The session folder (created, mode 0700, on first use)."""
        if self.closed:
            raise UploadRejectedError("this session has ended: reload the page to upload again")
        if self._folder is None:
            base = self._base or uploads_base()
            base.mkdir(mode=0o700, parents=True, exist_ok=True)
            self._folder = Path(tempfile.mkdtemp(prefix=f"p{os.getpid()}-{_host_tag()}-",
                                                 dir=base))
            with _LIVE_LOCK:
                _LIVE[str(self._folder)] = self
            _register_atexit()
        return self._folder

    @property
    def created(self) -> bool:
        """Whether the folder exists (nothing uploaded yet: no folder)."""
        return self._folder is not None and self._folder.exists()

    @property
    def bytes_used(self) -> int:
        """Bytes kept by this session."""
        return sum(f.size for f in self.files)

    def remaining(self) -> int:
        """Bytes this session may still keep."""
        return max(0, self.limits.max_session_bytes - self.bytes_used)

    def cleanup(self) -> None:
        """Delete the folder and everything in it (idempotent); the session takes no more files."""
        with self._lock:
            self.closed = True
            folder, self._folder = self._folder, None
            self.files = []
        if folder is not None:
            shutil.rmtree(folder, ignore_errors=True)
            with _LIVE_LOCK:
                _LIVE.pop(str(folder), None)

    def clear(self) -> None:
        """Delete every kept file but keep taking uploads."""
        with self._lock:
            folder, self._folder = self._folder, None
            self.files = []
        if folder is not None:
            shutil.rmtree(folder, ignore_errors=True)
            with _LIVE_LOCK:
                _LIVE.pop(str(folder), None)

    # -- storing -------------------------------------------------------------------------
    def _slot(self, name: str) -> Path:
        """A new numbered sub-folder's path for ``name`` (already safe)."""
        self._counter += 1
        slot = self.folder / f"{self._counter:04d}"
        slot.mkdir(mode=0o700)
        target = slot / name
        # Belt and braces: the name has no separator, but check the resolved path anyway.
        if target.resolve().parent != slot.resolve():
            raise UploadRejectedError(
                f"{name}: refused (the name points outside the upload folder)")
        return target

    def _check_size(self, name: str, size: int) -> None:
        if size > self.limits.max_file_bytes:
            raise UploadRejectedError(
                f"{name} is {_mb(size)}: larger than the limit of "
                f"{_mb(self.limits.max_file_bytes)} per file")
        if size > self.remaining():
            raise UploadRejectedError(
                f"{name} ({_mb(size)}) would take this session over its limit of "
                f"{_mb(self.limits.max_session_bytes)} (already kept: {_mb(self.bytes_used)}); "
                "remove files or reload the page")

    def add(self, name: str, data: bytes) -> StoreResult:
        """Keep one uploaded file (a zip is extracted); never raises for bad input.

        Parameters
        ----------
        name : str
            The name the browser sent (untrusted).
        data : bytes
            Its content.

        Returns
        -------
        StoreResult
            Files kept and messages for what was refused (oversize, unsafe zip members …).
        """
        result = StoreResult()
        shown = safe_name(name)
        with self._lock:
            try:
                if isinstance(data, str):
                    data = data.encode("utf-8")
                self._check_size(shown, len(data))
                if is_zip(shown, data[:4]):
                    self._extract_zip(shown, data, result)
                else:
                    target = self._slot(shown)
                    _write_private(target, data)
                    stored = StoredFile(target, shown, len(data))
                    self.files.append(stored)
                    result.files.append(stored)
            except UploadRejectedError as exc:
                result.refused.append(str(exc))
            except OSError as exc:
                result.refused.append(f"{shown}: could not be stored ({exc.strerror or exc})")
        return result

    def _extract_zip(self, shown: str, data: bytes, result: StoreResult) -> None:
        import io

        try:
            archive = zipfile.ZipFile(io.BytesIO(data))
            members = archive.infolist()
        except (zipfile.BadZipFile, OSError, ValueError) as exc:
            raise UploadRejectedError(f"{shown}: not a readable zip archive ({exc})") from exc
        if len(members) > self.limits.max_members:
            raise UploadRejectedError(f"{shown} holds {len(members)} entries: more than the "
                                 f"{self.limits.max_members} accepted")
        with archive:
            for info in members:
                if info.is_dir():
                    continue
                member = f"{shown}/{safe_name(info.filename)}"
                if stat.S_ISLNK(info.external_attr >> 16):
                    result.refused.append(f"{member}: symbolic link in the zip, not extracted")
                    continue
                if info.flag_bits & 0x1:
                    result.refused.append(f"{member}: encrypted, not extracted")
                    continue
                try:
                    self._check_size(member, info.file_size)
                    stored = self._extract_member(archive, info, member)
                except UploadRejectedError as exc:
                    result.refused.append(str(exc))
                    if "session over its limit" in str(exc):
                        break
                    continue
                except (zipfile.BadZipFile, OSError, ValueError, RuntimeError,
                        NotImplementedError, EOFError) as exc:
                    result.refused.append(f"{member}: could not be extracted ({exc})")
                    continue
                self.files.append(stored)
                result.files.append(stored)

    def _extract_member(self, archive: zipfile.ZipFile, info: zipfile.ZipInfo, member: str
                        ) -> StoredFile:
        """Extract one member, counting real bytes: stop at the first byte over a limit."""
        limit = min(self.limits.max_file_bytes, self.remaining())
        target = self._slot(safe_name(info.filename))
        written = 0
        try:
            with archive.open(info) as source, _open_private(target) as out:
                while chunk := source.read(_CHUNK):
                    written += len(chunk)
                    if written > limit:
                        raise UploadRejectedError(
                            f"{member}: stopped after {_mb(written)} uncompressed, over the "
                            f"limit of {_mb(limit)} (a zip bomb, or a file too large)")
                    out.write(chunk)
        except BaseException:
            shutil.rmtree(target.parent, ignore_errors=True)
            raise
        return StoredFile(target, member, written)


def _open_private(path: Path):
    """Open a new file for writing, readable by this user only, never following a link."""
    flags = os.O_WRONLY | os.O_CREAT | os.O_EXCL | getattr(os, "O_NOFOLLOW", 0)
    return os.fdopen(os.open(path, flags, 0o600), "wb")


def _write_private(path: Path, data: bytes) -> None:
    with _open_private(path) as out:
        out.write(data)
