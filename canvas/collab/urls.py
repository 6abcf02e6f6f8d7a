"""Routes of the collaboration endpoints: the steps authority, the collaboration mode, presence and section
locks. (The canvas event stream, an async view, is routed in canvas.urls.)"""

from canvas.collab import viewsets
from deals.viewsets import DEAL_ID, ApiRouter

router = ApiRouter()
# Only @action routes (collab, collab/steps, presence): the plain /api/canvas/{deal_id} is the memo's.
router.register("canvas", viewsets.CollabViewSet, basename="canvas")
# Only the lock action: the plain section route is the memo's SectionViewSet.
router.register(f"canvas/{DEAL_ID}/sections", viewsets.SectionLockViewSet, basename="canvas-sections")

urlpatterns = router.urls
