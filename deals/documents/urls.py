"""Documents, deal intel and the intake summary of a deal (included under /api/)."""

from django.urls import path

from deals.documents import apis

urlpatterns = [
    path("deals/<str:deal_id>/documents", apis.DocumentCollectionApi.as_view(), name="deal-documents"),
    path("deals/<str:deal_id>/documents/<str:doc_id>", apis.DocumentDetailApi.as_view(), name="deal-document"),
    path(
        "deals/<str:deal_id>/documents/<str:doc_id>/download",
        apis.DocumentDownloadApi.as_view(),
        name="deal-document-download",
    ),
    path("deals/<str:deal_id>/intel", apis.DealIntelApi.as_view(), name="deal-intel"),
    path("deals/<str:deal_id>/intake", apis.DealIntakeApi.as_view(), name="deal-intake"),
]
