from django.urls import path

from internal_api import chat_apis

urlpatterns = [
    path("v1/chat", chat_apis.ChatApi.as_view(), name="chat"),
    path("v1/chat/stream", chat_apis.chat_stream, name="chat-stream"),
    path("v1/threads", chat_apis.ThreadsApi.as_view(), name="chat-threads"),
]
