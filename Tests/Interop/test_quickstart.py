"""The README's quick start, as a newcomer types it: `swift run tdsgate demo` (the session's
`deployment` fixture runs `tdsgate demo`), then every "Try this" command the demo printed,
taken from its printout (so the banner, the README and the commands cannot drift apart),
each run as printed with `swift run tdsgate` standing for the built binary. The drill on
the demo runs with only --config, --user and --planned; without a CA it can verify the
listener with, it stops with exit status 2 and names the certificate problem. Its HTML
report is opened in headless Chromium: a screenshot, and the SVG's elements measured in
the DOM.

The drills fail the demo's failover group over and back, so the session-wide deployment
ends with the east primary as every other module expects."""

from __future__ import annotations

import json
import os
import re
import select
import shlex
import signal
import subprocess
import time
import urllib.request
from pathlib import Path

import pytest

import conftest
import interop

ROOT = interop.ROOT
KINDS = ("query", "read-only query", "status", "drill", "dump")


def _banner(deployment) -> str:
    path = Path(deployment.log_path).with_suffix(".banner")
    deadline = time.monotonic() + 10
    while "Try this" not in (text := path.read_text(errors="replace")) and time.monotonic() < deadline:
        time.sleep(0.2)
    return text


def _try_this(banner: str) -> dict[str, str]:
    """The banner's "Try this" commands by kind (each line `    $ COMMAND`)."""
    lines = banner.split("Try this", 1)[1].split("\n\n", 1)[0].splitlines()
    commands = [line.strip()[2:] for line in lines if line.strip().startswith("$ ")]
    kinds = {}
    for c in commands:
        kind = ("read-only query" if "report-user" in c else "query") if "tsql" in c else \
            "status" if " status " in c else "drill" if " drill " in c else "dump" if " dump " in c else c
        kinds[kind] = c
    assert tuple(kinds) == KINDS, f"the banner's Try this list changed: {commands}"
    return kinds


@pytest.fixture(scope="module")
def commands(deployment):
    return _try_this(_banner(deployment))


def _env(**extra):
    # The drill must find its CA in the config, not in the environment.
    return interop.client_env(None, extra)


def _binary_for(command: str) -> str:
    assert "swift run tdsgate " in command or "tsql" in command, command
    return command.replace("swift run tdsgate ", shlex.quote(conftest._build["bin"]) + " ")


def _sh(command: str, cwd: Path, timeout: float, env=None) -> subprocess.CompletedProcess:
    return subprocess.run(["bash", "-c", _binary_for(command)], cwd=cwd, capture_output=True, text=True,
                          timeout=timeout, env=env or _env())


def _primary_server(deployment) -> str:
    with urllib.request.urlopen(deployment.data["control_url"] + "/emulator/state", timeout=10) as r:
        groups = json.load(r)["failover_groups"]
    return next(g["primary_server"] for g in groups if g["name"] == "fog-app")


def _drill_password(deployment) -> str:
    return next(l["password"] for l in deployment.data["proxy_logins"] if l["user"] == "app-user")


@pytest.fixture(scope="module", autouse=True)
def east_primary_afterwards(deployment):
    yield
    # A drill that failed half-way must not leave the session's deployment on west.
    if _primary_server(deployment) != "sqlemu-east":
        subprocess.run([conftest._build["bin"], "drill", "failover", "--config", deployment.data["proxy"]["config_file"],
                        "--user", "app-user", "--planned", "--baseline", "0", "--settle", "0"],
                       env=_env(TDSGATE_DRILL_PASSWORD=_drill_password(deployment)), capture_output=True, timeout=120)
    assert _primary_server(deployment) == "sqlemu-east"


def test_readme_quick_start_is_what_the_demo_prints(commands):
    readme = (ROOT / "README.md").read_text()
    section = readme.split("## Quick start", 1)[1].split("\n## ", 1)[0]
    blocks = re.findall(r"```\n(.*?)```", section, re.S)
    assert blocks[0].strip() == "swift run tdsgate demo", blocks
    typed = [line for line in blocks[1].splitlines() if line.strip()]
    assert len(typed) == len(KINDS), typed
    for kind, line in zip(KINDS, typed):
        # `<...>` in the README is what the demo fills in; everything else is typed as is.
        pattern = "".join(r"\S+?" if re.fullmatch(r"<[^>]+>", part) else re.escape(part)
                          for part in re.split(r"(<[^>]+>)", line))
        assert re.fullmatch(pattern, commands[kind]), f"README: {line}\ndemo:   {commands[kind]}"


def test_query(deployment, commands, tmp_path):
    r = _sh(commands["query"], tmp_path, 60)
    assert r.returncode == 0, r.stdout + r.stderr
    backend = deployment.data["proxy_logins"][0]["backend_identity"]
    assert re.search(rf"^sqlemu-east\s+{re.escape(backend)}\s*$", r.stdout, re.M), r.stdout + r.stderr


def test_read_only_query_lands_on_a_readable_secondary(commands, tmp_path):
    # Read-intent sessions take turns over the healthy secondaries: east-replica (server
    # sqlemu-east) and the west geo-secondary; both answer READ_ONLY, the primary never does.
    servers = set()
    for _ in range(2):
        r = _sh(commands["read-only query"], tmp_path, 60)
        assert r.returncode == 0, r.stdout + r.stderr
        found = re.search(r"^(sqlemu-east|sqlemu-west)\s+READ_ONLY\s*$", r.stdout, re.M)
        assert found, r.stdout + r.stderr
        servers.add(found.group(1))
    assert servers == {"sqlemu-east", "sqlemu-west"}, f"round robin over both secondaries, got {servers}"


def test_status_watch_redraws_until_ctrl_c(commands, tmp_path):
    p = subprocess.Popen(["bash", "-c", "exec " + _binary_for(commands["status"])], cwd=tmp_path, env=_env(),
                         stdout=subprocess.PIPE, stderr=subprocess.PIPE)
    out = ""
    try:
        deadline = time.monotonic() + 20
        while out.count("\x1b[H\x1b[2J") < 4 and time.monotonic() < deadline and p.poll() is None:
            if select.select([p.stdout], [], [], 0.5)[0]:
                out += os.read(p.stdout.fileno(), 65536).decode(errors="replace")
        assert p.poll() is None, "status --watch ended by itself: " + out + p.stderr.read().decode(errors="replace")
    finally:
        p.send_signal(signal.SIGINT)  # Ctrl-C
        p.wait(timeout=10)
    frames = out.split("\x1b[H\x1b[2J")[1:]
    assert len(frames) >= 4, out
    last = frames[-2]  # a whole frame (the last one may be cut)
    assert "tdsgate status" in last and "Ctrl-C" in last, last
    rows = {line.split()[1]: line.split() for line in last.splitlines() if line.startswith("orders ")}
    assert set(rows) == {"east", "east-replica", "west"}, last
    assert rows["east"][3:7] == ["UP", "enabled", "READ_WRITE", "yes"], last
    assert rows["east-replica"][5] == "READ_ONLY" and rows["west"][5] == "READ_ONLY", last


def test_dump_follow_shows_a_session(commands, tmp_path):
    marker = interop.unique("quickstart")
    follow = subprocess.Popen(["bash", "-c", _binary_for(commands["dump"]) + " --seconds 8"], cwd=tmp_path, env=_env(),
                              stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    time.sleep(1.5)
    query = commands["query"].replace("SELECT @@SERVERNAME, SUSER_SNAME()", f"SELECT '{marker}'")
    q = _sh(query, tmp_path, 60)
    out, err = follow.communicate(timeout=30)
    assert q.returncode == 0 and marker in q.stdout, q.stdout + q.stderr
    assert follow.returncode == 0, err
    session = next((line.split()[0] for line in out.splitlines() if marker in line), None)
    assert session and re.fullmatch(r"\[s\d+\]", session), out[-3000:]
    assert f"{session} # principal: app-user" in out, out[-3000:]
    assert "AppUser-Passw0rd!" not in out


def _drill(deployment, *args, timeout=150, cwd=None):
    cmd = [conftest._build["bin"], "drill", "failover", *args]
    return subprocess.run(cmd, capture_output=True, text=True, timeout=timeout, cwd=cwd,
                          env=_env(TDSGATE_DRILL_PASSWORD=_drill_password(deployment)))


def test_drill_with_only_config_user_and_planned(deployment):
    config = deployment.data["proxy"]["config_file"]
    r = _drill(deployment, "--config", config, "--user", "app-user", "--planned")
    assert r.returncode == 0, r.stdout + r.stderr
    assert re.search(r"^\s+primary\s+east -> west$", r.stdout, re.M), r.stdout
    assert "SAFETY OK" in r.stdout and _primary_server(deployment) == "sqlemu-west", r.stdout
    # The same again is the failback.
    r = _drill(deployment, "--config", config, "--user", "app-user", "--planned")
    assert r.returncode == 0, r.stdout + r.stderr
    assert re.search(r"^\s+primary\s+west -> east$", r.stdout, re.M), r.stdout
    assert _primary_server(deployment) == "sqlemu-east"


def test_drill_without_a_reachable_ca_names_the_certificate_problem(deployment, tmp_path):
    text = Path(deployment.data["proxy"]["config_file"]).read_text()
    no_ca = tmp_path / "no-ca.yaml"
    no_ca.write_text(re.sub(r"(?m)^\s+ca_file: .*\n", "", text))
    for mode in ("--planned", "--simulate"):
        r = _drill(deployment, "--config", str(no_ca), "--user", "app-user", mode, timeout=60)
        assert r.returncode == 2, r.stdout + r.stderr
        assert "TLS certificate" in r.stderr and "could not be verified" in r.stderr and "--ca-file" in r.stderr, r.stderr
        assert "leaking promise" not in r.stderr and "Fatal error" not in r.stderr, r.stderr
    r = _drill(deployment, "--config", deployment.data["proxy"]["config_file"], "--user", "app-user", "--planned",
               "--ca-file", str(tmp_path / "missing-ca.pem"), timeout=60)
    assert r.returncode == 2 and "missing-ca.pem (--ca-file) does not exist" in r.stderr, r.stderr
    assert _primary_server(deployment) == "sqlemu-east", "a drill that cannot verify the listener must not fail over"


@pytest.fixture(scope="module")
def banner_drill(deployment, commands, tmp_path_factory):
    """The banner's drill (planned, with failback and an HTML report), run as printed."""
    work = tmp_path_factory.mktemp("quickstart-drill")
    r = _sh(commands["drill"], work, 200)
    return r, work / "drill.html"


def test_banner_drill_fails_over_and_back(deployment, banner_drill):
    r, report = banner_drill
    assert r.returncode == 0, r.stdout + r.stderr
    assert "== failover ==" in r.stdout and "== failback ==" in r.stdout, r.stdout
    assert re.search(r"^\s+primary\s+east -> west$", r.stdout, re.M) and re.search(r"^\s+primary\s+west -> east$", r.stdout, re.M), r.stdout
    assert f"HTML report written to {report.name}" in r.stderr or f"HTML report written to drill.html" in r.stderr, r.stderr
    assert report.is_file() and _primary_server(deployment) == "sqlemu-east"


# Measures what Chromium laid out: run on a copy of the report, which itself has no script.
MEASURE = """<script>
const pick = (sel) => Array.from(document.querySelectorAll(sel)).map((e) => {
  const b = e.getBoundingClientRect(); return {w: b.width, h: b.height, key: e.dataset.marker || e.dataset.endpoint || ""};
});
const out = {svg: pick("svg.timeline"), primary: pick("rect.primary"), writes: pick("rect.bar.writes-ok"),
             reads: pick("rect.bar.reads-ok"), failed: pick("rect.bar.writes-failed, rect.bar.reads-failed"),
             markers: pick("rect.marker"), errors: pick("table.errors tr")};
const pre = document.createElement("pre"); pre.id = "boxes"; pre.textContent = JSON.stringify(out);
document.body.appendChild(pre);
</script>"""


def _chromium(*args, cwd):
    cmd = ["chromium", "--headless", "--no-sandbox", "--disable-gpu", "--hide-scrollbars",
           f"--user-data-dir={cwd / 'chromium-profile'}", *args]
    return subprocess.run(cmd, cwd=cwd, capture_output=True, text=True, timeout=120)


def test_html_report_renders_in_chromium(banner_drill):
    r, report = banner_drill
    assert r.returncode == 0 and report.is_file(), r.stderr
    work = report.parent
    html = report.read_text()
    assert "<script" not in html and "<link" not in html and "src=" not in html, "the report must be self-contained"
    shot = work / "drill.png"
    s = _chromium("--window-size=1100,2600", f"--screenshot={shot}", report.as_uri(), cwd=work)
    assert shot.is_file() and shot.stat().st_size > 20_000, s.stdout + s.stderr
    print(f"\n[quickstart] drill report screenshot: {shot}")
    measured = work / "measured.html"
    measured.write_text(html.replace("</body>", MEASURE + "\n</body>"))
    d = _chromium("--dump-dom", "--virtual-time-budget=3000", measured.as_uri(), cwd=work)
    found = re.search(r'<pre id="boxes">(.*?)</pre>', d.stdout, re.S)
    assert found, d.stdout[-2000:] + d.stderr[-2000:]
    boxes = json.loads(found.group(1).replace("&quot;", '"').replace("&amp;", "&"))
    assert len(boxes["svg"]) == 2, boxes["svg"]  # the failover and the failback
    for kind in ("svg", "primary", "writes", "reads", "markers"):
        assert boxes[kind] and all(b["w"] > 0 and b["h"] > 0 for b in boxes[kind]), (kind, boxes[kind])
    # Each phase: east then west (or back), four markers.
    assert {b["key"] for b in boxes["primary"]} >= {"east", "west"}, boxes["primary"]
    assert sorted(b["key"] for b in boxes["markers"]) == sorted(["failover-start", "detection", "new-primary", "first-write"] * 2), boxes["markers"]
