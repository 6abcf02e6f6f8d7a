"""Errors of the deals app, each with a stable code."""

from canvas_project.errors import ConflictError, NotFoundError, PermissionDeniedError


class DealNotFound(NotFoundError):
    code = "deal_not_found"
    default_message = "Deal not found."


class OrgNotFound(NotFoundError):
    code = "org_not_found"
    default_message = "Org not found."


class GrantNotFound(NotFoundError):
    code = "grant_not_found"
    default_message = "This user has no grant on the deal."


class MemberNotFound(NotFoundError):
    code = "member_not_found"
    default_message = "This user is not a member of the org."


class NoOrg(PermissionDeniedError):
    code = "no_org"
    default_message = "You belong to no org; ask an org admin to add you, or create an org first."


class RoleTooLow(PermissionDeniedError):
    code = "role_too_low"


class LastOwner(ConflictError):
    code = "last_owner"
    default_message = "The last owner of a deal cannot be removed or demoted; make someone else owner first."


class LastOrgAdmin(ConflictError):
    code = "last_org_admin"
    default_message = "The last admin of an org cannot be removed; make someone else admin first."


class AlreadyExists(ConflictError):
    code = "already_exists"
