"""Redis-style glob patterns (``*``, ``?``, ``[a-z]``, ``[^x]``, ``\\`` escapes) on bytes.

The pattern is read as Redis's ``stringmatchlen`` reads it (``util.c``): ``?`` is any
byte; ``[...]`` a set of bytes with ``^`` negation, ``a-z`` ranges (reversed ones are
swapped), ``\\`` escapes, and an unterminated ``[`` running to the end of the pattern;
``\\`` outside a set makes the next byte literal.

Matching must not take exponential time: ``KEYS *a*a*a*a*a*a*a*a*a*ab`` against a key of
40 ``a`` took 30 s with a backtracking regex, with the whole server stalled (Redis had
the same problem, CVE-2022-36021).  Every element but ``*`` matches exactly one byte, so
the pattern is cut at the stars into fixed-length segments: the first must match at the
start, the last at the end, and each one in between is searched for leftmost, after the
previous one.  Taking the leftmost place for each segment leaves the most room for the
rest, so this finds a match whenever one exists, in O(len(pattern) * len(key)).
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from functools import lru_cache

_STAR = None  # token for "*"; every other token is the set of bytes it accepts


def _tokens(pattern: bytes) -> list[frozenset[int] | None]:
    """The pattern as tokens: ``None`` for ``*`` (runs collapsed), else a byte set."""
    n = len(pattern)

    def at(i: int) -> int:  # Redis reads the NUL after the pattern; so do we
        return pattern[i] if i < n else 0

    tokens: list[frozenset[int] | None] = []
    i = 0
    while i < n:
        c = pattern[i]
        if c == 0x2A:  # *
            if not tokens or tokens[-1] is not _STAR:
                tokens.append(_STAR)
        elif c == 0x3F:  # ?
            tokens.append(_ANY)
        elif c == 0x5B:  # [
            i += 1
            negate = at(i) == 0x5E  # ^
            if negate:
                i += 1
            members: set[int] = set()
            while True:
                left = n - i
                if at(i) == 0x5C and left >= 2:  # \x: x itself
                    i += 1
                    members.add(pattern[i])
                elif at(i) == 0x5D:  # ]
                    break
                elif left <= 0:  # unterminated: the set ends with the pattern
                    i -= 1
                    break
                elif left >= 3 and at(i + 1) == 0x2D:  # a-z
                    start, end = sorted((pattern[i], pattern[i + 2]))
                    members.update(range(start, end + 1))
                    i += 2
                else:
                    members.add(pattern[i])
                i += 1
            tokens.append(_ANY - members if negate else frozenset(members))
        else:
            if c == 0x5C and n - i >= 2:  # \x
                i += 1
            tokens.append(frozenset((pattern[i],)))
        i += 1
    return tokens


_ANY = frozenset(range(256))


def _byte_class(accepted: frozenset[int]) -> bytes:
    """A regex matching exactly one byte of ``accepted``."""
    if accepted == _ANY:
        return b"."
    if not accepted:
        return b"(?!)"
    if len(accepted) == 1:
        return re.escape(bytes(accepted))
    return b"[" + b"".join(b"\\x%02x" % b for b in sorted(accepted)) + b"]"


@dataclass(frozen=True)
class _Segment:
    length: int  # bytes it matches (every token matches exactly one)
    regex: re.Pattern[bytes]


@dataclass(frozen=True)
class CompiledGlob:
    segments: tuple[_Segment, ...]  # the pattern split at its stars
    stars: bool

    def match(self, key: bytes) -> bool:
        segments = self.segments
        first = segments[0]
        if not self.stars:
            return len(key) == first.length and first.regex.fullmatch(key) is not None
        last = segments[-1]
        end = len(key) - last.length  # where the last segment must start
        if end < first.length:
            return False
        if first.length and first.regex.match(key) is None:
            return False
        pos = first.length
        for segment in segments[1:-1]:
            if segment.length:
                found = segment.regex.search(key, pos, end)
                if found is None:
                    return False
                pos = found.end()
        return not last.length or last.regex.fullmatch(key, end) is not None


@lru_cache(maxsize=256)
def compile_glob(pattern: bytes) -> CompiledGlob:
    pieces: list[list[bytes]] = [[]]
    for token in _tokens(pattern):
        if token is _STAR:
            pieces.append([])
        else:
            pieces[-1].append(_byte_class(token))
    segments = tuple(
        _Segment(len(parts), re.compile(b"".join(parts), re.DOTALL)) for parts in pieces
    )
    return CompiledGlob(segments, stars=len(segments) > 1)


def glob_match(pattern: bytes, key: bytes) -> bool:
    if pattern == b"*":
        return True
    return compile_glob(pattern).match(key)
