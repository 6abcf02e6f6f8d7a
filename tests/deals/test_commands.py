"""manage.py create_user and seed_demo."""

from __future__ import annotations

import io

import pytest
from django.core.management import CommandError, call_command

from deals.models import Deal, DealAccess, OrgMembership, User


def test_create_user_in_an_org(db):
    out = io.StringIO()
    call_command(
        "create_user",
        "ana",
        "--email",
        "ana@example.com",
        "--password",
        "s3cret-pass",
        "--org",
        "Acme RE",
        "--org-role",
        "admin",
        stdout=out,
    )
    user = User.objects.get(username="ana")
    assert user.check_password("s3cret-pass") and not user.is_superuser
    assert OrgMembership.objects.get(user=user).org.name == "Acme RE"
    assert "Created user ana" in out.getvalue()


def test_create_superuser_without_password(db):
    call_command("create_user", "root2", "--no-password", "--superuser", stdout=io.StringIO())
    user = User.objects.get(username="root2")
    assert user.is_superuser and user.is_staff and not user.has_usable_password()


def test_create_user_refuses_a_taken_username(db):
    call_command("create_user", "bo", "--no-password", stdout=io.StringIO())
    with pytest.raises(CommandError, match="already exists"):
        call_command("create_user", "bo", "--no-password", stdout=io.StringIO())


def test_create_user_needs_a_password_when_not_interactive(db, monkeypatch):
    monkeypatch.setattr("sys.stdin", io.StringIO())
    with pytest.raises(CommandError, match="--password"):
        call_command("create_user", "cy", stdout=io.StringIO())


def test_seed_demo_is_idempotent_and_prints_a_working_token(db, client):
    out = io.StringIO()
    call_command("seed_demo", stdout=out)
    call_command("seed_demo", stdout=io.StringIO())
    deal = Deal.objects.get()
    roles = dict(DealAccess.objects.filter(deal=deal).values_list("user__username", "role"))
    assert roles == {
        "demo-owner": "owner",
        "demo-editor": "editor",
        "demo-commenter": "commenter",
        "demo-viewer": "viewer",
    }
    assert User.objects.get(username="demo-superadmin").is_superuser
    token = [line.strip() for line in out.getvalue().splitlines() if line.strip().startswith("eyJ")][0]
    response = client.get(f"/api/deals/{deal.pk}", HTTP_AUTHORIZATION=f"Bearer {token}")
    assert response.status_code == 200 and response.json()["user_role"] == "owner"
