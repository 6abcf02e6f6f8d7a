"""Suggestions: propose (commenter), list (viewer), accept and reject (editor).

GET/POST /api/canvas/{D}/suggestions, POST /api/canvas/{D}/suggestions/{id}/accept and /reject.
"""

from __future__ import annotations

import json
import uuid
from concurrent.futures import ThreadPoolExecutor

import httpx
import pytest

from canvas.memo.store import read_memo
from canvas.models import Suggestion
from canvas.review.suggestions import apply_change, find_occurrence
from canvas_project import keys
from canvas_project.redis_client import get_redis
from deals.models import Deal
from deals.tokens import token_pair_for_user
from tests.canvas.conftest import canvas_url, save
from tests.conftest import ROLES, expected_status

RISKS = "Rates may rise. Vacancy is low. Rates may rise again."


def _propose(client, deal, **body):
    body.setdefault("section_key", "risks")
    return client.post(canvas_url(deal, "suggestions"), body, format="json")


def _accept(client, deal, suggestion_id, body=None):
    return client.post(canvas_url(deal, f"suggestions/{suggestion_id}/accept"), body or {}, format="json")


def _reject(client, deal, suggestion_id):
    return client.post(canvas_url(deal, f"suggestions/{suggestion_id}/reject"))


def _risks(deal) -> str:
    return read_memo(deal.pk).sections["risks"].markdown


def _events(deal) -> list[tuple[str, dict]]:
    return [
        (fields[b"type"].decode(), json.loads(fields[b"data"]))
        for _id, fields in get_redis().xrange(keys.events_key(deal.pk))
    ]


@pytest.fixture
def risks(cast, written):
    """The written memo with a short, known Risks section (version 2)."""
    response = cast.client("editor").put(canvas_url(cast.deal, "sections/risks"), {"markdown": RISKS}, format="json")
    assert response.status_code == 200 and response.json()["version"] == 2
    return RISKS


@pytest.fixture
def proposed(cast, risks):
    """A commenter's pending replace of "Vacancy is low." in Risks."""
    response = _propose(
        cast.client("commenter"),
        cast.deal,
        kind="replace",
        anchor_text="Vacancy is low.",
        content="Vacancy is 6%.",
        comment="Be specific.",
    )
    assert response.status_code == 201, response.content
    return response.json()


# --- role matrices ----------------------------------------------------------------------------------------
@pytest.mark.parametrize("role", ROLES)
def test_role_matrix_list(cast, proposed, role):
    response = cast.client(role).get(canvas_url(cast.deal, "suggestions"))
    assert response.status_code == expected_status(role, minimum="viewer", ok=200)
    if response.status_code == 200:
        assert [s["id"] for s in response.json()["results"]] == [proposed["id"]]


@pytest.mark.parametrize("role", ROLES)
def test_role_matrix_create(cast, risks, role):
    response = _propose(cast.client(role), cast.deal, kind="insert", content="Insurance rises.")
    assert response.status_code == expected_status(role, minimum="commenter", ok=201)
    assert Suggestion.objects.count() == (1 if response.status_code == 201 else 0)


@pytest.mark.parametrize("role", ROLES)
def test_role_matrix_accept(cast, proposed, role):
    response = _accept(cast.client(role), cast.deal, proposed["id"])
    assert response.status_code == expected_status(role, minimum="editor", ok=200)
    accepted = response.status_code == 200
    assert Suggestion.objects.get().status == ("accepted" if accepted else "pending")
    assert ("Vacancy is 6%." in _risks(cast.deal)) is accepted


@pytest.mark.parametrize("role", ROLES)
def test_role_matrix_reject(cast, proposed, role):
    response = _reject(cast.client(role), cast.deal, proposed["id"])
    assert response.status_code == expected_status(role, minimum="editor", ok=200)
    assert Suggestion.objects.get().status == ("rejected" if response.status_code == 200 else "pending")


# --- proposing --------------------------------------------------------------------------------------------
def test_a_proposal_records_who_what_and_the_version_it_was_made_on(cast, proposed):
    assert proposed["status"] == "pending" and proposed["kind"] == "replace"
    assert proposed["section_key"] == "risks" and proposed["occurrence"] == 1
    assert proposed["anchor_text"] == "Vacancy is low."
    assert (proposed["content"], proposed["comment"]) == ("Vacancy is 6%.", "Be specific.")
    assert proposed["author"] == "commenter" and proposed["author_id"] == str(cast.users["commenter"].pk)
    assert proposed["base_version"] == 2 and proposed["applied_version"] is None
    assert proposed["decided_by"] is None and proposed["decided_at"] is None
    assert proposed["anchor_matches"] is True
    # proposing never touches the memo
    assert _risks(cast.deal) == RISKS and read_memo(cast.deal.pk).version == 2


def test_whitespace_in_anchor_and_content_is_kept_exactly(cast, risks):
    body = _propose(cast.client("commenter"), cast.deal, kind="insert", anchor_text="rise. ", content="  (bps) ").json()
    assert (body["anchor_text"], body["content"]) == ("rise. ", "  (bps) ")


def test_an_unknown_section_is_404(cast, risks):
    response = _propose(cast.client("commenter"), cast.deal, section_key="nope", kind="insert", content="x")
    assert response.status_code == 404 and "nope" in response.json()["detail"]


def test_a_never_opened_memo_accepts_appends_to_its_template_sections(cast):
    response = _propose(cast.client("commenter"), cast.deal, kind="insert", content="First words.")
    assert response.status_code == 201 and response.json()["base_version"] == 0
    accepted = _accept(cast.client("editor"), cast.deal, response.json()["id"])
    assert accepted.status_code == 200 and accepted.json()["version"] == 1
    assert _risks(cast.deal) == "First words."
    # the memo's first write keeps every other section of the template
    sections = cast.client("viewer").get(canvas_url(cast.deal)).json()["sections"]
    assert len(sections) == 9 and sections["financing"]["markdown"] == ""


@pytest.mark.parametrize(
    ("body", "loc", "kind"),
    [
        ({"kind": "insert", "content": "x", "section_key": None}, ["body", "section_key"], None),
        ({"kind": "move", "anchor_text": "Rates", "content": "x"}, ["body", "kind"], None),
        ({"anchor_text": "Rates", "content": "x"}, ["body", "kind"], "missing"),
        ({"kind": "delete", "anchor_text": ""}, ["body", "anchor_text"], None),
        ({"kind": "replace", "content": "x"}, ["body", "anchor_text"], None),
        ({"kind": "delete", "anchor_text": "Rates", "content": "x"}, ["body", "content"], None),
        ({"kind": "insert", "anchor_text": "Rates"}, ["body", "content"], None),
        ({"kind": "replace", "anchor_text": "Rates", "content": ""}, ["body", "content"], None),
        ({"kind": "replace", "anchor_text": "Rates", "content": "Rates"}, ["body", "content"], None),
        ({"kind": "replace", "anchor_text": "R" * 2001, "content": "x"}, ["body", "anchor_text"], None),
        ({"kind": "insert", "anchor_text": "Rates", "content": "x" * 20001}, ["body", "content"], None),
        ({"kind": "insert", "content": "x", "comment": "c" * 2001}, ["body", "comment"], None),
        ({"kind": "delete", "anchor_text": "Rates", "occurrence": 0}, ["body", "occurrence"], None),
        ({"kind": "delete", "anchor_text": "Rates", "occurrence": "two"}, ["body", "occurrence"], None),
        ({"kind": "insert", "content": "x", "occurrence": 2}, ["body", "occurrence"], None),
        ({"kind": "delete", "anchor_text": 7}, ["body", "anchor_text"], "string_type"),
        ({"kind": "insert", "content": "x", "base_version": 2}, ["body", "base_version"], "extra_forbidden"),
        ({"kind": "delete", "anchor_text": "Interest rates"}, ["body", "anchor_text"], "anchor_not_found"),
        (
            {"kind": "delete", "anchor_text": "Rates may rise", "occurrence": 3},
            ["body", "occurrence"],
            "anchor_not_found",
        ),
    ],
)
def test_bad_proposals_are_422_at_the_field(cast, risks, body, loc, kind):
    payload = {"section_key": "risks", **body}
    if payload["section_key"] is None:
        del payload["section_key"]
    response = cast.client("commenter").post(canvas_url(cast.deal, "suggestions"), payload, format="json")
    assert response.status_code == 422, response.content
    item = response.json()["detail"][0]
    assert item["loc"] == loc and set(item) == {"loc", "msg", "type", "input", "ctx"}
    if kind:
        assert item["type"] == kind
    assert Suggestion.objects.count() == 0


def test_a_body_that_is_not_an_object_is_422(cast, risks):
    response = cast.client("commenter").post(canvas_url(cast.deal, "suggestions"), [1], format="json")
    assert response.status_code == 422 and response.json()["detail"][0]["loc"] == ["body"]


# --- accepting --------------------------------------------------------------------------------------------
def _versions(client, deal) -> list[dict]:
    return client.get(canvas_url(deal, "versions")).json()["results"]


@pytest.mark.parametrize(
    ("body", "expected"),
    [
        (
            {"kind": "insert", "anchor_text": "Vacancy is low.", "content": " Supply is thin."},
            "Rates may rise. Vacancy is low. Supply is thin. Rates may rise again.",
        ),
        (
            {"kind": "insert", "anchor_text": "", "content": "Insurance costs are rising."},
            f"{RISKS}\n\nInsurance costs are rising.",
        ),
        ({"kind": "insert", "anchor_text": "", "content": "\n- Insurance."}, f"{RISKS}\n- Insurance."),
        ({"kind": "delete", "anchor_text": " Vacancy is low."}, "Rates may rise. Rates may rise again."),
        (
            {"kind": "delete", "anchor_text": "Rates may rise", "occurrence": 2},
            "Rates may rise. Vacancy is low.  again.",
        ),
        (
            {"kind": "replace", "anchor_text": "Vacancy is low.", "content": "Vacancy is 6%."},
            "Rates may rise. Vacancy is 6%. Rates may rise again.",
        ),
        (
            {"kind": "replace", "anchor_text": "Rates may rise", "occurrence": 2, "content": "Rates could fall"},
            "Rates may rise. Vacancy is low. Rates could fall again.",
        ),
    ],
)
def test_accepting_applies_the_change_as_a_new_version_with_a_snapshot(cast, risks, body, expected):
    suggestion = _propose(cast.client("commenter"), cast.deal, **body).json()
    response = _accept(cast.client("editor"), cast.deal, suggestion["id"])
    assert response.status_code == 200, response.content
    result = response.json()
    assert result["success"] is True and result["version"] == 3 and result["document_state"] == "editing"
    assert result["section"]["key"] == "risks" and result["section"]["markdown"] == expected
    assert result["section"]["source"] == "human" and result["section"]["updated_by"] == "editor"
    decided = result["suggestion"]
    assert (decided["status"], decided["applied_version"], decided["decided_by"]) == ("accepted", 3, "editor")
    assert decided["decided_at"] is not None and decided["anchor_matches"] is None

    doc = read_memo(cast.deal.pk)
    assert doc.version == 3 and doc.sections["risks"].markdown == expected
    assert Deal.objects.get(pk=cast.deal.pk).memo_version == 3
    viewer = cast.client("viewer")
    assert viewer.get(canvas_url(cast.deal)).json()["sections"]["risks"]["markdown"] == expected
    newest = _versions(viewer, cast.deal)[0]
    assert (newest["version"], newest["author"]) == (3, "editor")
    assert newest["reason"] == f"suggestion {suggestion['id']} accepted"
    snapshot = viewer.get(canvas_url(cast.deal, "versions/3")).json()
    assert snapshot["sections"]["risks"]["markdown"] == expected


def test_a_suggestion_applies_to_the_current_text_even_after_unrelated_edits(cast, proposed):
    cast.client("editor").put(
        canvas_url(cast.deal, "sections/risks"), {"markdown": "New lead. " + RISKS}, format="json"
    )
    response = _accept(cast.client("editor"), cast.deal, proposed["id"])
    assert response.status_code == 200 and response.json()["version"] == 4
    assert _risks(cast.deal) == "New lead. Rates may rise. Vacancy is 6%. Rates may rise again."


def test_accepting_when_the_anchor_no_longer_matches_is_409_and_stays_pending(cast, proposed):
    cast.client("editor").put(canvas_url(cast.deal, "sections/risks"), {"markdown": "Rates may rise."}, format="json")
    listed = cast.client("viewer").get(canvas_url(cast.deal, "suggestions")).json()["results"]
    assert listed[0]["anchor_matches"] is False

    response = _accept(cast.client("editor"), cast.deal, proposed["id"])
    assert response.status_code == 409
    body = response.json()
    assert "changed since this suggestion was made" in body["detail"] and body["current_version"] == 3
    assert Suggestion.objects.get().status == "pending"
    assert _risks(cast.deal) == "Rates may rise." and read_memo(cast.deal.pk).version == 3
    # the editor can still reject it
    assert _reject(cast.client("editor"), cast.deal, proposed["id"]).status_code == 200


def test_an_occurrence_that_is_gone_is_409(cast, risks):
    suggestion = _propose(
        cast.client("commenter"), cast.deal, kind="delete", anchor_text="Rates may rise", occurrence=2
    ).json()
    cast.client("editor").put(
        canvas_url(cast.deal, "sections/risks"), {"markdown": "Rates may rise. Stable."}, format="json"
    )
    assert _accept(cast.client("editor"), cast.deal, suggestion["id"]).status_code == 409
    assert _risks(cast.deal) == "Rates may rise. Stable."


def test_a_section_that_is_gone_is_409(cast, written):
    save(cast.client("editor"), cast.deal, "## Side Letter\n\nTerms apply.")
    suggestion = _propose(
        cast.client("commenter"), cast.deal, section_key="custom_side_letter", kind="delete", anchor_text=" apply"
    ).json()
    save(cast.client("editor"), cast.deal, "## Risks and Mitigants\n\nOnly risks.")
    response = _accept(cast.client("editor"), cast.deal, suggestion["id"])
    assert response.status_code == 409 and "no longer exists" in response.json()["detail"]
    assert Suggestion.objects.get().status == "pending"


@pytest.mark.parametrize("first", ["accept", "reject"])
@pytest.mark.parametrize("second", ["accept", "reject"])
def test_only_a_pending_suggestion_can_be_decided(cast, proposed, first, second):
    editor = cast.client("editor")
    decide = {"accept": _accept, "reject": _reject}
    assert decide[first](editor, cast.deal, proposed["id"]).status_code == 200
    version = read_memo(cast.deal.pk).version
    response = decide[second](editor, cast.deal, proposed["id"])
    assert response.status_code == 409
    expected = "accepted" if first == "accept" else "rejected"
    assert response.json()["status"] == expected and f"already {expected}" in response.json()["detail"]
    assert Suggestion.objects.get().status == expected
    assert read_memo(cast.deal.pk).version == version
    assert _risks(cast.deal).count("Vacancy is 6%.") == (1 if first == "accept" else 0)


def test_accepting_with_a_stale_base_version_is_409(cast, proposed):
    response = _accept(cast.client("editor"), cast.deal, proposed["id"], {"base_version": 1})
    assert response.status_code == 409 and response.json()["current_version"] == 2
    assert Suggestion.objects.get().status == "pending" and _risks(cast.deal) == RISKS
    current = _accept(cast.client("editor"), cast.deal, proposed["id"], {"base_version": 2})
    assert current.status_code == 200 and current.json()["version"] == 3


@pytest.mark.parametrize("body", [{"base_version": -1}, {"base_version": "two"}, {"version": 2}])
def test_a_bad_accept_body_is_422(cast, proposed, body):
    response = _accept(cast.client("editor"), cast.deal, proposed["id"], body)
    assert response.status_code == 422 and response.json()["detail"][0]["loc"][0] == "body"
    assert Suggestion.objects.get().status == "pending"


def test_accepting_on_an_approved_memo_is_409_until_it_is_reopened(cast, written):
    anchor = "The underwriting supports the business plan."
    suggestion = _propose(
        cast.client("commenter"),
        cast.deal,
        kind="replace",
        anchor_text=anchor,
        content="The underwriting supports the plan.",
    ).json()
    assert cast.client("owner").post(canvas_url(cast.deal, "approve")).json()["success"] is True
    response = _accept(cast.client("editor"), cast.deal, suggestion["id"])
    assert response.status_code == 409 and "approved" in response.json()["detail"]
    assert Suggestion.objects.get().status == "pending"
    cast.client("owner").post(canvas_url(cast.deal, "reopen"))
    assert _accept(cast.client("editor"), cast.deal, suggestion["id"]).status_code == 200
    assert "The underwriting supports the plan." in _risks(cast.deal)


def test_accepting_a_section_locked_by_someone_else_is_423(cast, proposed):
    Deal.objects.filter(pk=cast.deal.pk).update(collab_enabled=False)
    holder = {
        "user_id": str(cast.users["owner"].pk),
        "user_name": "owner",
        "token": "t",
        "expires_at": "2999-01-01T00:00:00+00:00",
    }
    get_redis().set(keys.lock_key(cast.deal.pk, "risks"), json.dumps(holder), ex=60)
    response = _accept(cast.client("editor"), cast.deal, proposed["id"])
    assert response.status_code == 423 and response.json()["holder"] == "owner"
    assert Suggestion.objects.get().status == "pending" and _risks(cast.deal) == RISKS
    # the lock's holder may accept it
    assert _accept(cast.client("owner"), cast.deal, proposed["id"]).status_code == 200


def test_accepting_past_the_size_limit_is_413(cast, risks, settings):
    suggestion = _propose(cast.client("commenter"), cast.deal, kind="insert", content="x" * 500).json()
    settings.CANVAS_MAX_CONTENT_CHARS = 300
    response = _accept(cast.client("editor"), cast.deal, suggestion["id"])
    assert response.status_code == 413
    assert Suggestion.objects.get().status == "pending" and _risks(cast.deal) == RISKS


# --- rejecting --------------------------------------------------------------------------------------------
def test_rejecting_leaves_the_memo_untouched(cast, proposed):
    response = _reject(cast.client("editor"), cast.deal, proposed["id"])
    assert response.status_code == 200
    body = response.json()
    assert (body["status"], body["decided_by"], body["applied_version"]) == ("rejected", "editor", None)
    assert body["decided_at"] is not None
    doc = read_memo(cast.deal.pk)
    assert doc.version == 2 and doc.sections["risks"].markdown == RISKS
    assert _versions(cast.client("viewer"), cast.deal)[0]["version"] == 2


# --- paths ------------------------------------------------------------------------------------------------
@pytest.mark.parametrize("action", ["accept", "reject"])
def test_a_malformed_suggestion_id_is_422_at_the_path(cast, risks, action):
    response = cast.client("editor").post(canvas_url(cast.deal, f"suggestions/not-a-uuid/{action}"))
    assert response.status_code == 422
    assert response.json()["detail"][0]["loc"] == ["path", "suggestion_id"]


@pytest.mark.parametrize("action", ["accept", "reject"])
def test_an_unknown_suggestion_is_404(cast, risks, action):
    response = cast.client("editor").post(canvas_url(cast.deal, f"suggestions/{uuid.uuid4()}/{action}"))
    assert response.status_code == 404 and response.json() == {"detail": "Suggestion not found."}


@pytest.mark.parametrize("action", ["accept", "reject"])
def test_a_suggestion_of_another_deal_is_404(cast, proposed, action):
    from tests import factories

    other = factories.make_deal(cast.org, owner=cast.users["editor"], name="Other")
    response = cast.client("editor").post(canvas_url(other, f"suggestions/{proposed['id']}/{action}"))
    assert response.status_code == 404
    assert Suggestion.objects.get().status == "pending"


def test_a_malformed_deal_id_is_404(cast, proposed):
    response = cast.client("editor").post(f"/api/canvas/nope/suggestions/{proposed['id']}/accept")
    assert response.status_code == 404


# --- listing ----------------------------------------------------------------------------------------------
def test_the_list_is_newest_first_and_filters(cast, proposed):
    commenter, editor = cast.client("commenter"), cast.client("editor")
    by_editor = _propose(editor, cast.deal, kind="insert", content="Editor's note.").json()
    other_section = _propose(commenter, cast.deal, section_key="financing", kind="insert", content="Rate cap.").json()
    _reject(editor, cast.deal, by_editor["id"])

    def ids(query=""):
        response = cast.client("commenter").get(canvas_url(cast.deal, "suggestions") + query)
        assert response.status_code == 200, response.content
        return [s["id"] for s in response.json()["results"]]

    assert ids() == [other_section["id"], by_editor["id"], proposed["id"]]
    assert ids("?status=pending") == [other_section["id"], proposed["id"]]
    assert ids("?status=rejected") == [by_editor["id"]]
    assert ids("?section_key=risks") == [by_editor["id"], proposed["id"]]
    assert ids("?author=me") == [other_section["id"], proposed["id"]]
    assert ids(f"?author={cast.users['editor'].pk}") == [by_editor["id"]]
    assert ids("?author=me&status=pending&section_key=financing") == [other_section["id"]]


def test_list_marks_which_pending_suggestions_still_apply(cast, proposed):
    listed = cast.client("viewer").get(canvas_url(cast.deal, "suggestions")).json()["results"]
    assert listed[0]["anchor_matches"] is True
    _reject(cast.client("editor"), cast.deal, proposed["id"])
    listed = cast.client("viewer").get(canvas_url(cast.deal, "suggestions")).json()["results"]
    assert listed[0]["anchor_matches"] is None


@pytest.mark.parametrize(
    ("query", "loc"),
    [("?status=open", ["query", "status"]), ("?author=someone", ["query", "author"]), ("?sort=new", ["query", "sort"])],
)
def test_bad_list_queries_are_422(cast, proposed, query, loc):
    response = cast.client("viewer").get(canvas_url(cast.deal, "suggestions") + query)
    assert response.status_code == 422 and response.json()["detail"][0]["loc"] == loc


def test_listing_takes_a_fixed_number_of_queries(cast, proposed, django_assert_max_num_queries):
    for n in range(5):
        _propose(cast.client("commenter"), cast.deal, kind="insert", content=f"Note {n}.")
    client = cast.client("viewer")
    with django_assert_max_num_queries(8):
        response = client.get(canvas_url(cast.deal, "suggestions"))
    assert response.status_code == 200 and len(response.json()["results"]) == 6


# --- events -----------------------------------------------------------------------------------------------
def test_creating_accepting_and_rejecting_emit_events(cast, risks):
    commenter, editor = cast.client("commenter"), cast.client("editor")
    first = _propose(commenter, cast.deal, kind="delete", anchor_text=" Vacancy is low.").json()
    second = _propose(commenter, cast.deal, kind="insert", content="More.").json()
    _accept(editor, cast.deal, first["id"])
    _reject(editor, cast.deal, second["id"])

    ours = [(kind, data) for kind, data in _events(cast.deal) if kind.startswith("suggestion_")]
    assert [kind for kind, _ in ours] == [
        "suggestion_created",
        "suggestion_created",
        "suggestion_accepted",
        "suggestion_rejected",
    ]
    created, _, accepted, rejected = (data for _, data in ours)
    assert (created["suggestion_id"], created["section_key"]) == (first["id"], "risks")
    assert created["kind"] == "delete"
    assert created["actor_id"] == str(cast.users["commenter"].pk)
    assert (accepted["version"], accepted["sections"], accepted["state"]) == (3, ["risks"], "editing")
    assert accepted["actor_id"] == str(cast.users["editor"].pk)
    assert (rejected["suggestion_id"], rejected["section_key"]) == (second["id"], "risks")


def test_a_refused_accept_emits_nothing(cast, proposed):
    cast.client("editor").put(canvas_url(cast.deal, "sections/risks"), {"markdown": "Gone."}, format="json")
    before = len(_events(cast.deal))
    assert _accept(cast.client("editor"), cast.deal, proposed["id"]).status_code == 409
    assert len(_events(cast.deal)) == before


# --- the text operations ----------------------------------------------------------------------------------
def test_occurrences_are_counted_without_overlaps():
    assert find_occurrence("aaaa", "aa", 1) == 0
    assert find_occurrence("aaaa", "aa", 2) == 2
    assert find_occurrence("aaaa", "aa", 3) is None
    assert find_occurrence("abc", "", 1) is None
    assert apply_change("", kind="insert", anchor="", occurrence=1, content="x") == "x"
    assert apply_change("a\n", kind="insert", anchor="", occurrence=1, content="b") == "a\nb"
    assert apply_change("a b a", kind="replace", anchor="a", occurrence=2, content="c") == "a b c"
    assert apply_change("a b", kind="delete", anchor="c", occurrence=1, content="") is None


# --- concurrency (real HTTP) ------------------------------------------------------------------------------
@pytest.mark.django_db(transaction=True)
def test_parallel_accepts_of_one_suggestion_apply_it_once(live_server, cast):
    token = token_pair_for_user(user=cast.users["editor"])["access"]
    headers = {"Authorization": f"Bearer {token}"}
    base = f"{live_server.url}/api/canvas/{cast.deal.pk}"
    with httpx.Client(timeout=60, headers=headers) as client:
        assert client.get(base).status_code == 200  # opens the memo with every section of its template
        saved = client.post(f"{base}/save", json={"content": f"## Risks and Mitigants\n\n{RISKS}"})
        assert saved.status_code == 200
        commenter = httpx.Client(
            timeout=60,
            headers={"Authorization": f"Bearer {token_pair_for_user(user=cast.users['commenter'])['access']}"},
        )
        with commenter:
            once = commenter.post(
                f"{base}/suggestions", json={"section_key": "risks", "kind": "insert", "content": "Once."}
            ).json()
            others = [
                commenter.post(
                    f"{base}/suggestions", json={"section_key": "financing", "kind": "insert", "content": f"Note {n}."}
                ).json()
                for n in range(4)
            ]
        urls = [f"{base}/suggestions/{once['id']}/accept"] * 8 + [
            f"{base}/suggestions/{s['id']}/accept" for s in others
        ]
        with ThreadPoolExecutor(12) as pool:
            responses = list(pool.map(lambda url: client.post(url, json={}), urls))

    same = responses[:8]
    assert sorted(r.status_code for r in same) == [200] + [409] * 7, [r.text for r in same]
    assert all(r.status_code == 200 for r in responses[8:]), [r.text for r in responses[8:]]
    assert sorted(r.json()["version"] for r in responses if r.status_code == 200) == [2, 3, 4, 5, 6]
    doc = read_memo(cast.deal.pk)
    assert doc.version == 6 and doc.sections["risks"].markdown.count("Once.") == 1
    assert all(f"Note {n}." in doc.sections["financing"].markdown for n in range(4))
    assert set(Suggestion.objects.values_list("status", flat=True)) == {"accepted"}
