"""TLS (``tls:``, synap/tls.py) on the replication link and on the client ports.

A throwaway CA and a certificate for 127.0.0.1 are made at run time
(``tests/support/certs.py``). The promises:

* ``tls.replication``: a replica syncs over TLS (equal digests), the link's bytes are
  ciphertext, and with ``tls.require_replica_cert`` only replicas with a certificate from
  ``tls.ca_file`` get in;
* a mismatch (plain replica / TLS master, TLS replica / plain master, a master whose
  certificate the replica cannot verify) syncs nothing and logs what to change;
* ``tls.clients``: redis-py (``ssl=True``, ``ssl_ca_certs``) works on the RESP port and
  httpx (``verify=`` the CA) on the HTTP port; plain clients get nowhere;
* a certificate file that cannot be loaded stops the node at start-up, naming the key.
"""

from __future__ import annotations

import os
import ssl
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

import httpx
import pytest
import redis
from redis.backoff import NoBackoff
from redis.retry import Retry

from tests.support.certs import Pki, make_pki
from tests.support.checks import digest
from tests.support.ports import HOST
from tests.support.recorder import RecordingProxy
from tests.support.server import NodeFactory, SynapProcess, wait_caught_up, wait_for

MARKER = b"tls-payload-marker-5b07e9-"
KEYS = 100


@pytest.fixture(scope="module")
def pki(tmp_path_factory: pytest.TempPathFactory) -> Pki:
    return make_pki(tmp_path_factory.mktemp("tls"))


@pytest.fixture(scope="module")
def other_pki(tmp_path_factory: pytest.TempPathFactory) -> Pki:
    """An unrelated CA and certificate: what an impostor would hold."""
    return make_pki(tmp_path_factory.mktemp("tls-other"), name="impostor")


def _fill(node: SynapProcess, keys: int = KEYS, pad: int = 0) -> None:
    client = node.redis()
    for start in range(0, keys, 1000):
        batch = range(start, min(start + 1000, keys))
        client.mset({f"k{i}".encode(): MARKER + str(i).encode() + b"." * pad for i in batch})


def _wait_log(node: SynapProcess, needle: str, timeout: float = 15.0) -> str:
    wait_for(
        lambda: needle in node.log_text(),
        timeout,
        message=lambda: f"{node.name} log lacks {needle!r}; tail:\n{node.log_tail(15)}",
    )
    return node.log_text()


# --------------------------------------------------------------------- replication


def test_replication_over_tls_syncs_and_the_wire_carries_only_ciphertext(
    node_factory: NodeFactory, pki: Pki
) -> None:
    master = node_factory.master(config={"tls": pki.tls_config(replication=True)})
    # ~8 MB: more than the master buffers per replica, so flow control runs over TLS too.
    _fill(master, 8000, pad=1000)
    assert master.replica_port is not None
    with RecordingProxy((HOST, master.replica_port)) as wire:
        replica = node_factory.replica(
            wire.address, config={"tls": pki.tls_config(replication=True)}
        )
        wait_caught_up(master, [replica])
        master.redis().set(b"streamed", MARKER + b"after-sync")
        wait_caught_up(master, [replica])
        assert digest(master) == digest(replica)
        assert replica.redis().get(b"streamed") == MARKER + b"after-sync"
        captured = wire.captured()
    assert len(captured) > 8000 * 1000  # the whole dataset went through the proxy...
    assert MARKER not in captured  # ...and not one value in the clear
    assert captured[:2] == b"\x16\x03"  # it starts with a TLS ClientHello
    assert "serves TLS (tls.replication)" in master.log_text()


def test_mutual_tls_admits_replicas_with_a_certificate_from_the_ca_only(
    node_factory: NodeFactory, pki: Pki, other_pki: Pki
) -> None:
    master = node_factory.master(
        config={"tls": pki.tls_config(replication=True, require_replica_cert=True)}
    )
    _fill(master)
    good = node_factory.replica(master, config={"tls": pki.tls_config(replication=True)})
    # Trusts the master's CA, but presents a certificate the master's CA did not sign.
    impostor_tls = other_pki.tls_config(replication=True)
    impostor_tls["ca_file"] = str(pki.ca_file)
    impostor = node_factory.replica(master, config={"tls": impostor_tls})
    wait_caught_up(master, [good])
    assert digest(good) == digest(master)
    # TLS 1.3: the master refuses the certificate after the replica's side of the
    # handshake is done, with an alert asyncio does not surface; both logs still say why.
    _wait_log(impostor, "if it sets tls.require_replica_cert, this replica's tls.cert_file")
    _wait_log(master, "TLS handshake on the replica listener failed")
    assert "the peer's certificate was refused" in master.log_text()
    assert impostor.redis().dbsize() == 0
    assert impostor.stats()["connected"] is False


def test_plain_replica_cannot_sync_from_a_tls_master(node_factory: NodeFactory, pki: Pki) -> None:
    master = node_factory.master(config={"tls": pki.tls_config(replication=True)})
    _fill(master)
    replica = node_factory.replica(master)
    log = _wait_log(replica, "if its replication listener uses TLS (tls.replication: true)")
    assert "the master closed the connection without answering" in log
    _wait_log(master, "the peer did not speak TLS (a replica without tls.replication: true")
    assert replica.redis().dbsize() == 0
    assert replica.stats()["connected"] is False


def test_tls_replica_cannot_sync_from_a_plain_master(node_factory: NodeFactory, pki: Pki) -> None:
    master = node_factory.master()
    _fill(master)
    replica = node_factory.replica(master, config={"tls": pki.tls_config(replication=True)})
    _wait_log(master, "opened a TLS connection, but this master's replication listener is plain")
    _wait_log(replica, "the master does not speak TLS on its replication port")
    assert replica.redis().dbsize() == 0


def test_replica_refuses_a_master_whose_certificate_it_cannot_verify(
    node_factory: NodeFactory, pki: Pki, other_pki: Pki
) -> None:
    master = node_factory.master(config={"tls": other_pki.tls_config(replication=True)})
    _fill(master)
    replica = node_factory.replica(master, config={"tls": pki.tls_config(replication=True)})
    log = _wait_log(replica, "TLS with the master failed (certificate verify failed")
    assert "tls.ca_file on this replica must hold the CA that signed" in log
    assert replica.redis().dbsize() == 0


def test_replica_checks_that_the_certificate_names_the_master(
    node_factory: NodeFactory, tmp_path: Path, pki: Pki
) -> None:
    from tests.support.certs import issue

    # Signed by the right CA, but for another host: must not pass for 127.0.0.1.
    cert, key = issue(tmp_path, (pki.ca_file, pki.ca_key), "elsewhere", "DNS:db.example.com")
    master_tls = pki.tls_config(replication=True, cert_file=str(cert), key_file=str(key))
    master = node_factory.master(config={"tls": master_tls})
    replica = node_factory.replica(master, config={"tls": pki.tls_config(replication=True)})
    log = _wait_log(replica, "does not name 127.0.0.1")
    assert "subject alternative name" in log
    assert replica.stats()["connected"] is False


# --------------------------------------------------------------------- client ports


def _start_tls_node(factory: NodeFactory, tls: dict[str, Any], **opts: Any) -> SynapProcess:
    """Start a node whose HTTP port speaks TLS: the harness's readiness probe is plain
    HTTP, so wait here with an https probe instead."""
    node = factory(config={"tls": tls}, wait=False, **opts)
    context = ssl.create_default_context(cafile=tls["ca_file"])
    cert = (tls["cert_file"], tls["key_file"]) if tls.get("require_client_cert") else None
    if cert is not None:
        context.load_cert_chain(*cert)

    def ready() -> bool:
        if not node.is_running():
            raise AssertionError(f"{node.name} exited:\n{node.log_tail(20)}")
        return httpx.get(f"https://{HOST}:{node.port}/health", verify=context, timeout=1).is_success

    deadline = time.monotonic() + 30
    while time.monotonic() < deadline:
        try:
            if ready():
                return node
        except (httpx.HTTPError, OSError):
            pass
        time.sleep(0.05)
    raise AssertionError(f"{node.name} not ready over https:\n{node.log_tail(20)}")


def test_redis_py_with_ssl_works_on_the_resp_port(node_factory: NodeFactory, pki: Pki) -> None:
    node = _start_tls_node(node_factory, pki.tls_config(clients=True))
    client = node.redis(ssl=True, ssl_ca_certs=str(pki.ca_file))
    assert client.ping() is True
    client.set(b"k", MARKER)
    assert client.get(b"k") == MARKER
    plain = node.redis(socket_timeout=2, retry=Retry(NoBackoff(), 0))
    with pytest.raises(redis.ConnectionError):
        plain.ping()
    assert "Redis protocol on 127.0.0.1" in node.log_text()
    assert "(TLS)" in node.log_text()


def test_httpx_with_the_ca_works_on_the_http_port(node_factory: NodeFactory, pki: Pki) -> None:
    node = _start_tls_node(node_factory, pki.tls_config(clients=True))
    base = f"https://{HOST}:{node.port}"
    with httpx.Client(base_url=base, verify=pki.client_context(), timeout=10) as client:
        assert client.post("/kv/set", json={"key": "k", "value": "v"}).json()["success"]
        assert client.get("/kv/get/k").json()["value"] == "v"
    assert f"HTTP API on https://{HOST}:{node.port}" in node.log_text()
    with pytest.raises(httpx.ConnectError):  # a client that does not trust our CA
        httpx.get(f"{base}/health", timeout=5)
    with pytest.raises(httpx.HTTPError):  # plain HTTP to the TLS port
        httpx.get(f"http://{HOST}:{node.port}/health", timeout=5)
    # synap-cli (httpx) trusts a private CA through SSL_CERT_FILE, as docs/SECURITY.md says.
    cli = subprocess.run(
        [sys.executable, "-c", "from synap.cli import main; main()", "digest", "--node", base],
        env={**os.environ, "SSL_CERT_FILE": str(pki.ca_file)},
        capture_output=True,
        text=True,
        timeout=30,
    )
    assert cli.returncode == 0, cli.stderr
    assert "keys=1" in cli.stdout


def test_client_certificates_are_required_when_configured(
    node_factory: NodeFactory, pki: Pki, other_pki: Pki
) -> None:
    node = _start_tls_node(node_factory, pki.tls_config(clients=True, require_client_cert=True))
    ca = str(pki.ca_file)
    mine = {"ssl_certfile": str(pki.cert_file), "ssl_keyfile": str(pki.key_file)}
    assert node.redis(ssl=True, ssl_ca_certs=ca, **mine).ping() is True
    without = node.redis(ssl=True, ssl_ca_certs=ca, socket_timeout=3)
    with pytest.raises(redis.ConnectionError):
        without.ping()
    foreign = {"ssl_certfile": str(other_pki.cert_file), "ssl_keyfile": str(other_pki.key_file)}
    with pytest.raises(redis.ConnectionError):
        node.redis(ssl=True, ssl_ca_certs=ca, socket_timeout=3, **foreign).ping()
    context = pki.client_context()
    context.load_cert_chain(pki.cert_file, pki.key_file)
    assert httpx.get(f"https://{HOST}:{node.port}/health", verify=context, timeout=5).is_success
    with pytest.raises(httpx.HTTPError):
        httpx.get(f"https://{HOST}:{node.port}/health", verify=pki.client_context(), timeout=5)


# --------------------------------------------------------------------- start-up


@pytest.mark.parametrize(
    ("change", "expected"),
    [
        (
            {"cert_file": "/nonexistent/node.pem"},
            "tls.cert_file: cannot read /nonexistent/node.pem",
        ),
        ({"ca_file": "/nonexistent/ca.pem"}, "tls.ca_file: cannot read /nonexistent/ca.pem"),
        ({"key_file": "CA"}, "tls.cert_file / tls.key_file: cannot load the certificate"),
    ],
    ids=["missing-cert", "missing-ca", "key-does-not-match"],
)
def test_unusable_tls_files_stop_the_node_at_startup(
    node_factory: NodeFactory, pki: Pki, change: dict[str, str], expected: str
) -> None:
    if change.get("key_file") == "CA":
        change = {"key_file": str(pki.ca_key)}  # a real key, but not the certificate's
    tls = pki.tls_config(replication=True, require_replica_cert=True, **change)
    node = node_factory.master(config={"tls": tls}, wait=False)
    assert node.wait_exit() == 1
    assert expected in node.log_text()
