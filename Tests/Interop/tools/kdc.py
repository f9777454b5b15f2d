#!/usr/bin/env python3
"""A throw-away MIT Kerberos realm on loopback, for tdsgate's Kerberos tests.

Used by the Swift tests (Tests/KerberosTests, through the CLI) and by pytest (import it).
Needs Debian's krb5-kdc, krb5-admin-server (kadmin.local) and krb5-user (kinit, ktutil).

CLI (every command prints one JSON object on stdout; errors go to stderr, exit 1):
  kdc.py up      --dir D [--service-port P] [--realm R] [--clockskew S]
                 creates the realm in D (if not there yet), starts krb5kdc and kinits the
                 users: {krb5_config, kdc_profile, keytab, realm, users:{name:{password,
                 ccache}}, services:[...], kdc_port, pid, dir}
  kdc.py down    --dir D                     stops that KDC (bounded wait, then SIGKILL)
  kdc.py kinit   --dir D --user U [--lifetime 2s] [--ccache FILE:path]
  kdc.py addprinc --dir D --principal P [--password PW] [--max-life "3 seconds"]
                 (no --password: random key, as for a service)
  kdc.py ktadd   --dir D --keytab PATH --principal P [--principal P2 ...] [--rekey]
                 exports the current keys; --rekey gives the principals new random keys
                 (kvno + 1) first, so keytabs exported earlier now hold a wrong key
  kdc.py stretch-ccache --ccache PATH [--seconds 3600]
                 rewrites the client-side end times in a FILE ccache (they are not
                 protected: the real end time is inside the encrypted ticket), so a
                 client keeps using tickets the KDC let expire -> AP-REQs with an
                 expired ticket but a fresh authenticator, for "ticket expired" tests
  kdc.py wrongkey --dir D --keytab PATH --principal P [--kvno N]
                 writes a keytab for P whose key is derived from a random password,
                 with the kvno the KDC uses (or N): the "same kvno, wrong key" case

Module: `with TestKDC(dir, service_port=1433) as kdc: kdc.kinit("alice")`, or
`kdc = up(dir, 1433)` / `down(dir)`. A TestKDC started from Python is stopped on
`__exit__`, `stop()` or at interpreter exit; one started by the CLI `up` keeps running
(own session, pid in D/krb5kdc.pid) until `down`.

Why the settings in krb5.conf: no DNS at all (dns_lookup_*, rdns,
dns_canonicalize_hostname = false) so "MSSQLSvc/localhost:P" stays exactly that; a
[domain_realm] entry for localhost and 127.0.0.1 so host-based names find the realm;
ignore_acceptor_hostname so an acceptor keytab with several MSSQLSvc entries accepts any
of them; clockskew 2 s (default 300 s) so the expired-ticket and clock-skew tests finish
in seconds.
"""

from __future__ import annotations

import argparse
import atexit
import json
import os
import secrets
import signal
import socket
import subprocess
import sys
import time
from typing import Any

DEFAULT_REALM = "TDSGATE.TEST"
USERS = {"alice": "Alice-Pw-1", "bob": "Bob-Pw-2"}
SHORT_LIVED_USER = "shortlived"   # max life 3 s: for expired-ticket tests
STATE_FILE = "kdc.json"
ENCTYPES = "aes256-cts-hmac-sha1-96:normal aes128-cts-hmac-sha1-96:normal"


class KDCError(RuntimeError):
    pass


def _need(tool: str) -> str:
    for d in ("/usr/sbin", "/usr/bin", "/sbin", "/bin"):
        p = os.path.join(d, tool)
        if os.access(p, os.X_OK):
            return p
    raise KDCError(f"{tool} not found: apt-get install -y krb5-kdc krb5-admin-server krb5-user")


def _free_port() -> int:
    """A loopback port free for both TCP and UDP (the KDC listens on both)."""
    for _ in range(50):
        t = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
        t.bind(("127.0.0.1", 0))
        port = t.getsockname()[1]
        u = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
        try:
            u.bind(("127.0.0.1", port))
            return port
        except OSError:
            continue
        finally:
            u.close()
            t.close()
    raise KDCError("no free loopback port")


class TestKDC:
    __test__ = False  # not a pytest test class

    def __init__(self, directory: str, service_port: int = 1433, realm: str = DEFAULT_REALM,
                 clockskew: int = 2, detach: bool = False) -> None:
        self.dir = os.path.abspath(directory)
        self.service_port = service_port
        self.realm = realm
        self.clockskew = clockskew
        self.detach = detach
        self.kdc_port = 0
        self.proc: subprocess.Popen[bytes] | None = None
        self.pid = 0
        self.users: dict[str, dict[str, str]] = {}
        self.services = [
            f"MSSQLSvc/localhost:{service_port}",
            "MSSQLSvc/localhost",
            f"MSSQLSvc/127.0.0.1:{service_port}",
        ]

    # ---- paths and environment ------------------------------------------------------
    @property
    def krb5_config(self) -> str:
        return os.path.join(self.dir, "krb5.conf")

    @property
    def kdc_profile(self) -> str:
        return os.path.join(self.dir, "kdc.conf")

    @property
    def keytab(self) -> str:
        return os.path.join(self.dir, "service.keytab")

    @property
    def pid_file(self) -> str:
        return os.path.join(self.dir, "krb5kdc.pid")

    def ccache_for(self, user: str) -> str:
        return "FILE:" + os.path.join(self.dir, f"ccache-{user}")

    def env(self, ccache: str | None = None) -> dict[str, str]:
        """Environment for krb5 tools and for drivers that should use this realm."""
        e = dict(os.environ)
        e["KRB5_CONFIG"] = self.krb5_config
        e["KRB5_KDC_PROFILE"] = self.kdc_profile
        if ccache:
            e["KRB5CCNAME"] = ccache
        return e

    def _run(self, argv: list[str], stdin: str | None = None, timeout: float = 30,
             env: dict[str, str] | None = None) -> str:
        r = subprocess.run(argv, input=stdin, capture_output=True, text=True,
                           timeout=timeout, env=env or self.env())
        if r.returncode != 0:
            raise KDCError(f"{' '.join(argv[:3])} failed ({r.returncode}): "
                           f"{r.stderr.strip() or r.stdout.strip()}")
        return r.stdout

    def kadmin(self, query: str) -> str:
        out = self._run([_need("kadmin.local"), "-r", self.realm, "-q", query])
        return out

    # ---- realm creation ---------------------------------------------------------------
    def _write_configs(self) -> None:
        r, d, p = self.realm, self.dir, self.kdc_port
        with open(self.krb5_config, "w") as f:
            f.write(f"""[libdefaults]
    default_realm = {r}
    dns_lookup_kdc = false
    dns_lookup_realm = false
    rdns = false
    dns_canonicalize_hostname = false
    ignore_acceptor_hostname = true
    clockskew = {self.clockskew}
    forwardable = false
    default_ccache_name = FILE:{d}/ccache-default

[realms]
    {r} = {{
        kdc = 127.0.0.1:{p}
        kdc = tcp/127.0.0.1:{p}
    }}

[domain_realm]
    localhost = {r}
    .localhost = {r}
    127.0.0.1 = {r}
""")
        with open(self.kdc_profile, "w") as f:
            f.write(f"""[kdcdefaults]
    kdc_listen = 127.0.0.1:{p}
    kdc_tcp_listen = 127.0.0.1:{p}

[realms]
    {r} = {{
        database_name = {d}/db/principal
        key_stash_file = {d}/stash
        acl_file = {d}/kadm5.acl
        kdc_listen = 127.0.0.1:{p}
        kdc_tcp_listen = 127.0.0.1:{p}
        max_life = 10h 0m 0s
        max_renewable_life = 0
        supported_enctypes = {ENCTYPES}
    }}

[logging]
    kdc = FILE:{d}/kdc.log
""")
        with open(os.path.join(d, "kadm5.acl"), "w") as f:
            f.write("")

    def create(self) -> None:
        os.makedirs(os.path.join(self.dir, "db"), exist_ok=True)
        self.kdc_port = _free_port()
        self._write_configs()
        self._run([_need("kdb5_util"), "create", "-s", "-r", self.realm,
                   "-P", secrets.token_hex(16)])
        for user, pw in USERS.items():
            self.kadmin(f"addprinc -pw {pw} {user}")
            self.users[user] = {"password": pw, "ccache": self.ccache_for(user)}
        pw = "Short-Pw-3"
        self.kadmin(f'addprinc -pw {pw} -maxlife "3 seconds" {SHORT_LIVED_USER}')
        self.users[SHORT_LIVED_USER] = {"password": pw, "ccache": self.ccache_for(SHORT_LIVED_USER)}
        for svc in self.services:
            self.kadmin(f"addprinc -randkey {svc}")
        self.export_keytab(self.keytab, self.services)

    # ---- principals and keytabs -------------------------------------------------------
    def add_principal(self, name: str, password: str | None = None,
                      max_life: str | None = None) -> None:
        opts = f'-maxlife "{max_life}" ' if max_life else ""
        cred = f"-pw {password}" if password else "-randkey"
        self.kadmin(f"addprinc {opts}{cred} {name}")
        if password and "/" not in name:
            self.users[name] = {"password": password, "ccache": self.ccache_for(name)}
            self._save_state()

    def export_keytab(self, path: str, principals: list[str], rekey: bool = False) -> str:
        """Write the principals' keys to `path` (appending to an existing keytab file).
        rekey=True first gives them new random keys (kvno + 1)."""
        path = os.path.abspath(path)
        flag = "" if rekey else "-norandkey "
        self.kadmin(f"ktadd -k {path} {flag}{' '.join(principals)}")
        return path

    def wrong_key_keytab(self, path: str, principal: str, kvno: int | None = None) -> str:
        """A keytab for `principal` with the KDC's kvno but a key nobody else has."""
        if kvno is None:
            out = self.kadmin(f"getprinc {principal}")
            kvno = 1
            for line in out.splitlines():
                if line.strip().startswith("Key: vno"):
                    kvno = int(line.split("vno", 1)[1].split(",")[0])
                    break
        full = principal if "@" in principal else f"{principal}@{self.realm}"
        path = os.path.abspath(path)
        script = "\n".join(
            f"addent -password -p {full} -k {kvno} -e {e.split(':')[0]}\n{secrets.token_hex(12)}"
            for e in ENCTYPES.split()
        ) + f"\nwkt {path}\nquit\n"
        self._run([_need("ktutil")], stdin=script)
        return path

    def kinit(self, user: str, lifetime: str | None = None, ccache: str | None = None) -> str:
        info = self.users.get(user)
        if info is None:
            raise KDCError(f"unknown user {user}")
        cc = ccache or info["ccache"]
        argv = [_need("kinit"), "-c", cc]
        if lifetime:
            argv += ["-l", lifetime]
        argv.append(f"{user}@{self.realm}")
        self._run(argv, stdin=info["password"] + "\n")
        return cc

    # ---- KDC process ------------------------------------------------------------------
    def start(self, kinit_users: bool = True) -> "TestKDC":
        if os.path.exists(os.path.join(self.dir, STATE_FILE)):
            self._load_state()
            if self._alive():
                return self
        else:
            self.create()
        log = open(os.path.join(self.dir, "krb5kdc.stdout"), "ab")
        self.proc = subprocess.Popen(
            [_need("krb5kdc"), "-n", "-r", self.realm], env=self.env(),
            stdin=subprocess.DEVNULL, stdout=log, stderr=log,
            start_new_session=True)
        log.close()
        self.pid = self.proc.pid
        with open(self.pid_file, "w") as f:
            f.write(f"{self.pid}\n")
        if not self.detach:
            atexit.register(self.stop)
        deadline = time.monotonic() + 10
        while True:
            if self.proc.poll() is not None:
                raise KDCError(f"krb5kdc exited ({self.proc.returncode}): {self._log_tail()}")
            try:
                socket.create_connection(("127.0.0.1", self.kdc_port), timeout=0.5).close()
                break
            except OSError:
                if time.monotonic() > deadline:
                    self.stop()
                    raise KDCError(f"krb5kdc not listening on {self.kdc_port} after 10 s: "
                                   f"{self._log_tail()}")
                time.sleep(0.05)
        self._save_state()
        if kinit_users:
            for user in USERS:
                self.kinit(user)
        return self

    def _log_tail(self) -> str:
        out = []
        for name in ("krb5kdc.stdout", "kdc.log"):
            try:
                with open(os.path.join(self.dir, name), errors="replace") as f:
                    out.append(f.read()[-800:])
            except OSError:
                pass
        return " | ".join(out)

    def _alive(self) -> bool:
        if not self.pid:
            return False
        try:
            with open(f"/proc/{self.pid}/cmdline", "rb") as f:
                return b"krb5kdc" in f.read()
        except OSError:
            return False

    def stop(self) -> None:
        if not self.pid or not self._alive():
            self.pid = 0
            return
        try:
            os.kill(self.pid, signal.SIGTERM)
        except ProcessLookupError:
            pass
        deadline = time.monotonic() + 5
        while self._alive() and time.monotonic() < deadline:
            if self.proc is not None:
                try:
                    self.proc.wait(timeout=0.1)
                except subprocess.TimeoutExpired:
                    pass
            else:
                time.sleep(0.1)
        if self._alive():
            try:
                os.kill(self.pid, signal.SIGKILL)
            except ProcessLookupError:
                pass
            if self.proc is not None:
                self.proc.wait(timeout=5)
        self.pid = 0
        try:
            os.unlink(self.pid_file)
        except OSError:
            pass

    def __enter__(self) -> "TestKDC":
        return self.start()

    def __exit__(self, *exc: object) -> None:
        self.stop()

    # ---- state shared between CLI invocations -----------------------------------------
    def info(self) -> dict[str, Any]:
        return {
            "dir": self.dir, "krb5_config": self.krb5_config, "kdc_profile": self.kdc_profile,
            "keytab": self.keytab, "realm": self.realm, "users": self.users,
            "services": self.services, "kdc_port": self.kdc_port, "pid": self.pid,
            "service_port": self.service_port, "clockskew": self.clockskew,
        }

    def _save_state(self) -> None:
        with open(os.path.join(self.dir, STATE_FILE), "w") as f:
            json.dump(self.info(), f, indent=2)

    def _load_state(self) -> None:
        with open(os.path.join(self.dir, STATE_FILE)) as f:
            s = json.load(f)
        self.realm, self.kdc_port, self.pid = s["realm"], s["kdc_port"], s["pid"]
        self.users, self.services = s["users"], s["services"]
        self.service_port, self.clockskew = s["service_port"], s["clockskew"]


def stretch_ccache(path: str, seconds: int = 3600) -> int:
    """Sets endtime (and renew_till when set) of every credential in a FILE ccache
    (format 0x0503/0x0504) to now + seconds. Returns how many credentials changed."""
    import struct
    path = path[5:] if path.startswith("FILE:") else path
    data = bytearray(open(path, "rb").read())
    if data[:2] not in (b"\x05\x03", b"\x05\x04"):
        raise KDCError(f"{path}: not a FILE ccache version 3/4")
    pos = 2
    if data[:2] == b"\x05\x04":
        (hlen,) = struct.unpack_from(">H", data, pos)
        pos += 2 + hlen

    def u32() -> int:
        nonlocal pos
        (v,) = struct.unpack_from(">I", data, pos)
        pos += 4
        return v

    def octets() -> None:
        nonlocal pos
        n = u32()  # (not `pos += u32()`: that would read pos before u32 moves it)
        pos += n

    def principal() -> None:
        nonlocal pos
        pos += 4  # name type
        count = u32()
        octets()  # realm
        for _ in range(count):
            octets()

    principal()  # default principal
    end = int(time.time()) + seconds
    changed = 0
    while pos < len(data):
        principal()
        principal()
        pos += 2  # keyblock enctype
        octets()  # key
        times = pos  # authtime, starttime, endtime, renew_till
        struct.pack_into(">I", data, times + 8, end)
        (renew,) = struct.unpack_from(">I", data, times + 12)
        if renew:
            struct.pack_into(">I", data, times + 12, end)
        pos += 16 + 1 + 4  # times, is_skey, flags
        for _ in range(u32()):  # addresses
            pos += 2
            octets()
        for _ in range(u32()):  # authdata
            pos += 2
            octets()
        octets()  # ticket
        octets()  # second ticket
        changed += 1
    with open(path, "wb") as f:
        f.write(data)
    return changed


def load(directory: str) -> TestKDC:
    kdc = TestKDC(directory, detach=True)
    if not os.path.exists(os.path.join(kdc.dir, STATE_FILE)):
        raise KDCError(f"no realm in {kdc.dir} (run `up` first)")
    kdc._load_state()
    return kdc


def up(directory: str, service_port: int = 1433, realm: str = DEFAULT_REALM,
       clockskew: int = 2, detach: bool = False) -> TestKDC:
    os.makedirs(directory, exist_ok=True)
    return TestKDC(directory, service_port, realm, clockskew, detach).start()


def down(directory: str) -> None:
    try:
        kdc = load(directory)
    except KDCError:
        return
    kdc.stop()
    kdc._save_state()


def main(argv: list[str]) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    sub = ap.add_subparsers(dest="cmd", required=True)
    p = sub.add_parser("up")
    p.add_argument("--dir", required=True)
    p.add_argument("--service-port", type=int, default=1433)
    p.add_argument("--realm", default=DEFAULT_REALM)
    p.add_argument("--clockskew", type=int, default=2)
    p = sub.add_parser("down")
    p.add_argument("--dir", required=True)
    p = sub.add_parser("kinit")
    p.add_argument("--dir", required=True)
    p.add_argument("--user", required=True)
    p.add_argument("--lifetime")
    p.add_argument("--ccache")
    p = sub.add_parser("addprinc")
    p.add_argument("--dir", required=True)
    p.add_argument("--principal", required=True)
    p.add_argument("--password")
    p.add_argument("--max-life")
    p = sub.add_parser("ktadd")
    p.add_argument("--dir", required=True)
    p.add_argument("--keytab", required=True)
    p.add_argument("--principal", action="append", required=True)
    p.add_argument("--rekey", action="store_true")
    p = sub.add_parser("stretch-ccache")
    p.add_argument("--ccache", required=True)
    p.add_argument("--seconds", type=int, default=3600)
    p = sub.add_parser("wrongkey")
    p.add_argument("--dir", required=True)
    p.add_argument("--keytab", required=True)
    p.add_argument("--principal", required=True)
    p.add_argument("--kvno", type=int)
    a = ap.parse_args(argv)
    try:
        if a.cmd == "up":
            kdc = up(a.dir, a.service_port, a.realm, a.clockskew, detach=True)
            out: dict[str, Any] = kdc.info()
        elif a.cmd == "stretch-ccache":
            out = {"credentials": stretch_ccache(a.ccache, a.seconds)}
        elif a.cmd == "down":
            down(a.dir)
            out = {"stopped": True}
        else:
            kdc = load(a.dir)
            if a.cmd == "kinit":
                out = {"ccache": kdc.kinit(a.user, a.lifetime, a.ccache)}
            elif a.cmd == "addprinc":
                kdc.add_principal(a.principal, a.password, a.max_life)
                out = {"principal": a.principal}
            elif a.cmd == "ktadd":
                out = {"keytab": kdc.export_keytab(a.keytab, a.principal, a.rekey)}
            else:
                out = {"keytab": kdc.wrong_key_keytab(a.keytab, a.principal, a.kvno)}
    except (KDCError, subprocess.TimeoutExpired, OSError) as e:
        print(f"kdc.py {a.cmd}: {e}", file=sys.stderr)
        return 1
    print(json.dumps(out))
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
