"""Operating tdsgate: certificate reload without dropping sessions, graceful shutdown,
throttling of repeated failures, and the session tag DBAs see."""

from __future__ import annotations

import datetime
import re
import signal
import socket
import ssl
import time

import pytds
import pytest
from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import rsa
from cryptography.x509.oid import NameOID

import interop
from interop import q
from proxy_process import gateway_cluster_yaml, ProxyProcess, free_ports, hash_password

USER, PASSWORD = "ops-user", "Ops-Passw0rd!"


def _self_signed(cert_path, key_path, serial: int):
    key = rsa.generate_private_key(public_exponent=65537, key_size=2048)
    name = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, "localhost")])
    now = datetime.datetime.now(datetime.timezone.utc)
    cert = (x509.CertificateBuilder().subject_name(name).issuer_name(name).public_key(key.public_key())
            .serial_number(serial).not_valid_before(now - datetime.timedelta(hours=1))
            .not_valid_after(now + datetime.timedelta(days=1))
            .add_extension(x509.SubjectAlternativeName([x509.DNSName("localhost")]), critical=False)
            .sign(key, hashes.SHA256()))
    key_path.write_bytes(key.private_bytes(serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8,
                                           serialization.NoEncryption()))
    cert_path.write_bytes(cert.public_bytes(serialization.Encoding.PEM))


def _served_serial(port: int) -> int:
    """The listener's certificate, read through a TDS 8.0 (strict) TLS handshake."""
    ctx = ssl.create_default_context()
    ctx.check_hostname = False
    ctx.verify_mode = ssl.CERT_NONE
    ctx.set_alpn_protocols(["tds/8.0"])
    with socket.create_connection(("127.0.0.1", port), timeout=10) as raw:
        with ctx.wrap_socket(raw, server_hostname="localhost") as tls:
            der = tls.getpeercert(binary_form=True)
    return x509.load_der_x509_certificate(der).serial_number


def _config(dep, work, port, throttle="{max_failures: 20, window_seconds: 60, block_seconds: 30}"):
    return f"""listeners:
  - name: ops
    address: 127.0.0.1
    port: {port}
    tls: {{certificate: "{work}/cert.pem", key: "{work}/key.pem"}}
    client_encryption: [required, strict, plaintext]
    cluster: orders
    tag_sessions: true
{gateway_cluster_yaml(dep, USER, hash_password(PASSWORD), "ops")}throttle: {throttle}
shutdown_grace_seconds: 20
"""


def _connect(port, password=PASSWORD):
    return pytds.connect(server="127.0.0.1", port=port, database="appdb", user=USER, password=password,
                         login_timeout=10, timeout=10, autocommit=True)


def _query(conn, sql):
    cur = conn.cursor()
    cur.execute(sql)
    return cur.fetchall()


@pytest.fixture
def ops_proxy(deployment, tmp_path):
    port = free_ports(1)[0]
    _self_signed(tmp_path / "cert.pem", tmp_path / "key.pem", serial=1001)
    proxy = ProxyProcess(tmp_path, _config(deployment, tmp_path, port), port)
    yield proxy, port, tmp_path
    proxy.stop()


def test_sighup_reloads_the_certificate_without_dropping_sessions(deployment, ops_proxy):
    proxy, port, work = ops_proxy
    assert _served_serial(port) == 1001
    session = _connect(port)
    assert _query(session, "SELECT 1") == [[1]] or _query(session, "SELECT 1") == [(1,)]
    _self_signed(work / "cert.pem", work / "key.pem", serial=2002)
    proxy.proc.send_signal(signal.SIGHUP)
    deadline = time.monotonic() + 10
    while time.monotonic() < deadline and _served_serial(port) != 2002:
        time.sleep(0.2)
    assert _served_serial(port) == 2002, proxy.log()
    assert [tuple(r) for r in _query(session, "SELECT SUSER_SNAME()")] == \
        [(deployment.data["proxy_logins"][0]["backend_identity"],)], "the session opened before the reload still works"
    session.close()
    assert "certificate reloaded" in proxy.log()


def test_a_broken_new_certificate_keeps_the_old_one(deployment, ops_proxy):
    proxy, port, work = ops_proxy
    assert _served_serial(port) == 1001
    (work / "cert.pem").write_text("not a certificate")
    proxy.proc.send_signal(signal.SIGHUP)
    deadline = time.monotonic() + 10
    while time.monotonic() < deadline and "certificate reload failed" not in proxy.log():
        time.sleep(0.2)
    assert "certificate reload failed" in proxy.log()
    assert _served_serial(port) == 1001


def test_sigterm_lets_running_sessions_finish(deployment, ops_proxy):
    proxy, port, _ = ops_proxy
    session = _connect(port)
    proxy.proc.send_signal(signal.SIGTERM)
    time.sleep(1)
    with pytest.raises(Exception):
        _connect(port)
    assert [tuple(r) for r in _query(session, "SELECT 41 + 1")] == [(42,)], "a running session keeps working"
    session.close()
    proxy.proc.wait(timeout=10)
    assert proxy.proc.returncode == 0, proxy.log()


def test_session_tag_shows_the_client_principal(deployment, ops_proxy):
    _, port, _ = ops_proxy
    with _connect(port) as conn:
        app = _query(conn, "SELECT APP_NAME()")[0][0]
    assert app.endswith(f"[tdsgate:{USER}]"), app


def test_repeated_failures_from_one_address_are_throttled(deployment, tmp_path):
    port = free_ports(1)[0]
    _self_signed(tmp_path / "cert.pem", tmp_path / "key.pem", serial=3003)
    proxy = ProxyProcess(tmp_path, _config(deployment, tmp_path, port,
                                           throttle="{max_failures: 3, window_seconds: 60, block_seconds: 3}"), port)
    try:
        for _ in range(3):
            with pytest.raises(pytds.OperationalError):
                _connect(port, password="wrong")
        with pytest.raises(pytds.OperationalError, match="too many failed logins") as refused:
            _connect(port)
        # The message says the limit and when the address may try again.
        assert "3 failed login(s) within 60 s" in str(refused.value), refused.value
        assert "throttle.max_failures" in str(refused.value), refused.value
        wait = re.search(r"may try again in (\d+) s", str(refused.value))
        assert wait and 1 <= int(wait.group(1)) <= 3, refused.value
        time.sleep(3.5)
        with _connect(port) as conn:
            assert _query(conn, "SELECT 1")[0][0] == 1
    finally:
        proxy.stop()
