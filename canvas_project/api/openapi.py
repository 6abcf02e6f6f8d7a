"""The project's drf-spectacular AutoSchema: every `deal_id` path parameter is a UUID string.

(Routes take `<str:deal_id>` so that a malformed id reaches the deal resolver and reads as 404 in
JSON; the schema still says what a valid id looks like.)
"""

from drf_spectacular.openapi import AutoSchema


class ProjectAutoSchema(AutoSchema):
    def _resolve_path_parameters(self, variables):
        parameters = super()._resolve_path_parameters(variables)
        for parameter in parameters:
            if parameter["name"] == "deal_id":
                parameter["schema"] = {"type": "string", "format": "uuid"}
                parameter.setdefault("description", "The deal's id; unknown or malformed ids answer 404.")
        return parameters


def add_sse_endpoints(result, generator, request, public):
    """drf-spectacular postprocessing hook: document the async SSE views of canvas.sse and chat."""
    from canvas.sse import SSE_ENDPOINTS
    from internal_api.chat_apis import CHAT_STREAM_ENDPOINT

    _add_chat_stream(result, CHAT_STREAM_ENDPOINT)

    error = {"application/json": {"schema": {"$ref": "#/components/schemas/ErrorDetail"}}}
    for endpoint in SSE_ENDPOINTS:
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
        ]
        for name in endpoint.get("extra_path_params", []):
            parameters.insert(1, {"in": "path", "name": name, "required": True, "schema": {"type": "string"}})
        result["paths"].setdefault(endpoint["path"], {})["get"] = {
            "operationId": endpoint["operation_id"],
            "summary": endpoint["summary"],
            "description": endpoint["description"],
            "tags": [endpoint["tag"]],
            "security": [{"jwtAuth": []}],
            "parameters": parameters,
            "responses": {
                "200": {
                    "description": "An event stream.",
                    "content": {"text/event-stream": {"schema": {"type": "string"}}},
                },
                "401": {"description": "Missing, expired or invalid bearer token.", "content": error},
                "403": {"description": "The role is too low.", "content": error},
                "404": {"description": "Unknown deal, or not visible to the caller.", "content": error},
                "422": {
                    "description": "Malformed Last-Event-ID.",
                    "content": {"application/json": {"schema": {"$ref": "#/components/schemas/HTTPValidationError"}}},
                },
            },
        }
    return result


def _add_chat_stream(result, endpoint: dict) -> None:
    error = {"application/json": {"schema": {"$ref": "#/components/schemas/ErrorDetail"}}}
    result["paths"].setdefault(endpoint["path"], {})[endpoint["method"]] = {
        "operationId": endpoint["operation_id"],
        "summary": endpoint["summary"],
        "description": endpoint["description"],
        "tags": [endpoint["tag"]],
        "security": [{"jwtAuth": []}],
        "requestBody": {
            "required": True,
            "content": {"application/json": {"schema": {"$ref": f"#/components/schemas/{endpoint['request']}"}}},
        },
        "responses": {
            "200": {
                "description": "An event stream.",
                "content": {"text/event-stream": {"schema": {"type": "string"}}},
            },
            "401": {"description": "Missing, expired or invalid bearer token.", "content": error},
            "403": {"description": "The role is too low.", "content": error},
            "404": {"description": "Unknown project or thread.", "content": error},
            "422": {
                "description": "Validation Error",
                "content": {"application/json": {"schema": {"$ref": "#/components/schemas/HTTPValidationError"}}},
            },
            "429": {"description": "Rate limited; see Retry-After.", "content": error},
            "503": {"description": "The engine or a dependency is down.", "content": error},
        },
    }
