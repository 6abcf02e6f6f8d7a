from django.urls import path

from canvas.collab import streams as sse
from canvas.collab import urls as collab_urls
from canvas.memo import urls as memo_urls
from canvas.nodes import urls as node_urls
from canvas.review import urls as review_urls

D = "canvas/<str:deal_id>"

urlpatterns = [
    *memo_urls.catalogue_urlpatterns,
    *review_urls.urlpatterns,
    path(f"{D}/events", sse.canvas_events, name="canvas-events"),
    *collab_urls.urlpatterns,
    *node_urls.urlpatterns,
    *memo_urls.urlpatterns,
]
