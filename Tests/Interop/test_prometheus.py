"""Configs/prometheus and Configs/grafana against a real Prometheus (Debian's `prometheus`)
scraping the demo's tdsgate: the rules pass `promtool check rules` and their unit tests,
every metric they and the dashboard name is one tdsgate exports, and every rule and every
dashboard query evaluates through Prometheus's HTTP API without error."""

from __future__ import annotations

import json
import re
import subprocess
import time
import urllib.error
import urllib.parse
import urllib.request
from pathlib import Path

import pytds
import pytest
import yaml

import conftest
import interop
from proxy_process import free_ports

PROM_DIR = interop.ROOT / "Configs" / "prometheus"
RULES = PROM_DIR / "tdsgate-rules.yaml"
DASHBOARD = interop.ROOT / "Configs" / "grafana" / "tdsgate.json"
METRICS_SOURCE = interop.ROOT / "Sources" / "Gateway" / "Admin" / "GatewayMetrics.swift"
# What Grafana puts in for its variables when the test evaluates the dashboard's queries.
GRAFANA_VARIABLES = {"$__rate_interval": "1m", "$__interval": "15s", "$__range": "5m", "$job": ".*", "$instance": ".*"}


def test_rules_pass_promtool():
    check = subprocess.run(["promtool", "check", "rules", str(RULES)], capture_output=True, text=True, timeout=60)
    assert check.returncode == 0, check.stdout + check.stderr
    assert "SUCCESS" in check.stdout
    unit = subprocess.run(["promtool", "test", "rules", "tdsgate-rules.test.yaml"], cwd=PROM_DIR,
                          capture_output=True, text=True, timeout=60)
    assert unit.returncode == 0, unit.stdout + unit.stderr


def _rule_exprs() -> list[tuple[str, str]]:
    doc = yaml.safe_load(RULES.read_text())
    return [(r.get("record") or r["alert"], r["expr"]) for g in doc["groups"] for r in g["rules"]]


def _dashboard_exprs() -> list[tuple[str, str]]:
    dash = json.loads(DASHBOARD.read_text())
    out = []
    for p in dash["panels"]:
        for t in p.get("targets", []):
            out.append((f"panel {p['id']} {p['title']} {t['refId']}", t["expr"]))
    for a in dash["annotations"]["list"]:
        out.append((f"annotation {a['name']}", a["expr"]))
    return out


def _grafana(expr: str) -> str:
    for k in sorted(GRAFANA_VARIABLES, key=len, reverse=True):
        expr = expr.replace(k, GRAFANA_VARIABLES[k])
    assert "$" not in expr, expr
    return expr


def _exported_metrics() -> set[str]:
    return set(re.findall(r'"(tdsgate_[a-z_]+)": "', METRICS_SOURCE.read_text()))


def test_every_metric_named_is_one_tdsgate_exports():
    exported = _exported_metrics()
    assert len(exported) >= 15
    recorded = {name for name, _ in _rule_exprs() if name.startswith("tdsgate:")}
    dash = json.loads(DASHBOARD.read_text())
    variable_queries = [v["definition"] for v in dash["templating"]["list"] if v["type"] == "query"]
    for where, expr in _rule_exprs() + _dashboard_exprs() + [("variable", q) for q in variable_queries]:
        for name in re.findall(r"\btdsgate[_:][a-z_:0-9]+", expr):
            if ":" in name:
                assert name in recorded, (where, name)
                continue
            base = re.sub(r"_(bucket|sum|count)$", "", name)
            assert name in exported or base in exported, f"{where}: {name} is not a tdsgate metric"


class Prometheus:
    def __init__(self, work: Path, target: str):
        self.port = free_ports(1)[0]
        self.url = f"http://127.0.0.1:{self.port}"
        config = work / "prometheus.yml"
        config.write_text(yaml.safe_dump({
            "global": {"scrape_interval": "1s", "evaluation_interval": "1s"},
            "rule_files": [str(RULES)],
            "scrape_configs": [{"job_name": "tdsgate", "static_configs": [{"targets": [target]}]}],
        }))
        self.log_path = work / "prometheus.log"
        self._log = open(self.log_path, "w")
        self.proc = subprocess.Popen(
            ["prometheus", f"--config.file={config}", f"--storage.tsdb.path={work / 'data'}",
             f"--web.listen-address=127.0.0.1:{self.port}", "--storage.tsdb.retention.time=1h"],
            stdout=self._log, stderr=subprocess.STDOUT, stdin=subprocess.DEVNULL, start_new_session=True)

    def api(self, path: str, **params) -> dict:
        url = f"{self.url}/api/v1/{path}" + ("?" + urllib.parse.urlencode(params) if params else "")
        with urllib.request.urlopen(url, timeout=10) as r:
            return json.load(r)

    def query(self, expr: str) -> dict:
        try:
            return self.api("query", query=expr)
        except urllib.error.HTTPError as e:  # 400 with the parse or evaluation error
            return json.loads(e.read() or b"{}") | {"status": "error"}

    def wait(self, what: str, ok, timeout: float = 60):
        deadline = time.monotonic() + timeout
        last = None
        while time.monotonic() < deadline:
            assert self.proc.poll() is None, self.log_path.read_text()[-3000:]
            try:
                last = ok()
                if last:
                    return last
            except OSError as e:
                last = e
            time.sleep(0.25)
        pytest.fail(f"Prometheus: {what} within {timeout}s (last: {last!r})\n{self.log_path.read_text()[-3000:]}")

    def stop(self):
        conftest._stop(self.proc)
        self._log.close()


@pytest.fixture(scope="module")
def prometheus(deployment, tmp_path_factory):
    admin_url = deployment.data["proxy"]["admin_url"]
    assert admin_url, "the demo's proxy has no admin API"
    # One real session through the proxy first, so login, session, backend and token
    # series exist when the queries run.
    proxy, login = deployment.data["proxy"], deployment.data["proxy_logins"][0]
    with pytds.connect(server=proxy["host"], port=proxy["port"], database=login["database"], user=login["user"],
                       password=login["password"], login_timeout=15, timeout=10, autocommit=True) as conn:
        cur = conn.cursor()
        cur.execute("SELECT 1")
        assert cur.fetchall() == [(1,)]
    prom = Prometheus(tmp_path_factory.mktemp("prometheus"), urllib.parse.urlparse(admin_url).netloc)
    try:
        prom.wait("a successful scrape of tdsgate",
                  lambda: [r for r in prom.api("query", query='up{job="tdsgate"} == 1')["data"]["result"]])
        yield prom
    finally:
        prom.stop()


def test_prometheus_scrapes_tdsgate_and_evaluates_every_rule(prometheus):
    names = {name for name, _ in _rule_exprs()}

    def evaluated():
        groups = prometheus.api("rules")["data"]["groups"]
        rules = [r for g in groups for r in g["rules"]]
        done = [r for r in rules if not r.get("lastEvaluation", "").startswith("0001")]
        return rules if len(done) == len(names) and {r["name"] for r in rules} == names else None

    rules = prometheus.wait("one evaluation of every rule", evaluated, timeout=30)
    bad = [(r["name"], r.get("lastError")) for r in rules if r["health"] != "ok"]
    assert bad == [], bad
    for name, expr in _rule_exprs():
        result = prometheus.query(expr)
        assert result["status"] == "success" and not result.get("warnings"), (name, expr, result)
    # The scrape carries tdsgate's own figures, in the types the conventions ask for.
    meta = prometheus.api("metadata")["data"]
    assert meta["tdsgate_logins_total"][0]["type"] == "counter"
    assert meta["tdsgate_token_cache_hits_total"][0]["type"] == "counter"
    assert meta["tdsgate_login_duration_seconds"][0]["type"] == "histogram"
    assert meta["tdsgate_sessions"][0]["type"] == "gauge"
    assert not any(n.startswith("tdsgate_") and m[0]["type"] == "counter" and not n.endswith("_total") for n, m in meta.items())
    ok_logins = prometheus.query('tdsgate_logins_total{outcome="ok"}')["data"]["result"]
    assert ok_logins and float(ok_logins[0]["value"][1]) >= 1
    assert prometheus.query("tdsgate_login_duration_seconds_count")["data"]["result"]


def test_every_dashboard_query_evaluates(prometheus):
    exprs = _dashboard_exprs()
    assert len(exprs) >= 20
    for where, expr in exprs:
        result = prometheus.query(_grafana(expr))
        assert result["status"] == "success" and not result.get("warnings"), (where, expr, result)
    # The variables' label_values queries: job and instance come back for the scraped target.
    dash = json.loads(DASHBOARD.read_text())
    for v in (v for v in dash["templating"]["list"] if v["type"] == "query"):
        m = re.fullmatch(r"label_values\((.+), (\w+)\)", v["definition"])
        assert m, v["definition"]
        values = prometheus.api(f"label/{m.group(2)}/values", **{"match[]": _grafana(m.group(1))})["data"]
        assert values, v["definition"]
    # A panel that must show data right now does.
    primary = prometheus.query(_grafana(next(e for w, e in exprs if "Clusters with a primary" in w)))["data"]["result"]
    assert primary and all(float(r["value"][1]) == 1 for r in primary), primary
