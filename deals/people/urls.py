"""Routes of people: /api/me, its password and invitations, an org's invitations, and accepting an invitation
with its code (included under /api/)."""

from deals.people import viewsets
from deals.urls import ORG_ID
from deals.viewsets import ApiRouter

router = ApiRouter()
router.register("me/invitations", viewsets.MyInvitationViewSet, basename="me-invitations")
router.register("me", viewsets.MeViewSet, basename="me")
router.register(f"orgs/{ORG_ID}/invitations", viewsets.OrgInvitationViewSet, basename="org-invitations")
router.register("invitations", viewsets.InvitationAcceptViewSet, basename="invitations")

urlpatterns = router.urls
