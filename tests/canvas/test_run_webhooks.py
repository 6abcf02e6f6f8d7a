"""Completion webhooks of runs: a real receiver (an HTTP server thread on 127.0.0.1, which
WEBHOOK_ALLOWED_HOSTS lists) gets the run record from a real Celery worker (the test worker thread), signed
with the secret the org's admin was shown once; failures are retried with backoff and recorded on the run;
refused targets are 422 and nothing is created or delivered.
"""

from __future__ import annotations

import hashlib
import hmac
import json
import threading
import time
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from datetime import datetime
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

import pytest
from django.utils import timezone

from canvas.models import RunStatus, SynthesisRun
from canvas.runs.webhook_delivery import run_webhook_deliver
from deals.models import OrgWebhookSecret
from tests.canvas.conftest import canvas_url
from tests.canvas.synthesis_corpus import make_corpus
from tests.servers import free_port


@dataclass
class Received:
    at: float  # time.monotonic() when it arrived
    path: str
    headers: dict[str, str]  # lower-case names
    body: bytes


@dataclass
class Receiver:
    """What the receiver got, and how it answers: `script` holds one answer per request in order (an HTTP status,
    or ("stall", seconds) to answer 200 only after that long); past its end it answers 200."""

    url: str
    script: list = field(default_factory=list)
    received: list[Received] = field(default_factory=list)
    changed: threading.Condition = field(default_factory=threading.Condition)

    def wait_for(self, count: int, timeout: float = 60.0) -> list[Received]:
        deadline = time.monotonic() + timeout
        with self.changed:
            while len(self.received) < count:
                left = deadline - time.monotonic()
                if left <= 0:
                    raise AssertionError(f"the receiver got {len(self.received)} request(s), not {count}")
                self.changed.wait(left)
            return list(self.received)


class _QuietServer(ThreadingHTTPServer):
    daemon_threads = True

    def handle_error(self, request, client_address):
        pass  # the service hung up on a stalled answer: what the timeout case wants


@contextmanager
def receiver() -> Iterator[Receiver]:
    port = free_port()
    got = Receiver(url=f"http://127.0.0.1:{port}")

    class Handler(BaseHTTPRequestHandler):
        def do_POST(self):  # noqa: N802 - http.server's name
            body = self.rfile.read(int(self.headers.get("Content-Length") or 0))
            with got.changed:
                index = len(got.received)
                got.received.append(
                    Received(time.monotonic(), self.path, {k.lower(): v for k, v in self.headers.items()}, body)
                )
                got.changed.notify_all()
            answer = got.script[index] if index < len(got.script) else 200
            if isinstance(answer, tuple):
                time.sleep(answer[1])
                answer = 200
            self.send_response(answer)
            self.send_header("Content-Length", "0")
            self.end_headers()

        def log_message(self, *args):
            pass

    server = _QuietServer(("127.0.0.1", port), Handler)
    threading.Thread(target=server.serve_forever, daemon=True).start()
    try:
        yield got
    finally:
        server.shutdown()
        server.server_close()


def verify(secret: str, headers: dict[str, str], body: bytes, tolerance: int = 300) -> bool:
    """A receiver's check, as docs/api-guide.md shows it."""
    timestamp = headers["x-canvas-timestamp"]
    expected = "v1=" + hmac.new(secret.encode(), timestamp.encode() + b"." + body, hashlib.sha256).hexdigest()
    fresh = abs(time.time() - int(timestamp)) <= tolerance
    return fresh and hmac.compare_digest(expected.encode(), headers["x-canvas-signature"].encode())


def issue_secret(cast) -> str:
    response = cast.client("owner").post(f"/api/orgs/{cast.org.pk}/webhook-secret")
    assert response.status_code == 201, response.content
    return response.json()["secret"]


def generate(cast, webhook, **body):
    return cast.client("editor").post(
        canvas_url(cast.deal, "generate"), {"sections": ["risks"], "webhook": webhook, **body}, format="json"
    )


def run_record(cast, run_id) -> dict:
    response = cast.client("viewer").get(canvas_url(cast.deal, f"runs/{run_id}"))
    assert response.status_code == 200
    return response.json()


def wait_webhook_status(cast, run_id, wanted: set[str], timeout: float = 60.0) -> dict:
    deadline = time.monotonic() + timeout
    while True:
        record = run_record(cast, run_id)
        if record["webhook_status"] in wanted:
            return record
        if time.monotonic() > deadline:
            raise AssertionError(f"webhook_status stayed {record['webhook_status']}: {record['webhook_deliveries']}")
        time.sleep(0.1)


@pytest.fixture
def allowed(settings):
    settings.WEBHOOK_ALLOWED_HOSTS = ["127.0.0.1"]
    return settings


# --- delivered --------------------------------------------------------------------------------------------
@pytest.mark.django_db(transaction=True)
def test_a_finished_run_is_posted_to_the_receiver_signed_with_the_shown_secret(cast, celery_worker, allowed):
    make_corpus(cast.deal)
    secret = issue_secret(cast)
    with receiver() as got:
        response = generate(cast, f"{got.url}/hooks/canvas?token=t0ken")
        assert response.status_code == 202, response.content
        run_id = response.json()["run_id"]
        [hit] = got.wait_for(1)
        record = wait_webhook_status(cast, run_id, {"delivered", "failed"})

    assert verify(secret, hit.headers, hit.body)
    assert not verify(secret, hit.headers, hit.body.replace(b"succeeded", b"failed"))  # tampered
    assert not verify(secret + "x", hit.headers, hit.body)
    assert hit.path == "/hooks/canvas?token=t0ken"
    assert hit.headers["host"] == got.url.removeprefix("http://")
    assert hit.headers["content-type"] == "application/json"
    assert hit.headers["x-canvas-event"] == "run.finished"
    assert hit.headers["x-canvas-run-id"] == run_id and hit.headers["x-canvas-delivery-attempt"] == "1"

    # the body is the run record as GET /runs/{id} serializes it, as it was at the attempt
    sent = json.loads(hit.body)
    assert sent["id"] == run_id and sent["status"] == RunStatus.SUCCEEDED
    assert sent["webhook_deliveries"] == [] and sent["webhook_status"] == "pending"
    later = {k: v for k, v in record.items() if k not in ("webhook_deliveries", "webhook_status")}
    assert {k: v for k, v in sent.items() if k not in ("webhook_deliveries", "webhook_status")} == later

    assert record["webhook_status"] == "delivered"
    assert record["webhook"] == f"{got.url}/hooks/canvas"  # the query (a token) is not shown
    [attempt] = record["webhook_deliveries"]
    assert attempt["attempt"] == 1 and attempt["status_code"] == 200 and attempt["delivered"] is True
    assert attempt["error"] is None and attempt["next_attempt_at"] is None and attempt["duration_ms"] >= 0


@pytest.mark.django_db(transaction=True)
def test_a_regenerate_and_a_cancelled_run_deliver_too(cast, celery_worker, allowed):
    make_corpus(cast.deal)
    issue_secret(cast)
    with receiver() as got:
        regenerate = cast.client("editor").post(
            canvas_url(cast.deal, "sections/risks/regenerate"), {"webhook": got.url + "/r"}, format="json"
        )
        assert regenerate.status_code == 202, regenerate.content
        [first] = got.wait_for(1)
        assert json.loads(first.body)["id"] == regenerate.json()["run_id"]

        # a run cancelled while queued: one waiting behind an active run (which no worker executes here)
        active = SynthesisRun.objects.create(deal=cast.deal, status=RunStatus.RUNNING, heartbeat_at=timezone.now())
        queued = generate(cast, got.url + "/c", multitask_strategy="enqueue")
        assert queued.status_code == 202
        cancel = cast.client("editor").post(canvas_url(cast.deal, f"runs/{queued.json()['run_id']}/cancel"))
        assert cancel.status_code == 200 and cancel.json()["status"] == RunStatus.CANCELLED
        second = got.wait_for(2)[1]
        assert second.path == "/c" and json.loads(second.body)["status"] == RunStatus.CANCELLED
        SynthesisRun.objects.filter(pk=active.pk).update(status=RunStatus.FAILED)


# --- retried, then recorded -------------------------------------------------------------------------------
@pytest.mark.django_db(transaction=True)
def test_failures_are_retried_with_exponential_backoff_and_each_attempt_is_recorded(cast, celery_worker, allowed):
    allowed.WEBHOOK_TIMEOUT_SECONDS = 0.5
    allowed.WEBHOOK_BACKOFF_SECONDS = 0.3
    allowed.WEBHOOK_MAX_ATTEMPTS = 5
    make_corpus(cast.deal)
    secret = issue_secret(cast)
    with receiver() as got:
        got.script = [("stall", 2.0), 500, 503, 200]  # a timeout, two errors, then delivered
        run_id = generate(cast, got.url + "/hook").json()["run_id"]
        hits = got.wait_for(4)
        record = wait_webhook_status(cast, run_id, {"delivered", "failed"})
    assert all(verify(secret, hit.headers, hit.body) for hit in hits)
    assert [hit.headers["x-canvas-delivery-attempt"] for hit in hits] == ["1", "2", "3", "4"]
    deliveries = record["webhook_deliveries"]
    assert [d["attempt"] for d in deliveries] == [1, 2, 3, 4]
    assert [d["status_code"] for d in deliveries] == [None, 500, 503, 200]
    assert "No answer within WEBHOOK_TIMEOUT_SECONDS" in deliveries[0]["error"]
    assert deliveries[1]["error"] == "The receiver answered 500." and deliveries[3]["error"] is None
    assert [d["delivered"] for d in deliveries] == [False, False, False, True]
    assert record["webhook_status"] == "delivered"
    # exponential: each planned wait doubles (0.3, 0.6, 1.2 s), and no attempt came before its time
    waits = [
        (datetime.fromisoformat(d["next_attempt_at"]) - datetime.fromisoformat(d["at"])).total_seconds()
        for d in deliveries[:3]
    ]
    planned = [w - d["duration_ms"] / 1000 for w, d in zip(waits, deliveries, strict=False)]
    assert all(p >= want for p, want in zip(planned, [0.3, 0.6, 1.2], strict=True)), planned
    assert planned[0] < planned[1] < planned[2]
    gaps = [later.at - earlier.at for earlier, later in zip(hits, hits[1:], strict=False)]
    assert gaps[1] >= 0.6 and gaps[2] >= 1.2
    # every attempt carries the body as the record was then: the earlier attempts included
    assert len(json.loads(hits[3].body)["webhook_deliveries"]) == 3


@pytest.mark.django_db(transaction=True)
def test_after_the_last_attempt_the_delivery_is_given_up_and_says_why(cast, celery_worker, allowed):
    allowed.WEBHOOK_BACKOFF_SECONDS = 0.1
    allowed.WEBHOOK_MAX_ATTEMPTS = 3
    make_corpus(cast.deal)
    issue_secret(cast)
    with receiver() as got:
        got.script = [500, 500, 500, 500]
        run_id = generate(cast, got.url + "/hook").json()["run_id"]
        got.wait_for(3)
        record = wait_webhook_status(cast, run_id, {"delivered", "failed"})
        assert len(got.received) == 3  # and no fourth: the attempts are bounded
    assert record["webhook_status"] == "failed"
    assert [d["status_code"] for d in record["webhook_deliveries"]] == [500, 500, 500]
    assert record["webhook_deliveries"][-1]["next_attempt_at"] is None
    # a duplicate message after the last attempt sends nothing more
    assert run_webhook_deliver(run_id=run_id) is None
    assert len(SynthesisRun.objects.get(pk=run_id).webhook_deliveries) == 3


@pytest.mark.django_db(transaction=True)
def test_a_redirect_is_not_followed(cast, celery_worker, allowed):
    allowed.WEBHOOK_MAX_ATTEMPTS = 1
    issue_secret(cast)
    with receiver() as target, receiver() as bouncer:
        bouncer.script = [307]
        run = SynthesisRun.objects.create(
            deal=cast.deal, status=RunStatus.SUCCEEDED, finished_at=timezone.now(), webhook_url=bouncer.url + "/h"
        )
        assert run_webhook_deliver(run_id=run.pk) is None
        assert len(bouncer.received) == 1 and target.received == []
    [attempt] = SynthesisRun.objects.get(pk=run.pk).webhook_deliveries
    assert attempt["status_code"] == 307 and "redirects are not followed" in attempt["error"]


@pytest.mark.django_db
def test_a_target_that_now_resolves_to_an_unlisted_address_is_refused_at_delivery_and_not_retried(cast, settings):
    """DNS rebinding: `localhost` was allowed with its address listed when the run was created; at delivery the
    list names it but not its address any more, so the fresh resolution (127.0.0.1) is refused."""
    issue_secret(cast)
    settings.WEBHOOK_ALLOWED_HOSTS = ["localhost", "127.0.0.1"]
    with receiver() as got:
        port = got.url.rsplit(":", 1)[1]
        response = generate(cast, f"http://localhost:{port}/hook")
        assert response.status_code == 202, response.content
        run = SynthesisRun.objects.get(pk=response.json()["run_id"])
        SynthesisRun.objects.filter(pk=run.pk).update(status=RunStatus.SUCCEEDED, finished_at=timezone.now())
        settings.WEBHOOK_ALLOWED_HOSTS = ["localhost"]
        assert run_webhook_deliver(run_id=run.pk) is None  # no retry planned
        assert got.received == []
    [attempt] = SynthesisRun.objects.get(pk=run.pk).webhook_deliveries
    assert attempt["status_code"] is None and attempt["next_attempt_at"] is None and attempt["delivered"] is False
    assert "loopback address" in attempt["error"] and attempt["error"].startswith("Refused:")
    assert run_record(cast, run.pk)["webhook_status"] == "failed"


@pytest.mark.django_db
def test_without_a_usable_org_secret_nothing_is_sent_and_the_attempt_is_retried(cast, allowed):
    issue_secret(cast)
    with receiver() as got:
        run = SynthesisRun.objects.create(
            deal=cast.deal, status=RunStatus.FAILED, finished_at=timezone.now(), webhook_url=got.url + "/h"
        )
        allowed.SECRETS_ENCRYPTION_KEY = "rotated without reissuing"
        assert run_webhook_deliver(run_id=run.pk) == allowed.WEBHOOK_BACKOFF_SECONDS
        OrgWebhookSecret.objects.filter(org=cast.org).delete()
        assert run_webhook_deliver(run_id=run.pk) == 2 * allowed.WEBHOOK_BACKOFF_SECONDS
        assert got.received == []
    first, second = SynthesisRun.objects.get(pk=run.pk).webhook_deliveries
    assert "cannot be decrypted" in first["error"] and first["next_attempt_at"] is not None
    assert f"/api/orgs/{cast.org.pk}/webhook-secret" in second["error"] and second["status_code"] is None
    assert run_record(cast, run.pk)["webhook_status"] == "retrying"


@pytest.mark.django_db
def test_a_run_that_has_not_ended_sends_nothing(cast, allowed):
    issue_secret(cast)
    with receiver() as got:
        run = SynthesisRun.objects.create(deal=cast.deal, status=RunStatus.RUNNING, webhook_url=got.url + "/h")
        assert run_webhook_deliver(run_id=run.pk) is None
        assert got.received == []
    assert SynthesisRun.objects.get(pk=run.pk).webhook_deliveries == []
    assert run_record(cast, run.pk)["webhook_status"] == "pending"


# --- refused targets: 422, no run, nothing delivered --------------------------------------------------------
REFUSED = [
    # (WEBHOOK_ALLOWED_HOSTS, URL ({port}: the receiver's), the 422's type)
    (["*"], "http://127.0.0.1:{port}/hook", "webhook_address_refused"),  # loopback, not listed
    (["*"], "http://localhost:{port}/hook", "webhook_address_refused"),  # a name resolving to loopback
    (["*"], "http://[::ffff:127.0.0.1]:{port}/hook", "webhook_address_refused"),  # loopback inside IPv6
    (["*"], "http://[::1]:{port}/hook", "webhook_address_refused"),
    (["*"], "http://10.1.2.3/hook", "webhook_address_refused"),  # private
    (["*"], "http://192.168.0.10/hook", "webhook_address_refused"),
    (["*"], "http://100.64.0.1/hook", "webhook_address_refused"),  # shared (CGNAT)
    (["*"], "http://169.254.169.254/latest/meta-data/", "webhook_address_refused"),  # metadata
    (["*", "169.254.0.0/16"], "http://169.254.169.254/latest/meta-data/", "webhook_address_refused"),  # even listed
    (["*"], "http://0.0.0.0:{port}/hook", "webhook_address_refused"),
    (["*"], "http://2130706433:{port}/hook", "invalid_webhook_url"),  # 127.0.0.1 as C's inet_aton reads it
    (["*"], "http://0x7f.1:{port}/hook", "invalid_webhook_url"),
    (["127.0.0.1"], "http://localhost:{port}/hook", "webhook_host_not_allowed"),  # the address is listed, not the name
    ([], "http://127.0.0.1:{port}/hook", "webhook_host_not_allowed"),  # nothing listed: no webhook at all
    (["hooks.example.com"], "https://evil.example.net/hook", "webhook_host_not_allowed"),
    (["hooks.example.com"], "https://hooks.example.com.evil.net/hook", "webhook_host_not_allowed"),
    (["127.0.0.1"], "ftp://127.0.0.1:{port}/hook", "invalid_webhook_url"),  # not http(s)
    (["127.0.0.1"], "file:///etc/passwd", "invalid_webhook_url"),
    (["127.0.0.1"], "gopher://127.0.0.1:{port}/_", "invalid_webhook_url"),
    (["127.0.0.1"], "not a url", "invalid_webhook_url"),
    (["127.0.0.1"], "127.0.0.1:{port}/hook", "invalid_webhook_url"),
    (["127.0.0.1"], "http:///hook", "invalid_webhook_url"),
    (["*"], "http://[::1/hook", "invalid_webhook_url"),
    (["*"], "http://[fe80::1%25eth0]/hook", "invalid_webhook_url"),
    (["*"], "http://" + "a" * 300 + ".example.com/hook", "webhook_unresolvable"),
    (["127.0.0.1"], "http://user:pw@127.0.0.1:{port}/hook", "invalid_webhook_url"),
    (["*"], "http://hooks.example.com@127.0.0.1:{port}/hook", "invalid_webhook_url"),
    (["127.0.0.1"], "http://127.0.0.1:99999/hook", "invalid_webhook_url"),
    (["127.0.0.1"], "http://127.0.0.1\\@hooks.example.com/", "invalid_webhook_url"),
    (["*"], "http://h\u00f6oks.example.com/hook", "invalid_webhook_url"),
    (["127.0.0.1"], "http://127.0.0.1:{port}/" + "a" * 2100, "max_length"),
    (["*"], "http://does-not-resolve.invalid/hook", "webhook_unresolvable"),
]


@pytest.mark.django_db
@pytest.mark.parametrize(("hosts", "url", "kind"), REFUSED, ids=[f"{u} with {h}" for h, u, _ in REFUSED])
def test_a_refused_target_is_422_at_body_webhook_and_nothing_is_created_or_delivered(cast, settings, hosts, url, kind):
    issue_secret(cast)
    settings.WEBHOOK_ALLOWED_HOSTS = hosts
    with receiver() as got:
        webhook = url.format(port=got.url.rsplit(":", 1)[1])
        response = generate(cast, webhook)
        regenerate = cast.client("editor").post(
            canvas_url(cast.deal, "sections/risks/regenerate"), {"webhook": webhook}, format="json"
        )
        assert got.received == []
    for answer in (response, regenerate):
        assert answer.status_code == 422, answer.content
        [error] = answer.json()["detail"]
        assert error["loc"] == ["body", "webhook"] and error["type"] == kind
    assert not SynthesisRun.objects.filter(deal=cast.deal).exists()


@pytest.mark.django_db
@pytest.mark.parametrize("webhook", [42, None, ["http://127.0.0.1/"], {"url": "http://127.0.0.1/"}])
def test_a_webhook_that_is_not_text_is_422(cast, allowed, webhook):
    issue_secret(cast)
    response = generate(cast, webhook)
    assert response.status_code == 422 and response.json()["detail"][0]["loc"] == ["body", "webhook"]
    assert not SynthesisRun.objects.exists()


@pytest.mark.django_db
def test_an_org_without_a_webhook_secret_cannot_name_a_webhook(cast, allowed):
    response = generate(cast, "http://127.0.0.1:9/hook")
    assert response.status_code == 422
    [error] = response.json()["detail"]
    assert error["type"] == "webhook_secret_missing" and f"/api/orgs/{cast.org.pk}/webhook-secret" in error["msg"]
    assert not SynthesisRun.objects.exists()


@pytest.mark.django_db
def test_a_listed_network_allows_its_addresses_and_a_run_without_webhook_shows_none(cast, settings):
    issue_secret(cast)
    settings.WEBHOOK_ALLOWED_HOSTS = ["127.0.0.0/8"]
    response = generate(cast, "http://127.0.0.2:9/hook")
    assert response.status_code == 202, response.content
    assert run_record(cast, response.json()["run_id"])["webhook"] == "http://127.0.0.2:9/hook"
    SynthesisRun.objects.update(status=RunStatus.SUCCEEDED)
    without = cast.client("editor").post(canvas_url(cast.deal, "generate"), {"sections": ["risks"]}, format="json")
    record = run_record(cast, without.json()["run_id"])
    assert record["webhook"] is None and record["webhook_status"] is None and record["webhook_deliveries"] == []
