"""Request and response serializers of canvas nodes. The node and edge outputs are also the internal
contract's (internal_api builds on canvas, never the reverse). Inputs end in Input, outputs in Output;
names are unique across the project."""

from __future__ import annotations

from rest_framework import serializers

from canvas.nodes.selectors import DERIVED_TYPES
from canvas_project.api.fields import StrictCharField
from canvas_project.api.pagination import PageEnvelope, PageQueryInput
from canvas_project.api.rules import NameField, RuledSerializer


class ContextNodeOutput(serializers.Serializer):
    id = serializers.CharField()
    type = serializers.CharField()
    status = serializers.ChoiceField(choices=["approve", "reject", "pending"])
    raw_status = serializers.CharField()
    title = serializers.CharField()
    content = serializers.CharField(required=False, help_text="Only with includeContent=true.")
    section_key = serializers.CharField(allow_null=True)
    agent_id = serializers.CharField(allow_null=True)
    framework = serializers.CharField(allow_null=True)
    thread_id = serializers.CharField(allow_null=True)
    created_by = serializers.CharField(allow_null=True)
    updated_at = serializers.CharField(allow_null=True)
    derived = serializers.BooleanField(help_text="Mirrors a section, suggestion, comment or condition.")


class ContextEdgeOutput(serializers.Serializer):
    to = serializers.CharField()
    type = serializers.CharField()


class NodeQueryInput(PageQueryInput):
    type = StrictCharField(max_length=40, required=False)
    status = serializers.ChoiceField(choices=["approve", "reject", "pending"], required=False)
    section_key = StrictCharField(max_length=64, required=False)
    agent_id = StrictCharField(max_length=64, required=False)
    framework = StrictCharField(max_length=64, required=False)


class NodeCreateInput(serializers.Serializer):
    type = NameField(refused=DERIVED_TYPES, help_text="e.g. strategy_item; not a type the memo's own nodes use.")
    title = StrictCharField(max_length=300)
    content = StrictCharField(max_length=20_000, required=False, allow_blank=True, default="")
    status = StrictCharField(max_length=32, required=False, default="pending")
    section_key = StrictCharField(max_length=64, required=False, allow_null=True, default=None)
    agent_id = StrictCharField(max_length=64, required=False, allow_null=True, default=None)
    framework = StrictCharField(max_length=64, required=False, allow_null=True, default=None)
    thread_id = StrictCharField(max_length=64, required=False, allow_null=True, default=None)


class NodeUpdateInput(RuledSerializer):
    at_least_one_of = ("status", "title", "content")
    status = StrictCharField(max_length=32, required=False)
    title = StrictCharField(max_length=300, required=False)
    content = StrictCharField(max_length=20_000, required=False, allow_blank=True)


class NodeListOutput(PageEnvelope):
    """A page of the canvas's nodes (ordered by id) and the edges from them to any node of the canvas."""

    results = ContextNodeOutput(many=True)
    relationships = serializers.DictField(child=ContextEdgeOutput(many=True))


class LinkInput(serializers.Serializer):
    to = StrictCharField(max_length=100)
    type = NameField(help_text="e.g. supports, contradicts, addresses")


class LinkOutput(serializers.Serializer):
    to = serializers.CharField()
    type = serializers.CharField()
    created_by = serializers.CharField(allow_null=True)
    created_at = serializers.CharField()
