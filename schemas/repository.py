"""The model repository's layout and its one rule for versions, shared by training, worker, demo and bench.

A repository is a folder of bundles `<repository>/<name>/<version>/manifest.json`. Versions
order numerically when they are whole numbers (10 after 2), and any other version after every
numbered one, by name. "The latest version of a name" and "the next version to train into"
both follow that order. Plain Python (pathlib only): the worker imports it without torch.
"""

from __future__ import annotations

from pathlib import Path

from schemas.manifest import MANIFEST_FILE


def version_key(version: str) -> tuple[int, int | str]:
    """Sort key of a version: numbered versions in numeric order, then the others by name."""
    return (0, int(version)) if version.isdigit() else (1, version)


def bundle_folders(repository: Path, name: str = "*") -> list[Path]:
    """Every bundle folder `<repository>/<name>/<version>` that holds a manifest (of every name by
    default), sorted by path."""
    return sorted(p.parent for p in Path(repository).glob(f"{name}/*/{MANIFEST_FILE}"))


def latest_bundle_folder(repository: Path, name: str) -> Path | None:
    """The bundle folder of `name`'s latest version (the one 'name' means), or None if it has none."""
    return max(bundle_folders(repository, name), key=lambda f: version_key(f.name), default=None)


def next_version_folder(repository: Path, name: str) -> Path:
    """`<repository>/<name>/<N + 1>`, N the highest numbered folder there (bundle or not; 0 if none)."""
    folder = Path(repository) / name
    numbered = [int(p.name) for p in folder.glob("*") if p.is_dir() and p.name.isdigit()]
    return folder / str(max(numbered, default=0) + 1)
