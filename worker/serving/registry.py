"""Load model bundles, refuse the ones that do not match their manifest, and serve them by name."""

from __future__ import annotations

import logging
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import onnxruntime as ort

from schemas import MANIFEST_FILE, MetricPreprocessing, ModelManifest
from schemas.detect import StateFile
from schemas.manifest import ManifestError, TensorSpec, bundle_path
from schemas.outputs import map_shape
from schemas.repository import (
    BundleIncomplete,
    RepositoryError,
    bundle_folders,
    verified_manifest,
    version_key,
)
from worker.serving.device import CPU, CUDA, CudaOptions, Provider, choose_providers, provider_names
from worker.serving.policy import chosen_folders

log = logging.getLogger(__name__)

MAP_ROLE = "anomaly_map"  # the manifest's name for the graph output an alert's anomaly map comes from
RECONSTRUCTION_ROLE = "reconstruction"  # a metric graph's: the window's last point as the VAE rebuilds it
# The graph output read beside the score (where --explain is on), by record kind.
EXPLAIN_ROLES = {"image": MAP_ROLE, "metric": RECONSTRUCTION_ROLE}


class BundleError(RuntimeError):
    """A bundle the worker will not serve; the message says which file and why."""


class IncompleteBundle(BundleError):
    """A file the manifest lists is missing: at start an error like any other; to the repository
    watcher a bundle still being copied in, waited for and not counted as refused."""


@dataclass
class LoadedModel:
    manifest: ModelManifest
    folder: Path
    session: ort.InferenceSession
    providers: list[str]
    primed: StateFile | None = None  # metric models: the detector states of the series training saw

    @property
    def key(self) -> str:
        return f"{self.manifest.name}:{self.manifest.version}"

    @property
    def record_shape(self) -> tuple[int, ...]:
        return tuple(self.manifest.preprocessing.record_shape)

    @property
    def explain_output(self) -> TensorSpec | None:
        """The graph output read beside the score, if the bundle has it (checked at load): an image's
        anomaly map, or a metric window's reconstructed last point (bundles exported since each
        exists; older ones score without it)."""
        return self.manifest.outputs.get(EXPLAIN_ROLES.get(self.manifest.kind, MAP_ROLE))


def load_bundle(folder: Path, providers: list[Provider], intra_op_threads: int = 0) -> LoadedModel:
    """Verify a bundle (manifest and its checksum, hashes, graph shapes), open its session and warm it up.

    `providers`: names, or (name, options) pairs (worker/serving/device.py choose_providers)."""
    manifest = _verified_manifest(folder)
    session = _open_session(folder / manifest.model_file, providers, intra_op_threads)
    _check_graph(session, manifest, folder)
    model = LoadedModel(manifest, folder, session, session.get_providers(), _primed_states(manifest, folder))
    if CUDA in provider_names(providers) and CUDA not in model.providers:
        log.warning("%s: asked for CUDA but onnxruntime gave %s (a CUDA or cuDNN library missing? see "
                    "onnxruntime's log); scoring on the CPU", folder, ",".join(model.providers))  # fmt: skip
    if not uses_cuda_graph(model):  # a CUDA graph is captured on fixed buffers: worker/score.py warms it
        _warm_up(model)
    return model


def uses_cuda_graph(model: LoadedModel) -> bool:
    """The session runs CUDA graphs (--cuda-graphs on a GPU): it must be run through IO binding."""
    opts = model.session.get_provider_options().get(CUDA, {})
    return CUDA in model.providers and opts.get("enable_cuda_graph") == "1"


def _verified_manifest(folder: Path) -> ModelManifest:
    """The bundle's manifest once it matches its checksum, its folder's version and every file it hashes."""
    try:
        return verified_manifest(folder)
    except BundleIncomplete as exc:
        raise IncompleteBundle(str(exc)) from None
    except (ManifestError, RepositoryError) as exc:
        raise BundleError(str(exc)) from None


def _primed_states(manifest: ModelManifest, folder: Path) -> StateFile | None:
    """A metric bundle's primed series states (hashed in the manifest like every file), or None."""
    pre = manifest.preprocessing
    if not isinstance(pre, MetricPreprocessing) or not pre.state_file:
        return None
    if pre.state_file not in manifest.files:
        raise BundleError(f"{folder}: the manifest has no hash for its state file {pre.state_file}")
    try:
        primed = StateFile.read(bundle_path(folder, pre.state_file))
    except (OSError, ValueError, KeyError) as exc:
        raise BundleError(f"{folder / pre.state_file}: cannot be read as series states: {exc}") from None
    wrong = [k for k in primed.keys if k in pre.series and primed.interval(k) != pre.series[k].interval_s]
    if wrong:
        raise BundleError(f"{folder / pre.state_file}: series {wrong[0]!r} has another grid interval "
                          "than the manifest gives it; re-export the bundle")  # fmt: skip
    return primed


def _open_session(path: Path, providers: list[Provider], threads: int) -> ort.InferenceSession:
    opts = ort.SessionOptions()
    opts.log_severity_level = 3
    opts.intra_op_num_threads = threads
    opts.graph_optimization_level = ort.GraphOptimizationLevel.ORT_ENABLE_ALL
    try:
        return ort.InferenceSession(str(path), sess_options=opts, providers=providers)
    except Exception as exc:  # onnxruntime raises its own exception types
        raise BundleError(f"{path}: onnxruntime cannot load it: {exc}") from None


def _check_graph(session: ort.InferenceSession, manifest: ModelManifest, folder: Path) -> None:
    inputs = {i.name: i for i in session.get_inputs()}
    spec = manifest.input
    if spec.name not in inputs:
        raise BundleError(f"{folder}: the graph has no input {spec.name!r} (it has {list(inputs)})")
    shape = inputs[spec.name].shape
    if [d for d in shape[1:]] != spec.shape:
        raise BundleError(
            f"{folder}: graph input shape {shape} does not match the manifest's [batch, *{spec.shape}]"
        )
    if tuple(manifest.preprocessing.record_shape) != tuple(spec.shape):
        raise BundleError(f"{folder}: pre-processing record shape does not match the input shape")
    outputs = {o.name for o in session.get_outputs()}
    if manifest.outputs["score"].name not in outputs:
        raise BundleError(f"{folder}: the graph has no score output {manifest.outputs['score'].name!r}")
    rebuilt = manifest.outputs.get(RECONSTRUCTION_ROLE) if manifest.kind == "metric" else None
    if rebuilt is not None and (rebuilt.name not in outputs or rebuilt.shape != []):
        raise BundleError(f"{folder}: the manifest names a reconstruction output {rebuilt.name!r} of "
                          f"shape {rebuilt.shape}: the graph must have it, one value a window (shape [])")
    if (spec := manifest.outputs.get(MAP_ROLE)) is not None:
        if spec.name not in outputs:
            raise BundleError(f"{folder}: the manifest names an anomaly map output {spec.name!r} that the "
                              "graph does not have")  # fmt: skip
        shape = tuple(manifest.preprocessing.record_shape)
        if manifest.kind != "image" or tuple(spec.shape) != map_shape(shape):
            want = list(map_shape(shape))
            raise BundleError(f"{folder}: an anomaly map belongs to an image model, {want} cells for "
                              f"{list(shape)} images, not {spec.shape} ({manifest.kind})")  # fmt: skip


def _warm_up(model: LoadedModel) -> None:
    """One run at start, so the first real batch does not pay for allocations (or CUDA set-up)."""
    x = np.zeros((2, *model.record_shape), dtype=np.float32)
    score_name = model.manifest.outputs["score"].name
    [scores] = model.session.run([score_name], {model.manifest.input.name: x})
    if scores.shape != (2,):
        raise BundleError(
            f"{model.folder}: warm-up gave scores of shape {scores.shape}: expected one per record"
        )
    if not np.isfinite(scores).all():
        raise BundleError(
            f"{model.folder}: warm-up on an all-zero batch gave non-finite scores ({scores.tolist()}): the "
            "graph's weights or its arithmetic are broken (NaN or inf); re-export the bundle"
        )


class ModelRegistry:
    """The models in service: one version per model name (worker/serving/policy.py picks which), found by
    'name' or 'name:version'. Only the loop changes it, between batches (worker/serving/watch.py)."""

    def __init__(self, models: list[LoadedModel], default: str | None) -> None:
        self._by_name: dict[str, LoadedModel] = {}
        self.providers: list[Provider] = [CPU]  # as ModelRegistry.load chose them
        for m in models:
            other = self._by_name.get(m.manifest.name)
            if other is not None and other.key == m.key:  # else one folder would silently win
                raise BundleError(f"{other.folder} and {m.folder} both hold {m.key}; remove one")
            if other is not None:
                raise BundleError(
                    f"{other.folder} and {m.folder} are both {m.manifest.name}, and one version of a "
                    "model is served: move one to the folder of its name"
                )
            self._by_name[m.manifest.name] = m
        # 'name' follows the version in service; the default is looked up by it at every record.
        self._default = default or (models[0].manifest.name if len(models) == 1 else None)
        if default and self.default is None:
            raise BundleError(f"--default-model {default!r} is not among the loaded models: {self.names()}")
        # (name, version or None) by record kind, split once: looked up for every record naming none
        self._default_of_kind: dict[str, tuple[str, str | None]] = {}
        for kind in {m.manifest.kind for m in models}:
            of_kind = [m for m in models if m.manifest.kind == kind]
            if self.default is not None and self.default.manifest.kind == kind:
                self._default_of_kind[kind] = _split(self._default)
            elif len(of_kind) == 1:
                self._default_of_kind[kind] = (of_kind[0].manifest.name, None)

    @classmethod
    def load(
        cls, repository: Path, device: str, wanted: str | None, default: str | None, threads: int = 0,
        policy: dict[str, str] | None = None, cuda: CudaOptions | None = None,
    ) -> ModelRegistry:  # fmt: skip
        """The versions the policy picks (default: the latest of each) among the bundles `wanted`
        (--models) allows, loaded and checked; BundleError names the first that fails. The providers
        chosen for `device` (with the CUDA options `cuda`) stay in `providers`, for later versions."""
        if not repository.is_dir():
            raise BundleError(
                f"model repository {repository} does not exist; train a bundle with "
                "'python -m training train' or set --model-repository"
            )
        providers = choose_providers(device, cuda)  # logs which it took
        try:
            every = bundle_folders(repository)
            folders = selected_folders(every, wanted)
        except RepositoryError as exc:
            raise BundleError(str(exc)) from None
        if not folders:
            there = sorted({f.parent.name for f in every})
            raise BundleError(
                f"no model bundles (<name>/<version>/{MANIFEST_FILE}) under {repository}"
                + (f" matching --models {wanted}" if wanted else "")
                + (f"; models there: {', '.join(there)}" if wanted and there else "")
            )
        policy = policy or {}
        chosen = chosen_folders(folders, policy)
        for name, folder in chosen.items():
            if folder is None:
                have = sorted((f.name for f in folders if f.parent.name == name), key=version_key)
                raise BundleError(
                    f"no version {policy[name]} of {name} under {repository} (the version policy pins "
                    f"it; versions there: {', '.join(have) or 'none'})"
                )
        models = [load_bundle(f, providers, threads) for f in chosen.values() if f is not None]
        registry = cls(models, default)
        registry.providers = providers
        return registry

    @property
    def default(self) -> LoadedModel | None:
        """The model for records that name none (--default-model, or the only model at start)."""
        return self.resolve(self._default) if self._default else None

    def resolve(self, name: str | None) -> LoadedModel | None:
        """'name' (the version in service), 'name:version' (only if that version is the one in
        service), or None for the default model."""
        if not name:
            return self.default
        return self._serving(*_split(name))

    def resolve_for(self, name: str | None, kind: str) -> LoadedModel | None:
        """Like resolve, but a record that names no model gets the default model of its kind:
        --default-model if it scores this kind, else the only model of this kind at start."""
        if name:
            return self.resolve(name)
        default = self._default_of_kind.get(kind)
        return self._serving(*default) if default else None

    def _serving(self, name: str, version: str | None) -> LoadedModel | None:
        model = self._by_name.get(name)
        if model is None or (version is not None and model.manifest.version != version):
            return None
        return model

    def replace(self, model: LoadedModel) -> LoadedModel | None:
        """Put `model` into service under its name (the loop, between batches); returns the version
        it replaces, if any."""
        old = self._by_name.get(model.manifest.name)
        self._by_name[model.manifest.name] = model
        return old

    def names(self) -> list[str]:
        return sorted(m.key for m in self._by_name.values())

    def __iter__(self):
        return iter(list(self._by_name.values()))


def selected_folders(folders: list[Path], wanted: str | None) -> list[Path]:
    """The bundle folders --models allows (all when it is not set)."""
    if not wanted:
        return folders
    keys = [w.strip() for w in wanted.split(",") if w.strip()]
    return [f for f in folders if f.parent.name in keys or f"{f.parent.name}:{f.name}" in keys]


def _split(name: str) -> tuple[str, str | None]:
    """'name' -> (name, None); 'name:version' -> (name, version)."""
    name, colon, version = name.partition(":")
    return name, version if colon else None
