"""Packet-dump mode (README "Packet dump") with real drivers: a `tdsgate run` of this
module's own, with `dump:` on (text and pcapng), in front of the demo's emulated Azure SQL.
Each driver's session is dumped with its batch text and row counts; tshark decodes every
packet of the pcapng files as TDS; no password or token of the run is in any dump; the
admin API switches the dump off, on with a filter, and `tdsgate dump --follow` prints it."""

from __future__ import annotations

import json
import re
import shutil
import subprocess
import time
import urllib.request
import uuid
from pathlib import Path

import pytest

import conftest
import interop
import odbc_common as oc
from interop import q
from proxy_process import ProxyProcess, free_ports

TOKEN = "dump-admin-token"
ROWS = 7
USED_SECRETS: set[str] = {TOKEN}


@pytest.fixture(scope="module")
def dump_proxy(deployment, tmp_path_factory):
    work = tmp_path_factory.mktemp("dump-proxy")
    port, admin_port = free_ports(2)
    (work / "admin.token").write_text(TOKEN + "\n")
    text = Path(deployment.data["proxy"]["config_file"]).read_text()
    text = re.sub(r"(?m)^(\s+port:) \d+$", rf"\1 {port}", text, count=1)
    text = re.sub(r"(?m)^admin: .*$", f'admin: {{address: 127.0.0.1, port: {admin_port}, bearer_token_file: "{work}/admin.token"}}', text)
    text = re.sub(r"(?m)^audit: .*$", "", text)
    dump_dir = work / "dump"
    text += f'\ndump: {{directory: "{dump_dir}", format: [text, pcapng], follow_lines: 100000}}\n'
    proxy = ProxyProcess(work, text, port)
    proxy.port, proxy.admin = port, f"http://127.0.0.1:{admin_port}"
    proxy.dump_dir = dump_dir
    yield proxy
    proxy.stop()


def _admin(proxy, method, path, body=None):
    data = json.dumps(body).encode() if body is not None else None
    req = urllib.request.Request(proxy.admin + path, data=data, method=method,
                                 headers={"Authorization": f"Bearer {TOKEN}", "Content-Type": "application/json"})
    with urllib.request.urlopen(req, timeout=30) as r:
        return json.load(r)


def _node(deployment, proxy):
    return {"name": "tdsgate-dump", "host": "127.0.0.1", "port": proxy.port, "tls_host": "localhost",
            "role": "gateway", "server": deployment.data["nodes"][0]["server"]}


def _login(deployment, write=True):
    login = next(l for l in deployment.data["proxy_logins"] if bool(l.get("write")) == write)
    USED_SECRETS.add(login["password"])
    return login


def _run_driver(deployment, proxy, driver, tmp_path, marker, login=None):
    """One session of `driver` through the dumping proxy: the marker batch, then ROWS rows."""
    node = _node(deployment, proxy)
    login = login or _login(deployment)
    queries = [f"SELECT '{marker}'", f"SELECT * FROM tdsgate.rows({ROWS})"]
    if driver in ("mssql-python", "pyodbc"):
        res = oc.run(deployment, driver, "msodbcsql18", node, encrypt="yes", host="localhost", login=login,
                     queries=[q(s) for s in queries])
        interop.assert_connected(res)
        assert len(res["results"][1].get("rows") or []) == ROWS, interop.describe(res)
    elif driver == "tsql":
        section = {"host": "localhost", "port": str(proxy.port), "encryption": "require",
                   "ca file": deployment.ca_file, "tds version": "7.4"}
        conf = interop.freetds_conf(tmp_path / "freetds.conf", {"dumpgate": section})
        r = interop.run_tsql(conf, "dumpgate", login["user"], login["password"], queries, database=login["database"])
        assert r["values"] and r["values"][0] == marker, interop.describe_tsql(r)
    elif driver == "pymssql":
        spec = {"server": "127.0.0.1", "port": proxy.port, "user": login["user"], "password": login["password"],
                "database": login["database"], "encryption": "require", "queries": [q(s) for s in queries]}
        res = interop.run_client("pymssql_client.py", spec, interop.client_env(deployment))
        interop.assert_connected(res)
    elif driver == "pytds":
        spec = {"server": "localhost", "port": proxy.port, "user": login["user"], "password": login["password"],
                "database": login["database"], "readonly": False, "cafile": deployment.ca_file,
                "enc_login_only": False, "queries": [q(s) for s in queries]}
        res = interop.run_client("pytds_client.py", spec, interop.client_env(deployment))
        interop.assert_connected(res)
    else:
        raise AssertionError(driver)


def _session_file(proxy, marker, timeout=15):
    """The text dump holding `marker`, once its session is closed."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        for f in sorted(proxy.dump_dir.glob("session-*.txt")):
            text = f.read_text(errors="replace")
            if marker in text and "session closed" in text:
                return f, text
        time.sleep(0.3)
    raise AssertionError(f"no closed session dump holds {marker}; files: {sorted(p.name for p in proxy.dump_dir.iterdir())}")


DRIVERS = ["mssql-python", "pyodbc", "tsql", "pymssql", "pytds"]


@pytest.mark.parametrize("driver", DRIVERS)
def test_each_driver_is_dumped_with_its_batches_and_row_counts(deployment, dump_proxy, driver, tmp_path):
    marker = f"dump-{driver}-{uuid.uuid4().hex[:8]}"
    _run_driver(deployment, dump_proxy, driver, tmp_path, marker)
    path, text = _session_file(dump_proxy, marker)
    login = _login(deployment)
    assert f"# principal: {login['user']}" in text, text[:800]
    assert "# cluster: orders" in text and "# backend identity: " in text, text[:800]
    for direction in ("client->proxy", "proxy->client", "proxy->backend", "backend->proxy"):
        assert direction in text, f"{path.name}: no {direction} message"
    assert "LOGIN7" in text and "password: <redacted," in text, path.name
    assert f"SELECT * FROM tdsgate.rows({ROWS})" in text, path.name
    assert f"{ROWS} rows" in text, f"{path.name}: the reply's row count is not in the decode"
    pcap = path.with_suffix(".pcapng")
    assert pcap.exists() and pcap.stat().st_size > 1000, pcap


def _tshark_ports(deployment, proxy):
    ports = {proxy.port} | {n["port"] for n in deployment.data["nodes"]}
    args = []
    for p in sorted(ports):
        args += ["-d", f"tcp.port=={p},tds"]
    return args


def test_tshark_decodes_every_packet_as_tds(deployment, dump_proxy):
    # Tests/run-all.sh installs tshark; without it this must fail, not pass quietly.
    assert shutil.which("tshark"), "tshark is not installed (Debian package tshark)"
    files = sorted(dump_proxy.dump_dir.glob("session-*.pcapng"))
    assert files, "no pcapng written (run the driver tests of this module first)"
    ports = _tshark_ports(deployment, dump_proxy)
    for f in files:
        verbose = subprocess.run(["tshark", "-r", str(f), *ports, "-V"], capture_output=True, text=True, timeout=120)
        assert verbose.returncode == 0, verbose.stderr
        assert "Malformed" not in verbose.stdout, f"{f.name}: tshark reports a malformed packet"
        assert "Tabular Data Stream" in verbose.stdout, f.name
        # Every segment that carries bytes is TDS.
        not_tds = subprocess.run(["tshark", "-r", str(f), *ports, "-Y", "tcp.len > 0 && !tds"],
                                 capture_output=True, text=True, timeout=120)
        assert not_tds.stdout.strip() == "", f"{f.name}: segments tshark does not decode as TDS:\n{not_tds.stdout[:2000]}"
        assert "Expert Info (Error" not in verbose.stdout, f.name


def test_admin_api_switches_and_filters_the_dump_and_follow_prints_it(deployment, dump_proxy, tmp_path):
    off = _admin(dump_proxy, "DELETE", "/v1/dump")
    assert off["enabled"] is False
    marker_off = f"dump-off-{uuid.uuid4().hex[:8]}"
    _run_driver(deployment, dump_proxy, "pytds", tmp_path, marker_off)
    # Only report-user's sessions from now on.
    report = _login(deployment, write=False)
    on = _admin(dump_proxy, "POST", "/v1/dump", {"filter": {"principal": report["user"]}, "format": ["text"]})
    assert on["enabled"] is True and on["settings"]["filter"]["principal"] == report["user"], on
    follow = subprocess.Popen([conftest._build["bin"], "dump", "--follow", "--admin-url", dump_proxy.admin,
                               "--token-file", str(dump_proxy.workdir / "admin.token"), "--seconds", "40"],
                              stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    try:
        time.sleep(1.5)
        marker_other = f"dump-filtered-{uuid.uuid4().hex[:8]}"
        _run_driver(deployment, dump_proxy, "pytds", tmp_path, marker_other)
        marker_report = f"dump-report-{uuid.uuid4().hex[:8]}"
        spec_login = dict(report)
        _run_driver(deployment, dump_proxy, "pytds", tmp_path, marker_report, login=spec_login)
        _, text = _session_file(dump_proxy, marker_report)
        assert f"# principal: {report['user']}" in text and "PRELOGIN" in text and "LOGIN7" in text, text[:1500]
        time.sleep(1.5)
    finally:
        follow.terminate()
        out, err = follow.communicate(timeout=20)
    all_text = "".join(p.read_text(errors="replace") for p in dump_proxy.dump_dir.glob("session-*.txt"))
    assert marker_off not in all_text, "a session ran while the dump was off but was dumped"
    assert marker_other not in all_text, "a session the filter excludes was dumped"
    assert marker_report in out, f"tdsgate dump --follow did not print the session:\n{out[-3000:]}\n{err[-2000:]}"
    assert re.search(r"^\[s\d+\] ", out, re.M), out[:500]
    status = _admin(dump_proxy, "GET", "/v1/dump")
    assert status["sessions_dumped"] >= len(DRIVERS) + 1 and status["dropped_records"] == 0, status
    _admin(dump_proxy, "POST", "/v1/dump", {"format": ["text", "pcapng"]})


def test_zz_no_secret_in_any_dump(deployment, dump_proxy):
    files = list(dump_proxy.dump_dir.iterdir())
    assert files
    for f in files:
        data = f.read_bytes()
        for secret in USED_SECRETS:
            for encoded in (secret.encode(), secret.encode("utf-16-le")):
                assert encoded not in data, f"{f.name} holds a secret of the run"
        assert b"eyJ0eXAi" not in data and b"eyJhbGci" not in data, f"{f.name} holds a JWT"
