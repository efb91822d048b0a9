"""TLS for the replication link and the client ports: SSL contexts built from ``tls:``.

Everything that decides how a connection is secured lives here; ``node.py`` (HTTP and
RESP listeners), ``replication/master.py`` (the replica listener) and
``replication/replica.py`` (the link to the master) only pass the contexts to asyncio.

The rules:

* TLS 1.2 is the oldest version accepted (RFC 8996 retired 1.0 and 1.1); Python's
  defaults choose the ciphers.
* A replica verifies its master's certificate against ``tls.ca_file`` (the system's
  trust store when unset) *and* checks that the certificate names the host of
  ``replication.master_address``: an IP address needs an IP subject alternative name.
  Without the name check any certificate from the same CA could impersonate the master.
* With ``tls.require_replica_cert`` the replica listener also demands a certificate
  signed by ``tls.ca_file`` from every replica (mutual TLS); replicas always offer
  ``tls.cert_file``. The same for clients with ``tls.require_client_cert``.
* Every node that has TLS on loads ``tls.cert_file``: any replica may be promoted and
  then serve the replica listener, and replicas may serve sub-replicas.

TLS and ``replication.auth_secret`` are independent and meant to be combined: TLS
encrypts and protects the stream and proves the master's identity by certificate; the
secret proves both sides know it, at the handshake, on every connection.
"""

from __future__ import annotations

import logging
import ssl
import time
from dataclasses import dataclass
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from synap.config import TlsConfig

log = logging.getLogger("synap.tls")

MINIMUM_VERSION = ssl.TLSVersion.TLSv1_2

# asyncio (and uvloop) report a failed server-side handshake only in debug mode, so a
# replica with the wrong certificate, or without TLS, would be refused without a word in
# the listener's log. We log it, at most once per interval per listener (with a count of
# the rest), so that a port scanner cannot flood the log.
HANDSHAKE_LOG_INTERVAL_S = 10.0

# The first two bytes of a TLS record: content type 0x16 (handshake, e.g. a ClientHello)
# or 0x15 (alert), then major version 3. A replication frame starts with a u32 length,
# and a length of 0x1503.... or 0x1603.... (350+ MB) is far beyond any handshake message,
# so these bytes on a plain replication connection can only be TLS.
_TLS_RECORD_STARTS = (b"\x16\x03", b"\x15\x03")


class TlsError(Exception):
    """A certificate, key or CA file cannot be used; the message names the ``tls.`` key."""


@dataclass(frozen=True, slots=True)
class TlsContexts:
    """The contexts a node uses; ``None`` = plain TCP on that connection."""

    replication_server: ssl.SSLContext | None = None  # the replica listener
    replication_client: ssl.SSLContext | None = None  # a replica dialling its master
    clients: ssl.SSLContext | None = None  # the HTTP and RESP listeners


def build_contexts(cfg: TlsConfig) -> TlsContexts:
    """Load the files named in ``tls:``; raises TlsError naming the key at fault."""
    if not (cfg.replication or cfg.clients):
        return TlsContexts()
    assert cfg.cert_file is not None  # TlsConfig validates this
    replication_server = replication_client = clients = None
    if cfg.replication:
        replication_server = server_context(
            cfg.cert_file,
            cfg.key_file,
            cfg.ca_file,
            require_peer_cert=cfg.require_replica_cert,
            listener="replica listener",
        )
        # The replica always offers its certificate; a master asks for it only with
        # require_replica_cert, so this costs nothing otherwise.
        replication_client = client_context(cfg.ca_file, cfg.cert_file, cfg.key_file)
    if cfg.clients:
        clients = server_context(
            cfg.cert_file,
            cfg.key_file,
            cfg.ca_file,
            require_peer_cert=cfg.require_client_cert,
            listener="client ports (HTTP and RESP)",
        )
    return TlsContexts(replication_server, replication_client, clients)


def server_context(
    cert_file: str,
    key_file: str | None,
    ca_file: str | None = None,
    *,
    require_peer_cert: bool = False,
    listener: str = "listener",
) -> ssl.SSLContext:
    """A listener's context: presents ``cert_file``; with ``require_peer_cert`` it also
    demands a certificate signed by ``ca_file`` from every peer. Failed handshakes are
    logged under ``listener`` (see :class:`_HandshakeLog`)."""
    ctx = ssl.create_default_context(ssl.Purpose.CLIENT_AUTH)
    ctx.minimum_version = MINIMUM_VERSION
    ctx.sslobject_class = _HandshakeLog(listener).sslobject_class()
    _load_chain(ctx, cert_file, key_file)
    if require_peer_cert:
        if ca_file is None:
            raise TlsError("tls.ca_file is required to check the certificates peers present")
        _load_ca(ctx, ca_file)
        ctx.verify_mode = ssl.CERT_REQUIRED
    return ctx


def client_context(
    ca_file: str | None, cert_file: str | None = None, key_file: str | None = None
) -> ssl.SSLContext:
    """A replica's context: verifies the master's certificate and host name against
    ``ca_file`` (the system trust store when None); presents ``cert_file`` if given."""
    ctx = ssl.create_default_context(ssl.Purpose.SERVER_AUTH)
    ctx.minimum_version = MINIMUM_VERSION
    if ca_file is not None:
        _load_ca(ctx, ca_file)
    if cert_file is not None:
        _load_chain(ctx, cert_file, key_file)
    return ctx


def _check_readable(key: str, path: str) -> None:
    # OpenSSL's errors do not say which file is missing; this does.
    try:
        with open(path, "rb"):
            pass
    except OSError as exc:
        raise TlsError(f"{key}: cannot read {path}: {exc.strerror}") from None


def _load_chain(ctx: ssl.SSLContext, cert_file: str, key_file: str | None) -> None:
    _check_readable("tls.cert_file", cert_file)
    if key_file is not None:
        _check_readable("tls.key_file", key_file)
    try:
        ctx.load_cert_chain(cert_file, key_file)
    except OSError as exc:  # ssl.SSLError is an OSError; PermissionError too
        detail = getattr(exc, "reason", None) or exc.strerror or str(exc)
        raise TlsError(
            f"tls.cert_file / tls.key_file: cannot load the certificate {cert_file} with the "
            f"key {key_file or cert_file} ({detail}): both must be PEM, the key unencrypted "
            "and matching the certificate"
        ) from None


def _load_ca(ctx: ssl.SSLContext, ca_file: str) -> None:
    _check_readable("tls.ca_file", ca_file)
    try:
        ctx.load_verify_locations(cafile=ca_file)
    except OSError as exc:
        detail = getattr(exc, "reason", None) or exc.strerror or str(exc)
        raise TlsError(
            f"tls.ca_file: {ca_file} holds no usable PEM CA certificate ({detail})"
        ) from None


# --- explaining failures ------------------------------------------------------------------


class _HandshakeLog:
    """Logs the server-side handshake failures of one listener, rate-limited.

    asyncio drives TLS through ``SSLContext.wrap_bio``, whose objects are of the
    context's ``sslobject_class``; ours sees every ``do_handshake`` and its outcome."""

    def __init__(self, listener: str) -> None:
        self.listener = listener
        self._last_logged = -HANDSHAKE_LOG_INTERVAL_S
        self._skipped = 0

    def sslobject_class(self) -> type[ssl.SSLObject]:
        report = self.report

        class LoggingSSLObject(ssl.SSLObject):
            def do_handshake(self) -> None:
                try:
                    super().do_handshake()
                except (ssl.SSLWantReadError, ssl.SSLWantWriteError, ssl.SSLEOFError):
                    raise  # not a failure: more bytes needed, or the peer just left
                except ssl.SSLError as exc:
                    report(exc)
                    raise

        return LoggingSSLObject

    def report(self, exc: ssl.SSLError) -> None:
        now = time.monotonic()
        if now - self._last_logged < HANDSHAKE_LOG_INTERVAL_S:
            self._skipped += 1
            return
        skipped = f" ({self._skipped} more since the last report)" if self._skipped else ""
        self._last_logged, self._skipped = now, 0
        log.warning(
            "TLS handshake on the %s failed: %s%s", self.listener, explain_peer_tls_error(exc),
            skipped,
        )  # fmt: skip


def explain_peer_tls_error(exc: ssl.SSLError) -> str:
    """Why a peer failed our listener's handshake, and what to change."""
    reason = _reason(exc)
    code = exc.reason or ""
    if code in ("WRONG_VERSION_NUMBER", "HTTP_REQUEST", "UNSUPPORTED_PROTOCOL"):
        return (
            f"{reason}: the peer did not speak TLS (a replica without tls.replication: true, "
            "or a plain-TCP client on a tls.clients port?)"
        )
    if "ALERT" in code:  # e.g. TLSV1_ALERT_UNKNOWN_CA: the peer's verdict on us
        return (
            f"{reason}: the peer refused this node's certificate (tls.cert_file); its "
            "tls.ca_file must hold the CA that signed it"
        )
    if isinstance(exc, ssl.SSLCertVerificationError) or "CERTIFICATE" in code:
        return (
            f"{reason}: the peer's certificate was refused or missing; it must be signed by "
            "the CA in this node's tls.ca_file"
        )
    return reason


def _reason(exc: ssl.SSLError) -> str:
    verify = getattr(exc, "verify_message", None)
    if verify:
        return f"certificate verify failed: {verify}"
    if exc.reason:
        return str(exc.reason).lower().replace("_", " ")  # WRONG_VERSION_NUMBER -> words
    return str(exc)


def looks_like_tls(data: bytes) -> bool:
    """True if ``data`` (the first bytes a peer sent) is the start of a TLS record."""
    return data[:2] in _TLS_RECORD_STARTS


def explain_master_tls_error(exc: ssl.SSLError, host: str) -> str:
    """Why a replica's TLS connection to its master failed, and what to change."""
    reason = _reason(exc)
    if isinstance(exc, ssl.SSLCertVerificationError):
        if "mismatch" in reason or "hostname" in reason.lower():
            hint = (
                f"the master's certificate (tls.cert_file on the master) does not name {host}: "
                "give it that IP or DNS name as a subject alternative name"
            )
        else:
            hint = (
                "tls.ca_file on this replica must hold the CA that signed the master's "
                "tls.cert_file"
            )
    elif exc.reason == "WRONG_VERSION_NUMBER":
        hint = (
            "the master does not speak TLS on its replication port: set tls.replication: true "
            "on the master too (or turn it off here)"
        )
    elif exc.reason and any(
        alert in exc.reason for alert in ("CERTIFICATE_REQUIRED", "UNKNOWN_CA", "BAD_CERTIFICATE")
    ):
        hint = (
            "the master (tls.require_replica_cert) rejected this replica's certificate: "
            "tls.cert_file here must be signed by the CA in the master's tls.ca_file"
        )
    else:
        hint = "check tls.cert_file, tls.key_file and tls.ca_file on both nodes"
    return f"TLS with the master failed ({reason}): {hint}"


TLS_NO_ANSWER_HINT = (
    "the master closed the TLS connection without answering; if it sets "
    "tls.require_replica_cert, this replica's tls.cert_file must be signed by the CA in "
    "the master's tls.ca_file (the master's log says which)"
)

NO_TLS_ANSWER_HINT = (
    "the master closed the connection without answering; if its replication listener "
    "uses TLS (tls.replication: true), set tls.replication: true and tls.ca_file here too"
)

PLAIN_MASTER_GOT_TLS = (
    "opened a TLS connection, but this master's replication listener is plain TCP: set "
    "tls.replication the same on both nodes"
)
