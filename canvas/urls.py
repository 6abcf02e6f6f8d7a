from django.urls import path

from canvas import apis

urlpatterns = [
    path("canvas/templates", apis.TemplateListApi.as_view(), name="canvas-templates"),
]
