"""Section locks and the memo's one write path (collaboration off): every writer against a section locked by
someone else.

A person's write that would change the locked section is 423, names the holder and the expiry, and writes
nothing; a whole-memo save that leaves the section as it is goes through; the AI's runs leave the section
as it is and report it (the run row, its stream, a canvas event) while writing the rest; a reset refuses
before it cancels anything. With collaboration on, locks do not apply.
"""

from __future__ import annotations

import json
from datetime import datetime

import pytest
from django.conf import settings as django_settings
from django.db import connection

from canvas.memo.locks import SectionLock
from canvas.memo.store import read_memo
from canvas.memo.templates import ACQUISITION
from canvas.models import ApprovalCondition, RunStatus, SectionApproval, Suggestion, SuggestionStatus, SynthesisRun
from canvas.runs import services as runs
from canvas.runs.synthesis import telemetry
from canvas_project import keys
from canvas_project.redis_client import get_redis
from deals.models import Deal
from deals.tokens import token_pair_for_user
from tests.canvas.conftest import canvas_url, save, section_text
from tests.canvas.synthesis_corpus import make_corpus
from tests.servers import ServiceProcess, database_url_of
from tests.sse_client import SseEvent, SseReader

LOCKED = "risks"
RISKS_TEXT = section_text("Risks and Mitigants", 8)  # as the written memo has it


# --- helpers ------------------------------------------------------------------------------------------------
def _collab_off(cast) -> None:
    response = cast.client("owner").patch(canvas_url(cast.deal, "collab"), {"enabled": False}, format="json")
    assert response.status_code == 200 and response.json()["collab_enabled"] is False, response.content
    cast.deal.refresh_from_db()


def _take_lock(cast, role: str, key: str = LOCKED) -> dict:
    response = cast.client(role).post(
        canvas_url(cast.deal, f"sections/{key}/lock"), {"ttl_seconds": 120}, format="json"
    )
    assert response.status_code == 200, response.content
    return response.json()


def _markdown(deal, key: str = LOCKED) -> str:
    return read_memo(deal.pk).sections[key].markdown


def _memo_state(deal) -> tuple:
    """What a refused write must leave exactly as it was: version, snapshots, every section."""
    memo = read_memo(deal.pk)
    return memo.version, list(memo.versions), {k: s.to_store() for k, s in memo.sections.items()}


_KEEP = object()


def _memo_with(**texts) -> str:
    """full_memo() with some sections' text replaced, by key (None: the section left out)."""
    parts = []
    for n, spec in enumerate(ACQUISITION.sections, start=1):
        text = texts.get(spec.key, _KEEP)
        text = section_text(spec.title, n) if text is _KEEP else text
        if text is not None:
            parts.append(f"## {spec.title}\n\n{text}\n")
    return "\n".join(parts)


def _same_instant(a: str, b: str) -> bool:
    return datetime.fromisoformat(a) == datetime.fromisoformat(b)


def _assert_names_the_lock(body: dict, holder, lock: dict, key: str = LOCKED) -> None:
    """The 423 (or a run's skip record) says whose lock it is and until when."""
    assert body["section_key"] == key
    assert body["holder"] == holder.display_name
    assert body["holder_id"] == str(holder.pk)
    assert body["expires_at"] and _same_instant(body["expires_at"], lock["expires_at"])


def _assert_locked_423(response, holder, lock: dict, key: str = LOCKED) -> dict:
    assert response.status_code == 423, response.content
    body = response.json()
    _assert_names_the_lock(body, holder, lock, key)
    assert holder.display_name in body["detail"] and "nothing was written" in body["detail"]
    assert [entry["section_key"] for entry in body["locked_sections"]] == [key]
    _assert_names_the_lock(body["locked_sections"][0], holder, lock, key)
    return body


def _canvas_events(deal) -> list[tuple[str, dict]]:
    return [
        (fields[b"type"].decode(), json.loads(fields[b"data"]))
        for _id, fields in get_redis().xrange(keys.events_key(deal.pk))
    ]


@pytest.fixture
def locked(cast, written):
    """The written memo (version 1) with collaboration off and the owner holding the lock on Risks."""
    _collab_off(cast)
    return _take_lock(cast, "owner")


# --- save ---------------------------------------------------------------------------------------------------
class TestSave:
    def test_it_is_423_naming_the_holder_when_the_save_would_change_the_locked_section(self, cast, locked):
        before, risks = _memo_state(cast.deal), _markdown(cast.deal)
        content = _memo_with(risks="Rates may rise.", financing="A new loan.")
        response = save(cast.client("editor"), cast.deal, content, base_version=1)
        _assert_locked_423(response, cast.users["owner"], locked)
        # refused whole: not even the unlocked Financing section was written
        assert _markdown(cast.deal) == risks
        assert _memo_state(cast.deal) == before

    def test_it_is_423_when_the_save_would_empty_the_locked_section(self, cast, locked):
        before = _memo_state(cast.deal)
        response = save(cast.client("editor"), cast.deal, _memo_with(risks=None))
        _assert_locked_423(response, cast.users["owner"], locked)
        assert _memo_state(cast.deal) == before

    def test_a_save_that_leaves_the_locked_section_as_it_is_changes_the_rest(self, cast, locked):
        risks = _markdown(cast.deal)
        content = _memo_with(financing="A new loan.")
        response = save(cast.client("editor"), cast.deal, content, base_version=1)
        assert response.status_code == 200, response.content
        assert response.json()["version"] == 2 and response.json()["changed_sections"] == ["financing"]
        memo = read_memo(cast.deal.pk)
        assert memo.sections["financing"].markdown == "A new loan."
        assert memo.sections[LOCKED].markdown == risks and memo.sections[LOCKED].version == 1

    def test_the_lock_holders_own_save_changes_the_locked_section(self, cast, locked):
        content = _memo_with(risks="Rates may rise.")
        response = save(cast.client("owner"), cast.deal, content, base_version=1)
        assert response.status_code == 200, response.content
        assert _markdown(cast.deal) == "Rates may rise."

    def test_every_locked_section_the_save_would_change_is_listed(self, cast, locked):
        financing_lock = _take_lock(cast, "owner", "financing")
        content = _memo_with(risks="Rates may rise.", financing="A new loan.")
        response = save(cast.client("editor"), cast.deal, content)
        assert response.status_code == 423
        listed = {entry["section_key"]: entry for entry in response.json()["locked_sections"]}
        assert sorted(listed) == ["financing", LOCKED]
        _assert_names_the_lock(listed["financing"], cast.users["owner"], financing_lock, "financing")
        _assert_names_the_lock(listed[LOCKED], cast.users["owner"], locked)
        assert read_memo(cast.deal.pk).version == 1


# --- section PUT ------------------------------------------------------------------------------------------
class TestSectionPut:
    def test_it_is_423_naming_the_holder_and_writes_nothing(self, cast, locked):
        before, risks = _memo_state(cast.deal), _markdown(cast.deal)
        response = cast.client("editor").put(
            canvas_url(cast.deal, f"sections/{LOCKED}"),
            {"markdown": "Rates may rise.", "base_version": 1},
            format="json",
        )
        _assert_locked_423(response, cast.users["owner"], locked)
        assert _markdown(cast.deal) == risks and _memo_state(cast.deal) == before

    def test_a_section_nobody_locked_needs_the_writers_own_lock(self, cast, locked):
        before = _memo_state(cast.deal)
        response = cast.client("editor").put(
            canvas_url(cast.deal, "sections/financing"), {"markdown": "A new loan."}, format="json"
        )
        assert response.status_code == 423
        body = response.json()
        assert (body["section_key"], body["holder"], body["holder_id"], body["expires_at"]) == (
            "financing",
            None,
            None,
            None,
        )
        assert "take the lock" in body["detail"] and _memo_state(cast.deal) == before
        _take_lock(cast, "editor", "financing")
        again = cast.client("editor").put(
            canvas_url(cast.deal, "sections/financing"), {"markdown": "A new loan."}, format="json"
        )
        assert again.status_code == 200 and _markdown(cast.deal, "financing") == "A new loan."

    def test_the_lock_holders_own_edit_is_written(self, cast, locked):
        response = cast.client("owner").put(
            canvas_url(cast.deal, f"sections/{LOCKED}"),
            {"markdown": "Rates may rise.", "base_version": 1},
            format="json",
        )
        assert response.status_code == 200, response.content
        assert response.json()["version"] == 2 and _markdown(cast.deal) == "Rates may rise."


# --- restore ----------------------------------------------------------------------------------------------
def test_a_restore_that_would_change_the_locked_section_is_423_and_writes_nothing(cast, written):
    editor = cast.client("editor")
    edited = _memo_with(risks="Rates may rise.", financing="A loan.")
    assert save(editor, cast.deal, edited, base_version=1).status_code == 200  # version 2
    _collab_off(cast)
    lock = _take_lock(cast, "owner")
    before = _memo_state(cast.deal)
    response = editor.post(canvas_url(cast.deal, "versions/1/restore"), {"base_version": 2}, format="json")
    _assert_locked_423(response, cast.users["owner"], lock)
    # refused whole: Financing, which the restore would also change, keeps version 2's text
    assert _markdown(cast.deal) == "Rates may rise." and _markdown(cast.deal, "financing") == "A loan."
    assert _memo_state(cast.deal) == before


def test_a_restore_that_leaves_the_locked_section_as_it_is_goes_through(cast, written):
    editor = cast.client("editor")
    assert save(editor, cast.deal, _memo_with(financing="A loan.")).status_code == 200
    _collab_off(cast)
    _take_lock(cast, "owner")
    risks = _markdown(cast.deal)
    response = editor.post(canvas_url(cast.deal, "versions/1/restore"), {}, format="json")
    assert response.status_code == 200, response.content
    assert response.json()["changed_sections"] == ["financing"]
    assert _markdown(cast.deal) == risks and _markdown(cast.deal, "financing") != "A loan."


# --- suggestion accept ------------------------------------------------------------------------------------
def test_accepting_a_suggestion_on_the_locked_section_is_423_and_leaves_it_pending(cast, written):
    anchor = "The underwriting supports the business plan."
    proposed = cast.client("commenter").post(
        canvas_url(cast.deal, "suggestions"),
        {"section_key": LOCKED, "kind": "replace", "anchor_text": anchor, "content": "It holds up."},
        format="json",
    )
    assert proposed.status_code == 201, proposed.content
    _collab_off(cast)
    lock = _take_lock(cast, "owner")
    before, risks = _memo_state(cast.deal), _markdown(cast.deal)
    suggestion_id = proposed.json()["id"]
    response = cast.client("editor").post(
        canvas_url(cast.deal, f"suggestions/{suggestion_id}/accept"), {}, format="json"
    )
    _assert_locked_423(response, cast.users["owner"], lock)
    assert _markdown(cast.deal) == risks and _memo_state(cast.deal) == before
    suggestion = Suggestion.objects.get(pk=suggestion_id)
    assert suggestion.status == SuggestionStatus.PENDING and suggestion.decided_by is None
    # the holder may accept it
    accepted = cast.client("owner").post(
        canvas_url(cast.deal, f"suggestions/{suggestion_id}/accept"), {}, format="json"
    )
    assert accepted.status_code == 200, accepted.content
    assert "It holds up." in _markdown(cast.deal) and anchor not in _markdown(cast.deal)


# --- section approvals ------------------------------------------------------------------------------------
def test_approving_the_locked_section_is_423_and_leaves_no_approval_row(cast, locked):
    before = _memo_state(cast.deal)
    response = cast.client("editor").post(
        canvas_url(cast.deal, f"sections/{LOCKED}/approve"), {"conditions": ["Rate cap quote"]}, format="json"
    )
    _assert_locked_423(response, cast.users["owner"], locked)
    assert not SectionApproval.objects.filter(deal=cast.deal).exists()
    assert not ApprovalCondition.objects.filter(deal=cast.deal).exists()
    assert _memo_state(cast.deal) == before


def test_resolving_the_last_condition_of_the_locked_section_is_423_and_leaves_it_open(cast, written):
    approved = cast.client("editor").post(
        canvas_url(cast.deal, f"sections/{LOCKED}/approve"), {"conditions": ["Rate cap quote"]}, format="json"
    )
    [condition] = approved.json()["conditions"]
    _collab_off(cast)
    lock = _take_lock(cast, "owner")
    before = _memo_state(cast.deal)
    response = cast.client("editor").post(
        canvas_url(cast.deal, f"sections/{LOCKED}/conditions/{condition['id']}/resolve")
    )
    _assert_locked_423(response, cast.users["owner"], lock)
    assert ApprovalCondition.objects.get(pk=condition["id"]).resolved is False
    assert read_memo(cast.deal.pk).sections[LOCKED].state == "reviewed" and _memo_state(cast.deal) == before


# --- runs: generate and regenerate ------------------------------------------------------------------------
@pytest.fixture(scope="module")
def service(django_db_setup):
    """The service over real HTTP (uvicorn) on the test database, to read the runs' event streams as a
    client does; one for the module (the runs' tests are transactional, so it sees their rows)."""
    server = ServiceProcess(
        {
            "DJANGO_SETTINGS_MODULE": "canvas_project.settings",
            "DATABASE_URL": database_url_of(connection.settings_dict),
            "REDIS_URL": django_settings.REDIS_URL,
        }
    ).start()
    yield server
    server.stop()


def _read_stream(service, cast, stream_url: str) -> list[SseEvent]:
    """The whole stream of a finished run, as a viewer's EventSource gets it."""
    reader = SseReader(service.url + stream_url, token_pair_for_user(user=cast.users["viewer"])["access"]).start()
    got: list[SseEvent] = []
    while not got or got[-1].event != "done":
        got.append(reader.events.get(timeout=30))
    reader.close()
    return got


def _assert_stream_reports_the_skip(got: list[SseEvent], holder, lock: dict) -> None:
    mine = [e for e in got if e.data.get("component_id") == LOCKED]
    assert mine[0].event == "node_started" and [e.event for e in mine[-2:]] == ["message_end", "node_finished"]
    ended = [e for e in mine if e.event == "message_end"]
    assert [e.data["status"] for e in ended] == ["skipped_locked"]
    _assert_names_the_lock(ended[0].data["locked_by"], holder, lock)
    assert holder.display_name in ended[0].data["error"]
    [node] = [e for e in mine if e.event == "node_finished"]
    assert node.data["outputs"]["status"] == "skipped_locked"
    _assert_names_the_lock(node.data["outputs"]["locked_by"], holder, lock)
    finished = next(e for e in got if e.event == "workflow_finished")
    assert finished.data["status"] == "succeeded" and finished.data["outputs"]["skipped_locked"] == [LOCKED]
    assert LOCKED not in finished.data["outputs"]["delivered"] + finished.data["outputs"]["missing"]


def _assert_run_record_reports_the_skip(cast, run_id, holder, lock: dict) -> dict:
    run = cast.client("viewer").get(canvas_url(cast.deal, f"runs/{run_id}"))
    assert run.status_code == 200
    body = run.json()
    assert body["status"] == "succeeded"
    [skipped] = body["sections_skipped_locked"]
    assert set(skipped) == {"section_key", "holder", "holder_id", "expires_at"}
    _assert_names_the_lock(skipped, holder, lock)
    assert LOCKED not in body["sections_delivered"] + body["sections_missing"] + body["sections_failed"]
    assert "someone holds their lock" in body["error"]
    assert {"section_key": LOCKED, "status": "skipped_locked"}.items() <= next(
        n for n in body["trace_summary"] if n["section_key"] == LOCKED
    ).items()
    skips = [data for name, data in _canvas_events(cast.deal) if name == "run_section_skipped"]
    assert [(d["run_id"], d["section_key"], d["reason"]) for d in skips] == [(str(run_id), LOCKED, "skipped_locked")]
    _assert_names_the_lock(skips[0], holder, lock)
    return body


@pytest.mark.django_db(transaction=True)
def test_a_generate_run_leaves_the_locked_section_as_it_is_reports_it_and_writes_the_rest(cast, written, service):
    make_corpus(cast.deal)
    _collab_off(cast)
    lock = _take_lock(cast, "owner")
    before = read_memo(cast.deal.pk)
    response = cast.client("editor").post(canvas_url(cast.deal, "generate"), {}, format="json")
    assert response.status_code == 202, response.content
    run_id = response.json()["run_id"]
    assert runs.run_execute(run_id=run_id) == RunStatus.SUCCEEDED

    body = _assert_run_record_reports_the_skip(cast, run_id, cast.users["owner"], lock)
    others = [key for key in before.sections if key != LOCKED]
    assert sorted(body["sections_delivered"]) == sorted(others)
    memo = read_memo(cast.deal.pk)
    assert memo.sections[LOCKED].to_store() == before.sections[LOCKED].to_store()
    for key in others:  # the rest of the memo is the AI's draft
        assert memo.sections[key].source == "ai" and memo.sections[key].markdown != before.sections[key].markdown
    assert memo.last_run["skipped_locked"] == [LOCKED]
    _assert_stream_reports_the_skip(
        _read_stream(service, cast, response.json()["stream_url"]), cast.users["owner"], lock
    )


@pytest.mark.django_db(transaction=True)
def test_a_regenerate_run_of_the_locked_section_leaves_it_as_it_is_and_reports_it(cast, written, service):
    make_corpus(cast.deal)
    _collab_off(cast)
    lock = _take_lock(cast, "owner")
    before = read_memo(cast.deal.pk)
    response = cast.client("editor").post(canvas_url(cast.deal, f"sections/{LOCKED}/regenerate"), {}, format="json")
    assert response.status_code == 202, response.content
    run_id = response.json()["run_id"]
    assert runs.run_execute(run_id=run_id) == RunStatus.SUCCEEDED

    body = _assert_run_record_reports_the_skip(cast, run_id, cast.users["owner"], lock)
    assert body["sections_delivered"] == [] and body["requested_sections"] == [LOCKED]
    memo = read_memo(cast.deal.pk)
    # no section changed: the only write was the run's record on the memo's head
    assert {k: s.to_store() for k, s in memo.sections.items()} == {k: s.to_store() for k, s in before.sections.items()}
    assert memo.version == before.version + 1 and memo.last_run["skipped_locked"] == [LOCKED]
    _assert_stream_reports_the_skip(
        _read_stream(service, cast, response.json()["stream_url"]), cast.users["owner"], lock
    )

    # the lock holds back only its section: regenerating another one writes it
    other = cast.client("editor").post(canvas_url(cast.deal, "sections/financing/regenerate"), {}, format="json")
    assert runs.run_execute(run_id=other.json()["run_id"]) == RunStatus.SUCCEEDED
    assert SynthesisRun.objects.get(pk=other.json()["run_id"]).sections_skipped_locked == []
    assert read_memo(cast.deal.pk).sections["financing"].source == "ai"


@pytest.mark.django_db
def test_a_run_leaves_a_section_locked_by_its_own_requester_as_it_is_too(cast, written):
    """The AI never writes a locked section: the requester holding it is editing it by hand."""
    make_corpus(cast.deal)
    _collab_off(cast)
    lock = _take_lock(cast, "editor")
    risks = _markdown(cast.deal)
    response = cast.client("editor").post(canvas_url(cast.deal, f"sections/{LOCKED}/regenerate"), {}, format="json")
    assert runs.run_execute(run_id=response.json()["run_id"]) == RunStatus.SUCCEEDED
    [skipped] = SynthesisRun.objects.get(pk=response.json()["run_id"]).sections_skipped_locked
    _assert_names_the_lock(skipped, cast.users["editor"], lock)
    assert _markdown(cast.deal) == risks


# --- reset ------------------------------------------------------------------------------------------------
def test_a_reset_that_would_change_a_section_locked_by_someone_else_is_423_before_cancelling_anything(cast, written):
    _collab_off(cast)
    lock = _take_lock(cast, "editor")
    queued = cast.client("editor").post(canvas_url(cast.deal, "generate"), {}, format="json")
    assert queued.status_code == 202
    before, risks = _memo_state(cast.deal), _markdown(cast.deal)
    response = cast.client("owner").post(canvas_url(cast.deal, "reset"))
    _assert_locked_423(response, cast.users["editor"], lock)
    run = SynthesisRun.objects.get(pk=queued.json()["run_id"])
    assert run.status == RunStatus.QUEUED and run.cancel_requested_at is None
    assert not telemetry.cancel_requested(cast.deal.pk, run.pk)
    # no version was added (no "before reset" restore point), nothing blanked
    assert _memo_state(cast.deal) == before and _markdown(cast.deal) == risks
    assert len(cast.client("viewer").get(canvas_url(cast.deal, "versions")).json()["results"]) == 1


def test_a_reset_that_leaves_the_locked_section_as_it_is_goes_through(cast):
    """A lock on a section that is blank already does not hold the reset back."""
    assert save(cast.client("editor"), cast.deal, "## Financing\n\nA loan.").status_code == 200
    _collab_off(cast)
    _take_lock(cast, "editor")  # Risks is blank and was never written
    response = cast.client("owner").post(canvas_url(cast.deal, "reset"))
    assert response.status_code == 200, response.content
    memo = read_memo(cast.deal.pk)
    assert memo.is_blank and memo.sections["financing"].markdown == ""


# --- collaboration on ---------------------------------------------------------------------------------------
def _stale_lock(cast, holder: str, key: str = LOCKED) -> None:
    """A lock record as collaboration-off mode wrote it (switching collaboration on clears them; one left
    behind, or written meanwhile, must not matter)."""
    user = cast.users[holder]
    lock = SectionLock(key, str(user.pk), user.display_name, "t", "2030-01-01T00:00:00+00:00")
    get_redis().set(keys.lock_key(cast.deal.pk, key), lock.encode(), ex=120)


def test_with_collaboration_on_no_persons_write_minds_a_lock(cast, written):
    assert Deal.objects.get(pk=cast.deal.pk).collab_enabled is True
    _stale_lock(cast, "owner")
    editor = cast.client("editor")
    proposed = cast.client("commenter").post(
        canvas_url(cast.deal, "suggestions"),
        {"section_key": LOCKED, "kind": "insert", "anchor_text": "", "content": "Insurance."},
        format="json",
    )
    saved = save(editor, cast.deal, _memo_with(risks="Rates may rise."))
    assert saved.status_code == 200 and _markdown(cast.deal) == "Rates may rise."
    put = editor.put(canvas_url(cast.deal, f"sections/{LOCKED}"), {"markdown": "Rates."}, format="json")
    assert put.status_code == 200 and _markdown(cast.deal) == "Rates."
    accepted = editor.post(canvas_url(cast.deal, f"suggestions/{proposed.json()['id']}/accept"), {}, format="json")
    assert accepted.status_code == 200 and _markdown(cast.deal) == "Rates.\n\nInsurance."
    restored = editor.post(canvas_url(cast.deal, "versions/1/restore"), {}, format="json")
    assert restored.status_code == 200 and _markdown(cast.deal) == RISKS_TEXT
    approved = editor.post(canvas_url(cast.deal, f"sections/{LOCKED}/approve"), {}, format="json")
    assert approved.status_code == 200
    _stale_lock(cast, "editor")
    reset = cast.client("owner").post(canvas_url(cast.deal, "reset"))
    assert reset.status_code == 200 and _markdown(cast.deal) == ""


def test_with_collaboration_on_a_run_writes_a_section_that_has_a_lock_record(cast, written):
    make_corpus(cast.deal)
    _stale_lock(cast, "owner")
    response = cast.client("editor").post(canvas_url(cast.deal, f"sections/{LOCKED}/regenerate"), {}, format="json")
    assert runs.run_execute(run_id=response.json()["run_id"]) == RunStatus.SUCCEEDED
    run = SynthesisRun.objects.get(pk=response.json()["run_id"])
    assert run.sections_delivered == [LOCKED] and run.sections_skipped_locked == []
    assert read_memo(cast.deal.pk).sections[LOCKED].source == "ai"


# --- the API says so ----------------------------------------------------------------------------------------
@pytest.fixture(scope="module")
def schema(django_db_blocker) -> dict:
    from drf_spectacular.generators import SchemaGenerator

    with django_db_blocker.unblock():
        return SchemaGenerator().get_schema(request=None, public=True)


@pytest.mark.parametrize(
    ("method", "path"),
    [
        ("post", "/api/canvas/{deal_id}/save"),
        ("put", "/api/canvas/{deal_id}/sections/{key}"),
        ("post", "/api/canvas/{deal_id}/versions/{n}/restore"),
        ("post", "/api/canvas/{deal_id}/suggestions/{suggestion_id}/accept"),
        ("post", "/api/canvas/{deal_id}/sections/{key}/approve"),
        ("post", "/api/canvas/{deal_id}/sections/{key}/conditions/{cid}/resolve"),
        ("post", "/api/canvas/{deal_id}/reset"),
    ],
)
def test_every_write_a_lock_can_refuse_documents_423(schema, method, path):
    operation = schema["paths"][path][method]
    assert "423" in operation["responses"], f"{method.upper()} {path} answers 423 but its schema does not say so"
