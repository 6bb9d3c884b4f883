"""``callmip serve`` as an operator runs it: a real process, one or several workers."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
import urllib.error
import urllib.request
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import pytest

from tests.appdata import build_app_archive
from tests.conftest import free_port

REPO = Path(__file__).resolve().parent.parent


@pytest.fixture(scope="module")
def archive_root(tmp_path_factory) -> Path:
    return build_app_archive(tmp_path_factory.mktemp("serve-archive"))



class Served:
    """A ``callmip serve`` subprocess; its URL is known once it has printed it."""

    def __init__(self, root: Path, *args: str, cache_dir: Path) -> None:
        self.port = free_port()
        env = {**os.environ, "CALLMIP_CACHE_DIR": str(cache_dir), "PYTHONUNBUFFERED": "1"}
        self.process = subprocess.Popen(
            [sys.executable, "-m", "dashboard.cli", "serve", str(root), "--address",
             "127.0.0.1", "--port", str(self.port), *args],
            stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True, cwd=REPO, env=env,
            start_new_session=True)
        self.output: list[str] = []

    def wait_for_url(self, timeout: float = 120) -> str:
        """The URL the server printed (reading its output until then)."""
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            line = self.process.stdout.readline()
            if not line:
                if self.process.poll() is not None:
                    break
                continue
            self.output.append(line)
            if "http://" in line and "serving" in line:
                return line[line.index("http://"):].split()[0]
        raise AssertionError(f"no URL printed; output: {''.join(self.output)}")

    def stop(self) -> None:
        try:
            os.killpg(self.process.pid, signal.SIGTERM)
        except ProcessLookupError:
            return
        try:
            self.process.wait(10)
        except subprocess.TimeoutExpired:
            os.killpg(self.process.pid, signal.SIGKILL)
            self.process.wait(10)


@pytest.fixture(scope="module")
def one_worker(archive_root, tmp_path_factory):
    """One single-worker server shared by the tests that only send requests."""
    served = Served(archive_root, cache_dir=tmp_path_factory.mktemp("cache"))
    url = served.wait_for_url()
    yield url
    served.stop()


@pytest.fixture
def serve(archive_root, tmp_path):
    started: list[Served] = []

    def start(*args: str) -> Served:
        served = Served(archive_root, *args, cache_dir=tmp_path / "cache")
        started.append(served)
        return served

    yield start
    for served in started:
        served.stop()


def _get(url: str, timeout: float = 60) -> tuple[int, str]:
    with urllib.request.urlopen(url, timeout=timeout) as response:
        return response.status, response.read().decode("utf-8", "replace")


def test_the_url_is_printed_only_once_it_answers(serve):
    served = serve()
    url = served.wait_for_url()
    assert url == f"http://127.0.0.1:{served.port}/"
    status, body = _get(url)  # at once: no "connection refused"
    assert status == 200 and "CalLMIP Explorer" in body


def test_two_workers_both_serve(serve):
    served = serve("--num-procs", "2", "--cache-mb", "64")
    url = served.wait_for_url()

    def status(_: int) -> dict:
        return json.loads(_get(f"{url}callmip-status", timeout=30)[1])

    pids: set[int] = set()
    with ThreadPoolExecutor(8) as pool:
        for _ in range(10):
            pids |= {s["pid"] for s in pool.map(status, range(16))}
            if len(pids) >= 2:
                break
    assert len(pids) == 2, pids  # two forked workers answered; neither deadlocked
    assert served.process.pid not in pids  # the parent only supervises
    for pid in pids:  # each worker's cache has the byte budget it was given
        while True:
            s = status(0)
            if s["pid"] == pid:
                assert s["cache_max"] == 64 * 2**20 and s["cache"] <= s["cache_max"]
                break
    # Pages are served whichever worker answers.
    for _ in range(4):
        assert _get(f"{url}?view=sites&site=DK-Sor")[0] == 200


@pytest.mark.parametrize("query", ["scenario=0", "scenario=-5", "scenario=abc",
                                   "site=%3Cscript%3Ealert(1)%3C/script%3E", "view=nope",
                                   "models=,,,", "variable=%00", "stage=x&metric=y"])
def test_any_url_value_gets_a_page_without_a_traceback(one_worker, query):
    status, body = _get(f"{one_worker}?{query}")
    assert status == 200
    assert "Traceback" not in body and "<script>alert(1)" not in body


def test_bad_options_are_refused_with_a_message(archive_root, tmp_path):
    for args in (["--cache-mb", "0"], ["--num-procs", "-1"]):
        result = subprocess.run(
            [sys.executable, "-m", "dashboard.cli", "serve", str(archive_root), *args],
            capture_output=True, text=True, timeout=120, cwd=REPO,
            env={**os.environ, "CALLMIP_CACHE_DIR": str(tmp_path / "cache")})
        assert result.returncode == 2, result
        assert "error" in result.stderr
