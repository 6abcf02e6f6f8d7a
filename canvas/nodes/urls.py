"""Routes of canvas nodes under /api/canvas/{deal_id}/nodes. canvas.urls includes them."""

from canvas.nodes import viewsets
from deals.viewsets import DEAL_ID, ApiRouter

router = ApiRouter()
router.register(f"canvas/{DEAL_ID}/nodes", viewsets.NodeViewSet, basename="canvas-nodes")

urlpatterns = router.urls
