"""OpenAPI building blocks shared by every endpoint: the error shapes and their responses."""

from __future__ import annotations

from drf_spectacular.utils import OpenApiResponse, inline_serializer
from rest_framework import serializers

from canvas_project.api.fields import StrictUUIDField


class ValidationErrorItemSerializer(serializers.Serializer):
    loc = serializers.ListField(child=serializers.JSONField(), help_text="Starts with body, query, path or header.")
    msg = serializers.CharField()
    type = serializers.CharField()
    input = serializers.JSONField(required=False, allow_null=True)
    ctx = serializers.DictField(required=False)

    class Meta:
        ref_name = "ValidationError"


class HTTPValidationErrorSerializer(serializers.Serializer):
    detail = ValidationErrorItemSerializer(many=True)

    class Meta:
        ref_name = "HTTPValidationError"


class ErrorDetailSerializer(serializers.Serializer):
    detail = serializers.CharField(help_text="A human sentence saying what went wrong.")

    class Meta:
        ref_name = "ErrorDetail"


class ConflictErrorSerializer(serializers.Serializer):
    detail = serializers.CharField(help_text="A human sentence saying what conflicts.")
    current_version = serializers.IntegerField(
        required=False, help_text="The memo's version now, when the conflict is a stale `base_version`."
    )

    class Meta:
        ref_name = "ConflictError"


class LockHolderSerializer(serializers.Serializer):
    section_key = serializers.CharField()
    holder = serializers.CharField(allow_null=True, help_text="The lock holder's display name.")
    holder_id = StrictUUIDField(allow_null=True)
    expires_at = serializers.DateTimeField(allow_null=True, help_text="When the lock expires unless renewed.")

    class Meta:
        ref_name = "LockHolder"


class LockedErrorSerializer(serializers.Serializer):
    detail = serializers.CharField(help_text="Who holds the lock and until when; nothing was written.")
    section_key = serializers.CharField(help_text="The (first) locked section the request would change.")
    holder = serializers.CharField(allow_null=True, help_text="Its holder's display name; null: nobody holds it.")
    holder_id = StrictUUIDField(allow_null=True)
    expires_at = serializers.DateTimeField(allow_null=True)
    locked_sections = LockHolderSerializer(many=True, help_text="Every locked section the request would change.")

    class Meta:
        ref_name = "LockedError"


class PreconditionFailedErrorSerializer(serializers.Serializer):
    detail = serializers.CharField(help_text="Which version the memo is at; nothing was written.")
    current_version = serializers.IntegerField(help_text="The memo's version now.")
    current_etag = serializers.CharField(
        allow_null=True, help_text="The caller's ETag of GET /api/canvas/{deal_id} now (also the ETag header)."
    )

    class Meta:
        ref_name = "PreconditionFailedError"


ERROR_BODIES = {409: ConflictErrorSerializer, 412: PreconditionFailedErrorSerializer, 423: LockedErrorSerializer}

ERROR_DESCRIPTIONS = {
    401: "Missing, expired or invalid bearer token.",
    403: "Authenticated, but the role is too low for this action.",
    404: "Unknown id, malformed deal id, or a deal outside the caller's orgs.",
    405: "Method not allowed.",
    409: "Conflicts with the current state (stale version, last owner, duplicate).",
    412: "If-Match names a version that is not current (stale); nothing was written. Reload and retry.",
    413: "Payload too large.",
    415: "Unsupported media type.",
    423: "A section the request would change is locked by another user (collaboration off); nothing was written.",
    429: "Rate limited; see the Retry-After header.",
    503: "A dependency (PostgreSQL, Redis, the Store) is down; the detail names it.",
}


# One server-sent event as a client's EventSource sees it (the per-event schema of a text/event-stream
# response, as OpenAPI 3.2's itemSchema has it). Retry-only blocks and `: ping` comments are not events.
# Each stream's events are components built on these fields (canvas_project.api.openapi).
SERVER_SENT_EVENT_SCHEMA = {
    "type": "object",
    "description": "One server-sent event of the stream.",
    "properties": {
        "event": {"type": "string", "description": "The event type (`message` when the block names none)."},
        "data": {"type": "string", "description": "The event's payload: JSON text."},
        "id": {"type": "string", "description": "Its stream id; resume after it with Last-Event-ID."},
        "retry": {"type": "integer", "description": "Reconnection delay in milliseconds."},
    },
    "required": ["event", "data"],
}


def error_responses(*codes: int) -> dict[int, OpenApiResponse]:
    """Responses for the given error statuses; 422 always uses HTTPValidationError."""
    responses: dict[int, OpenApiResponse] = {}
    for code in codes:
        if code == 422:
            responses[422] = OpenApiResponse(HTTPValidationErrorSerializer, description="Validation Error")
        else:
            body = ERROR_BODIES.get(code, ErrorDetailSerializer)
            responses[code] = OpenApiResponse(body, description=ERROR_DESCRIPTIONS.get(code, ""))
    return responses


def deleted_response(description: str = "Deleted.") -> dict[int, OpenApiResponse]:
    return {204: OpenApiResponse(None, description=description)}


__all__ = [
    "ERROR_DESCRIPTIONS",
    "SERVER_SENT_EVENT_SCHEMA",
    "ErrorDetailSerializer",
    "HTTPValidationErrorSerializer",
    "deleted_response",
    "error_responses",
    "inline_serializer",
]
