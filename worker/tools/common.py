"""What the tools share: their Kafka connection, from the worker's own settings."""

from __future__ import annotations

import sys
from collections.abc import Callable
from typing import TypeVar

from kafka.errors import KafkaError
from pydantic_settings import BaseSettings, SettingsConfigDict

from schemas.settings import SettingsError, load_settings
from worker.kafka.kafka_python import connection_options
from worker.settings import WorkerSettings

S = TypeVar("S", bound=BaseSettings)


def tool_config(tool: str, prefix: str) -> SettingsConfigDict:
    """The settings model config every tool shares: WORKER_<PREFIX>_* variables, kebab-case flags."""
    return SettingsConfigDict(
        env_prefix=f"WORKER_{prefix}_",
        cli_kebab_case=True,
        cli_implicit_flags=True,
        frozen=True,
        cli_prog_name=f"python -m worker {tool}",
        cli_hide_none_type=True,
    )


def run_tool(tool: str, settings_cls: type[S], argv: list[str], body: Callable[[S], None],
             failures: tuple[type[BaseException], ...] = (KafkaError,)) -> int:  # fmt: skip
    """Parse `argv` into `settings_cls` and run `body`: exit 2 for a bad option, 1 for one of
    `failures` (said in one line), 0 otherwise (Ctrl-C included)."""
    try:
        s = load_settings(settings_cls, argv)
    except SettingsError as exc:
        print(f"worker {tool}: {exc.message}", file=sys.stderr)
        return 2
    try:
        body(s)
    except KeyboardInterrupt:
        return 0
    except failures as exc:
        print(f"worker {tool}: {exc}", file=sys.stderr)
        return 1
    return 0


def connection(bootstrap_servers: str | None) -> dict[str, object]:
    """kafka-python options for the cluster the worker would reach: the WORKER_* variables (security,
    SASL, TLS), with --bootstrap-servers over WORKER_BOOTSTRAP_SERVERS when given."""
    s = WorkerSettings(**({"bootstrap_servers": bootstrap_servers} if bootstrap_servers else {}))
    return connection_options(s.connection())
