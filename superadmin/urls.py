"""Routes of the superadmin API: POST /api/superadmin/purge_deals, GET /api/superadmin/deals/{deal_id}/redis."""

from deals.viewsets import ApiRouter
from superadmin import viewsets

router = ApiRouter()
router.register("superadmin", viewsets.PurgeViewSet, basename="superadmin")
router.register("superadmin/deals", viewsets.DealRedisViewSet, basename="superadmin-deal")

urlpatterns = router.urls
