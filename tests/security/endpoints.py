"""Every URL pattern of the project, enumerated from the resolver, with a sample URL.

The security tests walk this list instead of a hand-written one, so a page or
endpoint added later is covered the day it is added: it has to pass the same
checks or be named, with a reason, in one of the allow-lists of the tests.
"""

import re
from collections.abc import Callable
from dataclasses import dataclass

from django.urls import URLPattern, URLResolver, get_resolver, resolve
from django.urls.resolvers import RoutePattern

# Values for path converters: objects with these keys need not exist, the
# security checks run before any lookup.
SAMPLE_VALUES = {
    "int": "1",
    "str": "x",
    "slug": "x",
    "path": "x",
    "uuid": "00000000-0000-0000-0000-000000000001",
}
ROUTE_PARAMETER = re.compile(r"<(?:(?P<converter>[^>:]+):)?(?P<name>[^>]+)>")
REGEX_GROUP = re.compile(r"\(\?P<\w+>(?P<body>[^)]*)\)")
ALTERNATIVES = re.compile(r"[\w-]+(?:\|[\w-]+)+")


@dataclass(frozen=True)
class Endpoint:
    """One URL pattern: its readable route, a URL it matches, and its view."""

    route: str
    url: str
    name: str | None
    callback: Callable

    @property
    def view_class(self) -> type | None:
        """The class of a class-based view (Django's or DRF's), else None."""
        return getattr(self.callback, "view_class", None) or getattr(
            self.callback, "cls", None
        )

    @property
    def is_admin(self) -> bool:
        return self.route.startswith("admin/")

    @property
    def is_api(self) -> bool:
        return self.route.startswith("api/")

    def __str__(self) -> str:
        return self.route


def _sample(pattern) -> str:
    """A concrete piece of URL that ``pattern`` matches."""
    if isinstance(pattern, RoutePattern):
        return ROUTE_PARAMETER.sub(
            lambda match: SAMPLE_VALUES[match["converter"] or "str"], pattern._route
        )
    regex = pattern._regex.removeprefix("^").removesuffix("\\Z").removesuffix("$")
    return REGEX_GROUP.sub(_group_sample, regex).replace("\\", "")


def _group_sample(match: re.Match) -> str:
    """The first choice of an alternation (the admin's app labels), else "x"."""
    if ALTERNATIVES.fullmatch(match["body"]):
        return match["body"].split("|")[0]
    return "x"


def _walk(resolver: URLResolver, route: str, url: str, namespace: str):
    for entry in resolver.url_patterns:
        piece_route = str(entry.pattern)
        piece_url = _sample(entry.pattern)
        if isinstance(entry, URLResolver):
            inner = namespace
            if entry.namespace:
                inner = f"{namespace}{entry.namespace}:"
            yield from _walk(entry, route + piece_route, url + piece_url, inner)
        elif isinstance(entry, URLPattern):
            name = f"{namespace}{entry.name}" if entry.name else None
            yield Endpoint(
                route=route + piece_route,
                url="/" + url + piece_url,
                name=name,
                callback=entry.callback,
            )


def all_endpoints() -> list[Endpoint]:
    """Every pattern of ROOT_URLCONF, admin included, each checked to resolve."""
    endpoints = list(_walk(get_resolver(), "", "", ""))
    for endpoint in endpoints:
        match = resolve(endpoint.url)
        # Shadowed patterns (an earlier one matches the sample first) would test
        # the wrong view: the sample values must reach the pattern they came from.
        assert match.func is endpoint.callback or (match.route == endpoint.route), (
            f"{endpoint.url} resolves to {match.route}, not {endpoint.route}"
        )
    return endpoints
