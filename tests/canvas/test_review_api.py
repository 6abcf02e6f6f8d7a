"""Lifecycle (approve, reopen), section approvals with conditions, feedback, comments, readiness."""

from __future__ import annotations

import json

import pytest

from canvas.memo.store import HEAD_KEY, memo_transaction, read_memo
from canvas.models import ApprovalCondition, Comment, SectionApproval, SectionFeedback
from canvas_project import keys
from canvas_project.redis_client import get_redis
from canvas_project.store import canvas_namespace
from tests.canvas.conftest import canvas_url, save
from tests.conftest import ROLES, expected_status


def _approve_section(client, deal, key="risks", **body):
    return client.post(canvas_url(deal, f"sections/{key}/approve"), body, format="json")


# --- role matrices ------------------------------------------------------------------------------------
@pytest.mark.parametrize("role", ROLES)
def test_role_matrix_approve(cast, written, role):
    response = cast.client(role).post(canvas_url(cast.deal, "approve"))
    assert response.status_code == expected_status(role, minimum="owner", ok=200)


@pytest.mark.parametrize("role", ROLES)
def test_role_matrix_reopen(cast, written, role):
    cast.client("owner").post(canvas_url(cast.deal, "approve"))
    response = cast.client(role).post(canvas_url(cast.deal, "reopen"))
    assert response.status_code == expected_status(role, minimum="owner", ok=200)


@pytest.mark.parametrize("role", ROLES)
def test_role_matrix_section_approve(cast, written, role):
    response = _approve_section(cast.client(role), cast.deal)
    assert response.status_code == expected_status(role, minimum="editor", ok=200)


@pytest.mark.parametrize("role", ROLES)
def test_role_matrix_condition_resolve(cast, written, role):
    approval = _approve_section(cast.client("owner"), cast.deal, conditions=["Confirm rate cap"]).json()
    cid = approval["conditions"][0]["id"]
    response = cast.client(role).post(canvas_url(cast.deal, f"sections/risks/conditions/{cid}/resolve"))
    assert response.status_code == expected_status(role, minimum="editor", ok=200)


@pytest.mark.parametrize("role", ROLES)
def test_role_matrix_feedback(cast, written, role):
    response = cast.client(role).post(
        canvas_url(cast.deal, "feedback"), {"section_key": "risks", "rating": 4}, format="json"
    )
    assert response.status_code == expected_status(role, minimum="commenter", ok=201)


@pytest.mark.parametrize("role", ROLES)
def test_role_matrix_comments(cast, written, role):
    listed = cast.client(role).get(canvas_url(cast.deal, "comments"))
    assert listed.status_code == expected_status(role, minimum="viewer", ok=200)
    created = cast.client(role).post(
        canvas_url(cast.deal, "comments"), {"section_key": "risks", "body": "Why?"}, format="json"
    )
    assert created.status_code == expected_status(role, minimum="commenter", ok=201)


@pytest.mark.parametrize("role", ROLES)
def test_role_matrix_comment_resolve(cast, written, role):
    comment = (
        cast.client("owner")
        .post(canvas_url(cast.deal, "comments"), {"section_key": "risks", "body": "?"}, format="json")
        .json()
    )
    response = cast.client(role).post(canvas_url(cast.deal, f"comments/{comment['id']}/resolve"))
    # commenters reach the endpoint but may resolve only their own comments
    expected = expected_status(role, minimum="editor", ok=200)
    if role == "commenter":
        expected = 403
    assert response.status_code == expected


@pytest.mark.parametrize("role", ROLES)
@pytest.mark.parametrize("suffix", ["readiness", "progress"])
def test_role_matrix_reads(cast, written, role, suffix):
    response = cast.client(role).get(canvas_url(cast.deal, suffix))
    assert response.status_code == expected_status(role, minimum="viewer", ok=200)


# --- lifecycle ------------------------------------------------------------------------------------------
def test_approve_then_reopen(cast, written):
    owner = cast.client("owner")
    approved = owner.post(canvas_url(cast.deal, "approve"))
    assert approved.status_code == 200
    body = approved.json()
    assert (body["success"], body["from_state"], body["to_state"], body["error"]) == (True, "editing", "approved", None)
    session = owner.get(canvas_url(cast.deal)).json()
    assert session["document_state"] == "approved" and session["approval_versions"] == [2]
    assert session["can_edit"] is False
    # an approved memo is read-only
    assert save(cast.client("editor"), cast.deal, "## Risks and Mitigants\n\nNew.").status_code == 409
    reopened = owner.post(canvas_url(cast.deal, "reopen")).json()
    assert (reopened["from_state"], reopened["to_state"]) == ("approved", "editing")
    assert save(cast.client("editor"), cast.deal, "## Risks and Mitigants\n\nNew.").status_code == 200


def test_approving_a_draft_is_refused_in_the_document_state_shape(cast):
    response = cast.client("owner").post(canvas_url(cast.deal, "approve"))
    assert response.status_code == 409
    body = response.json()
    assert body["success"] is False and body["from_state"] == "draft" and body["to_state"] is None
    assert body["error"] == "transition_refused" and "draft" in body["detail"]
    assert read_memo(cast.deal.pk).state == "draft"


def test_approving_below_the_readiness_gate_is_refused_with_reasons(cast, written, settings):
    settings.CANVAS_READINESS_GATE = 95
    response = cast.client("owner").post(canvas_url(cast.deal, "approve"))
    assert response.status_code == 409
    assert any("below the gate of 95" in r for r in response.json()["details"]["reasons"])


def test_reopening_an_editing_memo_is_refused(cast, written):
    response = cast.client("owner").post(canvas_url(cast.deal, "reopen"))
    assert response.status_code == 409
    assert response.json()["from_state"] == "editing" and response.json()["success"] is False


def test_a_legacy_exported_state_reads_as_approved(cast, written):
    with memo_transaction(cast.deal.pk) as writer:
        head = {**writer.load().head_to_store(), "state": "exported"}  # as an older version stored it
        writer.store.put(canvas_namespace(cast.deal.pk), HEAD_KEY, head, index=False)
    get_redis().unlink(keys.session_key(cast.deal.pk))
    body = cast.client("viewer").get(canvas_url(cast.deal)).json()
    assert body["document_state"] == "approved"
    assert cast.client("owner").post(canvas_url(cast.deal, "reopen")).json()["to_state"] == "editing"


# --- section approvals -----------------------------------------------------------------------------
def test_a_plain_section_approval_approves_at_once(cast, written):
    response = _approve_section(cast.client("editor"), cast.deal, comment="Solid.", role="partner", quality_score=5)
    body = response.json()
    # never conditional, so never promoted: auto_promoted is only for the last condition resolved
    assert body["section_state"] == "approved" and body["auto_promoted"] is False
    assert body["all_conditions_resolved"] is True and body["conditions"] == []
    assert read_memo(cast.deal.pk).sections["risks"].state == "approved"


def test_conditions_hold_a_section_in_review_until_the_last_is_resolved(cast, written):
    client = cast.client("editor")
    body = _approve_section(client, cast.deal, conditions=["Rate cap quote", "Insurance review"]).json()
    assert body["section_state"] == "reviewed" and body["auto_promoted"] is False
    assert body["all_conditions_resolved"] is False
    first, second = (c["id"] for c in body["conditions"])
    after_first = client.post(canvas_url(cast.deal, f"sections/risks/conditions/{first}/resolve")).json()
    assert after_first["auto_promoted"] is False and after_first["section_state"] == "reviewed"
    after_second = client.post(canvas_url(cast.deal, f"sections/risks/conditions/{second}/resolve")).json()
    assert after_second["auto_promoted"] is True and after_second["all_conditions_resolved"] is True
    assert read_memo(cast.deal.pk).sections["risks"].state == "approved"
    assert ApprovalCondition.objects.filter(resolved=True).count() == 2


def test_a_condition_of_another_section_is_404(cast, written):
    body = _approve_section(cast.client("editor"), cast.deal, conditions=["x"]).json()
    cid = body["conditions"][0]["id"]
    response = cast.client("editor").post(canvas_url(cast.deal, f"sections/financing/conditions/{cid}/resolve"))
    assert response.status_code == 404


def test_unresolved_comments_block_approval_unless_an_owner_forces(cast, written):
    cast.client("commenter").post(
        canvas_url(cast.deal, "comments"), {"section_key": "risks", "body": "Cap?"}, format="json"
    )
    blocked = _approve_section(cast.client("editor"), cast.deal)
    assert blocked.status_code == 409 and blocked.json()["unresolved_comments"] == 1
    assert _approve_section(cast.client("editor"), cast.deal, force=True).status_code == 403
    forced = _approve_section(cast.client("owner"), cast.deal, force=True)
    assert forced.status_code == 200 and forced.json()["forced"] is True


def test_an_empty_section_cannot_be_approved(cast):
    response = _approve_section(cast.client("editor"), cast.deal)
    assert response.status_code == 409


@pytest.mark.parametrize(
    ("body", "field"),
    [
        ({"quality_score": 6}, "quality_score"),
        ({"role": "ceo"}, "role"),
        ({"conditions": ["a", "b", "c", "d"]}, "conditions"),
        ({"comment": "x" * 501}, "comment"),
    ],
)
def test_bad_section_approvals_are_422(cast, written, body, field):
    response = _approve_section(cast.client("editor"), cast.deal, **body)
    assert response.status_code == 422 and response.json()["detail"][0]["loc"][:2] == ["body", field]


def test_editing_an_approved_section_sends_it_back_to_editing(cast, written):
    _approve_section(cast.client("editor"), cast.deal)
    cast.client("editor").put(canvas_url(cast.deal, "sections/risks"), {"markdown": "Changed."}, format="json")
    assert read_memo(cast.deal.pk).sections["risks"].state == "editing"


def test_approving_a_section_of_an_approved_memo_is_409_and_leaves_no_approval_row(cast, written):
    assert cast.client("owner").post(canvas_url(cast.deal, "approve")).status_code == 200
    version = read_memo(cast.deal.pk).version
    response = _approve_section(cast.client("editor"), cast.deal, conditions=["Rate cap quote"])
    assert response.status_code == 409 and "read-only" in response.json()["detail"]
    # the refusal comes from the memo's write, which the rows are made inside of: none survives it
    assert not SectionApproval.objects.filter(deal=cast.deal).exists()
    assert not ApprovalCondition.objects.filter(deal=cast.deal).exists()
    memo = read_memo(cast.deal.pk)
    assert memo.version == version and memo.sections["risks"].state == "editing"


def test_resolving_the_last_condition_of_a_section_edited_meanwhile_promotes_nothing(cast, written):
    client = cast.client("editor")
    body = _approve_section(client, cast.deal, conditions=["Rate cap quote"]).json()
    client.put(canvas_url(cast.deal, "sections/risks"), {"markdown": "Changed."}, format="json")
    resolved = client.post(canvas_url(cast.deal, f"sections/risks/conditions/{body['conditions'][0]['id']}/resolve"))
    assert resolved.status_code == 200
    assert resolved.json()["auto_promoted"] is False and resolved.json()["section_state"] == "editing"
    assert resolved.json()["all_conditions_resolved"] is True
    assert read_memo(cast.deal.pk).sections["risks"].state == "editing"


# --- feedback and comments ---------------------------------------------------------------------------
def test_feedback_is_recorded(cast, written):
    response = cast.client("commenter").post(
        canvas_url(cast.deal, "feedback"),
        {"section_key": "risks", "rating": 2, "comment": "Thin.", "tags": ["depth"]},
        format="json",
    )
    assert response.status_code == 201
    assert SectionFeedback.objects.get().tags == ["depth"]


@pytest.mark.parametrize(
    "body", [{"section_key": "risks", "rating": 0}, {"section_key": "risks", "rating": 6}, {"section_key": "risks"}]
)
def test_bad_feedback_is_422(cast, written, body):
    assert cast.client("commenter").post(canvas_url(cast.deal, "feedback"), body, format="json").status_code == 422


def test_feedback_on_an_unknown_section_is_404(cast, written):
    response = cast.client("commenter").post(
        canvas_url(cast.deal, "feedback"), {"section_key": "x", "rating": 3}, format="json"
    )
    assert response.status_code == 404


def test_comment_threads_replies_and_resolution(cast, written):
    commenter = cast.client("commenter")
    top = commenter.post(
        canvas_url(cast.deal, "comments"), {"section_key": "risks", "body": "Cap?"}, format="json"
    ).json()
    reply = cast.client("editor").post(
        canvas_url(cast.deal, "comments"), {"parent_id": top["id"], "body": "Yes"}, format="json"
    )
    assert reply.status_code == 201 and reply.json()["section_key"] == "risks"
    listed = commenter.get(canvas_url(cast.deal, "comments") + "?section_key=risks").json()["results"]
    assert len(listed) == 1 and [r["body"] for r in listed[0]["replies"]] == ["Yes"]
    # the author resolves their own thread
    resolved = commenter.post(canvas_url(cast.deal, f"comments/{top['id']}/resolve"))
    assert resolved.status_code == 200 and resolved.json()["resolved"] is True
    assert commenter.get(canvas_url(cast.deal, "comments") + "?resolved=false").json()["results"] == []


def test_a_reply_to_an_unknown_comment_is_404(cast, written):
    response = cast.client("editor").post(
        canvas_url(cast.deal, "comments"),
        {"parent_id": "7f1c0d52-3b7e-4d0a-9a51-2f3c4b5d6e7f", "body": "?"},
        format="json",
    )
    assert response.status_code == 404
    assert Comment.objects.count() == 0


def test_a_comment_needs_a_section_or_a_parent(cast, written):
    response = cast.client("editor").post(canvas_url(cast.deal, "comments"), {"body": "?"}, format="json")
    assert response.status_code == 422


# --- readiness -------------------------------------------------------------------------------------------
def test_readiness_explains_six_weighted_dimensions(cast, written):
    body = cast.client("viewer").get(canvas_url(cast.deal, "readiness")).json()
    assert [d["key"] for d in body["dimensions"]] == [
        "section_quality",
        "approval_status",
        "completeness",
        "freshness",
        "model_integrity",
        "decision_coverage",
    ]
    assert abs(sum(d["weight"] for d in body["dimensions"]) - 1) < 1e-9
    assert all(d["why"] and 0 <= d["score"] <= 100 for d in body["dimensions"])
    assert body["score"] == round(sum(d["score"] * d["weight"] for d in body["dimensions"]))
    assert body["grade"] in "ABCDF" and body["gate"] == 70
    completeness = next(d for d in body["dimensions"] if d["key"] == "completeness")
    assert completeness["score"] == 100 and "7 of 7 required" in completeness["why"]


def test_readiness_is_cached_and_dropped_on_every_write(cast, written):
    client = cast.client("viewer")
    before = client.get(canvas_url(cast.deal, "readiness")).json()
    cached = json.loads(get_redis().get(keys.readiness_key(cast.deal.pk)))
    assert cached["score"] == before["score"] and 0 < get_redis().ttl(keys.readiness_key(cast.deal.pk)) <= 3600
    _approve_section(cast.client("editor"), cast.deal)
    assert get_redis().get(keys.readiness_key(cast.deal.pk)) is None
    after = client.get(canvas_url(cast.deal, "readiness")).json()
    approval = next(d for d in after["dimensions"] if d["key"] == "approval_status")
    assert approval["score"] > 0 and after["score"] > before["score"]


def test_an_empty_memo_scores_low_and_says_why(cast):
    body = cast.client("viewer").get(canvas_url(cast.deal, "readiness")).json()
    assert body["grade"] == "F"
    completeness = next(d for d in body["dimensions"] if d["key"] == "completeness")
    assert completeness["score"] == 0 and "missing: Executive Summary" in completeness["why"]
