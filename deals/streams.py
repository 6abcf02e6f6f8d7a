"""Deal-scoped server-sent event streams: the caller authenticated by bearer JWT or API key, or by a stream ticket
(`?ticket=`, deals.tokens) for a browser's native EventSource, and scoped to the deal with the same resolver
and role rules as every other endpoint (deals.access), before the stream starts.

With a ticket, the ticket is the credential: anything that makes it open nothing answers 401 (malformed,
signed for another deal, expired, its user gone, deactivated, re-passworded since, or without access to the
deal any more), and so does a request that sends both a ticket and an Authorization header. The access is
checked in PostgreSQL at every connect, so an EventSource's reconnects stop working the moment a grant goes.
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
from deals.errors import DealNotFound, RoleTooLow
from deals.models import User
from deals.tokens import StreamTicketInvalid, stream_ticket_read

TICKET_PARAM = "ticket"


def _unauthorized(detail: str) -> SseError:
    return SseError(JsonResponse({"detail": detail}, status=401, headers={"WWW-Authenticate": 'Bearer realm="api"'}))


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


def ticket_access(ticket: str, deal_id: str, minimum: str) -> tuple[User, DealAccessContext]:
    """The ticket's user and its access to the deal, as of now. Raises SseError (401)."""
    try:
        claims = stream_ticket_read(ticket=ticket, deal_id=deal_id)
    except StreamTicketInvalid as exc:
        raise _unauthorized(str(exc)) from None
    user = User.objects.filter(pk=claims.user_id).first()
    if user is None:
        raise _unauthorized("This stream ticket's user no longer exists.")
    try:
        # the issue time stands for a JWT's `iat`: a ticket older than the user's last password change opens nothing
        access = resolve_deal_access(user=user, deal_id=deal_id, token={"iat": claims.issued_at})
        require_role(access, minimum)
    except (DealNotFound, RoleTooLow):
        raise _unauthorized(
            "This stream ticket no longer opens this deal's streams: its user's access was revoked "
            "(or the account deactivated, or its password changed since)."
        ) from None
    return user, access


def resolve_stream_access(request: HttpRequest, deal_id: str, minimum: str) -> tuple[object, DealAccessContext]:
    """The caller and its access to the deal. Raises SseError (401, 403, 404, or 503 when PostgreSQL is down)."""
    try:
        if TICKET_PARAM in request.GET:
            if request.headers.get("Authorization") is not None:
                raise _unauthorized("Send either an Authorization header or ?ticket=, not both.")
            return ticket_access(request.GET[TICKET_PARAM], deal_id, minimum)
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
