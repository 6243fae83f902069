"""Write a model bundle atomically: everything goes into a temporary folder that is renamed into place."""

from __future__ import annotations

import os
import shutil
import tempfile
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from importlib import metadata
from pathlib import Path

from schemas import MANIFEST_FILE, ModelManifest
from schemas.manifest import sha256_file

RECORDED_PACKAGES = ("torch", "onnx", "onnxruntime-gpu", "onnxruntime", "numpy", "scikit-learn", "pydantic")


class BundleExistsError(FileExistsError):
    pass


def file_hashes(folder: Path) -> dict[str, str]:
    """sha256 of every file in the bundle folder (recursively) except the manifest."""
    return {
        p.relative_to(folder).as_posix(): sha256_file(p)
        for p in sorted(folder.rglob("*"))
        if p.is_file() and p.name != MANIFEST_FILE
    }


def package_versions() -> dict[str, str]:
    out = {}
    for name in RECORDED_PACKAGES:
        try:
            out[name] = metadata.version(name)
        except metadata.PackageNotFoundError:
            continue
    return out


@contextmanager
def staging_folder(out: Path) -> Iterator[Path]:
    """A temporary sibling of `out`, renamed to `out` when the block succeeds; removed if it fails.

    A reader never sees a half-written bundle: the rename is atomic on one filesystem.
    """
    if out.exists():
        raise BundleExistsError(f"{out} already exists; pick a new version folder or delete it first")
    out.parent.mkdir(parents=True, exist_ok=True)
    tmp = Path(tempfile.mkdtemp(prefix=f".{out.name}.partial-", dir=out.parent))
    try:
        yield tmp
        os.chmod(tmp, 0o755)
        os.rename(tmp, out)
    except BaseException:
        shutil.rmtree(tmp, ignore_errors=True)
        raise


def write_manifest(folder: Path, build: Callable[[dict[str, str]], ModelManifest]) -> ModelManifest:
    """Hash every file in `folder`, build the manifest from the hashes, and write it."""
    manifest = build(file_hashes(folder))
    (folder / MANIFEST_FILE).write_text(manifest.model_dump_json(indent=2) + "\n")
    return manifest


def read_manifest(folder: Path) -> ModelManifest:
    return ModelManifest.model_validate_json((folder / MANIFEST_FILE).read_text())
