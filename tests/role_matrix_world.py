"""The objects the role-matrix entries need on the cast's deal, built on demand through the services.

One World per test (one entry, one principal), so an entry that changes or deletes something gets
fresh objects for every principal and the order of the parametrization never matters. Setup always
acts as the deal's owner, except where an entry is about the caller's own object (a comment, a lock).
"""

from __future__ import annotations

import hashlib
import io
import secrets
from dataclasses import dataclass, field
from datetime import timedelta
from functools import cached_property
from typing import Any

from django.conf import settings
from django.core.files.base import ContentFile
from django.utils import timezone
from PIL import Image

from canvas.collab import services as collab
from canvas.memo import services
from canvas.models import ApprovalCondition, RunStatus, SynthesisRun
from canvas.nodes import services as nodes
from canvas.review import services as review_services
from deals.documents.ingestion.crops import digitization_cache_write
from deals.documents.ingestion.digitize import Crop, Digitized, PageText
from deals.models import Deal, Document, DocumentPage, FileState, Invitation
from deals.people.services import invitation_token_hash
from deals.tokens import token_pair_for_user
from deals.webhooks.services import org_webhook_secret_rotate
from internal_api.models import ChatThread
from tests import factories
from tests.canvas.conftest import full_memo

RISKS = "Rates may rise. Vacancy is low."


def tiny_png() -> bytes:
    """A 2x2 PNG, as a figure cropped from a PDF."""
    out = io.BytesIO()
    Image.new("RGB", (2, 2), (200, 30, 30)).save(out, format="PNG")
    return out.getvalue()


@dataclass(frozen=True)
class Call:
    """One request: the path (with its query string), the body, and extra headers as WSGI META names."""

    path: str
    data: Any = None
    format: str = "json"
    headers: dict[str, str] = field(default_factory=dict)


def engine_token() -> str:
    return settings.INTERNAL_ENGINE_TOKENS[0]


# API-key principals: the user whose key it is, and the key's scope. A key acts as that user, capped by its scope
# (tests/test_role_matrix.py derives their statuses from the user's).
KEY_PRINCIPALS: dict[str, tuple[str, str]] = {
    "editor_read_key": ("editor", "read"),
    "editor_write_key": ("editor", "write"),
}


class World:
    def __init__(self, cast, principal: str, request) -> None:
        self.cast = cast
        self.principal = principal
        self._request = request

    # --- who and where ---------------------------------------------------------------------------------
    def client(self):
        if self.principal == "internal":
            return factories.client_for(token=engine_token())
        if self.principal in KEY_PRINCIPALS:
            return factories.client_for(token=self.api_key)
        return self.cast.client(self.principal)

    @cached_property
    def api_key(self) -> str:
        """The key of a key principal (its user's, with its scope)."""
        user, scope = KEY_PRINCIPALS[self.principal]
        return factories.make_api_key(self.user(user), scope, name=self.principal)[1]

    @property
    def caller(self):
        """The principal's user (a key's user for a key principal); None for anonymous and the engine."""
        user = KEY_PRINCIPALS.get(self.principal, (self.principal, ""))[0]
        return self.cast.users.get(user)

    @property
    def owner(self):
        return self.cast.users["owner"]

    def user(self, name: str):
        return self.cast.users[name]

    @property
    def deal_id(self) -> str:
        return str(self.cast.deal.pk)

    def deal(self) -> Deal:
        # re-read: services update the row (memo version, state) behind any instance we hold
        return Deal.objects.get(pk=self.cast.deal.pk)

    def deal_path(self, suffix: str = "") -> str:
        return f"/api/deals/{self.deal_id}" + (f"/{suffix}" if suffix else "")

    def canvas_path(self, suffix: str = "") -> str:
        return f"/api/canvas/{self.deal_id}" + (f"/{suffix}" if suffix else "")

    # --- the memo --------------------------------------------------------------------------------------
    @cached_property
    def risks(self) -> int:
        """The Risks section written (one section, version 1): enough for section-level endpoints."""
        outcome = services.section_update(
            deal=self.deal(), user=self.owner, key="risks", markdown=RISKS, title=None, base_version=None
        )
        return outcome.memo.version

    @cached_property
    def written(self) -> int:
        """The whole memo written by its owner: ready to approve (readiness above the gate)."""
        outcome = services.canvas_save(deal=self.deal(), user=self.owner, content=full_memo(), base_version=None)
        return outcome.memo.version

    @cached_property
    def approved(self) -> int:
        self.written  # noqa: B018 - builds the memo first
        result = services.memo_approve(deal=self.deal(), user=self.owner, role="owner")
        assert result.success, result
        return result.details["approval_version"]

    @cached_property
    def condition_id(self) -> int:
        """An open approval condition on Risks."""
        self.risks  # noqa: B018
        review_services.section_approve(
            deal=self.deal(),
            user=self.owner,
            role="owner",
            key="risks",
            comment="",
            reviewer_role="reviewer",
            quality_score=None,
            conditions=["Confirm the rate cap"],
            force=False,
        )
        return ApprovalCondition.objects.get(deal_id=self.cast.deal.pk).pk

    @cached_property
    def commenters_comment(self) -> str:
        """A comment on Risks written by the commenter (the author may resolve it)."""
        comment = review_services.comment_create(
            deal=self.deal(), user=self.user("commenter"), section_key="risks", body="Is the rate capped?"
        )
        return str(comment.pk)

    @cached_property
    def owners_comment(self) -> str:
        comment = review_services.comment_create(
            deal=self.deal(), user=self.owner, section_key="risks", body="Add the cap's strike."
        )
        return str(comment.pk)

    @cached_property
    def suggestion(self) -> str:
        """A commenter's pending insert into Risks (it applies whatever else happened)."""
        self.risks  # noqa: B018
        created = review_services.suggestion_create(
            deal=self.deal(),
            user=self.user("commenter"),
            section_key="risks",
            kind="insert",
            anchor_text="",
            occurrence=1,
            content="Insurance costs rise.",
            comment="",
        )
        return str(created.pk)

    # --- nodes -----------------------------------------------------------------------------------------
    def _node(self, title: str) -> str:
        return nodes.node_create(deal=self.deal(), actor_id=str(self.owner.pk), type="strategy_item", title=title)["id"]

    @cached_property
    def node(self) -> str:
        return self._node("Refinance in year 3")

    @cached_property
    def other_node(self) -> str:
        return self._node("Sell in year 5")

    @cached_property
    def link(self) -> tuple[str, str, str]:
        """(from, to, type) of a stored link between two nodes."""
        nodes.link_create(
            deal=self.deal(),
            actor_id=str(self.owner.pk),
            source=self.node,
            target=self.other_node,
            edge_type="supports",
        )
        return self.node, self.other_node, "supports"

    # --- collaboration ---------------------------------------------------------------------------------
    @cached_property
    def collab_off(self) -> bool:
        Deal.objects.filter(pk=self.cast.deal.pk).update(collab_enabled=False)
        return True

    @cached_property
    def callers_lock(self) -> str:
        """The token of a lock on Risks held by the caller (no lock for anonymous and the engine)."""
        self.collab_off  # noqa: B018
        if self.caller is None:
            return ""
        return collab.lock_acquire(deal=self.deal(), user=self.caller, section_key="risks", ttl_seconds=60).token

    # --- runs ------------------------------------------------------------------------------------------
    def run(self, status: str = RunStatus.QUEUED) -> str:
        """A run row of the deal (the editor's); queued runs are never picked up in tests."""
        return str(
            SynthesisRun.objects.create(
                deal_id=self.cast.deal.pk, status=status, requested_sections=["risks"], created_by=self.user("editor")
            ).pk
        )

    @cached_property
    def queued_run(self) -> str:
        return self.run()

    @cached_property
    def webhook(self) -> str:
        """A webhook URL a run may name: its host listed in WEBHOOK_ALLOWED_HOSTS and the org's secret issued
        (nothing listens there: runs are never executed in these tests)."""
        self._request.getfixturevalue("settings").WEBHOOK_ALLOWED_HOSTS = ["127.0.0.1"]
        org_webhook_secret_rotate(org=self.cast.org, user=self.owner)
        return "http://127.0.0.1:9/hooks/canvas"

    @cached_property
    def waiting_run(self) -> str:
        """A run of the deal waiting for input on Risks (a row: resuming it only queues it, on commit)."""
        return str(
            SynthesisRun.objects.create(
                deal_id=self.cast.deal.pk,
                status=RunStatus.WAITING_INPUT,
                requested_sections=["risks"],
                created_by=self.user("editor"),
                started_at=timezone.now(),
                input_requested_at=timezone.now(),
                input_request={
                    "reason": "no_documents",
                    "message": "Upload documents, then resume.",
                    "sections": [{"key": "risks", "title": "Risks and Mitigants", "required": True}],
                    "documents": 0,
                    "schema": {},
                    "requested_at": timezone.now().isoformat(),
                    "expires_at": (timezone.now() + timedelta(days=1)).isoformat(),
                },
            ).pk
        )

    # --- documents -------------------------------------------------------------------------------------
    @cached_property
    def media_root(self) -> str:
        root = self._request.getfixturevalue("tmp_path") / "media"
        self._request.getfixturevalue("settings").MEDIA_ROOT = str(root)
        return str(root)

    @cached_property
    def document(self) -> str:
        """A ready PDF with one extracted page and its file in (a temporary) storage."""
        self.media_root  # noqa: B018
        content = b"%PDF-1.4 stub"
        doc = Document(
            deal_id=self.cast.deal.pk,
            filename="om.pdf",
            content_type="application/pdf",
            kind="pdf",
            size=len(content),
            sha256=hashlib.sha256(content).hexdigest(),
            state=FileState.READY,
            pages=1,
        )
        doc.file.save("om.pdf", ContentFile(content), save=False)
        doc.save()
        DocumentPage.objects.create(
            document=doc, deal_id=self.cast.deal.pk, page_number=1, text="Purchase price: $41,500,000"
        )
        return str(doc.pk)

    @cached_property
    def figure(self) -> int:
        """Figure 1 of the PDF, cropped into Redis as its ingestion leaves it; its number."""
        document = Document.objects.get(pk=self.document)
        digitized = Digitized(
            pages=[PageText(number=1, text="Purchase price: $41,500,000")],
            crops=[Crop(page=1, name="Im1.png", image_format="png", width=2, height=2, data=tiny_png())],
        )
        assert digitization_cache_write(document=document, digitized=digitized)
        return 1

    # --- people, tokens, threads -----------------------------------------------------------------------
    @cached_property
    def colleague(self) -> str:
        """A user in no org of the cast's, but in another org with the owner (Org C): the owner may add them."""
        colleague = factories.make_user()  # a fresh name: several Worlds may share the cast
        factories.add_member(factories.make_org("Org C", admin=self.owner), colleague)
        return str(colleague.pk)

    def _invitation(self, org, email: str) -> tuple[str, str]:
        """(id, one-time token) of a pending invitation of the org to the email."""
        token = secrets.token_urlsafe(32)
        invitation = Invitation.objects.create(
            org=org,
            email=email,
            role="member",
            token_hash=invitation_token_hash(token),
            invited_by=self.owner,
            expires_at=timezone.now() + timedelta(days=1),
        )
        return str(invitation.pk), token

    @cached_property
    def callers_invitation(self) -> str:
        """A pending invitation of a third org to the caller's email address (the owner's for anonymous and the
        engine)."""
        org = factories.make_org("Org D", admin=self.owner)
        return self._invitation(org, (self.caller or self.owner).email)[0]

    @cached_property
    def org_invitation(self) -> str:
        """A pending invitation of the cast's org to someone outside it."""
        return self._invitation(self.cast.org, f"invitee-{secrets.token_hex(4)}@example.com")[0]

    @cached_property
    def invitation_token(self) -> str:
        """The one-time token of a pending invitation of the cast's org, to an address without an account (one
        address per World: several Worlds may share the cast, and an address has one pending invitation)."""
        return self._invitation(self.cast.org, f"invitee-{secrets.token_hex(4)}@example.com")[1]

    @cached_property
    def owners_refresh_token(self) -> str:
        return token_pair_for_user(user=self.owner)["refresh"]

    @cached_property
    def owners_access_token(self) -> str:
        return token_pair_for_user(user=self.owner)["access"]

    @cached_property
    def callers_api_key(self) -> str:
        """The id of an API key of the caller (the owner's for anonymous and the engine)."""
        return str(factories.make_api_key(self.caller or self.owner, name="callers")[0].pk)

    @cached_property
    def owners_api_key(self) -> str:
        return str(factories.make_api_key(self.owner, name="owners")[0].pk)

    @cached_property
    def thread(self) -> str:
        """A chat thread of the deal (the editor's), for the internal contract."""
        return str(
            ChatThread.objects.create(deal_id=self.cast.deal.pk, user=self.user("editor"), agent_id="strategy").pk
        )

    @cached_property
    def callers_thread(self) -> str:
        """A chat thread of the deal that is the caller's own (the owner's for anonymous and the engine)."""
        user = self.caller or self.owner
        return str(ChatThread.objects.create(deal_id=self.cast.deal.pk, user=user, agent_id="strategy").pk)

    @cached_property
    def owners_thread(self) -> str:
        return str(ChatThread.objects.create(deal_id=self.cast.deal.pk, user=self.owner, agent_id="strategy").pk)

    def contract_headers(self, *, user: str = "editor", **extra: str) -> dict[str, str]:
        """The internal contract's trusted claims (the Authorization header is the principal's own)."""
        return {
            "HTTP_X_CONTRACT_VERSION": "2026-02",
            "HTTP_X_USER_ID": str(self.user(user).pk),
            "HTTP_X_PROJECT_ID": self.deal_id,
            "HTTP_X_THREAD_ID": self.thread,
            **extra,
        }
