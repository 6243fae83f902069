"""The model repository's layout and its one rule for versions, shared by training, worker, demo and bench.

A repository is a folder of bundles `<repository>/<name>/<version>/manifest.json`. Versions
order numerically when they are whole numbers (10 after 2), and any other version after every
numbered one, by name. "The latest version of a name" and "the next version to train into"
both follow that order. Plain Python (pathlib only): the worker imports it without torch.

A version folder without a manifest is skipped with a warning that names it; two folders of one name
that claim the same version (`3` and `03`) are an error, never a silent choice between them. Hidden
folders are not versions: a bundle is written into one beside its place (`.<version>.partial-*`) and
renamed into place when complete, so a worker watching the repository never sees half of one.
"""

from __future__ import annotations

import logging
import os
import shutil
import tempfile
from collections.abc import Callable, Iterable, Iterator
from contextlib import contextmanager
from pathlib import Path

from schemas.manifest import (
    MANIFEST_FILE,
    ModelManifest,
    bundle_path,
    load_manifest,
    sha256_file,
    write_manifest_file,
)

log = logging.getLogger(__name__)


class BundleIncomplete(ValueError):
    """A file the manifest lists is not there (yet): a bundle still being copied in."""


class RepositoryError(ValueError):
    """The repository's folders are ambiguous; the message names the folders."""


def version_key(version: str) -> tuple[int, int | str]:
    """Sort key of a version: numbered versions in numeric order, then the others by name."""
    return (0, int(version)) if version.isdigit() else (1, version)


def bundle_folders(
    repository: Path, name: str = "*", on_skip: Callable[[Path], None] | None = None
) -> list[Path]:
    """Every bundle folder `<repository>/<name>/<version>` that holds a manifest (of every name by
    default), sorted by path. A version folder without one is skipped with a warning (or handed to
    `on_skip`: a watcher says it once); two folders that claim one version raise RepositoryError."""
    folders = []
    for folder in sorted(Path(repository).glob(f"{name}/*")):
        if not folder.is_dir() or folder.name.startswith(".") or folder.parent.name.startswith("."):
            continue  # hidden folders are not versions: training stages a bundle in .<version>.partial-*
        if (folder / MANIFEST_FILE).is_file():
            folders.append(folder)
        elif on_skip is not None:
            on_skip(folder)
        else:
            log.warning("%s: no %s, so not a bundle; skipped", folder, MANIFEST_FILE)
    refuse_duplicate_versions(folders)
    return folders


def refuse_duplicate_versions(folders: list[Path]) -> None:
    """RepositoryError naming both folders when two of one name are the same version by version_key
    (`3` and `03`): which one 'name:3' or 'the latest' meant would depend on the order of a listing."""
    seen: dict[tuple[Path, tuple[int, int | str]], Path] = {}
    for folder in folders:
        claim = (folder.parent, version_key(folder.name))
        if claim in seen:
            raise RepositoryError(
                f"{seen[claim]} and {folder} claim the same version of {folder.parent.name}; "
                "rename or remove one"
            )
        seen[claim] = folder


def latest_bundle_folder(repository: Path, name: str) -> Path | None:
    """The bundle folder of `name`'s latest version (the one 'name' means), or None if it has none."""
    return latest_of(bundle_folders(repository, name))


def latest_of(folders: Iterable[Path]) -> Path | None:
    """The version folder with the highest version (as versions compare: version_key), or None."""
    return max(folders, key=lambda f: version_key(f.name), default=None)


def next_version_folder(repository: Path, name: str) -> Path:
    """`<repository>/<name>/<N + 1>`, N the highest numbered folder there (bundle or not; 0 if none)."""
    folder = Path(repository) / name
    numbered = [int(p.name) for p in folder.glob("*") if p.is_dir() and p.name.isdigit()]
    return folder / str(max(numbered, default=0) + 1)


class BundleExistsError(FileExistsError):
    pass


def refuse_existing(out: Path) -> None:
    """A bundle folder is never overwritten; callers check before training, not only after it."""
    if out.exists():
        raise BundleExistsError(f"{out} already exists; pick a new version folder or delete it first")


@contextmanager
def staging_folder(out: Path) -> Iterator[Path]:
    """A temporary sibling of `out`, renamed to `out` when the block succeeds; removed if it fails.

    A reader never sees a half-written bundle: the rename is atomic on one filesystem (and the
    watcher skips `.`-folders: worker/serving/watch.py).
    """
    refuse_existing(out)
    out.parent.mkdir(parents=True, exist_ok=True)
    tmp = Path(tempfile.mkdtemp(prefix=f".{out.name}.partial-", dir=out.parent))
    try:
        yield tmp
        os.chmod(tmp, 0o755)
        os.rename(tmp, out)
    except BaseException:
        shutil.rmtree(tmp, ignore_errors=True)
        raise


def copy_as_version(source: Path, version: str) -> Path:
    """Copy the bundle at `source` to `<its model folder>/<version>`, its manifest saying `version`
    (re-signed: manifest.sha256), the way training writes a bundle (staging_folder). The same graph
    as a new version (demos, tests, a rollback by re-publishing an old version under a new number).
    Refuses an existing target."""
    out = source.parent / version
    manifest = load_manifest(source).model_copy(update={"version": version})
    with staging_folder(out) as staging:
        shutil.copytree(source, staging, dirs_exist_ok=True)
        write_manifest_file(staging, manifest)
    return out


PUBLISH = "python -m training publish <bundle folder> [--version V]"


def verified_manifest(folder: Path, own_folder: bool = True) -> ModelManifest:
    """The bundle's manifest once it matches its checksum and every file it hashes, and (`own_folder`)
    names its folder's version. ManifestError or RepositoryError, one line naming file and fix."""
    manifest_path = folder / MANIFEST_FILE
    if not manifest_path.is_file():
        raise RepositoryError(f"{folder}: no {MANIFEST_FILE}; is this a <name>/<version> bundle folder?")
    manifest = load_manifest(folder)
    paths = {name: bundle_path(folder, name) for name in manifest.files}
    # 'name:version' finds a bundle by its manifest, --models and the repository's order by its folder:
    # the two must agree, or one key would serve another folder than the one asked for.
    if own_folder and manifest.version != folder.name:
        raise RepositoryError(
            f"{manifest_path}: says version {manifest.version!r} but its folder is {folder.name!r}; a "
            f"bundle's version is its folder's name: to publish a copy as a new version, use {PUBLISH}"
        )
    for name, expected in manifest.files.items():
        path = paths[name]
        if not path.is_file():
            raise BundleIncomplete(f"{folder}: {name} is listed in the manifest but missing")
        if sha256_file(path) != expected:
            raise RepositoryError(
                f"{path}: sha256 does not match the manifest; the file was changed or corrupted "
                "after export: re-export the bundle"
            )
    if manifest.model_file not in manifest.files:
        raise RepositoryError(f"{folder}: the manifest has no hash for {manifest.model_file}")
    return manifest
