"""The superadmin API: purge per-deal Redis state, read a deal's Redis footprint. Thin views.

Superadmins only (IsAuthenticated + RequireSuperadmin: anonymous 401, anyone else 403). A superadmin is
no deal member, and the footprint answers for deal ids PostgreSQL does not know, so neither viewset is a
DealScopedViewSet.
"""

from __future__ import annotations

from dataclasses import asdict

from drf_spectacular.utils import OpenApiExample, extend_schema
from rest_framework import viewsets
from rest_framework.decorators import action
from rest_framework.permissions import IsAuthenticated
from rest_framework.response import Response

from canvas_project.api.schema import error_responses
from canvas_project.api.validation import parse_body
from canvas_project.keyspace import normalise_deal_id
from deals.errors import DealNotFound
from deals.permissions import RequireSuperadmin
from superadmin import selectors, services
from superadmin.models import PurgeSource
from superadmin.serializers import DealRedisFootprintOutput, PurgeDealsInput, PurgeResultOutput


class SuperadminViewSet(viewsets.ViewSet):
    permission_classes = [IsAuthenticated, RequireSuperadmin]


class PurgeViewSet(SuperadminViewSet):
    """POST /api/superadmin/purge_deals."""

    @extend_schema(
        operation_id="superadmin_purge_deals",
        summary="Purge Deals",
        description=(
            "Purge per-deal Redis state (canvas sessions, locks, presence, events, image crops, digitization "
            "cache, intake summaries, doc readiness, deal-intel cache, brush findings).\n\n"
            "Run streams and LangGraph checkpoint threads are NOT purged unless `include_checkpoints` is "
            "true; that is refused (409) while a run of the deal is active unless `force` is true (in mode "
            "`all` such deals are skipped instead).\n\n"
            "Modes: `all` purges every deal in Redis (SCAN + UNLINK in batches; `exclude_active_within_secs` "
            "skips deals with recent canvas events; `org_id` keeps to one org). `by_deal` purges one deal "
            "without scanning the keyspace; `org_id` must then be the deal's org. A deal id PostgreSQL does "
            "not know is still purged (its Redis leftovers).\n\n"
            "`dry_run` defaults to **true**: counts what would be purged and deletes nothing. Every call "
            "leaves a PurgeAudit record (`audit_id`). PostgreSQL data is never touched except the "
            "checkpoint threads when asked."
        ),
        request=PurgeDealsInput,
        responses={200: PurgeResultOutput, **error_responses(401, 403, 409, 422, 503)},
        examples=[
            OpenApiExample(
                "One deal, dry run",
                request_only=True,
                value={"mode": "by_deal", "deal_id": "6f1c0d52-3b7e-4d0a-9a51-2f3c4b5d6e7f", "dry_run": True},
            )
        ],
        tags=["superadmin"],
    )
    @action(detail=False, methods=["post"], url_path="purge_deals", url_name="purge-deals")
    def purge_deals(self, request):
        body = parse_body(PurgeDealsInput, request)
        result = services.deals_purge(**body, source=PurgeSource.API, actor=request.user)
        return Response(PurgeResultOutput(result.as_dict()).data)


class DealRedisViewSet(SuperadminViewSet):
    """GET /api/superadmin/deals/{deal_id}/redis."""

    lookup_field = "deal_id"
    lookup_value_regex = "[^/]+"  # any id reaches the view: a malformed one is a JSON 404 (DealNotFound)

    @extend_schema(
        operation_id="superadmin_deal_redis",
        summary="A deal's Redis footprint",
        description=(
            "Key count, approximate bytes (MEMORY USAGE) and TTLs per family of the key registry, read from "
            "the deal's fixed key names and its index (no keyspace scan). Answers for deal ids PostgreSQL "
            "does not know too (`deal_exists: false`), since their Redis leftovers are what a purge removes."
        ),
        responses={200: DealRedisFootprintOutput, **error_responses(401, 403, 404, 503)},
        tags=["superadmin"],
    )
    @action(detail=True, methods=["get"])
    def redis(self, request, deal_id):
        try:
            deal = normalise_deal_id(deal_id)
        except ValueError:
            raise DealNotFound() from None
        footprint = selectors.deal_redis_footprint(deal_id=deal)
        return Response(DealRedisFootprintOutput(asdict(footprint)).data)
