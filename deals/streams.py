"""Deal-scoped server-sent event streams: the caller authenticated by bearer JWT or API key, or by a stream ticket
(`?ticket=`, deals.tokens) for a browser's native EventSource, and scoped to the deal with the same resolver
and role rules as every other endpoint (deals.access), before the stream starts.

With a ticket, the ticket is the credential: anything that makes it open nothing answers 401 (malformed,
signed for another deal, expired, its user gone, deactivated, re-passworded since, or without access to the
deal any more), and so does a request that sends both a ticket and an Authorization header. The access is
checked in PostgreSQL at every connect, so an EventSource's reconnects stop working the moment a grant goes.

An open stream follows its access too (canvas_project.sse.guard): every worker re-checks all its open streams
in one query (`streams_revoked`, below) every SSE_REAUTH_SECONDS and ends those whose access is gone with
`event: revoked`; a stream ends with `event: expired` when its JWT, ticket or API key expires.
"""

from __future__ import annotations

import uuid
from collections.abc import Callable

from django.db import connection
from django.http import HttpRequest, JsonResponse
from rest_framework.exceptions import APIException, PermissionDenied

from canvas_project.api.errors import domain_error_parts
from canvas_project.errors import DomainError
from canvas_project.sse import guard
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
from deals.models import ApiKey, User, role_rank
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


def ticket_access(ticket: str, deal_id: str, minimum: str) -> tuple[User, DealAccessContext, guard.Grant]:
    """The ticket's user, its access to the deal as of now, and the stream's grant. Raises SseError (401)."""
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
    grant = guard.Grant(
        user_id=str(user.pk),
        deal_id=str(access.deal.pk),
        minimum=minimum,
        issued_at=claims.issued_at,
        expires_at=claims.expires_at,
    )
    return user, access, grant


def stream_grant(*, user, token, access: DealAccessContext, minimum: str) -> guard.Grant:
    """What an open stream re-checks: for a JWT its `iat` and `exp`, for an API key the key and its expiry."""
    if isinstance(token, ApiKey):
        expires = token.expires_at.timestamp() if token.expires_at is not None else None
        return guard.Grant(
            user_id=str(user.pk),
            deal_id=str(access.deal.pk),
            minimum=minimum,
            api_key_id=str(token.pk),
            expires_at=expires,
        )
    issued = token.get("iat") if token is not None else None
    expires = token.get("exp") if token is not None else None
    return guard.Grant(
        user_id=str(user.pk),
        deal_id=str(access.deal.pk),
        minimum=minimum,
        issued_at=int(issued) if isinstance(issued, int | float) else 0,
        expires_at=float(expires) if isinstance(expires, int | float) else None,
    )


def resolve_stream_access(
    request: HttpRequest, deal_id: str, minimum: str
) -> tuple[object, DealAccessContext, guard.Grant]:
    """The caller, its access to the deal and the stream's grant (what the open stream keeps re-checking).
    Raises SseError (401, 403, 404, or 503 when PostgreSQL is down)."""
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
    return user, access, stream_grant(user=user, token=token, access=access, minimum=minimum)


# Every open stream's access as of now, in one statement: the role each (user, deal) still has (NULL when the
# deal is gone, the user is no active member of its org, its password changed after the credential was issued,
# or its API key was revoked or expired), by the rules of deals.access.
_REVOKED_SQL = """
SELECT s.i,
  CASE
    WHEN d.id IS NULL THEN NULL
    WHEN NOT EXISTS (
      SELECT 1 FROM deals_orgmembership m JOIN deals_user u ON u.id = m.user_id
      WHERE m.org_id = d.org_id AND m.user_id = s.user_id AND u.is_active
        AND (s.issued IS NULL OR u.credentials_changed_at IS NULL OR u.credentials_changed_at <= to_timestamp(s.issued))
    ) THEN NULL
    WHEN s.key_id IS NOT NULL AND NOT EXISTS (
      SELECT 1 FROM deals_apikey k
      WHERE k.id = s.key_id AND k.user_id = s.user_id AND k.revoked_at IS NULL
        AND (k.expires_at IS NULL OR k.expires_at > now())
    ) THEN NULL
    ELSE COALESCE(
      (SELECT a.role FROM deals_dealaccess a WHERE a.deal_id = d.id AND a.user_id = s.user_id),
      CASE WHEN d.visibility = 'org' THEN 'viewer' END
    )
  END
FROM unnest(%(users)s::uuid[], %(deals)s::uuid[], %(issued)s::bigint[], %(keys)s::uuid[])
  WITH ORDINALITY AS s(user_id, deal_id, issued, key_id, i)
LEFT JOIN deals_deal d ON d.id = s.deal_id
"""


def streams_revoked(grants: list[guard.Grant]) -> list[int]:
    """The indices of `grants` whose access is gone (below their minimum role): one query for all of them,
    however many streams are open. Raises the database's errors."""
    distinct = sorted({(g.user_id, g.deal_id, g.issued_at, g.api_key_id) for g in grants}, key=str)
    if not distinct:
        return []
    with connection.cursor() as cursor:
        cursor.execute(
            _REVOKED_SQL,
            {
                "users": [uuid.UUID(u) for u, _, _, _ in distinct],
                "deals": [uuid.UUID(d) for _, d, _, _ in distinct],
                "issued": [i for _, _, i, _ in distinct],
                "keys": [uuid.UUID(k) if k else None for _, _, _, k in distinct],
            },
        )
        roles = {distinct[index - 1]: role for index, role in cursor.fetchall()}
    return [
        index
        for index, g in enumerate(grants)
        if role_rank(roles.get((g.user_id, g.deal_id, g.issued_at, g.api_key_id))) < role_rank(g.minimum)
    ]


guard.set_access_checker(streams_revoked)


async def open_deal_stream(
    request: HttpRequest, deal_id: str, *, minimum: str, key_for: Callable[[DealAccessContext], str]
):
    """Authenticate, scope to the deal, validate the resume id, and stream `key_for(access)`."""
    if request.method != "GET":
        return method_not_allowed(request, "GET")
    try:
        user, access, grant = await released(resolve_stream_access)(request, deal_id, minimum)
        after = last_event_id(request)
        key = key_for(access)
        return slotted_response(user, lambda lease: event_stream(key, after, lease=lease), grant=grant)
    except SseError as exc:
        return exc.response
