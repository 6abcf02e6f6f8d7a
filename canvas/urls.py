from django.urls import path

from canvas.collab import apis as collab_apis
from canvas.collab import streams as sse
from canvas.memo import urls as memo_urls
from canvas.nodes import urls as node_urls
from canvas.review import urls as review_urls

D = "canvas/<str:deal_id>"

urlpatterns = [
    *memo_urls.catalogue_urlpatterns,
    *review_urls.urlpatterns,
    path(f"{D}/events", sse.canvas_events, name="canvas-events"),
    path(f"{D}/collab/steps", collab_apis.CollabStepsApi.as_view(), name="canvas-collab-steps"),
    path(f"{D}/collab", collab_apis.CollabModeApi.as_view(), name="canvas-collab"),
    path(f"{D}/presence", collab_apis.PresenceApi.as_view(), name="canvas-presence"),
    path(f"{D}/sections/<str:key>/lock", collab_apis.SectionLockApi.as_view(), name="canvas-section-lock"),
    *node_urls.urlpatterns,
    *memo_urls.urlpatterns,
]
