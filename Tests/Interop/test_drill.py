"""`tdsgate drill failover` against a tdsgate that follows the emulated failover group: a
planned failover and the failback, a forced failover, and a simulated outage, each ending
with a report whose safety and recovery figures are checked."""

from __future__ import annotations

import json
import os
import subprocess
import time
import urllib.request
from pathlib import Path

import pytest

import conftest
from proxy_process import ProxyProcess, free_ports, geo_proxy_config

USER, PASSWORD = "drill-user", "Drill-Passw0rd!"
PROBE_INTERVAL_S = 0.5


@pytest.fixture(scope="module")
def drill_proxy(deployment, tmp_path_factory):
    work = tmp_path_factory.mktemp("drill-proxy")
    state = Path(deployment.data["proxy"]["config_file"]).parent
    port, admin_port = free_ports(2)
    config = geo_proxy_config(
        deployment, work, port, admin_port, logins={USER: PASSWORD}, probe_interval_s=PROBE_INTERVAL_S,
        max_write_wait_ms=10000, client_encryption="[required, strict]",
        policy=[f'{{name: drill, match: {{login: {USER}}}, clusters: [orders], databases: ["*"], write: true, backend_identity: mi}}'],
        cluster_extra=f"""    failover_group:
      name: fog-app
      subscription_id: 00000000-0000-4000-8000-00000000a001
      resource_group: rg-tdsgate-demo
      servers: [sqlemu-east, sqlemu-west]
      identity: mi
      arm_url: "{deployment.data["control_url"]}"
""")
    proxy = ProxyProcess(work, config, port)
    time.sleep(PROBE_INTERVAL_S * 4)
    yield proxy, state
    proxy.stop()


def _drill(proxy, state, *args, timeout=150):
    env = dict(os.environ, TDSGATE_DRILL_PASSWORD=PASSWORD)
    cmd = [conftest._build["bin"], "drill", "failover", "--config", str(proxy.config_path), "--user", USER,
           "--ca-file", f"{state}/ca.pem", "--tls-name", "localhost", "--baseline", "1.5", "--settle", "1.5", *args]
    return subprocess.run(cmd, capture_output=True, text=True, timeout=timeout, env=env)


def _check_recovered(report, new_primary, budget_s):
    assert report["safe"] is True and report["unsafe_writes"] == [], report
    assert report["aborted"] is None, report
    assert report["new_primary"] == new_primary, report
    assert report["writes_acknowledged"] > 10 and report["reads_succeeded"] > 5, report
    assert report["time_to_first_write_ms"] is not None, report
    # Writes resume within 2 probe intervals plus one login (plus slack for a loaded CI box).
    resumed = report["time_to_new_primary_ms"] + report["time_to_first_write_ms"]
    assert resumed < budget_s * 1000, report
    timeline = [e["to"] for e in report["primary_timeline"]]
    assert timeline[0] != new_primary and timeline[-1] == new_primary, timeline


def test_planned_failover_and_failback_report(drill_proxy):
    proxy, state = drill_proxy
    r = _drill(proxy, state, "--planned", "--failback", "--json")
    assert r.returncode == 0, r.stdout + r.stderr + proxy.log()[-3000:]
    phases = json.loads(r.stdout)
    assert set(phases) == {"failover", "failback"}
    budget = 2 * PROBE_INTERVAL_S + 4
    _check_recovered(phases["failover"], "west", budget)
    _check_recovered(phases["failback"], "east", budget)
    for phase in phases.values():
        assert phase["mode"] == "planned" and phase["lost_write_count"] == 0, phase
        assert phase["writes_verified"] == phase["writes_acknowledged"], phase
        # Every error the clients saw is counted by number or kind.
        assert sum(e["count"] for e in phase["errors"]) == phase["error_total"]
    print("\n[drill] planned: detect %.0f ms, new primary %.0f ms, first write +%.0f ms, %d writes, errors %s" % (
        phases["failover"]["time_to_detect_ms"], phases["failover"]["time_to_new_primary_ms"],
        phases["failover"]["time_to_first_write_ms"], phases["failover"]["writes_acknowledged"],
        {e["label"]: e["count"] for e in phases["failover"]["errors"]}))


def test_simulated_outage_touches_nothing_in_azure(deployment, drill_proxy):
    proxy, state = drill_proxy
    r = _drill(proxy, state, "--simulate", "--outage", "2")
    assert r.returncode == 0, r.stdout + r.stderr + proxy.log()[-3000:]
    text = r.stdout
    assert "tdsgate drill failover --simulate" in text and "SAFETY OK" in text, text
    # The primary went away inside tdsgate and came back; the failover group never moved.
    timeline = next(line for line in text.splitlines() if "primary timeline" in line)
    assert "none" in timeline and timeline.rstrip().endswith("east"), timeline
    assert "disabling 'east' in tdsgate" in r.stderr, r.stderr
    with urllib.request.urlopen(deployment.data["control_url"] + "/emulator/state", timeout=10) as resp:
        groups = json.load(resp)["failover_groups"]
    assert [g["primary_server"] for g in groups if g["name"] == "fog-app"] == ["sqlemu-east"], groups


def test_forced_failover_reports_and_fails_back(drill_proxy):
    proxy, state = drill_proxy
    r = _drill(proxy, state, "--forced", "--failback", "--json")
    assert r.returncode == 0, r.stdout + r.stderr + proxy.log()[-3000:]
    phases = json.loads(r.stdout)
    _check_recovered(phases["failover"], "west", 2 * PROBE_INTERVAL_S + 4)
    _check_recovered(phases["failback"], "east", 2 * PROBE_INTERVAL_S + 4)


def test_drill_explains_what_it_cannot_do(drill_proxy):
    proxy, state = drill_proxy
    r = _drill(proxy, state, "--planned", "--cluster", "nope", timeout=30)
    assert r.returncode == 2 and "no cluster named 'nope'" in r.stderr, r.stderr
    r = _drill(proxy, state, "--simulate", "--failback", timeout=30)
    assert r.returncode != 0 and "--failback goes with --planned or --forced" in r.stderr, r.stderr
