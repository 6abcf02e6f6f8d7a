"""The memo's types: memo kinds and their templates, and Memo/Section to and from the Store's JSON."""

from __future__ import annotations

import json
import uuid

import pytest

from canvas.memo.store import SECTION_PREFIX, memo_transaction, read_memo
from canvas.memo.templates import DEFAULT_TEMPLATE_KEY, TEMPLATES, get_template
from canvas.memo.types import Delivery, DocumentState, Memo, Section, SectionState, Source
from canvas_project import keys
from canvas_project.store import canvas_namespace, get_store
from deals.models import MemoKind
from tests.canvas.conftest import canvas_url, save

NOW = "2026-11-22T22:47:00+00:00"


def _section(**fields) -> Section:
    values = {
        "key": "risks",
        "title": "Risks and Mitigants",
        "order": 8,
        "required": True,
        "state": SectionState.REVIEWED,
        "markdown": "Rates.[^1]\n\n[^1]: IC Notes.pdf, p. 1",
        "source": Source.HUMAN,
        "updated_at": NOW,
        "updated_by": "5b0c6a8e-0000-4000-8000-000000000001",
        "updated_by_name": "Editor",
        "delivery": Delivery.DELIVERED,
        "citations": [{"id": "1", "text": "IC Notes.pdf, p. 1", "document": "IC Notes.pdf", "page": 1}],
        "version": 3,
        "run_id": "0f2a6c1e-0000-4000-8000-000000000002",
    }
    return Section(**{**values, **fields})


def _memo(**fields) -> Memo:
    memo = Memo.new(deal_id="d1", template_key="acquisition", is_blank=False, created_by=None, now=NOW)
    memo.sections["risks"] = _section()
    memo.exists = True  # as a memo read from the Store is
    for name, value in fields.items():
        setattr(memo, name, value)
    return memo


# --- memo kinds and templates --------------------------------------------------------------------------
def test_every_memo_kind_has_a_template_and_every_template_a_memo_kind():
    assert set(TEMPLATES) == set(MemoKind.values)
    for key, template in TEMPLATES.items():
        assert template.key == key and get_template(key) is template
    assert DEFAULT_TEMPLATE_KEY in MemoKind.values


@pytest.mark.parametrize("kind", MemoKind.values)
def test_each_template_has_unique_section_keys_in_order_that_a_lock_can_name(kind):
    template = TEMPLATES[kind]
    section_keys = [spec.key for spec in template.sections]
    assert len(set(section_keys)) == len(section_keys)
    assert [spec.order for spec in template.sections] == sorted({spec.order for spec in template.sections})
    assert template.required_keys
    for key in section_keys:
        keys.lock_key(uuid.uuid4(), key)  # raises for a key a lock (or a URL) could not carry


# --- Section ------------------------------------------------------------------------------------------------
def test_it_round_trips_a_section_through_the_stores_json():
    section = _section()
    stored = section.to_store()
    assert json.loads(json.dumps(stored)) == stored  # plain JSON: enums are stored as their values
    assert (stored["state"], stored["source"], stored["delivery"]) == ("reviewed", "human", "delivered")
    again = Section.from_store(stored)
    assert again == section and isinstance(again.state, SectionState) and isinstance(again.delivery, Delivery)


def test_a_sections_unknown_stored_fields_survive_a_round_trip():
    stored = {**_section().to_store(), "comment_count": 4, "ai_meta": {"model": "x"}}
    section = Section.from_store(stored)
    assert section.extra == {"comment_count": 4, "ai_meta": {"model": "x"}}
    assert section.to_store() == stored
    section.markdown = "Changed."  # a change of a known field keeps them too
    assert section.to_store()["comment_count"] == 4 and section.to_store()["markdown"] == "Changed."


def test_a_section_stored_without_version_reads_as_none_and_is_written_back_without_it():
    stored = {k: v for k, v in _section().to_store().items() if k != "version"}
    section = Section.from_store(stored)
    assert section.version is None
    assert "version" not in section.to_store() and section.to_store() == stored


def test_a_sparse_stored_section_reads_with_defaults():
    section = Section.from_store({"key": "risks", "title": "Risks", "state": None, "markdown": None})
    assert (section.state, section.delivery, section.source) == (SectionState.DRAFT, Delivery.MISSING, None)
    assert (section.markdown, section.citations, section.order, section.version) == ("", [], 0, None)
    stored = section.to_store()
    assert "run_id" not in stored and "version" not in stored and stored["source"] is None


# --- Memo ---------------------------------------------------------------------------------------------------
def _stored(memo: Memo) -> tuple[dict, dict]:
    return memo.head_to_store(), {key: s.to_store() for key, s in memo.sections.items()}


def test_it_round_trips_a_memo_through_the_stores_json():
    memo = _memo(
        state=DocumentState.EDITING,
        version=5,
        versions=[1, 5],
        approval_versions=[1],
        last_run={"run_id": "r", "missing_required": []},
    )
    head, sections = _stored(memo)
    assert head["schema"] == 1 and head["state"] == "editing" and json.loads(json.dumps(head)) == head
    again = Memo.from_store("d1", head, sections)
    assert again == memo and _stored(again) == (head, sections)


def test_a_memos_unknown_head_fields_survive_a_round_trip():
    head, sections = _stored(_memo())
    head = {**head, "pinned": True, "review_deadline": "2026-12-01"}
    memo = Memo.from_store("d1", head, sections)
    assert memo.extra == {"pinned": True, "review_deadline": "2026-12-01"}
    assert memo.head_to_store() == head


@pytest.mark.parametrize(("stored", "reads"), [("exported", "approved"), ("approved", "approved"), (None, "draft")])
def test_a_legacy_exported_state_reads_as_approved(stored, reads):
    head, sections = _stored(_memo())
    memo = Memo.from_store("d1", {**head, "state": stored}, sections)
    assert memo.state == DocumentState(reads)
    assert memo.head_to_store()["state"] == reads  # written back under today's name


# --- through the Store ----------------------------------------------------------------------------------
def test_a_section_stored_without_version_stays_without_it_until_it_is_written(cast):
    """A section the Store held before sections recorded their version: reading it and writing the memo
    around it leaves it as it was; writing it gives it the version."""
    client = cast.client("editor")
    assert save(client, cast.deal, "## Risks and Mitigants\n\nRates.").status_code == 200
    with memo_transaction(cast.deal.pk) as writer:
        memo = writer.load()
        memo.sections["risks"].version = None
        writer.put_section(memo.sections["risks"])

    def raw(key: str) -> dict:
        return get_store().get(canvas_namespace(cast.deal.pk), SECTION_PREFIX + key).value

    assert "version" not in raw("risks") and read_memo(cast.deal.pk).sections["risks"].version is None
    other = client.put(canvas_url(cast.deal, "sections/financing"), {"markdown": "A loan."}, format="json")
    assert other.status_code == 200
    assert "version" not in raw("risks") and raw("risks")["markdown"] == "Rates."
    again = client.put(canvas_url(cast.deal, "sections/risks"), {"markdown": "Rates rise."}, format="json")
    assert again.status_code == 200 and raw("risks")["version"] == again.json()["version"] == 3
