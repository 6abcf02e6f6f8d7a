"""Routes of documents, deal intel and the intake summary of a deal (included under /api/)."""

from deals.documents import viewsets
from deals.viewsets import DEAL_ID, ApiRouter

router = ApiRouter()
router.register(f"deals/{DEAL_ID}/documents", viewsets.DocumentViewSet, basename="deal-documents")
# /intel and /intake are actions on the deal: named deal-intel and deal-intake
router.register("deals", viewsets.DealIntelViewSet, basename="deal")

urlpatterns = router.urls
