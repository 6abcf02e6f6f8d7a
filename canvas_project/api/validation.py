"""Request validation that speaks the seeds' HTTPValidationError shape.

Views validate through `parse_body` / `parse_query` / `parse_path_uuid`, which raise
RequestValidationError with `loc` starting at body, query or path. Unknown fields are refused
(`extra_forbidden`), so a typo in a client never passes silently.
"""

from __future__ import annotations

import re
import uuid
from typing import Any

from rest_framework import serializers


def _unstorable(text: str) -> str | None:
    if "\x00" in text:
        return "Text may not contain NUL characters."
    try:
        text.encode("utf-8")
    except UnicodeEncodeError:
        return "Text must be valid Unicode (no lone surrogates)."
    return None


def first_unstorable_text(value: Any) -> str | None:
    """A sentence naming the first string (key or value) that PostgreSQL could not store, or None."""
    stack = [value]
    while stack:
        item = stack.pop()
        if isinstance(item, str):
            problem = _unstorable(item)
            if problem:
                return problem
        elif isinstance(item, dict):
            stack.extend(item.keys())
            stack.extend(item.values())
        elif isinstance(item, list):
            stack.extend(item)
    return None


class RequestValidationError(Exception):
    def __init__(self, items: list[dict[str, Any]]) -> None:
        super().__init__(items)
        self.items = items


def _value_at(payload: Any, key: str | int) -> Any:
    if isinstance(payload, dict):
        return payload.get(key)
    if isinstance(payload, list) and isinstance(key, int) and 0 <= key < len(payload):
        return payload[key]
    return None


def _has_key(payload: Any, key: str | int) -> bool:
    if isinstance(payload, dict):
        return key in payload
    return isinstance(payload, list) and isinstance(key, int) and 0 <= key < len(payload)


def drf_errors_to_items(errors: Any, loc: list[str | int], payload: Any) -> list[dict[str, Any]]:
    """Flatten DRF's nested error structure into a list of {loc, msg, type, input, ctx}."""
    items: list[dict[str, Any]] = []
    if isinstance(errors, dict):
        for key, sub in errors.items():
            if key in ("non_field_errors", "__all__"):
                items.extend(drf_errors_to_items(sub, loc, payload))
                continue
            sub_payload = _value_at(payload, key) if _has_key(payload, key) else payload
            items.extend(drf_errors_to_items(sub, [*loc, key], sub_payload))
    elif isinstance(errors, list):
        if all(isinstance(e, str) for e in errors):
            for error in errors:
                code = getattr(error, "code", None) or "value_error"
                items.append({"loc": loc, "msg": str(error), "type": _type_name(code), "input": payload, "ctx": {}})
        else:
            for index, sub in enumerate(errors):
                if sub:
                    items.extend(drf_errors_to_items(sub, [*loc, index], _value_at(payload, index)))
    else:
        code = getattr(errors, "code", None) or "value_error"
        items.append({"loc": loc, "msg": str(errors), "type": _type_name(code), "input": payload, "ctx": {}})
    return items


def _type_name(code: str) -> str:
    return {"required": "missing", "null": "missing", "invalid": "value_error"}.get(code, code)


def _extra_items(serializer: serializers.Serializer, data: Any, location: str) -> list[dict[str, Any]]:
    if not isinstance(data, dict):
        return []
    known = set(serializer.fields)
    # a retired parameter gets its own sentence (e.g. `page` on a cursor-paginated list)
    retired = getattr(serializer, "retired_params", {})
    return [
        {
            "loc": [location, key],
            "msg": retired.get(key, "Extra inputs are not permitted."),
            "type": "retired_parameter" if key in retired else "extra_forbidden",
            "input": data[key],
            "ctx": {},
        }
        for key in data
        if key not in known
    ]


def _validate(
    serializer_class: type[serializers.Serializer], data: Any, location: str, context: dict[str, Any] | None
) -> dict[str, Any]:
    if location == "body" and not isinstance(data, dict):
        raise RequestValidationError(
            [{"loc": ["body"], "msg": "The body must be a JSON object.", "type": "dict_type", "input": data, "ctx": {}}]
        )
    serializer = serializer_class(data=data, context=context or {})
    items = _extra_items(serializer, data, location)
    if not serializer.is_valid():
        items.extend(drf_errors_to_items(serializer.errors, [location], data))
    if items:
        raise RequestValidationError(items)
    return serializer.validated_data


def parse_body(serializer_class: type[serializers.Serializer], request, context: dict[str, Any] | None = None):
    """Validate the JSON body. Raises RequestValidationError (422) with loc ["body", ...]."""
    data = request.data
    if hasattr(data, "dict") and not isinstance(data, dict):
        data = data.dict()
    return _validate(serializer_class, data, "body", context)


def parse_query(serializer_class: type[serializers.Serializer], request, context: dict[str, Any] | None = None):
    """Validate the query string. Raises RequestValidationError (422) with loc ["query", ...]."""
    data = {key: request.query_params.get(key) for key in request.query_params}
    bad = [
        {"loc": ["query", key], "msg": problem, "type": "string_type", "input": None, "ctx": {}}
        for key, value in data.items()
        if (problem := first_unstorable_text([key, value]))
    ]
    if bad:
        raise RequestValidationError(bad)
    return _validate(serializer_class, data, "query", context)


def parse_path_uuid(value: str, name: str) -> uuid.UUID:
    """Parse a UUID path parameter. Raises RequestValidationError (422) with loc ["path", name]."""
    try:
        return uuid.UUID(str(value))
    except (ValueError, TypeError, AttributeError):
        raise RequestValidationError(
            [
                {
                    "loc": ["path", name],
                    "msg": "Input should be a valid UUID.",
                    "type": "uuid_parsing",
                    "input": value,
                    "ctx": {},
                }
            ]
        ) from None


MAX_PATH_INT = 999_999_999_999  # 12 digits


def parse_path_int(value: str, name: str) -> int:
    """Parse a positive integer path parameter. Raises RequestValidationError (422 at path.<name>)."""
    if not re.fullmatch(r"[0-9]{1,12}", value) or not 1 <= int(value) <= MAX_PATH_INT:
        raise RequestValidationError(
            [
                {
                    "loc": ["path", name],
                    "msg": "Input should be a positive integer.",
                    "type": "int_parsing",
                    "input": value,
                    "ctx": {},
                }
            ]
        )
    return int(value)
