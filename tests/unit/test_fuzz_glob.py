"""KEYS / SCAN MATCH / CONFIG GET patterns (synap.commands.glob), fuzzed with hypothesis.

Found here: a backtracking regex took 30 s for ``*a*a*a*a*a*a*a*a*a*ab`` against 40 bytes
(the whole server stalls: one event loop), and ``[]`` or ``[z-a]`` raised re.error, which
reached the client as "internal error".  The matcher now follows Redis's reading of
a pattern and runs in O(len(pattern) * len(key)); these properties keep it that way.
"""

from __future__ import annotations

import time

from hypothesis import HealthCheck, example, given, settings
from hypothesis import strategies as st

from synap.commands.glob import glob_match
from tests.support.fuzz_node import scaled

FUZZ = settings(
    max_examples=scaled(400), deadline=1000, suppress_health_check=[HealthCheck.too_slow]
)


def redis_stringmatch(pattern: bytes, string: bytes) -> bool:
    """A line-by-line port of Redis 7's ``stringmatchlen_impl`` (util.c, nocase=0).

    Redis strings end in a NUL that the C code reads past the pattern's length; the NUL
    appended here plays that part. Exponential in the worst case: small inputs only."""
    p = pattern + b"\0"
    s = string
    skip = [False]  # skipLongerMatches, shared by the whole recursion

    def rec(pi: int, plen: int, si: int, slen: int, nesting: int) -> bool:
        if nesting > 1000:
            return False
        while plen and slen:
            c = p[pi]
            if c == ord("*"):
                while plen and p[pi + 1] == ord("*"):
                    pi += 1
                    plen -= 1
                if plen == 1:
                    return True
                while slen:
                    if rec(pi + 1, plen - 1, si, slen, nesting + 1):
                        return True
                    if skip[0]:
                        return False
                    si += 1
                    slen -= 1
                skip[0] = True
                return False
            elif c == ord("?"):
                si += 1
                slen -= 1
            elif c == ord("["):
                pi += 1
                plen -= 1
                negate = p[pi] == ord("^")
                if negate:
                    pi += 1
                    plen -= 1
                match = False
                while True:
                    if p[pi] == ord("\\") and plen >= 2:
                        pi += 1
                        plen -= 1
                        if p[pi] == s[si]:
                            match = True
                    elif p[pi] == ord("]"):
                        break
                    elif plen == 0:
                        pi -= 1
                        plen += 1
                        break
                    elif plen >= 3 and p[pi + 1] == ord("-"):
                        start, end = sorted((p[pi], p[pi + 2]))
                        pi += 2
                        plen -= 2
                        if start <= s[si] <= end:
                            match = True
                    elif p[pi] == s[si]:
                        match = True
                    pi += 1
                    plen -= 1
                if negate:
                    match = not match
                if not match:
                    return False
                si += 1
                slen -= 1
            else:
                if c == ord("\\") and plen >= 2:
                    pi += 1
                    plen -= 1
                if p[pi] != s[si]:
                    return False
                si += 1
                slen -= 1
            pi += 1
            plen -= 1
            if slen == 0:
                while p[pi] == ord("*"):
                    pi += 1
                    plen -= 1
                break
        return plen == 0 and slen == 0

    return rec(0, len(pattern), 0, len(string), 0)


# Small alphabets make matches (and every special character) likely.
patterns = st.binary(max_size=12).map(lambda b: bytes(b"ab*?[]^-\\"[x % 9] for x in b))
keys = st.binary(min_size=1, max_size=10).map(lambda b: bytes(b"ab-]^\\["[x % 7] for x in b))


@FUZZ
@given(patterns, keys)
@example(b"[]", b"a")
@example(b"[^]", b"a")
@example(b"[b-a]", b"a")
@example(b"[a-]x", b"-x")
@example(b"[abc", b"c")
@example(b"a\\", b"a\\")
@example(b"*a*", b"ba")
def test_glob_agrees_with_redis_stringmatchlen(pattern: bytes, key: bytes) -> None:
    # Keys are non-empty: Redis's loop never runs for an empty string, so "*" fails to
    # match "" there (KEYS special-cases "*"); here a star matches the empty string.
    assert glob_match(pattern, key) == redis_stringmatch(pattern, key)


@FUZZ
@given(st.binary(max_size=64), st.binary(max_size=64))
def test_any_bytes_as_a_pattern_never_raise(pattern: bytes, key: bytes) -> None:
    assert glob_match(pattern, key) in (True, False)


@settings(max_examples=50, deadline=None)
@given(st.integers(1, 60), st.integers(1, 4000))
def test_star_heavy_patterns_take_linear_time(stars: int, length: int) -> None:
    # The CVE-2022-36021 shape: many stars, a key that almost matches every one.
    pattern = b"*a" * stars + b"b"
    started = time.perf_counter()
    assert glob_match(pattern, b"a" * length) is False
    assert glob_match(pattern, b"a" * length + b"b") is (length >= stars)
    assert time.perf_counter() - started < 0.5
