"""Deployment files: deploy/serve.sh as a container would run it, compose and nginx config.

No Docker engine runs here: the tests cover everything up to it (the script the container
runs, on real ports; the compose file parsed as YAML and checked for structure; the nginx
configuration's stickiness and websocket upgrade; the Dockerfile's entry point).
"""

from __future__ import annotations

import os
import re
import signal
import subprocess
import sys
import time
import urllib.error
import urllib.request
from pathlib import Path

import pytest
import yaml

from tests.appdata import build_app_archive
from tests.conftest import free_port

REPO = Path(__file__).resolve().parent.parent
DEPLOY = REPO / "deploy"
SERVE_SH = DEPLOY / "serve.sh"


@pytest.fixture(scope="module")
def archive_root(tmp_path_factory) -> Path:
    return build_app_archive(tmp_path_factory.mktemp("deploy-archive"))



def _env(**values: str) -> dict[str, str]:
    """The environment serve.sh gets: this checkout's code, this Python, nothing inherited
    from CALLMIP_* / PANEL_* of the developer's shell."""
    env = {k: v for k, v in os.environ.items()
           if not k.startswith(("CALLMIP_", "PANEL_")) and k != "PORT"}
    env.update(PYTHONPATH=str(REPO), CALLMIP_PYTHON=sys.executable, PYTHONUNBUFFERED="1")
    env.update(values)
    return env


def _dry_run(**values: str) -> list[str]:
    result = subprocess.run(["sh", str(SERVE_SH)], env=_env(CALLMIP_DRY_RUN="1", **values),
                            capture_output=True, text=True, timeout=30)
    assert result.returncode == 0, result.stderr
    return result.stdout.split()


class ServeSh:
    """deploy/serve.sh started as the container starts it, on a free port."""

    def __init__(self, root: Path, cache: Path, **values: str) -> None:
        self.port = free_port()
        self.process = subprocess.Popen(
            ["sh", str(SERVE_SH)],
            env=_env(CALLMIP_DATA=str(root), PORT=str(self.port), CALLMIP_ADDRESS="127.0.0.1",
                     CALLMIP_CACHE_DIR=str(cache), CALLMIP_CACHE_MB="64", **values),
            stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True, cwd="/",
            start_new_session=True)
        self.output: list[str] = []

    def wait_ready(self, timeout: float = 240) -> str:
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            line = self.process.stdout.readline()
            if not line:
                if self.process.poll() is not None:
                    break
                continue
            self.output.append(line)
            if "serving on http://" in line:
                return f"http://127.0.0.1:{self.port}"
        raise AssertionError(f"serve.sh did not start: {''.join(self.output)}")

    def stop(self) -> None:
        try:
            os.killpg(self.process.pid, signal.SIGTERM)
        except ProcessLookupError:
            return
        try:
            self.process.wait(15)
        except subprocess.TimeoutExpired:
            os.killpg(self.process.pid, signal.SIGKILL)
            self.process.wait(10)


def _status(url: str) -> tuple[int, str]:
    try:
        with urllib.request.urlopen(url, timeout=60) as response:
            return response.status, response.read().decode("utf-8", "replace")
    except urllib.error.HTTPError as exc:
        return exc.code, ""


# ----------------------------------------------------------------------------- serve.sh
def test_serve_sh_answers_on_root_and_liveness(archive_root, tmp_path):
    served = ServeSh(archive_root, tmp_path / "cache")
    try:
        url = served.wait_ready()
        status, body = _status(f"{url}/")
        assert status == 200 and "CalLMIP Explorer" in body
        assert _status(f"{url}/liveness")[0] == 200
    finally:
        served.stop()
    assert served.process.returncode is not None  # the server stopped with its script


def test_two_serve_sh_processes_both_answer(archive_root, tmp_path):
    # As behind nginx: two independent processes on their own ports, one shared cache.
    first = ServeSh(archive_root, tmp_path / "cache", CALLMIP_WARM="0")
    second = ServeSh(archive_root, tmp_path / "cache", CALLMIP_WARM="0")
    try:
        urls = [first.wait_ready(), second.wait_ready()]
        assert urls[0] != urls[1]
        for url in urls:
            assert _status(f"{url}/liveness")[0] == 200
            status, body = _status(f"{url}/?view=sites&site=DK-Sor")
            assert status == 200 and "CalLMIP Explorer" in body
        pids = {_status(f"{url}/callmip-status")[1] for url in urls}
        assert len(pids) == 2  # two different processes answered
    finally:
        first.stop()
        second.stop()


def test_serve_sh_maps_the_environment_to_exact_flags():
    args = _dry_run(CALLMIP_DATA="s3://bucket/callmip", PORT="7000", CALLMIP_PROCS="3",
                    CALLMIP_CACHE_MB="900",
                    CALLMIP_ALLOWED_ORIGINS="explorer.example.org, explorer.example.org:443",
                    CALLMIP_BEHIND_PROXY="1")
    assert args[:5] == [sys.executable, "-m", "dashboard.cli", "serve", "s3://bucket/callmip"]
    text = " ".join(args)
    assert "--port 7000" in text and "--num-procs 3" in text and "--cache-mb 900" in text
    origins = [args[i + 1] for i, a in enumerate(args) if a == "--allow-websocket-origin"]
    assert origins == ["explorer.example.org", "explorer.example.org:443"]
    assert "--warm" in args and "--use-xheaders" in args
    assert "--no-upload" in args  # upload off by default on a public site
    assert "--oauth-provider" not in args


def test_serve_sh_upload_and_oauth_are_opt_in():
    args = _dry_run(CALLMIP_DATA="/data", CALLMIP_UPLOAD="1", CALLMIP_WARM="0",
                    CALLMIP_OAUTH_PROVIDER="github",
                    CALLMIP_OAUTH_REDIRECT_URI="https://explorer.example.org/login",
                    PANEL_COOKIE_SECRET="not-in-argv")
    assert "--no-upload" not in args and "--warm" not in args
    assert args[args.index("--oauth-provider") + 1] == "github"
    assert args[args.index("--oauth-redirect-uri") + 1] == "https://explorer.example.org/login"
    assert "not-in-argv" not in " ".join(args)  # secrets stay in the environment


@pytest.mark.parametrize("values, message", [
    ({}, "CALLMIP_DATA"),
    ({"CALLMIP_DATA": "/data", "CALLMIP_ALLOWED_ORIGINS": "*"}, "exact"),
])
def test_serve_sh_refuses_bad_configuration(values, message):
    result = subprocess.run(["sh", str(SERVE_SH)], env=_env(CALLMIP_DRY_RUN="1", **values),
                            capture_output=True, text=True, timeout=30)
    assert result.returncode == 2 and message in result.stderr


def test_oauth_without_its_secrets_is_refused(archive_root, tmp_path):
    result = subprocess.run(
        [sys.executable, "-m", "dashboard.cli", "serve", str(archive_root),
         "--oauth-provider", "github", "--port", str(free_port())],
        env=_env(CALLMIP_CACHE_DIR=str(tmp_path / "cache"), PANEL_OAUTH_KEY="id"),
        capture_output=True, text=True, timeout=120, cwd=REPO)
    assert result.returncode == 2
    for name in ("PANEL_OAUTH_SECRET", "PANEL_COOKIE_SECRET", "PANEL_OAUTH_ENCRYPTION"):
        assert name in result.stderr
    assert "PANEL_OAUTH_KEY" not in result.stderr  # that one was given


def test_oauth_server_sends_visitors_to_login_and_keeps_liveness_open(archive_root, tmp_path,
                                                                      monkeypatch):
    fernet = pytest.importorskip("cryptography.fernet")
    monkeypatch.setenv("PANEL_OAUTH_KEY", "client-id")
    monkeypatch.setenv("PANEL_OAUTH_SECRET", "client-secret")
    monkeypatch.setenv("PANEL_COOKIE_SECRET", "x" * 32)
    monkeypatch.setenv("PANEL_OAUTH_ENCRYPTION", fernet.Fernet.generate_key().decode())
    monkeypatch.setenv("CALLMIP_CACHE_DIR", str(tmp_path / "cache"))
    from dashboard.server import start_server

    port = free_port()
    server = start_server(str(archive_root), port=port, address="127.0.0.1", threaded=True,
                          oauth_provider="github", use_xheaders=True)

    class NoRedirect(urllib.request.HTTPRedirectHandler):
        def redirect_request(self, *args, **kwargs):
            return None

    opener = urllib.request.build_opener(NoRedirect)

    def get(path: str) -> tuple[int, str]:
        try:
            with opener.open(f"http://127.0.0.1:{port}{path}", timeout=30) as response:
                return response.status, ""
        except urllib.error.HTTPError as exc:
            return exc.code, exc.headers.get("Location", "")

    try:
        for _ in range(100):
            try:
                if get("/liveness")[0] == 200:
                    break
            except OSError:
                time.sleep(0.1)
        assert get("/liveness")[0] == 200
        status, location = get("/")
        assert status == 302 and "login" in location
    finally:
        try:
            server.stop()
        except RuntimeError:
            pass


# ------------------------------------------------------------------------ compose, nginx
def test_compose_file_is_valid_and_wires_the_services():
    compose = yaml.safe_load((DEPLOY / "compose.yaml").read_text())
    services = compose["services"]
    apps = [name for name in services if name.startswith("callmip-")]
    assert len(apps) >= 2 and "nginx" in services
    for name in apps:
        app = services[name]
        env = app["environment"]
        assert env["CALLMIP_DATA"] == "/data" and env["PORT"] == "5006"
        for key in ("CALLMIP_CACHE_MB", "CALLMIP_PROCS", "CALLMIP_ALLOWED_ORIGINS",
                    "CALLMIP_OAUTH_PROVIDER", "PANEL_COOKIE_SECRET", "PANEL_OAUTH_ENCRYPTION"):
            assert key in env, key
        assert env["CALLMIP_UPLOAD"] == "0"
        assert any(v.split(":")[:2] == ["archive", "/data"] and v.endswith(":ro")
                   for v in app["volumes"])
        assert "liveness" in " ".join(app["healthcheck"]["test"])
        assert app["build"]["dockerfile"] == "deploy/Dockerfile"
        assert (DEPLOY / app["build"]["context"] / app["build"]["dockerfile"]).is_file()
    nginx = services["nginx"]
    assert any(str(p).endswith(":80") for p in nginx["ports"])
    mounted = [v.split(":")[0] for v in nginx["volumes"]]
    assert "./nginx.conf" in mounted and (DEPLOY / "nginx.conf").is_file()
    assert set(apps) <= set(nginx["depends_on"])
    assert "archive" in compose["volumes"]


def test_nginx_is_sticky_upgrades_websockets_and_lists_every_app():
    conf = (DEPLOY / "nginx.conf").read_text()
    code = "\n".join(line.split("#")[0] for line in conf.splitlines())
    upstream = re.search(r"upstream\s+callmip\s*\{(.*?)\}", code, re.S).group(1)
    assert re.search(r"^\s*(ip_hash|hash\s+\$cookie_\w+|sticky\s+cookie)", upstream, re.M)
    servers = set(re.findall(r"server\s+([\w.-]+):5006", upstream))
    compose = yaml.safe_load((DEPLOY / "compose.yaml").read_text())
    assert servers == {n for n in compose["services"] if n.startswith("callmip-")}
    assert "proxy_http_version 1.1" in code
    assert re.search(r"proxy_set_header\s+Upgrade\s+\$http_upgrade", code)
    assert re.search(r"proxy_set_header\s+Connection\s+\$connection_upgrade", code)
    assert re.search(r"map\s+\$http_upgrade\s+\$connection_upgrade", code)
    assert code.count("{") == code.count("}")


def test_dockerfile_runs_serve_sh_and_checks_liveness():
    text = (DEPLOY / "Dockerfile").read_text()
    assert re.search(r"^COPY deploy/serve.sh /app/serve.sh", text, re.M)
    assert re.search(r'^CMD \["/app/serve.sh"\]', text, re.M)
    assert "/liveness" in text and re.search(r"^USER \w+", text, re.M)
    for folder in ("loaders", "dashboard", "assets"):
        assert re.search(rf"^COPY {folder} ", text, re.M) and (REPO / folder).is_dir()
    assert os.access(SERVE_SH, os.X_OK)
