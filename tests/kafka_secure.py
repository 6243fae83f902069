"""A broker with secured listeners, for the tests of the worker's security settings: a SASL_PLAINTEXT
listener (PLAIN, one user) and two SSL listeners, one whose certificate names localhost and one
whose certificate names another host. The certificates are made at test time with openssl."""

from __future__ import annotations

import socket
import subprocess
from dataclasses import dataclass
from pathlib import Path

from tooling.broker import LocalKafka

USER, PASSWORD = "worker", "worker-secret"


@dataclass(frozen=True)
class Pki:
    ca: Path  # the CA that signed both server certificates
    rogue_ca: Path  # a CA that signed nothing the broker shows: "untrusted"
    server: Path  # key + certificate for localhost, as one PEM keystore
    other: Path  # key + certificate for other.example (a hostname mismatch on localhost)


def _openssl(folder: Path, *args: str) -> None:
    subprocess.run(["openssl", *args], cwd=folder, check=True, capture_output=True, timeout=60)


def _ca(folder: Path, name: str) -> None:
    _openssl(folder, "req", "-x509", "-newkey", "ec", "-pkeyopt", "ec_paramgen_curve:P-256", "-nodes",
             "-keyout", f"{name}.key", "-out", f"{name}.pem", "-days", "2", "-subj", f"/CN={name}",
             "-addext", "basicConstraints=critical,CA:TRUE",
             "-addext", "keyUsage=critical,keyCertSign,cRLSign")  # fmt: skip


def _server(folder: Path, name: str, alt_names: str) -> Path:
    """A PEM keystore (PKCS#8 key, then the certificate) for `alt_names`, signed by ca.pem."""
    (folder / f"{name}.ext").write_text(f"subjectAltName={alt_names}\nextendedKeyUsage=serverAuth\n")
    _openssl(folder, "req", "-newkey", "ec", "-pkeyopt", "ec_paramgen_curve:P-256", "-nodes",
             "-keyout", f"{name}.key", "-out", f"{name}.csr", "-subj", f"/CN={name}")  # fmt: skip
    _openssl(folder, "x509", "-req", "-in", f"{name}.csr", "-CA", "ca.pem", "-CAkey", "ca.key",
             "-CAcreateserial", "-days", "2", "-out", f"{name}.crt", "-extfile", f"{name}.ext")  # fmt: skip
    keystore = folder / f"{name}-keystore.pem"
    keystore.write_text((folder / f"{name}.key").read_text() + (folder / f"{name}.crt").read_text())
    return keystore


def make_pki(folder: Path) -> Pki:
    folder.mkdir(parents=True, exist_ok=True)
    _ca(folder, "ca")
    _ca(folder, "rogue-ca")
    server = _server(folder, "localhost", "DNS:localhost,IP:127.0.0.1")
    other = _server(folder, "other", "DNS:other.example")
    return Pki(folder / "ca.pem", folder / "rogue-ca.pem", server, other)


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


@dataclass
class SecureKafka:
    """Where each listener of the secured broker is, and the files a client needs."""

    broker: LocalKafka
    pki: Pki
    plaintext: str
    sasl: str
    ssl: str
    ssl_other_name: str


def secure_broker(home: Path) -> SecureKafka:
    """A one-node broker (not started) with PLAINTEXT, SASL_PLAINTEXT and two SSL listeners."""
    pki = make_pki(home / "pki")
    sasl, ssl, other = _free_port(), _free_port(), _free_port()
    config = "\n".join([
        "listener.name.sasl.sasl.enabled.mechanisms=PLAIN",
        "listener.name.sasl.plain.sasl.jaas.config=org.apache.kafka.common.security.plain.PlainLoginModule "
        f'required user_{USER}="{PASSWORD}";',
        "listener.name.ssl.ssl.keystore.type=PEM",
        f"listener.name.ssl.ssl.keystore.location={pki.server}",
        "listener.name.other.ssl.keystore.type=PEM",
        f"listener.name.other.ssl.keystore.location={pki.other}",
        "",
    ])  # fmt: skip
    listeners = [f"SASL:SASL_PLAINTEXT:{sasl}", f"SSL:SSL:{ssl}", f"OTHER:SSL:{other}"]
    broker = LocalKafka(home=home / "kafka", listeners=listeners, config=config)
    return SecureKafka(broker, pki, broker.bootstrap_servers, f"localhost:{sasl}", f"localhost:{ssl}",
                       f"localhost:{other}")  # fmt: skip
