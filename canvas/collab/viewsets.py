"""Collaboration endpoints under /api/canvas/{deal_id}: the steps authority, the collaboration mode,
presence, and section locks.

Thin: validate, call one service, serialize. Deal scoping and the minimum role of each action come from
deals.viewsets.DealScopedViewSet. The canvas event stream (SSE) is an async view in canvas.collab.streams.
"""

from __future__ import annotations

import json

from django.conf import settings
from drf_spectacular.utils import OpenApiParameter, OpenApiTypes, extend_schema
from rest_framework import status
from rest_framework.decorators import action
from rest_framework.response import Response

from canvas.collab import selectors as collab_selectors
from canvas.collab import services as collab
from canvas.collab.serializers import (
    CollabModeInput,
    CollabModeOutput,
    LockInput,
    LockOutput,
    LockReleaseQueryInput,
    PresenceInput,
    PresenceOutput,
    StepsOutput,
    StepsPushInput,
    StepsPushOutput,
    StepsQueryInput,
)
from canvas.memo.errors import ContentTooLarge
from canvas_project.api.schema import deleted_response, error_responses
from canvas_project.api.validation import parse_body, parse_query
from deals.models import DealRole
from deals.viewsets import DealScopedViewSet

KEY_PARAM = OpenApiParameter("key", OpenApiTypes.STR, OpenApiParameter.PATH, description="Section key.")
TAGS = ["collaboration"]
MAX_STEPS_BYTES = 256 * 1024
MAX_CURSOR_BYTES = 2048


def _presence_response(rows: list[dict]) -> Response:
    return Response({"window_seconds": settings.PRESENCE_WINDOW_SECONDS, "present": rows})


class CollabViewSet(DealScopedViewSet):
    """The live collaboration of one deal: /api/canvas/{deal_id}/collab, /collab/steps and /presence."""

    # Only @action routes: the plain /api/canvas/{deal_id} is canvas.memo's CanvasViewSet.
    lookup_field = "deal_id"
    minimum_roles = {
        "collab_mode": DealRole.OWNER,
        "collab_steps": DealRole.VIEWER,
        "collab_steps_push": DealRole.EDITOR,
        "presence": DealRole.VIEWER,
        "presence_heartbeat": DealRole.VIEWER,
    }

    @extend_schema(
        operation_id="collab_mode",
        summary="Turn live collaboration on or off (owner)",
        description="On: edits are ordered by the steps authority; section locks are cleared. Off: "
        "sections are edited under locks; the steps log is cleared.",
        request=CollabModeInput,
        responses={200: CollabModeOutput, **error_responses(401, 403, 404, 422, 503)},
        tags=TAGS,
    )
    @action(detail=True, methods=["patch"], url_path="collab", url_name="collab")
    def collab_mode(self, request, deal_id):
        body = parse_body(CollabModeInput, request)
        return Response(collab.collab_set(deal=self.deal_access.deal, user=request.user, enabled=body["enabled"]))

    @extend_schema(
        operation_id="collab_steps_since",
        summary="Steps after a version (viewer)",
        description="410 when `since` is older than the kept window (reload the memo).",
        parameters=[StepsQueryInput],
        responses={200: StepsOutput, **error_responses(401, 403, 404, 409, 410, 422, 503)},
        tags=TAGS,
    )
    @action(detail=True, methods=["get"], url_path="collab/steps", url_name="collab-steps")
    def collab_steps(self, request, deal_id):
        query = parse_query(StepsQueryInput, request)
        return Response(collab_selectors.steps_since(deal=self.deal_access.deal, since=query["since"]))

    @extend_schema(
        operation_id="collab_steps_push",
        summary="Push steps at the current version (editor)",
        description="Accepted only when `version` is current (atomic in Redis); else 409 with "
        "`current_version`: fetch the missed steps, rebase, push again.",
        request=StepsPushInput,
        responses={200: StepsPushOutput, **error_responses(401, 403, 404, 409, 413, 422, 503)},
        tags=TAGS,
    )
    @collab_steps.mapping.post
    def collab_steps_push(self, request, deal_id):
        body = parse_body(StepsPushInput, request)
        if len(json.dumps(body["steps"])) > MAX_STEPS_BYTES:
            raise ContentTooLarge(f"One push carries at most {MAX_STEPS_BYTES // 1024} KB of steps.")
        version = collab.steps_push(
            deal=self.deal_access.deal,
            user=request.user,
            version=body["version"],
            client_id=body["client_id"],
            steps=body["steps"],
        )
        return Response({"version": version})

    @extend_schema(
        operation_id="presence_list",
        summary="Who is on the canvas (viewer)",
        responses={200: PresenceOutput, **error_responses(401, 403, 404, 503)},
        tags=TAGS,
    )
    @action(detail=True, methods=["get"])
    def presence(self, request, deal_id):
        return _presence_response(collab.presence_list(deal=self.deal_access.deal))

    @extend_schema(
        operation_id="presence_heartbeat",
        summary="Presence heartbeat (viewer)",
        description="Send every ~10 s; users without a heartbeat within the window age out.",
        request=PresenceInput,
        responses={200: PresenceOutput, **error_responses(401, 403, 404, 413, 422, 503)},
        tags=TAGS,
    )
    @presence.mapping.post
    def presence_heartbeat(self, request, deal_id):
        body = parse_body(PresenceInput, request)
        if len(json.dumps(body.get("cursor"))) > MAX_CURSOR_BYTES:
            raise ContentTooLarge("The cursor may be at most 2 KB.")
        ctx = self.deal_access
        rows = collab.presence_heartbeat(
            deal=ctx.deal,
            user=request.user,
            role=ctx.role,
            section_key=body.get("section_key"),
            cursor=body.get("cursor"),
        )
        return _presence_response(rows)


class SectionLockViewSet(DealScopedViewSet):
    """/api/canvas/{deal_id}/sections/{key}/lock: take, renew or release a section's lock."""

    # Only @action routes: the plain section route is canvas.memo's SectionViewSet.
    lookup_field = "key"
    minimum_roles = {"lock": DealRole.EDITOR, "lock_release": DealRole.EDITOR}

    @extend_schema(
        operation_id="section_lock_acquire",
        summary="Take or renew a section's lock (editor)",
        description="Only with collaboration off. 423 with the holder and expiry when someone else "
        "holds it; an expired lock frees itself.",
        parameters=[KEY_PARAM],
        request=LockInput,
        responses={200: LockOutput, **error_responses(401, 403, 404, 409, 422, 423, 503)},
        tags=TAGS,
    )
    @action(detail=True, methods=["post"])
    def lock(self, request, deal_id, key):
        body = parse_body(LockInput, request)
        lock = collab.lock_acquire(
            deal=self.deal_access.deal, user=request.user, section_key=key, ttl_seconds=body["ttl_seconds"]
        )
        return Response(LockOutput(lock).data)

    @extend_schema(
        operation_id="section_lock_release",
        summary="Release a section's lock (holder; owner with force)",
        parameters=[KEY_PARAM, LockReleaseQueryInput],
        responses={
            **deleted_response("Released (or there was no lock)."),
            **error_responses(401, 403, 404, 409, 422, 423, 503),
        },
        tags=TAGS,
    )
    @lock.mapping.delete
    def lock_release(self, request, deal_id, key):
        query = parse_query(LockReleaseQueryInput, request)
        ctx = self.deal_access
        collab.lock_release(
            deal=ctx.deal, user=request.user, role=ctx.role, section_key=key, token=query["token"], force=query["force"]
        )
        return Response(status=status.HTTP_204_NO_CONTENT)
