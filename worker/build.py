"""The composition root: settings in, a Worker out, with its metrics, health, models and Kafka clients.

The CLI builds its worker here, and so do the tests that run one in-process; the demo and the
bench start `python -m worker` (tooling/process.py), which comes here too.
"""

from __future__ import annotations

import logging
from functools import partial

from prometheus_client import CollectorRegistry

from worker.app import Parts, Worker
from worker.batch import Batcher
from worker.checkpoint import Checkpoint
from worker.health import Health, serve
from worker.kafka.protocol import Sink, Source
from worker.kinds import kinds_for
from worker.lag import QUERY_TIMEOUT_S, LagProbe
from worker.metrics import Metrics, new_metrics
from worker.publish import DEFAULT_MAX_OUTPUT_BYTES, Publisher
from worker.score import ScoreStage
from worker.serving.policy import policy_for
from worker.serving.registry import ModelRegistry
from worker.serving.watch import RepositoryWatcher
from worker.settings import WorkerSettings
from worker.source import check_topics, check_unpacking, connect, max_output_bytes, offsets_client
from worker.summary import Summary
from worker.swaps import ModelSwaps, show_model_metrics
from worker.transaction import TransactionalCheckpoint, Transactions

log = logging.getLogger("worker")


def build_worker(s: WorkerSettings, registry: CollectorRegistry | None = None) -> Worker:
    """A worker ready to run(): the metrics server up (unless --metrics-port 0), models loaded and
    checked, clients connected, topics checked. `registry`: where its metrics go (default: a new one)."""
    metrics, registry = new_metrics(registry)
    health = Health(load_timeout_s=s.model_load_timeout_s)
    if s.metrics_port:  # first, so /healthz and /readyz answer while the models load
        server = serve(s.metrics_host, s.metrics_port, registry, health)
        log.info(
            "metrics on http://%s:%d/metrics (also /healthz, /readyz)", s.metrics_host, server.server_port
        )
    policy = policy_for(s.version_policy, s.default_model, s.version_policy_file)
    models = ModelRegistry.load(s.model_repository, s.device, s.models, s.default_model, s.intra_op_threads,
                                policy, s.cuda_options())  # fmt: skip
    for m in models:
        log.info("loaded %s (threshold %.3f) on %s", m.key, m.manifest.threshold, ",".join(m.providers))
        show_model_metrics(metrics, m)
    health.models_loaded = True
    reread = partial(policy_for, s.version_policy, s.default_model, s.version_policy_file)
    watcher = RepositoryWatcher(s.model_repository, models.providers, models, metrics, policy,
                                s.models, s.model_poll_interval_s, s.intra_op_threads,
                                reread if s.version_policy_file else None)  # fmt: skip
    consumer, producer = connect(s, health)
    check_topics(s, consumer)
    check_unpacking(s, consumer)
    producer.prepare(s.output_topics)
    limit = max_output_bytes(s, consumer, producer)
    log.info("outputs are kept under %d bytes (the producer's and the output topics' limits)", limit)
    lag = LagProbe(metrics, partial(offsets_client, s, QUERY_TIMEOUT_S))  # connects on its own thread
    checkpoint = None
    if s.exactly_once:  # outputs and offsets in one transaction per commit (worker/transaction.py)
        producer = Transactions(producer, health, s.transaction_timeout_ms / 1000 + 5)
        checkpoint = TransactionalCheckpoint(consumer, producer, metrics, health, s.commit_interval_ms,
                                             s.output_timeout_ms())  # fmt: skip
        log.info("exactly-once: transactional.id %s; readers of the outputs need "
                 "isolation.level=read_committed", s.producer_transactional_id())  # fmt: skip
    return wire(s, models, consumer, producer, metrics, health, max_output_bytes=limit, lag=lag,
                watcher=watcher, checkpoint=checkpoint)  # fmt: skip


def wire(
    s: WorkerSettings, models: ModelRegistry, consumer: Source, producer: Sink, metrics: Metrics,
    health: Health, max_output_bytes: int = DEFAULT_MAX_OUTPUT_BYTES, lag: LagProbe | None = None,
    watcher: RepositoryWatcher | None = None, checkpoint: Checkpoint | None = None,
) -> Worker:  # fmt: skip
    """The loop's parts around connected clients and loaded models (the tests wire stand-ins here):
    at least once unless `checkpoint` says otherwise; no lag client or watcher unless given."""
    kinds = kinds_for(models, s)
    batcher = Batcher(s.max_batch, s.max_wait_ms)
    scoring = ScoreStage(s.max_batch, io_binding=s.io_binding, explain=s.explain)
    checkpoint = checkpoint or Checkpoint(consumer, producer, metrics, health, s.commit_interval_ms,
                                          s.output_timeout_ms())  # fmt: skip
    publisher = Publisher(producer, s.alerts_topic, s.dead_letter_topic, s.scores_topic, metrics,
                          sent=checkpoint.expect, max_output_bytes=max_output_bytes)  # fmt: skip
    parts = Parts(
        kinds=kinds, batcher=batcher, scoring=scoring, checkpoint=checkpoint, publisher=publisher,
        lag=lag if lag is not None else LagProbe(metrics),
        swaps=ModelSwaps(watcher, models, kinds, batcher, scoring, metrics, s),
        summary=Summary(metrics, s.summary_interval_s),
    )  # fmt: skip
    return Worker(s, models, consumer, producer, metrics, health, parts)
