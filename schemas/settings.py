"""Settings from CLI flags and environment variables, with errors a person can act on.

Every program has one frozen pydantic-settings model; `load_settings` parses the
command line (kebab-case flags) over the environment (the model's env prefix) and
turns a validation error into one line per bad option that names both spellings.
"""

from __future__ import annotations

import sys
from typing import Any, TypeVar

from pydantic import SecretStr, ValidationError
from pydantic_settings import BaseSettings, CliApp, CliSettingsSource

S = TypeVar("S", bound=BaseSettings)


class SettingsError(SystemExit):
    """Bad configuration: the message says which flag / variable and why. Exits 2."""

    def __init__(self, message: str) -> None:
        super().__init__(2)
        self.message = message


class ReadableCli(CliSettingsSource):
    """--help as a person reads it: a secret's type is `str`, and an option unset by default shows no
    `(default: null)` (its description says what unset means, and a default said there once)."""

    def _help_format(self, *args: Any, **kwargs: Any) -> str:
        return super()._help_format(*args, **kwargs).replace(f" (default: {self.cli_parse_none_str})", "")

    def _metavar_format_recurse(self, obj: Any) -> str:
        return "str" if obj is SecretStr else super()._metavar_format_recurse(obj)


def load_settings(cls: type[S], argv: list[str] | None = None) -> S:
    args = sys.argv[1:] if argv is None else argv
    try:
        return CliApp.run(cls, cli_args=args, cli_settings_source=ReadableCli(cls))
    except ValidationError as exc:
        raise SettingsError(describe_errors(cls, exc)) from None


def describe_errors(cls: type[BaseSettings], exc: ValidationError) -> str:
    prefix = cls.model_config.get("env_prefix", "")
    lines = []
    for err in exc.errors(include_url=False):
        if not err["loc"]:  # a check across options (a model validator): its message names them
            lines.append(err["msg"])
            continue
        field = str(err["loc"][0])
        flag = "--" + field.replace("_", "-")
        env = (prefix + field).upper()
        lines.append(f"invalid {flag} / {env}: {err['msg']} (got {err.get('input')!r})")
    return "\n".join(lines)
