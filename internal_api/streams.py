"""POST /api/v1/chat/stream: the chat call answered as server-sent events (an async view, canvas_project.sse).

POST /api/v1/chat and GET /api/v1/threads are internal_api.viewsets.ChatViewSet and ThreadViewSet; this
view asks through the same service (internal_api.services.chat_ask) with the same body (ChatInput).
"""

from __future__ import annotations

import json

from asgiref.sync import sync_to_async
from django.http import HttpRequest, JsonResponse
from django.views.decorators.csrf import csrf_exempt

from canvas_project.api.errors import domain_error_parts
from canvas_project.api.validation import RequestValidationError, _validate, first_unstorable_text
from canvas_project.errors import DomainError
from canvas_project.sse.responses import SseError, method_not_allowed, sse_response
from canvas_project.sse.schema import document_posted_stream, payload
from deals.streams import authenticate
from internal_api.serializers import ChatInput
from internal_api.services import chat_ask


def _json_error(exc: DomainError) -> JsonResponse:
    code, body, headers = domain_error_parts(exc)
    return JsonResponse(body, status=code, headers=headers)


def _chunks(text: str, size: int = 24):
    words = text.split(" ")
    for start in range(0, len(words), size):
        yield " ".join(words[start : start + size]) + (" " if start + size < len(words) else "")


@csrf_exempt  # bearer-token API, no cookies: CSRF does not apply (DRF's views are exempt the same way)
async def chat_stream(request: HttpRequest):
    """POST /api/v1/chat/stream: the same call as /chat, answered as SSE: `message` events carry deltas,
    then `message_end` (thread_id, whole message, metadata) and `done`."""
    if request.method != "POST":
        return method_not_allowed(request, "POST")
    try:
        user, token = await sync_to_async(authenticate)(request)
    except SseError as exc:
        return exc.response
    try:
        raw = json.loads(request.body or b"null")
        problem = first_unstorable_text(raw)
        if problem:
            raise ValueError(problem)
    except ValueError as exc:
        return JsonResponse(
            {
                "detail": [
                    {
                        "loc": ["body"],
                        "msg": f"Malformed request body: {exc}",
                        "type": "json_invalid",
                        "input": None,
                        "ctx": {},
                    }
                ]
            },
            status=422,
        )
    try:
        body = _validate(ChatInput, raw, "body", None)
        result = await sync_to_async(chat_ask)(user=user, token=token, body=body)
    except RequestValidationError as exc:
        return JsonResponse({"detail": exc.items}, status=422)
    except DomainError as exc:
        return _json_error(exc)

    async def events():
        content = result["message"]["content"]
        for index, delta in enumerate(_chunks(content)):
            yield f"id: {index}\nevent: message\ndata: {json.dumps({'delta': delta})}\n\n"
        yield f"event: message_end\ndata: {json.dumps(result)}\n\n"
        yield "event: done\ndata: {}\n\n"

    return sse_response(events())


document_posted_stream(
    **{
        "path": "/api/v1/chat/stream",
        "operation_id": "chat_stream",
        "summary": "Ask the deal's engine, answered as server-sent events",
        "description": "Body as POST /api/v1/chat. Events: `message` {delta} (repeated), `message_end` "
        "{thread_id, message, metadata}, `done`.",
        "tag": "chat",
        "method": "post",
        "request": "ChatInputRequest",
        "prefix": "ChatStreamEvent",
        "events": {
            "message": payload("A text delta of the answer.", {"delta": {"type": "string"}}),
            "message_end": payload(
                "The whole answer, as POST /api/v1/chat answers it.",
                {"thread_id": {"type": "string"}, "message": {"type": "object"}, "metadata": {"type": "object"}},
            ),
            "done": payload("The last event; the response ends after it.", {}),
        },
    }
)
