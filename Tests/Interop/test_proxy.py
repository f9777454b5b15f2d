"""Real drivers through tdsgate (the proxy `tdsgate demo` starts in front of the emulated
Azure SQL). Each client logs in to tdsgate with tdsgate's own SQL login or an Entra token;
tdsgate logs in to the emulated Azure SQL with its managed identity, so SUSER_SNAME() on
the backend must be that identity, never the client's login."""

from __future__ import annotations

import json
import urllib.parse
import urllib.request

import pytest

import interop
import odbc_common as oc
from interop import q

PROVIDERS = ["msodbcsql18", "mssql-odbc"]
ROWS = 20000
# Compared between a direct session and a proxied one: same answers.
COMPARE_QUERIES = ["SELECT 1", "SELECT DB_NAME()", "SELECT @@SERVERNAME",
                   f"SELECT COUNT(*) FROM tdsgate.rows({ROWS})",
                   "SELECT DATABASEPROPERTYEX(DB_NAME(), 'Updateability')"]
# Secrets and tokens used by this module, for the log check at the end.
USED_SECRETS: set[str] = set()


def proxy(dep) -> dict:
    p = dep.data.get("proxy")
    if not p:
        raise interop.ClientFailure("the ports file has no 'proxy' entry (demo without tdsgate?)")
    return {"name": "tdsgate", "host": p["host"], "port": p["port"], "tls_host": p.get("tls_host", "localhost"),
            "role": "gateway", "server": dep.data["nodes"][0]["server"]}


def proxy_login(dep, write: bool = True) -> dict:
    for login in dep.data["proxy_logins"]:
        if bool(login.get("write")) == write:
            USED_SECRETS.add(login["password"])
            return login
    raise interop.ClientFailure("no proxy login with write=%s" % write)


def backend_identity(dep) -> str:
    return dep.data["proxy_logins"][0]["backend_identity"]


def client_token(dep, scope: str | None = None) -> str:
    form = dict(dep.data["client_token_request"])
    USED_SECRETS.add(form["client_secret"])
    if scope:
        form["scope"] = scope
    req = urllib.request.Request(dep.data["client_token_url"], data=urllib.parse.urlencode(form).encode())
    with urllib.request.urlopen(req, timeout=10) as r:
        token = json.load(r)["access_token"]
    USED_SECRETS.add(token)
    return token


def bad_token(dep, kind: str) -> str:
    body = json.dumps({"kind": kind, "identity": "ci-deployer"}).encode()
    req = urllib.request.Request(dep.data["control_url"] + "/emulator/tokens/bad", data=body,
                                 headers={"Content-Type": "application/json"})
    with urllib.request.urlopen(req, timeout=10) as r:
        token = json.load(r)["access_token"]
    USED_SECRETS.add(token)
    return token


def expect_backend_identity(dep, res, read_only: bool = False):
    interop.assert_connected(res)
    assert interop.scalar(res, 0) == 1, interop.describe(res)
    assert interop.scalar(res, 2) == backend_identity(dep), (
        "SUSER_SNAME() through tdsgate must be tdsgate's managed identity\n" + interop.describe(res))
    assert interop.scalar(res, 4) == ("READ_ONLY" if read_only else "READ_WRITE"), interop.describe(res)


def odbc(dep, lib, provider, *, encrypt="yes", login=None, token=None, extra="", queries=None):
    node = proxy(dep)
    return oc.run(dep, lib, provider, node, encrypt=encrypt, host=node["tls_host"], extra=extra,
                  login=login or proxy_login(dep), token=token, queries=queries)


@pytest.mark.parametrize("provider", PROVIDERS)
@pytest.mark.parametrize("encrypt", ["no", "yes", "strict"])
def test_mssql_python_sql_login(deployment, provider, encrypt):
    res = odbc(deployment, "mssql-python", provider, encrypt=encrypt)
    expect_backend_identity(deployment, res)


@pytest.mark.parametrize("provider", PROVIDERS)
def test_pyodbc_sql_login_and_transactions(deployment, provider):
    table = interop.unique("px_kv")
    queries = [q(s) for s in interop.IDENTITY_QUERIES] + [
        q(f"CREATE TABLE {table} (k INT PRIMARY KEY, v NVARCHAR(20))"),
        q(f"INSERT INTO {table} VALUES (?, ?)", [1, "one"]),
        q(f"SELECT v FROM {table} WHERE k = ?", [1]),
    ]
    node = proxy(deployment)
    res = oc.run(deployment, "pyodbc", provider, node, encrypt="yes", host=node["tls_host"],
                 login=proxy_login(deployment), queries=queries, autocommit=False, commit=True)
    expect_backend_identity(deployment, res)
    assert res["results"][7].get("rows") == [["one"]], interop.describe(res)
    assert res.get("committed"), interop.describe(res)


@pytest.mark.parametrize("lib,provider", [("mssql-python", "msodbcsql18"), ("mssql-python", "mssql-odbc"),
                                          ("pyodbc", "msodbcsql18")])
def test_odbc_client_access_token(deployment, lib, provider):
    res = odbc(deployment, lib, provider, token=client_token(deployment))
    expect_backend_identity(deployment, res)


def test_results_match_a_direct_connection(deployment):
    direct_node = deployment.node("primary", "required")
    direct = oc.run(deployment, "mssql-python", "msodbcsql18", direct_node, encrypt="yes",
                    host=interop.tls_host(direct_node), queries=[q(s) for s in COMPARE_QUERIES])
    proxied = odbc(deployment, "mssql-python", "msodbcsql18", queries=[q(s) for s in COMPARE_QUERIES])
    interop.assert_connected(direct)
    interop.assert_connected(proxied)
    assert [r.get("rows") for r in proxied["results"]] == [r.get("rows") for r in direct["results"]], (
        interop.describe(direct) + "\n" + interop.describe(proxied))
    assert interop.scalar(proxied, 3) == ROWS


def _pytds(dep, *, tls=False, login_only=False, token=None, readonly=False, login=None, password=None):
    node = proxy(dep)
    login = login or proxy_login(dep)
    spec = {"server": node["tls_host"] if tls else "127.0.0.1", "port": node["port"],
            "user": login["user"], "password": password if password is not None else login["password"],
            "database": login["database"], "readonly": readonly,
            "queries": [q(s) for s in interop.IDENTITY_QUERIES]}
    if tls:
        spec["cafile"] = dep.ca_file
        spec["enc_login_only"] = login_only
    if token:
        spec["token"] = token
    return interop.run_client("pytds_client.py", spec, interop.client_env(dep))


@pytest.mark.parametrize("mode", ["plain", "tls", "login_only"])
def test_pytds_sql_login(deployment, mode):
    res = _pytds(deployment, tls=mode != "plain", login_only=mode == "login_only")
    expect_backend_identity(deployment, res)


def test_pytds_access_token_and_readonly(deployment):
    expect_backend_identity(deployment, _pytds(deployment, tls=True, token=client_token(deployment)))
    expect_backend_identity(deployment, _pytds(deployment, tls=True, readonly=True), read_only=True)


def test_read_only_principal_is_sent_to_a_replica(deployment):
    """report-user may not write: tdsgate sets ReadOnlyIntent and sends the session to a
    readable secondary (the demo's east replica or west geo-secondary), where a write fails
    with 3906."""
    table = interop.unique("px_ro")
    res = odbc(deployment, "mssql-python", "msodbcsql18", login=proxy_login(deployment, write=False),
               queries=[q(s) for s in interop.IDENTITY_QUERIES] + [q(f"CREATE TABLE {table} (k INT)")])
    expect_backend_identity(deployment, res, read_only=True)
    interop.assert_error(res["results"][5].get("error"), interop.ERR_READ_ONLY_DB, r"read-only|read only",
                         res, number_optional=True)


@pytest.mark.parametrize("encryption", ["off", "request", "require"])
def test_pymssql(deployment, encryption):
    node = proxy(deployment)
    login = proxy_login(deployment)
    spec = {"server": "127.0.0.1", "port": node["port"], "user": login["user"], "password": login["password"],
            "database": login["database"], "encryption": encryption,
            "queries": [q(s) for s in interop.IDENTITY_QUERIES]}
    res = interop.run_client("pymssql_client.py", spec, interop.client_env(deployment))
    expect_backend_identity(deployment, res)


@pytest.mark.parametrize("encryption,read_only", [("off", False), ("require", False), ("require", True)])
def test_freetds_tsql(deployment, tmp_path, encryption, read_only):
    """tsql through tdsgate. With read-only intent this works although FreeTDS 1.3 cannot
    follow Azure's redirect itself (test_freetds.py): tdsgate follows it."""
    node = proxy(deployment)
    login = proxy_login(deployment)
    section = {"host": node["tls_host"], "port": str(node["port"]), "encryption": encryption,
               "ca file": deployment.ca_file, "tds version": "7.4"}
    if read_only:
        section["read-only intent"] = "yes"
    conf = interop.freetds_conf(tmp_path / "freetds.conf", {"tdsgate": section})
    r = interop.run_tsql(conf, "tdsgate", login["user"], login["password"],
                         ["SELECT SUSER_SNAME()", "SELECT DATABASEPROPERTYEX(DB_NAME(), 'Updateability')"],
                         database=login["database"])
    assert r["values"][:2] == [backend_identity(deployment), "READ_ONLY" if read_only else "READ_WRITE"], \
        interop.describe_tsql(r)


# ---- refusals --------------------------------------------------------------------------

def test_wrong_password_is_refused(deployment):
    res = _pytds(deployment, tls=True, password="not-the-password")
    assert not res["connected"], interop.describe(res)
    interop.assert_error(res["connect_error"], interop.ERR_LOGIN_FAILED, r"Login failed for user 'app-user'",
                         res, number_optional=True)


def test_unknown_login_is_refused_the_same_way(deployment):
    res = _pytds(deployment, tls=True, login={"user": "nobody", "password": "x", "database": "appdb"})
    assert not res["connected"], interop.describe(res)
    interop.assert_error(res["connect_error"], interop.ERR_LOGIN_FAILED, r"Login failed for user 'nobody'",
                         res, number_optional=True)


@pytest.mark.parametrize("kind,reason", [
    ("foreign_key", r"signature"),
    ("tampered_payload", r"signature"),
    ("wrong_audience", r"audience"),
    ("expired", r"expired"),
    ("alg_none", r"alg|algorithm"),
    ("hs256_public_key", r"alg|algorithm"),
])
def test_forged_tokens_are_refused(deployment, kind, reason):
    res = _pytds(deployment, tls=True, token=bad_token(deployment, kind))
    assert not res["connected"], f"{kind} token was accepted\n" + interop.describe(res)
    interop.assert_error(res["connect_error"], interop.ERR_LOGIN_FAILED, r"access token was refused.*" + reason,
                         res, number_optional=True)


def test_token_for_another_audience_is_refused(deployment):
    token = client_token(deployment, scope="https://management.azure.com/.default")
    res = _pytds(deployment, tls=True, token=token)
    assert not res["connected"], interop.describe(res)
    interop.assert_error(res["connect_error"], interop.ERR_LOGIN_FAILED, r"audience", res, number_optional=True)


def test_principal_without_a_policy_rule_is_refused(deployment, imds_token):
    """A valid token of an identity that no policy rule names."""
    ident = deployment.identity("user_assigned")
    token = imds_token(ident["client_id"])
    USED_SECRETS.add(token)
    res = _pytds(deployment, tls=True, token=token)
    assert not res["connected"], interop.describe(res)
    interop.assert_error(res["connect_error"], interop.ERR_LOGIN_FAILED, r"no policy rule", res, number_optional=True)


def test_zz_no_secret_in_any_log(deployment):
    """Runs last in this module: the demo's log (emulator and tdsgate) holds none of the
    passwords and tokens the tests used."""
    assert USED_SECRETS, "the tests above should have used secrets"
    for login in deployment.sql_logins:
        USED_SECRETS.add(login["password"])
    log = deployment.log_path.read_text(errors="replace")
    leaked = [s[:12] + "..." for s in USED_SECRETS if s and s in log]
    assert not leaked, f"secrets found in the demo log: {leaked}"
    # Token pieces would show up as their JWT header prefix.
    assert "eyJ0eXAi" not in log and "eyJhbGci" not in log, "a JWT appears in the log"
