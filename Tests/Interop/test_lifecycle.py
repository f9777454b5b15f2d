"""tdsgate under systemd and its shutdown: the unit file passes `systemd-analyze verify`,
`tdsgate run` speaks the notify protocol (READY, RELOADING/READY around SIGHUP, STOPPING)
on a real AF_UNIX datagram socket, a second SIGTERM ends the grace period at once, and the
sessions closed by shutdown are in the audit trail as `shutdown`."""

from __future__ import annotations

import json
import os
import signal
import socket
import subprocess
import time
import urllib.error
import urllib.request
import uuid
from pathlib import Path

import pytds
import pytest

import conftest
import interop
from proxy_process import gateway_cluster_yaml, ProxyProcess, free_ports, hash_password

USER, PASSWORD = "life-user", "Life-Passw0rd!"
UNIT = interop.ROOT / "Configs" / "systemd" / "tdsgate.service"


def _config(dep, work: Path, port: int, grace_s: int, admin_port: int | None = None) -> str:
    admin = f"admin: {{address: 127.0.0.1, port: {admin_port}}}\n" if admin_port else ""
    return f"""{admin}listeners:
  - name: life
    address: 127.0.0.1
    port: {port}
    client_encryption: [plaintext]
    cluster: orders
{gateway_cluster_yaml(dep, USER, hash_password(PASSWORD), "life")}audit: {{destination: file, file: "{work}/audit.jsonl", statements: false}}
shutdown_grace_seconds: {grace_s}
"""


def _connect(port: int):
    return pytds.connect(server="127.0.0.1", port=port, database="appdb", user=USER, password=PASSWORD,
                         login_timeout=10, timeout=10, autocommit=True)


def _scalar(conn, sql: str):
    cur = conn.cursor()
    cur.execute(sql)
    return cur.fetchall()[0][0]


def _audit(work: Path) -> list[dict]:
    path = work / "audit.jsonl"
    return [json.loads(line) for line in path.read_text().splitlines() if line.strip()] if path.exists() else []


def _wait_for_log(proxy: ProxyProcess, text: str, timeout_s: float = 15) -> None:
    deadline = time.monotonic() + timeout_s
    while time.monotonic() < deadline and text not in proxy.log():
        assert proxy.proc.poll() is None, proxy.log()
        time.sleep(0.1)
    assert text in proxy.log(), proxy.log()


# ---- the unit file --------------------------------------------------------------------

def _unit_for_verify(tmp_path: Path, text: str | None = None) -> Path:
    """A copy of the unit whose ExecStart= names the binary just built (verify checks that
    the executable exists)."""
    unit = tmp_path / "tdsgate.service"
    unit.write_text((text or UNIT.read_text()).replace("/usr/local/bin/tdsgate", conftest._build["bin"]))
    return unit


def _verify(unit: Path) -> list[str]:
    p = subprocess.run(["systemd-analyze", "verify", str(unit)], capture_output=True, text=True, timeout=60)
    # verify exits 0 on unknown keys and bad values (it only ignores them): every line about
    # the unit counts as a problem.
    problems = [line for line in (p.stdout + p.stderr).splitlines() if unit.name in line]
    if p.returncode != 0:
        problems.append(f"systemd-analyze exited {p.returncode}: {p.stderr.strip()}")
    return problems


def _directives(text: str) -> dict[str, list[str]]:
    out: dict[str, list[str]] = {}
    for line in text.splitlines():
        line = line.strip()
        if line and not line.startswith(("#", ";", "[")) and "=" in line:
            key, value = line.split("=", 1)
            out.setdefault(key, []).append(value)
    return out


def test_the_systemd_unit_passes_systemd_analyze_verify(tmp_path):
    assert _verify(_unit_for_verify(tmp_path)) == []


def test_systemd_analyze_verify_catches_a_broken_unit(tmp_path):
    """The check above can fail: a misspelt key and a bad Type= are reported."""
    broken = UNIT.read_text().replace("ProtectHome=yes", "ProtectHomee=yes").replace("Type=notify", "Type=notifyy")
    problems = _verify(_unit_for_verify(tmp_path, broken))
    assert any("ProtectHomee" in p for p in problems), problems
    assert any("notifyy" in p for p in problems), problems


def test_the_unit_is_notify_sandboxed_and_outlasts_the_grace_period():
    d = _directives(UNIT.read_text())
    assert d["Type"] == ["notify"]
    assert d["ExecReload"] == ["/bin/kill -HUP $MAINPID"]
    for key, value in [("DynamicUser", "yes"), ("ProtectSystem", "strict"), ("ProtectHome", "yes"),
                       ("PrivateTmp", "yes"), ("NoNewPrivileges", "yes"), ("CapabilityBoundingSet", ""),
                       ("RestrictAddressFamilies", "AF_INET AF_INET6 AF_UNIX"),
                       ("SystemCallFilter", "@system-service")]:
        assert value in d.get(key, []), (key, d.get(key))
    credentials = {v.split(":", 1)[0] for v in d["LoadCredential"]}
    assert {"admin-token", "tls-key"} <= credentials
    assert d["ExecStart"][0].endswith("run --config /etc/tdsgate/tdsgate.yaml")
    assert {"StateDirectory", "LogsDirectory", "ConfigurationDirectory"} <= d.keys()
    # The default shutdown_grace_seconds is 30; systemd must not SIGKILL during it.
    assert int(d["TimeoutStopSec"][0]) > 30


# ---- the notify protocol ----------------------------------------------------------------

class NotifySocket:
    """What systemd listens on: an AF_UNIX datagram socket, at a path or abstract."""

    def __init__(self, tmp_path: Path, abstract: bool):
        self.sock = socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM)
        if abstract:
            name = f"tdsgate-test-{os.getpid()}-{uuid.uuid4().hex[:8]}"
            self.sock.bind("\0" + name)
            self.env_value = "@" + name
        else:
            path = tmp_path / "notify.sock"
            self.sock.bind(str(path))
            self.env_value = str(path)
        self.received: list[dict[str, str]] = []

    def next(self, timeout_s: float) -> dict[str, str]:
        self.sock.settimeout(timeout_s)
        data = self.sock.recv(4096).decode()
        assert data.endswith("\n"), repr(data)
        message = dict(line.split("=", 1) for line in data.splitlines())
        self.received.append(message)
        return message

    def wait_for(self, key: str, timeout_s: float = 30) -> dict[str, str]:
        deadline = time.monotonic() + timeout_s
        while True:
            message = self.next(max(0.1, deadline - time.monotonic()))
            if key in message:
                return message

    def close(self):
        self.sock.close()


@pytest.mark.parametrize("abstract", [False, True], ids=["path", "abstract"])
def test_notify_ready_reloading_stopping_in_order(deployment, tmp_path, abstract):
    notify = NotifySocket(tmp_path, abstract)
    port = free_ports(1)[0]
    env = dict(os.environ, NOTIFY_SOCKET=notify.env_value)
    proxy = ProxyProcess(tmp_path, _config(deployment, tmp_path, port, grace_s=5), port, env=env)
    try:
        ready = notify.wait_for("READY")
        assert ready["READY"] == "1" and ready.get("STATUS"), notify.received
        assert conftest._accepts("127.0.0.1", port), "READY=1 came before the listener accepted"

        proxy.proc.send_signal(signal.SIGHUP)
        reloading = notify.next(15)
        assert reloading.get("RELOADING") == "1", notify.received
        # systemd compares it with its own CLOCK_MONOTONIC, which Python's monotonic is on Linux.
        assert abs(int(reloading["MONOTONIC_USEC"]) - time.monotonic_ns() // 1000) < 10_000_000, reloading
        assert notify.next(15).get("READY") == "1", notify.received

        proxy.proc.send_signal(signal.SIGTERM)
        assert notify.wait_for("STOPPING", 15)["STOPPING"] == "1", notify.received
        assert proxy.proc.wait(timeout=20) == 0, proxy.log()
        events = [k for m in notify.received for k in ("READY", "RELOADING", "STOPPING") if k in m]
        assert events == ["READY", "RELOADING", "READY", "STOPPING"], notify.received
    finally:
        proxy.stop()
        notify.close()


# ---- shutdown ---------------------------------------------------------------------------

def test_a_second_sigterm_ends_a_long_grace_period_at_once(deployment, tmp_path):
    port = free_ports(1)[0]
    proxy = ProxyProcess(tmp_path, _config(deployment, tmp_path, port, grace_s=600), port)
    try:
        session = _connect(port)
        assert _scalar(session, "SELECT 6 * 7") == 42
        proxy.proc.send_signal(signal.SIGTERM)
        _wait_for_log(proxy, "stopped accepting")
        assert _scalar(session, "SELECT 2 + 2") == 4, "the grace period lets the session go on"
        assert proxy.proc.poll() is None, "still waiting for the session"

        started = time.monotonic()
        proxy.proc.send_signal(signal.SIGTERM)
        assert proxy.proc.wait(timeout=15) == 0, proxy.log()
        assert time.monotonic() - started < 10, "the second SIGTERM did not cut the 600 s grace period short"
        with pytest.raises(Exception):
            _scalar(session, "SELECT 1")
        ends = [e for e in _audit(tmp_path) if e["event"] == "session_end"]
        assert [e["end_reason"] for e in ends] == ["shutdown"], ends
    finally:
        proxy.stop()


def _admin_status(port: int, path: str) -> tuple[int, str]:
    try:
        with urllib.request.urlopen(f"http://127.0.0.1:{port}{path}", timeout=5) as r:
            return r.status, r.read().decode()
    except urllib.error.HTTPError as e:
        return e.code, e.read().decode()


def test_readyz_answers_503_while_the_process_drains_and_healthz_stays_200(deployment, tmp_path):
    port, admin_port = free_ports(2)
    proxy = ProxyProcess(tmp_path, _config(deployment, tmp_path, port, grace_s=600, admin_port=admin_port), port)
    try:
        session = _connect(port)
        assert _scalar(session, "SELECT 1") == 1
        # Without probes the configured endpoint is the primary from the start: ready.
        assert _admin_status(admin_port, "/readyz") == (200, "ready\n")
        proxy.proc.send_signal(signal.SIGTERM)
        _wait_for_log(proxy, "stopped accepting")
        status, body = _admin_status(admin_port, "/readyz")
        assert status == 503 and "draining" in body and "600 s" in body, (status, body)
        assert _admin_status(admin_port, "/healthz") == (200, "ok\n")
        assert _scalar(session, "SELECT 2") == 2, "the drain lets the running session go on"
        proxy.proc.send_signal(signal.SIGTERM)
        assert proxy.proc.wait(timeout=15) == 0, proxy.log()
    finally:
        proxy.stop()


def test_sessions_closed_at_the_end_of_the_grace_period_are_audited_as_shutdown(deployment, tmp_path):
    port = free_ports(1)[0]
    proxy = ProxyProcess(tmp_path, _config(deployment, tmp_path, port, grace_s=4), port)
    try:
        held = _connect(port)
        assert _scalar(held, "SELECT 1") == 1
        finished = _connect(port)
        assert _scalar(finished, "SELECT 2") == 2
        proxy.proc.send_signal(signal.SIGTERM)
        _wait_for_log(proxy, "stopped accepting")
        # One session ends on its own during the grace period; the other is held across it.
        finished.close()
        assert _scalar(held, "SELECT 3") == 3
        assert proxy.proc.wait(timeout=20) == 0, proxy.log()
        assert "closing sessions still open after the grace period" in proxy.log()
        with pytest.raises(Exception):
            _scalar(held, "SELECT 4")
        # Written before the audit trail closed: no sleep or retry here, the process is gone.
        events = _audit(tmp_path)
        starts = [e for e in events if e["event"] == "session_start"]
        ends = sorted(e["end_reason"] for e in events if e["event"] == "session_end")
        assert len(starts) == 2 and ends == ["client_closed", "shutdown"], events
    finally:
        proxy.stop()
