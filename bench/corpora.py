"""The quality bench's packages: fetched at run time from PyPI, npm and Debian into .bench/, never committed.

Tuning packages are the only ones any ranking constant may be fitted to; held-out packages judge
the result (docs/retrieval-quality.md). Versions are pinned so figures stay comparable.
"""
from __future__ import annotations

import shutil
import subprocess
import sys
import tarfile
from dataclasses import dataclass
from pathlib import Path


class MissingPrerequisite(RuntimeError):
    """Something a section needs could not be prepared; the message says what and why."""


@dataclass(frozen=True)
class Package:
    name: str
    source: str  # pypi | npm | debian
    spec: str  # pip requirement, npm name@version, or Debian package=version
    language: str
    held_out: bool = False
    subfolder: str = ""  # what is indexed, inside the unpacked package
    include: tuple[str, ...] = ()  # file globs indexed (default: the language's extension)


def _pypi(requirement: str, *, held_out: bool = False) -> Package:
    return Package(requirement.split("==")[0], "pypi", requirement, "python", held_out)


PACKAGES: tuple[Package, ...] = (
    *(_pypi(r) for r in ("click==8.1.8", "requests==2.32.3", "more-itertools==10.5.0", "attrs==24.2.0",
                         "boltons==24.1.0", "rich==13.9.4", "werkzeug==3.0.4", "pluggy==1.5.0",
                         "packaging==24.1")),
    Package("ramda", "npm", "ramda@0.30.1", "javascript", subfolder="package/es"),
    Package("logrus", "debian", "golang-github-sirupsen-logrus-dev=1.9.0-1", "go",
            subfolder="usr/share/gocode/src/github.com/sirupsen/logrus"),
    _pypi("httpx==0.27.2", held_out=True),
    Package("lodash", "npm", "lodash@4.17.21", "javascript", held_out=True, subfolder="package",
            include=("lodash.js",)),
    Package("cobra", "debian", "golang-github-spf13-cobra-dev=1.6.1-1", "go", held_out=True,
            subfolder="usr/share/gocode/src/github.com/spf13/cobra"),
)

EXTENSIONS = {"python": ("*.py",), "javascript": ("*.js",), "go": ("*.go",)}


def _run(command: list[str], cwd: Path, what: str) -> None:
    try:
        subprocess.run(command, cwd=cwd, check=True, capture_output=True, text=True)
    except (subprocess.CalledProcessError, FileNotFoundError) as exc:
        stderr = getattr(exc, "stderr", None) or str(exc)
        reason = stderr.strip().splitlines()[-1:] or ["no output"]
        raise MissingPrerequisite(f"cannot fetch {what}: {reason[0]}") from None


def download_sdist(requirement: str, downloads: Path) -> Path:
    """Download and unpack a source distribution from PyPI; returns the unpacked folder."""
    downloads.mkdir(parents=True, exist_ok=True)
    name, version = requirement.split("==")
    stems = {f"{name.replace('-', '_')}-{version}", f"{name}-{version}"}
    found = [downloads / s for s in stems if (downloads / s).is_dir()]
    if found:
        return found[0]
    _run([sys.executable, "-m", "pip", "download", "--quiet", "--no-deps", "--no-binary", ":all:",
          "--dest", str(downloads), requirement], downloads, f"the sdist {requirement} from PyPI")
    archive = next(p for s in stems for p in downloads.glob(f"{s}*.tar.gz"))
    with tarfile.open(archive) as tar:
        tar.extractall(downloads, filter="data")
    return next(downloads / s for s in stems if (downloads / s).is_dir())


def _npm_pack(spec: str, target: Path) -> None:
    work = target.with_name(target.name + ".part")
    shutil.rmtree(work, ignore_errors=True)
    work.mkdir(parents=True)
    _run(["npm", "pack", "--silent", spec], work, f"{spec} from npm")
    archive = next(work.glob("*.tgz"))
    with tarfile.open(archive) as tar:
        tar.extractall(work / "unpacked", filter="data")
    (work / "unpacked").rename(target)
    shutil.rmtree(work)


def _debian_download(spec: str, target: Path) -> None:
    work = target.with_name(target.name + ".part")
    shutil.rmtree(work, ignore_errors=True)
    work.mkdir(parents=True)
    _run(["apt-get", "download", spec], work, f"{spec} from Debian (run `apt-get update` first)")
    deb = next(work.glob("*.deb"))
    _run(["dpkg-deb", "-x", str(deb), str(work / "unpacked")], work, f"the contents of {deb.name}")
    (work / "unpacked").rename(target)
    shutil.rmtree(work)


def fetched(package: Package, bench_dir: Path) -> Path:
    """The folder the bench indexes for this package (downloaded once, then reused)."""
    bench_dir = bench_dir.resolve()
    if package.source == "pypi":
        return download_sdist(package.spec, bench_dir / "sdists")
    target = bench_dir / "packages" / package.spec.replace("=", "-").replace("@", "-")
    if not target.is_dir():
        target.parent.mkdir(parents=True, exist_ok=True)
        (_npm_pack if package.source == "npm" else _debian_download)(package.spec, target)
    return target / package.subfolder
