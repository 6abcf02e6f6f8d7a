"""Bounded chat data (the hourly beat task `internal_api.sweep_chat_threads`).

A chat thread's history lives in the embedded engine's LangGraph checkpoints (thread `deal:<D>:chat:<id>`);
the latest checkpoint holds every message, so a thread quiet for CHAT_PRUNE_AFTER keeps only that one
(LangGraph's `prune(strategy="keep_latest")`). A thread idle CHAT_RETENTION_DAYS (its row's `updated_at`,
touched by every message) is deleted: the row and its checkpoints. Checkpoints whose row no longer exists
go too. The sweep pages through the checkpoint threads that exist.
"""

from __future__ import annotations

import logging
import uuid
from dataclasses import dataclass
from datetime import datetime, timedelta

from django.conf import settings
from django.utils import timezone

from canvas_project.store import checkpoint_threads_page, prune_threads, threads_with_history
from internal_api.models import ChatThread

logger = logging.getLogger(__name__)

CHAT_PRUNE_AFTER = timedelta(hours=1)


@dataclass
class ChatSweepResult:
    deleted: int = 0  # threads deleted (row and checkpoints)
    pruned: int = 0  # threads cut down to their latest checkpoint

    def __str__(self) -> str:
        return f"{self.deleted} chat threads deleted, {self.pruned} pruned to their latest checkpoint"


def _thread_id(langgraph_thread_id: str) -> uuid.UUID | None:
    try:
        return uuid.UUID(langgraph_thread_id.rsplit(":", 1)[1])
    except (IndexError, ValueError):
        return None


def chat_threads_sweep(*, now: datetime | None = None, batch: int | None = None) -> ChatSweepResult:
    now = now or timezone.now()
    batch = batch or settings.CHECKPOINT_SWEEP_BATCH
    cutoff = now - timedelta(days=settings.CHAT_RETENTION_DAYS)
    result = ChatSweepResult()
    # idle rows first (a row whose engine was external has no checkpoints at all)
    while idle := list(ChatThread.objects.filter(updated_at__lt=cutoff).order_by("updated_at")[:batch]):
        prune_threads([thread.langgraph_thread_id for thread in idle], keep_latest=False)
        ChatThread.objects.filter(pk__in=[thread.pk for thread in idle]).delete()
        result.deleted += len(idle)
    after = ""
    while page := checkpoint_threads_page("chat", after=after, limit=batch):
        after = page[-1]
        ids = {thread: _thread_id(thread) for thread in page}
        rows = {
            row.pk: row
            for row in ChatThread.objects.filter(pk__in=[i for i in ids.values() if i]).only(
                "pk", "deal_id", "updated_at"
            )
        }
        orphans, quiet = [], []
        for thread, row_id in ids.items():
            row = rows.get(row_id)
            if row is None or str(row.deal_id) not in thread:
                orphans.append(thread)
            elif row.updated_at < now - CHAT_PRUNE_AFTER:
                quiet.append(thread)
        prune_threads(orphans, keep_latest=False)
        result.deleted += len(orphans)
        for thread in threads_with_history(quiet):
            try:
                prune_threads([thread], keep_latest=True)
            except Exception:  # noqa: BLE001 - a message arrived meanwhile; the next sweep retries it
                logger.warning("pruning chat thread %s failed; retried at the next sweep", thread, exc_info=True)
                continue
            result.pruned += 1
    if result.deleted or result.pruned:
        logger.info("chat threads: %s", result)
    return result
