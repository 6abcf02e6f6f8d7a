"""Request and response serializers of the deals app (inputs end in Input, outputs in Output)."""

from __future__ import annotations

from rest_framework import serializers
from rest_framework_simplejwt.serializers import TokenRefreshSerializer

from canvas_project.api.fields import StrictCharField, StrictUUIDField
from canvas_project.api.pagination import PageQueryInput
from canvas_project.api.rules import RuledSerializer, StrictBooleanField
from deals.models import DealRole, DocumentState, MemoKind, OrgRole, Visibility
from deals.selectors import DASHBOARD_ORDERINGS, DASHBOARD_SCOPES
from deals.tokens import UserRefreshToken

NAME_MAX = 200
DESCRIPTION_MAX = 10_000


# --- auth -------------------------------------------------------------------------------------
class TokenObtainInput(serializers.Serializer):
    username = StrictCharField(max_length=150)
    password = StrictCharField(max_length=256, trim_whitespace=False, style={"input_type": "password"})


class TokenPairOutput(serializers.Serializer):
    access = StrictCharField()
    refresh = StrictCharField()


class TokenRefreshInput(serializers.Serializer):
    refresh = StrictCharField()


class UserTokenRefreshSerializer(TokenRefreshSerializer):
    """simplejwt's refresh, with the refresh token class that requires a UUID user claim."""

    token_class = UserRefreshToken


class TokenVerifyInput(serializers.Serializer):
    token = StrictCharField()


class TokenVerifyOutput(serializers.Serializer):
    valid = serializers.BooleanField()
    token_type = StrictCharField()
    user_id = StrictUUIDField()
    deal_id = StrictUUIDField(allow_null=True)
    expires_at = serializers.DateTimeField()


class DealTokenInput(serializers.Serializer):
    user_id = StrictUUIDField()
    deal_id = StrictUUIDField()


class DealTokenOutput(serializers.Serializer):
    access = StrictCharField()
    refresh = StrictCharField()
    user_id = StrictUUIDField()
    deal_id = StrictUUIDField()


class StreamTicketInput(serializers.Serializer):
    deal_id = StrictUUIDField()


class StreamTicketOutput(serializers.Serializer):
    ticket = StrictCharField(help_text="Opaque; send it as `?ticket=` on the deal's event streams (URL-safe as it is).")
    expires_at = serializers.DateTimeField(
        help_text="Until when the ticket opens (and reopens) streams: STREAM_TICKET_SECONDS after it was issued."
    )


# --- orgs -------------------------------------------------------------------------------------
class OrgCreateInput(serializers.Serializer):
    name = StrictCharField(max_length=NAME_MAX)


class OrgOutput(serializers.Serializer):
    id = StrictUUIDField()
    name = StrictCharField()
    role = serializers.ChoiceField(choices=OrgRole.choices, source="my_role", help_text="The caller's role in the org.")
    created_at = serializers.DateTimeField()


class MemberAddInput(RuledSerializer):
    exactly_one_of = ("email", "user_id")
    email = serializers.EmailField(required=False)
    user_id = StrictUUIDField(required=False)
    role = serializers.ChoiceField(choices=OrgRole.choices, default=OrgRole.MEMBER)


class MemberRoleInput(serializers.Serializer):
    role = serializers.ChoiceField(choices=OrgRole.choices)


class MemberOutput(serializers.Serializer):
    user_id = StrictUUIDField(source="user.id")
    email = serializers.EmailField(source="user.email")
    username = StrictCharField(source="user.username")
    display_name = StrictCharField(source="user.display_name")
    role = serializers.ChoiceField(choices=OrgRole.choices)
    created_at = serializers.DateTimeField()


# --- deals ------------------------------------------------------------------------------------
TEMPLATE_CHOICES = sorted(MemoKind.values)


class DealCreateInput(serializers.Serializer):
    name = StrictCharField(max_length=NAME_MAX)
    description = StrictCharField(max_length=DESCRIPTION_MAX, required=False, allow_blank=True, default="")
    visibility = serializers.ChoiceField(choices=Visibility.choices, default=Visibility.PRIVATE)
    template_key = serializers.ChoiceField(choices=TEMPLATE_CHOICES, default=MemoKind.ACQUISITION)
    collab_enabled = StrictBooleanField(default=True)
    org_id = StrictUUIDField(required=False, help_text="Defaults to the caller's only org.")


class DealUpdateInput(RuledSerializer):
    at_least_one_of = ("name", "description", "visibility")
    name = StrictCharField(max_length=NAME_MAX, required=False)
    description = StrictCharField(max_length=DESCRIPTION_MAX, required=False, allow_blank=True)
    visibility = serializers.ChoiceField(choices=Visibility.choices, required=False, help_text="Owner only.")


class DealOutput(serializers.Serializer):
    deal_id = StrictUUIDField(source="id")
    org_id = StrictUUIDField()
    org_name = StrictCharField(source="org.name")
    name = StrictCharField()
    description = StrictCharField()
    visibility = serializers.ChoiceField(choices=Visibility.choices)
    template_key = StrictCharField()
    collab_enabled = serializers.BooleanField()
    document_state = serializers.ChoiceField(choices=DocumentState.choices)
    version = serializers.IntegerField(source="memo_version")
    user_role = serializers.ChoiceField(choices=DealRole.choices)
    created_by = StrictUUIDField(source="created_by_id", allow_null=True)
    created_at = serializers.DateTimeField()
    updated_at = serializers.DateTimeField()


class DealBatchDeleteInput(serializers.Serializer):
    deal_ids = serializers.ListField(child=StrictUUIDField(), min_length=1, max_length=100)


class DealBatchDeleteOutput(serializers.Serializer):
    deleted = serializers.ListField(child=StrictUUIDField())
    count = serializers.IntegerField()


class BlankCanvasInput(serializers.Serializer):
    deal_name = StrictCharField(min_length=1, max_length=NAME_MAX)
    org_id = StrictUUIDField(required=False, help_text="Defaults to the caller's only org.")
    template_key = serializers.ChoiceField(choices=TEMPLATE_CHOICES, default=MemoKind.ACQUISITION)


class BlankCanvasOutput(serializers.Serializer):
    deal_id = StrictUUIDField()
    redirect_url = StrictCharField()


class DashboardQueryInput(PageQueryInput):
    q = StrictCharField(
        max_length=200,
        required=False,
        allow_blank=True,
        default="",
        help_text="Keyword search in deal name and description.",
    )
    scope = serializers.ChoiceField(
        choices=DASHBOARD_SCOPES,
        default="all",
        help_text="owned: you own it; shared: granted to you; org: visible to your org.",
    )
    ordering = serializers.ChoiceField(
        choices=sorted(DASHBOARD_ORDERINGS),
        default="updated",
        help_text="updated/created: newest first; prefix '-' for oldest first; name: A to Z. Each ordering ends "
        "with the deal's id, so ties never split or repeat across pages; a cursor belongs to its ordering.",
    )


class DealProgressOutput(serializers.Serializer):
    populated = serializers.IntegerField(source="sections_populated", help_text="Sections with content.")
    total = serializers.IntegerField(source="sections_total", help_text="Sections of the memo.")


class DealQueueSummarySerializer(serializers.Serializer):
    deal_id = StrictUUIDField(source="id")
    deal_name = StrictCharField(source="name")
    document_state = serializers.ChoiceField(choices=DocumentState.choices)
    user_role = serializers.ChoiceField(choices=DealRole.choices)
    updated_at = serializers.DateTimeField()
    progress = DealProgressOutput(source="*")
    incomplete_delivery_blocked = serializers.BooleanField()
    created_at = serializers.DateTimeField()
    org_id = StrictUUIDField()
    visibility = serializers.ChoiceField(choices=Visibility.choices)
    template_key = StrictCharField()

    class Meta:
        ref_name = "DealQueueSummary"


# --- sharing ----------------------------------------------------------------------------------
class GrantCreateInput(RuledSerializer):
    exactly_one_of = ("email", "user_id")
    email = serializers.EmailField(required=False)
    user_id = StrictUUIDField(required=False)
    role = serializers.ChoiceField(choices=DealRole.choices)


class GrantUpdateInput(serializers.Serializer):
    role = serializers.ChoiceField(choices=DealRole.choices)


class GrantOutput(serializers.Serializer):
    user_id = StrictUUIDField(source="user.id")
    email = serializers.EmailField(source="user.email")
    username = StrictCharField(source="user.username")
    display_name = StrictCharField(source="user.display_name")
    role = serializers.ChoiceField(choices=DealRole.choices)
    granted_by = StrictUUIDField(source="granted_by_id", allow_null=True)
    created_at = serializers.DateTimeField()
    updated_at = serializers.DateTimeField()
