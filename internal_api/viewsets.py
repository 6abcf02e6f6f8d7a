"""The internal contract for AI engines, to the letter (docs/architecture.md, "Internal canvas-context
contract"), and the chat endpoints.

The contract (`ContractViewSet`, `CanvasContractViewSet`):
- 401: missing or invalid internal token (Authorization: Bearer <INTERNAL_ENGINE_TOKEN>).
- 400: contract version mismatch, missing or malformed trusted claims (X-User-Id, X-Project-Id,
  X-Thread-Id) or query parameters.
- 403: the claims' scope and the query's scope differ, the thread is not of that deal, or the user
  has no access to the deal.
- 500: a real failure, in the contract's envelope with no internals.
Errors always read {"success": false, "error": {"code", "message"}}.

Chat (`ChatViewSet`, `ThreadViewSet`): a user's bearer token, scoped to the deal named by `project_id` in
the body or query (not the URL), so they are not DealScopedViewSets. The SSE view POST /api/v1/chat/stream
stays an async function view (internal_api.streams.chat_stream).
"""

from __future__ import annotations

import logging
import re
import uuid

from drf_spectacular.utils import OpenApiParameter, OpenApiResponse, OpenApiTypes, extend_schema
from rest_framework import viewsets
from rest_framework.decorators import action
from rest_framework.exceptions import MethodNotAllowed, ParseError, UnsupportedMediaType
from rest_framework.permissions import AllowAny, IsAuthenticated
from rest_framework.response import Response

from canvas_project.api.conditional import CONDITIONAL_READ_PARAMS, NOT_MODIFIED, conditional_body, fast_json
from canvas_project.api.engine_auth import bearer_token, engine_token_matches
from canvas_project.api.pagination import page_of, paginate
from canvas_project.api.schema import error_responses
from canvas_project.api.validation import RequestValidationError, _validate, parse_body, parse_path_uuid, parse_query
from canvas_project.errors import DependencyUnavailableError, DomainError
from deals.access import DealAccessContext, require_role, resolve_deal_access
from deals.authentication import BearerJWTAuthentication
from deals.models import DealRole, User
from internal_api import context as context_service
from internal_api import selectors, services
from internal_api.errors import (
    ContractBadRequest,
    ContractError,
    ContractForbidden,
    ContractUnauthorized,
    envelope,
)
from internal_api.models import ChatThread
from internal_api.serializers import (
    ChatInput,
    ChatOutput,
    ContextQueryInput,
    ContextResponseOutput,
    ContractErrorOutput,
    MutationsInput,
    MutationsResponseOutput,
    ThreadMessagesOutput,
    ThreadOutput,
    ThreadsQueryInput,
)

logger = logging.getLogger(__name__)
THREAD_ID_PARAM = OpenApiParameter(
    "thread_id", OpenApiTypes.UUID, OpenApiParameter.PATH, description="The chat thread's id (`thread_id` of /chat)."
)
CLAIM_HEADERS = {"user": "X-User-Id", "project": "X-Project-Id", "thread": "X-Thread-Id"}
HEADER_PARAMS = [
    OpenApiParameter(
        "X-Contract-Version",
        str,
        OpenApiParameter.HEADER,
        required=True,
        enum=list(context_service.SUPPORTED_VERSIONS),
        description=f"Must be {context_service.CONTRACT_VERSION}.",
    ),
    OpenApiParameter("X-User-Id", OpenApiTypes.UUID, OpenApiParameter.HEADER, required=True),
    OpenApiParameter(
        "X-Project-Id", OpenApiTypes.UUID, OpenApiParameter.HEADER, required=True, description="The deal id."
    ),
    OpenApiParameter(
        "X-Thread-Id",
        OpenApiTypes.UUID,
        OpenApiParameter.HEADER,
        required=True,
        description="A chat thread of that deal.",
    ),
]
CONTRACT_ERRORS = {
    400: OpenApiResponse(
        ContractErrorOutput, description="Contract version mismatch, missing trusted claims or malformed parameters."
    ),
    401: OpenApiResponse(ContractErrorOutput, description="Missing or invalid internal token."),
    403: OpenApiResponse(
        ContractErrorOutput,
        description="Claims and query scope differ, the thread is not of the deal, or the user has no access.",
    ),
    500: OpenApiResponse(ContractErrorOutput, description="Internal failure (no internals disclosed)."),
}

IDEMPOTENCY_KEY_RE = re.compile(r"^[!-~]{1,200}$")


class TrustedClaims:
    def __init__(self, user_id: uuid.UUID, project_id: uuid.UUID, thread_id: uuid.UUID) -> None:
        self.user_id, self.project_id, self.thread_id = user_id, project_id, thread_id


class ContractViewSet(viewsets.ViewSet):
    """Base of the internal contract's viewsets: no DRF authentication (the engine token is checked by
    `trusted_claims`, first thing in every action, in constant time), and every error, DRF's included,
    answered in the contract's envelope with the contract's statuses."""

    authentication_classes: list = []
    permission_classes = [AllowAny]

    def handle_exception(self, exc):
        if isinstance(exc, ContractError):
            return Response(envelope(exc.code, exc.message), status=exc.status)
        if isinstance(exc, ParseError | UnsupportedMediaType):
            # a body that is not JSON, or holds text PostgreSQL cannot store (NUL): bad input, the contract's 400
            return Response(envelope("invalid_body", f"The body could not be read: {exc.detail}"), status=400)
        if isinstance(exc, MethodNotAllowed):
            return Response(
                envelope("method_not_allowed", str(exc.detail)),
                status=405,
                headers={"Allow": ", ".join(self.allowed_methods)},
            )
        if isinstance(exc, DependencyUnavailableError):
            # the contract knows 401, 400, 403 and 500: a store or Redis outage is the service's failure, not the
            # engine's bad input, so it is a 500 that names the dependency (retry later)
            return Response(envelope("dependency_unavailable", f"{exc.message}"), status=500)
        if isinstance(exc, DomainError):
            return Response(envelope(exc.code, exc.message), status=400)
        logger.error("internal contract failure: %s", exc.__class__.__name__, exc_info=exc)
        return Response(envelope("internal_error", "An internal error occurred."), status=500)

    # -- the checks every contract call makes, in the contract's order --------------------------------
    def trusted_claims(self, request) -> TrustedClaims:
        token = bearer_token(request)
        if token is None:
            raise ContractUnauthorized("missing_token", "The internal engine token is missing.")
        if not engine_token_matches(token):
            raise ContractUnauthorized("invalid_token", "The internal engine token is invalid.")
        version = request.headers.get("X-Contract-Version")
        if version not in context_service.SUPPORTED_VERSIONS:
            raise ContractBadRequest(
                "contract_version_mismatch",
                f"X-Contract-Version {version!r} is not supported; supported: "
                + ", ".join(context_service.SUPPORTED_VERSIONS)
                + ".",
            )
        values = {}
        for name, header in CLAIM_HEADERS.items():
            raw = request.headers.get(header)
            if not raw:
                raise ContractBadRequest("missing_claim", f"The trusted claim {header} is missing.")
            try:
                values[name] = uuid.UUID(raw)
            except ValueError:
                raise ContractBadRequest("invalid_claim", f"The trusted claim {header} is not a UUID.") from None
        return TrustedClaims(values["user"], values["project"], values["thread"])

    def scoped_access(
        self, claims: TrustedClaims, *, project_id: uuid.UUID, thread_id: uuid.UUID, minimum: str = DealRole.VIEWER
    ) -> tuple[DealAccessContext, ChatThread, User]:
        if claims.project_id != project_id or claims.thread_id != thread_id:
            raise ContractForbidden("scope_mismatch", "The trusted claims and the query name different scopes.")
        user = User.objects.filter(pk=claims.user_id, is_active=True).first()
        if user is None:
            raise ContractForbidden("no_access", "The user has no access to this project.")
        try:
            access = resolve_deal_access(user=user, deal_id=project_id)
            require_role(access, minimum)
        except DomainError:
            raise ContractForbidden("no_access", "The user has no access to this project.") from None
        thread = ChatThread.objects.filter(pk=thread_id, deal_id=project_id).first()
        if thread is None:
            raise ContractForbidden("thread_scope", "The thread is not a thread of this project.")
        return access, thread, user


def _query(request) -> dict:
    try:
        return _validate(
            ContextQueryInput, {k: request.query_params.get(k) for k in request.query_params}, "query", None
        )
    except RequestValidationError as exc:
        first = exc.items[0]
        name = first["loc"][-1] if len(first["loc"]) > 1 else "query"
        code = "missing_parameter" if first["type"] == "missing" else "invalid_parameter"
        raise ContractBadRequest(code, f"Query parameter {name}: {first['msg']}") from None


def _mutations_body(request) -> dict:
    try:
        return _validate(MutationsInput, request.data, "body", None)
    except RequestValidationError as exc:
        first = exc.items[0]
        raise ContractBadRequest("invalid_body", f"{'.'.join(str(p) for p in first['loc'])}: {first['msg']}") from None


class CanvasContractViewSet(ContractViewSet):
    """GET /api/internal/canvas/context and POST /api/internal/canvas/mutations."""

    @extend_schema(
        operation_id="internal_canvas_context",
        summary="Canvas context for AI engines (internal contract 2026-02)",
        description="Authorization: Bearer INTERNAL_ENGINE_TOKEN. `meta` carries two revisions: `revision`, over "
        "the summary (counts by type and status), and `contentRevision`, over the nodes, relationships and "
        "`truncated` exactly as this question lists them (content only with includeContent, relationships only "
        "with includeRelationships). Send the last `contentRevision` back as `revision`: while nothing this "
        "question asks for changed, `canvas_context.unchanged` is true and nodes and relationships are omitted. "
        "The summary `revision` gives `unchanged` only to a question that asks for neither content nor "
        "relationships, so a content-only edit never answers `unchanged` to an engine that asked for content. "
        "Sends a strong `ETag` of the body; `If-None-Match` with it answers 304 with no body.",
        parameters=[*HEADER_PARAMS, ContextQueryInput, *CONDITIONAL_READ_PARAMS],
        responses={200: ContextResponseOutput, **NOT_MODIFIED, **CONTRACT_ERRORS},
        tags=["internal"],
        auth=[{"internalEngineToken": []}],
    )
    @action(detail=False, methods=["get"])
    def context(self, request):
        claims = self.trusted_claims(request)
        query = _query(request)
        access, _thread, _user = self.scoped_access(claims, project_id=query["projectId"], thread_id=query["threadId"])
        result = context_service.canvas_context(
            deal=access.deal,
            max_nodes=query["maxNodes"],
            include_content=query["includeContent"],
            include_relationships=query["includeRelationships"],
            framework=query.get("framework"),
            revision=query.get("revision"),
        )
        return conditional_body(request, fast_json({"success": True, **result}))

    @extend_schema(
        operation_id="internal_canvas_mutations",
        summary="Engines create nodes, suggestions and links (idempotent)",
        description="Same authentication and claims as the context endpoint, scoped by X-Project-Id and "
        "X-Thread-Id. `Idempotency-Key` is required: repeating a key with the same body returns the first "
        "result (meta.replayed = true); with another body it is refused (400). The user of X-User-Id needs "
        "the commenter role.",
        parameters=[
            *HEADER_PARAMS,
            OpenApiParameter(
                "Idempotency-Key",
                {"type": "string", "pattern": IDEMPOTENCY_KEY_RE.pattern},
                OpenApiParameter.HEADER,
                required=True,
                description="1 to 200 visible ASCII characters (no spaces); a retry sends the same one.",
            ),
        ],
        request=MutationsInput,
        responses={200: MutationsResponseOutput, **CONTRACT_ERRORS},
        tags=["internal"],
        auth=[{"internalEngineToken": []}],
    )
    @action(detail=False, methods=["post"])
    def mutations(self, request):
        claims = self.trusted_claims(request)
        key = request.headers.get("Idempotency-Key", "")
        if not IDEMPOTENCY_KEY_RE.fullmatch(key):
            raise ContractBadRequest(
                "missing_idempotency_key",
                "The Idempotency-Key header is required: 1 to 200 visible ASCII characters, no spaces.",
            )
        access, thread, user = self.scoped_access(
            claims, project_id=claims.project_id, thread_id=claims.thread_id, minimum=DealRole.COMMENTER
        )
        body = _mutations_body(request)
        status, response = services.canvas_mutations_apply(
            access=access,
            thread=thread,
            user=user,
            scope=f"{claims.user_id}:{claims.project_id}",
            key=key,
            body=body,
            raw_body=request.data,
        )
        return Response(response, status=status)


class ChatViewSet(viewsets.ViewSet):
    """POST /api/v1/chat: a user's bearer token; the deal is the body's `project_id` (viewer)."""

    authentication_classes = [BearerJWTAuthentication]
    permission_classes = [IsAuthenticated]

    @extend_schema(
        operation_id="chat",
        summary="Ask the deal's engine (viewer of the project)",
        description="Creates a thread when thread_id is omitted. Counts against the shared 'generate' rate limit.",
        request=ChatInput,
        responses={200: ChatOutput, **error_responses(401, 403, 404, 422, 429, 503)},
        tags=["chat"],
    )
    def create(self, request):
        body = parse_body(ChatInput, request)
        return Response(services.chat_ask(user=request.user, token=request.auth, body=body))


class ThreadViewSet(viewsets.ViewSet):
    # GET /api/v1/threads?project_id=: the caller's threads of a deal, for any role of the deal; GET
    # /api/v1/threads/{thread_id}/messages: one of the caller's threads with its messages. (No docstring:
    # drf-spectacular would publish it as the operation's description.)

    authentication_classes = [BearerJWTAuthentication]
    permission_classes = [IsAuthenticated]
    lookup_field = "thread_id"
    lookup_value_regex = "[^/]+"  # any id reaches the view: a malformed one is a 422 at path.thread_id

    @extend_schema(
        operation_id="chat_threads",
        summary="The caller's chat threads of a project",
        parameters=[ThreadsQueryInput],
        responses={200: page_of(ThreadOutput), **error_responses(401, 403, 404, 422)},
        tags=["chat"],
    )
    def list(self, request):
        query = parse_query(ThreadsQueryInput, request)
        access = resolve_deal_access(user=request.user, deal_id=query["project_id"], token=request.auth)
        return paginate(request, selectors.chat_threads(deal=access.deal, user=request.user), serializer=ThreadOutput)

    @extend_schema(
        operation_id="chat_thread_messages",
        summary="One of the caller's chat threads, with its messages",
        description="The caller's own thread only: another user's thread, or one of a deal the caller no longer "
        "reaches, is 404. Messages come from the embedded engine's history (LangGraph checkpoints), oldest first.",
        parameters=[THREAD_ID_PARAM],
        responses={200: ThreadMessagesOutput, **error_responses(401, 404, 422, 503)},
        tags=["chat"],
    )
    @action(detail=True, methods=["get"])
    def messages(self, request, thread_id):
        thread_uuid = parse_path_uuid(thread_id, "thread_id")
        body = services.chat_thread_messages(user=request.user, token=request.auth, thread_id=thread_uuid)
        return Response(ThreadMessagesOutput(body).data)
