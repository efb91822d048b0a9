"""Throwaway TLS certificates for tests, made with the ``openssl`` command-line tool.

    pki = make_pki(tmp_path)                  # a CA and a certificate for 127.0.0.1
    config = {"tls": pki.tls_config(replication=True)}

Everything is generated at run time (nothing secret is checked in) with P-256 keys, which
take milliseconds. The node certificate carries ``IP:127.0.0.1`` and ``DNS:localhost`` as
subject alternative names, and is good for both server and client authentication, so
one certificate serves a node's listeners and its replica link (mutual TLS) alike.
``make_pki`` can also issue a second, unrelated CA ("an impostor") for negative tests.

The ``cryptography`` package would do the same in-process; it is not a dependency, and
the ``openssl`` binary is on every machine that has Python's ``ssl`` module.
"""

from __future__ import annotations

import shutil
import ssl
import subprocess
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest

OPENSSL_TIMEOUT_S = 30.0

_NODE_EXTENSIONS = """\
basicConstraints = critical, CA:FALSE
keyUsage = critical, digitalSignature
extendedKeyUsage = serverAuth, clientAuth
subjectAltName = {san}
subjectKeyIdentifier = hash
authorityKeyIdentifier = keyid, issuer
"""


@dataclass(frozen=True)
class Pki:
    """Paths of one CA and one node certificate signed by it (all PEM)."""

    ca_file: Path
    ca_key: Path
    cert_file: Path
    key_file: Path

    def tls_config(self, **options: Any) -> dict[str, Any]:
        """A ``tls:`` config section using these files, plus ``options``."""
        return {
            "cert_file": str(self.cert_file),
            "key_file": str(self.key_file),
            "ca_file": str(self.ca_file),
            **options,
        }

    def client_context(self) -> ssl.SSLContext:
        """What a client that trusts this CA uses (hostname checking on)."""
        return ssl.create_default_context(cafile=str(self.ca_file))


def _openssl(*args: str, cwd: Path) -> None:
    binary = shutil.which("openssl")
    if binary is None:
        pytest.skip("the openssl command-line tool is not installed")
    result = subprocess.run(
        [binary, *args], cwd=cwd, capture_output=True, text=True, timeout=OPENSSL_TIMEOUT_S
    )
    if result.returncode != 0:
        raise RuntimeError(f"openssl {' '.join(args)} failed:\n{result.stderr}")


def make_ca(directory: Path, name: str = "ca") -> tuple[Path, Path]:
    """A self-signed CA valid for two days: ``(certificate, key)``."""
    directory.mkdir(parents=True, exist_ok=True)
    cert, key = directory / f"{name}.pem", directory / f"{name}.key"
    _openssl(
        "req", "-x509", "-newkey", "ec", "-pkeyopt", "ec_paramgen_curve:P-256", "-nodes",
        "-keyout", str(key), "-out", str(cert), "-days", "2", "-subj", f"/CN=Synap test {name}",
        "-addext", "basicConstraints=critical,CA:TRUE",
        "-addext", "keyUsage=critical,keyCertSign,cRLSign",
        "-addext", "subjectKeyIdentifier=hash",
        cwd=directory,
    )  # fmt: skip
    return cert, key


def issue(
    directory: Path,
    ca: tuple[Path, Path],
    name: str = "node",
    san: str = "IP:127.0.0.1,DNS:localhost",
) -> tuple[Path, Path]:
    """A certificate for ``san`` signed by ``ca``: ``(certificate, key)``."""
    ca_cert, ca_key = ca
    cert, key, csr = (directory / f"{name}.{ext}" for ext in ("pem", "key", "csr"))
    extensions = directory / f"{name}.ext"
    extensions.write_text(_NODE_EXTENSIONS.format(san=san))
    _openssl(
        "req", "-newkey", "ec", "-pkeyopt", "ec_paramgen_curve:P-256", "-nodes",
        "-keyout", str(key), "-out", str(csr), "-subj", f"/CN={name}",
        cwd=directory,
    )  # fmt: skip
    _openssl(
        "x509", "-req", "-in", str(csr), "-CA", str(ca_cert), "-CAkey", str(ca_key),
        "-CAcreateserial", "-out", str(cert), "-days", "2", "-extfile", str(extensions),
        cwd=directory,
    )  # fmt: skip
    return cert, key


def make_pki(directory: Path, name: str = "ca") -> Pki:
    """A CA named ``name`` and a node certificate for 127.0.0.1 under ``directory``."""
    directory = directory / f"pki-{name}"
    ca = make_ca(directory, name)
    cert, key = issue(directory, ca)
    return Pki(ca_file=ca[0], ca_key=ca[1], cert_file=cert, key_file=key)
