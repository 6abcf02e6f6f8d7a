"""Request and response serializers of people and invitations (inputs end in Input, outputs in Output)."""

from __future__ import annotations

from django.core.validators import RegexValidator
from rest_framework import serializers

from canvas_project.api.fields import StrictCharField
from deals.models import InvitationStatus, OrgRole
from deals.serializers import TokenPairOutput

PASSWORD_MAX = 256
TOKEN_MAX = 128


def _password_field(**kwargs) -> StrictCharField:
    return StrictCharField(max_length=PASSWORD_MAX, trim_whitespace=False, style={"input_type": "password"}, **kwargs)


class MeOrgOutput(serializers.Serializer):
    id = serializers.UUIDField()
    name = StrictCharField()
    role = serializers.ChoiceField(choices=OrgRole.choices, source="my_role", help_text="Your role in the org.")


class MeOutput(serializers.Serializer):
    id = serializers.UUIDField()
    username = StrictCharField()
    email = StrictCharField(allow_blank=True, help_text="Empty when the account has no email address.")
    orgs = MeOrgOutput(many=True)


class PasswordChangeInput(serializers.Serializer):
    current_password = _password_field()
    new_password = _password_field(help_text="Checked by the server's password validators (422 with their messages).")


class InvitationCreateInput(serializers.Serializer):
    email = serializers.EmailField(max_length=254)
    role = serializers.ChoiceField(choices=OrgRole.choices, default=OrgRole.MEMBER)


class InvitationOutput(serializers.Serializer):
    """An invitation as its org's admins see it (never its token)."""

    id = serializers.UUIDField()
    email = serializers.EmailField()
    role = serializers.ChoiceField(choices=OrgRole.choices)
    status = serializers.ChoiceField(
        choices=InvitationStatus.choices,
        source="shown_status",
        help_text="`expired`: still pending but past `expires_at`; the address may be invited again.",
    )
    invited_by = serializers.UUIDField(source="invited_by_id", allow_null=True)
    created_at = serializers.DateTimeField()
    expires_at = serializers.DateTimeField()


class InvitationOrgOutput(serializers.Serializer):
    id = serializers.UUIDField()
    name = StrictCharField()


class MyInvitationOutput(serializers.Serializer):
    """An invitation as its invitee sees it."""

    id = serializers.UUIDField()
    org = InvitationOrgOutput()
    role = serializers.ChoiceField(choices=OrgRole.choices)
    invited_by = StrictCharField(
        source="invited_by.display_name", allow_null=True, default=None, help_text="The inviter's name."
    )
    created_at = serializers.DateTimeField()
    expires_at = serializers.DateTimeField()


class InvitationAcceptInput(serializers.Serializer):
    token = StrictCharField(max_length=TOKEN_MAX, help_text="The one-time code of the invitation email.")
    username = StrictCharField(
        max_length=150,
        min_length=1,
        # Django's username rule (UnicodeUsernameValidator), written with `$` so that JSON Schema reads it too
        validators=[RegexValidator(r"^[\w.@+-]+$", "Use only letters, digits and @ . + - _.", code="username_invalid")],
        help_text="Letters, digits and @/./+/-/_ only; 150 characters at most.",
    )
    password = _password_field(help_text="Checked by the server's password validators (422 with their messages).")


class InvitationAcceptOutput(TokenPairOutput):
    """The new account, and a token pair for it (no login needed)."""

    user = MeOutput()
