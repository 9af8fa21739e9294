"""Helpers of the kind e2e tier: prerequisites, commands, the cluster handle, the kind config.

Needs Docker and kind; everything else (helm, kubectl) comes from the dev extra
(scripts/fetch_tools.py). Without Docker or kind every test here is skipped with
the reason. Set CODEBASE_E2E_KEEP_CLUSTER=1 to keep the cluster for debugging.
"""
from __future__ import annotations

import importlib.util
import json
import os
import secrets
import shutil
import subprocess
import sys
from pathlib import Path

import yaml

REPO_ROOT = Path(__file__).resolve().parents[2]
CHART = REPO_ROOT / "charts" / "codebase-mcp"
KIND_CONFIG = REPO_ROOT / "kind-config.yaml"
VALUES = Path(__file__).parent / "values-kind.yaml"
NAMESPACE = "codebase-mcp"
RELEASE = "cbm"
COMPONENTS = {"indexer": "indexer_image/Dockerfile", "operator": "operator/Dockerfile",
              "gateway": "mcp_gateway/Dockerfile"}


def missing_prerequisite() -> str | None:
    """Why the suite cannot run here, or None."""
    if shutil.which("docker") is None:
        return "the docker CLI is not installed"
    try:
        info = subprocess.run(["docker", "info"], capture_output=True, text=True, timeout=60)
    except subprocess.TimeoutExpired:
        return "`docker info` timed out"
    if info.returncode != 0:
        lines = (info.stderr or info.stdout).strip().splitlines()
        return f"`docker info` failed (no Docker engine?): {lines[-1] if lines else info.returncode}"
    if shutil.which("kind") is None:
        return "kind is not installed (https://kind.sigs.k8s.io/docs/user/quick-start/#installation)"
    return None


def run(*command: str | Path, timeout: float = 600, check: bool = True, **kwargs) -> subprocess.CompletedProcess:
    printable = " ".join(str(part) for part in command)
    print(f"$ {printable}", flush=True)
    result = subprocess.run([str(part) for part in command], capture_output=True, text=True, timeout=timeout,
                            **kwargs)
    if check and result.returncode != 0:
        raise AssertionError(f"`{printable}` exited with {result.returncode}:\n{result.stdout[-4000:]}\n"
                             f"{result.stderr[-4000:]}")
    return result


class KindCluster:
    def __init__(self, name: str, kubeconfig: Path, helm: Path, kubectl: Path, token: str):
        self.name, self.kubeconfig, self.helm_path, self.kubectl_path = name, kubeconfig, helm, kubectl
        self.token = token
        self.mcp_url = "http://127.0.0.1:30080/mcp"  # NodePort 30080, mapped by kind-config.yaml

    def kubectl(self, *args: str, timeout: float = 300, check: bool = True) -> subprocess.CompletedProcess:
        return run(self.kubectl_path, "--kubeconfig", self.kubeconfig, *args, timeout=timeout, check=check)

    def helm(self, *args: str, timeout: float = 900, check: bool = True) -> subprocess.CompletedProcess:
        return run(self.helm_path, "--kubeconfig", self.kubeconfig, *args, timeout=timeout, check=check)

    def get_json(self, *args: str) -> dict:
        return json.loads(self.kubectl("get", *args, "-o", "json").stdout)

    def dump(self) -> None:
        """Everything a human needs to see why it failed, into the test's captured output."""
        for args in (["get", "all,cbp,ir", "-A", "-o", "wide"],
                     ["describe", "cbp,ir", "-n", NAMESPACE],
                     ["get", "events", "-n", NAMESPACE, "--sort-by=.lastTimestamp"],
                     ["logs", "-n", NAMESPACE, "-l", "app.kubernetes.io/component=operator", "--tail=300"],
                     ["logs", "-n", NAMESPACE, "-l", "app.kubernetes.io/component=gateway", "--tail=200"],
                     ["logs", "-n", NAMESPACE, "-l", "app.kubernetes.io/name=codebase-indexer", "--tail=200"]):
            result = self.kubectl(*args, check=False, timeout=60)
            print(f"\n===== kubectl {' '.join(args)}\n{result.stdout}{result.stderr}", flush=True)


def tools() -> dict[str, Path]:
    spec = importlib.util.spec_from_file_location("fetch_tools", REPO_ROOT / "scripts" / "fetch_tools.py")
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module.ensure_tools()


def kind_config(name: str, directory: Path) -> Path:
    """kind-config.yaml with this cluster's name and the workspace mount as an absolute path."""
    config = yaml.safe_load(KIND_CONFIG.read_text())
    config["name"] = name
    for node in config["nodes"]:
        for mount in node.get("extraMounts", []):
            mount["hostPath"] = str((REPO_ROOT / mount["hostPath"]).resolve())
    path = directory / "kind-config.yaml"
    path.write_text(yaml.safe_dump(config))
    return path


def image_tag() -> str:
    """Never `latest` (kind would try to pull it): the commit plus a random suffix."""
    head = subprocess.run(["git", "rev-parse", "--short", "HEAD"], cwd=REPO_ROOT, capture_output=True, text=True)
    commit = head.stdout.strip() if head.returncode == 0 else "nogit"
    return f"e2e-{commit}-{secrets.token_hex(3)}"


def delete_cluster(cluster: KindCluster) -> None:
    if os.environ.get("CODEBASE_E2E_KEEP_CLUSTER") == "1":
        print(f"keeping kind cluster {cluster.name} (kubeconfig {cluster.kubeconfig})", file=sys.stderr)
        return
    run("kind", "delete", "cluster", "--name", cluster.name, timeout=300, check=False)
