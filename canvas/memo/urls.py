"""Routes of the memo: the template catalogue, the canvas of a deal, its sections and versions.

/api/canvas/templates is a literal path: canvas.urls routes it before /api/canvas/{deal_id}.
"""

from canvas.memo import viewsets
from deals.viewsets import DEAL_ID, ApiRouter

catalogue = ApiRouter()
catalogue.register("canvas/templates", viewsets.TemplateViewSet, basename="canvas-templates")

router = ApiRouter()
router.register("canvas", viewsets.CanvasViewSet, basename="canvas")
router.register(f"canvas/{DEAL_ID}/sections", viewsets.SectionViewSet, basename="canvas-sections")
router.register(f"canvas/{DEAL_ID}/versions", viewsets.VersionViewSet, basename="canvas-versions")

catalogue_urlpatterns = catalogue.urls
urlpatterns = router.urls
