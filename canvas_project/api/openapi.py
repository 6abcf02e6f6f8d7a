"""The project's drf-spectacular AutoSchema: every `deal_id` path parameter is a UUID string, and
responses are exactly the serializers the views declare.

(Routes take `<str:deal_id>` so that a malformed id reaches the deal resolver and reads as 404 in
JSON; the schema still says what a valid id looks like.)
"""

from drf_spectacular.openapi import AutoSchema
from drf_spectacular.plumbing import is_list_serializer

from canvas_project.api.schema import ERROR_DESCRIPTIONS, SERVER_SENT_EVENT_REF, SERVER_SENT_EVENT_SCHEMA
from canvas_project.sse import schema as sse_schema

# What the hand-written stream operations accept, as drf-spectacular writes it for the DRF views that take a
# user's bearer token (deals.authentication): a JWT or an API key.
BEARER_SECURITY = [{"jwtAuth": []}, {"apiKeyAuth": []}]


class ProjectAutoSchema(AutoSchema):
    def _is_list_view(self, serializer=None) -> bool:
        # A response is an array only when its serializer says so (`many=True`): a viewset's `list` action
        # may answer a page object, which drf-spectacular would otherwise wrap in an array.
        if serializer is None:
            serializer = self.get_response_serializers()
        return is_list_serializer(serializer)

    def get_operation(self, *args, **kwargs):
        operation = super().get_operation(*args, **kwargs)
        # A view without authenticators ignores any Authorization header: say it is public (`security: []`)
        # rather than leave the requirement out, which readers take as "the document's default".
        if operation is not None and "security" not in operation and not self.view.get_authenticators():
            operation["security"] = []
        return operation

    def _resolve_path_parameters(self, variables):
        parameters = super()._resolve_path_parameters(variables)
        for parameter in parameters:
            if parameter["name"] == "deal_id":
                parameter["schema"] = {"type": "string", "format": "uuid"}
                parameter.setdefault("description", "The deal's id; unknown or malformed ids answer 404.")
        return parameters


def add_sse_endpoints(result, generator, request, public):
    """drf-spectacular postprocessing hook: document the async event-stream views (canvas_project.sse.schema)."""
    # every text/event-stream response (these and POST /generate's) describes its events with this
    result.setdefault("components", {}).setdefault("schemas", {})["ServerSentEvent"] = SERVER_SENT_EVENT_SCHEMA
    result["components"].setdefault("securitySchemes", {})["streamTicket"] = {
        "type": "apiKey",
        "in": "query",
        "name": "ticket",
        "description": "A stream ticket (POST /api/auth/stream-ticket): the deal's event streams only, for a "
        "browser's native EventSource. Never accepted by any other endpoint.",
    }
    for endpoint in sse_schema.POSTED_STREAMS:
        _add_posted_stream(result, endpoint)

    for endpoint in sse_schema.DEAL_STREAMS:
        parameters = [
            {
                "in": "path",
                "name": "deal_id",
                "required": True,
                "schema": {"type": "string", "format": "uuid"},
                "description": "The deal's id; unknown or malformed ids answer 404.",
            },
            {
                "in": "header",
                "name": "Last-Event-ID",
                "required": False,
                "schema": {"type": "string"},
                "description": "Resume after this event id (browsers send it when they reconnect).",
            },
            {
                "in": "query",
                "name": "last_event_id",
                "required": False,
                "schema": {"type": "string"},
                "description": "Resume after this event id, for clients that cannot set headers.",
            },
            {
                "in": "query",
                "name": "ticket",
                "required": False,
                "schema": {"type": "string", "maxLength": 256},
                "description": "A stream ticket of this deal (POST /api/auth/stream-ticket), instead of the "
                "Authorization header: what a browser's native EventSource can send. Not both (401). Valid "
                "until its expires_at, for every reconnect; refused (401) once expired, on another deal's "
                "stream, when malformed, or once the user's access to the deal is revoked.",
            },
        ]
        for name in endpoint.get("extra_path_params", []):
            parameters.insert(1, {"in": "path", "name": name, "required": True, "schema": {"type": "string"}})
        result["paths"].setdefault(endpoint["path"], {})["get"] = {
            "operationId": endpoint["operation_id"],
            "summary": endpoint["summary"],
            "description": endpoint["description"],
            "tags": [endpoint["tag"]],
            # a bearer token (JWT or API key), or a stream ticket in the query (also the `ticket` parameter above)
            "security": [*BEARER_SECURITY, {"streamTicket": []}],
            "parameters": parameters,
            "responses": _stream_responses(
                not_found="Unknown deal, or not visible to the caller.",
                invalid="Malformed Last-Event-ID.",
                unauthorized="Missing, expired or invalid bearer token; a stream ticket that is malformed, "
                "expired, of another deal, or whose user lost access to the deal; a ticket and an Authorization "
                "header both.",
            ),
        }
    return result


def document_request_body_rules(result, generator, request, public):
    """drf-spectacular postprocessing hook: what every DRF view that reads a body does, said once.

    - Each request body's top-level object has `additionalProperties: false`: canvas_project.api.
      validation refuses unknown fields (422 extra_forbidden). Nested objects are left alone, as the
      validator checks only the top level.
    - A body in a media type the view does not parse answers 415 (DRF's UnsupportedMediaType), so every
      operation with a body documents 415 next to its 422. The internal contract (400 for any bad input,
      no 422) and the chat stream (an async view that reads any body as JSON) never answer 415.
    """
    posted_streams = {endpoint["path"] for endpoint in sse_schema.POSTED_STREAMS}
    schemas = result.get("components", {}).get("schemas", {})
    for path, item in result["paths"].items():
        for operation in item.values():
            if not isinstance(operation, dict) or "requestBody" not in operation:
                continue
            for media in operation["requestBody"].get("content", {}).values():
                ref = media.get("schema", {}).get("$ref", "")
                component = schemas.get(ref.removeprefix("#/components/schemas/"))
                if component is not None and component.get("type") == "object":
                    component["additionalProperties"] = False
            responses = operation.get("responses", {})
            if "422" in responses and "415" not in responses and path not in posted_streams:
                responses["415"] = {
                    "description": ERROR_DESCRIPTIONS[415],
                    "content": {"application/json": {"schema": {"$ref": "#/components/schemas/ErrorDetail"}}},
                }
    return result


def _stream_responses(
    *, not_found: str, invalid: str, unauthorized: str = "Missing, expired or invalid bearer token."
) -> dict:
    """The answers every event-stream operation documents: the stream, 401, 403, 404, 422, 429 and 503."""
    error = {"application/json": {"schema": {"$ref": "#/components/schemas/ErrorDetail"}}}
    return {
        "200": {"description": "An event stream.", "content": {"text/event-stream": {"schema": SERVER_SENT_EVENT_REF}}},
        "401": {"description": unauthorized, "content": error},
        "403": {"description": "The role is too low.", "content": error},
        "404": {"description": not_found, "content": error},
        "422": {
            "description": invalid,
            "content": {"application/json": {"schema": {"$ref": "#/components/schemas/HTTPValidationError"}}},
        },
        "429": {
            "description": "The caller already holds SSE_MAX_STREAMS_PER_USER open event streams on this server "
            "process (default 32); close one. Retry-After says when to try again.",
            "headers": {"Retry-After": {"schema": {"type": "integer"}, "description": "Seconds to wait."}},
            "content": error,
        },
        "503": {"description": "PostgreSQL is unavailable.", "content": error},
    }


def _add_posted_stream(result, endpoint: dict) -> None:
    if endpoint["request"] not in result.get("components", {}).get("schemas", {}):
        raise ValueError(f"{endpoint['path']}: no component named {endpoint['request']!r} for its request body")
    error = {"application/json": {"schema": {"$ref": "#/components/schemas/ErrorDetail"}}}
    result["paths"].setdefault(endpoint["path"], {})[endpoint["method"]] = {
        "operationId": endpoint["operation_id"],
        "summary": endpoint["summary"],
        "description": endpoint["description"],
        "tags": [endpoint["tag"]],
        "security": BEARER_SECURITY,
        "requestBody": {
            "required": True,
            "content": {"application/json": {"schema": {"$ref": f"#/components/schemas/{endpoint['request']}"}}},
        },
        "responses": {
            **_stream_responses(not_found="Unknown project or thread.", invalid="Validation Error"),
            "429": {"description": "Rate limited; see Retry-After.", "content": error},
            "503": {"description": "The engine or a dependency is down.", "content": error},
        },
    }
