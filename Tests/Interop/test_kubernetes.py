"""Configs/kubernetes: every manifest validates against Kubernetes 1.37's schema (strictly,
offline, with the schemas kubernetes-validate ships), the pieces agree with each other
(probes, ports, drain timing, workload identity, mounts), and the embedded tdsgate.yaml
passes `tdsgate check-config`."""

from __future__ import annotations

import datetime
import subprocess
import sys
from pathlib import Path

import yaml

import conftest
import interop

K8S = interop.ROOT / "Configs" / "kubernetes"
VERSION = "1.37.0"
VALIDATE = [str(Path(sys.executable).parent / "kubernetes-validate"), "--strict", "-k", VERSION]


def _docs() -> dict[str, dict]:
    out = {}
    for f in sorted(K8S.glob("*.yaml")):
        for doc in yaml.safe_load_all(f.read_text()):
            out[f"{doc['kind']}/{doc['metadata']['name']}"] = doc
    return out


def test_manifests_validate_strictly_against_a_recent_schema():
    files = sorted(str(f) for f in K8S.glob("*.yaml"))
    assert len(files) >= 6
    r = subprocess.run(VALIDATE + files, capture_output=True, text=True, timeout=120)
    assert r.returncode == 0, r.stdout + r.stderr
    passed = [line for line in (r.stdout + r.stderr).splitlines() if "passed" in line]
    assert len(passed) == len(_docs()), r.stdout + r.stderr


def test_the_validator_catches_a_misspelt_field(tmp_path):
    bad = tmp_path / "deployment.yaml"
    bad.write_text((K8S / "deployment.yaml").read_text().replace("terminationGracePeriodSeconds", "terminationGracePeriodSecond"))
    r = subprocess.run(VALIDATE + [str(bad)], capture_output=True, text=True, timeout=120)
    assert r.returncode != 0, r.stdout + r.stderr


def test_manifests_agree_with_each_other_and_with_tdsgate_yaml():
    docs = _docs()
    deployment, sa = docs["Deployment/tdsgate"], docs["ServiceAccount/tdsgate"]
    config = yaml.safe_load(docs["ConfigMap/tdsgate-config"]["data"]["tdsgate.yaml"])
    pod = deployment["spec"]["template"]
    container = pod["spec"]["containers"][0]
    ports = {p["name"]: p["containerPort"] for p in container["ports"]}
    assert ports["admin"] == config["admin"]["port"] and ports["tds"] == config["listeners"][0]["port"]
    assert container["readinessProbe"]["httpGet"] == {"path": "/readyz", "port": "admin"}
    assert container["livenessProbe"]["httpGet"] == {"path": "/healthz", "port": "admin"}
    # The pod is killed only after the preStop drain and tdsgate's own grace period.
    pre_stop = container["lifecycle"]["preStop"]["sleep"]["seconds"]
    assert pod["spec"]["terminationGracePeriodSeconds"] > pre_stop + config["shutdown_grace_seconds"]
    # Workload identity: the webhook acts on the pod label and the ServiceAccount's client ID.
    assert pod["metadata"]["labels"]["azure.workload.identity/use"] == "true"
    assert pod["spec"]["serviceAccountName"] == sa["metadata"]["name"]
    assert sa["metadata"]["annotations"]["azure.workload.identity/client-id"]
    assert {b["kind"] for b in config["backend_identities"]} == {"workload_identity"}
    # Non-root, read-only root, nothing extra.
    assert pod["spec"]["securityContext"]["runAsNonRoot"] is True
    sc = container["securityContext"]
    assert sc["readOnlyRootFilesystem"] is True and sc["allowPrivilegeEscalation"] is False and sc["capabilities"]["drop"] == ["ALL"]
    assert container["resources"]["requests"]["cpu"] and container["resources"]["requests"]["memory"]
    # Every file the config names lies under a mounted volume.
    mounts = [m["mountPath"] for m in container["volumeMounts"]]
    paths = [config["listeners"][0]["tls"]["certificate"], config["listeners"][0]["tls"]["key"],
             config["logins_file"], config["admin"]["bearer_token_file"]]
    assert container["args"][-1].startswith("/etc/tdsgate/config/")
    for p in paths + [container["args"][-1]]:
        assert any(p.startswith(m + "/") for m in mounts), (p, mounts)
    # The Service and the PodDisruptionBudget select these pods.
    labels = pod["metadata"]["labels"]
    for key in ("Service/tdsgate", "PodDisruptionBudget/tdsgate"):
        spec = docs[key]["spec"]
        selector = spec["selector"].get("matchLabels", spec["selector"])
        assert selector.items() <= labels.items(), key
    assert docs["Service/tdsgate"]["spec"]["ports"][0]["targetPort"] == "tds"


def _self_signed(tmp: Path) -> tuple[Path, Path]:
    from cryptography import x509
    from cryptography.hazmat.primitives import hashes, serialization
    from cryptography.hazmat.primitives.asymmetric import ec
    from cryptography.x509.oid import NameOID

    key = ec.generate_private_key(ec.SECP256R1())
    name = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, "tdsgate.example")])
    now = datetime.datetime.now(datetime.timezone.utc)
    cert = (x509.CertificateBuilder().subject_name(name).issuer_name(name).public_key(key.public_key())
            .serial_number(x509.random_serial_number()).not_valid_before(now - datetime.timedelta(minutes=5))
            .not_valid_after(now + datetime.timedelta(days=1))
            .add_extension(x509.SubjectAlternativeName([x509.DNSName("tdsgate.example")]), critical=False)
            .sign(key, hashes.SHA256()))
    crt, pem = tmp / "tls.crt", tmp / "tls.key"
    crt.write_bytes(cert.public_bytes(serialization.Encoding.PEM))
    pem.write_bytes(key.private_bytes(serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8, serialization.NoEncryption()))
    return crt, pem


def test_embedded_tdsgate_yaml_passes_check_config(tmp_path):
    docs = _docs()
    root = tmp_path / "etc-tdsgate"
    for sub in ("config", "secrets", "tls"):
        (root / sub).mkdir(parents=True)
    # The files the Deployment mounts, where it mounts them (under a stand-in for /etc/tdsgate).
    for name, value in docs["Secret/tdsgate-secrets"]["stringData"].items():
        (root / "secrets" / name).write_text(value)
    _self_signed(root / "tls")
    text = docs["ConfigMap/tdsgate-config"]["data"]["tdsgate.yaml"].replace("/etc/tdsgate/", f"{root}/")
    cfg = root / "config" / "tdsgate.yaml"
    cfg.write_text(text)
    r = subprocess.run([conftest._build["bin"], "check-config", str(cfg)], capture_output=True, text=True, timeout=60)
    assert r.returncode == 0, r.stdout + r.stderr
    # And check-config is not a rubber stamp: the same file without the token file fails.
    (root / "secrets" / "admin-token").unlink()
    r = subprocess.run([conftest._build["bin"], "check-config", str(cfg)], capture_output=True, text=True, timeout=60)
    assert r.returncode != 0 and "bearer_token_file" in r.stdout + r.stderr
