"""Integrated (Kerberos) logins through tdsgate, with a real MIT KDC on loopback made for
this module (tools/kdc.py): FreeTDS tsql and ODBC Driver 18 log in with a ticket from
kinit; tdsgate accepts them with its keytab for MSSQLSvc/localhost:<port> and logs in to the
emulated Azure SQL with its managed identity. A wrong service key, an expired ticket, an
unaccepted realm and a principal no policy rule admits are refused with a clear message."""

from __future__ import annotations

import json
import os
import re
import socket
import subprocess
import sys
import threading
import time
from pathlib import Path

import pytest

import interop
from interop import q
from proxy_process import ProxyProcess, free_ports

sys.path.insert(0, str(Path(__file__).parent / "tools"))
import kdc as kdctool  # noqa: E402

REALM = kdctool.DEFAULT_REALM


def _listener(name: str, port: int, state: Path, keytab: str, realms: str) -> str:
    return f"""  - name: {name}
    address: 127.0.0.1
    port: {port}
    tls: {{certificate: "{state}/proxy.pem", key: "{state}/proxy-key.pem"}}
    client_encryption: [required, strict, plaintext]
    cluster: orders
    kerberos:
      keytab: "{keytab}"
      realms: {realms}
      name_rules:
        - {{realm: {REALM}, name: "{{user}}-krb", lowercase: true}}
"""


@pytest.fixture(scope="module")
def krb(deployment, tmp_path_factory):
    work = tmp_path_factory.mktemp("kerberos")
    state = Path(deployment.data["proxy"]["config_file"]).parent
    port, other_realm_port, wrong_key_port, admin_port = free_ports(4)
    try:
        kdc = kdctool.TestKDC(str(work / "kdc"), service_port=port).start()
    except kdctool.KDCError as e:
        pytest.fail(f"cannot start the test KDC (Debian krb5-kdc, krb5-admin-server, krb5-user): {e}")
    # The same service keys serve the listener that accepts another realm only; the third
    # listener's keytab holds a key the KDC never issued tickets for.
    for p in (other_realm_port, wrong_key_port):
        kdc.add_principal(f"MSSQLSvc/localhost:{p}")
    # ODBC Driver 18 canonicalises "localhost" to this machine's host name for its SPN, as
    # it would for any server name: register those names too, as a domain admin would.
    host_spns = sorted({f"MSSQLSvc/{h}:{port}" for h in (socket.gethostname(), socket.getfqdn())} - set(kdc.services))
    for spn in host_spns:
        kdc.add_principal(spn)
    kdc.export_keytab(kdc.keytab, kdc.services + host_spns + [f"MSSQLSvc/localhost:{other_realm_port}"])
    wrong_keytab = kdc.wrong_key_keytab(str(work / "wrong.keytab"), f"MSSQLSvc/localhost:{wrong_key_port}")

    # The audit trail of this proxy goes to syslog over TCP (RFC 5424, octet counting).
    syslog = socket.socket()
    syslog.bind(("127.0.0.1", 0))
    syslog.listen(4)
    received: list[bytes] = []

    def collect():
        while True:
            try:
                conn, _ = syslog.accept()
            except OSError:
                return
            while chunk := conn.recv(65536):
                received.append(chunk)

    threading.Thread(target=collect, daemon=True).start()
    node = next(n for n in deployment.nodes if n["name"] == "east-gateway")
    config = "listeners:\n" + _listener("krb", port, state, kdc.keytab, f"[{REALM}]") \
        + _listener("other-realm", other_realm_port, state, kdc.keytab, "[ELSEWHERE.TEST]") \
        + _listener("wrong-key", wrong_key_port, state, wrong_keytab, f"[{REALM}]") + f"""clusters:
  - name: orders
    databases: [appdb]
    ca_file: "{deployment.ca_file}"
    endpoints:
      - {{name: gw, host: localhost, port: {node["port"]}, tls_name: localhost, role: primary}}
backend_identities:
  - {{name: mi, kind: imds, endpoint: "{deployment.imds_url}"}}
policy:
  - {{name: alice-krb, match: {{kerberos: alice@{REALM}}}, clusters: [orders], databases: ["*"], write: true, backend_identity: mi}}
  - {{name: shortlived, match: {{kerberos: shortlived@{REALM}}}, clusters: [orders], databases: ["*"], write: true, backend_identity: mi}}
admin: {{address: 127.0.0.1, port: {admin_port}}}
audit: {{syslog: {{host: 127.0.0.1, port: {syslog.getsockname()[1]}, transport: tcp, facility: authpriv}}}}
"""
    # tdsgate reads the realm's krb5.conf (its 2 s clock skew makes "expired" testable).
    proxy = ProxyProcess(work, config, port, env=dict(os.environ, KRB5_CONFIG=kdc.krb5_config))
    yield {"kdc": kdc, "proxy": proxy, "port": port, "other_realm_port": other_realm_port,
           "wrong_key_port": wrong_key_port, "work": work, "syslog": received}
    proxy.stop()
    kdc.stop()
    syslog.close()


def _identity(dep) -> str:
    return dep.data["proxy_logins"][0]["backend_identity"]


def _tsql(krb, port: int, ccache: str, queries: list[str], tmp_path: Path) -> dict:
    """tsql with no user name: FreeTDS then logs in with the Kerberos ticket in KRB5CCNAME."""
    conf = interop.freetds_conf(tmp_path / f"freetds-{port}.conf", {"tdsgate": {
        "host": "localhost", "port": str(port), "encryption": "require", "ca file": krb["ca_file"],
        "tds version": "7.4"}})
    env = interop.client_env(None, {"FREETDSCONF": conf})
    env.update({k: v for k, v in krb["kdc"].env(ccache).items() if k.startswith("KRB5")})
    script = "".join(f"{s}\ngo\n" for s in queries) + "exit\n"
    p = subprocess.run(["tsql", "-S", "tdsgate", "-D", "appdb", "-o", "fhq"], input=script, capture_output=True,
                       text=True, env=env, timeout=60)
    return {"rc": p.returncode, "values": [v.strip() for v in p.stdout.splitlines() if v.strip()],
            "out": p.stdout + p.stderr}


def _odbc(dep, krb, port: int, ccache: str, queries: list[str]) -> dict:
    extra = {k: v for k, v in krb["kdc"].env(ccache).items() if k.startswith("KRB5")}
    spec = {"lib": "pyodbc", "driver_path": interop.odbc_driver_path("msodbcsql18"),
            "conn_str": f"Server=localhost,{port};Database=appdb;Encrypt=yes;Trusted_Connection=yes;",
            "queries": [q(s) for s in queries]}
    return interop.run_client("odbc_client.py", spec, interop.client_env(dep, extra))


@pytest.fixture
def krb_ca(krb, deployment):
    krb["ca_file"] = deployment.ca_file
    return krb


def test_tsql_logs_in_with_a_ticket(deployment, krb_ca, tmp_path):
    alice = krb_ca["kdc"].ccache_for("alice")
    r = _tsql(krb_ca, krb_ca["port"], alice, ["SELECT SUSER_SNAME()", "SELECT DB_NAME()"], tmp_path)
    assert r["values"][:2] == [_identity(deployment), "appdb"], r["out"] + krb_ca["proxy"].log()[-3000:]
    log = krb_ca["proxy"].log()
    assert "alice-krb" in log, log[-3000:]


def test_odbc_driver_18_trusted_connection(deployment, krb_ca):
    alice = krb_ca["kdc"].ccache_for("alice")
    res = _odbc(deployment, krb_ca, krb_ca["port"], alice, ["SELECT SUSER_SNAME()", "SELECT DB_NAME()"])
    assert res.get("connected"), interop.describe(res) + krb_ca["proxy"].log()[-3000:]
    assert interop.scalar(res, 0) == _identity(deployment), interop.describe(res) + krb_ca["proxy"].log()[-3000:]


def _refused_text(r: dict) -> str:
    return r["out"]


def test_a_principal_no_rule_admits_is_refused(deployment, krb_ca, tmp_path):
    bob = krb_ca["kdc"].ccache_for("bob")
    r = _tsql(krb_ca, krb_ca["port"], bob, ["SELECT 1"], tmp_path)
    assert "1" not in r["values"] and "Login failed for user 'bob-krb'" in r["out"], r["out"]


def test_an_unaccepted_realm_is_refused(deployment, krb_ca, tmp_path):
    alice = krb_ca["kdc"].ccache_for("alice")
    r = _tsql(krb_ca, krb_ca["other_realm_port"], alice, ["SELECT 1"], tmp_path)
    assert "1" not in r["values"], r["out"]
    assert "Kerberos" in r["out"] and "realm" in r["out"] and REALM in r["out"], r["out"]


def test_a_wrong_service_key_is_refused(deployment, krb_ca, tmp_path):
    alice = krb_ca["kdc"].ccache_for("alice")
    r = _tsql(krb_ca, krb_ca["wrong_key_port"], alice, ["SELECT 1"], tmp_path)
    assert "1" not in r["values"], r["out"]
    assert "Kerberos" in r["out"] and "key" in r["out"], r["out"]


def test_an_expired_ticket_is_refused(deployment, krb_ca, tmp_path):
    kdc = krb_ca["kdc"]
    cc = "FILE:" + str(tmp_path / "ccache-shortlived")
    kdc.kinit("shortlived", ccache=cc)
    # Get the service ticket while it is valid, let it expire, then make the client keep
    # using it (the end time the client checks is outside the encrypted part).
    subprocess.run(["kvno", f"MSSQLSvc/localhost:{krb_ca['port']}"], env=kdc.env(cc), check=True,
                   capture_output=True, timeout=30)
    time.sleep(3 + kdc.clockskew + 3)
    kdctool.stretch_ccache(cc[len("FILE:"):])
    r = _tsql(krb_ca, krb_ca["port"], cc, ["SELECT 1"], tmp_path)
    assert "1" not in r["values"], r["out"]
    assert "Kerberos" in r["out"] and "expired" in r["out"], r["out"]


def _syslog_events(received: list[bytes]) -> list[tuple[str, dict]]:
    """(MSGID, JSON) of each octet-counted RFC 5424 frame received so far."""
    data, events = b"".join(received), []
    while data:
        length, _, rest = data.partition(b" ")
        n = int(length)
        frame, data = rest[:n].decode(), rest[n:]
        m = re.match(r"<(\d+)>1 \S+ \S+ tdsgate \S+ (\S+) - (\{.*\})$", frame)
        assert m, frame
        events.append((m.group(2), json.loads(m.group(3))))
    return events


def test_kerberos_logins_are_in_the_syslog_audit_trail(deployment, krb_ca, tmp_path):
    alice = krb_ca["kdc"].ccache_for("alice")
    _tsql(krb_ca, krb_ca["port"], alice, ["SELECT 1"], tmp_path)
    _tsql(krb_ca, krb_ca["port"], krb_ca["kdc"].ccache_for("bob"), ["SELECT 1"], tmp_path)
    deadline = time.monotonic() + 10
    while time.monotonic() < deadline:
        events = _syslog_events(krb_ca["syslog"])
        starts = [e for msgid, e in events if msgid == "session_start" and e.get("auth_method") == "kerberos"]
        ends = {e["session"] for msgid, e in events if msgid == "session_end"}
        if starts and all(s["session"] in ends for s in starts):
            break
        time.sleep(0.2)
    assert starts and all(s["session"] in ends for s in starts), events
    allowed = [e for msgid, e in events if msgid == "policy_decision" and e["decision"] == "allowed"]
    assert any(e["rule"] == "alice-krb" and e["principal"] == "alice-krb" for e in allowed), allowed
    denied = [e for msgid, e in events if msgid == "policy_decision" and e["decision"] == "denied"]
    assert any(e["principal"] == "bob-krb" for e in denied), denied
