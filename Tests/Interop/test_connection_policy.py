"""`connection_policy: proxy` pins a cluster to Azure's Proxy connection policy: tdsgate stays
on the endpoint it dialled, and a gateway that redirects anyway is refused with a message
that says so (rather than tdsgate quietly opening connections to worker ports a firewall
may not allow)."""

from __future__ import annotations

from pathlib import Path

import pytds
import pytest

from proxy_process import ProxyProcess, free_ports, hash_password

USER, PASSWORD = "policy-user", "P0licy-Passw0rd!"


@pytest.fixture(scope="module")
def pinned(deployment, tmp_path_factory):
    work = tmp_path_factory.mktemp("pinned")
    gateway_port, direct_port = free_ports(2)
    nodes = {n["name"]: n for n in deployment.nodes}
    listener = "\n".join(f"""  - {{name: {name}, address: 127.0.0.1, port: {port}, client_encryption: plaintext, cluster: {name}}}"""
                         for name, port in (("via-gateway", gateway_port), ("direct", direct_port)))
    cluster = "\n".join(f"""  - name: {name}
    databases: [appdb]
    ca_file: "{deployment.ca_file}"
    connection_policy: proxy
    endpoints: [{{name: e, host: localhost, port: {nodes[node]["port"]}, tls_name: localhost, role: primary}}]"""
                        for name, node in (("via-gateway", "east-gateway"), ("direct", "east-primary")))
    config = f"""listeners:
{listener}
clusters:
{cluster}
backend_identities:
  - {{name: mi, kind: imds, endpoint: "{deployment.imds_url}"}}
logins:
  - {{name: {USER}, password_hash: "{hash_password(PASSWORD)}"}}
policy:
  - {{name: p, match: {{login: {USER}}}, clusters: ["*"], databases: ["*"], write: true, backend_identity: mi}}
"""
    proxy = ProxyProcess(work, config, direct_port)
    yield proxy, gateway_port, direct_port
    proxy.stop()


def _connect(port):
    return pytds.connect(dsn="127.0.0.1", port=port, database="appdb", user=USER, password=PASSWORD,
                         login_timeout=15, timeout=10, autocommit=True)


def test_an_endpoint_that_does_not_redirect_serves_sessions(pinned):
    proxy, _, direct_port = pinned
    with _connect(direct_port) as conn:
        cur = conn.cursor()
        cur.execute("SELECT DATABASEPROPERTYEX(DB_NAME(), 'Updateability')")
        assert cur.fetchall()[0][0] == "READ_WRITE"


def test_a_redirect_is_refused_with_the_reason(pinned):
    proxy, gateway_port, _ = pinned
    with pytest.raises(pytds.tds_base.Error) as refused:
        _connect(gateway_port)
    text = str(refused.value)
    assert "pinned to the Proxy connection policy" in text and "redirected tdsgate to" in text, text + proxy.log()[-2000:]
