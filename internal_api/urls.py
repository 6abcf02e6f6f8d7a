"""Routes of the internal contract: GET /api/internal/canvas/context, POST /api/internal/canvas/mutations."""

from deals.viewsets import ApiRouter
from internal_api import viewsets

router = ApiRouter()
router.register("internal/canvas", viewsets.CanvasContractViewSet, basename="internal-canvas")

urlpatterns = router.urls
