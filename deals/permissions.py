"""Permissions of the endpoints that are not under a deal: superadmins, and superadmins or engines.

Endpoints under a deal are scoped by deals.viewsets.DealScopedViewSet (the deal and the caller's role
resolved once, a minimum role per action).
"""

from __future__ import annotations

from rest_framework.permissions import BasePermission

from deals.errors import RoleTooLow


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
