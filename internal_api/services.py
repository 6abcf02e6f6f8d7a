"""Services of the internal contract's mutations and of chat."""

from __future__ import annotations

import hashlib
import json

from django.db import IntegrityError, transaction

from canvas.nodes import services as canvas_nodes
from canvas.review.services import suggestion_create
from canvas_project import ratelimit
from canvas_project.errors import DomainError, StoreUnavailable
from deals.access import DealAccessContext, require_role, resolve_deal_access
from deals.errors import DealNotFound
from deals.models import DealRole, User
from internal_api import chat, selectors
from internal_api import context as context_service
from internal_api.errors import ContractBadRequest
from internal_api.models import ChatThread, IdempotencyRecord


# --- the internal contract: POST /api/internal/canvas/mutations ----------------------------------------
def _canonical_hash(body: object) -> str:
    return hashlib.sha256(json.dumps(body, sort_keys=True, separators=(",", ":")).encode()).hexdigest()


def canvas_mutations_apply(
    *,
    access: DealAccessContext,
    thread: ChatThread,
    user: User,
    scope: str,
    key: str,
    body: dict,
    raw_body: object,
) -> tuple[int, dict]:
    """Apply an engine's mutations once per (scope, Idempotency-Key): (status, response body).

    The first call with a key applies the mutations and records the answer; a repeat with the same body
    (hashed canonically from `raw_body`) answers that record with meta.replayed = true; a repeat with
    another body, or while the first is still running, is refused (ContractBadRequest). A failure deletes
    the record so the engine may retry with the same key."""
    request_hash = _canonical_hash(raw_body)
    try:
        with transaction.atomic():
            record = IdempotencyRecord.objects.create(
                scope=scope, key=key, request_hash=request_hash, status_code=0, response={}
            )
    except IntegrityError:
        return _replay(scope, key, request_hash)
    try:
        results = [
            _apply(access, thread, user, body["agent_id"], index, mutation)
            for index, mutation in enumerate(body["mutations"])
        ]
    except Exception:
        record.delete()  # nothing to replay: the engine may retry with the same key
        raise
    summary, revision = context_service.canvas_summary(access.deal)
    response = {
        "success": True,
        "data": {"results": results},
        "meta": {
            "revision": revision,
            "contractVersion": context_service.CONTRACT_VERSION,
            "idempotencyKey": key,
            "replayed": False,
        },
    }
    record.status_code, record.response = 200, response
    record.save(update_fields=["status_code", "response"])
    return 200, response


def _replay(scope: str, key: str, request_hash: str) -> tuple[int, dict]:
    record = IdempotencyRecord.objects.get(scope=scope, key=key)
    if record.request_hash != request_hash:
        raise ContractBadRequest("idempotency_key_reused", "This Idempotency-Key was used with another body.")
    if record.status_code == 0:
        raise ContractBadRequest(
            "idempotency_key_in_progress",
            "A request with this Idempotency-Key is still being processed; retry shortly.",
        )
    replayed = {**record.response, "meta": {**record.response["meta"], "replayed": True}}
    return record.status_code, replayed


def _apply(access, thread, user, agent_id: str, index: int, mutation: dict) -> dict:
    deal = access.deal
    prefix = ["body", "mutations", index]
    try:
        if mutation["op"] == "create_node":
            spec = mutation["node"]
            node = canvas_nodes.node_create(
                deal=deal,
                actor_id=str(user.pk),
                agent_id=agent_id,
                thread_id=str(thread.pk),
                loc_prefix=[*prefix, "node"],
                **spec,
            )
            return {"op": "create_node", "node_id": node["id"]}
        if mutation["op"] == "create_suggestion":
            spec = mutation["suggestion"]
            suggestion = suggestion_create(deal=deal, user=user, **spec)
            return {"op": "create_suggestion", "node_id": f"suggestion:{suggestion.pk}"}
        edge = canvas_nodes.link_create(
            deal=deal,
            actor_id=str(user.pk),
            source=mutation["source"],
            target=mutation["target"],
            edge_type=mutation["type"],
            loc_prefix=prefix,
        )
        return {"op": "link", "from": edge["from"], "to": edge["to"], "type": edge["type"]}
    except StoreUnavailable:
        raise
    except DomainError as exc:
        where = ".".join(str(p) for p in getattr(exc, "loc", prefix))
        raise ContractBadRequest(exc.code, f"mutation {index} ({where}): {exc.message}") from None


# --- chat: POST /api/v1/chat and its SSE twin POST /api/v1/chat/stream ----------------------------------
def chat_thread_messages(*, user, token, thread_id) -> dict:
    """The caller's own chat thread with its messages (oldest first). Raises ThreadNotFound for another user's
    thread, an unknown one, and one of a deal the caller no longer reaches (or a deal-scoped token's other deal)."""
    thread = selectors.chat_thread_of(user=user, thread_id=thread_id)
    if thread is None:
        raise chat.ThreadNotFound("No chat thread of yours has this id.")
    try:
        resolve_deal_access(user=user, deal_id=thread.deal_id, token=token)
    except DealNotFound:
        raise chat.ThreadNotFound("No chat thread of yours has this id.") from None
    return {
        "id": thread.pk,
        "project_id": thread.deal_id,
        "agent_id": thread.agent_id,
        "title": thread.title,
        "created_at": thread.created_at,
        "updated_at": thread.updated_at,
        "messages": chat.thread_messages(thread),
    }


def chat_ask(*, user, token, body: dict) -> dict:
    """Ask the deal's engine for a viewer of the deal of `body["project_id"]` (404 for strangers), counted
    against the caller's shared 'generate' rate limit."""
    access = resolve_deal_access(user=user, deal_id=body["project_id"], token=token)
    require_role(access, DealRole.VIEWER)
    ratelimit.consume(ratelimit.generate_bucket(), user.pk)
    return chat.chat_send(
        deal=access.deal,
        user=user,
        message=body["message"],
        agent_id=body["agent_id"],
        thread_id=body.get("thread_id"),
        knowledge_search=body["knowledge_search"],
        attached_document_ids=body["attached_document_ids"],
        canvas_profile=body.get("canvas_profile"),
    )
