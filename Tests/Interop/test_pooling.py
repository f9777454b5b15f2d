"""Session-mode backend pooling (issue 12): a client login takes an idle backend connection
of the same shape (same @@SPID on the emulator), and the connection was reset in between:
what one client left behind (temp table, SET options, language, database, session context,
CONTEXT_INFO, open transaction) is not there for the next. The identity stays the proxy's
managed identity."""

from __future__ import annotations

import os

import pymssql
import pytds
import pytest

from proxy_process import gateway_cluster_yaml, ProxyProcess, free_ports, hash_password

USER, PASSWORD = "pool-user", "Pool-Passw0rd!"
LOOPS = os.cpu_count() or 1


def _config(dep, port, max_connections=20, acquire_ms=5000):
    cluster = gateway_cluster_yaml(dep, USER, hash_password(PASSWORD), "pooled")
    cluster = cluster.replace("    ca_file:", f"    pool: {{mode: session, max_backend_connections: {max_connections}, "
                                           f"acquire_timeout_ms: {acquire_ms}}}\n    ca_file:", 1)
    return f"""listeners:
  - name: pooled
    address: 127.0.0.1
    port: {port}
    client_encryption: [plaintext]
    cluster: orders
{cluster}"""


@pytest.fixture(scope="module")
def proxy(deployment, tmp_path_factory):
    port = free_ports(1)[0]
    work = tmp_path_factory.mktemp("pooling")
    p = ProxyProcess(work, _config(deployment, port), port)
    yield p, port
    p.stop()


@pytest.fixture(scope="module")
def small_pool(deployment, tmp_path_factory):
    port = free_ports(1)[0]
    work = tmp_path_factory.mktemp("pooling-small")
    p = ProxyProcess(work, _config(deployment, port, max_connections=2, acquire_ms=3000), port)
    yield p, port
    p.stop()


def _connect(port, appname="pooling-test"):
    return pytds.connect(server="127.0.0.1", port=port, database="appdb", user=USER, password=PASSWORD,
                         login_timeout=15, timeout=15, autocommit=True, appname=appname)


def _one(cur, sql):
    cur.execute(sql)
    return cur.fetchone()


STATE = ("SELECT OBJECT_ID('tempdb..#pooled'), @@OPTIONS, @@LANGUAGE, DB_NAME(), "
         "CAST(SESSION_CONTEXT(N'who') AS NVARCHAR(100)), CONTEXT_INFO(), @@TRANCOUNT")


def test_a_released_connection_is_reused_and_reset(proxy):
    p, port = proxy
    with _connect(port) as c1:
        cur = c1.cursor()
        spid = _one(cur, "SELECT @@SPID")[0]
        clean = _one(cur, STATE)
        cur.execute("CREATE TABLE #pooled (k INT)")
        cur.execute("SET XACT_ABORT ON")
        cur.execute("SET LANGUAGE British")
        cur.execute("EXEC sp_set_session_context @key = N'who', @value = N'alice', @read_only = 1")
        cur.execute("SET CONTEXT_INFO 0x0102")
        cur.execute("BEGIN TRANSACTION")
        dirty = _one(cur, STATE)
        assert dirty[0] is not None and dirty[2] == "British" and dirty[6] == 1, dirty
    # Both legs of a session share an event loop, so a pooled connection serves the clients
    # that land on its loop (tdsgate runs one per core, and accepts round-robin). The ones
    # that get another connection stay open, so the released one is the only idle one.
    held = []
    for _ in range(LOOPS * 6):
        c2 = _connect(port)
        cur = c2.cursor()
        if _one(cur, "SELECT @@SPID")[0] == spid:
            break
        assert _one(cur, STATE) == clean
        held.append(c2)
    else:
        pytest.fail("the pool never handed out the released connection")
    for c in held:
        c.close()
    with c2:
        after = _one(cur, STATE)
        assert after == clean, f"the next client saw the previous one's session: {after} (clean: {clean})"
        # The previous client's read-only key is gone: setting it again works.
        cur.execute("EXEC sp_set_session_context @key = N'who', @value = N'bob'")
        assert _one(cur, "SELECT CAST(SESSION_CONTEXT(N'who') AS NVARCHAR(100))")[0] == "bob"
        assert _one(cur, "SELECT SUSER_SNAME()")[0] != USER, "the backend login is the managed identity, not the client"
    assert "pooled=reused" in p.log() or '"pooled":"reused"' in p.log() or "pooled: reused" in p.log(), p.log()[-3000:]


def test_a_login_of_another_shape_gets_its_own_connection(proxy):
    _, port = proxy
    mine = set()
    for _ in range(2 * LOOPS):
        with _connect(port) as c1:
            mine.add(_one(c1.cursor(), "SELECT @@SPID")[0])
    with _connect(port, appname="another-app") as c2:
        cur = c2.cursor()
        assert _one(cur, "SELECT APP_NAME()")[0] == "another-app"
        other = _one(cur, "SELECT @@SPID")[0]
    assert other not in mine, "a session of another application name must not get the first one's connections"


def test_at_the_limit_a_login_waits_then_gets_a_retryable_resource_limit_error(small_pool):
    _, port = small_pool
    # max_backend_connections: 2 for the group; both held by open sessions of other shapes.
    held = [_connect(port, appname="holder-1"), _connect(port, appname="holder-2")]
    try:
        with pytest.raises(pymssql.OperationalError) as err:
            pymssql.connect(server="127.0.0.1", port=str(port), user=USER, password=PASSWORD, database="appdb",
                            login_timeout=15, tds_version="7.4").close()
        text = str(err.value)
        assert "10928" in text and "max_backend_connections" in text, text
    finally:
        for c in held:
            c.close()
    # Once they leave, logins work again.
    with _connect(port) as c:
        assert _one(c.cursor(), "SELECT 1")[0] == 1


def test_pymssql_sessions_through_the_pool(proxy):
    _, port = proxy
    spids = []
    for _ in range(3 * LOOPS):
        conn = pymssql.connect(server="127.0.0.1", port=str(port), user=USER, password=PASSWORD, database="appdb",
                               login_timeout=15, tds_version="7.4", autocommit=True)
        cur = conn.cursor()
        cur.execute("SELECT @@SPID, @@TRANCOUNT")
        spid, trancount = cur.fetchone()
        cur.execute("BEGIN TRANSACTION")
        spids.append(spid)
        assert trancount == 0
        conn.close()
    # A login that comes while the previous client's connection is still being reset gets
    # a new one, so only sharing itself is asserted.
    assert len(set(spids)) < len(spids), f"pymssql's sessions did not share the pooled connections: {spids}"
