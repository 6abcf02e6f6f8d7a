"""Every URL pattern the project serves, read from the URL resolver, with the HTTP methods of its view.

Class-based views (DRF APIView, Django View) say which methods they serve: the handlers they define.
HEAD and OPTIONS are left out everywhere: Django answers HEAD with the GET handler and DRF answers
OPTIONS with its metadata behind the same guards as GET. Function views (the async SSE views, the
metrics view, the JSON 404 under /api/) declare nothing; the role matrix declares their methods and a
test checks that every other method answers 405.
"""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass

from django.urls import URLPattern, URLResolver, get_resolver

PROBED_METHODS = ("GET", "POST", "PUT", "PATCH", "DELETE")


@dataclass(frozen=True)
class ServedPattern:
    key: str  # the URL name with its namespace ("admin:index"), or the route when the pattern has no name
    route: str
    namespace: str | None
    view_class: type | None  # None for a function view
    actions: tuple[tuple[str, str], ...] | None = None  # a viewset route's (method, action) pairs

    @property
    def methods(self) -> tuple[str, ...] | None:
        """The methods of a class-based view; None for a function view (it declares none)."""
        if self.actions is not None:
            return tuple(sorted(method.upper() for method, _ in self.actions if method not in ("head", "options")))
        if self.view_class is None:
            return None
        return tuple(
            sorted(
                name.upper()
                for name in self.view_class.http_method_names
                if name not in ("head", "options") and callable(getattr(self.view_class, name, None))
            )
        )


def _view_class(callback) -> type | None:
    # DRF's as_view() sets `cls`, Django's sets `view_class`
    return getattr(callback, "cls", None) or getattr(callback, "view_class", None)


def _walk(resolver: URLResolver, prefix: str, namespace: str | None) -> Iterator[ServedPattern]:
    for entry in resolver.url_patterns:
        if isinstance(entry, URLResolver):
            inner = namespace
            if entry.namespace:
                inner = f"{namespace}:{entry.namespace}" if namespace else entry.namespace
            yield from _walk(entry, prefix + str(entry.pattern), inner)
        elif isinstance(entry, URLPattern):
            route = prefix + str(entry.pattern)
            name = f"{namespace}:{entry.name}" if namespace and entry.name else entry.name
            actions = getattr(entry.callback, "actions", None)  # DRF viewsets: {method: action}
            yield ServedPattern(
                key=name or route,
                route=route,
                namespace=namespace,
                view_class=_view_class(entry.callback),
                actions=tuple(actions.items()) if actions is not None else None,
            )


def served_patterns() -> list[ServedPattern]:
    """Every pattern of the root URLconf, in resolution order."""
    return list(_walk(get_resolver(), "", None))
