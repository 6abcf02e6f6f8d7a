"""The memo as typed objects: a `Memo` of `Section`s, with the states and outcomes as enums.

The Store keeps plain JSON (one item per section plus a head item, see canvas.memo.store); these
types are what every other module reads and changes. `to_store()` / `from_store()` are the only
places that know the stored field names, and both keep fields they do not know, so an item written
by a newer version of the service survives a round trip through an older one.
"""

from __future__ import annotations

import copy
from dataclasses import dataclass, field, fields
from enum import StrEnum
from typing import Any

from canvas.memo import markdown
from canvas.memo.templates import MemoTemplate, SectionSpec, get_template
from deals.models import DocumentState

__all__ = ["Delivery", "DocumentState", "Memo", "Section", "SectionState", "Source"]


class SectionState(StrEnum):
    DRAFT = "draft"
    EDITING = "editing"
    REVIEWED = "reviewed"
    APPROVED = "approved"


class Delivery(StrEnum):
    """What the last drafting of a section delivered."""

    DELIVERED = "delivered"
    MISSING = "missing"
    FAILED = "failed"


class Source(StrEnum):
    AI = "ai"
    HUMAN = "human"


def _enum_or_none(kind, value):
    return kind(value) if value is not None else None


@dataclass
class Section:
    key: str
    title: str
    order: float
    required: bool = False
    custom: bool = False
    state: SectionState = SectionState.DRAFT
    markdown: str = ""
    source: Source | None = None
    updated_at: str | None = None
    updated_by: str | None = None  # the writer's user id (None for the AI drafter)
    updated_by_name: str | None = None
    delivery: Delivery = Delivery.MISSING
    citations: list[dict] = field(default_factory=list)
    version: int | None = 0  # the memo version that last wrote it; None: stored before that was recorded
    run_id: str | None = None  # the drafting run that wrote it, when the AI did
    extra: dict[str, Any] = field(default_factory=dict)  # stored fields this version does not know

    @classmethod
    def blank(cls, spec: SectionSpec, *, now: str) -> Section:
        """The empty section of a template's SectionSpec."""
        return cls(key=spec.key, title=spec.title, order=spec.order, required=spec.required, updated_at=now)

    @property
    def populated(self) -> bool:
        return bool(self.markdown.strip())

    def content(self) -> tuple[str, str]:
        """What a reader sees of the section: a write that changes this is a content change."""
        return self.title, self.markdown

    def write_markdown(self, text: str, *, author_id: str | None, author_name: str | None, now: str) -> None:
        """A person's edit: the text, its citations, and the section back to `editing`."""
        self.markdown = text
        self.source = Source.HUMAN
        self.updated_at = now
        self.updated_by = author_id
        self.updated_by_name = author_name
        self.state = SectionState.EDITING
        self.delivery = Delivery.DELIVERED if text.strip() else Delivery.MISSING
        self.citations = markdown.parse_citations(text)

    def to_store(self) -> dict[str, Any]:
        stored = {f.name: getattr(self, f.name) for f in fields(self) if f.name != "extra"}
        for name in ("state", "source", "delivery"):
            stored[name] = str(stored[name]) if stored[name] is not None else None
        for name in ("run_id", "version"):
            if stored[name] is None:
                del stored[name]
        return {**self.extra, **stored}

    @classmethod
    def from_store(cls, value: dict[str, Any]) -> Section:
        known = {f.name for f in fields(cls)} - {"extra"}
        data = {k: v for k, v in value.items() if k in known}
        data["state"] = SectionState(data.get("state") or SectionState.DRAFT)
        data["source"] = _enum_or_none(Source, data.get("source"))
        data["delivery"] = Delivery(data.get("delivery") or Delivery.MISSING)
        data["citations"] = list(data.get("citations") or [])
        data["markdown"] = data.get("markdown") or ""
        data.setdefault("order", 0)
        data.setdefault("version", None)
        return cls(**data, extra={k: v for k, v in value.items() if k not in known})


@dataclass
class Memo:
    """One deal's memo: the head (state, version, history) and its sections by key."""

    deal_id: str
    template_key: str
    state: DocumentState = DocumentState.DRAFT
    version: int = 0
    is_blank: bool = False
    created_at: str | None = None
    created_by: str | None = None
    last_modified_at: str | None = None
    last_modified_by: str | None = None
    last_modified_by_id: str | None = None
    approved_at: str | None = None
    approved_by: str | None = None
    versions: list[int] = field(default_factory=list)  # snapshots kept, oldest first
    approval_versions: list[int] = field(default_factory=list)
    last_run: dict[str, Any] | None = None  # {run_id, status, missing_required, delivered, ...}
    sections: dict[str, Section] = field(default_factory=dict)
    exists: bool = True  # False until the memo's first write reaches the Store
    extra: dict[str, Any] = field(default_factory=dict)

    HEAD_FIELDS = (
        "state",
        "version",
        "is_blank",
        "template_key",
        "created_at",
        "created_by",
        "last_modified_at",
        "last_modified_by",
        "last_modified_by_id",
        "approved_at",
        "approved_by",
        "versions",
        "approval_versions",
        "last_run",
    )

    @classmethod
    def new(cls, *, deal_id, template_key: str, is_blank: bool, created_by: str | None, now: str) -> Memo:
        template = get_template(template_key)
        return cls(
            deal_id=str(deal_id),
            template_key=template.key,
            is_blank=is_blank,
            created_at=now,
            created_by=created_by,
            sections={spec.key: Section.blank(spec, now=now) for spec in template.sections},
            exists=False,
        )

    @property
    def template(self) -> MemoTemplate:
        return get_template(self.template_key)

    def ordered_sections(self) -> list[Section]:
        return sorted(self.sections.values(), key=lambda s: (s.order, s.key))

    def markdown(self) -> str:
        return markdown.assemble_markdown([{"title": s.title, "markdown": s.markdown} for s in self.ordered_sections()])

    def populated_keys(self) -> list[str]:
        return [k for k, s in self.sections.items() if s.populated]

    def start_editing(self) -> None:
        """A person wrote: a draft memo becomes `editing`, and it is no longer blank."""
        if self.state == DocumentState.DRAFT:
            self.state = DocumentState.EDITING
        self.is_blank = False

    def copy(self) -> Memo:
        return copy.deepcopy(self)

    def head_to_store(self) -> dict[str, Any]:
        head = {name: getattr(self, name) for name in self.HEAD_FIELDS}
        head["state"] = str(self.state)
        return {"schema": 1, **self.extra, **head}

    @classmethod
    def from_store(cls, deal_id, head: dict[str, Any], sections: dict[str, dict[str, Any]]) -> Memo:
        data = {name: head[name] for name in cls.HEAD_FIELDS if name in head}
        state = data.get("state") or DocumentState.DRAFT
        data["state"] = DocumentState.APPROVED if state == "exported" else DocumentState(state)  # legacy name
        data["version"] = int(data.get("version") or 0)
        data["versions"] = list(data.get("versions") or [])
        data["approval_versions"] = list(data.get("approval_versions") or [])
        data["template_key"] = get_template(data.get("template_key") or "").key
        extra = {k: v for k, v in head.items() if k not in cls.HEAD_FIELDS and k != "schema"}
        return cls(
            deal_id=str(deal_id),
            sections={key: Section.from_store(value) for key, value in sections.items()},
            extra=extra,
            **data,
        )
