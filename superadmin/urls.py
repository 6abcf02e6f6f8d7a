from django.urls import path

from superadmin import apis

urlpatterns = [
    path("superadmin/purge_deals", apis.PurgeDealsApi.as_view(), name="superadmin-purge-deals"),
    path(
        "superadmin/deals/<str:deal_id>/redis",
        apis.DealRedisFootprintApi.as_view(),
        name="superadmin-deal-redis",
    ),
]
