"""Writes of the memo: the session (get-or-create, refresh), save, section edits, lifecycle, restore.

Every change goes through canvas.memo.writes.memo_write, which enforces the rules every writer shares
(read-only when approved, base_version, section locks); the functions here only say what changes.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass

import orjson
from django.conf import settings

from canvas.memo import markdown, session
from canvas.memo.errors import ContentTooLarge, SectionNotFound, TransitionRefused, VersionNotFound
from canvas.memo.readiness import compute_readiness
from canvas.memo.selectors import REDIS_ERRORS, active_run_ids, review_signals
from canvas.memo.store import read_memo, read_snapshots
from canvas.memo.types import DocumentState, Memo, Section
from canvas.memo.writes import LockRule, WriteOutcome, memo_materialize, memo_write, section_touch
from canvas_project import events
from deals.models import Deal, User

logger = logging.getLogger(__name__)
REDIS_DOWN_WARNING = (
    "Redis is unavailable: this session was read straight from the store and live "
    "collaboration is paused until Redis is back."
)


# --- the session ----------------------------------------------------------------------------------
def _load_or_create(deal: Deal, user: User | None) -> Memo:
    memo = read_memo(deal.pk)
    return memo if memo is not None else memo_materialize(deal=deal, user=user)


def _fresh_payload(deal: Deal, memo: Memo) -> dict:
    readiness = compute_readiness(memo, review_signals(deal_id=deal.pk))
    return session.build_payload(
        deal=deal, memo=memo, readiness=readiness, run_in_progress=bool(active_run_ids(deal_id=deal.pk))
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
    """The session for the caller as JSON bytes (canvas_session_tagged without the tag)."""
    return canvas_session_tagged(deal=deal, role=role, user=user)[0]


def canvas_session_tagged(*, deal: Deal, role: str, user: User | None) -> tuple[bytes, str]:
    """(the session for the caller as JSON bytes, its strong ETag): the cached body when current (one Redis
    GET, no parsing), else built from the Store and cached. Raises StoreUnavailable when the Store is down
    and no current cache exists."""
    warning = None
    try:
        cached = session.cache_get_raw(deal)
    except REDIS_ERRORS:
        cached, warning = None, REDIS_DOWN_WARNING
    if cached is not None:
        header, body = cached
        return session.respond_tagged(header, body, deal=deal, role=role, warning=None)

    memo = _load_or_create(deal, user)
    payload = _fresh_payload(deal, memo)
    _sync_deal_summary(deal, payload)
    header, body, value = session.encode(payload)
    if warning is None:
        try:
            session.cache_put_encoded(payload["deal_id"], payload["version"], value)
        except REDIS_ERRORS:
            warning = REDIS_DOWN_WARNING
    return session.respond_tagged(header, body, deal=deal, role=role, warning=warning)


def canvas_session_get(*, deal: Deal, role: str, user: User | None) -> dict:
    """canvas_session_bytes, parsed: for services that read the session."""
    return orjson.loads(canvas_session_bytes(deal=deal, role=role, user=user))


def canvas_refresh(*, deal: Deal, role: str, user: User) -> dict:
    """Rebuild the session from the Store and rewrite the cache; emits session_refreshed.

    Raises StoreUnavailable, redis errors (the caller needs Redis for this write).
    """
    previous = session.cache_get(deal)
    memo = _load_or_create(deal, user)
    payload = _fresh_payload(deal, memo)
    _sync_deal_summary(deal, payload)
    session.cache_drop(deal.pk)
    session.cache_put(payload)
    changed = previous is None or previous.get("markdown_content") != payload["markdown_content"]
    events.emit(deal.pk, "session_refreshed", {"version": payload["version"], "changed": changed}, actor_id=user.pk)
    return session.with_role(payload, deal=deal, role=role, warning=None)


# --- content --------------------------------------------------------------------------------------
def _check_size(content: str) -> None:
    if len(content) > settings.CANVAS_MAX_CONTENT_CHARS:
        raise ContentTooLarge(
            f"The memo is {len(content):,} characters; the limit is {settings.CANVAS_MAX_CONTENT_CHARS:,}."
        )


def canvas_save(*, deal: Deal, user: User, content: str, base_version: int | None) -> WriteOutcome:
    """Save the whole memo: split it into sections, write those that changed. Sections absent from the
    content are emptied (template sections) or removed (custom ones); a section locked by someone else
    must come back exactly as it is.

    Raises ContentTooLarge, StaleVersion, MemoApproved, SectionLocked, StoreUnavailable.
    """
    _check_size(content)

    def change(memo: Memo, now: str) -> None:
        parsed = markdown.split_markdown(content, memo.template)
        touched = False
        last_order = 0.0
        for position, part in enumerate(parsed.sections):
            section = memo.sections.get(part.key)
            if section is None:
                spec = memo.template.section(part.key)
                section = (
                    Section.blank(spec, now=now)
                    if spec
                    else Section(
                        key=part.key,
                        title=part.title,
                        order=last_order + 0.001 * (position + 1),
                        custom=True,
                        updated_at=now,
                    )
                )
                memo.sections[part.key] = section
                touched = True
            last_order = section.order
            title = part.title if part.custom else section.title
            if section.markdown != part.markdown or section.title != title:
                section.title = title
                section_touch(section, part.markdown, user=user, now=now)
                touched = True
        present = parsed.by_key()
        for key, section in list(memo.sections.items()):
            if key in present:
                continue
            if section.custom:
                del memo.sections[key]
                touched = True
            elif section.populated:
                section_touch(section, "", user=user, now=now)
                touched = True
        if touched:
            memo.start_editing()

    return memo_write(
        deal=deal, user=user, change=change, base_version=base_version, snapshot="save", event="document_saved"
    )


def section_update(
    *, deal: Deal, user: User, key: str, markdown: str, title: str | None, base_version: int | None
) -> WriteOutcome:
    """Edit one section. With collaboration off the editor must hold the section's lock.

    Raises SectionNotFound, ContentTooLarge, StaleVersion, MemoApproved, SectionLocked, RedisUnavailable
    (locks cannot be checked), StoreUnavailable.
    """
    _check_size(markdown)

    def change(memo: Memo, now: str) -> None:
        section = memo.sections.get(key)
        if section is None:
            raise SectionNotFound(f"This memo has no section {key!r}; save the whole memo to add custom sections.")
        new_title = title if (title and section.custom) else section.title
        if section.markdown == markdown and new_title == section.title:
            return
        section.title = new_title
        section_touch(section, markdown, user=user, now=now)
        memo.start_editing()

    return memo_write(
        deal=deal,
        user=user,
        change=change,
        base_version=base_version,
        base_section=key,
        snapshot=f"section {key} edited",
        event="section_updated",
        locks=LockRule.HOLD,
    )


def version_restore(*, deal: Deal, user: User, version: int, base_version: int | None) -> WriteOutcome:
    """Make an earlier version current again, as a new version. A section locked by someone else that
    the restore would change refuses the whole restore.

    Raises VersionNotFound, StaleVersion, MemoApproved, SectionLocked, StoreUnavailable.
    """
    found = read_snapshots(deal.pk, [version])
    if not found:
        raise VersionNotFound()
    restored = {key: Section.from_store(value) for key, value in found[0]["sections"].items()}

    def change(memo: Memo, now: str) -> None:
        touched = False
        for key, old in restored.items():
            section = memo.sections.get(key)
            if section is None:
                section = memo.sections[key] = Section.from_store({**old.to_store(), "updated_at": now})
                touched = True
            if section.content() != old.content():
                section.title = old.title
                section_touch(section, old.markdown, user=user, now=now)
                touched = True
        for key in [k for k in memo.sections if k not in restored]:
            del memo.sections[key]
            touched = True
        if touched:
            memo.start_editing()

    return memo_write(
        deal=deal,
        user=user,
        change=change,
        base_version=base_version,
        snapshot=f"restored from version {version}",
        event="version_restored",
    )


# --- lifecycle --------------------------------------------------------------------------------------
@dataclass(frozen=True)
class TransitionResult:
    success: bool
    from_state: str
    to_state: str | None
    error: str | None = None
    details: dict | None = None


def _refused(message: str, state: DocumentState, details: dict | None = None) -> TransitionRefused:
    return TransitionRefused(
        message, success=False, from_state=str(state), to_state=None, error="transition_refused", details=details or {}
    )


def _finalize_blockers(current: dict) -> list[str]:
    reasons = []
    if current["document_state"] != DocumentState.EDITING:
        reasons.append(f"the memo is {current['document_state']}, and only an editing memo can be approved")
    if current["is_blank"]:
        reasons.append("the memo is blank")
    if current["incomplete_delivery_blocked"]:
        reasons.append("the last drafting run left required sections empty")
    gate = settings.CANVAS_READINESS_GATE
    if current["readiness"]["score"] < gate:
        reasons.append(f"readiness is {current['readiness']['score']}, below the gate of {gate}")
    return reasons or ["the memo is not ready"]


def memo_approve(*, deal: Deal, user: User, role: str) -> TransitionResult:
    """editing -> approved, minting an immutable approval snapshot. Raises TransitionRefused, StoreUnavailable."""
    current = canvas_session_get(deal=deal, role=role, user=user)
    if current["document_state"] != DocumentState.EDITING or not current["can_finalize"]:
        reasons = _finalize_blockers(current)
        raise _refused(
            f"The memo cannot be approved from {current['document_state']}: {'; '.join(reasons)}.",
            DocumentState(current["document_state"]),
            {"reasons": reasons, "readiness": current["readiness"]},
        )

    def change(memo: Memo, now: str) -> None:
        if memo.state != DocumentState.EDITING:
            raise _refused(f"The memo is {memo.state}, not editing.", memo.state)
        memo.state = DocumentState.APPROVED
        memo.approved_at = now
        memo.approved_by = user.display_name

    outcome = memo_write(
        deal=deal, user=user, change=change, snapshot="memo approved", approval_snapshot=True, event="state_changed"
    )
    return TransitionResult(
        True, DocumentState.EDITING, DocumentState.APPROVED, details={"approval_version": outcome.memo.version}
    )


def memo_reopen(*, deal: Deal, user: User) -> TransitionResult:
    """approved -> editing. Raises TransitionRefused, StoreUnavailable."""

    def change(memo: Memo, now: str) -> None:
        if memo.state != DocumentState.APPROVED:
            raise _refused(f"Only an approved memo can be reopened; it is {memo.state}.", memo.state)
        memo.state = DocumentState.EDITING

    memo_write(deal=deal, user=user, change=change, event="state_changed", reopens=True)
    return TransitionResult(True, DocumentState.APPROVED, DocumentState.EDITING)
