"""Serializer fields that do not coerce: a number sent where text belongs is a 422, not a silent str()."""

from rest_framework import serializers


class StrictCharField(serializers.CharField):
    default_error_messages = {"string_type": "Input should be a valid string."}

    def to_internal_value(self, data):
        if not isinstance(data, str):
            self.fail("string_type")
        return super().to_internal_value(data)
