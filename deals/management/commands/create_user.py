"""manage.py create_user: create a user for operators, optionally in an org."""

from __future__ import annotations

import getpass
import sys
import uuid

from django.core.management.base import BaseCommand, CommandError
from django.db import transaction

from canvas_project.errors import DomainError
from deals import services
from deals.models import Org, OrgMembership, OrgRole


class Command(BaseCommand):
    help = "Create a user; optionally add them to an org (by id or name) and make them a superadmin."

    def add_arguments(self, parser):
        parser.add_argument("username")
        parser.add_argument("--email", default="")
        parser.add_argument("--password", help="Omit to be prompted; --no-password for an unusable one.")
        parser.add_argument("--no-password", action="store_true")
        parser.add_argument("--first-name", default="")
        parser.add_argument("--last-name", default="")
        parser.add_argument("--superuser", action="store_true", help="Make the user a superadmin.")
        parser.add_argument("--org", help="Org id or exact name; created when no org has that name.")
        parser.add_argument("--org-role", choices=[r.value for r in OrgRole], default=OrgRole.MEMBER)

    def handle(self, *args, **opts):
        password = opts["password"]
        if password is None and not opts["no_password"]:
            if not self.stdin_isatty():
                raise CommandError("Give --password or --no-password when not running interactively.")
            password = getpass.getpass("Password: ")
        try:
            with transaction.atomic():
                user = services.user_create(
                    username=opts["username"],
                    password=password,
                    email=opts["email"],
                    first_name=opts["first_name"],
                    last_name=opts["last_name"],
                    is_superuser=opts["superuser"],
                )
                org_note = ""
                if opts["org"]:
                    org = self._org(opts["org"], user)
                    OrgMembership.objects.update_or_create(org=org, user=user, defaults={"role": opts["org_role"]})
                    org_note = f" in org {org.name} ({opts['org_role']})"
        except DomainError as exc:
            raise CommandError(exc.message) from exc
        self.stdout.write(self.style.SUCCESS(f"Created user {user.username} id={user.pk}{org_note}."))

    def _org(self, ref: str, user) -> Org:
        org = Org.objects.filter(pk=ref).first() if _is_uuid(ref) else None
        org = org or Org.objects.filter(name=ref).first()
        return org or Org.objects.create(name=ref, created_by=user)

    def stdin_isatty(self) -> bool:

        return sys.stdin.isatty()


def _is_uuid(value: str) -> bool:

    try:
        uuid.UUID(value)
    except ValueError:
        return False
    return True
