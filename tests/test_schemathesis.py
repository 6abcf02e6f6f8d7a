"""Schemathesis against /api/schema/: every operation, generated inputs, sent as every role.

The document is the one the app serves at /api/schema/. Every response must pass schemathesis's
not_a_server_error, status_code_conformance, response_schema_conformance, positive_data_acceptance (a
request the schema calls valid is not refused as malformed: no 400/422/415) and negative_data_rejection (a
request the schema calls invalid is refused) checks. Two phases per operation:

- fuzz: EXAMPLES cases drawn by Hypothesis (valid and invalid inputs, derandomized so CI sees the same
  ones every run), each sent once per role: anonymous, outsider, superadmin, viewer, commenter, editor,
  owner, and the internal engine token where the operation accepts it. The role's bearer token is
  injected as the Authorization header of each call (generated security parameters are off).
- cover: schemathesis's deterministic coverage cases (boundary values, each required part missing,
  wrong types, other media types and methods), each sent once as the role that gets furthest in.

Identifiers are grounded in a seeded world so requests reach their handlers instead of stopping at a
404: the deal in a path is always the seeded deal; other ids (section key, comment, suggestion, node,
condition, run, document, version, user, org, chat thread, credentials) are the seeded ones three
times out of four in fuzz cases, always in valid coverage cases, and never in invalid ones. A grounded
case is judged again (schemathesis revalidates a changed part), so a negative case that grounding made
valid is held to positive_data_acceptance instead.

What no schema can say, and how the harness keeps it out of the two data checks (narrowly):
- References to other objects in a body (STATE_REFERENCES: the sections to draft, attached documents,
  a user's email or id, the node to link to, a suggestion's anchor text and its occurrence in the
  section) exist or not by state: a valid case always names the seeded ones. An unknown one is a 422 at
  that field, as the operation documents.
- An uploaded file's content is sniffed (PDF, XLSX, DOCX; UTF-8 text by its name): a valid upload sends a
  PDF (schemathesis names the part "file", without an extension).
- A locked section (423) or an active run (409) is state: 423 joins the statuses a valid request may get.

Most operations run in this process through Django's WSGI handler on the test's own database
connection, so each operation starts from a fresh seeded world (the test transaction is rolled back
afterwards) and a destructive call (DELETE the deal, revoke a grant, reset) cannot hurt another
operation. Within one operation the roles go lowest first, so the owner's delete comes last for each
case, and the coverage cases come after the fuzz cases. The three GET event streams run against a real
uvicorn child instead: their views hand their database connection back to the pool (which would end
the test transaction here), and they never end, so the client reads the opening event and disconnects
(max-stream-events 1), as a browser that navigates away would.

SCHEMATHESIS_EXAMPLES (default 4) sets the fuzz cases per operation, e.g. 50 for a deeper local run,
and SCHEMATHESIS_SEED=<n> draws other cases than CI's (reproducibly, for that n).
"""

from __future__ import annotations

import json
import os
import threading
import traceback
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

import hypothesis
import pytest
import schemathesis
from django.core.files.uploadedfile import SimpleUploadedFile
from django.core.handlers.wsgi import WSGIHandler
from django.core.signals import got_request_exception, request_finished, request_started
from django.db import close_old_connections, connection
from django.test import Client
from hypothesis import strategies as st
from schemathesis.checks import not_a_server_error
from schemathesis.core.failures import FailureGroup
from schemathesis.core.parameters import ParameterLocation
from schemathesis.generation import GenerationMode
from schemathesis.specs.openapi.checks import (
    negative_data_rejection,
    positive_data_acceptance,
    response_schema_conformance,
    status_code_conformance,
)

from canvas.memo.templates import ACQUISITION
from deals.models import Deal
from deals.tokens import token_pair_for_user
from tests.canvas.conftest import canvas_url, full_memo, save
from tests.factories import PASSWORD
from tests.servers import ServiceProcess, database_url_of

EXAMPLES = int(os.environ.get("SCHEMATHESIS_EXAMPLES", "4"))
# Unset: derandomized, the same cases every run (CI). A number explores other cases, reproducibly.
SEED = int(os.environ["SCHEMATHESIS_SEED"]) if os.environ.get("SCHEMATHESIS_SEED") else None
CHECKS = [
    not_a_server_error,
    status_code_conformance,
    response_schema_conformance,
    positive_data_acceptance,
    negative_data_rejection,
]
# A valid request may still meet state: another user's section lock (423) is no fault of its shape.
VALID_MAY_GET = ["2xx", "3xx", "401", "403", "404", "409", "423", "429", "5xx"]
CONFIG_CHECKS = {"positive_data_acceptance": {"expected-statuses": VALID_MAY_GET}}
# The engines' mutations (the internal contract, binding: seeds 003) answer 400 for every refusal, a malformed
# body and a mutation naming a node or anchor text that does not exist alike; their nested references cannot be
# grounded, so there a valid case may also get 400 (its malformed cases are still held to 400 by
# negative_data_rejection, and its schema's rules are tested in tests/canvas_project/test_schema_rules.py).
CONTRACT_MUTATIONS = "POST /api/internal/canvas/mutations"
# Body fields naming other objects: grounded in every valid case (see the module docstring).
STATE_REFERENCES = {
    *("sections", "attached_document_ids", "email", "user_id", "org_id", "to", "file", "anchor_text", "occurrence"),
}
# The steps of a collaboration push are free-form objects: the server refuses a NUL character in their keys too,
# and OpenAPI 3.0 has no `propertyNames` to say so (values say it with a pattern). Only there, generated text
# holds no NUL.
FREE_FORM_KEYS = "POST /api/canvas/{deal_id}/collab/steps"
# Lowest first: for each case the owner (who may delete the deal) is called last.
USER_ROLES = ("outsider", "superadmin", "viewer", "commenter", "editor", "owner")
ENGINE_TOKEN = "test-engine-token-primary"  # one of test_settings.INTERNAL_ENGINE_TOKENS
SECTION_KEY = ACQUISITION.sections[0].key
BODY = ParameterLocation.BODY
RENT_ROLL = b"unit,rent\n101,1850\n102,1900\n"
PDF = b"%PDF-1.4\n%%EOF\n"  # what a valid upload sends: schemathesis names every file "file", so only the content tells
ANCHOR = "123 Main Street"  # once in the seeded memo's first section (full_memo)
# How long a stream call may read in all before it counts as cut short; a busy stream delivers its first
# event well within it.
STREAM_READ_SECONDS = 5


def _served_schema() -> dict[str, Any]:
    """What GET /api/schema/ serves (as JSON), fetched through Django's test client at import time:
    the operations are the test's parameters. The view reads no database."""
    response = Client().get("/api/schema/", HTTP_ACCEPT="application/vnd.oai.openapi+json")
    assert response.status_code == 200, response.content[:500]
    return json.loads(response.content)


RAW_SCHEMA = _served_schema()
CONFIG = schemathesis.Config.from_dict(
    {
        # The caller's credentials come from the role loop below, never from generated security parameters.
        "generation": {"with-security-parameters": False},
        # An event stream never ends: keep its opening event, then disconnect.
        "max-stream-events": 1,
        "checks": CONFIG_CHECKS,
        "operations": [
            {"include-name": FREE_FORM_KEYS, "generation": {"allow-x00": False}},
            {
                "include-name": CONTRACT_MUTATIONS,
                "checks": {"positive_data_acceptance": {"expected-statuses": [*VALID_MAY_GET, "400"]}},
            },
        ],
    }
)
SCHEMA = schemathesis.openapi.from_dict(RAW_SCHEMA, config=CONFIG)
OPERATIONS = {result.ok().label: result.ok() for result in SCHEMA.get_all_operations()}
# Streams that only end when the client goes away; served by the uvicorn child (see the module docstring).
ENDLESS_STREAMS = {
    "GET /api/canvas/{deal_id}/events",
    "GET /api/canvas/{deal_id}/runs/{run_id}/stream",
    "GET /api/canvas/{deal_id}/discourse/stream",
}
IN_PROCESS = sorted(set(OPERATIONS) - ENDLESS_STREAMS)
# Section locks exist only with collaboration off; the seeded deal has it on (the default), so these two
# run on the deal switched off, or they would never get past 409.
LOCKS = {"POST /api/canvas/{deal_id}/sections/{key}/lock", "DELETE /api/canvas/{deal_id}/sections/{key}/lock"}


# --- the seeded world ----------------------------------------------------------------------------------
@dataclass
class World:
    tokens: dict[str, str]
    # parameter location -> name -> a real value that reaches a handler
    path: dict[str, Any] = field(default_factory=dict)
    query: dict[str, Any] = field(default_factory=dict)
    header: dict[str, Any] = field(default_factory=dict)
    body: dict[str, Any] = field(default_factory=dict)

    def headers_for(self, role: str) -> dict[str, str]:
        token = self.tokens.get(role)
        return {"Authorization": f"Bearer {token}"} if token else {}


def _created(response, key: str = "id") -> Any:
    assert response.status_code in (200, 201, 202), response.content[:500]
    return response.json()[key]


def seed_world(cast) -> World:
    """The cast's deal with a written memo (version 1), an approved section with an open condition (approved
    before the comment on it, which would hold the approval), a comment, a suggestion, a node, a queued
    run, a document and a chat thread: all made through the API."""
    deal, users = cast.deal, cast.users
    owner, editor, commenter = cast.client("owner"), cast.client("editor"), cast.client("commenter")
    assert save(owner, deal, full_memo()).status_code == 200
    approval = editor.post(
        canvas_url(deal, f"sections/{SECTION_KEY}/approve"), {"conditions": ["Confirm the rate cap"]}, format="json"
    )
    condition_id = approval.json()["conditions"][0]["id"] if approval.status_code == 200 else None
    assert condition_id, approval.content[:500]
    comment_id = _created(
        commenter.post(
            canvas_url(deal, "comments"), {"body": "Is the rate cap priced?", "section_key": SECTION_KEY}, format="json"
        )
    )
    suggestion_id = _created(
        commenter.post(
            canvas_url(deal, "suggestions"),
            {"section_key": SECTION_KEY, "kind": "insert", "content": "The seller credits closing costs."},
            format="json",
        )
    )
    node_id = _created(
        editor.post(canvas_url(deal, "nodes"), {"type": "strategy_item", "title": "Hold 7 years"}, format="json")
    )
    other_node_id = _created(  # what a link from node_id points to
        editor.post(canvas_url(deal, "nodes"), {"type": "risk", "title": "Rate cap expiry"}, format="json")
    )
    run_id = _created(editor.post(canvas_url(deal, "generate"), {}, format="json"), "run_id")
    upload = SimpleUploadedFile("rent-roll.csv", RENT_ROLL, content_type="text/csv")
    doc_id = _created(owner.post(f"/api/deals/{deal.pk}/documents", {"file": upload}, format="multipart"))
    thread_id = _created(
        owner.post(
            "/api/v1/chat",
            {"message": "What are the risks?", "project_id": str(deal.pk), "agent_id": "strategy"},
            format="json",
        ),
        "thread_id",
    )
    tokens = {role: token_pair_for_user(user=users[role])["access"] for role in USER_ROLES}
    spare = token_pair_for_user(user=users["editor"])  # for /auth/token/refresh and /verify bodies
    tokens["engine"] = ENGINE_TOKEN
    viewer = users["viewer"]
    return World(
        tokens=tokens,
        path={
            "deal_id": deal.pk,
            "key": SECTION_KEY,
            "comment_id": comment_id,
            "suggestion_id": suggestion_id,
            "node_id": node_id,
            "cid": condition_id,
            "run_id": run_id,
            "doc_id": doc_id,
            "n": 1,
            "user_id": viewer.pk,
            "org_id": cast.org.pk,
            "thread_id": thread_id,
        },
        query={
            "project_id": deal.pk,
            "projectId": deal.pk,
            "threadId": thread_id,
            "section_key": SECTION_KEY,
            "agentId": "strategy",
            "to": node_id,
        },
        header={
            "X-Project-Id": deal.pk,
            "X-Thread-Id": thread_id,
            "X-User-Id": users["owner"].pk,
            "X-Contract-Version": "2026-02",
        },
        body={
            "deal_id": deal.pk,
            "project_id": deal.pk,
            "deal_ids": [deal.pk],
            "user_id": viewer.pk,
            "thread_id": thread_id,
            "org_id": cast.org.pk,
            "section_key": SECTION_KEY,
            "parent_id": comment_id,
            "username": "owner",
            "password": PASSWORD,
            "agent_id": "strategy",
            "refresh": spare["refresh"],
            "token": spare["access"],
            "sections": [SECTION_KEY],
            "attached_document_ids": [doc_id],
            "email": viewer.email,
            "to": other_node_id,
            "file": PDF,
            "anchor_text": ANCHOR,
            "occurrence": 1,
        },
    )


def ground(case, world: World, keep_generated: Callable[[str], bool]) -> None:
    """Point the case's identifiers at the seeded world: the deal always, any other known name unless
    keep_generated(name); then have schemathesis judge the case again (grounding may make it valid)."""
    for container, values in (
        (case.path_parameters, world.path),
        (case.query, world.query),
        (case.headers, world.header),
    ):
        for name in list(container or {}):
            if name in values and (name == "deal_id" or not keep_generated(name)):
                container[name] = str(values[name])
    # an invalid body keeps what made it invalid (a binary part could not be judged again)
    if isinstance(case.body, dict) and not (case.meta is not None and case.meta.is_negative_at(BODY)):
        for name in list(case.body):
            if name in world.body and not keep_generated(name):
                value = world.body[name]
                if isinstance(value, list):
                    value = [str(v) for v in value]
                elif not isinstance(value, bytes | int):
                    value = str(value)
                case.body[name] = value
    case.meta  # noqa: B018 - reading it revalidates the parts grounding changed


def roles_for(operation) -> list[str]:
    security = operation.definition.raw.get("security") or RAW_SCHEMA.get("security") or []
    engine = any("internalEngineToken" in requirement for requirement in security)
    return ["anonymous", *(["engine"] if engine else []), *USER_ROLES]


def privileged_role(operation) -> str:
    """The role that gets furthest into the operation's handler: the engine where its token is accepted
    (the internal contract, minting deal tokens), the superadmin on the superadmin API, else the owner."""
    if "engine" in roles_for(operation):
        return "engine"
    return "superadmin" if operation.path.startswith("/api/superadmin/") else "owner"


def case_strategy(operation):
    """Valid and invalid inputs; an operation with nothing to invalidate gets valid ones only."""
    positive = operation.as_strategy(generation_mode=GenerationMode.POSITIVE)
    has_inputs = any(True for _ in operation.iter_parameters()) or bool(operation.body)
    if not has_inputs:
        return positive
    return st.one_of(positive, operation.as_strategy(generation_mode=GenerationMode.NEGATIVE))


# --- calling the app -------------------------------------------------------------------------------------
class InTransactionWSGI:
    """Django's WSGI handler on the test's database connection, inside its transaction.

    As django.test.Client does, the request signals do not recycle the connection; the response is
    read whole before the call returns. Unhandled exceptions are kept for the failure report.
    """

    def __init__(self) -> None:
        self.handler = WSGIHandler()
        self.exceptions: list[str] = []

    def __call__(self, environ, start_response):
        request_started.disconnect(close_old_connections)
        request_finished.disconnect(close_old_connections)
        got_request_exception.connect(self._record)
        try:
            response = self.handler(environ, start_response)
            try:
                return [b"".join(response)]
            finally:
                response.close()
        finally:
            got_request_exception.disconnect(self._record)
            request_started.connect(close_old_connections)
            request_finished.connect(close_old_connections)

    def _record(self, sender, request=None, **kwargs) -> None:
        self.exceptions.append(traceback.format_exc())


def send(case, role: str, world: World, **call_kwargs) -> str | None:
    """Send the case as `role`; the failure report when the response fails a check, else None."""
    app = call_kwargs.get("app")
    if isinstance(app, InTransactionWSGI):
        app.exceptions.clear()
    response = case.call(headers=world.headers_for(role), **call_kwargs)
    try:
        case.validate_response(response, checks=CHECKS, headers=world.headers_for(role), transport_kwargs=call_kwargs)
    except FailureGroup as exc:
        server_side = "".join(app.exceptions) if isinstance(app, InTransactionWSGI) else ""
        return f"--- as {role} ---\n{exc}{server_side}"
    return None


def without_credentials(case) -> None:
    case.headers = {k: v for k, v in (case.headers or {}).items() if k.lower() != "authorization"}


def fuzz(operation, world: World, **call_kwargs) -> None:
    """EXAMPLES cases drawn by Hypothesis, valid and invalid, each sent as every role.

    Raises AssertionError naming the first case with a failure and every role it failed for."""
    strategy = case_strategy(operation)
    roles = roles_for(operation)

    @hypothesis.settings(
        max_examples=EXAMPLES,
        derandomize=SEED is None,
        database=None,
        deadline=None,
        phases=(hypothesis.Phase.explicit, hypothesis.Phase.generate),
        suppress_health_check=list(hypothesis.HealthCheck),
        print_blob=False,
    )
    @hypothesis.given(data=st.data())
    def exercise(data):
        case = data.draw(strategy, label="case")
        positive = case.meta is not None and case.meta.generation.mode.is_positive

        def keep_generated(name: str) -> bool:
            if positive and name in STATE_REFERENCES:
                return False
            # 0..2 keep the real value, 3 the generated one; Hypothesis's simplest choice (0) is the real one
            return data.draw(st.integers(0, 3), label=f"keep generated {name}") == 3

        ground(case, world, keep_generated)
        without_credentials(case)
        failures = [report for role in roles if (report := send(case, role, world, **call_kwargs))]
        assert not failures, "\n".join(failures)

    if SEED is not None:
        exercise = hypothesis.seed(SEED)(exercise)
    exercise()


def cover(operation, world: World, **call_kwargs) -> None:
    """Schemathesis's coverage cases (boundary values, each required part missing, wrong types, other
    media types and methods: deterministic, a few dozen per operation), each sent once as the role that
    gets furthest. A valid case points at the seeded world; an invalid one keeps what it generated
    (but the deal).

    Raises AssertionError listing the cases with failures."""
    config = operation.schema.config.generation_for(operation=operation)
    cases = operation.schema.iter_coverage_cases(
        operation, generation_modes=list(GenerationMode), generation_config=config
    )
    role = privileged_role(operation)
    failures = []
    for case in cases:
        positive = case.meta is not None and case.meta.generation.mode.is_positive
        ground(case, world, lambda name, positive=positive: not positive)
        without_credentials(case)
        if report := send(case, role, world, **call_kwargs):
            failures.append(report)
    assert not failures, f"{len(failures)} coverage case(s) failed:\n" + "\n".join(failures[:5])


def run_operation(operation, world: World, **call_kwargs) -> None:
    """fuzz, then cover (the owner's coverage cases may delete the deal); both report."""
    problems = []
    for phase in (fuzz, cover):
        try:
            phase(operation, world, **call_kwargs)
        except AssertionError as exc:
            problems.append(f"{phase.__name__}: {exc}")
    assert not problems, "\n\n".join(problems)


# --- the tests -------------------------------------------------------------------------------------------
@pytest.fixture
def world(cast, settings, tmp_path) -> World:
    settings.MEDIA_ROOT = str(tmp_path / "media")
    return seed_world(cast)


@pytest.mark.parametrize("label", IN_PROCESS)
def test_operation_as_every_role(label, world):
    if label in LOCKS:
        Deal.objects.filter(pk=world.path["deal_id"]).update(collab_enabled=False)
    run_operation(OPERATIONS[label], world, app=InTransactionWSGI())


@pytest.fixture(scope="module")
def uvicorn_service(django_db_setup, django_db_blocker, tmp_path_factory):
    from django.conf import settings

    with django_db_blocker.unblock():
        server = ServiceProcess(
            {
                "DJANGO_SETTINGS_MODULE": "canvas_project.settings",
                "DATABASE_URL": database_url_of(connection.settings_dict),
                "REDIS_URL": settings.REDIS_URL,
                "MEDIA_ROOT": str(tmp_path_factory.mktemp("media")),
            }
        ).start()
    yield server
    server.stop()


class BusyDeal:
    """Keeps the deal's streams from going quiet while its streams are tested: the run and the discourse
    ring hold an event from the start (both replay on connect), and a canvas event is published every
    50 ms (the events stream follows from now on). The client reads one event and leaves, so no stream
    call waits for a 15 s heartbeat."""

    def __init__(self, world: World) -> None:
        from canvas.runs.synthesis import telemetry

        self.deal_id, self.user_id = world.path["deal_id"], str(world.path["user_id"])
        telemetry.emit_run_event(self.deal_id, world.path["run_id"], "workflow_started", {"inputs": {}})
        telemetry.discourse_emit(self.deal_id, "run", {"agent": "planner", "text": "Drafting the memo."})
        self.stop = threading.Event()
        self.thread = threading.Thread(target=self._publish, name="busy-deal", daemon=True)

    def _publish(self) -> None:
        from canvas_project import events

        while not self.stop.wait(0.05):
            events.emit(self.deal_id, "presence_joined", {"user_id": self.user_id, "display_name": "viewer"})

    def __enter__(self) -> BusyDeal:
        self.thread.start()
        return self

    def __exit__(self, *exc) -> None:
        self.stop.set()
        self.thread.join(timeout=5)


@pytest.mark.django_db(transaction=True)
@pytest.mark.parametrize("label", sorted(ENDLESS_STREAMS))
def test_event_stream_as_every_role(label, uvicorn_service, world):
    with BusyDeal(world):
        run_operation(OPERATIONS[label], world, base_url=uvicorn_service.url, timeout=STREAM_READ_SECONDS)


def test_every_operation_of_the_schema_is_exercised():
    served = {
        f"{method.upper()} {path}"
        for path, item in RAW_SCHEMA["paths"].items()
        for method in item
        if method in ("get", "post", "put", "patch", "delete")
    }
    assert set(OPERATIONS) == served
    assert ENDLESS_STREAMS <= served, "an event stream left the schema: update ENDLESS_STREAMS"


@pytest.mark.parametrize(
    "status, body",
    [
        (500, b'{"detail": "Internal server error."}'),  # not_a_server_error
        (418, b'{"detail": "I am a teapot."}'),  # status_code_conformance: 418 is not documented
        (200, b'{"status": 42}'),  # response_schema_conformance: not the HealthOutput shape
    ],
)
def test_the_checks_fail_what_they_should(status, body):
    """The harness is not toothless: each check rejects a response that breaks it."""
    import requests

    case = OPERATIONS["GET /api/health"].Case()
    response = requests.Response()
    response.status_code, response._content = status, body
    response.headers["Content-Type"] = "application/json"
    response.request = requests.Request("GET", "http://localhost/api/health").prepare()
    with pytest.raises(FailureGroup):
        case.validate_response(response, checks=CHECKS)
