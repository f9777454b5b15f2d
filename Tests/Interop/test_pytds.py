"""python-tds (pytds), the pure-Python driver: no TLS unless cafile= is given (then full
TLS, or login-only with enc_login_only=True); access tokens via access_token_callable."""

from __future__ import annotations

import pytest

import interop
import odbc_common as oc
from interop import q


def _pytds(dep, node, *, host=None, tls=False, login_only=False, token=None,
           readonly=False, password=None, queries=None):
    login = dep.login()
    spec = {"server": host or node["host"], "port": node["port"], "user": login["user"],
            "password": password if password is not None else login["password"],
            "database": login.get("database"), "readonly": readonly,
            "queries": queries if queries is not None else
            [q(s) for s in interop.IDENTITY_QUERIES]}
    if tls:
        spec["cafile"] = dep.ca_file
        spec["enc_login_only"] = login_only
    if token:
        spec["token"] = token
    return interop.run_client("pytds_client.py", spec, interop.client_env(dep))


@pytest.mark.parametrize("encryption", ["not_supported", "off"])
def test_plain(deployment, encryption):
    node = deployment.node_any_role(encryption)
    res = _pytds(deployment, node)
    oc.expect_session(deployment, res, node, deployment.login()["user"])


def test_tls_cafile(deployment):
    node = deployment.node("primary", "required")
    res = _pytds(deployment, node, host=interop.tls_host(node), tls=True)
    oc.expect_session(deployment, res, node, deployment.login()["user"])


def test_tls_login_only(deployment):
    node = deployment.node_any_role("off")
    res = _pytds(deployment, node, host=interop.tls_host(node), tls=True, login_only=True)
    oc.expect_session(deployment, res, node, deployment.login()["user"])


def test_access_token_from_imds(deployment, imds_token):
    node = deployment.node("primary", "required")
    for ident, client_id in interop.identity_token_cases(deployment):
        res = _pytds(deployment, node, host=interop.tls_host(node), tls=True,
                     token=imds_token(client_id))
        oc.expect_session(deployment, res, node, ident["suser_sname"])


def test_readonly_lands_on_secondary(deployment):
    node = deployment.node("gateway", "required")
    table = interop.unique("ro_probe")
    res = _pytds(deployment, node, host=interop.tls_host(node), tls=True, readonly=True,
                 queries=[q(s) for s in interop.IDENTITY_QUERIES] +
                 [q(f"CREATE TABLE {table} (k INT)")])
    oc.expect_session(deployment, res, node, deployment.login()["user"], read_only=True)
    interop.assert_error(res["results"][5].get("error"), interop.ERR_READ_ONLY_DB, None, res)


def test_wrong_password(deployment):
    node = deployment.node("primary", "required")
    res = _pytds(deployment, node, host=interop.tls_host(node), tls=True,
                 password="not-the-password")
    assert not res["connected"], interop.describe(res)
    interop.assert_error(res["connect_error"], interop.ERR_LOGIN_FAILED, r"Login failed", res)


def test_key_value_table(deployment):
    node = deployment.node("primary", "required")
    res = _pytds(deployment, node, host=interop.tls_host(node), tls=True,
                 queries=oc.kv_queries(interop.unique("kv"), placeholder="%s"))
    oc.check_kv_results(res)
