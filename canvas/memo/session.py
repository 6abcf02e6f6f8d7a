"""The canvas session payload (CanvasSessionResponse) and its Redis cache `canvas:session:{D}`.

The cached payload holds only what is the same for every caller; `user_role` and the `can_*` flags
are added per request. A cached payload is valid only while its `version` equals the deal row's
`memo_version`, which the caller's access check has already read, so validating costs nothing and a
cache left stale by a lost write or a Redis outage is never served. Writes to the cache go through a
Lua script that refuses to replace a newer version with an older one.

The cache holds the payload already serialized: `<version>\n<header JSON>\n<body JSON>`. The header
carries the few fields the role-dependent flags need; the body is sent as it is, with the per-request
fields spliced in, so a cached GET neither parses nor re-renders the memo (bench/canvas_get).
"""

from __future__ import annotations

import hashlib
import logging
from collections.abc import Mapping
from typing import Any

import orjson
import redis
from django.conf import settings

from canvas.memo import markdown
from canvas.memo.types import Memo, Section
from canvas_project import keys
from canvas_project.api.conditional import strong_etag
from canvas_project.redis_client import LuaScript, get_redis
from deals.documents.intel import document_ids_by_filename
from deals.models import Deal, DealRole, role_rank

logger = logging.getLogger(__name__)
REDIS_ERRORS = (redis.exceptions.ConnectionError, redis.exceptions.TimeoutError)

# KEYS[1] session key; ARGV[1] the encoded payload; ARGV[2] its version; ARGV[3] TTL seconds.
_SET_IF_NOT_OLDER = LuaScript("""
local current = redis.call('GET', KEYS[1])
if current then
  local cached = tonumber(string.match(current, '^(%d+)\\n'))
  if cached and cached > tonumber(ARGV[2]) then
    return 0
  end
end
redis.call('SET', KEYS[1], ARGV[1], 'EX', tonumber(ARGV[3]))
return 1
""")


def section_view(section: Section, documents: Mapping[str, str]) -> dict[str, Any]:
    """A section as the API shows it (CanvasSectionOutput): the writer's display name as `updated_by`,
    their id as `updated_by_id`, each citation's `document_id` from `documents` (document_ids_by_filename)."""
    return {
        "key": section.key,
        "title": section.title,
        "order": section.order,
        "required": section.required,
        "custom": section.custom,
        "state": str(section.state),
        "markdown": section.markdown,
        "source": str(section.source) if section.source is not None else None,
        "updated_at": section.updated_at,
        "updated_by": section.updated_by_name,
        "updated_by_id": section.updated_by,
        "delivery": str(section.delivery),
        "citations": markdown.with_document_ids(section.citations, documents),
    }


def deal_section_view(deal: Deal, section: Section) -> dict[str, Any]:
    """section_view of one section of the deal's memo (one query for the deal's document names)."""
    return section_view(section, document_ids_by_filename(deal_id=deal.pk))


def build_payload(*, deal: Deal, memo: Memo, readiness: dict, run_in_progress: bool) -> dict[str, Any]:
    """The role-independent part of the session."""
    documents = document_ids_by_filename(deal_id=deal.pk)
    sections = {section.key: section_view(section, documents) for section in memo.ordered_sections()}
    populated = memo.populated_keys()
    return {
        "deal_id": str(deal.pk),
        "deal_name": deal.name,
        "created_at": memo.created_at,
        "document_state": str(memo.state),
        "markdown_content": memo.markdown(),
        "version": memo.version,
        "last_modified_by": memo.last_modified_by,
        "last_modified_at": memo.last_modified_at,
        "sections": sections,
        "is_blank": memo.is_blank,
        "collab_enabled": deal.collab_enabled,
        "incomplete_delivery_blocked": incomplete_delivery_blocked(memo),
        "template_key": memo.template.key,
        "readiness": {"score": readiness["score"], "grade": readiness["grade"]},
        "progress": {"populated": len(populated), "total": len(sections)},
        "approval_versions": list(memo.approval_versions),
        "run_in_progress": run_in_progress,
    }


def incomplete_delivery_blocked(memo: Memo) -> bool:
    """The latest run left required sections undelivered, and one of them is still empty."""
    missing = (memo.last_run or {}).get("missing_required") or []
    return any(not (key in memo.sections and memo.sections[key].populated) for key in missing)


def with_role(payload: dict[str, Any], *, deal: Deal, role: str, warning: str | None) -> dict[str, Any]:
    """The payload for one caller: fresh deal settings, role-dependent flags, the degradation warning."""
    return {**payload, **role_fields(payload, deal=deal, role=role, warning=warning)}


def can_finalize(payload: dict[str, Any], role: str) -> bool:
    return (
        role == DealRole.OWNER
        and payload["document_state"] == "editing"
        and not payload["is_blank"]
        and not payload["incomplete_delivery_blocked"]
        and payload["readiness"]["score"] >= settings.CANVAS_READINESS_GATE
    )


def can_export(payload: dict[str, Any], role: str) -> bool:
    return (
        not payload["is_blank"]
        and not payload["incomplete_delivery_blocked"]
        and (role_rank(role) >= role_rank(DealRole.EDITOR) or payload["document_state"] == "approved")
    )


# Fields that come from the deal row or the caller on every request, never from the cache.
PER_REQUEST_FIELDS = (
    "deal_name",
    "collab_enabled",
    "user_role",
    "can_finalize",
    "can_export",
    "can_edit",
    "can_comment",
    "initialization_warning",
)
HEADER_FIELDS = ("version", "document_state", "is_blank", "incomplete_delivery_blocked", "readiness", "run_in_progress")


def body_digest(body: bytes) -> str:
    """A digest of the role-independent body, kept in the cache entry's header so that an ETag costs no
    hashing of the memo on the cached path."""
    return hashlib.blake2b(body, digest_size=16).hexdigest()


def encode(payload: dict[str, Any]) -> tuple[dict[str, Any], bytes, bytes]:
    """(header, body bytes, the cache value) of a role-independent payload."""
    header = {name: payload[name] for name in HEADER_FIELDS}
    body = orjson.dumps({k: v for k, v in payload.items() if k not in PER_REQUEST_FIELDS})
    header["digest"] = body_digest(body)
    return header, body, b"%d\n" % payload["version"] + orjson.dumps(header) + b"\n" + body


def role_fields(header: dict[str, Any], *, deal: Deal, role: str, warning: str | None) -> dict[str, Any]:
    if warning is None and header.get("run_in_progress"):
        warning = "A drafting run is in progress; sections will appear as they are written."
    return {
        "deal_name": deal.name,
        "collab_enabled": deal.collab_enabled,
        "user_role": role,
        "can_finalize": can_finalize(header, role),
        "can_export": can_export(header, role),
        "can_edit": role_rank(role) >= role_rank(DealRole.EDITOR) and header["document_state"] != "approved",
        "can_comment": role_rank(role) >= role_rank(DealRole.COMMENTER),
        "initialization_warning": warning,
    }


def respond_bytes(header: dict[str, Any], body: bytes, *, deal: Deal, role: str, warning: str | None) -> bytes:
    """The JSON response: the cached body with the per-request fields spliced in before its last brace."""
    return respond_tagged(header, body, deal=deal, role=role, warning=warning)[0]


def respond_tagged(
    header: dict[str, Any], body: bytes, *, deal: Deal, role: str, warning: str | None
) -> tuple[bytes, str]:
    """(the JSON response, its strong ETag). The response is exactly `body` and the per-request fields,
    so the tag digests those two: the body's digest (from the cache entry) and the per-request bytes."""
    extra = orjson.dumps(role_fields(header, deal=deal, role=role, warning=warning))
    digest = header.get("digest") or body_digest(body)
    etag = strong_etag(digest.encode(), extra, version=header["version"])
    return body[:-1] + b"," + extra[1:], etag


def cache_get_raw(deal: Deal) -> tuple[dict[str, Any], bytes] | None:
    """(header, body) of the cached payload when it matches the deal's version. Raises redis errors."""
    raw = get_redis().get(keys.session_key(deal.pk))
    if raw is None:
        return None
    try:
        version, header, body = raw.split(b"\n", 2)
        if int(version) != deal.memo_version:
            return None
        return orjson.loads(header), body
    except ValueError:
        return None


def cache_get(deal: Deal) -> dict[str, Any] | None:
    """The cached payload (parsed) when it matches the deal's current version. Raises redis errors."""
    found = cache_get_raw(deal)
    return orjson.loads(found[1]) if found else None


def cache_put(payload: dict[str, Any]) -> bool:
    """Cache the payload unless a newer version is cached. Raises redis errors."""
    _header, _body, value = encode(payload)
    return cache_put_encoded(payload["deal_id"], payload["version"], value)


def cache_put_encoded(deal_id, version: int, value: bytes) -> bool:
    return bool(_SET_IF_NOT_OLDER([keys.session_key(deal_id)], [value, version, settings.CANVAS_SESSION_TTL_SECONDS]))


def cache_drop(deal_id) -> None:
    """Forget the cached session and readiness of the deal. Raises redis errors."""
    get_redis().unlink(keys.session_key(deal_id), keys.readiness_key(deal_id))


def cache_drop_quietly(deal_id) -> None:
    """cache_drop, with Redis down only logged: the cache is validated against the deal row's version,
    so an entry left behind is never served."""
    try:
        cache_drop(deal_id)
    except REDIS_ERRORS:
        logger.warning("could not drop the cached session of deal %s: Redis unavailable", deal_id)
