#!/usr/bin/env python3
"""Which SPN and which SSPI blob does a real driver send for Integrated Security?

Listens on PORT (loopback clients; dual-stack so ::1 works too), answers PRELOGIN with ENCRYPTION=NOT_SUP (0x02) so the driver
goes on to LOGIN7 in plaintext, and reports the first LOGIN7: OptionFlags2 0x80
(fIntSecurity) and the SSPI blob's kind (SPNEGO / raw krb5 / NTLMSSP / none). The blob
itself is not printed. Then it closes the connection (the driver reports a failure;
that is expected). Run the driver with KRB5_TRACE=/dev/stderr to see the TGS-REQ's SPN.

  sspi_probe.py --port 14333 [--count 1] [--timeout 30]     prints one JSON line per LOGIN7
"""

from __future__ import annotations

import argparse
import json
import socket
import struct
import sys

SPNEGO_OID = bytes.fromhex("2b0601050502")
KRB5_OID = bytes.fromhex("2a864886f712010202")
MSKRB5_OID = bytes.fromhex("2a864882f712010202")
NTLM_OID = bytes.fromhex("2b06010401823702020a")


def recv_message(conn: socket.socket) -> tuple[int, bytes]:
    """One TDS message (packets until status EOM)."""
    body = b""
    ptype = 0
    while True:
        hdr = b""
        while len(hdr) < 8:
            chunk = conn.recv(8 - len(hdr))
            if not chunk:
                raise EOFError("client closed")
            hdr += chunk
        ptype, status, length = hdr[0], hdr[1], struct.unpack(">H", hdr[2:4])[0]
        need = length - 8
        data = b""
        while len(data) < need:
            chunk = conn.recv(need - len(data))
            if not chunk:
                raise EOFError("client closed")
            data += chunk
        body += data
        if status & 0x01:
            return ptype, body


def prelogin_reply() -> bytes:
    opts = [(0x00, bytes([16, 0, 0x03, 0xE8, 0, 0])),  # VERSION 16.0.1000
            (0x01, b"\x02"),                            # ENCRYPTION NOT_SUP
            (0x02, b"\x00"),                            # INSTOPT
            (0x03, b"\x00\x00\x00\x00"),                # THREADID
            (0x04, b"\x00")]                            # MARS off
    table_len = len(opts) * 5 + 1
    table, data = b"", b""
    for tok, val in opts:
        table += struct.pack(">BHH", tok, table_len + len(data), len(val))
        data += val
    payload = table + b"\xff" + data
    return struct.pack(">BBHHBB", 0x04, 0x01, 8 + len(payload), 0, 1, 0) + payload


def blob_kind(blob: bytes) -> dict[str, object]:
    if not blob:
        return {"kind": "none"}
    if blob.startswith(b"NTLMSSP\x00"):
        return {"kind": "ntlmssp"}
    if blob[0] == 0x60:
        if SPNEGO_OID in blob[:24]:
            mechs = [name for name, oid in (("krb5", KRB5_OID), ("ms-krb5", MSKRB5_OID), ("ntlm", NTLM_OID))
                     if oid in blob[:80]]
            return {"kind": "spnego", "mechs_offered": mechs}
        if KRB5_OID in blob[:24]:
            return {"kind": "krb5"}
    return {"kind": "unknown", "first_byte": blob[0]}


def parse_login7(body: bytes) -> dict[str, object]:
    flags2 = body[25]
    ssp_off, ssp_len = struct.unpack_from("<HH", body, 78)
    if ssp_len == 0xFFFF and len(body) >= 94:
        ssp_len = struct.unpack_from("<I", body, 90)[0]
    user_off, user_len = struct.unpack_from("<HH", body, 40)
    srv_off, srv_len = struct.unpack_from("<HH", body, 52)
    tds_version = struct.unpack_from("<I", body, 4)[0]
    out = {
        "tds_version": f"0x{tds_version:08x}",
        "int_security": bool(flags2 & 0x80),
        "user_name": body[user_off:user_off + 2 * user_len].decode("utf-16-le", "replace"),
        "server_name": body[srv_off:srv_off + 2 * srv_len].decode("utf-16-le", "replace"),
        "sspi_length": ssp_len,
    }
    out.update(blob_kind(body[ssp_off:ssp_off + ssp_len]))
    return out


def main() -> int:
    ap = argparse.ArgumentParser()
    ap.add_argument("--port", type=int, required=True)
    ap.add_argument("--count", type=int, default=1, help="LOGIN7 messages to report before exiting")
    ap.add_argument("--timeout", type=float, default=30)
    a = ap.parse_args()
    # Dual-stack on loopback: "localhost" resolves to ::1 first for some drivers (tsql).
    try:
        srv = socket.socket(socket.AF_INET6, socket.SOCK_STREAM)
        srv.setsockopt(socket.IPPROTO_IPV6, socket.IPV6_V6ONLY, 0)
        srv.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        srv.bind(("::", a.port))
    except OSError:
        srv = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
        srv.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        srv.bind(("127.0.0.1", a.port))
    srv.listen(8)
    srv.settimeout(a.timeout)
    print(json.dumps({"listening": a.port}), flush=True)
    seen = 0
    while seen < a.count:
        try:
            conn, _ = srv.accept()
        except socket.timeout:
            print(json.dumps({"error": "timeout waiting for a client"}), flush=True)
            return 1
        conn.settimeout(a.timeout)
        with conn:
            try:
                while True:
                    ptype, body = recv_message(conn)
                    if ptype == 0x12:
                        conn.sendall(prelogin_reply())
                    elif ptype == 0x10:
                        print(json.dumps(parse_login7(body)), flush=True)
                        seen += 1
                        break
                    else:
                        print(json.dumps({"packet_type": ptype}), flush=True)
                        break
            except (EOFError, OSError) as e:
                print(json.dumps({"closed": str(e)}), flush=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())
