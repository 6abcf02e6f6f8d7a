"""Domain errors. Services raise these; the API's exception handler maps them to HTTP.

No HTTP status code lives in a service: each class below names what went wrong, and
canvas_project.api.errors decides how that reads on the wire.
"""

from __future__ import annotations

from typing import Any


class DomainError(Exception):
    """Base of every error a service raises on purpose. `code` is stable and machine-readable."""

    code = "error"
    default_message = "The request could not be completed."

    def __init__(self, message: str | None = None, *, code: str | None = None, **extra: Any) -> None:
        self.message = message or self.default_message
        if code:
            self.code = code
        self.extra = extra
        super().__init__(self.message)


class NotFoundError(DomainError):
    code = "not_found"
    default_message = "Not found."


class PermissionDeniedError(DomainError):
    code = "permission_denied"
    default_message = "You do not have permission to perform this action."


class ConflictError(DomainError):
    code = "conflict"
    default_message = "The request conflicts with the current state."


class InvalidInputError(DomainError):
    """Input that is well-formed but breaks a rule; reads as a 422 at `loc`."""

    code = "value_error"
    default_message = "Invalid value."

    def __init__(self, message: str, *, loc: list[str | int], value: Any = None, code: str | None = None) -> None:
        super().__init__(message, code=code)
        self.loc = loc
        self.value = value


class StaleError(ConflictError):
    """A write based on a version that is not current any more (409 with `current_version`; 412 when the
    base came from an If-Match header)."""

    code = "stale_version"


class PreconditionFailedError(DomainError):
    """An If-Match header named a version that is not current: nothing was written."""

    code = "precondition_failed"
    default_message = "The If-Match header does not name the current version."


class InvalidInputsError(DomainError):
    """Several InvalidInputError at once (a 422 listing each), for rules checked together: e.g. a wrong current
    password and a new password the validators refuse, reported in one answer."""

    code = "value_error"
    default_message = "Invalid values."

    def __init__(self, errors: list[InvalidInputError]) -> None:
        super().__init__(" ".join(error.message for error in errors))
        self.errors = errors


class GoneError(DomainError):
    code = "gone"
    default_message = "No longer available."


class LockedError(DomainError):
    code = "locked"
    default_message = "The resource is locked."


class PayloadTooLargeError(DomainError):
    code = "payload_too_large"
    default_message = "The payload is too large."


class UnsupportedMediaTypeError(DomainError):
    """Content of a kind the service does not take (read from the bytes, not the client's word)."""

    code = "unsupported_media_type"
    default_message = "Unsupported media type."


class RateLimitedError(DomainError):
    code = "rate_limited"
    default_message = "Too many requests."

    def __init__(self, message: str | None = None, *, retry_after: int) -> None:
        super().__init__(message)
        self.retry_after = retry_after


class DependencyUnavailableError(DomainError):
    """A backing service (Redis, PostgreSQL, the Store) is down; `dependency` names it."""

    code = "dependency_unavailable"

    def __init__(self, dependency: str, message: str | None = None) -> None:
        super().__init__(message or f"{dependency} is unavailable; try again shortly.")
        self.dependency = dependency


class StoreUnavailable(DependencyUnavailableError):
    code = "store_unavailable"

    def __init__(self, message: str | None = None) -> None:
        super().__init__(
            "the LangGraph Store", message or "The canvas store (PostgreSQL) is unavailable; try again shortly."
        )


class RedisUnavailable(DependencyUnavailableError):
    code = "redis_unavailable"

    def __init__(self, message: str | None = None) -> None:
        super().__init__("Redis", message or "Redis is unavailable, and this action needs it; try again shortly.")
