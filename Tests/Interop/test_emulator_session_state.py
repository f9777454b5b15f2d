"""The emulator's session state as real drivers see it, straight to the emulated nodes:
a driver's own connection pool (mssql-python's, RESETCONNECTION on reuse) must not leak temp tables, SET
options, the database, SESSION_CONTEXT or an open transaction into the next user; every
connection has its own @@SPID; USE and SET LANGUAGE take effect; the session limit gives
10928; and ODBC Driver 18's idle connection resiliency (SESSIONRECOVERY) gets its
database and SET options back after the emulator kills its connection.

Every scenario runs in its own Python process with a timeout (interop.run_client)."""

from __future__ import annotations

import json
import textwrap
import urllib.request
from pathlib import Path

import pytest

import interop
from interop import q

# The Managed Instance node of the demo (USE switches databases there) and an Azure SQL
# Database primary (USE refuses with 40508).
MI_NODE = "compat-loginonly"
DB_NODE = "east-primary"

_PRELUDE = """
import json, os, struct, sys, time, urllib.request
sys.path.insert(0, %r)
import common
spec = json.loads(sys.argv[1])

def rows(cur, sql):
    cur.execute(sql)
    return [[common.plain(v) for v in r] for r in cur.fetchall()]

def post(path):
    req = urllib.request.Request(spec["control_url"] + path, data=b"{}", method="POST",
                                 headers={"Content-Type": "application/json"})
    with urllib.request.urlopen(req, timeout=10) as r:
        return json.load(r)

def state():
    with urllib.request.urlopen(spec["control_url"] + "/emulator/state", timeout=10) as r:
        return json.load(r)

def sessions_on(node):
    for s in state()["servers"]:
        for n in s["nodes"]:
            if n["name"] == node:
                return n["sessions"]
    raise KeyError(node)

out = {}
try:
%s
except BaseException as e:  # noqa: BLE001 - reported to the test
    import traceback
    out["error"] = common.error_info(e)
    out["traceback"] = traceback.format_exc()
sys.stdout.write("INTEROP-RESULT " + json.dumps(out) + "\\n")
"""


def _scenario(tmp_path: Path, name: str, body: str, spec: dict, env: dict, timeout: float = 90) -> dict:
    script = tmp_path / f"{name}.py"
    script.write_text(_PRELUDE % (str(interop.CLIENTS), textwrap.indent(textwrap.dedent(body), "    ")))
    res = interop.run_client(str(script), spec, env, timeout=timeout)
    assert "error" not in res, interop.describe(res)
    return res


def _node(dep, name):
    return next(n for n in dep.nodes if n["name"] == name)


def _post(dep, path, body):
    req = urllib.request.Request(dep.data["control_url"] + path, data=json.dumps(body).encode(), method="POST",
                                 headers={"Content-Type": "application/json"})
    with urllib.request.urlopen(req, timeout=10) as r:
        return json.load(r)


def _sessions_on(dep, node):
    with urllib.request.urlopen(dep.data["control_url"] + "/emulator/state", timeout=10) as r:
        data = json.load(r)
    return next(n["sessions"] for s in data["servers"] for n in s["nodes"] if n["name"] == node)


def _odbc_conn_str(dep, node, driver: str, extra: str = "") -> str:
    login = dep.login()
    return (f"Driver={{{driver}}};Server=localhost,{node['port']};Database={login['database']};"
            f"UID={login['user']};PWD={{{login['password']}}};Encrypt=yes;{extra}")


def test_driver_pool_reuse_resets_the_session(deployment, tmp_path):
    """mssql-python's connection pool (on by default) hands the same physical connection
    (same @@SPID) to the next connect and sets SQL_ATTR_RESET_CONNECTION; ODBC Driver 18
    then flags its next request with RESETCONNECTION and the emulator drops what the
    previous user left behind.

    (pyodbc.pooling = True uses unixODBC's pool, which on Debian 12's unixODBC 2.3.11
    reuses the connection without that attribute: no reset reaches the server, so the
    next user inherits the session. It is not a way to test a reset.)"""
    body = """
    import mssql_python
    mssql_python.pooling(max_size=4, idle_timeout=120)
    c1 = mssql_python.connect(spec["conn_str"], autocommit=True, timeout=10)
    cur = c1.cursor()
    out["first_spid"] = rows(cur, "SELECT @@SPID")[0][0]
    cur.execute("CREATE TABLE #pooled (k INT)")
    cur.execute("INSERT INTO #pooled VALUES (1)")
    cur.execute("SET XACT_ABORT ON")
    cur.execute("SET LANGUAGE British")
    cur.execute("USE scratchdb")
    cur.execute("EXEC sp_set_session_context @key = N'who', @value = N'alice', @read_only = 1")
    cur.execute("SET CONTEXT_INFO 0x0102")
    cur.execute("BEGIN TRANSACTION")
    out["before"] = rows(cur, "SELECT OBJECT_ID('tempdb..#pooled'), @@OPTIONS, @@LANGUAGE, DB_NAME(), "
                              "CAST(SESSION_CONTEXT(N'who') AS NVARCHAR(100)), CONTEXT_INFO(), @@TRANCOUNT")[0]
    cur.close()
    c1.close()
    c2 = mssql_python.connect(spec["conn_str"], autocommit=True, timeout=10)
    cur = c2.cursor()
    out["second_spid"] = rows(cur, "SELECT @@SPID")[0][0]
    out["after"] = rows(cur, "SELECT OBJECT_ID('tempdb..#pooled'), @@OPTIONS, @@LANGUAGE, DB_NAME(), "
                             "CAST(SESSION_CONTEXT(N'who') AS NVARCHAR(100)), CONTEXT_INFO(), @@TRANCOUNT")[0]
    # The read-only key of the previous user is gone: setting it again works.
    cur.execute("EXEC sp_set_session_context @key = N'who', @value = N'bob'")
    out["who"] = rows(cur, "SELECT CAST(SESSION_CONTEXT(N'who') AS NVARCHAR(100))")[0][0]
    c2.close()
    """
    node = _node(deployment, MI_NODE)
    login = deployment.login()
    spec = {"conn_str": f"Server=localhost,{node['port']};Database={login['database']};UID={login['user']};"
                        f"PWD={{{login['password']}}};Encrypt=yes;"}
    env = interop.client_env(deployment, {"MSSQL_PYTHON_NATIVE_PROVIDER": "msodbcsql18"})
    res = _scenario(tmp_path, "pool_reset", body, spec, env)
    assert res["first_spid"] == res["second_spid"], f"the pool did not reuse the connection: {res}"
    temp, options, language, db, who, context_info, trancount = res["before"]
    assert temp is not None and options & 16384 and language == "British" and db == "scratchdb"
    assert who == "alice" and context_info.startswith("0102") and trancount == 1
    assert res["after"] == [None, 5432, "us_english", "appdb", None, None, 0], res
    assert res["who"] == "bob"
    log = Path(deployment.log_path).read_text(errors="replace")
    assert f"spid={res['second_spid']} reset" in log


def test_spid_use_and_language_with_mssql_python(deployment):
    node = _node(deployment, MI_NODE)
    queries = [q("SELECT @@SPID"), q("USE scratchdb"), q("SELECT DB_NAME()"),
               q("SET LANGUAGE Deutsch"), q("SELECT @@LANGUAGE, @@DATEFIRST"),
               q("SELECT date_format FROM sys.dm_exec_sessions WHERE session_id = @@SPID")]
    import odbc_common

    runs = [odbc_common.run(deployment, "mssql-python", "msodbcsql18", node, encrypt="yes", host="localhost",
                            queries=queries) for _ in range(2)]
    for r in runs:
        interop.assert_connected(r)
        assert "error" not in json.dumps(r["results"]), interop.describe(r)
        assert r["results"][2]["rows"] == [["scratchdb"]]
        assert r["results"][4]["rows"] == [["Deutsch", 1]]
        assert r["results"][5]["rows"] == [["dmy"]]
    assert runs[0]["results"][0]["rows"] != runs[1]["results"][0]["rows"], "two connections, two SPIDs"


def test_spid_use_and_language_with_pytds(deployment):
    import pytds

    login = deployment.login()

    def connect(node):
        return pytds.connect(server="localhost", port=node["port"], database=login["database"], user=login["user"],
                             password=login["password"], cafile=deployment.ca_file, login_timeout=10, timeout=10,
                             autocommit=True)

    mi = _node(deployment, MI_NODE)
    with connect(mi) as a, connect(mi) as b:
        ca, cb = a.cursor(), b.cursor()
        ca.execute("SELECT @@SPID")
        cb.execute("SELECT @@SPID")
        assert ca.fetchall()[0][0] != cb.fetchall()[0][0]
        ca.execute("USE scratchdb")
        ca.execute("SELECT DB_NAME()")
        assert ca.fetchall()[0][0] == "scratchdb"
        cb.execute("SELECT DB_NAME()")
        assert cb.fetchall()[0][0] == "appdb", "USE changes only its own session"
        ca.execute("SET LANGUAGE British")
        ca.execute("SELECT @@LANGUAGE, @@DATEFIRST")
        assert list(ca.fetchall()[0]) == ["British", 1]
        cb.execute("SELECT @@LANGUAGE")
        assert cb.fetchall()[0][0] == "us_english"
    with connect(_node(deployment, DB_NODE)) as c:
        with pytest.raises(pytds.Error, match="USE statement is not supported"):
            c.cursor().execute("USE master")


def test_session_limit_gives_10928_to_odbc(deployment):
    """The node's cap counts logged-in sessions; the next login gets Azure's 10928."""
    import pytds

    node = _node(deployment, DB_NODE)
    login = deployment.login()
    held = pytds.connect(server="localhost", port=node["port"], database=login["database"], user=login["user"],
                         password=login["password"], cafile=deployment.ca_file, login_timeout=10, timeout=10,
                         autocommit=True)
    try:
        _post(deployment, f"/emulator/nodes/{DB_NODE}/session-limit", {"limit": _sessions_on(deployment, DB_NODE)})
        import odbc_common

        res = odbc_common.run(deployment, "pyodbc", "msodbcsql18", node, encrypt="yes", host="localhost",
                              queries=[q("SELECT 1")])
        assert not res["connected"], interop.describe(res)
        interop.assert_error(res["connect_error"], 10928, "session limit for the database")
    finally:
        _post(deployment, f"/emulator/nodes/{DB_NODE}/session-limit", {"limit": None})
        held.close()
    res = odbc_common.run(deployment, "pyodbc", "msodbcsql18", node, encrypt="yes", host="localhost",
                          queries=[q("SELECT 1")])
    interop.assert_connected(res)


def test_odbc_idle_connection_resiliency_recovers_the_session(deployment, tmp_path):
    """ConnectRetryCount=1 negotiates SESSIONRECOVERY; after the emulator kills the idle
    connection, ODBC Driver 18 logs in again with the recovery data and the session goes on
    with its database and SET options."""
    body = """
    import pyodbc
    conn = pyodbc.connect(spec["conn_str"], autocommit=True, timeout=10)
    cur = conn.cursor()
    cur.execute("USE scratchdb")
    cur.execute("SET LANGUAGE British")
    cur.execute("SET XACT_ABORT ON")
    cur.execute("SET TRANSACTION ISOLATION LEVEL SERIALIZABLE")
    out["before"] = rows(cur, "SELECT @@SPID, DB_NAME(), @@LANGUAGE, @@OPTIONS")[0]
    sessions = sessions_on(spec["node"])
    out["killed"] = post("/emulator/sessions/%d/kill" % out["before"][0])
    deadline = time.monotonic() + 10
    while sessions_on(spec["node"]) >= sessions and time.monotonic() < deadline:
        time.sleep(0.05)
    out["after"] = rows(cur, "SELECT @@SPID, DB_NAME(), @@LANGUAGE, @@OPTIONS")[0]
    out["isolation"] = rows(cur, "SELECT transaction_isolation_level FROM sys.dm_exec_sessions WHERE session_id = @@SPID")[0][0]
    conn.close()
    """
    node = _node(deployment, MI_NODE)
    spec = {"conn_str": _odbc_conn_str(deployment, node, interop.odbc_driver_path("msodbcsql18"),
                                       "ConnectRetryCount=1;ConnectRetryInterval=1;"),
            "control_url": deployment.data["control_url"], "node": MI_NODE}
    res = _scenario(tmp_path, "resiliency", body, spec, interop.client_env(deployment))
    before, after = res["before"], res["after"]
    assert after[0] != before[0], f"the query ran on a new session: {res}"
    assert after[1:] == ["scratchdb", "British", before[3]], res
    assert before[3] & 16384
    assert res["isolation"] == 4
    log = Path(deployment.log_path).read_text(errors="replace")
    assert f"spid={after[0]} " in log and "recovered=yes" in log
