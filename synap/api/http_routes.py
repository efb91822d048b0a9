"""The HTTP route table: path pattern, methods, handler, admin and auth flags per route.

A pattern is an exact path (``/kv/set``) or a prefix ending in ``{key}``
(``/kv/get/{key}``: everything after ``/kv/get/`` is the key, slashes included). Lookup
is one dict probe for exact paths, then the prefixes in order. A known path asked with
a method it does not serve answers 405 with ``Allow`` (``HEAD`` wherever ``GET`` is);
an unknown path 404. The table itself lives with the handlers (:mod:`synap.api.http`).
"""

from __future__ import annotations

from collections.abc import Callable, Iterable
from dataclasses import dataclass, field
from typing import Any

KEY = "{key}"


@dataclass(frozen=True)
class Route:
    """One route. ``handler(api, request, key)`` answers it (``key`` is ``b""`` for an
    exact path). ``admin``: needs the admin key when one is set. ``open``: served without
    an API key (health checks, the status page shell)."""

    pattern: str
    methods: frozenset[str]
    handler: Callable[..., Any]
    admin: bool = False
    open: bool = False
    #: ``Allow`` header value: the methods, HEAD added wherever GET is.
    allow: bytes = field(init=False, default=b"")
    #: The path before ``{key}``, or None for an exact route.
    prefix: str | None = field(init=False, default=None)
    #: How ``/metrics`` names the route: never a key (``/kv/get``, not ``/kv/get/k``).
    label: str = field(init=False, default="")

    def __post_init__(self) -> None:
        methods = set(self.methods)
        if "GET" in methods:
            methods.add("HEAD")
        prefix = self.pattern[: -len(KEY)] if self.pattern.endswith(KEY) else None
        if not self.pattern.startswith("/") or (prefix is not None and not prefix.endswith("/")):
            raise ValueError(f"bad route pattern {self.pattern!r}")
        object.__setattr__(self, "methods", frozenset(methods))
        object.__setattr__(self, "allow", ", ".join(sorted(methods)).encode())
        object.__setattr__(self, "prefix", prefix)
        object.__setattr__(self, "label", self.pattern if prefix is None else prefix.rstrip("/"))


class RouteTable:
    """Routes by path; see the module docstring for the matching rules."""

    def __init__(self, routes: Iterable[Route]) -> None:
        self.routes = list(routes)
        self._exact: dict[str, Route] = {}
        self._prefixes: list[tuple[str, Route]] = []
        for route in self.routes:
            prefix = route.prefix
            if prefix is None:
                if route.pattern in self._exact:
                    raise ValueError(f"route {route.pattern} is defined twice")
                self._exact[route.pattern] = route
            else:
                if KEY in prefix or any(p == prefix for p, _ in self._prefixes):
                    raise ValueError(f"bad or duplicate route pattern {route.pattern}")
                self._prefixes.append((prefix, route))
        # The longest prefix wins where two overlap.
        self._prefixes.sort(key=lambda item: -len(item[0]))

    def match(self, path: str) -> tuple[Route, bytes] | None:
        """The route serving ``path`` and the key it names, or None (404)."""
        route = self._exact.get(path)
        if route is not None:
            return route, b""
        for prefix, route in self._prefixes:
            if path.startswith(prefix):
                return route, path[len(prefix) :].encode()
        return None

    def labels(self) -> list[str]:
        return [route.label for route in self.routes]
