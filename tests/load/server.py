"""The dashboard server under test: ``python -m dashboard.cli serve`` as a subprocess.

The server runs in its own process group (killed as a group), listens on 127.0.0.1 only and
logs Panel's session events (``PANEL_LOG_LEVEL=info``: "Session <id> launching/destroyed"), from
which :class:`ServerLog` counts the sessions alive. Memory is the RSS summed over the server's
process tree (the CLI process and, with ``--num-procs``, its forked workers).
"""

from __future__ import annotations

import json
import logging
import os
import re
import signal
import socket
import subprocess
import sys
import threading
import time
import urllib.error
import urllib.request
from collections import Counter, deque
from pathlib import Path
from typing import IO

import psutil

log = logging.getLogger("load")

SESSION_EVENT = re.compile(r"Session (\d+) (launching|destroyed)")
ERROR_LINE = re.compile(r"\bERROR\b|Traceback \(most recent call last\)|Exception in callback")
STATUS_PATH = "/callmip-status"
EXCERPT_LINES = 25
MAX_EXCERPTS = 5
MB = 2**20


class ServerError(RuntimeError):
    """The server did not start, or stopped, when it should have been serving."""


def free_port() -> int:
    """A TCP port on 127.0.0.1 that nothing listens on right now."""
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def serve_flags(repo: Path, timeout: float = 120.0) -> set[str]:
    """The options ``callmip serve`` accepts in ``repo`` (from its ``--help``)."""
    out = subprocess.run([sys.executable, "-m", "dashboard.cli", "serve", "--help"], cwd=repo,
                         capture_output=True, text=True, timeout=timeout, check=False)
    return set(re.findall(r"--[a-z][a-z0-9-]*", out.stdout))


class ServerLog:
    """The server's output: written to a file, scanned for sessions, errors and the URL line.

    Parameters
    ----------
    path : pathlib.Path
        File receiving every line (``[out]``/``[err]`` prefixed).
    url : str
        The URL whose appearance on stdout announces the server (``http://127.0.0.1:PORT/``).
    """

    def __init__(self, path: Path, url: str) -> None:
        self.path = path
        self.url = url
        self.url_line_at: float | None = None
        self.launched: Counter[str] = Counter()
        self.destroyed: Counter[str] = Counter()
        self.error_lines = 0
        self.excerpts: list[list[str]] = []
        self.tail: deque[str] = deque(maxlen=40)
        self._capture = 0
        self._lock = threading.Lock()
        self._file = path.open("a", encoding="utf-8")

    def follow(self, stream: IO[str], label: str) -> threading.Thread:
        """Read ``stream`` line by line in a daemon thread (ends when the stream closes)."""
        def read() -> None:
            for line in stream:
                self.feed(label, line.rstrip("\n"))
        thread = threading.Thread(target=read, name=f"server-{label}", daemon=True)
        thread.start()
        return thread

    def feed(self, label: str, line: str) -> None:
        """Take one line of output."""
        with self._lock:
            if not self._file.closed:
                self._file.write(f"[{label}] {line}\n")
                self._file.flush()
            self.tail.append(f"[{label}] {line}")
            if label == "out" and self.url_line_at is None and self.url in line:
                self.url_line_at = time.monotonic()
            match = SESSION_EVENT.search(line)
            if match:
                counter = self.launched if match.group(2) == "launching" else self.destroyed
                counter[match.group(1)] += 1
            self._scan_error(line)

    def _scan_error(self, line: str) -> None:
        if self._capture and self.excerpts:
            self.excerpts[-1].append(line)
            self._capture -= 1
        if ERROR_LINE.search(line):
            self.error_lines += 1
            if not self._capture and len(self.excerpts) < MAX_EXCERPTS:
                self.excerpts.append([line])
                self._capture = EXCERPT_LINES

    def live_sessions(self) -> int | None:
        """Sessions launched and not yet destroyed (None: the server logs no session events).

        Panel may log an event more than once; a session is alive while its id has more
        "launching" than "destroyed" lines (ids can be reused after a session is gone).
        """
        with self._lock:
            if not self.launched:
                return None
            return sum(n > self.destroyed[sid] for sid, n in self.launched.items())

    def sessions_launched(self) -> int:
        """Distinct session ids seen launching."""
        with self._lock:
            return len(self.launched)

    def close(self) -> None:
        """Close the log file."""
        with self._lock:
            self._file.close()


class ServerProcess:
    """``python -m dashboard.cli serve ROOT`` on 127.0.0.1, in its own process group.

    Parameters
    ----------
    repo : pathlib.Path
        Checkout whose ``dashboard`` package is served (the working directory).
    root : str
        Data folder to serve.
    port : int
        Port to listen on.
    procs : int
        ``--num-procs``.
    options : dict
        More options, e.g. ``{"--num-threads": 4, "--cache-mb": 256}`` (None values are
        left out; options the CLI does not have are dropped with a note).
    env : dict of str
        Environment of the server.
    log_path : pathlib.Path
        Where the server's output goes.
    """

    def __init__(self, *, repo: Path, root: str, port: int, procs: int,
                 options: dict[str, int | None], env: dict[str, str], log_path: Path) -> None:
        self.repo = repo
        self.root = root
        self.port = port
        self.procs = procs
        self.options = {k: v for k, v in options.items() if v is not None}
        self.env = env
        self.url = f"http://127.0.0.1:{port}/"
        self.log = ServerLog(log_path, self.url)
        self.notes: list[str] = []
        self.proc: subprocess.Popen | None = None
        self.url_line: str | None = None

    def command(self, flags: set[str]) -> list[str]:
        """The command line; options the CLI does not have (not in ``flags``) are dropped."""
        cmd = [sys.executable, "-m", "dashboard.cli", "serve", self.root, "--address",
               "127.0.0.1", "--port", str(self.port), "--num-procs", str(self.procs)]
        for flag, value in list(self.options.items()):
            if flag in flags:
                cmd += [flag, str(value)]
            else:
                self.notes.append(f"{flag} {value} dropped: `callmip serve` has no such option")
                del self.options[flag]
        return cmd

    def start(self, flags: set[str]) -> list[str]:
        """Start the server; return its command line (returns at once: see :meth:`wait_ready`)."""
        cmd = self.command(flags)
        self.log.feed("run", " ".join(cmd))
        self.proc = subprocess.Popen(cmd, cwd=self.repo, env=self.env, stdin=subprocess.DEVNULL,
                                     stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
                                     bufsize=1, start_new_session=True)
        assert self.proc.stdout is not None and self.proc.stderr is not None
        self.log.follow(self.proc.stdout, "out")
        self.log.follow(self.proc.stderr, "err")
        return cmd

    def _get(self, path: str, timeout: float) -> bytes | None:
        """The body of ``GET /path`` if it answers 200 (never through a proxy), else None."""
        opener = urllib.request.build_opener(urllib.request.ProxyHandler({}))
        try:
            with opener.open(f"{self.url}{path}", timeout=timeout) as response:
                return response.read() if response.status == 200 else None
        except (urllib.error.URLError, OSError, ValueError):
            return None

    def liveness(self, timeout: float = 2.0) -> bool:
        """Whether ``/liveness`` answers 200."""
        return self._get("liveness", timeout) is not None

    def app_status(self, timeout: float = 10.0) -> dict | None:
        """The app's status of the worker that answers ``/callmip-status`` (None if absent).

        ``callmip serve`` reports there the answering worker's pid, RSS and cache use.
        """
        body = self._get(STATUS_PATH.lstrip("/"), timeout)
        try:
            return json.loads(body) if body else None
        except ValueError:
            return None

    def wait_ready(self, timeout: float) -> float:
        """Wait until ``/liveness`` answers; return the seconds since the start.

        Also checks the contract that the line with the URL is printed only once the URL
        answers (``url_line``: "after answering", "before answering" or "not printed").

        Raises
        ------
        ServerError
            If the server exits or does not answer within ``timeout`` seconds.
        """
        start = time.monotonic()
        while time.monotonic() - start < timeout:
            self.check_running()
            line_seen = self.log.url_line_at is not None
            if self.liveness():
                ready = time.monotonic() - start
                self._check_url_line(line_seen)
                return ready
            if line_seen and self.url_line is None:
                self.url_line = "before answering"
            time.sleep(0.25)
        raise ServerError(f"the server did not answer {self.url}liveness within {timeout:.0f} s")

    def _check_url_line(self, seen_before_ready: bool, wait: float = 10.0) -> None:
        if self.url_line is not None:
            return
        if seen_before_ready:  # printed, and the URL answered at the first check after it
            self.url_line = "after answering"
            return
        deadline = time.monotonic() + wait
        while self.log.url_line_at is None and time.monotonic() < deadline:
            time.sleep(0.1)
        self.url_line = "after answering" if self.log.url_line_at else "not printed"

    def check_running(self) -> None:
        """Raise :class:`ServerError` if the server has exited."""
        if self.proc is not None and self.proc.poll() is not None:
            tail = "\n".join(list(self.log.tail)[-15:])
            raise ServerError(f"the server exited with status {self.proc.returncode}:\n{tail}")

    def processes(self) -> list[psutil.Process]:
        """The server's process and all its descendants."""
        if self.proc is None:
            return []
        try:
            main = psutil.Process(self.proc.pid)
            return [main, *main.children(recursive=True)]
        except psutil.NoSuchProcess:
            return []

    def _sum(self, measure) -> float:
        total = 0.0
        for proc in self.processes():
            try:
                total += measure(proc)
            except (psutil.NoSuchProcess, psutil.AccessDenied, psutil.ZombieProcess):
                pass
        return total

    def per_process(self) -> dict[int, dict[str, float | str]]:
        """CPU seconds, RSS (MiB), status and thread count of each process of the tree."""
        out: dict[int, dict[str, float | str]] = {}
        for proc in self.processes():
            try:
                with proc.oneshot():
                    out[proc.pid] = {"cpu_s": sum(proc.cpu_times()[:2]),
                                     "rss_mb": proc.memory_info().rss / MB,
                                     "status": proc.status(), "threads": proc.num_threads(),
                                     "websockets": self._clients(proc)}
            except (psutil.NoSuchProcess, psutil.AccessDenied, psutil.ZombieProcess):
                pass
        return out

    def _clients(self, proc: psutil.Process) -> int:
        """Established TCP connections of ``proc`` on the server's port."""
        return sum(c.status == psutil.CONN_ESTABLISHED and c.laddr and c.laddr.port == self.port
                   for c in proc.net_connections(kind="tcp"))

    def rss_mb(self) -> float:
        """RSS summed over the process tree, in MiB (shared pages of forks count twice)."""
        return self._sum(lambda p: p.memory_info().rss) / MB

    def pss_mb(self) -> float:
        """PSS summed over the process tree, in MiB (shared pages split between processes)."""
        return self._sum(lambda p: p.memory_full_info().pss) / MB

    def cpu_seconds(self) -> float:
        """CPU time (user + system) used so far by the process tree."""
        return self._sum(lambda p: sum(p.cpu_times()[:2]))

    def wait_idle(self, *, busy_cores: float = 0.15, window: float = 2.0,
                  timeout: float = 120.0) -> float:
        """Wait until the server uses under ``busy_cores`` of CPU over ``window`` s.

        (``callmip serve`` reads the site files in a background thread after it starts.)
        Returns the seconds waited (``timeout`` if it never went idle).
        """
        start = time.monotonic()
        while time.monotonic() - start < timeout:
            self.check_running()
            before = self.cpu_seconds()
            time.sleep(window)
            if (self.cpu_seconds() - before) / window < busy_cores:
                break
        return time.monotonic() - start

    def wait_sessions_gone(self, max_wait: float) -> tuple[float, int | None]:
        """Wait until the server has destroyed every session (at most ``max_wait`` s).

        Returns
        -------
        (float, int or None)
            Seconds waited and sessions still alive (None: not known, waited ``max_wait``).
        """
        start = time.monotonic()
        while time.monotonic() - start < max_wait:
            self.check_running()
            live = self.log.live_sessions()
            if live == 0:
                break
            time.sleep(0.5)
        return time.monotonic() - start, self.log.live_sessions()

    def stop(self) -> None:
        """Stop the server's process group: SIGTERM, then SIGKILL after 10 s."""
        if self.proc is None:
            return
        for sig, wait in ((signal.SIGTERM, 10.0), (signal.SIGKILL, 10.0)):
            try:
                os.killpg(self.proc.pid, sig)
            except ProcessLookupError:
                break
            try:
                self.proc.wait(timeout=wait)
                break
            except subprocess.TimeoutExpired:
                continue
        self._kill_strays()
        self.log.close()

    def _kill_strays(self) -> None:
        """Kill what is left of the group (forked workers whose parent already exited)."""
        try:
            os.killpg(self.proc.pid, signal.SIGKILL)
        except (ProcessLookupError, PermissionError):
            pass


class MemorySampler:
    """Samples the server's RSS in a daemon thread and keeps the peak.

    It also counts each server process's connections every 2 s (keeping the most: how the
    sessions spread over the workers) and logs their CPU use, connections and RSS every
    ``status_every`` s.

    Parameters
    ----------
    server : ServerProcess
        The server to watch.
    interval : float
        Seconds between RSS samples.
    status_every : float
        Seconds between status lines.
    """

    def __init__(self, server: ServerProcess, interval: float = 0.25,
                 status_every: float = 15.0) -> None:
        self.server = server
        self.interval = interval
        self.status_every = status_every
        self._last_status: tuple[float, dict[int, dict]] | None = None
        self.max_connections: dict[int, int] = {}
        self._last_watch = 0.0
        self.peak_mb = 0.0
        self.samples = 0
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, name="rss-sampler", daemon=True)

    def _run(self) -> None:
        while not self._stop.is_set():
            self.sample()
            self._watch_processes()
            self._stop.wait(self.interval)

    def _watch_processes(self) -> None:
        """Every 2 s count each process's connections; every ``status_every`` s log a status."""
        now = time.monotonic()
        if now - self._last_watch < 2.0:
            return
        self._last_watch = now
        procs = self.server.per_process()
        for pid, proc in procs.items():
            self.max_connections[pid] = max(self.max_connections.get(pid, 0),
                                            int(proc["websockets"]))
        if self._last_status is None:
            self._last_status = (now, procs)
            return
        then, before = self._last_status
        if now - then >= self.status_every:
            log.info("server: %s", "; ".join(
                _status(pid, proc, before.get(pid, proc), now - then)
                for pid, proc in sorted(procs.items())))
            self._last_status = (now, procs)

    def sample(self) -> float:
        """Take one sample now; return it (MiB)."""
        rss = self.server.rss_mb()
        self.peak_mb = max(self.peak_mb, rss)
        self.samples += 1
        return rss

    def reset_peak(self) -> None:
        """Start a new peak and connection count (the next samples only)."""
        self.peak_mb = 0.0
        self.max_connections = {}

    def start(self) -> MemorySampler:
        """Start sampling."""
        self._thread.start()
        return self

    def stop(self) -> None:
        """Stop sampling (waits for the thread)."""
        self._stop.set()
        self._thread.join(timeout=5)


def _status(pid: int, now: dict, before: dict, seconds: float) -> str:
    cores = (float(now["cpu_s"]) - float(before["cpu_s"])) / max(seconds, 1e-9)
    return (f"pid {pid} {cores:.2f} cores, {now['websockets']} connections, "
            f"{float(now['rss_mb']):.0f} MiB")
