"""Adds a session recorded by `tdsgate demo --capture-dir DIR` (the emulator's decrypted
view of what a driver sent, so TLS, login-only and strict sessions too) to Fixtures/,
with its index.json entry decoded by tdsdecode.py.

    python import_capture.py CAPTURE.hex --driver D --version V --scenario S --note TEXT
"""

from __future__ import annotations

import argparse
import datetime as _dt
import json
import os
import sys

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import tdsdecode  # noqa: E402

FIXTURES = os.path.join(os.path.dirname(os.path.abspath(__file__)), "..", "..", "..", "Fixtures")


def main() -> int:
    ap = argparse.ArgumentParser()
    ap.add_argument("capture")
    ap.add_argument("--driver", required=True)
    ap.add_argument("--version", required=True)
    ap.add_argument("--scenario", required=True)
    ap.add_argument("--note", required=True)
    a = ap.parse_args()
    _, packets = tdsdecode.read_fixture(a.capture)
    name = f"{a.driver}-{a.scenario}.hex"
    with open(os.path.join(FIXTURES, name), "w") as f:
        f.write(f"# driver: {a.driver} ({a.version})\n")
        f.write(f"# scenario: {a.scenario}: {a.note}\n")
        f.write(f"# captured: {_dt.date.today().isoformat()} by tdsgate demo --capture-dir "
                "(the emulator's decrypted view of the session)\n")
        f.write("# credentials are made-up test values: user 'fixture_user' password 'Fixture-Pa55!' "
                "database 'appdb'\n")
        f.write("# one client->server TDS packet per line, header included, in order sent\n")
        for p in packets:
            f.write(p.hex() + "\n")
    index_path = os.path.join(FIXTURES, "index.json")
    index = json.load(open(index_path))
    index = [e for e in index if e["file"] != name]
    index.append({"file": name, "driver": a.driver, "driver_version": a.version, "scenario": a.scenario,
                  "description": a.note, "client_completed": False,
                  "credentials": {"user": "fixture_user", "password": "Fixture-Pa55!", "database": "appdb",
                                  "note": "made-up test values"},
                  "messages": tdsdecode.decode_packets(packets)})
    with open(index_path, "w") as f:
        json.dump(index, f, indent=1)
        f.write("\n")
    print(f"added {name}: {len(packets)} packets")
    return 0


if __name__ == "__main__":
    sys.exit(main())
