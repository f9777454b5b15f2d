"""FreeTDS: Debian's tsql (FreeTDS 1.3, driven through a generated freetds.conf) and
pymssql (its wheel bundles FreeTDS 1.5 and OpenSSL; settings through FREETDSCONF)."""

from __future__ import annotations

import pytest

import interop
import odbc_common as oc
from interop import q

# ----------------------------------------------------------------------------------------
# tsql
# ----------------------------------------------------------------------------------------

TSQL_QUERIES = interop.IDENTITY_QUERIES


def _tsql(dep, tmp_path, node, encryption, host=None, password=None, queries=None,
          extra: dict | None = None):
    login = dep.login()
    opts = {"host": host or node["host"], "port": str(node["port"]), "encryption": encryption}
    if encryption != "off":
        opts["ca file"] = dep.ca_file
        opts["check certificate hostname"] = "yes"
    opts.update(extra or {})
    conf = interop.freetds_conf(tmp_path / "freetds.conf", {"emu": opts})
    return interop.run_tsql(conf, "emu", login["user"],
                            password if password is not None else login["password"],
                            queries if queries is not None else TSQL_QUERIES,
                            database=login.get("database"))


def _check_tsql_session(dep, r, node, read_only=False):
    ctx = interop.describe_tsql(r)
    assert r["rc"] == 0, ctx
    servers, updateability = dep.expect(node, read_only)
    v = r["values"]
    assert len(v) >= 5, ctx
    assert v[0] == "1", ctx
    assert v[1] in servers, f"@@SERVERNAME {v[1]!r} not in {sorted(servers)}\n{ctx}"
    assert v[2] == dep.login()["user"], ctx
    if dep.login().get("database"):
        assert v[3] == dep.login()["database"], ctx
    assert v[4] == updateability, ctx


def test_tsql_encryption_off(deployment, tmp_path):
    node = deployment.node_any_role("not_supported")
    r = _tsql(deployment, tmp_path, node, "off")
    _check_tsql_session(deployment, r, node)


def test_tsql_encryption_request_login_only(deployment, tmp_path):
    """`request` (FreeTDS's default) against a node with encryption off: login-only TLS."""
    node = deployment.node_any_role("off")
    r = _tsql(deployment, tmp_path, node, "request", host=interop.tls_host(node))
    _check_tsql_session(deployment, r, node)


def test_tsql_encryption_request_full_tls(deployment, tmp_path):
    """`request` against a node that requires encryption: everything encrypted."""
    node = deployment.node("primary", "required")
    r = _tsql(deployment, tmp_path, node, "request", host=interop.tls_host(node))
    _check_tsql_session(deployment, r, node)


def test_tsql_encryption_require(deployment, tmp_path):
    node = deployment.node("primary", "required")
    r = _tsql(deployment, tmp_path, node, "require", host=interop.tls_host(node))
    _check_tsql_session(deployment, r, node)


@pytest.mark.xfail(strict=True, reason=(
    "FreeTDS 1.3 (Debian tsql) bug: after the gateway's routing ENVCHANGE it opens the new "
    "connection but keeps the old TLS session, so its PRELOGIN goes out as a TLS "
    "application-data record the replica cannot read; the login then times out (20003). "
    "pymssql's FreeTDS 1.5 follows the same redirect fine. A proxy that follows redirects "
    "itself would make this pass."))
def test_tsql_read_only_intent_via_gateway(deployment, tmp_path):
    node = deployment.node("gateway", "required")
    table = interop.unique("ro_probe")
    r = _tsql(deployment, tmp_path, node, "require", host=interop.tls_host(node),
              extra={"read-only intent": "yes"},
              queries=TSQL_QUERIES + [f"CREATE TABLE {table} (k INT)"])
    _check_tsql_session(deployment, r, node, read_only=True)
    assert interop.ERR_READ_ONLY_DB in [e["number"] for e in r["errors"]], \
        interop.describe_tsql(r)


def test_tsql_read_only_intent_on_replica(deployment, tmp_path):
    """`read-only intent = yes` straight to the readable replica (no redirect)."""
    node = deployment.node("secondary", "required")
    table = interop.unique("ro_probe")
    r = _tsql(deployment, tmp_path, node, "require", host=interop.tls_host(node),
              extra={"read-only intent": "yes"},
              queries=TSQL_QUERIES + [f"CREATE TABLE {table} (k INT)"])
    _check_tsql_session(deployment, r, node, read_only=True)
    assert interop.ERR_READ_ONLY_DB in [e["number"] for e in r["errors"]], \
        interop.describe_tsql(r)


def test_tsql_wrong_password(deployment, tmp_path):
    node = deployment.node("primary", "required")
    r = _tsql(deployment, tmp_path, node, "require", host=interop.tls_host(node),
              password="not-the-password")
    ctx = interop.describe_tsql(r)
    assert r["rc"] != 0, ctx
    assert interop.ERR_LOGIN_FAILED in [e["number"] for e in r["errors"]], ctx


def test_tsql_key_value_table(deployment, tmp_path):
    node = deployment.node("primary", "required")
    t = interop.unique("kv")
    r = _tsql(deployment, tmp_path, node, "require", host=interop.tls_host(node), queries=[
        f"CREATE TABLE {t} (k NVARCHAR(64) NOT NULL PRIMARY KEY, v NVARCHAR(256) NULL)",
        f"INSERT INTO {t} (k, v) VALUES (N'alpha', N'one')",
        f"INSERT INTO {t} (k, v) VALUES (N'beta', N'two')",
        f"SELECT v FROM {t} WHERE k = N'beta'",
        f"SELECT v FROM {t} WHERE k = N'alpha'",
    ])
    ctx = interop.describe_tsql(r)
    assert r["rc"] == 0 and not r["errors"], ctx
    assert r["values"][-2:] == ["two", "one"], ctx


# ----------------------------------------------------------------------------------------
# pymssql
# ----------------------------------------------------------------------------------------

def _pymssql(dep, tmp_path, node, *, host=None, encryption=None, conf_opts=None,
             read_only=False, password=None, queries=None):
    login = dep.login()
    global_opts = {}
    if conf_opts:
        global_opts.update(conf_opts)
    conf = interop.freetds_conf(tmp_path / "freetds.conf", {}, global_opts)
    spec = {"server": host or node["host"], "port": node["port"], "user": login["user"],
            "password": password if password is not None else login["password"],
            "database": login.get("database"), "encryption": encryption,
            "read_only": read_only,
            "queries": queries if queries is not None else
            [q(s) for s in interop.IDENTITY_QUERIES]}
    env = interop.client_env(dep, {"FREETDSCONF": conf})
    return interop.run_client("pymssql_client.py", spec, env)


def _tls_conf(dep, encryption="require"):
    return {"encryption": encryption, "ca file": dep.ca_file,
            "check certificate hostname": "yes"}


def test_pymssql_encryption_off(deployment, tmp_path):
    node = deployment.node_any_role("not_supported")
    res = _pymssql(deployment, tmp_path, node, encryption="off")
    oc.expect_session(deployment, res, node, deployment.login()["user"])


def test_pymssql_default_login_only(deployment, tmp_path):
    """pymssql's default (FreeTDS `request`) against a node with encryption off."""
    node = deployment.node_any_role("off")
    res = _pymssql(deployment, tmp_path, node, host=interop.tls_host(node))
    oc.expect_session(deployment, res, node, deployment.login()["user"])


def test_pymssql_encryption_request_full_tls(deployment, tmp_path):
    node = deployment.node("primary", "required")
    res = _pymssql(deployment, tmp_path, node, host=interop.tls_host(node),
                   conf_opts=_tls_conf(deployment, "request"))
    oc.expect_session(deployment, res, node, deployment.login()["user"])


def test_pymssql_encryption_require_ca(deployment, tmp_path):
    node = deployment.node("primary", "required")
    res = _pymssql(deployment, tmp_path, node, host=interop.tls_host(node),
                   conf_opts=_tls_conf(deployment, "require"))
    oc.expect_session(deployment, res, node, deployment.login()["user"])


def test_pymssql_encryption_require_kwarg(deployment, tmp_path):
    """encryption='require' passed to pymssql.connect (no certificate validation)."""
    node = deployment.node("primary", "required")
    res = _pymssql(deployment, tmp_path, node, host=interop.tls_host(node),
                   encryption="require")
    oc.expect_session(deployment, res, node, deployment.login()["user"])


def test_pymssql_encryption_strict(deployment, tmp_path):
    """TDS 8.0 through freetds.conf `encryption = strict` + `ca file` (FreeTDS 1.5)."""
    node = deployment.strict_node()
    res = _pymssql(deployment, tmp_path, node, host=interop.tls_host(node),
                   conf_opts=_tls_conf(deployment, "strict"))
    oc.expect_session(deployment, res, node, deployment.login()["user"])


def test_pymssql_read_only_lands_on_secondary(deployment, tmp_path):
    node = deployment.node("gateway", "required")
    table = interop.unique("ro_probe")
    res = _pymssql(deployment, tmp_path, node, host=interop.tls_host(node),
                   conf_opts=_tls_conf(deployment), read_only=True,
                   queries=[q(s) for s in interop.IDENTITY_QUERIES] +
                   [q(f"CREATE TABLE {table} (k INT)")])
    oc.expect_session(deployment, res, node, deployment.login()["user"], read_only=True)
    interop.assert_error(res["results"][5].get("error"), interop.ERR_READ_ONLY_DB, None, res)


def test_pymssql_wrong_password(deployment, tmp_path):
    node = deployment.node("primary", "required")
    res = _pymssql(deployment, tmp_path, node, host=interop.tls_host(node),
                   conf_opts=_tls_conf(deployment), password="not-the-password")
    assert not res["connected"], interop.describe(res)
    interop.assert_error(res["connect_error"], interop.ERR_LOGIN_FAILED, r"Login failed", res)


def test_pymssql_key_value_table(deployment, tmp_path):
    node = deployment.node("primary", "required")
    res = _pymssql(deployment, tmp_path, node, host=interop.tls_host(node),
                   conf_opts=_tls_conf(deployment),
                   queries=oc.kv_queries(interop.unique("kv"), placeholder="%s"))
    oc.check_kv_results(res)
