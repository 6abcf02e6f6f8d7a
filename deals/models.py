"""Orgs, their members, deals and the per-deal access grants.

Roles on a deal, highest first: owner (4) > editor (3) > commenter (2) > viewer (1).
"""

from __future__ import annotations

import logging
import uuid

from django.conf import settings
from django.contrib.auth.models import AbstractUser
from django.db import models
from django.utils import timezone
from rest_framework_simplejwt.token_blacklist.models import BlacklistedToken, OutstandingToken

logger = logging.getLogger(__name__)


class User(AbstractUser):
    """A person. UUID ids, since engines and the internal contract name users by UUID."""

    id = models.UUIDField(primary_key=True, default=uuid.uuid4, editable=False)
    email = models.EmailField("email address", blank=True, db_index=True)
    credentials_changed_at = models.DateTimeField(
        null=True,
        blank=True,
        editable=False,
        help_text="When the password last changed (whole seconds): access tokens issued before it are refused.",
    )

    class Meta(AbstractUser.Meta):
        swappable = "AUTH_USER_MODEL"

    @property
    def display_name(self) -> str:
        return self.get_full_name() or self.username

    # A new password (the admin's form, `manage.py changepassword`, create_user) ends every session the user
    # had: their refresh tokens are revoked once it is saved, and access tokens issued before it are refused
    # (credentials_changed_at, checked by deals.authentication and deals.access). Django marks a new password
    # in `_password` (set_password) and leaves it unmarked when it only rehashes the same password at login
    # (a hasher upgrade), which must not log the user out elsewhere.
    def set_unusable_password(self) -> None:
        super().set_unusable_password()
        self._password_replaced = True

    def save(self, *args, **kwargs) -> None:
        replaced = getattr(self, "_password", None) is not None or getattr(self, "_password_replaced", False)
        if replaced and not self._state.adding:
            # whole seconds, like a token's `iat`: a token issued in the same second still works
            self.credentials_changed_at = timezone.now().replace(microsecond=0)
            if kwargs.get("update_fields") is not None:
                kwargs["update_fields"] = {*kwargs["update_fields"], "credentials_changed_at"}
        super().save(*args, **kwargs)
        if replaced:
            self._password_replaced = False
            self.revoke_refresh_tokens()

    def revoke_refresh_tokens(self) -> int:
        """Blacklist every refresh token of the user that has not expired; returns how many were revoked.

        Called when the password changes (save). Access tokens are not tracked: those issued before the
        change are refused by their `iat` (credentials_changed_at); deactivating a user shuts them out at
        once (the access checks require an active user).
        """
        live = OutstandingToken.objects.filter(user=self, expires_at__gt=timezone.now(), blacklistedtoken__isnull=True)
        revoked = BlacklistedToken.objects.bulk_create(
            [BlacklistedToken(token=token) for token in live], ignore_conflicts=True
        )
        if revoked:
            logger.info("revoked %d refresh token(s) of user %s after a password change", len(revoked), self.pk)
        return len(revoked)


class OrgRole(models.TextChoices):
    MEMBER = "member", "Member"
    ADMIN = "admin", "Admin"


class DealRole(models.TextChoices):
    OWNER = "owner", "Owner"
    EDITOR = "editor", "Editor"
    COMMENTER = "commenter", "Commenter"
    VIEWER = "viewer", "Viewer"


ROLE_RANK: dict[str, int] = {
    DealRole.VIEWER: 1,
    DealRole.COMMENTER: 2,
    DealRole.EDITOR: 3,
    DealRole.OWNER: 4,
}


def role_rank(role: str | None) -> int:
    return ROLE_RANK.get(role or "", 0)


class Visibility(models.TextChoices):
    PRIVATE = "private", "Private (grants only)"
    ORG = "org", "Org (every org member can view)"


class MemoKind(models.TextChoices):
    """Which kind of memo a deal gets: each names a template of sections (canvas.memo.templates)."""

    ACQUISITION = "acquisition", "Acquisition memo"
    DEVELOPMENT = "development", "Development memo"
    REFINANCE = "refinance", "Refinance memo"


class DocumentState(models.TextChoices):
    DRAFT = "draft", "Draft"
    EDITING = "editing", "Editing"
    APPROVED = "approved", "Approved"


class Org(models.Model):
    id = models.UUIDField(primary_key=True, default=uuid.uuid4, editable=False)
    name = models.CharField(max_length=200)
    created_by = models.ForeignKey(
        settings.AUTH_USER_MODEL, null=True, blank=True, on_delete=models.SET_NULL, related_name="+"
    )
    created_at = models.DateTimeField(auto_now_add=True)
    updated_at = models.DateTimeField(auto_now=True)

    class Meta:
        ordering = ["name"]
        verbose_name = "org"

    def __str__(self) -> str:
        return self.name


class OrgMembership(models.Model):
    org = models.ForeignKey(Org, on_delete=models.CASCADE, related_name="memberships")
    user = models.ForeignKey(settings.AUTH_USER_MODEL, on_delete=models.CASCADE, related_name="org_memberships")
    role = models.CharField(max_length=16, choices=OrgRole.choices, default=OrgRole.MEMBER)
    created_at = models.DateTimeField(auto_now_add=True)
    updated_at = models.DateTimeField(auto_now=True)

    class Meta:
        constraints = [models.UniqueConstraint(fields=["org", "user"], name="uniq_org_membership")]
        indexes = [models.Index(fields=["user", "org"], name="orgmember_user_org")]
        ordering = ["created_at"]

    def __str__(self) -> str:
        return f"{self.user} in {self.org} ({self.role})"


class Deal(models.Model):
    id = models.UUIDField(primary_key=True, default=uuid.uuid4, editable=False)
    org = models.ForeignKey(Org, on_delete=models.CASCADE, related_name="deals")
    name = models.CharField(max_length=200)
    description = models.TextField(blank=True, default="")
    visibility = models.CharField(max_length=16, choices=Visibility.choices, default=Visibility.PRIVATE)
    template_key = models.CharField(max_length=64, default=MemoKind.ACQUISITION)
    collab_enabled = models.BooleanField(default=True)
    created_blank = models.BooleanField(default=False, help_text="Created through POST /api/canvas/blank.")
    created_by = models.ForeignKey(
        settings.AUTH_USER_MODEL, null=True, blank=True, on_delete=models.SET_NULL, related_name="+"
    )
    # A summary of the memo kept beside the deal so the dashboard lists deals without reading the
    # Store once per row. The Store stays the source of truth; the canvas services keep these in step.
    document_state = models.CharField(max_length=16, choices=DocumentState.choices, default=DocumentState.DRAFT)
    memo_version = models.PositiveIntegerField(default=0)
    sections_populated = models.PositiveIntegerField(default=0)
    sections_total = models.PositiveIntegerField(default=0)
    incomplete_delivery_blocked = models.BooleanField(default=False)
    # +1 on every write of a canvas node that is not a memo section (stored nodes and edges, suggestions,
    # comments, approval conditions): with memo_version it validates the engines' cached canvas context
    # (internal_api.context_cache) at no cost, since the access check reads this row anyway.
    nodes_version = models.PositiveBigIntegerField(default=0)
    created_at = models.DateTimeField(auto_now_add=True)
    updated_at = models.DateTimeField(auto_now=True)

    class Meta:
        ordering = ["-updated_at"]
        indexes = [
            models.Index(fields=["org", "visibility"], name="deal_org_visibility"),
            models.Index(fields=["-updated_at"], name="deal_updated"),
        ]

    def __str__(self) -> str:
        return self.name


class DealAccess(models.Model):
    deal = models.ForeignKey(Deal, on_delete=models.CASCADE, related_name="grants")
    user = models.ForeignKey(settings.AUTH_USER_MODEL, on_delete=models.CASCADE, related_name="deal_grants")
    role = models.CharField(max_length=16, choices=DealRole.choices)
    granted_by = models.ForeignKey(
        settings.AUTH_USER_MODEL, null=True, blank=True, on_delete=models.SET_NULL, related_name="+"
    )
    created_at = models.DateTimeField(auto_now_add=True)
    updated_at = models.DateTimeField(auto_now=True)

    class Meta:
        constraints = [models.UniqueConstraint(fields=["deal", "user"], name="uniq_deal_access")]
        indexes = [
            models.Index(fields=["user", "deal"], name="dealaccess_user_deal"),
            models.Index(fields=["deal", "role"], name="dealaccess_deal_role"),
        ]
        ordering = ["created_at"]
        verbose_name = "deal access grant"

    def __str__(self) -> str:
        return f"{self.user} {self.role} on {self.deal}"


class FileState(models.TextChoices):
    QUEUED = "queued", "Queued"
    PROCESSING = "processing", "Processing"
    READY = "ready", "Ready"
    FAILED = "failed", "Failed"


def document_upload_path(instance: Document, filename: str) -> str:
    return f"deals/{instance.deal_id}/documents/{instance.id}/{filename}"


class Document(models.Model):
    """A file of the deal (offering memorandum, underwriting model, market export...)."""

    id = models.UUIDField(primary_key=True, default=uuid.uuid4, editable=False)
    deal = models.ForeignKey(Deal, on_delete=models.CASCADE, related_name="documents")
    file = models.FileField(upload_to=document_upload_path, max_length=500)
    filename = models.CharField(max_length=255)
    content_type = models.CharField(max_length=127)
    kind = models.CharField(max_length=16, help_text="pdf, xlsx, docx, csv, txt or md (sniffed from the content)")
    size = models.PositiveBigIntegerField()
    sha256 = models.CharField(max_length=64)
    state = models.CharField(max_length=16, choices=FileState.choices, default=FileState.QUEUED)
    error = models.TextField(blank=True, default="")
    pages = models.PositiveIntegerField(null=True, blank=True)
    uploaded_by = models.ForeignKey(
        settings.AUTH_USER_MODEL, null=True, blank=True, on_delete=models.SET_NULL, related_name="+"
    )
    processing_started_at = models.DateTimeField(null=True, blank=True)
    processed_at = models.DateTimeField(null=True, blank=True)
    created_at = models.DateTimeField(auto_now_add=True)
    updated_at = models.DateTimeField(auto_now=True)

    class Meta:
        ordering = ["created_at", "pk"]
        indexes = [models.Index(fields=["deal", "state"], name="document_deal_state")]

    def __str__(self) -> str:
        return self.filename


class DocumentPage(models.Model):
    """Durable extracted text of one page (PDF page, sheet of a workbook, or a chunk of a text file).

    Tables are kept in the text as markdown pipe tables, so retrieval and drafting see them.
    """

    document = models.ForeignKey(Document, on_delete=models.CASCADE, related_name="page_texts")
    deal = models.ForeignKey(Deal, on_delete=models.CASCADE, related_name="+")
    page_number = models.PositiveIntegerField(help_text="1-based; for XLSX the sheet's position")
    label = models.CharField(max_length=255, blank=True, default="", help_text="e.g. the sheet name")
    text = models.TextField()

    class Meta:
        ordering = ["document", "page_number"]
        constraints = [models.UniqueConstraint(fields=["document", "page_number"], name="uniq_document_page")]
        indexes = [models.Index(fields=["deal", "document"], name="docpage_deal_document")]

    def __str__(self) -> str:
        return f"{self.document} p.{self.page_number}"


class ApiKeyScope(models.TextChoices):
    READ = "read", "Read (GET, HEAD and OPTIONS only)"
    WRITE = "write", "Write (everything its user may do)"


class ApiKey(models.Model):
    """A user's API key for an integration: `Authorization: Bearer dck_<prefix>_<secret>`.

    Only the public part (`prefix`, for the lookup) and a SHA-256 of the whole key are stored; the key
    itself is shown once, when it is created (deals.apikeys.services.api_key_create). A key acts as its
    user with that user's roles, capped by its scope; it stops working when revoked, expired, or when its
    user is deactivated (deals.authentication).
    """

    id = models.UUIDField(primary_key=True, default=uuid.uuid4, editable=False)
    user = models.ForeignKey(settings.AUTH_USER_MODEL, on_delete=models.CASCADE, related_name="api_keys")
    name = models.CharField(max_length=100, help_text="What the key is for, as its user named it.")
    prefix = models.CharField(
        max_length=16, unique=True, editable=False, help_text="The key's public start (dck_ and 8 characters)."
    )
    key_hash = models.CharField(max_length=64, editable=False, help_text="SHA-256 of the whole key (hex).")
    scope = models.CharField(max_length=8, choices=ApiKeyScope.choices)
    created_at = models.DateTimeField(auto_now_add=True)
    last_used_at = models.DateTimeField(
        null=True, blank=True, editable=False, help_text="Recorded at most once a minute (API_KEY_LAST_USED_SECONDS)."
    )
    expires_at = models.DateTimeField(null=True, blank=True, help_text="None: until revoked.")
    revoked_at = models.DateTimeField(null=True, blank=True, editable=False)

    class Meta:
        ordering = ["-created_at", "pk"]
        indexes = [models.Index(fields=["user", "revoked_at"], name="apikey_user_revoked")]
        verbose_name = "API key"

    def __str__(self) -> str:
        return f"{self.name} ({self.prefix}...)"

    @property
    def is_revoked(self) -> bool:
        return self.revoked_at is not None


class InvitationStatus(models.TextChoices):
    PENDING = "pending", "Pending"
    ACCEPTED = "accepted", "Accepted"
    DECLINED = "declined", "Declined"
    REVOKED = "revoked", "Revoked"
    EXPIRED = "expired", "Expired (replaced by a new invitation)"


class Invitation(models.Model):
    """An invitation to join an org, sent to an email address.

    The one-time token of the email is stored only as its SHA-256 (`token_hash`): it is 32 random bytes,
    so a fast hash suffices, and a leaked table lets nobody accept. A pending invitation past `expires_at`
    is dead; it reads as `expired` and is replaced when the same address is invited again.
    """

    id = models.UUIDField(primary_key=True, default=uuid.uuid4, editable=False)
    org = models.ForeignKey(Org, on_delete=models.CASCADE, related_name="invitations")
    email = models.EmailField(help_text="Lower-cased; an account whose email matches (any case) may accept.")
    role = models.CharField(max_length=16, choices=OrgRole.choices, default=OrgRole.MEMBER)
    token_hash = models.CharField(max_length=64, unique=True, editable=False)
    status = models.CharField(max_length=16, choices=InvitationStatus.choices, default=InvitationStatus.PENDING)
    invited_by = models.ForeignKey(
        settings.AUTH_USER_MODEL, null=True, blank=True, on_delete=models.SET_NULL, related_name="+"
    )
    responded_by = models.ForeignKey(
        settings.AUTH_USER_MODEL,
        null=True,
        blank=True,
        on_delete=models.SET_NULL,
        related_name="+",
        help_text="Who accepted or declined it (the new account, for an invitation accepted with its token).",
    )
    created_at = models.DateTimeField(auto_now_add=True)
    expires_at = models.DateTimeField()
    responded_at = models.DateTimeField(null=True, blank=True, help_text="When it was accepted, declined or revoked.")

    class Meta:
        ordering = ["-created_at", "pk"]
        constraints = [
            models.UniqueConstraint(
                fields=["org", "email"],
                condition=models.Q(status="pending"),
                name="uniq_pending_invitation",
            )
        ]
        indexes = [models.Index(fields=["email", "status"], name="invitation_email_status")]

    def __str__(self) -> str:
        return f"{self.email} to {self.org} ({self.status})"

    @property
    def is_expired(self) -> bool:
        return self.expires_at <= timezone.now()

    @property
    def shown_status(self) -> str:
        """The status as the API shows it: a pending invitation past its expiry is `expired`."""
        if self.status == InvitationStatus.PENDING and self.is_expired:
            return InvitationStatus.EXPIRED
        return self.status


class OrgWebhookSecret(models.Model):
    """The secret an org's completion webhooks are signed with (HMAC-SHA256, deals.webhooks). Signing needs the
    secret itself, so it is encrypted at rest (canvas_project.secretbox), never hashed. It is shown once, by the
    answer (or admin page) that creates it; rotating replaces it at once."""

    org = models.OneToOneField(Org, on_delete=models.CASCADE, primary_key=True, related_name="webhook_secret")
    sealed = models.TextField(editable=False, help_text="The secret, encrypted (Fernet under SECRETS_ENCRYPTION_KEY).")
    prefix = models.CharField(max_length=16, editable=False, help_text="Its first characters, to tell secrets apart.")
    created_by = models.ForeignKey(
        settings.AUTH_USER_MODEL, null=True, blank=True, on_delete=models.SET_NULL, related_name="+"
    )
    created_at = models.DateTimeField(default=timezone.now, editable=False)

    class Meta:
        verbose_name = "org webhook secret"

    def __str__(self) -> str:
        return f"{self.prefix}... ({self.org})"
