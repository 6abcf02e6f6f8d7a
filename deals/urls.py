from django.urls import path

from deals import apis, auth_apis

urlpatterns = [
    path("auth/token", auth_apis.TokenObtainApi.as_view(), name="auth-token"),
    path("auth/token/refresh", auth_apis.TokenRefreshApi.as_view(), name="auth-token-refresh"),
    path("auth/token/verify", auth_apis.TokenVerifyApi.as_view(), name="auth-token-verify"),
    path("auth/token/deal", auth_apis.DealTokenApi.as_view(), name="auth-token-deal"),
    path("orgs", apis.OrgCollectionApi.as_view(), name="orgs"),
    path("orgs/<str:org_id>/members", apis.OrgMembersApi.as_view(), name="org-members"),
    path("orgs/<str:org_id>/members/<str:user_id>", apis.OrgMemberDetailApi.as_view(), name="org-member"),
    path("dashboard/memos", apis.DashboardMemosApi.as_view(), name="dashboard-memos"),
    path("canvas/blank", apis.BlankCanvasApi.as_view(), name="canvas-blank"),
    path("deals", apis.DealCollectionApi.as_view(), name="deals"),
    path("deals/batch_delete", apis.DealBatchDeleteApi.as_view(), name="deals-batch-delete"),
    path("deals/<str:deal_id>", apis.DealDetailApi.as_view(), name="deal"),
    path("deals/<str:deal_id>/access", apis.DealAccessCollectionApi.as_view(), name="deal-access"),
    path("deals/<str:deal_id>/access/<str:user_id>", apis.DealAccessDetailApi.as_view(), name="deal-access-detail"),
]
