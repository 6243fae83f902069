"""WorkerSettings: every option as a CLI flag (--max-batch) and an environment variable (WORKER_MAX_BATCH)."""

from __future__ import annotations

import inspect
import socket
from pathlib import Path
from typing import Literal

from pydantic import Field, SecretStr, field_validator, model_validator
from pydantic_core import PydanticCustomError
from pydantic_settings import BaseSettings, SettingsConfigDict

from schemas import DEFAULT_MAX_BYTES
from worker.identity import host_slot
from worker.kafka.connection import KafkaConnection, SaslMechanism, SecurityProtocol
from worker.kafka.transports import TRANSPORTS, TransportName
from worker.serving.device import CudaOptions
from worker.serving.policy import parse_version_policy, policy_for

# Exactly-once: what a transaction needs beside its outputs' wait for acknowledgement (the commit
# interval, scoring what is in hand, the commit itself).
TRANSACTION_SLACK_MS = 10_000


class WorkerSettings(BaseSettings):
    """Score image and metric records from Kafka with a VAE bundle; publish alerts and dead letters.
    Chores beside it: `python -m worker topics create --help` (input topics as advised),
    `python -m worker send --help` (a CSV of KPI series or a .jsonl of records onto a topic) and
    `python -m worker follow --help` (print the alerts and dead letters as they come)."""

    model_config = SettingsConfigDict(
        env_prefix="WORKER_",
        cli_kebab_case=True,
        cli_prog_name="python -m worker",
        cli_implicit_flags=True,
        cli_hide_none_type=True,  # --help: `str`, not `{str,null}`
        frozen=True,
    )

    # Kafka
    bootstrap_servers: str = Field("localhost:9092", description="Kafka bootstrap servers, host:port,...")
    input_topics: str = Field("images", description="comma-separated topics to consume")
    alerts_topic: str = Field("alerts", description="topic for AnomalyAlert messages")
    dead_letter_topic: str = Field("dead-letters", description="topic for records that cannot be scored")
    scores_topic: str | None = Field(
        None, description="optional topic for the score of every record that is not an alert"
    )
    group_id: str = Field(
        "anomaly-worker", description="consumer group; workers of one group share partitions"
    )
    auto_offset_reset: Literal["earliest", "latest"] = Field(
        "earliest", description="where a new group starts reading"
    )
    max_poll_records: int = Field(2000, ge=1, description="most records one poll returns")
    delivery_timeout_ms: int = Field(
        120_000,
        ge=10_000,
        description="how long an output may wait for the broker's acknowledgement (Kafka's "
        "delivery.timeout.ms): meanwhile the worker stops consuming and retries; past it the output "
        "counts as lost and the worker exits 1 without committing past it",
    )
    session_timeout_ms: int = Field(
        30_000,
        ge=6_000,
        description="consumer group session timeout: longer than a broker failover (KRaft notices a "
        "lost broker after 9 s), so losing the group coordinator's broker costs no rejoin",
    )
    group_instance_id: str | None = Field(
        None,
        description="static group membership (Kafka's group.instance.id): a stable name unique in the "
        "group, such as a StatefulSet pod's name. A worker restarted under it within "
        "--session-timeout-ms gets its partitions back at once, with no rebalance; without it a "
        "restart after a crash waits out the dead member's session first. Two running workers with "
        "the same name: the newer fences the older",
    )
    heartbeat_interval_ms: int = Field(3_000, ge=500, description="consumer group heartbeat interval")
    kafka_wait_s: float = Field(
        0,
        ge=0,
        description="at start, how long to wait for an unreachable Kafka, retrying with backoff "
        "(not ready meanwhile); 0 = keep trying",
    )
    commit_interval_ms: int = Field(
        1000, ge=0, description="commit (after flushing the outputs) at most this often; 0 = every batch"
    )
    processing_guarantee: Literal["at-least-once", "exactly-once"] = Field(
        "at-least-once",
        description="at-least-once: outputs are acknowledged before their inputs are committed (a crash "
        "may repeat some); exactly-once: each commit is one Kafka transaction holding the outputs "
        "(alerts, scores, dead letters) and the input offsets, made after scoring every record in hand "
        "(every --commit-interval-ms), so readers of the outputs that set isolation.level="
        "read_committed see each output once; costs a transaction per commit and makes outputs "
        "visible to them only when it commits; needs --transport confluent",
    )
    transaction_timeout_ms: int = Field(
        60_000,
        ge=20_000,
        le=900_000,
        description="exactly-once only: Kafka's transaction.timeout.ms. The broker aborts a transaction "
        "older than this; one left open by a worker that died is aborted then (sooner if a worker with "
        "the same transactional.id starts), and until then read_committed readers of its partitions "
        "wait. An output waits for its acknowledgement at most this minus 10 s (--delivery-timeout-ms "
        "if lower), and a transactional call that does not return by then stops the worker (exit 1)",
    )
    transactional_id: str | None = Field(
        None,
        description="exactly-once only: the transactional.id of this worker's producer; default "
        "<group id>-<host name>-<n>, n the lowest number free among this host's workers of the group: "
        "so two workers never fence each other, and one restarted on its host (or a StatefulSet's pod "
        "with its name) aborts its predecessor's open transaction at once. A worker that comes back "
        "under another name (a Deployment's new pod) cannot: read_committed readers wait up to "
        "--transaction-timeout-ms for the broker to abort it",
    )
    max_message_bytes: int = Field(DEFAULT_MAX_BYTES, ge=64, description="larger records are dead-lettered")
    max_unpacked_bytes: int = Field(
        32 * 1024 * 1024,
        ge=1024 * 1024,
        description="kafka-python: a compressed record batch that unpacks to more is refused before it "
        "is all unpacked (its records are dead-lettered), and one poll unpacks about this much at most; "
        "at least --max-message-bytes. With --transport confluent it bounds zstd batches only, and "
        "not below 16 MiB (librdkafka unpacks gzip, lz4 and snappy whole: see --unbounded-unpacking)",
    )
    unbounded_unpacking: Literal["warn", "refuse"] = Field(
        "refuse",
        description="--transport confluent: librdkafka unpacks gzip, lz4 and snappy batches whole, "
        "with no limit a client can set, so one small compressed batch can take gigabytes. Safe only "
        "when every input topic stores its batches uncompressed (topic config "
        "compression.type=uncompressed: the broker then refuses any batch that unpacks past its "
        "max.message.bytes). Otherwise the worker will not start (refuse, the default), or starts "
        "saying so at WARNING (warn: the operator accepts that memory depends on what producers send)",
    )

    # Models
    model_repository: Path = Field(Path("models"), description="folder of <name>/<version>/ bundles")
    default_model: str | None = Field(
        None,
        description="model for records that name none: 'name' (its latest version) or 'name:version'; "
        "default: the only model, if there is one",
    )
    models: str | None = Field(
        None,
        description="comma-separated models that may be served (name or name:version); default: all; "
        "of each model one version is served, as --version-policy says",
    )
    version_policy: str | None = Field(
        None,
        description="which version of each model is served: comma-separated name=latest (the default "
        "for every model) or name=<version> (pinned), e.g. mnist-vae=3,kpi-vae=latest. A new latest "
        "version, or a changed pin, goes into service without a restart (see --model-poll-interval-s); "
        "--default-model name:version also pins name",
    )
    version_policy_file: Path | None = Field(
        None,
        description="a file of version policy entries (as --version-policy, comma- or line-separated, "
        "# comments) that win over --version-policy; read again at every look at the repository, so "
        "pinning an older version there rolls back without a restart",
    )
    model_poll_interval_s: float = Field(
        10.0,
        ge=0,
        description="how often to look at --model-repository for versions to put into service (new, "
        "pinned, or an older one when the newest folder is removed); each is checked like a bundle at "
        "start and refused, the running version staying, if it fails; 0 = load at start only",
    )
    model_load_timeout_s: float = Field(
        600.0,
        gt=0,
        description="/healthz turns 503 (so an orchestrator restarts the worker) if loading the models "
        "at start takes longer than this: a hung load (a device or storage that never answers); "
        "waiting for Kafka afterwards is never cut short",
    )
    max_batch: int = Field(256, ge=1, le=65536, description="most records per inference call")
    max_wait_ms: int = Field(
        10, ge=0, description="longest a record waits for its batch to fill (under load, batches fill sooner)"
    )
    max_series: int = Field(
        100_000,
        ge=1,
        description="metric series held per metric model; beyond it the least recently updated "
        "series is evicted (and warms up again if it returns)",
    )
    max_series_bytes: int = Field(
        256 * 1024 * 1024,
        ge=1024,
        description="bytes of series state (keys, windows, detector state) per metric model; beyond it "
        "the least recently updated series are evicted, as for --max-series",
    )
    max_series_key_bytes: int = Field(
        4096,
        ge=64,
        description="longest series key (name and labels, as in alerts' series_key); a point with a "
        "longer one is dead-lettered (too_large)",
    )
    export_series: str = Field(
        "",
        description="metric series whose value, expected value and band go to /metrics as gauges "
        "(anomaly_worker_series_value, _expected, _lower, _upper, and _alerts_total), for a dashboard to "
        "draw: comma-separated shell-style patterns matched against the series key (name{labels}, as in "
        "alerts' series_key), e.g. 'checkout.*,api.latency_p99{host=\"a\"}'; empty: none",
    )
    export_series_max: int = Field(
        50,
        ge=1,
        le=10_000,
        description="most series --export-series exports per metric model (the first that match); the "
        "rest are not exported, with a warning: each exported series is 5 time series in Prometheus",
    )
    device: Literal["auto", "cuda", "cpu"] = Field(
        "auto", description="auto: CUDA when a GPU is present, else CPU"
    )
    intra_op_threads: int = Field(
        1,
        ge=0,
        description="onnxruntime threads per inference; 1 suits one worker per core "
        "(measured faster on 2 cores: the consume loop keeps the other), 0 = all cores",
    )
    gil_switch_interval_ms: float | None = Field(
        None,
        gt=0,
        le=100,
        description="how long a thread waiting for Python's GIL waits before the running one must hand "
        "it over. Unset: 0.5 while the worker serves an image model, else Python's own 5. The scoring "
        "thread needs the GIL twice a batch, to take the batch and after onnxruntime returns: at 5 ms it "
        "waited about a fifth of its time, and 0.5 ms drained images 4-9 % faster with kafka-python "
        "(confluent: no clear effect); the metric path, Python on the loop's thread, scored 15-66 % "
        "more windows/s at 5 ms (docs/results.md)",
    )
    io_binding: Literal["auto", "on", "off"] = Field(
        "auto",
        description="score through onnxruntime IO binding (the batch's rows bound in place, the scores "
        "written into a buffer preallocated for --max-batch: one copy to the device and one back per "
        "batch) or plain run(); auto: on, with CUDA and on the CPU, where it measured at least as fast "
        "as run() (docs/results.md, IO binding); off: plain run()",
    )
    cuda_graphs: bool = Field(
        False,
        description="CUDA only: capture the model as a CUDA graph (the CUDA provider's enable_cuda_graph) "
        "and replay it for every batch; every call then runs --max-batch rows (a short batch is padded) "
        "through fixed device buffers. Ignored, with a log line, on the CPU",
    )
    cuda_device_id: int = Field(0, ge=0, description="CUDA only: which GPU (the CUDA provider's device_id)")
    explain: bool = Field(
        True,
        description="image alerts carry an anomaly map (where the error lies, and the box around the most "
        "anomalous region: docs/wire-format.md#anomaly-maps), from models whose graph computes one; "
        "--no-explain: alerts without it, and the maps are not read back from the graph",
    )
    cuda_mem_limit_bytes: int = Field(
        0,
        ge=0,
        description="CUDA only: cap of onnxruntime's GPU memory arena in bytes (gpu_mem_limit); 0 = none",
    )
    cudnn_conv_algo_search: Literal["EXHAUSTIVE", "HEURISTIC", "DEFAULT"] = Field(
        "HEURISTIC",
        description="CUDA only: how cuDNN picks convolution algorithms. EXHAUSTIVE (onnxruntime's default) "
        "benchmarks them at each new batch shape, and batches come in every size up to --max-batch; "
        "HEURISTIC uses cuDNN's ranking; DEFAULT takes one fixed algorithm (least memory)",
    )

    # Observability
    metrics_host: str = Field("0.0.0.0", description="address of the /metrics, /healthz, /readyz server")
    metrics_port: int = Field(9108, ge=0, le=65535, description="port of that server (0 = no server)")
    log_level: Literal["DEBUG", "INFO", "WARNING", "ERROR"] = Field("INFO", description="log level")
    summary_interval_s: float = Field(
        60.0,
        ge=0,
        description="log one INFO line this often saying what the worker did since the last one "
        "(records and their rate, scored, alerts, dead letters by reason, lag); 0 = never",
    )
    log_json: bool = Field(False, description="log one JSON object per line")

    transport: TransportName = Field(
        "kafka-python",
        description="Kafka client: kafka-python (pure Python, the default) or confluent (librdkafka, "
        "needs the [confluent] extra; 1.5-2x the throughput on 2 cores)",
    )

    # Kafka security
    security_protocol: SecurityProtocol = Field("PLAINTEXT", description="Kafka security.protocol")
    sasl_mechanism: SaslMechanism | None = Field(None, description="Kafka sasl.mechanism")
    sasl_username: str | None = Field(None, description="SASL user name")
    sasl_password: SecretStr | None = Field(
        None, description="SASL password (never logged); set WORKER_SASL_PASSWORD: argv is public"
    )
    sasl_password_file: Path | None = Field(
        None, description="file holding the SASL password (a trailing newline is dropped)"
    )
    ssl_cafile: Path | None = Field(None, description="CA certificate file (PEM)")
    ssl_certfile: Path | None = Field(None, description="client certificate file (PEM)")
    ssl_keyfile: Path | None = Field(None, description="client private key file (PEM)")

    @field_validator("input_topics")
    @classmethod
    def _topics_not_empty(cls, value: str) -> str:
        if not [t for t in value.split(",") if t.strip()]:
            raise ValueError("name at least one topic")
        return value

    @field_validator("sasl_password_file")
    @classmethod
    def _file_readable(cls, path: Path | None) -> Path | None:
        # Checked here so the error names the flag; the clients would fail later, naming neither.
        if path is not None:
            _read_file(path)
        return path

    @field_validator("ssl_cafile", "ssl_certfile", "ssl_keyfile")
    @classmethod
    def _pem_readable(cls, path: Path | None) -> Path | None:
        # kafka-python says only "No such file" for a missing one, and both clients fail an unreadable
        # one at the first TLS handshake, naming no setting.
        if path is not None and "-----BEGIN " not in _read_file(path):
            raise PydanticCustomError("file", "{path} is not a PEM file (no -----BEGIN)", {"path": str(path)})
        return path

    @field_validator("version_policy")
    @classmethod
    def _policy_readable(cls, value: str | None) -> str | None:
        try:
            parse_version_policy(value)
        except ValueError as exc:
            raise PydanticCustomError("policy", str(exc)) from None
        return value

    @model_validator(mode="after")
    def _policy_fits_default_model(self) -> WorkerSettings:
        try:
            policy_for(self.version_policy, self.default_model, self.version_policy_file)
        except OSError as exc:
            why = {"path": str(self.version_policy_file), "why": exc.strerror or str(exc)}
            raise PydanticCustomError(
                "policy", "--version-policy-file / WORKER_VERSION_POLICY_FILE: cannot read {path}: {why}", why
            ) from None
        except ValueError as exc:
            raise PydanticCustomError("policy", str(exc)) from None
        return self

    @model_validator(mode="after")
    def _exactly_once_needs_confluent(self) -> WorkerSettings:
        # kafka-python's transactions send the offsets with the group id alone (TxnOffsetCommit v2, no
        # KIP-447 generation check): a worker that lost its partitions could still commit them.
        if self.processing_guarantee == "exactly-once" and not TRANSPORTS[self.transport].transactions:
            raise PydanticCustomError(
                "guarantee",
                "--processing-guarantee / WORKER_PROCESSING_GUARANTEE exactly-once needs --transport / "
                "WORKER_TRANSPORT confluent (kafka-python's transactions cannot fence a worker that "
                "lost its partitions)",
            )
        return self

    @model_validator(mode="after")
    def _security_consistent(self) -> WorkerSettings:
        """The combinations the Kafka clients take but cannot work with: each fails here, naming what
        to set, instead of as a late connection error (or a traceback) from the client."""
        for problem in (_sasl_problem(self), _password_problem(self), _tls_problem(self)):
            if problem:
                raise PydanticCustomError("security", problem)
        return self

    def sasl_secret(self) -> str | None:
        """The SASL password from --sasl-password or from --sasl-password-file (read now, so a
        rotated file is picked up at the next start)."""
        if self.sasl_password is not None:
            return self.sasl_password.get_secret_value()
        if self.sasl_password_file is not None:
            return _password_from(self.sasl_password_file)
        return None

    def cuda_options(self) -> CudaOptions:
        """The CUDA provider's options (worker/serving/device.py), used only where CUDA is chosen."""
        return CudaOptions(self.cuda_device_id, self.cuda_mem_limit_bytes, self.cudnn_conv_algo_search,
                           self.cuda_graphs)  # fmt: skip

    @property
    def topics(self) -> list[str]:
        return [t.strip() for t in self.input_topics.split(",") if t.strip()]

    @property
    def exactly_once(self) -> bool:
        return self.processing_guarantee == "exactly-once"

    def start_warnings(self) -> list[str]:
        """Settings that are taken but do nothing here: said at WARNING at start."""
        out = []
        if self.transactional_id and not self.exactly_once:
            out.append("--transactional-id / WORKER_TRANSACTIONAL_ID is ignored: it is used only with "
                       "--processing-guarantee exactly-once")  # fmt: skip
        lowered = self.exactly_once and self.delivery_timeout_ms > self.output_timeout_ms()
        if lowered and "delivery_timeout_ms" in self.model_fields_set:
            wait, asked = self.output_timeout_ms() / 1000, self.delivery_timeout_ms / 1000
            out.append(f"exactly-once: outputs wait at most {wait:.0f} s for their acknowledgement, not "
                       f"the {asked:.0f} s of --delivery-timeout-ms: a transaction must end within "
                       "--transaction-timeout-ms (minus 10 s)")  # fmt: skip
        return out

    def output_timeout_ms(self) -> int:
        """How long an output may wait for its acknowledgement: --delivery-timeout-ms, and in exactly-once
        no longer than its transaction leaves (librdkafka requires it within transaction.timeout.ms)."""
        if self.exactly_once:
            return min(self.delivery_timeout_ms, self.transaction_timeout_ms - TRANSACTION_SLACK_MS)
        return self.delivery_timeout_ms

    def producer_transactional_id(self) -> str:
        """--transactional-id, or <group id>-<host name>-<slot>: the slot is the lowest one free among
        this host's workers of the group (worker/identity.py), so two never share an id, and one
        restarted on its host takes its predecessor's back (aborting its open transaction at once)."""
        if self.transactional_id:
            return self.transactional_id
        return f"{self.group_id}-{socket.gethostname()}-{host_slot(self.group_id)}"

    @property
    def output_topics(self) -> list[str]:
        return [t for t in (self.alerts_topic, self.dead_letter_topic, self.scores_topic) if t]

    def connection(self) -> KafkaConnection:
        """Where and how to reach the cluster, for every client the worker builds."""
        return KafkaConnection(
            bootstrap_servers=tuple(self.bootstrap_servers.split(",")),
            security_protocol=self.security_protocol,
            sasl_mechanism=self.sasl_mechanism,
            sasl_username=self.sasl_username,
            sasl_password=SecretStr(self.sasl_secret() or "") if self.sasl_mechanism else None,
            ssl_cafile=self.ssl_cafile,
            ssl_certfile=self.ssl_certfile,
            ssl_keyfile=self.ssl_keyfile,
        )


WorkerSettings.__doc__ = inspect.cleandoc(WorkerSettings.__doc__ or "")  # --help prints it as it is

PASSWORD_FROM = "WORKER_SASL_PASSWORD or --sasl-password-file / WORKER_SASL_PASSWORD_FILE"


def _read_file(path: Path) -> str:
    try:
        return path.read_text()
    except FileNotFoundError:
        error = PydanticCustomError("file", "no such file: {path}", {"path": str(path)})
    except (OSError, UnicodeDecodeError) as exc:
        why = exc.strerror if isinstance(exc, OSError) else "not text"
        error = PydanticCustomError("file", "cannot read {path}: {why}", {"path": str(path), "why": why})
    raise error from None


def _password_from(path: Path) -> str:
    text = _read_file(path)
    return text.removesuffix("\n").removesuffix("\r")  # the newline an editor or `echo` adds


def _sasl_problem(s: WorkerSettings) -> str | None:
    sasl_protocol = s.security_protocol.startswith("SASL_")
    if sasl_protocol and not s.sasl_mechanism:
        return (f"--security-protocol {s.security_protocol} needs a SASL mechanism: set --sasl-mechanism / "
                "WORKER_SASL_MECHANISM (PLAIN, SCRAM-SHA-256 or SCRAM-SHA-512)")  # fmt: skip
    if s.sasl_mechanism and not sasl_protocol:
        return (f"--sasl-mechanism {s.sasl_mechanism} needs --security-protocol / WORKER_SECURITY_PROTOCOL "
                f"SASL_PLAINTEXT or SASL_SSL ({s.security_protocol} sends no login)")  # fmt: skip
    if s.sasl_mechanism and not s.sasl_username:
        return (f"--sasl-mechanism {s.sasl_mechanism} needs a user name: set --sasl-username / "
                "WORKER_SASL_USERNAME")  # fmt: skip
    return None


def _password_problem(s: WorkerSettings) -> str | None:
    if s.sasl_password is not None and s.sasl_password_file is not None:
        return ("--sasl-password / WORKER_SASL_PASSWORD and --sasl-password-file / WORKER_SASL_PASSWORD_FILE "
                "are both set: keep one")  # fmt: skip
    if s.sasl_mechanism and not s.sasl_secret():
        where = f"{s.sasl_password_file} is empty" if s.sasl_password_file else "none is set"
        return f"--sasl-mechanism {s.sasl_mechanism} needs a password ({where}): set {PASSWORD_FROM}"
    return None


def _tls_problem(s: WorkerSettings) -> str | None:
    files = [f"--{name.replace('_', '-')}" for name in ("ssl_cafile", "ssl_certfile", "ssl_keyfile")
             if getattr(s, name) is not None]  # fmt: skip
    if files and not s.security_protocol.endswith("SSL"):
        verb = "needs" if len(files) == 1 else "need"
        return (f"{', '.join(files)} {verb} TLS, but --security-protocol / WORKER_SECURITY_PROTOCOL is "
                f"{s.security_protocol}: use SSL or SASL_SSL")  # fmt: skip
    return None
