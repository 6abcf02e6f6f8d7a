"""Canvas nodes for the frontend under /api/canvas/{deal_id}/nodes: list, create, change, delete, link and
unlink.

Commenters create nodes and links; editors decide (status changes, deletion, unlinking). Thin: validate,
call one service or selector, serialize. Deal scoping and the minimum role of each action come from
deals.viewsets.DealScopedViewSet.
"""

from __future__ import annotations

from drf_spectacular.utils import OpenApiParameter, OpenApiTypes, extend_schema
from rest_framework import status
from rest_framework.decorators import action
from rest_framework.response import Response

from canvas.nodes import selectors
from canvas.nodes import services as nodes
from canvas.nodes.serializers import (
    ContextNodeOutput,
    LinkInput,
    LinkOutput,
    NodeCreateInput,
    NodeListOutput,
    NodeQueryInput,
    NodeUpdateInput,
)
from canvas_project.api.pagination import CursorPagination
from canvas_project.api.schema import deleted_response, error_responses
from canvas_project.api.validation import parse_body, parse_query
from deals.models import DealRole
from deals.viewsets import DealScopedViewSet

NODE_PARAM = OpenApiParameter(
    "node_id",
    OpenApiTypes.STR,
    OpenApiParameter.PATH,
    description="A stored node's UUID, or a derived node's `<type>:<id>`.",
)
TAGS = ["nodes"]


class NodeViewSet(DealScopedViewSet):
    """/api/canvas/{deal_id}/nodes: the canvas's nodes and the links between them."""

    lookup_field = "node_id"
    minimum_roles = {
        "list": DealRole.VIEWER,
        "create": DealRole.COMMENTER,
        "partial_update": DealRole.EDITOR,
        "destroy": DealRole.EDITOR,
        "link": DealRole.COMMENTER,
        "unlink": DealRole.EDITOR,
    }

    @extend_schema(
        operation_id="canvas_nodes_list",
        summary="Canvas nodes with their relationships (viewer)",
        parameters=[NodeQueryInput],
        responses={200: NodeListOutput, **error_responses(401, 403, 404, 422, 503)},
        tags=TAGS,
    )
    def list(self, request, deal_id):
        query = parse_query(NodeQueryInput, request)
        filters = {name: value for name, value in query.items() if name not in ("page_size", "cursor")}
        found, edges = selectors.node_list(deal=self.deal_access.deal, filters=filters)
        paginator = CursorPagination()
        # node ids are unique and never change: the cursor key
        page = paginator.paginate_sequence(found, request, key=lambda node: (node["id"],))
        return Response(paginator.envelope(page, relationships=selectors.relationships_from(edges, page)))

    @extend_schema(
        operation_id="canvas_nodes_create",
        summary="Create a node (commenter)",
        request=NodeCreateInput,
        responses={201: ContextNodeOutput, **error_responses(401, 403, 404, 422, 503)},
        tags=TAGS,
    )
    def create(self, request, deal_id):
        body = parse_body(NodeCreateInput, request)
        node = nodes.node_create(deal=self.deal_access.deal, actor_id=str(request.user.pk), **body)
        return Response(node, status=status.HTTP_201_CREATED)

    @extend_schema(
        operation_id="canvas_nodes_update",
        summary="Change a node's status, title or content (editor)",
        parameters=[NODE_PARAM],
        request=NodeUpdateInput,
        responses={200: ContextNodeOutput, **error_responses(401, 403, 404, 409, 422, 503)},
        tags=TAGS,
    )
    def partial_update(self, request, deal_id, node_id):
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
        tags=TAGS,
    )
    def destroy(self, request, deal_id, node_id):
        nodes.node_delete(deal=self.deal_access.deal, actor_id=str(request.user.pk), node_id=node_id)
        return Response(status=status.HTTP_204_NO_CONTENT)

    @extend_schema(
        operation_id="canvas_nodes_link",
        summary="Link this node to another (commenter)",
        parameters=[NODE_PARAM],
        request=LinkInput,
        responses={201: LinkOutput, **error_responses(401, 403, 404, 422, 503)},
        tags=TAGS,
    )
    @action(detail=True, methods=["post"], url_path="links", url_name="links")
    def link(self, request, deal_id, node_id):
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
        request=None,
        responses={**deleted_response(), **error_responses(401, 403, 404, 422, 503)},
        tags=TAGS,
    )
    @link.mapping.delete
    def unlink(self, request, deal_id, node_id):
        query = parse_query(LinkInput, request)
        nodes.link_delete(
            deal=self.deal_access.deal,
            actor_id=str(request.user.pk),
            source=node_id,
            target=query["to"],
            edge_type=query["type"],
        )
        return Response(status=status.HTTP_204_NO_CONTENT)
