#!/usr/bin/env python3
"""Loopback TDS listener that records what real drivers send (fixture capture only).

This is NOT a test double for the interop suite: it exists to make drivers log in
over plaintext TDS and send their first requests, so that every client->server packet
can be written to Fixtures/ as hex.

  serve    run the listener:  capture_server.py serve --port 14330 --out /tmp/cap
  capture  run every driver scenario against a fresh listener and (re)write Fixtures/:
           .venv-interop/bin/python Tests/Interop/tools/capture_server.py capture \
               [--out Fixtures] [--only SUBSTRING ...]
  decode   print the decoded messages of fixture files: capture_server.py decode F.hex

What the listener answers:
  PRELOGIN      VERSION 16.0.1000.0, ENCRYPTION=NOT_SUP (0x02), INSTOPT "", THREADID 0,
                MARS 0, then FEDAUTHREQUIRED=0x01 if the client sent that option.
  LOGIN7        ENVCHANGE database, ENVCHANGE collation, ENVCHANGE packet size "4096",
                LOGINACK (TDS 0x74000004, "Microsoft SQL Server" 16.0), FEATUREEXTACK
                (empty FEDAUTH ack only when feature 0x02 was sent; only when the client
                sent a FeatureExt block), DONE.
  SQL batch     a one-column one-row int result (SELECT ...), else DONE.
  RPC           result set + DONEINPROC(MORE) + RETURNSTATUS [+ RETURNVALUE handle for
                sp_prepexec/sp_prepare] + DONEPROC; sp_datatype_info_100 gets a result
                with its 20 columns; sp_unprepare only DONEPROC.
  TM request    ENVCHANGE begin/commit/rollback as appropriate, DONE.
"""

from __future__ import annotations

import argparse
import datetime as _dt
import json
import os
import socket
import socketserver
import struct
import subprocess
import sys
import tempfile
import textwrap
import threading
import time
from typing import Any

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import tdsdecode  # noqa: E402

FIXTURE_USER = "fixture_user"
FIXTURE_PASSWORD = "Fixture-Pa55!"
FIXTURE_DB = "fixturedb"
FIXTURE_APP = "tdsgate-fixture"

# --------------------------------------------------------------------------------------
# Server-side token builders
# --------------------------------------------------------------------------------------


def us_varchar(s: str) -> bytes:
    b = s.encode("utf-16-le")
    return struct.pack("<H", len(s)) + b


def b_varchar(s: str) -> bytes:
    return bytes([len(s)]) + s.encode("utf-16-le")


def envchange(kind: int, new: bytes, old: bytes) -> bytes:
    body = bytes([kind]) + new + old
    return b"\xe3" + struct.pack("<H", len(body)) + body


def env_str(kind: int, new: str, old: str = "") -> bytes:
    return envchange(kind, b_varchar(new), b_varchar(old))


def env_bytes(kind: int, new: bytes, old: bytes) -> bytes:
    return envchange(kind, bytes([len(new)]) + new, bytes([len(old)]) + old)


COLLATION = bytes.fromhex("0904d00034")  # SQL_Latin1_General_CP1_CI_AS


def loginack() -> bytes:
    body = b"\x01" + struct.pack(">I", 0x74000004) + b_varchar("Microsoft SQL Server") + \
        bytes([16, 0, 0x03, 0xE8])
    return b"\xad" + struct.pack("<H", len(body)) + body


def done(status: int = 0, cmd: int = 0, count: int = 0, token: int = 0xFD) -> bytes:
    return bytes([token]) + struct.pack("<HHQ", status, cmd, count)


def colmetadata_int(name: str = "") -> bytes:
    # one column, UserType 0, Flags 0x0001 (nullable=0? keep 0x0000), INT4 (0x38)
    return b"\x81" + struct.pack("<H", 1) + struct.pack("<IH", 0, 0) + b"\x38" + b_varchar(name)


def row_int(v: int) -> bytes:
    return b"\xd1" + struct.pack("<i", v)


def select_result(v: int = 1) -> bytes:
    return colmetadata_int() + row_int(v)


def returnvalue_int(ordinal: int, name: str, value: int) -> bytes:
    return (b"\xac" + struct.pack("<H", ordinal) + b_varchar(name) + b"\x01" +
            struct.pack("<IH", 0, 0x0001) + b"\x26\x04" + b"\x04" + struct.pack("<i", value))


def datatype_info_result() -> bytes:
    """A plausible sp_datatype_info_100 reply: its 20 columns and one row for 'int'.

    pyodbc calls SQLGetTypeInfo at connect and must get a result set back.
    """
    def nvar(name: str, maxchars: int = 128) -> bytes:
        return struct.pack("<IH", 0, 0x0001) + b"\xe7" + struct.pack("<H", maxchars * 2) + \
            COLLATION + b_varchar(name)

    def intn(name: str, size: int) -> bytes:
        return struct.pack("<IH", 0, 0x0001) + b"\x26" + bytes([size]) + b_varchar(name)

    cols = [
        ("TYPE_NAME", "s"), ("DATA_TYPE", 2), ("PRECISION", 4), ("LITERAL_PREFIX", "s"),
        ("LITERAL_SUFFIX", "s"), ("CREATE_PARAMS", "s"), ("NULLABLE", 2),
        ("CASE_SENSITIVE", 2), ("SEARCHABLE", 2), ("UNSIGNED_ATTRIBUTE", 2), ("MONEY", 2),
        ("AUTO_INCREMENT", 2), ("LOCAL_TYPE_NAME", "s"), ("MINIMUM_SCALE", 2),
        ("MAXIMUM_SCALE", 2), ("SQL_DATA_TYPE", 2), ("SQL_DATETIME_SUB", 2),
        ("NUM_PREC_RADIX", 4), ("INTERVAL_PRECISION", 2), ("USERTYPE", 2),
    ]
    meta = b"\x81" + struct.pack("<H", len(cols))
    for name, kind in cols:
        meta += nvar(name) if kind == "s" else intn(name, kind)
    vals = {"TYPE_NAME": "int", "DATA_TYPE": 4, "PRECISION": 10, "NULLABLE": 1,
            "CASE_SENSITIVE": 0, "SEARCHABLE": 2, "UNSIGNED_ATTRIBUTE": 0, "MONEY": 0,
            "AUTO_INCREMENT": 0, "LOCAL_TYPE_NAME": "int", "SQL_DATA_TYPE": 4,
            "NUM_PREC_RADIX": 10, "USERTYPE": 7}
    row = b"\xd1"
    for name, kind in cols:
        v = vals.get(name)
        if v is None:
            row += b"\xff\xff" if kind == "s" else b"\x00"
        elif kind == "s":
            row += struct.pack("<H", 2 * len(v)) + v.encode("utf-16-le")
        else:
            row += bytes([kind]) + v.to_bytes(kind, "little", signed=True)
    return meta + row


def packetize(payload: bytes, ptype: int = 0x04, size: int = 4096) -> bytes:
    out = b""
    chunk = size - 8
    pieces = [payload[i : i + chunk] for i in range(0, len(payload), chunk)] or [b""]
    for i, piece in enumerate(pieces):
        status = 0x01 if i == len(pieces) - 1 else 0x00
        out += struct.pack(">BBHHBB", ptype, status, len(piece) + 8, 0x0033, (i + 1) & 0xFF, 0)
        out += piece
    return out


def prelogin_reply(client_payload: bytes) -> bytes:
    client_opts = dict(tdsdecode.parse_prelogin_options(client_payload))
    opts: list[tuple[int, bytes]] = [
        (0x00, bytes([16, 0, 0x03, 0xE8, 0, 0])),
        (0x01, b"\x02"),
        (0x02, b"\x00"),
        (0x03, b"\x00\x00\x00\x00"),
        (0x04, b"\x00"),
    ]
    if 0x06 in client_opts:
        opts.append((0x06, b"\x01"))
    table_len = 5 * len(opts) + 1
    table = b""
    data = b""
    for token, value in opts:
        table += struct.pack(">BHH", token, table_len + len(data), len(value))
        data += value
    return table + b"\xff" + data


def login_reply(login: dict[str, Any]) -> bytes:
    db = login.get("database") or "master"
    out = env_str(1, db, "master")
    out += env_bytes(7, COLLATION, b"")
    out += env_str(4, "4096", str(login.get("packet_size") or 4096))
    out += loginack()
    if int(login.get("option_flags3", "0x00"), 16) & 0x10:
        ack = b"\xae"
        if 0x02 in login.get("feature_ids", []):
            ack += b"\x02" + struct.pack("<I", 0)
        ack += b"\xff"
        out += ack
    out += done(0, 0, 0)
    return out


class Session:
    """State of one client connection inside the capture listener."""

    def __init__(self) -> None:
        self.packets: list[bytes] = []
        self.in_tran = False
        self.tran_id = 0
        self.handles = 0
        self.events: list[str] = []

    def descriptor(self) -> bytes:
        return struct.pack("<Q", self.tran_id)

    def answer(self, msg: dict[str, Any]) -> bytes | None:
        t = msg["type"]
        payload = msg["payload"]
        if t == 0x12:
            if payload[:1] == b"\x16":
                self.events.append("client started TLS inside PRELOGIN: cannot capture")
                return None
            return prelogin_reply(payload)
        if t == 0x10:
            login = tdsdecode.decode_login7(payload, msg["packet_count"])
            return login_reply(login)
        if t == 0x01:
            text = tdsdecode.decode_sql_batch(payload)["text"]
            if "select" in text.lower():
                return select_result(1) + done(0x10, 0xC1, 1)
            return done(0, 0, 0)
        if t == 0x03:
            rpc = tdsdecode.decode_rpc(payload)
            name = (rpc.get("proc_name") or rpc.get("proc_id_name") or "").lower()
            value = 1
            for p in rpc.get("params", []):
                if isinstance(p.get("value"), int) and not isinstance(p.get("value"), bool) \
                        and not p["output"] and p["name"] not in ("@handle",):
                    value = p["value"]
            if "sp_datatype_info" in name:
                body = datatype_info_result() + done(0x11, 0xC1, 1, 0xFF)
                body += b"\x79" + struct.pack("<i", 0) + done(0, 0xE0, 0, 0xFE)
                return body
            if name in ("sp_unprepare",):
                return b"\x79" + struct.pack("<i", 0) + done(0, 0xE0, 0, 0xFE)
            body = b""
            if name in ("sp_prepexec", "sp_prepare"):
                self.handles += 1
            if name != "sp_prepare":
                body += select_result(value) + done(0x11, 0xC1, 1, 0xFF)
            body += b"\x79" + struct.pack("<i", 0)
            if name in ("sp_prepexec", "sp_prepare"):
                body += returnvalue_int(0, "@handle", self.handles)
            body += done(0, 0xE0, 0, 0xFE)
            return body
        if t == 0x0E:
            tm = tdsdecode.decode_transaction_manager(payload)
            req = tm["request_type"]
            out = b""
            if req == 5:
                self.tran_id += 1
                out += env_bytes(8, self.descriptor(), b"")
                self.in_tran = True
            elif req in (7, 8):
                kind = 9 if req == 7 else 10
                if self.in_tran:
                    out += env_bytes(kind, b"", self.descriptor())
                self.in_tran = False
                if tm.get("begin_new"):
                    self.tran_id += 1
                    out += env_bytes(8, self.descriptor(), b"")
                    self.in_tran = True
            elif req == 0:
                # TM_GET_DTC_ADDRESS: a one-column varbinary result with no rows
                out += done(0, 0, 0)
                return out
            return out + done(0, 0, 0)
        if t == 0x06:
            return done(0x20, 0, 0)
        return done(0x02, 0, 0)


def _recv_exact(sock: socket.socket, n: int) -> bytes:
    buf = b""
    while len(buf) < n:
        chunk = sock.recv(n - len(buf))
        if not chunk:
            raise ConnectionError("closed")
        buf += chunk
    return buf


class Handler(socketserver.BaseRequestHandler):
    def handle(self) -> None:  # noqa: C901
        server: CaptureServer = self.server  # type: ignore[assignment]
        sess = Session()
        with server.lock:
            server.sessions.append(sess)
        sock: socket.socket = self.request
        sock.settimeout(server.idle_timeout)
        current: dict[str, Any] | None = None
        try:
            while True:
                first = sock.recv(1, socket.MSG_PEEK)
                if not first:
                    break
                if first == b"\x16" and current is None and not sess.packets:
                    sess.events.append("client started with a TLS handshake (TDS 8.0 strict)")
                    break
                hdr = _recv_exact(sock, 8)
                length = struct.unpack(">H", hdr[2:4])[0]
                body = _recv_exact(sock, length - 8)
                pkt = hdr + body
                sess.packets.append(pkt)
                if current is None:
                    current = {"type": hdr[0], "payload": b"", "packet_count": 0,
                               "status": hdr[1]}
                current["payload"] += body
                current["packet_count"] += 1
                if hdr[1] & 0x01:
                    msg, current = current, None
                    reply = sess.answer(msg)
                    if reply is None:
                        break
                    sock.sendall(packetize(reply))
        except (ConnectionError, socket.timeout, OSError) as e:
            sess.events.append(f"connection ended: {e!r}")


class CaptureServer(socketserver.ThreadingTCPServer):
    allow_reuse_address = True
    daemon_threads = True

    def __init__(self, port: int = 0, idle_timeout: float = 15.0):
        super().__init__(("127.0.0.1", port), Handler)
        self.lock = threading.Lock()
        self.sessions: list[Session] = []
        self.idle_timeout = idle_timeout

    @property
    def port(self) -> int:
        return self.server_address[1]


# --------------------------------------------------------------------------------------
# Driver scenarios
# --------------------------------------------------------------------------------------

HERE = os.path.dirname(os.path.abspath(__file__))
ROOT = os.path.abspath(os.path.join(HERE, "..", "..", ".."))


def fake_jwt(approx_len: int = 1536) -> str:
    """A JWT-looking string (header.payload.signature, base64url) of about approx_len."""
    import base64

    def b64(b: bytes) -> str:
        return base64.urlsafe_b64encode(b).rstrip(b"=").decode()

    head = b64(json.dumps({"typ": "JWT", "alg": "RS256", "x5t": "fixture-x5t",
                           "kid": "fixture-kid"}).encode())
    claims = {"aud": "https://database.windows.net/",
              "iss": "https://sts.windows.net/00000000-0000-0000-0000-00000000f1c7/",
              "iat": 1700000000, "nbf": 1700000000, "exp": 1700003600,
              "oid": "11111111-2222-3333-4444-555555555555",
              "tid": "00000000-0000-0000-0000-00000000f1c7",
              "appid": "66666666-7777-8888-9999-000000000000",
              "idtyp": "app", "sub": "11111111-2222-3333-4444-555555555555",
              "xms_mirid": "/subscriptions/00000000-0000-0000-0000-000000000000/"
                           "resourcegroups/fixture-rg/providers/"
                           "Microsoft.Compute/virtualMachines/fixture-vm"}
    payload = b64(json.dumps(claims).encode())
    sig_len = max(16, approx_len - len(head) - len(payload) - 2)
    sig = b64(bytes((i * 37 + 11) & 0xFF for i in range(sig_len * 3 // 4 + 3)))[:sig_len]
    return f"{head}.{payload}.{sig}"


FAKE_TOKEN = fake_jwt(1536)        # ~1.5 KB: about 3 KB in UTF-16LE, one 4096-byte packet
LARGE_TOKEN = fake_jwt(6144)       # ~6 KB (a token with many group claims): multi-packet LOGIN7

PY_PRELUDE = textwrap.dedent("""
    import os, sys, struct, json
    PORT = int(os.environ["CAPTURE_PORT"])
    USER = {user!r}; PASSWORD = {password!r}; DB = {db!r}; APP = {app!r}
    TOKEN = os.environ["CAPTURE_TOKEN"]
    def report(**kw):
        print("CAPTURE-RESULT " + json.dumps(kw, default=str), flush=True)
""").format(user=FIXTURE_USER, password=FIXTURE_PASSWORD, db=FIXTURE_DB, app=FIXTURE_APP)

ODBC_BODY = textwrap.dedent("""
    cs = ("Server=127.0.0.1,%d;Database=%s;%s" % (PORT, DB, EXTRA))
    if not USE_TOKEN:
        cs += "UID=%s;PWD=%s;" % (USER, PASSWORD)
    kw = {}
    if USE_TOKEN:
        t = TOKEN.encode("utf-16-le")
        kw["attrs_before"] = {1256: struct.pack("<I", len(t)) + t}
    conn = connect(cs, **kw)
    cur = conn.cursor()
    cur.execute("SELECT 1")
    r1 = cur.fetchall()
    cur.execute("SELECT ?", 5)
    r2 = cur.fetchall()
    report(r1=r1, r2=r2)
    conn.close()
""")

MSSQL_PYTHON = PY_PRELUDE + textwrap.dedent("""
    import mssql_python
    def connect(cs, **kw):
        return mssql_python.connect(cs, timeout=10, **kw)
""")

PYODBC = PY_PRELUDE + textwrap.dedent("""
    import pyodbc, glob, mssql_python_odbc
    base = os.path.dirname(mssql_python_odbc.__file__)
    DRIVER = glob.glob(base + "/libs/linux/debian_ubuntu/x86_64/lib/libmsodbcsql-18*.so*")[0]
    def connect(cs, **kw):
        return pyodbc.connect("Driver={%s};APP=%s;" % (DRIVER, APP) + cs, timeout=10, **kw)
""")

PYMSSQL = PY_PRELUDE + textwrap.dedent("""
    import pymssql
    conn = pymssql.connect(server="127.0.0.1", port=str(PORT), user=USER, password=PASSWORD,
                           database=DB, appname=APP, login_timeout=10, timeout=10, **KW)
    cur = conn.cursor()
    cur.execute("SELECT 1")
    r1 = cur.fetchall()
    cur.execute("SELECT %s", (5,))
    r2 = cur.fetchall()
    report(r1=r1, r2=r2)
    conn.close()
""")

PYTDS = PY_PRELUDE + textwrap.dedent("""
    import pytds
    kw = dict(KW)
    if kw.pop("use_token", False):
        kw["access_token_callable"] = lambda: TOKEN
    else:
        kw.update(user=USER, password=PASSWORD)
    conn = pytds.connect(dsn="127.0.0.1", port=PORT, database=DB, appname=APP,
                         login_timeout=10, timeout=10, autocommit=True, **kw)
    cur = conn.cursor()
    cur.execute("SELECT 1")
    r1 = cur.fetchall()
    cur.execute("SELECT %s", (5,))
    r2 = cur.fetchall()
    report(r1=r1, r2=r2)
    conn.close()
""")


def odbc_script(base: str, extra: str, use_token: bool) -> str:
    return base + f"EXTRA = {extra!r}\nUSE_TOKEN = {use_token!r}\n" + ODBC_BODY


def pkg_version(python: str, name: str) -> str:
    out = subprocess.run([python, "-c", f"import importlib.metadata as m;print(m.version({name!r}))"],
                         capture_output=True, text=True)
    return out.stdout.strip() or "?"


def scenarios(python: str) -> list[dict[str, Any]]:
    v = {n: pkg_version(python, n) for n in
         ("mssql-python", "mssql-python-odbc", "mssql-python-rs", "pyodbc", "pymssql",
          "python-tds")}
    tsql_ver = subprocess.run(["dpkg-query", "-W", "-f=${Version}", "freetds-bin"],
                              capture_output=True, text=True).stdout.strip() or "?"
    odbc18 = f"ODBC Driver 18 ({v['mssql-python-odbc']})"
    rs = f"mssql-odbc (mssql-python-rs {v['mssql-python-rs']})"
    out: list[dict[str, Any]] = []
    for prov, prov_env, drvname in (("mssql-python", None, odbc18),
                                    ("mssql-python-rs", "mssql-odbc", rs)):
        env = {"MSSQL_PYTHON_NATIVE_PROVIDER": prov_env} if prov_env else {}
        ver = f"mssql-python {v['mssql-python']} / {drvname}"
        out += [
            dict(driver=prov, version=ver, scenario="login-sql", env=env,
                 script=odbc_script(MSSQL_PYTHON, "Encrypt=no;", False),
                 note="UID/PWD login, Encrypt=no; SELECT 1; SELECT ? with 5"),
            dict(driver=prov, version=ver, scenario="readonly-intent", env=env,
                 script=odbc_script(MSSQL_PYTHON, "Encrypt=no;ApplicationIntent=ReadOnly;", False),
                 note="UID/PWD login, Encrypt=no, ApplicationIntent=ReadOnly"),
            dict(driver=prov, version=ver, scenario="access-token", env=env,
                 script=odbc_script(MSSQL_PYTHON, "Encrypt=no;", True),
                 note="SQL_COPT_SS_ACCESS_TOKEN (1256) with a fake JWT, Encrypt=no"),
            dict(driver=prov, version=ver, scenario="access-token-large", env=env,
                 large_token=True, script=odbc_script(MSSQL_PYTHON, "Encrypt=no;", True),
                 note="SQL_COPT_SS_ACCESS_TOKEN with a ~6 KB fake JWT: multi-packet LOGIN7"),
            dict(driver=prov, version=ver, scenario="encrypt-optional", env=env,
                 script=odbc_script(MSSQL_PYTHON, "Encrypt=optional;", False),
                 note="UID/PWD login, Encrypt=optional"),
        ]
    pv = f"pyodbc {v['pyodbc']} / {odbc18}"
    out += [
        dict(driver="pyodbc", version=pv, scenario="login-sql",
             script=odbc_script(PYODBC, "Encrypt=no;", False),
             note="Driver=<path to libmsodbcsql-18>, UID/PWD, Encrypt=no"),
        dict(driver="pyodbc", version=pv, scenario="readonly-intent",
             script=odbc_script(PYODBC, "Encrypt=no;ApplicationIntent=ReadOnly;", False),
             note="ApplicationIntent=ReadOnly, Encrypt=no"),
        dict(driver="pyodbc", version=pv, scenario="access-token",
             script=odbc_script(PYODBC, "Encrypt=no;", True),
             note="SQL_COPT_SS_ACCESS_TOKEN (1256), Encrypt=no"),
        dict(driver="pyodbc", version=pv, scenario="access-token-large", large_token=True,
             script=odbc_script(PYODBC, "Encrypt=no;", True),
             note="SQL_COPT_SS_ACCESS_TOKEN with a ~6 KB fake JWT: multi-packet LOGIN7"),
    ]
    out += [
        dict(driver="freetds-tsql", version=f"tsql (FreeTDS {tsql_ver})", scenario="login-sql",
             tsql=True, readonly=False,
             note="tsql -S fixture with freetds.conf encryption = off; SELECT 1"),
        dict(driver="freetds-tsql", version=f"tsql (FreeTDS {tsql_ver})",
             scenario="readonly-intent", tsql=True, readonly=True,
             note="freetds.conf encryption = off, read-only intent = yes; SELECT 1"),
    ]
    pm = f"pymssql {v['pymssql']} (bundled FreeTDS)"
    out += [
        dict(driver="pymssql", version=pm, scenario="login-sql",
             script=PYMSSQL.replace("**KW)", "**{})"), note="default encryption; SELECT 1; SELECT %s"),
        dict(driver="pymssql", version=pm, scenario="readonly-intent",
             script=PYMSSQL.replace("**KW)", "**{'read_only': True})"), note="read_only=True"),
    ]
    pt = f"python-tds {v['python-tds']}"
    out += [
        dict(driver="pytds", version=pt, scenario="login-sql",
             script=PYTDS.replace("dict(KW)", "{}"), note="user/password, no TLS"),
        dict(driver="pytds", version=pt, scenario="readonly-intent",
             script=PYTDS.replace("dict(KW)", "{'readonly': True}"), note="readonly=True"),
        dict(driver="pytds", version=pt, scenario="access-token",
             script=PYTDS.replace("dict(KW)", "{'use_token': True}"),
             note="access_token_callable returning a fake JWT"),
        dict(driver="pytds", version=pt, scenario="access-token-large", large_token=True,
             script=PYTDS.replace("dict(KW)", "{'use_token': True}"),
             note="access_token_callable returning a ~6 KB fake JWT: multi-packet LOGIN7"),
    ]
    return out


def run_client(sc: dict[str, Any], python: str, port: int, workdir: str) -> tuple[int, str]:
    env = dict(os.environ)
    env["CAPTURE_PORT"] = str(port)
    env["CAPTURE_TOKEN"] = LARGE_TOKEN if sc.get("large_token") else FAKE_TOKEN
    env.update(sc.get("env", {}))
    if sc.get("tsql"):
        conf = os.path.join(workdir, "freetds.conf")
        with open(conf, "w") as f:
            f.write("[global]\n\ttds version = auto\n\n[fixture]\n\thost = 127.0.0.1\n"
                    f"\tport = {port}\n\tencryption = off\n\tdatabase = {FIXTURE_DB}\n")
            if sc.get("readonly"):
                f.write("\tread-only intent = yes\n")
        env["FREETDSCONF"] = conf
        cmd = ["tsql", "-S", "fixture", "-U", FIXTURE_USER, "-P", FIXTURE_PASSWORD,
               "-D", FIXTURE_DB, "-o", "q"]
        stdin = "SELECT 1\ngo\nexit\n"
    else:
        script = os.path.join(workdir, "client.py")
        with open(script, "w") as f:
            f.write(sc["script"])
        cmd = [python, script]
        stdin = ""
    try:
        p = subprocess.run(cmd, input=stdin, capture_output=True, text=True, env=env,
                           timeout=60, cwd=workdir)
        return p.returncode, (p.stdout + p.stderr)
    except subprocess.TimeoutExpired as e:
        return -1, f"timeout: {e}"


def write_fixture(path: str, sc: dict[str, Any], packets: list[bytes], date: str) -> None:
    with open(path, "w") as f:
        f.write(f"# driver: {sc['driver']} ({sc['version']})\n")
        f.write(f"# scenario: {sc['scenario']}: {sc['note']}\n")
        f.write(f"# captured: {date} by Tests/Interop/tools/capture_server.py (plaintext, "
                "server answered ENCRYPTION=NOT_SUP)\n")
        f.write(f"# credentials are made-up test values: user {FIXTURE_USER!r} password "
                f"{FIXTURE_PASSWORD!r} database {FIXTURE_DB!r}; tokens are fake JWTs\n")
        f.write("# one client->server TDS packet per line, header included, in order sent\n")
        for p in packets:
            f.write(p.hex() + "\n")


def index_messages(packets: list[bytes]) -> list[dict[str, Any]]:
    return tdsdecode.decode_packets(packets)


def _summary(msg: dict[str, Any]) -> str:
    f = msg["fields"]
    t = msg["type"]
    if t == "prelogin":
        extra = " FEDAUTHREQUIRED" if "fedauthrequired" in f else ""
        return f"PRELOGIN enc={f.get('encryption_name')}{extra}"
    if t == "login7":
        bits = [f"LOGIN7 {f['tds_version']}"]
        if f["read_only_intent"]:
            bits.append("ReadOnly")
        if f["has_fedauth_token"]:
            bits.append("token")
        bits.append("feat=" + ",".join(f"{i:#x}" for i in f["feature_ids"]) if f["feature_ids"]
                    else "no FeatureExt")
        if f["packet_count"] > 1:
            bits.append(f"{f['packet_count']} packets")
        return " ".join(bits)
    if t == "sql_batch":
        text = f["text"].strip()
        return "batch " + (text if len(text) <= 24 else text[:21] + "...")
    if t == "rpc":
        return "rpc " + (f.get("proc_name") or f.get("proc_id_name", "?"))
    if t == "transaction_manager":
        return "tm " + f["request"].replace("TM_", "").replace("_XACT", "").lower()
    return t


def write_readme(path: str, index: list[dict[str, Any]]) -> None:
    lines = [
        "# Captured client->server TDS packets",
        "",
        "Real drivers on Debian 12 logging in to `Tests/Interop/tools/capture_server.py` on",
        "127.0.0.1 over plaintext TDS (the listener answers PRELOGIN with ENCRYPTION=NOT_SUP,",
        "so TLS modes are not here). Regenerate with:",
        "",
        "    .venv-interop/bin/python Tests/Interop/tools/capture_server.py capture",
        "",
        "Format of `*.hex`: lines starting with `#` are comments (driver and version, scenario,",
        "date); every other line is one whole TDS packet (8-byte header included) in",
        "lowercase hex, in the order the client sent it. `index.json` lists, per file, the",
        "reassembled messages (`index` counts messages, not packets) with fields decoded by",
        "`Tests/Interop/tools/tdsdecode.py`.",
        "",
        "Credentials are made up: user `fixture_user`, password `Fixture-Pa55!`, database",
        "`fixturedb`, app name `tdsgate-fixture` where the driver lets us set it. Access",
        "tokens are fake unsigned JWT-looking strings (~1.5 KB; ~6 KB for `-large`).",
        "",
        "| file | driver | messages |",
        "|---|---|---|",
    ]
    for e in index:
        msgs = "; ".join(_summary(m) for m in e["messages"])
        lines.append(f"| `{e['file']}` | {e['driver_version']} | {msgs} |")
    lines.append("")
    with open(path, "w") as f:
        f.write("\n".join(lines))


def cmd_capture(args: argparse.Namespace) -> int:
    python = args.python
    out_dir = os.path.abspath(args.out)
    os.makedirs(out_dir, exist_ok=True)
    date = _dt.date.today().isoformat()
    index_path = os.path.join(out_dir, "index.json")
    index: list[dict[str, Any]] = []
    if os.path.exists(index_path) and args.only:
        with open(index_path) as f:
            index = json.load(f)
    failures = 0
    for sc in scenarios(python):
        name = f"{sc['driver']}-{sc['scenario']}"
        if args.only and not any(o in name for o in args.only):
            continue
        srv = CaptureServer(0)
        th = threading.Thread(target=srv.serve_forever, daemon=True)
        th.start()
        with tempfile.TemporaryDirectory() as wd:
            rc, output = run_client(sc, python, srv.port, wd)
        time.sleep(0.3)
        srv.shutdown()
        srv.server_close()
        sessions = [s for s in srv.sessions if s.packets]
        status = "ok" if rc == 0 else f"client exit {rc}"
        print(f"== {name}: {status}, {len(sessions)} connection(s), "
              f"{sum(len(s.packets) for s in sessions)} packets")
        if rc != 0 or args.verbose:
            print(textwrap.indent(output.strip()[-3000:], "   | "))
        for s in srv.sessions:
            for e in s.events:
                print("   event:", e)
        if not sessions:
            failures += 1
            continue
        if len(sessions) > 1:
            print(f"   note: {len(sessions)} connections; keeping the first")
        packets = sessions[0].packets
        fname = f"{name}.hex"
        write_fixture(os.path.join(out_dir, fname), sc, packets, date)
        entry = {"file": fname, "driver": sc["driver"], "driver_version": sc["version"],
                 "scenario": sc["scenario"], "description": sc["note"],
                 "client_completed": rc == 0,
                 "credentials": {"user": FIXTURE_USER, "password": FIXTURE_PASSWORD,
                                 "database": FIXTURE_DB, "note": "made-up test values"},
                 "messages": index_messages(packets)}
        index = [e for e in index if e["file"] != fname] + [entry]
        if rc != 0:
            failures += 1
    index.sort(key=lambda e: e["file"])
    with open(index_path, "w") as f:
        json.dump(index, f, indent=1)
        f.write("\n")
    write_readme(os.path.join(out_dir, "README.md"), index)
    print(f"wrote {len(index)} fixture entries to {index_path}")
    return 1 if failures else 0


def cmd_serve(args: argparse.Namespace) -> int:
    srv = CaptureServer(args.port)
    print(f"listening on 127.0.0.1:{srv.port}", flush=True)
    os.makedirs(args.out, exist_ok=True)
    seen = 0
    th = threading.Thread(target=srv.serve_forever, daemon=True)
    th.start()
    try:
        while True:
            time.sleep(1)
            with srv.lock:
                sessions = list(srv.sessions)
            for i, s in enumerate(sessions):
                with open(os.path.join(args.out, f"conn-{i:03d}.hex"), "w") as f:
                    for p in s.packets:
                        f.write(p.hex() + "\n")
            if len(sessions) != seen:
                seen = len(sessions)
    except KeyboardInterrupt:
        pass
    srv.shutdown()
    return 0


def cmd_decode(args: argparse.Namespace) -> int:
    for path in args.files:
        comments, packets = tdsdecode.read_fixture(path)
        print(f"== {path}")
        for c in comments:
            print("  #", c)
        for m in tdsdecode.decode_packets(packets):
            print(json.dumps(m, default=str))
    return 0


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    sub = ap.add_subparsers(dest="cmd", required=True)
    s = sub.add_parser("serve")
    s.add_argument("--port", type=int, default=0)
    s.add_argument("--out", default="capture-out")
    c = sub.add_parser("capture")
    c.add_argument("--out", default=os.path.join(ROOT, "Fixtures"))
    c.add_argument("--python", default=sys.executable)
    c.add_argument("--only", nargs="*")
    c.add_argument("-v", "--verbose", action="store_true")
    d = sub.add_parser("decode")
    d.add_argument("files", nargs="+")
    args = ap.parse_args()
    return {"serve": cmd_serve, "capture": cmd_capture, "decode": cmd_decode}[args.cmd](args)


if __name__ == "__main__":
    sys.exit(main())
