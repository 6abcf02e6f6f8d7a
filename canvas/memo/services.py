"""Writes of the canvas: the session (get-or-create), save, section edits, lifecycle, review, versions.

Every durable write of the memo goes through `_write_memo`: one serialized Store transaction that
checks `base_version`, applies the change, bumps the version, snapshots when content changed, and
keeps retention; afterwards the deal's summary row is brought in step, the cached session dropped
and an event emitted.
"""

from __future__ import annotations

import logging
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import UTC, datetime

import orjson
import redis
from django.conf import settings
from django.db import transaction
from django.utils import timezone

from canvas.memo import markdown as memo
from canvas.memo import session
from canvas.memo.errors import (
    CommentNotFound,
    ConditionNotFound,
    ContentTooLarge,
    MemoApproved,
    SectionNotFound,
    StaleVersion,
    TransitionRefused,
    UnresolvedComments,
    VersionNotFound,
)
from canvas.memo.readiness import compute_readiness
from canvas.memo.selectors import active_run_ids, review_signals
from canvas.memo.store import CanvasDoc, CanvasWriter, blank_section, canvas_write, new_canvas, new_section, read_canvas
from canvas.models import ApprovalCondition, Comment, SectionApproval, SectionFeedback
from canvas_project import events
from deals.errors import RoleTooLow
from deals.models import Deal, DealRole, User, role_rank

logger = logging.getLogger(__name__)
REDIS_ERRORS = (redis.exceptions.ConnectionError, redis.exceptions.TimeoutError)
REDIS_DOWN_WARNING = (
    "Redis is unavailable: this session was read straight from the store and live "
    "collaboration is paused until Redis is back."
)


def _now() -> str:
    return datetime.now(UTC).isoformat()


def _actor_name(user: User | None) -> str | None:
    return user.display_name if user is not None else None


# --- the session ----------------------------------------------------------------------------------
def _create_canvas(deal: Deal, user: User | None) -> CanvasDoc:
    with canvas_write(deal.pk) as writer:
        doc = writer.load()
        if doc is not None:  # created meanwhile by a concurrent first GET
            return doc
        doc = new_canvas(
            deal_id=str(deal.pk),
            template_key=deal.template_key,
            is_blank=deal.created_blank,
            created_by=str(user.pk) if user else None,
            now=_now(),
        )
        writer.put_head(doc.head)
        for section in doc.sections.values():
            writer.put_section(section)
    doc.exists = True
    return doc


def _load_or_create(deal: Deal, user: User | None) -> CanvasDoc:
    doc = read_canvas(deal.pk)
    return doc if doc is not None else _create_canvas(deal, user)


def _fresh_payload(deal: Deal, doc: CanvasDoc) -> dict:
    readiness = compute_readiness(doc, review_signals(deal_id=deal.pk))
    return session.build_payload(
        deal=deal, doc=doc, readiness=readiness, run_in_progress=bool(active_run_ids(deal_id=deal.pk))
    )


def _sync_deal_summary(deal: Deal, payload: dict) -> None:
    """Bring the deal row's memo summary (used by the dashboard and to validate the cache) in step."""
    summary = {
        "memo_version": payload["version"],
        "document_state": payload["document_state"],
        "sections_populated": payload["progress"]["populated"],
        "sections_total": payload["progress"]["total"],
        "incomplete_delivery_blocked": payload["incomplete_delivery_blocked"],
    }
    if any(getattr(deal, name) != value for name, value in summary.items()):
        # never move the version backwards: a slower concurrent writer may finish last. No
        # updated_at bump: reading a memo is not a change to the deal.
        Deal.objects.filter(pk=deal.pk, memo_version__lte=payload["version"]).update(**summary)
        for name, value in summary.items():
            setattr(deal, name, value)


def canvas_session_bytes(*, deal: Deal, role: str, user: User | None) -> bytes:
    """The session for the caller as JSON bytes: the cached body when current (one Redis GET, no
    parsing), else built from the Store and cached. Raises StoreUnavailable when the Store is down
    and no current cache exists."""
    warning = None
    try:
        cached = session.cache_get_raw(deal)
    except REDIS_ERRORS:
        cached, warning = None, REDIS_DOWN_WARNING
    if cached is not None:
        header, body = cached
        return session.respond_bytes(header, body, deal=deal, role=role, warning=None)

    doc = _load_or_create(deal, user)
    payload = _fresh_payload(deal, doc)
    _sync_deal_summary(deal, payload)
    header, body, value = session.encode(payload)
    if warning is None:
        try:
            session.cache_put_encoded(payload["deal_id"], payload["version"], value)
        except REDIS_ERRORS:
            warning = REDIS_DOWN_WARNING
    return session.respond_bytes(header, body, deal=deal, role=role, warning=warning)


def canvas_session_get(*, deal: Deal, role: str, user: User | None) -> dict:
    """canvas_session_bytes, parsed: for services that read the session."""
    return orjson.loads(canvas_session_bytes(deal=deal, role=role, user=user))


def canvas_refresh(*, deal: Deal, role: str, user: User) -> dict:
    """Rebuild the session from the Store and rewrite the cache; emits session_refreshed.

    Raises StoreUnavailable, redis errors (the caller needs Redis for this write).
    """
    previous = session.cache_get(deal)
    doc = _load_or_create(deal, user)
    payload = _fresh_payload(deal, doc)
    _sync_deal_summary(deal, payload)
    session.cache_drop(deal.pk)
    session.cache_put(payload)
    changed = previous is None or previous.get("markdown_content") != payload["markdown_content"]
    events.emit(deal.pk, "session_refreshed", {"version": payload["version"], "changed": changed}, actor_id=user.pk)
    return session.with_role(payload, deal=deal, role=role, warning=None)


def canvas_discard(*, deal_id) -> None:
    """Forget everything of a deleted deal outside its PostgreSQL rows: the memo and its snapshots in
    the Store, its LangGraph checkpoint threads, and its Redis keys of every family.

    Best effort: each part that fails is logged and left for the TTLs or a superadmin purge.
    """
    from canvas.memo.store import delete_canvas
    from canvas_project import keyspace
    from canvas_project.store import delete_deal_threads

    steps = (
        ("store", lambda: delete_canvas(deal_id)),
        ("checkpoints", lambda: delete_deal_threads(deal_id)),
        (
            "redis",
            lambda: keyspace.purge_deal_keys(
                client=keyspace.purge_redis_client(), deal_id=str(deal_id), include_protected=True, dry_run=False
            ),
        ),
    )
    for name, step in steps:
        try:
            step()
        except Exception:  # noqa: BLE001 - every part is independent and recoverable
            logger.exception("discarding %s of deleted deal %s failed", name, deal_id)


# --- the write path -------------------------------------------------------------------------------
@dataclass
class WriteOutcome:
    doc: CanvasDoc
    changed_keys: list[str] = field(default_factory=list)
    wrote: bool = False
    from_state: str | None = None


Mutation = Callable[[CanvasDoc, str], list[str] | None]


def _snapshot(doc: CanvasDoc, *, deal: Deal, reason: str, user: User | None, now: datetime, approval: bool) -> dict:
    return {
        "version": doc.version,
        "title": f"{deal.name}_{now.strftime('%Y_%m_%d_%H_%M_%S')}",
        "reason": reason,
        "author_id": str(user.pk) if user else None,
        "author": _actor_name(user),
        "created_at": now.isoformat(),
        "state": doc.state,
        "approval": approval,
        "markdown": doc.markdown(),
        "sections": {
            key: {
                k: s.get(k)
                for k in (
                    "key",
                    "title",
                    "order",
                    "required",
                    "custom",
                    "state",
                    "markdown",
                    "source",
                    "citations",
                    "delivery",
                )
            }
            for key, s in doc.sections.items()
        },
    }


def _apply_retention(writer: CanvasWriter, doc: CanvasDoc) -> None:
    keep = max(1, settings.CANVAS_VERSION_RETENTION)
    approvals = set(doc.head.get("approval_versions", []))
    ordinary = [v for v in doc.head["versions"] if v not in approvals]
    for version in ordinary[:-keep]:
        writer.delete_snapshot(version)
        doc.head["versions"].remove(version)


def _check_base_version(doc: CanvasDoc, base_version: int | None, base_section: str | None) -> None:
    """Raises StaleVersion when a write based on `base_version` would lose an update.

    A write of the whole memo needs the memo as it is (base_version == its version). A write of one
    section (`base_section`) needs only that section as it is: it is stale when the section was written
    after base_version, whatever happened to the other sections meanwhile, so two editors of different
    sections do not turn each other away. A section stored before sections recorded their version is
    checked against the whole memo's.
    """
    if base_version is None:
        return
    section = doc.sections.get(base_section) if base_section is not None else None
    if section is None or "version" not in section:
        if base_version != doc.version:
            raise StaleVersion(current_version=doc.version, base_version=base_version)
        return
    if not section["version"] <= base_version <= doc.version:
        raise StaleVersion(
            current_version=doc.version,
            base_version=base_version,
            section_key=base_section,
            section_version=section["version"],
        )


def _write_memo(
    *,
    deal: Deal,
    user: User | None,
    base_version: int | None,
    mutate: Mutation,
    snapshot_reason: str | None,
    event: str,
    allow_when_approved: bool = False,
    approval_snapshot: bool = False,
    event_payload: dict | None = None,
    base_section: str | None = None,
) -> WriteOutcome:
    """Apply `mutate` to the memo in one serialized Store transaction.

    `mutate(doc, now)` changes doc in place and returns the changed section keys (an empty list
    means "head only"), or None when nothing changed (no new version). `base_version` is checked
    against the whole memo, or only against section `base_section` (_check_base_version); every
    section written records the new version. Raises StaleVersion, MemoApproved, StoreUnavailable and
    whatever `mutate` raises.
    """
    now_dt = datetime.now(UTC)
    now = now_dt.isoformat()
    with canvas_write(deal.pk) as writer:
        doc = writer.load() or new_canvas(
            deal_id=str(deal.pk),
            template_key=deal.template_key,
            is_blank=deal.created_blank,
            created_by=str(user.pk) if user else None,
            now=now,
        )
        _check_base_version(doc, base_version, base_section)
        if doc.state == "approved" and not allow_when_approved:
            raise MemoApproved()
        from_state = doc.state
        changed = mutate(doc, now)
        if changed is None:
            return WriteOutcome(doc=doc, from_state=from_state)
        doc.head["version"] = doc.version + 1
        doc.head["last_modified_at"] = now
        doc.head["last_modified_by"] = _actor_name(user)
        doc.head["last_modified_by_id"] = str(user.pk) if user else None
        # a memo written for the first time gets every section stored, not only the changed ones
        to_write = changed if doc.exists else sorted(set(changed) | set(doc.sections))
        for key in changed:
            if key in doc.sections:
                doc.sections[key]["version"] = doc.version
        for key in to_write:
            if key in doc.sections:
                writer.put_section(doc.sections[key])
            else:
                writer.delete_section(key)
        if snapshot_reason is not None:
            writer.put_snapshot(
                _snapshot(doc, deal=deal, reason=snapshot_reason, user=user, now=now_dt, approval=approval_snapshot)
            )
            doc.head.setdefault("versions", []).append(doc.version)
            if approval_snapshot:
                doc.head.setdefault("approval_versions", []).append(doc.version)
            _apply_retention(writer, doc)
        writer.put_head(doc.head)
    _after_write(deal, doc, user=user, event=event, changed=changed, extra=event_payload)
    return WriteOutcome(doc=doc, changed_keys=changed, wrote=True, from_state=from_state)


def _after_write(
    deal: Deal, doc: CanvasDoc, *, user: User | None, event: str, changed: list[str], extra: dict | None = None
) -> None:
    populated = len(doc.populated_keys())
    summary = {
        "memo_version": doc.version,
        "document_state": doc.state,
        "sections_populated": populated,
        "sections_total": len(doc.sections),
        "incomplete_delivery_blocked": session.incomplete_delivery_blocked(doc),
    }
    Deal.objects.filter(pk=deal.pk, memo_version__lt=doc.version).update(**summary, updated_at=timezone.now())
    for name, value in summary.items():
        setattr(deal, name, value)
    try:
        session.cache_drop(deal.pk)
    except REDIS_ERRORS:
        # the cache is validated against the deal row's version, so a stale entry is never served
        logger.warning("could not drop the cached session of deal %s: Redis unavailable", deal.pk)
    events.emit(
        deal.pk,
        event,
        {"version": doc.version, "sections": changed, "state": doc.state, **(extra or {})},
        actor_id=user.pk if user else None,
    )


def _touch_section(section: dict, *, markdown: str, user: User | None, now: str) -> None:
    section["markdown"] = markdown
    section["source"] = "human"
    section["updated_at"] = now
    section["updated_by"] = str(user.pk) if user else None
    section["updated_by_name"] = _actor_name(user)
    section["state"] = "editing"
    section["delivery"] = "delivered" if markdown.strip() else "missing"
    section["citations"] = memo.parse_citations(markdown)


def _check_size(content: str) -> None:
    if len(content) > settings.CANVAS_MAX_CONTENT_CHARS:
        raise ContentTooLarge(
            f"The memo is {len(content):,} characters; the limit is {settings.CANVAS_MAX_CONTENT_CHARS:,}."
        )


def _start_editing(doc: CanvasDoc) -> None:
    if doc.state == "draft":
        doc.head["state"] = "editing"
    doc.head["is_blank"] = False


def canvas_save(*, deal: Deal, user: User, content: str, base_version: int | None) -> WriteOutcome:
    """Save the whole memo: split it into sections, write those that changed.

    Raises ContentTooLarge, StaleVersion, MemoApproved, StoreUnavailable.
    """
    _check_size(content)

    def mutate(doc: CanvasDoc, now: str) -> list[str] | None:
        parsed = memo.split_markdown(content, doc.template)
        changed: list[str] = []
        last_order = 0.0
        for position, part in enumerate(parsed.sections):
            section = doc.sections.get(part.key)
            if section is None:
                spec = doc.template.section(part.key)
                section = (
                    blank_section(spec, now=now)
                    if spec
                    else new_section(
                        key=part.key,
                        title=part.title,
                        order=last_order + 0.001 * (position + 1),
                        required=False,
                        custom=True,
                        now=now,
                    )
                )
                doc.sections[part.key] = section
                changed.append(part.key)
            last_order = section.get("order", last_order)
            if section.get("markdown", "") != part.markdown or (part.custom and section["title"] != part.title):
                section["title"] = part.title if part.custom else section["title"]
                _touch_section(section, markdown=part.markdown, user=user, now=now)
                if part.key not in changed:
                    changed.append(part.key)
        present = parsed.by_key()
        for key, section in list(doc.sections.items()):
            if key in present:
                continue
            if section.get("custom"):
                del doc.sections[key]
                changed.append(key)
            elif (section.get("markdown") or "").strip():
                _touch_section(section, markdown="", user=user, now=now)
                changed.append(key)
        if not changed:
            return None
        _start_editing(doc)
        return changed

    return _write_memo(
        deal=deal, user=user, base_version=base_version, mutate=mutate, snapshot_reason="save", event="document_saved"
    )


def section_update(
    *, deal: Deal, user: User, key: str, markdown: str, title: str | None, base_version: int | None
) -> WriteOutcome:
    """Edit one section. Raises SectionNotFound, ContentTooLarge, StaleVersion, MemoApproved, StoreUnavailable."""
    _check_size(markdown)

    def mutate(doc: CanvasDoc, now: str) -> list[str] | None:
        section = doc.sections.get(key)
        if section is None:
            raise SectionNotFound(f"This memo has no section {key!r}; save the whole memo to add custom sections.")
        new_title = title if (title and section.get("custom")) else section["title"]
        if section.get("markdown", "") == markdown and new_title == section["title"]:
            return None
        section["title"] = new_title
        _touch_section(section, markdown=markdown, user=user, now=now)
        _start_editing(doc)
        return [key]

    return _write_memo(
        deal=deal,
        user=user,
        base_version=base_version,
        mutate=mutate,
        snapshot_reason=f"section {key} edited",
        event="section_updated",
        base_section=key,
    )


# --- lifecycle --------------------------------------------------------------------------------------
@dataclass(frozen=True)
class TransitionResult:
    success: bool
    from_state: str
    to_state: str | None
    error: str | None = None
    details: dict | None = None


def memo_approve(*, deal: Deal, user: User, role: str) -> TransitionResult:
    """editing -> approved, minting an immutable approval snapshot. Raises TransitionRefused, StoreUnavailable."""
    current = canvas_session_get(deal=deal, role=role, user=user)
    if current["document_state"] != "editing" or not current["can_finalize"]:
        reasons = _finalize_blockers(current)
        raise TransitionRefused(
            f"The memo cannot be approved from {current['document_state']}: {'; '.join(reasons)}.",
            success=False,
            from_state=current["document_state"],
            to_state=None,
            error="transition_refused",
            details={"reasons": reasons, "readiness": current["readiness"]},
        )

    def mutate(doc: CanvasDoc, now: str) -> list[str] | None:
        if doc.state != "editing":
            raise TransitionRefused(
                f"The memo is {doc.state}, not editing.",
                success=False,
                from_state=doc.state,
                to_state=None,
                error="transition_refused",
                details={},
            )
        doc.head["state"] = "approved"
        doc.head["approved_at"] = now
        doc.head["approved_by"] = _actor_name(user)
        return []

    outcome = _write_memo(
        deal=deal,
        user=user,
        base_version=None,
        mutate=mutate,
        snapshot_reason="memo approved",
        event="state_changed",
        approval_snapshot=True,
    )
    return TransitionResult(True, "editing", "approved", details={"approval_version": outcome.doc.version})


def _finalize_blockers(current: dict) -> list[str]:
    reasons = []
    if current["document_state"] != "editing":
        reasons.append(f"the memo is {current['document_state']}, and only an editing memo can be approved")
    if current["is_blank"]:
        reasons.append("the memo is blank")
    if current["incomplete_delivery_blocked"]:
        reasons.append("the last drafting run left required sections empty")
    gate = settings.CANVAS_READINESS_GATE
    if current["readiness"]["score"] < gate:
        reasons.append(f"readiness is {current['readiness']['score']}, below the gate of {gate}")
    return reasons or ["the memo is not ready"]


def memo_reopen(*, deal: Deal, user: User) -> TransitionResult:
    """approved -> editing. Raises TransitionRefused, StoreUnavailable."""

    def mutate(doc: CanvasDoc, now: str) -> list[str] | None:
        if doc.state != "approved":
            raise TransitionRefused(
                f"Only an approved memo can be reopened; it is {doc.state}.",
                success=False,
                from_state=doc.state,
                to_state=None,
                error="transition_refused",
                details={},
            )
        doc.head["state"] = "editing"
        return []

    _write_memo(
        deal=deal,
        user=user,
        base_version=None,
        mutate=mutate,
        snapshot_reason=None,
        event="state_changed",
        allow_when_approved=True,
    )
    return TransitionResult(True, "approved", "editing")


# --- review -----------------------------------------------------------------------------------------
@dataclass(frozen=True)
class ApprovalResult:
    approval: SectionApproval
    conditions: list[ApprovalCondition]
    section_state: str
    auto_promoted: bool

    @property
    def all_conditions_resolved(self) -> bool:
        return all(c.resolved for c in self.conditions)


def _set_section_state(deal: Deal, user: User, key: str, state: str, event: str) -> None:
    def mutate(doc: CanvasDoc, now: str) -> list[str] | None:
        section = doc.sections.get(key)
        if section is None:
            raise SectionNotFound()
        if section.get("state") == state:
            return None
        section["state"] = state
        return [key]

    _write_memo(deal=deal, user=user, base_version=None, mutate=mutate, snapshot_reason=None, event=event)


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
    section, unless an owner forces), RoleTooLow (force by a non-owner), MemoApproved, StoreUnavailable.
    """
    doc = read_canvas(deal.pk) or _create_canvas(deal, user)
    section = doc.sections.get(key)
    if section is None:
        raise SectionNotFound()
    if not (section.get("markdown") or "").strip():
        raise TransitionRefused("An empty section cannot be approved; write or generate it first.")
    if force and role_rank(role) < role_rank(DealRole.OWNER):
        raise RoleTooLow("Only an owner can force an approval over unresolved comments.")
    open_comments = Comment.objects.filter(deal=deal, section_key=key, resolved=False, parent=None).count()
    if open_comments and not force:
        raise UnresolvedComments(
            f"{open_comments} unresolved comment(s) on this section; resolve them, or an owner can force.",
            unresolved_comments=open_comments,
        )
    state = "reviewed" if conditions else "approved"
    with transaction.atomic():
        approval = SectionApproval.objects.create(
            deal=deal,
            section_key=key,
            approved_by=user,
            reviewer_role=reviewer_role,
            comment=comment,
            quality_score=quality_score,
            forced=bool(force and open_comments),
            memo_version=doc.version,
        )
        created = [
            ApprovalCondition.objects.create(approval=approval, deal=deal, section_key=key, text=text)
            for text in conditions
        ]
    _set_section_state(deal, user, key, state, "section_approved")
    return ApprovalResult(approval=approval, conditions=created, section_state=state, auto_promoted=not conditions)


def condition_resolve(*, deal: Deal, user: User, section_key: str, condition_id: int) -> ApprovalResult:
    """Resolve an approval condition; the last one promotes its section to approved.

    Raises ConditionNotFound, MemoApproved, StoreUnavailable.
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
        approval = condition.approval
        conditions = list(approval.conditions.order_by("created_at", "pk"))
    latest = SectionApproval.objects.filter(deal=deal, section_key=approval.section_key).first()
    promoted = False
    state = "reviewed"
    if all(c.resolved for c in conditions) and latest is not None and latest.pk == approval.pk:
        doc = read_canvas(deal.pk)
        current = (doc.sections.get(approval.section_key) or {}).get("state") if doc else None
        if current == "reviewed":
            _set_section_state(deal, user, approval.section_key, "approved", "section_approved")
            promoted = True
        state = "approved" if current in ("reviewed", "approved") else (current or "draft")
    else:
        _drop_cache_quietly(deal.pk)
    return ApprovalResult(approval=approval, conditions=conditions, section_state=state, auto_promoted=promoted)


def _drop_cache_quietly(deal_id) -> None:
    try:
        session.cache_drop(deal_id)
    except REDIS_ERRORS:
        logger.warning("could not drop the cached session of deal %s: Redis unavailable", deal_id)


def feedback_create(
    *, deal: Deal, user: User, section_key: str, rating: int, comment: str, tags: list[str]
) -> SectionFeedback:
    """Rate a section. Raises SectionNotFound."""
    require_memo_section(deal, section_key)
    feedback = SectionFeedback.objects.create(
        deal=deal, section_key=section_key, user=user, rating=rating, comment=comment, tags=tags
    )
    _drop_cache_quietly(deal.pk)  # readiness reads ratings
    events.emit(deal.pk, "feedback_created", {"section_key": section_key, "rating": rating}, actor_id=user.pk)
    return feedback


def require_memo_section(deal: Deal, key: str) -> None:
    """Raises SectionNotFound unless the memo (or, before its first write, its template) has the section."""
    doc = read_canvas(deal.pk)
    keys_known = set(doc.sections) if doc else {s.key for s in deal_template(deal).sections}
    if key not in keys_known:
        raise SectionNotFound(f"This memo has no section {key!r}.")


def deal_template(deal: Deal):
    from canvas.memo.templates import get_template

    return get_template(deal.template_key)


def comment_create(*, deal: Deal, user: User, section_key: str, body: str, parent_id=None) -> Comment:
    """Comment on a section, or reply to a comment. Raises SectionNotFound, CommentNotFound."""
    parent = None
    if parent_id is not None:
        parent = Comment.objects.filter(pk=parent_id, deal=deal).first()
        if parent is None:
            raise CommentNotFound("The comment you reply to does not exist on this deal.")
        parent = parent.parent or parent  # replies thread under the top-level comment
        section_key = parent.section_key
    else:
        require_memo_section(deal, section_key)
    comment = Comment.objects.create(deal=deal, section_key=section_key, parent=parent, author=user, body=body)
    _drop_cache_quietly(deal.pk)
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
        comment.save(update_fields=["resolved", "resolved_by", "resolved_at", "updated_at"])
        _drop_cache_quietly(deal.pk)
        events.emit(
            deal.pk,
            "comment_resolved",
            {"comment_id": str(comment.pk), "section_key": comment.section_key},
            actor_id=user.pk,
        )
    return comment


# --- versions ---------------------------------------------------------------------------------------
def version_restore(*, deal: Deal, user: User, version: int, base_version: int | None) -> WriteOutcome:
    """Make an earlier version current again, as a new version. Raises VersionNotFound, StaleVersion,
    MemoApproved, StoreUnavailable."""
    from canvas.memo.store import read_snapshots

    found = read_snapshots(deal.pk, [version])
    if not found:
        raise VersionNotFound()
    snapshot = found[0]

    def mutate(doc: CanvasDoc, now: str) -> list[str] | None:
        changed = []
        for key, old in snapshot["sections"].items():
            section = doc.sections.get(key)
            if section is None:
                section = {**old, "updated_at": now}
                doc.sections[key] = section
                changed.append(key)
            if section.get("markdown") != old.get("markdown") or section.get("title") != old.get("title"):
                section["title"] = old["title"]
                _touch_section(section, markdown=old.get("markdown") or "", user=user, now=now)
                if key not in changed:
                    changed.append(key)
        for key in [k for k in doc.sections if k not in snapshot["sections"]]:
            del doc.sections[key]
            changed.append(key)
        if not changed:
            return None
        _start_editing(doc)
        return changed

    return _write_memo(
        deal=deal,
        user=user,
        base_version=base_version,
        mutate=mutate,
        snapshot_reason=f"restored from version {version}",
        event="version_restored",
    )
