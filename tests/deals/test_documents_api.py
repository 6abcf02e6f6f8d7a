"""/api/deals/{id}/documents[/{doc_id}[/download]], /intel and /intake: roles, limits, sniffing, deletion."""

from __future__ import annotations

import hashlib
import json
import os

import pytest
from django.core.files.base import ContentFile
from django.core.files.uploadedfile import SimpleUploadedFile

from canvas_project import keys
from canvas_project.redis_client import get_redis
from deals.models import Document, DocumentPage, FileState
from tests import factories
from tests.conftest import ROLES, expected_status
from tests.deals import fixtures_documents as docs

XLSX = "application/vnd.openxmlformats-officedocument.spreadsheetml.sheet"


@pytest.fixture(autouse=True)
def _media(settings, tmp_path):
    settings.MEDIA_ROOT = str(tmp_path / "media")


def _url(deal, *parts) -> str:
    return "/".join([f"/api/deals/{deal.pk}/documents", *map(str, parts)])


def _upload(client, deal, name: str, content: bytes, content_type: str = "application/octet-stream", **extra):
    upload = SimpleUploadedFile(name, content, content_type=content_type)
    return client.post(_url(deal), {"file": upload, **extra}, format="multipart")


def _stored_document(deal, name="om.pdf", content=b"%PDF-1.4 stub", pages=("Purchase price: $41,500,000",)):
    doc = Document(
        deal=deal,
        filename=name,
        content_type="application/pdf",
        kind="pdf",
        size=len(content),
        sha256=hashlib.sha256(content).hexdigest(),
        state=FileState.READY,
        pages=len(pages),
    )
    doc.file.save(name, ContentFile(content), save=False)
    doc.save()
    for number, text in enumerate(pages, start=1):
        DocumentPage.objects.create(document=doc, deal=deal, page_number=number, text=text)
    return doc


# --- role matrix ----------------------------------------------------------------------------------
@pytest.mark.parametrize("role", ROLES)
def test_role_matrix_list(cast, role):
    _stored_document(cast.deal)
    response = cast.client(role).get(_url(cast.deal))
    assert response.status_code == expected_status(role, minimum="viewer", ok=200)
    if response.status_code == 200:
        assert [row["filename"] for row in response.json()["results"]] == ["om.pdf"]


@pytest.mark.parametrize("role", ROLES)
def test_role_matrix_upload(cast, role):
    response = _upload(cast.client(role), cast.deal, "notes.txt", b"Purchase price: $1,000,000\n")
    assert response.status_code == expected_status(role, minimum="editor", ok=201), response.content
    assert Document.objects.filter(deal=cast.deal).exists() == (response.status_code == 201)


@pytest.mark.parametrize("role", ROLES)
def test_role_matrix_get(cast, role):
    doc = _stored_document(cast.deal)
    response = cast.client(role).get(_url(cast.deal, doc.pk))
    assert response.status_code == expected_status(role, minimum="viewer", ok=200)


@pytest.mark.parametrize("role", ROLES)
def test_role_matrix_download(cast, role):
    doc = _stored_document(cast.deal)
    response = cast.client(role).get(_url(cast.deal, doc.pk, "download"))
    assert response.status_code == expected_status(role, minimum="viewer", ok=200)


@pytest.mark.parametrize("role", ROLES)
def test_role_matrix_delete(cast, role):
    doc = _stored_document(cast.deal)
    response = cast.client(role).delete(_url(cast.deal, doc.pk))
    assert response.status_code == expected_status(role, minimum="editor", ok=204)
    assert Document.objects.filter(pk=doc.pk).exists() == (response.status_code != 204)


@pytest.mark.parametrize("role", ROLES)
@pytest.mark.parametrize("endpoint", ["intel", "intake"])
def test_role_matrix_intel_and_intake(cast, role, endpoint):
    response = cast.client(role).get(f"/api/deals/{cast.deal.pk}/{endpoint}")
    assert response.status_code == expected_status(role, minimum="viewer", ok=200)


def test_a_malformed_or_unknown_deal_is_404(cast):
    client = cast.client("owner")
    assert client.get("/api/deals/not-a-uuid/documents").status_code == 404
    assert _upload(client, factories.make_deal(cast.other_org), "a.txt", b"x").status_code == 404


# --- upload -----------------------------------------------------------------------------------------
def test_it_uploads_and_answers_the_row(cast, django_capture_on_commit_callbacks, monkeypatch):
    queued = []
    monkeypatch.setattr(
        "canvas_project.celery.app.send_task",
        lambda name, args: queued.append(args[0]) if name == "deals.ingest_document" else None,
    )
    pdf = docs.offering_memorandum_pdf()
    with django_capture_on_commit_callbacks(execute=True):
        # the client's content type is ignored: the bytes say PDF
        response = _upload(cast.client("editor"), cast.deal, "../../Riverside OM.pdf", pdf, "text/plain")
    assert response.status_code == 201, response.content
    body = response.json()
    assert set(body) >= {"id", "filename", "content_type", "size", "state", "error", "pages", "created_at"}
    assert body["filename"] == "Riverside OM.pdf"
    assert body["content_type"] == "application/pdf" and body["kind"] == "pdf"
    assert body["size"] == len(pdf) and body["sha256"] == hashlib.sha256(pdf).hexdigest()
    assert body["state"] == "queued" and body["error"] is None and body["pages"] is None
    assert queued == [body["id"]]
    doc = Document.objects.get(pk=body["id"])
    assert doc.uploaded_by == cast.users["editor"]
    with doc.file.open("rb") as handle:
        assert handle.read() == pdf


@pytest.mark.parametrize(
    ("name", "content", "kind", "content_type"),
    [
        ("model.xlsx", docs.underwriting_xlsx(), "xlsx", XLSX),
        ("model.bin", docs.underwriting_xlsx(), "xlsx", XLSX),
        (
            "notes.docx",
            docs.memo_docx(),
            "docx",
            "application/vnd.openxmlformats-officedocument.wordprocessingml.document",
        ),
        ("rent_roll.csv", docs.rent_roll_csv(), "csv", "text/csv; charset=utf-8"),
        ("market.md", "# Market\n\nCafé rents grew 4%.\n".encode(), "md", "text/markdown; charset=utf-8"),
        ("notes.txt", docs.long_text(), "txt", "text/plain; charset=utf-8"),
    ],
)
def test_it_sniffs_each_accepted_kind(cast, name, content, kind, content_type):
    response = _upload(cast.client("editor"), cast.deal, name, content)
    assert response.status_code == 201, response.content
    assert (response.json()["kind"], response.json()["content_type"]) == (kind, content_type)


@pytest.mark.parametrize(
    ("name", "content"),
    [
        ("invoice.pdf", docs.exe_bytes()),  # an executable renamed .pdf
        ("setup.exe", docs.exe_bytes()),
        ("model.xlsx", docs.plain_zip()),  # a ZIP that is not an Office document
        ("notes.txt", "café".encode("latin-1")),  # not UTF-8
        ("notes.txt", b"text\x00with a NUL"),
        ("photo.png", docs.png_bytes()),
        ("data.json", b'{"a": 1}'),  # text, but not an accepted extension
    ],
)
def test_it_refuses_other_content_with_415(cast, name, content):
    response = _upload(cast.client("editor"), cast.deal, name, content, "application/pdf")
    assert response.status_code == 415, response.content
    assert "Unsupported file type" in response.json()["detail"]
    assert not Document.objects.exists()


def test_a_json_body_is_415(cast):
    response = cast.client("editor").post(_url(cast.deal), {"file": "x"}, format="json")
    assert response.status_code == 415
    assert isinstance(response.json()["detail"], str)


def test_a_file_over_the_limit_is_413(cast, settings, tmp_path):
    settings.DOCUMENT_MAX_BYTES = 1000
    response = _upload(cast.client("editor"), cast.deal, "big.txt", b"a" * 1001)
    assert response.status_code == 413, response.content
    assert "1,000 bytes" in response.json()["detail"]
    assert _upload(cast.client("editor"), cast.deal, "ok.txt", b"a" * 1000).status_code == 201
    assert Document.objects.count() == 1
    assert not any(p.name.startswith("big") for p in (tmp_path / "media").rglob("*"))


def test_a_body_declared_far_over_the_limit_is_413_before_it_is_read(cast, settings):
    settings.DOCUMENT_MAX_BYTES = 1000
    response = cast.client("editor").generic(
        "POST",
        _url(cast.deal),
        b"x" * 10,
        content_type="multipart/form-data; boundary=xyz",
        CONTENT_LENGTH=str(10 * 1024 * 1024),
    )
    assert response.status_code == 413


def test_the_default_limit_is_50_mb(settings):
    from canvas_project import settings as declared
    from canvas_project.env import env_int
    from deals.documents.services import document_max_bytes

    # declared once, in canvas_project.settings (50 MB unless DOCUMENT_MAX_BYTES is set); read from there
    assert env_int("DOCUMENT_MAX_BYTES", 50 * 1024 * 1024) == declared.DOCUMENT_MAX_BYTES == document_max_bytes()
    if "DOCUMENT_MAX_BYTES" not in os.environ:
        assert document_max_bytes() == 50 * 1024 * 1024
    settings.DOCUMENT_MAX_BYTES = 1234
    assert document_max_bytes() == 1234


@pytest.mark.parametrize(
    ("payload", "loc", "type_"),
    [
        ({}, ["body", "file"], "missing"),
        ({"file": "just text"}, ["body", "file"], "value_error"),
        ({"file": SimpleUploadedFile("empty.txt", b"")}, ["body", "file"], "empty"),
        ({"file": SimpleUploadedFile("a.txt", b"x"), "note": "hi"}, ["body", "note"], "extra_forbidden"),
    ],
)
def test_upload_validation_is_422(cast, payload, loc, type_):
    response = cast.client("editor").post(_url(cast.deal), payload, format="multipart")
    assert response.status_code == 422, response.content
    item = response.json()["detail"][0]
    assert item["loc"] == loc and item["type"] == type_


# --- get, download, delete --------------------------------------------------------------------------
def test_it_gets_a_document_and_hides_other_deals_documents(cast):
    doc = _stored_document(cast.deal)
    other = _stored_document(factories.make_deal(cast.org, owner=cast.users["owner"]))
    client = cast.client("viewer")
    body = client.get(_url(cast.deal, doc.pk)).json()
    assert body["id"] == str(doc.pk) and body["state"] == "ready" and body["pages"] == 1
    assert client.get(_url(cast.deal, other.pk)).status_code == 404
    assert client.get(_url(cast.deal, other.pk, "download")).status_code == 404
    assert cast.client("owner").delete(_url(cast.deal, other.pk)).status_code == 404
    assert client.get(_url(cast.deal, "0b7d6c3e-9f51-4f39-9d5b-51e4c8a1f000")).status_code == 404


def test_a_malformed_document_id_is_422(cast):
    response = cast.client("viewer").get(_url(cast.deal, "nope"))
    assert response.status_code == 422
    assert response.json()["detail"][0]["loc"] == ["path", "doc_id"]


def test_download_streams_the_file_with_its_type_and_name(cast):
    content = docs.offering_memorandum_pdf()
    doc = _stored_document(cast.deal, name="Riverside OM – final.pdf", content=content)
    response = cast.client("viewer").get(_url(cast.deal, doc.pk, "download"))
    assert response.status_code == 200
    assert b"".join(response.streaming_content) == content
    assert response["Content-Type"] == "application/pdf"
    assert response["Content-Length"] == str(len(content))
    assert response["Content-Disposition"].startswith("attachment;")
    assert "filename*=utf-8''Riverside%20OM%20%E2%80%93%20final.pdf" in response["Content-Disposition"]


def test_download_of_a_file_missing_from_storage_is_404(cast):
    doc = _stored_document(cast.deal)
    doc.file.storage.delete(doc.file.name)
    response = cast.client("viewer").get(_url(cast.deal, doc.pk, "download"))
    assert response.status_code == 404
    assert "missing" in response.json()["detail"]


def test_delete_removes_file_pages_and_redis_keys(cast, django_capture_on_commit_callbacks):
    doc = _stored_document(cast.deal, pages=("a", "b"))
    keep = _stored_document(cast.deal, name="keep.pdf")
    redis = get_redis()
    own = [
        keys.digitization_key(cast.deal.pk, doc.pk),
        keys.image_crop_key(cast.deal.pk, doc.pk, 0),
        keys.image_crop_key(cast.deal.pk, doc.pk, 1),
    ]
    other = keys.digitization_key(cast.deal.pk, keep.pk)
    for key in [*own, other]:
        redis.set(key, b"x")
        redis.sadd(keys.index_key(cast.deal.pk), key)
    stale_intel = {"metrics": {}, "documents": 9, "computed_at": "x"}
    redis.set(keys.deal_intel_key(cast.deal.pk), json.dumps(stale_intel))
    path = doc.file.path

    with django_capture_on_commit_callbacks(execute=True):
        response = cast.client("editor").delete(_url(cast.deal, doc.pk))

    assert response.status_code == 204
    assert not Document.objects.filter(pk=doc.pk).exists()
    assert not DocumentPage.objects.filter(document_id=doc.pk).exists()
    assert not os.path.exists(path) and os.path.exists(keep.file.path)
    assert redis.exists(*own) == 0 and redis.exists(other) == 1
    assert redis.smembers(keys.index_key(cast.deal.pk)) == {other.encode()}
    # intel is recomputed without the document (the intake refresh recached it)
    assert json.loads(redis.get(keys.deal_intel_key(cast.deal.pk)))["documents"] == 1
    intake = json.loads(redis.get(keys.intake_key(cast.deal.pk)))
    assert [d["filename"] for d in intake["documents"]] == ["keep.pdf"]


# --- intel and intake -------------------------------------------------------------------------------
def test_intel_answers_metrics_with_sources(cast):
    doc = _stored_document(cast.deal, pages=("Intro", "Purchase price: $41,500,000 and a cap rate of 5.9%"))
    body = cast.client("viewer").get(f"/api/deals/{cast.deal.pk}/intel").json()
    assert body["documents"] == 1
    assert body["metrics"]["purchase_price"] == {
        "value": 41_500_000.0,
        "unit": "USD",
        "text": "Purchase price: $41,500,000",
        "source": {"document_id": str(doc.pk), "filename": "om.pdf", "page": 2},
    }
    assert body["metrics"]["cap_rate"]["value"] == 5.9
    assert "irr" not in body["metrics"]


def test_intake_names_missing_documents(cast):
    _stored_document(cast.deal)
    body = cast.client("viewer").get(f"/api/deals/{cast.deal.pk}/intake").json()
    assert body["template_key"] == "acquisition"
    assert body["missing"] == ["Underwriting model (XLSX)"]
    assert body["complete"] is False
    assert {r["key"]: r["status"] for r in body["requirements"]} == {
        "offering_memorandum": "received",
        "underwriting_model": "missing",
    }
    assert body["key_facts"]["purchase_price"]["value"] == 41_500_000


# --- admin --------------------------------------------------------------------------------------------
def test_admin_lists_documents_and_deletes_through_the_service(cast, client, django_capture_on_commit_callbacks):
    doc = _stored_document(cast.deal, pages=("Purchase price: $41,500,000",))
    get_redis().set(keys.digitization_key(cast.deal.pk, doc.pk), b"{}")
    client.force_login(cast.users["superadmin"])
    assert client.get("/admin/deals/document/").status_code == 200
    page = client.get(f"/admin/deals/document/{doc.pk}/change/")
    assert page.status_code == 200 and b"Purchase price" in page.content
    assert client.get("/admin/deals/documentpage/").status_code == 200
    path = doc.file.path
    with django_capture_on_commit_callbacks(execute=True):
        response = client.post(
            "/admin/deals/document/", {"action": "delete_selected", "_selected_action": [doc.pk], "post": "yes"}
        )
    assert response.status_code == 302
    assert not Document.objects.exists() and not os.path.exists(path)
    assert not get_redis().exists(keys.digitization_key(cast.deal.pk, doc.pk))


def test_admin_reingests_selected_documents(cast, client, django_capture_on_commit_callbacks, monkeypatch):
    queued = []
    monkeypatch.setattr(
        "canvas_project.celery.app.send_task",
        lambda name, args: queued.append(args[0]) if name == "deals.ingest_document" else None,
    )
    doc = _stored_document(cast.deal)
    client.force_login(cast.users["superadmin"])
    with django_capture_on_commit_callbacks(execute=True):
        client.post("/admin/deals/document/", {"action": "reingest", "_selected_action": [doc.pk]})
    doc.refresh_from_db()
    assert doc.state == FileState.QUEUED and queued == [str(doc.pk)]


def test_a_storage_failure_is_503_and_leaves_no_row(cast, monkeypatch):
    def full_disk(*args, **kwargs):
        raise OSError(28, "No space left on device")

    monkeypatch.setattr("django.core.files.storage.FileSystemStorage._save", full_disk)
    response = _upload(cast.client("editor"), cast.deal, "notes.txt", b"text")
    assert response.status_code == 503
    assert response.json()["detail"] == "File storage is unavailable; try again shortly."
    assert not Document.objects.exists()


def test_deleting_a_deal_can_take_its_files_along(cast, django_capture_on_commit_callbacks):
    from deals.documents.services import deal_document_files_delete

    doc = _stored_document(cast.deal)
    path = doc.file.path
    with django_capture_on_commit_callbacks(execute=True):
        deal_document_files_delete(deal=cast.deal)
        cast.deal.delete()
    assert not os.path.exists(path)


def test_listing_costs_the_same_few_queries_for_many_documents(cast, django_assert_max_num_queries):
    for n in range(12):
        _stored_document(cast.deal, name=f"doc{n}.pdf")
    client = cast.client("viewer")
    with django_assert_max_num_queries(4):  # user, deal with the caller's grant, the documents
        response = client.get(_url(cast.deal))
    assert len(response.json()["results"]) == 12
