"""Writes of the review: section approvals and their conditions, ratings, comments, suggestions.

Whatever changes the memo (a section's state, an accepted suggestion's text) goes through the memo's
one write path, canvas.memo.writes.memo_write, called inside the Django transaction that creates the
review rows: a write the memo refuses (approved memo, stale version, a section locked by someone else)
raises before anything commits, so it leaves no approval, condition or decision behind. The Store has
its own connection, so the two commits are not one: the Store's comes first, and a failure between the
two (PostgreSQL lost at that instant) leaves the section's new state without its review row, never a
row without the state.

Suggestions, top-level comments and approval conditions are canvas nodes (canvas.nodes): every write of
one bumps the deal's `nodes_version` (deals.services.deal_nodes_touch) in the transaction that writes it, so
the engines' cached canvas context never outlives it.
"""

from __future__ import annotations

import uuid
from dataclasses import dataclass, field

from django.conf import settings
from django.db import transaction
from django.utils import timezone

from canvas.memo import session
from canvas.memo.errors import ContentTooLarge, SectionNotFound, TransitionRefused
from canvas.memo.selectors import memo_or_template, require_memo_section
from canvas.memo.types import Memo, Section, SectionState
from canvas.memo.writes import WriteOutcome, memo_write, section_touch
from canvas.models import (
    ApprovalCondition,
    Comment,
    SectionApproval,
    SectionFeedback,
    Suggestion,
    SuggestionStatus,
)
from canvas.review.errors import (
    CommentNotFound,
    ConditionNotFound,
    SuggestionNotFound,
    SuggestionNotPending,
    SuggestionOutdated,
    UnresolvedComments,
)
from canvas.review.suggestions import apply_change
from canvas_project import events
from canvas_project.errors import InvalidInputError
from deals.errors import RoleTooLow
from deals.models import Deal, DealRole, User, role_rank
from deals.services import deal_nodes_touch


# --- section approvals ------------------------------------------------------------------------------
@dataclass
class ApprovalResult:
    approval: SectionApproval
    conditions: list[ApprovalCondition] = field(default_factory=list)
    section_state: str = SectionState.APPROVED
    # True only when resolving the last condition promoted a `reviewed` section to `approved`
    auto_promoted: bool = False

    @property
    def all_conditions_resolved(self) -> bool:
        return all(c.resolved for c in self.conditions)


def section_approve(
    *,
    deal: Deal,
    user: User,
    role: str,
    key: str,
    comment: str,
    reviewer_role: str,
    quality_score: int | None,
    conditions: list[str],
    force: bool,
) -> ApprovalResult:
    """Approve a section; with conditions it is `reviewed` until they are all resolved, then `approved`.

    Raises SectionNotFound, TransitionRefused (empty section), UnresolvedComments (open comments on the
    section, unless an owner forces), RoleTooLow (force by a non-owner), MemoApproved, SectionLocked,
    StoreUnavailable. On any of them no approval row is left.
    """
    if force and role_rank(role) < role_rank(DealRole.OWNER):
        raise RoleTooLow("Only an owner can force an approval over unresolved comments.")
    state = SectionState.REVIEWED if conditions else SectionState.APPROVED
    result: ApprovalResult | None = None

    def change(memo: Memo, now: str) -> None:
        nonlocal result
        section = memo.sections.get(key)
        if section is None:
            raise SectionNotFound()
        if not section.populated:
            raise TransitionRefused("An empty section cannot be approved; write or generate it first.")
        open_comments = Comment.objects.filter(deal=deal, section_key=key, resolved=False, parent=None).count()
        if open_comments and not force:
            raise UnresolvedComments(
                f"{open_comments} unresolved comment(s) on this section; resolve them, or an owner can force.",
                unresolved_comments=open_comments,
            )
        approval = SectionApproval.objects.create(
            deal=deal,
            section_key=key,
            approved_by=user,
            reviewer_role=reviewer_role,
            comment=comment,
            quality_score=quality_score,
            forced=bool(force and open_comments),
            memo_version=memo.version,
        )
        created = [
            ApprovalCondition.objects.create(approval=approval, deal=deal, section_key=key, text=text)
            for text in conditions
        ]
        section.state = state
        result = ApprovalResult(approval=approval, conditions=created, section_state=state)

    with transaction.atomic():
        memo_write(deal=deal, user=user, change=change, event="section_approved", event_payload={"section_key": key})
        if result is not None and result.conditions:
            deal_nodes_touch(deal=deal)
    assert result is not None  # set by change(), which ran without raising
    return result


def condition_resolve(*, deal: Deal, user: User, section_key: str, condition_id: int) -> ApprovalResult:
    """Resolve an approval condition; the last one of the section's latest approval promotes the section
    from `reviewed` to `approved` (auto_promoted).

    Raises ConditionNotFound, MemoApproved, SectionLocked, StoreUnavailable.
    """
    with transaction.atomic():
        condition = (
            ApprovalCondition.objects.select_for_update()
            .select_related("approval")
            .filter(pk=condition_id, deal=deal, section_key=section_key)
            .first()
        )
        if condition is None:
            raise ConditionNotFound()
        if not condition.resolved:
            condition.resolved, condition.resolved_by, condition.resolved_at = True, user, timezone.now()
            condition.save(update_fields=["resolved", "resolved_by", "resolved_at"])
            deal_nodes_touch(deal=deal)
        approval = condition.approval
        conditions = list(approval.conditions.order_by("created_at", "pk"))
        latest = SectionApproval.objects.filter(deal=deal, section_key=approval.section_key).first()
        result = ApprovalResult(approval=approval, conditions=conditions, section_state=SectionState.REVIEWED)
        if not (all(c.resolved for c in conditions) and latest is not None and latest.pk == approval.pk):
            transaction.on_commit(lambda: session.cache_drop_quietly(deal.pk))  # readiness counts open conditions
            return result

        def change(memo: Memo, now: str) -> None:
            section = memo.sections.get(approval.section_key)
            current = section.state if section is not None else SectionState.DRAFT
            if current == SectionState.REVIEWED:
                section.state = SectionState.APPROVED
                result.auto_promoted = True
            approved = current in (SectionState.REVIEWED, SectionState.APPROVED)
            result.section_state = SectionState.APPROVED if approved else current

        outcome = memo_write(
            deal=deal,
            user=user,
            change=change,
            event="section_approved",
            event_payload={"section_key": approval.section_key},
        )
        if not outcome.wrote:
            transaction.on_commit(lambda: session.cache_drop_quietly(deal.pk))
    return result


# --- ratings and comments ---------------------------------------------------------------------------
def feedback_create(
    *, deal: Deal, user: User, section_key: str, rating: int, comment: str, tags: list[str]
) -> SectionFeedback:
    """Rate a section. Raises SectionNotFound, StoreUnavailable."""
    require_memo_section(deal, section_key)
    feedback = SectionFeedback.objects.create(
        deal=deal, section_key=section_key, user=user, rating=rating, comment=comment, tags=tags
    )
    session.cache_drop_quietly(deal.pk)  # readiness reads ratings
    events.emit(deal.pk, "feedback_created", {"section_key": section_key, "rating": rating}, actor_id=user.pk)
    return feedback


def comment_create(*, deal: Deal, user: User, section_key: str, body: str, parent_id=None) -> Comment:
    """Comment on a section, or reply to a comment. Raises SectionNotFound, CommentNotFound, StoreUnavailable."""
    parent = None
    if parent_id is not None:
        parent = Comment.objects.filter(pk=parent_id, deal=deal).first()
        if parent is None:
            raise CommentNotFound("The comment you reply to does not exist on this deal.")
        parent = parent.parent or parent  # replies thread under the top-level comment
        section_key = parent.section_key
    else:
        require_memo_section(deal, section_key)
    with transaction.atomic():
        comment = Comment.objects.create(deal=deal, section_key=section_key, parent=parent, author=user, body=body)
        if parent is None:  # only top-level comments are nodes
            deal_nodes_touch(deal=deal)
    session.cache_drop_quietly(deal.pk)
    events.emit(
        deal.pk, "comment_created", {"comment_id": str(comment.pk), "section_key": section_key}, actor_id=user.pk
    )
    return comment


def comment_resolve(*, deal: Deal, user: User, role: str, comment_id) -> Comment:
    """Resolve a comment thread: its author, or an editor and up. Raises CommentNotFound, RoleTooLow."""
    comment = Comment.objects.filter(pk=comment_id, deal=deal).select_related("author").first()
    if comment is None:
        raise CommentNotFound()
    if comment.author_id != user.pk and role_rank(role) < role_rank(DealRole.EDITOR):
        raise RoleTooLow("Only the comment's author or an editor can resolve it.")
    if not comment.resolved:
        comment.resolved, comment.resolved_by, comment.resolved_at = True, user, timezone.now()
        with transaction.atomic():
            comment.save(update_fields=["resolved", "resolved_by", "resolved_at", "updated_at"])
            if comment.parent_id is None:
                deal_nodes_touch(deal=deal)
        session.cache_drop_quietly(deal.pk)
        events.emit(
            deal.pk,
            "comment_resolved",
            {"comment_id": str(comment.pk), "section_key": comment.section_key},
            actor_id=user.pk,
        )
    return comment


# --- suggestions ------------------------------------------------------------------------------------
def suggestion_create(
    *,
    deal: Deal,
    user: User,
    section_key: str,
    kind: str,
    anchor_text: str,
    occurrence: int,
    content: str,
    comment: str,
) -> Suggestion:
    """Propose a change to a section. The anchor must occur in the section's current text (an insert with
    an empty anchor appends and needs none). Emits suggestion_created.

    Raises SectionNotFound, InvalidInputError (422 at body.anchor_text or body.occurrence when the anchor
    does not match), StoreUnavailable.
    """
    memo = memo_or_template(deal)  # a memo never opened: the template's sections, all empty
    section = memo.sections.get(section_key)
    if section is None:
        raise SectionNotFound(f"This memo has no section {section_key!r}.")
    if anchor_text:
        found = section.markdown.count(anchor_text)
        if found == 0:
            raise InvalidInputError(
                "The anchor text does not occur in the section's current text.",
                loc=["body", "anchor_text"],
                value=anchor_text,
                code="anchor_not_found",
            )
        if found < occurrence:
            raise InvalidInputError(
                f"The anchor text occurs {found} time(s) in the section's current text, not {occurrence}.",
                loc=["body", "occurrence"],
                value=occurrence,
                code="anchor_not_found",
            )
    with transaction.atomic():
        suggestion = Suggestion.objects.create(
            deal=deal,
            section_key=section_key,
            kind=kind,
            anchor_text=anchor_text,
            occurrence=occurrence,
            content=content,
            comment=comment,
            author=user,
            base_version=memo.version,
        )
        deal_nodes_touch(deal=deal)
    suggestion.anchor_matches = True
    events.emit(
        deal.pk,
        "suggestion_created",
        {"suggestion_id": str(suggestion.pk), "section_key": section_key, "kind": kind},
        actor_id=user.pk,
    )
    return suggestion


def _pending_for_update(deal: Deal, suggestion_id: uuid.UUID) -> Suggestion:
    suggestion = (
        Suggestion.objects.select_for_update(of=("self",))
        .select_related("author")
        .filter(pk=suggestion_id, deal=deal)
        .first()
    )
    if suggestion is None:
        raise SuggestionNotFound()
    if suggestion.status != SuggestionStatus.PENDING:
        raise SuggestionNotPending(
            f"This suggestion was already {suggestion.status}; only a pending one can be accepted or rejected.",
            status=suggestion.status,
        )
    return suggestion


def _decide(suggestion: Suggestion, *, deal: Deal, user: User, status: str, applied_version: int | None = None) -> None:
    suggestion.status = status
    suggestion.decided_by = user
    suggestion.decided_at = timezone.now()
    suggestion.applied_version = applied_version
    suggestion.anchor_matches = None
    suggestion.save(update_fields=["status", "decided_by", "decided_at", "applied_version", "updated_at"])
    deal_nodes_touch(deal=deal)


@dataclass(frozen=True)
class AcceptOutcome:
    suggestion: Suggestion
    write: WriteOutcome

    @property
    def section(self) -> Section:
        return self.write.memo.sections[self.suggestion.section_key]


def suggestion_accept(
    *, deal: Deal, user: User, suggestion_id: uuid.UUID, base_version: int | None = None
) -> AcceptOutcome:
    """Apply a pending suggestion to the section's current text as a new memo version (snapshot
    "suggestion <id> accepted", event suggestion_accepted).

    The suggestion's row stays locked from the status check until it is marked accepted, so two editors
    accepting at once apply it once; the other gets SuggestionNotPending.

    Raises SuggestionNotFound, SuggestionNotPending, SuggestionOutdated (the anchor no longer matches, or
    the section is gone; the suggestion stays pending), SectionLocked (with collaboration off, the section
    is locked by someone else), ContentTooLarge, StaleVersion, MemoApproved, StoreUnavailable.
    """
    with transaction.atomic():
        suggestion = _pending_for_update(deal, suggestion_id)
        key = suggestion.section_key

        def change(memo: Memo, now: str) -> None:
            section = memo.sections.get(key)
            if section is None:
                raise SuggestionOutdated(f"The section {key!r} no longer exists; reject this suggestion.")
            text = apply_change(
                section.markdown,
                kind=suggestion.kind,
                anchor=suggestion.anchor_text,
                occurrence=suggestion.occurrence,
                content=suggestion.content,
            )
            if text is None:
                raise SuggestionOutdated(
                    f"The section {key!r} changed since this suggestion was made (version "
                    f"{suggestion.base_version}, now {memo.version}): occurrence {suggestion.occurrence} of "
                    "its anchor text is no longer there. Reject it, or ask for a new suggestion.",
                    current_version=memo.version,
                )
            if len(text) > settings.CANVAS_MAX_CONTENT_CHARS:
                raise ContentTooLarge(
                    f"With this suggestion the section would be {len(text):,} "
                    f"characters; the limit is {settings.CANVAS_MAX_CONTENT_CHARS:,}."
                )
            section_touch(section, text, user=user, now=now)
            memo.start_editing()

        write = memo_write(
            deal=deal,
            user=user,
            change=change,
            base_version=base_version,
            snapshot=f"suggestion {suggestion.pk} accepted",
            event="suggestion_accepted",
            event_payload={"suggestion_id": str(suggestion.pk), "section_key": suggestion.section_key},
        )
        _decide(suggestion, deal=deal, user=user, status=SuggestionStatus.ACCEPTED, applied_version=write.memo.version)
    return AcceptOutcome(suggestion=suggestion, write=write)


def suggestion_reject(*, deal: Deal, user: User, suggestion_id: uuid.UUID) -> Suggestion:
    """Reject a pending suggestion; the memo is untouched. Emits suggestion_rejected.

    Raises SuggestionNotFound, SuggestionNotPending.
    """
    with transaction.atomic():
        suggestion = _pending_for_update(deal, suggestion_id)
        _decide(suggestion, deal=deal, user=user, status=SuggestionStatus.REJECTED)
    events.emit(
        deal.pk,
        "suggestion_rejected",
        {"suggestion_id": str(suggestion.pk), "section_key": suggestion.section_key},
        actor_id=user.pk,
    )
    return suggestion
