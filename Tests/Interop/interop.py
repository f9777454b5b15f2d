"""Helpers for the interop suite: run real drivers in child processes, pick emulator
nodes, fetch IMDS tokens, write freetds.conf files, check results.

Every driver call runs in its own Python process (clients/*.py) with a hard timeout, so
a driver that hangs or crashes (pyodbc has been seen to SIGSEGV) fails one test with
its output instead of taking pytest down.
"""

from __future__ import annotations

import glob
import json
import os
import re
import socket
import ssl
import subprocess
import sys
import urllib.parse
import urllib.request
import uuid
from pathlib import Path
from typing import Any

HERE = Path(__file__).resolve().parent
ROOT = HERE.parent.parent
CLIENTS = HERE / "clients"
PYTHON = sys.executable

LOGIN_TIMEOUT = 10
QUERY_TIMEOUT = 10
CLIENT_TIMEOUT = 90  # whole child process: login + queries (+ a redirect hop)

# SQL texts the emulator answers like Azure SQL does
Q_ONE = "SELECT 1"
Q_SERVER = "SELECT @@SERVERNAME"
Q_SUSER = "SELECT SUSER_SNAME()"
Q_DB = "SELECT DB_NAME()"
Q_UPDATEABILITY = "SELECT DATABASEPROPERTYEX(DB_NAME(), 'Updateability')"
IDENTITY_QUERIES = [Q_ONE, Q_SERVER, Q_SUSER, Q_DB, Q_UPDATEABILITY]

ERR_LOGIN_FAILED = 18456
ERR_READ_ONLY_DB = 3906


class ClientFailure(AssertionError):
    pass


# --------------------------------------------------------------------------------------
# Driver locations
# --------------------------------------------------------------------------------------

def _site_packages_pkg(name: str) -> Path:
    import importlib.util

    spec = importlib.util.find_spec(name)
    if spec is None or not spec.submodule_search_locations:
        raise ClientFailure(f"python package {name} is not installed in {PYTHON}")
    return Path(list(spec.submodule_search_locations)[0])


def odbc_driver_path(provider: str) -> str:
    """Path of the ODBC driver library: 'msodbcsql18' (Microsoft ODBC Driver 18 from the
    mssql-python-odbc wheel) or 'mssql-odbc' (the Rust-based driver from mssql-python-rs)."""
    if provider == "msodbcsql18":
        base = _site_packages_pkg("mssql_python_odbc")
        hits = sorted(glob.glob(str(base / "libs/linux/debian_ubuntu/x86_64/lib/libmsodbcsql-18*.so*")))
    elif provider == "mssql-odbc":
        base = _site_packages_pkg("mssql_py_core")
        hits = sorted(glob.glob(str(base / "libs/linux/*/x86_64/lib/mssqlodbc.so")))
    else:
        raise ValueError(provider)
    if not hits:
        raise ClientFailure(f"no ODBC driver library for {provider} under {base}")
    return hits[0]


# --------------------------------------------------------------------------------------
# Deployment description (the demo's ports file)
# --------------------------------------------------------------------------------------

class Deployment:
    def __init__(self, data: dict[str, Any], workdir: Path):
        self.data = data
        self.workdir = workdir
        self.ca_file: str = data["ca_file"]
        self.nodes: list[dict[str, Any]] = data["nodes"]
        self.sql_logins: list[dict[str, Any]] = data.get("sql_logins", [])
        self.identities: list[dict[str, Any]] = data.get("identities", [])
        self.imds_url: str = data.get("imds_url", "")

    def describe(self) -> str:
        return json.dumps([{k: n.get(k) for k in ("name", "role", "port", "encryption",
                                                   "strict", "server")} for n in self.nodes])

    def node(self, role: str, encryption: str | None = None, strict: bool | None = None) -> dict:
        """First node with that role (and encryption mode / strict flag when given)."""
        for n in self.nodes:
            if n.get("role") != role:
                continue
            if encryption is not None and n.get("encryption") != encryption:
                continue
            if strict is not None and bool(n.get("strict")) != strict:
                continue
            return n
        raise ClientFailure(f"the deployment has no node with role={role!r} "
                            f"encryption={encryption!r} strict={strict!r}: {self.describe()}")

    def node_any_role(self, encryption: str, prefer: tuple[str, ...] = ("primary", "gateway",
                                                                         "secondary")) -> dict:
        """A node with that encryption mode, preferring the given roles in order."""
        for role in prefer:
            for n in self.nodes:
                if n.get("role") == role and n.get("encryption") == encryption:
                    return n
        for n in self.nodes:
            if n.get("encryption") == encryption:
                return n
        raise ClientFailure(f"the deployment has no node with encryption={encryption!r}: "
                            f"{self.describe()}")

    def strict_node(self) -> dict:
        """A node that accepts TDS 8.0 (strict) connections."""
        for role in ("primary", "gateway", "secondary"):
            for n in self.nodes:
                if n.get("role") == role and n.get("strict"):
                    return n
        raise ClientFailure(f"the deployment has no strict (TDS 8.0) node: {self.describe()}")

    def expect(self, node: dict, read_only: bool = False) -> tuple[set[str], str]:
        """(@@SERVERNAME values, Updateability) a session through `node` must see.

        @@SERVERNAME is the logical server's name on every replica (as in Azure); a
        gateway redirects to a worker: the primary, or a readable secondary for read
        intent, which Updateability tells apart."""
        role = node.get("role")
        if role == "gateway":
            role = "secondary" if read_only else "primary"
        return {node["server"]}, ("READ_ONLY" if role == "secondary" else "READ_WRITE")

    def servers(self, role: str) -> set[str]:
        return {n["server"] for n in self.nodes if n.get("role") == role and n.get("server")}

    def login(self) -> dict[str, Any]:
        if not self.sql_logins:
            raise ClientFailure("the deployment lists no sql_logins")
        return self.sql_logins[0]

    def identity(self, kind: str) -> dict[str, Any]:
        for i in self.identities:
            if i.get("kind") == kind:
                return i
        raise ClientFailure(f"the deployment lists no identity of kind {kind!r}: "
                            f"{self.identities}")


def tls_host(node: dict) -> str:
    """Name to dial when the certificate must match (the emulator's cert is for localhost)."""
    return node.get("tls_host") or "localhost"


# --------------------------------------------------------------------------------------
# Tokens
# --------------------------------------------------------------------------------------

def fetch_imds_token(imds_url: str, client_id: str | None = None,
                     resource: str = "https://database.windows.net/") -> dict[str, Any]:
    q = {"api-version": "2018-02-01", "resource": resource}
    if client_id:
        q["client_id"] = client_id
    url = imds_url + ("&" if "?" in imds_url else "?") + urllib.parse.urlencode(q)
    req = urllib.request.Request(url, headers={"Metadata": "true"})
    opener = urllib.request.build_opener(urllib.request.ProxyHandler({}))
    with opener.open(req, timeout=10) as resp:
        body = json.loads(resp.read().decode())
    if not body.get("access_token"):
        raise ClientFailure(f"IMDS answered without access_token: {body}")
    return body


MANAGED_IDENTITY_KINDS = ("system_assigned", "user_assigned")


def identity_token_cases(dep: Deployment) -> list[tuple[dict, str | None]]:
    """(identity, client_id to ask IMDS with) for every managed identity: the
    system-assigned one without a selector, user-assigned ones by client_id."""
    cases = []
    for ident in dep.identities:
        if ident.get("kind") == "system_assigned":
            cases.append((ident, None))
        elif ident.get("kind") == "user_assigned":
            cases.append((ident, ident.get("client_id")))
    if not cases:
        raise ClientFailure(f"the deployment lists no managed identity: {dep.identities}")
    return cases


# --------------------------------------------------------------------------------------
# Certificates
# --------------------------------------------------------------------------------------

def strict_leaf_cert_pem(dep: Deployment, node: dict, dest: Path) -> str:
    """The certificate a TDS 8.0 (strict) node presents, as PEM (for ODBC's
    ServerCertificate=): fetched by a direct TLS handshake with ALPN tds/8.0, and
    checked against the deployment's server_certificate_file when it lists one."""
    ctx = ssl.SSLContext(ssl.PROTOCOL_TLS_CLIENT)
    ctx.check_hostname = False
    ctx.verify_mode = ssl.CERT_NONE
    ctx.set_alpn_protocols(["tds/8.0"])
    with socket.create_connection((node["host"], node["port"]), timeout=10) as raw:
        with ctx.wrap_socket(raw, server_hostname=tls_host(node)) as s:
            der = s.getpeercert(binary_form=True)
    listed = dep.data.get("server_certificate_file")
    if listed:
        first_pem = Path(listed).read_text().split("-----END CERTIFICATE-----")[0] + \
            "-----END CERTIFICATE-----\n"
        if ssl.PEM_cert_to_DER_cert(first_pem) != der:
            raise ClientFailure(f"{node['name']} presents a certificate other than "
                                f"server_certificate_file {listed}")
    pem = ssl.DER_cert_to_PEM_cert(der)
    dest.write_text(pem)
    return str(dest)


# --------------------------------------------------------------------------------------
# Running clients
# --------------------------------------------------------------------------------------

def client_env(dep: Deployment | None, extra: dict[str, str] | None = None,
               trust_ca: bool = True) -> dict[str, str]:
    env = dict(os.environ)
    for k in ("MSSQL_PYTHON_NATIVE_PROVIDER", "FREETDSCONF", "FREETDS", "ODBCSYSINI",
              "ODBCINI", "SSL_CERT_FILE", "SSL_CERT_DIR"):
        env.pop(k, None)
    if dep is not None and trust_ca:
        env["SSL_CERT_FILE"] = dep.ca_file
    env.update(extra or {})
    return env


def run_client(script: str, spec: dict[str, Any], env: dict[str, str],
               timeout: float = CLIENT_TIMEOUT) -> dict[str, Any]:
    spec = dict(spec)
    spec.setdefault("login_timeout", LOGIN_TIMEOUT)
    spec.setdefault("query_timeout", QUERY_TIMEOUT)
    cmd = [PYTHON, str(CLIENTS / script), json.dumps(spec)]
    try:
        p = subprocess.run(cmd, capture_output=True, text=True, env=env, timeout=timeout,
                           stdin=subprocess.DEVNULL)
    except subprocess.TimeoutExpired as e:
        raise ClientFailure(f"{script} did not finish within {timeout}s (driver hang?)\n"
                            f"spec={_redact(spec)}\nstdout={_tail(e.stdout)}\n"
                            f"stderr={_tail(e.stderr)}") from None
    for line in reversed(p.stdout.splitlines()):
        if line.startswith("INTEROP-RESULT "):
            res = json.loads(line[len("INTEROP-RESULT "):])
            res["_stderr"] = _tail(p.stderr)
            res["_spec"] = _redact(spec)
            return res
    raise ClientFailure(f"{script} exited {p.returncode} without a result "
                        f"(signal {-p.returncode if p.returncode < 0 else None})\n"
                        f"spec={_redact(spec)}\nstdout={_tail(p.stdout)}\nstderr={_tail(p.stderr)}")


def _tail(s: Any, n: int = 3000) -> str:
    if s is None:
        return ""
    if isinstance(s, bytes):
        s = s.decode("utf-8", "replace")
    return s[-n:]


def _redact(spec: dict[str, Any]) -> dict[str, Any]:
    out = dict(spec)
    if out.get("token"):
        out["token"] = f"<{len(out['token'])} chars>"
    return out


def describe(res: dict[str, Any]) -> str:
    r = {k: v for k, v in res.items() if k != "_stderr"}
    return json.dumps(r, indent=1)[:6000] + ("\nstderr: " + res["_stderr"] if res.get("_stderr") else "")


def q(sql: str, params: list | None = None) -> dict[str, Any]:
    return {"sql": sql, "params": params}


# --------------------------------------------------------------------------------------
# Assertions
# --------------------------------------------------------------------------------------

def assert_connected(res: dict[str, Any]) -> None:
    if not res.get("connected"):
        raise AssertionError("connect failed: " + json.dumps(res.get("connect_error")) +
                             "\n" + describe(res))


def scalar(res: dict[str, Any], i: int) -> Any:
    assert_connected(res)
    results = res["results"]
    if i >= len(results):
        raise AssertionError(f"no result #{i}\n" + describe(res))
    r = results[i]
    if "error" in r:
        raise AssertionError(f"query #{i} ({res['_spec']['queries'][i]['sql']!r}) failed: "
                             f"{r['error']}\n" + describe(res))
    rows = r.get("rows")
    if not rows or not rows[0]:
        raise AssertionError(f"query #{i} returned no rows: {r}\n" + describe(res))
    return rows[0][0]


def _norm(v: Any) -> Any:
    return v.strip() if isinstance(v, str) else v


def check_identity(res: dict[str, Any], user: str, servers: set[str],
                   updateability: str | None, database: str | None) -> None:
    """Check the results of IDENTITY_QUERIES (SELECT 1, @@SERVERNAME, SUSER_SNAME(),
    DB_NAME(), Updateability) for a session of `user`."""
    assert scalar(res, 0) == 1, describe(res)
    server = _norm(scalar(res, 1))
    assert server in servers, f"@@SERVERNAME {server!r} not in {sorted(servers)}\n" + describe(res)
    got_user = _norm(scalar(res, 2))
    assert got_user == user, f"SUSER_SNAME() {got_user!r} != {user!r}\n" + describe(res)
    if database:
        got_db = _norm(scalar(res, 3))
        assert got_db == database, f"DB_NAME() {got_db!r} != {database!r}\n" + describe(res)
    if updateability:
        got = _norm(scalar(res, 4))
        assert got == updateability, f"Updateability {got!r} != {updateability!r}\n" + describe(res)


def assert_error(err: dict[str, Any] | None, number: int, text: str | None = None,
                 res: dict[str, Any] | None = None, number_optional: bool = False) -> None:
    """The error carries SQL Server error `number` (and, if given, `text`).

    number_optional: for drivers that do not surface the native error number
    (mssql-python reports SQLSTATE text + message only); then `text` must match."""
    ctx = describe(res) if res else ""
    assert err is not None, f"expected error {number}, got success\n{ctx}"
    if text is not None:
        assert re.search(text, err["message"], re.I), \
            f"expected /{text}/ in error message: {err}\n{ctx}"
    if not number_optional:
        assert number in err["numbers"], f"expected error number {number}: {err}\n{ctx}"


def unique(prefix: str) -> str:
    return f"{prefix}_{uuid.uuid4().hex[:10]}"


# --------------------------------------------------------------------------------------
# FreeTDS
# --------------------------------------------------------------------------------------

def freetds_conf(path: Path, sections: dict[str, dict[str, str]],
                 global_opts: dict[str, str] | None = None) -> str:
    lines = ["[global]", "\ttds version = auto", f"\tconnect timeout = {LOGIN_TIMEOUT}",
             f"\ttimeout = {QUERY_TIMEOUT}"]
    for k, v in (global_opts or {}).items():
        lines.append(f"\t{k} = {v}")
    for name, opts in sections.items():
        lines.append(f"[{name}]")
        for k, v in opts.items():
            lines.append(f"\t{k} = {v}")
    path.write_text("\n".join(lines) + "\n")
    return str(path)


_TSQL_MSG = re.compile(r"Msg (\d+) \(severity (\d+), state (\d+)\)[^\n]*\n\s*\"?([^\n]*)")


def run_tsql(conf: str, alias: str, user: str, password: str, queries: list[str],
             database: str | None = None, timeout: float = 60) -> dict[str, Any]:
    """Run queries with FreeTDS tsql, one batch each; every query must return one value.

    Returns {"rc", "values": [str per output line], "errors": [{"number", "message"}],
    "stdout", "stderr"}."""
    env = client_env(None, {"FREETDSCONF": conf})
    script = "".join(f"{s}\ngo\n" for s in queries) + "exit\n"
    cmd = ["tsql", "-S", alias, "-U", user, "-P", password, "-o", "fhq"]
    if database:
        cmd += ["-D", database]
    try:
        p = subprocess.run(cmd, input=script, capture_output=True, text=True, env=env,
                           timeout=timeout)
    except subprocess.TimeoutExpired as e:
        raise ClientFailure(f"tsql hung for {timeout}s: {cmd}\nstdout={_tail(e.stdout)}\n"
                            f"stderr={_tail(e.stderr)}\nconf={Path(conf).read_text()}") from None
    both = p.stdout + "\n" + p.stderr
    errors = [{"number": int(m.group(1)), "severity": int(m.group(2)), "message": m.group(4)}
              for m in _TSQL_MSG.finditer(both)]
    values = [line.strip() for line in p.stdout.splitlines() if line.strip()]
    return {"rc": p.returncode, "values": values, "errors": errors, "stdout": p.stdout,
            "stderr": p.stderr, "conf": Path(conf).read_text(), "cmd": cmd}


def describe_tsql(r: dict[str, Any]) -> str:
    return (f"cmd={r['cmd']} rc={r['rc']}\nconf:\n{r['conf']}\nstdout:\n{_tail(r['stdout'])}\n"
            f"stderr:\n{_tail(r['stderr'])}")
