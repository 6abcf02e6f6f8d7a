"""Serializers of the internal contract (query, mutations, and the documented response shapes) and of chat."""

from __future__ import annotations

from rest_framework import serializers

from canvas.models import SuggestionKind
from canvas.nodes.serializers import ContextEdgeOutput, ContextNodeOutput
from canvas_project.api.fields import StrictCharField, StrictUUIDField
from canvas_project.api.pagination import PageQueryInput
from canvas_project.api.rules import RuledSerializer, StrictBooleanField
from internal_api.context import DEFAULT_MAX_NODES, MAX_NODES_LIMIT


class ContextQueryInput(serializers.Serializer):
    agentId = StrictCharField(max_length=64)  # noqa: N815 - the contract's names
    projectId = StrictUUIDField()  # noqa: N815
    threadId = StrictUUIDField()  # noqa: N815
    revision = StrictCharField(
        max_length=64,
        required=False,
        help_text="The revision the engine last saw: meta.contentRevision of the same question (preferred), or "
        "meta.revision. canvas_context.unchanged is true when it is the current contentRevision, or the current "
        "revision of a question that asks for neither content nor relationships.",
    )
    maxNodes = serializers.IntegerField(min_value=1, max_value=MAX_NODES_LIMIT, default=DEFAULT_MAX_NODES)  # noqa: N815
    includeContent = serializers.BooleanField(default=False)  # noqa: N815
    includeRelationships = serializers.BooleanField(default=False)  # noqa: N815
    framework = StrictCharField(max_length=64, required=False)


class ContractErrorBody(serializers.Serializer):
    code = serializers.CharField()
    message = serializers.CharField()


class ContractErrorOutput(serializers.Serializer):
    success = serializers.BooleanField(default=False)
    error = ContractErrorBody()

    class Meta:
        ref_name = "ContractError"


class ContextSummaryOutput(serializers.Serializer):
    nodeCount = serializers.IntegerField()  # noqa: N815
    byType = serializers.DictField(child=serializers.IntegerField())  # noqa: N815
    byStatus = serializers.DictField(
        child=serializers.IntegerField(),  # noqa: N815
        help_text="Exactly the keys approve, reject and pending.",
    )


class CanvasContextOutput(serializers.Serializer):
    summary = ContextSummaryOutput()
    nodes = ContextNodeOutput(many=True)
    relationships = serializers.DictField(
        child=ContextEdgeOutput(many=True), help_text="from node id -> edges; only with includeRelationships=true."
    )
    unchanged = serializers.BooleanField(
        help_text="True when nothing this question asks for changed since the given `revision` (see its "
        "description): nodes and relationships are then omitted (empty). Never true after a change of a listed "
        "node's content with includeContent, or of a listed relationship with includeRelationships."
    )
    truncated = serializers.BooleanField(required=False, help_text="More nodes than maxNodes matched.")


class ContextDataOutput(serializers.Serializer):
    canvas_profile = serializers.DictField()
    canvas_context = CanvasContextOutput()


class ContextMetaOutput(serializers.Serializer):
    revision = serializers.CharField(
        help_text="The summary revision: 16 hex characters of SHA-256 over the canonical summary JSON (counts of "
        "nodes by type and status). The same for every question; an edit that changes no count keeps it."
    )
    contentRevision = serializers.CharField(  # noqa: N815
        help_text="16 hex characters of SHA-256 over the canonical JSON (sorted keys, no spaces) of "
        "{nodes, relationships, truncated} exactly as this question lists them: content only with "
        "includeContent, relationships only with includeRelationships, the page maxNodes and framework select. "
        "It changes exactly when something this question asks for changes; send it back as `revision`."
    )
    contractVersion = serializers.CharField()  # noqa: N815
    nodeCount = serializers.IntegerField()  # noqa: N815


class ContextResponseOutput(serializers.Serializer):
    success = serializers.BooleanField()
    data = ContextDataOutput()
    meta = ContextMetaOutput()


class NodeSpecInput(serializers.Serializer):
    type = StrictCharField(max_length=40)
    title = StrictCharField(max_length=300)
    content = StrictCharField(max_length=20_000, required=False, allow_blank=True, default="")
    status = StrictCharField(max_length=32, required=False, default="pending")
    section_key = StrictCharField(max_length=64, required=False, allow_null=True, default=None)
    framework = StrictCharField(max_length=64, required=False, allow_null=True, default=None)


class SuggestionSpecInput(serializers.Serializer):
    section_key = StrictCharField(max_length=64)
    kind = serializers.ChoiceField(choices=SuggestionKind.choices)
    anchor_text = StrictCharField(max_length=2000, allow_blank=True, default="", required=False)
    occurrence = serializers.IntegerField(min_value=1, default=1, required=False)
    content = StrictCharField(max_length=20_000, allow_blank=True, default="", required=False)
    comment = StrictCharField(max_length=2000, allow_blank=True, default="", required=False)


class MutationInput(RuledSerializer):
    op = serializers.ChoiceField(choices=["create_node", "create_suggestion", "link"])
    node = NodeSpecInput(required=False)
    suggestion = SuggestionSpecInput(required=False)
    source = StrictCharField(max_length=100, required=False, help_text="link: the from node id")
    target = StrictCharField(max_length=100, required=False, help_text="link: the to node id")
    type = StrictCharField(max_length=40, required=False, help_text="link: the edge type")

    NEEDED = {"create_node": ("node",), "create_suggestion": ("suggestion",), "link": ("source", "target", "type")}

    @classmethod
    def schema_rules(cls) -> dict:
        """validate()'s rule: what each op needs (`op` told apart with `not`: a bare enum here would be taken for
        another enum component by drf-spectacular)."""
        return {
            "oneOf": [
                {
                    "properties": {"op": {"not": {"enum": [other for other in cls.NEEDED if other != op]}}},
                    "required": ["op", *needed],
                }
                for op, needed in cls.NEEDED.items()
            ]
        }

    def validate(self, attrs):
        attrs = super().validate(attrs)
        needed = self.NEEDED[attrs["op"]]
        missing = [name for name in needed if not attrs.get(name)]
        if missing:
            raise serializers.ValidationError(f"{attrs['op']} needs {', '.join(missing)}.")
        return attrs


class MutationsInput(serializers.Serializer):
    agent_id = StrictCharField(max_length=64)
    mutations = MutationInput(many=True, min_length=1, max_length=50)


class MutationsResponseOutput(serializers.Serializer):
    success = serializers.BooleanField()
    data = serializers.DictField(help_text="{results: [one result per mutation, in order]}")
    meta = serializers.DictField(help_text="{revision, contractVersion, idempotencyKey, replayed}")


# --- chat: POST /api/v1/chat (and /api/v1/chat/stream), GET /api/v1/threads ------------------------------
class ChatInput(serializers.Serializer):
    message = StrictCharField(max_length=8000)
    project_id = StrictUUIDField(help_text="The deal id.")
    agent_id = StrictCharField(max_length=64)
    thread_id = StrictUUIDField(required=False, allow_null=True, help_text="Omit to start a new thread.")
    knowledge_search = StrictBooleanField(default=True)
    attached_document_ids = serializers.ListField(child=StrictUUIDField(), max_length=20, default=list)
    canvas_profile = serializers.DictField(required=False, allow_null=True)


class ChatMessageOutput(serializers.Serializer):
    role = serializers.CharField()
    content = serializers.CharField()


class ChatOutput(serializers.Serializer):
    thread_id = StrictUUIDField()
    message = ChatMessageOutput()
    metadata = serializers.DictField(
        help_text="What was forwarded to the engine: knowledge_search, "
        "attached_document_ids, canvas_context {mode, summary, context_ref}, canvas_profile."
    )


class ThreadsQueryInput(PageQueryInput):
    project_id = StrictUUIDField()


class ThreadOutput(serializers.Serializer):
    id = StrictUUIDField()
    agent_id = serializers.CharField()
    title = serializers.CharField()
    created_at = serializers.DateTimeField()
    updated_at = serializers.DateTimeField()


class ThreadMessagesOutput(ThreadOutput):
    title = serializers.CharField(allow_blank=True)
    project_id = StrictUUIDField(help_text="The deal the thread is about.")
    messages = ChatMessageOutput(
        many=True,
        help_text="Oldest first; `role` is user or assistant. Empty for a thread answered by an external engine "
        "(ENGINE_URL), which keeps its own history.",
    )
