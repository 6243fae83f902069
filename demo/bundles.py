"""Where the demo's files are, and which bundle of a model it uses: the one the worker serves as 'name'.

Paths: the demo's defaults are folders of the repository (REPO), whatever the current directory;
a path the user gives (flag or DEMO_* variable) that is relative is taken from the current directory,
once, when the settings are parsed. The training and worker subprocesses get only absolute paths.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

from pydantic import ValidationError

from schemas import MANIFEST_FILE, ModelManifest
from schemas.repository import latest_bundle_folder

REPO = Path(__file__).resolve().parents[1]


def absolute(path: Path) -> Path:
    """`path` from the current directory (kept as is when absolute); for settings validators."""
    return Path.cwd() / path.expanduser()


@dataclass(frozen=True)
class Bundle:
    folder: Path
    manifest: ModelManifest

    @property
    def key(self) -> str:
        """'name:version', as the worker keys it: records that give it get exactly this bundle."""
        return f"{self.manifest.name}:{self.manifest.version}"


def newest_bundle(repository: Path, name: str) -> Bundle | None:
    """The latest version of `name` under `repository` (schemas.repository's rule, the worker's), or None."""
    folder = latest_bundle_folder(repository, name)
    if folder is None:
        return None
    path = folder / MANIFEST_FILE
    try:
        manifest = ModelManifest.model_validate_json(path.read_bytes())
    except ValidationError as exc:
        raise RuntimeError(f"{path}: not a valid manifest: {exc.errors()[0]['msg']}") from None
    return Bundle(folder, manifest)
