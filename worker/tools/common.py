"""What the tools share: their Kafka connection, from the worker's own settings, checked as the worker
checks it (so a wrong address or login is said in the worker's words), and how they exit."""

from __future__ import annotations

import sys
from collections.abc import Callable
from typing import TypeVar

from kafka.errors import KafkaError
from pydantic_settings import BaseSettings, SettingsConfigDict

from schemas.settings import SettingsError, load_settings
from worker.kafka.kafka_python import check_connection, connection_errors_said_once, connection_options
from worker.kafka.protocol import KafkaConfigError, StartupError
from worker.settings import WorkerSettings

S = TypeVar("S", bound=BaseSettings)

# Topics a cluster keeps for itself (offsets, transactions): never what a person means by --topic.
INTERNAL_PREFIX = "__"


class Refused(Exception):
    """An option the tool will not act on as given (a topic that does not exist): the message says
    what to change. Exits 2, as a bad option does."""


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
    """Parse `argv` into `settings_cls` and run `body`: exit 2 for a bad option, a refused one or
    Kafka security settings that do not fit the broker, 1 for a broker that cannot be reached or one
    of `failures` (each said in one line), 0 otherwise (Ctrl-C included). As the worker exits."""
    try:
        s = load_settings(settings_cls, argv)
    except SettingsError as exc:
        print(f"worker {tool}: {exc.message}", file=sys.stderr)
        return 2
    try:
        body(s)
    except KeyboardInterrupt:
        return 0
    except (Refused, KafkaConfigError) as exc:  # a setting to change
        print(f"worker {tool}: {exc}", file=sys.stderr)
        return 2
    except (StartupError, *failures) as exc:  # StartupError: no broker answered (it may come back)
        print(f"worker {tool}: {exc}", file=sys.stderr)
        return 1
    return 0


def connection(bootstrap_servers: str | None) -> dict[str, object]:
    """kafka-python options for the cluster the worker would reach: the WORKER_* variables (security,
    SASL, TLS), with --bootstrap-servers over WORKER_BOOTSTRAP_SERVERS when given. Checked first, as
    the worker checks it: a broker that does not answer, or does not take the login, raises the
    worker's own StartupError ("cannot reach Kafka at ...; check --bootstrap-servers / ...") where
    kafka-python would say only NoBrokersAvailable."""
    s = WorkerSettings(**({"bootstrap_servers": bootstrap_servers} if bootstrap_servers else {}))
    with connection_errors_said_once():  # kafka-python logs each failed attempt at ERROR
        check_connection(s)
    return connection_options(s.connection())


def user_topics(names: set[str]) -> list[str]:
    """The topics a person may mean, sorted: those the cluster keeps for itself left out."""
    return sorted(n for n in names if not n.startswith(INTERNAL_PREFIX))


def listed(names: list[str], most: int = 20) -> str:
    """Names for a one-line message: the first `most`, then how many more."""
    if not names:
        return "none"
    more = f" (and {len(names) - most} more)" if len(names) > most else ""
    return ", ".join(names[:most]) + more
