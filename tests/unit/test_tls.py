"""synap/tls.py and the ``tls:`` config section, without sockets.

Handshakes run between two ``ssl.SSLObject`` over memory BIOs (the same objects asyncio
drives), so every failure the nodes explain in their logs is reproduced here in
milliseconds: unknown CA, wrong host name, missing client certificate, plain bytes on a
TLS port.
"""

from __future__ import annotations

import logging
import ssl
from pathlib import Path

import pytest

from synap import tls
from synap.config import ConfigError, TlsConfig, build_config
from synap.tls import (
    TlsError,
    build_contexts,
    client_context,
    explain_master_tls_error,
    explain_peer_tls_error,
    looks_like_tls,
    server_context,
)
from tests.support.certs import Pki, issue, make_pki

HANDSHAKE_ROUNDS = 20


@pytest.fixture(scope="module")
def pki(tmp_path_factory: pytest.TempPathFactory) -> Pki:
    return make_pki(tmp_path_factory.mktemp("tls-unit"))


@pytest.fixture(scope="module")
def other(tmp_path_factory: pytest.TempPathFactory) -> Pki:
    return make_pki(tmp_path_factory.mktemp("tls-unit-other"), name="other")


def handshake(
    client: ssl.SSLContext, server: ssl.SSLContext, hostname: str = "127.0.0.1"
) -> tuple[ssl.SSLError | None, ssl.SSLError | None]:
    """Run a TLS handshake in memory; return (client error, server error).

    After its own handshake completes, each side also reads once, which is where a
    TLS 1.3 client learns that the server refused its certificate."""
    c_in, c_out, s_in, s_out = (ssl.MemoryBIO() for _ in range(4))
    c = client.wrap_bio(c_in, c_out, server_side=False, server_hostname=hostname)
    s = server.wrap_bio(s_in, s_out, server_side=True)
    errors: dict[str, ssl.SSLError | None] = {"c": None, "s": None}
    done = {"c": False, "s": False}
    for _ in range(HANDSHAKE_ROUNDS):
        for name, obj in (("c", c), ("s", s)):
            if errors[name] is not None:
                continue
            try:
                if not done[name]:
                    obj.do_handshake()
                    done[name] = True
                else:
                    obj.read(1)
            except (ssl.SSLWantReadError, ssl.SSLWantWriteError):
                pass
            except ssl.SSLError as exc:
                errors[name] = exc
        s_in.write(c_out.read())
        c_in.write(s_out.read())
        if all(done.values()) and not s_out.pending and not c_out.pending:
            break
    return errors["c"], errors["s"]


# --------------------------------------------------------------------- contexts


def test_tls_off_builds_no_contexts() -> None:
    assert build_contexts(TlsConfig()) == tls.TlsContexts()


def test_contexts_verify_the_master_and_accept_tls12_or_later(pki: Pki) -> None:
    contexts = build_contexts(TlsConfig(**pki.tls_config(replication=True, clients=True)))
    assert contexts.replication_server is not None and contexts.clients is not None
    client = contexts.replication_client
    assert client is not None
    assert client.verify_mode is ssl.CERT_REQUIRED and client.check_hostname
    assert contexts.replication_server.verify_mode is ssl.CERT_NONE
    for ctx in (client, contexts.replication_server, contexts.clients):
        assert ctx.minimum_version is ssl.TLSVersion.TLSv1_2
    assert handshake(client, contexts.replication_server) == (None, None)


def test_require_replica_cert_demands_a_certificate_from_the_ca(pki: Pki, other: Pki) -> None:
    cfg = TlsConfig(**pki.tls_config(replication=True, require_replica_cert=True))
    contexts = build_contexts(cfg)
    assert contexts.replication_server is not None and contexts.replication_client is not None
    assert contexts.replication_server.verify_mode is ssl.CERT_REQUIRED
    assert handshake(contexts.replication_client, contexts.replication_server) == (None, None)
    stranger = client_context(str(pki.ca_file), str(other.cert_file), str(other.key_file))
    _, server_error = handshake(stranger, contexts.replication_server)
    assert server_error is not None
    assert "refused or missing" in explain_peer_tls_error(server_error)
    anonymous = client_context(str(pki.ca_file))
    client_error, server_error = handshake(anonymous, contexts.replication_server)
    assert server_error is not None and "refused or missing" in explain_peer_tls_error(server_error)
    assert client_error is not None
    assert "rejected this replica's certificate" in explain_master_tls_error(
        client_error, "127.0.0.1"
    )


def test_clients_and_replication_have_separate_client_cert_settings(pki: Pki) -> None:
    cfg = TlsConfig(**pki.tls_config(replication=True, clients=True, require_client_cert=True))
    contexts = build_contexts(cfg)
    assert contexts.clients is not None and contexts.replication_server is not None
    assert contexts.clients.verify_mode is ssl.CERT_REQUIRED
    assert contexts.replication_server.verify_mode is ssl.CERT_NONE


@pytest.mark.parametrize(
    ("field", "value", "message"),
    [
        ("cert_file", "/nonexistent/node.pem", "tls.cert_file: cannot read /nonexistent/node.pem"),
        ("key_file", "/nonexistent/node.key", "tls.key_file: cannot read /nonexistent/node.key"),
        ("ca_file", "/nonexistent/ca.pem", "tls.ca_file: cannot read /nonexistent/ca.pem"),
    ],
)
def test_missing_files_name_the_key(pki: Pki, field: str, value: str, message: str) -> None:
    options = pki.tls_config(replication=True, require_replica_cert=True)
    options[field] = value
    with pytest.raises(TlsError, match=message):
        build_contexts(TlsConfig(**options))


def test_a_key_that_does_not_match_the_certificate_is_refused(pki: Pki) -> None:
    with pytest.raises(TlsError, match="the key unencrypted and matching the certificate"):
        server_context(str(pki.cert_file), str(pki.ca_key))


def test_a_ca_file_without_certificates_is_refused(pki: Pki, tmp_path: Path) -> None:
    junk = tmp_path / "junk.pem"
    junk.write_text("not a certificate\n")
    with pytest.raises(TlsError, match="tls.ca_file: .* holds no usable PEM CA certificate"):
        client_context(str(junk))


# --------------------------------------------------------------------- explanations


def test_a_master_signed_by_another_ca_is_refused_with_a_hint(pki: Pki, other: Pki) -> None:
    master = server_context(str(other.cert_file), str(other.key_file))
    error, _ = handshake(client_context(str(pki.ca_file)), master)
    assert isinstance(error, ssl.SSLCertVerificationError)
    text = explain_master_tls_error(error, "127.0.0.1")
    assert text.startswith("TLS with the master failed (certificate verify failed:")
    assert "tls.ca_file on this replica must hold the CA that signed" in text


def test_a_certificate_for_another_host_is_refused(pki: Pki, tmp_path: Path) -> None:
    cert, key = issue(tmp_path, (pki.ca_file, pki.ca_key), "db", "DNS:db.example.com")
    master = server_context(str(cert), str(key))
    error, _ = handshake(client_context(str(pki.ca_file)), master, hostname="10.1.2.3")
    assert isinstance(error, ssl.SSLCertVerificationError)
    text = explain_master_tls_error(error, "10.1.2.3")
    assert "does not name 10.1.2.3" in text and "subject alternative name" in text


def test_plain_bytes_on_a_tls_listener_are_explained(pki: Pki) -> None:
    server = server_context(str(pki.cert_file), str(pki.key_file))
    incoming, outgoing = ssl.MemoryBIO(), ssl.MemoryBIO()
    obj = server.wrap_bio(incoming, outgoing, server_side=True)
    incoming.write(b"\x00\x00\x00\x30" + b"\x01" * 0x30)  # a replication HELLO frame
    with pytest.raises(ssl.SSLError) as info:
        obj.do_handshake()
    assert "the peer did not speak TLS" in explain_peer_tls_error(info.value)


def test_looks_like_tls_tells_a_client_hello_from_a_frame(pki: Pki) -> None:
    out = ssl.MemoryBIO()
    hello = client_context(str(pki.ca_file)).wrap_bio(
        ssl.MemoryBIO(), out, server_hostname="127.0.0.1"
    )
    with pytest.raises(ssl.SSLWantReadError):
        hello.do_handshake()
    assert looks_like_tls(out.read())
    assert not looks_like_tls(b"\x00\x00\x00\x30\x01")
    assert not looks_like_tls(b"")


def test_failed_handshakes_are_logged_at_most_once_per_interval(
    pki: Pki, other: Pki, caplog: pytest.LogCaptureFixture, monkeypatch: pytest.MonkeyPatch
) -> None:
    now = [1000.0]
    monkeypatch.setattr(tls.time, "monotonic", lambda: now[0])
    server = server_context(
        str(pki.cert_file),
        str(pki.key_file),
        str(pki.ca_file),
        require_peer_cert=True,
        listener="replica listener",
    )
    stranger = client_context(str(pki.ca_file), str(other.cert_file), str(other.key_file))
    with caplog.at_level(logging.WARNING, logger="synap.tls"):
        for _ in range(3):
            handshake(stranger, server)
        now[0] += tls.HANDSHAKE_LOG_INTERVAL_S
        handshake(stranger, server)
    lines = [r.getMessage() for r in caplog.records if r.name == "synap.tls"]
    assert len(lines) == 2, lines
    assert lines[0].startswith("TLS handshake on the replica listener failed")
    assert "(2 more since the last report)" in lines[1]


# --------------------------------------------------------------------- config


@pytest.mark.parametrize(
    ("raw", "message"),
    [
        ({"tls": {"replication": True}}, "tls.cert_file is required"),
        ({"tls": {"clients": True}}, "tls.cert_file is required"),
        (
            {"tls": {"cert_file": "c", "replication": True, "require_replica_cert": True}},
            "tls.require_replica_cert needs tls.ca_file",
        ),
        (
            {"tls": {"cert_file": "c", "clients": True, "require_client_cert": True}},
            "tls.require_client_cert needs tls.ca_file",
        ),
        ({"tls": {"certificate": "c"}}, "tls.certificate: unknown configuration key"),
        ({"replication": {"auth_secret": ""}}, "replication.auth_secret: must not be empty"),
        ({"server": {"api_keys": ["a", ""]}}, "server.api_keys: a key must not be empty"),
        ({"server": {"admin_key": ""}}, "server.admin_key: must not be empty"),
    ],
)
def test_config_refuses_unusable_security_settings(raw: dict[str, object], message: str) -> None:
    with pytest.raises(ConfigError, match=message):
        build_config(raw)  # type: ignore[arg-type]


def test_tls_is_off_by_default() -> None:
    cfg = build_config({}).tls
    assert not cfg.replication and not cfg.clients


@pytest.mark.parametrize(
    ("host", "loopback"),
    [
        ("127.0.0.1", True),
        ("127.0.0.5", True),
        ("::1", True),
        ("localhost", True),
        ("0.0.0.0", False),
        ("10.0.0.5", False),
        ("db.internal", False),
    ],
)
def test_exposure_warnings_know_which_listeners_are_local(host: str, loopback: bool) -> None:
    from synap.config import is_loopback

    assert is_loopback(host) is loopback
