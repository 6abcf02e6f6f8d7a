"""Deals, dashboard, blank canvas, sharing and orgs. Thin: validate, call one service, serialize."""

from __future__ import annotations

import math

from django.conf import settings
from drf_spectacular.utils import OpenApiParameter, OpenApiTypes, extend_schema
from rest_framework import status
from rest_framework.response import Response
from rest_framework.views import APIView

from canvas_project.api.schema import deleted_response, error_responses
from canvas_project.api.validation import parse_body, parse_path_uuid, parse_query
from deals import selectors, services
from deals.access import token_deal_claim
from deals.models import DealRole
from deals.permissions import DealScopedAPIView, RequireEditor, RequireOwner, RequireViewer
from deals.serializers import (
    BlankCanvasInput,
    BlankCanvasOutput,
    DashboardPageOutput,
    DashboardQueryInput,
    DealBatchDeleteInput,
    DealBatchDeleteOutput,
    DealCreateInput,
    DealOutput,
    DealQueueSummarySerializer,
    DealUpdateInput,
    GrantCreateInput,
    GrantOutput,
    GrantUpdateInput,
    MemberAddInput,
    MemberOutput,
    OrgCreateInput,
    OrgOutput,
)

USER_ID_PARAM = OpenApiParameter("user_id", OpenApiTypes.UUID, OpenApiParameter.PATH)
ORG_ID_PARAM = OpenApiParameter("org_id", OpenApiTypes.UUID, OpenApiParameter.PATH)


def _deal_payload(deal, role: str) -> dict:
    deal.user_role = role
    return DealOutput(deal).data


# --- deals ------------------------------------------------------------------------------------
class DealCollectionApi(APIView):
    @extend_schema(
        operation_id="deals_create",
        summary="Create a deal",
        description="Creates a deal in the given org (or the caller's only org); the creator becomes its owner.",
        request=DealCreateInput,
        responses={201: DealOutput, **error_responses(401, 422)},
        tags=["deals"],
    )
    def post(self, request):
        body = parse_body(DealCreateInput, request)
        org = services.deal_org_for_create(user=request.user, org_id=body.pop("org_id", None))
        deal = services.deal_create(user=request.user, org=org, **body)
        return Response(_deal_payload(deal, DealRole.OWNER), status=status.HTTP_201_CREATED)


class DealDetailApi(DealScopedAPIView):
    guards = {"GET": RequireViewer, "PATCH": RequireEditor, "DELETE": RequireOwner}

    @extend_schema(
        operation_id="deals_retrieve",
        summary="Get a deal",
        responses={200: DealOutput, **error_responses(401, 403, 404)},
        tags=["deals"],
    )
    def get(self, request, deal_id):
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
    def patch(self, request, deal_id):
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
    def delete(self, request, deal_id):
        services.deal_delete(deal=self.deal_access.deal)
        return Response(status=status.HTTP_204_NO_CONTENT)


class DealBatchDeleteApi(APIView):
    @extend_schema(
        operation_id="deals_batch_delete",
        summary="Delete several deals (owner of each)",
        description="All or nothing: when one id is unknown (404) or not owned by the caller (403), "
        "nothing is deleted.",
        request=DealBatchDeleteInput,
        responses={200: DealBatchDeleteOutput, **error_responses(401, 403, 404, 422)},
        tags=["deals"],
    )
    def post(self, request):
        body = parse_body(DealBatchDeleteInput, request)
        deleted = services.deals_batch_delete(
            user=request.user, deal_ids=body["deal_ids"], token_deal_id=token_deal_claim(request.auth)
        )
        return Response(DealBatchDeleteOutput({"deleted": deleted, "count": len(deleted)}).data)


class DashboardMemosApi(APIView):
    @extend_schema(
        operation_id="dashboard_memos",
        summary="The caller's memo queue",
        description="Deals the caller owns, that are shared with them, and that their orgs can see.",
        parameters=[DashboardQueryInput],
        responses={200: DashboardPageOutput, **error_responses(401, 422)},
        tags=["deals"],
    )
    def get(self, request):
        query = parse_query(DashboardQueryInput, request)
        deals = selectors.dashboard_deals(
            user=request.user,
            query=selectors.DashboardQuery(q=query["q"], scope=query["scope"], ordering=query["ordering"]),
            only_deal_id=token_deal_claim(request.auth),
        )
        page, size = query["page"], query["page_size"]
        count = deals.count()
        rows = deals.select_related(None)[(page - 1) * size : page * size]
        return Response(
            {
                "count": count,
                "page": page,
                "page_size": size,
                "total_pages": math.ceil(count / size) if count else 0,
                "results": DealQueueSummarySerializer(rows, many=True).data,
            }
        )


class BlankCanvasApi(APIView):
    @extend_schema(
        operation_id="canvas_create_blank",
        summary="Create a deal with a blank canvas",
        request=BlankCanvasInput,
        responses={201: BlankCanvasOutput, **error_responses(401, 422)},
        tags=["canvas"],
    )
    def post(self, request):
        body = parse_body(BlankCanvasInput, request)
        org = services.deal_org_for_create(user=request.user, org_id=body.get("org_id"))
        deal = services.deal_create(
            user=request.user, org=org, name=body["deal_name"], template_key=body["template_key"], created_blank=True
        )
        redirect_url = settings.CANVAS_REDIRECT_TEMPLATE.format(deal_id=deal.pk)
        return Response(
            BlankCanvasOutput({"deal_id": deal.pk, "redirect_url": redirect_url}).data, status=status.HTTP_201_CREATED
        )


# --- sharing ----------------------------------------------------------------------------------
class DealAccessCollectionApi(DealScopedAPIView):
    guards = {"GET": RequireOwner, "POST": RequireOwner}

    @extend_schema(
        operation_id="deal_access_list",
        summary="List who has access (owner)",
        responses={200: GrantOutput(many=True), **error_responses(401, 403, 404)},
        tags=["sharing"],
    )
    def get(self, request, deal_id):
        return Response(GrantOutput(selectors.deal_grants(deal=self.deal_access.deal), many=True).data)

    @extend_schema(
        operation_id="deal_access_grant",
        summary="Share the deal with an org member (owner)",
        request=GrantCreateInput,
        responses={201: GrantOutput, **error_responses(401, 403, 404, 409, 422)},
        tags=["sharing"],
    )
    def post(self, request, deal_id):
        body = parse_body(GrantCreateInput, request)
        field = "user_id" if "user_id" in body else "email"
        user = services.user_find(user_id=body.get("user_id"), email=body.get("email"), field=field)
        grant = services.deal_access_grant(
            deal=self.deal_access.deal, user=user, role=body["role"], granted_by=request.user, field=field
        )
        return Response(GrantOutput(grant).data, status=status.HTTP_201_CREATED)


class DealAccessDetailApi(DealScopedAPIView):
    guards = {"PATCH": RequireOwner, "DELETE": RequireOwner}

    @extend_schema(
        operation_id="deal_access_change",
        summary="Change a user's role (owner)",
        description="The last owner cannot be demoted (409).",
        parameters=[USER_ID_PARAM],
        request=GrantUpdateInput,
        responses={200: GrantOutput, **error_responses(401, 403, 404, 409, 422)},
        tags=["sharing"],
    )
    def patch(self, request, deal_id, user_id):
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
    def delete(self, request, deal_id, user_id):
        user_uuid = parse_path_uuid(user_id, "user_id")
        services.deal_access_revoke(deal=self.deal_access.deal, user_id=user_uuid)
        return Response(status=status.HTTP_204_NO_CONTENT)


# --- orgs -------------------------------------------------------------------------------------
class OrgCollectionApi(APIView):
    @extend_schema(
        operation_id="orgs_list",
        summary="The caller's orgs",
        responses={200: OrgOutput(many=True), **error_responses(401)},
        tags=["orgs"],
    )
    def get(self, request):
        return Response(OrgOutput(selectors.orgs_of_user(user=request.user), many=True).data)

    @extend_schema(
        operation_id="orgs_create",
        summary="Create an org (the caller becomes its admin)",
        request=OrgCreateInput,
        responses={201: OrgOutput, **error_responses(401, 422)},
        tags=["orgs"],
    )
    def post(self, request):
        body = parse_body(OrgCreateInput, request)
        org = services.org_create(name=body["name"], created_by=request.user)
        org.my_role = "admin"
        return Response(OrgOutput(org).data, status=status.HTTP_201_CREATED)


class OrgMembersApi(APIView):
    @extend_schema(
        operation_id="org_members_list",
        summary="Members of an org (any member)",
        parameters=[ORG_ID_PARAM],
        responses={200: MemberOutput(many=True), **error_responses(401, 404, 422)},
        tags=["orgs"],
    )
    def get(self, request, org_id):
        membership = selectors.org_membership_of(user=request.user, org_id=parse_path_uuid(org_id, "org_id"))
        return Response(MemberOutput(selectors.org_members(org=membership.org), many=True).data)

    @extend_schema(
        operation_id="org_members_add",
        summary="Add a member (org admin)",
        parameters=[ORG_ID_PARAM],
        request=MemberAddInput,
        responses={201: MemberOutput, **error_responses(401, 403, 404, 409, 422)},
        tags=["orgs"],
    )
    def post(self, request, org_id):
        membership = selectors.org_membership_of(user=request.user, org_id=parse_path_uuid(org_id, "org_id"))
        body = parse_body(MemberAddInput, request)
        field = "user_id" if "user_id" in body else "email"
        user = services.user_find(user_id=body.get("user_id"), email=body.get("email"), field=field)
        added = services.org_member_add(actor_membership=membership, user=user, role=body["role"])
        return Response(MemberOutput(added).data, status=status.HTTP_201_CREATED)


class OrgMemberDetailApi(APIView):
    @extend_schema(
        operation_id="org_members_remove",
        summary="Remove a member (org admin, or the member themself)",
        description="Also revokes their grants on the org's deals; refused (409) for the last admin, "
        "or for the last owner of a deal.",
        parameters=[ORG_ID_PARAM, USER_ID_PARAM],
        responses={**deleted_response("Removed."), **error_responses(401, 403, 404, 409, 422)},
        tags=["orgs"],
    )
    def delete(self, request, org_id, user_id):
        membership = selectors.org_membership_of(user=request.user, org_id=parse_path_uuid(org_id, "org_id"))
        services.org_member_remove(actor_membership=membership, user_id=parse_path_uuid(user_id, "user_id"))
        return Response(status=status.HTTP_204_NO_CONTENT)
