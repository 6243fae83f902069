"""The version policy: which version of each model in the repository is the one in service.

One version per model is served. By default the latest (schemas/repository.py's order: 10 after 2,
numbered before named); `--version-policy mnist-vae=3,kpi-vae=latest` pins a model to a version.
`--default-model name:version` pins `name` too, unless the policy names it. `--models` still
decides which bundles may be served at all; the policy picks among them. `--version-policy-file`
holds entries that win over --version-policy and is read again at every look at the repository,
so pinning a version there (a rollback) takes effect without a restart.

Plain Python (pathlib only): settings validate the policy with it, and the watcher
(worker/serving/watch.py) applies it at every look at the repository.
"""

from __future__ import annotations

import re
from collections.abc import Iterable
from pathlib import Path

from schemas.repository import latest_of, version_key

LATEST = "latest"
_NAME = re.compile(r"^[A-Za-z0-9][A-Za-z0-9._-]*$")  # as ModelManifest.name and .version


def parse_version_policy(text: str | None) -> dict[str, str]:
    """'mnist-vae=3,kpi-vae=latest' -> {'mnist-vae': '3', 'kpi-vae': 'latest'}; ValueError naming the
    entry that is not `name=latest` or `name=<version>`, or a model named twice."""
    policy: dict[str, str] = {}
    for entry in (e.strip() for e in (text or "").split(",")):
        if not entry:
            continue
        name, sep, version = (p.strip() for p in entry.partition("="))
        if not sep or not _NAME.match(name) or not _NAME.match(version):
            raise ValueError(
                f"{entry!r} is not name=latest or name=<version> (e.g. mnist-vae=3,kpi-vae=latest)"
            )
        if name in policy:
            raise ValueError(f"{name} is given twice ({name}={policy[name]} and {entry})")
        policy[name] = version
    return policy


def read_policy_file(path: Path) -> dict[str, str]:
    """A --version-policy-file: entries as in --version-policy, comma- or line-separated, `#` comments.
    OSError if it cannot be read, ValueError (naming the file) if an entry is wrong."""
    lines = [line.split("#", 1)[0].strip() for line in path.read_text().splitlines()]
    try:
        return parse_version_policy(",".join(line for line in lines if line))
    except ValueError as exc:
        raise ValueError(f"{path}: {exc}") from None


def policy_for(
    version_policy: str | None, default_model: str | None, policy_file: Path | None = None
) -> dict[str, str]:
    """The policy from the settings: --version-policy, the entries of --version-policy-file over it
    (read now), plus the pin --default-model name:version implies when neither names that model
    (ValueError if they disagree; OSError if the file cannot be read)."""
    policy = parse_version_policy(version_policy)
    if policy_file is not None:
        policy.update(read_policy_file(policy_file))
    if default_model and ":" in default_model:
        name, version = default_model.split(":", 1)
        pinned = policy.setdefault(name, version)
        if pinned != version:
            raise ValueError(
                f"--default-model {default_model} asks for version {version} of {name} but "
                f"--version-policy serves {name}={pinned}: give the default model as '{name}' alone"
            )
    return policy


def choose(folders: Iterable[Path], wanted: str = LATEST) -> Path | None:
    """The version folder a policy entry picks among `folders` (all of one model): the latest, or the
    pinned version (compared as the repository compares versions: '3' is '03'); None if absent."""
    folders = list(folders)
    if wanted == LATEST:
        return latest_of(folders)
    return next((f for f in folders if version_key(f.name) == version_key(wanted)), None)


def chosen_folders(folders: Iterable[Path], policy: dict[str, str]) -> dict[str, Path | None]:
    """The folder to serve per model (by its folder name under the repository), for every model that
    has a bundle or a policy entry; None where the policy's version is not there."""
    by_model: dict[str, list[Path]] = {name: [] for name in policy}
    for folder in folders:
        by_model.setdefault(folder.parent.name, []).append(folder)
    return {name: choose(found, policy.get(name, LATEST)) for name, found in sorted(by_model.items())}


def candidate_folders(folders: Iterable[Path], policy: dict[str, str]) -> dict[str, list[Path]]:
    """Per model (as chosen_folders), the folders its policy allows, best first: every version,
    newest first, for `latest` (an older one serves when the newer ones are refused); the pinned
    one alone (or none) otherwise."""
    by_model: dict[str, list[Path]] = {name: [] for name in policy}
    for folder in folders:
        by_model.setdefault(folder.parent.name, []).append(folder)
    out = {}
    for name, found in sorted(by_model.items()):
        wanted = policy.get(name, LATEST)
        if wanted == LATEST:
            out[name] = sorted(found, key=lambda f: version_key(f.name), reverse=True)
        else:
            out[name] = [f for f in found if version_key(f.name) == version_key(wanted)][:1]
    return out


def unknown_models(policy: dict[str, str], folders: Iterable[Path]) -> list[str]:
    """The models `policy` names that have no folder at all among `folders` (a typo, most likely)."""
    have = {f.parent.name for f in folders}
    return sorted(name for name in policy if name not in have)


def describe(name: str, policy: dict[str, str]) -> str:
    """The policy of one model in words, for logs: 'latest' or 'pinned to 3'."""
    wanted = policy.get(name, LATEST)
    return LATEST if wanted == LATEST else f"pinned to {wanted}"
