"""Suggestions as text: where an anchored change applies, and the text with it applied (pure, no I/O).

A suggestion targets the `occurrence`-th match of `anchor_text` in the section's markdown, counted
left to right without overlaps (as `str.count` does):
- insert puts `content` right after the anchor; an empty anchor appends `content` to the section
  (after a blank line when the section has text and neither side brings a line break of its own);
- delete removes the anchor;
- replace swaps the anchor for `content`.
Anchors are exact text (case, whitespace and markdown included).

Accepting applies the change to the section's *current* markdown through the memo's one write path
(canvas.review.services.suggestion_accept), so it is a new version with its own snapshot. When the
anchor no longer occurs often enough (someone edited the text since), accepting is a conflict and the
suggestion stays pending: the editor can reject it, or the author can propose again.
"""

from __future__ import annotations

from canvas.memo.types import Memo
from canvas.models import Suggestion, SuggestionKind, SuggestionStatus

MAX_ANCHOR_CHARS = 2000
MAX_CONTENT_CHARS = 20000
MAX_COMMENT_CHARS = 2000


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


def anchor_matches(suggestion: Suggestion, memo: Memo | None) -> bool | None:
    """Whether a pending suggestion would still apply to `memo`; None when decided or unknown."""
    if suggestion.status != SuggestionStatus.PENDING or memo is None:
        return None
    section = memo.sections.get(suggestion.section_key)
    if section is None:
        return False
    return (
        apply_change(
            section.markdown,
            kind=suggestion.kind,
            anchor=suggestion.anchor_text,
            occurrence=suggestion.occurrence,
            content=suggestion.content,
        )
        is not None
    )
