"""Why the first connection to Kafka failed, as one line that names the setting to change.

Both clients check a connection at start (`check_connection` in each backend) and hand their
decisive errors here: a refused SASL login, a SASL mechanism the listener does not offer, a
certificate that fails verification. Other failures (a closed connection, "no brokers available")
do not say why; for those, `explain_failure` looks at the listener itself with a socket of its own:
does it answer a Kafka request in plaintext, does it offer SASL, does it speak TLS. A listener that
cannot be reached at all is `BrokerUnreachable` (the broker may come back); every other mismatch
is a `KafkaConfigError` (only a configuration change helps).

Imports no Kafka client: both backends use it.
"""

from __future__ import annotations

import socket
import ssl
import struct
from dataclasses import dataclass
from pathlib import Path

from worker.kafka.protocol import BrokerUnreachable, KafkaConfigError, unreachable
from worker.settings import PASSWORD_FROM, WorkerSettings

PROBE_TIMEOUT_S = 5.0
PROTOCOL_FLAG = "--security-protocol / WORKER_SECURITY_PROTOCOL"


def addresses(s: WorkerSettings) -> list[tuple[str, int]]:
    """The bootstrap servers as (host, port): "h:9092", "[::1]:9092"."""
    out = []
    for server in s.bootstrap_servers.split(","):
        host, _, port = server.strip().rpartition(":")
        out.append((host.strip("[]") or "localhost", int(port) if port.isdigit() else 9092))
    return out


def where(host: str, port: int) -> str:
    return f"[{host}]:{port}" if ":" in host else f"{host}:{port}"


# --- what the clients say themselves ------------------------------------------------------------


def sasl_refused(s: WorkerSettings, address: str, detail: str) -> KafkaConfigError:
    return KafkaConfigError(
        f"Kafka at {address} refused the SASL login for user '{s.sasl_username}' ({detail}): check "
        f"--sasl-username / WORKER_SASL_USERNAME and the password ({PASSWORD_FROM})"
    )


def mechanism_not_offered(s: WorkerSettings, address: str, offered: tuple[str, ...]) -> KafkaConfigError:
    return KafkaConfigError(
        f"Kafka at {address} does not offer SASL mechanism {s.sasl_mechanism} (it offers "
        f"{', '.join(offered) or 'none'}): set --sasl-mechanism / WORKER_SASL_MECHANISM"
    )


def certificate_refused(host: str, port: int, verify_message: str) -> KafkaConfigError:
    """A failed verification of the broker's certificate: its name, or who signed it."""
    if "hostname mismatch" in verify_message.lower() or "ip address mismatch" in verify_message.lower():
        return KafkaConfigError(
            f"Kafka at {where(host, port)} shows a TLS certificate that is not valid for '{host}' (hostname "
            "mismatch): connect by a name the certificate holds (--bootstrap-servers / "
            "WORKER_BOOTSTRAP_SERVERS), or give the broker a certificate for that name"
        )
    return KafkaConfigError(
        f"Kafka at {where(host, port)} shows a TLS certificate that is not trusted (certificate verify "
        f"failed: {verify_message}): set --ssl-cafile / WORKER_SSL_CAFILE to the CA that signed it"
    )


# --- what the listener says when the client does not ------------------------------------------------


@dataclass(frozen=True)
class Listener:
    """What a probe learnt of a listener; None where it could not tell."""

    reachable: bool
    tls: bool | None = None
    sasl: tuple[str, ...] | None = None  # mechanisms offered; () = a listener without SASL


def explain_failure(
    s: WorkerSettings, host: str, port: int, detail: object
) -> KafkaConfigError | BrokerUnreachable:
    """The failure of a connection whose client gave no reason, from what the listener itself says."""
    listener = probe_listener(host, port, s.sasl_mechanism or "PLAIN")
    if not listener.reachable:
        return unreachable(s, detail)
    mismatch = _mismatch(s, host, port, listener)
    if mismatch is not None:
        return mismatch
    if listener.tls and s.security_protocol.endswith("SSL"):
        verify = tls_verify_problem(host, port, s.ssl_cafile)
        if verify:
            return certificate_refused(host, port, verify)
    return unreachable(s, detail)


def _mismatch(s: WorkerSettings, host: str, port: int, listener: Listener) -> KafkaConfigError | None:
    at, protocol = where(host, port), s.security_protocol
    client_tls, client_sasl = protocol.endswith("SSL"), protocol.startswith("SASL_")
    if listener.tls and not client_tls:
        return KafkaConfigError(
            f"Kafka at {at} speaks TLS (an SSL or SASL_SSL listener) but the worker connects with "
            f"{protocol}: set {PROTOCOL_FLAG} to SSL or SASL_SSL"
        )
    if listener.tls is False and client_tls:
        return KafkaConfigError(
            f"Kafka at {at} does not speak TLS (a PLAINTEXT or SASL_PLAINTEXT listener) but the worker "
            f"connects with {protocol}: set {PROTOCOL_FLAG} to PLAINTEXT or SASL_PLAINTEXT, or use the "
            "broker's TLS port"
        )
    if listener.sasl and not client_sasl:
        return KafkaConfigError(
            f"Kafka at {at} expects a SASL login (mechanisms {', '.join(listener.sasl)}) but the worker "
            f"connects with {protocol}, without one: set {PROTOCOL_FLAG} to "
            f"SASL_{'SSL' if client_tls else 'PLAINTEXT'}, --sasl-mechanism, --sasl-username and the password"
        )
    if listener.sasl == () and client_sasl:
        return KafkaConfigError(
            f"Kafka at {at} takes no SASL login on this listener but the worker connects with {protocol}: "
            f"set {PROTOCOL_FLAG} to {'SSL' if client_tls else 'PLAINTEXT'}, or use the broker's SASL port"
        )
    if listener.sasl and client_sasl and s.sasl_mechanism not in listener.sasl:
        return mechanism_not_offered(s, at, listener.sasl)
    return None


def probe_listener(host: str, port: int, mechanism: str = "PLAIN") -> Listener:
    """Ask the listener for its SASL mechanisms in plaintext, then, if it did not answer, inside TLS
    (without verifying its certificate: this only asks whether it speaks TLS)."""
    try:
        with socket.create_connection((host, port), timeout=PROBE_TIMEOUT_S) as sock:
            mechanisms = sasl_mechanisms(sock, mechanism)
    except OSError:
        return Listener(reachable=False)
    if mechanisms is not None:
        return Listener(reachable=True, tls=False, sasl=mechanisms)
    context = ssl.SSLContext(ssl.PROTOCOL_TLS_CLIENT)
    context.check_hostname, context.verify_mode = False, ssl.CERT_NONE
    try:
        with socket.create_connection((host, port), timeout=PROBE_TIMEOUT_S) as raw, \
                context.wrap_socket(raw, server_hostname=host) as sock:  # fmt: skip
            return Listener(reachable=True, tls=True, sasl=sasl_mechanisms(sock, mechanism))
    except ssl.SSLEOFError:
        return Listener(reachable=True)  # closed at once: neither Kafka in plaintext nor TLS
    except ssl.SSLError:
        return Listener(reachable=True, tls=True)  # a TLS alert: it speaks TLS, and refused us
    except OSError:
        return Listener(reachable=True)


def sasl_mechanisms(sock: socket.socket, mechanism: str) -> tuple[str, ...] | None:
    """Send one SaslHandshake request (v1) and read the mechanisms the answer lists: a SASL listener
    lists its own, a listener without SASL answers ILLEGAL_SASL_STATE with none (()); None when no
    Kafka answer comes (the connection closed, or bytes that are not one)."""
    client_id, name = b"anomaly-worker-probe", mechanism.encode()
    body = struct.pack(">hhih", 17, 1, 1, len(client_id)) + client_id + struct.pack(">h", len(name)) + name
    try:
        sock.sendall(struct.pack(">i", len(body)) + body)
        (size,) = struct.unpack(">i", _recv_exact(sock, 4))
        if not 10 <= size <= 64 * 1024:
            return None
        data = _recv_exact(sock, size)
        _correlation, _error, count = struct.unpack(">ihi", data[:10])
        offered, at = [], 10
        for _ in range(max(count, 0)):
            (length,) = struct.unpack(">h", data[at : at + 2])
            offered.append(data[at + 2 : at + 2 + length].decode())
            at += 2 + length
        return tuple(offered)
    except (OSError, struct.error, UnicodeDecodeError):
        return None


def _recv_exact(sock: socket.socket, n: int) -> bytes:
    data = b""
    while len(data) < n:
        chunk = sock.recv(n - len(data))
        if not chunk:
            raise ConnectionError("closed by the broker")
        data += chunk
    return data


def tls_verify_problem(host: str, port: int, cafile: Path | None) -> str | None:
    """Why the listener's certificate fails verification against `cafile` (else the system's CAs)
    and `host`, in OpenSSL's words; None if it passes or no handshake happens."""
    try:
        context = ssl.create_default_context(cafile=str(cafile) if cafile else None)
        with socket.create_connection((host, port), timeout=PROBE_TIMEOUT_S) as raw, \
                context.wrap_socket(raw, server_hostname=host):  # fmt: skip
            return None
    except ssl.SSLCertVerificationError as exc:
        return exc.verify_message or str(exc)
    except OSError:
        return None
