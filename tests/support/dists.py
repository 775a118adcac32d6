"""Distributions to publish: real builds (hatchling, offline) and fast synthetic ones.

Synthetic wheels and sdists are complete and installable (METADATA, WHEEL, RECORD; PKG-INFO), so
``pip install`` from the index works; they just skip the build backend, which keeps the e2e
suite fast with a fresh project name per test.
"""

from __future__ import annotations

import base64
import hashlib
import io
import subprocess
import sys
import tarfile
import time
import zipfile
from dataclasses import dataclass
from pathlib import Path

from packaging.utils import canonicalize_name


@dataclass(frozen=True)
class Dist:
    path: Path

    @property
    def filename(self) -> str:
        return self.path.name

    @property
    def sha256(self) -> str:
        return hashlib.sha256(self.path.read_bytes()).hexdigest()


def _module(name: str) -> str:
    return canonicalize_name(name).replace("-", "_")


def _metadata(name: str, version: str, requires_python: str) -> str:
    return (
        f"Metadata-Version: 2.3\nName: {name}\nVersion: {version}\n"
        f"Summary: e2e test package {name}\nRequires-Python: {requires_python}\n"
    )


def make_wheel(
    name: str,
    version: str,
    outdir: Path,
    *,
    requires_python: str = ">=3.9",
    payload: str = "",
    tag: str = "py3-none-any",
    extra: bytes = b"",
) -> Dist:
    """A pure wheel; ``tag`` names it (``py311-none-any``…, several wheels for one release) and
    ``extra`` adds a stored (uncompressed) data file of those bytes (large-upload tests)."""
    module = _module(name)
    dist_info = f"{module}-{version}.dist-info"
    files = {
        f"{module}/__init__.py": f'__version__ = "{version}"\n{payload}'.encode(),
        f"{dist_info}/METADATA": _metadata(name, version, requires_python).encode(),
        f"{dist_info}/WHEEL": b"Wheel-Version: 1.0\nGenerator: e2e\nRoot-Is-Purelib: true\n"
        + f"Tag: {tag}\n".encode(),
    }
    if extra:
        files[f"{module}/blob.bin"] = extra
    record = []
    for path, data in files.items():
        digest = base64.urlsafe_b64encode(hashlib.sha256(data).digest()).rstrip(b"=").decode()
        record.append(f"{path},sha256={digest},{len(data)}")
    record.append(f"{dist_info}/RECORD,,")
    files[f"{dist_info}/RECORD"] = ("\n".join(record) + "\n").encode()
    outdir.mkdir(parents=True, exist_ok=True)
    target = outdir / f"{module}-{version}-{tag}.whl"
    with zipfile.ZipFile(target, "w", zipfile.ZIP_DEFLATED) as archive:
        for path, data in files.items():
            info = zipfile.ZipInfo(path, date_time=(2024, 1, 1, 0, 0, 0))
            if path.endswith("blob.bin"):
                info.compress_type = zipfile.ZIP_STORED
            info.external_attr = 0o644 << 16
            archive.writestr(info, data)
    return Dist(target)


def make_sdist(name: str, version: str, outdir: Path, *, requires_python: str = ">=3.9") -> Dist:
    module = _module(name)
    root = f"{module}-{version}"
    files = {
        f"{root}/PKG-INFO": _metadata(name, version, requires_python).encode(),
        f"{root}/pyproject.toml": (
            f'[build-system]\nrequires = ["hatchling"]\nbuild-backend = "hatchling.build"\n\n'
            f'[project]\nname = "{name}"\nversion = "{version}"\n'
        ).encode(),
        f"{root}/{module}/__init__.py": f'__version__ = "{version}"\n'.encode(),
    }
    outdir.mkdir(parents=True, exist_ok=True)
    target = outdir / f"{root}.tar.gz"
    with tarfile.open(target, "w:gz") as archive:
        for path, data in files.items():
            info = tarfile.TarInfo(path)
            info.size, info.mtime, info.mode = len(data), int(time.time()), 0o644
            archive.addfile(info, io.BytesIO(data))
    return Dist(target)


def sdist_bytes(name: str, version: str, *, payload: bytes = b"") -> bytes:
    """A minimal sdist in memory (``<name>-<version>/PKG-INFO``, the name normalised as in the
    file name ``<name>_…-<version>.tar.gz``), for tests that upload to the example index without
    touching the disk; the index reads the name and version from PKG-INFO."""
    root = f"{_module(name)}-{version}"
    files = {
        f"{root}/PKG-INFO": _metadata(name, version, ">=3.9").encode(),
        f"{root}/payload.bin": payload,
    }
    buffer = io.BytesIO()
    with tarfile.open(fileobj=buffer, mode="w:gz") as archive:
        for path, data in files.items():
            info = tarfile.TarInfo(path)
            info.size, info.mtime, info.mode = len(data), int(time.time()), 0o644
            archive.addfile(info, io.BytesIO(data))
    return buffer.getvalue()


def make_dists(name: str, version: str, outdir: Path) -> list[Dist]:
    return [make_sdist(name, version, outdir), make_wheel(name, version, outdir)]


def write_project(name: str, version: str, srcdir: Path) -> Path:
    """A tiny hatchling project (what a real repository holds)."""
    module = _module(name)
    (srcdir / "src" / module).mkdir(parents=True, exist_ok=True)
    (srcdir / "src" / module / "__init__.py").write_text(
        f'"""Sample package published through Trusted Publishing."""\n\n__version__ = "{version}"\n'
    )
    (srcdir / "README.md").write_text(f"# {name}\n\nPublished with Trusted Publishing.\n")
    (srcdir / "pyproject.toml").write_text(
        '[build-system]\nrequires = ["hatchling"]\nbuild-backend = "hatchling.build"\n\n'
        f'[project]\nname = "{name}"\nversion = "{version}"\nreadme = "README.md"\n'
        'requires-python = ">=3.9"\ndescription = "Sample package for the example index"\n\n'
        f'[tool.hatch.build.targets.wheel]\npackages = ["src/{module}"]\n'
    )
    return srcdir


def build_project(
    srcdir: Path, outdir: Path, *, python: str = sys.executable, timeout: float = 120
) -> list[Dist]:
    """``python -m build --no-isolation``: offline, with hatchling from the running venv."""
    subprocess.run(
        [
            python,
            "-m",
            "build",
            "--no-isolation",
            "--sdist",
            "--wheel",
            "--outdir",
            str(outdir),
            str(srcdir),
        ],
        check=True,
        capture_output=True,
        text=True,
        timeout=timeout,
    )
    return sorted(
        (Dist(p) for p in outdir.iterdir() if p.suffix in (".whl", ".gz")), key=lambda d: d.filename
    )
