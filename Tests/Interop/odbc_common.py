"""Checks shared by test_mssql_python.py and test_pyodbc.py (both drive an ODBC driver:
Microsoft ODBC Driver 18 or the Rust-based mssql-odbc). `lib` is "mssql-python" or
"pyodbc"; `provider` is "msodbcsql18" or "mssql-odbc".

mssql-python does not surface the native SQL Server error number (only SQLSTATE text and
the message), so for it error checks match the message text; pyodbc puts "(18456)" in
the message and those checks are by number.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import interop
from interop import q


def _env(dep: interop.Deployment, lib: str, provider: str, trust_ca: bool = True) -> dict:
    extra = {}
    if lib == "mssql-python":
        extra["MSSQL_PYTHON_NATIVE_PROVIDER"] = provider
    return interop.client_env(dep, extra, trust_ca=trust_ca)


def conn_str(node: dict, host: str, encrypt: str, user: str | None, password: str | None,
             database: str | None, extra: str = "") -> str:
    cs = f"Server={host},{node['port']};Encrypt={encrypt};"
    if database:
        cs += f"Database={database};"
    if user is not None:
        cs += f"UID={user};PWD={{{password}}};"
    return cs + extra


def run(dep: interop.Deployment, lib: str, provider: str, node: dict, *, encrypt: str,
        host: str | None = None, extra: str = "", login: dict | None = None,
        password: str | None = None, token: str | None = None,
        queries: list[dict] | None = None, autocommit: bool = True, commit: bool = False,
        trust_ca: bool = True) -> dict[str, Any]:
    login = login or dep.login()
    user = None if token else login["user"]
    pwd = None if token else (password if password is not None else login["password"])
    spec = {
        "lib": lib,
        "conn_str": conn_str(node, host or node["host"], encrypt, user, pwd,
                             login.get("database"), extra),
        "queries": queries if queries is not None else [q(s) for s in interop.IDENTITY_QUERIES],
        "autocommit": autocommit,
        "commit": commit,
    }
    if lib == "pyodbc":
        spec["driver_path"] = interop.odbc_driver_path(provider)
    if token:
        spec["token"] = token
    return interop.run_client("odbc_client.py", spec, _env(dep, lib, provider, trust_ca))


def expect_session(dep: interop.Deployment, res: dict, node: dict, user: str,
                   read_only: bool = False) -> None:
    servers, updateability = dep.expect(node, read_only)
    interop.check_identity(res, user, servers, updateability, dep.login().get("database"))


def check_plaintext(dep, lib, provider):
    """Encrypt=no against a node that does not support encryption: all plaintext."""
    node = dep.node_any_role("not_supported")
    res = run(dep, lib, provider, node, encrypt="no")
    expect_session(dep, res, node, dep.login()["user"])


def check_login_only(dep, lib, provider):
    """Encrypt=no against a node with encryption off: TLS for the LOGIN7 packet only."""
    node = dep.node_any_role("off")
    res = run(dep, lib, provider, node, encrypt="no")
    expect_session(dep, res, node, dep.login()["user"])


def check_encrypt_yes(dep, lib, provider):
    """Encrypt=yes, certificate validated against the emulator's CA (SSL_CERT_FILE),
    name checked against Server=localhost."""
    node = dep.node("primary", "required")
    res = run(dep, lib, provider, node, encrypt="yes", host=interop.tls_host(node),
              extra="TrustServerCertificate=no;")
    expect_session(dep, res, node, dep.login()["user"])


def check_encrypt_yes_untrusted(dep, lib, provider):
    """Encrypt=yes without the CA in the trust store must fail (validation is real)."""
    node = dep.node("primary", "required")
    res = run(dep, lib, provider, node, encrypt="yes", host=interop.tls_host(node),
              extra="TrustServerCertificate=no;", trust_ca=False)
    assert not res["connected"], "connected although the CA is not trusted\n" + interop.describe(res)
    interop.assert_error(res["connect_error"], 0, r"certificate verify failed", res,
                         number_optional=True)


def check_strict_ca(dep, lib, provider):
    """Encrypt=strict (TDS 8.0: TLS first, ALPN tds/8.0) with the CA trusted."""
    node = dep.strict_node()
    res = run(dep, lib, provider, node, encrypt="strict", host=interop.tls_host(node))
    expect_session(dep, res, node, dep.login()["user"])


def check_strict_server_certificate(dep, lib, provider, tmp_path: Path):
    """Encrypt=strict pinned with ServerCertificate=<the node's own certificate>, CA not
    in the trust store."""
    node = dep.strict_node()
    pem = interop.strict_leaf_cert_pem(dep, node, tmp_path / "server-cert.pem")
    res = run(dep, lib, provider, node, encrypt="strict", host=interop.tls_host(node),
              extra=f"ServerCertificate={pem};", trust_ca=False)
    expect_session(dep, res, node, dep.login()["user"])


def check_access_token(dep, lib, provider, imds_token, cases):
    """SQL_COPT_SS_ACCESS_TOKEN with a token from the emulator's IMDS; SUSER_SNAME() is
    the token's identity."""
    node = dep.node("primary", "required")
    for ident, client_id in cases:
        token = imds_token(client_id)
        res = run(dep, lib, provider, node, encrypt="yes", host=interop.tls_host(node),
                  token=token)
        expect_session(dep, res, node, ident["suser_sname"])


def check_read_only_intent(dep, lib, provider, numbers: bool):
    """ApplicationIntent=ReadOnly through the gateway lands on a readable secondary;
    a write there fails with 3906."""
    node = dep.node("gateway", "required")
    table = interop.unique("ro_probe")
    queries = [q(s) for s in interop.IDENTITY_QUERIES] + [q(f"CREATE TABLE {table} (k INT)")]
    res = run(dep, lib, provider, node, encrypt="yes", host=interop.tls_host(node),
              extra="ApplicationIntent=ReadOnly;", queries=queries)
    expect_session(dep, res, node, dep.login()["user"], read_only=True)
    write = res["results"][5]
    interop.assert_error(write.get("error"), interop.ERR_READ_ONLY_DB, r"read-only|read only",
                         res, number_optional=not numbers)


def check_read_write_via_gateway(dep, lib, provider):
    """Without read intent the gateway sends the session to the primary."""
    node = dep.node("gateway", "required")
    res = run(dep, lib, provider, node, encrypt="yes", host=interop.tls_host(node))
    expect_session(dep, res, node, dep.login()["user"], read_only=False)


def check_wrong_password(dep, lib, provider, numbers: bool):
    node = dep.node("primary", "required")
    res = run(dep, lib, provider, node, encrypt="yes", host=interop.tls_host(node),
              password="not-the-password-" + interop.unique("x"))
    assert not res["connected"], "login with a wrong password succeeded\n" + interop.describe(res)
    interop.assert_error(res["connect_error"], interop.ERR_LOGIN_FAILED, r"Login failed", res,
                         number_optional=not numbers)


def kv_queries(table: str, placeholder: str = "?") -> list[dict]:
    p = placeholder
    return [
        q(f"CREATE TABLE {table} (k NVARCHAR(64) NOT NULL PRIMARY KEY, v NVARCHAR(256) NULL)"),
        q(f"INSERT INTO {table} (k, v) VALUES (N'alpha', N'one')"),
        q(f"INSERT INTO {table} (k, v) VALUES ({p}, {p})", ["beta", "two"]),
        q(f"SELECT v FROM {table} WHERE k = N'alpha'"),
        q(f"SELECT v FROM {table} WHERE k = {p}", ["beta"]),
        q(f"SELECT v FROM {table} WHERE k = N'missing'"),
    ]


def check_kv_results(res: dict) -> None:
    interop.assert_connected(res)
    for i in range(3):
        r = res["results"][i]
        assert "error" not in r, f"statement #{i} failed: {r}\n" + interop.describe(res)
    assert interop.scalar(res, 3) == "one", interop.describe(res)
    assert interop.scalar(res, 4) == "two", interop.describe(res)
    missing = res["results"][5]
    assert missing.get("rows") == [], f"expected no row: {missing}\n" + interop.describe(res)


def check_key_value(dep, lib, provider):
    """CREATE TABLE / INSERT (literal and parameterized) / SELECT ... WHERE on the primary."""
    node = dep.node("primary", "required")
    res = run(dep, lib, provider, node, encrypt="yes", host=interop.tls_host(node),
              queries=kv_queries(interop.unique("kv")))
    check_kv_results(res)


def check_transaction_commit(dep, lib, provider):
    """Driver default (autocommit off: transaction-manager requests), commit, then a new
    connection sees the row."""
    node = dep.node("primary", "required")
    table = interop.unique("tx")
    res = run(dep, lib, provider, node, encrypt="yes", host=interop.tls_host(node),
              autocommit=False, commit=True,
              queries=[q(f"CREATE TABLE {table} (k NVARCHAR(64) NOT NULL PRIMARY KEY, "
                         "v NVARCHAR(256) NULL)"),
                       q(f"INSERT INTO {table} (k, v) VALUES (N'committed', N'yes')")])
    interop.assert_connected(res)
    assert all("error" not in r for r in res["results"]), interop.describe(res)
    assert res.get("committed"), interop.describe(res)
    res2 = run(dep, lib, provider, node, encrypt="yes", host=interop.tls_host(node),
               queries=[q(f"SELECT v FROM {table} WHERE k = N'committed'")])
    assert interop.scalar(res2, 0) == "yes", interop.describe(res2)
