"""POST /save and PUT /sections/{key}: splitting, versions, conflicts, limits, locks."""

from __future__ import annotations

import json

import pytest

from canvas.memo.store import read_memo
from canvas_project import keys
from canvas_project.redis_client import get_redis
from deals.models import Deal
from tests.canvas.conftest import canvas_url, save
from tests.conftest import ROLES, expected_status


@pytest.mark.parametrize("role", ROLES)
def test_role_matrix_save(cast, role):
    response = save(cast.client(role), cast.deal, "## Executive Summary\n\nHello.")
    assert response.status_code == expected_status(role, minimum="editor", ok=200)


@pytest.mark.parametrize("role", ROLES)
def test_role_matrix_section_put(cast, role):
    response = cast.client(role).put(canvas_url(cast.deal, "sections/risks"), {"markdown": "Rates."}, format="json")
    assert response.status_code == expected_status(role, minimum="editor", ok=200)


def test_save_splits_by_template_headings_and_keeps_unknown_ones_as_custom_sections(cast):
    content = (
        "# Riverside Apartments\n\nOpening note.\n\n## Executive summary\n\nBuy it.\n\n"
        "## ESG Considerations\n\nSolar panels.\n\n## Risks and Mitigants\n\nRates.\n"
    )
    response = save(cast.client("editor"), cast.deal, content)
    assert response.status_code == 200
    assert response.json()["version"] == 1 and response.json()["document_state"] == "editing"
    doc = read_memo(cast.deal.pk)
    assert doc.sections["executive_summary"].markdown == "Buy it."
    assert doc.sections["risks"].markdown == "Rates."
    assert doc.sections["custom_esg_considerations"].title == "ESG Considerations"
    assert doc.sections["custom_esg_considerations"].custom is True
    assert doc.sections["introduction"].markdown == "Opening note."
    # custom sections sit where they were typed: after the executive summary, before the risks
    order = [s.key for s in doc.ordered_sections()]
    assert order.index("executive_summary") < order.index("custom_esg_considerations") < order.index("risks")


def test_the_saved_markdown_round_trips(cast, memo_text):
    save(cast.client("editor"), cast.deal, memo_text)
    body = cast.client("editor").get(canvas_url(cast.deal)).json()
    again = save(cast.client("editor"), cast.deal, body["markdown_content"], base_version=body["version"])
    assert again.json()["saved"] is False and again.json()["version"] == body["version"]


def test_headings_inside_code_fences_are_not_sections(cast):
    content = "## Executive Summary\n\n```\n## not a heading\n```\n"
    save(cast.client("editor"), cast.deal, content)
    doc = read_memo(cast.deal.pk)
    assert "## not a heading" in doc.sections["executive_summary"].markdown
    assert not any(k.startswith("custom_") for k in doc.sections)


def test_removing_a_heading_empties_a_template_section_and_drops_a_custom_one(cast):
    client = cast.client("editor")
    save(client, cast.deal, "## Executive Summary\n\nA.\n\n## Side Notes\n\nB.")
    save(client, cast.deal, "## Executive Summary\n\nA.")
    doc = read_memo(cast.deal.pk)
    assert "custom_side_notes" not in doc.sections
    save(client, cast.deal, "## Risks and Mitigants\n\nC.")
    assert read_memo(cast.deal.pk).sections["executive_summary"].markdown == ""


def test_a_stale_base_version_is_409_with_the_current_version_and_loses_nothing(cast, written):
    client = cast.client("editor")
    first = save(client, cast.deal, "## Executive Summary\n\nMine.", base_version=1)
    assert first.status_code == 200 and first.json()["version"] == 2
    late = save(client, cast.deal, "## Executive Summary\n\nTheirs.", base_version=1)
    assert late.status_code == 409
    assert late.json()["current_version"] == 2
    assert "version 2" in late.json()["detail"]
    assert read_memo(cast.deal.pk).sections["executive_summary"].markdown == "Mine."


def test_content_over_the_limit_is_413(cast, settings):
    settings.CANVAS_MAX_CONTENT_CHARS = 1000
    response = save(cast.client("editor"), cast.deal, "## Risks and Mitigants\n\n" + "x" * 1000)
    assert response.status_code == 413
    assert "1,000" in response.json()["detail"]
    assert read_memo(cast.deal.pk) is None or read_memo(cast.deal.pk).version == 0


def test_the_default_limit_is_500000_characters(cast):
    assert save(cast.client("editor"), cast.deal, "x" * 500_001).status_code == 413
    assert save(cast.client("editor"), cast.deal, "## Risks and Mitigants\n\n" + "y" * 499_000).status_code == 200


@pytest.mark.parametrize(
    ("payload", "loc"),
    [
        ({}, ["body", "content"]),
        ({"content": 5}, ["body", "content"]),
        ({"content": "x", "base_version": -1}, ["body", "base_version"]),
        ({"content": "x", "base_version": "one"}, ["body", "base_version"]),
    ],
)
def test_bad_save_bodies_are_422(cast, payload, loc):
    response = cast.client("editor").post(canvas_url(cast.deal, "save"), payload, format="json")
    assert response.status_code == 422
    assert response.json()["detail"][0]["loc"] == loc


def test_saving_updates_the_dashboard_summary(cast, written):
    deal = Deal.objects.get(pk=cast.deal.pk)
    assert (deal.memo_version, deal.document_state, deal.sections_populated, deal.sections_total) == (
        1,
        "editing",
        9,
        9,
    )
    row = cast.client("viewer").get("/api/dashboard/memos").json()["results"][0]
    assert row["document_state"] == "editing" and row["progress"] == {"populated": 9, "total": 9}


def test_save_emits_document_saved(cast):
    save(cast.client("editor"), cast.deal, "## Risks and Mitigants\n\nRates.")
    entries = get_redis().xrange(keys.events_key(cast.deal.pk))
    data = json.loads(entries[-1][1][b"data"])
    assert entries[-1][1][b"type"] == b"document_saved"
    assert data["version"] == 1 and data["sections"] == ["risks"]


class TestSectionPut:
    def test_it_edits_one_section_as_a_new_version(self, cast, written):
        response = cast.client("editor").put(
            canvas_url(cast.deal, "sections/risks"), {"markdown": "Rate risk.", "base_version": 1}, format="json"
        )
        assert response.status_code == 200
        body = response.json()
        assert body["version"] == 2 and body["section"]["markdown"] == "Rate risk."
        assert body["section"]["updated_by"] == "editor"

    def test_an_unknown_section_is_404(self, cast):
        response = cast.client("editor").put(canvas_url(cast.deal, "sections/nope"), {"markdown": "x"}, format="json")
        assert response.status_code == 404

    def test_a_stale_base_version_is_409(self, cast, written):
        response = cast.client("editor").put(
            canvas_url(cast.deal, "sections/risks"), {"markdown": "x", "base_version": 0}, format="json"
        )
        assert response.status_code == 409 and response.json()["current_version"] == 1

    def test_editors_of_different_sections_do_not_turn_each_other_away(self, cast, written):
        """Both read version 1; the second save, of another section, still lands (nothing of it is lost)."""
        first = cast.client("editor").put(
            canvas_url(cast.deal, "sections/risks"), {"markdown": "Rate risk.", "base_version": 1}, format="json"
        )
        second = cast.client("owner").put(
            canvas_url(cast.deal, "sections/executive_summary"),
            {"markdown": "Buy it.", "base_version": 1},
            format="json",
        )
        assert (first.status_code, second.status_code) == (200, 200)
        assert second.json()["version"] == 3
        doc = read_memo(cast.deal.pk)
        assert doc.sections["risks"].markdown == "Rate risk."
        assert doc.sections["executive_summary"].markdown == "Buy it."

    def test_a_section_written_after_the_base_version_is_409_and_keeps_the_other_write(self, cast, written):
        client = cast.client("editor")
        assert (
            client.put(
                canvas_url(cast.deal, "sections/risks"), {"markdown": "Rate risk.", "base_version": 1}, format="json"
            ).status_code
            == 200
        )
        late = cast.client("owner").put(
            canvas_url(cast.deal, "sections/risks"), {"markdown": "Mine.", "base_version": 1}, format="json"
        )
        assert late.status_code == 409
        body = late.json()
        assert body["current_version"] == 2
        assert "'risks' changed since version 1 (at version 2)" in body["detail"]
        assert read_memo(cast.deal.pk).sections["risks"].markdown == "Rate risk."
        # a whole-memo save still needs the memo as it is
        stale_save = save(client, cast.deal, "## Risks and Mitigants\n\nOther.", base_version=1)
        assert stale_save.status_code == 409 and stale_save.json()["current_version"] == 2

    def test_a_base_version_the_memo_has_not_reached_is_409(self, cast, written):
        response = cast.client("editor").put(
            canvas_url(cast.deal, "sections/risks"), {"markdown": "x", "base_version": 7}, format="json"
        )
        assert response.status_code == 409 and response.json()["current_version"] == 1
        assert "no version 7 yet" in response.json()["detail"]

    def test_a_section_stored_before_sections_recorded_their_version_is_checked_against_the_memo(self, cast, written):
        from canvas.memo.store import memo_transaction

        with memo_transaction(cast.deal.pk) as writer:  # as the Store held sections before this change
            doc = writer.load()
            for section in doc.sections.values():
                section.version = None  # stored without the field
                writer.put_section(section)
        client = cast.client("editor")
        assert (
            client.put(
                canvas_url(cast.deal, "sections/risks"), {"markdown": "A.", "base_version": 1}, format="json"
            ).status_code
            == 200
        )
        other = client.put(
            canvas_url(cast.deal, "sections/executive_summary"), {"markdown": "B.", "base_version": 1}, format="json"
        )
        assert other.status_code == 409  # no record of when it was written: the whole memo decides
        again = client.put(
            canvas_url(cast.deal, "sections/risks"), {"markdown": "C.", "base_version": 2}, format="json"
        )
        assert again.status_code == 200  # risks records its version from now on
        assert read_memo(cast.deal.pk).sections["risks"].version == 3

    def test_with_collaboration_off_another_users_lock_is_423(self, cast, written):
        Deal.objects.filter(pk=cast.deal.pk).update(collab_enabled=False)
        holder = {
            "user_id": str(cast.users["owner"].pk),
            "user_name": "owner",
            "token": "t",
            "expires_at": "2030-01-01T00:00:00Z",
        }
        get_redis().set(keys.lock_key(cast.deal.pk, "risks"), json.dumps(holder), ex=60)
        response = cast.client("editor").put(canvas_url(cast.deal, "sections/risks"), {"markdown": "x"}, format="json")
        assert response.status_code == 423
        assert response.json()["holder"] == "owner"
        assert (
            cast.client("owner")
            .put(canvas_url(cast.deal, "sections/risks"), {"markdown": "x"}, format="json")
            .status_code
            == 200
        )

    def test_with_collaboration_on_locks_do_not_apply(self, cast, written):
        get_redis().set(keys.lock_key(cast.deal.pk, "risks"), json.dumps({"user_id": "someone"}), ex=60)
        response = cast.client("editor").put(canvas_url(cast.deal, "sections/risks"), {"markdown": "x"}, format="json")
        assert response.status_code == 200


def test_the_first_write_of_a_never_opened_memo_keeps_every_template_section(cast):
    response = save(cast.client("editor"), cast.deal, "## Risks and Mitigants\n\nRates.")
    assert response.status_code == 200
    doc = read_memo(cast.deal.pk)
    assert len(doc.sections) == 9 and doc.sections["risks"].markdown == "Rates."
    session = cast.client("viewer").get(canvas_url(cast.deal)).json()
    assert len(session["sections"]) == 9


def test_the_first_section_edit_of_a_never_opened_memo_keeps_every_template_section(cast):
    response = cast.client("editor").put(canvas_url(cast.deal, "sections/risks"), {"markdown": "x"}, format="json")
    assert response.status_code == 200
    assert len(read_memo(cast.deal.pk).sections) == 9
