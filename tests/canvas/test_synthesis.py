"""The synthesis workflow below the API: retrieval, drafters, the graph on the Store and PostgresSaver,
run finishing, cancel, time budget, the dead-run sweeper and the write guard."""

from __future__ import annotations

import threading
import time
import uuid
from datetime import timedelta

import pytest
from django.db import connection
from django.utils import timezone
from langchain_core.language_models.fake_chat_models import GenericFakeChatModel
from langchain_core.messages import AIMessage

from canvas.memo import services
from canvas.memo.store import read_memo
from canvas.models import RunStatus, SynthesisRun
from canvas.runs import services as runs
from canvas.runs.synthesis import drafters, telemetry
from canvas.runs.synthesis.drafters import DefaultDrafter, DraftFailed, DraftRequest, LlmDrafter
from canvas.runs.synthesis.graph import SectionPlan, SectionWriteRefused
from canvas.runs.synthesis.retrieval import Passage, PassageIndex, load_metrics, load_passages
from canvas_project import keys
from canvas_project.redis_client import get_redis
from canvas_project.store import deal_thread_ids
from tests.canvas.synthesis_corpus import DOCUMENTS, make_corpus, make_document, make_offering_memorandum, page_texts


def _request(
    deal,
    hits,
    metrics,
    key="financial_analysis",
    title="Financial Analysis",
    order=5.0,
    query="net operating income cap rate expenses revenue",
    instructions="",
):
    return DraftRequest(
        deal_name=deal.name,
        template_key="acquisition",
        section_key=key,
        title=title,
        order=order,
        required=True,
        retrieval_query=query,
        instructions=instructions,
        hits=hits,
        metrics=metrics,
    )


def _assert_cites_real_pages(deal, markdown: str) -> list[dict]:
    pages = page_texts(deal)
    citations = drafters.memo_md.parse_citations(markdown)
    assert citations, markdown
    # the text without its footnote definitions: every definition is referenced there, and every
    # reference there has a definition
    body = drafters.memo_md.FOOTNOTE_DEF_RE.sub("", markdown)
    referenced = {match.group("id") for match in drafters.memo_md.FOOTNOTE_REF_RE.finditer(body)}
    for citation in citations:
        assert (citation["document"], citation["page"]) in pages, citation
        assert citation["id"] in referenced, (citation, markdown)
    assert referenced == {c["id"] for c in citations}, markdown
    return citations


def _create(cast, sections=None, instructions="", user="editor"):
    return runs.run_create(
        deal=cast.deal,
        user=cast.users[user],
        kind="generate",
        sections=sections,
        instructions=instructions,
        enqueue_on_conflict=False,
    )


# --- retrieval and the offline drafter ------------------------------------------------------------------
@pytest.mark.django_db
def test_it_ranks_passages_with_bm25(cast):
    make_corpus(cast.deal)
    index = PassageIndex(load_passages(deal_id=cast.deal.pk))
    assert len(index) == sum(len(pages) for _, _, pages in DOCUMENTS) and index.documents == 3
    hits = index.search("net operating income expenses revenue", 3)
    assert (hits[0].passage.filename, hits[0].passage.page) == ("Offering Memorandum.pdf", 6)
    assert [h.score for h in hits] == sorted((h.score for h in hits), reverse=True)
    assert index.search("zzz unknown words", 3) == []
    assert PassageIndex([]).search("anything", 3) == []


@pytest.mark.django_db
def test_passages_come_only_from_ready_documents(cast):
    make_corpus(cast.deal)
    make_document(cast.deal, "Draft.pdf", "pdf", ["Processing text about rents."], state="processing")
    assert {p.filename for p in load_passages(deal_id=cast.deal.pk)} == {name for name, _, _ in DOCUMENTS}


@pytest.mark.django_db
def test_passages_are_the_deals_passage_type(cast):
    # one definition, in deals (the lower layer); retrieval and metric extraction share it
    from deals.documents import intel
    from deals.documents.ingestion.intel import extract_metrics

    assert Passage is intel.Passage
    make_corpus(cast.deal)
    passages = load_passages(deal_id=cast.deal.pk)
    assert passages and all(type(p) is intel.Passage for p in passages)
    first = passages[0]
    assert first.source == {"document_id": first.document_id, "filename": first.filename, "page": first.page}
    noi = extract_metrics([Passage("d", "OM.pdf", 6, "NOI is $2,450,000.")])["noi"]
    assert noi["source"] == {"document_id": "d", "filename": "OM.pdf", "page": 6}


@pytest.mark.django_db
def test_the_default_drafter_is_deterministic_and_cites_real_pages(cast):
    make_corpus(cast.deal)
    index = PassageIndex(load_passages(deal_id=cast.deal.pk))
    metrics = load_metrics(deal=cast.deal)
    request = _request(cast.deal, index.search("net operating income cap rate expenses revenue", 6), metrics)
    deltas: list[str] = []
    first = DefaultDrafter().draft(request, emit=deltas.append, should_stop=lambda: None)
    second = DefaultDrafter().draft(request, emit=lambda _d: None, should_stop=lambda: None)
    assert first.markdown == second.markdown == "".join(deltas) and len(deltas) >= 3
    assert first.markdown.startswith("Key figures: net operating income of $2,450,000[^5.1]")
    assert "[^5.1]: Offering Memorandum.pdf, p. 6" in first.markdown
    citations = _assert_cites_real_pages(cast.deal, first.markdown)
    assert [c["id"] for c in citations] == [f"5.{n}" for n in range(1, len(citations) + 1)]
    # every evidence sentence is quoted from the page its footnote names
    pages = page_texts(cast.deal)
    by_id = {c["id"]: (c["document"], c["page"]) for c in citations}
    for line in first.markdown.splitlines():
        if line.startswith("- "):
            sentence, note = line[2:].rsplit("[^", 1)
            assert sentence.rstrip(".") in pages[by_id[note.rstrip("]")]]
    assert first.usage["citations"] == len(citations) and first.usage["words"] > 30


def test_the_default_drafter_fails_without_sources():
    passages = [Passage("d", "a.pdf", 1, "Nothing relevant here at all.")]
    request = DraftRequest(
        deal_name="D",
        template_key="acquisition",
        section_key="risks",
        title="Risks",
        order=8,
        required=True,
        retrieval_query="risk mitigant",
        instructions="",
        hits=PassageIndex(passages).search("risk mitigant", 5),
        metrics={},
    )
    with pytest.raises(DraftFailed, match="No passage"):
        DefaultDrafter().draft(request, emit=lambda _d: None, should_stop=lambda: None)


def test_the_default_drafter_stops_between_deltas():
    passages = [Passage("d", "a.pdf", 1, "The key risk is rising insurance costs and the mitigant is a fixed policy.")]
    request = DraftRequest(
        deal_name="D",
        template_key="acquisition",
        section_key="risks",
        title="Risks",
        order=8,
        required=True,
        retrieval_query="risk mitigant insurance",
        instructions="",
        hits=PassageIndex(passages).search("risk mitigant insurance", 5),
        metrics={},
    )
    with pytest.raises(drafters.DraftStopped) as stopped:
        DefaultDrafter().draft(request, emit=lambda _d: None, should_stop=lambda: "cancelled")
    assert stopped.value.reason == "cancelled"


# --- the LLM drafter, with LangChain's fake chat models ------------------------------------------------
def _llm_request():
    passages = [Passage("d1", "OM.pdf", 3, "NOI is $2,450,000."), Passage("d2", "Model.xlsx", 1, "NOI grows 3%.")]
    hits = PassageIndex(passages).search("NOI", 5)
    noi = {
        "value": 2450000,
        "unit": "USD",
        "text": "NOI",
        "source": {"document_id": "d1", "filename": "OM.pdf", "page": 3},
    }
    return DraftRequest(
        deal_name="Riverside",
        template_key="acquisition",
        section_key="financial_analysis",
        title="Financial Analysis",
        order=5,
        required=True,
        retrieval_query="NOI",
        instructions="Be brief.",
        hits=hits,
        metrics={"noi": noi},
    )


def test_the_llm_drafter_turns_passage_markers_into_footnotes_to_real_pages():
    request = _llm_request()
    model = GenericFakeChatModel(
        messages=iter(
            [
                AIMessage(
                    content="NOI is $2,450,000 [S1] and grows 3% a year [S2]. A claim with a bad marker [S9].\n\n"
                    "[^x]: made-up source, p. 99"
                )
            ]
        )
    )
    deltas: list[str] = []
    draft = LlmDrafter(model=model).draft(request, emit=deltas.append, should_stop=lambda: None)
    order = {hit.passage.filename: n for n, hit in enumerate(request.hits, start=1)}
    assert order  # BM25 ranks both; the markers follow that order
    assert "[S" not in draft.markdown and "made-up source" not in draft.markdown
    assert {(c["document"], c["page"]) for c in draft.citations} <= {("OM.pdf", 3), ("Model.xlsx", 1)}
    assert len(draft.citations) == 2 and all(c["id"].startswith("5.") for c in draft.citations)
    assert "[S" not in "".join(deltas) and len(deltas) >= 2
    assert draft.usage["citations"] == 2


def test_the_llm_drafter_sees_the_rules_the_figures_and_the_instructions():
    seen = []

    class Recorder(GenericFakeChatModel):
        def _stream(self, messages, *args, **kwargs):
            seen.append(messages)
            return super()._stream(messages, *args, **kwargs)

    LlmDrafter(model=Recorder(messages=iter([AIMessage(content="Fine [S1].")]))).draft(
        _llm_request(), emit=lambda _d: None, should_stop=lambda: None
    )
    system, user = seen[0][0].content, seen[0][1].content
    assert "[S1]" in system and "Never invent" in system
    assert "net operating income: $2,450,000 (OM.pdf, p. 3)" in user
    assert "[S1] " in user and "Be brief." in user


def test_the_llm_drafter_fails_a_section_when_the_model_fails_or_says_nothing():
    class Broken(GenericFakeChatModel):
        def _stream(self, *args, **kwargs):
            raise RuntimeError("provider down")

    with pytest.raises(DraftFailed, match="provider down"):
        LlmDrafter(model=Broken(messages=iter([]))).draft(
            _llm_request(), emit=lambda _d: None, should_stop=lambda: None
        )
    with pytest.raises(DraftFailed, match="no text"):
        LlmDrafter(model=GenericFakeChatModel(messages=iter([AIMessage(content="   ")]))).draft(
            _llm_request(), emit=lambda _d: None, should_stop=lambda: None
        )


# --- runs on the Store and PostgresSaver -----------------------------------------------------------------
@pytest.mark.django_db(transaction=True)
def test_a_run_drafts_every_section_into_the_store_and_reports_it(cast):
    make_corpus(cast.deal)
    run = _create(cast)
    assert run.status == RunStatus.QUEUED and run.requested_sections[0] == "executive_summary"
    assert runs.run_execute(run_id=run.pk) == RunStatus.SUCCEEDED
    run.refresh_from_db()
    assert sorted(run.sections_delivered) == sorted(run.requested_sections)
    assert run.sections_failed == run.sections_missing == [] and run.error == ""
    assert run.started_at <= run.heartbeat_at <= run.finished_at and run.drafter == "default"
    assert run.usage["sections"] == 9 and run.usage["citations"] > 9 and run.usage["elapsed_seconds"] > 0
    assert {n["section_key"] for n in run.trace_summary} == set(run.requested_sections)

    doc = read_memo(cast.deal.pk)
    for key in run.requested_sections:
        section = doc.sections[key]
        assert (section.source, section.delivery, section.state) == ("ai", "delivered", "draft")
        assert section.citations == drafters.memo_md.parse_citations(section.markdown)
        _assert_cites_real_pages(cast.deal, section.markdown)
    assert doc.last_run["run_id"] == str(run.pk) and doc.last_run["missing_required"] == []
    assert doc.is_blank is False and doc.version == 10  # nine sections, then last_run
    assert doc.versions == [10]  # one restore point for the whole run

    # the run's events: the peer's names, each section framed by node_started ... node_finished
    stream = telemetry.run_events(cast.deal.pk, run.pk)
    names = [name for _, name, _ in stream]
    assert names[0] == "workflow_started" and names[-2:] == ["workflow_finished", "done"]
    assert set(names) == {
        "workflow_started",
        "node_started",
        "message",
        "message_end",
        "node_finished",
        "workflow_finished",
        "done",
    }
    for key in run.requested_sections:
        mine = [name for _, name, data in stream if data.get("component_id") == key]
        assert mine[0] == "node_started" and mine[-2:] == ["message_end", "node_finished"]
        streamed = "".join(d["content"] for _, n, d in stream if n == "message" and d["component_id"] == key)
        assert streamed == doc.sections[key].markdown
    finished = stream[-2][2]
    assert finished["status"] == "succeeded" and sorted(finished["outputs"]["delivered"]) == sorted(
        run.requested_sections
    )
    # trace in Redis (10 minutes), checkpoints in PostgreSQL, agent discourse and canvas events
    redis = get_redis()
    trace = telemetry.trace_read(cast.deal.pk, run.pk)
    assert len(trace) == 9 and {"inputs", "outputs", "elapsed"} <= set(trace[0])
    assert 0 < redis.ttl(keys.run_key(cast.deal.pk, run.pk, "trace")) <= 600
    assert run.thread_id in deal_thread_ids(cast.deal.pk)
    index = {m.decode() for m in redis.smembers(keys.index_key(cast.deal.pk))}
    assert {keys.run_key(cast.deal.pk, run.pk, p) for p in ("events", "trace")} <= index
    kinds = [f[b"type"].decode() for _, f in redis.xrange(keys.discourse_key(cast.deal.pk))]
    assert kinds[0] == "run" and kinds[-1] == "run" and "retrieval" in kinds and "draft" in kinds
    canvas_events = [f[b"type"].decode() for _, f in redis.xrange(keys.events_key(cast.deal.pk))]
    assert canvas_events[0] == "run_queued" and "run_started" in canvas_events
    assert canvas_events.count("run_section_delivered") == 9 and canvas_events[-1] == "run_finished"


@pytest.mark.django_db(transaction=True)
def test_sections_without_sources_are_asked_for_then_missing_and_block_delivery_until_filled(cast):
    from canvas.runs.inputs import run_resume

    make_offering_memorandum(cast.deal)  # nothing about risks
    run = _create(cast)
    # a required section without sources pauses the run for input (tests/canvas/test_run_input.py)
    assert runs.run_execute(run_id=run.pk) == RunStatus.WAITING_INPUT
    run.refresh_from_db()
    assert [s["key"] for s in run.input_request["sections"]] == ["risks"]
    run_resume(deal=cast.deal, run_id=run.pk, user=cast.users["editor"], notes={})
    assert runs.run_execute(run_id=run.pk) == RunStatus.SUCCEEDED
    run.refresh_from_db()
    assert run.sections_missing == ["risks"] and "delivered as missing" in run.error
    doc = read_memo(cast.deal.pk)
    assert doc.sections["risks"].delivery == "missing" and doc.sections["risks"].markdown == ""
    assert "risks" in doc.last_run["missing_required"]
    session = services.canvas_session_get(deal=cast.deal, role="owner", user=cast.users["owner"])
    assert session["incomplete_delivery_blocked"] is True and session["can_export"] is False
    for key in doc.last_run["missing_required"]:
        services.section_update(
            deal=cast.deal,
            user=cast.users["editor"],
            key=key,
            markdown="Written by hand.",
            title=None,
            base_version=None,
        )
    session = services.canvas_session_get(deal=cast.deal, role="owner", user=cast.users["owner"])
    assert session["incomplete_delivery_blocked"] is False


@pytest.mark.django_db(transaction=True)
def test_a_run_with_no_deliverable_section_fails(cast, settings, monkeypatch):
    make_corpus(cast.deal)  # material there is; the model fails
    settings.CANVAS_LLM_MODEL = "fake:test-model"

    def broken_model(spec):
        raise RuntimeError("provider down")

    monkeypatch.setattr(drafters, "build_chat_model", broken_model)
    run = _create(cast, sections=["risks"])
    assert runs.run_execute(run_id=run.pk) == RunStatus.FAILED
    run.refresh_from_db()
    assert run.sections_failed == ["risks"] and "No section could be drafted" in run.error
    assert run.input_request is None
    names = [name for _, name, _ in telemetry.run_events(cast.deal.pk, run.pk)]
    assert names[-3:] == ["error", "workflow_finished", "done"]


@pytest.mark.django_db(transaction=True)
def test_the_time_budget_fails_what_it_cannot_finish(cast, settings):
    make_corpus(cast.deal)
    settings.SYNTHESIS_TIME_BUDGET_SECONDS = 0
    run = _create(cast, sections=["risks", "financing"])
    assert runs.run_execute(run_id=run.pk) == RunStatus.FAILED
    run.refresh_from_db()
    assert sorted(run.sections_failed) == ["financing", "risks"] and "time budget" in run.error


@pytest.mark.django_db(transaction=True)
def test_a_cancel_inside_a_node_stops_the_run_and_keeps_what_was_delivered(cast, settings):
    make_corpus(cast.deal)
    settings.SYNTHESIS_DRAFTER = "tests.canvas.slow_drafter.SlowDrafter"
    settings.SYNTHESIS_MAX_CONCURRENCY = 1
    run = _create(cast)
    outcome = {}
    worker = threading.Thread(target=lambda: outcome.setdefault("status", runs.run_execute(run_id=run.pk)))
    worker.start()
    deadline = time.monotonic() + 30
    while not SynthesisRun.objects.get(pk=run.pk).sections_delivered and time.monotonic() < deadline:
        time.sleep(0.05)
    cancelled = runs.run_cancel(deal=cast.deal, run_id=run.pk, user=cast.users["editor"])
    worker.join(30)
    assert outcome["status"] == RunStatus.CANCELLED == cancelled.status
    assert cancelled.cancel_requested_at is not None and cancelled.error == "Cancelled on request."
    delivered = cancelled.sections_delivered
    assert 1 <= len(delivered) < 9 and cancelled.sections_missing
    doc = read_memo(cast.deal.pk)
    assert all(doc.sections[k].source == "ai" for k in delivered)
    assert all(doc.sections[k].markdown == "" for k in cancelled.sections_missing)
    assert doc.last_run["status"] == "cancelled"
    # cancel is idempotent and returns the same final state
    again = runs.run_cancel(deal=cast.deal, run_id=run.pk, user=cast.users["editor"])
    assert (again.status, again.finished_at) == (cancelled.status, cancelled.finished_at)


class _NoSleep:
    """Stands in for the time module of canvas.runs.services: a sleep there fails the test."""

    monotonic = staticmethod(time.monotonic)

    @staticmethod
    def sleep(seconds):
        raise AssertionError(f"run_cancel slept {seconds} s instead of waiting on the run's stream")


def _running(cast):
    run = _create(cast, sections=["risks"])
    SynthesisRun.objects.filter(pk=run.pk).update(
        status=RunStatus.RUNNING, started_at=timezone.now(), heartbeat_at=timezone.now()
    )
    return run


@pytest.mark.django_db(transaction=True)
def test_a_cancel_returns_when_the_worker_ends_the_run_without_polling(cast, settings, monkeypatch):
    settings.SYNTHESIS_CANCEL_WAIT_SECONDS = 10
    run = _running(cast)
    monkeypatch.setattr(runs, "time", _NoSleep)

    def worker_ends_it():
        # the worker notices the flag a little later and ends the run (run_finish: workflow_finished, done)
        try:
            runs.run_finish(run_id=run.pk, status=RunStatus.CANCELLED, error="Cancelled on request.")
        finally:
            connection.close()

    worker = threading.Timer(0.5, worker_ends_it)
    started = time.monotonic()
    worker.start()
    cancelled = runs.run_cancel(deal=cast.deal, run_id=run.pk, user=cast.users["editor"])
    took = time.monotonic() - started
    worker.join(5)
    assert cancelled.status == RunStatus.CANCELLED and cancelled.error == "Cancelled on request."
    assert took < 3  # woken by the `done` entry, far before the 10 s wait
    # a run that already ended answers at once: its stream ends with `done`
    assert telemetry.wait_run_done(cast.deal.pk, run.pk, deadline=time.monotonic() + 10) is True


@pytest.mark.django_db
def test_waiting_for_done_outlasts_the_socket_timeout_and_gives_up_at_the_deadline(cast, settings):
    run = _running(cast)
    telemetry.emit_run_event(cast.deal.pk, run.pk, "workflow_started", {})
    # longer than the client's socket timeout: the XREAD BLOCK is sliced, so no TimeoutError
    wait = float(settings.REDIS_SOCKET_TIMEOUT) + 0.5
    started = time.monotonic()
    assert telemetry.wait_run_done(cast.deal.pk, run.pk, deadline=started + wait) is False
    assert wait <= time.monotonic() - started < wait + 1.5
    # events other than `done` do not end the wait; `done` does, even on a stream that did not exist
    other = uuid.uuid4()
    emitter = threading.Timer(
        0.3, lambda: [telemetry.emit_run_event(cast.deal.pk, other, name, {}) for name in ("message", "done")]
    )
    emitter.start()
    started = time.monotonic()
    assert telemetry.wait_run_done(cast.deal.pk, other, deadline=started + 10) is True
    assert time.monotonic() - started < 3
    emitter.join(5)


@pytest.mark.django_db
def test_a_cancel_without_redis_reads_the_row_once_at_the_deadline(cast, settings, monkeypatch):
    import redis

    settings.SYNTHESIS_CANCEL_WAIT_SECONDS = 7
    run = _running(cast)

    def unavailable(*args, **kwargs):
        raise redis.exceptions.ConnectionError("Redis is down")

    slept = []

    class Clock:
        monotonic = staticmethod(time.monotonic)

        @staticmethod
        def sleep(seconds):
            slept.append(seconds)
            # the worker ends the run meanwhile (it reads the row's cancel_requested_at)
            SynthesisRun.objects.filter(pk=run.pk).update(status=RunStatus.CANCELLED, error="Cancelled on request.")

    monkeypatch.setattr(telemetry, "wait_run_done", unavailable)
    monkeypatch.setattr(runs, "time", Clock)
    cancelled = runs.run_cancel(deal=cast.deal, run_id=run.pk, user=cast.users["editor"])
    assert len(slept) == 1 and 6 < slept[0] <= 7  # one wait to the deadline, no polling
    assert cancelled.status == RunStatus.CANCELLED and cancelled.error == "Cancelled on request."
    # nobody ends it: cancelled here once the deadline passed
    other = _running(cast)
    slept.clear()
    monkeypatch.setattr(Clock, "sleep", staticmethod(slept.append))
    cancelled = runs.run_cancel(deal=cast.deal, run_id=other.pk, user=cast.users["editor"])
    assert len(slept) == 1 and cancelled.status == RunStatus.CANCELLED and "did not confirm" in cancelled.error


@pytest.mark.django_db(transaction=True)
def test_nothing_is_written_for_a_run_that_ended(cast):
    make_corpus(cast.deal)
    run = _create(cast)
    SynthesisRun.objects.filter(pk=run.pk).update(status=RunStatus.CANCELLED)
    plan = SectionPlan("risks", "Risks and Mitigants", 8.0, True, "risk")
    with pytest.raises(SectionWriteRefused):
        runs._write_ai_section(deal=cast.deal, user=None, run=run, plan=plan, markdown="Too late.")
    SynthesisRun.objects.filter(pk=run.pk).update(status=RunStatus.RUNNING)
    telemetry.request_cancel(cast.deal.pk, run.pk)
    with pytest.raises(SectionWriteRefused):
        runs._write_ai_section(deal=cast.deal, user=None, run=run, plan=plan, markdown="Too late.")
    assert read_memo(cast.deal.pk) is None


@pytest.mark.django_db(transaction=True)
def test_the_llm_drafter_is_used_when_configured(cast, settings, monkeypatch):
    make_corpus(cast.deal)
    settings.CANVAS_LLM_MODEL = "fake:test-model"
    settings.SYNTHESIS_MAX_CONCURRENCY = 1
    specs = []

    def fake_model(spec):
        specs.append(spec)
        return GenericFakeChatModel(messages=iter([AIMessage(content=f"Drafted text {n} [S1].") for n in range(9)]))

    monkeypatch.setattr(drafters, "build_chat_model", fake_model)
    run = _create(cast, sections=["financial_analysis", "risks"])
    assert run.drafter == "llm"
    assert runs.run_execute(run_id=run.pk) == RunStatus.SUCCEEDED
    doc = read_memo(cast.deal.pk)
    assert specs == ["fake:test-model"]
    for key in ("financial_analysis", "risks"):
        assert doc.sections[key].markdown.startswith("Drafted text")
        _assert_cites_real_pages(cast.deal, doc.sections[key].markdown)


# --- claiming, queueing, dead runs -------------------------------------------------------------------------
@pytest.mark.django_db(transaction=True)
def test_runs_of_a_deal_execute_one_at_a_time_first_queued_first(cast):
    make_corpus(cast.deal)
    first = _create(cast, sections=["risks"])
    second = runs.run_create(
        deal=cast.deal,
        user=cast.users["editor"],
        kind="regenerate",
        sections=["risks"],
        instructions="",
        enqueue_on_conflict=True,
    )
    assert runs.run_execute(run_id=second.pk) == "skipped"  # the older one goes first
    SynthesisRun.objects.filter(pk=first.pk).update(status=RunStatus.RUNNING)
    third = runs.run_create(
        deal=cast.deal,
        user=cast.users["editor"],
        kind="generate",
        sections=["risks"],
        instructions="",
        enqueue_on_conflict=True,
    )
    assert runs.run_execute(run_id=third.pk) == "skipped"
    SynthesisRun.objects.filter(pk=first.pk).update(status=RunStatus.SUCCEEDED)
    assert runs.run_execute(run_id=second.pk) == RunStatus.SUCCEEDED
    assert runs.run_execute(run_id=second.pk) == "skipped"  # a redelivered message does nothing


@pytest.mark.django_db(transaction=True)
def test_the_sweeper_fails_silent_and_ancient_runs_and_records_them(cast, settings):
    settings.SYNTHESIS_DEAD_RUN_SECONDS = 60
    now = timezone.now()
    silent = SynthesisRun.objects.create(  # its resumes spent (RUN_MAX_RESUMES, 2): failed, not resumed
        deal=cast.deal,
        status=RunStatus.RUNNING,
        requested_sections=["risks"],
        started_at=now - timedelta(minutes=5),
        heartbeat_at=now - timedelta(minutes=2),
        resume_count=2,
    )
    alive = SynthesisRun.objects.create(
        deal=cast.deal,
        status=RunStatus.RUNNING,
        requested_sections=["risks"],
        started_at=now - timedelta(minutes=5),
        heartbeat_at=now,
    )
    ancient = SynthesisRun.objects.create(deal=cast.deal, status=RunStatus.QUEUED, requested_sections=["risks"])
    SynthesisRun.objects.filter(pk=ancient.pk).update(created_at=now - timedelta(hours=5))
    assert sorted(runs.runs_sweep_dead()) == sorted([str(silent.pk), str(ancient.pk)])
    silent.refresh_from_db()
    ancient.refresh_from_db()
    alive.refresh_from_db()
    assert silent.status == ancient.status == RunStatus.FAILED and alive.status == RunStatus.RUNNING
    assert "heartbeat" in silent.error and "4 hours" in ancient.error
    assert silent.sections_missing == ["risks"]
    names = [name for _, name, _ in telemetry.run_events(cast.deal.pk, silent.pk)]
    assert names == ["error", "workflow_finished", "done"]
    assert read_memo(cast.deal.pk).last_run["missing_required"] == ["risks"]
    assert runs.runs_sweep_dead() == []  # nothing twice


@pytest.mark.django_db(transaction=True)
def test_a_run_stopped_by_the_task_time_limit_is_failed(cast, monkeypatch):
    from celery.exceptions import SoftTimeLimitExceeded

    def hung(*args, **kwargs):
        raise SoftTimeLimitExceeded()

    monkeypatch.setattr(runs, "_execute", hung)
    run = _create(cast, sections=["risks"])
    assert runs.run_execute(run_id=run.pk) == RunStatus.FAILED
    run.refresh_from_db()
    assert "time budget" in run.error and run.sections_missing == ["risks"]


@pytest.mark.both_brokers
@pytest.mark.django_db(transaction=True)
def test_the_sweeper_sends_a_queued_run_again_only_once_its_last_message_is_older_than_the_dead_window(
    cast, settings, celery_broker
):
    # Every GET of a run sweeps its deal: a client polling a queued run must not pile messages on the broker.
    from canvas_project.broker import broker_check

    settings.SYNTHESIS_DEAD_RUN_SECONDS = 60
    lost = SynthesisRun.objects.create(deal=cast.deal, status=RunStatus.QUEUED, requested_sections=["risks"])
    SynthesisRun.objects.filter(pk=lost.pk).update(created_at=timezone.now() - timedelta(minutes=5))
    before = broker_check().queued  # no worker here: what is sent stays on the broker
    runs.runs_sweep_dead()
    lost.refresh_from_db()
    assert broker_check().queued == before + 1 and lost.sent_at is not None
    for _ in range(3):  # swept again within the window: its message is still there
        runs.runs_sweep_dead()
    assert broker_check().queued == before + 1
    SynthesisRun.objects.filter(pk=lost.pk).update(sent_at=timezone.now() - timedelta(minutes=2))
    runs.runs_sweep_dead()  # its last message is older than the window: presumed lost, sent again
    assert broker_check().queued == before + 2
