"""The image and the manifests fit together: fixtures and lock in the image, migrations as
their own step, a scrape job that finds the pods. (Schemas and Dockerfile rules are checked by
`make lint`: kubernetes-validate and hadolint.)"""

from __future__ import annotations

import re
from pathlib import Path
from typing import Any

import yaml

from cds.cli import build_parser

ROOT = Path(__file__).resolve().parents[2]
K8S = ROOT / "deploy" / "k8s"


def load(name: str) -> dict[str, Any]:
    data: dict[str, Any] = yaml.safe_load((K8S / name).read_text(encoding="utf-8"))
    return data


def container(manifest: dict[str, Any]) -> dict[str, Any]:
    spec = manifest["spec"]["template"]["spec"]
    found: dict[str, Any] = spec["containers"][0]
    return found


def env(manifest: dict[str, Any]) -> dict[str, Any]:
    return {e["name"]: e.get("value", e.get("valueFrom")) for e in container(manifest)["env"]}


def test_kustomization_lists_files_that_exist() -> None:
    resources = load("kustomization.yaml")["resources"]
    assert {"pdb.yaml", "networkpolicy.yaml"} <= set(resources)
    for name in resources:
        assert (K8S / name).is_file(), name


def test_pods_do_not_migrate_and_the_job_does() -> None:
    deployment, job = load("deployment.yaml"), load("migrate-job.yaml")
    assert env(deployment)["KAP_CDS_MIGRATE_ON_START"] == "false"
    args = container(job)["args"]
    assert args[:1] == ["kap-cds"]
    parsed = build_parser().parse_args(args[1:])  # a real command of this CLI
    assert parsed.func.__name__ == "cmd_db_upgrade"
    assert container(job)["image"] == container(deployment)["image"]
    assert env(job)["KAP_CDS_DATABASE_URL"] == env(deployment)["KAP_CDS_DATABASE_URL"]


def test_pdb_and_network_policy_select_the_pods() -> None:
    labels = load("deployment.yaml")["spec"]["template"]["metadata"]["labels"]
    for name in ("pdb.yaml", "networkpolicy.yaml"):
        manifest = load(name)
        selector = manifest["spec"].get("selector") or manifest["spec"]["podSelector"]
        assert selector["matchLabels"].items() <= labels.items(), name
    ports = [
        p["port"] for rule in load("networkpolicy.yaml")["spec"]["ingress"] for p in rule["ports"]
    ]
    assert ports == [8080]


def test_scrape_job_finds_the_annotated_pods() -> None:
    template = load("deployment.yaml")["spec"]["template"]["metadata"]
    annotations = template["annotations"]
    assert annotations["prometheus.io/scrape"] == "true"
    assert annotations["prometheus.io/path"] == "/metrics"
    config = yaml.safe_load((ROOT / "deploy" / "prometheus" / "scrape-config.yaml").read_text())
    [job] = config["scrape_configs"]
    assert job["metrics_path"] == annotations["prometheus.io/path"]
    keep = {
        tuple(r["source_labels"]): r["regex"]
        for r in job["relabel_configs"]
        if r.get("action") == "keep"
    }
    name = template["labels"]["app.kubernetes.io/name"]
    assert keep[("__meta_kubernetes_pod_label_app_kubernetes_io_name",)] == name


def test_image_installs_from_the_lock_and_ships_fixtures() -> None:
    dockerfile = (ROOT / "Dockerfile").read_text(encoding="utf-8")
    assert "pip install --require-hashes -r requirements.lock" in dockerfile
    assert "pip install --no-deps ." in dockerfile
    assert re.search(r"^COPY .*fhir_examples /app/fhir_examples$", dockerfile, re.M)
    assert "KAP_CDS_RULES_DIR=/app/rules" in dockerfile
    lock = (ROOT / "requirements.lock").read_text(encoding="utf-8")
    assert "--hash=sha256:" in lock
    assert "file://" not in lock and "/opt/" not in lock  # nothing of one machine


def test_lock_pins_every_dependency() -> None:
    import subprocess
    import sys

    done = subprocess.run(
        [sys.executable, str(ROOT / "scripts" / "check-lock")],
        capture_output=True,
        text=True,
        check=False,
    )
    assert done.returncode == 0, done.stderr
