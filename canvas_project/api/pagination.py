"""One pagination for every list: keyset cursors over a unique, immutable-where-possible ordering.

`?page_size=` (default PAGE_SIZE_DEFAULT, at most PAGE_SIZE_MAX) and `?cursor=` (opaque, from `next` or
`previous`) answer `{results, next, previous}` with absolute URLs or null.

A cursor holds the full sort key of the row it continues from (every ordering field, ending with the
row's unique id) and the direction, signed with SECRET_KEY and bound to the list's path and ordering: a
page starts strictly after that key, so a row inserted or deleted between two fetches never shifts the
rest (nothing lost, nothing repeated), unlike an offset. A forged, truncated or foreign cursor is a 422
at `query.cursor`; its values never reach SQL unless this module wrote them.

`CursorPagination.paginate_queryset` pages a Django queryset (the WHERE clause is a row-value comparison
built from the queryset's ordering); `paginate_sequence` pages a list read from Redis or the Store with
the same cursors and the same envelope: the adapter for lists not backed by a queryset.

The old `page`, `offset` and `limit` parameters are refused (422 naming the cursor): silently ignoring
them would make an old client read page 1 forever.
"""

from __future__ import annotations

import datetime as dt
import decimal
import re
import uuid
from collections.abc import Callable, Sequence
from functools import cache
from typing import Any

from django.conf import settings
from django.core import signing
from django.db.models import Q, QuerySet
from rest_framework import pagination, serializers
from rest_framework.response import Response
from rest_framework.utils.urls import replace_query_param

from canvas_project.api.validation import RequestValidationError

CURSOR_SALT = "canvas_project.api.pagination"
MAX_CURSOR_LENGTH = 2000
RETIRED_PARAMS = ("page", "offset", "limit")
RETIRED_MESSAGE = (
    "`{name}` is no longer supported: lists are cursor-paginated; follow the `next` URL (`cursor`) and set `page_size`."
)
_DIGITS = re.compile(r"[0-9]{1,6}")


def _invalid(param: str, message: str, value: Any, kind: str) -> RequestValidationError:
    return RequestValidationError([{"loc": ["query", param], "msg": message, "type": kind, "input": value, "ctx": {}}])


def _plain(value: Any) -> Any:
    """A sort-key value as JSON (the cursor): datetimes as ISO text, UUIDs as text."""
    if isinstance(value, dt.datetime | dt.date):
        return {"dt": value.isoformat()}
    if isinstance(value, uuid.UUID):
        return str(value)
    if isinstance(value, decimal.Decimal):
        return str(value)
    return value


def _restored(value: Any) -> Any:
    if isinstance(value, dict) and "dt" in value:
        return dt.datetime.fromisoformat(value["dt"])
    return value


class CursorPagination(pagination.CursorPagination):
    """The project's one paginator (see the module docstring)."""

    page_size_query_param = "page_size"
    cursor_query_param = "cursor"

    def __init__(self) -> None:
        self.page_size = settings.PAGE_SIZE_DEFAULT
        self.max_page_size = settings.PAGE_SIZE_MAX
        self.base_url: str | None = None
        self.has_next = self.has_previous = False
        self.next_key: tuple | None = None
        self.previous_key: tuple | None = None
        self.scope = ""

    # --- input -----------------------------------------------------------------------------------
    def get_page_size(self, request) -> int:
        """Raises RequestValidationError: not a whole number from 1 to PAGE_SIZE_MAX."""
        raw = request.query_params.get(self.page_size_query_param)
        if raw is None:
            return self.page_size
        size = int(raw) if _DIGITS.fullmatch(raw) else 0
        if not 1 <= size <= self.max_page_size:
            raise _invalid(
                self.page_size_query_param,
                f"Input should be a whole number from 1 to {self.max_page_size}.",
                raw,
                "int_range",
            )
        return size

    def _read_cursor(self, request, scope: str) -> tuple[tuple | None, bool]:
        """(position, reverse) of the request's cursor; (None, False) without one.
        Raises RequestValidationError: a retired parameter, a cursor this list did not issue."""
        for retired in RETIRED_PARAMS:
            if retired in request.query_params:
                raise _invalid(
                    retired,
                    RETIRED_MESSAGE.format(name=retired),
                    request.query_params.get(retired),
                    "retired_parameter",
                )
        raw = request.query_params.get(self.cursor_query_param)
        if raw is None:
            return None, False
        try:
            if len(raw) > MAX_CURSOR_LENGTH:
                raise signing.BadSignature("too long")
            payload = signing.loads(raw, salt=CURSOR_SALT)
            if not isinstance(payload, dict) or payload.get("s") != scope:
                raise signing.BadSignature("another list")
            return tuple(_restored(v) for v in payload["p"]), bool(payload["r"])
        except (signing.BadSignature, KeyError, TypeError, ValueError):
            raise _invalid(
                self.cursor_query_param,
                "Invalid cursor: use the `next` or `previous` URL of this list with the same filters and ordering.",
                raw[:100],
                "cursor_invalid",
            ) from None

    def _cursor_url(self, key: tuple, reverse: bool) -> str:
        token = signing.dumps({"s": self.scope, "p": [_plain(v) for v in key], "r": reverse}, salt=CURSOR_SALT)
        return replace_query_param(self.base_url, self.cursor_query_param, token)

    def _begin(self, request, scope_extra: str) -> tuple[int, tuple | None, bool]:
        self.request = request
        self.base_url = request.build_absolute_uri()
        self.scope = f"{request.path}|{scope_extra}"
        size = self.get_page_size(request)
        position, reverse = self._read_cursor(request, self.scope)
        return size, position, reverse

    def _finish(self, rows: list, keys: list[tuple], size: int, position: tuple | None, reverse: bool) -> list:
        """Trim the size+1 fetched rows to a page; work out `next` and `previous`."""
        more = len(rows) > size
        rows, keys = rows[:size], keys[:size]
        if reverse:  # fetched backwards from the cursor: flip into the list's order
            rows.reverse()
            keys.reverse()
            self.has_previous, self.has_next = more, True
        else:
            self.has_next, self.has_previous = more, position is not None
        self.next_key = keys[-1] if keys else position
        self.previous_key = keys[0] if keys else position
        if not keys and reverse:
            self.has_previous = False
        if not keys and not reverse:
            self.has_next = False
        return rows

    # --- a queryset ------------------------------------------------------------------------------
    def paginate_queryset(self, queryset: QuerySet, request, view=None) -> list:
        """A page of the queryset in its own ordering, which must end with a unique field (e.g. "pk") and
        name no nullable field (annotate a Coalesce instead). Raises RequestValidationError."""
        ordering = [str(name) for name in queryset.query.order_by]
        if not ordering or ordering[-1].lstrip("-") not in ("pk", "id"):
            raise ValueError(f"a paginated queryset must be ordered by a unique key last, not {ordering}")
        size, position, reverse = self._begin(request, ",".join(ordering))
        if len(ordering) != len(position or ordering):
            raise _invalid(self.cursor_query_param, "Invalid cursor for this ordering.", None, "cursor_invalid")
        fields = [(name.lstrip("-"), name.startswith("-") != reverse) for name in ordering]
        if reverse:
            queryset = queryset.reverse()
        if position is not None:
            queryset = queryset.filter(_after(fields, position))
        rows = list(queryset[: size + 1])
        keys = [tuple(_attr(row, name) for name, _ in fields) for row in rows]
        return self._finish(rows, keys, size, position, reverse)

    # --- any other list (Redis, the Store) -------------------------------------------------------
    def paginate_sequence(
        self, items: Sequence, request, *, key: Callable[[Any], tuple], descending: bool = False, ordering: str = ""
    ) -> list:
        """A page of `items` ordered by `key` (a unique tuple per item; `descending` for newest first),
        with the same cursors and envelope as a queryset. Raises RequestValidationError."""
        size, position, reverse = self._begin(request, f"seq:{ordering}:{'desc' if descending else 'asc'}")
        backwards = descending != reverse
        ordered = sorted(items, key=key, reverse=backwards)
        if position is not None:
            try:
                ordered = [item for item in ordered if (key(item) < position if backwards else key(item) > position)]
            except TypeError:  # a cursor of another shape (the key changed between releases)
                raise _invalid(
                    self.cursor_query_param, "Invalid cursor for this list.", None, "cursor_invalid"
                ) from None
        rows = ordered[: size + 1]
        return self._finish(rows, [key(item) for item in rows], size, position, reverse)

    # --- output ----------------------------------------------------------------------------------
    def get_next_link(self) -> str | None:
        return self._cursor_url(self.next_key, False) if self.has_next and self.next_key is not None else None

    def get_previous_link(self) -> str | None:
        if not self.has_previous or self.previous_key is None:
            return None
        return self._cursor_url(self.previous_key, True)

    def envelope(self, results: list, **extra: Any) -> dict[str, Any]:
        return {"results": results, "next": self.get_next_link(), "previous": self.get_previous_link(), **extra}

    def get_paginated_response(self, data) -> Response:
        return Response(self.envelope(data))


def _attr(row: Any, dotted: str) -> Any:
    for part in dotted.split("__"):
        row = getattr(row, part)
    return row


def _after(fields: list[tuple[str, bool]], position: tuple) -> Q:
    """Rows strictly after `position` in the order `fields` ((name, descending) pairs): the expansion of
    the row-value comparison (a, b, c) > (x, y, z) for mixed directions."""
    condition = Q(pk__in=[])
    equal = Q()
    for (name, descending), value in zip(fields, position, strict=True):
        condition |= equal & Q(**{f"{name}__{'lt' if descending else 'gt'}": value})
        equal &= Q(**{name: value})
    return condition


def paginate(request, source, *, serializer=None, key=None, descending: bool = False, ordering: str = "", **extra):
    """Page a queryset or a list (with `key`) and answer the envelope; `serializer` renders each row."""
    paginator = CursorPagination()
    if isinstance(source, QuerySet):
        rows = paginator.paginate_queryset(source, request)
    else:
        rows = paginator.paginate_sequence(source, request, key=key, descending=descending, ordering=ordering)
    data = serializer(rows, many=True).data if serializer is not None else rows
    return Response(paginator.envelope(data, **extra))


# --- input and OpenAPI ------------------------------------------------------------------------------
class PageQueryInput(serializers.Serializer):
    """The paging parameters. A list's own query serializer extends this one, so its `parse_query` admits
    them, refuses the retired ones with RETIRED_MESSAGE, and the OpenAPI document lists them."""

    retired_params = {name: RETIRED_MESSAGE.format(name=name) for name in RETIRED_PARAMS}

    page_size = serializers.IntegerField(
        min_value=1,
        max_value=settings.PAGE_SIZE_MAX,
        required=False,
        help_text=f"Items per page, 1 to {settings.PAGE_SIZE_MAX} (default {settings.PAGE_SIZE_DEFAULT}).",
    )
    cursor = serializers.CharField(
        max_length=MAX_CURSOR_LENGTH,
        required=False,
        help_text="Opaque: from a previous answer's `next` or `previous` URL, with the same filters and "
        "ordering. An altered cursor, or one of another list or ordering, is a 422.",
    )


@cache
def page_of(item: type[serializers.Serializer]) -> type[serializers.Serializer]:
    """The envelope serializer `{results: [item], next, previous}` of a list (one OpenAPI component each)."""
    component = f"{getattr(getattr(item, 'Meta', None), 'ref_name', None) or item.__name__}Page"
    return type(
        component,
        (PageEnvelope,),
        {"results": item(many=True), "Meta": type("Meta", (), {"ref_name": component})},
    )


class PageEnvelope(serializers.Serializer):
    next = serializers.URLField(allow_null=True, help_text="The next page's URL; null on the last page.")
    previous = serializers.URLField(allow_null=True, help_text="The previous page's URL; null on the first page.")
