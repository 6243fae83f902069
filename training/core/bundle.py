"""Write a model bundle atomically: everything goes into a temporary folder that is renamed into place."""

from __future__ import annotations

import json
from collections.abc import Callable
from datetime import UTC, datetime
from importlib import metadata
from pathlib import Path

from schemas import MANIFEST_FILE, ModelManifest
from schemas.manifest import MANIFEST_CHECKSUM_FILE, load_manifest, sha256_file, write_manifest_file

OPSET = 18  # every graph of a bundle is exported at this ONNX opset, and the manifest says so
RECORDED_PACKAGES = ("torch", "onnx", "onnxruntime-gpu", "onnxruntime", "numpy", "scikit-learn", "pydantic")
EVALUATION_FILE = "evaluation.json"
HISTORY_FILE = "history.json"


def file_hashes(folder: Path) -> dict[str, str]:
    """sha256 of every file in the bundle folder (recursively) except the manifest and its checksum."""
    return {
        p.relative_to(folder).as_posix(): sha256_file(p)
        for p in sorted(folder.rglob("*"))
        if p.is_file() and p.name not in (MANIFEST_FILE, MANIFEST_CHECKSUM_FILE)
    }


def package_versions() -> dict[str, str]:
    out = {}
    for name in RECORDED_PACKAGES:
        try:
            out[name] = metadata.version(name)
        except metadata.PackageNotFoundError:
            continue
    return out


def json_text(payload: object) -> str:
    """The bundle's JSON files: indented, one trailing newline; numpy floats written as floats."""
    return json.dumps(payload, indent=2, default=float) + "\n"


def write_manifest(folder: Path, build: Callable[[dict[str, str]], ModelManifest]) -> ModelManifest:
    """Hash every file in `folder`, build the manifest from the hashes, and write it with its checksum
    (manifest.sha256), which the worker checks before it trusts the hashes the manifest holds."""
    manifest = build(file_hashes(folder))
    write_manifest_file(folder, manifest)
    return manifest


def new_manifest(name: str, out: Path, files: dict[str, str], **fields: object) -> ModelManifest:
    """A manifest for the bundle at `out`: `fields` as each kind of model fills them, and what every
    bundle records alike (its name, the folder's name as version, when, the opset, hashes, packages)."""
    return ModelManifest(
        name=name,
        version=out.name,
        created_at=datetime.now(UTC),
        opset=OPSET,
        files=files,
        package_versions=package_versions(),
        **fields,
    )


def read_manifest(folder: Path) -> ModelManifest:
    """The bundle's manifest, checked against manifest.sha256 and validated (ManifestError: one line)."""
    return load_manifest(folder)


def store_reevaluation(bundle: Path, payload: object) -> None:
    """Keep a re-evaluation beside the bundle's own: evaluation.json is hashed in the manifest, so a
    different result goes into a new, time-stamped file and the stored one is never overwritten."""
    text = json_text(payload)
    stored = bundle / EVALUATION_FILE
    if not stored.exists() or stored.read_text() != text:
        stamp = datetime.now(UTC).strftime("%Y%m%dT%H%M%SZ")
        (bundle / f"evaluation-{stamp}.json").write_text(text)
