"""The OpenAPI document and its two UIs: drf-spectacular's views with the project's rules.

- `GET /api/schema/?format=json|yaml` picks the document's format itself. The project turns DRF's
  `?format=` renderer override off (settings: URL_FORMAT_OVERRIDE is None, because `?format=` on the export
  endpoint means md|docx), so without this view the parameter would be ignored and the document served as
  YAML. Without `?format=`, the Accept header decides as before (YAML by default). Another value is a 422.
- Their errors (405 for a POST, 406 for an Accept nothing serves, 422) are JSON `{"detail": ...}` like every
  other endpoint's, never the YAML or HTML the page itself is rendered in.
"""

from __future__ import annotations

from drf_spectacular.views import SpectacularAPIView, SpectacularRedocView, SpectacularSwaggerView
from rest_framework.exceptions import NotAcceptable
from rest_framework.renderers import JSONRenderer
from rest_framework.response import Response

from canvas_project.api.validation import RequestValidationError

SCHEMA_FORMATS = ("json", "yaml")


class JsonErrorsMixin:
    """Errors rendered as JSON whatever renderer the page itself uses."""

    def finalize_response(self, request, response, *args, **kwargs):
        if isinstance(response, Response) and response.status_code >= 400:
            request.accepted_renderer = JSONRenderer()
            request.accepted_media_type = JSONRenderer.media_type
        return super().finalize_response(request, response, *args, **kwargs)


class SchemaView(JsonErrorsMixin, SpectacularAPIView):
    """GET /api/schema/: the OpenAPI document; `?format=json` or `?format=yaml`, else by the Accept header."""

    def perform_content_negotiation(self, request, force=False):
        wanted = request.query_params.get("format")
        if wanted is None:
            return super().perform_content_negotiation(request, force)
        if wanted not in SCHEMA_FORMATS:
            raise RequestValidationError(
                [
                    {
                        "loc": ["query", "format"],
                        "msg": "Input should be 'json' or 'yaml'.",
                        "type": "enum",
                        "input": wanted,
                        "ctx": {"expected": "'json' or 'yaml'"},
                    }
                ]
            )
        renderers = [renderer for renderer in self.get_renderers() if renderer.format == wanted]
        try:
            # among that format's media types, the one the Accept header names (application/json, say)
            return self.get_content_negotiator().select_renderer(request, renderers)
        except NotAcceptable:
            # the query string says what the caller wants; an Accept that names no such type loses
            return renderers[0], renderers[0].media_type


class SwaggerView(JsonErrorsMixin, SpectacularSwaggerView):
    """GET /api/docs/: Swagger UI."""


class RedocView(JsonErrorsMixin, SpectacularRedocView):
    """GET /api/redoc/: Redoc."""
