"""HAProxy (Configs/haproxy/haproxy.cfg, used unchanged) in front of two `tdsgate run`
instances with `proxy_protocol` listeners: the config is valid; the audit trail shows the
driver's own address and port, not HAProxy's; a trusted source without a header and an
untrusted source with one are refused; and a rolling restart (drain A through HAProxy's
runtime API, SIGTERM A, start A again, then the same for B) under a bounded load of real
pytds sessions has no failed login and no failed query."""

from __future__ import annotations

import csv
import io
import json
import os
import re
import socket
import subprocess
import threading
import time
import urllib.request
from pathlib import Path

import pytds
import pytest

import conftest
import interop
from proxy_process import ProxyProcess, free_ports, geo_proxy_config

CFG = interop.ROOT / "Configs" / "haproxy" / "haproxy.cfg"
USER, PASSWORD = "lb-user", "Lb-Passw0rd!"
PROXY_PROTOCOL = '    proxy_protocol: {versions: [v2], trusted_sources: ["127.0.0.1/32"]}\n'
WORKERS = 6
MAX_SESSIONS_PER_WORKER = 400
LOAD_SECONDS_MAX = 150


def test_haproxy_config_is_valid(tmp_path):
    env = {**os.environ, "HAPROXY_ADMIN_SOCKET": str(tmp_path / "admin.sock")}
    r = subprocess.run(["haproxy", "-c", "-f", str(CFG)], env=env, capture_output=True, text=True, timeout=30)
    assert r.returncode == 0, r.stdout + r.stderr


class Instance:
    """One `tdsgate run` behind HAProxy: fixed ports, so it comes back where HAProxy expects it."""

    def __init__(self, deployment, root: Path, name: str):
        self.name = name
        self.work = root / name
        self.work.mkdir()
        self.port, self.admin_port = free_ports(2)
        rule = '{name: lb, match: {login: %s}, clusters: [orders], databases: ["*"], write: true, backend_identity: mi}' % USER
        config = geo_proxy_config(deployment, self.work, self.port, self.admin_port, logins={USER: PASSWORD}, policy=[rule],
                                  probe_interval_s=0.5, max_write_wait_ms=4000, client_encryption="[required, strict, plaintext]")
        assert "    cluster: orders\n" in config
        config = config.replace("    cluster: orders\n", "    cluster: orders\n" + PROXY_PROTOCOL, 1)
        self.audit = self.work / "audit.jsonl"
        self.config = config + f'shutdown_grace_seconds: 5\naudit: {{destination: file, file: "{self.audit}"}}\n'
        self.proc: ProxyProcess | None = None
        self.generation = 0

    def start(self) -> None:
        self.generation += 1
        run = self.work / f"run-{self.generation}"
        run.mkdir()
        (run / "admin.token").write_text((self.work / "admin.token").read_text())
        self.proc = ProxyProcess(run, self.config, self.port)
        deadline = time.monotonic() + 30
        while self.readyz() != 200:
            assert time.monotonic() < deadline, f"{self.name} not ready:\n{self.proc.log()[-3000:]}"
            time.sleep(0.2)

    def stop(self) -> None:
        if self.proc:
            self.proc.stop()
            self.proc = None

    def readyz(self) -> int:
        try:
            with urllib.request.urlopen(f"http://127.0.0.1:{self.admin_port}/readyz", timeout=2) as r:
                return r.status
        except Exception:
            return 0

    def sessions(self) -> list[dict]:
        req = urllib.request.Request(f"http://127.0.0.1:{self.admin_port}/v1/clusters/orders/sessions",
                                     headers={"Authorization": "Bearer admin-token-for-tests"})
        with urllib.request.urlopen(req, timeout=5) as r:
            return json.load(r)

    def audit_events(self) -> list[dict]:
        if not self.audit.exists():
            return []
        return [json.loads(line) for line in self.audit.read_text().splitlines() if line.strip()]


class HAProxy:
    def __init__(self, root: Path, a: Instance, b: Instance):
        self.port = free_ports(1)[0]
        self.socket = root / "haproxy.sock"
        env = {**os.environ, "HAPROXY_MAXCONN": "1000", "TDSGATE_FRONTEND": f"127.0.0.1:{self.port}", "HAPROXY_ADMIN_SOCKET": str(self.socket),
               "TDSGATE_A": f"127.0.0.1:{a.port}", "TDSGATE_A_ADMIN_PORT": str(a.admin_port),
               "TDSGATE_B": f"127.0.0.1:{b.port}", "TDSGATE_B_ADMIN_PORT": str(b.admin_port)}
        self.log_path = root / "haproxy.log"
        self._log = open(self.log_path, "w")
        self.proc = subprocess.Popen(["haproxy", "-db", "-f", str(CFG)], env=env, stdout=self._log, stderr=subprocess.STDOUT,
                                     stdin=subprocess.DEVNULL, start_new_session=True)
        deadline = time.monotonic() + 20
        while not (self.socket.exists() and conftest._accepts("127.0.0.1", self.port)):
            assert self.proc.poll() is None and time.monotonic() < deadline, self.log_path.read_text()
            time.sleep(0.1)

    def command(self, line: str) -> str:
        with socket.socket(socket.AF_UNIX, socket.SOCK_STREAM) as s:
            s.settimeout(5)
            s.connect(str(self.socket))
            s.sendall(line.encode() + b"\n")
            out = b""
            while chunk := s.recv(65536):
                out += chunk
        return out.decode()

    def servers(self) -> dict[str, dict]:
        text = self.command("show stat").lstrip("# ")
        return {row["svname"]: row for row in csv.DictReader(io.StringIO(text)) if row["pxname"] == "tdsgate"
                and row["svname"] not in ("BACKEND", "FRONTEND")}

    def wait_status(self, server: str, status: str, timeout: float = 30) -> None:
        deadline = time.monotonic() + timeout
        while (got := self.servers()[server]["status"]) != status:
            assert time.monotonic() < deadline, f"{server} is {got}, expected {status}"
            time.sleep(0.2)

    def stop(self) -> None:
        conftest._stop(self.proc)
        self._log.close()


@pytest.fixture(scope="module")
def front(deployment, tmp_path_factory):
    root = tmp_path_factory.mktemp("haproxy-front")
    a, b = Instance(deployment, root, "a"), Instance(deployment, root, "b")
    a.start()
    b.start()
    lb = HAProxy(root, a, b)
    try:
        lb.wait_status("tdsgate-a", "UP")
        lb.wait_status("tdsgate-b", "UP")
        yield lb, a, b
    finally:
        lb.stop()
        a.stop()
        b.stop()


def _connect(port: int) -> pytds.Connection:
    return pytds.connect(server="127.0.0.1", port=port, database="appdb", user=USER, password=PASSWORD,
                         login_timeout=15, timeout=10, autocommit=True)


def test_audit_trail_shows_the_drivers_address_and_port(front):
    lb, a, b = front
    with _connect(lb.port) as conn:
        cur = conn.cursor()
        cur.execute("SELECT 1")
        assert cur.fetchall() == [(1,)]
        listed = [s for inst in (a, b) for s in inst.sessions()]
        assert len(listed) == 1, listed
    starts = _session_starts(a, b)
    assert len(starts) == 1, starts
    address, port = starts[0]["client_address"], starts[0]["client_port"]
    # HAProxy's tcplog names the driver's end of the connection (`%ci:%cp`); HAProxy's own
    # connection to tdsgate has another source port, so a trail showing the socket peer
    # would not match.
    deadline = time.monotonic() + 10
    while (address, port) not in _haproxy_clients(lb):
        assert time.monotonic() < deadline, (address, port, lb.log_path.read_text()[-2000:])
        time.sleep(0.1)
    assert address == "127.0.0.1"
    assert str(port) in listed[0]["client"], listed[0]


def _session_starts(*instances: Instance) -> list[dict]:
    deadline = time.monotonic() + 5
    while True:
        found = [e for inst in instances for e in inst.audit_events() if e.get("event") == "session_start"]
        if found or time.monotonic() > deadline:
            return found
        time.sleep(0.1)


def _haproxy_clients(lb: HAProxy) -> set[tuple[str, int]]:
    out = set()
    for line in lb.log_path.read_text(errors="replace").splitlines():
        m = re.match(r"^(\d+\.\d+\.\d+\.\d+):(\d+) \[", line)
        if m:
            out.add((m.group(1), int(m.group(2))))
    return out


def test_direct_connections_are_refused(front):
    _, a, _ = front
    # Trusted source (127.0.0.1) without a header: a driver that skips HAProxy.
    with pytest.raises(Exception):
        with _connect(a.port) as conn:
            conn.cursor().execute("SELECT 1")
    # Untrusted source (127.0.0.2) sending a header of its own choosing: closed unanswered.
    with socket.create_connection(("127.0.0.1", a.port), timeout=5, source_address=("127.0.0.2", 0)) as s:
        s.sendall(b"PROXY TCP4 198.51.100.1 127.0.0.1 40000 1433\r\n")
        s.settimeout(5)
        try:
            answer = s.recv(1024)
        except ConnectionResetError:
            answer = b""
        assert answer == b""


class Load:
    """WORKERS threads, each opening sessions through HAProxy and running a few queries in
    each, until stopped or bounded by MAX_SESSIONS_PER_WORKER / LOAD_SECONDS_MAX."""

    def __init__(self, port: int):
        self.port = port
        self.stop = threading.Event()
        self.lock = threading.Lock()
        self.sessions = 0
        self.queries = 0
        self.login_failures: list[str] = []
        self.query_failures: list[str] = []
        self.started = time.monotonic()
        self.threads = [threading.Thread(target=self.worker, daemon=True) for _ in range(WORKERS)]
        for t in self.threads:
            t.start()

    def worker(self) -> None:
        for _ in range(MAX_SESSIONS_PER_WORKER):
            if self.stop.is_set() or time.monotonic() - self.started > LOAD_SECONDS_MAX:
                return
            try:
                conn = _connect(self.port)
            except Exception as e:
                with self.lock:
                    self.login_failures.append(repr(e))
                time.sleep(0.2)
                continue
            try:
                cur = conn.cursor()
                for _ in range(3):
                    cur.execute("SELECT @@SPID")
                    cur.fetchall()
                    with self.lock:
                        self.queries += 1
                    time.sleep(0.05)
                with self.lock:
                    self.sessions += 1
            except Exception as e:
                with self.lock:
                    self.query_failures.append(repr(e))
            finally:
                try:
                    conn.close()
                except Exception:
                    pass

    def finish(self) -> None:
        self.stop.set()
        for t in self.threads:
            t.join(timeout=60)


def _restart(lb: HAProxy, inst: Instance, server: str) -> dict:
    t0 = time.monotonic()
    lb.command(f"set server tdsgate/{server} state drain")
    lb.wait_status(server, "DRAIN")
    deadline = time.monotonic() + 30
    while int(lb.servers()[server]["scur"]) > 0:
        assert time.monotonic() < deadline, "sessions did not finish after the drain"
        time.sleep(0.1)
    drained = time.monotonic() - t0
    inst.stop()
    inst.start()
    lb.command(f"set server tdsgate/{server} state ready")
    lb.wait_status(server, "UP")
    return {"drain_s": round(drained, 2), "restart_s": round(time.monotonic() - t0, 2)}


def test_rolling_restart_under_load(front):
    lb, a, b = front
    load = Load(lb.port)
    try:
        time.sleep(2)  # load running on both instances before the first drain
        figures = {"a": _restart(lb, a, "tdsgate-a")}
        time.sleep(2)  # A takes sessions again before B goes
        figures["b"] = _restart(lb, b, "tdsgate-b")
        time.sleep(2)
    finally:
        load.finish()
    figures.update(sessions=load.sessions, queries=load.queries,
                   login_failures=len(load.login_failures), query_failures=len(load.query_failures))
    print(f"\n[haproxy rolling restart] {figures}")
    assert load.login_failures == [], load.login_failures[:5]
    assert load.query_failures == [], load.query_failures[:5]
    assert load.sessions >= WORKERS * 4, figures
    # Both generations of both instances served sessions.
    for inst in (a, b):
        starts = [e for e in inst.audit_events() if e.get("event") == "session_start"]
        assert starts, f"{inst.name} served no session"
