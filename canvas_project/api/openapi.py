"""The project's drf-spectacular AutoSchema: every `deal_id` path parameter is a UUID string, and
responses are exactly the serializers the views declare.

(Routes take `<str:deal_id>` so that a malformed id reaches the deal resolver and reads as 404 in
JSON; the schema still says what a valid id looks like.)
"""

from drf_spectacular.openapi import AutoSchema
from drf_spectacular.plumbing import is_list_serializer

from canvas_project.api.schema import ERROR_DESCRIPTIONS, SERVER_SENT_EVENT_SCHEMA
from canvas_project.api.validation import MAX_PATH_INT
from canvas_project.sse import schema as sse_schema
from canvas_project.sse.hub import STREAM_ID_PATTERN

# path parameters read by canvas_project.api.validation.parse_path_int
POSITIVE_INTEGER_PATH_PARAMETERS = {"n", "cid"}

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

    def _map_serializer_field(self, field, direction, bypass_extensions=False):
        schema = super()._map_serializer_field(field, direction, bypass_extensions)
        # a nested list (`many=True`) keeps its bounds, as a ListField's do
        if is_list_serializer(field) and schema.get("type") == "array":
            if getattr(field, "min_length", None) is not None:
                schema["minItems"] = field.min_length
            if getattr(field, "max_length", None) is not None:
                schema["maxItems"] = field.max_length
        return schema


def add_sse_endpoints(result, generator, request, public):
    """drf-spectacular postprocessing hook: document the async event-stream views (canvas_project.sse.schema)
    and every declared set of events, as components."""
    schemas = result.setdefault("components", {}).setdefault("schemas", {})
    for prefix, events in sse_schema.EVENT_SETS.items():
        _add_event_components(schemas, prefix, events)
    schemas["StreamLimitError"] = sse_schema.STREAM_LIMIT_ERROR
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
                "schema": {"type": "string", "pattern": STREAM_ID_PATTERN},
                "description": "Resume after this event id (browsers send it when they reconnect).",
            },
            {
                "in": "query",
                "name": "last_event_id",
                "required": False,
                "schema": {"type": "string", "pattern": STREAM_ID_PATTERN},
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
        for name in endpoint.get("extra_path_params", []):  # ids of the deal's objects (a run)
            uuid_schema = {"type": "string", "format": "uuid"}
            parameters.insert(1, {"in": "path", "name": name, "required": True, "schema": uuid_schema})
        result["paths"].setdefault(endpoint["path"], {})["get"] = {
            "operationId": endpoint["operation_id"],
            "summary": endpoint["summary"],
            "description": endpoint["description"],
            "tags": [endpoint["tag"]],
            # a bearer token (JWT or API key), or a stream ticket in the query (also the `ticket` parameter above)
            "security": [*BEARER_SECURITY, {"streamTicket": []}],
            "parameters": parameters,
            "responses": _stream_responses(
                endpoint["prefix"],
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
    - The integer path parameters parse_path_int reads are 1 to MAX_PATH_INT.
    - Every free-text string of a JSON body or a query has the pattern NO_NUL: canvas_project.api.parsers
      and parse_query refuse NUL characters (PostgreSQL cannot store them) with a 422.
    - A body in a media type the view does not parse answers 415 (DRF's UnsupportedMediaType), so every
      operation with a body documents 415 next to its 422. The internal contract (400 for any bad input,
      no 422) and the chat stream (an async view that reads any body as JSON) never answer 415.
    """
    posted_streams = {endpoint["path"] for endpoint in sse_schema.POSTED_STREAMS}
    schemas = result.get("components", {}).get("schemas", {})
    for path, item in result["paths"].items():
        for operation in item.values():
            if not isinstance(operation, dict):
                continue
            for parameter in operation.get("parameters", []):
                if parameter.get("in") == "query":
                    _refuse_nul(parameter.get("schema", {}), schemas, seen=set())
                elif parameter.get("in") == "path" and parameter["name"] in POSITIVE_INTEGER_PATH_PARAMETERS:
                    parameter["schema"] = {"type": "integer", "minimum": 1, "maximum": MAX_PATH_INT}
            if "requestBody" not in operation:
                continue
            for media_type, media in operation["requestBody"].get("content", {}).items():
                ref = media.get("schema", {}).get("$ref", "")
                component = schemas.get(ref.removeprefix("#/components/schemas/"))
                if component is not None and component.get("type") == "object":
                    component["additionalProperties"] = False
                if media_type == "application/json":
                    _refuse_nul(media.get("schema", {}), schemas, seen=set())
            responses = operation.get("responses", {})
            if "422" in responses and "415" not in responses and path not in posted_streams:
                responses["415"] = {
                    "description": ERROR_DESCRIPTIONS[415],
                    "content": {"application/json": {"schema": {"$ref": "#/components/schemas/ErrorDetail"}}},
                }
    return result


def _camel(name: str) -> str:
    return "".join(part.capitalize() for part in name.split("_"))


def _add_event_components(schemas: dict, prefix: str, events: dict[str, dict]) -> None:
    """`<prefix><Name>Data` (the payload), `<prefix><Name>` (the event as an EventSource sees it) per event,
    and `<prefix>`: one of them, told apart by `event`."""
    mapping = {}
    for name, data_schema in events.items():
        component, data_component = f"{prefix}{_camel(name)}", f"{prefix}{_camel(name)}Data"
        for taken in (component, data_component):
            if taken in schemas:
                raise ValueError(f"event component {taken!r} collides with another component")
        schemas[data_component] = data_schema
        base = SERVER_SENT_EVENT_SCHEMA["properties"]
        schemas[component] = {
            "type": "object",
            "description": f"`event: {name}`. {data_schema.get('description', '')}".strip(),
            "properties": {
                "event": {"type": "string", "enum": [name], "description": base["event"]["description"]},
                "data": {
                    "type": "string",
                    "description": f"JSON text; parsed, a {data_component} (`#/components/schemas/{data_component}`).",
                    "x-json-schema": {"$ref": f"#/components/schemas/{data_component}"},
                },
                "id": base["id"],
                "retry": base["retry"],
            },
            "required": ["event", "data"],
        }
        mapping[name] = f"#/components/schemas/{component}"
    if prefix in schemas:
        raise ValueError(f"event component {prefix!r} collides with another component")
    schemas[prefix] = {
        "description": "One server-sent event of the stream; `event` names its type.",
        "oneOf": [{"$ref": ref} for ref in mapping.values()],
        "discriminator": {"propertyName": "event", "mapping": mapping},
    }


# What canvas_project.api.validation refuses in any text (PostgreSQL cannot store a NUL character).
NO_NUL = "^[^\\u0000]*$"


def _refuse_nul(schema: dict, schemas: dict, *, seen: set[str]) -> None:
    """Give every free-text string under `schema` (following component refs once) the NO_NUL pattern; a
    string with a format, an enum or its own pattern is already narrower."""
    if not isinstance(schema, dict):
        return
    ref = schema.get("$ref")
    if isinstance(ref, str):
        name = ref.removeprefix("#/components/schemas/")
        if name not in seen and name in schemas:
            seen.add(name)
            _refuse_nul(schemas[name], schemas, seen=seen)
        return
    if schema.get("type") == "string" and not ({"format", "enum", "pattern"} & set(schema)):
        schema["pattern"] = NO_NUL
    for key in ("items", "additionalProperties"):
        _refuse_nul(schema.get(key), schemas, seen=seen)
    for sub in schema.get("properties", {}).values():
        _refuse_nul(sub, schemas, seen=seen)
    for key in ("oneOf", "anyOf", "allOf"):
        for sub in schema.get(key, []):
            _refuse_nul(sub, schemas, seen=seen)


def _stream_responses(
    prefix: str, *, not_found: str, invalid: str, unauthorized: str = "Missing, expired or invalid bearer token."
) -> dict:
    """The answers every event-stream operation documents: the stream, 401, 403, 404, 422, 429 and 503."""
    error = {"application/json": {"schema": {"$ref": "#/components/schemas/ErrorDetail"}}}
    stream = {"text/event-stream": {"schema": sse_schema.event_union_ref(prefix)}}
    return {
        "200": {"description": "An event stream; its events are the oneOf of " + prefix + ".", "content": stream},
        "401": {"description": unauthorized, "content": error},
        "403": {"description": "The role is too low.", "content": error},
        "404": {"description": not_found, "content": error},
        "422": {
            "description": invalid,
            "content": {"application/json": {"schema": {"$ref": "#/components/schemas/HTTPValidationError"}}},
        },
        "429": {
            "description": "The caller already holds SSE_MAX_STREAMS_PER_USER open event streams on this server "
            "process (default 32; `scope` user), or the deal SSE_MAX_STREAMS_PER_DEAL (default 2000; `scope` "
            "deal). Retry-After says when to try again.",
            "headers": {"Retry-After": {"schema": {"type": "integer"}, "description": "Seconds to wait."}},
            "content": {"application/json": {"schema": {"$ref": "#/components/schemas/StreamLimitError"}}},
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
            **_stream_responses(endpoint["prefix"], not_found="Unknown project or thread.", invalid="Validation Error"),
            "429": {"description": "Rate limited; see Retry-After.", "content": error},
            "503": {"description": "The engine or a dependency is down.", "content": error},
        },
    }
