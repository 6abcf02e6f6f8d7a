"""Routes of API keys (included under /api/): /api/auth/api-keys and /api/auth/api-keys/{id}."""

from deals.apikeys import viewsets
from deals.viewsets import ApiRouter

router = ApiRouter()
router.register("auth/api-keys", viewsets.ApiKeyViewSet, basename="api-keys")

urlpatterns = router.urls
