"""Routes of the deals app: tokens, orgs and their members, the dashboard, the blank canvas, deals and
their sharing (included under /api/).

/api/canvas/blank is a literal path: the project's URLconf includes these routes before canvas's
/api/canvas/{deal_id}. /api/deals/batch_delete is routed before /api/deals/{deal_id}.
"""

from deals import viewsets
from deals.viewsets import DEAL_ID, ApiRouter

ORG_ID = r"(?P<org_id>[^/]+)"

router = ApiRouter()
router.register("auth", viewsets.AuthViewSet, basename="auth")
router.register("orgs", viewsets.OrgViewSet, basename="orgs")
router.register(f"orgs/{ORG_ID}/members", viewsets.OrgMemberViewSet, basename="org-members")
router.register("dashboard/memos", viewsets.DashboardViewSet, basename="dashboard-memos")
router.register("canvas/blank", viewsets.BlankCanvasViewSet, basename="canvas-blank")
router.register("deals", viewsets.DealCollectionViewSet, basename="deals")
router.register("deals", viewsets.DealViewSet, basename="deal")
router.register(f"deals/{DEAL_ID}/access", viewsets.DealAccessViewSet, basename="deal-access")

urlpatterns = router.urls
