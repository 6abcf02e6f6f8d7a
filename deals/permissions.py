"""Guards and the deal-scoping base view.

Every endpoint under a deal subclasses DealScopedAPIView and declares the minimum role per method
(`guards = {"GET": RequireViewer, "POST": RequireEditor}`); the deal and the caller's role are
resolved once per request by deals.access and kept on `view.deal_access`. There is no bypass: an
endpoint that must reach a deal without a role does not subclass this view.
"""

from __future__ import annotations

from typing import ClassVar

from rest_framework.permissions import BasePermission, IsAuthenticated
from rest_framework.views import APIView

from deals.access import DealAccessContext, require_role, resolve_deal_access, token_deal_claim
from deals.errors import RoleTooLow
from deals.models import DealRole


class DealRoleGuard(BasePermission):
    min_role: ClassVar[str] = DealRole.VIEWER

    def has_permission(self, request, view) -> bool:
        require_role(view.deal_access, self.min_role)
        return True


class RequireViewer(DealRoleGuard):
    min_role = DealRole.VIEWER


class RequireCommenter(DealRoleGuard):
    min_role = DealRole.COMMENTER


class RequireEditor(DealRoleGuard):
    min_role = DealRole.EDITOR


class RequireOwner(DealRoleGuard):
    min_role = DealRole.OWNER


class RequireSuperadmin(BasePermission):
    """Django `is_superuser`. Anonymous callers get 401 (DRF), others 403."""

    def has_permission(self, request, view) -> bool:
        if not getattr(request.user, "is_superuser", False):
            raise RoleTooLow("This endpoint is for superadmins only.")
        return True


class IsSuperadminOrEngine(BasePermission):
    """A superadmin's bearer token or an internal engine token. Anonymous callers get 401, others 403."""

    def has_permission(self, request, view) -> bool:
        user = request.user
        if not getattr(user, "is_authenticated", False):
            return False
        if getattr(user, "is_engine", False) or getattr(user, "is_superuser", False):
            return True
        raise RoleTooLow("Only superadmins and engines holding the internal token can mint deal-scoped tokens.")


class DealScopedAPIView(APIView):
    """Base view of every endpoint that acts on one deal (URL kwarg `deal_id`)."""

    guards: ClassVar[dict[str, type[DealRoleGuard]]] = {}

    def get_permissions(self):
        method = self.request.method if self.request is not None else "GET"
        if method in ("HEAD", "OPTIONS"):
            method = "GET"
        guard = self.guards.get(method, RequireOwner)
        return [IsAuthenticated(), guard()]

    @property
    def deal_access(self) -> DealAccessContext:
        cached = getattr(self, "_deal_access", None)
        if cached is None:
            cached = resolve_deal_access(
                user=self.request.user, deal_id=self.kwargs.get("deal_id"), token=self.request.auth
            )
            self._deal_access = cached
        return cached

    @property
    def token_deal_id(self) -> str | None:
        return token_deal_claim(self.request.auth)
