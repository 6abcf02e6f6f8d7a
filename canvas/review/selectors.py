"""Reads of the review: comment threads and suggestions."""

from __future__ import annotations

import uuid

from django.db.models import QuerySet

from canvas.memo.store import read_memo
from canvas.memo.types import Memo
from canvas.models import Comment, Suggestion, SuggestionStatus
from canvas.review.suggestions import anchor_matches
from canvas_project.errors import StoreUnavailable
from canvas_project.replicas import replica_reads
from deals.models import Deal


def comments_of_deal(*, deal: Deal, section_key: str | None, resolved: bool | None) -> QuerySet[Comment]:
    """The deal's comment threads, from a replica when usable (canvas_project.replicas)."""
    comments = (
        replica_reads(Comment.objects)
        .filter(deal=deal, parent=None)
        .select_related("author", "resolved_by")
        .prefetch_related("replies__author")
        .order_by("created_at", "pk")
    )
    if section_key:
        comments = comments.filter(section_key=section_key)
    if resolved is not None:
        comments = comments.filter(resolved=resolved)
    return comments


def _read_memo_quietly(deal: Deal) -> Memo | None:
    try:
        return read_memo(deal.pk)
    except StoreUnavailable:
        return None


def suggestion_list(
    *, deal: Deal, status: str | None = None, section_key: str | None = None, author_id: uuid.UUID | None = None
) -> QuerySet[Suggestion]:
    """The deal's suggestions, newest first; mark a page of them with `with_anchor_matches`."""
    queryset: QuerySet[Suggestion] = (
        Suggestion.objects.filter(deal=deal).select_related("author", "decided_by").order_by("-created_at", "-pk")
    )
    if status:
        queryset = queryset.filter(status=status)
    if section_key:
        queryset = queryset.filter(section_key=section_key)
    if author_id:
        queryset = queryset.filter(author_id=author_id)
    return queryset


def with_anchor_matches(*, deal: Deal, suggestions: list[Suggestion]) -> list[Suggestion]:
    """The suggestions, each pending one marked with whether it still applies (`anchor_matches`; None when
    the Store cannot be read)."""
    memo = _read_memo_quietly(deal) if any(s.status == SuggestionStatus.PENDING for s in suggestions) else None
    for suggestion in suggestions:
        suggestion.anchor_matches = anchor_matches(suggestion, memo)
    return suggestions
