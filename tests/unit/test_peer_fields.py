"""What a replication peer may call itself (synap.replication.peer_fields), and the
escaping every text view applies: pure functions, no sockets."""

from __future__ import annotations

import msgpack
import pytest
from hypothesis import given
from hypothesis import strategies as st

from synap.api.metrics import label_value
from synap.replication.framing import ProtocolError
from synap.replication.messages import PROTOCOL_VERSION, MessageType, decode_message
from synap.replication.peer_fields import (
    MAX_ID_CHARS,
    InvalidPeerField,
    bounded_text,
    check_host_port,
    check_peer_id,
    escape_text,
)
from synap.replication.replica_session import ReplicaSession

# --- ids --------------------------------------------------------------------------------


@pytest.mark.parametrize(
    "value", ["replica-5f0c1e2a-0000-4000-8000-123456789abc", "r", "a" * MAX_ID_CHARS, "x_y.z:1"]
)
def test_a_printable_ascii_id_is_accepted(value: str) -> None:
    assert check_peer_id(value) == value


@pytest.mark.parametrize(
    ("value", "says"),
    [
        ("", "1..128 characters"),
        ("a" * (MAX_ID_CHARS + 1), "1..128 characters"),
        ("evil\r\nslave9:ip=6.6.6.6", "printable ASCII"),
        ("replica-\x1b[2J", "printable ASCII"),
        ("replica one", "printable ASCII"),
        ("réplica", "printable ASCII"),
        ("replica\u202eevil", "printable ASCII"),
        (None, "must be a string"),
        (b"bytes", "must be a string"),
    ],
)
def test_a_malformed_id_is_rejected_with_the_reason(value: object, says: str) -> None:
    with pytest.raises(InvalidPeerField, match=says) as info:
        check_peer_id(value, "HELLO replica_id")
    message = str(info.value)
    assert message.startswith("HELLO replica_id")
    assert message.isprintable()  # the rejected value is shown escaped


def test_the_error_shows_at_most_a_short_preview_of_a_huge_value() -> None:
    with pytest.raises(InvalidPeerField) as info:
        check_peer_id("x" * 100_000)
    assert len(str(info.value)) < 200


# --- addresses ----------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("value", "host", "port"),
    [
        ("127.0.0.1:5500", "127.0.0.1", 5500),
        ("0.0.0.0:1", "0.0.0.0", 1),
        ("localhost:65535", "localhost", 65535),
        ("node-1.example.com:5500", "node-1.example.com", 5500),
        ("[::1]:5500", "[::1]", 5500),
        ("::1:5500", "::1", 5500),  # how the replica announces a bare IPv6 host
        (":::5500", "::", 5500),
    ],
)
def test_a_host_port_address_is_accepted(value: str, host: str, port: int) -> None:
    assert check_host_port(value) == (host, port)


@pytest.mark.parametrize(
    "value",
    [
        "nohost",
        "127.0.0.1",
        "127.0.0.1:",
        ":5500",
        "127.0.0.1:0",
        "127.0.0.1:99999",
        "127.0.0.1:+80",
        "127.0.0.1:0080",
        "127.0.0.1:٥٥",
        "bad host:5500",
        "evil\n:5500",
        "a..b:5500",
        "-a.example:5500",
        "[not-v6]:5500",
        "fe80::1%eth0:5500",
        "fe80::1%\n:5500",
        "[fe80::1%a b]:5500",
        "x" * 300 + ":5500",
        "a" * 64 + ".example:5500",
    ],
)
def test_a_malformed_address_is_rejected(value: str) -> None:
    with pytest.raises(InvalidPeerField) as info:
        check_host_port(value, "HELLO listen_address")
    assert str(info.value).isprintable()


@given(st.text(max_size=80))
def test_address_check_accepts_only_what_it_can_split(value: str) -> None:
    try:
        host, port = check_host_port(value)
    except InvalidPeerField:
        return
    assert value == f"{host}:{port}" and value.isascii() and value.isprintable()
    assert " " not in value and 0 < port < 65536


@given(st.text(max_size=200))
def test_an_accepted_id_is_always_printable_ascii_without_spaces(value: str) -> None:
    try:
        check_peer_id(value)
    except InvalidPeerField:
        return
    assert value.isascii() and value.isprintable() and " " not in value
    assert 0 < len(value) <= MAX_ID_CHARS


# --- HELLO decoding uses them ---------------------------------------------------------------


def _hello(replica_id: object, address: object) -> bytes:
    return msgpack.packb(
        [int(MessageType.HELLO), PROTOCOL_VERSION, replica_id, address, "?", 0], use_bin_type=True
    )


def test_hello_with_a_control_character_in_the_id_is_a_protocol_error() -> None:
    with pytest.raises(ProtocolError, match="HELLO replica_id must be printable ASCII"):
        decode_message(_hello("a\r\nb", None))


def test_hello_with_a_bad_address_is_a_protocol_error() -> None:
    with pytest.raises(ProtocolError, match="HELLO listen_address"):
        decode_message(_hello("replica-1", "not an address"))


def test_a_valid_hello_decodes() -> None:
    hello = decode_message(_hello("replica-1", "127.0.0.1:5500"))
    assert hello.replica_id == "replica-1"  # type: ignore[union-attr]


def test_a_replica_session_refuses_to_announce_what_a_master_would_reject() -> None:
    with pytest.raises(ValueError, match="replica_id"):
        ReplicaSession("bad id", None, None, 0, None)
    with pytest.raises(ValueError, match="listen_address"):
        ReplicaSession("replica-1", "nohost", None, 0, None)


# --- escaping -------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("raw", "shown"),
    [
        ("plain text", "plain text"),
        ("ünïcode ok", "ünïcode ok"),
        ("a\r\nb", "a\\r\\nb"),
        ("\x1b[2J", "\\x1b[2J"),
        ("rtl\u202e", "rtl\\u202e"),
        (12, "12"),
        (None, "None"),
    ],
)
def test_escape_text_keeps_everything_on_one_printable_line(raw: object, shown: str) -> None:
    assert escape_text(raw) == shown


@given(st.text())
def test_escaped_text_is_always_printable(value: str) -> None:
    out = escape_text(value)
    assert out.isprintable()
    if value.isprintable():
        assert out == value


def test_metric_label_values_are_printable_and_escaped_by_the_library() -> None:
    from prometheus_client import CollectorRegistry, generate_latest
    from prometheus_client.core import GaugeMetricFamily
    from prometheus_client.parser import text_string_to_metric_families

    raw = 'a"b\\c\nline\x1b[2J'
    assert label_value(raw) == 'a"b\\c\\nline\\x1b[2J'  # non-printables as text

    class One:
        def collect(self):  # type: ignore[no-untyped-def]
            family = GaugeMetricFamily("synap_t", "t", labels=["replica"])
            family.add_metric([label_value(raw)], 1)
            yield family

    registry = CollectorRegistry()
    registry.register(One())  # type: ignore[arg-type]
    text = generate_latest(registry).decode()
    # One line per sample: no raw line feed or escape character got into the output.
    assert text.count("\n") == 3 and "\x1b" not in text
    assert 'replica="a\\"b\\\\c\\\\nline\\\\x1b[2J"' in text
    (family,) = text_string_to_metric_families(text)
    assert family.samples[0].labels["replica"] == label_value(raw)  # round-trips


def test_bounded_text_cuts_long_peer_messages() -> None:
    assert bounded_text("short") == "short"
    cut = bounded_text("x" * 5000, 100)
    assert cut.startswith("x" * 100) and "4900 more characters" in cut
