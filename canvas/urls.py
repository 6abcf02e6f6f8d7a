from django.urls import path

from canvas.collab import apis as collab_apis
from canvas.collab import streams as sse
from canvas.memo import apis
from canvas.nodes import apis as node_apis

D = "canvas/<str:deal_id>"

urlpatterns = [
    path("canvas/templates", apis.TemplateListApi.as_view(), name="canvas-templates"),
    path(D, apis.CanvasSessionApi.as_view(), name="canvas"),
    path(f"{D}/refresh", apis.CanvasRefreshApi.as_view(), name="canvas-refresh"),
    path(f"{D}/save", apis.CanvasSaveApi.as_view(), name="canvas-save"),
    path(f"{D}/sections/<str:key>", apis.SectionApi.as_view(), name="canvas-section"),
    path(f"{D}/approve", apis.CanvasApproveApi.as_view(), name="canvas-approve"),
    path(f"{D}/reopen", apis.CanvasReopenApi.as_view(), name="canvas-reopen"),
    path(f"{D}/sections/<str:key>/approve", apis.SectionApproveApi.as_view(), name="canvas-section-approve"),
    path(
        f"{D}/sections/<str:key>/conditions/<str:cid>/resolve",
        apis.ConditionResolveApi.as_view(),
        name="canvas-condition-resolve",
    ),
    path(f"{D}/feedback", apis.FeedbackApi.as_view(), name="canvas-feedback"),
    path(f"{D}/comments", apis.CommentCollectionApi.as_view(), name="canvas-comments"),
    path(f"{D}/comments/<str:comment_id>/resolve", apis.CommentResolveApi.as_view(), name="canvas-comment-resolve"),
    path(f"{D}/readiness", apis.ReadinessApi.as_view(), name="canvas-readiness"),
    path(f"{D}/progress", apis.ProgressApi.as_view(), name="canvas-progress"),
    path(f"{D}/versions", apis.VersionListApi.as_view(), name="canvas-versions"),
    path(f"{D}/versions/<str:n>", apis.VersionDetailApi.as_view(), name="canvas-version"),
    path(f"{D}/versions/<str:n>/diff", apis.VersionDiffApi.as_view(), name="canvas-version-diff"),
    path(f"{D}/versions/<str:n>/restore", apis.VersionRestoreApi.as_view(), name="canvas-version-restore"),
    path(f"{D}/export", apis.ExportApi.as_view(), name="canvas-export"),
    path(f"{D}/events", sse.canvas_events, name="canvas-events"),
    path(f"{D}/collab/steps", collab_apis.CollabStepsApi.as_view(), name="canvas-collab-steps"),
    path(f"{D}/collab", collab_apis.CollabModeApi.as_view(), name="canvas-collab"),
    path(f"{D}/presence", collab_apis.PresenceApi.as_view(), name="canvas-presence"),
    path(f"{D}/sections/<str:key>/lock", collab_apis.SectionLockApi.as_view(), name="canvas-section-lock"),
    path(f"{D}/nodes", node_apis.NodeCollectionApi.as_view(), name="canvas-nodes"),
    path(f"{D}/nodes/<str:node_id>", node_apis.NodeDetailApi.as_view(), name="canvas-node"),
    path(f"{D}/nodes/<str:node_id>/links", node_apis.NodeLinksApi.as_view(), name="canvas-node-links"),
]
