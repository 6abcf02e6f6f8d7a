"""Writes of people: the caller's password, and invitations to orgs (create, revoke, accept, decline).

Invitations are how a person joins an org they share nothing with yet: an org admin invites an email address,
the person accepts (with their account, or by creating one with the email's one-time token). Creating an
invitation does the same work whether an account with that address exists or not (the same email goes out
either way), so the answer and its timing say nothing about accounts outside the admin's org.
"""

from __future__ import annotations

import hashlib
import logging
import secrets
import smtplib
import uuid
from datetime import timedelta

import redis
from django.conf import settings
from django.contrib.auth.hashers import make_password
from django.contrib.auth.password_validation import validate_password
from django.core.exceptions import ValidationError
from django.core.mail import send_mail
from django.db import IntegrityError, transaction
from django.utils import timezone

from canvas_project import ratelimit
from canvas_project.errors import DependencyUnavailableError, InvalidInputError, InvalidInputsError
from deals.errors import AlreadyExists, RoleTooLow
from deals.models import Invitation, InvitationStatus, OrgMembership, User
from deals.people.errors import AccountExists, AlreadyInvited, AlreadyMember, InvitationNotFound
from deals.selectors import org_admin_require
from deals.services import user_create
from deals.tokens import token_pair_for_user

logger = logging.getLogger(__name__)

# the 403 of the invitation writes (deals.selectors.org_admin_require is the rule)
INVITATIONS_ADMIN_ONLY = "Only org admins can manage invitations."


# --- the password -------------------------------------------------------------------------------------
def password_problems(password: str, *, user: User, loc: list[str | int]) -> list[InvalidInputError]:
    """What Django's password validators (AUTH_PASSWORD_VALIDATORS) say against the password, one error each."""
    try:
        validate_password(password, user=user)
    except ValidationError as exc:
        return [
            InvalidInputError(message, loc=loc, value=None, code=error.code or "password_invalid")
            for error in exc.error_list
            for message in error.messages
        ]
    return []


def _spend_password_attempt(user: User) -> None:
    """Take one attempt from the user's login bucket: guessing the current password through this endpoint (with
    a stolen access token) is as slow as guessing it at login. Fails open, as login does, when Redis is down.

    Raises RateLimitedError."""
    try:
        ratelimit.consume_together([(ratelimit.login_username_bucket(), ratelimit.username_subject(user.username))])
    except (redis.exceptions.ConnectionError, redis.exceptions.TimeoutError) as exc:
        logger.warning("redis unavailable: password changes are not rate-limited (%s)", exc.__class__.__name__)


def _current_password_matches(user: User, password: str) -> bool:
    """check_password, at the hasher's cost also when the account has no usable password (which Django answers
    at once), so the time taken says nothing about the account."""
    if not user.has_usable_password():
        make_password(password)
        return False
    return user.check_password(password)


@transaction.atomic
def password_change(*, user: User, current_password: str, new_password: str) -> dict[str, str]:
    """Replace the user's password and answer a fresh token pair.

    Both rules are checked every time (the current password at the hasher's full cost, the new one against
    the validators) and reported together. The new password ends every earlier session of the user, as the
    admin's form does (deals.models.User.save: refresh tokens blacklisted, older access tokens refused); the
    pair answered is issued after it.

    Raises RateLimitedError (429), InvalidInputsError (422: a wrong current password at
    body.current_password, the validators' messages at body.new_password).
    """
    _spend_password_attempt(user)
    errors = []
    if not _current_password_matches(user, current_password):
        errors.append(
            InvalidInputError(
                "The current password is wrong.", loc=["body", "current_password"], value=None, code="wrong_password"
            )
        )
    errors += password_problems(new_password, user=user, loc=["body", "new_password"])
    if errors:
        raise InvalidInputsError(errors)
    user.set_password(new_password)
    user.save()
    try:
        ratelimit.forget(ratelimit.login_username_bucket(), ratelimit.username_subject(user.username))
    except (redis.exceptions.ConnectionError, redis.exceptions.TimeoutError):
        pass  # the bucket refills by itself
    return token_pair_for_user(user=user)


# --- invitations ----------------------------------------------------------------------------------------
def invitation_token_hash(token: str) -> str:
    return hashlib.sha256(token.encode("utf-8", "surrogatepass")).hexdigest()


def _invitation_email(*, invitation: Invitation, token: str, inviter: User) -> tuple[str, str]:
    org, expires = invitation.org.name, invitation.expires_at.strftime("%Y-%m-%d %H:%M UTC")
    link = settings.INVITATION_ACCEPT_URL.replace("{token}", token) if settings.INVITATION_ACCEPT_URL else ""
    subject = f"{inviter.display_name} invited you to {org} on Deal Canvas"
    lines = [
        f"{inviter.display_name} invited you to join {org} on Deal Canvas as {invitation.get_role_display().lower()}.",
        "",
        "If you already have a Deal Canvas account with this email address, log in and accept the invitation "
        "among your invitations (GET /api/me/invitations).",
        "",
        f"If you have no account yet, create one with this one-time code (valid until {expires}):",
        "",
        f"    {token}",
        "",
        *([f"Open {link}", ""] if link else []),
        'or call POST /api/invitations/accept with {"token": "<the code>", "username": "...", "password": "..."}.',
        "",
        "If you did not expect this invitation, ignore this email.",
    ]
    return subject, "\n".join(lines)


def _normalized(email: str) -> str:
    return email.strip().lower()


@transaction.atomic
def invitation_create(*, actor_membership: OrgMembership, email: str, role: str) -> Invitation:
    """Invite an email address to the actor's org and send it the invitation (with its one-time token).

    The email is sent inside the transaction: when it cannot be sent, nothing is kept. An earlier pending
    invitation of the address that has expired is replaced.

    Raises RoleTooLow (not an org admin), AlreadyMember (a member of this org has the address), AlreadyInvited
    (a live pending invitation exists), DependencyUnavailableError (the mail server refused or is down: 503).
    """
    org_admin_require(membership=actor_membership, refusal=RoleTooLow(INVITATIONS_ADMIN_ONLY))
    org, email = actor_membership.org, _normalized(email)
    if OrgMembership.objects.filter(org=org, user__email__iexact=email, user__is_active=True).exists():
        raise AlreadyMember()
    earlier = Invitation.objects.select_for_update().filter(org=org, email=email, status=InvitationStatus.PENDING)
    for invitation in earlier:
        if not invitation.is_expired:
            raise AlreadyInvited()
        invitation.status = InvitationStatus.EXPIRED
        invitation.save(update_fields=["status"])
    token = secrets.token_urlsafe(32)
    try:
        with transaction.atomic():
            invitation = Invitation.objects.create(
                org=org,
                email=email,
                role=role,
                token_hash=invitation_token_hash(token),
                invited_by=actor_membership.user,
                expires_at=timezone.now() + timedelta(seconds=settings.INVITATION_TTL_SECONDS),
            )
    except IntegrityError:  # another admin invited the address at the same moment
        raise AlreadyInvited() from None
    subject, body = _invitation_email(invitation=invitation, token=token, inviter=actor_membership.user)
    try:
        send_mail(subject, body, None, [email], fail_silently=False)
    except (OSError, smtplib.SMTPException) as exc:
        logger.warning("invitation email to org %s not sent: %s", org.pk, exc.__class__.__name__)
        raise DependencyUnavailableError(
            "the mail server", "The invitation email could not be sent, so no invitation was made; try again shortly."
        ) from exc
    return invitation


@transaction.atomic
def invitation_revoke(*, actor_membership: OrgMembership, invitation_id: uuid.UUID) -> None:
    """Revoke a pending invitation of the actor's org: its token stops working at once.

    Raises RoleTooLow, InvitationNotFound (no pending invitation of this org has the id)."""
    org_admin_require(membership=actor_membership, refusal=RoleTooLow(INVITATIONS_ADMIN_ONLY))
    invitation = (
        Invitation.objects.select_for_update()
        .filter(pk=invitation_id, org=actor_membership.org_id, status=InvitationStatus.PENDING)
        .first()
    )
    if invitation is None:
        raise InvitationNotFound("No pending invitation of this org has this id.")
    invitation.status, invitation.responded_at = InvitationStatus.REVOKED, timezone.now()
    invitation.save(update_fields=["status", "responded_at"])


def _users_live_invitation(user: User, invitation_id: uuid.UUID) -> Invitation:
    """The live invitation to the user's email address, locked. Raises InvitationNotFound for anything else
    (another address's invitation reads as unknown)."""
    invitation = None
    if user.email:
        invitation = (
            Invitation.objects.select_for_update(of=("self",))
            .select_related("org")
            .filter(pk=invitation_id, email__iexact=user.email, status=InvitationStatus.PENDING)
            .first()
        )
    if invitation is None or invitation.is_expired:
        raise InvitationNotFound()
    return invitation


def _answer(invitation: Invitation, *, status: str, user: User) -> None:
    invitation.status, invitation.responded_by, invitation.responded_at = status, user, timezone.now()
    invitation.save(update_fields=["status", "responded_by", "responded_at"])


@transaction.atomic
def invitation_accept(*, user: User, invitation_id: uuid.UUID) -> OrgMembership:
    """Accept an invitation to the user's email address: they join the org with the invitation's role.

    Someone who is already a member keeps their membership as it is (the invitation is answered all the same).
    Raises InvitationNotFound."""
    invitation = _users_live_invitation(user, invitation_id)
    membership, _created = OrgMembership.objects.get_or_create(
        org=invitation.org, user=user, defaults={"role": invitation.role}
    )
    _answer(invitation, status=InvitationStatus.ACCEPTED, user=user)
    return membership


@transaction.atomic
def invitation_decline(*, user: User, invitation_id: uuid.UUID) -> None:
    """Decline an invitation to the user's email address. Raises InvitationNotFound."""
    _answer(_users_live_invitation(user, invitation_id), status=InvitationStatus.DECLINED, user=user)


@transaction.atomic
def invitation_accept_with_token(*, token: str, username: str, password: str) -> tuple[User, dict[str, str]]:
    """Create an account from an invitation's one-time token, with the invitation's email address, and make
    it a member of the org; answers the user and a token pair. All or nothing: on any refusal no account,
    membership or answer is written, and the token stays usable.

    Raises InvalidInputError (422: the token unknown, used, revoked or expired), AccountExists (409: an account
    with the invitation's address exists; it accepts under /api/me/invitations), InvalidInputsError (422: the
    username taken, the password refused by the validators).
    """
    invitation = (
        Invitation.objects.select_for_update(of=("self",))
        .select_related("org")
        .filter(token_hash=invitation_token_hash(token))
        .first()
    )
    if invitation is None or invitation.status != InvitationStatus.PENDING or invitation.is_expired:
        raise InvalidInputError(
            "This invitation code is unknown, already used, revoked or expired; ask the org's admin for a new one.",
            loc=["body", "token"],
            value=None,
            code="invitation_invalid",
        )
    if User.objects.filter(email__iexact=invitation.email, is_active=True).exists():
        raise AccountExists()
    taken = InvalidInputError(
        "A user with this username already exists.", loc=["body", "username"], value=username, code="username_taken"
    )
    errors = [taken] if User.objects.filter(username=username).exists() else []
    errors += password_problems(
        password, user=User(username=username, email=invitation.email), loc=["body", "password"]
    )
    if errors:
        raise InvalidInputsError(errors)
    try:
        with transaction.atomic():
            user = user_create(username=username, password=password, email=invitation.email)
    except (IntegrityError, AlreadyExists):  # the username was taken between the check and the insert
        raise InvalidInputsError([taken]) from None
    OrgMembership.objects.create(org=invitation.org, user=user, role=invitation.role)
    _answer(invitation, status=InvitationStatus.ACCEPTED, user=user)
    return user, token_pair_for_user(user=user)


def invitations_revoke(*, invitation_ids: list[uuid.UUID]) -> int:
    """Revoke the pending ones among the invitations (an operator's action in the admin); returns how many."""
    return Invitation.objects.filter(pk__in=invitation_ids, status=InvitationStatus.PENDING).update(
        status=InvitationStatus.REVOKED, responded_at=timezone.now()
    )
