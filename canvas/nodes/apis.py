"""Canvas nodes for the frontend: list, create, change, delete, link and unlink.

Commenters create nodes and links; editors decide (status changes, deletion, unlinking).
"""

from __future__ import annotations

from drf_spectacular.utils import OpenApiParameter, OpenApiTypes, extend_schema
from rest_framework import serializers, status
from rest_framework.response import Response

from canvas.nodes import services as nodes
from canvas_project.api.fields import StrictCharField
from canvas_project.api.schema import deleted_response, error_responses
from canvas_project.api.validation import parse_body, parse_query
from deals.permissions import DealScopedAPIView, RequireCommenter, RequireEditor, RequireViewer
from internal_api.serializers import ContextEdgeOutput, ContextNodeOutput

NODE_PARAM = OpenApiParameter(
    "node_id",
    OpenApiTypes.STR,
    OpenApiParameter.PATH,
    description="A stored node's UUID, or a derived node's `<type>:<id>`.",
)


class NodeQueryInput(serializers.Serializer):
    type = StrictCharField(max_length=40, required=False)
    status = serializers.ChoiceField(choices=["approve", "reject", "pending"], required=False)
    section_key = StrictCharField(max_length=64, required=False)
    agent_id = StrictCharField(max_length=64, required=False)
    framework = StrictCharField(max_length=64, required=False)
    limit = serializers.IntegerField(min_value=1, max_value=1000, default=200)
    offset = serializers.IntegerField(min_value=0, default=0)


class NodeCreateInput(serializers.Serializer):
    type = StrictCharField(max_length=40, help_text="e.g. strategy_item; not a derived type.")
    title = StrictCharField(max_length=300)
    content = StrictCharField(max_length=20_000, required=False, allow_blank=True, default="")
    status = StrictCharField(max_length=32, required=False, default="pending")
    section_key = StrictCharField(max_length=64, required=False, allow_null=True, default=None)
    agent_id = StrictCharField(max_length=64, required=False, allow_null=True, default=None)
    framework = StrictCharField(max_length=64, required=False, allow_null=True, default=None)
    thread_id = StrictCharField(max_length=64, required=False, allow_null=True, default=None)


class NodeUpdateInput(serializers.Serializer):
    status = StrictCharField(max_length=32, required=False)
    title = StrictCharField(max_length=300, required=False)
    content = StrictCharField(max_length=20_000, required=False, allow_blank=True)

    def validate(self, attrs):
        if not attrs:
            raise serializers.ValidationError("Give at least one of status, title, content.", code="missing")
        return attrs


class NodeListOutput(serializers.Serializer):
    count = serializers.IntegerField()
    results = ContextNodeOutput(many=True)
    relationships = serializers.DictField(child=ContextEdgeOutput(many=True))


class LinkInput(serializers.Serializer):
    to = StrictCharField(max_length=100)
    type = StrictCharField(max_length=40, help_text="e.g. supports, contradicts, addresses")


class LinkOutput(serializers.Serializer):
    to = serializers.CharField()
    type = serializers.CharField()
    created_by = serializers.CharField(allow_null=True)
    created_at = serializers.CharField()


class NodeCollectionApi(DealScopedAPIView):
    guards = {"GET": RequireViewer, "POST": RequireCommenter}

    @extend_schema(
        operation_id="canvas_nodes_list",
        summary="Canvas nodes with their relationships (viewer)",
        parameters=[NodeQueryInput],
        responses={200: NodeListOutput, **error_responses(401, 403, 404, 422, 503)},
        tags=["nodes"],
    )
    def get(self, request, deal_id):
        query = parse_query(NodeQueryInput, request)
        all_nodes, edges = nodes.canvas_graph(self.deal_access.deal)
        wanted = [
            n
            for n in all_nodes
            if all(
                query.get(f) is None or n.get(f) == query[f]
                for f in ("type", "status", "section_key", "agent_id", "framework")
            )
        ]
        page = wanted[query["offset"] : query["offset"] + query["limit"]]
        listed = {n["id"] for n in page}  # edges from the listed nodes, to any node of the canvas
        relationships = {k: v for k, v in nodes.relationships_of(edges).items() if k in listed}
        return Response({"count": len(wanted), "results": page, "relationships": relationships})

    @extend_schema(
        operation_id="canvas_nodes_create",
        summary="Create a node (commenter)",
        request=NodeCreateInput,
        responses={201: ContextNodeOutput, **error_responses(401, 403, 404, 422, 503)},
        tags=["nodes"],
    )
    def post(self, request, deal_id):
        body = parse_body(NodeCreateInput, request)
        node = nodes.node_create(deal=self.deal_access.deal, actor_id=str(request.user.pk), **body)
        return Response(node, status=status.HTTP_201_CREATED)


class NodeDetailApi(DealScopedAPIView):
    guards = {"PATCH": RequireEditor, "DELETE": RequireEditor}

    @extend_schema(
        operation_id="canvas_nodes_update",
        summary="Change a node's status, title or content (editor)",
        parameters=[NODE_PARAM],
        request=NodeUpdateInput,
        responses={200: ContextNodeOutput, **error_responses(401, 403, 404, 409, 422, 503)},
        tags=["nodes"],
    )
    def patch(self, request, deal_id, node_id):
        body = parse_body(NodeUpdateInput, request)
        node = nodes.node_update(
            deal=self.deal_access.deal, actor_id=str(request.user.pk), node_id=node_id, changes=body
        )
        return Response(node)

    @extend_schema(
        operation_id="canvas_nodes_delete",
        summary="Delete a node and its links (editor)",
        parameters=[NODE_PARAM],
        responses={**deleted_response(), **error_responses(401, 403, 404, 409, 503)},
        tags=["nodes"],
    )
    def delete(self, request, deal_id, node_id):
        nodes.node_delete(deal=self.deal_access.deal, actor_id=str(request.user.pk), node_id=node_id)
        return Response(status=status.HTTP_204_NO_CONTENT)


class NodeLinksApi(DealScopedAPIView):
    guards = {"POST": RequireCommenter, "DELETE": RequireEditor}

    @extend_schema(
        operation_id="canvas_nodes_link",
        summary="Link this node to another (commenter)",
        parameters=[NODE_PARAM],
        request=LinkInput,
        responses={201: LinkOutput, **error_responses(401, 403, 404, 422, 503)},
        tags=["nodes"],
    )
    def post(self, request, deal_id, node_id):
        body = parse_body(LinkInput, request)
        edge = nodes.link_create(
            deal=self.deal_access.deal,
            actor_id=str(request.user.pk),
            source=node_id,
            target=body["to"],
            edge_type=body["type"],
        )
        return Response(LinkOutput(edge).data, status=status.HTTP_201_CREATED)

    @extend_schema(
        operation_id="canvas_nodes_unlink",
        summary="Remove a link (editor)",
        parameters=[NODE_PARAM, LinkInput],
        responses={**deleted_response(), **error_responses(401, 403, 404, 422, 503)},
        tags=["nodes"],
    )
    def delete(self, request, deal_id, node_id):
        query = parse_query(LinkInput, request)
        nodes.link_delete(
            deal=self.deal_access.deal,
            actor_id=str(request.user.pk),
            source=node_id,
            target=query["to"],
            edge_type=query["type"],
        )
        return Response(status=status.HTTP_204_NO_CONTENT)
