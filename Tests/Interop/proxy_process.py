"""Starting a `tdsgate run` of a test's own, in front of the demo's emulated deployment."""

from __future__ import annotations

import socket
import subprocess
import time
from pathlib import Path

import conftest


def free_ports(n: int) -> list[int]:
    socks, ports = [], []
    for _ in range(n):
        s = socket.socket()
        s.bind(("127.0.0.1", 0))
        socks.append(s)
        ports.append(s.getsockname()[1])
    for s in socks:
        s.close()
    return ports


def hash_password(password: str) -> str:
    return subprocess.run([conftest._build["bin"], "hash-password", "--iterations", "100000"],
                          input=password + "\n", capture_output=True, text=True, check=True).stdout.strip()


class ProxyProcess:
    """`tdsgate run --config <workdir>/tdsgate.yaml`, checked with check-config first."""

    def __init__(self, workdir: Path, config: str, wait_port: int, env: dict[str, str] | None = None):
        self.workdir = workdir
        self.config_path = workdir / "tdsgate.yaml"
        self.config_path.write_text(config)
        check = subprocess.run([conftest._build["bin"], "check-config", str(self.config_path)],
                               capture_output=True, text=True)
        assert check.returncode == 0, check.stdout + check.stderr
        self.log_path = workdir / "tdsgate.log"
        self._log = open(self.log_path, "w")
        self.proc = subprocess.Popen([conftest._build["bin"], "run", "--config", str(self.config_path)],
                                     stdout=self._log, stderr=subprocess.STDOUT, stdin=subprocess.DEVNULL,
                                     start_new_session=True, env=env)
        deadline = time.monotonic() + 30
        while time.monotonic() < deadline and not conftest._accepts("127.0.0.1", wait_port):
            assert self.proc.poll() is None, self.log()
            time.sleep(0.1)

    def log(self) -> str:
        return self.log_path.read_text(errors="replace")

    def stop(self) -> None:
        conftest._stop(self.proc)
        self._log.close()


def node(deployment, name: str) -> dict:
    return next(n for n in deployment.nodes if n["name"] == name)


def geo_proxy_config(deployment, work: Path, port: int, admin_port: int, *, logins: dict[str, str],
                     policy: list[str], probe_interval_s: float, max_write_wait_ms: int,
                     cluster_extra: str = "", client_encryption: str = "[required, strict]") -> str:
    """A `tdsgate run` config for the emulated failover group: cluster `orders` with the east
    primary (geo), its readable replica and the west geo-secondary, probed at
    `probe_interval_s`, sessions on a demoted primary closed at once; identity `mi` from the
    emulated IMDS; the admin API with the token in `work/admin.token`. `logins` maps name to
    password (hashed here); `policy` holds the policy rules' YAML flow mappings;
    `cluster_extra` is more YAML for the cluster (indented four spaces)."""
    state = Path(deployment.data["proxy"]["config_file"]).parent
    (work / "admin.token").write_text("admin-token-for-tests\n")
    east, replica, west = (node(deployment, n) for n in ("east-primary", "east-replica", "west-primary"))
    login_lines = "".join(f'  - {{name: {n}, password_hash: "{hash_password(p)}"}}\n' for n, p in logins.items())
    policy_lines = "".join(f"  - {rule}\n" for rule in policy)
    return f"""listeners:
  - name: main
    address: 127.0.0.1
    port: {port}
    tls: {{certificate: "{state}/proxy.pem", key: "{state}/proxy-key.pem"}}
    client_encryption: {client_encryption}
    cluster: orders
clusters:
  - name: orders
    databases: [appdb]
    ca_file: "{deployment.ca_file}"
    login_timeout_ms: 15000
    max_write_wait_ms: {max_write_wait_ms}
    demotion: immediately
    probe: {{identity: mi, interval_ms: {int(probe_interval_s * 1000)}, timeout_ms: 2000, rise: 1, fall: 2}}
    endpoints:
      - {{name: east, host: localhost, port: {east["port"]}, tls_name: localhost, geo: true}}
      - {{name: east-ro, host: localhost, port: {replica["port"]}, tls_name: localhost, role: replica}}
      - {{name: west, host: localhost, port: {west["port"]}, tls_name: localhost, geo: true}}
{cluster_extra}backend_identities:
  - {{name: mi, kind: imds, endpoint: "{deployment.imds_url}"}}
logins:
{login_lines}policy:
{policy_lines}admin: {{address: 127.0.0.1, port: {admin_port}, bearer_token_file: "{work}/admin.token"}}
"""


def gateway_cluster_yaml(dep, user: str, password_hash: str, rule: str) -> str:
    """The rest of a one-listener test config: cluster `orders` on the demo's east gateway,
    the demo's IMDS identity `mi`, one SQL login and a policy rule that lets it write."""
    gateway = node(dep, "east-gateway")
    return f"""clusters:
  - name: orders
    ca_file: "{dep.ca_file}"
    endpoints:
      - {{name: gw, host: localhost, port: {gateway["port"]}, tls_name: localhost}}
backend_identities:
  - {{name: mi, kind: imds, endpoint: "{dep.imds_url}"}}
logins:
  - {{name: {user}, password_hash: "{password_hash}"}}
policy:
  - {{name: {rule}, match: {{login: {user}}}, clusters: [orders], databases: ["*"], write: true, backend_identity: mi}}
"""
