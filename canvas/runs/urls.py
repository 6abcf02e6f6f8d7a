"""Synthesis routes: generate, runs (and their streams), regenerate, debug, reset, discourse, prompts.

/api/canvas/prompts is a literal path: it must be routed before /api/canvas/{deal_id} (canvas.urls).
"""

from django.urls import path

from canvas.runs import apis as run_apis
from canvas.runs import streams as run_streams

D = "canvas/<str:deal_id>"

urlpatterns = [
    path("canvas/prompts", run_apis.PromptCatalogueApi.as_view(), name="canvas-prompts"),
    path(f"{D}/generate", run_apis.GenerateApi.as_view(), name="canvas-generate"),
    path(f"{D}/runs", run_apis.RunCollectionApi.as_view(), name="canvas-runs"),
    path(f"{D}/runs/<str:run_id>", run_apis.RunDetailApi.as_view(), name="canvas-run"),
    path(f"{D}/runs/<str:run_id>/stream", run_streams.run_stream, name="canvas-run-stream"),
    path(f"{D}/runs/<str:run_id>/cancel", run_apis.RunCancelApi.as_view(), name="canvas-run-cancel"),
    path(f"{D}/runs/<str:run_id>/trace", run_apis.RunTraceApi.as_view(), name="canvas-run-trace"),
    path(
        f"{D}/sections/<str:key>/regenerate", run_apis.SectionRegenerateApi.as_view(), name="canvas-section-regenerate"
    ),
    path(f"{D}/debug", run_apis.DebugApi.as_view(), name="canvas-debug"),
    path(f"{D}/reset", run_apis.ResetApi.as_view(), name="canvas-reset"),
    path(f"{D}/discourse/stream", run_streams.discourse_stream, name="canvas-discourse-stream"),
]
