"""The runs API: generate, runs, run stream, cancel, trace, regenerate, debug, reset, prompts, discourse.

Role matrices and validation run in-process; the must-shows run on real infrastructure: a real Celery
worker (the test worker thread, or a `celery -A canvas_project worker` subprocess that gets killed),
and SSE over real HTTP against the ASGI app in a uvicorn child process.
"""

from __future__ import annotations

import json
import queue
import time
from datetime import timedelta

import httpx
import pytest
from django.conf import settings as django_settings
from django.db import connection
from django.urls import resolve
from django.utils import timezone

from canvas.memo.store import read_memo
from canvas.memo.types import DocumentState
from canvas.memo.writes import memo_write
from canvas.models import RunStatus, SynthesisRun
from canvas.runs import services as runs
from canvas.runs.synthesis import telemetry
from canvas_project import keys
from canvas_project.redis_client import get_redis
from canvas_project.store import deal_thread_ids
from deals.tokens import token_pair_for_user
from tests import factories
from tests.canvas.conftest import canvas_url
from tests.canvas.synthesis_corpus import make_corpus, page_texts
from tests.conftest import ROLES, expected_status
from tests.servers import ServiceProcess, WorkerProcess, database_url_of, service_env
from tests.sse_client import SseEvent, SseReader


def _approve_directly(deal) -> None:
    """The memo approved without the readiness gate (the transition's own checks are tested elsewhere)."""

    def approve(memo, now):
        memo.state = DocumentState.APPROVED

    memo_write(deal=deal, user=None, change=approve, event="state_changed")


REQUIRED = (
    "executive_summary",
    "property_overview",
    "market_analysis",
    "financial_analysis",
    "underwriting",
    "risks",
    "recommendation",
)
SLOW_DRAFTER = "tests.canvas.slow_drafter.SlowDrafter"


def _run(cast, status=RunStatus.QUEUED, **fields) -> SynthesisRun:
    fields.setdefault("requested_sections", ["risks"])
    return SynthesisRun.objects.create(deal=cast.deal, status=status, created_by=cast.users["editor"], **fields)


def _generate(client, deal, body=None, query=""):
    return client.post(canvas_url(deal, "generate") + query, body or {}, format="json")


# --- role matrices ------------------------------------------------------------------------------------------
@pytest.mark.django_db
@pytest.mark.parametrize("role", ROLES)
def test_role_matrix_generate(cast, role):
    response = _generate(cast.client(role), cast.deal)
    assert response.status_code == expected_status(role, minimum="editor", ok=202), response.content


@pytest.mark.django_db
@pytest.mark.parametrize("role", ROLES)
def test_role_matrix_regenerate(cast, role):
    response = cast.client(role).post(canvas_url(cast.deal, "sections/risks/regenerate"), {}, format="json")
    assert response.status_code == expected_status(role, minimum="editor", ok=202), response.content


@pytest.mark.django_db
@pytest.mark.parametrize("role", ROLES)
def test_role_matrix_runs_list(cast, role):
    _run(cast)
    response = cast.client(role).get(canvas_url(cast.deal, "runs"))
    assert response.status_code == expected_status(role, minimum="viewer", ok=200)


@pytest.mark.django_db
@pytest.mark.parametrize("role", ROLES)
def test_role_matrix_run_detail(cast, role):
    run = _run(cast)
    response = cast.client(role).get(canvas_url(cast.deal, f"runs/{run.pk}"))
    assert response.status_code == expected_status(role, minimum="viewer", ok=200)


@pytest.mark.django_db
@pytest.mark.parametrize("role", ROLES)
def test_role_matrix_cancel(cast, role):
    run = _run(cast)
    response = cast.client(role).post(canvas_url(cast.deal, f"runs/{run.pk}/cancel"))
    assert response.status_code == expected_status(role, minimum="editor", ok=200)


@pytest.mark.django_db
@pytest.mark.parametrize("role", ROLES)
def test_role_matrix_trace(cast, role):
    run = _run(cast, status=RunStatus.SUCCEEDED)
    response = cast.client(role).get(canvas_url(cast.deal, f"runs/{run.pk}/trace"))
    assert response.status_code == expected_status(role, minimum="viewer", ok=200)


@pytest.mark.django_db
@pytest.mark.parametrize("role", ROLES)
def test_role_matrix_debug(cast, role):
    response = cast.client(role).post(canvas_url(cast.deal, "debug"), {"section_key": "risks"}, format="json")
    assert response.status_code == expected_status(role, minimum="editor", ok=200)


@pytest.mark.django_db
@pytest.mark.parametrize("role", ROLES)
def test_role_matrix_reset(cast, role):
    response = cast.client(role).post(canvas_url(cast.deal, "reset"))
    assert response.status_code == expected_status(role, minimum="owner", ok=200)


@pytest.mark.django_db
@pytest.mark.parametrize("role", ROLES)
def test_role_matrix_prompts(cast, role):
    response = cast.client(role).get("/api/canvas/prompts")
    assert response.status_code == (401 if role == "anonymous" else 200)


# --- generate ------------------------------------------------------------------------------------------------
@pytest.mark.django_db
def test_generate_queues_a_run_and_enqueues_it_on_commit(cast, django_capture_on_commit_callbacks):
    with django_capture_on_commit_callbacks(execute=True) as callbacks:
        response = _generate(
            cast.client("editor"), cast.deal, {"sections": ["risks", "financing"], "instructions": "Stress rates."}
        )
    assert response.status_code == 202
    body = response.json()
    run = SynthesisRun.objects.get(pk=body["run_id"])
    assert body == {
        "run_id": str(run.pk),
        "status": "queued",
        "stream_url": f"/api/canvas/{cast.deal.pk}/runs/{run.pk}/stream",
    }
    assert (run.kind, run.requested_sections, run.instructions) == ("generate", ["risks", "financing"], "Stress rates.")
    assert run.created_by == cast.users["editor"] and run.status == RunStatus.QUEUED
    assert len(callbacks) == 1
    message = json.loads(get_redis().lindex(django_settings.CELERY_TASK_DEFAULT_QUEUE, 0))  # this process's queue
    assert message["headers"]["task"] == "canvas.run_synthesis" and str(run.pk) in message["headers"]["argsrepr"]
    assert message["headers"]["timelimit"] == [600 + 120, 600 + 60]  # the budget, so a hung run frees its worker
    canvas_events = [f[b"type"] for _, f in get_redis().xrange(keys.events_key(cast.deal.pk))]
    assert canvas_events == [b"run_queued"]


@pytest.mark.django_db
def test_generate_defaults_to_every_template_section(cast):
    run_id = _generate(cast.client("editor"), cast.deal).json()["run_id"]
    from canvas.memo.templates import ACQUISITION

    assert SynthesisRun.objects.get(pk=run_id).requested_sections == [s.key for s in ACQUISITION.sections]


@pytest.mark.django_db
def test_one_active_run_per_deal_409_names_it_or_enqueue(cast):
    client = cast.client("editor")
    first = _generate(client, cast.deal).json()["run_id"]
    conflict = _generate(client, cast.deal)
    assert conflict.status_code == 409
    assert conflict.json()["active_run_id"] == first and conflict.json()["active_run_status"] == "queued"
    assert first in conflict.json()["detail"]
    queued = _generate(client, cast.deal, query="?on_conflict=enqueue")
    assert queued.status_code == 202 and queued.json()["run_id"] != first
    regen = client.post(canvas_url(cast.deal, "sections/risks/regenerate"), {}, format="json")
    assert regen.status_code == 409 and regen.json()["active_run_id"] == first
    # another deal is not affected
    other = factories.make_deal(cast.org, owner=cast.users["owner"], name="Other")
    factories.grant(other, cast.users["editor"], "editor")
    assert _generate(client, other).status_code == 202


@pytest.mark.django_db
@pytest.mark.parametrize(
    ("body", "query", "loc"),
    [
        ({"sections": ["nope"]}, "", ["body", "sections", 0]),
        ({"sections": []}, "", ["body", "sections"]),
        ({"sections": "risks"}, "", ["body", "sections"]),
        ({"instructions": "x" * 2001}, "", ["body", "instructions"]),
        ({"instructions": 7}, "", ["body", "instructions"]),
        ({"surprise": True}, "", ["body", "surprise"]),
        ({}, "?on_conflict=maybe", ["query", "on_conflict"]),
    ],
)
def test_generate_validates_its_input(cast, body, query, loc):
    response = _generate(cast.client("editor"), cast.deal, body, query)
    assert response.status_code == 422
    assert response.json()["detail"][0]["loc"] == loc
    assert not SynthesisRun.objects.exists()


@pytest.mark.django_db
def test_generate_shares_the_generate_rate_limit(cast, settings):
    settings.GENERATE_RATE_PER_MINUTE = 1
    settings.GENERATE_RATE_BURST = 1
    client = cast.client("editor")
    assert client.post(canvas_url(cast.deal, "refresh")).status_code == 200  # the same bucket
    response = _generate(client, cast.deal)
    assert response.status_code == 429 and int(response["Retry-After"]) >= 1
    assert (
        cast.client("owner").post(canvas_url(cast.deal, "debug"), {"section_key": "risks"}, format="json").status_code
        == 200
    )  # per user


@pytest.mark.django_db
def test_generate_on_an_approved_memo_is_409(cast):
    _approve_directly(cast.deal)
    response = _generate(cast.client("editor"), cast.deal)
    assert response.status_code == 409 and "approved" in response.json()["detail"]


# --- regenerate ---------------------------------------------------------------------------------------------
@pytest.mark.django_db
def test_regenerate_queues_one_section_with_an_estimate(cast):
    SynthesisRun.objects.create(
        deal=cast.deal,
        status=RunStatus.SUCCEEDED,
        requested_sections=["risks"],
        trace_summary=[{"section_key": "risks", "status": "delivered", "elapsed": 8.0, "error": None}],
    )
    response = cast.client("editor").post(
        canvas_url(cast.deal, "sections/risks/regenerate"), {"instructions": "Shorter."}, format="json"
    )
    assert response.status_code == 202
    body = response.json()
    run = SynthesisRun.objects.get(pk=body["run_id"])
    assert (run.kind, run.requested_sections, run.instructions) == ("regenerate", ["risks"], "Shorter.")
    assert body["estimated_seconds"] == 9 and body["stream_url"].endswith(f"/runs/{run.pk}/stream")


@pytest.mark.django_db
def test_regenerate_an_unknown_section_is_404_and_long_instructions_422(cast):
    client = cast.client("editor")
    assert client.post(canvas_url(cast.deal, "sections/nope/regenerate"), {}, format="json").status_code == 404
    response = client.post(
        canvas_url(cast.deal, "sections/risks/regenerate"), {"instructions": "x" * 2001}, format="json"
    )
    assert response.status_code == 422 and response.json()["detail"][0]["loc"] == ["body", "instructions"]


# --- runs list and detail -----------------------------------------------------------------------------------
@pytest.mark.django_db
def test_runs_list_filters_paginates_and_orders(cast):
    now = timezone.now()
    made = []
    for n, status in enumerate([RunStatus.SUCCEEDED, RunStatus.FAILED, RunStatus.CANCELLED, RunStatus.SUCCEEDED]):
        run = _run(cast, status=status)
        SynthesisRun.objects.filter(pk=run.pk).update(
            created_at=now - timedelta(hours=4 - n), finished_at=now - timedelta(hours=4 - n) + timedelta(minutes=1)
        )
        made.append(str(run.pk))
    by_owner = SynthesisRun.objects.create(deal=cast.deal, status=RunStatus.SUCCEEDED, created_by=cast.users["owner"])
    other = factories.make_deal(cast.org, owner=cast.users["owner"], name="Other")
    SynthesisRun.objects.create(deal=other, status=RunStatus.SUCCEEDED)
    client = cast.client("viewer")

    def get(query=""):
        response = client.get(canvas_url(cast.deal, "runs") + query)
        assert response.status_code == 200, response.content
        return response.json()

    page = get()
    assert [r["id"] for r in page["results"]] == [str(by_owner.pk), *made[::-1]]
    assert {
        "id",
        "status",
        "kind",
        "sections_delivered",
        "usage",
        "error",
        "stream_url",
        "thread_id",
        "created_by_name",
        "elapsed_seconds",
    } <= set(page["results"][0])
    assert [r["id"] for r in get("?status=succeeded")["results"]] == [str(by_owner.pk), made[3], made[0]]
    assert {r["status"] for r in get("?status=failed,cancelled")["results"]} == {"failed", "cancelled"}
    editor_id = str(cast.users["editor"].pk)
    assert len(get(f"?created_by={editor_id}")["results"]) == 4 and get("?created_by=me")["results"] == []
    window = (now - timedelta(hours=3, minutes=30)).isoformat().replace("+00:00", "Z")
    assert [r["id"] for r in get(f"?created_after={window}&ordering=created_at")["results"]][:3] == made[1:]
    before = (now - timedelta(hours=2, minutes=30)).isoformat().replace("+00:00", "Z")
    assert [r["id"] for r in get(f"?created_before={before}")["results"]] == made[1::-1]
    first = get("?page_size=2&ordering=created_at")
    paged = client.get(first["next"]).json()
    assert [r["id"] for r in paged["results"]] == made[2:4]
    # unfinished runs sort as finished at the end of time, and the walk along `next` still sees every run
    walked, url = [], canvas_url(cast.deal, "runs") + "?page_size=2&ordering=finished_at"
    while url:
        body = client.get(url).json()
        walked.extend(r["id"] for r in body["results"])
        url = body["next"]
    assert walked == [*made, str(by_owner.pk)]


@pytest.mark.django_db
@pytest.mark.parametrize(
    ("query", "loc"),
    [
        ("?status=done", ["query", "status"]),
        ("?created_by=someone", ["query", "created_by"]),
        ("?created_after=yesterday", ["query", "created_after"]),
        ("?ordering=name", ["query", "ordering"]),
        ("?page_size=1000", ["query", "page_size"]),
    ],
)
def test_runs_list_validates_its_query(cast, query, loc):
    response = cast.client("viewer").get(canvas_url(cast.deal, "runs") + query)
    assert response.status_code == 422 and response.json()["detail"][0]["loc"] == loc


@pytest.mark.django_db
def test_runs_list_is_cheap(cast, django_assert_max_num_queries):
    for _ in range(5):
        _run(cast, status=RunStatus.SUCCEEDED)
    client = cast.client("viewer")
    with django_assert_max_num_queries(8):
        assert client.get(canvas_url(cast.deal, "runs")).status_code == 200


@pytest.mark.django_db
def test_a_run_of_another_deal_is_404_and_a_malformed_id_422(cast):
    other = factories.make_deal(cast.org, owner=cast.users["owner"], name="Other")
    foreign = SynthesisRun.objects.create(deal=other)
    client = cast.client("owner")
    for suffix in ("", "/cancel", "/trace"):
        method = client.post if suffix == "/cancel" else client.get
        assert method(canvas_url(cast.deal, f"runs/{foreign.pk}{suffix}")).status_code == 404
        response = method(canvas_url(cast.deal, f"runs/not-a-uuid{suffix}"))
        assert response.status_code == 422 and response.json()["detail"][0]["loc"] == ["path", "run_id"]


@pytest.mark.django_db
def test_listing_runs_fails_dead_ones(cast, settings):
    settings.SYNTHESIS_DEAD_RUN_SECONDS = 30
    settings.RUN_MAX_RESUMES = 0  # no resume after a crash (tests/faults/test_run_resume.py resumes)
    dead = _run(
        cast,
        status=RunStatus.RUNNING,
        started_at=timezone.now() - timedelta(minutes=3),
        heartbeat_at=timezone.now() - timedelta(minutes=1),
    )
    body = cast.client("viewer").get(canvas_url(cast.deal, "runs")).json()
    assert body["results"][0]["id"] == str(dead.pk) and body["results"][0]["status"] == "failed"
    assert "heartbeat" in body["results"][0]["error"]


# --- cancel ---------------------------------------------------------------------------------------------------
@pytest.mark.django_db
def test_cancelling_a_queued_run_is_immediate_and_idempotent(cast):
    run = _run(cast)
    client = cast.client("editor")
    first = client.post(canvas_url(cast.deal, f"runs/{run.pk}/cancel"))
    assert first.status_code == 200
    body = first.json()
    assert body["status"] == "cancelled" and body["error"] == "Cancelled before it started."
    assert body["cancel_requested_at"] and body["finished_at"] and body["sections_missing"] == ["risks"]
    again = client.post(canvas_url(cast.deal, f"runs/{run.pk}/cancel")).json()
    assert again == body
    names = [name for _, name, _ in telemetry.run_events(cast.deal.pk, run.pk)]
    assert names == ["workflow_finished", "done"]


@pytest.mark.django_db
def test_a_running_run_whose_worker_never_answers_is_cancelled_after_the_wait(cast, settings):
    settings.SYNTHESIS_CANCEL_WAIT_SECONDS = 0.3
    run = _run(cast, status=RunStatus.RUNNING, started_at=timezone.now(), heartbeat_at=timezone.now())
    body = cast.client("editor").post(canvas_url(cast.deal, f"runs/{run.pk}/cancel")).json()
    assert body["status"] == "cancelled" and "did not confirm" in body["error"]
    assert get_redis().exists(keys.run_key(cast.deal.pk, run.pk, "cancel"))


# --- debug ----------------------------------------------------------------------------------------------------
@pytest.mark.django_db
def test_debug_drafts_one_section_and_writes_nothing(cast):
    make_corpus(cast.deal)
    before = set(get_redis().keys("canvas:run:*"))
    response = cast.client("editor").post(
        canvas_url(cast.deal, "debug"), {"section_key": "financial_analysis"}, format="json"
    )
    assert response.status_code == 200, response.content
    body = response.json()
    assert body["drafter"] == "default" and body["error"] is None
    assert body["markdown"].startswith("Key figures: net operating income of $2,450,000")
    pages = page_texts(cast.deal)
    assert body["citations"] and all((c["document"], c["page"]) in pages for c in body["citations"])
    assert body["passages"][0]["filename"] == "Offering Memorandum.pdf" and body["passages"][0]["page"] == 6
    assert body["inputs"]["passages_searched"] == 10 and "noi" in body["inputs"]["metrics"]
    assert read_memo(cast.deal.pk) is None and not SynthesisRun.objects.exists()
    assert set(get_redis().keys("canvas:run:*")) == before


@pytest.mark.django_db
def test_debug_takes_given_passages_figures_and_query(cast):
    inputs = {
        "retrieval_query": "roof condition",
        "top_k": 1,
        "instructions": "capex",
        "passages": [
            {
                "filename": "Inspection.pdf",
                "page": 4,
                "text": "The roof condition is poor; capex of $400,000 is needed within a year.",
            },
            {"filename": "Other.pdf", "page": 1, "text": "Unrelated parking notes here."},
        ],
        "metrics": {},
    }
    body = (
        cast.client("editor")
        .post(canvas_url(cast.deal, "debug"), {"section_key": "risks", "inputs": inputs}, format="json")
        .json()
    )
    assert body["inputs"]["retrieval_query"] == "roof condition capex" and body["inputs"]["top_k"] == 1
    assert [(p["filename"], p["page"]) for p in body["passages"]] == [("Inspection.pdf", 4)]
    assert "[^8.1]: Inspection.pdf, p. 4" in body["markdown"]


@pytest.mark.django_db
def test_debug_reports_a_drafter_failure_and_validates(cast):
    client = cast.client("editor")
    body = client.post(canvas_url(cast.deal, "debug"), {"section_key": "risks"}, format="json").json()
    assert body["markdown"] == "" and "No passage" in body["error"]
    assert client.post(canvas_url(cast.deal, "debug"), {"section_key": "nope"}, format="json").status_code == 404
    response = client.post(
        canvas_url(cast.deal, "debug"), {"section_key": "risks", "inputs": {"top_k": 99}}, format="json"
    )
    assert response.status_code == 422 and response.json()["detail"][0]["loc"] == ["body", "inputs", "top_k"]


# --- prompts ----------------------------------------------------------------------------------------------------
@pytest.mark.django_db
def test_prompts_are_the_templates_the_drafters_use(cast, settings):
    from canvas.runs.synthesis.prompts import SECTION_SYSTEM

    body = cast.client("viewer").get("/api/canvas/prompts").json()
    assert body["drafter"] == "default" and body["model"] is None
    by_key = {p["key"]: p for p in body["prompts"]}
    assert by_key["section_system"]["template"] == SECTION_SYSTEM
    assert {"section_user", "citation_guidelines", "figure_guidelines"} <= set(by_key)
    settings.CANVAS_LLM_MODEL = "openai:gpt-4o-mini"
    assert cast.client("viewer").get("/api/canvas/prompts").json()["model"] == "openai:gpt-4o-mini"


@pytest.mark.django_db
def test_the_prompt_catalogue_is_routed_before_the_deal_canvas(cast):
    """The literal /api/canvas/prompts must not be taken by /api/canvas/{deal_id} (deal_id="prompts")."""
    assert resolve("/api/canvas/prompts").url_name == "canvas-prompts-list"
    response = cast.client("viewer").get("/api/canvas/prompts")
    assert response.status_code == 200 and response.json()["drafter"] == "default"
    assert len(response.json()["prompts"]) >= 5


# --- trace and reset (a real run, executed in-process) -------------------------------------------------------
@pytest.mark.django_db(transaction=True)
def test_trace_shows_each_node_then_only_the_summary_when_expired(cast):
    make_corpus(cast.deal)
    run_id = _generate(cast.client("editor"), cast.deal, {"sections": ["risks", "financing"]}).json()["run_id"]
    runs.run_execute(run_id=run_id)
    body = cast.client("viewer").get(canvas_url(cast.deal, f"runs/{run_id}/trace")).json()
    assert body["expired"] is False and body["status"] == "succeeded"
    assert sorted(n["section_key"] for n in body["nodes"]) == ["financing", "risks"]
    node = body["nodes"][0]
    assert node["inputs"]["passages"] and node["outputs"]["status"] == "delivered" and node["elapsed"] >= 0
    get_redis().delete(keys.run_key(cast.deal.pk, run_id, "trace"))
    body = cast.client("viewer").get(canvas_url(cast.deal, f"runs/{run_id}/trace")).json()
    assert body["expired"] is True and body["nodes"] == []
    assert sorted(s["section_key"] for s in body["summary"]) == ["financing", "risks"]


@pytest.mark.django_db(transaction=True)
def test_reset_clears_run_state_and_returns_a_restorable_blank_memo(cast):
    make_corpus(cast.deal)
    owner = cast.client("owner")
    run_id = _generate(owner, cast.deal).json()["run_id"]
    runs.run_execute(run_id=run_id)
    written = read_memo(cast.deal.pk)
    assert written.populated_keys() and deal_thread_ids(cast.deal.pk)
    assert owner.post(canvas_url(cast.deal, "brush"), {"brush": "all"}, format="json").status_code == 201
    queued = _generate(owner, cast.deal, query="?on_conflict=enqueue").json()["run_id"]
    redis = get_redis()
    assert redis.keys("canvas:run:*") and redis.keys("canvas:brush:*")

    response = owner.post(canvas_url(cast.deal, "reset"))
    assert response.status_code == 200, response.content
    body = response.json()
    assert body["success"] is True and body["cancelled_runs"] == [queued]
    # the cancelled run records itself (head.last_run), then the blank memo is written
    assert body["restorable_version"] == written.version and body["version"] == written.version + 2
    assert body["checkpoint_threads_deleted"] == 1 and body["redis_keys_deleted"] >= 3
    assert deal_thread_ids(cast.deal.pk) == []
    assert not redis.keys("canvas:run:*") and not redis.keys("canvas:brush:*")
    assert not redis.exists(keys.discourse_key(cast.deal.pk))
    session = owner.get(canvas_url(cast.deal)).json()
    assert session["is_blank"] is True and session["document_state"] == "draft"
    assert all(s["markdown"] == "" for s in session["sections"].values())
    assert session["incomplete_delivery_blocked"] is False
    assert SynthesisRun.objects.get(pk=queued).status == RunStatus.CANCELLED
    assert SynthesisRun.objects.filter(deal=cast.deal).count() == 2  # history stays

    restored = owner.post(canvas_url(cast.deal, f"versions/{body['restorable_version']}/restore"), {}, format="json")
    assert restored.status_code == 200
    assert read_memo(cast.deal.pk).sections["risks"].markdown == written.sections["risks"].markdown


@pytest.mark.django_db
def test_reset_of_an_approved_memo_is_409(cast):
    _approve_directly(cast.deal)
    response = cast.client("owner").post(canvas_url(cast.deal, "reset"))
    assert response.status_code == 409 and "reopen" in response.json()["detail"]


# --- real HTTP: streams ----------------------------------------------------------------------------------------
@pytest.fixture
def service(cast):
    server = ServiceProcess(
        {
            "DJANGO_SETTINGS_MODULE": "canvas_project.settings",
            "DATABASE_URL": database_url_of(connection.settings_dict),
            "REDIS_URL": django_settings.REDIS_URL,
        }
    ).start()
    yield server
    server.stop()


def _token(cast, role="viewer") -> str:
    return token_pair_for_user(user=cast.users[role])["access"]


def _read_until_done(reader: SseReader, timeout: float = 90) -> list[SseEvent]:
    got: list[SseEvent] = []
    deadline = time.monotonic() + timeout
    while not got or got[-1].event != "done":
        got.append(reader.events.get(timeout=max(0.1, deadline - time.monotonic())))
    return got


def _assert_memo_complete_with_real_citations(cast) -> None:
    doc = read_memo(cast.deal.pk)
    pages = page_texts(cast.deal)
    for key in REQUIRED:
        section = doc.sections[key]
        assert section.markdown.strip() and section.delivery == "delivered", key
        assert section.citations, key
        for citation in section.citations:
            assert (citation["document"], citation["page"]) in pages, (key, citation)


@pytest.mark.both_brokers
@pytest.mark.django_db(transaction=True)
def test_generate_on_the_worker_and_read_the_run_stream_to_the_end(cast, celery_worker, service):
    make_corpus(cast.deal)
    body = _generate(cast.client("editor"), cast.deal).json()
    reader = SseReader(service.url + body["stream_url"], _token(cast)).start()
    got = _read_until_done(reader)
    reader._thread.join(10)
    assert not reader._thread.is_alive()  # the server ends the response after `done`
    assert got[0].event == "workflow_started" and [e.event for e in got[-2:]] == ["workflow_finished", "done"]
    assert got[-1].data["status"] == "succeeded"
    ids = [e.id for e in got]
    assert len(set(ids)) == len(ids) and ids == [i for i, _, _ in telemetry.run_events(cast.deal.pk, body["run_id"])]
    finished = {e.data["component_id"] for e in got if e.event == "node_finished"}
    assert finished == set(SynthesisRun.objects.get(pk=body["run_id"]).requested_sections)
    _assert_memo_complete_with_real_citations(cast)
    run = cast.client("viewer").get(canvas_url(cast.deal, f"runs/{body['run_id']}")).json()
    assert run["status"] == "succeeded" and run["sections_missing"] == [] and run["elapsed_seconds"] > 0
    session = cast.client("viewer").get(canvas_url(cast.deal)).json()
    assert session["incomplete_delivery_blocked"] is False and session["is_blank"] is False
    assert session["run_in_progress"] is False
    # a client that saw `done` and reconnects is told to stop (204), not held open
    again = httpx.get(
        service.url + body["stream_url"],
        timeout=10,
        headers={"Authorization": f"Bearer {_token(cast)}", "Last-Event-ID": got[-1].id},
    )
    assert again.status_code == 204


@pytest.mark.django_db(transaction=True)
def test_generate_with_accept_event_stream_streams_the_same_run(cast, celery_worker, service):
    make_corpus(cast.deal)
    headers = {"Authorization": f"Bearer {_token(cast, 'editor')}", "Accept": "text/event-stream"}
    events: list[tuple[str, str, dict]] = []
    with httpx.stream(
        "POST",
        f"{service.url}/api/canvas/{cast.deal.pk}/generate",
        json={"sections": ["risks"]},
        headers=headers,
        timeout=httpx.Timeout(30, read=60),
    ) as response:
        assert response.status_code == 200
        assert response.headers["content-type"].startswith("text/event-stream")
        fields: dict[str, str] = {}
        for line in response.iter_lines():
            if line == "":
                if "event" in fields:
                    events.append((fields["id"], fields["event"], json.loads(fields["data"])))
                fields = {}
            elif not line.startswith(":"):
                name, _, value = line.partition(":")
                fields[name] = value.lstrip(" ")
    names = [name for _, name, _ in events]
    assert names[0] == "workflow_started" and names[-1] == "done" and "message" in names
    run = SynthesisRun.objects.get(deal=cast.deal)
    assert [i for i, _, _ in events] == [i for i, _, _ in telemetry.run_events(cast.deal.pk, run.pk)]
    # errors stay JSON
    conflict_headers = {**headers}
    _run(cast)
    conflict = httpx.post(
        f"{service.url}/api/canvas/{cast.deal.pk}/generate", json={}, headers=conflict_headers, timeout=10
    )
    assert conflict.status_code == 409 and conflict.json()["active_run_id"]


@pytest.mark.django_db(transaction=True)
def test_cancel_mid_run_keeps_delivered_sections_and_blocks_until_filled(cast, celery_worker, service, settings):
    make_corpus(cast.deal)
    settings.SYNTHESIS_DRAFTER = SLOW_DRAFTER
    settings.SYNTHESIS_MAX_CONCURRENCY = 1
    editor = cast.client("editor")
    body = _generate(editor, cast.deal).json()
    reader = SseReader(service.url + body["stream_url"], _token(cast)).start()
    seen = []
    while not any(e.event == "message_end" and e.data["status"] == "delivered" for e in seen):
        seen.append(reader.events.get(timeout=60))
    response = editor.post(canvas_url(cast.deal, f"runs/{body['run_id']}/cancel"))
    assert response.status_code == 200
    cancelled = response.json()
    assert cancelled["status"] == "cancelled" and cancelled["finished_at"]
    seen += _read_until_done(reader, timeout=30)
    assert seen[-1].data["status"] == "cancelled"
    delivered = cancelled["sections_delivered"]
    assert 1 <= len(delivered) < 9 and cancelled["sections_missing"]
    doc = read_memo(cast.deal.pk)
    assert all(doc.sections[k].markdown.strip() and doc.sections[k].source == "ai" for k in delivered)
    session = editor.get(canvas_url(cast.deal)).json()
    assert session["incomplete_delivery_blocked"] is True and session["can_export"] is False
    missing_required = doc.last_run["missing_required"]
    assert missing_required and set(missing_required) <= set(REQUIRED)
    for key in missing_required[:-1]:
        editor.put(canvas_url(cast.deal, f"sections/{key}"), {"markdown": "Written by hand."}, format="json")
        assert editor.get(canvas_url(cast.deal)).json()["incomplete_delivery_blocked"] is True
    editor.put(canvas_url(cast.deal, f"sections/{missing_required[-1]}"), {"markdown": "Done."}, format="json")
    assert editor.get(canvas_url(cast.deal)).json()["incomplete_delivery_blocked"] is False
    # cancel again: the same final state
    assert (
        editor.post(canvas_url(cast.deal, f"runs/{body['run_id']}/cancel")).json()["finished_at"]
        == cancelled["finished_at"]
    )


@pytest.mark.django_db(transaction=True)
def test_disconnect_and_reattach_with_last_event_id_sees_every_event_once(cast, celery_worker, service, settings):
    make_corpus(cast.deal)
    settings.SYNTHESIS_DRAFTER = SLOW_DRAFTER
    settings.SYNTHESIS_MAX_CONCURRENCY = 2
    body = _generate(cast.client("editor"), cast.deal).json()
    url = service.url + body["stream_url"]
    first = SseReader(url, _token(cast)).start()
    seen = [first.events.get(timeout=60) for _ in range(6)]
    first.close()
    first._thread.join(10)
    while True:  # whatever the reader parsed before it noticed the close was delivered to it too
        try:
            seen.append(first.events.get_nowait())
        except queue.Empty:
            break
    time.sleep(1.0)  # the run goes on while nobody listens
    second = SseReader(url, _token(cast), last_event_id=seen[-1].id).start()
    seen += _read_until_done(second)
    ids = [e.id for e in seen]
    stored = [i for i, _, _ in telemetry.run_events(cast.deal.pk, body["run_id"])]
    assert ids == stored and len(set(ids)) == len(ids)
    assert seen[-1].event == "done" and seen[-1].data["status"] == "succeeded"
    # the query parameter resumes too, from the middle
    middle = stored[len(stored) // 2]
    third = SseReader(f"{url}?last_event_id={middle}", _token(cast)).start()
    assert [e.id for e in _read_until_done(third)] == stored[len(stored) // 2 + 1 :]


@pytest.mark.both_brokers
@pytest.mark.django_db(transaction=True)
def test_a_worker_killed_mid_run_leaves_a_failed_run_within_the_dead_run_window(cast, settings, celery_broker):
    make_corpus(cast.deal)
    window = 4
    settings.SYNTHESIS_DEAD_RUN_SECONDS = window
    settings.RUN_MAX_RESUMES = 0  # failed at once; tests/faults/test_run_resume.py shows the resume
    env = service_env(SYNTHESIS_DRAFTER=SLOW_DRAFTER, SYNTHESIS_MAX_CONCURRENCY="1", SYNTHESIS_HEARTBEAT_SECONDS="1")
    with WorkerProcess({**env, "SLOW_DRAFTER_DELAY": "0.5"}) as worker:
        run_id = _generate(cast.client("editor"), cast.deal).json()["run_id"]
        deadline = time.monotonic() + 90
        while time.monotonic() < deadline:
            run = SynthesisRun.objects.get(pk=run_id)
            if worker.alive() and run.status == RunStatus.RUNNING and run.sections_delivered:
                break
            time.sleep(0.1)
        else:
            raise AssertionError("the worker never got the run going")
        worker.kill()
        killed_at = time.monotonic()
        delivered_before = list(SynthesisRun.objects.get(pk=run_id).sections_delivered)

    viewer = cast.client("viewer")
    while True:
        body = viewer.get(canvas_url(cast.deal, f"runs/{run_id}")).json()
        if body["status"] != "running":
            break
        assert time.monotonic() - killed_at < window + 5, "the dead run was not failed within the window"
        time.sleep(0.25)
    failed_after = time.monotonic() - killed_at
    assert body["status"] == "failed" and "heartbeat" in body["error"]
    assert failed_after <= window + 2.5
    assert set(delivered_before) <= set(body["sections_delivered"]) and body["sections_missing"]
    names = [name for _, name, _ in telemetry.run_events(cast.deal.pk, run_id)]
    assert names[-3:] == ["error", "workflow_finished", "done"]
    doc = read_memo(cast.deal.pk)
    assert doc.last_run["run_id"] == run_id and doc.last_run["status"] == "failed"
    assert all(doc.sections[k].markdown.strip() for k in delivered_before)
    # the deal is free again: a new run is accepted
    assert _generate(cast.client("editor"), cast.deal).status_code == 202


@pytest.mark.django_db(transaction=True)
@pytest.mark.parametrize(
    ("who", "status"), [("anonymous", 401), ("outsider", 404), ("other_org", 404), ("superadmin", 404), ("viewer", 200)]
)
def test_role_matrix_streams(service, cast, who, status):
    run = _run(cast)
    headers = {} if who == "anonymous" else {"Authorization": f"Bearer {_token(cast, who)}"}
    for path in (f"runs/{run.pk}/stream", "discourse/stream"):
        with httpx.stream(
            "GET", f"{service.url}/api/canvas/{cast.deal.pk}/{path}", headers=headers, timeout=10
        ) as response:
            assert response.status_code == status, path
            if status == 200:
                assert response.headers["content-type"].startswith("text/event-stream")
            else:
                response.read()
                assert "detail" in response.json()


@pytest.mark.django_db(transaction=True)
def test_run_stream_path_errors(service, cast):
    headers = {"Authorization": f"Bearer {_token(cast)}"}
    base = f"{service.url}/api/canvas/{cast.deal.pk}/runs"
    malformed = httpx.get(f"{base}/not-a-uuid/stream", headers=headers, timeout=10)
    assert malformed.status_code == 422 and malformed.json()["detail"][0]["loc"] == ["path", "run_id"]
    unknown = httpx.get(f"{base}/{SynthesisRun().pk}/stream", headers=headers, timeout=10)
    assert unknown.status_code == 404
    run = _run(cast)
    bad_id = httpx.get(f"{base}/{run.pk}/stream", headers={**headers, "Last-Event-ID": "later"}, timeout=10)
    assert bad_id.status_code == 422 and bad_id.json()["detail"][0]["loc"] == ["header", "Last-Event-ID"]


@pytest.mark.django_db(transaction=True)
def test_the_discourse_ring_is_replayed_then_live_and_resumable(service, cast):
    ids = [telemetry.discourse_emit(cast.deal.pk, "note", {"agent": "test", "text": f"n{n}"}) for n in range(105)]
    assert get_redis().xlen(keys.discourse_key(cast.deal.pk)) == 100  # a ring of 100
    url = f"{service.url}/api/canvas/{cast.deal.pk}/discourse/stream"
    reader = SseReader(url, _token(cast)).start()
    replayed = reader.take(100)
    assert [e.id for e in replayed] == ids[5:]
    live = telemetry.discourse_emit(cast.deal.pk, "note", {"agent": "test", "text": "live"})
    assert reader.take(1)[0].id == live
    reader.close()
    resumed = SseReader(url, _token(cast), last_event_id=ids[-2]).start()
    assert [e.id for e in resumed.take(2)] == [ids[-1], live]
    resumed.close()
    gone = SseReader(url, _token(cast), last_event_id=ids[0]).start()  # trimmed: the whole ring again
    assert gone.take(1)[0].id == ids[6]
    gone.close()


@pytest.mark.django_db
def test_an_inverted_window_is_an_empty_page(cast):
    """created_before at or before created_after selects nothing (the schema cannot compare two parameters, so
    it is no 422)."""
    editor = cast.client("editor")
    assert editor.post(canvas_url(cast.deal, "generate"), {}, format="json").status_code == 202
    everything = cast.client("viewer").get(canvas_url(cast.deal, "runs")).json()
    assert len(everything["results"]) == 1
    query = "?created_after=2026-01-02T00:00:00Z&created_before=2026-01-01T00:00:00Z"
    response = cast.client("viewer").get(canvas_url(cast.deal, "runs") + query)
    assert response.status_code == 200
    assert response.json() == {"results": [], "next": None, "previous": None}
