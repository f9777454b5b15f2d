"""tdsgate placing sessions by intent and following failovers, with real probes against
the emulated deployment: read-intent to a replica, writes to the confirmed primary, a
planned failover followed without losing an acknowledged write, a killed replica taken
out of rotation."""

from __future__ import annotations

import json
import threading
import time
import urllib.request

import pytds
import pytest

import interop
from proxy_process import ProxyProcess, free_ports, geo_proxy_config, node

USER, PASSWORD = "route-user", "Route-Passw0rd!"
PROBE_INTERVAL_S = 0.5
WRITE_WAIT_S = 4
GEO_READER, RYW_USER = ("geo-reader", "Ge0-Reader-Passw0rd!"), ("ryw-user", "Ryw-User-Passw0rd!")


def _post(dep, path, body=None, token=None):
    headers = {"Content-Type": "application/json"}
    if token:
        headers["Authorization"] = f"Bearer {token}"
    url = path if path.startswith("http") else dep.data["control_url"] + path
    req = urllib.request.Request(url, data=json.dumps(body or {}).encode(), headers=headers, method="POST")
    with urllib.request.urlopen(req, timeout=10) as r:
        return json.load(r)


@pytest.fixture(scope="module")
def routing_proxy(deployment, tmp_path_factory):
    work = tmp_path_factory.mktemp("routing-proxy")
    port, admin_port = free_ports(2)
    east, replica, west = (node(deployment, n) for n in ("east-primary", "east-replica", "west-primary"))
    rule = '{{name: {}, match: {{login: {}}}, clusters: [orders], databases: ["*"], write: {}, backend_identity: mi}}'
    config = geo_proxy_config(
        deployment, work, port, admin_port, probe_interval_s=PROBE_INTERVAL_S, max_write_wait_ms=int(WRITE_WAIT_S * 1000),
        client_encryption="[required, strict, plaintext]",
        logins={USER: PASSWORD, GEO_READER[0]: GEO_READER[1], RYW_USER[0]: RYW_USER[1]},
        policy=[rule.format("route", USER, "true"), rule.format("geo", GEO_READER[0], "false"), rule.format("ryw", RYW_USER[0], "true")],
        cluster_extra=f"""    routing:
      - {{name: geo-reports, match: {{intent: read_only, roles: [{GEO_READER[0]}]}}, replicas: [west], read_fallback_to_primary: false}}
      - {{name: read-your-writes, match: {{roles: [{RYW_USER[0]}]}}, read_target: primary}}
""")
    proxy = ProxyProcess(work, config, port)
    time.sleep(PROBE_INTERVAL_S * 4)  # first probe rounds
    proxy.admin_url = f"http://127.0.0.1:{admin_port}"
    proxy.admin_token_file = work / "admin.token"
    yield proxy, port, {"east": east["port"], "east-ro": replica["port"], "west": west["port"]}
    proxy.stop()


def _connect(port, readonly=False, login=(USER, PASSWORD), login_timeout=15, retry=True):
    return pytds.connect(server="127.0.0.1", port=port, database="appdb", user=login[0], password=login[1],
                         login_timeout=login_timeout, timeout=10, autocommit=True, readonly=readonly,
                         disable_connect_retry=not retry)


def _one(conn, sql):
    cur = conn.cursor()
    cur.execute(sql)
    return cur.fetchall()[0][0]


def _where(conn):
    return int(_one(conn, "SELECT CONNECTIONPROPERTY('local_tcp_port')"))


def test_read_intent_to_a_replica_write_to_the_primary(deployment, routing_proxy):
    proxy, port, ports = routing_proxy
    with _connect(port) as conn:
        assert _where(conn) == ports["east"], proxy.log()[-3000:]
        assert _one(conn, "SELECT DATABASEPROPERTYEX(DB_NAME(), 'Updateability')") == "READ_WRITE"
    seen = set()
    for _ in range(4):
        with _connect(port, readonly=True) as conn:
            seen.add(_where(conn))
            assert _one(conn, "SELECT DATABASEPROPERTYEX(DB_NAME(), 'Updateability')") == "READ_ONLY"
    assert seen <= {ports["east-ro"], ports["west"]} and seen, seen


def test_planned_failover_is_followed_without_losing_acknowledged_writes(deployment, routing_proxy):
    proxy, port, ports = routing_proxy
    table = interop.unique("fo_px")
    with _connect(port) as conn:
        conn.cursor().execute(f"CREATE TABLE {table} (k INT PRIMARY KEY, endpoint INT)")
    acked: list[tuple[int, int]] = []
    errors: list[str] = []
    stop = threading.Event()

    def writer():
        k = 0
        conn = None
        deadline = time.monotonic() + 40
        while not stop.is_set() and time.monotonic() < deadline:
            try:
                if conn is None:
                    conn = _connect(port)
                k += 1
                where = _where(conn)
                conn.cursor().execute(f"INSERT INTO {table} VALUES ({k}, {where})")
                acked.append((k, where))
            except Exception as e:  # noqa: BLE001 - every error a client sees is recorded
                errors.append(str(e)[:200])
                try:
                    conn and conn.close()
                except Exception:  # noqa: BLE001
                    pass
                conn = None
                time.sleep(0.05)
            time.sleep(0.02)
        if conn:
            conn.close()

    th = threading.Thread(target=writer)
    th.start()
    time.sleep(1.5)
    mgmt = interop.fetch_imds_token(deployment.imds_url, None, resource="https://management.azure.com/")["access_token"]
    arm = deployment.data["arm_url"]
    t0 = time.monotonic()
    _post(deployment, f"{arm}/servers/sqlemu-west/failoverGroups/fog-app/failover?api-version=2021-11-01", token=mgmt)
    try:
        first_west = None
        while time.monotonic() - t0 < 20:
            if any(w == ports["west"] for _, w in acked):
                first_west = time.monotonic() - t0
                break
            time.sleep(0.05)
        stop.set()
        th.join(timeout=30)
        assert first_west is not None, f"writes never reached the new primary; errors: {errors[-5:]}\n{proxy.log()[-3000:]}"
        # Writes resume within 2 probe intervals plus one login (generous margin for CI).
        assert first_west < 2 * PROBE_INTERVAL_S + 5, first_west
        assert all(w in (ports["east"], ports["west"]) for _, w in acked)
        with _connect(port) as conn:
            assert _where(conn) == ports["west"]
            cur = conn.cursor()
            cur.execute(f"SELECT k FROM {table}")
            present = {r[0] for r in cur.fetchall()}
        missing = [k for k, _ in acked if k not in present]
        assert not missing, f"acknowledged writes lost: {missing[:10]}"
        print(f"\n[failover] first write on the new primary after {first_west:.2f}s; "
              f"{len(acked)} acknowledged writes, {len(errors)} client errors")
    finally:
        stop.set()
        _post(deployment, f"{arm}/servers/sqlemu-east/failoverGroups/fog-app/failover?api-version=2021-11-01", token=mgmt)
        deadline = time.monotonic() + 15
        while time.monotonic() < deadline:
            try:
                with _connect(port) as conn:
                    if _where(conn) == ports["east"]:
                        break
            except Exception:  # noqa: BLE001
                pass
            time.sleep(0.2)


def test_killed_replica_stops_receiving_reads(deployment, routing_proxy):
    proxy, port, ports = routing_proxy
    _post(deployment, "/emulator/nodes/east-replica/kill")
    try:
        time.sleep(PROBE_INTERVAL_S * 2 * 2 + 1)  # fall = 2 probes, with margin
        for _ in range(4):
            with _connect(port, readonly=True) as conn:
                assert _where(conn) != ports["east-ro"]
    finally:
        _post(deployment, "/emulator/nodes/east-replica/restore")


def test_routing_rules_choose_by_principal(deployment, routing_proxy):
    """geo-reports keeps one login's read-intent sessions on the geo secondary; read-your-writes
    sends another's read-intent sessions to the primary."""
    proxy, port, ports = routing_proxy
    for _ in range(4):
        with _connect(port, readonly=True, login=GEO_READER) as conn:
            assert _where(conn) == ports["west"]
    # The policy makes geo-reader read-only: even without ReadOnly intent it is a read session.
    with _connect(port, login=GEO_READER) as conn:
        assert _where(conn) == ports["west"]
    for _ in range(2):
        with _connect(port, readonly=True, login=RYW_USER) as conn:
            assert _where(conn) == ports["east"]
    # Everyone else's read-intent sessions still spread over the replicas.
    with _connect(port, readonly=True) as conn:
        assert _where(conn) in (ports["east-ro"], ports["west"])


def test_write_logins_wait_for_a_primary_then_get_a_clear_error(deployment, routing_proxy):
    proxy, port, ports = routing_proxy
    _admin(proxy, "/v1/clusters/orders/endpoints/east/disable", method="POST")
    try:
        # No primary: a write login waits up to max_write_wait_ms, then is refused with why,
        # as Azure SQL's transient 40613 (pytds would retry it: one attempt shows the error).
        # pytds sleeps out its login timeout after a transient error and then raises a
        # TimeoutError from it, so its timeout is kept just above the write wait.
        t0 = time.monotonic()
        with pytest.raises((pytds.tds_base.Error, TimeoutError)) as refused:
            _connect(port, login_timeout=WRITE_WAIT_S + 2, retry=False)
        waited = time.monotonic() - t0
        assert WRITE_WAIT_S - 0.5 <= waited < WRITE_WAIT_S + 5, waited
        error = refused.value.__cause__ if isinstance(refused.value, TimeoutError) else refused.value
        assert getattr(error, "msg_no", None) == 40613, repr(refused.value)
        text = str(error)
        assert "has no primary" in text and "disabled" in text and "waited 4 s" in text, text
        # Read-intent sessions are not held up.
        with _connect(port, readonly=True) as conn:
            assert _where(conn) in (ports["east-ro"], ports["west"])

        # A write login that starts waiting is served as soon as the primary is back.
        result: dict = {}

        def login():
            t = time.monotonic()
            try:
                with _connect(port, login_timeout=20) as conn:
                    result["where"] = _where(conn)
            except Exception as e:  # noqa: BLE001
                result["error"] = str(e)
            result["took"] = time.monotonic() - t

        th = threading.Thread(target=login)
        th.start()
        time.sleep(1.5)
        _admin(proxy, "/v1/clusters/orders/endpoints/east/enable", method="POST")
        th.join(timeout=30)
        assert result.get("where") == ports["east"], result
        assert 1.4 <= result["took"] < 1.5 + 2 * PROBE_INTERVAL_S + 3, result
    finally:
        _admin(proxy, "/v1/clusters/orders/endpoints/east/enable", method="POST")


def _admin(proxy, path, method="GET", token=True):
    headers = {"Authorization": "Bearer admin-token-for-tests"} if token else {}
    req = urllib.request.Request(proxy.admin_url + path, headers=headers, method=method, data=b"" if method == "POST" else None)
    with urllib.request.urlopen(req, timeout=10) as r:
        return r.status, r.read().decode()


def test_admin_api_health_state_metrics_and_drain(deployment, routing_proxy):
    import subprocess
    import urllib.error

    import conftest

    proxy, port, ports = routing_proxy
    with pytest.raises(urllib.error.HTTPError) as denied:
        _admin(proxy, "/v1/clusters", token=False)
    assert denied.value.code == 401
    assert _admin(proxy, "/healthz") == (200, "ok\n")
    assert _admin(proxy, "/readyz")[0] == 200
    clusters = json.loads(_admin(proxy, "/v1/clusters")[1])
    orders = clusters[0]
    assert orders["name"] == "orders" and orders["primary"] == "east" and orders["probing"]
    assert {e["name"]: e["last_role"] for e in orders["endpoints"]}["east-ro"] == "READ_ONLY"

    # Drain both read replicas: read sessions fall back to the primary; enable restores.
    for ep in ("east-ro", "west"):
        _admin(proxy, f"/v1/clusters/orders/endpoints/{ep}/drain", method="POST")
    try:
        with _connect(port, readonly=True) as conn:
            assert _where(conn) == ports["east"]
    finally:
        for ep in ("east-ro", "west"):
            _admin(proxy, f"/v1/clusters/orders/endpoints/{ep}/enable", method="POST")
    with _connect(port, readonly=True) as conn:
        assert _where(conn) in (ports["east-ro"], ports["west"])
        metrics = _admin(proxy, "/metrics")[1]
    assert 'tdsgate_logins_total{listener="main",outcome="ok"}' in metrics
    assert 'tdsgate_endpoint_primary{cluster="orders",endpoint="east"} 1' in metrics
    assert "tdsgate_sessions{" in metrics and "tdsgate_relayed_bytes_total" in metrics

    status = subprocess.run([conftest._build["bin"], "status", "--admin-url", proxy.admin_url,
                             "--token-file", str(proxy.admin_token_file)], capture_output=True, text=True, timeout=30)
    assert status.returncode == 0, status.stderr
    assert "east-ro" in status.stdout and "READ_ONLY" in status.stdout and "yes" in status.stdout, status.stdout
