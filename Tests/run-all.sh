#!/usr/bin/env bash
# tdsgate: the single test command. Installs the real SQL Server drivers (Debian + PyPI),
# builds, runs the Swift tests, then the interop suite (pytest Tests/Interop).
# Idempotent; works on a fresh Debian 12 machine as root with CI=true and no stdin.
#   bash Tests/run-all.sh                  everything
#   bash Tests/run-all.sh --install-only   only the apt + venv part
set -euo pipefail
export DEBIAN_FRONTEND=noninteractive
cd "$(dirname "$0")/.."
ROOT="$(pwd)"
VENV="$ROOT/.venv-interop"
start=$(date +%s)
step() { echo "==> [$(( $(date +%s) - start ))s] $*"; }

# krb5-*: a throw-away MIT KDC for the Kerberos tests (Tests/Interop/tools/kdc.py) and kinit.
# systemd: `systemd-analyze verify` for Configs/systemd/tdsgate.service (test_lifecycle.py).
# chromium: renders the drill's HTML report headless (Tests/Interop/test_quickstart.py).
# prometheus: a real Prometheus and promtool for Configs/prometheus (Tests/Interop/test_prometheus.py).
APT_PKGS=(unixodbc libltdl7 freetds-bin tdsodbc tshark haproxy krb5-kdc krb5-admin-server krb5-user systemd chromium prometheus)
# pyopenssl: python-tds needs it for any TLS (cafile=, enc_login_only); python-tds 1.17
# calls X509.get_extension, which pyOpenSSL 25 removed, hence <25.
# kubernetes-validate: Configs/kubernetes against a recent Kubernetes schema (shipped with it, offline).
PY_PKGS=(mssql-python pyodbc python-tds "pyopenssl<25" pymssql pytest pytest-timeout kubernetes-validate pyyaml)

SUDO=""
if [ "$(id -u)" != 0 ]; then SUDO="sudo -n"; fi

# ---- 1. Debian packages --------------------------------------------------------------
missing=()
for p in "${APT_PKGS[@]}"; do
    if ! dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q "install ok installed"; then
        missing+=("$p")
    fi
done
if [ ${#missing[@]} -gt 0 ]; then
    step "apt-get install ${missing[*]}"
    echo "wireshark-common wireshark-common/install-setuid boolean false" | $SUDO debconf-set-selections
    $SUDO apt-get update -q
    $SUDO apt-get install -y -q --no-install-recommends -o Dpkg::Options::=--force-confdef \
        -o Dpkg::Options::=--force-confold "${missing[@]}" </dev/null
else
    step "apt packages already present"
fi
for p in "${APT_PKGS[@]}"; do
    printf '  %-14s %s\n' "$p" "$(dpkg-query -W -f='${Version}' "$p")"
done

# ---- 2. Python venv with the drivers -------------------------------------------------
if [ ! -x "$VENV/bin/python" ] || ! "$VENV/bin/python" -c 'import pip' 2>/dev/null; then
    step "creating $VENV"
    if ! python3 -c 'import ensurepip, venv' 2>/dev/null; then
        $SUDO apt-get update -q && $SUDO apt-get install -y -q python3-venv </dev/null
    fi
    rm -rf "$VENV"
    python3 -m venv "$VENV"
fi
step "pip install ${PY_PKGS[*]}"
# (a no-op without network traffic when everything is already satisfied)
"$VENV/bin/pip" install -q --disable-pip-version-check "${PY_PKGS[@]}" </dev/null
"$VENV/bin/python" - mssql-python pyodbc python-tds pyopenssl cryptography pymssql pytest \
    pytest-timeout mssql-python-odbc mssql-python-rs <<'PY'
import sys, importlib.metadata as md
for name in sys.argv[1:]:
    try:
        print(f"  {name:18s} {md.version(name)}")
    except md.PackageNotFoundError:
        print(f"  {name:18s} (not installed)")
PY

if [ "${1:-}" = "--install-only" ]; then step "install done"; exit 0; fi

# ---- 3. Swift build + tests ------------------------------------------------------------
step "swift build"
swift --version 2>&1 | head -1
swift build </dev/null
step "swift test"
set +e
swift test </dev/null
swift_rc=$?
set -e

# ---- 3b. Fuzzing: every decoder of outside bytes under libFuzzer + ASan --------------------
# (its own sanitized build in .build-fuzz; 15 s per target; fails on any crash)
step "fuzz (Tests/fuzz.sh)"
set +e
bash Tests/fuzz.sh --seconds "${TDSGATE_FUZZ_SECONDS:-15}" </dev/null
fuzz_rc=$?
set -e

# ---- 4. Interop suite: real drivers against the emulator (tdsgate demo) -------------
# (runs even when swift test failed, so both results are visible; the exit code is the
# first failure)
step "pytest Tests/Interop"
set +e
"$VENV/bin/python" -m pytest Tests/Interop -ra </dev/null
rc=$?
set -e
if [ "$rc" = 5 ]; then
    echo "pytest collected no tests: treating as failure" >&2
    rc=1
fi
if [ "$swift_rc" != 0 ]; then
    echo "swift test failed (exit $swift_rc)" >&2
    exit "$swift_rc"
fi
if [ "$fuzz_rc" != 0 ]; then
    echo "fuzzing failed (exit $fuzz_rc)" >&2
    exit "$fuzz_rc"
fi
exit "$rc"
