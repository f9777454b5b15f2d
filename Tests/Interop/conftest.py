"""Session set-up for the interop suite: build tdsgate once, start `tdsgate demo` (the
emulated Azure SQL deployment) on free loopback ports, hand its ports file to the tests,
stop it at the end.

Environment knobs (all optional):
  TDSGATE_BIN            use this binary instead of building
  TDSGATE_SCRATCH_PATH   swift build --scratch-path (default: <repo>/.build, which
                         Tests/run-all.sh has just built)
  TDSGATE_DEMO_TIMEOUT   seconds to wait for the demo to come up (default 120)
  TDSGATE_DEMO_BASE_PORT pass --base-port N (default: the demo picks free ports itself;
                         "auto" picks a free block below the ephemeral range)
"""

from __future__ import annotations

import json
import os
import random
import signal
import socket
import subprocess
import sys
import time
from pathlib import Path

import pytest

sys.path.insert(0, str(Path(__file__).resolve().parent))
import interop  # noqa: E402

ROOT = interop.ROOT
_build: dict[str, str] = {}


def _swift_build() -> None:
    if os.environ.get("TDSGATE_BIN"):
        _build["bin"] = os.environ["TDSGATE_BIN"]
        return
    scratch = os.environ.get("TDSGATE_SCRATCH_PATH") or str(ROOT / ".build")
    cmd = ["swift", "build", "--scratch-path", scratch, "--product", "tdsgate"]
    t0 = time.monotonic()
    p = subprocess.run(cmd, cwd=ROOT, capture_output=True, text=True, stdin=subprocess.DEVNULL)
    if p.returncode != 0:
        _build["error"] = (f"{' '.join(cmd)} failed ({p.returncode}):\n"
                           f"{p.stdout[-4000:]}\n{p.stderr[-4000:]}")
        return
    binpath = subprocess.run(["swift", "build", "--scratch-path", scratch, "--show-bin-path"],
                             cwd=ROOT, capture_output=True, text=True,
                             stdin=subprocess.DEVNULL).stdout.strip()
    _build["bin"] = os.path.join(binpath, "tdsgate")
    print(f"\n[interop] built {_build['bin']} in {time.monotonic() - t0:.0f}s", flush=True)


def pytest_sessionstart(session: pytest.Session) -> None:
    if session.config.option.collectonly:
        return
    _swift_build()


def _ports_free(base: int, count: int) -> bool:
    for port in range(base, base + count):
        with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as s:
            try:
                s.bind(("127.0.0.1", port))
            except OSError:
                return False
    return True


def _pick_base_port(count: int = 64) -> int:
    # Below Linux's ephemeral range (32768+), so outgoing connections can't take them.
    candidates = list(range(20000, 32000, 100))
    random.shuffle(candidates)
    for base in candidates:
        if _ports_free(base, count):
            return base
    raise RuntimeError("no free block of loopback ports")


def _accepts(host: str, port: int) -> bool:
    try:
        with socket.create_connection((host, port), timeout=1):
            return True
    except OSError:
        return False


def _read_ports_file(path: Path) -> dict | None:
    try:
        data = json.loads(path.read_text())
    except (OSError, ValueError):
        return None
    if not isinstance(data, dict) or not data.get("nodes"):
        return None
    return data


def _imds_port(url: str) -> tuple[str, int] | None:
    from urllib.parse import urlparse

    u = urlparse(url)
    if not u.hostname:
        return None
    return u.hostname, u.port or 80


def _stop(proc: subprocess.Popen) -> None:
    if proc.poll() is not None:
        return
    try:
        os.killpg(proc.pid, signal.SIGTERM)  # its own session: the demo and its children
    except ProcessLookupError:
        return
    try:
        proc.wait(timeout=10)
    except subprocess.TimeoutExpired:
        os.killpg(proc.pid, signal.SIGKILL)
        proc.wait(timeout=10)


@pytest.fixture(scope="session")
def deployment(tmp_path_factory: pytest.TempPathFactory):
    """The running emulated Azure SQL deployment (an interop.Deployment)."""
    if "error" in _build:
        pytest.fail("building tdsgate failed:\n" + _build["error"], pytrace=False)
    if "bin" not in _build:
        _swift_build()
        if "error" in _build:
            pytest.fail("building tdsgate failed:\n" + _build["error"], pytrace=False)
    binary = _build["bin"]
    workdir = tmp_path_factory.mktemp("demo")
    wait_s = float(os.environ.get("TDSGATE_DEMO_TIMEOUT", "120"))
    base_opt = os.environ.get("TDSGATE_DEMO_BASE_PORT", "")
    use_base_port = bool(base_opt)
    last_log = ""
    for attempt in range(4):
        ports_file = workdir / f"ports-{attempt}.json"
        log_path = workdir / f"demo-{attempt}.log"
        # Every proxied session of the run is dumped: test_zz_final_checks.py looks for
        # secrets in all of it.
        cmd = [binary, "demo", "--ports-file", str(ports_file),
               "--state-dir", str(workdir / f"state-{attempt}"), "--dump", str(workdir / f"dump-{attempt}")]
        if use_base_port:
            base = _pick_base_port() if base_opt == "auto" else int(base_opt)
            cmd += ["--base-port", str(base)]
        # stdout is the banner (connection strings with the demo's passwords, on purpose);
        # stderr is the log, which must never hold a secret (test_proxy checks it).
        banner_path = workdir / f"demo-{attempt}.banner"
        with open(log_path, "w") as log, open(banner_path, "w") as banner:
            proc = subprocess.Popen(cmd, cwd=ROOT, stdout=banner, stderr=log,
                                    stdin=subprocess.DEVNULL, start_new_session=True)
        deadline = time.monotonic() + wait_s
        data = None
        while time.monotonic() < deadline:
            if proc.poll() is not None:
                break
            data = _read_ports_file(ports_file)
            if data is not None:
                endpoints = [(n["host"], int(n["port"])) for n in data["nodes"]]
                imds = _imds_port(data.get("imds_url", ""))
                if imds:
                    endpoints.append(imds)
                if all(_accepts(h, p) for h, p in endpoints):
                    break
                data = None
            time.sleep(0.25)
        last_log = log_path.read_text(errors="replace")[-6000:]
        if data is not None and proc.poll() is None:
            break
        _stop(proc)
        if use_base_port and "base-port" in last_log and proc.returncode not in (None, 0):
            use_base_port = False  # an older demo without --base-port: let it pick
            continue
        if attempt < 3 and ("in use" in last_log.lower() or "bind" in last_log.lower()):
            continue  # port race: try another block
        pytest.fail(f"`{' '.join(cmd)}` did not come up within {wait_s:.0f}s "
                    f"(exit {proc.returncode}); ports file "
                    f"{'missing' if not ports_file.exists() else repr(ports_file.read_text()[:2000])}"
                    f"\n--- demo log ---\n{last_log}", pytrace=False)
    else:
        pytest.fail("tdsgate demo did not start:\n" + last_log, pytrace=False)

    dep = interop.Deployment(data, workdir)
    dep.log_path = log_path  # type: ignore[attr-defined]
    # ODBC Driver 18 and the Rust core read the OpenSSL trust store: the tests pass
    # SSL_CERT_FILE=<ca_file> to their client processes (interop.client_env).
    yield dep
    _stop(proc)


@pytest.fixture(scope="session")
def imds_token(deployment):
    """imds_token(client_id=None) -> access token string from the emulator's IMDS."""
    cache: dict[str | None, str] = {}

    def get(client_id: str | None = None) -> str:
        if client_id not in cache:
            if not deployment.imds_url:
                raise interop.ClientFailure("the deployment has no imds_url")
            cache[client_id] = interop.fetch_imds_token(deployment.imds_url, client_id)["access_token"]
        return cache[client_id]

    return get


@pytest.hookimpl(hookwrapper=True)
def pytest_runtest_makereport(item, call):
    outcome = yield
    rep = outcome.get_result()
    if rep.when == "call" and rep.failed and "deployment" in item.fixturenames:
        dep = item.funcargs.get("deployment")
        log = getattr(dep, "log_path", None)
        if log and Path(log).exists():
            rep.sections.append(("tdsgate demo log (tail)",
                                 Path(log).read_text(errors="replace")[-3000:]))
