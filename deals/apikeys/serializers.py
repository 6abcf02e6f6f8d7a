"""Request and response serializers of the API-key endpoints."""

from __future__ import annotations

from django.utils import timezone
from rest_framework import serializers

from canvas_project.api.fields import StrictCharField
from deals.apikeys import credentials
from deals.models import ApiKeyScope

NAME_MAX = 100


class ApiKeyCreateInput(serializers.Serializer):
    name = StrictCharField(min_length=1, max_length=NAME_MAX, help_text="What the key is for (1 to 100 characters).")
    scope = serializers.ChoiceField(
        choices=ApiKeyScope.choices,
        help_text="`read`: GET, HEAD and OPTIONS only; `write`: everything the key's user may do.",
    )
    expires_at = serializers.DateTimeField(
        required=False,
        allow_null=True,
        default=None,
        help_text="When the key stops working (ISO 8601, in the future); omitted or null: until revoked.",
    )

    def validate_expires_at(self, value):
        if value is not None and value <= timezone.now():
            raise serializers.ValidationError("The expiry must be in the future.", code="expires_in_past")
        return value


class ApiKeyCreatedOutput(serializers.Serializer):
    id = serializers.UUIDField()
    name = StrictCharField()
    prefix = StrictCharField(help_text="The key's first 12 characters, shown in lists to tell keys apart.")
    scope = serializers.ChoiceField(choices=ApiKeyScope.choices)
    expires_at = serializers.DateTimeField(allow_null=True)
    key = StrictCharField(
        help_text=f"The key itself, `{credentials.KEY_FORMAT}`: shown this once and never again (only a hash "
        "of it is stored). Send it as `Authorization: Bearer <key>`."
    )


class ApiKeyOutput(serializers.Serializer):
    id = serializers.UUIDField()
    name = StrictCharField()
    prefix = StrictCharField(help_text="The key's first 12 characters.")
    scope = serializers.ChoiceField(choices=ApiKeyScope.choices)
    created = serializers.DateTimeField(source="created_at")
    last_used = serializers.DateTimeField(
        source="last_used_at",
        allow_null=True,
        help_text="The last request with the key, to within a minute (API_KEY_LAST_USED_SECONDS); null: never used.",
    )
    expires_at = serializers.DateTimeField(allow_null=True, help_text="Null: until revoked. A past time: expired.")
