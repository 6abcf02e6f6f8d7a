"""Chat with an engine about a deal: the context push of the internal canvas-context contract.

Every chat call builds the metadata the contract describes (knowledge_search, attached_document_ids,
canvas_context {mode: summary, summary, context_ref {project_id, thread_id, agent_id, revision}},
canvas_profile) and sends it to the engine: an external engine at ENGINE_URL (with the internal
headers) when configured, else the embedded engine, a LangGraph graph that answers offline from the
canvas. Like an engine of the contract it starts from the pushed summary and pulls the context (through
the same service as the internal endpoint, at most CHAT_CONTEXT_MAX_NODES nodes with their content) only
when the question asks about something the counts cannot answer. History lives in LangGraph checkpoints
on thread `deal:<D>:chat:<thread>`.
"""

from __future__ import annotations

import json
import logging
import operator
import re
import uuid
from typing import Annotated, TypedDict

import httpx
from django.conf import settings
from django.db import transaction
from langgraph.graph import END, START, StateGraph

from canvas_project.errors import DependencyUnavailableError, InvalidInputError, NotFoundError, StoreUnavailable
from canvas_project.store import STORE_ERRORS, get_checkpointer
from deals.models import Deal, Document, User
from internal_api import context as context_service
from internal_api.models import ChatThread

logger = logging.getLogger(__name__)
WORD_RE = re.compile(r"[a-z0-9]{3,}")
DETAIL_WORDS = {"detail", "details", "quote", "exact", "full", "text", "section", "says", "wording"}
# Words of a question the pushed summary answers by itself (counts by type and status) and words that carry no
# subject: a question made only of these is answered without pulling the context.
SUMMARY_WORDS = {
    "how", "many", "much", "number", "count", "total", "items", "item", "nodes", "node", "canvas", "memo",
    "status", "state", "approved", "approve", "rejected", "reject", "pending", "open", "overall", "summary",
    "progress", "hello", "thanks", "thank", "you", "what", "are", "the", "and", "there", "have", "has", "this",
    "that", "for", "our", "now", "its", "does", "any", "all", "can", "tell", "give", "show", "please",
}  # fmt: skip
# The embedded engine's pull: the first nodes of the listing (sections first), with content; a bounded page,
# never the whole canvas.
CHAT_CONTEXT_MAX_NODES = context_service.DEFAULT_MAX_NODES


class ThreadNotFound(NotFoundError):
    code = "thread_not_found"
    default_message = "This chat thread does not exist for you on this project."


def thread_for(*, deal: Deal, user: User, thread_id: uuid.UUID | None, agent_id: str, first_message: str) -> ChatThread:
    """The caller's thread of the deal, or a new one. Raises ThreadNotFound."""
    if thread_id is None:
        return ChatThread.objects.create(deal=deal, user=user, agent_id=agent_id, title=first_message[:80])
    thread = ChatThread.objects.filter(pk=thread_id, deal=deal, user=user).first()
    if thread is None:
        raise ThreadNotFound()
    return thread


def _check_documents(deal: Deal, document_ids: list[uuid.UUID]) -> list[str]:

    found = set(Document.objects.filter(deal=deal, pk__in=document_ids).values_list("pk", flat=True))
    for index, document_id in enumerate(document_ids):
        if document_id not in found:
            raise InvalidInputError(
                "No document of this project has this id.",
                loc=["body", "attached_document_ids", index],
                value=str(document_id),
            )
    return [str(d) for d in document_ids]


def build_metadata(
    *,
    deal: Deal,
    thread: ChatThread,
    agent_id: str,
    knowledge_search: bool,
    attached_document_ids: list[uuid.UUID],
    canvas_profile: dict | None,
) -> dict:
    """The metadata pushed with every chat call, exactly as the contract shapes it."""
    summary, revision = context_service.canvas_summary(deal)
    return {
        "knowledge_search": knowledge_search,
        "attached_document_ids": _check_documents(deal, attached_document_ids),
        "canvas_context": {
            "mode": "summary",
            "summary": summary,
            "context_ref": {
                "project_id": str(deal.pk),
                "thread_id": str(thread.pk),
                "agent_id": agent_id,
                "revision": revision,
            },
        },
        "canvas_profile": canvas_profile if canvas_profile is not None else {},
    }


# --- the embedded engine ---------------------------------------------------------------------------------
class ChatState(TypedDict):
    messages: Annotated[list[dict], operator.add]
    project_id: str
    metadata: dict


def _terms(text: str) -> set[str]:
    return set(WORD_RE.findall(text.lower()))


def needs_context(question: str, summary: dict) -> bool:
    """Whether the pushed summary cannot answer the question: it names something beyond counts and statuses,
    and the canvas has nodes to look in."""
    return summary["nodeCount"] > 0 and bool(_terms(question) - SUMMARY_WORDS)


def _answer(state: ChatState) -> dict:
    question = state["messages"][-1]["content"]
    summary = state["metadata"]["canvas_context"]["summary"]
    deal = Deal.objects.get(pk=state["project_id"])  # read now: the context cache is validated by its counters
    terms = _terms(question)
    lines = [
        f"The canvas of {deal.name} has {summary['nodeCount']} items "
        f"({summary['byStatus']['approve']} approved, {summary['byStatus']['reject']} rejected, "
        f"{summary['byStatus']['pending']} pending)."
    ]
    full = []
    if needs_context(question, summary):  # as an engine of the contract would: pull a bounded page, with content
        full = context_service.canvas_context(deal=deal, max_nodes=CHAT_CONTEXT_MAX_NODES, include_content=True)[
            "data"
        ]["canvas_context"]["nodes"]
    wants_detail = bool(full) and (bool(terms & DETAIL_WORDS) or any(_terms(n["title"]) & terms for n in full))
    if wants_detail:
        scored = sorted(
            ((len(_terms(n["title"] + " " + n.get("content", "")) & terms), n) for n in full), key=lambda pair: -pair[0]
        )
        relevant = [n for score, n in scored if score > 0 and (n.get("content") or "").strip()][:3]
        for node in relevant:
            excerpt = " ".join(node["content"].split())[:400]
            lines.append(f"{node['title']} ({node['type']}, {node['status']}): {excerpt}")
        if not relevant:
            lines.append("Nothing in the canvas matches that question yet.")
    history = len([m for m in state["messages"] if m["role"] == "user"])
    if history > 1:
        lines.append(f"(This is message {history} of our conversation.)")
    return {"messages": [{"role": "assistant", "content": "\n\n".join(lines)}]}


def embedded_engine():
    graph = StateGraph(ChatState)
    graph.add_node("answer", _answer)
    graph.add_edge(START, "answer")
    graph.add_edge("answer", END)
    return graph.compile(checkpointer=get_checkpointer())


def _external_engine(*, user: User, thread: ChatThread, agent_id: str, message: str, metadata: dict) -> str:
    """POST the message to ENGINE_URL/chat and return the engine's answer text.

    Raises DependencyUnavailableError (503) when the engine cannot be reached, times out, redirects,
    answers non-2xx, sends more than ENGINE_MAX_RESPONSE_BYTES, or answers anything but a JSON object
    with a message text (see _engine_answer_text).
    """
    headers = {
        "Authorization": f"Bearer {settings.INTERNAL_ENGINE_TOKENS[0]}" if settings.INTERNAL_ENGINE_TOKENS else "",
        "X-Contract-Version": context_service.CONTRACT_VERSION,
        "X-User-Id": str(user.pk),
        "X-Project-Id": str(thread.deal_id),
        "X-Thread-Id": str(thread.pk),
    }
    body = {
        "message": message,
        "agent_id": agent_id,
        "project_id": str(thread.deal_id),
        "thread_id": str(thread.pk),
        "metadata": metadata,
    }
    limit = settings.ENGINE_MAX_RESPONSE_BYTES
    try:
        with httpx.stream(
            "POST",
            settings.ENGINE_URL.rstrip("/") + "/chat",
            json=body,
            headers=headers,
            timeout=settings.ENGINE_TIMEOUT_SECONDS,
        ) as response:
            response.raise_for_status()
            raw = _read_at_most(response, limit)
        payload = json.loads(raw)
    except (httpx.HTTPError, ValueError, RecursionError) as exc:  # RecursionError: JSON nested too deep
        logger.warning("engine call failed: %s", exc.__class__.__name__)
        raise DependencyUnavailableError("the engine", "The AI engine is unavailable; try again shortly.") from exc
    except _EngineAnswerTooLarge:
        logger.warning("engine answer refused: more than %d bytes", limit)
        raise DependencyUnavailableError(
            "the engine", f"The AI engine's answer was larger than {limit} bytes."
        ) from None
    return _engine_answer_text(payload)


class _EngineAnswerTooLarge(Exception):
    pass


def _read_at_most(response: httpx.Response, limit: int) -> bytes:
    """The response body, read in chunks so that an oversized one is never held whole in memory.
    Raises _EngineAnswerTooLarge past `limit` bytes (or when Content-Length already says so)."""
    declared = response.headers.get("Content-Length", "")
    if declared.isdigit() and int(declared) > limit:
        raise _EngineAnswerTooLarge()
    chunks: list[bytes] = []
    size = 0
    for chunk in response.iter_bytes():
        size += len(chunk)
        if size > limit:
            raise _EngineAnswerTooLarge()
        chunks.append(chunk)
    return b"".join(chunks)


def _engine_answer_text(payload: object) -> str:
    """The text of an engine's answer: `{"content": "..."}` or `{"message": {"content": "..."}}`.

    Raises DependencyUnavailableError for anything else (a list, a bare string, `message` that is not an
    object, content that is not a non-empty string): an engine's answer is untrusted input, and a
    malformed one must not become a 500 or reach the client.
    """
    content = None
    if isinstance(payload, dict):
        content = payload.get("content")
        message = payload.get("message")
        if not (isinstance(content, str) and content) and isinstance(message, dict):
            content = message.get("content")
    if not (isinstance(content, str) and content):
        raise DependencyUnavailableError("the engine", "The AI engine answered without a message.")
    return content


def chat_send(
    *,
    deal: Deal,
    user: User,
    message: str,
    agent_id: str,
    thread_id: uuid.UUID | None,
    knowledge_search: bool,
    attached_document_ids: list[uuid.UUID],
    canvas_profile: dict | None,
) -> dict:
    """Send one message; returns {thread_id, message: {role, content}, metadata}.

    Raises ThreadNotFound, InvalidInputError (attached documents), DependencyUnavailableError
    (external engine), StoreUnavailable.
    """
    with transaction.atomic():
        thread = thread_for(deal=deal, user=user, thread_id=thread_id, agent_id=agent_id, first_message=message)
    metadata = build_metadata(
        deal=deal,
        thread=thread,
        agent_id=agent_id,
        knowledge_search=knowledge_search,
        attached_document_ids=attached_document_ids,
        canvas_profile=canvas_profile,
    )
    if settings.ENGINE_URL:
        content = _external_engine(user=user, thread=thread, agent_id=agent_id, message=message, metadata=metadata)
    else:
        result = embedded_engine().invoke(
            {"messages": [{"role": "user", "content": message}], "project_id": str(deal.pk), "metadata": metadata},
            config={"configurable": {"thread_id": thread.langgraph_thread_id}},
        )
        content = result["messages"][-1]["content"]
    thread.save(update_fields=["updated_at"])
    return {"thread_id": str(thread.pk), "message": {"role": "assistant", "content": content}, "metadata": metadata}


def thread_messages(thread: ChatThread) -> list[dict]:
    """The thread's messages, oldest first, as [{role: user|assistant, content}]: the embedded engine's
    history in its LangGraph checkpoints. A thread an external engine (ENGINE_URL) answered has none here:
    that engine keeps its own history. Raises StoreUnavailable."""
    try:
        snapshot = embedded_engine().get_state({"configurable": {"thread_id": thread.langgraph_thread_id}})
    except STORE_ERRORS:
        raise StoreUnavailable("The chat history (PostgreSQL) is unavailable; try again shortly.") from None
    return [
        {"role": str(message.get("role", "")), "content": str(message.get("content", ""))}
        for message in (snapshot.values or {}).get("messages") or []
        if isinstance(message, dict)
    ]
