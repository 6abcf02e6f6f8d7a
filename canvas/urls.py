from django.urls import path

from canvas.collab import streams as sse
from canvas.collab import urls as collab_urls
from canvas.memo import urls as memo_urls
from canvas.nodes import apis as node_apis
from canvas.review import apis as review_apis

D = "canvas/<str:deal_id>"

urlpatterns = [
    *memo_urls.catalogue_urlpatterns,
    path(f"{D}/sections/<str:key>/approve", review_apis.SectionApproveApi.as_view(), name="canvas-section-approve"),
    path(
        f"{D}/sections/<str:key>/conditions/<str:cid>/resolve",
        review_apis.ConditionResolveApi.as_view(),
        name="canvas-condition-resolve",
    ),
    path(f"{D}/feedback", review_apis.FeedbackApi.as_view(), name="canvas-feedback"),
    path(f"{D}/comments", review_apis.CommentCollectionApi.as_view(), name="canvas-comments"),
    path(
        f"{D}/comments/<str:comment_id>/resolve", review_apis.CommentResolveApi.as_view(), name="canvas-comment-resolve"
    ),
    path(f"{D}/events", sse.canvas_events, name="canvas-events"),
    *collab_urls.urlpatterns,
    path(f"{D}/nodes", node_apis.NodeCollectionApi.as_view(), name="canvas-nodes"),
    path(f"{D}/nodes/<str:node_id>", node_apis.NodeDetailApi.as_view(), name="canvas-node"),
    path(f"{D}/nodes/<str:node_id>/links", node_apis.NodeLinksApi.as_view(), name="canvas-node-links"),
    *memo_urls.urlpatterns,
]
