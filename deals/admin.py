from django.contrib import admin
from django.contrib.admin import helpers
from django.contrib.auth.admin import UserAdmin as DjangoUserAdmin
from django.template.response import TemplateResponse

from deals.apikeys import services as api_key_services
from deals.documents import services as document_services
from deals.models import (
    ApiKey,
    Deal,
    DealAccess,
    Document,
    DocumentPage,
    Invitation,
    Org,
    OrgMembership,
    OrgWebhookSecret,
    User,
)
from deals.people import services as people_services
from deals.webhooks import services as webhook_services


@admin.register(User)
class UserAdmin(DjangoUserAdmin):
    list_display = ("username", "email", "first_name", "last_name", "is_superuser", "is_active", "date_joined")
    readonly_fields = ("id", "credentials_changed_at")
    # the password's last change ended the user's earlier sessions (deals.models.User.save)
    fieldsets = (
        *DjangoUserAdmin.fieldsets[:-1],
        (
            DjangoUserAdmin.fieldsets[-1][0],
            {"fields": (*DjangoUserAdmin.fieldsets[-1][1]["fields"], "credentials_changed_at")},
        ),
    )


class OrgMembershipInline(admin.TabularInline):
    model = OrgMembership
    extra = 0
    autocomplete_fields = ("user",)
    fields = ("user", "role", "created_at")
    readonly_fields = ("created_at",)


@admin.register(Org)
class OrgAdmin(admin.ModelAdmin):
    list_display = ("name", "id", "member_count", "created_at")
    search_fields = ("name", "id")
    readonly_fields = ("id", "created_at", "updated_at")
    inlines = [OrgMembershipInline]
    actions = ["issue_webhook_secret"]

    @admin.display(description="members")
    def member_count(self, obj: Org) -> int:
        return obj.memberships.count()

    @admin.action(description="Issue a new webhook signing secret (shown once)")
    def issue_webhook_secret(self, request, queryset):
        """A confirmation page, then a page showing each new secret once (in the response only: not in a
        message, which would travel in a cookie or the session)."""
        context = {
            **self.admin_site.each_context(request),
            "opts": self.model._meta,
            "title": "Webhook signing secrets",
            "queryset": queryset.select_related("webhook_secret"),
            "action_checkbox_name": helpers.ACTION_CHECKBOX_NAME,
            "issued": None,
        }
        if request.POST.get("post") == "yes":
            context["issued"] = [
                (org, webhook_services.org_webhook_secret_rotate(org=org, user=request.user)[1]) for org in queryset
            ]
        response = TemplateResponse(request, "admin/deals/webhook_secret.html", context)
        response["Cache-Control"] = "no-store"
        return response


@admin.register(OrgWebhookSecret)
class OrgWebhookSecretAdmin(admin.ModelAdmin):
    """Which orgs have a webhook secret, and which (its prefix); never the secret. Issued from the orgs' action;
    deleting one stops the org's webhooks (their deliveries fail until a new secret is issued)."""

    list_display = ("org", "prefix", "created_at", "created_by")
    search_fields = ("org__name", "prefix")
    fields = ("org", "prefix", "created_at", "created_by")
    readonly_fields = fields

    def has_add_permission(self, request):
        return False

    def has_change_permission(self, request, obj=None):
        return False


@admin.register(OrgMembership)
class OrgMembershipAdmin(admin.ModelAdmin):
    list_display = ("user", "org", "role", "created_at")
    list_filter = ("role", "org")
    search_fields = ("user__username", "user__email", "org__name")
    autocomplete_fields = ("user", "org")


class DealAccessInline(admin.TabularInline):
    model = DealAccess
    fk_name = "deal"
    extra = 0
    autocomplete_fields = ("user",)
    fields = ("user", "role", "granted_by", "created_at")
    readonly_fields = ("granted_by", "created_at")


@admin.register(Deal)
class DealAdmin(admin.ModelAdmin):
    list_display = (
        "name",
        "org",
        "visibility",
        "template_key",
        "document_state",
        "memo_version",
        "collab_enabled",
        "updated_at",
    )
    list_filter = ("visibility", "document_state", "template_key", "collab_enabled", "org")
    search_fields = ("name", "description", "id", "org__name")
    readonly_fields = (
        "id",
        "created_by",
        "created_at",
        "updated_at",
        "document_state",
        "memo_version",
        "nodes_version",
        "sections_populated",
        "sections_total",
        "incomplete_delivery_blocked",
        "created_blank",
    )
    autocomplete_fields = ("org",)
    inlines = [DealAccessInline]
    date_hierarchy = "updated_at"


@admin.register(DealAccess)
class DealAccessAdmin(admin.ModelAdmin):
    list_display = ("deal", "user", "role", "granted_by", "created_at")
    list_filter = ("role",)
    search_fields = ("deal__name", "user__username", "user__email")
    autocomplete_fields = ("deal", "user")
    readonly_fields = ("granted_by", "created_at", "updated_at")


@admin.register(Invitation)
class InvitationAdmin(admin.ModelAdmin):
    """Invitations are made through the API (which emails the one-time code; only its hash is stored, and never
    shown): the admin lists them and revokes pending ones."""

    list_display = ("email", "org", "role", "shown_status", "invited_by", "created_at", "expires_at")
    list_filter = ("status", "role")
    search_fields = ("email", "org__name")
    list_select_related = ("org", "invited_by")
    fields = (
        "id",
        "org",
        "email",
        "role",
        "shown_status",
        "invited_by",
        "responded_by",
        "created_at",
        "expires_at",
        "responded_at",
    )
    readonly_fields = fields
    actions = ["revoke"]

    @admin.display(description="status")
    def shown_status(self, obj: Invitation) -> str:
        return obj.shown_status

    def has_add_permission(self, request):
        return False

    def has_change_permission(self, request, obj=None):
        return False

    def has_delete_permission(self, request, obj=None):
        return False  # an answered or revoked invitation stays, as a record of who was let in by whom

    @admin.action(description="Revoke the selected pending invitations")
    def revoke(self, request, queryset):
        revoked = people_services.invitations_revoke(invitation_ids=list(queryset.values_list("pk", flat=True)))
        self.message_user(request, f"{revoked} invitation(s) revoked.")


# --- documents (deals.documents.services owns every write; the admin only calls it) -----------------


class DocumentPageInline(admin.TabularInline):
    model = DocumentPage
    fields = ("page_number", "label", "text")
    readonly_fields = fields
    extra = 0
    can_delete = False
    show_change_link = True
    max_num = 0


@admin.register(Document)
class DocumentAdmin(admin.ModelAdmin):
    list_display = ("filename", "deal", "kind", "state", "pages", "size", "uploaded_by", "created_at")
    list_filter = ("state", "kind")
    search_fields = ("filename", "deal__name", "sha256")
    list_select_related = ("deal", "uploaded_by")
    readonly_fields = (
        "id",
        "deal",
        "file",
        "filename",
        "content_type",
        "kind",
        "size",
        "sha256",
        "state",
        "error",
        "pages",
        "uploaded_by",
        "processing_started_at",
        "processed_at",
        "created_at",
        "updated_at",
    )
    inlines = [DocumentPageInline]
    actions = ["reingest"]

    def has_add_permission(self, request):
        return False  # files come in through the upload API, which sniffs and limits them

    @admin.action(description="Ingest the selected documents again")
    def reingest(self, request, queryset):
        for document in queryset:
            document_services.document_reingest(document=document)
        self.message_user(request, f"{queryset.count()} document(s) queued for ingestion.")

    def delete_model(self, request, obj):
        document_services.document_delete(document=obj)

    def delete_queryset(self, request, queryset):
        for document in queryset.select_related("deal"):
            document_services.document_delete(document=document)


@admin.register(DocumentPage)
class DocumentPageAdmin(admin.ModelAdmin):
    list_display = ("document", "page_number", "label", "deal")
    search_fields = ("document__filename", "text")
    list_select_related = ("document", "deal")
    readonly_fields = ("document", "deal", "page_number", "label", "text")

    def has_add_permission(self, request):
        return False

    def has_change_permission(self, request, obj=None):
        return False


# --- API keys (created through the API, which shows the secret once; the admin never sees it, nor its hash) ---


class ApiKeyRevokedFilter(admin.SimpleListFilter):
    title = "revoked"
    parameter_name = "revoked"

    def lookups(self, request, model_admin):
        return (("yes", "Revoked"), ("no", "Live"))

    def queryset(self, request, queryset):
        if self.value() == "yes":
            return queryset.filter(revoked_at__isnull=False)
        if self.value() == "no":
            return queryset.filter(revoked_at__isnull=True)
        return queryset


@admin.register(ApiKey)
class ApiKeyAdmin(admin.ModelAdmin):
    list_display = ("user", "name", "prefix", "scope", "created_at", "last_used_at", "expires_at", "revoked")
    list_filter = ("scope", ApiKeyRevokedFilter)
    search_fields = ("name", "prefix", "user__username", "user__email")
    list_select_related = ("user",)
    # every field but the hash; all read-only: a key changes only by being revoked
    fields = ("id", "user", "name", "prefix", "scope", "created_at", "last_used_at", "expires_at", "revoked_at")
    readonly_fields = fields
    actions = ["revoke"]

    def has_add_permission(self, request):
        return False  # a key's secret is shown once, to its user, by POST /api/auth/api-keys

    def has_delete_permission(self, request, obj=None):
        return False  # revoke instead: the row stays, with when it was revoked

    @admin.display(boolean=True, description="revoked")
    def revoked(self, obj: ApiKey) -> bool:
        return obj.revoked_at is not None

    @admin.action(description="Revoke the selected API keys")
    def revoke(self, request, queryset):
        revoked = api_key_services.api_keys_revoke(keys=queryset)
        self.message_user(request, f"{revoked} API key(s) revoked.")
