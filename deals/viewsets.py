"""The one deal-scoped base viewset every endpoint under a deal is built on, and the router they share.

`DealScopedViewSet` resolves the deal of the URL (`deal_id`) and the caller's role on it once per
request (deals.access: one SQL query) and checks the minimum role its action declares:

    class CommentViewSet(DealScopedViewSet):
        minimum_roles = {"list": DealRole.VIEWER, "create": DealRole.COMMENTER, "resolve": DealRole.COMMENTER}

Every action must declare one (a missing entry fails at import), and subclasses cannot change how the
deal is resolved or the role checked: overriding the scoping methods raises TypeError at class
creation. An unknown deal, a malformed id, a deal of another org or one the caller cannot see is 404;
a role below the minimum is 403. There is no bypass: an endpoint that must reach a deal without a
role is not a DealScopedViewSet (grep `dangerously_` for any exception, there is none today).

Below the base, the deals app's own endpoints (routed by deals.urls): tokens, orgs and their members,
deals, the dashboard, the blank canvas and the sharing of a deal. Thin: validate, call one service or
selector, serialize.
"""

from __future__ import annotations

from datetime import UTC, datetime
from typing import ClassVar

from django.conf import settings
from django.core.exceptions import ObjectDoesNotExist
from drf_spectacular.utils import OpenApiParameter, OpenApiResponse, OpenApiTypes, extend_schema
from rest_framework import status, viewsets
from rest_framework.decorators import action
from rest_framework.exceptions import AuthenticationFailed
from rest_framework.permissions import AllowAny, BasePermission, IsAuthenticated
from rest_framework.response import Response
from rest_framework.routers import SimpleRouter
from rest_framework_simplejwt.exceptions import TokenError
from rest_framework_simplejwt.token_blacklist.models import BlacklistedToken
from rest_framework_simplejwt.tokens import UntypedToken

from canvas_project.api.client_address import client_address
from canvas_project.api.conditional import IF_MATCH_VERSION, if_match_version_of
from canvas_project.api.engine_auth import InternalEngineTokenAuthentication
from canvas_project.api.pagination import PageQueryInput, page_of, paginate
from canvas_project.api.schema import ErrorDetailSerializer, deleted_response, error_responses
from canvas_project.api.validation import parse_body, parse_path_uuid, parse_query
from canvas_project.errors import PreconditionFailedError, StaleError
from deals import selectors, services
from deals.access import DealAccessContext, require_role, resolve_deal_access, token_deal_claim
from deals.authentication import BearerJWTAuthentication, PersonBearerAuthentication
from deals.models import DealRole
from deals.permissions import IsSuperadminOrEngine
from deals.serializers import (
    BlankCanvasInput,
    BlankCanvasOutput,
    DashboardQueryInput,
    DealBatchDeleteInput,
    DealBatchDeleteOutput,
    DealCreateInput,
    DealOutput,
    DealQueueSummarySerializer,
    DealTokenInput,
    DealTokenOutput,
    DealUpdateInput,
    GrantCreateInput,
    GrantOutput,
    GrantUpdateInput,
    MemberAddInput,
    MemberOutput,
    MemberRoleInput,
    OrgCreateInput,
    OrgOutput,
    StreamTicketInput,
    StreamTicketOutput,
    TokenObtainInput,
    TokenPairOutput,
    TokenRefreshInput,
    TokenVerifyInput,
    TokenVerifyOutput,
    UserTokenRefreshSerializer,
)
from deals.tokens import deal_token_mint, stream_ticket_mint, token_obtain

DEAL_ID = r"(?P<deal_id>[^/]+)"
# the scoping methods a subclass may not override
SEALED = (
    "initial",
    "handle_exception",
    "finalize_response",
    "get_permissions",
    "check_permissions",
    "deal_access",
    "token_deal_id",
)
STANDARD_ACTIONS = ("list", "create", "retrieve", "update", "partial_update", "destroy")


class _MinimumRole(BasePermission):
    def __init__(self, minimum: str) -> None:
        self.minimum = minimum

    def has_permission(self, request, view) -> bool:
        require_role(view.deal_access, self.minimum)
        return True


HTTP_METHODS = {"get", "post", "put", "patch", "delete", "head", "options", "trace", "connect"}


def _actions_of(cls) -> set[str]:
    """Every action the class serves: the standard ones it defines, its @action functions, and the
    functions mapped to further methods of an @action route (`@lock.mapping.delete`)."""
    names = {name for name in STANDARD_ACTIONS if callable(getattr(cls, name, None))}
    for extra in cls.get_extra_actions():
        names.add(extra.__name__)
        names.update(extra.mapping.values())
    return names


class DealScopedViewSet(viewsets.ViewSet):
    """Base of every viewset under /api/canvas/{deal_id} and /api/deals/{deal_id}. Sealed (see module)."""

    minimum_roles: ClassVar[dict[str, str]] = {}
    # Actions that may authenticate with the token alone (no user row): deals.access checks in its one
    # query that the user is active and the token not older than their last password change.
    stateless_user_actions: ClassVar[tuple[str, ...]] = ()
    lookup_value_regex = "[^/]+"

    def __init_subclass__(cls, **kwargs) -> None:
        super().__init_subclass__(**kwargs)
        overridden = [name for name in SEALED if name in cls.__dict__]
        if overridden:
            raise TypeError(f"{cls.__name__} may not override the deal scoping ({', '.join(overridden)})")
        actions = _actions_of(cls)
        # DRF dispatches an HTTP method to the attribute of that name: an action called `trace` would
        # answer TRACE requests on every route of the viewset
        clashing = sorted(actions & HTTP_METHODS)
        if clashing:
            raise TypeError(f"{cls.__name__}: actions named after HTTP methods: {', '.join(clashing)}")
        undeclared = sorted(actions - set(cls.minimum_roles))
        if undeclared:
            raise TypeError(f"{cls.__name__} declares no minimum role for: {', '.join(undeclared)}")
        unknown = [role for role in cls.minimum_roles.values() if role not in DealRole.values]
        if unknown:
            raise TypeError(f"{cls.__name__}: not roles: {unknown}")

    @property
    def jwt_stateless_user(self) -> bool:
        return getattr(self, "action", None) in self.stateless_user_actions

    def initial(self, request, *args, **kwargs):
        # If-Match on a write: the memo version it names reaches memo_write (canvas_project.api.conditional)
        header = request.headers.get("If-Match") if request.method not in ("GET", "HEAD", "OPTIONS") else None
        if header is not None:
            self._if_match = IF_MATCH_VERSION.set(if_match_version_of(header))
        super().initial(request, *args, **kwargs)

    def handle_exception(self, exc):
        if isinstance(exc, StaleError) and getattr(self, "_if_match", None) is not None:
            exc = PreconditionFailedError(
                exc.message, current_version=exc.extra.get("current_version"), current_etag=self.current_etag()
            )
        return super().handle_exception(exc)

    def finalize_response(self, request, response, *args, **kwargs):
        token = getattr(self, "_if_match", None)
        if token is not None:
            IF_MATCH_VERSION.reset(token)
            self._if_match = None
        return super().finalize_response(request, response, *args, **kwargs)

    def current_etag(self) -> str | None:
        """The caller's ETag of the deal's memo now, for a 412; a viewset that writes the memo says it."""
        return None

    def get_permissions(self):
        action = getattr(self, "action", None) or ""
        if action == "metadata":  # OPTIONS rides on the route's GET (DRF names its action `metadata`)
            action = (getattr(self, "action_map", None) or {}).get("get", "")
        return [IsAuthenticated(), _MinimumRole(self.minimum_roles.get(action, DealRole.OWNER))]

    @property
    def deal_access(self) -> DealAccessContext:
        cached = getattr(self, "_deal_access", None)
        if cached is None:
            cached = resolve_deal_access(
                user=self.request.user, deal_id=self.kwargs.get("deal_id"), token=self.request.auth
            )
            self._deal_access = cached
        return cached

    @property
    def token_deal_id(self) -> str | None:
        return token_deal_claim(self.request.auth)


class ApiRouter(SimpleRouter):
    """DRF's router without trailing slashes (the API's paths have none)."""

    def __init__(self) -> None:
        super().__init__(trailing_slash=False)


# --- the deals app's endpoints ------------------------------------------------------------------------
USER_ID_PARAM = OpenApiParameter("user_id", OpenApiTypes.UUID, OpenApiParameter.PATH)
ORG_ID_PARAM = OpenApiParameter("org_id", OpenApiTypes.UUID, OpenApiParameter.PATH)
# Endpoints outside any deal: a user's bearer token (the row loaded), any signed-in user.
USER_AUTHENTICATION = [BearerJWTAuthentication]
USER_PERMISSIONS = [IsAuthenticated]


def _deal_payload(deal, role: str) -> dict:
    deal.user_role = role
    return DealOutput(deal).data


class AuthViewSet(viewsets.ViewSet):
    """The token endpoints. Log in, refresh and verify are public (any Authorization header is ignored);
    minting a deal-scoped token takes a superadmin's bearer token or the internal engine token."""

    authentication_classes: list = []
    permission_classes = [AllowAny]

    def get_authenticate_header(self, request) -> str:
        # the public actions have no authenticator to name the scheme of their 401s
        return super().get_authenticate_header(request) or 'Bearer realm="api"'

    @extend_schema(
        operation_id="auth_token_obtain",
        summary="Log in: a bearer token pair",
        description="Attempts are rate-limited per username and per client address, right password or wrong, "
        "before the password is checked: past the limit every attempt (even with the right password) is 429 "
        "with Retry-After until the bucket refills. Defaults: per username a burst of 5, then 1 a minute (a "
        "successful login clears it); per address a burst of 20, then 20 a minute.",
        request=TokenObtainInput,
        responses={200: TokenPairOutput, **error_responses(401, 422, 429)},
        parameters=[
            OpenApiParameter(
                "Retry-After",
                int,
                OpenApiParameter.HEADER,
                response=[429],
                description="Seconds to wait before the next attempt.",
            )
        ],
        tags=["auth"],
        auth=[],
    )
    @action(detail=False, methods=["post"], url_path="token", url_name="token")
    def obtain(self, request):
        body = parse_body(TokenObtainInput, request)
        pair = token_obtain(
            request=request,
            username=body["username"],
            password=body["password"],
            client_address=client_address(request),
        )
        if pair is None:
            raise AuthenticationFailed("No active account found with the given credentials.")
        return Response(pair)

    @extend_schema(
        operation_id="auth_token_refresh",
        summary="Trade a refresh token for a new pair (the old refresh token is revoked)",
        request=TokenRefreshInput,
        responses={200: TokenPairOutput, **error_responses(401, 422)},
        tags=["auth"],
        auth=[],
    )
    @action(detail=False, methods=["post"], url_path="token/refresh", url_name="token-refresh")
    def refresh(self, request):
        body = parse_body(TokenRefreshInput, request)
        serializer = UserTokenRefreshSerializer(data=body)
        try:
            serializer.is_valid(raise_exception=True)
        except TokenError:
            raise AuthenticationFailed("Token is invalid, expired or already used.") from None
        except ObjectDoesNotExist:
            raise AuthenticationFailed("No active account found for this token.") from None
        return Response(
            {
                "access": serializer.validated_data["access"],
                "refresh": serializer.validated_data.get("refresh", body["refresh"]),
            }
        )

    @extend_schema(
        operation_id="auth_token_verify",
        summary="Check a token and read its claims",
        request=TokenVerifyInput,
        responses={200: TokenVerifyOutput, **error_responses(401, 422)},
        tags=["auth"],
        auth=[],
    )
    @action(detail=False, methods=["post"], url_path="token/verify", url_name="token-verify")
    def verify(self, request):
        body = parse_body(TokenVerifyInput, request)
        try:
            token = UntypedToken(body["token"])
        except TokenError:
            raise AuthenticationFailed("Token is invalid or expired.") from None
        if token.get("token_type") == "refresh":
            if BlacklistedToken.objects.filter(token__jti=token.get("jti")).exists():
                raise AuthenticationFailed("Token is blacklisted.")
        return Response(
            {
                "valid": True,
                "token_type": token.get("token_type"),
                "user_id": token.get("user_id"),
                "deal_id": token.get("deal_id"),
                "expires_at": datetime.fromtimestamp(token["exp"], tz=UTC),
            }
        )

    @extend_schema(
        operation_id="auth_token_deal",
        summary="Mint a deal-scoped token (superadmin or internal engine token)",
        description="The token carries a `deal_id` claim: it reaches that deal only, and on first access "
        "it seeds the owner grant when the deal has no owner yet. The user must belong to the deal's org. "
        "An API key is refused (403), even a superadmin's.",
        request=DealTokenInput,
        responses={
            201: DealTokenOutput,
            **error_responses(401, 403, 422),
            403: OpenApiResponse(
                ErrorDetailSerializer,
                description="Neither a superadmin nor an engine; or sent with an API key, which cannot mint tokens.",
            ),
        },
        tags=["auth"],
        auth=[{"jwtAuth": []}, {"internalEngineToken": []}],
    )
    @action(
        detail=False,
        methods=["post"],
        url_path="token/deal",
        url_name="token-deal",
        # a person's JWT: an API key cannot mint tokens (403), not even a superadmin's
        authentication_classes=[InternalEngineTokenAuthentication, PersonBearerAuthentication],
        permission_classes=[IsSuperadminOrEngine],
    )
    def deal_token(self, request):
        body = parse_body(DealTokenInput, request)
        minted = deal_token_mint(user_id=body["user_id"], deal_id=body["deal_id"])
        return Response(DealTokenOutput(minted).data, status=status.HTTP_201_CREATED)

    @extend_schema(
        operation_id="auth_stream_ticket",
        summary="A stream ticket: open the deal's event streams from a browser's EventSource (viewer)",
        description="A browser's native `EventSource` cannot send an Authorization header, so it opens the "
        "deal's event streams (GET /api/canvas/{deal_id}/events, /runs/{run_id}/stream, /discourse/stream) with "
        "`?ticket=<ticket>` instead. The ticket is bound to the caller and this deal, opens streams until "
        "`expires_at` (STREAM_TICKET_SECONDS, default 300, after it was issued) and is not used up: the "
        "EventSource's reconnects (with Last-Event-ID) reuse the same URL. Every connect checks the caller's "
        "access again; once it is revoked, or the ticket expired, the stream answers 401 and the page asks for a "
        "new ticket. Needs the viewer role on the deal or higher; a superadmin is no member of a deal (404), and "
        "the internal engine token is no user (401; the streams do not take it either). Nothing is stored: "
        "the ticket is signed.",
        request=StreamTicketInput,
        responses={201: StreamTicketOutput, **error_responses(401, 404, 422)},
        tags=["auth"],
    )
    @action(
        detail=False,
        methods=["post"],
        url_path="stream-ticket",
        url_name="stream-ticket",
        authentication_classes=[BearerJWTAuthentication],
        permission_classes=[IsAuthenticated],
    )
    def stream_ticket(self, request):
        body = parse_body(StreamTicketInput, request)
        minted = stream_ticket_mint(user=request.user, token=request.auth, deal_id=body["deal_id"])
        return Response(StreamTicketOutput(minted).data, status=status.HTTP_201_CREATED)


class OrgViewSet(viewsets.ViewSet):
    """/api/orgs: the caller's orgs, and creating one."""

    authentication_classes = USER_AUTHENTICATION
    permission_classes = USER_PERMISSIONS

    @extend_schema(
        operation_id="orgs_list",
        summary="The caller's orgs",
        parameters=[PageQueryInput],
        responses={200: page_of(OrgOutput), **error_responses(401, 422)},
        tags=["orgs"],
    )
    def list(self, request):
        return paginate(request, selectors.orgs_of_user(user=request.user), serializer=OrgOutput)

    @extend_schema(
        operation_id="orgs_create",
        summary="Create an org (the caller becomes its admin)",
        request=OrgCreateInput,
        responses={201: OrgOutput, **error_responses(401, 422)},
        tags=["orgs"],
    )
    def create(self, request):
        body = parse_body(OrgCreateInput, request)
        org = services.org_create(name=body["name"], created_by=request.user)
        org.my_role = "admin"
        return Response(OrgOutput(org).data, status=status.HTTP_201_CREATED)


class OrgMemberViewSet(viewsets.ViewSet):
    """/api/orgs/{org_id}/members: an org's members (any member reads, the admin adds and removes; a member
    may remove themself). Non-members get 404."""

    authentication_classes = USER_AUTHENTICATION
    permission_classes = USER_PERMISSIONS
    lookup_field = "user_id"
    lookup_value_regex = "[^/]+"

    @extend_schema(
        operation_id="org_members_list",
        summary="Members of an org (any member)",
        parameters=[ORG_ID_PARAM, PageQueryInput],
        responses={200: page_of(MemberOutput), **error_responses(401, 404, 422)},
        tags=["orgs"],
    )
    def list(self, request, org_id):
        membership = selectors.org_membership_of(user=request.user, org_id=parse_path_uuid(org_id, "org_id"))
        return paginate(request, selectors.org_members(org=membership.org), serializer=MemberOutput)

    @extend_schema(
        operation_id="org_members_add",
        summary="Add someone from your orgs (org admin)",
        description="Adds, at once, a person who already shares an org with the caller (named by `user_id` or "
        "`email`). Anyone else is invited instead (POST /api/orgs/{org_id}/invitations), so nobody joins an org "
        "without consenting. A person outside the caller's orgs and an unknown id or email get the same 422 "
        "(`not_in_your_orgs`), which reveals nothing about accounts elsewhere.",
        parameters=[ORG_ID_PARAM],
        request=MemberAddInput,
        responses={201: MemberOutput, **error_responses(401, 403, 404, 409, 422)},
        tags=["orgs"],
    )
    def create(self, request, org_id):
        membership = selectors.org_membership_of(user=request.user, org_id=parse_path_uuid(org_id, "org_id"))
        body = parse_body(MemberAddInput, request)
        added = services.org_member_add(
            actor_membership=membership, user_id=body.get("user_id"), email=body.get("email"), role=body["role"]
        )
        return Response(MemberOutput(added).data, status=status.HTTP_201_CREATED)

    @extend_schema(
        operation_id="org_members_change_role",
        summary="Change a member's role (org admin)",
        description="The last admin cannot be demoted (409).",
        parameters=[ORG_ID_PARAM, USER_ID_PARAM],
        request=MemberRoleInput,
        responses={200: MemberOutput, **error_responses(401, 403, 404, 409, 422)},
        tags=["orgs"],
    )
    def partial_update(self, request, org_id, user_id):
        membership = selectors.org_membership_of(user=request.user, org_id=parse_path_uuid(org_id, "org_id"))
        user_uuid = parse_path_uuid(user_id, "user_id")
        body = parse_body(MemberRoleInput, request)
        changed = services.org_member_role_change(actor_membership=membership, user_id=user_uuid, role=body["role"])
        return Response(MemberOutput(changed).data)

    @extend_schema(
        operation_id="org_members_remove",
        summary="Remove a member (org admin, or the member themself)",
        description="Also revokes their grants on the org's deals; refused (409) for the last admin, "
        "or for the last owner of a deal.",
        parameters=[ORG_ID_PARAM, USER_ID_PARAM],
        responses={**deleted_response("Removed."), **error_responses(401, 403, 404, 409, 422)},
        tags=["orgs"],
    )
    def destroy(self, request, org_id, user_id):
        membership = selectors.org_membership_of(user=request.user, org_id=parse_path_uuid(org_id, "org_id"))
        services.org_member_remove(actor_membership=membership, user_id=parse_path_uuid(user_id, "user_id"))
        return Response(status=status.HTTP_204_NO_CONTENT)


class DashboardViewSet(viewsets.ViewSet):
    """GET /api/dashboard/memos: the caller's memo queue (a deal-scoped token sees its deal only)."""

    authentication_classes = USER_AUTHENTICATION
    permission_classes = USER_PERMISSIONS

    @extend_schema(
        operation_id="dashboard_memos",
        summary="The caller's memo queue",
        description="Deals the caller owns, that are shared with them, and that their orgs can see.",
        parameters=[DashboardQueryInput],
        responses={200: page_of(DealQueueSummarySerializer), **error_responses(401, 422)},
        tags=["deals"],
    )
    def list(self, request):
        query = parse_query(DashboardQueryInput, request)
        deals = selectors.dashboard_deals(
            user=request.user,
            query=selectors.DashboardQuery(q=query["q"], scope=query["scope"], ordering=query["ordering"]),
            only_deal_id=token_deal_claim(request.auth),
        )
        return paginate(request, deals.select_related(None), serializer=DealQueueSummarySerializer)


class BlankCanvasViewSet(viewsets.ViewSet):
    """POST /api/canvas/blank: a new deal with a blank memo (its creator owns it)."""

    authentication_classes = USER_AUTHENTICATION
    permission_classes = USER_PERMISSIONS

    @extend_schema(
        operation_id="canvas_create_blank",
        summary="Create a deal with a blank canvas",
        description="403: you belong to no org; 404: org_id names no org of yours.",
        request=BlankCanvasInput,
        responses={201: BlankCanvasOutput, **error_responses(401, 403, 404, 422)},
        tags=["canvas"],
    )
    def create(self, request):
        body = parse_body(BlankCanvasInput, request)
        org = services.deal_org_for_create(user=request.user, org_id=body.get("org_id"))
        deal = services.deal_create(
            user=request.user, org=org, name=body["deal_name"], template_key=body["template_key"], created_blank=True
        )
        redirect_url = settings.CANVAS_REDIRECT_TEMPLATE.format(deal_id=deal.pk)
        return Response(
            BlankCanvasOutput({"deal_id": deal.pk, "redirect_url": redirect_url}).data, status=status.HTTP_201_CREATED
        )


class DealCollectionViewSet(viewsets.ViewSet):
    """/api/deals and /api/deals/batch_delete: not under one deal (creating, and deleting several; the
    batch checks the owner role on each deal itself, all or nothing)."""

    authentication_classes = USER_AUTHENTICATION
    permission_classes = USER_PERMISSIONS

    @extend_schema(
        operation_id="deals_create",
        summary="Create a deal",
        description="Creates a deal in the given org (or the caller's only org); the creator becomes its owner. "
        "403: you belong to no org; 404: org_id names no org of yours; 422: you belong to several and named none.",
        request=DealCreateInput,
        responses={201: DealOutput, **error_responses(401, 403, 404, 422)},
        tags=["deals"],
    )
    def create(self, request):
        body = parse_body(DealCreateInput, request)
        org = services.deal_org_for_create(user=request.user, org_id=body.pop("org_id", None))
        deal = services.deal_create(user=request.user, org=org, **body)
        return Response(_deal_payload(deal, DealRole.OWNER), status=status.HTTP_201_CREATED)

    @extend_schema(
        operation_id="deals_batch_delete",
        summary="Delete several deals (owner of each)",
        description="All or nothing: when one id is unknown (404) or not owned by the caller (403), "
        "nothing is deleted.",
        request=DealBatchDeleteInput,
        responses={200: DealBatchDeleteOutput, **error_responses(401, 403, 404, 422)},
        tags=["deals"],
    )
    @action(detail=False, methods=["post"], url_path="batch_delete", url_name="batch-delete")
    def batch_delete(self, request):
        body = parse_body(DealBatchDeleteInput, request)
        deleted = services.deals_batch_delete(
            user=request.user, deal_ids=body["deal_ids"], token_deal_id=token_deal_claim(request.auth)
        )
        return Response(DealBatchDeleteOutput({"deleted": deleted, "count": len(deleted)}).data)


class DealViewSet(DealScopedViewSet):
    """/api/deals/{deal_id}: one deal's settings (read, update, delete)."""

    lookup_field = "deal_id"
    minimum_roles = {
        "retrieve": DealRole.VIEWER,
        "partial_update": DealRole.EDITOR,
        "destroy": DealRole.OWNER,
    }

    @extend_schema(
        operation_id="deals_retrieve",
        summary="Get a deal",
        responses={200: DealOutput, **error_responses(401, 403, 404)},
        tags=["deals"],
    )
    def retrieve(self, request, deal_id):
        ctx = self.deal_access
        return Response(_deal_payload(ctx.deal, ctx.role))

    @extend_schema(
        operation_id="deals_update",
        summary="Update a deal's settings",
        description="Editors change name and description; only owners change visibility.",
        request=DealUpdateInput,
        responses={200: DealOutput, **error_responses(401, 403, 404, 422)},
        tags=["deals"],
    )
    def partial_update(self, request, deal_id):
        body = parse_body(DealUpdateInput, request)
        ctx = self.deal_access
        deal = services.deal_update(deal=ctx.deal, role=ctx.role, changes=body)
        return Response(_deal_payload(deal, ctx.role))

    @extend_schema(
        operation_id="deals_delete",
        summary="Delete a deal (owner)",
        responses={**deleted_response(), **error_responses(401, 403, 404)},
        tags=["deals"],
    )
    def destroy(self, request, deal_id):
        services.deal_delete(deal=self.deal_access.deal)
        return Response(status=status.HTTP_204_NO_CONTENT)


class DealAccessViewSet(DealScopedViewSet):
    """/api/deals/{deal_id}/access: who has which role on the deal (owner only)."""

    lookup_field = "user_id"
    minimum_roles = {
        "list": DealRole.OWNER,
        "create": DealRole.OWNER,
        "partial_update": DealRole.OWNER,
        "destroy": DealRole.OWNER,
    }

    @extend_schema(
        operation_id="deal_access_list",
        summary="List who has access (owner)",
        parameters=[PageQueryInput],
        responses={200: page_of(GrantOutput), **error_responses(401, 403, 404, 422)},
        tags=["sharing"],
    )
    def list(self, request, deal_id):
        return paginate(request, selectors.deal_grants(deal=self.deal_access.deal), serializer=GrantOutput)

    @extend_schema(
        operation_id="deal_access_grant",
        summary="Share the deal with an org member (owner)",
        description="The user (by `user_id` or `email`) must be a member of the deal's org. Anyone else, and an "
        "unknown id or email, get the same 422 (`not_org_member`) echoing only what was sent.",
        request=GrantCreateInput,
        responses={201: GrantOutput, **error_responses(401, 403, 404, 409, 422)},
        tags=["sharing"],
    )
    def create(self, request, deal_id):
        body = parse_body(GrantCreateInput, request)
        field = "user_id" if "user_id" in body else "email"
        deal = self.deal_access.deal
        user = services.org_member_find(
            org_id=deal.org_id, user_id=body.get("user_id"), email=body.get("email"), field=field
        )
        grant = services.deal_access_grant(
            deal=deal, user=user, role=body["role"], granted_by=request.user, field=field
        )
        return Response(GrantOutput(grant).data, status=status.HTTP_201_CREATED)

    @extend_schema(
        operation_id="deal_access_change",
        summary="Change a user's role (owner)",
        description="The last owner cannot be demoted (409).",
        parameters=[USER_ID_PARAM],
        request=GrantUpdateInput,
        responses={200: GrantOutput, **error_responses(401, 403, 404, 409, 422)},
        tags=["sharing"],
    )
    def partial_update(self, request, deal_id, user_id):
        user_uuid = parse_path_uuid(user_id, "user_id")
        body = parse_body(GrantUpdateInput, request)
        grant = services.deal_access_change(deal=self.deal_access.deal, user_id=user_uuid, role=body["role"])
        return Response(GrantOutput(grant).data)

    @extend_schema(
        operation_id="deal_access_revoke",
        summary="Revoke a user's access (owner)",
        description="The last owner cannot be removed (409).",
        parameters=[USER_ID_PARAM],
        responses={**deleted_response("Revoked."), **error_responses(401, 403, 404, 409, 422)},
        tags=["sharing"],
    )
    def destroy(self, request, deal_id, user_id):
        user_uuid = parse_path_uuid(user_id, "user_id")
        services.deal_access_revoke(deal=self.deal_access.deal, user_id=user_uuid)
        return Response(status=status.HTTP_204_NO_CONTENT)
