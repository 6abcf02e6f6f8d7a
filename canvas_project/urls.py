"""URL map. Paths follow the API's endpoint map (docs/api-guide.md): no trailing slash (except the schema pages).

Literal paths (/api/canvas/blank, /api/canvas/templates) come before /api/canvas/{deal_id}.
"""

from django.contrib import admin
from django.urls import include, path, re_path

from canvas_project.api.errors import json_not_found
from canvas_project.api.health import HealthApi
from canvas_project.api.schema_views import RedocView, SchemaView, SwaggerView
from canvas_project.observability import metrics_view

handler404 = "canvas_project.api.errors.json_not_found"
handler500 = "canvas_project.api.errors.json_server_error"

urlpatterns = [
    path("admin/", admin.site.urls),
    path("api/health", HealthApi.as_view(), name="health"),
    path("metrics", metrics_view, name="metrics"),
    path("api/schema/", SchemaView.as_view(), name="schema"),
    path("api/docs/", SwaggerView.as_view(url_name="schema"), name="swagger-ui"),
    path("api/redoc/", RedocView.as_view(url_name="schema"), name="redoc"),
    path("api/", include("deals.urls")),
    path("api/", include("deals.apikeys.urls")),
    path("api/", include("deals.people.urls")),
    path("api/", include("deals.webhooks.urls")),
    path("api/", include("deals.documents.urls")),
    # run_urls holds the literal /api/canvas/prompts, which must come before /api/canvas/{deal_id}
    path("api/", include("canvas.runs.urls")),
    path("api/", include("canvas.urls")),
    path("api/", include("internal_api.urls")),
    path("api/", include("internal_api.chat_urls")),
    path("api/", include("superadmin.urls")),
    # Anything else under /api/ is a JSON 404, also with DEBUG on.
    re_path(r"^api/", json_not_found),
]
