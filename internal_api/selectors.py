"""Read-only queries of the chat endpoints."""

from __future__ import annotations

from django.db.models import QuerySet

from deals.models import Deal, User
from internal_api.models import ChatThread


def chat_threads(*, deal: Deal, user: User) -> QuerySet[ChatThread]:
    """The user's own chat threads of a deal, the most recently active first."""
    return ChatThread.objects.filter(deal=deal, user=user).order_by("-updated_at", "-pk")


def chat_thread_of(*, user: User, thread_id) -> ChatThread | None:
    """The user's own chat thread with that id (None for another user's, or none)."""
    return ChatThread.objects.filter(pk=thread_id, user=user).first()
