"""Figures cropped from PDFs, and the digitization cache: Redis only, rebuilt by re-ingesting.

Crop keys are `image_crop_key(deal, document, n)` for n = 0..count-1 (at most MAX_CROPS_PER_DOCUMENT),
bytes with a 24 h TTL; the digitization cache is JSON under `digitization_key(deal, document)` for 7 d.
Both are variable keys, so each is recorded in the deal's index in the pipeline that writes it (the
purge finds them without a scan). Deleting a document removes every possible crop index, so nothing
depends on the cache to know how many crops there were.
"""

from __future__ import annotations

import io
import json
import logging
from datetime import UTC, datetime

from canvas_project import keys
from canvas_project.redis_client import get_redis, pipeline_unlink
from deals.documents.ingestion.digitize import MAX_CROPS_PER_DOCUMENT, Digitized
from deals.documents.ingestion.intel import REDIS_ERRORS

logger = logging.getLogger(__name__)


def digitization_payload(*, document, digitized: Digitized) -> dict:
    return {
        "document_id": str(document.pk),
        "filename": document.filename,
        "kind": document.kind,
        "sha256": document.sha256,
        "pages": [{"page": p.number, "label": p.label, "text": p.text} for p in digitized.pages],
        "crops": [
            {
                "index": index,
                "page": crop.page,
                "name": crop.name,
                "format": crop.image_format,
                "width": crop.width,
                "height": crop.height,
                "bytes": len(crop.data),
            }
            for index, crop in enumerate(digitized.crops)
        ],
        "digitized_at": datetime.now(UTC).isoformat(),
    }


def digitization_cache_write(*, document, digitized: Digitized) -> bool:
    """Write the digitization cache and the crops of a document in one pipeline. False when Redis is down."""
    deal_id, doc_id = document.deal_id, document.pk
    try:
        pipe = get_redis().pipeline(transaction=False)
        key = keys.digitization_key(deal_id, doc_id)
        pipe.set(
            key, json.dumps(digitization_payload(document=document, digitized=digitized)), ex=keys.DIGITIZATION_TTL
        )
        keys.track_variable_key(pipe, deal_id, key)
        # A re-ingest may find fewer figures than before: drop the old tail first.
        stale = [keys.image_crop_key(deal_id, doc_id, n) for n in range(len(digitized.crops), MAX_CROPS_PER_DOCUMENT)]
        if stale:
            pipeline_unlink(pipe, *stale)
        for index, crop in enumerate(digitized.crops[:MAX_CROPS_PER_DOCUMENT]):
            crop_key = keys.image_crop_key(deal_id, doc_id, index)
            pipe.set(crop_key, crop.data, ex=keys.IMAGE_CROP_TTL)
            keys.track_variable_key(pipe, deal_id, crop_key)
        pipe.execute()
        return True
    except REDIS_ERRORS as exc:
        logger.warning("digitization cache of %s not written (%s)", doc_id, exc.__class__.__name__)
        return False


def document_keys(*, deal_id, document_id) -> list[str]:
    """Every Redis key a document of the deal can own (digitization cache and every crop index)."""
    return [
        keys.digitization_key(deal_id, document_id),
        *(keys.image_crop_key(deal_id, document_id, n) for n in range(MAX_CROPS_PER_DOCUMENT)),
    ]


def document_keys_delete(*, deal_id, document_id) -> int | None:
    """Unlink a document's keys and drop them from the deal's index.

    Returns how many keys existed, or None when Redis is down."""
    names = document_keys(deal_id=deal_id, document_id=document_id)
    try:
        pipe = get_redis().pipeline(transaction=False)
        pipeline_unlink(pipe, *names)
        pipe.srem(keys.index_key(deal_id), *names)
        removed, _ = pipe.execute()
        return int(removed)
    except REDIS_ERRORS as exc:
        logger.warning("keys of document %s not deleted (%s)", document_id, exc.__class__.__name__)
        return None


def digitization_cache_get(*, deal_id, document_id) -> dict | None:
    try:
        raw = get_redis().get(keys.digitization_key(deal_id, document_id))
    except REDIS_ERRORS:
        return None
    return json.loads(raw) if raw else None


def crop_get(*, deal_id, document_id, index: int) -> bytes | None:
    try:
        return get_redis().get(keys.image_crop_key(deal_id, document_id, index))
    except REDIS_ERRORS:
        return None


# --- the figures API: these raise REDIS_ERRORS (the caller answers 503, not "expired") -----------------------
def figures_read(*, deal_id, document_id) -> tuple[dict | None, list[bool]]:
    """(the digitization cache or None, whether each of its crops is still in Redis), in one round trip."""
    client = get_redis()
    raw = client.get(keys.digitization_key(deal_id, document_id))
    cache = json.loads(raw) if raw else None
    crops = (cache or {}).get("crops") or []
    if not crops:
        return cache, []
    pipe = client.pipeline(transaction=False)
    for crop in crops:
        pipe.exists(keys.image_crop_key(deal_id, document_id, int(crop["index"])))
    return cache, [bool(found) for found in pipe.execute()]


def figure_read(*, deal_id, document_id, index: int) -> tuple[bytes | None, dict | None]:
    """(the crop's bytes or None, the digitization cache or None), in one round trip."""
    pipe = get_redis().pipeline(transaction=False)
    pipe.get(keys.image_crop_key(deal_id, document_id, index))
    pipe.get(keys.digitization_key(deal_id, document_id))
    data, raw = pipe.execute()
    return data, (json.loads(raw) if raw else None)


PNG_SIGNATURE = b"\x89PNG\r\n\x1a\n"


def as_png(data: bytes) -> bytes:
    """The image as PNG: PNG crops as they are, the others (JPEG, JPEG 2000, TIFF...) re-encoded.
    Raises ValueError when the bytes do not decode."""
    if data.startswith(PNG_SIGNATURE):
        return data
    # lazy: Pillow is only needed by the rare non-PNG figure; web processes that never serve one skip it
    from PIL import Image

    try:
        with Image.open(io.BytesIO(data)) as image:
            image.load()
            if image.mode not in ("1", "L", "LA", "P", "RGB", "RGBA", "I", "I;16"):
                image = image.convert("RGBA" if "A" in image.getbands() else "RGB")
            out = io.BytesIO()
            image.save(out, format="PNG")
    except Exception as exc:  # Pillow raises many kinds for bad or unsupported data
        raise ValueError(f"undecodable image ({exc.__class__.__name__})") from exc
    return out.getvalue()
