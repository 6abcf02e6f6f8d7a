"""Request and response serializers of the collaboration endpoints (steps, collaboration mode, presence,
section locks). Inputs end in Input, outputs in Output; names are unique across the project."""

from __future__ import annotations

from rest_framework import serializers

from canvas_project.api.fields import StrictCharField, StrictUUIDField
from canvas_project.api.rules import StrictBooleanField


class StepsPushInput(serializers.Serializer):
    version = serializers.IntegerField(min_value=0, help_text="The version the steps apply to.")
    client_id = StrictCharField(min_length=1, max_length=64)
    steps = serializers.ListField(
        child=serializers.DictField(),
        min_length=1,
        max_length=100,
        help_text="Opaque steps (JSON objects, e.g. ProseMirror's); ordered, never interpreted.",
    )


class StepsPushOutput(serializers.Serializer):
    version = serializers.IntegerField()


class StepsQueryInput(serializers.Serializer):
    since = serializers.IntegerField(min_value=0)


class StepOutput(serializers.Serializer):
    version = serializers.IntegerField()
    client_id = serializers.CharField()
    step = serializers.JSONField()


class StepsOutput(serializers.Serializer):
    version = serializers.IntegerField()
    steps = StepOutput(many=True)


class CollabModeInput(serializers.Serializer):
    enabled = StrictBooleanField()


class CollabClearedOutput(serializers.Serializer):
    locks = serializers.IntegerField()
    steps = serializers.IntegerField()


class CollabModeOutput(serializers.Serializer):
    collab_enabled = serializers.BooleanField()
    cleared = CollabClearedOutput()


class PresenceInput(serializers.Serializer):
    section_key = StrictCharField(max_length=64, required=False, allow_null=True)
    cursor = serializers.JSONField(required=False, allow_null=True, help_text="Opaque cursor, at most 2 KB.")


class PresenceEntryOutput(serializers.Serializer):
    user_id = StrictUUIDField()
    display_name = serializers.CharField(allow_null=True)
    role = serializers.CharField(allow_null=True)
    section_key = serializers.CharField(allow_null=True)
    cursor = serializers.JSONField(allow_null=True)
    last_seen = serializers.DateTimeField()


class PresenceOutput(serializers.Serializer):
    window_seconds = serializers.FloatField()
    present = PresenceEntryOutput(many=True)


class LockInput(serializers.Serializer):
    ttl_seconds = serializers.IntegerField(min_value=5, max_value=300, default=60)


class LockOutput(serializers.Serializer):
    section_key = serializers.CharField()
    user_id = StrictUUIDField()
    user_name = serializers.CharField()
    token = serializers.CharField(help_text="Send it back to release the lock.")
    expires_at = serializers.DateTimeField()
    ttl_seconds = serializers.IntegerField()


class LockReleaseQueryInput(serializers.Serializer):
    token = StrictCharField(required=False, max_length=64, default="")
    force = serializers.BooleanField(required=False, default=False, help_text="Owner only.")
