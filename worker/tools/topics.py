"""`python -m worker topics create NAMES`: input topics as docs/worker.md#topics advises.

- stored uncompressed (`compression.type=uncompressed`): the broker refuses a batch that unpacks past
  the topic's max.message.bytes, so no compression bomb reaches a worker (a confluent worker will not
  start on an input topic stored otherwise);
- replicated on up to 3 brokers, with `min.insync.replicas` one less (2 of 3): acknowledged input
  survives the loss of a broker;
- as many partitions as workers you may run (a group shares partitions; more workers sit idle).

A topic that exists already is left as it is: the command says how it differs from the advice.
"""

from __future__ import annotations

import sys

from kafka.admin import ConfigResource, ConfigResourceType, KafkaAdminClient, NewTopic
from pydantic import Field
from pydantic_settings import BaseSettings, CliPositionalArg

from worker.tools.common import connection, run_tool, tool_config

ADVISED = {"compression.type": "uncompressed"}


class TopicSettings(BaseSettings):
    """Create input topics for the worker: stored uncompressed, replicated, with the partitions you ask."""

    model_config = tool_config("topics create", "TOPICS")

    names: CliPositionalArg[str] = Field(description="topic name(s), comma-separated")
    partitions: int = Field(3, ge=1, description="partitions per topic: the most workers of one group that "
                            "get work")  # fmt: skip
    replication_factor: int | None = Field(
        None, ge=1, description="copies of each partition; default: 3, or the brokers there are if fewer"
    )
    bootstrap_servers: str | None = Field(
        None, description="Kafka to create them on; default: WORKER_BOOTSTRAP_SERVERS (localhost:9092)"
    )


def create(s: TopicSettings) -> list[str]:
    """Create the topics; one line per topic saying what was made, or how an existing one differs."""
    admin = KafkaAdminClient(**connection(s.bootstrap_servers), client_id="anomaly-worker-topics")
    try:
        brokers = len(admin.describe_cluster()["brokers"])
        replicas = s.replication_factor or min(3, brokers)
        configs = {**ADVISED, **({"min.insync.replicas": str(replicas - 1)} if replicas > 1 else {})}
        names = [n.strip() for n in s.names.split(",") if n.strip()]
        existing = set(admin.list_topics())
        lines = []
        for name in names:
            if name in existing:
                lines.append(_existing(admin, name))
                continue
            admin.create_topics([NewTopic(name, s.partitions, replicas, topic_configs=configs)])
            lines.append(f"created {name}: {s.partitions} partitions, {replicas} replicas, "
                         + ", ".join(f"{k}={v}" for k, v in configs.items()))  # fmt: skip
        return lines
    finally:
        admin.close()


def _existing(admin: KafkaAdminClient, name: str) -> str:
    resource = ConfigResource(ConfigResourceType.TOPIC, name)
    [response] = admin.describe_configs([resource])
    values = {entry[0]: entry[1] for entry in response.resources[0][4]}
    differs = {k: values.get(k) for k, v in ADVISED.items() if values.get(k) != v}
    if not differs:
        return f"{name} exists already, stored as advised"
    fix = " ".join(f"--add-config {k}={v}" for k, v in ADVISED.items())
    return (f"{name} exists already, with {', '.join(f'{k}={v}' for k, v in differs.items())}: left as it is "
            f"(kafka-configs.sh --alter --entity-type topics --entity-name {name} {fix})")  # fmt: skip


# Each sub-command and its usage line (its own --help has the full text).
SUB_COMMANDS = {
    "create": ("create NAMES [--partitions N] [--replication-factor R] [--bootstrap-servers HOST:PORT]",
               "create input topics as advised; one that exists is left as it is, with how it differs"),
}  # fmt: skip


def usage() -> str:
    """What `python -m worker topics --help` prints: the sub-commands, and how to see their options."""
    lines = [f"usage: python -m worker topics {{{','.join(SUB_COMMANDS)}}} ...", ""]
    lines += ["Input topics for the worker, as docs/worker.md#topics advises.", "", "sub-commands:"]
    for name, (line, what) in SUB_COMMANDS.items():
        lines += [f"  {line}", f"      {what}", f"      python -m worker topics {name} --help: every option"]
    return "\n".join(lines)


def main(argv: list[str]) -> int:
    if argv and argv[0] in ("-h", "--help", "help"):
        print(usage())
        return 0
    if not argv or argv[0] not in SUB_COMMANDS:
        said = f"no sub-command {argv[0]!r}" if argv else "name a sub-command"
        print(f"worker topics: {said}; one of: {', '.join(SUB_COMMANDS)} (--help for more)\n"
              f"usage: python -m worker topics {SUB_COMMANDS['create'][0]}", file=sys.stderr)  # fmt: skip
        return 2
    return run_tool("topics", TopicSettings, argv[1:], lambda s: print("\n".join(create(s))))
