from django.contrib import admin

from canvas.models import ApprovalCondition, Comment, SectionApproval, SectionFeedback, SynthesisRun


@admin.register(SynthesisRun)
class SynthesisRunAdmin(admin.ModelAdmin):
    list_display = ("id", "deal", "status", "kind", "created_by", "created_at", "finished_at")
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
