"""Request and response serializers of the superadmin API."""

from __future__ import annotations

from rest_framework import serializers

from canvas_project import keys
from canvas_project.api.fields import StrictUUIDField
from canvas_project.api.rules import RuledSerializer, StrictBooleanField
from superadmin.services import MODE_ALL, MODE_BY_DEAL, MODES, SKIP_REASONS


class PurgeDealsInput(RuledSerializer):
    """Request body for /api/superadmin/purge_deals."""

    mode = serializers.ChoiceField(
        choices=MODES,
        help_text="`all`: every deal in Redis (optionally one org's); `by_deal`: the deal named by deal_id.",
    )
    deal_id = StrictUUIDField(required=False, allow_null=True, help_text="Required when mode is by_deal.")
    org_id = StrictUUIDField(
        required=False,
        allow_null=True,
        help_text="by_deal: must be the deal's org (checked when the deal exists). all: only this org's deals.",
    )
    include_checkpoints = StrictBooleanField(
        default=False,
        help_text="Also purge protected families (run streams, cancel flags, traces) and delete the deals' "
        "LangGraph checkpoint threads. Refused while a run of the deal is active unless force.",
    )
    exclude_active_within_secs = serializers.IntegerField(
        required=False,
        allow_null=True,
        min_value=0,
        help_text="Skip deals whose canvas event stream has an entry newer than this many seconds.",
    )
    dry_run = StrictBooleanField(
        default=True, help_text="Count what would be purged and delete nothing. Defaults to true."
    )
    force = StrictBooleanField(
        default=False, help_text="With include_checkpoints: purge even while a run of the deal is active."
    )

    class Meta:
        ref_name = "PurgeDealsBody"

    @classmethod
    def schema_rules(cls) -> dict:
        """validate()'s rule: by_deal names a deal; all names none (null is none)."""
        return {
            "oneOf": [
                # (`not` here: a bare enum would be taken for another enum component by drf-spectacular)
                {
                    "properties": {"mode": {"not": {"enum": [MODE_ALL]}}, "deal_id": {"type": "string"}},
                    "required": ["mode", "deal_id"],
                },
                {"properties": {"mode": {"not": {"enum": [MODE_BY_DEAL]}}, "deal_id": {"not": {"type": "string"}}}},
            ]
        }

    def validate(self, attrs):
        attrs = super().validate(attrs)
        if attrs["mode"] == MODE_BY_DEAL and not attrs.get("deal_id"):
            raise serializers.ValidationError(
                {"deal_id": serializers.ErrorDetail("deal_id is required when mode is by_deal.", code="missing")}
            )
        if attrs["mode"] == MODE_ALL and attrs.get("deal_id"):
            raise serializers.ValidationError(
                {"deal_id": serializers.ErrorDetail("deal_id is only used by mode by_deal.", code="value_error")}
            )
        return attrs


class DealSkippedOutput(serializers.Serializer):
    deal_id = StrictUUIDField()
    reason = serializers.ChoiceField(
        choices=SKIP_REASONS,
        help_text="recent_activity: canvas events newer than exclude_active_within_secs; active_run: a run "
        "is queued or running and checkpoints were included without force.",
    )


KeysByFamilyOutput = type(
    "KeysByFamilyOutput",
    (serializers.Serializer,),
    {
        **{name: serializers.IntegerField(help_text=family.description) for name, family in keys.FAMILIES.items()},
        "__doc__": "Keys deleted (or, in a dry run, that would be) per family of the key registry.",
        "__module__": __name__,
    },
)


class PurgeResultOutput(serializers.Serializer):
    mode = serializers.ChoiceField(choices=MODES)
    dry_run = serializers.BooleanField()
    include_checkpoints = serializers.BooleanField()
    deals_considered = serializers.IntegerField(help_text="Deals with state in Redis (or checkpoint threads) in scope.")
    deals_purged = serializers.IntegerField(help_text="Deals purged (or that would be), i.e. considered minus skipped.")
    deals_skipped = DealSkippedOutput(many=True)
    keys_by_family = KeysByFamilyOutput()
    keys_total = serializers.IntegerField()
    checkpoint_threads_deleted = serializers.IntegerField(help_text="In a dry run: threads that would be deleted.")
    duration_ms = serializers.IntegerField()
    audit_id = StrictUUIDField(help_text="The PurgeAudit record of this call.")
    summary = serializers.CharField(
        help_text="The outcome in words, as the command and the admin say it: `would purge N keys of M deals` (dry "
        "run) or `purged N keys of M deals`, then `, T checkpoint threads` when they were included and "
        "`, S deals skipped` when any were."
    )


class FootprintKeyOutput(serializers.Serializer):
    key = serializers.CharField()
    bytes = serializers.IntegerField(help_text="MEMORY USAGE (approximate).")
    ttl_seconds = serializers.IntegerField(allow_null=True, help_text="null when the key has no TTL.")


class FamilyFootprintOutput(serializers.Serializer):
    family = serializers.ChoiceField(choices=list(keys.FAMILIES))
    protected = serializers.BooleanField()
    description = serializers.CharField()
    key_count = serializers.IntegerField()
    approx_bytes = serializers.IntegerField()
    ttl_min_seconds = serializers.IntegerField(allow_null=True)
    ttl_max_seconds = serializers.IntegerField(allow_null=True)
    keys_without_ttl = serializers.IntegerField()
    keys = FootprintKeyOutput(many=True, help_text="Up to 50 keys of the family.")


class DealRedisFootprintOutput(serializers.Serializer):
    deal_id = StrictUUIDField()
    deal_exists = serializers.BooleanField(help_text="False for Redis leftovers of a deal PostgreSQL does not know.")
    deal_name = serializers.CharField(allow_null=True)
    families = FamilyFootprintOutput(many=True)
    index_entries = serializers.IntegerField(help_text="Entries of the deal's index of variable keys.")
    index_bytes = serializers.IntegerField()
    total_keys = serializers.IntegerField()
    total_bytes = serializers.IntegerField()
    checkpoint_threads = serializers.IntegerField(help_text="LangGraph checkpoint threads of the deal (PostgreSQL).")
