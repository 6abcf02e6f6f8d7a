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
