"""Deal-scoped server-sent event streams: the caller authenticated by bearer JWT or API key and scoped to the
deal with the same resolver and role rules as every other endpoint (deals.access), before the stream starts.
"""

from __future__ import annotations

from collections.abc import Callable

from django.http import HttpRequest, JsonResponse
from rest_framework.exceptions import APIException, PermissionDenied

from canvas_project.api.errors import domain_error_parts
from canvas_project.errors import DomainError
from canvas_project.sse.responses import (
    DATABASE_DOWN,
    SseError,
    database_unavailable,
    event_stream,
    last_event_id,
    method_not_allowed,
    released,
    slotted_response,
)
from deals.access import DealAccessContext, require_role, resolve_deal_access
from deals.authentication import BearerJWTAuthentication


def authenticate(request: HttpRequest):
    """(user, token) of the request's bearer JWT or API key (the token is then the ApiKey). Raises SseError
    (401; 403 for an API key of scope read on a POST)."""
    authenticator = BearerJWTAuthentication()
    try:
        result = authenticator.authenticate(request)
    except PermissionDenied as exc:
        raise SseError(JsonResponse({"detail": str(exc.detail)}, status=403)) from None
    except APIException as exc:
        detail = exc.detail.get("detail") if isinstance(exc.detail, dict) else exc.detail
        raise SseError(
            JsonResponse({"detail": str(detail)}, status=401, headers={"WWW-Authenticate": 'Bearer realm="api"'})
        ) from None
    if result is None:
        raise SseError(
            JsonResponse(
                {"detail": "Authentication credentials were not provided."},
                status=401,
                headers={"WWW-Authenticate": 'Bearer realm="api"'},
            )
        )
    return result


def resolve_stream_access(request: HttpRequest, deal_id: str, minimum: str) -> tuple[object, DealAccessContext]:
    """The caller and its access to the deal. Raises SseError (401, 403, 404, or 503 when PostgreSQL is down)."""
    try:
        user, token = authenticate(request)
        access = resolve_deal_access(user=user, deal_id=deal_id, token=token)
        require_role(access, minimum)
    except DomainError as exc:
        code, body, headers = domain_error_parts(exc)
        raise SseError(JsonResponse(body, status=code, headers=headers)) from None
    except DATABASE_DOWN:
        raise database_unavailable() from None
    return user, access


async def open_deal_stream(
    request: HttpRequest, deal_id: str, *, minimum: str, key_for: Callable[[DealAccessContext], str]
):
    """Authenticate, scope to the deal, validate the resume id, and stream `key_for(access)`."""
    if request.method != "GET":
        return method_not_allowed(request, "GET")
    try:
        user, access = await released(resolve_stream_access)(request, deal_id, minimum)
        after = last_event_id(request)
        return slotted_response(user, event_stream(key_for(access), after))
    except SseError as exc:
        return exc.response
