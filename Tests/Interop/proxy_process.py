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
