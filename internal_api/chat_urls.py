"""Routes of chat: POST /api/v1/chat, POST /api/v1/chat/stream (the async SSE view), GET /api/v1/threads and
GET /api/v1/threads/{thread_id}/messages."""

from django.urls import path

from deals.viewsets import ApiRouter
from internal_api import streams, viewsets

router = ApiRouter()
router.register("v1/chat", viewsets.ChatViewSet, basename="chat")
router.register("v1/threads", viewsets.ThreadViewSet, basename="chat-threads")

urlpatterns = [
    path("v1/chat/stream", streams.chat_stream, name="chat-stream"),
    *router.urls,
]
