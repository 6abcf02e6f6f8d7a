"""Collaboration endpoints: steps authority, collaboration mode, presence, section locks."""

from __future__ import annotations

import json

from django.conf import settings
from drf_spectacular.utils import OpenApiParameter, OpenApiTypes, extend_schema
from rest_framework import serializers, status
from rest_framework.response import Response

from canvas.collab import services as collab
from canvas.memo.errors import ContentTooLarge
from canvas_project.api.fields import StrictCharField
from canvas_project.api.schema import deleted_response, error_responses
from canvas_project.api.validation import parse_body, parse_query
from deals.permissions import DealScopedAPIView, RequireEditor, RequireOwner, RequireViewer

KEY_PARAM = OpenApiParameter("key", OpenApiTypes.STR, OpenApiParameter.PATH, description="Section key.")
MAX_STEPS_BYTES = 256 * 1024
MAX_CURSOR_BYTES = 2048


class StepsPushInput(serializers.Serializer):
    version = serializers.IntegerField(min_value=0, help_text="The version the steps apply to.")
    client_id = StrictCharField(min_length=1, max_length=64)
    steps = serializers.ListField(
        child=serializers.JSONField(),
        min_length=1,
        max_length=100,
        help_text="Opaque steps (e.g. ProseMirror); ordered, never interpreted.",
    )


class StepsPushOutput(serializers.Serializer):
    version = serializers.IntegerField()


class StepsQueryInput(serializers.Serializer):
    since = serializers.IntegerField(min_value=0)


class StepOutput(serializers.Serializer):
    version = serializers.IntegerField()
    client_id = serializers.CharField()
    step = serializers.JSONField()


class StepsOutput(serializers.Serializer):
    version = serializers.IntegerField()
    steps = StepOutput(many=True)


class CollabModeInput(serializers.Serializer):
    enabled = serializers.BooleanField()


class CollabClearedOutput(serializers.Serializer):
    locks = serializers.IntegerField()
    steps = serializers.IntegerField()


class CollabModeOutput(serializers.Serializer):
    collab_enabled = serializers.BooleanField()
    cleared = CollabClearedOutput()


class PresenceInput(serializers.Serializer):
    section_key = StrictCharField(max_length=64, required=False, allow_null=True)
    cursor = serializers.JSONField(required=False, allow_null=True, help_text="Opaque cursor, at most 2 KB.")


class PresenceEntryOutput(serializers.Serializer):
    user_id = serializers.UUIDField()
    display_name = serializers.CharField(allow_null=True)
    role = serializers.CharField(allow_null=True)
    section_key = serializers.CharField(allow_null=True)
    cursor = serializers.JSONField(allow_null=True)
    last_seen = serializers.DateTimeField()


class PresenceOutput(serializers.Serializer):
    window_seconds = serializers.FloatField()
    present = PresenceEntryOutput(many=True)


class LockInput(serializers.Serializer):
    ttl_seconds = serializers.IntegerField(min_value=5, max_value=300, default=60)


class LockOutput(serializers.Serializer):
    section_key = serializers.CharField()
    user_id = serializers.UUIDField()
    user_name = serializers.CharField()
    token = serializers.CharField(help_text="Send it back to release the lock.")
    expires_at = serializers.DateTimeField()
    ttl_seconds = serializers.IntegerField()


class LockReleaseQueryInput(serializers.Serializer):
    token = StrictCharField(required=False, max_length=64, default="")
    force = serializers.BooleanField(required=False, default=False, help_text="Owner only.")


class CollabStepsApi(DealScopedAPIView):
    guards = {"GET": RequireViewer, "POST": RequireEditor}

    @extend_schema(
        operation_id="collab_steps_since",
        summary="Steps after a version (viewer)",
        description="410 when `since` is older than the kept window (reload the memo).",
        parameters=[StepsQueryInput],
        responses={200: StepsOutput, **error_responses(401, 403, 404, 409, 410, 422, 503)},
        tags=["collaboration"],
    )
    def get(self, request, deal_id):
        query = parse_query(StepsQueryInput, request)
        return Response(collab.steps_since(deal=self.deal_access.deal, since=query["since"]))

    @extend_schema(
        operation_id="collab_steps_push",
        summary="Push steps at the current version (editor)",
        description="Accepted only when `version` is current (atomic in Redis); else 409 with "
        "`current_version`: fetch the missed steps, rebase, push again.",
        request=StepsPushInput,
        responses={200: StepsPushOutput, **error_responses(401, 403, 404, 409, 413, 422, 503)},
        tags=["collaboration"],
    )
    def post(self, request, deal_id):
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


class CollabModeApi(DealScopedAPIView):
    guards = {"PATCH": RequireOwner}

    @extend_schema(
        operation_id="collab_mode",
        summary="Turn live collaboration on or off (owner)",
        description="On: edits are ordered by the steps authority; section locks are cleared. Off: "
        "sections are edited under locks; the steps log is cleared.",
        request=CollabModeInput,
        responses={200: CollabModeOutput, **error_responses(401, 403, 404, 422, 503)},
        tags=["collaboration"],
    )
    def patch(self, request, deal_id):
        body = parse_body(CollabModeInput, request)
        return Response(collab.collab_set(deal=self.deal_access.deal, user=request.user, enabled=body["enabled"]))


class PresenceApi(DealScopedAPIView):
    guards = {"GET": RequireViewer, "POST": RequireViewer}

    def _out(self, rows) -> Response:

        return Response({"window_seconds": settings.PRESENCE_WINDOW_SECONDS, "present": rows})

    @extend_schema(
        operation_id="presence_list",
        summary="Who is on the canvas (viewer)",
        responses={200: PresenceOutput, **error_responses(401, 403, 404, 503)},
        tags=["collaboration"],
    )
    def get(self, request, deal_id):
        return self._out(collab.presence_list(deal=self.deal_access.deal))

    @extend_schema(
        operation_id="presence_heartbeat",
        summary="Presence heartbeat (viewer)",
        description="Send every ~10 s; users without a heartbeat within the window age out.",
        request=PresenceInput,
        responses={200: PresenceOutput, **error_responses(401, 403, 404, 413, 422, 503)},
        tags=["collaboration"],
    )
    def post(self, request, deal_id):
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
        return self._out(rows)


class SectionLockApi(DealScopedAPIView):
    guards = {"POST": RequireEditor, "DELETE": RequireEditor}

    @extend_schema(
        operation_id="section_lock_acquire",
        summary="Take or renew a section's lock (editor)",
        description="Only with collaboration off. 423 with the holder and expiry when someone else "
        "holds it; an expired lock frees itself.",
        parameters=[KEY_PARAM],
        request=LockInput,
        responses={200: LockOutput, **error_responses(401, 403, 404, 409, 422, 423, 503)},
        tags=["collaboration"],
    )
    def post(self, request, deal_id, key):
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
        tags=["collaboration"],
    )
    def delete(self, request, deal_id, key):
        query = parse_query(LockReleaseQueryInput, request)
        ctx = self.deal_access
        collab.lock_release(
            deal=ctx.deal, user=request.user, role=ctx.role, section_key=key, token=query["token"], force=query["force"]
        )
        return Response(status=status.HTTP_204_NO_CONTENT)
