"""The deal-scoped base viewset is sealed: every action declares its minimum role, and no subclass can
change how the deal and the caller's role are resolved."""

from __future__ import annotations

import pytest
from rest_framework.decorators import action

from deals.models import DealRole
from deals.viewsets import DealScopedViewSet
from tests.url_inventory import served_patterns


def test_it_refuses_a_subclass_that_overrides_the_scoping():
    with pytest.raises(TypeError, match="may not override the deal scoping"):

        class Sneaky(DealScopedViewSet):
            minimum_roles = {"list": DealRole.VIEWER}

            def list(self, request, deal_id):
                return None

            def get_permissions(self):
                return []


def test_it_refuses_an_action_without_a_minimum_role():
    with pytest.raises(TypeError, match="declares no minimum role for: publish"):

        class Forgetful(DealScopedViewSet):
            minimum_roles = {"list": DealRole.VIEWER}

            def list(self, request, deal_id):
                return None

            @action(detail=False, methods=["post"])
            def publish(self, request, deal_id):
                return None


def test_it_refuses_a_role_that_does_not_exist():
    with pytest.raises(TypeError, match="not roles"):

        class Confused(DealScopedViewSet):
            minimum_roles = {"list": "admin"}

            def list(self, request, deal_id):
                return None


def test_every_served_deal_action_declares_its_minimum_role():
    seen = 0
    for pattern in served_patterns():
        cls = pattern.view_class
        if pattern.actions is None or cls is None or not issubclass(cls, DealScopedViewSet):
            continue
        assert "{deal_id}" in pattern.route or "(?P<deal_id>" in pattern.route, pattern.route
        for method, name in pattern.actions:
            assert name in cls.minimum_roles, (pattern.route, method, name)
            seen += 1
    assert seen >= 13  # the memo's viewsets alone serve that many


def test_it_refuses_a_second_method_of_an_action_without_a_minimum_role():
    with pytest.raises(TypeError, match="declares no minimum role for: unlock"):

        class HalfDeclared(DealScopedViewSet):
            minimum_roles = {"lock": DealRole.EDITOR}

            @action(detail=True, methods=["post"])
            def lock(self, request, deal_id, pk=None):
                return None

            @lock.mapping.delete
            def unlock(self, request, deal_id, pk=None):
                return None


def test_it_refuses_an_action_named_after_an_http_method():
    with pytest.raises(TypeError, match="named after HTTP methods: trace"):

        class Tracing(DealScopedViewSet):
            minimum_roles = {"trace": DealRole.VIEWER}

            @action(detail=True, methods=["get"])
            def trace(self, request, deal_id, pk=None):
                return None


def test_options_rides_on_the_routes_get_role(cast):
    # DRF names the OPTIONS action `metadata`; the base checks it with the role of the route's GET
    versions = f"/api/canvas/{cast.deal.pk}/versions"
    assert cast.client("viewer").options(versions).status_code == 200
    assert cast.client("outsider").options(versions).status_code == 404
    save = f"/api/canvas/{cast.deal.pk}/save"  # no GET on this route: the owner's
    assert cast.client("editor").options(save).status_code == 403
    assert cast.client("owner").options(save).status_code == 200
