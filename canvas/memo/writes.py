"""The memo's one write path: every change of a memo goes through `memo_write`.

Whole-memo save, section edits, restore, suggestion accept, the AI's section writes (generate,
regenerate), reset, section and memo approval transitions and the record of a run's end all call it.
It runs the caller's change inside one serialized Store transaction (a per-deal advisory lock) and
enforces, the same way for every writer:

- an approved memo is read-only (MemoApproved, 409), except for the transition that reopens it;
- `base_version`: a whole-memo write needs the memo as it is, a section write only that section as
  it is (StaleVersion, 409 with `current_version`);
- with collaboration off, section locks: the sections the change would alter are compared with
  their locks. A person's write that would change a section locked by someone else is refused
  whole (SectionLocked, 423, naming the holder and expiry; nothing is written); a section edit may
  also require the writer to hold the lock (LockRule.HOLD); the AI's writes leave locked sections as
  they are and report them (LockRule.SKIP, `WriteOutcome.skipped_locked`).

Which sections a change alters is found by comparing the memo before and after it, so no writer can
forget to declare one. Then the version goes up by one, each altered section records it, content
changes are snapshotted, retention runs; after the commit the deal row's memo summary is brought in
step, the cached session dropped and one event emitted.
"""

from __future__ import annotations

import logging
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import UTC, datetime
from enum import Enum

import redis
from django.conf import settings
from django.utils import timezone

from canvas.memo import session
from canvas.memo.errors import MemoApproved, StaleVersion
from canvas.memo.locks import SectionLock, lock_needed_error, locked_error, section_locks
from canvas.memo.store import MemoWriter, memo_transaction
from canvas.memo.types import DocumentState, Memo, Section
from canvas_project import events
from canvas_project.api.conditional import IF_MATCH_VERSION
from canvas_project.errors import RedisUnavailable
from deals.models import Deal, User

logger = logging.getLogger(__name__)
REDIS_ERRORS = (redis.exceptions.ConnectionError, redis.exceptions.TimeoutError)


class LockRule(Enum):
    """What a write does about sections locked by someone else (collaboration off only)."""

    REFUSE = "refuse"  # a person's write: 423 when it would change a section locked by someone else
    HOLD = "hold"  # a section edit: the writer must hold the lock of every section it changes
    SKIP = "skip"  # the AI's write: locked sections (whoever holds them) are left as they are and reported


Change = Callable[[Memo, str], None]
"""Changes the memo in place; `now` is the write's ISO timestamp. May raise the writer's own errors."""


@dataclass
class WriteOutcome:
    memo: Memo
    changed: list[str] = field(default_factory=list)  # sections added, altered or removed
    wrote: bool = False  # False: the change altered nothing, no version was made
    from_state: DocumentState = DocumentState.DRAFT
    skipped_locked: dict[str, SectionLock] = field(default_factory=dict)


@dataclass(frozen=True)
class Actor:
    """Who writes: a person, or the AI drafter (user None, named AI_AUTHOR)."""

    user: User | None

    @property
    def id(self) -> str | None:
        return str(self.user.pk) if self.user is not None else None

    @property
    def name(self) -> str | None:
        return self.user.display_name if self.user is not None else None


def _check_base_version(memo: Memo, base_version: int | None, base_section: str | None) -> None:
    """Raises StaleVersion when a write based on `base_version` would lose an update.

    A write of the whole memo needs the memo as it is (base_version == its version). A write of one
    section (`base_section`) needs only that section as it is: stale when the section was written after
    base_version, whatever happened to the other sections meanwhile. A section stored before sections
    recorded their version is checked against the whole memo's.
    """
    if base_version is None:
        return
    section = memo.sections.get(base_section) if base_section is not None else None
    if section is None or section.version is None:
        if base_version != memo.version:
            raise StaleVersion(current_version=memo.version, base_version=base_version)
        return
    if not section.version <= base_version <= memo.version:
        raise StaleVersion(
            current_version=memo.version,
            base_version=base_version,
            section_key=base_section,
            section_version=section.version,
        )


def _altered(before: Memo, after: Memo) -> list[str]:
    """The sections the change added, removed or altered, in the memo's order."""
    keys = list(after.sections) + [k for k in before.sections if k not in after.sections]
    altered = []
    for key in keys:
        old, new = before.sections.get(key), after.sections.get(key)
        if old is None or new is None or old.to_store() != new.to_store():
            altered.append(key)
    return altered


def _apply_lock_rule(
    *, deal: Deal, actor: Actor, rule: LockRule, before: Memo, memo: Memo, altered: list[str]
) -> dict[str, SectionLock]:
    """Refuse, or undo, the parts of the change that touch sections locked by someone else.

    Returns the sections left as they were (LockRule.SKIP). Raises SectionLocked, RedisUnavailable (only
    for LockRule.HOLD: without Redis nobody can take or hold a lock, so the other rules go on).
    """
    if deal.collab_enabled or not altered:
        return {}
    try:
        locks = section_locks(deal.pk, altered)
    except RedisUnavailable:
        if rule is LockRule.HOLD:
            raise
        logger.warning("section locks of deal %s not checked: Redis unavailable", deal.pk)
        return {}
    if rule is LockRule.HOLD:
        for key in altered:
            lock = locks.get(key)
            if lock is None:
                raise lock_needed_error(key)
            if not lock.held_by(actor.id):
                raise locked_error([lock])
        return {}
    # the AI never writes a locked section, not even one its run's requester holds
    foreign = locks if rule is LockRule.SKIP else {k: v for k, v in locks.items() if not v.held_by(actor.id)}
    if foreign and rule is LockRule.REFUSE:
        raise locked_error([foreign[key] for key in altered if key in foreign])
    for key in foreign:  # LockRule.SKIP: the section stays exactly as it was
        if key in before.sections:
            memo.sections[key] = before.sections[key]
        else:
            memo.sections.pop(key, None)
    return foreign


def _snapshot(memo: Memo, *, deal: Deal, reason: str, actor: Actor, now: datetime, approval: bool) -> dict:
    return {
        "version": memo.version,
        "title": f"{deal.name}_{now.strftime('%Y_%m_%d_%H_%M_%S')}",
        "reason": reason,
        "author_id": actor.id,
        "author": actor.name,
        "created_at": now.isoformat(),
        "state": str(memo.state),
        "approval": approval,
        "markdown": memo.markdown(),
        "sections": {key: s.to_store() for key, s in memo.sections.items()},
    }


def _apply_retention(writer: MemoWriter, memo: Memo) -> None:
    keep = max(1, settings.CANVAS_VERSION_RETENTION)
    approvals = set(memo.approval_versions)
    ordinary = [v for v in memo.versions if v not in approvals]
    for version in ordinary[:-keep]:
        writer.delete_snapshot(version)
        memo.versions.remove(version)


def memo_write(
    *,
    deal: Deal,
    user: User | None,
    change: Change,
    event: str,
    base_version: int | None = None,
    base_section: str | None = None,
    snapshot: str | None = None,
    approval_snapshot: bool = False,
    locks: LockRule = LockRule.REFUSE,
    reopens: bool = False,
    always: bool = False,
    dry_run: bool = False,
    event_payload: dict | None = None,
) -> WriteOutcome:
    """Apply `change` to the deal's memo under the rules above; one new version when it altered anything.

    `snapshot` names the snapshot a write takes (None: no snapshot); `approval_snapshot` marks it as the
    immutable approval snapshot. `reopens` lets the change run on an approved memo (the reopen
    transition). `always` makes a version even when the change altered nothing (a restore point).
    `dry_run` checks the change against every rule and writes nothing (`wrote` says whether it would).

    Raises StaleVersion, MemoApproved, SectionLocked, RedisUnavailable (LockRule.HOLD only),
    StoreUnavailable, and whatever `change` raises; on any of them nothing is written.
    """
    actor = Actor(user)
    now_dt = datetime.now(UTC)
    now = now_dt.isoformat()
    with memo_transaction(deal.pk) as writer:
        memo = writer.load() or Memo.new(
            deal_id=deal.pk, template_key=deal.template_key, is_blank=deal.created_blank, created_by=actor.id, now=now
        )
        if base_version is None:  # a write that takes no base_version still honours If-Match
            base_version = IF_MATCH_VERSION.get()
        _check_base_version(memo, base_version, base_section)
        if memo.state == DocumentState.APPROVED and not reopens:
            raise MemoApproved()
        from_state = memo.state
        before = memo.copy()
        change(memo, now)
        altered = _altered(before, memo)
        skipped = _apply_lock_rule(deal=deal, actor=actor, rule=locks, before=before, memo=memo, altered=altered)
        altered = [key for key in altered if key not in skipped]
        if skipped and not altered:  # every section it would change is locked: nothing of it is written
            return WriteOutcome(memo=before, from_state=from_state, skipped_locked=skipped)
        head_changed = memo.head_to_store() != before.head_to_store()
        if not (altered or head_changed or always) or dry_run:
            wrote = bool(altered or head_changed or always)
            return WriteOutcome(memo=memo, changed=altered, wrote=wrote, from_state=from_state, skipped_locked=skipped)
        memo.version += 1
        memo.last_modified_at = now
        memo.last_modified_by = actor.name
        memo.last_modified_by_id = actor.id
        for key in altered:
            if key in memo.sections:
                memo.sections[key].version = memo.version
        # a memo written for the first time gets every section stored, not only the altered ones
        for key in altered if memo.exists else sorted(set(altered) | set(memo.sections)):
            if key in memo.sections:
                writer.put_section(memo.sections[key])
            else:
                writer.delete_section(key)
        if snapshot is not None:
            writer.put_snapshot(
                _snapshot(memo, deal=deal, reason=snapshot, actor=actor, now=now_dt, approval=approval_snapshot)
            )
            memo.versions.append(memo.version)
            if approval_snapshot:
                memo.approval_versions.append(memo.version)
            _apply_retention(writer, memo)
        writer.put_head(memo)
    memo.exists = True
    payload = {"sections": altered, **(event_payload or {})}
    if skipped:
        payload["skipped_locked"] = sorted(skipped)
    _after_write(deal, memo, actor=actor, event=event, payload=payload)
    return WriteOutcome(memo=memo, changed=altered, wrote=True, from_state=from_state, skipped_locked=skipped)


def memo_materialize(*, deal: Deal, user: User | None) -> Memo:
    """Store the deal's memo as its template lays it out (version 0), unless it is stored already;
    returns the stored memo. The first read of a memo does this: it is not a change, so no version,
    snapshot or event. Raises StoreUnavailable."""
    with memo_transaction(deal.pk) as writer:
        memo = writer.load()
        if memo is not None:  # created meanwhile by a concurrent first read
            return memo
        memo = Memo.new(
            deal_id=deal.pk,
            template_key=deal.template_key,
            is_blank=deal.created_blank,
            created_by=Actor(user).id,
            now=datetime.now(UTC).isoformat(),
        )
        writer.put_head(memo)
        for section in memo.sections.values():
            writer.put_section(section)
    memo.exists = True
    return memo


def _after_write(deal: Deal, memo: Memo, *, actor: Actor, event: str, payload: dict) -> None:
    summary = {
        "memo_version": memo.version,
        "document_state": str(memo.state),
        "sections_populated": len(memo.populated_keys()),
        "sections_total": len(memo.sections),
        "incomplete_delivery_blocked": session.incomplete_delivery_blocked(memo),
    }
    # never move the version backwards: a slower concurrent writer may finish last
    Deal.objects.filter(pk=deal.pk, memo_version__lt=memo.version).update(**summary, updated_at=timezone.now())
    for name, value in summary.items():
        setattr(deal, name, value)
    session.cache_drop_quietly(deal.pk)
    events.emit(deal.pk, event, {"version": memo.version, "state": str(memo.state), **payload}, actor_id=actor.id)


def section_touch(section: Section, text: str, *, user: User | None, now: str) -> None:
    """A person's edit of one section (the text, its citations, the section back to `editing`)."""
    actor = Actor(user)
    section.write_markdown(text, author_id=actor.id, author_name=actor.name, now=now)
