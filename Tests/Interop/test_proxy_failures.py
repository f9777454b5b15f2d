"""What a client sees when tdsgate cannot log in to Azure SQL for it: a TDS error that
names the cluster and the cause, within its login timeout, never a hang. Runs its own
`tdsgate run` with one listener per failure, in front of the demo's emulated deployment."""

from __future__ import annotations

import json
import subprocess
import time
import urllib.request
from pathlib import Path

import pytest

import interop
from interop import q
from proxy_process import free_ports as _free_ports

LOGIN = ("fail-user", "Fail-Passw0rd!")


def _bad_token(dep, kind: str) -> str:
    body = json.dumps({"kind": kind, "identity": "tdsgate-proxy"}).encode()
    req = urllib.request.Request(dep.data["control_url"] + "/emulator/tokens/bad", data=body,
                                 headers={"Content-Type": "application/json"})
    with urllib.request.urlopen(req, timeout=10) as r:
        return json.load(r)["access_token"]


@pytest.fixture(scope="module")
def failing_proxy(deployment, tmp_path_factory):
    """tdsgate with listeners whose clusters or identities are broken in different ways."""
    import conftest

    work = tmp_path_factory.mktemp("failing-proxy")
    state = Path(deployment.data["proxy"]["config_file"]).parent
    gateway = next(n for n in deployment.nodes if n["name"] == "east-gateway")
    primary = next(n for n in deployment.nodes if n["name"] == "east-primary")
    closed_port, *listen = _free_ports(6)
    hashed = subprocess.run([conftest._build["bin"], "hash-password", "--iterations", "100000"],
                            input=LOGIN[1] + "\n", capture_output=True, text=True, check=True).stdout.strip()
    token_file = work / "forged-token.jwt"
    token_file.write_text(_bad_token(deployment, "foreign_key"))
    names = ["unreachable", "badname", "noidentity", "refused", "ok"]
    listeners = "\n".join(
        f"""  - name: {n}
    address: 127.0.0.1
    port: {p}
    tls: {{certificate: "{state}/proxy.pem", key: "{state}/proxy-key.pem"}}
    cluster: {n}""" for n, p in zip(names, listen))

    def cluster(name, host, port, tls_name, timeout_ms=8000):
        return f"""  - name: {name}
    ca_file: "{state}/ca.pem"
    connect_timeout_ms: 2000
    login_timeout_ms: {timeout_ms}
    endpoints:
      - {{name: ep, host: {host}, port: {port}, tls_name: {tls_name}}}"""

    config = f"""listeners:
{listeners}
clusters:
{cluster("unreachable", "127.0.0.1", closed_port, "localhost", 3000)}
{cluster("badname", "127.0.0.1", primary["port"], "wrong-name.example")}
{cluster("noidentity", "localhost", gateway["port"], "localhost")}
{cluster("refused", "localhost", gateway["port"], "localhost")}
{cluster("ok", "localhost", gateway["port"], "localhost")}
backend_identities:
  - {{name: good-mi, kind: imds, endpoint: "{deployment.imds_url}"}}
  - {{name: unknown-mi, kind: imds, endpoint: "{deployment.imds_url}", client_id: 00000000-dead-4bad-8bad-000000000000}}
  - {{name: expired-token, kind: static_file, token_file: "{token_file}"}}
logins:
  - {{name: {LOGIN[0]}, password_hash: "{hashed}"}}
policy:
  - {{name: unknown, match: {{login: {LOGIN[0]}}}, clusters: [noidentity], databases: ["*"], write: true, backend_identity: unknown-mi}}
  - {{name: refused, match: {{login: {LOGIN[0]}}}, clusters: [refused], databases: ["*"], write: true, backend_identity: expired-token}}
  - {{name: rest, match: {{login: {LOGIN[0]}}}, clusters: ["*"], databases: ["*"], write: true, backend_identity: good-mi}}
"""
    path = work / "tdsgate.yaml"
    path.write_text(config)
    check = subprocess.run([conftest._build["bin"], "check-config", str(path)], capture_output=True, text=True)
    assert check.returncode == 0, check.stdout + check.stderr
    log = open(work / "tdsgate.log", "w")
    proc = subprocess.Popen([conftest._build["bin"], "run", "--config", str(path)], stdout=log, stderr=subprocess.STDOUT,
                            stdin=subprocess.DEVNULL, start_new_session=True)
    ports = dict(zip(names, listen))
    deadline = time.monotonic() + 30
    while time.monotonic() < deadline and not conftest._accepts("127.0.0.1", ports["ok"]):
        time.sleep(0.2)
    yield ports, work / "tdsgate.log"
    conftest._stop(proc)


def _login(dep, port, login_timeout=15):
    spec = {"server": "localhost", "port": port, "user": LOGIN[0], "password": LOGIN[1], "database": "appdb",
            "cafile": dep.ca_file, "login_timeout": login_timeout, "queries": [q("SELECT SUSER_SNAME()")]}
    t0 = time.monotonic()
    res = interop.run_client("pytds_client.py", spec, interop.client_env(dep), timeout=40)
    return res, time.monotonic() - t0


def test_a_working_listener_for_reference(deployment, failing_proxy):
    ports, _ = failing_proxy
    res, _ = _login(deployment, ports["ok"])
    interop.assert_connected(res)


# An endpoint that cannot be reached is Azure SQL's transient 40613 (drivers retry it);
# a backend identity tdsgate cannot get a token for, or one Azure SQL refuses, is 18456.
# pytds sleeps out its login timeout after a transient error before it reports it, so the
# client's timeout is kept a little above the cluster's login_timeout_ms (3 s and 8 s).
@pytest.mark.parametrize("listener,number,pattern", [
    ("unreachable", 40613, r"cluster 'unreachable' is not currently available.*endpoint 'ep' is unreachable.*retry"),
    ("badname", 40613, r"cluster 'badname'.*(certificate|TLS)"),
    ("noidentity", 18456, r"backend identity 'unknown-mi'.*(Identity not found|400)"),
    ("refused", 18456, r"cluster 'refused'.*refused tdsgate's login.*'expired-token'"),
])
def test_backend_failures_reach_the_client_as_clear_errors(deployment, failing_proxy, listener, number, pattern):
    ports, log = failing_proxy
    res, took = _login(deployment, ports[listener], login_timeout=12 if number == 40613 else 15)
    assert not res["connected"], interop.describe(res)
    interop.assert_error(res["connect_error"], number, pattern, res)
    assert took < 15, f"the refusal took {took:.1f}s: it must come within the client's login timeout"
    token = (Path(str(log)).parent / "forged-token.jwt").read_text()
    assert token not in Path(str(log)).read_text(), "a token appears in tdsgate's log"
