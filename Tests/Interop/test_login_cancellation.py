"""A client that leaves during its login leaves nothing behind: tdsgate cancels the login
(no primary wait, token wait, backoff or backend connection goes on for a client that is
gone), so the emulated node never sees a session for it. And a login held up by a missing
primary ends with Azure SQL's transient 40613, which drivers retry, not 18456.

Runs its own `tdsgate run` (no probes: the configured roles are the truth, so nothing but
this test's own logins reaches the node) in front of the demo's `compat-loginonly` node,
which no other proxy in the suite uses."""

from __future__ import annotations

import json
import time
import urllib.request
from pathlib import Path

import pytds
import pytest

import interop
from proxy_process import ProxyProcess, free_ports, hash_password, node

USER, PASSWORD = "cancel-user", "Cancel-Passw0rd!"
WRITE_WAIT_S = 8
NODE = "compat-loginonly"
ADMIN_TOKEN = "admin-token-for-tests"


@pytest.fixture(scope="module")
def cancel_proxy(deployment, tmp_path_factory):
    work = tmp_path_factory.mktemp("cancel-proxy")
    port, admin_port = free_ports(2)
    state = Path(deployment.data["proxy"]["config_file"]).parent
    (work / "admin.token").write_text(ADMIN_TOKEN + "\n")
    target = node(deployment, NODE)
    config = f"""listeners:
  - name: main
    address: 127.0.0.1
    port: {port}
    tls: {{certificate: "{state}/proxy.pem", key: "{state}/proxy-key.pem"}}
    client_encryption: [required, strict, plaintext]
    cluster: orders
clusters:
  - name: orders
    databases: [appdb]
    ca_file: "{deployment.ca_file}"
    login_timeout_ms: 15000
    max_write_wait_ms: {WRITE_WAIT_S * 1000}
    endpoints:
      - {{name: compat, host: localhost, port: {target["port"]}, tls_name: localhost}}
backend_identities:
  - {{name: mi, kind: imds, endpoint: "{deployment.imds_url}"}}
logins:
  - {{name: {USER}, password_hash: "{hash_password(PASSWORD)}"}}
policy:
  - {{name: all, match: {{login: {USER}}}, clusters: [orders], databases: ["*"], write: true, backend_identity: mi}}
admin: {{address: 127.0.0.1, port: {admin_port}, bearer_token_file: "{work}/admin.token"}}
"""
    proxy = ProxyProcess(work, config, port)
    proxy.admin_url = f"http://127.0.0.1:{admin_port}"
    yield proxy, port
    proxy.stop()


def _node_sessions(dep) -> dict:
    with urllib.request.urlopen(f"{dep.data['control_url']}/emulator/nodes/{NODE}/sessions", timeout=10) as r:
        return json.load(r)


def _admin(proxy, path: str) -> None:
    req = urllib.request.Request(proxy.admin_url + path, data=b"", method="POST",
                                 headers={"Authorization": f"Bearer {ADMIN_TOKEN}"})
    with urllib.request.urlopen(req, timeout=10) as r:
        assert r.status == 200


def _connect(port, login_timeout=15):
    return pytds.connect(server="127.0.0.1", port=port, database="appdb", user=USER, password=PASSWORD,
                         login_timeout=login_timeout, timeout=10, autocommit=True, disable_connect_retry=True)


def _until(predicate, seconds: float, what: str):
    deadline = time.monotonic() + seconds
    while time.monotonic() < deadline:
        value = predicate()
        if value:
            return value
        time.sleep(0.05)
    raise AssertionError(f"not within {seconds} s: {what}")


def test_the_emulator_counts_a_nodes_sessions(deployment, cancel_proxy):
    proxy, port = cancel_proxy
    before = _node_sessions(deployment)
    assert before["node"] == NODE and before["open"] >= 0 and before["accepted"] >= before["open"]
    with _connect(port) as conn:
        cur = conn.cursor()
        cur.execute("SELECT 1")
        assert cur.fetchall()[0][0] == 1
        during = _node_sessions(deployment)
        assert during["open"] == before["open"] + 1 and during["accepted"] == before["accepted"] + 1, (before, during)
    _until(lambda: _node_sessions(deployment)["open"] == before["open"], 10, "the closed session leaves the node")


def test_a_client_that_leaves_while_its_login_waits_for_a_primary_leaves_no_backend_session(deployment, cancel_proxy):
    proxy, port = cancel_proxy
    before = _node_sessions(deployment)
    _admin(proxy, "/v1/clusters/orders/endpoints/compat/disable")
    try:
        # The client gives up after 1.5 s and its process ends, closing the connection,
        # while tdsgate would hold the login up to max_write_wait_ms (8 s) for a primary.
        spec = {"server": "127.0.0.1", "port": port, "user": USER, "password": PASSWORD, "database": "appdb",
                "login_timeout": 1.5, "queries": []}
        res = interop.run_client("pytds_client.py", spec, interop.client_env(deployment), timeout=30)
        assert not res["connected"], interop.describe(res)
        # tdsgate cancels the login when the client's connection closes.
        _until(lambda: "login cancelled" in proxy.log(), 5, "tdsgate ends the abandoned login\n" + proxy.log()[-3000:])
    finally:
        _admin(proxy, "/v1/clusters/orders/endpoints/compat/enable")
    # The primary is back well inside the abandoned login's wait: had it still been waiting,
    # it would now log in to the node for a client that is gone.
    with _connect(port) as conn:
        cur = conn.cursor()
        cur.execute("SELECT 1")
        assert cur.fetchall()[0][0] == 1
    after = _until(lambda: (s := _node_sessions(deployment))["open"] == before["open"] and s, 10,
                   "the node's session count returns to what it was")
    assert after["accepted"] == before["accepted"] + 1, \
        f"only the second client's session reached the node: {before} -> {after}\n{proxy.log()[-3000:]}"


def test_no_primary_within_the_write_wait_is_the_transient_40613(deployment, cancel_proxy):
    proxy, port = cancel_proxy
    before = _node_sessions(deployment)
    _admin(proxy, "/v1/clusters/orders/endpoints/compat/disable")
    try:
        # pytds treats 40613 as transient: it sleeps out its login timeout and then raises
        # a TimeoutError from it.
        t0 = time.monotonic()
        with pytest.raises((pytds.tds_base.Error, TimeoutError)) as refused:
            _connect(port, login_timeout=WRITE_WAIT_S + 2)
        waited = time.monotonic() - t0
    finally:
        _admin(proxy, "/v1/clusters/orders/endpoints/compat/enable")
    assert WRITE_WAIT_S - 0.5 <= waited < WRITE_WAIT_S + 5, waited
    err = refused.value.__cause__ if isinstance(refused.value, TimeoutError) else refused.value
    assert getattr(err, "msg_no", None) == 40613, f"{refused.value!r}"
    text = str(err)
    assert "is not currently available" in text and "cluster 'orders'" in text and "has no primary" in text, text
    assert "retry" in text.lower(), text
    assert _node_sessions(deployment)["accepted"] == before["accepted"], "a refused login reached no backend"
