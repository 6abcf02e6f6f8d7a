"""Routes of the orgs' webhook secrets (included under /api/): /api/orgs/{org_id}/webhook-secret."""

from deals.urls import ORG_ID
from deals.viewsets import ApiRouter
from deals.webhooks import viewsets

router = ApiRouter()
router.register(f"orgs/{ORG_ID}/webhook-secret", viewsets.OrgWebhookSecretViewSet, basename="org-webhook-secret")

urlpatterns = router.urls
