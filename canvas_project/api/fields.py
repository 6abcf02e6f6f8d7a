"""Serializer fields that do not coerce: a number sent where text belongs is a 422, not a silent str()."""

import re

from rest_framework import serializers


class StrictCharField(serializers.CharField):
    default_error_messages = {"string_type": "Input should be a valid string."}

    def to_internal_value(self, data):
        if not isinstance(data, str):
            self.fail("string_type")
        return super().to_internal_value(data)


def one_of(values, **kwargs) -> StrictCharField:
    """A string output listing its values. (An enum here would collide in the OpenAPI components with the
    other `status` and `kind` enums of the project; ENUM_NAME_OVERRIDES in settings would name them.)"""
    listed = ", ".join(f"`{v}`" for v in values)
    help_text = kwargs.pop("help_text", "")
    return StrictCharField(help_text=f"One of {listed}. {help_text}".strip(), **kwargs)


class StrictUUIDField(serializers.UUIDField):
    """A UUID as its canonical 8-4-4-4-12 text (the schema's `format: uuid`): DRF's UUIDField would also take an
    integer (0 becomes 00000000-...), 32 bare hex digits, braces or a urn: prefix."""

    CANONICAL = re.compile(r"[0-9a-fA-F]{8}-[0-9a-fA-F]{4}-[0-9a-fA-F]{4}-[0-9a-fA-F]{4}-[0-9a-fA-F]{12}")

    def to_internal_value(self, data):
        if not isinstance(data, str) or not self.CANONICAL.fullmatch(data):
            self.fail("invalid", value=data)
        return super().to_internal_value(data)
