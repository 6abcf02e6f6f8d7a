"""Synthesis routes: generate, runs (and their streams), regenerate, debug, reset, discourse, prompts.

/api/canvas/prompts is a literal path: it must be routed before /api/canvas/{deal_id} (this module is
included before canvas.urls, and the catalogue comes first in it).
"""

from django.urls import path

from canvas.runs import streams as run_streams
from canvas.runs import viewsets
from deals.viewsets import DEAL_ID, ApiRouter

D = "canvas/<str:deal_id>"

catalogue = ApiRouter()
catalogue.register("canvas/prompts", viewsets.PromptViewSet, basename="canvas-prompts")

router = ApiRouter()
# Only @action routes (generate, debug, reset): the plain /api/canvas/{deal_id} is the memo's CanvasViewSet.
router.register("canvas", viewsets.DraftingViewSet, basename="canvas")
router.register(f"canvas/{DEAL_ID}/runs", viewsets.RunViewSet, basename="canvas-runs")
# Only the regenerate action: the plain section route is the memo's SectionViewSet.
router.register(f"canvas/{DEAL_ID}/sections", viewsets.SectionDraftingViewSet, basename="canvas-sections")

urlpatterns = [
    *catalogue.urls,
    *router.urls,
    path(f"{D}/runs/<str:run_id>/stream", run_streams.run_stream, name="canvas-run-stream"),
    path(f"{D}/discourse/stream", run_streams.discourse_stream, name="canvas-discourse-stream"),
]
