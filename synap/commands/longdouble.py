"""INCRBYFLOAT's arithmetic as Redis does it: C ``long double`` (x87 80-bit extended:
64-bit mantissa, exponents down to 2**-16445 with denormals, overflow at 2**16384),
parsed as ``strtold`` parses (decimal and hex, ``inf``) under Redis's ``string2ld`` rules
and printed as ``%.17Lf`` with trailing zeros removed (``ld2string`` LD_STR_HUMAN).

Values are exact :class:`~fractions.Fraction` objects rounded to the nearest long
double after every step (round half to even, as the FPU does), so ``0.1 + 0.2`` gives
``0.3`` as on Redis and the digits printed are those glibc prints.
"""

from __future__ import annotations

import re
from fractions import Fraction

MANTISSA_BITS = 64
MIN_EXPONENT = -16382  # smallest normal: 2**-16382
MAX_EXPONENT = 16383  # largest finite < 2**16384
# Redis: MAX_LONG_DOUBLE_CHARS; longer strings are not numbers.
MAX_CHARS = 5 * 1024


class Infinite(Exception):
    """The value is (or rounds to) plus or minus infinity."""


_DECIMAL = re.compile(rb"([+-]?)(\d*)(?:\.(\d*))?(?:[eE]([+-]?\d+))?")
_HEX = re.compile(rb"([+-]?)0[xX]([0-9a-fA-F]*)(?:\.([0-9a-fA-F]*))?(?:[pP]([+-]?\d+))?")
_INF = re.compile(rb"[+-]?(?:inf|infinity)", re.IGNORECASE)


def round_ld(value: Fraction) -> Fraction:
    """The long double nearest to ``value``; raises :class:`Infinite` on overflow."""
    if value == 0:
        return Fraction(0)
    sign = -1 if value < 0 else 1
    a = abs(value)
    e = a.numerator.bit_length() - a.denominator.bit_length()
    if Fraction(2) ** e > a:
        e -= 1
    elif Fraction(2) ** (e + 1) <= a:
        e += 1
    if e > MAX_EXPONENT:
        raise Infinite
    quantum_exp = max(e, MIN_EXPONENT) - (MANTISSA_BITS - 1)
    scaled = a / Fraction(2) ** quantum_exp
    n = round(scaled)  # Fraction.__round__: half to even
    result = n * Fraction(2) ** quantum_exp
    if result >= Fraction(2) ** (MAX_EXPONENT + 1):
        raise Infinite
    return sign * result


def parse(raw: bytes) -> Fraction | None:
    """``string2ld``: None when ``raw`` is not a number Redis accepts.  Infinity parses
    (raises :class:`Infinite`); NaN, spaces, overflow and underflow to zero do not."""
    if not raw or len(raw) >= MAX_CHARS:
        return None
    if _INF.fullmatch(raw):
        raise Infinite
    m = _DECIMAL.fullmatch(raw)
    if m is not None and (m.group(2) or m.group(3)):
        sign, whole, frac, exp = m.groups()
        digits = (whole + (frac or b"")).lstrip(b"0")
        exponent = int(exp or 0) - len(frac or b"")
        if not digits:
            return Fraction(0)
        magnitude = exponent + len(digits)  # value < 10**magnitude
        if magnitude > 4934:
            return None  # ERANGE, HUGE_VALL
        if magnitude < -4951 - 2:
            return None  # ERANGE, rounds to zero
        value = Fraction(int(digits)) * Fraction(10) ** exponent
    else:
        m = _HEX.fullmatch(raw)
        if m is None or not (m.group(2) or m.group(3)):
            return None
        sign, whole, frac, exp = m.groups()
        digits = (whole + (frac or b"")).lstrip(b"0")
        exponent = int(exp or 0) - 4 * len(frac or b"")
        if not digits:
            return Fraction(0)
        magnitude = exponent + 4 * len(digits)
        if magnitude > MAX_EXPONENT + 2:
            return None
        if magnitude < MIN_EXPONENT - MANTISSA_BITS - 2:
            return None
        value = Fraction(int(digits, 16)) * Fraction(2) ** exponent
    if sign == b"-":
        value = -value
    try:
        result = round_ld(value)
    except Infinite:
        return None  # overflow: ERANGE
    if result == 0:
        return None  # underflow to zero: ERANGE
    return result


def format_ld(value: Fraction) -> bytes:
    """``%.17Lf`` without trailing zeros (and ``-0`` written ``0``)."""
    scaled = round(abs(value) * 10**17)  # half to even, as glibc rounds exact values
    text = b"%018d" % scaled
    whole, frac = text[:-17], text[-17:].rstrip(b"0")
    out = whole + b"." + frac if frac else whole
    if value < 0 and out != b"0":
        out = b"-" + out
    return out
