"""JWTs: ordinary login tokens, and deal-scoped tokens that carry a `deal_id` claim; and stream tickets.

A deal-scoped token can seed the owner grant of an ownerless deal (deals.access), so only trusted
callers (superadmins, engines holding the internal token) mint one.

A stream ticket lets a browser's native EventSource (which cannot send an Authorization header) open the
event streams of one deal as one user: `?ticket=` on the SSE paths (deals.streams). It is signed, not
stored: `<user id>.<issued at, s>.<expires at, ms>.<HMAC-SHA256>` under SECRET_KEY with a salt naming the
deal, so a ticket of another deal fails its signature. Nothing in Redis (a purge or a Redis outage does not
touch tickets); what a stored ticket would add, revoking it, is done by checking the user's access to the
deal in PostgreSQL at every connect (and refusing tickets issued before the user's last password change).
It is not single-use: an EventSource reconnects with the same URL until the ticket expires.
"""

from __future__ import annotations

import logging
import time
import uuid
from dataclasses import dataclass
from datetime import UTC, datetime

import redis
from django.conf import settings
from django.contrib.auth import authenticate
from django.core import signing
from rest_framework_simplejwt.exceptions import TokenError
from rest_framework_simplejwt.settings import api_settings
from rest_framework_simplejwt.tokens import AccessToken, RefreshToken

from canvas_project import ratelimit
from canvas_project.errors import InvalidInputError
from deals.access import require_role, resolve_deal_access
from deals.models import Deal, DealRole, OrgMembership, User

logger = logging.getLogger(__name__)


def _require_user_claim(token) -> None:
    """Raises TokenError unless the token names its user by a UUID.

    Only the signing key's holder can mint a token without one, but such a token must be refused like
    any other bad token (401): the stateless canvas GET read the missing claim and answered 500, and a
    non-UUID id made the user lookup raise.
    """
    user_id = token.payload.get(api_settings.USER_ID_CLAIM)
    if not isinstance(user_id, str):
        raise TokenError("Token contained no recognizable user identification")
    try:
        uuid.UUID(user_id)
    except ValueError:
        raise TokenError("Token contained no recognizable user identification") from None


class UserAccessToken(AccessToken):
    """The access token every JWT path accepts (SIMPLE_JWT AUTH_TOKEN_CLASSES): simplejwt's checks, and
    a user claim holding a UUID."""

    def verify(self) -> None:
        super().verify()
        _require_user_claim(self)


class UserRefreshToken(RefreshToken):
    """The refresh token POST /api/auth/token/refresh accepts: as UserAccessToken, for refresh tokens."""

    def verify(self) -> None:
        super().verify()
        _require_user_claim(self)


def token_pair_for_user(*, user: User) -> dict[str, str]:
    refresh = RefreshToken.for_user(user)
    return {"access": str(refresh.access_token), "refresh": str(refresh)}


def issued_before_credentials_changed(*, changed_at, token) -> bool:
    """Whether the access token predates the user's last password change (`changed_at`, whole seconds).

    Both sides are whole seconds, so a token issued in the very second of the change still works (the new
    login right after it). A token without `iat` cannot show it is newer: refused once a change is recorded.
    """
    if changed_at is None:
        return False
    issued = token.get("iat") if token is not None else None
    if not isinstance(issued, int | float):
        return True
    return int(issued) < int(changed_at.timestamp())


def token_obtain(*, request, username: str, password: str, client_address: str) -> dict[str, str] | None:
    """Log in: a token pair for the credentials of an active user, None for anything else.

    Every attempt, right or wrong, first takes one request from the username's and the client address's
    login buckets (canvas_project.ratelimit), before the password is checked: once either is empty even
    the right password is refused until it refills. A successful login clears its username's bucket (only
    the password's holder can do that), never the address's. With the rate-limit Redis unreachable, login
    goes on unmetered (logged): being able to log in matters more during an outage than the limit, and
    the password hasher still makes each guess slow.

    Raises RateLimitedError (429 with Retry-After).
    """
    username_subject = ratelimit.username_subject(username)
    try:
        ratelimit.consume_together(
            [
                (ratelimit.login_username_bucket(), username_subject),
                (ratelimit.login_address_bucket(), ratelimit.address_subject(client_address)),
            ]
        )
    except (redis.exceptions.ConnectionError, redis.exceptions.TimeoutError) as exc:
        logger.warning("redis unavailable: login attempts are not rate-limited (%s)", exc.__class__.__name__)
    user = authenticate(request, username=username, password=password)
    if user is None or not user.is_active:
        return None
    try:
        ratelimit.forget(ratelimit.login_username_bucket(), username_subject)
    except (redis.exceptions.ConnectionError, redis.exceptions.TimeoutError):
        pass  # the bucket refills by itself
    return token_pair_for_user(user=user)


def deal_token_mint(*, user_id: uuid.UUID, deal_id: uuid.UUID) -> dict[str, str]:
    """A token pair for the user, scoped to the deal (access and refresh both carry `deal_id`).

    Raises InvalidInputError when the user is unknown or inactive, the deal unknown, or the user
    not a member of the deal's org.
    """
    user = User.objects.filter(pk=user_id, is_active=True).first()
    if user is None:
        raise InvalidInputError(
            "No active user has this id.", loc=["body", "user_id"], value=str(user_id), code="user_not_found"
        )
    deal = Deal.objects.filter(pk=deal_id).only("id", "org_id").first()
    if deal is None:
        raise InvalidInputError(
            "No deal has this id.", loc=["body", "deal_id"], value=str(deal_id), code="deal_not_found"
        )
    if not OrgMembership.objects.filter(org_id=deal.org_id, user=user).exists():
        raise InvalidInputError(
            "This user is not a member of the deal's org.",
            loc=["body", "user_id"],
            value=str(user_id),
            code="not_org_member",
        )
    refresh = RefreshToken.for_user(user)
    refresh["deal_id"] = str(deal.pk)
    return {"access": str(refresh.access_token), "refresh": str(refresh), "user_id": user.pk, "deal_id": deal.pk}


# --- stream tickets -------------------------------------------------------------------------------
STREAM_TICKET_SALT = "deals.stream-ticket"
# A real ticket is about 110 characters; anything far longer is refused before any HMAC is computed.
STREAM_TICKET_MAX_CHARS = 256


class StreamTicketInvalid(Exception):
    """A stream ticket that opens nothing: malformed, signed for another deal, or expired (401)."""


@dataclass(frozen=True)
class StreamTicket:
    ticket: str
    expires_at: datetime


@dataclass(frozen=True)
class StreamTicketClaims:
    user_id: uuid.UUID
    issued_at: int  # whole seconds, compared with the user's last password change like a JWT's `iat`
    expires_at: float = 0.0  # epoch seconds; an open stream ends (`event: expired`) then


def _ticket_signer(deal_id: uuid.UUID) -> signing.Signer:
    return signing.Signer(sep=".", salt=f"{STREAM_TICKET_SALT}:{deal_id}")


def stream_ticket_mint(*, user, token, deal_id: uuid.UUID) -> StreamTicket:
    """A ticket opening the deal's event streams as `user` for STREAM_TICKET_SECONDS.

    The caller needs what the streams need: the viewer role or higher on the deal, resolved as every
    endpoint does (a deal-scoped token reaches its own deal only). Raises DealNotFound, RoleTooLow.
    """
    access = resolve_deal_access(user=user, deal_id=deal_id, token=token)
    require_role(access, DealRole.VIEWER)
    now = time.time()
    expires_ms = int(now * 1000) + settings.STREAM_TICKET_SECONDS * 1000
    value = f"{uuid.UUID(str(user.pk))}.{int(now)}.{expires_ms}"
    return StreamTicket(
        ticket=_ticket_signer(access.deal.pk).sign(value),
        expires_at=datetime.fromtimestamp(expires_ms / 1000, tz=UTC),
    )


def stream_ticket_read(*, ticket: str, deal_id: object) -> StreamTicketClaims:
    """The user and issue time of a ticket presented on a stream of `deal_id`.

    Only the signature, the deal it was signed for and its expiry are checked here; whether the user may
    still read the deal is the caller's check (deals.streams, at every connect). Raises StreamTicketInvalid.
    """
    if not ticket or len(ticket) > STREAM_TICKET_MAX_CHARS:
        raise StreamTicketInvalid("This stream ticket is malformed.")
    try:
        deal_uuid = uuid.UUID(str(deal_id))
        value = _ticket_signer(deal_uuid).unsign(ticket)
    except ValueError:
        raise StreamTicketInvalid("This stream ticket is malformed.") from None
    except signing.BadSignature:
        raise StreamTicketInvalid(
            "This stream ticket is not valid for this deal (malformed, or issued for another deal)."
        ) from None
    try:
        user_id, issued, expires_ms = value.split(".")
        expires = int(expires_ms)
        claims = StreamTicketClaims(user_id=uuid.UUID(user_id), issued_at=int(issued), expires_at=expires / 1000)
    except ValueError:
        raise StreamTicketInvalid("This stream ticket is malformed.") from None
    if time.time() * 1000 >= expires:
        raise StreamTicketInvalid("This stream ticket has expired; ask POST /api/auth/stream-ticket for a new one.")
    return claims
