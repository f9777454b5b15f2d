"""Clients that stall before their login completes are closed at the listener's
`login_timeout_s` (issue 11): nothing sent, half a header, PRELOGIN and then no TLS, no
LOGIN7 after PRELOGIN (which gets a TDS error), strict TLS and then no PRELOGIN. After each,
a normal login through the same proxy still works."""

from __future__ import annotations

import socket
import ssl
import struct
import time

import pytds
import pytest

from proxy_process import gateway_cluster_yaml, ProxyProcess, free_ports, hash_password
from test_proxy_operations import _self_signed

USER, PASSWORD = "deadline-user", "Deadline-Passw0rd!"
TIMEOUT_S = 2


def _config(dep, work, port):
    return f"""listeners:
  - name: stall
    address: 127.0.0.1
    port: {port}
    tls: {{certificate: "{work}/cert.pem", key: "{work}/key.pem"}}
    client_encryption: [required, strict, plaintext]
    cluster: orders
    login_timeout_s: {TIMEOUT_S}
{gateway_cluster_yaml(dep, USER, hash_password(PASSWORD), "stall")}"""


@pytest.fixture(scope="module")
def proxy(deployment, tmp_path_factory):
    port = free_ports(1)[0]
    work = tmp_path_factory.mktemp("deadlines")
    _self_signed(work / "cert.pem", work / "key.pem", serial=7)
    p = ProxyProcess(work, _config(deployment, work, port), port)
    yield port
    p.stop()


def _prelogin(encryption: int) -> bytes:
    """A PRELOGIN with VERSION and ENCRYPTION, as a one-packet message."""
    options = [(0x00, bytes([16, 0, 0x03, 0xE8, 0, 0])), (0x01, bytes([encryption]))]
    table_len = 5 * len(options) + 1
    table, data = b"", b""
    for token, value in options:
        table += struct.pack(">BHH", token, table_len + len(data), len(value))
        data += value
    body = table + b"\xff" + data
    return struct.pack(">BBHHBB", 0x12, 0x01, 8 + len(body), 0, 1, 0) + body


def _read_packet(sock) -> bytes:
    head = b""
    while len(head) < 8:
        chunk = sock.recv(8 - len(head))
        if not chunk:
            return head
        head += chunk
    length = struct.unpack(">H", head[2:4])[0]
    body = b""
    while len(body) < length - 8:
        chunk = sock.recv(length - 8 - len(body))
        if not chunk:
            break
        body += chunk
    return head + body


def _closed_after(sock) -> tuple[float, bytes]:
    """Seconds until the proxy closes the connection, and what it sent before."""
    start = time.monotonic()
    sock.settimeout(TIMEOUT_S + 10)
    got = b""
    while True:
        try:
            chunk = sock.recv(65536)
        except (ConnectionResetError, ssl.SSLError, ssl.SSLEOFError):
            break
        if not chunk:
            break
        got += chunk
    return time.monotonic() - start, got


def _login_works(port):
    with pytds.connect(server="127.0.0.1", port=port, database="appdb", user=USER, password=PASSWORD,
                       login_timeout=15, timeout=15, autocommit=True) as conn:
        with conn.cursor() as cur:
            cur.execute("SELECT 1")
            assert cur.fetchone()[0] == 1


def _assert_closed_in_time(elapsed):
    assert TIMEOUT_S - 0.5 <= elapsed <= TIMEOUT_S + 3, f"closed after {elapsed:.2f} s, login_timeout_s is {TIMEOUT_S}"


def test_nothing_sent(proxy):
    with socket.create_connection(("127.0.0.1", proxy)) as s:
        elapsed, got = _closed_after(s)
    _assert_closed_in_time(elapsed)
    assert got == b""
    _login_works(proxy)


def test_half_a_header(proxy):
    with socket.create_connection(("127.0.0.1", proxy)) as s:
        s.sendall(b"\x12\x01\x00")
        elapsed, _ = _closed_after(s)
    _assert_closed_in_time(elapsed)
    _login_works(proxy)


def test_header_longer_than_what_follows(proxy):
    with socket.create_connection(("127.0.0.1", proxy)) as s:
        s.sendall(struct.pack(">BBHHBB", 0x12, 0x01, 400, 0, 1, 0) + b"\x00" * 20)
        elapsed, _ = _closed_after(s)
    _assert_closed_in_time(elapsed)
    _login_works(proxy)


def test_prelogin_then_no_tls(proxy):
    with socket.create_connection(("127.0.0.1", proxy)) as s:
        s.sendall(_prelogin(0x01))  # ENCRYPT_ON: the proxy starts TLS inside PRELOGIN
        answer = _read_packet(s)
        assert answer[0] == 0x04
        elapsed, _ = _closed_after(s)
    _assert_closed_in_time(elapsed)
    _login_works(proxy)


def test_prelogin_then_no_login7_gets_an_error(proxy):
    with socket.create_connection(("127.0.0.1", proxy)) as s:
        s.sendall(_prelogin(0x02))  # NOT_SUP on a listener that allows plaintext
        assert _read_packet(s)[0] == 0x04
        elapsed, got = _closed_after(s)
    _assert_closed_in_time(elapsed)
    # A tabular result with an ERROR token (0xAA) carrying error 17830 and the setting's name.
    assert got[:1] == b"\x04" and got[8] == 0xAA, got[:32]
    number = struct.unpack("<i", got[11:15])[0]
    assert number == 17830
    assert "login_timeout_s".encode("utf-16-le") in got


def test_strict_tls_then_no_prelogin(proxy):
    ctx = ssl.create_default_context()
    ctx.check_hostname = False
    ctx.verify_mode = ssl.CERT_NONE
    ctx.set_alpn_protocols(["tds/8.0"])
    with socket.create_connection(("127.0.0.1", proxy)) as raw:
        with ctx.wrap_socket(raw, server_hostname="localhost") as tls:
            elapsed, _ = _closed_after(tls)
    # The handshake itself took a little of the budget.
    assert elapsed <= TIMEOUT_S + 3
    _login_works(proxy)


def test_prelogin_trickled_one_byte_at_a_time(proxy):
    message = _prelogin(0x02)
    start = time.monotonic()
    with socket.create_connection(("127.0.0.1", proxy)) as s:
        s.settimeout(0.2)
        closed = False
        for b in message:
            try:
                s.sendall(bytes([b]))
                time.sleep(0.5)
                if s.recv(1) == b"":
                    closed = True
                    break
            except socket.timeout:
                continue
            except (BrokenPipeError, ConnectionResetError):
                closed = True
                break
            if time.monotonic() - start > TIMEOUT_S + 3:
                break
    assert closed, "a trickled PRELOGIN must not extend the login deadline"
    assert time.monotonic() - start <= TIMEOUT_S + 3
    _login_works(proxy)
