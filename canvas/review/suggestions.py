"""Suggestions: a commenter proposes an anchored change to one section; an editor accepts or rejects it.

A suggestion targets the `occurrence`-th match of `anchor_text` in the section's markdown, counted
left to right without overlaps (as `str.count` does):
- insert puts `content` right after the anchor; an empty anchor appends `content` to the section
  (after a blank line when the section has text and neither side brings a line break of its own);
- delete removes the anchor;
- replace swaps the anchor for `content`.
Anchors are exact text (case, whitespace and markdown included).

Accepting applies the change to the section's *current* markdown through the memo's one write path
(`canvas.memo.services._write_memo`), so it is a new version with its own snapshot. When the anchor no
longer occurs often enough (someone edited the text since), accepting is a conflict and the
suggestion stays pending: the editor can reject it, or the author can propose again.

Services (writes): suggestion_create, suggestion_accept, suggestion_reject.
Selectors (reads): suggestion_list.
"""

from __future__ import annotations

import uuid
from dataclasses import dataclass

from django.conf import settings
from django.db import transaction
from django.db.models import QuerySet
from django.utils import timezone

from canvas.memo.errors import ContentTooLarge, SectionNotFound, StoreUnavailable
from canvas.memo.locks import require_section_writable
from canvas.memo.services import WriteOutcome, _start_editing, _touch_section, _write_memo, deal_template
from canvas.memo.store import CanvasDoc, read_canvas
from canvas.models import Suggestion, SuggestionKind, SuggestionStatus
from canvas_project import events
from canvas_project.errors import ConflictError, InvalidInputError, NotFoundError
from deals.models import Deal, User

MAX_ANCHOR_CHARS = 2000
MAX_CONTENT_CHARS = 20000
MAX_COMMENT_CHARS = 2000


# --- errors ---------------------------------------------------------------------------------------------
class SuggestionNotFound(NotFoundError):
    code = "suggestion_not_found"
    default_message = "Suggestion not found."


class SuggestionNotPending(ConflictError):
    code = "suggestion_not_pending"


class SuggestionOutdated(ConflictError):
    """The section changed since the suggestion was made and the change no longer applies."""

    code = "suggestion_outdated"


# --- applying a change to text (pure) ------------------------------------------------------------
def find_occurrence(text: str, anchor: str, occurrence: int) -> int | None:
    """Start index of the `occurrence`-th (1-based, non-overlapping) match of `anchor`, or None."""
    if not anchor or occurrence < 1:
        return None
    start = -len(anchor)
    for _ in range(occurrence):
        start = text.find(anchor, start + len(anchor))
        if start < 0:
            return None
    return start


def _append(text: str, content: str) -> str:
    if not text.strip():
        return content
    if text.endswith("\n") or content.startswith("\n"):
        return text + content
    return f"{text}\n\n{content}"


def apply_change(text: str, *, kind: str, anchor: str, occurrence: int, content: str) -> str | None:
    """The text with the change applied, or None when the anchor's occurrence is not in `text`."""
    if kind == SuggestionKind.INSERT and not anchor:
        return _append(text, content)
    start = find_occurrence(text, anchor, occurrence)
    if start is None:
        return None
    end = start + len(anchor)
    if kind == SuggestionKind.INSERT:
        return text[:end] + content + text[end:]
    if kind == SuggestionKind.DELETE:
        return text[:start] + text[end:]
    return text[:start] + content + text[end:]


def _anchor_matches(suggestion: Suggestion, doc: CanvasDoc | None) -> bool | None:
    """Whether a pending suggestion would still apply to `doc`; None when decided or unknown."""
    if suggestion.status != SuggestionStatus.PENDING or doc is None:
        return None
    section = doc.sections.get(suggestion.section_key)
    if section is None:
        return False
    return (
        apply_change(
            section.get("markdown") or "",
            kind=suggestion.kind,
            anchor=suggestion.anchor_text,
            occurrence=suggestion.occurrence,
            content=suggestion.content,
        )
        is not None
    )


def _read_doc_quietly(deal: Deal) -> CanvasDoc | None:
    try:
        return read_canvas(deal.pk)
    except StoreUnavailable:
        return None


# --- services --------------------------------------------------------------------------------------------
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
    doc = read_canvas(deal.pk)
    if doc is not None:
        section = doc.sections.get(section_key)
        exists, markdown, version = section is not None, (section or {}).get("markdown") or "", doc.version
    else:  # the memo was never opened: the template's sections, all empty
        exists = any(spec.key == section_key for spec in deal_template(deal).sections)
        markdown, version = "", 0
    if not exists:
        raise SectionNotFound(f"This memo has no section {section_key!r}.")
    if anchor_text:
        found = markdown.count(anchor_text)
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
    suggestion = Suggestion.objects.create(
        deal=deal,
        section_key=section_key,
        kind=kind,
        anchor_text=anchor_text,
        occurrence=occurrence,
        content=content,
        comment=comment,
        author=user,
        base_version=version,
    )
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


def _decide(suggestion: Suggestion, *, user: User, status: str, applied_version: int | None = None) -> None:
    suggestion.status = status
    suggestion.decided_by = user
    suggestion.decided_at = timezone.now()
    suggestion.applied_version = applied_version
    suggestion.anchor_matches = None
    suggestion.save(update_fields=["status", "decided_by", "decided_at", "applied_version", "updated_at"])


@dataclass(frozen=True)
class AcceptOutcome:
    suggestion: Suggestion
    write: WriteOutcome

    @property
    def section(self) -> dict:
        return self.write.doc.sections[self.suggestion.section_key]


def suggestion_accept(
    *, deal: Deal, user: User, suggestion_id: uuid.UUID, base_version: int | None = None
) -> AcceptOutcome:
    """Apply a pending suggestion to the section's current text as a new memo version (snapshot
    "suggestion <id> accepted", event suggestion_accepted).

    The suggestion's row stays locked from the status check until it is marked accepted, so two editors
    accepting at once apply it once; the other gets SuggestionNotPending.

    Raises SuggestionNotFound, SuggestionNotPending, SuggestionOutdated (the anchor no longer matches, or
    the section is gone; the suggestion stays pending), SectionLocked, RedisUnavailable (locks cannot be
    checked), ContentTooLarge, StaleVersion, MemoApproved, StoreUnavailable.
    """
    with transaction.atomic():
        suggestion = _pending_for_update(deal, suggestion_id)
        key = suggestion.section_key
        require_section_writable(deal=deal, section_key=key, user=user)

        def mutate(doc: CanvasDoc, now: str) -> list[str] | None:
            section = doc.sections.get(key)
            if section is None:
                raise SuggestionOutdated(f"The section {key!r} no longer exists; reject this suggestion.")
            markdown = apply_change(
                section.get("markdown") or "",
                kind=suggestion.kind,
                anchor=suggestion.anchor_text,
                occurrence=suggestion.occurrence,
                content=suggestion.content,
            )
            if markdown is None:
                raise SuggestionOutdated(
                    f"The section {key!r} changed since this suggestion was made (version "
                    f"{suggestion.base_version}, now {doc.version}): occurrence {suggestion.occurrence} of "
                    "its anchor text is no longer there. Reject it, or ask for a new suggestion.",
                    current_version=doc.version,
                )
            if len(markdown) > settings.CANVAS_MAX_CONTENT_CHARS:
                raise ContentTooLarge(
                    f"With this suggestion the section would be {len(markdown):,} "
                    f"characters; the limit is {settings.CANVAS_MAX_CONTENT_CHARS:,}."
                )
            _touch_section(section, markdown=markdown, user=user, now=now)
            _start_editing(doc)
            # _write_memo stores only the keys returned: on a memo never stored before, that must be all
            # of the template's sections, or the others would be lost
            return [key] if doc.exists else list(doc.sections)

        write = _write_memo(
            deal=deal,
            user=user,
            base_version=base_version,
            mutate=mutate,
            snapshot_reason=f"suggestion {suggestion.pk} accepted",
            event="suggestion_accepted",
            event_payload={"suggestion_id": str(suggestion.pk), "section_key": suggestion.section_key},
        )
        _decide(suggestion, user=user, status=SuggestionStatus.ACCEPTED, applied_version=write.doc.version)
    return AcceptOutcome(suggestion=suggestion, write=write)


def suggestion_reject(*, deal: Deal, user: User, suggestion_id: uuid.UUID) -> Suggestion:
    """Reject a pending suggestion; the memo is untouched. Emits suggestion_rejected.

    Raises SuggestionNotFound, SuggestionNotPending.
    """
    with transaction.atomic():
        suggestion = _pending_for_update(deal, suggestion_id)
        _decide(suggestion, user=user, status=SuggestionStatus.REJECTED)
    events.emit(
        deal.pk,
        "suggestion_rejected",
        {"suggestion_id": str(suggestion.pk), "section_key": suggestion.section_key},
        actor_id=user.pk,
    )
    return suggestion


# --- selectors -------------------------------------------------------------------------------------------
def suggestion_list(
    *, deal: Deal, status: str | None = None, section_key: str | None = None, author_id: uuid.UUID | None = None
) -> list[Suggestion]:
    """The deal's suggestions, newest first, each pending one marked with whether it still applies
    (`anchor_matches`; None when the Store cannot be read)."""
    queryset: QuerySet[Suggestion] = (
        Suggestion.objects.filter(deal=deal).select_related("author", "decided_by").order_by("-created_at", "-pk")
    )
    if status:
        queryset = queryset.filter(status=status)
    if section_key:
        queryset = queryset.filter(section_key=section_key)
    if author_id:
        queryset = queryset.filter(author_id=author_id)
    suggestions = list(queryset)
    doc = _read_doc_quietly(deal) if any(s.status == SuggestionStatus.PENDING for s in suggestions) else None
    for suggestion in suggestions:
        suggestion.anchor_matches = _anchor_matches(suggestion, doc)
    return suggestions
