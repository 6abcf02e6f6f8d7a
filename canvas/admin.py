from django.contrib import admin
from django.utils.html import format_html, format_html_join

from canvas.memo.selectors import progress_get, readiness_get, version_numbers, version_summaries
from canvas.models import ApprovalCondition, Comment, SectionApproval, SectionFeedback, SynthesisRun
from canvas_project.errors import StoreUnavailable
from deals.admin import DealAdmin
from deals.models import Deal
from deals.services import deal_nodes_touch


@admin.register(SynthesisRun)
class SynthesisRunAdmin(admin.ModelAdmin):
    list_display = ("id", "deal", "status", "kind", "resume_count", "created_by", "created_at", "finished_at")
    list_filter = ("status", "kind")
    search_fields = ("id", "deal__name")
    readonly_fields = [f.name for f in SynthesisRun._meta.fields]


class ApprovalConditionInline(admin.TabularInline):
    model = ApprovalCondition
    extra = 0
    fields = ("text", "resolved", "resolved_by", "resolved_at")
    readonly_fields = ("resolved_by", "resolved_at")


@admin.register(SectionApproval)
class SectionApprovalAdmin(admin.ModelAdmin):
    list_display = ("deal", "section_key", "approved_by", "reviewer_role", "quality_score", "forced", "created_at")
    list_filter = ("reviewer_role", "forced")
    search_fields = ("deal__name", "section_key")
    inlines = [ApprovalConditionInline]
    readonly_fields = ("deal", "section_key", "approved_by", "memo_version", "created_at")

    # Conditions are canvas nodes: an edit here bumps the deal's nodes_version as the review services do.
    def save_formset(self, request, form, formset, change):
        super().save_formset(request, form, formset, change)
        deal_nodes_touch(deal=form.instance.deal)

    def delete_model(self, request, obj):
        super().delete_model(request, obj)
        deal_nodes_touch(deal=obj.deal)

    def delete_queryset(self, request, queryset):
        deals = {approval.deal_id: approval.deal for approval in queryset.select_related("deal")}
        super().delete_queryset(request, queryset)
        for deal in deals.values():
            deal_nodes_touch(deal=deal)


@admin.register(SectionFeedback)
class SectionFeedbackAdmin(admin.ModelAdmin):
    list_display = ("deal", "section_key", "rating", "user", "created_at")
    list_filter = ("rating",)
    search_fields = ("deal__name", "section_key", "comment")


@admin.register(Comment)
class CommentAdmin(admin.ModelAdmin):
    list_display = ("deal", "section_key", "author", "resolved", "created_at")
    list_filter = ("resolved",)
    search_fields = ("deal__name", "section_key", "body")
    readonly_fields = ("deal", "parent", "author", "created_at", "updated_at")

    # Comments are canvas nodes: an edit here bumps the deal's nodes_version as the review services do.
    def save_model(self, request, obj, form, change):
        super().save_model(request, obj, form, change)
        deal_nodes_touch(deal=obj.deal)

    def delete_model(self, request, obj):
        super().delete_model(request, obj)
        deal_nodes_touch(deal=obj.deal)

    def delete_queryset(self, request, queryset):
        deals = {comment.deal_id: comment.deal for comment in queryset.select_related("deal")}
        super().delete_queryset(request, queryset)
        for deal in deals.values():
            deal_nodes_touch(deal=deal)


class DealWithMemoAdmin(DealAdmin):
    """The deals app's deal pages, plus what the memo of each deal looks like (read from the Store).
    Re-registered here because deals knows nothing of canvas; superadmin extends it in turn."""

    readonly_fields = (*DealAdmin.readonly_fields, "memo_overview", "memo_versions")

    @admin.display(description="memo (from the Store)")
    def memo_overview(self, obj: Deal) -> str:
        if obj.pk is None:
            return "-"
        try:
            readiness = readiness_get(deal=obj)
            progress = progress_get(deal=obj)
        except StoreUnavailable:
            return "The LangGraph Store is unavailable."
        rows = format_html_join(
            "",
            "<li>{}: {} &times; {} &mdash; {}</li>",
            ((d["label"], d["score"], d["weight"], d["why"]) for d in readiness["dimensions"]),
        )
        return format_html(
            "<p>State <b>{}</b>, version {}, {} of {} sections written.</p>"
            "<p>Readiness <b>{}</b> (grade {})</p><ul>{}</ul>",
            obj.document_state,
            obj.memo_version,
            progress["populated"],
            progress["total"],
            readiness["score"],
            readiness["grade"],
            rows,
        )

    @admin.display(description="versions (newest first)")
    def memo_versions(self, obj: Deal) -> str:
        if obj.pk is None:
            return "-"
        try:
            numbers, approvals, _current = version_numbers(deal=obj)
            newest = sorted(numbers, reverse=True)[:20]
            page = {"results": version_summaries(deal=obj, numbers=newest, approvals=approvals), "count": len(numbers)}
        except StoreUnavailable:
            return "The LangGraph Store is unavailable."
        if not page["results"]:
            return "No versions yet."
        rows = format_html_join(
            "",
            "<tr><td>{}</td><td>{}</td><td>{}</td><td>{}</td><td>{}</td></tr>",
            (
                (v["version"], v["title"], v["reason"], v["author"] or "-", "approval" if v["approval"] else "")
                for v in page["results"]
            ),
        )
        return format_html(
            "<table><tr><th>version</th><th>title</th><th>reason</th><th>author</th><th></th></tr>"
            "{}</table><p>{} versions kept in all.</p>",
            rows,
            page["count"],
        )

    def save_formset(self, request, form, formset, change):
        for grant in formset.save(commit=False):
            if grant.granted_by_id is None:
                grant.granted_by = request.user
            grant.save()
        for removed in formset.deleted_objects:
            removed.delete()
        formset.save_m2m()


admin.site.unregister(Deal)
admin.site.register(Deal, DealWithMemoAdmin)
