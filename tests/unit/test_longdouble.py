"""INCRBYFLOAT's long double arithmetic (synap.commands.longdouble), checked against
digits Redis 7.0.15 prints on x86-64."""

from __future__ import annotations

from fractions import Fraction

import pytest

from synap.commands.longdouble import Infinite, format_ld, parse, round_ld


def add(*texts: bytes) -> bytes:
    total = Fraction(0)
    for text in texts:
        value = parse(text)
        assert value is not None
        total = round_ld(total + value)
    return format_ld(total)


def test_small_decimals_come_out_as_typed() -> None:
    assert add(b"0.1", b"0.2") == b"0.3"
    assert add(b"10.5", b"0.1") == b"10.6"
    assert add(b"5.0e3", b"2.0e2") == b"5200"


def test_digits_beyond_double_precision_match_redis() -> None:
    assert add(b"17179869184", b"1.5", b"-1.1") == b"17179869184.40000000037252903"
    assert add(b"3", b"1.1e-10", b"1e17") == b"100000000000000003"
    assert add(b"1.79769313486231570e+308", b"1.79769313486231570e+308").startswith(
        b"35953862697246313999"
    )
    assert len(add(b"1e400")) == 401


def test_parsing_follows_string2ld() -> None:
    assert parse(b"0x10") == 16
    assert parse(b"0X1p3") == 8
    assert parse(b".5") == Fraction(1, 2) and parse(b"5.") == 5 and parse(b"+3") == 3
    for bad in (b"", b" 1", b"1 ", b"nan", b"1e", b"0x", b"abc", b"1e5000", b"1e-5000", b"-"):
        assert parse(bad) is None, bad
    with pytest.raises(Infinite):
        parse(b"-Infinity")


def test_rounding_is_to_64_bits_half_even() -> None:
    one = Fraction(1)
    assert round_ld(one + Fraction(1, 2**64)) == one  # half an ulp: ties to even
    assert round_ld(one + Fraction(3, 2**64)) == one + Fraction(1, 2**62)
    with pytest.raises(Infinite):
        round_ld(Fraction(2) ** 16384)


def test_negative_zero_prints_as_zero() -> None:
    assert add(b"-0.5", b"0.5") == b"0"
    assert add(b"-0.000000000000000001") == b"0"
