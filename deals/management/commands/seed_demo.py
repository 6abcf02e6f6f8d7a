"""manage.py seed_demo: a demo org with one user per role, a demo deal and a superadmin.

Idempotent: running it again resets the demo passwords and grants and prints the same cast.
"""

from __future__ import annotations

import os

from django.conf import settings
from django.core.management.base import BaseCommand
from django.db import transaction

from deals.models import Deal, DealAccess, DealRole, Org, OrgMembership, OrgRole, User, Visibility
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

    @transaction.atomic
    def handle(self, *args, **opts):
        if settings.PRODUCTION:
            self.stderr.write("seed_demo refuses to run with DJANGO_ENV=production.")
            raise SystemExit(1)
        password = opts["password"]
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
        token = token_pair_for_user(user=users["owner"])["access"]

        out = self.stdout
        out.write("")
        out.write(self.style.SUCCESS("Demo data ready"))
        out.write(f"  org:  {org.name} ({org.pk})")
        out.write(f"  deal: {deal.name} ({deal.pk})")
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

    def _user(self, username: str, password: str, *, first_name: str, superuser: bool = False) -> User:
        user, _ = User.objects.get_or_create(username=username)
        user.first_name = first_name
        user.email = f"{username}@demo.example"
        user.is_superuser = user.is_staff = superuser
        user.is_active = True
        user.set_password(password)
        user.save()
        return user
