"""End to end on real infrastructure: upload a PDF and an XLSX the test builds, ingest them on the real Celery
worker, generate the memo, read the run's SSE to the end over real HTTP, and check that every required
section is there with citations pointing to real pages of the uploaded documents."""

from __future__ import annotations

import io
import time

import pytest
from django.conf import settings as django_settings
from django.core.files.uploadedfile import SimpleUploadedFile
from django.core.management import call_command
from django.db import connection

from canvas.memo.store import read_memo
from canvas.memo.templates import ACQUISITION
from canvas.models import RunStatus, SynthesisRun
from deals.documents.samples import DEMO_DOCUMENTS, DEMO_OM_FILENAME
from deals.management.commands.seed_demo import DEMO_DEAL
from deals.models import Deal, Document, DocumentPage, FileState, User
from deals.tokens import token_pair_for_user
from tests.canvas.conftest import canvas_url
from tests.deals import fixtures_documents as docs
from tests.servers import ServiceProcess, database_url_of
from tests.sse_client import SseReader

pytestmark = pytest.mark.django_db(transaction=True)

OM_PAGES = (
    (
        "Riverside Apartments - Offering Memorandum",
        [
            "Investment thesis: a stabilised multifamily community in Austin, Texas.",
            "Purchase price: $41,500,000, with projected returns above the fund target.",
            "We recommend the acquisition as a core-plus investment.",
        ],
    ),
    (
        "Property Description",
        [
            "The community comprises 240 units in twelve buildings, built in 1998.",
            "Net rentable area is 212,500 square feet; occupancy 94% as of the latest rent roll.",
            "The location is two miles from downtown with strong highway access.",
        ],
    ),
    (
        "Market Overview",
        [
            "Submarket vacancy is 5.1% and average rents grew 4.2% last year.",
            "New supply is limited while demand from job growth remains strong.",
            "Comparable sales traded between 5.6% and 6.1% cap rates.",
        ],
    ),
    (
        "Financial Overview",
        [
            "In-place NOI of $2,450,000 on revenue of $4,300,000.",
            "At the asking price this represents a going-in cap rate of 5.9%.",
            "Operating expenses are $1,850,000 including taxes and insurance.",
        ],
    ),
    (
        "Risks and Mitigants",
        [
            "The key risk is rising insurance costs; the mitigant is a fixed policy.",
            "Downside sensitivity shows a 12.0% IRR if rents stay flat.",
            "Interest rate risk is mitigated by fixed rate debt.",
        ],
    ),
    (
        "Recommendation",
        [
            "We recommend that the committee approve the acquisition.",
            "Conditions: a property condition report and a loan commitment.",
            "Next steps are legal diligence and lender selection.",
        ],
    ),
)


@pytest.fixture
def media(settings, tmp_path):
    settings.MEDIA_ROOT = str(tmp_path / "media")
    return tmp_path / "media"


@pytest.fixture
def service(cast, media):
    server = ServiceProcess(
        {
            "DJANGO_SETTINGS_MODULE": "canvas_project.settings",
            "DATABASE_URL": database_url_of(connection.settings_dict),
            "REDIS_URL": django_settings.REDIS_URL,
            "MEDIA_ROOT": str(media),
        }
    ).start()
    yield server
    server.stop()


def _upload(client, deal, name: str, content: bytes) -> str:
    response = client.post(
        f"/api/deals/{deal.pk}/documents", {"file": SimpleUploadedFile(name, content)}, format="multipart"
    )
    assert response.status_code == 201, response.content
    return response.json()["id"]


def _wait_ready(document_ids: list[str], timeout: float = 90) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        states = dict(Document.objects.filter(pk__in=document_ids).values_list("pk", "state"))
        if all(state in (FileState.READY, FileState.FAILED) for state in states.values()):
            assert set(states.values()) == {FileState.READY}, Document.objects.values("filename", "error")
            return
        time.sleep(0.1)
    raise AssertionError("ingestion did not finish")


def test_upload_ingest_generate_and_read_the_run_to_the_end(cast, celery_worker, service, media):
    editor = cast.client("editor")
    pdf = _upload(editor, cast.deal, "Riverside OM.pdf", docs.offering_memorandum_pdf(pages=OM_PAGES))
    xlsx = _upload(editor, cast.deal, "Underwriting model.xlsx", docs.underwriting_xlsx())
    _wait_ready([pdf, xlsx])

    run = editor.post(canvas_url(cast.deal, "generate"), {}, format="json").json()
    token = token_pair_for_user(user=cast.users["viewer"])["access"]
    reader = SseReader(service.url + run["stream_url"], token).start()
    events = []
    while not events or events[-1].event != "done":
        events.append(reader.events.get(timeout=120))
    assert events[0].event == "workflow_started" and events[-1].data["status"] == "succeeded"
    assert {e.data["component_id"] for e in events if e.event == "node_finished"} == {
        s.key for s in ACQUISITION.sections
    }

    pages = {(p.document.filename, p.page_number) for p in DocumentPage.objects.select_related("document")}
    doc = read_memo(cast.deal.pk)
    cited_documents = set()
    for spec in ACQUISITION.sections:
        if not spec.required:
            continue
        section = doc.sections[spec.key]
        assert section.markdown.strip() and section.delivery == "delivered", spec.key
        assert section.citations, spec.key
        for citation in section.citations:
            assert (citation["document"], citation["page"]) in pages, (spec.key, citation)
            cited_documents.add(citation["document"])
    assert cited_documents == {"Riverside OM.pdf", "Underwriting model.xlsx"}
    assert "$41,500,000" in doc.sections["executive_summary"].markdown
    session = editor.get(canvas_url(cast.deal)).json()
    assert session["incomplete_delivery_blocked"] is False and session["progress"]["populated"] == 9


def test_the_demo_deal_drafts_a_cited_memo_from_its_seeded_documents(celery_worker, media, client):
    """What a newcomer does first: `dev.py run` (seed_demo), then POST /generate on the demo deal."""
    out = io.StringIO()
    call_command("seed_demo", stdout=out)
    deal = Deal.objects.get(name=DEMO_DEAL)
    documents = {d.filename: d for d in Document.objects.filter(deal=deal)}
    assert set(documents) == {filename for filename, _ in DEMO_DOCUMENTS}
    assert {d.state for d in documents.values()} == {FileState.READY}, [d.error for d in documents.values()]
    om = documents[DEMO_OM_FILENAME]
    assert om.pages == 7 and f"document: {DEMO_OM_FILENAME} (7 pages, ready)" in out.getvalue()
    assert "| 2 bed / 2 bath | 120 | $1,460 |" in om.page_texts.get(page_number=4).text
    figures = client.get(
        f"/api/deals/{deal.pk}/documents/{om.pk}/figures",
        HTTP_AUTHORIZATION=f"Bearer {token_pair_for_user(user=User.objects.get(username='demo-viewer'))['access']}",
    )
    assert figures.status_code == 200 and len(figures.json()["figures"]) >= 1, figures.content

    # a second seed keeps the ready documents: same rows, nothing re-uploaded
    call_command("seed_demo", stdout=io.StringIO())
    assert set(Document.objects.filter(deal=deal).values_list("pk", flat=True)) == {d.pk for d in documents.values()}

    owner = token_pair_for_user(user=User.objects.get(username="demo-owner"))["access"]
    run = client.post(
        f"/api/canvas/{deal.pk}/generate", {}, content_type="application/json", HTTP_AUTHORIZATION=f"Bearer {owner}"
    )
    assert run.status_code == 202, run.content
    deadline = time.monotonic() + 120
    while SynthesisRun.objects.get(pk=run.json()["run_id"]).status not in (RunStatus.SUCCEEDED, RunStatus.FAILED):
        assert time.monotonic() < deadline, "the run did not finish"
        time.sleep(0.2)
    assert SynthesisRun.objects.get(pk=run.json()["run_id"]).status == RunStatus.SUCCEEDED
    doc = read_memo(deal.pk)
    ids = {str(d.pk) for d in documents.values()}
    cited = set()
    for spec in ACQUISITION.sections:
        if spec.required:
            section = doc.sections[spec.key]
            assert section.delivery == "delivered" and section.citations, spec.key
            cited |= {
                c["document_id"]
                for c in client.get(f"/api/canvas/{deal.pk}", HTTP_AUTHORIZATION=f"Bearer {owner}").json()["sections"][
                    spec.key
                ]["citations"]
            }
    assert cited == ids
    assert "$38,400,000" in doc.sections["executive_summary"].markdown
