"""POST /api/v1/chat, POST /api/v1/chat/stream (SSE), GET /api/v1/threads?project_id=."""

from __future__ import annotations

import json

from asgiref.sync import sync_to_async
from django.http import HttpRequest, JsonResponse
from django.views.decorators.csrf import csrf_exempt
from drf_spectacular.utils import extend_schema
from rest_framework import serializers
from rest_framework.response import Response
from rest_framework.views import APIView

from canvas_project import ratelimit
from canvas_project.api.errors import domain_error_parts
from canvas_project.api.fields import StrictCharField
from canvas_project.api.schema import error_responses
from canvas_project.api.validation import (
    RequestValidationError,
    _validate,
    first_unstorable_text,
    parse_body,
    parse_query,
)
from canvas_project.errors import DomainError
from canvas_project.sse.responses import SseError, method_not_allowed, sse_response
from canvas_project.sse.schema import document_posted_stream
from deals.access import require_role, resolve_deal_access
from deals.models import DealRole
from deals.streams import authenticate
from internal_api import chat
from internal_api.models import ChatThread


class ChatInput(serializers.Serializer):
    message = StrictCharField(max_length=8000)
    project_id = serializers.UUIDField(help_text="The deal id.")
    agent_id = StrictCharField(max_length=64)
    thread_id = serializers.UUIDField(required=False, allow_null=True, help_text="Omit to start a new thread.")
    knowledge_search = serializers.BooleanField(default=True)
    attached_document_ids = serializers.ListField(child=serializers.UUIDField(), max_length=20, default=list)
    canvas_profile = serializers.DictField(required=False, allow_null=True)


class ChatMessageOutput(serializers.Serializer):
    role = serializers.CharField()
    content = serializers.CharField()


class ChatOutput(serializers.Serializer):
    thread_id = serializers.UUIDField()
    message = ChatMessageOutput()
    metadata = serializers.DictField(
        help_text="What was forwarded to the engine: knowledge_search, "
        "attached_document_ids, canvas_context {mode, summary, context_ref}, canvas_profile."
    )


class ThreadsQueryInput(serializers.Serializer):
    project_id = serializers.UUIDField()


class ThreadOutput(serializers.Serializer):
    id = serializers.UUIDField()
    agent_id = serializers.CharField()
    title = serializers.CharField()
    created_at = serializers.DateTimeField()
    updated_at = serializers.DateTimeField()


def _send(user, token, body: dict) -> dict:
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


class ChatApi(APIView):
    @extend_schema(
        operation_id="chat",
        summary="Ask the deal's engine (viewer of the project)",
        description="Creates a thread when thread_id is omitted. Counts against the shared 'generate' rate limit.",
        request=ChatInput,
        responses={200: ChatOutput, **error_responses(401, 403, 404, 422, 429, 503)},
        tags=["chat"],
    )
    def post(self, request):
        body = parse_body(ChatInput, request)
        return Response(_send(request.user, request.auth, body))


class ThreadsApi(APIView):
    @extend_schema(
        operation_id="chat_threads",
        summary="The caller's chat threads of a project",
        parameters=[ThreadsQueryInput],
        responses={200: ThreadOutput(many=True), **error_responses(401, 403, 404, 422)},
        tags=["chat"],
    )
    def get(self, request):
        query = parse_query(ThreadsQueryInput, request)
        access = resolve_deal_access(user=request.user, deal_id=query["project_id"], token=request.auth)
        threads = ChatThread.objects.filter(deal=access.deal, user=request.user).order_by("-updated_at")
        return Response(ThreadOutput(threads, many=True).data)


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
        result = await sync_to_async(_send)(user, token, body)
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
    }
)
