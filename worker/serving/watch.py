"""Model versions go into service without a restart, as in Triton's model repository.

Two halves, one on each side of a queue:

- `RepositoryWatcher`, a thread of its own: every --model-poll-interval-s it lists the repository,
  applies the version policy (worker/serving/policy.py) and, for each model whose wanted version is not the
  one in service, loads and checks that version exactly as at start (worker/serving/registry.py load_bundle:
  the manifest and its checksum, every file's sha256, the graph's shapes, a session on the configured
  device, a warm-up batch with finite scores). A version passes, and is queued ready to serve, or is
  refused: logged once with the file and the reason (again only if its files change), counted in
  `model_versions_refused_total`, and the running version stays. `model_newest_version_refused` is 1
  while a refused version newer than the one in service is still there (the alert's condition: it
  holds until the folder is fixed or removed, or a newer version passes). Both series of a model are
  made at 0 when its folder is first seen, a look before any of its versions can be judged, so a
  first version refused counts as an increase. A folder is looked at once its
  files have stayed the same for one interval, so a bundle copied in file by file is not judged
  half-copied (training renames a finished bundle into place, and hidden folders are never looked at).
- `ModelSwaps` (worker/swaps.py), on the loop's thread, once per turn: each ready version goes into
  service between batches. Records resolve their model as they are decoded, so those decoded before
  the swap are in the old version's batches and those after it in the new one's. The old version's
  open batch is handed to scoring at once (ahead of any batch of the new version: the scoring thread
  keeps order), and every batch finishes with the version that formed it, which is the
  `model_version` its outputs carry. A metric model's series (windows and detector state) carry over
  when the new version makes its windows the same way, else they start fresh and the log says why.
  The old version's session is let go once no batch uses it.

Removing the newest folder, or pinning an older version in --version-policy-file (read again at every
look), brings the older one back the same way.
"""

from __future__ import annotations

import logging
import queue
import threading
from collections.abc import Callable, Iterable
from contextlib import suppress
from pathlib import Path

from schemas import MANIFEST_FILE
from schemas.repository import PUBLISH, RepositoryError, bundle_folders
from worker.metrics import Metrics
from worker.serving.device import Provider, provider_names
from worker.serving.policy import candidate_folders, describe, unknown_models
from worker.serving.registry import (
    BundleError,
    IncompleteBundle,
    LoadedModel,
    load_bundle,
    selected_folders,
)

log = logging.getLogger(__name__)

Fingerprint = tuple[tuple[str, int, int], ...]
WAITING = object()  # a version whose files are still changing, or not all there yet


def fingerprint(folder: Path) -> Fingerprint | None:
    """(path, size, mtime) of every file in the folder; None if it cannot be listed (just removed)."""
    try:
        files = sorted(p for p in folder.rglob("*") if p.is_file())
        return tuple((p.relative_to(folder).as_posix(), s.st_size, s.st_mtime_ns) for p in files
                     for s in (p.stat(),))  # fmt: skip
    except OSError:
        return None


class RepositoryWatcher:
    """Finds the versions the policy wants in service, checks them off the loop's thread, and queues
    those that pass (see the module docstring)."""

    def __init__(
        self, repository: Path, providers: list[Provider], serving: Iterable[LoadedModel], metrics: Metrics,
        policy: dict[str, str] | None = None, wanted: str | None = None, interval_s: float = 10.0,
        threads: int = 0, policy_source: Callable[[], dict[str, str]] | None = None,
    ) -> None:  # fmt: skip
        self.repository, self.providers, self.metrics = repository, providers, metrics
        self.policy, self.wanted, self.interval_s, self.threads = policy or {}, wanted, interval_s, threads
        self.policy_source = policy_source  # the policy read again at each look (--version-policy-file)
        # By model (its folder's name under the repository): the version in service once the loop
        # has taken what is queued.
        self._serving: dict[str, LoadedModel] = {m.folder.parent.name: m for m in serving}
        self._seen: dict[Path, Fingerprint | None] = {}  # each candidate's files at the last look
        self._refused: dict[Path, Fingerprint | None] = {}  # and as they were when refused
        self._said: set[tuple[str, ...]] = set()  # warnings given once
        self._models: set[str] = set()  # every model seen, each with its refusal series
        for name in self._serving:
            self._first_seen(name)
        self._ready: queue.SimpleQueue[LoadedModel] = queue.SimpleQueue()
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None

    # -- the thread ------------------------------------------------------------------------

    def start(self) -> None:
        if self.interval_s > 0 and self._thread is None:
            self._thread = threading.Thread(target=self._run, name="model-watch", daemon=True)
            self._thread.start()
            log.info("watching %s for model versions every %g s", self.repository, self.interval_s)

    def stop(self) -> None:
        self._stop.set()
        if self._thread is not None:
            self._thread.join(60)  # a version being checked finishes first

    def _run(self) -> None:
        while not self._stop.wait(self.interval_s):
            try:
                self.look()
            except Exception:  # a fault here must not end the watch, nor the worker
                log.exception("while looking at the model repository %s", self.repository)

    def ready(self) -> list[LoadedModel]:
        """Versions checked and ready to go into service, in the order they passed (the loop's side)."""
        out = []
        with suppress(queue.Empty):
            while True:
                out.append(self._ready.get_nowait())
        return out

    # -- one look --------------------------------------------------------------------------

    def look(self) -> list[LoadedModel]:
        """Look at the repository once: for each model, the best version its policy allows that
        passes its checks (newest first; one refused gives way to the next older), if that is not the
        one in service and has stayed the same since the last look; queue (and return) those."""
        try:
            folders = selected_folders(bundle_folders(self.repository, on_skip=self._skipped), self.wanted)
        except (RepositoryError, OSError) as exc:
            self._once(("repository", str(exc)), "model repository: %s; no version changes until it is "
                       "fixed", exc)  # fmt: skip
            return []
        for name in sorted({f.parent.name for f in folders}):
            self._first_seen(name)
        self._reread_policy(folders)
        passed = []
        candidates = candidate_folders(folders, self.policy)
        for name in sorted(candidates.keys() | self._serving.keys()):
            options, current = candidates.get(name, []), self._serving.get(name)
            if not options:
                if current is not None:
                    self._once(("gone", name, str(current.folder)), "%s: no version under %s fits its "
                               "policy (%s); %s stays in service", name, self.repository,
                               describe(name, self.policy), current.key)  # fmt: skip
                continue
            if current is not None:
                self._said.discard(("gone", name, str(current.folder)))
            model = self._best(name, options, current)
            if model is not None:
                self._serving[name] = model
                self._ready.put(model)
                passed.append(model)
        present = set(folders)
        for marks in (self._seen, self._refused):  # forget folders that are gone
            for gone in [f for f in marks if f not in present]:
                del marks[gone]
        for name in self._models:
            refused = self._newer_refused(candidates.get(name, []), self._serving.get(name))
            self.metrics.model_newest_version_refused.labels(model=name).set(int(refused))
        return passed

    def _first_seen(self, name: str) -> None:
        """A model's refusal series, made at 0: a series first scraped at 1 has no increase, so the
        first refusal of a new model would go unseen by increase() and rate()."""
        if name not in self._models:
            self._models.add(name)
            self.metrics.model_versions_refused.labels(model=name)
            self.metrics.model_newest_version_refused.labels(model=name).set(0)

    def _newer_refused(self, options: list[Path], current: LoadedModel | None) -> bool:
        """Whether a version its policy prefers to the one in service (`options` best first; every
        one for a model not served, or whose folder is gone) was refused and is still there. A refused
        folder being rewritten stays refused until it passes: the alert does not blink meanwhile."""
        if current is not None and current.folder in options:
            options = options[: options.index(current.folder)]
        return any(folder in self._refused for folder in options)

    def _best(self, name: str, options: list[Path], current: LoadedModel | None) -> LoadedModel | None:
        """The first of `options` (best first) that passes, unless the one in service comes first or
        a better one is still being written (None: no change)."""
        for folder in options:
            if current is not None and folder == current.folder:
                return None  # in service, and nothing better passes
            model = self._candidate(name, folder, current)
            if model is WAITING:
                return None  # a better version is on its way: no change until it has settled
            if model is not None:
                return model
        if current is not None:  # its folder is gone, and every one left was refused
            log.warning("%s: its folder %s was removed and no version left under %s passes its checks; "
                        "%s keeps serving from memory until one does", name, current.folder,
                        self.repository, current.key)  # fmt: skip
        return None

    def _reread_policy(self, folders: list[Path]) -> None:
        if self.policy_source is None:
            return
        try:
            policy = self.policy_source()
        except (OSError, ValueError) as exc:
            self._refuse_policy(str(exc))
            return
        unknown = unknown_models(policy, folders)
        if unknown:
            there = ", ".join(sorted({f.parent.name for f in folders})) or "none"
            self._refuse_policy(f"it names {', '.join(unknown)}, which the repository {self.repository} "
                                f"does not have (models there: {there})")  # fmt: skip
            return
        self._said = {key for key in self._said if key[0] != "policy"}  # a fault fixed: said again if back
        if policy != self.policy:
            self.policy = policy
            log.info("version policy now %s", self._policy_words())

    def _refuse_policy(self, why: str) -> None:
        """A policy file the worker will not apply: one ERROR line and one count per distinct fault."""
        if ("policy", why) not in self._said:
            self._said.add(("policy", why))
            self.metrics.version_policy_refused.inc()
            log.error("version policy file refused: %s; the policy stays %s", why, self._policy_words())

    def _policy_words(self) -> str:
        return ", ".join(f"{n}={v}" for n, v in sorted(self.policy.items())) or "latest for every model"

    def _candidate(self, name: str, folder: Path, current: LoadedModel | None) -> LoadedModel | object:
        """The version at `folder` checked: the model if it passes, WAITING if its files are still
        changing or incomplete, None if refused (now, or before and unchanged since)."""
        mark = fingerprint(folder)
        settled = mark is not None and self._seen.get(folder) == mark
        self._seen[folder] = mark
        if not settled:
            return WAITING
        if self._refused.get(folder) == mark:
            return None  # refused as it is
        try:
            model = self.check(folder, current)
        except IncompleteBundle as exc:  # being copied in file by file: not a refusal (yet)
            self._once(("incomplete", str(folder)), "%s: %s; waiting for the rest of its files (publish "
                       "bundles whole: %s)", name, exc, PUBLISH)  # fmt: skip
            return WAITING
        except BundleError as exc:
            self._refused[folder] = mark
            self.metrics.model_versions_refused.labels(model=name).inc()
            stays = f"{current.key} stays in service" if current else f"{name} is not served"
            log.error("refused version %s of %s: %s; %s", folder.name, name, exc, stays)
            return None
        self._refused.pop(folder, None)
        log.info("version %s of %s passed its checks (%s); it goes into service between two batches",
                 model.manifest.version, name, describe(name, self.policy))  # fmt: skip
        return model

    def check(self, folder: Path, current: LoadedModel | None) -> LoadedModel:
        """The bundle at `folder` loaded and checked to replace `current` (None: a new model);
        BundleError naming the file and the reason if it may not."""
        try:
            model = load_bundle(folder, self.providers, self.threads)
        except BundleError:
            raise
        except Exception as exc:  # onnxruntime's own errors, e.g. from the warm-up run
            raise BundleError(f"{folder}: {type(exc).__name__}: {exc}") from None
        m, manifest = model.manifest, folder / MANIFEST_FILE
        if current is not None and m.name != current.manifest.name:
            raise BundleError(f"{manifest}: names model {m.name!r}, but this folder's model is "
                              f"{current.manifest.name!r}")  # fmt: skip
        if current is not None and m.kind != current.manifest.kind:
            raise BundleError(f"{manifest}: a {m.kind} model, but {current.key} scores "
                              f"{current.manifest.kind} records: a model keeps its kind (give the new one "
                              "a name of its own)")  # fmt: skip
        if current is None and any(s.manifest.name == m.name for s in self._serving.values()):
            raise BundleError(f"{manifest}: model {m.name!r} is already served from another folder")
        expected = current.providers[0] if current is not None else provider_names(self.providers)[0]
        if model.providers[0] != expected:
            raise BundleError(f"{folder}: the graph opened on {model.providers[0]}, not {expected} (out of "
                              "device memory?)")  # fmt: skip
        return model

    def _skipped(self, folder: Path) -> None:
        self._once(("skipped", str(folder)), "%s: no %s, so not a bundle (yet)", folder, MANIFEST_FILE)

    def _once(self, key: tuple[str, ...], message: str, *args: object) -> None:
        if key not in self._said:
            self._said.add(key)
            log.warning(message, *args)
