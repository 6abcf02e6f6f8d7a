"""Errors of API keys, each with a stable code."""

from canvas_project.errors import DomainError, NotFoundError


class ApiKeyNotFound(NotFoundError):
    """Unknown, revoked, or another user's key: the same answer for each, so no id leaks."""

    code = "api_key_not_found"
    default_message = "API key not found."


class ApiKeyRejected(DomainError):
    """A presented key that does not authenticate (deals.authentication answers 401 with the message)."""

    code = "api_key_invalid"
    default_message = "Invalid API key."
