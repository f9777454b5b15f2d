"""MARS (Session Multiplexing Protocol, [MC-SMP]) with Microsoft ODBC Driver 18
(`MARS_Connection=yes`), directly against the emulated Azure SQL and through tdsgate: two
cursors with interleaved active result sets on one connection, a transaction spanning
both, and the same answers as a connection without MARS doing the work one statement at a
time. ODBC Driver 18 refuses the interleaving ("Connection is busy with results for another
command") unless MARS was really negotiated, so a pass proves SMP end to end."""

from __future__ import annotations

import pytest

import interop
import odbc_common as oc
import test_proxy as tp

ROWS = 20000
PROVIDER = "msodbcsql18"
LIBS = ["pyodbc", "mssql-python"]


def run_mars(dep, lib: str, node: dict, host: str, login: dict, *, mars: bool, interleave: bool,
             encrypt: str = "yes") -> dict:
    # mssql-python rejects the MARS_Connection keyword: it sets SQL_COPT_SS_MARS_ENABLED.
    extra = "MARS_Connection=yes;" if mars and lib == "pyodbc" else ""
    spec = {
        "lib": lib,
        "conn_str": oc.conn_str(node, host, encrypt, login["user"], login["password"],
                                login.get("database"), extra),
        "autocommit": False,
        "rows": ROWS,
        "table": interop.unique("mars"),
        "interleave": interleave,
        "query_timeout": 30,
        "mars_attr": mars and lib == "mssql-python",
    }
    if lib == "pyodbc":
        spec["driver_path"] = interop.odbc_driver_path(PROVIDER)
    env = oc._env(dep, lib, PROVIDER)
    return interop.run_client("mars_client.py", spec, env, timeout=120)


def ok(res: dict) -> dict:
    interop.assert_connected(res)
    assert res.get("error") is None, interop.describe(res) + "\n" + res.get("traceback", "")
    return res["steps"]


def check_scenario(steps: dict, expected_user: str | None = None) -> None:
    assert steps["big_count"] == ROWS
    assert steps["big_id_sum"] == ROWS * (ROWS + 1) // 2
    # The emulator reports no row count for a parameterized INSERT (-1), MARS or not;
    # the MARS/non-MARS comparison below checks it is the same either way.
    assert steps["insert_rowcount"] in (1, -1)
    assert steps["other_select"] == [["both"]]
    assert steps["big_sees_insert"] == [["both"]], "cursor 1 must see cursor 2's uncommitted row"
    assert steps["session"][0][0] == 1, "cursor 2 runs inside the transaction"
    assert steps["after_rollback"] == [[0]], "the rollback undoes the insert of both cursors"
    if expected_user is not None:
        assert steps["session"][0][1] == expected_user


def direct(dep) -> tuple[dict, str]:
    node = dep.node("primary", "required")
    return node, interop.tls_host(node)


@pytest.mark.parametrize("lib", LIBS)
def test_mars_direct_to_emulator(deployment, lib):
    node, host = direct(deployment)
    login = deployment.login()
    mars = ok(run_mars(deployment, lib, node, host, login, mars=True, interleave=True))
    check_scenario(mars, login["user"])
    plain = ok(run_mars(deployment, lib, node, host, login, mars=False, interleave=False))
    check_scenario(plain, login["user"])
    assert mars == plain, "MARS and non-MARS sessions must give the same answers"


@pytest.mark.parametrize("lib", LIBS)
def test_interleaving_needs_mars(deployment, lib):
    """The control: without MARS the driver refuses the interleaving, so the MARS tests
    cannot pass by accident (for mssql-python this also shows SQL_COPT_SS_MARS_ENABLED,
    its only way to MARS, really switched it on)."""
    node, host = direct(deployment)
    res = run_mars(deployment, lib, node, host, deployment.login(), mars=False, interleave=True)
    interop.assert_connected(res)
    assert res.get("error") is not None, "interleaved result sets worked without MARS?\n" + interop.describe(res)


@pytest.mark.parametrize("encrypt", ["no", "yes", "strict"])
@pytest.mark.parametrize("lib", LIBS)
def test_mars_through_tdsgate(deployment, lib, encrypt):
    node = tp.proxy(deployment)
    login = tp.proxy_login(deployment)
    identity = tp.backend_identity(deployment)
    mars = ok(run_mars(deployment, lib, node, node["tls_host"], login, mars=True, interleave=True, encrypt=encrypt))
    check_scenario(mars, identity)
    plain = ok(run_mars(deployment, lib, node, node["tls_host"], login, mars=False, interleave=False, encrypt=encrypt))
    check_scenario(plain, identity)
    assert mars == plain, "MARS and non-MARS sessions through tdsgate must give the same answers"
