"""Where and how to reach the cluster, in neutral names: each client module maps it once to its own
option names (kafka_python.connection_options, confluent.connection_options)."""

from __future__ import annotations

from pathlib import Path
from typing import Literal

from pydantic import BaseModel, ConfigDict, SecretStr

SecurityProtocol = Literal["PLAINTEXT", "SSL", "SASL_PLAINTEXT", "SASL_SSL"]
SaslMechanism = Literal["PLAIN", "SCRAM-SHA-256", "SCRAM-SHA-512"]


class KafkaConnection(BaseModel):
    """The connection WorkerSettings describes."""

    model_config = ConfigDict(frozen=True)

    bootstrap_servers: tuple[str, ...]
    security_protocol: SecurityProtocol = "PLAINTEXT"
    sasl_mechanism: SaslMechanism | None = None
    sasl_username: str | None = None
    sasl_password: SecretStr | None = None  # read from its file already; never in a repr or a dump
    ssl_cafile: Path | None = None
    ssl_certfile: Path | None = None
    ssl_keyfile: Path | None = None

    def password(self) -> str | None:
        return self.sasl_password.get_secret_value() if self.sasl_password is not None else None
