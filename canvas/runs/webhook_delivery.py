"""One delivery attempt of a run's completion webhook (the Celery task canvas.deliver_run_webhook calls it).

The body is the run record exactly as GET /runs/{run_id} serializes it (RunOutput), signed with the deal's org
secret at the attempt (canvas_project.webhooks.post_signed). Each attempt is appended to the run's
`webhook_deliveries`: {attempt, at, status_code, error, duration_ms, delivered, next_attempt_at}. A 2xx answer
delivers; a non-2xx answer, a timeout, a connection failure, a host that does not resolve, or a missing or
unreadable org secret is retried after WEBHOOK_BACKOFF_SECONDS * 2^(attempt-1) (at most 30 minutes), up to
WEBHOOK_MAX_ATTEMPTS attempts in all; a target the outbound policy now refuses (it resolves to a private
address: DNS rebinding) is not retried. Delivery is at least once: receivers dedupe by the run's id.
"""

from __future__ import annotations

from datetime import timedelta

from django.conf import settings
from django.db import transaction
from django.utils import timezone
from rest_framework.renderers import JSONRenderer

from canvas.models import TERMINAL_RUN_STATUSES, SynthesisRun
from canvas.runs.serializers import RunOutput
from canvas_project import secretbox
from canvas_project import webhooks as outbound
from deals.webhooks.selectors import org_webhook_signing_secret

EVENT = "run.finished"
# Half the Redis transport's visibility timeout (an hour): a retry held longer by a worker would be handed to
# another worker as well.
MAX_BACKOFF_SECONDS = 1800.0


def backoff_seconds(attempt: int) -> float:
    """How long after attempt `attempt` (1-based) the next one is made."""
    return min(settings.WEBHOOK_BACKOFF_SECONDS * 2 ** (attempt - 1), MAX_BACKOFF_SECONDS)


def _finished(deliveries: list[dict]) -> bool:
    """Delivered, or given up: the last attempt planned no other."""
    return bool(deliveries) and (deliveries[-1].get("delivered") or deliveries[-1].get("next_attempt_at") is None)


def _record(run_id, entry: dict) -> bool:
    """Append the attempt to the run's deliveries; False when another attempt finished it meanwhile."""
    with transaction.atomic():
        run = SynthesisRun.objects.select_for_update().only("webhook_deliveries").filter(pk=run_id).first()
        if run is None or _finished(run.webhook_deliveries):
            return False
        run.webhook_deliveries = [*run.webhook_deliveries, entry]
        run.save(update_fields=["webhook_deliveries", "updated_at"])
    return True


def run_webhook_deliver(*, run_id) -> float | None:
    """Make the run's next delivery attempt and record it; returns the seconds to wait before the next attempt,
    or None when there is none to make (delivered, given up, no webhook, the run not ended, or already done)."""
    run = SynthesisRun.objects.select_related("created_by", "deal").filter(pk=run_id).first()
    if run is None or not run.webhook_url or run.status not in TERMINAL_RUN_STATUSES:
        return None
    if _finished(run.webhook_deliveries):
        return None  # a duplicate message after the last attempt
    attempt = len(run.webhook_deliveries) + 1
    started = timezone.now()
    retryable = True
    status_code, error, duration_ms = None, None, 0.0
    try:
        secret = org_webhook_signing_secret(org_id=run.deal.org_id)
        if secret is None:
            error = (
                "The org has no webhook secret: an org admin must issue one "
                f"(POST /api/orgs/{run.deal.org_id}/webhook-secret)."
            )
    except secretbox.SecretUnreadable:
        secret = None
        error = (
            "The org's webhook secret cannot be decrypted (SECRETS_ENCRYPTION_KEY changed): an org admin must issue "
            "a new one."
        )
    if secret is not None:
        try:
            target = outbound.parse_target(run.webhook_url)
            addresses = outbound.resolve_target(target)
        except outbound.WebhookRefused as exc:
            error, retryable = f"Refused: {exc.message}", exc.code == "webhook_unresolvable"
        else:
            body = JSONRenderer().render(RunOutput(run).data)
            outcome = outbound.post_signed(
                target,
                addresses=addresses,
                body=body,
                secret=secret,
                headers={
                    "X-Canvas-Event": EVENT,
                    "X-Canvas-Run-Id": str(run.pk),
                    "X-Canvas-Delivery-Attempt": str(attempt),
                },
            )
            status_code, error, duration_ms = outcome.status_code, outcome.error, outcome.duration_ms
    delivered = error is None
    retry_in = None
    if not delivered and retryable and attempt < settings.WEBHOOK_MAX_ATTEMPTS:
        retry_in = backoff_seconds(attempt)
    entry = {
        "attempt": attempt,
        "at": started.isoformat(),
        "status_code": status_code,
        "error": error,
        "duration_ms": duration_ms,
        "delivered": delivered,
        "next_attempt_at": (timezone.now() + timedelta(seconds=retry_in)).isoformat() if retry_in is not None else None,
    }
    if not _record(run.pk, entry):
        return None
    return retry_in
