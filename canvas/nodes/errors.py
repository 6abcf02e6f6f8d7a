"""Errors of canvas nodes, each with a stable code."""

from canvas_project.errors import ConflictError, NotFoundError


class NodeNotFound(NotFoundError):
    code = "node_not_found"
    default_message = "This canvas has no such node."


class DerivedNodeReadOnly(ConflictError):
    code = "derived_node"
