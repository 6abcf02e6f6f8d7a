"""The role matrix, declared once: every URL pattern and method the project serves, times eleven principals,
with the status each must get.

Principals: anonymous; outsider (a user in no org); other_org (a member of another org); the deal's
viewer, commenter, editor and owner; superadmin (is_superuser, in no org: not implicitly a deal member);
internal (an AI engine with `Authorization: Bearer <INTERNAL_ENGINE_TOKEN>`); and the API-key principals
editor_read_key and editor_write_key (the editor's keys, `Authorization: Bearer dck_...`). An entry declares
the first nine; the key principals' statuses are derived from their user's (key_expectation), so an entry
added later covers them without a word.

Each entry names a pattern (its URL name, or its route when it has none) and a method, the statuses,
and how to build a valid request on a fresh cast, so the status reflects authorization and not
validation. A pattern or method without an entry fails `test_every_served_pattern_and_method_has_an_entry`,
and so does an entry that matches nothing any more. Methods come from the views (tests/url_inventory.py;
HEAD and OPTIONS ride on GET's guards and are not listed); function views declare none, so the table's
entries are their methods and every other method must answer 405. NOT_IN_MATRIX, below the table, lists
what is left out and why.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass

import pytest
from django.core.files.uploadedfile import SimpleUploadedFile

from canvas.models import RunStatus
from tests import factories
from tests.conftest import ROLES, expected_status
from tests.role_matrix_world import KEY_PRINCIPALS, RISKS, Call, World
from tests.url_inventory import PROBED_METHODS, ServedPattern, served_patterns

DECLARED = ("anonymous", "outsider", "other_org", "viewer", "commenter", "editor", "owner", "superadmin", "internal")
PRINCIPALS = (*DECLARED, *KEY_PRINCIPALS)
USERS = tuple(p for p in DECLARED if p not in ("anonymous", "internal"))
SAFE_METHODS = ("GET", "HEAD", "OPTIONS")


# --- notation -------------------------------------------------------------------------------------------
def _complete(statuses: dict[str, int]) -> dict[str, int]:
    unknown = set(statuses) - set(DECLARED)
    if unknown:
        raise ValueError(f"not declared principals: {sorted(unknown)}")
    return {p: statuses[p] for p in DECLARED if p in statuses}


def key_expectation(statuses: dict[str, int], *, principal: str, method: str, person_only: bool) -> int:
    """What an API-key principal gets, from what its user gets (deals.authentication):

    - where the user is 401 (the internal contract takes only the engine token) a key is no better: 401;
    - where anonymous callers pass (public endpoints ignore the Authorization header): as its user;
    - where only a person's JWT is taken (keys and deal tokens are minted there): 403;
    - a read key on any method but GET, HEAD and OPTIONS: 403, before the view runs (so also where its
      user would get 404 or 422);
    - otherwise exactly as its user, whose roles it carries.
    """
    user, scope = KEY_PRINCIPALS[principal]
    own = statuses[user]
    if own == 401 or statuses["anonymous"] != 401:
        return own
    if person_only or (scope == "read" and method not in SAFE_METHODS):
        return 403
    return own


def deal_scoped(minimum: str, ok: int = 200, **overrides: int) -> dict[str, int]:
    """A deal endpoint behind a minimum role (tests/conftest.py `expected_status`): anonymous 401, strangers
    and superadmins 404, members below the minimum 403, the rest `ok`. The engine token is no user's
    bearer token: 401."""
    statuses = {role: expected_status(role, minimum=minimum, ok=ok) for role in ROLES}
    return _complete({**statuses, "internal": 401, **overrides})


def users(ok: int, **overrides: int) -> dict[str, int]:
    """Any signed-in user gets `ok`; anonymous and the engine token 401."""
    return _complete({"anonymous": 401, "internal": 401, **dict.fromkeys(USERS, ok), **overrides})


def everyone(status: int) -> dict[str, int]:
    return _complete(dict.fromkeys(DECLARED, status))


def superadmin_only(ok: int) -> dict[str, int]:
    return users(403, superadmin=ok)


def engine_only(ok: int) -> dict[str, int]:
    """The internal contract: only the engine token; a user's JWT is an invalid engine token (401)."""
    return _complete({**dict.fromkeys(DECLARED, 401), "internal": ok})


def org_a(minimum: str, ok: int) -> dict[str, int]:
    """An endpoint of the cast's org, where the owner is the org admin and editor, commenter and viewer are
    members: non-members 404, members below `minimum` ("member" or "admin") 403."""
    member = ok if minimum == "member" else 403
    return users(404, viewer=member, commenter=member, editor=member, owner=ok)


@dataclass(frozen=True)
class Entry:
    pattern: str
    method: str
    expect: dict[str, int]
    build: Callable[[World], Call]
    case: str = ""
    given: tuple[str, ...] = ()  # World objects built before the request (the memo written, approved...)
    # The SSE views hand their database connection back to the pool (canvas_project.sse.responses.released);
    # inside a test transaction that would drop the test's data, so these entries run in transactional tests.
    transactional: bool = False

    @property
    def id(self) -> str:
        return f"{self.pattern}:{self.method}" + (f"[{self.case}]" if self.case else "")


def at(
    pattern: str,
    method: str,
    expect: dict[str, int],
    build: Callable[[World], Call],
    *,
    case: str = "",
    given: tuple[str, ...] = (),
    transactional: bool = False,
    person_only: bool = False,
) -> Entry:
    """An entry; `person_only` marks endpoints that take a person's JWT and refuse API keys (403)."""
    keys = {p: key_expectation(expect, principal=p, method=method, person_only=person_only) for p in KEY_PRINCIPALS}
    return Entry(pattern, method, {**expect, **keys}, build, case, given, transactional)


def _upload(w: World) -> Call:
    w.media_root  # noqa: B018
    return Call(
        w.deal_path("documents"),
        {"file": SimpleUploadedFile("notes.txt", b"Purchase price: $1,000,000\n")},
        format="multipart",
    )


CHAT = {"message": "What is the going-in cap rate?", "agent_id": "strategy"}
MUTATIONS = {
    "agent_id": "strategy",
    "mutations": [{"op": "create_node", "node": {"type": "strategy_item", "title": "Refinance"}}],
}

# --- the table ------------------------------------------------------------------------------------------
TABLE: list[Entry] = [
    # service
    at("health", "GET", everyone(200), lambda w: Call("/api/health")),
    # Prometheus: METRICS_TOKEN (unset in tests) or a superadmin's *session*; bearer tokens do not count
    at("metrics", "GET", everyone(401), lambda w: Call("/metrics")),
    # public documents; an invalid bearer token (the engine's, not a JWT) is refused as anywhere in DRF
    at("schema", "GET", users(200, anonymous=200), lambda w: Call("/api/schema/")),
    at("swagger-ui", "GET", users(200, anonymous=200), lambda w: Call("/api/docs/")),
    at("redoc", "GET", users(200, anonymous=200), lambda w: Call("/api/redoc/")),
    # the Django admin: a bearer token, even a superadmin's, is no admin session (the login page is next)
    at("admin:index", "GET", everyone(302), lambda w: Call("/admin/")),
    at("admin:superadmin_purge", "GET", everyone(302), lambda w: Call("/admin/superadmin/purgeaudit/purge/")),
    # anything else under /api/ is a JSON 404, whoever asks and however
    *[at("^api/", method, everyone(404), lambda w: Call("/api/no-such-endpoint")) for method in PROBED_METHODS],
    # auth: the public token endpoints ignore the Authorization header
    at(
        "auth-token",
        "POST",
        everyone(200),
        lambda w: Call("/api/auth/token", {"username": "owner", "password": factories.PASSWORD}),
    ),
    at(
        "auth-token-refresh",
        "POST",
        everyone(200),
        lambda w: Call("/api/auth/token/refresh", {"refresh": w.owners_refresh_token}),
    ),
    at(
        "auth-token-verify",
        "POST",
        everyone(200),
        lambda w: Call("/api/auth/token/verify", {"token": w.owners_access_token}),
    ),
    at(
        "auth-token-deal",
        "POST",
        {**superadmin_only(201), "internal": 201},
        lambda w: Call("/api/auth/token/deal", {"user_id": str(w.user("viewer").pk), "deal_id": w.deal_id}),
        person_only=True,
    ),
    # API keys: each person manages their own with their JWT; a key (even a write key) is refused, 403
    at("api-keys-list", "GET", users(200), lambda w: Call("/api/auth/api-keys"), person_only=True),
    at(
        "api-keys-list",
        "POST",
        users(201),
        lambda w: Call("/api/auth/api-keys", {"name": "Warehouse sync", "scope": "read"}),
        person_only=True,
    ),
    at(
        "api-keys-detail",
        "DELETE",
        users(204),
        lambda w: Call(f"/api/auth/api-keys/{w.callers_api_key}"),
        person_only=True,
    ),
    # someone else's key is 404, as an unknown one: nobody learns it exists
    at(
        "api-keys-detail",
        "DELETE",
        users(404, owner=204),
        lambda w: Call(f"/api/auth/api-keys/{w.owners_api_key}"),
        case="owners_key",
        person_only=True,
    ),
    # a stream ticket: what the deal's streams need (viewer and up); a superadmin is no member (404), the engine
    # token is no user (401)
    at(
        "auth-stream-ticket",
        "POST",
        deal_scoped("viewer", 201),
        lambda w: Call("/api/auth/stream-ticket", {"deal_id": w.deal_id}),
    ),
    # orgs
    at("orgs-list", "GET", users(200), lambda w: Call("/api/orgs")),
    at("orgs-list", "POST", users(201), lambda w: Call("/api/orgs", {"name": "New Fund"})),
    at("org-members-list", "GET", org_a("member", 200), lambda w: Call(f"/api/orgs/{w.cast.org.pk}/members")),
    # adding a member directly: only someone who already shares an org with the caller (the owner's colleague)
    at(
        "org-members-list",
        "POST",
        org_a("admin", 201),
        lambda w: Call(f"/api/orgs/{w.cast.org.pk}/members", {"user_id": w.colleague, "role": "member"}),
    ),
    at(
        "org-members-detail",
        "DELETE",
        org_a("admin", 204),
        lambda w: Call(f"/api/orgs/{w.cast.org.pk}/members/{w.user('member').pk}"),
    ),
    at(
        "org-members-detail",
        "PATCH",
        org_a("admin", 200),
        lambda w: Call(f"/api/orgs/{w.cast.org.pk}/members/{w.user('member').pk}", {"role": "admin"}),
    ),
    # invitations: an org's (its admins), the caller's own (to their email address), and the public accept
    at("org-invitations-list", "GET", org_a("admin", 200), lambda w: Call(f"/api/orgs/{w.cast.org.pk}/invitations")),
    at(
        "org-invitations-list",
        "POST",
        org_a("admin", 201),
        lambda w: Call(f"/api/orgs/{w.cast.org.pk}/invitations", {"email": "invitee@example.com", "role": "member"}),
    ),
    at(
        "org-invitations-detail",
        "DELETE",
        org_a("admin", 204),
        lambda w: Call(f"/api/orgs/{w.cast.org.pk}/invitations/{w.org_invitation}"),
    ),
    # an org's webhook signing secret: its admins and superadmins, with a person's JWT (a key mints no secret)
    at(
        "org-webhook-secret-list",
        "GET",
        org_a("admin", 200) | {"superadmin": 200},
        lambda w: Call(f"/api/orgs/{w.cast.org.pk}/webhook-secret"),
        person_only=True,
    ),
    at(
        "org-webhook-secret-list",
        "POST",
        org_a("admin", 201) | {"superadmin": 201},
        lambda w: Call(f"/api/orgs/{w.cast.org.pk}/webhook-secret"),
        person_only=True,
    ),
    at("me-invitations-list", "GET", users(200), lambda w: Call("/api/me/invitations")),
    at(
        "me-invitations-accept",
        "POST",
        users(200),
        lambda w: Call(f"/api/me/invitations/{w.callers_invitation}/accept"),
        person_only=True,
    ),
    at(
        "me-invitations-decline",
        "POST",
        users(204),
        lambda w: Call(f"/api/me/invitations/{w.callers_invitation}/decline"),
        person_only=True,
    ),
    # public: the one-time token is the credential; any Authorization header is ignored
    at(
        "invitations-accept",
        "POST",
        everyone(201),
        lambda w: Call(
            "/api/invitations/accept",
            {"token": w.invitation_token, "username": "invitee", "password": "a-fresh-pass-5678"},
        ),
    ),
    # the caller's own account
    at("me-list", "GET", users(200), lambda w: Call("/api/me")),
    at(
        "me-password",
        "POST",
        users(200),
        lambda w: Call(
            "/api/me/password", {"current_password": factories.PASSWORD, "new_password": "a-fresh-pass-5678"}
        ),
        person_only=True,
    ),
    # deals
    at("dashboard-memos-list", "GET", users(200), lambda w: Call("/api/dashboard/memos")),
    # creating in a named org: its members create (201); for anyone else that org is not found (404)
    at(
        "canvas-blank-list",
        "POST",
        users(201, outsider=404, other_org=404, superadmin=404),
        lambda w: Call("/api/canvas/blank", {"deal_name": "Harbor Point", "org_id": str(w.cast.org.pk)}),
    ),
    at(
        "deals-list",
        "POST",
        users(201, outsider=404, other_org=404, superadmin=404),
        lambda w: Call("/api/deals", {"name": "Harbor Point", "org_id": str(w.cast.org.pk)}),
    ),
    at(
        "deals-batch-delete",
        "POST",
        deal_scoped("owner"),
        lambda w: Call("/api/deals/batch_delete", {"deal_ids": [w.deal_id]}),
    ),
    at("deal-detail", "GET", deal_scoped("viewer"), lambda w: Call(w.deal_path())),
    at("deal-detail", "PATCH", deal_scoped("editor"), lambda w: Call(w.deal_path(), {"name": "Renamed"})),
    at("deal-detail", "DELETE", deal_scoped("owner", 204), lambda w: Call(w.deal_path())),
    at("deal-access-list", "GET", deal_scoped("owner"), lambda w: Call(w.deal_path("access"))),
    at(
        "deal-access-list",
        "POST",
        deal_scoped("owner", 201),
        lambda w: Call(w.deal_path("access"), {"user_id": str(w.user("member").pk), "role": "viewer"}),
    ),
    at(
        "deal-access-detail",
        "PATCH",
        deal_scoped("owner"),
        lambda w: Call(w.deal_path(f"access/{w.user('viewer').pk}"), {"role": "editor"}),
    ),
    at(
        "deal-access-detail",
        "DELETE",
        deal_scoped("owner", 204),
        lambda w: Call(w.deal_path(f"access/{w.user('commenter').pk}")),
    ),
    # documents
    at("deal-documents-list", "GET", deal_scoped("viewer"), lambda w: Call(w.deal_path("documents"))),
    at("deal-documents-list", "POST", deal_scoped("editor", 201), _upload),
    at("deal-documents-detail", "GET", deal_scoped("viewer"), lambda w: Call(w.deal_path(f"documents/{w.document}"))),
    at(
        "deal-documents-detail",
        "DELETE",
        deal_scoped("editor", 204),
        lambda w: Call(w.deal_path(f"documents/{w.document}")),
    ),
    at(
        "deal-documents-download",
        "GET",
        deal_scoped("viewer"),
        lambda w: Call(w.deal_path(f"documents/{w.document}/download")),
    ),
    at(
        "deal-documents-pages",
        "GET",
        deal_scoped("viewer"),
        lambda w: Call(w.deal_path(f"documents/{w.document}/pages")),
    ),
    at(
        "deal-documents-figures",
        "GET",
        deal_scoped("viewer"),
        lambda w: Call(w.deal_path(f"documents/{w.document}/figures")),
    ),
    at(
        "deal-documents-figure",
        "GET",
        deal_scoped("viewer"),
        lambda w: Call(w.deal_path(f"documents/{w.document}/figures/{w.figure}")),
    ),
    # queued on commit, which a test transaction never reaches
    at(
        "deal-documents-reingest",
        "POST",
        deal_scoped("editor", 202),
        lambda w: Call(w.deal_path(f"documents/{w.document}/reingest")),
    ),
    at("deal-intel", "GET", deal_scoped("viewer"), lambda w: Call(w.deal_path("intel"))),
    at("deal-intake", "GET", deal_scoped("viewer"), lambda w: Call(w.deal_path("intake"))),
    # canvas: catalogues
    at("canvas-templates-list", "GET", users(200), lambda w: Call("/api/canvas/templates")),
    at("canvas-prompts-list", "GET", users(200), lambda w: Call("/api/canvas/prompts")),
    # canvas: session and writes
    at("canvas-detail", "GET", deal_scoped("viewer"), lambda w: Call(w.canvas_path())),
    at("canvas-refresh", "POST", deal_scoped("editor"), lambda w: Call(w.canvas_path("refresh"))),
    at(
        "canvas-save",
        "POST",
        deal_scoped("editor"),
        lambda w: Call(w.canvas_path("save"), {"content": "## Risks and Mitigants\n\nRates."}),
    ),
    at(
        "canvas-sections-detail",
        "PUT",
        deal_scoped("editor"),
        lambda w: Call(w.canvas_path("sections/risks"), {"markdown": "Rates may fall."}),
    ),
    # lifecycle
    at("canvas-approve", "POST", deal_scoped("owner"), lambda w: Call(w.canvas_path("approve")), given=("written",)),
    at("canvas-reopen", "POST", deal_scoped("owner"), lambda w: Call(w.canvas_path("reopen")), given=("approved",)),
    # review
    at(
        "canvas-section-approve",
        "POST",
        deal_scoped("editor"),
        given=("risks",),
        build=lambda w: Call(w.canvas_path("sections/risks/approve"), {}),
    ),
    at(
        "canvas-section-condition-resolve",
        "POST",
        deal_scoped("editor"),
        lambda w: Call(w.canvas_path(f"sections/risks/conditions/{w.condition_id}/resolve")),
    ),
    at(
        "canvas-feedback-list",
        "POST",
        deal_scoped("commenter", 201),
        lambda w: Call(w.canvas_path("feedback"), {"section_key": "risks", "rating": 4}),
    ),
    at("canvas-comments-list", "GET", deal_scoped("viewer"), lambda w: Call(w.canvas_path("comments"))),
    at(
        "canvas-comments-list",
        "POST",
        deal_scoped("commenter", 201),
        lambda w: Call(w.canvas_path("comments"), {"section_key": "risks", "body": "Why?"}),
    ),
    # the guard admits commenters; the author, or an editor and up, may resolve
    at(
        "canvas-comments-resolve",
        "POST",
        deal_scoped("commenter"),
        case="the commenter's own comment",
        build=lambda w: Call(w.canvas_path(f"comments/{w.commenters_comment}/resolve")),
    ),
    at(
        "canvas-comments-resolve",
        "POST",
        deal_scoped("editor"),
        case="another member's comment",
        build=lambda w: Call(w.canvas_path(f"comments/{w.owners_comment}/resolve")),
    ),
    at("canvas-readiness", "GET", deal_scoped("viewer"), lambda w: Call(w.canvas_path("readiness"))),
    at("canvas-progress", "GET", deal_scoped("viewer"), lambda w: Call(w.canvas_path("progress"))),
    # versions and export
    at("canvas-versions-list", "GET", deal_scoped("viewer"), lambda w: Call(w.canvas_path("versions"))),
    at(
        "canvas-versions-detail",
        "GET",
        deal_scoped("viewer"),
        lambda w: Call(w.canvas_path("versions/1")),
        given=("risks",),
    ),
    at(
        "canvas-versions-diff",
        "GET",
        deal_scoped("viewer"),
        given=("risks",),
        build=lambda w: Call(w.canvas_path("versions/1/diff")),
    ),
    at(
        "canvas-versions-restore",
        "POST",
        deal_scoped("editor"),
        given=("risks",),
        build=lambda w: Call(w.canvas_path("versions/1/restore"), {}),
    ),
    # can_export: editors and up while editing; everyone on the deal once approved
    at(
        "canvas-export",
        "GET",
        deal_scoped("editor"),
        case="memo being edited",
        given=("risks",),
        build=lambda w: Call(w.canvas_path("export")),
    ),
    at(
        "canvas-export",
        "GET",
        deal_scoped("viewer"),
        case="approved memo",
        given=("approved",),
        build=lambda w: Call(w.canvas_path("export")),
    ),
    at("canvas-events", "GET", deal_scoped("viewer"), lambda w: Call(w.canvas_path("events")), transactional=True),
    # collaboration
    at("canvas-collab-steps", "GET", deal_scoped("viewer"), lambda w: Call(w.canvas_path("collab/steps?since=0"))),
    at(
        "canvas-collab-steps",
        "POST",
        deal_scoped("editor"),
        lambda w: Call(w.canvas_path("collab/steps"), {"version": 0, "client_id": "c1", "steps": [{"op": "x"}]}),
    ),
    at("canvas-collab", "PATCH", deal_scoped("owner"), lambda w: Call(w.canvas_path("collab"), {"enabled": False})),
    at("canvas-presence", "GET", deal_scoped("viewer"), lambda w: Call(w.canvas_path("presence"))),
    at(
        "canvas-presence",
        "POST",
        deal_scoped("viewer"),
        lambda w: Call(w.canvas_path("presence"), {"section_key": "risks"}),
    ),
    at(
        "canvas-sections-lock",
        "POST",
        deal_scoped("editor"),
        given=("collab_off",),
        build=lambda w: Call(w.canvas_path("sections/risks/lock"), {"ttl_seconds": 30}),
    ),
    # the caller releases its own lock (one is taken for every user principal, whatever its role)
    at(
        "canvas-sections-lock",
        "DELETE",
        deal_scoped("editor", 204),
        lambda w: Call(w.canvas_path(f"sections/risks/lock?token={w.callers_lock}")),
    ),
    # nodes
    at("canvas-nodes-list", "GET", deal_scoped("viewer"), lambda w: Call(w.canvas_path("nodes"))),
    at(
        "canvas-nodes-list",
        "POST",
        deal_scoped("commenter", 201),
        lambda w: Call(w.canvas_path("nodes"), {"type": "strategy_item", "title": "Hold"}),
    ),
    at(
        "canvas-nodes-detail",
        "PATCH",
        deal_scoped("editor"),
        lambda w: Call(w.canvas_path(f"nodes/{w.node}"), {"status": "approved"}),
    ),
    at("canvas-nodes-detail", "DELETE", deal_scoped("editor", 204), lambda w: Call(w.canvas_path(f"nodes/{w.node}"))),
    at(
        "canvas-nodes-links",
        "POST",
        deal_scoped("commenter", 201),
        lambda w: Call(w.canvas_path(f"nodes/{w.node}/links"), {"to": w.other_node, "type": "supports"}),
    ),
    at(
        "canvas-nodes-links",
        "DELETE",
        deal_scoped("editor", 204),
        lambda w: Call(w.canvas_path(f"nodes/{w.link[0]}/links?to={w.link[1]}&type={w.link[2]}")),
    ),
    # suggestions
    at("canvas-suggestions-list", "GET", deal_scoped("viewer"), lambda w: Call(w.canvas_path("suggestions"))),
    at(
        "canvas-suggestions-list",
        "POST",
        deal_scoped("commenter", 201),
        given=("risks",),
        build=lambda w: Call(
            w.canvas_path("suggestions"),
            {"section_key": "risks", "kind": "replace", "anchor_text": "Vacancy is low.", "content": "Vacancy is 6%."},
        ),
    ),
    at(
        "canvas-suggestions-accept",
        "POST",
        deal_scoped("editor"),
        lambda w: Call(w.canvas_path(f"suggestions/{w.suggestion}/accept"), {}),
    ),
    at(
        "canvas-suggestions-reject",
        "POST",
        deal_scoped("editor"),
        lambda w: Call(w.canvas_path(f"suggestions/{w.suggestion}/reject")),
    ),
    # synthesis: runs are created and enqueued on commit, which a test transaction never reaches
    at("canvas-generate", "POST", deal_scoped("editor", 202), lambda w: Call(w.canvas_path("generate"), {})),
    at(
        "canvas-sections-regenerate",
        "POST",
        deal_scoped("editor", 202),
        lambda w: Call(w.canvas_path("sections/risks/regenerate"), {}),
    ),
    at(
        "canvas-generate",
        "POST",
        deal_scoped("editor", 202),
        lambda w: Call(w.canvas_path("generate"), {"multitask_strategy": "rollback"}),
        case="rollback over a queued run",
        given=("queued_run",),
    ),
    at(
        "canvas-sections-regenerate",
        "POST",
        deal_scoped("editor", 202),
        lambda w: Call(w.canvas_path("sections/risks/regenerate"), {"multitask_strategy": "interrupt"}),
        case="interrupt over a queued run",
        given=("queued_run",),
    ),
    at(
        "canvas-generate",
        "POST",
        deal_scoped("editor", 202),
        lambda w: Call(w.canvas_path("generate"), {"sections": ["risks"], "webhook": w.webhook}),
        case="with a webhook",
        given=("webhook",),
    ),
    at(
        "canvas-sections-regenerate",
        "POST",
        deal_scoped("editor", 202),
        lambda w: Call(w.canvas_path("sections/risks/regenerate"), {"webhook": w.webhook}),
        case="with a webhook",
        given=("webhook",),
    ),
    at("canvas-runs-list", "GET", deal_scoped("viewer"), lambda w: Call(w.canvas_path("runs")), given=("queued_run",)),
    at("canvas-runs-detail", "GET", deal_scoped("viewer"), lambda w: Call(w.canvas_path(f"runs/{w.run()}"))),
    at(
        "canvas-run-stream",
        "GET",
        deal_scoped("viewer"),
        lambda w: Call(w.canvas_path(f"runs/{w.run()}/stream")),
        transactional=True,
    ),
    at("canvas-runs-cancel", "POST", deal_scoped("editor"), lambda w: Call(w.canvas_path(f"runs/{w.run()}/cancel"))),
    at(
        "canvas-runs-cancel",
        "POST",
        deal_scoped("editor"),
        lambda w: Call(w.canvas_path(f"runs/{w.run()}/cancel"), {"action": "rollback", "wait": True}),
        case="rollback, wait",
    ),
    at(
        "canvas-runs-resume",
        "POST",
        deal_scoped("editor", 202),
        lambda w: Call(w.canvas_path(f"runs/{w.waiting_run}/resume"), {"inputs": {"notes": {"risks": RISKS}}}),
    ),
    at(
        "canvas-generate-input-schema",
        "GET",
        deal_scoped("viewer"),
        lambda w: Call(w.canvas_path("generate/input-schema")),
    ),
    at(
        "canvas-runs-trace",
        "GET",
        deal_scoped("viewer"),
        lambda w: Call(w.canvas_path(f"runs/{w.run(RunStatus.SUCCEEDED)}/trace")),
    ),
    at("canvas-debug", "POST", deal_scoped("editor"), lambda w: Call(w.canvas_path("debug"), {"section_key": "risks"})),
    at("canvas-reset", "POST", deal_scoped("owner"), lambda w: Call(w.canvas_path("reset")), given=("risks",)),
    at("canvas-brush-list", "GET", deal_scoped("viewer"), lambda w: Call(w.canvas_path("brush"))),
    at(
        "canvas-brush-list",
        "POST",
        deal_scoped("editor", 201),
        given=("risks",),
        build=lambda w: Call(w.canvas_path("brush"), {"brush": "completeness"}),
    ),
    at(
        "canvas-discourse-stream",
        "GET",
        deal_scoped("viewer"),
        lambda w: Call(w.canvas_path("discourse/stream")),
        transactional=True,
    ),
    # chat: a viewer of the project asks; strangers do not learn the deal exists
    at("chat-list", "POST", deal_scoped("viewer"), lambda w: Call("/api/v1/chat", {**CHAT, "project_id": w.deal_id})),
    at(
        "chat-stream",
        "POST",
        deal_scoped("viewer"),
        lambda w: Call("/api/v1/chat/stream", {**CHAT, "project_id": w.deal_id}),
    ),
    at("chat-threads-list", "GET", deal_scoped("viewer"), lambda w: Call(f"/api/v1/threads?project_id={w.deal_id}")),
    # a thread is its user's alone; strangers to the deal do not reach even their own thread of it
    at(
        "chat-threads-messages",
        "GET",
        deal_scoped("viewer"),
        case="the caller's own thread",
        build=lambda w: Call(f"/api/v1/threads/{w.callers_thread}/messages"),
    ),
    at(
        "chat-threads-messages",
        "GET",
        users(404, owner=200),
        case="the owner's thread",
        build=lambda w: Call(f"/api/v1/threads/{w.owners_thread}/messages"),
    ),
    # the internal contract (shared/seeds/003): the engine token, acting for the user of X-User-Id
    at(
        "internal-canvas-context",
        "GET",
        engine_only(200),
        lambda w: Call(
            f"/api/internal/canvas/context?agentId=strategy&projectId={w.deal_id}&threadId={w.thread}",
            headers=w.contract_headers(),
        ),
    ),
    at(
        "internal-canvas-mutations",
        "POST",
        engine_only(200),
        lambda w: Call(
            "/api/internal/canvas/mutations", MUTATIONS, headers=w.contract_headers(HTTP_IDEMPOTENCY_KEY="matrix-1")
        ),
    ),
    # ...and that user's own access decides: 403 in the contract's envelope
    at(
        "internal-canvas-context",
        "GET",
        engine_only(403),
        case="for a user outside the deal",
        build=lambda w: Call(
            f"/api/internal/canvas/context?agentId=strategy&projectId={w.deal_id}&threadId={w.thread}",
            headers=w.contract_headers(user="outsider"),
        ),
    ),
    at(
        "internal-canvas-mutations",
        "POST",
        engine_only(403),
        case="for a viewer (commenter needed)",
        build=lambda w: Call(
            "/api/internal/canvas/mutations",
            MUTATIONS,
            headers=w.contract_headers(user="viewer", HTTP_IDEMPOTENCY_KEY="matrix-1"),
        ),
    ),
    # superadmin
    at(
        "superadmin-purge-deals",
        "POST",
        superadmin_only(200),
        lambda w: Call("/api/superadmin/purge_deals", {"mode": "by_deal", "deal_id": w.deal_id, "dry_run": True}),
    ),
    at(
        "superadmin-deal-redis", "GET", superadmin_only(200), lambda w: Call(f"/api/superadmin/deals/{w.deal_id}/redis")
    ),
]

# Left out of the matrix on purpose, by URL namespace, with the reason. A pattern of such a namespace that
# has an entry all the same is checked like any other.
NOT_IN_MATRIX = {
    "admin": "the Django admin works with its own session login and is_staff, never bearer tokens, and its pages "
    "come and go with every registered model; its index and the purge page are in TABLE (no bearer token, "
    "not even a superadmin's, opens them), the rest is covered page by page in tests/deals/test_admin.py "
    "and tests/superadmin/test_purge_admin.py",
}


def _in_matrix(pattern: ServedPattern, table: list[Entry]) -> bool:
    outside = (pattern.namespace or "").split(":")[0] in NOT_IN_MATRIX
    return not outside or any(entry.pattern == pattern.key for entry in table)


def coverage_gaps(patterns: list[ServedPattern], table: list[Entry]) -> tuple[list[str], list[str]]:
    """(served pattern/methods without an entry, entries that match nothing served), as "METHOD key".

    A function view declares no methods: it needs at least one entry, and the table's methods stand for
    its methods (test_function_views_refuse_the_methods_they_do_not_declare holds them to that)."""
    declared = {(entry.pattern, entry.method) for entry in table}
    served: set[tuple[str, str]] = set()
    for pattern in patterns:
        if not _in_matrix(pattern, table):
            continue
        if pattern.methods is None:
            served |= {(key, method) for key, method in declared if key == pattern.key} or {(pattern.key, "*")}
        else:
            served |= {(pattern.key, method) for method in pattern.methods}
    return (
        [f"{method} {key}" for key, method in sorted(served - declared)],
        [f"{method} {key}" for key, method in sorted(declared - served)],
    )


# --- the inventory --------------------------------------------------------------------------------------
def test_every_served_pattern_and_method_has_an_entry():
    missing, stale = coverage_gaps(served_patterns(), TABLE)
    assert not missing, "served without a role-matrix entry (add one to TABLE): " + ", ".join(missing)
    assert not stale, "role-matrix entries that match no served pattern and method (remove them): " + ", ".join(stale)


def test_a_new_pattern_or_method_without_an_entry_is_reported():
    from rest_framework.views import APIView

    class Probe(APIView):
        def get(self, request): ...

        def post(self, request): ...

    new_view = ServedPattern(key="brand-new", route="api/brand-new", namespace=None, view_class=Probe)
    new_function = ServedPattern(key="brand-new-stream", route="api/brand-new/stream", namespace=None, view_class=None)
    patterns = [p for p in served_patterns() if p.key != "canvas-brush-list"]  # as if the brush route had gone
    missing, stale = coverage_gaps([*patterns, new_view, new_function], TABLE)
    assert missing == ["GET brand-new", "POST brand-new", "* brand-new-stream"]
    assert stale == ["GET canvas-brush-list", "POST canvas-brush-list"]
    admin_page = ServedPattern(key="admin:new_page", route="admin/new/", namespace="admin", view_class=None)
    assert coverage_gaps([*served_patterns(), admin_page], TABLE) == ([], [])


def test_every_entry_gives_each_principal_one_status():
    for entry in TABLE:
        assert tuple(entry.expect) == PRINCIPALS, entry.id
        assert all(isinstance(status, int) and 200 <= status < 600 for status in entry.expect.values()), entry.id
    ids = [entry.id for entry in TABLE]
    assert len(ids) == len(set(ids)), "two entries share a pattern, method and case"


def test_key_principals_follow_their_user_and_scope():
    by_id = {entry.id: entry.expect for entry in TABLE}
    keys = ("editor", "editor_read_key", "editor_write_key")
    assert tuple(by_id["deal-detail:GET"][p] for p in keys) == (200, 200, 200)
    assert tuple(by_id["deal-detail:PATCH"][p] for p in keys) == (200, 403, 200)
    assert tuple(by_id["deal-detail:DELETE"][p] for p in keys) == (403, 403, 403)
    assert tuple(by_id["api-keys-list:GET"][p] for p in keys) == (200, 403, 403)
    assert tuple(by_id["auth-token:POST"][p] for p in keys) == (200, 200, 200)  # public: the header is ignored
    # an entry added later says nothing about keys and covers them all the same
    later = at("brand-new", "POST", deal_scoped("commenter", 201), lambda w: Call("/api/brand-new"))
    assert tuple(later.expect[p] for p in keys) == (201, 403, 201)
    contract = at("brand-new", "POST", engine_only(200), lambda w: Call("/api/brand-new"))
    assert tuple(contract.expect[p] for p in keys) == (401, 401, 401)


@pytest.mark.django_db
def test_function_views_refuse_the_methods_they_do_not_declare(cast, request):
    """Function views declare no methods, so the table does; every other method must be a 405."""
    # the admin's pages answer any method with their login redirect: only the project's own views are probed
    function_keys = {p.key for p in served_patterns() if p.methods is None and p.namespace is None}
    world = World(cast, "anonymous", request)
    wrong = []
    for key in sorted(function_keys):
        entries = [e for e in TABLE if e.pattern == key]
        if not entries:
            continue  # test_every_served_pattern_and_method_has_an_entry names it
        path = entries[0].build(world).path
        for method in set(PROBED_METHODS) - {e.method for e in entries}:
            response = getattr(world.client(), method.lower())(path)
            if response.status_code != 405:
                wrong.append(f"{method} {key}: {response.status_code}")
    assert not wrong, "function views that serve a method the table does not declare: " + ", ".join(wrong)


def _json_error_problem(label: str, response, method: str) -> str | None:
    """None when an error response is JSON {"detail": ...} (or the internal contract's envelope) and a 405 names
    the allowed methods; else what is wrong."""
    if response.status_code < 400:
        return None
    if response.streaming:
        response.close()
        return f"{label}: {response.status_code} as a stream"
    content_type = response.get("Content-Type", "")
    if not content_type.startswith("application/json"):
        return f"{label}: {response.status_code} {content_type} {response.content[:80]!r}"
    body = response.json()
    # the internal contract (/api/internal/) has its own envelope: {success: false, error: {code, message}}
    contract = isinstance(body, dict) and body.get("success") is False and "code" in body.get("error", {})
    if not (isinstance(body, dict) and "detail" in body) and not contract:
        return f"{label}: {response.status_code} without detail: {response.content[:80]!r}"
    if response.status_code == 405:
        allowed = {m.strip() for m in response.get("Allow", "").split(",") if m.strip()}
        if not allowed or method in allowed:
            return f"{label}: 405 with Allow {response.get('Allow')!r}"
    return None


def _best_principal(entries: list[Entry]) -> str:
    """The principal that gets furthest into the pattern's view: one the table lets through."""
    for principal in ("owner", "superadmin", "internal", *PRINCIPALS):
        if any(entry.expect[principal] < 400 for entry in entries):
            return principal
    return "anonymous"


@pytest.mark.django_db(transaction=True)  # the SSE views hand their connection back (see Entry.transactional)
def test_every_pattern_answers_every_method_in_json(cast, request):
    """Every pattern the project serves (the admin's HTML pages aside), every method: an error is JSON
    `{"detail": ...}`, a 405 carries an Allow header that leaves the method out. Sent with CSRF checks on,
    as a browser or curl would be (the test client skips them by default), so a view that is not
    csrf_exempt shows up as Django's HTML "CSRF verification failed" page: the API takes bearer tokens,
    never cookies. Anonymous tries every method; the principal the table lets furthest in tries the
    methods the pattern does not serve (for a DRF view, anonymous would stop at 401 before the 405)."""
    problems = []
    for pattern in served_patterns():
        if pattern.namespace == "admin":
            continue  # the Django admin's pages are HTML by design (tests/deals/test_admin.py)
        entries = [entry for entry in TABLE if entry.pattern == pattern.key]
        assert entries, f"{pattern.key}: not in the role matrix"
        served = set(pattern.methods) if pattern.methods is not None else {entry.method for entry in entries}
        best = _best_principal(entries)
        path = entries[0].build(World(cast, best, request)).path
        for principal, methods in (("anonymous", PROBED_METHODS), (best, sorted(set(PROBED_METHODS) - served))):
            client = World(cast, principal, request).client()
            client.handler.enforce_csrf_checks = True
            for method in methods:
                response = getattr(client, method.lower())(path)
                label = f"{method} {pattern.key} as {principal}"
                if method not in served and response.status_code != 405 and principal != "anonymous":
                    problems.append(f"{label}: {response.status_code}, not 405")
                elif problem := _json_error_problem(label, response, method):
                    problems.append(problem)
    assert not problems, "\n".join(problems)


# --- the matrix -----------------------------------------------------------------------------------------
def _request(world: World, entry: Entry):
    for name in entry.given:
        getattr(world, name)
    call = entry.build(world)
    assert isinstance(call, Call), f"{entry.id}: the entry's build returned {call!r}"
    send = getattr(world.client(), entry.method.lower())
    if call.data is None:
        return send(call.path, **call.headers)
    return send(call.path, call.data, format=call.format, **call.headers)


def _mismatch(world: World, entry: Entry) -> str | None:
    """None when the principal got the declared status, else what it got."""
    response = _request(world, entry)
    expected = entry.expect[world.principal]
    if response.streaming:
        # an event stream never ends (and a file is not worth reading): the status is all there is to check
        body = b"<stream>"
        response.close()
    else:
        body = response.content[:300]
    if response.status_code == expected:
        return None
    return f"{entry.id} as {world.principal}: expected {expected}, got {response.status_code} {body!r}"


@pytest.mark.django_db
@pytest.mark.parametrize(
    ("entry", "principal"),
    [pytest.param(e, p, id=f"{e.id}-{p}") for e in TABLE if not e.transactional for p in PRINCIPALS],
)
def test_role_matrix(cast, request, entry, principal):
    problem = _mismatch(World(cast, principal, request), entry)
    if problem:
        pytest.fail(problem)


@pytest.mark.django_db(transaction=True)
@pytest.mark.parametrize("entry", [pytest.param(e, id=e.id) for e in TABLE if e.transactional])
def test_role_matrix_of_event_streams(cast, request, entry):
    """The SSE views need committed data, so their tests are transactional; the flush after each such test is
    slow, so the principals take turns in one test per stream. Opening a stream changes nothing: they share
    the cast, in any order."""
    problems = [p for p in (_mismatch(World(cast, principal, request), entry) for principal in PRINCIPALS) if p]
    if problems:
        pytest.fail("\n".join(problems))
