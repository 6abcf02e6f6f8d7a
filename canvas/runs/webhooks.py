"""Completion webhooks of runs: the URL a client names on POST /generate (or a section's regenerate), checked
and recorded on the run, and the delivery scheduled once the run ends (canvas.runs.webhook_delivery sends it).

A webhook needs the deal's org to have a signing secret (POST /api/orgs/{org_id}/webhook-secret) and a URL the
outbound policy allows (canvas_project.webhooks: WEBHOOK_ALLOWED_HOSTS, no private, loopback, link-local or
metadata address unless listed); either missing is a 422 at body.webhook, and the run is not created.
"""

from __future__ import annotations

import logging

from django.conf import settings
from django.db import transaction

from canvas.models import SynthesisRun
from canvas_project import webhooks as outbound
from canvas_project.celery import app as celery_app
from canvas_project.errors import InvalidInputError
from deals.models import Deal
from deals.webhooks.selectors import org_has_webhook_secret

logger = logging.getLogger(__name__)

WEBHOOK_TASK = "canvas.deliver_run_webhook"  # canvas.runs.tasks.deliver_run_webhook, enqueued by name
WEBHOOK_LOC = ["body", "webhook"]


def webhook_url_check(*, deal: Deal, url: str) -> str:
    """The URL to record on a new run of the deal. Raises InvalidInputError (at body.webhook): a URL the
    outbound policy refuses (its code says why), or an org without a webhook secret (webhook_secret_missing)."""
    try:
        outbound.check_url(url)
    except outbound.WebhookRefused as exc:
        raise InvalidInputError(exc.message, loc=WEBHOOK_LOC, value=url, code=exc.code) from None
    if not org_has_webhook_secret(org_id=deal.org_id):
        raise InvalidInputError(
            "This deal's org has no webhook signing secret yet: an org admin issues one with "
            f"POST /api/orgs/{deal.org_id}/webhook-secret.",
            loc=WEBHOOK_LOC,
            value=url,
            code="webhook_secret_missing",
        )
    return url


def webhook_time_limit() -> float:
    """Seconds one delivery task may take: the DNS wait and the POST's phases, with room to spare."""
    return outbound.DNS_TIMEOUT_SECONDS + 4 * settings.WEBHOOK_TIMEOUT_SECONDS + 30


def webhook_enqueue(run_id) -> None:
    try:
        celery_app.send_task(WEBHOOK_TASK, args=[str(run_id)], time_limit=webhook_time_limit())
    except Exception:  # noqa: BLE001 - the broker is down: the run is ended all the same; the delivery is lost
        logger.exception("could not enqueue the webhook of run %s", run_id)


def webhook_schedule(*, run: SynthesisRun) -> None:
    """Enqueue the run's webhook delivery once the current transaction commits (at once outside one), when the
    run has a webhook."""
    if run.webhook_url:
        run_id = run.pk
        transaction.on_commit(lambda: webhook_enqueue(run_id))
