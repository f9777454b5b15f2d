"""Issue 14's wire-level attacks on the demo's proxy, with raw sockets: an amplified
PRELOGIN, a 200 KB LOGIN7, a 40,000-character user name and a user name with a newline.
Each gets a well-formed TDS ERROR and a closed connection; after each the proxy is alive,
a normal pytds login through it works, and its RSS stays bounded."""

from __future__ import annotations

import os
import socket
import struct
import threading
import time

import pytest

import interop
from interop import q

ERROR, DONE = 0xAA, 0xFD
RSS_GROWTH_LIMIT_KB = 64 * 1024


def _proxy(dep) -> tuple[str, int]:
    p = dep.data["proxy"]
    return p["host"], int(p["port"])


def _proxy_pid(port: int) -> int:
    """The process listening on the proxy's port (the demo runs the proxy in-process)."""
    inodes = set()
    for table in ("/proc/net/tcp", "/proc/net/tcp6"):
        try:
            rows = open(table).read().splitlines()[1:]
        except OSError:
            continue
        for row in rows:
            f = row.split()
            if f[3] == "0A" and int(f[1].rsplit(":", 1)[1], 16) == port:
                inodes.add(f[9])
    for pid in filter(str.isdigit, os.listdir("/proc")):
        try:
            for fd in os.listdir(f"/proc/{pid}/fd"):
                if os.readlink(f"/proc/{pid}/fd/{fd}").removeprefix("socket:[").removesuffix("]") in inodes:
                    return int(pid)
        except OSError:
            continue
    raise AssertionError(f"no process listens on port {port}")


def _rss_kb(pid: int) -> int:
    for line in open(f"/proc/{pid}/status"):
        if line.startswith("VmRSS:"):
            return int(line.split()[1])
    raise AssertionError("no VmRSS")


def _packets(ptype: int, payload: bytes, size: int = 4096) -> bytes:
    out, chunk, pid = b"", size - 8, 1
    for i in range(0, max(len(payload), 1), chunk):
        part = payload[i:i + chunk]
        last = i + chunk >= len(payload)
        out += struct.pack(">BBHHBB", ptype, 1 if last else 0, 8 + len(part), 0, pid & 0xFF, 0) + part
        pid += 1
    return out


def _prelogin(options: list[tuple[int, bytes]] | None = None) -> bytes:
    options = options or [(0x00, bytes([16, 0, 0, 0, 0, 0])), (0x01, b"\x02"), (0x04, b"\x00")]
    table, data, offset = b"", b"", len(options) * 5 + 1
    for token, value in options:
        table += struct.pack(">BHH", token, offset + len(data), len(value))
        data += value
    return _packets(0x12, table + b"\xff" + data)


def _amplified_prelogin(size: int = 60_000) -> bytes:
    """8,000 options that all point at the same six bytes: 440 MB of copies before the fix."""
    count = (size - 7) // 5
    offset = count * 5 + 1
    table = b"".join(struct.pack(">BHH", 0x10 + i % 200, offset, 6) for i in range(count))
    return _packets(0x12, table + b"\xff" + bytes(6), size=4096)


def _login7(user: str, password: str = "x", *, host: str = "raw", app: str = "wire-hardening",
            database: str = "appdb", padding: int = 0) -> bytes:
    """A LOGIN7 (TDS 7.4, MS-TDS 2.2.6.4); `padding` bytes after the fields count in its
    Length (offsets are u16, so that is how a LOGIN7 grows past 64 KiB)."""
    fields = [host, user, password, app, "tdsgate", "", "pytds-raw", "", database]
    fixed = 94
    raws = [v.encode("utf-16-le") for v in fields]
    # The password obfuscated as MS-TDS 2.2.6.4 says.
    raws[2] = bytes((((b << 4) & 0xF0) | (b >> 4)) ^ 0xA5 for b in raws[2])
    # Offsets are u16: the user name's bytes go last so a long one still has an offset.
    offsets, data = {}, b""
    for i in [j for j in range(len(raws)) if j != 1] + [1]:
        offsets[i] = fixed + len(data)
        data += raws[i]
    table = b"".join(struct.pack("<HH", offsets[i], len(raws[i]) // 2) for i in range(len(raws)))
    end = fixed + len(data)
    table += b"\x00" * 6 + struct.pack("<HHHHHHI", min(end, 0xFFFF), 0, min(end, 0xFFFF), 0, min(end, 0xFFFF), 0, 0)
    data += bytes(padding)
    head = struct.pack("<IIIIII", fixed + len(data), 0x74000004, 4096, 7, os.getpid(), 0)
    head += bytes([0xE0, 0x03, 0x00, 0x00]) + struct.pack("<iI", 0, 0x409)
    body = head + table + data
    assert len(head + table) == fixed
    return _packets(0x10, body)


def _exchange(dep, *messages: bytes, timeout: float = 20.0) -> tuple[bytes, float]:
    """Sends the messages (after the first, the PRELOGIN reply is read), reads until the
    proxy closes; returns (what came after the PRELOGIN reply, seconds to close). The rest
    is sent from a thread while this one reads: the proxy refuses an oversized message
    before it has all of it, and its answer must be read before the reset that the unsent
    rest provokes."""
    t0 = time.monotonic()
    reply = b""
    with socket.create_connection(_proxy(dep), timeout=timeout) as s:
        first, rest = messages[0], messages[1:]
        if rest:
            s.sendall(first)
            _read_message(s)
        else:
            rest = (first,)

        def send() -> None:
            for m in rest:
                try:
                    s.sendall(m)
                except OSError:
                    return

        sender = threading.Thread(target=send, daemon=True)
        sender.start()
        try:
            while True:
                chunk = s.recv(65536)
                if not chunk:
                    break
                reply += chunk
        except ConnectionResetError:
            pass
        took = time.monotonic() - t0
        sender.join(timeout)
    return reply, took


def _read_message(s: socket.socket) -> bytes:
    out = b""
    while True:
        head = _recv_exact(s, 8)
        out += head + _recv_exact(s, struct.unpack(">H", head[2:4])[0] - 8)
        if head[1] & 1:
            return out


def _recv_exact(s: socket.socket, n: int) -> bytes:
    b = b""
    while len(b) < n:
        chunk = s.recv(n - len(b))
        assert chunk, f"connection closed after {len(b)} of {n} bytes"
        b += chunk
    return b


def _tokens(reply: bytes) -> list[tuple[int, object]]:
    """Parses the reply strictly: whole packets, then ERROR/INFO/DONE tokens whose lengths agree."""
    payload, i = b"", 0
    while i < len(reply):
        assert len(reply) - i >= 8, f"a cut packet header at {i}: {reply[i:].hex()}"
        ptype, _, length = struct.unpack(">BBH", reply[i:i + 4])
        assert ptype == 0x04 and 8 <= length <= len(reply) - i, f"bad packet header {reply[i:i + 8].hex()}"
        payload += reply[i + 8:i + length]
        i += length
    tokens, j = [], 0
    while j < len(payload):
        t = payload[j]
        if t in (ERROR, 0xAB):
            (n,) = struct.unpack("<H", payload[j + 1:j + 3])
            body = payload[j + 3:j + 3 + n]
            assert len(body) == n, "token length runs past the reply"
            number, state, cls, mlen = struct.unpack("<iBBH", body[:8])
            k = 8 + 2 * mlen
            msg = body[8:k].decode("utf-16-le")
            slen = body[k]
            server = body[k + 1:k + 1 + 2 * slen].decode("utf-16-le")
            k += 1 + 2 * slen
            plen = body[k]
            k += 1 + 2 * plen
            (line,) = struct.unpack("<i", body[k:k + 4])
            assert k + 4 == n, f"ERROR fields take {k + 4} bytes, its length says {n}"
            tokens.append((t, {"number": number, "class": cls, "message": msg, "server": server, "line": line}))
            j += 3 + n
        elif t == DONE:
            assert len(payload) - j >= 13
            tokens.append((t, struct.unpack("<HHQ", payload[j + 1:j + 13])))
            j += 13
        elif t == 0x00 or t == 0x01:  # a PRELOGIN reply: option table, not tokens
            return [(0x12, payload)]
        else:
            raise AssertionError(f"unexpected token 0x{t:02x} at {j}: {payload[j:j + 32].hex()}")
    return tokens


def _error(reply: bytes) -> dict:
    tokens = _tokens(reply)
    errors = [v for t, v in tokens if t == ERROR]
    assert errors, f"no ERROR token in {tokens}"
    assert tokens[-1][0] == DONE, f"the reply does not end with DONE: {tokens}"
    return errors[0]


def _normal_login_works(dep) -> None:
    host, port = _proxy(dep)
    login = next(l for l in dep.data["proxy_logins"] if l.get("write"))
    res = interop.run_client("pytds_client.py", {
        "server": host, "port": port, "user": login["user"], "password": login["password"],
        "database": login.get("database"), "queries": [q("SELECT 1")]}, interop.client_env(dep))
    interop.assert_connected(res)
    assert interop.scalar(res, 0) == 1, interop.describe(res)


@pytest.fixture(scope="module")
def proxy_pid(deployment):
    pid = _proxy_pid(_proxy(deployment)[1])
    _normal_login_works(deployment)
    yield pid


def test_amplified_prelogin_is_refused_and_costs_nothing(deployment, proxy_pid):
    before = _rss_kb(proxy_pid)
    wire = _amplified_prelogin()
    assert len(wire) > 60_000
    for _ in range(20):
        reply, took = _exchange(deployment, wire)
        err = _error(reply)
        assert err["number"] == 4002 and "Prelogin message reached" in err["message"], err
        assert took < 5, f"closing took {took:.1f}s"
    after = _rss_kb(proxy_pid)
    assert after - before < RSS_GROWTH_LIMIT_KB, f"RSS {before} kB -> {after} kB"
    _normal_login_works(deployment)


def test_a_200kb_login7_is_refused(deployment, proxy_pid):
    before = _rss_kb(proxy_pid)
    big = _login7("someone", padding=200_000)
    assert len(big) > 200_000
    for _ in range(10):
        reply, took = _exchange(deployment, _prelogin(), big)
        err = _error(reply)
        assert err["number"] == 4002 and "Login7 message reached" in err["message"] and "131071" in err["message"], err
        assert took < 5, f"closing took {took:.1f}s"
    assert _rss_kb(proxy_pid) - before < RSS_GROWTH_LIMIT_KB
    _normal_login_works(deployment)


def test_a_40000_character_user_name_gets_a_well_formed_error(deployment, proxy_pid):
    reply, took = _exchange(deployment, _prelogin(), _login7("u" * 40_000))
    err = _error(reply)  # parses every length: a wrapped u16 would fail here
    assert err["number"] == 18456, err
    assert err["message"].startswith("Login failed for user 'uuuu"), err
    assert "…'" in err["message"] and len(err["message"]) < 300, f"the echo is not capped: {len(err['message'])} chars"
    assert err["server"] == "tdsgate"
    assert took < 20
    _normal_login_works(deployment)


def test_a_user_name_with_a_newline_forges_no_log_line(deployment, proxy_pid):
    marker = interop.unique("FORGED")
    forged = f"2026-01-01T00:00:00+0000 info tdsgate: session=1 [Gateway] {marker} session relaying"
    reply, _ = _exchange(deployment, _prelogin(), _login7("mallory\n" + forged))
    err = _error(reply)
    assert err["number"] == 18456 and "\n" not in err["message"], err
    assert "mallory\\n" in err["message"], err
    deadline = time.monotonic() + 10
    while marker not in deployment.log_path.read_text(errors="replace") and time.monotonic() < deadline:
        time.sleep(0.1)
    lines = deployment.log_path.read_text(errors="replace").splitlines()
    hits = [line for line in lines if marker in line]
    assert hits, "the refused login was not logged"
    for line in hits:
        assert not line.startswith("2026-01-01T00:00:00"), f"a forged log line: {line!r}"
        assert "mallory\\n2026-01-01" in line, f"the name is not escaped in: {line!r}"
    _normal_login_works(deployment)
