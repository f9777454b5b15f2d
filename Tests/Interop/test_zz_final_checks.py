"""Runs after the other modules, over what the demo proxy wrote during the whole run (every
driver, refusal and statement the suite sent through it): the audit trail is JSON lines
with a start and an end for every session, each denied login with the rule that denied
it, masked statements, and no secret; the packet dump of every session holds no secret
either."""

from __future__ import annotations

import json
import time
from pathlib import Path

import pytest


def _events(path: Path) -> list[dict]:
    events = []
    for n, line in enumerate(path.read_text().splitlines(), 1):
        try:
            e = json.loads(line)
        except json.JSONDecodeError as err:
            pytest.fail(f"{path}:{n} is not JSON ({err}): {line[:200]}")
        assert list(e)[:2] == ["ts", "event"], f"{path}:{n}: fields out of order: {list(e)[:3]}"
        events.append(e)
    return events


def test_every_session_has_a_start_and_an_end(deployment):
    path = Path(deployment.data["proxy"]["audit_file"])
    # The trail is written off the event loop; give the last session ends a moment.
    deadline = time.monotonic() + 10
    while True:
        events = _events(path) if path.exists() else []
        starts = {e["session"] for e in events if e["event"] == "session_start"}
        ends = {e["session"] for e in events if e["event"] == "session_end"}
        if starts and starts <= ends or time.monotonic() > deadline:
            break
        time.sleep(0.5)
    assert len(starts) >= 20, f"expected the suite's sessions in {path}, found {len(starts)}"
    assert starts <= ends, f"sessions without an end: {sorted(starts - ends)[:10]}"
    kinds = {e["event"] for e in events}
    assert {"session_start", "policy_decision", "backend_chosen", "login_outcome", "session_end", "sql_batch"} <= kinds, kinds
    for e in (e for e in events if e["event"] == "session_end"):
        assert e["end_reason"] in {"client_closed", "backend_closed", "demoted", "drained", "shutdown", "error"}, e


def test_denied_logins_name_the_rule_and_statements_are_masked(deployment):
    events = _events(Path(deployment.data["proxy"]["audit_file"]))
    denied = [e for e in events if e["event"] == "policy_decision" and e["decision"] == "denied"]
    assert denied, "test_proxy.py refuses a principal no policy rule names: its decision must be in the trail"
    assert all(e.get("rule") and e.get("reason") for e in denied), denied[:3]
    refused = [e for e in events if e["event"] == "login_outcome" and e["outcome"] == "refused"]
    assert any(e.get("error_number") == 18456 for e in refused), refused[:3]
    batches = [e["text"] for e in events if e["event"] == "sql_batch"]
    assert any("tdsgate.rows(?)" in t for t in batches), batches[:20]
    assert not any("rows(20000)" in t for t in batches), "literals must be masked in the demo's trail"


def test_no_secret_in_the_audit_trail(deployment):
    text = Path(deployment.data["proxy"]["audit_file"]).read_text()
    for login in deployment.data["proxy_logins"]:
        assert login["password"] not in text
    for login in deployment.sql_logins:
        assert login["password"] not in text
    assert "eyJ0eXAi" not in text and "eyJhbGci" not in text, "a JWT appears in the audit trail"
    assert deployment.data["client_token_request"]["client_secret"] not in text


def _secrets(deployment) -> set[str]:
    secrets = {login["password"] for login in deployment.data["proxy_logins"]}
    secrets |= {login["password"] for login in deployment.sql_logins}
    secrets.add(deployment.data["client_token_request"]["client_secret"])
    return {s for s in secrets if s}


def test_no_secret_in_any_dump_of_the_run(deployment):
    """Every demo session of the run was dumped (conftest passes --dump): passwords in any
    encoding a file could hold them (UTF-8, UTF-16LE), client secrets and JWTs are absent."""
    root = Path(deployment.data["proxy"]["dump_dir"])
    files = [p for p in root.rglob("*") if p.is_file()]
    texts = [p for p in files if p.suffix == ".txt"]
    captures = [p for p in files if p.suffix == ".pcapng"]
    assert len(texts) >= 20 and captures, f"expected the run's sessions dumped in {root}: {len(texts)} text, {len(captures)} pcapng"
    needles = {}
    for secret in _secrets(deployment):
        needles[secret[:4] + "... (utf-8)"] = secret.encode()
        needles[secret[:4] + "... (utf-16le)"] = secret.encode("utf-16-le")
    for jwt in ("eyJ0eXAi", "eyJhbGci"):
        needles[jwt] = jwt.encode()
        needles[jwt + " (utf-16le)"] = jwt.encode("utf-16-le")
    found = [(str(p.relative_to(root)), name) for p in files for name, needle in needles.items() if needle in p.read_bytes()]
    assert not found, f"secrets in the dump: {found[:10]}"
    # The dump did see the logins (redacted): a LOGIN7 of a SQL login is in it.
    assert any("<redacted" in p.read_text(errors="replace") for p in texts[:200]), "no redacted LOGIN7 in the dump"
