"""Request rules declared once: enforced by the serializer and written into its OpenAPI schema.

- `RuledSerializer.exactly_one_of` / `at_least_one_of`: which of these keys the body must hold (JSON Schema
  `oneOf` / `anyOf` of `required`). A key counts when it is in the body, as JSON Schema's `required` counts
  it; the fields themselves refuse null and blank, so a present key always carries a value.
- `FullMatch`: a regex the whole value must match; drf-spectacular writes it as the field's `pattern`
  (Python's `$` would also accept a trailing newline, which ECMA's does not: the server matches whole).
- `StrictBooleanField`: true or false only (DRF's BooleanField also takes 0, 1, "yes", "on"...).
"""

from __future__ import annotations

import re

from django.core.validators import RegexValidator
from drf_spectacular.extensions import OpenApiSerializerExtension, OpenApiSerializerFieldExtension
from rest_framework import serializers

from canvas_project.api.fields import StrictCharField

UUID_PATTERN = "[0-9a-fA-F]{8}-[0-9a-fA-F]{4}-[0-9a-fA-F]{4}-[0-9a-fA-F]{4}-[0-9a-fA-F]{12}"


class FullMatch(RegexValidator):
    def __call__(self, value) -> None:
        if not isinstance(value, str) or not self.regex.fullmatch(value):
            raise serializers.ValidationError(self.message, code=self.code)


def uuid_or_me_field(what: str) -> StrictCharField:
    """`me` (the caller) or a user id in its canonical 8-4-4-4-12 form."""
    return StrictCharField(
        required=False,
        trim_whitespace=False,
        validators=[FullMatch(f"^(me|{UUID_PATTERN})$", message="Use `me` or a user id (UUID).", code="uuid_parsing")],
        help_text=f"`me` for the caller's own {what}, or a user id.",
    )


def comma_separated_field(values, what: str) -> StrictCharField:
    """One or several of `values`, comma-separated, no spaces."""
    choice = "|".join(re.escape(v) for v in values)
    return StrictCharField(
        required=False,
        trim_whitespace=False,
        validators=[
            FullMatch(
                f"^({choice})(,({choice}))*$",
                message=f"Use one or more of {', '.join(values)}, comma-separated.",
                code="enum",
            )
        ],
        help_text=f"One {what} or several, comma-separated.",
    )


class NameField(StrictCharField):
    """A lowercase identifier (`^[a-z][a-z0-9_]{1,39}$`), not one of `refused` (JSON Schema `not: {enum}`)."""

    PATTERN = "^[a-z][a-z0-9_]{1,39}$"
    default_error_messages = {"refused": "Not one of {refused}: those are reserved."}

    def __init__(self, *, refused: tuple[str, ...] = (), **kwargs) -> None:
        self.refused = tuple(refused)
        message = "Use lowercase letters, digits and underscores, starting with a letter (2 to 40 characters)."
        kwargs.setdefault("validators", []).append(FullMatch(self.PATTERN, message=message, code="value_error"))
        super().__init__(trim_whitespace=False, max_length=40, **kwargs)

    def to_internal_value(self, data):
        value = super().to_internal_value(data)
        if value in self.refused:
            self.fail("refused", refused=", ".join(self.refused))
        return value


class NameFieldExtension(OpenApiSerializerFieldExtension):
    target_class = NameField

    def map_serializer_field(self, auto_schema, direction):
        schema = auto_schema._map_serializer_field(self.target, direction, bypass_extensions=True)
        if self.target.refused:
            schema["not"] = {"enum": list(self.target.refused)}
        return schema


class StrictBooleanField(serializers.BooleanField):
    default_error_messages = {"invalid": "Input should be a valid boolean (true or false)."}

    def to_internal_value(self, data):
        if not isinstance(data, bool):
            self.fail("invalid")
        return data


class RuledSerializer(serializers.Serializer):
    exactly_one_of: tuple[str, ...] = ()
    at_least_one_of: tuple[str, ...] = ()
    at_least_one_message: str | None = None

    def _given(self, names: tuple[str, ...]) -> list[str]:
        """The names the body holds with a value (null counts as absent; blank is refused by the field)."""
        data = self.initial_data if isinstance(self.initial_data, dict) else {}
        return [name for name in names if data.get(name) is not None]

    def validate(self, attrs):
        attrs = super().validate(attrs)
        if self.exactly_one_of and len(self._given(self.exactly_one_of)) != 1:
            raise serializers.ValidationError(
                f"Give exactly one of {' or '.join(self.exactly_one_of)}.", code="value_error"
            )
        if self.at_least_one_of and not self._given(self.at_least_one_of):
            message = self.at_least_one_message or f"Give at least one of {', '.join(self.at_least_one_of)}."
            raise serializers.ValidationError(message, code="missing")
        return attrs

    @classmethod
    def schema_rules(cls) -> dict:
        """The JSON Schema keywords of the rules above, for the request body's schema."""
        fields = cls().fields

        def holds(name: str) -> dict:
            alternative: dict = {"required": [name]}
            if fields[name].allow_null:  # null counts as absent
                alternative["properties"] = {name: {"not": {"enum": [None]}}}
            return alternative

        rules: dict = {}
        if cls.exactly_one_of:
            rules["oneOf"] = [holds(name) for name in cls.exactly_one_of]
        if cls.at_least_one_of:
            rules["anyOf"] = [holds(name) for name in cls.at_least_one_of]
        return rules


class RuledSerializerExtension(OpenApiSerializerExtension):
    target_class = RuledSerializer
    match_subclasses = True

    def map_serializer(self, auto_schema, direction):
        schema = auto_schema._map_serializer(self.target, direction, bypass_extensions=True)
        if direction == "request":
            serializer_class = self.target if isinstance(self.target, type) else type(self.target)
            schema.update(serializer_class.schema_rules())
        return schema
