from django.urls import path

from canvas.review import apis as suggestion_apis

D = "canvas/<str:deal_id>"

urlpatterns = [
    path(f"{D}/suggestions", suggestion_apis.SuggestionCollectionApi.as_view(), name="canvas-suggestions"),
    path(
        f"{D}/suggestions/<str:suggestion_id>/accept",
        suggestion_apis.SuggestionAcceptApi.as_view(),
        name="canvas-suggestion-accept",
    ),
    path(
        f"{D}/suggestions/<str:suggestion_id>/reject",
        suggestion_apis.SuggestionRejectApi.as_view(),
        name="canvas-suggestion-reject",
    ),
]
