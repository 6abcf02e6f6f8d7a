"""Django admin of the purge: the Purge page (linked from the admin index), the deal list's "Purge Redis state"
action, each deal's Redis footprint, and the read-only PurgeAudit trail. Purging is for superusers only.

The deal pages are canvas's DealWithMemoAdmin (the deals app's DealAdmin plus the memo), re-registered
here as a subclass that adds the action and the footprint, so neither deals nor canvas depends on the
superadmin app.
"""

from __future__ import annotations

import logging

from django import forms
from django.conf import settings
from django.contrib import admin, messages
from django.contrib.admin import helpers
from django.core.exceptions import PermissionDenied
from django.http import HttpRequest, HttpResponseRedirect
from django.template.defaultfilters import filesizeformat
from django.template.loader import render_to_string
from django.template.response import TemplateResponse
from django.urls import path, reverse
from django.utils.html import format_html
from django.utils.text import capfirst

from canvas.admin import DealWithMemoAdmin
from canvas_project import keys
from canvas_project.errors import DomainError, InvalidInputError
from canvas_project.store import deal_checkpoint_footprint
from deals.models import Deal
from superadmin import selectors, services
from superadmin.models import PurgeAudit, PurgeSource

logger = logging.getLogger(__name__)


class PurgeForm(forms.Form):
    mode = forms.ChoiceField(
        choices=[(services.MODE_BY_DEAL, "One deal (by_deal)"), (services.MODE_ALL, "Every deal (all)")],
        widget=forms.RadioSelect,
        initial=services.MODE_BY_DEAL,
    )
    deal_id = forms.UUIDField(required=False, label="Deal id", help_text="Required for one deal.")
    org_id = forms.UUIDField(
        required=False,
        label="Org id",
        help_text="One deal: must be its org. Every deal: only this org's deals.",
    )
    include_checkpoints = forms.BooleanField(
        required=False,
        label="Include checkpoints",
        help_text="Also run streams, cancel flags, traces and the LangGraph checkpoint threads.",
    )
    force = forms.BooleanField(required=False, help_text="With checkpoints: even while a run is active.")
    exclude_active_within_secs = forms.IntegerField(
        required=False,
        min_value=0,
        label="Skip deals active within (seconds)",
        help_text="Deals whose canvas events have an entry this recent are left alone.",
    )

    def clean(self):
        cleaned = super().clean()
        if cleaned.get("mode") == services.MODE_BY_DEAL and not cleaned.get("deal_id"):
            self.add_error("deal_id", "Give the deal id to purge one deal.")
        if cleaned.get("mode") == services.MODE_ALL and cleaned.get("deal_id"):
            self.add_error("deal_id", "Leave empty to purge every deal.")
        return cleaned


def _require_superuser(request: HttpRequest) -> None:
    if not request.user.is_superuser:
        raise PermissionDenied("Purging Redis state is for superusers.")


def _family_rows(counts: dict[str, int]) -> list[dict]:
    return [
        {
            "family": name,
            "protected": family.protected,
            "description": family.description,
            "count": counts.get(name, 0),
        }
        for name, family in keys.FAMILIES.items()
    ]


@admin.register(PurgeAudit)
class PurgeAuditAdmin(admin.ModelAdmin):
    list_display = (
        "started_at",
        "source",
        "actor_label",
        "mode",
        "deal_id",
        "dry_run",
        "include_checkpoints",
        "status",
        "keys_total",
        "duration_ms",
    )
    list_filter = ("source", "mode", "dry_run", "status", "include_checkpoints")
    search_fields = ("deal_id", "org_id", "actor_label", "id")
    date_hierarchy = "started_at"

    # The audit trail is written by the purge service only: no add, change or delete here.
    def has_add_permission(self, request):
        return False

    def has_change_permission(self, request, obj=None):
        return False

    def has_delete_permission(self, request, obj=None):
        return False

    def get_urls(self):
        purge = path("purge/", self.admin_site.admin_view(self.purge_view), name="superadmin_purge")
        return [purge, *super().get_urls()]

    def changelist_view(self, request, extra_context=None):
        extra = {"purge_url": reverse("admin:superadmin_purge"), **(extra_context or {})}
        return super().changelist_view(request, extra_context=extra)

    def purge_view(self, request: HttpRequest):
        """GET: the form. POST _preview: a dry run by family. POST _confirm: the purge itself."""
        _require_superuser(request)
        data = request.POST if request.method == "POST" else None
        form = PurgeForm(data, initial=request.GET.dict() if data is None else None)
        preview = None
        if data is not None and form.is_valid():
            confirm = "_confirm" in request.POST
            try:
                result = services.deals_purge(
                    **form.cleaned_data, dry_run=not confirm, source=PurgeSource.ADMIN, actor=request.user
                )
            except InvalidInputError as exc:
                field = str(exc.loc[-1])
                form.add_error(field if field in form.fields else None, exc.message)
            except DomainError as exc:
                form.add_error(None, exc.message)
            else:
                if confirm:
                    self.message_user(request, _done_message(result), messages.SUCCESS)
                    return HttpResponseRedirect(reverse("admin:superadmin_purgeaudit_change", args=[result.audit_id]))
                preview = result
        context = {
            **self.admin_site.each_context(request),
            "opts": self.model._meta,
            "title": "Purge per-deal Redis state",
            "form": form,
            "preview": preview,
            "preview_rows": _family_rows(preview.keys_by_family) if preview else [],
        }
        return TemplateResponse(request, "admin/superadmin/purge.html", context)


def _done_message(result: services.PurgeResult) -> str:
    return f"{capfirst(result.summary)} in {result.duration_ms} ms."


@admin.action(description="Purge Redis state", permissions=["purge"])
def purge_redis_state(modeladmin: admin.ModelAdmin, request: HttpRequest, queryset):
    """Intermediate page with each deal's dry-run counts; the purge runs once it is confirmed."""
    deals = list(queryset.order_by("name", "pk"))
    confirmed = request.POST.get("post") == "yes"
    rows, total, purged_deals, failures = [], 0, 0, []
    for deal in deals:
        try:
            result = services.deals_purge(
                mode=services.MODE_BY_DEAL,
                deal_id=deal.pk,
                dry_run=not confirmed,
                source=PurgeSource.ADMIN,
                actor=request.user,
            )
        except Exception as exc:  # one deal's failure (Redis down) is reported, the others still go
            logger.warning("admin purge of deal %s failed: %s", deal.pk, exc)
            failures.append(f"{deal}: {getattr(exc, 'message', None) or exc.__class__.__name__}")
            continue
        total += result.keys_total
        purged_deals += result.deals_purged
        rows.append(
            {
                "deal": deal,
                "counts": [result.keys_by_family[name] for name in keys.FAMILIES],
                "total": result.keys_total,
            }
        )
    if confirmed:
        if rows:
            done = services.purge_wording(dry_run=False, keys=total, deals=purged_deals)
            modeladmin.message_user(request, f"{capfirst(done)}.", messages.SUCCESS)
        for failure in failures:
            modeladmin.message_user(request, f"Not purged: {failure}", messages.ERROR)
        return None
    context = {
        **modeladmin.admin_site.each_context(request),
        "opts": modeladmin.model._meta,
        "title": "Purge Redis state of the selected deals?",
        "rows": rows,
        "families": list(keys.FAMILIES),
        "total": total,
        "summary": capfirst(services.purge_wording(dry_run=True, keys=total, deals=purged_deals)),
        "failures": failures,
        "queryset": deals,
        "action_checkbox_name": helpers.ACTION_CHECKBOX_NAME,
    }
    return TemplateResponse(request, "admin/superadmin/purge_action_confirm.html", context)


class SuperadminDealAdmin(DealWithMemoAdmin):
    actions = [*(DealWithMemoAdmin.actions or []), purge_redis_state]
    readonly_fields = (*DealWithMemoAdmin.readonly_fields, "redis_footprint", "checkpoint_footprint")

    def has_purge_permission(self, request: HttpRequest) -> bool:
        return request.user.is_superuser

    @admin.display(description="Redis footprint")
    def redis_footprint(self, obj: Deal | None) -> str:
        if obj is None or obj.pk is None:
            return "—"
        try:
            footprint = selectors.deal_redis_footprint(deal_id=obj.pk)
        except Exception as exc:  # the deal page must open while Redis (or the checkpoint table) is down
            logger.warning("footprint of deal %s unavailable: %s", obj.pk, exc)
            return format_html("<em>Unavailable: {}</em>", exc.__class__.__name__)
        purge_url = reverse("admin:superadmin_purge") + f"?mode={services.MODE_BY_DEAL}&deal_id={obj.pk}"
        return render_to_string(
            "admin/superadmin/deal_footprint.html", {"footprint": footprint, "purge_url": purge_url}
        )

    @admin.display(description="LangGraph checkpoints")
    def checkpoint_footprint(self, obj: Deal | None) -> str:
        if obj is None or obj.pk is None:
            return "—"
        try:
            footprint = deal_checkpoint_footprint(obj.pk)
        except Exception as exc:  # the deal page must open while the checkpoint tables are unreachable
            logger.warning("checkpoint footprint of deal %s unavailable: %s", obj.pk, exc)
            return format_html("<em>Unavailable: {}</em>", exc.__class__.__name__)
        return format_html(
            '<span id="checkpoint-footprint">{} threads, {} rows, {}</span> (runs keep their latest checkpoint '
            "once finished and go {} days later; chats idle {} days go)",
            footprint.threads,
            footprint.rows,
            filesizeformat(footprint.bytes),
            settings.RUN_CHECKPOINT_RETENTION_DAYS,
            settings.CHAT_RETENTION_DAYS,
        )


admin.site.unregister(Deal)
admin.site.register(Deal, SuperadminDealAdmin)
# The admin's index lists the purge page under the apps (superusers); it is a view of PurgeAuditAdmin, not a
# model, so the app list alone would only reach it through the audit's change list.
admin.site.index_template = "admin/superadmin/index.html"
