"""The admin API under hostile requests (README "Admin API", limits): raw sockets against
the demo proxy's admin port. Query values that used to end the process (a trap converting
`wait=nan`, `after=Int.max`, `after=Int.min`) and other odd numbers get a 400 with a JSON
error naming the parameter; headers that never end are closed within the header timeout;
a body over the cap gets 413, headers over the cap 431; connections beyond the cap get 503;
a wrong bearer token gets 401 without being echoed (a `tdsgate run` of this module's own,
with `admin.bearer_token_file`). After every hostile request the proxy is alive: `/healthz`
answers 200 and a pytds login through the proxy works."""

from __future__ import annotations

import json
import re
import select
import socket
import time
import urllib.parse
from pathlib import Path

import pytest

import interop
from interop import q
from proxy_process import ProxyProcess, free_ports

# HTTPServerLimits' defaults, which the admin API uses (README "Admin API").
HEADER_TIMEOUT_S = 10
MAX_CONNECTIONS = 64
MAX_BODY_BYTES = 1 << 20
MAX_HEADER_BYTES = 16 << 10

TOKEN = "admin-hardening-token-7f3a"
WRONG_TOKEN = "wrong-token-0c1d9e"
USED_SECRETS: set[str] = {TOKEN, WRONG_TOKEN}


def _admin_address(url: str) -> tuple[str, int]:
    u = urllib.parse.urlparse(url)
    assert u.hostname and u.port, url
    return u.hostname, u.port


@pytest.fixture(scope="module")
def admin(deployment) -> tuple[str, int]:
    url = deployment.data["proxy"].get("admin_url")
    assert url, "the demo's ports file names no admin_url"
    return _admin_address(url)


def _read_all(sock: socket.socket, timeout: float) -> bytes:
    """What the server sends until it closes (or `timeout` passes)."""
    deadline = time.monotonic() + timeout
    data = b""
    while time.monotonic() < deadline:
        sock.settimeout(max(0.05, deadline - time.monotonic()))
        try:
            chunk = sock.recv(65536)
        except socket.timeout:
            break
        except ConnectionResetError:
            break
        if not chunk:
            break
        data += chunk
    return data


class Response:
    def __init__(self, raw: bytes):
        head, _, body = raw.partition(b"\r\n\r\n")
        lines = head.decode("latin-1").split("\r\n")
        parts = lines[0].split(" ", 2)
        assert len(parts) >= 2 and parts[0].startswith("HTTP/1."), f"not an HTTP response: {raw[:200]!r}"
        self.status = int(parts[1])
        self.headers = {}
        for line in lines[1:]:
            name, _, value = line.partition(":")
            self.headers[name.strip().lower()] = value.strip()
        length = int(self.headers.get("content-length", len(body)))
        self.body = body[:length]
        self.raw = raw

    def json(self) -> dict:
        return json.loads(self.body)

    def __repr__(self) -> str:
        return f"<{self.status} {self.raw[:300]!r}>"


def request(addr: tuple[str, int], method: str, target: str, *, headers: dict[str, str] | None = None,
            body: bytes = b"", timeout: float = 15) -> Response:
    """One request on its own connection (`Connection: close`), written as raw bytes."""
    lines = [f"{method} {target} HTTP/1.1", f"Host: {addr[0]}:{addr[1]}", "Connection: close"]
    lines += [f"{k}: {v}" for k, v in (headers or {}).items()]
    if body or method in ("POST", "PUT"):
        lines.append(f"Content-Length: {len(body)}")
    data = ("\r\n".join(lines) + "\r\n\r\n").encode("latin-1") + body
    with socket.create_connection(addr, timeout=timeout) as s:
        try:
            s.sendall(data)
        except (BrokenPipeError, ConnectionResetError):
            pass  # the server answered and closed before taking all of it: read the answer
        raw = _read_all(s, timeout)
    assert raw, f"no answer to {method} {target[:100]}"
    return Response(raw)


def _pytds_login(deployment) -> dict:
    p = deployment.data["proxy"]
    login = next(l for l in deployment.data["proxy_logins"] if l.get("write"))
    spec = {"server": p.get("tls_host", "localhost"), "port": p["port"], "user": login["user"],
            "password": login["password"], "database": login["database"], "cafile": deployment.ca_file,
            "queries": [q("SELECT 1")]}
    return interop.run_client("pytds_client.py", spec, interop.client_env(deployment))


def assert_alive(deployment, admin) -> None:
    """The proxy survived: its admin API answers and a client logs in through it."""
    health = request(admin, "GET", "/healthz")
    assert health.status == 200 and health.body == b"ok\n", health
    res = _pytds_login(deployment)
    interop.assert_connected(res)
    assert interop.scalar(res, 0) == 1, interop.describe(res)


# --------------------------------------------------------------------------------------
# Numbers from the query string
# --------------------------------------------------------------------------------------

# (query, the parameter the error must name). The first three ended the process before.
BAD_FOLLOW_QUERIES = [
    ("wait=nan", "wait"),
    ("after=9223372036854775807", "after"),
    ("after=-9223372036854775808", "after"),
    ("wait=inf", "wait"),
    ("wait=-inf", "wait"),
    ("wait=1e400", "wait"),
    ("wait=-1", "wait"),
    ("wait=31", "wait"),
    ("wait=", "wait"),
    ("after=99999999999999999999", "after"),
    ("after=-1", "after"),
    ("after=1.5", "after"),
    ("after=abc", "after"),
    ("limit=0", "limit"),
    ("limit=-9223372036854775808", "limit"),
    ("limit=9223372036854775807", "limit"),
    ("after=0&wait=0&limit=nan", "limit"),
]


@pytest.mark.parametrize("query,parameter", BAD_FOLLOW_QUERIES, ids=[qs for qs, _ in BAD_FOLLOW_QUERIES])
def test_odd_numbers_get_400_and_the_proxy_lives(deployment, admin, query, parameter):
    r = request(admin, "GET", f"/v1/dump/follow?{query}")
    assert r.status == 400, r
    assert r.headers.get("content-type", "").startswith("application/json"), r
    body = r.json()
    assert body["error"] == "invalid_parameter", body
    assert body["error_description"].startswith(f"query parameter '{parameter}': must be "), body
    assert_alive(deployment, admin)


def test_good_follow_values_still_work(admin):
    r = request(admin, "GET", "/v1/dump/follow?after=0&wait=0&limit=1")
    assert r.status == 200, r
    body = r.json()
    assert set(body) == {"next", "lines", "missed", "enabled"}, body
    assert len(body["lines"]) <= 1
    r = request(admin, "GET", "/v1/dump/follow?after=9007199254740992&wait=0.2")
    assert r.status == 200, r
    assert r.json()["lines"] == []


@pytest.mark.parametrize("body,field", [
    ({"phase": "end", "mode": "planned", "outcome": "passed", "duration_ms": 9223372036854775807}, "duration_ms"),
    ({"phase": "end", "mode": "planned", "outcome": "passed", "duration_ms": -1}, "duration_ms"),
    ({"phase": "end", "mode": "planned", "outcome": "passed", "sessions_closed": 1e300}, "sessions_closed"),
    ({"phase": "end", "mode": "planned", "outcome": "passed", "sessions_closed": "many"}, "sessions_closed"),
    ({"phase": "end", "mode": "planned", "outcome": "maybe"}, "outcome"),
    ({"phase": "middle", "mode": "planned"}, "phase"),
    ({"phase": "start", "mode": "planned\nforged log line"}, "mode"),
    ({"phase": "start", "mode": "planned", "drill_id": "x y"}, "drill_id"),
])
def test_drill_report_fields_are_checked(deployment, admin, body, field):
    r = request(admin, "POST", "/v1/clusters/orders/drills", headers={"Content-Type": "application/json"},
                body=json.dumps(body).encode())
    assert r.status == 400, r
    assert f"'{field}'" in r.json()["error_description"], r
    assert_alive(deployment, admin)


@pytest.mark.parametrize("body", [
    {"filter": {"client": "10.0.0.0/99999999999999999999"}},
    {"filter": {"client": "10.0.0.0/-1"}},
    {"filter": {"client": "::1/129"}},
    {"format": []},
    {"format": ["text"], "hex": 5},
    {"format": ["pcap"]},
    [1, 2, 3],
])
def test_dump_settings_are_checked(deployment, admin, body):
    r = request(admin, "POST", "/v1/dump", headers={"Content-Type": "application/json"}, body=json.dumps(body).encode())
    assert r.status == 400, r
    assert r.json()["error"] in ("invalid_request", "invalid_filter"), r
    assert_alive(deployment, admin)


def test_unknown_names_get_404_naming_them(admin):
    r = request(admin, "GET", "/v1/clusters/" + "n" * 5000)
    assert r.status == 404 and r.json()["error"] == "unknown_cluster", r
    assert len(r.body) < 400, "a long name is clipped in the error"
    r = request(admin, "POST", "/v1/clusters/orders/endpoints/nope/drain")
    assert r.status == 404 and r.json()["error_description"] == "cluster 'orders' has no endpoint named 'nope'", r


# --------------------------------------------------------------------------------------
# Slow and large requests, many connections
# --------------------------------------------------------------------------------------

def _closed_within(sock: socket.socket, seconds: float, trickle: bytes | None = None) -> float | None:
    """Seconds until the server closes `sock` (None if it is still open after `seconds`),
    sending one byte of `trickle` every second meanwhile."""
    start = time.monotonic()
    sent = 0
    while time.monotonic() - start < seconds:
        readable, _, _ = select.select([sock], [], [], 1.0)
        if readable:
            try:
                if not sock.recv(4096):
                    return time.monotonic() - start
            except ConnectionResetError:
                return time.monotonic() - start
        elif trickle is not None:
            try:
                sock.send(trickle[sent % len(trickle):sent % len(trickle) + 1])
                sent += 1
            except (BrokenPipeError, ConnectionResetError):
                return time.monotonic() - start
    return None


@pytest.mark.parametrize("kind", ["silent", "half-header", "slowloris"])
def test_headers_that_never_end_are_closed_within_the_header_timeout(deployment, admin, kind):
    with socket.create_connection(admin, timeout=5) as s:
        trickle = None
        if kind != "silent":
            s.sendall(b"GET /healthz HTTP/1.1\r\nHost: x\r\nX-Slow: ")
        if kind == "slowloris":
            trickle = b"abcdefgh\r\nX-More: "
        took = _closed_within(s, HEADER_TIMEOUT_S + 5, trickle)
    assert took is not None, f"{kind}: still open {HEADER_TIMEOUT_S + 5} s after connecting"
    assert took >= HEADER_TIMEOUT_S - 1, f"{kind}: closed after {took:.1f} s, before the header timeout"
    assert_alive(deployment, admin)


def test_body_over_the_cap_gets_413(deployment, admin):
    r = request(admin, "POST", "/v1/dump", headers={"Content-Type": "application/json"},
                body=b" " * (MAX_BODY_BYTES + 1))
    assert r.status == 413, r
    assert r.json()["error"] == "request_entity_too_large", r
    assert r.headers.get("connection") == "close", r
    assert_alive(deployment, admin)


def test_headers_over_the_cap_get_431(deployment, admin):
    r = request(admin, "GET", "/healthz", headers={"X-Big": "a" * (MAX_HEADER_BYTES + 1)})
    assert r.status == 431, r
    assert r.json()["error"] == "request_header_fields_too_large", r
    many = {f"X-H{i}": "1" for i in range(200)}
    assert request(admin, "GET", "/healthz", headers=many).status == 431
    assert_alive(deployment, admin)


def test_garbage_gets_400(deployment, admin):
    with socket.create_connection(admin, timeout=5) as s:
        s.sendall(b"\x16\x03\x01\x02\x00\x01\x00\x01\xfc\x03\x03 not HTTP\r\n\r\n")
        raw = _read_all(s, 10)
    assert Response(raw).status == 400, raw[:200]
    assert_alive(deployment, admin)


def test_connections_beyond_the_cap_get_503(deployment, admin):
    extra = 16
    socks: list[socket.socket] = []
    try:
        for _ in range(MAX_CONNECTIONS + extra):
            socks.append(socket.create_connection(admin, timeout=5))
        # Refused connections are answered at once without a request; admitted ones wait for
        # theirs (and would be closed at the header timeout, well after this).
        refused, admitted = [], []
        deadline = time.monotonic() + 3
        pending = list(socks)
        while pending and time.monotonic() < deadline:
            readable, _, _ = select.select(pending, [], [], 0.2)
            for s in readable:
                refused.append(_read_all(s, 2))
                pending.remove(s)
        admitted = pending
        assert len(refused) >= extra, f"{len(refused)} refused of {len(socks)}"
        assert len(admitted) <= MAX_CONNECTIONS
        for raw in refused:
            r = Response(raw)
            assert r.status == 503, r
            assert r.json()["error"] == "too_many_connections", r
        # An admitted connection is still served while the server is full.
        admitted[0].sendall(b"GET /healthz HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n")
        assert Response(_read_all(admitted[0], 10)).status == 200
    finally:
        for s in socks:
            s.close()
    # Places free up as the server sees the closes.
    deadline = time.monotonic() + 10
    while time.monotonic() < deadline:
        try:
            if request(admin, "GET", "/healthz", timeout=5).status == 200:
                break
        except (AssertionError, OSError):
            pass
        time.sleep(0.2)
    assert_alive(deployment, admin)


# --------------------------------------------------------------------------------------
# Bearer token (a proxy of this module's own, with admin.bearer_token_file)
# --------------------------------------------------------------------------------------

@pytest.fixture(scope="module")
def token_proxy(deployment, tmp_path_factory):
    work = tmp_path_factory.mktemp("admin-token-proxy")
    port, admin_port = free_ports(2)
    (work / "admin.token").write_text(TOKEN + "\n")
    text = Path(deployment.data["proxy"]["config_file"]).read_text()
    text = re.sub(r"(?m)^(\s+port:) \d+$", rf"\1 {port}", text, count=1)
    text = re.sub(r"(?m)^admin: .*$",
                  f'admin: {{address: 127.0.0.1, port: {admin_port}, bearer_token_file: "{work}/admin.token"}}', text)
    text = re.sub(r"(?m)^audit: .*$", "", text)
    proxy = ProxyProcess(work, text, admin_port)
    proxy.admin = ("127.0.0.1", admin_port)
    yield proxy
    proxy.stop()


@pytest.mark.parametrize("authorization", [None, f"Bearer {WRONG_TOKEN}", f"Bearer {TOKEN}x", f"Bearer {TOKEN[:-1]}",
                                           f"Basic {TOKEN}", TOKEN, "Bearer"])
def test_wrong_bearer_token_gets_401_without_an_echo(token_proxy, authorization):
    headers = {"Authorization": authorization} if authorization else {}
    for method, path in [("GET", "/metrics"), ("GET", "/v1/clusters"), ("GET", "/v1/dump/follow?wait=nan"),
                         ("POST", "/v1/clusters/orders/endpoints/east/disable")]:
        r = request(token_proxy.admin, method, path, headers=headers)
        assert r.status == 401, (method, path, r)
        assert r.json()["error"] == "unauthorized", r
        assert r.headers.get("www-authenticate", "").startswith("Bearer"), r
        assert WRONG_TOKEN.encode() not in r.raw and TOKEN.encode() not in r.raw, r
        assert TOKEN[:8].encode() not in r.raw, r
    assert token_proxy.proc.poll() is None, token_proxy.log()


def test_health_checks_need_no_token(token_proxy):
    # HAProxy's httpchk and kubelet probes carry no secret; they reveal nothing but up/ready.
    for path in ("/healthz", "/readyz"):
        r = request(token_proxy.admin, "GET", path, headers={"Authorization": f"Bearer {WRONG_TOKEN}"})
        assert r.status in (200, 503), (path, r)
        assert WRONG_TOKEN.encode() not in r.raw, r


def test_right_bearer_token_is_let_in(token_proxy):
    for scheme in ("Bearer", "bearer"):
        r = request(token_proxy.admin, "GET", "/v1/clusters", headers={"Authorization": f"{scheme} {TOKEN}"})
        assert r.status == 200, r
    r = request(token_proxy.admin, "GET", "/v1/dump/follow?wait=nan", headers={"Authorization": f"Bearer {TOKEN}"})
    assert r.status == 400 and "'wait'" in r.json()["error_description"], r
    log = token_proxy.log()
    assert TOKEN not in log and WRONG_TOKEN not in log, "a bearer token reached the proxy's log"
