"""Writes of deal documents: upload, delete, ingestion and the stuck-ingestion sweeper.

Upload stores the file through Django's default storage (local MEDIA_ROOT unless STORAGES points the
default at S3 through django-storages), records the row as `queued` and enqueues ingestion once the
transaction commits. Ingestion (`document_ingest`, run by the Celery task) takes the row to
`processing`, digitizes outside any transaction, then writes the pages and `ready` in one
transaction, or `failed` with a human reason; the Redis caches (digitization, crops, deal intel,
intake summary) follow after the commit.
"""

from __future__ import annotations

import hashlib
import logging
import os
import re
import time
import unicodedata
from datetime import timedelta

from django.conf import settings
from django.core.files.storage import default_storage
from django.db import transaction
from django.utils import timezone

from canvas_project import keys
from canvas_project.celery import app as celery_app
from canvas_project.errors import DependencyUnavailableError, PayloadTooLargeError
from canvas_project.redis_client import get_redis
from deals.documents.errors import DigitizationError
from deals.documents.ingestion.crops import digitization_cache_write, document_keys_delete
from deals.documents.ingestion.digitize import Digitized, digitize
from deals.documents.ingestion.intake import intake_summary_refresh
from deals.documents.ingestion.intel import (
    REDIS_ERRORS,
    deal_intel_compute,
    deal_intel_invalidate,
    deal_intel_replace,
)
from deals.documents.ingestion.sniff import sniff_document
from deals.models import Deal, Document, DocumentPage, FileState

logger = logging.getLogger(__name__)
INGEST_TASK = "deals.ingest_document"  # deals.documents.tasks.ingest_document, enqueued by name

STALL_AFTER = timedelta(minutes=20)
STALL_REASON = "ingestion stalled for more than 20 minutes"


def document_max_bytes() -> int:
    return int(settings.DOCUMENT_MAX_BYTES)


def too_large_error(size: int | None = None) -> PayloadTooLargeError:
    limit = document_max_bytes()
    got = f" ({size:,} bytes)" if size is not None else ""
    return PayloadTooLargeError(f"The file is too large{got}; the limit is {limit:,} bytes.", max_bytes=limit)


def clean_filename(name: str) -> str:
    """The last path segment, without control characters, at most 255 characters (extension kept)."""
    name = os.path.basename((name or "").replace("\\", "/"))
    name = "".join(ch for ch in unicodedata.normalize("NFC", name) if unicodedata.category(ch)[0] != "C")
    name = re.sub(r"\s+", " ", name).strip(" .") or "document"
    if len(name) > 255:
        stem, dot, ext = name.rpartition(".")
        name = (stem[: 254 - len(ext)] + dot + ext) if dot and len(ext) < 16 else name[:255]
    return name


def _sha256(upload) -> str:
    digest = hashlib.sha256()
    upload.seek(0)
    for chunk in upload.chunks():
        digest.update(chunk)
    upload.seek(0)
    return digest.hexdigest()


def document_upload(*, deal: Deal, user, upload) -> Document:
    """Store an uploaded file and queue its ingestion.

    Raises PayloadTooLargeError beyond DOCUMENT_MAX_BYTES, UnsupportedDocumentType when the content is
    not a PDF, XLSX, DOCX or UTF-8 CSV/TXT/MD, DependencyUnavailableError when the storage fails.
    """
    if upload.size > document_max_bytes():
        raise too_large_error(upload.size)
    filename = clean_filename(upload.name)
    sniffed = sniff_document(upload, filename)
    sha256 = _sha256(upload)
    document = Document(
        deal=deal,
        filename=filename,
        content_type=sniffed.content_type,
        kind=sniffed.kind,
        size=upload.size,
        sha256=sha256,
        state=FileState.QUEUED,
        uploaded_by=user,
    )
    # The storage may rename on collision (or S3 may normalise); the row keeps the name it got.
    try:
        document.file.save(filename, upload, save=False)
    except OSError as exc:  # a full disk, or an unreachable bucket (boto errors subclass OSError too)
        logger.warning("storing %s failed: %s", filename, exc.__class__.__name__)
        raise DependencyUnavailableError("File storage") from exc
    try:
        with transaction.atomic():
            document.save(force_insert=True)
            transaction.on_commit(lambda: _enqueue_ingestion(document.pk))
            transaction.on_commit(lambda: canvas_session_drop(deal_id=deal.pk))
    except Exception:
        default_storage.delete(document.file.name)
        raise
    return document


def _enqueue_ingestion(document_id) -> None:
    try:
        celery_app.send_task(INGEST_TASK, args=[str(document_id)])
    except Exception:  # noqa: BLE001 - the broker is down: the row stays queued; requeue_lost_ingestions retries
        # Raising here (an on_commit callback) used to answer 500 for an upload already committed.
        logger.exception("could not enqueue the ingestion of document %s; the sweeper will retry", document_id)


def document_delete(*, document: Document) -> None:
    """Delete the row, its pages, its stored file and its Redis keys; refresh the deal's intel and intake."""
    deal = document.deal
    name = document.file.name
    with transaction.atomic():
        Document.objects.filter(pk=document.pk).delete()

        def after_commit() -> None:
            try:
                default_storage.delete(name)
            except OSError:
                logger.warning("stored file %s of document %s not deleted", name, document.pk, exc_info=True)
            document_keys_delete(deal_id=deal.pk, document_id=document.pk)
            _deal_caches_refresh(deal=deal)

        transaction.on_commit(after_commit)


def canvas_session_drop(*, deal_id) -> None:
    """Drop the deal's cached canvas session (rebuilt from the Store at its next read). Its citations name
    their documents by id (canvas.memo.session, resolved by filename through document_ids_by_filename), so a
    document added, deleted or changing state may change what they link to."""
    try:
        get_redis().unlink(keys.session_key(deal_id))
    except REDIS_ERRORS as exc:
        logger.warning("canvas session of deal %s not dropped (%s)", deal_id, exc.__class__.__name__)


def _deal_caches_refresh(*, deal: Deal) -> None:
    """A document of the deal changed: drop intel, then rebuild the intake summary (which recomputes it), and
    drop the canvas session."""
    deal_intel_invalidate(deal_id=deal.pk)
    canvas_session_drop(deal_id=deal.pk)
    try:
        intake_summary_refresh(deal=deal)
    except Exception:  # the caches are derivable; a failure here must not fail the write that caused it
        logger.exception("intake summary of deal %s not refreshed", deal.pk)


# --- ingestion ------------------------------------------------------------------------------------
def fail_stuck_ingestions(*, now=None) -> int:
    """Mark documents processing for more than 20 minutes as failed; returns how many."""
    now = now or timezone.now()
    stuck = Document.objects.filter(state=FileState.PROCESSING, processing_started_at__lt=now - STALL_AFTER)
    deal_ids = set(stuck.values_list("deal_id", flat=True))
    count = stuck.update(state=FileState.FAILED, error=STALL_REASON, processed_at=now, updated_at=now)
    if count:
        logger.warning("failed %s stalled ingestion(s)", count)
        for deal in Deal.objects.filter(pk__in=deal_ids):
            _deal_caches_refresh(deal=deal)
    return count


def requeue_lost_ingestions(*, now=None) -> int:
    """Enqueue again the documents queued for more than 20 minutes (their message was lost: the broker
    was down at upload, or was restarted empty); returns how many. A duplicate message is harmless: the
    first claims the row, the second finds it claimed or done."""
    now = now or timezone.now()
    lost = list(
        Document.objects.filter(state=FileState.QUEUED, updated_at__lt=now - STALL_AFTER).values_list("pk", flat=True)
    )
    for document_id in lost:
        _enqueue_ingestion(document_id)
    if lost:
        logger.warning("re-enqueued %s ingestion(s) queued for more than 20 minutes", len(lost))
    return len(lost)


def _claim(document_id) -> Document | None:
    with transaction.atomic():
        document = Document.objects.select_for_update().select_related("deal").filter(pk=document_id).first()
        # queued: the normal case; processing: a redelivery after a worker died mid-ingest (acks_late).
        if document is None or document.state not in (FileState.QUEUED, FileState.PROCESSING):
            return None
        document.state = FileState.PROCESSING
        document.processing_started_at = timezone.now()
        document.error = ""
        document.save(update_fields=["state", "processing_started_at", "error", "updated_at"])
    return document


def _read_file(document: Document) -> bytes:
    try:
        with default_storage.open(document.file.name, "rb") as handle:
            return handle.read()
    except (OSError, ValueError) as exc:
        raise DigitizationError("The stored file could not be read; upload it again.") from exc


def _finish(document: Document, *, digitized: Digitized | None, error: str = "") -> bool:
    """Write the outcome; False when the document was deleted meanwhile."""
    with transaction.atomic():
        current = Document.objects.select_for_update().filter(pk=document.pk).first()
        if current is None:
            return False
        if digitized is not None:
            DocumentPage.objects.filter(document=current).delete()
            DocumentPage.objects.bulk_create(
                [
                    DocumentPage(
                        document=current, deal_id=current.deal_id, page_number=p.number, label=p.label, text=p.text
                    )
                    for p in digitized.pages
                ],
                batch_size=500,
            )
            current.state, current.pages, current.error = FileState.READY, len(digitized.pages), ""
        else:
            current.state, current.error = FileState.FAILED, error
        current.processed_at = timezone.now()
        current.save(update_fields=["state", "pages", "error", "processed_at", "updated_at"])
        # computed inside the transaction (it sees the new pages) and cached as it commits: a client that sees
        # the document ready reads intel that includes it, not the previous cache until a later refresh
        intel = deal_intel_compute(deal_id=current.deal_id)
        transaction.on_commit(lambda: deal_intel_replace(deal_id=current.deal_id, intel=intel))
    document.state, document.pages, document.error = current.state, current.pages, current.error
    return True


def document_ingest(*, document_id) -> Document | None:
    """Digitize a queued document into pages, then refresh the deal's caches. Never raises for a bad file:
    the document ends `failed` with a human reason. Returns None when there was nothing to do."""
    fail_stuck_ingestions()
    document = _claim(document_id)
    if document is None:
        return None
    started = time.perf_counter()
    digitized: Digitized | None = None
    error = ""
    try:
        digitized = digitize(document.kind, _read_file(document))
    except DigitizationError as exc:
        error = str(exc)
    except MemoryError:
        error = "The document is too complex to digitize."
    except Exception as exc:  # a parser bug must fail this document, not leave it processing
        logger.exception("digitizing document %s failed", document.pk)
        error = f"The document could not be digitized ({exc.__class__.__name__})."
    if not _finish(document, digitized=digitized, error=error):
        document_keys_delete(deal_id=document.deal_id, document_id=document.pk)
        return None
    if digitized is not None:
        digitization_cache_write(document=document, digitized=digitized)
        if not Document.objects.filter(pk=document.pk).exists():
            # Deleted between the commit and the cache write: its delete already ran, so undo ours.
            document_keys_delete(deal_id=document.deal_id, document_id=document.pk)
    canvas_session_drop(deal_id=document.deal_id)
    try:
        intake_summary_refresh(deal=document.deal)
    except Exception:
        logger.exception("intake summary of deal %s not refreshed", document.deal_id)
    logger.info(
        "ingested document %s (%s, %s pages) in %.2fs: %s",
        document.pk,
        document.kind,
        document.pages,
        time.perf_counter() - started,
        document.state,
    )
    return document


def document_fail(*, document_id, reason: str) -> None:
    """Mark a document failed with `reason` (the task hit its time limit)."""
    document = Document.objects.select_related("deal").filter(pk=document_id).first()
    if document is not None and _finish(document, digitized=None, error=reason):
        _deal_caches_refresh(deal=document.deal)


def document_reingest(*, document: Document) -> Document:
    """Queue a document for ingestion again (after a parser fix, a stalled run, or to crop its figures again
    once their 24 h in Redis are over); returns it as it is now (`queued`)."""
    with transaction.atomic():
        Document.objects.filter(pk=document.pk).update(state=FileState.QUEUED, error="", updated_at=timezone.now())
        transaction.on_commit(lambda: _enqueue_ingestion(document.pk))
        transaction.on_commit(lambda: canvas_session_drop(deal_id=document.deal_id))
    document.refresh_from_db()
    return document


def deal_document_files_delete(*, deal: Deal) -> None:
    """Delete the stored files of every document of a deal once the surrounding transaction commits.

    For the deal deletion service: the rows go by cascade, the files would stay behind in storage.
    """
    names = list(Document.objects.filter(deal=deal).values_list("file", flat=True))

    def after_commit() -> None:
        for name in names:
            try:
                default_storage.delete(name)
            except OSError:
                logger.warning("stored file %s of deal %s not deleted", name, deal.pk, exc_info=True)

    transaction.on_commit(after_commit)
