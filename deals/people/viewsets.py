"""People endpoints: the caller's account (`/api/me`), their password and invitations, an org's invitations,
and accepting an invitation with a new account. Thin: validate, call one service or selector, serialize.

A deal-scoped token (one that carries a `deal_id` claim, minted for an engine) reads `/api/me` but may not
change the password or answer invitations (403): it stands for one deal, not the whole account.
"""

from __future__ import annotations

from drf_spectacular.utils import OpenApiParameter, OpenApiTypes, extend_schema
from rest_framework import status, viewsets
from rest_framework.decorators import action
from rest_framework.exceptions import PermissionDenied
from rest_framework.permissions import AllowAny
from rest_framework.response import Response

from canvas_project.api.schema import deleted_response, error_responses
from canvas_project.api.validation import parse_body, parse_path_uuid
from deals import selectors as deal_selectors
from deals.access import token_deal_claim
from deals.authentication import PERSON_ONLY
from deals.models import ApiKey
from deals.people import selectors, services
from deals.people.errors import DealScopedTokenRefused
from deals.people.serializers import (
    InvitationAcceptInput,
    InvitationAcceptOutput,
    InvitationCreateInput,
    InvitationOutput,
    MeOrgOutput,
    MeOutput,
    MyInvitationOutput,
    PasswordChangeInput,
)
from deals.serializers import TokenPairOutput
from deals.viewsets import ORG_ID_PARAM, USER_AUTHENTICATION, USER_PERMISSIONS

INVITATION_ID_PARAM = OpenApiParameter("invitation_id", OpenApiTypes.UUID, OpenApiParameter.PATH)
RETRY_AFTER = OpenApiParameter(
    "Retry-After", int, OpenApiParameter.HEADER, response=[429], description="Seconds to wait before the next attempt."
)


def _refuse_deal_scoped_tokens(request) -> None:
    """A person's own acts (a new password, joining or refusing an org) take the person's full JWT: a
    deal-scoped token is refused, and so is an API key, which acts for an integration (403)."""
    if isinstance(request.auth, ApiKey):
        raise PermissionDenied(PERSON_ONLY, code="api_key_refused")
    if token_deal_claim(request.auth) is not None:
        raise DealScopedTokenRefused()


class MeViewSet(viewsets.ViewSet):
    """/api/me and /api/me/password: the caller's own account."""

    authentication_classes = USER_AUTHENTICATION
    permission_classes = USER_PERMISSIONS

    @extend_schema(
        operation_id="me_retrieve",
        summary="Who am I: the caller's account and orgs",
        responses={200: MeOutput, **error_responses(401)},
        tags=["people"],
    )
    def list(self, request):
        return Response(MeOutput(selectors.me(user=request.user)).data)

    @extend_schema(
        operation_id="me_password_change",
        summary="Change the caller's password",
        description="Needs the current password. The new one is checked by the server's password validators "
        "(422 with each message at `body.new_password`); a wrong current password is 422 at "
        "`body.current_password` (both are checked every time, and reported together). Attempts are taken from "
        "the same per-username bucket as logins (429 with Retry-After past it). A new password ends every "
        "session the user had, as a change in the admin does: their refresh tokens are revoked and access "
        "tokens issued before it are refused (401). The answer is a fresh token pair: keep it, drop the old "
        "one. A deal-scoped token cannot change the password (403).",
        request=PasswordChangeInput,
        responses={200: TokenPairOutput, **error_responses(401, 403, 422, 429)},
        parameters=[RETRY_AFTER],
        tags=["people"],
    )
    @action(detail=False, methods=["post"], url_path="password", url_name="password")
    def password(self, request):
        _refuse_deal_scoped_tokens(request)
        body = parse_body(PasswordChangeInput, request)
        pair = services.password_change(
            user=request.user, current_password=body["current_password"], new_password=body["new_password"]
        )
        return Response(TokenPairOutput(pair).data)


class MyInvitationViewSet(viewsets.ViewSet):
    """/api/me/invitations: the live invitations to the caller's email address, to accept or decline."""

    authentication_classes = USER_AUTHENTICATION
    permission_classes = USER_PERMISSIONS
    lookup_field = "invitation_id"
    lookup_value_regex = "[^/]+"

    @extend_schema(
        operation_id="me_invitations_list",
        summary="Invitations to the caller's email address",
        description="Pending, unexpired invitations sent to the caller's email address (any case), newest first.",
        responses={200: MyInvitationOutput(many=True), **error_responses(401)},
        tags=["people"],
    )
    def list(self, request):
        return Response(MyInvitationOutput(selectors.invitations_for_user(user=request.user), many=True).data)

    @extend_schema(
        operation_id="me_invitation_accept",
        summary="Accept an invitation: join its org",
        description="The caller joins the org with the invitation's role and gets the org with their role in "
        "it (a member already keeps their role). An invitation to another address, answered, revoked or "
        "expired is 404.",
        parameters=[INVITATION_ID_PARAM],
        request=None,
        responses={200: MeOrgOutput, **error_responses(401, 403, 404, 422)},
        tags=["people"],
    )
    @action(detail=True, methods=["post"], url_path="accept", url_name="accept")
    def accept(self, request, invitation_id):
        _refuse_deal_scoped_tokens(request)
        membership = services.invitation_accept(
            user=request.user, invitation_id=parse_path_uuid(invitation_id, "invitation_id")
        )
        org = {"id": membership.org_id, "name": membership.org.name, "my_role": membership.role}
        return Response(MeOrgOutput(org).data)

    @extend_schema(
        operation_id="me_invitation_decline",
        summary="Decline an invitation",
        description="The invitation is answered and leaves the caller's list; an invitation to another address, "
        "answered, revoked or expired is 404.",
        parameters=[INVITATION_ID_PARAM],
        request=None,
        responses={**deleted_response("Declined."), **error_responses(401, 403, 404, 422)},
        tags=["people"],
    )
    @action(detail=True, methods=["post"], url_path="decline", url_name="decline")
    def decline(self, request, invitation_id):
        _refuse_deal_scoped_tokens(request)
        services.invitation_decline(user=request.user, invitation_id=parse_path_uuid(invitation_id, "invitation_id"))
        return Response(status=status.HTTP_204_NO_CONTENT)


class OrgInvitationViewSet(viewsets.ViewSet):
    """/api/orgs/{org_id}/invitations: an org's open invitations (org admins). Non-members get 404."""

    authentication_classes = USER_AUTHENTICATION
    permission_classes = USER_PERMISSIONS
    lookup_field = "invitation_id"
    lookup_value_regex = "[^/]+"

    @extend_schema(
        operation_id="org_invitations_list",
        summary="The org's open invitations (org admin)",
        description="Invitations nobody has answered or revoked, newest first; those past their expiry read "
        "`expired`. Never the token.",
        parameters=[ORG_ID_PARAM],
        responses={200: InvitationOutput(many=True), **error_responses(401, 403, 404, 422)},
        tags=["orgs"],
    )
    def list(self, request, org_id):
        membership = deal_selectors.org_membership_of(user=request.user, org_id=parse_path_uuid(org_id, "org_id"))
        invitations = selectors.org_open_invitations(actor_membership=membership)
        return Response(InvitationOutput(invitations, many=True).data)

    @extend_schema(
        operation_id="org_invitations_create",
        summary="Invite someone by email (org admin)",
        description="Emails the address an invitation with a one-time code (valid INVITATION_TTL_SECONDS, "
        "7 days by default). Whether or not the address has an account, the answer and the email are the same: "
        "a person with an account accepts under /api/me/invitations, a person without one creates it with the "
        "code (POST /api/invitations/accept). 409 when a member of this org has the address, or a live "
        "invitation to it is pending (revoke it to send another); 503 when the email cannot be sent (nothing "
        "is kept).",
        parameters=[ORG_ID_PARAM],
        request=InvitationCreateInput,
        responses={201: InvitationOutput, **error_responses(401, 403, 404, 409, 422, 503)},
        tags=["orgs"],
    )
    def create(self, request, org_id):
        membership = deal_selectors.org_membership_of(user=request.user, org_id=parse_path_uuid(org_id, "org_id"))
        body = parse_body(InvitationCreateInput, request)
        invitation = services.invitation_create(actor_membership=membership, email=body["email"], role=body["role"])
        return Response(InvitationOutput(invitation).data, status=status.HTTP_201_CREATED)

    @extend_schema(
        operation_id="org_invitations_revoke",
        summary="Revoke a pending invitation (org admin)",
        description="Its code stops working at once.",
        parameters=[ORG_ID_PARAM, INVITATION_ID_PARAM],
        responses={**deleted_response("Revoked."), **error_responses(401, 403, 404, 422)},
        tags=["orgs"],
    )
    def destroy(self, request, org_id, invitation_id):
        membership = deal_selectors.org_membership_of(user=request.user, org_id=parse_path_uuid(org_id, "org_id"))
        services.invitation_revoke(
            actor_membership=membership, invitation_id=parse_path_uuid(invitation_id, "invitation_id")
        )
        return Response(status=status.HTTP_204_NO_CONTENT)


class InvitationAcceptViewSet(viewsets.ViewSet):
    """POST /api/invitations/accept: a person without an account accepts with the email's code (public; any
    Authorization header is ignored)."""

    authentication_classes: list = []
    permission_classes = [AllowAny]

    @extend_schema(
        operation_id="invitations_accept_with_token",
        summary="Accept an invitation with its code, creating an account",
        description="Creates the account (with the invitation's email address), makes it a member of the org "
        "with the invitation's role, and answers it with a token pair. The code works once. All or nothing: a "
        "taken username, a password the validators refuse (422, each at its field) or an address that already "
        "has an account (409: accept under /api/me/invitations instead) create nothing and leave the code "
        "usable. An unknown, used, revoked or expired code is 422 at `body.token`.",
        request=InvitationAcceptInput,
        responses={201: InvitationAcceptOutput, **error_responses(409, 422)},
        tags=["people"],
        auth=[],
    )
    @action(detail=False, methods=["post"], url_path="accept", url_name="accept")
    def accept(self, request):
        body = parse_body(InvitationAcceptInput, request)
        user, pair = services.invitation_accept_with_token(
            token=body["token"], username=body["username"], password=body["password"]
        )
        answer = {**pair, "user": selectors.me(user=user)}
        return Response(InvitationAcceptOutput(answer).data, status=status.HTTP_201_CREATED)
