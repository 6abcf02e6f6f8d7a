"""The one deal-scoped base viewset every endpoint under a deal is built on, and the router they share.

`DealScopedViewSet` resolves the deal of the URL (`deal_id`) and the caller's role on it once per
request (deals.access: one SQL query) and checks the minimum role its action declares:

    class CommentViewSet(DealScopedViewSet):
        minimum_roles = {"list": DealRole.VIEWER, "create": DealRole.COMMENTER, "resolve": DealRole.COMMENTER}

Every action must declare one (a missing entry fails at import), and subclasses cannot change how the
deal is resolved or the role checked: overriding the scoping methods raises TypeError at class
creation. An unknown deal, a malformed id, a deal of another org or one the caller cannot see is 404;
a role below the minimum is 403. There is no bypass: an endpoint that must reach a deal without a
role is not a DealScopedViewSet (grep `dangerously_` for any exception, there is none today).
"""

from __future__ import annotations

from typing import ClassVar

from rest_framework import viewsets
from rest_framework.permissions import BasePermission, IsAuthenticated
from rest_framework.routers import SimpleRouter

from deals.access import DealAccessContext, require_role, resolve_deal_access, token_deal_claim
from deals.models import DealRole

DEAL_ID = r"(?P<deal_id>[^/]+)"
# the scoping methods a subclass may not override
SEALED = ("initial", "get_permissions", "check_permissions", "deal_access", "token_deal_id")
STANDARD_ACTIONS = ("list", "create", "retrieve", "update", "partial_update", "destroy")


class _MinimumRole(BasePermission):
    def __init__(self, minimum: str) -> None:
        self.minimum = minimum

    def has_permission(self, request, view) -> bool:
        require_role(view.deal_access, self.minimum)
        return True


def _actions_of(cls) -> set[str]:
    names = {name for name in STANDARD_ACTIONS if callable(getattr(cls, name, None))}
    return names | {extra.__name__ for extra in cls.get_extra_actions()}


class DealScopedViewSet(viewsets.ViewSet):
    """Base of every viewset under /api/canvas/{deal_id} and /api/deals/{deal_id}. Sealed (see module)."""

    minimum_roles: ClassVar[dict[str, str]] = {}
    # Actions that may authenticate with the token alone (no user row): deals.access checks in its one
    # query that the user is active and the token not older than their last password change.
    stateless_user_actions: ClassVar[tuple[str, ...]] = ()
    lookup_value_regex = "[^/]+"

    def __init_subclass__(cls, **kwargs) -> None:
        super().__init_subclass__(**kwargs)
        overridden = [name for name in SEALED if name in cls.__dict__]
        if overridden:
            raise TypeError(f"{cls.__name__} may not override the deal scoping ({', '.join(overridden)})")
        undeclared = sorted(_actions_of(cls) - set(cls.minimum_roles))
        if undeclared:
            raise TypeError(f"{cls.__name__} declares no minimum role for: {', '.join(undeclared)}")
        unknown = [role for role in cls.minimum_roles.values() if role not in DealRole.values]
        if unknown:
            raise TypeError(f"{cls.__name__}: not roles: {unknown}")

    @property
    def jwt_stateless_user(self) -> bool:
        return getattr(self, "action", None) in self.stateless_user_actions

    def get_permissions(self):
        action = getattr(self, "action", None) or ""
        if action == "metadata":  # OPTIONS rides on the route's GET (DRF names its action `metadata`)
            action = (getattr(self, "action_map", None) or {}).get("get", "")
        return [IsAuthenticated(), _MinimumRole(self.minimum_roles.get(action, DealRole.OWNER))]

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


class ApiRouter(SimpleRouter):
    """DRF's router without trailing slashes (the API's paths have none)."""

    def __init__(self) -> None:
        super().__init__(trailing_slash=False)
