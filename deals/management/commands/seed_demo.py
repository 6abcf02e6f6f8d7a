"""manage.py seed_demo: a demo org with one user per role, a demo deal with two documents, a superadmin.

The demo deal gets a generated offering memorandum (PDF: text, a rent roll table, an occupancy chart) and
an underwriting workbook (XLSX), ingested here and now, so the first `POST /generate` drafts a cited memo.

Idempotent: running it again resets the demo passwords and grants, keeps the documents that are ready
(re-ingests one that is not) and prints the same cast.
"""

from __future__ import annotations

import os

from django.conf import settings
from django.core.files.uploadedfile import SimpleUploadedFile
from django.core.management.base import BaseCommand
from django.db import transaction

from deals.documents.samples import DEMO_DOCUMENTS
from deals.documents.services import document_ingest, document_reingest, document_upload
from deals.models import Deal, DealAccess, DealRole, Document, FileState, Org, OrgMembership, OrgRole, User, Visibility
from deals.tokens import token_pair_for_user

DEMO_PASSWORD = "demo-pass-1234"
DEMO_ORG = "Demo Capital Partners"
DEMO_DEAL = "123 Main Street Multifamily Acquisition"
CAST = [
    ("owner", DealRole.OWNER, OrgRole.ADMIN),
    ("editor", DealRole.EDITOR, OrgRole.MEMBER),
    ("commenter", DealRole.COMMENTER, OrgRole.MEMBER),
    ("viewer", DealRole.VIEWER, OrgRole.MEMBER),
]


class Command(BaseCommand):
    help = "Seed a demo org, one user per deal role, a superadmin and a demo deal; print credentials."

    def add_arguments(self, parser):
        parser.add_argument("--password", default=DEMO_PASSWORD)
        parser.add_argument("--no-documents", action="store_true", help="Do not give the demo deal its documents.")

    def handle(self, *args, **opts):
        if settings.PRODUCTION:
            self.stderr.write("seed_demo refuses to run with DJANGO_ENV=production.")
            raise SystemExit(1)
        with transaction.atomic():
            deal, users, admin = self._cast(opts["password"])
        documents = [] if opts["no_documents"] else self._documents(deal, users["owner"])
        self._report(deal, users, admin, documents, opts["password"])

    def _cast(self, password: str) -> tuple[Deal, dict[str, User], User]:
        org, _ = Org.objects.get_or_create(name=DEMO_ORG)
        users: dict[str, User] = {}
        for name, _deal_role, org_role in CAST:
            user = self._user(f"demo-{name}", password, first_name=name.title())
            OrgMembership.objects.update_or_create(org=org, user=user, defaults={"role": org_role})
            users[name] = user
        admin = self._user("demo-superadmin", password, first_name="Superadmin", superuser=True)
        deal = Deal.objects.filter(org=org, name=DEMO_DEAL).first() or Deal.objects.create(
            org=org,
            name=DEMO_DEAL,
            description="A 240-unit garden-style multifamily property (demo).",
            visibility=Visibility.PRIVATE,
            template_key="acquisition",
            created_by=users["owner"],
        )
        for name, deal_role, _org_role in CAST:
            DealAccess.objects.update_or_create(
                deal=deal, user=users[name], defaults={"role": deal_role, "granted_by": users["owner"]}
            )
        return deal, users, admin

    def _documents(self, deal: Deal, owner: User) -> list[Document]:
        """Upload the demo documents the deal lacks and ingest them in this process (the Celery task the
        upload queues then finds nothing to do); a demo document that is not ready is ingested again."""
        documents = []
        for filename, build in DEMO_DOCUMENTS:
            document = Document.objects.filter(deal=deal, filename=filename).order_by("-created_at").first()
            if document is None:
                document = document_upload(deal=deal, user=owner, upload=SimpleUploadedFile(filename, build()))
            elif document.state != FileState.READY:
                document = document_reingest(document=document)
            if document.state != FileState.READY:
                document = document_ingest(document_id=document.pk) or Document.objects.get(pk=document.pk)
            documents.append(document)
        return documents

    def _report(self, deal: Deal, users: dict[str, User], admin: User, documents: list[Document], password: str):
        token = token_pair_for_user(user=users["owner"])["access"]
        out = self.stdout
        out.write("")
        out.write(self.style.SUCCESS("Demo data ready"))
        out.write(f"  org:  {deal.org.name} ({deal.org_id})")
        out.write(f"  deal: {deal.name} ({deal.pk})")
        for document in documents:
            state = document.state if document.state == FileState.READY else f"{document.state}: {document.error}"
            out.write(f"  document: {document.filename} ({document.pages} pages, {state})")
        out.write(f"  password for every demo user: {password}")
        for name, deal_role, org_role in CAST:
            out.write(f"  {users[name].username:<17} deal role {deal_role:<9} org role {org_role}")
        out.write(f"  {admin.username:<17} superadmin (Django admin at /admin/)")
        out.write(
            "  bearer token of demo-owner (valid "
            f"{int(settings.SIMPLE_JWT['ACCESS_TOKEN_LIFETIME'].total_seconds() // 60)} min):"
        )
        out.write(f"  {token}")
        port = os.environ.get("PORT", "8000")
        out.write(f"  try: curl -H 'Authorization: Bearer <token>' http://127.0.0.1:{port}/api/canvas/{deal.pk}")
        out.write(
            f"  draft: curl -X POST -H 'Authorization: Bearer <token>' http://127.0.0.1:{port}/api/canvas/{deal.pk}/generate"
        )

    def _user(self, username: str, password: str, *, first_name: str, superuser: bool = False) -> User:
        user, _ = User.objects.get_or_create(username=username)
        user.first_name = first_name
        user.email = f"{username}@demo.example"
        user.is_superuser = user.is_staff = superuser
        user.is_active = True
        user.set_password(password)
        user.save()
        return user
