from django.urls import path

from internal_api import apis

urlpatterns = [
    path("internal/canvas/context", apis.CanvasContextApi.as_view(), name="internal-canvas-context"),
    path("internal/canvas/mutations", apis.CanvasMutationsApi.as_view(), name="internal-canvas-mutations"),
]
