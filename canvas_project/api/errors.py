"""One exception handler for the whole API.

Validation errors are HTTP 422 in the seeds' HTTPValidationError shape,
`{"detail": [{"loc", "msg", "type", "input", "ctx"}]}`; every other error is `{"detail": sentence}`.
Unexpected exceptions are logged and answered with a 500 that carries no internals.
"""

from __future__ import annotations

import logging
from typing import Any

import redis
from django.core.exceptions import PermissionDenied as DjangoPermissionDenied
from django.core.exceptions import RequestDataTooBig
from django.db import DatabaseError, InterfaceError, OperationalError
from django.http import Http404, JsonResponse
from django.views.decorators.csrf import csrf_exempt
from rest_framework import exceptions as drf_exceptions
from rest_framework import status
from rest_framework.response import Response
from rest_framework.views import set_rollback

from canvas_project import errors as domain
from canvas_project.api.validation import RequestValidationError, drf_errors_to_items
from canvas_project.pool_recovery import check_pools_soon, is_database_failure

logger = logging.getLogger(__name__)

_DOMAIN_STATUS: list[tuple[type[domain.DomainError], int]] = [
    (domain.NotFoundError, status.HTTP_404_NOT_FOUND),
    (domain.PermissionDeniedError, status.HTTP_403_FORBIDDEN),
    (domain.ConflictError, status.HTTP_409_CONFLICT),
    (domain.LockedError, status.HTTP_423_LOCKED),
    (domain.PayloadTooLargeError, status.HTTP_413_REQUEST_ENTITY_TOO_LARGE),
    (domain.UnsupportedMediaTypeError, status.HTTP_415_UNSUPPORTED_MEDIA_TYPE),
    (domain.RateLimitedError, status.HTTP_429_TOO_MANY_REQUESTS),
    (domain.DependencyUnavailableError, status.HTTP_503_SERVICE_UNAVAILABLE),
    (domain.GoneError, status.HTTP_410_GONE),
    (domain.PreconditionFailedError, status.HTTP_412_PRECONDITION_FAILED),
]


def validation_response(items: list[dict[str, Any]]) -> Response:
    return Response({"detail": items}, status=status.HTTP_422_UNPROCESSABLE_ENTITY)


def domain_error_parts(exc: domain.DomainError) -> tuple[int, dict[str, Any], dict[str, str]]:
    """(status, body, headers) of a domain error; shared by DRF views and the async SSE views."""
    if isinstance(exc, domain.InvalidInputError | domain.InvalidInputsError):
        errors = exc.errors if isinstance(exc, domain.InvalidInputsError) else [exc]
        items = [{"loc": e.loc, "msg": e.message, "type": e.code, "input": e.value, "ctx": {}} for e in errors]
        return 422, {"detail": items}, {}
    code = next((s for cls, s in _DOMAIN_STATUS if isinstance(exc, cls)), status.HTTP_400_BAD_REQUEST)
    body: dict[str, Any] = {"detail": exc.message}
    body.update(exc.extra)
    headers = {}
    if isinstance(exc, domain.RateLimitedError):
        headers["Retry-After"] = str(exc.retry_after)
    if isinstance(exc, domain.PreconditionFailedError) and exc.extra.get("current_etag"):
        headers["ETag"] = exc.extra["current_etag"]
    return code, body, headers


def _domain_response(exc: domain.DomainError) -> Response:
    code, body, headers = domain_error_parts(exc)
    return Response(body, status=code, headers=headers)


def _sentence(detail: Any) -> str:
    if isinstance(detail, dict):
        # simplejwt nests {"detail", "code", "messages"}; keep the sentence only.
        return str(detail.get("detail") or next(iter(detail.values()), ""))
    if isinstance(detail, list):
        return " ".join(str(item) for item in detail)
    return str(detail)


def api_exception_handler(exc: Exception, context: dict[str, Any]) -> Response | None:
    request = context.get("request")
    if isinstance(exc, RequestValidationError):
        return validation_response(exc.items)
    if isinstance(exc, domain.DomainError):
        set_rollback()
        if isinstance(exc, domain.DependencyUnavailableError) and is_database_failure(exc):
            check_pools_soon()  # the Store's PostgreSQL failed: replace the pools' dead connections
        return _domain_response(exc)
    if isinstance(exc, drf_exceptions.ParseError):
        return validation_response(
            [
                {
                    "loc": ["body"],
                    "msg": f"Malformed request body: {exc.detail}",
                    "type": "json_invalid",
                    "input": None,
                    "ctx": {},
                }
            ]
        )
    if isinstance(exc, drf_exceptions.ValidationError):
        payload = request.data if request is not None else None
        return validation_response(drf_errors_to_items(exc.detail, ["body"], payload))
    if isinstance(exc, RequestDataTooBig):
        return Response({"detail": "The request body is too large."}, status=status.HTTP_413_REQUEST_ENTITY_TOO_LARGE)
    if isinstance(exc, Http404):
        return Response({"detail": "Not found."}, status=status.HTTP_404_NOT_FOUND)
    if isinstance(exc, DjangoPermissionDenied):
        return Response({"detail": "You do not have permission to perform this action."}, status=403)
    if isinstance(exc, drf_exceptions.APIException):
        headers = {}
        if getattr(exc, "auth_header", None):
            headers["WWW-Authenticate"] = exc.auth_header
        if isinstance(exc, drf_exceptions.Throttled) and exc.wait is not None:
            headers["Retry-After"] = str(int(exc.wait) + 1)
        if isinstance(exc, drf_exceptions.NotAuthenticated | drf_exceptions.AuthenticationFailed):
            view = context.get("view")
            if view is not None and request is not None:
                header = view.get_authenticate_header(request)
                if header:
                    headers["WWW-Authenticate"] = header
            return Response({"detail": _sentence(exc.detail)}, status=status.HTTP_401_UNAUTHORIZED, headers=headers)
        return Response({"detail": _sentence(exc.detail)}, status=exc.status_code, headers=headers)
    if isinstance(exc, redis.exceptions.ConnectionError | redis.exceptions.TimeoutError):
        logger.warning("redis unavailable: %s", exc.__class__.__name__)
        return Response({"detail": "Redis is unavailable; try again shortly."}, status=503)
    if isinstance(exc, OperationalError | InterfaceError):
        set_rollback()
        logger.warning("postgresql unavailable: %s", exc.__class__.__name__)
        check_pools_soon()
        return Response({"detail": "PostgreSQL is unavailable; try again shortly."}, status=503)
    if isinstance(exc, DatabaseError):
        set_rollback()
    logger.exception("unhandled error in %s", getattr(context.get("view"), "__class__", type(None)).__name__)
    return Response({"detail": "Internal server error."}, status=status.HTTP_500_INTERNAL_SERVER_ERROR)


@csrf_exempt  # also routed as the catch-all under /api/: a POST there is a JSON 404, not a CSRF page
def json_not_found(request, exception=None) -> JsonResponse:  # noqa: ARG001 - Django handler signature
    return JsonResponse({"detail": "Not found."}, status=404)


def json_server_error(request) -> JsonResponse:  # noqa: ARG001 - Django handler signature
    return JsonResponse({"detail": "Internal server error."}, status=500)
