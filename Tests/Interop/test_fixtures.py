"""Fixtures/ stays consistent: every *.hex parses into whole TDS packets, index.json
matches what tools/tdsdecode.py decodes from the file, and the capture tool still works
with a real driver (pytds, quick) against its own loopback listener."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pytest

import interop

sys.path.insert(0, str(interop.HERE / "tools"))
import tdsdecode  # noqa: E402

FIXTURES = interop.ROOT / "Fixtures"
INDEX = json.loads((FIXTURES / "index.json").read_text())
FILES = sorted(p.name for p in FIXTURES.glob("*.hex"))


def test_index_lists_every_file():
    assert sorted(e["file"] for e in INDEX) == FILES


@pytest.mark.parametrize("entry", INDEX, ids=[e["file"] for e in INDEX])
def test_fixture_matches_index(entry):
    comments, packets = tdsdecode.read_fixture(str(FIXTURES / entry["file"]))
    assert any(c.startswith("driver:") for c in comments)
    assert any(c.startswith("scenario:") for c in comments)
    assert any(c.startswith("captured:") for c in comments)
    for p in packets:
        assert len(p) == int.from_bytes(p[2:4], "big"), "packet length field"
    decoded = json.loads(json.dumps(tdsdecode.decode_packets(packets), default=str))
    assert decoded == entry["messages"]
    types = [m["type"] for m in decoded]
    assert types[:2] == ["prelogin", "login7"], types
    login = decoded[1]["fields"]
    # The Rust-based core announces TDS 8.0 in LOGIN7 when the session is strict.
    expected_version = "0x08000000" if entry["driver"] == "mssql-python-rs" and "tds8" in entry["scenario"] else "0x74000004"
    assert login["tds_version"] == expected_version
    assert login["read_only_intent"] == ("readonly" in entry["scenario"])
    if "access-token" in entry["scenario"]:
        assert login["has_fedauth_token"] and login["user_name"] == ""
        assert 2 in login["feature_ids"]
        assert decoded[0]["fields"].get("fedauthrequired") == 1
    else:
        assert login["user_name"] == "fixture_user"
        assert login["password"] == "Fixture-Pa55!"
    if entry["scenario"].endswith("-large"):
        assert login["packet_count"] > 1
    if entry.get("client_completed", True):
        assert any(m["type"] in ("sql_batch", "rpc") for m in decoded[2:]), types


def test_capture_tool_end_to_end(tmp_path):
    tool = interop.HERE / "tools" / "capture_server.py"
    p = subprocess.run([sys.executable, str(tool), "capture", "--out", str(tmp_path),
                        "--only", "pytds-login-sql"], capture_output=True, text=True,
                       timeout=120, stdin=subprocess.DEVNULL)
    assert p.returncode == 0, p.stdout + p.stderr
    idx = json.loads((tmp_path / "index.json").read_text())
    assert [e["file"] for e in idx] == ["pytds-login-sql.hex"]
    types = [m["type"] for m in idx[0]["messages"]]
    assert types == ["prelogin", "login7", "sql_batch", "rpc"]
    assert idx[0]["messages"][2]["fields"]["text"] == "SELECT 1"
    assert idx[0]["messages"][3]["fields"]["proc_id"] == 10
