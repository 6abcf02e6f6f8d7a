"""Request and response serializers of /api/orgs/{org_id}/webhook-secret."""

from __future__ import annotations

from rest_framework import serializers

from canvas_project.api.fields import StrictCharField, StrictUUIDField


class WebhookSecretOutput(serializers.Serializer):
    org_id = StrictUUIDField()
    configured = serializers.BooleanField(help_text="Whether the org has a webhook secret (webhooks need one).")
    prefix = StrictCharField(allow_null=True, help_text="The secret's first characters, to tell secrets apart.")
    created_at = serializers.DateTimeField(allow_null=True, help_text="When the current secret was issued.")
    created_by = StrictUUIDField(allow_null=True, help_text="Who issued it (null: the admin site or a deleted user).")


class WebhookSecretCreatedOutput(WebhookSecretOutput):
    secret = StrictCharField(
        help_text="The new signing secret, shown in this answer only: store it now. Receivers verify "
        "`X-Canvas-Signature` with it (HMAC-SHA256 over `<X-Canvas-Timestamp>.<body>`, the key being this whole "
        "string)."
    )
