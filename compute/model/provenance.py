"""Where a result came from: model revision, weight fingerprint and package versions."""

from __future__ import annotations

import hashlib
import re
from importlib import metadata
from pathlib import Path

PACKAGES = ("torch", "transformers", "tokenizers", "safetensors", "numpy", "pillow", "pydicom", "duckdb")
_FULL_HASH_LIMIT = 512 * 1024**2  # hash whole files up to this size
_SAMPLE = 4 * 1024**2  # above it: size plus the first and last 4 MiB of each file


def package_versions() -> dict[str, str]:
    versions = {}
    for name in PACKAGES:
        try:
            versions[name] = metadata.version(name)
        except metadata.PackageNotFoundError:
            versions[name] = "not installed"
    return versions


def hub_revision(folder: str | Path) -> str | None:
    """The commit hash when `folder` is a hub cache snapshot (…/snapshots/<sha>/)."""
    match = re.search(r"snapshots[/\\]([0-9a-f]{40})", str(folder))
    return match.group(1) if match else None


def weights_fingerprint(folder: str | Path) -> str | None:
    """sha256 over the weight files' names and bytes. Files over 512 MiB contribute their
    size and first/last 4 MiB instead, so an 8 GB checkpoint is fingerprinted in a second."""
    files = sorted(Path(folder).glob("*.safetensors"))
    if not files:
        return None
    digest = hashlib.sha256()
    for path in files:
        size = path.stat().st_size
        digest.update(f"{path.name}:{size}".encode())
        with path.open("rb") as f:
            if size <= _FULL_HASH_LIMIT:
                for chunk in iter(lambda: f.read(1 << 20), b""):
                    digest.update(chunk)
            else:
                digest.update(f.read(_SAMPLE))
                f.seek(size - _SAMPLE)
                digest.update(f.read(_SAMPLE))
    return digest.hexdigest()
